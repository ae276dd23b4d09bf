"""IPv6 input (net/ipv6/ip6_input.c, exthdrs.c): ipv6_rcv's checks, the
extension header chain, local delivery.

ipv6_rcv (RFC 8200 3, RFC 4291): fewer than 40 bytes or a version other than
6, a multicast source, the loopback address or an interface-local group
arriving from a device, or a zero payload length with a hop-by-hop header (a
jumbogram, which no link of ours carries) -> Ip6InHdrErrors; a payload length
past the frame -> Ip6InTruncatedPkts (the frame is trimmed to it otherwise).
Not for us -> Ip6InAddrErrors (our tentative addresses are not ours yet,
RFC 4862 5.4), or to ip6_forward.py with ``Settings.ipv6_forward`` (router
mode), unless the interface has a
transparent forwarder for the datagram's upper protocol (Host.set_tproxy,
issue 18: delivered with ``host.rx_tproxy`` set, as ip_rcv does) or Ip6InDiscards (a multicast
group the interface has not joined; Ip6InMcastPkts counts every multicast).

Extension headers (ip6_input_finish and the exthdrs.c handlers), walked in
order, at most IP6_MAX_EXT_HDRS of them (beyond: Ip6InHdrErrors):
- hop-by-hop options only right after the fixed header; anywhere else it is
  an unknown next header (RFC 8200 4.1);
- options (hop-by-hop, destination) by ip6_parse_tlv: Pad1/PadN (padding
  zero, at most 7 bytes in a row), at most 8 other options, each inside the
  header; an unknown one acts as its two top bits say (RFC 8200 4.2: skip;
  discard; discard + parameter problem code 2 pointing at it; the same
  unless the destination is multicast); router alert is accepted;
- routing: segments left 0 is skipped, otherwise parameter problem code 0
  pointing at the routing type (a host does not forward; RH0 is refused);
- fragment: reassembly.py;
- a header running past the datagram -> Ip6InHdrErrors (no ICMP);
- an upper protocol nobody registered -> Ip6InUnknownProtos and parameter
  problem code 1 pointing at the octet that named it; No Next Header (59)
  ends the datagram.
Every failure of the option and routing handlers counts Ip6InHdrErrors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpio.core.icmp_h import (
    ICMPV6_HDR_FIELD,
    ICMPV6_PARAMPROB,
    ICMPV6_UNK_NEXTHDR,
    ICMPV6_UNK_OPTION,
)
from tcpio.core.in_h import (
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    IPPROTO_TCP,
)
from tcpio.core.ip6_forward import ip6_forward
from tcpio.core.ipv6 import (
    EXT_HDRS,
    IP6_MAX_EXT_HDRS,
    IPV6_HLEN,
    Ip6Skb,
    is_linklocal6,
    is_multicast6,
    parse_ipv6hdr,
)
from tcpio.core.reassembly import ipv6_frag_rcv

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface


IPV6_TLV_PAD1 = 0
IPV6_TLV_PADN = 1
IPV6_TLV_ROUTERALERT = 5
# net.ipv6.max_{hbh,dst}_opts_number's default: non-padding options per header.
IP6_DEFAULT_MAX_OPTS_CNT = 8
# At most 7 bytes of padding in a row (ip6_parse_tlv: more is an attack).
IPV6_MAX_PADLEN = 7


def ipv6_rcv(host: Host, iface: Interface, packet: bytes | bytearray | memoryview, now: float,
             link_bcast: bool, loopback: bool = False) -> None:
    mib = host.mib
    mib["Ip6InReceives"] += 1
    n = len(packet)
    if n < IPV6_HLEN or packet[0] >> 4 != 6:
        mib["Ip6InHdrErrors"] += 1
        return
    ip6h = parse_ipv6hdr(packet)
    src = ip6h.src
    dst = ip6h.dst
    mcast = is_multicast6(dst)
    if is_multicast6(src) or (not loopback and (
            dst == 1 or src == 1 or (mcast and (dst >> 112) & 0xF == 1))):
        mib["Ip6InHdrErrors"] += 1
        return
    plen = ip6h.plen
    if plen == 0 and host.rx_gso_size and ip6h.nexthdr == IPPROTO_TCP:
        # ipv6_payload_len: a TCP super-frame past 64 KiB (BIG TCP) says 0
        # and is as long as its buffer
        plen = n - IPV6_HLEN
    if plen == 0 and ip6h.nexthdr == IPPROTO_HOPOPTS:
        mib["Ip6InHdrErrors"] += 1          # a jumbogram (RFC 2675): not on our links
        return
    if IPV6_HLEN + plen > n:
        mib["Ip6InTruncatedPkts"] += 1
        return
    if mcast:
        mib["Ip6InMcastPkts"] += 1
        if dst not in iface.ip6.groups:
            mib["Ip6InDiscards"] += 1
            return
    else:
        where = host.local6.get(dst)
        if where is None and not (loopback and dst == 1):
            # Someone else's datagram: ours to terminate only when the
            # interface has a transparent forwarder for its upper protocol
            # (Host.set_tproxy, as ip_rcv; the protocol is known once the
            # extension headers are walked).  A link-local destination is
            # its link's, never a forwarded flow's.
            tp = iface.tproxy
            nexthdr = ip6h.nexthdr
            host.rx_link_bcast = link_bcast
            host.rx_iif6 = iface.ifindex
            if tp is not None and not loopback and not is_linklocal6(dst) and (
                    nexthdr in tp or nexthdr in EXT_HDRS or (
                        nexthdr == IPPROTO_ICMPV6 and IPPROTO_TCP in tp
                        and plen > 0 and packet[IPV6_HLEN] < 128)):     # an ICMPv6 error
                ip6_input_finish(host, iface, memoryview(packet)[:IPV6_HLEN + plen], now,
                                 False, tp)
            elif host.settings.ipv6_forward and not loopback:
                # router mode (ip6_forward.py): forwarded or answered with ICMPv6
                ip6_forward(host, iface, memoryview(packet)[:IPV6_HLEN + plen], ip6h,
                            link_bcast)
            else:
                mib["Ip6InAddrErrors"] += 1
            return
        if where is not None and is_linklocal6(dst) and where != iface.ifindex and not loopback:
            mib["Ip6InAddrErrors"] += 1     # a link-local address is only its link's
            return
    host.rx_link_bcast = link_bcast
    host.rx_iif6 = iface.ifindex        # where an ICMPv6 error about it goes back out
    ip6_input_finish(host, iface, memoryview(packet)[:IPV6_HLEN + plen], now, mcast)


def ip6_input_finish(host: Host, iface: Interface, packet: bytes | bytearray | memoryview,
                     now: float, mcast: bool, tproxy: dict[int, Any] | None = None) -> None:
    """The extension header chain, then the upper protocol (module docstring).
    ``tproxy``: the interface's forwarders, for a datagram to a non-local
    address (delivered with ``host.rx_tproxy`` set, or Ip6InAddrErrors)."""
    mib = host.mib
    ip6h = parse_ipv6hdr(packet)
    nexthdr = ip6h.nexthdr
    off = IPV6_HLEN
    nhoff = 6               # where the type of the header at ``off`` is written
    count = 0
    while True:
        n = len(packet)
        if nexthdr == IPPROTO_FRAGMENT:
            count += 1
            if count > IP6_MAX_EXT_HDRS:
                mib["Ip6InHdrErrors"] += 1
                return
            done = ipv6_frag_rcv(host, packet, ip6h, off, nhoff, now)
            if done is None:
                return
            packet, off, nhoff = done
            if len(packet) != n:
                ip6h = parse_ipv6hdr(packet)        # reassembled: the new length
            nexthdr = packet[nhoff]
            continue
        if nexthdr == IPPROTO_DSTOPTS or nexthdr == IPPROTO_ROUTING or (
                nexthdr == IPPROTO_HOPOPTS and off == IPV6_HLEN):
            count += 1
            if count > IP6_MAX_EXT_HDRS or off + 8 > n:
                mib["Ip6InHdrErrors"] += 1
                return
            hdrlen = (packet[off + 1] + 1) << 3
            if off + hdrlen > n:
                mib["Ip6InHdrErrors"] += 1
                return
            if nexthdr == IPPROTO_ROUTING:
                if packet[off + 3]:
                    # Segments left: we would have to forward (ipv6_rthdr_rcv's unknown_rh).
                    mib["Ip6InHdrErrors"] += 1
                    host.icmp6_send(packet, ICMPV6_PARAMPROB, ICMPV6_HDR_FIELD, off + 2)
                    return
            elif not ip6_parse_tlv(host, packet, off, hdrlen, mcast):
                mib["Ip6InHdrErrors"] += 1
                return
            nhoff = off
            nexthdr = packet[off]
            off += hdrlen
            continue
        break
    if tproxy is not None:
        fwd = tproxy.get(nexthdr)
        if fwd is None and nexthdr == IPPROTO_ICMPV6 and len(packet) > off \
                and packet[off] < 128:
            fwd = tproxy.get(IPPROTO_TCP)   # an ICMPv6 error, maybe about a forwarded flow
        handler = host.protocols6.get(nexthdr)
        if fwd is None or handler is None:
            mib["Ip6InAddrErrors"] += 1
            return
        mib["Ip6InDelivers"] += 1
        host.rx_tproxy = fwd
        try:
            handler.rcv(Ip6Skb(ip6h, packet, nexthdr, off, iface.ifindex),
                        memoryview(packet)[off:], now)
        finally:
            host.rx_tproxy = None
        return
    if nexthdr == IPPROTO_NONE:
        mib["Ip6InDelivers"] += 1
        return
    handler = host.protocols6.get(nexthdr)
    if handler is None:
        mib["Ip6InUnknownProtos"] += 1
        host.icmp6_send(packet, ICMPV6_PARAMPROB, ICMPV6_UNK_NEXTHDR, nhoff)
        return
    mib["Ip6InDelivers"] += 1
    handler.rcv(Ip6Skb(ip6h, packet, nexthdr, off, iface.ifindex),
                memoryview(packet)[off:], now)


def ip6_parse_tlv(host: Host, packet: bytes | bytearray | memoryview, off: int, hdrlen: int,
                  mcast: bool) -> bool:
    """The options of the header at ``off`` (hop-by-hop or destination);
    False: drop the datagram (after a parameter problem, if the option says so)."""
    i = off + 2
    end = off + hdrlen
    padlen = 0
    count = 0
    while i < end:
        kind = packet[i]
        if kind == IPV6_TLV_PAD1:
            padlen += 1
            if padlen > IPV6_MAX_PADLEN:
                return False
            i += 1
            continue
        if i + 2 > end:
            return False
        optlen = packet[i + 1] + 2
        if i + optlen > end:
            return False
        if kind == IPV6_TLV_PADN:
            padlen += optlen
            if padlen > IPV6_MAX_PADLEN or any(packet[i + 2:i + optlen]):
                return False            # RFC 4942 2.1.9.5: padding carries nothing
        else:
            padlen = 0
            count += 1
            if count > IP6_DEFAULT_MAX_OPTS_CNT:
                return False
            if kind != IPV6_TLV_ROUTERALERT and not ip6_tlvopt_unknown(host, packet, i, mcast):
                return False
        i += optlen
    return True


def ip6_tlvopt_unknown(host: Host, packet: bytes | bytearray | memoryview, optoff: int,
                       mcast: bool) -> bool:
    """RFC 8200 4.2's action for an option type we do not know."""
    action = packet[optoff] >> 6
    if action == 0:
        return True                     # skip over it
    if action == 3 and mcast:
        return False
    if action >= 2:
        host.icmp6_send(packet, ICMPV6_PARAMPROB, ICMPV6_UNK_OPTION, optoff)
    return False
