"""RFC 6298 estimator: worked values computed by hand from the RFC's formulas."""

from __future__ import annotations

import pytest

from tcpio.core.tcp.tcp_rtt import RttEstimator

approx = pytest.approx


def test_initial_rto_before_any_sample():
    e = RttEstimator()
    assert not e.has_sample
    assert e.rto == 1.0                      # RFC 6298 2.1 (RFC 6298 initial 1 s)
    assert e.srtt == 0.0


def test_first_sample():
    # RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR).
    e = RttEstimator()
    e.sample(0.5)
    assert e.has_sample
    assert e.srtt == approx(0.5)
    assert e.rttvar == approx(0.25)
    assert e.rto == approx(1.5)


def test_second_and_third_samples():
    # RFC 6298 2.3 with alpha = 1/8, beta = 1/4; RTTVAR uses the old SRTT.
    e = RttEstimator()
    e.sample(0.5)
    e.sample(0.3)
    # RTTVAR = 3/4 * 0.25 + 1/4 * |0.5 - 0.3| = 0.2375
    # SRTT   = 7/8 * 0.5 + 1/8 * 0.3 = 0.475;  RTO = 0.475 + 4 * 0.2375 = 1.425
    assert e.rttvar == approx(0.2375)
    assert e.srtt == approx(0.475)
    assert e.rto == approx(1.425)
    e.sample(0.9)
    # RTTVAR = 3/4 * 0.2375 + 1/4 * |0.475 - 0.9| = 0.284375
    # SRTT   = 7/8 * 0.475 + 1/8 * 0.9 = 0.528125
    assert e.rttvar == approx(0.284375)
    assert e.srtt == approx(0.528125)
    assert e.rto == approx(0.528125 + 4 * 0.284375)


def test_linux_min_rto_floor_on_the_variance_term():
    # Linux keeps rttvar >= rto_min, so RTO = SRTT + max(4 RTTVAR, rto_min):
    # a 10 ms path gets 210 ms (not RFC 6298 2.4's 1 s, not a flat 200 ms).
    e = RttEstimator(rto_min=0.2)
    e.sample(0.010)
    assert e.rto == approx(0.210)
    for _ in range(200):
        e.sample(0.010)
    assert e.rttvar == approx(0.0, abs=1e-9)
    assert e.rto == approx(0.210)


def test_granularity_term():
    e = RttEstimator(rto_min=0.0, granularity=0.5)
    e.sample(0.1)                       # 4 * RTTVAR = 0.2 < G
    assert e.rto == approx(0.6)


def test_rto_max_caps_samples():
    e = RttEstimator(rto_max=120.0)
    e.sample(100.0)                     # 100 + 200 -> capped
    assert e.rto == 120.0


def test_backoff_doubles_and_caps():
    # RFC 6298 5.5: double on each timeout; Linux caps at TCP_RTO_MAX = 120 s.
    e = RttEstimator()
    seen = [e.backoff() for _ in range(9)]
    assert seen == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 120.0, 120.0, 120.0]
    assert e.backoff_count == 9
    assert e.rto == 120.0
    e.reset_backoff()
    assert e.rto == 1.0
    for _ in range(100):                # never overflows
        e.backoff()
    assert e.rto == 120.0


def test_sample_after_backoff_uses_new_base():
    e = RttEstimator()
    e.backoff()
    e.backoff()
    assert e.rto == 4.0
    e.sample(0.1)            # Karn: the caller only samples clean segments
    e.reset_backoff()        # new data acked
    assert e.rto == approx(0.3)       # 0.1 + max(4 * 0.05, 0.2)


def test_reset_for_lost_syn():
    # RFC 6298 5.7: after a lost SYN, RTO = 3 s once data transmission starts.
    e = RttEstimator()
    e.sample(0.5)
    e.reset(3.0)
    assert not e.has_sample and e.rto == 3.0
    e.sample(0.2)
    assert e.rto == approx(0.2 + 4 * 0.1)


def test_negative_sample_ignored():
    e = RttEstimator()
    e.sample(-1.0)
    assert not e.has_sample and e.rto == 1.0
