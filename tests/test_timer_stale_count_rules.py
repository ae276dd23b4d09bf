"""TimerWheel's stale-entry count is exact (tcpio/core/timer.py).

Every timer has at most one heap entry of its own (``_queued`` is its
deadline, None: none), live while the timer is armed, parked while it is
cancelled (kept for a re-arm at or after it); every other entry in the two
heaps is stale, and ``_stale`` counts exactly those and the parked ones, whatever the order of arming, cancelling, running and
compacting.  The count decides when the heaps are compacted, so a stale entry
that is not counted (or counted and kept) is garbage that compaction never
removes: a timer cancelled and re-armed at the same deadline over and over (a
delayed-ACK timer under a coarse or virtual clock) must not grow the heap.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tcpio.core.timer import Timer, TimerWheel


def _real_stale(wheel: TimerWheel, timers: list[Timer]) -> int:
    entries = len(wheel._heap) + len(wheel._prompt_heap)
    return entries - sum(t._queued is not None and t.when is not None for t in timers)


def test_cancel_then_rearm_at_the_same_deadline_takes_the_parked_entry_back():
    wheel = TimerWheel()
    t = wheel.timer(lambda now: None)
    t.arm(5.0)
    t.cancel()
    assert wheel._stale == _real_stale(wheel, [t]) == 1       # parked
    t.arm(5.0)
    assert wheel._stale == _real_stale(wheel, [t]) == 0
    assert len(wheel._heap) == 1 and wheel.next_deadline() == 5.0
    assert wheel._stale == _real_stale(wheel, [t])
    t.cancel()
    wheel._compact()                    # drops the parked entry: the timer has none
    assert wheel._stale == 0 and wheel._heap == [] and t._queued is None
    t.arm(5.0)
    assert wheel.run(5.0) == 1
    assert wheel._stale == _real_stale(wheel, [t]) == 0
    assert wheel._heap == []


def test_cancel_then_rearm_earlier_leaves_one_stale_entry():
    wheel = TimerWheel()
    t = wheel.timer(lambda now: None)
    t.arm(5.0)
    t.cancel()
    t.arm(4.0)
    assert wheel._stale == _real_stale(wheel, [t]) == 1
    wheel._compact()                    # drops the stale entry, keeps the live one
    assert wheel._stale == 0 and len(wheel._heap) == 1
    assert wheel.run(5.0) == 1 and wheel._heap == []


def test_cancel_and_rearm_at_the_same_deadline_is_bounded():
    wheel = TimerWheel()
    t = wheel.timer(lambda now: None)
    for _ in range(10000):
        t.arm(7.0)
        t.cancel()
    t.arm(7.0)
    assert len(wheel._heap) < 1000
    assert wheel._stale == _real_stale(wheel, [t])
    assert wheel.run(7.0) == 1 and wheel.next_deadline() is None


N = 4
ops = st.lists(st.one_of(
    st.tuples(st.just("arm"), st.integers(0, N - 1), st.integers(0, 3)),
    st.tuples(st.just("cancel"), st.integers(0, N - 1), st.just(0)),
    st.tuples(st.just("cancel_rearm"), st.integers(0, N - 1), st.integers(0, 3)),
    st.tuples(st.just("run"), st.just(0), st.integers(0, 2)),
    st.tuples(st.just("peek"), st.just(0), st.just(0)),
    st.tuples(st.just("compact"), st.just(0), st.just(0)),
), max_size=80)


@settings(max_examples=300, deadline=None)
@given(ops, st.lists(st.booleans(), min_size=N, max_size=N))
def test_the_stale_count_is_exact_after_every_step(script, prompt):
    wheel = TimerWheel()
    timers = [wheel.timer(lambda now: None, prompt=p) for p in prompt]
    now = 0.0
    for op, i, arg in script:
        if op == "arm":
            timers[i].arm(now + arg)        # few deadlines: many the same
        elif op == "cancel":
            timers[i].cancel()
        elif op == "cancel_rearm":
            when = timers[i].when
            timers[i].cancel()
            timers[i].arm(now + arg if when is None else when)
        elif op == "run":
            now += arg
            wheel.run(now)
        elif op == "peek":
            wheel.next_deadline()
        else:
            wheel._compact()
        assert wheel._stale == _real_stale(wheel, timers)
