# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, annotation_typing=False
# mypy: always-false=compiled
"""TCP's established-state paths: one source, compiled and interpreted.

This file is ordinary Python and runs as it is (``TCPIO_NO_EXTENSIONS=1``, or
no compiler: ``_fast.load_pure("tcp_fast")`` is this file interpreted).
setup.py also compiles it with Cython's pure Python mode into the extension
``tcpio._fast.tcp_fast``: ``tcp_fast.pxd`` next to it gives the classes C
fields and the functions C arguments and locals, so header prediction,
queueing an in-order segment and the send loop are C arithmetic on the sock.
Only the byte-level steps (copying a payload into the receive queue, building
a frame from the send queue) differ between the builds, in ``if
cython.compiled:`` branches: raw pointers into the buffer when compiled, the
buffer objects when interpreted.  (mypy checks the interpreted branches only:
the ``always-false=compiled`` line above.)

Integers: every sequence number is kept in [0, 2**32) by ``u32`` and compared
with ``seq_diff``/``before``/``after``, masks whose constants tcp_fast.pxd types
as C integers: the same expressions, the same values, in both builds.

Linux's tcp_rcv_established starts with header prediction: on an established
connection with nothing unusual going on, a segment that carries the next
in-order data and acknowledges nothing new needs no state machine, only
"append the bytes, advance rcv_nxt, decide whether to ACK now".  That is the
segment a bulk receiver sees all the time, so it is the one worth compiling.

``rcv_established(sk, seq, ack, window, has_ts, ts_val, ts_ecr, data, now)``
returns True when it processed the segment completely, and False, having
changed nothing, when the segment needs the full path
(core.tcp.tcp_input.tcp_rcv_established).  The caller has already checked
what the header alone says: the flags are ACK (PSH, ECE, CWR allowed; no
SYN, FIN, RST or URG) and the options are at most a timestamp (no SACK
blocks).  Also taken: a bare ACK in FIN-WAIT-1 that does not acknowledge
our FIN (the state machine would do the same as in ESTABLISHED with it; a
sender that closed right after its last write spends its whole transfer in
FIN-WAIT-1).  Declined here: another state, a segment not at rcv_nxt, loss
recovery, an out-of-order queue, pending urgent data, a window change, a
timestamp missing or older than ts_recent (PAWS), an ACK below snd_una or
above snd_nxt; for data, a closed receive window or (unless
``new_ack_data``) an ACK of new data.  tcp_ack runs through the
``ack_predicted`` hook, as Linux's fast path calls it: after queueing the
data, for a bare ACK of new data, a duplicate with data in flight or the
answer to a probe.  The compiled receive classifier (rx.pyx) calls
``_rcv_established_c`` with a pointer into the frame instead.

``rcv_window_ack(sk, flags, seq, ack, window, has_ts, ts_val, ts_ecr, n,
now)`` takes, after prediction declined it, the in-order bare ACK whose
only difference from the prediction is its window (a receiver autotuning
its window changes it on most ACKs): what tcp_rcv_state_process does for
it, tcp_ack through the same hook, then tcp_data_snd_check and
ack_snd_check, without the state machine (see _rcv_window_ack_c for what
it declines).  The classifier and the layered tcp_rcv_established try it
second, so header prediction itself stays Linux's.

``TcpCb`` is the part of the control block these paths use (C fields when
compiled, see tcp_fast.pxd); ``core.tcp.sock.TcpSock`` subclasses it.

``select_window(sk)`` is __tcp_select_window (receiver SWS avoidance), the one
the fast path needs to decide whether to ACK; ``tcp_select_window(sk)`` the
window field of the next segment.  core.tcp.tcp_output uses both.

``clean_rtx_queue(sk)`` is the loop of tcp_clean_rtx_queue: drop the
segments snd_una now covers from sk.rtx (trimming a partly acked head),
keep the SACK scoreboard counts right, free the acknowledged bytes of sk.wq;
it returns (segments acked, send time of the first one never retransmitted
nor SACKed or None, whether a retransmitted one was acked) for Karn's rule.

The send side: ``write_xmit(sk, mss, out, ifindex, dst_mac, src_mac, ttl,
now)`` is tcp_write_xmit's loop for plain data segments, each built as a whole frame
(tx.tcp_frame, or tx.tcp_frame6 for an IPv6 connection: its peer address
tagged above bit 128, see ``addrs6_of``) and appended to ``out`` (the
host's output list), with its
``TxSeg`` (the retransmit queue's record of a segment) appended to sk.rtx.
core.tcp.tcp_output calls it when nothing unusual is pending (no urgent
mode, no SACK option to send, no FIN queued without data left to carry it)
and the route's neighbour is resolved; it returns the number of segments
sent.  A queued FIN goes with the last data segment, as Linux's tcp_send_fin
marks it on the tail skb of the write queue.

``ip_select_ident_segs(sk, segs)``: the IP ID of a connected socket's next
datagram of ``segs`` segments, from its own counter (``sk.inet_id``, Linux's
inet_id: random at connect or accept, advanced by the segments sent), for
every segment of the connection, in both send loops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:       # Cython ships no type information: check against the shim
    from tcpio._fast import _cython_shim as cython
else:
    try:
        import cython
    except ImportError:     # Cython is a build dependency only: run without it
        from tcpio._fast import _cython_shim as cython

from collections import deque

from tcpio._fast import load
from tcpio._fast.gso import GSO_LEGACY_MAX_SIZE, gso_frame

# sk.rtx_timer and sk.delack_timer until first armed (one object for both
# builds: the differential tests run them against one TcpSock)
from tcpio.core.timer import NO_TIMER

__all__ = ["SRTT_MIN", "RcvQueue", "SndQueue", "TcpCb", "TxSeg", "ack_snd_check", "ack_xmit",
           "addrs6_of", "batch_end", "check_space", "data_snd_check",
           "buf_append",
           "buf_consume", "burst_sent", "clean_rtx_queue", "cleanup_rbuf_ack", "copy_skbs",
           "current_mss",
           "cwnd_quota", "cwnd_validate", "data_sent_idle", "dec_quickack_mode", "event_ack_sent",
           "event_data_recv", "incr_quickack", "ip_select_ident_segs", "new_data_sent", "push_mark",
           "rack_advance", "RcvPool", "rcv_established", "rcv_pool_note", "rcv_pool_open",
           "rcv_pool_share", "rcv_rtt_update", "rcv_space_adjust", "recv_done", "rcv_window_ack", "receive_window",
           "SNDQ_EMPTY", "sack_option_len", "select_window", "send_ack_or_coalesce", "set_hooks",
           "set_xmit_hooks", "sk_dst_check", "dst_mtu", "sq_append",
           "sq_consume",
           "sk_gso_max_size", "sq_ref_ok", "sq_view", "tcp_select_window", "tso_segs",
           "write_xmit", "xmit_done", "xmit_more", "xmit_path", "xmit_plain", "xmit_size_goal",
           "xmit_test"]

# The interpreted send loop builds frames with tx.tcp_frame; the compiled one
# calls tx.pyx's tcp_data_frame directly (cimported in tcp_fast.pxd).
_tcp_frame = load("tx").tcp_frame
_tcp_frame6 = load("tx").tcp_frame6
# TCP's IPv6 addresses are tagged above bit 128 (core.tcp.inet6_addr.V6TAG):
# a connection whose peer address is above this mask is an IPv6 one.
_V6MASK = (1 << 128) - 1

_TCP_ESTABLISHED = 1
_TCP_FIN_WAIT1 = 4
_TCP_FIN_WAIT2 = 5
_TCP_TIME_WAIT = 6
_TCP_CLOSE = 7
_RCV_SHUTDOWN = 1       # sk_shutdown's bit (core.tcp.tcp_states)
_TCP_CA_OPEN = 0
_TCP_MAX_QUICKACKS = 16
_MAX_TCP_WINDOW = 65535
_TCPHDR_FIN = 0x01
_TCPHDR_SYN = 0x02
# tp->nonagle's bits (include/net/tcp.h); TCP_NAGLE_OFF is TcpCb.nodelay
_TCP_NAGLE_CORK = 2      # TCP_CORK, or a MSG_MORE write's push: hold partial segments
_TCP_NAGLE_PUSH = 4      # push what is queued now (until a write starts a new skb)
_TCPHDR_PSH = 0x08
# TxSeg.flags: the last segment of its burst (Linux's skb, one GSO packet),
# beside the header bits; a retransmission of several lost segments of one
# burst is again one GSO packet, with PSH (tcp_output.tcp_xmit_retransmit_queue)
_TCPCB_EOB = 0x100
_TCPHDR_ACK = 0x10
_FLAG_DATA = 0x01       # tcp_ack's FLAG_DATA (core.tcp.tcp_input)
# Sequence space.  Typed long long in tcp_fast.pxd, so the compiled build
# does this arithmetic in C (a bare literal this large would be a Python int
# there), and the same expressions give the same values in both builds.
_U32_MASK = 0xFFFFFFFF
_U32_HALF = 0x80000000
_U32_MOD = 0x100000000
# TxSeg.sacked bits (TCPCB_*)
_TCPCB_SACKED_ACKED = 1
_TCPCB_SACKED_RETRANS = 2
_TCPCB_LOST = 4
# the ACK path (core.tcp.tcp_input, tcp_output, tcp_states: the same values)
_TCP_CA_CWR = 2
_TCP_CA_RECOVERY = 3
_FLAG_WIN_UPDATE = 0x02
_ICSK_TIME_RETRANS = 1
_ICSK_TIME_PROBE0 = 3
_ICSK_TIME_LOSS_PROBE = 5
_TCP_TIMEOUT_INIT = 1.0
_TCP_TIMEOUT_MIN = 0.002
_CA_EVENT_TX_START = 0      # core.tcp.tcp_ca's
# tso_segs: Linux's srtt_us floor of 1 (in 1/8 us), in seconds; a pacing
# rate (bytes/s) from which the burst is 64 KB whatever min_rtt adds
SRTT_MIN = 0.125e-6
_SRTT_MIN = SRTT_MIN
_TSO_RATE_MAX = 4.0e18

# The receive queue (RcvQueue): a payload of at least _RQ_REF_MIN bytes
# that is at least half of the immutable frame it arrived in is queued by
# reference (a view of the frame); anything else is copied into the queue's
# own tail block, a new one once the tail holds _RQ_TAIL_MAX bytes.
_RQ_REF_MIN = 2048
_RQ_TAIL_MAX = 65536
_GSO_LEGACY_MAX_SIZE = GSO_LEGACY_MAX_SIZE
_RQ_NO_CHUNKS: Any = ()     # RcvQueue.chunks while nothing is queued

# The send queue (SndQueue): a write of at least _SQ_REF_MIN bytes of an
# immutable ``bytes`` (or a view of one), at least half of that object, is
# queued by reference; anything else is copied into the queue's own tail
# block, a new one once the tail holds _SQ_TAIL_MAX bytes.
_SQ_REF_MIN = 4096
_SQ_TAIL_MAX = 262144
_SQ_NO_CHUNKS: Any = ()     # SndQueue.chunks while nothing is queued

# The Python side the fast paths call out to, set by core.tcp (this module
# sits below it; see set_hooks).
_send_ack: Callable[..., Any] | None = None
_data_sent_idle: Callable[..., Any] | None = None
_ack_predicted: Callable[..., Any] | None = None
_data_snd_check: Callable[..., Any] | None = None
_batch_end: Callable[..., Any] | None = None
_ack_bypass = False     # a bare ACK's tcp_ack compiled whole (_ack_bare)
# tcp_output's tcp_write_xmit and tcp_send_ack, which data_snd_check,
# batch_end and send_ack_or_coalesce call (set_xmit_hooks)
_write_xmit: Callable[..., Any] | None = None
_send_ack_now: Callable[..., Any] | None = None
# tcp_output's tcp_push, which copy_skbs calls at a full skb's push point
_push: Callable[..., Any] | None = None


def set_hooks(send_ack: Callable[..., Any], data_sent_idle: Callable[..., Any],
              ack_predicted: Callable[..., Any]) -> None:
    """Install the Python side the fast paths call out to: tcp_send_ack(sk, now),
    tcp_event_data_sent_idle(sk, now) and tcp_ack_predicted(sk, seq, ack,
    window, ts_val, ts_ecr, now[, flag]) (tcp_ack for an accepted prediction:
    a bare ACK, or with flag FLAG_DATA data that acknowledges new data).
    Until set_snd_check_hooks runs again every accepted ACK goes through
    ``ack_predicted`` (so a test's recorder sees them all)."""
    global _send_ack, _data_sent_idle, _ack_predicted, _ack_bypass
    _send_ack = send_ack
    _data_sent_idle = data_sent_idle
    _ack_predicted = ack_predicted
    _ack_bypass = False


def set_xmit_hooks(write_xmit: Callable[..., Any], send_ack: Callable[..., Any],
                   push: Callable[..., Any] | None = None) -> None:
    """Install tcp_write_xmit(sk, now) and tcp_send_ack(sk, now), which
    data_snd_check, batch_end and send_ack_or_coalesce call, and
    tcp_push(sk, now, nonagle), which copy_skbs calls (None: left as it
    was)."""
    global _write_xmit, _send_ack_now, _push
    _write_xmit = write_xmit
    _send_ack_now = send_ack
    if push is not None:
        _push = push


def set_snd_check_hooks(data_snd_check: Callable[..., Any] | None,
                        batch_end: Callable[..., Any] | None) -> None:
    """Install tcp_data_snd_check(sk, now) and tcp_batch_end(sk, now), which
    data_snd_check_batched calls (and through it a bare ACK of new data,
    compiled whole: _ack_bare, from now on).  After set_hooks."""
    global _data_snd_check, _batch_end, _ack_bypass
    _data_snd_check = data_snd_check
    _batch_end = batch_end
    _ack_bypass = data_snd_check is not None and batch_end is not None


class TcpCb:
    """The hot part of the TCP control block (struct tcp_sock names).

    Compiled, these are C fields (tcp_fast.pxd); interpreted, plain
    attributes.  TcpSock.__init__ sets every one whose first value is not
    zero (C fields start at zero; interpreted, _cb_zero sets the rest); until
    then the compiled object fields are None, which the entry points refuse,
    and probes_out is 0 in both builds."""

    state: int
    ca_state: int
    rcv_nxt: int
    rcv_wup: int
    rcv_wnd: int
    rcv_mss: int
    rcv_wscale: int
    rcvbuf: int
    window_clamp: int
    ofo_bytes: int
    advmss: int
    quick: int
    # icsk_ack.pingpong: replies sent within the ATO of the last received
    # data (inet_csk_inc_pingpong_cnt); at net.ipv4.tcp_pingpong_thresh or
    # more the connection is interactive and quick ACKs are off
    pingpong: int
    snd_una: int
    snd_nxt: int
    snd_wnd: int
    snd_wscale: int
    ts_recent: int
    ts_off: int
    tstamp_ok: bool
    got_data: bool
    ack_pending: bool
    dead: bool
    rcv_tstamp: float
    ts_recent_stamp: float
    rcv_rtt: float
    rq: RcvQueue
    ofo: Any
    urg_seq: int | None
    host: Any
    delack_timer: Any
    laddr: int
    raddr: int
    lport: int
    rport: int
    snd_cwnd: int
    packets_out: int
    probes_out: int     # zero-window or keepalive probes unanswered
    sacked_out: int
    lost_out: int
    retrans_out: int
    snd_sml: int
    write_seq: int
    pushed_seq: int     # write_seq at the last tcp_mark_push (the end of a write)
    # the unsent ends of forced_push skbs (tcp_sendmsg's tcp_mark_push
    # inside a write), oldest first; None until a write forces one
    push_marks: Any
    wq_seq: int
    nodelay: bool       # TCP_NODELAY (tp->nonagle's TCP_NAGLE_OFF)
    nonagle: int        # tp->nonagle's TCP_NAGLE_CORK and TCP_NAGLE_PUSH bits
    is_cwnd_limited: bool
    wq: SndQueue
    rtx: list[TxSeg]
    # RACK (RFC 8985; Linux tp->rack): the most recently sent segment (S)ACKed
    # so far, its RTT, and whether a new one was seen since loss detection ran
    min_rtt: float
    rack_mstamp: float
    rack_rtt: float
    rack_end_seq: int
    rack_advanced: bool
    reord_seen: int     # reordering events seen (tp->reord_seen)
    # tracing (tcpio.core.tcp.tcp_trace.SockTracer or None): set, the fast
    # paths decline and the traced segments take the general path
    trace: Any
    # TCP_INFO's tcpi_segs_in: segments the connection received (here when
    # the classifier's call takes one; the layered path counts its own)
    segs_in: int
    lrcvtime: float     # icsk_ack.lrcvtime: when in-order data last arrived (-1: never)
    # a listener's last cookie SYN-ACK (tcp_synq_overflow; syn_fast writes it)
    last_synq_overflow: float
    # the IP ID of the connection's next segment (inet_id; ip_select_ident_segs)
    inet_id: int
    # sk_gso_max_size (sk_setup_caps): the datagram size the route's device
    # takes TCP super-frames of, above 64 KiB for BIG TCP (0: the legacy
    # GSO_LEGACY_MAX_SIZE); the compiled send path sets it from the device
    # it sends on (gso_caps), tso_segs and xmit_size_goal read it
    gso_max_size: int
    # Not read by the fast paths: compiled, C fields, so that an idle
    # connection keeps no int object per value (issue 11: memory per idle
    # socket).  TcpSock sets them.
    iss: int
    irs: int
    snd_wl1: int
    max_window: int
    sndbuf: int
    mss_cache: int
    mss_clamp: int
    # the host's receive pool (RcvPool, None: none; TcpSock sets it) and the
    # epoch this connection last counted as a receiver in, plus one (0: never)
    rcv_pool: RcvPool | None
    rcv_epoch: int
    # SOCK_NOSPACE (struct socket's flag): a writer found no room (a short
    # sendmsg, or send_space / stream_writeable said no, as tcp_poll sets
    # it), so an ACK that frees space wakes it (check_space); clear, nobody
    # waits for space and an ACK wakes nobody.
    nospace: bool
    # sk_dst_cache: the route the connection's whole frames take (tx.TcpDst,
    # the host's for the destination), checked against the host's route
    # generation on each use (sk_dst_check); None until the first send, or
    # while there is none to cache (an IPv6 peer, an unresolved neighbour)
    dst_cache: Any

    def __init__(self) -> None:
        self.rcv_pool = None        # as an object field starts compiled
        self.rcv_epoch = 0
        self.probes_out = 0     # as a C field starts (the bare-ACK rule reads it)
        self.pingpong = 0       # as a C field starts (ack_snd_check reads it)
        self.pushed_seq = 0
        self.push_marks = None
        self.nonagle = 0
        self.inet_id = 0
        self.gso_max_size = 0
        self.trace = None
        self.segs_in = 0
        self.lrcvtime = -1.0
        self.last_synq_overflow = -1e9


if not cython.compiled:
    # (compiled: an object field, None at birth; TcpSock sets no first value)
    TcpCb.dst_cache = None


class RttEstimator:
    """sk.rtt_est: the RTO estimator of RFC 6298 with Linux's floor and cap
    (the rules: tcpio/core/tcp/tcp_rtt.py, which exports this class).

    Here, beside TcpCb, so that compiled it is a cdef class of C fields
    only: CPython's cycle collector does not track it at all, one object
    less per connection for every full collection to scan (issue 11: a
    server with many idle connections pays each of them)."""

    _base_rto: float
    _rttvar: float
    _srtt: float
    backoff_count: int
    granularity: float
    has_sample: bool
    rto_initial: float
    rto_max: float
    rto_min: float

    def __init__(self, rto_initial: float = 1.0, rto_min: float = 0.2,
                 rto_max: float = 120.0, granularity: float = 0.0) -> None:
        self.rto_initial = rto_initial
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.granularity = granularity  # G: the clock's tick (0 for a float clock)
        self._srtt = 0.0
        self._rttvar = 0.0
        self._base_rto = min(rto_initial, rto_max)
        self.backoff_count = 0           # icsk_backoff
        self.has_sample = False

    def sample(self, rtt: float) -> None:
        """Feed one RTT measurement (seconds) from a segment sent once."""
        if rtt < 0:
            return
        if not self.has_sample:
            self._srtt = rtt
            self._rttvar = rtt / 2
            self.has_sample = True
        else:
            # RTTVAR first, with the old SRTT (RFC 6298 2.3 order);
            # beta = 1/4, alpha = 1/8
            err = self._srtt - rtt
            self._rttvar = 0.75 * self._rttvar + 0.25 * (err if err >= 0 else -err)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        # max(G, K * RTTVAR, rto_min) with K = 4, and the rto_max cap,
        # without the builtins' calls (once per ACK that moves snd_una)
        var = 4 * self._rttvar
        if var < self.granularity:
            var = self.granularity
        if var < self.rto_min:
            var = self.rto_min
        rto = self._srtt + var
        self._base_rto = rto if rto < self.rto_max else self.rto_max

    @property
    def srtt(self) -> float:
        """Smoothed RTT in seconds (0.0 before the first sample)."""
        return self._srtt

    @property
    def rttvar(self) -> float:
        return self._rttvar

    @property
    def base_rto(self) -> float:
        """The RTO without backoff."""
        return self._base_rto

    @property
    def rto(self) -> float:
        """The current RTO including exponential backoff, capped at rto_max."""
        if not self.backoff_count:
            return self._base_rto       # (never above rto_max: sample and reset cap it)
        n = min(self.backoff_count, 40)
        rto = self._base_rto * 2.0 ** n     # (exact: a power of two)
        return rto if rto < self.rto_max else self.rto_max

    def backoff(self) -> float:
        """RFC 6298 5.5: double the RTO (after a timeout); returns the new RTO.

        ``backoff_count`` counts every call (like ``icsk_backoff``); the RTO
        itself stops growing at rto_max.
        """
        self.backoff_count += 1
        return self.rto

    def reset_backoff(self) -> None:
        """New data was acknowledged: drop the backoff (Linux clears icsk_backoff)."""
        self.backoff_count = 0

    def reset(self, rto: float | None = None) -> None:
        """Forget the samples (e.g. RFC 6298 5.7: back to 3 s after a lost SYN)."""
        self._srtt = self._rttvar = 0.0
        self.has_sample = False
        self.backoff_count = 0
        r = self.rto_initial if rto is None else rto
        self._base_rto = r if r < self.rto_max else self.rto_max


# Compiled, not tracked by the cycle collector (issue 11: one object less
# per connection for each full collection to scan).  Safe because a
# RcvQueue cannot be part of a reference cycle: it holds only bytes-like
# chunks (views of immutable frames, bytearrays, gso.GsoFrame's attributes
# are ints) in a deque or a tuple.  (The directive works on the class here,
# with cclass, and is ignored in the .pxd.)
@cython.no_gc
@cython.cclass
class RcvQueue:
    """sk.rq: the in-order bytes the user has not read yet (sk_receive_queue).

    A FIFO of chunks, oldest first: views of received frames (an in-order
    payload queued by reference, as Linux queues the skb and copies only in
    tcp_recvmsg), and bytearray blocks of the queue's own for small payloads
    (copied and coalesced, tcp_try_coalesce's job, so a peer sending tiny
    segments pays no per-segment object and pins no frames).  ``head`` bytes
    of the first chunk are read already.  A read copies once, from the
    chunks to the bytes returned (``take``) or into the caller's buffer
    (``take_into``), and drops every chunk it finished, so a frame is freed
    as soon as its last byte is read.

    Only immutable frames (``bytes`` and subclasses, or a memoryview of one)
    are kept by reference, and only when the payload is at least half of
    the frame, so the memory pinned is at most about twice what is queued;
    a view of anything mutable is copied, since its owner may reuse it."""

    chunks: Any         # deque of memoryview (a frame's payload) / bytearray (own block)
    nbytes: int         # bytes queued (len)
    head: int           # bytes of chunks[0] already read
    tail: bytearray | None  # the last chunk when it is an own block still filling

    def __init__(self, data: Any = b"") -> None:
        # the shared empty tuple until something is queued, and again once
        # everything is read: an empty deque is ~0.76 KiB, and an idle
        # connection's queue is empty (issue 11's bytes per idle socket)
        self.chunks = _RQ_NO_CHUNKS
        self.nbytes = 0
        self.head = 0
        self.tail = None
        if len(data):
            self.push(data)

    def __len__(self) -> int:
        return self.nbytes

    def __bytes__(self) -> bytes:
        return self.peek(self.nbytes)

    def __repr__(self) -> str:
        return f"RcvQueue({self.nbytes} bytes in {len(self.chunks)} chunks)"

    def push(self, data: Any) -> None:
        """Queue ``data`` (a bytes-like payload) at the tail: by reference
        when it is a large part of an immutable frame, else copied."""
        _rq_push(self, data)

    def peek(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer if fewer are queued), left queued."""
        if n > self.nbytes:
            n = self.nbytes
        if n <= 0:
            return b""
        return _rq_join(self, n)

    def take(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer if fewer are queued), dequeued."""
        out = self.peek(n)
        self.consume(len(out))
        return out

    def take_into(self, buf: Any, n: int = -1) -> int:
        """Move up to ``n`` bytes (-1: as many as ``buf`` holds) into the
        writable buffer ``buf``, from its start; the count moved."""
        return _rq_take_into(self, buf, n, True)

    def peek_into(self, buf: Any, n: int = -1) -> int:
        """``take_into`` without dequeuing (MSG_PEEK)."""
        return _rq_take_into(self, buf, n, False)

    def consume(self, n: int) -> None:
        """Drop the first ``n`` bytes (all if fewer are queued)."""
        if n <= 0:
            return
        if n >= self.nbytes:
            self.clear()
            return
        chunks = self.chunks
        head = self.head
        self.nbytes -= n
        while n:
            left = len(chunks[0]) - head
            if n < left:
                head += n
                break
            n -= left
            head = 0
            if chunks.popleft() is self.tail:
                self.tail = None
        self.head = head

    def clear(self) -> None:
        """Drop everything queued (and with it the frames it referenced)."""
        self.chunks = _RQ_NO_CHUNKS
        self.nbytes = 0
        self.head = 0
        self.tail = None


class SndQueue:
    """sk.wq: the bytes [wq_seq, write_seq) of the send queue, sent or not,
    until they are acknowledged (the data of sk_write_queue and the
    retransmit queue).

    A FIFO of chunks, oldest first: read-only views of the immutable
    ``bytes`` the application wrote (queued by reference, as a
    MSG_ZEROCOPY-like send that needs no completion: the object cannot
    change, and the queue keeps it alive until it is acknowledged), and
    bytearray blocks of the queue's own for anything else (copied, since
    the caller may reuse a mutable buffer as soon as the write returns;
    coalesced, so small writes make no chunk each).  ``head`` bytes of the
    first chunk are acknowledged already.  A segment is cut from the chunks
    when it is sent or resent (sq_view; the compiled send loop builds the
    frame from them directly): a payload byte is copied once on its way to
    the wire, where a contiguous bytearray queue copied it in, slid it to
    the block's front whenever the tail reached the end, and copied it out
    (issue 12: with 4 MiB queued that slide moved every byte once more).

    A sock that has not written holds the shared ``SNDQ_EMPTY`` (sendmsg
    gives it a queue of its own first: sq_append refuses the shared one),
    and a queue's list of chunks is the shared empty tuple while nothing is
    queued: an idle connection adds no object for each full collection to
    scan (issue 11)."""

    chunks: Any         # list of memoryview (referenced bytes) / bytearray (own block)
    nbytes: int         # bytes queued (len)
    head: int           # bytes of chunks[0] acknowledged already
    tail: bytearray | None  # the last chunk when it is an own block still filling

    def __init__(self, data: Any = b"") -> None:
        self.chunks = _SQ_NO_CHUNKS
        self.nbytes = 0
        self.head = 0
        self.tail = None
        if len(data):
            sq_append(self, data, False)

    def __len__(self) -> int:
        return self.nbytes

    def __bytes__(self) -> bytes:
        return bytes(sq_view(self, 0, self.nbytes))

    def __repr__(self) -> str:
        return f"SndQueue({self.nbytes} bytes in {len(self.chunks)} chunks)"


# sk.wq of a sock that never wrote (SndQueue; never appended to)
SNDQ_EMPTY = SndQueue()


class TxSeg:
    """One transmitted, not yet acknowledged segment: [seq, end_seq) + flags.

    The payload is not stored: it is ``sk.wq`` sliced at ``seq``.
    """

    # no per-instance dict for the many records of a retransmit queue
    # (compiled: C fields instead)
    __slots__ = ("end_seq", "flags", "retrans", "sacked", "seq", "tstamp")

    seq: int
    end_seq: int
    flags: int          # _TCPHDR_SYN / TCPHDR_FIN / _TCPHDR_PSH bits carried
    sacked: int         # TCPCB_* bits (tcp_sack)
    retrans: int
    tstamp: float       # last (re)transmission time

    def __init__(self, seq: int, end_seq: int, flags: int, tstamp: float) -> None:
        self.seq = seq
        self.end_seq = end_seq
        self.flags = flags
        self.sacked = 0
        self.tstamp = tstamp
        self.retrans = 0

    def __repr__(self) -> str:
        return f"TxSeg({self.seq}, {self.end_seq}, flags={self.flags}, sacked={self.sacked})"


# --- sequence space ----------------------------------------------------------------------------

def u32(x: int) -> int:
    """x modulo 2**32: a sequence number or timestamp after arithmetic."""
    return x & _U32_MASK


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed 32-bit distance."""
    d = (a - b) & _U32_MASK
    return d - _U32_MOD if d >= _U32_HALF else d


def before(a: int, b: int) -> bool:
    """a comes before b in 32-bit sequence space (include/net/tcp.h)."""
    return ((a - b) & _U32_MASK) >= _U32_HALF


def after(a: int, b: int) -> bool:
    return ((b - a) & _U32_MASK) >= _U32_HALF


def tcp_time_stamp(now: float) -> int:
    """The 1 ms timestamp clock (tcp_time_stamp_ms): ``now`` in ms, truncated,
    mod 2**32."""
    return u32(cython.cast(cython.longlong, now * 1000))


def _store_ts_recent(sk: TcpCb, seq: int, has_ts: bool, ts_val: int, now: float) -> None:
    """tcp_store_ts_recent, with the time the peer was last heard from."""
    sk.rcv_tstamp = now
    if has_ts and not after(seq, sk.rcv_wup):
        sk.ts_recent = ts_val
        sk.ts_recent_stamp = now


def receive_window(sk: TcpCb) -> int:
    """tcp_receive_window: what the peer may still send beyond rcv_nxt per our
    last advertisement (never negative)."""
    if sk is None:
        raise TypeError("receive_window: a TcpCb is required")
    w = seq_diff(sk.rcv_wup, sk.rcv_nxt) + sk.rcv_wnd
    return w if w > 0 else 0


# --- the byte-level steps: raw pointers compiled, buffer objects interpreted --------------------

def _immutable_base(data: Any, n: int, ref_min: int) -> Any:
    """The immutable ``bytes`` that ``data`` (``n`` bytes: a ``bytes``, or a
    flat byte view of one) is or views, when ``n`` is at least ``ref_min``:
    what either queue may keep by reference (RcvQueue's frames, SndQueue's
    writes); None when the bytes must be copied."""
    if n < ref_min:
        return None
    if type(data) is memoryview:
        base = data.obj
        if (not isinstance(base, bytes) or data.ndim != 1 or data.itemsize != 1
                or not data.c_contiguous):
            return None
        return base
    return data if isinstance(data, bytes) else None


def _ref_view(owner: Any, off: int, n: int) -> memoryview | None:
    """A view of ``owner[off:off + n]`` to queue by reference (RcvQueue), or
    None to copy: when the bytes are at least _RQ_REF_MIN and half of an
    immutable frame (_immutable_base)."""
    base = _immutable_base(owner, n, _RQ_REF_MIN)
    if base is None or 2 * n < len(base):
        return None
    if type(owner) is memoryview:
        # a new view (of the same buffer): the caller may release its own
        return owner[off:off + n]
    return memoryview(owner)[off:off + n]


def _rq_push(rq: RcvQueue, data: Any) -> int:
    """RcvQueue.push."""
    if type(data) is memoryview and (data.ndim != 1 or data.itemsize != 1):
        data = data.cast("B")
    n = len(data)
    if n <= 0:
        return 0
    view = _ref_view(data, 0, n)
    if view is not None:
        _rq_push_ref(rq, view, n)
        return 0
    if cython.compiled:
        owner = rbuf_get(data, cython.address(b))
        try:
            _rq_push_copy(rq, b.p, b.n)
        finally:
            rbuf_release(cython.address(b))
        return 0
    return _rq_push_copy(rq, data, n)


def _rq_chunks(rq: RcvQueue) -> Any:
    """The queue's deque, made on the first push (RcvQueue.__init__)."""
    chunks = rq.chunks
    if chunks is _RQ_NO_CHUNKS:
        chunks = rq.chunks = deque()
    return chunks


def _rq_push_ref(rq: RcvQueue, view: memoryview, n: int) -> int:
    _rq_chunks(rq).append(view)
    rq.nbytes += n
    rq.tail = None
    return 0


def _rq_push_copy(rq: RcvQueue, data: Any, n: int) -> int:
    """Copy ``n`` bytes (compiled: a pointer; interpreted: a bytes-like) to
    the queue's own tail block."""
    tail = rq.tail
    if tail is None or len(tail) >= _RQ_TAIL_MAX:
        tail = bytearray()
        _rq_chunks(rq).append(tail)
        rq.tail = tail
    if cython.compiled:
        ba_append(tail, data, n)
    else:
        tail += data
    rq.nbytes += n
    return 0


def _rq_copy(rq: RcvQueue, dst: Any, n: int) -> int:
    """Copy the first ``n`` queued bytes (n <= len(rq)) to ``dst``
    (compiled: a pointer; interpreted: a writable byte memoryview)."""
    return _chunks_copy(rq.chunks, rq.head, n, dst)


def _chunks_copy(chunks: Any, pos: int, n: int, dst: Any) -> int:
    """Copy ``n`` bytes of the concatenated ``chunks`` from ``pos`` on to
    ``dst`` (compiled: a pointer; interpreted: a writable byte memoryview),
    as far as they go; returns the count (the receive and send queues)."""
    done = 0
    for ch in chunks:
        if done >= n:
            break
        if cython.compiled:
            owner = rbuf_get(ch, cython.address(b))
            size = b.n
            if pos < size:
                k = size - pos if size - pos < n - done else n - done
                memcpy(dst + done, b.p + pos, k)
                done += k
                pos = 0
            else:
                pos -= size
            rbuf_release(cython.address(b))
        else:
            size = len(ch)
            if pos < size:
                k = min(size - pos, n - done)
                with memoryview(ch) as v:
                    dst[done:done + k] = v[pos:pos + k]
                done += k
                pos = 0
            else:
                pos -= size
    return done


def _rq_join(rq: RcvQueue, n: int) -> bytes:
    """The first ``n`` queued bytes (0 < n <= len(rq)) as one new bytes:
    one copy of each byte."""
    if cython.compiled:
        out = PyBytes_FromStringAndSize(cython.NULL, n)
        _rq_copy(rq, cython.cast(cython.p_uchar, PyBytes_AS_STRING(out)), n)
        return out
    first = rq.chunks[0]
    head = rq.head
    if len(first) - head >= n:
        with memoryview(first) as v:
            return bytes(v[head:head + n])
    parts = []
    pos = 0
    for ch in rq.chunks:
        if pos >= n:
            break
        v = memoryview(ch)
        k = min(len(v) - head, n - pos)
        parts.append(v[head:head + k])
        v.release()
        pos += k
        head = 0
    try:
        return b"".join(parts)
    finally:
        for v in parts:
            v.release()         # (a bytearray block must not stay exported)


def _rq_take_into(rq: RcvQueue, buf: Any, n: int, consume: bool) -> int:
    if cython.compiled:
        PyObject_GetBuffer(buf, cython.address(w), PyBUF_WRITABLE)
        try:
            size = w.len
            if n < 0 or n > size:
                n = size
            if n > rq.nbytes:
                n = rq.nbytes
            if n > 0:
                _rq_copy(rq, cython.cast(cython.p_uchar, w.buf), n)
        finally:
            PyBuffer_Release(cython.address(w))
    else:
        with memoryview(buf) as mv:
            if mv.readonly:
                raise TypeError("take_into: the buffer must be writable")
            with mv.cast("B") as flat:
                size = len(flat)
                if n < 0 or n > size:
                    n = size
                if n > rq.nbytes:
                    n = rq.nbytes
                if n > 0:
                    _rq_copy(rq, flat, n)
    if consume and n > 0:
        rq.consume(n)
    return n if n > 0 else 0


def buf_append(ba: bytearray, data: Any) -> None:
    """``ba += data`` for a bytearray FIFO (the send queue): compiled,
    amortized O(n) however much of the front has been consumed (_buf.pxd)."""
    if ba is None:
        raise TypeError("buf_append: the queue must be a bytearray")
    if cython.compiled:
        owner = rbuf_get(data, cython.address(b))
        try:
            ba_append(ba, b.p, b.n)
        finally:
            rbuf_release(cython.address(b))
        return
    ba += data


def buf_consume(ba: bytearray, n: int) -> None:
    """``del ba[:n]`` for a socket queue (see _buf.pxd for the compiled one)."""
    if ba is None:
        raise TypeError("buf_consume: the queue must be a bytearray")
    if n < 0:
        raise ValueError("buf_consume: negative length")
    if cython.compiled:
        ba_consume(ba, n)
        return
    del ba[:n]


def sq_ref_ok(data: Any, q: SndQueue | None = None) -> bool:
    """May a write of ``data`` (a flat byte memoryview) be queued by
    reference (SndQueue)?  When it views an immutable ``bytes`` and is at
    least _SQ_REF_MIN bytes and half of that object (so the memory a
    reference keeps alive stays within twice what is queued), or the last
    chunk of ``q`` already views the same object (the rest of a write the
    queue took in part: nothing more is kept alive)."""
    base = _immutable_base(data, len(data), _SQ_REF_MIN)
    if base is None:
        return False
    if 2 * len(data) >= len(base):
        return True
    if q is not None and q.tail is None and q.chunks:
        last = q.chunks[len(q.chunks) - 1]     # (compiled without wraparound)
        return type(last) is memoryview and last.obj is base
    return False


def sq_append(q: SndQueue, data: Any, ref: bool) -> None:
    """Queue ``data`` (bytes-like) at the tail of ``q``: by reference if
    ``ref`` (the caller asked sq_ref_ok of the whole write it comes from),
    else copied into the queue's own tail block."""
    if q is None:
        raise TypeError("sq_append: the queue must be a SndQueue")
    if q is SNDQ_EMPTY:
        raise ValueError("sq_append: the shared empty queue takes nothing")
    n = len(data)
    if n <= 0:
        return
    chunks = q.chunks
    if chunks is _SQ_NO_CHUNKS:
        chunks = q.chunks = []
    if ref:
        view = memoryview(data)
        if not view.readonly:
            raise ValueError("sq_append: a reference must be read-only")
        chunks.append(view)
        q.tail = None
    else:
        tail = q.tail
        if tail is not None and len(tail) < _SQ_TAIL_MAX:
            try:
                buf_append(tail, data)
            except BufferError:
                # (a view of the tail is out: the send loop's, for one call)
                tail = None
        else:
            tail = None
        if tail is None:
            tail = bytearray(data)
            chunks.append(tail)
            q.tail = tail
    q.nbytes += n


def sq_consume(q: SndQueue, n: int) -> None:
    """Drop the first ``n`` bytes of ``q`` (acknowledged), all if fewer."""
    if q is None:
        raise TypeError("sq_consume: the queue must be a SndQueue")
    if n <= 0:
        return
    if n >= q.nbytes:
        q.chunks = _SQ_NO_CHUNKS
        q.nbytes = 0
        q.head = 0
        q.tail = None
        return
    chunks = q.chunks
    q.nbytes -= n
    head = q.head
    k = 0
    while n:
        left = len(chunks[k]) - head
        if n < left:
            head += n
            break
        n -= left
        head = 0
        k += 1
    if k:
        if q.tail is not None and q.tail is chunks[k - 1]:
            q.tail = None
        del chunks[:k]
    q.head = head


def sq_view(q: SndQueue, off: int, n: int) -> Any:
    """Bytes ``[off, off + n)`` of ``q`` (0 <= off, off + n <= len(q)): a
    memoryview of the one chunk that holds them all (release it before the
    queue changes), else a new ``bytes`` joining the chunks."""
    if q is None:
        raise TypeError("sq_view: the queue must be a SndQueue")
    if off < 0 or n < 0 or off + n > q.nbytes:
        raise ValueError("sq_view: out of the queue")
    pos = off + q.head
    parts: list[memoryview] = []
    for ch in q.chunks:
        size = len(ch)
        if pos >= size:
            pos -= size
            continue
        k = size - pos if size - pos < n else n
        if not parts and k == n:
            return memoryview(ch)[pos:pos + n]
        parts.append(memoryview(ch)[pos:pos + k])
        n -= k
        pos = 0
        if not n:
            break
    out = b"".join(parts)
    for part in parts:
        part.release()
    return out


def _data_frame(sk: TcpCb, wq: SndQueue, off: int, seglen: int, dst_mac: bytes | None,
                src_mac: bytes | None, hh: int, ident: int, ttl: int, seq: int, flags: int,
                window: int, ts_val: int, ts_ecr: int, addrs6: bytes | None,
                partial: bool = False, gso: bool = False) -> bytes:
    """The frame of the data segment ``wq[off:off + seglen]`` (tcp_transmit_skb
    -> ip_queue_xmit in one call; ``partial``: CHECKSUM_PARTIAL).  ``addrs6``:
    an IPv6 connection's source and destination address (32 bytes, as the
    IPv6 header carries them; ``ttl`` is then the hop limit), None for IPv4.
    ``gso``: a super-frame's; compiled, it is built as a gso.GsoFrame (no
    copy into one after), interpreted as plain bytes (gso_frame copies).
    The payload is copied from the queue's chunk straight into the frame
    (one that spans chunks is joined first)."""
    if cython.compiled:
        base = cython.cast(cython.p_const_uchar, cython.NULL)
        owner = None
        joined = None
        pos = off + wq.head
        for ch in wq.chunks:
            size = len(ch)
            if pos < size:
                if size - pos >= seglen:
                    owner = rbuf_get(ch, cython.address(b))
                    base = b.p + pos
                break
            pos -= size
        if owner is None:
            if partial:
                # the device sums it: the pieces go straight into the frame
                # (a BIG TCP super-frame spans the writes it carries: one
                # copy of 256 KiB, not a join and a copy)
                return _data_frame_spread(sk, wq, off, seglen, dst_mac, src_mac, hh, ident,
                                          ttl, seq, flags, window, ts_val, ts_ecr, addrs6, gso)
            joined = PyBytes_FromStringAndSize(cython.NULL, seglen)
            _chunks_copy(wq.chunks, off + wq.head, seglen,
                         cython.cast(cython.p_uchar, PyBytes_AS_STRING(joined)))
            base = cython.cast(cython.p_const_uchar, PyBytes_AS_STRING(joined))
        try:
            if addrs6 is not None:
                return tcp_data_frame6(dst_mac, src_mac, hh, addrs6, ttl, sk.lport, sk.rport,
                                       seq, sk.rcv_nxt, flags, window, ts_val, ts_ecr, base,
                                       seglen, partial, gso)
            return tcp_data_frame(dst_mac, src_mac, hh, sk.laddr, sk.raddr, ident, ttl,
                                  sk.lport, sk.rport, seq, sk.rcv_nxt, flags, window, ts_val,
                                  ts_ecr, base, seglen, partial, gso)
        finally:
            if owner is not None:
                rbuf_release(cython.address(b))
    payload = sq_view(wq, off, seglen)
    try:
        if addrs6 is not None:
            frame: bytes = _tcp_frame6(dst_mac, src_mac, sk.laddr & _V6MASK,
                                       sk.raddr & _V6MASK, ttl, sk.lport, sk.rport, seq,
                                       sk.rcv_nxt, flags, window, ts_val, ts_ecr, (),
                                       payload, 0, partial, gso)
        else:
            frame = _tcp_frame(dst_mac, src_mac, sk.laddr, sk.raddr, ident, ttl, sk.lport,
                               sk.rport, seq, sk.rcv_nxt, flags, window, ts_val, ts_ecr, (),
                               payload, 0, partial, gso)
    finally:
        if type(payload) is memoryview:
            payload.release()
    return frame


def _data_frame_spread(sk: TcpCb, wq: SndQueue, off: int, seglen: int,
                       dst_mac: bytes | None, src_mac: bytes | None, hh: int, ident: int,
                       ttl: int, seq: int, flags: int, window: int, ts_val: int, ts_ecr: int,
                       addrs6: bytes | None, gso: bool) -> bytes:
    """_data_frame's compiled case for a payload that spans the queue's
    chunks, its checksum partial: the frame is built with room for the
    payload (tx's NULL data), which is copied into its last ``seglen``
    bytes chunk by chunk."""
    if cython.compiled:
        if addrs6 is not None:
            frame = tcp_data_frame6(dst_mac, src_mac, hh, addrs6, ttl, sk.lport, sk.rport, seq,
                                    sk.rcv_nxt, flags, window, ts_val, ts_ecr,
                                    cython.cast(cython.p_const_uchar, cython.NULL), seglen,
                                    True, gso)
        else:
            frame = tcp_data_frame(dst_mac, src_mac, hh, sk.laddr, sk.raddr, ident, ttl,
                                   sk.lport, sk.rport, seq, sk.rcv_nxt, flags, window, ts_val,
                                   ts_ecr, cython.cast(cython.p_const_uchar, cython.NULL),
                                   seglen, True, gso)
        # the payload is the frame's last seglen bytes (the builders' own
        # header arithmetic, not repeated here)
        at = len(frame) - seglen
        _chunks_copy(wq.chunks, off + wq.head, seglen,
                     cython.cast(cython.p_uchar, PyBytes_AS_STRING(frame)) + at)
        return frame
    raise RuntimeError("_data_frame_spread: compiled only")


def addrs6_of(sk: TcpCb) -> bytes | None:
    """An IPv6 connection's source and destination address as its frames
    carry them (32 bytes); None for an IPv4 one (its peer address untagged)."""
    if sk.raddr > _V6MASK:
        return (sk.laddr & _V6MASK).to_bytes(16, "big") + (sk.raddr & _V6MASK).to_bytes(16, "big")
    return None


# --- the receive pool ----------------------------------------------------------------------------

# A receiver counts in the epoch (a quarter second) it received in-order
# data, and the share divides by the larger of this epoch's count and the
# last one's: a connection that receives every RTT keeps counting.
_POOL_EPOCHS_PER_S = 4.0
# The wait the pool is sized for: each epoch the pool becomes what the
# last one received in this long (rate x delay), within [least, most].
_POOL_DELAY = 0.25
# A wait this short (the receiver's RTT, tcp_rcv_rtt_measure_ts: from our
# ACK to the data it let in being read) means the segments hardly queue:
# the pool may grow within an epoch (rcv_pool_note).
_POOL_QUICK_WAIT = _POOL_DELAY / 4


class RcvPool:
    """What the receive windows of the connections now receiving share
    (issue 11): ``size`` bytes split evenly among them, at least 4 * advmss
    each, never less than a connection offered already (tcp_select_window
    keeps the right edge); a connection receiving alone is not held.

    Why: a receive window is a promise of memory; what all the peers may
    have in flight is the sum of the windows offered.  Linux keeps that sum
    in check with tcp_mem: under memory pressure __tcp_select_window clamps
    each socket's rcv_ssthresh to 4 * advmss (tcp_adjust_rcv_ssthresh) and
    tcp_grow_window stops growing it.  Linux reads its device faster than
    peers fill it; tcpio reads on one thread, so what they have in flight
    waits in the device's ring, and the ring's wait is the peers' RTT.  At
    1000 kernel clients each with its congestion window of 10-26 segments,
    25-37k segments (37-53 MB) waited in the TAP's ring, RTTs reached
    1-1.2 s, the first flights' RTOs fired and the ring overflowed
    (benchmarks/soak_timeline.py).  Offering each receiving connection its
    share of a pool bounds the sum whatever their congestion windows are.

    How large: what tcpio receives in _POOL_DELAY (the last epoch's bytes,
    scaled), between ``least`` and ``most`` (Settings.tcp_rcv_pool).  A
    fixed pool was either too small for a fast reader (at 6 MiB, 1000
    one-way uploads moved half as much: four-segment windows cut every
    super-frame small) or too large for a loaded one (at 16 MiB, the soak
    beside other work: RTTs over 1 s and 191-220 RTOs).  Sized by the rate,
    the wait in the ring settles near _POOL_DELAY when the pool binds: a
    wait below it lets the rate, and so the pool, grow; above it, shrink.
    A path whose own RTT exceeds _POOL_DELAY holds the pool at ``least``.
    The pool starts at ``least`` and returns there after an epoch with
    nothing received, so a burst of new connections' first flights (their
    SYN-ACKs' windows: rcv_pool_open) is bounded before any rate is known.
    Within an epoch the pool grows to what the epoch received so far once
    that is more, while every receiver RTT (rcv_rtt) noted in this epoch
    and the last is below _POOL_QUICK_WAIT: nothing queues, so the pool,
    not the reader, is what binds.  Without it 1000 short uploads (bench_scale.py, 128 KiB each)
    spent their first epochs at four-segment windows: the frames tcpio
    read averaged 2.4 KB (64 KB for one upload alone), and it moved
    40-60 % of one upload's rate (with it: 4.3 KB, 80-95 %).  Segments
    that wait longer (the soak's first seconds) leave the pool to the
    epoch rule.

    Counted: a connection in each epoch it receives in-order data
    (rcv_pool_note), and a new one when its SYN-ACK or SYN takes its first
    window (rcv_pool_open)."""

    size: int       # bytes the receivers share now
    least: int      # ... at least (the start, and after an idle epoch)
    most: int       # ... at most (0: no pool)
    epoch: int      # the current epoch, plus one (the count's)
    cur: int        # receivers counted in the current epoch
    prev: int       # ... and in the one before
    nbytes: int     # in-order bytes received in the current epoch
    wait: float     # the longest receiver RTT (rcv_rtt) noted in this epoch
    wait_prev: float  # ... and in the one before (0: none noted)

    def __init__(self, least: int, most: int) -> None:
        self.least = least if least < most else most
        self.most = most
        self.size = self.least
        self.epoch = 0
        self.cur = 0
        self.prev = 0
        self.nbytes = 0
        self.wait = 0.0
        self.wait_prev = 0.0


def rcv_pool_share(pool: RcvPool, advmss: int) -> int:
    """The most a receiving connection may offer: its share of the pool,
    and at least four segments (Linux's floor under memory pressure); one
    receiving alone, the most the pool may grow to."""
    if pool is None:
        raise TypeError("rcv_pool_share: a RcvPool is required")
    n = pool.cur if pool.cur > pool.prev else pool.prev
    if n <= 1:
        return pool.most
    share = pool.size // n
    least = 4 * advmss
    return share if share > least else least


def _rcv_pool_enter(pool: RcvPool, e: int) -> None:
    """Move the pool on to epoch ``e`` (plus one, > pool.epoch), sized by
    what the epoch before it received."""
    size = 0
    if e == pool.epoch + 1:
        pool.prev = pool.cur
        pool.wait_prev = pool.wait
        size = cython.cast(cython.longlong,
                           pool.nbytes * (_POOL_DELAY * _POOL_EPOCHS_PER_S))
    else:
        pool.prev = 0               # an epoch (or more) with nothing received
        pool.wait_prev = 0.0
    if size < pool.least:
        size = pool.least
    if size > pool.most:
        size = pool.most
    pool.size = size
    pool.cur = 0
    pool.nbytes = 0
    pool.wait = 0.0
    pool.epoch = e


def _rcv_pool_epoch(pool: RcvPool, now: float) -> int:
    """The epoch (plus one) ``now`` falls in, the pool moved on to it
    first when it is a later one than the pool's."""
    e = cython.cast(cython.longlong, now * _POOL_EPOCHS_PER_S) + 1
    if e > pool.epoch:
        _rcv_pool_enter(pool, e)
    return e


def rcv_pool_note(sk: TcpCb, now: float, n: int) -> None:
    """``n`` in-order bytes arrived at ``now``: count them, and the
    connection as a receiver of this epoch, once."""
    if sk is None:
        raise TypeError("rcv_pool_note: a TcpCb is required")
    pool = sk.rcv_pool
    if pool is None or pool.most <= 0:
        return
    e = _rcv_pool_epoch(pool, now)
    if e < pool.epoch:
        return                      # a late note from an epoch gone by
    pool.nbytes += n
    w = sk.rcv_rtt
    if w > pool.wait:
        pool.wait = w
    if (pool.nbytes > pool.size and 0.0 < w
            and pool.wait < _POOL_QUICK_WAIT and pool.wait_prev < _POOL_QUICK_WAIT):
        # The epoch already received more than the pool and no receiver's
        # segments waited long, in this epoch or the last: the pool binds
        # where nothing queues.  Grow now, to what the epoch received so far
        # (still at most rate x delay), not a quarter second later: short
        # uploads end before then.  One receiver that waited is enough to
        # stop it: the soak's first flights, 1000 of them at once, wait in
        # the ring while the first few connections' samples are still short.
        pool.size = pool.nbytes if pool.nbytes < pool.most else pool.most
    if e != sk.rcv_epoch:
        sk.rcv_epoch = e
        pool.cur += 1


def rcv_pool_open(pool: RcvPool, now: float, advmss: int, wnd: int) -> int:
    """A connection's first window ``wnd`` (tcp_select_initial_window's,
    whole segments of ``advmss``), counted as a new receiver and held to
    its share of ``pool`` in whole segments."""
    if pool is None:
        raise TypeError("rcv_pool_open: a RcvPool is required")
    if pool.most <= 0:
        return wnd
    if _rcv_pool_epoch(pool, now) == pool.epoch:
        pool.cur += 1
    share = rcv_pool_share(pool, advmss)
    if wnd > share:
        return share // advmss * advmss if advmss > 0 else share
    return wnd


# --- the receive window --------------------------------------------------------------------------

def select_window(sk: TcpCb) -> int:
    """__tcp_select_window: receiver SWS avoidance (RFC 1122 4.2.3.3).

    Offer space in whole MSS units, and nothing while less than
    min(MSS, half the buffer) is free."""
    if sk is None or sk.rq is None:
        raise TypeError("tcp: the receive queue must be a RcvQueue")
    mss = sk.rcv_mss if sk.rcv_mss < sk.advmss else sk.advmss
    if mss == 0:
        mss = 1
    full = sk.rcvbuf if sk.rcvbuf < sk.window_clamp else sk.window_clamp
    # (an over-committed buffer gives a negative free space: zero below)
    free = sk.rcvbuf - len(sk.rq) - sk.ofo_bytes
    if free < 0:
        free = 0
    if free > sk.window_clamp:
        free = sk.window_clamp
    if sk.rcv_pool is not None and sk.rcv_pool.most > 0:
        # at most this connection's share of the host's receive pool
        share = rcv_pool_share(sk.rcv_pool, sk.advmss)
        if free > share:
            free = share
    if free < (full >> 1) and free < mss:
        return 0
    if sk.rcv_wscale:
        # The scaled field cannot express less than 1 << wscale: round down.
        gran = 1 << sk.rcv_wscale
        unit = mss if mss > gran else gran
        window = free // unit * unit if free >= mss else free
        return window - window % gran
    window = sk.rcv_wnd
    if window <= free - mss or window > free:
        window = free // mss * mss
    return window


def tcp_select_window(sk: TcpCb) -> int:
    """tcp_select_window: the 16-bit window field for the next segment,
    never moving the right edge back (RFC 7323 2.4)."""
    if sk is None:
        raise TypeError("tcp_select_window: a TcpCb is required")
    cur = receive_window(sk)
    new = select_window(sk)
    if new < cur:
        gran = 1 << sk.rcv_wscale
        new = (cur + gran - 1) // gran * gran
    if new > _MAX_TCP_WINDOW << sk.rcv_wscale:
        new = _MAX_TCP_WINDOW << sk.rcv_wscale
    sk.rcv_wnd = new
    sk.rcv_wup = sk.rcv_nxt
    return new >> sk.rcv_wscale


# --- the receive fast path -----------------------------------------------------------------------

def _rcv_established_c(sk: TcpCb, seq: int, ack: int, window: int, has_ts: bool, ts_val: int,
                      ts_ecr: int, data: Any, n: int, now: float,
                      new_ack_data: bool = False, segs: int = 1, gso_size: int = 0,
                      owner: Any = None, off: int = 0, counted: bool = False) -> int:
    """Header prediction and the in-order data path (see the module
    docstring): 1 if the segment was fully processed, 0 if declined.
    ``segs``/``gso_size``: a super-segment (GRO's aggregate, skb_shinfo's
    gso_segs/gso_size) counts as its segments and measures the peer's MSS
    by its segment size.  ``data``: the ``n`` payload bytes (compiled, a
    pointer; interpreted, a bytes-like); ``owner``: the object they are
    ``owner[off:off + n]`` of (the frame, or ``data`` itself), which the
    receive queue may keep a view of instead of copying (RcvQueue).
    ``new_ack_data``: take in-order data that also acknowledges new data;
    ``counted``: the caller counted segs_in (tcp_segs_in) already."""
    if sk.rq is None:
        raise TypeError("tcp: the receive queue must be a RcvQueue")
    shifted = window
    shifted <<= sk.snd_wscale
    if sk.state != _TCP_ESTABLISHED:
        # FIN-WAIT-1 (our FIN queued or sent, not yet acknowledged): Linux's
        # tcp_rcv_state_process does for a bare ACK that does not cover the
        # FIN exactly what ESTABLISHED does for it (tcp_ack, then
        # tcp_data_snd_check; its FIN-WAIT-1 step waits for snd_una to pass
        # the FIN), so the prediction below serves it too; data, and the ACK
        # of our FIN (write_seq + 1), go to the state machine.
        if sk.state != _TCP_FIN_WAIT1 or n != 0 or after(ack, sk.write_seq):
            return 0
    if (seq != sk.rcv_nxt
            or sk.ca_state != _TCP_CA_OPEN or sk.urg_seq is not None or sk.ofo
            or shifted != sk.snd_wnd or sk.trace is not None):
        return 0
    if sk.tstamp_ok and (not has_ts or before(ts_val, sk.ts_recent)):
        return 0
    if n == 0:
        # A bare ACK: acceptable if it acknowledges nothing we did not send.
        if before(ack, sk.snd_una) or after(ack, sk.snd_nxt):
            return 0
        _store_ts_recent(sk, seq, has_ts, ts_val, now)
        if not counted:
            sk.segs_in += segs      # tcp_segs_in: max(1, gso_segs)
        # New data acked, a duplicate ACK while data is out, or the answer to
        # a probe: tcp_ack (it clears probes_out, so a receiver that keeps
        # answering keeps the connection, RFC 1122 4.2.2.17).
        if (ack != sk.snd_una or sk.packets_out or sk.probes_out) and not _ack_bare(
                sk, seq, ack, window, ts_ecr if has_ts else 0, now):
            assert _ack_predicted is not None
            if has_ts:
                _ack_predicted(sk, seq, ack, window, ts_val, ts_ecr, now)
            else:
                _ack_predicted(sk, seq, ack, window, None, None, now)
        return 1
    new_ack = ack != sk.snd_una
    if new_ack and (not new_ack_data or before(ack, sk.snd_una) or after(ack, sk.snd_nxt)):
        return 0
    if receive_window(sk) == 0:
        return 0
    # Commit: nothing below declines the segment.
    _store_ts_recent(sk, seq, has_ts, ts_val, now)
    if not counted:
        sk.segs_in += segs          # tcp_segs_in: max(1, gso_segs)
    if sk.tstamp_ok and ts_ecr:
        sk.rcv_rtt = rcv_rtt_update(sk.rcv_rtt, sk.ts_off, ts_ecr, now)
    view = _ref_view(owner, off, n)
    if view is not None:
        _rq_push_ref(sk.rq, view, n)
    else:
        _rq_push_copy(sk.rq, data, n)
    sk.rcv_nxt = u32(seq + n)
    event_data_recv(sk, n, gso_size)
    sk.lrcvtime = now
    rcv_pool_note(sk, now, n)
    sk.ack_pending = True
    sk.host.schedule_wakeup(sk)
    if new_ack:
        # Linux's order: data queued, then tcp_ack(FLAG_DATA) and
        # tcp_data_snd_check (a segment sent now carries the pending ACK)
        assert _ack_predicted is not None
        if has_ts:
            _ack_predicted(sk, seq, ack, window, ts_val, ts_ecr, now, _FLAG_DATA)
        else:
            _ack_predicted(sk, seq, ack, window, None, None, now, _FLAG_DATA)
    ack_snd_check(sk, now)
    return 1


def _rcv_window_ack_c(sk: TcpCb, flags: int, seq: int, ack: int, window: int, has_ts: bool,
                      ts_val: int, ts_ecr: int, n: int, now: float, counted: bool = False,
                      segs: int = 1) -> int:
    """The slow path's work, compiled, for the bare ACK header prediction
    declines only for its window: 1 if the segment was fully processed, 0
    (having changed nothing) if it needs tcp_rcv_state_process.  (Issue 11:
    a receiver that autotunes its window changes it on most ACKs.)

    For an in-order bare ACK (flags exactly ACK, no data, seq == rcv_nxt,
    the timestamp as prediction accepts it, snd_una <= ack <= snd_nxt) in
    ESTABLISHED, or FIN-WAIT-1 not acknowledging our FIN, Linux's slow path
    is: tcp_validate_incoming (PAWS and the sequence test pass for it),
    rcv_tstamp, tcp_ack, ts_recent (tcp_replace_ts_recent), then nothing
    for the state or the text, tcp_data_snd_check and tcp_ack_snd_check.
    Here: the checks, _store_ts_recent, the ``ack_predicted`` hook (tcp_ack,
    whose tcp_ack_update_window takes the window under the snd_wl1/snd_una
    rule of RFC 9293 3.10.7.4, then tcp_data_snd_check) and ack_snd_check.
    Declined besides what prediction declines: a window that opens or closes
    a zero window, a probe unanswered, data queued with nothing in flight
    (the zero-window probe timer's cases), SACKed segments, a timestamp
    where none was negotiated.  ``counted``: the caller counted segs_in."""
    if flags != _TCPHDR_ACK or n != 0:
        return 0
    # FIN-WAIT-1 as in _rcv_established_c: the ACK of our FIN is the state machine's
    if sk.state != _TCP_ESTABLISHED and (sk.state != _TCP_FIN_WAIT1
                                         or after(ack, sk.write_seq)):
        return 0
    shifted = window
    shifted <<= sk.snd_wscale
    if (seq != sk.rcv_nxt or shifted == sk.snd_wnd or shifted == 0 or sk.snd_wnd == 0
            or sk.ca_state != _TCP_CA_OPEN or sk.urg_seq is not None or sk.ofo
            or sk.sacked_out or sk.probes_out or sk.trace is not None
            or (sk.packets_out == 0 and sk.write_seq != sk.snd_nxt)):
        return 0
    if sk.tstamp_ok != has_ts or (has_ts and before(ts_val, sk.ts_recent)):
        return 0
    if before(ack, sk.snd_una) or after(ack, sk.snd_nxt):
        return 0
    # Commit.  (tcp_ack reads neither ts_recent nor rcv_wup, so the
    # timestamp is stored first, as the predicted bare ACK does.)
    _store_ts_recent(sk, seq, has_ts, ts_val, now)
    if not counted:
        sk.segs_in += segs
    if not _ack_bare(sk, seq, ack, window, ts_ecr if has_ts else 0, now):
        assert _ack_predicted is not None
        if has_ts:
            _ack_predicted(sk, seq, ack, window, ts_val, ts_ecr, now)
        else:
            _ack_predicted(sk, seq, ack, window, None, None, now)
    ack_snd_check(sk, now)
    return 1


def rcv_window_ack(sk: TcpCb, flags: int, seq: int, ack: int, window: int, has_ts: bool,
                   ts_val: int, ts_ecr: int, n: int, now: float, counted: bool = False,
                   segs: int = 1) -> bool:
    """True if the segment (``n`` bytes of data, header ``flags``) took the
    compiled slow path of _rcv_window_ack_c (then it is fully processed)."""
    if sk is None:
        raise TypeError("rcv_window_ack: a TcpCb is required")
    return _rcv_window_ack_c(sk, flags, seq, ack, window, has_ts, ts_val, ts_ecr, n, now,
                             counted, segs) == 1


def rcv_rtt_update(rcv_rtt: float, ts_off: int, ts_ecr: int, now: float) -> float:
    """tcp_rcv_rtt_measure_ts for both paths: the receiver's RTT estimate
    updated from the echoed timestamp (a sample of at least 1 ms)."""
    d = u32(tcp_time_stamp(now) + ts_off - ts_ecr)
    if d >= 0x7FFFFFFF:
        return rcv_rtt
    sample = d / 1000.0
    if sample < 0.001:
        sample = 0.001
    return sample if not rcv_rtt else rcv_rtt * 0.875 + sample * 0.125


def event_data_recv(sk: TcpCb, n: int, gso_size: int = 0) -> None:
    """tcp_event_data_recv for both paths: the peer's MSS guess
    (tcp_measure_rcv_mss: a super-segment's ``gso_size``, else the ``n``
    bytes that arrived), quick-ACK mode at the start (tcp_incr_quickack)."""
    if sk is None:
        raise TypeError("event_data_recv: a TcpCb is required")
    if gso_size:
        n = gso_size
    if n > sk.rcv_mss:
        sk.rcv_mss = n if n < sk.advmss else sk.advmss
    if not sk.got_data:
        sk.got_data = True
        incr_quickack(sk, _TCP_MAX_QUICKACKS)


def incr_quickack(sk: TcpCb, max_quickacks: int) -> None:
    """tcp_incr_quickack (tcp_enter_quickack_mode's count, for every caller):
    half the window in segments, 2 when that is 0 (a window under two
    segments), at most ``max_quickacks``, and only ever raised (a zero-window
    drop may already have asked for more)."""
    if sk is None:
        raise TypeError("incr_quickack: a TcpCb is required")
    quick = sk.rcv_wnd // (2 * (sk.rcv_mss if sk.rcv_mss > 1 else 1))
    if quick == 0:
        quick = 2
    if quick > max_quickacks:
        quick = max_quickacks
    if quick > sk.quick:
        sk.quick = quick


def in_pingpong_mode(sk: TcpCb) -> bool:
    """inet_csk_in_pingpong_mode: the count reached net.ipv4.tcp_pingpong_thresh
    (at least 1, so a count of 0 is never interactive: no settings read)."""
    return sk.pingpong > 0 and sk.pingpong >= sk.host.settings.tcp_pingpong_thresh


def cleanup_rbuf_ack(sk: TcpCb) -> bool:
    """tcp_cleanup_rbuf's decision after the app read: should an ACK go now?
    Yes when one is scheduled and either we are in quick-ACK mode, or this
    is the once-per-two-segments ACK that __tcp_ack_snd_check held back
    because the unread data kept the window from advancing ("tcp_recvmsg()
    will send ACK otherwise"): without it, after a zero-window episode a
    reader that keeps up is ACKed only by the 40 ms delayed-ACK timer, once
    per window.  (Quick-ACK mode stands for ICSK_ACK_PUSHED here, which
    Linux ignores in pingpong mode: the reply will carry the ACK.)  Else a
    window update when the window grew a lot: to at least twice what the
    peer was last offered, by at least a segment.  Not in a state that
    receives no more data, unless an ACK is scheduled."""
    if sk is None:
        raise TypeError("cleanup_rbuf_ack: a TcpCb is required")
    o: Any = sk
    state = sk.state
    shutdown: int = o.sk_shutdown
    if ((state != _TCP_ESTABLISHED and state != _TCP_FIN_WAIT1 and state != _TCP_FIN_WAIT2)
            or shutdown & _RCV_SHUTDOWN) and not sk.ack_pending:
        return False
    cur = receive_window(sk)
    if sk.ack_pending and ((sk.quick and not in_pingpong_mode(sk))
                           or seq_diff(sk.rcv_nxt, sk.rcv_wup) > sk.rcv_mss):
        return True
    new = select_window(sk)
    least = sk.rcv_mss if sk.rcv_mss < sk.advmss else sk.advmss
    return new != 0 and new >= 2 * cur and new - cur >= least


def rcv_space_adjust(sk: TcpCb, now: float) -> None:
    """Receive buffer autotuning (dynamic right-sizing, like Linux's
    tcp_rcv_space_adjust): once per RTT, if the app read more than the last
    round, let the buffer hold twice that, so the sender is never
    window-limited by a reader that keeps up."""
    if sk is None:
        raise TypeError("rcv_space_adjust: a TcpCb is required")
    o: Any = sk
    rtt = sk.rcv_rtt
    if not rtt:
        est = o.rtt_est                 # (TcpSock.srtt)
        rtt = est.srtt if est.has_sample else 0.0
    rcvq_time: float = o.rcvq_time
    if not rtt or now - rcvq_time < rtt:
        return
    copied_seq = u32(sk.rcv_nxt - sk.rq.nbytes)
    copied = seq_diff(copied_seq, o.rcvq_seq)
    if rcvq_time and copied > o.rcvq_space:
        want = 4 * copied + 16 * sk.advmss
        cap: int = sk.host.settings.tcp_rmem[2]
        if want > cap:
            want = cap
        if want > sk.rcvbuf:
            sk.rcvbuf = want
        o.rcvq_space = copied
    o.rcvq_seq = copied_seq
    o.rcvq_time = now


def recv_done(sk: TcpCb, now: float) -> None:
    """After the app read bytes (tcp_recvmsg's end): the receive buffer's
    autotuning (rcv_space_adjust, unless SO_RCVBUF locked it) and the ACK or
    window update the read may owe (tcp_cleanup_rbuf: cleanup_rbuf_ack).
    Compiled: a reader of 1000 small flows reads a few segments at a time,
    ~200 reads per MiB, and these were four Python calls per read."""
    if sk is None:
        raise TypeError("recv_done: a TcpCb is required")
    o: Any = sk
    if not o.opts.rcvbuf_locked:
        rcv_space_adjust(sk, now)
    if cleanup_rbuf_ack(sk):
        assert _send_ack_now is not None
        _send_ack_now(sk, now)


def event_data_sent(sk: TcpCb, now: float) -> None:
    """tcp_event_data_sent's pingpong rule: data sent within the ATO of the
    last received data is a reply (inet_csk_inc_pingpong_cnt, capped at
    U8_MAX).  The ATO: 0 until data arrived (tcp_event_data_recv initializes
    it), then TCP_ATO_MIN, tcpio's delayed-ACK time (tcp_delack_min; tcpio
    does not inflate the ATO)."""
    if (sk.got_data and sk.pingpong < 255
            and now - sk.lrcvtime < sk.host.settings.tcp_delack_min):
        sk.pingpong += 1


def ack_snd_check(sk: TcpCb, now: float) -> None:
    """__tcp_ack_snd_check for both paths: ACK now for two full segments (if
    the window moved), in quick-ACK mode (tcp_in_quickack_mode: not while in
    pingpong mode) or with a hole; else delay."""
    if sk is None:
        raise TypeError("ack_snd_check: a TcpCb is required")
    if not sk.ack_pending or sk.dead:
        return
    if ((seq_diff(sk.rcv_nxt, sk.rcv_wup) > sk.rcv_mss and select_window(sk) >= sk.rcv_wnd)
            or (sk.quick and not in_pingpong_mode(sk)) or sk.ofo):
        assert _send_ack is not None
        _send_ack(sk, now)
    else:
        timer = sk.delack_timer
        if timer.when is None:
            if timer is NO_TIMER:
                o: Any = sk
                timer = o.delack_timer_made()
            timer.arm(now + sk.host.settings.tcp_delack_min)


def rcv_established(sk: TcpCb, seq: int, ack: int, window: int, has_ts: bool, ts_val: int,
                    ts_ecr: int, data: Any, now: float, new_ack_data: bool = False,
                    segs: int = 1, gso_size: int = 0, counted: bool = False) -> bool:
    """True if the segment took the fast path (then it is fully processed);
    ``new_ack_data``, ``segs``, ``gso_size``, ``counted``: see
    _rcv_established_c."""
    if sk is None:
        raise TypeError("rcv_established: a TcpCb is required")
    if cython.compiled:
        owner = rbuf_get(data, cython.address(b))
        try:
            return _rcv_established_c(sk, seq, ack, window, has_ts, ts_val, ts_ecr,
                                     b.p, b.n, now, new_ack_data, segs, gso_size, owner,
                                     0, counted) == 1
        finally:
            rbuf_release(cython.address(b))
    if type(data) is memoryview and (data.ndim != 1 or data.itemsize != 1):
        data = data.cast("B")
    return _rcv_established_c(sk, seq, ack, window, has_ts, ts_val, ts_ecr,
                             data, len(data), now, new_ack_data, segs, gso_size, data, 0,
                             counted) == 1


# --- the send loop -------------------------------------------------------------------------------

def packets_in_flight(sk: TcpCb) -> int:
    """tcp_packets_in_flight: packets_out - left_out + retrans_out, where
    left_out is what SACK or loss marking says has left the network
    (sacked_out + lost_out).  The one source of the rule (TcpSock's
    tcp_packets_in_flight and tcp_output read it here)."""
    return sk.packets_out - (sk.sacked_out + sk.lost_out) + sk.retrans_out


def xmit_test(sk: TcpCb, seq: int, end: int, seglen: int, mss: int, fin: bool) -> bool:
    """May segment [seq, end) (``seglen`` bytes, a FIN if ``fin``) go now?  Both
    send loops' tcp_cwnd_test (no room: is_cwnd_limited; the FIN's segment
    goes past it), tcp_snd_wnd_test and tcp_nagle_test: a FIN is never held
    back, TCP_NAGLE_PUSH sends what is queued, TCP_NAGLE_CORK (TCP_CORK, a
    MSG_MORE write) holds a partial segment, and without TCP_NODELAY Nagle
    holds one while data is in flight, with Minshall's tweak
    (tcp_nagle_check: only while the last small segment is unacknowledged)."""
    if sk is None:
        raise TypeError("xmit_test: a TcpCb is required")
    # tcp_cwnd_test: "Don't be strict about the congestion window for the
    # final FIN" (a segment of at most one MSS carrying it goes regardless)
    if not fin and packets_in_flight(sk) >= sk.snd_cwnd:
        sk.is_cwnd_limited = True
        return False
    if after(end, (sk.snd_una + sk.snd_wnd) & _U32_MASK):
        return False
    if seglen >= mss or fin or sk.nonagle & _TCP_NAGLE_PUSH:
        return True
    return not (sk.nonagle & _TCP_NAGLE_CORK
                or (not sk.nodelay and sk.packets_out
                    and after(sk.snd_sml, sk.snd_una) and not after(sk.snd_sml, seq)))


def xmit_more(sk: TcpCb, seq: int, mss: int, fin_queued: bool) -> bool:
    """Does tcp_write_xmit send a segment at ``seq`` now (new data, with the
    FIN if it is the last and ``fin_queued``, or the FIN alone)?  Both send
    loops ask before each segment, and again after it: a segment that no
    other follows ends its burst (see push_flags)."""
    if sk is None:
        raise TypeError("xmit_more: a TcpCb is required")
    unsent = seq_diff(sk.write_seq, seq)
    if unsent <= 0:
        return fin_queued and unsent == 0 and xmit_test(sk, seq, u32(seq + 1), 0, mss, True)
    seglen = mss if mss < unsent else unsent
    fin = fin_queued and seglen == unsent
    return xmit_test(sk, seq, u32(seq + seglen + (1 if fin else 0)), seglen, mss, fin)


def cwnd_quota(sk: TcpCb, sent: int) -> int:
    """tcp_cwnd_test's quota: how many segments a burst (one GSO skb in
    Linux) may have, at most half the cwnd ("ensure we have at least 2 GSO
    packets in flight"); ``sent``: of them already counted in flight.  (The
    loops ask after the burst's first segment, so the cwnd is the one
    tcp_event_data_sent_idle may just have restarted, as Linux restarts it
    before sending, in tcp_skb_entail.)"""
    if sk is None:
        raise TypeError("cwnd_quota: a TcpCb is required")
    cwnd = sk.snd_cwnd
    room = cwnd + sent - packets_in_flight(sk)
    half = cwnd >> 1 if cwnd > 1 else 1
    return half if half < room else room


def current_mss(sk: TcpCb) -> int:
    """tcp_current_mss's bound: mss_cache, at most half the largest window
    the peer offered (tcp_bound_to_half_wnd; all of it below 537 bytes), so
    a tiny peer window still gets full segments; never below 48."""
    if sk is None:
        raise TypeError("current_mss: a TcpCb is required")
    mss = sk.mss_cache
    mw = sk.max_window
    if mw:
        cutoff = half_wnd_cutoff(mw)
        if cutoff < mss:
            mss = cutoff if cutoff > 48 else 48
    return mss


def half_wnd_cutoff(max_window: int) -> int:
    """tcp_bound_to_half_wnd's cutoff: half the largest window the peer
    offered, all of it when that is 536 bytes or less."""
    return max_window >> 1 if max_window > 536 else max_window


def tso_segs(sk: TcpCb, mss: int) -> int:
    """tcp_tso_autosize: the most segments one burst (Linux's GSO skb) has,
    about 1 ms at the pacing rate (tcp_update_pacing_rate: 200 % of
    cwnd * mss / srtt in slow start, 120 % after; unbounded before an RTT
    sample), plus up to 64 KB when min_rtt is short (tcp_tso_rtt_log 9),
    and at least tcp_min_tso_segs.  PSH marks the end of each burst.
    Linux's srtt_us is at least 1 (an eighth of a microsecond: the
    max(1U, srtt) of tcp_rtt_estimator), so the rate is finite however
    small a float clock's RTT sample is; a rate past _TSO_RATE_MAX bytes/s
    is unbounded here too (the burst is 64 KB either way)."""
    if sk is None:
        raise TypeError("tso_segs: a TcpCb is required")
    o: Any = sk
    st = sk.host.settings
    est = o.rtt_est
    srtt: float = est.srtt if est.has_sample else 0.0
    size = sk_gso_max_size(sk)
    if srtt > 0:
        cwnd = sk.snd_cwnd
        ssthresh: int = o.snd_ssthresh
        ratio: int = st.tcp_pacing_ss_ratio if cwnd < ssthresh // 2 else st.tcp_pacing_ca_ratio
        segs = cwnd if cwnd > sk.packets_out else sk.packets_out
        rate = mss * ratio / 100.0 * segs / (srtt if srtt > _SRTT_MIN else _SRTT_MIN)
        if rate < _TSO_RATE_MAX:
            n = cython.cast(cython.longlong, rate) >> 10        # sk_pacing_shift
            if sk.min_rtt > 0:
                r = cython.cast(cython.longlong, sk.min_rtt * 1e6) >> 9
                if r < 32:
                    n += size >> r
            if n < size:
                size = n
    least: int = st.tcp_min_tso_segs
    segs = size // mss
    return segs if segs > least else least


def cwnd_validate(sk: TcpCb, is_cwnd_limited: bool) -> None:
    """tcp_cwnd_validate's record of how the window is used: once a window
    of data is acked (snd_una reaches cwnd_usage_seq), or when cwnd limited
    this send, or the most segments out grew, restart it: cwnd-limited or
    not, max_packets_out, up to snd_nxt.  tcp_is_cwnd_limited reads it: an
    application-limited slow start still grows while cwnd < 2 *
    max_packets_out, and a window that was cwnd-limited stays so until acked."""
    if sk is None:
        raise TypeError("cwnd_validate: a TcpCb is required")
    o: Any = sk
    usage: int = o.cwnd_usage_seq
    most: int = o.max_packets_out
    if (not before(sk.snd_una, usage) or is_cwnd_limited
            or (not sk.is_cwnd_limited and sk.packets_out > most)):
        sk.is_cwnd_limited = is_cwnd_limited
        o.max_packets_out = sk.packets_out
        o.cwnd_usage_seq = sk.snd_nxt


def dec_quickack_mode(sk: TcpCb) -> None:
    """tcp_dec_quickack_mode (Linux 6.6 on): an ACK sent while one was
    scheduled (inet_csk_ack_scheduled: sk.ack_pending) spends one quick ACK;
    any other segment with ACK set (the rest of a burst, a window update, a
    probe, an answer to an out-of-window segment) spends none.  (tcpio's ATO
    is fixed: nothing to deflate on leaving quick-ACK mode.)"""
    if sk is None:
        raise TypeError("dec_quickack_mode: a TcpCb is required")
    if sk.quick and sk.ack_pending:
        sk.quick -= 1


def event_ack_sent(sk: TcpCb) -> None:
    """tcp_event_ack_sent, for a segment (or a burst of them) with ACK set:
    tcp_dec_quickack_mode, then the scheduled ACK and its timer are cleared
    (inet_csk_clear_xmit_timer(ICSK_TIME_DACK))."""
    dec_quickack_mode(sk)
    sk.ack_pending = False
    sk.delack_timer.cancel()


def data_sent_idle(sk: TcpCb, now: float) -> None:
    """tcp_event_data_sent's first transmission with nothing in flight:
    after an idle period longer than the RTO the old cwnd is stale (RFC
    7661, Linux tcp_cwnd_restart with tcp_slow_start_after_idle=1): halve
    it per RTO idle, not below the initial window; and tell the CC module
    (CUBIC shifts its epoch).  (The RTO is asked only after a send: an
    accepted child's first, often its FIN, has no idle period to measure.)"""
    if sk is None:
        raise TypeError("data_sent_idle: a TcpCb is required")
    o: Any = sk
    lsndtime = o.lsndtime
    if lsndtime is not None:
        rto: float = o.rtt_est.rto
        last: float = lsndtime
        idle = now - last
        if idle > rto:
            restart: int = sk.host.settings.tcp_init_cwnd
            cwnd = sk.snd_cwnd
            if cwnd < restart:
                restart = cwnd
            idle -= rto
            while idle > 0 and cwnd > restart:
                cwnd >>= 1
                idle -= rto
            sk.snd_cwnd = cwnd if cwnd > restart else restart
    o.ca_ops.cwnd_event(o, _CA_EVENT_TX_START, now)


def sack_option_len(sk: TcpCb) -> int:
    """Bytes the SACK option of our next segment takes (2 NOPs + kind/len +
    blocks: at most 3 beside a timestamp, else 4), as tcp_current_mss takes
    them out of the MSS."""
    if sk is None:
        raise TypeError("sack_option_len: a TcpCb is required")
    o: Any = sk
    if not o.sack_ok:
        return 0
    n: int = len(o.sack_blocks)
    if o.dsack is not None:
        n += 1
    if not n:
        return 0
    room = 3 if sk.tstamp_ok else 4
    return 4 + 8 * (n if n < room else room)


def sk_gso_max_size(sk: TcpCb) -> int:
    """The super-frame size the socket's device takes: GSO_LEGACY_MAX_SIZE
    unless it takes more (BIG TCP, gso_max_size)."""
    size = sk.gso_max_size
    return size if size > _GSO_LEGACY_MAX_SIZE else _GSO_LEGACY_MAX_SIZE


def xmit_size_goal(sk: TcpCb) -> int:
    """tcp_send_mss's size_goal: how big tcp_sendmsg lets an skb grow (the
    sk_gso_max_size, 64 KB or a BIG TCP device's more, bounded to half the
    peer's largest window, tcp_bound_to_half_wnd) in whole segments, at
    least one."""
    mss = current_mss(sk)
    size = sk_gso_max_size(sk)
    cutoff = half_wnd_cutoff(sk.max_window)
    if cutoff and size > cutoff:
        size = cutoff
    segs = size // mss
    return (segs if segs > 1 else 1) * mss


def xmit_plain(sk: TcpCb) -> bool:
    """May tcp_write_xmit's segments go through the compiled loop
    (write_xmit) as far as the sock is concerned?  Not with urgent data,
    tracing, an IP_TOS or IP_MTU_DISCOVER other than the default (the SACK
    option and the route are the caller's).  A FIN with no data left to
    carry it goes too (a server's close after its last reply: once per
    connection, issue 11)."""
    if sk is None:
        raise TypeError("xmit_plain: a TcpCb is required")
    o: Any = sk
    if o.snd_up is not None or sk.trace is not None:
        return False
    opts = o.opts
    return not opts.tos and opts.ip_df is not False


def sk_dst_check(sk: TcpCb, now: float) -> Any:
    """__sk_dst_check for TCP's whole frames: the socket's cached TcpDst
    (tx.TcpDst) while the host's route generation has not moved and no path
    MTU it carries has expired, else the host's current one for the peer
    (NetHost.ip_tcp_dst, NetHost6.ip6_tcp_dst), cached on the socket; None
    when there is none (no route, or a neighbour being resolved).  A dst
    for another peer (a socket connected again elsewhere) is not this one's
    (Linux resets sk_dst_cache on connect and disconnect)."""
    if sk is None:
        raise TypeError("sk_dst_check: a TcpCb is required")
    d = sk.dst_cache
    raddr = sk.raddr
    if d is not None and d.genid == d.gen.genid and now < d.expires and d.daddr == raddr:
        return d
    if raddr > _V6MASK:
        d = sk.host.ip6_tcp_dst(raddr & _V6MASK)
    else:
        d = sk.host.ip_tcp_dst(raddr)
    sk.dst_cache = d
    return d


def dst_mtu(sk: TcpCb, now: float) -> int:
    """The route's MTU that tcp_write_xmit keeps the MSS synced to (dst_mtu
    of the socket's dst in tcp_current_mss): the cached TcpDst's (an IPv6
    route's less 20, as TcpProto.route_mtu gives it: TCP's arithmetic takes
    IPv4's header size), else TcpProto.route_mtu's (576 without a route)."""
    d = sk_dst_check(sk, now)
    if d is not None:
        return d.mtu - 20 if sk.raddr > _V6MASK else d.mtu
    o: Any = sk
    return int(o.proto.route_mtu(sk.raddr))


def xmit_path(sk: TcpCb, mss: int) -> Any:
    """Where every segment of up to ``mss`` bytes to the peer can go out as
    one whole frame now (the socket's TcpDst, sk_dst_check: the route, the
    neighbour's header; else NetHost.ip_tcp_path, ip6_tcp_path for IPv6: a
    header 20 bytes longer), checked once for a burst, for a sock whose
    segments are plain (no SACK block to send, xmit_plain); None: the
    general path.  A stopped queue may refuse a frame (qdisc.py): the
    compiled loop hands its frames over without hearing that, so each
    segment goes through tcp_transmit_skb (and xmit) until the device wakes
    the queue."""
    if sk is None:
        raise TypeError("xmit_path: a TcpCb is required")
    if sack_option_len(sk) or not xmit_plain(sk):
        return None
    host = sk.host
    length = 40 + (12 if sk.tstamp_ok else 0) + mss
    raddr = sk.raddr
    if raddr > _V6MASK:
        length += 20        # IPv6's header
    now = host.now
    d = sk_dst_check(sk, now)
    if d is not None:
        # ip_tcp_path's tests on the cached dst, in C: a datagram that fits,
        # DF wanted (IPv4's PMTU discovery), a queue that runs; the
        # neighbour's ``used`` stamped as hh_lookup does
        path = d.path
        if (path is None or length > d.limit
                or (host.settings.ip_no_pmtu_disc and raddr <= _V6MASK)
                or (d.stopped and d.ifindex in d.stopped)):
            return None
        neigh = d.neigh
        if neigh is not None:
            neigh.used = now
        return path
    if raddr > _V6MASK:
        path = host.ip6_tcp_path(raddr & _V6MASK, length)
    else:
        path = host.ip_tcp_path(raddr, length)
    if path is not None and host.netif_xmit_stopped(path[0]):
        return None
    return path


def burst_sent(sk: TcpCb, n: int, frames: int, v6: bool, eth: bool, now: float,
               data: bool = True) -> None:
    """What tcp_transmit_skb and ip_output do per segment, in bulk, after
    the compiled loop sent ``n`` segments in ``frames`` frames: segments
    for TCP (tcp_skb_pcount), frames for IP (a TSO super-frame is one
    datagram of several segments) and Ethernet; tcp_event_ack_sent (the
    burst's first segment carried the scheduled ACK), then, if the burst
    carried data (not ``data``: a FIN alone), lsndtime and
    tcp_event_data_sent (__tcp_transmit_skb calls it only for a segment
    longer than its header)."""
    if sk is None:
        raise TypeError("burst_sent: a TcpCb is required")
    o: Any = sk
    o.segs_out += n
    mib = sk.host.mib
    mib["OutSegs"] += n
    if v6:
        mib["Ip6OutRequests"] += frames
    else:
        mib["OutRequests"] += frames
    if eth:
        mib["EthOutFrames"] += frames
    event_ack_sent(sk)
    if data:
        o.lsndtime = now
        event_data_sent(sk, now)


def xmit_done(sk: TcpCb, window_limited: bool, prior_packets: int, now: float) -> None:
    """tcp_write_xmit after a loop that sent something: is_cwnd_limited back
    to what it was for the window (the loop's xmit_test set it if cwnd
    stopped this call: Linux's local is_cwnd_limited), PRR's count of what
    went out in a cwnd reduction, tcp_cwnd_validate, and a loss probe if RFC
    8985 allows (it is never later than the RTO), else
    tcp_event_new_data_sent's RTO: a running RTO or reordering timer stays.
    (Linux arms the RTO, then the probe over it; one arming is the same and
    spares the timer heap.)"""
    if sk is None:
        raise TypeError("xmit_done: a TcpCb is required")
    o: Any = sk
    limited = sk.is_cwnd_limited
    sk.is_cwnd_limited = window_limited
    if sk.ca_state == _TCP_CA_CWR or sk.ca_state == _TCP_CA_RECOVERY:
        o.prr_out += sk.packets_out - prior_packets
    cwnd_validate(sk, limited or packets_in_flight(sk) >= sk.snd_cwnd)
    if not schedule_loss_probe(sk, now, False):
        pending: int = o.pending
        if (not o.rtx_timer.pending or pending == _ICSK_TIME_PROBE0
                or pending == _ICSK_TIME_LOSS_PROBE):
            rearm_rto(sk, now)


def push_mark(sk: TcpCb, seq: int, end: int) -> int:
    """_TCPHDR_PSH if the data [seq, end) ends where a write() ended
    (tcp_sendmsg's tcp_mark_push on the write's last skb, remembered as
    pushed_seq) or where a write forced a push (push_marks), else 0.  It stays with the segment (its TxSeg's flags): a
    retransmission resends it (tcp_retransmit_skb), a split head loses it
    (tcp_fragment moves PSH to the tail)."""
    if sk is None:
        raise TypeError("push_mark: a TcpCb is required")
    pushed = u32(sk.pushed_seq)
    if before(seq, pushed) and not after(pushed, end):
        return _TCPHDR_PSH
    marks = sk.push_marks
    if marks:
        for mark in marks:
            if before(seq, u32(mark)) and not after(u32(mark), end):
                return _TCPHDR_PSH
    return 0


def copy_skbs(sk: TcpCb, data: Any, n: int, lowat: int, oob: bool, ref: bool) -> int:
    """tcp_sendmsg_locked's copy loop for a write that fills skbs (the first
    ``n`` bytes of ``data``, a flat byte memoryview; ``ref``: sq_ref_ok's
    answer for them): each is filled to the size goal (tcp_xmit_size_goal)
    and, full with data left, pushed: with a PSH mark where it ends when
    more than half the peer's largest window went unpushed (forced_push,
    tcp_mark_push, __tcp_push_pending_frames), else alone if it is the send
    head (tcp_push_one); an MSG_OOB write (``oob``) pushes only at its end.
    sk_stream_memory_free is asked only before a new skb, so with
    TCP_NOTSENT_LOWAT (``lowat``) a write stops once lowat or more bytes are
    unsent at an skb boundary, and may have filled the unsent tail skb (the
    remainder of one a push split) past it.  tcpio keeps no skbs: the
    unsent ones are taken to start at snd_nxt, size_goal apart.  The bytes
    copied.  Each push is core.tcp.tcp_output.tcp_push with TCP_NAGLE_PUSH
    (the set_xmit_hooks hook) at the host's time then.  Compiled: a 256 KiB
    write's loop was ~350 bytecodes and a dozen TcpCb field accesses from
    Python per skb (issues 11 and 12)."""
    if sk is None:
        raise TypeError("copy_skbs: a TcpCb is required")
    goal = xmit_size_goal(sk)
    marks = sk.push_marks
    if marks:
        # marks already sent live on in their segments' flags
        una = u32(sk.snd_una)
        marks[:] = [m for m in marks if after(m, una)]
    copied = 0
    while copied < n:
        unsent = seq_diff(sk.write_seq, sk.snd_nxt)
        room = goal - ((unsent - 1) % goal + 1) if unsent > 0 else 0
        if not room:
            if unsent >= lowat:
                break
            room = goal
        copy = min(room, n - copied)
        sq_append(sk.wq, data[copied:copied + copy], ref)
        sk.write_seq = u32(sk.write_seq + copy)
        copied += copy
        if copied == n or copy < room:
            break
        if oob:
            continue
        forced = after(sk.write_seq, u32(sk.pushed_seq + (sk.max_window >> 1)))
        if forced:
            sk.pushed_seq = sk.write_seq
            if sk.push_marks is None:
                sk.push_marks = []
            sk.push_marks.append(sk.write_seq)
        if forced or seq_diff(sk.write_seq, sk.snd_nxt) <= goal:
            assert _push is not None
            _push(sk, sk.host.now, _TCP_NAGLE_PUSH)
    return copied


def new_data_sent(sk: TcpCb, seq: int, end: int, flags: int, small: bool,
                  now: float) -> TxSeg:
    """tcp_event_new_data_sent + tcp_minshall_update for both send loops: a new
    segment [seq, end) (``flags``: its SYN/FIN/PSH bits) goes on sk.rtx; it
    is returned (a loop marks the last of a burst, _TCPCB_EOB)."""
    if sk is None:
        raise TypeError("new_data_sent: a TcpCb is required")
    if not sk.packets_out:
        assert _data_sent_idle is not None
        _data_sent_idle(sk, now)
    seg = TxSeg.__new__(TxSeg)
    seg.seq = seq
    seg.end_seq = end
    seg.flags = flags
    seg.sacked = 0
    seg.tstamp = now
    seg.retrans = 0
    sk.rtx.append(seg)
    sk.packets_out += 1
    sk.snd_nxt = end
    if small:
        sk.snd_sml = end
    return seg


def ip_select_ident_segs(sk: TcpCb, segs: int) -> int:
    """ip_select_ident_segs for a connected TCP socket: its datagram of
    ``segs`` segments takes the ID ``sk.inet_id`` and the socket's counter
    moves on by ``segs`` (a TSO frame's segments get consecutive IDs from the
    device), so a connection's segments are numbered one by one from a random
    start and say nothing about other traffic (Linux's "ipv4: avoid using
    shared IP generator for connected sockets", after the mixed-IPID
    off-path attacks)."""
    if sk is None:
        raise TypeError("ip_select_ident_segs: a TcpCb is required")
    ident = sk.inet_id & 0xFFFF
    sk.inet_id = (ident + segs) & 0xFFFF
    return ident


def _frame_hh(dst_mac: bytes | None, src_mac: bytes | None) -> int:
    """The Ethernet header's length for frames to ``dst_mac`` from
    ``src_mac`` (0 on an "ip" link: no MACs); ValueError for a MAC that is
    not 6 bytes."""
    if dst_mac is None:
        return 0
    if src_mac is None or len(dst_mac) != 6 or len(src_mac) != 6:
        raise ValueError("mac addresses must be 6 bytes")
    return 14


def _ts_val(sk: TcpCb, now: float) -> int:
    """The TSval of a segment sent now, -1 without timestamps (no option:
    the frame builders then ignore ts_ecr)."""
    return u32(tcp_time_stamp(now) + sk.ts_off) if sk.tstamp_ok else -1


def write_xmit(sk: TcpCb, mss: int, out: list[Any], ifindex: Any, dst_mac: bytes | None,
               src_mac: bytes | None, ttl: int, now: float, gso_max: int = 0,
               csum_partial: bool = False, max_segs: int = 0, fin_queued: bool = False) -> int:
    """tcp_write_xmit's loop for plain data segments (see the module docstring).

    ``fin_queued``: the user closed the sending side (tcp_send_fin), so the
    last byte of the send queue carries the FIN, as Linux marks it on the
    write queue's tail skb: the segment that ends at write_seq goes with FIN
    (its sequence space one more, its TxSeg flags FIN), past the cwnd test
    as tcp_cwnd_test lets the final FIN go.  A FIN with no data left to ride
    on goes alone, as tcp_send_fin's own skb: no payload, no PSH (the caller
    tells burst_sent it carried no data).

    PSH where Linux's wire has it: where a write ended (push_mark), and on
    the last segment of each burst of several, a burst being what Linux
    sends as one GSO skb (cwnd_quota segments, at most ``max_segs``, the
    TSO autosizing of core.tcp.tcp_output.tcp_tso_segs; 0: no bound).

    ``gso_max`` (the route's device takes TCP super-frames of up to that many
    bytes of IP datagram, Linux's sk_gso_max_size; 0: it does not): runs of
    full segments that go out back to back leave as one frame (a GsoFrame,
    its checksum partial with ``csum_partial``), which the device cuts into
    exactly the segments this loop decided on: each segment is still tested
    (cwnd, window, Nagle), recorded on sk.rtx and counted on its own, so
    retransmissions and probes stay segment-sized.  The super-frame's header
    is its first segment's, with the last one's PSH (as tcp_gso_segment
    gives PSH to the last segment only) and one IP ID per segment
    (ip_select_ident_segs)."""
    if sk is None:
        raise TypeError("write_xmit: a TcpCb is required")
    wq = sk.wq
    if wq is None:
        raise TypeError("tcp: the send queue must be a SndQueue")
    hh = _frame_hh(dst_mac, src_mac)
    if mss <= 0 or not 0 <= ttl <= 0xFF:
        raise ValueError("tcp: mss must be positive and ttl at most 255")
    wq_seq = sk.wq_seq
    write_seq = sk.write_seq
    # IPv6 (issue 17): the addresses once for the whole loop, and an IP
    # header 20 bytes longer
    addrs6 = addrs6_of(sk)
    ts_val = _ts_val(sk, now)
    ts_ecr = sk.ts_recent if sk.tstamp_ok else 0
    hdrs = 20 + 20 + 12 if sk.tstamp_ok else 20 + 20
    if addrs6 is not None:
        hdrs += 20
    # payload bytes a super-frame may carry (0: one frame per segment)
    gso_room = (gso_max - hdrs) // mss * mss if gso_max > hdrs + mss else 0
    sent = 0
    run_segs = 0        # segments in the frame being gathered
    run_seq = 0
    run_off = 0
    run_len = 0
    run_flags = 0
    burst = 0           # segments of the burst being sent (Linux's GSO skb)
    quota = 0           # its size at most (cwnd_quota when it started)
    more = xmit_more(sk, sk.snd_nxt, mss, fin_queued)
    while more:
        seq = sk.snd_nxt
        unsent = seq_diff(write_seq, seq)
        seglen = mss if mss < unsent else unsent
        # (seglen 0 only for a FIN alone: the FIN goes with the last data
        # when there is any)
        fin = fin_queued and seglen == unsent
        end = u32(seq + seglen + 1) if fin else u32(seq + seglen)
        # wq holds [wq_seq, write_seq): checked before anything changes
        off = u32(seq - wq_seq)
        if off + seglen > len(wq):
            raise RuntimeError("tcp: send buffer shorter than write_seq says")
        mark = push_mark(sk, seq, end) if seglen else 0
        seg = new_data_sent(sk, seq, end, mark | _TCPHDR_FIN if fin else mark, seglen < mss,
                            now)
        if not burst:
            quota = cwnd_quota(sk, 1)
            if 0 < max_segs < quota:
                quota = max_segs
        burst += 1
        more = xmit_more(sk, end, mss, fin_queued)
        # PSH where Linux's wire has it: the end of a write (push_mark), or
        # the last segment of a burst of several, which Linux sends as one
        # GSO skb and __tcp_transmit_skb gives PSH ("Force a PSH flag on all
        # (GSO) packets to expedite GRO flush at receiver")
        last = not more or burst == quota
        flags = _TCPHDR_ACK | _TCPHDR_PSH if mark or (last and burst > 1) else _TCPHDR_ACK
        if fin:
            flags |= _TCPHDR_FIN    # the last segment: it ends its frame (below)
        if mark or last:
            burst = 0
            seg.flags |= _TCPCB_EOB
        if run_segs:
            run_len += seglen
            run_segs += 1
        else:
            run_seq = seq
            run_off = off
            run_len = seglen
            run_segs = 1
        run_flags = flags
        sent += 1
        # a frame ends with the burst, with a PSH (the GSO frame gives it to
        # its last segment only) or when no other segment fits in it (a
        # short segment is the last one)
        if not more or flags != _TCPHDR_ACK or run_len + mss > gso_room:
            _xmit_run(sk, wq, out, ifindex, dst_mac, src_mac, hh, ttl, run_off,
                      run_len, run_segs, mss, run_seq, run_flags, ts_val, ts_ecr, csum_partial,
                      addrs6)
            run_segs = 0
    return sent


def ack_xmit(sk: TcpCb, out: list[Any], ifindex: Any, dst_mac: bytes | None,
             src_mac: bytes | None, ttl: int, now: float) -> None:
    """tcp_send_ack's bare ACK, <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> with the
    established options, as one whole frame appended to ``out``, for a
    connection whose segments xmit_path says go whole and that has no SACK
    block to send (sack_option_len 0) and nothing xmit_plain declines: the
    frame tcp_transmit_skb -> ip_queue_xmit_tcp builds for it (the same
    timestamp, window and IP ID, in that order), in one call; the caller
    counts it as the send loop's frames are counted (burst_sent, with no
    data).  A receiver ACKs each super-frame its reader frees room for
    (tcp_cleanup_rbuf): issue 12's in-memory bulk sends one per write."""
    if sk is None:
        raise TypeError("ack_xmit: a TcpCb is required")
    wq = sk.wq
    if wq is None:
        raise TypeError("tcp: the send queue must be a SndQueue")
    hh = _frame_hh(dst_mac, src_mac)
    if not 0 <= ttl <= 0xFF:
        raise ValueError("tcp: ttl at most 255")
    addrs6 = addrs6_of(sk)
    ts_val = _ts_val(sk, now)
    ts_ecr = sk.ts_recent if sk.tstamp_ok else 0
    window = tcp_select_window(sk)
    ident = ip_select_ident_segs(sk, 1)
    out.append((ifindex, _data_frame(sk, wq, 0, 0, dst_mac, src_mac, hh, ident, ttl,
                                     sk.snd_nxt, _TCPHDR_ACK, window, ts_val, ts_ecr, addrs6)))


def xmit_begin(sk: TcpCb, fin_queued: bool) -> int:
    """tcp_write_xmit's first test, in one call: the MSS of this call's
    segments (tcp_current_mss less the room for the SACK blocks each will
    carry, 48 at least), or 0 when nothing may go (xmit_more: the peer's
    window, cwnd, Nagle, a cork), the same first test both send loops
    make.  is_cwnd_limited starts the call False (xmit_test sets it when
    cwnd stops the loop, Linux's local is_cwnd_limited) and is left as it
    was when nothing may go.  A bulk writer whose peer's window is full
    pushes on every write and every flush of its transport's buffer."""
    if sk is None:
        raise TypeError("xmit_begin: a TcpCb is required")
    mss = current_mss(sk) - sack_option_len(sk)
    if mss < 48:
        mss = 48
    window_limited = sk.is_cwnd_limited
    sk.is_cwnd_limited = False
    if not xmit_more(sk, sk.snd_nxt, mss, fin_queued):
        sk.is_cwnd_limited = window_limited
        return 0
    return mss


def _hop_limit(host: Any, v6: bool) -> int:
    """The TTL of the host's IPv4 datagrams, or its IPv6 hop limit."""
    settings = host.settings
    return settings.ipv6_hop_limit if v6 else settings.ip_default_ttl


def write_burst(sk: TcpCb, mss: int, path: Any, now: float, window_limited: bool,
                fin_queued: bool) -> int:
    """tcp_write_xmit's burst where every segment goes whole (``path``,
    xmit_path's): the send loop (write_xmit) with the device's TSO limits
    (NetHost.gso_caps, recorded as sk_setup_caps' sk_gso_max_size: the size
    goal and TSO autosizing grow past 64 KiB with BIG TCP) and the IPv6 hop
    limit or the IPv4 TTL, then what tcp_transmit_skb and ip_output do per
    segment, in bulk (burst_sent), and tcp_write_xmit's end: xmit_done
    (``window_limited``: is_cwnd_limited before xmit_begin), or with nothing
    sent is_cwnd_limited as it was.  The segments sent (0: none).  One
    compiled call for what tcp_output's Python did in ~90 bytecodes: one
    burst per ACK of a bulk transfer."""
    if sk is None:
        raise TypeError("write_burst: a TcpCb is required")
    host = sk.host
    ifindex, dst_mac, src_mac, _src = path
    v6 = sk.raddr > _V6MASK
    ttl = _hop_limit(host, v6)
    d = sk.dst_cache
    if d is not None and d.path is path:
        # (the socket's dst, just checked by xmit_path: its caps, as
        # sk_setup_caps recorded them when the dst was set)
        gso_max = d.gso_max_size
        csum_partial = d.csum_partial
    else:
        gso_max, csum_partial = host.gso_caps(ifindex, v6)
    sk.gso_max_size = gso_max
    queue = host.tx_queue()
    queued = len(queue)
    # nothing unsent but a queued FIN: it goes alone (no data: no
    # tcp_event_data_sent for it, as tcp_transmit_skb's "if payload")
    data = sk.snd_nxt != sk.write_seq
    prior_packets = sk.packets_out
    n = write_xmit(sk, mss, queue, ifindex, dst_mac, src_mac, ttl, now, gso_max,
                   csum_partial, tso_segs(sk, mss), fin_queued)
    if n:
        burst_sent(sk, n, len(queue) - queued, v6, dst_mac is not None, now, data)
        xmit_done(sk, window_limited, prior_packets, now)
    else:
        sk.is_cwnd_limited = window_limited
    return n


def ack_whole(sk: TcpCb, path: Any, now: float) -> None:
    """tcp_send_ack's bare ACK where the send loop's frames go whole
    (``path``, xmit_path's: the route, a resolved neighbour, the queue
    running) and nothing asks for more than a plain ACK (no SACK block,
    xmit_plain; the caller checked): ack_xmit's frame with the IPv6 hop
    limit or the IPv4 TTL, counted as the send loop's frames are
    (burst_sent, no data).  One compiled call for what tcp_output's Python
    did in a dozen steps: a receiver sends one per super-frame its reader
    frees room for (issue 12's in-memory bulk, one per write)."""
    if sk is None:
        raise TypeError("ack_whole: a TcpCb is required")
    host = sk.host
    ifindex, dst_mac, src_mac, _src = path
    v6 = sk.raddr > _V6MASK
    ack_xmit(sk, host.tx_queue(), ifindex, dst_mac, src_mac, _hop_limit(host, v6), now)
    burst_sent(sk, 1, 1, v6, dst_mac is not None, now, False)


# a lone segment's checksum is left to the device from this size on (the
# 64 KiB segments of a MemoryWire or a TAP with a 64 KiB MTU); below it, a
# sum (~0.1 us per 1500 bytes) is cheaper than the GsoFrame it would need
_CSUM_OFFLOAD_MIN = 8192


def _xmit_run(sk: TcpCb, wq: SndQueue, out: list[Any], ifindex: Any, dst_mac: bytes | None,
              src_mac: bytes | None, hh: int, ttl: int, off: int, n: int, segs: int, mss: int,
              seq: int, flags: int, ts_val: int, ts_ecr: int, csum_partial: bool,
              addrs6: bytes | None) -> int:
    """Append the frame of ``segs`` segments (``wq[off:off + n]``) to ``out``:
    a plain frame for one, a GsoFrame for more, or for one big segment whose
    checksum the device completes (``csum_partial``, as Linux leaves it
    CHECKSUM_PARTIAL for a device with NETIF_F_HW_CSUM; its gso_size 0,
    gso_segs 1).  A segment under _CSUM_OFFLOAD_MIN bytes is summed here:
    that costs less than carrying a GsoFrame and its device header."""
    window = tcp_select_window(sk)
    ident = ip_select_ident_segs(sk, segs)     # one IP ID per segment
    if segs == 1 and (not csum_partial or n < _CSUM_OFFLOAD_MIN):
        out.append((ifindex, _data_frame(sk, wq, off, n, dst_mac, src_mac, hh, ident, ttl,
                                         seq, flags, window, ts_val, ts_ecr, addrs6)))
        return 0
    frame = _data_frame(sk, wq, off, n, dst_mac, src_mac, hh, ident, ttl, seq, flags, window,
                        ts_val, ts_ecr, addrs6, csum_partial, True)
    out.append((ifindex, gso_frame(frame, mss if segs > 1 else 0, segs, csum_partial)))
    return 0


# --- the retransmit queue on an ACK --------------------------------------------------------------

def rack_advance(sk: TcpCb, retrans: int, end_seq: int, xmit_time: float, now: float) -> None:
    """tcp_rack_advance (RFC 8985 6.2 step 2): a segment sent at ``xmit_time``
    was just (S)ACKed.  RACK.rtt becomes its RTT and RACK.xmit_ts/end_seq move
    to it if it was sent after the one they name (ties by end_seq).  A
    retransmitted segment is ambiguous (the original may be what arrived):
    it counts only if its RTT is at least min_rtt."""
    if sk is None:
        raise TypeError("rack_advance: a TcpCb is required")
    rtt = now - xmit_time
    if retrans and rtt < sk.min_rtt:
        return
    sk.rack_advanced = True
    sk.rack_rtt = rtt
    if xmit_time > sk.rack_mstamp or (xmit_time == sk.rack_mstamp
                                      and after(end_seq, sk.rack_end_seq)):
        sk.rack_mstamp = xmit_time
        sk.rack_end_seq = end_seq


def clean_rtx_queue(sk: TcpCb, now: float = -1.0, fack: int = -1) -> tuple[int, float | None, bool]:
    """tcp_clean_rtx_queue's walk of the retransmit queue (see the module
    docstring).  With ``now`` (>= 0) each acknowledged segment not SACKed
    before also advances RACK, and one never retransmitted that ends below
    ``fack`` (the highest SACKed sequence before this ACK, -1: none) was
    reordered: ``sk.reord_seen`` counts it (RFC 8985 6.2 step 3)."""
    if sk is None:
        raise TypeError("clean_rtx_queue: a TcpCb is required")
    rtx = sk.rtx
    ack = sk.snd_una
    n = 0
    count = len(rtx)
    first_tx: float | None = None
    retrans_acked = False
    reord = False
    while n < count:
        item = rtx[n]
        if cython.compiled:
            # seg's fields are read as C fields of a TxSeg: refuse anything
            # else, then take it as one without a second test.
            if not isinstance(item, TxSeg):
                raise TypeError("tcp: the retransmit queue holds TxSeg records only")
            seg = cython.cast(TxSeg, item)
        else:
            seg = item      # interpreted: any record with these attributes
        if before(ack, seg.end_seq):
            # partially acked: trim the head (tcp_trim_head).  (A SYN is one
            # sequence number, so never partly acked.)
            if before(seg.seq, ack) and not seg.flags & _TCPHDR_SYN:
                seg.seq = ack
            break
        s = seg.sacked
        if s & _TCPCB_SACKED_RETRANS:
            sk.retrans_out -= 1
            retrans_acked = True
        if s & _TCPCB_SACKED_ACKED:
            sk.sacked_out -= 1
        elif s & _TCPCB_LOST:
            sk.lost_out -= 1
        if not seg.retrans and first_tx is None and not s & _TCPCB_SACKED_ACKED:
            first_tx = seg.tstamp
        if now >= 0.0 and not s & _TCPCB_SACKED_ACKED:
            if fack >= 0 and not seg.retrans and before(seg.end_seq, fack):
                reord = True
            rack_advance(sk, seg.retrans, seg.end_seq, seg.tstamp, now)
        n += 1
    if reord:
        sk.reord_seen += 1
    if n:
        del rtx[:n]
        sk.packets_out -= n
    if sk.packets_out == 0:
        sk.sacked_out = sk.lost_out = sk.retrans_out = 0
    # free acknowledged bytes (the SYN and FIN take sequence space but no bytes)
    data_end = sk.write_seq if before(sk.write_seq, ack) else ack
    freed = seq_diff(data_end, sk.wq_seq)
    if freed > 0:
        sq_consume(sk.wq, freed)
        sk.wq_seq = data_end
    return n, first_tx, retrans_acked


# --- the ACK of new data (tcp_ack's common case) ------------------------------------------------

def may_update_window(sk: TcpCb, ack: int, seq: int, nwin: int) -> bool:
    """tcp_may_update_window (RFC 9293 3.10.7.4's SND.WL1/WL2 rule): an ACK
    of new data, a newer segment, or the same one with a larger (or a zero)
    window (``nwin``, already scaled) may update the send window.  Also
    PAWS's disordered-ACK exemption (tcp_input.tcp_disordered_ack_check)."""
    if sk is None:
        raise TypeError("may_update_window: a TcpCb is required")
    return (after(ack, sk.snd_una) or after(seq, sk.snd_wl1)
            or (seq == sk.snd_wl1 and (nwin > sk.snd_wnd or not nwin)))


def ack_update_window(sk: TcpCb, seq: int, ack: int, nwin: int) -> int:
    """tcp_ack_update_window: an ACK that may update the window
    (may_update_window) takes ``nwin`` (already scaled); FLAG_WIN_UPDATE if
    it changed.  Before snd_una moves to ``ack``."""
    if sk is None:
        raise TypeError("ack_update_window: a TcpCb is required")
    if may_update_window(sk, ack, seq, nwin):
        sk.snd_wl1 = seq
        if sk.snd_wnd != nwin:
            sk.snd_wnd = nwin
            if nwin > sk.max_window:
                sk.max_window = nwin
            return _FLAG_WIN_UPDATE
    return 0


def ack_rtt(sk: TcpCb, first_tx: float, retrans_acked: bool, ts_ecr: int, now: float) -> float:
    """tcp_clean_rtx_queue's RTT sample for an ACK that moved snd_una: the
    time since the first segment it acknowledged was sent (``first_tx``; -1:
    none never retransmitted) unless a retransmission was acknowledged
    (Karn), else the timestamp echo (RFC 7323 4.1).  The estimator and
    min_rtt take it; returns it in seconds, -1 for none."""
    if sk is None:
        raise TypeError("ack_rtt: a TcpCb is required")
    rtt = -1.0
    if first_tx >= 0.0 and not retrans_acked:
        rtt = now - first_tx
    elif sk.tstamp_ok and ts_ecr:
        d = u32(tcp_time_stamp(now) + sk.ts_off - ts_ecr)
        if d < 0x7FFFFFFF:
            rtt = d / 1000.0
    if rtt >= 0.0:              # (never negative: sent before now)
        o: Any = sk
        est = o.rtt_est
        est.sample(rtt)
        if est.backoff_count:   # (rarely: no method call on every ACK for nothing)
            est.reset_backoff()
        if not sk.min_rtt or rtt < sk.min_rtt:
            sk.min_rtt = rtt
    return rtt


def cwnd_limited(sk: TcpCb) -> bool:
    """tcp_is_cwnd_limited: only grow cwnd when it was actually used: the
    window was cwnd-limited, or (slow start) cwnd < 2 * max_packets_out
    (tcp_output.tcp_cwnd_validate keeps both per window)."""
    if sk is None:
        raise TypeError("cwnd_limited: a TcpCb is required")
    if sk.is_cwnd_limited:
        return True
    o: Any = sk
    return sk.snd_cwnd < o.snd_ssthresh and sk.snd_cwnd < 2 * o.max_packets_out


def sndbuf_expand(sk: TcpCb) -> None:
    """tcp_sndbuf_expand: room for twice the congestion window, unless locked."""
    if sk is None:
        raise TypeError("sndbuf_expand: a TcpCb is required")
    o: Any = sk
    if o.opts.sndbuf_locked:
        return
    cap: int = sk.host.settings.tcp_wmem[2]
    want = 2 * sk.snd_cwnd * sk.mss_cache * 2
    if cap < want:
        want = cap
    if want > sk.sndbuf:
        sk.sndbuf = want


def rto_delta(sk: TcpCb, now: float) -> float:
    """tcp_rto_delta_us: how far in the future the RTO of the oldest
    outstanding segment is (its last transmission + RTO)."""
    if sk is None:
        raise TypeError("rto_delta: a TcpCb is required")
    o: Any = sk
    rto: float = o.rtt_est.rto
    rtx = sk.rtx
    if not rtx:
        return rto
    head: Any = rtx[0]
    return head.tstamp + rto - now


def rearm_rto(sk: TcpCb, now: float) -> None:
    """Restart the RTO after forward progress (RFC 6298 5.3).  When the timer
    was standing in for the RTO as a loss probe or RACK's reordering timer,
    the RTO keeps its original deadline (the head's send time + RTO), as
    Linux's tcp_rearm_rto does, so probing never postpones it."""
    if sk is None:
        raise TypeError("rearm_rto: a TcpCb is required")
    o: Any = sk
    pending: int = o.pending
    if not sk.packets_out:
        # (sk.pending is read only while the timer is armed: no reset needed;
        # the loss probe and the reordering timer go with the RTO)
        if pending == _ICSK_TIME_RETRANS or pending >= _ICSK_TIME_LOSS_PROBE:
            o.rtx_timer.cancel()
            o.pending = 0
        return
    rto: float
    if pending >= _ICSK_TIME_LOSS_PROBE:
        rto = rto_delta(sk, now)
        if rto < 0.000001:
            rto = 0.000001
    else:
        rto = o.rtt_est.rto
    o.pending = _ICSK_TIME_RETRANS
    timer = o.rtx_timer
    if timer is NO_TIMER:
        timer = o.rtx_timer_made()
    timer.arm(now + rto)


def schedule_loss_probe(sk: TcpCb, now: float, advancing_rto: bool) -> bool:
    """Arm the loss-probe timer instead of the RTO when RFC 8985 7.2 allows:
    SACK negotiated, data outstanding, no recovery under way (Open or CWR),
    net.ipv4.tcp_early_retrans 3 or 4.  PTO = 2*SRTT, plus the peer's
    worst-case delayed ACK (tcp_rto_min) when one segment is in flight, else
    plus 2 ms; 1 s without an RTT sample; never later than the RTO would fire
    (``advancing_rto``: the RTO is being restarted now, a full RTO away)."""
    if sk is None:
        raise TypeError("schedule_loss_probe: a TcpCb is required")
    o: Any = sk
    packets_out = sk.packets_out
    if (not packets_out or not o.sack_ok
            or (sk.ca_state != _TCP_CA_OPEN and sk.ca_state != _TCP_CA_CWR)):
        return False
    st = sk.host.settings
    early: int = st.tcp_early_retrans
    if early != 3 and early != 4:
        return False
    est = o.rtt_est
    timeout: float
    if est.has_sample:
        srtt: float = est.srtt
        extra: float = st.tcp_rto_min if packets_out == 1 else _TCP_TIMEOUT_MIN
        timeout = 2 * srtt + extra
    else:
        timeout = _TCP_TIMEOUT_INIT
    delta: float = est.rto
    if not advancing_rto:
        rtx = sk.rtx
        if rtx:
            head: Any = rtx[0]
            delta += head.tstamp - now      # tcp_rto_delta
    if 0 < delta < timeout:
        timeout = delta
    o.pending = _ICSK_TIME_LOSS_PROBE
    timer = o.rtx_timer
    if timer is NO_TIMER:
        timer = o.rtx_timer_made()
    timer.arm(now + timeout)
    return True


def ack_fast(sk: TcpCb, seq: int, ack: int, window: int, ts_ecr: int, now: float) -> bool:
    """tcp_ack, compiled, for the ACK a bulk sender sees all the time: it
    acknowledges new data (snd_una < ack <= snd_nxt) in the Open state with
    nothing SACKed, no loss probe, urgent data, zero-window probe or RACK
    reordering-window adaptation pending, and no SACK blocks (the caller's:
    header prediction takes none).  Then tcp_ack's steps for it are: the
    window (ack_update_window), snd_una, the retransmit queue and the RTT
    sample (clean_rtx_queue, ack_rtt, the CC module's pkts_acked), cwnd
    growth when cwnd-limited (cong_avoid, sndbuf_expand), the loss probe or
    the RTO re-armed, the writer woken.  True: done; False: nothing changed,
    the caller runs core.tcp.tcp_input.tcp_ack (which uses the same pieces)."""
    if sk is None:
        raise TypeError("ack_fast: a TcpCb is required")
    o: Any = sk
    if (not after(ack, sk.snd_una) or after(ack, sk.snd_nxt) or sk.ca_state != _TCP_CA_OPEN
            or sk.sacked_out or o.tlp_high_seq is not None or o.snd_up is not None
            or o.rack_dsack_seen or o.rack_reo_wnd_steps != 1
            or o.pending == _ICSK_TIME_PROBE0):
        return False
    nwin = window
    nwin <<= sk.snd_wscale
    ack_update_window(sk, seq, ack, nwin)
    o.retransmits = 0
    sk.probes_out = 0
    sk.snd_una = ack
    # (nothing SACKed: no highest SACK to find reordering below, fack -1)
    res = clean_rtx_queue(sk, now, -1)
    acked: int = res[0]
    first = res[1]
    rtt = ack_rtt(sk, -1.0 if first is None else first, res[2], ts_ecr, now)
    ca_ops = o.ca_ops
    if acked:
        ca_ops.pkts_acked(o, acked, None if rtt < 0.0 else rtt, now)
    if sk.packets_out == 0 and o.backoff and sk.snd_wnd:
        o.backoff = 0
    # Open, nothing SACKed before or after: every segment acked is delivered
    if acked and cwnd_limited(sk):
        ca_ops.cong_avoid(o, acked, now)
        sndbuf_expand(sk)
    if sk.retrans_out == 0:
        o.retrans_stamp = None
    if not schedule_loss_probe(sk, now, True):
        rearm_rto(sk, now)
    check_space(sk)             # send space freed: a writer waiting for it?
    return True


def check_space(sk: TcpCb) -> None:
    """tcp_check_space after an ACK freed send space, in ESTABLISHED or
    CLOSE_WAIT: wake the writer only if one found the buffer full
    (SOCK_NOSPACE) and the buffer is writeable again
    (sk_stream_write_space: free space at least half of what is queued,
    __sk_stream_is_writeable's memory test), clearing the flag.  Linux
    tests TCP_NOTSENT_LOWAT's half too, after tcp_data_snd_check's push;
    here the glue, woken after the batch's push, asks stream_writeable()
    itself, which sets the flag again if the unsent bytes still say no.
    Woken on every ACK instead, a sender of 1000 small flows ran its
    transport for nothing 7 times in 8 (issue 11, bench_flows_path.py)."""
    if sk is None:
        raise TypeError("check_space: a TcpCb is required")
    if not sk.nospace:
        return
    queued = sk.wq.nbytes
    free = sk.sndbuf - queued
    if free > 0 and free >= queued >> 1:
        sk.nospace = False
        sk.host.schedule_wakeup(sk)


def data_snd_check(sk: TcpCb, now: float) -> None:
    """tcp_data_snd_check: send what the ACKs just processed allow, if
    anything (data or a FIN) is unsent.  Compiled with batch_end and
    send_ack_or_coalesce: at 1000 small flows each ACK a sender reads ends a
    batch of its own, and these three were ~1500 Python calls and ~4500
    field reads of this cdef class per MiB from Python (issue 11)."""
    if sk is None:
        raise TypeError("data_snd_check: a TcpCb is required")
    o: Any = sk
    if sk.state == _TCP_CLOSE or sk.state == _TCP_TIME_WAIT or sk.dead:
        return
    if sk.write_seq != sk.snd_nxt or o.fin_queued:
        assert _write_xmit is not None
        _write_xmit(sk, now)


def batch_end(sk: TcpCb, now: float) -> None:
    """A receive batch's end for ``sk`` (host.defer_to_batch_end, once per
    socket however often asked): what the batch's ACKs let it send
    (data_snd_check, deferred by data_snd_check_batched), then the one ACK
    for the batch's data unless a segment just sent carried it (Linux's
    order: tcp_data_snd_check, then tcp_ack_snd_check)."""
    if sk is None:
        raise TypeError("batch_end: a TcpCb is required")
    data_snd_check(sk, now)
    if sk.ack_pending and not sk.dead:
        assert _send_ack_now is not None
        _send_ack_now(sk, now)


# ACK coalescing: at most this much newly received data waits for the end of
# a receive batch before its ACK goes (GRO's largest aggregate, 64 KiB).
ACK_COALESCE_MAX = 65536


def send_ack_or_coalesce(sk: TcpCb, now: float) -> None:
    """__tcp_ack_snd_check decided to ACK now (two full segments unacked, or
    quick-ACK mode, or out-of-order data).  Linux makes that decision once
    per GRO aggregate, not per segment: in-order segments of one flow
    arriving together get one ACK for all of them.  So inside a receive
    batch the ACK for in-order data waits for the batch's end
    (``host.defer_to_batch_end``: batch_end), unless 64 KiB are already
    unacknowledged; an ACK with a hole (out-of-order data: dupACKs with SACK
    blocks, which the sender counts) goes at once."""
    if sk is None:
        raise TypeError("send_ack_or_coalesce: a TcpCb is required")
    if (sk.ofo or seq_diff(sk.rcv_nxt, sk.rcv_wup) >= ACK_COALESCE_MAX
            or not sk.host.defer_to_batch_end(_batch_end_obj, sk)):
        assert _send_ack_now is not None
        _send_ack_now(sk, now)


# batch_end as the object host.defer_to_batch_end keeps (one, not a new
# bound wrapper per call)
_batch_end_obj: Any = batch_end


def data_snd_check_batched(sk: TcpCb, now: float) -> None:
    """tcp_data_snd_check after a segment without data (a bare ACK).  Inside
    a receive batch what the ACKs allow goes once, at the batch's end
    (tcp_batch_end), with every ACK of the batch processed: the frames leave
    together after the batch either way, and a bulk sender reads its ACKs
    in batches of tens, each of which ran tcp_write_xmit's whole setup
    (route, MSS, TSO size, timers) for two or three segments (issue 12).
    cwnd, the window and Nagle decide as before, on the state all those ACKs
    left.  (A segment with data sends at once: what goes then carries the
    ACK that __tcp_ack_snd_check would otherwise send alone.)"""
    if sk is None:
        raise TypeError("data_snd_check_batched: a TcpCb is required")
    assert _data_snd_check is not None
    if _batch_end is None or not sk.host.defer_to_batch_end(_batch_end, sk):
        _data_snd_check(sk, now)


def _ack_bare(sk: TcpCb, seq: int, ack: int, window: int, ts_ecr: int, now: float) -> int:
    """core.tcp.tcp_input.tcp_ack_predicted for a bare ACK, without its call
    when ack_fast takes it (1): ack_fast, then data_snd_check_batched.  0:
    nothing changed (ack_fast declined, or the hooks are not installed)."""
    if not _ack_bypass or not ack_fast(sk, seq, ack, window, ts_ecr, now):
        return 0
    data_snd_check_batched(sk, now)
    return 1
