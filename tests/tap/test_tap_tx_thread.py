"""The TAP's writer thread (``TapDevice(tx_thread=True)``, issue 11): what the
loop sends is written by a thread of the device's own, so the kernel's
receive of each frame (which runs inside its write) runs beside the loop.

Oracles: the kernel.  Its TCP delivers every byte (the digest) and, on a
clean path, never queues a segment out of order (TcpExt TCPOFOQueue): the
thread kept the frames' order.  Its UDP socket counts the datagrams that
were still queued for the thread when the device stopped: all of them were
written before the fd closed.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from netns import kernel_peer

from .test_tcp_kernel_bulk import DIRECTIONS, expected_digest, transfer
from .test_tcp_kernel_common import kernel_mib

pytestmark = pytest.mark.tap

MiB = 1024 * 1024
PORT = 7460


@pytest.mark.parametrize("direction", list(DIRECTIONS))
async def test_bulk_through_the_writer_thread_arrives_in_order(tap_required, direction):
    nbytes, seed = 16 * MiB, 46
    async with kernel_peer(ipv6=False, tap_options={"tx_thread": True}) as peer:
        k0 = kernel_mib(peer.ns)
        digest = await asyncio.wait_for(transfer(peer, direction, nbytes, seed), 300)
        kmib = kernel_mib(peer.ns)
        writer = peer.tap.tx_writer
        assert writer is not None and writer.batches > 0
        stats = dict(peer.tap.stats)
    assert digest == expected_digest(nbytes, seed)
    # every frame went through the thread, none dropped, none out of order
    assert stats["tx_packets"] > 0 and stats["tx_dropped"] == 0
    assert kmib.get("TCPOFOQueue", 0) == k0.get("TCPOFOQueue", 0)
    assert kmib["InErrs"] == k0["InErrs"] and kmib["InCsumErrors"] == k0["InCsumErrors"]


async def test_stop_writes_what_the_thread_still_holds(tap_required):
    count = 150
    async with kernel_peer(ipv6=False, tap_options={"tx_thread": True}) as peer:

        def listener() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((peer.kernel_ip, PORT))
            s.setblocking(False)
            return s

        ksock = peer.ns.call(listener)
        try:
            await peer.stack.ping(peer.kernel_ip, timeout=5)     # ARP resolved
            transport, _ = await peer.stack.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(peer.tcpio_ip, 0))
            for i in range(count):
                transport.sendto(i.to_bytes(4, "big") * 64, (peer.kernel_ip, PORT))
            writer = peer.tap.tx_writer
            assert writer is not None
            peer.tap.stop()         # at once: the thread may still hold some
            assert writer.pending == 0 and not writer.thread.is_alive()
            got = []
            for _ in range(count + 1):
                try:
                    got.append(ksock.recv(2048))
                except BlockingIOError:
                    break
        finally:
            ksock.close()
    # all of them, in the order sent
    assert [int.from_bytes(d[:4], "big") for d in got] == list(range(count))
