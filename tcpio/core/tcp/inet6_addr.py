"""IPv6 addresses inside TCP (issue 17, docs/internals.md "TCP and UDP over IPv6").

TCP's tables, request and time-wait socks and output functions carry
addresses as ints.  An IPv4 address is its 32-bit value; an IPv6 address is
``V6TAG | address`` (bit 128 set), so the family travels with the value and
is never guessed from it (``::1`` is not 0.0.0.1).  The wildcard is 0 for
both families (the sock's ``family`` says which).  The tag is added where an
IPv6 datagram enters TCP (``tcp_ipv6``) or a user names an IPv6 address,
and removed where one leaves (``ip6_xmit_tcp``, the API's names).

``addr_key`` is what the keyed hashes (ISNs, timestamp offsets, RFC 6056
port offsets, SYN cookies) take for an address: the IPv4 value as before,
for an IPv6 one a 32-bit BLAKE2s of its 128 bits keyed by the host secret
(Linux's secure_tcpv6_seq and cookie_v6 hash the whole addresses; the keyed
fold keeps one hash layout for both families).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

from tcpio import _fast
from tcpio.core.addr import ip6_ntoa, ip_ntoa
from tcpio.core.in_h import IPPROTO_TCP

if TYPE_CHECKING:
    from tcpio.core.protocol import NetHost, NetHost6

csum = _fast.load("checksum")

V6TAG = 1 << 128
V6MASK = V6TAG - 1
IPV6_TCP_EXTRA = 20     # an IPv6 header is 20 bytes longer than IPv4's (MSS = MTU - 60)


def is_v6(addr: int) -> bool:
    return addr > V6MASK


def untag6(addr: int) -> int:
    return addr & V6MASK


@lru_cache(maxsize=4096)
def _fold(secret: bytes, addr: int) -> int:
    key = secret if len(secret) <= 32 else hashlib.blake2s(secret).digest()
    digest = hashlib.blake2s(addr.to_bytes(17, "big"), key=key, person=b"tcp-v6",
                             digest_size=4).digest()
    return int.from_bytes(digest, "big")


def addr_str(addr: int) -> str:
    """TCP's address as text: dotted IPv4, or the IPv6 address of a tagged one."""
    return ip6_ntoa(addr & V6MASK) if addr > V6MASK else ip_ntoa(addr)


def addr_key(secret: bytes, addr: int) -> int:
    """The 32-bit value the keyed TCP hashes take for ``addr`` (see above)."""
    return _fold(bytes(secret), addr) if addr > V6MASK else addr


def route_mtu4(host: NetHost, addr: int) -> int:
    """The route MTU to ``addr`` as TCP's IPv4 arithmetic takes it (MSS =
    MTU - 40): an IPv6 path's MTU less the 20 bytes its header adds, so
    every MSS rule gives the IPv6 MSS (path MTU - 60).  OSError without a route."""
    if addr > V6MASK:
        return cast("NetHost6", host).route6_lookup(addr & V6MASK).mtu - IPV6_TCP_EXTRA
    return host.route_lookup(addr).mtu


def route_check(host: NetHost, addr: int) -> Any:
    """inet_csk_route_req / ip6_dst_lookup: the route to ``addr`` (OSError without one)."""
    if addr > V6MASK:
        return cast("NetHost6", host).route6_lookup(addr & V6MASK)
    return host.route_lookup(addr)


def ip6_xmit_tcp(host: NetHost, laddr: int, raddr: int, seg: bytearray | bytes) -> int:
    """Send a TCP segment built with zero addresses (its checksum covering
    the segment, the protocol and the length) over IPv6: the checksum gets
    the two addresses of the IPv6 pseudo-header (RFC 1624 update), then
    ip6_output; its NET_XMIT_* status.  No route: counted as for IPv4
    (TCPOutNoRoute), and 0 (the segment is lost like a dropped packet)."""
    src = laddr & V6MASK
    dst = raddr & V6MASK
    seg = bytearray(seg)
    old = (seg[16] << 8) | seg[17]
    total = (~old & 0xFFFF) + csum.pseudo_header_sum6(src, dst, 0, 0)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    check = ~total & 0xFFFF
    seg[16] = check >> 8
    seg[17] = check & 0xFF
    try:
        return cast("NetHost6", host).ip6_output(IPPROTO_TCP, src, dst, seg)
    except OSError:
        host.mib["TCPOutNoRoute"] += 1
        return 0
