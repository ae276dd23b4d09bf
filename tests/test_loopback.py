"""Loopback: ``lo`` (127.0.0.1/8, MTU 65536) and local delivery of our own
addresses, against Linux's behaviour and RFC 1122 3.2.1.3.

- A stream or datagram to 127/8 or to one of the stack's own addresses is
  delivered through lo, never a device (Linux's RTN_LOCAL routes: ``ip route
  get 10.0.0.1`` -> ``local 10.0.0.1 dev lo``); a pcap of the real device
  holds none of it (RFC 1122 3.2.1.3: 127/8 "MUST NOT appear outside a host").
- A connect nobody listens for is refused at once with ECONNREFUSED (Linux:
  the RST comes back through lo within the connect call); it used to leave
  the caller waiting for ever (the handshake finished inside the user call,
  before the waiter was registered).
- 127/8 arriving from a device is martian: dropped and counted; a 127/8
  source towards anything but lo is EINVAL (measured on Linux 6.18:
  ``sendto`` from a socket bound to 127.0.0.1 to another host's address).
- TCP's MSS follows lo's MTU: 65483 with timestamps, as ``ss -ti`` shows on
  a Linux lo connection (``pmtu:65535 advmss:65483``).
"""

from __future__ import annotations

import asyncio
import errno
import io

import pytest
from hostutil import MY, PEER, inject, make_host
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap
from stackutil import Echo, Sink, all_loops, run_on

import tcpio
from tcpio.core.addr import ip_aton
from tcpio.core.host import BACKLOG_BUDGET, NETDEV_MAX_BACKLOG
from tcpio.core.sim import VirtualNetwork
from tcpio.devices.pcap import PcapDevice
from tcpio.stack import Stack

OWN = "10.0.0.1"
ADDRS = pytest.mark.parametrize("addr", ["127.0.0.1", OWN], ids=["127.0.0.1", "own-address"])


async def one_stack(pcap: io.BytesIO) -> tuple[Stack, Stack]:
    """A stack with a real device (recorded to ``pcap``) and a peer on the wire."""
    loop = asyncio.get_running_loop()
    wire = tcpio.MemoryWire(seed=1)
    a, b = Stack(seed=1, name="a"), Stack(seed=2, name="b")
    await a.__aenter__()
    await b.__aenter__()
    a.add_interface(PcapDevice(wire.a, pcap, clock=lambda: round(loop.time() * 1e9)),
                    f"{OWN}/24")
    b.add_interface(wire.b, "10.0.0.2/24")
    return a, b


def ipv4_on(pcap: io.BytesIO) -> list[Ether]:
    """Every IPv4 frame the device sent or received (ARP is not IPv4)."""
    return [p for p in rdpcap(io.BytesIO(pcap.getvalue())) if IP in p]


# ----- echo through lo ---------------------------------------------------------------

@ADDRS
@all_loops
def test_tcp_echo_goes_through_lo_and_never_the_device(loop_name, addr):
    payload = bytes(range(256)) * 4096          # 1 MiB: many 64 KiB segments

    async def main():
        pcap = io.BytesIO()
        a, b = await one_stack(pcap)

        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await a.start_server(echo, "0.0.0.0", 7)
            reader, writer = await a.open_connection(addr, 7)
            local, peer = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
            writer.write(payload)
            writer.write_eof()
            got = await reader.read()
            writer.close()
            return got, local, peer, ipv4_on(pcap), a.device_stats()["lo"]
        finally:
            a.close()
            b.close()

    got, local, peer, on_wire, lo = run_on(loop_name, main)
    assert got == payload
    assert local[0] == addr and peer == (addr, 7)      # 127/8: source 127.0.0.1
    assert on_wire == []
    assert lo["tx_packets"] == lo["rx_packets"] > 2 * len(payload) // 65483
    assert lo["rx_dropped"] == 0


@ADDRS
@all_loops
def test_udp_echo_goes_through_lo_and_never_the_device(loop_name, addr):
    async def main():
        pcap = io.BytesIO()
        a, b = await one_stack(pcap)
        try:
            await a.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
            tx, sink = await a.create_datagram_endpoint(Sink, remote_addr=(addr, 7))
            tx.sendto(b"x" * 60000)       # one datagram, unfragmented on lo
            tx.sendto(b"small")
            assert await sink.wait_for(lambda: len(sink.received) == 2)
            return sink.received, ipv4_on(pcap), a.mib()
        finally:
            a.close()
            b.close()

    received, on_wire, mib = run_on(loop_name, main)
    assert received == [(b"x" * 60000, (addr, 7)), (b"small", (addr, 7))]
    assert on_wire == []
    assert mib.get("FragCreates", 0) == 0 and mib.get("ReasmReqds", 0) == 0


# ----- refused at once --------------------------------------------------------------

@ADDRS
@all_loops
def test_a_refused_local_connect_fails_at_once(loop_name, addr):
    """open_connection and Socket.connect to a port nobody listens on: the RST
    comes back through lo and the waiting call raises ECONNREFUSED without
    any time passing on the virtual clock (before the fix it never returned)."""
    async def main():
        loop = asyncio.get_running_loop()
        a, b = await one_stack(io.BytesIO())
        try:
            t0 = loop.time()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.wait_for(a.open_connection(addr, 9), 10)
            streams = loop.time() - t0
            sock = a.socket()
            t0 = loop.time()
            with pytest.raises(OSError) as info:
                await asyncio.wait_for(sock.connect((addr, 9)), 10)
            sock.close()
            return streams, loop.time() - t0, info.value.errno
        finally:
            a.close()
            b.close()

    streams, sock_wait, err = run_on(loop_name, main)
    assert err == errno.ECONNREFUSED
    if loop_name == "virtual":
        assert streams == 0 and sock_wait == 0
    else:
        assert streams < 1 and sock_wait < 1


def test_a_local_connect_succeeds_and_its_waiter_is_woken():
    """The same wake-up on success: connect to a listener on our own address
    returns, established, at once."""
    async def main():
        loop = asyncio.get_running_loop()
        a, b = await one_stack(io.BytesIO())
        try:
            listener = a.socket()
            listener.bind(("127.0.0.1", 80))
            listener.listen()
            sock = a.socket()
            t0 = loop.time()
            await asyncio.wait_for(sock.connect(("127.0.0.1", 80)), 10)
            _, peer = await asyncio.wait_for(listener.accept(), 10)
            return loop.time() - t0, sock.getpeername(), peer == sock.getsockname()
        finally:
            a.close()
            b.close()

    assert run_on("virtual", main) == (0, ("127.0.0.1", 80), True)


# ----- the loop keeps running ---------------------------------------------------------

def test_two_endpoints_bouncing_a_datagram_for_ever_do_not_starve_the_loop():
    """A send from inside receive processing queues on lo's backlog (netif_rx)
    and is processed from the loop, a budget at a time: no recursion, and a
    timer still fires while two echo servers bounce one datagram for ever."""
    async def main():
        a, b = await one_stack(io.BytesIO())
        try:
            await a.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 7))
            two, _ = await a.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 8))
            two.sendto(b"ping", ("127.0.0.1", 7))
            for _ in range(10):
                await asyncio.sleep(0)      # other tasks get their turns
            return a.device_stats()["lo"], a.host.backlog
        finally:
            a.close()
            b.close()

    lo, left = run_on("virtual", main)
    # one bounce per loop iteration: 10 turns, not thousands of nested calls
    assert 5 <= lo["rx_packets"] <= 12 and lo["rx_dropped"] == 0
    assert left == 1            # the datagram is still in flight: not a recursion


# ----- the host core: backlog, budget, bound -------------------------------------------

def test_a_driver_runs_the_backlog_and_a_user_call_returns_first():
    """backlog_deferred: ip_output only queues; process_backlog delivers in
    batches of at most its budget and says whether some are left."""
    h = make_host()
    h.backlog_deferred = True
    srv, cli = h.udp.socket(), h.udp.socket()
    srv.bind(0, 7)
    for i in range(BACKLOG_BUDGET + 5):
        cli.sendto(b"%d" % i, ip_aton("127.0.0.1"), 7)
    assert srv.recvfrom() is None and h.backlog == BACKLOG_BUDGET + 5
    assert h.process_backlog(1.0) is True
    assert h.backlog == 5
    assert h.process_backlog(1.0) is False
    got = []
    while (d := srv.recvfrom()) is not None:
        got.append(d[0])
    assert got[:2] == [b"0", b"1"] and len(got) == BACKLOG_BUDGET + 5
    assert h.take_output() == []


def test_the_backlog_is_bounded_by_netdev_max_backlog():
    h = make_host()
    h.backlog_deferred = True
    cli = h.udp.socket()
    for _ in range(NETDEV_MAX_BACKLOG + 3):
        cli.sendto(b"x", ip_aton(MY), 7)
    assert h.backlog == NETDEV_MAX_BACKLOG
    assert h.mib["LoopbackDrops"] == 3 and h.lo_stats["rx_dropped"] == 3


# ----- martians and sources ---------------------------------------------------------

@pytest.mark.parametrize("src, dst, counter", [
    ("127.0.0.1", MY, "InMartianSrc"),
    (PEER, "127.0.0.1", "InMartianDst"),
    ("127.0.0.1", "127.0.0.1", "InMartianDst"),
])
def test_127_from_a_device_is_martian(src, dst, counter):
    """RFC 1122 3.2.1.3 and ip_route_input_slow: 127/8 as source or
    destination on a frame from a device is dropped (no answer, no delivery)
    and counted (rt_cache's in_martian_src / in_martian_dst; InAddrErrors)."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    assert inject(h, IP(src=src, dst=dst) / UDP(sport=9, dport=53) / b"x") == []
    assert inject(h, IP(src=src, dst=dst) / ICMP(id=1, seq=1)) == []
    assert sk.recvfrom() is None
    assert h.mib[counter] == 2 and h.mib["InAddrErrors"] == 2
    assert h.mib["InDelivers"] == 0


def test_a_127_source_towards_a_device_is_einval_and_nothing_leaves():
    """Linux 6.18 (measured): sendto from a UDP socket bound to 127.0.0.1 to
    another host's address fails with EINVAL (__mkroute_output)."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(ip_aton("127.0.0.1"), 0)
    with pytest.raises(OSError) as info:
        sk.sendto(b"x", ip_aton(PEER), 9)
    assert info.value.errno == errno.EINVAL
    assert h.take_output() == []
    assert h.mib["OutRequests"] == 0


def test_127_destinations_and_our_own_never_reach_a_device():
    h = make_host()
    sk = h.udp.socket()
    for dst in ("127.0.0.1", "127.1.2.3", MY):
        sk.sendto(b"x", ip_aton(dst), 9)
    h.icmp.echo_request(ip_aton("127.0.0.9"), 1, 1, b"p")
    frames = [Ether(f) for _, f in h.take_output()]
    assert not [f for f in frames if IP in f or ARP in f]


# ----- MSS follows lo's MTU ------------------------------------------------------------

@pytest.mark.parametrize("lo_mtu, mss", [(65536, 65483), (1500, 1448), (9000, 8948)])
def test_tcp_mss_over_lo_follows_the_route_mtu(lo_mtu, mss):
    """Linux 6.18, ``ss -ti`` on lo: pmtu 65535 (ipv4_mtu caps lo's 65536 at
    IP_MAX_MTU), advmss 65495 - 12 for timestamps = 65483; ``ip link set lo
    mtu 1500`` gives 1448."""
    from tcp.helpers import sim_connect

    net = VirtualNetwork(seed=7)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    a.set_mtu(0, lo_mtu)
    for addr, port in (("127.0.0.1", 80), ("10.0.0.1", 81)):
        c, s = sim_connect(net, a, a, addr, port)
        assert c.mss_cache == s.mss_cache == mss
        c.sendmsg(bytes(mss + 100))
        net.run_for(1)
        assert s.recvmsg(1 << 20) == bytes(mss + 100)
    assert not any(IP in Ether(f) for f in link_frames(net))


def link_frames(net: VirtualNetwork) -> list[bytes]:
    return [f for link in net.links for _, f in link.capture]
