"""Host receive, timers, loopback, wakeups and output, one rule per test.

The contracts are docs/internals.md's ("tcpio.core.host.Host", "Sock
wakeups"): frames in with ``receive``/``receive_batch``, timers with
``poll``, frames out with ``take_output``; a datagram to ourselves is
delivered after the call that sent it, never in the middle of a protocol's
own processing (like the kernel's backlog while a user owns the socket); the
fast receive path (one compiled classification) ends in the same state and
the same MIB counters as the layered path (ip_rcv, ip_local_deliver).
"""

from __future__ import annotations

import errno

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, inject, make_host
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tcpio import _fast
from tcpio.core import host as host_mod
from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

wire = _fast.load("wire")
PROTO = 253         # RFC 3692 experimental: a protocol of the test's own


def ip(s: str) -> int:
    return ip_aton(s)


def eth(pkt, dst=MAC) -> bytes:
    return bytes(Ether(dst=dst, src=PEER_MAC) / pkt)


def udp_in(data: bytes = b"hi", dport: int = 53, **ipf) -> bytes:
    return eth(IP(src=PEER, dst=MY, **ipf) / UDP(sport=1000, dport=dport) / data)


class Recorder:
    """A protocol handler (register_protocol's contract) that logs what it sees
    and runs ``on_rcv`` from inside its rcv."""

    def __init__(self, host: Host, on_rcv=None) -> None:
        self.host = host
        self.log: list[tuple] = []
        self.on_rcv = on_rcv
        self.depth = 0
        self.max_depth = 0

    def rcv(self, iph, payload, now) -> bool:
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)
        data = bytes(payload)
        self.log.append(("rcv", iph.src, iph.dst, data))
        if self.on_rcv is not None:
            self.on_rcv(self, iph, data)
        self.log.append(("done", data))
        self.depth -= 1
        return True

    def err(self, kind, code, code_errno, info, iph, payload) -> None:
        self.log.append(("err", kind, code, code_errno, info, bytes(payload)))

    def send_to_self(self, data: bytes, dst: str = MY) -> None:
        self.host.ip_output(PROTO, None, ip(dst), data)


def test_frames_for_a_missing_or_down_interface_are_counted_and_dropped():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    h.receive_batch(9, [udp_in(b"a"), udp_in(b"b"), udp_in(b"c")], 1.0)
    assert h.mib["InNoInterface"] == 3 and h.mib["InReceives"] == 0
    h.interfaces[1].up = False
    h.receive(1, udp_in(b"d"), 2.0)
    assert h.mib["InNoInterface"] == 4 and sk.recvfrom() is None
    h.interfaces[1].up = True
    h.receive(1, udp_in(b"e"), 3.0)
    assert sk.recvfrom()[0] == b"e" and h.mib["InNoInterface"] == 4


def test_the_host_clock_is_the_last_now_it_was_given():
    """The core never reads a clock: ``host.now`` is the caller's latest time."""
    h = make_host()
    h.receive(1, udp_in(), 7.5)
    assert h.now == 7.5
    h.receive_batch(1, [udp_in(), udp_in()], 8.0)
    assert h.now == 8.0
    h.poll(9.25)
    assert h.now == 9.25


def test_a_batch_is_delivered_in_arrival_order():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    h.receive_batch(1, [udp_in(bytes([i])) for i in range(5)], 1.0)
    assert [sk.recvfrom()[0] for _ in range(5)] == [bytes([i]) for i in range(5)]
    assert h.mib["InReceives"] == 5 and h.mib["InDelivers"] == 5


def test_each_delivered_datagram_counts_one_receive_and_one_delivery():
    """RFC 4293 ipSystemStatsInReceives / InDelivers, fast path or layered:
    once per datagram (clean unicast UDP takes the fast path, one with an IP
    option the layered one)."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    h.receive(1, udp_in(b"fast"), 1.0)
    assert (h.mib["InReceives"], h.mib["InDelivers"]) == (1, 1)
    h.receive(1, eth(IP(src=PEER, dst=MY, options=b"\x01\x01\x01\x01")
                     / UDP(sport=1, dport=53) / b"slow"), 1.0)
    assert (h.mib["InReceives"], h.mib["InDelivers"]) == (2, 2)
    assert [sk.recvfrom()[0] for _ in range(2)] == [b"fast", b"slow"]


# ----- TCP between two hosts: the fast path and its counters --------------------------------

MAC_A, MAC_B = bytes.fromhex("02000000000a"), bytes.fromhex("02000000000b")
A, B = "10.0.0.1", "10.0.0.2"


def pair(**settings) -> tuple[Host, Host]:
    hosts = []
    for name, mac, addr, seed in (("a", MAC_A, A, 1), ("b", MAC_B, B, 2)):
        h = Host(name, seed=seed, settings=Settings(disable_ipv6=1, **settings))
        h.debug = True
        h.add_interface("eth0", mac=mac)
        h.add_address(1, ip(addr), 24)
        hosts.append(h)
    a, b = hosts
    a.add_static_arp(ip(B), MAC_B)
    b.add_static_arp(ip(A), MAC_A)
    a.take_output()
    b.take_output()
    return a, b


def pump(a: Host, b: Host, now: float, got: dict) -> None:
    """Run both hosts' timers at ``now`` and move frames both ways (one batch
    per direction per round) until quiet."""
    a.poll(now)
    b.poll(now)
    while True:
        moved = False
        for src, dst in ((a, b), (b, a)):
            frames = [f for _, f in src.take_output()]
            if frames:
                dst.receive_batch(1, frames, now)
                got[dst.name] = got.get(dst.name, 0) + len(frames)
                moved = True
        if not moved:
            return


def connected(a: Host, b: Host, got: dict):
    lst = b.tcp.socket()
    lst.bind(0, 80)
    lst.listen(4)
    cli = a.tcp.socket()
    with pytest.raises(BlockingIOError):
        cli.connect(ip(B), 80)
    pump(a, b, 0.0, got)
    srv = lst.accept()
    assert cli.state == TCP_ESTABLISHED and srv is not None
    return cli, srv


def test_fast_path_segments_are_counted_like_layered_ones(monkeypatch):
    """A segment the TCP fast path takes whole inside rx_classify counts what
    ip_rcv + ip_local_deliver + tcp_v4_rcv would: InReceives, InDelivers,
    InSegs, one each; so the totals equal the frames received."""
    taken = []

    def counting(*args):
        rec = _fast.load("rx").rx_classify(*args)
        taken.append(rec is True)
        return rec

    monkeypatch.setattr(host_mod, "rx_classify", counting)
    a, b = pair()
    got: dict = {}
    cli, srv = connected(a, b, got)
    now = 0.0
    for i in range(20):
        cli.sendmsg(bytes([i]) * 100)
        now += 0.01
        pump(a, b, now, got)
    for _ in range(50):                          # delayed ACKs, Nagle: let it settle
        now += 0.05
        pump(a, b, now, got)
    assert sum(taken) >= 10                       # the fast path did run
    data = b""
    while (chunk := srv.recvmsg(1 << 16)):
        data += chunk
    assert data == b"".join(bytes([i]) * 100 for i in range(20))
    for h in (a, b):
        assert h.mib["InReceives"] == got[h.name]
        assert h.mib["InDelivers"] == got[h.name]
        assert h.mib["InSegs"] == got[h.name]


def test_a_tcp_handler_registered_later_takes_over_at_the_next_frame():
    """register_protocol(6, ...) replaces TCP for every later frame, the fast
    path included; a handler without rcv_verified gets every segment through
    rcv, unverified (the contract: rcv_verified is optional)."""
    a, b = pair()
    got: dict = {}
    cli, srv = connected(a, b, got)
    sink = Recorder(b)
    b.register_protocol(6, sink)
    cli.sendmsg(b"after")
    pump(a, b, 0.0, got)
    assert [e[3][-5:] for e in sink.log if e[0] == "rcv"] == [b"after"]
    assert srv.recvmsg(100) == b""


class VerifiedSink(Recorder):
    def rcv_verified(self, iph, payload, now) -> bool:
        self.log.append(("verified", bytes(payload)))
        return True


def test_a_tcp_handler_with_rcv_verified_gets_good_segments_there_and_bad_ones_in_rcv():
    """docs/internals.md: the host verifies the checksum for a handler that has
    rcv_verified (CHECKSUM_UNNECESSARY); a segment failing it goes to rcv."""
    h = make_host()
    sink = VerifiedSink(h)
    h.register_protocol(6, sink)
    good = IP(src=PEER, dst=MY) / TCP(sport=1, dport=2, flags="A") / b"good"
    bad = IP(src=PEER, dst=MY) / TCP(sport=1, dport=2, flags="A", chksum=0x1234) / b"bad!"
    h.receive(1, eth(good), 1.0)
    h.receive(1, eth(bad), 1.0)
    assert [(e[0], e[-1][-4:]) for e in sink.log if e[0] in ("verified", "rcv")] == [
        ("verified", b"good"), ("rcv", b"bad!")]
    plain = Recorder(h)
    h.register_protocol(6, plain)
    h.receive(1, eth(good), 2.0)
    assert [e[0] for e in plain.log] == ["rcv", "done"]


def test_a_datagram_for_an_unknown_protocol_gets_protocol_unreachable():
    """ip_local_deliver: no handler -> InUnknownProtos + ICMP protocol
    unreachable, also when the fast classifier recognised the datagram (UDP
    or TCP with its handler removed)."""
    h = make_host()
    del h.protocols[17]
    (err,) = inject(h, IP(src=PEER, dst=MY) / UDP(sport=1, dport=53) / b"x")
    assert (err[ICMP].type, err[ICMP].code) == (3, 2)
    assert h.mib["InUnknownProtos"] == 1 and h.mib["InDelivers"] == 0
    assert h.mib["InReceives"] == 1


# ----- bare IP links (TUN) ---------------------------------------------------------------

def tun_host() -> Host:  # an "ip" link: no link-local address (addrconf_dev_config)
    h = Host("t", seed=1)
    h.debug = True
    h.add_interface("tun0", link="ip")
    h.add_address(1, ip(MY), 24)
    return h


def test_on_an_ip_link_ipv6_goes_to_ipv6_rcv_and_other_versions_are_header_errors():
    """A TUN carries both families: version 6 is ipv6_rcv's (here all zeros: a
    hop-by-hop header with payload length 0, a jumbogram: Ip6InHdrErrors, not
    InHdrErrors); any other version is ip_rcv's
    InHdrErrors; an empty frame too."""
    h = tun_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    good = bytes(IP(src=PEER, dst=MY) / UDP(sport=1, dport=53) / b"v4")
    h.receive(1, bytes([0x60]) + bytes(39), 1.0)
    assert h.mib["Ip6InReceives"] == 1 and h.mib["Ip6InHdrErrors"] == 1
    assert h.mib["InHdrErrors"] == 0
    for version in (5, 7):
        h.receive(1, bytes([version << 4 | 5]) + good[1:], 1.0)
    h.receive(1, b"", 1.0)
    assert h.mib["Ip6InReceives"] == 1 and h.mib["InHdrErrors"] == 3
    h.receive(1, good, 1.0)
    with_opt = bytes(IP(src=PEER, dst=MY, options=b"\x01" * 4) / UDP(sport=1, dport=53) / b"o")
    h.receive(1, with_opt, 1.0)
    assert [sk.recvfrom()[0] for _ in range(2)] == [b"v4", b"o"]


# ----- output -------------------------------------------------------------------------------

def test_take_output_hands_over_each_frame_once_in_order():
    h = make_host()
    sk = h.udp.socket()
    for i in range(3):
        sk.sendto(bytes([i]), ip(PEER), 9)
    out = h.take_output()
    assert [(i, Ether(f)[Raw].load) for i, f in out] == [(1, bytes([n])) for n in range(3)]
    assert h.take_output() == []


def test_datagrams_leave_with_the_configured_default_ttl_and_tos_zero():
    """net.ipv4.ip_default_ttl for datagrams that do not name a TTL; TOS 0
    unless asked."""
    h = make_host(ip_default_ttl=77)
    h.ip_output(PROTO, None, ip(PEER), b"x")
    h.ip_output(PROTO, None, ip(PEER), b"y", ttl=3, tos=0x10)
    (f1, f2) = [Ether(f)[IP] for _, f in h.take_output()]
    assert (f1.ttl, f1.tos, f1.src) == (77, 0, MY)
    assert (f2.ttl, f2.tos) == (3, 0x10)


def test_icmp_send_and_local_error_default_to_no_extra_information():
    """host.icmp_send(iph, payload, type, code, info=0): a parameter problem
    without a pointer points at octet 0; ip_local_error without info reports 0
    to the protocol's err handler."""
    h = make_host()
    raw = bytes(IP(src=PEER, dst=MY, proto=PROTO) / b"payload!")
    h.icmp_send(wire.parse_ipv4(raw), memoryview(raw)[20:], 12, 0)
    (err,) = [Ether(f) for _, f in h.take_output()]
    assert (err[ICMP].type, err[ICMP].code, err[ICMP].ptr) == (12, 0, 0)
    assert err[IPerror].proto == PROTO
    rec = Recorder(h)
    h.register_protocol(PROTO, rec)
    mine = bytes(IP(src=MY, dst=PEER, proto=PROTO) / b"mine")
    h.ip_local_error(mine, 3, 4)
    assert rec.log == [("err", 3, 4, errno.EMSGSIZE, 0, b"mine")]


# ----- wakeups ------------------------------------------------------------------------------

def test_wakeups_are_deduplicated_kept_in_order_and_taken_once():
    h = make_host()
    a, b, c = object(), object(), object()
    assert h.take_wakeups() == []
    for sk in (b, a, b, c, a):
        h.schedule_wakeup(sk)
    assert h.take_wakeups() == [b, a, c]
    assert h.take_wakeups() == []
    h.schedule_wakeup(c)
    assert h.take_wakeups() == [c]


# ----- timers -------------------------------------------------------------------------------

def test_poll_runs_exactly_the_timers_that_are_due():
    h = make_host()
    fired = []
    t1 = h.timers.timer(lambda now: fired.append(("t1", now)))
    t2 = h.timers.timer(lambda now: fired.append(("t2", now)))
    assert h.next_deadline() is None
    t1.arm(5.0)
    t2.arm(3.0)
    assert h.next_deadline() == 3.0
    h.poll(2.999)
    assert fired == []
    h.poll(4.0)
    assert fired == [("t2", 4.0)] and h.next_deadline() == 5.0
    h.poll(5.0)
    assert fired == [("t2", 4.0), ("t1", 5.0)] and h.next_deadline() is None


# ----- loopback: after the current call, never inside it -------------------------------------

def test_a_datagram_to_ourselves_from_a_user_call_arrives_before_the_call_returns():
    """From a user call (nothing else in progress) delivery is immediate, also
    after the host has processed frames and run timers."""
    h = make_host()
    rec = Recorder(h)
    h.register_protocol(PROTO, rec)
    rec.send_to_self(b"one")
    assert rec.log[-2:] == [("rcv", ip(MY), ip(MY), b"one"), ("done", b"one")]
    h.receive(1, udp_in(), 1.0)
    assert [Ether(f)[ICMP].type for _, f in h.take_output()] == [3]    # nobody on 53
    rec.send_to_self(b"two")
    assert rec.log[-1] == ("done", b"two")
    h.poll(2.0)
    rec.send_to_self(b"three")
    assert rec.log[-1] == ("done", b"three")
    assert h.take_output() == []


def test_a_datagram_to_ourselves_from_frame_processing_arrives_after_that_frame():
    """No re-entry into a protocol mid-segment: what a handler sends to us
    while handling a frame is delivered when the frame is done, still within
    the same receive call."""
    h = make_host()
    rec = Recorder(h, on_rcv=lambda r, iph, data: r.send_to_self(b"echo:" + data)
                   if not data.startswith(b"echo:") else None)
    h.register_protocol(PROTO, rec)
    h.receive(1, eth(IP(src=PEER, dst=MY, proto=PROTO) / b"wire"), 1.0)
    assert rec.log == [("rcv", ip(PEER), ip(MY), b"wire"), ("done", b"wire"),
                       ("rcv", ip(MY), ip(MY), b"echo:wire"), ("done", b"echo:wire")]
    assert rec.max_depth == 1


def test_a_datagram_to_ourselves_from_a_timer_arrives_after_the_timer():
    h = make_host()
    rec = Recorder(h)
    h.register_protocol(PROTO, rec)
    order = []

    def fire(now):
        rec.send_to_self(b"tick")
        order.append(len(rec.log))

    h.timers.timer(fire).arm(1.0)
    h.poll(1.0)
    assert order == [0]
    assert rec.log == [("rcv", ip(MY), ip(MY), b"tick"), ("done", b"tick")]


def test_loopback_deliveries_run_one_after_another_not_nested():
    """A protocol answering itself on loopback gets each answer after the
    current delivery, one level deep."""
    h = make_host()

    def again(r, iph, data):
        if len(data) < 5:
            r.send_to_self(data + b"+")

    rec = Recorder(h, on_rcv=again)
    h.register_protocol(PROTO, rec)
    rec.send_to_self(b"a")
    assert [e[1] for e in rec.log if e[0] == "done"] == [b"a", b"a+", b"a++", b"a+++",
                                                        b"a++++"]
    assert rec.max_depth == 1


def test_a_protocol_answering_itself_forever_is_cut_off_after_10000_deliveries():
    h = make_host()
    rec = Recorder(h, on_rcv=lambda r, iph, data: r.send_to_self(data))
    h.register_protocol(PROTO, rec)
    rec.send_to_self(b"loop")
    assert sum(e[0] == "rcv" for e in rec.log) == 10000
    assert h.mib["LoopbackDrops"] == 1
    rec.on_rcv = None
    rec.send_to_self(b"later")           # the queue was emptied: normal again
    assert rec.log[-1] == ("done", b"later")


def test_a_held_loopback_is_delivered_on_release():
    """defer_loopback / release_loopback: a user call (TCP over 127.0.0.1) holds
    deliveries to itself until it is done; inside frame or timer processing
    the hold is refused, and releasing a refused hold changes nothing."""
    h = make_host()
    rec = Recorder(h)
    h.register_protocol(PROTO, rec)
    held = h.defer_loopback()
    assert held is True
    rec.send_to_self(b"held")
    assert rec.log == []
    assert h.defer_loopback() is False      # already held
    h.release_loopback(False)
    rec.send_to_self(b"still")
    assert rec.log == []
    h.release_loopback(held)
    assert [e[1] for e in rec.log if e[0] == "done"] == [b"held", b"still"]
    rec.send_to_self(b"free")
    assert rec.log[-1] == ("done", b"free")


def test_loopback_to_127_comes_from_127_0_0_1():
    """``ip route get 127.0.0.5``: local, dev lo, src 127.0.0.1."""
    h = make_host()
    srv, cli = h.udp.socket(), h.udp.socket()
    srv.bind(0, 7)
    cli.sendto(b"lo", ip("127.0.0.5"), 7)
    data, (src, _) = srv.recvfrom()
    assert data == b"lo" and src == ip("127.0.0.1")
    assert cli.getsockname()[0] in (0, ip("127.0.0.1"))
