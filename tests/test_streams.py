"""open_connection / start_server give asyncio's own streams, with their rules.

The oracle is asyncio's documented StreamReader/StreamWriter behaviour
(limit, drain back-pressure, write_eof, wait_closed).  Runs over the fake
core (tests/fake_core.py) on asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from fake_core import KINDS, both_loops, make_pair

# every test runs on the fake core and on real Stacks over a MemoryWire
pytestmark = pytest.mark.parametrize("kind", KINDS)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


@both_loops
async def test_echo_lines_and_exact_reads(kind: str) -> None:
    srv, cli = await make_pair(kind)
    async with await srv.start_server(echo, "10.0.0.1", 7):
        reader, writer = await cli.open_connection("10.0.0.1", 7)
        assert isinstance(reader, asyncio.StreamReader)
        assert isinstance(writer, asyncio.StreamWriter)
        writer.write(b"line one\nline two\n")
        assert await reader.readline() == b"line one\n"
        assert await reader.readexactly(4) == b"line"
        assert await reader.readuntil(b"\n") == b" two\n"
        writer.close()
        await writer.wait_closed()
        assert writer.is_closing()


@both_loops
async def test_bulk_payload_roundtrip_with_drain(kind: str) -> None:
    srv, cli = await make_pair(kind, sndbuf=4096, rcvbuf=8192)
    payload = os.urandom(1_000_000)
    async with await srv.start_server(echo, "10.0.0.1", 7):
        reader, writer = await cli.open_connection("10.0.0.1", 7)

        async def send() -> None:
            for i in range(0, len(payload), 10_000):
                writer.write(payload[i:i + 10_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        got = await reader.read()           # until the server's FIN
        await sender
        assert got == payload
        writer.close()
        await writer.wait_closed()


@both_loops
async def test_write_eof_half_close_then_reply(kind: str) -> None:
    async def answer_after_eof(reader, writer):  # type: ignore[no-untyped-def]
        request = await reader.read()          # reads to EOF
        writer.write(b"got %d bytes" % len(request))
        await writer.drain()
        writer.close()

    srv, cli = await make_pair(kind)
    async with await srv.start_server(answer_after_eof, "10.0.0.1", 7):
        reader, writer = await cli.open_connection("10.0.0.1", 7)
        assert writer.can_write_eof()
        writer.write(b"12345")
        writer.write_eof()
        assert await reader.read() == b"got 5 bytes"
        assert reader.at_eof()
        writer.close()
        await writer.wait_closed()


@both_loops
async def test_limit_is_the_readers_limit(kind: str) -> None:
    async def long_line(reader, writer):  # type: ignore[no-untyped-def]
        writer.write(b"x" * 300 + b"\n")
        await writer.drain()
        writer.close()

    srv, cli = await make_pair(kind)
    async with await srv.start_server(long_line, "10.0.0.1", 7):
        reader, writer = await cli.open_connection("10.0.0.1", 7, limit=100)
        with pytest.raises(ValueError):      # readline turns LimitOverrunError into this
            await reader.readline()
        writer.close()
        await writer.wait_closed()


@both_loops
async def test_server_side_limit_applies_to_its_readers(kind: str) -> None:
    seen: list[BaseException] = []
    done = asyncio.Event()

    async def handler(reader, writer):  # type: ignore[no-untyped-def]
        try:
            await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            seen.append(exc)
        writer.close()
        done.set()

    srv, cli = await make_pair(kind)
    async with await srv.start_server(handler, "10.0.0.1", 7, limit=64):
        _, writer = await cli.open_connection("10.0.0.1", 7)
        writer.write(b"y" * 200)
        await done.wait()
        assert len(seen) == 1
        writer.close()


@both_loops
async def test_get_extra_info_both_sides(kind: str) -> None:
    peers: list[tuple[str, int]] = []

    async def handler(reader, writer):  # type: ignore[no-untyped-def]
        peers.append(writer.get_extra_info("peername"))
        writer.close()

    srv, cli = await make_pair(kind)
    async with await srv.start_server(handler, "10.0.0.1", 7):
        reader, writer = await cli.open_connection("10.0.0.1", 7)
        await reader.read()
        assert writer.get_extra_info("peername") == ("10.0.0.1", 7)
        assert peers == [writer.get_extra_info("sockname")]
        writer.close()
        await writer.wait_closed()


@both_loops
async def test_drain_blocks_and_memory_stays_flat_while_reader_paused(kind: str) -> None:
    """A writer that drains cannot outrun a reader that stopped reading."""
    release = asyncio.Event()
    received = 0

    async def slow_reader(reader, writer):  # type: ignore[no-untyped-def]
        nonlocal received
        await release.wait()                  # read nothing until released
        while data := await reader.read(65536):
            received += len(data)
        writer.close()

    srv, cli = await make_pair(kind, sndbuf=16384, rcvbuf=65536)
    async with await srv.start_server(slow_reader, "10.0.0.1", 7):
        _, writer = await cli.open_connection("10.0.0.1", 7)
        transport = writer.transport
        high = transport.get_write_buffer_limits()[1]
        chunk = b"m" * 8192
        written = 0
        peak = 0

        async def writer_loop() -> None:
            nonlocal written, peak
            for _ in range(200):
                writer.write(chunk)
                written += len(chunk)
                peak = max(peak, transport.get_write_buffer_size())
                await writer.drain()
            writer.write_eof()

        task = asyncio.create_task(writer_loop())
        for _ in range(50):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        # Blocked in drain(): what was written is bounded by the buffers on
        # the way: transport high water (+ the chunk that crossed it), the
        # send buffer, the peer's receive buffer, and the StreamReader's own
        # buffer, which pauses its transport above 2 * limit (plus one read).
        assert not task.done()
        limit = 2 ** 16
        bound = (high + len(chunk)) + 16384 + 65536 + (2 * limit + 65536)
        assert written <= bound
        # ... and it stays there: memory is flat while the reader sleeps
        before = written
        for _ in range(20):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert written == before
        assert peak <= high + len(chunk)
        release.set()
        await task
        writer.close()
        await writer.wait_closed()
        while received < written:
            await asyncio.sleep(0.005)
        assert received == 200 * 8192


@both_loops
async def test_concurrent_drains_all_wait_while_paused_and_all_return_on_resume(kind: str) -> None:
    """asyncio's rule since 3.10: any number of tasks may wait in drain() at
    once; every one returns when the transport resumes writing.  (tcpio's
    protocol makes the waiters' queue only when the first one waits: an
    idle connection carries none.)"""
    release = asyncio.Event()

    async def slow_reader(reader, writer):  # type: ignore[no-untyped-def]
        await release.wait()
        while await reader.read(65536):
            pass
        writer.close()

    srv, cli = await make_pair(kind, sndbuf=16384, rcvbuf=65536)
    async with await srv.start_server(slow_reader, "10.0.0.1", 7):
        _, writer = await cli.open_connection("10.0.0.1", 7)
        protocol = writer._protocol  # type: ignore[attr-defined]
        assert not getattr(protocol, "_drain_waiters", ())    # idle: nothing queued
        for _ in range(64):                 # past every buffer on the way
            writer.write(b"d" * 8192)
        drains = [asyncio.create_task(writer.drain()) for _ in range(3)]
        for _ in range(20):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert not any(d.done() for d in drains)
        release.set()
        await asyncio.wait_for(asyncio.gather(*drains), 10)
        writer.close()
        await writer.wait_closed()


@both_loops
async def test_a_clean_close_nobody_waits_for_makes_no_closed_future(kind: str) -> None:
    """A server that accepts and closes: asyncio's protocol resolves its
    ``wait_closed()`` future in connection_lost; tcpio's makes none when no
    one asked, and wait_closed() asked afterwards still returns at once (a
    done future); after an error it is made and carries the error."""
    protocols: list = []
    done = asyncio.Event()

    async def close_at_once(reader, writer):  # type: ignore[no-untyped-def]
        protocols.append(writer._protocol)
        writer.close()
        done.set()

    srv, cli = await make_pair(kind)
    async with await srv.start_server(close_at_once, "10.0.0.1", 7):
        reader, writer = await cli.open_connection("10.0.0.1", 7)
        await asyncio.wait_for(done.wait(), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 10)
        for _ in range(5):
            await asyncio.sleep(0)
        proto = protocols[0]
        assert proto._closed.done() and not isinstance(proto._closed_fut, asyncio.Future)
        waiter = proto._get_close_waiter(None)
        assert isinstance(waiter, asyncio.Future) and waiter.result() is None
        await asyncio.wait_for(asyncio.shield(waiter), 1)
        failed = type(proto)(asyncio.StreamReader(), loop=asyncio.get_running_loop())
        failed.connection_lost(ConnectionResetError())
        assert isinstance(failed._closed_fut, asyncio.Future)
        assert isinstance(failed._closed.exception(), ConnectionResetError)
