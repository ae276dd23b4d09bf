"""TSO6 out through the TAP against the kernel (issues 12 and 17).

With offloads negotiated (TUN_F_TSO6 accepted) tcpio hands the kernel its
IPv6 TCP data as super-frames of up to 64 KiB with a virtio-net header of
gso_type TCPV6 and a partial checksum, as it does IPv4's with TSO4; the
kernel cuts them.  Every byte must arrive (sha256 at the kernel socket),
the kernel must count no checksum or input errors, and Wireshark must read
the capture (the super-frames as they crossed the device, their checksums
completed by the pcap writer) with every TCP checksum Good."""

from __future__ import annotations

import asyncio

import pytest

from tcpio.devices import virtio_net as vnet

from .test_ipv6_kernel import KERNEL6, ipv6_peer
from .test_ipv6_kernel_tcp import connect6_to_kernel
from .test_tcp_kernel_bulk import MiB, expected_digest, tcpio_to_kernel
from .test_tcp_kernel_common import kernel_mib
from .tshark import fields, matching, needs_tshark, warnings_besides_answered_dsacks

pytestmark = pytest.mark.tap

SEED = 16
PORT = 7660


async def send6(peer, nbytes: int) -> str:
    sock, ksock = await connect6_to_kernel(peer, PORT)
    try:
        return await asyncio.wait_for(tcpio_to_kernel(sock, ksock, nbytes, SEED), 300)
    finally:
        sock.close()
        ksock.close()


async def test_tcpio_to_kernel_over_ipv6_leaves_in_tso6_super_frames(tap_required):
    async with ipv6_peer() as peer:
        tap = peer.tap
        assert tap.offloads & vnet.TUN_F_TSO6 and tap.gso_max_size6 == 0xFFFF
        digest = await send6(peer, 16 * MiB)
        mib, kmib = peer.stack.mib(), kernel_mib(peer.ns)
    assert digest == expected_digest(16 * MiB, SEED)
    assert tap.stats["tx_dropped"] == tap.stats["tx_errors"] == 0
    gs = tap.gso_stats
    assert gs["tx_gso_frames"] > 16 * MiB // 65536 // 2
    assert gs["tx_gso_segs"] > 10 * gs["tx_gso_frames"]
    # TCP counts segments, IPv6 datagrams: far fewer datagrams than segments
    assert mib["OutSegs"] > 5 * mib["Ip6OutRequests"] // 2
    # the kernel took every one with its partial checksum
    assert kmib["InCsumErrors"] == 0 and kmib["InErrs"] == 0


async def test_without_tso6_ipv6_goes_segment_by_segment(tap_required):
    """TSO4 alone (TUN_F_TSO6 not asked for): IPv6 frames go one per segment."""
    opts = {"offloads": vnet.TUN_F_CSUM | vnet.TUN_F_TSO4}
    async with ipv6_peer(tap_options=opts) as peer:
        tap = peer.tap
        assert tap.gso_max_size6 == 0 and tap.gso_max_size == 0xFFFF
        digest = await send6(peer, 2 * MiB)
    assert digest == expected_digest(2 * MiB, SEED)
    assert tap.gso_stats["tx_gso_frames"] == 0


@needs_tshark
async def test_a_tso6_capture_shows_the_super_frames_and_tshark_reads_it_clean(tap_required,
                                                                               tmp_path):
    path = str(tmp_path / "tso6.pcap")
    async with ipv6_peer(pcap=path) as peer:
        digest = await send6(peer, 4 * MiB)
        assert peer.tap.gso_stats["tx_gso_frames"] > 0
    assert digest == expected_digest(4 * MiB, SEED)
    sizes = await asyncio.to_thread(fields, path, "frame.len",
                                    display_filter=f"ipv6.dst == {KERNEL6} && tcp.len > 1500")
    assert sizes and max(int(n) for (n,) in sizes) > 60000   # 64 KiB frames, as they crossed
    rows = await asyncio.to_thread(fields, path, "tcp.checksum.status",
                                   display_filter="ipv6 && tcp")
    statuses = [s for r in rows for s in r[0].split(",") if s]
    assert len(statuses) > 50 and set(statuses) == {"1"}
    assert await asyncio.to_thread(matching, path, "_ws.malformed") == []
    # every warning, except a D-SACK of a retransmission the capture holds
    # (the kernel's spurious tail loss probe, RFC 2883: tshark warns on all)
    assert await asyncio.to_thread(
        warnings_besides_answered_dsacks, path, "ipv6 && tcp") == []
