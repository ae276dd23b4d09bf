"""A TCP super-segment in (issue 12): with TSO negotiated on a TAP the
kernel hands over its data up to 64 KiB per frame (the device completes the
checksum), and TCP must take one as the run of segments it stands for, as
Linux takes GRO's aggregate: the bytes queued in order, the ACK decided once
by bytes (more than one full segment unacknowledged: ACK now, RFC 1122
4.2.3.2, not the delayed-ACK timer a lone small segment waits for), SACK
blocks covering the whole of an out-of-order one, rcv_mss (the sender's MSS
as we guess it) not taken from the aggregate's size.  Marked with the
segments it stands for (a GsoFrame: skb_shinfo's gso_segs/gso_size, which
the TAP reads from the kernel's virtio header), it counts as them in segs_in
and gives rcv_mss its segment size (tcp_measure_rcv_mss), on the fast path
and the layered one; a device-checked one (csum_valid) is not summed again.
Both builds run these.
"""

from __future__ import annotations

import pytest
from hostutil import MAC, PEER_MAC
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether
from test_host_ack_coalescing_rules import MSS, Flow, acks, sack_blocks

from tcpio._fast.gso import GsoFrame, gso_frame

BIG = 40 * MSS


def answers(big: bool, n: int = 40) -> list[tuple[int, int, int]]:
    """(ack, window, sack blocks) of what the host sends for ``n`` full
    segments' worth of data arriving in one batch, as one super-segment or as
    ``n`` segments, then for the application reading it all, then for the
    timers.  Full: as big as our MSS allows, as a bulk sender (the kernel
    included) sends them; the super-segment carries no segment size, so TCP
    takes our advertised MSS as the peer's (an aggregate marked with its
    gso_size gives the segment size: below)."""
    f = Flow(big_window=True, tcp_delack_min=0.04)
    f.past_quick_ack()
    size = f.sk.advmss
    pkts = f.data(1, size=n * size) if big else f.data(n, size=size)
    out = f.receive(pkts, advance=0.5)
    assert f.sk.recvmsg(1 << 20) == b"d" * (n * size)
    out += [Ether(x) for _, x in f.h.take_output()]
    out += f.poll(f.now + 0.5)
    return [(x["TCP"].ack, x["TCP"].window, len(sack_blocks(x))) for x in out
            if x.haslayer("TCP")]


def test_a_super_segment_is_answered_as_the_segments_it_stands_for_in_one_batch():
    want = answers(big=False)
    assert want                                 # the reference does ACK
    assert answers(big=True) == want


def test_a_super_segment_beyond_one_mss_is_acked_without_waiting_when_read():
    f = Flow(big_window=True, tcp_delack_min=0.04)
    f.past_quick_ack()
    start = f.seq
    f.receive(f.data(1, size=BIG), advance=0.5)
    f.sk.recvmsg(1 << 20)
    assert acks([Ether(x) for _, x in f.h.take_output()]) == [start + BIG]


def test_the_same_bytes_as_a_small_lone_segment_wait_for_the_delayed_ack():
    """The reference: one segment of at most one MSS still waits."""
    f = Flow(big_window=True, tcp_delack_min=0.04)
    f.past_quick_ack()
    assert acks(f.receive(f.data(1, size=MSS), advance=0.5)) == []


def test_a_super_segment_does_not_raise_the_mss_guess_past_advmss():
    f = Flow(big_window=True)
    f.past_quick_ack()
    f.receive(f.data(1, size=BIG), advance=0.5)
    assert f.sk.rcv_mss <= f.sk.advmss


def test_an_out_of_order_super_segment_is_sacked_whole_at_once():
    f = Flow(big_window=True)
    f.past_quick_ack()
    hole = f.seq
    f.seq += MSS
    out = f.receive(f.data(1, size=BIG), advance=0.5)
    dup = [x for x in out if x.haslayer("TCP")]
    assert [x["TCP"].ack for x in dup] == [hole]
    assert sack_blocks(dup[0]) == [(hole + MSS, hole + MSS + BIG)]
    # the hole filled: everything is acknowledged in one ACK
    f.seq = hole
    out = f.receive(f.data(1), advance=0.01)
    assert acks(out) == [hole + MSS + BIG]


# --- the segments an aggregate stands for (skb_shinfo's gso_segs/gso_size) ---------------

def aggregate(f: Flow, n: int, size: int, csum_valid: bool = False) -> GsoFrame:
    """GRO's aggregate of the ``n`` in-order segments of ``size`` bytes scapy
    builds from the flow's sequence: one frame with their headers' fields
    and all their bytes, marked as standing for ``n`` segments of ``size``
    (what rx.vnet_rx reads from the kernel's virtio header)."""
    segs = f.data(n, size=size)
    first = segs[0]
    payload = b"".join(bytes(s[TCP].payload) for s in segs)
    assert len(payload) == n * size
    frame = bytes(Ether(dst=MAC, src=PEER_MAC) / f.pkt(payload, seq=first[TCP].seq))
    out = gso_frame(frame, size, n, False)
    out.csum_valid = csum_valid
    return out


def take(f: Flow, frames: list, advance: float = 0.0) -> list[Ether]:
    f.now += advance
    f.h.receive_batch(1, frames, f.now)
    return [Ether(x) for _, x in f.h.take_output()]


@pytest.mark.parametrize("in_order", [True, False])
def test_an_aggregate_counts_as_the_segments_it_stands_for(in_order):
    """tcp_segs_in: max(1, gso_segs), on the fast path (in order) and the
    layered one (out of order); the reference is the same bytes as scapy's
    segments, one frame each."""
    counts = []
    for big in (False, True):
        f = Flow(big_window=True)
        f.past_quick_ack()
        if not in_order:
            f.seq += MSS
        before = f.sk.segs_in
        if big:
            take(f, [aggregate(f, 12, MSS)], advance=0.1)
        else:
            f.receive(f.data(12), advance=0.1)
        counts.append(f.sk.segs_in - before)
    assert counts == [12, 12]


def test_the_mss_guess_is_the_aggregates_segment_size():
    """tcp_measure_rcv_mss reads gso_size: 20 segments of 700 bytes make a
    guess of 700, not the aggregate's 14000 cut down to our advmss."""
    ref = Flow(big_window=True)
    ref.receive(ref.data(20, size=700), advance=0.1)
    f = Flow(big_window=True)
    take(f, [aggregate(f, 20, 700)], advance=0.1)
    assert ref.sk.rcv_mss == f.sk.rcv_mss == 700 < f.sk.advmss


def test_after_an_aggregate_two_small_segments_are_more_than_one_full_frame():
    """__tcp_ack_snd_check's "more than one full frame received" compares with
    rcv_mss: with the guess from gso_size (700), 2 x 400 bytes are ACKed at
    once, as after the same data in 700-byte segments; with the aggregate's
    size as the guess they would wait for the delayed-ACK timer."""
    answers = []
    for big in (False, True):
        f = Flow(big_window=True, tcp_delack_min=0.04)
        if big:
            take(f, [aggregate(f, 20, 700)], advance=0.1)
        else:
            f.receive(f.data(20, size=700), advance=0.1)
        f.sk.recvmsg(1 << 20)
        f.poll(f.now + 1.0)
        f.sk.quick = 0                  # past quick-ACK mode: the byte rule decides
        answers.append(acks(f.receive(f.data(2, size=400), advance=0.5)))
        assert answers[-1] == [f.seq]
    assert answers[0] == answers[1]


def test_a_device_checked_aggregate_is_not_summed_again_an_unchecked_one_is():
    """csum_valid (VIRTIO_NET_HDR_F_DATA_VALID / a completed NEEDS_CSUM):
    CHECKSUM_UNNECESSARY, the TCP checksum is trusted; without it a wrong one
    is a counted drop."""
    got = []
    for valid in (False, True):
        f = Flow(big_window=True)
        f.past_quick_ack()
        agg = aggregate(f, 10, MSS, csum_valid=valid)
        bad = bytearray(agg)
        bad[14 + 20 + 16] ^= 0xFF                   # the TCP checksum field
        frame = gso_frame(bytes(bad), MSS, 10, False)
        frame.csum_valid = valid
        take(f, [frame], advance=0.1)
        got.append((len(f.sk.recvmsg(1 << 20)), f.h.mib["InCsumErrors"]))
    assert got == [(0, 1), (10 * MSS, 0)]
