# cython: language_level=3
"""TCP header and option writers shared by the compiled builders
(wire.build_tcp, tx.tcp_frame); options in the layout and alignment of the
kernel's tcp_options_write.
"""

from libc.stdint cimport uint32_t

from tcpio._fast._buf cimport chk_range, rd16, rd32, wr16, wr32


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


cdef inline Py_ssize_t tcp_ts_ws_write(unsigned char* p, Py_ssize_t i, bint sack_ok,
                                       long long ts_val, long long ts_ecr,
                                       long long wscale) except -1:
    """After the MSS option (at ``p + i``), tcp_options_write's layout: the
    timestamp with SACK-permitted in its lead, or NOP NOP SACK-permitted;
    then NOP window scale.  ``ts_val``/``wscale`` -1: absent.  Returns the
    new offset."""
    if ts_val != -1:
        i += tcp_ts_write(p + i, sack_ok, ts_val, ts_ecr)
    elif sack_ok:
        p[i] = 1
        p[i + 1] = 1
        p[i + 2] = 4
        p[i + 3] = 2
        i += 4
    if wscale != -1:
        chk_range(wscale, 0xFF, "wscale")
        p[i] = 1
        p[i + 1] = 3
        p[i + 2] = 3
        p[i + 3] = <unsigned char>wscale
        i += 4
    return i


cdef inline Py_ssize_t tcp_syn_options_write(unsigned char* p, uint32_t mss, long long wscale,
                                             bint sack_ok, long long ts_val,
                                             uint32_t ts_ecr) except -1:
    """A SYN's options at ``p`` (room for 20 bytes), what wire.build_tcp writes
    for the same TcpOptions: MSS, then tcp_ts_ws_write.  Returns the length."""
    p[0] = 2
    p[1] = 4
    wr16(p + 2, mss)
    return tcp_ts_ws_write(p, 4, sack_ok, ts_val, ts_ecr, wscale)


cdef struct tcp_opts:
    bint has_mss, has_ws, sack_ok, has_ts
    uint32_t mss, ws, ts_val, ts_ecr
    int nblocks
    uint32_t blocks[8]  # edges of at most 4 blocks: (40 - 2) // 8


cdef inline const char* tcp_parse_options(const unsigned char* p, Py_ssize_t n,
                                          tcp_opts* o) noexcept nogil:
    """Like the kernel's ``tcp_parse_options`` (the options of ``n`` bytes at
    ``p`` into ``o``, zeroed by the caller): NULL, or the reason wire's
    ParseError gives.  wire.parse_tcp and rx's SYN path both parse with it."""
    cdef Py_ssize_t i = 0
    cdef unsigned int kind, olen
    cdef int k
    while i < n:
        kind = p[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            return "tcp: option length missing"
        olen = p[i + 1]
        if olen < 2:
            return "tcp: option length < 2"
        if i + olen > n:
            return "tcp: option runs past the header"
        if kind == 2:
            if olen != 4:
                return "tcp: bad MSS option length"
            o.has_mss = True
            o.mss = rd16(p + i + 2)
        elif kind == 3:
            if olen != 3:
                return "tcp: bad window scale option length"
            o.has_ws = True
            o.ws = p[i + 2]
        elif kind == 4:
            if olen != 2:
                return "tcp: bad SACK-permitted option length"
            o.sack_ok = True
        elif kind == 5:
            if olen < 10 or (olen - 2) & 7:
                return "tcp: bad SACK option length"
            # olen <= n <= 40 here, so at most 4 blocks: fits o.blocks
            o.nblocks = (olen - 2) >> 3
            for k in range(2 * o.nblocks):
                o.blocks[k] = rd32(p + i + 2 + 4 * k)
        elif kind == 8:
            if olen != 10:
                return "tcp: bad timestamp option length"
            o.has_ts = True
            o.ts_val = rd32(p + i + 2)
            o.ts_ecr = rd32(p + i + 6)
        i += olen
    return NULL
