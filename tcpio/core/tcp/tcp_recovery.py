"""Loss detection for SACK connections: RACK (RFC 8985 section 6, Linux
net/ipv4/tcp_recovery.c), and entering fast recovery.

RACK marks a segment lost when a segment sent after it has been (S)ACKed and
more than RACK.rtt + reo_wnd has passed since it was sent: time, not a count
of duplicate ACKs, so a lost retransmission or a lost tail is found the same
way.  A segment not yet overdue waits for the reordering timer
(ICSK_TIME_REO_TIMEOUT, on the retransmit timer like the loss probe).
``rack_advance`` (RFC 8985 6.2 step 2) is one source with the compiled
retransmit-queue walk (tcpio/_fast/tcp_fast.py), which calls it for every
cumulatively acknowledged segment; tcp_sack calls it for SACKed ones.

Without SACK (Reno) loss detection stays the duplicate-ACK threshold of
RFC 5681/6582 (tcp_input.tcp_fastretrans_alert); with net.ipv4.tcp_recovery
bit 1 cleared a SACK connection uses RFC 6675's IsLost (tcp_sack.tcp_mark_lost).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ... import _fast
from . import tcp_output
from .tcp_states import TCP_CA_CWR, TCP_CA_RECOVERY, before

if TYPE_CHECKING:
    from tcpio._fast import tcp_fast as _tcp_fast

    from .sock import TcpSock
else:
    _tcp_fast = _fast.load("tcp_fast")
rack_advance = _tcp_fast.rack_advance

# net.ipv4.tcp_recovery bits
TCP_RACK_LOSS_DETECTION = 0x1
TCP_RACK_STATIC_REO_WND = 0x2
TCP_RACK_NO_DUPTHRESH = 0x4
TCP_RACK_RECOVERY_THRESH = 16      # recoveries a widened reo_wnd persists for

TCPCB_SACKED_ACKED = 1
TCPCB_SACKED_RETRANS = 2
TCPCB_LOST = 4


def tcp_is_rack(sk: TcpSock) -> bool:
    return sk.sack_ok and bool(sk.host.settings.tcp_recovery & TCP_RACK_LOSS_DETECTION)


def tcp_rack_reo_wnd(sk: TcpSock) -> float:
    """RFC 8985 6.2 step 4 (Linux tcp_rack_reo_wnd): until reordering has
    been seen, no settling time once in recovery or once DupThresh segments
    are SACKed (the classic trigger); otherwise min_rtt/4 per step (steps
    grow with D-SACKs), at most SRTT."""
    if not sk.reord_seen:
        if sk.ca_state >= TCP_CA_RECOVERY:
            return 0.0
        if (sk.sacked_out >= sk.reordering and
                not sk.host.settings.tcp_recovery & TCP_RACK_NO_DUPTHRESH):
            return 0.0
    return min(sk.min_rtt / 4 * sk.rack_reo_wnd_steps, sk.srtt)


def tcp_mark_skb_lost(sk: TcpSock, seg: Any) -> None:
    """tcp_mark_skb_lost: count a segment lost; a retransmission lost again
    leaves retrans_out so it is sent once more (TCPLostRetransmit)."""
    s = seg.sacked
    if s & TCPCB_SACKED_ACKED:
        return
    if s & TCPCB_LOST:
        if not s & TCPCB_SACKED_RETRANS:
            return
        seg.sacked = s & ~TCPCB_SACKED_RETRANS
        sk.retrans_out -= 1
        sk.host.mib["TCPLostRetransmit"] += 1
    else:
        seg.sacked = s | TCPCB_LOST
        sk.lost_out += 1
    sk.lost += 1
    # (tcp_verify_retransmit_hint: the retransmit walk starts no later than here)
    hint = sk.retransmit_hint
    if hint is None or before(seg.seq, hint):
        sk.retransmit_hint = seg.seq


def tcp_rack_detect_loss(sk: TcpSock, now: float) -> float:
    """RFC 8985 6.2 step 5: mark lost every segment sent before RACK.xmit_ts
    that is overdue by RACK.rtt + reo_wnd; return the longest time one not
    yet overdue still has (0: none)."""
    reo_wnd = tcp_rack_reo_wnd(sk)
    mstamp = sk.rack_mstamp
    end_seq = sk.rack_end_seq
    deadline = sk.rack_rtt + reo_wnd
    timeout = 0.0
    for seg in sk.rtx:
        s = seg.sacked
        if s & TCPCB_SACKED_ACKED:
            continue
        if s & TCPCB_LOST and not s & TCPCB_SACKED_RETRANS:
            continue            # marked lost, not yet retransmitted
        t = seg.tstamp
        # Sent before the latest delivered segment?  Segments sent at the
        # same instant (one batch shares host.now) are ordered by sequence,
        # which is their send order for first transmissions only: a
        # retransmission may have gone out after new data of that instant,
        # so a tie never makes it "sent before".
        if not (mstamp > t or (mstamp == t and not seg.retrans
                               and before(seg.end_seq, end_seq))):
            continue
        remaining = deadline - (now - t)
        if remaining <= 0:
            tcp_mark_skb_lost(sk, seg)
        elif remaining > timeout:
            timeout = remaining
    return timeout


def tcp_rack_mark_lost(sk: TcpSock, now: float) -> bool:
    """tcp_rack_mark_lost: run loss detection if an ACK advanced RACK; arm
    the reordering timer for the segments still within the window.  True
    when the timer was armed (it then replaces the RTO/probe timer)."""
    if not sk.rack_advanced:
        return False
    sk.rack_advanced = False
    timeout = tcp_rack_detect_loss(sk, now)
    if not timeout:
        return False
    sk.pending = tcp_output.ICSK_TIME_REO_TIMEOUT
    sk.rtx_timer_made().arm(now + min(timeout + tcp_output.TCP_TIMEOUT_MIN, sk.rto))
    return True


def tcp_rack_reo_timeout(sk: TcpSock, now: float) -> None:
    """The reordering timer fired (tcp_rack_reo_timeout): what is overdue
    now is lost; start fast recovery if not in it, and retransmit."""
    prior_inflight = sk.tcp_packets_in_flight
    lost = sk.lost
    tcp_rack_detect_loss(sk, now)
    if prior_inflight != sk.tcp_packets_in_flight:
        if sk.ca_state != TCP_CA_RECOVERY:
            tcp_enter_recovery(sk, now)
            tcp_cwnd_reduction(sk, 1, sk.lost - lost, False)
        tcp_output.tcp_xmit_retransmit_queue(sk, now)
    if sk.pending != tcp_output.ICSK_TIME_RETRANS:
        tcp_output.tcp_rearm_rto(sk, now)


def tcp_rack_update_reo_wnd(sk: TcpSock, now: float) -> None:
    """tcp_rack_update_reo_wnd (RFC 8985 6.2 step 4): a D-SACK after
    reordering was seen suggests RACK's window was too short: widen it by
    min_rtt/4, at most once per round trip, and keep it for 16 recoveries;
    then back to one step.  (Linux measures "a round trip" in delivered
    packets; here in time, SRTT since the last widening.)"""
    if sk.host.settings.tcp_recovery & TCP_RACK_STATIC_REO_WND:
        return
    if sk.rack_dsack_seen and now - sk.rack_reo_wnd_stamp < sk.srtt:
        sk.rack_dsack_seen = False
    if sk.rack_dsack_seen:
        sk.rack_reo_wnd_steps = min(0xFF, sk.rack_reo_wnd_steps + 1)
        sk.rack_dsack_seen = False
        sk.rack_reo_wnd_stamp = now
        sk.rack_reo_wnd_persist = TCP_RACK_RECOVERY_THRESH
    elif not sk.rack_reo_wnd_persist:
        sk.rack_reo_wnd_steps = 1


def tcp_check_sack_reordering(sk: TcpSock, low_seq: int, fack: int) -> None:
    """tcp_check_sack_reordering: a segment never retransmitted arrived
    below ``fack``, the highest SACKed sequence: reordering.  The degree
    (in segments) raises the dupthresh RACK waits for (tp->reordering)."""
    if not before(low_seq, fack):
        return
    mss = sk.mss_cache
    metric = (fack - low_seq) & 0xFFFFFFFF
    if mss and metric > sk.reordering * mss:
        sk.reordering = min((metric + mss - 1) // mss, sk.host.settings.tcp_max_reordering)
    sk.reord_seen += 1
    sk.host.mib["TCPSACKReorder"] += 1


def tcp_highest_sack_seq(sk: TcpSock) -> int:
    """The end of the highest SACKed segment (RACK.fack), or snd_una."""
    return sk.highest_sack if sk.sacked_out else sk.snd_una


# --- entering fast recovery ------------------------------------------------------------
def tcp_mark_head_lost(sk: TcpSock) -> None:
    sk.retransmit_hint = None
    for seg in sk.rtx:
        if seg.sacked & 1:
            continue
        if not seg.sacked & 4:
            # (never retransmitted yet: every retransmission is of a segment
            # marked lost, and tcp_enter_loss marks them all)
            seg.sacked |= 4
            sk.lost_out += 1
            sk.lost += 1
        elif seg.sacked & 2 and not sk.sack_ok:
            # NewReno: a partial ACK inside the retransmitted head: send the
            # rest of it again
            seg.sacked &= ~2
            sk.retrans_out -= 1
        break


def tcp_enter_recovery(sk: TcpSock, now: float) -> None:
    """Fast recovery (RFC 5681 / RFC 6675; Linux tcp_enter_recovery and
    tcp_init_cwnd_reduction): the CC module's ssthresh, and Proportional
    Rate Reduction from the cwnd now (prior_cwnd).  Nothing is sent here:
    the caller's tcp_cwnd_reduction makes room for the fast retransmit and
    tcp_xmit_retransmit_queue sends it."""
    sk.host.mib["TCPRenoRecovery" if not sk.sack_ok else "TCPSackRecovery"] += 1
    if sk.ca_state != TCP_CA_CWR:
        # (from CWR the window is already being reduced: not again)
        tcp_output.tcp_init_cwnd_reduction(sk)
    sk.ca_state = TCP_CA_RECOVERY
    sk.ca_ops.set_state(sk, TCP_CA_RECOVERY)
    if not tcp_is_rack(sk):
        tcp_mark_head_lost(sk)


def tcp_cwnd_reduction(sk: TcpSock, newly_acked_sacked: int, newly_lost: int,
                       una_advanced: bool) -> None:
    """Proportional Rate Reduction (RFC 6937, Linux tcp_cwnd_reduction),
    on every ACK in Recovery (or CWR): while more is in flight than
    ssthresh, send ssthresh/prior_cwnd of what was delivered (prr_delivered,
    prr_out); below it, slow start back up to it (PRR-SSRB: what was
    delivered, one more on an ACK that advanced snd_una, ``una_advanced``,
    without new losses).
    The first ACK always lets the fast retransmit go."""
    if newly_acked_sacked <= 0 or not sk.prior_cwnd:
        return
    in_flight = sk.packets_out - (sk.sacked_out + sk.lost_out) + sk.retrans_out
    delta = sk.snd_ssthresh - in_flight
    sk.prr_delivered += newly_acked_sacked
    if delta < 0:
        sndcnt = ((sk.snd_ssthresh * sk.prr_delivered + sk.prior_cwnd - 1)
                  // sk.prior_cwnd - sk.prr_out)
    else:
        sndcnt = max(sk.prr_delivered - sk.prr_out, newly_acked_sacked)
        if una_advanced and not newly_lost:
            sndcnt += 1
        sndcnt = min(delta, sndcnt)
    sndcnt = max(sndcnt, 0 if sk.prr_out else 1)
    sk.snd_cwnd = in_flight + sndcnt


def tcp_retransmit_head(sk: TcpSock, now: float) -> None:
    """Retransmit the first segment if it is marked lost and not yet resent,
    outside the congestion window (Reno's partial ACK, RFC 6582 3.2 step 5);
    PRR counts it (prr_out)."""
    head = sk.rtx[0] if sk.rtx else None
    if head is not None and head.sacked & 4 and not head.sacked & 3:
        tcp_output.tcp_retransmit_skb(sk, head, now)
        sk.prr_out += 1
        sk.host.mib["TCPFastRetrans"] += 1
