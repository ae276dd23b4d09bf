"""The TAP device's read and write loops (devio, each twin) against the kernel.

The kernel's side of the TAP is the oracle: a packet socket bound to the
interface in the namespace puts frames on the TAP's ring (what the device
must read back byte for byte, in order, a budget at a time, the ring's end
an EAGAIN that is not an error) and sees every frame the device writes (the
virtio header taken off by the kernel); a kernel UDP socket's datagram,
with the checksum offload negotiated, comes with a partial checksum
(NEEDS_CSUM) and must go through the offload path, which completes it
(scapy recomputes it); writes while the link is down are the kernel's EIO, a
counted drop for each frame of the batch.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import twin_fixture
from netns import NetNs
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

import tcpio.devices.tap as tap_mod
from tcpio.devices.tap import TapDevice

pytestmark = pytest.mark.tap

ETH_P_ALL = 0x0003
ETHERTYPE = b"\x88\xb5"         # local experimental: no kernel protocol takes it
PEER_MAC = bytes.fromhex("020000000001")

devio = twin_fixture("devio", "devio")


@pytest.fixture
def ns(tap_required: None) -> Iterator[NetNs]:
    with NetNs() as ns:
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        yield ns


def up_tap(ns: NetNs, devio: Any, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> TapDevice:
    monkeypatch.setattr(tap_mod, "_FrameIO", devio.FrameIO)
    tap = ns.tap(**kw)
    ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
    ns.ip("link", "set", tap.name, "up")
    return tap


def packet_socket(ns: NetNs, tap: TapDevice) -> socket.socket:
    sock = ns.call(socket.socket, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((tap.name, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def frame(dst: bytes, size: int, tag: int) -> bytes:
    return (dst + PEER_MAC + ETHERTYPE + b"%06d" % tag).ljust(size, bytes([tag & 0xFF]))


def read_all(tap: TapDevice) -> list[list[bytes]]:
    batches: list[list[bytes]] = []
    tap._on_frames = batches.append
    while tap._on_readable():
        pass
    return batches


def ours(batches: list[list[bytes]]) -> list[bytes]:
    """Our test frames among what the device read (the kernel may add its own)."""
    return [f for b in batches for f in b if f[12:14] == ETHERTYPE]


@pytest.mark.parametrize("offloads", [False, True])
def test_the_device_reads_what_the_kernel_put_on_the_ring_byte_for_byte(
        ns: NetNs, devio: Any, monkeypatch: pytest.MonkeyPatch, offloads: bool) -> None:
    tap = up_tap(ns, devio, monkeypatch, offloads=offloads, budget=8)
    try:
        assert bool(tap.vnet_hdr_len) == offloads
        read_all(tap)                       # whatever the kernel said on link-up
        with packet_socket(ns, tap) as pkt:
            # sizes around half the read size (the loop hands large frames out
            # whole and copies small ones) and up to the largest
            sizes = [60, 61, 100, 700, 758, 759, 760, 1000, 1514, 64, 1513, 1514]
            sent = [frame(tap.mac, n, i) for i, n in enumerate(sizes)]
            for f in sent:
                pkt.send(f)
        before = dict(tap.stats)
        tap._on_frames = (batches := []).append
        assert tap._on_readable() == 8 and tap.rx_more       # the budget: more waiting
        emptied = tap.rx_emptied
        while tap._on_readable():
            pass
        assert not tap.rx_more and tap.rx_emptied > emptied  # then EAGAIN: emptied
        got = ours(batches)
        assert got == sent
        assert all(type(f) is bytes for f in got)
        assert tap.stats["rx_errors"] == 0
        assert tap.stats["rx_bytes"] - before["rx_bytes"] >= sum(sizes)
        assert tap.stats["rx_packets"] - before["rx_packets"] >= len(sent)
    finally:
        tap.stop()


@pytest.mark.parametrize("offloads", [False, True])
def test_the_kernel_sees_every_frame_the_device_writes(
        ns: NetNs, devio: Any, monkeypatch: pytest.MonkeyPatch, offloads: bool) -> None:
    tap = up_tap(ns, devio, monkeypatch, offloads=offloads)
    try:
        with packet_socket(ns, tap) as pkt:
            sent: list[bytes | bytearray] = [frame(PEER_MAC, n, i)
                                             for i, n in enumerate([60, 1514, 300, 61])]
            sent[2] = bytearray(sent[2])    # not bytes: its header from _tx_hdr
            tap.send_batch(sent)
            seen = []
            while True:
                try:
                    f = pkt.recv(4096)
                except BlockingIOError:
                    break
                if f[12:14] == ETHERTYPE:
                    seen.append(f)
        assert seen == [bytes(f) for f in sent]
        st = tap.stats
        assert st["tx_packets"] == 4 and st["tx_bytes"] == sum(map(len, sent))
        assert st["tx_dropped"] == 0 and st["tx_errors"] == 0
    finally:
        tap.stop()


def test_writes_while_the_link_is_down_are_each_a_counted_drop(
        ns: NetNs, devio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap_mod, "_FrameIO", devio.FrameIO)
    tap = ns.tap()                          # the link stays down: EIO
    try:
        tap.send_batch([frame(PEER_MAC, 60, i) for i in range(5)])
        assert tap.stats["tx_dropped"] == 5 and tap.stats["tx_errors"] == 0
        assert tap.stats["tx_packets"] == 0
    finally:
        tap.stop()


async def test_a_kernel_datagram_with_a_partial_checksum_goes_through_the_offload_path(
        ns: NetNs, devio: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tap = up_tap(ns, devio, monkeypatch, offloads=True)
    try:
        ns.ip("neigh", "add", "10.7.0.2", "lladdr", tap.mac.hex(":"), "dev", tap.name,
              "nud", "permanent")
        read_all(tap)
        with ns.socket() as sock:
            sock.sendto(b"z" * 700, ("10.7.0.2", 9))
        await asyncio.sleep(0.05)
        udp = [Ether(f) for b in read_all(tap) for f in b if UDP in Ether(f)]
        assert len(udp) == 1 and bytes(udp[0][UDP].payload) == b"z" * 700
        assert tap.gso_stats["rx_csum_partial"] >= 1         # the kernel left it to us
        got = udp[0][UDP].chksum
        del udp[0][UDP].chksum
        assert got == Ether(bytes(udp[0]))[UDP].chksum        # completed, as scapy sums it
        assert tap.stats["rx_errors"] == 0
    finally:
        tap.stop()
