"""tcpio.streams.StreamReader behaves exactly as asyncio.StreamReader.

tcpio's reader keeps received chunks unjoined (issue 12); asyncio's own
StreamReader is the oracle.  The same random sequence of feed_data /
feed_eof / set_exception and read(n) / read(-1) / readline / readuntil /
readexactly / at_eof runs on each reader, each in its own event loop, over
a fake transport that logs pause_reading / resume_reading: the two logs of
results, exceptions (with IncompleteReadError.partial / .expected and
LimitOverrunError.consumed), at_eof() and transport calls must be equal.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpio.streams import StreamReader

RULES = settings(max_examples=400, deadline=None, derandomize=True, database=None)

SEPARATORS: list[Any] = [b"\n", b"ab", b"abc", b"\n\n"]
if sys.version_info >= (3, 13):
    SEPARATORS.append((b"ab", b"\n"))     # 3.13: readuntil with several separators


class FakeTransport:
    def __init__(self, log: list[Any], pausable: bool) -> None:
        self.log = log
        self.pausable = pausable

    def pause_reading(self) -> None:
        self.log.append("pause_reading")
        if not self.pausable:
            raise NotImplementedError

    def resume_reading(self) -> None:
        self.log.append("resume_reading")


def outcome(task: asyncio.Task[Any]) -> Any:
    if task.cancelled():
        return ("cancelled",)
    exc = task.exception()
    if exc is None:
        return ("ok", task.result())
    extra: tuple[Any, ...] = ()
    if isinstance(exc, asyncio.IncompleteReadError):
        extra = (exc.partial, exc.expected)
    elif isinstance(exc, asyncio.LimitOverrunError):
        extra = (exc.consumed,)
    return ("raised", type(exc).__name__, exc.args, extra)


async def drive(reader_cls: type[asyncio.StreamReader], limit: int, pausable: bool,
                ops: list[tuple[Any, ...]]) -> list[Any]:
    log: list[Any] = []
    reader = reader_cls(limit=limit)
    reader.set_transport(FakeTransport(log, pausable))  # type: ignore[arg-type]
    pending: list[tuple[int, asyncio.Task[Any]]] = []
    eof = False
    for i, op in enumerate(ops):
        kind = op[0]
        if kind == "data":
            if eof:
                continue                # asyncio asserts: feed_data after feed_eof
            _, data, wrap = op
            if wrap == "bytes":
                reader.feed_data(data)
            else:
                buf = bytearray(data)
                reader.feed_data(buf if wrap == "bytearray" else memoryview(buf))
                buf[:] = b"#" * len(buf)    # the reader must have copied it
        elif kind == "eof":
            eof = True
            reader.feed_eof()
        elif kind == "exc":
            reader.set_exception(ValueError(f"boom {i}"))
        else:
            if kind == "read":
                coro = reader.read(op[1])
            elif kind == "readline":
                coro = reader.readline()
            elif kind == "readuntil":
                coro = reader.readuntil(op[1])
            else:
                coro = reader.readexactly(op[1])
            pending.append((i, asyncio.ensure_future(coro)))
        for _ in range(4):
            await asyncio.sleep(0)
        for j, task in list(pending):
            if task.done():
                pending.remove((j, task))
                log.append((i, "done", j, outcome(task)))
        log.append((i, "at_eof", reader.at_eof(), repr(reader.exception())))
    for j, task in pending:
        task.cancel()
        await asyncio.sleep(0)
        log.append(("end", j, outcome(task)))
    # what is left unread, in order (this reads the buffer: only at the end)
    log.append(("left", bytes(reader._buffer)))  # type: ignore[attr-defined]
    return log


def run(reader_cls: type[asyncio.StreamReader], *args: Any) -> list[Any]:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(drive(reader_cls, *args))
    finally:
        loop.close()


payload = st.binary(max_size=200) | st.lists(
    st.sampled_from([b"a", b"b", b"c", b"\n", b"xyz"]), max_size=60).map(b"".join)
op = st.one_of(
    st.tuples(st.just("data"), payload, st.sampled_from(["bytes", "bytes", "bytearray", "memoryview"])),
    st.tuples(st.just("data"), payload, st.just("bytes")),
    st.tuples(st.just("eof")),
    st.tuples(st.just("exc")),
    st.tuples(st.just("read"), st.integers(-1, 300)),
    st.tuples(st.just("read"), st.integers(1, 40)),
    st.tuples(st.just("readline")),
    st.tuples(st.just("readuntil"), st.sampled_from(SEPARATORS)),
    st.tuples(st.just("readexactly"), st.integers(0, 300)),
)
ops_with_exc_rare = st.lists(op, max_size=40).map(
    lambda ops: [o for k, o in enumerate(ops) if o[0] != "exc" or k % 3 == 0])


@RULES
@given(limit=st.integers(1, 96), pausable=st.booleans(), ops=ops_with_exc_rare)
def test_same_as_asyncio(limit: int, pausable: bool, ops: list[tuple[Any, ...]]) -> None:
    assert run(StreamReader, limit, pausable, ops) == run(asyncio.StreamReader, limit, pausable, ops)


@RULES
@given(limit=st.integers(1, 96), chunks=st.lists(payload.filter(bool), min_size=1, max_size=12),
       sizes=st.lists(st.integers(1, 400), min_size=1, max_size=30))
def test_bulk_reads_same_as_asyncio(limit: int, chunks: list[bytes], sizes: list[int]) -> None:
    """Only feed_data and read(n), the bulk path: pause and resume included."""
    ops: list[tuple[Any, ...]] = [("data", c, "bytes") for c in chunks]
    ops += [("read", n) for n in sizes] + [("eof",), ("read", -1)]
    assert run(StreamReader, limit, True, ops) == run(asyncio.StreamReader, limit, True, ops)


def test_read_after_readline_left_bytes() -> None:
    """read(n) takes what readline left in the bytearray, then the chunks."""
    for n in (2, 5, 6, 9, 100):
        ops: list[tuple[Any, ...]] = [("data", b"ab\ncd", "bytes"), ("readline",),
                                      ("data", b"efgh", "bytes"), ("read", n), ("read", 3)]
        assert run(StreamReader, 64, True, ops) == run(asyncio.StreamReader, 64, True, ops)


def test_read_hands_over_whole_chunks() -> None:
    """The point of the class: a chunk that fits in n is returned, not copied."""
    async def main() -> None:
        reader = StreamReader()
        first, second = b"x" * 1000, b"y" * 500
        reader.feed_data(first)
        reader.feed_data(second)
        assert await reader.read(1000) is first
        assert await reader.read(4096) is second
        reader.feed_data(first)
        reader.feed_eof()
        assert await reader.read() is first
        assert await reader.read() == b""
        assert reader.at_eof()
    asyncio.run(main())
