"""The transmit-path builder (tcpio._fast.tx), both twins, and the host's use of it.

scapy is the oracle: it dissects what we build and recomputes the checksums.
The host's one-copy path (resolved neighbour) must put on the wire exactly
the bytes the layered path (IP packet, then ether_xmit) puts there.
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture, twin_pair
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton, ip_ntoa
from tcpio.core.host import Host
from tcpio.core.settings import Settings

HYPO = settings(max_examples=200, deadline=None, derandomize=True, database=None)
MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")


tx = twin_fixture("tx", "tx")


def rechecked(pkt):
    """scapy's own checksums for the same packet: delete ours and rebuild."""
    copy = pkt.copy()
    del copy[IP].chksum
    return copy.__class__(bytes(copy))


@pytest.mark.parametrize("size", [0, 1, 5, 26, 27, 100, 1480])
def test_ethernet_frame_matches_scapy(tx, size):
    payload = bytes(range(256)) * 6
    payload = payload[:size]
    frame = tx.ip_build(PEER_MAC, MAC, 17, ip_aton("10.0.0.2"), ip_aton("10.0.0.1"), 0x1234,
                        63, 0x10, True, False, 0, payload)
    pkt = Ether(frame)
    assert (pkt.dst, pkt.src, pkt.type) == ("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800)
    ip = pkt[IP]
    assert (ip.version, ip.ihl, ip.tos, ip.len, ip.id, ip.flags, ip.frag, ip.ttl, ip.proto) == \
        (4, 5, 0x10, 20 + size, 0x1234, 2, 0, 63, 17)
    assert (ip.src, ip.dst) == ("10.0.0.2", "10.0.0.1")
    assert ip.chksum == rechecked(pkt)[IP].chksum
    assert frame[34:34 + size] == payload
    # Padded with zeros to the 60-byte minimum, never beyond what is needed.
    assert len(frame) == max(60, 34 + size) and frame[34 + size:] == bytes(len(frame) - 34 - size)


def test_bare_packet_and_fragment_fields(tx):
    packet = tx.ip_build(None, None, 6, 1, 2, 7, 64, 0, False, True, 1480, b"x" * 8)
    ip = IP(packet)
    assert len(packet) == 28 and ip.flags == 1 and ip.frag * 8 == 1480
    assert (ip.id, ip.ttl, ip.proto, ip.src, ip.dst) == (7, 64, 6, "0.0.0.1", "0.0.0.2")
    assert ip.chksum == rechecked(ip)[IP].chksum


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_payload_buffer_types(tx, kind):
    ref = tx.ip_build(PEER_MAC, MAC, 17, 1, 2, 3, 64, 0, False, False, 0, b"abc" * 30)
    assert tx.ip_build(PEER_MAC, MAC, 17, 1, 2, 3, 64, 0, False, False, 0,
                       kind(b"abc" * 30)) == ref


@pytest.mark.parametrize("field,value", [
    ("proto", 256), ("ttl", -1), ("tos", 300), ("ident", 0x10000), ("src", 1 << 32),
    ("frag_offset", 3), ("frag_offset", 0x10000), ("payload", bytes(65516)),
    ("dst_mac", b"\x01" * 5),
])
def test_bad_arguments_raise_value_error(tx, field, value):
    call = {"dst_mac": PEER_MAC, "src_mac": MAC, "proto": 17, "src": 1, "dst": 2, "ident": 0,
            "ttl": 64, "tos": 0, "df": False, "mf": False, "frag_offset": 0, "payload": b""}
    call[field] = value
    with pytest.raises(ValueError):
        tx.ip_build(*call.values())


@HYPO
@given(eth=st.booleans(), proto=st.integers(0, 255), src=st.integers(0, 2**32 - 1),
       dst=st.integers(0, 2**32 - 1), ident=st.integers(0, 0xFFFF), ttl=st.integers(0, 255),
       tos=st.integers(0, 255), df=st.booleans(), mf=st.booleans(),
       frag=st.integers(0, 0x1FFF), payload=st.binary(max_size=120))
def test_twins_agree(eth, proto, src, dst, ident, ttl, tos, df, mf, frag, payload):
    pure, compiled = twin_pair("tx")
    macs = (PEER_MAC, MAC) if eth else (None, None)
    args = (*macs, proto, src, dst, ident, ttl, tos, df, mf, frag * 8, payload)
    assert pure.ip_build(*args) == compiled.ip_build(*args)


# ----- the host: one-copy path == layered path ------------------------------------------

def make_host() -> Host:
    h = Host("h", seed=3, settings=Settings())
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, ip_aton("10.0.0.2"), 24)
    h.add_route(0, 0, ip_aton("10.0.0.254"))
    h.add_static_arp(ip_aton("10.0.0.1"), PEER_MAC)
    h.add_static_arp(ip_aton("10.0.0.254"), bytes.fromhex("0200000000fe"))
    h.take_output()
    return h


def send_all(layered: bool) -> tuple[list, dict]:
    h = make_host()
    hits = []
    real = h.arp.hh_lookup

    def hh_lookup(ifindex, nexthop):
        mac = None if layered else real(ifindex, nexthop)   # layered: always ask ARP
        hits.append(mac is not None)
        return mac

    h.arp.hh_lookup = hh_lookup
    sk = h.udp.socket()
    sk.bind(0, 4000)
    sk.broadcast = True
    out = []
    for dst in ("10.0.0.1", "192.0.2.9", "10.0.0.255", "10.0.0.77"):
        for size in (0, 10, 1472, 3000):
            sk.sendto((b"%d," % size) * (size // 5) + bytes(size % 5), ip_aton(dst), 53)
            out.extend(bytes(f) for _, f in h.take_output())
    assert any(hits) != layered          # the one-copy path ran (or, layered, never did)
    return out, h.mib.snapshot()


def test_host_frames_identical_to_layered_path():
    fast, layered = send_all(False), send_all(True)
    assert fast == layered
    frames, mib = fast
    assert mib["ArpOutRequests"] >= 1           # 10.0.0.77: unresolved, queued
    dissected = [Ether(f) for f in frames]
    udp_frames = [p for p in dissected if UDP in p]
    assert {ip_ntoa(ip_aton(p[IP].dst)) for p in udp_frames} == \
        {"10.0.0.1", "192.0.2.9", "10.0.0.255"}
    for p in udp_frames:
        assert p[IP].chksum == rechecked(p)[IP].chksum
    gw = [p for p in udp_frames if p[IP].dst == "192.0.2.9"]
    assert gw and all(p.dst == "02:00:00:00:00:fe" for p in gw)
