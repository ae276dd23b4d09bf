"""IPv6 output (net/ipv6/ip6_output.c): ip6_output, ip6_fragment, ip6_finish_output2.

A locally generated datagram is routed (``Host.route6_lookup``), given the
route's source when none is bound (none preferred: EADDRNOTAVAIL, as
ip6_dst_lookup_tail), and sent: to ourselves over lo, or out of the
interface, to the destination's group MAC (33:33 + its low 32 bits) when it
is multicast, else through the ND table (queued while INCOMPLETE).  IPv6
routers never fragment: the source does, for datagrams above the path MTU
(the route's MTU, lowered by Packet Too Big, floor 1280), every fragment a
multiple of 8 bytes but the last, with one 32-bit identification per
datagram (ipv6_select_ident: a keyed hash of the addresses picks a counter,
so IDs are neither global nor predictable).  With ``dontfrag``
(IPV6_DONTFRAG) such a datagram is EMSGSIZE instead.  No atomic fragments
(RFC 8021).
"""

from __future__ import annotations

import errno
import hashlib
from typing import TYPE_CHECKING

from tcpio.core.errors import sock_error
from tcpio.core.in_h import IPPROTO_FRAGMENT
from tcpio.core.ipv6 import (
    ETH_P_IPV6,
    FRAG_HLEN,
    IPV6_HLEN,
    IPV6_MAXPLEN,
    build_ipv6hdr,
    is_multicast6,
    multicast_mac6,
)

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface
    from tcpio.core.route import Route

IP6_IDENTS_SZ = 2048


class Ip6Idents:
    """ipv6_select_ident: 2048 counters picked by a keyed hash of (src, dst),
    each starting at a keyed-random 32-bit value; 0 is skipped."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._key = int.from_bytes(secret[:8], "big") | 1
        self._ids: dict[int, int] = {}

    def next(self, src: int, dst: int) -> int:
        h = (((src ^ (dst << 1)) % 0xFFFFFFFFFFFFFFC5) * self._key) & 0xFFFFFFFFFFFFFFFF
        i = (h ^ (h >> 32)) % IP6_IDENTS_SZ
        ident = self._ids.get(i)
        if ident is None:
            ident = int.from_bytes(hashlib.blake2b(i.to_bytes(2, "big"), key=self._secret,
                                                   digest_size=4).digest(), "big")
        ident = (ident + 1) & 0xFFFFFFFF or 1
        self._ids[i] = ident
        return ident


def ip6_output(host: Host, proto: int, src: int | None, dst: int,
               payload: bytes | bytearray | memoryview, hlim: int, tclass: int,
               dontfrag: bool, ifindex: int | None) -> None:
    mib = host.mib
    try:
        route = host.route6_lookup(dst, ifindex)
    except OSError:
        mib["Ip6OutNoRoutes"] += 1
        raise
    if not src:
        src = route.src
        if not src:
            raise sock_error(errno.EADDRNOTAVAIL, "no IPv6 source address for the route")
    mib["Ip6OutRequests"] += 1
    plen = len(payload)
    if plen > IPV6_MAXPLEN:
        mib["Ip6OutDiscards"] += 1
        raise sock_error(errno.EMSGSIZE)
    if route.ifindex == 0:
        # To one of our own addresses: lo's backlog, as for IPv4.
        host.loopback(build_ipv6hdr(proto, src, dst, plen, hlim, tclass) + payload)
        return
    iface = host.interfaces[route.ifindex]
    mtu = route.mtu
    if IPV6_HLEN + plen <= mtu:
        ip6_finish_output2(host, iface, route, dst,
                           build_ipv6hdr(proto, src, dst, plen, hlim, tclass) + payload)
        return
    if dontfrag:
        mib["Ip6FragFails"] += 1
        raise sock_error(errno.EMSGSIZE, f"datagram of {IPV6_HLEN + plen} bytes over MTU {mtu}")
    ip6_fragment(host, iface, route, proto, src, dst, payload, hlim, tclass, mtu)


def ip6_fragment(host: Host, iface: Interface, route: Route, proto: int, src: int, dst: int,
                 payload: bytes | bytearray | memoryview, hlim: int, tclass: int,
                 mtu: int) -> None:
    """The source's fragmentation (RFC 8200 4.5): the whole payload is the
    fragmentable part (we add no extension headers of our own)."""
    mib = host.mib
    step = (mtu - IPV6_HLEN - FRAG_HLEN) & ~7
    ident = host.ip6_ids.next(src, dst).to_bytes(4, "big")
    view = memoryview(payload)
    total = len(view)
    for offset in range(0, total, step):
        chunk = view[offset:offset + step]
        more = offset + step < total
        frag = bytes((proto, 0)) + (offset | more).to_bytes(2, "big") + ident
        packet = build_ipv6hdr(IPPROTO_FRAGMENT, src, dst, FRAG_HLEN + len(chunk), hlim,
                               tclass) + frag + chunk
        ip6_finish_output2(host, iface, route, dst, packet)
        mib["Ip6FragCreates"] += 1
    mib["Ip6FragOKs"] += 1


def ip6_finish_output2(host: Host, iface: Interface, route: Route, dst: int,
                       packet: bytes | bytearray) -> None:
    """The link-layer destination: none on an "ip" link, the group's MAC, or ND."""
    if iface.link != "ether":
        host.xmit(iface.ifindex, packet)
    elif is_multicast6(dst):
        host.mib["Ip6OutMcastPkts"] += 1
        host.ether_xmit(iface, multicast_mac6(dst), ETH_P_IPV6, packet)
    else:
        host.ndisc.output(iface, route.gateway if route.gateway is not None else dst, packet)
