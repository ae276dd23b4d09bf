"""BSD-like async socket objects on top of the sans-IO core socks.

``stack.socket(tcpio.SOCK_STREAM)`` returns a :class:`Socket` whose blocking
calls are coroutines (``await sock.connect(...)``, ``await sock.recv(n)``)
and whose non-blocking calls behave like the BSD ones (``bind``, ``listen``,
``shutdown``, ``close``, and ``connect_ex`` returning EINPROGRESS, EALREADY,
EISCONN the way ``inet_stream_connect`` does).  There is no ``setblocking``:
every call that would block is ``async`` and every other call never blocks.

Errors are ``OSError`` subclasses with an errno, exactly as Python's own
sockets raise them (``ConnectionRefusedError``, ``TimeoutError``, ...).

How a coroutine learns that it can proceed: the core marks a sock with
``host.schedule_wakeup``; the driver calls ``sk.wakeup()`` after the batch,
which resolves the futures of every waiting call.  Each call then re-checks
the sock's state (level-triggered), so a spurious wakeup costs a retry.

Example::

    sock = stack.socket(tcpio.SOCK_STREAM)
    await sock.connect(("10.0.0.1", 80))
    await sock.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
    reply = await sock.recv(65536)
    sock.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket as _socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

    from tcpio.stack import Stack

from tcpio.core.addr import ip_aton, ip_ntoa
from tcpio.core.errors import sock_error
from tcpio.netdb import gaierror, inet_aton

SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
AF_INET = _socket.AF_INET
SHUT_RD, SHUT_WR, SHUT_RDWR = _socket.SHUT_RD, _socket.SHUT_WR, _socket.SHUT_RDWR

# Linux TCP state numbers (include/net/tcp_states.h), as the core reports them.
TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_CLOSE = 7
TCP_LISTEN = 10


# --- address conversion at the public boundary ------------------------------

def resolve_host(host: str | None, stack: Stack | None = None) -> int:
    """'10.0.0.1' -> host-order int; None, '' and '0.0.0.0' -> INADDR_ANY.

    Without waiting, so only what needs no DNS: numeric addresses (glibc's
    inet_aton forms, "10.1" too), and with a ``stack`` its hosts table and
    resolver cache.  Anything else raises ``socket.gaierror`` (EAI_NONAME):
    the async calls (``await sock.connect``, ``stack.getaddrinfo``...)
    resolve names through the stack first (tcpio/resolver.py).
    """
    if host is None or host == "":
        return 0
    if isinstance(host, int):
        return host
    found = stack.resolver.lookup_nowait(host) if stack is not None else inet_aton(host)
    if found is None:
        raise gaierror(_socket.EAI_NONAME, f"{host!r} in a non-async call: only numeric "
                                            f"addresses, stack.hosts and cached names")
    return ip_aton(found)


def to_address(addr: Any) -> tuple[str, int]:
    """A core (ip: int, port) pair -> ('10.0.0.1', port) for users."""
    ip, port = addr[0], addr[1]
    return (ip_ntoa(ip) if isinstance(ip, int) else str(ip), int(port))


def pop_error(sk: Any) -> OSError | None:
    """Take the sock's pending error (``sk_err``) as an OSError, or None."""
    err = getattr(sk, "sk_err", 0)
    if not err:
        return None
    popped = sk.sock_error()
    if isinstance(popped, OSError):
        return popped
    return sock_error(abs(popped) if isinstance(popped, int) and popped else err)


def is_connected_state(state: int) -> bool:
    """Any synchronized state: the handshake has completed."""
    return state not in (TCP_CLOSE, TCP_SYN_SENT, TCP_LISTEN, TCP_SYN_RECV)


class Waker:
    """Turns ``sk.wakeup()`` calls into resolved futures for waiting calls."""

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def __call__(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        finally:
            # Cancelled (a wait_for timeout): forget the future now, or a
            # polling loop on a quiet socket would pile them up until a wakeup.
            if not fut.done() or fut.cancelled():
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)


class Socket:
    """One ``socket()``: a TCP or UDP core sock plus async blocking calls."""

    family = AF_INET
    proto = 0

    def __init__(self, stack: Stack, type: int = SOCK_STREAM, *, _core: Any = None) -> None:
        if type not in (SOCK_STREAM, SOCK_DGRAM):
            raise sock_error(errno.ESOCKTNOSUPPORT)
        self._stack = stack
        self.type = type
        # Has this socket ever tried to connect (or come from accept)?  A
        # TCP_CLOSE socket that has not is "not connected", not "at EOF".
        self._connect_started = _core is not None
        if _core is None:
            proto = stack.host.tcp if type == SOCK_STREAM else stack.host.udp
            _core = proto.socket()
        self._sk = _core
        self._waker = Waker()
        self._closed = False

    # --- plumbing ----------------------------------------------------------
    @property
    def core(self) -> Any:
        """The core sock (``TcpSock`` / ``UdpSock``) under this socket."""
        return self._sk

    def _check_open(self) -> None:
        if self._closed:
            raise sock_error(errno.EBADF)

    async def _wait(self) -> None:
        """Sleep until the core reports a change on this sock."""
        # Claim the sock's wakeup only while someone waits: a transport or
        # server may own it otherwise.
        self._sk.wakeup = self._waker
        await self._waker.wait()
        self._check_open()

    def _call(self, fn: Any, *args: Any) -> Any:
        """A user call into the core: fresh clock first, flush output after."""
        self._stack.update_time()
        try:
            return fn(*args)
        finally:
            self._stack.kick()

    def fileno(self) -> int:
        return -1      # no file descriptor behind a userspace socket

    # --- non-blocking calls ------------------------------------------------
    def bind(self, address: tuple[str | None, int]) -> None:
        self._check_open()
        host, port = address
        self._call(self._sk.bind, resolve_host(host, self._stack), int(port))

    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        self._require_stream()
        self._call(self._sk.listen, int(backlog))

    def connect_ex(self, address: tuple[str, int]) -> int:
        """Start connecting; 0 or an errno (EINPROGRESS, EALREADY, EISCONN...).

        Like ``connect()`` on a non-blocking BSD socket, reported as an errno
        the way Python's ``socket.connect_ex`` does.
        """
        self._check_open()
        host, port = address
        ip = resolve_host(host, self._stack)
        if self.type == SOCK_DGRAM:
            self._call(self._sk.connect, ip, int(port))
            return 0
        self._connect_started = True
        try:
            self._call(self._sk.connect, ip, int(port))
        except OSError as exc:
            if exc.errno is None:
                raise
            return exc.errno   # EINPROGRESS, EALREADY, EISCONN, ECONNREFUSED...
        return 0

    def shutdown(self, how: int) -> None:
        self._check_open()
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise sock_error(errno.EINVAL)
        if not hasattr(self._sk, "shutdown"):
            raise sock_error(errno.EOPNOTSUPP)
        self._call(self._sk.shutdown, how)
        self._waker()

    def close(self) -> None:
        """Release the socket (FIN after queued data; RST if unread data)."""
        if self._closed:
            return
        self._closed = True
        self._call(self._sk.close)
        self._waker()   # waiting calls see EBADF

    def abort(self) -> None:
        """Close with RST, like SO_LINGER {on, 0} then close()."""
        if self._closed:
            return
        self._closed = True
        # UDP has nothing to reset: abort is close there
        self._call(getattr(self._sk, "abort", self._sk.close))
        self._waker()

    def getsockname(self) -> tuple[str, int]:
        self._check_open()
        return to_address(self._sk.getsockname())

    def getpeername(self) -> tuple[str, int]:
        self._check_open()
        return to_address(self._sk.getpeername())

    def setsockopt(self, level: int, name: int, value: Any) -> None:
        self._check_open()
        self._call(self._sk.setsockopt, level, name, value)

    def getsockopt(self, level: int, name: int, buflen: int = 0) -> Any:
        self._check_open()
        if buflen:
            return self._sk.getsockopt(level, name, buflen)
        return self._sk.getsockopt(level, name)

    def tcp_info(self) -> dict[str, int]:
        """TCP_INFO as a dict of the fields tcpio keeps, by Linux's ``tcpi_``
        names and units (``getsockopt(IPPROTO_TCP, TCP_INFO)`` gives them
        packed as Linux's struct tcp_info)."""
        self._check_open()
        self._require_stream()
        return self._sk.tcp_info()

    def _require_stream(self) -> None:
        if self.type != SOCK_STREAM:
            raise sock_error(errno.EOPNOTSUPP)

    # --- TCP blocking calls ------------------------------------------------
    async def connect(self, address: tuple[str, int]) -> None:
        """Connect, waiting for the handshake; raises ECONNREFUSED, ETIMEDOUT...
        A name is resolved through the stack first (socket.gaierror if not)."""
        self._check_open()
        err = self.connect_ex(await self._stack.resolver.resolve_address(address, self.type))
        if self.type == SOCK_DGRAM:
            return
        while err in (errno.EINPROGRESS, errno.EALREADY):
            await self._wait()
            err = self._connect_status()
        if err and err != errno.EISCONN:
            raise sock_error(err)

    def _connect_status(self) -> int:
        exc = pop_error(self._sk)
        if exc is not None:
            return exc.errno or errno.ECONNABORTED
        state = self._sk.state
        if is_connected_state(state):
            return 0
        if state == TCP_SYN_SENT or state == TCP_SYN_RECV:
            return errno.EALREADY
        return errno.ECONNABORTED

    async def accept(self) -> tuple[Socket, tuple[str, int]]:
        """The next connection from the accept queue (``inet_accept``)."""
        self._require_stream()
        while True:
            self._check_open()
            child = self._call(self._sk.accept)
            if child is not None:
                sock = Socket(self._stack, SOCK_STREAM, _core=child)
                return sock, to_address(child.getpeername())
            await self._wait()

    async def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes; b"" at end of stream (the peer's FIN)."""
        if bufsize < 0:
            raise sock_error(errno.EINVAL)
        if self.type == SOCK_DGRAM:
            data, _ = await self.recvfrom(bufsize)
            return data
        sk = self._sk
        while True:
            self._check_open()
            if sk.readable():
                return self._call(sk.recvmsg, bufsize)
            exc = pop_error(sk)
            if exc is not None:
                raise exc
            state = sk.state
            # tcp_recvmsg: ENOTCONN for a listener, and for a closed socket
            # that never had a connection (one that had one reads EOF).
            if state == TCP_LISTEN or (state == TCP_CLOSE and not self._connect_started
                                       and bufsize):
                raise sock_error(errno.ENOTCONN)
            if sk.rcv_eof or state == TCP_CLOSE or bufsize == 0:
                return b""
            await self._wait()

    async def send(self, data: Any) -> int:
        """Queue as much of ``data`` as the send buffer takes (at least 1 byte)."""
        if self.type == SOCK_DGRAM:
            return self._call(self._sk.sendto, data, None, None)
        sk = self._sk
        if not len(data):
            return 0
        while True:
            self._check_open()
            exc = pop_error(sk)
            if exc is not None:
                raise exc
            # sendmsg itself, not send_space(), decides: after shutdown the
            # space is 0 but the answer is EPIPE, not "wait".
            n = self._call(sk.sendmsg, data)
            if n:
                return n
            await self._wait()

    async def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            n = await self.send(view)
            view = view[n:]

    # --- UDP ---------------------------------------------------------------
    async def sendto(self, data: Any, address: tuple[str, int]) -> int:
        self._check_open()
        host, port = await self._stack.resolver.resolve_address(address, SOCK_DGRAM)
        return self._call(self._sk.sendto, data, resolve_host(host, self._stack), int(port))

    async def recvfrom(self, bufsize: int) -> tuple[bytes, tuple[str, int]]:
        sk = self._sk
        while True:
            self._check_open()
            got = sk.recvfrom()
            if got is not None:
                data, addr = got
                return bytes(data[:bufsize]), to_address(addr)
            errors = getattr(sk, "errors", None)
            if errors:
                raise errors.popleft()
            await self._wait()

    # --- context manager / repr ------------------------------------------
    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "SOCK_STREAM" if self.type == SOCK_STREAM else "SOCK_DGRAM"
        if self._closed:
            return f"<tcpio.Socket [closed] {kind}>"
        try:
            local = self.getsockname()
        except OSError:
            local = None
        return f"<tcpio.Socket {kind} laddr={local}>"
