"""Every byte arrives, once and in order, both ways at once, over a MemoryWire
with and without super-frames and under loss, reordering and duplication:
the sha256 of what each side read equals that of what the other wrote.

The receive path keeps large in-order payloads as views of the frames they
arrived in (tcp_fast.RcvQueue) and copies them once when read; these
transfers take it through in-order frames kept by reference, small pieces
copied, out-of-order data queued and later joined, retransmissions that
overlap what is queued, and super-frames crossing whole or cut.  Run on the
virtual clock (deterministic: each case is one seeded run)."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest
from stackutil import run_on, two_stacks

import tcpio

NBYTES = 3 * 1024 * 1024 + 777      # not a multiple of any segment size

CASES = {
    "64k-mtu clean": dict(mtu=65535),
    "gso clean": dict(gso=True),
    "gso loss+reorder": dict(gso=True, loss=0.02, reorder=0.03, seed=7),
    "1500 loss+reorder+dup": dict(loss=0.02, reorder=0.03, duplicate=0.01, seed=11),
    "9000 loss+reorder": dict(mtu=9000, loss=0.01, reorder=0.05, seed=5),
}


async def _both_ways(wire: tcpio.MemoryWire) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes],
                                                      list]:
    a, b = await two_stacks(wire)
    up = random.Random(1).randbytes(NBYTES)
    down = random.Random(2).randbytes(NBYTES - 12345)
    served: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    socks: list = []

    async def read_all(reader: asyncio.StreamReader) -> bytes:
        h = hashlib.sha256()
        while chunk := await reader.read(100_000):
            h.update(chunk)
        return h.digest()

    async def write_all(writer: asyncio.StreamWriter, data: bytes) -> None:
        view = memoryview(data)
        for off in range(0, len(data), 70_001):
            writer.write(view[off:off + 70_001])
            await writer.drain()
        writer.write_eof()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        socks.append(writer.get_extra_info("tcp_sock"))
        got, _ = await asyncio.gather(read_all(reader), write_all(writer, down))
        served.set_result(got)
        writer.close()

    try:
        async with await b.start_server(handle, "10.0.0.2", 9):
            reader, writer = await a.open_connection("10.0.0.2", 9)
            socks.append(writer.get_extra_info("tcp_sock"))
            got_down, _ = await asyncio.gather(read_all(reader), write_all(writer, up))
            got_up = await asyncio.wait_for(served, 600)
            left = [(len(sk.rq), len(sk.rq.chunks)) for sk in socks]
            writer.close()
    finally:
        a.close()
        b.close()
    return ((got_up, hashlib.sha256(up).digest()), (got_down, hashlib.sha256(down).digest()),
            left)


@pytest.mark.parametrize("case", list(CASES))
def test_bulk_both_ways_arrives_intact(case):
    wire = tcpio.MemoryWire(**CASES[case])
    (got_up, sent_up), (got_down, sent_down), left = run_on(
        "virtual", lambda: _both_ways(wire), timeout=600)
    assert got_up == sent_up
    assert got_down == sent_down
    # all read: nothing left queued, no frame still referenced by a queue
    assert left == [(0, 0), (0, 0)]
    if CASES[case].get("loss"):
        assert wire.a_to_b.stats["lost"] and wire.b_to_a.stats["lost"]
