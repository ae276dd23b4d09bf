"""ARP (RFC 826), after net/ipv4/arp.c, on the neighbour table of neighbour.py.

The table (states, queueing while INCOMPLETE, aging) is ``NeighTable``; ARP
adds the requests and replies: broadcast requests while INCOMPLETE, unicast
ones to probe, replies for our addresses, gratuitous ARP.  A failed
resolution gives every queued packet's sender EHOSTUNREACH.  ARP has no
DELAY state here (no upper-layer reachability hints for IPv4 yet): a used
STALE entry is probed at once.  Counters: ArpUnresolvedDiscards,
ArpResolveFailed, ArpCacheEvictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio import _fast
from tcpio.core.addr import BROADCAST_MAC, ZERO_MAC, is_multicast
from tcpio.core.ether import ETH_P_ARP, ETH_P_IP
from tcpio.core.neighbour import (  # noqa: F401 - names users and tests import from here
    NUD_FAILED,
    NUD_INCOMPLETE,
    NUD_PERMANENT,
    NUD_PROBE,
    NUD_REACHABLE,
    NUD_STALE,
    STATE_NAMES,
    Neighbour,
    NeighTable,
)

if TYPE_CHECKING:
    from tcpio.core.host import Interface

wire = _fast.load("wire")
ARPOP_REQUEST = wire.ARPOP_REQUEST
ARPOP_REPLY = wire.ARPOP_REPLY

class Arp(NeighTable):
    """The host's IPv4 neighbour table plus ARP input/output."""

    ethertype = ETH_P_IP

    def unreachable(self, packet: bytes | bytearray) -> None:
        self.host.ip_local_error(packet, 3, 1)

    def solicit(self, iface: Interface, n: Neighbour, unicast: bool) -> None:
        host = self.host
        src = host.source_for(iface, n.ip)
        dst_mac = n.mac if unicast and n.mac else BROADCAST_MAC
        self.send(iface, ARPOP_REQUEST, dst_mac, src, ZERO_MAC, n.ip)

    def send(self, iface: Interface, op: int, dst_mac: bytes, spa: int, tha: bytes,
             tpa: int) -> None:
        host = self.host
        host.mib["ArpOutRequests" if op == ARPOP_REQUEST else "ArpOutReplies"] += 1
        host.ether_xmit(iface, dst_mac, ETH_P_ARP, wire.build_arp(op, iface.mac, spa, tha, tpa))

    def gratuitous(self, iface: Interface, ip: int) -> None:
        """Announce ``ip`` (arp_ifup / arping -U): a request with spa == tpa."""
        self.send(iface, ARPOP_REQUEST, BROADCAST_MAC, ip, ZERO_MAC, ip)

    # ----- input: arp_rcv / arp_process ---------------------------------------------

    def rcv(self, iface: Interface, data: bytes | memoryview, now: float) -> None:
        host = self.host
        mib = host.mib
        mib["ArpInPackets"] += 1
        try:
            arp = wire.parse_arp(data)
        except ValueError:
            mib["ArpInErrors"] += 1
            return
        sha = bytes(arp.sha)
        spa = arp.spa
        tpa = arp.tpa
        op = arp.op
        if op not in (ARPOP_REQUEST, ARPOP_REPLY) or sha[0] & 1 or sha == ZERO_MAC \
                or is_multicast(tpa) or is_multicast(spa) or spa == 0xFFFFFFFF:
            mib["ArpInErrors"] += 1
            return
        if sha == iface.mac:
            mib["ArpInDrops"] += 1      # our own frame looped back
            return
        if spa and (host.is_local_address(spa) or host.is_broadcast(spa)):
            # arp_process only answers when ip_route_input(tip, sip) accepts the
            # sender: one of our own addresses (an address conflict, RFC 5227
            # 2.4), our broadcast or 127/8 is refused, and nothing is learned
            # (a neighbour entry for our own address would be poison).
            mib["ArpInMartians"] += 1
            return
        mib["ArpInRequests" if op == ARPOP_REQUEST else "ArpInReplies"] += 1
        for_us = host.is_local_address(tpa) and tpa >> 24 != 127
        n = self.table.get((iface.ifindex, spa)) if spa else None
        if op == ARPOP_REQUEST and for_us:
            if spa:    # spa 0 is an RFC 5227 probe: answer but learn nothing
                if n is None:
                    n = self._create(iface.ifindex, spa)
                if n is not None:
                    self._confirm(n, sha, now, reachable=False)
            self.send(iface, ARPOP_REPLY, sha, tpa, sha, spa)
            return
        if n is None:
            # A reply we did not ask for, or someone else's conversation (arp_accept=0).
            mib["ArpInIgnored"] += 1
            return
        self._confirm(n, sha, now, reachable=(op == ARPOP_REPLY and for_us))
