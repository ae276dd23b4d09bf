# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The established-state receive fast path, compiled.  Same API and results as
``tcp_fast_py`` (read its docstring for the rules and the why).

``TcpCb`` holds the control-block fields the fast path touches as C fields, so
header prediction and queueing an in-order segment are C arithmetic on the
sock; ``rx.pyx`` calls ``rcv_established_c`` from inside the per-frame
classifier, right after the checksum and the ehash lookup: one crossing into
compiled code per received data segment.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdint cimport int32_t, uint32_t
from libc.string cimport memcpy

from tcpio._fast._buf cimport rbuf, rbuf_get, rbuf_release

__all__ = ["TcpCb", "rcv_established", "select_window", "set_hooks"]

cdef enum:
    C_TCP_ESTABLISHED = 1
    C_TCP_CA_OPEN = 0
    C_TCP_MAX_QUICKACKS = 16

# tcp_send_ack(sk, now): set by core.tcp.tcp_input (this module sits below it).
cdef object _send_ack = None


def set_hooks(send_ack):
    """Install the Python side the fast path calls out to (tcp_send_ack)."""
    global _send_ack
    _send_ack = send_ack


cdef class TcpCb:
    """The hot part of the TCP control block (see tcp_fast.pxd for the fields)."""

    def __cinit__(self, *args, **kwargs):
        self.rq = bytearray()


cdef inline bint before(uint32_t a, uint32_t b) noexcept nogil:
    return <int32_t>(a - b) < 0


cdef inline bint after(uint32_t a, uint32_t b) noexcept nogil:
    return <int32_t>(b - a) < 0


cdef inline long long receive_window(TcpCb sk) noexcept:
    # tcp_receive_window: rcv_wup + rcv_wnd - rcv_nxt, never negative
    cdef long long w = <int32_t>(<uint32_t>sk.rcv_wup - <uint32_t>sk.rcv_nxt) + sk.rcv_wnd
    return w if w > 0 else 0


cdef long long select_window_c(TcpCb sk) except -1:
    """__tcp_select_window (the twin's docstring says why each step)."""
    cdef long long mss = sk.rcv_mss if sk.rcv_mss < sk.advmss else sk.advmss
    cdef long long full, free, window, gran, unit
    if mss == 0:
        mss = 1
    full = sk.rcvbuf if sk.rcvbuf < sk.window_clamp else sk.window_clamp
    free = sk.rcvbuf - PyByteArray_GET_SIZE(sk.rq) - sk.ofo_bytes
    if free < 0:
        free = 0
    if free > sk.window_clamp:
        free = sk.window_clamp
    if free < (full >> 1) and free < mss:
        return 0
    if sk.rcv_wscale:
        gran = (<long long>1) << sk.rcv_wscale
        unit = mss if mss > gran else gran
        window = free // unit * unit if free >= mss else free
        return window - window % gran
    window = sk.rcv_wnd
    if window <= free - mss or window > free:
        window = free // mss * mss
    return window


def select_window(TcpCb sk):
    return select_window_c(sk)


cdef int rcv_established_c(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window,
                           bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                           const unsigned char* data, Py_ssize_t n, double now) except -1:
    cdef Py_ssize_t old
    cdef uint32_t d
    cdef double sample
    cdef long long quick
    # Header prediction (the caller checked: flags are exactly ACK [+PSH], no
    # options but an aligned timestamp).
    if (sk.state != C_TCP_ESTABLISHED or n <= 0 or seq != <uint32_t>sk.rcv_nxt
            or ack != <uint32_t>sk.snd_una or sk.ca_state != C_TCP_CA_OPEN
            or sk.urg_seq is not None or sk.ofo
            or (<long long>window << sk.snd_wscale) != sk.snd_wnd):
        return 0
    if sk.tstamp_ok and (not has_ts or before(ts_val, <uint32_t>sk.ts_recent)):
        return 0
    if receive_window(sk) == 0:
        return 0
    # Commit: nothing below declines the segment.
    sk.rcv_tstamp = now
    if has_ts and not after(seq, <uint32_t>sk.rcv_wup):
        sk.ts_recent = ts_val
        sk.ts_recent_stamp = now
    if sk.tstamp_ok and ts_ecr:
        # tcp_rcv_rtt_measure_ts
        d = <uint32_t>(<long long>(now * 1000)) + <uint32_t>sk.ts_off - ts_ecr
        if d < 0x7FFFFFFF:
            sample = d / 1000.0
            if sample < 0.001:
                sample = 0.001
            sk.rcv_rtt = sample if not sk.rcv_rtt else sk.rcv_rtt * 0.875 + sample * 0.125
    rq = sk.rq
    old = PyByteArray_GET_SIZE(rq)
    PyByteArray_Resize(rq, old + n)
    memcpy(PyByteArray_AS_STRING(rq) + old, data, n)
    sk.rcv_nxt = <uint32_t>(seq + <uint32_t>n)
    # tcp_event_data_recv
    if n > sk.rcv_mss:
        sk.rcv_mss = n if n < sk.advmss else sk.advmss
    if not sk.got_data:
        sk.got_data = True
        quick = sk.rcv_wnd // (2 * (sk.rcv_mss if sk.rcv_mss > 1 else 1))
        if quick < 2:
            quick = 2
        sk.quick = quick if quick < C_TCP_MAX_QUICKACKS else C_TCP_MAX_QUICKACKS
    sk.ack_pending = True
    sk.host.schedule_wakeup(sk)
    # __tcp_ack_snd_check
    if sk.dead:
        return 1
    if ((<int32_t>(<uint32_t>sk.rcv_nxt - <uint32_t>sk.rcv_wup) > sk.rcv_mss
            and select_window_c(sk) >= sk.rcv_wnd) or sk.quick or sk.ofo):
        _send_ack(sk, now)
    else:
        timer = sk.delack_timer
        if timer.when is None:
            timer.arm(now + sk.host.settings.tcp_delack_min)
    return 1


def rcv_established(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window, bint has_ts,
                    uint32_t ts_val, uint32_t ts_ecr, data, double now):
    """True if the segment took the fast path (then it is fully processed)."""
    cdef rbuf b
    owner = rbuf_get(data, &b)
    try:
        return rcv_established_c(sk, seq, ack, window, has_ts, ts_val, ts_ecr,
                                 b.p, b.n, now) == 1
    finally:
        rbuf_release(&b)
