"""A device read that raises inside the driver's timer callback must not
leave the stack without a timer (Stack._on_timer, issue 11).

_on_timer keeps the deadline it fired for while it reads the devices, so a
kick in between re-arms only when the input moved it.  If the read raises
(a pcap wrapper's full disk, EIO on a TAP being torn down), the loop
reports the exception; the due timers must still run afterwards, and later
input must not find the deadline claimed by a loop timer that no longer
exists (before: nothing ever armed the host's timers again).
Deterministic: the Ring harness of test_stack_timers_wait_for_input on the
virtual clock loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stackutil import run_on
from test_stack_timers_wait_for_input import Ring


def test_timers_still_run_after_a_device_read_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> tuple[Ring, list[Any], float]:
        ring = Ring(monkeypatch, refill=False)
        loop = ring.loop
        errors: list[Any] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx.get("exception")))
        real = ring.dev.poll_rx
        calls = 0

        def poll_rx(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError(5, "EIO once")
            return real(*args)
        ring.dev.poll_rx = poll_rx                  # type: ignore[method-assign]
        due = loop.time() + 0.01
        ring.arm(due)
        await asyncio.sleep(1)
        ring.send(3)            # later input: its kick re-arms for the deadline
        await asyncio.sleep(1)
        ring.close()
        return ring, errors, due

    ring, errors, due = run_on("virtual", main)
    assert [type(e) for e in errors] == [OSError]
    assert [d for d, _ in ring.ran] == [due]
