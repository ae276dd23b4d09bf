"""``open_connection`` / ``start_server`` returning asyncio's own streams.

Built exactly the way ``asyncio.streams`` builds them: a ``StreamReader``
fed by a ``StreamReaderProtocol``, and a ``StreamWriter`` over the
transport, so limits, ``drain()`` back-pressure, ``write_eof()``,
``wait_closed()`` and ``get_extra_info()`` behave as on kernel sockets.

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
from collections.abc import Callable
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


_CLOSED_CLEANLY = _ClosedCleanly()


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

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        waiters = getattr(self, "_drain_waiters", None)
        if type(waiters) is collections.deque and not waiters:
            self._drain_waiters: Any = _NO_DRAIN_WAITERS
        fut = self._closed_fut
        if fut is not None and not fut.done():
            self._closed_fut = None     # nobody has seen it: make it when asked

    @property
    def _closed(self) -> Any:
        fut = self._closed_fut
        if fut is None:
            fut = self._closed_fut = self._loop.create_future()  # type: ignore[attr-defined]
        return fut

    @_closed.setter
    def _closed(self, fut: asyncio.Future[None]) -> None:
        self._closed_fut = fut

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and self._closed_fut is None:
            self._closed_fut = _CLOSED_CLEANLY      # (asyncio sees it done)
        super().connection_lost(exc)

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
        if getattr(self, "_drain_waiters", None) is _NO_DRAIN_WAITERS:
            self._drain_waiters = collections.deque()
        await super()._drain_helper()  # type: ignore[misc]


async def open_connection(stack: Stack, host: str | None = None, port: int | None = None, *,
                          limit: int = _DEFAULT_LIMIT,
                          **kwds: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection`` on a tcpio stack (same arguments)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = StreamReaderProtocol(reader, loop=loop)
    transport, _ = await _transports.create_connection(stack, lambda: protocol,
                                                       host, port, **kwds)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def start_server(stack: Stack, client_connected_cb: Callable[..., Any],
                       host: str | None = None, port: int | None = None, *,
                       limit: int = _DEFAULT_LIMIT, **kwds: Any) -> _server.Server:
    """``asyncio.start_server`` on a tcpio stack (same arguments)."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.StreamReaderProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
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
