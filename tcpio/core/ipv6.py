"""IPv6 definitions shared by the IPv6 modules (include/net/ipv6.h, include/net/addrconf.h).

The fixed header (RFC 8200 3), the extension header numbers, address types
(ipv6_addr_type, simplified to what a host needs), the solicited-node
multicast address and the Ethernet mapping of IPv6 multicast (RFC 2464 7),
and ``ipv6_skip_exthdr``: the walk over an extension header chain that the
fragment rules and ICMPv6's error input need without acting on the headers.

Addresses are 128-bit ints (see docs/internals.md "IPv6").
"""

from __future__ import annotations

from typing import NamedTuple

from tcpio.core.in_h import (
    AF_INET6,
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMPV6,
    IPPROTO_ROUTING,
    IPPROTO_TCP,
    IPPROTO_UDP,
)

IPV6_HLEN = 40
IPV6_MIN_MTU = 1280
IPV6_MAXPLEN = 65535
ETH_P_IPV6 = 0x86DD
FRAG_HLEN = 8
# Linux has no fixed limit on the chain (its loop ends with the packet); RFC
# 8200 gives none either.  Eight headers cover every legitimate use (RFC 8504
# asks hosts to take at least the six the RFC orders, with a repeated
# destination options header) and bound the work a crafted chain costs.
IP6_MAX_EXT_HDRS = 8

# Headers ipv6_skip_exthdr walks over: each starts with (next header, length).
EXT_HDRS = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS))
# Upper-layer header sizes a first fragment must hold whole (ipv6frag_thdr_truncated).
UPPER_HDR_LEN = {IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_ICMPV6: 8}

IN6ADDR_ANY = 0
IN6ADDR_LOOPBACK = 1
ALL_NODES = 0xFF02 << 112 | 1                   # ff02::1
ALL_ROUTERS = 0xFF02 << 112 | 2                 # ff02::2
SOLICITED_NODE_PREFIX = 0xFF02 << 112 | 0x1FF << 24   # ff02::1:ff00:0/104
LINKLOCAL_PREFIX = 0xFE80 << 112                # fe80::/64

# Scopes (RFC 4291 2.7, RFC 6724 3.1), as Linux's IPV6_ADDR_SCOPE_*.
SCOPE_NODELOCAL = 0x01
SCOPE_LINKLOCAL = 0x02
SCOPE_SITELOCAL = 0x05
SCOPE_GLOBAL = 0x0E


class Ipv6Header(NamedTuple):
    """The fixed header (RFC 8200 3); ``plen`` is the payload length field."""

    tclass: int
    flow: int
    plen: int
    nexthdr: int
    hlim: int
    src: int
    dst: int


class Iph6(NamedTuple):
    """What a transport keeps of an IPv6 datagram's header: the addresses
    tagged as TCP tags them (``V6TAG``: the family travels with the value,
    so an IPv6 4-tuple never equals an IPv4 one), and what a quote of the
    datagram rebuilds (hop limit, traffic class: only a forwarded flow's
    SYN is ever quoted, and that always comes through ipv6_rcv with both;
    the compiled classifier's segments, all to our own addresses, leave them 0)."""

    src: int
    dst: int
    hlim: int = 0
    tclass: int = 0


class Ip6Skb(NamedTuple):
    """What a protocol registered with ``register_protocol6`` gets with a
    datagram (Linux's skb with its inet6_skb_parm): the fixed header, the
    whole datagram as received (reassembled if it was fragmented; ICMPv6
    errors quote it), the upper-layer protocol after the extension headers,
    the offset of its header in ``packet``, and the interface it came in on."""

    ip6h: Ipv6Header
    packet: bytes | bytearray | memoryview
    proto: int
    thoff: int
    iif: int


def parse_ipv6hdr(packet: bytes | bytearray | memoryview) -> Ipv6Header:
    """The fixed header's fields (the caller checked there are 40 bytes)."""
    word = int.from_bytes(packet[0:4], "big")
    return Ipv6Header((word >> 20) & 0xFF, word & 0xFFFFF,
                      (packet[4] << 8) | packet[5], packet[6], packet[7],
                      int.from_bytes(packet[8:24], "big"), int.from_bytes(packet[24:40], "big"))


def build_ipv6hdr(nexthdr: int, src: int, dst: int, plen: int, hlim: int,
                  tclass: int = 0, flow: int = 0) -> bytes:
    """A fixed header (ip6_flow_hdr + the rest)."""
    return ((6 << 28 | (tclass & 0xFF) << 20 | (flow & 0xFFFFF)).to_bytes(4, "big")
            + bytes((plen >> 8, plen & 0xFF, nexthdr, hlim))
            + src.to_bytes(16, "big") + dst.to_bytes(16, "big"))


def is_multicast6(ip: int) -> bool:
    return ip >> 120 == 0xFF


def is_linklocal6(ip: int) -> bool:
    return ip >> 118 == 0xFE80 >> 6           # fe80::/10


def is_v4mapped(ip: int) -> bool:
    return ip >> 32 == 0xFFFF                  # ::ffff:0:0/96


V4MAPPED_PREFIX = 0xFFFF << 32                  # ::ffff:0:0/96


def v4mapped(ip4: int) -> int:
    """::ffff:a.b.c.d for the IPv4 address ``ip4``."""
    return V4MAPPED_PREFIX | ip4


def sk_bind_scope(family: int, addr: int, v6only: bool) -> tuple[int | None, int | None]:
    """The IPv4 and IPv6 addresses a sock bound to ``addr`` receives for:
    each None (none), 0 (the wildcard) or one address (docs/internals.md
    "TCP and UDP over IPv6": the rule behind ``ipv6_rcv_saddr_equal``)."""
    if family != AF_INET6:
        return addr, None
    if addr == 0:
        return (None if v6only else 0), 0
    if is_v4mapped(addr):
        return addr & 0xFFFFFFFF, None
    return None, addr


def bind_scopes_overlap(a: tuple[int | None, int | None],
                        b: tuple[int | None, int | None]) -> bool:
    """Do two binds on one port share an address (equal, or a wildcard)?"""
    for x, y in zip(a, b):
        if x is not None and y is not None and (x == y or x == 0 or y == 0):
            return True
    return False


def addr_scope(ip: int) -> int:
    """RFC 6724 3.1 scope of an address (__ipv6_addr_type's scope part)."""
    if is_multicast6(ip):
        return (ip >> 112) & 0xF
    if is_linklocal6(ip) or ip == IN6ADDR_LOOPBACK:
        return SCOPE_LINKLOCAL
    if ip >> 118 == 0xFEC0 >> 6:              # fec0::/10, deprecated site-local
        return SCOPE_SITELOCAL
    return SCOPE_GLOBAL


def solicited_node(ip: int) -> int:
    """addrconf_addr_solict_mult: ff02::1:ff00:0 + the low 24 bits of ``ip``."""
    return SOLICITED_NODE_PREFIX | (ip & 0xFFFFFF)


def multicast_mac6(ip: int) -> bytes:
    """ipv6_eth_mc_map (RFC 2464 7): 33:33 + the low 32 bits of the group."""
    return b"\x33\x33" + (ip & 0xFFFFFFFF).to_bytes(4, "big")


def eui64_iid(mac: bytes) -> int:
    """The modified EUI-64 interface identifier of ``mac`` (RFC 4291
    appendix A: ff:fe in the middle, the U/L bit inverted): an address's
    low 64 bits."""
    return int.from_bytes(bytes((mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE,
                                 mac[3], mac[4], mac[5])), "big")


def eui64_linklocal(mac: bytes) -> int:
    """fe80::/64 with the modified EUI-64 interface identifier of ``mac``."""
    return LINKLOCAL_PREFIX | eui64_iid(mac)


def ipv6_skip_exthdr(packet: bytes | bytearray | memoryview, start: int, nexthdr: int
                     ) -> tuple[int, int, int] | None:
    """Walk the extension headers from ``start`` (the header ``nexthdr``
    names) to the upper layer: (upper protocol, its offset, fragment offset
    field of a fragment header met on the way, 0 if none).  None when the
    chain runs past the packet or past IP6_MAX_EXT_HDRS headers.

    Like the kernel's, the walk stops at a non-first fragment's header (what
    follows is not a header): IPPROTO_FRAGMENT, the offset of that header and
    its fragment offset."""
    n = len(packet)
    frag_off = 0
    count = 0
    while nexthdr in EXT_HDRS:
        count += 1
        if count > IP6_MAX_EXT_HDRS or start + 8 > n:
            return None
        if nexthdr == IPPROTO_FRAGMENT:
            frag_off = ((packet[start + 2] << 8) | packet[start + 3]) & 0xFFF8
            if frag_off:
                return nexthdr, start, frag_off
            nexthdr = packet[start]
            start += FRAG_HLEN
            continue
        hdrlen = (packet[start + 1] + 1) << 3
        if start + hdrlen > n:
            return None
        nexthdr = packet[start]
        start += hdrlen
    return nexthdr, start, frag_off
