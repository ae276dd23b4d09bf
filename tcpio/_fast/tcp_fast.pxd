# cython: language_level=3
# The C types of tcp_fast.py, the one source of TCP's established-state paths.
#
# Cython reads this file next to tcp_fast.py ("augmenting .pxd", pure Python
# mode): the classes become cdef classes with C fields, the functions below
# cdef/cpdef functions with C arguments and locals; the interpreted build runs
# tcp_fast.py as it is and never reads this file.  rx.pyx ``cimport``s TcpCb
# and _rcv_established_c (and _rcv_window_ack_c) from here, so a received
# segment enters the fast path as one C call from the per-frame classifier.
cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from libc.stdint cimport int32_t, uint32_t

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy

from tcpio._fast._buf cimport ba_append, ba_consume, rbuf, rbuf_get, rbuf_release
from tcpio._fast.tx cimport DstGen, TcpDst, tcp_data_frame, tcp_data_frame6


cdef class RttEstimator:
    # C fields only: not tracked by the cycle collector (issue 11)
    cdef public double _base_rto, _rttvar, _srtt, granularity, rto_initial, rto_max, rto_min
    cdef public long long backoff_count
    cdef public bint has_sample


cdef class RcvQueue:
    # the receive queue (tcp_fast.RcvQueue): chunks, oldest first
    cdef public object chunks
    cdef public Py_ssize_t nbytes, head
    cdef public bytearray tail


cdef class SndQueue:
    # the send queue (tcp_fast.SndQueue): chunks, oldest first (a list, or
    # the shared empty tuple)
    cdef public object chunks
    cdef public Py_ssize_t nbytes, head
    cdef public bytearray tail


cdef class RcvPool:
    cdef public long long size, least, most, epoch, cur, prev, nbytes
    cdef public double wait, wait_prev


cdef class TcpCb:
    # The fields the established fast path reads and writes (struct tcp_sock
    # names).  Everything else lives on the Python subclass (core.tcp.sock.TcpSock).
    cdef public long long state, ca_state
    cdef public long long rcv_nxt, rcv_wup, rcv_wnd, rcv_mss, rcv_wscale, rcvbuf
    cdef public long long window_clamp, ofo_bytes, advmss, quick
    cdef public long long pingpong
    cdef public long long snd_una, snd_nxt, snd_wnd, snd_wscale
    cdef public long long ts_recent, ts_off
    cdef public bint tstamp_ok, got_data, ack_pending, dead
    cdef public double rcv_tstamp, ts_recent_stamp, rcv_rtt
    cdef public RcvQueue rq
    cdef public object ofo, urg_seq, host, delack_timer
    # the send side (write_xmit)
    # The addresses are Python ints: IPv4 ones (0..2**32-1) or TCP's tagged
    # IPv6 ones (core.tcp.tcp_ipv6.V6TAG | address, 129 bits); both reach
    # the compiled frame builders (tx.tcp_data_frame / tcp_data_frame6).
    cdef public object laddr, raddr
    cdef public long long lport, rport
    cdef public long long snd_cwnd, packets_out, sacked_out, lost_out, retrans_out
    cdef public long long probes_out
    cdef public long long snd_sml, write_seq, wq_seq, pushed_seq
    cdef public object push_marks
    cdef public bint nodelay, is_cwnd_limited
    cdef public long long nonagle
    cdef public SndQueue wq
    cdef public list rtx
    # RACK (rack_advance, clean_rtx_queue)
    cdef public double min_rtt, rack_mstamp, rack_rtt
    cdef public long long rack_end_seq, reord_seen
    cdef public bint rack_advanced
    # tracing (tcpio.core.tcp.tcp_trace.SockTracer or None): set, the fast
    # paths decline and the traced segments take the general path
    cdef public object trace
    cdef public long long segs_in
    cdef public double lrcvtime
    # a listener's last cookie SYN-ACK (tcp_synq_overflow; syn_fast writes it)
    cdef public double last_synq_overflow
    # the IP ID of the connection's next segment (inet_id)
    cdef public long long inet_id
    # sk_gso_max_size: the datagram size the route's device takes (BIG TCP
    # above 64 KiB; 0: the legacy 64 KiB), as the send loop last saw it
    cdef public long long gso_max_size
    # Not read by the fast paths: C fields so that an idle connection keeps
    # no int object per value (issue 11: memory per idle socket)
    cdef public long long iss, irs, snd_wl1, max_window, sndbuf, mss_cache, mss_clamp
    # the receive pool (RcvPool; None: none) and the epoch this connection
    # was last counted a receiver in, plus one (0: never)
    cdef public RcvPool rcv_pool
    cdef public long long rcv_epoch
    # SOCK_NOSPACE: a writer found the send buffer full (check_space)
    cdef public bint nospace
    # sk_dst_cache (tx.TcpDst; sk_dst_check)
    cdef public TcpDst dst_cache


cdef class TxSeg:
    cdef public long long seq, end_seq, flags, sacked, retrans
    cdef public double tstamp


cdef object _send_ack, _data_sent_idle, _ack_predicted, _data_snd_check, _batch_end
cdef object _write_xmit, _send_ack_now, _batch_end_obj, _push
cdef long long _TCP_TIME_WAIT, _TCP_CLOSE
cdef bint _ack_bypass
# C constants, not module objects, in the compiled arithmetic
cdef long long _TCP_ESTABLISHED, _TCP_FIN_WAIT1, _TCP_FIN_WAIT2, _RCV_SHUTDOWN, _TCP_CA_OPEN, _TCP_MAX_QUICKACKS, _MAX_TCP_WINDOW
cdef long long _TCPHDR_FIN, _TCPHDR_SYN, _TCPHDR_PSH, _TCPHDR_ACK, _FLAG_DATA
cdef Py_ssize_t _CSUM_OFFLOAD_MIN
cdef long long _TCP_NAGLE_CORK, _TCP_NAGLE_PUSH, _TCPCB_EOB
cdef long long _TCPCB_SACKED_ACKED, _TCPCB_SACKED_RETRANS, _TCPCB_LOST
cdef long long _U32_MASK, _U32_HALF, _U32_MOD
cdef long long _GSO_LEGACY_MAX_SIZE
cdef long long _TCP_CA_CWR, _TCP_CA_RECOVERY, _FLAG_WIN_UPDATE
cdef long long _ICSK_TIME_RETRANS, _ICSK_TIME_PROBE0, _ICSK_TIME_LOSS_PROBE
cdef double _TCP_TIMEOUT_INIT, _TCP_TIMEOUT_MIN, _SRTT_MIN, _TSO_RATE_MAX
cdef long long _CA_EVENT_TX_START

# sequence space (include/net/tcp.h before/after)
cpdef uint32_t u32(long long x) noexcept
@cython.locals(d=cython.longlong)
cpdef int32_t seq_diff(uint32_t a, uint32_t b) noexcept
cpdef bint before(uint32_t a, uint32_t b) noexcept
cpdef bint after(uint32_t a, uint32_t b) noexcept

cpdef uint32_t tcp_time_stamp(double now) noexcept
cdef void _store_ts_recent(TcpCb sk, uint32_t seq, bint has_ts, uint32_t ts_val,
                                 double now) noexcept
cpdef long long receive_window(TcpCb sk) except -1
cdef Py_ssize_t _RQ_REF_MIN, _RQ_TAIL_MAX
cdef object _immutable_base(object data, Py_ssize_t n, Py_ssize_t ref_min)
cdef object _ref_view(object owner, Py_ssize_t off, Py_ssize_t n)
@cython.locals(b=rbuf, n=Py_ssize_t)
cdef int _rq_push(RcvQueue rq, object data) except -1
cdef object _rq_chunks(RcvQueue rq)
cdef int _rq_push_ref(RcvQueue rq, object view, Py_ssize_t n) except -1
cdef int _rq_push_copy(RcvQueue rq, const unsigned char* data, Py_ssize_t n) except -1
cdef Py_ssize_t _rq_copy(RcvQueue rq, unsigned char* dst, Py_ssize_t n) except -1
@cython.locals(b=rbuf, done=Py_ssize_t, size=Py_ssize_t, k=Py_ssize_t)
cdef Py_ssize_t _chunks_copy(object chunks, Py_ssize_t pos, Py_ssize_t n,
                             unsigned char* dst) except -1
cdef bytes _rq_join(RcvQueue rq, Py_ssize_t n)
@cython.locals(w=Py_buffer, size=Py_ssize_t)
cdef Py_ssize_t _rq_take_into(RcvQueue rq, object buf, Py_ssize_t n, bint consume) except -1

@cython.locals(n=cython.longlong, share=cython.longlong, least=cython.longlong)
cpdef long long rcv_pool_share(RcvPool pool, long long advmss) except -1
@cython.locals(size=cython.longlong)
cdef void _rcv_pool_enter(RcvPool pool, long long e) noexcept
@cython.locals(e=cython.longlong)
cdef long long _rcv_pool_epoch(RcvPool pool, double now) noexcept
@cython.locals(e=cython.longlong, pool=RcvPool)
cpdef rcv_pool_note(TcpCb sk, double now, long long n)
@cython.locals(share=cython.longlong)
cpdef long long rcv_pool_open(RcvPool pool, double now, long long advmss, long long wnd) except -1
@cython.locals(mss=cython.longlong, full=cython.longlong, free=cython.longlong,
               window=cython.longlong, gran=cython.longlong, unit=cython.longlong,
               share=cython.longlong)
cpdef long long select_window(TcpCb sk) except -1
@cython.locals(cur=cython.longlong, new=cython.longlong, gran=cython.longlong)
cpdef long long tcp_select_window(TcpCb sk) except -1

@cython.locals(d=uint32_t, sample=double)
cpdef double rcv_rtt_update(double rcv_rtt, long long ts_off, uint32_t ts_ecr, double now) noexcept
cpdef event_data_recv(TcpCb sk, long long n, long long gso_size=*)
@cython.locals(quick=cython.longlong)
cpdef incr_quickack(TcpCb sk, long long max_quickacks)
cpdef bint in_pingpong_mode(TcpCb sk) except -1
@cython.locals(o=object, state=cython.longlong, shutdown=cython.longlong, cur=cython.longlong,
               new=cython.longlong, least=cython.longlong)
cpdef bint cleanup_rbuf_ack(TcpCb sk) except -1
@cython.locals(o=object, est=object, rtt=double, rcvq_time=double, copied_seq=uint32_t,
               copied=cython.longlong, want=cython.longlong, cap=cython.longlong)
cpdef rcv_space_adjust(TcpCb sk, double now)
@cython.locals(o=object)
cpdef recv_done(TcpCb sk, double now)
cpdef event_data_sent(TcpCb sk, double now)
cpdef ack_snd_check(TcpCb sk, double now)
@cython.locals(shifted=cython.longlong, new_ack=bint)
cdef int _rcv_established_c(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window,
                           bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                           const unsigned char* data, Py_ssize_t n, double now,
                           bint new_ack_data=*, long long segs=*,
                           long long gso_size=*, object owner=*, Py_ssize_t off=*,
                           bint counted=*) except -1
@cython.locals(b=rbuf)
cpdef bint rcv_established(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window, bint has_ts,
                           uint32_t ts_val, uint32_t ts_ecr, data, double now,
                           bint new_ack_data=*, long long segs=*,
                           long long gso_size=*, bint counted=*) except -1

@cython.locals(shifted=cython.longlong)
cdef int _rcv_window_ack_c(TcpCb sk, long long flags, uint32_t seq, uint32_t ack,
                           uint32_t window, bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                           Py_ssize_t n, double now, bint counted=*, long long segs=*) except -1
cpdef bint rcv_window_ack(TcpCb sk, long long flags, uint32_t seq, uint32_t ack,
                          uint32_t window, bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                          Py_ssize_t n, double now, bint counted=*, long long segs=*) except -1
cpdef bint xmit_test(TcpCb sk, uint32_t seq, uint32_t end, long long seglen, long long mss,
                     bint fin) except -1
@cython.locals(unsent=cython.longlong, seglen=cython.longlong, fin=bint)
cpdef bint xmit_more(TcpCb sk, uint32_t seq, long long mss, bint fin_queued) except -1
@cython.locals(cwnd=cython.longlong, room=cython.longlong, half=cython.longlong)
cpdef long long packets_in_flight(TcpCb sk) noexcept
cpdef long long cwnd_quota(TcpCb sk, long long sent) except -1
@cython.locals(mss=cython.longlong, mw=cython.longlong, cutoff=cython.longlong)
cpdef long long current_mss(TcpCb sk) except -1
cpdef long long half_wnd_cutoff(long long max_window) noexcept
cpdef long long sk_gso_max_size(TcpCb sk) noexcept
@cython.locals(o=object, est=object, srtt=double, size=cython.longlong, cwnd=cython.longlong,
               ssthresh=cython.longlong, ratio=cython.longlong, segs=cython.longlong,
               rate=double, n=cython.longlong, r=cython.longlong, least=cython.longlong)
cpdef long long tso_segs(TcpCb sk, long long mss) except -1
@cython.locals(o=object, usage=uint32_t, most=cython.longlong)
cpdef cwnd_validate(TcpCb sk, bint is_cwnd_limited)
cpdef dec_quickack_mode(TcpCb sk)
cpdef event_ack_sent(TcpCb sk)
@cython.locals(o=object, lsndtime=object, rto=double, last=double, idle=double,
               restart=cython.longlong, cwnd=cython.longlong)
cpdef data_sent_idle(TcpCb sk, double now)
@cython.locals(o=object, n=cython.longlong, room=cython.longlong)
cpdef long long sack_option_len(TcpCb sk) except -1
@cython.locals(mss=cython.longlong, size=cython.longlong, cutoff=cython.longlong,
               segs=cython.longlong)
cpdef long long xmit_size_goal(TcpCb sk) except -1
@cython.locals(o=object, opts=object)
cpdef bint xmit_plain(TcpCb sk) except -1
@cython.locals(d=TcpDst, raddr=object)
cpdef TcpDst sk_dst_check(TcpCb sk, double now)
@cython.locals(d=TcpDst, o=object)
cpdef long long dst_mtu(TcpCb sk, double now) except? -1
@cython.locals(host=object, length=cython.longlong, raddr=object, path=object, d=TcpDst,
               now=double, neigh=object)
cpdef object xmit_path(TcpCb sk, long long mss)
@cython.locals(o=object, mib=object)
cpdef burst_sent(TcpCb sk, long long n, long long frames, bint v6, bint eth, double now,
                 bint data=*)
@cython.locals(o=object, limited=bint, pending=cython.longlong)
cpdef xmit_done(TcpCb sk, bint window_limited, long long prior_packets, double now)
@cython.locals(pushed=uint32_t)
cpdef long long push_mark(TcpCb sk, uint32_t seq, uint32_t end) except -1
@cython.locals(goal=cython.longlong, marks=object, una=uint32_t, copied=cython.longlong,
               unsent=cython.longlong, room=cython.longlong, copy=cython.longlong,
               forced=bint)
cpdef long long copy_skbs(TcpCb sk, data, long long n, long long lowat, bint oob,
                          bint ref) except -1
@cython.locals(seg=TxSeg)
cpdef TxSeg new_data_sent(TcpCb sk, uint32_t seq, uint32_t end, long long flags, bint small,
                          double now)
@cython.locals(ident=cython.longlong)
cpdef long long ip_select_ident_segs(TcpCb sk, long long segs) except -1
@cython.locals(base=cython.p_const_uchar, b=rbuf, pos=Py_ssize_t, size=Py_ssize_t)
cdef object _data_frame(TcpCb sk, SndQueue wq, Py_ssize_t off, Py_ssize_t seglen, dst_mac,
                        src_mac, Py_ssize_t hh, uint32_t ident, uint32_t ttl, uint32_t seq,
                        uint32_t flags, uint32_t window, long long ts_val, uint32_t ts_ecr,
                        bytes addrs6, bint partial=*, bint gso=*)
@cython.locals(at=Py_ssize_t)
cdef object _data_frame_spread(TcpCb sk, SndQueue wq, Py_ssize_t off, Py_ssize_t seglen,
                               dst_mac, src_mac, Py_ssize_t hh, uint32_t ident, uint32_t ttl,
                               uint32_t seq, uint32_t flags, uint32_t window, long long ts_val,
                               uint32_t ts_ecr, bytes addrs6, bint gso)
cpdef bytes addrs6_of(TcpCb sk)
cdef Py_ssize_t _frame_hh(dst_mac, src_mac) except -1
cdef long long _ts_val(TcpCb sk, double now) except? -2
@cython.locals(wq_seq=uint32_t, write_seq=uint32_t, seq=uint32_t,
               end=uint32_t, ident=uint32_t, unsent=cython.longlong, seglen=cython.longlong,
               ts_val=cython.longlong, ts_ecr=uint32_t, flags=cython.longlong,
               hh=Py_ssize_t, sent=cython.int, hdrs=cython.longlong, gso_room=cython.longlong,
               run_segs=cython.longlong, run_seq=uint32_t, run_off=Py_ssize_t,
               run_len=cython.longlong, run_flags=cython.longlong,
               wq=SndQueue, off=Py_ssize_t, burst=cython.longlong, more=bint,
               mark=cython.longlong, quota=cython.longlong, last=bint, seg=TxSeg,
               addrs6=bytes, fin=bint)
cpdef int write_xmit(TcpCb sk, long long mss, list out, ifindex, dst_mac, src_mac, uint32_t ttl,
                     double now, long long gso_max=*,
                     bint csum_partial=*, long long max_segs=*, bint fin_queued=*) except -1
@cython.locals(wq=SndQueue, hh=Py_ssize_t, addrs6=bytes, ts_val=cython.longlong,
               ts_ecr=uint32_t, window=cython.longlong, ident=uint32_t)
cpdef ack_xmit(TcpCb sk, list out, ifindex, dst_mac, src_mac, uint32_t ttl, double now)
@cython.locals(mss=cython.longlong, window_limited=bint)
cpdef long long xmit_begin(TcpCb sk, bint fin_queued) except -1
@cython.locals(settings=object)
cdef object _hop_limit(host, bint v6)
@cython.locals(host=object, v6=bint, ttl=uint32_t, gso_max=cython.longlong,
               queue=list, queued=Py_ssize_t, data=bint, n=cython.int, d=TcpDst,
               csum_partial=bint, prior_packets=cython.longlong)
cpdef int write_burst(TcpCb sk, long long mss, tuple path, double now, bint window_limited,
                      bint fin_queued) except -1
@cython.locals(host=object, v6=bint)
cpdef ack_whole(TcpCb sk, tuple path, double now)
@cython.locals(window=cython.longlong, ident=uint32_t)
cdef int _xmit_run(TcpCb sk, SndQueue wq, list out, ifindex, dst_mac, src_mac, Py_ssize_t hh,
                   uint32_t ttl, Py_ssize_t off, Py_ssize_t n,
                   long long segs, long long mss, uint32_t seq, long long flags,
                   long long ts_val, uint32_t ts_ecr, bint csum_partial,
                   bytes addrs6) except -1

@cython.locals(rtt=double)
cpdef void rack_advance(TcpCb sk, long long retrans, uint32_t end_seq, double xmit_time,
                        double now) except *
@cython.locals(rtx=list, ack=uint32_t, n=Py_ssize_t, count=Py_ssize_t, s=cython.longlong,
               seg=TxSeg, data_end=uint32_t, freed=int32_t, retrans_acked=bint, reord=bint)
cpdef tuple clean_rtx_queue(TcpCb sk, double now=*, long long fack=*)

@cython.locals(b=rbuf)
cpdef buf_append(bytearray ba, data)
cpdef buf_consume(bytearray ba, Py_ssize_t n)
cdef Py_ssize_t _SQ_REF_MIN, _SQ_TAIL_MAX
cpdef bint sq_ref_ok(data, SndQueue q=*) except -1
@cython.locals(n=Py_ssize_t, tail=bytearray)
cpdef sq_append(SndQueue q, data, bint ref)
@cython.locals(chunks=list, head=Py_ssize_t, k=Py_ssize_t, left=Py_ssize_t)
cpdef sq_consume(SndQueue q, Py_ssize_t n)
@cython.locals(pos=Py_ssize_t, size=Py_ssize_t, k=Py_ssize_t, parts=list)
cpdef sq_view(SndQueue q, Py_ssize_t off, Py_ssize_t n)

# the ACK of new data (ack_fast and the pieces tcp_input.tcp_ack shares)
cpdef bint may_update_window(TcpCb sk, uint32_t ack, uint32_t seq, long long nwin) except -1
cpdef long long ack_update_window(TcpCb sk, uint32_t seq, uint32_t ack, long long nwin) except -1
@cython.locals(rtt=double, d=uint32_t, o=object, est=object)
cpdef double ack_rtt(TcpCb sk, double first_tx, bint retrans_acked, uint32_t ts_ecr,
                     double now) except? -2
@cython.locals(o=object)
cpdef bint cwnd_limited(TcpCb sk) except -1
@cython.locals(o=object, cap=cython.longlong, want=cython.longlong)
cpdef sndbuf_expand(TcpCb sk)
@cython.locals(o=object, rto=double, head=object)
cpdef double rto_delta(TcpCb sk, double now) except? -1e300
@cython.locals(o=object, pending=cython.longlong, rto=double)
cpdef rearm_rto(TcpCb sk, double now)
@cython.locals(o=object, packets_out=cython.longlong, early=cython.longlong, est=object,
               timeout=double, srtt=double, extra=double, delta=double, head=object)
cpdef bint schedule_loss_probe(TcpCb sk, double now, bint advancing_rto) except -1
@cython.locals(o=object, nwin=cython.longlong, res=tuple, acked=cython.longlong, rtt=double,
               ca_ops=object)
cpdef bint ack_fast(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window, uint32_t ts_ecr,
                    double now) except -1
@cython.locals(queued=cython.longlong, free=cython.longlong)
cpdef check_space(TcpCb sk)
@cython.locals(o=object)
cpdef data_snd_check(TcpCb sk, double now)
cpdef batch_end(TcpCb sk, double now)
cpdef send_ack_or_coalesce(TcpCb sk, double now)
cpdef data_snd_check_batched(TcpCb sk, double now)
cdef int _ack_bare(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window, uint32_t ts_ecr,
                   double now) except -1
