# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Transmit-path builders, compiled.  Same API and results as ``tx_py``.

One allocation, one copy of the payload, headers written in place: the
frame is built directly in a fresh ``bytes`` object.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset

from tcpio._fast._buf cimport bytes_subtype_alloc, chk_range, rbuf, rbuf_get, rbuf_release, wr16
from tcpio._fast._csum cimport csum_net, ipv4_header, pseudo_sum
from tcpio._fast._tcphdr cimport (tcp_header_write, tcp_sack_write, tcp_syn_options_write,
                                  tcp_ts_write)

from tcpio._fast.gso import GSO_MAX_SIZE, GsoFrame

__all__ = ["ETH_ZLEN", "DstGen", "TcpDst", "ip_build", "tcp_frame", "tcp_frame6"]

ETH_ZLEN = 60

cdef enum:
    C_ETH_HLEN = 14
    C_ETH_ZLEN = 60
    MAX_TCP_OPTION_SPACE = 40
    IPPROTO_TCP = 6
    C_IPV6_HLEN = 40

# a super-frame's datagram may be this long (BIG TCP, gso.GSO_MAX_SIZE)
cdef Py_ssize_t _gso_max = GSO_MAX_SIZE


cdef int _ipv4_fields_check(long long src, long long dst, long long ident,
                            long long ttl) except -1:
    chk_range(src, 0xFFFFFFFF, "ipv4: src")
    chk_range(dst, 0xFFFFFFFF, "ipv4: dst")
    chk_range(ident, 0xFFFF, "ipv4: ident")
    chk_range(ttl, 0xFF, "ipv4: ttl")
    return 0


cdef Py_ssize_t _hh_len(dst_mac, src_mac) except -1:
    """Length of the Ethernet header to write: 14, or 0 for a bare IP datagram."""
    if dst_mac is None:
        return 0
    if src_mac is None or len(dst_mac) != 6 or len(src_mac) != 6:
        raise ValueError("mac addresses must be 6 bytes")
    return C_ETH_HLEN


cdef object _new_frame(dst_mac, src_mac, Py_ssize_t hh, Py_ssize_t total, unsigned char** ip,
                       bint v6=False, bint gso=False):
    """A frame for an IPv4 (``v6``: IPv6) datagram of ``total`` bytes behind
    ``hh`` bytes of Ethernet header (written here), zero-padded to ETH_ZLEN
    on Ethernet; ``*ip`` is set to where the datagram goes.  ``gso``: a
    gso.GsoFrame (a super-frame, its attributes the caller's to set), built
    in place rather than copied into one afterwards."""
    cdef Py_ssize_t flen = hh + total
    cdef const unsigned char* dm
    cdef const unsigned char* sm
    if gso and total > 0xFFFF:
        # BIG TCP: the length field says 0 (the writer's), the buffer the rest
        if total > _gso_max:
            raise ValueError("gso: super-frame longer than GSO_MAX_SIZE")
    elif v6:
        if total - C_IPV6_HLEN > 0xFFFF:
            raise ValueError("ipv6: payload longer than 65535 bytes")
    elif total > 0xFFFF:
        raise ValueError("ipv4: datagram longer than 65535 bytes")
    if hh and flen < C_ETH_ZLEN:
        flen = C_ETH_ZLEN
    if gso:
        frame = bytes_subtype_alloc(GsoFrame, flen)
    else:
        frame = PyBytes_FromStringAndSize(NULL, flen)
    cdef unsigned char* p = <unsigned char*>PyBytes_AS_STRING(frame)
    if hh:
        dm = dst_mac
        sm = src_mac
        memcpy(p, dm, 6)
        memcpy(p + 6, sm, 6)
        p[12] = 0x86 if v6 else 0x08
        p[13] = 0xDD if v6 else 0x00
        if hh + total < flen:
            memset(p + hh + total, 0, flen - hh - total)
    ip[0] = p + hh
    return frame


def ip_build(dst_mac, src_mac, long long proto, long long src, long long dst,
             long long ident, long long ttl, long long tos, bint df, bint mf,
             long long frag_offset, payload):
    """Ethernet (optional) + IPv4 header (no options) + ``payload`` (see ``tx_py``)."""
    cdef rbuf b
    cdef Py_ssize_t hh
    cdef unsigned char* ip
    chk_range(proto, 0xFF, "ipv4: proto")
    chk_range(tos, 0xFF, "ipv4: tos")
    _ipv4_fields_check(src, dst, ident, ttl)
    if frag_offset & 7 or frag_offset < 0 or frag_offset > 0xFFF8:
        raise ValueError("ipv4: frag_offset must be a multiple of 8 in 0..65528")
    hh = _hh_len(dst_mac, src_mac)
    owner = rbuf_get(payload, &b)
    try:
        frame = _new_frame(dst_mac, src_mac, hh, 20 + b.n, &ip)
        ipv4_header(ip, 20, 4, tos, 20 + b.n, ident, df, mf, frag_offset, ttl, proto, src, dst)
        memcpy(ip + 20, b.p, b.n)
        return frame
    finally:
        rbuf_release(&b)


cdef object _tcp_frame_write(dst_mac, src_mac, Py_ssize_t hh, long long src, long long dst,
                             long long ident, long long ttl, const unsigned char* th,
                             Py_ssize_t thlen, const unsigned char* data, Py_ssize_t n,
                             bint partial=False, bint gso=False):
    """The frame for a TCP header ``th`` (``thlen`` bytes, checksum zero) and
    ``n`` bytes of ``data``: Ethernet (``hh`` 14) or none, IPv4, TCP checksum
    (``partial``: the pseudo-header sum only, CHECKSUM_PARTIAL); ``gso``: as
    a GsoFrame (_new_frame)."""
    cdef unsigned char* ip
    cdef unsigned char* seg
    cdef Py_ssize_t seglen = thlen + n
    cdef uint32_t pseudo
    if data == NULL and not partial:
        raise ValueError("tcp: a payload left to the caller needs a partial checksum")
    frame = _new_frame(dst_mac, src_mac, hh, 20 + seglen, &ip, False, gso)
    seg = ip + 20
    memcpy(seg, th, thlen)
    if data != NULL:        # (NULL: the caller fills the payload: the frame's last n bytes)
        memcpy(seg + thlen, data, n)
    pseudo = pseudo_sum(<uint32_t>src, <uint32_t>dst, IPPROTO_TCP, <uint64_t>seglen)
    if partial:
        wr16(seg + 16, pseudo)
    else:
        wr16(seg + 16, ~csum_net(seg, seglen, pseudo) & 0xFFFF)
    # DF: TCP does path-MTU discovery (ip_tcp_path sends nothing here when it is off)
    # (a BIG TCP super-frame's tot_len is 0: _new_frame let only a GsoFrame be longer)
    ipv4_header(ip, 20, 4, 0, 20 + seglen if 20 + seglen <= 0xFFFF else 0, ident, True, False,
                0, ttl, IPPROTO_TCP, src, dst)
    return frame


cdef object _tcp_frame_write6(dst_mac, src_mac, Py_ssize_t hh, const unsigned char* addrs,
                              uint32_t hlim, const unsigned char* th, Py_ssize_t thlen,
                              const unsigned char* data, Py_ssize_t n, bint partial=False,
                              bint gso=False):
    """``_tcp_frame_write`` for IPv6: ``addrs`` is the 32 bytes of source and
    destination address as the header carries them; the fixed header is
    ip6_output's for TCP (traffic class and flow label 0, hop limit
    ``hlim``, next header TCP), the checksum over the IPv6 pseudo-header
    (RFC 8200 8.1)."""
    cdef unsigned char* ip
    cdef unsigned char* seg
    cdef Py_ssize_t seglen = thlen + n
    cdef uint32_t pseudo
    if data == NULL and not partial:
        raise ValueError("tcp: a payload left to the caller needs a partial checksum")
    frame = _new_frame(dst_mac, src_mac, hh, C_IPV6_HLEN + seglen, &ip, True, gso)
    seg = ip + C_IPV6_HLEN
    memcpy(seg, th, thlen)
    if data != NULL:        # (NULL: the caller fills the payload)
        memcpy(seg + thlen, data, n)
    pseudo = csum_net(addrs, 32, <uint64_t>seglen + IPPROTO_TCP)
    if partial:
        wr16(seg + 16, pseudo)
    else:
        wr16(seg + 16, ~csum_net(seg, seglen, pseudo) & 0xFFFF)
    ip[0] = 0x60
    ip[1] = 0
    ip[2] = 0
    ip[3] = 0
    wr16(ip + 4, <uint32_t>seglen if seglen <= 0xFFFF else 0)     # 0: BIG TCP's
    ip[6] = IPPROTO_TCP
    ip[7] = <unsigned char>hlim
    memcpy(ip + 8, addrs, 32)
    return frame


cdef object tcp_data_frame6(dst_mac, src_mac, Py_ssize_t hh, const unsigned char* addrs,
                            uint32_t hlim, uint32_t sport, uint32_t dport, uint32_t seq,
                            uint32_t ack, uint32_t flags, uint32_t window, long long ts_val,
                            uint32_t ts_ecr, const unsigned char* data, Py_ssize_t n,
                            bint partial=False, bint gso=False):
    """``tcp_data_frame`` over IPv6 (``addrs``: source and destination, 32 bytes)."""
    cdef unsigned char th[32]
    cdef Py_ssize_t thlen = 20
    if ts_val != -1:
        thlen += tcp_ts_write(th + 20, False, ts_val, ts_ecr)
    tcp_header_write(th, sport, dport, seq, ack, thlen, flags, window, 0)
    return _tcp_frame_write6(dst_mac, src_mac, hh, addrs, hlim, th, thlen, data, n, partial,
                             gso)


cdef object tcp_data_frame(dst_mac, src_mac, Py_ssize_t hh, uint32_t src, uint32_t dst,
                          uint32_t ident, uint32_t ttl, uint32_t sport, uint32_t dport,
                          uint32_t seq, uint32_t ack, uint32_t flags, uint32_t window,
                          long long ts_val, uint32_t ts_ecr, const unsigned char* data,
                          Py_ssize_t n, bint partial=False, bint gso=False):
    """``tcp_frame`` for compiled callers (tcp_fast's send loop): no SACK
    blocks, no urgent pointer, fields already in range, ``hh`` from the MACs;
    ``gso``: the frame as a GsoFrame (the caller sets its attributes).
    ``data`` NULL with ``partial``: the payload's ``n`` bytes are left for
    the caller to write, the frame's last ``n`` (a payload spread over
    several buffers is copied once, straight into the frame; with a full
    checksum the sum needs the payload first, so the caller joins it)."""
    cdef unsigned char th[32]
    cdef Py_ssize_t thlen = 20
    if ts_val != -1:
        thlen += tcp_ts_write(th + 20, False, ts_val, ts_ecr)
    tcp_header_write(th, sport, dport, seq, ack, thlen, flags, window, 0)
    return _tcp_frame_write(dst_mac, src_mac, hh, src, dst, ident, ttl, th, thlen, data, n,
                            partial, gso)


cdef bytes tcp_synack_frame(dst_mac, src_mac, Py_ssize_t hh, uint32_t src, uint32_t dst,
                            uint32_t ident, uint32_t ttl, uint32_t sport, uint32_t dport,
                            uint32_t seq, uint32_t ack, uint32_t window, uint32_t mss,
                            long long wscale, bint sack_ok, long long ts_val, uint32_t ts_ecr):
    """A SYN-ACK's frame for compiled callers (syn_fast's cookie path): the
    bytes ``ip_build(..., df=True, wire.build_tcp(..., TcpOptions(mss, wscale,
    sack_ok, ts_val, ts_ecr)))`` gives (``wscale``/``ts_val`` -1: absent)."""
    cdef unsigned char th[40]
    cdef Py_ssize_t thlen = 20 + tcp_syn_options_write(th + 20, mss, wscale, sack_ok, ts_val,
                                                       ts_ecr)
    tcp_header_write(th, sport, dport, seq, ack, thlen, 0x12, window, 0)
    return _tcp_frame_write(dst_mac, src_mac, hh, src, dst, ident, ttl, th, thlen, th, 0)


cdef Py_ssize_t _established_th(unsigned char* th, long long sport, long long dport,
                                long long seq, long long ack, long long flags,
                                long long window, long long ts_val, long long ts_ecr,
                                sack_blocks, long long urg_ptr) except -1:
    """The TCP header of a segment after the handshake at ``th`` (60 bytes of
    room), its checksum zero; returns its length.  The options as
    tcp_options_write lays them out: NOP NOP timestamp (unless ts_val is -1),
    then NOP NOP SACK."""
    cdef Py_ssize_t olen = 0, thlen
    if ts_val != -1:
        olen = tcp_ts_write(th + 20, False, ts_val, ts_ecr)
    if sack_blocks:
        # a tuple snapshot: its length bounds what is written
        olen += tcp_sack_write(th + 20 + olen, MAX_TCP_OPTION_SPACE - olen, tuple(sack_blocks))
    thlen = 20 + olen
    tcp_header_write(th, sport, dport, seq, ack, thlen, flags, window, urg_ptr)
    return thlen


def tcp_frame(dst_mac, src_mac, long long src, long long dst, long long ident,
              long long ttl, long long sport, long long dport, long long seq, long long ack,
              long long flags, long long window, long long ts_val, long long ts_ecr,
              sack_blocks, payload, long long urg_ptr, bint partial=False, bint gso=False):
    """Ethernet (optional) + IPv4 + TCP (+ established options) + ``payload`` (see ``tx_py``;
    ``gso``: built as a GsoFrame)."""
    cdef unsigned char th[60]     # TCP header + options, copied into the frame
    cdef rbuf b
    cdef Py_ssize_t hh, thlen
    _ipv4_fields_check(src, dst, ident, ttl)
    thlen = _established_th(th, sport, dport, seq, ack, flags, window, ts_val, ts_ecr,
                            sack_blocks, urg_ptr)
    hh = _hh_len(dst_mac, src_mac)
    owner = rbuf_get(payload, &b)
    try:
        return _tcp_frame_write(dst_mac, src_mac, hh, src, dst, ident, ttl, th, thlen, b.p, b.n,
                                partial, gso)
    finally:
        rbuf_release(&b)


# tcp_frame6's last address pair and its 32 header bytes (two int.to_bytes
# and a concatenation were a third of the call; every ACK of a connection
# names the same pair)
cdef object _src6 = None
cdef object _dst6 = None
cdef bytes _addrs6 = None


def tcp_frame6(dst_mac, src_mac, src, dst, long long hlim, long long sport, long long dport,
               long long seq, long long ack, long long flags, long long window,
               long long ts_val, long long ts_ecr, sack_blocks, payload, long long urg_ptr,
               bint partial=False, bint gso=False):
    """``tcp_frame`` over IPv6: Ethernet (optional) + IPv6 + TCP (see ``tx_py``)."""
    cdef unsigned char th[60]
    cdef rbuf b
    cdef Py_ssize_t hh, thlen
    global _src6, _dst6, _addrs6
    chk_range(hlim, 0xFF, "ipv6: hop limit")
    if type(src) is int and type(dst) is int and src == _src6 and dst == _dst6:
        addrs = _addrs6         # a connection's segments repeat its pair
    else:
        try:
            addrs = src.to_bytes(16, "big") + dst.to_bytes(16, "big")
        except OverflowError:
            raise ValueError("ipv6: address out of range") from None
        _src6, _dst6, _addrs6 = src, dst, addrs
    thlen = _established_th(th, sport, dport, seq, ack, flags, window, ts_val, ts_ecr,
                            sack_blocks, urg_ptr)
    hh = _hh_len(dst_mac, src_mac)
    owner = rbuf_get(payload, &b)
    try:
        return _tcp_frame_write6(dst_mac, src_mac, hh, addrs, hlim, th, thlen, b.p, b.n,
                                 partial, gso)
    finally:
        rbuf_release(&b)


cdef class DstGen:
    """The host's route generation (Linux's rt_genid, with the neighbour's
    hh updates folded in): ``genid`` moves on with every change a cached
    transmit path depends on (addresses, routes, MTUs, a learned path MTU,
    links, a neighbour that leaves the connected states, changes its MAC or
    goes away), so a ``TcpDst`` taken before is stale.  One object per host
    (``Host.dst_gen``), which every TcpDst holds: the check is two integer
    reads, in C from the compiled send paths."""

    def __init__(self):
        self.genid = 0


cdef class TcpDst:
    """Where TCP's whole frames to one destination go (the kernel's dst
    entry as a socket caches it, sk_dst_cache, with the neighbour's cached
    hardware header, neigh_hh_output): ``path`` (ifindex, dst_mac, src_mac,
    src) or None when they never go whole (a local, broadcast or multicast
    destination: ip_output's general path), ``daddr`` the destination as TCP
    tags it (an IPv6 one above bit 128), ``mtu`` the route's MTU (a
    learned path MTU included), ``limit`` the largest datagram that leaves
    whole (-1: none, a locked MTU), the device's TSO size and checksum
    offload as sk_setup_caps records them, the neighbour (its ``used``
    stamp) and the host's set of stopped transmit queues.  Valid while
    ``genid`` is ``gen.genid`` and, with a learned path MTU, before it
    ``expires`` (dst_check; ipv4_mtu's expiry test); ip_output.ip_tcp_dst
    makes them."""

    def __init__(self, gen, daddr, mtu, limit, path, neigh, stopped, gso_max_size,
                 csum_partial, expires):
        self.gen = gen
        self.daddr = daddr
        self.genid = gen.genid
        self.mtu = mtu
        self.limit = limit
        self.path = path
        self.ifindex = path[0] if path is not None else -1
        self.neigh = neigh
        self.stopped = stopped
        self.gso_max_size = gso_max_size
        self.csum_partial = csum_partial
        self.expires = expires
