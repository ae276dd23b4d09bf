"""TCP_CORK and MSG_MORE through tcpio's socket API (``Socket.setsockopt``,
``Socket.send(data, flags)``), on the virtual clock: a corked or MSG_MORE
write with TCP_NODELAY set does not reach the peer until a plain write or
uncorking sends it (Linux tcp_push / __tcp_sock_set_cork; the segment rules
are tests/tcp/test_cork_rules.py)."""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
from stackutil import run_on, until, wired_stacks

from tcpio.stack import Stack

IPPROTO_TCP = socket.IPPROTO_TCP


def on_two_stacks(body: Any) -> Any:
    async def main() -> Any:
        async with wired_stacks() as (a, b):
            return await body(a, b)
    return run_on("virtual", main)


async def connected(a: Stack, b: Stack) -> tuple[Any, Any]:
    lsock = b.socket()
    lsock.bind(("10.0.0.2", 80))
    lsock.listen()
    s = a.socket()
    await s.connect(("10.0.0.2", 80))
    conn, _ = await lsock.accept()
    s.setsockopt(IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s, conn


async def held(conn: Any) -> bool:
    """Nothing arrives within 50 ms (virtual)."""
    conn.settimeout(0.05)
    try:
        await conn.recv(100)
    except TimeoutError:
        return True
    return False


def test_msg_more_holds_a_write_until_a_plain_one() -> None:
    async def body(a: Stack, b: Stack) -> list[Any]:
        s, conn = await connected(a, b)
        await s.send(b"a" * 10, socket.MSG_MORE)
        out: list[Any] = [await held(conn)]
        await s.sendall(b"b" * 5)
        await until(lambda: conn.core.readable() >= 15)
        out.append(await conn.recv(100))
        return out

    assert on_two_stacks(body) == [True, b"a" * 10 + b"b" * 5]


def test_tcp_cork_holds_writes_until_uncorked() -> None:
    async def body(a: Stack, b: Stack) -> list[Any]:
        s, conn = await connected(a, b)
        s.setsockopt(IPPROTO_TCP, socket.TCP_CORK, 1)
        out: list[Any] = [s.getsockopt(IPPROTO_TCP, socket.TCP_CORK)]
        await s.send(b"x" * 7)
        await s.send(b"y" * 3)
        out.append(await held(conn))
        s.setsockopt(IPPROTO_TCP, socket.TCP_CORK, 0)
        await until(lambda: conn.core.readable() >= 10)
        out.append(await conn.recv(100))
        return out

    assert on_two_stacks(body) == [1, True, b"x" * 7 + b"y" * 3]


def test_udp_send_takes_no_flags() -> None:
    async def body(a: Stack, b: Stack) -> int:
        u = a.socket(socket.SOCK_DGRAM)
        await u.connect(("10.0.0.2", 9))
        with pytest.raises(OSError) as exc:
            await u.send(b"x", socket.MSG_MORE)
        return exc.value.errno

    assert on_two_stacks(body) == errno.EOPNOTSUPP
