"""The Linux kernel as the peer: ARP, ping (with fragmentation), UDP, port
unreachable, and a pcap of it all that Wireshark's dissector finds clean.

Each test gets a private network namespace (tests/netns.py): the kernel at
10.7.0.1/24, tcpio at 10.7.0.2/24, a TAP between them.  Kernel-side traffic
comes from real tools (iputils ping, ip neigh) and kernel sockets created
inside the namespace; the assertions use what the kernel reports.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket

import pytest
from netns import KernelPeer, kernel_peer
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from tcpio.devices.impair import Impairment
from tcpio.devices.memory import ImpairedDevice

from .tshark import PI_WARN, fields, matching, needs_tshark

pytestmark = pytest.mark.tap


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


def ping_received(output: str) -> int:
    m = re.search(r"(\d+) received", output)
    return int(m.group(1)) if m else 0


async def kernel_udp_echo_roundtrips(peer: KernelPeer, sizes: list[int]) -> list[bytes]:
    """Send each size from a kernel UDP socket to tcpio's echo; return the echoes."""
    loop = asyncio.get_running_loop()
    sock = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((peer.kernel_ip, 0))
        echoes = []
        for i, n in enumerate(sizes):
            payload = random.Random(i).randbytes(n)
            await loop.sock_sendto(sock, payload, (peer.tcpio_ip, 7))
            data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), 5)
            assert addr == (peer.tcpio_ip, 7)
            echoes.append(data)
        return echoes
    finally:
        sock.close()


async def test_kernel_resolves_tcpio_by_arp(peer):
    before = peer.stack.mib()
    res = await peer.ns.arun("ping", "-c", "1", "-W", "2", peer.tcpio_ip)
    assert ping_received(res.stdout) == 1, res.stdout + res.stderr
    entries = [e for e in peer.ns.neighbours(peer.ifname) if e.get("dst") == peer.tcpio_ip]
    assert len(entries) == 1
    assert entries[0]["lladdr"] == peer.tap.mac.hex(":")
    assert set(entries[0]["state"]) & {"REACHABLE", "STALE", "DELAY", "PROBE"}
    delta = peer.stack.host.mib.delta(before)
    assert delta["ArpInRequests"] >= 1 and delta["ArpOutReplies"] >= 1


async def test_ping_small_and_fragmented(peer):
    before = peer.stack.mib()
    res = await peer.ns.arun("ping", "-c", "3", "-i", "0.2", "-W", "2", peer.tcpio_ip)
    assert ping_received(res.stdout) == 3, res.stdout + res.stderr
    # 8000 bytes of ICMP data: the kernel fragments the request (MTU 1500),
    # tcpio reassembles it and fragments its reply, the kernel reassembles that.
    res = await peer.ns.arun("ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "8000",
                             "-p", "a5", peer.tcpio_ip)
    assert ping_received(res.stdout) == 2, res.stdout + res.stderr
    assert "8008 bytes from" in res.stdout
    delta = peer.stack.host.mib.delta(before)
    assert delta["IcmpInEchos"] == 5 and delta["IcmpOutEchoReps"] == 5
    assert delta["ReasmOKs"] == 2 and delta["ReasmReqds"] == 2 * 6   # 8028 B in 6 pieces
    assert delta["FragOKs"] == 2 and delta["FragCreates"] == 2 * 6
    assert "ReasmFails" not in delta


async def test_kernel_udp_socket_and_tcpio_echo(peer):
    await peer.stack.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
    sizes = [1, 2, 7, 100, 548, 1000, 1471, 1472, 1473, 1480, 1500, 2000, 2952, 2953,
             4000, 6000, 7999, 8000]
    sizes += random.Random(2).sample(range(1, 8001), 12)
    echoes = await kernel_udp_echo_roundtrips(peer, sizes)
    assert echoes == [random.Random(i).randbytes(n) for i, n in enumerate(sizes)]
    mib = peer.stack.mib()
    assert mib["UdpInDatagrams"] == len(sizes) and mib["UdpOutDatagrams"] == len(sizes)
    big = sum(1 for n in sizes if n > 1472)
    assert mib["ReasmOKs"] == big and mib["FragOKs"] == big


async def test_tcpio_sends_to_a_kernel_udp_socket(peer):
    """The other direction: tcpio's endpoint talks first, the kernel answers."""
    sock = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((peer.kernel_ip, 5353))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            got.put_nowait((data, addr))

    try:
        t, _ = await peer.stack.create_datagram_endpoint(Client, remote_addr=(peer.kernel_ip,
                                                                              5353))
        port = t.get_extra_info("sockname")[1]
        for n in (1, 1472, 5000):
            t.sendto(b"q" * n)
            data, addr = await asyncio.wait_for(loop.sock_recvfrom(sock, 65536), 5)
            assert data == b"q" * n and addr == (peer.tcpio_ip, port)
            await loop.sock_sendto(sock, data[::-1] + b"!", addr)
            reply, src = await asyncio.wait_for(got.get(), 5)
            assert reply == b"q" * n + b"!" and src == (peer.kernel_ip, 5353)
    finally:
        sock.close()


async def test_closed_tcpio_port_refuses_kernel_socket(peer):
    loop = asyncio.get_running_loop()
    sock = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect((peer.tcpio_ip, 9))
        await loop.sock_sendall(sock, b"knock knock")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(loop.sock_recv(sock, 100), 5)
    finally:
        sock.close()
    mib = peer.stack.mib()
    assert mib["UdpNoPorts"] == 1 and mib["IcmpOutDestUnreachs"] == 1


@needs_tshark
async def test_pcap_of_the_exchange_is_clean_for_tshark(tap_required, tmp_path):
    path = str(tmp_path / "exchange.pcap")
    async with kernel_peer(pcap=path) as peer:
        await peer.stack.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
        res = await peer.ns.arun("ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "8000",
                                 peer.tcpio_ip)
        assert ping_received(res.stdout) == 2
        await kernel_udp_echo_roundtrips(peer, [1, 1473, 8000])
        sock = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.connect((peer.tcpio_ip, 9))
        sock.send(b"closed?")
        await asyncio.sleep(0.2)
        sock.close()
        unknown = peer.stack.mib().get("EthInUnknownProtos", 0)
        ip6_received = peer.stack.mib().get("Ip6InReceives", 0)
        our_mac = peer.tap.mac.hex(":")
    # Stack closed: the pcap is complete.  Every frame dissected, per protocol layer:
    frames = await asyncio.to_thread(
        fields, path, "frame.number", "eth.src", "eth.type", "ip.checksum.status",
        "icmp.checksum.status", "udp.checksum.status", "ip.flags.mf", "icmp.type")
    statuses: dict[str, list[str]] = {"ip": [], "icmp": [], "udp": []}
    for _, _, _, ip, icmp, udp, _, _ in frames:
        for name, value in (("ip", ip), ("icmp", icmp), ("udp", udp)):
            statuses[name] += [v for v in value.split(",") if v]
    # 1 = Good; 2 = Unverified is allowed only for the datagram quoted inside
    # the ICMP error (a quote may be cut short, then it cannot be checked).
    assert statuses["ip"] and set(statuses["ip"]) == {"1"}
    assert statuses["icmp"] and set(statuses["icmp"]) == {"1"}
    assert statuses["udp"] and set(statuses["udp"]) <= {"1", "2"}
    assert statuses["udp"].count("2") <= 1
    # What we expect to see: fragments both ways, echo replies, a port unreachable.
    ours = [f for f in frames if f[1] == our_mac]
    assert any(f[6] == "1" for f in ours) and any(f[6] == "1" for f in frames if f[1] != our_mac)
    assert sum("0" in f[7].split(",") for f in ours) == 2            # echo replies
    assert sum("3" in f[7].split(",") for f in ours) == 1            # port unreachable
    # No malformed packets and no expert warnings or errors.
    assert await asyncio.to_thread(matching, path, "_ws.malformed") == []
    assert await asyncio.to_thread(matching, path, f"_ws.expert.severity >= {PI_WARN}") == []
    # The kernel's IPv6 chatter (ND, RS, MLD) reached tcpio's ipv6_rcv, each
    # datagram counted there (issue 17), none as an unknown EtherType.
    ipv6_in = [f for f in frames if f[1] != our_mac and f[2] == "0x86dd"]
    assert unknown == 0 and ip6_received == len(ipv6_in)


async def test_impaired_tap_loses_exactly_what_the_impairment_dropped(tap_required, tmp_path):
    """ImpairedDevice on the TAP (this kernel has no netem): 10% loss and
    reordering on tcpio's receive side.  The pcap (inside the impairment) has
    what the kernel really sent; replaying those frames through an identical
    Impairment says which survived, and exactly those reach the application."""
    knobs = {"loss": 0.1, "reorder": 0.1, "delay": 0.001, "seed": 4}
    path = str(tmp_path / "impaired.pcap")
    count = 200

    class Sink(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.got: list[bytes] = []

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.got.append(data)

    async with kernel_peer(pcap=path, wrap=lambda d: ImpairedDevice(d, None,
                                                                     Impairment(**knobs))
                           ) as peer:
        # A permanent neighbour entry keeps ARP (which could be lost) out of it.
        peer.ns.ip("neigh", "replace", peer.tcpio_ip, "lladdr", peer.tap.mac.hex(":"),
                   "dev", peer.ifname, "nud", "permanent")
        _, sink = await peer.stack.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 9))
        sock = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for i in range(count):
                sock.sendto(b"dgram %04d" % i, (peer.tcpio_ip, 9))
                if i % 20 == 19:
                    await asyncio.sleep(0.01)      # let tcpio drain the TAP
            await asyncio.sleep(0.2)
        finally:
            sock.close()
        got = list(sink.got)
    oracle = Impairment(**knobs)
    survivors = []
    for pkt in rdpcap(path):
        if pkt.src == peer.tap.mac.hex(":"):
            continue                               # sent by tcpio: not impaired
        if oracle.fate(bytes(pkt), 0.0) and UDP in pkt and pkt[UDP].dport == 9:
            survivors.append(bytes(pkt[UDP].payload)[:pkt[UDP].len - 8])
    assert sorted(got) == sorted(survivors)
    assert 0.8 * count < len(got) < count


async def test_jumbo_mtu_without_ipv6(tap_required):
    """kernel_peer's knobs: MTU 9000 on both sides (no fragmentation for an
    8000-byte ping) and IPv6 off in the namespace (no ND/RS chatter)."""
    async with kernel_peer(mtu=9000, ipv6=False) as peer:
        res = await peer.ns.arun("ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "8000",
                                 "-M", "do", peer.tcpio_ip)     # -M do: DF set
        mib = peer.stack.mib()
    assert ping_received(res.stdout) == 2, res.stdout + res.stderr
    assert mib["IcmpOutEchoReps"] == 2
    assert "ReasmReqds" not in mib and "FragCreates" not in mib
    assert "EthInUnknownProtos" not in mib
