"""Header prediction (tcp_fast.rcv_established, Linux tcp_rcv_established's
fast path), one rule per test, on both twins.

The control block is built on each twin's TcpCb (tests/tcp/fastcb.py), so the
rules hold for the pure twin and the compiled module in both builds:
- what is predicted: ESTABLISHED, the segment at rcv_nxt, CA_Open, no
  out-of-order queue, no urgent data, the same window, PAWS ok (RFC 7323
  5.3), and for data an ACK equal to snd_una and an open receive window; for
  a bare ACK, one between snd_una and snd_nxt.  Anything else is declined
  with nothing changed.
- what an accepted segment does: bytes queued, rcv_nxt advanced (mod 2**32),
  TS.Recent taken only when SEG.SEQ <= Last.ACK.sent (RFC 7323 4.3), the
  receiver's RTT from TSecr (tcp_rcv_rtt_measure_ts), the peer's MSS guess and
  quick-ACK mode (tcp_event_data_recv, tcp_incr_quickack), then
  __tcp_ack_snd_check: ACK at once for more than one full segment unacked
  when the window can advance, in quick-ACK mode; else the delayed-ACK timer.
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture

from .fastcb import DEFAULTS, hook_fixture, make_cb

tf = twin_fixture("tcp_fast", "tf")
hooks = hook_fixture()

NXT = DEFAULTS["rcv_nxt"]
UNA = DEFAULTS["snd_una"]
NOW = 10.0


def _snapshot(sk) -> dict:
    out = {name: getattr(sk, name) for name in DEFAULTS}
    out.update(rq=bytes(sk.rq), woken=len(sk.host.woken), armed=list(sk.delack_timer.armed))
    return out


def _rcv(tf, sk, data: bytes = b"", *, seq: int | None = None, ack: int | None = None,
         window: int | None = None, ts: tuple[int, int] | None = None,
         now: float = NOW) -> bool:
    """One segment: ACK (+PSH), at rcv_nxt, acking snd_una, same window unless told."""
    win = (sk.snd_wnd >> sk.snd_wscale) if window is None else window
    has_ts = ts is not None
    ts_val, ts_ecr = ts if has_ts else (0, 0)
    return tf.rcv_established(sk, sk.rcv_nxt if seq is None else seq,
                              sk.snd_una if ack is None else ack, win, has_ts, ts_val,
                              ts_ecr, data, now)


# --- accepted in-order data ------------------------------------------------------------------

def test_in_order_data_is_queued_and_rcv_nxt_advances(tf, hooks):
    sk = make_cb(tf)
    assert _rcv(tf, sk, b"a" * 500) is True
    assert bytes(sk.rq) == b"a" * 500
    assert sk.rcv_nxt == NXT + 500
    assert sk.ack_pending and sk.host.woken == [sk]
    assert sk.rcv_tstamp == NOW


def test_rcv_nxt_wraps_at_2_32(tf, hooks):
    sk = make_cb(tf, rcv_nxt=0xFFFFFF00, rcv_wup=0xFFFFFF00)
    assert _rcv(tf, sk, b"w" * 0x1FF) is True
    assert sk.rcv_nxt == 0xFF


def test_one_small_segment_is_acked_by_the_delayed_ack_timer(tf, hooks):
    """RFC 1122 4.2.3.2 / __tcp_ack_snd_check: not quick-ACK mode, less than
    two full segments unacknowledged: delay (tcp_delack_min)."""
    sk = make_cb(tf)
    assert _rcv(tf, sk, b"x" * 100) is True
    assert hooks.named("send_ack") == []
    assert sk.delack_timer.armed == [NOW + 0.04]


def test_an_armed_delayed_ack_timer_is_not_pushed_back(tf, hooks):
    sk = make_cb(tf)
    sk.delack_timer.arm(NOW - 0.01)
    assert _rcv(tf, sk, b"x" * 100) is True
    assert sk.delack_timer.armed == [NOW - 0.01]


def test_exactly_one_full_segment_unacked_is_delayed(tf, hooks):
    """"More than one full-sized segment" (rcv_nxt - rcv_wup > rcv_mss):
    exactly one MSS is not enough."""
    sk = make_cb(tf)
    assert _rcv(tf, sk, b"x" * 1460) is True
    assert hooks.named("send_ack") == [] and sk.delack_timer.armed == [NOW + 0.04]


def test_the_second_full_segment_is_acked_at_once(tf, hooks):
    """RFC 1122 4.2.3.2: ACK at least every second full-sized segment, when
    the new window would not be smaller than the one offered."""
    sk = make_cb(tf, rcv_wup=NXT - 1460)
    assert _rcv(tf, sk, b"x" * 1460) is True
    assert hooks.named("send_ack") == [("send_ack", NOW)]
    assert sk.delack_timer.armed == []


def test_the_second_full_segment_waits_if_the_window_would_not_advance(tf, hooks):
    """__tcp_ack_snd_check: with __tcp_select_window below rcv_wnd (the
    unread data keeps the window from moving) the ACK is left to the read
    (tcp_cleanup_rbuf) or the timer."""
    # 8000-byte buffer: after the segment, 8000 - 2920 free < the 5840 offered
    sk = make_cb(tf, rcv_wup=NXT - 1460, rcvbuf=8000, rcv_wnd=5840)
    sk.rq = tf.RcvQueue(bytes(1460))
    assert _rcv(tf, sk, b"x" * 1460) is True
    assert hooks.named("send_ack") == [] and sk.delack_timer.armed == [NOW + 0.04]


def test_quickack_mode_acks_every_segment(tf, hooks):
    sk = make_cb(tf, quick=3)
    assert _rcv(tf, sk, b"x" * 10) is True
    assert hooks.named("send_ack") == [("send_ack", NOW)]


def test_a_dead_sock_queues_the_data_but_decides_no_ack(tf, hooks):
    """An orphaned sock's data is handled (and reset) by the caller."""
    sk = make_cb(tf, quick=3, dead=True)
    assert _rcv(tf, sk, b"x" * 10) is True
    assert bytes(sk.rq) == b"x" * 10 and sk.ack_pending
    assert hooks.calls == [] and sk.delack_timer.armed == []


# --- tcp_event_data_recv -------------------------------------------------------------------

@pytest.mark.parametrize("rcv_mss, advmss, n, expect", [
    (536, 1460, 1000, 1000),     # a bigger segment raises the guess
    (536, 1460, 9000, 1460),     # ...never above our own MSS
    (1000, 1460, 999, 1000),     # a smaller one leaves it
    (1000, 1460, 1000, 1000),
    (1460, 1000, 1460, 1460),    # equal: nothing to learn
])
def test_the_peers_mss_guess_grows_with_the_segments(tf, hooks, rcv_mss, advmss, n, expect):
    """tcp_measure_rcv_mss: rcv_mss = min(len, advmss) for a segment above it."""
    sk = make_cb(tf, rcv_mss=rcv_mss, advmss=advmss, rcvbuf=1 << 22, window_clamp=1 << 22,
                 rcv_wnd=1 << 20)
    assert _rcv(tf, sk, bytes(n)) is True
    assert sk.rcv_mss == expect


@pytest.mark.parametrize("rcv_wnd, rcv_mss, expect", [
    (65535, 1460, 16),        # 22, capped at TCP_MAX_QUICKACKS
    (29200, 1460, 10),        # rcv_wnd / (2 * rcv_mss)
    (46720, 1460, 16),        # exactly 16
    (49640, 1460, 16),        # 17 -> 16
    (10, 1, 5),
    (1000, 1460, 2),          # 0 -> at least 2
])
def test_first_data_enters_quickack_mode_for_half_a_window_of_segments(tf, hooks, rcv_wnd,
                                                                       rcv_mss, expect):
    """tcp_event_data_recv -> tcp_incr_quickack: the first data makes the
    next rcv_wnd / (2 * rcv_mss) ACKs immediate (at least 2, at most
    TCP_MAX_QUICKACKS = 16), so slow start is not slowed by delayed ACKs."""
    sk = make_cb(tf, got_data=False, rcv_wnd=rcv_wnd, rcv_mss=rcv_mss,
                 rcv_wup=NXT, rcvbuf=1 << 20, window_clamp=1 << 20)
    assert _rcv(tf, sk, b"d") is True
    assert sk.got_data
    assert sk.quick == expect
    assert hooks.named("send_ack") == [("send_ack", NOW)]


def test_later_data_does_not_restart_quickack_mode(tf, hooks):
    sk = make_cb(tf, got_data=True, quick=0)
    assert _rcv(tf, sk, b"d") is True
    assert sk.quick == 0


# --- timestamps --------------------------------------------------------------------------

def test_ts_recent_is_taken_when_the_segment_starts_at_the_last_ack_sent(tf, hooks):
    """RFC 7323 4.3: TS.Recent = SEG.TSval when SEG.SEQ <= Last.ACK.sent (rcv_wup)."""
    sk = make_cb(tf, tstamp_ok=True, ts_recent=500)
    assert _rcv(tf, sk, b"t" * 10, ts=(777, 0), now=12.5) is True
    assert (sk.ts_recent, sk.ts_recent_stamp) == (777, 12.5)


def test_ts_recent_is_kept_for_a_segment_past_the_last_ack_sent(tf, hooks):
    """...and not for a segment that starts beyond rcv_wup (data we have not
    acknowledged yet came before it)."""
    sk = make_cb(tf, tstamp_ok=True, ts_recent=500, rcv_wup=NXT - 100, ts_recent_stamp=1.0)
    assert _rcv(tf, sk, b"t" * 10, ts=(777, 0), now=12.5) is True
    assert (sk.ts_recent, sk.ts_recent_stamp) == (500, 1.0)
    assert sk.rcv_tstamp == 12.5          # the peer was heard from all the same


def test_no_timestamp_no_ts_recent(tf, hooks):
    sk = make_cb(tf, ts_recent=500)
    assert tf.rcv_established(sk, NXT, UNA, 65535, False, 777, 0, b"x", NOW) is True
    assert sk.ts_recent == 500 and sk.ts_recent_stamp == 0.0


@pytest.mark.parametrize("ts_recent, ts_val, taken", [
    (1000, 999, False),               # older than TS.Recent: PAWS
    (1000, 1000, True),               # equal is fine
    (1000, 1001, True),
    (0xFFFFFFF0, 5, True),            # newer across the wrap
    (5, 0xFFFFFFF0, False),           # older across the wrap
    (1000, 1000 + 0x7FFFFFFF, True),  # 2**31 - 1 ahead: newer
    (1000, 1000 + 0x80000000, False), # 2**31 away: before() in 32-bit arithmetic
])
def test_paws_declines_a_segment_with_an_older_timestamp(tf, hooks, ts_recent, ts_val, taken):
    """RFC 7323 5.3 R1: SEG.TSval < TS.Recent (mod 2**32) fails PAWS: not
    predicted (the slow path drops it and ACKs)."""
    sk = make_cb(tf, tstamp_ok=True, ts_recent=ts_recent)
    before = _snapshot(sk)
    assert _rcv(tf, sk, b"p" * 10, ts=(ts_val, 0)) is taken
    if not taken:
        assert _snapshot(sk) == before and hooks.calls == []


def test_a_segment_without_timestamp_on_a_timestamp_connection_is_declined(tf, hooks):
    """RFC 7323 3.2: once negotiated, every segment carries TSopt."""
    sk = make_cb(tf, tstamp_ok=True, ts_recent=0)
    before = _snapshot(sk)
    assert _rcv(tf, sk, b"p" * 10) is False
    assert _snapshot(sk) == before


def test_a_connection_without_timestamps_takes_segments_without_them(tf, hooks):
    sk = make_cb(tf, tstamp_ok=False, ts_recent=1000)
    assert _rcv(tf, sk, b"p" * 10) is True


@pytest.mark.parametrize("now, ts_off, ts_ecr, rcv_rtt, expect", [
    (10.0, 0, 9900, 0.0, 0.1),                     # first sample: 100 ms
    (10.0, 0, 9900, 0.5, 0.5 * 0.875 + 0.1 * 0.125),   # then a 1/8 moving average
    (10.0, 0, 9899, 0.0, 0.101),
    (10.0, 0, 10000, 0.0, 0.001),                  # same ms: at least 1 ms
    (10.0, (1 << 32) - 5000, (5000 - 300) & 0xFFFFFFFF, 0.0, 0.3),  # clock + offset wraps
    (10.0, 0, 10001, 0.25, 0.25),                  # echo from the future: no sample
    (10.0, 0, (10000 + 0x80000000) & 0xFFFFFFFF, 0.25, 0.25),   # 2**31 away: no sample
    (10.0, 0, (10000 - 0x7FFFFFFE) & 0xFFFFFFFF, 0.0, 0x7FFFFFFE / 1000.0),
])
def test_receiver_rtt_from_the_echoed_timestamp(tf, hooks, now, ts_off, ts_ecr, rcv_rtt,
                                                expect):
    """tcp_rcv_rtt_measure_ts: sample = our ms clock (+ ts_off) - TSecr,
    at least 1 ms, a signed 32-bit difference (negative: no sample); the
    first sample is taken as is, then rcv_rtt = 7/8 rcv_rtt + 1/8 sample."""
    sk = make_cb(tf, tstamp_ok=True, ts_off=ts_off, rcv_rtt=rcv_rtt)
    assert _rcv(tf, sk, b"r" * 10, ts=(1, ts_ecr), now=now) is True
    assert sk.rcv_rtt == pytest.approx(expect, rel=1e-12)


@pytest.mark.parametrize("delta", [0, 1, 0x7FFFFFFD, 0x7FFFFFFE, 0x7FFFFFFF, 0x80000000,
                                   0x80000001, 0xFFFFFFFF])
def test_receiver_rtt_sample_is_the_slow_paths(tf, hooks, delta):
    """Header prediction is an optimisation: for any echoed timestamp the
    fast path takes the same receiver RTT sample as tcp_input's
    tcp_rcv_rtt_measure_ts, up to the edges of the 32-bit difference."""
    from types import SimpleNamespace

    from tcpio.core.tcp.tcp_input import tcp_rcv_rtt_measure_ts

    now, ts_off = 20.0, 12345
    ts_ecr = (20000 + ts_off - delta) & 0xFFFFFFFF
    for prior in (0.0, 0.3):
        slow = SimpleNamespace(ts_off=ts_off, rcv_rtt=prior)
        tcp_rcv_rtt_measure_ts(slow, SimpleNamespace(opts=SimpleNamespace(ts_ecr=ts_ecr)), now)
        sk = make_cb(tf, tstamp_ok=True, ts_off=ts_off, rcv_rtt=prior)
        assert _rcv(tf, sk, b"r" * 10, ts=(1, ts_ecr), now=now) is True
        assert sk.rcv_rtt == slow.rcv_rtt


def test_no_receiver_rtt_without_timestamps_or_with_a_zero_echo(tf, hooks):
    sk = make_cb(tf, tstamp_ok=False, rcv_rtt=0.0)
    assert tf.rcv_established(sk, NXT, UNA, 65535, False, 0, 9900, b"x", NOW) is True
    assert sk.rcv_rtt == 0.0
    sk = make_cb(tf, tstamp_ok=True, rcv_rtt=0.0)
    assert _rcv(tf, sk, b"x", ts=(1, 0)) is True
    assert sk.rcv_rtt == 0.0


# --- what is not predicted -----------------------------------------------------------------

def _declined(tf, hooks, sk, data=b"z" * 500, **kw) -> None:
    before = _snapshot(sk)
    assert _rcv(tf, sk, data, **kw) is False
    assert _snapshot(sk) == before
    assert hooks.calls == []


@pytest.mark.parametrize("state", [2, 3, 4, 7, 8])
def test_not_established_is_not_predicted(tf, hooks, state):
    _declined(tf, hooks, make_cb(tf, state=state))


@pytest.mark.parametrize("delta", [1, -1, 0x80000000])
def test_a_segment_not_at_rcv_nxt_is_not_predicted(tf, hooks, delta):
    sk = make_cb(tf)
    _declined(tf, hooks, sk, seq=(NXT + delta) & 0xFFFFFFFF)
    _declined(tf, hooks, sk, b"", seq=(NXT + delta) & 0xFFFFFFFF)


@pytest.mark.parametrize("ca_state", [1, 2, 3, 4])
def test_loss_recovery_is_not_predicted(tf, hooks, ca_state):
    _declined(tf, hooks, make_cb(tf, ca_state=ca_state))


def test_an_out_of_order_queue_is_not_predicted(tf, hooks):
    sk = make_cb(tf)
    sk.ofo = [(NXT + 1000, NXT + 1010, b"q" * 10, 0)]
    _declined(tf, hooks, sk)


def test_pending_urgent_data_is_not_predicted(tf, hooks):
    sk = make_cb(tf)
    sk.urg_seq = NXT + 3
    _declined(tf, hooks, sk)


def test_a_window_change_is_not_predicted(tf, hooks):
    """The scaled window field must equal snd_wnd (RFC 7323 2.3)."""
    sk = make_cb(tf, snd_wscale=7, snd_wnd=1000 << 7)
    _declined(tf, hooks, sk, window=999)
    _declined(tf, hooks, sk, b"", window=1001)
    assert _rcv(tf, sk, b"z", window=1000) is True


@pytest.mark.parametrize("delta", [1, -1])
def test_data_that_acknowledges_anything_but_snd_una_is_not_predicted(tf, hooks, delta):
    sk = make_cb(tf, snd_nxt=UNA + 5000, packets_out=3)
    _declined(tf, hooks, sk, ack=(UNA + delta) & 0xFFFFFFFF)


@pytest.mark.parametrize("rcv_wup, rcv_wnd, ok", [
    (NXT - 1000, 1000, False),       # the window is used up
    (NXT - 2000, 1000, False),       # overrun (a shrunk offer)
    (NXT, 0, False),                 # a zero window offered
    (NXT - 999, 1000, True),         # one byte left
])
def test_data_into_a_closed_receive_window_is_not_predicted(tf, hooks, rcv_wup, rcv_wnd, ok):
    """tcp_receive_window() == 0: the slow path drops it (TCPZeroWindowDrop) and ACKs."""
    sk = make_cb(tf, rcv_wup=rcv_wup, rcv_wnd=rcv_wnd)
    if ok:
        assert _rcv(tf, sk, b"z" * 10) is True
    else:
        _declined(tf, hooks, sk)


# --- bare ACKs -----------------------------------------------------------------------------

def test_a_bare_ack_of_new_data_runs_tcp_ack(tf, hooks):
    """The fast path's tcp_ack (through the ack_predicted hook) with the
    segment's fields; nothing is queued and no ACK is scheduled for it."""
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=3, tstamp_ok=True, ts_recent=50)
    assert _rcv(tf, sk, ack=UNA + 1000, ts=(60, 70), now=4.5) is True
    assert hooks.calls == [("ack_predicted", NXT, UNA + 1000, 65535, 60, 70, 4.5)]
    assert (sk.ts_recent, sk.ts_recent_stamp, sk.rcv_tstamp) == (60, 4.5, 4.5)
    assert not sk.ack_pending and len(sk.rq) == 0 and sk.host.woken == []
    assert sk.rcv_nxt == NXT


def test_a_bare_ack_without_timestamps_passes_none(tf, hooks):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=3)
    assert tf.rcv_established(sk, NXT, UNA + 3000, 65535, False, 8, 9, b"", 4.5) is True
    assert hooks.calls == [("ack_predicted", NXT, UNA + 3000, 65535, None, None, 4.5)]


def test_a_duplicate_ack_with_data_in_flight_runs_tcp_ack(tf, hooks):
    """A duplicate ACK counts for fast retransmit (RFC 5681 3.2): tcp_ack."""
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=3)
    assert _rcv(tf, sk) is True
    assert hooks.calls == [("ack_predicted", NXT, UNA, 65535, None, None, NOW)]


def test_a_bare_ack_with_nothing_outstanding_is_only_bookkeeping(tf, hooks):
    sk = make_cb(tf, tstamp_ok=True, ts_recent=50)
    before = _snapshot(sk)
    assert _rcv(tf, sk, ts=(60, 0), now=4.5) is True
    assert hooks.calls == []
    after = _snapshot(sk)
    assert (after.pop("ts_recent"), after.pop("ts_recent_stamp"), after.pop("rcv_tstamp")) == \
        (60, 4.5, 4.5)
    for k in ("ts_recent", "ts_recent_stamp", "rcv_tstamp"):
        before.pop(k)
    assert after == before


@pytest.mark.parametrize("ack, ok", [
    (UNA - 1, False),            # below snd_una: old
    (UNA, True),
    (UNA + 3000, True),          # == snd_nxt
    (UNA + 3001, False),         # data never sent
])
def test_a_bare_ack_must_lie_between_snd_una_and_snd_nxt(tf, hooks, ack, ok):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=3)
    if ok:
        assert _rcv(tf, sk, ack=ack) is True
        assert [c[2] for c in hooks.named("ack_predicted")] == [ack]
    else:
        _declined(tf, hooks, sk, b"", ack=ack)
