"""RACK adapting to the path (RFC 8985 6.2 steps 3-4; Linux
net/ipv4/tcp_recovery.c, tcp_input.c): the reordering degree a SACK reveals,
the reordering window widened by D-SACKs and kept for 16 recoveries, the
timer that stands in for the RTO while RACK waits, and the accounting of a
retransmission found lost.

Same set-up as test_rack_rules.py: SACK negotiated, one RTT sample of
exactly R = 0.5 s (SRTT = min_rtt = R), so one step of the reordering window
is min_rtt / 4 = 0.125 s, and the reordering timer fires 2 ms
(TCP_TIMEOUT_MIN) after the last deadline.
"""

from __future__ import annotations

from tcpio.core.tcp.tcp_info import tcp_get_info
from tcpio.core.tcp.tcp_states import TCP_CA_OPEN, TCP_CA_RECOVERY

from .test_rack_rules import (
    EPS,
    MSS,
    REO_WND,
    R,
    _conn,
    _reordered,
    _retransmission_then_new_data,
    _sack,
    _send,
)

TIMEOUT_MIN = 0.002


def _seqs(segs) -> list[int]:
    return [s.seq for s in segs]


# --- RFC 8985 6.2 step 3: reordering seen in a SACK -------------------------------------
def test_a_sack_filling_a_hole_below_the_highest_sack_measures_the_reordering_degree():
    """Linux tcp_check_sack_reordering (called from tcp_sacktag_write_queue):
    a never-retransmitted segment SACKed below the highest SACKed sequence
    (RACK.fack) was reordered.  Each such SACK counts one reordering event
    (tp->reord_seen, TCPSACKReorder), and the degree fack - seq, in segments
    rounded up, raises tp->reordering (tcpi_reordering) when it exceeds it,
    never lowers it.  Here segment 6 is SACKed first, then 2 (5 segments
    below fack), then 4 (3 segments below): reordering 3 -> 5, and stays 5."""
    c = _conn()
    out = _send(c, 8)
    t0 = c.host.now
    assert tcp_get_info(c.sk)["tcpi_reordering"] == 3           # net.ipv4.tcp_reordering
    seg6 = (out[6].seq, out[6].seq + MSS)
    c.host.advance(t0 + R)
    assert _sack(c, out[1].seq, seg6) == []
    info = tcp_get_info(c.sk)
    assert (info["tcpi_reord_seen"], c.host.mib["TCPSACKReorder"]) == (0, 0)

    c.host.advance(t0 + R + 0.01)
    assert _sack(c, out[1].seq, (out[2].seq, out[2].seq + MSS), seg6) == []
    info = tcp_get_info(c.sk)
    assert info["tcpi_reordering"] == 5
    assert (info["tcpi_reord_seen"], c.host.mib["TCPSACKReorder"]) == (1, 1)

    c.host.advance(t0 + R + 0.02)
    assert _sack(c, out[1].seq, (out[4].seq, out[4].seq + MSS), seg6) == []
    info = tcp_get_info(c.sk)
    assert info["tcpi_reordering"] == 5
    assert (info["tcpi_reord_seen"], c.host.mib["TCPSACKReorder"]) == (2, 2)
    assert c.host.mib["RetransSegs"] == 0


# --- RFC 8985 6.2 step 4: the window widened by D-SACKs, kept for 16 recoveries ---------
def _episode(c) -> float:
    """One loss recovery started by the reordering timer: two segments, the
    second SACKed one RTT after both were sent, the first not.  Returns the
    reordering window RACK waited (RFC 8985 6.2 step 5: the first is lost
    RACK.rtt + reo_wnd after its send, the timer fires 2 ms later), found by
    stepping the virtual clock to each candidate deadline.  The peer then
    acknowledges everything one RTT after the retransmission: recovery ends
    (Linux tcp_try_undo_recovery: the widened window's persistence counts
    down by one)."""
    out = _send(c, 2)
    t = c.host.now
    c.host.advance(t + R)
    assert _sack(c, out[0].seq, (out[1].seq, out[1].seq + MSS)) == []
    waited = None
    for steps in range(0, 6):
        fire = t + R + steps * REO_WND + TIMEOUT_MIN
        c.host.advance(fire + EPS)
        segs = c.recv()
        if segs:
            assert _seqs(segs) == [out[0].seq]
            waited = steps * REO_WND
            break
    assert waited is not None and c.sk.ca_state == TCP_CA_RECOVERY
    c.host.advance(c.host.now + R)
    c.send(ack=out[1].seq + MSS)
    assert c.sk.ca_state == TCP_CA_OPEN
    c.recv()
    return waited


def test_a_widened_reordering_window_persists_for_16_recoveries_then_falls_back():
    """RFC 8985 6.2 step 4 (RACK.reo_wnd_persist = 16) / Linux
    tcp_rack_update_reo_wnd and TCP_RACK_RECOVERY_THRESH: a D-SACK after
    reordering was seen widens reo_wnd by one step (min_rtt/4) and keeps it
    for 16 loss recoveries without D-SACK; after the 16th, the next ACK puts
    it back to one step.  One D-SACK widens once: later ACKs without D-SACK
    do not widen it further (RFC 8985: grow once per round that sees a
    D-SACK).  The recovery the D-SACK arrived in is the first of the 16."""
    c = _conn()
    old = _reordered(c)
    assert _episode(c) == REO_WND                     # one step before any D-SACK
    out = _send(c, 2)
    t = c.host.now
    c.host.advance(t + R)
    dsack = (old[1].seq, old[1].seq + MSS)            # below the ACK: a D-SACK
    assert _sack(c, out[0].seq, dsack, (out[1].seq, out[1].seq + MSS)) == []
    assert c.host.mib["TCPDSACKRecv"] == 1
    fire = t + R + 2 * REO_WND + TIMEOUT_MIN
    c.host.advance(fire - EPS)
    assert c.recv() == []
    c.host.advance(fire + EPS)
    assert _seqs(c.recv()) == [out[0].seq]
    c.host.advance(c.host.now + R)
    c.send(ack=out[1].seq + MSS)
    assert c.sk.ca_state == TCP_CA_OPEN
    waits = [_episode(c) for _ in range(16)]
    # recoveries 2..16 after the widening still wait two steps; the 17th one
    assert waits == [2 * REO_WND] * 15 + [REO_WND]
    assert c.host.mib["TCPDSACKRecv"] == 1 and c.host.mib["TCPTimeouts"] == 0


# --- the reordering timer and the RTO ----------------------------------------------------------
def test_a_reordering_timer_that_finds_nothing_lost_hands_over_to_the_rto():
    """Linux tcp_rack_reo_timeout: when the reordering timer fires it marks
    what is overdue, and if that leaves no retransmission timer (icsk_pending
    still REO_TIMEOUT) re-arms the RTO (tcp_rearm_rto), which keeps its
    deadline of the head's last transmission + RTO (tcp_rto_delta_us;
    RFC 6298 5.1).  Here Q is lost and retransmitted on the SACK of S while
    P (sent with S) waits for the timer; P is SACKed before it fires, so the
    timer finds nothing.  The peer then goes silent: Q's retransmission must
    still be resent by the RTO (RFC 8985 7.1: RACK never replaces the RTO)."""
    c = _conn()
    _reordered(c)                      # reord_seen: the window stays min_rtt/4 in recovery
    (q,) = _send(c, 1)
    c.host.advance(c.host.now + 0.2)
    p, s = _send(c, 2)
    t = c.host.now
    c.host.advance(t + R)
    assert _seqs(_sack(c, q.seq, (s.seq, s.seq + MSS))) == [q.seq]   # late by 0.075 s
    assert c.sk.ca_state == TCP_CA_RECOVERY
    q_resent = c.host.now
    c.host.advance(t + R + 0.05)
    assert _sack(c, q.seq, (p.seq, s.seq + MSS)) == []
    fire = t + R + REO_WND + TIMEOUT_MIN
    c.host.advance(fire + EPS)
    assert c.recv() == []                             # nothing was lost
    rto = c.sk.rto
    c.host.advance(q_resent + rto - EPS)
    assert c.recv() == [] and c.host.mib["TCPTimeouts"] == 0
    c.host.advance(q_resent + rto + EPS)
    assert _seqs(c.recv()) == [q.seq]
    assert c.host.mib["TCPTimeouts"] == 1


def test_an_ack_that_delivers_nothing_new_runs_no_loss_detection():
    """Linux tcp_rack_mark_lost: RACK's loss detection runs only when an ACK
    advanced RACK (tp->rack.advanced, set by tcp_rack_advance for a newly
    (S)ACKed segment) and clears that mark.  A repeated ACK with the same
    SACK block arriving after segment 1's deadline but before the reordering
    timer (TCP_TIMEOUT_MIN later) marks nothing: segment 1 is retransmitted
    by the timer, not by the duplicate."""
    c = _conn()
    out = _send(c, 4)
    t0 = c.host.now
    block = (out[2].seq, out[2].seq + MSS)
    c.host.advance(t0 + R)
    assert _sack(c, out[1].seq, block) == []
    deadline = t0 + R + REO_WND
    c.host.advance(deadline + TIMEOUT_MIN / 2)
    assert _sack(c, out[1].seq, block) == []
    assert c.sk.lost_out == 0 and c.host.mib["RetransSegs"] == 0
    c.host.advance(deadline + TIMEOUT_MIN + EPS)
    assert _seqs(c.recv()) == [out[1].seq]


# --- a lost retransmission ------------------------------------------------------------------
def test_a_retransmission_found_lost_leaves_the_retransmitted_count_when_resent():
    """Linux tcp_mark_skb_lost: a retransmission found lost (RFC 8985 6.2
    step 5) is no longer in flight: its TCPCB_SACKED_RETRANS mark and its
    count in retrans_out (tcpi_retrans) go, so the third copy counts once,
    and the pipe (RFC 6675: packets_out - sacked - lost + retrans) counts
    only segments really in the network.  Once all is acknowledged nothing
    is left counted."""
    c = _conn()
    out, new = _retransmission_then_new_data(c, 0.01)
    assert tcp_get_info(c.sk)["tcpi_retrans"] == 1
    c.host.advance(c.host.now + R)
    top = out[-1].seq + MSS
    assert _seqs(_sack(c, out[1].seq, (top, top + 2 * MSS), (out[2].seq, top))) == [out[1].seq]
    assert c.host.mib["TCPLostRetransmit"] == 1
    info = tcp_get_info(c.sk)
    # in flight: only the third copy of segment 1
    assert (info["tcpi_retrans"], info["tcpi_lost"]) == (1, 1)
    assert info["tcpi_unacked"] - info["tcpi_sacked"] - info["tcpi_lost"] + info["tcpi_retrans"] == 1
    c.host.advance(c.host.now + R)
    c.send(ack=top + 2 * MSS)
    info = tcp_get_info(c.sk)
    assert (info["tcpi_unacked"], info["tcpi_retrans"], info["tcpi_lost"]) == (0, 0, 0)


# --- RFC 8985 6.2 step 2: a cumulative ACK advances RACK too -----------------------------------
def test_a_cumulative_ack_of_a_retransmission_shows_older_segments_above_it_lost():
    """RFC 8985 6.2 step 2 (RACK_update for every newly acknowledged segment,
    cumulatively or selectively; Linux tcp_clean_rtx_queue -> tcp_rack_advance):
    segment 1's retransmission, cumulatively acknowledged one RTT after it
    was sent (so not a spurious sample), moves RACK.xmit_ts to its send time.
    Segment 4, sent with the first flight long before and neither ACKed nor
    SACKed, is then overdue (reo_wnd 0 in recovery) and is retransmitted on
    that very ACK, without waiting for the RTO."""
    c = _conn()
    out = _send(c, 5)
    t0 = c.host.now
    c.host.advance(t0 + R)
    assert _sack(c, out[1].seq, (out[2].seq, out[3].seq + MSS)) == []
    c.host.advance(t0 + R + REO_WND + TIMEOUT_MIN + EPS)
    assert _seqs(c.recv()) == [out[1].seq]
    assert c.sk.ca_state == TCP_CA_RECOVERY
    c.host.advance(c.host.now + R)
    c.send(ack=out[4].seq)
    assert _seqs(c.recv()) == [out[4].seq]
    assert c.host.mib["TCPTimeouts"] == 0
