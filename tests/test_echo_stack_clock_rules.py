"""The stack's clock is the loop's clock, whatever kind of loop it runs on.

``Stack.update_time`` reads ``time.monotonic`` directly when the loop's
``time()`` is asyncio's own (which returns exactly that), to save a Python
frame on every batch and every user call (issue 12's 1-byte echo).  Any other
clock must still be the one read: a loop class with its own ``time()`` (the
tests' virtual clock, uvloop), or a loop whose ``time`` was replaced on the
instance.  The oracle is the loop's own ``time()``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from virtual_loop import VirtualClockLoop

import tcpio


def _stack_now(loop: asyncio.AbstractEventLoop) -> tuple[float, float, float]:
    """(loop.time() before, the host's now after update_time, loop.time() after)."""
    async def main() -> tuple[float, float, float]:
        async with tcpio.Stack(seed=1) as stack:
            before = loop.time()
            now = stack.update_time()
            after = loop.time()
            assert stack.host.now == now
            return before, now, after
    return loop.run_until_complete(main())


def test_on_asyncios_loop_the_stack_reads_the_loops_monotonic_clock() -> None:
    loop = asyncio.new_event_loop()
    try:
        before, now, after = _stack_now(loop)
    finally:
        loop.close()
    assert before <= now <= after
    assert abs(now - time.monotonic()) < 60        # the same clock, not another epoch


def _patched_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.time = lambda: 7777.0          # type: ignore[method-assign]
    return loop


@pytest.mark.parametrize(("make", "clock"), [
    (lambda: VirtualClockLoop(start=5000.0), 5000.0),   # a loop class with its own time()
    (_patched_loop, 7777.0),                            # time replaced on the instance
], ids=["own-class", "patched-instance"])
def test_a_loop_with_another_clock_is_the_clock_read(make: Any, clock: float) -> None:
    loop = make()
    try:
        before, now, after = _stack_now(loop)
    finally:
        loop.close()
    assert before == now == after == clock


def test_the_hosts_time_never_goes_backwards() -> None:
    loop = VirtualClockLoop(start=100.0)

    async def main() -> tuple[float, float]:
        async with tcpio.Stack(seed=1) as stack:
            stack.update_time()
            stack.host.now = 100.5          # ahead of the loop (an early uvloop timer)
            return stack.update_time(), loop.time()
    try:
        now, loop_now = loop.run_until_complete(main())
    finally:
        loop.close()
    assert loop_now == 100.0 and now == 100.5
