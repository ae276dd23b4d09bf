"""RACK loss detection (RFC 8985 section 6; Linux net/ipv4/tcp_recovery.c),
segment by segment under the virtual clock.

Every connection negotiates SACK and first takes one RTT sample of exactly
R = 0.5 s: SRTT = min_rtt = 0.5 s, so RACK's reordering window is
reo_wnd = min_rtt / 4 = 0.125 s while no reordering has been seen, fewer
than DupThresh (3) segments are SACKed and no recovery is under way, and 0
otherwise.  A segment is lost once a segment sent after it has been
(S)ACKed and RACK.rtt + reo_wnd has passed since it was sent; one not yet
overdue waits for the reordering timer (+ 2 ms, TCP_TIMEOUT_MIN).
"""

from __future__ import annotations

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CA_DISORDER, TCP_CA_RECOVERY

from .helpers import TcpOptions, passive_open

MSS = 1000
R = 0.5
REO_WND = R / 4
EPS = 1e-6


def _conn(settings: Settings | None = None):
    c = passive_open(settings, syn_opts=TcpOptions(mss=MSS, sack_ok=True))
    c.sk.sendmsg(b"w" * MSS)
    (warm,) = c.recv()
    c.host.advance(R)
    c.send(ack=warm.seq + MSS)
    assert (c.sk.srtt, c.sk.min_rtt) == (R, R)
    return c


def _send(c, n: int):
    c.sk.sendmsg(b"".join(bytes([97 + i % 26]) * MSS for i in range(n)))
    out = c.recv()
    assert len(out) == n
    return out


def _sack(c, ack: int, *blocks: tuple[int, int]):
    c.send(ack=ack, opts=TcpOptions(sack_blocks=tuple(blocks)))
    return c.recv()


def _retransmitted(segs, before: int) -> list[int]:
    """Sequence numbers of segments below ``before`` (i.e. sent again)."""
    return [s.seq for s in segs if ((s.seq - before) & 0xFFFFFFFF) >= 0x80000000]


def test_a_hole_sacked_around_within_the_reordering_window_waits_for_the_timer():
    """RFC 8985 6.2 step 5 + 6.3: segment 1's successor was SACKed one RTT
    after both were sent, so segment 1 is not overdue until RTT + reo_wnd
    after its send: nothing is retransmitted on the ACK; the reordering timer
    fires at t0 + R + reo_wnd (+2 ms) and starts fast recovery with it."""
    c = _conn()
    out = _send(c, 5)
    t0 = c.host.now
    c.host.advance(t0 + R)
    segs = _sack(c, out[1].seq, (out[2].seq, out[2].seq + MSS))
    assert _retransmitted(segs, out[-1].seq + MSS) == []
    assert c.sk.ca_state == TCP_CA_DISORDER and c.sk.lost_out == 0
    assert c.sk.pending == 6                    # ICSK_TIME_REO_TIMEOUT
    # new data sent meanwhile leaves the reordering timer alone (Linux
    # tcp_event_new_data_sent re-arms only over a loss probe)
    c.sk.sendmsg(b"n" * MSS)
    assert [s.seq for s in c.recv()] == [out[-1].seq + MSS]
    top = out[-1].seq + 2 * MSS
    fire = t0 + R + REO_WND + 0.002
    c.host.advance(fire - EPS)
    assert _retransmitted(c.recv(), top) == []
    c.host.advance(fire + EPS)
    assert _retransmitted(c.recv(), top) == [out[1].seq]
    mib = c.host.mib
    assert c.sk.ca_state == TCP_CA_RECOVERY
    assert (mib["TCPSackRecovery"], mib["RetransSegs"], mib["TCPTimeouts"]) == (1, 1, 0)
    # In recovery reo_wnd is 0: a second hole (3) with its successor (4)
    # SACKed is lost on that ACK, one SACK is enough.
    c.host.advance(fire + 0.01)
    segs = _sack(c, out[1].seq, (out[4].seq, out[4].seq + MSS), (out[2].seq, out[2].seq + MSS))
    assert _retransmitted(segs, top) == [out[3].seq]


def test_a_sack_of_a_retransmission_sooner_than_min_rtt_does_not_advance_rack():
    """RFC 8985 6.2 step 2: a retransmitted segment SACKed less than min_rtt
    after its retransmission was probably the original arriving late: it
    does not move RACK.xmit_ts to the retransmission (which would make
    segment 3, sent long before, look lost)."""
    c = _conn()
    out = _send(c, 5)
    t0 = c.host.now
    c.host.advance(t0 + R)
    _sack(c, out[1].seq, (out[2].seq, out[2].seq + MSS))
    fire = t0 + R + REO_WND + 0.002
    c.host.advance(fire + EPS)
    assert _retransmitted(c.recv(), out[-1].seq + MSS) == [out[1].seq]
    c.host.advance(fire + 0.05)                 # 50 ms < min_rtt after the retransmission
    segs = _sack(c, out[1].seq, (out[1].seq, out[2].seq + MSS))
    assert _retransmitted(segs, out[-1].seq + MSS) == [] and c.sk.lost_out == 0


def _earlier_then_later(c, gap: float):
    """Segment A at t0, segments B and C ``gap`` later; B SACKed one RTT
    after it was sent (A, C not heard of).  Returns (A, B, C, t0)."""
    (a,) = _send(c, 1)
    t0 = c.host.now
    c.host.advance(t0 + gap)
    b, cc = _send(c, 2)
    c.host.advance(t0 + gap + R)
    segs = _sack(c, a.seq, (b.seq, b.seq + MSS))
    return a, segs, t0


def test_a_segment_sacked_later_than_rtt_plus_reo_wnd_after_an_earlier_one_marks_it_lost_at_once():
    """A was sent 0.2 s before B; B's SACK arrives R after B's send, i.e.
    0.7 s > R + reo_wnd (0.625 s) after A's: A is lost now, fast recovery
    retransmits it on this very ACK (one SACK: no DupThresh involved)."""
    c = _conn()
    a, segs, _t0 = _earlier_then_later(c, 0.2)
    assert [s.seq for s in segs] == [a.seq]
    assert c.sk.ca_state == TCP_CA_RECOVERY and c.host.mib["TCPSackRecovery"] == 1


def test_the_same_within_the_window_is_lost_only_when_the_timer_says_so():
    """The same with B sent 0.1 s after A: A is 0.025 s short of overdue at
    the SACK (0.6 s < 0.625 s): it goes out at t0 + R + reo_wnd + 2 ms."""
    c = _conn()
    a, segs, t0 = _earlier_then_later(c, 0.1)
    assert segs == [] and c.host.mib["RetransSegs"] == 0
    fire = t0 + R + REO_WND + 0.002
    c.host.advance(fire - EPS)
    assert c.recv() == []
    c.host.advance(fire + EPS)
    assert [s.seq for s in c.recv()] == [a.seq]
    assert c.host.mib["TCPSackRecovery"] == 1


def test_dupthresh_sacked_segments_leave_no_reordering_window():
    """Linux tcp_rack_reo_wnd: until reordering is seen, DupThresh (3) SACKed
    segments mean reo_wnd = 0: the hole is lost as soon as RACK.rtt has
    passed, i.e. on this ACK (the classic fast retransmit, by time)."""
    c = _conn()
    out = _send(c, 5)
    c.host.advance(c.host.now + R)
    segs = _sack(c, out[0].seq, (out[1].seq, out[3].seq + MSS))
    assert _retransmitted(segs, out[-1].seq + MSS) == [out[0].seq]
    assert c.sk.ca_state == TCP_CA_RECOVERY


def _retransmission_then_new_data(c, gap: float):
    """10 segments at t0; one RTT later segment 1 is found lost (2..9 SACKed)
    and retransmitted; ``gap`` later the app writes 2 segments, which go out
    (recovery's cwnd has room).  Returns (first flight, new segments)."""
    c.sk.sendmsg(b"x" * (10 * MSS))
    out = c.recv()
    assert len(out) == 10
    c.host.advance(c.host.now + R)
    top = out[-1].seq + MSS
    segs = _sack(c, out[1].seq, (out[2].seq, top))      # 1 lost, 2..9 SACKed
    assert [s.seq for s in segs] == [out[1].seq]
    c.host.advance(c.host.now + gap)
    c.sk.sendmsg(b"y" * (2 * MSS))
    new = c.recv()
    assert [s.seq for s in new] == [top, top + MSS]
    return out, new


def test_a_lost_retransmission_is_found_by_time_without_an_rto():
    """RFC 8985 2.2/6: the retransmission of segment 1 is lost too; segments
    sent after it are SACKed one RTT later, so it is overdue (reo_wnd 0 in
    recovery) and is sent a third time: TCPLostRetransmit, no RTO.  RFC
    6675's IsLost (tcp_recovery=0) never marks a retransmitted segment lost
    again: it waits for the RTO."""
    for recovery, expect_resent in ((1, True), (0, False)):
        c = _conn(Settings(tcp_recovery=recovery))
        out, new = _retransmission_then_new_data(c, 0.01)
        c.host.advance(c.host.now + R)
        top = out[-1].seq + MSS
        segs = _sack(c, out[1].seq, (top, top + 2 * MSS), (out[2].seq, top))
        resent = [s.seq for s in segs] == [out[1].seq]
        assert resent == expect_resent, recovery
        assert c.host.mib["TCPLostRetransmit"] == (1 if expect_resent else 0)
        assert c.host.mib["TCPTimeouts"] == 0


def test_a_retransmission_is_not_taken_as_sent_before_new_data_of_the_same_instant():
    """tcpio stamps every segment of one batch with the same time, and a
    retransmission may leave after new data of that instant: a SACK of such
    new data does not make the retransmission look overdue (Linux's
    microsecond stamps order them; here the tie is resolved the safe way)."""
    c = _conn()
    out, new = _retransmission_then_new_data(c, 0.0)
    c.host.advance(c.host.now + R)
    top = out[-1].seq + MSS
    segs = _sack(c, out[1].seq, (top, top + 2 * MSS), (out[2].seq, top))
    assert segs == [] and c.host.mib["TCPLostRetransmit"] == 0


def test_a_hole_filled_by_the_original_is_reordering_and_widens_nothing_needlessly():
    """RFC 8985 6.2 step 3: segment 1 arrives after segment 2 was SACKed (the
    ACK covers it without a retransmission): reordering (TCPSACKReorder),
    and nothing was retransmitted because the reordering window covered it.
    From then on DupThresh SACKed segments no longer shrink reo_wnd to 0
    (Linux: tp->reord_seen): a hole with 3 SACKed above waits for the timer."""
    c = _conn()
    out = _send(c, 5)
    t0 = c.host.now
    c.host.advance(t0 + R)
    assert _retransmitted(_sack(c, out[1].seq, (out[2].seq, out[2].seq + MSS)),
                          out[-1].seq + MSS) == []
    c.host.advance(t0 + R + REO_WND / 2)
    c.send(ack=out[4].seq + MSS)                # segment 1 was only late
    mib = c.host.mib
    assert (mib["TCPSACKReorder"], mib["RetransSegs"]) == (1, 0)
    assert c.sk.reord_seen == 1
    out = _send(c, 5)
    c.host.advance(c.host.now + R)
    segs = _sack(c, out[0].seq, (out[1].seq, out[3].seq + MSS))
    assert _retransmitted(segs, out[-1].seq + MSS) == [] and c.sk.pending == 6


def test_without_rack_sack_loss_detection_is_rfc6675_dupthresh():
    """net.ipv4.tcp_recovery=0: one SACK above a hole never marks it lost,
    however long it waits (until the RTO); three do at once."""
    c = _conn(Settings(tcp_recovery=0))
    out = _send(c, 5)
    c.host.advance(c.host.now + R)
    assert _retransmitted(_sack(c, out[1].seq, (out[2].seq, out[2].seq + MSS)),
                          out[-1].seq + MSS) == []
    c.host.advance(c.host.now + R)
    assert c.recv() == [] and c.sk.lost_out == 0
    segs = _sack(c, out[1].seq, (out[2].seq, out[-1].seq + MSS))
    assert _retransmitted(segs, out[-1].seq + MSS) == [out[1].seq]


def _reordered(c):
    """A reordering event as above: segment 1 arrives after 2 was SACKed."""
    out = _send(c, 5)
    t0 = c.host.now
    c.host.advance(t0 + R)
    _sack(c, out[1].seq, (out[2].seq, out[2].seq + MSS))
    c.host.advance(t0 + R + REO_WND / 2)
    c.send(ack=out[4].seq + MSS)
    assert c.sk.reord_seen == 1
    return out


@pytest.mark.parametrize("tcp_recovery, wnd", [(1, 2 * REO_WND), (1 | 2, REO_WND)],
                         ids=["adaptive", "static"])
def test_a_dsack_after_reordering_widens_the_window_by_a_quarter_min_rtt(tcp_recovery, wnd):
    """RFC 8985 6.2 step 4 / tcp_rack_update_reo_wnd: once reordering has
    been seen, a D-SACK (a retransmission that was not needed) widens
    reo_wnd by min_rtt/4, here from 0.125 s to 0.25 s, so the next hole
    waits RTT + 0.25 s; tcp_recovery bit 0x2 keeps the window static."""
    c = _conn(Settings(tcp_recovery=tcp_recovery))
    old = _reordered(c)
    out = _send(c, 3)
    t1 = c.host.now
    c.host.advance(t1 + R)
    dsack = (old[1].seq, old[1].seq + MSS)      # below the ACK: a D-SACK
    segs = _sack(c, out[1].seq, dsack, (out[2].seq, out[2].seq + MSS))
    assert c.host.mib["TCPDSACKRecv"] == 1 and segs == []
    fire = t1 + R + wnd + 0.002
    c.host.advance(fire - EPS)
    assert c.recv() == []
    c.host.advance(fire + EPS)
    assert [s.seq for s in c.recv()] == [out[1].seq]
