"""IPv6 addresses of an interface (net/ipv6/addrconf.c): DAD, link-local, source selection.

Each interface has an ``Inet6Dev`` (Linux's ``struct inet6_dev``) holding
its addresses (``Inet6Ifaddr``) and the multicast groups it listens to.  An
address starts TENTATIVE: duplicate address detection (RFC 4862 5.4) sends
``dad_transmits`` neighbour solicitations from ``::`` to its solicited-node
group, the first after a random delay below ``rtr_solicit_delay``
(addrconf_dad_kick), then one every ``arp_retrans_time``; if nobody claims the
address in that time it becomes PREFERRED (usable as a source and as a
destination).  An NA for it, or an NS for it from ``::`` (another node's
DAD), makes it DADFAILED: it stays listed, never used (Ip6DadFailures).

Every Ethernet interface gets fe80::/64 with the modified EUI-64 of its MAC
when it is added (addrconf_dev_config; ``Settings.disable_ipv6`` turns it off).
The solicited-node group of every address (tentative ones too: DAD needs it)
and all-nodes (ff02::1) are joined; MLD reports are not sent.

Router discovery and SLAAC (RFC 4861 6.3, RFC 4862 5.5), off unless
``Settings.accept_ra`` (static addresses by default; Linux's default is on):
when an interface's link-local address is ours, router solicitations go to
all-routers (addrconf_rs_timer: every ``rtr_solicit_interval``, doubling up
to ``rtr_solicit_max_interval``, ``rtr_solicits`` of them, -1 without end)
until an advertisement comes.  ndisc_router_discovery hands each
advertisement's parts here: the router lifetime makes, refreshes or removes
the default route through it (rt6_add_dflt_router), a prefix option with L
an on-link route, one with A (and ``autoconf``) an address of the /64 prefix
and the interface's modified EUI-64 identifier, with DAD, valid and
preferred lifetimes and RFC 4862 5.5.3 e's two-hour rule
(addrconf_prefix_rcv).  A deprecated address (preferred lifetime over) still
receives and is a source only when nothing better is left (RFC 6724 rule 3);
an expired one is removed.

Source selection (ipv6_dev_get_saddr, RFC 6724 section 5, the rules a host
with static addresses needs): the destination itself if it is ours (rule 1),
then the appropriate scope (rule 2: the smallest scope at least the
destination's, else the largest), then the longest matching prefix (rule 8).
Only PREFERRED and DEPRECATED addresses of the outgoing interface are
candidates (rule 3: a deprecated one last).
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING

from tcpio.core.addr import ip6_ntoa, prefix_mask6
from tcpio.core.errors import sock_error
from tcpio.core.ipv6 import (
    ALL_NODES,
    IN6ADDR_ANY,
    SCOPE_LINKLOCAL,
    addr_scope,
    eui64_iid,
    eui64_linklocal,
    is_linklocal6,
    is_multicast6,
    solicited_node,
)
from tcpio.core.timer import Timer

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface

log = logging.getLogger("tcpio.host")

TENTATIVE = "tentative"
PREFERRED = "preferred"
DEPRECATED = "deprecated"
DADFAILED = "dadfailed"

INFINITY_LIFE_TIME = 0xFFFFFFFF        # a lifetime that never ends (RFC 4861 4.6.2)
MIN_VALID_LIFETIME = 2 * 3600.0        # RFC 4862 5.5.3 e: the two-hour rule


class Inet6Ifaddr:
    __slots__ = ("autoconf", "dad_probes", "ifindex", "ip", "lft_timer", "prefered_until",
                 "prefixlen", "scope", "state", "timer", "valid_until")

    def __init__(self, ip: int, prefixlen: int, ifindex: int, timer: Timer) -> None:
        self.ip = ip
        self.prefixlen = prefixlen
        self.ifindex = ifindex
        self.scope = addr_scope(ip)
        self.state = TENTATIVE
        self.dad_probes = 0
        self.timer = timer
        # SLAAC (addrconf_prefix_rcv): made from a prefix option, with
        # lifetimes (absolute times; inf for a static address)
        self.autoconf = False
        self.valid_until = float("inf")
        self.prefered_until = float("inf")
        self.lft_timer: Timer | None = None

    def __repr__(self) -> str:
        return f"<Inet6Ifaddr {ip6_ntoa(self.ip)}/{self.prefixlen} {self.state}>"


class Inet6Dev:
    """An interface's IPv6 state."""

    __slots__ = ("addrs", "groups", "mtu6", "ra_rcvd", "routers", "prefixes", "rs_interval",
                 "rs_probes", "rs_timer")

    def __init__(self) -> None:
        self.addrs: list[Inet6Ifaddr] = []
        # Joined groups with their users (ipv6_dev_mc_inc/dec): all-nodes always.
        self.groups: dict[int, int] = {ALL_NODES: 1}
        # router discovery (accept_ra): RS state, and what advertisements
        # taught, each with the timer that ends it
        self.ra_rcvd = False            # IF_RA_RCVD: solicitations stop
        self.rs_probes = 0
        self.rs_interval = 0.0
        self.rs_timer: Timer | None = None
        self.routers: dict[int, Timer] = {}                 # default routers
        self.prefixes: dict[tuple[int, int], Timer] = {}    # on-link prefixes
        self.mtu6 = 0                   # an advertised MTU (0: the link's)

    def get(self, ip: int) -> Inet6Ifaddr | None:
        for ifa in self.addrs:
            if ifa.ip == ip:
                return ifa
        return None

    def join(self, group: int) -> None:
        self.groups[group] = self.groups.get(group, 0) + 1

    def leave(self, group: int) -> None:
        users = self.groups.get(group, 0) - 1
        if users > 0:
            self.groups[group] = users
        else:
            self.groups.pop(group, None)


def addrconf_dev_config(host: Host, iface: Interface) -> None:
    """A new Ethernet interface: its EUI-64 link-local address (with DAD)."""
    if iface.mac is None or host.settings.disable_ipv6:
        return
    ipv6_add_addr(host, iface, eui64_linklocal(iface.mac), 64)


def ipv6_add_addr(host: Host, iface: Interface, ip: int, prefixlen: int,
                  nodad: bool = False, prefix_route: bool = True) -> Inet6Ifaddr:
    """inet6_addr_add: the address (tentative unless ``nodad``), its
    solicited-node group, and the connected route for a global prefix
    (unless ``prefix_route`` is False, IFA_F_NOPREFIXROUTE: SLAAC's on-link
    route comes from the prefix option's L flag)."""
    if not 0 <= prefixlen <= 128:
        raise ValueError("bad prefix length")
    if is_multicast6(ip) or ip == IN6ADDR_ANY or ip == 1:
        raise sock_error(errno.EINVAL, "not a unicast address")
    idev = iface.ip6
    if idev.get(ip) is not None:
        raise sock_error(errno.EEXIST, "address already assigned")
    ifa = Inet6Ifaddr(ip, prefixlen, iface.ifindex, host.timers.timer(lambda now: None))
    ifa.timer.callback = lambda now: addrconf_dad_work(host, ifa, now)
    idev.addrs.append(ifa)
    idev.join(solicited_node(ip))
    if prefix_route:
        addrconf_prefix_route(host, iface, ifa)
    if nodad or host.settings.dad_transmits <= 0 or iface.link != "ether":
        addrconf_dad_completed(host, ifa)
    else:
        # addrconf_dad_kick: a random delay first, then dad_transmits probes.
        ifa.dad_probes = host.settings.dad_transmits
        delay = host.rng6.random() * host.settings.rtr_solicit_delay
        ifa.timer.arm(host.now + delay)
    host.invalidate_routes()
    return ifa


def addrconf_prefix_route(host: Host, iface: Interface, ifa: Inet6Ifaddr) -> None:
    """The connected route of a global prefix, once the link is up (an
    address added to a down link gets it at NETDEV_UP).  A link-local
    prefix is every link's: routed by the interface given (route6_lookup),
    never by the table.  A SLAAC address has none of its own
    (IFA_F_NOPREFIXROUTE): its prefix option's L flag gives the route."""
    if ifa.autoconf:
        return
    if ifa.prefixlen < 128 and ifa.scope > 2 and iface.up and \
            host.fib6.get(ifa.ip, ifa.prefixlen) is None:
        host.fib6.add(ifa.ip, ifa.prefixlen, None, iface.ifindex, prefsrc=None)


def ipv6_del_addr(host: Host, iface: Interface, ip: int) -> None:
    idev = iface.ip6
    ifa = idev.get(ip)
    if ifa is None:
        raise sock_error(errno.EADDRNOTAVAIL)
    ifa.timer.cancel()
    ifa.timer.callback = lambda now: None
    if ifa.lft_timer is not None:
        ifa.lft_timer.cancel()
    idev.addrs.remove(ifa)
    idev.leave(solicited_node(ip))
    if host.local6.get(ip) == iface.ifindex:
        del host.local6[ip]
    entry = host.fib6.get(ip, ifa.prefixlen)
    if entry is not None and entry.ifindex == iface.ifindex and not any(
            a.prefixlen == ifa.prefixlen and host.fib6.get(a.ip, a.prefixlen) is entry
            for a in idev.addrs):
        host.fib6.remove(ip, ifa.prefixlen)
    host.invalidate_routes()


def addrconf_dad_work(host: Host, ifa: Inet6Ifaddr, now: float) -> None:
    """One DAD step: another probe, or (probes all sent, a retrans time
    passed without an answer) the address is ours."""
    if ifa.state != TENTATIVE:
        return
    iface = host.interfaces.get(ifa.ifindex)
    if iface is None:
        return
    if ifa.dad_probes == 0:
        addrconf_dad_completed(host, ifa)
        return
    ifa.dad_probes -= 1
    host.ndisc.send_ns(iface, ifa.ip, solicited_node(ifa.ip), IN6ADDR_ANY)
    ifa.timer.arm(now + host.settings.arp_retrans_time)


def addrconf_dad_completed(host: Host, ifa: Inet6Ifaddr) -> None:
    ifa.state = PREFERRED if host.now < ifa.prefered_until else DEPRECATED
    ifa.timer.cancel()
    host.local6.setdefault(ifa.ip, ifa.ifindex)
    host.invalidate_routes()
    iface = host.interfaces.get(ifa.ifindex)
    st = host.settings
    if (iface is not None and ifa.scope == SCOPE_LINKLOCAL and st.accept_ra
            and st.rtr_solicits != 0 and iface.link == "ether" and not iface.ip6.ra_rcvd):
        # the link-local address is ours: ask for routers now (DAD's random
        # delay already spread the hosts out), then on the RS timer
        idev = iface.ip6
        host.ndisc.send_rs(iface, ifa.ip)
        idev.rs_probes = 1
        idev.rs_interval = _backoff_init(host, st.rtr_solicit_interval)
        if idev.rs_timer is None:
            idev.rs_timer = host.timers.timer(lambda now: addrconf_rs_timer(host, iface, now))
        idev.rs_timer.arm(host.now + idev.rs_interval)


def _backoff_init(host: Host, irt: float) -> float:
    """rfc3315_s14_backoff_init: the first interval, times 0.9 .. 1.1."""
    return irt * (0.9 + 0.2 * host.rng6.random())


def _backoff_update(host: Host, rt: float, mrt: float) -> float:
    """rfc3315_s14_backoff_update: twice the last (1.9 .. 2.1), at most
    about the maximum (0.9 .. 1.1 of it)."""
    rt *= 1.9 + 0.2 * host.rng6.random()
    if rt > mrt:
        rt = mrt * (0.9 + 0.2 * host.rng6.random())
    return rt


def addrconf_rs_timer(host: Host, iface: Interface, now: float) -> None:
    """Another router solicitation, until an advertisement came or
    ``rtr_solicits`` were sent (-1: without end)."""
    idev = iface.ip6
    st = host.settings
    if idev.ra_rcvd or not st.accept_ra or not iface.up:
        return
    if 0 <= st.rtr_solicits <= idev.rs_probes:
        return
    src = next((a.ip for a in idev.addrs
                if a.scope == SCOPE_LINKLOCAL and a.state in (PREFERRED, DEPRECATED)), None)
    if src is None:
        return
    host.ndisc.send_rs(iface, src)
    idev.rs_probes += 1
    idev.rs_interval = _backoff_update(host, idev.rs_interval, st.rtr_solicit_max_interval)
    assert idev.rs_timer is not None
    idev.rs_timer.arm(now + idev.rs_interval)


def addrconf_ifdown_ra(iface: Interface) -> None:
    """The link went down (addrconf_ifdown): what advertisements taught is
    forgotten with the routes the host flushed, solicitations stop, and
    the next up solicits again (IF_RA_RCVD cleared)."""
    idev = iface.ip6
    idev.ra_rcvd = False
    idev.rs_probes = 0
    if idev.rs_timer is not None:
        idev.rs_timer.cancel()
    for timer in (*idev.routers.values(), *idev.prefixes.values()):
        timer.cancel()
    idev.routers.clear()
    idev.prefixes.clear()


def _lifetime(value: int) -> float:
    return float("inf") if value == INFINITY_LIFE_TIME else float(value)


def rt6_router_rcv(host: Host, iface: Interface, router: int, lifetime: int) -> None:
    """The router lifetime of an advertisement (ndisc_router_discovery with
    accept_ra_defrtr): a default route through ``router`` for that long;
    0 removes it (rt6_add_dflt_router, rt6_get_dflt_router).  A default
    route configured by hand is left alone."""
    idev = iface.ip6
    timer = idev.routers.get(router)
    if lifetime == 0:
        if timer is not None:
            _router_expired(host, iface, router)
        return
    if timer is None:
        timer = host.timers.timer(lambda now: _router_expired(host, iface, router))
        idev.routers[router] = timer
        current = host.fib6.get(0, 0)
        if current is None:
            host.fib6.add(0, 0, router, iface.ifindex)
            host.invalidate_routes()
    timer.arm(host.now + lifetime)     # (the field is 16 bits: never infinite)


def _drop_timer(timers: dict, key: object) -> None:
    """Forget what ``key`` was learned by, and its expiry."""
    timer = timers.pop(key, None)
    if timer is not None:
        timer.cancel()


def _router_expired(host: Host, iface: Interface, router: int) -> None:
    idev = iface.ip6
    _drop_timer(idev.routers, router)
    current = host.fib6.get(0, 0)
    if current is not None and current.gateway == router and current.ifindex == iface.ifindex:
        host.fib6.remove(0, 0)
        for other in idev.routers:            # another router we know of, if any
            host.fib6.add(0, 0, other, iface.ifindex)
            break
        host.invalidate_routes()


def addrconf_prefix_rcv(host: Host, iface: Interface, prefixlen: int, onlink: bool,
                        autonomous: bool, valid_lft: int, prefered_lft: int,
                        prefix: int) -> None:
    """A prefix information option (RFC 4861 6.3.4, RFC 4862 5.5.3): an
    on-link route for the valid lifetime (L), and (A) the SLAAC address of a
    /64 prefix, made with DAD or its lifetimes renewed."""
    if prefixlen > 128 or is_multicast6(prefix) or is_linklocal6(prefix):
        host.mib["NdiscInIgnored"] += 1      # 5.5.3 b: a link-local prefix is ignored
        return
    if prefered_lft > valid_lft:
        host.mib["NdiscInIgnored"] += 1      # 5.5.3 c
        return
    prefix &= prefix_mask6(prefixlen)
    now = host.now
    if onlink:
        _prefix_route(host, iface, prefix, prefixlen, valid_lft)
    if not autonomous or not host.settings.autoconf or iface.mac is None:
        return
    if prefixlen != 64:
        # the identifier is 64 bits (RFC 4291): this prefix cannot carry it
        log.info("%s: IPv6 addrconf: prefix with wrong length %d", host.name, prefixlen)
        return
    ip = prefix | eui64_iid(iface.mac)
    ifa = iface.ip6.get(ip)
    valid = _lifetime(valid_lft)
    if ifa is None:
        if valid_lft == 0:
            return
        ifa = ipv6_add_addr(host, iface, ip, 64, prefix_route=False)
        ifa.autoconf = True
        _set_lifetimes(host, ifa, now + valid, now + _lifetime(prefered_lft))
        return
    if not ifa.autoconf:
        return                                 # configured by hand: not the RA's
    # 5.5.3 e: a short valid lifetime cannot cut a long-lived address down
    # below two hours (an unauthenticated RA could otherwise end it)
    remaining = ifa.valid_until - now
    if valid > MIN_VALID_LIFETIME or valid > remaining:
        new_valid = valid
    elif remaining <= MIN_VALID_LIFETIME:
        new_valid = remaining
    else:
        new_valid = MIN_VALID_LIFETIME
    _set_lifetimes(host, ifa, now + new_valid, now + min(_lifetime(prefered_lft), new_valid))


def _prefix_route(host: Host, iface: Interface, prefix: int, prefixlen: int,
                  valid_lft: int) -> None:
    """addrconf_prefix_route for an on-link prefix: for ``valid_lft``, 0 ends it."""
    idev = iface.ip6
    key = (prefix, prefixlen)
    timer = idev.prefixes.get(key)
    if valid_lft == 0:
        if timer is not None:
            _prefix_expired(host, iface, key)
        return
    if timer is None:
        if host.fib6.get(prefix, prefixlen) is not None:
            return                             # a route of its own already (static)
        timer = host.timers.timer(lambda now: _prefix_expired(host, iface, key))
        idev.prefixes[key] = timer
        host.fib6.add(prefix, prefixlen, None, iface.ifindex)
        host.invalidate_routes()
    if valid_lft == INFINITY_LIFE_TIME:
        timer.cancel()
    else:
        timer.arm(host.now + valid_lft)


def _prefix_expired(host: Host, iface: Interface, key: tuple[int, int]) -> None:
    _drop_timer(iface.ip6.prefixes, key)
    entry = host.fib6.get(*key)
    if entry is not None and entry.gateway is None and entry.ifindex == iface.ifindex:
        host.fib6.remove(*key)
        host.invalidate_routes()


def _set_lifetimes(host: Host, ifa: Inet6Ifaddr, valid_until: float,
                   prefered_until: float) -> None:
    """New lifetimes, and the timer for the next of them (addrconf_verify)."""
    ifa.valid_until = valid_until
    ifa.prefered_until = prefered_until
    if ifa.state == DEPRECATED and host.now < prefered_until:
        ifa.state = PREFERRED
        host.invalidate_routes()
    _arm_lifetime(host, ifa)


def _arm_lifetime(host: Host, ifa: Inet6Ifaddr) -> None:
    nxt = ifa.valid_until if ifa.state == DEPRECATED or host.now >= ifa.prefered_until \
        else ifa.prefered_until
    if ifa.lft_timer is None:
        ifa.lft_timer = host.timers.timer(lambda now: addrconf_verify(host, ifa, now))
    if nxt == float("inf"):
        ifa.lft_timer.cancel()
    else:
        ifa.lft_timer.arm(nxt)


def addrconf_verify(host: Host, ifa: Inet6Ifaddr, now: float) -> None:
    """An address's lifetime ran out: past the valid lifetime it is removed,
    past the preferred one deprecated (RFC 4862 5.5.4)."""
    iface = host.interfaces.get(ifa.ifindex)
    if iface is None or iface.ip6.get(ifa.ip) is not ifa:
        return
    if now >= ifa.valid_until:
        ipv6_del_addr(host, iface, ifa.ip)
        return
    if now >= ifa.prefered_until and ifa.state == PREFERRED:
        ifa.state = DEPRECATED
        host.invalidate_routes()
    _arm_lifetime(host, ifa)


def addrconf_dad_failure(host: Host, ifa: Inet6Ifaddr, mac: bytes | None) -> None:
    """Someone else has the address: never use it (RFC 4862 5.4.5)."""
    if ifa.state != TENTATIVE:
        return
    ifa.state = DADFAILED
    ifa.timer.cancel()
    host.invalidate_routes()
    host.mib["Ip6DadFailures"] += 1
    log.warning("%s: IPv6 duplicate address %s used by %s detected!", host.name,
                ip6_ntoa(ifa.ip), mac.hex(":") if mac else "?")


def ipv6_dev_get_saddr(iface: Interface, dst: int) -> int | None:
    """The source for ``dst`` out of ``iface`` (module docstring); None if
    the interface has no preferred address."""
    best: Inet6Ifaddr | None = None
    best_key: tuple[int, bool, int] | None = None
    dscope = addr_scope(dst)
    for ifa in iface.ip6.addrs:
        if ifa.state != PREFERRED and ifa.state != DEPRECATED:
            continue
        if ifa.ip == dst:
            return dst                                         # rule 1
        # rule 2: scope >= the destination's, the smallest such; else the largest
        scope_rank = ifa.scope - dscope if ifa.scope >= dscope else 0x100 - ifa.scope
        # rule 3: a deprecated address only when nothing else will do
        key = (scope_rank, ifa.state == DEPRECATED, -_common_prefix(ifa.ip, dst))  # rule 8
        if best_key is None or key < best_key:
            best, best_key = ifa, key
    return best.ip if best is not None else None


def _common_prefix(a: int, b: int) -> int:
    return 128 - (a ^ b).bit_length()


def tentative(host: Host, iface: Interface, ip: int) -> Inet6Ifaddr | None:
    """Our tentative address ``ip`` on ``iface`` (ND for it is DAD's business)."""
    ifa = iface.ip6.get(ip)
    return ifa if ifa is not None and ifa.state == TENTATIVE else None
