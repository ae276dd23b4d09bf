# cython: language_level=3
"""TCP header and option writers shared by the compiled builders
(wire.build_tcp, tx.tcp_frame); options in the layout and alignment of the
kernel's tcp_options_write.
"""

from libc.stdint cimport uint32_t

from tcpio._fast._buf cimport chk_range, wr16, wr32


cdef inline int tcp_header_write(unsigned char* h, long long sport, long long dport,
                                 long long seq, long long ack, Py_ssize_t hlen, long long flags,
                                 long long window, long long urg_ptr) except -1:
    """The 20 fixed bytes of a TCP header at ``h``, checksum zero, data offset
    from ``hlen`` (header + options, a multiple of 4); ValueError for a field
    out of range, before anything is written."""
    chk_range(sport, 0xFFFF, "sport")
    chk_range(dport, 0xFFFF, "dport")
    chk_range(seq, 0xFFFFFFFF, "seq")
    chk_range(ack, 0xFFFFFFFF, "ack")
    chk_range(flags, 0xFF, "flags")
    chk_range(window, 0xFFFF, "window")
    chk_range(urg_ptr, 0xFFFF, "urg_ptr")
    wr16(h, <uint32_t>sport)
    wr16(h + 2, <uint32_t>dport)
    wr32(h + 4, <uint32_t>seq)
    wr32(h + 8, <uint32_t>ack)
    h[12] = <unsigned char>((hlen >> 2) << 4)
    h[13] = <unsigned char>flags
    wr16(h + 14, <uint32_t>window)
    wr16(h + 16, 0)
    wr16(h + 18, <uint32_t>urg_ptr)
    return 0


cdef inline Py_ssize_t tcp_ts_write(unsigned char* p, bint sack_ok, long long ts_val,
                                    long long ts_ecr) except -1:
    """The timestamp option, 4-byte aligned, at ``p``; returns 12.  Its two
    leading bytes are NOP NOP, or SACK-permitted (which rides there in a SYN)."""
    chk_range(ts_val, 0xFFFFFFFF, "ts_val")
    chk_range(ts_ecr, 0xFFFFFFFF, "ts_ecr")
    p[0] = 4 if sack_ok else 1
    p[1] = 2 if sack_ok else 1
    p[2] = 8
    p[3] = 10
    wr32(p + 4, <uint32_t>ts_val)
    wr32(p + 8, <uint32_t>ts_ecr)
    return 12


cdef inline Py_ssize_t tcp_sack_write(unsigned char* p, Py_ssize_t room, tuple blocks) except -1:
    """NOP NOP SACK with ``blocks`` ((start, end) pairs) at ``p``, where ``room``
    bytes are left of the 40; returns its length.  ValueError if it does not fit."""
    cdef Py_ssize_t i = 4, n = len(blocks)
    cdef long long v
    if 4 + 8 * n > room:
        raise ValueError("tcp: options longer than 40 bytes")
    p[0] = 1
    p[1] = 1
    p[2] = 5
    p[3] = <unsigned char>(2 + 8 * n)
    for start, end in blocks:
        v = start
        chk_range(v, 0xFFFFFFFF, "sack block edge")
        wr32(p + i, <uint32_t>v)
        v = end
        chk_range(v, 0xFFFFFFFF, "sack block edge")
        wr32(p + i + 4, <uint32_t>v)
        i += 8
    return i
