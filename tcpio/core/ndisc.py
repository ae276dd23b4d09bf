"""IPv6 Neighbor Discovery (RFC 4861), after net/ipv6/ndisc.c, on neighbour.py's table.

What a host needs to reach its neighbours: neighbour solicitations (NS) to
the target's solicited-node group while INCOMPLETE and unicast to probe a
STALE entry after DELAY, neighbour advertisements (NA) for our addresses,
and the NA rules of RFC 4861 7.2.5.  DAD (RFC 4862) lives in addrconf.py
and uses ``send_ns`` and the two hooks here (an NA for a tentative address,
an NS for it from ``::``).

Every ND message must arrive with hop limit 255 and code 0 (7.1.1/7.1.2:
proof it was not forwarded); anything malformed is dropped and counted as
NdiscInErrors.  With ``Settings.accept_ra`` the host solicits routers
(``send_rs``) and takes their advertisements (``router_discovery``: the
default route, on-link prefixes, SLAAC addresses and the link MTU, handed
to addrconf.py); without it, and always for redirects, ICMPv6 counts them
and nothing else happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio import _fast
from tcpio.core import addrconf
from tcpio.core.in_h import IPPROTO_ICMPV6
from tcpio.core.ipv6 import (
    ALL_NODES,
    ALL_ROUTERS,
    ETH_P_IPV6,
    IN6ADDR_ANY,
    IPV6_MIN_MTU,
    SOLICITED_NODE_PREFIX,
    build_ipv6hdr,
    is_linklocal6,
    is_multicast6,
    multicast_mac6,
)
from tcpio.core.neighbour import NUD_INCOMPLETE, NUD_PERMANENT, NUD_REACHABLE, NeighTable, Neighbour

if TYPE_CHECKING:
    from tcpio.core.host import Interface
    from tcpio.core.ipv6 import Ip6Skb

csum = _fast.load("checksum")

NDISC_ROUTER_SOLICITATION = 133
NDISC_ROUTER_ADVERTISEMENT = 134
NDISC_NEIGHBOUR_SOLICITATION = 135
NDISC_NEIGHBOUR_ADVERTISEMENT = 136
NDISC_REDIRECT = 137

ND_OPT_SOURCE_LL_ADDR = 1
ND_OPT_TARGET_LL_ADDR = 2
ND_OPT_PREFIX_INFO = 3
ND_OPT_MTU = 5

PIO_ONLINK = 0x80               # the L flag of a prefix information option
PIO_AUTONOMOUS = 0x40           # the A flag

NA_ROUTER = 0x80
NA_SOLICITED = 0x40
NA_OVERRIDE = 0x20

HOP_LIMIT = 255


def icmp6_message(src: int, dst: int, type: int, code: int, body: bytes | bytearray) -> bytes:
    """An ICMPv6 message (type, code, checksum, then ``body``) checksummed with
    the pseudo-header for ``src`` -> ``dst``."""
    msg = bytearray((type, code, 0, 0)) + body
    check = csum.internet_checksum(msg, csum.pseudo_header_sum6(src, dst, IPPROTO_ICMPV6,
                                                                len(msg)))
    msg[2] = check >> 8
    msg[3] = check & 0xFF
    return bytes(msg)


def parse_option_list(data: bytes | memoryview) -> list[tuple[int, bytes]] | None:
    """ndisc_parse_options: (type, value) in order; None when an option has
    length 0 or runs past the message (7.1.1: discard)."""
    opts: list[tuple[int, bytes]] = []
    i = 0
    n = len(data)
    while i < n:
        if i + 2 > n:
            return None
        olen = data[i + 1] * 8
        if olen == 0 or i + olen > n:
            return None
        opts.append((data[i], bytes(data[i + 2:i + olen])))
        i += olen
    return opts


def parse_options(data: bytes | memoryview) -> dict[int, bytes] | None:
    """type -> value, the last of each type (what NS and NA carry)."""
    opts = parse_option_list(data)
    return None if opts is None else dict(opts)


def _lladdr(opts: dict[int, bytes], kind: int) -> tuple[bool, bytes | None]:
    """(well formed, the MAC in a link-layer address option or None if absent)."""
    value = opts.get(kind)
    if value is None:
        return True, None
    if len(value) < 6:
        return False, None
    return True, value[:6]


class Ndisc(NeighTable):
    """The host's IPv6 neighbour table plus NS/NA in and out."""

    ethertype = ETH_P_IPV6
    C_UNRES = "NdiscUnresolvedDiscards"
    C_FAILED = "NdiscResolveFailed"
    C_EVICT = "NdiscCacheEvictions"

    def unreachable(self, packet: bytes | bytearray) -> None:
        # ICMPv6 destination unreachable, address unreachable (RFC 4443 3.1,
        # RFC 4861 7.2.2), to the sender: here ourselves.
        self.host.icmp6.local_error(packet, 1, 3)

    def delay_first_probe_time(self) -> float:
        return self.host.settings.ndisc_delay_first_probe_time

    # ----- output -------------------------------------------------------------------

    def solicit(self, iface: Interface, n: Neighbour, unicast: bool) -> None:
        """ndisc_solicit: to the solicited-node group, or unicast to probe."""
        src = addrconf.ipv6_dev_get_saddr(iface, n.ip)
        if src is None:
            return      # no usable source yet (our addresses still tentative)
        if unicast and n.mac:
            self.send_ns(iface, n.ip, n.ip, src, n.mac)
        else:
            self.send_ns(iface, n.ip, SOLICITED_NODE_PREFIX | (n.ip & 0xFFFFFF), src)

    def send_ns(self, iface: Interface, target: int, dst: int, src: int,
                dst_mac: bytes | None = None) -> None:
        """ndisc_send_ns: from ``src`` (``::`` for DAD: then no source
        link-layer option, RFC 4862 5.4.2)."""
        body = bytes(4) + target.to_bytes(16, "big")
        if src != IN6ADDR_ANY and iface.mac is not None:
            body += bytes((ND_OPT_SOURCE_LL_ADDR, 1)) + iface.mac
        self.host.mib["Icmp6OutNeighborSolicits"] += 1
        self._send(iface, src, dst, dst_mac, NDISC_NEIGHBOUR_SOLICITATION, body)

    def send_rs(self, iface: Interface, src: int) -> None:
        """ndisc_send_rs: to all-routers, with our link-layer address."""
        body = bytes(4)
        if src != IN6ADDR_ANY and iface.mac is not None:
            body += bytes((ND_OPT_SOURCE_LL_ADDR, 1)) + iface.mac
        self.host.mib["Icmp6OutRouterSolicits"] += 1
        self._send(iface, src, ALL_ROUTERS, None, NDISC_ROUTER_SOLICITATION, body)

    def send_na(self, iface: Interface, dst: int, target: int, solicited: bool,
                dst_mac: bytes | None) -> None:
        """ndisc_send_na: for our address ``target``, override set."""
        flags = NA_OVERRIDE | (NA_SOLICITED if solicited else 0)
        body = bytes((flags, 0, 0, 0)) + target.to_bytes(16, "big")
        if iface.mac is not None:
            body += bytes((ND_OPT_TARGET_LL_ADDR, 1)) + iface.mac
        self.host.mib["Icmp6OutNeighborAdvertisements"] += 1
        self._send(iface, target, dst, dst_mac, NDISC_NEIGHBOUR_ADVERTISEMENT, body)

    def _send(self, iface: Interface, src: int, dst: int, dst_mac: bytes | None, type: int,
              body: bytes) -> None:
        host = self.host
        msg = icmp6_message(src, dst, type, 0, body)
        packet = build_ipv6hdr(IPPROTO_ICMPV6, src, dst, len(msg), HOP_LIMIT) + msg
        mib = host.mib
        mib["Ip6OutRequests"] += 1
        mib["Icmp6OutMsgs"] += 1
        if is_multicast6(dst):
            mib["Ip6OutMcastPkts"] += 1
            dst_mac = multicast_mac6(dst)
        if dst_mac is None:
            self.output(iface, dst, packet)
        else:
            host.ether_xmit(iface, dst_mac, ETH_P_IPV6, packet)

    # ----- input: ndisc_rcv ---------------------------------------------------------

    def rcv(self, skb: Ip6Skb, type: int, msg: memoryview, now: float) -> None:
        """An NS or NA (checksum already verified by ICMPv6)."""
        host = self.host
        iface = host.interfaces.get(skb.iif)
        ip6h = skb.ip6h
        if iface is None or iface.mac is None or ip6h.hlim != HOP_LIMIT or msg[1] != 0 \
                or len(msg) < 24:
            host.mib["NdiscInErrors"] += 1
            return
        target = int.from_bytes(msg[8:24], "big")
        opts = parse_options(msg[24:])
        if opts is None or is_multicast6(target):
            host.mib["NdiscInErrors"] += 1
            return
        if type == NDISC_NEIGHBOUR_SOLICITATION:
            self._recv_ns(iface, ip6h.src, ip6h.dst, target, opts, now)
        else:
            self._recv_na(iface, ip6h.dst, msg[4], target, opts, now)

    def router_discovery(self, skb: Ip6Skb, msg: memoryview, now: float) -> None:
        """ndisc_router_discovery: a router advertisement (checksum verified
        by ICMPv6).  Only from a link-local source, hop limit 255, code 0
        (6.1.2); taken only with accept_ra."""
        host = self.host
        iface = host.interfaces.get(skb.iif)
        ip6h = skb.ip6h
        if iface is None or iface.mac is None or ip6h.hlim != HOP_LIMIT or msg[1] != 0 \
                or len(msg) < 16 or not is_linklocal6(ip6h.src):
            host.mib["NdiscInErrors"] += 1
            return
        opts = parse_option_list(msg[16:])
        if opts is None:
            host.mib["NdiscInErrors"] += 1
            return
        ok, lladdr = _lladdr(dict(opts), ND_OPT_SOURCE_LL_ADDR)
        if not ok:
            host.mib["NdiscInErrors"] += 1
            return
        if not host.settings.accept_ra:
            host.mib["NdiscInIgnored"] += 1
            return
        idev = iface.ip6
        idev.ra_rcvd = True
        if lladdr is not None:
            # the router as a neighbour: a new or changed address is STALE
            self._learn(iface.ifindex, ip6h.src, lladdr, now)
        addrconf.rt6_router_rcv(host, iface, ip6h.src, int.from_bytes(msg[6:8], "big"))
        for kind, value in opts:
            if kind == ND_OPT_PREFIX_INFO:
                if len(value) < 30:
                    host.mib["NdiscInErrors"] += 1
                    continue
                flags = value[1]
                addrconf.addrconf_prefix_rcv(
                    host, iface, value[0], bool(flags & PIO_ONLINK),
                    bool(flags & PIO_AUTONOMOUS), int.from_bytes(value[2:6], "big"),
                    int.from_bytes(value[6:10], "big"), int.from_bytes(value[14:30], "big"))
            elif kind == ND_OPT_MTU and len(value) >= 6:
                mtu = int.from_bytes(value[2:6], "big")
                # accept_ra_mtu: within what IPv6 and the link allow
                if IPV6_MIN_MTU <= mtu <= iface.mtu:
                    idev.mtu6 = mtu
                    host.invalidate_routes()

    def _recv_ns(self, iface: Interface, src: int, dst: int, target: int,
                 opts: dict[int, bytes], now: float) -> None:
        host = self.host
        ok, lladdr = _lladdr(opts, ND_OPT_SOURCE_LL_ADDR)
        dad = src == IN6ADDR_ANY
        if not ok or (dad and (lladdr is not None or
                                        dst >> 24 != SOLICITED_NODE_PREFIX >> 24)):
            # 7.1.1: from :: only to a solicited-node group, without SLLAO.
            host.mib["NdiscInErrors"] += 1
            return
        ifa = iface.ip6.get(target)
        if ifa is None or ifa.state == addrconf.DADFAILED:
            host.mib["NdiscInIgnored"] += 1      # not ours (we are no proxy)
            return
        if ifa.state == addrconf.TENTATIVE:
            if dad:
                # Another node probes the same address: it is not ours (5.4.3).
                addrconf.addrconf_dad_failure(host, ifa, None)
            return
        if dad:
            # Our address, defended: NA to all-nodes, not solicited (RFC 4862 5.4.3).
            self.send_na(iface, ALL_NODES, target, False, None)
            return
        if lladdr is not None:
            self._learn(iface.ifindex, src, lladdr, now)
        self.send_na(iface, src, target, True, lladdr)

    def _learn(self, ifindex: int, ip: int, mac: bytes, now: float) -> None:
        """7.2.3: a solicitation's sender: a new or changed entry is STALE."""
        n = self.table.get((ifindex, ip))
        if n is None:
            n = self._create(ifindex, ip)
            if n is None:
                return
        if n.state == NUD_PERMANENT:
            return
        if n.state == NUD_INCOMPLETE or n.mac != mac:
            n.mac = mac
            self.set_stale(n, now)
            self._flush_queue(n, mac)

    def _recv_na(self, iface: Interface, dst: int, flags: int, target: int,
                 opts: dict[int, bytes], now: float) -> None:
        host = self.host
        ok, lladdr = _lladdr(opts, ND_OPT_TARGET_LL_ADDR)
        solicited = bool(flags & NA_SOLICITED)
        if not ok or (solicited and is_multicast6(dst)):
            host.mib["NdiscInErrors"] += 1           # 7.1.2
            return
        ifa = iface.ip6.get(target)
        if ifa is not None:
            if ifa.state == addrconf.TENTATIVE:
                addrconf.addrconf_dad_failure(host, ifa, lladdr)
            else:
                host.mib["NdiscInIgnored"] += 1      # someone advertises our address
            return
        n = self.table.get((iface.ifindex, target))
        if n is None or n.state == NUD_PERMANENT:
            host.mib["NdiscInIgnored"] += 1          # 7.2.5: no entry, silently discard
            return
        if n.state == NUD_INCOMPLETE:
            if lladdr is None:
                host.mib["NdiscInIgnored"] += 1
                return
            n.mac = lladdr
            if solicited:
                self.set_reachable(n, now)
            else:
                self.set_stale(n, now)
            self._flush_queue(n, lladdr)
            return
        changed = lladdr is not None and lladdr != n.mac
        if not flags & NA_OVERRIDE and changed:
            # A different address without override: REACHABLE becomes STALE,
            # the cached address stays.
            if n.state == NUD_REACHABLE:
                self.set_stale(n, now)
            return
        if lladdr is not None:
            n.mac = lladdr
            if changed:
                self.hh_update()        # (set_reachable keeps the entry connected)
        if solicited:
            self.set_reachable(n, now)
        elif changed:
            self.set_stale(n, now)

