"""The receive batch's compiled loops (issue 11), each twin against the rule
it replaces: ``rx.rx_run`` against ``rx_classify`` called frame by frame,
``rx.BatchEnd`` against the batch-end contract (NetHost.defer_to_batch_end:
once per owner, in the order first asked, what the work defers runs after
it), ``wire.line_ready`` against ``Impairment.pass_mtu`` applied to each frame
(what MemoryWire's push_batch did per frame before).  Both twins.
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from tcpio._fast.gso import GsoFrame
from tcpio.core.addr import ip_aton
from tcpio.devices.impair import Impairment

rx = twin_fixture("rx", "rx")
wire = twin_fixture("wire", "wire")

MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
MY, PEER = "10.0.0.2", "10.0.0.1"
LOCAL = {ip_aton(MY): 1}
BCASTS = {0xFFFFFFFF, ip_aton("10.0.0.255")}


def eth(pkt) -> bytes:
    return bytes(Ether(dst=MAC, src=PEER_MAC) / pkt)


def scripted(results):
    """A classifier that answers ``results`` in turn (what a test may put in
    the host's rx_classify's place), recording the frames it saw."""
    seen = []

    def classify(frame, *args):
        seen.append(frame)
        rec = results[len(seen) - 1]
        if isinstance(rec, Exception):
            raise rec
        return rec

    return classify, seen


def drain(rx, classify, frames):
    """The host's use of rx_run: (pos, rec) of each frame it must deliver."""
    run = rx.RxRun()
    got = []
    while (rec := rx.rx_run(run, classify, frames, MAC, LOCAL, BCASTS, True, None, 1.0,
                            False, None, None)) is not False:
        got.append((run.pos, rec))
        run.pos += 1
    return got, run


def test_rx_run_stops_at_each_frame_the_host_delivers_and_counts_the_rest(rx):
    tup = (17, 1, 2, 3, 4, b"", 34, 42)
    classify, seen = scripted([True, tup, True, rx.RX_TAKEN6, None, True])
    frames = [bytes([i]) * 60 for i in range(6)]
    got, run = drain(rx, classify, frames)
    assert got == [(1, tup), (4, None)]
    assert seen == frames                       # each frame classified once, in order
    assert (run.pos, run.taken, run.taken6) == (6, 3, 1)


def test_rx_run_gives_what_rx_classify_gives_frame_by_frame(rx):
    frames = [eth(IP(src=PEER, dst=MY) / UDP(sport=1, dport=53) / b"q"),
              eth(IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="S")),
              bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / ARP()),
              b"\x00" * 20,
              eth(IP(src=PEER, dst=MY) / UDP(sport=2, dport=53) / b"r")]
    expect = [(i, rx.rx_classify(f, MAC, LOCAL, BCASTS, True, None, 1.0, False, None, None))
              for i, f in enumerate(frames)]
    got, run = drain(rx, rx.rx_classify, frames)
    assert got == expect
    assert (run.taken, run.taken6) == (0, 0)


def test_rx_run_leaves_pos_at_the_frame_whose_classification_raised(rx):
    classify, _ = scripted([True, True, RuntimeError("in the fast path"), True])
    run = rx.RxRun()
    frames = [b"a" * 60, b"b" * 60, b"c" * 60, b"d" * 60]
    with pytest.raises(RuntimeError):
        rx.rx_run(run, classify, frames, MAC, LOCAL, BCASTS, True, None, 1.0, False, None, None)
    assert (run.pos, run.taken) == (2, 2)
    run.pos += 1            # the host counts it and goes on with the next
    assert rx.rx_run(run, classify, frames, MAC, LOCAL, BCASTS, True, None, 1.0, False, None,
                     None) is False
    assert (run.pos, run.taken) == (4, 3)


def test_batch_end_runs_each_owner_once_in_the_order_first_asked(rx):
    end = rx.BatchEnd()
    log = []

    def fn(owner, now):
        log.append((owner, now))

    assert end.defer(fn, "a") is False          # outside a batch: the caller acts now
    end.pending = {}
    for owner in ("a", "b", "a", "c", "b"):
        assert end.defer(fn, owner) is True
    end.run(2.0, lambda exc: True)
    assert log == [("a", 2.0), ("b", 2.0), ("c", 2.0)]
    assert end.pending == {}


def test_batch_end_work_deferred_by_the_work_runs_after_it_once(rx):
    """What a deferred call defers: a new owner runs after the others; an
    owner still waiting is not added again; one that already ran runs again
    (its key left before its call), all in one run."""
    end = rx.BatchEnd()
    end.pending = {}
    log = []

    def fn(owner, now):
        log.append(owner)
        if owner == "a" and log.count("a") == 1:
            end.defer(fn, "c")      # still waiting: no second run
            end.defer(fn, "d")      # new: after c
            end.defer(fn, "a")      # ran already: once more, after d

    for owner in ("a", "b", "c"):
        end.defer(fn, owner)
    end.run(1.0, lambda exc: True)
    assert log == ["a", "b", "c", "d", "a"]


def test_batch_end_errors_go_to_on_error_which_says_whether_to_raise(rx):
    end = rx.BatchEnd()
    log = []
    errors = []

    def fn(owner, now):
        if owner == "bad":
            raise ValueError(owner)
        log.append(owner)

    end.pending = {}
    for owner in ("x", "bad", "y"):
        end.defer(fn, owner)
    end.run(1.0, lambda exc: errors.append(exc) and False)
    assert log == ["x", "y"] and [str(e) for e in errors] == ["bad"]
    end.pending = {}
    for owner in ("x", "bad", "y"):
        end.defer(fn, owner)
    with pytest.raises(ValueError):
        end.run(1.0, lambda exc: True)          # debug: raised, the rest not run
    assert log == ["x", "y", "x"]


def test_line_ready_is_pass_mtu_for_each_plain_frame(wire):
    big = GsoFrame(b"G" * 3000)
    big.gso_size, big.gso_segs = 1000, 3
    frames = [b"a" * 100, bytearray(b"b" * 1514), b"c" * 1515, big, memoryview(b"d" * 60),
              bytearray(b"e" * 2000)]
    ref = Impairment(mtu=1514)
    expect = []
    for f in frames:
        if type(f) is GsoFrame:
            expect.append(f)
        elif (data := ref.pass_mtu(f)) is not None:
            expect.append(data)
    ready: list = [b"before"]
    count, over, nbytes = wire.line_ready(frames, ready, 1514)
    assert ready == [b"before", *expect]
    assert [type(f) for f in ready[1:]] == [type(f) for f in expect]    # bytes, not views
    assert big.csum_valid                       # trusted across, as push marks it
    st = ref.stats
    assert (count, over, nbytes) == (st["frames"], st["mtu_drops"], st["bytes"])
    assert wire.line_ready([b"x" * 9000], ready, None) == (1, 0, 9000)   # no MTU: no limit


def test_wake_socks_wakes_each_in_order_and_goes_on_past_a_failing_one(rx):
    log = []
    errors = []

    class Sk:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def wakeup(self):
            log.append(self.name)
            if self.fail:
                raise RuntimeError(self.name)

    class NoGlue:           # a sock nobody attached a wakeup to
        wakeup = None

    socks = [Sk("a"), NoGlue(), Sk("b", fail=True), object(), Sk("c")]
    rx.wake_socks(socks, lambda sk, exc: errors.append((sk.name, str(exc))))
    assert log == ["a", "b", "c"]
    assert errors == [("b", "b")]
