"""The flows' reader's share of the loop (TapDevice._on_flows, RxShare; issue 11).

Rule: a wake-up of the flows' reader reads budget after budget, each
delivered as its own batch, until a read stops short of its budget (EAGAIN)
or it has read for as long as the loop's other work took since the reader
last stopped reading (at most ``cap``); the first budget is always read.

The ring is a SOCK_SEQPACKET socketpair (no root); the clock is virtual:
delivering a batch costs ``COST`` seconds per frame, the loop's other work
is the clock moved between turns.  Frames are counted, nothing is timed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from seqpacket import seqpacket_pair

import tcpio.devices.tap as tap_mod
from tcpio.devices.base import new_stats
from tcpio.devices.tap import RxShare, SynShare, TapDevice, new_gso_stats

BUDGET = 8
COST = 0.001                    # seconds of delivery per frame: 8 ms a budget


class Ring:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, share: RxShare) -> None:
        self.now = 0.0
        monkeypatch.setattr(tap_mod, "_clock", lambda: self.now)
        ours, self.peer = seqpacket_pair()
        self._ours = ours
        dev = TapDevice.__new__(TapDevice)
        dev.name, dev.mtu, dev.mac = "rx0", 1500, bytes.fromhex("020000000002")
        dev.fd, dev.syn_fd = ours.fileno(), None
        dev.budget, dev.vnet_hdr_len, dev._readsize = BUDGET, 0, 2048
        dev.stats = new_stats()
        dev.gso_stats = new_gso_stats()
        dev.rx_more, dev.rx_emptied, dev.time_squeeze, dev.syn_queue_rx = False, 0, 0, 0
        dev.rx_flows_read, dev.rx_ring_len = 0, 0
        dev.syn_share, dev._syn_timer, dev._loop = SynShare(), None, None
        dev.rx_share = share
        self.batches: list[int] = []
        dev._on_frames = self._deliver
        self.dev = dev
        self.sent = 0

    def _deliver(self, frames: list[bytes]) -> None:
        self.batches.append(len(frames))
        self.now += COST * len(frames)

    def send(self, n: int) -> None:
        for _ in range(n):
            self.peer.send(b"%06d" % self.sent + bytes(10))
            self.sent += 1

    def turn(self, other_work: float) -> list[int]:
        """The loop's other work, then one wake-up of the reader: its batches."""
        self.now += other_work
        before = len(self.batches)
        self.dev._on_flows()
        return self.batches[before:]

    def close(self) -> None:
        self._ours.close()
        self.peer.close()


@pytest.fixture
def ring(monkeypatch: pytest.MonkeyPatch) -> Iterator[Ring]:
    r = Ring(monkeypatch, RxShare(cap=0.05))
    yield r
    r.close()


def test_the_first_wake_up_reads_one_budget(ring: Ring) -> None:
    ring.send(20)
    assert ring.turn(0.0) == [BUDGET]           # nothing measured yet: floor 0
    assert ring.dev.rx_more


def test_a_wake_up_reads_for_as_long_as_the_other_work_took(ring: Ring) -> None:
    ring.send(60)
    ring.turn(0.0)
    timed_out = ring.dev.rx_share.timed_out
    # 20 ms of other work: budgets begun at 0, 8 and 16 ms; the one that
    # ends at 24 ms stops the turn (the ring still holds frames)
    assert ring.turn(0.020) == [BUDGET] * 3
    assert ring.dev.rx_more and ring.dev.rx_share.timed_out == timed_out + 1
    # 8 ms of other work: one budget reaches it
    assert ring.turn(0.008) == [BUDGET]
    # 9 ms: a second one
    assert ring.turn(0.009) == [BUDGET] * 2
    assert ring.dev.rx_share.extra == 2 + 1


def test_a_wake_up_stops_at_eagain_however_much_time_it_has(ring: Ring) -> None:
    ring.send(2)                                # (two: not a lone frame, below)
    ring.turn(0.0)
    ring.send(2 * BUDGET + 3)
    assert ring.turn(0.040) == [BUDGET, BUDGET, 3]
    assert not ring.dev.rx_more and ring.dev.rx_emptied == 2
    assert ring.dev.rx_share.timed_out == 0
    assert ring.turn(0.040) == []               # an empty ring: one read says EAGAIN
    assert ring.dev.rx_emptied == 3


def test_after_a_lone_frame_a_wake_up_reads_one_and_leaves_the_rest_to_the_next_poll(
        ring: Ring) -> None:
    """The echo's read (issue 12): after a batch of one frame the reader
    reads one frame and does not look for more in the same wake-up however
    much time it has (the loop's next poll of the fd reports what came);
    every fourth lone batch drains."""
    ring.send(1)
    assert ring.turn(0.0) == [1]
    ring.send(2 * BUDGET + 3)
    assert ring.turn(0.040) == [1]
    assert ring.turn(0.040) == [1]
    assert ring.turn(0.040) == [1]
    assert ring.turn(0.040) == [BUDGET, BUDGET]   # the fourth: to EAGAIN
    assert not ring.dev.rx_more


def test_cap_bounds_a_turn_however_long_the_other_work(ring: Ring) -> None:
    ring.send(80)
    ring.turn(0.0)
    # 1 s of other work, cap 50 ms: budgets begun at 0..48 ms, 7 of them
    assert ring.turn(1.0) == [BUDGET] * 7
    assert ring.dev.rx_share.max_allow == 0.05


def test_the_other_work_counts_from_a_poll_rx_too(ring: Ring) -> None:
    """poll_rx (the stack's timers) reads the ring: the reader's next turn
    measures the loop's other work from where that read stopped."""
    ring.send(60)
    ring.turn(0.0)
    ring.now += 0.030
    assert ring.dev.poll_rx(rounds=2)           # two budgets, the ring not empty
    assert ring.turn(0.004) == [BUDGET]         # 4 ms since then, not 34 ms


def test_while_the_syn_queue_is_backlogged_each_budget_is_charged_to_the_syn_share(
        ring: Ring) -> None:
    sh = ring.dev.syn_share
    sh.syn_done(sh.batch, 0.001, True, 0.0)     # a SYN turn that stopped at its budget
    ring.send(60)
    ring.turn(0.0)
    ring.turn(0.020)
    assert sh.est_frames == 4 * BUDGET
    assert sh.est_time == pytest.approx(4 * BUDGET * COST)
    assert sh.cost_est == pytest.approx(COST)
    assert sh.last_est == pytest.approx(ring.now)


def test_without_a_syn_backlog_the_flows_reads_are_not_timed(
        ring: Ring, monkeypatch: pytest.MonkeyPatch) -> None:
    """SynShare.budget looks at the flows (flows_busy) only on a turn held
    to the share, after ``grace`` (>= ``idle``) seconds of backlog: before
    that no read of the flows' queue reads the clock for it (an echo's
    every request), in either reader mode."""
    sh = ring.dev.syn_share
    sh.syn_done(3, 0.001, False, 0.0)           # a SYN turn that emptied its queue
    ring.send(60)
    ring.turn(0.0)
    ring.turn(0.020)
    assert sh.est_frames == 0 and sh.last_est == float("-inf")
    monkeypatch.setattr(tap_mod, "_clock", lambda: pytest.fail("clock read"))
    ring.dev.rx_share = RxShare()               # the default reader: one budget a wake-up
    ring.dev._rx_lone = 1                       # (lone: one frame, no drain to EAGAIN)
    ring.turn(0.0)
    assert ring.batches[-1] == 1 and sh.est_frames == 0


def test_rx_share_arguments() -> None:
    with pytest.raises(ValueError):
        RxShare(floor=-1.0)
    with pytest.raises(ValueError):
        RxShare(floor=0.1, cap=0.05)
    rs = RxShare(floor=0.002, cap=0.05)
    assert rs.allowance(10.0) == 0.002          # first: the floor
    rs.end(10.0)
    assert rs.allowance(10.001) == 0.002        # less other work than the floor
    assert rs.allowance(10.03) == pytest.approx(0.03)


def test_by_default_a_wake_up_reads_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """RxShare is off unless given a cap (its doc: the soak did not move,
    1-flow bulk looked slower): one budget a wake-up, as before it."""
    r = Ring(monkeypatch, RxShare())
    try:
        r.send(40)
        r.turn(0.0)
        assert r.turn(1.0) == [BUDGET]
        assert r.dev.rx_more
    finally:
        r.close()


class _ReaderLoop:
    """What TapDevice.start asks of the loop: the fd's reader, kept."""

    def __init__(self) -> None:
        self.readers: dict[int, object] = {}

    def add_reader(self, fd: int, cb: object) -> None:
        self.readers[fd] = cb


def test_the_loops_reader_reads_a_budget_and_times_it_only_for_a_backlogged_syn_queue(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncapped, the reader ``start`` gives the loop is the compiled turn
    (FrameIO.read_flows): a budget a wake-up, delivered as one batch, no
    clock read; while the SYN queue is backlogged it hands each turn to the
    device, which charges it to the SYN share."""
    r = Ring(monkeypatch, RxShare())
    try:
        loop = _ReaderLoop()
        r.dev.start(loop, r._deliver)               # type: ignore[arg-type]
        reader = loop.readers[r.dev.fd]
        assert callable(reader)
        sh = r.dev.syn_share
        r.send(3)
        reader()
        assert r.batches == [3] and r.dev.rx_flows_read == 3 and not r.dev.rx_more
        assert sh.est_frames == 0
        sh.syn_done(sh.batch, 0.001, True, r.now)  # a SYN turn that stopped at its budget
        r.send(2 * BUDGET)
        reader()
        assert r.batches[-1] == BUDGET and r.dev.rx_more
        assert sh.est_frames == BUDGET and sh.est_time == pytest.approx(BUDGET * COST)
    finally:
        r.close()
