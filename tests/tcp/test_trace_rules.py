"""Per-connection tracing (docs/internals.md, "Tracing"): the events a traced
connection reports are exactly what happened on the wire and in the stack.

Independent references: the segments the hand-played peer receives and sends
(every tcp_transmit_skb is one segment on the wire, every tcp_probe one
segment the peer sent); RFC 5681 slow start (+1 segment per segment ACKed);
CUBIC's multiplicative decrease (ssthresh = cwnd * 717/1024, as
test_cubic.py's 100 -> 70); RFC 6298 5.5-5.6 for the RTO (cwnd 1, the head
resent, backoff 1); and, over a VirtualNetwork with loss, the same frames
and counters with tracing on as off (it must only observe).
"""

from __future__ import annotations

import hashlib
import io
import json

from tcpio.core.addr import ip_ntoa
from tcpio.core.sim import VirtualNetwork
from tcpio.devices.impair import Impairment
from tcpio.trace import JsonLinesWriter, read_trace

from .helpers import (
    ACK,
    FIN,
    PEER_ISS,
    TcpOptions,
    active_open,
    parse,
    sim_connect,
    sim_transfer,
)

MSS = 536       # the peer sends no MSS option
LETTERS = "FSRPAUEC"


def letters(flags: int) -> str:
    return "".join(c for i, c in enumerate(LETTERS) if flags & (1 << i))


class Recorder:
    """The peer's side: every segment it received and sent, in order."""

    def __init__(self, c) -> None:
        self.c = c
        self.got: list = list(c.syn and [c.syn]) + list(c.handshake_ack)
        self.sent: list = [("SA", PEER_ISS, c.syn.seq + 1, 0)]

    def recv(self):
        segs = self.c.recv()
        self.got.extend(segs)
        return segs

    def send(self, **kw):
        c = self.c
        seq, ack = c.snd, c.rcv if kw.get("ack") is None else kw["ack"]
        payload = kw.get("payload", b"")
        self.sent.append((letters(kw.get("flags", ACK)), seq, ack, len(payload)))
        c.send(**kw)


def _traced_active_open():
    events: list = []
    c = active_open(setup=lambda sk: sk.set_trace(events.append))
    return c, events, Recorder(c)


def _of(events, ev):
    return [e for e in events if e["ev"] == ev]


def test_a_loss_repaired_by_fast_retransmit_traces_exactly_what_happened():
    c, events, peer = _traced_active_open()
    c.sk.sendmsg(b"x" * MSS * 14)
    out = peer.recv()
    assert len(out) == 10                           # initial window (RFC 6928)
    base = out[0].seq
    peer.send(ack=base + MSS)                       # segment 1 arrives, 2 is lost
    peer.recv()
    hole = base + MSS
    for _ in range(3):                              # three duplicate ACKs
        peer.send(ack=hole)
        peer.recv()
    peer.send(ack=c.sk.snd_nxt)                     # everything: recovery ends
    peer.recv()
    c.sk.close()                                    # FIN_WAIT1
    fin = peer.recv()
    peer.c.ack_all(fin)
    peer.send(ack=c.sk.snd_nxt)                     # FIN_WAIT2: closed, so an orphan,
    # which waits as a time-wait sock at once (the full sock is CLOSE)
    peer.send(flags=FIN | ACK)                      # to the time-wait sock
    peer.recv()

    # every event names this connection, with one id
    assert {e["sock"] for e in events} == {events[0]["sock"]}
    assert {(e["saddr"], e["sport"], e["daddr"], e["dport"]) for e in events} == {
        (ip_ntoa(c.sk.laddr), c.sk.lport, ip_ntoa(c.sk.raddr), c.sk.rport)}

    # the state sequence (sock:inet_sock_set_state); TIME_WAIT is the light
    # time-wait sock's, the full sock goes to CLOSE (Linux's tcp_time_wait ->
    # tcp_done)
    assert [(e["oldstate"], e["newstate"]) for e in _of(events, "inet_sock_set_state")] == [
        ("TCP_CLOSE", "TCP_SYN_SENT"), ("TCP_SYN_SENT", "TCP_ESTABLISHED"),
        ("TCP_ESTABLISHED", "TCP_FIN_WAIT1"), ("TCP_FIN_WAIT1", "TCP_FIN_WAIT2"),
        ("TCP_FIN_WAIT2", "TCP_CLOSE")]

    # one tcp_transmit_skb per segment on the wire, the same fields, in order
    # (but the last: the time-wait sock ACKs the peer's FIN, the traced
    # connection is over by then)
    sent = _of(events, "tcp_transmit_skb")
    assert [(e["flags"], e["seq"], e["ack"], e["len"]) for e in sent] == [
        (letters(s.flags), s.seq, s.ack if s.flags & ACK else 0, len(s.payload))
        for s in peer.got[:-1]]
    assert peer.got[-1].flags == ACK and peer.got[-1].ack == c.snd
    assert all(e["win"] == s.window << (0 if s.flags & 2 else c.sk.rcv_wscale)
               for e, s in zip(sent, peer.got))
    # one tcp_probe per segment the peer sent (but the FIN, the time-wait sock's)
    assert [(e["flags"], e["seq"], e["ack"], e["len"])
            for e in _of(events, "tcp_probe")] == peer.sent[:-1]

    # exactly one retransmission: the hole, for a loss, then that segment again
    [rtx] = _of(events, "tcp_retransmit_skb")
    assert (rtx["seq"], rtx["end_seq"], rtx["cause"]) == (hole, hole + MSS, "loss")
    i = events.index(rtx)
    nxt = events[i + 1]
    assert nxt["ev"] == "tcp_transmit_skb" and nxt["seq"] == hole and nxt["retrans"] is True
    assert [e["retrans"] for e in sent].count(True) == 1

    # congestion states: Disorder on the first duplicate ACK, Recovery on the
    # third (the retransmission's own), Open after the full ACK
    assert [(e["old"], e["new"]) for e in _of(events, "tcp_cong_state_set")] == [
        ("Open", "Disorder"), ("Disorder", "Recovery"), ("Recovery", "Open")]
    assert events[i - 1] == {**events[i - 1], "ev": "tcp_cong_state_set", "new": "Recovery"}

    # cwnd: 10, slow start +1 for the one segment ACKed, then CUBIC's
    # multiplicative decrease at the loss: ssthresh = 11 * 717 / 1024 = 7
    probes = _of(events, "tcp_probe")
    assert probes[0]["snd_cwnd"] == 10 and probes[0]["ssthresh"] == 0x7FFFFFFF
    assert probes[1]["snd_cwnd"] == 11
    assert rtx["ssthresh"] == 11 * 717 // 1024 == 7
    # PRR (RFC 6937): the window lets the fast retransmission go and no
    # more (cwnd = pipe + sndcnt 1, pipe counting the retransmission now)
    assert rtx["snd_cwnd"] == rtx["in_flight"]
    assert (rtx["lost_out"], rtx["retrans_out"], rtx["sacked_out"]) == (1, 1, 3)
    assert rtx["in_flight"] == rtx["packets_out"] - 3 - 1 + 1
    assert probes[5]["ssthresh"] == 7 and probes[5]["packets_out"] == 0


def test_an_rto_traces_the_timer_the_loss_state_and_the_retransmission():
    c, events, peer = _traced_active_open()
    c.sk.sendmsg(b"y" * MSS * 2)
    out = peer.recv()
    rto = c.sk.rto      # (no SACK: no loss probe stands in for the RTO)
    c.host.advance(c.host.now + rto)                # nothing ACKed: the RTO fires
    again = peer.recv()
    assert [s.seq for s in again] == [out[0].seq]   # RFC 6298 5.4: the earliest segment
    tail = events[events.index(_of(events, "tcp_timer")[0]):]
    assert [e["ev"] for e in tail] == ["tcp_timer", "tcp_cong_state_set",
                                       "tcp_retransmit_skb", "tcp_transmit_skb"]
    timer, ca, rtx, tx = tail
    assert timer["timer"] == "retrans" and timer["backoff"] == 0
    assert timer["ca_state"] == "Open" and timer["snd_cwnd"] == 10
    assert (ca["old"], ca["new"]) == ("Open", "Loss")
    assert rtx["cause"] == "rto" and rtx["seq"] == out[0].seq
    assert rtx["snd_cwnd"] == 1                     # RFC 5681 3.1: LW = 1 segment
    assert rtx["ssthresh"] == 10 * 717 // 1024      # CUBIC's decrease from cwnd 10
    assert tx["retrans"] is True and tx["len"] == MSS
    # RFC 6298 5.5: the timer backs off after the retransmission; the next
    # expiry says so
    c.host.advance(c.host.now + 2 * rto)
    assert [s.seq for s in peer.recv()] == [out[0].seq]
    timer2 = _of(events, "tcp_timer")[1]
    assert timer2["backoff"] == 1 and timer2["rto_us"] == round(2 * rto * 1e6)
    assert timer2["ca_state"] == "Loss" and timer2["snd_cwnd"] == 1
    assert [e["cause"] for e in _of(events, "tcp_retransmit_skb")] == ["rto", "rto"]


def test_tracing_off_emits_nothing_and_set_trace_none_stops_it():
    c, events, peer = _traced_active_open()
    c.sk.set_trace(None)
    n = len(events)
    c.sk.sendmsg(b"z" * 100)
    peer.recv()
    assert len(events) == n and c.sk.trace is None


def test_per_stack_tracing_covers_both_ends_and_changes_no_frame_or_counter():
    """Over a VirtualNetwork with loss, tracing every connection leaves the
    frames and counters exactly as without it, and each data frame on the
    wire is one tcp_transmit_skb of its sender."""
    untraced = _lossy_transfer(trace=False)
    traced = _lossy_transfer(trace=True)
    assert traced[:3] == untraced[:3]
    events, frames = traced[3], traced[4]
    assert any(e["ev"] == "tcp_retransmit_skb" for e in events)
    by_sender: dict = {}
    for e in events:
        if e["ev"] == "tcp_transmit_skb":
            by_sender.setdefault(e["saddr"], []).append((e["seq"], e["len"], e["flags"]))
    # (the passive side's SYN-ACK is the request sock's, before the
    # connection exists: not traced)
    assert frames["10.0.0.2"][0][2] == "SA"
    sent_by_b = frames["10.0.0.2"]
    frames["10.0.0.2"] = [f for f in frames["10.0.0.2"] if f[2] != "SA"]
    assert by_sender == frames
    # b -> a has no impairment: the client processed every frame the server
    # sent, one tcp_probe each (bare ACKs included, which the fast path
    # would otherwise take unseen)
    got = [(e["seq"], e["len"], e["flags"]) for e in events
           if e["ev"] == "tcp_probe" and e["saddr"] == "10.0.0.1"]
    assert got == sent_by_b and len(got) > 100
    states = [(e["saddr"], e["newstate"]) for e in events if e["ev"] == "inet_sock_set_state"]
    # (the client is established on the SYN-ACK, the server's child is made
    # on the third segment)
    assert states == [("0.0.0.0", "TCP_LISTEN"), ("10.0.0.1", "TCP_SYN_SENT"),
                      ("10.0.0.1", "TCP_ESTABLISHED"), ("10.0.0.2", "TCP_SYN_RECV"),
                      ("10.0.0.2", "TCP_ESTABLISHED")]


def _lossy_transfer(trace: bool):
    net = VirtualNetwork(seed=5)
    a, b = net.host("a"), net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24",
                    impairment=Impairment(loss=0.03, seed=5))
    events: list = []
    if trace:
        a.tcp.set_trace(events.append)
        b.tcp.set_trace(events.append)
    cl, sv = sim_connect(net, a, b)
    data = bytes(range(256)) * 800
    assert sim_transfer(net, cl, sv, data) == data
    net.run_for(1.0)            # the last ACKs land
    h = hashlib.sha256()
    frames: dict = {}
    for when, frame in link.capture:
        h.update(repr(when).encode())
        h.update(bytes(frame))
        ip = bytes(frame)[14:]
        if ip[9] == 6:
            s = parse(ip[(ip[0] & 15) * 4:])
            frames.setdefault(ip_ntoa(int.from_bytes(ip[12:16], "big")), []).append(
                (s.seq, len(s.payload), letters(s.flags)))
    return h.digest(), a.mib.snapshot(), b.mib.snapshot(), events, frames


def test_json_lines_round_trip_with_the_header_first():
    c, _events, peer = _traced_active_open()
    buf = io.BytesIO()
    w = JsonLinesWriter(buf)
    c.sk.set_trace(w)
    c.sk.sendmsg(b"q" * 10)
    peer.recv()
    w.close()
    lines = buf.getvalue().decode().splitlines()
    assert json.loads(lines[0]) == {"ev": "trace_start", "format": "tcpio-trace",
                                    "version": 1, "tcpio": json.loads(lines[0])["tcpio"]}
    back = list(read_trace(io.BytesIO(buf.getvalue())))
    assert [e["ev"] for e in back] == ["trace_start", "tcp_transmit_skb"]
    assert back[1]["len"] == 10 and back[1]["flags"] == "PA"


def test_a_tail_loss_probe_traces_its_timer_and_cause():
    """RFC 8985 7.3: with SACK, the probe timer fires before the RTO; with no
    new data it resends the last segment: cause "tlp", not counted lost."""
    events: list = []
    c = active_open(synack_opts=TcpOptions(mss=MSS, sack_ok=True),
                    setup=lambda sk: sk.set_trace(events.append))
    c.sk.sendmsg(b"p" * MSS * 2)
    out = c.recv()
    assert len(out) == 2
    deadline = c.sk.rtx_timer.when
    c.host.advance(deadline)
    [probe] = c.recv()
    assert probe.seq == out[1].seq                  # the last segment again
    timer, rtx, tx = events[-3:]
    assert (timer["ev"], timer["timer"]) == ("tcp_timer", "loss_probe")
    assert (rtx["ev"], rtx["cause"], rtx["seq"]) == ("tcp_retransmit_skb", "tlp", out[1].seq)
    assert rtx["lost_out"] == 0 and rtx["ca_state"] == "Open"
    assert tx["ev"] == "tcp_transmit_skb" and tx["retrans"] is True


def test_trace_socket_takes_a_socket_or_a_transport_and_only_that_connection_reports():
    import asyncio
    import socket as pysocket

    from stackutil import until, wired_stacks

    from tcpio.trace import trace_socket

    async def main():
        async with wired_stacks(seed=4) as (a, b):
            listener = a.socket(pysocket.SOCK_STREAM)
            listener.bind(("10.0.0.1", 7000))
            listener.listen(4)
            server = await a.start_server(lambda r, w: None, "10.0.0.1", 8080)
            sock = b.socket(pysocket.SOCK_STREAM)
            await sock.connect(("10.0.0.1", 7000))
            _r, writer = await b.open_connection("10.0.0.1", 8080)
            by_sock: list = []
            by_transport: list = []
            trace_socket(sock, by_sock.append)
            trace_socket(writer.transport, by_transport.append)
            await sock.sendall(b"s" * 10)
            writer.write(b"t" * 20)
            await writer.drain()
            await until(lambda: sock.tcp_info()["tcpi_unacked"] == 0)
            raw = sock.getsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_INFO, 104)
            info = sock.tcp_info()
            writer.close()
            sock.close()
            server.close()
            listener.close()
            return by_sock, by_transport, raw, info

    by_sock, by_transport, raw, info = asyncio.run(main())
    # (data segments: the FIN of close() is traced too)
    assert [e["len"] for e in by_sock if e["ev"] == "tcp_transmit_skb" and e["len"]] == [10]
    assert {e["dport"] for e in by_sock} == {7000}
    assert [e["len"] for e in by_transport
            if e["ev"] == "tcp_transmit_skb" and e["len"]] == [20]
    assert {e["dport"] for e in by_transport} == {8080}
    assert len(raw) == 104 and raw[0] == 1 and info["tcpi_bytes_acked"] == 11
