"""ICMP errors a transparent forwarder sends on behalf of a flow's destination.

A forwarder that relays a flow learns only from its own upstream attempt
that the destination is unreachable (the relay's connect() failed with
EHOSTUNREACH, a UDP send met ICMP port unreachable, ...).  What the client
should hear is what a kernel router or the destination would have sent it:
an ICMP (or ICMPv6) destination unreachable quoting the client's datagram,
so the client's socket fails with the matching errno (tcp_v4_err /
tcp_v6_err abort a connect in SYN_SENT on any of them; a connected UDP
socket gets ECONNREFUSED for port unreachable).

The error comes *from the original destination's address*: the forwarder
usually has no address of its own on the tunnel, and a client matches an
error by the datagram it quotes, never by the error's source (Linux's
icmp_unreach and icmpv6_notify do not look at it).

``code`` is always the IPv4 one (RFC 792); an IPv6 flow gets the ICMPv6
code with the same meaning (RFC 4443 3.1).

They are ICMP errors the host sends like any other, so they pass the same
rate limits as a kernel router's (``IcmpProto.xrlim_allow``: icmp_global_allow
and the client's bucket, icmpv4_xrlim_allow; ``Icmpv6Proto.xrlim_allow`` for
an IPv6 flow): a client that opens connections to a thousand unreachable
destinations at once hears about the first few, and its connects that heard
nothing time out, as behind a Linux router.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from tcpio import _fast
from tcpio.core.icmp import ICMP_QUOTE_MAX
from tcpio.core.icmp_h import (
    ICMP_DEST_UNREACH,
    ICMP_HOST_ANO,
    ICMP_HOST_UNREACH,
    ICMP_NET_ANO,
    ICMP_NET_UNREACH,
    ICMP_PKT_FILTERED,
    ICMP_PORT_UNREACH,
    ICMPV6_ADDR_UNREACH,
    ICMPV6_ADM_PROHIBITED,
    ICMPV6_DEST_UNREACH,
    ICMPV6_NOROUTE,
    ICMPV6_PORT_UNREACH,
)
from tcpio.core.icmpv6 import ICMPV6_QUOTE_MAX
from tcpio.core.in_h import IPPROTO_ICMP, IPPROTO_ICMPV6
from tcpio.core.ipv6 import build_ipv6hdr
from tcpio.core.ndisc import icmp6_message
from tcpio.core.tcp.inet6_addr import V6MASK

if TYPE_CHECKING:
    from tcpio.core.host import Host
    from tcpio.core.protocol import NetHost, NetHost6

wire = _fast.load("wire")

# An IPv4 destination unreachable code -> ICMPv6's nearest (RFC 4443 3.1)
UNREACH_CODE6 = {ICMP_NET_UNREACH: ICMPV6_NOROUTE, ICMP_HOST_UNREACH: ICMPV6_ADDR_UNREACH,
                 ICMP_PORT_UNREACH: ICMPV6_PORT_UNREACH, ICMP_NET_ANO: ICMPV6_ADM_PROHIBITED,
                 ICMP_HOST_ANO: ICMPV6_ADM_PROHIBITED, ICMP_PKT_FILTERED: ICMPV6_ADM_PROHIBITED}


def unreach_from_destination(host: NetHost, iph: Any, proto: int, transport: bytes,
                             code: int) -> bool:
    """Destination unreachable to ``iph.src`` from ``iph.dst``, quoting the
    client's datagram: ``iph`` its header record (an IPv4 one, or a tagged
    ``Iph6``), ``transport`` its ``proto`` header and data.  False when it
    could not be sent or the rate limit held it back (counted as the ICMP
    layer counts it)."""
    mib = host.mib
    limits = cast("Host", host)
    if iph.dst > V6MASK:
        client, orig = iph.src & V6MASK, iph.dst & V6MASK
        try:
            route = cast("NetHost6", host).route6_lookup(client)
        except OSError:
            mib["Icmp6OutErrors"] += 1
            return False
        if not limits.icmp6.xrlim_allow(ICMPV6_DEST_UNREACH, client, route):
            return False
        quoted = (build_ipv6hdr(proto, client, orig, len(transport), iph.hlim, iph.tclass)
                  + transport)[:ICMPV6_QUOTE_MAX]
        msg = icmp6_message(orig, client, ICMPV6_DEST_UNREACH, UNREACH_CODE6.get(code, 0),
                            bytes(4) + quoted)
        try:
            cast("NetHost6", host).ip6_output(IPPROTO_ICMPV6, orig, client, msg)
        except OSError:
            mib["Icmp6OutErrors"] += 1
            return False
        mib["Icmp6OutMsgs"] += 1
        mib["Icmp6OutDestUnreachs"] += 1
        return True
    if not limits.icmp.xrlim_allow(iph.src, ICMP_DEST_UNREACH, code):
        return False
    hdr = bytearray(60)
    hlen = wire.build_ipv4(hdr, 0, iph)
    quoted = bytes(hdr[:hlen]) + transport[:ICMP_QUOTE_MAX - hlen]
    try:
        host.ip_output(IPPROTO_ICMP, iph.dst, iph.src,
                       wire.build_icmp(ICMP_DEST_UNREACH, code, 0, quoted), tos=0xC0)
    except OSError:
        mib["IcmpOutErrors"] += 1
        return False
    mib["IcmpOutMsgs"] += 1
    mib["IcmpOutDestUnreachs"] += 1
    return True
