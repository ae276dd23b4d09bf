"""The transmit-path builders (tcpio._fast.tx), both twins, and the host's use of them.

scapy is the oracle: it dissects what we build and recomputes the checksums.
The host's one-copy path (resolved neighbour) must put on the wire exactly
the bytes the layered path (IP packet, then ether_xmit) puts there; the
one-call TCP frame (tcp_frame) exactly what wire.build_tcp + ip_build put
there (tests/tcp/test_tx_fast_path.py checks the host's use of it).
"""

from __future__ import annotations

import array

import pytest
from conftest import built_twins, twin_fixture, twin_pair
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton, ip_ntoa
from tcpio.core.host import Host
from tcpio.core.settings import Settings

HYPO = settings(max_examples=200, deadline=None, derandomize=True, database=None)
MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")


tx = twin_fixture("tx", "tx")
wire = twin_fixture("wire", "wire")


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


# ----- tcp_frame: one TCP segment, Ethernet to payload, in one call -----------------------

SRC, DST = ip_aton("10.0.0.2"), ip_aton("192.0.2.7")


def tcp_args(**kw) -> dict:
    """tcp_frame's arguments, in order, with ordinary values unless given."""
    call = {"dst_mac": PEER_MAC, "src_mac": MAC, "src": SRC, "dst": DST, "ident": 0x1234,
            "ttl": 64, "sport": 40000, "dport": 80, "seq": 1000, "ack": 2000,
            "flags": 0x18, "window": 502, "ts_val": 7, "ts_ecr": 9, "sack_blocks": (),
            "payload": b"", "urg_ptr": 0}
    assert set(kw) <= set(call)
    call.update(kw)
    return call


def layered(w, ip_build, a: dict) -> bytes:
    """The same segment the layered way: wire.build_tcp, then ip_build (TOS 0, DF)."""
    opts = None
    if a["ts_val"] != -1 or a["sack_blocks"]:
        ts = a["ts_val"] != -1
        opts = w.TcpOptions(sack_blocks=a["sack_blocks"], ts_val=a["ts_val"] if ts else None,
                            ts_ecr=a["ts_ecr"] if ts else None)
    seg = w.build_tcp(a["src"], a["dst"], a["sport"], a["dport"], a["seq"], a["ack"],
                      a["flags"], a["window"], opts, a["payload"], a["urg_ptr"])
    return ip_build(a["dst_mac"], a["src_mac"], 6, a["src"], a["dst"], a["ident"], a["ttl"],
                    0, True, False, 0, seg)


def dissect(frame: bytes, eth: bool = True):
    pkt = Ether(frame) if eth else IP(frame)
    again = pkt.copy()
    del again[IP].chksum
    del again[TCP].chksum
    again = again.__class__(bytes(again))     # scapy's own checksums for the same packet
    assert pkt[IP].chksum == again[IP].chksum
    assert pkt[TCP].chksum == again[TCP].chksum
    return pkt


@pytest.mark.parametrize("ts,blocks,size", [
    (True, (), 1448), (True, (), 0), (False, (), 0), (False, (), 5), (True, ((5, 9),), 100),
    (True, ((1, 2), (3, 4), (0xFFFFFFF0, 0xFFFFFFFF)), 1),
    (False, ((1, 2), (3, 4), (5, 6), (7, 8)), 26),
])
def test_tcp_frame_dissected_by_scapy(tx, ts, blocks, size):
    payload = (bytes(range(256)) * 6)[:size]
    frame = tx.tcp_frame(*tcp_args(ts_val=0xDEADBEEF if ts else -1, ts_ecr=0x0BADCAFE,
                                   sack_blocks=blocks, payload=payload, urg_ptr=3,
                                   flags=0x38).values())
    pkt = dissect(frame)
    assert (pkt.dst, pkt.src, pkt.type) == ("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800)
    ip, th = pkt[IP], pkt[TCP]
    olen = (12 if ts else 0) + (4 + 8 * len(blocks) if blocks else 0)
    # What ip_output gives a TCP segment: TOS 0, DF (Linux's IP_PMTUDISC_WANT), not a fragment.
    assert (ip.version, ip.ihl, ip.tos, ip.len, ip.id, ip.flags, ip.frag, ip.ttl, ip.proto) == \
        (4, 5, 0, 40 + olen + size, 0x1234, 2, 0, 64, 6)
    assert (ip.src, ip.dst) == ("10.0.0.2", "192.0.2.7")
    assert (th.sport, th.dport, th.seq, th.ack, th.dataofs, int(th.flags), th.window,
            th.urgptr) == (40000, 80, 1000, 2000, 5 + olen // 4, 0x38, 502, 3)
    want = []
    if ts:
        want += [("NOP", None), ("NOP", None), ("Timestamp", (0xDEADBEEF, 0x0BADCAFE))]
    if blocks:
        want += [("NOP", None), ("NOP", None), ("SAck", tuple(e for b in blocks for e in b))]
    assert th.options == want
    assert frame[14 + 20 + th.dataofs * 4:14 + ip.len] == payload
    assert len(frame) == max(60, 54 + olen + size)
    assert frame[54 + olen + size:] == bytes(len(frame) - 54 - olen - size)


def test_tcp_frame_bare_ip(tx):
    frame = tx.tcp_frame(*tcp_args(dst_mac=None, src_mac=None, ts_val=-1, payload=b"x").values())
    pkt = dissect(frame, eth=False)
    assert len(frame) == 41 and pkt[IP].len == 41 and pkt[TCP].options == []


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_tcp_frame_payload_buffer_types(tx, kind):
    ref = tx.tcp_frame(*tcp_args(payload=b"abc" * 500).values())
    assert tx.tcp_frame(*tcp_args(payload=kind(b"abc" * 500)).values()) == ref
    # a strided view, or one of 2-byte items, is read as the bytes it shows
    for view in (memoryview(b"aabbcc" * 250)[::2], memoryview(array.array("H", range(300)))):
        assert tx.tcp_frame(*tcp_args(payload=view).values()) == \
            tx.tcp_frame(*tcp_args(payload=view.tobytes()).values())


@pytest.mark.parametrize("field,value", [
    ("src", 1 << 32), ("dst", -1), ("ident", 0x10000), ("ttl", 256), ("sport", 0x10000),
    ("dport", -1), ("seq", 1 << 32), ("ack", -1), ("flags", 256), ("window", 0x10000),
    ("urg_ptr", 0x10000), ("ts_val", 1 << 32), ("ts_val", -2), ("ts_ecr", 1 << 32),
    ("ts_ecr", -1), ("sack_blocks", ((1, 1 << 32),)), ("sack_blocks", ((-1, 2),)),
    # a timestamp leaves room for 3 SACK blocks in the 40 bytes of options, not 4
    ("sack_blocks", ((1, 2), (3, 4), (5, 6), (7, 8))),
    ("payload", bytes(65536 - 20 - 32)), ("dst_mac", b"\x01" * 5), ("src_mac", None),
])
def test_tcp_frame_bad_arguments_raise_value_error(tx, field, value):
    with pytest.raises(ValueError):
        tx.tcp_frame(*tcp_args(**{field: value}).values())


def test_tcp_frame_largest_datagram(tx):
    frame = tx.tcp_frame(*tcp_args(dst_mac=None, payload=bytes(65535 - 52)).values())
    assert len(frame) == 65535 and IP(frame).len == 65535


def test_tcp_frame_ignores_ts_ecr_without_timestamp(tx):
    assert tx.tcp_frame(*tcp_args(ts_val=-1, ts_ecr=5).values()) == \
        tx.tcp_frame(*tcp_args(ts_val=-1, ts_ecr=0).values())


_edge = st.integers(0, 2**32 - 1)


@HYPO
@given(eth=st.booleans(), src=_edge, dst=_edge, ident=st.integers(0, 0xFFFF),
       ttl=st.integers(0, 255), sport=st.integers(0, 0xFFFF), dport=st.integers(0, 0xFFFF),
       seq=_edge, ack=_edge, flags=st.integers(0, 255), window=st.integers(0, 0xFFFF),
       ts=st.none() | st.tuples(_edge, _edge),
       blocks=st.lists(st.tuples(_edge, _edge), max_size=4),
       payload=st.binary(max_size=1600), urg_ptr=st.integers(0, 0xFFFF))
def test_tcp_frame_same_bytes_as_layered_build(eth, src, dst, ident, ttl, sport, dport, seq,
                                                ack, flags, window, ts, blocks, payload,
                                                urg_ptr):
    """Each twin of tcp_frame == the layered build (pure wire.build_tcp + ip_build) ==
    the other twin, byte for byte; also with options too long for both."""
    a = tcp_args(src=src, dst=dst, ident=ident, ttl=ttl, sport=sport, dport=dport, seq=seq,
                 ack=ack, flags=flags, window=window, ts_val=-1 if ts is None else ts[0],
                 ts_ecr=0 if ts is None else ts[1], sack_blocks=tuple(blocks),
                 payload=payload, urg_ptr=urg_ptr)
    if not eth:
        a["dst_mac"] = a["src_mac"] = None
    from tcpio._fast import load_pure
    wire_py, tx_py = load_pure("wire"), load_pure("tx")
    if ts is not None and len(blocks) == 4:
        for mod in built_twins("tx"):
            with pytest.raises(ValueError):
                mod.tcp_frame(*a.values())
        return
    ref = layered(wire_py, tx_py.ip_build, a)
    for mod in built_twins("tx"):
        assert mod.tcp_frame(*a.values()) == ref, mod.__name__


def test_tcp_frame_matches_each_wire_twin(tx, wire):
    """Against the layered build of the compiled wire too (the host's fallback uses
    whichever wire module is loaded)."""
    a = tcp_args(sack_blocks=((10, 20), (30, 40)), payload=b"data" * 100)
    assert tx.tcp_frame(*a.values()) == layered(wire, tx.ip_build, a)
