"""IPv4 forwarding (net/ipv4/ip_forward.c: ip_forward, ip_forward_finish): router mode.

With ``Settings.ip_forward`` on (off by default, as the sysctl), ``ip_rcv``
hands a datagram that is not for us (and that no transparent forwarder on
its interface takes) to ``ip_forward`` instead of dropping it:

- only what arrived addressed to us at the link layer (PACKET_HOST: a
  link-level broadcast carrying someone else's unicast is dropped), never a
  multicast destination (no multicast routing here);
- TTL 1 or 0: ICMP time exceeded (code 0, "TTL exceeded in transit") to the
  source, quoting the datagram as it arrived, InHdrErrors;
- the route (fib_lookup): none is ICMP destination unreachable (network) and
  InNoRoutes;
- too big for the outgoing MTU: with DF, ICMP fragmentation needed carrying
  that MTU (RFC 1191) and FragFails; without, ip_fragment as for our own
  datagrams (the fragments keep the original ID, and a fragment's offset and
  MF stay right when a fragment is cut again); options are not copied
  into the fragments (none of ours is a copied option);
- a TCP aggregate a device received whole (``GsoFrame``: a TAP/TUN's GSO
  super-frame, ``gso_size`` its MSS) is judged by its segments: cut back
  into them when they fit the MTU (software GSO), else fragmentation needed;
- otherwise the TTL goes down by one with the header checksum updated
  incrementally (RFC 1624, ip_decrease_ttl), ForwDatagrams, and out through
  the neighbour layer (ARP on Ethernet).

ICMP redirects are not sent (Linux sends them by default; RFC 1812 5.2.7.2
lets a router not to, and a stack embedded in an application has no use
for them).  Martians and broadcasts never get here: ip_rcv drops the first
and delivers the second locally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio.core.addr import is_multicast
from tcpio.core.icmp_h import (
    ICMP_DEST_UNREACH,
    ICMP_EXC_TTL,
    ICMP_FRAG_NEEDED,
    ICMP_NET_UNREACH,
    ICMP_TIME_EXCEEDED,
)
from tcpio.core.in_h import IPPROTO_TCP
from tcpio.core.ip_output import build_packet, neigh_output
from tcpio.devices import virtio_net as vnet

if TYPE_CHECKING:
    from tcpio.core.host import Host

csum = _fast.load("checksum")



def ip_forward(host: Host, iph: Any, packet: bytes | bytearray | memoryview, hlen: int,
               tot_len: int, link_bcast: bool) -> None:
    """Forward one datagram that is not for us (see the module docstring)."""
    mib = host.mib
    dst = iph.dst
    if link_bcast or is_multicast(dst):
        mib["InAddrErrors"] += 1            # not PACKET_HOST / no multicast routing
        return
    payload = memoryview(packet)[hlen:tot_len]
    if iph.ttl <= 1:
        mib["InHdrErrors"] += 1
        host.icmp_send(iph, payload, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL)
        return
    try:
        route = host.route_lookup(dst)
    except OSError:
        mib["InNoRoutes"] += 1
        host.icmp_send(iph, payload, ICMP_DEST_UNREACH, ICMP_NET_UNREACH)
        return
    iface = host.interfaces.get(route.ifindex)
    if iface is None:                       # lo: a local route for a non-local address?
        mib["InAddrErrors"] += 1
        return
    mtu = route.mtu
    if tot_len > mtu and iph.proto == IPPROTO_TCP and not (iph.mf or iph.frag_offset):
        # a received aggregate (GsoFrame: the device's GSO super-frame) is
        # judged by its segments (ip_exceeds_mtu / skb_gso_validate_network_len)
        frame = packet.obj if isinstance(packet, memoryview) else packet
        gso_size = getattr(frame, "gso_size", 0)
        if gso_size:
            _forward_gso(host, iph, packet, payload, hlen, gso_size, iface, route)
            return
    if tot_len > mtu and iph.df:
        mib["FragFails"] += 1
        host.icmp_send(iph, payload, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu)
        return
    mib["ForwDatagrams"] += 1
    if tot_len <= mtu:
        neigh_output(host, iface, route, dst, _decrease_ttl(packet[:tot_len]))
        return
    # ip_fragment of a forwarded datagram: offsets relative to the original
    # datagram, MF kept on the last piece of a fragment that had it
    step = (mtu - 20) & ~7
    total = len(payload)
    base = iph.frag_offset
    for offset in range(0, total, step):
        chunk = payload[offset:offset + step]
        more = offset + step < total or iph.mf
        neigh_output(host, iface, route, dst,
                     build_packet(iph.proto, iph.src, dst, iph.ident, iph.ttl - 1, iph.tos,
                                  False, more, base + offset, chunk))
        mib["FragCreates"] += 1
    mib["FragOKs"] += 1


def _decrease_ttl(datagram: bytes | bytearray | memoryview) -> bytearray:
    """ip_decrease_ttl on a copy: TTL - 1, the header checksum adjusted for the
    16-bit word (TTL, protocol) by RFC 1624."""
    out = bytearray(datagram)
    old = (out[8] << 8) | out[9]
    out[8] -= 1
    check = csum.checksum_update16((out[10] << 8) | out[11], old, (out[8] << 8) | out[9])
    out[10], out[11] = check >> 8, check & 0xFF
    return out


def _forward_gso(host: Host, iph: Any, packet: bytes | bytearray | memoryview,
                 payload: memoryview, hlen: int, gso_size: int, iface: Any,
                 route: Any) -> None:
    """Forward a TCP aggregate whose whole does not fit the MTU: if its
    segments do, cut it into them (software GSO, the segments Linux's output
    path would make); if they do not, it is too big like any DF datagram."""
    mib = host.mib
    thlen = (payload[12] >> 4) * 4 if len(payload) >= 20 else 20
    if hlen + thlen + gso_size > route.mtu:
        mib["FragFails"] += 1
        host.icmp_send(iph, payload, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, route.mtu)
        return
    out = _decrease_ttl(packet[:hlen + len(payload)])
    mib["ForwDatagrams"] += 1
    for seg in vnet.gso_segment(out, vnet.gso_hdr_for(out, gso_size, ether=False,
                                                        partial=False), ether=False):
        neigh_output(host, iface, route, iph.dst, seg)
