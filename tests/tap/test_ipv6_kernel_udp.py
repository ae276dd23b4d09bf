"""UDP over IPv6 against the Linux kernel over a TAP (issue 17, phase 2).

The kernel at fd00::1, tcpio at fd00::2 (tests/tap/test_ipv6_kernel.py's
``ipv6_peer``).  A kernel AF_INET6 datagram socket in the namespace talks to
a tcpio endpoint made by ``create_datagram_endpoint`` with an IPv6 address:
echoes of 1..8000 bytes (above 1452 the kernel fragments its datagram, tcpio
reassembles it and fragments the echo as the source, the kernel reassembles
that); a datagram to a closed tcpio port gives the connected kernel socket
ECONNREFUSED (tcpio's ICMPv6 port unreachable), and the kernel's port
unreachable gives a connected tcpio socket the same; Wireshark reads the
capture with every UDP and ICMPv6 checksum Good.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

import tcpio

from .test_ipv6_kernel import KERNEL6, TCPIO6, ipv6_peer
from .tshark import PI_WARN, fields, matching, needs_tshark

pytestmark = pytest.mark.tap

# Every size from 1 to 8000 in steps, and the edges: one IPv6 fragment or
# two (1452/1453 on a 1500 MTU), the IPv6 minimum MTU, the largest.
SIZES = sorted({*range(1, 8001, 331), 1232, 1452, 1453, 2904, 2905, 8000})


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.peers: list[tuple] = []

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.peers.append(addr)
        self.transport.sendto(data, addr)


def kernel_echo_roundtrips(sock: socket.socket, sizes: list[int]) -> list[bool]:
    """Send each size to tcpio and read the echo back (blocking, in the ns's socket)."""
    sock.settimeout(3)
    ok = []
    for n in sizes:
        data = bytes((i * 7 + n) & 0xFF for i in range(n))
        sock.sendto(data, (TCPIO6, 7000))
        got, addr = sock.recvfrom(65535)
        ok.append(got == data and addr[:2] == (TCPIO6, 7000))
    return ok


async def test_kernel_echoes_1_to_8000_bytes_through_a_tcpio_endpoint(tap_required):
    async with ipv6_peer() as peer:
        transport, echo = await peer.stack.create_datagram_endpoint(
            Echo, local_addr=("::", 7000))
        assert transport.get_extra_info("sockname")[:2] == ("::", 7000)
        sock = peer.ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            before = peer.stack.mib()
            ok = await asyncio.to_thread(kernel_echo_roundtrips, sock, SIZES)
        finally:
            sock.close()
        assert all(ok), [n for n, good in zip(SIZES, ok) if not good]
        assert {p[0] for p in echo.peers} == {KERNEL6}
        assert all(len(p) == 4 for p in echo.peers)          # sockaddr_in6
        delta = peer.stack.host.mib.delta(before)
        assert delta["Udp6InDatagrams"] == len(SIZES) == delta["Udp6OutDatagrams"]
        big = sum(n + 8 > 1500 - 40 for n in SIZES)     # past the MTU: fragmented
        assert delta["Ip6ReasmOKs"] == big and delta["Ip6FragOKs"] == big
        assert "Udp6InErrors" not in delta and "Udp6InCsumErrors" not in delta
        transport.close()


async def test_tcpio_port_unreachable_is_econnrefused_for_the_kernel_socket(tap_required):
    async with ipv6_peer() as peer:
        sock = peer.ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)

        def knock() -> int:
            sock.settimeout(3)
            sock.connect((TCPIO6, 9))
            sock.send(b"anyone?")
            try:
                sock.recv(100)
            except OSError as exc:
                return exc.errno or 0
            return 0

        try:
            assert await asyncio.to_thread(knock) == 111      # ECONNREFUSED
        finally:
            sock.close()
        mib = peer.stack.mib()
        assert mib["Udp6NoPorts"] == 1 and mib["Icmp6OutDestUnreachs"] == 1


async def test_kernel_port_unreachable_is_econnrefused_for_a_tcpio_socket(tap_required):
    async with ipv6_peer() as peer:
        sock = peer.stack.socket(tcpio.AF_INET6, tcpio.SOCK_DGRAM)
        sock.settimeout(3)
        await sock.connect((KERNEL6, 9))
        assert sock.getpeername() == (KERNEL6, 9, 0, 0)
        await sock.send(b"anyone?")
        with pytest.raises(ConnectionRefusedError):
            await sock.recv(100)
        sock.close()
        assert peer.stack.mib()["Icmp6InDestUnreachs"] == 1


@needs_tshark
async def test_tshark_reads_the_udp6_capture_with_good_checksums(tap_required, tmp_path):
    path = str(tmp_path / "udp6.pcap")
    async with ipv6_peer(pcap=path) as peer:
        transport, _ = await peer.stack.create_datagram_endpoint(
            Echo, local_addr=(TCPIO6, 7000), family=socket.AF_INET6)
        sock = peer.ns.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            ok = await asyncio.to_thread(kernel_echo_roundtrips, sock, [1, 1000, 3000, 8000])
        finally:
            sock.close()
        assert all(ok)
        transport.close()
    rows = await asyncio.to_thread(fields, path, "udp.checksum.status", display_filter="udp")
    statuses = [s for r in rows for s in r[0].split(",") if s]
    assert len(statuses) >= 8 and set(statuses) == {"1"}, rows
    assert await asyncio.to_thread(matching, path, "_ws.malformed") == []
    assert await asyncio.to_thread(
        matching, path, f"ipv6 && _ws.expert.severity >= {PI_WARN}") == []
