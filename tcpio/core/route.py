"""The FIB: longest-prefix-match routing and source address selection.

Like Linux's fib_lookup for a host: connected routes (added with an address)
and static routes (``ip route add PREFIX via GW``).  The table is a dict per
prefix length, searched from /32 down, so a lookup is at most 33 dict probes
(the host caches the result per destination: ``Host.route_lookup``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from tcpio.core.addr import prefix_mask, prefix_mask6

if TYPE_CHECKING:
    from collections.abc import Callable

    from tcpio._fast.tx_py import TcpDst
    from tcpio.core.host import Host


class Route(NamedTuple):
    """What ip_output needs to send to one destination."""

    ifindex: int
    gateway: int | None     # next hop; None when the destination is on-link
    src: int                # preferred source address (0 if the interface has none)
    mtu: int
    # RTAX_MTU locked: a learned path MTU below min_pmtu was raised to the
    # floor (__ip_rt_update_pmtu); sockets that only want PMTU discovery
    # then send without DF on this path (ip_dont_fragment)
    mtu_locked: bool = False


class FibEntry(NamedTuple):
    prefix: int
    prefixlen: int
    gateway: int | None
    ifindex: int
    prefsrc: int | None     # the address that created a connected route


class Fib:
    """Routes keyed by (prefixlen, prefix); lookup by longest prefix match.

    ``bits`` is the address width: 32 (IPv4, the default) or 128 (IPv6's
    table, Linux's fib6 for a host: connected and static routes)."""

    def __init__(self, bits: int = 32) -> None:
        self.bits = bits
        self._mask = prefix_mask if bits == 32 else prefix_mask6
        self._by_len: dict[int, dict[int, FibEntry]] = {}
        self._lens: list[int] = []          # prefix lengths present, longest first
        self._entries: tuple[FibEntry, ...] | None = ()    # entries(), until a change
        # rt_genid: bumped by every route added or removed (as Linux's
        # rt_genid_bump_ipv4 is by route changes; address and device events
        # change the FIB through add/remove here), so a holder of a result
        # computed from the table (the SYN path's route scope) knows when it
        # moved under it
        self.rt_genid = 0

    def add(self, prefix: int, prefixlen: int, gateway: int | None, ifindex: int,
            prefsrc: int | None = None) -> FibEntry:
        """Add or replace the route for prefix/prefixlen."""
        if not 0 <= prefixlen <= self.bits:
            raise ValueError(f"bad prefix length {prefixlen}")
        prefix &= self._mask(prefixlen)
        entry = FibEntry(prefix, prefixlen, gateway, ifindex, prefsrc)
        table = self._by_len.setdefault(prefixlen, {})
        table[prefix] = entry
        self._lens = sorted(self._by_len, reverse=True)
        self._entries = None
        self.rt_genid += 1
        return entry

    def get(self, prefix: int, prefixlen: int) -> FibEntry | None:
        """The route for exactly prefix/prefixlen."""
        table = self._by_len.get(prefixlen)
        return table.get(prefix & self._mask(prefixlen)) if table else None

    def remove(self, prefix: int, prefixlen: int) -> bool:
        table = self._by_len.get(prefixlen)
        prefix &= self._mask(prefixlen)
        if not table or table.pop(prefix, None) is None:
            return False
        self._entries = None
        self.rt_genid += 1
        if not table:
            del self._by_len[prefixlen]
            self._lens = sorted(self._by_len, reverse=True)
        return True

    def flush_dev(self, ifindex: int) -> int:
        """fib_sync_down_dev + fib_flush (rt6_sync_down_dev for IPv6): every
        route through ``ifindex`` goes, connected and static alike; how many."""
        gone = [(e.prefix, e.prefixlen) for t in self._by_len.values() for e in t.values()
                if e.ifindex == ifindex]
        for prefix, plen in gone:
            self.remove(prefix, plen)
        return len(gone)

    def lookup(self, dst: int, down: frozenset[int] | set[int] = frozenset()) -> FibEntry | None:
        """The most specific route covering ``dst``, or None; routes through
        an interface in ``down`` are skipped (their nexthop is dead)."""
        mask = self._mask
        for plen in self._lens:
            entry = self._by_len[plen].get(dst & mask(plen))
            if entry is not None and entry.ifindex not in down:
                return entry
        return None

    def entries(self) -> tuple[FibEntry, ...]:
        """Every route, longest prefix first, as one tuple made again only
        after the table changes (``rt_genid`` says when it did)."""
        entries = self._entries
        if entries is None:
            entries = self._entries = tuple(e for plen in self._lens
                                            for e in self._by_len[plen].values())
        return entries

    def __len__(self) -> int:
        return sum(len(t) for t in self._by_len.values())


def select_source(addrs: list[tuple[int, int]], target: int, prefsrc: int | None,
                  fallback: int) -> int:
    """Source address for a packet leaving an interface towards ``target``.

    Like inet_select_addr: the route's preferred source if any, else the
    interface address whose subnet contains the next hop, else the
    interface's primary (first) address, else ``fallback`` (any address of the
    host, or 0).
    """
    if prefsrc:
        return prefsrc
    for ip, plen in addrs:
        mask = prefix_mask(plen)
        if ip & mask == target & mask:
            return ip
    if addrs:
        return addrs[0][0]
    return fallback


def tcp_dst_cached(host: Host, key: int, dst: int,
                   make: Callable[[Host, int], TcpDst | None]) -> TcpDst | None:
    """The TcpDst kept under ``key`` in ``host._tcp_paths`` while valid
    (the route generation stands still, a learned path MTU has not
    expired), else ``make(host, dst)``'s, kept: ip_output.ip_tcp_dst's
    and ip6_output.ip6_tcp_dst's cache (what sockets cache, per
    destination)."""
    paths = host._tcp_paths
    d = paths.get(key)
    if d is not None and d.genid == d.gen.genid and host.now < d.expires:
        return d
    d = make(host, dst)
    if d is not None:
        if len(paths) >= 4096:
            paths.clear()       # bounded as the route cache is (sockets keep theirs)
        paths[key] = d
    return d
