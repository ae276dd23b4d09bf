"""The neighbour table (net/core/neighbour.c), shared by ARP and IPv6 ND.

One ``Neighbour`` per (ifindex, ip).  States use the kernel's NUD_* numbers:

    INCOMPLETE --reply--> REACHABLE --reachable_time--> STALE --used--> [DELAY] --> PROBE
        |  (multicast/broadcast solicitation every      |   (unicast solicitation,
        |   retrans_time, mcast_solicit of them)         |    ucast_solicit of them)
        v                                                v
      gone: queued packets' senders told (unreachable)  gone (re-resolve on next use)

STALE entries nobody uses for ``gc_stale_time`` are deleted.  PERMANENT
(static) entries never age and input never changes them.

While INCOMPLETE, up to ``unres_qlen`` packets (and at most
``unres_qlen_bytes`` bytes) wait in the entry (oldest dropped first, counted as
Linux's ``unresolved_discards``).  A table with a ``delay_first_probe_time``
(ND) takes a used STALE entry to DELAY and probes only if no reachability
confirmation (``confirm``) came within that time; one without (ARP here)
probes a used STALE entry at once.  The timing knobs are the arp_* settings,
which Linux's ND table has with the same defaults.

``output`` returns the packet's NET_XMIT_* status (qdisc.py), as
neigh_output does to ip_finish_output2: its own frame's, or success when it
waits in the entry.  The solicitation it may send is a frame of its own,
whose answer is not the packet's (Linux ignores arp_xmit's and
ndisc_send_skb's).

The protocol (``Arp``, ``Ndisc``) subclasses ``NeighTable`` with how to
solicit, how to tell a sender its packet could not be delivered, its
EtherType and its counter names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from typing import TYPE_CHECKING

from tcpio.core.qdisc import NET_XMIT_SUCCESS
from tcpio.core.timer import Timer

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface

NUD_INCOMPLETE = 0x01
NUD_REACHABLE = 0x02
NUD_STALE = 0x04
NUD_DELAY = 0x08
NUD_PROBE = 0x10
NUD_FAILED = 0x20
NUD_PERMANENT = 0x80

# the states whose MAC a packet takes with no state change (hh_lookup; the
# kernel's neigh_event_send returns at once for these)
HH_STATES = NUD_REACHABLE | NUD_PERMANENT | NUD_DELAY | NUD_PROBE
_CONNECTED = HH_STATES

STATE_NAMES = {NUD_INCOMPLETE: "INCOMPLETE", NUD_REACHABLE: "REACHABLE", NUD_STALE: "STALE",
               NUD_DELAY: "DELAY", NUD_PROBE: "PROBE", NUD_FAILED: "FAILED", NUD_PERMANENT: "PERMANENT"}


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
        return f"<Neighbour {self.ip:#x} dev {self.ifindex} {mac} {STATE_NAMES[self.state]}>"


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


class NeighTable(ABC):
    """A neighbour table (``struct neigh_table``); see the module docstring."""

    # The EtherType of the packets it carries, and its counters (Linux's
    # per-table neigh statistics).
    ethertype = 0
    C_UNRES = "ArpUnresolvedDiscards"
    C_FAILED = "ArpResolveFailed"
    C_EVICT = "ArpCacheEvictions"

    def __init__(self, host: Host) -> None:
        self.host = host
        self.table: dict[tuple[int, int], Neighbour] = {}

    # ----- what the protocol provides ------------------------------------------------

    # (ARP and ND each provide these two: arp.Arp, ndisc.Ndisc)
    @abstractmethod
    def solicit(self, iface: Interface, n: Neighbour, unicast: bool) -> None:
        """Ask for ``n``'s link-layer address: broadcast/multicast while
        INCOMPLETE, unicast (``unicast``) to probe a known one."""

    @abstractmethod
    def unreachable(self, packet: bytes | bytearray) -> None:
        """Tell the sender of ``packet`` that its neighbour did not resolve."""

    def delay_first_probe_time(self) -> float:
        """0: a used STALE entry is probed at once (no DELAY state)."""
        return 0.0

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
        self.hh_update()
        self._flush_queue(n, mac)

    def lookup(self, ifindex: int, ip: int) -> Neighbour | None:
        return self.table.get((ifindex, ip))

    def confirm(self, ifindex: int, ip: int) -> None:
        """neigh_confirm: an upper layer saw forward progress (TCP's new ACK)."""
        n = self.table.get((ifindex, ip))
        if n is not None:
            n.confirmed = self.host.now

    # ----- output: neigh_resolve_output ---------------------------------------------

    def hh_lookup(self, ifindex: int, nexthop: int) -> bytes | None:
        """The neighbour's MAC when a packet may go out now with no state change.

        Like the kernel's neigh_hh_output short cut for a connected neighbour:
        REACHABLE, PERMANENT, DELAY or PROBE (exactly the states in which
        ``output`` only prepends the header).  None means: call ``output``.
        """
        n = self.table.get((ifindex, nexthop))
        if n is None or not n.state & _CONNECTED:
            return None
        n.used = self.host.now
        return n.mac

    def output(self, iface: Interface, nexthop: int, packet: bytes | bytearray) -> int:
        """Send a packet to ``nexthop`` on ``iface``, resolving its MAC first
        (neigh_resolve_output); the packet's NET_XMIT_* status."""
        host = self.host
        now = host.now
        n = self.table.get((iface.ifindex, nexthop))
        if n is None:
            n = self._create(iface.ifindex, nexthop)
            if n is None:
                # The table is full: the sender is told through its error
                # handler (unreachable), not by the status.
                host.mib[self.C_UNRES] += 1
                self.unreachable(packet)
                return NET_XMIT_SUCCESS
        n.used = now
        state = n.state
        if state & _CONNECTED:
            return host.ether_xmit(iface, _resolved_mac(n), self.ethertype, packet)
        if state == NUD_STALE:
            rc = host.ether_xmit(iface, _resolved_mac(n), self.ethertype, packet)
            delay = self.delay_first_probe_time()
            if delay > 0:
                n.state = NUD_DELAY
                n.timer.arm(now + delay)
                return rc
            n.state = NUD_PROBE
            n.probes = 1
            self.solicit(iface, n, unicast=True)        # its status is not the packet's
            n.timer.arm(now + host.settings.arp_retrans_time)
            return rc
        # INCOMPLETE: queue (bounded), the first packet starts the resolution.
        limit = max(1, host.settings.arp_unres_qlen)
        size = len(packet)
        max_bytes = host.settings.arp_unres_qlen_bytes
        while n.queue and (len(n.queue) >= limit or n.qbytes + size > max_bytes):
            # Like __neigh_event_send: the oldest packet goes, silently (counted
            # as unres_discards).  Its sender is not told: TCP retransmits, and
            # only a failed resolution reports EHOSTUNREACH (below).
            n.qbytes -= len(n.queue.popleft())
            host.mib[self.C_UNRES] += 1
        n.queue.append(packet)
        n.qbytes += size
        if n.probes == 0:
            n.probes = 1
            self.solicit(iface, n, unicast=False)       # its status is not the packet's
            n.timer.arm(now + host.settings.arp_retrans_time)
        return NET_XMIT_SUCCESS         # queued: __neigh_event_send, then rc 0

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
        self.host.mib[self.C_EVICT] += 1
        return True

    def neigh_ifdown(self, ifindex: int) -> None:
        """The interface went down: forget its entries but the static ones
        (and the packets queued on them)."""
        for n in [n for n in self.table.values() if n.ifindex == ifindex]:
            if not n.state & NUD_PERMANENT:
                self._delete(n)

    def _delete(self, n: Neighbour) -> None:
        n.timer.cancel()
        self.table.pop((n.ifindex, n.ip), None)
        self.hh_update()

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
                self.solicit(iface, n, unicast=False)
                n.timer.arm(now + s.arp_retrans_time)
                return
            # Resolution failed: every queued packet's sender is told.
            host.mib[self.C_FAILED] += 1
            queued = _take_queue(n)
            n.state = NUD_FAILED
            self._delete(n)
            for packet in queued:
                host.mib[self.C_UNRES] += 1
                self.unreachable(packet)
        elif n.state == NUD_REACHABLE:
            n.state = NUD_STALE
            self.hh_update()
            n.timer.arm(max(now, n.used) + s.arp_gc_stale_time)
        elif n.state == NUD_STALE:
            if now - n.used >= s.arp_gc_stale_time:
                self._delete(n)
            else:
                n.timer.arm(n.used + s.arp_gc_stale_time)
        elif n.state == NUD_DELAY:
            # neigh_timer_handler: confirmed while waiting -> REACHABLE again
            # without a probe; else probe it.
            if now - n.confirmed <= self.delay_first_probe_time():
                self.set_reachable(n, now)
            else:
                n.state = NUD_PROBE
                n.probes = 1
                self.solicit(iface, n, unicast=True)
                n.timer.arm(now + s.arp_retrans_time)
        elif n.state == NUD_PROBE:
            if n.probes < s.arp_ucast_solicit:
                n.probes += 1
                self.solicit(iface, n, unicast=True)
                n.timer.arm(now + s.arp_retrans_time)
            else:
                host.mib[self.C_FAILED] += 1
                self._delete(n)

    def _confirm(self, n: Neighbour, mac: bytes, now: float, reachable: bool) -> None:
        """neigh_update: learn ``mac``; REACHABLE on a reply, STALE on hearsay."""
        if n.state == NUD_PERMANENT:
            return
        changed = n.mac != mac
        n.mac = mac
        if changed:
            self.hh_update()
        if reachable:
            self.set_reachable(n, now)
        elif n.state == NUD_INCOMPLETE or changed:
            self.set_stale(n, now)
        self._flush_queue(n, mac)

    def set_reachable(self, n: Neighbour, now: float) -> None:
        n.state = NUD_REACHABLE
        n.confirmed = now
        n.probes = 0
        # Like Linux, the reachable time is randomised to 0.5..1.5 x the base.
        life = self.host.settings.arp_base_reachable_time * (0.5 + self.host.rng.random())
        n.timer.arm(now + life)

    def set_stale(self, n: Neighbour, now: float) -> None:
        n.state = NUD_STALE
        self.hh_update()
        n.probes = 0
        n.timer.arm(max(now, n.used) + self.host.settings.arp_gc_stale_time)

    def hh_update(self) -> None:
        """A neighbour left the connected states, changed its MAC or went
        away: no frame may take the header cached for it any more.  Linux
        rewrites each dst's cached header in place (neigh_update_hhs) or
        sends the next packet through neigh_resolve_output (neigh_suspect);
        here the host's route generation moves on, so every cached
        ``TcpDst`` is looked up again (ip_output.ip_tcp_dst): a rare event,
        one per neighbour per reachable time at most."""
        self.host.dst_gen.genid += 1

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
            host.ether_xmit(iface, mac, self.ethertype, packet)

    def snapshot(self) -> list[tuple[int, int, bytes | None, str]]:
        """(ifindex, ip, mac, state) for every entry, like ``ip neigh show``."""
        return [(n.ifindex, n.ip, n.mac, STATE_NAMES[n.state]) for n in self.table.values()]
