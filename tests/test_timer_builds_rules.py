"""The timer wheel's one source behaves the same compiled and interpreted.

tcpio/_fast/timer_fast.py runs interpreted (tcpio._fast.timer_fast_py) and
compiled with Cython's pure Python mode (tcpio._fast.timer_fast: Timer and
TimerWheel are C types).  One seeded sequence of arms (later, earlier, at
the same deadline), cancels, runs with and without a held-back ``due``,
owned timers whose owner goes away and prompt timers goes through both;
after every step the timers fired (in order, with the time they were given),
each timer's deadline and heap entry, the stale count and the heaps'
deadlines must be equal.  Both must also keep test_timer.py's rules, which
run on the build in use; this catches a rule kept by one build only.
"""

from __future__ import annotations

import gc
import random
from itertools import pairwise

import pytest

from tcpio import _fast

COMPILED = _fast.load_compiled("timer_fast")
PURE = _fast.load_pure("timer_fast")

pytestmark = pytest.mark.skipif(
    COMPILED is None or _fast.NO_EXTENSIONS,
    reason="compiled build only: timer_fast is not built here")


class Owner:
    """What an owned timer holds weakly (a socket, in the stack)."""

    def __init__(self, name: int) -> None:
        self.name = name


def drive(mod, seed: int, n: int, runs: float, steps: int = 4000) -> list:
    """``runs``: the share of the steps that run the wheel."""
    rng = random.Random(seed)
    wheel = mod.TimerWheel()
    fired: list = []
    owners: dict[int, Owner] = {}
    timers = []
    for k in range(n):
        if k % 3 == 0:
            owners[k] = Owner(k)
            t = wheel.timer(lambda owner, now: fired.append(("owned", owner.name, now)),
                            owners[k], prompt=k % 2 == 0)
        else:
            t = wheel.timer(lambda now, k=k: fired.append(("plain", k, now)), prompt=k % 4 == 1)
        timers.append(t)
    now = 0.0
    trace = []
    for _ in range(steps):
        op = rng.random()
        t = rng.choice(timers)
        if op < 0.45:
            base = t.when if t.when is not None and rng.random() < 0.5 else now
            t.arm(round(base + rng.choice((-0.05, 0.0, 0.001, 0.2, 1.0)) * rng.random(), 3)
                  if rng.random() < 0.8 else base)
        elif op < 0.65:
            t.cancel()
        elif op < 0.65 + runs:
            now = round(now + rng.random() * 0.3, 3)
            due = round(now - rng.random() * 0.2, 3) if rng.random() < 0.3 else None
            trace.append(("ran", wheel.run(now, due)))
        elif op < 0.7 + runs:
            trace.append(("bound", wheel.deadline_bound(), wheel.next_deadline()))
        elif owners:
            owners.pop(rng.choice(sorted(owners)))      # the owner goes: its timer does nothing
            gc.collect()
        trace.append((tuple(fired), tuple((t.when, t._queued, t.pending) for t in timers),
                      wheel._stale, sorted(e[0] for e in wheel._heap),
                      sorted(e[0] for e in wheel._prompt_heap)))
        fired.clear()
    return trace


@pytest.mark.parametrize("seed, n, runs", [(1, 24, 0.25), (2, 24, 0.25), (3, 96, 0.05)])
def test_compiled_and_interpreted_wheels_agree(seed: int, n: int, runs: float) -> None:
    assert COMPILED is not PURE and COMPILED.Timer is not PURE.Timer
    pure, compiled = drive(PURE, seed, n, runs), drive(COMPILED, seed, n, runs)
    for step, (a, b) in enumerate(zip(pure, compiled, strict=True)):
        assert a == b, f"step {step}: interpreted {a} != compiled {b}"


def compaction(mod) -> list:
    """600 timers armed, re-armed earlier (each leaves a stale entry) and
    every other one cancelled (parked): the stale entries come to be most of
    the heaps, which are then rebuilt in place; then every timer runs.  The
    stale count after each step, the timers' entries and what fired."""
    wheel = mod.TimerWheel()
    fired: list = []
    timers = [wheel.timer(lambda now, k=k: fired.append((k, now)), prompt=k % 5 == 0)
              for k in range(600)]
    heaps = wheel._heap, wheel._prompt_heap
    stale = []
    for k, t in enumerate(timers):
        t.arm(10.0 + k)
    for k, t in enumerate(timers):
        t.arm(5.0 + k / 2)
        stale.append(wheel._stale)
        if k % 2:
            t.cancel()
            stale.append(wheel._stale)
    assert (wheel._heap, wheel._prompt_heap) == heaps and wheel._heap is heaps[0]
    entries = [(t.when, t._queued) for t in timers]
    wheel.run(1000.0)
    return [stale, entries, fired]


def test_compiled_and_interpreted_wheels_compact_alike() -> None:
    pure, compiled = compaction(PURE), compaction(COMPILED)
    assert pure == compiled
    stale = pure[0]
    assert any(a > 256 and b == 0 for a, b in pairwise(stale))    # compacted
    assert len(pure[2]) == 300


def test_no_timer_refuses_to_be_armed_in_both() -> None:
    for mod in (PURE, COMPILED):
        assert mod.NO_TIMER.when is None and not mod.NO_TIMER.pending
        mod.NO_TIMER.cancel()
        with pytest.raises(AssertionError):
            mod.NO_TIMER.arm(1.0)
