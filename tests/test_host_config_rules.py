"""Host configuration, one rule per test: interfaces, addresses, routes, path MTU.

The reference is Linux (``ip link``, ``ip addr``, ``ip route`` and what
``ip route get`` answers: net/ipv4/devinet.c, fib_frontend.c, route.c) and the
RFCs it follows (RFC 791 minimum MTU, RFC 1122 addressing, RFC 3021 /31
links, RFC 1191 path MTU).
"""

from __future__ import annotations

import errno

import pytest
from hostutil import MAC, MY, PEER, inject, make_host
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings


def ip(s: str) -> int:
    return ip_aton(s)


def errno_of(fn) -> int:
    with pytest.raises(OSError) as exc:
        fn()
    return exc.value.errno


def bare_host(**settings) -> Host:
    h = Host("c", seed=7, settings=Settings(**settings))
    h.debug = True
    return h


# ----- the host itself ---------------------------------------------------------------

def test_a_host_without_settings_gets_linux_defaults():
    assert Host("d").settings == Settings()
    s = Settings(ip_default_ttl=9)
    assert Host("d", settings=s).settings is s


def test_the_secret_is_128_bits_and_reproducible_from_the_seed():
    """RFC 6528 section 3: the ISN function's key is secret (Linux: a 128-bit
    siphash key).  A seeded host derives it from its seed, so a simulation is
    reproducible; hosts with other seeds, or none, get other keys."""
    a, b, c = Host("a", seed=3), Host("b", seed=3), Host("c", seed=4)
    assert len(a.secret) == 16 and len(Host("u").secret) == 16
    assert a.secret == b.secret != c.secret
    assert Host("u").secret != Host("v").secret
    for h in (a, b, c):
        h.add_interface("eth0")
        h.add_address(1, ip(MY), 24)
    isns = []
    for h in (a, b, c):
        sk = h.tcp.socket()
        with pytest.raises(BlockingIOError):
            sk.connect(ip(PEER), 80)
        isns.append(sk.iss)
    assert isns[0] == isns[1] != isns[2]


@pytest.mark.allow_core_exceptions("a Host is in production mode unless told otherwise")
def test_a_host_counts_internal_errors_unless_debug_is_set():
    """docs/internals.md: ``host.debug=True`` re-raises internal exceptions;
    by default (a program on tcpio) they are counted in CoreExceptions."""
    h = Host("p", seed=1)
    assert h.debug is False
    h.add_interface("e", mac=MAC)
    h.add_address(1, ip(MY), 24)

    class Broken:
        def rcv(self, iph, payload, now):
            raise RuntimeError("a bug")

    h.register_protocol(253, Broken())
    inject(h, IP(src=PEER, dst=MY, proto=253) / b"x")
    assert h.mib["CoreExceptions"] == 1


def test_a_new_host_starts_at_time_zero():
    """The host keeps the caller's latest ``now``; before any call it is 0, so a
    path MTU learned at once expires ip_rt_mtu_expires later."""
    h = make_host()
    assert h.now == 0.0
    h.update_pmtu(ip("10.0.0.9"), 1000)
    assert h.pmtu[ip("10.0.0.9")] == (1000, 600.0, False)


def test_a_path_mtu_without_a_route_is_not_learned():
    """__ip_rt_update_pmtu updates the route's exception; with no route there
    is nothing to update (nothing of ours can have gone that way)."""
    h = bare_host()
    h.update_pmtu(ip("10.1.1.1"), 1000)
    assert h.pmtu == {} and h.mib["PMTUUpdates"] == 0


# ----- interfaces ----------------------------------------------------------------------

def test_interfaces_are_numbered_from_one_in_order_of_creation():
    h = bare_host()
    assert [h.add_interface(n) for n in ("a", "b", "c")] == [1, 2, 3]
    assert sorted(h.interfaces) == [1, 2, 3]
    assert h.interfaces[2].name == "b" and h.interfaces[2].ifindex == 2


def test_an_interface_mtu_is_1500_by_default_and_at_least_68():
    """RFC 791: every module must forward a 68-octet datagram without further
    fragmentation, so an MTU below 68 is refused (Linux: ETH_MIN_MTU is 68)."""
    h = bare_host()
    assert h.interfaces[h.add_interface("e")].mtu == 1500
    assert h.interfaces[h.add_interface("f", mtu=68)].mtu == 68
    with pytest.raises(ValueError):
        h.add_interface("g", mtu=67)
    h.set_mtu(2, 68)
    with pytest.raises(ValueError):
        h.set_mtu(2, 67)
    assert h.interfaces[2].mtu == 68


def test_only_ethernet_and_ip_links_exist():
    h = bare_host()
    with pytest.raises(ValueError):
        h.add_interface("x", link="wifi")
    assert h.interfaces[h.add_interface("t", link="ip")].link == "ip"


def test_a_generated_mac_is_locally_administered_unicast_and_seeded():
    """IEEE 802: bit 0 of the first octet is group, bit 1 local; a generated
    address (like Linux's eth_random_addr) is local and unicast: 0x02."""
    macs = []
    for _ in range(2):
        h = Host("m", seed=11)
        macs.append(h.interfaces[h.add_interface("e")].mac)
    assert macs[0] == macs[1]
    assert len(macs[0]) == 6 and macs[0][0] == 0x02
    other = Host("m", seed=12)
    assert other.interfaces[other.add_interface("e")].mac != macs[0]


@pytest.mark.parametrize("mac", [b"\x02\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x01\x07",
                                 b"\x01\x00\x5e\x00\x00\x01", b"\x03\x00\x00\x00\x00\x01"])
def test_a_mac_that_is_not_six_bytes_of_unicast_is_refused(mac):
    h = bare_host()
    with pytest.raises(ValueError):
        h.add_interface("e", mac=mac)
    assert h.interfaces == {}


def test_a_universal_unicast_mac_is_kept_as_given():
    h = bare_host()
    mac = bytearray(b"\x00\x1b\x21\x00\x00\x01")
    i = h.add_interface("e", mac=mac)
    assert h.interfaces[i].mac == b"\x00\x1b\x21\x00\x00\x01"
    assert type(h.interfaces[i].mac) is bytes


def test_an_ip_link_has_no_mac_even_if_given_one():
    h = bare_host()
    assert h.interfaces[h.add_interface("tun", link="ip", mac=MAC)].mac is None


def test_the_loopback_device_has_linux_mtu_65536_and_127_0_0_1():
    """Linux's lo: mtu 65536, 127.0.0.1/8; every 127/8 address is local and
    routed through it with source 127.0.0.1 (``ip route get 127.0.0.5`` ->
    ``local 127.0.0.5 dev lo src 127.0.0.1``).  The route's MTU is the
    device's capped at IP_MAX_MTU (ipv4_mtu): ``ss -ti`` on a Linux 6.18 lo
    connection shows ``pmtu:65535 advmss:65483``."""
    h = make_host()
    assert h.lo.mtu == 65536 and h.lo.addrs == [(ip("127.0.0.1"), 8)]
    rt = h.route_lookup(ip("127.0.0.5"))
    assert (rt.ifindex, rt.gateway, rt.src, rt.mtu) == (0, None, ip("127.0.0.1"), 65535)


# ----- addresses -------------------------------------------------------------------------

def test_an_address_can_be_assigned_only_once():
    h = make_host()
    assert errno_of(lambda: h.add_address(1, ip(MY), 24)) == errno.EEXIST
    assert errno_of(lambda: h.add_address(1, ip(MY), 16)) == errno.EEXIST


@pytest.mark.parametrize("plen, ok", [(-1, False), (0, True), (32, True), (33, False)])
def test_prefix_lengths_run_from_0_to_32(plen, ok):
    h = bare_host()
    h.add_interface("e")
    if ok:
        h.add_address(1, ip("10.4.0.2"), plen)
        assert h.is_local_address(ip("10.4.0.2"))
    else:
        with pytest.raises(ValueError):
            h.add_address(1, ip("10.4.0.2"), plen)
        assert not h.is_local_address(ip("10.4.0.2")) and h.interfaces[1].addrs == []


def test_an_address_on_a_missing_interface_is_enodev():
    h = bare_host()
    assert errno_of(lambda: h.add_address(3, ip("10.4.0.2"), 24)) == errno.ENODEV
    assert errno_of(lambda: h.set_mtu(3, 1500)) == errno.ENODEV
    assert errno_of(lambda: h.remove_address(3, ip("10.4.0.2"))) == errno.ENODEV


def test_an_address_brings_its_connected_route_and_source():
    """inet_insert_ifa -> fib_add_ifaddr: the subnet is on-link through that
    interface, with the address as preferred source."""
    h = bare_host()
    h.add_interface("e")
    h.add_interface("f", mtu=1400)
    h.add_address(2, ip("192.168.7.9"), 24)
    rt = h.route_lookup(ip("192.168.7.200"))
    assert (rt.ifindex, rt.gateway, rt.src, rt.mtu) == (2, None, ip("192.168.7.9"), 1400)


def test_a_host_address_adds_no_subnet_route():
    """A /32 has no subnet: only the address itself (Linux adds no prefix route
    for it), so other destinations stay unreachable."""
    h = bare_host()
    h.add_interface("e")
    h.add_address(1, ip("10.4.0.2"), 32)
    assert len(h.fib) == 0
    assert errno_of(lambda: h.route_lookup(ip("10.4.0.3"))) == errno.ENETUNREACH


def test_a_point_to_point_31_has_a_route_and_no_broadcast():
    """RFC 3021: both addresses of a /31 are hosts; there is no broadcast address."""
    h = bare_host()
    h.add_interface("e")
    h.add_address(1, ip("10.4.0.0"), 31)
    assert h.route_lookup(ip("10.4.0.1")).ifindex == 1
    assert not h.is_broadcast(ip("10.4.0.1"))
    h.add_address(1, ip("10.5.0.1"), 30)
    assert h.is_broadcast(ip("10.5.0.3")) and not h.is_broadcast(ip("10.5.0.2"))
    h.add_address(1, ip("10.6.0.1"), 32)
    assert h.is_broadcast(0xFFFFFFFF) and not h.is_broadcast(ip("10.6.0.1"))


def test_the_directed_broadcast_is_every_host_bit_set():
    h = bare_host()
    h.add_interface("e")
    h.add_address(1, ip("172.16.1.2"), 12)
    assert h.is_broadcast(ip("172.31.255.255"))
    assert not h.is_broadcast(ip("172.31.255.254"))
    assert not h.is_broadcast(ip("172.16.255.255"))


def test_a_second_address_in_the_subnet_is_secondary():
    """The first address of a subnet is primary and keeps the connected route's
    source; later ones (``ip addr add`` of a secondary) do not replace it."""
    h = make_host("10.0.0.3")
    assert h.route_lookup(ip("10.0.0.50")).src == ip(MY)
    assert h.is_local_address(ip("10.0.0.3"))


def test_each_address_announces_itself_with_a_gratuitous_arp():
    """arp_ifup / inet_insert_ifa: a gratuitous ARP request (spa == tpa) on Ethernet."""
    h = bare_host()
    h.add_interface("e", mac=MAC)
    h.add_interface("t", link="ip")
    h.add_address(1, ip(MY), 24)
    h.add_address(2, ip("10.9.0.2"), 24)
    (frame,) = [Ether(f) for _, f in h.take_output()]
    assert frame.dst == "ff:ff:ff:ff:ff:ff" and frame[ARP].op == 1
    assert frame[ARP].psrc == frame[ARP].pdst == MY


def test_removing_an_address_forgets_it_and_its_broadcast():
    h = bare_host()
    h.add_interface("e")
    h.add_address(1, ip("10.4.0.2"), 24)
    h.add_address(1, ip("10.5.0.2"), 24)
    h.remove_address(1, ip("10.4.0.2"))
    assert not h.is_local_address(ip("10.4.0.2"))
    assert not h.is_broadcast(ip("10.4.0.255")) and h.is_broadcast(ip("10.5.0.255"))
    assert h.local_addresses() == [ip("10.5.0.2")]
    assert h.interfaces[1].addrs == [(ip("10.5.0.2"), 24)]
    assert errno_of(lambda: h.route_lookup(ip("10.4.0.9"))) == errno.ENETUNREACH
    assert h.route_lookup(ip("10.5.0.9")).src == ip("10.5.0.2")
    assert errno_of(lambda: h.remove_address(1, ip("10.4.0.2"))) == errno.EADDRNOTAVAIL


def test_removing_a_secondary_keeps_the_primary_route():
    h = make_host("10.0.0.3")
    h.remove_address(1, ip("10.0.0.3"))
    rt = h.route_lookup(ip("10.0.0.50"))
    assert (rt.ifindex, rt.src) == (1, ip(MY))


def test_removing_the_primary_promotes_the_first_secondary_of_that_subnet_only():
    """promote_secondaries: the next address of the same prefix (in order of
    assignment) takes over the connected route; an address of another prefix
    length or subnet does not."""
    h = bare_host()
    h.add_interface("e")
    for a, plen in (("10.0.0.2", 24), ("10.1.0.2", 16), ("10.0.0.130", 25),
                    ("10.0.0.3", 24), ("10.0.0.4", 24)):
        h.add_address(1, ip(a), plen)
    h.remove_address(1, ip("10.0.0.2"))
    assert h.route_lookup(ip("10.0.0.50")).src == ip("10.0.0.3")
    assert h.fib.get(ip("10.0.0.0"), 24).prefsrc == ip("10.0.0.3")
    assert h.route_lookup(ip("10.0.0.200")).src == ip("10.0.0.130")   # its own /25


def test_removing_an_address_leaves_a_route_it_did_not_create():
    """Only the connected route an address brought (its prefsrc) goes with it:
    a route configured for the same prefix beforehand stays."""
    h = bare_host()
    h.add_interface("e")
    h.add_interface("t", link="ip")
    h.add_route(ip("10.4.0.0"), 24, None, 2)
    h.add_address(1, ip("10.4.0.2"), 24)
    h.remove_address(1, ip("10.4.0.2"))
    rt = h.route_lookup(ip("10.4.0.9"))
    assert (rt.ifindex, rt.gateway) == (2, None)


def test_removing_a_host_address_leaves_the_other_routes():
    h = make_host()
    h.add_address(1, ip("10.0.0.77"), 32)
    h.remove_address(1, ip("10.0.0.77"))
    assert not h.is_local_address(ip("10.0.0.77"))
    rt = h.route_lookup(ip("10.0.0.77"))
    assert (rt.ifindex, rt.src, rt.mtu) == (1, ip(MY), 1500)


# ----- routes ------------------------------------------------------------------------------

def test_a_route_needs_a_gateway_or_an_interface():
    h = make_host()
    with pytest.raises(ValueError):
        h.add_route(ip("10.8.0.0"), 16, None)


def test_a_gateway_must_be_on_a_connected_network():
    """fib_check_nh: the gateway must be reachable on-link, not through another
    gateway (ENETUNREACH)."""
    h = make_host()
    assert errno_of(lambda: h.add_route(0, 0, ip("192.168.1.1"))) == errno.ENETUNREACH
    h.add_route(ip("10.8.0.0"), 16, ip(PEER))
    assert errno_of(lambda: h.add_route(0, 0, ip("10.8.0.1"))) == errno.ENETUNREACH
    assert errno_of(lambda: h.add_route(0, 0, None, 5)) == errno.ENODEV


def test_a_route_via_a_gateway_uses_the_gateway_interface_and_its_subnet_source():
    """inet_select_addr: the source is the interface address on the next hop's
    subnet, not the primary."""
    h = make_host()
    h.add_address(1, ip("10.1.0.2"), 24)
    h.add_route(ip("192.168.0.0"), 16, ip("10.1.0.1"))
    rt = h.route_lookup(ip("192.168.3.3"))
    assert (rt.ifindex, rt.gateway, rt.src) == (1, ip("10.1.0.1"), ip("10.1.0.2"))


def test_a_route_through_an_interface_without_addresses_takes_any_host_address():
    h = bare_host()
    h.add_interface("e")
    h.add_interface("t", link="ip")
    h.add_route(ip("10.20.0.0"), 16, None, 2)
    assert h.route_lookup(ip("10.20.1.1")).src == 0        # no address anywhere
    h.add_address(1, ip("10.4.0.2"), 24)
    rt = h.route_lookup(ip("10.20.1.1"))
    assert (rt.ifindex, rt.src) == (2, ip("10.4.0.2"))


def test_route_changes_apply_to_destinations_already_looked_up():
    h = make_host()
    h.add_interface("t", link="ip", mtu=1280)
    dst = ip("8.8.8.8")
    assert errno_of(lambda: h.route_lookup(dst)) == errno.ENETUNREACH
    h.add_route(0, 0, ip(PEER))
    assert h.route_lookup(dst).ifindex == 1
    h.add_route(ip("8.8.0.0"), 16, None, 2)
    assert h.route_lookup(dst).ifindex == 2
    h.set_mtu(2, 1000)
    assert h.route_lookup(dst).mtu == 1000
    h.remove_route(ip("8.8.0.0"), 16)
    assert h.route_lookup(dst).ifindex == 1
    h.add_address(1, ip("10.0.0.77"), 32)
    assert h.route_lookup(ip("10.0.0.77")).mtu == 65535        # now local
    h.remove_route(0, 0)
    assert errno_of(lambda: h.route_lookup(dst)) == errno.ENETUNREACH
    assert errno_of(lambda: h.remove_route(0, 0)) == errno.ESRCH


def test_address_changes_apply_to_destinations_already_looked_up():
    h = bare_host()
    h.add_interface("e")
    h.add_address(1, ip("10.4.0.2"), 24)
    assert h.route_lookup(ip("10.4.0.9")).src == ip("10.4.0.2")
    h.remove_address(1, ip("10.4.0.2"))
    assert errno_of(lambda: h.route_lookup(ip("10.4.0.9"))) == errno.ENETUNREACH
    h.add_address(1, ip("10.4.0.3"), 24)
    assert h.route_lookup(ip("10.4.0.9")).src == ip("10.4.0.3")


def test_the_route_cache_is_bounded_at_4096_destinations():
    h = make_host()
    h.add_route(0, 0, ip(PEER))
    for n in range(4096):
        h.route_lookup(0x0B000000 + n)
    assert len(h._rt_cache) == 4096
    h.route_lookup(0x0C000000)
    assert len(h._rt_cache) == 1
    assert h.route_lookup(0x0B000001).gateway == ip(PEER)


def test_our_own_address_is_routed_locally_with_the_largest_datagram_as_mtu():
    """Local delivery never fragments: the route's MTU is 65535, so TCP to our
    own address advertises Linux's loopback MSS, 65495 (65535 - 40).  The
    route goes through lo, whichever interface holds the address (Linux 6.18:
    ``ip route get 10.0.0.2`` -> ``local 10.0.0.2 dev lo src 10.0.0.2``)."""
    h = make_host()
    rt = h.route_lookup(ip(MY))
    assert (rt.ifindex, rt.gateway, rt.src, rt.mtu) == (0, None, ip(MY), 65535)
    seen: list[bytes] = []
    real = h.loopback
    h.loopback = lambda packet: (seen.append(bytes(packet)), real(packet))[1]
    srv = h.tcp.socket()
    srv.bind(ip(MY), 80)
    srv.listen(1)
    cli = h.tcp.socket()
    with pytest.raises(BlockingIOError):
        cli.connect(ip(MY), 80)
    syn = IP(seen[0])
    assert dict(syn["TCP"].options)["MSS"] == 65495


def test_a_static_arp_entry_needs_a_route_to_its_address():
    h = make_host()
    assert errno_of(lambda: h.add_static_arp(ip("192.168.9.9"), MAC)) == errno.ENETUNREACH
    h.add_static_arp(ip("10.0.0.9"), bytes.fromhex("020000000009"))
    sk = h.udp.socket()
    sk.sendto(b"x", ip("10.0.0.9"), 9)
    ((_, f),) = h.take_output()
    assert Ether(f).dst == "02:00:00:00:00:09"


# ----- the limited broadcast ---------------------------------------------------------------

def test_the_limited_broadcast_without_a_route_leaves_by_the_first_interface_with_an_address():
    """tcpio's fallback for 255.255.255.255 with no route covering it (Linux
    answers ENETUNREACH unless the socket is bound to a device): the first
    interface with an address, from that address, so a host with only
    connected routes can still broadcast; with no interface it is unreachable."""
    h = bare_host()
    assert errno_of(lambda: h.route_lookup(0xFFFFFFFF)) == errno.ENETUNREACH
    h.add_interface("bare")
    h.add_interface("e2", mtu=1400)
    h.add_address(2, ip("10.4.0.2"), 24)
    rt = h.route_lookup(0xFFFFFFFF)
    assert (rt.ifindex, rt.gateway, rt.src, rt.mtu) == (2, None, ip("10.4.0.2"), 1400)
    h2 = bare_host()
    h2.add_interface("only")
    assert h2.route_lookup(0xFFFFFFFF).ifindex == 1
    assert errno_of(lambda: h.route_lookup(ip("10.9.9.9"))) == errno.ENETUNREACH


# ----- path MTU (RFC 1191, Linux __ip_rt_update_pmtu) ------------------------------------

def test_a_learned_path_mtu_lowers_the_route_until_it_expires():
    """ip_rt_mtu_expires after the update the learned MTU is gone (Linux's
    fnhe_expires: expired when ``jiffies >= expires``) and forgotten."""
    h = make_host(ip_rt_mtu_expires=100.0)
    h.add_route(0, 0, ip(PEER))
    dst = ip("8.8.8.8")
    h.poll(5.0)
    h.update_pmtu(dst, 1200)
    assert h.mib["PMTUUpdates"] == 1
    assert h.route_lookup(dst).mtu == 1200
    assert h.route_lookup(ip("8.8.4.4")).mtu == 1500
    h.poll(104.999)
    assert h.route_lookup(dst).mtu == 1200
    h.poll(105.0)
    assert h.route_lookup(dst).mtu == 1500
    assert dst not in h.pmtu


def test_a_learned_path_mtu_never_raises_the_route_mtu():
    h = make_host()
    h.add_route(0, 0, ip(PEER))
    h.set_mtu(1, 1000)
    h.update_pmtu(ip("8.8.8.8"), 1400)
    assert h.route_lookup(ip("8.8.8.8")).mtu == 1000


def test_each_update_counts_and_restarts_the_lifetime():
    h = make_host(ip_rt_mtu_expires=100.0)
    h.add_route(0, 0, ip(PEER))
    dst = ip("8.8.8.8")
    h.update_pmtu(dst, 1200)
    h.poll(60.0)
    h.update_pmtu(dst, 1100)
    h.poll(150.0)
    assert h.route_lookup(dst).mtu == 1100
    assert h.mib["PMTUUpdates"] == 2


def test_the_path_mtu_table_is_bounded_at_4096_destinations():
    h = make_host()
    h.add_route(0, 0, ip(PEER))
    for n in range(4096):
        h.update_pmtu(0x0B000000 + n, 1000)
    assert len(h.pmtu) == 4096
    h.update_pmtu(0x0C000000, 1000)
    assert list(h.pmtu) == [0x0C000000]
    assert h.mib["PMTUUpdates"] == 4097


def test_frag_needed_from_the_path_lowers_what_we_send():
    """RFC 1191: after "fragmentation needed" with next-hop MTU 1000, a datagram
    to that destination leaves in fragments of at most 1000 bytes."""
    h = make_host()
    h.add_route(0, 0, ip(PEER))
    sk = h.udp.socket()
    sk.bind(ip(MY), 5000)
    quote = bytes(IP(src=MY, dst="8.8.8.8") / UDP(sport=5000, dport=53))
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=1000) / quote)
    sk.sendto(b"a" * 1400, ip("8.8.8.8"), 53)
    sizes = [len(Ether(f)[IP]) for _, f in h.take_output()]
    assert len(sizes) == 2 and max(sizes) <= 1000
