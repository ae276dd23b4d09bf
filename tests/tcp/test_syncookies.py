"""SYN cookies: round trips, the MSS table, expiry after two 64 s periods,
tampering, and the timestamp option bits, against Linux's syncookies.c rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpio.core.tcp.syncookies import (
    MSSTAB,
    cookie_init_timestamp,
    cookie_timestamp_decode,
    cookie_v4_check,
    cookie_v4_init_sequence,
)

S = b"cookie secret"
L, LP, R, RP = 0x0A000002, 80, 0x0A000001, 51000
ISN = 0x12345678
NOW = 64 * 1000 + 5.0          # 5 s into a 64 s period


def cookie(mss=1460, now=NOW, isn=ISN, secret=S):
    return cookie_v4_init_sequence(secret, L, LP, R, RP, isn, mss, now)


def check(c, now=NOW, isn=ISN, secret=S, tup=(L, LP, R, RP)):
    return cookie_v4_check(secret, *tup, isn, c, now)


@pytest.mark.parametrize("mss,want", [
    (1460, 1460), (9000, 1460), (1459, 1440), (1440, 1440), (1400, 1300),
    (1300, 1300), (1299, 536), (536, 536), (100, 536),
])
def test_mss_table_encoding(mss, want):
    # Linux msstab {536, 1300, 1440, 1460}: the largest entry <= the peer's
    # MSS, and 536 below that.
    c, used = cookie(mss)
    assert used == want and want in MSSTAB
    assert check(c) == want


@settings(max_examples=200, deadline=None)
@given(tup=st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 65535),
                     st.integers(0, 2**32 - 1), st.integers(0, 65535)),
       isn=st.integers(0, 2**32 - 1), mss=st.integers(1, 65535),
       now=st.floats(0, 1e9), secret=st.binary(max_size=40))
def test_round_trip(tup, isn, mss, now, secret):
    c, used = cookie_v4_init_sequence(secret, *tup, isn, mss, now)
    assert 0 <= c < 2**32
    assert cookie_v4_check(secret, *tup, isn, c, now) == used


def test_client_isn_enters_linearly():
    # Linux adds the client's ISN to the cookie: the same SYN retransmitted
    # with seq + 1 gives cookie + 1 (and wraps mod 2**32).
    c0, _ = cookie(isn=ISN)
    c1, _ = cookie(isn=ISN + 1)
    assert c1 == (c0 + 1) % 2**32


def test_valid_for_two_counter_periods_then_expired():
    # Counter = floor(now / 64).  Accepted while now's counter is the
    # cookie's or the next (MAX_SYNCOOKIE_AGE = 2), rejected after.
    t0 = 64 * 1000 + 63.0          # issued at the very end of period 1000
    c, used = cookie(now=t0)
    assert check(c, now=t0) == used
    assert check(c, now=64 * 1001) == used
    assert check(c, now=64 * 1001 + 63.9) == used
    assert check(c, now=64 * 1002) is None
    assert check(c, now=64 * 1500) is None
    # And a cookie is not valid before its time (a counter from the future).
    assert check(c, now=64 * 999 + 10) is None


def test_tampered_cookie_rejected():
    c, _ = cookie()
    accepted = [bit for bit in range(32) if check(c ^ (1 << bit)) is not None]
    # Flipping bit 0/1 may move between valid MSS indexes (the index is in the
    # low bits of H1 + index): Linux has the same property. Every other bit
    # breaks the hash (or the counter).
    assert set(accepted) <= {0, 1}
    for delta in (4, 1 << 10, 1 << 23, 1 << 24, 1 << 31):
        assert check((c + delta) % 2**32) is None


def test_cookie_bound_to_connection_and_secret():
    c, _ = cookie()
    # The client ISN is added linearly, so ISN + k for tiny k only moves the
    # MSS index (as in Linux: the ACK's seq must be that of the SYN + 1 for the
    # connection to work anyway); anything larger fails.
    for k in (16, 1 << 12, 1 << 24, 1 << 31):
        assert check(c, isn=(ISN + k) % 2**32) is None
    assert check(c, secret=b"other secret") is None
    for tup in [(L + 1, LP, R, RP), (L, LP + 1, R, RP), (L, LP, R + 1, RP),
                (L, LP, R, RP + 1), (R, RP, L, LP)]:
        assert check(c, tup=tup) is None


def test_random_cookies_almost_never_pass():
    # A blind attacker guessing: 4 valid indexes out of 2**24 residues, times
    # 2 acceptable counters.
    import random
    rng = random.Random(1)
    hits = sum(check(rng.getrandbits(32)) is not None for _ in range(20000))
    assert hits <= 1


@pytest.mark.parametrize("wscale", [None, 0, 1, 7, 14])
@pytest.mark.parametrize("sack", [False, True])
@pytest.mark.parametrize("now_ts", [0x1000, 0x1000 + 63, 0xFFFFFFFF, 123456789])
def test_timestamp_carries_wscale_and_sack(wscale, sack, now_ts):
    ts = cookie_init_timestamp(now_ts, wscale, sack)
    assert 0 <= ts < 2**32
    # Low 6 bits: 4 bits window scale (0xF = none), bit 4 SACK (Linux TSBITS).
    assert ts & 0xF == (0xF if wscale is None else wscale)
    assert bool(ts & 0x10) == sack
    assert not ts & 0x20
    # Never ahead of the clock, and less than 64 ticks behind it.
    assert 0 <= (now_ts - ts) % 2**32 < 64
    assert cookie_timestamp_decode(ts) == (wscale, sack)


def test_timestamp_clock_wrap_at_zero():
    # Clock just past 0: stepping back a 64-tick block wraps to the top.
    ts = cookie_init_timestamp(5, 7, True)
    assert ts == (2**32 - 64) | 0x17
    assert cookie_timestamp_decode(ts) == (7, True)
