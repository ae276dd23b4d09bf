"""CUBIC congestion control (RFC 9438) with HyStart++ (RFC 9406).

Window growth in congestion avoidance (cwnd in segments, t in seconds):

    W_cubic(t) = C * (t - K)**3 + W_max,   K = cbrt((W_max - cwnd_epoch) / C)

with C = 0.4 and beta_cubic = 0.7.  ``t`` runs from the start of the current
congestion-avoidance stage (the epoch); ``cwnd_epoch`` is cwnd then.  Each ACK
moves cwnd toward ``target = W_cubic(t + RTT)`` clamped to [cwnd, 1.5 cwnd]
(section 4.2), by (target - cwnd) / cwnd per acked segment.

Reno-friendly region (section 4.3): W_est starts at cwnd_epoch and grows by
alpha_cubic * acked / cwnd, alpha_cubic = 3 (1 - beta) / (1 + beta), and by
1 per cwnd acked once W_est >= cwnd_prior.  If W_cubic(t) < W_est, cwnd
follows W_est.

On loss (section 4.6/4.7): ssthresh = cwnd * beta (at least 2); W_max = cwnd, or
with fast convergence cwnd * (1 + beta) / 2 when cwnd fell below the previous
W_max.  After an RTO (section 4.8) the next epoch has K = 0 and
W_max = cwnd_epoch.  (Linux uses cwnd, not FlightSize, as the base of the
reduction; so do we.)

The window is an integer number of segments like the kernel's: the desired
per-ACK growth is turned into "one segment per ``cnt`` acked" and applied with
``tcp_cong_avoid_ai`` (as Linux's ``bictcp_update`` sets ``ca->cnt``).

Slow start exit uses HyStart++ (RFC 9406, not the kernel's ACK-train/delay
HyStart): per round trip it compares the minimum RTT of the round with the
previous round's; a rise of max(4 ms, min(lastRoundMinRTT / 8, 16 ms)) after
N_RTT_SAMPLE samples moves to Conservative Slow Start (growth divided by 4),
which ends in congestion avoidance after CSS_ROUNDS rounds, or returns to slow
start if the RTT falls back below the baseline.  Like the RFC recommends,
HyStart++ runs only in the initial slow start (until the first loss).  Its
per-ACK cap on growth (L = 8 segments for a non-paced sender) is left out, as
Linux's tcp_slow_start has none (cwnd += acked): one ACK for the initial
window of ten lets twenty out.
"""

from __future__ import annotations

import math
from typing import Any

from tcpio.core.tcp.tcp_ca import (
    CA_EVENT_TX_START,
    CA_LOSS,
    CongestionOps,
    tcp_cong_avoid_ai,
    tcp_in_slow_start,
    tcp_slow_start,
)

# RFC 9438 constants.
CUBIC_C = 0.4
BETA_CUBIC = 0.7
ALPHA_CUBIC = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)

# RFC 9406 constants.
MIN_RTT_THRESH = 0.004
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5

_INF = math.inf

# Linux's tcp_cubic HyStart (Settings.tcp_cubic_hystart_detect)
HYSTART_ACK_TRAIN = 0x1
HYSTART_DELAY = 0x2
HYSTART_LOW_WINDOW = 16            # hystart_low_window
HYSTART_ACK_DELTA = 0.002          # hystart_ack_delta_us
HYSTART_MIN_SAMPLES = 8
HYSTART_DELAY_MIN = 0.004
HYSTART_DELAY_MAX = 0.016


def _seq_geq(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) < 0x80000000


def cubic_k(w_max: float, cwnd_epoch: float, c: float = CUBIC_C) -> float:
    """K = cbrt((W_max - cwnd_epoch) / C), 0 when W_max <= cwnd_epoch (RFC 9438 eq. 2)."""
    if w_max <= cwnd_epoch:
        return 0.0
    return ((w_max - cwnd_epoch) / c) ** (1 / 3)


def w_cubic(t: float, k: float, w_max: float, c: float = CUBIC_C) -> float:
    """W_cubic(t) = C (t - K)^3 + W_max (RFC 9438 eq. 1)."""
    return c * (t - k) ** 3 + w_max


class CubicState:
    """CUBIC's per-connection state (``tp.ca_priv``)."""

    __slots__ = (
        "css_acc",
        "css_baseline_min_rtt",
        "css_rounds",
        "cur_round_min_rtt",
        "cwnd_epoch",
        "cwnd_prior",
        "delay_min",
        "epoch_start",
        "found",
        "hystart_detect",
        "hy_curr_rtt",
        "hy_end_seq",
        "hy_last_ack",
        "hy_round_start",
        "hy_sample_cnt",
        "hystart",
        "in_css",
        "k",
        "last_ack_time",
        "last_round_min_rtt",
        "origin",
        "rtt_sample_count",
        "w_est",
        "w_max",
        "window_end",
    )

    def __init__(self, hystart: bool, hystart_detect: int = 0) -> None:
        self.w_max = 0.0            # window before the last reduction (0: none yet)
        self.cwnd_prior = 0.0
        self.epoch_start: float | None = None
        self.cwnd_epoch = 0.0
        self.k = 0.0
        self.origin = 0.0           # W_max used by the current epoch
        self.w_est = 0.0
        self.delay_min = 0.0
        self.last_ack_time: float | None = None
        # HyStart++ (RFC 9406 section 4.2 variables)
        self.hystart = hystart
        self.window_end: int | None = None
        self.last_round_min_rtt = _INF
        self.cur_round_min_rtt = _INF
        self.rtt_sample_count = 0
        self.in_css = False
        self.css_baseline_min_rtt = _INF
        self.css_rounds = 0
        self.css_acc = 0
        # Linux's HyStart (bictcp's found, round_start, last_ack, end_seq,
        # curr_rtt, sample_cnt; hy_end_seq None: a round starts at the next ACK)
        self.hystart_detect = hystart_detect     # Linux's HyStart instead (its bits)
        self.found = False
        self.hy_round_start = 0.0
        self.hy_last_ack = 0.0
        self.hy_end_seq: int | None = None
        self.hy_curr_rtt = _INF
        self.hy_sample_cnt = 0


class Cubic(CongestionOps):
    name = "cubic"
    fast_convergence = True
    hystart_enabled = True

    def init(self, tp: Any, now: float) -> None:
        # A fresh start; the state itself is made by the first call that
        # needs it (_st): an idle connection never does, and keeps none.
        tp.ca_priv = None

    def _st(self, tp: Any) -> CubicState:
        st = tp.ca_priv
        if not isinstance(st, CubicState):
            host = getattr(tp, "host", None)
            detect = host.settings.tcp_cubic_hystart_detect if host is not None else 0
            st = tp.ca_priv = CubicState(self.hystart_enabled, detect)
        return st

    # -- loss -----------------------------------------------------------------
    def ssthresh(self, tp: Any) -> int:
        st = self._st(tp)
        cwnd = tp.snd_cwnd
        st.epoch_start = None
        if self.fast_convergence and cwnd < st.w_max:
            st.w_max = cwnd * (1 + BETA_CUBIC) / 2
        else:
            st.w_max = float(cwnd)
        st.cwnd_prior = float(cwnd)
        st.hystart = False          # HyStart++ only in the initial slow start
        st.in_css = False
        return max(int(cwnd * BETA_CUBIC), 2)

    def set_state(self, tp: Any, ca_state: int) -> None:
        if ca_state == CA_LOSS:
            # RTO: next epoch starts with K = 0 and W_max = cwnd_epoch (RFC 9438 4.8).
            st = self._st(tp)
            st.epoch_start = None
            st.w_max = 0.0
            st.hystart = False
            st.in_css = False
            st.found = False        # (bictcp_reset, bictcp_hystart_reset)
            st.hy_end_seq = None

    def undo_cwnd(self, tp: Any) -> int:
        return max(tp.snd_cwnd, tp.prior_cwnd)

    def cwnd_event(self, tp: Any, event: int, now: float | None = None) -> None:
        # After an idle period, shift the epoch so the curve does not leap ahead
        # by the idle time (Linux bictcp_cwnd_event).
        if event == CA_EVENT_TX_START and now is not None:
            st = self._st(tp)
            if st.epoch_start is not None and st.last_ack_time is not None:
                idle = now - st.last_ack_time
                if idle > 0:
                    st.epoch_start = min(st.epoch_start + idle, now)

    # -- RTT samples and HyStart++ rounds ---------------------------------------
    def pkts_acked(self, tp: Any, acked: int, rtt: float | None, now: float) -> None:
        st = self._st(tp)
        detect = st.hystart_detect
        if detect:
            self._acked_linux(tp, st, rtt, now, detect)
            return
        if rtt is not None and rtt > 0 and (st.delay_min == 0.0 or rtt < st.delay_min):
            st.delay_min = rtt
        if not st.hystart or not tcp_in_slow_start(tp):
            return
        if st.window_end is None or _seq_geq(tp.snd_una, st.window_end):
            self._hystart_round_start(tp, st)
            if not st.hystart:
                return
        if rtt is None or rtt <= 0:
            return
        st.cur_round_min_rtt = min(st.cur_round_min_rtt, rtt)
        st.rtt_sample_count += 1
        if st.rtt_sample_count < N_RTT_SAMPLE:
            return
        if not st.in_css:
            if st.last_round_min_rtt == _INF or st.cur_round_min_rtt == _INF:
                return
            thresh = max(MIN_RTT_THRESH,
                         min(st.last_round_min_rtt / MIN_RTT_DIVISOR, MAX_RTT_THRESH))
            if st.cur_round_min_rtt >= st.last_round_min_rtt + thresh:
                st.css_baseline_min_rtt = st.cur_round_min_rtt
                st.in_css = True
                st.css_rounds = 0
                st.css_acc = 0
        elif st.cur_round_min_rtt < st.css_baseline_min_rtt:
            # The RTT rise was spurious: back to standard slow start.
            st.css_baseline_min_rtt = _INF
            st.in_css = False

    def _acked_linux(self, tp: Any, st: CubicState, rtt: float | None, now: float,
                     detect: int) -> None:
        """Linux's cubictcp_acked: the RTT sample feeds delay_min and, in
        slow start until it finds the exit, HyStart (hystart_update)."""
        if rtt is None or rtt < 0:
            return
        if st.epoch_start is not None and now - st.epoch_start < 1.0:
            return          # no delay samples right after a reduction
        delay = rtt or 1e-6
        if not st.delay_min or st.delay_min > delay:
            st.delay_min = delay
        if st.found or not tcp_in_slow_start(tp):
            return
        if st.hy_end_seq is None or not _seq_geq(st.hy_end_seq, tp.snd_una):
            # bictcp_hystart_reset: a round starts (snd_una passed end_seq)
            st.hy_round_start = st.hy_last_ack = now
            st.hy_end_seq = tp.snd_nxt
            st.hy_curr_rtt = _INF
            st.hy_sample_cnt = 0
        if tp.snd_cwnd < HYSTART_LOW_WINDOW:
            return
        if detect & HYSTART_ACK_TRAIN and now - st.hy_last_ack <= HYSTART_ACK_DELTA:
            # ACKs still come as a train: past half of delay_min (plus
            # hystart_ack_delay, the time of 4 GSO packets at the pacing
            # rate, at most 1 ms) since the round began, the pipe is full
            st.hy_last_ack = now
            srtt = tp.srtt
            ack_delay = 0.0
            if srtt > 0:
                # (tcp_update_pacing_rate in slow start: tcp_pacing_ss_ratio's 200 %)
                rate = 2 * tp.mss_cache * max(tp.snd_cwnd, tp.packets_out) / srtt
                ack_delay = min(0.001, 65536 * 4 / rate) if rate else 0.0
            if now - st.hy_round_start > (st.delay_min + ack_delay) / 2:
                st.found = True
                tp.snd_ssthresh = tp.snd_cwnd
        if detect & HYSTART_DELAY:
            # the least RTT of the round's first samples, past delay_min by
            # an eighth of it (4..16 ms): a queue is building
            st.hy_curr_rtt = min(st.hy_curr_rtt, delay)
            if st.hy_sample_cnt < HYSTART_MIN_SAMPLES:
                st.hy_sample_cnt += 1
            elif st.hy_curr_rtt > st.delay_min + min(max(st.delay_min / 8, HYSTART_DELAY_MIN),
                                                     HYSTART_DELAY_MAX):
                st.found = True
                tp.snd_ssthresh = tp.snd_cwnd

    def _hystart_round_start(self, tp: Any, st: CubicState) -> None:
        st.last_round_min_rtt = st.cur_round_min_rtt
        st.cur_round_min_rtt = _INF
        st.rtt_sample_count = 0
        st.window_end = tp.snd_nxt
        if st.in_css:
            st.css_rounds += 1
            if st.css_rounds >= CSS_ROUNDS:
                # Leave slow start for congestion avoidance at this window.
                tp.snd_ssthresh = tp.snd_cwnd
                st.in_css = False
                st.hystart = False

    # -- growth -----------------------------------------------------------------
    def cong_avoid(self, tp: Any, acked: int, now: float) -> None:
        st = self._st(tp)
        st.last_ack_time = now
        if tcp_in_slow_start(tp):
            if st.hystart and st.in_css:
                st.css_acc += acked
                grow, st.css_acc = divmod(st.css_acc, CSS_GROWTH_DIVISOR)
                tp.snd_cwnd = min(tp.snd_cwnd + grow, tp.snd_cwnd_clamp)
                return
            acked = tcp_slow_start(tp, acked)
            if not acked:
                return
        cnt = self._update(tp, st, acked, now)
        tcp_cong_avoid_ai(tp, cnt, acked)

    def _rtt(self, tp: Any, st: CubicState) -> float:
        return st.delay_min or tp.min_rtt or tp.srtt or 0.0

    def _update(self, tp: Any, st: CubicState, acked: int, now: float) -> int:
        """Segments to ack per +1 of cwnd (Linux's ca->cnt) for this ACK."""
        cwnd = float(tp.snd_cwnd)
        if st.epoch_start is None:
            st.epoch_start = now
            st.cwnd_epoch = cwnd
            st.w_est = cwnd
            if st.w_max <= cwnd:
                # No reduction to recover from (after slow start or an RTO).
                st.k = 0.0
                st.origin = cwnd
            else:
                st.k = cubic_k(st.w_max, cwnd)
                st.origin = st.w_max
        t = now - st.epoch_start
        target = w_cubic(t + self._rtt(tp, st), st.k, st.origin)
        target = min(max(target, cwnd), 1.5 * cwnd)

        # Reno-friendly estimate, advanced by this ACK.
        alpha = 1.0 if st.w_est >= st.cwnd_prior else ALPHA_CUBIC
        st.w_est += alpha * acked / cwnd
        if w_cubic(t, st.k, st.origin) < st.w_est:
            target = max(target, st.w_est)

        if target > cwnd:
            return max(int(cwnd / (target - cwnd)), 1)
        return int(100 * cwnd)      # at (or above) the curve: grow very slowly
