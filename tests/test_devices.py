"""MemoryWire, DelayLine and ImpairedDevice: frames arrive when, how often and
in the order the Impairment model says, in batches, through one timer per
direction.  Run under a virtual clock, so times are exact and runs repeat.

The oracle for "what should arrive" is an independent Impairment with the same
seed and knobs: same seed and same call sequence give the same fates (its own
tests check the model itself against the knobs).
"""

from __future__ import annotations

import asyncio

import pytest
from virtual_loop import VirtualClockLoop

from tcpio.devices.base import new_stats
from tcpio.devices.impair import Impairment
from tcpio.devices.memory import DelayLine, ImpairedDevice, MemoryWire


def frame(i: int, size: int = 60) -> bytes:
    """A recognisable Ethernet-sized frame carrying its index."""
    return i.to_bytes(4, "big") * (size // 4)


def index(f: bytes) -> int:
    return int.from_bytes(f[:4], "big")


class Recorder:
    """on_frames callback that keeps each batch with the loop time it arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.batches: list[tuple[float, list[bytes]]] = []

    def __call__(self, frames: list[bytes]) -> None:
        self.batches.append((self.loop.time(), list(frames)))

    @property
    def frames(self) -> list[bytes]:
        return [f for _, batch in self.batches for f in batch]


def wire_to_b(loop: asyncio.AbstractEventLoop, **knobs) -> tuple[MemoryWire, Recorder]:
    """A started MemoryWire and what reaches its end b."""
    wire = MemoryWire(**knobs)
    rx = Recorder(loop)
    wire.a.start(loop, lambda frames: None)
    wire.b.start(loop, rx)
    return wire, rx


def run_virtual(coro_fn):
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(coro_fn())


def expected_fates(frames: list[bytes], t0: float, **knobs) -> list[tuple[float, bytes]]:
    oracle = Impairment(**knobs)
    fates = []
    for f in frames:
        fates.extend(oracle.fate(f, t0))
    return fates


def test_clean_wire_delivers_in_order_in_one_batch():
    async def main():
        loop = asyncio.get_running_loop()
        wire = MemoryWire()
        rx_a, rx_b = Recorder(loop), Recorder(loop)
        wire.a.start(loop, rx_a)
        wire.b.start(loop, rx_b)
        sent = [frame(i) for i in range(50)]
        wire.a.send_batch(sent)
        assert rx_b.batches == []          # never delivered inside the sender's call
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return rx_a, rx_b, sent, wire

    rx_a, rx_b, sent, wire = run_virtual(main)
    assert rx_b.frames == sent
    assert len(rx_b.batches) == 1          # due together -> one batch
    assert rx_a.frames == []
    assert wire.a.stats["tx_packets"] == 50 and wire.b.stats["rx_packets"] == 50
    assert wire.b.stats["rx_bytes"] == 50 * 60


def test_deterministic_macs_and_identity():
    wire = MemoryWire(mtu=9000)
    assert wire.a.mac == bytes.fromhex("020000000001")
    assert wire.b.mac == bytes.fromhex("020000000002")
    assert wire.a.link == wire.b.link == "ether"
    assert wire.a.mtu == wire.b.mtu == 9000


@pytest.mark.parametrize("knobs", [
    {"delay": 0.010},
    {"delay": 0.010, "jitter": 0.004},
    {"loss": 0.1, "reorder": 0.1, "delay": 0.002},
    {"duplicate": 0.2, "delay": 0.001},
    {"rate": 1_000_000.0},
    {"loss": 0.3, "jitter": 0.01, "reorder": 0.2, "duplicate": 0.1, "corrupt": 0.05, "delay": 0.003},
], ids=lambda k: ",".join(k))
def test_delivery_matches_the_impairment_model(knobs):
    n = 200
    sent = [frame(i, 60 + (i % 7) * 100) for i in range(n)]

    async def main():
        loop = asyncio.get_running_loop()
        wire = MemoryWire(seed=7, **knobs)
        rx = Recorder(loop)
        wire.a.start(loop, lambda frames: None)
        wire.b.start(loop, rx)
        t0 = loop.time()
        wire.a.send_batch(sent)
        await asyncio.sleep(5)
        return t0, rx, wire

    t0, rx, wire = run_virtual(main)
    fates = expected_fates(sent, t0, seed=7, mtu=1514, **knobs)
    # Order of arrival: by delivery time, ties in sending order.
    want = [f for _, f in sorted(fates, key=lambda wf: wf[0])]
    assert rx.frames == want
    # Each batch arrives at the delivery time of its first frame and holds every
    # frame due by then (the timer fires for the earliest; the rest came along).
    pending = sorted(fates, key=lambda wf: wf[0])
    for when, batch in rx.batches:
        assert when == pytest.approx(pending[0][0])
        due = [f for w, f in pending if w <= when]
        assert batch == due
        pending = pending[len(due):]
    assert pending == []
    assert wire.a_to_b.stats["delivered"] == len(fates)
    assert wire.in_flight == 0


def test_batches_follow_delivery_times():
    """Frames sent at once with a fixed delay come out together at t0 + delay."""
    async def main():
        loop = asyncio.get_running_loop()
        wire, rx = wire_to_b(loop, delay=0.25)
        t0 = loop.time()
        wire.a.send_batch([frame(i) for i in range(10)])
        await asyncio.sleep(0.1)
        wire.a.send(frame(10))
        await asyncio.sleep(1)
        return t0, rx

    t0, rx = run_virtual(main)
    assert [len(b) for _, b in rx.batches] == [10, 1]
    assert rx.batches[0][0] == pytest.approx(t0 + 0.25)
    assert rx.batches[1][0] == pytest.approx(t0 + 0.35)


@pytest.mark.parametrize("jitter", [0.0, 0.005])
def test_one_loop_timer_per_direction(jitter):
    """However many frames are in flight, a direction holds one loop timer, and
    frames due together cost one timer, not one each."""
    armed: list[float] = []

    class CountingLoop(VirtualClockLoop):
        def call_at(self, when, callback, *args, context=None):
            if isinstance(getattr(callback, "__self__", None), DelayLine):
                armed.append(when)
            return super().call_at(when, callback, *args, context=context)

    async def main():
        loop = asyncio.get_running_loop()
        wire = MemoryWire(delay=0.01, jitter=jitter, seed=3)
        wire.a.start(loop, lambda frames: None)
        wire.b.start(loop, lambda frames: None)
        live = []
        for i in range(100):
            wire.a.send(frame(i))
            live.append(len([h for h in loop._scheduled if not h.cancelled()]))
        await asyncio.sleep(1)
        return live, wire

    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        live, wire = runner.run(main())
    assert set(live) == {1}
    assert wire.b.stats["rx_packets"] == 100
    if not jitter:
        assert len(armed) == 1


def test_mtu_drops_oversized_frames():
    async def main():
        wire, rx = wire_to_b(asyncio.get_running_loop(), mtu=1500)
        wire.a.send(frame(1, 1514))
        wire.a.send(frame(2, 1516))
        await asyncio.sleep(0.01)
        return rx, wire

    rx, wire = run_virtual(main)
    assert [index(f) for f in rx.frames] == [1]
    assert wire.a_to_b.stats["mtu_drops"] == 1


def test_a_batch_meets_the_mtu_as_the_model_says():
    """send_batch's frames on a line whose only knob is the MTU: those the
    model (Impairment.fate) delivers arrive now, in order, as bytes, one
    batch; its counts are the model's."""
    sizes = [1514, 1515, 60, 9000, 1514, 0]
    sent = [frame(i, n) if i % 2 else bytearray(frame(i, n)) for i, n in enumerate(sizes)]

    async def main():
        wire, rx = wire_to_b(asyncio.get_running_loop(), mtu=1500)
        wire.a.send_batch(sent)
        await asyncio.sleep(0)
        return rx, wire

    rx, wire = run_virtual(main)
    oracle = Impairment(mtu=1514)
    fates = [f for s in sent for f in oracle.fate(s, 0.0)]
    assert rx.frames == [data for _, data in fates]
    assert all(type(f) is bytes for f in rx.frames) and len(rx.batches) == 1
    assert wire.a_to_b.stats == oracle.stats
    assert wire.a.stats["tx_packets"] == len(sent)


def test_stopped_end_drops_and_counts():
    async def main():
        loop = asyncio.get_running_loop()
        wire = MemoryWire(delay=0.01)
        wire.a.start(loop, lambda frames: None)
        wire.b.start(loop, lambda frames: None)
        wire.a.send(frame(1))
        wire.b.stop()                      # the receiver goes away while it is in flight
        await asyncio.sleep(0.1)
        wire.a.stop()
        wire.a.send(frame(2))              # sending on a stopped end: counted, no raise
        return wire

    wire = run_virtual(main)
    assert wire.b.stats["rx_dropped"] == 1
    assert wire.a.stats["tx_dropped"] == 1


def test_both_ends_must_share_a_loop():
    wire = MemoryWire()
    loop1, loop2 = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        wire.a.start(loop1, lambda frames: None)
        with pytest.raises(RuntimeError):
            wire.b.start(loop2, lambda frames: None)
    finally:
        loop1.close()
        loop2.close()


class FakeDevice:
    """A device that records what is sent and lets the test inject received frames."""

    link = "ether"
    mac = b"\x02\x00\x00\x00\x00\x09"
    name = "fake0"
    mtu = 1500

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.on_frames = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopped = False
        self.stats = new_stats()

    def start(self, loop, on_frames) -> None:
        self.loop, self.on_frames = loop, on_frames

    def send(self, f) -> None:
        self.sent.append((self.loop.time(), bytes(f)))

    def send_batch(self, frames) -> None:
        for f in frames:
            self.send(f)

    def stop(self) -> None:
        self.stopped = True


def test_impaired_device_impairs_both_directions():
    knobs_out = {"loss": 0.2, "delay": 0.01, "seed": 11}
    knobs_in = {"loss": 0.2, "delay": 0.02, "reorder": 0.2, "seed": 12}
    out_frames = [frame(i) for i in range(100)]
    in_frames = [frame(1000 + i) for i in range(100)]

    async def main():
        loop = asyncio.get_running_loop()
        inner = FakeDevice()
        dev = ImpairedDevice(inner, Impairment(**knobs_out), Impairment(**knobs_in))
        rx = Recorder(loop)
        dev.start(loop, rx)
        t0 = loop.time()
        dev.send_batch(out_frames)
        inner.on_frames(in_frames)         # the inner device read a batch
        assert inner.sent == [] and rx.frames == []
        await asyncio.sleep(1)
        dev.stop()
        return t0, inner, rx, dev

    t0, inner, rx, dev = run_virtual(main)
    want_out = sorted(expected_fates(out_frames, t0, **knobs_out), key=lambda wf: wf[0])
    want_in = sorted(expected_fates(in_frames, t0, **knobs_in), key=lambda wf: wf[0])
    assert [f for _, f in inner.sent] == [f for _, f in want_out]
    assert [t for t, _ in inner.sent] == pytest.approx([t for t, _ in want_out])
    assert rx.frames == [f for _, f in want_in]
    assert 0 < len(inner.sent) < 100 and 0 < len(rx.frames) < 100
    assert inner.stopped
    assert dev.name == "fake0" and dev.mac == FakeDevice.mac and dev.link == "ether"


def test_impaired_device_none_is_passthrough():
    async def main():
        loop = asyncio.get_running_loop()
        inner = FakeDevice()
        dev = ImpairedDevice(inner)
        rx = Recorder(loop)
        dev.start(loop, rx)
        dev.send(frame(1))
        inner.on_frames([frame(2)])
        return inner, rx

    inner, rx = run_virtual(main)
    assert [index(f) for _, f in inner.sent] == [1]
    assert [index(f) for f in rx.frames] == [2]


def test_impaired_device_passes_tso_through_and_cuts_received_super_frames_per_segment():
    """A wrapper keeps its inner device's TSO (the stack then sends
    super-frames through it); a received super-frame (GsoFrame) meets a lossy
    impairment as its segments (scapy counts them), IPv6's too (TSO6,
    issue 12), each with its own payload length."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    from tcpio._fast.gso import gso_frame

    class TsoDevice(FakeDevice):
        gso_max_size = 0xFFFF
        tx_csum_partial = True

    def super_frame(l3) -> bytes:
        pkt = Ether(dst="02:00:00:00:00:09") / l3 / TCP(flags="A") / (b"s" * (1000 * 8))
        return gso_frame(bytes(pkt), 1000, 8, False)

    v4 = super_frame(IP(src="10.0.0.1", dst="10.0.0.2"))
    v6 = super_frame(IPv6(src="fd00::1", dst="fd00::2"))

    async def main():
        loop = asyncio.get_running_loop()
        inner = TsoDevice()
        imp_in = Impairment(loss=0.3, seed=5)
        dev = ImpairedDevice(inner, None, imp_in)
        assert (dev.gso_max_size, dev.tx_csum_partial) == (0xFFFF, True)
        rx = Recorder(loop)
        dev.start(loop, rx)
        inner.on_frames([v4, v6])
        await asyncio.sleep(0.1)
        return imp_in, rx

    imp_in, rx = run_virtual(main)
    assert imp_in.stats["frames"] == 8 + 8
    got = [Ether(f) for f in rx.frames]
    assert 0 < imp_in.stats["lost"] and len(got) == 16 - imp_in.stats["lost"]
    segs = [p for p in got if IP in p]
    assert segs and all(len(p[TCP].payload) == 1000 for p in segs)
    segs6 = [p for p in got if IPv6 in p]
    assert segs6 and all(len(p[TCP].payload) == 1000 == p[IPv6].plen - 20 for p in segs6)
