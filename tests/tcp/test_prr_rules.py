"""Proportional Rate Reduction in fast recovery (RFC 6937; Linux
tcp_cwnd_reduction, tcp_init_cwnd_reduction).

On every ACK in recovery cwnd = pipe + sndcnt.  While pipe > ssthresh,
sndcnt = ceil(ssthresh * prr_delivered / RecoverFS) - prr_out, RecoverFS
being the cwnd when recovery began (Linux's prior_cwnd); otherwise
(PRR-SSRB) sndcnt = min(ssthresh - pipe, max(prr_delivered - prr_out,
delivered) + 1 if the ACK advanced snd_una and marked nothing new lost).
The first ACK always lets one segment go (the fast retransmission).
prr_out counts every segment sent in recovery, retransmitted or new.

The SACK connection uses RFC 6675's loss rule (net.ipv4.tcp_recovery=0: a
segment with three SACKed above it is lost) so that what is lost does not
depend on RACK's timing; Reno halves the window of 10 (ssthresh 5).
"""

from __future__ import annotations

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CA_RECOVERY

from .helpers import Conn, TcpOptions, passive_open

IW = 10


def _sack_flight(recovery: int = 0) -> tuple[Conn, int, int]:
    c = passive_open(Settings(tcp_congestion_control="reno", tcp_recovery=recovery),
                     syn_opts=TcpOptions(mss=1000, sack_ok=True))
    mss = c.sk.mss_cache
    c.sk.sendmsg(bytes(40 * mss))
    out = c.recv()
    assert len(out) == IW
    return c, out[0].seq, mss


def _sack(c: Conn, base: int, mss: int, ack_seg: int, *ranges: tuple[int, int]) -> list[int]:
    """ACK up to segment ``ack_seg`` with SACK blocks of segment ranges; the
    segment numbers sent in reply."""
    blocks = tuple((base + a * mss, base + b * mss) for a, b in ranges)
    c.send(ack=base + ack_seg * mss, opts=TcpOptions(sack_blocks=blocks))
    return [(s.seq - base) // mss for s in c.recv()]


def test_pipe_below_ssthresh_at_the_start_slow_starts_back_by_what_was_delivered():
    """SACK of 7, 8, 9: 0..6 are lost, pipe = 10 - 3 - 7 = 0 < ssthresh 5:
    sndcnt = min(5 - 0, max(3 - 0, 3)) = 3, not the 5 a cwnd set to ssthresh
    would release at once (RFC 5681)."""
    c, base, mss = _sack_flight()
    assert _sack(c, base, mss, 0, (7, 10)) == [0, 1, 2]
    assert c.sk.ca_state == TCP_CA_RECOVERY
    assert (c.sk.snd_ssthresh, c.sk.prior_cwnd, c.sk.snd_cwnd) == (5, IW, 3)
    assert (c.sk.prr_delivered, c.sk.prr_out) == (3, 3)


def test_an_ack_advancing_snd_una_without_new_losses_sends_one_more():
    """Then the ACK of segment 0 (a retransmission arrived): delivered 1,
    pipe = 9 - 3 - 6 + 2 = 2, sndcnt = min(5 - 2, max(4 - 3, 1) + 1) = 2."""
    c, base, mss = _sack_flight()
    _sack(c, base, mss, 0, (7, 10))
    assert _sack(c, base, mss, 1, (7, 10)) == [3, 4]
    assert c.sk.snd_cwnd == 4 and c.sk.prr_out == 5


def test_pipe_above_ssthresh_sends_in_proportion_to_what_was_delivered():
    """Segment 0 lost, 1.. SACKed one per ACK: recovery starts on the third
    (pipe 10 - 3 - 1 = 6 > 5); each ACK adds one to prr_delivered and
    ceil(5 * d / 10) - prr_out segments go: the retransmission on d = 1, then
    new data on d = 3 (2 - 1) and d = 5 (3 - 2), none on d = 2 and 4."""
    c, base, mss = _sack_flight()
    out = [_sack(c, base, mss, 0, (1, k)) for k in range(2, 9)]
    # the first two SACKs send limited-transmit segments (RFC 3042)
    assert out == [[10], [11], [0], [], [12], [], [13]]
    assert (c.sk.prr_delivered, c.sk.prr_out) == (5, 3)


def test_the_reordering_timer_starting_recovery_sends_one_retransmission():
    """RACK's timer finds segments lost with no ACK to count: Linux's
    tcp_rack_reo_timeout runs tcp_cwnd_reduction as if one segment was
    delivered, so only the first lost segment is resent."""
    c, base, mss = _sack_flight(recovery=1)
    c.sk.min_rtt = c.sk.rack_rtt = 0.1
    c.sk.rtt_est.sample(0.1)
    c.host.advance(c.host.now + 0.1)
    # within RACK's reo_wnd: nothing lost yet, limited transmit (RFC 3042)
    assert _sack(c, base, mss, 0, (9, 10)) == [10]
    c.host.advance(c.host.now + 0.2)
    assert [(s.seq - base) // mss for s in c.recv()] == [0]
    # 0..8 lost, pipe = 11 - 1 - 9 = 1: sndcnt = min(5 - 1, max(1 - 0, 1)) = 1
    assert c.sk.ca_state == TCP_CA_RECOVERY and c.sk.lost_out == 9
    assert (c.sk.prr_delivered, c.sk.prr_out, c.sk.snd_cwnd) == (1, 1, 2)


def test_an_ack_below_snd_una_still_brings_its_sack_news():
    """Linux tcp_ack's old_ack: an ACK reordered behind a newer one is no
    acknowledgement, but its SACK blocks are tagged and what they free is
    used, with the window as it was (no PRR step): retransmissions 3 and 4
    SACKed make pipe 7 - 5 - 2 + 2 = 2 under cwnd 4, so new data 10 and 11
    go."""
    c, base, mss = _sack_flight()
    assert _sack(c, base, mss, 0, (7, 10)) == [0, 1, 2]
    assert _sack(c, base, mss, 3, (7, 10)) == [3, 4, 5, 6]
    assert c.sk.snd_cwnd == 4
    assert _sack(c, base, mss, 1, (3, 5), (7, 10)) == [10, 11]
    assert c.sk.sacked_out == 5 and c.sk.snd_una == base + 3 * mss
    assert c.sk.snd_cwnd == 4


def test_lost_segments_of_one_burst_are_resent_as_one_gso_packet_with_psh():
    """Linux retransmits an skb (what one burst sent as a GSO packet, less
    what SACKs split off) as one GSO packet, and __tcp_transmit_skb forces
    PSH on it; cut to the room the window leaves (tcp_retransmit_skb's segs).
    The 10 segments left in two bursts of cwnd / 2 = 5 (0-4, 5-9): the
    first three retransmissions are one packet (PSH on 2), then 3-4 end the
    first burst (PSH on 4)."""
    c, base, mss = _sack_flight()
    c.send(ack=base, opts=TcpOptions(sack_blocks=((base + 7 * mss, base + 10 * mss),)))
    segs = c.recv()
    assert [((s.seq - base) // mss, s.flags & 0x08) for s in segs] == [(0, 0), (1, 0), (2, 8)]
    c.send(ack=base + mss, opts=TcpOptions(sack_blocks=((base + 7 * mss, base + 10 * mss),)))
    segs = c.recv()
    assert [((s.seq - base) // mss, s.flags & 0x08) for s in segs] == [(3, 0), (4, 8)]


def test_a_lost_segment_alone_in_its_burst_is_resent_without_psh():
    """One lost segment (its burst's others SACKed) is a one-segment skb: no
    PSH (Linux forces it on GSO packets only)."""
    c, base, mss = _sack_flight()
    c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + 4 * mss),)))
    segs = c.recv()
    assert [((s.seq - base) // mss, s.flags & 0x08) for s in segs if s.seq == base] == [(0, 0)]
