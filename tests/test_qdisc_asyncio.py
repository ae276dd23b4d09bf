"""The transmit queue under the asyncio driver (core/qdisc.py; issue 18).

A ``MemoryWire(tx_ring=N)`` end is a driver with flow control: it stops its
interface's queue when N frames are on the line and wakes it when the other
end has taken them (``pause()``/``resume()``: a stalled link).  What the
application sees is Linux's: a UDP sender with IP_RECVERR gets ENOBUFS
(DatagramTransport's ``error_received``, as asyncio's own transport
reports a send error) once txqueuelen frames wait; a TCP stream over a small
ring and a small queue still delivers every byte (a segment the queue
refuses is kept by TCP and sent later, no loss), and nothing is dropped
by the device.  The
byte counts are checked against sha256 of what was sent.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import socket

from stackutil import Sink, run_on, two_stacks

import tcpio
from tcpio.core.udp import IP_RECVERR


def test_datagram_transport_error_received_gets_enobufs_from_a_full_queue() -> None:
    async def main():
        wire = tcpio.MemoryWire()
        a, b = await two_stacks(wire)
        try:
            await a.ping("10.0.0.2")                    # ARP resolved before the stall
            _, sink = await b.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 7))
            t, p = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
            t._sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)   # type: ignore[attr-defined]
            a.host.set_txqueuelen(wire.a.name, 5)
            wire.a.pause()
            for i in range(8):
                t.sendto(b"p%d" % i)
            await asyncio.sleep(0.1)
            held = (len(sink.received), [e.errno for e in p.errors])
            wire.a.resume()
            await sink.wait_for(lambda: len(sink.received) == 5)
            await asyncio.sleep(0.1)
            return held, [d for d, _ in sink.received], a.mib()
        finally:
            a.close()
            b.close()

    held, got, mib = run_on("virtual", main)
    assert held == (0, [errno.ENOBUFS] * 3)
    assert got == [b"p%d" % i for i in range(5)]       # the queue's five, in order
    assert (mib["UdpOutDatagrams"], mib["UdpSndbufErrors"], mib["OutDiscards"]) == (5, 3, 3)


def test_udp_without_recverr_is_silent_and_counted() -> None:
    async def main():
        wire = tcpio.MemoryWire()
        a, b = await two_stacks(wire)
        try:
            await a.ping("10.0.0.2")
            t, p = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
            a.host.set_txqueuelen(wire.a.name, 2)
            wire.a.pause()
            for i in range(6):
                t.sendto(b"s%d" % i)
            await asyncio.sleep(0.05)
            return p.errors, a.mib()
        finally:
            a.close()
            b.close()

    errors, mib = run_on("virtual", main)
    assert errors == []
    assert (mib["UdpOutDatagrams"], mib["UdpSndbufErrors"], mib["OutDiscards"]) == (2, 4, 4)


def test_a_stream_through_a_small_ring_and_queue_arrives_whole() -> None:
    data = bytes(range(251)) * 4000                     # ~1 MB, not a multiple of 256

    async def main():
        wire = tcpio.MemoryWire(tx_ring=8, delay=0.0005)
        a, b = await two_stacks(wire)
        try:
            a.host.set_txqueuelen(wire.a.name, 16)
            got = hashlib.sha256()
            count = 0
            done = asyncio.Event()

            async def server(reader, writer) -> None:
                nonlocal count
                while chunk := await reader.read(1 << 16):
                    got.update(chunk)
                    count += len(chunk)
                writer.close()
                done.set()

            async with await b.start_server(server, "10.0.0.2", 80):
                _, writer = await a.open_connection("10.0.0.2", 80)
                writer.write(data)
                await writer.drain()
                writer.write_eof()
                await asyncio.wait_for(done.wait(), 120)
                writer.close()
            return count, got.hexdigest(), a.host.qdiscs[1].stats(), wire.a.stats, a.mib()
        finally:
            a.close()
            b.close()

    count, digest, qstats, devstats, mib = run_on("virtual", main, timeout=300)
    assert count == len(data) and digest == hashlib.sha256(data).hexdigest()
    assert devstats["tx_dropped"] == 0                  # flow control, not device drops
    assert qstats["sent"] > 0                           # frames did wait in the queue
    # the full queue refused segments, and TCP heard it (tcp_transmit_skb:
    # CWR, the segment kept), so none was lost: nothing retransmitted, no RTO
    assert qstats["dropped"] > 0
    assert mib.get("RetransSegs", 0) == 0 and mib.get("TCPTimeouts", 0) == 0
