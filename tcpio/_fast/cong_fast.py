# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, cpow=True, annotation_typing=False
# mypy: always-false=compiled
"""Congestion control's per-ACK arithmetic: one source, compiled and interpreted.

Linux's tcp_cong.c helpers every module uses (``tcp_in_slow_start``,
``tcp_slow_start``, ``tcp_cong_avoid_ai``) and the whole of CUBIC (RFC 9438)
with HyStart++ (RFC 9406) and Linux's HyStart: the functions
core.tcp.tcp_cubic.Cubic takes as its methods (``init``, ``ssthresh``,
``set_state``, ``undo_cwnd``, ``cwnd_event``, ``pkts_acked``,
``cong_avoid``; each takes the module ``ca`` first, as a method takes self).
Like tcp_fast.py this file runs as it is, and setup.py compiles it with
``cong_fast.pxd`` (Cython's pure Python mode): then CUBIC's state
(``CubicState``, ``tp.ca_priv``) has C fields and the cube root, the curve
and the Reno-friendly estimate are C double arithmetic, with no Python frame
per ACK (issue 12: CUBIC in Python was about half of a bulk sender's
per-ACK cost).  ``tp`` stays any object with the fields tcp_cong's docstring
lists (its attributes are read through Python in both builds).

Same results to the bit in both builds: every value is a C double or a
C integer that the interpreted build holds as a Python float (a double) or
int, the operations are the same IEEE ones in the same order (the cube is
written as products, the cube root is ``pow`` in both), and a double turned
into a segment count is truncated (``cython.cast``) after a bound that keeps
it far inside a long long.  tests/tcp/test_cubic_builds_rules.py drives one
ACK sequence through both builds and compares every field after every call.

CUBIC (cwnd in segments, t in seconds):

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
window of ten lets twenty out.  With ``tcp_cubic_hystart_detect`` set, Linux's
own HyStart (ACK train and delay, its bits) runs instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:       # Cython ships no type information: check against the shim
    from tcpio._fast import _cython_shim as cython
else:
    try:
        import cython
    except ImportError:     # Cython is a build dependency only: run without it
        from tcpio._fast import _cython_shim as cython

__all__ = ["ALPHA_CUBIC", "BETA_CUBIC", "CSS_GROWTH_DIVISOR", "CSS_ROUNDS", "CUBIC_C",
           "HYSTART_ACK_TRAIN", "HYSTART_DELAY", "MAX_RTT_THRESH", "MIN_RTT_DIVISOR",
           "MIN_RTT_THRESH", "N_RTT_SAMPLE", "CubicState", "cong_avoid", "cubic_k", "cubic_state",
           "cwnd_event", "init", "pkts_acked", "set_state", "ssthresh", "tcp_cong_avoid_ai",
           "tcp_in_slow_start", "tcp_slow_start", "undo_cwnd", "w_cubic"]

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

# Linux's tcp_cubic HyStart (Settings.tcp_cubic_hystart_detect)
HYSTART_ACK_TRAIN = 0x1
HYSTART_DELAY = 0x2

# The same values as C constants for the compiled arithmetic (cong_fast.pxd
# types the underscored names; the public ones above stay Python objects).
_C = CUBIC_C
_BETA = BETA_CUBIC
_ALPHA = ALPHA_CUBIC
_ONE_THIRD = 1.0 / 3.0       # (a float expression: C would divide 1 / 3 as integers)
_MIN_RTT_THRESH = MIN_RTT_THRESH
_MAX_RTT_THRESH = MAX_RTT_THRESH
_MIN_RTT_DIVISOR = 8.0
_N_RTT_SAMPLE = N_RTT_SAMPLE
_CSS_GROWTH_DIVISOR = CSS_GROWTH_DIVISOR
_CSS_ROUNDS = CSS_ROUNDS
_HYSTART_ACK_TRAIN = HYSTART_ACK_TRAIN
_HYSTART_DELAY = HYSTART_DELAY
_HYSTART_LOW_WINDOW = 16            # hystart_low_window
_HYSTART_ACK_DELTA = 0.002          # hystart_ack_delta_us
_HYSTART_MIN_SAMPLES = 8
_HYSTART_DELAY_MIN = 0.004
_HYSTART_DELAY_MAX = 0.016
_INF = float("inf")
# a segment count made from a double is bounded here before it is truncated
# (a C cast beyond a long long's range is undefined): no snd_cwnd_cnt ever
# reaches it, so the bound changes nothing tcp_cong_avoid_ai does
_CNT_MAX = 4.0e18
# CA states and events (tcp_ca.py's values)
_CA_LOSS = 4
_CA_EVENT_TX_START = 0
_U32_MASK = 0xFFFFFFFF
_U32_HALF = 0x80000000


def _seq_geq(a: int, b: int) -> bool:
    return ((a - b) & _U32_MASK) < _U32_HALF


# --- tcp_cong.c's helpers ----------------------------------------------------------------------

def tcp_in_slow_start(tp: Any) -> bool:
    return bool(tp.snd_cwnd < tp.snd_ssthresh)


def tcp_slow_start(tp: Any, acked: int) -> int:
    """RFC 5681 slow start: cwnd += acked, up to ssthresh; returns the acks left over."""
    snd_cwnd: int = tp.snd_cwnd
    cwnd = snd_cwnd + acked
    ssthresh: int = tp.snd_ssthresh
    if cwnd > ssthresh:
        cwnd = ssthresh
    acked -= cwnd - snd_cwnd
    clamp: int = tp.snd_cwnd_clamp
    tp.snd_cwnd = cwnd if cwnd < clamp else clamp
    return acked


def tcp_cong_avoid_ai(tp: Any, w: int, acked: int) -> None:
    """Additive increase: +1 segment per ``w`` segments acked (w = cwnd: +1 per RTT).
    A whole number of segments in both builds (compiled, ``w`` is a C
    integer: a float truncates; interpreted, the same truncation here)."""
    w = int(w)
    if w < 1:
        w = 1
    cnt: int = tp.snd_cwnd_cnt
    cwnd: int = tp.snd_cwnd
    # Credits accumulated at a larger w are applied gently now.
    if cnt >= w:
        cnt = 0
        cwnd += 1
    cnt += acked
    if cnt >= w:
        delta = cnt // w
        cnt -= delta * w
        cwnd += delta
    clamp: int = tp.snd_cwnd_clamp
    tp.snd_cwnd_cnt = cnt
    tp.snd_cwnd = cwnd if cwnd < clamp else clamp


# --- CUBIC's formulas --------------------------------------------------------------------------

def cubic_k(w_max: float, cwnd_epoch: float, c: float = CUBIC_C) -> float:
    """K = cbrt((W_max - cwnd_epoch) / C), 0 when W_max <= cwnd_epoch (RFC 9438 eq. 2)."""
    if w_max <= cwnd_epoch:
        return 0.0
    return ((w_max - cwnd_epoch) / c) ** _ONE_THIRD


def w_cubic(t: float, k: float, w_max: float, c: float = CUBIC_C) -> float:
    """W_cubic(t) = C (t - K)^3 + W_max (RFC 9438 eq. 1)."""
    d = t - k
    return c * (d * d * d) + w_max


class CubicState:
    """CUBIC's per-connection state (``tp.ca_priv``; C fields when compiled).

    ``has_epoch`` False: no congestion-avoidance epoch runs (the next ACK in
    congestion avoidance starts one); ``window_end`` and ``hy_end_seq`` -1:
    no round is open (a round starts at the next ACK)."""

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
        "has_epoch",
        "hy_curr_rtt",
        "hy_end_seq",
        "hy_last_ack",
        "hy_round_start",
        "hy_sample_cnt",
        "hystart",
        "hystart_detect",
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

    w_max: float
    cwnd_prior: float
    has_epoch: bool
    epoch_start: float
    cwnd_epoch: float
    k: float
    origin: float
    w_est: float
    delay_min: float
    last_ack_time: float
    hystart: bool
    window_end: int
    last_round_min_rtt: float
    cur_round_min_rtt: float
    rtt_sample_count: int
    in_css: bool
    css_baseline_min_rtt: float
    css_rounds: int
    css_acc: int
    hystart_detect: int
    found: bool
    hy_round_start: float
    hy_last_ack: float
    hy_end_seq: int
    hy_curr_rtt: float
    hy_sample_cnt: int

    def __init__(self, hystart: bool, hystart_detect: int = 0) -> None:
        self.w_max = 0.0            # window before the last reduction (0: none yet)
        self.cwnd_prior = 0.0
        self.has_epoch = False
        self.epoch_start = 0.0
        self.cwnd_epoch = 0.0
        self.k = 0.0
        self.origin = 0.0           # W_max used by the current epoch
        self.w_est = 0.0
        self.delay_min = 0.0
        self.last_ack_time = 0.0    # (read only while an epoch runs: set before it)
        # HyStart++ (RFC 9406 section 4.2 variables)
        self.hystart = hystart
        self.window_end = -1
        self.last_round_min_rtt = _INF
        self.cur_round_min_rtt = _INF
        self.rtt_sample_count = 0
        self.in_css = False
        self.css_baseline_min_rtt = _INF
        self.css_rounds = 0
        self.css_acc = 0
        # Linux's HyStart (bictcp's found, round_start, last_ack, end_seq,
        # curr_rtt, sample_cnt)
        self.hystart_detect = hystart_detect     # Linux's HyStart instead (its bits)
        self.found = False
        self.hy_round_start = 0.0
        self.hy_last_ack = 0.0
        self.hy_end_seq = -1
        self.hy_curr_rtt = _INF
        self.hy_sample_cnt = 0


def cubic_state(ca: Any, tp: Any) -> CubicState:
    """tp.ca_priv, made by the first call that needs it: an idle connection
    never does, and keeps none."""
    priv = tp.ca_priv
    if isinstance(priv, CubicState):
        return priv
    host = getattr(tp, "host", None)
    detect = host.settings.tcp_cubic_hystart_detect if host is not None else 0
    st = CubicState(bool(ca.hystart_enabled), detect)
    tp.ca_priv = st
    return st


# --- the module's operations (struct tcp_congestion_ops) -----------------------------------------

def init(ca: Any, tp: Any, now: float) -> None:
    # A fresh start; the state itself is made by the first call that
    # needs it (cubic_state).
    tp.ca_priv = None


def ssthresh(ca: Any, tp: Any) -> int:
    st = cubic_state(ca, tp)
    cwnd: int = tp.snd_cwnd
    st.has_epoch = False
    if ca.fast_convergence and cwnd < st.w_max:
        st.w_max = cwnd * (1 + _BETA) / 2
    else:
        st.w_max = float(cwnd)
    st.cwnd_prior = float(cwnd)
    st.hystart = False          # HyStart++ only in the initial slow start
    st.in_css = False
    reduced: int = cython.cast(cython.longlong, cwnd * _BETA)
    return reduced if reduced > 2 else 2


def set_state(ca: Any, tp: Any, ca_state: int) -> None:
    if ca_state == _CA_LOSS:
        # RTO: next epoch starts with K = 0 and W_max = cwnd_epoch (RFC 9438 4.8).
        st = cubic_state(ca, tp)
        st.has_epoch = False
        st.w_max = 0.0
        st.hystart = False
        st.in_css = False
        st.found = False        # (bictcp_reset, bictcp_hystart_reset)
        st.hy_end_seq = -1


def undo_cwnd(ca: Any, tp: Any) -> int:
    cwnd: int = tp.snd_cwnd
    prior: int = tp.prior_cwnd
    return cwnd if cwnd > prior else prior


def cwnd_event(ca: Any, tp: Any, event: int, now: Any = None) -> None:
    # After an idle period, shift the epoch so the curve does not leap ahead
    # by the idle time (Linux bictcp_cwnd_event).  (An epoch starts in
    # cong_avoid, which set last_ack_time first.)
    if event == _CA_EVENT_TX_START and now is not None:
        t: float = now
        st = cubic_state(ca, tp)
        if st.has_epoch:
            idle = t - st.last_ack_time
            if idle > 0:
                start = st.epoch_start + idle
                st.epoch_start = start if start < t else t


# -- RTT samples and HyStart++ rounds ---------------------------------------
def pkts_acked(ca: Any, tp: Any, acked: int, rtt: Any, now: float) -> None:
    st = cubic_state(ca, tp)
    detect = st.hystart_detect
    has_rtt = rtt is not None
    sample: float = rtt if has_rtt else 0.0
    if detect:
        _acked_linux(tp, st, has_rtt, sample, now, detect)
        return
    if has_rtt and sample > 0 and (st.delay_min == 0.0 or sample < st.delay_min):
        st.delay_min = sample
    if not st.hystart or not tcp_in_slow_start(tp):
        return
    snd_una: int = tp.snd_una
    if st.window_end < 0 or _seq_geq(snd_una, st.window_end):
        _hystart_round_start(tp, st)
        if not st.hystart:
            return
    if not has_rtt or sample <= 0:
        return
    if sample < st.cur_round_min_rtt:
        st.cur_round_min_rtt = sample
    st.rtt_sample_count += 1
    if st.rtt_sample_count < _N_RTT_SAMPLE:
        return
    if not st.in_css:
        if st.last_round_min_rtt == _INF or st.cur_round_min_rtt == _INF:
            return
        thresh = st.last_round_min_rtt / _MIN_RTT_DIVISOR
        if thresh > _MAX_RTT_THRESH:
            thresh = _MAX_RTT_THRESH
        if thresh < _MIN_RTT_THRESH:
            thresh = _MIN_RTT_THRESH
        if st.cur_round_min_rtt >= st.last_round_min_rtt + thresh:
            st.css_baseline_min_rtt = st.cur_round_min_rtt
            st.in_css = True
            st.css_rounds = 0
            st.css_acc = 0
    elif st.cur_round_min_rtt < st.css_baseline_min_rtt:
        # The RTT rise was spurious: back to standard slow start.
        st.css_baseline_min_rtt = _INF
        st.in_css = False


def _acked_linux(tp: Any, st: CubicState, has_rtt: bool, rtt: float, now: float,
                 detect: int) -> None:
    """Linux's cubictcp_acked: the RTT sample feeds delay_min and, in
    slow start until it finds the exit, HyStart (hystart_update)."""
    if not has_rtt or rtt < 0:
        return
    if st.has_epoch and now - st.epoch_start < 1.0:
        return          # no delay samples right after a reduction
    delay = rtt if rtt else 1e-6
    if not st.delay_min or st.delay_min > delay:
        st.delay_min = delay
    if st.found or not tcp_in_slow_start(tp):
        return
    cwnd: int = tp.snd_cwnd
    snd_una: int = tp.snd_una
    if st.hy_end_seq < 0 or not _seq_geq(st.hy_end_seq, snd_una):
        # bictcp_hystart_reset: a round starts (snd_una passed end_seq)
        st.hy_round_start = now
        st.hy_last_ack = now
        st.hy_end_seq = tp.snd_nxt
        st.hy_curr_rtt = _INF
        st.hy_sample_cnt = 0
    if cwnd < _HYSTART_LOW_WINDOW:
        return
    if detect & _HYSTART_ACK_TRAIN and now - st.hy_last_ack <= _HYSTART_ACK_DELTA:
        # ACKs still come as a train: past half of delay_min (plus
        # hystart_ack_delay, the time of 4 GSO packets at the pacing
        # rate, at most 1 ms) since the round began, the pipe is full
        st.hy_last_ack = now
        srtt: float = tp.srtt
        ack_delay = 0.0
        if srtt > 0:
            # (tcp_update_pacing_rate in slow start: tcp_pacing_ss_ratio's 200 %)
            mss: int = tp.mss_cache
            packets_out: int = tp.packets_out
            rate = 2 * mss * (cwnd if cwnd > packets_out else packets_out) / srtt
            if rate:
                ack_delay = 65536 * 4 / rate
                if ack_delay > 0.001:
                    ack_delay = 0.001
        if now - st.hy_round_start > (st.delay_min + ack_delay) / 2:
            st.found = True
            tp.snd_ssthresh = cwnd
    if detect & _HYSTART_DELAY:
        # the least RTT of the round's first samples, past delay_min by
        # an eighth of it (4..16 ms): a queue is building
        if delay < st.hy_curr_rtt:
            st.hy_curr_rtt = delay
        if st.hy_sample_cnt < _HYSTART_MIN_SAMPLES:
            st.hy_sample_cnt += 1
        else:
            margin = st.delay_min / 8
            if margin < _HYSTART_DELAY_MIN:
                margin = _HYSTART_DELAY_MIN
            if margin > _HYSTART_DELAY_MAX:
                margin = _HYSTART_DELAY_MAX
            if st.hy_curr_rtt > st.delay_min + margin:
                st.found = True
                tp.snd_ssthresh = cwnd


def _hystart_round_start(tp: Any, st: CubicState) -> None:
    st.last_round_min_rtt = st.cur_round_min_rtt
    st.cur_round_min_rtt = _INF
    st.rtt_sample_count = 0
    st.window_end = tp.snd_nxt
    if st.in_css:
        st.css_rounds += 1
        if st.css_rounds >= _CSS_ROUNDS:
            # Leave slow start for congestion avoidance at this window.
            tp.snd_ssthresh = tp.snd_cwnd
            st.in_css = False
            st.hystart = False


# -- growth -----------------------------------------------------------------
def cong_avoid(ca: Any, tp: Any, acked: int, now: float) -> None:
    st = cubic_state(ca, tp)
    st.last_ack_time = now
    cwnd: int = tp.snd_cwnd
    ssthresh: int = tp.snd_ssthresh
    if cwnd < ssthresh:
        if st.hystart and st.in_css:
            acc = st.css_acc + acked
            grow = acc // _CSS_GROWTH_DIVISOR
            st.css_acc = acc - grow * _CSS_GROWTH_DIVISOR
            clamp: int = tp.snd_cwnd_clamp
            cwnd += grow
            tp.snd_cwnd = cwnd if cwnd < clamp else clamp
            return
        acked = tcp_slow_start(tp, acked)
        if not acked:
            return
    tcp_cong_avoid_ai(tp, _update(tp, st, acked, now), acked)


def _rtt(tp: Any, st: CubicState) -> float:
    if st.delay_min:
        return st.delay_min
    min_rtt: float = tp.min_rtt
    if min_rtt:
        return min_rtt
    srtt: float = tp.srtt
    return srtt if srtt else 0.0


def _update(tp: Any, st: CubicState, acked: int, now: float) -> int:
    """Segments to ack per +1 of cwnd (Linux's ca->cnt) for this ACK."""
    snd_cwnd: int = tp.snd_cwnd
    cwnd = float(snd_cwnd)
    if not st.has_epoch:
        st.has_epoch = True
        st.epoch_start = now
        st.cwnd_epoch = cwnd
        st.w_est = cwnd
        if st.w_max <= cwnd:
            # No reduction to recover from (after slow start or an RTO).
            st.k = 0.0
            st.origin = cwnd
        else:
            st.k = cubic_k(st.w_max, cwnd, _C)
            st.origin = st.w_max
    t = now - st.epoch_start
    target = w_cubic(t + _rtt(tp, st), st.k, st.origin, _C)
    if target < cwnd:
        target = cwnd
    if target > 1.5 * cwnd:
        target = 1.5 * cwnd

    # Reno-friendly estimate, advanced by this ACK.
    alpha = 1.0 if st.w_est >= st.cwnd_prior else _ALPHA
    st.w_est += alpha * acked / cwnd
    if w_cubic(t, st.k, st.origin, _C) < st.w_est and target < st.w_est:
        target = st.w_est

    cnt: float
    if target > cwnd:
        cnt = cwnd / (target - cwnd)
        if cnt > _CNT_MAX:
            cnt = _CNT_MAX
        n: int = cython.cast(cython.longlong, cnt)
        return n if n > 1 else 1
    # at (or above) the curve: grow very slowly
    return cython.cast(cython.longlong, 100 * cwnd)
