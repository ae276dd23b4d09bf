"""The send queue (tcp_fast.SndQueue), on both twins: what the application
wrote stays exactly what goes on the wire until it is acknowledged.

Immutable ``bytes`` are queued by reference (the object cannot change and
the queue keeps it alive), a mutable buffer is copied before the write
returns (the caller may reuse it at once, as with a kernel socket), and a
reference is taken only of a large part of an object (the memory it keeps
alive stays within twice what is queued).  The oracle for the queue's
content is a plain ``bytearray`` doing the same appends and front deletes;
end to end, the bytes received over a lossy MemoryWire (retransmissions cut
from the queue again, SACK on) against the bytes written.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest
from conftest import twin_fixture

import tcpio

tf = twin_fixture("tcp_fast", "tf")


def test_immutable_bytes_are_queued_by_reference(tf) -> None:
    data = bytes(range(256)) * 64
    q = tf.SndQueue()
    assert tf.sq_ref_ok(memoryview(data))
    tf.sq_append(q, memoryview(data)[:8192], True)
    tf.sq_append(q, memoryview(data)[8192:], True)
    assert [c.obj for c in q.chunks] == [data, data] and bytes(q) == data


@pytest.mark.parametrize("make", [bytearray, lambda b: memoryview(bytearray(b)),
                                  lambda b: memoryview(bytearray(b)).toreadonly()],
                         ids=["bytearray", "view", "readonly-view"])
def test_a_mutable_buffer_is_copied(tf, make) -> None:  # type: ignore[no-untyped-def]
    data = bytes(range(256)) * 64
    buf = make(data)
    assert not tf.sq_ref_ok(memoryview(buf))
    q = tf.SndQueue()
    tf.sq_append(q, buf, False)
    memoryview(buf).cast("B").obj[:] = bytes(len(data))     # the caller reuses it
    assert bytes(q) == data


def test_a_reference_is_taken_only_of_a_large_part_of_an_object(tf) -> None:
    big = bytes(100_000)
    assert not tf.sq_ref_ok(memoryview(big)[:40_000])        # under half of it
    assert tf.sq_ref_ok(memoryview(big)[:50_000])
    q = tf.SndQueue()
    tf.sq_append(q, memoryview(big)[:50_000], True)
    assert tf.sq_ref_ok(memoryview(big)[50_000:60_000], q)   # the rest of a write taken
    tf.sq_append(q, bytes(10), False)
    assert not tf.sq_ref_ok(memoryview(big)[50_000:60_000], q)  # not behind its start
    assert not tf.sq_ref_ok(b"x" * 4095)                     # small: copied
    assert tf.sq_ref_ok(b"x" * 4096)
    with pytest.raises(ValueError):
        tf.sq_append(tf.SndQueue(), bytearray(5000), True)  # no reference to mutable


def test_views_and_consumes_match_a_bytearray_fifo(tf) -> None:
    rng = random.Random(5)
    for _ in range(200):
        q, model = tf.SndQueue(), bytearray()
        for _ in range(rng.randrange(1, 30)):
            op = rng.random()
            if op < 0.5:
                data = rng.randbytes(rng.choice([1, 10, 3000, 5000, 70_000]))
                ref = tf.sq_ref_ok(data)
                tf.sq_append(q, data if rng.random() < 0.5 else memoryview(data), ref)
                model += data
            elif op < 0.7:
                tf.sq_append(q, bytearray(rng.randbytes(rng.randrange(1, 9000))), False)
                model += q.chunks[-1][-(len(q) - len(model)):] if len(q) > len(model) else b""
            else:
                k = rng.randrange(0, len(model) + 2)
                tf.sq_consume(q, k)
                del model[:k]
            assert len(q) == len(model) and bytes(q) == bytes(model)
            if model:
                off = rng.randrange(len(model))
                n = rng.randrange(len(model) - off + 1)
                view = tf.sq_view(q, off, n)
                assert bytes(view) == bytes(model[off:off + n])
                if isinstance(view, memoryview):
                    view.release()


async def _transfer(writes: list, mtu: int, loss: float) -> tuple[bytes, bytes, int]:
    """(sha256 written, sha256 received, segments retransmitted)."""
    wire = tcpio.MemoryWire(mtu=mtu, gso=True, loss=loss, seed=3)
    client, server = tcpio.Stack(seed=1), tcpio.Stack(seed=2)
    await client.__aenter__()
    await server.__aenter__()
    try:
        client.add_interface(wire.a, "10.0.0.1/24")
        server.add_interface(wire.b, "10.0.0.2/24")
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.set_result(await reader.read())
            writer.close()

        await server.start_server(sink, "10.0.0.2", 9)
        _, writer = await client.open_connection("10.0.0.2", 9)
        sent = hashlib.sha256()
        for w in writes:
            sent.update(bytes(w))
            writer.write(w)
            if isinstance(w, bytearray):
                w[:] = bytes(len(w))            # reused once write() returned
            await writer.drain()
        writer.write_eof()
        data = await asyncio.wait_for(got, 60)
        return sent.digest(), hashlib.sha256(data).digest(), client.host.mib["RetransSegs"]
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize(("mtu", "loss"), [(65535, 0.0), (1500, 0.02)])
async def test_the_peer_receives_what_was_written_through_loss(mtu: int, loss: float) -> None:
    """Bytes written by reference and buffers the caller reuses, across
    retransmissions cut from the queue again (loss cuts the super-frames
    into segments, SACK recovers them)."""
    rng = random.Random(7)
    big = rng.randbytes(300_000)
    writes: list = []
    for _ in range(40 if loss else 60):
        kind = rng.random()
        if kind < 0.4:
            writes.append(big)
        elif kind < 0.6:
            writes.append(memoryview(big)[rng.randrange(1000):])
        elif kind < 0.8:
            writes.append(bytearray(rng.randbytes(rng.randrange(1, 200_000))))
        else:
            writes.append(rng.randbytes(rng.randrange(1, 9000)))
    sent, received, retrans = await _transfer(writes, mtu, loss)
    assert sent == received
    if loss:
        assert retrans > 20                 # the queue was cut again, many times
