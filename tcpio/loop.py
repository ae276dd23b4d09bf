"""An event loop whose network is a tcpio ``Stack``: unchanged asyncio programs on tcpio.

    def setup(stack: tcpio.Stack) -> None:
        stack.add_interface(tcpio.TapDevice("tap0"), "10.0.0.2/24")
        stack.add_route("0.0.0.0/0", via="10.0.0.1")
        stack.set_name_servers(["10.0.0.1"])

    tcpio.run(main(), setup=setup)                      # any Python tcpio supports
    asyncio.run(main(), loop_factory=tcpio.loop_factory(setup))      # 3.12+
    with asyncio.Runner(loop_factory=tcpio.loop_factory(setup, loop_class=uvloop.Loop)) as r:
        r.run(main())                                                # 3.11+

The loop is the wrapped loop class (asyncio's ``SelectorEventLoop`` unless
``loop_class`` says otherwise, e.g. ``uvloop.Loop``) with its network methods
answered by the stack: ``create_connection``, ``create_server`` (and so
``asyncio.open_connection``/``start_server``), ``create_datagram_endpoint``,
``getaddrinfo``/``getnameinfo`` (the stack's resolver), ``sock_*`` on tcpio
sockets, ``start_tls``, ``sendfile``, ``connect_accepted_socket``.  Timers,
subprocesses, pipes, signals, executors and Unix sockets are the wrapped
loop's own, untouched.

Why a subclass and not a wrapper object: asyncio's ``get_running_loop()`` is
whatever loop is *running*, which is the loop whose ``run_forever`` runs; a
wrapper around another loop would hand every coroutine the inner loop (and
its kernel network), and the futures the two make would belong to different
loops.  A subclass made per base class (``TcpioEventLoop`` mixed in first) is
the running loop itself, so it works over any loop class, uvloop's too.

Kernel sockets.  A socket the kernel knows about (bound, listening,
connected) cannot carry this loop's traffic: ``sock=`` and ``sock_*`` refuse
it with a ``TypeError`` that says so.  The one exception is
``sock_connect`` on a fresh kernel socket (never bound, never connected): it
connects a tcpio socket instead and remembers it under the kernel socket,
which from then on only names it (``sock_*``, ``create_connection(sock=)``).
That is how aiohttp connects: aiohappyeyeballs makes a ``socket.socket`` per
attempt, ``loop.sock_connect``s it, then passes it to ``create_connection``.

Several hosts in one loop (tests, simulations): ``with tcpio.use_stack(other):``
makes calls in that context (and tasks created in it) use ``other``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import socket as _socket
import ssl as _ssl
import sys
import weakref
from asyncio import sslproto, trsock
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from tcpio import tls
from tcpio.core.settings import Settings
from tcpio.socket import SOCK_STREAM, Socket
from tcpio.stack import Stack
from tcpio.transports import TcpTransport, make_transport

if TYPE_CHECKING:
    _LoopBase = asyncio.AbstractEventLoop
else:
    _LoopBase = object

_T = TypeVar("_T")
Setup = Callable[[Stack], "Awaitable[None] | None"]

# The stack a call in this context uses, when not the loop's own (use_stack).
_current_stack: contextvars.ContextVar[Stack | None] = contextvars.ContextVar(
    "tcpio_stack", default=None)


@contextlib.contextmanager
def use_stack(stack: Stack) -> Iterator[Stack]:
    """Network calls on the running tcpio loop made in this block (and in tasks
    created in it) go through ``stack`` instead of the loop's own."""
    token = _current_stack.set(stack)
    try:
        yield stack
    finally:
        _current_stack.reset(token)


def _stack_of(sock: Socket) -> Stack:
    # tcpio.Socket keeps its stack private; a connected socket must stay on it.
    stack: Stack = sock._stack
    return stack


class TcpioEventLoop(_LoopBase):
    """Mixed in before an event loop class: the network methods use a tcpio Stack."""

    _tcpio_stack: Stack
    # kernel socket -> the tcpio socket sock_connect made for it (module docstring)
    _tcpio_adopted: weakref.WeakKeyDictionary[_socket.socket, tuple[Socket, weakref.finalize]]

    def __init__(self, *args: Any, settings: Settings | None = None, seed: int | None = None,
                 name: str = "tcpio", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        stack = Stack(settings, seed, name=name)
        # Bound before the loop runs so that setup() may add interfaces from
        # the factory (Stack binds lazily to the *running* loop otherwise).
        stack._loop = self
        stack.update_time()
        self._tcpio_stack = stack
        self._tcpio_adopted = weakref.WeakKeyDictionary()

    @property
    def stack(self) -> Stack:
        """The loop's own stack (what ``setup`` received)."""
        return self._tcpio_stack

    def _net(self) -> Stack:
        stack = _current_stack.get()
        return self._tcpio_stack if stack is None else stack

    def close(self) -> None:
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if not self.is_closed():
            # Devices stop (remove_reader) while the selector is still open.
            self._tcpio_stack.close()
        super().close()

    # --- sockets: tcpio ones, or a kernel one standing for a tcpio one ------------------

    def _tcpio_socket(self, sock: Any, method: str) -> Socket:
        if isinstance(sock, Socket):
            return sock
        if isinstance(sock, _socket.socket):
            adopted = self._tcpio_adopted.get(sock)
            if adopted is not None:
                return adopted[0]
            raise TypeError(
                f"loop.{method}(): {_describe(sock)} is a kernel socket, and this loop's "
                f"network is a tcpio Stack; the kernel's connections cannot be carried by "
                f"it. Use a tcpio socket (loop.stack.socket()) or let the loop make one "
                f"(host/port arguments)")
        raise TypeError(f"loop.{method}(): expected a tcpio Socket, not "
                        f"{type(sock).__name__}")

    def _take_socket(self, sock: Any, method: str) -> Socket:
        """``sock=`` of create_connection/connect_accepted_socket: the transport owns it
        from now on, so a kernel socket that only named it is closed."""
        tsock = self._tcpio_socket(sock, method)
        if isinstance(sock, _socket.socket):
            _, finalizer = self._tcpio_adopted.pop(sock)
            finalizer.detach()
            sock.close()
        return tsock

    async def sock_connect(self, sock: Any, address: Any) -> None:
        if isinstance(sock, _socket.socket) and sock not in self._tcpio_adopted:
            await self._adopt_and_connect(sock, address)
            return
        await self._tcpio_socket(sock, "sock_connect").connect(address)

    async def _adopt_and_connect(self, ksock: _socket.socket, address: Any) -> None:
        if ksock.type not in (_socket.SOCK_STREAM, _socket.SOCK_DGRAM):
            raise TypeError(f"loop.sock_connect(): tcpio has no {ksock.type!r} sockets")
        state = _kernel_state(ksock)
        if state:
            raise TypeError(
                f"loop.sock_connect(): {_describe(ksock)} is {state} in the kernel, and this "
                f"loop's network is a tcpio Stack: only a fresh kernel socket can stand for a "
                f"tcpio one")
        tsock = self._net().socket(ksock.type)
        # The kernel socket object's end (collected before a transport took the
        # tcpio socket) ends the tcpio socket it stands for.
        finalizer = weakref.finalize(ksock, tsock.close)
        finalizer.atexit = False        # at exit the loop and its stack are gone
        self._tcpio_adopted[ksock] = (tsock, finalizer)
        try:
            await tsock.connect(address)
        except BaseException:
            finalizer.detach()
            self._tcpio_adopted.pop(ksock, None)
            tsock.abort()
            raise

    async def sock_accept(self, sock: Any) -> tuple[Any, Any]:
        return await self._tcpio_socket(sock, "sock_accept").accept()

    async def sock_recv(self, sock: Any, nbytes: int) -> bytes:
        return await self._tcpio_socket(sock, "sock_recv").recv(nbytes)

    async def sock_recv_into(self, sock: Any, buf: Any) -> int:
        tsock = self._tcpio_socket(sock, "sock_recv_into")
        with memoryview(buf) as view, view.cast("B") as flat:
            data = await tsock.recv(flat.nbytes)
            flat[:len(data)] = data
        return len(data)

    async def sock_sendall(self, sock: Any, data: Any) -> None:
        await self._tcpio_socket(sock, "sock_sendall").sendall(data)

    async def sock_sendto(self, sock: Any, data: Any, address: Any) -> int:
        return await self._tcpio_socket(sock, "sock_sendto").sendto(data, address)

    async def sock_recvfrom(self, sock: Any, bufsize: int) -> tuple[bytes, Any]:
        return await self._tcpio_socket(sock, "sock_recvfrom").recvfrom(bufsize)

    async def sock_recvfrom_into(self, sock: Any, buf: Any, nbytes: int = 0) -> tuple[int, Any]:
        tsock = self._tcpio_socket(sock, "sock_recvfrom_into")
        with memoryview(buf) as view, view.cast("B") as flat:
            data, address = await tsock.recvfrom(nbytes or flat.nbytes)
            flat[:len(data)] = data
        return len(data), address

    async def sock_sendfile(self, sock: Any, file: Any, offset: int = 0,
                            count: int | None = None, *, fallback: bool | None = True) -> int:
        """Read and send: a userspace socket has no kernel ``sendfile`` (so, like
        asyncio without it, SendfileNotAvailableError unless ``fallback``)."""
        tsock = self._tcpio_socket(sock, "sock_sendfile")
        if not fallback:
            raise asyncio.SendfileNotAvailableError("tcpio sockets have no sendfile(); "
                                                    "use fallback=True")
        if offset:
            file.seek(offset)
        buf = bytearray(min(count, 65536) if count else 65536)
        total = 0
        try:
            while not count or total < count:
                want = min(len(buf), count - total) if count else len(buf)
                with memoryview(buf)[:want] as view:
                    got = await self.run_in_executor(None, file.readinto, view)
                    if not got:
                        break
                    await tsock.sendall(view[:got])
                total += got
        finally:
            if total and hasattr(file, "seek"):
                file.seek(offset + total)
        return total

    # --- transports ---------------------------------------------------------------------

    async def create_connection(self, protocol_factory: Callable[[], Any],
                                host: Any = None, port: Any = None, *, sock: Any = None,
                                **kwargs: Any) -> tuple[Any, Any]:
        stack = self._net()
        if sock is not None:
            sock = self._take_socket(sock, "create_connection")
            stack = _stack_of(sock)
        transport, protocol = await stack.create_connection(protocol_factory, host, port,
                                                            sock=sock, **kwargs)
        _give_socket_view(transport, stack)
        return transport, protocol

    async def create_server(self, protocol_factory: Callable[[], Any], host: Any = None,
                            port: Any = None, *, sock: Any = None, **kwargs: Any) -> Any:
        stack = self._net()
        if sock is not None:
            sock = self._tcpio_socket(sock, "create_server")
            stack = _stack_of(sock)
        return await stack.create_server(protocol_factory, host, port, sock=sock, **kwargs)

    async def connect_accepted_socket(self, protocol_factory: Callable[[], Any], sock: Any, *,
                                      ssl: Any = None, ssl_handshake_timeout: float | None = None,
                                      ssl_shutdown_timeout: float | None = None
                                      ) -> tuple[Any, Any]:
        tsock = self._take_socket(sock, "connect_accepted_socket")
        stack = _stack_of(tsock)
        transport, protocol = await make_transport(
            stack, tsock.core, protocol_factory, ssl=ssl, server_side=True,
            ssl_handshake_timeout=ssl_handshake_timeout, ssl_shutdown_timeout=ssl_shutdown_timeout)
        _give_socket_view(transport, stack)
        return transport, protocol

    async def create_datagram_endpoint(self, protocol_factory: Callable[[], Any],
                                       local_addr: Any = None, remote_addr: Any = None, *,
                                       sock: Any = None, **kwargs: Any) -> tuple[Any, Any]:
        if sock is not None:
            self._tcpio_socket(sock, "create_datagram_endpoint")
            raise ValueError("loop.create_datagram_endpoint(): sock= is not supported on "
                             "tcpio; give local_addr/remote_addr")
        return await self._net().create_datagram_endpoint(
            protocol_factory, local_addr, remote_addr, **kwargs)

    async def start_tls(self, transport: Any, protocol: Any, sslcontext: Any, *,
                        server_side: bool = False, server_hostname: str | None = None,
                        ssl_handshake_timeout: float | None = None,
                        ssl_shutdown_timeout: float | None = None) -> Any:
        if not _is_tcpio_transport(transport):
            extra = {} if ssl_shutdown_timeout is None else {   # a 3.11 keyword
                "ssl_shutdown_timeout": ssl_shutdown_timeout}
            return await super().start_tls(
                transport, protocol, sslcontext, server_side=server_side,
                server_hostname=server_hostname, ssl_handshake_timeout=ssl_handshake_timeout,
                **extra)
        if not isinstance(sslcontext, _ssl.SSLContext):
            raise TypeError(f"sslcontext is expected to be an instance of ssl.SSLContext, "
                            f"got {sslcontext!r}")
        # tls.start_tls works on every loop (uvloop's own refuses our transports).
        return await tls.start_tls(transport, protocol, sslcontext, server_side=server_side,
                                   server_hostname=server_hostname,
                                   ssl_handshake_timeout=ssl_handshake_timeout,
                                   ssl_shutdown_timeout=ssl_shutdown_timeout)

    async def sendfile(self, transport: Any, file: Any, offset: int = 0,
                       count: int | None = None, *, fallback: bool = True) -> int:
        if not _is_tcpio_transport(transport):
            return await super().sendfile(transport, file, offset, count, fallback=fallback)
        if transport.is_closing():
            raise RuntimeError("Transport is closing")
        if not fallback:
            raise asyncio.SendfileNotAvailableError("tcpio transports have no sendfile(); "
                                                    "use fallback=True")
        # asyncio's own read-and-write fallback (it needs only run_in_executor
        # and the transport's flow control, so it runs on uvloop's base too,
        # which has no sendfile at all).
        fallback_impl: Any = asyncio.base_events.BaseEventLoop._sendfile_fallback  # type: ignore[attr-defined]
        total: int = await fallback_impl(self, transport, file, offset, count)
        return total

    # --- names --------------------------------------------------------------------------

    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[Any]:
        return await self._net().getaddrinfo(host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        return await self._net().getnameinfo(sockaddr, flags)


def _tcp_transport_under(transport: Any) -> TcpTransport | None:
    """The TcpTransport that carries ``transport`` (itself, or under TLS layers)."""
    while isinstance(transport, sslproto._SSLProtocolTransport):
        transport = transport._ssl_protocol._transport
    return transport if isinstance(transport, TcpTransport) else None


def _is_tcpio_transport(transport: Any) -> bool:
    return _tcp_transport_under(transport) is not None


def _give_socket_view(transport: Any, stack: Stack) -> None:
    """``get_extra_info("socket")`` as asyncio gives it: a ``TransportSocket`` (family,
    getsockname, getpeername, get/setsockopt; fileno() is -1) over a tcpio Socket.

    Libraries read it unguarded (anyio's SocketStream, so every
    ``httpx.AsyncClient()``; aiohttp's tcp_nodelay; uvicorn's client address).
    TcpTransport itself says ``None``; until it carries the view for every
    transport, the loop adds it to the ones it hands out.
    """
    tcp = _tcp_transport_under(transport)
    if tcp is None or tcp._sk is None or tcp.get_extra_info("socket") is not None:
        return
    tcp._extra["socket"] = trsock.TransportSocket(
        Socket(stack, SOCK_STREAM, _core=tcp._sk))  # type: ignore[arg-type]


def _kernel_state(sock: _socket.socket) -> str:
    """What the kernel holds for ``sock``: '' for a fresh socket."""
    try:
        sock.getpeername()
    except OSError:
        pass
    else:
        return "connected"
    try:
        name = sock.getsockname()
    except OSError:
        return "closed"
    if isinstance(name, tuple) and len(name) >= 2 and name[1]:
        return "bound"
    if sock.family not in (_socket.AF_INET, _socket.AF_INET6):
        return f"an {sock.family.name} socket"
    return ""


def _describe(sock: _socket.socket) -> str:
    return f"<socket.socket fd={sock.fileno()} {sock.family.name} {sock.type.name}>"


# --- building loops -----------------------------------------------------------------------

_loop_classes: dict[type[asyncio.AbstractEventLoop], type[TcpioEventLoop]] = {}


def loop_class_for(base: type[asyncio.AbstractEventLoop]) -> type[TcpioEventLoop]:
    """``TcpioEventLoop`` mixed into ``base`` (one class per base, made once)."""
    if issubclass(base, TcpioEventLoop):
        return base
    cls = _loop_classes.get(base)
    if cls is None:
        cls = _loop_classes[base] = type(f"Tcpio{base.__name__}", (TcpioEventLoop, base),
                                         {"__module__": __name__})
    return cls


def new_event_loop(setup: Setup | None = None, *,
                   loop_class: type[asyncio.AbstractEventLoop] | None = None,
                   settings: Settings | None = None, seed: int | None = None,
                   name: str = "tcpio") -> TcpioEventLoop:
    """A new tcpio loop over ``loop_class`` (asyncio's SelectorEventLoop by default);
    ``setup(loop.stack)`` runs before it returns (awaited on the loop if async)."""
    cls = loop_class_for(loop_class or asyncio.SelectorEventLoop)
    loop = cls(settings=settings, seed=seed, name=name)
    if setup is not None:
        try:
            result = setup(loop.stack)
            if inspect.isawaitable(result):
                loop.run_until_complete(_awaited(result))
        except BaseException:
            loop.close()
            raise
    return loop


async def _awaited(awaitable: Awaitable[_T]) -> _T:
    return await awaitable


def loop_factory(setup: Setup | None = None, *,
                 loop_class: type[asyncio.AbstractEventLoop] | None = None,
                 settings: Settings | None = None, seed: int | None = None,
                 name: str = "tcpio") -> Callable[[], TcpioEventLoop]:
    """For ``asyncio.run(main(), loop_factory=...)`` (3.12+) and
    ``asyncio.Runner(loop_factory=...)`` (3.11+): each call makes a new tcpio loop."""
    return functools.partial(new_event_loop, setup, loop_class=loop_class,
                             settings=settings, seed=seed, name=name)


def run(main: Coroutine[Any, Any, _T], *, setup: Setup | None = None,
        loop_class: type[asyncio.AbstractEventLoop] | None = None,
        settings: Settings | None = None, seed: int | None = None, name: str = "tcpio",
        debug: bool | None = None) -> _T:
    """``asyncio.run(main)`` on a tcpio loop: the program's network is a Stack that
    ``setup`` configures (interfaces, routes, name servers)."""
    factory = loop_factory(setup, loop_class=loop_class, settings=settings, seed=seed,
                           name=name)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
            return runner.run(main)
    return _run_310(main, factory, debug)  # pragma: no cover - Python 3.10 only


def _run_310(main: Coroutine[Any, Any, _T], factory: Callable[[], TcpioEventLoop],
             debug: bool | None) -> _T:  # pragma: no cover - Python 3.10 only
    """asyncio.run's steps (3.10 has no Runner and no loop_factory)."""
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("tcpio.run() cannot be called from a running event loop")
    loop = factory()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            for task in tasks:
                if not task.cancelled() and task.exception() is not None:
                    loop.call_exception_handler({
                        "message": "unhandled exception during tcpio.run() shutdown",
                        "exception": task.exception(), "task": task})
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
