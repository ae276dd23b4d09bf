"""A SYN cookie's ACK that meets a request sock for the same SYN (issue 11).

Seen at 10 000 kernel clients over a TAP: a client's SYN is answered with a
cookie (the SYN queue is full); before that SYN-ACK reaches it, the client
retransmits the SYN, which now finds room in the queue and makes a request
sock with its own ISN.  The client takes the first SYN-ACK it gets, the
cookie's, and ACKs it: the ACK reaches the request sock, whose ISN it does not
acknowledge.  tcpio reset it there (the client saw ECONNRESET, no cookie
counter moved).  Linux hands such an ACK to the listener (tcp_check_req
returns the listener: "Invalid ACK: reset will be sent by listening socket"),
whose cookie check finds it valid; Linux then frees the child because the
request holds the tuple, and drops the ACK without a counter until the
request's SYN-ACK retries end.  tcpio lets the request give way to the
cookie's child: the cookie proves the client ACKed a SYN-ACK we sent for that
very SYN (same client ISN).

The first test is the rule on one client, three ways (the compiled SYN path,
its pure twin, the layered path); the second runs many clients through
batches as the TAP delivers them (SYNs, retransmitted SYNs, ACKs, data and
FINs interleaved, SYN-ACKs reaching each client one or two batches late, from
a seeded RNG): every client must get its connection and all its data, and no
RST may go out.  The oracle is the client's view (scapy parses what tcpio
sends), not tcpio's own state.
"""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton

from .test_syn_fast_rules import GW_MAC, MODES, OPTIONS, PORT, US, US_MAC, make_host

LAYERED_TOO = [*MODES, "layered"]
ONE = "198.51.100.7"


def frame(src: str, sport: int, flags: str, seq: int, ack: int = 0, data: bytes = b"",
          options: list | None = None) -> bytes:
    return bytes(Ether(dst=US_MAC, src=GW_MAC) / IP(src=src, dst=US)
                 / TCP(sport=sport, dport=PORT, flags=flags, seq=seq & 0xFFFFFFFF,
                       ack=ack & 0xFFFFFFFF, window=502,
                       options=OPTIONS["linux"] if options is None else options) / data)


def ts_echo(synack: Ether, tsval: int) -> list:
    """A Linux client's options on its ACK: timestamps echoing the SYN-ACK."""
    return [("NOP", None), ("NOP", None),
            ("Timestamp", (tsval, dict(synack[TCP].options)["Timestamp"][0]))]


def sent(h: object) -> list[Ether]:
    """The TCP segments the host sent (not its IPv6 address configuration)."""
    frames = [Ether(bytes(f)) for _, f in h.take_output()]  # type: ignore[attr-defined]
    return [p for p in frames if TCP in p]


@pytest.mark.parametrize("mode", LAYERED_TOO)
def test_cookie_ack_takes_over_the_request_of_its_retransmitted_syn(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as mp:
        # backlog 0: one request sock fills the SYN queue (qlen > backlog)
        h, ifi, lsk = make_host(mode, mp, tcp_syncookies=1, backlog=0)
        # another client's request fills the SYN queue; ours gets a cookie
        h.receive_batch(ifi, [frame("198.51.100.9", 50000, "S", 9000),
                              frame(ONE, 40000, "S", 5000)], 100.0)
        other, cookie_sa = sent(h)
        assert h.mib["SyncookiesSent"] == 1 and len(lsk.syn_queue) == 1
        # the other client completes (the queue has room again); ours, still
        # waiting for a SYN-ACK, retransmits its SYN, which makes a request
        h.receive_batch(ifi, [frame("198.51.100.9", 50000, "A", 9001, other[TCP].seq + 1,
                                    options=ts_echo(other, 123457))], 100.5)
        first = lsk.accept()        # (a backlog of 0 holds one child)
        h.receive_batch(ifi, [frame(ONE, 40000, "S", 5000)], 101.0)
        (req_sa,) = sent(h)
        assert req_sa[TCP].flags == "SA" and req_sa[TCP].seq != cookie_sa[TCP].seq
        assert len(lsk.syn_queue) == 1
        # the cookie SYN-ACK arrives first: the client ACKs it, then sends data
        ack = cookie_sa[TCP].seq + 1
        h.receive_batch(ifi, [frame(ONE, 40000, "A", 5001, ack, options=ts_echo(cookie_sa, 123458)),
                              frame(ONE, 40000, "PA", 5001, ack, b"x" * 100,
                                    options=ts_echo(cookie_sa, 123458))], 101.1)
        out = sent(h)
        assert not [p for p in out if p[TCP].flags & 0x04], "a RST went to the client"
        assert h.mib["SyncookiesRecv"] == 1 and h.mib["TCPReqQCookieTakeover"] == 1
        assert h.mib["OutRsts"] == 0
        ours = lsk.accept()
        assert first is not None and ours is not None and ours.rport == 40000
        assert ours.recvmsg(4096) == b"x" * 100
        assert not lsk.syn_queue      # the request gave way (its timer with it)
        assert h.tcp.hashinfo.lookup_established(ip_aton(US), PORT, ip_aton(ONE), 40000) is ours
        # later SYN-ACK retries of the request would confuse the client: none
        h.poll(130.0)
        assert not [p for p in sent(h) if p[TCP].flags == "SA"]


@pytest.mark.parametrize("mode", LAYERED_TOO)
def test_bad_ack_at_a_request_is_reset_by_the_listener(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No cookie in it: RST <SEQ=SEG.ACK> (RFC 9293 3.10.7.4, SYN-RECEIVED),
    counted as a failed cookie while cookies are in use, the request kept."""
    with monkeypatch.context() as mp:
        h, ifi, lsk = make_host(mode, mp, tcp_syncookies=1, backlog=0)
        h.receive_batch(ifi, [frame(ONE, 40000, "S", 5000), frame(ONE, 40001, "S", 6000)],
                        100.0)
        req_sa, cookie_sa = sent(h)
        bad = (req_sa[TCP].seq + 1 + 4096) & 0xFFFFFFFF
        h.receive_batch(ifi, [frame(ONE, 40000, "A", 5001, bad, options=[])], 100.1)
        (rst,) = sent(h)
        assert rst[TCP].flags == "R" and rst[TCP].seq == bad
        assert h.mib["SyncookiesFailed"] == 1 and h.mib["TCPReqQCookieTakeover"] == 0
        assert len(lsk.syn_queue) == 1 and lsk.accept() is None


@pytest.mark.parametrize("mode", LAYERED_TOO)
def test_fin_after_a_lost_cookie_ack_and_data_is_a_counted_reset(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other failure seen at 10 000 clients: the client's ACK and data were
    dropped on the way (the TAP's queue toward tcpio was full: the kernel's
    tx_dropped), its FIN got through.  Its sequence number is past the cookie's
    client ISN + 1, so the cookie cannot be checked: a reset, counted as a
    failed cookie, which is what Linux answers (cookie_v4_check takes seq - 1
    as the client's ISN)."""
    with monkeypatch.context() as mp:
        h, ifi, lsk = make_host(mode, mp)
        h.receive_batch(ifi, [frame(ONE, 40000, "S", 5000)], 100.0)
        (cookie_sa,) = sent(h)
        ack = cookie_sa[TCP].seq + 1
        h.receive_batch(ifi, [frame(ONE, 40000, "FA", 5001 + 13421, ack,
                                    options=ts_echo(cookie_sa, 123458))], 100.2)
        (rst,) = sent(h)
        assert rst[TCP].flags == "R" and rst[TCP].seq == ack
        assert h.mib["SyncookiesFailed"] == 1 and h.mib["SyncookiesRecv"] == 0
        assert lsk.accept() is None


class Client:
    """A Linux-like client: retransmits its SYN each batch until a SYN-ACK
    reaches it, ACKs the first one with its data and FIN, ignores later ones."""

    def __init__(self, i: int, rng: random.Random) -> None:
        self.src = f"198.51.{100 + i // 250}.{1 + i % 250}"
        self.sport = 32768 + i
        self.isn = rng.getrandbits(32)
        self.data = i.to_bytes(4, "big") * 64
        self.synack: Ether | None = None
        self.reset = False

    def segments(self) -> list[bytes]:
        if self.synack is None:
            return [frame(self.src, self.sport, "S", self.isn)]
        return []

    def established(self, synack: Ether) -> list[bytes]:
        self.synack = synack
        ack = synack[TCP].seq + 1
        opts = ts_echo(synack, 123460)
        return [frame(self.src, self.sport, "A", self.isn + 1, ack, options=opts),
                frame(self.src, self.sport, "PA", self.isn + 1, ack, self.data, options=opts),
                frame(self.src, self.sport, "FA", self.isn + 1 + len(self.data), ack,
                      options=opts)]


def interleave(flows: list[list[bytes]], rng: random.Random) -> list[bytes]:
    """The flows' segments merged at random, each flow's in its own order
    (as the TAP delivers them: one queue, clients interleaved)."""
    order = [i for i, segs in enumerate(flows) for _ in segs]
    rng.shuffle(order)
    pos = [0] * len(flows)
    out = []
    for i in order:
        out.append(flows[i][pos[i]])
        pos[i] += 1
    return out


@pytest.mark.parametrize("mode", MODES)
def test_every_client_of_a_crowd_gets_its_connection(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    n = 300
    clients = [Client(i, rng) for i in range(n)]
    by_port = {c.sport: c for c in clients}
    with monkeypatch.context() as mp:
        # The SYN queue is full past 200 request socks (qlen > the listen()
        # backlog, Linux 6.13+); the same backlog bounds the accept queue,
        # which must hold every child one batch completes: these clients do
        # not retransmit an ACK the listener drops (ListenOverflows).
        h, ifi, lsk = make_host(mode, mp, tcp_syncookies=1, backlog=200, tcp_syn_budget=48)
        in_flight: list[tuple[int, Ether]] = []     # (batch it arrives in, frame to a client)
        children = []
        now = 100.0
        for batch_no in range(40):
            arriving = [p for b, p in in_flight if b == batch_no]
            in_flight = [(b, p) for b, p in in_flight if b != batch_no]
            flows: list[list[bytes]] = []
            for p in arriving:
                c = by_port[p[TCP].dport]
                if p[TCP].flags & 0x04:
                    c.reset = True
                elif p[TCP].flags == "SA" and c.synack is None:
                    flows.append(c.established(p))
            flows += [segs for c in clients if (segs := c.segments())]
            h.receive_batch(ifi, interleave(flows, rng), now)
            h.poll(now)
            while (child := lsk.accept()) is not None:
                children.append(child)
            for p in sent(h):
                # ... and a SYN-ACK reaches its client one or two batches later
                in_flight.append((batch_no + rng.choice((1, 2)), p))
            now += 1.0
            if all(c.synack is not None for c in clients) and not in_flight:
                break
        assert not [c.sport for c in clients if c.reset], "clients were reset"
        assert h.mib["OutRsts"] == 0
        assert h.mib["TCPReqQCookieTakeover"] > 0      # the crossing happened
        got = {child.rport: child.recvmsg(1 << 16) for child in children}
        assert got == {c.sport: c.data for c in clients}
