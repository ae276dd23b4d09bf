"""tcpio.Socket(SOCK_DGRAM) on real Stacks over a MemoryWire.

Oracle: BSD datagram semantics as Python's socket module shows them:
message boundaries kept, recvfrom reports the sender, a connected socket
learns ECONNREFUSED from the ICMP port unreachable its datagram provoked.
"""

from __future__ import annotations

import asyncio
import errno

import pytest
from fake_core import both_loops, make_pair

import tcpio


@both_loops
async def test_sendto_recvfrom_keeps_message_boundaries() -> None:
    srv, cli = await make_pair("memory")
    a = srv.socket(tcpio.SOCK_DGRAM)
    a.bind(("10.0.0.1", 5353))
    b = cli.socket(tcpio.SOCK_DGRAM)
    b.bind(("10.0.0.2", 0))
    for msg in (b"one", b"two two", b"x" * 1400):
        assert await b.sendto(msg, ("10.0.0.1", 5353)) == len(msg)
    got = [await a.recvfrom(2048) for _ in range(3)]
    assert [d for d, _ in got] == [b"one", b"two two", b"x" * 1400]
    assert {addr for _, addr in got} == {b.getsockname()}
    # reply to the sender; a connected socket uses send/recv
    await a.sendto(b"pong", got[0][1])
    assert await b.recv(100) == b"pong"
    a.close()
    b.close()


@both_loops
async def test_connected_udp_learns_econnrefused() -> None:
    _, cli = await make_pair("memory")
    s = cli.socket(tcpio.SOCK_DGRAM)
    await s.connect(("10.0.0.1", 9))          # nothing listens on the server host
    assert s.getpeername() == ("10.0.0.1", 9)
    await s.send(b"anyone?")
    with pytest.raises(ConnectionRefusedError) as ei:
        await asyncio.wait_for(s.recv(100), 10)
    assert ei.value.errno == errno.ECONNREFUSED
    s.close()


@both_loops
async def test_every_call_on_a_closed_socket_is_ebadf() -> None:
    """Differential: what a closed kernel UDP socket says to each call."""
    import socket

    def kernel(call):  # type: ignore[no-untyped-def]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as k:
            k.connect(("127.0.0.1", 9))
        try:
            call(k)
        except OSError as exc:
            return exc.errno
        return None

    _, cli = await make_pair("memory")
    s = cli.socket(tcpio.SOCK_DGRAM)
    await s.connect(("10.0.0.1", 9))
    s.close()
    calls = {
        "send": (lambda k: k.send(b"x"), lambda: s.send(b"x")),
        "sendto": (lambda k: k.sendto(b"x", ("127.0.0.1", 9)),
                   lambda: s.sendto(b"x", ("10.0.0.1", 9))),
        "recv": (lambda k: k.recv(1), lambda: s.recv(1)),
    }
    for name, (on_kernel, on_ours) in calls.items():
        expected = kernel(on_kernel)
        assert expected == errno.EBADF, name
        with pytest.raises(OSError) as ei:
            await asyncio.wait_for(on_ours(), 5)
        assert ei.value.errno == expected, name
    assert cli.mib().get("UdpOutDatagrams", 0) == 0


def _kernel_recv_order() -> list[object]:
    """What two kernel UDP sockets on loopback say: a datagram queued, then
    the ICMP port unreachable for a later send; two recv() calls."""
    import socket
    import time
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        b.connect(a.getsockname())
        a.sendto(b"queued", b.getsockname())
        a.close()
        b.send(b"anyone?")
        time.sleep(0.1)
        out: list[object] = []
        for _ in range(2):
            try:
                out.append(b.recv(100))
            except OSError as exc:
                out.append(exc.errno)
        return out


@both_loops
async def test_a_pending_error_is_reported_before_queued_data() -> None:
    """Differential (kernel loopback): with a datagram queued and the ICMP
    error of a later send pending, recv reports the error first, then the
    datagram."""
    srv, cli = await make_pair("memory")
    a = srv.socket(tcpio.SOCK_DGRAM)
    a.bind(("10.0.0.1", 9))
    b = cli.socket(tcpio.SOCK_DGRAM)
    b.bind(("10.0.0.2", 0))
    await b.connect(("10.0.0.1", 9))
    await a.sendto(b"queued", b.getsockname())
    for _ in range(1000):
        if b._sk.pending():
            break
        await asyncio.sleep(0.001)
    a.close()
    await b.send(b"anyone?")
    for _ in range(1000):
        if b._sk.errors:
            break
        await asyncio.sleep(0.001)
    out: list[object] = []
    for _ in range(2):
        try:
            out.append(await asyncio.wait_for(b.recv(100), 10))
        except OSError as exc:
            out.append(exc.errno)
    b.close()
    assert out == _kernel_recv_order() == [errno.ECONNREFUSED, b"queued"]
