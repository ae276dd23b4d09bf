"""The SYN queue's share of a TAP's read loop (devices.tap.SynShare, issue 13).

Deterministic: a virtual clock stands for time.perf_counter, the device
reads SOCK_SEQPACKET socketpairs (one message per read, as a TAP gives one
frame per read) in place of its two TAP queues, and a recording loop stands
for asyncio's.  What the rules must give is stated as arithmetic on that
clock: SYN work is at most the share of the wall clock while the flows'
queue is busy, a turn reads what its credit pays for at the measured cost
per SYN, a turn that cannot pay for ``min_batch`` SYNs is put off (its
reader removed, a timer for when it can), idle flows leave the SYNs a whole
batch, and the counters say where the time went.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

import tcpio.devices.tap as tap_mod
from tcpio.devices.base import new_stats
from tcpio.devices.tap import RxShare, SynShare, TapDevice, new_gso_stats


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeLoop:
    """What the device asks of its loop, recorded."""

    def __init__(self) -> None:
        self.readers: dict[int, Any] = {}
        self.timers: list[tuple[float, Any]] = []

    def add_reader(self, fd: int, cb: Any, *args: Any) -> None:
        self.readers[fd] = cb

    def remove_reader(self, fd: int) -> bool:
        return self.readers.pop(fd, None) is not None

    def call_later(self, delay: float, cb: Any) -> Any:
        self.timers.append((delay, cb))

        class Handle:
            def cancel(self) -> None:
                pass
        return Handle()


# --- the rules on their own ---------------------------------------------------------------------

def test_budget_is_the_credit_over_the_measured_cost_per_syn() -> None:
    sh = SynShare(share=0.25, batch=64, min_batch=4, burst=0.002, grace=0.0)
    sh.est_done(10, 0.001, 0.0)                  # the flows are busy
    assert sh.budget(0.0) == 64                  # no cost measured yet: a whole batch
    sh.syn_done(64, 64 * 10e-6, True, 0.0)       # 10 µs per SYN, charged
    assert sh.cost_syn == pytest.approx(10e-6)
    assert sh.credit == pytest.approx(0.002 - 64 * 10e-6)
    assert sh.budget(0.0) == 64                  # 1.36 ms pays for 136: capped at the batch
    sh.credit = 0.0
    assert sh.budget(0.0) == 0                   # nothing earned yet: put off
    assert sh.wait() == pytest.approx(4 * 10e-6 / 0.25)
    # 100 µs later, a quarter of it is earned: 25 µs = 2 SYNs < min_batch 4
    assert sh.budget(0.0001) == 0
    # 160 µs in all: 40 µs = 4 SYNs
    assert sh.budget(0.00016) == 4
    assert sh.deferred == 2


def test_the_credit_is_capped_and_a_dear_syn_gets_a_turn_of_one() -> None:
    sh = SynShare(share=0.5, batch=64, min_batch=8, burst=0.001, grace=0.0)
    sh.est_done(1, 1e-5, 0.0)
    sh.syn_done(1, 300e-6, True, 0.0)            # a real handshake: 300 µs
    sh.credit = 0.0
    assert sh.budget(0.0) == 0
    # 8 x 300 µs is more than the bucket holds: wait until it is full
    assert sh.wait() == pytest.approx(0.001 / 0.5)
    assert sh.budget(0.01) == 3                  # full (1 ms, not 5): 3 such SYNs
    sh.credit = 0.0001
    sh.last = 0.0
    sh.burst = 0.0001                            # full at 100 µs: still one
    assert sh.budget(0.0) == 1


def test_idle_flows_leave_the_syn_queue_a_whole_batch() -> None:
    sh = SynShare(share=0.1, batch=32, min_batch=4, idle=0.05, grace=0.0)
    sh.syn_done(32, 32 * 20e-6, True, 0.0)
    sh.credit = -1.0                             # deep in debt
    assert sh.budget(0.0) == 32                  # no flows ever: nothing to protect
    sh.est_done(5, 1e-4, 1.0)
    assert sh.budget(1.01) == 0                  # busy flows: the debt counts
    assert sh.budget(1.06) == 32                 # 60 ms without a flows' frame


def test_only_a_syn_queue_backlogged_past_the_grace_is_held_to_the_share() -> None:
    """Connections at a rate the host keeps up with (each turn empties the
    queue), and a burst of them shorter than ``grace``: whole batches however
    busy the flows and whatever the credit; a queue that stays backlogged
    past it (a flood): its share."""
    sh = SynShare(share=0.1, batch=32, min_batch=4, grace=0.2)
    sh.est_done(5, 1e-4, 0.0)
    sh.syn_done(3, 3 * 100e-6, False, 0.0)       # three handshakes, then EAGAIN
    sh.credit = -0.01
    assert sh.budget(0.0) == 32
    sh.syn_done(32, 32 * 100e-6, True, 0.01)     # a burst: the budget filled
    sh.est_done(5, 1e-4, 0.1)
    assert sh.budget(0.1) == 32
    sh.syn_done(32, 32 * 100e-6, True, 0.1)      # still backlogged (since 0.01)
    sh.est_done(5, 1e-4, 0.2)
    assert sh.budget(0.2) == 32                  # 190 ms: within the grace
    sh.syn_done(32, 32 * 100e-6, True, 0.2)
    sh.est_done(5, 1e-4, 0.22)
    sh.credit = -0.01
    assert sh.budget(0.22) == 0 and sh.deferred == 1     # 210 ms: held to the credit
    sh.syn_done(7, 7 * 100e-6, False, 0.3)       # the queue emptied: free again
    assert sh.budget(0.3) == 32


def test_a_constant_flood_gets_its_share_of_a_busy_loop_and_no_more() -> None:
    """A loop whose every iteration has flows' work (0.3 ms) and a SYN queue
    that always has SYNs (12 µs each): over 2 s of virtual time the SYN queue
    takes its share of the wall clock (to within the bucket), the flows the rest."""
    for share in (0.05, 0.2, 0.5):
        sh = SynShare(share=share, batch=64, min_batch=8, burst=0.002, grace=0.0)
        t, syn_t, est_t, turn_at = 0.0, 0.0, 0.0, 0.0
        while t < 2.0:
            sh.est_done(4, 0.0003, t + 0.0003)
            t += 0.0003
            est_t += 0.0003
            if t >= turn_at:
                n = sh.budget(t)
                if n == 0:
                    turn_at = t + sh.wait()
                    continue
                took = n * 12e-6
                sh.syn_done(n, took, True, t)
                t += took
                syn_t += took
        assert syn_t / t == pytest.approx(share, abs=0.002 / 2.0 + 0.01), share
        assert sh.syn_time == pytest.approx(syn_t) and sh.est_time == pytest.approx(est_t)
        assert sh.syn_frames == round(syn_t / 12e-6)
        st = sh.stats()
        assert st["syn_us"] == pytest.approx(12.0) and st["est_us"] == pytest.approx(75.0)


def test_bad_parameters_are_refused() -> None:
    for kw in ({"share": 0.0}, {"share": 1.5}, {"batch": 0}, {"min_batch": 0},
               {"batch": 4, "min_batch": 8}):
        with pytest.raises(ValueError):
            SynShare(**kw)


# --- the device's turns -------------------------------------------------------------------------

@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A TapDevice on two SOCK_SEQPACKET pairs (flows' queue, SYN queue)
    with a virtual clock: each frame delivered costs ``cost[queue]`` seconds."""
    clock = Clock()
    monkeypatch.setattr(tap_mod, "_clock", clock)
    flows_r, flows_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    syn_r, syn_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (flows_r, syn_r, flows_w, syn_w):
        s.setblocking(False)
    dev = TapDevice.__new__(TapDevice)
    dev.fd, dev.syn_fd = flows_r.fileno(), syn_r.fileno()
    dev.budget, dev.vnet_hdr_len, dev._readsize = 256, 0, 2048
    dev.stats = new_stats()
    dev.gso_stats = new_gso_stats()
    dev.rx_more, dev.rx_emptied, dev.time_squeeze, dev.syn_queue_rx = False, 0, 0, 0
    dev.rx_flows_read, dev.rx_ring_len = 0, 0
    dev.syn_share = SynShare(share=0.2, batch=16, min_batch=4, burst=0.001, grace=0.0)
    dev.rx_share = RxShare()
    dev._syn_timer = None
    loop = FakeLoop()
    dev._loop = loop
    got: list[list[bytes]] = []
    cost = {b"S": 50e-6, b"E": 100e-6}

    def on_frames(frames: list[bytes]) -> None:
        got.append(frames)
        clock.t += sum(cost[f[:1]] for f in frames)
    dev._on_frames = on_frames
    loop.add_reader(dev.fd, dev._on_flows)
    loop.add_reader(dev.syn_fd, dev._on_syn)
    dev.t = {"clock": clock, "got": got, "loop": loop, "flows": flows_w, "syn": syn_w}
    yield dev
    for s in (flows_r, syn_r, flows_w, syn_w):
        s.close()


def test_the_device_reads_the_syn_queue_only_with_credit_and_puts_it_off(device: Any) -> None:
    t = device.t
    for i in range(200):
        t["syn"].send(b"S%d" % i)
    for i in range(3):
        t["flows"].send(b"E%d" % i)
    device._on_flows()                           # the flows' queue: 3 frames, 300 µs
    assert device.syn_share.est_frames == 3
    assert device.syn_share.est_time == pytest.approx(300e-6)
    device._on_syn()                             # no cost known: a whole batch (16)
    assert [len(b) for b in t["got"]] == [3, 16]
    assert device.syn_queue_rx == 16
    assert device.syn_share.cost_syn == pytest.approx(50e-6)
    # the bucket (1 ms) less the 800 µs charged, plus a fifth of the 800 µs
    # that passed: 360 µs pays for 7 SYNs
    device._on_syn()
    assert [len(b) for b in t["got"]] == [3, 16, 7]
    # 360 - 350 + 70 = 80 µs: less than min_batch (4 x 50 µs): the reader goes
    # and a timer brings it back when 4 are paid for
    device._on_syn()
    assert device.syn_fd not in t["loop"].readers and device.fd in t["loop"].readers
    delay, rearm = t["loop"].timers[-1]
    assert delay == pytest.approx((4 * 50e-6 - 80e-6) / 0.2)
    assert device.syn_share.deferred == 1 and device.syn_share.turns == 2
    t["clock"].t += delay
    rearm()
    assert t["loop"].readers[device.syn_fd] == device._on_syn
    t["flows"].send(b"E!")                       # the flows still busy: 100 µs
    device._on_flows()
    device._on_syn()
    assert [len(b) for b in t["got"]][-1] == 4   # 80 + (600 + 100) / 5 = 220 µs: 4
    # established frames were never held back: every one delivered
    assert sum(1 for b in t["got"] for f in b if f[:1] == b"E") == 4
    assert device.syn_share.syn_frames == 27 == device.syn_queue_rx


def test_with_idle_flows_the_syn_queue_is_read_a_batch_per_turn(device: Any) -> None:
    t = device.t
    for i in range(40):
        t["syn"].send(b"S%d" % i)
    device._on_syn()
    device._on_syn()
    device._on_syn()
    assert [len(b) for b in t["got"]] == [16, 16, 8]
    assert device.syn_share.deferred == 0


# --- poll_rx: what the flows' queue holds is read before timers run (issue 11) -----------------

def test_poll_rx_reads_to_eagain_even_after_a_read_that_did_not_stop_at_its_budget(
        device: Any) -> None:
    """The last read emptied the queue (rx_more False); two ACKs came in
    since: poll_rx reads them (before, it read only after a full budget)."""
    t = device.t
    t["flows"].send(b"E1")
    device._on_flows()
    assert not device.rx_more
    t["flows"].send(b"E2")
    t["flows"].send(b"E3")
    device.poll_rx()
    assert t["got"] == [[b"E1"], [b"E2", b"E3"]]
    device.poll_rx()                             # nothing waiting: one read, no batch
    assert len(t["got"]) == 2
    assert device.syn_share.est_frames == 3


def test_poll_rx_is_bounded(device: Any) -> None:
    """Input that never stops cannot hold the caller: at most ``rounds``
    budgets per call, and True says frames still wait (counted as a time
    squeeze); a call that reaches EAGAIN says False and counts the queue
    seen empty."""
    t = device.t
    device.budget = 4
    for i in range(20):
        t["flows"].send(b"E%d" % i)
    assert device.poll_rx(3) is True
    assert [len(b) for b in t["got"]] == [4, 4, 4] and device.rx_more
    assert device.time_squeeze == 1 and device.rx_emptied == 0
    assert device.poll_rx(3) is False
    assert sum(len(b) for b in t["got"]) == 20 and not device.rx_more
    assert device.time_squeeze == 1 and device.rx_emptied == 1


def test_poll_rx_stops_after_the_budget_that_passes_its_time_limit(device: Any) -> None:
    """net_rx_action's netdev_budget_usecs: the limit is looked at after each
    budget (one is always read); each flows' frame costs 100 µs here, a
    budget of 4 costs 400 µs, so a 1 ms limit stops after the third."""
    t = device.t
    device.budget = 4
    for i in range(40):
        t["flows"].send(b"E%d" % i)
    assert device.poll_rx(64, 0.001) is True
    assert [len(b) for b in t["got"]] == [4, 4, 4]
    assert device.poll_rx(64, 0.0) is True          # a spent limit still reads one budget
    assert [len(b) for b in t["got"]] == [4, 4, 4, 4]


def test_a_burst_the_listeners_take_is_not_held_to_the_share() -> None:
    """With the listeners' overflow count wired (the Stack's ListenDrops +
    TCPReqQFullDoCookies), a queue backlogged past the grace is held to its
    share only while that count grew in the last ``grace`` seconds: a
    thousand real SYNs behind busy flows (issue 11) are read a whole batch a
    turn to their end; a flood (the listeners overflow) gets its share, and
    a grace after the overflow stops the queue is free again."""
    drops = [7]                                  # whatever the host counted before
    sh = SynShare(share=0.1, batch=32, min_batch=4, grace=0.2,
                  overflowed=lambda: drops[0])
    t = 0.0
    for _ in range(40):                          # 1.2 s of turns that stop at their budget
        sh.est_done(5, 1e-4, t)
        assert sh.budget(t) == 32
        sh.syn_done(32, 32 * 100e-6, True, t)
        t += 0.03
    assert sh.credit < 0 and sh.deferred == 0    # far past the share and the grace
    sh.credit = -0.05                            # deep in debt
    drops[0] += 50                               # the listeners overflow: a flood
    sh.est_done(5, 1e-4, t)
    assert sh.budget(t) == 0 and sh.deferred == 1
    sh.syn_done(0, 0.0, True, t)
    t += 0.15
    drops[0] += 50
    sh.est_done(5, 1e-4, t)
    assert sh.budget(t) == 0                     # still overflowing, still in debt
    t += 0.19                                    # 190 ms since the last growth
    sh.est_done(5, 1e-4, t)
    assert sh.budget(t) == 0
    t += 0.02                                    # 210 ms: the flood is over
    sh.est_done(5, 1e-4, t)
    assert sh.budget(t) == 32
    assert sh.deferred == 3


def test_without_an_overflow_count_every_long_backlog_is_held() -> None:
    """A SynShare nobody wired (a device outside a Stack) keeps the rule it
    had: backlogged past the grace with busy flows is a flood."""
    sh = SynShare(share=0.1, batch=32, min_batch=4, grace=0.2)
    assert sh.flooding(0.0) and sh.flooding(100.0)


def test_an_overflow_long_past_does_not_hold_a_later_burst() -> None:
    """The count is looked at every turn, so growth while the queue was read
    freely (the flows idle) is dated then, not when the share next has to
    decide: a burst a second after the flood ended is not taken for one."""
    drops = [0]
    sh = SynShare(share=0.1, batch=32, min_batch=4, grace=0.2, overflowed=lambda: drops[0])
    t, sh.credit = 0.0, -1.0                     # deep in debt
    for _ in range(10):                          # a flood behind busy flows
        drops[0] += 100
        sh.est_done(5, 1e-4, t)
        sh.budget(t)
        sh.syn_done(32, 32 * 10e-6, True, t)
        t += 0.03
    assert sh.deferred > 0                       # held to its share
    assert sh.budget(0.5) == 32                  # the flows went idle at 0.27
    drops[0] += 100                              # the flood's last SYNs overflow
    assert sh.budget(0.55) == 32 and sh.overflow_at == 0.55
    sh.syn_done(5, 5 * 10e-6, False, 0.55)       # it ended: the queue emptied
    deferred, t = sh.deferred, 1.0
    for _ in range(20):                          # a burst behind busy flows, past the grace
        sh.est_done(5, 1e-4, t)
        assert sh.budget(t) == 32
        sh.syn_done(32, 32 * 100e-6, True, t)
        t += 0.03
    assert sh.deferred == deferred


def test_all_that_waited_at_a_mark_is_read_once_the_queue_was_empty_or_a_ring_read(
        device: Any) -> None:
    """rx_caught_up: the kernel's ring is first in, first out and holds at
    most rx_ring_len frames, so what waited at the mark has been read once a
    read found the queue empty, or once a ring's length was read since."""
    t = device.t
    device.budget, device.rx_ring_len = 4, 10
    for i in range(30):
        t["flows"].send(b"E%d" % i)
    mark = device.rx_mark()
    assert device.poll_rx(2) and not device.rx_caught_up(mark)     # 8 read
    assert device.poll_rx(1) and device.rx_caught_up(mark)         # 12 >= 10
    mark = device.rx_mark()
    device.rx_ring_len = 0                                          # not known
    assert device.poll_rx(4) and not device.rx_caught_up(mark)     # 16 more, not empty
    assert not device.poll_rx(4) and device.rx_caught_up(mark)     # EAGAIN


# --- max_wait: the SYN's wait in the ring bounded under a flood -------------------------------

def test_the_ring_is_what_the_syn_queue_reads_in_max_wait_only_under_a_flood() -> None:
    """ring_len: the configured length until a turn is held to the share
    (backlogged past the grace, the listeners overflowing) with a read rate
    measured; then rate x max_wait frames, at least ring_floor, at most the
    configured length; back to the configured one once a turn finds the
    queue short of its budget (the flood over)."""
    drops = [0]
    sh = SynShare(share=0.3, batch=64, min_batch=4, grace=0.2, max_wait=0.5,
                  ring_floor=1000, rate_window=0.25, overflowed=lambda: drops[0])
    full = 20000
    assert sh.ring_len(full) == full and sh.rate == 0.0
    t = 0.0
    # 64 SYNs every 8 ms = 8000 SYN/s of wall clock, every turn at its budget
    while t < 0.5:
        drops[0] += 10
        sh.est_done(5, 1e-4, t)
        sh.budget(t)
        sh.syn_done(64, 64 * 20e-6, True, t)
        if t < 0.2:                              # inside the grace: not held yet
            assert not sh.held and sh.ring_len(full) == full
        t += 0.008
    assert sh.held
    assert sh.rate == pytest.approx(8000, rel=0.05)
    assert sh.ring_len(full) == int(sh.rate * 0.5)          # ~4000 frames: 0.5 s of reads
    assert sh.ring_len(3000) == 3000                        # never above the configured
    sh.rate = 500.0                                         # a starved loop
    assert sh.ring_len(full) == 1000                        # the floor
    sh.est_done(5, 1e-4, t)
    sh.budget(t)
    sh.syn_done(10, 10 * 20e-6, False, t)                   # the queue ran short: over
    sh.budget(t + 0.001)
    assert not sh.held and sh.ring_len(full) == full


def test_without_max_wait_the_ring_stays_as_configured() -> None:
    sh = SynShare(share=0.3, batch=64, min_batch=4, grace=0.0)
    sh.held, sh.rate = True, 8000.0
    assert sh.ring_len(20000) == 20000
    for kw in ({"max_wait": 0.0}, {"ring_floor": 0}, {"rate_window": 0.0}):
        with pytest.raises(ValueError):
            SynShare(**kw)


def test_the_device_shortens_the_ring_once_per_flood_and_restores_it(
        device: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device's side: SIOCSIFTXQLEN (recorded here) once when ring_len
    first asks for less than the configured length, nothing while the
    flood goes on (a change stalls the kernel's side of the TAP), back to
    the configured length when it ends; an error turns it off."""
    calls: list[int] = []

    def ioctl(fd: Any, req: int, arg: bytes) -> bytes:
        assert req == tap_mod.SIOCSIFTXQLEN
        calls.append(int.from_bytes(arg[16:20], "little"))
        device.t["clock"].t += 0.01                      # the kernel's time
        return arg
    monkeypatch.setattr(tap_mod.fcntl, "ioctl", ioctl)
    device.name, device.rx_ring_len = "tcpiotest", 20000
    device._ring_ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        assert device._syn_ring(20000) == 0.0
        assert calls == []                               # already the configured length
        assert device._syn_ring(4000) == pytest.approx(0.01)
        assert calls == [4000] and device.syn_ring_len == 4000
        device._syn_ring(2000)                           # the flood goes on: left
        device._syn_ring(9000)
        assert calls == [4000]
        device._syn_ring(20000)                          # the flood over
        assert calls == [4000, 20000] and device.syn_ring_len == 0
        assert device.syn_ring_changes == 2

        def refuse(fd: Any, req: int, arg: bytes) -> bytes:
            raise PermissionError(1, "no CAP_NET_ADMIN")
        monkeypatch.setattr(tap_mod.fcntl, "ioctl", refuse)
        device._syn_ring(2000)
        assert isinstance(device.syn_ring_error, PermissionError)
        assert device._ring_ctl is None and device.syn_ring_len == 0
        device._syn_ring(2500)                           # off: nothing more asked
    finally:
        if device._ring_ctl is not None:
            device._ring_ctl.close()


def test_a_syn_turn_under_a_flood_shortens_the_ring_and_pays_for_it_from_its_credit(
        device: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through _on_syn: a backlogged SYN queue held to its share (grace 0,
    no overflow count wired: every long backlog is a flood) with a rate
    measured sets the ring once; the ioctl's time comes off the credit and
    does not enter the cost per SYN."""
    calls: list[int] = []
    rates: list[float] = []

    def ioctl(fd: Any, req: int, arg: bytes) -> bytes:
        calls.append(int.from_bytes(arg[16:20], "little"))
        rates.append(device.syn_share.rate)          # what the share measured then
        device.t["clock"].t += 0.02
        return arg
    monkeypatch.setattr(tap_mod.fcntl, "ioctl", ioctl)
    t = device.t
    device.name, device.rx_ring_len = "tcpiotest", 20000
    device.syn_share = sh = SynShare(share=0.5, batch=16, min_batch=1, burst=1.0, grace=0.0,
                                      max_wait=0.5, ring_floor=100, rate_window=0.001)
    sh.credit = 1.0
    device._ring_ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(100):
            t["syn"].send(b"S%d" % i)
        turns = 0
        while not calls:
            t["flows"].send(b"E")
            device._on_flows()                   # the flows busy
            device._on_syn()
            turns += 1
            assert turns < 6
        assert sh.held and rates[0] > 0
        assert calls == [max(100, min(20000, int(rates[0] * 0.5)))] and calls[0] < 20000
        assert sh.cost_syn == pytest.approx(50e-6)       # the ioctl is not a SYN's cost
        assert sh.credit < 1.0 - 0.02
    finally:
        device._ring_ctl.close()
