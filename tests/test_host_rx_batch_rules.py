"""A receive batch on a real Host, segments built by scapy (issue 11: the
batch's per-frame loop compiled, ``rx.rx_run``, and its end, ``rx.BatchEnd``).

What the batch must keep, frame by frame, whatever runs the loop:
- every frame is processed, in order, after a frame the host delivers
  itself (the layered path) as after one the fast path took;
- a frame whose processing raises is counted as received and dropped
  (CoreExceptions), and the batch goes on with the next frame;
- the batch's end (the one coalesced ACK) runs after all of them, and the
  wakeups are taken after that;
- the counters are those of the layered path for the same frames.
Both builds run these (the CI's interpreted subset takes tests/test_host_*).
"""

from __future__ import annotations

import pytest
from hostutil import MY, PEER
from scapy.layers.inet import IP, UDP
from test_host_ack_coalescing_rules import MSS, Flow
from test_host_ack_coalescing_rules import acks as pure_acks

from tcpio.core import host as host_mod


def fresh_flow() -> Flow:
    """A connected peer past quick-ACK mode: from here on two full segments
    ask for an ACK, which waits for the batch's end."""
    f = Flow()
    f.past_quick_ack()
    return f


def moved(before: dict, after: dict, *names: str) -> dict:
    return {n: after.get(n, 0) - before.get(n, 0) for n in names}


@pytest.mark.allow_core_exceptions("a wakeup made to raise once, to check the batch goes on")
def test_a_frame_that_raises_mid_batch_is_counted_and_the_batch_goes_on():
    f = fresh_flow()
    h = f.h
    h.debug = False
    real = h.schedule_wakeup
    calls = []

    def failing_once(sk):
        calls.append(sk)
        if len(calls) == 2:                     # the second segment's wakeup
            raise RuntimeError("injected")
        real(sk)

    h.schedule_wakeup = failing_once            # type: ignore[method-assign]
    before = h.mib.snapshot()
    out = f.receive(f.data(3), advance=0.5)
    after = h.mib.snapshot()
    assert moved(before, after, "InReceives", "InDelivers", "InSegs", "CoreExceptions") == {
        "InReceives": 3, "InDelivers": 3, "InSegs": 3, "CoreExceptions": 1}
    # the third segment was processed after the failure, and the batch's end
    # still sent its one ACK, for all three
    assert f.sk.recvmsg(1 << 20) == b"d" * (3 * MSS)
    assert pure_acks(out) == [f.seq]


def test_frames_after_one_the_host_delivers_itself_still_take_the_fast_path():
    """data, a UDP datagram to a closed port (delivered by the host: port
    unreachable), data: both data segments are read, and the counters are
    what the layered path alone counts for the same batch."""
    results = {}
    for name, classify in (("fast", host_mod.rx_classify), ("layered", lambda *a: None)):
        saved = host_mod.rx_classify
        host_mod.rx_classify = classify
        try:
            f = fresh_flow()
            before = f.h.mib.snapshot()
            d1, d2 = f.data(2)
            udp = IP(src=PEER, dst=MY) / UDP(sport=5000, dport=9) / b"x"
            out = f.receive([d1, udp, d2], advance=0.5)
            after = f.h.mib.snapshot()
        finally:
            host_mod.rx_classify = saved
        results[name] = (moved(before, after, "InReceives", "InDelivers", "InSegs",
                               "UdpNoPorts", "OutSegs"),
                         f.sk.recvmsg(1 << 20), pure_acks(out), f.seq)
    fast, layered = results["fast"], results["layered"]
    assert fast == layered
    counts, data, acks, seq = fast
    assert counts["InReceives"] == 3 and counts["UdpNoPorts"] == 1
    assert data == b"d" * (2 * MSS) and acks == [seq]


def test_wakeups_of_a_batch_are_taken_once_after_its_end():
    """Three segments for one sock: one wakeup, which the driver takes after
    the batch (its ACK already out), in the order first marked."""
    f = fresh_flow()
    h = f.h
    h.take_wakeups()
    out = f.receive(f.data(3), advance=0.5)
    assert pure_acks(out) == [f.seq]
    assert h.take_wakeups() == [f.sk]
    assert h.take_wakeups() == []


def host_rx_calls(f: Flow, pkts: list, advance: float = 0.5) -> list[str]:
    """The host's receive-path Python functions ``f.receive(pkts)`` entered
    (the batch's loop itself is rx.rx_batch: compiled, or rx_py's twin)."""
    import sys

    names = {"receive_batch", "_rx_batch", "_rx_one", "_rx_fault", "_rx_deliver", "_rx_slow"}
    seen: list[str] = []

    def profile(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_filename == host_mod.__file__ \
                and code.co_name in names:
            seen.append(code.co_name)

    sys.setprofile(profile)
    try:
        f.receive(pkts, advance=advance)
    finally:
        sys.setprofile(None)
    return seen


def test_a_batch_the_fast_path_takes_whole_comes_back_to_no_host_code():
    """Three in-order data segments: rx_classify's TCP fast path takes each
    whole, so the host's own delivery (_rx_one and the layered path behind
    it) never runs; a UDP datagram to a closed port in the middle is the
    one frame handed back to it (issue 12: a lone echo frame's way in runs
    no Python frame of the host's)."""
    f = fresh_flow()
    assert host_rx_calls(f, f.data(3)) == []
    d1, d2 = f.data(2)
    udp = IP(src=PEER, dst=MY) / UDP(sport=5000, dport=9) / b"x"
    assert host_rx_calls(f, [d1, udp, d2]) == ["_rx_one", "_rx_deliver"]
    assert f.sk.recvmsg(1 << 20) == b"d" * (5 * MSS)


def test_an_exception_raised_out_of_a_batch_leaves_the_host_outside_it():
    """With ``debug`` a failure inside the fast path is raised out of the
    batch; the batch's state is undone all the same (the host no longer
    busy, nothing more deferred to a batch's end, the segment that failed
    counted as received, as the layered path counts it before failing), and
    the next batch is read and ACKed as usual."""
    f = fresh_flow()
    h = f.h
    h.debug = True
    real = h.schedule_wakeup

    def failing(sk):
        raise RuntimeError("injected")

    h.schedule_wakeup = failing                 # type: ignore[method-assign]
    before = h.mib.snapshot()
    with pytest.raises(RuntimeError, match="injected"):
        f.receive(f.data(2), advance=0.5)
    assert moved(before, h.mib.snapshot(), "InReceives", "InSegs") == {"InReceives": 1,
                                                                      "InSegs": 1}
    assert not h._busy
    assert h.defer_to_batch_end(lambda owner, now: None, f) is False
    h.schedule_wakeup = real                    # type: ignore[method-assign]
    h.take_output()
    h.take_wakeups()
    f.seq = f.sk.rcv_nxt                        # (the second segment was never read)
    out = f.receive(f.data(2), advance=0.5)
    assert pure_acks(out) == [f.seq]
    assert h.take_wakeups() == [f.sk]
