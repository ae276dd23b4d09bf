# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Transmit-path builder, compiled.  Same API and results as ``tx_py``.

One allocation, one copy of the payload, headers written in place: the
frame is built directly in a fresh ``bytes`` object.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t
from libc.string cimport memcpy, memset

from tcpio._fast._buf cimport rbuf, rbuf_get, rbuf_release
from tcpio._fast._csum cimport csum_net

__all__ = ["ETH_ZLEN", "ip_build"]

ETH_ZLEN = 60

cdef enum:
    C_ETH_HLEN = 14
    C_ETH_ZLEN = 60


cdef inline void wr16(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 8)
    p[1] = <unsigned char>v


cdef inline void wr32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = <unsigned char>(v >> 24)
    p[1] = <unsigned char>(v >> 16)
    p[2] = <unsigned char>(v >> 8)
    p[3] = <unsigned char>v


cdef inline int _range(long long v, long long vmax, str what) except -1:
    if v < 0 or v > vmax:
        raise ValueError(f"ipv4: {what} out of range")
    return 0


def ip_build(dst_mac, src_mac, long long proto, long long src, long long dst,
             long long ident, long long ttl, long long tos, bint df, bint mf,
             long long frag_offset, payload):
    """Ethernet (optional) + IPv4 header (no options) + ``payload`` (see ``tx_py``)."""
    cdef rbuf b
    cdef Py_ssize_t n, total, flen, hh
    cdef unsigned char* p
    cdef unsigned char* ip
    cdef const unsigned char* dm
    cdef const unsigned char* sm
    _range(proto, 0xFF, "proto")
    _range(ttl, 0xFF, "ttl")
    _range(tos, 0xFF, "tos")
    _range(ident, 0xFFFF, "ident")
    _range(src, 0xFFFFFFFF, "src")
    _range(dst, 0xFFFFFFFF, "dst")
    if frag_offset & 7 or frag_offset < 0 or frag_offset > 0xFFF8:
        raise ValueError("ipv4: frag_offset must be a multiple of 8 in 0..65528")
    if dst_mac is not None:
        if src_mac is None or len(dst_mac) != 6 or len(src_mac) != 6:
            raise ValueError("mac addresses must be 6 bytes")
        hh = C_ETH_HLEN
    else:
        hh = 0
    owner = rbuf_get(payload, &b)
    try:
        n = b.n
        total = 20 + n
        if total > 0xFFFF:
            raise ValueError("ipv4: datagram longer than 65535 bytes")
        flen = hh + total
        if hh and flen < C_ETH_ZLEN:
            flen = C_ETH_ZLEN
        frame = PyBytes_FromStringAndSize(NULL, flen)
        p = <unsigned char*>PyBytes_AS_STRING(frame)
        if hh:
            dm = dst_mac
            sm = src_mac
            memcpy(p, dm, 6)
            memcpy(p + 6, sm, 6)
            p[12] = 0x08
            p[13] = 0x00
        ip = p + hh
        ip[0] = 0x45
        ip[1] = <unsigned char>tos
        wr16(ip + 2, <uint32_t>total)
        wr16(ip + 4, <uint32_t>ident)
        wr16(ip + 6, <uint32_t>((frag_offset >> 3) | (0x4000 if df else 0)
                                | (0x2000 if mf else 0)))
        ip[8] = <unsigned char>ttl
        ip[9] = <unsigned char>proto
        ip[10] = 0
        ip[11] = 0
        wr32(ip + 12, <uint32_t>src)
        wr32(ip + 16, <uint32_t>dst)
        wr16(ip + 10, ~csum_net(ip, 20, 0) & 0xFFFF)
        memcpy(ip + 20, b.p, n)
        if hh + total < flen:
            memset(p + hh + total, 0, flen - hh - total)
        return frame
    finally:
        rbuf_release(&b)
