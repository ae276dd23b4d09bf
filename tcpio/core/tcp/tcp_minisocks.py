"""Mini socks (net/ipv4/tcp_minisocks.c): request socks and time-wait socks.

A request sock (state NEW_SYN_RECV) is what a SYN leaves behind in the
listener's SYN queue: just enough to answer with SYN-ACK, retransmit it and
recognise the third ACK (tcp_check_req), which turns it into a full TcpSock
(tcp_create_openreq_child).  A time-wait sock keeps the 4-tuple busy after
close (TIME_WAIT, or an orphan's FIN_WAIT2) without the full control block.
"""

from __future__ import annotations

import errno
import weakref
from typing import TYPE_CHECKING, Any

from ... import _fast
from ..timer import Timer
from ..qdisc import net_xmit_eval
from .inet6_addr import V6MASK
from .sock import SS_CONNECTED, TcpSock
from .tcp_input import tcp_oow_rate_limited, tcp_paws_reject
from .tcp_output import (
    CTL_SOCK_DF,
    TCP_TIMEOUT_INIT,
    TcpOptions,
    sndbuf_expand,
    tcp_time_stamp,
    tcp_v4_send,
)
from .tcp_states import (
    TCP_CLOSE,
    TCP_FIN_WAIT2,
    TCP_NEW_SYN_RECV,
    TCP_SYN_RECV,
    TCP_TIME_WAIT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    after,
    before,
)

if TYPE_CHECKING:
    from .tcp_input import Skb
    from .tcp_ipv4 import TcpProto

_syn_fast = _fast.load("syn_fast")
_openreq_child = _syn_fast.openreq_child


class RequestSock:
    """struct tcp_request_sock: a half-open passive connection."""

    __slots__ = (
        "__weakref__",      # its SYN-ACK timer holds it weakly (reqsk_timer)
        "acked",
        "dead",
        "expires",
        "laddr",
        "listener",
        "last_oow_ack_time",
        "lport",
        "mss",
        "num_retrans",
        "raddr",
        "rcv_isn",
        "rcv_wnd",
        "rcv_wscale",
        "rport",
        "sack_ok",
        "snd_wscale",
        "snt_isn",
        "snt_synack",
        "state",
        "synack_rtx",
        "timer",
        "ts_off",
        "ts_recent",
        "tstamp_ok",
        "wscale_ok",
    )
    # Set by the creator, not __init__ (see there).
    snt_isn: int
    mss: int
    rcv_wnd: int
    ts_recent: int
    ts_off: int
    # Its SYN-ACK timer (Linux's rsk_timer): the listener's SynQueueTimer
    # while in its first timeout (``expires``), its own Timer after
    # (reqsk_timer_made).
    timer: Timer | SynQueueTimer
    expires: float

    def __init__(self, listener: TcpSock, laddr: int, lport: int, raddr: int,
                 rport: int, rcv_isn: int) -> None:
        # snt_isn, mss, rcv_wnd, ts_recent and ts_off are the creator's to set
        # (tcp_v4_conn_request, cookie_v4_check), and the timer too for a
        # request that is hashed; the options start off until negotiated.
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.state = TCP_NEW_SYN_RECV
        self.listener = listener
        self.rcv_isn = rcv_isn
        self.wscale_ok = False
        self.snd_wscale = 0
        self.rcv_wscale = 0
        self.sack_ok = False
        self.tstamp_ok = False
        self.num_retrans = 0
        # When the first SYN-ACK left (Linux's snt_synack; None: none has, or a
        # cookie's request, which does not know), and how many times one was
        # sent again for any reason (Linux's num_retrans: the timer, or the
        # peer's retransmitted SYN; our num_retrans counts timer firings,
        # Linux's num_timeout).  tcp_synack_rtt_meas uses both.
        self.snt_synack: float | None = None
        self.synack_rtx = 0
        # Its third ACK came but met a full accept queue (Linux's
        # inet_rsk(req)->acked): the client is ESTABLISHED already.
        self.acked = False
        self.dead = False
        # When it last answered junk (tcp_oow_rate_limited; Linux's
        # last_oow_ack_time, 0 from tcp_openreq_init: None here)
        self.last_oow_ack_time: float | None = None


class TimeWaitSock:
    """struct inet_timewait_sock: TIME_WAIT (or an orphan's FIN_WAIT2)."""

    __slots__ = (
        "dead",
        "laddr",
        "last_oow_ack_time",
        "lport",
        "proto",
        "raddr",
        "rcv_nxt",
        "rcv_wnd",
        "rcv_wscale",
        "reuseaddr",
        "rport",
        "snd_nxt",
        "state",
        "substate",
        "timer",
        "ts_off",
        "ts_recent",
        "ts_recent_stamp",
        "tstamp_ok",
    )

    def __init__(self, proto: TcpProto, sk: TcpSock, substate: int) -> None:
        self.proto = proto
        self.laddr, self.lport, self.raddr, self.rport = sk.laddr, sk.lport, sk.raddr, sk.rport
        self.state = TCP_TIME_WAIT
        self.substate = substate
        self.reuseaddr = sk.reuseaddr
        self.snd_nxt = sk.snd_nxt
        self.rcv_nxt = sk.rcv_nxt
        self.rcv_wnd = sk.rcv_wnd
        self.rcv_wscale = sk.rcv_wscale
        self.tstamp_ok = sk.tstamp_ok
        self.ts_recent = sk.ts_recent
        self.ts_recent_stamp = sk.ts_recent_stamp
        self.ts_off = sk.ts_off
        self.dead = False
        # tw_last_oow_ack_time (0 from tcp_time_wait: None here)
        self.last_oow_ack_time: float | None = None
        self.timer = proto.host.timers.timer(self._expire)

    def _expire(self, now: float) -> None:
        self.proto.inet_twsk_kill(self)

    def send_ack(self, now: float) -> None:
        opts = None
        if self.tstamp_ok:
            opts = _ts_opts(now, self.ts_off, self.ts_recent)
        tcp_v4_send(self.proto.host, self.laddr, self.raddr, self.lport, self.rport,
                    self.snd_nxt, self.rcv_nxt, TCPHDR_ACK,
                    self.rcv_wnd >> self.rcv_wscale, opts,    # (at most 65535 << rcv_wscale)
                    df=CTL_SOCK_DF)                           # tcp_v4_timewait_ack


def _ts_opts(now: float, ts_off: int, ts_ecr: int) -> Any:
    return TcpOptions(ts_val=(tcp_time_stamp(now) + ts_off) & 0xFFFFFFFF, ts_ecr=ts_ecr)


# TCP_TW_* verdicts of tcp_timewait_state_process
TCP_TW_SUCCESS = 0
TCP_TW_RST = 1
TCP_TW_ACK = 2
TCP_TW_SYN = 3


def tcp_timewait_state_process(tw: TimeWaitSock, skb: Skb, now: float) -> int:
    """RFC 9293 TIME_WAIT rules with Linux's PAWS and FIN_WAIT2 substate."""
    opts = skb.opts
    paws_reject = bool(tw.tstamp_ok and opts.ts_val is not None
                       and before(opts.ts_val, tw.ts_recent)    # (the usual case: in order)
                       and tcp_paws_reject(tw.ts_recent, tw.ts_recent_stamp, opts.ts_val,
                                           bool(skb.flags & TCPHDR_RST), now))
    if tw.substate == TCP_FIN_WAIT2:
        return _tw_fin_wait2_process(tw, skb, paws_reject, now)
    flags = skb.flags
    if not paws_reject and skb.seq == tw.rcv_nxt and (
            skb.seq == skb.end_seq or flags & TCPHDR_RST):
        if flags & TCPHDR_RST:
            # RFC 1337 says ignore; Linux (tcp_rfc1337=0) kills the entry.
            tw.proto.inet_twsk_kill(tw)
        else:
            # A bare ACK at RCV.NXT: the peer still holds the connection, so
            # the whole TIME-WAIT starts again (inet_twsk_reschedule).
            tw.timer.arm(now + tw.proto.host.settings.tcp_tw_timeout)
            if opts.ts_val is not None and tw.tstamp_ok:
                tw.ts_recent = opts.ts_val
                tw.ts_recent_stamp = now
        return TCP_TW_SUCCESS
    # A new SYN beyond the old sequence space may reopen the tuple (RFC 6191).
    if flags & TCPHDR_SYN and not flags & (TCPHDR_RST | TCPHDR_ACK) and not paws_reject and (
            after(skb.seq, tw.rcv_nxt) or
            (tw.tstamp_ok and opts.ts_val is not None and after(opts.ts_val, tw.ts_recent))):
        return TCP_TW_SYN
    if paws_reject:
        tw.proto.host.mib["PAWSTimewait"] += 1      # LINUX_MIB_PAWS_TW_REJECTED
    if not flags & TCPHDR_RST:
        # Anything else is re-ACKed (a retransmitted FIN: our ACK was lost).  It
        # restarts the clock when it has the ACK bit or failed PAWS; an ACK-less
        # SYN below RCV.NXT may be a new connection's with a random ISN, which
        # must not keep the old tuple alive (Linux).
        if paws_reject or flags & TCPHDR_ACK:
            tw.timer.arm(now + tw.proto.host.settings.tcp_tw_timeout)
        return _tw_check_oow_rate_limit(tw, skb, "TCPACKSkippedTimeWait", now)
    return TCP_TW_SUCCESS


def _tw_check_oow_rate_limit(tw: TimeWaitSock, skb: Skb, counter: str, now: float) -> int:
    """tcp_timewait_check_oow_rate_limit: the ACK, unless the time-wait sock
    answered junk less than tcp_invalid_ratelimit ago (then counted)."""
    if tcp_oow_rate_limited(tw.proto.host, skb, counter, tw, now):
        return TCP_TW_SUCCESS
    return TCP_TW_ACK


def _tw_fin_wait2_process(tw: TimeWaitSock, skb: Skb, paws_reject: bool, now: float) -> int:
    """An orphan's FIN-WAIT-2: tcp_rcv_state_process's checks again, for a
    sock with no receive buffer (TCP_TW_RST also ends the time-wait sock, in
    tcp_v4_rcv)."""
    flags = skb.flags
    if paws_reject or not _in_window(skb, tw.rcv_nxt, tw.rcv_wnd):
        # RFC 9293: never answer a RST (Linux ACKs it here, rate-limited).
        if flags & TCPHDR_RST:
            return TCP_TW_SUCCESS
        return _tw_check_oow_rate_limit(tw, skb, "TCPACKSkippedFinWait2", now)
    if flags & TCPHDR_RST:
        tw.proto.inet_twsk_kill(tw)
        return TCP_TW_SUCCESS
    if flags & TCPHDR_SYN and not before(skb.seq, tw.rcv_nxt):
        return TCP_TW_RST
    if not flags & TCPHDR_ACK or not after(skb.end_seq, tw.rcv_nxt) \
            or skb.end_seq == skb.seq:
        return TCP_TW_SUCCESS   # a duplicate ACK, or no ACK at all: drop
    if not flags & TCPHDR_FIN or skb.end_seq != ((tw.rcv_nxt + 1) & 0xFFFFFFFF):
        # New data after our close (RFC 1122 4.2.2.13): reset.
        return TCP_TW_RST
    # the FIN we waited for: now a real TIME_WAIT
    tw.substate = TCP_TIME_WAIT
    tw.rcv_nxt = skb.end_seq
    if skb.opts.ts_val is not None:
        tw.ts_recent = skb.opts.ts_val
        tw.ts_recent_stamp = now
    tw.timer.arm(now + tw.proto.host.settings.tcp_tw_timeout)
    return TCP_TW_ACK


def tcp_tw_isn(tw: TimeWaitSock) -> int:
    """The ISN for a connection that reopens a TIME-WAIT tuple: RFC 1122
    4.2.2.13 wants it above the old incarnation's sequence space; Linux takes
    SND.NXT + 65535 + 2 (the old window cannot reach it), never 0."""
    return (tw.snd_nxt + 65535 + 2) & 0xFFFFFFFF or 1


def _in_window(skb: Skb, rcv_nxt: int, rcv_wnd: int) -> bool:
    """tcp_in_window, the mini socks' acceptability test: the segment starts at
    rcv_nxt, or overlaps [rcv_nxt, rcv_nxt + rcv_wnd), or is empty at the right
    edge.  Stricter than a full sock's tcp_sequence: an old duplicate that ends
    exactly at rcv_nxt, or data that starts at the right edge, is out of window
    (RFC 9293 3.10.7.4's test; the empty segment at the edge is Linux's)."""
    seq, end_seq = skb.seq, skb.end_seq
    if seq == rcv_nxt:
        return True
    e_win = (rcv_nxt + rcv_wnd) & 0xFFFFFFFF
    if after(end_seq, rcv_nxt) and before(seq, e_win):
        return True
    return seq == e_win and seq == end_seq


# --- request socks ---------------------------------------------------------------
def tcp_send_synack(proto: TcpProto, req: RequestSock, now: float, advmss: int = 0) -> int:
    """tcp_v4_send_synack; 0 when the SYN-ACK went, else the device's refusal
    (net_xmit_eval of its NET_XMIT_* status: a congestion notification is
    sent), or ENETUNREACH without a route: then, as Linux returns before
    tcp_make_synack, nothing is built, sent or counted in OutSegs (IP's
    OutNoRoutes, and tcpio's TCPOutNoRoute, say why).  ``advmss``: the MSS
    option, when the caller has just computed it (tcp_conn_request: the same
    route, just found, and TCP_MAXSEG)."""
    host = proto.host
    if not advmss:
        # inet_csk_route_req (a retransmission: the route may have gone)
        try:
            mtu = proto.route_mtu_checked(req.raddr)
        except OSError:
            host.mib["Ip6OutNoRoutes" if req.raddr > V6MASK else "OutNoRoutes"] += 1
            host.mib["TCPOutNoRoute"] += 1
            return errno.ENETUNREACH
        advmss = proto.advmss_for(req.raddr, req.listener.opts.user_mss, mtu)
    if req.snt_synack is None:
        req.snt_synack = now        # tcp_make_synack: the first SYN-ACK's time
    ts = None
    if req.tstamp_ok:
        ts = (tcp_time_stamp(now) + req.ts_off) & 0xFFFFFFFF
    raddr = req.raddr
    if raddr <= V6MASK and not host.settings.ip_no_pmtu_disc and req.laddr >> 24 != 127:
        # The common case: the whole frame in one compiled call, as the
        # cookie path builds it (syn_fast.synack_frame), when IP would send
        # it as one (ip_tcp_path: a route, a resolved neighbour, no
        # fragmentation, DF, so IP ID 0: ip_select_ident); the counters
        # are those tcp_v4_send + ip_output move for it.  Its length: the
        # MSS option, then timestamps (with SACK-permitted in their NOPs)
        # or NOP NOP SACK-permitted, then NOP window scale.
        path = host.ip_tcp_path(raddr, 44 + (12 if ts is not None else 4 if req.sack_ok else 0)
                                + (4 if req.wscale_ok else 0))
        if path is not None:
            ifindex, dst_mac, src_mac, _src = path
            mib = host.mib
            mib["OutSegs"] += 1
            mib["OutRequests"] += 1
            if dst_mac is not None:
                mib["EthOutFrames"] += 1
            return net_xmit_eval(host.xmit(ifindex, _syn_fast.synack_frame(
                dst_mac, src_mac, req.laddr, raddr, 0, host.settings.ip_default_ttl,
                req.lport, req.rport, req.snt_isn, (req.rcv_isn + 1) & 0xFFFFFFFF,
                req.rcv_wnd, advmss, req.rcv_wscale if req.wscale_ok else -1, req.sack_ok,
                -1 if ts is None else ts, req.ts_recent if ts is not None else 0)))
    # tcp_make_synack: the route's advmss bounded by the listener's TCP_MAXSEG
    # (tcp_mss_clamp), read now, so a retransmitted SYN-ACK uses the current value.
    opts = TcpOptions(mss=advmss,
                      wscale=req.rcv_wscale if req.wscale_ok else None,
                      sack_ok=req.sack_ok, ts_val=ts,
                      ts_ecr=req.ts_recent if ts is not None else None)
    # ip_build_and_send_pkt: with DF, IP ID 0 (the request has no connected
    # socket: ip_output.ip_select_ident); without (ip_no_pmtu_disc), a random
    # one rather than the hashed counters.
    ident = host.ip_ids.random_u16() if host.settings.ip_no_pmtu_disc else -1
    # RFC 7323 2.2: a SYN's window is never scaled; req.rcv_wnd is at most
    # 65535 by construction (TcpProto._initial_rcv_wnd).
    return net_xmit_eval(tcp_v4_send(host, req.laddr, req.raddr, req.lport, req.rport,
                                     req.snt_isn, (req.rcv_isn + 1) & 0xFFFFFFFF,
                                     TCPHDR_SYN | TCPHDR_ACK, req.rcv_wnd, opts, b"", 0, ident))


def tcp_rtx_synack(proto: TcpProto, req: RequestSock, now: float) -> int:
    """The SYN-ACK again (tcp_rtx_synack); counted (RetransSegs,
    TCPSynRetrans, Linux's num_retrans) only when it went: a route and the
    device took it.  0, or the error."""
    err = tcp_send_synack(proto, req, now)
    if not err:
        mib = proto.host.mib
        mib["RetransSegs"] += 1
        mib["TCPSynRetrans"] += 1
        req.synack_rtx += 1
    return err


class SynQueueTimer:
    """The SYN-ACK timers of a listener's requests in their first timeout,
    kept as one: ``fresh``, those requests in the order they came, which
    is the order of their deadlines (each ``expires`` TCP_TIMEOUT_INIT
    after its SYN), and one owned timer armed for the oldest.

    Linux arms each request's rsk_timer at its SYN and deletes it at the
    third ACK; almost every request is answered within that first second,
    and a Timer per request (made, pushed into the heap, parked at the
    third ACK and dropped later) was a third of the timer work per
    accepted connection (issue 11).  A request joins ``fresh`` and leaves
    it in O(1) (dict order); when the timer fires, the due ones get their
    own timer (reqsk_timer_made) and reqsk_timer_handler runs for each,
    at its deadline as before, so retransmission, backoff and drop follow
    Linux's rules unchanged."""

    __slots__ = ("fresh", "timer")
    # As ``req.timer``: a fresh request's timer is running (tcp_check_req's
    # mod_timer_pending)
    pending = True

    def __init__(self, listener: TcpSock) -> None:
        self.fresh: dict[RequestSock, None] = {}
        self.timer = Timer(listener.host.timers, reqsk_queue_timer, weakref.ref(listener))


def reqsk_queue_timer(listener: TcpSock, now: float) -> None:
    """The listener's SynQueueTimer: the first timeout of each request due
    by now, oldest first; armed again for the next one."""
    q = listener.synq_timer
    assert q is not None
    due = []
    for req in q.fresh:
        if req.expires > now:
            q.timer.arm(req.expires)
            break
        due.append(req)
    proto = listener.proto
    for req in due:
        # (one handled before may have dropped it: a listener gone with it)
        if req.timer is q and not req.dead:
            reqsk_timer_made(req)
            reqsk_timer_handler(proto, req, now)


def reqsk_timer_start(listener: TcpSock, req: RequestSock, now: float) -> None:
    """``req``'s SYN-ACK timer started at its SYN (reqsk_queue_hash_req's
    mod_timer): its first timeout, TCP_TIMEOUT_INIT, kept with the
    listener's others (its SynQueueTimer, made at the first SYN)."""
    q = listener.synq_timer
    if q is None:
        q = listener.synq_timer = SynQueueTimer(listener)
    req.timer = q
    req.expires = expires = now + TCP_TIMEOUT_INIT
    q.fresh[req] = None         # (in deadline order: the clock does not go back)
    if q.timer.when is None:
        q.timer.arm(expires)


def reqsk_timer_stop(req: RequestSock) -> None:
    """``req``'s SYN-ACK timer stopped (reqsk_queue_unlink's del_timer): out
    of the listener's first timeouts, or its own timer cancelled."""
    timer = req.timer
    if isinstance(timer, SynQueueTimer):
        del timer.fresh[req]
    else:
        timer.cancel()


def reqsk_timer_made(req: RequestSock) -> Timer:
    """``req.timer`` as a timer of its own (rsk_timer), made now for a
    request in its first timeout, which then leaves the listener's
    SynQueueTimer; unarmed, for the caller to arm."""
    timer = req.timer
    if isinstance(timer, Timer):
        return timer
    del timer.fresh[req]
    own = req.timer = Timer(timer.timer._wheel, reqsk_timer, weakref.ref(req))
    return own


def reqsk_timer_when(req: RequestSock) -> float | None:
    """When ``req``'s SYN-ACK timer fires (None: it is not armed)."""
    timer = req.timer
    return timer.when if isinstance(timer, Timer) else req.expires


def reqsk_timer(req: RequestSock, now: float) -> None:
    """A request's SYN-ACK timer (an owned timer: it holds the request
    weakly, so a request dropped from the SYN queue, its handshake done, is
    freed at once instead of when its cancelled heap entry surfaces)."""
    reqsk_timer_handler(req.listener.proto, req, now)


def reqsk_timer_handler(proto: TcpProto, req: RequestSock, now: float) -> None:
    """SYN-ACK retransmission with exponential backoff (reqsk_timer_handler).
    A dropped request (its listener closed, its handshake done) has no timer."""
    if req.num_retrans >= proto.host.settings.tcp_synack_retries:
        proto.reqsk_drop(req)
        return
    # Also for an acked request (its third ACK met a full accept queue): the
    # client, already ESTABLISHED, answers the old SYN-ACK with a challenge
    # ACK, which is the third ACK again (Linux's syn_ack_recalc: resend = 1).
    # A SYN-ACK the device refuses ends a request that was not acked (Linux:
    # `!tcp_rtx_synack(...) || acked` else drop), unlike one lost on the way,
    # which the next timeout sends again; an acked one keeps its timer.
    if tcp_rtx_synack(proto, req, now) and not req.acked:
        proto.reqsk_drop(req)
        return
    req.num_retrans += 1
    reqsk_timer_made(req).arm(now + reqsk_timeout(proto, req))


def reqsk_timeout(proto: TcpProto, req: RequestSock) -> float:
    """The request's SYN-ACK interval after ``num_retrans`` timeouts
    (Linux's reqsk_timeout: TCP_TIMEOUT_INIT << num_timeout, capped)."""
    return min(TCP_TIMEOUT_INIT * (1 << req.num_retrans), proto.host.settings.tcp_rto_max)


def tcp_v4_reqsk_send_ack(proto: TcpProto, req: RequestSock, now: float) -> None:
    """<SEQ=ISS+1><ACK=RCV.NXT><CTL=ACK> from SYN-RECEIVED, window scaled by
    our shift (the peer has seen our SYN-ACK's option), with timestamps if
    negotiated."""
    tcp_v4_send(proto.host, req.laddr, req.raddr, req.lport, req.rport,
                (req.snt_isn + 1) & 0xFFFFFFFF, (req.rcv_isn + 1) & 0xFFFFFFFF, TCPHDR_ACK,
                req.rcv_wnd >> req.rcv_wscale,
                _ts_opts(now, req.ts_off, req.ts_recent) if req.tstamp_ok else None,
                df=CTL_SOCK_DF)


def _reqsk_oow_rate_limited(host: Any, req: RequestSock, skb: Skb, now: float) -> bool:
    """tcp_oow_rate_limited(net, skb, LINUX_MIB_TCPACKSKIPPEDSYNRECV,
    &tcp_rsk(req)->last_oow_ack_time): the request's own clock."""
    return tcp_oow_rate_limited(host, skb, "TCPACKSkippedSynRecv", req, now)


def tcp_check_req(proto: TcpProto, req: RequestSock, skb: Skb, now: float) -> TcpSock | None:
    """The segment for a request sock: a retransmitted SYN, the third ACK,
    or junk.  Returns the new child (already queued), None, or the
    listener (``req.listener``) for an ACK of something this request never
    sent: the listener's to answer (Linux returns ``sk``)."""
    flags = skb.flags
    opts = skb.opts
    host = proto.host
    # tcp_check_req keeps no TS.Recent stamp: it takes the request's age as
    # at most one SYN-ACK timeout
    paws_reject = bool(req.tstamp_ok and opts.ts_val is not None and
                       before(opts.ts_val, req.ts_recent) and
                       tcp_paws_reject(req.ts_recent, now - reqsk_timeout(proto, req),
                                       opts.ts_val, bool(flags & TCPHDR_RST), now))
    if skb.seq == req.rcv_isn and flags & (TCPHDR_SYN | TCPHDR_ACK | TCPHDR_RST) == TCPHDR_SYN \
            and not paws_reject:
        # A retransmitted SYN: our SYN-ACK was lost; send it again (at most
        # once per tcp_invalid_ratelimit, as the ACKs below), and restart the
        # timer from it (Linux: "Reset timer after retransmitting SYNACK,
        # similar to the idea of fast retransmit in recovery";
        # mod_timer_pending, so only a timer still running).
        if not _reqsk_oow_rate_limited(host, req, skb, now) and \
                not tcp_rtx_synack(proto, req, now) and req.timer.pending:
            reqsk_timer_made(req).arm(now + reqsk_timeout(proto, req))
        return None
    if flags & TCPHDR_ACK and skb.ack_seq != ((req.snt_isn + 1) & 0xFFFFFFFF):
        # RFC 9293: an unacceptable ACK in SYN-RECEIVED gets a reset; Linux
        # has the listener send it ("Invalid ACK: reset will be sent by
        # listening socket"), so the segment goes on to the listener, which
        # first tries it as a SYN cookie's ACK (TcpProto._rcv_request).
        return req.listener
    rcv_nxt = (req.rcv_isn + 1) & 0xFFFFFFFF
    # (_in_window's first test first: the third ACK starts at rcv_nxt)
    if paws_reject or (skb.seq != rcv_nxt and not _in_window(skb, rcv_nxt, req.rcv_wnd)):
        # RFC 9293 3.10.7.4: an unacceptable segment gets an ACK (a RST
        # none), rate-limited as Linux's tcp_check_req does
        if not flags & TCPHDR_RST and not _reqsk_oow_rate_limited(host, req, skb, now):
            tcp_v4_reqsk_send_ack(proto, req, now)
        if paws_reject:
            host.mib["PAWSEstabRejected"] += 1
        return None
    if flags & TCPHDR_RST:
        # RFC 5961 3.2, all states but SYN-SENT: only a RST at RCV.NXT ends the
        # request; another one in the window gets a challenge ACK (Linux 6.18).
        if skb.seq != rcv_nxt:
            if proto.challenge_ack_allowed(now):
                tcp_v4_reqsk_send_ack(proto, req, now)
            return None
        proto.reqsk_drop(req)
        return None
    if flags & TCPHDR_SYN:
        # RFC 5961 4.2 would challenge; Linux resets the embryonic connection.
        proto.tcp_v4_send_reset(req.laddr, req.raddr, skb)
        proto.reqsk_drop(req)
        return None
    if not flags & TCPHDR_ACK:
        return None
    child = proto.tcp_v4_syn_recv_sock(req.listener, req, skb, now)
    if child is None:
        # No child (a full accept queue): with tcp_abort_on_overflow = 0 the
        # request stays and the client's retransmitted ACK may get in later.
        if host.settings.tcp_abort_on_overflow:
            proto.tcp_v4_send_reset(req.laddr, req.raddr, skb)
            proto.reqsk_drop(req)
        else:
            req.acked = True
    return child


def tcp_create_openreq_child(proto: TcpProto, listener: TcpSock, req: RequestSock, skb: Skb,
                             now: float, mtu: int = 0) -> TcpSock:
    """A full sock from a request sock and its third ACK ``skb``, in SYN_RECV
    about to become ESTABLISHED.  ``mtu``: the route MTU to the peer, when
    the caller has just looked it up."""
    if not mtu:
        mtu = proto.route_mtu(req.raddr)
    # inherits the listener's user options, buffer sizes, family and
    # congestion control (sk_clone_lock): TcpSock copies them
    sk = TcpSock(proto, listener)
    # the TcpCb fields, one compiled call: the 4-tuple, sequence spaces,
    # the send window (the third ACK's, scaled: the SYN's is unscaled and
    # stale), window scale, timestamps, MSS (advmss: dst_metric_advmss clamped by
    # TCP_MAXSEG, tcp_v4_syn_recv_sock's; tcp_sync_mss,
    # tcp_initialize_rcv_mss), SYN_RECV (the caller moves it to ESTABLISHED)
    _openreq_child(sk, req, skb.seq, skb.window, now, mtu, sk.opts.user_mss)
    sk.sock_state = SS_CONNECTED
    sk.passive = True
    sk.wscale_ok = req.wscale_ok
    sk.sack_ok = req.sack_ok
    sk.lsndtime = now
    if listener.trace is not None:
        sk.set_trace(listener.trace.sink)   # (a per-stack sink came with TcpSock())
    if sk.trace is not None:
        sk.trace.set_state(sk, TCP_CLOSE, TCP_SYN_RECV, now)
    # (rcv_tstamp, when the third ACK is processed, is the caller's; so are
    # the RTT sample and tcp_init_transfer: tcp_synack_rtt_meas,
    # tcp_init_transfer_passive.)  The rest of Linux's list is TcpSock's
    # defaults: srtt 0 and RTO TCP_TIMEOUT_INIT, cwnd TCP_INIT_CWND, ssthresh
    # infinite, nothing in flight; lsndtime the handshake's time (an idle
    # restart at the first send changes nothing at the initial window).
    # Not modelled: total_retrans (no such
    # counter), icsk_ack.last_seg_size / lrcvtime (the rcv_mss
    # estimate starts from tcp_initialize_rcv_mss), ECN, RACK state, and
    # advmss -= 12 with timestamps (neither side does it).
    return sk


# Linux's TCP_TIMEOUT_FALLBACK: the RTO after a handshake that gave no RTT sample.
TCP_TIMEOUT_FALLBACK = 3.0


def tcp_synack_rtt_meas(child: TcpSock, req: RequestSock, skb: Skb, now: float) -> None:
    """The passive side's first RTT sample: the third ACK acknowledges our SYN-ACK.

    Linux takes it twice over: ``tcp_check_req`` calls ``tcp_synack_rtt_meas``
    with the request, which measures from the first SYN-ACK's send time when
    no SYN-ACK was sent again (Karn's rule); if that gave nothing,
    ``tcp_rcv_state_process`` (SYN_RECV, ``srtt_us == 0``) calls it again
    without one, and ``tcp_ack_update_rtt`` falls back to the third ACK's
    timestamp echo (less our ts_off; a 0 ms result counts as 1 ms, an echo
    of 0 or one that would be a delta of 2**31 microseconds or more, none).
    The sample then goes through the RFC 6298 estimator like any other and
    clears the backoff; min_rtt takes it too (tcp_update_rtt_min).
    """
    rtt = None
    if req.synack_rtx == 0 and req.snt_synack is not None:
        rtt = now - req.snt_synack
    else:
        opts = skb.opts
        tsecr = ((opts.ts_ecr - child.ts_off) & 0xFFFFFFFF
                 if child.tstamp_ok and opts.ts_val is not None and opts.ts_ecr is not None
                 else 0)
        if tsecr:
            delta = (tcp_time_stamp(now) - tsecr) & 0xFFFFFFFF
            if delta < 0x7FFFFFFF // 1000:       # INT_MAX / (USEC_PER_SEC / TCP_TS_HZ)
                rtt = max(delta, 1) / 1000.0
    if rtt is None:
        return
    est = child.rtt_est
    est.sample(rtt)
    if est.backoff_count:       # (a new child's never has one: no call for nothing)
        est.reset_backoff()
    if not child.min_rtt or rtt < child.min_rtt:
        child.min_rtt = rtt


def tcp_init_transfer_passive(child: TcpSock, now: float) -> None:
    """What ``tcp_init_transfer`` does for an accepted child once its RTT is
    measured: ``tcp_init_metrics``'s RFC 6298 5.7 rule (no sample from the
    handshake: the RTO goes back to 3 s; tcpio keeps no per-destination
    metrics cache), the congestion control's init, and
    ``tcp_init_buffer_space``'s ``tcp_sndbuf_expand`` (room for the initial
    congestion window unless SO_SNDBUF locked the buffer).  (The receive
    buffer stays the listener's, as in Linux since 4.19.)"""
    if not child.rtt_est.has_sample:
        child.rtt_est.reset(TCP_TIMEOUT_FALLBACK)
    child.ca_ops.init(child, now)
    sndbuf_expand(child)
