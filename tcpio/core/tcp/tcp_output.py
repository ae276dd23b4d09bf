"""Sending side (net/ipv4/tcp_output.c): segments out, window selection,
Nagle, retransmission of queued segments, ACKs, FIN, RST, probes.

Every function takes the sock and ``now``; nothing here reads a clock.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any, cast

from ... import _fast
from ..in_h import IPPROTO_TCP
from ..ip6_output import ip6_queue_xmit_tcp
from ..ip_output import IP_ID_NO_SOCK, ip_queue_xmit_tcp
from ..qdisc import NET_XMIT_SUCCESS, net_xmit_eval
from .inet6_addr import V6MASK, ip6_xmit_tcp
from .tcp_states import (
    TCP_CA_CWR,
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
    TCPCB_EOB,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_PSH,
    TCPHDR_RST,
    TCPHDR_SYN,
    TCPHDR_URG,
    after,
    before,
    seq_diff,
)

if TYPE_CHECKING:
    from ..protocol import NetHost, NetHost6
    from .sock import TcpSock

wire = _fast.load("wire")
TcpOptions = wire.TcpOptions
build_tcp = wire.build_tcp

MAX_TCP_WINDOW = 65535
TCP_TIMEOUT_INIT = 1.0
TCP_TIMEOUT_MIN = 0.002        # TCP_TIMEOUT_MIN_US: the least a timer waits

# What the retransmit timer is armed for (sk.pending, icsk_pending): the
# loss probe and RACK's reordering timer share it with the RTO, like Linux.
ICSK_TIME_RETRANS = 1
ICSK_TIME_PROBE0 = 3
ICSK_TIME_LOSS_PROBE = 5
ICSK_TIME_REO_TIMEOUT = 6


# The retransmit queue's record of a segment, and the send loop for plain data
# segments, one source compiled or run interpreted (tcpio/_fast/tcp_fast.py).
# mypy reads the one source (tcpio/_fast/tcp_fast.py); at run time _fast.load
# picks its compiled module or the same file run interpreted.
if TYPE_CHECKING:
    from tcpio._fast import syn_fast as _syn_fast
    from tcpio._fast import tcp_fast as _tcp_fast
else:
    _tcp_fast = _fast.load("tcp_fast")
    _syn_fast = _fast.load("syn_fast")
TxSeg = _tcp_fast.TxSeg
sq_view = _tcp_fast.sq_view
xmit_test = _tcp_fast.xmit_test
new_data_sent = _tcp_fast.new_data_sent
xmit_more = _tcp_fast.xmit_more
push_mark = _tcp_fast.push_mark
cwnd_quota = _tcp_fast.cwnd_quota
ip_select_ident_segs = _tcp_fast.ip_select_ident_segs


# States in which new data / FIN may still go out.
_SEND_STATES = frozenset((TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_FIN_WAIT1, TCP_LAST_ACK,
                          TCP_CLOSING))
# States where the peer expects a RST when we abort (tcp_need_reset).
_NEED_RESET = frozenset((TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
                         TCP_SYN_RECV))


# The 1 ms timestamp clock (tcp_time_stamp_ms), the fast path's.
tcp_time_stamp = _tcp_fast.tcp_time_stamp


# --- raw segment output ------------------------------------------------------
# DF for what TCP's control socket sends (RSTs without a socket, the ACKs
# of request and TIME-WAIT socks): tcp_sk_init makes that socket
# IP_PMTUDISC_DO, so they carry DF (and, having no connected socket, ID 0)
# whatever ip_no_pmtu_disc says.
CTL_SOCK_DF = True

def tcp_v4_send(host: NetHost, laddr: int, raddr: int, lport: int, rport: int, seq: int,
                ack: int, flags: int, window: int, opts: Any = None,
                payload: Any = b"", urg_ptr: int = 0, ident: int = IP_ID_NO_SOCK,
                tos: int = 0, df: bool | None = None) -> int:
    """Build one segment (any: SYN, RST, time-wait ACK...) and hand it to IP;
    IP's NET_XMIT_* status for it (ip_queue_xmit's, qdisc.py).
    Routing failures are soft: the segment is lost like a dropped packet (the
    timers will notice; the status says success).  ``ident``: a connection's IP ID
    (ip_select_ident_segs); the default, for segments no connected socket
    sends (RSTs and ACKs of TCP's control socket, a request's SYN-ACK), is
    ID 0 under DF (ip_output.ip_select_ident).  ``tos``, ``df``: a socket's
    IP_TOS and IP_MTU_DISCOVER (None: DF as the host's default)."""
    if opts is None:
        return tcp_v4_xmit(host, laddr, raddr, lport, rport, seq, ack, flags, window, -1, 0,
                           (), payload, urg_ptr, ident, tos, df)
    if opts.mss is None and opts.wscale is None and not opts.sack_ok:
        # Only the options of a segment after the handshake: the flat form.
        ts_val = opts.ts_val
        return tcp_v4_xmit(host, laddr, raddr, lport, rport, seq, ack, flags, window,
                           -1 if ts_val is None else ts_val, opts.ts_ecr or 0,
                           opts.sack_blocks, payload, urg_ptr, ident, tos, df)
    _tcp_out_count(host, flags)
    src, dst = (0, 0) if raddr > V6MASK else (laddr, raddr)
    return _tcp_ip_output(host, laddr, raddr,
                          build_tcp(src, dst, lport, rport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                                    flags, window, opts, payload, urg_ptr), ident, tos, df)


def tcp_v4_xmit(host: NetHost, laddr: int, raddr: int, lport: int, rport: int, seq: int,
                ack: int, flags: int, window: int, ts_val: int, ts_ecr: int,
                sack_blocks: tuple[tuple[int, int], ...], payload: Any, urg_ptr: int,
                ident: int = IP_ID_NO_SOCK, tos: int = 0, df: bool | None = None) -> int:
    """Send a segment whose options are at most a timestamp (``ts_val`` -1:
    none) and SACK blocks, the options of every segment after the handshake;
    IP's NET_XMIT_* status for it.

    The common case is one compiled call for the whole frame, with no options
    record (ip_output.ip_queue_xmit_tcp); when IP needs its general path the
    segment is built here and handed to ip_output (always, for a TOS or
    without DF: the whole-frame builder sets neither).
    """
    _tcp_out_count(host, flags)
    seq &= 0xFFFFFFFF
    ack &= 0xFFFFFFFF
    rc: int | None = None
    if raddr > V6MASK:
        # IPv6 (issue 17): IP_TOS and IP_MTU_DISCOVER are IPv4's, not applied
        rc = ip6_queue_xmit_tcp(cast("NetHost6", host), laddr & V6MASK, raddr & V6MASK, lport,
                                rport, seq, ack, flags, window, ts_val, ts_ecr, sack_blocks,
                                payload, urg_ptr)
    elif not tos and df is not False:
        rc = ip_queue_xmit_tcp(host, laddr, raddr, lport, rport, seq, ack, flags, window,
                               ts_val, ts_ecr, sack_blocks, payload, urg_ptr, ident)
    if rc is not None:
        return rc
    if ts_val == -1:
        opts = TcpOptions(sack_blocks=sack_blocks) if sack_blocks else None
    else:
        opts = TcpOptions(sack_blocks=sack_blocks, ts_val=ts_val, ts_ecr=ts_ecr)
    src, dst = (0, 0) if raddr > V6MASK else (laddr, raddr)
    return _tcp_ip_output(host, laddr, raddr, build_tcp(src, dst, lport, rport, seq, ack,
                                                        flags, window, opts, payload, urg_ptr),
                          ident, tos, df)


def _pmtu_locked(host: NetHost, raddr: int) -> bool:
    """dst_metric_locked(dst, RTAX_MTU): the path MTU to ``raddr`` was floored
    at min_pmtu (NetHost.update_pmtu)."""
    try:
        return host.route_lookup(raddr).mtu_locked
    except OSError:
        return False            # no route: ip_output says so


def _tcp_out_count(host: NetHost, flags: int) -> None:
    mib = host.mib
    mib["OutSegs"] += 1
    if flags & TCPHDR_RST:
        mib["OutRsts"] += 1


def _tcp_ip_output(host: NetHost, laddr: int, raddr: int, seg: bytes, ident: int,
                   tos: int = 0, df: bool | None = None) -> int:
    """Hand a segment to IP (its NET_XMIT_* status; a routing failure is
    counted, TCPOutNoRoute, and soft), with DF as Linux sets it for TCP (ip_no_pmtu_disc 0:
    IP_PMTUDISC_WANT, so a router on a smaller link answers with an ICMP
    fragmentation-needed instead of fragmenting), or as the socket's
    IP_MTU_DISCOVER says (``df``), and the socket's IP_TOS.  An IPv6 pair
    (tagged, inet6_addr) was built with zero addresses and goes to ip6_output
    (IP_TOS and IP_MTU_DISCOVER are IPv4 options: not applied there)."""
    if raddr > V6MASK:
        return ip6_xmit_tcp(host, laddr, raddr, seg)
    if df is None:
        # IP_PMTUDISC_WANT (the default without ip_no_pmtu_disc): DF unless
        # the path's MTU is locked (ip_dont_fragment)
        df = not host.settings.ip_no_pmtu_disc and not _pmtu_locked(host, raddr)
    try:
        return host.ip_output(IPPROTO_TCP, laddr, raddr, seg, df=df, ident=ident, tos=tos)
    except OSError:
        host.mib["TCPOutNoRoute"] += 1
        return NET_XMIT_SUCCESS


def tcp_syn_options(sk: TcpSock, now: float, ts_ecr: int | None = None) -> Any:
    st = sk.host.settings
    mss = sk.advmss
    ts = (tcp_time_stamp(now) + sk.ts_off) & 0xFFFFFFFF if sk.tstamp_ok else None
    return TcpOptions(mss=mss, wscale=sk.rcv_wscale if sk.wscale_ok else None,
                      sack_ok=sk.sack_ok and bool(st.tcp_sack), sack_blocks=(),
                      ts_val=ts, ts_ecr=(ts_ecr or 0) if ts is not None else None)


# Bytes the SACK option of our next segment takes (tcp_fast.sack_option_len)
tcp_sack_option_len = _tcp_fast.sack_option_len


def _established_options(sk: TcpSock, now: float,
                         datalen: int) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    """tcp_established_options: (ts_val, ts_ecr, sack_blocks) for a segment
    after the handshake, flat as tcp_v4_xmit takes them (ts_val -1: no
    timestamp, and ts_ecr is then ignored).  Consumes the pending D-SACK block."""
    ts_val = (tcp_time_stamp(now) + sk.ts_off) & 0xFFFFFFFF if sk.tstamp_ok else -1
    ts_ecr = sk.ts_recent
    if not sk.sack_ok or (sk.dsack is None and not sk.sack_blocks):
        return ts_val, ts_ecr, ()
    room = 3 if ts_val != -1 else 4
    # Never let the option push the segment past the MSS (IP would fragment
    # it): a segment sized before the SACK blocks existed (a retransmission)
    # carries fewer of them (none with less than 12 bytes spare).
    spare = sk.mss_cache - datalen
    room = min(room, (spare - 4) // 8)
    lst = []
    if room > 0:
        if sk.dsack is not None:
            lst.append(sk.dsack)
        lst.extend(sk.sack_blocks[:room - len(lst)])
    sk.dsack = None
    return ts_val, ts_ecr, tuple(lst)


def tcp_transmit_skb(sk: TcpSock, seq: int, flags: int, payload: Any, now: float) -> bool:
    """Send one segment of a connection: the SYN (or SYN-ACK) with its options,
    or a segment of an established (or closing) connection.

    What __tcp_transmit_skb does with ip_queue_xmit's answer (qdisc.py):
    any positive status (NET_XMIT_DROP: the interface's transmit queue is
    stopped and full; NET_XMIT_CN) enters CWR (tcp_enter_cwr: a local
    congestion signal, cwnd reduced once, not a loss), whatever the segment,
    a pure ACK too; then ``net_xmit_eval``: False when the segment was not
    sent (a drop), so the caller keeps it (new data stays unsent, a
    retransmission unmarked) for the normal timers and ACKs to send again.
    Everything done before the hand-over (counters, ACK bookkeeping) stands,
    as in Linux."""
    if flags & TCPHDR_SYN:
        opts = tcp_syn_options(sk, now, sk.ts_recent if flags & TCPHDR_ACK else None)
        # The window in a SYN is never scaled (RFC 7323 2.2).
        window = min(sk.rcv_wnd, MAX_TCP_WINDOW)
        rc = tcp_v4_send(sk.host, sk.laddr, sk.raddr, sk.lport, sk.rport, seq, sk.rcv_nxt,
                         flags, window, opts, payload, 0, ip_select_ident_segs(sk, 1),
                         sk.opts.tos, sk.opts.ip_df)
        sack_blocks: tuple[tuple[int, int], ...] = ()
    else:
        ts_val, ts_ecr, sack_blocks = _established_options(sk, now, len(payload))
        window = tcp_select_window(sk)
        urg_ptr = 0
        # Urgent mode (BSD/Linux semantics): the pointer names the byte after
        # the urgent one; every segment before it says so, up to 0xFFFF ahead.
        if sk.snd_up is not None and after(sk.snd_up, seq):
            urg_ptr = min(seq_diff(sk.snd_up, seq), 0xFFFF)
            flags |= TCPHDR_URG
        rc = tcp_v4_xmit(sk.host, sk.laddr, sk.raddr, sk.lport, sk.rport, seq, sk.rcv_nxt,
                         flags, window, ts_val, ts_ecr, sack_blocks, payload, urg_ptr,
                         ip_select_ident_segs(sk, 1), sk.opts.tos, sk.opts.ip_df)
    sk.segs_out += 1
    if sk.trace is not None:
        sk.trace.transmit(sk, seq, sk.rcv_nxt, flags, len(payload), window, sack_blocks, now)
    if flags & TCPHDR_ACK:
        tcp_event_ack_sent(sk)
    if payload:
        sk.lsndtime = now
        tcp_event_data_sent(sk, now)
    if rc > 0:
        tcp_enter_cwr(sk)
        rc = net_xmit_eval(rc)
    return rc == NET_XMIT_SUCCESS


def tcp_init_cwnd_reduction(sk: TcpSock) -> None:
    """tcp_init_cwnd_reduction: the CC module's ssthresh, and Proportional
    Rate Reduction (tcp_cwnd_reduction, on the ACKs) from the cwnd now
    (prior_cwnd) until snd_una passes high_seq."""
    sk.high_seq = sk.snd_nxt
    sk.tlp_high_seq = None
    sk.snd_cwnd_cnt = 0
    sk.prior_cwnd = sk.snd_cwnd
    sk.prr_delivered = 0
    sk.prr_out = 0
    sk.snd_ssthresh = sk.ca_ops.ssthresh(sk)


def tcp_enter_cwr(sk: TcpSock) -> None:
    """tcp_enter_cwr: a local congestion signal (the transmit queue dropped a
    segment): reduce cwnd once, by PRR over the next window, and stay in CWR
    until snd_una passes high_seq (tcp_input.tcp_fastretrans_alert), unless
    already reducing (CWR, Recovery) or in Loss; no undo (prior_ssthresh 0)."""
    sk.prior_ssthresh = 0
    if sk.ca_state < TCP_CA_CWR:
        tcp_init_cwnd_reduction(sk)
        sk.ca_state = TCP_CA_CWR
        sk.ca_ops.set_state(sk, TCP_CA_CWR)


# tcp_event_data_sent's pingpong count, and inet_csk_in_pingpong_mode
tcp_event_data_sent = _tcp_fast.event_data_sent
in_pingpong_mode = _tcp_fast.in_pingpong_mode


# tcp_dec_quickack_mode, and tcp_event_ack_sent for a segment (or a burst)
# with ACK set: compiled with the send loop (tcp_fast.dec_quickack_mode,
# tcp_fast.event_ack_sent).
tcp_dec_quickack_mode = _tcp_fast.dec_quickack_mode
tcp_event_ack_sent = _tcp_fast.event_ack_sent


# --- windows -----------------------------------------------------------------
# How much the peer may still send beyond rcv_nxt per our last advertisement.
tcp_receive_window = _tcp_fast.receive_window


# Receiver SWS avoidance (RFC 1122 4.2.3.3); it lives with the compiled
# receive fast path, which needs it to decide when to ACK.
__tcp_select_window = _tcp_fast.select_window


# The window field for the next segment (never shrinking the window), with
# the send loop that calls it per segment.
tcp_select_window = _tcp_fast.tcp_select_window


def tcp_cleanup_rbuf(sk: TcpSock, now: float) -> None:
    """After the app read: the scheduled ACK, or a window update if the
    window grew a lot (tcp_fast.cleanup_rbuf_ack decides)."""
    if _tcp_fast.cleanup_rbuf_ack(sk):
        tcp_send_ack(sk, now)


# Receive buffer autotuning (tcp_rcv_space_adjust, dynamic right-sizing):
# tcp_fast.rcv_space_adjust, compiled with the rest of a read's end
# (tcp_fast.recv_done)
tcp_rcv_space_adjust = _tcp_fast.rcv_space_adjust


# --- MSS -----------------------------------------------------------------------
# mss_cache bounded by half the largest window the peer offered
# (tcp_bound_to_half_wnd): tcp_fast.current_mss
tcp_current_mss = _tcp_fast.current_mss


# tcp_send_mss's size_goal, how big tcp_sendmsg lets an skb grow
# (tcp_fast.xmit_size_goal)
tcp_xmit_size_goal = _tcp_fast.xmit_size_goal


# tcp_sync_mss: the effective MSS from the path MTU, the peer's MSS option
# and TCP_MAXSEG (syn_fast.sync_mss, compiled: the accepted child's too)
tcp_sync_mss = _syn_fast.sync_mss


# --- data output -----------------------------------------------------------------
def tcp_push(sk: TcpSock, now: float, nonagle: int = -1) -> None:
    """__tcp_push_pending_frames: send what the window, cwnd and Nagle allow.
    ``nonagle``: tcp_push's argument for this push only (a MSG_MORE write
    pushes with TCP_NAGLE_CORK); -1: the socket's own (sk.nonagle)."""
    if sk.state not in _SEND_STATES:
        return
    if nonagle < 0:
        tcp_write_xmit(sk, now)
        return
    # (the send loops read sk.nonagle: swapped for the call, as Linux passes
    # it down tcp_write_xmit; nothing re-enters the socket meanwhile, the
    # loop holds back loopback segments)
    own = sk.nonagle
    sk.nonagle = nonagle
    try:
        tcp_write_xmit(sk, now)
    finally:
        sk.nonagle = own


def tcp_write_xmit(sk: TcpSock, now: float) -> bool:
    """Send new segments while the peer's window, cwnd and Nagle allow.
    Returns True if anything was sent."""
    fast = _tcp_fast
    # tcp_current_mss: a route MTU that changed since the MSS was synced (the
    # interface's, or a learned path MTU that came or expired) syncs it again
    # (the socket's cached dst's, tcp_fast.dst_mtu: no lookup while the
    # host's route generation stands still)
    mtu = fast.dst_mtu(sk, now)
    if mtu != sk.pmtu_cookie:
        tcp_sync_mss(sk, mtu)
    # xmit_test sets is_cwnd_limited when cwnd stops this call (Linux's
    # local is_cwnd_limited); tcp_cwnd_validate keeps it per window
    window_limited = sk.is_cwnd_limited
    # Like tcp_current_mss: room for the SACK blocks this segment will
    # carry; then whether anything may go (tcp_fast.xmit_begin: 0 if the
    # peer's window, cwnd, Nagle or a cork stops it, the same first test
    # both loops make, so the route, the neighbour and the device are not
    # asked).  A bulk writer whose peer's window is full pushes on every
    # write (tcp_sendmsg's tcp_push) and every flush of its transport's
    # buffer: three times per 256 KiB write in issue 12's in-memory bulk.
    mss = fast.xmit_begin(sk, sk.fin_queued)
    if not mss:
        tcp_check_probe_timer(sk, now)
        return False
    # (a queued FIN rides on the compiled loop's last data segment, or goes
    # alone through it when no data is left to carry it)
    path = _tcp_xmit_path(sk, mss)
    if path is not None:
        # the compiled loop with the device's TSO limits and the TTL, then
        # what tcp_transmit_skb and ip_output do per segment, in bulk, and
        # the end of the call (tcp_fast.write_burst: write_xmit, burst_sent,
        # xmit_done).  Its frames all leave through a device: nothing comes
        # back to us meanwhile (no loopback hold, below).
        if fast.write_burst(sk, mss, path, now, window_limited, sk.fin_queued):
            return True
        tcp_check_probe_timer(sk, now)
        return False
    # Segments to ourselves (loopback) come back only after this call, like the
    # kernel's socket backlog (segments for a socket its owner holds wait in
    # sk_backlog until release_sock): their ACK would otherwise move snd_una,
    # packets_out and sk.wq's acknowledged chunks under the loop that is
    # counting them.
    held = sk.host.defer_loopback()
    prior_packets = sk.packets_out
    try:
        sent = _tcp_write_xmit_loop(sk, mss, now)
        if sent:
            fast.xmit_done(sk, window_limited, prior_packets, now)
        else:
            sk.is_cwnd_limited = window_limited
            tcp_check_probe_timer(sk, now)
    finally:
        sk.host.release_loopback(held)
    return sent


# tcp_tso_autosize (tcp_fast.tso_segs): the most segments one burst has
tcp_tso_segs = _tcp_fast.tso_segs
SRTT_MIN = _tcp_fast.SRTT_MIN       # seconds: Linux's srtt_us floor of 1 (in 1/8 us)


# tcp_cwnd_validate's record of how the window is used (tcp_fast.cwnd_validate)
tcp_cwnd_validate = _tcp_fast.cwnd_validate


def _tcp_write_xmit_loop(sk: TcpSock, mss: int, now: float) -> bool:
    """tcp_write_xmit's loop, one segment at a time through tcp_transmit_skb
    (FIN, urgent mode, SACK options, and paths ip_tcp_path declines).  PSH as
    the compiled loop (tcp_fast.write_xmit) sets it: at the end of a write
    (push_mark), and on the last data segment of a burst of several (at
    most cwnd_quota segments: Linux's GSO skb)."""
    wq_seq = sk.wq_seq
    wq = sk.wq
    write_seq = sk.write_seq
    fin_queued = sk.fin_queued
    more = sent = xmit_more(sk, sk.snd_nxt, mss, fin_queued)
    first = sk.snd_nxt
    sml = sk.snd_sml
    burst = quota = 0
    max_segs = tcp_tso_segs(sk, mss)
    while more:
        seq = sk.snd_nxt
        unsent = seq_diff(write_seq, seq)
        seglen = min(mss, unsent) if unsent > 0 else 0
        fin = fin_queued and seglen == unsent
        end = (seq + seglen + (1 if fin else 0)) & 0xFFFFFFFF
        off = seq_diff(seq, wq_seq)
        payload = sq_view(wq, off, seglen) if seglen else b""
        mark = push_mark(sk, seq, end) if seglen else 0
        seg = new_data_sent(sk, seq, end, (TCPHDR_FIN if fin else 0) | mark, seglen < mss, now)
        if not burst:
            quota = min(cwnd_quota(sk, 1), max_segs)
        burst += 1
        more = xmit_more(sk, end, mss, fin_queued)
        flags = TCPHDR_ACK | TCPHDR_FIN if fin else TCPHDR_ACK
        last = not more or burst == quota
        if mark or (seglen and last and burst > 1):
            flags |= TCPHDR_PSH
        if mark or last:
            burst = 0
            seg.flags |= TCPCB_EOB
        ok = tcp_transmit_skb(sk, seq, flags, payload, now)
        if isinstance(payload, memoryview):
            payload.release()
        if not ok:
            # tcp_write_xmit breaks before tcp_event_new_data_sent: the
            # segment stays at the head of what is unsent
            _unsend(sk, seg, sml)
            return sk.snd_nxt != first
        sml = sk.snd_sml
    return sent


def _unsend(sk: TcpSock, seg: Any, sml: int) -> None:
    """Take back new_data_sent of ``seg``, the last segment queued (the
    transmit queue refused it): snd_nxt, packets_out and snd_sml as they were."""
    sk.rtx.pop()
    sk.packets_out -= 1
    sk.snd_nxt = seg.seq
    sk.snd_sml = sml
    if sk.high_seq == seg.end_seq:
        # tcp_enter_cwr took snd_nxt with the segment counted (Linux enters
        # CWR before tcp_event_new_data_sent): the reduction ends above what
        # was really sent
        sk.high_seq = seg.seq


# Where every segment of up to ``mss`` bytes to the peer can go out as one
# whole frame now, for a sock whose segments are plain (tcp_fast.xmit_path);
# None: the general path.
_tcp_xmit_path = _tcp_fast.xmit_path


# The first transmission with nothing in flight: cwnd restart after idle and
# the CC module's CA_EVENT_TX_START (tcp_fast.data_sent_idle)
tcp_event_data_sent_idle = _tcp_fast.data_sent_idle


# The RTO and loss-probe timers, re-armed on every ACK and every send: the
# rules are tcp_fast's (compiled with the ACK path, tcp_fast.ack_fast).
tcp_rearm_rto = _tcp_fast.rearm_rto


# --- tail loss probe (RFC 8985 section 7, Linux tcp_schedule_loss_probe) ----------
# tcp_schedule_loss_probe (RFC 8985 7.2): see tcp_fast.schedule_loss_probe
tcp_schedule_loss_probe = _tcp_fast.schedule_loss_probe


# tcp_in_cwnd_reduction: PRR counts what is sent (prr_out)
_CWND_REDUCTION = (TCP_CA_CWR, TCP_CA_RECOVERY)


def tcp_send_loss_probe(sk: TcpSock, now: float) -> None:
    """The probe timeout fired (RFC 8985 7.3, Linux tcp_send_loss_probe): send
    one new segment if there is one and the peer's window takes it, else
    retransmit the last segment sent; at most one probe outstanding
    (tlp_high_seq).  Then the RTO is re-armed from now."""
    if sk.tlp_high_seq is None:
        sent = False
        sk.tlp_retrans = False
        mss = tcp_current_mss(sk)
        unsent = seq_diff(sk.write_seq, sk.snd_nxt)
        fin = sk.fin_queued and unsent <= 0 and sk.snd_nxt == sk.write_seq
        if unsent > 0 or fin:
            end = (sk.snd_nxt + min(mss, max(unsent, 0)) + (1 if fin else 0)) & 0xFFFFFFFF
            if not after(end, (sk.snd_una + sk.snd_wnd) & 0xFFFFFFFF):
                sent = _tcp_write_one(sk, now)
            else:
                sent = _tcp_retransmit_last(sk, now)
        else:
            sent = _tcp_retransmit_last(sk, now)
        if sent:
            # (snd_nxt for loss detection: an ACK beyond it shows the probe
            # repaired a loss, tcp_input.tcp_process_tlp_ack)
            sk.tlp_high_seq = sk.snd_nxt
            sk.host.mib["TCPLossProbes"] += 1
            sk.pending = 0      # the RTO restarts from now
    if not sk.rtx:
        sk.pending = 0
        return
    tcp_rearm_rto(sk, now)


def _tcp_write_one(sk: TcpSock, now: float) -> bool:
    """Force out exactly one new segment, past cwnd and Nagle (Linux's
    tcp_write_xmit with push_one == 2)."""
    cwnd, nodelay = sk.snd_cwnd, sk.nodelay
    sk.snd_cwnd = sk.tcp_packets_in_flight + 1
    sk.nodelay = True
    prior = sk.packets_out
    try:
        tcp_write_xmit(sk, now)
    finally:
        sk.snd_cwnd, sk.nodelay = cwnd, nodelay
    return sk.packets_out > prior


def _tcp_retransmit_last(sk: TcpSock, now: float) -> bool:
    """The probe as a retransmission of the highest segment sent: not marked
    lost nor counted in retrans_out (Linux calls __tcp_retransmit_skb)."""
    if not sk.rtx:
        return False
    if not __tcp_retransmit_skb(sk, sk.rtx[-1], now, "tlp"):
        return False            # (tcp_send_loss_probe: straight to rearm_timer)
    sk.tlp_retrans = True
    return True


def tcp_send_head(sk: TcpSock) -> bool:
    """Something queued and not sent yet (Linux's tcp_send_head != NULL):
    data past snd_nxt, or a FIN queued with no data left to carry it."""
    return seq_diff(sk.write_seq, sk.snd_nxt) > 0 or (sk.fin_queued and sk.snd_nxt == sk.write_seq)


def tcp_check_probe_timer(sk: TcpSock, now: float) -> None:
    """Arm the persist timer when data waits on a closed window with nothing
    in flight: at tcp_probe0_base, whatever the backoff (Linux
    tcp_check_probe_timer; only the probes back off)."""
    if sk.packets_out or sk.rtx_timer.pending:
        return
    if not tcp_send_head(sk):
        return
    sk.pending = ICSK_TIME_PROBE0
    sk.rtx_timer_made().arm(now + tcp_probe0_base(sk))


def tcp_probe0_base(sk: TcpSock) -> float:
    """tcp_probe0_base: max(RTO, TCP_RTO_MIN)."""
    return max(sk.rto, sk.host.settings.tcp_rto_min)


def tcp_probe0_when(sk: TcpSock) -> float:
    return min(tcp_probe0_base(sk) * (1 << min(sk.backoff, 30)), sk.host.settings.tcp_rto_max)


def tcp_write_wakeup(sk: TcpSock, now: float) -> int:
    """tcp_write_wakeup's data branch: the persist timer finds unsent data
    starting inside the peer's window and sends one segment of it whatever
    Nagle, TCP_CORK or MSG_MORE held back and whatever the cwnd: as much as
    the window and the MSS allow, with PSH, and pushed_seq moves past it.
    (A corked partial segment goes out this way one probe0 timeout, about an
    RTO, after it was queued: Linux has no other cork timer.)  False: no
    such data (the caller sends a zero-window probe instead);
    WAKEUP_REFUSED: the transmit queue refused the segment (kept unsent)."""
    if sk.state not in _SEND_STATES:
        return False
    seq = sk.snd_nxt
    unsent = seq_diff(sk.write_seq, seq)
    room = seq_diff((sk.snd_una + sk.snd_wnd) & 0xFFFFFFFF, seq)
    fin_only = unsent == 0 and sk.fin_queued
    if (unsent <= 0 and not fin_only) or room <= 0:
        return False
    mss = max(tcp_current_mss(sk) - tcp_sack_option_len(sk), 48)
    seglen = min(unsent, mss, room)
    fin = sk.fin_queued and seglen == unsent
    data_end = (seq + seglen) & 0xFFFFFFFF
    if before(sk.pushed_seq, data_end):
        sk.pushed_seq = data_end
    flags = TCPHDR_FIN | TCPHDR_PSH if fin else TCPHDR_PSH
    sml = sk.snd_sml
    seg = new_data_sent(sk, seq, (data_end + fin) & 0xFFFFFFFF, flags | TCPCB_EOB,
                        seglen < mss, now)
    off = seq_diff(seq, sk.wq_seq)
    payload = sq_view(sk.wq, off, seglen)
    held = sk.host.defer_loopback()
    try:
        ok = tcp_transmit_skb(sk, seq, TCPHDR_ACK | flags, payload, now)
    finally:
        if isinstance(payload, memoryview):
            payload.release()
        sk.host.release_loopback(held)
    if not ok:
        _unsend(sk, seg, sml)   # (tcp_event_new_data_sent only on success)
        return WAKEUP_REFUSED
    return True


# tcp_write_wakeup's answer when the transmit queue refused its segment
# (Linux's err > 0): the persist timer retries after TCP_RESOURCE_PROBE_INTERVAL
WAKEUP_REFUSED = -1


def tcp_send_probe0(sk: TcpSock, now: float) -> bool:
    """Zero-window probe (tcp_write_wakeup / tcp_xmit_probe_skb): an old
    sequence number with no data, which makes the receiver ACK with its
    window.  False when the transmit queue refused it (tcp_xmit_probe_skb
    returns tcp_transmit_skb's error)."""
    return tcp_transmit_skb(sk, (sk.snd_una - 1) & 0xFFFFFFFF, TCPHDR_ACK, b"", now)


# --- retransmission ------------------------------------------------------------
def tcp_fragment(sk: TcpSock, i: int, mss: int) -> None:
    """Split ``sk.rtx[i]`` after ``mss`` bytes of data (tcp_fragment): the tail
    becomes its own queued segment, with the FIN and the scoreboard marks, so
    a segment queued before the path MTU fell goes out again in pieces."""
    seg = sk.rtx[i]
    split = (seg.seq + mss) & 0xFFFFFFFF
    # PSH and FIN stay with the tail (tcp_fragment: "PSH and FIN should only
    # be set in the second packet")
    tail = TxSeg(split, seg.end_seq, seg.flags & (TCPHDR_FIN | TCPHDR_PSH | TCPCB_EOB),
                 seg.tstamp)
    tail.sacked = seg.sacked
    tail.retrans = seg.retrans
    seg.end_seq = split
    seg.flags &= ~(TCPHDR_FIN | TCPHDR_PSH | TCPCB_EOB)
    sk.rtx.insert(i + 1, tail)
    sk.packets_out += 1
    if tail.sacked & 1:        # TCPCB_SACKED_ACKED
        sk.sacked_out += 1
    if tail.sacked & 2:        # TCPCB_SACKED_RETRANS
        sk.retrans_out += 1
    if tail.sacked & 4:        # TCPCB_LOST
        sk.lost_out += 1


def tcp_retransmit_skb(sk: TcpSock, seg: Any, now: float, cause: str = "loss",
                       psh: bool = False) -> bool:
    """Resend one queued segment, rebuilt from the send buffer, and count it
    in retrans_out (TCPCB_SACKED_RETRANS) until it is (S)ACKed or lost again.
    One longer than the current MSS (the path MTU fell) is cut to it first.
    ``cause`` ("loss", "rto") is the trace's; ``psh``: it ends a
    retransmitted burst of several (tcp_xmit_retransmit_queue).  False when
    the transmit queue refused it: like Linux it is then not marked
    retransmitted (still lost, sent again later), only counted
    (TCPRetransFail)."""
    if not seg.flags & TCPHDR_SYN:
        mss = max(tcp_current_mss(sk) - tcp_sack_option_len(sk), 48)
        if seq_diff(seg.end_seq, seg.seq) - (1 if seg.flags & TCPHDR_FIN else 0) > mss:
            tcp_fragment(sk, sk.rtx.index(seg), mss)
    marked = not seg.sacked & 2
    if marked:
        seg.sacked |= 2   # TCPCB_SACKED_RETRANS
        sk.retrans_out += 1
    if sk.retrans_stamp is None:
        # "stamp of the first (attempted) retransmit": now, refused or not
        # (a SYN's is its first send, as tcp_connect stamps it)
        sk.retrans_stamp = seg.tstamp if seg.flags & TCPHDR_SYN else now
    if __tcp_retransmit_skb(sk, seg, now, cause, psh):
        return True
    if marked:
        seg.sacked &= ~2
        sk.retrans_out -= 1
    return False


def __tcp_retransmit_skb(sk: TcpSock, seg: Any, now: float, cause: str = "loss",
                         psh: bool = False) -> bool:
    """Send a queued segment again, with no scoreboard marks but "ever
    retransmitted" (seg.retrans, Karn's rule) and its new send time (the
    loss probe's retransmission is only this).  Its flags are the segment's
    own (tcp_retransmit_skb): PSH where a write ended (push_mark), or
    ``psh``, at the end of a retransmitted burst of several.  False (the
    send time kept: it was not sent) when the transmit queue refused it."""
    flags = TCPHDR_ACK | (seg.flags & 0xFF) | (TCPHDR_PSH if psh else 0)
    if seg.flags & TCPHDR_SYN:
        if sk.state == TCP_SYN_SENT:
            flags = TCPHDR_SYN
        payload: Any = b""
    else:
        start = seg.seq
        dlen = seq_diff(seg.end_seq, start) - (1 if seg.flags & TCPHDR_FIN else 0)
        off = seq_diff(start, sk.wq_seq)
        payload = bytes(sq_view(sk.wq, off, dlen))
    seg.retrans += 1
    sent_at = seg.tstamp
    seg.tstamp = now
    sk.host.mib["RetransSegs"] += 1
    sk.total_retrans += 1
    if sk.trace is not None:
        sk.trace.retransmit(sk, seg.seq, seg.end_seq, cause, now)
    if tcp_transmit_skb(sk, seg.seq, flags, payload, now):
        return True
    seg.tstamp = sent_at        # (tcp_update_skb_after_send only on success)
    sk.host.mib["TCPRetransFail"] += 1
    return False


def tcp_xmit_retransmit_queue(sk: TcpSock, now: float) -> None:
    """Retransmit segments marked lost while the congestion window has room.

    ``sk.retransmit_hint`` (Linux's retransmit_skb_hint) remembers where the
    walk stopped, so a long queue is not rescanned on every ACK; whoever
    marks a segment lost moves the hint back to it."""
    rtx = sk.rtx
    if not sk.lost_out or not rtx:
        return
    cwnd = sk.snd_cwnd
    in_flight = _tcp_fast.packets_in_flight(sk)
    if in_flight >= cwnd:
        return
    una = sk.snd_una
    i = 0
    hint = sk.retransmit_hint
    if hint is not None and seq_diff(hint, una) > 0:
        rel = seq_diff(hint, una)
        i = bisect_left(rtx, rel, key=lambda x: seq_diff(x.seq, una))
    n = len(rtx)
    run = 0             # segments left of the burst being retransmitted
    several = False     # ... and it has more than one
    while i < n and in_flight < cwnd:
        seg = rtx[i]
        s = seg.sacked
        if s & 4 and not s & 3:   # LOST, not SACKED, not already retransmitted
            if not run:
                run = _lost_run(rtx, i, cwnd - in_flight)
                several = run > 1
            run -= 1
            if not tcp_retransmit_skb(sk, seg, now, "loss", several and not run):
                break           # the transmit queue is full: later (Linux breaks too)
            if sk.ca_state in _CWND_REDUCTION:
                sk.prr_out += 1
                if sk.ca_state == TCP_CA_RECOVERY:
                    sk.host.mib["TCPFastRetrans"] += 1
            n = len(rtx)          # (tcp_fragment may have queued the tail after it)
            in_flight += 1
            if i == 0 and not sk.rtx_timer.pending:
                tcp_rearm_rto(sk, now)
        i += 1
    sk.retransmit_hint = rtx[i].seq if i < n else sk.snd_nxt


def _lost_run(rtx: list[Any], i: int, room: int) -> int:
    """How many segments from ``rtx[i]`` on Linux retransmits as one skb:
    the lost, not yet retransmitted ones of the burst (one GSO skb when first
    sent, TCPCB_EOB ending it; a SACK split it) that the window has ``room``
    for.  Several go as one GSO packet, which __tcp_transmit_skb gives PSH."""
    n = 1
    end = len(rtx)
    while n < room and i + n < end and not rtx[i + n - 1].flags & TCPCB_EOB \
            and rtx[i + n].sacked & 7 == 4:
        n += 1
    return n


# --- control segments ---------------------------------------------------------------
def tcp_send_ack(sk: TcpSock, now: float) -> None:
    if sk.state == TCP_CLOSE:
        return
    # Where the send loop's frames go whole (the route, a resolved
    # neighbour, the queue running, no SACK block, nothing xmit_plain
    # declines), the ACK goes as they do: built in one compiled call
    # (tcp_fast.ack_whole: ack_xmit) and counted as they are (burst_sent, no
    # data), the frame and the counters of tcp_transmit_skb's path below for
    # the same segment.
    path = _tcp_xmit_path(sk, 0)
    if path is not None:
        _tcp_fast.ack_whole(sk, path, now)
        return
    tcp_transmit_skb(sk, sk.snd_nxt, TCPHDR_ACK, b"", now)


def tcp_send_fin(sk: TcpSock, now: float) -> None:
    """Queue a FIN after the data; it goes out with (or after) the last segment."""
    if sk.fin_queued:
        return
    sk.fin_queued = True
    tcp_write_xmit(sk, now)


def tcp_send_active_reset(sk: TcpSock, now: float) -> None:
    """RST|ACK at snd_nxt.  Like Linux (tcp_send_active_reset ->
    tcp_transmit_skb) it carries the connection's window and, once
    negotiated, a timestamp: RFC 7323 3.2, TSopt SHOULD be sent in a RST."""
    ts_val = (tcp_time_stamp(now) + sk.ts_off) & 0xFFFFFFFF if sk.tstamp_ok else -1
    window = tcp_select_window(sk)
    tcp_v4_xmit(sk.host, sk.laddr, sk.raddr, sk.lport, sk.rport, sk.snd_nxt, sk.rcv_nxt,
                TCPHDR_RST | TCPHDR_ACK, window, ts_val, sk.ts_recent, (), b"", 0,
                ip_select_ident_segs(sk, 1), sk.opts.tos, sk.opts.ip_df)
    sk.segs_out += 1
    if sk.trace is not None:
        sk.trace.transmit(sk, sk.snd_nxt, sk.rcv_nxt, TCPHDR_RST | TCPHDR_ACK, 0, window, (),
                          now)


def tcp_abort_with_reset(sk: TcpSock, now: float, err: int) -> None:
    """Send a RST if the peer knows about us, then tear down (tcp_disconnect)."""
    if sk.state in _NEED_RESET:
        tcp_send_active_reset(sk, now)
    if err:
        sk.sk_err = err
    sk.proto.tcp_done(sk)


def tcp_disconnect(sk: TcpSock, now: float) -> None:
    tcp_abort_with_reset(sk, now, 0)


def tcp_connect(sk: TcpSock, now: float) -> None:
    """Send the SYN (tcp_connect): the SYN is queued like data so the RTO logic
    retransmits it."""
    seg = TxSeg(sk.iss, (sk.iss + 1) & 0xFFFFFFFF, TCPHDR_SYN, now)
    sk.rtx.append(seg)
    sk.packets_out = 1
    sk.snd_nxt = seg.end_seq
    tcp_transmit_skb(sk, sk.iss, TCPHDR_SYN, b"", now)
    sk.pending = 1
    sk.rtx_timer_made().arm(now + TCP_TIMEOUT_INIT)


def tcp_send_synack(sk: TcpSock, now: float) -> None:
    """SYN-ACK from a full sock (simultaneous open)."""
    tcp_transmit_skb(sk, sk.iss, TCPHDR_SYN | TCPHDR_ACK, b"", now)


# tcp_sndbuf_expand: see tcp_fast.sndbuf_expand (tcp_ack's, on every cwnd growth)
sndbuf_expand = _tcp_fast.sndbuf_expand
