"""Impairment: each knob does what it says, counted, and deterministic per seed."""

from __future__ import annotations

import pytest

from tcpio.devices.impair import Impairment

FRAME = bytes(range(100))


def run(imp: Impairment, n: int = 1000, gap: float = 0.001) -> list[list[tuple[float, bytes]]]:
    return [imp.fate(FRAME, i * gap) for i in range(n)]


def test_noop_passes_everything_unchanged_and_on_time():
    imp = Impairment()
    assert imp.is_noop()
    for i, fates in enumerate(run(imp, 50)):
        assert fates == [(i * 0.001, FRAME)]
    assert imp.stats["delivered"] == 50 and imp.dropped == 0


def test_loss_counts_match_empty_fates_and_rate_is_plausible():
    imp = Impairment(loss=0.1, seed=3)
    fates = run(imp, 5000)
    lost = sum(1 for f in fates if not f)
    assert lost == imp.stats["lost"] == imp.dropped
    assert 350 < lost < 650          # 10% of 5000, generous binomial bounds


def test_same_seed_same_fates_other_seed_differs():
    knobs = {"loss": 0.1, "delay": 0.01, "jitter": 0.005, "reorder": 0.1, "duplicate": 0.05, "corrupt": 0.05}
    a = run(Impairment(seed=7, **knobs))
    b = run(Impairment(seed=7, **knobs))
    c = run(Impairment(seed=8, **knobs))
    assert a == b
    assert a != c


def test_delay_and_jitter_bounds():
    imp = Impairment(delay=0.05, jitter=0.01, seed=1)
    for i, fates in enumerate(run(imp, 500)):
        (when, frame), = fates
        sent = i * 0.001
        assert sent + 0.04 - 1e-12 <= when <= sent + 0.06 + 1e-12
        assert frame == FRAME


def test_jitter_never_delivers_before_sending():
    imp = Impairment(delay=0.0, jitter=0.01, seed=2)
    for i, fates in enumerate(run(imp, 300)):
        assert fates[0][0] >= i * 0.001


def test_reorder_holds_frames_back_so_later_ones_overtake():
    imp = Impairment(reorder=0.2, reorder_delay=0.01, seed=4)
    fates = run(imp, 1000)
    arrivals = [f[0][0] for f in fates]
    held = sum(1 for i, t in enumerate(arrivals) if t > i * 0.001)
    assert held == imp.stats["reordered"] > 0
    # Arrival order is no longer the sending order.
    assert arrivals != sorted(arrivals)


def test_duplicate_gives_two_identical_entries():
    imp = Impairment(duplicate=0.3, seed=5)
    fates = run(imp, 1000)
    doubles = [f for f in fates if len(f) == 2]
    assert len(doubles) == imp.stats["duplicated"] > 0
    assert all(f[0] == f[1] for f in doubles)
    assert imp.stats["delivered"] == 1000 + len(doubles)


def test_corrupt_flips_exactly_one_bit():
    imp = Impairment(corrupt=0.5, seed=6)
    corrupted = 0
    for fates in run(imp, 400):
        (_, frame), = fates
        diff = sum((a ^ b).bit_count() for a, b in zip(frame, FRAME))
        assert len(frame) == len(FRAME) and diff in (0, 1)
        corrupted += diff
    assert corrupted == imp.stats["corrupted"] > 0


def test_mtu_drops_oversized_frames_only():
    imp = Impairment(mtu=60)
    assert imp.fate(b"x" * 60, 0.0) == [(0.0, b"x" * 60)]
    assert imp.fate(b"x" * 61, 0.0) == []
    assert imp.stats["mtu_drops"] == 1


def test_pass_mtu_is_fate_for_a_link_with_only_an_mtu():
    # DelayLine's shortcut for every MemoryWire (its MTU the only knob):
    # the same frames delivered now, the same dropped, the same counts
    sizes = [0, 1, 59, 60, 61, 60, 1500, 60]
    by_fate, by_pass = Impairment(mtu=60), Impairment(mtu=60)
    for n in sizes:
        for frame in (b"x" * n, bytearray(b"y" * n)):
            fates = by_fate.fate(frame, 1.0)
            got = by_pass.pass_mtu(frame)
            assert [data for _, data in fates] == ([] if got is None else [got])
            assert got is None or type(got) is bytes
    assert by_pass.stats == by_fate.stats
    assert by_pass.stats["mtu_drops"] == 4 and by_pass.dropped == 4   # 61 and 1500, twice


def test_rate_serialises_back_to_back_frames():
    # 1000-byte frames at 8 Mbit/s take 1 ms each; ten sent at once leave 1 ms apart.
    imp = Impairment(rate=8e6)
    times = [imp.fate(b"\0" * 1000, 0.0)[0][0] for _ in range(10)]
    assert times == pytest.approx([0.001 * (i + 1) for i in range(10)])
    # After the link drained, a new frame is not delayed by old history.
    assert imp.fate(b"\0" * 1000, 1.0)[0][0] == pytest.approx(1.001)


@pytest.mark.parametrize("kw", [{"loss": 1.5}, {"corrupt": -0.1}, {"delay": -1},
                                {"rate": 0}])
def test_bad_knobs_rejected(kw):
    with pytest.raises(ValueError):
        Impairment(**kw)
