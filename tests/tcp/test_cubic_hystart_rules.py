"""Linux's CUBIC HyStart (net/ipv4/tcp_cubic.c: cubictcp_acked,
hystart_update), chosen by Settings.tcp_cubic_hystart_detect (the module
parameter hystart_detect: 1 ACK train, 2 delay increase); 0 keeps tcpio's
HyStart++ (RFC 9406, tests/tcp/test_cubic.py).

Slow start ends (ssthresh = cwnd) once cwnd is at least hystart_low_window
(16) and either the round's least RTT over its first samples exceeds
delay_min by an eighth of it, clamped to 4..16 ms (HYSTART_DELAY, checked
from the 9th sample), or ACKs keep coming at most 2 ms apart for more than
half of delay_min since the round began (HYSTART_ACK_TRAIN).
"""

from __future__ import annotations

from types import SimpleNamespace

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_cubic import Cubic

INF = 0x7FFFFFFF


def _tp(detect: int, cwnd: int = 20):
    tp = SimpleNamespace(snd_cwnd=cwnd, snd_ssthresh=INF, snd_cwnd_cnt=0, snd_cwnd_clamp=4000,
                         prior_cwnd=0, mss_cache=1000, srtt=0.2, min_rtt=0.2, packets_out=cwnd,
                         snd_una=1000, snd_nxt=1000 + cwnd, ca_state=0, ca_priv=None,
                         host=SimpleNamespace(settings=Settings(tcp_cubic_hystart_detect=detect)))
    ca = Cubic()
    ca.init(tp, 0.0)
    return ca, tp


def _next_round(tp) -> None:
    """Everything sent so far is acknowledged: the next ACK starts a round."""
    tp.snd_una = tp.snd_nxt
    tp.snd_nxt += 20


def _round(ca, tp, rtts: list[float], start: float, gap: float) -> list[int]:
    """One ACK per RTT sample, ``gap`` apart; ssthresh after each."""
    out = []
    for k, rtt in enumerate(rtts):
        tp.snd_una += 1
        ca.pkts_acked(tp, 1, rtt, start + k * gap)
        out.append(tp.snd_ssthresh)
    return out


def test_delay_increase_ends_slow_start_on_the_ninth_sample():
    """delay_min 200 ms: the threshold is 200 + min(max(25, 4), 16) = 216 ms."""
    ca, tp = _tp(detect=2)
    _round(ca, tp, [0.2], 0.0, 0.01)               # delay_min, and a round begins
    _next_round(tp)
    got = _round(ca, tp, [0.2 + 0.017] * 10, 0.3, 0.01)
    assert got[:8] == [INF] * 8 and got[8] == 20
    assert ca._st(tp).found


def test_a_delay_below_the_threshold_keeps_slow_start():
    ca, tp = _tp(detect=2)
    _round(ca, tp, [0.2], 0.0, 0.01)
    _next_round(tp)
    assert _round(ca, tp, [0.215] * 12, 0.3, 0.01) == [INF] * 12


def test_no_hystart_below_the_low_window():
    ca, tp = _tp(detect=2, cwnd=15)
    _round(ca, tp, [0.2], 0.0, 0.01)
    _next_round(tp)
    assert _round(ca, tp, [0.3] * 12, 0.3, 0.01) == [INF] * 12


def test_an_ack_train_longer_than_half_delay_min_ends_slow_start():
    """ACKs 1 ms apart: the train passes (200 ms + 1 ms ack delay) / 2 after
    about 100 ms; 3 ms apart it is no train."""
    ca, tp = _tp(detect=1)
    tp.snd_nxt += 400
    got = _round(ca, tp, [0.2] * 120, 1.0, 0.001)
    first = got.index(20)
    assert 100 <= first <= 102 and not any(s != INF for s in got[:first])
    ca, tp = _tp(detect=1)
    tp.snd_nxt += 400
    assert _round(ca, tp, [0.2] * 120, 1.0, 0.003) == [INF] * 120


def test_detect_zero_is_hystart_plus_plus():
    ca, tp = _tp(detect=0)
    _round(ca, tp, [0.2], 0.0, 0.01)
    _next_round(tp)
    _round(ca, tp, [0.3] * 12, 0.3, 0.01)
    assert not ca._st(tp).found and ca._st(tp).hy_end_seq == -1
