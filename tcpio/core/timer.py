"""One timer heap for the whole host, driven by the caller's clock.

Protocol objects own ``Timer`` handles (one per connection and purpose, never
one per segment).  The asyncio driver asks ``next_deadline()`` after each
batch and keeps exactly one loop timer armed for it; virtual-clock tests call
``run(now)`` directly.

Re-arming is cheap where it matters.  TCP pushes its retransmission timer
later on every ACK (tcp_rearm_rto), so a heap push per re-arm would be a heap
push per ACK.  Instead a timer keeps at most one live heap entry: arming it
later than that entry only records the new deadline, and when the early entry
surfaces it is moved to the real deadline (once per timeout period, not per
ACK).  Arming it earlier pushes a new entry and leaves the old one stale, and
cancelling makes the entry stale; stale entries are dropped when they surface
or when they make up most of the heap.  Each arming takes
a sequence number, and the heap orders by (deadline, sequence), so timers due
at the same moment fire in the order they were armed, moved entries included.

A timer that belongs to an object (a socket's retransmit, delayed-ACK and
keepalive timers) is made with ``timer(callback, owner)``: it calls
``callback(owner, now)`` and holds the owner by a weak reference, as Linux's
``timer_setup`` + ``from_timer`` find the socket from the timer instead of the
timer pinning the socket.  A closure over the socket would make socket ->
timer -> closure -> socket a reference cycle, and every closed socket would
wait for the cycle collector; with the weak reference it is freed when the
last real reference goes, and a timer whose owner is gone does nothing.
"""

from __future__ import annotations

import heapq
import itertools
import weakref
from collections.abc import Callable
from typing import Any


class Timer:
    """A re-armable one-shot timer: ``callback(now)`` runs once at ``when``."""

    __slots__ = ("_queued", "_seq", "_wheel", "callback", "owner", "when")

    def __init__(self, wheel: TimerWheel, callback: Callable[..., None],
                 owner: weakref.ref[Any] | None = None) -> None:
        self._wheel = wheel
        # callback(now), or callback(owner, now) when the timer has an owner
        self.callback = callback
        self.owner = owner
        self.when: float | None = None
        self._seq = 0
        # Deadline of this timer's live heap entry (None: no live entry).
        self._queued: float | None = None

    def arm(self, when: float) -> None:
        """Fire at ``when`` (replacing any earlier arming)."""
        wheel = self._wheel
        self.when = when
        self._seq = next(wheel._seq)
        queued = self._queued
        if queued is None or when < queued:
            if queued is not None:
                wheel._stale += 1
            self._queued = when
            wheel._push(when, self._seq, self)

    def cancel(self) -> None:
        self.when = None
        if self._queued is not None:
            # The entry is garbage now (counted, so compaction can drop it).
            self._queued = None
            self._wheel._stale += 1

    @property
    def pending(self) -> bool:
        return self.when is not None


class TimerWheel:
    """Heap of (when, seq, timer) with lazy moves and deletion (see above)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._stale = 0  # entries superseded by an earlier one of the same timer
        # callbacks whose timers run when due even while ``run``'s ``due``
        # holds the others back (see run)
        self.prompt: set[Callable[..., None]] = set()

    def timer(self, callback: Callable[..., None], owner: object = None) -> Timer:
        """A timer calling ``callback(now)``, or ``callback(owner, now)`` with
        ``owner`` held weakly (see the module docstring)."""
        if owner is None:
            return Timer(self, callback)
        return Timer(self, callback, weakref.ref(owner))

    def _push(self, when: float, seq: int, timer: Timer) -> None:
        heapq.heappush(self._heap, (when, seq, timer))
        # Bound the garbage: when stale entries dominate, rebuild the heap.
        if self._stale > 256 and self._stale * 2 > len(self._heap):
            self._compact()

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[2]._queued == e[0]]
        heapq.heapify(self._heap)
        self._stale = 0

    def _settle_top(self) -> tuple[float, int, Timer] | None:
        """Drop stale entries at the top, move postponed ones to
        their deadline; return the top entry once it is a timer really due then."""
        heap = self._heap
        while heap:
            entry = heap[0]
            when, seq, timer = entry
            if timer._queued != when:
                heapq.heappop(heap)             # cancelled, or superseded
                self._stale = max(0, self._stale - 1)
                continue
            armed = timer.when
            if armed != when or timer._seq != seq:
                # re-armed (later, or again at the same time): move the entry.
                # A live entry means an armed timer: cancel() and run() clear
                # _queued whenever they clear when.
                assert armed is not None
                timer._queued = armed
                heapq.heapreplace(heap, (armed, timer._seq, timer))
                continue
            return entry
        return None

    def next_deadline(self) -> float | None:
        top = self._settle_top()
        return None if top is None else top[0]

    def run(self, now: float, due: float | None = None) -> int:
        """Fire every timer due at or before ``due`` (default ``now``), each
        called with ``now``; return how many fired.  A ``due`` before ``now``
        leaves the timers due since for later (the driver's: input that
        came in after ``due`` has not been read yet, Stack._on_timer),
        except those whose callback is in ``prompt``, which fire when due."""
        fired = 0
        limit = now if due is None else due
        prompt = self.prompt
        # past ``limit`` only for the prompt timers, set aside on the way
        stop = now if prompt and limit < now else limit
        held: list[tuple[float, int, Timer]] = []
        # self._heap, never a local: a callback that arms a timer may compact
        # it into a new list.  The held entries go back even when a callback
        # raises (the host catches and goes on): lost, a timer whose entry is
        # gone keeps _queued set and no later arm() would queue it again.
        try:
            while True:
                top = self._settle_top()
                if top is None or top[0] > stop:
                    break
                if top[0] > limit and top[2].callback not in prompt:
                    held.append(heapq.heappop(self._heap))   # due, but not yet: back after
                    continue
                heapq.heappop(self._heap)
                timer = top[2]
                timer._queued = None
                timer.when = None
                fired += 1
                ref = timer.owner
                if ref is None:
                    timer.callback(now)
                else:
                    owner = ref()
                    if owner is not None:
                        timer.callback(owner, now)
        finally:
            for entry in held:
                heapq.heappush(self._heap, entry)
        return fired
