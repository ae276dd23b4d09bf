"""Timers with an owner (tcpio/core/timer.py): ``timer(callback, owner)``
calls ``callback(owner, now)`` and holds the owner weakly, like Linux's
timer_setup/from_timer; a timer without an owner calls ``callback(now)``."""

from __future__ import annotations

import gc

from tcpio.core.timer import TimerWheel


class Owner:
    def __init__(self) -> None:
        self.calls: list[float] = []


def _fire(owner: Owner, now: float) -> None:
    owner.calls.append(now)


def test_an_owned_timer_calls_back_with_its_owner_and_the_time():
    wheel = TimerWheel()
    owner = Owner()
    t = wheel.timer(_fire, owner)
    t.arm(2.0)
    assert wheel.run(1.9) == 0 and owner.calls == []
    assert wheel.run(2.5) == 1
    assert owner.calls == [2.5] and not t.pending


def test_an_owned_timer_does_not_keep_its_owner_alive():
    wheel = TimerWheel()
    owner = Owner()
    owner.timer = wheel.timer(_fire, owner)      # owner -> timer, as a socket holds its timers
    owner.timer.arm(1.0)
    gc.disable()
    try:
        calls = owner.calls
        del owner                                   # reference counting alone frees it
        assert wheel.run(5.0) == 1                  # the entry surfaces and is consumed
        assert calls == []                          # ... but nothing is called
        assert wheel.next_deadline() is None
    finally:
        gc.enable()


def test_a_timer_without_an_owner_calls_back_with_the_time_only():
    wheel = TimerWheel()
    seen: list[float] = []
    wheel.timer(seen.append).arm(3.0)
    wheel.run(3.0)
    assert seen == [3.0]
