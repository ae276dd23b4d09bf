"""The edges of tcpio's socket API, each against Linux and CPython's ``socket`` module.

The reference is measured, not remembered: the argument errors are compared
live with what a real ``socket.socket`` raises for the same call on this
machine (``same_error_as_cpython``), and the errnos below were measured with
CPython 3.11 on Linux 6.18 (192.0.2.2/24 on eth0):

- a port outside 0..65535: ``OverflowError("bind(): port must be 0-65535.")``
  (``connect()``, ``connect_ex()``, ``sendto()`` the same with their names),
  TCP and UDP alike; asyncio's create_connection / create_server /
  create_datagram_endpoint let the same error through;
- TCP connect to 255.255.255.255, to 192.0.2.255 (eth0's directed broadcast)
  and to 224.0.0.1: ``OSError(ENETUNREACH)`` at once, blocking or not
  (tcp_v4_connect refuses an RTCF_BROADCAST/RTCF_MULTICAST route);
- UDP connect or sendto to those broadcasts: ``PermissionError(EACCES)``
  unless SO_BROADCAST is set (then connect succeeds); ``connect_ex`` gives 13;
- connect on a connected TCP socket: EISCONN (106), to any address, and
  ``connect_ex`` 106; a non-blocking connect reads EINPROGRESS (115), then
  EALREADY (114) while in progress (to another address too), then 0 once
  connected, then EISCONN; a listener's connect_ex is EISCONN;
- a second connect while one is in progress: EALREADY at once for a socket
  with a timeout (CPython polls a non-blocking fd); a truly blocking
  (timeout None) second caller waits for the same attempt;
- ``settimeout``: None -> ``gettimeout() None, getblocking() True``; 0 ->
  ``0.0, False``; 2.5 -> ``2.5, True``; -1 -> ``ValueError("Timeout value out
  of range")``; a recv that times out -> ``TimeoutError("timed out")``;
- ``recv_into(buf, nbytes)``: at most nbytes (0: the whole buffer), the count;
  a UDP datagram longer than that is cut;
- ``type`` / ``family`` / ``proto``: ``SocketKind.SOCK_STREAM``,
  ``AddressFamily.AF_INET``, 0 for ``socket.socket()``; a closed socket's
  ``fileno()`` is -1.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from stackutil import run_on, until, wired_stacks

from tcpio.socket import Socket
from tcpio.stack import Stack

TCP, UDP = socket.SOCK_STREAM, socket.SOCK_DGRAM


def on_two_stacks(body: Callable[[Stack, Stack], Awaitable[Any]]) -> Any:
    """Run ``body(a, b)`` on the virtual clock: a = 10.0.0.1, b = 10.0.0.2."""
    async def main() -> Any:
        async with wired_stacks() as (a, b):
            return await body(a, b)
    return run_on("virtual", main)


def listening(b: Stack, port: int = 80) -> Socket:
    """A listener on b (10.0.0.2)."""
    lsock = b.socket()
    lsock.bind(("10.0.0.2", port))
    lsock.listen()
    return lsock


def cpython_error(call: Callable[[socket.socket], Any], kind: int) -> tuple[type, str]:
    """What Python's own socket raises for ``call`` (never reaching the network)."""
    with socket.socket(socket.AF_INET, kind) as real, pytest.raises(Exception) as exc:
        call(real)
    return type(exc.value), str(exc.value)


async def tcpio_error(call: Callable[[Socket], Any]) -> tuple[type, str]:
    with pytest.raises(Exception) as exc:
        result = call(sock_under_test)
        if asyncio.iscoroutine(result):
            await result
    return type(exc.value), str(exc.value)


sock_under_test: Any = None


BAD_ADDRESSES = [
    "10.0.0.1",                       # not a tuple
    ["10.0.0.1", 80],
    ("10.0.0.1",),
    ("10.0.0.1", 80, 0),
    (1, 80),                          # host not a string
    (0x0A000001, 80),
    ("10.0\0.0.1", 80),
    ("10.0.0.1", "80"),               # port not an integer
    ("10.0.0.1", 80.0),
    ("10.0.0.1", None),
    ("10.0.0.1", 65536),              # port out of range
    ("10.0.0.1", 70000),
    ("10.0.0.1", -1),
    ("10.0.0.1", 2**31),
    ("10.0.0.1", 2**63),
]


@pytest.mark.parametrize("address", BAD_ADDRESSES, ids=repr)
@pytest.mark.parametrize(("kind", "call"), [
    (TCP, "bind"), (TCP, "connect"), (TCP, "connect_ex"),
    (UDP, "bind"), (UDP, "connect"), (UDP, "connect_ex"), (UDP, "sendto"),
], ids=lambda v: {TCP: "tcp", UDP: "udp"}.get(v, v))
def test_bad_addresses_raise_what_the_socket_module_raises(kind: int, address: Any,
                                                           call: str) -> None:
    """Same exception type, same text, as a real socket given the same call."""
    expected = cpython_error(
        (lambda s: s.sendto(b"x", address)) if call == "sendto"
        else (lambda s: getattr(s, call)(address)), kind)

    async def body(a: Stack, b: Stack) -> tuple[type, str]:
        global sock_under_test
        sock_under_test = a.socket(kind)
        try:
            return await tcpio_error(
                (lambda s: s.sendto(b"x", address)) if call == "sendto"
                else (lambda s: getattr(s, call)(address)))
        finally:
            sock_under_test.close()

    assert on_two_stacks(body) == expected


BOTH_KINDS = ["recv(-1)", "recv('x')", "recv_into(bytearray(4), -1)",
              "recv_into(bytearray(4), 5)", "recv_into(b'abcd')",
              "recv_into(memoryview(b'ab'))", "recv_into(5)", "send('x')", "sendall('x')",
              "settimeout(-1)", "settimeout('x')", "settimeout(float('nan'))",
              "settimeout(float('inf'))"]
UDP_ONLY = ["recvfrom(-1)", "recvfrom_into(b'ab')", "recvfrom_into(bytearray(2), -1)",
            "sendto('x', ('10.0.0.2', 9))"]


@pytest.mark.parametrize(("kind", "what"), [(TCP, w) for w in BOTH_KINDS]
                         + [(UDP, w) for w in BOTH_KINDS + UDP_ONLY],
                         ids=lambda v: {TCP: "tcp", UDP: "udp"}.get(v, v))
def test_bad_arguments_raise_what_the_socket_module_raises(kind: int, what: str) -> None:
    expected = cpython_error(lambda s: eval(f"s.{what}"), kind)

    async def body(a: Stack, b: Stack) -> tuple[type, str]:
        global sock_under_test
        sock_under_test = a.socket(kind)
        try:
            return await tcpio_error(lambda s: eval(f"s.{what}"))
        finally:
            sock_under_test.close()

    assert on_two_stacks(body) == expected


def test_the_port_limits_themselves_are_accepted() -> None:
    """0 and 65535 are ports; a bytes host is a host (CPython binds with both)."""
    async def body(a: Stack, b: Stack) -> list[tuple[str, int]]:
        out = []
        for kind in (TCP, UDP):
            for address in (("10.0.0.1", 65535), (b"10.0.0.1", 0)):
                s = a.socket(kind)
                s.bind(address)
                out.append(s.getsockname())
                s.close()
        return out

    names = on_two_stacks(body)
    assert names[0] == names[2] == ("10.0.0.1", 65535)
    assert names[1][1] > 0 and names[3][1] > 0


def test_asyncio_calls_let_the_port_overflow_through() -> None:
    """asyncio (measured): create_connection -> "connect(): port must be 0-65535.",
    create_server and create_datagram_endpoint(local_addr) -> "bind(): ..."."""
    async def body(a: Stack, b: Stack) -> list[tuple[type, str]]:
        out = []
        for coro in (lambda: a.create_connection(asyncio.Protocol, "10.0.0.2", 70000),
                     lambda: a.create_server(asyncio.Protocol, "10.0.0.1", 70000),
                     lambda: a.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=("10.0.0.1", 70000)),
                     lambda: a.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        remote_addr=("10.0.0.2", 70000))):
            with pytest.raises(OverflowError) as exc:
                await coro()
            out.append((type(exc.value), str(exc.value)))
        return out

    assert on_two_stacks(body) == [(OverflowError, "connect(): port must be 0-65535."),
                                   (OverflowError, "bind(): port must be 0-65535."),
                                   (OverflowError, "bind(): port must be 0-65535."),
                                   (OverflowError, "connect(): port must be 0-65535.")]


# --- broadcast destinations ---------------------------------------------------------

BROADCASTS = ["255.255.255.255", "10.0.0.255", "224.0.0.1"]


@pytest.mark.parametrize("dst", BROADCASTS)
def test_tcp_connect_to_broadcast_or_multicast_is_enetunreach_at_once(dst: str) -> None:
    """tcp_v4_connect: -ENETUNREACH for an RTN_BROADCAST/MULTICAST route, before a
    port is taken or a SYN sent; the socket can then connect elsewhere."""
    async def body(a: Stack, b: Stack) -> tuple[Any, ...]:
        # a default route, as on the measuring machine: the refusal is TCP's,
        # not a missing route's
        a.add_route("0.0.0.0/0", via="10.0.0.2")
        listening(b)
        s = a.socket()
        opens = a.host.mib["ActiveOpens"]
        now = asyncio.get_running_loop().time()
        with pytest.raises(OSError) as exc:
            await s.connect((dst, 80))
        waited = asyncio.get_running_loop().time() - now
        nb = a.socket()
        code = nb.connect_ex((dst, 80))
        state = s.core.state
        await s.connect(("10.0.0.2", 80))      # nothing of the refused attempt is left
        return exc.value.errno, waited, code, a.host.mib["ActiveOpens"] - opens, state

    err, waited, code, opens, state = on_two_stacks(body)
    assert err == errno.ENETUNREACH and code == errno.ENETUNREACH
    assert waited == 0
    assert opens == 1                 # only the connect to 10.0.0.2
    assert state == 7                 # TCP_CLOSE: never SYN-SENT


@pytest.mark.parametrize("dst", BROADCASTS[:2])
def test_udp_connect_to_broadcast_needs_so_broadcast(dst: str) -> None:
    """Linux: EACCES (connect, sendto; connect_ex 13) unless SO_BROADCAST is set."""
    async def body(a: Stack, b: Stack) -> tuple[Any, ...]:
        s = a.socket(UDP)
        with pytest.raises(PermissionError) as exc:
            await s.connect((dst, 9))
        code = s.connect_ex((dst, 9))
        with pytest.raises(PermissionError):
            await s.sendto(b"x", (dst, 9))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        flag = s.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)
        await s.connect((dst, 9))
        return exc.value.errno, code, flag, s.getpeername()

    assert on_two_stacks(body) == (errno.EACCES, errno.EACCES, 1, (dst, 9))


def test_create_datagram_endpoint_allow_broadcast_sets_so_broadcast() -> None:
    """asyncio (measured): remote_addr=(broadcast, 9) is EACCES, with
    allow_broadcast=True it is an endpoint."""
    async def body(a: Stack, b: Stack) -> tuple[Any, ...]:
        with pytest.raises(PermissionError):
            await a.create_datagram_endpoint(asyncio.DatagramProtocol,
                                             remote_addr=("10.0.0.255", 9))
        transport, _ = await a.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("10.0.0.255", 9), allow_broadcast=True)
        peer = transport.get_extra_info("peername")
        transport.close()
        return peer

    assert on_two_stacks(body) == ("10.0.0.255", 9)


# --- connect twice ---------------------------------------------------------------------


def test_connect_on_a_connected_socket_is_eisconn_to_any_address() -> None:
    async def body(a: Stack, b: Stack) -> list[Any]:
        for port in (80, 81):
            listening(b, port)
        s = a.socket()
        await s.connect(("10.0.0.2", 80))
        out = []
        for address in (("10.0.0.2", 80), ("10.0.0.2", 81)):
            with pytest.raises(OSError) as exc:
                await s.connect(address)
            out.append(exc.value.errno)
            out.append(s.connect_ex(address))
        out.append(s.getpeername())
        return out

    assert on_two_stacks(body) == [errno.EISCONN] * 4 + [("10.0.0.2", 80)]


def test_non_blocking_connect_ex_sequence_and_a_listener() -> None:
    async def body(a: Stack, b: Stack) -> list[Any]:
        lsock = listening(b)
        s = a.socket()
        out = [s.connect_ex(("10.0.0.2", 80)), s.connect_ex(("10.0.0.2", 80)),
               s.connect_ex(("10.0.0.2", 81))]
        await until(lambda: s.core.state == 1)
        out += [s.connect_ex(("10.0.0.2", 80)), s.connect_ex(("10.0.0.2", 80))]
        out.append(lsock.connect_ex(("10.0.0.1", 80)))
        return out

    assert on_two_stacks(body) == [errno.EINPROGRESS, errno.EALREADY, errno.EALREADY,
                                   0, errno.EISCONN, errno.EISCONN]


def test_connect_while_connecting_ealready_with_a_timeout_waits_when_blocking() -> None:
    """10.0.0.9 answers nobody's ARP: the first connect stays in progress."""
    async def body(a: Stack, b: Stack) -> tuple[Any, ...]:
        s = a.socket()
        first = asyncio.ensure_future(s.connect(("10.0.0.9", 80)))
        await asyncio.sleep(0.1)
        s.settimeout(5.0)
        with pytest.raises(BlockingIOError) as exc:
            await s.connect(("10.0.0.9", 81))
        s.settimeout(None)
        second = asyncio.ensure_future(s.connect(("10.0.0.9", 80)))
        await asyncio.sleep(0.1)
        waiting = not second.done()
        results = await asyncio.gather(first, second, return_exceptions=True)
        return exc.value.errno, waiting, [getattr(r, "errno", r) for r in results]

    err, waiting, results = on_two_stacks(body)
    assert err == errno.EALREADY
    assert waiting                     # the blocking second caller shares the attempt
    # and its one result: ARP gives up (EHOSTUNREACH); the caller that wakes
    # second finds the error taken (Linux: one of them got EPIPE)
    assert errno.EHOSTUNREACH in results, results


# --- timeouts, blocking ---------------------------------------------------------------


def test_settimeout_and_setblocking_report_like_the_socket_module() -> None:
    real = socket.socket()

    async def body(a: Stack, b: Stack) -> list[Any]:
        s = a.socket()
        out = []
        for step in ("default", "settimeout(0)", "setblocking(True)", "settimeout(2.5)",
                     "setblocking(False)", "settimeout(None)", "settimeout(3)"):
            if step != "default":
                eval(f"s.{step}")
            out.append((s.gettimeout(), s.getblocking()))
        return out

    got = on_two_stacks(body)
    want = []
    for step in ("default", "settimeout(0)", "setblocking(True)", "settimeout(2.5)",
                 "setblocking(False)", "settimeout(None)", "settimeout(3)"):
        if step != "default":
            eval(f"real.{step}")
        want.append((real.gettimeout(), real.getblocking()))
    real.close()
    assert got == want


def test_a_timeout_bounds_each_waiting_call_with_timeout_error() -> None:
    """recv, accept, connect and recvfrom give up after the timeout (virtual
    clock: exactly), with CPython's TimeoutError('timed out')."""
    async def body(a: Stack, b: Stack) -> list[Any]:
        loop = asyncio.get_running_loop()
        lsock = listening(b)
        s = a.socket()
        await s.connect(("10.0.0.2", 80))
        conn, _ = await lsock.accept()
        udp = a.socket(UDP)
        udp.bind(("10.0.0.1", 5000))
        blackhole = a.socket()
        out = []
        for sock, call in ((s, lambda: s.recv(10)), (lsock, lambda: lsock.accept()),
                           (blackhole, lambda: blackhole.connect(("10.0.0.9", 80))),
                           (udp, lambda: udp.recvfrom(10))):
            sock.settimeout(0.75)
            t0 = loop.time()
            with pytest.raises(TimeoutError) as exc:
                await call()
            out.append((str(exc.value), round(loop.time() - t0, 6)))
        # the timeout is no lid on a call that gets its data in time
        s.settimeout(1.0)
        loop.call_later(0.5, lambda: asyncio.ensure_future(conn.send(b"hi")))
        out.append(await s.recv(10))
        return out

    got = on_two_stacks(body)
    assert got[:4] == [("timed out", 0.75)] * 4
    assert got[4] == b"hi"


def test_non_blocking_mode_still_awaits_as_asyncio_sock_calls_do() -> None:
    """asyncio sets every socket it is handed non-blocking, then waits in
    loop.sock_recv(); tcpio's awaits are that waiting form, so 0 is reported
    (gettimeout() == 0.0: asyncio's debug check passes) and awaits still wait."""
    async def body(a: Stack, b: Stack) -> tuple[Any, ...]:
        lsock = listening(b)
        s = a.socket()
        s.setblocking(False)
        await s.connect(("10.0.0.2", 80))
        conn, _ = await lsock.accept()
        asyncio.get_running_loop().call_later(5.0, lambda: asyncio.ensure_future(
            conn.sendall(b"late")))
        return s.gettimeout(), await s.recv(10)

    assert on_two_stacks(body) == (0.0, b"late")


# --- recv_into, type/family/proto, fileno -------------------------------------------------


def test_recv_into_tcp_and_udp() -> None:
    async def body(a: Stack, b: Stack) -> list[Any]:
        lsock = listening(b)
        s = a.socket()
        await s.connect(("10.0.0.2", 80))
        conn, _ = await lsock.accept()
        await conn.sendall(b"hello world")
        await until(lambda: s.core.readable() >= 11)
        buf = bytearray(8)
        out: list[Any] = [await s.recv_into(buf), bytes(buf)]
        out += [await s.recv_into(memoryview(buf)[2:], 2), bytes(buf)]
        out += [await s.recv_into(buf, 0), bytes(buf)]
        u = b.socket(UDP)
        u.bind(("10.0.0.2", 5000))
        sender = a.socket(UDP)
        sender.bind(("10.0.0.1", 5001))
        await sender.sendto(b"abcdefgh", ("10.0.0.2", 5000))
        await sender.sendto(b"XY", ("10.0.0.2", 5000))
        out += [await u.recv_into(buf, 4), bytes(buf)]
        out.append(await u.recvfrom_into(buf))
        return out

    assert on_two_stacks(body) == [
        8, b"hello wo",
        2, b"herlo wo",          # the view starts at byte 2
        1, b"derlo wo",          # 0: the whole buffer; one byte was left
        4, b"abcdo wo",          # the datagram cut to nbytes
        (2, ("10.0.0.1", 5001)),
    ]


def test_type_family_proto_and_fileno_as_asyncio_reads_them() -> None:
    async def body(a: Stack, b: Stack) -> list[Any]:
        tcp, udp = a.socket(), a.socket(UDP)
        six = a.socket(TCP, socket.IPPROTO_TCP)
        trsock = asyncio.trsock.TransportSocket(tcp)    # type: ignore[arg-type]
        out = [tcp.type, tcp.family, tcp.proto, udp.type, udp.proto, six.proto,
               tcp.fileno(), repr(trsock).startswith("<asyncio.TransportSocket fd=-1, "
                                                     "family=2, type=1, proto=0")]
        with pytest.raises(OSError) as exc:
            a.socket(TCP, socket.IPPROTO_UDP)
        out.append(exc.value.errno)
        return out

    got = on_two_stacks(body)
    real = socket.socket()
    real_udp = socket.socket(socket.AF_INET, UDP)
    assert got[:5] == [real.type, real.family, real.proto, real_udp.type, real_udp.proto]
    assert got[0] is socket.SocketKind.SOCK_STREAM and got[1] is socket.AddressFamily.AF_INET
    assert got[5] == socket.IPPROTO_TCP
    real.close()
    real_udp.close()
    assert got[6] == real.fileno() == -1        # what a closed Python socket says
    assert got[7]
    assert got[8] == errno.EPROTONOSUPPORT


# --- IPv6 and reuse_port: one answer everywhere ----------------------------------------


def test_an_ipv4_literal_for_af_inet6_is_eai_addrfamily_everywhere() -> None:
    """An AF_INET6 socket given an IPv4 literal: getaddrinfo's EAI_ADDRFAMILY,
    as CPython's AF_INET6 setipaddr and asyncio's family=AF_INET6 give it on
    Linux; AF_INET6 itself is built (issue 17), an unknown family is not."""
    async def body(a: Stack, b: Stack) -> list[int]:
        six = socket.AF_INET6
        listening(b)
        out = []
        for call in (lambda: a.socket(TCP, family=six).bind(("10.0.0.1", 0)),
                     lambda: a.socket(UDP, family=six).bind(("10.0.0.1", 0)),
                     lambda: a.socket(six, UDP).sendto(b"x", ("10.0.0.2", 7)),
                     lambda: a.create_connection(asyncio.Protocol, "10.0.0.2", 80, family=six),
                     lambda: a.open_connection("10.0.0.2", 80, family=six),
                     lambda: a.create_server(asyncio.Protocol, "10.0.0.1", 80, family=six),
                     lambda: a.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=("10.0.0.1", 0),
                                                        family=six)):
            with pytest.raises(OSError) as exc:
                result = call()
                if asyncio.iscoroutine(result):
                    await result
            out.append(exc.value.errno)
        with pytest.raises(OSError) as exc:
            a.socket(UDP, family=socket.AF_PACKET)
        out.append(exc.value.errno)
        return out

    assert on_two_stacks(body) == [socket.EAI_ADDRFAMILY] * 7 + [errno.EAFNOSUPPORT]


def test_reuse_port_is_refused_alike_by_tcp_and_udp() -> None:
    """No tcpio sock takes SO_REUSEPORT (setsockopt: ENOPROTOOPT, the kernel's
    errno for an option it does not know), so asyncio's rule makes both
    reuse_port=True calls the same ValueError."""
    async def body(a: Stack, b: Stack) -> list[Any]:
        out: list[Any] = []
        for kind in (TCP, UDP):
            s = a.socket(kind)
            with pytest.raises(OSError) as exc:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            out.append(exc.value.errno)
            s.close()
        for call in (lambda: a.create_server(asyncio.Protocol, "10.0.0.1", 80,
                                             reuse_port=True),
                     lambda: a.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                        local_addr=("10.0.0.1", 0),
                                                        reuse_port=True)):
            with pytest.raises(ValueError) as verr:
                await call()
            out.append(str(verr.value))
        # and nothing was left bound by the refused calls
        server = await a.create_server(asyncio.Protocol, "10.0.0.1", 80)
        server.close()
        return out

    text = ("reuse_port not supported by socket module, SO_REUSEPORT defined but "
            "not implemented.")
    assert on_two_stacks(body) == [errno.ENOPROTOOPT, errno.ENOPROTOOPT, text, text]


def test_udp_socket_options_round_trip() -> None:
    async def body(a: Stack, b: Stack) -> list[int]:
        s = a.socket(UDP)
        out = []
        for name in (socket.SO_BROADCAST, socket.SO_REUSEADDR):
            out.append(s.getsockopt(socket.SOL_SOCKET, name))
            s.setsockopt(socket.SOL_SOCKET, name, 1)
            out.append(s.getsockopt(socket.SOL_SOCKET, name))
        out.append(s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE))
        return out

    assert on_two_stacks(body) == [0, 1, 0, 1, socket.SOCK_DGRAM]

