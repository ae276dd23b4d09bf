# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Transmit-path builder, compiled.  Same API and results as ``tx_py``.

One allocation, one copy of the payload, headers written in place: the
frame is built directly in a fresh ``bytes`` object.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.string cimport memcpy, memset

from tcpio._fast._buf cimport chk_range, rbuf, rbuf_get, rbuf_release
from tcpio._fast._csum cimport ipv4_header

__all__ = ["ETH_ZLEN", "ip_build"]

ETH_ZLEN = 60

cdef enum:
    C_ETH_HLEN = 14
    C_ETH_ZLEN = 60


def ip_build(dst_mac, src_mac, long long proto, long long src, long long dst,
             long long ident, long long ttl, long long tos, bint df, bint mf,
             long long frag_offset, payload):
    """Ethernet (optional) + IPv4 header (no options) + ``payload`` (see ``tx_py``)."""
    cdef rbuf b
    cdef Py_ssize_t n, total, flen, hh
    cdef unsigned char* p
    cdef const unsigned char* dm
    cdef const unsigned char* sm
    chk_range(proto, 0xFF, "ipv4: proto")
    chk_range(ttl, 0xFF, "ipv4: ttl")
    chk_range(tos, 0xFF, "ipv4: tos")
    chk_range(ident, 0xFFFF, "ipv4: ident")
    chk_range(src, 0xFFFFFFFF, "ipv4: src")
    chk_range(dst, 0xFFFFFFFF, "ipv4: dst")
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
        ipv4_header(p + hh, 20, 4, tos, total, ident, df, mf, frag_offset, ttl, proto, src, dst)
        memcpy(p + hh + 20, b.p, n)
        if hh + total < flen:
            memset(p + hh + total, 0, flen - hh - total)
        return frame
    finally:
        rbuf_release(&b)
