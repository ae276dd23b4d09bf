"""Routing: longest prefix match, source address selection, route errors."""

from __future__ import annotations

import errno
import random

import pytest

from tcpio.core.addr import ip_aton, prefix_mask
from tcpio.core.host import Host
from tcpio.core.route import Fib


def test_fib_longest_prefix_match_against_brute_force():
    rng = random.Random(1)
    fib = Fib()
    routes = {}
    for i in range(300):
        plen = rng.randint(0, 32)
        prefix = rng.getrandbits(32) & prefix_mask(plen)
        fib.add(prefix, plen, None, i)
        routes[(prefix, plen)] = i
    for _ in range(2000):
        dst = rng.getrandbits(32)
        matches = [(plen, idx) for (prefix, plen), idx in routes.items()
                   if dst & prefix_mask(plen) == prefix]
        expected = max(matches)[1] if matches else None
        got = fib.lookup(dst)
        assert (got.ifindex if got else None) == expected


def test_fib_remove_and_replace():
    fib = Fib()
    fib.add(ip_aton("10.0.0.0"), 8, None, 1)
    fib.add(ip_aton("10.1.0.0"), 16, None, 2)
    assert fib.lookup(ip_aton("10.1.2.3")).ifindex == 2
    assert fib.remove(ip_aton("10.1.0.0"), 16)
    assert fib.lookup(ip_aton("10.1.2.3")).ifindex == 1
    fib.add(ip_aton("10.9.9.9"), 8, None, 3)           # host bits are masked off
    assert fib.lookup(ip_aton("10.1.2.3")).ifindex == 3
    assert not fib.remove(ip_aton("11.0.0.0"), 8)
    assert len(fib) == 1


def two_nics() -> Host:
    h = Host("h", seed=1)
    h.add_interface("eth0", mtu=1500)
    h.add_interface("tun0", link="ip", mtu=1400)
    h.add_address(1, ip_aton("10.0.0.2"), 24)
    h.add_address(1, ip_aton("10.0.0.3"), 24)           # secondary
    h.add_address(2, ip_aton("172.16.0.2"), 16)
    return h


def test_route_lookup_interface_source_and_mtu():
    h = two_nics()
    rt = h.route_lookup(ip_aton("10.0.0.9"))
    assert (rt.ifindex, rt.gateway, rt.src, rt.mtu) == (1, None, ip_aton("10.0.0.2"), 1500)
    rt = h.route_lookup(ip_aton("172.16.5.5"))
    assert (rt.ifindex, rt.src, rt.mtu) == (2, ip_aton("172.16.0.2"), 1400)
    with pytest.raises(OSError) as exc:
        h.route_lookup(ip_aton("8.8.8.8"))
    assert exc.value.errno == errno.ENETUNREACH
    h.add_route(0, 0, ip_aton("172.16.0.1"))
    rt = h.route_lookup(ip_aton("8.8.8.8"))
    assert (rt.ifindex, rt.gateway, rt.src) == (2, ip_aton("172.16.0.1"), ip_aton("172.16.0.2"))
    # A more specific route wins over the default.
    h.add_route(ip_aton("8.8.0.0"), 16, ip_aton("10.0.0.1"))
    assert h.route_lookup(ip_aton("8.8.8.8")).ifindex == 1
    assert h.route_lookup(ip_aton("8.9.8.8")).ifindex == 2
    h.remove_route(ip_aton("8.8.0.0"), 16)
    assert h.route_lookup(ip_aton("8.8.8.8")).ifindex == 2


def test_secondary_address_promoted_when_primary_removed():
    h = two_nics()
    h.remove_address(1, ip_aton("10.0.0.2"))
    assert h.route_lookup(ip_aton("10.0.0.9")).src == ip_aton("10.0.0.3")
    h.remove_address(1, ip_aton("10.0.0.3"))
    with pytest.raises(OSError):
        h.route_lookup(ip_aton("10.0.0.9"))


def test_configuration_errors():
    h = two_nics()
    with pytest.raises(OSError) as exc:
        h.add_route(0, 0, ip_aton("192.168.1.1"))       # gateway not on a connected net
    assert exc.value.errno == errno.ENETUNREACH
    with pytest.raises(OSError) as exc:
        h.add_address(1, ip_aton("10.0.0.2"), 24)
    assert exc.value.errno == errno.EEXIST
    with pytest.raises(OSError) as exc:
        h.add_address(9, ip_aton("10.0.0.50"), 24)
    assert exc.value.errno == errno.ENODEV
    with pytest.raises(ValueError):
        h.add_interface("bad", mtu=60)
    with pytest.raises(OSError) as exc:
        h.remove_route(ip_aton("1.0.0.0"), 8)
    assert exc.value.errno == errno.ESRCH


def test_local_and_broadcast_addresses():
    h = two_nics()
    assert h.is_local_address(ip_aton("10.0.0.3")) and h.is_local_address(ip_aton("127.0.0.1"))
    assert not h.is_local_address(ip_aton("10.0.0.4"))
    assert sorted(h.local_addresses()) == sorted(
        ip_aton(a) for a in ("10.0.0.2", "10.0.0.3", "172.16.0.2"))
    assert h.is_broadcast(ip_aton("10.0.0.255")) and h.is_broadcast(ip_aton("172.16.255.255"))
    assert h.is_broadcast(0xFFFFFFFF) and not h.is_broadcast(ip_aton("10.0.1.255"))
