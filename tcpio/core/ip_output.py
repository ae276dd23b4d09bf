"""IPv4 output: ip_queue_xmit / ip_output / ip_fragment / ip_finish_output2.

A locally generated datagram is routed (longest prefix match), given a
source address and an IP ID, fragmented if it does not fit the interface MTU
(unless DF is set: then the sender gets EMSGSIZE, as a UDP sendto does on
Linux), and handed to the neighbour layer (ARP) or straight to the link.
Datagrams to one of our own addresses take the loopback path, and a copy of
every broadcast we send does too (ip_mc_output).
"""

from __future__ import annotations

import errno
import random
from typing import TYPE_CHECKING

from tcpio import _fast
from tcpio.core.addr import BROADCAST_MAC, is_multicast
from tcpio.core.errors import sock_error
from tcpio.core.ether import ETH_P_IP, multicast_mac
from tcpio.core.ip_input import IP_HLEN

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface
    from tcpio.core.route import Route

ip_build = _fast.load("tx").ip_build

IP_MAX_LEN = 65535
IP_IDENTS_SZ = 2048


class IpIdents:
    """IP IDs like Linux's ip_idents: a keyed array of counters, one per bucket.

    Each (destination, protocol) pair maps to one of 2048 counters that start
    at random values, so IDs are unique per destination for 65536 datagrams
    and not predictable across destinations (RFC 6864 / RFC 7739 concerns).
    """

    def __init__(self, rng: random.Random) -> None:
        self._key = rng.getrandbits(32) | 1
        self._ids = [rng.getrandbits(16) for _ in range(IP_IDENTS_SZ)]

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


def ip_output(host: Host, proto: int, src: int | None, dst: int,
              payload: bytes | bytearray | memoryview, ttl: int, tos: int, df: bool) -> None:
    mib = host.mib
    try:
        route = host.route_lookup(dst)
    except OSError:
        mib["OutNoRoutes"] += 1
        raise
    mib["OutRequests"] += 1
    if not src:
        src = route.src
    length = IP_HLEN + len(payload)
    if length > IP_MAX_LEN:
        mib["OutDiscards"] += 1
        raise sock_error(errno.EMSGSIZE)
    ident = host.ip_ids.next(dst, proto)
    if host.is_local_address(dst):
        host.loopback(build_packet(proto, src, dst, ident, ttl, tos, df, False, 0, payload))
        return
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
                host.xmit(iface.ifindex, ip_build(mac, iface.mac, proto, src, dst, ident, ttl,
                                                  tos, df, False, 0, payload))
                return
        neigh_output(host, iface, route, dst,
                     build_packet(proto, src, dst, ident, ttl, tos, df, False, 0, payload))
        return
    # ip_fragment: every fragment but the last carries a multiple of 8 bytes.
    step = (mtu - IP_HLEN) & ~7
    view = memoryview(payload)
    total = len(view)
    for offset in range(0, total, step):
        chunk = view[offset:offset + step]
        more = offset + step < total
        neigh_output(host, iface, route, dst,
                     build_packet(proto, src, dst, ident, ttl, tos, False, more, offset, chunk))
        mib["FragCreates"] += 1
    mib["FragOKs"] += 1


def neigh_output(host: Host, iface: Interface, route: Route, dst: int,
                 packet: bytes | bytearray) -> None:
    """ip_finish_output2: pick the link-layer destination."""
    if iface.link != "ether":
        host.xmit(iface.ifindex, packet)
    elif host.is_broadcast(dst):
        host.ether_xmit(iface, BROADCAST_MAC, ETH_P_IP, packet)
    elif is_multicast(dst):
        host.ether_xmit(iface, multicast_mac(dst), ETH_P_IP, packet)
    else:
        nexthop = route.gateway if route.gateway is not None else dst
        host.arp.output(iface, nexthop, packet)
