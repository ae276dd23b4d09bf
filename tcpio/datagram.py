"""UDP for asyncio users: ``stack.create_datagram_endpoint`` and its transport.

The contract is asyncio's own (``loop.create_datagram_endpoint``):
``connection_made(transport)`` before the call returns,
``datagram_received(data, (host, port))`` per datagram,
``error_received(exc)`` for ICMP errors the core reports on the sock (e.g.
ECONNREFUSED on a connected endpoint after a port unreachable) and for
``sendto`` failures (asyncio reports those there too, it does not raise),
``connection_lost(None)`` soon after ``close()``.

Under it is a core ``UdpSock``.  The core never calls us from inside packet
processing: it marks the sock, and the driver calls ``sk.wakeup`` (our
``_on_wakeup``) once the batch is done; we then drain the sock's error and
receive queues (level-triggered).
"""

from __future__ import annotations

import asyncio
import errno
import socket as _socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcpio.core.errors import sock_error
from tcpio.netdb import inet6_literal
from tcpio.socket import (
    AF_INET,
    AF_INET6,
    check_family,
    check_port,
    resolve_in,
    set_reuseport,
    sockaddr_in,
    to_address,
)

if TYPE_CHECKING:
    from tcpio.stack import Stack

Address = tuple[Any, ...]       # (host, port) or (host, port, flowinfo, scope_id)


def endpoint_family(family: int, *addrs: Any) -> int:
    """The family of an endpoint: ``family=`` when given, else AF_INET6 when
    an address is an IPv6 literal or a 4-tuple (as getaddrinfo on the
    address would say), else AF_INET."""
    if family:
        return family
    for addr in addrs:
        if isinstance(addr, tuple) and addr and (
                len(addr) == 4 or (isinstance(addr[0], str) and inet6_literal(addr[0]))):
            return AF_INET6
    return AF_INET


class UdpTransport(asyncio.DatagramTransport):
    """An asyncio DatagramTransport over a tcpio core ``UdpSock``."""

    _extra: dict[str, Any]    # set by asyncio's BaseTransport (not declared in typeshed)

    def __init__(self, stack: Stack, sk: Any, protocol: asyncio.DatagramProtocol,
                 peer: Address | None) -> None:
        super().__init__()
        self._stack = stack
        self._sk = sk
        self._protocol = protocol
        self._address = peer          # the connected peer, as the user gave it
        self._closing = False
        self._names: dict[int, str] = {}
        self._extra.update(sockname=to_address(sk.getsockname()), peername=peer,
                           stack=stack)
        sk.wakeup = self._on_wakeup

    # --- receiving ---------------------------------------------------------

    def _on_wakeup(self) -> None:
        sk = self._sk
        errors = sk.errors
        while errors and not self._closing:
            self._call_protocol("error_received", errors.popleft())
        recvfrom = sk.recvfrom
        names = self._names
        while not self._closing:
            item = recvfrom()
            if item is None:
                break
            data, peer = item
            ip = peer[0]
            name = names.get(ip)
            if name is None:
                # Address strings for the few peers a socket talks to, made once.
                if len(names) >= 256:
                    names.clear()
                name = names[ip] = to_address(peer)[0]
            self._call_protocol("datagram_received", data, (name, *peer[1:]))

    def _call_protocol(self, method: str, *args: Any) -> None:
        """One protocol callback; an exception goes to the loop's handler.

        asyncio delivers each datagram from its own reader callback, so a
        protocol that raises loses nothing behind it; we deliver a whole
        batch per wakeup and must not strand the rest of it on the sock.
        """
        try:
            getattr(self._protocol, method)(*args)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - asyncio's rule: report, go on
            self._stack.loop.call_exception_handler({
                "message": f"Exception in {method}() of a tcpio datagram endpoint",
                "exception": exc, "transport": self, "protocol": self._protocol})

    # --- sending -----------------------------------------------------------

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._address is not None:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = None
        if self._closing:
            return      # asyncio drops (and eventually warns about) writes after close
        stack = self._stack
        stack.update_time()
        try:
            if addr is None:
                self._sk.sendto(bytes(data), None, None)
            else:
                family = self._sk.family
                host, port, scope = sockaddr_in(family, tuple(addr), "sendto")
                ip, *rest = resolve_in(family, host, scope, stack)
                self._sk.sendto(bytes(data), ip, port, *rest)
        except OSError as exc:
            # asyncio's UDP transport hands send errors to the protocol too.
            self._protocol.error_received(exc)
        finally:
            stack.kick()

    # --- flow control: UDP never buffers in the transport ---------------------

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    # --- lifetime ----------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        sk, stack = self._sk, self._stack
        sk.wakeup = None
        stack._forget_endpoint(self)
        if not stack.closed:
            stack.update_time()
            sk.close()
            stack.kick()
        else:
            sk.close()
        stack.loop.call_soon(self._call_connection_lost)

    def abort(self) -> None:
        self.close()    # nothing is buffered, so abort and close are the same

    def _call_connection_lost(self) -> None:
        try:
            self._protocol.connection_lost(None)
        finally:
            self._protocol = None  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return (f"<tcpio UdpTransport {state} sockname={self._extra.get('sockname')} "
                f"peername={self._address}>")


def create_datagram_endpoint(
        stack: Stack, protocol_factory: Callable[[], asyncio.DatagramProtocol],
        local_addr: tuple[str | None, int] | None = None,
        remote_addr: tuple[str, int] | None = None, *,
        family: int = 0, proto: int = 0, flags: int = 0,
        reuse_port: bool | None = None, allow_broadcast: bool | None = None,
        sock: Any = None) -> tuple[UdpTransport, asyncio.DatagramProtocol]:
    """Bind (and connect) a core UdpSock and wrap it; see ``Stack.create_datagram_endpoint``.

    Without ``local_addr`` the sock is bound to 0.0.0.0 and an ephemeral port,
    as the kernel autobinds on connect/sendto.  ``allow_broadcast`` sets
    SO_BROADCAST, as asyncio does (without it a broadcast peer is EACCES);
    ``reuse_port`` is honoured or refused as ``create_server`` does it.
    """
    check_family(family)
    if proto not in (0, _socket.IPPROTO_UDP):
        raise sock_error(errno.EPROTONOSUPPORT)
    if sock is not None:
        raise ValueError("tcpio endpoints are not built on kernel sockets (sock=)")
    family = endpoint_family(family, local_addr, remote_addr)
    peer: Address | None = None
    sk = stack.host.udp.socket(family)
    stack.update_time()
    try:
        if reuse_port:
            set_reuseport(sk.setsockopt)
        if allow_broadcast:
            sk.setsockopt(_socket.SOL_SOCKET, _socket.SO_BROADCAST, 1)
        if local_addr is not None:
            host, port, scope = sockaddr_in(family, local_addr, "bind")
            ip, *rest = resolve_in(family, host, scope, stack)
            sk.bind(ip, check_port(port, "bind"), *rest)
        else:
            sk.bind(0, 0)
        if remote_addr is not None:
            host, port, scope = sockaddr_in(family, remote_addr, "connect")
            ip, *rest = resolve_in(family, host, scope, stack)
            peer = (remote_addr[0], check_port(port, "connect"), *remote_addr[2:])
            sk.connect(ip, port, *rest)
    except BaseException:
        sk.close()
        raise
    finally:
        stack.kick()
    protocol = protocol_factory()
    transport = UdpTransport(stack, sk, protocol, peer)
    protocol.connection_made(transport)
    return transport, protocol
