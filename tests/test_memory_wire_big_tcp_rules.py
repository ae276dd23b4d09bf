"""BIG TCP on a MemoryWire: super-frames past 64 KiB (Linux 5.19 IPv6, 6.3 IPv4).

``MemoryWire(gso=True, gso_max_size=N)`` with N above 64 KiB takes TCP
super-frames of up to N bytes of IP datagram, whose IP length field says 0
(IPv4 tot_len, IPv6 payload length) and whose length is the buffer's, which a
receiver takes only for a TCP super-frame (iph_totlen, ipv6_payload_len).
Oracles: sha256 of what crossed; scapy for the frames and the segments a
super-frame is cut into; tshark for the capture (an IPv4 one read as TSO, an
IPv6 one with RFC 2675's jumbo option); the 64 KiB limit of a device that was
not given more (the kernel's default for every device, a TAP's always)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import socket
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import checksum
from stackutil import two_stacks
from virtual_loop import VirtualClockLoop
from tap.tshark import PI_WARN, fields, matching, needs_tshark

import tcpio
from tcpio import _fast
from tcpio._fast.gso import GSO_MAX_SIZE, GsoFrame, gso_frame
from tcpio.core.host import Host
from tcpio.devices import virtio_net
from tcpio.devices.pcap import PcapWriter, _as_seen, read_pcap

NBYTES = 4 * 1024 * 1024
BIG = 262144
MACS = (b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01")


def record_frames(wire: tcpio.MemoryWire) -> list[int]:
    """The lengths of the frames end ``a`` puts on the line (before any cut)."""
    sizes: list[int] = []
    line = wire.a._line_out
    push, push_batch = line.push, line.push_batch

    def recording_push(frame: Any) -> bool:
        sizes.append(len(frame))
        return push(frame)

    def recording_push_batch(frames: Any) -> int:
        sizes.extend(map(len, frames))
        return push_batch(frames)

    line.push = recording_push          # type: ignore[method-assign]
    line.push_batch = recording_push_batch  # type: ignore[method-assign]
    return sizes


def bulk(wire: tcpio.MemoryWire, v6: bool = False, pcap: io.BytesIO | None = None,
         raw_tcp: bool = False) -> tuple[tcpio.Stack, tcpio.Stack]:
    """_bulk on a virtual clock (no timer fires early or late: the capture
    holds no spurious loss probe a loaded machine's delays would cause)."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(_bulk(wire, v6, pcap, raw_tcp))


async def _bulk(wire: tcpio.MemoryWire, v6: bool, pcap: io.BytesIO | None,
                raw_tcp: bool) -> tuple[tcpio.Stack, tcpio.Stack]:
    """NBYTES from a to b over ``wire``; sha256 equal at the far end.
    ``raw_tcp``: a raw TCP socket on b takes every segment off the fast path
    (the layered ip_rcv / ipv6_rcv and tcp_v4_rcv then see the super-frames)."""
    a, b = await two_stacks(wire, pcap_a=pcap)
    dst = "10.0.0.2"
    if v6:
        a.add_address(1, "fd00::1/64", nodad=True)
        b.add_address(1, "fd00::2/64", nodad=True)
        dst = "fd00::2"
    raw = b.socket(tcpio.SOCK_RAW, socket.IPPROTO_TCP) if raw_tcp else None
    data = random.Random(7).randbytes(NBYTES)
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result(await reader.read())
        writer.close()

    try:
        async with await b.start_server(sink, "::" if v6 else "0.0.0.0", 9):
            reader, writer = await a.open_connection(dst, 9)
            for i in range(0, NBYTES, 256 * 1024):      # bench_tcp's writes
                writer.write(data[i:i + 256 * 1024])
                await writer.drain()
            writer.write_eof()
            received = await asyncio.wait_for(got, 60)
            writer.close()
    finally:
        if raw is not None:
            raw.close()
        a.close()
        b.close()
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()
    return a, b


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_big_tcp_wire_carries_super_frames_past_64k(v6):
    wire = tcpio.MemoryWire(mtu=65535, gso=True, gso_max_size=BIG)
    sizes = record_frames(wire)
    a, b = bulk(wire, v6)
    big = [n for n in sizes if n > 14 + 0xFFFF]
    assert big, max(sizes)
    assert max(sizes) <= 14 + BIG
    # the receiver took each as the segments it stands for: no drop, no
    # header error, every segment counted once
    mib = b.host.mib.snapshot()
    assert mib.get("InHdrErrors", 0) == mib.get("Ip6InHdrErrors", 0) == 0
    assert mib.get("InTruncatedPkts", 0) == mib.get("Ip6InTruncatedPkts", 0) == 0


def test_big_tcp_through_the_layered_receive_path():
    """With a raw TCP socket open every segment goes through ip_rcv and
    tcp_v4_rcv, which take the length of a tot_len 0 super-frame from it."""
    wire = tcpio.MemoryWire(mtu=65535, gso=True, gso_max_size=BIG)
    sizes = record_frames(wire)
    _, b = bulk(wire, raw_tcp=True)
    assert max(sizes) > 14 + 0xFFFF
    assert b.host.mib.snapshot().get("InHdrErrors", 0) == 0


def test_big_tcp_ipv6_through_the_layered_receive_path():
    wire = tcpio.MemoryWire(mtu=65535, gso=True, gso_max_size=BIG)
    sizes = record_frames(wire)
    _, b = bulk(wire, v6=True, raw_tcp=True)
    assert max(sizes) > 14 + 0xFFFF
    assert b.host.mib.snapshot().get("Ip6InHdrErrors", 0) == 0


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_big_tcp_with_loss_is_cut_into_segments_and_repaired(v6):
    """2 % loss acts per segment: a BIG super-frame is cut into its MSS
    segments before the loss model (each its own fate), and what is lost
    is resent segment by segment."""
    wire = tcpio.MemoryWire(mtu=65535, gso=True, gso_max_size=BIG, loss=0.02, seed=3)
    sizes = record_frames(wire)
    a, _ = bulk(wire, v6)
    assert max(sizes) > 14 + 0xFFFF
    mib = a.host.mib.snapshot()
    assert mib["RetransSegs"] > 0
    # every frame the loss model saw was at most one segment
    assert wire.a_to_b.stats["frames"] >= mib["OutSegs"] - mib["RetransSegs"]


def test_a_device_without_big_tcp_caps_at_64k():
    """gso=True alone is the kernel's default for every device: 64 KiB."""
    wire = tcpio.MemoryWire(mtu=9000, gso=True)
    assert wire.a.gso_max_size == 0xFFFF
    sizes = record_frames(wire)
    bulk(wire)
    assert max(sizes) <= 14 + 0xFFFF
    assert max(sizes) > 14 + 9000          # super-frames still (TSO)


def test_gso_max_size_is_bounded_by_the_kernels_gso_max_size():
    assert GSO_MAX_SIZE == 524280          # 8 * GSO_MAX_SEGS (include/linux/netdevice.h)
    with pytest.raises(ValueError):
        tcpio.MemoryWire(gso=True, gso_max_size=GSO_MAX_SIZE + 1)
    host = Host()
    with pytest.raises(ValueError):
        host.add_interface("x0", mtu=1500, gso_max_size=GSO_MAX_SIZE + 1)
    host.add_interface("x1", mtu=1500, gso_max_size=GSO_MAX_SIZE)
    # and a 64 KiB MTU takes super-frames only when BIG TCP allows more
    assert tcpio.MemoryWire(mtu=65535, gso=True).a.gso_max_size == 0
    assert tcpio.MemoryWire(mtu=65535, gso=True, gso_max_size=BIG).a.gso_max_size == BIG
    assert tcpio.MemoryWire(mtu=1500, gso_max_size=BIG).a.gso_max_size == 0


# --- the frames, against scapy -----------------------------------------------------------

SRC4, DST4 = 0x0A000001, 0x0A000002
SRC6, DST6 = 0xFD00 << 112 | 1, 0xFD00 << 112 | 2


def big_frame(v6: bool, n: int, partial: bool = True) -> bytes:
    tx = _fast.load("tx")
    payload = random.Random(n).randbytes(n)
    if v6:
        return tx.tcp_frame6(*MACS, SRC6, DST6, 64, 1000, 2000, 7, 9, 0x18, 512, 5, 6, (),
                             payload, 0, partial, True)
    return tx.tcp_frame(*MACS, SRC4, DST4, 100, 64, 1000, 2000, 7, 9, 0x18, 512, 5, 6, (),
                        payload, 0, partial, True)


def test_ipv4_super_frame_past_64k_says_tot_len_0():
    frame = big_frame(False, 200000, partial=False)
    assert len(frame) == 14 + 20 + 32 + 200000
    assert frame[16:18] == b"\0\0"
    pkt = Ether(frame)
    # scapy's own sums over the whole buffer: header and TCP checksums good
    check = pkt[IP].chksum
    del pkt[IP].chksum
    assert IP(bytes(pkt[IP])).chksum == check


def test_ipv6_super_frame_past_64k_says_payload_length_0():
    frame = big_frame(True, 200000)
    assert frame[14 + 4:14 + 6] == b"\0\0" and frame[14 + 6] == 6      # no HBH in memory


def test_a_super_frame_longer_than_gso_max_size_is_refused():
    tx = _fast.load("tx")
    with pytest.raises(ValueError):
        tx.tcp_frame(*MACS, SRC4, DST4, 1, 64, 1, 2, 0, 0, 0x10, 1, -1, 0, (),
                     bytes(GSO_MAX_SIZE), 0, True, True)
    with pytest.raises(ValueError):     # not a super-frame: 65535 is the most
        tx.tcp_frame(*MACS, SRC4, DST4, 1, 64, 1, 2, 0, 0, 0x10, 1, -1, 0, (),
                     bytes(70000), 0, True, False)


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_cut_of_a_big_super_frame_gives_valid_segments(v6):
    """virtio_net.gso_segment (the wire's cut before per-segment impairments)
    takes a BIG frame's length from its buffer; scapy checks every segment."""
    mss = 8948
    n = 3 * 65536 + 100
    frame = big_frame(v6, n)
    segs = virtio_net.gso_segment(frame, virtio_net.gso_hdr_for(frame, mss))
    assert len(segs) == -(-n // mss)
    payload = b""
    for i, seg in enumerate(segs):
        pkt = Ether(seg)
        l3 = pkt[IPv6] if v6 else pkt[IP]
        tcp = pkt[TCP]
        if v6:
            assert l3.plen == len(seg) - 14 - 40
        else:
            assert l3.len == len(seg) - 14
            ip_check = l3.chksum
            del l3.chksum
            assert IP(bytes(l3)).chksum == ip_check
        tcp_check = tcp.chksum
        del tcp.chksum
        assert Ether(bytes(pkt))[TCP].chksum == tcp_check
        assert tcp.seq == (7 + i * mss) & 0xFFFFFFFF
        payload += bytes(tcp.payload)
    assert payload == random.Random(n).randbytes(n)


def test_receive_takes_tot_len_0_only_from_a_tcp_super_frame():
    """iph_totlen: a plain frame saying tot_len 0 is a header error."""
    rx = _fast.load("rx")
    frame = big_frame(False, 100000, partial=False)
    local = {DST4}
    plain = rx.rx_classify(bytes(frame), MACS[0], local, set())
    assert plain is None
    g = gso_frame(bytes(frame), 1448, -(-100000 // 1448), False)
    rec = rx.rx_classify(g, MACS[0], local, set())
    assert isinstance(rec, tuple) and rec[-1] == len(frame)      # IP end: the buffer's


def test_size_goal_and_tso_autosizing_grow_with_the_devices_gso_max_size():
    from tcpio.core.tcp.sock import TcpSock

    host = Host()
    sk = TcpSock(host.tcp)
    sk.mss_cache = 65483
    sk.max_window = 4 << 20
    tcp_fast = _fast.load("tcp_fast")
    goal = tcp_fast.xmit_size_goal(sk)
    assert goal == 65483                    # sk_gso_max_size 64 KiB: one segment
    sk.gso_max_size = BIG
    assert tcp_fast.xmit_size_goal(sk) == 4 * 65483
    assert tcp_fast.tso_segs(sk, 65483) == 4


# --- the capture --------------------------------------------------------------------------

@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_capture_records_a_big_super_frame_readably(v6):
    frame = gso_frame(big_frame(v6, 150000), 1448, 104, True)
    seen = _as_seen(frame, "ether")
    pkt = Ether(seen)
    if v6:
        # RFC 2675: payload length 0, a hop-by-hop header with the jumbo option
        assert pkt[IPv6].plen == 0 and pkt[IPv6].nh == 0
        assert seen[14 + 40:14 + 44] == bytes((6, 0, 0xC2, 4))
        assert int.from_bytes(seen[14 + 44:14 + 48], "big") == len(seen) - 14 - 40
    else:
        assert pkt[IP].len == 0
    assert len(seen) == len(frame) + (8 if v6 else 0)


@needs_tshark
@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_tshark_reads_a_big_tcp_capture_clean(v6, tmp_path):
    """A whole transfer's capture on the sender's end: tshark's TCP
    analysis and checksum checks find nothing, and it sees frames past 64 KiB
    (BIG is below the 256 KiB snap length, so each is captured whole)."""
    buf = io.BytesIO()
    bulk(tcpio.MemoryWire(mtu=65535, gso=True, gso_max_size=BIG), v6, pcap=buf)
    path = str(tmp_path / "big.pcap")
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    assert matching(path, "_ws.malformed") == []
    # (a full window is the sender using all the receiver offered, not a
    # violation; 64 KiB super-frames fill it too.  A checksum over more than
    # 64 KiB is judged below, not by tshark)
    assert matching(path, f"_ws.expert.severity >= {PI_WARN} && !tcp.analysis.window_full"
                    " && !(tcp.checksum.status == 0 && tcp.len > 65535)") == []
    # tshark's sum (in_cksum's 32-bit accumulator) overflows on segments of
    # more than ~128 KiB of random bytes and is off by 0x100 now and then:
    # it judges the frames up to 64 KiB, scapy's checksum() the bigger ones
    assert matching(path, "(tcp.checksum.status == 0 && tcp.len <= 65535)"
                    " || ip.checksum.status == 0") == []
    lens = [int(r[0]) for r in fields(path, "tcp.len", display_filter="tcp.len > 65535")]
    assert lens and max(lens) > 0xFFFF
    big = 0
    for _, _, frame in read_pcap(path):
        if len(frame) > 14 + 0xFFFF:
            assert tcp_sum_ok(frame)
            big += 1
    assert big == len(lens)
    # every byte the capture says was sent, in order: the analysis saw no gap
    assert matching(path, "tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment") == []


def tcp_sum_ok(frame: bytes) -> bool:
    """The TCP checksum of a captured BIG TCP frame, by scapy's checksum()
    over the pseudo-header with the 32-bit upper-layer length (RFC 8200 8.1,
    which IPv4's BIG TCP sums the same way) and the segment."""
    ip = frame[14:]
    if ip[0] >> 4 == 6:
        assert ip[6] == 0 and ip[40 + 2] == 0xC2           # the jumbo option
        seg, addrs = ip[48:], ip[8:40]
    else:
        seg, addrs = ip[20:], ip[12:20]
    pseudo = addrs + len(seg).to_bytes(4, "big") + b"\0\0\0\x06"
    return checksum(pseudo + seg) == 0


def test_a_small_gso_frame_is_recorded_as_it_is():
    frame = gso_frame(big_frame(True, 60000), 1448, 42, False)
    assert _as_seen(frame, "ether") == frame
    w = PcapWriter(io.BytesIO())
    w.write(frame, 0.0)
    assert w.frames == 1
    assert isinstance(frame, GsoFrame)
