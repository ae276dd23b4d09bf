"""Receive queueing (tcp_data_queue, tcp_ofo_queue, tcp_data_queue_ofo, tcp_fin
in net/ipv4/tcp_input.c): in-order, duplicate, partly old, out-of-order and
out-of-window data, the FIN in and out of order, and the ACKs each one gets
(RFC 9293 3.10.7.4, RFC 5681 4.2, RFC 2018, RFC 2883).

The stack is the passive side; the peer sends plain segments (with SACK
permitted where a test needs SACK), so every ACK out can be checked exactly.
"""

from __future__ import annotations

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
)

from .helpers import ACK, FIN, PSH, Conn, TcpOptions, passive_open

SACK = TcpOptions(sack_ok=True)


def _acks(c: Conn) -> list[tuple[int, int, tuple]]:
    """(seq, ack, SACK blocks) of each pure ACK the stack sent."""
    out = []
    for s in c.recv():
        assert s.flags == ACK and not s.payload, s
        out.append((s.seq, s.ack, tuple(s.opts.sack_blocks)))
    return out


def _delayed(c: Conn) -> Conn:
    """Nothing goes at once (tcp_fin's pingpong mode delays the ACK of a FIN
    that moves to CLOSE-WAIT); then the delayed-ACK timer fires."""
    assert c.recv() == []
    c.host.advance(c.host.now + c.host.settings.tcp_delack_min)
    return c


def _read_all(c: Conn) -> bytes:
    return c.sk.recvmsg(1 << 20) or b""


# --- FIN and the out-of-order queue -----------------------------------------------
def test_fin_beyond_a_hole_is_delivered_when_the_hole_fills():
    """RFC 9293 3.10.7.4 eighth: the FIN is processed once everything before
    it has arrived; it then takes one sequence number and moves to CLOSE-WAIT."""
    c = passive_open()
    s0 = c.snd
    c.send(b"B" * 10, seq=s0 + 10, flags=ACK | FIN)
    assert _acks(c) == [(c.rcv, s0, ())]           # the hole is reported at once
    assert c.sk.state == TCP_ESTABLISHED and not c.sk.rcv_eof
    c.send(b"A" * 10, seq=s0)
    assert _acks(c) == [(c.rcv, s0 + 21, ())]      # data and FIN acknowledged
    assert c.sk.state == TCP_CLOSE_WAIT
    assert _read_all(c) == b"A" * 10 + b"B" * 10
    assert c.sk.rcv_eof


def test_bare_fin_beyond_a_hole_is_delivered_when_the_hole_fills():
    c = passive_open()
    s0 = c.snd
    c.send(seq=s0 + 10, flags=ACK | FIN)
    assert _acks(c) == [(c.rcv, s0, ())]
    assert c.sk.state == TCP_ESTABLISHED
    c.send(b"A" * 10, seq=s0)
    assert _acks(c) == [(c.rcv, s0 + 11, ())]
    assert c.sk.state == TCP_CLOSE_WAIT
    assert _read_all(c) == b"A" * 10 and c.sk.rcv_eof


def test_fin_after_two_holes_waits_for_both():
    c = passive_open()
    s0 = c.snd
    c.send(b"C" * 5, seq=s0 + 20, flags=ACK | FIN)
    c.send(b"B" * 5, seq=s0 + 10)
    c.recv()
    c.send(b"A" * 10, seq=s0)                      # fills the first hole only
    assert _acks(c) == [(c.rcv, s0 + 15, ())]
    assert c.sk.state == TCP_ESTABLISHED and not c.sk.rcv_eof
    c.send(b"b" * 5, seq=s0 + 15)
    assert _acks(c) == [(c.rcv, s0 + 26, ())]
    assert c.sk.state == TCP_CLOSE_WAIT
    assert _read_all(c) == b"A" * 10 + b"B" * 5 + b"b" * 5 + b"C" * 5


def test_in_order_fin_moves_to_close_wait_and_its_ack_is_delayed():
    """RFC 9293 3.10.7.4 eighth, Linux tcp_fin: ESTABLISHED -> CLOSE-WAIT, and
    inet_csk_enter_pingpong_mode: the ACK of the FIN is delayed, not quick
    (the kernel over loopback, measured: FIN, then FIN-ACK from the server
    closing 0.3 ms later, then ACK; its lone ACK only when the server waits
    longer); the delayed-ACK timer sends it when the application keeps the
    connection open: after TCP_ATO_MIN once data has arrived (upstream
    packetdrill's tcp_basic_server.pkt: +.04)."""
    c = passive_open()
    s0 = c.snd
    c.send(b"xy", flags=ACK | FIN)
    assert _acks(c) == []
    assert c.sk.state == TCP_CLOSE_WAIT and c.sk.rcv_nxt == s0 + 3
    assert _read_all(c) == b"xy" and c.sk.rcv_eof
    assert c.host.woken and c.host.woken[-1] is c.sk
    t0 = c.host.now
    c.host.advance(t0 + c.host.settings.tcp_delack_min / 2)
    assert _acks(c) == []                          # (data came: not the next tick)
    c.host.advance(t0 + c.host.settings.tcp_delack_min)
    assert _acks(c) == [(c.rcv, s0 + 3, ())]


def test_fin_without_any_data_before_it_is_acked_at_the_next_tick():
    """Linux's icsk_ack.ato is 0 until data arrives (tcp_event_data_recv sets
    TCP_ATO_MIN), so the delayed ACK of a FIN on a connection that never
    carried data goes at the next jiffy, 1 ms (upstream packetdrill's
    close-remote-fin-then-close.pkt expects it at +0 within its 4 ms
    tolerance; the kernel here sent it 0.4-0.8 ms later), not after 40 ms."""
    c = passive_open()
    s0 = c.snd
    t0 = c.host.now
    c.send(flags=ACK | FIN)
    assert c.sk.state == TCP_CLOSE_WAIT and _acks(c) == []
    c.host.advance(t0 + 0.0009)
    assert _acks(c) == []
    c.host.advance(t0 + 0.001)
    assert _acks(c) == [(c.rcv, s0 + 1, ())]


def test_close_in_close_wait_carries_the_delayed_ack_of_the_fin():
    """The server closing on EOF: its FIN acknowledges the peer's FIN, one
    segment (FIN, FIN-ACK, ACK), and no lone ACK follows from the timer."""
    c = passive_open()
    s0 = c.snd
    c.send(flags=ACK | FIN)
    assert _acks(c) == []
    c.sk.close()
    out = c.recv()
    assert [(s.flags, s.ack) for s in out] == [(ACK | FIN, s0 + 1)]
    c.host.advance(c.host.now + c.host.settings.tcp_delack_min)
    assert c.recv() == []


def test_fin_in_fin_wait1_is_simultaneous_close_closing():
    """RFC 9293 3.10.7.4 eighth: FIN-WAIT-1, our FIN not yet acked -> CLOSING,
    and the peer's FIN is acknowledged at once."""
    c = passive_open()
    c.sk.shutdown(1)
    fin = c.recv()
    assert [s.flags & FIN for s in fin] == [FIN]
    assert c.sk.state == TCP_FIN_WAIT1
    c.send(flags=ACK | FIN)                        # acks nothing of ours
    assert _acks(c) == [(c.rcv + 1, c.snd, ())]
    assert c.sk.state == TCP_CLOSING


def test_fin_in_fin_wait2_acks_and_enters_time_wait():
    c = passive_open()
    c.sk.shutdown(1)
    c.recv()
    c.send(ack=c.rcv + 1)
    c.rcv += 1
    assert c.sk.state == TCP_FIN_WAIT2
    c.send(flags=ACK | FIN)
    assert _acks(c) == [(c.rcv, c.snd, ())]
    # the full sock hands over to a time-wait entry (tcp_time_wait)
    assert [r.state for r in c.host.tcp.connections()
            if r.remote.endswith(str(c.peer.port))] == ["TIME-WAIT"]


def test_in_order_fin_purges_data_queued_beyond_it():
    """Linux tcp_fin: anything out of order after the FIN can never be
    delivered; the queue is purged and no SACK block is reported any more."""
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"Z" * 10, seq=s0 + 50)
    assert _acks(c) == [(c.rcv, s0, ((s0 + 50, s0 + 60),))]
    c.send(b"A" * 10, flags=ACK | FIN)
    assert _acks(_delayed(c)) == [(c.rcv, s0 + 11, ())]
    assert not c.sk.ofo and c.sk.ofo_bytes == 0 and not c.sk.sack_blocks
    assert _read_all(c) == b"A" * 10


# --- out-of-order data -------------------------------------------------------------
def test_out_of_order_segment_is_queued_and_sacked_in_an_immediate_dupack():
    """RFC 5681 4.2: an out-of-order segment gets an immediate duplicate ACK;
    RFC 2018 4: its first SACK block is that segment."""
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"B" * 10, seq=s0 + 10)
    assert _acks(c) == [(c.rcv, s0, ((s0 + 10, s0 + 20),))]
    assert c.sk.readable() == 0 and c.sk.ofo_bytes == 10
    assert c.host.mib["TCPOFOQueue"] == 1


def test_filling_the_hole_delivers_everything_contiguous_and_clears_sack():
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"C" * 10, seq=s0 + 20)
    c.send(b"B" * 10, seq=s0 + 10)
    assert _acks(c)[-1] == (c.rcv, s0, ((s0 + 10, s0 + 30),))
    c.send(b"A" * 10, seq=s0)
    assert _acks(c) == [(c.rcv, s0 + 30, ())]
    assert _read_all(c) == b"A" * 10 + b"B" * 10 + b"C" * 10
    assert not c.sk.ofo and c.sk.ofo_bytes == 0


def test_partly_filled_hole_keeps_reporting_the_rest():
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"C" * 10, seq=s0 + 30)
    c.recv()
    c.send(b"A" * 10, seq=s0)
    assert _acks(c) == [(c.rcv, s0 + 10, ((s0 + 30, s0 + 40),))]
    assert _read_all(c) == b"A" * 10
    assert c.sk.ofo_bytes == 10


def test_in_order_segment_overlapping_queued_data_delivers_each_byte_once():
    """tcp_ofo_queue: a queued segment that now starts before rcv_nxt
    contributes only its bytes past rcv_nxt, and the part the filler brought
    again is D-SACKed (RFC 2883; Linux's tcp_dsack_extend up to dsack_high,
    the rcv_nxt the filler reached)."""
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"0123456789", seq=s0 + 5)
    c.recv()
    c.send(b"abcdefgh", seq=s0)                    # up to s0 + 8, into the queued one
    assert _acks(c) == [(c.rcv, s0 + 15, ((s0 + 5, s0 + 8),))]
    assert _read_all(c) == b"abcdefgh" + b"3456789"


def test_queued_segment_wholly_covered_by_the_filler_is_dropped():
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"qq", seq=s0 + 3)
    c.send(b"zz", seq=s0 + 20)
    c.recv()
    c.send(b"A" * 10, seq=s0)                      # covers the first, not the second
    # the covered one D-SACKed (RFC 2883) ahead of the SACK block left
    assert _acks(c) == [(c.rcv, s0 + 10, ((s0 + 3, s0 + 5), (s0 + 20, s0 + 22)))]
    assert _read_all(c) == b"A" * 10
    assert c.sk.ofo_bytes == 2


def test_out_of_order_queue_beyond_its_memory_bound_drops_and_counts():
    c = passive_open(settings=Settings(tcp_ofo_max_bytes=15), syn_opts=SACK)
    s0 = c.snd
    c.send(b"B" * 10, seq=s0 + 10)
    c.recv()
    c.send(b"C" * 10, seq=s0 + 30)
    assert _acks(c) == [(c.rcv, s0, ((s0 + 10, s0 + 20),))]
    assert c.host.mib["TCPOFODrop"] == 1 and c.host.mib["TCPOFOQueue"] == 1
    assert c.sk.ofo_bytes == 10


def test_out_of_order_queue_bound_is_inclusive():
    c = passive_open(settings=Settings(tcp_ofo_max_bytes=20), syn_opts=SACK)
    s0 = c.snd
    c.send(b"B" * 10, seq=s0 + 10)
    c.send(b"C" * 10, seq=s0 + 30)
    assert c.host.mib["TCPOFODrop"] == 0 and c.sk.ofo_bytes == 20


# --- duplicates, partial overlaps, the window ------------------------------------------
def test_complete_duplicate_is_acked_at_once_with_a_dsack():
    """RFC 2883 4.1.1: a duplicate segment is reported in the first SACK block;
    RFC 9293: a duplicate gets an ACK (tcp_data_queue: DelayedACKLost)."""
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"A" * 10)
    c.recv()
    c.send(b"A" * 10, seq=s0)
    assert _acks(c) == [(c.rcv, s0 + 10, ((s0, s0 + 10),))]
    assert c.host.mib["DelayedACKLost"] == 1
    assert _read_all(c) == b"A" * 10


def test_duplicate_without_sack_is_acked_without_blocks():
    c = passive_open()
    s0 = c.snd
    c.send(b"A" * 10)
    c.recv()
    c.send(b"A" * 10, seq=s0)
    assert _acks(c) == [(c.rcv, s0 + 10, ())]


def test_dsack_off_sends_no_duplicate_block():
    c = passive_open(settings=Settings(tcp_dsack=0), syn_opts=SACK)
    s0 = c.snd
    c.send(b"A" * 10)
    c.recv()
    c.send(b"A" * 10, seq=s0)
    assert _acks(c) == [(c.rcv, s0 + 10, ())]


def test_partly_old_segment_delivers_the_new_part_and_dsacks_the_old():
    """RFC 9293 3.10.7.4: the part of a segment before RCV.NXT is trimmed;
    RFC 2883: the duplicated part is reported as a D-SACK."""
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"abcdef")
    c.recv()
    c.send(b"defghi", seq=s0 + 3)
    assert _acks(c) == [(c.rcv, s0 + 9, ((s0 + 3, s0 + 6),))]
    assert _read_all(c) == b"abcdefghi"


@pytest.mark.parametrize(("off", "n", "blocks", "ofo_bytes", "merged"), [
    (12, 5, ((12, 17), (10, 20)), 10, 1),   # "All the bits are present": dropped
    (15, 10, ((15, 20), (10, 25)), 15, 0),  # partial overlap: the new part queued
], ids=["inside-a-queued-one", "over-a-queued-ones-end"])
def test_out_of_order_segment_repeating_queued_data_dsacks_the_repeat(off, n, blocks,
                                                                      ofo_bytes, merged):
    """Linux tcp_data_queue_ofo: the part already queued (10..20) is D-SACKed
    (tcp_dsack_set(seq, min(end_seq, the queued end))) ahead of the SACK
    block that now holds it; a segment wholly inside is dropped and counted
    (TCPOFOMerge)."""
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"B" * 10, seq=s0 + 10)
    c.recv()
    c.send(b"C" * n, seq=s0 + off)
    assert _acks(c) == [(c.rcv, s0, tuple((s0 + a, s0 + b) for a, b in blocks))]
    assert c.host.mib["TCPOFOMerge"] == merged and c.sk.ofo_bytes == ofo_bytes


def test_partly_old_segment_with_fin_closes():
    c = passive_open()
    s0 = c.snd
    c.send(b"abc")
    c.recv()
    c.send(b"bcd", seq=s0 + 1, flags=ACK | FIN)
    assert _acks(_delayed(c)) == [(c.rcv, s0 + 5, ())]
    assert c.sk.state == TCP_CLOSE_WAIT
    assert _read_all(c) == b"abcd"


def test_data_at_rcv_nxt_into_a_zero_window_is_dropped_and_acked():
    """RFC 9293 3.10.7.4: with RCV.WND zero no data is acceptable, but the
    ACK is sent (tcp_data_queue: TCPZeroWindowDrop)."""
    c = passive_open()
    c.sk.rcvbuf = 1                                # nothing fits any more
    c.sk.rcv_wnd = 0
    s0 = c.snd
    c.send(b"x" * 10)
    segs = c.recv()
    assert [(s.flags, s.ack) for s in segs] == [(ACK, s0)]
    assert c.sk.readable() == 0
    assert c.host.mib["TCPZeroWindowDrop"] == 1


def test_fin_alone_is_accepted_in_a_zero_window():
    """RFC 9293 3.3: a FIN needs no window (only data is dropped)."""
    c = passive_open()
    c.sk.rcvbuf = 1
    c.sk.rcv_wnd = 0
    s0 = c.snd
    c.send(flags=ACK | FIN)
    assert c.sk.state == TCP_CLOSE_WAIT
    assert [s.ack for s in _delayed(c).recv()] == [s0 + 1]


def test_segment_beyond_the_window_is_acked_and_dropped():
    c = passive_open()
    s0 = c.snd
    wnd = c.sk.rcv_wnd
    c.send(b"x" * 10, seq=s0 + wnd + 100)
    assert _acks(c) == [(c.rcv, s0, ())]
    assert not c.sk.ofo and c.host.mib["TCPOFOQueue"] == 0


def test_in_order_data_with_push_is_delivered_and_the_ack_delayed():
    """RFC 1122 4.2.3.2 / RFC 9293 3.8.6.3: a lone in-order segment after the
    quick-ACK phase gets a delayed ACK."""
    c = passive_open()
    for _ in range(20):                            # leave quick-ACK mode
        c.send(b"q" * 100, flags=ACK | PSH)
    c.recv()
    _read_all(c)
    c.sk.quick = 0
    c.send(b"z" * 10, flags=ACK | PSH)
    assert c.recv() == []
    assert c.sk.delack_timer.pending


# --- quick-ACK mode (tcp_incr_quickack / TCP_MAX_QUICKACKS) ---------------------------------
def _immediate_acks(c: Conn, n: int) -> int:
    """Send ``n`` small in-order segments; how many were ACKed at once."""
    count = 0
    for _ in range(n):
        c.send(b"s" * 10)
        count += len(c.recv())
        c.sk.recvmsg(1 << 20)
    return count


def test_first_data_starts_quickack_mode_for_sixteen_acks():
    """Linux tcp_incr_quickack: at the start, min(rcv_wnd / (2 * rcv_mss),
    TCP_MAX_QUICKACKS = 16) segments are ACKed at once, then ACKs are delayed
    (the first segment here takes the slow path: a window change)."""
    c = passive_open()
    c.send(b"f" * 10, window=60000)
    assert len(c.recv()) == 1
    assert _immediate_acks(c, 20) == 15


def test_duplicate_segment_restarts_quickack_mode():
    """Linux tcp_data_queue: a duplicate enters quick-ACK mode with
    TCP_MAX_QUICKACKS (the ACK of the duplicate is the first of the 16)."""
    c = passive_open()
    c.send(b"f" * 10)
    c.recv()
    _immediate_acks(c, 20)                      # quick-ACK mode is used up
    c.send(b"f" * 10, seq=c.snd - 10)
    assert len(c.recv()) == 1
    assert _immediate_acks(c, 20) == 15


def test_segment_starting_at_the_right_window_edge_is_acked_and_dropped():
    """RFC 9293 3.10.7.4: SEG.SEQ must be below RCV.NXT + RCV.WND; a segment
    starting exactly there is dropped with an immediate ACK, and quick-ACK
    mode follows (Linux tcp_data_queue: out_of_window)."""
    c = passive_open()
    c.send(b"f" * 10)
    c.recv()
    _immediate_acks(c, 20)                      # quick-ACK mode is used up
    c.host.advance(c.host.now + 1.0)            # and the delayed ACK went out
    c.recv()
    assert not c.sk.ack_pending
    s0 = c.snd
    edge = (s0 + c.sk.rcv_wnd - (c.sk.rcv_nxt - c.sk.rcv_wup)) & 0xFFFFFFFF
    c.send(b"x" * 10, seq=edge)
    assert _acks(c) == [(c.rcv, s0, ())]
    assert not c.sk.ofo and c.host.mib["TCPOFOQueue"] == 0
    assert _immediate_acks(c, 20) == 15


def test_out_of_order_segment_restarts_quickack_mode():
    """Linux tcp_data_queue_ofo: tcp_enter_quickack_mode, so the ACKs after
    the hole is filled go out at once too."""
    c = passive_open()
    c.send(b"f" * 10)
    c.recv()
    _immediate_acks(c, 20)                      # quick-ACK mode is used up
    c.host.advance(c.host.now + 1.0)
    c.recv()
    s0 = c.snd
    c.send(b"B" * 10, seq=s0 + 10)              # out of order: ACK, quick mode
    assert len(c.recv()) == 1
    c.send(b"A" * 10, seq=s0)                   # fills the hole: ACK
    assert len(c.recv()) == 1
    c.snd = s0 + 20
    assert _immediate_acks(c, 20) == 14
