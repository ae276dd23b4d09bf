"""TapDevice and TunDevice against the kernel: batching, drops, TUN end to end,
and clean shutdown on both event loops."""

from __future__ import annotations

import asyncio
import re
import shutil
import socket

import pytest
from netns import NetNs
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tcpio.devices.pcap import PcapDevice
from tcpio.devices.tap import TapDevice, TunDevice
from tcpio.stack import Stack

from .tshark import fields

pytestmark = pytest.mark.tap


@pytest.fixture
def ns(tap_required):
    with NetNs() as ns:
        yield ns


def kernel_burst(ns: NetNs, dst: str, count: int) -> None:
    """``count`` UDP datagrams from a kernel socket in ``ns``, written at once."""
    with ns.socket() as sock:
        for i in range(count):
            sock.sendto(b"%04d" % i, (dst, 9))


async def test_reader_drains_in_batches_up_to_the_budget(ns):
    tap = ns.tap(budget=4)
    batches: list[list[bytes]] = []
    try:
        ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
        ns.ip("link", "set", tap.name, "up")
        # A permanent neighbour entry: the kernel sends without asking ARP first.
        ns.ip("neigh", "add", "10.7.0.2", "lladdr", tap.mac.hex(":"), "dev", tap.name,
              "nud", "permanent")
        tap.start(asyncio.get_running_loop(), batches.append)
        await asyncio.sleep(0.2)            # let the kernel's link-up chatter pass
        batches.clear()
        kernel_burst(ns, "10.7.0.2", 20)   # all 20 queued on the TAP before we read
        for _ in range(100):
            if sum(map(len, batches)) >= 20:
                break
            await asyncio.sleep(0.01)
    finally:
        tap.stop()
    udp = [Ether(f) for batch in batches for f in batch]
    udp = [p for p in udp if UDP in p and p[IP].dst == "10.7.0.2"]
    assert [bytes(p[UDP].payload)[:4] for p in udp] == [b"%04d" % i for i in range(20)]
    assert max(map(len, batches)) == 4     # one callback read 4, not 1, not all 20
    assert tap.stats["rx_packets"] >= 20


async def test_send_while_link_down_is_a_counted_drop(ns):
    tap = ns.tap()
    try:
        frame = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=tap.mac) / IP(dst="10.7.0.1")
                      / UDP(dport=9) / b"x")
        tap.send(frame)                    # the link is down: EIO inside, no raise
        ns.ip("link", "set", tap.name, "up")
        tap.send(frame)
        tap.send_batch([frame, frame])
    finally:
        tap.stop()
    tap.send(frame)                        # after stop: counted too
    assert tap.stats["tx_dropped"] == 2
    assert tap.stats["tx_packets"] == 3
    assert tap.stats["tx_bytes"] == 3 * len(frame)
    assert tap.stats["tx_errors"] == 0


def test_kernel_mtu_follows_the_device(ns):
    tap = ns.tap(mtu=9000)
    try:
        out = ns.ip("link", "show", tap.name)
    finally:
        tap.stop()
    assert re.search(r"\bmtu 9000\b", out)
    assert tap.mac[0] & 0x03 == 0x02        # locally administered, unicast


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_stop_removes_the_reader_before_closing(ns, loop_name):
    """Start, receive, stop, keep the loop running: nothing fires on a dead fd.

    uvloop keeps its own poll handle per fd; closing the fd first would leave
    it watching a number that the next open() reuses."""
    factory = asyncio.new_event_loop
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop

    async def main():
        loop = asyncio.get_running_loop()
        problems: list[object] = []
        loop.set_exception_handler(lambda loop, ctx: problems.append(ctx))
        tap = ns.tap()
        ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
        ns.ip("link", "set", tap.name, "up")
        got: list[bytes] = []
        tap.start(loop, got.extend)
        kernel_burst(ns, "10.7.0.2", 1)     # an ARP request at least
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
        fd = tap.fd
        tap.stop()
        tap.stop()                          # idempotent
        # asyncio says whether a reader was still registered (uvloop returns None).
        still_watched = loop.remove_reader(fd)
        # The fd number is free again: a new socket takes it and must work.
        r, w = socket.socketpair()
        reused = r.fileno() == fd
        fired = asyncio.Event()
        loop.add_reader(r.fileno(), fired.set)
        w.send(b"x")
        await asyncio.wait_for(fired.wait(), 5)
        loop.remove_reader(r.fileno())
        r.close()
        w.close()
        return got, tap.fd, still_watched, reused, problems

    with asyncio.Runner(loop_factory=factory) as runner:
        got, after, still_watched, reused, problems = runner.run(main())
    assert got and after is None
    assert still_watched in (False, None) and (loop_name == "uvloop" or still_watched is False)
    assert reused or loop_name == "asyncio"  # uvloop: the number really was reused
    assert problems == []


@pytest.mark.skipif(shutil.which("ping") is None, reason="ping missing")
async def test_tun_device_end_to_end(ns, tmp_path):
    """TUN: bare IPv4 (no Ethernet, no ARP); the kernel pings tcpio through it,
    and the LINKTYPE_RAW pcap dissects cleanly."""
    tun = ns.call(TunDevice, "tcpiotun0")
    path = str(tmp_path / "tun.pcap")
    try:
        assert tun.link == "ip" and tun.mac is None
        ns.ip("addr", "add", "10.8.0.1/24", "dev", tun.name)
        ns.ip("link", "set", tun.name, "up")
        async with Stack(seed=1) as stack:
            stack.add_interface(PcapDevice(tun, path), "10.8.0.2/24")
            res = await ns.arun("ping", "-c", "2", "-i", "0.2", "-W", "2", "-s", "3000",
                                "10.8.0.2")
            mib = stack.mib()
    finally:
        tun.stop()
    assert "2 received" in res.stdout, res.stdout + res.stderr
    assert mib["IcmpOutEchoReps"] == 2 and mib["ReasmOKs"] == 2
    assert "ArpOutRequests" not in mib and "ArpInPackets" not in mib
    if shutil.which("tshark"):
        rows = await asyncio.to_thread(fields, path, "ip.checksum.status", "icmp.type",
                                       display_filter="ip")
        assert rows and {r[0] for r in rows} == {"1"}
        assert sum(r[1] == "0" for r in rows) == 2


async def test_tun_carries_ipv6_and_ipv4_at_once(ns, tmp_path):
    """TUN with both families on one device, as device tunnels and VPNs run
    it: the kernel pings tcpio over IPv6 (3000 bytes: fragmented and
    reassembled both ways), and TCP crosses it over IPv6 in both directions
    and over IPv4 beside it, every byte checked; no ND or ARP on the TUN."""
    tun = ns.call(TunDevice, "tcpiotun6")
    path = str(tmp_path / "tun6.pcap")
    data = bytes(range(256)) * 1024                      # 256 KiB
    try:
        ns.ip("addr", "add", "10.8.0.1/24", "dev", tun.name)
        ns.ip("-6", "addr", "add", "fd08::1/64", "dev", tun.name, "nodad")
        ns.ip("link", "set", tun.name, "up")
        async with Stack(seed=1) as stack:
            ifindex = stack.add_interface(PcapDevice(tun, path), "10.8.0.2/24")
            stack.add_address(ifindex, "fd08::2/64", nodad=True)
            res = await ns.arun("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "-s", "3000",
                                "fd08::2")

            async def echo(reader, writer):
                writer.write(await reader.read())
                await writer.drain()
                writer.close()

            # asyncio's create_server sets IPV6_V6ONLY on an AF_INET6 socket:
            # one server per family
            server6 = await stack.start_server(echo, "::", 7000)
            server4 = await stack.start_server(echo, "0.0.0.0", 7000)

            def kernel_client(addr: str) -> bytes:
                family = socket.AF_INET6 if ":" in addr else socket.AF_INET
                with socket.socket(family, socket.SOCK_STREAM) as c:
                    c.settimeout(10)
                    c.connect((addr, 7000))
                    c.sendall(data)
                    c.shutdown(socket.SHUT_WR)
                    got = bytearray()
                    while chunk := c.recv(65536):
                        got += chunk
                    return bytes(got)

            loop = asyncio.get_running_loop()
            back6, back4 = await asyncio.gather(
                loop.run_in_executor(None, ns.call, kernel_client, "fd08::2"),
                loop.run_in_executor(None, ns.call, kernel_client, "10.8.0.2"))
            server6.close()
            server4.close()
            # and tcpio as the client of a kernel listener over IPv6
            listener = ns.socket(socket.AF_INET6, socket.SOCK_STREAM)
            listener.bind(("fd08::1", 7001))
            listener.listen()

            def kernel_sink() -> bytes:
                conn, _ = listener.accept()
                with conn:
                    got = bytearray()
                    while chunk := conn.recv(65536):
                        got += chunk
                    return bytes(got)

            sink = loop.run_in_executor(None, kernel_sink)
            reader, writer = await stack.open_connection("fd08::1", 7001)
            writer.write(data)
            writer.write_eof()
            await writer.drain()
            received = await asyncio.wait_for(sink, 20)
            writer.close()
            listener.close()
            mib = stack.mib()
    finally:
        tun.stop()
    assert "2 received" in res.stdout, res.stdout + res.stderr
    assert back6 == data and back4 == data and received == data
    assert mib["Icmp6OutEchoReplies"] == 2
    assert "ArpOutRequests" not in mib and "Icmp6OutNeighborSolicits" not in mib
    if shutil.which("tshark"):
        rows = await asyncio.to_thread(fields, path, "tcp.checksum.status",
                                       display_filter="ipv6 && tcp")
        statuses = [v for r in rows for v in r[0].split(",") if v]
        assert len(statuses) > 50 and set(statuses) == {"1"}    # 1: Good


def test_bad_names_raise_oserror(tap_required):
    with pytest.raises(OSError):
        TapDevice("x" * 16)
    with pytest.raises(OSError):
        TapDevice("")


async def test_moved_tap_keeps_working(ns):
    """The other way to get a TAP into a namespace: create it here (down, silent),
    move the link; the fd we hold keeps carrying its frames."""
    tap = TapDevice(f"tcpiomv{ns.name[-6:]}")
    got: list[bytes] = []
    try:
        ns.move_link(tap.name)
        ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
        ns.ip("link", "set", tap.name, "up")
        tap.start(asyncio.get_running_loop(), got.extend)
        kernel_burst(ns, "10.7.0.2", 1)        # the kernel asks ARP for 10.7.0.2
        for _ in range(100):
            if any(Ether(f).type == 0x0806 for f in got):
                break
            await asyncio.sleep(0.01)
    finally:
        tap.stop()
    arp = [Ether(f) for f in got if Ether(f).type == 0x0806]
    assert arp and arp[0].pdst == "10.7.0.2" and arp[0].psrc == "10.7.0.1"
