"""A TCP super-segment in (issue 12): with TSO negotiated on a TAP the
kernel hands over its data up to 64 KiB per frame (the device completes the
checksum), and TCP must take one as the run of segments it stands for, as
Linux takes GRO's aggregate: the bytes queued in order, the ACK decided once
by bytes (more than one full segment unacknowledged: ACK now, RFC 1122
4.2.3.2, not the delayed-ACK timer a lone small segment waits for), SACK
blocks covering the whole of an out-of-order one, rcv_mss (the sender's MSS
as we guess it) not taken from the aggregate's size.  Both builds run these.
"""

from __future__ import annotations

from scapy.layers.l2 import Ether
from test_host_ack_coalescing_rules import MSS, Flow, acks, sack_blocks

BIG = 40 * MSS


def answers(big: bool, n: int = 40) -> list[tuple[int, int, int]]:
    """(ack, window, sack blocks) of what the host sends for ``n`` full
    segments' worth of data arriving in one batch, as one super-segment or as
    ``n`` segments, then for the application reading it all, then for the
    timers.  Full: as big as our MSS allows, as a bulk sender (the kernel
    included) sends them; the super-segment carries no segment size, so TCP
    takes our advertised MSS as the peer's (Linux reads GRO's gso_size)."""
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
