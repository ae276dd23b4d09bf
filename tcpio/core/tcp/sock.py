"""TcpSock: the TCP control block (struct tcp_sock) and the user calls on it.

The fields keep the kernel's names (snd_una, snd_nxt, rcv_nxt, rcv_wup,
snd_cwnd, ...).  The user calls mirror net/ipv4/af_inet.c and tcp.c:
bind -> inet_bind, listen -> inet_listen, connect -> inet_stream_connect,
sendmsg/recvmsg -> tcp_sendmsg/tcp_recvmsg, close -> tcp_close.  Everything
that touches the wire lives in tcp_output / tcp_input / tcp_timer.

Buffers: ``wq`` holds every byte not yet acknowledged (sent or not), starting
at sequence ``wq_seq``; the retransmit queue ``rtx`` only records segment
boundaries (tcp_output.TxSeg), so a retransmission slices ``wq`` again and no payload is
copied per segment.  ``rq`` holds in-order received bytes the app has not read.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from ... import _fast
from ..errors import sock_error
from ..in_h import AF_INET, AF_INET6, IPPROTO_IPV6, IPV6_V6ONLY
from ..ipv6 import V4MAPPED_PREFIX, is_v4mapped
from ..timer import NO_TIMER, NoTimer, PromptTimer, Timer
from . import tcp_output, tcp_timer
from .inet6_addr import V6MASK, V6TAG, untag6
from .sock_opts import (
    IP_PMTUDISC_DO,
    IP_PMTUDISC_DONT,
    IP_PMTUDISC_OMIT,
    IP_PMTUDISC_WANT,
    default_opts,
)
from .tcp_cong import TCP_INFINITE_SSTHRESH, get_congestion_control, shared_congestion_control
from .tcp_info import tcp_get_info, tcp_info_pack
from .tcp_rtt import RttEstimator
from .tcp_sack import NO_OFO
from .tcp_states import (
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    STATE_NAMES,
    TCP_CA_OPEN,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_LISTEN,
    TCP_NAGLE_CORK,
    TCP_NAGLE_PUSH,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    after,
    seq_diff,
)
from .tcp_trace import SockTracer, TraceSink, tcp_log_state

if TYPE_CHECKING:
    from ..protocol import NetHost6
    from .tcp_ipv4 import TcpProto
    from .tcp_minisocks import SynQueueTimer

# inet_stream_connect's socket states (sock->state).
SS_UNCONNECTED = 1
SS_CONNECTING = 2
SS_CONNECTED = 3

SOCK_MIN_SNDBUF = 4608
SOCK_MIN_RCVBUF = 2304
TCP_MSS_DEFAULT = 536
TCP_MIN_MSS = 88
TCP_MAX_WSCALE = 14

_LINGER = struct.Struct("ii")
_LINGER_FOREVER = 0x7FFFFFFF     # l_linger read back for an unlimited linger
# Plain ints: `flags & socket.MSG_OOB` would be IntFlag arithmetic on every call.
_MSG_OOB = int(socket.MSG_OOB)
_MSG_PEEK = int(socket.MSG_PEEK)
_MSG_MORE = int(socket.MSG_MORE)

# The fields the compiled receive fast path touches live in this base (C
# fields when compiled, see tcpio/_fast/tcp_fast.pxd); the rest are ordinary
# attributes of TcpSock.
# mypy reads the one source (tcpio/_fast/tcp_fast.py); at run time _fast.load
# picks its compiled module or the same file run interpreted.
if TYPE_CHECKING:
    from tcpio._fast import syn_fast as _syn_fast
    from tcpio._fast import tcp_fast as _tcp_fast
else:
    _tcp_fast = _fast.load("tcp_fast")
    _syn_fast = _fast.load("syn_fast")
_sock_init = _syn_fast.sock_init
TcpCb = _tcp_fast.TcpCb
# The receive queue holds views of received frames and blocks of its own
# (tcp_fast.RcvQueue); a read copies each byte once, out of it.
RcvQueue = _tcp_fast.RcvQueue
# The send queue holds the immutable bytes written by reference and copies of
# anything else, until they are acknowledged (tcp_fast.SndQueue).
SndQueue = _tcp_fast.SndQueue
SNDQ_EMPTY = _tcp_fast.SNDQ_EMPTY
sq_append = _tcp_fast.sq_append
sq_ref_ok = _tcp_fast.sq_ref_ok
# the end of a read: autotuning and the ACK it may owe (tcp_rcv_space_adjust,
# tcp_cleanup_rbuf), compiled
_recv_done = _tcp_fast.recv_done
_copy_skbs = _tcp_fast.copy_skbs


_log = logging.getLogger("tcpio.tcp")

class _NoAcceptQueue(deque):
    """The accept queue of a socket that never listened: empty for good."""

    def _refuse(self, *args: object) -> None:
        raise AssertionError("tcp: accept queue of a socket that is not listening")

    append = appendleft = extend = extendleft = insert = _refuse


class _NoSynQueue(dict):
    """The SYN queue of a socket that never listened: empty for good."""

    def _refuse(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("tcp: SYN queue of a socket that is not listening")

    __setitem__ = setdefault = update = _refuse


# Compiled, TcpCb's fields are C fields (getset descriptors), zero at birth.
_CB_IN_C = type(TcpCb.__dict__.get("snd_una")).__name__ == "getset_descriptor"

_NO_ACCEPT_QUEUE: deque[Any] = _NoAcceptQueue()
_NO_SYN_QUEUE: dict[Any, Any] = _NoSynQueue()


def _cb_zero(sk: TcpSock) -> None:
    """The TcpCb fields whose first value is zero (0, 0.0, False, None), for
    the interpreted build.  Compiled, they are C fields, which start so
    (tp_alloc zeroes them; an object field starts as None): storing each
    again from Python was a third of ``TcpSock.__init__``'s stores, once per
    socket and per accepted connection (issue 11's passive open).
    A field that needs another first value is set in ``__init__``."""
    sk.lport = 0
    sk.rport = 0
    sk.dead = False           # tcp_done ran; nothing references it any more
    sk.iss = 0
    sk.snd_una = 0
    sk.snd_nxt = 0
    sk.snd_wnd = 0
    sk.snd_wl1 = 0
    sk.max_window = 0
    sk.snd_sml = 0            # end of the last small segment (Minshall's Nagle)
    sk.write_seq = 0          # sequence after the last byte queued
    sk.pushed_seq = 0         # write_seq at the last tcp_mark_push (a TcpCb field)
    sk.push_marks = None      # forced_push marks not yet sent (a TcpCb field)
    sk.wq_seq = 0
    sk.gso_max_size = 0       # sk_gso_max_size: the legacy 64 KiB until a send sees BIG TCP
    sk.urg_seq = None         # sequence of the peer's announced urgent byte
    sk.irs = 0
    sk.rcv_nxt = 0
    sk.rcv_wnd = 0
    sk.rcv_wup = 0
    sk.rcv_epoch = 0
    sk.nospace = False        # SOCK_NOSPACE (a TcpCb field)
    sk.ofo_bytes = 0
    sk.got_data = False
    sk.rcv_rtt = 0.0          # receiver's RTT estimate from timestamp echoes
    sk.snd_wscale = 0
    sk.rcv_wscale = 0
    sk.tstamp_ok = False
    sk.ts_recent = 0
    sk.ts_recent_stamp = 0.0
    sk.ts_off = 0
    sk.ca_state = TCP_CA_OPEN
    sk.is_cwnd_limited = False
    sk.packets_out = 0
    sk.sacked_out = 0
    sk.lost_out = 0
    sk.retrans_out = 0
    sk.min_rtt = 0.0
    sk.rack_rtt = 0.0
    sk.rack_end_seq = 0
    sk.rack_advanced = False
    sk.reord_seen = 0
    sk.inet_id = 0            # the next segment's IP ID (a TcpCb field; random
                              # from connect or accept: ip_select_ident_segs)
    sk.segs_in = 0            # tp->segs_in: segments received (a TcpCb field)
    sk.probes_out = 0         # zero-window or keepalive probes unanswered
    sk.ack_pending = False
    sk.quick = 0
    sk.pingpong = 0           # icsk_ack.pingpong (a TcpCb field)
    sk.rcv_tstamp = 0.0       # last time we heard from the peer (keepalive)
    sk.trace = None           # a SockTracer while the connection is traced
    sk.nodelay = False
    sk.nonagle = 0            # TCP_CORK's bit and TCP_NAGLE_PUSH (tp->nonagle)


class TcpSock(TcpCb):
    """A full TCP socket (listening or connected)."""

    # No per-instance dict: the fields TcpCb does not hold are slots (about
    # 0.8 KiB less per socket than a dict; issue 11's memory target).  A new
    # attribute must be added here: assigning an unlisted one raises
    # AttributeError (loudly, in the first test that does it).  __weakref__
    # (unless the base has one: the interpreted TcpCb is a plain class): the
    # socket's timers hold it weakly (tcpio/core/timer.py).
    __slots__ = (
        # identity and socket state (sock_common / struct socket)
        "proto", "wakeup", "family", "v6only", "scope_id", "reuseaddr", "sock_state",
        "bound", "hashed", "orphan", "passive", "parent", "sk_shutdown", "sk_err", "sk_err_soft",
        # the options the user set: one shared, copy-on-write record (sock_opts.SockOpts)
        "opts",
        # listener (sk_max_ack_backlog, icsk_accept_queue; any other sock holds
        # the shared empty stand-ins)
        "max_ack_backlog", "accept_queue", "syn_queue", "synq_timer",
        # send side (iss, snd_wl1, max_window, sndbuf: TcpCb's)
        "fin_queued", "snd_up", "retransmit_hint",
        "sack_cache", "lsndtime", "segs_out", "total_retrans",
        # receive side (irs: TcpCb's)
        "rcv_eof", "urg_data", "urg_last", "sack_blocks", "dsack", "rcvq_space",
        "rcvq_seq", "rcvq_time", "last_oow_ack_time",
        # negotiated at the handshake (mss_cache, mss_clamp: TcpCb's)
        "pmtu_cookie", "wscale_ok", "sack_ok",
        # congestion control (tcp_cong, PRR, TLP) and the RTT estimator
        "ca_ops", "ca_priv", "snd_ssthresh", "snd_cwnd_cnt", "snd_cwnd_clamp", "prior_cwnd",
        "prior_ssthresh", "prr_delivered", "prr_out", "lost", "high_seq", "tlp_high_seq",
        "tlp_retrans", "max_packets_out", "cwnd_usage_seq", "rtt_est",
        # RACK's reordering window (the per-ACK RACK fields are TcpCb's)
        "reordering", "highest_sack", "rack_reo_wnd_steps", "rack_reo_wnd_persist",
        "rack_reo_wnd_stamp", "rack_dsack_seen",
        # timers and probes (inet_connection_sock)
        "rtx_timer", "ka_timer", "retransmits", "retrans_stamp", "backoff", "probe_start",
        "pending",
    ) + (() if hasattr(TcpCb, "__weakref__") else ("__weakref__",))

    def __init__(self, proto: TcpProto, listener: TcpSock | None = None) -> None:
        """A new socket; with ``listener``, a child it accepts
        (tcp_create_openreq_child, Linux's sk_clone_lock): the user options
        and buffer sizes are the listener's, copied here instead of computed
        from the settings and then overwritten (once per accepted connection)."""
        host = proto.host
        st = host.settings
        self.proto = proto
        self.wakeup: Callable[[], None] | None = None
        if not _CB_IN_C:
            _cb_zero(self)      # (compiled: C fields start at zero)
        # the TcpCb fields (the identity the tables read, the queues, MSS,
        # cwnd, ...; a child's user options and buffer sizes, copied from
        # the listener), in one compiled call: syn_fast.sock_init
        _sock_init(self, host, proto.rcv_pool, listener, st.tcp_init_cwnd, NO_OFO, NO_TIMER)
        self.sock_state = SS_UNCONNECTED
        self.bound = False          # bind() pinned the port (SOCK_BINDPORT_LOCK)
        self.hashed = False         # in ehash
        self.orphan = False         # closed by the user, still finishing on the wire
        self.sk_shutdown = 0
        self.sk_err = 0
        self.sk_err_soft = 0
        # listener
        self.max_ack_backlog = 0
        # the queues exist only on listeners (listen() makes them); every
        # other socket shares the empty, unmodifiable stand-ins (a deque is
        # ~0.6 KiB, most of a socket's memory otherwise)
        self.accept_queue: deque[TcpSock] = _NO_ACCEPT_QUEUE
        self.syn_queue: dict = _NO_SYN_QUEUE   # request socks (NEW_SYN_RECV) of this listener
        # its requests' first SYN-ACK timeouts, made at the first SYN
        # (tcp_minisocks.SynQueueTimer)
        self.synq_timer: SynQueueTimer | None = None
        self.parent: TcpSock | None = None  # listener of a child waiting in accept queue
        self.passive = False        # made by a listener (TCP_INFO's bytes_acked base)
        # options set by the user: TCP_NODELAY/TCP_CORK are TcpCb fields the
        # send loop reads (nodelay, nonagle: False and 0, or the listener's);
        # the rest share the host's defaults until set
        if listener is None:
            self.family = AF_INET   # AF_INET6: socket(AF_INET6) (tcp_ipv6, issue 17)
            self.v6only = False     # IPV6_V6ONLY
            self.scope_id = 0       # sin6_scope_id of a link-local peer
            self.reuseaddr = False
            self.opts = default_opts(st)
            self.sndbuf = st.tcp_wmem[1]
            self.rcvbuf = st.tcp_rmem[1]
            self.ca_ops = shared_congestion_control(st.tcp_congestion_control)
        else:
            # the options record is shared, not copied (copy on write:
            # SockOpts); ca_ops is stateless (per-connection state: ca_priv)
            self.family, self.v6only, self.scope_id = (listener.family, listener.v6only,
                                                       listener.scope_id)
            self.reuseaddr = listener.reuseaddr
            self.opts = listener.opts
            self.ca_ops = listener.ca_ops
        # sequence space: send (wq, rtx: sock_init's)
        self.fin_queued = False
        self.snd_up: int | None = None   # urgent pointer while in urgent mode
        self.urg_data: int | None = None  # the out-of-band byte, once it arrived
        self.urg_last: int | None = None  # last urgent byte taken (no replays)
        self.retransmit_hint: int | None = None  # where lost segments may start
        # SACK blocks of the previous ACK (tcp_sack replaces the whole
        # sequence, never appends: an idle sock shares the empty tuple)
        self.sack_cache: Sequence[tuple[int, int]] = ()
        # sequence space: receive (rq, rcv_pool, window_clamp and ofo, the
        # shared empty NO_OFO until a segment arrives out of order: sock_init's)
        # what we report, recent first (replaced whole, never appended: () when none)
        self.sack_blocks: Sequence[tuple[int, int]] = ()
        self.dsack: tuple[int, int] | None = None
        self.rcv_eof = False
        self.rcvq_space = 0         # bytes the app read in the last measured RTT
        self.rcvq_seq = 0
        self.rcvq_time = 0.0
        self.last_oow_ack_time: float | None = None
        # negotiated options (advmss, mss_cache, mss_clamp, rcv_mss: sock_init's)
        self.pmtu_cookie = 0            # the path MTU mss_cache was last synced to
        self.wscale_ok = False
        self.sack_ok = False
        # congestion control (tcp_sock / inet_connection_sock names; snd_cwnd:
        # sock_init's)
        self.snd_ssthresh = TCP_INFINITE_SSTHRESH
        self.snd_cwnd_cnt = 0
        self.snd_cwnd_clamp = 0xFFFFFFFF
        self.prior_cwnd = 0
        self.prior_ssthresh = 0
        # Proportional Rate Reduction (tcp_cwnd_reduction): delivered and
        # sent since the reduction began; tp->lost: segments ever marked lost
        self.prr_delivered = 0
        self.prr_out = 0
        self.lost = 0
        self.ca_priv: Any = None
        self.high_seq = 0
        self.tlp_high_seq: int | None = None  # snd_nxt when the loss probe went out
        self.tlp_retrans = False    # ... and the probe was a retransmission
        # tcp_cwnd_validate's record of the window (until snd_una passes
        # cwnd_usage_seq): the most segments out, or cwnd-limited
        self.max_packets_out = 0
        self.cwnd_usage_seq = 0
        self.rtt_est = RttEstimator(st.tcp_rto_initial, st.tcp_rto_min, st.tcp_rto_max)
        # RACK (RFC 8985; Linux tp->rack, tp->reordering, tp->reord_seen;
        # rack_mstamp: sock_init's)
        self.rack_reo_wnd_steps = 1
        self.rack_reo_wnd_persist = 0
        self.rack_reo_wnd_stamp = -1e9
        self.rack_dsack_seen = False
        self.reordering = st.tcp_reordering
        self.highest_sack = 0       # end of the highest SACKed segment (while sacked_out)
        self.retransmits = 0        # icsk_retransmits: RTO expiries in a row
        self.total_retrans = 0      # tp->total_retrans: segments retransmitted, ever
        self.segs_out = 0           # tp->segs_out: segments sent (TCP_INFO)
        self.retrans_stamp: float | None = None  # when the current retransmission episode began
        self.backoff = 0            # icsk_backoff for probe0
        self.probe_start = 0.0
        self.pending = 0            # ICSK_TIME_*
        # ACK scheduling (icsk_ack)
        self.lsndtime: float | None = None  # last time data was sent
        # timers: one per purpose (inet_csk: retransmit, delack, keepalive/sk_timer),
        # each made when first armed (rtx_timer_made, delack_timer_made,
        # tcp_timer.keepalive_timer): an idle connection keeps few or none
        self.rtx_timer: Timer | NoTimer = NO_TIMER
        self.ka_timer: Timer | None = None
        # tracing: off (None) unless the stack traces every connection (tcp_trace)
        sink = proto.trace_sink
        if sink is not None:
            self.trace = SockTracer(sink)

    # --- timers made when first armed --------------------------------------
    # (owned timers: they hold the socket weakly, so a closed socket is freed
    # by reference counting, not left to the cycle collector; the timer
    # wheel's work, TimerWheel.timer, without its call; the wheel found
    # through proto, a slot, not host, a TcpCb field: a getset read from
    # Python that CPython 3.11 does not specialize)
    def rtx_timer_made(self) -> Timer:
        """``rtx_timer``, made now if it was not (NO_TIMER): to arm it."""
        timer = self.rtx_timer
        if timer is NO_TIMER:
            timer = self.rtx_timer = Timer(self.proto.host.timers, tcp_timer.tcp_write_timer,
                                           weakref.ref(self))
        return timer  # type: ignore[return-value]

    def delack_timer_made(self) -> Timer:
        """``delack_timer``, made now if it was not (NO_TIMER): to arm it.
        Prompt: it does not wait for input held in a device when timers
        fall due (Stack._on_timer); an ACK still queued does not make a
        delayed ACK wrong, and holding it made the peer retransmit."""
        timer = self.delack_timer
        if timer is NO_TIMER:
            timer = self.delack_timer = PromptTimer(self.proto.host.timers,
                                                    tcp_timer.tcp_delack_timer,
                                                    weakref.ref(self))
        return timer

    # --- derived values --------------------------------------------------
    @property
    def srtt(self) -> float:
        return self.rtt_est.srtt if self.rtt_est.has_sample else 0.0

    @property
    def rto(self) -> float:
        return self.rtt_est.rto

    @property
    def tcp_packets_in_flight(self) -> int:
        return _tcp_fast.packets_in_flight(self)

    def set_trace(self, sink: TraceSink | None) -> None:
        """Trace this connection's events to ``sink`` (None: stop); a
        listener's sink goes to the connections it accepts."""
        if sink is None:
            self.trace = None
        elif self.trace is None or self.trace.sink is not sink:
            self.trace = SockTracer(sink)

    def tcp_info(self) -> dict[str, int]:
        """TCP_INFO's fields tcpio keeps, by their tcpi_ names (tcp_info.tcp_get_info)."""
        return tcp_get_info(self)

    def __repr__(self) -> str:
        return (f"<TcpSock {STATE_NAMES.get(self.state, self.state)} "
                f"{self.laddr:#x}:{self.lport} -> {self.raddr:#x}:{self.rport}>")

    def _wake(self) -> None:
        self.host.schedule_wakeup(self)

    # --- bind / listen / accept (inet_bind, inet_listen, inet_accept) ----
    def bind(self, addr: int, port: int, scope_id: int = 0) -> None:
        if self.state != TCP_CLOSE or self.lport:
            raise sock_error(errno.EINVAL)
        if self.family == AF_INET6:
            # inet6_bind: an IPv4-mapped address binds the IPv4 one (not
            # under IPV6_V6ONLY); any other must be one of ours or ::
            addr = self._from_user6(addr, errno.EINVAL)
            if addr > V6MASK and not cast("NetHost6", self.host).is_local_address6(
                    untag6(addr)):
                raise sock_error(errno.EADDRNOTAVAIL)
            self.scope_id = scope_id
        if addr and addr <= V6MASK and not self.host.is_local_address(addr):
            raise sock_error(errno.EADDRNOTAVAIL)
        if not 0 <= port <= 0xFFFF:
            raise sock_error(errno.EINVAL)
        self.proto.hashinfo.inet_csk_get_port(self, addr, port)
        self.laddr = addr
        self.bound = True

    def listen(self, backlog: int) -> None:
        if self.sock_state != SS_UNCONNECTED or self.state not in (TCP_CLOSE, TCP_LISTEN):
            raise sock_error(errno.EINVAL)
        self.max_ack_backlog = max(0, min(backlog, self.host.settings.somaxconn))
        if self.state == TCP_LISTEN:
            return
        # inet_csk_listen_start: take the port again as a listener, so two
        # SO_REUSEADDR socks may share a bound port but only one may listen.
        self.state = TCP_LISTEN
        if self.trace is not None:
            self.trace.set_state(self, TCP_CLOSE, TCP_LISTEN, self.host.now)
        if _log.isEnabledFor(logging.INFO):
            tcp_log_state(self, TCP_CLOSE, TCP_LISTEN)
        if self.accept_queue is _NO_ACCEPT_QUEUE:
            self.accept_queue = deque()
            self.syn_queue = {}
        try:
            self.proto.hashinfo.inet_csk_get_port(self, self.laddr, self.lport)
        except OSError:
            self.state = TCP_CLOSE
            raise
        self.proto.hashinfo.listen_add(self)

    def accept(self) -> TcpSock | None:
        if self.state != TCP_LISTEN:
            raise sock_error(errno.EINVAL)
        if not self.accept_queue:
            return None
        child = self.accept_queue.popleft()
        child.parent = None
        return child

    # --- connect (inet_stream_connect) ------------------------------------
    def _from_user6(self, addr: int, mapped_errno: int) -> int:
        """An AF_INET6 sock's address as the user gives it (128 bits) ->
        TCP's (inet6_addr): :: stays 0, ::ffff:a.b.c.d is the IPv4 address
        (``mapped_errno`` under IPV6_V6ONLY), anything else tagged."""
        if not addr:
            return 0
        if is_v4mapped(addr):
            if self.v6only:
                raise sock_error(mapped_errno, "IPv4-mapped address on an IPV6_V6ONLY socket")
            return addr & 0xFFFFFFFF
        return V6TAG | addr

    def _to_user(self, addr: int, port: int) -> tuple[int, ...]:
        """TCP's address -> the user's: (ip, port) for AF_INET, a
        sockaddr_in6 (ip, port, flowinfo, scope_id) for AF_INET6, an IPv4
        address as ::ffff:a.b.c.d."""
        if self.family != AF_INET6:
            return (addr, port)
        if addr > V6MASK:
            return (untag6(addr), port, 0, self.scope_id)
        return (V4MAPPED_PREFIX | addr if addr else 0, port, 0, 0)

    def connect(self, addr: int, port: int, scope_id: int = 0) -> None:
        if self.family == AF_INET6 and self.sock_state == SS_UNCONNECTED:
            addr = self._from_user6(addr, errno.ENETUNREACH)
            if self.laddr and (self.laddr > V6MASK) != (addr > V6MASK):
                # bound to one family's address, connecting to the other's
                raise sock_error(errno.ENETUNREACH, "peer and bound address of two families")
            self.scope_id = scope_id
        if self.sock_state == SS_CONNECTED:
            raise sock_error(errno.EISCONN)
        if self.sock_state == SS_CONNECTING:
            if self.state in (TCP_SYN_SENT, TCP_SYN_RECV):
                raise sock_error(errno.EALREADY)
            if self.state == TCP_CLOSE:
                err = self.sk_err or errno.ECONNABORTED
                self.sk_err = 0
                self.sock_state = SS_UNCONNECTED
                raise sock_error(err)
            self.sock_state = SS_CONNECTED    # connected since the last call: report 0
            return
        if self.state != TCP_CLOSE:
            # SS_UNCONNECTED but not CLOSE: EISCONN, a listener included.
            raise sock_error(errno.EISCONN)
        if port == 0 or not 0 < port <= 0xFFFF:
            raise sock_error(errno.ECONNREFUSED if port == 0 else errno.EINVAL)
        self.proto.tcp_v4_connect(self, addr, port)
        self.sock_state = SS_CONNECTING
        raise BlockingIOError(errno.EINPROGRESS, "Operation now in progress")

    # --- data --------------------------------------------------------------
    def send_space(self) -> int:
        """The bytes sendmsg would take now; none sets SOCK_NOSPACE (the
        caller waits for space: the ACK that frees it wakes it)."""
        if self.state not in (TCP_ESTABLISHED, TCP_CLOSE_WAIT) or self.sk_shutdown & SEND_SHUTDOWN:
            return 0
        space = self.sndbuf - len(self.wq)
        if space <= 0:
            self.nospace = True
            return 0
        return space

    def notsent_limit(self) -> int:
        """tcp_notsent_lowat: TCP_NOTSENT_LOWAT, else the sysctl's (sendmsg
        has this inline)."""
        return (self.opts.notsent_lowat or self.host.settings.tcp_notsent_lowat) & 0xFFFFFFFF

    def stream_writeable(self) -> bool:
        """__sk_stream_is_writeable(sk, 1), tcp_poll's EPOLLOUT: the free
        send buffer is at least half of what is queued, and fewer than half
        the TCP_NOTSENT_LOWAT bytes are unsent (tcp_stream_memory_free with
        wake 1: a writer woken has room to write)."""
        queued = len(self.wq)
        free = self.sndbuf - queued
        if (free > 0 and free >= queued >> 1
                and seq_diff(self.write_seq, self.snd_nxt) << 1 < self.notsent_limit()):
            return True
        self.nospace = True         # tcp_poll: the writer will wait for space
        return False

    def sendmsg(self, data: Any, flags: int = 0) -> int:
        """tcp_sendmsg: copy what fits into the send buffer and push.

        MSG_OOB makes the last byte urgent (BSD semantics, Linux's default).
        MSG_MORE: more is coming; the write's end is no PSH point and this
        call's push holds a partial segment back, as TCP_CORK does (tcp_push
        with TCP_NAGLE_CORK); the next write without it, an ACK (unless
        TCP_CORK is set), TCP_NODELAY or the probe0 timer sends it."""
        if self.sk_err:
            raise self.sock_error()
        if self.sk_shutdown & SEND_SHUTDOWN:
            raise sock_error(errno.EPIPE)
        state = self.state
        if state != TCP_ESTABLISHED and state != TCP_CLOSE_WAIT:
            if state == TCP_SYN_SENT or state == TCP_SYN_RECV:
                return 0
            # sk_stream_wait_connect: any state but SYN_SENT/SYN_RECV is EPIPE,
            # a socket that never connected (or a listener) included.
            raise sock_error(errno.EPIPE)
        # bytes as they are (a write taken whole is queued without a view
        # made of it: the usual small write); anything else as a flat view
        mv: Any = data
        if type(data) is not bytes:
            mv = memoryview(data)
            if mv.itemsize != 1 or mv.ndim != 1:
                mv = mv.cast("B")
        # Bytes, not items: an array of shorts counts two per element.
        size = len(mv)
        n = self.sndbuf - len(self.wq)
        if n >= size:
            n = size
        else:
            # tcp_sendmsg's wait_for_space: what does not fit waits for an
            # ACK to free space (SOCK_NOSPACE: tcp_check_space wakes us)
            self.nospace = True
        if n <= 0:
            return 0
        if self.wq is SNDQ_EMPTY:
            self.wq = SndQueue()
        unsent = seq_diff(self.write_seq, self.snd_nxt)
        if not unsent:
            # tcp_skb_entail: a write that starts a new skb (nothing unsent
            # to append to) ends a TCP_NAGLE_PUSH
            self.nonagle &= ~TCP_NAGLE_PUSH
        # notsent_limit, inline (a Python call fewer per write)
        lowat = (self.opts.notsent_lowat or self.host.settings.tcp_notsent_lowat) & 0xFFFFFFFF
        # immutable bytes are queued by reference (their pieces, each a
        # view of the one object), anything else copied
        part = mv if n == size else memoryview(mv)[:n]
        ref = sq_ref_ok(part, self.wq)
        if unsent + n < lowat and unsent + n <= tcp_output.tcp_xmit_size_goal(self):
            # the write fits in the tail skb: nothing to push before its end
            sq_append(self.wq, part, ref)
            self.write_seq = (self.write_seq + n) & 0xFFFFFFFF
        else:
            # tcp_sendmsg_locked's copy loop: skbs of the size goal, each
            # full one pushed when it is the send head or forced (compiled:
            # tcp_fast.copy_skbs, which slices a view)
            if type(mv) is bytes:
                mv = memoryview(mv)
            n = _copy_skbs(self, mv, n, lowat, bool(flags & _MSG_OOB), ref)
            if n < size:
                self.nospace = True     # (TCP_NOTSENT_LOWAT stopped the copy)
            if not n:
                return 0
        nagle = -1
        if not flags:
            # tcp_push's tcp_mark_push: PSH where this write ends
            self.pushed_seq = self.write_seq
        else:
            # ... unless more is coming (MSG_MORE) and less than half the
            # peer's largest window is unpushed (forced_push)
            more = flags & _MSG_MORE
            if not more or after(self.write_seq,
                                 (self.pushed_seq + (self.max_window >> 1)) & 0xFFFFFFFF):
                self.pushed_seq = self.write_seq
            if flags & _MSG_OOB:
                self.snd_up = self.write_seq
            if more:
                nagle = TCP_NAGLE_CORK
        tcp_output.tcp_push(self, self.host.now, nagle)
        return n

    def readable(self) -> int:
        return len(self.rq)

    def inq_hint(self) -> int:
        """tcp_inq_hint (TCP_INQ's TCP_CM_INQ): the bytes left to read, 1
        when none are left but the peer's FIN has come (SOCK_DONE)."""
        inq = len(self.rq)
        return 1 if not inq and self.rcv_eof else inq

    def recvmsg(self, maxlen: int, flags: int = 0) -> bytes:
        """tcp_recvmsg: in-order bytes; b"" when nothing is queued (check rcv_eof).

        A pending error is raised only when no data is left to read, like Linux.
        MSG_PEEK returns the bytes and leaves them queued (no window update).
        MSG_OOB returns the urgent byte (EINVAL if there is none, EAGAIN if it
        was announced but has not arrived yet), like tcp_recv_urg.
        """
        rq = self.rq
        if rq and not flags and maxlen >= 0:
            # the usual read (issue 11: ~200 a MiB at 1000 flows): bytes
            # queued, no flags, so none of the checks below can refuse it;
            # _recv_ready and _recv_done inline (two Python calls a read)
            data = rq.take(maxlen)
            _recv_done(self, self.host.now)
            return data
        if maxlen < 0:
            raise sock_error(errno.EINVAL)
        if flags & _MSG_OOB:
            return self._recv_urg(maxlen, flags)
        if not self._recv_ready():
            return b""
        if flags & _MSG_PEEK:
            return self.rq.peek(maxlen)
        data = self.rq.take(maxlen)
        self._recv_done()
        return data

    def recvmsg_into(self, buf: Any, nbytes: int = 0, flags: int = 0) -> int:
        """tcp_recvmsg into the writable buffer ``buf`` (its first ``nbytes``
        bytes, 0: all of it): the count copied, each byte copied once, from
        the receive queue to ``buf``; 0 when nothing is queued (check
        rcv_eof).  Errors and flags as recvmsg."""
        if nbytes < 0:
            raise sock_error(errno.EINVAL)
        with memoryview(buf) as view:
            if nbytes > view.nbytes:
                # as socket.recv_into, before anything is taken (the urgent
                # byte, queued data) that the buffer could not hold
                raise ValueError("buffer too small for requested bytes")
        if flags & _MSG_OOB:
            with memoryview(buf) as view, view.cast("B") as flat:
                byte = self._recv_urg(nbytes or len(flat), flags)
                flat[:len(byte)] = byte
            return len(byte)
        if not self._recv_ready():
            return 0
        if flags & _MSG_PEEK:
            return self.rq.peek_into(buf, nbytes or -1)
        n = self.rq.take_into(buf, nbytes or -1)
        if n:
            self._recv_done()
        return n

    def _recv_urg(self, maxlen: int, flags: int) -> bytes:
        """tcp_recv_urg: the urgent byte (BSD semantics, SO_OOBINLINE off)."""
        if self.urg_data is None:
            raise sock_error(errno.EAGAIN if self.urg_seq is not None else errno.EINVAL)
        byte = bytes((self.urg_data,))
        if not flags & _MSG_PEEK:
            self.urg_data = None
        return byte if maxlen else b""

    def _recv_ready(self) -> bool:
        """Is there data to read?  Raises what a read with none raises."""
        if self.rq:
            return True
        if self.sk_err and not self.rcv_eof:
            raise self.sock_error()
        if self.state == TCP_LISTEN:
            raise sock_error(errno.ENOTCONN)
        return False

    def _recv_done(self) -> None:
        """After bytes were read: the receive buffer's autotuning
        (tcp_rcv_space_adjust) and the window update it may owe
        (tcp_cleanup_rbuf)."""
        _recv_done(self, self.host.now)       # (compiled: tcp_fast.recv_done)

    def sock_error(self) -> OSError:
        """Pop the pending error (sock_error()); an OSError with errno 0 if none."""
        err, self.sk_err = self.sk_err, 0
        return sock_error(err) if err else OSError(0, "Success")

    # --- shutdown / close / abort ---------------------------------------------
    def shutdown(self, how: int) -> None:
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise sock_error(errno.EINVAL)
        mask = {socket.SHUT_RD: RCV_SHUTDOWN, socket.SHUT_WR: SEND_SHUTDOWN}.get(
            how, RCV_SHUTDOWN | SEND_SHUTDOWN)
        if self.state == TCP_LISTEN:
            # inet_shutdown: shutting the read side of a listener stops it
            if mask & RCV_SHUTDOWN:
                self.close()
            return
        if self.state == TCP_CLOSE:
            # like inet_shutdown: the bits are set, but the call reports ENOTCONN
            self.sk_shutdown |= mask
            raise sock_error(errno.ENOTCONN)
        self.sk_shutdown |= mask
        if mask & RCV_SHUTDOWN:
            self.rcv_eof = True      # reads return what is queued, then EOF
        if mask & SEND_SHUTDOWN:
            if self.state == TCP_SYN_SENT:
                tcp_output.tcp_disconnect(self, self.host.now)
            elif tcp_close_state(self):
                tcp_output.tcp_send_fin(self, self.host.now)
        self._wake()

    def close(self) -> None:
        """tcp_close: FIN (or RST with unread data / SO_LINGER 0), then orphan."""
        if self.orphan or self.dead:
            return
        proto = self.proto
        host = proto.host       # (not self.host: a TcpCb field, a slower read)
        now = host.now
        self.sk_shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN
        self.wakeup = None
        state = self.state
        if state == TCP_LISTEN:
            proto.listen_stop(self, now)
            return
        if state == TCP_CLOSE:
            proto.sk_release(self)
            return
        # From here the sock belongs to the stack until the wire is done with it.
        self.orphan = True
        proto.orphans += 1
        mib = host.mib
        if self.rq:
            # RFC 2525 2.17: unread data is lost, tell the peer with a RST.
            mib["TCPAbortOnClose"] += 1
            tcp_output.tcp_abort_with_reset(self, now, 0)
            return
        if self.opts.linger[0] and self.opts.linger[1] == 0:
            mib["TCPAbortOnLinger"] += 1
            tcp_output.tcp_abort_with_reset(self, now, 0)
            return
        if state == TCP_SYN_SENT:
            proto.tcp_done(self)
            return
        if tcp_close_state(self):
            tcp_output.tcp_send_fin(self, now)
        if proto.orphans > host.settings.tcp_max_orphans:
            mib["TCPAbortOnMemory"] += 1
            tcp_output.tcp_abort_with_reset(self, now, 0)
            return
        if self.state == TCP_FIN_WAIT2:
            tcp_timer.tcp_fin_wait2_orphan(self, now)

    def abort(self) -> None:
        """Close with SO_LINGER {1, 0}: RST now, drop everything."""
        self.opts = self.opts.with_(linger=(1, 0))
        self.close()

    # --- names -------------------------------------------------------------
    def getsockname(self) -> tuple[int, ...]:
        return self._to_user(self.laddr, self.lport)

    def getpeername(self) -> tuple[int, ...]:
        if self.state in (TCP_CLOSE, TCP_LISTEN, TCP_SYN_SENT) or not self.rport:
            raise sock_error(errno.ENOTCONN)
        return self._to_user(self.raddr, self.rport)

    # --- options (sk_setsockopt / do_tcp_setsockopt and their getters) -----
    def setsockopt(self, level: int, name: int, value: Any) -> None:
        """Set an option from SOCKOPTS; ENOPROTOOPT for any level or name it
        does not list (or lists read-only), like sk_setsockopt/tcp_setsockopt."""
        opt = SOCKOPTS.get((level, name))
        if opt is None or opt.store is None:
            raise sock_error(errno.ENOPROTOOPT)
        opt.store(self, opt.convert(value))

    def getsockopt(self, level: int, name: int, buflen: int = 0) -> Any:
        """Read an option from SOCKOPTS: ints come back as ints, structs
        (SO_LINGER, TCP_INFO) packed, cut to ``buflen`` bytes when it is
        given, as Linux copies at most the caller's length."""
        opt = SOCKOPTS.get((level, name))
        if opt is None:
            if level in (socket.SOL_SOCKET, socket.IPPROTO_TCP, socket.IPPROTO_IP):
                raise sock_error(errno.ENOPROTOOPT)
            # tcp_getsockopt hands other levels to ip_getsockopt, which only
            # knows SOL_IP (setsockopt says ENOPROTOOPT there instead).
            raise sock_error(errno.EOPNOTSUPP)
        value = opt.load(self)
        if buflen and isinstance(value, bytes):
            return value[:buflen]
        return value


def _int(value: Any) -> int:
    """An int option as the C API passes it: an int, or its packed bytes."""
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(bytes(value)[:4], "little", signed=True)
    return int(value)


# --- the socket option table ------------------------------------------------------------
# One row per (level, optname): ``convert`` turns the user's value into what
# the kernel stores and raises the errno Linux gives a bad value (EINVAL for
# an out-of-range int or a short struct, ENOENT for an unknown congestion
# control); ``store`` writes it with its side effects (None: read-only, so
# setsockopt says ENOPROTOOPT); ``load`` is what getsockopt returns.

class SockOpt(NamedTuple):
    convert: Callable[[Any], Any]
    store: Callable[[TcpSock, Any], None] | None
    load: Callable[[TcpSock], Any]


def _read_only(load: Callable[[TcpSock], Any]) -> SockOpt:
    return SockOpt(_int, None, load)


def _bool(value: Any) -> bool:
    # (a plain int without _int's calls: every accepted transport sets
    # TCP_NODELAY with 1)
    return value != 0 if value.__class__ is int else bool(_int(value))


def _int_in(lo: int, hi: int, *, zero_ok: bool = False) -> Callable[[Any], int]:
    """An int in lo..hi (or 0 when ``zero_ok``), else EINVAL."""
    def convert(value: Any) -> int:
        v = _int(value)
        if not (lo <= v <= hi or (zero_ok and v == 0)):
            raise sock_error(errno.EINVAL)
        return v
    return convert


def _nonneg(value: Any) -> int:
    v = _int(value)
    if v < 0:
        raise sock_error(errno.EINVAL)
    return v


def _linger_in(value: Any) -> tuple[int, int]:
    """struct linger, packed (EINVAL when shorter than the struct) or a pair."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) < _LINGER.size:
            raise sock_error(errno.EINVAL)
        value = _LINGER.unpack(bytes(value)[:_LINGER.size])
    on, secs = value
    return on, secs


def _cc_in(value: Any) -> Any:
    """A congestion control by name (NULs stripped); ENOENT if unknown."""
    nm = value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
    try:
        return get_congestion_control(nm.rstrip("\0"))
    except (KeyError, ValueError, OSError):
        raise sock_error(errno.ENOENT) from None


def _set_attr(attr: str) -> Callable[[TcpSock, Any], None]:
    def store(sk: TcpSock, v: Any) -> None:
        setattr(sk, attr, v)
    return store


def _get_int(attr: str) -> Callable[[TcpSock], int]:
    def load(sk: TcpSock) -> int:
        return int(getattr(sk, attr))
    return load


def _set_opt(attr: str) -> Callable[[TcpSock, Any], None]:
    def store(sk: TcpSock, v: Any) -> None:
        sk.opts = sk.opts.with_(**{attr: v})
    return store


def _get_opt(attr: str) -> Callable[[TcpSock], int]:
    def load(sk: TcpSock) -> int:
        return int(getattr(sk.opts, attr))
    return load


def _set_keepalive(sk: TcpSock, on: bool) -> None:
    # tcp_set_keepalive: arm or stop the timer only when the flag changes.
    if on != sk.opts.keepalive:
        sk.opts = sk.opts.with_(keepalive=on)
        tcp_timer.tcp_set_keepalive(sk, sk.host.now)


def _set_linger(sk: TcpSock, v: tuple[int, int]) -> None:
    on, secs = v
    if not on:
        # sk_setsockopt: l_onoff 0 clears SOCK_LINGER, the time stays.
        sk.opts = sk.opts.with_(linger=(0, sk.opts.linger[1]))
    else:
        # A negative l_linger is huge as u32: linger without limit.
        secs = int(secs)
        sk.opts = sk.opts.with_(linger=(1, secs if secs >= 0 else _LINGER_FOREVER))


def _get_linger(sk: TcpSock) -> bytes:
    return _LINGER.pack(*sk.opts.linger)


def _set_sndbuf(sk: TcpSock, v: int) -> None:
    # Limited (tcpio's limit is tcp_wmem[2]) before doubling for overhead,
    # with a floor; SOCK_SNDBUF_LOCK; sk_write_space: there may be new room.
    v = min(v, sk.host.settings.tcp_wmem[2])
    sk.sndbuf = max(2 * v, SOCK_MIN_SNDBUF)
    if not sk.opts.sndbuf_locked:
        sk.opts = sk.opts.with_(sndbuf_locked=True)
    sk._wake()


def _set_rcvbuf(sk: TcpSock, v: int) -> None:
    v = min(v, sk.host.settings.tcp_rmem[2])
    sk.rcvbuf = max(2 * v, SOCK_MIN_RCVBUF)
    if not sk.opts.rcvbuf_locked:
        sk.opts = sk.opts.with_(rcvbuf_locked=True)


def _get_type(sk: TcpSock) -> int:
    return socket.SOCK_STREAM


def _get_acceptconn(sk: TcpSock) -> int:
    return int(sk.state == TCP_LISTEN)


def _so_error(sk: TcpSock) -> int:
    # sock_error(): reading the pending error clears it.
    err, sk.sk_err = sk.sk_err, 0
    return err


def _set_nodelay(sk: TcpSock, on: bool) -> None:
    # __tcp_sock_set_nodelay: turning Nagle off pushes what it (or a cork)
    # held back (TCP_NAGLE_PUSH, until the next write starts a new skb).
    sk.nodelay = on
    if on:
        sk.nonagle |= TCP_NAGLE_PUSH
        # tcp_push_pending_frames: only with something not sent yet
        # (tcp_send_head): every accepted transport sets TCP_NODELAY on a
        # sock with nothing queued, where the send loop has nothing to do
        if tcp_output.tcp_send_head(sk):
            tcp_output.tcp_push(sk, sk.host.now)


def _set_cork(sk: TcpSock, on: bool) -> None:
    # __tcp_sock_set_cork: corked, partial segments wait (for the cork to
    # go, TCP_NODELAY, or the probe0 timer: tcp_output.tcp_write_wakeup);
    # uncorking pushes them, at once even past Nagle with TCP_NODELAY set.
    if on:
        sk.nonagle |= TCP_NAGLE_CORK
        return
    sk.nonagle &= ~TCP_NAGLE_CORK
    if sk.nodelay:
        sk.nonagle |= TCP_NAGLE_PUSH
    tcp_output.tcp_push(sk, sk.host.now)


def _get_cork(sk: TcpSock) -> int:
    return int(bool(sk.nonagle & TCP_NAGLE_CORK))


def _set_tos(sk: TcpSock, v: int) -> None:
    # __ip_sock_set_tos: a stream socket keeps its own ECN bits
    sk.opts = sk.opts.with_(tos=(v & 0xFF & ~_INET_ECN_MASK) | (sk.opts.tos & _INET_ECN_MASK))


def _set_pmtudisc(sk: TcpSock, v: int) -> None:
    # ip_dont_fragment: DF for IP_PMTUDISC_DO and _WANT only, and for _WANT
    # not on a path whose MTU is locked (None: as the host's default, which
    # is _WANT's rule; True: DF whatever the path, as _DO and _PROBE)
    want_df = v in (IP_PMTUDISC_WANT, IP_PMTUDISC_DO)
    ip_df: bool | None
    if v != IP_PMTUDISC_WANT and want_df:
        ip_df = True
    else:
        ip_df = None if want_df == (not sk.host.settings.ip_no_pmtu_disc) else want_df
    sk.opts = sk.opts.with_(pmtudisc=v, ip_df=ip_df)


def _set_notsent_lowat(sk: TcpSock, v: int) -> None:
    # do_tcp_setsockopt: any int (a u32 in tcp_sock), then sk_write_space:
    # the writer may now be writable
    sk.opts = sk.opts.with_(notsent_lowat=v & 0xFFFFFFFF)
    sk._wake()


def _get_notsent_lowat(sk: TcpSock) -> int:
    v = sk.opts.notsent_lowat
    return v - (1 << 32) if v >= 1 << 31 else v


def _get_maxseg(sk: TcpSock) -> int:
    # do_tcp_getsockopt: mss_cache (TCP_MSS_DEFAULT until a connection sets
    # it, and kept after it ends), the user's value instead while CLOSE or LISTEN.
    if sk.opts.user_mss and sk.state in (TCP_CLOSE, TCP_LISTEN):
        return sk.opts.user_mss
    return sk.mss_cache


def _set_keepidle(sk: TcpSock, v: int) -> None:
    # tcp_sock_set_keepidle_locked: a running keepalive timer moves too.
    sk.opts = sk.opts.with_(keepidle=float(v))
    if sk.opts.keepalive:
        tcp_timer.tcp_set_keepalive(sk, sk.host.now)


def _set_keepintvl(sk: TcpSock, v: int) -> None:
    sk.opts = sk.opts.with_(keepintvl=float(v))


def _set_user_timeout(sk: TcpSock, ms: int) -> None:
    sk.opts = sk.opts.with_(user_timeout=ms / 1000.0)


def _get_user_timeout(sk: TcpSock) -> int:
    return round(sk.opts.user_timeout * 1000)


def _get_congestion(sk: TcpSock) -> bytes:
    return sk.ca_ops.name.encode()


def _set_congestion(sk: TcpSock, ops: Any) -> None:
    # tcp_set_congestion_control: a live connection restarts the new one.
    sk.ca_ops = ops
    sk.ca_priv = None
    if sk.state not in (TCP_CLOSE, TCP_LISTEN):
        ops.init(sk, sk.host.now)


def _set_v6only(sk: TcpSock, on: bool) -> None:
    # IPV6_V6ONLY: AF_INET6 only (ENOPROTOOPT on an AF_INET sock, where
    # ipv6_setsockopt is not reached), and not once bound (EINVAL).
    if sk.family != AF_INET6:
        raise sock_error(errno.ENOPROTOOPT)
    if sk.lport:
        raise sock_error(errno.EINVAL)
    sk.v6only = on


def _get_v6only(sk: TcpSock) -> int:
    if sk.family != AF_INET6:
        raise sock_error(errno.ENOPROTOOPT)
    return int(sk.v6only)


_SOL, _TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP
TCP_INQ = 36        # include/uapi/linux/tcp.h (also its cmsg type, TCP_CM_INQ)
TCP_NOTSENT_LOWAT = 25
IP_MTU_DISCOVER = 10                # include/uapi/linux/in.h
_INET_ECN_MASK = 3
_IP = socket.IPPROTO_IP
SOCKOPTS: dict[tuple[int, int], SockOpt] = {
    # sk_setsockopt / sk_getsockopt (net/core/sock.c)
    (_SOL, socket.SO_REUSEADDR): SockOpt(_bool, _set_attr("reuseaddr"), _get_int("reuseaddr")),
    (_SOL, socket.SO_KEEPALIVE): SockOpt(_bool, _set_keepalive, _get_opt("keepalive")),
    (_SOL, socket.SO_LINGER): SockOpt(_linger_in, _set_linger, _get_linger),
    (_SOL, socket.SO_SNDBUF): SockOpt(_int, _set_sndbuf, _get_int("sndbuf")),
    (_SOL, socket.SO_RCVBUF): SockOpt(_int, _set_rcvbuf, _get_int("rcvbuf")),
    (_SOL, socket.SO_ERROR): _read_only(_so_error),
    (_SOL, socket.SO_TYPE): _read_only(_get_type),
    (_SOL, socket.SO_ACCEPTCONN): _read_only(_get_acceptconn),
    # do_tcp_setsockopt / do_tcp_getsockopt (net/ipv4/tcp.c)
    (_TCP, socket.TCP_NODELAY): SockOpt(_bool, _set_nodelay, _get_int("nodelay")),
    (_TCP, socket.TCP_CORK): SockOpt(_bool, _set_cork, _get_cork),
    (_TCP, socket.TCP_MAXSEG): SockOpt(_int_in(TCP_MIN_MSS, 32767, zero_ok=True),
                                       _set_opt("user_mss"), _get_maxseg),
    (_TCP, socket.TCP_KEEPIDLE): SockOpt(_int_in(1, 32767), _set_keepidle, _get_opt("keepidle")),
    (_TCP, socket.TCP_KEEPINTVL): SockOpt(_int_in(1, 32767), _set_keepintvl,
                                          _get_opt("keepintvl")),
    (_TCP, socket.TCP_KEEPCNT): SockOpt(_int_in(1, 127), _set_opt("keepcnt"),
                                        _get_opt("keepcnt")),
    (_TCP, socket.TCP_USER_TIMEOUT): SockOpt(_nonneg, _set_user_timeout,
                                             _get_user_timeout),
    (_TCP, socket.TCP_CONGESTION): SockOpt(_cc_in, _set_congestion,
                                           _get_congestion),
    (_TCP, socket.TCP_INFO): _read_only(lambda sk: tcp_info_pack(tcp_get_info(sk))),
    (_TCP, TCP_INQ): SockOpt(_int_in(0, 1), _set_opt("recvmsg_inq"), _get_opt("recvmsg_inq")),
    # do_ipv6_setsockopt (net/ipv6/ipv6_sockglue.c)
    (IPPROTO_IPV6, IPV6_V6ONLY): SockOpt(_bool, _set_v6only, _get_v6only),
    (_TCP, TCP_NOTSENT_LOWAT): SockOpt(_int, _set_notsent_lowat, _get_notsent_lowat),
    # do_ip_setsockopt / do_ip_getsockopt (net/ipv4/ip_sockglue.c)
    (_IP, socket.IP_TOS): SockOpt(_int, _set_tos, _get_opt("tos")),
    (_IP, IP_MTU_DISCOVER): SockOpt(_int_in(IP_PMTUDISC_DONT, IP_PMTUDISC_OMIT),
                                    _set_pmtudisc, _get_opt("pmtudisc")),
}


# tcp_close_state: the state after the user closes the sending side, and
# whether a FIN must be sent (the kernel's new_state[] table).
_CLOSE_NEXT = {
    TCP_ESTABLISHED: (TCP_FIN_WAIT1, True),
    TCP_SYN_SENT: (TCP_CLOSE, False),
    TCP_SYN_RECV: (TCP_FIN_WAIT1, True),
    TCP_FIN_WAIT1: (TCP_FIN_WAIT1, False),
    TCP_FIN_WAIT2: (TCP_FIN_WAIT2, False),
    TCP_CLOSE: (TCP_CLOSE, False),
    TCP_CLOSE_WAIT: (TCP_LAST_ACK, True),
    TCP_LAST_ACK: (TCP_LAST_ACK, False),
    TCP_LISTEN: (TCP_CLOSE, False),
    TCP_CLOSING: (TCP_CLOSING, False),
}


def tcp_close_state(sk: TcpSock) -> bool:
    state = sk.state
    nxt, send_fin = _CLOSE_NEXT.get(state, (state, False))
    if send_fin and sk.fin_queued:
        return False
    sk.proto.tcp_set_state(sk, nxt)
    return send_fin
