"""``open_connection`` / ``start_server`` returning asyncio's streams.

Built the way ``asyncio.streams`` builds them: a ``StreamReader`` fed by a
``StreamReaderProtocol``, and a ``StreamWriter`` over the transport, so
limits, ``drain()`` back-pressure, ``write_eof()``, ``wait_closed()`` and
``get_extra_info()`` behave as on kernel sockets.  The reader is our
subclass of asyncio's (``StreamReader`` below), which keeps received chunks
unjoined so that bulk ``read(n)`` copies nothing of its own; everything
else is asyncio's code.

Example::

    reader, writer = await stack.open_connection("10.0.0.1", 7)
    writer.write(b"ping\\n")
    await writer.drain()
    print(await reader.readline())
    writer.close()
    await writer.wait_closed()
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import weakref
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from tcpio import server as _server
from tcpio import tls
from tcpio import transports as _transports

if TYPE_CHECKING:
    from tcpio.stack import Stack

# asyncio.streams' default buffer limit (its private _DEFAULT_LIMIT): 64 KiB.
_DEFAULT_LIMIT = 2 ** 16

# Stands in for a protocol's queue of drain() waiters until one is needed.
_NO_DRAIN_WAITERS: tuple[()] = ()

# Stands in for a StreamReader's deque of received chunks while it is empty.
_NO_CHUNKS: tuple[()] = ()
_deque = collections.deque


class _ClosedCleanly:
    """``StreamReaderProtocol._closed`` after a clean ``connection_lost`` that
    no ``wait_closed()`` had asked about: done, result None; asyncio's own
    code only asks ``done()`` (and ``cancelled()``/``exception()`` in
    ``__del__``), and ``_get_close_waiter`` hands out a real done future."""

    __slots__ = ()

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def exception(self) -> None:
        return None

    def result(self) -> None:
        return None

    def __await__(self) -> Generator[Any, None, None]:
        # awaited, a done future's result at once (nothing of asyncio's
        # awaits either stand-in; a caller of the private names might)
        return None
        yield  # (a generator)


_CLOSED_CLEANLY = _ClosedCleanly()


def _trim_writer(writer: asyncio.StreamWriter) -> None:
    """asyncio's StreamWriter makes a future and sets its result at once
    (``_complete_fut``), which nothing of asyncio (3.10 to 3.13) reads again:
    a done stand-in takes its place, so an idle connection keeps no Future
    for it (issue 11: fewer objects for each full collection to scan)."""
    if getattr(writer, "_complete_fut", None) is not None:
        writer._complete_fut = _CLOSED_CLEANLY  # type: ignore[attr-defined]


class StreamReaderProtocol(asyncio.StreamReaderProtocol):
    """asyncio's StreamReaderProtocol, with its queue of ``drain()`` waiters
    made when a writer first has to wait.

    asyncio (3.10 to 3.13) gives every protocol an empty ``collections.deque``
    (``FlowControlMixin._drain_waiters``), about 0.7 KiB, of which an idle
    connection uses nothing: with thousands of idle stream connections it
    was an eighth of each one's memory (issue 11).  asyncio only iterates the
    queue (``resume_writing``, ``connection_lost``) except in
    ``_drain_helper``, which appends; so an empty tuple stands in until then.
    On an asyncio without the attribute nothing is changed.

    Likewise the future ``StreamWriter.wait_closed()`` awaits (``_closed``,
    ~0.15 KiB): asyncio makes it in ``__init__``; here it is dropped there
    and made again when first asked for (by ``wait_closed()`` or
    ``connection_lost``), which an idle connection never does.  A clean
    ``connection_lost`` (no exception) with nobody waiting makes none either
    (a server that accepts and closes made two futures per connection where
    asyncio makes one): ``wait_closed()`` later gets a done one.
    """

    _closed_fut: asyncio.Future[None] | _ClosedCleanly | None = None
    # the reader, held strongly (see _stream_reader_wr)
    _reader: asyncio.StreamReader | None = None
    # asyncio's private state, which typeshed does not declare
    _stream_writer: asyncio.StreamWriter | None
    _task: asyncio.Task[Any] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        waiters = getattr(self, "_drain_waiters", None)
        if type(waiters) is collections.deque and not waiters:
            self._drain_waiters: Any = _NO_DRAIN_WAITERS
        fut = self._closed_fut
        if fut is not None and not fut.done():
            self._closed_fut = None     # nobody has seen it: make it when asked

    # asyncio holds the reader by a weak reference (_stream_reader_wr, read
    # only by the _stream_reader property), one more object the cycle
    # collector tracks per connection (issue 11); here the reader itself.
    # Nothing lives longer for it: until connection_lost (which clears it)
    # the sock holds the transport, the transport this protocol, and a
    # reader with data arriving is fed either way.
    @property
    def _stream_reader_wr(self) -> Any:
        # (made when asked, which asyncio's code does not do)
        return None if self._reader is None else weakref.ref(self._reader)

    @_stream_reader_wr.setter
    def _stream_reader_wr(self, ref: Any) -> None:
        self._reader = None if ref is None else ref()

    @property
    def _stream_reader(self) -> asyncio.StreamReader | None:
        return self._reader

    @property
    def _closed(self) -> Any:
        fut = self._closed_fut
        if fut is None:
            fut = self._closed_fut = self._loop.create_future()  # type: ignore[attr-defined]
        return fut

    @_closed.setter
    def _closed(self, fut: asyncio.Future[None]) -> None:
        self._closed_fut = fut

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        writer = self._stream_writer
        if writer is not None:      # (a server's: asyncio made it)
            _trim_writer(writer)
        # asyncio keeps the client_connected_cb task until connection_lost
        # (a strong reference while it runs); once it is done nothing reads
        # it, and a handler that returns at once (keeps the streams, or
        # hands them to other tasks) left a done Task, its coroutine and
        # context for the connection's life: here dropped when it is done
        task = getattr(self, "_task", None)
        if task is not None:
            task.add_done_callback(self._forget_task)

    def _itself(self) -> StreamReaderProtocol:
        """This protocol: open_connection's protocol factory."""
        return self

    def _forget_task(self, task: asyncio.Task[Any]) -> None:
        if self._task is task:
            self._task = None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and self._closed_fut is None:
            self._closed_fut = _CLOSED_CLEANLY      # (asyncio sees it done)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # asyncio's, reading the reader itself (its _stream_reader is a
        # property here: one Python call fewer per application read)
        reader = self._reader
        if reader is not None:
            reader.feed_data(data)

    # TcpTransport feeds the reader itself, without calling data_received,
    # while the protocol's class has this data_received (a subclass that
    # overrides it has its own called: TcpTransport.set_protocol)
    _reader_data_received = data_received

    def _get_close_waiter(self, stream: Any) -> asyncio.Future[None]:
        if self._closed_fut is _CLOSED_CLEANLY:
            fut: asyncio.Future[None] = self._loop.create_future()  # type: ignore[attr-defined]
            fut.set_result(None)
            self._closed_fut = fut
            return fut
        return super()._get_close_waiter(stream)  # type: ignore[misc]

    def __del__(self) -> None:
        # asyncio's __del__ only reads the future's outcome: none was made,
        # or the connection ended cleanly before anyone asked, nothing to read
        if self._closed_fut is not None and self._closed_fut is not _CLOSED_CLEANLY:
            base_del = getattr(super(), "__del__", None)
            if base_del is not None:
                base_del()

    async def _drain_helper(self) -> None:
        if not self._paused and not self._connection_lost:  # type: ignore[attr-defined]
            return      # asyncio's own first answer, without its coroutine (each drain())
        if getattr(self, "_drain_waiters", None) is _NO_DRAIN_WAITERS:
            self._drain_waiters = collections.deque()
        await super()._drain_helper()  # type: ignore[misc]


class StreamReader(asyncio.StreamReader):
    """asyncio's StreamReader, without its two copies of bulk data.

    asyncio's ``feed_data`` appends every chunk to one ``bytearray`` and
    ``read(n)`` copies it out again with ``bytes(buffer[:n])``: two copies of
    every received byte (issue 12).  Here ``feed_data`` keeps the ``bytes``
    chunks it is given, unjoined, and ``read(n)`` hands a whole chunk over
    as it is when the chunk fits in ``n``; otherwise it joins or slices
    chunks (one copy), keeping its place in a chunk partly read.

    Everything else is asyncio's own code: its other methods see
    ``_buffer``, a property that first moves the kept chunks, in order, to
    the end of the ``bytearray`` (the copy asyncio made in ``feed_data``).
    The stream's bytes are that ``bytearray`` followed by the chunks, so the
    size ``feed_data`` pauses the transport at (over ``2 * limit``) and
    ``_maybe_resume_transport`` resumes it at (``limit`` or less) count both.
    """

    # asyncio's private state, which typeshed does not declare
    _limit: int
    _eof: bool
    _paused: bool
    _transport: Any
    _exception: BaseException | None
    _buf: bytearray
    _waiter: asyncio.Future[None] | None

    def __init__(self, limit: int = _DEFAULT_LIMIT,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        # a deque while it holds chunks (an idle reader keeps no ~0.6 KiB deque)
        self._chunks: Any = _NO_CHUNKS
        self._head = 0          # bytes of the first chunk already read
        self._chunked = 0       # bytes in _chunks not yet read
        super().__init__(limit, loop)

    @property
    def _buffer(self) -> bytearray:
        buf = self._buf
        chunks = self._chunks
        if chunks:
            buf += memoryview(chunks.popleft())[self._head:]
            for chunk in chunks:
                buf += chunk
            self._chunks = _NO_CHUNKS
            self._head = self._chunked = 0
        return buf

    @_buffer.setter
    def _buffer(self, buf: bytearray) -> None:
        self._buf = buf
        self._chunks = _NO_CHUNKS
        self._head = self._chunked = 0

    def _maybe_resume_transport(self) -> None:
        if self._paused and len(self._buf) + self._chunked <= self._limit:
            self._paused = False
            self._transport.resume_reading()

    def at_eof(self) -> bool:
        return self._eof and not self._buf and not self._chunks

    def feed_data(self, data: Any) -> None:
        assert not self._eof, 'feed_data after feed_eof'
        if not data:
            return
        # a bytearray or memoryview may change under us: copy it, as asyncio did
        chunk = data if type(data) is bytes else bytes(data)
        chunks = self._chunks
        if chunks is _NO_CHUNKS:
            chunks = self._chunks = _deque()
        chunks.append(chunk)
        chunked = self._chunked = self._chunked + len(chunk)
        # asyncio's _wakeup_waiter, inline (a frame fewer per chunk received)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.cancelled():
                waiter.set_result(None)
        # (the size first: it is the test that usually fails)
        if (chunked + len(self._buf) > 2 * self._limit and not self._paused
                and self._transport is not None):
            transport = self._transport
            try:
                transport.pause_reading()
            except NotImplementedError:
                self._transport = None
            else:
                self._paused = True

    async def read(self, n: int = -1) -> bytes:
        if n <= 0 or self._exception is not None:
            return await super().read(n)    # its exception, b'', or read(limit) until EOF
        buf = self._buf
        if not buf and not self._chunks and not self._eof:
            # _wait_for_data without its coroutine (a frame made, and
            # resumed, fewer per read that waits)
            waiter = self._waiter_unless_pulled('read')
            if waiter is not None:
                try:
                    await waiter
                finally:
                    self._waiter = None
        chunks = self._chunks
        if not buf and len(chunks) == 1 and not self._head and self._chunked <= n:
            # the one chunk that came, whole (a request, an echo): as it is
            data = chunks[0]
            self._chunks = _NO_CHUNKS
            self._chunked = 0
        elif len(buf) >= n or not chunks:
            data = bytes(buf[:n])           # asyncio's read
            del buf[:n]
        else:
            data = self._take(n)
        if self._paused:
            self._maybe_resume_transport()
        return data

    async def _wait_for_data(self, func_name: str) -> None:
        """asyncio's (the same errors, and a paused transport resumed), but
        first what our transport's sock already holds is taken now
        (``_waiter_unless_pulled``)."""
        waiter = self._waiter_unless_pulled(func_name)
        if waiter is not None:
            try:
                await waiter
            finally:
                self._waiter = None

    def _waiter_unless_pulled(self, func_name: str) -> asyncio.Future[None] | None:
        """_wait_for_data's steps before it waits: the future to await
        (``_waiter``), or None when there is no need to.

        What our transport's sock already holds is taken now
        (``TcpTransport._pull``, a recv() of what is queued) and, if that
        fed data or EOF, no waiting: a bulk reader whose transport pauses
        at every 256 KiB chunk (over ``2 * limit``) read a chunk per two
        loop iterations, its task woken through a future by the transport's
        look from the loop (issue 12)."""
        if self._waiter is not None:
            raise RuntimeError(f'{func_name}() called while another coroutine is '
                               f'already waiting for incoming data')
        assert not self._eof, '_wait_for_data after EOF'
        transport = self._transport
        if self._paused:
            # waiting while paused would deadlock (readexactly(n) past the limit)
            self._paused = False
            transport.resume_reading()
        pull = getattr(transport, "_pull", None)
        if pull is not None and pull(self) and (self._chunks or self._buf or self._eof
                                                or self._exception is not None):
            return None
        waiter = self._waiter = self._loop.create_future()  # type: ignore[attr-defined]
        return waiter

    def _take(self, n: int) -> bytes:
        """The first ``n`` bytes or fewer of the bytearray and the chunks."""
        buf = self._buf
        chunks = self._chunks
        parts: list[bytes | memoryview] = []
        if buf:                             # (left by readline and the like)
            parts.append(bytes(buf))
            n -= len(buf)
            buf.clear()
        head = self._head
        while chunks and n > 0:
            chunk = chunks[0]
            size = len(chunk) - head
            if size <= n:
                parts.append(memoryview(chunk)[head:] if head else chunk)
                chunks.popleft()
                head = 0
            else:
                size = n
                parts.append(memoryview(chunk)[head:head + n])
                head += n
            n -= size
            self._chunked -= size
        self._head = head
        if not chunks:
            self._chunks = _NO_CHUNKS
        if len(parts) == 1 and type(parts[0]) is bytes:
            return parts[0]
        return b''.join(parts)


async def open_connection(stack: Stack, host: str | None = None, port: int | None = None, *,
                          limit: int = _DEFAULT_LIMIT,
                          **kwds: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` on a tcpio stack (same arguments)."""
    loop = asyncio.get_running_loop()
    reader = StreamReader(limit=limit, loop=loop)
    protocol = StreamReaderProtocol(reader, loop=loop)
    # the protocol's own bound method as the factory: one object where a
    # lambda is a function, a cell and a closure tuple (issue 11)
    transport, _ = await _transports.create_connection(stack, protocol._itself,
                                                       host, port, **kwds)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    _trim_writer(writer)
    return reader, writer


async def start_server(stack: Stack, client_connected_cb: Callable[..., Any],
                       host: str | None = None, port: int | None = None, *,
                       limit: int = _DEFAULT_LIMIT, **kwds: Any) -> _server.Server:
    """``asyncio.start_server`` on a tcpio stack (same arguments)."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = StreamReader(limit=limit, loop=loop)
        return StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await _server.create_server(stack, factory, host, port, **kwds)


async def start_tls(writer: asyncio.StreamWriter, sslcontext: ssl.SSLContext, *,
                    server_hostname: str | None = None,
                    ssl_handshake_timeout: float | None = None) -> None:
    """``StreamWriter.start_tls`` that works on uvloop too (tcpio.tls.start_tls).

    Upgrades the connection in place: the same reader and writer carry
    plaintext afterwards, as with asyncio's own method (whose steps, including
    the private ``_replace_writer``, this follows).
    """
    # The writer's StreamReaderProtocol and transport are private attributes
    # (asyncio's own start_tls uses them too); typeshed does not declare them.
    protocol: Any = writer._protocol  # type: ignore[attr-defined]
    server_side = protocol._client_connected_cb is not None
    transport = writer.transport
    if not isinstance(transport, asyncio.Transport):
        raise TypeError(f"start_tls needs a read/write transport, not {transport!r}")
    await writer.drain()
    new_transport = await tls.start_tls(transport, protocol, sslcontext,
                                        server_side=server_side,
                                        server_hostname=server_hostname,
                                        ssl_handshake_timeout=ssl_handshake_timeout)
    writer._transport = new_transport  # type: ignore[attr-defined]
    protocol._replace_writer(writer)
