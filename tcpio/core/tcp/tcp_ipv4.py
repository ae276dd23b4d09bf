"""TCP over IPv4 (net/ipv4/tcp_ipv4.c): the protocol handler the host calls.

``TcpProto(host)`` owns the hash tables and the per-host TCP state (orphan and
time-wait counts, the challenge-ACK budget).  ``rcv`` is tcp_v4_rcv: checksum,
parse, one ehash lookup, then the sock's state decides where the segment goes:
ESTABLISHED -> tcp_rcv_established (fast path); TIME_WAIT -> the time-wait
sock; NEW_SYN_RECV -> tcp_check_req; LISTEN -> SYN handling / cookies;
anything else -> tcp_rcv_state_process.

TCP sees its host only as a ``protocol.NetHost``; ``af_inet.inet_init``
builds it and registers it, with ``early_demux()``, as Linux's inet_init
registers tcp_protocol.  Building the first one installs the Python side the
compiled fast paths call back into (``tcp_input.tcp_init_fast_hooks``).
"""

from __future__ import annotations

import errno
import logging
from collections import namedtuple
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from tcpio.core.icmp_h import (
    ICMP_DEST_UNREACH,
    ICMP_FRAG_NEEDED,
    ICMP_HOST_UNREACH,
    ICMP_NET_UNREACH,
    ICMP_PARAMETERPROB,
    ICMP_TIME_EXCEEDED,
)

from ... import _fast
from ..addr import ip6_ntoa, ip_ntoa, is_multicast
from ..errors import sock_error
from ..in_h import AF_INET, AF_INET6, IPPROTO_TCP
from ..ipv6 import is_multicast6
from ..protocol import EarlyDemux
from .inet6_addr import IPV6_TCP_EXTRA, V6MASK, V6TAG, route_check, route_mtu4
from .inet_hashtables import InetHashInfo
from .secure_seq import secure_tcp_seq, secure_tcp_ts_off
from .sock import TCP_MSS_DEFAULT, TcpSock
from .syncookies import (
    cookie_init_timestamp,
    cookie_timestamp_decode,
    cookie_v4_check,
    cookie_v4_init_sequence,
    inet_csk_reqsk_queue_is_full,
    syn_keys,
    synack_route_scope,
)
from .tcp_info import tcp_get_info
from .tcp_input import (
    Skb,
    tcp_init_fast_hooks,
    tcp_initialize_rcv_mss,
    tcp_rcv_established,
    tcp_rcv_state_process,
    tcp_simple_retransmit,
)
from .tcp_minisocks import (
    TCP_TW_ACK,
    TCP_TW_RST,
    TCP_TW_SUCCESS,
    RequestSock,
    TimeWaitSock,
    reqsk_timer_start,
    reqsk_timer_stop,
    reqsk_timer_when,
    tcp_check_req,
    tcp_create_openreq_child,
    tcp_init_transfer_passive,
    tcp_send_synack,
    tcp_synack_rtt_meas,
    tcp_timewait_state_process,
    tcp_tw_isn,
)
from .tcp_output import (
    CTL_SOCK_DF,
    ICSK_TIME_PROBE0,
    tcp_abort_with_reset,
    tcp_connect,
    tcp_sync_mss,
    tcp_time_stamp,
    tcp_v4_send,
)
from .tcp_sack import NO_OFO
from .tcp_states import (
    SHUTDOWN_MASK,
    STATE_NAMES,
    TCP_CLOSE,
    TCP_ESTABLISHED,
    TCP_LISTEN,
    TCP_NEW_SYN_RECV,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
    TCPHDR_ACK,
    TCPHDR_FIN,
    TCPHDR_RST,
    TCPHDR_SYN,
    between,
    seq_diff,
)
from .tcp_timer import tcp_set_keepalive
from .tcp_trace import TraceSink, tcp_log_state

_log = logging.getLogger("tcpio.tcp")
# Logger.isEnabledFor's own answers, by level (setLevel and logging.disable
# clear this dict in place): tcp_set_state reads it without a call, four
# times per connection; a level not in it is asked the usual way.  (An
# empty dict of our own if this Python's Logger keeps no such cache.)
_LOG_ENABLED: dict[int, bool] = getattr(_log, "_cache", {})
_INFO = logging.INFO
# what tcp_set_state logs a change with (syn_fast.tcp_set_state)
_STATE_LOG = (_LOG_ENABLED, _log, _INFO, tcp_log_state)

if TYPE_CHECKING:
    from ..protocol import NetHost, NetHost6

wire = _fast.load("wire")
_syn_fast = _fast.load("syn_fast")
_tcp_fast = _fast.load("tcp_fast")
checksum = _fast.load("checksum")
_done_clear = _syn_fast.done_clear
_release_queues = _syn_fast.release_queues
parse_tcp = wire.parse_tcp
ParseError = wire.ParseError
tcpudp_checksum = checksum.tcpudp_checksum

MAX_SYNCOOKIE_AGE = 120.0
CHALLENGE_ACK_LIMIT_OFF = 0x7FFFFFFF   # INT_MAX: no host-wide challenge-ACK limit
MAX_SYNACK_LEN = 60         # IPv4 + TCP + MSS, timestamp (with SACK-permitted), window scale

ConnRow = namedtuple("ConnRow", "state local remote recv_q send_q timer")
# connections(info=True): info is the full sock's tcp_info dict (else None)
ConnInfoRow = namedtuple("ConnInfoRow", "state local remote recv_q send_q timer info")


class TcpProto:
    """The host's TCP: tables, counters, and the entry points from IP."""

    def __init__(self, host: NetHost) -> None:
        tcp_init_fast_hooks()
        self.host = host
        self.hashinfo = InetHashInfo(host.settings, host.secret)
        # the stateless SYN path the rx classifier runs (syn_fast; early_demux)
        self.syn_path = _syn_fast.SynPath(syn_keys(host.secret), host.settings,
                                          self.synack_route, self.synack_route_scope)
        self.syn_path.by_port = self.hashinfo.by_port
        # what the receive windows of the connections receiving at once share
        self.rcv_pool = _tcp_fast.RcvPool(*host.settings.tcp_rcv_pool)
        self.orphans = 0
        self.tw_count = 0
        self.challenge_second = -1
        self.challenge_count = 0
        # the per-stack trace sink: every connection reports to it (set_trace)
        self.trace_sink: TraceSink | None = None
        # tcp_set_state(sk, state): the store, CurrEstab's count, the trace
        # and the log (syn_fast.tcp_set_state), with no Python frame of its own
        self.tcp_set_state: Callable[[TcpSock, int], None] = partial(
            _syn_fast.tcp_set_state, _STATE_LOG)

    def set_trace(self, sink: TraceSink | None) -> None:
        """Trace every TCP connection of the host to ``sink`` (None: stop),
        the existing ones and those made later (docs/internals.md, Tracing)."""
        self.trace_sink = sink
        socks = [sk for lst in self.hashinfo.lhash.values() for sk in lst]
        socks += [sk for sk in self.hashinfo.established() if isinstance(sk, TcpSock)]
        for sk in socks:
            sk.set_trace(sink)

    def early_demux(self) -> EarlyDemux:
        """The receive fast path this TCP registers with the host (tcp_v4_early_demux):
        segments the rx classifier verified go to ``rcv_verified``, and the
        classifier may search our established hashes itself (IPv4's and
        IPv6's), and answer a SYN with a cookie through our SYN path."""
        return EarlyDemux(self.rcv_verified, self.hashinfo.ehash, self.syn_path,
                          self.hashinfo.ehash6)

    # --- user entry ---------------------------------------------------------------
    def socket(self, family: int = AF_INET) -> TcpSock:
        if family not in (AF_INET, AF_INET6):
            raise sock_error(errno.EAFNOSUPPORT)
        sk = TcpSock(self)
        if family == AF_INET6:
            sk.family = AF_INET6
            sk.v6only = bool(self.host.settings.bindv6only)
        return sk

    # --- helpers ------------------------------------------------------------------
    def route_mtu(self, raddr: int) -> int:
        """The route's MTU for TCP's arithmetic (an IPv6 path's less 20:
        inet6_addr.route_mtu4); 576 without a route."""
        try:
            if raddr > V6MASK:
                # route_mtu4 inlined: tcp_write_xmit asks once per call
                return cast("NetHost6", self.host).route6_lookup(
                    raddr & V6MASK).mtu - IPV6_TCP_EXTRA
            return self.host.route_lookup(raddr).mtu
        except OSError:
            return 576

    def synack_route(self, raddr: int) -> tuple[int, Any, Any, int] | None:
        """For the compiled SYN path: where a SYN-ACK to ``raddr`` leaves as one
        whole frame (ifindex, dst_mac, src_mac; ip_tcp_path) and the route
        MTU; None when ip_output's general path is needed."""
        host = self.host
        path = host.ip_tcp_path(raddr, MAX_SYNACK_LEN)
        if path is None:
            return None
        return path[0], path[1], path[2], self.route_mtu(raddr)

    def synack_route_scope(self, raddr: int) -> tuple | None:
        """For the compiled SYN path: the path of a SYN-ACK to ``raddr`` and
        the destinations that share it, resolved once per receive batch
        (syncookies.synack_route_scope; syn_fast.synack_path)."""
        return synack_route_scope(self.host, raddr, MAX_SYNACK_LEN)

    def route_mtu_checked(self, raddr: int) -> int:
        """route_check and route_mtu in one lookup (the passive open's
        inet_csk_route_req / inet_csk_route_child_sock, which go on with the
        route they found): OSError without a route."""
        # (route_check inlined: twice per accepted connection)
        if raddr > V6MASK:
            return cast("NetHost6", self.host).route6_lookup(raddr & V6MASK).mtu - IPV6_TCP_EXTRA
        return self.host.route_lookup(raddr).mtu

    def advmss_for(self, raddr: int, user_mss: int = 0, mtu: int = 0) -> int:
        """The MSS we advertise to ``raddr``: the route's (dst_metric_advmss),
        bounded by a TCP_MAXSEG ``user_mss`` when one is set (tcp_mss_clamp).
        ``mtu``: the route's, when the caller has just looked it up.

        A listener passes its own user_mss: Linux clamps the SYN-ACK's MSS
        option, the request's initial window and the child's advmss with it.
        """
        return int(_syn_fast.route_advmss(mtu or self.route_mtu(raddr), user_mss))

    def _rcv_wscale(self, rcvbuf: int) -> int:
        """tcp_select_initial_window: enough scale for the largest buffer."""
        st = self.host.settings
        return int(_syn_fast.tcp_rcv_wscale(bool(st.tcp_window_scaling), st.tcp_rmem[2], rcvbuf))

    @staticmethod
    def _initial_rcv_wnd(rcvbuf: int, mss: int) -> int:
        """tcp_select_initial_window: the buffer, at most 65535 (a SYN's window
        is not scaled), rounded down to whole segments when one fits."""
        return int(_syn_fast.initial_rcv_wnd(rcvbuf, mss))

    def challenge_ack_allowed(self, now: float) -> bool:
        """The host-wide part of tcp_send_challenge_ack (RFC 5961 7); counts
        TCPChallengeACK when one may go.

        tcp_challenge_ack_limit at INT_MAX (Linux >= 6.0's default) turns it
        off: a shared counter is the CVE-2016-5696 side channel (an off-path
        attacker spends it through a victim's connection and counts what is
        left on its own).  When set, each second's budget is drawn at random
        from [limit/2, limit + limit/2) as Linux has done since 4.7, so what
        is left says little about what was spent.
        """
        limit = self.host.settings.tcp_challenge_ack_limit
        if limit < CHALLENGE_ACK_LIMIT_OFF:
            sec = int(now)
            if self.challenge_second != sec:
                half = (limit + 1) >> 1
                self.challenge_second = sec
                self.challenge_count = self.host.rng.randint(half, limit + half - 1) \
                    if limit > 0 else 0
            if self.challenge_count <= 0:
                return False
            self.challenge_count -= 1
        self.host.mib["TCPChallengeACK"] += 1
        return True

    def acceptq_overflow(self, listener: TcpSock) -> bool:
        """``sk_acceptq_is_full``, counting the drop (ListenOverflows, ListenDrops)."""
        if len(listener.accept_queue) <= listener.max_ack_backlog:
            return False
        mib = self.host.mib
        mib["ListenOverflows"] += 1
        mib["ListenDrops"] += 1
        return True

    # --- active open (tcp_v4_connect) ------------------------------------------------
    def tcp_v4_connect(self, sk: TcpSock, addr: int, port: int) -> None:
        host = self.host
        st = host.settings
        now = host.now
        if addr > V6MASK:
            # tcp_v6_connect: the route (ENETUNREACH), never multicast
            rt = route_check(host, addr)
            if is_multicast6(addr & V6MASK):
                raise sock_error(errno.ENETUNREACH, "TCP to a multicast address")
            src, mtu = V6TAG | rt.src, rt.mtu - IPV6_TCP_EXTRA
        else:
            rt = host.route_lookup(addr)        # ENETUNREACH propagates
            src, mtu = rt.src, rt.mtu
        if addr <= V6MASK and (host.is_broadcast(addr) or is_multicast(addr)):
            # The route is RTN_BROADCAST / RTN_MULTICAST (RTCF_BROADCAST,
            # RTCF_MULTICAST): tcp_v4_connect refuses it with -ENETUNREACH
            # before taking a port or sending anything.
            raise sock_error(errno.ENETUNREACH, "TCP to a broadcast or multicast address")
        had_laddr = sk.laddr
        if not sk.laddr:
            sk.laddr = src
        sk.raddr, sk.rport = addr, port
        sk.iss = 0      # _check_established sets it when it recycles a TIME-WAIT tuple
        try:
            self.hashinfo.inet_hash_connect(sk, self._check_established)
        except OSError:
            sk.raddr = sk.rport = 0
            sk.laddr = had_laddr
            raise
        sk.hashed = True
        sk.wscale_ok = bool(st.tcp_window_scaling)
        sk.rcv_wscale = self._rcv_wscale(sk.rcvbuf)
        sk.sack_ok = bool(st.tcp_sack)
        sk.tstamp_ok = bool(st.tcp_timestamps)
        sk.advmss = self.advmss_for(addr, sk.opts.user_mss)
        # tcp_v4_connect / tcp_connect_init: until the SYN-ACK's MSS option
        # says otherwise the peer takes RFC 9293 3.7.1's 536 (or TCP_MAXSEG):
        # a SYN-ACK without the option leaves it so.
        sk.mss_clamp = sk.opts.user_mss or TCP_MSS_DEFAULT
        tcp_sync_mss(sk, mtu)
        sk.rcv_wnd = _tcp_fast.rcv_pool_open(self.rcv_pool, now, sk.advmss,
                                             self._initial_rcv_wnd(sk.rcvbuf, sk.advmss))
        tcp_initialize_rcv_mss(sk)
        if not sk.iss:
            sk.iss = secure_tcp_seq(host.secret, sk.laddr, sk.lport, addr, port, now)
        sk.ts_off = secure_tcp_ts_off(host.secret, sk.laddr, addr) if sk.tstamp_ok else 0
        sk.inet_id = host.ip_ids.random_u16()     # the connection's IP IDs start here
        sk.snd_una = sk.snd_nxt = sk.iss
        sk.write_seq = sk.wq_seq = sk.snd_sml = sk.pushed_seq = (sk.iss + 1) & 0xFFFFFFFF
        sk.sk_err = 0
        sk.sk_shutdown = 0
        self.tcp_set_state(sk, TCP_SYN_SENT)
        host.mib["ActiveOpens"] += 1
        tcp_connect(sk, now)

    def _check_established(self, sk: TcpSock, lport: int) -> bool:
        """__inet_check_established: is (laddr, lport, raddr, rport) free?

        A TIME_WAIT entry may be recycled when timestamps make old duplicates
        harmless (tcp_twsk_unique): for a sock bound to its port by the user,
        always; for a port connect() is choosing, only with tcp_tw_reuse = 1
        and more than a second after its last timestamp.  The new connection
        then starts above the old sequence space (RFC 1122 4.2.2.13)."""
        other = self.hashinfo.lookup_established(sk.laddr, lport, sk.raddr, sk.rport)
        if other is None:
            return True
        if not isinstance(other, TimeWaitSock) or not other.tstamp_ok:
            return False
        if not sk.lport and not (self.host.settings.tcp_tw_reuse == 1 and
                                 self.host.now - other.ts_recent_stamp > 1.0):
            return False
        sk.iss = tcp_tw_isn(other)
        self.inet_twsk_kill(other)
        self.host.mib["TWRecycled"] += 1
        return True

    # --- teardown -----------------------------------------------------------------
    def tcp_done(self, sk: TcpSock) -> None:
        """The connection is over (tcp_done): CLOSE, unhash, stop the timers."""
        if sk.dead:
            return
        state = sk.state
        if state in (TCP_SYN_SENT, TCP_SYN_RECV):
            self.host.mib["AttemptFails"] += 1
        if state != TCP_CLOSE:
            self.tcp_set_state(sk, TCP_CLOSE)
        # (an idle timer is not asked: cancel() of one changes nothing, and a
        # closing connection's usually are, its FIN acked and ACK sent)
        if sk.rtx_timer.when is not None:
            sk.rtx_timer.cancel()
        if sk.delack_timer.when is not None:
            sk.delack_timer.cancel()
        if sk.ka_timer is not None:
            sk.ka_timer.cancel()
        sk.pending = 0
        if sk.hashed:
            self.hashinfo.ehash_remove(sk)
            sk.hashed = False
        sk.sk_shutdown = SHUTDOWN_MASK
        # no ACK owed, the retransmit queue and its counts emptied
        _done_clear(sk)
        if sk.orphan:
            self.sk_release(sk)     # (which puts the port: once per connection)
        else:
            if not sk.bound:
                self.hashinfo.inet_put_port(sk)
            self.host.schedule_wakeup(sk)

    def sk_release(self, sk: TcpSock) -> None:
        """The user closed a sock that is (now) CLOSE: free everything."""
        if sk.dead:
            return
        if sk.orphan:
            self.orphans -= 1
        sk.dead = True
        self.hashinfo.inet_put_port(sk)
        _release_queues(sk, NO_OFO)

    def tcp_time_wait(self, sk: TcpSock, substate: int, now: float,
                      timeo: float | None = None) -> None:
        """Hand the 4-tuple to a light time-wait sock and finish the full sock."""
        st = self.host.settings
        if self.tw_count >= st.tcp_max_tw_buckets:
            self.host.mib["TCPTimeWaitOverflow"] += 1
        else:
            tw = TimeWaitSock(self, sk, substate)
            self.hashinfo.inet_twsk_hashdance(tw, sk)
            sk.hashed = False
            self.tw_count += 1
            tw.timer.arm(now + (timeo if timeo is not None else st.tcp_tw_timeout))
        orphan = sk.orphan
        if sk.state != TCP_CLOSE:
            self.tcp_set_state(sk, TCP_CLOSE)
        bound = sk.bound
        sk.bound = True     # the port now belongs to the time-wait sock
        sk.orphan = False
        self.tcp_done(sk)
        sk.bound = bound
        if orphan:
            sk.orphan = True
            self.sk_release(sk)

    def inet_twsk_kill(self, tw: TimeWaitSock) -> None:
        if tw.dead:
            return
        tw.dead = True
        tw.timer.cancel()
        self.hashinfo.inet_twsk_kill(tw)
        self.tw_count -= 1

    def listen_stop(self, sk: TcpSock, now: float) -> None:
        """inet_csk_listen_stop: drop the SYN queue, reset the accept queue."""
        self.hashinfo.listen_remove(sk)
        for req in list(sk.syn_queue):
            self.reqsk_drop(req)
        while sk.accept_queue:
            child = sk.accept_queue.popleft()
            child.parent = None
            child.orphan = True
            self.orphans += 1
            tcp_abort_with_reset(child, now, 0)
        self.tcp_set_state(sk, TCP_CLOSE)
        sk.orphan = False
        sk.dead = True
        self.hashinfo.inet_put_port(sk)

    # --- passive open -----------------------------------------------------------------
    def reqsk_drop(self, req: RequestSock, unhash: bool = True) -> None:
        """The request is over: off the SYN queue, its timer stopped, and
        (``unhash``) out of ehash; False when its child took its place there."""
        if req.dead:
            return
        req.dead = True
        reqsk_timer_stop(req)   # (a cookie's request is born dead and has none)
        if unhash:
            self.hashinfo.ehash_remove(req)
        req.listener.syn_queue.pop(req, None)

    def tcp_v4_conn_request(self, listener: TcpSock, skb: Skb, iph: Any, now: float,
                            isn: int = 0) -> None:
        """A SYN at a listener (tcp_conn_request).  ``isn`` is set when the SYN
        reopens a TIME-WAIT tuple: then it is the ISN, and no cookie is used."""
        host = self.host
        st = host.settings
        mib = host.mib
        want_cookie = False
        qlen = len(listener.syn_queue)
        if not isn and (st.tcp_syncookies == 2 or inet_csk_reqsk_queue_is_full(listener)):
            # tcp_syn_flood_action (counted with tcp_syncookies = 2 too)
            if not st.tcp_syncookies:
                mib["TCPReqQFullDrop"] += 1
                mib["ListenDrops"] += 1
                return
            mib["TCPReqQFullDoCookies"] += 1
            want_cookie = True
        if len(listener.accept_queue) > listener.max_ack_backlog \
                and self.acceptq_overflow(listener):      # (the common case without a call)
            return
        if not want_cookie and not isn and not st.tcp_syncookies:
            # Without cookies the last quarter of tcp_max_syn_backlog is kept
            # for peers tcp_metrics has proven alive (tcp_peer_is_proven);
            # tcpio keeps no metrics, so no peer is proven: dropped, counted
            # by tcp_listendrop alone.
            max_syn_backlog = st.tcp_max_syn_backlog
            if max_syn_backlog - qlen < (max_syn_backlog >> 2):
                mib["ListenDrops"] += 1
                return
        try:
            mtu = self.route_mtu_checked(iph.src)
        except OSError:
            # inet_csk_route_req: no way to answer; keep no state for it.
            mib["ListenDrops"] += 1
            return
        opts = skb.opts
        laddr, raddr = iph.dst, iph.src
        req = RequestSock(listener, laddr, skb.th.dport, raddr, skb.th.sport, skb.seq)
        # tcp_parse_options on a SYN: the peer's MSS, bounded by the listener's
        # TCP_MAXSEG; without the option (or with 0) RFC 9293's default 536, which
        # Linux leaves unclamped.  A SYN cookie encodes this value, not the raw option.
        user_mss = listener.opts.user_mss
        req.mss = opts.mss or TCP_MSS_DEFAULT
        if opts.mss and user_mss:
            req.mss = min(opts.mss, user_mss)
        # (advmss_for, _rcv_wscale and _initial_rcv_wnd inlined: the syn_fast
        # rules they wrap are called directly, once per SYN)
        req.wscale_ok = wscale_ok = bool(st.tcp_window_scaling) and opts.wscale is not None
        if wscale_ok:
            req.snd_wscale = min(opts.wscale, 14)
            req.rcv_wscale = _syn_fast.tcp_rcv_wscale(True, st.tcp_rmem[2], listener.rcvbuf)
        req.sack_ok = bool(st.tcp_sack) and opts.sack_ok
        req.tstamp_ok = tstamp_ok = bool(st.tcp_timestamps) and opts.ts_val is not None
        req.ts_recent = opts.ts_val or 0
        advmss = _syn_fast.route_advmss(mtu, user_mss)
        # tcp_openreq_init_rwin: whole segments of the MSS less the timestamp option
        # (held to its share of the receive pool: the peer's first flight)
        seg = advmss - 12 if tstamp_ok else advmss
        req.rcv_wnd = _tcp_fast.rcv_pool_open(self.rcv_pool, now, seg,
                                              _syn_fast.initial_rcv_wnd(listener.rcvbuf, seg))
        # used with timestamps; IPv4's through the SYN path's keyed state (the same value)
        req.ts_off = _syn_fast.ts_off_hash(self.syn_path.keys, laddr, raddr) \
            if raddr <= V6MASK else secure_tcp_ts_off(host.secret, laddr, raddr)
        if want_cookie:
            listener.last_synq_overflow = now    # tcp_synq_overflow: ACKs may bring cookies
            isn, mss = cookie_v4_init_sequence(host.secret, req.laddr, req.lport, req.raddr,
                                               req.rport, skb.seq, req.mss, now)
            req.snt_isn = isn
            req.mss = mss
            if req.tstamp_ok:
                # The SYN-ACK's timestamp carries wscale and SACK (cookie_init_timestamp):
                # tsval = cookie bits + ts_off, so tcp_send_synack's ts_off is folded in.
                ts = cookie_init_timestamp(tcp_time_stamp(now),
                                           req.snd_wscale if req.wscale_ok else None,
                                           req.sack_ok)
                req.ts_off = (ts - tcp_time_stamp(now) + req.ts_off) & 0xFFFFFFFF
            else:
                # Without timestamps a cookie cannot carry wscale or SACK.
                req.wscale_ok = req.sack_ok = False
            mib["SyncookiesSent"] += 1
            tcp_send_synack(self, req, now)
            return
        # F of the ISN as the timestamp offset above: IPv4's through the SYN
        # path's keys (compiled: no hashlib objects per SYN), the same value
        req.snt_isn = isn or secure_tcp_seq(
            host.secret, laddr, req.lport, raddr, req.rport, now,
            _syn_fast.isn_hash(self.syn_path.keys, laddr, req.lport, raddr, req.rport)
            if raddr <= V6MASK else None)
        # its SYN-ACK timer, the first timeout kept with the listener's others
        # (SynQueueTimer: no Timer of its own unless it runs out)
        reqsk_timer_start(listener, req, now)
        self.hashinfo.ehash_insert(req)
        listener.syn_queue[req] = None
        tcp_send_synack(self, req, now, advmss)

    def cookie_v4_check(self, listener: TcpSock, skb: Skb, iph: Any, now: float,
                        req_dup: RequestSock | None = None) -> TcpSock | None:
        """A bare ACK at a listener that may bring back a cookie.  Returns the
        child; the listener itself when no cookie applies (no SYN-ACK carried
        one recently, or it does not check out: the listener resets); None for
        a good cookie the full accept queue has no room for (dropped, like a
        request sock's third ACK: the client will retransmit).

        ``req_dup``: a request sock holds the 4-tuple and the ACK was not for
        its SYN-ACK.  That happens when the client's SYN was answered with a
        cookie while the SYN queue was full, and its retransmission of the
        same SYN (sent before the cookie SYN-ACK arrived) found room and made
        the request: the client took the cookie SYN-ACK and ACKs it.  A valid
        cookie for the request's own client ISN proves it, so the request
        gives way to the cookie's child and the client has its connection.
        Linux keeps the request there (inet_ehash_insert finds the duplicate
        and tcp_v4_syn_recv_sock frees the child) and drops the ACK without a
        counter until the request's SYN-ACK retries run out, about a minute;
        the client's next retransmission then meets the cookie check alone.
        A cookie for another ISN (an older incarnation) is dropped as Linux
        does, counted as a listen drop."""
        host = self.host
        mib = host.mib
        st = host.settings
        if now - listener.last_synq_overflow > MAX_SYNCOOKIE_AGE:
            return listener
        laddr, lport, raddr, rport = iph.dst, skb.th.dport, iph.src, skb.th.sport
        client_isn = (skb.seq - 1) & 0xFFFFFFFF
        cookie = (skb.ack_seq - 1) & 0xFFFFFFFF
        mss = cookie_v4_check(host.secret, laddr, lport, raddr, rport, client_isn, cookie, now)
        if mss is None:
            mib["SyncookiesFailed"] += 1
            return listener
        mib["SyncookiesRecv"] += 1
        try:
            route_check(host, raddr)
        except OSError:
            return None             # no way back to the client: drop (Linux)
        if req_dup is not None:
            if req_dup.rcv_isn != client_isn:
                mib["ListenDrops"] += 1
                return None
            self.reqsk_drop(req_dup)
            mib["TCPReqQCookieTakeover"] += 1
        req = RequestSock(listener, laddr, lport, raddr, rport, client_isn)
        req.snt_isn = cookie
        req.mss = mss
        opts = skb.opts
        # The cookie's TSval was never ahead of now_ms + ts_off (see
        # cookie_init_timestamp), so the child's clock does not go back.
        req.ts_off = secure_tcp_ts_off(host.secret, laddr, raddr)
        req.ts_recent = opts.ts_val or 0            # (used with timestamps only)
        if st.tcp_timestamps and opts.ts_ecr:
            wscale, sack_ok = cookie_timestamp_decode((opts.ts_ecr - req.ts_off) & 0xFFFFFFFF)
            req.tstamp_ok = True
            req.sack_ok = bool(sack_ok) and bool(st.tcp_sack)
            req.wscale_ok = wscale is not None and bool(st.tcp_window_scaling)
            req.snd_wscale = wscale if wscale is not None and req.wscale_ok else 0
            req.rcv_wscale = self._rcv_wscale(listener.rcvbuf) if req.wscale_ok else 0
        advmss = self.advmss_for(raddr, listener.opts.user_mss)
        req.rcv_wnd = self._initial_rcv_wnd(listener.rcvbuf, advmss)
        req.dead = True   # never hashed
        return self.tcp_v4_syn_recv_sock(listener, req, skb, now)

    def tcp_v4_syn_recv_sock(self, listener: TcpSock, req: RequestSock, skb: Skb,
                             now: float) -> TcpSock | None:
        """The third ACK: create the child, hash it, queue it for accept().
        None, counted as a listen drop, when the accept queue is full or the
        route back to the peer has gone (inet_csk_route_child_sock)."""
        if len(listener.accept_queue) > listener.max_ack_backlog \
                and self.acceptq_overflow(listener):
            return None
        try:
            mtu = self.route_mtu_checked(req.raddr)
        except OSError:
            self.host.mib["ListenDrops"] += 1
            return None
        child = tcp_create_openreq_child(self, listener, req, skb, now, mtu)
        child.inet_id = self.host.ip_ids.random_u16()
        # inet_ehash_nolisten(child, req): the child takes the request's place
        # in ehash (insert replaces the entry of the same 4-tuple; a cookie's
        # request was never there)
        self.hashinfo.ehash_insert(child)
        child.hashed = True
        self.reqsk_drop(req, unhash=False)
        self.hashinfo.inet_inherit_port(listener, child)
        self.tcp_set_state(child, TCP_ESTABLISHED)
        # tcp_check_req / tcp_rcv_state_process (SYN_RECV): the SYN-ACK's RTT
        # sample, then tcp_init_transfer (RTO fallback, cc init, send buffer).
        tcp_synack_rtt_meas(child, req, skb, now)
        tcp_init_transfer_passive(child, now)
        self.host.mib["PassiveOpens"] += 1
        child.parent = listener
        listener.accept_queue.append(child)
        if child.opts.keepalive:
            tcp_set_keepalive(child, now)
        self.host.schedule_wakeup(listener)
        return child

    # --- resets ---------------------------------------------------------------------
    def tcp_v4_send_reset(self, laddr: int, raddr: int, skb: Skb) -> None:
        """RST in reply to ``skb`` (RFC 9293 3.10.7.1); never in reply to a RST."""
        if skb.flags & TCPHDR_RST:
            return
        th = skb.th
        if skb.flags & TCPHDR_ACK:
            seq, ack, flags = skb.ack_seq, 0, TCPHDR_RST
        else:
            seq, ack, flags = 0, skb.end_seq, TCPHDR_RST | TCPHDR_ACK
        # From TCP's control socket, which tcp_sk_init makes IP_PMTUDISC_DO
        # ("enforce IP_DF and IPID==0 for RST and ACK sent in SYN-RECV and
        # TIME-WAIT state"): DF and ID 0 even under ip_no_pmtu_disc.
        tcp_v4_send(self.host, laddr, raddr, th.dport, th.sport, seq, ack, flags, 0,
                    df=CTL_SOCK_DF)

    # --- receive (tcp_v4_rcv) ------------------------------------------------------------
    # The host does not read what a handler's rcv returns (docs/internals.md).
    def rcv(self, iph: Any, payload: Any, now: float) -> None:
        mib = self.host.mib
        if len(payload) < 20:
            mib["InErrs"] += 1
            return
        if tcpudp_checksum(iph.src, iph.dst, IPPROTO_TCP, payload):
            mib["InCsumErrors"] += 1
            mib["InErrs"] += 1
            return
        self.rcv_verified(iph, payload, now)

    def rcv_verified(self, iph: Any, payload: Any, now: float) -> None:
        """``rcv`` past the length and checksum checks: the host's fast path
        calls this for segments rx_classify already verified (CHECKSUM_UNNECESSARY)."""
        host = self.host
        mib = host.mib
        daddr = iph.dst
        if host.rx_link_bcast or host.is_broadcast(daddr):
            # tcp_v4_rcv drops what is not PACKET_HOST; RFC 1122 4.2.3.10: a SYN
            # to a broadcast address MUST be silently discarded (and answering
            # anything from a broadcast source address would be worse).
            mib["TcpInBroadcastDrops"] += 1
            return
        try:
            # raises for a data offset below 5 or past the end of the segment
            th = parse_tcp(payload)
        except (ParseError, ValueError):
            mib["InErrs"] += 1
            return
        mib["InSegs"] += 1      # per datagram, as Linux counts a GRO aggregate
        skb = Skb(th, payload[th.doff << 2:], host.rx_gso_segs, host.rx_gso_size)
        dport = th.dport
        tproxy = host.rx_tproxy
        if tproxy is not None:
            # A non-local destination ip_rcv took for the interface's
            # forwarder (tcp_forward.py): its flows' socks are in ehash by
            # the original 4-tuple; a miss is the forwarder's, never a
            # listener's (docs/internals.md "Transparent forwarding").
            sk = self.hashinfo.lookup_established(iph.dst, th.dport, iph.src, th.sport)
            if sk is None:
                tproxy.rcv(skb, iph, payload, now)
                return
        else:
            # InetHashInfo.lookup without its call (every segment of a
            # connection's handshake and close comes here): ehash, then a listener
            hashinfo = self.hashinfo
            raddr = iph.src
            sk = (hashinfo.ehash6 if raddr > V6MASK else hashinfo.ehash).lookup(
                daddr, dport, raddr, th.sport)
            if sk is None:
                sk = hashinfo.lookup_listener(daddr, dport)
        if sk is None:
            self.tcp_v4_send_reset(daddr, iph.src, skb)
            return
        state = sk.state
        if state == TCP_ESTABLISHED:
            sk.segs_in += skb.gso_segs      # tcp_segs_in
            tcp_rcv_established(sk, skb, now)
            if sk.trace is not None:
                sk.trace.probe(sk, skb, now)
        elif state == TCP_TIME_WAIT:
            self._rcv_timewait(sk, skb, iph, now, payload)
        elif state == TCP_NEW_SYN_RECV:
            self._rcv_request(sk, skb, iph, now)
        elif state == TCP_LISTEN:
            self._rcv_listen(sk, skb, iph, now)
        else:
            sk.segs_in += skb.gso_segs
            tcp_rcv_state_process(sk, skb, now)
            if sk.trace is not None:
                sk.trace.probe(sk, skb, now)

    def _rcv_timewait(self, tw: TimeWaitSock, skb: Skb, iph: Any, now: float,
                      payload: Any = b"") -> None:
        verdict = tcp_timewait_state_process(tw, skb, now)
        if verdict == TCP_TW_SUCCESS:
            return
        if verdict == TCP_TW_ACK:
            tw.send_ack(now)
        elif verdict == TCP_TW_RST:
            self.tcp_v4_send_reset(iph.dst, iph.src, skb)
            self.inet_twsk_kill(tw)
        else:   # TCP_TW_SYN
            tproxy = self.host.rx_tproxy
            if tproxy is not None:
                # a forwarded tuple reopened: a new request, ISN past the old one
                isn = tcp_tw_isn(tw)
                self.inet_twsk_kill(tw)
                tproxy.rcv(skb, iph, payload, now, isn)
                return
            listener = self.hashinfo.lookup_listener(iph.dst, skb.th.dport)
            if listener is not None:
                isn = tcp_tw_isn(tw)
                self.inet_twsk_kill(tw)
                self._rcv_listen(listener, skb, iph, now, isn)
            else:
                # Nobody to reopen the tuple for: TIME-WAIT goes on and
                # answers like for any other segment (Linux's fallthrough).
                tw.send_ack(now)

    def _rcv_request(self, req: RequestSock, skb: Skb, iph: Any, now: float) -> None:
        # (Linux re-looks up when the listener stopped meanwhile; here
        # listen_stop unhashes its requests at once, so it is still listening.)
        child = tcp_check_req(self, req, skb, now)
        if child is req.listener:
            # An ACK of something this request never sent: the listener's
            # (tcp_v4_rcv goes on with ``sk = req->rsk_listener``), which may
            # find it is the ACK of a cookie SYN-ACK (see cookie_v4_check).
            self._rcv_listen(child, skb, iph, now, req=req)
        elif child is not None:
            # The child is ESTABLISHED already (tcp_v4_syn_recv_sock): the
            # third ACK, and any data on it, take an established sock's path,
            # header prediction first (what it declines is
            # tcp_rcv_state_process's, the only path before).
            child.segs_in += skb.gso_segs
            tcp_rcv_established(child, skb, now)
            if child.trace is not None:
                child.trace.probe(child, skb, now)

    def _rcv_listen(self, sk: TcpSock, skb: Skb, iph: Any, now: float, isn: int = 0,
                    req: RequestSock | None = None) -> None:
        """A segment for listener ``sk``; ``req``: the request sock of its
        4-tuple that handed it on (tcp_check_req: not its ACK)."""
        flags = skb.flags
        if flags & TCPHDR_RST:
            return
        if flags & TCPHDR_ACK:
            if not flags & TCPHDR_SYN and self.host.settings.tcp_syncookies:
                child = self.cookie_v4_check(sk, skb, iph, now, req)
                if child is None:
                    return
                if child is not sk:
                    child.segs_in += skb.gso_segs
                    tcp_rcv_state_process(child, skb, now)
                    if child.trace is not None:
                        child.trace.probe(child, skb, now)
                    return
            self.tcp_v4_send_reset(iph.dst, iph.src, skb)
            return
        if flags & TCPHDR_SYN:
            if flags & TCPHDR_FIN:
                return   # SYN+FIN is junk; drop like Linux's tcp_filter does not, but harmless
            self.tcp_v4_conn_request(sk, skb, iph, now, isn)

    # --- ICMP errors (tcp_v4_err) ----------------------------------------------------------
    def err(self, kind: int, code: int, errno_: int, info: int, iph_quoted: Any,
            payload_quoted: bytes) -> None:
        """tcp_v4_err: an ICMP error quoting one of our segments.  The host has
        checked that the quote holds the ports and the sequence number, and
        ``errno_`` is icmp_err_convert's (never 0 for what reaches us)."""
        sport = int.from_bytes(payload_quoted[0:2], "big")
        dport = int.from_bytes(payload_quoted[2:4], "big")
        seq = int.from_bytes(payload_quoted[4:8], "big")
        sk = self.hashinfo.lookup_established(iph_quoted.src, sport, iph_quoted.dst, dport)
        if sk is None:
            self.host.mib["IcmpInErrors"] += 1
            return
        self.tcp_sk_err(sk, seq, errno_,
                        kind == ICMP_PARAMETERPROB or kind == ICMP_TIME_EXCEEDED
                        or (kind == ICMP_DEST_UNREACH and
                            code in (ICMP_NET_UNREACH, ICMP_HOST_UNREACH)),
                        kind == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED)

    def tcp_sk_err(self, sk: Any, seq: int, errno_: int, req_abort: bool,
                   mtu_reduced: bool) -> None:
        """What tcp_v4_err and tcp_v6_err do once they found the sock the
        quoted segment belongs to: a request sock is dropped when
        ``req_abort``; a sequence outside SND.UNA..SND.NXT is ignored; a
        fragmentation-needed / Packet Too Big (``mtu_reduced``) resizes;
        else the error is hard while connecting, soft after."""
        if isinstance(sk, TimeWaitSock):
            return
        if isinstance(sk, RequestSock):
            self.tcp_req_err(sk, seq, req_abort)
            return
        if not between(seq, sk.snd_una, sk.snd_nxt):
            self.host.mib["OutOfWindowIcmps"] += 1
            return
        if mtu_reduced:
            self.tcp_v4_mtu_reduced(sk)
            return
        if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
            sk.sk_err = errno_
            self.tcp_done(sk)
        else:
            # RFC 1122 4.2.3.9: a soft error for a synchronized connection; it
            # is reported only if the connection later times out.
            sk.sk_err_soft = errno_

    def tcp_v4_mtu_reduced(self, sk: TcpSock) -> None:
        """tcp_v4_mtu_reduced: the host has learned the path MTU (floored at
        min_pmtu, tcpio.core.host.update_pmtu); a smaller one shrinks the MSS
        and resends at once what no longer fits (tcp_simple_retransmit): the
        router dropped it.  Without PMTU discovery (ip_no_pmtu_disc, Linux's
        IP_PMTUDISC_DONT) segments are not DF and the MSS stays."""
        if sk.state in (TCP_LISTEN, TCP_CLOSE) or self.host.settings.ip_no_pmtu_disc:
            return
        try:
            mtu = route_mtu4(self.host, sk.raddr)
        except OSError:
            return              # no route to update (inet_csk_update_pmtu)
        old = sk.mss_cache
        if tcp_sync_mss(sk, mtu) < old:
            tcp_simple_retransmit(sk, self.host.now)

    def tcp_req_err(self, req: RequestSock, seq: int, abort: bool) -> None:
        """An ICMP error about our SYN-ACK.  Only one saying the peer cannot be
        reached drops the request, silently (POSIX wants no error from accept())."""
        if seq != req.snt_isn:
            self.host.mib["OutOfWindowIcmps"] += 1
        elif abort:
            self.reqsk_drop(req)
            self.host.mib["ListenDrops"] += 1

    # --- ss -tan ------------------------------------------------------------------------------
    def connections(self, info: bool = False) -> list[Any]:
        """``ss -tan``: the listeners, then everything in ehash (each once):
        full sockets, then request socks, then time-wait socks, so a table
        cut short (the demo prints the first rows) shows live connections
        first however many TIME_WAIT entries a busy server holds;
        ``info``: with each full sock's tcp_info (``ss -tani``)."""
        rows = []
        now = self.host.now
        for lst in list(self.hashinfo.lhash.values()):
            for sk in lst:
                row = ("LISTEN", f"{_addr(sk.laddr, sk.family)}:{sk.lport}",
                       "[::]:*" if sk.family == AF_INET6 else "0.0.0.0:*",
                       len(sk.accept_queue), sk.max_ack_backlog, "")
                rows.append(ConnInfoRow(*row, tcp_get_info(sk)) if info else ConnRow(*row))
        ehash = list(self.hashinfo.established())
        ehash.sort(key=lambda sk: 2 if isinstance(sk, TimeWaitSock)
                   else 1 if isinstance(sk, RequestSock) else 0)
        for sk in ehash:
            # a hashed request or time-wait sock always has its timer armed
            if isinstance(sk, TimeWaitSock):
                name = STATE_NAMES[sk.substate]
                timer = _timer_str("timewait", sk.timer, now)
                rq = sq = 0
            elif isinstance(sk, RequestSock):
                name = STATE_NAMES[TCP_NEW_SYN_RECV]
                when = reqsk_timer_when(sk)
                timer = "" if when is None else f"on({max(when - now, 0.0):.3f}s)"
                rq = sq = 0
            else:
                name = STATE_NAMES.get(sk.state, str(sk.state))
                rq = len(sk.rq)
                sq = seq_diff(sk.write_seq, sk.snd_una)
                if sk.rtx_timer.pending:
                    # as get_tcp4_sock: "on" for the RTO, the loss probe and
                    # RACK's reordering timer, "persist" for the window probe
                    timer = _timer_str("persist" if sk.pending == ICSK_TIME_PROBE0 else "on",
                                       sk.rtx_timer, now)
                elif sk.ka_timer is not None and sk.ka_timer.pending:
                    timer = _timer_str("keepalive", sk.ka_timer, now)
                else:
                    timer = ""
            row = (name, f"{_addr(sk.laddr)}:{sk.lport}", f"{_addr(sk.raddr)}:{sk.rport}",
                   rq, max(sq, 0), timer)
            if info:
                rows.append(ConnInfoRow(*row, tcp_get_info(sk) if isinstance(sk, TcpSock)
                                        else None))
            else:
                rows.append(ConnRow(*row))
        return rows


def _addr(ip: int, family: int = AF_INET) -> str:
    if ip > V6MASK:
        return f"[{ip6_ntoa(ip & V6MASK)}]"
    if family == AF_INET6 and not ip:
        return "[::]"
    return ip_ntoa(ip) if ip else "0.0.0.0"


def _timer_str(kind: str, timer: Any, now: float) -> str:
    """An armed timer as ss shows it (0 when due but not run yet)."""
    return f"{kind}({max(timer.when - now, 0.0):.3f}s)"
