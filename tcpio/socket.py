"""BSD-like async socket objects on top of the sans-IO core socks.

``stack.socket(tcpio.SOCK_STREAM)`` returns a :class:`Socket` whose blocking
calls are coroutines (``await sock.connect(...)``, ``await sock.recv(n)``)
and whose non-blocking calls behave like the BSD ones (``bind``, ``listen``,
``shutdown``, ``close``, and ``connect_ex`` returning EINPROGRESS, EALREADY,
EISCONN the way ``inet_stream_connect`` does).  Every call that would block
is ``async`` and every other call never blocks; ``settimeout`` bounds the
waiting calls (docs/internals.md "tcpio.Socket: the API edges").

Errors are ``OSError`` subclasses with an errno, exactly as Python's own
sockets raise them (``ConnectionRefusedError``, ``TimeoutError``, ...), and a
bad argument is the ``TypeError`` / ``ValueError`` / ``OverflowError`` the
``socket`` module gives for it (``inet_pair``).

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
import math
import operator
import socket as _socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing_extensions import Self

    from tcpio.stack import Stack

from tcpio.core.addr import ip6_aton, ip6_ntoa, ip_aton, ip_ntoa
from tcpio.core.errors import sock_error
from tcpio.netdb import gaierror, inet6_literal, inet_aton

SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
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


def resolve_host6(host: str | None, stack: Stack | None = None) -> tuple[int, int]:
    """An AF_INET6 socket's host -> (128-bit int, scope id from "%N").

    IPv6 literals (``::ffff:a.b.c.d`` too) and, with a ``stack``, its hosts
    table; None, '' -> ``::``.  An IPv4 literal is EAI_ADDRFAMILY, as
    CPython's AF_INET6 setipaddr gives it; a name not found without waiting
    EAI_NONAME (the async calls resolve names first).
    """
    if host is None or host == "":
        return 0, 0
    literal = inet6_literal(host)
    if literal is None and stack is not None:
        found = stack.resolver.hosts.lookup(host, AF_INET6)
        literal = (found[0][1], 0) if found else None
    if literal is None:
        if inet_aton(host) is not None:
            raise gaierror(_socket.EAI_ADDRFAMILY, "Address family for hostname not supported")
        raise gaierror(_socket.EAI_NONAME, f"{host!r} in a non-async call: only numeric "
                                            f"addresses and stack.hosts")
    return ip6_aton(literal[0]), literal[1]


def inet6_tuple(address: Any, caller: str) -> tuple[str | None, int, int, int]:
    """Check an AF_INET6 ``(host, port[, flowinfo[, scope_id]])`` as CPython's
    getsockaddrarg does (the same exception types and texts)."""
    if not isinstance(address, tuple):
        raise TypeError(f"{caller}(): AF_INET6 address must be tuple, "
                        f"not {type(address).__name__}")
    if not 2 <= len(address) <= 4:
        raise TypeError("AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
    host, port = inet_pair(address[:2], caller)
    flowinfo = operator.index(address[2]) if len(address) > 2 else 0
    scope_id = operator.index(address[3]) if len(address) > 3 else 0
    if not 0 <= flowinfo <= 0xFFFFF:
        raise OverflowError(f"{caller}(): flowinfo must be 0-1048575.")
    return host, port, flowinfo, scope_id


def sockaddr_in(family: int, address: Any, caller: str) -> tuple[str | None, int, int]:
    """(host, port, scope_id) of a socket address of ``family``, checked as
    the socket module checks it (inet_pair / inet6_tuple)."""
    if family == AF_INET6:
        host, port, _, scope = inet6_tuple(address, caller)
        return host, port, scope
    host, port = inet_pair(address, caller)
    return host, port, 0


def resolve_in(family: int, host: str | None, scope: int, stack: Stack | None) -> tuple[int, ...]:
    """What a core sock of ``family`` takes after the port: ``(ip,)`` for
    AF_INET, ``(ip, scope_id)`` for AF_INET6 (the tuple's scope, else the
    literal's "%N")."""
    if family == AF_INET6:
        ip, lit_scope = resolve_host6(host, stack)
        return ip, scope or lit_scope
    return (resolve_host(host, stack),)


def inet_pair(address: Any, caller: str) -> tuple[str | None, int]:
    """Check an AF_INET ``(host, port)`` as CPython's getsockaddrarg does.

    The same exception types and texts as Python's ``socket`` module on
    Linux (measured with CPython 3.11, see tests/test_socket_api_edges_rules.py):
    ``TypeError`` for a non-tuple, a tuple that is not a pair, a host that is
    not str/bytes (or has a NUL), a port that is not an integer; ``OverflowError``
    for a port beyond a C int.  The 0..65535 check comes after the host is
    resolved (``check_port``), as in CPython.  A ``None`` host is tcpio's own
    spelling of INADDR_ANY (kept: asyncio-style callers pass it); bytes are
    decoded to str.
    """
    if not isinstance(address, tuple):
        raise TypeError(f"{caller}(): AF_INET address must be tuple, "
                        f"not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_INET address must be a pair (host, port)")
    host, port = address
    if isinstance(host, (bytes, bytearray)):
        host = bytes(host).decode("latin-1")
    elif host is not None and not isinstance(host, str):
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if host is not None and "\0" in host:
        raise TypeError("host name must not contain null character")
    port = operator.index(port)        # TypeError: "'str' object cannot be interpreted..."
    if not -0x80000000 <= port <= 0x7FFFFFFF:     # the C int of the "i" format
        raise OverflowError(f"{caller}(): port must be 0-65535.")
    return host, port


def check_port(port: int, caller: str) -> int:
    """CPython's range check on an AF_INET port: OverflowError, not an errno."""
    if not 0 <= port <= 0xFFFF:
        raise OverflowError(f"{caller}(): port must be 0-65535.")
    return port


def bytes_view(data: Any) -> memoryview:
    """``data`` as bytes; the socket module's TypeError for str and friends."""
    try:
        return memoryview(data)
    except TypeError:
        raise TypeError(f"a bytes-like object is required, not '{type(data).__name__}'") \
            from None


def check_bufsize(bufsize: Any, caller: str) -> int:
    n = operator.index(bufsize)
    if n < 0:
        raise ValueError(f"negative buffersize in {caller}")
    return n


def check_timeout(value: Any) -> float | None:
    """socket.settimeout's argument rules: None, or seconds >= 0 (not NaN)."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("Invalid value NaN (not a number)")
        if math.isinf(value):
            raise OverflowError("timestamp out of range for platform time_t")
        timeout = value
    else:
        timeout = float(operator.index(value))
    if timeout < 0:
        raise ValueError("Timeout value out of range")
    return timeout


def to_address(addr: Any) -> Any:
    """A core (ip: int, port) pair -> ('10.0.0.1', port) for users; an AF_INET6
    sock's (ip, port, flowinfo, scope_id) -> ('fd00::1', port, flowinfo, scope_id)."""
    ip, port = addr[0], addr[1]
    if len(addr) == 4:
        return (ip6_ntoa(ip) if isinstance(ip, int) else str(ip), int(port),
                int(addr[2]), int(addr[3]))
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
        # The shared empty tuple while nobody waits (most of an idle
        # connection's life), the one future while one call waits (a
        # connect, an accept: the usual case), a list only for several:
        # each object made per wait is one more for the cycle collector to
        # count while thousands of connects wait at once (issue 11).
        self._waiters: asyncio.Future[None] | list[asyncio.Future[None]] | tuple[()] = ()

    def __call__(self) -> None:
        waiters = self._waiters
        if not isinstance(waiters, list):
            if isinstance(waiters, tuple):
                return
            waiters = [waiters]
        self._waiters = ()
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def waiting(self) -> int:
        """How many futures wait (done ones included until the next wakeup)."""
        waiters = self._waiters
        return len(waiters) if not isinstance(waiters, asyncio.Future) else 1

    def future(self) -> asyncio.Future[None]:
        """A future the next wakeup resolves; await it, then ``forget()`` it."""
        fut = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if isinstance(waiters, list):
            waiters.append(fut)
        elif isinstance(waiters, tuple):
            self._waiters = fut
        else:
            self._waiters = [waiters, fut]
        return fut

    def forget(self, fut: asyncio.Future[None]) -> None:
        """After awaiting ``fut``: if it was cancelled (a wait_for timeout),
        drop it now, or a polling loop on a quiet socket would pile them up
        until a wakeup."""
        if fut.done() and not fut.cancelled():
            return
        waiters = self._waiters
        if waiters is fut:
            self._waiters = ()
        elif isinstance(waiters, list):
            with contextlib.suppress(ValueError):
                waiters.remove(fut)

    async def wait(self) -> None:
        fut = self.future()
        try:
            await fut
        finally:
            self.forget(fut)


class Socket:
    """One ``socket()``: a TCP or UDP core sock plus async blocking calls."""

    def __init__(self, stack: Stack, type: int = SOCK_STREAM, *, proto: int = 0,
                 family: int = AF_INET, _core: Any = None) -> None:
        # inet_create's order: the family, the type, then the protocol.
        if family not in (AF_INET, AF_INET6):
            raise sock_error(errno.EAFNOSUPPORT)
        if type not in (SOCK_STREAM, SOCK_DGRAM):
            raise sock_error(errno.ESOCKTNOSUPPORT)
        if proto not in (0, _socket.IPPROTO_TCP if type == SOCK_STREAM else _socket.IPPROTO_UDP):
            raise sock_error(errno.EPROTONOSUPPORT)
        self._stack = stack
        self._family = family
        self._type = type
        self._proto = proto
        self._timeout: float | None = _socket.getdefaulttimeout()
        # Has this socket ever tried to connect (or come from accept)?  A
        # TCP_CLOSE socket that has not is "not connected", not "at EOF".
        self._connect_started = _core is not None
        if _core is None:
            core_proto = stack.host.tcp if type == SOCK_STREAM else stack.host.udp
            _core = core_proto.socket(family)
        self._sk = _core
        self._waker = Waker()
        self._closed = False

    # --- what asyncio and its libraries read ---------------------------------
    @property
    def family(self) -> _socket.AddressFamily:
        return _socket.AddressFamily(self._family)

    @property
    def type(self) -> _socket.SocketKind:
        return _socket.SocketKind(self._type)

    @property
    def proto(self) -> int:
        return self._proto

    def fileno(self) -> int:
        """-1: no file descriptor behind a userspace socket (what a closed
        Python socket says).  docs/internals.md "tcpio.Socket: the API edges"
        says why -1 and not an exception."""
        return -1

    def settimeout(self, value: float | None) -> None:
        """None: waiting calls wait; a positive number: they raise
        ``TimeoutError('timed out')`` after that many seconds; 0 (non-blocking,
        what asyncio sets): recorded, and awaits wait as with None."""
        self._timeout = check_timeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self._timeout = None if flag else 0.0

    def getblocking(self) -> bool:
        return self._timeout != 0.0

    # --- plumbing ----------------------------------------------------------
    @property
    def core(self) -> Any:
        """The core sock (``TcpSock`` / ``UdpSock``) under this socket."""
        return self._sk

    def _check_open(self) -> None:
        if self._closed:
            raise sock_error(errno.EBADF)

    def _deadline(self) -> float | None:
        """When a waiting call started now must give up (None: never)."""
        if not self._timeout:
            return None
        return asyncio.get_running_loop().time() + self._timeout

    async def _wait(self, deadline: float | None = None) -> None:
        """Sleep until the core reports a change on this sock (or the deadline)."""
        # Claim the sock's wakeup only while someone waits: a transport or
        # server may own it otherwise.
        waker = self._sk.wakeup = self._waker
        if deadline is None:
            # Waker.wait() written out: one coroutine fewer alive per
            # waiting call (issue 11: thousands of connects wait at once)
            fut = waker.future()
            try:
                await fut
            finally:
                waker.forget(fut)
        else:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("timed out")
            try:
                await asyncio.wait_for(self._waker.wait(), left)
            except asyncio.TimeoutError:
                raise TimeoutError("timed out") from None
        self._check_open()

    def _call(self, fn: Any, *args: Any) -> Any:
        """A user call into the core: fresh clock first, flush output after."""
        self._stack.update_time()
        try:
            return fn(*args)
        finally:
            self._stack.kick()

    # --- non-blocking calls ------------------------------------------------
    def _sockaddr(self, address: Any, caller: str) -> tuple[str | None, int, int]:
        return sockaddr_in(self._family, address, caller)

    def _resolve(self, host: str | None, scope: int) -> tuple[Any, ...]:
        return resolve_in(self._family, host, scope, self._stack)

    def bind(self, address: Any) -> None:
        self._check_open()
        host, port, scope = self._sockaddr(address, "bind")
        ip, *rest = self._resolve(host, scope)
        self._call(self._sk.bind, ip, check_port(port, "bind"), *rest)

    def listen(self, backlog: int = 128) -> None:
        self._check_open()
        self._require_stream()
        self._call(self._sk.listen, int(backlog))

    def connect_ex(self, address: tuple[str, int]) -> int:
        """Start connecting; 0 or an errno (EINPROGRESS, EALREADY, EISCONN...).

        Like ``connect()`` on a non-blocking BSD socket, reported as an errno
        the way Python's ``socket.connect_ex`` does (for UDP too: EACCES for
        a broadcast address without SO_BROADCAST).  A bad address is the
        socket module's TypeError/OverflowError, not an errno.
        """
        self._check_open()
        host, port, scope = self._sockaddr(address, "connect_ex")
        ip, *rest = self._resolve(host, scope)
        return self._connect_ex(ip, check_port(port, "connect_ex"), *rest)

    def _connect_ex(self, ip: int, port: int, *scope: int) -> int:
        if self.type == SOCK_STREAM:
            self._connect_started = True
        try:
            self._call(self._sk.connect, ip, port, *scope)
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

    def getsockname(self) -> Any:
        self._check_open()
        return to_address(self._sk.getsockname())

    def getpeername(self) -> Any:
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
        A name is resolved through the stack first (socket.gaierror if not).

        On a connected socket EISCONN (to any address, as Linux).  While
        another connect on it is in progress: in blocking mode (timeout None,
        the default) this call waits for that attempt and returns its result,
        as Linux's blocking connect does (inet_wait_for_connect); with a
        timeout or non-blocking, EALREADY at once, as CPython's connect
        (which polls a non-blocking fd) says.  Measured on Linux 6.18.
        """
        self._check_open()
        host, port, scope = self._sockaddr(address, "connect")
        deadline = self._deadline()
        host, port = await self._stack.resolver.resolve_address((host, port), self._type,
                                                                self._family)
        # (a slice of the tuple, not ``ip, *rest``: an empty tuple, where the
        # starred name is a list kept while the handshake is waited for)
        resolved = self._resolve(host, scope)
        ip, rest = resolved[0], resolved[1:]
        del resolved
        err = self._connect_ex(ip, check_port(port, "connect"), *rest)
        if err == errno.EALREADY and self._timeout is None:
            err = errno.EINPROGRESS     # blocking: wait for the attempt under way
        if self.type == SOCK_DGRAM or err != errno.EINPROGRESS:
            if err:
                raise sock_error(err)
            return
        while err == errno.EINPROGRESS:
            await self._wait(deadline)
            err = self._connect_status()
        if err:
            raise sock_error(err)
        # inet_stream_connect after its wait: sock->state = SS_CONNECTED, so
        # the next connect says EISCONN.  The core's connect() reports the
        # completed attempt (0) and records exactly that.
        self._connect_ex(ip, port, *rest)

    def _connect_status(self) -> int:
        exc = pop_error(self._sk)
        if exc is not None:
            return exc.errno or errno.ECONNABORTED
        state = self._sk.state
        if is_connected_state(state):
            return 0
        if state == TCP_SYN_SENT or state == TCP_SYN_RECV:
            return errno.EINPROGRESS
        return errno.ECONNABORTED

    async def accept(self) -> tuple[Socket, Any]:
        """The next connection from the accept queue (``inet_accept``)."""
        self._require_stream()
        deadline = self._deadline()
        while True:
            self._check_open()
            child = self._call(self._sk.accept)
            if child is not None:
                sock = Socket(self._stack, SOCK_STREAM, proto=self._proto,
                              family=self._family, _core=child)
                return sock, to_address(child.getpeername())
            await self._wait(deadline)

    async def recv(self, bufsize: int) -> bytes:
        """Up to ``bufsize`` bytes; b"" at end of stream (the peer's FIN)."""
        bufsize = check_bufsize(bufsize, "recv")
        if self.type == SOCK_DGRAM:
            data, _ = await self._recvfrom(bufsize)
            return data
        received: bytes = await self._recv_stream(bufsize, self._sk.recvmsg, b"")
        return received

    async def _recv_stream(self, bufsize: int, read: Any, empty: Any) -> Any:
        """TCP's recv loop: ``read(bufsize)`` once bytes are queued,
        ``empty`` at end of stream; waits (timeout) and raises as recv."""
        sk = self._sk
        deadline = self._deadline()
        while True:
            self._check_open()
            if sk.readable():
                return self._call(read, bufsize)
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
                return empty
            await self._wait(deadline)

    async def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        """``recv`` into ``buffer`` (its first ``nbytes`` bytes; 0: all of it);
        the byte count.  A datagram longer than that is cut, as on Linux."""
        view = self._writable(buffer, "recv_into")
        nbytes = self._into_size(view, nbytes, "recv_into")
        if self.type != SOCK_DGRAM:
            # from the receive queue straight into the caller's buffer
            sk = self._sk
            n: int = await self._recv_stream(
                nbytes, lambda size: sk.recvmsg_into(view, size), 0)
            return n
        data, _ = await self._recvfrom(nbytes)
        view[:len(data)] = data
        return len(data)

    async def recvfrom_into(self, buffer: Any, nbytes: int = 0) -> tuple[int, Any]:
        view = self._writable(buffer, "recvfrom_into")
        nbytes = self._into_size(view, nbytes, "recvfrom_into")
        data, addr = await self._recvfrom(nbytes)
        view[:len(data)] = data
        return len(data), addr

    @staticmethod
    def _writable(buffer: Any, caller: str) -> memoryview:
        try:
            view = memoryview(buffer)
        except TypeError:
            view = None
        if view is None or view.readonly:
            raise TypeError(f"{caller}() argument 1 must be read-write bytes-like object, "
                            f"not {type(buffer).__name__}")
        return view.cast("B")

    @staticmethod
    def _into_size(view: memoryview, nbytes: Any, caller: str) -> int:
        nbytes = check_bufsize(nbytes, caller)
        if nbytes > len(view):
            raise ValueError("buffer too small for requested bytes")
        return nbytes or len(view)

    async def send(self, data: Any, flags: int = 0) -> int:
        """Queue as much of ``data`` as the send buffer takes (at least 1 byte).

        ``flags`` (TCP): ``MSG_MORE`` (more is coming: a partial segment
        waits, as with TCP_CORK, and no PSH marks this write's end),
        ``MSG_OOB`` (the last byte is urgent); tcpio's UDP takes none."""
        view = bytes_view(data)
        if self.type == SOCK_DGRAM:
            self._no_udp_flags(flags)
            return self._call(self._sk.sendto, view, None, None)
        return await self._send(view, self._deadline(), flags)

    @staticmethod
    def _no_udp_flags(flags: int) -> None:
        if flags:
            raise sock_error(errno.EOPNOTSUPP)

    async def _send(self, data: memoryview, deadline: float | None, flags: int = 0) -> int:
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
            n = self._call(sk.sendmsg, data, flags)
            if n:
                return n
            await self._wait(deadline)

    async def sendall(self, data: Any, flags: int = 0) -> None:
        """All of ``data``; the timeout bounds the whole call, as in CPython;
        ``flags`` as send's."""
        view = bytes_view(data).cast("B")
        if self.type == SOCK_DGRAM:
            self._no_udp_flags(flags)
            self._call(self._sk.sendto, view, None, None)
            return
        deadline = self._deadline()
        while view:
            n = await self._send(view, deadline, flags)
            view = view[n:]

    # --- UDP ---------------------------------------------------------------
    async def sendto(self, data: Any, address: Any) -> int:
        self._check_open()
        view = bytes_view(data)
        host, port, scope = self._sockaddr(address, "sendto")
        host, port = await self._stack.resolver.resolve_address((host, port), SOCK_DGRAM,
                                                                self._family)
        ip, *rest = self._resolve(host, scope)
        return self._call(self._sk.sendto, view, ip, check_port(port, "sendto"), *rest)

    async def recvfrom(self, bufsize: int) -> tuple[bytes, Any]:
        return await self._recvfrom(check_bufsize(bufsize, "recvfrom"))

    async def _recvfrom(self, bufsize: int) -> tuple[bytes, Any]:
        sk = self._sk
        deadline = self._deadline()
        while True:
            self._check_open()
            # a pending error before queued data, as __skb_recv_udp's
            # sock_error comes before its dequeue
            errors = getattr(sk, "errors", None)
            if errors:
                raise errors.popleft()
            got = sk.recvfrom()
            if got is not None:
                data, addr = got
                return bytes(data[:bufsize]), to_address(addr)
            await self._wait(deadline)

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


def set_reuseport(setsockopt: Any) -> None:
    """asyncio's ``_set_reuseport`` for a tcpio sock: ``reuse_port=True`` is
    honoured exactly when the sock takes SO_REUSEPORT, else the ValueError
    asyncio gives, so create_server and create_datagram_endpoint agree (no
    tcpio sock takes it yet: docs/internals.md "Not built yet")."""
    try:
        setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEPORT, 1)
    except OSError:
        raise ValueError("reuse_port not supported by socket module, "
                         "SO_REUSEPORT defined but not implemented.") from None


def check_family(family: int) -> None:
    """A ``family=`` argument tcpio can honour: 0 (AF_UNSPEC), AF_INET or
    AF_INET6; anything else EAFNOSUPPORT."""
    if family not in (0, AF_INET, AF_INET6):
        raise sock_error(errno.EAFNOSUPPORT)
