"""Flow control through device wrappers and into TCP (core/qdisc.py; issue 18).

A wrapped device (``PcapDevice``, ``ImpairedDevice``) passes the interface's
queue on to the device it wraps (``DeviceWrapper.attach_netif``), so a
wrapped ``MemoryWire`` end stops and wakes its queue as an unwrapped one
does: while the end is paused, datagrams wait in the qdisc (none is
dropped by the device), and after ``resume()`` they arrive in order.  The
oracles are the receiving socket (what arrived, in what order), the inner
device's /proc/net/dev-style counters, and the capture read back with
``read_pcap`` (each frame recorded once, when the device took it, as
tcpdump's tap in the kernel's xmit_one sees it).  A TAP whose fd says
EAGAIN stops the queue too and wakes it when the fd is writable.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from stackutil import Sink, run_on

import tcpio
from tcpio.devices import tun_steering
from tcpio.devices.pcap import read_pcap
from tcpio.stack import Stack

N = 6


async def _stacks(wire: tcpio.MemoryWire, dev_a: Any) -> tuple[Stack, Stack]:
    a = Stack(seed=1, name="a")
    b = Stack(seed=2, name="b")
    await a.__aenter__()
    await b.__aenter__()
    a.add_interface(dev_a, "10.0.0.1/24")
    b.add_interface(wire.b, "10.0.0.2/24")
    return a, b


def _udp(frames: Any) -> list[bytes]:
    """The IPv4/UDP frames to port 7 of ``frames`` (ethertype 0x0800, proto 17)."""
    return [bytes(f) for f in frames if f[12:14] == b"\x08\x00" and f[23] == 17
            and int.from_bytes(f[36:38], "big") == 7]


def _udp_through_paused(wrap: str, tmp_path: Path, ring: int | None = None) -> tuple[Any, ...]:
    async def main():
        wire = tcpio.MemoryWire(delay=0.001, tx_ring=ring)
        pcap = tmp_path / "a.pcap"
        if wrap == "pcap":
            dev: Any = tcpio.PcapDevice(wire.a, str(pcap))
        elif wrap == "impaired":
            dev = tcpio.ImpairedDevice(wire.a, tcpio.Impairment(delay=0.002))
        else:
            dev = tcpio.ImpairedDevice(wire.a)           # no impairment: straight through
        a, b = await _stacks(wire, dev)
        try:
            await a.ping("10.0.0.2")                    # ARP resolved before the stall
            _, sink = await b.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 7))
            t, _ = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
            if ring is None:
                wire.a.pause()
            for i in range(N):
                t.sendto(b"d%d" % i)
            await asyncio.sleep(0.1)
            # (IPv6 neighbour discovery may wait there too)
            held = (len(sink.received), len(_udp(a.host.qdiscs[1].backlog)))
            if ring is None:
                wire.a.resume()
            await sink.wait_for(lambda: len(sink.received) == N)
            await asyncio.sleep(0.05)
            return held, [d for d, _ in sink.received], dict(wire.a.stats)
        finally:
            a.close()
            b.close()

    return run_on("virtual", main)


@pytest.mark.parametrize("wrap", ["pcap", "impaired", "impaired-noop"])
def test_a_wrapped_wire_end_stops_and_wakes_its_queue(wrap: str, tmp_path: Path) -> None:
    held, got, stats = _udp_through_paused(wrap, tmp_path)
    # paused: nothing arrived, and the datagrams wait in the qdisc (an
    # ImpairedDevice's delay line hands them to the paused end later, which
    # requeues them, so they are in the qdisc by now all the same)
    assert held == (0, N)
    assert got == [b"d%d" % i for i in range(N)]        # all of them, in order
    assert stats["tx_dropped"] == 0                      # queued, not dropped by the device


@pytest.mark.parametrize("ring", [None, 2])
def test_a_capture_records_each_frame_once_when_the_device_takes_it(
        tmp_path: Path, ring: int | None) -> None:
    # ring=2: the datagrams reach the wire end in one flush, it stops after
    # two and hands the rest back to the queue (requeue), to send on wake
    _, got, stats = _udp_through_paused("pcap", tmp_path, ring)
    assert len(got) == N
    frames = [f for _, _, f in read_pcap(str(tmp_path / "a.pcap"))]
    sent = [f for f in _udp(frames) if f[6:12] == b"\x02\x00\x00\x00\x00\x01"]  # a.'s
    payloads = [f[42:34 + int.from_bytes(f[38:40], "big")] for f in sent]   # UDP length
    assert payloads == [b"d%d" % i for i in range(N)]    # once each, in order
    # every frame the capture says a. sent is one the wire end counted
    assert len([f for f in frames if f[6:12] == b"\x02\x00\x00\x00\x00\x01"]) \
        == stats["tx_packets"]


# --- a TAP whose fd is full (EAGAIN) stops the queue --------------------------------
# The device's send side on a real fd that says EAGAIN: a SOCK_SEQPACKET
# socketpair with a small send buffer stands for the tun fd (one frame per
# write, EAGAIN when the peer has not read, writable again after it reads:
# what a tun fd does when its socket's sndbuf is spent, TUNSETSNDBUF).
# Only opening /dev/net/tun and its ioctls are replaced.


class _PairTap(tcpio.TapDevice):
    def _attach(self, fd: int, name: str, flags: int,
                syn_queue: bool | None) -> tuple[bytes, int]:
        return name.encode().ljust(40, b"\0"), flags & ~tun_steering.IFF_MULTI_QUEUE

    @staticmethod
    def _kernel_has_vnet_hdr(fd: int) -> bool:
        return False

    def _set_kernel_mtu(self, mtu: int) -> None:
        pass


def _pair_tap(monkeypatch: pytest.MonkeyPatch) -> tuple[tcpio.TapDevice, socket.socket]:
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    kernel.setblocking(False)
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any) -> int:
        if path == "/dev/net/tun":
            return os.dup(ours.fileno())
        return real_open(path, flags, *args)

    with monkeypatch.context() as m:
        m.setattr(os, "open", fake_open)
        dev = _PairTap("ptap0", txqueuelen=None, offloads=False, syn_queue=False)
    os.set_blocking(dev.fileno(), False)
    ours.close()
    return dev, kernel


@pytest.mark.parametrize("queue", [True, False])
def test_a_tap_whose_fd_is_full_stops_its_queue_and_wakes_it(
        monkeypatch: pytest.MonkeyPatch, queue: bool) -> None:
    dev, kernel = _pair_tap(monkeypatch)
    n = 200                                  # far more than the send buffer holds

    async def main():
        stack = Stack(seed=1, name="a")
        await stack.__aenter__()
        if not queue:                        # the old device: no queue to push back on
            dev.attach_netif = None          # type: ignore[assignment,method-assign]
        try:
            stack.add_interface(dev, "10.0.0.1/24")
            t, _ = await stack.create_datagram_endpoint(
                Sink, local_addr=("10.0.0.1", 5000), remote_addr=("10.0.0.255", 7),
                allow_broadcast=True)
            for i in range(n):
                t.sendto(b"t%03d" % i)
            await asyncio.sleep(0.05)
            held = (dict(dev.stats), len(stack.host.qdiscs[1].backlog),
                    stack.host.qdiscs[1].stopped)
            got: list[bytes] = []
            for _ in range(400):             # the kernel side reads, a little at a time
                try:
                    got.append(kernel.recv(4096))
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    if len(got) >= n or (not queue and len(got) >= held[0]["tx_packets"]):
                        break
            return held, got, dict(dev.stats)
        finally:
            stack.close()
            kernel.close()

    held, got, stats = asyncio.run(main())
    stats0, backlog, stopped = held
    udp = [f[42:46] for f in _udp(got)]
    assert 0 < stats0["tx_packets"] < n       # the fd filled
    if queue:
        # the rest waited in the stopped queue, none dropped; after the reads
        # every datagram went out, in order
        assert stopped and backlog > 0 and stats0["tx_dropped"] == 0
        assert udp == [b"t%03d" % i for i in range(n)]
        assert stats["tx_dropped"] == 0
    else:
        # without the queue the refused frames are dropped, counted
        assert stats0["tx_dropped"] > 0 and backlog == 0 and not stopped
        assert 0 < len(udp) < n
