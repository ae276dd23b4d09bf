"""CUBIC's one source gives the same results to the bit compiled and interpreted.

tcpio/_fast/cong_fast.py runs interpreted (tcpio._fast.cong_fast_py) and
compiled with Cython's pure Python mode (tcpio._fast.cong_fast, C doubles
and C integers).  One seeded sequence of ACKs, RTT samples, losses, RTOs,
undos and idle restarts goes through both, on two copies of one flow; after
every call the window, ssthresh, the AI counter and every field of the
CUBIC state must be equal (floats compared with ==, not approximately).
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from tcpio import _fast

COMPILED = _fast.load_compiled("cong_fast")
PURE = _fast.load_pure("cong_fast")

pytestmark = pytest.mark.skipif(
    COMPILED is None or _fast.NO_EXTENSIONS,
    reason="compiled build only: cong_fast is not built here")

INF = 0x7FFFFFFF
CA_LOSS = 4
CA_EVENT_TX_START = 0
STATE_FIELDS = sorted(PURE.CubicState.__slots__)


def ops_of(mod, hystart):
    """A CUBIC module object whose methods are ``mod``'s functions (as
    core.tcp.tcp_cubic.Cubic takes them)."""
    ops = type("Ops", (), {name: getattr(mod, name) for name in (
        "init", "ssthresh", "set_state", "undo_cwnd", "cwnd_event", "pkts_acked",
        "cong_avoid")})()
    ops.fast_convergence = True
    ops.hystart_enabled = hystart
    return ops


def flow(detect):
    return SimpleNamespace(
        snd_cwnd=10, snd_ssthresh=INF, snd_cwnd_cnt=0, snd_cwnd_clamp=100_000, prior_cwnd=0,
        mss_cache=1448, srtt=0.0, min_rtt=0.0, packets_out=0, snd_una=0xFFFF_F000,
        snd_nxt=0xFFFF_F000, ca_state=0, ca_priv=None,
        host=SimpleNamespace(settings=SimpleNamespace(tcp_cubic_hystart_detect=detect)))


def snapshot(tp):
    st = tp.ca_priv
    fields = () if st is None else tuple(getattr(st, f) for f in STATE_FIELDS)
    return (tp.snd_cwnd, tp.snd_ssthresh, tp.snd_cwnd_cnt, fields)


def drive(mod, seed, detect, hystart, steps=6000):
    """The seeded event sequence through ``mod``; the snapshot after each call."""
    rng = random.Random(seed)
    ca = ops_of(mod, hystart)
    tp = flow(detect)
    ca.init(tp, 0.0)
    now = 0.0
    base_rtt = rng.choice([0.0004, 0.003, 0.05, 0.2])
    trace = []
    for _ in range(steps):
        event = rng.random()
        if event < 0.004:
            tp.prior_cwnd = tp.snd_cwnd
            tp.snd_ssthresh = ca.ssthresh(tp)
            tp.snd_cwnd = tp.snd_ssthresh
        elif event < 0.005:
            tp.snd_ssthresh = ca.ssthresh(tp)
            ca.set_state(tp, CA_LOSS)
            tp.snd_cwnd = 1
        elif event < 0.006:
            tp.snd_cwnd = ca.undo_cwnd(tp)
        elif event < 0.01:
            now += rng.uniform(0.0, 3.0)
            ca.cwnd_event(tp, CA_EVENT_TX_START, now)
        else:
            now += rng.uniform(0.0, base_rtt / 4)
            acked = rng.choice([1, 1, 1, 2, 2, 3, 10])
            tp.snd_una = (tp.snd_una + acked * 1448) & 0xFFFFFFFF
            tp.snd_nxt = (tp.snd_una + tp.snd_cwnd * 1448) & 0xFFFFFFFF
            tp.packets_out = tp.snd_cwnd
            rtt = None if rng.random() < 0.05 else base_rtt * rng.uniform(1.0, 1.6)
            if rtt is not None:
                tp.srtt = rtt if not tp.srtt else 0.875 * tp.srtt + 0.125 * rtt
                tp.min_rtt = rtt if not tp.min_rtt else min(tp.min_rtt, rtt)
            ca.pkts_acked(tp, acked, rtt, now)
            ca.cong_avoid(tp, acked, now)
        trace.append(snapshot(tp))
    return trace


@pytest.mark.parametrize("detect,hystart", [(0, True), (0, False), (1, True), (2, True),
                                            (3, True)])
@pytest.mark.parametrize("seed", range(4))
def test_one_flow_same_window_and_state_after_every_call(seed, detect, hystart):
    pure = drive(PURE, seed, detect, hystart)
    compiled = drive(COMPILED, seed, detect, hystart)
    assert len(pure) == len(compiled)
    for i, (p, c) in enumerate(zip(pure, compiled, strict=True)):
        assert p == c, f"step {i}: interpreted {p} != compiled {c}"
    # the sequence reached congestion avoidance and moved the window there
    assert len({p[0] for p in pure}) > 20


def test_the_formulas_agree_to_the_bit():
    rng = random.Random(7)
    for _ in range(2000):
        w_max, cwnd = rng.uniform(2, 5000), rng.uniform(2, 5000)
        t = rng.uniform(0, 30)
        k = PURE.cubic_k(w_max, cwnd)
        assert COMPILED.cubic_k(w_max, cwnd) == k
        assert COMPILED.w_cubic(t, k, w_max) == PURE.w_cubic(t, k, w_max)



def test_additive_increase_takes_a_whole_number_of_segments_in_both_builds() -> None:
    """tcp_cong_avoid_ai's ``w`` is a C integer compiled; interpreted, a
    float ``w`` is truncated the same way (the window stays an int)."""
    for mod in (COMPILED, PURE):
        tp = SimpleNamespace(snd_cwnd=10, snd_cwnd_cnt=0, snd_cwnd_clamp=1000)
        mod.tcp_cong_avoid_ai(tp, 2.5, 3)
        assert (tp.snd_cwnd, tp.snd_cwnd_cnt) == (11, 1)
        assert type(tp.snd_cwnd) is int and type(tp.snd_cwnd_cnt) is int
