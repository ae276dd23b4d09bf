"""Keyed per-connection values: ISN (RFC 6528), timestamp offset, port offset (RFC 6056).

Linux's ``net/core/secure_seq.c`` computes these with SipHash keyed by a boot
secret; we use BLAKE2s keyed by the stack's secret, with a different
personalisation string per use so the three values are independent.  These run
once per connection setup, never per segment.

Addresses are host-order ints, ports ints, ``now`` seconds (float).
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache

from .inet6_addr import V6MASK, addr_key

_PACK_4TUPLE = struct.Struct("!IIHH").pack
_PACK_ADDRS = struct.Struct("!II").pack
_PACK_PORT_KEY = struct.Struct("!IIH").pack

# RFC 6528 section 3: ISN = M + F(...), M a timer ticking every 4 microseconds.
ISN_TICKS_PER_SECOND = 250_000


@lru_cache(maxsize=64)
def _keyed(secret: bytes, person: bytes, digest_size: int) -> hashlib.blake2s:
    """A keyed BLAKE2s state to ``copy()`` from (saves re-keying per call)."""
    key = secret if len(secret) <= 32 else hashlib.blake2s(secret).digest()
    return hashlib.blake2s(key=key, person=person, digest_size=digest_size)


def keyed_digest(secret: bytes, person: bytes, msg: bytes, digest_size: int = 8) -> bytes:
    """BLAKE2s of ``msg`` keyed by ``secret``, personalised per use (syncookies too)."""
    h = _keyed(bytes(secret), person, digest_size).copy()
    h.update(msg)
    return h.digest()


def _h64(secret: bytes, person: bytes, msg: bytes) -> int:
    return int.from_bytes(keyed_digest(secret, person, msg), "little")


def secure_tcp_seq(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                   now: float, f: int | None = None) -> int:
    """RFC 6528 initial sequence number: F(4-tuple, secret) + 4-microsecond clock.
    IPv6 addresses (tagged, inet6_addr) enter as their keyed 32-bit fold.
    ``f``: F already computed by the caller (the SYN path's keys, compiled:
    syn_fast.isn_hash, the same value)."""
    if f is None:
        if raddr > V6MASK or laddr > V6MASK:
            laddr, raddr = addr_key(secret, laddr), addr_key(secret, raddr)
        # (_h64 inlined: once per connection, each side)
        h = _keyed(bytes(secret), b"isn", 8).copy()
        h.update(_PACK_4TUPLE(laddr, raddr, lport, rport))
        f = int.from_bytes(h.digest(), "little") & 0xFFFFFFFF
    return (f + int(now * ISN_TICKS_PER_SECOND)) & 0xFFFFFFFF


def secure_tcp_ts_off(secret: bytes, laddr: int, raddr: int) -> int:
    """Per address-pair TCP timestamp offset (Linux ``secure_tcp_ts_off``), 32 bits.

    Hides the host's uptime from the peer and keeps the offset stable between
    connections to the same peer, which PAWS across connections relies on.
    """
    laddr, raddr = addr_key(secret, laddr), addr_key(secret, raddr)
    return _h64(secret, b"tsoff", _PACK_ADDRS(laddr, raddr)) & 0xFFFFFFFF


def secure_port_offset(secret: bytes, laddr: int, raddr: int, rport: int) -> int:
    """RFC 6056 F(local addr, remote addr, remote port, secret), 64 bits.

    Like Linux's ``secure_ipv4_port_ephemeral`` the result is 64 bits:
    ``inet_hash_connect`` uses the low bits to pick a perturbation slot and the
    high 32 bits as the starting offset in the ephemeral range.
    """
    laddr, raddr = addr_key(secret, laddr), addr_key(secret, raddr)
    return _h64(secret, b"port", _PACK_PORT_KEY(laddr, raddr, rport))
