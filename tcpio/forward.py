"""Transparent forwarding for asyncio: flows to any address, as streams.

    async def handle(request: tcpio.TcpForwardRequest) -> None:
        host, port = request.sockname            # where the client meant to go
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except ConnectionRefusedError:
            request.refuse()                     # the client sees RST: refused
            return
        reader, writer = await request.accept()  # the handshake completes now
        ...

    ifindex = stack.add_interface(tcpio.TunDevice("tun0"))
    stack.set_tcp_forwarder(handle, ifindex)
    stack.set_udp_forwarder(handle_udp, ifindex, idle_timeout=60)

The core side (which segments and datagrams reach a forwarder, the implicit
IP_TRANSPARENT listener, limits and counters) is docs/internals.md
"Transparent forwarding"; this module is the glue: it hands each new request
or session to the application's callback (a coroutine function runs as a
task) and turns an accepted connection into a ``TcpTransport``.

Addresses are as the ``socket`` module gives them: ``(host, port)`` for an
IPv4 flow, ``(host, port, flowinfo, scope_id)`` for an IPv6 one.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from tcpio.core.errors import sock_error
from tcpio.core.in_h import IPPROTO_TCP, IPPROTO_UDP
from tcpio.core.tcp.inet6_addr import V6MASK
from tcpio.core.tcp.tcp_forward import CONNECTED, FAILED, PENDING, TcpForwarder
from tcpio.core.udp_forward import UdpForwarder
from tcpio.socket import to_address
from tcpio.streams import StreamReader, StreamReaderProtocol
from tcpio.transports import make_transport

if TYPE_CHECKING:
    from tcpio.core.tcp.tcp_forward import TcpFwdRequest
    from tcpio.core.udp_forward import UdpFwdSession
    from tcpio.stack import Stack

_DEFAULT_LIMIT = 2 ** 16


def _name(addr: int, port: int) -> tuple[Any, ...]:
    """The core's (address, port) as the socket module gives it: ('10.0.0.1',
    port), or for an IPv6 flow (whose addresses the core tags) a sockaddr_in6
    ('fd00::1', port, 0, 0), as getsockname() of an AF_INET6 socket."""
    if addr > V6MASK:
        return to_address((addr & V6MASK, port, 0, 0))
    return to_address((addr, port))


def _run_callback(stack: Stack, callback: Callable[[Any], Any], arg: Any,
                  done: Callable[[], None], tasks: set[asyncio.Task[Any]]) -> None:
    """Call the application (a coroutine function as a task), then ``done()``."""
    loop = stack.loop
    try:
        result = callback(arg)
    except Exception as exc:  # noqa: BLE001 - application code: report, go on
        loop.call_exception_handler({"message": "tcpio forwarder callback failed",
                                     "exception": exc})
        done()
        return
    if not inspect.isawaitable(result):
        done()
        return

    async def run() -> None:
        try:
            await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - application code: report, go on
            loop.call_exception_handler({"message": "tcpio forwarder callback failed",
                                         "exception": exc})
        finally:
            done()

    task = loop.create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class TcpForwardRequest:
    """A SYN to ``sockname`` from ``peername``, waiting for a decision."""

    def __init__(self, fwd: TcpForwarderHandle, core: TcpFwdRequest) -> None:
        self._fwd = fwd
        self._core = core
        self.sockname: tuple[Any, ...] = _name(core.dst, core.dport)
        self.peername: tuple[Any, ...] = _name(core.src, core.sport)
        self._child: asyncio.Future[Any] | None = None

    @property
    def decided(self) -> bool:
        return self._core.state != PENDING

    def _decide(self, how: Callable[[], None]) -> None:
        stack = self._fwd.stack
        stack.update_time()
        try:
            how()
        finally:
            if not self._fwd.in_wakeup:
                stack.kick()

    def refuse(self) -> None:
        """RST to the client (its connect() fails with ECONNREFUSED)."""
        self._decide(self._core.refuse)

    def drop(self) -> None:
        """Nothing to the client (its SYN goes unanswered)."""
        self._decide(self._core.drop)

    def unreachable(self, code: int = 1) -> None:
        """ICMP destination unreachable to the client from ``sockname``
        (``code`` as RFC 792: 0 net, 1 host, 13 administratively prohibited;
        the ICMPv6 equivalent for an IPv6 flow): its connect() fails with
        ENETUNREACH / EHOSTUNREACH, as behind a router that cannot reach the
        destination."""
        self._decide(partial(self._core.unreachable, code))

    async def accept_transport(self, protocol_factory: Callable[[], Any]
                               ) -> tuple[asyncio.Transport, Any]:
        """Complete the handshake; the connection as a transport and protocol.
        ``get_extra_info("sockname")`` is the original destination."""
        loop = self._fwd.stack.loop
        self._child = loop.create_future()
        self._decide(self._core.accept)
        child = await self._child
        return await make_transport(self._fwd.stack, child, protocol_factory)

    async def accept(self, *, limit: int = _DEFAULT_LIMIT
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Complete the handshake; the connection as asyncio streams."""
        loop = self._fwd.stack.loop
        reader = StreamReader(limit=limit, loop=loop)
        protocol = StreamReaderProtocol(reader, loop=loop)
        transport, _ = await self.accept_transport(lambda: protocol)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    def _settle(self, core: TcpFwdRequest) -> None:
        fut = self._child
        if fut is None or fut.done():
            if core.state == CONNECTED and core.child is not None and fut is None:
                core.child.abort()      # nobody waits for it
            return
        if core.state == CONNECTED:
            fut.set_result(core.child)
        else:
            fut.set_exception(sock_error(errno.ETIMEDOUT, "handshake did not complete"))

    def __repr__(self) -> str:
        return f"<TcpForwardRequest {self.peername} -> {self.sockname}>"


class TcpForwarderHandle:
    """What ``Stack.set_tcp_forwarder`` returns: ``stats`` (the forwarder's
    counters), ``core`` (the sans-IO ``TcpForwarder``), ``close()``."""

    def __init__(self, stack: Stack, ifindex: int, callback: Callable[[Any], Any],
                 **limits: Any) -> None:
        self.stack = stack
        self.ifindex = ifindex
        self.callback = callback
        self.core = TcpForwarder(stack.host.tcp, **limits)
        self.core.wakeup = self._on_wakeup
        self.in_wakeup = False
        self._requests: dict[int, TcpForwardRequest] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.core.stats)

    def _on_wakeup(self) -> None:
        self.in_wakeup = True
        try:
            for core in self.core.take_ready():
                if core.state == PENDING:
                    req = TcpForwardRequest(self, core)
                    self._requests[id(core)] = req
                    _run_callback(self.stack, self.callback, req,
                                  partial(self._callback_done, req), self._tasks)
                elif core.state in (CONNECTED, FAILED):
                    waiting = self._requests.pop(id(core), None)
                    if waiting is not None:
                        waiting._settle(core)
                    elif core.child is not None:
                        core.child.abort()
        finally:
            self.in_wakeup = False

    def _callback_done(self, req: TcpForwardRequest) -> None:
        """The callback returned: an undecided request is dropped."""
        if not req.decided:
            self._requests.pop(id(req._core), None)
            req.drop()
        elif req._child is None:
            self._requests.pop(id(req._core), None)

    def close(self) -> None:
        """Stop forwarding (connections already accepted go on)."""
        self.stack.host.set_tproxy(self.ifindex, IPPROTO_TCP, None)
        self.core.close()
        self.stack.kick()


class UdpForwardSession:
    """The datagrams of one 4-tuple: from ``peername`` to ``sockname``."""

    def __init__(self, fwd: UdpForwarderHandle, core: UdpFwdSession) -> None:
        self._fwd = fwd
        self._core = core
        self.sockname: tuple[Any, ...] = _name(core.dst, core.dport)
        self.peername: tuple[Any, ...] = _name(core.src, core.sport)
        self._waiter: asyncio.Future[None] | None = None
        core.wakeup = self._on_wakeup

    @property
    def closed(self) -> bool:
        return self._core.closed

    def _on_wakeup(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> bytes | None:
        """The next datagram from the client; None once the session ended
        (idle timeout or close)."""
        core = self._core
        while True:
            data = core.recv()
            if data is not None:
                return data
            if core.closed:
                return None
            self._waiter = self._fwd.stack.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """A datagram to the client, from ``sockname``."""
        stack = self._fwd.stack
        stack.update_time()
        try:
            self._core.send(data)
        finally:
            stack.kick()

    def close(self) -> None:
        stack = self._fwd.stack
        stack.update_time()
        self._core.close()
        stack.kick()

    def unreachable(self, code: int = 3) -> None:
        """Send the client ICMP destination unreachable (3: port unreachable,
        its connected socket gets ECONNREFUSED) from ``sockname``."""
        stack = self._fwd.stack
        stack.update_time()
        try:
            self._core.unreachable(code)
        finally:
            stack.kick()

    def __repr__(self) -> str:
        return f"<UdpForwardSession {self.peername} -> {self.sockname}>"


class UdpForwarderHandle:
    """What ``Stack.set_udp_forwarder`` returns (``stats``, ``core``, ``close()``)."""

    def __init__(self, stack: Stack, ifindex: int, callback: Callable[[Any], Any],
                 **limits: Any) -> None:
        self.stack = stack
        self.ifindex = ifindex
        self.callback = callback
        self.core = UdpForwarder(stack.host, **limits)
        self.core.wakeup = self._on_wakeup
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.core.stats)

    def _on_wakeup(self) -> None:
        for core in self.core.take_ready():
            session = UdpForwardSession(self, core)
            _run_callback(self.stack, self.callback, session, lambda: None, self._tasks)

    def close(self) -> None:
        """Stop forwarding; live sessions end."""
        self.stack.host.set_tproxy(self.ifindex, IPPROTO_UDP, None)
        self.core.close()
        self.stack.kick()


def set_tcp_forwarder(stack: Stack, callback: Callable[[Any], Any] | None, ifindex: int,
                      **limits: Any) -> TcpForwarderHandle | None:
    old = stack._forwarders.pop((ifindex, IPPROTO_TCP), None)
    if old is not None:
        old.close()
    if callback is None:
        return None
    stack.update_time()
    handle = TcpForwarderHandle(stack, ifindex, callback, **limits)
    stack.host.set_tproxy(ifindex, IPPROTO_TCP, handle.core)
    stack._forwarders[(ifindex, IPPROTO_TCP)] = handle
    return handle


def set_udp_forwarder(stack: Stack, callback: Callable[[Any], Any] | None, ifindex: int,
                      **limits: Any) -> UdpForwarderHandle | None:
    old = stack._forwarders.pop((ifindex, IPPROTO_UDP), None)
    if old is not None:
        old.close()
    if callback is None:
        return None
    stack.update_time()
    handle = UdpForwarderHandle(stack, ifindex, callback, **limits)
    stack.host.set_tproxy(ifindex, IPPROTO_UDP, handle.core)
    stack._forwarders[(ifindex, IPPROTO_UDP)] = handle
    return handle
