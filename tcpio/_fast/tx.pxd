# cython: language_level=3
# Declarations of the compiled frame builders, so tcp_fast's send loop can
# build a segment's frame as a C call.
from libc.stdint cimport uint32_t


# (``gso``: the frame is built as a gso.GsoFrame, so the return type is object)
cdef object tcp_data_frame(dst_mac, src_mac, Py_ssize_t hh, uint32_t src, uint32_t dst,
                           uint32_t ident, uint32_t ttl, uint32_t sport, uint32_t dport,
                           uint32_t seq, uint32_t ack, uint32_t flags, uint32_t window,
                           long long ts_val, uint32_t ts_ecr, const unsigned char* data,
                           Py_ssize_t n, bint partial=*, bint gso=*)
cdef bytes tcp_synack_frame(dst_mac, src_mac, Py_ssize_t hh, uint32_t src, uint32_t dst,
                            uint32_t ident, uint32_t ttl, uint32_t sport, uint32_t dport,
                            uint32_t seq, uint32_t ack, uint32_t window, uint32_t mss,
                            long long wscale, bint sack_ok, long long ts_val, uint32_t ts_ecr)
cdef object tcp_data_frame6(dst_mac, src_mac, Py_ssize_t hh, const unsigned char* addrs,
                            uint32_t hlim, uint32_t sport, uint32_t dport, uint32_t seq,
                            uint32_t ack, uint32_t flags, uint32_t window, long long ts_val,
                            uint32_t ts_ecr, const unsigned char* data, Py_ssize_t n,
                            bint partial=*, bint gso=*)


# The host's generation of what a cached transmit path depends on, and one
# such path (tx.pyx: DstGen, TcpDst), read in C by tcp_fast's send paths.
cdef class DstGen:
    cdef public long long genid


cdef class TcpDst:
    cdef public DstGen gen
    cdef public long long genid, mtu, limit, ifindex, gso_max_size
    cdef public double expires
    cdef public bint csum_partial
    cdef public tuple path
    cdef public object daddr, neigh, stopped
