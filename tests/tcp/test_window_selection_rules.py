"""Receive window selection (tcp_fast.select_window = Linux __tcp_select_window,
tcp_fast.tcp_select_window = tcp_select_window), one rule per test, on both twins.

- receiver SWS avoidance (RFC 1122 4.2.3.3): no window while the free space
  is below both one MSS and half the buffer;
- without window scaling, the offer is kept while it is within one MSS of the
  free space, else the free space rounded down to whole MSS;
- with scaling (RFC 7323 2.3), whole MSS (or whole scaling units, if larger),
  and a multiple of 1 << rcv_wscale, which the scaled field can express;
- the right edge never moves back (RFC 7323 2.4, RFC 9293 3.8.6.2.2; Linux
  tcp_select_window: "never shrink the offered window"): the offer is at least
  what is left of the last one, rounded up to the scaling unit;
- the field is at most 65535 (<< rcv_wscale), and rcv_wnd/rcv_wup record
  what was offered and at which rcv_nxt.
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture

from .fastcb import make_cb

tf = twin_fixture("tcp_fast", "tf")

NXT = 100_000


def _cb(tf, *, rq: int = 0, **kw):
    kw.setdefault("window_clamp", 65535 << 14)
    sk = make_cb(tf, rcv_nxt=NXT, rcv_wup=NXT, **kw)
    sk.rq = tf.RcvQueue(bytes(rq))
    return sk


# (fields, expected __tcp_select_window)
_SELECT = {
    # SWS avoidance: 1000 free of 10000, MSS 1460
    "sws_zero": ({"rcvbuf": 10_000, "rq": 9000, "rcv_wnd": 1000}, 0),
    "ofo_counts_as_used": ({"rcvbuf": 10_000, "ofo_bytes": 9000, "rcv_wnd": 1000}, 0),
    "over_committed": ({"rcvbuf": 1000, "rq": 2000, "rcv_wnd": 0}, 0),
    # half the buffer free but less than one MSS: offered (small buffers)
    "half_buffer_free": ({"rcvbuf": 1000, "rq": 500, "rcv_mss": 536, "rcv_wnd": 500}, 500),
    # one MSS free but less than half the buffer: offered
    "one_mss_free": ({"rcvbuf": 10_000, "rq": 10_000 - 536, "rcv_mss": 536, "rcv_wnd": 0}, 536),
    # below both a quarter of... no: below half and below one MSS
    "below_half_and_mss": ({"rcvbuf": 1000, "rq": 700, "rcv_mss": 536, "rcv_wnd": 300}, 0),
    "above_half_below_mss": ({"rcvbuf": 1000, "rq": 400, "rcv_wnd": 600}, 600),
    # the MSS is the smaller of the peer's guess and ours
    "mss_is_min_of_rcv_mss_and_advmss": ({"rcvbuf": 1 << 20, "window_clamp": 20_500,
                                              "advmss": 1000, "rcv_wnd": 0}, 20_000),
    "clamp_limits": ({"rcvbuf": 1 << 20, "window_clamp": 20_000, "rcv_wnd": 0}, 13 * 1460),
    "ofo_reduces_free": ({"rcvbuf": 20_000, "rq": 1000, "ofo_bytes": 2000, "rcv_wnd": 0}, 11 * 1460),
    # an MSS guess of 0 rounds to single bytes, never divides by zero
    "zero_mss_guess": ({"rcvbuf": 1 << 20, "window_clamp": 20_501, "rcv_mss": 0, "rcv_wnd": 0}, 20_501),
    # no scaling: keep the current offer within one MSS below the free space...
    "keep_within_one_mss": ({"rcvbuf": 10_000, "rcv_wnd": 9000}, 9000),
    "keep_just_above_free_minus_mss": ({"rcvbuf": 10_000, "rcv_wnd": 8541}, 8541),
    "keep_equal_to_free": ({"rcvbuf": 10_000, "rcv_wnd": 10_000}, 10_000),
    # ...else whole MSS of it
    "round_at_free_minus_mss": ({"rcvbuf": 10_000, "rcv_wnd": 8540}, 6 * 1460),
    "round_above_free": ({"rcvbuf": 10_000, "rcv_wnd": 10_001}, 6 * 1460),
    # scaling: whole MSS, then whole 1 << wscale
    "scaled_mss_then_unit": ({"rcvbuf": 1 << 20, "window_clamp": 100_000, "rcv_wscale": 7,
                                  "rcv_wnd": 0}, 99_200),
    # a unit larger than the MSS: whole units
    "scaled_unit_above_mss": ({"rcvbuf": 1 << 20, "window_clamp": 65_636, "rcv_wscale": 14,
                                   "rcv_wnd": 0}, 65_536),
    # scaled, less than one MSS free (but half the buffer): the free space in units
    "scaled_below_mss": ({"rcvbuf": 2000, "rq": 901, "rcv_wscale": 2, "rcv_wnd": 0}, 1096),
    "scaled_sws_zero": ({"rcvbuf": 100_000, "rq": 99_000, "rcv_wscale": 7, "rcv_wnd": 0}, 0),
}


@pytest.mark.parametrize("case", list(_SELECT))
def test_select_window(tf, case):
    fields, expect = _SELECT[case]
    sk = _cb(tf, **fields)
    assert tf.select_window(sk) == expect


def test_select_window_changes_nothing(tf):
    sk = _cb(tf, rcvbuf=10_000, rq=100, rcv_wnd=8540)
    before = (sk.rcv_wnd, sk.rcv_wup, sk.rcv_nxt, bytes(sk.rq))
    tf.select_window(sk)
    assert (sk.rcv_wnd, sk.rcv_wup, sk.rcv_nxt, bytes(sk.rq)) == before


# --- tcp_select_window --------------------------------------------------------------------

def test_the_window_field_is_the_selected_window_scaled_down(tf):
    """The field carries window >> rcv_wscale; rcv_wnd keeps the unscaled
    offer and rcv_wup the rcv_nxt it was made at (tcp_select_window)."""
    sk = _cb(tf, rcvbuf=1 << 20, window_clamp=100_000, rcv_wscale=7, rcv_wnd=0)
    sk.rcv_wup = NXT - 5            # the last offer was made before 5 more bytes came
    assert tf.tcp_select_window(sk) == 99_200 >> 7
    assert (sk.rcv_wnd, sk.rcv_wup) == (99_200, NXT)


@pytest.mark.parametrize("wscale, cap", [(0, 65535), (2, 65535 << 2)])
def test_the_window_field_is_at_most_65535_units(tf, wscale, cap):
    """RFC 7323 2.3: 16 bits of window, scaled; a larger free space is capped."""
    sk = _cb(tf, rcvbuf=1 << 22, window_clamp=1 << 21, rcv_wscale=wscale, rcv_wnd=0)
    assert tf.tcp_select_window(sk) == 65535
    assert sk.rcv_wnd == cap


@pytest.mark.parametrize("wscale, left, expect_field", [
    (0, 64_535, 64_535),                # unscaled: exactly what is left
    (7, 992 * 128 + 1, 993),            # scaled: rounded up to a whole unit
    (7, 992 * 128, 992),                # already whole: as is
    (7, 992 * 128 + 127, 993),
])
def test_the_right_edge_never_moves_back(tf, wscale, left, expect_field):
    """RFC 7323 2.4 / RFC 9293 3.8.6.2.2: when the buffer has filled (the
    free space is now below what the last offer still allows) the new offer
    is what is left of the old one (rcv_wup + rcv_wnd - rcv_nxt), rounded up
    to the scaling unit, not less."""
    gran = 1 << wscale
    old = 1000 * gran if wscale else 65_535
    sk = _cb(tf, rcvbuf=70_000, rq=60_000, window_clamp=65_535 << wscale, rcv_wscale=wscale,
             rcv_wnd=old)
    sk.rcv_wup = NXT - (old - left)
    assert tf.select_window(sk) < left          # the buffer would offer less
    assert tf.tcp_select_window(sk) == expect_field
    assert sk.rcv_wnd == expect_field << wscale and sk.rcv_wup == NXT


def test_an_offer_that_grows_is_taken(tf):
    sk = _cb(tf, rcvbuf=10_000, rcv_wnd=1000)
    sk.rcv_wup = NXT - 500
    assert tf.tcp_select_window(sk) == 6 * 1460
    assert sk.rcv_wnd == 6 * 1460


def test_an_overrun_old_offer_does_not_hold_the_window_open(tf):
    """What is left of the last offer is never negative (tcp_receive_window):
    a peer that sent past it does not make the new offer any larger."""
    sk = _cb(tf, rcvbuf=10_000, rq=9000, rcv_wnd=1000)
    sk.rcv_wup = NXT - 2000
    assert tf.tcp_select_window(sk) == 0
    assert (sk.rcv_wnd, sk.rcv_wup) == (0, NXT)


def test_the_left_over_window_is_measured_across_the_wrap(tf):
    """rcv_wup + rcv_wnd - rcv_nxt in sequence space: rcv_wup just below 2**32,
    rcv_nxt just past it."""
    sk = make_cb(tf, rcvbuf=70_000, window_clamp=65_535, rcv_wnd=40_001,
                 rcv_wup=0xFFFFFFF0, rcv_nxt=0x11)
    sk.rq = tf.RcvQueue(bytes(60_000))
    assert tf.tcp_select_window(sk) == 40_001 - 0x21
