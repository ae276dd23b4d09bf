# cython: language_level=3
"""RFC 1071 checksum kernels shared by the compiled modules (inlined in each),
and the checksummed IPv4 header writer used by wire.build_ipv4 and tx.ip_build.

The sum is taken in the machine's byte order and converted once at the end
(RFC 1071 section 2(B): the ones'-complement sum is byte-order independent up
to a final byte swap).  A 64-bit word is four 16-bit words at once: since
2**16 == 1 (mod 0xFFFF), summing wide words and folding at the end gives the
same ones'-complement sum.
"""

from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from tcpio._fast._buf cimport wr16, wr32


cdef inline bint host_is_little_endian() noexcept nogil:
    # folded to a constant by the C compiler
    cdef uint16_t probe = 1
    return (<unsigned char*>&probe)[0] == 1


cdef inline uint32_t csum_fold64(uint64_t acc) noexcept nogil:
    """End-around-carry fold to 0..0xFFFF (0 only for a zero sum)."""
    acc = (acc & 0xFFFFFFFFULL) + (acc >> 32)   # <= 0x1_FFFF_FFFE
    acc = (acc & 0xFFFFULL) + (acc >> 16)       # <= 0x2_FFFD
    acc = (acc & 0xFFFFULL) + (acc >> 16)       # <= 0x1_0001
    acc = (acc & 0xFFFFULL) + (acc >> 16)       # <= 0xFFFF
    return <uint32_t>acc


cdef inline uint32_t csum_native(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Folded sum of p[0:n] as native-order 16-bit words (odd byte zero-padded).

    64-bit loads into two accumulators; a carry out of bit 63 is counted, not
    propagated (2**64 == 1 mod 0xFFFF, so each carry is worth +1 at the end).
    Two independent add chains let the CPU overlap them; measured here this
    beats both 32-bit loads and one add-with-carry chain, at -O2 and -O3.
    """
    cdef uint64_t a0 = 0, a1 = 0, c0 = 0, c1 = 0, w0, w1, w2, w3, s
    cdef uint32_t w
    cdef uint16_t h
    while n >= 32:
        memcpy(&w0, p, 8)
        memcpy(&w1, p + 8, 8)
        memcpy(&w2, p + 16, 8)
        memcpy(&w3, p + 24, 8)
        a0 += w0
        c0 += a0 < w0
        a1 += w1
        c1 += a1 < w1
        a0 += w2
        c0 += a0 < w2
        a1 += w3
        c1 += a1 < w3
        p += 32
        n -= 32
    while n >= 8:
        memcpy(&w0, p, 8)
        a0 += w0
        c0 += a0 < w0
        p += 8
        n -= 8
    s = a0 + a1
    c0 += c1 + (s < a0)
    if n >= 4:
        memcpy(&w, p, 4)
        c0 += w          # c0 is a count of at most n/8: no overflow
        p += 4
        n -= 4
    if n >= 2:
        memcpy(&h, p, 2)
        c0 += h
        p += 2
        n -= 2
    if n:
        # the odd byte is the high (first) byte of a zero-padded big-endian word
        if host_is_little_endian():
            c0 += p[0]
        else:
            c0 += <uint64_t>p[0] << 8
    return csum_fold64(<uint64_t>csum_fold64(s) + c0)


cdef inline uint32_t csum_net(const unsigned char* p, Py_ssize_t n, uint64_t initial) noexcept nogil:
    """Folded sum (network order) of p[0:n] plus ``initial`` (csum_partial)."""
    cdef uint32_t s = csum_native(p, n)
    cdef uint64_t total
    if host_is_little_endian():
        s = ((s & 0xFF) << 8) | (s >> 8)
    total = s + initial
    if total < initial:   # carry out of bit 63: 2**64 == 1 (mod 0xFFFF)
        total += 1
    return csum_fold64(total)


cdef inline uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint32_t proto,
                                uint64_t length) noexcept nogil:
    return csum_fold64(<uint64_t>(src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF)
                       + proto + length)


cdef inline void ipv4_header(unsigned char* h, Py_ssize_t hlen, uint32_t version,
                             uint32_t tos, uint32_t total_length, uint32_t ident, bint df,
                             bint mf, uint32_t frag_offset, uint32_t ttl, uint32_t proto,
                             uint32_t src, uint32_t dst) noexcept nogil:
    """The 20 fixed bytes of an IPv4 header at ``h``, then the header checksum over
    ``h[0:hlen]`` (options, if any, already at ``h[20:hlen]``; ``ip_send_check``).
    Fields are range-checked by the caller; ``frag_offset`` is in bytes."""
    h[0] = <unsigned char>((version << 4) | (hlen >> 2))
    h[1] = <unsigned char>tos
    wr16(h + 2, total_length)
    wr16(h + 4, ident)
    wr16(h + 6, (frag_offset >> 3) | (0x4000 if df else 0) | (0x2000 if mf else 0))
    h[8] = <unsigned char>ttl
    h[9] = <unsigned char>proto
    wr16(h + 10, 0)
    wr32(h + 12, src)
    wr32(h + 16, dst)
    wr16(h + 10, ~csum_net(h, hlen, 0) & 0xFFFF)
