"""One timer heap for the whole host, driven by the caller's clock.

Protocol objects own ``Timer`` handles (one per connection and purpose, never
one per segment).  Arming a timer pushes a heap entry; re-arming or cancelling
just bumps the handle's generation so stale heap entries are skipped when they
surface (lazy deletion, O(log n) per arm, no search).  The asyncio driver asks
``next_deadline()`` after each batch and keeps exactly one loop timer armed for
it; virtual-clock tests call ``run(now)`` directly.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

_INF = float("inf")


class Timer:
    """A re-armable one-shot timer: ``callback(now)`` runs once at ``when``."""

    __slots__ = ("_gen", "_wheel", "callback", "when")

    def __init__(self, wheel: TimerWheel, callback: Callable[[float], None]) -> None:
        self._wheel = wheel
        self.callback = callback
        self.when: float | None = None
        self._gen = 0

    def arm(self, when: float) -> None:
        """Fire at ``when`` (replacing any earlier arming)."""
        if self.when is not None:
            self._wheel._stale += 1
        self._gen += 1
        self.when = when
        self._wheel._push(when, self)

    def cancel(self) -> None:
        if self.when is not None:
            self._wheel._stale += 1
            self._gen += 1
            self.when = None

    @property
    def pending(self) -> bool:
        return self.when is not None


class TimerWheel:
    """Heap of (when, seq, generation, timer) with lazy deletion."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Timer]] = []
        self._seq = itertools.count()
        self._stale = 0  # heap entries whose timer was re-armed or cancelled

    def timer(self, callback: Callable[[float], None]) -> Timer:
        return Timer(self, callback)

    def _push(self, when: float, timer: Timer) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), timer._gen, timer))
        # Bound the garbage: when stale entries dominate, rebuild the heap.
        if self._stale > 256 and self._stale * 2 > len(self._heap):
            self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[3]._gen == e[2] and e[3].when is not None]
        heapq.heapify(self._heap)
        self._stale = 0

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            when, _, gen, timer = heap[0]
            if timer._gen == gen and timer.when is not None:
                return when
            heapq.heappop(heap)
            self._stale = max(0, self._stale - 1)
        return None

    def run(self, now: float) -> int:
        """Fire every timer due at or before ``now``; return how many fired."""
        heap = self._heap
        fired = 0
        while heap:
            when, _, gen, timer = heap[0]
            if timer._gen != gen or timer.when is None:
                heapq.heappop(heap)
                self._stale = max(0, self._stale - 1)
                continue
            if when > now:
                break
            heapq.heappop(heap)
            timer.when = None
            fired += 1
            timer.callback(now)
        return fired
