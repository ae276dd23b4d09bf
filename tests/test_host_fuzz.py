"""Random and mutated frames never raise out of Host.receive, and are counted.

The hosts run with ``debug = True``: the safety net that turns an internal
exception into a CoreExceptions counter is off, so any bug fails the test.
"""

from __future__ import annotations

from hostutil import MAC, MY, PEER, PEER_MAC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, fragment
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import ARP, Ether

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.host import Host
from tcpio.core.in_h import AF_INET6
from tcpio.core.settings import Settings


def make_host(link: str = "ether") -> Host:
    h = Host("fuzz", seed=1, settings=Settings(ipfrag_high_thresh=32 * 1024,
                                               ip6frag_high_thresh=32 * 1024))
    h.debug = True
    h.add_interface("if0", link=link, mac=MAC if link == "ether" else None)
    h.add_address(1, ip_aton(MY), 24)
    h.add_address6(1, ip6_aton(MY6), 64, nodad=True)
    if link == "ether":
        h.add_static_arp(ip_aton(PEER), PEER_MAC)
        # the peer resolved by ND too, so IPv6 answers leave at once
        h.ndisc._learn(1, ip6_aton(PEER6), PEER_MAC, h.now)
        h.ndisc.set_reachable(h.ndisc.lookup(1, ip6_aton(PEER6)), h.now)
    sk = h.udp.socket()
    sk.bind(0, 53)
    sk.connect(ip_aton(PEER), 1000)
    # IPv6 and dual-stack sockets: UDP over IPv6 connected to the peer, and a
    # `::` TCP listener that IPv4 SYNs reach too (IPV6_V6ONLY off)
    sk6 = h.udp.socket(AF_INET6)
    sk6.bind(0, 5353)
    sk6.connect(ip6_aton(PEER6), 1000)
    lst = h.tcp.socket(AF_INET6)
    lst.bind(0, 80)
    lst.listen(8)
    h.take_output()
    return h


def _eth(pkt) -> bytes:
    return bytes(Ether(dst=MAC, src=PEER_MAC) / pkt)


MY6, PEER6 = "fd00::2", "fd00::1"
_PEER_LL = PEER_MAC.hex(":")


SEEDS = [
    _eth(IP(src=PEER, dst=MY) / ICMP(type=8) / b"ping"),
    _eth(IP(src=PEER, dst=MY) / UDP(sport=1000, dport=53) / b"udp"),
    _eth(IP(src=PEER, dst=MY, options=[IPOption_NOP()] * 4) / UDP(dport=99) / b"opt"),
    _eth(IP(src=PEER, dst=MY) / ICMP(type=3, code=3) /
         bytes(IP(src=MY, dst=PEER) / UDP(sport=53, dport=1000))),
    _eth(IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=576) /
         bytes(IP(src=MY, dst=PEER, proto=6) / (b"\0" * 20))),
    bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP(psrc=PEER, pdst=MY,
                                                              hwsrc=PEER_MAC)),
    bytes(Ether(dst=MAC, src=PEER_MAC) / ARP(op=2, psrc=PEER, pdst=MY, hwsrc=PEER_MAC)),
    *[_eth(f) for f in fragment(IP(src=PEER, dst=MY, id=7) / UDP(dport=53) / (b"F" * 3000),
                                fragsize=1000)],
    # IPv6: echo through every extension header, ND, an error quoting us, fragments
    _eth(IPv6(src=PEER6, dst=MY6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
         / IPv6ExtHdrRouting(segleft=0) / ICMPv6EchoRequest(data=b"ping6")),
    bytes(Ether(dst="33:33:ff:00:00:02", src=PEER_MAC)
          / IPv6(src=PEER6, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=MY6)
          / ICMPv6NDOptSrcLLAddr(lladdr=_PEER_LL)),
    _eth(IPv6(src=PEER6, dst=MY6, hlim=255) / ICMPv6ND_NA(tgt=PEER6, S=1, O=1)
         / ICMPv6NDOptDstLLAddr(lladdr=_PEER_LL)),
    _eth(IPv6(src=PEER6, dst=MY6) / ICMPv6PacketTooBig(mtu=1280)
         / bytes(IPv6(src=MY6, dst=PEER6) / ICMPv6EchoRequest(data=b"q" * 64))),
    *[_eth(f) for f in fragment6(IPv6(src=PEER6, dst=MY6) / IPv6ExtHdrFragment(id=9)
                                 / ICMPv6EchoRequest(data=b"G" * 3000), 1280)],
    # TCP and UDP over both families: SYNs with options to the dual-stack
    # listener, data and a FIN, UDP to the IPv6 socket, an ICMPv6 error
    # quoting it, a Packet Too Big quoting a TCP segment of ours
    _eth(IP(src=PEER, dst=MY) / TCP(sport=4000, dport=80, flags="S", seq=7,
                                    options=[("MSS", 1460), ("SAckOK", b""),
                                             ("Timestamp", (1, 0)), ("WScale", 7)])),
    _eth(IPv6(src=PEER6, dst=MY6) / TCP(sport=4001, dport=80, flags="S", seq=9,
                                        options=[("MSS", 1440), ("SAckOK", b""),
                                                 ("Timestamp", (5, 0)), ("WScale", 2)])),
    _eth(IPv6(src=PEER6, dst=MY6) / TCP(sport=4001, dport=80, flags="A", seq=10, ack=1)),
    _eth(IPv6(src=PEER6, dst=MY6) / TCP(sport=4001, dport=80, flags="PA", seq=10, ack=1)
         / b"GET / HTTP/1.0\r\n\r\n"),
    _eth(IPv6(src=PEER6, dst=MY6) / TCP(sport=4001, dport=80, flags="FA", seq=28, ack=1)),
    _eth(IPv6(src=PEER6, dst=MY6) / UDP(sport=1000, dport=5353) / b"udp6"),
    _eth(IPv6(src=PEER6, dst=MY6) / ICMPv6DestUnreach(code=4)
         / bytes(IPv6(src=MY6, dst=PEER6) / UDP(sport=5353, dport=1000))),
    _eth(IPv6(src=PEER6, dst=MY6) / ICMPv6PacketTooBig(mtu=1280)
         / bytes(IPv6(src=MY6, dst=PEER6) / TCP(sport=80, dport=4001, flags="A"))),
]


@st.composite
def mutated(draw) -> bytes:
    frame = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "extend", "zero_csum"]))
        if op == "flip" and frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and frame:
            i = draw(st.integers(0, len(frame) - 1))
            frame[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del frame[draw(st.integers(0, len(frame))):]
        elif op == "extend":
            frame += draw(st.binary(max_size=64))
        elif op == "zero_csum" and len(frame) > 25:
            frame[24:26] = b"\0\0"     # IP header checksum
    return bytes(frame)


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_random_bytes_never_raise(frames):
    h = make_host()
    for i, f in enumerate(frames):
        h.receive(1, f, float(i))
        h.poll(float(i))
    h.take_output()
    assert h.mib["CoreExceptions"] == 0


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=12), st.floats(0, 40))
def test_mutated_frames_never_raise_and_state_stays_bounded(frames, later):
    h = make_host()
    for f in frames:
        h.receive(1, f, 0.0)
    h.poll(later)
    for _, frame in h.take_output():
        assert 14 <= len(frame) <= 1514
    assert h.frags.mem <= h.settings.ipfrag_high_thresh
    assert h.frags6.mem <= h.settings.ip6frag_high_thresh
    if later >= h.settings.ipfrag_time:
        assert len(h.frags) == 0          # every queue timed out
    if later >= h.settings.ip6frag_time:
        assert len(h.frags6) == 0


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=12))
def test_raw_ip_link_never_raises(frames):
    h = make_host(link="ip")
    for f in frames:
        h.receive(1, f[14:], 0.0)       # the same datagrams without Ethernet (TUN)
    for _, frame in h.take_output():
        assert frame[0] >> 4 in (4, 6)


def test_every_frame_is_accounted_for():
    """Each received IP datagram ends in exactly one IP-level outcome counter."""
    h = make_host()
    frames = [
        SEEDS[0],                                   # delivered
        SEEDS[0][:30],                              # InHdrErrors
        SEEDS[0][:14] + b"\x45\x00\xff\xff" + SEEDS[0][18:],   # truncated (bad csum first)
        _eth(IP(src=PEER, dst="10.0.0.99") / UDP()),           # InAddrErrors
        _eth(IP(src=PEER, dst=MY, proto=99) / b"x"),           # unknown proto
    ]
    for f in frames:
        h.receive(1, f, 0.0)
    m = h.mib
    outcomes = (m["InDelivers"] + m["InHdrErrors"] + m["InAddrErrors"] + m["InTruncatedPkts"]
                + m["InUnknownProtos"])
    assert m["InReceives"] == 5 == outcomes


def test_every_ipv6_datagram_is_accounted_for():
    """Each received IPv6 datagram ends in exactly one Ip6 outcome counter
    (or a queued fragment)."""
    h = make_host()
    frames = [
        _eth(IPv6(src=PEER6, dst=MY6) / ICMPv6EchoRequest()),           # delivered
        _eth(IPv6(src=PEER6, dst=MY6) / ICMPv6EchoRequest())[:50],      # header error
        _eth(IPv6(src=PEER6, dst=MY6, plen=200) / ICMPv6EchoRequest()), # truncated
        _eth(IPv6(src=PEER6, dst="fd00::99") / ICMPv6EchoRequest()),    # address error
        _eth(IPv6(src=PEER6, dst=MY6, nh=253) / b"x"),                  # unknown protocol
    ]
    for f in frames:
        h.receive(1, f, 0.0)
    m = h.mib
    outcomes = (m["Ip6InDelivers"] + m["Ip6InHdrErrors"] + m["Ip6InAddrErrors"]
                + m["Ip6InTruncatedPkts"] + m["Ip6InUnknownProtos"] + m["Ip6InDiscards"])
    assert m["Ip6InReceives"] == 5 == outcomes
