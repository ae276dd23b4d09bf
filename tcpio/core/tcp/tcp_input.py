"""Receiving side (net/ipv4/tcp_input.c): the state machine for full socks.

``tcp_rcv_established`` is header prediction (tcpio._fast.tcp_fast's, called
for every candidate segment); everything else goes through
``tcp_rcv_state_process``, which follows RFC 9293 3.10.7 and Linux's order of
checks: PAWS, sequence acceptability, RST, SYN (RFC 5961), ACK, data, FIN.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, cast

from ... import _fast
from ..timer import NO_TIMER
from . import tcp_output, tcp_sack
from .tcp_recovery import (
    tcp_cwnd_reduction,
    tcp_enter_recovery,
    tcp_highest_sack_seq,
    tcp_is_rack,
    tcp_mark_head_lost,
    tcp_mark_skb_lost,
    tcp_rack_mark_lost,
    tcp_rack_update_reo_wnd,
)
from .tcp_recovery import tcp_retransmit_head as _tcp_retransmit_head
from .tcp_output import (
    tcp_receive_window,
    tcp_send_ack,
    tcp_time_stamp,
    tcp_write_xmit,
    tcp_xmit_retransmit_queue,
)
from .tcp_sack import FLAG_DSACK_TLP, FLAG_SACKED, NO_OFO
from .tcp_states import (
    RCV_SHUTDOWN,
    TCP_CA_CWR,
    TCP_CA_DISORDER,
    TCP_CA_LOSS,
    TCP_CA_OPEN,
    TCP_CA_RECOVERY,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    TCPHDR_URG,
    after,
    before,
    seq_diff,
)
from .tcp_timer import (
    tcp_clamp_probe0_to_user_timeout,
    tcp_fin_wait2_orphan,
    tcp_set_keepalive,
)

if TYPE_CHECKING:
    from .sock import TcpSock

TcpOptions = _fast.load("wire").TcpOptions
_NO_OPTIONS = TcpOptions()

# Header prediction's in-order data path: compiled (or its twin), shared with
# the receive classifier in tcpio._fast.rx, which calls it for the common
# segment before any Python runs.  It calls back here to send an ACK.
# mypy reads the one source (tcpio/_fast/tcp_fast.py); at run time _fast.load
# picks its compiled module or the same file run interpreted.
if TYPE_CHECKING:
    from tcpio._fast import syn_fast as _syn_fast
    from tcpio._fast import tcp_fast as _tcp_fast
else:
    _tcp_fast = _fast.load("tcp_fast")
    _syn_fast = _fast.load("syn_fast")
rcv_established_fast = _tcp_fast.rcv_established
rcv_window_ack_fast = _tcp_fast.rcv_window_ack
clean_rtx_queue_walk = _tcp_fast.clean_rtx_queue
ack_fast = _tcp_fast.ack_fast
tcp_check_space = _tcp_fast.check_space
ack_update_window = _tcp_fast.ack_update_window
rcv_pool_note = _tcp_fast.rcv_pool_note
may_update_window = _tcp_fast.may_update_window
ack_rtt = _tcp_fast.ack_rtt
_cwnd_limited = _tcp_fast.cwnd_limited
# tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS)'s count: tcp_incr_quickack,
# the first data's rule too (tcp_fast.event_data_recv), so a small window
# gets fewer quick ACKs than 16 (Linux: rcv_wnd / (2 * rcv_mss), 0 -> 2)
tcp_incr_quickack = _tcp_fast.incr_quickack

# tcp_ack() flags
FLAG_DATA = 0x01
FLAG_WIN_UPDATE = 0x02
FLAG_SND_UNA_ADVANCED = 0x400
# tcp_ack's answer for an ACK below snd_una (Linux's old_ack exit, which
# returns before tcp_replace_ts_recent)
FLAG_OLD_ACK = 0x100000
# (Linux's FLAG_DATA_ACKED is left out: segments are acked only when SND.UNA
# advances, which FLAG_SND_UNA_ADVANCED already says.)
FLAG_NOT_DUP = FLAG_DATA | FLAG_WIN_UPDATE

TCP_MAX_QUICKACKS = 16
TCP_PAWS_24DAYS = 24 * 86400
TCP_PAWS_WINDOW = 1       # ticks of TSval a segment may be older than TS.Recent
TCP_PAWS_MSL = 60         # seconds: a RST's PAWS is waived past it (tcp_paws_reject)
DUPTHRESH = 3  # tp->reordering


class Skb:
    """One received segment, parsed (the parts of struct tcp_skb_cb we use)."""

    __slots__ = ("ack_seq", "data", "end_seq", "flags", "gso_segs", "gso_size", "opts", "seq",
                 "th", "window")

    def __init__(self, th: Any, data: Any, gso_segs: int = 1, gso_size: int = 0) -> None:
        # skb_shinfo: a super-segment (GRO's aggregate) stands for gso_segs
        # segments of gso_size bytes
        self.gso_segs = gso_segs
        self.gso_size = gso_size
        self.th = th
        self.seq = th.seq
        flags = th.flags
        self.flags = flags
        self.end_seq = (th.seq + len(data) + (flags & TCPHDR_SYN and 1) +
                        (flags & TCPHDR_FIN)) & 0xFFFFFFFF
        self.ack_seq = th.ack
        self.window = th.window
        self.opts = th.options
        self.data = data

    @classmethod
    def pure_ack(cls, seq: int, ack: int, window: int, opts: Any) -> Skb:
        """A bare ACK (no SYN/FIN/RST/URG, no data) from its fields, for the
        fast path, which parsed the header itself (``th`` is None)."""
        skb = cls.__new__(cls)
        skb.gso_segs = 1
        skb.gso_size = 0
        skb.th = None
        skb.seq = skb.end_seq = seq
        skb.flags = TCPHDR_ACK
        skb.ack_seq = ack
        skb.window = window
        skb.opts = opts
        skb.data = b""
        return skb


# --- the fast path ---------------------------------------------------------------
def tcp_rcv_established(sk: TcpSock, skb: Skb, now: float) -> None:
    """Header prediction is tcp_fast.rcv_established's (the classifier usually
    ran it on the whole frame already; this is the layered path, e.g.
    loopback): only the header checks the classifier makes while parsing are
    here (flags exactly ACK, no SACK blocks); this call also takes in-order
    data acking new data.  Whatever it declines is the state machine's."""
    opts = skb.opts
    ts_val = opts.ts_val
    if (skb.flags & (TCPHDR_SYN | TCPHDR_FIN | TCPHDR_RST | TCPHDR_URG | TCPHDR_ACK)
            != TCPHDR_ACK or opts.sack_blocks):
        tcp_rcv_state_process(sk, skb, now)
        return
    has_ts = ts_val is not None
    if not (rcv_established_fast(sk, skb.seq, skb.ack_seq, skb.window, has_ts, ts_val or 0,
                                 opts.ts_ecr or 0, skb.data, now, True, skb.gso_segs,
                                 skb.gso_size, counted=True)
            or rcv_window_ack_fast(sk, skb.flags, skb.seq, skb.ack_seq, skb.window, has_ts,
                                   ts_val or 0, opts.ts_ecr or 0, len(skb.data), now, True,
                                   skb.gso_segs)):
        tcp_rcv_state_process(sk, skb, now)


def tcp_ack_predicted(sk: TcpSock, seq: int, ack: int, window: int, ts_val: int | None,
                      ts_ecr: int | None, now: float, flag: int = 0) -> None:
    """An ACK that header prediction accepted (tcp_fast.rcv_established did the
    checks and the timestamp bookkeeping, and queued the data of a segment
    with ``flag`` FLAG_DATA): tcp_ack, then send what it allows."""
    # tcp_ack compiled for the ACK of new data in the Open state
    # (tcp_fast.ack_fast); a bare ACK (no FLAG_DATA) comes here only after
    # tcp_fast's _ack_bare tried it already
    if not (flag & FLAG_DATA and ack_fast(sk, seq, ack, window, ts_ecr or 0, now)):
        opts = _NO_OPTIONS if ts_val is None else TcpOptions(ts_val=ts_val, ts_ecr=ts_ecr)
        tcp_ack(sk, Skb.pure_ack(seq, ack, window, opts), now, flag)
    if flag & FLAG_DATA:
        tcp_data_snd_check(sk, now)
    else:
        tcp_data_snd_check_batched(sk, now)


# --- the slow path -----------------------------------------------------------------
def tcp_rcv_state_process(sk: TcpSock, skb: Skb, now: float) -> None:
    """Every state except LISTEN / NEW_SYN_RECV / TIME_WAIT (those live in
    tcp_ipv4 and tcp_minisocks)."""
    state = sk.state
    if state == TCP_SYN_SENT:
        tcp_rcv_synsent_state_process(sk, skb, now)
        return
    if state == TCP_CLOSE:
        return
    if not tcp_validate_incoming(sk, skb, now):
        return
    flags = skb.flags
    if not flags & TCPHDR_ACK:
        return   # RFC 9293: if the ACK bit is off, drop the segment
    sk.rcv_tstamp = now
    if state == TCP_SYN_RECV:
        # simultaneous open: our SYN-ACK must be acknowledged exactly
        if not (after(skb.ack_seq, sk.snd_una) and not after(skb.ack_seq, sk.snd_nxt)):
            sk.proto.tcp_v4_send_reset(sk.laddr, sk.raddr, skb)
            return
        # tcp_ack takes the window: this ACK advances SND.UNA past our SYN.
        acked = tcp_ack(sk, skb, now, FLAG_DATA if skb.data else 0)
        tcp_finish_connect(sk, now)
        state = sk.state
    else:
        acked = tcp_ack(sk, skb, now, FLAG_DATA if skb.data else 0)
        if acked < 0:
            return
        if sk.state == TCP_CLOSE:
            return
    # tcp_replace_ts_recent (tcp_ack's FLAG_UPDATE_TS_RECENT, past its old-ACK
    # exit): never back to an older TSval (one that passed PAWS within
    # TCP_PAWS_WINDOW, or a disordered ACK's), nor from an old ACK
    ts_val = skb.opts.ts_val
    if (sk.tstamp_ok and ts_val is not None and acked != FLAG_OLD_ACK
            and not after(skb.seq, sk.rcv_wup)
            and (not before(ts_val, sk.ts_recent) or tcp_paws_check(sk, ts_val, 0, now))):
        sk.ts_recent = ts_val
        sk.ts_recent_stamp = now
    fin_acked = sk.fin_queued and sk.snd_una == ((sk.write_seq + 1) & 0xFFFFFFFF)
    if state == TCP_FIN_WAIT1 and fin_acked:
        # (SEND_SHUTDOWN is already set: only shutdown/close queue a FIN; the
        # ACK of the FIN freed a segment, so tcp_ack scheduled the wakeup.)
        sk.proto.tcp_set_state(sk, TCP_FIN_WAIT2)
        if sk.orphan:
            # An orphan has nobody to read more data: if data arrives now,
            # abort like Linux (TCPAbortOnData); else wait tcp_fin_timeout.
            if skb.end_seq != skb.seq and after(skb.end_seq, sk.rcv_nxt) and not skb.flags & TCPHDR_FIN:
                tcp_abort_on_data(sk, skb)
                return
            if not skb.flags & TCPHDR_FIN:
                tcp_fin_wait2_orphan(sk, now)
                return
    elif state == TCP_CLOSING and fin_acked:
        sk.proto.tcp_time_wait(sk, TCP_TIME_WAIT, now)
        return
    elif state == TCP_LAST_ACK and fin_acked:
        sk.proto.tcp_done(sk)
        return
    # process the segment text (``state`` may still say FIN_WAIT1 after the
    # move to FIN_WAIT2 above: both are treated alike below)
    if state in (TCP_CLOSE_WAIT, TCP_CLOSING, TCP_LAST_ACK):
        # The peer already sent FIN: later data is a protocol error; ignore it.
        if not before(skb.seq, sk.rcv_nxt):
            if skb.data or flags & TCPHDR_FIN:
                tcp_data_snd_check(sk, now)
            else:
                tcp_data_snd_check_batched(sk, now)
            __tcp_ack_snd_check(sk, now)
            return
    elif (state in (TCP_FIN_WAIT1, TCP_FIN_WAIT2) and sk.orphan and skb.data
          and after(skb.end_seq, sk.rcv_nxt)):
        # Nobody will ever read this data (tcp_rcv_state_process: TCPAbortOnData).
        tcp_abort_on_data(sk, skb)
        return
    if flags & TCPHDR_URG:
        tcp_check_urg(sk, skb)
    if skb.data or skb.flags & TCPHDR_FIN:
        tcp_data_queue(sk, skb, now)
        # (A FIN that ended the connection has sent its ACK: both checks
        # below return at once for a closed or dead sock.)
        tcp_data_snd_check(sk, now)
    else:
        tcp_data_snd_check_batched(sk, now)
    __tcp_ack_snd_check(sk, now)
    return


def tcp_finish_connect(sk: TcpSock, now: float) -> None:
    sk.proto.tcp_set_state(sk, TCP_ESTABLISHED)
    # (lsndtime from the handshake, as Linux stamps it: the idle clock of
    # tcp_out_of_resources and TCP_INFO's last_data_sent; the idle restart
    # it allows at the first send changes nothing at the initial window)
    sk.rcv_tstamp = sk.lsndtime = now
    sk.ca_ops.init(sk, now)
    if sk.opts.keepalive:
        tcp_set_keepalive(sk, now)
    tcp_output.sndbuf_expand(sk)
    # The SYN's retransmit timer, cancelled by tcp_ack unless data is in
    # flight, goes (its stale heap entry drops it): made again when first
    # armed, so an idle client keeps no timer, as an idle accepted
    # connection (issue 11: objects for the cycle collector to scan)
    if not sk.rtx_timer.pending:
        sk.rtx_timer = NO_TIMER
    # (no wakeup here: the ACK of our SYN freed a segment, so tcp_ack, which
    # both callers ran just before, scheduled it)


# --- SYN_SENT (tcp_rcv_synsent_state_process) ------------------------------------------
def tcp_rcv_synsent_state_process(sk: TcpSock, skb: Skb, now: float) -> None:
    flags = skb.flags
    opts = skb.opts
    if flags & TCPHDR_ACK:
        # RFC 9293: an ACK for something we never sent gets a RST (unless RST).
        if not after(skb.ack_seq, sk.iss) or after(skb.ack_seq, sk.snd_nxt):
            if not flags & TCPHDR_RST:
                sk.proto.tcp_v4_send_reset(sk.laddr, sk.raddr, skb)
            return
        if (sk.tstamp_ok and opts.ts_ecr is not None and opts.ts_ecr and
                flags & TCPHDR_SYN and not flags & TCPHDR_RST):
            # tcp_rcv_synsent: PAWS on the echoed value (it must be one we sent)
            ours = (tcp_time_stamp(now) + sk.ts_off) & 0xFFFFFFFF
            if after(opts.ts_ecr, ours):
                sk.host.mib["PAWSActiveRejected"] += 1
                return
        if flags & TCPHDR_RST:
            tcp_reset(sk, now)
            return
        if not flags & TCPHDR_SYN:
            return
        # SYN-ACK: the connection is established.
        _tcp_accept_syn_options(sk, skb)
        sk.irs = skb.seq
        sk.rcv_nxt = (skb.seq + 1) & 0xFFFFFFFF
        sk.rcv_wup = sk.rcv_nxt
        # tcp_ack takes SND.WND (unscaled in a SYN), SND.WL1 and max_window:
        # the ACK advances SND.UNA past our SYN.
        tcp_ack(sk, skb, now, 0)
        tcp_output.tcp_sync_mss(sk, sk.proto.route_mtu(sk.raddr))
        tcp_initialize_rcv_mss(sk)
        tcp_finish_connect(sk, now)
        tcp_send_ack(sk, now)
        tcp_data_snd_check(sk, now)
        return
    if flags & TCPHDR_RST:
        return
    if flags & TCPHDR_SYN:
        # Simultaneous open (RFC 9293 figure 7): SYN_RECV and answer SYN-ACK.
        _tcp_accept_syn_options(sk, skb)
        sk.irs = skb.seq
        sk.rcv_nxt = (skb.seq + 1) & 0xFFFFFFFF
        sk.rcv_wup = sk.rcv_nxt
        sk.snd_wl1 = skb.seq
        sk.snd_wnd = skb.window
        sk.max_window = max(sk.max_window, sk.snd_wnd)
        tcp_output.tcp_sync_mss(sk, sk.proto.route_mtu(sk.raddr))
        sk.proto.tcp_set_state(sk, TCP_SYN_RECV)
        # (our SYN stays queued as it is: its retransmission carries the ACK)
        tcp_output.tcp_send_synack(sk, now)
    return


def _tcp_accept_syn_options(sk: TcpSock, skb: Skb) -> None:
    """Options negotiated by the peer's SYN (tcp_parse_options on a SYN)."""
    opts = skb.opts
    if opts.mss:
        # tcp_parse_options: the peer's MSS, bounded by our TCP_MAXSEG
        sk.mss_clamp = min(opts.mss, sk.opts.user_mss) if sk.opts.user_mss else opts.mss
    if sk.wscale_ok and opts.wscale is not None:
        sk.snd_wscale = min(opts.wscale, 14)
    else:
        sk.wscale_ok = False
        sk.snd_wscale = 0
        sk.rcv_wscale = 0
    sk.sack_ok = sk.sack_ok and bool(opts.sack_ok)
    sk.window_clamp = 65535 << sk.rcv_wscale
    if sk.tstamp_ok and opts.ts_val is not None:
        sk.ts_recent = opts.ts_val
        sk.ts_recent_stamp = sk.host.now
    else:
        sk.tstamp_ok = False


# --- validation (tcp_validate_incoming) --------------------------------------------------
def tcp_sequence(sk: TcpSock, seq: int, end_seq: int) -> bool:
    """RFC 9293 acceptability, as Linux checks it (left edge = rcv_wup)."""
    return (not before(end_seq, sk.rcv_wup) and
            not after(seq, (sk.rcv_nxt + tcp_receive_window(sk)) & 0xFFFFFFFF))


def paws_check(ts_recent: int, ts_recent_stamp: float, ts_val: int, paws_win: int,
               now: float) -> bool:
    """tcp_paws_check (RFC 7323 5.3): ``ts_val`` passes PAWS if it is at most
    ``paws_win`` ticks older than TS.Recent, or TS.Recent is too old to trust
    (24 days idle: the peer's clock may have wrapped), or TS.Recent is 0 (some
    stacks send tsval 0 on the SYN, then real values)."""
    return (seq_diff(ts_recent, ts_val) <= paws_win
            or now - ts_recent_stamp > TCP_PAWS_24DAYS
            or not ts_recent)


def tcp_paws_check(sk: TcpSock, ts_val: int, paws_win: int, now: float) -> bool:
    """paws_check against the connection's TS.Recent."""
    return paws_check(sk.ts_recent, sk.ts_recent_stamp, ts_val, paws_win, now)


def tcp_paws_reject(ts_recent: int, ts_recent_stamp: float, ts_val: int, rst: bool,
                    now: float) -> bool:
    """tcp_paws_reject, the mini socks' PAWS (TIME-WAIT, a request): no slack
    (any TSval older than TS.Recent), except a RST once TS.Recent is
    TCP_PAWS_MSL (60 s) old: a peer that rebooted with a new clock must
    still be able to reset a half-open connection."""
    if paws_check(ts_recent, ts_recent_stamp, ts_val, 0, now):
        return False
    return not (rst and now - ts_recent_stamp >= TCP_PAWS_MSL)


def tcp_tsval_replay(sk: TcpSock) -> int:
    """tcp_tsval_replay: how far the peer's TSval clock may run in one RTO,
    the replay window a disordered ACK may sit in.  RFC 7323 asks for a
    clock of 1 ms to 1 s a tick; some stacks (old Linux among them) tick at
    1200 Hz, so Linux allows 1200 ticks a second."""
    return int(sk.rto * 1200)


# tcp_disordered_ack_check's verdicts: a PAWS failure to answer with a dupack
# (SKB_DROP_REASON_TCP_RFC7323_PAWS), or an old pure ACK to drop silently
# (..._PAWS_ACK); 0: the segment is a disordered ACK, exempt from PAWS.
PAWS_REJECT = 1
PAWS_OLD_ACK = 2


def tcp_disordered_ack_check(sk: TcpSock, skb: Skb) -> int:
    """tcp_disordered_ack_check: a segment that failed PAWS is still taken if
    it is a pure ACK at rcv_nxt that duplicates snd_una, does not update the
    window and is within one RTO's replay window of TS.Recent (ACKs reordered
    behind data, e.g. across transmit queues; this only feeds fast
    retransmit and congestion control, never data).  A pure ACK from before
    rcv_nxt is an old ACK: dropped without an answer (Linux 6.15+)."""
    seq = skb.seq
    if not skb.flags & TCPHDR_ACK or seq != skb.end_seq:
        return PAWS_REJECT
    if seq != sk.rcv_nxt:
        return PAWS_OLD_ACK if before(seq, sk.rcv_nxt) else PAWS_REJECT
    if skb.ack_seq != sk.snd_una:
        return PAWS_REJECT
    if may_update_window(sk, skb.ack_seq, seq, skb.window << sk.snd_wscale):
        return PAWS_REJECT
    if seq_diff(sk.ts_recent, skb.opts.ts_val) > tcp_tsval_replay(sk):
        return PAWS_REJECT
    return 0


def tcp_validate_incoming(sk: TcpSock, skb: Skb, now: float) -> bool:
    flags = skb.flags
    ts_val = skb.opts.ts_val
    # RFC 7323 H1: PAWS first (TCP_PAWS_WINDOW: one tick of slack); a RST
    # is taken even if it fails, a SYN is challenged
    if (sk.tstamp_ok and ts_val is not None and before(ts_val, sk.ts_recent)
            and not tcp_paws_check(sk, ts_val, TCP_PAWS_WINDOW, now)):
        reason = tcp_disordered_ack_check(sk, skb)
        if reason and not flags & TCPHDR_RST:
            if flags & TCPHDR_SYN:
                return _syn_challenge(sk, now)
            mib = sk.host.mib
            if reason == PAWS_OLD_ACK:
                mib["PAWSOldAck"] += 1      # common: no dupack for it
                return False
            mib["PAWSEstabRejected"] += 1
            if not tcp_oow_rate_limited(sk.host, skb, "TCPACKSkippedPAWS", sk, now):
                tcp_send_dupack(sk, skb, now)
            return False
    if not tcp_sequence(sk, skb.seq, skb.end_seq):
        if not flags & TCPHDR_RST:
            if flags & TCPHDR_SYN:
                return _syn_challenge(sk, now)
            if not tcp_oow_rate_limited(sk.host, skb, "TCPACKSkippedSeq", sk, now):
                tcp_send_dupack(sk, skb, now)
        return False
    if flags & TCPHDR_RST:
        # RFC 5961 3.2: only an exact match resets; in-window ones are challenged.
        if skb.seq == sk.rcv_nxt:
            tcp_reset(sk, now)
        else:
            tcp_send_challenge_ack(sk, now)
        return False
    if flags & TCPHDR_SYN and sk.state != TCP_SYN_RECV:
        # RFC 5961 4.2: SYN in a synchronized state -> challenge ACK.
        return _syn_challenge(sk, now)
    return True


def _syn_challenge(sk: TcpSock, now: float) -> bool:
    """tcp_validate_incoming's syn_challenge: a SYN on a synchronized
    connection (RFC 5961 4.2), wherever it failed, gets a challenge ACK and
    is dropped (False)."""
    sk.host.mib["TCPSYNChallenge"] += 1
    tcp_send_challenge_ack(sk, now)
    return False


def __tcp_oow_rate_limited(host: Any, counter: str, owner: Any, now: float) -> bool:
    """__tcp_oow_rate_limited: at most one ACK per tcp_invalid_ratelimit (500 ms)
    for ``owner``'s out-of-window and challenge ACKs (a sock's, or a request
    sock's, a time-wait sock's: its ``last_oow_ack_time``); a skipped one is
    counted in ``counter`` (TCPACKSkippedSeq, TCPACKSkippedPAWS,
    TCPACKSkippedChallenge, TCPACKSkippedSynRecv, TCPACKSkippedTimeWait)."""
    last = owner.last_oow_ack_time
    if last is not None and 0 <= now - last < host.settings.tcp_invalid_ratelimit:
        host.mib[counter] += 1
        return True
    owner.last_oow_ack_time = now
    return False


def tcp_oow_rate_limited(host: Any, skb: Skb, counter: str, owner: Any, now: float) -> bool:
    """Rate-limit ACKs for out-of-window segments without data (tcp_oow_rate_limited:
    data without SYN is not part of an ACK loop and is always answered)."""
    if skb.seq != skb.end_seq and not skb.flags & TCPHDR_SYN:
        return False
    return __tcp_oow_rate_limited(host, counter, owner, now)


def tcp_send_challenge_ack(sk: TcpSock, now: float) -> None:
    """RFC 5961 7 challenge ACK, as Linux 6.x limits it: first per socket
    (tcp_invalid_ratelimit, TCPACKSkippedChallenge), then by the host-wide
    budget when tcp_challenge_ack_limit is set (off by default since 6.0,
    which closed the CVE-2016-5696 side channel)."""
    if __tcp_oow_rate_limited(sk.host, "TCPACKSkippedChallenge", sk, now):
        return
    if sk.proto.challenge_ack_allowed(now):
        tcp_send_ack(sk, now)


def tcp_current_ssthresh(sk: TcpSock) -> int:
    """tcp_current_ssthresh: in CWR or Recovery the threshold itself, otherwise
    at least three quarters of the window in use."""
    if sk.ca_state in (TCP_CA_CWR, TCP_CA_RECOVERY):
        return sk.snd_ssthresh
    return max(sk.snd_ssthresh, (sk.snd_cwnd >> 1) + (sk.snd_cwnd >> 2))


def tcp_simple_retransmit(sk: TcpSock, now: float) -> None:
    """tcp_simple_retransmit: the path MTU fell, so every queued segment longer
    than the new MSS is lost; resend them (cut to size) at once.  The window is
    left alone: no more data is in the network, only smaller units of it."""
    mss = tcp_output.tcp_current_mss(sk)
    for seg in sk.rtx:
        if not seg.flags & TCPHDR_SYN and \
                seq_diff(seg.end_seq, seg.seq) - (1 if seg.flags & TCPHDR_FIN else 0) > mss:
            tcp_mark_skb_lost(sk, seg)
    if not sk.lost_out:
        return
    if sk.ca_state != TCP_CA_LOSS:
        sk.high_seq = sk.snd_nxt
        sk.snd_ssthresh = tcp_current_ssthresh(sk)
        sk.prior_ssthresh = 0           # (no undo: this was no congestion signal)
        sk.ca_state = TCP_CA_LOSS
    tcp_xmit_retransmit_queue(sk, now)


def tcp_enter_quickack_mode(sk: TcpSock, max_quickacks: int = TCP_MAX_QUICKACKS) -> None:
    """tcp_enter_quickack_mode: ACK the next segments at once (tcp_incr_quickack's
    count) and leave pingpong mode (inet_csk_exit_pingpong_mode).  tcpio
    enters it also for out-of-order data, where Linux ACKs at once without it."""
    tcp_incr_quickack(sk, max_quickacks)
    sk.pingpong = 0


def tcp_send_dupack(sk: TcpSock, skb: Skb, now: float) -> None:
    if skb.end_seq != skb.seq and before(skb.seq, sk.rcv_nxt):
        sk.host.mib["DelayedACKLost"] += 1
        end = skb.end_seq if before(skb.end_seq, sk.rcv_nxt) else sk.rcv_nxt
        tcp_sack.tcp_dsack_set(sk, skb.seq, end)
        tcp_enter_quickack_mode(sk)
    tcp_send_ack(sk, now)


def tcp_reset(sk: TcpSock, now: float) -> None:
    """A valid RST arrived (tcp_reset): report the error and close."""
    state = sk.state
    if state == TCP_SYN_SENT:
        err = errno.ECONNREFUSED
    elif state == TCP_CLOSE_WAIT:
        err = errno.EPIPE
    else:
        err = errno.ECONNRESET
    if state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
        sk.host.mib["EstabResets"] += 1
    if not sk.orphan:
        sk.sk_err = err
    sk.proto.tcp_done(sk)


# --- ACK processing (tcp_ack) ------------------------------------------------------------
def tcp_abort_on_data(sk: TcpSock, skb: Skb) -> None:
    """Data for a socket nobody will read (TCPAbortOnData): tcp_reset, and
    tcp_rcv_state_process returns 1, so tcp_v4_do_rcv answers the segment
    itself with a RST (tcp_v4_send_reset: seq = its ACK, no ACK flag)."""
    sk.host.mib["TCPAbortOnData"] += 1
    sk.proto.tcp_v4_send_reset(sk.laddr, sk.raddr, skb)
    sk.proto.tcp_done(sk)


def tcp_ack(sk: TcpSock, skb: Skb, now: float, flag: int) -> int:
    """Process the ACK field: window update, SACK, acked segments, recovery,
    congestion window.  Returns a negative value when the ACK was rejected,
    FLAG_OLD_ACK for an ACK below snd_una (the segment goes on: its data,
    but not its timestamp), else the ACK's flags."""
    ack = skb.ack_seq
    prior_snd_una = sk.snd_una
    if before(ack, prior_snd_una):
        # RFC 5961 5.2: far too old -> challenge; otherwise just an old ACK.
        if before(ack, (prior_snd_una - sk.max_window) & 0xFFFFFFFF):
            tcp_send_challenge_ack(sk, now)
            return -1
        if skb.opts.sack_blocks and sk.sack_ok:
            # tcp_ack's old_ack: an ACK reordered behind a newer one may
            # still bring SACK news: tag it, run loss detection, resend
            # what is lost (tcp_xmit_recovery), with the window as it is
            flag |= tcp_sack.tcp_sacktag_write_queue(sk, skb.opts.sack_blocks,
                                                     prior_snd_una, now)
            tcp_fastretrans_alert(sk, 0, False, flag, now)
            if sk.ca_state in (TCP_CA_LOSS, TCP_CA_RECOVERY):
                tcp_xmit_retransmit_queue(sk, now)
        return FLAG_OLD_ACK
    if after(ack, sk.snd_nxt):
        # An ACK of data never sent: the segment is dropped (RFC 9293
        # 3.10.7.4), silently in ESTABLISHED as Linux's tcp_rcv_established
        # does (tcp_ack < 0 -> discard); in the other states with a
        # (challenge) ACK, as tcp_rcv_state_process does.
        if sk.state != TCP_ESTABLISHED:
            tcp_send_challenge_ack(sk, now)
        return -1
    prior_packets = sk.packets_out
    # (the window update below leaves sacked_out as it is: read once)
    prior_sacked = sk.sacked_out
    prior_fack = tcp_highest_sack_seq(sk) if prior_sacked else -1
    # window update (tcp_ack_update_window)
    # RFC 7323 2.2: the window field of a SYN is never scaled
    nwin = skb.window if skb.flags & TCPHDR_SYN else skb.window << sk.snd_wscale
    flag |= ack_update_window(sk, skb.seq, ack, nwin)
    if after(ack, prior_snd_una):
        flag |= FLAG_SND_UNA_ADVANCED
        sk.retransmits = 0
        if sk.snd_up is not None and not before(ack, sk.snd_up):
            sk.snd_up = None         # the urgent data is acknowledged: urgent mode ends
    sk.probes_out = 0
    sk.snd_una = ack
    if skb.opts.sack_blocks and sk.sack_ok:
        flag |= tcp_sack.tcp_sacktag_write_queue(sk, skb.opts.sack_blocks, prior_snd_una, now)
    elif not prior_packets and ack == prior_snd_una and not sk.rtx and not prior_sacked \
            and sk.ca_state == TCP_CA_OPEN and not flag & (FLAG_SACKED | FLAG_SND_UNA_ADVANCED):
        # Linux's no_queue (``if (!prior_packets) goto no_queue``): nothing
        # was in flight and nothing is newly acked (a peer's FIN, a window
        # update, a keepalive's answer), so there is nothing to take off the
        # queue, no RTT sample, no recovery or congestion step: what follows
        # would test each and do none.  The loss-probe episode and the
        # zero-window probe are still looked at, in that order.
        if sk.tlp_high_seq is not None:
            tcp_process_tlp_ack(sk, ack, flag, now)
        tcp_ack_probe(sk, now)
        return flag
    tagged = sk.sacked_out
    acked = tcp_clean_rtx_queue(sk, skb, now, prior_snd_una, prior_fack)
    # what cwnd grows by (tcp_cong_control's acked_sacked, tp->delivered):
    # the segments this ACK delivered, newly SACKed or newly acked, not the
    # ones already SACKed (with Reno's dupack count: tcp_remove_reno_sacks,
    # one ACK acked the hole, the rest ate duplicate ACKs)
    if sk.sack_ok:
        delivered = acked - (tagged - sk.sacked_out) + (tagged - prior_sacked)
    else:
        delivered = max(acked - sk.sacked_out, 1)
    if (acked or flag & FLAG_SACKED) and (sk.rack_dsack_seen or sk.rack_reo_wnd_steps != 1):
        tcp_rack_update_reo_wnd(sk, now)    # (nothing to do otherwise: skip the call)
    if prior_packets and sk.packets_out == 0 and sk.backoff and sk.snd_wnd:
        sk.backoff = 0      # (with nothing in flight before, tcp_ack_probe decides)
    if sk.tlp_high_seq is not None:
        tcp_process_tlp_ack(sk, ack, flag, now)
    is_dupack = not (flag & (FLAG_NOT_DUP | FLAG_SND_UNA_ADVANCED)) and prior_packets > 0
    # congestion state machine (tcp_fastretrans_alert)
    reo_armed = False   # RACK's reordering timer now holds the retransmit timer
    prior_lost = sk.lost
    if sk.ca_state != TCP_CA_OPEN or is_dupack or flag & FLAG_SACKED or sk.sacked_out:
        reo_armed = tcp_fastretrans_alert(sk, acked, is_dupack, flag, now)
    # tcp_cong_control: PRR while the window is being reduced, else growth
    state = sk.ca_state
    if state in (TCP_CA_RECOVERY, TCP_CA_CWR):
        tcp_cwnd_reduction(sk, delivered, sk.lost - prior_lost,
                           bool(flag & FLAG_SND_UNA_ADVANCED))
    elif acked and delivered > 0 and _cwnd_limited(sk):
        sk.ca_ops.cong_avoid(sk, delivered, now)
        tcp_output.sndbuf_expand(sk)
    if state in (TCP_CA_LOSS, TCP_CA_RECOVERY):
        # tcp_xmit_recovery: the segments marked lost are resent with the
        # window this ACK left (after an RTO, or PRR's), before new data.
        tcp_xmit_retransmit_queue(sk, now)
    if flag & FLAG_SND_UNA_ADVANCED:
        if sk.retrans_out == 0:
            sk.retrans_stamp = None
        # tcp_set_xmit_timer: a loss probe if RFC 8985 7.2 allows, else the RTO
        if not reo_armed and not tcp_output.tcp_schedule_loss_probe(sk, now, True):
            tcp_output.tcp_rearm_rto(sk, now)
        if sk.state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
            tcp_check_space(sk)       # a writer waiting for the space freed
        elif sk.write_seq != sk.wq_seq or acked:
            # the handshake's or the FIN's ACK: the state change it makes
            # wakes the glue (sk_state_change), here as the space freed
            sk.host.schedule_wakeup(sk)
    if prior_packets == 0:
        tcp_ack_probe(sk, now)      # (tcp_ack's no_queue)
    return flag


def tcp_ack_probe(sk: TcpSock, now: float) -> None:
    """tcp_ack_probe, for an ACK that found nothing in flight: with something
    unsent, probing stops only when the head segment (the one the send loop
    tries next: at most an MSS, with the FIN if it is the last) fits in the
    window (``!after(end_seq, tcp_wnd_end)``, tcp_snd_wnd_test's own test);
    else the persist timer is re-armed from this ACK at tcp_probe0_when, the
    backoff kept (a window that opened by less than a segment is probed
    again, backed off, by tcp_write_wakeup).  A deliberate difference:
    Linux tests the head skb's whole end_seq, up to a TSO-sized skb; tcpio's
    send queue has no skb boundaries, so its head is what the send loop
    would send next (capped at an MSS): the backoff ends when that fits,
    possibly earlier than Linux's would."""
    if not tcp_output.tcp_send_head(sk):
        return
    seq = sk.snd_nxt
    unsent = seq_diff(sk.write_seq, seq)
    seglen = min(unsent, max(tcp_output.tcp_current_mss(sk) - tcp_output.tcp_sack_option_len(sk),
                             48))
    end = (seq + seglen + (1 if sk.fin_queued and seglen == unsent else 0)) & 0xFFFFFFFF
    if not after(end, (sk.snd_una + sk.snd_wnd) & 0xFFFFFFFF):
        if sk.pending == tcp_output.ICSK_TIME_PROBE0:
            sk.rtx_timer.cancel()
            sk.pending = 0
        sk.backoff = 0
        sk.probe_start = 0.0        # (icsk_probes_tstamp: the window opened)
    else:
        sk.pending = tcp_output.ICSK_TIME_PROBE0
        sk.rtx_timer_made().arm(now + tcp_clamp_probe0_to_user_timeout(
            sk, now, tcp_output.tcp_probe0_when(sk)))


def tcp_process_tlp_ack(sk: TcpSock, ack: int, flag: int, now: float) -> None:
    """An ACK during a loss-probe episode (RFC 8985 7.4, Linux
    tcp_process_tlp_ack).  The episode ends when the ACK reaches the probe's
    snd_nxt and shows how it went: a probe of new data needs no verdict; a
    D-SACK of the retransmitted probe or a pure duplicate ACK says both the
    original and the probe arrived (no loss); an ACK beyond it says the probe
    repaired a loss: reduce cwnd once, like a fast recovery (TCPLossProbeRecovery)."""
    high = sk.tlp_high_seq
    if high is None or before(ack, high):
        return
    if not sk.tlp_retrans or flag & FLAG_DSACK_TLP:
        sk.tlp_high_seq = None
    elif after(ack, high):
        # tcp_init_cwnd_reduction, CWR, tcp_end_cwnd_reduction, tcp_try_keep_open
        tcp_output.tcp_init_cwnd_reduction(sk)
        sk.ca_state = TCP_CA_CWR
        sk.ca_ops.set_state(sk, TCP_CA_CWR)
        sk.snd_cwnd = sk.snd_ssthresh
        state = TCP_CA_DISORDER if (sk.sacked_out or sk.lost_out or sk.retrans_out) \
            else TCP_CA_OPEN
        sk.ca_state = state
        sk.ca_ops.set_state(sk, state)
        sk.host.mib["TCPLossProbeRecovery"] += 1
    elif not flag & (FLAG_SND_UNA_ADVANCED | FLAG_NOT_DUP | FLAG_SACKED):
        sk.tlp_high_seq = None


def tcp_clean_rtx_queue(sk: TcpSock, skb: Skb, now: float, prior_snd_una: int,
                        prior_fack: int = -1) -> int:
    """Drop fully acknowledged segments, take an RTT sample (Karn's rule, or
    the timestamp echo), free the send buffer, advance RACK.  Returns
    segments acked."""
    reord_seen = sk.reord_seen
    n, first_tx, retrans_acked = clean_rtx_queue_walk(sk, now, prior_fack)
    if sk.reord_seen != reord_seen:
        # a hole below the highest SACK filled by an original: reordering
        sk.host.mib["TCPSACKReorder"] += 1
    ack = sk.snd_una
    if ack != prior_snd_una:
        rtt = None
        tlp = sk.tlp_high_seq
        if (tlp is not None and sk.tlp_retrans and before(prior_snd_una, tlp)
                and not before(ack, tlp)):
            # The loss probe's retransmission (the segment ending at tlp_high_seq)
            # is acked too: the ACK may answer the probe, not the originals
            # (Karn; Linux: FLAG_RETRANS_DATA_ACKED from TCPCB_EVER_RETRANS).
            retrans_acked = True
        sample = ack_rtt(sk, -1.0 if first_tx is None else first_tx, retrans_acked,
                         skb.opts.ts_ecr or 0, now)
        if sample >= 0.0:
            rtt = sample
        if n:
            sk.ca_ops.pkts_acked(sk, n, rtt, now)
    return n


# --- loss recovery (tcp_fastretrans_alert) --------------------------------------------------
def _sack_mark_lost(sk: TcpSock, now: float) -> bool:
    """tcp_identify_packet_loss for a SACK connection: RACK (Linux's default,
    net.ipv4.tcp_recovery bit 1), else RFC 6675's DupThresh rule.  True when
    RACK armed its reordering timer."""
    if tcp_is_rack(sk):
        return tcp_rack_mark_lost(sk, now)
    tcp_sack.tcp_mark_lost(sk, DUPTHRESH)
    return False


def tcp_fastretrans_alert(sk: TcpSock, acked: int, is_dupack: bool, flag: int,
                          now: float) -> bool:
    """The congestion state machine on a dubious ACK.  Returns True when
    RACK's reordering timer was armed (the caller must not re-arm the RTO
    over it)."""
    reno = not sk.sack_ok
    armed = False
    state = sk.ca_state
    if reno and is_dupack and state != TCP_CA_LOSS:
        tcp_add_reno_sack(sk)
    if state == TCP_CA_RECOVERY:
        if not before(sk.snd_una, sk.high_seq):
            tcp_end_recovery(sk, now)
            return False
        if flag & FLAG_SND_UNA_ADVANCED and not tcp_is_rack(sk):
            # RFC 6582 partial ACK: the next hole is lost too.  (Not with
            # RACK, Linux's tcp_identify_packet_loss: RACK says by time
            # which holes are lost; the next one may still be in flight.)
            if reno:
                sk.sacked_out = max(0, sk.sacked_out - max(acked - 1, 0))
                tcp_limit_reno_sacked(sk)
            tcp_mark_head_lost(sk)
            if reno:
                # RFC 6582 3.2 step 5: retransmit the first unacknowledged
                # segment now, whatever the window (Linux's PRR sends at
                # least one segment on an ACK that delivered data).
                _tcp_retransmit_head(sk, now)
        if not reno:
            armed = _sack_mark_lost(sk, now)
        return armed
    if state == TCP_CA_LOSS and before(sk.snd_una, sk.high_seq):
        # The lost segments go out in tcp_ack, once cwnd grew for this ACK.
        if not reno:
            armed = _sack_mark_lost(sk, now)
        return armed
    if state == TCP_CA_CWR and after(sk.snd_una, sk.high_seq):
        # tcp_end_cwnd_reduction: a local queue drop's reduction (tcp_enter_cwr)
        # ends above high_seq; cwnd settles at ssthresh
        sk.snd_cwnd = sk.snd_ssthresh
        sk.snd_cwnd_cnt = 0
        sk.ca_state = state = TCP_CA_OPEN
        sk.ca_ops.set_state(sk, TCP_CA_OPEN)
    # Open / Disorder, CWR, or Loss recovered: this ACK advanced SND.UNA to
    # the recovery point, so the code below clears Reno's count and reopens.
    if reno and flag & FLAG_SND_UNA_ADVANCED:
        sk.sacked_out = 0
    if not reno:
        armed = _sack_mark_lost(sk, now)
    # tcp_time_to_recover: RACK has marked a segment lost (Linux), or the
    # DupThresh rule without RACK
    if sk.lost_out or (sk.sacked_out >= DUPTHRESH and not tcp_is_rack(sk)):
        tcp_enter_recovery(sk, now)
        return armed
    if state == TCP_CA_CWR:
        return armed            # tcp_try_to_open: CWR holds until high_seq
    new_state = TCP_CA_DISORDER if sk.sacked_out else TCP_CA_OPEN
    if new_state != sk.ca_state:
        sk.ca_state = new_state
        sk.ca_ops.set_state(sk, new_state)
    return armed


def tcp_add_reno_sack(sk: TcpSock) -> None:
    """Without SACK each duplicate ACK stands for one segment that left the
    network (the kernel's emulation), which also gives limited transmit."""
    sk.sacked_out += 1
    tcp_limit_reno_sacked(sk)


def tcp_limit_reno_sacked(sk: TcpSock) -> None:
    holes = min(max(sk.lost_out, 1), sk.packets_out)
    if sk.sacked_out + holes > sk.packets_out:
        sk.sacked_out = sk.packets_out - holes    # (holes =< packets_out)


def tcp_end_recovery(sk: TcpSock, now: float) -> None:
    if sk.rack_reo_wnd_persist:
        sk.rack_reo_wnd_persist -= 1    # (tcp_try_undo_recovery: no undo here)
    sk.snd_cwnd = max(sk.snd_ssthresh, 2)    # (tcp_enter_recovery set ssthresh)
    sk.snd_cwnd_cnt = 0
    if not sk.sack_ok:
        sk.sacked_out = 0
    sk.ca_state = TCP_CA_OPEN
    sk.ca_ops.set_state(sk, TCP_CA_OPEN)
    if sk.sacked_out:
        sk.ca_state = TCP_CA_DISORDER
        sk.ca_ops.set_state(sk, TCP_CA_DISORDER)


# Our guess of the peer's segment size starts small, like Linux (536), and
# grows with what arrives (tcp_event_data_recv): syn_fast.initialize_rcv_mss
tcp_initialize_rcv_mss = _syn_fast.initialize_rcv_mss


# --- data queueing (tcp_data_queue) --------------------------------------------------------
def tcp_rcv_rtt_measure_ts(sk: TcpSock, skb: Skb, now: float) -> None:
    """The receiver's RTT from the echoed timestamp (for buffer autotuning)."""
    ecr = skb.opts.ts_ecr
    if ecr:
        sk.rcv_rtt = _tcp_fast.rcv_rtt_update(sk.rcv_rtt, sk.ts_off, ecr, now)


# (the fast path's, like __tcp_ack_snd_check below)
tcp_event_data_recv = _tcp_fast.event_data_recv


def tcp_data_queue(sk: TcpSock, skb: Skb, now: float) -> None:
    data = skb.data
    seq = skb.seq
    fin = skb.flags & TCPHDR_FIN
    if not data and not fin:
        return
    rcv_nxt = sk.rcv_nxt
    if sk.tstamp_ok and data:
        tcp_rcv_rtt_measure_ts(sk, skb, now)
    if seq == rcv_nxt:
        if data and not tcp_receive_window(sk):
            sk.host.mib["TCPZeroWindowDrop"] += 1
            _tcp_ack_out_of_window(sk, now)
            return
        _queue_in_order(sk, data, fin, now, skb.gso_size)
        return
    end = skb.end_seq
    if not after(end, rcv_nxt):
        # A complete duplicate: D-SACK it (RFC 2883) and ACK at once.
        sk.host.mib["DelayedACKLost"] += 1
        tcp_sack.tcp_dsack_set(sk, seq, end)
        _tcp_ack_out_of_window(sk, now)
        return
    if not before(seq, (rcv_nxt + tcp_receive_window(sk)) & 0xFFFFFFFF):
        _tcp_ack_out_of_window(sk, now)
        return
    if before(seq, rcv_nxt):
        # Partial overlap with what we have: D-SACK the old part, keep the rest.
        tcp_sack.tcp_dsack_set(sk, seq, rcv_nxt)
        data = data[seq_diff(rcv_nxt, seq):]
        _queue_in_order(sk, data, fin, now, skb.gso_size)
        return
    tcp_data_queue_ofo(sk, seq, data, fin, now)


def _tcp_ack_out_of_window(sk: TcpSock, now: float) -> None:
    """tcp_data_queue's out_of_window: quick-ACK mode, the ACK scheduled
    (inet_csk_schedule_ack: so sending it spends a quick ACK,
    tcp_dec_quickack_mode) and sent at once."""
    tcp_enter_quickack_mode(sk)
    sk.ack_pending = True
    tcp_send_ack(sk, now)


def tcp_check_urg(sk: TcpSock, skb: Skb) -> None:
    """An urgent pointer (BSD semantics, tcp_stdurg=0): it points just past
    the urgent byte.  Remember which byte; it is taken out of the stream when
    it arrives (SO_OOBINLINE off, Linux's default)."""
    ptr = skb.th.urg_ptr
    if ptr:
        ptr -= 1
    ptr = (skb.seq + ptr) & 0xFFFFFFFF
    if before(ptr, sk.rcv_nxt):
        return                       # already received (and maybe read)
    if sk.urg_last is not None and not after(ptr, sk.urg_last):
        return                       # do not replay an old pointer
    if sk.urg_seq is not None and not after(ptr, sk.urg_seq):
        return
    sk.urg_seq = ptr
    sk.urg_data = None               # a newer urgent byte replaces an unread one
    sk.host.schedule_wakeup(sk)


def _rq_append(sk: TcpSock, data: Any) -> None:
    """Append in-order bytes starting at rcv_nxt, lifting out an urgent byte."""
    n = len(data)
    urg = sk.urg_seq
    if urg is not None:
        off = seq_diff(urg, sk.rcv_nxt)
        if 0 <= off < n:
            sk.urg_data = data[off]
            sk.urg_last = urg
            sk.urg_seq = None
            sk.rq.push(data[:off])
            sk.rq.push(data[off + 1:])
            sk.rcv_nxt = (sk.rcv_nxt + n) & 0xFFFFFFFF
            return
    sk.rq.push(data)
    sk.rcv_nxt = (sk.rcv_nxt + n) & 0xFFFFFFFF


def _queue_in_order(sk: TcpSock, data: Any, fin: int, now: float, gso_size: int = 0) -> None:
    if data:
        _rq_append(sk, data)
        tcp_event_data_recv(sk, len(data), gso_size)
        sk.lrcvtime = now
        rcv_pool_note(sk, now, len(data))
    filled = False
    if sk.ofo:
        fin = tcp_ofo_queue(sk, now) or fin
        if not sk.ofo:
            sk.quick = max(sk.quick, 1)   # a hole filled: tell the sender now
            filled = True                 # (ICSK_ACK_NOW: even after a FIN)
    sk.ack_pending = True
    if fin:
        tcp_fin(sk, now, sk.quick > 0 and filled)
    sk.host.schedule_wakeup(sk)


def tcp_ofo_queue(sk: TcpSock, now: float) -> int:
    """Move segments that became in-order from the ofo queue; returns FIN seen.
    (Called only while the queue is not empty, so it is a list, not NO_OFO.)"""
    ofo = cast("list[list[Any]]", sk.ofo)
    fin = 0
    i = 0
    # RFC 2883: what the in-order data brought again (below the rcv_nxt it
    # reached) is D-SACKed, each entry's part up to dsack_high (Linux's
    # tcp_ofo_queue with its 2025 fix: dsack_high itself does not move).
    dsack_high = sk.rcv_nxt
    while i < len(ofo):
        seq, end, data, f = ofo[i]
        if after(seq, sk.rcv_nxt):
            break
        if before(seq, dsack_high):
            tcp_sack.tcp_dsack_extend(sk, seq, end if before(end, dsack_high) else dsack_high)
        if after(end, sk.rcv_nxt) or (f and end == sk.rcv_nxt):
            skip = seq_diff(sk.rcv_nxt, seq)
            chunk = data[skip:]
            if chunk:
                _rq_append(sk, chunk)
            if f:
                fin = 1
        sk.ofo_bytes -= len(data)
        i += 1
    del ofo[:i]
    if not ofo:
        sk.ofo = NO_OFO         # drained: back to the shared empty queue
    tcp_sack.tcp_sack_remove(sk)
    return fin


def tcp_data_queue_ofo(sk: TcpSock, seq: int, data: Any, fin: int, now: float) -> None:
    mib = sk.host.mib
    tcp_enter_quickack_mode(sk)
    sk.ack_pending = True       # inet_csk_schedule_ack: the ACK below spends a quick ACK
    limit = sk.host.settings.tcp_ofo_max_bytes or sk.rcvbuf
    if sk.ofo_bytes + len(data) > limit:
        mib["TCPOFODrop"] += 1
        tcp_send_ack(sk, now)
        return
    mib["TCPOFOQueue"] += 1
    end = (seq + len(data)) & 0xFFFFFFFF
    if tcp_sack.ofo_insert(sk, seq, end, bytes(data), fin):
        tcp_sack.tcp_sack_new_ofo_skb(sk, seq, end)
    tcp_send_ack(sk, now)


# The delayed ACK of a sock that never received data (Linux's icsk_ack.ato
# of 0: tcp_send_delayed_ack arms its timer for the next jiffy, HZ=1000).
TCP_ATO_UNSET_DELAY = 0.001


def tcp_fin(sk: TcpSock, now: float, ack_now: bool = False) -> None:
    """The peer's FIN, in order (tcp_fin).  ``ack_now``: it filled the last
    hole of the out-of-order queue (Linux's ICSK_ACK_NOW), so it is ACKed at
    once even when entering CLOSE_WAIT."""
    sk.rcv_nxt = (sk.rcv_nxt + 1) & 0xFFFFFFFF
    sk.sk_shutdown |= RCV_SHUTDOWN
    sk.rcv_eof = True
    sk.ack_pending = True
    state = sk.state
    proto = sk.proto
    if state in (TCP_SYN_RECV, TCP_ESTABLISHED):
        proto.tcp_set_state(sk, TCP_CLOSE_WAIT)
        # inet_csk_enter_pingpong_mode: no quick ACK, the ACK of the FIN is
        # delayed, so the application's own FIN (a server closing on EOF)
        # carries it: FIN, FIN-ACK, ACK, as the kernel closes.  (Nothing more
        # arrives in order after a FIN for the lost quick ACKs to matter.)
        if not ack_now:
            sk.pingpong = sk.host.settings.tcp_pingpong_thresh
            sk.quick = 0
            if not sk.got_data:
                # No data ever arrived: Linux's icsk_ack.ato is still 0, so
                # tcp_send_delayed_ack's timer fires at the next tick, not
                # after TCP_ATO_MIN (the kernel here: 0.4-0.8 ms later).
                sk.delack_timer_made().arm(now + TCP_ATO_UNSET_DELAY)
    elif state == TCP_FIN_WAIT1:
        # simultaneous close: both FINs crossed
        tcp_send_ack(sk, now)
        proto.tcp_set_state(sk, TCP_CLOSING)
    elif state == TCP_FIN_WAIT2:
        tcp_send_ack(sk, now)
        proto.tcp_time_wait(sk, TCP_TIME_WAIT, now)
        return
    # skb_rbtree_purge of the ofo queue and tcp_sack_reset: no SACK block and
    # no pending D-SACK survives the FIN
    sk.ofo = NO_OFO
    sk.ofo_bytes = 0
    sk.sack_blocks = ()
    sk.dsack = None
    sk.host.schedule_wakeup(sk)


# --- output triggers ------------------------------------------------------------------
# tcp_data_snd_check: send what the ACKs allow (compiled: tcp_fast.data_snd_check)
tcp_data_snd_check = _tcp_fast.data_snd_check


# tcp_data_snd_check after a bare ACK: inside a receive batch, once at the
# batch's end (tcp_batch_end); see tcp_fast.data_snd_check_batched
tcp_data_snd_check_batched = _tcp_fast.data_snd_check_batched


__tcp_ack_snd_check = _tcp_fast.ack_snd_check


# ACK coalescing per receive batch (tcp_fast.send_ack_or_coalesce: at most
# TCP_ACK_COALESCE_MAX bytes wait for the batch's end, tcp_fast.batch_end)
TCP_ACK_COALESCE_MAX = _tcp_fast.ACK_COALESCE_MAX
tcp_send_ack_or_coalesce = _tcp_fast.send_ack_or_coalesce
tcp_batch_end = _tcp_fast.batch_end


def tcp_init_fast_hooks(mod: Any = None) -> None:
    """Install the Python side the fast paths call back into (see
    tcpio/_fast/tcp_fast.py, set_hooks): TcpProto does it when it is built, not this
    module when it is imported.  Idempotent.  ``mod``: a twin of tcp_fast
    other than the one in use (tests that swap hooks put the real ones back
    with this: set_hooks alone leaves the bare-ACK bypass and the ACK
    coalescing off)."""
    if mod is None:
        mod = _tcp_fast
    mod.set_hooks(mod.send_ack_or_coalesce, tcp_output.tcp_event_data_sent_idle,
                  tcp_ack_predicted)
    mod.set_xmit_hooks(tcp_write_xmit, tcp_send_ack, tcp_output.tcp_push)
    mod.set_snd_check_hooks(mod.data_snd_check, mod.batch_end)
