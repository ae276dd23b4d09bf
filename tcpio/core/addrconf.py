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
and all-nodes (ff02::1) are joined; MLD reports are not sent (phase 1).

Source selection (ipv6_dev_get_saddr, RFC 6724 section 5, the rules a host
with static addresses needs): the destination itself if it is ours (rule 1),
then the appropriate scope (rule 2: the smallest scope at least the
destination's, else the largest), then the longest matching prefix (rule 8).
Only PREFERRED addresses of the outgoing interface are candidates.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING

from tcpio.core.addr import ip6_ntoa
from tcpio.core.errors import sock_error
from tcpio.core.ipv6 import (
    ALL_NODES,
    IN6ADDR_ANY,
    addr_scope,
    eui64_linklocal,
    is_multicast6,
    solicited_node,
)
from tcpio.core.timer import Timer

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface

log = logging.getLogger("tcpio.host")

TENTATIVE = "tentative"
PREFERRED = "preferred"
DADFAILED = "dadfailed"


class Inet6Ifaddr:
    __slots__ = ("dad_probes", "ifindex", "ip", "prefixlen", "scope", "state", "timer")

    def __init__(self, ip: int, prefixlen: int, ifindex: int, timer: Timer) -> None:
        self.ip = ip
        self.prefixlen = prefixlen
        self.ifindex = ifindex
        self.scope = addr_scope(ip)
        self.state = TENTATIVE
        self.dad_probes = 0
        self.timer = timer

    def __repr__(self) -> str:
        return f"<Inet6Ifaddr {ip6_ntoa(self.ip)}/{self.prefixlen} {self.state}>"


class Inet6Dev:
    """An interface's IPv6 state."""

    __slots__ = ("addrs", "groups")

    def __init__(self) -> None:
        self.addrs: list[Inet6Ifaddr] = []
        # Joined groups with their users (ipv6_dev_mc_inc/dec): all-nodes always.
        self.groups: dict[int, int] = {ALL_NODES: 1}

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
                  nodad: bool = False) -> Inet6Ifaddr:
    """inet6_addr_add: the address (tentative unless ``nodad``), its
    solicited-node group, and the connected route for a global prefix."""
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
    never by the table."""
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
    ifa.state = PREFERRED
    ifa.timer.cancel()
    host.local6.setdefault(ifa.ip, ifa.ifindex)
    host.invalidate_routes()


def addrconf_dad_failure(host: Host, ifa: Inet6Ifaddr, mac: bytes | None) -> None:
    """Someone else has the address: never use it (RFC 4862 5.4.5)."""
    if ifa.state != TENTATIVE:
        return
    ifa.state = DADFAILED
    ifa.timer.cancel()
    host.mib["Ip6DadFailures"] += 1
    log.warning("%s: IPv6 duplicate address %s used by %s detected!", host.name,
                ip6_ntoa(ifa.ip), mac.hex(":") if mac else "?")


def ipv6_dev_get_saddr(iface: Interface, dst: int) -> int | None:
    """The source for ``dst`` out of ``iface`` (module docstring); None if
    the interface has no preferred address."""
    best: Inet6Ifaddr | None = None
    best_key: tuple[int, int, int] | None = None
    dscope = addr_scope(dst)
    for ifa in iface.ip6.addrs:
        if ifa.state != PREFERRED:
            continue
        if ifa.ip == dst:
            return dst                                         # rule 1
        # rule 2: scope >= the destination's, the smallest such; else the largest
        scope_rank = ifa.scope - dscope if ifa.scope >= dscope else 0x100 - ifa.scope
        key = (scope_rank, -_common_prefix(ifa.ip, dst), 0)    # rule 8
        if best_key is None or key < best_key:
            best, best_key = ifa, key
    return best.ip if best is not None else None


def _common_prefix(a: int, b: int) -> int:
    return 128 - (a ^ b).bit_length()


def tentative(host: Host, iface: Interface, ip: int) -> Inet6Ifaddr | None:
    """Our tentative address ``ip`` on ``iface`` (ND for it is DAD's business)."""
    ifa = iface.ip6.get(ip)
    return ifa if ifa is not None and ifa.state == TENTATIVE else None
