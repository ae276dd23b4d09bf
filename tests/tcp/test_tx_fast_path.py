"""The one-call TCP transmit path (ip_output.ip_queue_xmit_tcp building the
whole frame with tx.tcp_frame) must be a pure optimisation.

The evidence is differential: the same seeded scenario is run twice, once as
it is and once with the one-call path switched off (every segment then takes
the layered path it replaced: wire.build_tcp + host.ip_output), and the runs
must put exactly the same frames on the wire at the same virtual times and
move exactly the same MIB counters.  The scenarios cover the common case
(bulk data both ways with loss, reordering and duplication, so timestamps,
SACK and D-SACK blocks, urgent data, FIN, time-wait ACKs and RST all go out)
and every case the path hands back to ip_output: an unresolved or stale
neighbour, loopback, a datagram over the MTU (fragmented), no route, a
gateway, broadcast and multicast destinations; plus a TUN ("ip") link, which
the one-call path serves without an Ethernet header.  Each runs with both
twins of tcp_frame.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable

import pytest
from conftest import twin_fixture
from tap.tshark import fields, needs_tshark

from tcpio._fast import load
from tcpio.core import ip_output
from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings
from tcpio.core.sim import Link, VirtualNetwork
from tcpio.core.tcp import tcp_output
from tcpio.core.tcp.tcp_states import TCPHDR_ACK, TCPHDR_RST
from tcpio.devices.impair import Impairment

from .helpers import sim_connect

tx = twin_fixture("tx", "tx")
wire = load("wire")

MSG_OOB = int(socket.MSG_OOB)


class Recorder:
    """Runs a scenario with the one-call path on (through a given twin of
    tcp_frame) or off, and counts how often the path took a segment."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tx_mod) -> None:
        self.monkeypatch = monkeypatch
        self.tx = tx_mod
        self.taken = 0
        self.declined = 0

    def run(self, scenario: Callable[[], object], fast: bool) -> object:
        real = ip_output.ip_queue_xmit_tcp

        def counting(*args) -> int | None:
            rc = real(*args)
            if rc is not None:
                self.taken += 1
            else:
                self.declined += 1
            return rc

        fast_mod = tcp_output._tcp_fast
        real_ack = fast_mod.ack_whole

        def counting_ack(*args) -> None:
            # a bare ACK built whole by tcp_send_ack's compiled call (the
            # same frame as ip_queue_xmit_tcp's; off with _tcp_xmit_path)
            self.taken += 1
            real_ack(*args)

        with self.monkeypatch.context() as m:
            m.setattr(ip_output, "tcp_frame", self.tx.tcp_frame)
            m.setattr(tcp_output, "ip_queue_xmit_tcp",
                      counting if fast else (lambda *args: None))
            m.setattr(fast_mod, "ack_whole", counting_ack)
            if not fast and hasattr(tcp_output, "_tcp_xmit_path"):
                # the burst send loop for plain data (tcp_fast.write_xmit) too
                m.setattr(tcp_output, "_tcp_xmit_path", lambda *args: None)
            return scenario()

    def compare(self, scenario: Callable[[], object]) -> object:
        """Both runs; asserts they are identical and returns the fast run's result."""
        layered = self.run(scenario, fast=False)
        assert self.taken == self.declined == 0
        fast = self.run(scenario, fast=True)
        assert fast == layered
        return fast


@pytest.fixture
def rec(monkeypatch, tx) -> Recorder:
    return Recorder(monkeypatch, tx)


def two_hosts(seed: int, **link_kw) -> tuple[VirtualNetwork, Host, Host, Link]:
    """Hosts a (10.0.0.1) and b (10.0.0.2) on one link of a seeded network."""
    net = VirtualNetwork(seed=seed)
    a, b = net.host("a"), net.host("b")
    return net, a, b, net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", **link_kw)


def transfer(net: VirtualNetwork, c, s, up: bytes, down: bytes) -> None:
    """``up`` from c to s and ``down`` back, both at once; asserts they arrive intact."""
    got_up, got_down = bytearray(), bytearray()
    sent = [0, 0]

    def pump() -> bool:
        if sent[0] < len(up):
            sent[0] += c.sendmsg(memoryview(up)[sent[0]:sent[0] + 65536])
        if sent[1] < len(down):
            sent[1] += s.sendmsg(memoryview(down)[sent[1]:sent[1] + 8192])
        while s.readable():
            got_up.extend(s.recvmsg(1 << 20))
        while c.readable():
            got_down.extend(c.recvmsg(1 << 20))
        return len(got_up) == len(up) and len(got_down) == len(down)

    assert net.run_until(pump, 600)
    assert bytes(got_up) == up and bytes(got_down) == down


def outcome(net: VirtualNetwork) -> tuple:
    """Every frame on every link with its time, and every host's counters."""
    return ([list(link.capture) for link in net.links],
            {name: h.mib.snapshot() for name, h in net.hosts.items()})


def options_seen(frames: list[tuple[float, bytes]], eth: bool = True) -> dict[str, int]:
    """How many TCP segments among ``frames`` carry SACK blocks / the URG flag / RST."""
    seen = {"sack": 0, "urg": 0, "rst": 0, "ts": 0}
    off = 14 if eth else 0
    for _, f in frames:
        if eth and f[12:14] != b"\x08\x00" or f[off + 9] != 6:
            continue
        th = wire.parse_tcp(f, off + (f[off] & 0xF) * 4)
        seen["sack"] += bool(th.options.sack_blocks)
        seen["ts"] += th.options.ts_val is not None
        seen["urg"] += bool(th.flags & 0x20)
        seen["rst"] += bool(th.flags & TCPHDR_RST)
    return seen


# --- the common case, both link kinds ------------------------------------------------------

@pytest.mark.parametrize("kind", ["ether", "ip"])
def test_lossy_transfer_same_frames_and_counters(rec, kind):
    def scenario():
        net, a, b, _ = two_hosts(
            5, kind=kind,
            impairment=Impairment(loss=0.03, reorder=0.05, duplicate=0.02, seed=1),
            impairment_ba=Impairment(loss=0.03, duplicate=0.02, seed=2))
        c, s = sim_connect(net, a, b, "10.0.0.2")
        rng = random.Random(9)
        transfer(net, c, s, rng.randbytes(400_000), rng.randbytes(120_000))
        c.sendmsg(b"urgent!", MSG_OOB)
        net.run_for(2)
        c2, _ = sim_connect(net, a, b, "10.0.0.2", port=81)
        c2.abort()                       # RST (tcp_send_active_reset, no options)
        c.close()
        s.close()                        # FIN both ways, then TIME_WAIT's ACKs
        net.run_for(130)
        return outcome(net)

    frames, _mibs = rec.compare(scenario)
    seen = options_seen(frames[0], eth=kind == "ether")
    # The scenario did exercise every option and flag the one-call path writes.
    assert seen["sack"] > 10 and seen["ts"] > 300 and seen["urg"] and seen["rst"], seen
    # ... and the one-call path sent (nearly) all of it: only segments over the
    # MTU or before ARP resolution may go the general way, and there are none.
    assert rec.taken > 300 and rec.declined == 0


@pytest.mark.parametrize("close", ["shutdown", "close"])
def test_lossy_transfer_with_the_fin_queued_behind_the_data(rec, close):
    """The sender shuts (or closes) its side as soon as its last byte is
    queued, most of it unsent: the compiled loop sends the rest with the FIN
    on the last data segment, retransmissions and all, the same frames and
    counters as the layered loop (issue 11)."""
    def scenario():
        net, a, b, _ = two_hosts(
            7, impairment=Impairment(loss=0.03, reorder=0.05, duplicate=0.02, seed=3),
            impairment_ba=Impairment(loss=0.03, duplicate=0.02, seed=4))
        c, s = sim_connect(net, a, b, "10.0.0.2")
        up = random.Random(5).randbytes(300_000)
        got = bytearray()
        sent = [0]

        def pump() -> bool:
            if sent[0] < len(up):
                sent[0] += c.sendmsg(memoryview(up)[sent[0]:sent[0] + 65536])
                if sent[0] == len(up):
                    c.shutdown(socket.SHUT_WR) if close == "shutdown" else c.close()
            while s.readable() and (data := s.recvmsg(1 << 20)):
                got.extend(data)
            return s.rcv_eof
        assert net.run_until(pump, 600)
        assert bytes(got) == up
        s.close()
        net.run_for(130)
        return outcome(net)

    with_fin = []
    real = tcp_output._tcp_fast.write_burst

    def counting(*args):
        n = real(*args)
        if args[-1]:
            with_fin.append(n)
        return n

    rec.monkeypatch.setattr(tcp_output._tcp_fast, "write_burst", counting)
    rec.compare(scenario)
    assert rec.taken > 100 and rec.declined == 0
    # the compiled loop did send segments with the FIN queued
    assert sum(with_fin) > 50, with_fin


@pytest.mark.parametrize("reply", [b"", b"a reply"])
def test_a_fin_alone_goes_through_the_compiled_loop(rec, reply):
    """A server's close once its last reply is acknowledged, or with no reply
    at all (accept, the peer's FIN, close: issue 11's connections/s), sends a
    FIN with no data to ride on.  The compiled loop takes it and puts the
    same frames on the wire at the same times, with the same counters, as
    tcp_transmit_skb does; and like Linux's tcp_send_fin skb (no payload:
    __tcp_transmit_skb skips tcp_event_data_sent) it is not data sent:
    lsndtime and the pingpong count stay as they were."""
    def scenario():
        net, a, b, _ = two_hosts(11)
        c, s = sim_connect(net, a, b, "10.0.0.2")
        c.sendmsg(b"a request")
        net.run_for(0.5)
        assert s.recvmsg(100) == b"a request"
        if reply:
            s.sendmsg(reply)
            net.run_for(0.5)
            assert c.recvmsg(100) == reply
        c.shutdown(socket.SHUT_WR)
        net.run_for(0.5)
        before = (s.lsndtime, s.pingpong)
        s.close()
        net.run_for(0.2)
        after = (s.lsndtime, s.pingpong)
        c.close()
        net.run_for(130)
        return outcome(net), before, after

    alone = []
    real = tcp_output._tcp_fast.write_burst

    def counting(*args):
        sk = args[0]
        if args[-1] and sk.snd_nxt == sk.write_seq:
            alone.append(sk)
        return real(*args)

    rec.monkeypatch.setattr(tcp_output._tcp_fast, "write_burst", counting)
    _, before, after = rec.compare(scenario)
    # both FINs (the client's shutdown, the server's close), in the run with the loop on
    assert len(alone) == 2
    assert after == before


@needs_tshark
def test_wireshark_checks_the_one_call_frames(rec, tmp_path):
    """Wireshark's dissector, with checksum validation on, finds every TCP
    segment of a lossy SACK transfer well formed: IP and TCP checksums Good,
    the options where it expects them, the timestamps it parses equal to ours."""
    def scenario():
        net, a, b, link = two_hosts(5, impairment=Impairment(loss=0.05, reorder=0.05, seed=3))
        # (a port no dissector above TCP claims: random bytes on 80 are "malformed HTTP")
        c, s = sim_connect(net, a, b, "10.0.0.2", port=40123)
        transfer(net, c, s, random.Random(1).randbytes(200_000), b"x" * 20_000)
        return link

    link = rec.run(scenario, fast=True)
    assert rec.taken > 100
    path = str(tmp_path / "fast.pcap")
    n = link.write_pcap(path)
    rows = fields(path, "ip.checksum.status", "tcp.checksum.status", "tcp.options.sack_le",
                  "tcp.options.timestamp.tsval", "_ws.expert.severity",
                  display_filter="tcp")
    assert len(rows) > 200 and n >= len(rows)
    assert {(r[0], r[1]) for r in rows} == {("1", "1")}              # all Good
    assert sum(bool(r[2]) for r in rows) > 10 and all(r[3] for r in rows)
    # expert info above "note" would be a malformed packet (PI_ERROR)
    assert not [r for r in rows if any(int(sev) >= 0x00800000 for sev in r[4].split(",") if sev)]


# --- what the one-call path hands back to ip_output ------------------------------------------

def test_unresolved_and_stale_neighbour_fall_back(rec):
    """An idle connection outlives its ARP entry: STALE after the reachable time
    (the first segment then goes out through arp.output, which starts a probe),
    deleted after gc_stale_time (the segment waits in the ARP queue until the
    reply).  Both must behave exactly as before."""
    def scenario():
        net, a, b, _ = two_hosts(6)
        c, s = sim_connect(net, a, b, "10.0.0.2")
        states = []
        for idle in (50.0, 200.0):
            net.run_for(idle)
            n = a.arp.lookup(1, ip_aton("10.0.0.2"))
            states.append(None if n is None else n.state)
            transfer(net, c, s, bytes(range(256)) * 40, b"")
        return outcome(net), states, a.mib["ArpOutRequests"]

    (_, _mibs), states, requests = rec.compare(scenario)
    assert states[0] == 0x04 and states[1] is None     # STALE, then gone
    assert requests >= 2 and rec.declined >= 2 and rec.taken > 10


def test_loopback_falls_back(rec):
    """To one of our own addresses and to 127.0.0.1: the loopback path, nothing
    on the wire.  (Handshake, a pure ACK and the close; data over loopback from
    a user call hits the bug shown by test_loopback_data_from_a_user_call.)"""
    def scenario():
        net, a, _, _ = two_hosts(7)
        states = []
        for addr, port in (("10.0.0.1", 80), ("127.0.0.1", 81)):
            c, s = sim_connect(net, a, a, addr, port)
            tcp_output.tcp_send_ack(c, net.now)
            c.close()
            s.close()
            net.run_for(1)
            states.append((c.state, s.state))
        return outcome(net), states

    (frames, mibs), _ = rec.compare(scenario)
    assert not any(f[12:14] == b"\x08\x00" for _, f in frames[0])   # no IPv4 on the link
    assert mibs["a"]["OutSegs"] >= 14
    assert rec.taken == 0 and rec.declined >= 10


def test_loopback_data_from_a_user_call():
    """TCP to one of our own addresses, sent from a user call: the ACK used to
    be processed inside sendmsg while tcp_write_xmit held a view of the send
    queue (BufferError); now it waits for the loop, like the kernel's backlog."""
    net, a, _, _ = two_hosts(7)
    c, s = sim_connect(net, a, a, "10.0.0.1")
    transfer(net, c, s, bytes(5000), b"")


def test_over_mtu_resyncs_the_mss_and_nothing_is_fragmented(rec):
    """The interface MTU drops under an established connection's MSS: as in
    Linux's tcp_current_mss (dst_mtu != icsk_pmtu_cookie -> tcp_sync_mss) the
    MSS follows the route's MTU, so the DF segments keep fitting: nothing is
    fragmented and the burst path keeps taking them.  (It asserted
    fragmentation while TCP sent without DF, which Linux never does.)"""
    def scenario():
        net, a, b, _ = two_hosts(8)
        c, s = sim_connect(net, a, b, "10.0.0.2")
        a.set_mtu(1, 576)
        transfer(net, c, s, bytes(range(256)) * 100, b"ack me" * 10)
        return outcome(net)

    _, mibs = rec.compare(scenario)
    assert mibs["a"].get("FragCreates", 0) == 0 and mibs["b"].get("ReasmOKs", 0) == 0
    assert rec.taken > 10


def test_no_route_falls_back(rec):
    """With the route gone, segments are lost as before (OutNoRoutes and
    TCPOutNoRoute counted once each), and the connection recovers with it."""
    def scenario():
        net, a, b, _ = two_hosts(9)
        c, s = sim_connect(net, a, b, "10.0.0.2")
        a.remove_route(ip_aton("10.0.0.0"), 24)
        c.sendmsg(b"lost at first" * 100)
        net.run_for(3)
        a.add_route(ip_aton("10.0.0.0"), 24, None, 1)
        transfer(net, c, s, b"", b"")
        net.run_until(lambda: s.readable() == 1300, 60)
        return outcome(net), s.recvmsg(2000)

    (_, mibs), data = rec.compare(scenario)
    assert data == b"lost at first" * 100
    assert mibs["a"]["TCPOutNoRoute"] >= 2
    assert mibs["a"]["OutNoRoutes"] == mibs["a"]["TCPOutNoRoute"]


# --- destinations, one segment at a time ------------------------------------------------------

MAC = bytes.fromhex("020000000002")
GW_MAC = bytes.fromhex("0200000000fe")
PEER_MAC = bytes.fromhex("020000000001")


def one_host(link: str = "ether") -> Host:
    h = Host("h", seed=3, settings=Settings())
    h.debug = True
    h.add_interface("eth0", link=link, mac=MAC if link == "ether" else None)
    h.add_address(1, ip_aton("10.0.0.2"), 24)
    h.add_route(0, 0, ip_aton("10.0.0.254"))
    if link == "ether":
        h.add_static_arp(ip_aton("10.0.0.1"), PEER_MAC)
        h.add_static_arp(ip_aton("10.0.0.254"), GW_MAC)
    h.take_output()
    return h


@pytest.mark.parametrize("link,dst,taken", [
    ("ether", "10.0.0.1", True),        # resolved neighbour on the link
    ("ether", "192.0.2.9", True),       # through the gateway: the gateway's MAC
    ("ether", "10.0.0.77", False),      # unresolved: ARP request, segment queued
    ("ether", "10.0.0.255", False),     # directed broadcast (and its loopback copy)
    ("ether", "224.0.0.9", False),      # multicast
    ("ip", "10.0.0.77", True),          # TUN: no neighbour to resolve
    ("ip", "192.0.2.9", True),
    ("ip", "10.0.0.255", False),        # still a broadcast: the loopback copy
    ("ip", "255.255.255.255", False),
])
@pytest.mark.parametrize("opts", ["none", "ts", "ts+sack", "sack"])
def test_one_segment_per_destination(rec, link, dst, taken, opts):
    ts_val, ts_ecr = (0x01020304, 0x0A0B0C0D) if "ts" in opts else (-1, 0)
    blocks = ((5000, 6000), (7000, 8000)) if "sack" in opts else ()

    def scenario():
        h = one_host(link)
        before = h.mib.snapshot()
        for flags, payload in ((TCPHDR_ACK, b""), (TCPHDR_ACK | 0x08, b"x" * 1400),
                               (TCPHDR_RST | TCPHDR_ACK, b"")):
            tcp_output.tcp_v4_xmit(h, ip_aton("10.0.0.2"), ip_aton(dst), 40000, 80, 2**32 + 17,
                                   99, flags, 1000, ts_val, ts_ecr, blocks, payload, 0)
        return [bytes(f) for _, f in h.take_output()], h.mib.delta(before)

    frames, mib = rec.compare(scenario)
    if taken:
        assert (rec.taken, rec.declined) == (3, 0)
        assert len(frames) == 3 and mib["OutSegs"] == 3 and mib["OutRsts"] == 1
        if link == "ether":
            assert mib["EthOutFrames"] == 3
            assert frames[0][:6] == (PEER_MAC if dst == "10.0.0.1" else GW_MAC)
        else:
            assert frames[0][0] == 0x45 and "EthOutFrames" not in mib
    else:
        # (a broadcast's loopback copy reaches our own TCP, whose answers are
        # local: they are declined too)
        assert rec.taken == 0 and rec.declined >= 3


def test_tcp_v4_send_with_options_record(rec):
    """tcp_v4_send (time-wait and request-sock ACKs, resets) takes the one-call
    path for options a non-SYN segment carries, and the layered one for SYN options."""
    def scenario():
        h = one_host()
        dst = ip_aton("10.0.0.1")
        for opts in (None, wire.TcpOptions(ts_val=5, ts_ecr=6),
                     wire.TcpOptions(sack_blocks=((1, 2),)),
                     wire.TcpOptions(mss=1460, wscale=7, sack_ok=True, ts_val=5, ts_ecr=0)):
            tcp_output.tcp_v4_send(h, ip_aton("10.0.0.2"), dst, 40000, 80, 1, 2, TCPHDR_ACK, 100,
                                   opts, b"hi")
        return [bytes(f) for _, f in h.take_output()], h.mib.snapshot()

    rec.compare(scenario)
    assert (rec.taken, rec.declined) == (3, 0)
