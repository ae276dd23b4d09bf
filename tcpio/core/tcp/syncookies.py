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

import struct

from .secure_seq import keyed_digest

COOKIEBITS = 24
COOKIEMASK = (1 << COOKIEBITS) - 1
TCP_SYNCOOKIE_PERIOD = 64.0     # seconds per count tick
MAX_SYNCOOKIE_AGE = 2           # ticks: a cookie is valid for up to 2 periods
# Linux's msstab (ipv4): the MSS values a cookie can carry (2 bits).
MSSTAB = (536, 1300, 1440, 1460)

# Timestamp option bits (Linux TSBITS / TS_OPT_*).
TSBITS = 6
TSMASK = (1 << TSBITS) - 1
TS_OPT_WSCALE_MASK = 0xF
TS_OPT_SACK = 1 << 4

_M32 = 0xFFFFFFFF
_PACK = struct.Struct("!IIHHI").pack


def cookie_hash(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                count: int, c: int) -> int:
    """Keyed 32-bit hash of the 4-tuple and ``count``; ``c`` selects H0 or H1."""
    msg = _PACK(raddr, laddr, rport, lport, count & _M32)
    return int.from_bytes(keyed_digest(secret, b"cookie%d" % c, msg, 4), "big")


def tcp_cookie_time(now: float) -> int:
    return int(now // TCP_SYNCOOKIE_PERIOD)


def secure_tcp_syn_cookie(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                          sseq: int, data: int, now: float) -> int:
    count = tcp_cookie_time(now)
    return (cookie_hash(secret, laddr, lport, raddr, rport, 0, 0) + sseq
            + (count << COOKIEBITS)
            + ((cookie_hash(secret, laddr, lport, raddr, rport, count, 1) + data)
               & COOKIEMASK)) & _M32


def check_tcp_syn_cookie(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                         sseq: int, cookie: int, now: float) -> int | None:
    """The data (MSS index) encoded in ``cookie``, or None if it is too old."""
    count = tcp_cookie_time(now)
    cookie = (cookie - cookie_hash(secret, laddr, lport, raddr, rport, 0, 0) - sseq) & _M32
    # What is left is (count << 24) + (H1 + data) mod 2**24.
    diff = (count - (cookie >> COOKIEBITS)) & (_M32 >> COOKIEBITS)
    if diff >= MAX_SYNCOOKIE_AGE:
        return None
    return (cookie - cookie_hash(secret, laddr, lport, raddr, rport, count - diff, 1)) \
        & COOKIEMASK


def cookie_v4_init_sequence(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                            client_isn: int, mss: int, now: float) -> tuple[int, int]:
    """The cookie ISN for a SYN, and the MSS it encodes (the largest table entry <= mss).

    ``mss`` is the request's MSS as tcp_parse_options leaves it: the SYN's
    option bounded by the listener's TCP_MAXSEG, 536 without the option.  Like
    Linux, an MSS below the smallest entry is encoded as that entry (536), so a
    listener with TCP_MAXSEG 1000 makes cookie children that send 536-byte
    segments (measured on Linux 6.18, tests/tap/test_tcp_kernel_maxseg.py).
    """
    mssind = len(MSSTAB) - 1
    while mssind > 0 and mss < MSSTAB[mssind]:
        mssind -= 1
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
    options = TS_OPT_WSCALE_MASK if wscale is None else wscale & TS_OPT_WSCALE_MASK
    if sack_ok:
        options |= TS_OPT_SACK
    now_ts &= _M32
    ts = ((now_ts >> TSBITS) << TSBITS) | options
    if ts > now_ts:
        ts -= 1 << TSBITS
    return ts & _M32


def cookie_timestamp_decode(tsecr: int) -> tuple[int | None, bool]:
    """(peer window scale or None, SACK permitted) from the cookie ACK's TSecr."""
    wscale: int | None = tsecr & TS_OPT_WSCALE_MASK
    if wscale == TS_OPT_WSCALE_MASK:
        wscale = None
    return wscale, bool(tsecr & TS_OPT_SACK)
