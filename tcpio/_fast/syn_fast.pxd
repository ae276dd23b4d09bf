# cython: language_level=3
# The C types of syn_fast.py, the one source of the stateless SYN path (see
# tcp_fast.pxd for how an augmenting .pxd works).  rx.pyx cimports SynPath
# and syn_cookie, so a SYN is answered inside the classifier's C call.
cimport cython
from libc.stdint cimport uint32_t

from tcpio._fast._blake2s cimport b2s_cookie, b2s_isn, b2s_key_state, b2s_tsoff
from tcpio._fast.tcp_fast cimport TcpCb, tcp_time_stamp
from tcpio._fast.tx cimport tcp_synack_frame


cdef class SynKeys:
    cdef public bytes secret
    cdef uint32_t k0[9]
    cdef uint32_t k1[9]
    cdef uint32_t kts[9]
    cdef uint32_t kisn[9]
    cdef object _h


cdef class SynPath:
    cdef public SynKeys keys
    cdef public object settings, route, route_scope
    cdef public list by_port, out
    cdef public long long budget, sent, eth_sent, dropped
    cdef public int sc_state
    cdef public uint32_t sc_prefix, sc_mask
    cdef public list sc_excl
    cdef public object sc_path, sc_token, sc_fib, sc_pmtu
    cdef public long long scopes
    cdef public long long s_syncookies, s_rmem_max, s_ttl
    cdef public bint s_tstamps, s_wscaling, s_sack, s_read
    cdef public long long l_port, l_addr, l_backlog, l_user_mss
    cdef public object l_sk, l_synq, l_acceptq


cdef long long _COOKIEBITS, _COOKIEMASK, _MAX_SYNCOOKIE_AGE, _TSBITS
cdef long long _TS_OPT_WSCALE_MASK, _TS_OPT_SACK
cdef long long _M32, _TCP_LISTEN, _TCP_MSS_DEFAULT, _IP_RT_MIN_ADVMSS, _TCPHDR_SYN_ACK
cdef long long _IPPROTO_TCP
cdef double _TCP_SYNCOOKIE_PERIOD

@cython.locals(kp=cython.p_const_uchar)
cpdef uint32_t cookie_hash(SynKeys keys, uint32_t laddr, uint32_t lport, uint32_t raddr,
                           uint32_t rport, long long count, int c)
cpdef uint32_t ts_off_hash(SynKeys keys, uint32_t laddr, uint32_t raddr)
cpdef uint32_t isn_hash(SynKeys keys, uint32_t laddr, uint32_t lport, uint32_t raddr,
                        uint32_t rport)
cpdef long long tcp_cookie_time(double now) noexcept
@cython.locals(count=cython.longlong)
cpdef uint32_t secure_tcp_syn_cookie(SynKeys keys, uint32_t laddr, uint32_t lport,
                                     uint32_t raddr, uint32_t rport, uint32_t sseq,
                                     long long data, double now)
@cython.locals(count=cython.longlong, diff=cython.longlong, c=cython.longlong)
cpdef long long check_tcp_syn_cookie(SynKeys keys, uint32_t laddr, uint32_t lport,
                                     uint32_t raddr, uint32_t rport, uint32_t sseq,
                                     long long cookie, double now)
@cython.locals(mssind=cython.longlong)
cpdef long long cookie_mss_index(long long mss) noexcept
@cython.locals(options=cython.longlong, ts=cython.longlong, n=cython.longlong)
cpdef long long cookie_init_timestamp(long long now_ts, long long wscale, bint sack_ok) noexcept
@cython.locals(space=cython.longlong, ws=cython.longlong)
cpdef long long tcp_rcv_wscale(bint window_scaling, long long rmem_max, long long rcvbuf)
@cython.locals(space=cython.longlong)
cpdef long long initial_rcv_wnd(long long rcvbuf, long long mss)
@cython.locals(advmss=cython.longlong)
cpdef long long route_advmss(long long mtu, long long user_mss)
cpdef bint inet_csk_reqsk_queue_is_full(object listener) except -1
cpdef bint reqsk_queue_full(object synq, long long backlog) except -1
cpdef object listener_pick(object socks, long long laddr)

@cython.locals(state=cython.int, pm=tuple, pmtu=object, scope=object, prefix=uint32_t,
               mask=uint32_t, pprefix=uint32_t, pmask=uint32_t)
cpdef object synack_path(SynPath syn, uint32_t src)

cpdef bytes synack_frame(object dst_mac, object src_mac, uint32_t src, uint32_t dst,
                         uint32_t ident, uint32_t ttl, uint32_t sport, uint32_t dport,
                         uint32_t seq, uint32_t ack, uint32_t window, uint32_t mss,
                         long long wscale, bint sack_ok, long long ts_val, uint32_t ts_ecr)

@cython.locals(listener=TcpCb, syncookies=cython.longlong, mss=cython.longlong,
               backlog=cython.longlong,
               user_mss=cython.longlong, tstamp_ok=bint, wscale_ok=bint, sack_ok=bint,
               snd_wscale=cython.longlong, rcv_wscale=cython.longlong, advmss=cython.longlong,
               rcv_wnd=cython.longlong, mssind=cython.longlong, isn=uint32_t,
               ts_val=cython.longlong, now_ts=uint32_t, ident=cython.longlong,
               mtu=cython.longlong)
cpdef int syn_cookie(SynPath syn, uint32_t src, uint32_t dst, uint32_t sport, uint32_t dport,
                     uint32_t seq, long long opt_mss, long long opt_wscale, bint opt_sack,
                     long long opt_tsval, double now) except -1

cdef long long _TCP_SYN_RECV, _TCP_CLOSE, _MAX_TCP_WINDOW, _TCP_MAX_WSCALE
cpdef sock_init(TcpCb sk, object host, object rcv_pool, object listener, long long init_cwnd,
                object no_ofo, object no_timer)
@cython.locals(mss=cython.longlong)
cpdef long long sync_mss(TcpCb sk, long long pmtu) except? -1
@cython.locals(hint=cython.longlong)
cpdef initialize_rcv_mss(TcpCb sk)
@cython.locals(snt_isn=cython.longlong, rcv_isn=cython.longlong, isn1=cython.longlong,
               tstamp_ok=bint)
cpdef openreq_child(TcpCb sk, object req, long long seq, long long window, double now,
                    long long mtu, long long user_mss)

cdef long long _TCP_ESTABLISHED, _TCP_CLOSE_WAIT
@cython.locals(old=cython.longlong)
cpdef long long set_state(TcpCb sk, long long state, object mib, object host) except? -1
cpdef tcp_set_state(tuple log, TcpCb sk, long long state)
cpdef done_clear(TcpCb sk)
cpdef release_queues(TcpCb sk, object no_ofo)
