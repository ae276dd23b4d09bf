"""``Server``: asyncio.Server for tcpio listeners, and ``create_server``.

Accepting is callback-driven, not a task per listener: the listening core
sock's ``wakeup`` drains the accept queue (``inet_accept`` until it is empty)
and wraps each child in a :class:`~tcpio.transports.TcpTransport`.  A TLS
server starts a handshake task per connection, as asyncio does.

The semantics follow asyncio 3.12+: ``close()`` stops listening and leaves
connections alone; ``wait_closed()`` returns once the server is closed *and*
every connection it accepted has ended; ``close_clients()``/``abort_clients()``
end them (3.13).

Example::

    server = await stack.create_server(MyProtocol, "10.0.0.1", 8080)
    async with server:
        await server.serve_forever()
"""

from __future__ import annotations

import asyncio
import socket as _socket
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

    from tcpio.stack import Stack

from tcpio.netdb import inet6_literal
from tcpio.socket import SOCK_STREAM, Socket, check_family, set_reuseport
from tcpio.transports import TcpTransport, check_given_sock, make_transport, ssl_context_for


class Server(asyncio.AbstractServer):
    """Like ``asyncio.Server``, over tcpio listening sockets."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stack: Stack, sockets: list[Socket],
                 protocol_factory: Callable[[], Any], ssl_context: Any, backlog: int,
                 ssl_handshake_timeout: float | None,
                 ssl_shutdown_timeout: float | None) -> None:
        self._loop = loop
        self._stack = stack
        self._sockets: list[Socket] | None = sockets
        self._protocol_factory = protocol_factory
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._ssl_shutdown_timeout = ssl_shutdown_timeout
        self._clients: set[Any] = set()   # live transports it accepted
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving = False
        self._serving_forever_fut: asyncio.Future[None] | None = None
        self._handshakes: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<tcpio.Server sockets={self.sockets!r}>"

    # --- bookkeeping called by transports ---------------------------------
    def _attach(self, transport: Any) -> None:
        self._clients.add(transport)

    def _detach(self, transport: Any) -> None:
        self._clients.discard(transport)
        if not self._clients and self._sockets is None:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    # --- accepting -----------------------------------------------------------
    def _start_serving(self) -> None:
        if self._serving or self._sockets is None:
            return
        self._serving = True
        for sock in self._sockets:
            sk = sock.core
            # sk.wakeup runs inside the driver's kick(), which flushes after
            # (a partial, not a lambda: no Python frame of its own per wakeup)
            sk.wakeup = partial(self._accept_ready, sk)
            sock.listen(self._backlog)
            # connections may be queued already (listen() before start_serving)
            self._loop.call_soon(self._accept_ready, sk, True)

    def _accept_ready(self, sk: Any, kick: bool = False) -> None:
        """Drain the accept queue (``inet_accept`` until it is empty)."""
        if not self._serving:
            return
        stack = self._stack
        stack.update_time()
        try:
            while True:
                try:
                    child = sk.accept()
                except OSError:
                    return          # the listener was closed under us
                if child is None:
                    return
                self._accept_connection(child)
        finally:
            if kick:
                stack.kick()

    def _accept_connection(self, child: Any) -> None:
        if self._ssl_context is not None:
            task = self._loop.create_task(self._tls_handshake(child))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)
            return
        try:
            protocol = self._protocol_factory()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on
            self._loop.call_exception_handler({
                "message": "tcpio server: protocol factory failed", "exception": exc})
            child.abort()
            return
        TcpTransport(self._loop, self._stack, child, protocol, server=self)

    async def _tls_handshake(self, child: Any) -> None:
        try:
            await make_transport(self._stack, child, self._protocol_factory,
                                 ssl=self._ssl_context, server_side=True, server=self,
                                 ssl_handshake_timeout=self._ssl_handshake_timeout,
                                 ssl_shutdown_timeout=self._ssl_shutdown_timeout)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, close, go on   # a failed handshake is the client's problem
            if self._loop.get_debug():
                self._loop.call_exception_handler({
                    "message": "tcpio server: TLS handshake failed", "exception": exc})

    # --- asyncio.AbstractServer ----------------------------------------------
    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[Socket, ...]:
        return tuple(self._sockets) if self._sockets is not None else ()

    def close(self) -> None:
        """Stop listening (pending connections in the queues are reset)."""
        sockets = self._sockets
        if sockets is None:
            return
        self._sockets = None
        for sock in sockets:
            sock.core.wakeup = None
            sock.close()
        self._serving = False
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if not self._clients:
            self._wakeup()

    def close_clients(self) -> None:
        for transport in self._clients.copy():
            transport.close()

    def abort_clients(self) -> None:
        for transport in self._clients.copy():
            transport.abort()

    async def start_serving(self) -> None:
        self._start_serving()
        await asyncio.sleep(0)

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._sockets is None:
            raise RuntimeError(f"server {self!r} is closed")
        self._start_serving()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        """Return when the server is closed and all its connections ended."""
        if self._waiters is None:
            return
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _binds(host: str | Iterable[str] | None, family: int) -> list[tuple[int, str | None]]:
    """(family, address) of each listening socket, as asyncio's create_server
    gets them from getaddrinfo(host, port, family, SOCK_STREAM, AI_PASSIVE):
    no host is every family's wildcard, IPv4's first as glibc orders them
    (each bound on its own: with port 0 they get different ports, as in
    asyncio); an IPv6 literal, or family=AF_INET6, is an AF_INET6 socket."""
    hosts = [host or None] if host is None or isinstance(host, str) else list(host)
    out: list[tuple[int, str | None]] = []
    for h in hosts:
        if h is None and family in (0, _socket.AF_UNSPEC):
            out += [(_socket.AF_INET, None), (_socket.AF_INET6, None)]
        elif family == _socket.AF_INET6 or (isinstance(h, str) and inet6_literal(h)):
            out.append((_socket.AF_INET6, h))
        else:
            out.append((_socket.AF_INET, h))
    return out


async def create_server(stack: Stack, protocol_factory: Callable[[], Any],
                        host: str | Iterable[str] | None = None, port: int | None = None, *,
                        family: int = 0, flags: int = 0, sock: Socket | None = None,
                        backlog: int = 100, ssl: Any = None,
                        reuse_address: bool | None = None, reuse_port: bool | None = None,
                        keep_alive: bool | None = None,
                        ssl_handshake_timeout: float | None = None,
                        ssl_shutdown_timeout: float | None = None,
                        start_serving: bool = True) -> Server:
    """``loop.create_server`` on a tcpio stack (same arguments)."""
    loop = asyncio.get_running_loop()
    check_family(family)
    if ssl_handshake_timeout is not None and not ssl:
        raise ValueError("ssl_handshake_timeout is only meaningful with ssl")
    sslcontext = ssl_context_for(ssl, server_side=True)
    if sock is not None:
        check_given_sock(sock, host, port)
        sockets = [sock]
    else:
        sockets = []
        try:
            for fam, h in _binds(host, family):
                # an AF_INET6 socket gets IPV6_V6ONLY, as asyncio's
                # create_server sets it (so the two wildcards do not clash)
                try:
                    s = Socket(stack, SOCK_STREAM, family=fam)
                except OSError:
                    if h is not None:
                        raise
                    continue    # a wildcard of a family the stack lacks: skipped, as asyncio does
                sockets.append(s)
                if fam == _socket.AF_INET6:
                    s.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
                # asyncio sets SO_REUSEADDR on servers by default (on POSIX).
                if reuse_address is None or reuse_address:
                    s.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
                if reuse_port:
                    set_reuseport(s.setsockopt)     # as create_datagram_endpoint
                if keep_alive:
                    s.setsockopt(_socket.SOL_SOCKET, _socket.SO_KEEPALIVE, 1)
                s.bind((h, port or 0))
        except BaseException:
            for s in sockets:
                s.close()
            raise
    server = Server(loop, stack, sockets, protocol_factory, sslcontext, backlog,
                    ssl_handshake_timeout, ssl_shutdown_timeout)
    if start_serving:
        server._start_serving()
        await asyncio.sleep(0)
    return server
