"""TAP offloads (IFF_VNET_HDR + TUNSETOFFLOAD) against the kernel.

With offloads negotiated the kernel hands tcpio its TCP data as it built it
(TSO: up to 64 KiB per frame, checksum partial) and the device must pass
those on as GRO's aggregate with the checksum completed; every byte must
still arrive.  A refused offload bit is dropped and the rest kept;
``offloads=False`` opens the device as before (no header at all)."""

from __future__ import annotations

import asyncio

import pytest
from netns import NetNs, kernel_peer

from tcpio.devices.impair import Impairment
from tcpio.devices.memory import ImpairedDevice
from tcpio.devices.pcap import PcapDevice

from tcpio.devices import virtio_net as vnet
from tcpio.devices.tap import DEFAULT_OFFLOADS

from .test_tcp_kernel_bulk import MiB, arp_out_of_the_way, expected_digest, transfer
from .test_tcp_kernel_common import kernel_mib
from .tshark import needs_tshark

pytestmark = pytest.mark.tap

SEED = 12


async def bulk(direction: str, nbytes: int, **tap_options):
    async with kernel_peer(ipv6=False, tap_options=tap_options) as peer:
        digest = await transfer(peer, direction, nbytes, SEED)
        assert digest == expected_digest(nbytes, SEED)
        return peer.tap, peer.stack.host.mib.snapshot(), kernel_mib(peer.ns)


def test_offloads_are_on_by_default_and_reported(tap_required):
    with NetNs() as ns:
        tap = ns.tap()
        try:
            assert tap.vnet_hdr_len == vnet.VNET_HDR_LEN
            # this kernel takes checksum and TCP segmentation offload at least
            assert tap.offloads & (vnet.TUN_F_CSUM | vnet.TUN_F_TSO4) == (
                vnet.TUN_F_CSUM | vnet.TUN_F_TSO4)
            assert tap.offloads & ~DEFAULT_OFFLOADS == 0
            assert f"offloads={tap.offloads:#x}" in repr(tap)
        finally:
            tap.stop()


def test_a_refused_offload_bit_is_dropped_and_the_rest_kept(tap_required):
    with NetNs() as ns:
        # 0x8000 is no TUN_F_* bit: the kernel answers EINVAL for the whole mask
        tap = ns.tap(offloads=vnet.TUN_F_CSUM | vnet.TUN_F_TSO4 | 0x8000)
        try:
            assert tap.offloads == vnet.TUN_F_CSUM | vnet.TUN_F_TSO4
        finally:
            tap.stop()
        # segmentation without partial checksums is nothing the kernel can do
        tap = ns.tap(offloads=vnet.TUN_F_TSO4)
        try:
            assert tap.offloads == 0 and tap.vnet_hdr_len == vnet.VNET_HDR_LEN
        finally:
            tap.stop()


async def test_kernel_to_tcpio_arrives_in_super_frames_every_byte_intact(tap_required):
    tap, mib, kmib = await bulk("kernel_to_tcpio", 16 * MiB)
    gs = tap.gso_stats
    # The kernel used TSO: far fewer frames than segments, each up to 64 KiB.
    assert gs["rx_gso_frames"] > 16 * MiB // 65536 // 2
    assert gs["rx_gso_segs"] > 10 * gs["rx_gso_frames"]
    assert gs["rx_csum_partial"] > 0                 # and left us its checksums
    assert "InCsumErrors" not in mib and kmib["InErrs"] == 0


async def test_tcpio_to_kernel_leaves_in_super_frames_the_kernel_takes(tap_required):
    tap, mib, kmib = await bulk("tcpio_to_kernel", 16 * MiB)
    assert tap.stats["tx_dropped"] == tap.stats["tx_errors"] == 0
    gs = tap.gso_stats
    assert gs["tx_gso_frames"] > 16 * MiB // 65536 // 2
    assert gs["tx_gso_segs"] > 10 * gs["tx_gso_frames"]
    # TCP counts segments, IP datagrams: far fewer frames than segments
    assert mib["OutSegs"] > 5 * mib["EthOutFrames"] // 2
    # the kernel took every one with its partial checksum (no errors, no drops)
    assert kmib["InCsumErrors"] == 0 and kmib["InErrs"] == 0


@needs_tshark
async def test_a_capture_shows_the_super_frames_and_tshark_reads_it_clean(tap_required,
                                                                           tmp_path):
    from .test_tcp_kernel_common import tshark_tcp_problems, window_violations
    from .tshark import fields
    path = str(tmp_path / "tso.pcap")
    async with kernel_peer(ipv6=False, pcap=path) as peer:
        digest = await transfer(peer, "tcpio_to_kernel", 4 * MiB, SEED)
        assert digest == expected_digest(4 * MiB, SEED)
        assert peer.tap.gso_stats["tx_gso_frames"] > 0
    sizes = [int(n) for (n,) in fields(path, "frame.len", display_filter="tcp.len > 1500")]
    assert sizes and max(sizes) > 60000          # 64 KiB frames, as they crossed
    # checksums Good: the capture records a partial one completed
    problems = tshark_tcp_problems(path, peer.tcpio_ip)
    assert [p for p in problems if "[TCP Retransmission]" not in p] == []
    assert window_violations(path) == []


@pytest.mark.parametrize("direction", ["kernel_to_tcpio", "tcpio_to_kernel"])
async def test_offloads_off_opens_without_the_header_and_still_works(tap_required, direction):
    tap, mib, kmib = await bulk(direction, 8 * MiB, offloads=False)
    assert tap.offloads == 0 and tap.vnet_hdr_len == 0
    assert tap.gso_stats["rx_gso_frames"] == tap.gso_stats["rx_csum_partial"] == 0
    assert kmib["InCsumErrors"] == 0


@needs_tshark
@pytest.mark.parametrize("direction", ["kernel_to_tcpio", "tcpio_to_kernel"])
async def test_2pct_loss_with_offloads_each_way_resends_segments(tap_required, tmp_path,
                                                                 direction):
    """Offloads on, 2% loss on tcpio's side of the TAP both ways: the
    impairment cuts each super-frame into its segments first, so the loss
    falls per segment as on a wire; every byte arrives; and what tcpio
    resends is segment-sized (Retransmissions and probes stay MSS-sized: only
    new data leaves as super-frames).  The capture is taken outside the
    impairment, so it records what tcpio handed the device (super-frames
    included, lost ones too) and tshark's own TCP analysis picks out the
    retransmissions."""
    from .tshark import fields
    nbytes = 32 * MiB
    seed = SEED + len(direction)
    path = str(tmp_path / "loss.pcap")

    def wrap(dev):
        lossy = ImpairedDevice(dev, Impairment(loss=0.02, seed=seed),
                               Impairment(loss=0.02, seed=seed + 1))
        return PcapDevice(lossy, path, snaplen=96)     # headers are enough

    async with kernel_peer(ipv6=False, wrap=wrap) as peer:
        assert peer.tap.offloads & vnet.TUN_F_TSO4
        await arp_out_of_the_way(peer)
        digest = await asyncio.wait_for(transfer(peer, direction, nbytes, seed), 300)
        mib = peer.stack.mib()
        kmib = kernel_mib(peer.ns)
        gso = dict(peer.tap.gso_stats)
    assert digest == expected_digest(nbytes, seed)
    ours = f"ip.src == {peer.tcpio_ip} && tcp.len > 0"
    if direction == "tcpio_to_kernel":
        assert mib["RetransSegs"] > 0 and kmib["TCPOFOQueue"] > 0
        big = fields(path, "tcp.len", display_filter=f"{ours} && tcp.len > 1448")
        assert len(big) > 10                        # new data left in super-frames
        resent = [int(n) for (n,) in await asyncio.to_thread(
            fields, path, "tcp.len",
            display_filter=f"{ours} && (tcp.analysis.retransmission"
                           " || tcp.analysis.fast_retransmission)")]
        assert resent and max(resent) <= 1448       # segment-sized, every one
    else:
        assert kmib["RetransSegs"] > 0 and mib["TCPOFOQueue"] > 0
        assert gso["rx_gso_frames"] > 10            # the kernel's super-frames came in
