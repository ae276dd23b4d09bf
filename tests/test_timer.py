"""TimerWheel against a naive model: a dict of armed timers, scanned for the
minimum (deadline, arming order) on every step.

The wheel moves postponed entries lazily and leaves cancelled ones in the heap
(tcpio/core/timer.py); none of that may be visible: the same timers fire, at
the same times, in the same order, as in the model; next_deadline() is always
the model's earliest deadline; and the heap stays bounded however often timers
are re-armed and cancelled.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpio.core.timer import Timer, TimerWheel

N_TIMERS = 5

ops = st.lists(st.one_of(
    st.tuples(st.just("arm"), st.integers(0, N_TIMERS - 1), st.integers(0, 40)),
    st.tuples(st.just("cancel"), st.integers(0, N_TIMERS - 1), st.just(0)),
    st.tuples(st.just("run"), st.just(0), st.integers(0, 15)),
    st.tuples(st.just("peek"), st.just(0), st.just(0)),
), max_size=60)


class Model:
    def __init__(self) -> None:
        self.armed: dict[int, tuple[float, int]] = {}
        self.seq = itertools.count()
        self.fired: list[tuple[float, int]] = []

    def arm(self, i: int, when: float) -> None:
        self.armed[i] = (when, next(self.seq))

    def cancel(self, i: int) -> None:
        self.armed.pop(i, None)

    def next_deadline(self) -> float | None:
        return min(self.armed.values())[0] if self.armed else None

    def run(self, now: float, rearm: dict[int, float]) -> None:
        while self.armed:
            i, (when, _) = min(self.armed.items(), key=lambda kv: kv[1])
            if when > now:
                break
            del self.armed[i]
            self.fired.append((now, i))
            if i in rearm:
                self.arm(i, now + rearm[i])


@settings(max_examples=300, deadline=None)
@given(ops, st.dictionaries(st.integers(0, N_TIMERS - 1), st.integers(1, 10), max_size=2))
def test_wheel_behaves_like_the_model(script, rearm):
    """``rearm``: timers whose callback re-arms itself (like TCP's RTO)."""
    wheel = TimerWheel()
    model = Model()
    fired: list[tuple[float, int]] = []
    timers = []
    for i in range(N_TIMERS):
        def callback(now, i=i):
            fired.append((now, i))
            if i in rearm:
                timers[i].arm(now + rearm[i])
        timers.append(wheel.timer(callback))
    now = 0.0
    for op, i, arg in script:
        if op == "arm":
            timers[i].arm(now + arg)
            model.arm(i, now + arg)
        elif op == "cancel":
            timers[i].cancel()
            model.cancel(i)
        elif op == "run":
            now += arg
            model.run(now, rearm)
            wheel.run(now)
        else:
            assert wheel.next_deadline() == model.next_deadline()
        assert [t.pending for t in timers] == [i in model.armed for i in range(N_TIMERS)]
        assert [t.when for t in timers] == [model.armed[i][0] if i in model.armed else None
                                            for i in range(N_TIMERS)]
    assert fired == model.fired
    assert wheel.next_deadline() == model.next_deadline()


def test_postponing_does_not_grow_the_heap():
    """An RTO pushed later on every ACK: one heap entry, moved once per period."""
    wheel = TimerWheel()
    hits = []
    t = wheel.timer(hits.append)
    for k in range(10000):
        t.arm(k * 0.001 + 0.2)
    assert len(wheel._heap) == 1
    assert wheel.run(0.2) == 0             # the early entry surfaced and moved
    assert len(wheel._heap) == 1 and wheel.next_deadline() == 9.999 + 0.2
    assert wheel.run(10.2) == 1 and hits == [10.2]


def test_cancel_and_rearm_churn_is_bounded():
    """A delayed-ACK timer armed and cancelled per segment, or earlier deadlines
    each time: stale entries are compacted away, the heap does not grow."""
    wheel = TimerWheel()
    a = wheel.timer(lambda now: None)
    b = wheel.timer(lambda now: None)
    for k in range(100000):
        a.arm(1000.0 + k)
        a.cancel()
        b.arm(1e9 - k)          # earlier every time: a new entry each time
    assert len(wheel._heap) < 1000
    assert wheel.next_deadline() == 1e9 - 99999


def test_rearming_at_the_same_time_goes_behind_timers_armed_since():
    """Equal deadlines fire in arming order, a re-arm counting as a new arming."""
    wheel = TimerWheel()
    order = []
    a = wheel.timer(lambda now: order.append("a"))
    b = wheel.timer(lambda now: order.append("b"))
    a.arm(5.0)
    b.arm(5.0)
    a.arm(5.0)
    wheel.run(5.0)
    assert order == ["b", "a"]


def test_run_with_an_earlier_due_fires_only_the_timers_due_by_then_with_now() -> None:
    """run(now, due): the driver's timers that may run, given the input read
    so far (Stack._on_timer): those due by ``due`` fire, called with ``now``;
    one due between ``due`` and ``now`` stays armed, still the next deadline."""
    wheel = TimerWheel()
    calls: list[tuple[str, float]] = []
    a = wheel.timer(lambda now: calls.append(("a", now)))
    b = wheel.timer(lambda now: calls.append(("b", now)))
    a.arm(1.0)
    b.arm(2.0)
    assert wheel.run(3.0, due=1.5) == 1
    assert calls == [("a", 3.0)] and b.pending and wheel.next_deadline() == 2.0
    assert wheel.run(3.0) == 1
    assert calls == [("a", 3.0), ("b", 3.0)]


def test_prompt_timers_fire_when_due_while_the_others_wait_for_due() -> None:
    """A callback in ``prompt`` (the stack puts TCP's delayed ACK there)
    fires when due whatever ``due`` says; the others due after ``due`` stay
    armed, in their order, and fire on a later run."""
    wheel = TimerWheel()
    calls: list[str] = []

    def delack(now: float) -> None:
        calls.append("delack")
    wheel.prompt.add(delack)
    rto = wheel.timer(lambda now: calls.append("rto"))
    tlp = wheel.timer(lambda now: calls.append("tlp"))
    ack = wheel.timer(delack)
    rto.arm(1.0)
    ack.arm(1.5)
    tlp.arm(1.2)
    assert wheel.run(3.0, due=float("-inf")) == 1
    assert calls == ["delack"] and rto.pending and tlp.pending and not ack.pending
    assert wheel.next_deadline() == 1.0
    assert wheel.run(3.0) == 2
    assert calls == ["delack", "rto", "tlp"]


# --- timers held back by run(now, due) (the driver's wait for input) ---------

def _wheel_with_held_rto(stale: int) -> tuple[TimerWheel, list[tuple[str, float]], Timer]:
    """A wheel with an RTO due at 1.0, a prompt (delayed-ACK) timer due at
    1.5 whose callback arms another timer, and ``stale`` cancelled entries."""
    w = TimerWheel()
    fired: list[tuple[str, float]] = []

    def delack(now: float) -> None:
        fired.append(("delack", now))
        w.timer(lambda now: None).arm(50.0)     # a push from inside run()

    w.prompt.add(delack)
    rto = w.timer(lambda now: fired.append(("rto", now)))
    rto.arm(1.0)
    w.timer(delack).arm(1.5)
    junk = [w.timer(lambda now: None) for _ in range(stale)]
    for t in junk:
        t.arm(10.0)
    for t in junk:
        t.cancel()
    return w, fired, rto


def test_a_held_timer_survives_a_compaction_by_a_prompt_callback() -> None:
    """run(now, due < now) holds the RTO back while the prompt delayed ACK
    fires; that callback's arm() compacts the heap (stale entries dominate)
    into a new list.  The held RTO must be in the wheel afterwards and fire
    when its input has been read (it was lost in the old list, for good:
    its _queued stayed set, so re-arming it queued nothing)."""
    w, fired, _ = _wheel_with_held_rto(stale=300)
    w.run(2.0, float("-inf"))
    assert fired == [("delack", 2.0)]
    assert w.next_deadline() == 1.0
    w.run(3.0)
    assert fired[-1] == ("rto", 3.0)


def test_a_held_timer_survives_a_prompt_callback_that_raises() -> None:
    """An exception out of a callback (the host counts it and goes on) must
    not lose the timers run() had set aside."""
    w = TimerWheel()
    fired: list[float] = []

    def delack(now: float) -> None:
        raise RuntimeError("a socket's bug")

    w.prompt.add(delack)
    rto = w.timer(fired.append)
    rto.arm(1.0)
    w.timer(delack).arm(1.5)
    with pytest.raises(RuntimeError):
        w.run(2.0, float("-inf"))
    assert w.next_deadline() == 1.0
    w.run(3.0)
    assert fired == [3.0]
