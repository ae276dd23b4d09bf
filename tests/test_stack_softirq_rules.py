"""Input a device left waiting is read on the senders' path (Stack._softirq;
issue 11: 1000 handlers' first sends held the loop while the kernel peers'
first flights waited in the TAP's ring past their RTO).

The rule, as Linux gives it: a NET_RX softirq left pending (NAPI's poll
stopped at its budget) runs when the sending process re-enables bottom
halves (__local_bh_enable_ip -> do_softirq, on every dev_queue_xmit and
release_sock), within net_rx_action's budget and time; the process it wakes
runs afterwards, not inside the sender's call; and softirq work that keeps
coming goes to ksoftirqd, which the scheduler gives a fair share, so the
processes get as much time again.

Deterministic: the real Stack and TapDevice read loop on the virtual clock
loop, the TAP's queue a SOCK_SEQPACKET socketpair (tests/
test_stack_timers_wait_for_input.py's Ring: each frame delivered costs
``COST`` seconds of virtual time).  A kick from the test stands for an
application's send (a transport's write kicks the stack after sendmsg).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stackutil import run_on
from test_stack_timers_wait_for_input import BUDGET, COST, Ring

from tcpio.stack import NET_RX_ROUNDS, NET_RX_USECS

# what one poll reads at most: NET_RX_ROUNDS budgets, fewer when NET_RX_USECS
# passes first (looked at after each budget)
POLL_MAX = BUDGET * min(NET_RX_ROUNDS, int(NET_RX_USECS * 1e-6 / (BUDGET * COST)) + 1)


class Woken:
    """A socket's glue: counts its wakeups."""

    def __init__(self) -> None:
        self.count = 0

    def wakeup(self) -> None:
        self.count += 1


def waking(ring: Ring) -> Woken:
    """Every batch the host takes wakes one socket (as data for it would)."""
    sk = Woken()
    host = ring.stack.host
    receive_batch = host.receive_batch

    def receive(ifindex: int, frames: Any, now: float) -> None:
        receive_batch(ifindex, frames, now)
        host.schedule_wakeup(sk)
    host.receive_batch = receive        # type: ignore[method-assign]
    return sk


def rx_frames(ring: Ring) -> int:
    return sum(len(what) for kind, what in ring.log if kind == "rx")


def test_a_senders_kick_reads_what_a_budget_bound_read_left(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader stopped at its budget with more waiting: the next kick
    (an application's send) reads it before returning, one poll's worth."""
    async def main() -> tuple[Ring, int, int]:
        ring = Ring(monkeypatch, refill=False)
        ring.send(8 * BUDGET)
        ring.dev._on_flows()                # the reader: one budget, more waiting
        read = rx_frames(ring)
        ring.stack.kick()
        polled = rx_frames(ring) - read
        ring.close()
        return ring, read, polled

    ring, read, polled = run_on("virtual", main)
    assert read == BUDGET
    assert BUDGET <= polled <= POLL_MAX
    assert ring.stack.softnet_stat["softirq_polls"] == 1
    assert ring.stack.softnet_stat["softirq_frames"] == polled


def test_no_poll_when_the_last_read_found_the_queue_empty(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A read that stopped short of its budget saw the queue empty: nothing
    is pending, a kick reads nothing (not even the read that says EAGAIN)."""
    async def main() -> tuple[Ring, int]:
        ring = Ring(monkeypatch, refill=False)
        ring.send(BUDGET - 1)
        ring.dev._on_flows()
        ring.send(BUDGET)                   # arrived since: the loop's poll reports it
        read = rx_frames(ring)
        ring.stack.kick()
        after = rx_frames(ring)
        ring.close()
        return ring, after - read

    ring, polled = run_on("virtual", main)
    assert polled == 0
    assert ring.stack.softnet_stat["softirq_polls"] == 0


def test_the_polls_wakeups_wait_for_the_loop_not_the_sender(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The poll's batches send their output at once, but the sockets they
    wake are woken by a later loop callback, never inside the sender's call
    (no application callback runs in the middle of a transport's write)."""
    async def main() -> tuple[int, int, int]:
        ring = Ring(monkeypatch, refill=False)
        sk = waking(ring)
        ring.send(8 * BUDGET)
        ring.dev._on_flows()                # its own batch's kick wakes sk once
        assert sk.count == 1
        ring.stack.kick()                   # the sender's: polls
        inside = sk.count
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        later = sk.count
        polls = int(ring.stack.softnet_stat["softirq_polls"])
        ring.close()
        return inside, later, polls

    inside, later, polls = run_on("virtual", main)
    assert polls >= 1
    assert inside == 1                      # not woken inside the kick
    assert later >= 2                       # woken from the loop


def test_polls_leave_the_loops_other_work_as_long_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll that took T: kicks within T after it read nothing (counted),
    the first kick after T polls again (ksoftirqd's fair share)."""
    async def main() -> tuple[Ring, list[tuple[float, int]], float]:
        ring = Ring(monkeypatch, refill=True)
        loop: Any = ring.loop
        ring.send(8 * BUDGET)
        ring.dev._on_flows()
        t0 = loop.time()
        ring.stack.kick()                   # polls: virtual time passes in it
        took = loop.time() - t0
        seen = []
        step = took / 4
        for _ in range(6):
            loop.advance(step)
            before = rx_frames(ring)
            ring.stack.kick()
            seen.append((loop.time() - t0 - took, rx_frames(ring) - before))
        ring.close()
        return ring, seen, took

    ring, seen, took = run_on("virtual", main)
    assert took > 0
    for since, polled in seen:
        if since < took - 1e-12:
            assert polled == 0, (since, took)
    assert any(polled for since, polled in seen if since >= took)
    assert ring.stack.softnet_stat["softirq_deferred"] >= 3


def test_a_devices_own_batch_does_not_poll_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The kick that ends a device's batch (its reader, the timers' poll) is
    the receive side's own: it reads no further (one budget per reader
    callback, as before)."""
    async def main() -> tuple[Ring, int]:
        ring = Ring(monkeypatch, refill=False)
        ring.send(8 * BUDGET)
        ring.dev._on_flows()
        n = rx_frames(ring)
        ring.close()
        return ring, n

    ring, n = run_on("virtual", main)
    assert n == BUDGET
    assert ring.stack.softnet_stat["softirq_polls"] == 0
