"""IPv6 forwarding (net/ipv6/ip6_output.c: ip6_forward): router mode for IPv6.

With ``Settings.ipv6_forward`` on (off by default, as
net.ipv6.conf.all.forwarding), ``ipv6_rcv`` hands a unicast datagram that
is not for us (and that no transparent forwarder on its interface takes) to
``ip6_forward`` instead of counting Ip6InAddrErrors.  ip6_forward's rules:

- only what arrived addressed to us at the link layer (PACKET_HOST), never a
  multicast destination (no multicast routing) -> Ip6InAddrErrors;
- a link-local destination is its link's (RFC 4291 2.5.6: never forwarded)
  -> Ip6InAddrErrors; an unspecified or loopback source likewise;
- hop limit 1 or 0: ICMPv6 time exceeded (code 0, hop limit exceeded in
  transit) quoting the datagram, Ip6InHdrErrors;
- the route: none is ICMPv6 destination unreachable (code 0, no route) and
  Ip6InNoRoutes (ip6_pkt_discard);
- a link-local source leaving by another link: destination unreachable code
  2 (beyond the scope of the source address), Ip6InAddrErrors;
- larger than the outgoing link's MTU (at least 1280; routers never
  fragment, RFC 8200 5): ICMPv6 Packet Too Big carrying that MTU,
  Ip6InTooBigErrors and Ip6FragFails;
- otherwise the hop limit goes down by one (no checksum in the IPv6
  header), Ip6OutForwDatagrams, and out through ND on Ethernet.

No redirects (Linux sends them when a datagram leaves by the link it came
in on; as for IPv4, a stack embedded in an application has no use for
them).  Extension headers are not looked at (a router does not process
them, RFC 8200 4; hop-by-hop options' router alert is not supported).  A
TCP aggregate a device received whole (a TAP's TSO6 super-frame) is judged
by its segments and cut into them (software GSO) when they fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpio.core.icmp_h import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_EXC_HOPLIMIT,
    ICMPV6_NOROUTE,
    ICMPV6_NOT_NEIGHBOUR,
    ICMPV6_PKT_TOOBIG,
    ICMPV6_TIME_EXCEED,
)
from tcpio.core.in_h import IPPROTO_TCP
from tcpio.core.ip6_output import ip6_finish_output2
from tcpio.core.ipv6 import IPV6_HLEN, IPV6_MIN_MTU, is_linklocal6, is_multicast6
from tcpio.devices import virtio_net as vnet

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface



def ip6_forward(host: Host, iface: Interface, packet: bytes | bytearray | memoryview,
                ip6h: Any, link_bcast: bool) -> None:
    """Forward one datagram that is not for us (see the module docstring);
    ``packet`` is the datagram trimmed to its payload length."""
    mib = host.mib
    src, dst = ip6h.src, ip6h.dst
    if link_bcast or is_multicast6(dst) or is_linklocal6(dst) or src == 0 or src == 1:
        mib["Ip6InAddrErrors"] += 1
        return
    if ip6h.hlim <= 1:
        mib["Ip6InHdrErrors"] += 1
        host.icmp6_send(packet, ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT)
        return
    try:
        route = host.route6_lookup(dst)
    except OSError:
        mib["Ip6InNoRoutes"] += 1
        host.icmp6_send(packet, ICMPV6_DEST_UNREACH, ICMPV6_NOROUTE)
        return
    out = host.interfaces.get(route.ifindex)
    if out is None:                         # lo: a local route for a non-local address?
        mib["Ip6InAddrErrors"] += 1
        return
    if is_linklocal6(src) and out.ifindex != iface.ifindex:
        mib["Ip6InAddrErrors"] += 1
        host.icmp6_send(packet, ICMPV6_DEST_UNREACH, ICMPV6_NOT_NEIGHBOUR)
        return
    # ip6_dst_mtu_maybe_forward: the outgoing device's MTU, not a learned path MTU
    mtu = max(out.mtu, IPV6_MIN_MTU)
    frame = packet.obj if isinstance(packet, memoryview) else packet
    gso_size = getattr(frame, "gso_size", 0)
    if len(packet) > mtu and gso_size and ip6h.nexthdr == IPPROTO_TCP and len(packet) >= 60 \
            and IPV6_HLEN + ((packet[52] >> 4) << 2) + gso_size <= mtu:
        # a TSO6 aggregate a device received whole, whose segments fit: judged
        # by its segments (skb_gso_validate_network_len) and cut into them
        datagram = bytearray(packet)
        datagram[7] -= 1                    # hop limit, then the device's software GSO
        mib["Ip6OutForwDatagrams"] += 1
        for seg in vnet.gso_segment(datagram, vnet.gso_hdr_for(datagram, gso_size, ether=False,
                                                                 partial=False), ether=False):
            ip6_finish_output2(host, out, route, dst, seg)
        return
    if len(packet) > mtu:
        mib["Ip6InTooBigErrors"] += 1
        mib["Ip6FragFails"] += 1
        host.icmp6_send(packet, ICMPV6_PKT_TOOBIG, 0, mtu)
        return
    datagram = bytearray(packet)
    datagram[7] -= 1                        # hop limit: no header checksum to mend
    mib["Ip6OutForwDatagrams"] += 1
    ip6_finish_output2(host, out, route, dst, datagram)
