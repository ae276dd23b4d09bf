"""tcpio as a router between two kernels (issue 18, router mode) over TAP.

Namespace K1 (10.81.0.1) -- TAP -- tcpio (10.81.0.2 | 10.82.0.2,
``Settings(ip_forward=True)``) -- TAP -- namespace K2 (10.82.0.1).  The
kernels are the judges: ping's "Time to live exceeded" from the router's
address (a traceroute's first hop), TCP across the hop with sha256 equal,
and the kernel learning a smaller MTU behind the router from tcpio's
fragmentation-needed (its route cache shows it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator

from netns import NetNs, kernel_side

from tcpio.core.settings import Settings
from tcpio.stack import Stack


@contextlib.asynccontextmanager
async def routed(mtu2: int = 1500) -> AsyncIterator[tuple[NetNs, NetNs, Stack]]:
    with kernel_side("10.81.0.1/24", ipv6=False) as (k1, tap1), \
            kernel_side("10.82.0.1/24", ipv6=False) as (k2, tap2):
        async with Stack(settings=Settings(ip_forward=True), seed=1) as stack:
            stack.add_interface(tap1, "10.81.0.2/24")
            # only tcpio's side of the second link is smaller: K2 says MSS
            # 1460, so K1 learns the 1200 from tcpio's fragmentation-needed
            stack.add_interface(tap2, "10.82.0.2/24", mtu=mtu2)
            k1.ip("route", "add", "10.82.0.0/24", "via", "10.81.0.2")
            k2.ip("route", "add", "10.81.0.0/24", "via", "10.82.0.2")
            yield k1, k2, stack


async def _kernel_transfer(k1: NetNs, k2: NetNs, family: int, server_ip: str,
                           payload: bytes) -> bytes:
    """``payload`` from a kernel socket in K1 to one in K2 (port 5001), across
    tcpio; what K2 received."""
    server = k2.socket(family, socket.SOCK_STREAM)
    server.bind((server_ip, 5001))
    server.listen(1)
    server.setblocking(False)
    loop = asyncio.get_running_loop()

    async def serve() -> bytes:
        conn, _ = await loop.sock_accept(server)
        chunks = []
        while data := await loop.sock_recv(conn, 1 << 16):
            chunks.append(data)
        conn.close()
        return b"".join(chunks)

    client = k1.socket(family, socket.SOCK_STREAM)
    client.setblocking(False)
    task = asyncio.ensure_future(serve())
    try:
        await asyncio.wait_for(loop.sock_connect(client, (server_ip, 5001)), 20)
        await asyncio.wait_for(loop.sock_sendall(client, payload), 60)
        client.close()
        return await asyncio.wait_for(task, 60)
    finally:
        task.cancel()
        server.close()


def test_ping_across_the_router_and_its_ttl_exceeded(tap_required: None) -> None:
    async def main() -> None:
        async with routed() as (k1, _, stack):
            res = await k1.arun("ping", "-c", "1", "-W", "5", "10.82.0.1")
            assert res.returncode == 0 and "ttl=63" in res.stdout, res.stdout
            res = await k1.arun("ping", "-c", "1", "-W", "5", "-t", "1", "10.82.0.1")
            assert "From 10.81.0.2 icmp_seq=1 Time to live exceeded" in res.stdout, res.stdout
            assert stack.mib()["IcmpOutTimeExcds"] == 1
    asyncio.run(main())


def test_tcp_across_the_router_and_pmtu_learned_by_the_kernel(tap_required: None) -> None:
    payload = os.urandom(4_000_000)

    async def main() -> None:
        async with routed(mtu2=1200) as (k1, k2, stack):
            got = await _kernel_transfer(k1, k2, socket.AF_INET, "10.82.0.1", payload)
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            route = await k1.arun("ip", "route", "get", "10.82.0.1")
            assert "mtu 1200" in route.stdout, route.stdout
            mib = stack.mib()
            assert mib["FragFails"] >= 1 and mib["ForwDatagrams"] > 100
    asyncio.run(main())


# ----- IPv6 router mode (Settings.ipv6_forward, tcpio/core/ip6_forward.py) -------------


@contextlib.asynccontextmanager
async def routed6(mtu2: int = 1500) -> AsyncIterator[tuple[NetNs, NetNs, Stack]]:
    """K1 (fd81::1) -- tcpio (fd81::2 | fd82::2, ipv6_forward) -- K2 (fd82::1)."""
    with kernel_side("10.83.0.1/24") as (k1, tap1), kernel_side("10.84.0.1/24") as (k2, tap2):
        k1.ip("-6", "addr", "add", "fd81::1/64", "dev", tap1.name, "nodad")
        k2.ip("-6", "addr", "add", "fd82::1/64", "dev", tap2.name, "nodad")
        async with Stack(settings=Settings(ipv6_forward=1), seed=1) as stack:
            i1 = stack.add_interface(tap1, "10.83.0.2/24")
            i2 = stack.add_interface(tap2, "10.84.0.2/24", mtu=mtu2)
            stack.add_address(i1, "fd81::2/64", nodad=True)
            stack.add_address(i2, "fd82::2/64", nodad=True)
            k1.ip("-6", "route", "add", "fd82::/64", "via", "fd81::2")
            k2.ip("-6", "route", "add", "fd81::/64", "via", "fd82::2")
            yield k1, k2, stack


def test_ping_6_across_the_router_its_hop_limit_exceeded_and_packet_too_big(
        tap_required: None) -> None:
    """The kernel's ping -6 is the judge: the reply's hop limit one less,
    "Time exceeded: Hop limit" from the router's address with -t 1 (a
    traceroute's first hop), and with a 1280 link behind the router a
    1400-byte ping meets "Packet too big: mtu=1280" and the kernel's route
    cache learns it (RFC 8201)."""
    async def main() -> None:
        async with routed6(mtu2=1280) as (k1, _, stack):
            res = await k1.arun("ping", "-6", "-c", "1", "-W", "5", "fd82::1")
            assert res.returncode == 0 and "ttl=63" in res.stdout, res.stdout
            res = await k1.arun("ping", "-6", "-c", "1", "-W", "5", "-t", "1", "fd82::1")
            assert "From fd81::2 icmp_seq=1 Time exceeded: Hop limit" in res.stdout, res.stdout
            res = await k1.arun("ping", "-6", "-c", "1", "-W", "5", "-s", "1400", "-M", "do",
                                "fd82::1")
            assert "From fd81::2 icmp_seq=1 Packet too big: mtu=1280" in res.stdout, res.stdout
            route = await k1.arun("ip", "-6", "route", "get", "fd82::1")
            assert "mtu 1280" in route.stdout, route.stdout
            mib = stack.mib()
            assert mib["Ip6InHdrErrors"] == 1 and mib["Ip6InTooBigErrors"] == 1
            assert mib["Ip6OutForwDatagrams"] >= 2
    asyncio.run(main())


def test_tcp_over_ipv6_across_the_router_every_byte(tap_required: None) -> None:
    """A kernel TCP flow over IPv6 through tcpio's router, both TAPs with
    their default offloads (the kernel hands tcpio TSO6 aggregates, which a
    router must pass on as the segments they stand for)."""
    payload = os.urandom(4_000_000)

    async def main() -> None:
        async with routed6() as (k1, k2, stack):
            got = await _kernel_transfer(k1, k2, socket.AF_INET6, "fd82::1", payload)
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            mib = stack.mib()
            assert mib["Ip6OutForwDatagrams"] > 100 and mib.get("Ip6InTooBigErrors", 0) == 0
    asyncio.run(main())
