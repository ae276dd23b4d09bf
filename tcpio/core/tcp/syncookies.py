"""SYN cookies the Linux way (``net/ipv4/syncookies.c``).

When the SYN queue is full, a listener answers a SYN without keeping state:
the SYN-ACK's ISN (the cookie) carries what it must remember, authenticated
by a keyed hash, and the final ACK (acknowledging cookie + 1) brings it back.

Cookie layout (32 bits), as ``secure_tcp_syn_cookie`` builds it::

    cookie = H0(4-tuple) + client_isn + (count << 24)
             + ((H1(4-tuple, count) + mss_index) mod 2**24)

``count`` is a coarse clock (one tick per TCP_SYNCOOKIE_PERIOD seconds),
``H0``/``H1`` keyed hashes.  The check subtracts ``H0 + client_isn``, reads
the count from the top 8 bits, rejects it when it is MAX_SYNCOOKIE_AGE or more
ticks old, then subtracts ``H1`` with that count; what is left must be a valid
MSS table index.  A forged or tampered cookie leaves a pseudo-random 24-bit
residue, which is a valid index with probability 4 / 2**24.

With TCP timestamps the SYN's window scale and SACK-permitted travel in the
low 6 bits of our timestamp value (``cookie_init_timestamp``) and come back in
the peer's TSecr.

Addresses follow the core's convention: ``laddr``/``lport`` are ours (the
listener's), ``raddr``/``rport`` the client's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ... import _fast
from ..addr import prefix_mask
from .inet6_addr import addr_key

# The cookie's rules are written once, in tcpio/_fast/syn_fast.py, which the
# compiled SYN path (rx.pyx) runs too: these are its names for the layered path.
_syn_fast = _fast.load("syn_fast")
COOKIEBITS = _syn_fast.COOKIEBITS
COOKIEMASK = _syn_fast.COOKIEMASK
TCP_SYNCOOKIE_PERIOD = _syn_fast.TCP_SYNCOOKIE_PERIOD
MAX_SYNCOOKIE_AGE = _syn_fast.MAX_SYNCOOKIE_AGE
MSSTAB = _syn_fast.MSSTAB
TSBITS = _syn_fast.TSBITS
TSMASK = _syn_fast.TSMASK
TS_OPT_WSCALE_MASK = _syn_fast.TS_OPT_WSCALE_MASK
TS_OPT_SACK = _syn_fast.TS_OPT_SACK
tcp_cookie_time = _syn_fast.tcp_cookie_time
inet_csk_reqsk_queue_is_full = _syn_fast.inet_csk_reqsk_queue_is_full


@lru_cache(maxsize=64)
def syn_keys(secret: bytes) -> object:
    """The host secret's keyed hash states (syn_fast.SynKeys), made once."""
    return _syn_fast.SynKeys(secret)


def cookie_hash(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                count: int, c: int) -> int:
    """Keyed 32-bit hash of the 4-tuple and ``count``; ``c`` selects H0 or H1."""
    laddr, raddr = addr_key(secret, laddr), addr_key(secret, raddr)
    return int(_syn_fast.cookie_hash(syn_keys(bytes(secret)), laddr, lport, raddr, rport,
                                     count, c))


def secure_tcp_syn_cookie(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                          sseq: int, data: int, now: float) -> int:
    laddr, raddr = addr_key(secret, laddr), addr_key(secret, raddr)
    return int(_syn_fast.secure_tcp_syn_cookie(syn_keys(bytes(secret)), laddr, lport, raddr,
                                               rport, sseq, data, now))


def check_tcp_syn_cookie(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                         sseq: int, cookie: int, now: float) -> int | None:
    """The data (MSS index) encoded in ``cookie``, or None if it is too old."""
    laddr, raddr = addr_key(secret, laddr), addr_key(secret, raddr)
    data = _syn_fast.check_tcp_syn_cookie(syn_keys(bytes(secret)), laddr, lport, raddr, rport,
                                          sseq, cookie, now)
    return None if data < 0 else int(data)


def cookie_v4_init_sequence(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                            client_isn: int, mss: int, now: float) -> tuple[int, int]:
    """The cookie ISN for a SYN, and the MSS it encodes (the largest table entry <= mss).

    ``mss`` is the request's MSS as tcp_parse_options leaves it: the SYN's
    option bounded by the listener's TCP_MAXSEG, 536 without the option.  Like
    Linux, an MSS below the smallest entry is encoded as that entry (536), so a
    listener with TCP_MAXSEG 1000 makes cookie children that send 536-byte
    segments (measured on Linux 6.18, tests/tap/test_tcp_kernel_maxseg.py).
    """
    mssind = int(_syn_fast.cookie_mss_index(mss))
    isn = secure_tcp_syn_cookie(secret, laddr, lport, raddr, rport, client_isn, mssind, now)
    return isn, MSSTAB[mssind]


def cookie_v4_check(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                    client_isn: int, cookie: int, now: float) -> int | None:
    """The MSS of a valid cookie, or None (tampered, foreign or expired).

    ``client_isn`` is the ACK's seq - 1 and ``cookie`` its ack_seq - 1
    (``__cookie_v4_check``).
    """
    mssind = check_tcp_syn_cookie(secret, laddr, lport, raddr, rport, client_isn, cookie, now)
    if mssind is None or mssind >= len(MSSTAB):
        return None
    return MSSTAB[mssind]


def cookie_init_timestamp(now_ts: int, wscale: int | None, sack_ok: bool) -> int:
    """Our TSval for a cookie SYN-ACK, with the SYN's options in the low 6 bits.

    ``now_ts`` is the timestamp clock (already offset).  Like Linux the value is
    never ahead of the clock: if setting the low bits would move it forward,
    it steps back one 64-tick block.
    """
    return int(_syn_fast.cookie_init_timestamp(now_ts & 0xFFFFFFFF,
                                               -1 if wscale is None else wscale, sack_ok))


def cookie_timestamp_decode(tsecr: int) -> tuple[int | None, bool]:
    """(peer window scale or None, SACK permitted) from the cookie ACK's TSecr."""
    wscale: int | None = tsecr & TS_OPT_WSCALE_MASK
    if wscale == TS_OPT_WSCALE_MASK:
        wscale = None
    return wscale, bool(tsecr & TS_OPT_SACK)


def synack_route_scope(host: Any, raddr: int, length: int) -> tuple | None:
    """The route scope of the stateless SYN path (syn_fast.synack_path): for
    a SYN-ACK of up to ``length`` bytes to ``raddr``, ``(path, prefix, mask,
    excluded, token, fib, pmtu)`` where ``path`` is (ifindex, dst_mac,
    src_mac, route MTU) and every destination ``d`` with ``d & mask ==
    prefix``, outside the ``excluded`` (prefix, mask) pairs and not in
    ``pmtu`` (the host's learned path MTUs), has the same path while
    ``fib.rt_genid == token``.  ``token`` None: the path is this
    destination's alone; None: no whole-frame path (ip_output's work).

    Shared only through a gateway: the FIB entry that routes ``raddr`` (the
    longest prefix covering it) sends all of its destinations to one
    neighbour with one MTU, except those that a more specific route inside
    it takes (``excluded``) and those with a learned PMTU.  An on-link route
    has a neighbour per destination, so each SYN resolves its own.  The
    local, loopback, broadcast and multicast destinations that ip_tcp_path
    turns away are never a SYN's source (the rx classifier drops those as
    martians before the SYN path).
    """
    path = host.ip_tcp_path(raddr, length)
    if path is None:
        return None
    try:
        route = host.route_lookup(raddr)
    except OSError:
        return None
    alone = ((path[0], path[1], path[2], route.mtu), 0, 0, None, None, None, None)
    fib = getattr(host, "fib", None)
    pmtu = getattr(host, "pmtu", None)
    if fib is None or route.gateway is None or (pmtu and raddr in pmtu):
        return alone
    token = fib.rt_genid
    entries = fib.entries()
    entry = None
    for e in entries:             # longest prefix first: the first cover is the route
        if raddr & prefix_mask(e.prefixlen) == e.prefix:
            entry = e
            break
    if entry is None or entry.gateway != route.gateway or entry.ifindex != route.ifindex:
        return alone            # routed by something else than the FIB (lo, broadcast)
    mask = prefix_mask(entry.prefixlen)
    excluded = [(e.prefix, prefix_mask(e.prefixlen)) for e in entries
                if e.prefixlen > entry.prefixlen and e.prefix & mask == entry.prefix]
    return ((path[0], path[1], path[2], route.mtu), entry.prefix, mask, excluded, token, fib,
            pmtu if pmtu is not None else {})
