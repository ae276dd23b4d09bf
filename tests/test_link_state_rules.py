"""Interface down/up (issue 18; ``ip link set IF down|up``).

Linux's rules as the reference: a down interface receives nothing, the
routes through it are deleted, connected and static (a send that needed one
fails with ENETUNREACH; a less specific route through another interface
takes over), its IPv6 addresses go (keep_addr_on_down=0), no route can be
added through it (ENETDOWN), its neighbours are forgotten; up brings back
the connected routes and a link-local address, not the static routes; and
an established TCP connection survives a short down period: its
retransmissions fail while the link is down and resume when it is up.
Virtual clock.  tests/tap/test_link_state_kernel.py holds the same rules
against the kernel's own.
"""

from __future__ import annotations

import errno
import hashlib

import pytest

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.in_h import AF_INET6
from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED


def pair() -> tuple[VirtualNetwork, object, object]:
    net = VirtualNetwork(seed=5)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    return net, a, b


def test_established_tcp_survives_a_short_down_period() -> None:
    net, a, b = pair()
    listener = b.tcp.socket()
    listener.bind(0, 80)
    listener.listen(4)
    c = a.tcp.socket()
    with pytest.raises(BlockingIOError):
        c.connect(ip_aton("10.0.0.2"), 80)
    net.run_until(lambda: c.state == TCP_ESTABLISHED)
    net.run_for(0.1)
    child = listener.accept()
    data = bytes(range(256)) * 8192                # 2 MiB
    sent, got = 0, bytearray()
    down_at, up_at = 0.0, 3.0
    start = net.now
    while len(got) < len(data):
        if sent < len(data):
            sent += c.sendmsg(data[sent:sent + 65536])
        net.run_for(0.05)
        t = net.now - start
        if down_at <= t < up_at and a.interfaces[1].up:
            a.set_link(1, False)
        elif t >= up_at and not a.interfaces[1].up:
            a.set_link(1, True)
        got += child.recvmsg(1 << 20)
        assert net.now - start < 120
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert c.state == child.state == TCP_ESTABLISHED
    assert a.mib["TCPOutNoRoute"] > 0 and a.mib["RetransSegs"] > 0
    assert b.mib.get("InNoInterface", 0) == 0 and a.mib["InNoInterface"] > 0


def test_a_send_that_needs_a_down_interface_is_enetunreach_until_it_is_up() -> None:
    net, a, b = pair()
    sk = a.udp.socket()
    sk.sendto(b"warm", ip_aton("10.0.0.2"), 9)      # ARP resolved
    net.run_for(1)
    assert a.arp.lookup(1, ip_aton("10.0.0.2")) is not None
    a.set_link(1, False)
    assert a.arp.lookup(1, ip_aton("10.0.0.2")) is None    # neigh_ifdown
    with pytest.raises(OSError) as exc:
        sk.sendto(b"x", ip_aton("10.0.0.2"), 9)
    assert exc.value.errno == errno.ENETUNREACH
    with pytest.raises(OSError) as exc:
        a.route_lookup(ip_aton("10.0.0.2"))
    assert exc.value.errno == errno.ENETUNREACH
    a.set_link(1, True)
    rx = b.udp.socket()
    rx.bind(0, 9)
    sk.sendto(b"again", ip_aton("10.0.0.2"), 9)
    net.run_for(1)
    assert rx.recvfrom() == (b"again", (ip_aton("10.0.0.1"), sk.lport))


def test_a_less_specific_route_through_another_interface_takes_over() -> None:
    net = VirtualNetwork(seed=6)
    a, b, c = net.host("a"), net.host("b"), net.host("c")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    net.link(a, c, "10.9.0.1/24", "10.9.0.2/24")
    a.add_route(0, 0, ip_aton("10.9.0.2"))          # default through c
    far = ip_aton("10.0.0.77")
    assert a.route_lookup(far).ifindex == 1
    a.set_link(1, False)
    assert a.route_lookup(far).ifindex == 2          # the connected /24 is dead
    a.set_link(1, True)
    assert a.route_lookup(far).ifindex == 1


def _routes(h, ifindex: int = 1) -> set[tuple[int, int, int | None]]:
    return {(e.prefix, e.prefixlen, e.gateway) for t in h.fib._by_len.values()
            for e in t.values() if e.ifindex == ifindex}


def test_down_deletes_connected_and_static_routes_and_up_brings_back_only_connected() -> None:
    net, a, b = pair()
    gw = ip_aton("10.0.0.2")
    a.add_route(ip_aton("10.10.0.0"), 24, gw)
    a.add_route(0, 0, gw)
    assert len(_routes(a)) == 3
    a.set_link(1, False)
    assert _routes(a) == set()                          # fib_sync_down_dev + fib_flush
    assert a.is_local_address(ip_aton("10.0.0.1"))      # IPv4 addresses stay
    own = a.udp.socket()
    own.sendto(b"to myself", ip_aton("10.0.0.1"), 9)    # the local route is lo's
    a.set_link(1, True)
    assert _routes(a) == {(ip_aton("10.0.0.0"), 24, None)}      # fib_add_ifaddr only
    with pytest.raises(OSError) as exc:
        a.route_lookup(ip_aton("10.10.0.5"))
    assert exc.value.errno == errno.ENETUNREACH         # the static route is gone for good


def test_no_route_through_a_down_link_and_an_address_added_meanwhile_waits_for_up() -> None:
    net, a, b = pair()
    a.set_link(1, False)
    with pytest.raises(OSError) as exc:
        a.add_route(ip_aton("10.11.0.0"), 24, None, 1)
    assert exc.value.errno == errno.ENETDOWN            # "Device for nexthop is not up"
    with pytest.raises(OSError) as exc:
        a.add_route6(ip6_aton("fd11::"), 64, None, 1)
    assert exc.value.errno == errno.ENETDOWN
    a.add_address(1, ip_aton("10.5.0.1"), 24)
    assert _routes(a) == set()                          # its prefix route waits for NETDEV_UP
    a.set_link(1, True)
    assert _routes(a) == {(ip_aton("10.0.0.0"), 24, None), (ip_aton("10.5.0.0"), 24, None)}


def _v6_pair(**settings: int):
    net = VirtualNetwork(seed=8)
    a = net.host("a", settings=Settings(dad_transmits=0, **settings))
    b = net.host("b", settings=Settings(dad_transmits=0))
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    a.add_address6(1, ip6_aton("fd09::1"), 64, nodad=True)
    b.add_address6(1, ip6_aton("fd09::2"), 64, nodad=True)
    a.add_route6(ip6_aton("fd10::"), 64, ip6_aton("fd09::2"))
    return net, a, b


def test_down_flushes_ipv6_addresses_and_routes_and_up_makes_a_new_link_local() -> None:
    net, a, b = _v6_pair()
    ll = [x.ip for x in a.interfaces[1].ip6.addrs if x.ip >> 118 == 0xFE80 >> 6]
    assert ll and a.fib6.lookup(ip6_aton("fd10::5")) is not None
    sk = a.udp.socket(AF_INET6)
    a.set_link(1, False)
    assert a.interfaces[1].ip6.addrs == [] and not a.is_local_address6(ip6_aton("fd09::1"))
    assert len(a.fib6) == 0
    for dst, scope in (("fd09::2", 0), ("fd10::5", 0), ("fe80::2", 1)):
        with pytest.raises(OSError) as exc:
            sk.sendto(b"x", ip6_aton(dst), 9, scope)
        assert exc.value.errno == errno.ENETUNREACH, dst
    a.set_link(1, True)
    assert [x.ip for x in a.interfaces[1].ip6.addrs] == ll      # addrconf_dev_config again
    assert len(a.fib6) == 0                 # neither fd09::/64 (its address went) nor fd10::/64


def test_keep_addr_on_down_keeps_ipv6_addresses_and_their_prefix_route_returns() -> None:
    net, a, b = _v6_pair(keep_addr_on_down=1)
    a.set_link(1, False)
    assert a.is_local_address6(ip6_aton("fd09::1")) and len(a.fib6) == 0
    a.set_link(1, True)
    assert a.fib6.lookup(ip6_aton("fd09::2")) is not None
    assert a.fib6.lookup(ip6_aton("fd10::5")) is None           # static: deleted at down
