"""The host's timers: two heaps driven by the caller's clock (the design:
tcpio/_fast/timer_fast.py's docstring).  ``Timer``, ``PromptTimer``,
``TimerWheel`` and ``NO_TIMER`` are the compiled module's when it is built,
else the same source's run interpreted (``_fast.load``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio import _fast

if TYPE_CHECKING:       # mypy reads the one source
    from tcpio._fast import timer_fast as impl
else:
    impl = _fast.load("timer_fast")

Timer = impl.Timer
PromptTimer = impl.PromptTimer
TimerWheel = impl.TimerWheel
NoTimer = impl.NoTimer
NO_TIMER = impl.NO_TIMER

__all__ = ["NO_TIMER", "NoTimer", "PromptTimer", "Timer", "TimerWheel", "impl"]
