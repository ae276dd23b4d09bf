# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Header parsing and building, compiled.  Same API as ``wire_py`` (read its docstrings).

Every parser reads the whole header from a raw pointer into C locals, then
creates the record with ``__new__`` and direct field stores (no argument
parsing).  Builders write into a fresh ``bytes`` (or the caller's buffer) and
checksum it in place with the kernel from ``_csum.pxd``.

Records are cdef classes with readonly attributes; they compare equal (and
hash equal) to ``wire_py`` records with the same field values.  Constructors
normalise like the twin's (bytes-like -> bytes, SACK block list -> tuple).
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset

from tcpio._fast._buf cimport (chk_range, rbuf, rbuf_get, rbuf_release, rd16, rd32, wr16,
                               wr32)
from tcpio._fast._csum cimport csum_net, ipv4_header, pseudo_sum
from tcpio._fast._tcphdr cimport (tcp_header_write, tcp_opts, tcp_parse_options,
                                  tcp_sack_write, tcp_ts_ws_write)

from tcpio._fast.gso import GsoFrame as _GsoFrame

__all__ = [
    "ACK", "ARPHRD_ETHER", "ARPOP_REPLY", "ARPOP_REQUEST", "ARP_PLEN", "CWR", "ECE",
    "ETH_ALEN", "ETH_HLEN", "ETH_P_ARP", "ETH_P_IP", "ETH_P_IPV6", "FIN", "ICMP_HLEN",
    "IPPROTO_ICMP", "IPPROTO_TCP", "IPPROTO_UDP", "IP_HLEN", "MAX_TCP_OPTION_SPACE", "PSH",
    "RST", "SYN", "TCPOPT_EOL", "TCPOPT_MSS", "TCPOPT_NOP", "TCPOPT_SACK", "TCPOPT_SACK_PERM",
    "TCPOPT_TIMESTAMP", "TCPOPT_WINDOW", "TCP_HLEN", "UDP_HLEN", "URG", "ArpPacket",
    "EthHeader", "IPv4Header", "IcmpHeader", "ParseError", "TcpHeader", "TcpOptions",
    "UdpHeader", "build_arp", "build_eth", "build_icmp", "build_ipv4", "build_tcp",
    "build_udp", "line_ready", "parse_arp", "parse_eth", "parse_icmp", "parse_ipv4",
    "parse_tcp", "parse_udp",
]

# --- constants (Linux names; the same values as wire_py) -------------------------
ETH_HLEN = 14
ETH_ALEN = 6
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
ARP_PLEN = 28
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IP_HLEN = 20
ICMP_HLEN = 8
UDP_HLEN = 8
TCP_HLEN = 20
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
TCPOPT_EOL = 0
TCPOPT_NOP = 1
TCPOPT_MSS = 2
TCPOPT_WINDOW = 3
TCPOPT_SACK_PERM = 4
TCPOPT_SACK = 5
TCPOPT_TIMESTAMP = 8
MAX_TCP_OPTION_SPACE = 40

cdef enum:
    C_IP_DF = 0x4000
    C_IP_MF = 0x2000
    C_IP_OFFMASK = 0x1FFF


class ParseError(ValueError):
    """A header is truncated or malformed (the caller drops and counts it)."""


# --- argument checks (builders raise ValueError like wire_py) -------------------
cdef inline uint32_t _chk_addr(object v) except? 0xFFFFFFFF:
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError("address out of range")
    return <uint32_t>v


cdef inline int _copy_mac(unsigned char* dst, object mac) except -1:
    cdef rbuf b
    owner = rbuf_get(mac, &b)
    try:
        if b.n != 6:
            raise ValueError("MAC address must be 6 bytes")
        memcpy(dst, b.p, 6)
    finally:
        rbuf_release(&b)
    return 0


cdef inline bytes _new_bytes(Py_ssize_t n):
    return PyBytes_FromStringAndSize(NULL, n)


cdef inline unsigned char* _wptr(bytes b) noexcept:
    # a bytes object we just created and nobody else has seen yet
    return <unsigned char*>PyBytes_AS_STRING(b)


# --- records -------------------------------------------------------------------
cdef class _Record:
    """Value object: equality, hash and repr by field (``_fields`` per class)."""

    _fields = ()

    def _values(self):
        return tuple([getattr(self, f) for f in self._fields])

    def __eq__(self, other):
        if type(other) is type(self):
            return self._values() == other._values()
        # the pure twin's record of the same name compares equal too
        if type(other).__name__ != type(self).__name__:
            return NotImplemented
        try:
            return self._values() == tuple([getattr(other, f) for f in self._fields])
        except AttributeError:
            return False

    def __hash__(self):
        return hash((type(self).__name__, self._values()))

    def __repr__(self):
        body = ", ".join([f"{f}={getattr(self, f)!r}" for f in self._fields])
        return f"{type(self).__name__}({body})"


cdef class EthHeader(_Record):
    _fields = ("dst", "src", "ethertype")
    cdef readonly bytes dst
    cdef readonly bytes src
    cdef readonly int ethertype

    def __init__(self, dst, src, int ethertype):
        self.dst = dst if type(dst) is bytes else bytes(dst)
        self.src = src if type(src) is bytes else bytes(src)
        self.ethertype = ethertype


cdef class ArpPacket(_Record):
    """An Ethernet/IPv4 ARP packet (``htype=1, ptype=0x0800, hlen=6, plen=4``)."""

    _fields = ("op", "sha", "spa", "tha", "tpa")
    cdef readonly int op
    cdef readonly bytes sha
    cdef readonly unsigned int spa
    cdef readonly bytes tha
    cdef readonly unsigned int tpa

    def __init__(self, int op, sha, unsigned int spa, tha, unsigned int tpa):
        self.op = op
        self.sha = sha if type(sha) is bytes else bytes(sha)
        self.spa = spa
        self.tha = tha if type(tha) is bytes else bytes(tha)
        self.tpa = tpa


cdef class IPv4Header(_Record):
    """IPv4 header; ``frag_offset`` is in bytes (the wire field times 8)."""

    _fields = ("version", "ihl", "tos", "total_length", "ident", "df", "mf",
               "frag_offset", "ttl", "proto", "checksum", "src", "dst", "options")
    cdef readonly int version, ihl, tos, total_length, ident
    cdef readonly bint df, mf
    cdef readonly int frag_offset, ttl, proto, checksum
    cdef readonly unsigned int src, dst
    cdef readonly bytes options

    def __init__(self, int version=4, int ihl=5, int tos=0, int total_length=0, int ident=0,
                 bint df=False, bint mf=False, int frag_offset=0, int ttl=64, int proto=0,
                 int checksum=0, unsigned int src=0, unsigned int dst=0, options=b""):
        self.version = version
        self.ihl = ihl
        self.tos = tos
        self.total_length = total_length
        self.ident = ident
        self.df = df
        self.mf = mf
        self.frag_offset = frag_offset
        self.ttl = ttl
        self.proto = proto
        self.checksum = checksum
        self.src = src
        self.dst = dst
        self.options = options if type(options) is bytes else bytes(options)


cdef class IcmpHeader(_Record):
    """ICMP header; ``rest`` is the 32-bit word after the checksum (id/seq, MTU...)."""

    _fields = ("type", "code", "checksum", "rest")
    cdef readonly int type, code, checksum
    cdef readonly unsigned int rest

    def __init__(self, int type, int code, int checksum, unsigned int rest):
        self.type = type
        self.code = code
        self.checksum = checksum
        self.rest = rest


cdef class UdpHeader(_Record):
    _fields = ("sport", "dport", "length", "checksum")
    cdef readonly int sport, dport, length, checksum

    def __init__(self, int sport, int dport, int length, int checksum):
        self.sport = sport
        self.dport = dport
        self.length = length
        self.checksum = checksum


cdef class TcpOptions(_Record):
    """The TCP options the stack understands (what ``tcp_parse_options`` fills in).

    ``ts_val``/``ts_ecr`` are both None or both ints; ``sack_blocks`` is a tuple
    of ``(start, end)`` sequence-number pairs.
    """

    _fields = ("mss", "wscale", "sack_ok", "sack_blocks", "ts_val", "ts_ecr")
    cdef readonly object mss, wscale
    cdef readonly bint sack_ok
    cdef readonly tuple sack_blocks
    cdef readonly object ts_val, ts_ecr

    def __init__(self, mss=None, wscale=None, bint sack_ok=False, sack_blocks=(),
                 ts_val=None, ts_ecr=None):
        self.mss = mss
        self.wscale = wscale
        self.sack_ok = sack_ok
        self.sack_blocks = (sack_blocks if type(sack_blocks) is tuple
                            else tuple([(start, end) for start, end in sack_blocks]))
        self.ts_val = ts_val
        self.ts_ecr = ts_ecr


cdef TcpOptions _NO_OPTIONS = TcpOptions()


cdef class TcpHeader(_Record):
    """TCP header; ``doff`` in 32-bit words, ``flags`` the byte of FIN..CWR bits."""

    _fields = ("sport", "dport", "seq", "ack", "doff", "flags", "window", "checksum",
               "urg_ptr", "options")
    cdef readonly int sport, dport
    cdef readonly unsigned int seq, ack
    cdef readonly int doff, flags, window, checksum, urg_ptr
    cdef readonly object options

    def __init__(self, int sport, int dport, unsigned int seq, unsigned int ack, int doff,
                 int flags, int window, int checksum, int urg_ptr, options=None):
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.doff = doff
        self.flags = flags
        self.window = window
        self.checksum = checksum
        self.urg_ptr = urg_ptr
        self.options = _NO_OPTIONS if options is None else options


# --- Ethernet ------------------------------------------------------------------
def parse_eth(buf, Py_ssize_t offset=0):
    cdef rbuf b
    cdef EthHeader h
    owner = rbuf_get(buf, &b)
    try:
        if offset < 0 or b.n - offset < 14:
            raise ParseError("ethernet: truncated")
        h = EthHeader.__new__(EthHeader)
        h.dst = PyBytes_FromStringAndSize(<const char*>b.p + offset, 6)
        h.src = PyBytes_FromStringAndSize(<const char*>b.p + offset + 6, 6)
        h.ethertype = rd16(b.p + offset + 12)
    finally:
        rbuf_release(&b)
    return h


def build_eth(buf, Py_ssize_t off, dst, src, long long ethertype):
    cdef Py_buffer view
    cdef unsigned char hdr[14]
    _copy_mac(hdr, dst)
    _copy_mac(hdr + 6, src)
    chk_range(ethertype, 0xFFFF, "ethertype")
    wr16(hdr + 12, <uint32_t>ethertype)
    PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    try:
        if off < 0 or view.len - off < 14:
            raise ValueError(f"buffer too small: need 14 bytes at offset {off}")
        memcpy(<unsigned char*>view.buf + off, hdr, 14)
    finally:
        PyBuffer_Release(&view)
    return 14


# --- ARP -----------------------------------------------------------------------
def parse_arp(buf, Py_ssize_t offset=0):
    cdef rbuf b
    cdef ArpPacket a
    cdef const unsigned char* p
    owner = rbuf_get(buf, &b)
    try:
        if offset < 0 or b.n - offset < 28:
            raise ParseError("arp: truncated")
        p = b.p + offset
        if rd16(p) != 1 or rd16(p + 2) != 0x0800 or p[4] != 6 or p[5] != 4:
            raise ParseError("arp: not Ethernet/IPv4")
        a = ArpPacket.__new__(ArpPacket)
        a.op = rd16(p + 6)
        a.sha = PyBytes_FromStringAndSize(<const char*>p + 8, 6)
        a.spa = rd32(p + 14)
        a.tha = PyBytes_FromStringAndSize(<const char*>p + 18, 6)
        a.tpa = rd32(p + 24)
    finally:
        rbuf_release(&b)
    return a


def build_arp(long long op, sha, spa, tha, tpa):
    cdef bytes out = _new_bytes(28)
    cdef unsigned char* p = _wptr(out)
    _copy_mac(p + 8, sha)
    _copy_mac(p + 18, tha)
    chk_range(op, 0xFFFF, "op")
    wr16(p, 1)
    wr16(p + 2, 0x0800)
    p[4] = 6
    p[5] = 4
    wr16(p + 6, <uint32_t>op)
    wr32(p + 14, _chk_addr(spa))
    wr32(p + 24, _chk_addr(tpa))
    return out


# --- IPv4 ----------------------------------------------------------------------
def parse_ipv4(buf, Py_ssize_t offset=0):
    cdef rbuf b
    cdef IPv4Header h
    cdef const unsigned char* p
    cdef uint32_t frag, hlen
    owner = rbuf_get(buf, &b)
    try:
        if offset < 0 or b.n - offset < 20:
            raise ParseError("ipv4: truncated")
        p = b.p + offset
        hlen = (p[0] & 0x0F) << 2
        if hlen > 20 and b.n - offset < hlen:
            raise ParseError("ipv4: options truncated")
        h = IPv4Header.__new__(IPv4Header)
        h.version = p[0] >> 4
        h.ihl = p[0] & 0x0F
        h.tos = p[1]
        h.total_length = rd16(p + 2)
        h.ident = rd16(p + 4)
        frag = rd16(p + 6)
        h.df = (frag & C_IP_DF) != 0
        h.mf = (frag & C_IP_MF) != 0
        h.frag_offset = (frag & C_IP_OFFMASK) << 3
        h.ttl = p[8]
        h.proto = p[9]
        h.checksum = rd16(p + 10)
        h.src = rd32(p + 12)
        h.dst = rd32(p + 16)
        if hlen > 20:
            h.options = PyBytes_FromStringAndSize(<const char*>p + 20, hlen - 20)
        else:
            h.options = b""  # IHL < 5 is ip_rcv's to reject
    finally:
        rbuf_release(&b)
    return h


def build_ipv4(buf, Py_ssize_t off, hdr):
    """Write ``hdr`` at ``buf[off:]`` and return its length (see ``wire_py.build_ipv4``)."""
    cdef Py_buffer view
    cdef rbuf ob
    cdef unsigned char h[60]
    cdef Py_ssize_t olen, hlen
    cdef long long version, tos, total_length, ident, ttl, proto, frag_offset
    cdef bint df, mf
    # any object with the fields (this module's record or the pure twin's); a cold path
    version = hdr.version
    tos = hdr.tos
    total_length = hdr.total_length
    ident = hdr.ident
    df = hdr.df
    mf = hdr.mf
    frag_offset = hdr.frag_offset
    ttl = hdr.ttl
    proto = hdr.proto
    src_o = hdr.src
    dst_o = hdr.dst
    options = hdr.options
    memset(h, 0, 60)
    owner = rbuf_get(options, &ob)
    try:
        olen = ob.n
        if olen > 40 or (olen + 3) & ~3 > 40:
            raise ValueError("ipv4: options longer than 40 bytes")
        memcpy(h + 20, ob.p, olen)   # zero padding to 4 bytes comes from the memset
    finally:
        rbuf_release(&ob)
    olen = (olen + 3) & ~3
    hlen = 20 + olen
    PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    try:
        if off < 0 or view.len - off < hlen:
            raise ValueError(f"buffer too small: need {hlen} bytes at offset {off}")
        if frag_offset & 7 or not 0 <= frag_offset <= (C_IP_OFFMASK << 3):
            raise ValueError("ipv4: frag_offset must be a multiple of 8 in 0..65528")
        if not 0 <= version <= 15:
            raise ValueError("ipv4: version out of range")
        chk_range(tos, 0xFF, "tos")
        chk_range(total_length, 0xFFFF, "total_length")
        chk_range(ident, 0xFFFF, "ident")
        chk_range(ttl, 0xFF, "ttl")
        chk_range(proto, 0xFF, "proto")
        ipv4_header(h, hlen, version, tos, total_length, ident, df, mf, frag_offset, ttl, proto,
                    _chk_addr(src_o), _chk_addr(dst_o))
        memcpy(<unsigned char*>view.buf + off, h, hlen)
    finally:
        PyBuffer_Release(&view)
    return hlen


# --- ICMP ----------------------------------------------------------------------
def parse_icmp(buf, Py_ssize_t offset=0):
    cdef rbuf b
    cdef IcmpHeader h
    cdef const unsigned char* p
    owner = rbuf_get(buf, &b)
    try:
        if offset < 0 or b.n - offset < 8:
            raise ParseError("icmp: truncated")
        p = b.p + offset
        h = IcmpHeader.__new__(IcmpHeader)
        h.type = p[0]
        h.code = p[1]
        h.checksum = rd16(p + 2)
        h.rest = rd32(p + 4)
    finally:
        rbuf_release(&b)
    return h


def build_icmp(long long type, long long code, long long rest, payload=b""):
    """ICMP header + ``payload`` with the checksum filled in."""
    cdef rbuf pb
    cdef bytes out
    cdef unsigned char* p
    chk_range(type, 0xFF, "type")
    chk_range(code, 0xFF, "code")
    chk_range(rest, 0xFFFFFFFF, "rest")
    owner = rbuf_get(payload, &pb)
    try:
        out = _new_bytes(8 + pb.n)
        p = _wptr(out)
        p[0] = <unsigned char>type
        p[1] = <unsigned char>code
        wr16(p + 2, 0)
        wr32(p + 4, <uint32_t>rest)
        memcpy(p + 8, pb.p, pb.n)
    finally:
        rbuf_release(&pb)
    wr16(p + 2, ~csum_net(p, 8 + pb.n, 0) & 0xFFFF)
    return out


# --- UDP -----------------------------------------------------------------------
def parse_udp(buf, Py_ssize_t offset=0):
    cdef rbuf b
    cdef UdpHeader h
    cdef const unsigned char* p
    owner = rbuf_get(buf, &b)
    try:
        if offset < 0 or b.n - offset < 8:
            raise ParseError("udp: truncated")
        p = b.p + offset
        h = UdpHeader.__new__(UdpHeader)
        h.sport = rd16(p)
        h.dport = rd16(p + 2)
        h.length = rd16(p + 4)
        h.checksum = rd16(p + 6)
    finally:
        rbuf_release(&b)
    return h


def build_udp(src, dst, long long sport, long long dport, payload=b""):
    """UDP header + ``payload``, checksummed (a computed 0 is sent as 0xFFFF)."""
    cdef rbuf pb
    cdef bytes out
    cdef unsigned char* p
    cdef Py_ssize_t length
    cdef uint32_t s, d, check
    owner = rbuf_get(payload, &pb)
    try:
        length = 8 + pb.n
        if length > 0xFFFF:
            raise ValueError("udp: datagram longer than 65535 bytes")
        chk_range(sport, 0xFFFF, "sport")
        chk_range(dport, 0xFFFF, "dport")
        s = _chk_addr(src)
        d = _chk_addr(dst)
        out = _new_bytes(length)
        p = _wptr(out)
        wr16(p, <uint32_t>sport)
        wr16(p + 2, <uint32_t>dport)
        wr16(p + 4, <uint32_t>length)
        wr16(p + 6, 0)
        memcpy(p + 8, pb.p, pb.n)
    finally:
        rbuf_release(&pb)
    check = ~csum_net(p, length, pseudo_sum(s, d, 17, <uint64_t>length)) & 0xFFFF
    wr16(p + 6, check if check else 0xFFFF)
    return out


# --- TCP -----------------------------------------------------------------------
cdef TcpOptions _options_record(tcp_opts* o):
    cdef TcpOptions r = TcpOptions.__new__(TcpOptions)
    r.mss = o.mss if o.has_mss else None
    r.wscale = o.ws if o.has_ws else None
    r.sack_ok = o.sack_ok
    if o.nblocks:
        r.sack_blocks = tuple([(o.blocks[2 * k], o.blocks[2 * k + 1])
                               for k in range(o.nblocks)])
    else:
        r.sack_blocks = ()
    r.ts_val = o.ts_val if o.has_ts else None
    r.ts_ecr = o.ts_ecr if o.has_ts else None
    return r


def parse_tcp(buf, Py_ssize_t offset=0):
    cdef rbuf b
    cdef TcpHeader h
    cdef const unsigned char* p
    cdef Py_ssize_t hlen
    cdef tcp_opts o
    cdef const char* err = NULL
    owner = rbuf_get(buf, &b)
    try:
        if offset < 0 or b.n - offset < 20:
            raise ParseError("tcp: truncated")
        p = b.p + offset
        hlen = (p[12] >> 4) << 2
        if hlen < 20:
            raise ParseError("tcp: data offset < 5")
        if b.n - offset < hlen:
            raise ParseError("tcp: options truncated")
        memset(&o, 0, sizeof(o))
        if hlen > 20:
            err = tcp_parse_options(p + 20, hlen - 20, &o)
            if err != NULL:
                raise ParseError(err.decode("ascii"))
        h = TcpHeader.__new__(TcpHeader)
        h.sport = rd16(p)
        h.dport = rd16(p + 2)
        h.seq = rd32(p + 4)
        h.ack = rd32(p + 8)
        h.doff = p[12] >> 4
        h.flags = p[13]
        h.window = rd16(p + 14)
        h.checksum = rd16(p + 16)
        h.urg_ptr = rd16(p + 18)
    finally:
        rbuf_release(&b)
    if hlen == 20:
        h.options = _NO_OPTIONS
    else:
        h.options = _options_record(&o)
    return h


cdef Py_ssize_t _write_tcp_options(unsigned char* p, object opts) except -1:
    """Options in the order and alignment of the kernel's ``tcp_options_write``.

    ``p`` has room for 40 bytes; returns the length written (a multiple of 4).
    """
    cdef Py_ssize_t i = 0
    cdef long long v
    cdef bint sack_ok
    mss = opts.mss
    ts_val = opts.ts_val
    wscale = opts.wscale
    sack_ok = opts.sack_ok
    blocks = tuple(opts.sack_blocks)   # a snapshot: its length bounds what we write
    if mss is not None:
        v = mss
        chk_range(v, 0xFFFF, "mss")
        p[0] = 2
        p[1] = 4
        wr16(p + 2, <uint32_t>v)
        i = 4
    ts_ecr = opts.ts_ecr
    if ts_val is not None:
        v = ts_val
        chk_range(v, 0xFFFFFFFF, "ts_val")   # (-1 is "absent" below)
    if wscale is not None:
        v = wscale
        chk_range(v, 0xFF, "wscale")
    i = tcp_ts_ws_write(p, i, sack_ok, -1 if ts_val is None else ts_val,
                        ts_ecr if ts_ecr is not None and ts_val is not None else 0,
                        -1 if wscale is None else wscale)
    if blocks:
        i += tcp_sack_write(p + i, 40 - i, blocks)
    return i


def build_tcp(src, dst, long long sport, long long dport, long long seq, long long ack,
              long long flags, long long window, options=None, payload=b"",
              long long urg_ptr=0):
    """TCP header (+ options, padded to 4 bytes) + ``payload``, checksummed."""
    cdef unsigned char h[60]
    cdef Py_ssize_t olen = 0, hlen, total
    cdef rbuf pb
    cdef bytes out
    cdef unsigned char* p
    cdef uint32_t s, d
    if options is not None:
        olen = _write_tcp_options(h + 20, options)
    hlen = 20 + olen
    tcp_header_write(h, sport, dport, seq, ack, hlen, flags, window, urg_ptr)
    s = _chk_addr(src)
    d = _chk_addr(dst)
    owner = rbuf_get(payload, &pb)
    try:
        total = hlen + pb.n
        out = _new_bytes(total)
        p = _wptr(out)
        memcpy(p, h, hlen)
        memcpy(p + hlen, pb.p, pb.n)
    finally:
        rbuf_release(&pb)
    wr16(p + 16, ~csum_net(p, total, pseudo_sum(s, d, 6, <uint64_t>total)) & 0xFFFF)
    return out


# --- a MemoryWire line's batch (devices/memory.py DelayLine.push_batch) -----------

def line_ready(frames, list ready, mtu):
    """Put ``frames`` on a line that only has an MTU (see wire_py.line_ready):
    ``(count, over, nbytes)`` of the plain frames."""
    cdef Py_ssize_t count = 0, over = 0, nbytes = 0, n, limit = -1
    if mtu is not None:
        limit = mtu
    for frame in frames:
        if type(frame) is _GsoFrame:
            frame.csum_valid = True
            ready.append(frame)
            continue
        n = len(frame)
        count += 1
        if limit >= 0 and n > limit:
            over += 1
            continue
        nbytes += n
        ready.append(frame if type(frame) is bytes else bytes(frame))
    return count, over, nbytes
