"""Checksum offload on a MemoryWire (issue 12): ``MemoryWire(gso=True)``.

Its ends take partial checksums as a TAP with TUN_F_CSUM does, so TCP's send
loop leaves the checksum of its data frames partial (a super-frame, or one
big segment: also at a 64 KiB MTU where there is no TSO), and the receiving
end trusts them (csum_valid): nothing sums 64 KiB on either side.  What a
reader of the wire sees must not change: a capture shows every checksum
complete (scapy recomputes them; tshark checks them when installed), a bit
flipped by the corruption model still fails its checksum with offload on or
off, and the layered receive path (which checks checksums itself) still
takes such frames."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader
from stackutil import two_stacks
from tap.tshark import fields, needs_tshark

import tcpio
from tcpio._fast.gso import GsoFrame, csum_completed, gso_frame
from tcpio.devices import virtio_net

NBYTES = 1024 * 1024


async def bulk(wire: tcpio.MemoryWire, nbytes: int = NBYTES, pcap_a: io.BytesIO | None = None,
               raw_on_b: bool = False) -> tuple[tcpio.Stack, tcpio.Stack]:
    """``nbytes`` from a (10.0.0.1) to b (10.0.0.2); the bytes must arrive intact."""
    a, b = await two_stacks(wire, pcap_a)
    raw = None
    if raw_on_b:
        # a raw TCP socket on b: every TCP segment takes the layered path
        import socket
        raw = b.socket(socket.SOCK_RAW, socket.IPPROTO_TCP)
    data = random.Random(7).randbytes(nbytes)
    got = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.set_result(await reader.read())
        writer.close()

    server = await b.start_server(sink, "10.0.0.2", 9)
    try:
        _, writer = await a.open_connection("10.0.0.2", 9)
        writer.write(data)          # (buffered whole, then the FIN after it)
        writer.write_eof()
        received = await asyncio.wait_for(got, 60)
        writer.close()
    finally:
        server.close()
        if raw is not None:
            raw.close()
        a.close()
        b.close()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    return a, b


def _spy(wire: tcpio.MemoryWire) -> list:
    """Every frame end a hands to its line."""
    sent: list = []
    line = wire.a._line_out
    push, push_batch = line.push, line.push_batch

    def spy(frame):
        sent.append(frame)
        return push(frame)

    def spy_batch(frames):
        sent.extend(frames)
        return push_batch(frames)

    line.push = spy     # type: ignore[method-assign]
    line.push_batch = spy_batch     # type: ignore[method-assign]
    return sent


def _frames(pcap: io.BytesIO) -> list[bytes]:
    """The frames of a capture, read by scapy (whole: past its 64 KiB default)."""
    reader = RawPcapReader(io.BytesIO(pcap.getvalue()))
    out = []
    while True:
        try:
            data, _ = reader._read_packet(size=1 << 18)
        except EOFError:
            return out
        out.append(bytes(data))


def _csum_ok(frame: bytes) -> bool:
    """scapy's own TCP checksum of the frame equals the one it carries."""
    p = Ether(frame)
    carried = p[TCP].chksum
    del p[TCP].chksum
    return Ether(bytes(p))[TCP].chksum == carried


@pytest.mark.parametrize("mtu", [1500, 65535])
async def test_data_frames_leave_with_the_checksum_partial_and_arrive_trusted(mtu):
    """The sender sums no payload (the frame's checksum field holds only the
    pseudo-header sum, so scapy finds it wrong), and the receiver takes the
    frame without summing it: the transfer is intact, no InCsumErrors."""
    wire = tcpio.MemoryWire(gso=True, mtu=mtu)
    sent = _spy(wire)
    _, b = await bulk(wire)
    data = [f for f in sent if type(f) is GsoFrame]
    assert data and all(f.csum_partial and f.csum_valid for f in data)
    assert not any(_csum_ok(f) for f in data[:5])
    # ... and the same frames completed are right (virtio_net.gso_segment as skb_checksum_help)
    assert all(_csum_ok(csum_completed(f)) for f in data[:5])
    assert b.host.mib.snapshot().get("InCsumErrors", 0) == 0


async def test_with_offload_off_every_frame_leaves_with_its_checksum():
    wire = tcpio.MemoryWire(gso=True, csum_offload=False, mtu=65535)
    sent = _spy(wire)
    await bulk(wire)
    tcp = [f for f in sent if len(f) > 54 and Ether(f).haslayer(TCP)]
    assert tcp and all(_csum_ok(f) for f in tcp)
    assert not any(getattr(f, "csum_partial", False) for f in sent)


@pytest.mark.parametrize("mtu", [1500, 65535])
async def test_a_capture_shows_every_checksum_complete(mtu):
    """PcapDevice records what crossed with the checksum the device would
    have put there: scapy recomputes every TCP checksum in the capture."""
    pcap = io.BytesIO()
    wire = tcpio.MemoryWire(gso=True, mtu=mtu)
    sent = _spy(wire)
    await bulk(wire, 256 * 1024, pcap_a=pcap)
    assert any(getattr(f, "csum_partial", False) for f in sent)
    frames = [f for f in _frames(pcap) if Ether(f).haslayer(TCP)]
    assert len(frames) > 10
    assert all(_csum_ok(f) for f in frames)


@needs_tshark
async def test_tshark_finds_every_checksum_good(tmp_path):
    path = tmp_path / "offload.pcap"
    pcap = io.BytesIO()
    await bulk(tcpio.MemoryWire(gso=True, mtu=65535), 256 * 1024, pcap_a=pcap)
    path.write_bytes(pcap.getvalue())
    rows = fields(str(path), "tcp.checksum.status", display_filter="tcp")
    assert rows and {r[0] for r in rows} == {"1"}      # 1: Good


@pytest.mark.parametrize("offload", [True, False])
async def test_a_corrupted_frame_fails_its_checksum_with_offload_on_or_off(offload):
    """The corruption model flips a bit of a frame whose checksum is complete
    (with offload the line completes it first, as netem does): the receiver
    drops it (InCsumErrors) and TCP repairs the stream."""
    wire = tcpio.MemoryWire(gso=offload, mtu=65535, corrupt=0.05, seed=3)
    _, b = await bulk(wire, 512 * 1024)
    assert wire.a_to_b.stats["corrupted"] > 0
    assert b.host.mib.snapshot().get("InCsumErrors", 0) > 0


async def test_the_layered_receive_path_takes_partial_frames():
    """With a raw TCP socket open the receiver takes every segment the layered
    way, which checks checksums itself: the partial one is completed first."""
    _, b = await bulk(tcpio.MemoryWire(gso=True, mtu=65535), 256 * 1024, raw_on_b=True)
    assert b.host.mib.snapshot().get("InCsumErrors", 0) == 0


def test_csum_only_vnet_header_and_completion():
    """gso_size 0: a one-segment frame whose checksum the device finishes
    (NEEDS_CSUM at the TCP checksum, gso_type NONE); gso_segment completes
    it the way scapy computes it."""
    pkt = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
                / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="A")
                / (b"x" * 999))
    partial = bytearray(pkt)
    partial[14 + 20 + 16:14 + 20 + 18] = b"\x12\x34"     # not the sum any more
    hdr = virtio_net.gso_hdr_for(partial, 0)
    assert (hdr.needs_csum, hdr.is_gso, hdr.csum_start, hdr.csum_offset) == (True, False, 34, 16)
    # the field must hold the pseudo-header sum for the completion to be right
    frame = gso_frame(bytes(pkt), 0, 1, True)
    from tcpio import _fast
    ck = _fast.load("checksum")
    pseudo = ck.pseudo_header_sum(0x0A000001, 0x0A000002, 6, len(pkt) - 34)
    raw = bytearray(frame)
    raw[50:52] = pseudo.to_bytes(2, "big")
    frame = gso_frame(bytes(raw), 0, 1, True)
    [done] = virtio_net.gso_segment(frame, virtio_net.gso_hdr_for(frame, 0))
    assert done == pkt
    assert csum_completed(frame) == pkt
