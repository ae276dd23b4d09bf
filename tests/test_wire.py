"""Header parse/build, both twins: round trips, twin agreement, malformed input, scapy.

scapy is the independent oracle: it builds packets (and computes their
checksums) with its own code, we parse them; we build packets, scapy dissects
them and recomputes the checksums.
"""

from __future__ import annotations

import struct

import pytest
from conftest import twin_fixture, twin_pair
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from tcpio._fast import checksum_py

FAST = settings(max_examples=200, deadline=None, derandomize=True, database=None)
SCAPY = settings(max_examples=60, deadline=None, derandomize=True, database=None)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
mac_st = st.binary(min_size=6, max_size=6)
payload_st = st.binary(max_size=64)


w = twin_fixture("wire", "w")


def dotted(ip: int) -> str:
    return ".".join(str(b) for b in ip.to_bytes(4, "big"))


def options_len(sack_ok: bool, ts: bool, mss: bool, ws: bool, nblocks: int) -> int:
    """Bytes the kernel's option layout takes (what build_tcp writes)."""
    n = 4 * mss + (12 if ts else 4 * sack_ok) + 4 * ws
    return n + (4 + 8 * nblocks if nblocks else 0)


@st.composite
def tcp_options_st(draw, mod):
    mss = draw(st.none() | u16)
    wscale = draw(st.none() | u8)
    sack_ok = draw(st.booleans())
    ts = draw(st.none() | st.tuples(u32, u32))
    room = 40 - options_len(sack_ok, ts is not None, mss is not None, wscale is not None, 0)
    max_blocks = max(0, (room - 4) // 8)
    blocks = draw(st.lists(st.tuples(u32, u32), max_size=max_blocks))
    return mod.TcpOptions(mss=mss, wscale=wscale, sack_ok=sack_ok, sack_blocks=tuple(blocks),
                          ts_val=None if ts is None else ts[0],
                          ts_ecr=None if ts is None else ts[1])


@st.composite
def ipv4_st(draw, mod):
    opts = draw(st.binary(max_size=40).map(lambda b: b[: len(b) & ~3]))
    frag = draw(st.integers(0, 0x1FFF)) * 8
    return mod.IPv4Header(version=4, ihl=5 + len(opts) // 4, tos=draw(u8),
                          total_length=draw(u16), ident=draw(u16), df=draw(st.booleans()),
                          mf=draw(st.booleans()), frag_offset=frag, ttl=draw(u8),
                          proto=draw(u8), checksum=0, src=draw(u32), dst=draw(u32),
                          options=opts)


# --- round trips (each twin on its own) ---------------------------------------------
@FAST
@given(data=st.data())
def test_eth_roundtrip(w, data):
    dst, src, et = data.draw(mac_st), data.draw(mac_st), data.draw(u16)
    off = data.draw(st.integers(0, 8))
    buf = bytearray(off + 14 + 3)
    assert w.build_eth(buf, off, dst, src, et) == w.ETH_HLEN == 14
    assert w.parse_eth(buf, off) == w.EthHeader(dst, src, et)
    assert w.parse_eth(bytes(buf), off) == w.EthHeader(dst, src, et)


@FAST
@given(op=u16, sha=mac_st, spa=u32, tha=mac_st, tpa=u32)
def test_arp_roundtrip(w, op, sha, spa, tha, tpa):
    pkt = w.build_arp(op, sha, spa, tha, tpa)
    assert isinstance(pkt, bytes) and len(pkt) == 28
    assert w.parse_arp(pkt) == w.ArpPacket(op, sha, spa, tha, tpa)


@FAST
@given(data=st.data())
def test_ipv4_roundtrip(w, data):
    hdr = data.draw(ipv4_st(w))
    off = data.draw(st.integers(0, 14))
    buf = bytearray(off + 60)
    n = w.build_ipv4(buf, off, hdr)
    assert n == hdr.ihl * 4
    got = w.parse_ipv4(buf, off)
    assert checksum_py.internet_checksum(bytes(buf[off:off + n])) == 0
    expect = w.IPv4Header(*[getattr(hdr, f) for f in w.IPv4Header._fields[:-4]],
                          got.checksum, hdr.src, hdr.dst, hdr.options)
    assert got == expect


def test_ipv4_options_are_padded(w):
    buf = bytearray(40)
    n = w.build_ipv4(buf, 0, w.IPv4Header(total_length=24, proto=1, src=1, dst=2,
                                          options=b"\x94\x04\x00"))  # Router Alert, 3 of 4
    assert n == 24
    hdr = w.parse_ipv4(buf)
    assert hdr.ihl == 6 and hdr.options == b"\x94\x04\x00\x00"


@FAST
@given(t=u8, c=u8, rest=u32, payload=payload_st)
def test_icmp_roundtrip(w, t, c, rest, payload):
    msg = w.build_icmp(t, c, rest, payload)
    assert msg[8:] == payload
    assert checksum_py.internet_checksum(msg) == 0
    got = w.parse_icmp(msg)
    assert got == w.IcmpHeader(t, c, got.checksum, rest)


@FAST
@given(src=u32, dst=u32, sport=u16, dport=u16, payload=payload_st)
def test_udp_roundtrip(w, src, dst, sport, dport, payload):
    seg = w.build_udp(src, dst, sport, dport, payload)
    got = w.parse_udp(seg)
    assert got == w.UdpHeader(sport, dport, 8 + len(payload), got.checksum)
    assert got.checksum != 0   # 0 means "no checksum": a computed 0 is sent as 0xFFFF
    assert checksum_py.tcpudp_checksum(src, dst, 17, seg) == 0


def test_udp_computed_zero_is_sent_as_all_ones(w):
    # pick the 2-byte payload that makes the ones'-complement sum 0xFFFF: the
    # computed checksum is then 0, which RFC 768 reserves for "no checksum"
    src, dst = 0x0A000001, 0x0A000002
    probe = w.parse_udp(w.build_udp(src, dst, 1234, 53, b"\0\0")).checksum
    seg = w.build_udp(src, dst, 1234, 53, struct.pack("!H", probe))
    assert w.parse_udp(seg).checksum == 0xFFFF
    assert checksum_py.tcpudp_checksum(src, dst, 17, seg) == 0
    assert UDP(seg).chksum == 0xFFFF


@FAST
@given(data=st.data())
def test_tcp_roundtrip(w, data):
    src, dst = data.draw(u32), data.draw(u32)
    sport, dport, seq, ack = data.draw(u16), data.draw(u16), data.draw(u32), data.draw(u32)
    flags, window, urg = data.draw(u8), data.draw(u16), data.draw(u16)
    opts = data.draw(tcp_options_st(w))
    payload = data.draw(payload_st)
    seg = w.build_tcp(src, dst, sport, dport, seq, ack, flags, window, opts, payload, urg)
    got = w.parse_tcp(seg)
    doff = 5 + options_len(opts.sack_ok, opts.ts_val is not None, opts.mss is not None,
                           opts.wscale is not None, len(opts.sack_blocks)) // 4
    assert got == w.TcpHeader(sport, dport, seq, ack, doff, flags, window, got.checksum,
                              urg, opts)
    assert got.options == opts
    assert seg[doff * 4:] == payload
    assert checksum_py.tcpudp_checksum(src, dst, 6, seg) == 0


def test_tcp_without_options(w):
    seg = w.build_tcp(1, 2, 3, 4, 5, 6, w.SYN, 7)
    h = w.parse_tcp(seg)
    assert len(seg) == 20 and h.doff == 5
    assert h.options == w.TcpOptions()
    assert w.parse_tcp(w.build_tcp(1, 2, 3, 4, 5, 6, w.SYN, 7, w.TcpOptions())).doff == 5


def test_tcp_option_layout_is_the_kernels(w):
    # tcp_options_write: MSS, SACK_PERM folded into the timestamp's NOP NOP, NOP+WS
    seg = w.build_tcp(1, 2, 3, 4, 0, 0, w.SYN, 0,
                      w.TcpOptions(mss=1460, wscale=7, sack_ok=True, ts_val=5, ts_ecr=0))
    assert seg[20:] == bytes.fromhex("020405b4" "0402080a" "00000005" "00000000" "01030307")
    seg = w.build_tcp(1, 2, 3, 4, 0, 0, w.ACK, 0,
                      w.TcpOptions(ts_val=1, ts_ecr=2, sack_blocks=((10, 20),)))
    assert seg[20:] == bytes.fromhex("0101080a" "00000001" "00000002"
                                     "0101050a" "0000000a" "00000014")


# --- malformed and truncated input ---------------------------------------------------
def tcp_with_raw_options(raw: bytes) -> bytes:
    raw += b"\0" * (-len(raw) % 4)
    doff = 5 + len(raw) // 4
    return struct.pack("!HHIIBBHHH", 1, 2, 3, 4, doff << 4, 0x10, 100, 0, 0) + raw


@pytest.mark.parametrize("raw,reason", [
    (b"\x01\x01\x01\x02", "length missing"),        # MSS kind is the last byte
    (b"\x01\x01\x01\x08", "length missing"),        # kind at the very end
    (b"\x02\x00\x05\xb4", "length < 2"),
    (b"\x1e\x01\x00\x00", "length < 2"),            # unknown kind, bad length
    (b"\x02\x08\x05\xb4", "past the header"),
    (b"\x02\x03\x05\x00", "MSS"),
    (b"\x03\x04\x07\x00", "window scale"),
    (b"\x04\x03\x00\x00", "SACK-permitted"),
    (b"\x05\x06\x00\x00\x00\x01\x00\x00", "SACK"),   # too short for one block
    (b"\x05\x0b" + b"\0" * 9 + b"\0", "SACK"),        # not 2 + 8n
    (b"\x08\x08" + b"\0" * 6, "timestamp"),
])
def test_malformed_tcp_options_rejected(w, raw, reason):
    with pytest.raises(w.ParseError, match=reason):
        w.parse_tcp(tcp_with_raw_options(raw))


def test_unknown_options_skipped_and_eol_stops(w):
    raw = (b"\x1e\x06abcd"          # unknown kind 30 (MPTCP), length 6: skipped
           b"\x02\x04\x02\x18"      # MSS 536
           b"\x01"                  # NOP
           b"\xfe\x02"              # experimental kind 254, length 2
           b"\x00"                  # EOL: what follows is ignored
           b"\x02\x00\xff\xff")     # would be malformed if read
    h = w.parse_tcp(tcp_with_raw_options(raw))
    assert h.options == w.TcpOptions(mss=536)


def test_duplicate_option_last_wins(w):
    h = w.parse_tcp(tcp_with_raw_options(b"\x02\x04\x00\x01\x02\x04\x00\x02"))
    assert h.options.mss == 2


def test_bad_data_offset(w):
    seg = bytearray(w.build_tcp(1, 2, 3, 4, 5, 6, w.ACK, 7))
    seg[12] = 4 << 4
    with pytest.raises(w.ParseError, match="offset"):
        w.parse_tcp(seg)
    seg[12] = 6 << 4        # claims 24 bytes, has 20
    with pytest.raises(w.ParseError, match="truncated"):
        w.parse_tcp(seg)


def test_arp_not_ethernet_ipv4(w):
    pkt = bytearray(w.build_arp(1, b"\1" * 6, 1, b"\0" * 6, 2))
    pkt[1] = 6          # htype 6 (IEEE 802)
    with pytest.raises(w.ParseError):
        w.parse_arp(pkt)


def test_ipv4_short_ihl_and_truncated_options(w):
    buf = bytearray(24)
    w.build_ipv4(buf, 0, w.IPv4Header(options=b"\x01\x01\x01\x01"))
    buf[0] = 0x43            # IHL 3: ip_rcv's to reject, the parser just reads
    assert w.parse_ipv4(buf).ihl == 3 and w.parse_ipv4(buf).options == b""
    buf[0] = 0x47            # IHL 7 = 28 bytes, only 24 there
    with pytest.raises(w.ParseError):
        w.parse_ipv4(buf)


def sample_frames(mod) -> dict[str, bytes]:
    seg = mod.build_tcp(1, 2, 80, 4000, 9, 10, mod.ACK | mod.SYN, 1000,
                        mod.TcpOptions(mss=1460, wscale=2, sack_ok=True, ts_val=3, ts_ecr=4),
                        b"data")
    ip = bytearray(24)
    mod.build_ipv4(ip, 0, mod.IPv4Header(total_length=24 + len(seg), proto=6, src=1, dst=2,
                                         options=b"\x01\x01\x01\x00"))
    return {"eth": bytes(14), "arp": mod.build_arp(1, b"\1" * 6, 1, b"\0" * 6, 2),
            "ipv4": bytes(ip), "icmp": mod.build_icmp(8, 0, 0x10001, b"ping"),
            "udp": mod.build_udp(1, 2, 53, 53, b"q"), "tcp": seg}


PARSERS = ["eth", "arp", "ipv4", "icmp", "udp", "tcp"]


@pytest.mark.parametrize("kind", PARSERS)
def test_every_truncation_is_a_parse_error_or_a_record(w, kind):
    frame = sample_frames(w)[kind]
    parse = getattr(w, f"parse_{kind}")
    full = parse(frame)
    for cut in range(len(frame)):
        view = memoryview(frame)[:cut]
        try:
            got = parse(view)
        except w.ParseError:
            continue
        assert got == full      # only cuts into the payload may still parse
    with pytest.raises(w.ParseError):
        parse(frame, len(frame))
    with pytest.raises(w.ParseError):
        parse(frame, -1)


def result(parse, buf, off):
    try:
        return ("ok", parse(buf, off))
    except ValueError as exc:   # ParseError is a ValueError in both twins
        return ("err", type(exc).__name__, str(exc))


@FAST
@given(kind=st.sampled_from(PARSERS), raw=st.binary(max_size=80), off=st.integers(0, 4))
def test_twins_agree_on_random_bytes(kind, raw, off):
    pure, comp = twin_pair("wire")
    a = result(getattr(pure, f"parse_{kind}"), raw, off)
    b = result(getattr(comp, f"parse_{kind}"), memoryview(bytearray(raw)), off)
    assert a == b


@FAST
@given(raw=st.binary(max_size=40), seg_prefix=st.sampled_from([b"", b"\x01", b"\x01\x01"]))
def test_twins_agree_on_random_tcp_options(raw, seg_prefix):
    pure, comp = twin_pair("wire")
    seg = tcp_with_raw_options(seg_prefix + raw)
    assert result(pure.parse_tcp, seg, 0) == result(comp.parse_tcp, seg, 0)


@FAST
@given(kind=st.sampled_from(PARSERS), data=st.data())
def test_twins_agree_on_mutated_frames(kind, data):
    pure, comp = twin_pair("wire")
    frame = bytearray(sample_frames(pure)[kind])
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(u8)
    cut = data.draw(st.integers(0, len(frame)))
    a = result(getattr(pure, f"parse_{kind}"), bytes(frame[:cut]), 0)
    b = result(getattr(comp, f"parse_{kind}"), bytes(frame[:cut]), 0)
    assert a == b


@FAST
@given(data=st.data())
def test_twins_build_identical_bytes(data):
    pure, comp = twin_pair("wire")
    src, dst, sport, dport = data.draw(u32), data.draw(u32), data.draw(u16), data.draw(u16)
    payload = data.draw(payload_st)
    popts = data.draw(tcp_options_st(pure))
    copts = comp.TcpOptions(*[getattr(popts, f) for f in pure.TcpOptions._fields])
    args = (src, dst, sport, dport, data.draw(u32), data.draw(u32), data.draw(u8),
            data.draw(u16))
    assert pure.build_tcp(*args, popts, payload, 5) == comp.build_tcp(*args, copts, payload, 5)
    # each twin also accepts the other's records
    assert pure.build_tcp(*args, copts, payload) == comp.build_tcp(*args, popts, payload)
    assert pure.build_udp(src, dst, sport, dport, payload) == \
        comp.build_udp(src, dst, sport, dport, payload)
    assert pure.build_icmp(3, 4, src, payload) == comp.build_icmp(3, 4, src, payload)
    assert pure.build_arp(sport, payload[:6].ljust(6, b"x"), src, b"\0" * 6, dst) == \
        comp.build_arp(sport, payload[:6].ljust(6, b"x"), src, b"\0" * 6, dst)
    hdr = data.draw(ipv4_st(pure))
    b1, b2, b3 = bytearray(64), bytearray(64), bytearray(64)
    n = pure.build_ipv4(b1, 2, hdr)
    assert comp.build_ipv4(b2, 2, hdr) == n
    chdr = comp.IPv4Header(*[getattr(hdr, f) for f in pure.IPv4Header._fields])
    assert comp.build_ipv4(b3, 2, chdr) == n
    assert b1 == b2 == b3
    e1, e2 = bytearray(14), bytearray(14)
    pure.build_eth(e1, 0, b"\1" * 6, b"\2" * 6, sport)
    comp.build_eth(e2, 0, b"\1" * 6, b"\2" * 6, sport)
    assert e1 == e2


def test_records_equal_across_twins():
    pure, comp = twin_pair("wire")
    frames = sample_frames(pure)
    for kind in PARSERS:
        a = getattr(pure, f"parse_{kind}")(frames[kind])
        b = getattr(comp, f"parse_{kind}")(frames[kind])
        assert a == b and b == a
        assert not (a != b)  # noqa: SIM202 - checks __ne__ as well as __eq__
        assert hash(a) == hash(b)
        assert type(a).__name__ == type(b).__name__
        assert type(a)._fields == type(b)._fields
        assert repr(a) == repr(b)
    assert pure.TcpOptions(mss=1) != comp.TcpOptions(mss=2)
    assert pure.UdpHeader(1, 2, 3, 4) != comp.IcmpHeader(1, 2, 3, 4)


def test_compiled_records_are_read_only():
    _, comp = twin_pair("wire")
    h = comp.parse_udp(comp.build_udp(1, 2, 3, 4, b""))
    with pytest.raises(AttributeError):
        h.sport = 5


def test_build_rejects_bad_arguments(w):
    bad = (ValueError, OverflowError)
    with pytest.raises(bad):
        w.build_tcp(1, 2, 70000, 1, 0, 0, 0, 0)
    with pytest.raises(bad):
        w.build_tcp(1, 2, 1, 1, 2**32, 0, 0, 0)
    with pytest.raises(ValueError):   # 4 SACK blocks + timestamps do not fit in 40 bytes
        w.build_tcp(1, 2, 1, 1, 0, 0, 0, 0,
                    w.TcpOptions(ts_val=1, ts_ecr=1, sack_blocks=((1, 2),) * 4))
    with pytest.raises(bad):
        w.build_udp(2**32, 1, 1, 1, b"")
    with pytest.raises(ValueError):
        w.build_udp(1, 1, 1, 1, bytes(65530))
    with pytest.raises(bad):
        w.build_icmp(256, 0, 0, b"")
    with pytest.raises(ValueError):
        w.build_arp(1, b"short", 1, b"\0" * 6, 2)
    with pytest.raises(ValueError):
        w.build_eth(bytearray(13), 0, b"\0" * 6, b"\0" * 6, 0x800)
    with pytest.raises(ValueError):
        w.build_ipv4(bytearray(60), 0, w.IPv4Header(frag_offset=12))
    with pytest.raises(ValueError):
        w.build_ipv4(bytearray(80), 0, w.IPv4Header(options=bytes(41)))
    with pytest.raises(ValueError):
        w.build_ipv4(bytearray(30), 0, w.IPv4Header(options=bytes(12)))


def test_constants(w):
    assert (w.FIN, w.SYN, w.RST, w.PSH, w.ACK, w.URG, w.ECE, w.CWR) == \
        (1, 2, 4, 8, 16, 32, 64, 128)
    assert (w.ETH_P_IP, w.ETH_P_ARP, w.ETH_HLEN) == (0x0800, 0x0806, 14)
    assert issubclass(w.ParseError, ValueError)


# --- scapy builds, we parse -------------------------------------------------------------
ip_opts_st = st.sampled_from([b"", b"\x94\x04\x00\x00", b"\x01\x01\x01\x00",
                              b"\x07\x07\x04\x00\x00\x00\x00\x00"])  # RR with room for 1


@SCAPY
@given(src=u32, dst=u32, sport=u16, dport=u16, seq=u32, ack=u32, window=u16,
       flags=st.integers(0, 0xFF), ipopts=ip_opts_st, payload=payload_st, data=st.data(),
       tos=u8, ipflags=st.integers(0, 3))
def test_parse_scapy_tcp(w, src, dst, sport, dport, seq, ack, window, flags, ipopts,
                         payload, data, tos, ipflags):
    opts = []
    expect: dict = {}
    if data.draw(st.booleans()):
        expect["mss"] = data.draw(u16)
        opts.append(("MSS", expect["mss"]))
    if data.draw(st.booleans()):
        expect["wscale"] = data.draw(st.integers(0, 14))
        opts.append(("WScale", expect["wscale"]))
    if data.draw(st.booleans()):
        expect["sack_ok"] = True
        opts.append(("SAckOK", b""))
    if data.draw(st.booleans()):
        expect["ts_val"], expect["ts_ecr"] = data.draw(u32), data.draw(u32)
        opts.append(("Timestamp", (expect["ts_val"], expect["ts_ecr"])))
    if len(opts) < 3 and data.draw(st.booleans()):
        blocks = tuple(data.draw(st.lists(st.tuples(u32, u32), min_size=1, max_size=2)))
        expect["sack_blocks"] = blocks
        opts.append(("SAck", tuple(x for b in blocks for x in b)))
    opts.append(("NOP", None))
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / IP(src=dotted(src), dst=dotted(dst), options=ipopts, id=7, ttl=9,
                       tos=tos, flags=ipflags)
                  / TCP(sport=sport, dport=dport, seq=seq, ack=ack, window=window,
                        flags=flags, options=opts)
                  / payload)
    sp = Ether(frame)
    eth = w.parse_eth(frame)
    assert eth == w.EthHeader(bytes.fromhex("020000000002"), bytes.fromhex("020000000001"),
                              0x0800)
    iph = w.parse_ipv4(frame, 14)
    assert (iph.version, iph.ihl, iph.tos, iph.total_length, iph.ident, iph.ttl, iph.proto,
            iph.checksum, iph.src, iph.dst, iph.df, iph.mf, iph.frag_offset) == (
        4, sp[IP].ihl, tos, sp[IP].len, 7, 9, 6, sp[IP].chksum, src, dst,
        bool(ipflags & 2), bool(ipflags & 1), 0)   # scapy's flags: 1 = MF, 2 = DF
    assert iph.options == ipopts
    tcp = w.parse_tcp(frame, 14 + iph.ihl * 4)
    st_ = sp[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.ack, tcp.doff, tcp.flags, tcp.window,
            tcp.checksum, tcp.urg_ptr) == (sport, dport, seq, ack, st_.dataofs, flags, window,
                                           st_.chksum, 0)
    assert tcp.options == w.TcpOptions(**expect)
    seg = frame[14 + iph.ihl * 4:]
    assert checksum_py.tcpudp_checksum(src, dst, 6, seg) == 0


@SCAPY
@given(src=u32, dst=u32, sport=u16, dport=u16, payload=payload_st)
def test_parse_scapy_udp_icmp_arp(w, src, dst, sport, dport, payload):
    dg = bytes(IP(src=dotted(src), dst=dotted(dst)) / UDP(sport=sport, dport=dport) / payload)
    u = w.parse_udp(dg, 20)
    s = IP(dg)[UDP]
    assert u == w.UdpHeader(sport, dport, 8 + len(payload), s.chksum)
    msg = bytes(ICMP(type=8, code=0, id=sport, seq=dport) / payload)
    i = w.parse_icmp(msg)
    assert i == w.IcmpHeader(8, 0, ICMP(msg).chksum, (sport << 16) | dport)
    arp = bytes(ARP(op=2, hwsrc="02:00:00:00:00:01", psrc=dotted(src),
                    hwdst="02:00:00:00:00:02", pdst=dotted(dst)))
    assert w.parse_arp(arp) == w.ArpPacket(2, bytes.fromhex("020000000001"), src,
                                           bytes.fromhex("020000000002"), dst)


# --- we build, scapy dissects and recomputes the checksums ------------------------------
def scapy_recomputed(pkt, layer):
    """The checksum scapy computes itself for ``layer`` of an already-built packet."""
    clone = pkt.copy()
    del clone[layer].chksum
    if layer is not IP:
        del clone[IP].chksum
    return type(pkt)(bytes(clone))[layer].chksum


@SCAPY
@given(data=st.data())
def test_scapy_dissects_our_tcp(w, data):
    src, dst, sport, dport = data.draw(u32), data.draw(u32), data.draw(u16), data.draw(u16)
    seq, ack, flags, window = data.draw(u32), data.draw(u32), data.draw(u8), data.draw(u16)
    opts = data.draw(tcp_options_st(w))
    payload = data.draw(payload_st)
    seg = w.build_tcp(src, dst, sport, dport, seq, ack, flags, window, opts, payload)
    ipopts = data.draw(ip_opts_st)
    frame = bytearray(14 + 20 + len(ipopts))
    w.build_eth(frame, 0, b"\2\0\0\0\0\2", b"\2\0\0\0\0\1", w.ETH_P_IP)
    w.build_ipv4(frame, 14, w.IPv4Header(total_length=20 + len(ipopts) + len(seg), ident=3,
                                         df=True, ttl=64, proto=6, src=src, dst=dst,
                                         options=ipopts))
    pkt = Ether(bytes(frame) + seg)
    assert pkt[Ether].type == 0x0800 and pkt[Ether].dst == "02:00:00:00:00:02"
    assert (pkt[IP].src, pkt[IP].dst, pkt[IP].flags, pkt[IP].len) == (
        dotted(src), dotted(dst), "DF", 20 + len(ipopts) + len(seg))
    t = pkt[TCP]
    assert (t.sport, t.dport, t.seq, t.ack, int(t.flags), t.window) == (
        sport, dport, seq, ack, flags, window)
    assert bytes(t.payload) == payload
    sopts = {k: v for k, v in t.options if k != "NOP"}
    assert sopts.get("MSS") == opts.mss
    assert sopts.get("WScale") == opts.wscale
    assert ("SAckOK" in sopts) == opts.sack_ok
    assert sopts.get("Timestamp") == (None if opts.ts_val is None
                                      else (opts.ts_val, opts.ts_ecr))
    flat = sopts.get("SAck", ())
    assert tuple(zip(flat[0::2], flat[1::2])) == opts.sack_blocks
    assert scapy_recomputed(pkt, IP) == pkt[IP].chksum
    assert scapy_recomputed(pkt, TCP) == t.chksum


@SCAPY
@given(src=u32, dst=u32, sport=u16, dport=u16, payload=payload_st, rest=u32)
def test_scapy_dissects_our_udp_icmp_arp(w, src, dst, sport, dport, payload, rest):
    hdr = bytearray(20)
    seg = w.build_udp(src, dst, sport, dport, payload)
    w.build_ipv4(hdr, 0, w.IPv4Header(total_length=20 + len(seg), proto=17, src=src, dst=dst))
    pkt = IP(bytes(hdr) + seg)
    assert (pkt[UDP].sport, pkt[UDP].dport, pkt[UDP].len, bytes(pkt[UDP].payload)) == (
        sport, dport, 8 + len(payload), payload)
    recomputed = scapy_recomputed(pkt, UDP)
    assert recomputed == pkt[UDP].chksum
    msg = w.build_icmp(0, 0, rest, payload)
    w.build_ipv4(hdr, 0, w.IPv4Header(total_length=20 + len(msg), proto=1, src=src, dst=dst))
    pkt = IP(bytes(hdr) + msg)
    assert (pkt[ICMP].type, pkt[ICMP].id, pkt[ICMP].seq) == (0, rest >> 16, rest & 0xFFFF)
    assert scapy_recomputed(pkt, ICMP) == pkt[ICMP].chksum
    a = ARP(w.build_arp(1, b"\2\0\0\0\0\1", src, b"\0" * 6, dst))
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (
        1, "02:00:00:00:00:01", dotted(src), "00:00:00:00:00:00", dotted(dst))
