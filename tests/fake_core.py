"""An in-memory fake of the sans-IO TCP core, for testing the asyncio glue alone.

It implements the user-facing ``TcpSock`` API of docs/internals.md ("TCP") and
the wakeup rule ("Sock wakeups"): the fake never calls ``sk.wakeup`` from
inside a user call; it marks socks with ``host.schedule_wakeup`` and the fake
driver (``FakeStack.kick``) delivers them later from the event loop, the way
``tcpio.stack.Stack`` does after a batch of frames.

What the fake models (and so what the glue's contract tests rely on):
- a send buffer of ``sndbuf`` bytes: ``sendmsg`` accepts at most
  ``send_space()``; a receive buffer of ``rcvbuf`` bytes on the peer, filled
  only as far as it has room (a reader that stops calling ``recvmsg`` closes
  the "window" and the writer's send buffer fills: real back-pressure);
- FIN after the send buffer drains, ``rcv_eof`` on the peer;
- RST on ``abort()`` and on ``close()`` with unread data (``ECONNRESET`` at the
  peer), ``ECONNREFUSED`` when nothing listens, ``ETIMEDOUT`` for an address
  that is nobody's (so tests can see every error class);
- a listener's accept queue bounded by its backlog.
There are no segments, no sequence numbers and no timers: that is TCP's job
and has its own tests.  Also here: ``both_loops``, running an ``async def``
test once on asyncio's default loop and once on uvloop.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import inspect
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest

from tcpio.core.addr import ip_aton
from tcpio.core.errors import sock_error
from tcpio.core.mib import Mib
from tcpio.resolver import Resolver

# Linux TCP state numbers (include/net/tcp_states.h)
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LISTEN = 1, 2, 7, 8, 10
TCP_FIN_WAIT1, TCP_LAST_ACK = 4, 9


class FakeTcpSock:
    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.state = TCP_CLOSE
        self.wakeup: Callable[[], None] | None = None
        self.sndbuf = host.net.sndbuf
        self.rcvbuf = host.net.rcvbuf
        self.sndq = bytearray()
        self.rcvq = bytearray()
        self.rcv_eof = False
        self.sk_err = 0
        self.fin_pending = False   # shutdown(SHUT_WR) asked, FIN not yet "sent"
        self.fin_sent = False
        self.closed = False
        self.peer: FakeTcpSock | None = None
        self.laddr: tuple[int, int] | None = None
        self.raddr: tuple[int, int] | None = None
        self.backlog = 0
        self.acceptq: deque[FakeTcpSock] = deque()
        self.connecting = False
        self.ss_connecting = False
        self.opts: dict[tuple[int, int], Any] = {}
        self.bytes_sent = 0   # total accepted by sendmsg (tests read it)

    # --- user calls -------------------------------------------------------
    def bind(self, addr: int, port: int) -> None:
        if addr and addr != self.host.ip:
            raise sock_error(errno.EADDRNOTAVAIL)
        if port == 0:
            port = self.host.ephemeral()
        if (port in self.host.bound) and not self.opts.get((socket.SOL_SOCKET,
                                                             socket.SO_REUSEADDR)):
            raise sock_error(errno.EADDRINUSE)
        self.host.bound.add(port)
        self.laddr = (addr, port)

    def listen(self, backlog: int) -> None:
        if self.laddr is None:
            self.bind(0, 0)
        self.backlog = max(1, backlog)
        self.state = TCP_LISTEN
        self.host.listeners[self.laddr[1]] = self

    def accept(self) -> FakeTcpSock | None:
        if self.state != TCP_LISTEN:
            raise sock_error(errno.EINVAL)
        return self.acceptq.popleft() if self.acceptq else None

    def connect(self, addr: int, port: int) -> None:
        if self.state == TCP_ESTABLISHED:
            # inet_stream_connect: the first call after a non-blocking connect
            # completed returns 0 (SS_CONNECTING -> SS_CONNECTED), later EISCONN
            if self.ss_connecting:
                self.ss_connecting = False
                return
            raise sock_error(errno.EISCONN)
        if self.connecting:
            raise sock_error(errno.EALREADY)
        if self.laddr is None:
            self.bind(0, 0)
        self.laddr = (self.host.ip, self.laddr[1])
        self.raddr = (addr, port)
        self.state = TCP_SYN_SENT
        self.connecting = True
        self.ss_connecting = True
        self.host.net.pending.append(("syn", self))
        raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")

    def sendmsg(self, data: Any, flags: int = 0) -> int:
        if self.sk_err:
            raise self.sock_error()
        if self.fin_pending or self.fin_sent or self.closed:
            raise sock_error(errno.EPIPE)
        if self.state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            raise sock_error(errno.ENOTCONN)
        n = min(len(data), self.send_space())
        self.sndq += memoryview(data)[:n]
        self.bytes_sent += n
        if n:
            self.host.net.dirty.add(self)
        return n

    def send_space(self) -> int:
        return max(0, self.sndbuf - len(self.sndq))

    def stream_writeable(self) -> bool:
        """TcpSock's EPOLLOUT rule (sk_stream_is_writeable): the free space
        at least half of what is queued (the fake has no TCP_NOTSENT_LOWAT)."""
        free = self.sndbuf - len(self.sndq)
        return free > 0 and free >= len(self.sndq) >> 1

    def recvmsg(self, maxlen: int) -> bytes:
        data = bytes(self.rcvq[:maxlen])
        self._consume(len(data))
        return data

    def recvmsg_into(self, buf: Any, nbytes: int = 0) -> int:
        with memoryview(buf) as view, view.cast("B") as flat:
            n = min(nbytes or len(flat), len(self.rcvq))
            flat[:n] = self.rcvq[:n]
        self._consume(n)
        return n

    def _consume(self, n: int) -> None:
        del self.rcvq[:n]
        if n and self.peer is not None:
            self.host.net.dirty.add(self.peer)   # window opened: peer may send more

    def readable(self) -> int:
        return len(self.rcvq)

    def sock_error(self) -> OSError:
        err, self.sk_err = self.sk_err, 0
        return sock_error(err)

    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self.fin_sent:
            self.fin_pending = True
            self.host.net.dirty.add(self)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.state == TCP_LISTEN:
            self.host.listeners.pop(self.laddr[1], None)
            self.state = TCP_CLOSE
            for child in self.acceptq:
                child.abort()
            return
        if self.rcvq:     # tcp_close: unread data means RST (RFC 2525)
            self.abort()
            return
        self.fin_pending = not self.fin_sent
        self.host.net.dirty.add(self)

    def abort(self) -> None:
        self.closed = True
        peer, self.peer = self.peer, None
        self.state = TCP_CLOSE
        self.sndq.clear()
        if peer is not None and peer.peer is self:
            peer.peer = None
            peer.sk_err = errno.ECONNRESET
            peer.state = TCP_CLOSE
            self.host.schedule_wakeup(peer)

    def getsockname(self) -> tuple[int, int]:
        return self.laddr or (0, 0)

    def getpeername(self) -> tuple[int, int]:
        if self.raddr is None or self.state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT,
                                                   TCP_FIN_WAIT1):
            raise sock_error(errno.ENOTCONN)
        return self.raddr

    def setsockopt(self, level: int, name: int, value: Any) -> None:
        self.opts[(level, name)] = value

    def getsockopt(self, level: int, name: int) -> Any:
        return self.opts.get((level, name), 0)

    # --- the "network" ----------------------------------------------------
    def _pump(self) -> bool:
        """Move bytes from our send buffer into the peer's receive buffer."""
        peer = self.peer
        moved = False
        if peer is not None and self.sndq:
            room = peer.rcvbuf - len(peer.rcvq)
            if room > 0:
                chunk = self.sndq[:room]
                del self.sndq[:room]
                peer.rcvq += chunk
                moved = True
                self.host.schedule_wakeup(self)      # send space freed
                peer.host.schedule_wakeup(peer)      # data to read
        if self.fin_pending and not self.sndq:
            self.fin_pending = False
            self.fin_sent = True
            if peer is not None:
                peer.rcv_eof = True
                if peer.state == TCP_ESTABLISHED:
                    peer.state = TCP_CLOSE_WAIT
                peer.host.schedule_wakeup(peer)
            self.state = TCP_FIN_WAIT1 if self.state == TCP_ESTABLISHED else TCP_LAST_ACK
            moved = True
        return moved


class FakeTcp:
    def __init__(self, host: FakeHost) -> None:
        self.host = host

    def socket(self, family: int = socket.AF_INET) -> FakeTcpSock:
        if family != socket.AF_INET:
            # IPv4 only, as a kernel booted with ipv6.disable=1
            raise sock_error(errno.EAFNOSUPPORT)
        return FakeTcpSock(self.host)


class FakeHost:
    def __init__(self, net: FakeNet, ip: str) -> None:
        self.net = net
        self.ip = ip_aton(ip)
        self.tcp = FakeTcp(self)
        self.listeners: dict[int, FakeTcpSock] = {}
        self.bound: set[int] = set()
        self._next_port = 40000
        self._wakeups: dict[int, Any] = {}
        self.now = 0.0
        self.mib = Mib()

    def ephemeral(self) -> int:
        while self._next_port in self.bound:
            self._next_port += 1
        return self._next_port

    def schedule_wakeup(self, sk: Any) -> None:
        self._wakeups[id(sk)] = sk

    def take_wakeups(self) -> list[Any]:
        w = list(self._wakeups.values())
        self._wakeups.clear()
        return w


class FakeNet:
    """All fake hosts, and the one place where "segments" travel."""

    UNREACHABLE = "10.9.9.9"   # connect() here times out

    def __init__(self, sndbuf: int = 16384, rcvbuf: int = 65536) -> None:
        self.sndbuf = sndbuf
        self.rcvbuf = rcvbuf
        self.hosts: dict[int, FakeHost] = {}
        self.pending: list[tuple[str, FakeTcpSock]] = []
        self.dirty: set[FakeTcpSock] = set()
        self._scheduled = False
        self.loop: asyncio.AbstractEventLoop | None = None

    def host(self, ip: str) -> FakeHost:
        h = FakeHost(self, ip)
        self.hosts[h.ip] = h
        return h

    def kick(self) -> None:
        """Like Stack.kick: the work happens later, from the loop."""
        if not self._scheduled:
            self._scheduled = True
            self.loop = asyncio.get_running_loop()
            self.loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        for kind, sk in self.pending:
            if kind == "syn":
                self._handshake(sk)
        self.pending.clear()
        # Pump until nothing moves (bounded: each round moves bytes or a FIN).
        for _ in range(64):
            dirty, self.dirty = self.dirty, set()
            moved = [sk._pump() for sk in dirty]   # pump every sock, no short-circuit
            if not any(moved):
                break
        for host in list(self.hosts.values()):
            for sk in host.take_wakeups():
                if sk.wakeup is not None:
                    sk.wakeup()
        if self.dirty or any(h._wakeups for h in self.hosts.values()):
            self.kick()

    def _handshake(self, sk: FakeTcpSock) -> None:
        sk.connecting = False
        addr, port = sk.raddr
        if sk.closed:
            return
        if self.hosts.get(addr) is None:
            sk.sk_err, sk.state = errno.ETIMEDOUT, TCP_CLOSE
            sk.host.schedule_wakeup(sk)
            return
        listener = self.hosts[addr].listeners.get(port)
        if listener is None or len(listener.acceptq) >= listener.backlog:
            sk.sk_err, sk.state = errno.ECONNREFUSED, TCP_CLOSE
            sk.host.schedule_wakeup(sk)
            return
        child = FakeTcpSock(listener.host)
        child.laddr, child.raddr = (addr, port), sk.laddr
        child.state = sk.state = TCP_ESTABLISHED
        child.peer, sk.peer = sk, child
        listener.acceptq.append(child)
        sk.host.schedule_wakeup(sk)
        listener.host.schedule_wakeup(listener)


class FakeStack:
    """What the glue needs of tcpio.stack.Stack: host, update_time, kick, and
    the thin methods that call the glue modules (as the real Stack does)."""

    def __init__(self, net: FakeNet, ip: str) -> None:
        self.net = net
        self.host = net.host(ip)
        self.resolver = Resolver(self)      # numeric hosts and the hosts table

    def update_time(self) -> None:
        self.host.now = asyncio.get_running_loop().time()

    def kick(self) -> None:
        self.net.kick()

    async def open_connection(self, host: str, port: int, **kw: Any) -> Any:
        from tcpio import streams
        return await streams.open_connection(self, host, port, **kw)

    async def start_server(self, cb: Any, host: str | None = None, port: int | None = None,
                           **kw: Any) -> Any:
        from tcpio import streams
        return await streams.start_server(self, cb, host, port, **kw)

    async def create_connection(self, factory: Any, host: str, port: int, **kw: Any) -> Any:
        from tcpio import transports
        return await transports.create_connection(self, factory, host, port, **kw)

    async def create_server(self, factory: Any, host: str | None = None,
                            port: int | None = None, **kw: Any) -> Any:
        from tcpio import server
        return await server.create_server(self, factory, host, port, **kw)

    def socket(self, type: int = socket.SOCK_STREAM) -> Any:
        from tcpio.socket import Socket
        return Socket(self, type)


def fake_pair(**kw: Any) -> tuple[FakeStack, FakeStack]:
    """Two fake hosts on one fake network: 10.0.0.1 (server), 10.0.0.2 (client)."""
    net = FakeNet(**kw)
    return FakeStack(net, "10.0.0.1"), FakeStack(net, "10.0.0.2")


# --- the same two hosts, fake or real -----------------------------------------

# "fake": FakeStacks (the glue alone); "memory": real tcpio Stacks on a MemoryWire.
KINDS = ["fake", "memory"]
_cleanups: list[Callable[[], None]] = []


async def make_pair(kind: str = "fake", *, sndbuf: int | None = None, rcvbuf: int | None = None,
                    **wire_kw: Any) -> tuple[Any, Any]:
    """Server 10.0.0.1 and client 10.0.0.2, on the fake core or on real Stacks.

    Real stacks are closed when the test coroutine ends (``both_loops``).
    ``sndbuf``/``rcvbuf`` set the fake's buffers or the stacks' tcp_wmem /
    tcp_rmem defaults; ``wire_kw`` goes to ``MemoryWire`` (loss, delay, ...).
    """
    if kind == "fake":
        kw = {k: v for k, v in (("sndbuf", sndbuf), ("rcvbuf", rcvbuf)) if v is not None}
        return fake_pair(**kw)
    import tcpio
    from tcpio.core.settings import Settings

    def settings() -> Settings:
        st = Settings()
        # default = max: the buffers stay this size (no autotuning past them)
        if sndbuf is not None:
            st.tcp_wmem = (min(4096, sndbuf), sndbuf, sndbuf)
        if rcvbuf is not None:
            st.tcp_rmem = (min(4096, rcvbuf), rcvbuf, rcvbuf)
        return st

    wire = tcpio.MemoryWire(**wire_kw)
    srv = tcpio.Stack(settings(), seed=1, name="server")
    cli = tcpio.Stack(settings(), seed=2, name="client")
    _cleanups.extend([srv.close, cli.close])
    srv.add_interface(wire.a, "10.0.0.1/24")
    cli.add_interface(wire.b, "10.0.0.2/24")
    return srv, cli


# --- stream helpers shared by the in-memory and TAP tests --------------------

async def stream_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A ``start_server`` handler: echo everything until the peer's EOF, then close."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def write_and_read_back(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                              data: bytes) -> bytes:
    """Write ``data`` (draining) while reading as many bytes back from an echo:
    a payload larger than the buffers on the path would deadlock otherwise."""
    async def send() -> None:
        writer.write(data)
        await writer.drain()

    sender = asyncio.create_task(send())
    got = await reader.readexactly(len(data))
    await sender
    return got


# --- running async tests on both loops --------------------------------------

def _loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop}
    try:
        import uvloop
        factories["uvloop"] = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a test dependency
        # Without it every both_loops test silently runs on one loop only:
        # under the CI variables that is a failure, like any other skip.
        from conftest import strict_skips
        if strict_skips():
            raise
    return factories


LOOPS = _loop_factories()
TEST_TIMEOUT = float(__import__("os").environ.get("TCPIO_TEST_TIMEOUT", "60"))


def both_loops(fn: Callable[..., Any]) -> Callable[..., None]:
    """Run ``async def fn(...)`` once per event loop (asyncio, uvloop).

    A plain parametrisation (pytest-asyncio 1.x would need a conftest hook,
    ``pytest_asyncio_loop_factories``, to do the same): the test becomes a
    sync function taking ``loop_name`` plus ``fn``'s own fixtures.  A generous
    timeout turns a hang into a failure, never a timing assertion.
    """
    @functools.wraps(fn)
    def test(loop_name: str, **kwargs: Any) -> None:
        async def run() -> None:
            try:
                await asyncio.wait_for(fn(**kwargs), TEST_TIMEOUT)
            finally:
                while _cleanups:
                    _cleanups.pop()()

        with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
            runner.run(run())

    sig = inspect.signature(fn)
    params = [inspect.Parameter("loop_name", inspect.Parameter.POSITIONAL_OR_KEYWORD),
              *sig.parameters.values()]
    test.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    del test.__wrapped__   # pytest must see the sync wrapper, not the coroutine
    return pytest.mark.parametrize("loop_name", list(LOOPS))(test)
