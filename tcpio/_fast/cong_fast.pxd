# cython: language_level=3
# The C types of cong_fast.py, the one source of congestion control's
# per-ACK arithmetic (tcp_cong.c's helpers and CUBIC).  Cython reads this
# file next to cong_fast.py ("augmenting .pxd", pure Python mode); the
# interpreted build runs cong_fast.py as it is and never reads it.
cimport cython

cdef double _C, _BETA, _ALPHA, _ONE_THIRD, _MIN_RTT_THRESH, _MAX_RTT_THRESH, _MIN_RTT_DIVISOR
cdef double _HYSTART_ACK_DELTA, _HYSTART_DELAY_MIN, _HYSTART_DELAY_MAX, _INF, _CNT_MAX
cdef long long _N_RTT_SAMPLE, _CSS_GROWTH_DIVISOR, _CSS_ROUNDS
cdef long long _HYSTART_ACK_TRAIN, _HYSTART_DELAY, _HYSTART_LOW_WINDOW, _HYSTART_MIN_SAMPLES
cdef long long _CA_LOSS, _CA_EVENT_TX_START, _U32_MASK, _U32_HALF


cdef class CubicState:
    cdef public double w_max, cwnd_prior, epoch_start, cwnd_epoch, k, origin, w_est
    cdef public double delay_min, last_ack_time
    cdef public double last_round_min_rtt, cur_round_min_rtt, css_baseline_min_rtt
    cdef public double hy_round_start, hy_last_ack, hy_curr_rtt
    cdef public bint has_epoch, hystart, in_css, found
    cdef public long long window_end, rtt_sample_count, css_rounds, css_acc
    cdef public long long hystart_detect, hy_end_seq, hy_sample_cnt


cdef bint _seq_geq(long long a, long long b) noexcept

# tcp_cong.c's helpers
cpdef bint tcp_in_slow_start(tp) except -1
@cython.locals(snd_cwnd=cython.longlong, cwnd=cython.longlong, ssthresh=cython.longlong,
               clamp=cython.longlong)
cpdef long long tcp_slow_start(tp, long long acked) except? -1
@cython.locals(cnt=cython.longlong, cwnd=cython.longlong, delta=cython.longlong,
               clamp=cython.longlong)
cpdef tcp_cong_avoid_ai(tp, long long w, long long acked)

# CUBIC
@cython.locals(d=double)
cpdef double cubic_k(double w_max, double cwnd_epoch, double c=*) noexcept
@cython.locals(d=double)
cpdef double w_cubic(double t, double k, double w_max, double c=*) noexcept
@cython.locals(priv=object, host=object, detect=object, st=CubicState)
cpdef CubicState cubic_state(ca, tp)
cpdef init(ca, tp, double now)
@cython.locals(st=CubicState, cwnd=cython.longlong, reduced=cython.longlong)
cpdef long long ssthresh(ca, tp) except? -1
@cython.locals(st=CubicState)
cpdef set_state(ca, tp, long long ca_state)
@cython.locals(cwnd=cython.longlong, prior=cython.longlong)
cpdef long long undo_cwnd(ca, tp) except? -1
@cython.locals(st=CubicState, t=double, idle=double, start=double)
cpdef cwnd_event(ca, tp, long long event, now=*)
@cython.locals(st=CubicState, detect=cython.longlong, has_rtt=bint, sample=double,
               snd_una=cython.longlong, thresh=double)
cpdef pkts_acked(ca, tp, long long acked, rtt, double now)
@cython.locals(delay=double, srtt=double, ack_delay=double, rate=double, margin=double,
               cwnd=cython.longlong, snd_una=cython.longlong,
               mss=cython.longlong, packets_out=cython.longlong)
cdef void _acked_linux(tp, CubicState st, bint has_rtt, double rtt, double now,
                       long long detect) except *
cdef void _hystart_round_start(tp, CubicState st) except *
@cython.locals(st=CubicState, cwnd=cython.longlong, ssthresh=cython.longlong,
               acc=cython.longlong, grow=cython.longlong, clamp=cython.longlong)
cpdef cong_avoid(ca, tp, long long acked, double now)
@cython.locals(min_rtt=double, srtt=double)
cdef double _rtt(tp, CubicState st) except? -1
@cython.locals(snd_cwnd=cython.longlong, cwnd=double, t=double, target=double, alpha=double,
               cnt=double, n=cython.longlong)
cdef long long _update(tp, CubicState st, long long acked, double now) except? -1
