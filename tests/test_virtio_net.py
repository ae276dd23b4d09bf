"""The virtio-net header (include/uapi/linux/virtio_net.h) and the software
segmentation of super-frames, against the kernel's layout and scapy.

Layout oracle: the C struct itself, as ctypes lays it out (``struct
virtio_net_hdr``: u8 flags, u8 gso_type, then four native-order u16s;
``virtio_net_hdr_mrg_rxbuf`` adds u16 num_buffers).  Segmentation oracle:
scapy builds each segment the kernel's GSO would emit from the same stream
and checks every checksum."""

from __future__ import annotations

import ctypes

import pytest
from conftest import twin_fixture
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tcpio._fast.gso import GsoFrame
from tcpio.devices import virtio_net as vnet


class CVirtioNetHdr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint8), ("gso_type", ctypes.c_uint8),
                ("hdr_len", ctypes.c_uint16), ("gso_size", ctypes.c_uint16),
                ("csum_start", ctypes.c_uint16), ("csum_offset", ctypes.c_uint16)]


class CVirtioNetHdrMrg(ctypes.Structure):
    _fields_ = [("hdr", CVirtioNetHdr), ("num_buffers", ctypes.c_uint16)]


def test_sizes_are_the_kernels():
    assert vnet.VNET_HDR_LEN == ctypes.sizeof(CVirtioNetHdr) == 10
    assert vnet.VNET_HDR_MRG_LEN == ctypes.sizeof(CVirtioNetHdrMrg) == 12


def test_build_lays_fields_out_as_the_c_struct():
    hdr = vnet.VirtioNetHdr(vnet.VIRTIO_NET_HDR_F_NEEDS_CSUM, vnet.VIRTIO_NET_HDR_GSO_TCPV4,
                            66, 1448, 34, 16)
    c = CVirtioNetHdr(1, 1, 66, 1448, 34, 16)
    assert vnet.build_vnet_hdr(hdr) == bytes(c)
    assert vnet.build_vnet_hdr(hdr, 12) == bytes(CVirtioNetHdrMrg(c, 0))
    with pytest.raises(ValueError):
        vnet.build_vnet_hdr(hdr, 11)


def test_parse_reads_the_c_struct_back():
    raw = bytes(CVirtioNetHdr(2, 5, 42, 1000, 34, 6)) + b"frame"
    hdr = vnet.parse_vnet_hdr(raw)
    assert hdr == (2, 5, 42, 1000, 34, 6)
    assert hdr.data_valid and not hdr.needs_csum and hdr.is_gso
    assert not vnet.parse_vnet_hdr(bytes(10)).is_gso
    assert not vnet.parse_vnet_hdr(bytes([0, 0x80]) + bytes(8)).is_gso   # ECN bit alone
    with pytest.raises(ValueError):
        vnet.parse_vnet_hdr(b"\0" * 9)


def test_constants_are_the_uapi_values():
    # include/uapi/linux/if_tun.h and virtio_net.h, written out by hand
    assert (vnet.TUN_F_CSUM, vnet.TUN_F_TSO4, vnet.TUN_F_TSO6, vnet.TUN_F_TSO_ECN,
            vnet.TUN_F_UFO, vnet.TUN_F_USO4, vnet.TUN_F_USO6) == (1, 2, 4, 8, 0x10, 0x20, 0x40)
    assert vnet.IFF_VNET_HDR == 0x4000
    # _IOW('T', 208, unsigned int), _IOR('T', 207, ...), _IOR/_IOW('T', 215/216, int)
    ioc = lambda d, nr: (d << 30) | (4 << 16) | (ord("T") << 8) | nr   # noqa: E731
    assert vnet.TUNSETOFFLOAD == ioc(1, 208) and vnet.TUNGETFEATURES == ioc(2, 207)
    assert vnet.TUNGETVNETHDRSZ == ioc(2, 215) and vnet.TUNSETVNETHDRSZ == ioc(1, 216)
    assert (vnet.VIRTIO_NET_HDR_GSO_TCPV4, vnet.VIRTIO_NET_HDR_GSO_UDP,
            vnet.VIRTIO_NET_HDR_GSO_TCPV6, vnet.VIRTIO_NET_HDR_GSO_UDP_L4,
            vnet.VIRTIO_NET_HDR_GSO_ECN) == (1, 3, 4, 5, 0x80)


MACS = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def partial_tcp_superframe(payload: bytes, flags: str = "PA", ident: int = 100):
    """A TCP/IPv4 super-frame as the kernel hands it over with TSO: one IP
    datagram, its TCP checksum field holding the pseudo-header sum only."""
    pkt = (Ether(**MACS) / IP(src="10.7.0.1", dst="10.7.0.2", id=ident, flags="DF")
           / TCP(sport=5000, dport=80, seq=0xFFFFF000, ack=7, flags=flags, window=500,
                 options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
           / payload)
    raw = bytearray(bytes(pkt))
    tcp_len = len(raw) - 34
    from tcpio import _fast
    pseudo = _fast.load("checksum").pseudo_header_sum(0x0A070001, 0x0A070002, 6, tcp_len)
    raw[34 + 16:34 + 18] = pseudo.to_bytes(2, "big")
    return raw


def test_csum_complete_gives_the_checksum_scapy_computes():
    raw = partial_tcp_superframe(bytes(range(256)) * 3)
    vnet.csum_complete(raw, 34, 16)
    want = Ether(bytes(raw))
    del want[TCP].chksum
    assert Ether(bytes(raw))[TCP].chksum == Ether(bytes(want))[TCP].chksum


def test_tcp_superframe_cuts_into_mss_segments_like_the_kernels_gso():
    payload = bytes((i * 7) & 0xFF for i in range(1448 * 3 + 100))
    raw = partial_tcp_superframe(payload, flags="FPAC")
    hdr = vnet.gso_hdr_for(raw, 1448)
    assert hdr == (1, 1, 14 + 20 + 32, 1448, 34, 16)
    segs = vnet.gso_segment(raw, hdr)
    assert [len(Ether(s)[TCP].payload) for s in segs] == [1448, 1448, 1448, 100]
    got = b""
    for i, s in enumerate(segs):
        p = Ether(s)
        assert p[IP].id == 100 + i and p[IP].len == len(s) - 14
        assert p[TCP].seq == (0xFFFFF000 + 1448 * i) & 0xFFFFFFFF      # wraps
        last = i == len(segs) - 1
        assert str(p[TCP].flags) == ("FPA" if last else "AC" if i == 0 else "A")
        assert p[TCP].options == [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
        ref = Ether(s)
        del ref[IP].chksum, ref[TCP].chksum
        ref = Ether(bytes(ref))
        assert (p[IP].chksum, p[TCP].chksum) == (ref[IP].chksum, ref[TCP].chksum)
        got += bytes(p[TCP].payload)
    assert got == payload


def test_udp_superframe_cuts_into_its_datagrams():
    payload = bytes(range(200)) * 5              # 1000 bytes, gso_size 300
    pkt = Ether(**MACS) / IP(src="10.7.0.1", dst="10.7.0.2", id=9) / UDP(sport=53, dport=99)
    raw = bytes(pkt / payload)
    hdr = vnet.VirtioNetHdr(vnet.VIRTIO_NET_HDR_F_NEEDS_CSUM,
                            vnet.VIRTIO_NET_HDR_GSO_UDP_L4, 42, 300, 34, 6)
    segs = vnet.gso_segment(raw, hdr)
    assert [bytes(Ether(s)[UDP].payload) for s in segs] == [payload[i:i + 300]
                                                            for i in range(0, 1000, 300)]
    for s in segs:
        p = Ether(s)
        ref = Ether(s)
        del ref[UDP].chksum, ref[UDP].len, ref[IP].chksum
        ref = Ether(bytes(ref))
        assert (p[UDP].len, p[UDP].chksum, p[IP].chksum) == (ref[UDP].len, ref[UDP].chksum,
                                                              ref[IP].chksum)


# --- TSO6 (issue 12): IPv6 TCP super-frames -------------------------------------------------

SRC6, DST6 = "fd00::1", "fd00::2:3"


def partial_tcp6_superframe(payload: bytes, flags: str = "PA", ether: bool = True):
    """A TCP/IPv6 super-frame as tcpio's send loop hands it to a TSO6 device:
    one IPv6 packet (payload length of the whole), its TCP checksum field
    holding the IPv6 pseudo-header sum only."""
    pkt = (IPv6(src=SRC6, dst=DST6, hlim=33, tc=0x10, fl=0x12345)
           / TCP(sport=5000, dport=80, seq=0xFFFFF000, ack=7, flags=flags, window=500,
                 options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
           / payload)
    if ether:
        pkt = Ether(**MACS) / pkt
    raw = bytearray(bytes(pkt))
    l4 = 54 if ether else 40
    from tcpio import _fast
    from tcpio.core.addr import ip6_aton
    pseudo = _fast.load("checksum").pseudo_header_sum6(ip6_aton(SRC6), ip6_aton(DST6), 6,
                                                       len(raw) - l4)
    raw[l4 + 16:l4 + 18] = pseudo.to_bytes(2, "big")
    return raw


@pytest.mark.parametrize("ether", [True, False], ids=["tap", "tun"])
def test_tcp6_superframe_header_is_tsov6_at_the_tcp_checksum(ether):
    raw = partial_tcp6_superframe(b"z" * 5000, ether=ether)
    l4 = 14 + 40 if ether else 40
    assert vnet.gso_hdr_for(raw, 1428, ether=ether) == (
        vnet.VIRTIO_NET_HDR_F_NEEDS_CSUM, vnet.VIRTIO_NET_HDR_GSO_TCPV6, l4 + 32, 1428, l4, 16)
    assert vnet.gso_hdr_for(raw, 1428, ether=ether, partial=False) == (
        0, vnet.VIRTIO_NET_HDR_GSO_TCPV6, l4 + 32, 1428, 0, 0)
    # completing the partial checksum gives scapy's
    done = bytearray(raw)
    vnet.csum_complete(done, l4, 16)
    ref = Ether(bytes(done)) if ether else IPv6(bytes(done))
    del ref[TCP].chksum
    ref = Ether(bytes(ref)) if ether else IPv6(bytes(ref))
    assert int.from_bytes(done[l4 + 16:l4 + 18], "big") == ref[TCP].chksum


@pytest.mark.parametrize("ether", [True, False], ids=["tap", "tun"])
@pytest.mark.parametrize("partial", [True, False])
def test_tcp6_superframe_cuts_into_mss_segments_like_the_kernels_gso(ether, partial):
    payload = bytes((i * 13) & 0xFF for i in range(1428 * 4 + 33))
    raw = partial_tcp6_superframe(payload, flags="FPAC", ether=ether)
    if not partial:
        vnet.csum_complete(raw, 54 if ether else 40, 16)
    hdr = vnet.gso_hdr_for(raw, 1428, ether=ether, partial=partial)
    segs = vnet.gso_segment(raw, hdr, ether=ether)
    parse = Ether if ether else IPv6
    assert [len(parse(s)[TCP].payload) for s in segs] == [1428] * 4 + [33]
    got = b""
    for i, s in enumerate(segs):
        p = parse(s)
        ip6 = p[IPv6]
        assert ip6.plen == len(s) - (54 if ether else 40)
        assert (ip6.src, ip6.dst, ip6.hlim, ip6.tc, ip6.fl) == (SRC6, DST6, 33, 0x10, 0x12345)
        assert p[TCP].seq == (0xFFFFF000 + 1428 * i) & 0xFFFFFFFF      # wraps
        last = i == len(segs) - 1
        assert str(p[TCP].flags) == ("FPA" if last else "AC" if i == 0 else "A")
        assert p[TCP].options == [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
        ref = parse(s)
        del ref[IPv6].plen, ref[TCP].chksum
        ref = parse(bytes(ref))
        assert (ip6.plen, p[TCP].chksum) == (ref[IPv6].plen, ref[TCP].chksum)
        got += bytes(p[TCP].payload)
    assert got == payload


def test_udp6_superframe_cuts_into_its_datagrams():
    payload = bytes(range(250)) * 4              # 1000 bytes, gso_size 300
    raw = bytes(Ether(**MACS) / IPv6(src=SRC6, dst=DST6) / UDP(sport=53, dport=99) / payload)
    hdr = vnet.VirtioNetHdr(vnet.VIRTIO_NET_HDR_F_NEEDS_CSUM,
                            vnet.VIRTIO_NET_HDR_GSO_UDP_L4, 62, 300, 54, 6)
    segs = vnet.gso_segment(raw, hdr)
    assert [bytes(Ether(s)[UDP].payload) for s in segs] == [payload[i:i + 300]
                                                            for i in range(0, 1000, 300)]
    for s in segs:
        ref = Ether(s)
        del ref[UDP].chksum, ref[UDP].len, ref[IPv6].plen
        ref = Ether(bytes(ref))
        p = Ether(s)
        assert (p[IPv6].plen, p[UDP].len, p[UDP].chksum) == (ref[IPv6].plen, ref[UDP].len,
                                                             ref[UDP].chksum)


def test_tcp6_bad_headers_are_value_errors():
    raw = partial_tcp6_superframe(b"x" * 3000)
    with pytest.raises(ValueError):     # says TCPV4, carries IPv6
        vnet.gso_segment(raw, vnet.VirtioNetHdr(1, vnet.VIRTIO_NET_HDR_GSO_TCPV4, 86, 1000, 54, 16))
    v4 = partial_tcp_superframe(b"x" * 3000)
    with pytest.raises(ValueError):     # says TCPV6, carries IPv4
        vnet.gso_segment(v4, vnet.VirtioNetHdr(1, vnet.VIRTIO_NET_HDR_GSO_TCPV6, 66, 1000, 34, 16))
    ext = raw[:20] + b"\0" + raw[21:]  # next header: hop-by-hop
    with pytest.raises(ValueError):
        vnet.gso_hdr_for(ext, 1000)


def test_a_frame_without_gso_comes_back_whole_with_its_checksum_done():
    raw = partial_tcp_superframe(b"x" * 10)
    (seg,) = vnet.gso_segment(raw, vnet.VirtioNetHdr(1, 0, 0, 0, 34, 16))
    ref = Ether(seg)
    del ref[TCP].chksum
    assert Ether(seg)[TCP].chksum == Ether(bytes(ref))[TCP].chksum


def test_bad_headers_are_value_errors():
    raw = partial_tcp_superframe(b"x" * 3000)
    with pytest.raises(ValueError):     # says UDP, carries TCP
        vnet.gso_segment(raw, vnet.VirtioNetHdr(1, vnet.VIRTIO_NET_HDR_GSO_UDP_L4, 0, 100, 34, 6))
    with pytest.raises(ValueError):
        vnet.gso_segment(raw, vnet.VirtioNetHdr(1, vnet.VIRTIO_NET_HDR_GSO_TCPV4, 0, 0, 34, 16))
    with pytest.raises(ValueError):
        vnet.csum_complete(bytearray(20), 10, 16)


# --- rx.vnet_rx: the frame behind the header, as the TAP hands it to the host ------------

rx = twin_fixture("rx", "rx")


def with_hdr(frame, flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0):
    return vnet.build_vnet_hdr(vnet.VirtioNetHdr(flags, gso_type, hdr_len, gso_size,
                                                 csum_start, csum_offset)) + bytes(frame)


def scapy_checksums(frame: bytes) -> tuple[int, int]:
    """(IP, TCP) checksums scapy computes for ``frame``'s content."""
    ref = Ether(frame)
    del ref[IP].chksum, ref[TCP].chksum
    ref = Ether(bytes(ref))
    return ref[IP].chksum, ref[TCP].chksum


def test_vnet_rx_completes_a_partial_checksum_and_strips_the_header(rx):
    raw = partial_tcp_superframe(b"x" * 100)
    out = rx.vnet_rx(with_hdr(raw, vnet.VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, 34, 16), 10)
    assert type(out) is bytes and len(out) == len(raw)      # small: plain bytes
    assert (Ether(out)[IP].chksum, Ether(out)[TCP].chksum) == scapy_checksums(out)
    assert out[:50] == bytes(raw[:50]) and out[52:] == bytes(raw[52:])


def test_vnet_rx_passes_a_tcp_super_frame_whole_as_the_segments_scapy_counts(rx):
    payload = bytes((i * 13) & 0xFF for i in range(1448 * 30 + 7))
    raw = partial_tcp_superframe(payload)
    hdr = vnet.gso_hdr_for(raw, 1448)
    out = rx.vnet_rx(vnet.build_vnet_hdr(hdr) + bytes(raw), 10)
    assert isinstance(out, GsoFrame) and out.csum_valid
    # the segments it stands for: scapy's payload length cut at gso_size,
    # and what the kernel's GSO (our cutter) would make of it
    n = len(Ether(out)[TCP].payload)
    assert out.gso_size == 1448
    assert out.gso_segs == -(-n // 1448) == len(vnet.gso_segment(raw, hdr)) == 31
    assert Ether(out)[TCP].chksum == scapy_checksums(out)[1]
    # the 12-byte header (mrg_rxbuf) works the same
    again = rx.vnet_rx(vnet.build_vnet_hdr(hdr, 12) + bytes(raw), 12)
    assert again == out and again.gso_segs == 31
    # a super-frame the kernel vouched nothing for is still checked by the host
    unsure = rx.vnet_rx(with_hdr(out, 0, vnet.VIRTIO_NET_HDR_GSO_TCPV4, 66, 1448), 10)
    assert unsure == out and unsure.gso_segs == 31 and not unsure.csum_valid


def test_vnet_rx_keeps_a_large_data_valid_frame_flagged_and_unchanged(rx):
    """DATA_VALID (CHECKSUM_UNNECESSARY): the kernel checked it; nothing is
    summed, the frame comes up as it was, flagged so the host does not sum it
    either (a field left wrong on purpose stays wrong)."""
    raw = bytearray(bytes(Ether(**MACS) / IP(src="10.7.0.1", dst="10.7.0.2")
                          / TCP(sport=5000, dport=80, flags="A") / (b"v" * 4000)))
    raw[50] ^= 0xFF
    out = rx.vnet_rx(with_hdr(raw, vnet.VIRTIO_NET_HDR_F_DATA_VALID), 10)
    assert isinstance(out, GsoFrame) and out == bytes(raw)
    assert (out.csum_valid, out.gso_segs, out.gso_size) == (True, 1, 0)
    small = rx.vnet_rx(with_hdr(raw[:200], vnet.VIRTIO_NET_HDR_F_DATA_VALID), 10)
    assert type(small) is bytes and small == bytes(raw[:200])


def test_vnet_rx_refuses_what_it_does_not_take(rx):
    raw = partial_tcp_superframe(b"x" * 3000)
    n = len(raw)
    assert rx.vnet_rx(with_hdr(raw, 1, 0, 0, 0, n - 10, 16), 10) is None       # csum outside
    assert rx.vnet_rx(with_hdr(raw, 1, vnet.VIRTIO_NET_HDR_GSO_TCPV4, 66, 0, 34, 16),
                      10) is None                                                  # gso_size 0
    assert rx.vnet_rx(with_hdr(raw, 1, vnet.VIRTIO_NET_HDR_GSO_UDP_L4, 42, 100, 34, 6),
                      10) is None                                                  # UDP: cut
    assert rx.vnet_rx(bytes(9), 10) is None
