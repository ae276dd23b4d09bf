"""TCP over IPv6 against the Linux kernel over a TAP (issue 17, phase 2).

The kernel at fd00::1, tcpio at fd00::2 (and 10.7.0.1 / 10.7.0.2 beside
them).  tcpio connects to a kernel AF_INET6 listener and moves a seeded
stream each way, checked by sha256 at the receiver; kernel AF_INET6 clients
connect to a tcpio echo server (start_server on an IPv6 literal), several at
once, each checking its echo by sha256; a kernel IPv4 client reaches a
tcpio AF_INET6 socket listening on ``::`` and is seen as ::ffff:10.7.0.1;
a forwarding kernel's Packet Too Big (a 1280-byte hop) lowers the MSS of
tcpio's connection through it, every byte still delivered; Wireshark reads the capture with every TCP checksum Good and nothing
malformed.  The large variants (200 connections, 64 MiB each way, 2% loss)
need TCPIO_SLOW=1.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket

import pytest
from netns import KernelPeer, NetNs

import tcpio
from tcpio.devices.impair import Impairment
from tcpio.devices.memory import ImpairedDevice

from .test_ipv6_kernel import KERNEL6, TCPIO6, ipv6_peer, linklocal, wait_for
from .test_tcp_kernel_bulk import expected_digest, kernel_to_tcpio, tcpio_to_kernel
from .test_tcp_kernel_common import kernel_mib
from .tshark import fields, matching, needs_tshark, warnings_besides_answered_dsacks

pytestmark = pytest.mark.tap

MiB = 1024 * 1024
PORT = 7600
slow = [pytest.mark.slow,
        pytest.mark.skipif(os.environ.get("TCPIO_SLOW") != "1",
                           reason="large IPv6 runs: set TCPIO_SLOW=1")]
DIRECTIONS = {"kernel_to_tcpio": kernel_to_tcpio, "tcpio_to_kernel": tcpio_to_kernel}


async def connect6_to_kernel(peer: KernelPeer, port: int) -> tuple[tcpio.Socket, socket.socket]:
    """(tcpio AF_INET6 socket, non-blocking kernel socket) joined over IPv6."""
    loop = asyncio.get_running_loop()

    def make_listener() -> socket.socket:
        srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        srv.bind((KERNEL6, port))
        srv.listen(1)
        srv.setblocking(False)
        return srv

    srv = peer.ns.call(make_listener)
    sock = peer.stack.socket(tcpio.AF_INET6, tcpio.SOCK_STREAM)
    accepted = asyncio.ensure_future(loop.sock_accept(srv))
    await asyncio.wait_for(sock.connect((KERNEL6, port)), 20)
    ksock, kaddr = await asyncio.wait_for(accepted, 20)
    srv.close()
    ksock.setblocking(False)
    assert kaddr[0] == TCPIO6 and sock.getpeername() == (KERNEL6, port, 0, 0)
    return sock, ksock


def lossy(seed: int, loss: float):
    return lambda dev: ImpairedDevice(dev, Impairment(loss=loss, seed=seed),
                                      Impairment(loss=loss, seed=seed + 1))


async def bulk(direction: str, nbytes: int, loss: float = 0.0) -> tuple[dict, dict]:
    seed = nbytes ^ len(direction) ^ 6
    async with ipv6_peer(wrap=lossy(seed, loss) if loss else None) as peer:
        if loss:
            # a resolved neighbour on both sides keeps ND out of the loss
            peer.ns.ip("-6", "neigh", "replace", TCPIO6, "lladdr", peer.tap.mac.hex(":"),
                       "dev", peer.ifname, "nud", "permanent")
            for _ in range(20):
                try:
                    await peer.stack.ping(KERNEL6, timeout=1)
                    break
                except TimeoutError:
                    pass
        sock, ksock = await connect6_to_kernel(peer, PORT)
        try:
            digest = await asyncio.wait_for(DIRECTIONS[direction](sock, ksock, nbytes, seed),
                                            600)
        finally:
            sock.close()
            ksock.close()
        mib, kmib = peer.stack.mib(), kernel_mib(peer.ns)
    assert digest == expected_digest(nbytes, seed)
    return mib, kmib


@pytest.mark.parametrize("direction", list(DIRECTIONS))
async def test_4mib_each_way_over_ipv6(tap_required, direction):
    mib, kmib = await bulk(direction, 4 * MiB)
    assert "InCsumErrors" not in mib and kmib["InCsumErrors"] == 0 and kmib["InErrs"] == 0


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def kernel_clients(peer: KernelPeer, n: int, nbytes: int, family: int = socket.AF_INET6,
                         dst: str = TCPIO6, port: int = PORT) -> list[bool]:
    """``n`` concurrent kernel clients each send ``nbytes`` and read the echo
    back; True for each whose echo's sha256 is what it sent."""
    loop = asyncio.get_running_loop()

    async def one(i: int) -> bool:
        ksock = peer.ns.socket(family, socket.SOCK_STREAM)
        ksock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(ksock, (dst, port)), 30)
            blob = os.urandom(nbytes)

            async def send() -> None:
                await loop.sock_sendall(ksock, blob)
                ksock.shutdown(socket.SHUT_WR)

            async def receive() -> str:
                h = hashlib.sha256()
                while chunk := await loop.sock_recv(ksock, 65536):
                    h.update(chunk)
                return h.hexdigest()

            _, got = await asyncio.gather(send(), receive())
            return got == hashlib.sha256(blob).hexdigest()
        finally:
            ksock.close()

    return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), 600)


async def test_concurrent_kernel_clients_echo_through_a_tcpio_ipv6_server(tap_required):
    async with ipv6_peer() as peer:
        server = await peer.stack.start_server(echo, TCPIO6, PORT)
        ok = await kernel_clients(peer, 8, 512 * 1024)
        server.close()
        mib = peer.stack.mib()
    assert all(ok) and len(ok) == 8
    assert mib["PassiveOpens"] == 8 and "InCsumErrors" not in mib


async def test_a_kernel_ipv4_client_reaches_a_tcpio_dual_stack_listener(tap_required):
    async with ipv6_peer() as peer:
        lst = peer.stack.socket(tcpio.AF_INET6, tcpio.SOCK_STREAM)
        lst.bind(("::", PORT))
        lst.listen()
        loop = asyncio.get_running_loop()
        ksock = peer.ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        ksock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(ksock, (peer.tcpio_ip, PORT)), 20)
        child, addr = await asyncio.wait_for(lst.accept(), 20)
        await loop.sock_sendall(ksock, b"over IPv4")
        got = await asyncio.wait_for(child.recv(100), 20)
        ksock.close()
        child.close()
        lst.close()
    assert addr[0] == "::ffff:" + peer.kernel_ip and addr[2:] == (0, 0)
    assert got == b"over IPv4"


@needs_tshark
async def test_tshark_reads_the_tcp6_capture_with_good_checksums(tap_required, tmp_path):
    path = str(tmp_path / "tcp6.pcap")
    async with ipv6_peer(pcap=path) as peer:
        server = await peer.stack.start_server(echo, TCPIO6, PORT)
        ok = await kernel_clients(peer, 2, 100_000)
        server.close()
        sock, ksock = await connect6_to_kernel(peer, PORT + 1)
        await sock.sendall(b"x" * 50_000)
        sock.close()
        ksock.close()
    assert all(ok)
    rows = await asyncio.to_thread(fields, path, "tcp.checksum.status", display_filter="ipv6 && tcp")
    statuses = [s for r in rows for s in r[0].split(",") if s]
    assert len(statuses) > 50 and set(statuses) == {"1"}
    assert await asyncio.to_thread(matching, path, "_ws.malformed") == []
    # every warning, except a D-SACK of a retransmission the capture holds
    # (the kernel's spurious tail loss probe, RFC 2883: tshark warns on all)
    assert await asyncio.to_thread(
        warnings_besides_answered_dsacks, path, "ipv6 && tcp") == []


# --- the large runs (TCPIO_SLOW=1) ---------------------------------------------

@pytest.mark.parametrize("direction", [pytest.param(d, marks=slow) for d in DIRECTIONS])
async def test_64mib_each_way_over_ipv6(tap_required, direction):
    await bulk(direction, 64 * MiB)


@pytest.mark.parametrize("direction", [pytest.param(d, marks=slow) for d in DIRECTIONS])
async def test_16mib_with_2pct_loss_over_ipv6(tap_required, direction):
    mib, kmib = await bulk(direction, 16 * MiB, loss=0.02)
    assert (mib if direction == "tcpio_to_kernel" else kmib)["RetransSegs"] > 0


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TCPIO_SLOW") != "1", reason="set TCPIO_SLOW=1")
async def test_200_concurrent_kernel_clients_over_ipv6(tap_required):
    async with ipv6_peer() as peer:
        server = await peer.stack.start_server(echo, TCPIO6, PORT, backlog=256)
        ok = await kernel_clients(peer, 200, 64 * 1024)
        server.close()
    assert all(ok) and len(ok) == 200


# --- Packet Too Big from a forwarding kernel ----------------------------------------------

FAR6, NEAR6 = "fd08::2", "fd08::1"
FAR_MTU = 1280


async def far_namespace6(near: NetNs) -> NetNs:
    """Namespace B behind the kernel peer's namespace over a veth whose near
    end has the IPv6 minimum MTU (1280), the near kernel forwarding IPv6.

    Returns once the near kernel's link-local address on the veth has passed
    DAD: until then it sends no Neighbor Solicitation for FAR6 (ndisc_send_ns
    has no source), so a forwarded SYN waits in its unresolved queue and,
    after 3 silent probes, comes back as ICMPv6 address unreachable
    (EHOSTUNREACH).  DAD takes 1-2 s after the link comes up, later on a busy
    machine: without this wait the test failed under the parallel suite."""
    far = NetNs().create()
    try:
        a, b = f"qa{far.name[-6:]}", f"qb{far.name[-6:]}"
        near.ip("link", "add", a, "type", "veth", "peer", "name", b)
        near.ip("link", "set", b, "netns", far.name)
        near.ip("link", "set", a, "mtu", str(FAR_MTU))
        near.ip("-6", "addr", "add", f"{NEAR6}/64", "dev", a, "nodad")
        near.ip("link", "set", a, "up")
        far.ip("-6", "addr", "add", f"{FAR6}/64", "dev", b, "nodad")
        far.ip("link", "set", b, "up")
        far.ip("-6", "route", "add", "default", "via", NEAR6)
        near.sysctl("net.ipv6.conf.all.forwarding", 1)
        await wait_for(lambda: linklocal(near, a) is not None, timeout=30)
    except BaseException:
        far.delete()
        raise
    return far


async def test_packet_too_big_from_a_forwarding_kernel_lowers_the_mss(tap_required):
    """tcpio -- TAP -- kernel A (forwarding) -- veth MTU 1280 -- kernel B:
    A cannot forward tcpio's 1500-byte datagrams and sends Packet Too Big
    (RFC 8201); tcpio lowers its MSS to 1280 - 60, resends what was in
    flight cut to size, and every byte arrives (sha256)."""
    loop = asyncio.get_running_loop()
    data = os.urandom(4 * MiB)
    async with ipv6_peer() as peer:
        far = await far_namespace6(peer.ns)
        try:
            peer.stack.add_route("fd08::/64", via=KERNEL6)

            def make_listener() -> socket.socket:
                s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                s.bind((FAR6, PORT))
                s.listen(1)
                s.setblocking(False)
                return s

            srv = far.call(make_listener)
            accepted = asyncio.ensure_future(loop.sock_accept(srv))
            sock = peer.stack.socket(tcpio.AF_INET6, tcpio.SOCK_STREAM)
            await asyncio.wait_for(sock.connect((FAR6, PORT)), 20)
            ksock, _ = await asyncio.wait_for(accepted, 20)
            ksock.setblocking(False)
            mss_before = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)

            async def receive() -> str:
                h = hashlib.sha256()
                while chunk := await loop.sock_recv(ksock, 1 << 20):
                    h.update(chunk)
                return h.hexdigest()

            async def send() -> None:
                await sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)

            got, _ = await asyncio.wait_for(asyncio.gather(receive(), send()), 120)
            mss_after = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            mib = peer.stack.mib()
            sock.close()
            ksock.close()
            srv.close()
        finally:
            far.delete()
    assert got == hashlib.sha256(data).hexdigest()
    assert mss_before == 1500 - 60 - 12 and mss_after == FAR_MTU - 60 - 12   # timestamps on
    assert mib["Icmp6InPktTooBigs"] >= 1 and mib["Ip6PmtuUpdates"] >= 1
    assert mib["RetransSegs"] >= 1
