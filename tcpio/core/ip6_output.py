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

``ip6_tcp_path`` and ``ip6_queue_xmit_tcp`` are ip_output's whole-frame
short cut for TCP over IPv6 (issue 17): a cached route and a connected
neighbour, the frame built in one compiled call (``tx.tcp_frame6``), the
same bytes and counters as ip6_output gives the segment.

As for IPv4 (ip_output.py), each output function returns the device
queue's NET_XMIT_* answer (qdisc.py) to its caller, and a refused fragment
stops the rest of its datagram (ip6_fragment's "if (err) goto fail").
"""

from __future__ import annotations

import errno
import hashlib
from typing import TYPE_CHECKING

from tcpio import _fast
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
from tcpio.core.neighbour import HH_STATES
from tcpio.core.qdisc import NET_XMIT_SUCCESS
from tcpio.core.route import tcp_dst_cached

if TYPE_CHECKING:
    from tcpio._fast.tx_py import TcpDst
    from tcpio.core.host import Host, Interface
    from tcpio.core.protocol import NetHost6, TcpXmitPath
    from tcpio.core.route import Route

tcp_frame6 = _fast.load("tx").tcp_frame6
_TcpDst = _fast.load("tx").TcpDst
# ip6_tcp_dst's key in Host._tcp_paths: above any IPv4 one (TCP's V6TAG)
V6_KEY = 1 << 128
_NEVER = float("inf")

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
               dontfrag: bool, ifindex: int | None) -> int:
    """ip6_xmit / ip6_send_skb: route, fragment and send one datagram; its
    NET_XMIT_* status (ip_output.ip_output's rules)."""
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
        return NET_XMIT_SUCCESS
    iface = host.interfaces[route.ifindex]
    mtu = route.mtu
    if IPV6_HLEN + plen <= mtu:
        return ip6_finish_output2(host, iface, route, dst,
                                  build_ipv6hdr(proto, src, dst, plen, hlim, tclass) + payload)
    if dontfrag:
        mib["Ip6FragFails"] += 1
        raise sock_error(errno.EMSGSIZE, f"datagram of {IPV6_HLEN + plen} bytes over MTU {mtu}")
    return ip6_fragment(host, iface, route, proto, src, dst, payload, hlim, tclass, mtu)


def ip6_fragment(host: Host, iface: Interface, route: Route, proto: int, src: int, dst: int,
                 payload: bytes | bytearray | memoryview, hlim: int, tclass: int,
                 mtu: int) -> int:
    """The source's fragmentation (RFC 8200 4.5): the whole payload is the
    fragmentable part (we add no extension headers of our own).  A refused
    fragment ends it (Ip6FragFails, its status returned)."""
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
        rc = ip6_finish_output2(host, iface, route, dst, packet)
        if rc:
            mib["Ip6FragFails"] += 1
            return rc
        mib["Ip6FragCreates"] += 1
    mib["Ip6FragOKs"] += 1
    return NET_XMIT_SUCCESS


def ip6_finish_output2(host: Host, iface: Interface, route: Route, dst: int,
                       packet: bytes | bytearray) -> int:
    """The link-layer destination: none on an "ip" link, the group's MAC, or
    ND; the frame's NET_XMIT_* status (success too when it waits for ND)."""
    if iface.link != "ether":
        return host.xmit(iface.ifindex, packet)
    if is_multicast6(dst):
        host.mib["Ip6OutMcastPkts"] += 1
        return host.ether_xmit(iface, multicast_mac6(dst), ETH_P_IPV6, packet)
    return host.ndisc.output(iface, route.gateway if route.gateway is not None else dst,
                             packet)


def ip6_tcp_path(host: Host, dst: int, length: int) -> TcpXmitPath | None:
    """Where TCP datagrams of up to ``length`` bytes (IPv6 header included)
    to ``dst`` go when each can leave as one whole frame now: ``(ifindex,
    dst_mac, src_mac, src)`` as ip_output.ip_tcp_path gives for IPv4 (MACs
    None on an "ip" link, ``src`` the route's source).  None, having changed
    nothing, when ip6_output's general path is needed: no route or no
    source, to ourselves (lo), multicast, above the path MTU (the source
    fragments), or a neighbour ND has not confirmed (ndisc.output queues or
    probes).  From the destination's TcpDst (ip6_tcp_dst)."""
    d = ip6_tcp_dst(host, dst)
    if d is None or length > d.limit:
        return None
    if d.neigh is not None:
        d.neigh.used = host.now     # as NeighTable.hh_lookup stamps it
    return d.path


def ip6_tcp_dst(host: Host, dst: int) -> TcpDst | None:
    """ip_output.ip_tcp_dst for IPv6 (``dst`` the 128-bit address): the
    destination's TcpDst, kept in ``host._tcp_paths`` under ``dst |
    V6_KEY`` and valid while the host's route generation stands still and a
    learned path MTU (pmtu6) has not expired; None with no route or a
    neighbour ND has not confirmed."""
    return tcp_dst_cached(host, dst | V6_KEY, dst, _tcp_dst6_new)


def _tcp_dst6_new(host: Host, dst: int) -> TcpDst | None:
    gen = host.dst_gen
    try:
        route = host.route6_lookup(dst)
    except OSError:
        return None         # ip6_output counts Ip6OutNoRoutes
    learned = host.pmtu6.get(dst)
    expires = learned[1] if learned is not None else _NEVER
    if route.ifindex == 0 or is_multicast6(dst) or not route.src:
        return _TcpDst(gen, dst | V6_KEY, route.mtu, -1, None, None, None, 0, False, expires)
    iface = host.interfaces[route.ifindex]
    neigh = None
    if iface.link == "ether":
        neigh = host.ndisc.lookup(iface.ifindex,
                                  route.gateway if route.gateway is not None else dst)
        if neigh is None or not neigh.state & HH_STATES:
            return None
        neigh.used = host.now
        path: TcpXmitPath = (iface.ifindex, neigh.mac, iface.mac, route.src)
    else:
        path = (iface.ifindex, None, None, route.src)
    gso_max, csum_partial = host.gso_caps(iface.ifindex, True)
    return _TcpDst(gen, dst | V6_KEY, route.mtu, min(route.mtu, IPV6_MAXPLEN + IPV6_HLEN), path,
                   neigh, host._tx_stopped, gso_max, csum_partial, expires)


def ip6_queue_xmit_tcp(host: NetHost6, src: int, dst: int, sport: int, dport: int, seq: int,
                       ack: int, flags: int, window: int, ts_val: int, ts_ecr: int,
                       sack_blocks: tuple[tuple[int, int], ...],
                       payload: bytes | bytearray | memoryview, urg_ptr: int) -> int | None:
    """ip_output.ip_queue_xmit_tcp over IPv6 (``src``/``dst`` the 128-bit
    addresses): one TCP segment sent as a whole frame built by one compiled
    call when ``ip6_tcp_path`` allows, with the frame and the counters of
    ``build_tcp`` + ip6_output for it; its NET_XMIT_* status.  None, having
    sent and counted nothing, when the segment needs ip6_output's general
    path."""
    length = (IPV6_HLEN + 20 + len(payload) + (12 if ts_val != -1 else 0)
              + (4 + 8 * len(sack_blocks) if sack_blocks else 0))
    path = host.ip6_tcp_path(dst, length)
    if path is None:
        return None
    ifindex, dst_mac, src_mac, route_src = path
    frame = tcp_frame6(dst_mac, src_mac, src or route_src, dst, host.settings.ipv6_hop_limit,
                       sport, dport, seq, ack, flags, window, ts_val, ts_ecr, sack_blocks,
                       payload, urg_ptr)
    mib = host.mib
    mib["Ip6OutRequests"] += 1
    if dst_mac is not None:
        mib["EthOutFrames"] += 1
    return host.xmit(ifindex, frame)
