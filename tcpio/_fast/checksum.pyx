# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Internet checksum (RFC 1071), compiled.  Same API as ``checksum_py``.

The kernel is in ``_csum.pxd`` (shared with the other modules): raw pointer, 64-bit
loads, 64-bit accumulator, one fold at the end.  Inputs are taken as plain
objects and read through ``_buf.pxd`` (no typed memoryview: cheaper per call).
"""

from libc.stdint cimport uint32_t, uint64_t

from tcpio._fast._buf cimport rbuf, rbuf_get, rbuf_release
from tcpio._fast._csum cimport csum_fold64, csum_net, pseudo_sum

__all__ = [
    "checksum_update16",
    "checksum_update32",
    "csum_partial",
    "internet_checksum",
    "pseudo_header_sum",
    "pseudo_header_sum6",
    "tcpudp_checksum",
]


cdef inline uint32_t _sum_obj(object data, uint64_t initial) except? 0xFFFFFFFF:
    cdef rbuf b
    cdef uint32_t s
    owner = rbuf_get(data, &b)
    s = csum_net(b.p, b.n, initial)
    rbuf_release(&b)
    return s


def csum_partial(data, unsigned long long initial=0):
    """Ones'-complement sum of ``data`` plus ``initial``, folded to 16 bits (not inverted)."""
    return _sum_obj(data, initial)


def internet_checksum(data, unsigned long long initial=0):
    """The value to store in a header: ``~csum_partial(data, initial) & 0xFFFF``."""
    return ~_sum_obj(data, initial) & 0xFFFF


def pseudo_header_sum(unsigned int src, unsigned int dst, unsigned int proto,
                      unsigned long long length):
    """Folded sum of the IPv4 pseudo-header (RFC 793 / RFC 768)."""
    return pseudo_sum(src, dst, proto, length)


def pseudo_header_sum6(src, dst, unsigned int proto, unsigned long long length):
    """Folded sum of the IPv6 pseudo-header (RFC 8200 8.1); the addresses are
    128-bit ints, summed mod 0xFFFF (their 16-bit words' sum, 2**16 == 1)."""
    cdef uint64_t s = <uint64_t>(src % 0xFFFF) + <uint64_t>(dst % 0xFFFF)
    s += (length >> 16) + (length & 0xFFFF) + proto
    return csum_fold64(s)


def tcpudp_checksum(unsigned int src, unsigned int dst, unsigned int proto, segment):
    """Checksum of pseudo-header + ``segment``; 0 when verifying a correct segment."""
    cdef rbuf b
    cdef uint32_t s
    owner = rbuf_get(segment, &b)
    s = csum_net(b.p, b.n, pseudo_sum(src, dst, proto, <uint64_t>b.n))
    rbuf_release(&b)
    return ~s & 0xFFFF


def checksum_update16(unsigned int check, unsigned int old, unsigned int new):
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') after a 16-bit field changed old -> new."""
    cdef uint64_t s = (~check & 0xFFFF) + (~old & 0xFFFF) + (new & 0xFFFF)
    return ~csum_fold64(s) & 0xFFFF


def checksum_update32(unsigned int check, unsigned int old, unsigned int new):
    """RFC 1624 eqn. 3 for a 32-bit field (an address, a sequence number)."""
    cdef uint64_t s = ((~check & 0xFFFF) + ((~old >> 16) & 0xFFFF) + (~old & 0xFFFF)
                       + ((new >> 16) & 0xFFFF) + (new & 0xFFFF))
    return ~csum_fold64(s) & 0xFFFF
