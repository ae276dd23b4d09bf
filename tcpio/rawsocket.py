"""``stack.socket(tcpio.SOCK_RAW, proto)``: a raw IPv4 socket for asyncio (issue 18).

The core is ``tcpio.core.raw`` (Linux's raw.c: copies of every delivered
datagram of the protocol, IP header included; sending with and without
IP_HDRINCL).  Addresses are ``(host, 0)`` pairs as the ``socket`` module
gives them for SOCK_RAW.  A ping on it::

    sock = stack.socket(tcpio.SOCK_RAW, socket.IPPROTO_ICMP)
    await sock.sendto(echo_request, ("10.0.0.1", 0))
    datagram, (src, _) = await sock.recvfrom(65535)     # IP header first
"""

from __future__ import annotations

import errno
import socket as _socket
from typing import TYPE_CHECKING, Any

from tcpio.core.errors import sock_error
from tcpio.core.raw import IP_HDRINCL
from tcpio.core.udp import IP_RECVERR
from tcpio.socket import Waker, bytes_view, resolve_host

if TYPE_CHECKING:
    from typing_extensions import Self

    from tcpio.stack import Stack

SOCK_RAW = _socket.SOCK_RAW


class RawSocket:
    """A SOCK_RAW socket on a tcpio stack (AF_INET)."""

    def __init__(self, stack: Stack, proto: int) -> None:
        stack._bind_loop()
        self._stack = stack
        self._sk = stack.host.raw.socket(proto)
        self._waker = Waker()
        self._sk.wakeup = self._waker

    family = _socket.AF_INET
    type = SOCK_RAW

    @property
    def proto(self) -> int:
        return self._sk.proto

    @property
    def core(self) -> Any:
        return self._sk

    def _check_open(self) -> None:
        if self._sk.closed:
            raise sock_error(errno.EBADF, "Bad file descriptor")

    def bind(self, address: tuple[str, int]) -> None:
        self._check_open()
        self._sk.bind(resolve_host(address[0], self._stack) if address[0] else 0)

    def connect(self, address: tuple[str, int]) -> None:
        self._check_open()
        self._sk.connect(resolve_host(address[0], self._stack))

    def setsockopt(self, level: int, name: int, value: Any) -> None:
        self._check_open()
        if level == _socket.IPPROTO_IP and name == IP_HDRINCL:
            self._sk.setsockopt_hdrincl(bool(value))
            return
        if level == _socket.IPPROTO_IP and name == IP_RECVERR:
            self._sk.recverr = bool(value)
            return
        raise sock_error(errno.ENOPROTOOPT)

    def getsockopt(self, level: int, name: int) -> int:
        self._check_open()
        if level == _socket.IPPROTO_IP and name == IP_HDRINCL:
            return int(self._sk.hdrincl)
        if level == _socket.IPPROTO_IP and name == IP_RECVERR:
            return int(self._sk.recverr)
        raise sock_error(errno.ENOPROTOOPT)

    async def sendto(self, data: Any, address: tuple[str, int]) -> int:
        self._check_open()
        stack = self._stack
        ip = resolve_host(address[0], stack)
        stack.update_time()
        try:
            return self._sk.sendto(bytes_view(data), ip)
        finally:
            stack.kick()

    async def send(self, data: Any) -> int:
        self._check_open()
        stack = self._stack
        stack.update_time()
        try:
            return self._sk.sendto(bytes_view(data))
        finally:
            stack.kick()

    async def recvfrom(self, bufsize: int) -> tuple[bytes, tuple[str, int]]:
        """The next datagram of the protocol, IP header included (cut to
        ``bufsize`` like a datagram socket), and its source."""
        from tcpio.core.addr import ip_ntoa
        while True:
            self._check_open()
            got = self._sk.recvfrom()
            if got is not None:
                data, src = got
                return data[:bufsize], (ip_ntoa(src), 0)
            await self._waker.wait()

    async def recv(self, bufsize: int) -> bytes:
        return (await self.recvfrom(bufsize))[0]

    def close(self) -> None:
        self._sk.close()
        self._waker()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<tcpio.RawSocket proto={self.proto}{' closed' if self._sk.closed else ''}>"
