# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""TCP's established-state paths, compiled.  Same API and results as
``tcp_fast_py`` (read its docstring for the rules and the why).

``TcpCb`` holds the control-block fields these paths touch as C fields, so
header prediction, queueing an in-order segment and the send loop are C
arithmetic on the sock; ``rx.pyx`` calls ``rcv_established_c`` from inside the
per-frame classifier, right after the checksum and the ehash lookup: one
crossing into compiled code per received segment.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from libc.stdint cimport int32_t, uint32_t

from tcpio._fast._buf cimport ba_append, ba_consume, rbuf, rbuf_get, rbuf_release
from tcpio._fast.tx cimport tcp_data_frame

__all__ = ["TcpCb", "TxSeg", "buf_append", "buf_consume", "clean_rtx_queue",
           "rcv_established", "select_window", "set_hooks", "tcp_select_window", "write_xmit"]

cdef enum:
    C_TCP_ESTABLISHED = 1
    C_TCP_CA_OPEN = 0
    C_TCP_MAX_QUICKACKS = 16
    C_MAX_TCP_WINDOW = 65535
    C_TCPHDR_ACK = 0x10
    C_TCPHDR_PSH = 0x08
    C_IPPROTO_TCP = 6
    C_TCPHDR_SYN = 0x02

# The Python side the fast paths call out to, set by core.tcp (this module
# sits below it; see set_hooks).
cdef object _send_ack = None
cdef object _data_sent_idle = None
cdef object _ack_predicted = None


def set_hooks(send_ack, data_sent_idle, ack_predicted):
    """Install the Python side the fast paths call out to (see the twin)."""
    global _send_ack, _data_sent_idle, _ack_predicted
    _send_ack = send_ack
    _data_sent_idle = data_sent_idle
    _ack_predicted = ack_predicted


cdef class TcpCb:
    """The hot part of the TCP control block (see tcp_fast.pxd for the fields).

    TcpSock.__init__ sets every field, as with the twin's plain attributes;
    until then the object fields are None, which the entry points refuse."""


cdef class TxSeg:
    """One transmitted, not yet acknowledged segment (see the twin)."""

    def __init__(self, long long seq, long long end_seq, long long flags, double tstamp):
        self.seq = seq
        self.end_seq = end_seq
        self.flags = flags
        self.sacked = 0
        self.tstamp = tstamp
        self.retrans = 0

    def __repr__(self):
        return f"TxSeg({self.seq}, {self.end_seq}, flags={self.flags}, sacked={self.sacked})"


cdef inline bint before(uint32_t a, uint32_t b) noexcept nogil:
    return <int32_t>(a - b) < 0


cdef inline bint after(uint32_t a, uint32_t b) noexcept nogil:
    return <int32_t>(b - a) < 0


cdef inline uint32_t tcp_time_stamp(double now) noexcept:
    # the 1 ms timestamp clock (tcp_time_stamp_ms); int() truncation, now >= 0
    return <uint32_t>(<long long>(now * 1000))


cdef inline void store_ts_recent(TcpCb sk, uint32_t seq, bint has_ts, uint32_t ts_val,
                                 double now) noexcept:
    # tcp_store_ts_recent, with the time the peer was last heard from
    sk.rcv_tstamp = now
    if has_ts and not after(seq, <uint32_t>sk.rcv_wup):
        sk.ts_recent = ts_val
        sk.ts_recent_stamp = now


cdef inline long long receive_window(TcpCb sk) noexcept:
    # tcp_receive_window: rcv_wup + rcv_wnd - rcv_nxt, never negative
    cdef long long w = <int32_t>(<uint32_t>sk.rcv_wup - <uint32_t>sk.rcv_nxt) + sk.rcv_wnd
    return w if w > 0 else 0


cdef long long select_window_c(TcpCb sk) except -1:
    """__tcp_select_window (the twin's docstring says why each step)."""
    if sk.rq is None:
        raise TypeError("tcp: the receive queue must be a bytearray")
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


def select_window(TcpCb sk not None):
    return select_window_c(sk)


cdef long long tcp_select_window_c(TcpCb sk) except -1:
    """tcp_select_window: the window field for the next segment, never
    moving the right edge back (RFC 7323 2.4)."""
    cdef long long cur = receive_window(sk)
    cdef long long new = select_window_c(sk)
    cdef long long gran
    if new < cur:
        gran = (<long long>1) << sk.rcv_wscale
        new = (cur + gran - 1) // gran * gran
    if new > (<long long>C_MAX_TCP_WINDOW) << sk.rcv_wscale:
        new = (<long long>C_MAX_TCP_WINDOW) << sk.rcv_wscale
    sk.rcv_wnd = new
    sk.rcv_wup = sk.rcv_nxt
    return new >> sk.rcv_wscale


def tcp_select_window(TcpCb sk not None):
    return tcp_select_window_c(sk)


cdef int rcv_established_c(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window,
                           bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                           const unsigned char* data, Py_ssize_t n, double now) except -1:
    cdef uint32_t d
    cdef double sample
    cdef long long quick
    if sk.rq is None:
        raise TypeError("tcp: the receive queue must be a bytearray")
    # Header prediction (the caller checked: flags are exactly ACK [+PSH], no
    # options but an aligned timestamp).
    if (sk.state != C_TCP_ESTABLISHED or seq != <uint32_t>sk.rcv_nxt
            or sk.ca_state != C_TCP_CA_OPEN or sk.urg_seq is not None or sk.ofo
            or (<long long>window << sk.snd_wscale) != sk.snd_wnd):
        return 0
    if sk.tstamp_ok and (not has_ts or before(ts_val, <uint32_t>sk.ts_recent)):
        return 0
    if n == 0:
        # A bare ACK: acceptable if it acknowledges nothing we did not send.
        if before(ack, <uint32_t>sk.snd_una) or after(ack, <uint32_t>sk.snd_nxt):
            return 0
        store_ts_recent(sk, seq, has_ts, ts_val, now)
        # New data acked, or a duplicate ACK while data is out: tcp_ack.
        if ack != <uint32_t>sk.snd_una or sk.packets_out:
            if has_ts:
                _ack_predicted(sk, seq, ack, window, ts_val, ts_ecr, now)
            else:
                _ack_predicted(sk, seq, ack, window, None, None, now)
        return 1
    if ack != <uint32_t>sk.snd_una:
        return 0
    if receive_window(sk) == 0:
        return 0
    # Commit: nothing below declines the segment.
    store_ts_recent(sk, seq, has_ts, ts_val, now)
    if sk.tstamp_ok and ts_ecr:
        # tcp_rcv_rtt_measure_ts
        d = tcp_time_stamp(now) + <uint32_t>sk.ts_off - ts_ecr
        if d < 0x7FFFFFFF:
            sample = d / 1000.0
            if sample < 0.001:
                sample = 0.001
            sk.rcv_rtt = sample if not sk.rcv_rtt else sk.rcv_rtt * 0.875 + sample * 0.125
    ba_append(sk.rq, data, n)
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


def rcv_established(TcpCb sk not None, uint32_t seq, uint32_t ack, uint32_t window, bint has_ts,
                    uint32_t ts_val, uint32_t ts_ecr, data, double now):
    """True if the segment took the fast path (then it is fully processed)."""
    cdef rbuf b
    owner = rbuf_get(data, &b)
    try:
        return rcv_established_c(sk, seq, ack, window, has_ts, ts_val, ts_ecr,
                                 b.p, b.n, now) == 1
    finally:
        rbuf_release(&b)


def write_xmit(TcpCb sk not None, long long mss, list out, ifindex, dst_mac, src_mac, uint32_t ttl,
               list ids, Py_ssize_t bucket, double now):
    """tcp_write_xmit's loop for plain data segments (see the twin)."""
    cdef uint32_t wq_seq = <uint32_t>sk.wq_seq
    cdef uint32_t write_seq = <uint32_t>sk.write_seq
    cdef uint32_t wnd_end = <uint32_t>(sk.snd_una + sk.snd_wnd)
    cdef uint32_t seq, end, ident
    cdef long long unsent, seglen, ts_val, flags, window
    cdef uint32_t ts_ecr
    cdef Py_ssize_t hh = 14 if dst_mac is not None else 0
    cdef int sent = 0
    cdef TxSeg seg
    cdef bytearray wq = sk.wq
    cdef const unsigned char* base
    cdef Py_ssize_t off
    if wq is None:
        raise TypeError("tcp: the send queue must be a bytearray")
    if hh and (src_mac is None or len(dst_mac) != 6 or len(src_mac) != 6):
        raise ValueError("mac addresses must be 6 bytes")
    if mss <= 0 or ttl > 0xFF:
        raise ValueError("tcp: mss must be positive and ttl at most 255")
    if not 0 <= bucket < len(ids):
        raise IndexError("IP ID bucket out of range")
    if sk.tstamp_ok:
        ts_val = <uint32_t>(tcp_time_stamp(now) + <uint32_t>sk.ts_off)
        ts_ecr = <uint32_t>sk.ts_recent
    else:
        ts_val = -1
        ts_ecr = 0
    while True:
        seq = <uint32_t>sk.snd_nxt
        unsent = <int32_t>(write_seq - seq)
        if unsent <= 0:
            break
        if sk.packets_out - (sk.sacked_out + sk.lost_out) + sk.retrans_out >= sk.snd_cwnd:
            sk.is_cwnd_limited = True
            break
        seglen = mss if mss < unsent else unsent
        end = <uint32_t>(seq + <uint32_t>seglen)
        if after(end, wnd_end):
            break
        if (seglen < mss and not sk.nodelay and sk.packets_out
                and after(<uint32_t>sk.snd_sml, <uint32_t>sk.snd_una)
                and not after(<uint32_t>sk.snd_sml, seq)):
            break
        if not sk.packets_out:
            _data_sent_idle(sk, now)
        # wq holds [wq_seq, write_seq): checked before anything changes
        off = <uint32_t>(seq - wq_seq)
        if off + seglen > PyByteArray_GET_SIZE(wq):
            raise RuntimeError("tcp: send buffer shorter than write_seq says")
        flags = C_TCPHDR_ACK | C_TCPHDR_PSH if seglen == unsent else C_TCPHDR_ACK
        seg = TxSeg.__new__(TxSeg)
        seg.seq = seq
        seg.end_seq = end
        seg.tstamp = now
        sk.rtx.append(seg)
        sk.packets_out += 1
        sk.snd_nxt = end
        if seglen < mss:
            sk.snd_sml = end
        window = tcp_select_window_c(sk)
        ident = (<uint32_t>ids[bucket] + 1) & 0xFFFF
        ids[bucket] = ident
        base = <const unsigned char*>PyByteArray_AS_STRING(wq)
        out.append((ifindex, tcp_data_frame(
            dst_mac, src_mac, hh, <uint32_t>sk.laddr, <uint32_t>sk.raddr, ident, ttl,
            <uint32_t>sk.lport, <uint32_t>sk.rport, seq, <uint32_t>sk.rcv_nxt, flags,
            <uint32_t>window, ts_val, ts_ecr, base + off, seglen)))
        if sk.quick:
            sk.quick -= 1
        sent += 1
    return sent


def clean_rtx_queue(TcpCb sk not None):
    """tcp_clean_rtx_queue's walk of the retransmit queue (see the twin)."""
    cdef list rtx = sk.rtx
    cdef uint32_t ack = <uint32_t>sk.snd_una
    cdef Py_ssize_t n = 0, count = len(rtx)
    cdef long long s
    cdef TxSeg seg
    cdef uint32_t data_end
    cdef int32_t freed
    first_tx = None
    cdef bint retrans_acked = False
    while n < count:
        item = rtx[n]
        if not isinstance(item, TxSeg):
            raise TypeError("tcp: the retransmit queue holds TxSeg records only")
        seg = <TxSeg>item
        if before(ack, <uint32_t>seg.end_seq):
            if before(<uint32_t>seg.seq, ack) and not seg.flags & C_TCPHDR_SYN:
                seg.seq = ack
            break
        s = seg.sacked
        if s & 2:
            sk.retrans_out -= 1
            retrans_acked = True
        if s & 1:
            sk.sacked_out -= 1
        elif s & 4:
            sk.lost_out -= 1
        if not seg.retrans and first_tx is None and not s & 1:
            first_tx = seg.tstamp
        n += 1
    if n:
        del rtx[:n]
        sk.packets_out -= n
    if sk.packets_out == 0:
        sk.sacked_out = sk.lost_out = sk.retrans_out = 0
    data_end = <uint32_t>sk.write_seq if before(<uint32_t>sk.write_seq, ack) else ack
    freed = <int32_t>(data_end - <uint32_t>sk.wq_seq)
    if freed > 0:
        ba_consume(sk.wq, freed)
        sk.wq_seq = data_end
    return n, first_tx, retrans_acked


def buf_append(bytearray ba not None, data):
    """``ba += data`` for a socket queue (amortized O(len(data)), see _buf.pxd)."""
    cdef rbuf b
    owner = rbuf_get(data, &b)
    try:
        ba_append(ba, b.p, b.n)
    finally:
        rbuf_release(&b)


def buf_consume(bytearray ba not None, Py_ssize_t n):
    """``del ba[:n]`` for a socket queue (see _buf.pxd)."""
    if n < 0:
        raise ValueError("buf_consume: negative length")
    ba_consume(ba, n)
