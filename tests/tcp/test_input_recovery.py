"""Loss recovery in tcp_ack / tcp_fastretrans_alert (net/ipv4/tcp_input.c):
entering fast recovery with the congestion module's ssthresh (RFC 5681 3.2,
RFC 9438 4.6), the segments released during recovery (Proportional Rate
Reduction, RFC 6937, as Linux's tcp_cwnd_reduction: RecoverFS is the cwnd
when recovery began, prior_cwnd; below ssthresh PRR-SSRB), NewReno partial
ACKs (RFC 6582), leaving recovery, and the Disorder and Loss states.

The peer sends no options, so the MSS is RFC 9293's default of 536 bytes and
segment N of a flight starts at ``base + N * MSS``.  The initial window is ten
segments (RFC 6928).
"""

from __future__ import annotations

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_cong import Reno
from tcpio.core.tcp.tcp_states import (
    TCP_CA_DISORDER,
    TCP_CA_LOSS,
    TCP_CA_OPEN,
    TCP_CA_RECOVERY,
)

from .helpers import Conn, TcpOptions, passive_open

MSS = 536
IW = 10


def _open(cc: str = "reno", syn_opts=None, window: int = 65535, tcp_recovery: int = 1) -> Conn:
    return passive_open(settings=Settings(tcp_congestion_control=cc, tcp_recovery=tcp_recovery),
                        syn_opts=syn_opts, window=window)


def _flight(c: Conn, nseg: int) -> int:
    """Queue ``nseg`` segments of data (segment i filled with byte i); return
    the first sequence number.  The first IW segments go out at once."""
    c.sk.sendmsg(b"".join(bytes([i % 256]) * MSS for i in range(nseg)))
    out = c.recv()
    assert len(out) == IW
    return out[0].seq


def _segno(segs, base: int) -> list[int]:
    return [(s.seq - base) // MSS for s in segs]


def _dupacks(c: Conn, ack: int, n: int) -> list[list[int]]:
    """``n`` duplicate ACKs; the segment numbers each one released."""
    base = c.sk.snd_una
    out = []
    for _ in range(n):
        c.send(ack=ack)
        out.append(_segno(c.recv(), base))
    return out


def _enter_recovery(c: Conn) -> int:
    """Segment 0 lost: three duplicate ACKs; returns base."""
    base = _flight(c, 40)
    assert _dupacks(c, base, 3) == [[10], [11], [0]]
    return base


# --- entering fast recovery -----------------------------------------------------
def test_third_dupack_sets_ssthresh_to_half_the_window_and_prr_sends_the_retransmission():
    """RFC 5681 3.2 step 2 with Linux's tcp_reno_ssthresh: ssthresh =
    max(cwnd / 2, 2) = 5 for a window of 10 (the two limited-transmit segments
    are not counted, RFC 3042).  PRR (RFC 6937 with RecoverFS = prior_cwnd
    10): pipe is 12 - 3 dupacks - 1 lost = 8 > ssthresh, so sndcnt =
    ceil(5 * 1 / 10) - 0 = 1 and cwnd = pipe + 1 = 9: the third duplicate ACK
    releases the retransmission and nothing else."""
    c = _open("reno")
    base = _flight(c, 40)
    assert c.sk.snd_cwnd == IW
    assert _dupacks(c, base, 3) == [[10], [11], [0]]
    assert c.sk.snd_ssthresh == 5
    assert c.sk.snd_cwnd == 9 and c.sk.prior_cwnd == IW
    assert c.sk.ca_state == TCP_CA_RECOVERY
    assert c.host.mib["TCPRenoRecovery"] == 1
    assert c.host.mib["TCPSackRecovery"] == 0
    assert c.host.mib["TCPFastRetrans"] == 1
    assert c.host.mib["RetransSegs"] == 1


def test_cubic_recovery_multiplies_the_window_by_beta():
    """RFC 9438 4.6: ssthresh = cwnd * beta_cubic (0.7); the window is
    ssthresh when recovery ends (tcp_end_cwnd_reduction)."""
    c = _open("cubic")
    base = _enter_recovery(c)
    assert c.sk.snd_ssthresh == 7
    c.send(ack=base + 12 * MSS)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.snd_cwnd >= 7
    assert c.sk.snd_ssthresh == 7


def test_retransmission_in_recovery_is_the_lost_segment_with_its_data():
    c = _open("reno")
    base = _flight(c, 40)
    _dupacks(c, base, 2)
    c.send(ack=base)
    segs = c.recv()
    assert [(s.seq, s.ack, s.payload) for s in segs] == [(base, c.snd, bytes([0]) * MSS)]


def test_recovery_point_is_snd_nxt_when_recovery_starts():
    """RFC 6582 3.2 step 2: "recover" is the highest sequence number sent."""
    c = _open("reno")
    base = _enter_recovery(c)
    assert c.sk.high_seq == base + 12 * MSS == c.sk.snd_nxt


def test_dupacks_in_recovery_release_new_data_at_the_rate_prr_allows():
    """RFC 6937: each duplicate ACK delivered one segment (prr_delivered);
    while pipe > ssthresh, sndcnt = ceil(ssthresh * prr_delivered /
    RecoverFS) - prr_out = ceil(5 * d / 10) - prr_out: one new segment for
    every second ACK (d = 3 and 5, after the retransmission), then none
    once pipe is down to ssthresh (pipe 5 = ssthresh: sndcnt <= 0)."""
    c = _open("reno")
    base = _enter_recovery(c)
    assert _dupacks(c, base, 6) == [[], [12], [], [13], [], []]
    assert c.host.mib["RetransSegs"] == 1
    assert (c.sk.prr_delivered, c.sk.prr_out) == (7, 3)
    assert c.sk.snd_ssthresh == 5


def test_cwnd_does_not_grow_during_recovery():
    """RFC 5681 3.2: the window is not opened by ACKs while recovering: a
    partial ACK runs PRR, not congestion avoidance.  After 4 more dupacks
    (prr_delivered 5, prr_out 3) the partial ACK of three segments delivers
    one (Linux tcp_remove_reno_sacks: max(3 - 7 sacked, 1)), the hole's
    retransmission makes prr_out 4 (RFC 6582), pipe = 11 - 5 - 1 + 1 = 6 >
    ssthresh: sndcnt = max(ceil(5 * 6 / 10) - 4, 0) = 0, cwnd = pipe = 6."""
    c = _open("reno")
    base = _enter_recovery(c)
    _dupacks(c, base, 4)
    c.send(ack=base + 3 * MSS)        # partial ACK of three segments
    assert c.sk.ca_state == TCP_CA_RECOVERY
    assert c.sk.snd_cwnd == 6 and c.sk.snd_ssthresh == 5


def test_partial_ack_retransmits_the_next_hole_at_once():
    """RFC 6582 3.2 step 5: a partial ACK retransmits the first unacknowledged
    segment and stays in fast recovery."""
    c = _open("reno")
    base = _enter_recovery(c)
    c.send(ack=base + 3 * MSS)
    segs = c.recv()
    assert (segs[0].seq, segs[0].payload) == (base + 3 * MSS, bytes([3]) * MSS)
    assert c.sk.ca_state == TCP_CA_RECOVERY
    assert c.host.mib["RetransSegs"] == 2


def test_partial_ack_forgets_the_dupacks_of_the_acknowledged_segments():
    """Linux tcp_remove_reno_sacks: a partial ACK of n segments removes n-1
    emulated SACKs (one ACKed segment was the hole)."""
    c = _open("reno")
    base = _enter_recovery(c)
    _dupacks(c, base, 4)                       # 7 dupacks: 7 segments "sacked"
    assert c.sk.sacked_out == 7
    c.send(ack=base + 3 * MSS)
    assert c.sk.sacked_out == 5


def test_ack_of_the_recovery_point_ends_recovery_with_cwnd_at_ssthresh():
    """RFC 6582 3.2 step 3 / RFC 5681 step 6: a full ACK ends fast recovery
    and sets cwnd to ssthresh (deflating the window)."""
    c = _open("reno")
    base = _enter_recovery(c)
    c.sk.snd_cwnd = 9            # whatever the window did meanwhile
    c.sk.snd_cwnd_cnt = 3        # and a count left over from before the loss
    c.send(ack=base + 12 * MSS)
    assert c.sk.ca_state == TCP_CA_OPEN
    assert c.sk.sacked_out == 0 and c.sk.lost_out == 0 and c.sk.retrans_out == 0
    assert c.sk.snd_ssthresh == 5
    # cwnd = ssthresh, then congestion avoidance for the 12 segments acked:
    # RFC 5681 3.1, cwnd += acked / cwnd, so 5 + 12 // 5 with a remainder of 2.
    assert (c.sk.snd_cwnd, c.sk.snd_cwnd_cnt) == (7, 2)


def test_full_ack_after_partial_ack_sends_new_data_within_ssthresh():
    c = _open("reno")
    base = _enter_recovery(c)
    c.send(ack=base + 3 * MSS)
    c.recv()
    c.send(ack=base + 12 * MSS)
    segs = c.recv()
    assert c.sk.ca_state == TCP_CA_OPEN
    # cwnd 5 + 9 acked // 5 = 6 segments in flight: 12..17
    assert _segno(segs, base) == [12, 13, 14, 15, 16, 17]


# --- Disorder -----------------------------------------------------------------------
def test_one_dupack_is_disorder_and_an_ack_of_new_data_reopens():
    """Linux tcp_fastretrans_alert: a duplicate ACK below the threshold is
    the Disorder state (RFC 3042 limited transmit); new data acked -> Open."""
    c = _open("reno")
    base = _flight(c, 40)
    c.send(ack=base)
    assert c.sk.ca_state == TCP_CA_DISORDER and c.sk.sacked_out == 1
    c.send(ack=base + MSS)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.sacked_out == 0
    assert c.host.mib["RetransSegs"] == 0


def test_ack_that_advances_is_not_a_dupack():
    """RFC 5681 2: a duplicate ACK acknowledges nothing new; an ACK that
    advances snd_una never counts towards fast retransmit."""
    c = _open("reno")
    base = _flight(c, 40)
    for k in range(1, 6):
        c.send(ack=base + k)          # each acknowledges one more byte
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.sacked_out == 0
    assert c.host.mib["RetransSegs"] == 0


def test_window_update_is_not_a_dupack():
    """RFC 5681 2 (d): the advertised window must not change for an ACK to be
    a duplicate."""
    c = _open("reno", window=40000)
    base = _flight(c, 40)
    for w in (41000, 42000, 43000, 44000):
        c.send(ack=base, window=w)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.sacked_out == 0
    assert c.host.mib["RetransSegs"] == 0


def test_ack_carrying_data_is_not_a_dupack():
    """RFC 5681 2 (b): a duplicate ACK carries no data."""
    c = _open("reno")
    base = _flight(c, 40)
    for _ in range(4):
        c.send(b"x", ack=base)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.sacked_out == 0
    assert c.host.mib["RetransSegs"] == 0


def test_no_dupacks_counted_with_nothing_outstanding():
    """RFC 5681 2 (a): there must be outstanding data."""
    c = _open("reno")
    for _ in range(4):
        c.send()
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.sacked_out == 0


# --- SACK recovery --------------------------------------------------------------
def _sack_open(cc: str = "reno", tcp_recovery: int = 1) -> tuple[Conn, int, int]:
    """A SACK connection, 10 segments sent at t=0 (no RTT sample yet).
    ``tcp_recovery=0``: RFC 6675's DupThresh loss detection instead of RACK,
    for the rules about it (RACK with no RTT sample has no reordering window:
    the first SACK above a hole marks it lost)."""
    c = _open(cc, syn_opts=TcpOptions(mss=1000, sack_ok=True), tcp_recovery=tcp_recovery)
    mss = c.sk.mss_cache
    c.sk.sendmsg(b"s" * (40 * mss))
    out = c.recv()
    assert len(out) == IW
    return c, out[0].seq, mss


def test_sack_recovery_counts_sack_recovery_and_ends_in_open():
    """RFC 6675 5: three segments SACKed above a hole start recovery; the ACK
    of the recovery point ends it."""
    c, base, mss = _sack_open()
    for k in (2, 3, 4):
        c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + k * mss),)))
    assert c.sk.ca_state == TCP_CA_RECOVERY
    assert c.host.mib["TCPSackRecovery"] == 1 and c.host.mib["TCPRenoRecovery"] == 0
    assert c.sk.snd_ssthresh == 5
    c.send(ack=c.sk.high_seq)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.sacked_out == 0


def test_sack_below_dupthresh_is_disorder():
    c, base, mss = _sack_open(tcp_recovery=0)
    c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + 2 * mss),)))
    assert c.sk.ca_state == TCP_CA_DISORDER and c.sk.sacked_out == 1
    assert c.host.mib["RetransSegs"] == 0


def test_recovery_ends_in_disorder_when_sacked_data_remains_above_the_ack():
    """Linux tcp_try_to_open: leaving recovery with SACKed segments still
    outstanding is the Disorder state, not Open."""
    c, base, mss = _sack_open(tcp_recovery=0)
    for k in (2, 3, 4):
        c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + k * mss),)))
    for k in range(5, 11):      # more SACKed: the pipe drains, new data goes out
        c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + k * mss),)))
    high = c.sk.high_seq
    assert high == base + 12 * mss
    assert (c.sk.snd_nxt - high) & 0xFFFFFFFF == 2 * mss
    # the full ACK comes with a SACK of new data above it
    c.send(ack=high, opts=TcpOptions(sack_blocks=((high + mss, high + 2 * mss),)))
    assert c.sk.ca_state == TCP_CA_DISORDER and c.sk.sacked_out == 1


# --- Loss (after an RTO) --------------------------------------------------------
def test_rto_recovery_is_the_loss_state_until_the_recovery_point_is_acked():
    """RFC 5681 3.1 / Linux tcp_enter_loss: after an RTO, ACKs below the
    recovery point keep the Loss state (and retransmit); reaching it -> Open."""
    c = _open("reno")
    base = _flight(c, 40)
    c.host.advance(c.sk.rtx_timer.when)
    assert c.sk.ca_state == TCP_CA_LOSS and c.sk.snd_cwnd == 1
    assert _segno(c.recv(), base) == [0]
    high = c.sk.high_seq
    c.send(ack=base + MSS)
    assert c.sk.ca_state == TCP_CA_LOSS
    assert _segno(c.recv(), base) == [1, 2]    # slow start from 1: two segments
    c.send(ack=high)
    assert c.sk.ca_state == TCP_CA_OPEN


# --- what is and is not a duplicate ACK outside Open --------------------------------
def test_data_with_the_same_ack_in_disorder_is_not_a_dupack():
    """RFC 5681 2 (b): a segment carrying data is not a duplicate ACK, also
    when the connection is not in the Open state (the slow path)."""
    c = _open("reno")
    base = _flight(c, 40)
    c.send(ack=base)                              # one real dupack: Disorder
    assert c.sk.ca_state == TCP_CA_DISORDER
    c.recv()
    for _ in range(3):
        c.send(b"d", ack=base)
    assert c.sk.sacked_out == 1 and c.sk.ca_state == TCP_CA_DISORDER
    assert c.host.mib["RetransSegs"] == 0


def test_data_with_the_same_ack_in_recovery_is_not_a_partial_ack():
    """RFC 6582: only an ACK that advances SND.UNA is a partial ACK; peer data
    acknowledging nothing new retransmits nothing."""
    c = _open("reno")
    base = _enter_recovery(c)
    c.send(b"d", ack=base)
    assert [s for s in c.recv() if s.payload] == []
    assert c.host.mib["RetransSegs"] == 1
    assert c.sk.sacked_out == 3


# --- Reno's emulated SACK count on partial ACKs (Linux tcp_remove_reno_sacks) ------------
def _reno_dupacks(n: int, nseg: int = 14) -> tuple[Conn, int]:
    c = _open("reno")
    c.sk.sendmsg(bytes(MSS * nseg))
    base = c.recv()[0].seq
    for _ in range(n):
        c.send(ack=base)
        c.recv()
    return c, base


def test_partial_ack_of_one_segment_keeps_the_dupack_count():
    """One acked segment is the hole itself: sacked_out -= acked - 1 = 0."""
    c, base = _reno_dupacks(3)
    c.send(ack=base + MSS)
    assert c.sk.sacked_out == 3


def test_partial_ack_inside_a_segment_keeps_the_dupack_count():
    c, base = _reno_dupacks(3)
    c.send(ack=base + 100)
    assert c.sk.ca_state == TCP_CA_RECOVERY and c.sk.sacked_out == 3


def test_partial_ack_of_more_segments_than_dupacks_empties_the_count():
    c, base = _reno_dupacks(3)
    c.send(ack=base + 6 * MSS)
    assert c.sk.sacked_out == 0
    assert c.sk.packets_out == 6


def test_dupack_count_stays_below_the_segments_outstanding():
    """Linux tcp_limit_reno_sacked: sacked_out + max(lost_out, 1) never
    exceeds packets_out, also after a partial ACK shrinks the flight."""
    c, base = _reno_dupacks(20)
    assert (c.sk.sacked_out, c.sk.packets_out) == (13, 14)
    c.send(ack=base + 3 * MSS)
    assert (c.sk.sacked_out, c.sk.packets_out) == (10, 11)


def test_sack_recovery_retransmits_a_second_hole_once_three_above_it_are_sacked():
    """RFC 6675 4 (IsLost): during recovery each new SACK re-evaluates which
    segments are lost; segment 5 is lost once 6, 7 and 8 are SACKed, and is
    retransmitted as soon as PRR lets a segment go (RFC 6937, ssthresh 5,
    RecoverFS 10): the SACK of 6 (prr_delivered 3, prr_out 1) sends new
    segment 12 (ceil(5 * 3 / 10) - 1 = 1); of 7, nothing (2 - 2); of 8,
    nothing (pipe 5 = ssthresh: PRR-SSRB's min(0, ...)); of 9, pipe 4 <
    ssthresh: one segment, the lost 5 before new data."""
    c, base, mss = _sack_open(tcp_recovery=0)
    out = []
    for k in (2, 3, 4, 5):                      # segment 0 lost, 1.. SACKed
        c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + k * mss),)))
        out.append([(s.seq - base) // mss for s in c.recv()])
    assert out == [[10], [11], [0], []]
    assert c.sk.ca_state == TCP_CA_RECOVERY
    out = []
    for k in (7, 8, 9, 10):                     # segment 5 lost too, 6.. SACKed
        blocks = ((base + 6 * mss, base + k * mss), (base + mss, base + 5 * mss))
        c.send(ack=base, opts=TcpOptions(sack_blocks=blocks))
        out.append([(s.seq - base) // mss for s in c.recv()])
    assert out == [[12], [], [], [5]]


# --- the congestion module hears every state change (tcp_set_ca_state) ------------------
class _Recording(Reno):
    """A congestion module that records its set_state calls."""

    def __init__(self) -> None:
        self.states: list[int] = []

    def set_state(self, tp, ca_state: int) -> None:
        self.states.append(ca_state)


def test_congestion_module_hears_disorder_recovery_and_open():
    """Linux tcp_set_ca_state: ca_ops->set_state on every change of state."""
    c = _open("reno")
    c.sk.ca_ops = rec = _Recording()
    base = _flight(c, 40)
    for _ in range(3):
        c.send(ack=base)
    c.send(ack=c.sk.high_seq)
    assert rec.states == [TCP_CA_DISORDER, TCP_CA_RECOVERY, TCP_CA_OPEN]


def test_congestion_module_hears_loss_and_open():
    c = _open("reno")
    c.sk.ca_ops = rec = _Recording()
    _flight(c, 40)
    c.host.advance(c.sk.rtx_timer.when)
    c.send(ack=c.sk.high_seq)
    assert rec.states == [TCP_CA_LOSS, TCP_CA_OPEN]


def test_more_dupacks_than_segments_beyond_the_hole_do_not_start_recovery():
    """Linux tcp_limit_reno_sacked: with three segments out and the first
    lost, at most two duplicate ACKs can be real; a third (a duplicated ACK)
    is not counted, so there is no fast retransmit."""
    c = _open("reno")
    c.sk.sendmsg(bytes(3 * MSS))
    base = c.recv()[0].seq
    for _ in range(4):
        c.send(ack=base)
    assert c.sk.sacked_out == 2
    assert c.sk.ca_state == TCP_CA_DISORDER
    assert c.host.mib["RetransSegs"] == 0


def test_a_dupack_with_one_segment_out_is_not_counted():
    """Linux tcp_limit_reno_sacked: with one segment outstanding it is the
    hole; no duplicate ACK can stand for a segment that left the network."""
    c = _open("reno")
    c.sk.sendmsg(bytes(MSS))
    base = c.recv()[0].seq
    c.send(ack=base)
    assert c.sk.sacked_out == 0 and c.sk.ca_state == TCP_CA_OPEN


class _TinySsthresh(_Recording):
    """A module whose ssthresh is below RFC 5681's floor of two segments."""

    def ssthresh(self, tp) -> int:
        return 1


def test_cwnd_in_and_after_recovery_is_at_least_two_segments():
    """RFC 5681 3.2 (ssthresh >= 2 * SMSS): whatever the module says, fast
    recovery ends at a window of at least two segments."""
    c = _open("reno")
    c.sk.ca_ops = _TinySsthresh()
    base = _enter_recovery(c)
    c.sk.snd_cwnd = 7
    c.send(ack=base + 12 * MSS)
    assert c.sk.ca_state == TCP_CA_OPEN
    # cwnd = 2, then congestion avoidance (cwnd >= ssthresh) for the 12
    # segments acked: + 12 // 2, nothing left over
    assert (c.sk.snd_cwnd, c.sk.snd_cwnd_cnt) == (8, 0)


def test_partial_ack_inside_the_retransmitted_segment_resends_the_rest():
    """RFC 6582 3.2 step 5: the first unacknowledged segment is retransmitted
    on a partial ACK, also when it is the retransmitted one, cut at the ACK."""
    c = _open("reno")
    base = _enter_recovery(c)
    c.send(ack=base + 100)
    segs = [s for s in c.recv() if s.payload]
    assert [(s.seq, len(s.payload)) for s in segs] == [(base + 100, MSS - 100)]
    assert c.host.mib["RetransSegs"] == 2
    assert (c.sk.retrans_out, c.sk.lost_out) == (1, 1)


def test_duplicate_ack_taken_by_header_prediction_is_counted():
    """The compiled receive path hands predicted bare ACKs to tcp_ack through
    tcp_ack_predicted: a duplicate ACK that way counts like any other
    (RFC 5681 2: no data, no window change, data outstanding)."""
    from tcpio.core.tcp import tcp_input
    c = _open("reno")
    base = _flight(c, 40)
    sk = c.sk
    taken = tcp_input._tcp_fast.rcv_established(
        sk, c.snd, base, sk.snd_wnd >> sk.snd_wscale, False, 0, 0, b"", c.host.now)
    assert taken
    assert sk.ca_state == TCP_CA_DISORDER and sk.sacked_out == 1
    assert _segno(c.recv(), base) == [10]        # limited transmit (RFC 3042)


def test_full_ack_with_new_data_still_out_forgets_the_dupacks():
    """RFC 6582 3.2 step 3 / Linux tcp_reset_reno_sack: leaving recovery
    clears Reno's duplicate-ACK count even when segments sent during
    recovery (beyond the recovery point) are still in flight."""
    c = _open("reno")
    base = _enter_recovery(c)
    assert [n for segs in _dupacks(c, base, 6) for n in segs] == [12, 13]
    c.send(ack=base + 12 * MSS)                   # the recovery point exactly
    assert c.sk.packets_out >= 2                  # 12 and 13 (and what this ACK sent)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.sacked_out == 0


def test_entering_sack_recovery_retransmits_every_lost_segment_the_window_allows():
    """RFC 6675 5 (NextSeg rule 1 before rule 2): on entering recovery the
    segments already deemed lost (3 SACKed above each: 0 and 2) go out
    before new data, as far as the pipe allows."""
    c, base, mss = _sack_open()
    blocks = ((base + 3 * mss, base + 10 * mss), (base + mss, base + 2 * mss))
    c.send(ack=base, opts=TcpOptions(sack_blocks=blocks))
    assert c.sk.ca_state == TCP_CA_RECOVERY
    assert [(s.seq - base) // mss for s in c.recv()] == [0, 2, 10, 11, 12]
