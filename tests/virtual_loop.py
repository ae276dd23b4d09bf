"""An asyncio event loop whose clock is virtual: deterministic tests of the driver.

``VirtualClockLoop`` is a real ``SelectorEventLoop`` (tasks, futures, call_at,
asyncio.sleep all work) except that ``time()`` is a counter that jumps forward
whenever the loop would otherwise sleep: the selector is polled with timeout 0
and the clock advances by the timeout asyncio asked for.  A test that sleeps
ten virtual seconds finishes at once, and with seeded stacks and wires every
run schedules exactly the same events: same frames, same order, same times.

It is meant for in-memory devices (MemoryWire).  Real file descriptors still
work (they are polled) but their timing is then real, not virtual.

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        runner.run(main())
"""

from __future__ import annotations

import asyncio
from typing import Any


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 1000.0) -> None:
        super().__init__()
        self._virtual_now = start
        selector = self._selector
        real_select = selector.select

        def select(timeout: float | None = None) -> list[Any]:
            events = real_select(0)
            if events:
                return events
            if timeout is None:
                # Nothing scheduled at all: only an fd (or another thread) can
                # wake us, so wait for it for real.
                return real_select(None)
            if timeout > 0:
                self._virtual_now += timeout
            return events

        selector.select = select  # type: ignore[method-assign]

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward without running anything (rarely needed)."""
        self._virtual_now += seconds
