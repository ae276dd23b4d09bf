# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, annotation_typing=False
# mypy: always-false=compiled
"""Two timer heaps for the whole host, driven by the caller's clock: one
source, compiled (timer_fast.pxd: Timer and TimerWheel are C types, their
methods C calls) and interpreted (``_fast.load_pure("timer_fast")``);
tcpio.core.timer hands out whichever ``_fast.load`` picks.  Every connection
makes and arms timers on its way in and out (the FIN's delayed ACK, the
retransmit timer) and the driver asks the wheel after each batch: as Python
methods these were about 15 calls per accepted connection (issue 11), where
Linux arms a timer_list embedded in the socket.

Protocol objects own ``Timer`` handles (one per connection and purpose, never
one per segment).  The asyncio driver asks ``next_deadline()`` after each
batch and keeps exactly one loop timer armed for it; virtual-clock tests call
``run(now)`` directly.

Re-arming is cheap where it matters.  TCP pushes its retransmission timer
later on every ACK (tcp_rearm_rto), so a heap push per re-arm would be a heap
push per ACK.  Instead a timer keeps at most one live heap entry: arming it
later than that entry only records the new deadline, and when the early entry
surfaces it is moved to the real deadline (once per timeout period, not per
ACK).  Arming it earlier pushes a new entry and leaves the old one stale.
Cancelling parks the entry: a re-arm at or after it takes it back without a
push (a request/response flow cancels its RTO and arms its delayed ACK on
every request, and the reverse on every answer: issue 12), and until then it
counts as stale.  Stale and parked entries are dropped when they surface or
when they make up most of the heaps (compacted in place: a list a caller
holds stays the heap).  A timer knows its live entry by deadline and sequence
(a cancel and an arming at the same deadline leave two entries that differ
only in sequence), so the count of stale entries is exact.  Each arming takes a sequence number, and the heaps
order by (deadline, sequence), so timers due at the same moment fire in the
order they were armed, moved entries included.  Per timer: arm later and
cancel O(1), arm earlier and fire O(log n), stale entries amortised O(log n)
each, once.

Prompt timers (``timer(..., prompt=True)``: TCP's delayed ACK) live in a heap
of their own.  ``run(now, due)`` with ``due`` before ``now`` is the driver
holding the others back while it reads input that came in before them
(Stack._on_timer); the prompt ones still fire when due.  Such a run looks at
the prompt heap alone (O(log n) per prompt timer fired, nothing for the ones
held back, which stay where they are), and an ordinary run merges the two
heaps' tops by (deadline, sequence): one order for all timers, as with one
heap.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:       # Cython ships no type information: check against the shim
    from tcpio._fast import _cython_shim as cython
else:
    try:
        import cython
    except ImportError:     # Cython is a build dependency only: run without it
        from tcpio._fast import _cython_shim as cython

_Entry = tuple[float, int, "Timer"]


class Timer:
    """A re-armable one-shot timer: ``callback(now)`` runs once at ``when``."""

    __slots__ = ("_qseq", "_queued", "_seq", "_wheel", "callback", "owner", "when")

    # Fires when due even while ``run``'s ``due`` holds the others back, its
    # entries in the wheel's prompt heap: a class attribute (PromptTimer), so
    # the choice costs no memory per timer and cannot change once made.
    prompt = False

    def __init__(self, wheel: TimerWheel, callback: Callable[..., None],
                 owner: weakref.ref[Any] | None = None) -> None:
        self._wheel = wheel
        # callback(now), or callback(owner, now) when the timer has an owner
        self.callback = callback
        self.owner = owner
        self.when: float | None = None
        # Deadline and sequence of this timer's live heap entry (_queued
        # None: no live entry).  Both: after a cancel, an arming at the same
        # deadline pushes an entry that only its sequence tells from the stale one.
        # (_seq, the arming's sequence, and _qseq are set by the first arm:
        # nothing reads them before, and a timer made per connection is
        # made on the accept path, issue 11.)
        self._queued: float | None = None

    def arm(self, when: float) -> None:
        """Fire at ``when`` (replacing any earlier arming)."""
        queued = self._queued
        if queued is not None and when >= queued:
            # The common re-arm: later than the live entry (tcp_rearm_rto on
            # an ACK), or after a cancel at or after the parked entry (the
            # next request's delayed ACK): the entry stays, moved when it
            # surfaces (_settle_top).
            wheel = self._wheel
            if self.when is None:
                wheel._stale -= 1       # the parked entry is this arming's again
            self.when = when
            self._seq = next(wheel._seq)
            return
        wheel = self._wheel
        if queued is not None and self.when is not None:
            wheel._stale += 1           # armed earlier: the entry left behind is stale now
        self.when = self._queued = when
        self._seq = self._qseq = seq = next(wheel._seq)
        heapq.heappush(wheel._prompt_heap if self.prompt else wheel._heap, (when, seq, self))
        # Bound the garbage: when stale entries dominate, rebuild the heaps.
        stale = wheel._stale
        if stale > 256 and stale * 2 > len(wheel._heap) + len(wheel._prompt_heap):
            wheel._compact()

    def cancel(self) -> None:
        # The entry stays, parked (Linux's inet_csk_clear_xmit_timer leaves
        # the timer in the wheel the same way): a re-arm at or after it,
        # the usual (the RTO after the ACK that cancelled it, the delayed
        # ACK of the next request), takes it back with no heap push.  It
        # counts as stale until then, so compaction drops it if nobody does;
        # a parked entry that surfaces is popped (_settle_top).
        if self.when is not None:
            self.when = None
            if self._queued is not None:
                self._wheel._stale += 1

    @property
    def pending(self) -> bool:
        return self.when is not None


class PromptTimer(Timer):
    """A timer that fires when due even while the others wait (TimerWheel.run)."""

    __slots__ = ()
    prompt = True


class TimerWheel:
    """Two heaps of (when, seq, timer), ordinary and prompt, with lazy moves
    and deletion (see above)."""

    def __init__(self) -> None:
        # Never replaced (compaction works in place), so a run holding one
        # cannot push into or pop from a list no longer the heap.
        self._heap: list[_Entry] = []
        self._prompt_heap: list[_Entry] = []
        self._seq = itertools.count()
        self._stale = 0  # entries superseded or cancelled, in either heap

    def timer(self, callback: Callable[..., None], owner: object = None, *,
              prompt: bool = False) -> Timer:
        """A timer calling ``callback(now)``, or ``callback(owner, now)`` with
        ``owner`` held weakly (see the module docstring); ``prompt``: one
        that fires when due even while the others wait (see ``run``)."""
        cls = PromptTimer if prompt else Timer
        return cls(self, callback, None if owner is None else weakref.ref(owner))

    # (compiled: ``timer`` a Timer, its C fields read directly; _settle_top's
    # in timer_fast.pxd)
    @cython.locals(timer=Timer)
    def _compact(self) -> None:
        """Drop every stale entry and every parked one (their timers then
        have none), in place (see __init__)."""
        for heap in (self._heap, self._prompt_heap):
            keep = []
            for e in heap:
                timer = e[2]
                if timer._queued == e[0] and timer._qseq == e[1]:
                    if timer.when is None:
                        timer._queued = None        # parked: gone
                    else:
                        keep.append(e)
            heap[:] = keep
            heapq.heapify(heap)
        self._stale = 0

    def _settle_top(self, heap: list[_Entry]) -> _Entry | None:
        """Drop stale entries at the top of ``heap``, move postponed ones to
        their deadline; return the top entry once it is a timer really due then."""
        while heap:
            entry = heap[0]
            when, seq, timer = entry
            if timer._queued != when or timer._qseq != seq:
                heapq.heappop(heap)             # superseded
                self._stale -= 1
                continue
            armed = timer.when
            if armed is None:
                heapq.heappop(heap)             # parked (cancelled), not re-armed since
                timer._queued = None
                self._stale -= 1
                continue
            if armed != when or timer._seq != seq:
                # re-armed (later, or again at the same time): move the entry
                timer._queued = armed
                timer._qseq = timer._seq
                heapq.heapreplace(heap, (armed, timer._seq, timer))
                continue
            return entry
        return None

    def deadline_bound(self) -> float | None:
        """A moment no later than ``next_deadline()`` (None: no timer
        armed), in O(1) and changing nothing: the earlier of the two heaps'
        top entries, settled or not.  An entry's deadline is never after its
        timer's, and a stale or postponed one is early, so a driver that
        arms its loop timer for this may wake early, never late; it then
        asks ``next_deadline()``, which settles the tops.  The asyncio
        driver asks after every batch and every user call (Stack._rearm):
        on a request/response connection each round trip cancels the
        retransmission timer and arms the delayed ACK, then the reverse,
        and settling the tops each time popped the entries those cancels
        left, about a tenth of an echo's Python work (issue 12)."""
        heap, pheap = self._heap, self._prompt_heap
        if heap:
            if pheap and pheap[0][0] < heap[0][0]:
                return pheap[0][0]
            return heap[0][0]
        return pheap[0][0] if pheap else None

    def next_deadline(self) -> float | None:
        top = self._settle_top(self._heap)
        ptop = self._settle_top(self._prompt_heap)
        if top is None:
            return None if ptop is None else ptop[0]
        return top[0] if ptop is None or top[0] <= ptop[0] else ptop[0]

    @cython.locals(timer=Timer)
    def run(self, now: float, due: float | None = None) -> int:
        """Fire every timer due at or before ``due`` (default ``now``), each
        called with ``now``, in (deadline, arming) order; return how many
        fired.  A ``due`` before ``now`` leaves the timers due since for
        later (the driver's: input that came in after ``due`` has not been
        read yet, Stack._on_timer), except the prompt ones, which fire when
        due; the ordinary heap is not even looked at then unless its top
        entry (at or before its timer's deadline) is due by ``due``."""
        fired = 0
        limit = now if due is None else due
        # the prompt timers run up to now even when the others stop earlier
        plimit = max(limit, now)
        heap = self._heap
        pheap = self._prompt_heap
        while True:
            # An entry's deadline is never after its timer's: a top past the
            # limit means nothing in that heap is due.
            top = self._settle_top(heap) if heap and heap[0][0] <= limit else None
            if top is not None and top[0] > limit:
                top = None
            ptop = self._settle_top(pheap) if pheap and pheap[0][0] <= plimit else None
            if ptop is not None and ptop[0] <= plimit and (
                    top is None or ptop[0] < top[0] or (ptop[0] == top[0] and ptop[1] < top[1])):
                top, from_heap = ptop, pheap
            elif top is not None:
                from_heap = heap
            else:
                break
            heapq.heappop(from_heap)
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
        return fired


class NoTimer:
    """A timer not made yet: ``NO_TIMER``, the one stand-in, never pending,
    which cancel() leaves so and which refuses to be armed (loudly).

    A socket's retransmit and delayed-ACK timers (TcpSock.rtx_timer and
    delack_timer) are made when first armed (``TcpSock.rtx_timer_made()``,
    ``delack_timer_made()``; TCP's fast paths test for ``NO_TIMER``
    themselves): an idle accepted connection never arms either, an idle
    client only its retransmit timer (for the SYN), and each timer made,
    with the socket's weak reference an owned timer holds, was one more
    object per connection for every full collection of the cycle
    collector to scan (issue 11)."""

    __slots__ = ()
    when = None
    pending = False
    prompt = False

    def cancel(self) -> None:
        pass

    def arm(self, when: float) -> None:
        raise AssertionError("a timer armed before it was made "
                             "(TcpSock.rtx_timer_made / delack_timer_made)")

    def __repr__(self) -> str:
        return "NO_TIMER"


NO_TIMER = NoTimer()
