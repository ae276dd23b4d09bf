"""Reno/NewReno window rules (RFC 5681, RFC 6582 ssthresh) and the module registry."""

from __future__ import annotations

import errno

import pytest

from tcpio.core.tcp.tcp_cong import (
    CongestionOps,
    NewReno,
    Reno,
    available,
    get_congestion_control,
    tcp_cong_avoid_ai,
    tcp_is_cwnd_limited,
    tcp_slow_start,
)

INF = 0x7FFFFFFF


class Tp:
    """The TcpSock fields a congestion module may touch."""

    def __init__(self, cwnd=10, ssthresh=INF, clamp=10**6, packets_out=0):
        self.snd_cwnd = cwnd
        self.snd_ssthresh = ssthresh
        self.snd_cwnd_cnt = 0
        self.snd_cwnd_clamp = clamp
        self.prior_cwnd = 0
        self.mss_cache = 1448
        self.srtt = 0.0
        self.min_rtt = 0.0
        self.packets_out = packets_out
        self.snd_una = 0
        self.snd_nxt = 0
        self.ca_state = 0
        self.ca_priv = None
        self.is_cwnd_limited = True


def one_rtt(ca, tp, now=0.0):
    """A window's worth of ACKs, one per segment (no delayed ACKs)."""
    for _ in range(tp.snd_cwnd):
        ca.cong_avoid(tp, 1, now)


@pytest.mark.parametrize("name", ["reno", "newreno"])
def test_slow_start_doubles_per_rtt(name):
    # RFC 5681 3.1: cwnd += 1 SMSS per ACK of new data in slow start, so with
    # an ACK per segment the window doubles every round trip.
    ca, tp = get_congestion_control(name), Tp(cwnd=10)
    ca.init(tp, 0.0)
    seen = []
    for _ in range(4):
        one_rtt(ca, tp)
        seen.append(tp.snd_cwnd)
    assert seen == [20, 40, 80, 160]


def test_slow_start_stops_at_ssthresh_and_leftover_goes_to_ca():
    tp = Tp(cwnd=8, ssthresh=10)
    assert tcp_slow_start(tp, 5) == 3
    assert tp.snd_cwnd == 10
    ca = Reno()
    tp = Tp(cwnd=8, ssthresh=10)
    ca.cong_avoid(tp, 5, 0.0)
    assert tp.snd_cwnd == 10 and tp.snd_cwnd_cnt == 3


@pytest.mark.parametrize("name", ["reno", "newreno"])
def test_congestion_avoidance_one_segment_per_rtt(name):
    # RFC 5681 3.1 eq. 3 / its recommended byte-counting form: +1 SMSS per
    # RTT in congestion avoidance.
    ca, tp = get_congestion_control(name), Tp(cwnd=20, ssthresh=20)
    for k in range(1, 11):
        one_rtt(ca, tp)
        assert tp.snd_cwnd == 20 + k


def test_congestion_avoidance_with_delayed_acks():
    # One ACK per two segments: still +1 per window of data acknowledged.
    ca, tp = Reno(), Tp(cwnd=20, ssthresh=20)
    for _ in range(10):
        ca.cong_avoid(tp, 2, 0.0)
    assert tp.snd_cwnd == 21
    # A stretch ACK for two windows at once grows by two.
    tp = Tp(cwnd=20, ssthresh=20)
    ca.cong_avoid(tp, 40, 0.0)
    assert tp.snd_cwnd == 22


def test_cong_avoid_ai_applies_credit_from_larger_w():
    tp = Tp(cwnd=10)
    tp.snd_cwnd_cnt = 15               # accumulated while w was 20
    tcp_cong_avoid_ai(tp, 10, 1)
    assert tp.snd_cwnd == 11 and tp.snd_cwnd_cnt == 1


def test_clamp_respected():
    ca = Reno()
    tp = Tp(cwnd=10, clamp=12)
    one_rtt(ca, tp)
    assert tp.snd_cwnd == 12
    tp = Tp(cwnd=12, ssthresh=5, clamp=12)
    for _ in range(100):
        ca.cong_avoid(tp, 1, 0.0)
    assert tp.snd_cwnd == 12


def test_cwnd_limited_helper():
    # RFC 7661 / Linux tcp_is_cwnd_limited: the caller does not grow the
    # window when the sender did not fill it; in slow start, growing is fine
    # while cwnd < 2 * the most packets that were in flight.
    tp = Tp(cwnd=20, ssthresh=10)
    tp.is_cwnd_limited = False
    assert not tcp_is_cwnd_limited(tp)
    tp.is_cwnd_limited = True
    assert tcp_is_cwnd_limited(tp)
    tp = Tp(cwnd=20, ssthresh=100)
    tp.is_cwnd_limited = False
    tp.max_packets_out = 10
    assert not tcp_is_cwnd_limited(tp)
    tp.max_packets_out = 11
    assert tcp_is_cwnd_limited(tp)


@pytest.mark.parametrize("flight,want", [(30, 15), (31, 15), (4, 2), (3, 2), (1, 2), (0, 2)])
def test_newreno_ssthresh_is_half_the_flight(flight, want):
    # RFC 5681 eq. 4: ssthresh = max(FlightSize / 2, 2 * SMSS).
    tp = Tp(cwnd=100, packets_out=flight)
    assert NewReno().ssthresh(tp) == want


def test_newreno_flight_excludes_sacked_and_lost():
    tp = Tp(cwnd=100, packets_out=40)
    tp.sacked_out, tp.lost_out, tp.retrans_out = 10, 6, 2     # in flight: 26
    assert NewReno().ssthresh(tp) == 13


@pytest.mark.parametrize("cwnd,want", [(40, 20), (41, 20), (3, 2), (1, 2)])
def test_linux_reno_ssthresh_is_half_cwnd(cwnd, want):
    assert Reno().ssthresh(Tp(cwnd=cwnd, packets_out=5)) == want


def test_undo_restores_prior_cwnd():
    tp = Tp(cwnd=10)
    tp.prior_cwnd = 30
    assert Reno().undo_cwnd(tp) == 30
    tp.prior_cwnd = 5
    assert Reno().undo_cwnd(tp) == 10


def test_registry():
    assert {"reno", "newreno", "cubic"} <= set(available())
    a, b = get_congestion_control("cubic"), get_congestion_control("cubic")
    assert a is not b and a.name == "cubic"
    assert isinstance(get_congestion_control("reno"), CongestionOps)
    with pytest.raises(OSError) as ei:
        get_congestion_control("bbr9")
    assert ei.value.errno == errno.ENOENT
