"""The asyncio and socket API over IPv6 (issue 17, phase 2), two stacks on a
MemoryWire under the virtual clock (a = fd00::1, b = fd00::2 beside their
IPv4 addresses).

The reference is what the ``socket`` module and asyncio give on Linux:
AF_INET6 sockets take and return (host, port, flowinfo, scope_id); asyncio's
entry points take IPv6 literals and ``family=AF_INET6``; create_server's
AF_INET6 sockets are IPV6_V6ONLY; getaddrinfo answers AF_INET6 for an IPv6
literal; an IPv4 client of a ``::`` socket without V6ONLY is ::ffff:a.b.c.d.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest
from stackutil import run_on, wired_stacks

import tcpio
from tcpio.stack import Stack

A6, B6 = "fd00::1", "fd00::2"


def ipv6_run(body) -> object:
    async def main() -> object:
        async with wired_stacks() as (a, b):
            a.add_address(1, f"{A6}/64", nodad=True)
            b.add_address(1, f"{B6}/64", nodad=True)
            await asyncio.sleep(3)           # link-local DAD on both
            return await body(a, b)
    return run_on("virtual", main)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def test_streams_over_ipv6_carry_data_both_ways():
    async def body(a: Stack, b: Stack) -> tuple:
        server = await b.start_server(echo, B6, 8080)
        name = server.sockets[0].getsockname()
        reader, writer = await a.open_connection(B6, 8080)
        blob = bytes(range(256)) * 2000
        writer.write(blob)
        got = await reader.readexactly(len(blob))
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("sockname")
        writer.close()
        server.close()
        return name, peer, sock, hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()

    name, peer, sock, same = ipv6_run(body)
    assert name == (B6, 8080, 0, 0)
    assert peer == (B6, 8080, 0, 0) and sock[0] == A6 and len(sock) == 4
    assert same


def test_create_server_ipv6_is_v6only_and_family_picks_the_socket():
    async def body(a: Stack, b: Stack) -> tuple:
        server = await b.create_server(asyncio.Protocol, None, 8081, family=socket.AF_INET6)
        [s] = server.sockets
        v6only = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        family, name = s.family, s.getsockname()
        with pytest.raises(ConnectionRefusedError):
            await a.open_connection("10.0.0.2", 8081)
        _, w = await a.open_connection(B6, 8081)
        w.close()
        with pytest.raises(socket.gaierror) as exc:
            await a.open_connection("10.0.0.2", 8081, family=socket.AF_INET6)
        server.close()
        return family, name, v6only, exc.value.errno

    family, name, v6only, err = ipv6_run(body)
    assert family == socket.AF_INET6 and name == ("::", 8081, 0, 0) and v6only == 1
    assert err == socket.EAI_ADDRFAMILY


def test_an_ipv4_client_of_a_dual_stack_socket_is_v4_mapped():
    async def body(a: Stack, b: Stack) -> tuple:
        lst = b.socket(tcpio.AF_INET6, tcpio.SOCK_STREAM)
        lst.bind(("::", 8082))
        lst.listen()
        c = a.socket(tcpio.SOCK_STREAM)
        await c.connect(("10.0.0.2", 8082))
        child, addr = await lst.accept()
        await c.sendall(b"hello")
        got = await child.recv(10)
        c.close()
        return addr, child.getsockname(), got

    addr, name, got = ipv6_run(body)
    assert addr == ("::ffff:10.0.0.1", addr[1], 0, 0)
    assert name == ("::ffff:10.0.0.2", 8082, 0, 0) and got == b"hello"


def test_datagrams_over_ipv6_with_sockaddr_in6():
    async def body(a: Stack, b: Stack) -> tuple:
        got: list = []

        class Sink(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple) -> None:
                got.append((data, addr))

        tb, _ = await b.create_datagram_endpoint(Sink, local_addr=("::", 5353))
        ta, _ = await a.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                 remote_addr=(B6, 5353))
        ta.sendto(b"x" * 3000)           # fragmented by the source
        s = a.socket(tcpio.AF_INET6, tcpio.SOCK_DGRAM)
        await s.sendto(b"y", (B6, 5353, 0, 0))
        await asyncio.sleep(0.1)
        sockname = ta.get_extra_info("sockname")
        ta.close()
        tb.close()
        return got, sockname

    got, sockname = ipv6_run(body)
    assert [d for d, _ in got] == [b"x" * 3000, b"y"]
    assert all(addr[0] == A6 and len(addr) == 4 for _, addr in got)
    assert sockname[0] == A6 and len(sockname) == 4


def test_getaddrinfo_answers_af_inet6_for_an_ipv6_literal():
    async def body(a: Stack, b: Stack) -> list:
        return await a.getaddrinfo(B6, 80, type=socket.SOCK_STREAM)

    infos = ipv6_run(body)
    assert [(i[0], i[4]) for i in infos] == [(socket.AF_INET6, (B6, 80, 0, 0))]


def test_format_connections_shows_ipv6():
    async def body(a: Stack, b: Stack) -> str:
        server = await b.start_server(echo, B6, 8083)
        _, w = await a.open_connection(B6, 8083)
        text = b.format_connections()
        w.close()
        server.close()
        return text

    text = ipv6_run(body)
    assert f"[{B6}]:8083" in text and f"[{A6}]:" in text


def test_create_server_without_a_host_listens_on_both_families_as_asyncio():
    """asyncio's create_server(host=None) binds every family getaddrinfo's
    AI_PASSIVE gives (0.0.0.0, then ::, the IPv6 one with IPV6_V6ONLY):
    clients of both families reach it, and port 0 gives each its own port."""
    async def body(a: Stack, b: Stack) -> tuple:
        server = await a.create_server(asyncio.Protocol, None, 8090)
        names = [s.getsockname()[:2] for s in server.sockets]
        v6only = [s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                  for s in server.sockets[1:]]
        for addr in ("10.0.0.1", A6):
            t, _ = await b.create_connection(asyncio.Protocol, addr, 8090)
            t.close()
        server.close()
        any_port = await a.create_server(asyncio.Protocol, None, 0)
        ports = [s.getsockname()[1] for s in any_port.sockets]
        any_port.close()
        return names, v6only, ports

    names, v6only, ports = ipv6_run(body)
    assert names == [("0.0.0.0", 8090), ("::", 8090)] and v6only == [1]
    assert len(ports) == 2 and 0 not in ports
