"""Random and mutated frames never raise out of Host.receive, and are counted.

The hosts run with ``debug = True``: the safety net that turns an internal
exception into a CoreExceptions counter is off, so any bug fails the test.
"""

from __future__ import annotations

from hostutil import MAC, MY, PEER, PEER_MAC
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, IPOption_NOP, fragment
from scapy.layers.l2 import ARP, Ether

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings


def make_host(link: str = "ether") -> Host:
    h = Host("fuzz", seed=1, settings=Settings(ipfrag_high_thresh=32 * 1024))
    h.debug = True
    h.add_interface("if0", link=link, mac=MAC if link == "ether" else None)
    h.add_address(1, ip_aton(MY), 24)
    if link == "ether":
        h.add_static_arp(ip_aton(PEER), PEER_MAC)
    sk = h.udp.socket()
    sk.bind(0, 53)
    sk.connect(ip_aton(PEER), 1000)
    h.take_output()
    return h


def _eth(pkt) -> bytes:
    return bytes(Ether(dst=MAC, src=PEER_MAC) / pkt)


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
    if later >= h.settings.ipfrag_time:
        assert len(h.frags) == 0          # every queue timed out


@FUZZ
@given(st.lists(mutated(), min_size=1, max_size=12))
def test_raw_ip_link_never_raises(frames):
    h = make_host(link="ip")
    for f in frames:
        h.receive(1, f[14:], 0.0)       # the same datagrams without Ethernet (TUN)
    for _, frame in h.take_output():
        assert frame[0] >> 4 == 4


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
