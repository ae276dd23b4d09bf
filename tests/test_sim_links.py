"""VirtualNetwork topologies: routed hosts, TUN-style links, ICMP errors to the right sock."""

from __future__ import annotations

import errno

import pytest
from scapy.layers.inet import IP

from tcpio.core.addr import ip_aton
from tcpio.core.sim import VirtualNetwork


def test_ip_links_have_no_ethernet_and_no_arp():
    net = VirtualNetwork()
    a, b = net.host("a"), net.host("b")
    link = net.link(a, b, "10.1.0.1/30", "10.1.0.2/30", kind="ip")
    a.icmp.echo_request(ip_aton("10.1.0.2"), 1, 1, b"tun" * 1000)
    net.run_for(1.0)
    assert [r.data for r in a.icmp.echo_replies] == [b"tun" * 1000]
    assert all(IP(f).version == 4 for _, f in link.capture)
    assert a.mib["ArpOutRequests"] == 0 and not a.arp.table


def test_icmp_errors_reach_the_right_udp_sock_across_the_network():
    net = VirtualNetwork()
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    closed = a.udp.socket()
    closed.connect(ip_aton("10.0.0.2"), 9999)
    opened = a.udp.socket()
    opened.connect(ip_aton("10.0.0.2"), 53)
    server = b.udp.socket()
    server.bind(0, 53)
    woken = []
    closed.wakeup = lambda: woken.append("closed")
    opened.wakeup = lambda: woken.append("opened")
    closed.sendto(b"anyone?")
    opened.sendto(b"hello")
    net.run_for(1.0)
    assert [e.errno for e in closed.errors] == [errno.ECONNREFUSED]
    assert not opened.errors and server.recvfrom()[0] == b"hello"
    assert woken == ["closed"]


def test_three_hosts_with_a_default_route_and_no_forwarding():
    # c is off-link for a; a's default route points at b, which is a host (no forwarding).
    net = VirtualNetwork()
    a, b, c = net.host("a"), net.host("b"), net.host("c")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    net.link(b, c, "10.0.1.1/24", "10.0.1.2/24")
    a.add_route(0, 0, ip_aton("10.0.0.2"))
    sk = a.udp.socket()
    sk.sendto(b"x", ip_aton("10.0.1.2"), 7)
    net.run_for(1.0)
    assert b.mib["InAddrErrors"] == 1 and c.mib["InReceives"] == 0


def test_reassembly_timeout_over_the_network():
    # Fragment 0 arrives, the rest of the datagram is lost on the wire.
    net = VirtualNetwork()
    a, b = net.host("a"), net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    a.add_static_arp(ip_aton("10.0.0.2"), b.interfaces[link.ifb].mac)
    sk = b.udp.socket()
    sk.bind(0, 5)
    link.drop = lambda sender, frame: (sender is a and frame[12:14] == b"\x08\x00"
                                       and IP(frame[14:]).frag > 0)
    a.udp.socket().sendto(b"z" * 1600, ip_aton("10.0.0.2"), 5)
    net.run_for(29.0)
    assert b.mib["ReasmTimeout"] == 0 and link.dropped == 1
    net.run_for(2.0)
    assert sk.recvfrom() is None
    assert b.mib["ReasmTimeout"] == 1 and b.mib["IcmpOutTimeExcds"] == 1
    assert a.mib["IcmpInTimeExcds"] == 1


def test_tcp_bulk_transfer_over_a_lossy_virtual_link():
    """The documented TcpSock API, driven by the virtual clock.

    Every host has TCP: a TCP that fails to import is an error, never a host
    without it (that would turn a broken import into a skip here)."""
    from tcpio.core.tcp.tcp_ipv4 import TcpProto
    from tcpio.devices.impair import Impairment

    net = VirtualNetwork()
    a, b = net.host("a"), net.host("b")
    assert isinstance(a.tcp, TcpProto) and b.protocols[6] is b.tcp
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", impairment=Impairment(loss=0.05, seed=1),
             impairment_ba=Impairment(loss=0.05, seed=2))
    listener = b.tcp.socket()
    listener.bind(0, 80)
    listener.listen(8)
    client = a.tcp.socket()
    with pytest.raises(BlockingIOError):
        client.connect(ip_aton("10.0.0.2"), 80)
    accepted = []
    assert net.run_until(lambda: accepted.append(listener.accept()) or accepted[-1], 30.0)
    server = accepted[-1]
    data = bytes(range(256)) * 400
    got = bytearray()
    sent = 0

    def pump() -> bool:
        nonlocal sent
        if sent < len(data):
            sent += client.sendmsg(data[sent:sent + 16384])
        got.extend(server.recvmsg(1 << 20))
        return len(got) == len(data)

    assert net.run_until(pump, 120.0)
    assert bytes(got) == data
