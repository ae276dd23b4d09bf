"""CUBIC against RFC 9438's formulas and HyStart++ against RFC 9406's rules.

Growth is checked with an ACK-clocked sender under a virtual clock: every
segment is acknowledged one RTT after it was sent, the sender refills the
window on each ACK, and the core's calls are made in the core's order
(pkts_acked, then cong_avoid).
"""

from __future__ import annotations

import heapq
import itertools
import math

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp import tcp_cubic
from tcpio.core.tcp.tcp_cong import CA_EVENT_TX_START, CA_LOSS, get_congestion_control
from tcpio.core.tcp.tcp_cubic import CSS_ROUNDS, Cubic

from .helpers import passive_open

# RFC 9438's formulas and constants, written out here as the reference.
C = 0.4
BETA = 0.7
ALPHA = 3 * (1 - BETA) / (1 + BETA)          # section 4.3


def cubic_k(w_max, cwnd_epoch):
    """Eq. 2 (K = 0 when there is nothing to recover)."""
    return max((w_max - cwnd_epoch) / C, 0.0) ** (1 / 3)


def w_cubic(t, k, w_max):
    """Eq. 1."""
    return C * (t - k) ** 3 + w_max

INF = 0x7FFFFFFF


class Tp:
    def __init__(self, cwnd=10, ssthresh=INF):
        self.snd_cwnd = cwnd
        self.snd_ssthresh = ssthresh
        self.snd_cwnd_cnt = 0
        self.snd_cwnd_clamp = 4000     # bounds the work if a test goes wrong
        self.prior_cwnd = 0
        self.mss_cache = 1448
        self.srtt = 0.0
        self.min_rtt = 0.0
        self.packets_out = 0
        self.snd_una = 1000
        self.snd_nxt = 1000
        self.ca_state = 0
        self.ca_priv = None
        self.is_cwnd_limited = True
        self.inflight = []                # the test path: (ack time, seq, rtt)


def run(ca, tp, start, until, rtt_of):
    """Drive ``ca`` from ``start`` to ``until``; returns [(time, cwnd)] per ACK.

    Sequence numbers count segments.  ``rtt_of(send_time)`` is the path RTT.
    Segments still in flight at ``until`` stay in ``tp.inflight`` for the next run.
    """
    inflight: list[tuple[float, int, float]] = tp.inflight

    def fill(now):
        while tp.snd_nxt - tp.snd_una < tp.snd_cwnd:
            rtt = rtt_of(now)
            heapq.heappush(inflight, (now + rtt, tp.snd_nxt, rtt))
            tp.snd_nxt += 1
        tp.packets_out = tp.snd_nxt - tp.snd_una

    fill(start)
    trace = []
    while inflight and inflight[0][0] <= until:
        now, seq, rtt = heapq.heappop(inflight)
        if seq < tp.snd_una:
            continue
        acked = seq + 1 - tp.snd_una
        tp.snd_una = seq + 1
        tp.packets_out = tp.snd_nxt - tp.snd_una
        # The sample is the path RTT itself (not now - sent) so that equal
        # RTTs compare equal, as integer microsecond clocks would.
        ca.pkts_acked(tp, acked, rtt, now)
        ca.cong_avoid(tp, acked, now)
        trace.append((now, tp.snd_cwnd))
        fill(now)
    return trace


def after_loss(w_max, rtt, hystart=False):
    """A CUBIC flow that just cut its window from ``w_max`` (RFC 9438 4.6)."""
    ca = Cubic()
    ca.hystart_enabled = hystart
    tp = Tp(cwnd=w_max)
    ca.init(tp, 0.0)
    tp.min_rtt = tp.srtt = rtt
    tp.snd_ssthresh = ca.ssthresh(tp)
    tp.snd_cwnd = tp.snd_ssthresh
    return ca, tp


# -- the formulas -------------------------------------------------------------------


def test_constants():
    assert tcp_cubic.CUBIC_C == C and tcp_cubic.BETA_CUBIC == BETA
    assert tcp_cubic.ALPHA_CUBIC == pytest.approx(ALPHA)


def test_k_and_w_cubic():
    # RFC 9438 eq. 1 and 2, worked: W_max 100, cwnd_epoch 70.
    k = tcp_cubic.cubic_k(100.0, 70.0)
    assert k == pytest.approx(75 ** (1 / 3))                  # 4.2172
    assert tcp_cubic.w_cubic(0.0, k, 100.0) == pytest.approx(70.0)   # from cwnd_epoch
    assert tcp_cubic.w_cubic(k, k, 100.0) == pytest.approx(100.0)    # plateau at W_max
    assert tcp_cubic.w_cubic(k + 2, k, 100.0) == pytest.approx(100 + 0.4 * 8)
    assert tcp_cubic.cubic_k(50.0, 70.0) == 0.0


def test_multiplicative_decrease_and_fast_convergence():
    ca, tp = Cubic(), Tp(cwnd=100)
    ca.init(tp, 0.0)
    assert ca.ssthresh(tp) == 70                              # cwnd * beta_cubic
    assert tp.ca_priv.w_max == 100
    # Next loss below the previous W_max: fast convergence releases bandwidth,
    # W_max = cwnd * (1 + beta) / 2 (RFC 9438 4.7).
    tp.snd_cwnd = 80
    assert ca.ssthresh(tp) == 56
    assert tp.ca_priv.w_max == pytest.approx(80 * 1.7 / 2)
    # Above the previous W_max: W_max = cwnd.
    tp.snd_cwnd = 90
    ca.ssthresh(tp)
    assert tp.ca_priv.w_max == 90
    tp.snd_cwnd = 2
    assert ca.ssthresh(tp) == 2                               # at least 2


# -- growth against W_cubic(t) --------------------------------------------------------


def w_est(t, rtt, cwnd_epoch, cwnd_prior):
    """RFC 9438 4.3 Reno-friendly estimate t seconds into the epoch, one ACK per
    segment: +alpha_cubic per RTT up to cwnd_prior, then +1 per RTT."""
    n = max(t, 0.0) / rtt
    n_slow = max(cwnd_prior - cwnd_epoch, 0) / ALPHA
    if n <= n_slow:
        return cwnd_epoch + ALPHA * n
    return max(cwnd_prior, cwnd_epoch) + (n - n_slow)


@pytest.mark.parametrize("w_max,rtt", [(100, 0.1), (400, 0.05), (60, 0.2)])
def test_window_follows_w_cubic(w_max, rtt):
    ca, tp = after_loss(w_max, rtt)
    cwnd_epoch = tp.snd_cwnd
    k = cubic_k(w_max, cwnd_epoch)
    trace = run(ca, tp, 0.0, 2.2 * k, lambda now: rtt)
    t0 = tp.ca_priv.epoch_start
    assert t0 is not None and t0 <= rtt * 1.01
    for now, cwnd in trace:
        t = now - t0
        if t < rtt:
            continue
        # Each ACK aims at W_cubic(t + RTT) and the window gets there over the
        # next RTT, so at time t it sits between W_cubic(t - RTT) and
        # W_cubic(t + RTT) (+-1.5 for the integer window), unless the
        # Reno-friendly estimate is higher.
        lo = max(w_cubic(t - rtt, k, w_max), w_est(t - rtt, rtt, cwnd_epoch, w_max)) - 1.5
        hi = max(w_cubic(t + rtt, k, w_max), w_est(t + rtt, rtt, cwnd_epoch, w_max)) + 1.5
        assert lo <= cwnd <= hi, (t, cwnd, lo, hi)
    # The plateau is at W_max, and it is left after K (convex region).
    assert any(abs(now - t0 - k) < rtt and abs(cwnd - w_max) <= 2 for now, cwnd in trace)
    assert trace[-1][1] > w_max + 0.4 * (1.1 * k) ** 3 * 0.5


def test_growth_is_rtt_independent_in_cubic_region():
    # The point of CUBIC: the window is a function of time since the loss,
    # not of the RTT (away from the Reno-friendly region).
    # (400 segments at 50 or 100 ms: Reno's estimate stays below the curve.)
    a_ca, a_tp = after_loss(400, 0.05)
    b_ca, b_tp = after_loss(400, 0.1)
    run(a_ca, a_tp, 0.0, 9.0, lambda now: 0.05)
    run(b_ca, b_tp, 0.0, 9.0, lambda now: 0.1)
    k = cubic_k(400, 280)
    want = w_cubic(9.0, k, 400)
    assert want > w_est(9.0, 0.05, 280, 400)
    assert abs(a_tp.snd_cwnd - want) <= 0.03 * want
    assert abs(b_tp.snd_cwnd - want) <= 0.03 * want


def test_reno_friendly_region():
    # RFC 9438 4.3: with a short RTT, Reno would grow faster than the cubic
    # curve; then cwnd follows W_est, which grows alpha_cubic per RTT until it
    # reaches cwnd_prior, then 1 per RTT.
    rtt = 0.001
    ca, tp = after_loss(20, rtt)                  # cwnd_epoch 14, cwnd_prior 20
    trace = run(ca, tp, 0.0, 0.4, lambda now: rtt)
    t0 = tp.ca_priv.epoch_start
    k = cubic_k(20, 14)
    for now, cwnd in trace:
        t = now - t0
        if t < 5 * rtt:
            continue
        want = w_est(t, rtt, 14, 20)
        assert w_cubic(t, k, 20) < want             # we are in the region
        assert abs(cwnd - want) <= 0.08 * want + 2, (t, cwnd, want)


def test_after_timeout_k_is_zero_and_w_max_is_cwnd_epoch():
    # RFC 9438 4.8: first CA stage after an RTO uses K = 0, W_max = cwnd_epoch.
    ca, tp = after_loss(300, 0.05)
    ca.set_state(tp, CA_LOSS)
    tp.snd_ssthresh = 10
    tp.snd_cwnd = 10
    run(ca, tp, 0.0, 3.0, lambda now: 0.05)
    st = tp.ca_priv
    assert st.k == 0.0 and st.origin == pytest.approx(st.cwnd_epoch) and st.cwnd_epoch == 10
    # Here the Reno-friendly estimate (from cwnd_epoch, alpha_cubic per RTT
    # while below cwnd_prior = 300) is above the cubic curve at first.
    t = 3.0 - st.epoch_start
    lo = max(w_cubic(t - 0.05, 0.0, 10), w_est(t - 0.05, 0.05, 10, 300)) - 2
    hi = max(w_cubic(t + 0.05, 0.0, 10), w_est(t + 0.05, 0.05, 10, 300)) + 2
    assert lo <= tp.snd_cwnd <= hi
    # Later the convex curve from cwnd_epoch (K = 0) takes over.
    run(ca, tp, 3.0, 6.0, lambda now: 0.05)
    t = 6.0 - st.epoch_start
    assert w_cubic(t, 0.0, 10) > w_est(t, 0.05, 10, 300)
    assert w_cubic(t - 0.05, 0.0, 10) - 2 <= tp.snd_cwnd <= w_cubic(t + 0.05, 0.0, 10) + 2


def test_idle_restart_shifts_the_epoch():
    ca, tp = after_loss(100, 0.1)
    run(ca, tp, 0.0, 1.0, lambda now: 0.1)
    st = tp.ca_priv
    start = st.epoch_start
    last = st.last_ack_time
    ca.cwnd_event(tp, CA_EVENT_TX_START, now=last + 5.0)
    assert st.epoch_start == pytest.approx(start + 5.0)


def test_undo():
    ca, tp = after_loss(100, 0.1)
    tp.prior_cwnd = 100
    assert ca.undo_cwnd(tp) == 100


@pytest.mark.parametrize("name,want", [(None, 7), ("cubic", 7), ("reno", 5)])
def test_a_new_connection_uses_cubic_by_default(name, want):
    """Linux's default net.ipv4.tcp_congestion_control is cubic: after an RTO
    a fresh connection (cwnd 10, the initial window) sets ssthresh to
    max(cwnd * beta_cubic, 2) = 7 (RFC 9438 4.6; Linux: cwnd * 717 >> 10),
    where Reno (RFC 5681 eq. 4) would set max(FlightSize / 2, 2) = 5."""
    settings = Settings() if name is None else Settings(tcp_congestion_control=name)
    c = passive_open(settings=settings)
    assert c.sk.snd_cwnd == 10
    c.sk.sendmsg(b"d" * 20000)
    assert len(c.peer.recv()) == 10                     # the initial window, unacked
    c.host.advance(c.host.now + 1.5)                    # the first RTO (1 s) fires
    (rexmit,) = c.peer.recv()
    assert rexmit.seq == c.rcv and len(rexmit.payload) > 0
    assert c.sk.snd_ssthresh == want and c.sk.snd_cwnd == 1


def test_one_cubic_module_keeps_state_per_flow():
    """Children share their listener's module instance (tcp_minisocks: the
    ops are stateless), so CUBIC's state (W_max, the epoch) must live with
    each flow, in ca_priv: one flow's loss does not move another's curve."""
    ca = get_congestion_control("cubic")
    ta, tb = Tp(cwnd=100), Tp(cwnd=40)
    ca.init(ta, 0.0)
    ca.init(tb, 0.0)
    assert ca.ssthresh(ta) == 70
    # (b has no state yet: made on its first use, with no W_max)
    assert ta.ca_priv.w_max == 100 and tb.ca_priv is None
    # b's first loss is not "below a's W_max": no fast convergence for b.
    assert ca.ssthresh(tb) == 28 and tb.ca_priv.w_max == 40
    assert ta.ca_priv.w_max == 100


# -- HyStart++ ---------------------------------------------------------------------------


def slow_start_flow():
    ca = Cubic()
    tp = Tp(cwnd=10)
    ca.init(tp, 0.0)
    return ca, tp


def on_round_start(ca, record):
    """Call ``record(in_css, cwnd)`` for each ACK that starts a HyStart++
    round (the round's end, window_end, moves), with in_css as it was
    before the ACK."""
    orig = ca.pkts_acked

    def spy(tp_, *args):
        st_ = tp_.ca_priv
        end = None if st_ is None else st_.window_end
        in_css = st_ is not None and st_.in_css
        orig(tp_, *args)
        if tp_.ca_priv.window_end != end:
            record(in_css, tp_.snd_cwnd)
    ca.pkts_acked = spy


def test_slow_start_without_delay_increase_keeps_doubling():
    ca, tp = slow_start_flow()
    run(ca, tp, 0.0, 0.05 * 6 - 0.001, lambda now: 0.05)
    assert tp.snd_cwnd == 10 * 2**5          # 5 full rounds, no exit
    assert tp.snd_ssthresh == INF and not tp.ca_priv.in_css


def test_delay_increase_enters_css_then_congestion_avoidance():
    # RTT 50 ms, rising to 80 ms for segments sent after t = 0.2 s: rise
    # 30 ms >= max(4 ms, min(50 / 8 ms, 16 ms)) = 6.25 ms -> CSS, growth / 4;
    # after CSS_ROUNDS rounds in CSS, ssthresh = cwnd (RFC 9406 4.2).
    ca, tp = slow_start_flow()
    trace = run(ca, tp, 0.0, 2.0, lambda now: 0.05 if now < 0.2 else 0.08)
    st = tp.ca_priv
    assert not st.hystart and not st.in_css
    assert tp.snd_ssthresh != INF
    # Without HyStart++ the window would have doubled every round for 2 s;
    # with it, slow start ended a few rounds after the rise.
    cwnd_at_rise = max(cwnd for now, cwnd in trace if now < 0.25)
    # CSS growth is 1/4 of slow start's per round: x1.25 per round at most,
    # over CSS_ROUNDS (+1 for the round in which the rise was detected, which
    # may still double).
    assert cwnd_at_rise <= tp.snd_ssthresh <= cwnd_at_rise * 2 * 1.25 ** CSS_ROUNDS


def test_css_exit_round_by_round():
    # Count rounds explicitly: the rise is seen in round r, CSS lasts exactly
    # CSS_ROUNDS more round starts, and cwnd grows by ~1/4 per round in CSS.
    ca, tp = slow_start_flow()
    rounds = []                              # (in_css, cwnd) at each round start
    on_round_start(ca, lambda in_css, cwnd: rounds.append((in_css, cwnd)))
    run(ca, tp, 0.0, 3.0, lambda now: 0.05 if now < 0.2 else 0.08)
    css = [cwnd for in_css, cwnd in rounds if in_css]
    assert len(css) == CSS_ROUNDS
    for a, b in itertools.pairwise(css):
        assert a * 1.15 <= b <= a * 1.35, css
    assert not tp.ca_priv.in_css and tp.snd_ssthresh == css[-1]


def test_rtt_back_below_baseline_resumes_slow_start():
    # RFC 9406: if in CSS the round's min RTT falls below the baseline, the
    # rise was spurious: back to slow start.
    ca, tp = slow_start_flow()

    def rtt_of(now):
        return 0.08 if 0.2 <= now < 0.33 else 0.05
    saw_css = []
    on_round_start(ca, lambda in_css, cwnd: saw_css.append(in_css))
    run(ca, tp, 0.0, 0.8, rtt_of)
    st = tp.ca_priv
    assert any(saw_css)                      # it did enter CSS
    assert not st.in_css and st.hystart      # and left it, back in slow start
    assert tp.snd_ssthresh == INF


def test_loss_ends_hystart():
    ca, tp = slow_start_flow()
    run(ca, tp, 0.0, 0.12, lambda now: 0.05)
    tp.snd_ssthresh = ca.ssthresh(tp)
    assert not tp.ca_priv.hystart


def test_small_rtt_threshold_floor():
    # With a 1 ms RTT the threshold is MIN_RTT_THRESH = 4 ms: a 2 ms rise
    # does not exit slow start.
    ca, tp = slow_start_flow()
    run(ca, tp, 0.0, 0.02, lambda now: 0.001 if now < 0.005 else 0.003)
    assert tp.snd_ssthresh == INF and not tp.ca_priv.in_css
    assert math.log2(tp.snd_cwnd / 10) >= 5
