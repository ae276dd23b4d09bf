"""IPv6 router mode (issue 18; tcpio/core/ip6_forward.py, Linux's ip6_forward).

a (fd01::1) -- r (fd01::2 | fd02::2) -- b (fd02::1) on Ethernet links (ND
resolves every hop), r with ``Settings(ipv6_forward=1)``; virtual clock.
What crosses the links is read back with scapy; RFC 8200 (hop limit,
routers never fragment), RFC 4443 (time exceeded, no route, beyond scope,
Packet Too Big) and RFC 8201 (the sender's path MTU) are the rules.
"""

from __future__ import annotations

import hashlib

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
)
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip6_aton, ip6_ntoa
from tcpio.core.in_h import AF_INET6, IPPROTO_UDP
from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

A, R1, R2, B = "fd01::1", "fd01::2", "fd02::2", "fd02::1"


class Routed6:
    def __init__(self, forward: int = 1, mtu2: int = 1500) -> None:
        self.net = VirtualNetwork(seed=4)
        quiet = {"dad_transmits": 0}
        self.a = self.net.host("a", settings=Settings(**quiet))
        self.r = self.net.host("r", settings=Settings(ipv6_forward=forward, **quiet))
        self.b = self.net.host("b", settings=Settings(**quiet))
        self.l1 = self.net.link(self.a, self.r, "10.0.1.1/24", "10.0.1.2/24")
        self.l2 = self.net.link(self.r, self.b, "10.0.2.2/24", "10.0.2.1/24", mtu=mtu2)
        for h, addr in ((self.a, A), (self.r, R1), (self.b, B)):
            h.add_address6(1, ip6_aton(addr), 64, nodad=True)
        self.r.add_address6(2, ip6_aton(R2), 64, nodad=True)
        self.a.add_route6(0, 0, ip6_aton(R1))
        self.b.add_route6(0, 0, ip6_aton(R2))

    def ip6_from(self, link, host) -> list[IPv6]:
        return [Ether(f)[IPv6] for f in link.frames_from(host) if Ether(f).type == 0x86DD]

    def udp_from_a(self, dst: str, data: bytes, hlim: int = 64) -> None:
        self.a.ip6_output(IPPROTO_UDP, ip6_aton(A), ip6_aton(dst),
                          bytes(IPv6(src=A, dst=dst) / UDP(sport=5000, dport=9) / data)[40:],
                          hlim=hlim)


def test_forwarded_datagram_leaves_with_the_hop_limit_one_less() -> None:
    n = Routed6()
    rx = n.b.udp.socket(AF_INET6)
    rx.bind(0, 9000)
    tx = n.a.udp.socket(AF_INET6)
    tx.connect(ip6_aton(B), 9000)
    tx.send(b"through the router")
    n.net.run_for(1)
    assert rx.recvfrom()[:2] == (b"through the router", (ip6_aton(A), tx.lport, 0, 0))
    (sent,) = [p for p in n.ip6_from(n.l1, n.a) if UDP in p]
    (fwd,) = [p for p in n.ip6_from(n.l2, n.r) if UDP in p]
    assert fwd.hlim == sent.hlim - 1 and (fwd.src, fwd.dst) == (A, B)
    assert bytes(fwd)[8:] == bytes(sent)[8:]            # nothing else touched
    assert n.r.mib["Ip6OutForwDatagrams"] == 1 and n.r.mib["Ip6InAddrErrors"] == 0


def test_ipv6_forwarding_is_off_by_default() -> None:
    n = Routed6(forward=0)
    n.udp_from_a(B, b"x")
    n.net.run_for(1)
    assert [p for p in n.ip6_from(n.l2, n.r) if UDP in p] == []
    assert n.r.mib["Ip6InAddrErrors"] == 1 and n.r.mib["Ip6OutForwDatagrams"] == 0


def test_hop_limit_expiry_is_time_exceeded_from_the_router_quoting_the_datagram() -> None:
    n = Routed6()
    n.udp_from_a(B, b"probe", hlim=1)
    n.net.run_for(1)
    assert [p for p in n.ip6_from(n.l2, n.r) if UDP in p] == []
    (err,) = [p for p in n.ip6_from(n.l1, n.r) if ICMPv6TimeExceeded in p]
    assert (err.src, err.dst) == (R1, A) and err[ICMPv6TimeExceeded].code == 0
    assert (err[IPerror6].src, err[IPerror6].dst, err[IPerror6].hlim) == (A, B, 1)
    assert bytes(err[IPerror6].payload)[8:] == b"probe"
    assert n.r.mib["Ip6InHdrErrors"] == 1


def test_no_route_is_destination_unreachable_no_route() -> None:
    n = Routed6()
    n.udp_from_a("fd09::5", b"nowhere")
    n.net.run_for(1)
    (err,) = [p for p in n.ip6_from(n.l1, n.r) if ICMPv6DestUnreach in p]
    assert err.src == R1 and err[ICMPv6DestUnreach].code == 0
    assert err[IPerror6].dst == "fd09::5"
    assert n.r.mib["Ip6InNoRoutes"] == 1


def test_link_scope_is_never_forwarded() -> None:
    """RFC 4291 2.5.6: a link-local destination is not forwarded; a
    link-local source leaving by another link is beyond its scope (code 2)."""
    n = Routed6()
    r_mac = n.r.interfaces[1].mac
    a_ll = next(x.ip for x in n.a.interfaces[1].ip6.addrs if x.ip >> 118 == 0xFE80 >> 6)
    for src, dst in (("fe80::99", "fe80::77"), (ip6_ntoa(a_ll), B)):
        pkt = IPv6(src=src, dst=dst) / UDP(sport=1, dport=9) / b"scoped"
        n.r.receive(1, bytes(Ether(dst=r_mac, src=n.a.interfaces[1].mac) / pkt), n.net.now)
    n.net.run_for(1)
    assert [p for p in n.ip6_from(n.l2, n.r) if UDP in p] == []
    (err,) = [p for p in n.ip6_from(n.l1, n.r) if ICMPv6DestUnreach in p]
    assert err[ICMPv6DestUnreach].code == 2 and err[IPerror6].dst == B
    assert n.r.mib["Ip6InAddrErrors"] == 2


def test_too_big_for_the_next_link_is_packet_too_big_and_tcp_adapts() -> None:
    """Routers never fragment (RFC 8200 5): the sender hears the next
    link's MTU, lowers its path MTU (RFC 8201) and TCP sends smaller
    segments; every byte arrives."""
    n = Routed6(mtu2=1280)
    n.udp_from_a(B, b"x" * 1400)
    n.net.run_for(1)
    (ptb,) = [p for p in n.ip6_from(n.l1, n.r) if ICMPv6PacketTooBig in p]
    assert ptb[ICMPv6PacketTooBig].mtu == 1280 and ptb[IPerror6].dst == B
    assert n.r.mib["Ip6InTooBigErrors"] == 1 and n.r.mib["Ip6FragFails"] == 1
    assert n.a.route6_lookup(ip6_aton(B)).mtu == 1280
    # a fresh pair whose ends both have 1500 (b advertises an MSS of 1440):
    # only r's side of the second link is smaller
    n2 = Routed6(mtu2=1280)
    n2.b.set_mtu(1, 1500)
    listener = n2.b.tcp.socket(AF_INET6)
    listener.bind(0, 80)
    listener.listen(4)
    c = n2.a.tcp.socket(AF_INET6)
    with pytest.raises(BlockingIOError):
        c.connect(ip6_aton(B), 80)
    n2.net.run_until(lambda: c.state == TCP_ESTABLISHED)
    n2.net.run_for(0.1)
    child = listener.accept()
    data = bytes(range(256)) * 400
    sent, got = 0, bytearray()
    while len(got) < len(data):
        if sent < len(data):
            sent += c.sendmsg(data[sent:sent + 65536])
        n2.net.run_for(0.05)
        got += child.recvmsg(1 << 20)
        assert n2.net.now < 60
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert n2.r.mib["Ip6InTooBigErrors"] >= 1
    assert max(len(f) - 14 for f in n2.l2.frames_from(n2.r)) <= 1280
