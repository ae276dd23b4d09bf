"""Due timers wait for input a device already holds, without holding the loop
(Stack._on_timer, TapDevice.poll_rx; issue 11, 1000 flows over a TAP).

The rule, as Linux's softirq ordering gives it: an ACK that is already
waiting in the device's queue when a loss probe or RTO falls due is read
before that timer runs (otherwise the probe retransmits what was
acknowledged; a FIN probed so draws the peer's TIME-WAIT ACK and our RST).
And, as net_rx_action's budget and time limit give it: no callback reads a
queue that never empties for long; what is left waits for the next loop
iteration, the due timers with it, for at most TIMER_DEFER_MAX.

Deterministic: a real Stack and the real TapDevice read loop on the virtual
clock loop, the TAP's queue a SOCK_SEQPACKET socketpair (one frame per read,
as a TAP gives), each frame delivered costing ``COST`` seconds of virtual
time (the device's clock is the loop's).  The host's timers are one deadline
stated by the test and its ``poll`` recorded, so the order of input and
timers is what the test reads.  Frames: ``J``unk for another MAC (dropped
as not ours, cheap) and one ``M``arker standing for the waiting ACK.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from typing import Any

import pytest
from stackutil import run_on
from test_timer import HeapOps

import tcpio.core.timer as timer_mod
import tcpio.devices.tap as tap_mod
import tcpio.stack as stack_mod
from tcpio.devices.base import new_stats
from tcpio.devices.tap import RxShare, SynShare, TapDevice, new_gso_stats
from tcpio.stack import NET_RX_ROUNDS, NET_RX_USECS, Stack

BUDGET = 8          # frames per device read
COST = 100e-6       # virtual seconds per frame delivered: 0.8 ms a budget
OTHER_MAC = bytes.fromhex("020000000099")


def frame(tag: bytes) -> bytes:
    """An Ethernet frame for another station (the host drops it unread)."""
    return OTHER_MAC + bytes.fromhex("020000000001") + b"\x88\xb5" + tag.ljust(46, b"\0")


def tag_of(f: bytes) -> bytes:
    return f[14:].rstrip(b"\0")


class Ring:
    """A Stack with a TapDevice whose queue is a socketpair, a deadline the
    test sets, and a record of what happened in which loop callback."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, refill: bool, ring_len: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        monkeypatch.setattr(tap_mod, "_clock", loop.time)
        rd, self.wr = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for s in (rd, self.wr):
            s.setblocking(False)
        dev = TapDevice.__new__(TapDevice)
        dev.name, dev.mtu, dev.mac = "ring0", 1500, bytes.fromhex("020000000002")
        dev.fd, dev.syn_fd = rd.detach(), None       # the device closes it (stop)
        dev.budget, dev.vnet_hdr_len, dev._readsize = BUDGET, 0, 2048
        dev.stats = new_stats()
        dev.gso_stats = new_gso_stats()
        dev.rx_more, dev.rx_emptied, dev.time_squeeze, dev.syn_queue_rx = False, 0, 0, 0
        dev.rx_flows_read, dev.rx_ring_len = 0, ring_len
        dev.syn_share, dev._syn_timer, dev._loop = SynShare(), None, None
        dev.rx_share = RxShare()
        self.dev = dev
        self.stack = stack = Stack(seed=1)
        stack._bind_loop()
        stack.add_interface(dev, "10.0.0.2/24")
        self.log: list[tuple[str, Any]] = []       # ("rx", tags) / ("timers", time)
        self.timer_frames: list[int] = []          # frames read in each _on_timer call
        self.sent = 0
        self.refill = refill
        deliver = dev._on_frames

        def on_frames(frames: list[bytes]) -> None:
            self.log.append(("rx", [tag_of(f) for f in frames]))
            loop.advance(COST * len(frames))       # type: ignore[attr-defined]
            deliver(frames)
            if self.refill:
                # the peer sends more for every batch we take (as the kernel
                # does for the ACKs it gets): the queue never empties
                self.send(len(frames))
        dev._on_frames = on_frames

        # the host's timers: deadlines the test sets, each gone once run
        host = stack.host
        self.deadlines: list[float] = []
        host.next_deadline = lambda: min(self.deadlines, default=None)  # type: ignore
        host.deadline_bound = host.next_deadline    # type: ignore  # (exact here)

        def poll(now: float, due: float | None = None) -> None:
            limit = now if due is None else due
            ran = [d for d in self.deadlines if d <= limit]
            if ran:
                self.log.append(("timers", now))
                self.ran.extend((d, now) for d in ran)
                self.deadlines = [d for d in self.deadlines if d > limit]
        host.poll = poll                         # type: ignore[method-assign]
        self.ran: list[tuple[float, float]] = []   # (deadline, when it ran)

        on_timer = stack._on_timer

        def timed_on_timer() -> None:
            before = dev.stats["rx_packets"]
            on_timer()
            self.timer_frames.append(dev.stats["rx_packets"] - before)
        stack._on_timer = timed_on_timer         # type: ignore[method-assign]

    def send(self, n: int, tag: bytes | None = None) -> None:
        for _ in range(n):
            self.wr.send(frame(tag if tag is not None else b"J%d" % self.sent))
            self.sent += 1

    def arm(self, due: float) -> None:
        self.deadlines.append(due)
        self.stack.kick()           # _rearm: the loop timer for the deadline

    def order(self) -> list[str]:
        return ["M" if kind == "rx" and b"M" in what else kind
                for kind, what in self.log if kind == "timers" or b"M" in what]

    def timers_at(self) -> list[float]:
        return [what for kind, what in self.log if kind == "timers"]

    def close(self) -> None:
        self.stack.close()
        self.wr.close()


async def ticks_while(cond: Any, loop: asyncio.AbstractEventLoop) -> list[float]:
    """The loop's time at each iteration while ``cond()``: what another
    callback (an application's) sees of the loop."""
    seen = [loop.time()]
    for _ in range(10_000):
        if not cond():
            break
        await asyncio.sleep(0)
        seen.append(loop.time())
    return seen


def longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


# Frames one timer callback reads at most: NET_RX_ROUNDS budgets, fewer when
# NET_RX_USECS passes first (checked after each budget).
TIMER_READ_MAX = BUDGET * min(NET_RX_ROUNDS, int(NET_RX_USECS * 1e-6 / (BUDGET * COST)) + 1)


def test_an_ack_waiting_behind_a_backlog_is_read_before_the_due_timer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Twelve budgets wait, the marker (the ACK) last, when the timer falls
    due: the marker is read before the timers run, yet no timer callback
    reads more than its limits and other callbacks run in between (before:
    one timer callback read the whole backlog, up to 64 budgets)."""
    async def main() -> tuple[Ring, list[float]]:
        ring = Ring(monkeypatch, refill=False)
        ring.send(12 * BUDGET - 1)
        ring.send(1, b"M")
        ring.arm(ring.loop.time())
        ticks = await ticks_while(lambda: not ring.timers_at(), ring.loop)
        ring.close()
        return ring, ticks

    ring, ticks = run_on("virtual", main)
    assert ring.order() == ["M", "timers"]
    assert len(ring.timers_at()) == 1
    assert max(ring.timer_frames) <= TIMER_READ_MAX
    assert ring.stack.softnet_stat["timers_deferred"] >= 1
    assert ring.stack.softnet_stat["timers_forced"] == 0
    # the longest any other callback waited: a reader budget and one timer read
    assert longest_gap(ticks) <= (BUDGET + TIMER_READ_MAX) * COST + 1e-9
    assert ring.dev.time_squeeze >= 1


def test_under_input_that_never_stops_the_timers_run_once_a_ring_was_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The peer answers every batch with as many frames again: the queue is
    never seen empty.  It holds at most ``rx_ring_len`` frames (the TAP's
    txqueuelen), first in first out, so once that many have been read since
    the timers fell due, all that waited then has been read: the timers run
    (not forced by the cap), and no callback held the loop for longer than
    its limits meanwhile."""
    ring_len = 10 * BUDGET

    async def main() -> tuple[Ring, list[float]]:
        ring = Ring(monkeypatch, refill=True, ring_len=ring_len)
        ring.send(6 * BUDGET)
        ring.arm(ring.loop.time())
        ticks = await ticks_while(lambda: not ring.timers_at(), ring.loop)
        ring.close()
        return ring, ticks

    ring, ticks = run_on("virtual", main)
    assert len(ring.timers_at()) == 1
    stat = ring.stack.softnet_stat
    assert stat["timers_forced"] == 0 and stat["timers_deferred"] >= 1
    # read before the timers: what the first look left, and a ring's length since
    first = ring.timer_frames[0]
    read_first = next(i for i, (kind, _) in enumerate(ring.log) if kind == "timers")
    frames_before = sum(len(what) for kind, what in ring.log[:read_first] if kind == "rx")
    assert ring_len + first <= frames_before <= ring_len + first + BUDGET + TIMER_READ_MAX
    assert max(ring.timer_frames) <= TIMER_READ_MAX
    assert longest_gap(ticks) <= (BUDGET + TIMER_READ_MAX) * COST + 1e-9


def test_under_input_that_never_stops_the_timers_run_after_the_cap(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The same, the ring's length unknown (0): the timers wait
    TIMER_DEFER_MAX (here 50 ms), then run with input still waiting
    (counted as forced)."""
    monkeypatch.setattr(stack_mod, "TIMER_DEFER_MAX", 0.05)

    async def main() -> tuple[Ring, float, list[float]]:
        ring = Ring(monkeypatch, refill=True)
        ring.send(6 * BUDGET)
        due = ring.loop.time()
        ring.arm(due)
        ticks = await ticks_while(lambda: not ring.timers_at(), ring.loop)
        ring.close()
        return ring, due, ticks

    ring, due, ticks = run_on("virtual", main)
    (ran,) = ring.timers_at()
    # the cap counts from the first look that found input left (one timer
    # read after the deadline); the timers run at the first look past it
    assert 0.05 <= ran - due <= 0.05 + 2 * longest_gap(ticks)
    assert ring.stack.softnet_stat["timers_forced"] == 1
    assert ring.stack.softnet_stat["timers_waited_max"] >= 0.05
    assert max(ring.timer_frames) <= TIMER_READ_MAX
    assert longest_gap(ticks) <= (BUDGET + TIMER_READ_MAX) * COST + 1e-9


def test_a_queue_the_reader_saw_empty_since_lets_the_timers_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What came in after the queue was seen empty (here: by the device's
    own reader callback) arrived after the timers fell due: they do not
    wait for it."""
    async def main() -> Ring:
        ring = Ring(monkeypatch, refill=False)
        ring.send(6 * BUDGET)
        ring.arm(ring.loop.time())
        stat = ring.stack.softnet_stat
        # the timer: reads its limit, puts the timers off
        await ticks_while(lambda: not stat["timers_deferred"], ring.loop)
        assert not ring.timers_at() and stat["timers_deferred"] == 1
        emptied = ring.dev.rx_emptied
        while ring.dev.rx_emptied == emptied:
            ring.dev._on_flows()        # the reader, to EAGAIN
        ring.send(6 * BUDGET)           # new input, after it was seen empty
        ticks = await ticks_while(lambda: not ring.timers_at(), ring.loop)
        assert len(ticks) <= 2          # the next look runs them
        ring.close()
        return ring

    ring = run_on("virtual", main)
    assert ring.stack.softnet_stat["timers_forced"] == 0
    assert ring.sent - ring.dev.stats["rx_packets"] > 0      # not all read first


def test_input_that_moves_the_deadline_ends_the_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The waiting input acknowledged what was due (the deadline moved on):
    no timers run at the old deadline, and the wait is over, so the next
    one that falls due is not counted from the old one's start."""
    async def main() -> Ring:
        ring = Ring(monkeypatch, refill=False)
        ring.send(6 * BUDGET - 1)
        ring.send(1, b"M")
        due = ring.loop.time()
        ring.arm(due)
        stack = ring.stack
        deliver = ring.dev._on_frames

        def acked(frames: list[bytes]) -> None:
            deliver(frames)
            if any(tag_of(f) == b"M" for f in frames):
                ring.deadlines = [due + 1.0]    # the ACK cancelled the RTO: a later deadline
                stack.kick()
        ring.dev._on_frames = acked
        await ticks_while(lambda: ring.sent > ring.dev.stats["rx_packets"], ring.loop)
        assert stack._squeeze_since is None and stack._rx_marks == {}
        assert stack._timer_when == due + 1.0
        ring.close()
        return ring

    ring = run_on("virtual", main)
    assert ring.timers_at() == []


def test_with_nothing_waiting_the_timers_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three frames waiting: read (by the reader or the timer's look, both in
    the loop iteration the timer falls due in), then the timers, at once."""
    async def main() -> tuple[Ring, float]:
        ring = Ring(monkeypatch, refill=False)
        ring.send(3)
        due = ring.loop.time()
        ring.arm(due)
        await ticks_while(lambda: not ring.timers_at(), ring.loop)
        ring.close()
        return ring, due

    ring, due = run_on("virtual", main)
    assert ring.timers_at() == [pytest.approx(due + 3 * COST)]
    assert len(ring.timer_frames) == 1
    assert ring.stack.softnet_stat["timers_deferred"] == 0
    assert ring.dev.time_squeeze == 0


def test_a_timer_due_while_others_wait_waits_for_the_input_of_its_own_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A queue that never empties, a timer A due first; while A waits, the
    marker (an ACK) comes in and a timer B falls due right after it.  A runs
    once what waited at its first look is read; B, though due by then, is
    not run with A: it waits until the marker, which came in before B fell
    due, has been read (before: every timer due by the time A ran, ran)."""
    ring_len = 10 * BUDGET

    async def main() -> tuple[Ring, float, list[float]]:
        ring = Ring(monkeypatch, refill=True, ring_len=ring_len)
        loop = ring.loop
        ring.send(6 * BUDGET)
        t0 = loop.time()
        ring.arm(t0)
        refill = ring.send
        b_due: list[float] = []

        def send(n: int, tag: bytes | None = None) -> None:
            refill(n, tag)
            if not b_due and loop.time() >= t0 + 0.007:
                refill(1, b"M")
                b_due.append(loop.time())
                ring.arm(b_due[0])          # B falls due right after M came in
        ring.send = send                    # type: ignore[method-assign]
        await ticks_while(lambda: len(ring.ran) < 2, loop)
        ring.close()
        return ring, t0, b_due

    ring, t0, (b_due,) = run_on("virtual", main)
    (a, a_ran), (b, _) = sorted(ring.ran)
    assert (a, b) == (t0, b_due)
    m_read = next(i for i, (kind, what) in enumerate(ring.log) if kind == "rx" and b"M" in what)
    timer_runs = [i for i, (kind, _) in enumerate(ring.log) if kind == "timers"]
    assert len(timer_runs) == 2
    assert timer_runs[0] < m_read < timer_runs[1]       # A before the marker, B after
    assert a_ran > b_due                                # B was due when A ran
    assert ring.stack.softnet_stat["timers_forced"] == 0


def test_a_delayed_ack_due_while_the_timers_wait_runs_when_due(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """TCP's delayed ACK is a prompt timer (``timer(..., prompt=True)``,
    test_a_sockets_delayed_ack_timer_alone_is_prompt): an ACK still
    in the queue does not make it wrong, and holding it for the whole wait
    (a second and more at 1000 flows) makes the peer retransmit.  Here with
    the host's real timer wheel: a retransmission-like timer due first
    waits for the input, the prompt one due after it runs on the next look
    after its deadline."""
    async def main() -> tuple[list[tuple[str, float]], float, Stack, float]:
        ring = Ring(monkeypatch, refill=True, ring_len=10 * BUDGET)
        loop, stack = ring.loop, ring.stack
        host = stack.host
        del host.poll, host.next_deadline, host.deadline_bound     # the real ones again
        fired: list[tuple[str, float]] = []
        rto = host.timers.timer(lambda now: fired.append(("rto", now)))
        ack = host.timers.timer(lambda now: fired.append(("delack", now)), prompt=True)
        ring.send(6 * BUDGET)
        t0 = loop.time()
        rto.arm(t0)
        ack.arm(t0 + 0.003)
        stack.kick()
        ticks = await ticks_while(lambda: len(fired) < 2, loop)
        ring.close()
        return fired, t0, stack, longest_gap(ticks)

    fired, t0, stack, gap = run_on("virtual", main)
    assert [name for name, _ in fired] == ["delack", "rto"]
    assert fired[0][1] <= t0 + 0.003 + gap
    assert stack.softnet_stat["timers_deferred"] >= 1
    assert stack.softnet_stat["timers_forced"] == 0


def test_a_look_while_the_timers_wait_touches_no_held_timer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each loop iteration while the timers wait looks at the prompt timers
    alone (Host.poll(now, -inf)): with 10 000 timers due and held (1000
    flows' worth of RTOs and more), the looks together pop the one prompt
    timer's entry and touch no other (before: every look popped and pushed
    back every held due entry).  The held ones all fire once the input that
    waited is read, none forced."""
    async def main() -> tuple[Stack, list[int], int, list[float], list[Any]]:
        ring = Ring(monkeypatch, refill=True, ring_len=10 * BUDGET)
        loop, stack = ring.loop, ring.stack
        host = stack.host
        del host.poll, host.next_deadline, host.deadline_bound     # the real ones again
        t0 = loop.time()
        held = [host.timers.timer(lambda now: None) for _ in range(10_000)]
        for k, t in enumerate(held):
            t.arm(t0 + k * 1e-8)
        fired: list[float] = []
        host.timers.timer(fired.append, prompt=True).arm(t0 + 0.003)
        heap_ops = HeapOps()
        monkeypatch.setattr(timer_mod.impl, "heapq", heap_ops)  # (the wheel's module)
        looks: list[int] = []           # heap operations of each look
        poll = host.poll

        def counted_poll(now: float, due: float | None = None) -> None:
            heap_ops.take()
            poll(now, due)
            if due == float("-inf"):
                looks.append(sum(heap_ops.take().values()))
        host.poll = counted_poll                # type: ignore[method-assign]
        ring.send(6 * BUDGET)
        stack.kick()
        await ticks_while(lambda: held[-1].pending, loop)
        ring.close()
        return stack, looks, stack.softnet_stat["timers_forced"], fired, held

    stack, looks, forced, fired, held = run_on("virtual", main)
    assert len(looks) >= 3 and stack.softnet_stat["timers_deferred"] == len(looks)
    assert len(fired) == 1 and sum(looks) == 1           # the prompt timer's pop
    assert not any(t.pending for t in held) and forced == 0
