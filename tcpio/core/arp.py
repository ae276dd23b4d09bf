"""ARP (RFC 826) and the neighbour table, after net/ipv4/arp.c + net/core/neighbour.c.

One ``Neighbour`` per (ifindex, ip).  States use the kernel's NUD_* numbers:

    INCOMPLETE --reply--> REACHABLE --reachable_time--> STALE --used--> PROBE
        |  (broadcast request every retrans_time,          |   (unicast request,
        |   arp_mcast_solicit of them)                     |    arp_ucast_solicit)
        v                                                  v
      gone: queued packets get EHOSTUNREACH              gone (re-resolve on next use)

STALE entries nobody uses for ``arp_gc_stale_time`` are deleted.  PERMANENT
(static) entries never age and ARP input never changes them.

While INCOMPLETE, up to ``arp_unres_qlen`` IP packets (and at most
``settings.arp_unres_qlen_bytes`` bytes) wait in the entry (oldest dropped first, counted ArpUnresolvedDiscards, as Linux's
``unresolved_discards``).  Linux skips the DELAY state (waiting for an
upper-layer reachability confirmation) here: we have no such hints yet, so a
used STALE entry is probed at once.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from tcpio import _fast
from tcpio.core.addr import BROADCAST_MAC, ZERO_MAC, is_multicast
from tcpio.core.ether import ETH_P_ARP, ETH_P_IP
from tcpio.core.timer import Timer

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface

wire = _fast.load("wire")
ARPOP_REQUEST = wire.ARPOP_REQUEST
ARPOP_REPLY = wire.ARPOP_REPLY

NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_PERMANENT = 0x80

STATE_NAMES = {NUD_INCOMPLETE: "INCOMPLETE", NUD_REACHABLE: "REACHABLE", NUD_STALE: "STALE",
               NUD_PROBE: "PROBE", NUD_FAILED: "FAILED", NUD_PERMANENT: "PERMANENT"}


class Neighbour:
    __slots__ = (
        "confirmed",
        "ifindex",
        "ip",
        "mac",
        "probes",
        "qbytes",
        "queue",
        "state",
        "timer",
        "used",
    )

    def __init__(self, ip: int, ifindex: int, timer: Timer) -> None:
        self.ip = ip
        self.ifindex = ifindex
        self.mac: bytes | None = None
        self.state = NUD_INCOMPLETE
        self.confirmed = 0.0
        self.used = 0.0
        self.probes = 0
        self.queue: deque[bytes | bytearray] = deque()
        self.qbytes = 0                 # sum of len() over queue
        self.timer = timer

    def __repr__(self) -> str:
        mac = self.mac.hex(":") if self.mac else "-"
        return f"<Neighbour {self.ip:#010x} dev {self.ifindex} {mac} {STATE_NAMES[self.state]}>"


def _resolved_mac(n: Neighbour) -> bytes:
    """The MAC of a neighbour in REACHABLE, STALE, PROBE or PERMANENT.

    Only INCOMPLETE has none: every way out of it (a reply, hearsay, a static
    entry) sets the MAC first, and FAILED entries leave the table at once.
    """
    mac = n.mac
    assert mac is not None, f"{n!r}: resolved state without a MAC"
    return mac


def _take_queue(n: Neighbour) -> list[bytes | bytearray]:
    """Empty ``n``'s packet queue and return what was in it."""
    queued = list(n.queue)
    n.queue.clear()
    n.qbytes = 0
    return queued


class Arp:
    """The host's neighbour table plus ARP input/output."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.table: dict[tuple[int, int], Neighbour] = {}

    # ----- user-facing -----------------------------------------------------------

    def add_static(self, ifindex: int, ip: int, mac: bytes) -> None:
        """A PERMANENT entry (``ip neigh add ... nud permanent``)."""
        if len(mac) != 6:
            raise ValueError("MAC must be 6 bytes")
        n = self.table.get((ifindex, ip))
        if n is None:
            # A static entry goes in even when nothing could be evicted for it.
            self._make_room()
            n = self._new(ifindex, ip)
        n.timer.cancel()
        n.mac = mac = bytes(mac)
        n.state = NUD_PERMANENT
        self._flush_queue(n, mac)

    def lookup(self, ifindex: int, ip: int) -> Neighbour | None:
        return self.table.get((ifindex, ip))

    # ----- output: neigh_resolve_output ---------------------------------------------

    def hh_lookup(self, ifindex: int, nexthop: int) -> bytes | None:
        """The neighbour's MAC when a packet may go out now with no state change.

        Like the kernel's neigh_hh_output short cut for a connected neighbour:
        REACHABLE, PERMANENT or already PROBE (exactly the states in which
        ``output`` only prepends the header).  None means: call ``output``.
        """
        n = self.table.get((ifindex, nexthop))
        if n is None or not n.state & (NUD_REACHABLE | NUD_PERMANENT | NUD_PROBE):
            return None
        n.used = self.host.now
        return n.mac

    def output(self, iface: Interface, nexthop: int, packet: bytes | bytearray) -> None:
        """Send an IP packet to ``nexthop`` on ``iface``, resolving its MAC first."""
        host = self.host
        now = host.now
        n = self.table.get((iface.ifindex, nexthop))
        if n is None:
            n = self._create(iface.ifindex, nexthop)
            if n is None:
                host.mib["ArpUnresolvedDiscards"] += 1
                host.ip_local_error(packet, 3, 1)
                return
        n.used = now
        state = n.state
        if state & (NUD_REACHABLE | NUD_PERMANENT | NUD_PROBE):
            host.ether_xmit(iface, _resolved_mac(n), ETH_P_IP, packet)
            return
        if state == NUD_STALE:
            host.ether_xmit(iface, _resolved_mac(n), ETH_P_IP, packet)
            n.state = NUD_PROBE
            n.probes = 1
            self._solicit(iface, n, unicast=True)
            n.timer.arm(now + host.settings.arp_retrans_time)
            return
        # INCOMPLETE: queue (bounded), the first packet starts the resolution.
        limit = max(1, host.settings.arp_unres_qlen)
        size = len(packet)
        max_bytes = host.settings.arp_unres_qlen_bytes
        while n.queue and (len(n.queue) >= limit or n.qbytes + size > max_bytes):
            # Like __neigh_event_send: the oldest packet goes, silently (counted
            # as unres_discards).  Its sender is not told: TCP retransmits, and
            # only a failed resolution reports EHOSTUNREACH (below).
            n.qbytes -= len(n.queue.popleft())
            host.mib["ArpUnresolvedDiscards"] += 1
        n.queue.append(packet)
        n.qbytes += size
        if n.probes == 0:
            n.probes = 1
            self._solicit(iface, n, unicast=False)
            n.timer.arm(now + host.settings.arp_retrans_time)

    def _create(self, ifindex: int, ip: int) -> Neighbour | None:
        """A new INCOMPLETE entry, or None when the table is full (gc_thresh3)."""
        if not self._make_room():
            return None
        return self._new(ifindex, ip)

    def _make_room(self) -> bool:
        """Below gc_thresh3, or brought below it by evicting one entry."""
        return len(self.table) < self.host.settings.arp_gc_thresh3 or self._evict_one()

    def _new(self, ifindex: int, ip: int) -> Neighbour:
        n = Neighbour(ip, ifindex, self.host.timers.timer(lambda now: None))

        def expire(now: float) -> None:
            self._timer(n, now)

        n.timer.callback = expire
        self.table[(ifindex, ip)] = n
        return n

    def _evict_one(self) -> bool:
        """Forced GC when the table is full: drop the least recently used resolved entry."""
        victims = [n for n in self.table.values() if n.state & (NUD_STALE | NUD_REACHABLE)]
        if not victims:
            return False
        victim = min(victims, key=lambda n: n.used)
        self._delete(victim)
        self.host.mib["ArpCacheEvictions"] += 1
        return True

    def _delete(self, n: Neighbour) -> None:
        n.timer.cancel()
        self.table.pop((n.ifindex, n.ip), None)

    def _solicit(self, iface: Interface, n: Neighbour, unicast: bool) -> None:
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

    # ----- timers: neigh_timer_handler --------------------------------------------

    def _timer(self, n: Neighbour, now: float) -> None:
        host = self.host
        s = host.settings
        iface = host.interfaces.get(n.ifindex)
        if iface is None:
            self._delete(n)
            return
        if n.state == NUD_INCOMPLETE:
            if n.probes < s.arp_mcast_solicit:
                n.probes += 1
                self._solicit(iface, n, unicast=False)
                n.timer.arm(now + s.arp_retrans_time)
                return
            # Resolution failed: every queued packet's sender learns EHOSTUNREACH.
            host.mib["ArpResolveFailed"] += 1
            queued = _take_queue(n)
            n.state = NUD_FAILED
            self._delete(n)
            for packet in queued:
                host.mib["ArpUnresolvedDiscards"] += 1
                host.ip_local_error(packet, 3, 1)
        elif n.state == NUD_REACHABLE:
            n.state = NUD_STALE
            n.timer.arm(max(now, n.used) + s.arp_gc_stale_time)
        elif n.state == NUD_STALE:
            if now - n.used >= s.arp_gc_stale_time:
                self._delete(n)
            else:
                n.timer.arm(n.used + s.arp_gc_stale_time)
        elif n.state == NUD_PROBE:
            if n.probes < s.arp_ucast_solicit:
                n.probes += 1
                self._solicit(iface, n, unicast=True)
                n.timer.arm(now + s.arp_retrans_time)
            else:
                host.mib["ArpResolveFailed"] += 1
                self._delete(n)

    def _confirm(self, n: Neighbour, mac: bytes, now: float, reachable: bool) -> None:
        """neigh_update: learn ``mac``; REACHABLE on a reply, STALE on hearsay."""
        if n.state == NUD_PERMANENT:
            return
        s = self.host.settings
        changed = n.mac != mac
        n.mac = mac
        if reachable:
            n.state = NUD_REACHABLE
            n.confirmed = now
            n.probes = 0
            # Like Linux, the reachable time is randomised to 0.5..1.5 x the base.
            life = s.arp_base_reachable_time * (0.5 + self.host.rng.random())
            n.timer.arm(now + life)
        elif n.state == NUD_INCOMPLETE or changed:
            n.state = NUD_STALE
            n.probes = 0
            n.timer.arm(max(now, n.used) + s.arp_gc_stale_time)
        self._flush_queue(n, mac)

    def _flush_queue(self, n: Neighbour, mac: bytes) -> None:
        """Send the packets that waited for ``n`` to resolve, to ``mac`` (just learned)."""
        if not n.queue:
            return
        host = self.host
        iface = host.interfaces.get(n.ifindex)
        queued = _take_queue(n)
        if iface is None:
            return
        for packet in queued:
            host.ether_xmit(iface, mac, ETH_P_IP, packet)

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

    def snapshot(self) -> list[tuple[int, int, bytes | None, str]]:
        """(ifindex, ip, mac, state) for every entry, like ``ip neigh show``."""
        return [(n.ifindex, n.ip, n.mac, STATE_NAMES[n.state]) for n in self.table.values()]
