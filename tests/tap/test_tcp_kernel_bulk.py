"""Bulk data with the Linux kernel as the peer: every byte arrives, in order.

A seeded byte stream goes kernel -> tcpio and tcpio -> kernel over the TAP;
the receiver's sha256 must equal the sender's.  Again with 2% loss injected
on tcpio's side of the TAP in both directions (ImpairedDevice: this kernel
has no netem), where recovery (RTO, fast retransmit, SACK) must do the work
on both stacks.  On the clean path the capture is judged by Wireshark: no
spurious retransmissions, nothing ACKed that was not sent, no sequence gaps,
no data past the advertised window, no retransmission by tcpio at all.

The default suite moves 32 MiB (8 MiB when the capture is analysed, 16 MiB
under loss); the 256 MiB runs are marked slow and need TCPIO_SLOW=1.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket

import pytest
from netns import KernelPeer, kernel_peer

from tcpio.devices.impair import Impairment
from tcpio.devices.memory import ImpairedDevice

from .test_tcp_kernel_common import (
    connect_to_kernel,
    kernel_mib,
    tshark_tcp_problems,
    window_violations,
)
from .tshark import needs_tshark

pytestmark = pytest.mark.tap

MiB = 1024 * 1024
CHUNK = 256 * 1024
PORT = 7300
slow = [pytest.mark.slow,
        pytest.mark.skipif(os.environ.get("TCPIO_SLOW") != "1",
                           reason="256 MiB soak: set TCPIO_SLOW=1")]


def stream(nbytes: int, seed: int):
    """The byte stream to send, chunk by chunk (seeded, so both ends agree)."""
    rng = random.Random(seed)
    left = nbytes
    while left:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def expected_digest(nbytes: int, seed: int) -> str:
    h = hashlib.sha256()
    for chunk in stream(nbytes, seed):
        h.update(chunk)
    return h.hexdigest()


async def kernel_to_tcpio(sock, ksock: socket.socket, nbytes: int, seed: int) -> str:
    """Send from the kernel socket, receive with tcpio; tcpio's digest."""
    loop = asyncio.get_running_loop()

    async def send() -> None:
        for chunk in stream(nbytes, seed):
            await loop.sock_sendall(ksock, chunk)
        ksock.shutdown(socket.SHUT_WR)

    async def receive() -> str:
        h = hashlib.sha256()
        while chunk := await sock.recv(CHUNK):
            h.update(chunk)
        return h.hexdigest()

    _, digest = await asyncio.gather(send(), receive())
    return digest


async def tcpio_to_kernel(sock, ksock: socket.socket, nbytes: int, seed: int) -> str:
    """Send with tcpio, receive on the kernel socket; the kernel side's digest."""
    loop = asyncio.get_running_loop()

    async def send() -> None:
        for chunk in stream(nbytes, seed):
            await sock.sendall(chunk)
        sock.shutdown(socket.SHUT_WR)

    async def receive() -> str:
        h = hashlib.sha256()
        buf = bytearray(CHUNK)
        while n := await loop.sock_recv_into(ksock, buf):
            h.update(memoryview(buf)[:n])
        return h.hexdigest()

    _, digest = await asyncio.gather(send(), receive())
    return digest


DIRECTIONS = {"kernel_to_tcpio": kernel_to_tcpio, "tcpio_to_kernel": tcpio_to_kernel}


async def transfer(peer: KernelPeer, direction: str, nbytes: int, seed: int) -> str:
    """Connect tcpio to the kernel, move the stream one way, close both ends."""
    sock, ksock = await connect_to_kernel(peer, PORT, 30)
    try:
        return await DIRECTIONS[direction](sock, ksock, nbytes, seed)
    finally:
        sock.close()
        ksock.close()


def lossy(seed: int, loss: float):
    """Wrap the TAP: the same loss rate on frames out of and into tcpio."""
    return lambda dev: ImpairedDevice(dev, Impairment(loss=loss, seed=seed),
                                      Impairment(loss=loss, seed=seed + 1))


async def arp_out_of_the_way(peer: KernelPeer) -> None:
    """A permanent neighbour entry on the kernel side and a resolved one on
    ours keep ARP (which an injected loss could hit) out of the picture."""
    peer.ns.ip("neigh", "replace", peer.tcpio_ip, "lladdr", peer.tap.mac.hex(":"),
               "dev", peer.ifname, "nud", "permanent")
    for _ in range(20):
        try:
            await peer.stack.ping(peer.kernel_ip, timeout=1)
            break
        except TimeoutError:
            pass


async def run(direction: str, nbytes: int, *, loss: float = 0.0, pcap: str | None = None
              ) -> tuple[dict[str, int], dict[str, int], KernelPeer]:
    """Move ``nbytes`` one way, check the sha256; tcpio's and the kernel's MIBs."""
    seed = nbytes ^ len(direction)
    wrap = lossy(seed, loss) if loss else None
    async with kernel_peer(pcap=pcap, wrap=wrap, ipv6=False) as peer:
        if loss:
            await arp_out_of_the_way(peer)
        digest = await asyncio.wait_for(transfer(peer, direction, nbytes, seed), 600)
        mib = peer.stack.mib()
        kmib = kernel_mib(peer.ns)
    assert digest == expected_digest(nbytes, seed)
    return mib, kmib, peer


@pytest.mark.parametrize("direction", list(DIRECTIONS))
async def test_32mib_clean(tap_required, direction):
    mib, kmib, _ = await run(direction, 32 * MiB)
    assert "TcpInErrs" not in mib and "InCsumErrors" not in mib
    assert kmib["InErrs"] == 0 and kmib["InCsumErrors"] == 0


@pytest.mark.parametrize("direction", list(DIRECTIONS))
async def test_16mib_with_2pct_loss_both_ways(tap_required, direction):
    mib, kmib, _ = await run(direction, 16 * MiB, loss=0.02)
    # The loss mattered: the sender had to retransmit, the receiver saw holes.
    if direction == "tcpio_to_kernel":
        assert mib["RetransSegs"] > 0 and kmib["TCPOFOQueue"] > 0
    else:
        assert kmib["RetransSegs"] > 0 and mib["TCPOFOQueue"] > 0


@needs_tshark
@pytest.mark.parametrize("direction", list(DIRECTIONS))
async def test_clean_path_capture_has_nothing_for_tshark(tap_required, tmp_path, direction):
    path = str(tmp_path / f"{direction}.pcap")
    mib, kmib, peer = await run(direction, 8 * MiB, pcap=path)
    # On a clean path tcpio resends nothing but RFC 8985 tail loss probes:
    # when the kernel holds its ACK past the probe timeout (2*SRTT + 2 ms,
    # e.g. its delayed ACK while our window-limited flight waits), the probe
    # retransmits the last segment and the kernel D-SACKs it, exactly as the
    # kernel's own sender probes us in the other direction (its
    # TCPLossProbes).  Each such probe shows as one plain [TCP Retransmission]
    # from tcpio; nothing else may.
    retrans = mib.get("RetransSegs", 0)
    assert retrans <= mib.get("TCPLossProbes", 0)
    problems = await asyncio.to_thread(tshark_tcp_problems, path, peer.tcpio_ip)
    probes = [p for p in problems
              if f" {peer.tcpio_ip} \u2192 " in p and "[TCP Retransmission]" in p]
    assert len(probes) <= retrans
    # The same holds for the kernel as the sender: when this 2-vCPU machine
    # leaves tcpio unscheduled past the kernel's probe timeout (2*SRTT, a few
    # ms early in the transfer), the kernel's TLP resends its last segment
    # although it had arrived, and tshark, seeing our ACK first, calls it
    # spurious.  Allowed only as many as the kernel counts as its own loss
    # probes, and only if the kernel resent nothing else (no RTO).
    kprobes = [p for p in problems
               if f" {peer.kernel_ip} \u2192 " in p and "Retransmission]" in p]
    assert kmib.get("RetransSegs", 0) <= kmib.get("TCPLossProbes", 0)
    assert len(kprobes) <= kmib.get("TCPLossProbes", 0)
    assert [p for p in problems if p not in probes and p not in kprobes] == []
    assert await asyncio.to_thread(window_violations, path) == []


@pytest.mark.parametrize("direction", [pytest.param(d, marks=slow) for d in DIRECTIONS])
async def test_256mib_clean(tap_required, direction):
    await run(direction, 256 * MiB)


@pytest.mark.parametrize("direction", [pytest.param(d, marks=slow) for d in DIRECTIONS])
async def test_256mib_with_2pct_loss_both_ways(tap_required, direction):
    await run(direction, 256 * MiB, loss=0.02)
