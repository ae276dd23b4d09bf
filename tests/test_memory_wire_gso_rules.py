"""MemoryWire(gso=True): tcpio <-> tcpio in 64 KiB units (issue 12).

Its ends offer TSO (and checksum offload: test_memory_wire_csum_offload_rules),
so the sender's loop hands over super-frames; without per-segment
impairment they cross whole and the
receiver takes each as the run of segments it is (far fewer frames than
segments, every byte intact); with loss they are cut into segments first,
so the loss model sees each segment (as many fates as segments) and the
retransmissions that repair it are segments too."""

from __future__ import annotations

import asyncio
import hashlib
import random

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from stackutil import two_stacks

import tcpio
from tcpio._fast.gso import GsoFrame, gso_frame

NBYTES = 2 * 1024 * 1024


async def bulk(wire: tcpio.MemoryWire) -> tuple[str, tcpio.Stack, tcpio.Stack]:
    a, b = await two_stacks(wire)
    data = random.Random(5).randbytes(NBYTES)
    got = asyncio.get_running_loop().create_future()
    ends: dict[str, dict[str, int]] = {}
    wire.tcp_info = ends            # type: ignore[attr-defined]  # both ends' at the EOF
    sender: list = []

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received = await reader.read()
        # the sender's FIN is in: it has sent all it will until our FIN, but
        # for a loss probe a slow loop iteration may have drawn (the reader
        # takes what its sock holds without waiting for the loop: the FIN
        # can be read while such a probe is still on the wire), so both ends
        # are read with nothing in flight
        while wire.in_flight:
            await asyncio.sleep(0)
        ends["receiver"] = writer.get_extra_info("tcp_sock").tcp_info()
        ends["sender"] = sender[0].tcp_info()
        got.set_result(received)
        writer.close()

    try:
        async with await b.start_server(sink, "10.0.0.2", 9):
            reader, writer = await a.open_connection("10.0.0.2", 9)
            sender.append(writer.get_extra_info("tcp_sock"))
            writer.write(data)
            await writer.drain()
            writer.write_eof()
            received = await asyncio.wait_for(got, 60)
            writer.close()
    finally:
        a.close()
        b.close()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    return "ok", a, b


async def test_super_frames_cross_whole_on_a_clean_wire():
    wire = tcpio.MemoryWire(gso=True)
    _, a, _ = await bulk(wire)
    segs = a.host.mib.snapshot()["OutSegs"]
    assert segs > NBYTES // 1460
    # fewer frames than segments crossed (flights are ACK-clocked: a few
    # segments each in memory, where the ACK comes back at once; how many
    # depends on the loop's timing, ~2.3-3 on a quiet machine)
    assert wire.a.stats["tx_packets"] < segs
    assert wire.a_to_b.stats["frames"] < segs
    # and the receiver counted each super-frame as the segments it stands
    # for: all the sender sent (its SYN, which the passive child counts, the
    # handshake's ACK, the data, the FIN)
    ends = wire.tcp_info
    assert ends["receiver"]["tcpi_segs_in"] == ends["sender"]["tcpi_segs_out"]


async def test_without_gso_every_segment_is_a_frame():
    """The reference: the same transfer, one frame per segment."""
    wire = tcpio.MemoryWire()
    _, a, _ = await bulk(wire)
    assert wire.a.stats["tx_packets"] >= a.host.mib.snapshot()["OutSegs"]


async def test_with_loss_super_frames_are_cut_and_lost_segment_by_segment():
    wire = tcpio.MemoryWire(gso=True, loss=0.02, seed=3)
    _, a, _ = await bulk(wire)
    mib = a.host.mib.snapshot()
    assert mib.get("RetransSegs", 0) > 0
    # the loss model saw each segment: at least as many fates as segments
    assert wire.a_to_b.stats["frames"] >= NBYTES // 1460
    assert wire.a_to_b.stats["lost"] > 0


def _super_frame() -> GsoFrame:
    """Two 1000-byte segments as one super-frame (scapy builds it)."""
    pkt = (Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
           / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, flags="A")
           / (b"s" * 2000))
    return gso_frame(bytes(pkt), 1000, 2, False)


async def _cross(wire: tcpio.MemoryWire, frame: GsoFrame) -> list:
    got: list = []
    loop = asyncio.get_running_loop()
    wire.b.start(loop, got.extend)
    wire.a.start(loop, lambda frames: None)
    wire.a.send(frame)
    while not got:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    return got


async def test_a_whole_super_frame_crosses_as_the_same_object_with_checksums_trusted():
    """No copy on the wire, and the receiver is told nothing can have
    corrupted it (veth's CHECKSUM_UNNECESSARY for a local stack's frame)."""
    frame = _super_frame()
    got = await _cross(tcpio.MemoryWire(gso=True, delay=0.001), frame)
    assert len(got) == 1 and got[0] is frame and got[0].csum_valid


async def test_a_cut_super_frame_arrives_as_plain_segments_to_verify():
    """Impaired per segment: the segments are new frames, checksummed
    (the receiver verifies them)."""
    got = await _cross(tcpio.MemoryWire(gso=True, reorder=0.5, seed=1), _super_frame())
    assert len(got) == 2 and all(type(f) is bytes for f in got)
    assert sorted(len(Ether(f)[TCP].payload) for f in got) == [1000, 1000]
    for f in got:
        p = Ether(f)
        sent = p[TCP].chksum
        del p[TCP].chksum                   # scapy computes it again
        assert Ether(bytes(p))[TCP].chksum == sent


def test_gso_frame_takes_a_frame_built_as_one_without_copying_it():
    """The compiled send loop builds a super-frame in place as a GsoFrame
    (tx.tcp_data_frame's gso): gso_frame only sets its attributes; a plain
    frame (the interpreted loop's) is copied into a new GsoFrame."""
    built = GsoFrame(b"f" * 3000)
    out = gso_frame(built, 1000, 3, True)
    assert out is built and (out.gso_size, out.gso_segs, out.csum_partial) == (1000, 3, True)
    plain = b"p" * 3000
    copied = gso_frame(plain, 1000, 3, False)
    assert type(copied) is GsoFrame and copied == plain and copied.gso_segs == 3
