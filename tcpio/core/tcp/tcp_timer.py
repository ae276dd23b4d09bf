"""TCP timers (net/ipv4/tcp_timer.c): three Timer handles per connection.

- ``rtx_timer``: retransmission (RTO) or zero-window probe, by ``sk.pending``;
- ``delack_timer``: delayed ACK;
- ``ka_timer``: keepalive, and the FIN_WAIT2 timeout (the kernel's sk_timer).
  Made the first time it is armed (``keepalive_timer``): most connections
  never enable SO_KEEPALIVE, and an idle one should not carry the handle.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING

from . import tcp_output, tcp_recovery
from .tcp_cong import CA_EVENT_LOSS
from .tcp_trace import TIMER_NAMES, log_rto

_log = logging.getLogger("tcpio.tcp")
from .tcp_states import (
    TCP_CA_DISORDER,
    TCP_CA_LOSS,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT2,
    TCP_LISTEN,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIMEWAIT_LEN,
    TCPHDR_SYN,
    after,
)

if TYPE_CHECKING:
    from ..timer import Timer
    from .sock import TcpSock

ICSK_TIME_RETRANS = tcp_output.ICSK_TIME_RETRANS
# TCP_RESOURCE_PROBE_INTERVAL (HZ/2): the RTO's next try after the transmit
# queue refused its retransmission
TCP_RESOURCE_PROBE_INTERVAL = 0.5
ICSK_TIME_PROBE0 = tcp_output.ICSK_TIME_PROBE0
ICSK_TIME_LOSS_PROBE = tcp_output.ICSK_TIME_LOSS_PROBE
ICSK_TIME_REO_TIMEOUT = tcp_output.ICSK_TIME_REO_TIMEOUT


def tcp_write_err(sk: TcpSock) -> None:
    """Give up on the connection: report ETIMEDOUT (or the soft error seen)."""
    sk.sk_err = sk.sk_err_soft or errno.ETIMEDOUT
    sk.host.mib["TCPAbortOnTimeout"] += 1
    sk.proto.tcp_done(sk)


def tcp_write_timer(sk: TcpSock, now: float) -> None:
    """tcp_write_timer_handler: the one retransmit timer, by what it was
    armed for.  The loss probe and the reordering timer keep sk.pending while
    they run, so re-arming the RTO from them keeps its original deadline."""
    event = sk.pending
    if event < ICSK_TIME_LOSS_PROBE:
        sk.pending = 0
    if sk.dead or sk.state in (TCP_CLOSE, TCP_LISTEN):
        sk.pending = 0
        return
    if sk.trace is not None:
        sk.trace.timer(sk, TIMER_NAMES.get(event, str(event)), now)
    if event == ICSK_TIME_RETRANS:
        tcp_retransmit_timer(sk, now)
    elif event == ICSK_TIME_PROBE0:
        tcp_probe_timer(sk, now)
    elif event == ICSK_TIME_LOSS_PROBE:
        tcp_output.tcp_send_loss_probe(sk, now)
    elif event == ICSK_TIME_REO_TIMEOUT:
        tcp_recovery.tcp_rack_reo_timeout(sk, now)


# tcp_model_timeout's constants: the default RTO floor and the RTO cap,
# whatever this host's RTO settings (Linux uses TCP_RTO_MIN / TCP_RTO_MAX)
TCP_RTO_MIN_MS = 200
TCP_RTO_MAX_MS = 120_000


def tcp_model_timeout(boundary: int, rto_base_ms: int) -> int:
    """tcp_model_timeout: the time (ms) ``boundary`` retransmissions take
    when the RTO starts at ``rto_base_ms`` and doubles up to TCP_RTO_MAX:
    (2^(b+1) - 1) * base while doubling, then TCP_RTO_MAX per retry."""
    thresh = (TCP_RTO_MAX_MS // rto_base_ms).bit_length() - 1     # ilog2
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base_ms
    return ((2 << thresh) - 1) * rto_base_ms + (boundary - thresh) * TCP_RTO_MAX_MS


def retransmits_timed_out(sk: TcpSock, now: float, boundary: int, timeout: float = 0.0,
                          rto_base_ms: int = TCP_RTO_MIN_MS) -> bool:
    """retransmits_timed_out: has the time since the first (attempted)
    retransmission of this episode (retrans_stamp) reached ``timeout``
    (TCP_USER_TIMEOUT), or without one the model time of ``boundary``
    retransmissions?  Time, not the count of retransmissions: an RTO the
    transmit queue refuses (tried again after TCP_RESOURCE_PROBE_INTERVAL,
    with no backoff) gives up when lost ones would.  In milliseconds, as
    Linux's tcp_time_stamp, so float sums of backoffs compare exactly."""
    stamp = sk.retrans_stamp
    if not sk.retransmits or stamp is None:
        return False
    limit = round(timeout * 1000) if timeout else tcp_model_timeout(boundary, rto_base_ms)
    return round((now - stamp) * 1000) >= limit


def tcp_orphan_retries(sk: TcpSock, alive: bool) -> int:
    """tcp_orphan_retries: tcp_orphan_retries (0 by default), none left
    after an ICMP error once the RTO is at its cap, 8 while it is not."""
    retries = sk.host.settings.tcp_orphan_retries
    if sk.sk_err_soft and not alive:
        retries = 0
    if not retries and alive:
        retries = 8
    return retries


def tcp_out_of_resources(sk: TcpSock, now: float, do_reset: bool) -> bool:
    """tcp_out_of_resources: an orphan's retransmission or probe when the
    host holds more orphans than tcp_max_orphans (tcp_too_many_orphans),
    counted twice (shifted once) for one idle past 2 x tcp_rto_max or whose
    reset would not be sent, and again for one that saw an ICMP error: it is
    dropped (TCPAbortOnMemory), with a RST if it sent recently or the peer's
    window is shut with nothing in flight.  (Linux also counts tcp_mem
    pressure here; tcpio keeps no host-wide TCP memory account.)"""
    st = sk.host.settings
    lsndtime = sk.lsndtime if sk.lsndtime is not None else now
    shift = 0
    if now - lsndtime > 2 * st.tcp_rto_max or not do_reset:
        shift += 1
    if sk.sk_err_soft:
        shift += 1
    if sk.proto.orphans << shift <= st.tcp_max_orphans:
        return False
    if now - lsndtime <= TCP_TIMEWAIT_LEN or (not sk.snd_wnd and not sk.packets_out):
        do_reset = True
    if do_reset:
        tcp_output.tcp_send_active_reset(sk, now)
    sk.proto.tcp_done(sk)
    sk.host.mib["TCPAbortOnMemory"] += 1
    return True


def tcp_write_timeout(sk: TcpSock, now: float) -> bool:
    """tcp_write_timeout: give up on the connection (tcp_write_err), True
    if it is over?  A SYN (SYN-ACK) after syn_retries (synack_retries)
    attempts, counted; otherwise when the time since the episode's first
    retransmission reaches tcp_retries2's model time (an orphan's:
    tcp_orphan_retries', after tcp_out_of_resources, which may end it
    first), or TCP_USER_TIMEOUT if set."""
    st = sk.host.settings
    if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
        limit = st.tcp_syn_retries if sk.state == TCP_SYN_SENT else st.tcp_synack_retries
        # tcp_timeout_init: the SYN's RTO is the model's base
        base = round(sk.rtt_est.rto_initial * 1000)
        expired = sk.retransmits >= limit or retransmits_timed_out(
            sk, now, limit, sk.opts.user_timeout, base)
    else:
        limit = st.tcp_retries2
        if sk.orphan:
            alive = sk.rto < st.tcp_rto_max
            limit = tcp_orphan_retries(sk, alive)
            expired = retransmits_timed_out(sk, now, limit)
            if tcp_out_of_resources(sk, now, alive or not expired):
                return True
            if sk.opts.user_timeout:
                expired = retransmits_timed_out(sk, now, limit, sk.opts.user_timeout)
        else:
            expired = retransmits_timed_out(sk, now, limit, sk.opts.user_timeout)
    if expired:
        tcp_write_err(sk)
    return expired


def tcp_retransmit_timer(sk: TcpSock, now: float) -> None:
    if not sk.packets_out or not sk.rtx:
        return
    sk.host.mib["TCPTimeouts"] += 1
    if tcp_write_timeout(sk, now):
        return
    head = sk.rtx[0]
    if _log.isEnabledFor(logging.INFO):
        log_rto(sk, now)
    if not head.flags & TCPHDR_SYN:
        tcp_enter_loss(sk)
    # tcp_update_rto_stats: the attempt counts whether or not it goes out
    # (after tcp_enter_loss, which reads the count of the previous ones)
    sk.retransmits += 1
    if not tcp_output.tcp_retransmit_skb(sk, head, now, "rto"):
        # The transmit queue refused it (local congestion): Linux tries again
        # after TCP_RESOURCE_PROBE_INTERVAL, with no backoff.  A SYN gives up
        # after syn_retries such tries; anything else when the time since the
        # first one reaches the model time of tcp_retries2 (retrans_stamp is
        # the first attempt's, refused or not), as a lost one would.
        sk.pending = ICSK_TIME_RETRANS
        sk.rtx_timer_made().arm(now + TCP_RESOURCE_PROBE_INTERVAL)
        return
    sk.rtt_est.backoff()
    when = now + sk.rto
    if sk.opts.user_timeout and sk.retrans_stamp is not None:
        # tcp_clamp_rto_to_user_timeout: do not overshoot the user's limit
        when = min(when, max(sk.retrans_stamp + sk.opts.user_timeout, now + 0.001))
    sk.pending = ICSK_TIME_RETRANS
    sk.rtx_timer_made().arm(when)


def tcp_enter_loss(sk: TcpSock) -> None:
    """RTO: every unSACKed segment is presumed lost; cwnd restarts at 1."""
    if (sk.ca_state <= TCP_CA_DISORDER or not after(sk.high_seq, sk.snd_una) or
            (sk.ca_state == TCP_CA_LOSS and not sk.retransmits)):
        sk.prior_ssthresh = sk.snd_ssthresh
        sk.prior_cwnd = sk.snd_cwnd
        sk.snd_ssthresh = sk.ca_ops.ssthresh(sk)
        sk.ca_ops.cwnd_event(sk, CA_EVENT_LOSS)
    lost = 0
    for seg in sk.rtx:
        if seg.sacked & 1:
            continue
        seg.sacked = 4
        lost += 1
    sk.lost_out = lost
    sk.retrans_out = 0
    sk.retransmit_hint = None
    if not sk.sack_ok:
        sk.sacked_out = 0
    sk.snd_cwnd = 1
    sk.snd_cwnd_cnt = 0
    sk.high_seq = sk.snd_nxt
    sk.tlp_high_seq = None      # a loss-probe episode ends with the RTO
    sk.ca_state = TCP_CA_LOSS
    sk.ca_ops.set_state(sk, TCP_CA_LOSS)


def tcp_probe_timer(sk: TcpSock, now: float) -> None:
    """Persist timer: probe the zero window with exponential backoff.
    Nothing in flight and something unsent, or nothing to do (Linux:
    `packets_out || !tcp_send_head(sk)`; a FIN sent and ACKed is nothing)."""
    if sk.packets_out or not tcp_output.tcp_send_head(sk):
        sk.probes_out = 0
        sk.backoff = 0
        sk.probe_start = 0.0
        return
    # icsk_probes_tstamp: stamped by the first probe of a closed window and
    # kept until the window opens (tcp_ack_probe) or probing ends; an ACK
    # answering a probe with the window still zero clears probes_out, not
    # this, so TCP_USER_TIMEOUT ends a peer that keeps its window shut.
    if not sk.probe_start:
        sk.probe_start = now
    elif sk.opts.user_timeout and now - sk.probe_start >= sk.opts.user_timeout:
        tcp_write_err(sk)
        return
    st = sk.host.settings
    limit = st.tcp_retries2
    if sk.orphan:
        # an orphan probes while its backed-off interval is under
        # tcp_rto_max (inet_csk_rto_backoff), tcp_orphan_retries once there
        alive = sk.rto * (1 << sk.backoff) < st.tcp_rto_max
        limit = tcp_orphan_retries(sk, alive)
        if not alive and sk.backoff >= limit:
            tcp_write_err(sk)
            return
        if tcp_out_of_resources(sk, now, True):
            return
    if sk.probes_out >= limit:
        tcp_write_err(sk)
        return
    # tcp_write_wakeup: data inside the window (it opened a little, or Nagle
    # or a cork held a partial segment back) goes out instead of a probe;
    # then data is in flight and the RTO takes over (tcp_send_probe0).
    woke = tcp_output.tcp_write_wakeup(sk, now)
    if not woke and not tcp_output.tcp_send_probe0(sk, now):
        woke = tcp_output.WAKEUP_REFUSED    # (tcp_xmit_probe_skb's error too)
    if woke == tcp_output.WAKEUP_REFUSED:
        # tcp_send_probe0: not sent for local congestion, so no backoff: the
        # next try after TCP_RESOURCE_PROBE_INTERVAL (a probe still counts)
        sk.probes_out += 1
        sk.pending = ICSK_TIME_PROBE0
        sk.rtx_timer_made().arm(now + tcp_clamp_probe0_to_user_timeout(
            sk, now, TCP_RESOURCE_PROBE_INTERVAL))
        return
    if woke:
        sk.probes_out = 0
        sk.backoff = 0
        sk.probe_start = 0.0
        tcp_output.tcp_rearm_rto(sk, now)
        return
    sk.probes_out += 1
    if sk.backoff < st.tcp_retries2:
        # tcp_send_probe0: a peer that answers every probe with its window
        # still shut is probed for ever (RFC 1122 4.2.2.17), at an interval
        # that stops growing at rto << tcp_retries2
        sk.backoff += 1
    sk.pending = ICSK_TIME_PROBE0
    sk.rtx_timer_made().arm(now + tcp_clamp_probe0_to_user_timeout(
        sk, now, tcp_output.tcp_probe0_when(sk)))


def tcp_clamp_probe0_to_user_timeout(sk: TcpSock, now: float, when: float) -> float:
    """tcp_clamp_probe0_to_user_timeout: a persist timer armed while probing
    waits at most until the user timeout ends (counted from the first probe,
    sk.probe_start), and at least TCP_TIMEOUT_MIN."""
    user_timeout = sk.opts.user_timeout
    if not user_timeout or not sk.probe_start:
        return when
    elapsed = max(now - sk.probe_start, 0.0)
    return min(max(user_timeout - elapsed, tcp_output.TCP_TIMEOUT_MIN), when)


def tcp_delack_timer(sk: TcpSock, now: float) -> None:
    if sk.dead or not sk.ack_pending or sk.state == TCP_CLOSE:
        return
    if sk.trace is not None:
        sk.trace.timer(sk, "delack", now)
    # Delayed ACK missed (no reply carried it): leave pingpong mode
    # (inet_csk_exit_pingpong_mode; tcpio's ATO is fixed, nothing to deflate)
    if tcp_output.in_pingpong_mode(sk):
        sk.pingpong = 0
    sk.host.mib["DelayedACKs"] += 1
    tcp_output.tcp_send_ack(sk, now)


# --- keepalive / FIN_WAIT2 (sk_timer) ------------------------------------------------
def keepalive_timer(sk: TcpSock) -> Timer:
    """The sock's keepalive timer, made on first use (``sk.ka_timer`` is
    None until then: nothing to cancel or report)."""
    timer = sk.ka_timer
    if timer is None:
        timer = sk.ka_timer = sk.host.timers.timer(tcp_keepalive_timer, sk)
    return timer


def tcp_set_keepalive(sk: TcpSock, now: float) -> None:
    if sk.opts.keepalive and sk.state in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
        keepalive_timer(sk).arm(now + sk.opts.keepidle)
    elif not sk.opts.keepalive and sk.state != TCP_FIN_WAIT2 and sk.ka_timer is not None:
        sk.ka_timer.cancel()


def tcp_fin_wait2_orphan(sk: TcpSock, now: float) -> None:
    """An orphan in FIN_WAIT2 waits tcp_fin_timeout as a light time-wait entry."""
    sk.proto.tcp_time_wait(sk, TCP_FIN_WAIT2, now, sk.host.settings.tcp_fin_timeout)


def tcp_keepalive_timer(sk: TcpSock, now: float) -> None:
    if sk.dead:
        return
    if sk.trace is not None:
        sk.trace.timer(sk, "keepalive", now)
    if sk.state == TCP_FIN_WAIT2 and sk.orphan:
        tcp_fin_wait2_orphan(sk, now)
        return
    if not sk.opts.keepalive or sk.state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT):
        return
    if sk.packets_out or sk.write_seq != sk.snd_nxt:
        # data in flight: the retransmit timer watches the peer
        keepalive_timer(sk).arm(now + sk.opts.keepidle)
        return
    idle = now - sk.rcv_tstamp
    if idle >= sk.opts.keepidle:
        if (sk.opts.user_timeout and sk.probes_out and idle >= sk.opts.user_timeout) or \
                (not sk.opts.user_timeout and sk.probes_out >= sk.opts.keepcnt):
            sk.host.mib["TCPKeepAliveTimeouts"] += 1
            tcp_output.tcp_send_active_reset(sk, now)
            tcp_write_err(sk)
            return
        if tcp_output.tcp_send_probe0(sk, now):   # seq snd_una - 1, no data
            sk.probes_out += 1
            keepalive_timer(sk).arm(now + sk.opts.keepintvl)
        else:
            # tcp_write_wakeup > 0: the transmit queue refused the probe
            # (local congestion), so it is not counted and the next try
            # comes after TCP_RESOURCE_PROBE_INTERVAL ("try harder")
            keepalive_timer(sk).arm(now + TCP_RESOURCE_PROBE_INTERVAL)
    else:
        sk.probes_out = 0   # the peer answered since the last probe
        keepalive_timer(sk).arm(now + sk.opts.keepidle - idle)
