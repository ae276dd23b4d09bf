# cython: language_level=3
# Declarations of the compiled TCP fast path, so rx.pyx can ``cimport`` the
# control block type and call the established-state fast path as a C call.
from libc.stdint cimport uint32_t


cdef class TcpCb:
    # The fields the established fast path reads and writes (struct tcp_sock
    # names).  Everything else lives on the Python subclass (core.tcp.sock.TcpSock).
    cdef public long long state, ca_state
    cdef public long long rcv_nxt, rcv_wup, rcv_wnd, rcv_mss, rcv_wscale, rcvbuf
    cdef public long long window_clamp, ofo_bytes, advmss, quick
    cdef public long long snd_una, snd_nxt, snd_wnd, snd_wscale
    cdef public long long ts_recent, ts_off
    cdef public bint tstamp_ok, got_data, ack_pending, dead
    cdef public double rcv_tstamp, ts_recent_stamp, rcv_rtt
    cdef public bytearray rq
    cdef public object ofo, urg_seq, host, delack_timer
    # the send side (write_xmit)
    cdef public long long laddr, raddr, lport, rport
    cdef public long long snd_cwnd, packets_out, sacked_out, lost_out, retrans_out
    cdef public long long snd_sml, write_seq, wq_seq
    cdef public bint nodelay, is_cwnd_limited
    cdef public bytearray wq
    cdef public list rtx


cdef class TxSeg:
    cdef public long long seq, end_seq, flags, sacked, retrans
    cdef public double tstamp


cdef int rcv_established_c(TcpCb sk, uint32_t seq, uint32_t ack, uint32_t window,
                           bint has_ts, uint32_t ts_val, uint32_t ts_ecr,
                           const unsigned char* data, Py_ssize_t n, double now) except -1
