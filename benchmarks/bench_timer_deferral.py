"""What one deferral look costs in the timer wheel (issue 11): heap
operations, and CPU time, per ``TimerWheel.run(now, -inf)`` with N ordinary
timers due but held back (the driver's wait for input, Stack._on_timer) and
one prompt (delayed-ACK) timer.

    PYTHONPATH=TREE python benchmarks/bench_timer_deferral.py [--held 1000,10000]

Runs on trees before and after the prompt heap (it registers the prompt
callback the way the tree wants it: ``TimerWheel.prompt`` set, or
``timer(..., prompt=True)``), so two trees compare side by side::

    for t in /work/main /work/wt/timers; do PYTHONPATH=$t python benchmarks/bench_timer_deferral.py; done

Heap operations are counted by wrapping ``tcpio.core.timer``'s ``heapq``
(heappush/heappop/heapreplace/heapify calls; each push or pop sifts through
O(log n) entries): deterministic, machine-independent.  The µs per look are
timed without the counting wrapper, median and range of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
import time
from typing import Any

import tcpio.core.timer as timer_mod
from tcpio.core.timer import TimerWheel


class CountingHeapq:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        real = getattr(heapq, name)

        def counted(*args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            return real(*args)
        return counted


def prompt_timer(wheel: TimerWheel, callback: Any) -> Any:
    registry = getattr(wheel, "prompt", None)
    if isinstance(registry, set):           # before: a set of prompt callbacks
        registry.add(callback)
        return wheel.timer(callback)
    return wheel.timer(callback, prompt=True)  # type: ignore[call-arg]


def setup(held: int) -> tuple[TimerWheel, Any]:
    """``held`` RTO-like timers due at 1.0.. (each re-armed later once, as
    on an ACK), one prompt timer due at 1.5; the looks run at 2.0.."""
    wheel = TimerWheel()
    rtos = [wheel.timer(lambda now: None) for _ in range(held)]
    for k, t in enumerate(rtos):
        t.arm(1.0 + k * 1e-6)
    for k, t in enumerate(rtos):
        t.arm(1.1 + k * 1e-6)
    ack = prompt_timer(wheel, lambda now: None)
    ack.arm(1.5)
    wheel.next_deadline()           # the driver asked: entries settled
    return wheel, ack


def looks(wheel: TimerWheel, ack: Any, n: int) -> None:
    """``n`` looks, the prompt timer due (and re-armed) every 10th."""
    now = 2.0
    for i in range(n):
        if i % 10 == 0:
            ack.arm(now)
        wheel.run(now, float("-inf"))
        now += 1e-4


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--held", default="1000,10000")
    ap.add_argument("--looks", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    print(f"# {' '.join(sys.argv)}  (tcpio from {timer_mod.__file__}; unpinned)")
    print(f"{'held':>7} {'ops/look':>9} {'pops':>7} {'pushes':>7} {'moves':>7}"
          f" {'us/look median (range)':>26}")
    for held in (int(x) for x in args.held.split(",")):
        wheel, ack = setup(held)
        counter = CountingHeapq()
        timer_mod.heapq = counter      # type: ignore[assignment]
        try:
            looks(wheel, ack, args.looks)
        finally:
            timer_mod.heapq = heapq
        c = counter.calls
        per = {k: v / args.looks for k, v in c.items()}
        ops = sum(per.values())
        samples = []
        for _ in range(args.repeat):
            wheel, ack = setup(held)
            t0 = time.perf_counter()
            looks(wheel, ack, args.looks)
            samples.append((time.perf_counter() - t0) / args.looks * 1e6)
        print(f"{held:>7} {ops:>9.1f} {per.get('heappop', 0):>7.1f} {per.get('heappush', 0):>7.1f}"
              f" {per.get('heapreplace', 0):>7.1f}"
              f" {statistics.median(samples):>10.2f} ({min(samples):.2f}-{max(samples):.2f})")


if __name__ == "__main__":
    main()
