"""Keyed 4-tuple hash table for the TCP receive-path lookup (pure twin of ehash.pyx).

This is the kernel's established hash (``inet_hashinfo.ehash``): every full,
request (TCP_NEW_SYN_RECV) and time-wait sock is found by
``(laddr, lport, raddr, rport)`` -- our address and port first, as
``__inet_lookup_established`` takes them.

Why keyed: the remote party chooses ``raddr``/``rport`` (and can spoof them),
so with a public hash it could put every connection in one bucket and turn each
lookup into a linear scan (a hash-flooding attack).  Python's own ``hash`` of an
int tuple is public and deterministic, so a plain dict would be exposed.  Like
Linux (``inet_ehashfn`` = jhash with a boot-time secret) we mix the tuple with a
per-table secret; the mix is a 64-bit multiply-fold (the "mum" step of wyhash)
done twice with four key words derived from ``secret`` by BLAKE2b.

Layout (same in both twins, so tests can compare them): ``nbuckets`` chains,
a power of two; bucket = ``hash4(...) & (nbuckets - 1)``; new entries go to the
head of their chain; the table doubles when it holds more entries than buckets.
Inserting a key that is present replaces its object in place (the core uses
that to swap a request sock for its child, or a sock for its time-wait
twin, as ``inet_ehash_insert(sk, osk)`` does).

Addresses must be 0..2**32-1 and ports 0..65535 (the compiled module raises
OverflowError otherwise; the twin does not check, for speed).

``EHash6`` is the same table for IPv6 4-tuples (issue 17): the addresses are
TCP's tagged ints (``V6TAG | address``, ``tcpio.core.tcp.inet6_addr``; a
plain 128-bit int is the same key, ``items()`` gives them tagged), hashed as
four 64-bit words and the ports with the same key words and the same last
round.  Only the hash differs, so it shares everything else with ``EHash``
(the compiled twin shares its C chains, ``EHashTable``, the same way).  An
IPv4 and an IPv6 connection never share a table, so they never collide,
and ``::ffff:a.b.c.d`` here is an IPv6 key like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

_M64 = (1 << 64) - 1
# Odd 64-bit constants (wyhash's primes) folded into the second round.
_P0 = 0xA0761D6478BD642F
_P1 = 0xE7037ED1A0B428DB

INITIAL_BUCKETS = 64
# TCP's tag on an IPv6 address (tcpio.core.tcp.inet6_addr.V6TAG)
V6TAG = 1 << 128


def derive_keys(secret: bytes) -> tuple[int, int, int, int]:
    """Four 64-bit key words from an arbitrary-length secret (shared with ehash.pyx)."""
    d = hashlib.blake2b(bytes(secret), digest_size=32, person=b"tcpio-ehash").digest()
    return tuple(int.from_bytes(d[i:i + 8], "little") for i in range(0, 32, 8))  # type: ignore[return-value]


class EHash:
    """The established hash: ``(laddr, lport, raddr, rport) -> obj``."""

    __slots__ = ("_buckets", "_count", "_keys", "_mask")

    def __init__(self, secret: bytes, nbuckets: int = INITIAL_BUCKETS) -> None:
        k0, k1, k2, k3 = derive_keys(secret)
        # What the hash needs, in one tuple (one attribute load per lookup).
        self._keys = (k0, k1, k2, _P0 ^ k3)
        n = INITIAL_BUCKETS
        while n < nbuckets:
            n <<= 1
        # Each bucket is a list of [laddr, lport, raddr, rport, obj] entries.
        self._buckets: list[list[list[Any]]] = [[] for _ in range(n)]
        self._mask = n - 1
        self._count = 0

    # -- hashing ------------------------------------------------------------
    def hash4(self, laddr: int, lport: int, raddr: int, rport: int) -> int:
        """The keyed 64-bit hash of a 4-tuple (identical in both twins)."""
        k0, k1, k2, m = self._keys
        p = (((laddr << 32) | raddr) ^ k0) * (((lport << 16) | rport) ^ k1)
        p = (((p ^ (p >> 64)) & _M64) ^ k2) * m
        return (p ^ (p >> 64) ^ _P1) & _M64

    def bucket_index(self, laddr: int, lport: int, raddr: int, rport: int) -> int:
        return self.hash4(laddr, lport, raddr, rport) & self._mask

    @property
    def nbuckets(self) -> int:
        return self._mask + 1

    def bucket_sizes(self) -> list[int]:
        """Chain lengths, bucket by bucket (for tests and diagnostics)."""
        return [len(b) for b in self._buckets]

    # -- the table ------------------------------------------------------------
    def lookup(self, laddr: int, lport: int, raddr: int, rport: int) -> Any:
        # hash4() inlined: this is the per-segment call when not compiled.
        k0, k1, k2, m = self._keys
        p = (((laddr << 32) | raddr) ^ k0) * (((lport << 16) | rport) ^ k1)
        p = (((p ^ (p >> 64)) & _M64) ^ k2) * m
        for e in self._buckets[(p ^ (p >> 64) ^ _P1) & self._mask]:
            if e[0] == laddr and e[1] == lport and e[2] == raddr and e[3] == rport:
                return e[4]
        return None

    def insert(self, laddr: int, lport: int, raddr: int, rport: int, obj: Any) -> None:
        if obj is None:
            raise TypeError("EHash cannot store None")
        bucket = self._buckets[self.bucket_index(laddr, lport, raddr, rport)]
        for e in bucket:
            if e[0] == laddr and e[1] == lport and e[2] == raddr and e[3] == rport:
                e[4] = obj
                return
        bucket.insert(0, [laddr, lport, raddr, rport, obj])
        self._count += 1
        if self._count > self._mask + 1:
            self._grow()

    def remove(self, laddr: int, lport: int, raddr: int, rport: int) -> Any:
        bucket = self._buckets[self.bucket_index(laddr, lport, raddr, rport)]
        for i, e in enumerate(bucket):
            if e[0] == laddr and e[1] == lport and e[2] == raddr and e[3] == rport:
                del bucket[i]
                self._count -= 1
                return e[4]
        return None

    def _grow(self) -> None:
        old = self._buckets
        n = (self._mask + 1) * 2
        self._buckets = [[] for _ in range(n)]
        self._mask = n - 1
        # Re-insert oldest first (chains are head-inserted), so every chain
        # keeps its relative order; the compiled twin does the same.
        for bucket in old:
            for e in reversed(bucket):
                self._buckets[self.bucket_index(e[0], e[1], e[2], e[3])].insert(0, e)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        """Values, bucket by bucket (a snapshot: the table may change meanwhile)."""
        return iter([e[4] for bucket in self._buckets for e in bucket])

    def items(self) -> list[tuple[tuple[int, int, int, int], Any]]:
        return [((e[0], e[1], e[2], e[3]), e[4]) for bucket in self._buckets for e in bucket]


def _mum(a: int, b: int) -> int:
    p = a * b
    return (p ^ (p >> 64)) & _M64


class EHash6(EHash):
    """The IPv6 established hash: ``(laddr, lport, raddr, rport) -> obj``,
    128-bit addresses (tagged or not: stored tagged)."""

    __slots__ = ()

    def hash4(self, laddr: int, lport: int, raddr: int, rport: int) -> int:
        """The keyed 64-bit hash of an IPv6 4-tuple (identical in both twins)."""
        k0, k1, k2, m = self._keys
        a = _mum(((laddr >> 64) & _M64) ^ k0, (laddr & _M64) ^ k1)
        b = _mum(((raddr >> 64) & _M64) ^ k2, (raddr & _M64) ^ (m ^ _P0))
        h = _mum(a ^ ((lport << 16) | rport) ^ _P0, b ^ _P1)
        p = (h ^ k2) * m
        return (p ^ (p >> 64) ^ _P1) & _M64

    def lookup(self, laddr: int, lport: int, raddr: int, rport: int) -> Any:
        laddr |= V6TAG
        raddr |= V6TAG
        for e in self._buckets[self.hash4(laddr, lport, raddr, rport) & self._mask]:
            if e[0] == laddr and e[1] == lport and e[2] == raddr and e[3] == rport:
                return e[4]
        return None

    def insert(self, laddr: int, lport: int, raddr: int, rport: int, obj: Any) -> None:
        super().insert(laddr | V6TAG, lport, raddr | V6TAG, rport, obj)

    def remove(self, laddr: int, lport: int, raddr: int, rport: int) -> Any:
        return super().remove(laddr | V6TAG, lport, raddr | V6TAG, rport)
