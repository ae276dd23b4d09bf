"""TimerWheel against a naive model: a dict of armed timers, scanned for the
minimum (deadline, arming order) on every step.

The wheel moves postponed entries lazily and leaves cancelled ones in the heap
(tcpio/core/timer.py); none of that may be visible: the same timers fire, at
the same times, in the same order, as in the model; next_deadline() is always
the model's earliest deadline, and deadline_bound() (the driver's, O(1)) never
after it, equal once next_deadline() has settled the heaps; and the heap stays
bounded however often timers are re-armed and cancelled.
"""

from __future__ import annotations

import heapq
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tcpio.core.timer as timer_mod
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


def arm_or_cancel_both(op: str, i: int, when: float, timers: list[Timer], model: Model) -> bool:
    """Timer ``i`` armed at ``when`` or cancelled, in the wheel and the
    model alike; False for any other ``op``."""
    if op == "arm":
        timers[i].arm(when)
        model.arm(i, when)
    elif op == "cancel":
        timers[i].cancel()
        model.cancel(i)
    else:
        return False
    return True


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
        if arm_or_cancel_both(op, i, now + arg, timers, model):
            pass
        elif op == "run":
            now += arg
            model.run(now, rearm)
            wheel.run(now)
        else:
            assert wheel.next_deadline() == model.next_deadline()
            # settled: the driver's bound is the deadline itself then
            assert wheel.deadline_bound() == model.next_deadline()
        # the bound the driver arms its loop timer for: never after the
        # earliest deadline (early, when stale entries are on top)
        bound, deadline = wheel.deadline_bound(), model.next_deadline()
        assert deadline is None or (bound is not None and bound <= deadline)
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
    """A prompt timer (``timer(..., prompt=True)``; TCP's delayed ACK is one)
    fires when due whatever ``due`` says; the others due after ``due`` stay
    armed, in their order, and fire on a later run."""
    wheel = TimerWheel()
    calls: list[str] = []
    rto = wheel.timer(lambda now: calls.append("rto"))
    tlp = wheel.timer(lambda now: calls.append("tlp"))
    ack = wheel.timer(lambda now: calls.append("delack"), prompt=True)
    rto.arm(1.0)
    ack.arm(1.5)
    tlp.arm(1.2)
    assert wheel.run(3.0, due=float("-inf")) == 1
    assert calls == ["delack"] and rto.pending and tlp.pending and not ack.pending
    assert wheel.next_deadline() == 1.0
    assert wheel.run(3.0) == 2
    assert calls == ["delack", "rto", "tlp"]


def test_a_prompt_timer_is_only_as_prompt_as_now() -> None:
    """Held back or not, a prompt timer still waits for its deadline: one due
    after ``now`` does not fire, and is the next deadline if earliest."""
    wheel = TimerWheel()
    calls: list[str] = []
    ack = wheel.timer(lambda now: calls.append("delack"), prompt=True)
    ack.arm(4.0)
    assert wheel.run(3.0, due=float("-inf")) == 0 and wheel.run(3.0) == 0
    assert ack.pending and wheel.next_deadline() == 4.0
    assert wheel.run(4.0, due=float("-inf")) == 1 and calls == ["delack"]


@pytest.mark.parametrize("due", [None, float("-inf")], ids=["run", "look"])
@pytest.mark.parametrize("prompt", [False, True], ids=["ordinary", "prompt"])
def test_a_postponed_timer_does_not_fire_at_its_old_deadline(prompt, due) -> None:
    """Its entry stays at the old deadline (moved only when it surfaces):
    surfacing, it moves; it fires at the new deadline, in either heap."""
    wheel = TimerWheel()
    hits: list[float] = []
    t = wheel.timer(hits.append, prompt=prompt)
    t.arm(1.0)
    t.arm(5.0)
    assert wheel.run(2.0, due) == 0 and t.pending and hits == []
    assert wheel.next_deadline() == 5.0
    assert wheel.run(5.0) == 1 and hits == [5.0]


@pytest.mark.parametrize("prompt_first", [True, False])
def test_prompt_and_ordinary_timers_due_together_fire_in_arming_order(prompt_first) -> None:
    """One order for all timers, as with a single heap: (deadline, arming
    order), whichever heap a timer is in; later deadlines after."""
    wheel = TimerWheel()
    order: list[str] = []
    ack = wheel.timer(lambda now: order.append("delack"), prompt=True)
    rto = wheel.timer(lambda now: order.append("rto"))
    late = wheel.timer(lambda now: order.append("late"), prompt=True)
    first, second = (ack, rto) if prompt_first else (rto, ack)
    late.arm(2.0)
    first.arm(1.0)
    second.arm(1.0)
    assert wheel.run(5.0) == 3
    names = ["delack", "rto"] if prompt_first else ["rto", "delack"]
    assert order == [*names, "late"]


def test_a_timer_made_prompt_stays_prompt_and_an_owned_one_holds_its_owner_weakly() -> None:
    class Sock:
        pass
    wheel = TimerWheel()
    sk = Sock()
    fired: list[tuple[object, float]] = []
    t = wheel.timer(lambda owner, now: fired.append((owner, now)), sk, prompt=True)
    assert t.prompt and not wheel.timer(lambda now: None, sk).prompt
    t.arm(1.0)
    t.cancel()
    t.arm(2.0)
    assert t.prompt and wheel.run(3.0, float("-inf")) == 1 and fired == [(sk, 3.0)]


# --- timers held back by run(now, due) (the driver's wait for input) ---------

def _wheel_with_held_rto(stale: int) -> tuple[TimerWheel, list[tuple[str, float]], Timer]:
    """A wheel with an RTO due at 1.0, a prompt (delayed-ACK) timer due at
    1.5 whose callback arms another timer due now, and ``stale`` cancelled
    entries."""
    w = TimerWheel()
    fired: list[tuple[str, float]] = []

    def delack(now: float) -> None:
        fired.append(("delack", now))
        w.timer(lambda now: fired.append(("armed", now)), prompt=True).arm(now)  # a push mid-run

    rto = w.timer(lambda now: fired.append(("rto", now)))
    rto.arm(1.0)
    w.timer(delack, prompt=True).arm(1.5)
    junk = [w.timer(lambda now: None, prompt=k % 2 == 0) for k in range(stale)]
    for t in junk:
        t.arm(10.0)
    for t in junk:
        t.cancel()
    return w, fired, rto


def test_a_held_timer_survives_a_compaction_by_a_prompt_callback() -> None:
    """run(now, due < now) holds the RTO back while the prompt delayed ACK
    fires; that callback's arm() compacts the heaps (stale entries
    dominate).  The timer it armed, due now, fires in the same run; the held
    RTO stays in the wheel and fires when its input has been read (once lost
    for good: the run had taken it out into a list of its own)."""
    w, fired, _ = _wheel_with_held_rto(stale=300)
    w.run(2.0, float("-inf"))
    assert fired == [("delack", 2.0), ("armed", 2.0)]
    assert w._stale == 0 and len(w._heap) + len(w._prompt_heap) == 1    # compacted
    assert w.next_deadline() == 1.0
    w.run(3.0)
    assert fired[-1] == ("rto", 3.0)


def test_a_held_timer_survives_a_prompt_callback_that_raises() -> None:
    """An exception out of a callback (the host counts it and goes on) must
    not lose the timers the run held back, nor the one that raised."""
    w = TimerWheel()
    fired: list[float] = []

    def delack(now: float) -> None:
        raise RuntimeError("a socket's bug")

    rto = w.timer(fired.append)
    rto.arm(1.0)
    ack = w.timer(delack, prompt=True)
    ack.arm(1.5)
    with pytest.raises(RuntimeError):
        w.run(2.0, float("-inf"))
    assert w.next_deadline() == 1.0 and not ack.pending
    ack.arm(2.5)                    # re-armable: its entry was not left queued
    assert w.next_deadline() == 1.0
    assert_every_armed_timer_is_queued(w, [rto, ack])
    with pytest.raises(RuntimeError):
        w.run(3.0)                  # the RTO first, then the raising one
    assert fired == [3.0]


# --- both heaps against the model, with runs that hold timers back ----------

N_MIXED = 6                 # timers 0..2 ordinary, 3..5 prompt
PROMPT = frozenset({3, 4, 5})

mixed_ops = st.lists(st.one_of(
    st.tuples(st.just("arm"), st.integers(0, N_MIXED - 1), st.integers(0, 40)),
    st.tuples(st.just("cancel"), st.integers(0, N_MIXED - 1), st.just(0)),
    # run(now + arg, due): due None, or that far before now (or at it).  Never
    # after: the driver's due is the time of an earlier look, and with a due
    # past now a callback that re-arms its timer at now + 1 is due again at
    # once, for ever (the model and the wheel alike: the suite hung in it)
    st.tuples(st.just("run"), st.integers(0, 15), st.one_of(
        st.none(), st.just(float("-inf")), st.integers(-20, 0))),
    st.tuples(st.just("peek"), st.just(0), st.just(0)),
), max_size=80)


class MixedModel(Model):
    def run_due(self, now: float, due: float | None, effects: dict[int, tuple[str, int, int]],
                act: object) -> None:
        """Fire, in (deadline, arming) order, the ordinary timers due by
        ``due`` and the prompt ones due by max(due, now); a fired timer's
        effect (arm or cancel another) happens before the next is chosen."""
        limit = now if due is None else due
        plimit = max(limit, now)
        while True:
            due_now = [(w, s, i) for i, (w, s) in self.armed.items()
                       if w <= (plimit if i in PROMPT else limit)]
            if not due_now:
                break
            _, _, i = min(due_now)
            del self.armed[i]
            self.fired.append((now, i))
            if i in effects:
                act(self, i, now)       # type: ignore[operator]


@settings(max_examples=250, deadline=None)
@given(mixed_ops, st.dictionaries(
    st.integers(0, N_MIXED - 1),
    st.tuples(st.sampled_from(["arm", "cancel"]), st.integers(0, N_MIXED - 1),
              st.integers(1, 10)), max_size=3),
    st.integers(0, 300))
def test_both_heaps_behave_like_the_model(script, effects, junk):
    """Ordinary and prompt timers, runs with ``due`` before (or at) now,
    callbacks that arm or cancel other timers (or themselves), and ``junk``
    cancelled entries so that arming from a callback compacts the heaps
    mid-run: the same timers fire at the same times in the same order as in
    the model, and every timer's state matches it throughout."""
    wheel = TimerWheel()
    model = MixedModel()
    fired: list[tuple[float, int]] = []
    timers: list[Timer] = []

    def act(target: object, i: int, now: float) -> None:
        op, j, delay = effects[i]
        if target is wheel:
            if op == "arm":
                timers[j].arm(now + delay)
            else:
                timers[j].cancel()
        else:
            if op == "arm":
                model.arm(j, now + delay)
            else:
                model.cancel(j)

    for i in range(N_MIXED):
        def callback(now, i=i):
            fired.append((now, i))
            if i in effects:
                act(wheel, i, now)
        timers.append(wheel.timer(callback, prompt=i in PROMPT))
    garbage = [wheel.timer(lambda now: None, prompt=k % 2 == 0) for k in range(junk)]
    for k, t in enumerate(garbage):
        t.arm(1000.0 + k)
    for t in garbage:
        t.cancel()
    now = 0.0
    for op, i, arg in script:
        if arm_or_cancel_both(op, i, now + (arg or 0), timers, model):
            pass
        elif op == "run":
            now += i
            due = None if arg is None else now + arg
            model.run_due(now, due, effects, act)
            wheel.run(now, due)
        else:
            assert wheel.next_deadline() == model.next_deadline()
        assert [t.when for t in timers] == [model.armed[i][0] if i in model.armed else None
                                            for i in range(N_MIXED)]
        assert_every_armed_timer_is_queued(wheel, timers)
    assert fired == model.fired
    assert wheel.next_deadline() == model.next_deadline()


def assert_every_armed_timer_is_queued(wheel: TimerWheel, timers: list[Timer]) -> None:
    """Nothing lost: each armed timer has its live entry (at or before its
    deadline) in its own heap, and no entry is in the other heap."""
    for t in timers:
        mine, other = ((wheel._prompt_heap, wheel._heap) if t.prompt
                       else (wheel._heap, wheel._prompt_heap))
        assert not any(e[2] is t for e in other)
        if t.when is not None:
            assert t._queued is not None and t._queued <= t.when
            assert any(e[2] is t and e[0] == t._queued for e in mine)


# --- cost: heap operations, not time -----------------------------------------

class HeapOps:
    """The timer wheel's heapq (tcpio.core.timer.impl's), counting each
    call (a heap push or pop is one sift: O(log n) entries touched; heapify
    touches them all)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        real = getattr(heapq, name)

        def counted(*args):
            self.calls[name] = self.calls.get(name, 0) + 1
            return real(*args)
        return counted

    def take(self) -> dict[str, int]:
        calls, self.calls = self.calls, {}
        return calls


@pytest.fixture
def heap_ops(monkeypatch: pytest.MonkeyPatch) -> HeapOps:
    ops = HeapOps()
    monkeypatch.setattr(timer_mod.impl, "heapq", ops)  # (the wheel's module, compiled or not)
    return ops


def _held_rtos(wheel: TimerWheel, n: int) -> list[Timer]:
    """``n`` RTOs due at 1.0.., each pushed later on an ACK (its entry early,
    to be moved when it surfaces), every other one cancelled and re-armed
    (its parked entry taken back, early too: no push): what 1000 busy
    flows leave."""
    rtos = [wheel.timer(lambda now: None) for _ in range(n)]
    for k, t in enumerate(rtos):
        t.arm(1.0 + k * 1e-4)
    for k, t in enumerate(rtos):
        t.arm(1.5 + k * 1e-4)
        if k % 2:
            t.cancel()
            t.arm(1.2 + k * 1e-4)
    return rtos


def test_a_deferral_look_touches_only_the_prompt_timers(heap_ops) -> None:
    """10 000 held timers due and one prompt timer due: the look that runs
    the prompt one alone (run(now, -inf), each loop iteration while the
    timers wait for input) pops that one entry and nothing else, however
    many are held (before: every held due entry popped and pushed back)."""
    wheel = TimerWheel()
    rtos = _held_rtos(wheel, 10_000)
    fired: list[float] = []
    ack = wheel.timer(fired.append, prompt=True)
    ack.arm(2.5)
    heap_ops.take()
    assert wheel.run(3.0, float("-inf")) == 1 and fired == [3.0]
    assert heap_ops.take() == {"heappop": 1}
    assert wheel.run(3.0, float("-inf")) == 0       # the next look: nothing
    assert heap_ops.take() == {}
    assert all(t.pending for t in rtos)
    assert wheel.run(3.0) == 10_000


def test_arming_later_and_cancelling_touch_no_heap_entry(heap_ops) -> None:
    """Per timer: re-arm later and cancel are O(1), arm earlier one push."""
    wheel = TimerWheel()
    _held_rtos(wheel, 1000)
    t = wheel.timer(lambda now: None, prompt=True)
    heap_ops.take()
    t.arm(5.0)
    assert heap_ops.take() == {"heappush": 1}
    for k in range(100):
        t.arm(6.0 + k)
    t.cancel()
    assert heap_ops.take() == {}
    t.arm(4.0)
    assert heap_ops.take() == {"heappush": 1}


def test_firing_one_timer_among_many_pops_its_entry_alone(heap_ops) -> None:
    """A run that fires one timer due before 1000 held ones pops its entry
    and nothing else; their early entries are moved once each when they
    surface (amortised: one move per entry per timeout period), after which
    looking again touches nothing."""
    wheel = TimerWheel()
    _held_rtos(wheel, 1000)
    hits: list[float] = []
    first = wheel.timer(hits.append)
    first.arm(0.5)
    heap_ops.take()
    assert wheel.run(0.9) == 1 and hits == [0.9]
    assert heap_ops.take() == {"heappop": 1}
    assert wheel.next_deadline() == 1.2 + 1e-4
    # the 1000 early entries moved to 1.2.. and 1.5.. (the cancelled and
    # re-armed ones took their parked entries back: none stale)
    assert heap_ops.take() == {"heapreplace": 1000}
    assert wheel.next_deadline() == 1.2 + 1e-4 and wheel.run(1.2) == 0
    assert heap_ops.take() == {}
