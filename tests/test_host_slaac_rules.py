"""Router discovery and stateless address autoconfiguration (RFC 4861 6.3,
RFC 4862 5.5; Linux's ndisc_router_discovery, addrconf_prefix_rcv,
addrconf_rs_timer), with ``Settings.accept_ra`` (off by default: static
addresses).

The router is played with scapy: its advertisements are scapy packets, and
what the host sends is read back with scapy (which also recomputes every
ICMPv6 checksum we send).  A virtual clock drives solicitations and lifetimes.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    IPv6,
)
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip6_aton
from tcpio.core.host import Host
from tcpio.core.ipv6 import eui64_linklocal
from tcpio.core.settings import Settings

from test_host_ipv6_rules import out as sent  # what the host sent, checksums checked

MAC = bytes.fromhex("020000000002")
ROUTER_MAC = "02:00:00:00:00:01"
ROUTER = "fe80::1"
LINKLOCAL = eui64_linklocal(MAC)
IID = LINKLOCAL & ((1 << 64) - 1)
PREFIX = "2001:db8:1::"
SLAAC = ip6_aton(PREFIX) | IID                  # 2001:db8:1::ff:fe00:2


def make_host(**settings) -> Host:
    """An Ethernet host; its link-local address passes DAD by t = 2."""
    settings.setdefault("accept_ra", 1)
    h = Host("h6", seed=1, settings=Settings(**settings))
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    return h


def run_to(h: Host, t: float) -> list[Ether]:
    """Run the clock to ``t`` in small steps; everything sent meanwhile."""
    frames = []
    now = h.now
    while now < t:
        now = min(t, now + 0.25)
        h.poll(now)
        frames += sent(h)
    return frames


def ra(*opts, lifetime: int = 1800, src: str = ROUTER, hlim: int = 255, code: int = 0):
    """A router advertisement to all-nodes with the router's link-layer
    address and ``opts`` (prefix and MTU options)."""
    pkt = (Ether(dst="33:33:00:00:00:01", src=ROUTER_MAC)
           / IPv6(src=src, dst="ff02::1", hlim=hlim)
           / ICMPv6ND_RA(routerlifetime=lifetime, code=code)
           / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC))
    for o in opts:
        pkt = pkt / o
    return pkt


def pio(prefix: str = PREFIX, plen: int = 64, L: int = 1, A: int = 1,
        valid: int = 86400, preferred: int = 14400) -> ICMPv6NDOptPrefixInfo:
    return ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=plen, L=L, A=A,
                                 validlifetime=valid, preferredlifetime=preferred)


def give(h: Host, frame) -> list[Ether]:
    h.receive(1, bytes(frame), h.now)
    return sent(h)


def addrs(h: Host) -> dict[int, str]:
    return {ip: state for ip, _, state in h.addresses6(1)}


# ----- router solicitations --------------------------------------------------------------

def test_without_accept_ra_no_solicitation_and_advertisements_change_nothing():
    h = make_host(accept_ra=0)
    assert not [f for f in run_to(h, 30.0) if f.haslayer(ICMPv6ND_RS)]
    give(h, ra(pio()))
    assert SLAAC not in addrs(h)
    assert h.fib6.get(0, 0) is None and h.fib6.get(ip6_aton(PREFIX), 64) is None
    assert h.mib["NdiscInIgnored"] == 1


def test_solicitations_start_when_the_link_local_address_is_ours_and_back_off():
    """addrconf_dad_completed sends the first RS (to ff02::2, from the
    link-local address, with our link-layer address); addrconf_rs_timer
    repeats it, each interval 1.9-2.1 times the last from 4 s (0.9-1.1)."""
    h = make_host()
    frames = run_to(h, 40.0)
    rs = [f for f in frames if f.haslayer(ICMPv6ND_RS)]
    assert len(rs) >= 3
    for f in rs:
        assert f[IPv6].dst == "ff02::2" and f[IPv6].hlim == 255
        assert ip6_aton(f[IPv6].src) == LINKLOCAL
        assert f[Ether].dst == "33:33:00:00:00:02"
        assert f[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:02"
    assert h.mib["Icmp6OutRouterSolicits"] == len(rs)


def test_solicitation_intervals_double_from_about_four_seconds():
    h = make_host()
    times = []
    now = 0.0
    while now < 70.0:
        now += 0.05
        h.poll(now)
        if any(f.haslayer(ICMPv6ND_RS) for f in sent(h)):
            times.append(now)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert 3.6 - 0.05 <= gaps[0] <= 4.4 + 0.05
    for a, b in zip(gaps, gaps[1:]):
        assert 1.9 * a - 0.1 <= b <= 2.1 * a + 0.1


def test_an_advertisement_stops_the_solicitations():
    h = make_host()
    run_to(h, 3.0)
    assert h.mib["Icmp6OutRouterSolicits"] == 1
    give(h, ra(pio()))
    later = run_to(h, 60.0)
    assert not [f for f in later if f.haslayer(ICMPv6ND_RS)]


def test_rtr_solicits_bounds_the_number():
    h = make_host(rtr_solicits=2)
    run_to(h, 200.0)
    assert h.mib["Icmp6OutRouterSolicits"] == 2


# ----- advertisements ---------------------------------------------------------------------

def test_a_prefix_with_a_and_l_gives_an_eui64_address_after_dad_a_route_and_a_router():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio()))
    assert addrs(h)[SLAAC] == "tentative"
    frames = run_to(h, 6.0)
    # DAD for the new address: an NS from :: for it
    assert any(f.haslayer(ICMPv6ND_NS) and ip6_aton(f[ICMPv6ND_NS].tgt) == SLAAC
               and f[IPv6].src == "::" for f in frames)
    assert addrs(h)[SLAAC] == "preferred"
    assert h.fib6.get(ip6_aton(PREFIX), 64) is not None            # on-link (L)
    default = h.fib6.get(0, 0)
    assert default is not None and default.gateway == ip6_aton(ROUTER)
    # a far destination goes through the router, from the SLAAC address
    route = h.route6_lookup(ip6_aton("2001:db8:99::1"))
    assert route.gateway == ip6_aton(ROUTER) and route.src == SLAAC


def test_the_address_is_not_made_for_a_prefix_of_another_length_or_without_a():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio(prefix="2001:db8:2::", plen=48), pio(prefix="2001:db8:3::", A=0)))
    run_to(h, 6.0)
    assert set(addrs(h)) == {LINKLOCAL}
    # the on-link routes still come (L)
    assert h.fib6.get(ip6_aton("2001:db8:2::"), 48) is not None
    assert h.fib6.get(ip6_aton("2001:db8:3::"), 64) is not None


def test_autoconf_off_takes_routes_but_makes_no_address():
    h = make_host(autoconf=0)
    run_to(h, 3.0)
    give(h, ra(pio()))
    assert set(addrs(h)) == {LINKLOCAL}
    assert h.fib6.get(0, 0) is not None


@pytest.mark.parametrize("bad", [
    dict(src="2001:db8::1"),            # 6.1.2: the source must be link-local
    dict(hlim=64),                      # forwarded: not from this link
    dict(code=1),
], ids=["global-source", "hop-limit", "code"])
def test_invalid_advertisements_are_dropped_and_counted(bad):
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio(), **bad))
    assert set(addrs(h)) == {LINKLOCAL} and h.fib6.get(0, 0) is None
    assert h.mib["NdiscInErrors"] == 1


def test_a_link_local_prefix_or_preferred_above_valid_is_ignored():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio(prefix="fe80::"), pio(valid=100, preferred=200)))
    run_to(h, 6.0)
    assert set(addrs(h)) == {LINKLOCAL}
    assert h.fib6.get(ip6_aton(PREFIX), 64) is None


def test_router_lifetime_zero_removes_the_default_route():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio()))
    assert h.fib6.get(0, 0) is not None
    give(h, ra(lifetime=0))
    assert h.fib6.get(0, 0) is None


def test_the_default_route_expires_with_the_router_lifetime():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(lifetime=30))
    run_to(h, 32.0)
    assert h.fib6.get(0, 0) is not None
    run_to(h, 34.0)
    assert h.fib6.get(0, 0) is None


def test_a_hand_made_default_route_is_left_alone():
    h = make_host()
    h.add_route6(0, 0, ip6_aton("fe80::99"))
    run_to(h, 3.0)
    give(h, ra(lifetime=30))
    give(h, ra(lifetime=0))
    assert h.fib6.get(0, 0).gateway == ip6_aton("fe80::99")


def test_preferred_lifetime_deprecates_and_valid_lifetime_removes():
    """RFC 4862 5.5.4: past the preferred lifetime the address is deprecated
    (still ours, a source only when nothing better is left, RFC 6724 rule
    3); past the valid lifetime it is gone, with its on-link route."""
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio(valid=100, preferred=40), lifetime=0))
    run_to(h, 6.0)
    assert addrs(h)[SLAAC] == "preferred"
    h.add_address6(1, ip6_aton("2001:db8:1::77"), 64, nodad=True)
    far = ip6_aton("2001:db8:1::5")
    assert h.route6_lookup(far).src in (SLAAC, ip6_aton("2001:db8:1::77"))
    run_to(h, 44.0)
    assert addrs(h)[SLAAC] == "deprecated"
    assert h.route6_lookup(far).src == ip6_aton("2001:db8:1::77")
    assert h.is_local_address6(SLAAC)
    run_to(h, 104.0)
    assert SLAAC not in addrs(h) and not h.is_local_address6(SLAAC)


def test_the_two_hour_rule_keeps_a_long_lived_address():
    """5.5.3 e: a valid lifetime of 60 s for an address with a day left
    becomes two hours, not 60 s; a longer one is taken as it is."""
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio(valid=86400, preferred=86400), lifetime=0))
    run_to(h, 6.0)
    give(h, ra(pio(valid=60, preferred=60), lifetime=0))
    run_to(h, 600.0)
    assert addrs(h)[SLAAC] == "deprecated"          # preferred: 60 s
    run_to(h, 7000.0)
    assert SLAAC in addrs(h)                         # valid: two hours from t = 6
    run_to(h, 7220.0)
    assert SLAAC not in addrs(h)


def test_a_renewed_preferred_lifetime_undeprecates():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio(valid=86400, preferred=10), lifetime=0))
    run_to(h, 20.0)
    assert addrs(h)[SLAAC] == "deprecated"
    give(h, ra(pio(valid=86400, preferred=3600), lifetime=0))
    assert addrs(h)[SLAAC] == "preferred"


def test_the_mtu_option_lowers_the_ipv6_path_mtu_within_bounds():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio(), ICMPv6NDOptMTU(mtu=1400)))
    assert h.route6_lookup(ip6_aton("2001:db8:99::1")).mtu == 1400
    give(h, ra(pio(), ICMPv6NDOptMTU(mtu=1000)))     # below 1280: ignored
    assert h.route6_lookup(ip6_aton("2001:db8:99::1")).mtu == 1400


def test_a_ping_to_the_slaac_address_is_answered():
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio()))
    run_to(h, 6.0)
    [reply] = give(h, Ether(dst="02:00:00:00:00:02", src=ROUTER_MAC)
                   / IPv6(src="2001:db8:99::1", dst=_ntoa(SLAAC))
                   / ICMPv6EchoRequest(id=1, seq=1, data=b"hi"))
    assert reply[IPv6].src == _ntoa(SLAAC) and reply[Ether].dst == ROUTER_MAC


def _ntoa(ip: int) -> str:
    from tcpio.core.addr import ip6_ntoa
    return ip6_ntoa(ip)


def test_down_and_up_forgets_the_advertisements_and_solicits_again():
    """addrconf_ifdown: the SLAAC address goes with the link's IPv6
    addresses, the default and on-link routes with its routes; at up the
    new link-local address passes DAD and router solicitations start again
    (IF_RA_RCVD cleared), and the next advertisement configures it all anew."""
    h = make_host()
    run_to(h, 3.0)
    give(h, ra(pio()))
    run_to(h, 6.0)
    assert addrs(h)[SLAAC] == "preferred" and h.fib6.get(0, 0) is not None
    h.set_link(1, False)
    assert SLAAC not in addrs(h) and h.fib6.get(0, 0) is None
    assert h.fib6.get(ip6_aton(PREFIX), 64) is None
    h.set_link(1, True)
    before = h.mib["Icmp6OutRouterSolicits"]
    run_to(h, 12.0)
    assert h.mib["Icmp6OutRouterSolicits"] > before
    give(h, ra(pio()))
    run_to(h, 16.0)
    assert addrs(h)[SLAAC] == "preferred"
    assert h.fib6.get(0, 0).gateway == ip6_aton(ROUTER)
    assert h.fib6.get(ip6_aton(PREFIX), 64) is not None
