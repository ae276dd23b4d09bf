"""The driver's one loop timer follows the host's deadline lazily (Stack._rearm).

A deadline that moves later leaves the loop timer where it is: it fires
early, finds the deadline gone later, and only then is armed for it.  A
deadline that moves earlier re-arms at once.  Linux does the same with its
socket timers: ``inet_csk_clear_xmit_timer`` (without INET_CSK_CLEAR_TIMERS)
leaves the delayed-ACK and retransmission timers to fire and find nothing
pending.  On a request/response connection the deadline moves later on
every segment (the delayed-ACK and retransmission timers take turns), and
re-arming exactly cost two ``call_at`` and two cancels per round trip
(issue 12's 1-byte echo latency).

Deterministic: the Ring harness of test_stack_timers_wait_for_input (the
host's deadlines stated by the test, its ``poll`` recorded) and two stacks
on a MemoryWire, both on the virtual clock loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stackutil import run_on, two_stacks, until
from test_stack_timers_wait_for_input import Ring

import tcpio
from tcpio.stack import Stack


def count_stack_timers(loop: asyncio.AbstractEventLoop) -> list[float]:
    """The ``when`` of every call_at a Stack makes on ``loop`` from now on."""
    armed: list[float] = []
    real = loop.call_at

    def call_at(when: float, callback: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(getattr(callback, "__self__", None), Stack):
            armed.append(when)
        return real(when, callback, *args, **kw)
    loop.call_at = call_at          # type: ignore[method-assign]
    return armed


def moved_deadline(monkeypatch: pytest.MonkeyPatch, first: float,
                   then: list[list[float]]) -> tuple[Ring, float, list[float], Any]:
    """Deadline ``t0 + first``, then each of ``then`` (offsets from t0) in
    turn, each followed by a kick; 0.2 s of virtual time.  Returns the Ring,
    t0, the loop timers the stack armed and its timer left at the end."""
    async def main() -> tuple[Ring, float, list[float], Any]:
        ring = Ring(monkeypatch, refill=False)
        armed = count_stack_timers(ring.loop)
        t0 = ring.loop.time()
        ring.arm(t0 + first)
        for deadlines in then:
            ring.deadlines = [t0 + d for d in deadlines]
            ring.stack.kick()
        await asyncio.sleep(0.2)
        left = ring.stack._timer
        ring.close()
        return ring, t0, armed, left

    return run_on("virtual", main)


def test_a_deadline_moved_later_runs_the_timers_then_and_not_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Armed for t0 + 10 ms, moved to t0 + 50 ms, then t0 + 90 ms: one loop
    timer until it fires at t0 + 10 ms, the timers run once, at t0 + 90 ms."""
    ring, t0, armed, _ = moved_deadline(monkeypatch, 0.010, [[0.050], [0.090]])
    assert ring.ran == [(pytest.approx(t0 + 0.090), pytest.approx(t0 + 0.090))]
    # the first arming, and at t0 + 10 ms the one for the deadline then
    assert armed == [pytest.approx(t0 + 0.010), pytest.approx(t0 + 0.090)]
    assert ring.timer_frames == [0]     # one _on_timer: the real deadline's


def test_a_deadline_moved_earlier_rearms_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ring, t0, armed, _ = moved_deadline(monkeypatch, 0.050, [[0.020]])
    assert ring.ran == [(pytest.approx(t0 + 0.020), pytest.approx(t0 + 0.020))]
    assert armed == [pytest.approx(t0 + 0.050), pytest.approx(t0 + 0.020)]


def test_a_deadline_gone_runs_nothing_and_leaves_no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    ring, _, armed, left = moved_deadline(monkeypatch, 0.010, [[]])
    assert ring.ran == []
    assert len(armed) == 1 and left is None
    assert ring.timer_frames == []      # the early firing ran no timers' callback


async def echo_rounds(a: Stack, b: Stack, rounds: int
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream echo server on ``b``, a client on ``a``, ``rounds`` 1-byte round trips."""
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)

    await b.start_server(echo, "10.0.0.2", 7)
    reader, writer = await a.open_connection("10.0.0.2", 7)
    await round_trips(reader, writer, rounds)
    return reader, writer


async def round_trips(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      rounds: int) -> None:
    for _ in range(rounds):
        writer.write(b"x")
        assert await reader.read(1) == b"x"


def test_request_response_does_not_rearm_the_loop_timer_per_segment() -> None:
    """A 1-byte echo, 200 round trips at one virtual instant: the deadline
    alternates between the delayed ACK (+40 ms) and the RTO (+200 ms) of each
    side; exact re-arming made ~2 call_at per round trip on each stack."""
    async def main() -> list[float]:
        a, b = await two_stacks(tcpio.MemoryWire(seed=1))
        try:
            reader, writer = await echo_rounds(a, b, 5)   # ARP, handshake, first segments
            armed = count_stack_timers(asyncio.get_running_loop())
            await round_trips(reader, writer, 200)
            return armed
        finally:
            a.close()
            b.close()

    armed = run_on("virtual", main)
    assert len(armed) <= 2, armed


def test_a_retransmission_still_goes_out_at_its_deadline() -> None:
    """After an echo exchange the client's loop timer is left early (the
    delayed ACK's, cancelled by the ACK its next segment carries); the wire
    then loses everything: the RTO still fires at the host's deadline to the
    microsecond, not at the stale loop timer and not later."""
    async def main() -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        wire = tcpio.MemoryWire(seed=1)
        a, b = await two_stacks(wire)
        try:
            _, writer = await echo_rounds(a, b, 20)
            lost: list[float] = []
            wire.b._deliver = lambda frames: lost.extend(loop.time() for _ in frames)  # type: ignore[method-assign]
            writer.write(b"y")
            deadline = a.host.next_deadline()
            assert deadline is not None
            assert a._timer_when is not None and a._timer_when < deadline   # left early
            await until(lambda: len(lost) >= 2, timeout=5)
            return deadline, lost
        finally:
            a.close()
            b.close()

    deadline, lost = run_on("virtual", main)
    first, retransmitted = lost[:2]
    assert retransmitted == pytest.approx(deadline, abs=1e-6)
    assert retransmitted > first
