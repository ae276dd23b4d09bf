"""tcpio.socket.Socket: the BSD calls, their errnos, and their async forms.

Oracle: the BSD socket API as Python's own ``socket`` module reports it
(errno values and OSError subclasses; connect_ex on a non-blocking socket:
EINPROGRESS, then EALREADY, then EISCONN, as ``inet_stream_connect`` does).
Runs over the fake core on asyncio and uvloop.
"""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
from fake_core import KINDS, FakeNet, both_loops, make_pair

import tcpio
from tcpio.socket import Socket, Waker

# every test runs on the fake core and on real Stacks over a MemoryWire
pytestmark = pytest.mark.parametrize("kind", KINDS)


async def listening(stack, port: int = 80) -> Socket:  # type: ignore[no-untyped-def]
    lsock = stack.socket(tcpio.SOCK_STREAM)
    lsock.bind(("10.0.0.1", port))
    lsock.listen(8)
    return lsock


async def connected(kind: str, **kw):  # type: ignore[no-untyped-def]
    """A client socket connected to an accepted server socket: (client, server)."""
    srv, cli = await make_pair(kind, **kw)
    lsock = await listening(srv)
    csock = cli.socket()
    accept = asyncio.create_task(lsock.accept())
    await csock.connect(("10.0.0.1", 80))
    conn, _ = await accept
    return csock, conn


@both_loops
async def test_connect_accept_send_recv_close(kind: str) -> None:
    srv, cli = await make_pair(kind)
    lsock = await listening(srv)
    assert lsock.getsockname() == ("10.0.0.1", 80)
    csock = cli.socket(tcpio.SOCK_STREAM)
    accept = asyncio.create_task(lsock.accept())
    await csock.connect(("10.0.0.1", 80))
    conn, addr = await accept
    assert addr == csock.getsockname()
    assert conn.getpeername() == csock.getsockname()
    assert csock.getpeername() == ("10.0.0.1", 80)
    assert await csock.send(b"hello") == 5
    assert await conn.recv(100) == b"hello"
    sender = asyncio.create_task(conn.sendall(b"x" * 200_000))
    got = bytearray()
    while len(got) < 200_000:
        got += await csock.recv(65536)
    await sender
    assert got == b"x" * 200_000
    csock.close()
    assert await conn.recv(10) == b""     # FIN: end of stream
    conn.close()
    lsock.close()


@both_loops
async def test_sendall_waits_for_send_space(kind: str) -> None:
    csock, conn = await connected(kind, sndbuf=4096, rcvbuf=8192)
    payload = bytes(range(256)) * 400
    sender = asyncio.create_task(csock.sendall(payload))
    await asyncio.sleep(0.01)
    assert not sender.done()     # 100 KB cannot fit 4 KB + 8 KB of buffers
    got = bytearray()
    while len(got) < len(payload):
        got += await conn.recv(4096)
    await sender
    assert got == payload


@both_loops
async def test_connect_ex_follows_inet_stream_connect(kind: str) -> None:
    srv, cli = await make_pair(kind)
    await listening(srv)
    sock = cli.socket()
    assert sock.connect_ex(("10.0.0.1", 80)) == errno.EINPROGRESS
    assert sock.connect_ex(("10.0.0.1", 80)) == errno.EALREADY
    await sock.connect(("10.0.0.1", 80))       # waits for the same attempt
    # Linux: a blocking connect() that waited leaves the socket SS_CONNECTED,
    # so the next connect() is EISCONN (CPython: connect() then connect_ex()
    # on a blocking socket gives 106).  The 0 a non-blocking caller reads
    # once is in tests/test_socket_api_edges_rules.py.
    assert sock.connect_ex(("10.0.0.1", 80)) == errno.EISCONN
    assert sock.connect_ex(("10.0.0.1", 80)) == errno.EISCONN


@both_loops
async def test_connect_errors(kind: str) -> None:
    _, cli = await make_pair(kind)
    with pytest.raises(ConnectionRefusedError) as e1:
        await cli.socket().connect(("10.0.0.1", 9))
    assert e1.value.errno == errno.ECONNREFUSED
    if kind == "fake":      # real SYN retries would take minutes of wall time
        with pytest.raises(TimeoutError) as e2:
            await cli.socket().connect((FakeNet.UNREACHABLE, 80))
        assert e2.value.errno == errno.ETIMEDOUT
    with pytest.raises(socket.gaierror):
        await cli.socket().connect(("example.invalid", 80))


@both_loops
async def test_bind_errors(kind: str) -> None:
    srv, _ = await make_pair(kind)
    a = srv.socket()
    a.bind(("10.0.0.1", 80))
    with pytest.raises(OSError) as ei:
        srv.socket().bind(("10.0.0.1", 80))
    assert ei.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as ei2:
        srv.socket().bind(("10.0.0.99", 81))
    assert ei2.value.errno == errno.EADDRNOTAVAIL


@both_loops
async def test_closed_socket_raises_ebadf_and_wakes_waiters(kind: str) -> None:
    srv, _ = await make_pair(kind)
    lsock = await listening(srv)
    accept = asyncio.create_task(lsock.accept())
    await asyncio.sleep(0)
    lsock.close()
    lsock.close()       # idempotent
    with pytest.raises(OSError) as ei:
        await accept
    assert ei.value.errno == errno.EBADF
    with pytest.raises(OSError) as ei2:
        lsock.getsockname()
    assert ei2.value.errno == errno.EBADF


@both_loops
async def test_getpeername_unconnected_is_enotconn(kind: str) -> None:
    _, cli = await make_pair(kind)
    with pytest.raises(OSError) as ei:
        cli.socket().getpeername()
    assert ei.value.errno == errno.ENOTCONN


@both_loops
async def test_shutdown_wr_half_close(kind: str) -> None:
    csock, conn = await connected(kind)
    await csock.sendall(b"req")
    csock.shutdown(socket.SHUT_WR)
    assert await conn.recv(10) == b"req"
    assert await conn.recv(10) == b""
    await conn.sendall(b"reply after FIN")
    assert await csock.recv(100) == b"reply after FIN"
    with pytest.raises(OSError) as ei:
        await csock.send(b"more")
    assert ei.value.errno == errno.EPIPE
    with pytest.raises(OSError):
        csock.shutdown(99)


@both_loops
async def test_peer_reset_raises_connection_reset(kind: str) -> None:
    csock, conn = await connected(kind)
    reader = asyncio.create_task(csock.recv(10))
    await asyncio.sleep(0)
    conn.abort()
    with pytest.raises(ConnectionResetError):
        await reader


@both_loops
async def test_sockopts_pass_through_and_async_with(kind: str) -> None:
    _, cli = await make_pair(kind)
    async with cli.socket() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert sock.fileno() == -1
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
    with pytest.raises(OSError):
        sock.getsockname()


def test_bad_socket_type(kind: str) -> None:
    with pytest.raises(OSError) as ei:
        Socket(object(), socket.SOCK_RAW)
    assert ei.value.errno == errno.ESOCKTNOSUPPORT


def kernel_recv_errno(listening_socket: bool) -> int | None:
    """What Linux says to recv() on a TCP socket that never connected."""
    with socket.socket() as k:
        if listening_socket:
            k.bind(("127.0.0.1", 0))
            k.listen()
        try:
            k.recv(1)
        except OSError as exc:
            return exc.errno
    return None


@both_loops
@pytest.mark.parametrize("listening_socket", [False, True], ids=["fresh", "listening"])
async def test_recv_on_unconnected_socket_is_enotconn(kind: str, listening_socket: bool) -> None:
    """Differential: tcp_recvmsg gives ENOTCONN for a listener and for a socket
    that never connected (not b"", which means end of stream, and not a wait
    that never ends)."""
    expected = kernel_recv_errno(listening_socket)
    assert expected == errno.ENOTCONN
    srv, _ = await make_pair(kind)
    sock = await listening(srv) if listening_socket else srv.socket()
    with pytest.raises(OSError) as ei:
        await asyncio.wait_for(sock.recv(1), 5)
    assert ei.value.errno == expected
    sock.close()


@both_loops
async def test_cancelled_waits_leave_nothing_behind(kind: str) -> None:
    """A recv/accept cancelled by a timeout must not leave its future on the
    socket: a poll loop with wait_for would otherwise grow without bound."""
    srv, _ = await make_pair(kind)
    lsock = await listening(srv)
    for _ in range(20):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(lsock.accept(), 0.0005)
    assert lsock._waker.waiting() <= 1
    lsock.close()


@both_loops
async def test_one_wakeup_resolves_every_waiter_and_a_cancelled_wait_is_forgotten(
        kind: str) -> None:
    """A Waker holds one waiting future itself and a list for several
    (issue 11): either way one wakeup resolves them all, and a cancelled
    wait leaves nothing behind, alone or among others.  (The same Waker
    serves every ``kind`` of this module's parametrisation.)"""
    waker = Waker()
    alone = asyncio.ensure_future(waker.wait())
    await asyncio.sleep(0)
    assert waker.waiting() == 1
    alone.cancel()
    await asyncio.gather(alone, return_exceptions=True)
    assert waker.waiting() == 0
    waits = [asyncio.ensure_future(waker.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert waker.waiting() == 3
    waits[1].cancel()
    await asyncio.gather(waits[1], return_exceptions=True)
    assert waker.waiting() == 2
    waker()
    await asyncio.gather(waits[0], waits[2])
    assert waker.waiting() == 0
