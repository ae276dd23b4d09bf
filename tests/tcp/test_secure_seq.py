"""RFC 6528 ISNs, timestamp offsets, RFC 6056 port offsets."""

from __future__ import annotations

import pytest

from tcpio.core.tcp.secure_seq import (
    secure_port_offset,
    secure_tcp_seq,
    secure_tcp_ts_off,
)

S = b"0123456789abcdef0123456789abcdef"
T = (0x0A000002, 40000, 0x0A000001, 80)


def f_part(secret, tup, now):
    """RFC 6528: ISN = M + F(4-tuple, secret); M counts 4-microsecond ticks."""
    return (secure_tcp_seq(secret, *tup, now) - int(now * 250_000)) % 2**32


@pytest.mark.parametrize("now", [0.0, 1.0, 17.25, 1000.5, 2**31 / 250_000 + 3.0])
def test_isn_is_clock_plus_a_per_tuple_constant(now):
    # The clock part advances 250 000 per second (one per 4 us); what is left
    # (F) does not depend on time.
    assert f_part(S, T, now) == f_part(S, T, 0.0)
    mid = now + 0.000002                 # mid-tick: away from float rounding
    for k in (1, 2, 1000):
        assert secure_tcp_seq(S, *T, mid + k * 0.000004) == \
            (secure_tcp_seq(S, *T, mid) + k) % 2**32


def test_isn_wraps_modulo_2_32():
    # 2**32 ticks of 4 us = 17179.869184 s: the ISN comes back to the same value.
    assert secure_tcp_seq(S, *T, 10.5) == secure_tcp_seq(S, *T, 10.5 + 17179.869184)
    assert all(0 <= secure_tcp_seq(S, *T, t) < 2**32 for t in (0, 1e6, 1e9))


def test_isn_f_differs_per_tuple_and_secret():
    tuples = [(0x0A000002, p, 0x0A000001, 80) for p in range(32768, 33768)]
    tuples += [(0x0A000002, 40000, 0x0A000001, p) for p in range(1, 200)]
    fs = [f_part(S, t, 0.0) for t in tuples]
    assert len(set(fs)) >= len(fs) - 1            # 32-bit values: ~no collisions
    # Swapping the ends is a different connection.
    assert f_part(S, T, 0.0) != f_part(S, (T[2], T[3], T[0], T[1]), 0.0)
    assert f_part(S, T, 0.0) != f_part(b"another secret", T, 0.0)
    # Deterministic for a given secret (RFC 6528: the same connection-id gets
    # a monotonic ISN sequence).
    assert f_part(S, T, 0.0) == f_part(bytes(S), T, 5.0)


def test_long_and_short_secrets_work():
    for secret in (b"", b"k", S * 3):
        v = secure_tcp_seq(secret, *T, 1.0)
        assert 0 <= v < 2**32
    assert secure_tcp_seq(S * 3, *T, 1.0) != secure_tcp_seq(S * 2, *T, 1.0)


def test_ts_offset_per_address_pair():
    off = secure_tcp_ts_off(S, 0x0A000002, 0x0A000001)
    assert 0 <= off < 2**32
    assert off == secure_tcp_ts_off(S, 0x0A000002, 0x0A000001)
    assert off != secure_tcp_ts_off(S, 0x0A000002, 0x0A000003)
    assert off != secure_tcp_ts_off(S, 0x0A000001, 0x0A000002)
    assert off != secure_tcp_ts_off(b"other", 0x0A000002, 0x0A000001)


def test_port_offset_keys_on_destination_not_local_port():
    a = secure_port_offset(S, 0x0A000002, 0x0A000001, 80)
    assert 0 <= a < 2**64
    assert a == secure_port_offset(S, 0x0A000002, 0x0A000001, 80)
    others = {secure_port_offset(S, 0x0A000002, 0x0A000001, p) for p in range(1, 1001)}
    assert len(others) == 1000
    assert a != secure_port_offset(S, 0x0A000002, 0x0A000009, 80)
    assert a != secure_port_offset(b"other", 0x0A000002, 0x0A000001, 80)


def test_port_offset_high_bits_spread_over_the_range():
    # inet_hash_connect uses (offset >> 32) % remaining as the start: it must
    # land all over the ephemeral range, not in a corner.
    remaining = 61000 - 32768
    starts = [(secure_port_offset(S, 0x0A000002, 0x0A000001, p) >> 32) % remaining
              for p in range(1, 2001)]
    quarters = [sum(1 for s in starts if q * remaining // 4 <= s < (q + 1) * remaining // 4)
                for q in range(4)]
    assert all(400 < n < 600 for n in quarters), quarters


def test_isn_f_is_the_documented_keyed_hash_of_the_4_tuple():
    """F as secure_seq documents it, computed here with hashlib alone: BLAKE2s
    keyed by the secret, personalised b"isn", 8 bytes, of the packed 4-tuple
    (local, remote addresses, then ports), read little-endian, low 32 bits."""
    import hashlib
    import struct

    laddr, lport, raddr, rport = T
    h = hashlib.blake2s(key=S, person=b"isn", digest_size=8)
    h.update(struct.pack("!IIHH", laddr, raddr, lport, rport))
    assert f_part(S, T, 5.0) == int.from_bytes(h.digest(), "little") & 0xFFFFFFFF
