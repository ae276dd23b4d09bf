"""IPv4 output: ip_queue_xmit / ip_output / ip_fragment / ip_finish_output2.

A locally generated datagram is routed (longest prefix match), given a
source address and an IP ID, fragmented if it does not fit the interface MTU
(unless DF is set: then the sender gets EMSGSIZE, as a UDP sendto does on
Linux), and handed to the neighbour layer (ARP) or straight to the link.
Datagrams to 127/8 or to one of our own addresses take the loopback path
(``Host.loopback``: lo's backlog, never a device; a 127/8 source towards
anything else is refused with EINVAL as Linux's __mkroute_output does), and a
copy of every broadcast we send does too (ip_mc_output).

TCP's segments after the handshake take ``ip_queue_xmit_tcp`` first: with a
cached route and a resolved neighbour the whole frame (Ethernet, IPv4, TCP)
is built by one compiled call; anything unusual goes through ``ip_output``.

Every output function returns the device queue's answer (NET_XMIT_*,
qdisc.py) to its caller, as ip_finish_output2 -> ip_local_out ->
ip_queue_xmit do in Linux; errors before the device (no route, EMSGSIZE)
are raised.
"""

from __future__ import annotations

import errno
import random
from typing import TYPE_CHECKING

from tcpio import _fast
from tcpio.core.addr import BROADCAST_MAC, is_multicast
from tcpio.core.errors import sock_error
from tcpio.core.ether import ETH_P_IP, multicast_mac
from tcpio.core.in_h import IPPROTO_TCP
from tcpio.core.ip_input import IP_HLEN, IP_MAX_LEN
from tcpio.core.neighbour import HH_STATES
from tcpio.core.qdisc import NET_XMIT_SUCCESS
from tcpio.core.route import tcp_dst_cached

if TYPE_CHECKING:
    from tcpio._fast.tx_py import TcpDst
    from tcpio.core.host import Host, Interface
    from tcpio.core.protocol import NetHost, TcpXmitPath
    from tcpio.core.route import Route

_tx = _fast.load("tx")
ip_build = _tx.ip_build
tcp_frame = _tx.tcp_frame
# the host's route generation (Host.dst_gen)
DstGen = _tx.DstGen
# a TcpDst with no learned path MTU does not expire
_NEVER = float("inf")

IP_IDENTS_SZ = 2048
# ``ident`` for a datagram no connected socket sends (ip_select_ident_segs
# with no sk, or one without inet_daddr: a listener, TCP's control socket)
IP_ID_NO_SOCK = -1


class IpIdents:
    """IP IDs like Linux's ip_idents: a keyed array of counters, one per bucket.

    Each (destination, protocol) pair maps to one of 2048 counters that start
    at random values, so IDs are unique per destination for 65536 datagrams
    and not predictable across destinations (RFC 6864 / RFC 7739 concerns).
    """

    def __init__(self, rng: random.Random) -> None:
        self._key = rng.getrandbits(32) | 1
        self._ids = [rng.getrandbits(16) for _ in range(IP_IDENTS_SZ)]
        # get_random_u16 for a socket's first ID (inet_id): seeded from what
        # was drawn above, so the host's rng stream is the same as before
        self._rand = random.Random(self._key << 16 | self._ids[0])

    def random_u16(self) -> int:
        """get_random_u16: the random start of a connected socket's IDs
        (tcp_v4_connect, tcp_v4_syn_recv_sock) or a SYN-ACK's ID without DF."""
        return self._rand.getrandbits(16)

    def bucket(self, dst: int, proto: int) -> int:
        """Index of the counter for (dst, proto) in ``counters``."""
        h = ((dst ^ (proto << 24)) * self._key) & 0xFFFFFFFF
        return (h ^ (h >> 16)) % IP_IDENTS_SZ

    @property
    def counters(self) -> list[int]:
        """The counters themselves: the last ID given out per bucket (the TCP
        send loop takes consecutive IDs from one bucket without a call each)."""
        return self._ids

    def next(self, dst: int, proto: int) -> int:
        h = ((dst ^ (proto << 24)) * self._key) & 0xFFFFFFFF
        i = (h ^ (h >> 16)) % IP_IDENTS_SZ
        ident = (self._ids[i] + 1) & 0xFFFF
        self._ids[i] = ident
        return ident


def build_packet(proto: int, src: int, dst: int, ident: int, ttl: int, tos: int, df: bool,
                 mf: bool, offset: int, chunk: bytes | bytearray | memoryview) -> bytes:
    """A bare IPv4 datagram (no options): one compiled call, one copy of ``chunk``."""
    return ip_build(None, None, proto, src, dst, ident, ttl, tos, df, mf, offset, chunk)


def ip_select_ident(host: NetHost, dst: int, proto: int, df: bool, ident: int) -> int:
    """ip_select_ident_segs for one datagram: a connected socket's own counter
    (``ident`` >= 0, its inet_id, taken by the caller); without one, 0 when DF
    is set (a datagram that is never fragmented needs no ID, RFC 6864 4.1;
    Linux since 4.1 does this rather than leak a shared counter), else the
    hashed ip_idents counter for (dst, proto)."""
    if ident >= 0:
        return ident
    return 0 if df else host.ip_ids.next(dst, proto)


def ip_output(host: Host, proto: int, src: int | None, dst: int,
              payload: bytes | bytearray | memoryview, ttl: int, tos: int, df: bool,
              ident: int = IP_ID_NO_SOCK) -> int:
    """ip_queue_xmit / ip_send_skb: route, fragment and send one datagram;
    the status of its frame (the first refused fragment's: the rest are not
    sent, as ip_do_fragment stops on an error), NET_XMIT_SUCCESS for a
    datagram to ourselves (loopback_xmit takes everything)."""
    mib = host.mib
    try:
        route = host.route_lookup(dst)
    except OSError:
        mib["OutNoRoutes"] += 1
        raise
    if not src:
        src = route.src
    elif src >> 24 == 127 and route.ifindex != host.lo.ifindex:
        # __mkroute_output: a 127/8 source only through lo (RFC 1122 3.2.1.3:
        # 127/8 must not appear outside a host); Linux fails the route with
        # EINVAL before anything is counted or sent.
        raise sock_error(errno.EINVAL, "127/8 source towards a non-local destination")
    mib["OutRequests"] += 1
    length = IP_HLEN + len(payload)
    if length > IP_MAX_LEN:
        mib["OutDiscards"] += 1
        raise sock_error(errno.EMSGSIZE)
    ident = ip_select_ident(host, dst, proto, df, ident)
    if host.is_local_address(dst):
        # RTN_LOCAL: ip_local_out over lo (loopback_xmit), never a device;
        # lo's MTU is 64 KiB, so nothing under IP_MAX_LEN is fragmented.
        host.loopback(build_packet(proto, src, dst, ident, ttl, tos, df, False, 0, payload))
        return NET_XMIT_SUCCESS
    iface = host.interfaces[route.ifindex]
    mtu = route.mtu
    if df and length > mtu:
        mib["FragFails"] += 1
        raise sock_error(errno.EMSGSIZE, f"datagram of {length} bytes over MTU {mtu} with DF")
    bcast = host.is_broadcast(dst)
    if bcast:
        # ip_mc_output: the local stack gets a copy of every broadcast it sends
        # (the kernel's RTCF_BROADCAST clone), as well as the link.
        host.loopback(build_packet(proto, src, dst, ident, ttl, tos, df, False, 0, payload))
    if length <= mtu:
        if iface.link == "ether" and not bcast and not is_multicast(dst):
            # The common case: a resolved neighbour.  Build the whole frame in one
            # call and one copy (the kernel's cached hard header), instead of an
            # IP packet that ether_xmit then copies again behind a header.
            mac = host.arp.hh_lookup(iface.ifindex,
                                     route.gateway if route.gateway is not None else dst)
            if mac is not None:
                mib["EthOutFrames"] += 1
                return host.xmit(iface.ifindex, ip_build(mac, iface.mac, proto, src, dst, ident,
                                                         ttl, tos, df, False, 0, payload))
        return neigh_output(host, iface, route, dst,
                            build_packet(proto, src, dst, ident, ttl, tos, df, False, 0, payload))
    # ip_fragment: every fragment but the last carries a multiple of 8 bytes.
    step = (mtu - IP_HLEN) & ~7
    view = memoryview(payload)
    total = len(view)
    for offset in range(0, total, step):
        chunk = view[offset:offset + step]
        more = offset + step < total
        rc = neigh_output(host, iface, route, dst,
                          build_packet(proto, src, dst, ident, ttl, tos, False, more, offset,
                                       chunk))
        if rc:
            # ip_do_fragment: "err = output(...); if (err) goto fail": the
            # rest of a datagram that cannot be reassembled is not sent
            mib["FragFails"] += 1
            return rc
        mib["FragCreates"] += 1
    mib["FragOKs"] += 1
    return NET_XMIT_SUCCESS


def neigh_output(host: Host, iface: Interface, route: Route, dst: int,
                 packet: bytes | bytearray) -> int:
    """ip_finish_output2: pick the link-layer destination; the frame's
    NET_XMIT_* status (success too when it waits for ARP)."""
    if iface.link != "ether":
        return host.xmit(iface.ifindex, packet)
    if host.is_broadcast(dst):
        return host.ether_xmit(iface, BROADCAST_MAC, ETH_P_IP, packet)
    if is_multicast(dst):
        return host.ether_xmit(iface, multicast_mac(dst), ETH_P_IP, packet)
    nexthop = route.gateway if route.gateway is not None else dst
    return host.arp.output(iface, nexthop, packet)


def ip_tcp_path(host: Host, dst: int, length: int) -> TcpXmitPath | None:
    """Where TCP datagrams of up to ``length`` bytes to ``dst`` go when each can
    leave as one whole frame now: ``(ifindex, dst_mac, src_mac, src)`` (MACs
    None on an "ip" link, ``src`` the route's source address).

    The kernel's ip_queue_xmit with the route cached on the socket and
    neigh_hh_output for a connected neighbour: a unicast, non-local
    destination that fits the route MTU, on an Ethernet link with a resolved
    neighbour or on an "ip" link.  None, having changed nothing, when the
    datagram needs ip_output's general path (no route, loopback, broadcast or
    multicast, fragmentation, ARP resolution), which does all of that and
    counts it.  The answer comes from the destination's ``TcpDst``
    (ip_tcp_dst), looked up again only when the host's generation moved.
    """
    if host.settings.ip_no_pmtu_disc:
        return None         # whole TCP frames carry DF: without PMTU discovery, ip_output
    d = ip_tcp_dst(host, dst)
    if d is None or length > d.limit:
        return None         # fragmentation, or EMSGSIZE; a locked MTU: DF as the socket wants
    if d.neigh is not None:
        d.neigh.used = host.now     # as NeighTable.hh_lookup stamps it
    return d.path


def ip_tcp_dst(host: Host, dst: int) -> TcpDst | None:
    """The ``TcpDst`` of TCP datagrams to ``dst`` (tx.TcpDst: the route's
    MTU, where whole frames go, the device's TSO caps), as a socket caches it
    (sk_dst_cache: tcp_fast.sk_dst_check keeps it until ``Host.dst_gen``
    moves); one per destination in ``host._tcp_paths``.  None when nothing
    may be cached: no route (TCP's route_mtu then says 576 and ip_output
    counts OutNoRoutes) or a neighbour not in a connected state (ip_output
    resolves it: a TcpDst is made once it is)."""
    return tcp_dst_cached(host, dst, dst, _tcp_dst_new)


def _tcp_dst_new(host: Host, dst: int) -> TcpDst | None:
    """ip_tcp_dst's lookup: the route, its interface and neighbour now."""
    gen = host.dst_gen
    try:
        route = host.route_lookup(dst)
    except OSError:
        return None
    expires = _NEVER
    if host.pmtu:
        learned = host.pmtu.get(dst)    # (route_lookup dropped it if it had expired)
        if learned is not None:
            expires = learned[1]        # the route's MTU grows back then
    if route.ifindex == host.lo.ifindex or host.is_broadcast(dst) or is_multicast(dst):
        # ours, a broadcast or a multicast: never whole (ip_output's loopback
        # and link-layer copies)
        return _tx.TcpDst(gen, dst, route.mtu, -1, None, None, None, 0, False, expires)
    iface = host.interfaces[route.ifindex]
    neigh = None
    if iface.link == "ether":
        neigh = host.arp.lookup(iface.ifindex,
                                route.gateway if route.gateway is not None else dst)
        if neigh is None or not neigh.state & HH_STATES:
            return None         # neigh_output's slow case: arp.output queues or probes
        neigh.used = host.now
        path: TcpXmitPath = (iface.ifindex, neigh.mac, iface.mac, route.src)
    else:
        path = (iface.ifindex, None, None, route.src)
    gso_max, csum_partial = host.gso_caps(iface.ifindex)
    return _tx.TcpDst(gen, dst, route.mtu,
                      -1 if route.mtu_locked else min(route.mtu, IP_MAX_LEN),
                      path, neigh, host._tx_stopped, gso_max, csum_partial, expires)


def ip_queue_xmit_tcp(host: NetHost, src: int, dst: int, sport: int, dport: int, seq: int,
                      ack: int, flags: int, window: int, ts_val: int, ts_ecr: int,
                      sack_blocks: tuple[tuple[int, int], ...],
                      payload: bytes | bytearray | memoryview, urg_ptr: int,
                      ident: int = IP_ID_NO_SOCK) -> int | None:
    """Send one TCP segment (header fields and options as ``tx.tcp_frame`` takes
    them) as a whole frame built by one compiled call, when the host's
    ``ip_tcp_path`` allows.  The frame and the MIB counters are
    exactly those of ``build_tcp`` + ``ip_output`` (DF set) for the same
    segment and ``ident`` (ip_select_ident).  Returns the frame's NET_XMIT_*
    status (ip_queue_xmit's).

    Returns None, having sent and counted nothing, when the segment needs
    ip_output's general path: the caller then builds the segment and calls it.
    """
    # IPv4 header + TCP header + timestamp option (12) + SACK option (4 + 8 per block)
    length = (IP_HLEN + 20 + len(payload) + (12 if ts_val != -1 else 0)
              + (4 + 8 * len(sack_blocks) if sack_blocks else 0))
    path = host.ip_tcp_path(dst, length)
    if path is None:
        return None
    ifindex, dst_mac, src_mac, route_src = path
    frame = tcp_frame(dst_mac, src_mac, src or route_src, dst,
                      ip_select_ident(host, dst, IPPROTO_TCP, True, ident),
                      host.settings.ip_default_ttl,
                      sport, dport, seq, ack, flags, window, ts_val, ts_ecr, sack_blocks,
                      payload, urg_ptr)
    mib = host.mib
    mib["OutRequests"] += 1
    if dst_mac is not None:
        mib["EthOutFrames"] += 1
    return host.xmit(ifindex, frame)
