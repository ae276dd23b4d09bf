# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Receive-path classifier, compiled.  Same API and results as ``rx_py``.

One call per frame does what the layered Python path spreads over a dozen
calls (DESIGN principle 3): Ethernet demux, ip_rcv's checks, and for an
unfragmented UDP datagram or TCP segment the transport length checks and
checksum, all on a raw pointer into the frame (``_buf.pxd``: no typed
memoryview, whose acquisition alone costs more than the checks).  See
``rx_py`` for the contract: ``None`` means "take the slow path", which
re-checks and counts; a tuple means "deliver".  An IPv6 frame goes to
``_rx_tcp6`` (taken whole, a delivery tuple, or the layered path).

``vnet_rx`` is the TAP's side of the same path: the frame behind a
virtio-net header in one call (the copy, a partial checksum completed, a
TCP super-frame as a GsoFrame); see ``rx_py.vnet_rx``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from cpython.object cimport PyObject

from tcpio._fast._buf cimport (bytes_subtype_alloc, rbuf, rbuf_get, rbuf_release, rd16,
                               rd32, wr16)
from tcpio._fast._csum cimport csum_net, pseudo_sum
from tcpio._fast._tcphdr cimport tcp_opts, tcp_parse_options
from tcpio._fast.ehash cimport EHash, EHash6
from tcpio._fast.syn_fast cimport SynPath, syn_cookie
from tcpio._fast.tcp_fast cimport TcpCb, _rcv_established_c, _rcv_window_ack_c

from tcpio._fast import load as _load
from tcpio._fast.gso import GsoFrame

__all__ = ["ETH_HLEN", "IPPROTO_TCP", "IPPROTO_UDP", "RX_FLAGGED_MIN", "RX_TAKEN6", "BatchEnd",
           "RxRun", "host_defer_loopback", "host_release_loopback", "rx_batch", "rx_classify",
           "rx_receive", "rx_run", "stack_kick", "stack_on_frames", "stack_time", "vnet_rx",
           "wake_socks"]

# The same header record type as the rest of the core uses.
_parse_ipv4 = _load("wire").parse_ipv4

ETH_HLEN = 14
IPPROTO_TCP = 6
IPPROTO_UDP = 17
RX_FLAGGED_MIN = 2048
RX_TAKEN6 = 6
_from_bytes = int.from_bytes

cdef enum:
    C_ETH_HLEN = 14
    C_TCP = 6
    C_UDP = 17
    # flags header prediction looks at: FIN SYN RST URG must be off, ACK on
    C_PRED_MASK = 0x37
    C_TCPHDR_ACK = 0x10
    # flags of a SYN the stateless path answers: SYN, and no FIN RST ACK
    C_SYN_MASK = 0x17
    C_TCPHDR_SYN = 0x02
    C_TCPOLEN_TSTAMP_ALIGNED = 32   # header + NOP NOP TS(10)
    # <linux/virtio_net.h>
    C_VNET_HDR_LEN = 10
    C_F_NEEDS_CSUM = 1
    C_F_DATA_VALID = 2
    C_GSO_NONE = 0
    C_GSO_TCPV4 = 1
    C_GSO_TCPV6 = 4
    C_GSO_ECN = 0x80
    C_RX_FLAGGED_MIN = 2048
    C_IPV6_HLEN = 40


cdef inline bint _mac_is(const unsigned char* p, object mac):
    # ``mac`` is the interface's 6-byte bytes object (Host.add_interface checks it).
    cdef const unsigned char* m = mac
    return len(mac) == 6 and memcmp(p, m, 6) == 0


cdef inline bint tcp_fast(const unsigned char* seg, Py_ssize_t seglen, Py_ssize_t doff,
                          uint32_t src, uint32_t dst, object ehash, double now,
                          long long segs, long long gso_size, object owner,
                          Py_ssize_t off) except -1:
    """The established fast path for a verified segment (see rx_py.tcp_fast):
    its payload is ``owner[off:]`` (the frame's bytes at ``off``), which the
    receive queue may keep by reference (tcp_fast.RcvQueue)."""
    cdef bint has_ts = False
    cdef uint32_t ts_val = 0, ts_ecr = 0
    cdef PyObject* p
    if seg[13] & C_PRED_MASK != C_TCPHDR_ACK:
        return False
    if doff == C_TCPOLEN_TSTAMP_ALIGNED and rd32(seg + 20) == 0x0101080A:
        has_ts = True
        ts_val = rd32(seg + 24)
        ts_ecr = rd32(seg + 28)
    elif doff != 20:
        return False
    if type(ehash) is EHash:
        p = (<EHash>ehash).lookup_c(dst, rd16(seg + 2), src, rd16(seg))
        if p == NULL:
            return False
        sk = <object>p
    else:
        sk = ehash.lookup(dst, rd16(seg + 2), src, rd16(seg))
    if not isinstance(sk, TcpCb):
        return False
    # new_ack_data: data that also acknowledges new data is taken too (see
    # rx_py._tcp_fast); either call counts segs_in for what it takes
    return _rcv_established_c(<TcpCb>sk, rd32(seg + 4), rd32(seg + 8), rd16(seg + 14), has_ts,
                             ts_val, ts_ecr, seg + doff, seglen - doff, now, True, segs,
                             gso_size, owner, off + doff) == 1 or _rcv_window_ack_c(
        <TcpCb>sk, seg[13], rd32(seg + 4), rd32(seg + 8), rd16(seg + 14), has_ts, ts_val,
        ts_ecr, seglen - doff, now, False, segs) == 1


cdef inline int tcp_syn(const unsigned char* seg, Py_ssize_t doff, uint32_t src,
                        uint32_t dst, object ehash, SynPath syn, double now) except -1:
    """The stateless SYN path for a verified SYN (see rx_py.tcp_syn): 1 when
    syn_fast answered it with a cookie SYN-ACK or dropped it over the budget."""
    cdef tcp_opts o
    cdef uint32_t sport = rd16(seg), dport = rd16(seg + 2)
    if type(ehash) is EHash:
        if (<EHash>ehash).lookup_c(dst, dport, src, sport) != NULL:
            return 0
    elif ehash.lookup(dst, dport, src, sport) is not None:
        return 0
    memset(&o, 0, sizeof(o))
    if doff > 20 and tcp_parse_options(seg + 20, doff - 20, &o) != NULL:
        return 0
    return syn_cookie(syn, src, dst, sport, dport, rd32(seg + 4),
                      o.mss if o.has_mss else -1, o.ws if o.has_ws else -1, o.sack_ok,
                      o.ts_val if o.has_ts else -1, now) != 0


cdef inline bint _is_loopback6(const unsigned char* a) noexcept:
    # ::1
    return rd32(a) == 0 and rd32(a + 4) == 0 and rd32(a + 8) == 0 and rd32(a + 12) == 1


cdef object _tagged6(const unsigned char* a):
    """TCP's tagged int for the IPv6 address at ``a`` (inet6_addr: V6TAG | address)."""
    cdef unsigned char buf[17]
    buf[0] = 1
    memcpy(buf + 1, a, 16)
    return _from_bytes(PyBytes_FromStringAndSize(<const char*>buf, 17), "big")


cdef object _addr6(const unsigned char* a):
    """The IPv6 address at ``a`` as the host's 128-bit int (``local6``'s key)."""
    return _from_bytes(PyBytes_FromStringAndSize(<const char*>a, 16), "big")


cdef object _rx_tcp6(const unsigned char* p, Py_ssize_t n, Py_ssize_t ip, tuple v6,
                     double now, long long segs, long long gso_size, bint csum_valid,
                     object owner):
    """An IPv6 TCP segment (see rx_py._rx_tcp6): RX_TAKEN6 when the datagram at
    ``p`` (``n`` bytes from the IPv6 header on, at ``ip`` in the frame) was
    processed whole by the established fast path, the delivery tuple when it
    is clean but needs TCP's general path, None for the layered path.
    ``owner``: the frame (``p`` is its bytes at ``ip``)."""
    cdef const unsigned char* seg
    cdef Py_ssize_t plen, doff
    cdef bint has_ts = False
    cdef uint32_t ts_val = 0, ts_ecr = 0
    cdef PyObject* sp
    if n < C_IPV6_HLEN + 20 or p[0] >> 4 != 6 or p[6] != C_TCP:
        return None
    plen = rd16(p + 4)
    if plen == 0 and gso_size:
        plen = n - C_IPV6_HLEN      # BIG TCP: a TCP super-frame's length is its buffer's
    if plen < 20 or C_IPV6_HLEN + plen > n:
        return None
    if p[8] == 0xFF or p[24] == 0xFF or _is_loopback6(p + 8) or _is_loopback6(p + 24):
        return None
    seg = p + C_IPV6_HLEN
    doff = (seg[12] >> 4) << 2
    if doff < 20 or doff > plen:
        return None
    local6, ehash6, ifindex = v6
    where = local6.get(_addr6(p + 24))
    if where is None:
        return None
    if p[24] == 0xFE and p[25] & 0xC0 == 0x80 and where != ifindex:
        return None         # a link-local address is only its link's
    if not csum_valid and csum_net(seg, plen,
                                   csum_net(p + 8, 32, <uint64_t>plen + C_TCP)) != 0xFFFF:
        return None
    if seg[13] & C_PRED_MASK == C_TCPHDR_ACK:
        if doff == C_TCPOLEN_TSTAMP_ALIGNED and rd32(seg + 20) == 0x0101080A:
            has_ts = True
            ts_val = rd32(seg + 24)
            ts_ecr = rd32(seg + 28)
        if has_ts or doff == 20:
            if type(ehash6) is EHash6:
                # the 32 address bytes as they are: no Python int per segment
                sp = (<EHash6>ehash6).lookup_c(p + 24, rd16(seg + 2), p + 8, rd16(seg))
                sk = <object>sp if sp != NULL else None
            else:
                sk = ehash6.lookup(_tagged6(p + 24), rd16(seg + 2), _tagged6(p + 8),
                                   rd16(seg))
            if isinstance(sk, TcpCb) and (_rcv_established_c(
                    <TcpCb>sk, rd32(seg + 4), rd32(seg + 8), rd16(seg + 14), has_ts, ts_val,
                    ts_ecr, seg + doff, plen - doff, now, True, segs, gso_size, owner,
                    ip + C_IPV6_HLEN + doff) == 1 or _rcv_window_ack_c(
                        <TcpCb>sk, seg[13], rd32(seg + 4), rd32(seg + 8), rd16(seg + 14),
                        has_ts, ts_val, ts_ecr, plen - doff, now, False, segs) == 1):
                return RX_TAKEN6
    return (C_TCP, _tagged6(p + 8), _tagged6(p + 24), rd16(seg), rd16(seg + 2), None,
            ip + C_IPV6_HLEN, ip + C_IPV6_HLEN + plen)


def rx_classify(frame, mac, local, bcast, bint verify_tcp=True, ehash=None,
                double now=0.0, bint lo=False, SynPath syn=None, tuple v6=None):
    """Classify one frame (Ethernet when ``mac`` is given, bare IP when None)."""
    return _classify(frame, mac, local, bcast, verify_tcp, ehash, now, lo, syn, v6)


cdef class RxRun:
    """Where ``rx_run`` is in a receive batch (see rx_py.RxRun)."""
    cdef public Py_ssize_t pos, taken, taken6


def rx_run(RxRun run not None, classify, frames, mac, local, bcast, bint verify_tcp, ehash,
           double now, bint lo, syn, tuple v6):
    """``classify`` for ``frames[run.pos:]`` until one needs the host (see
    rx_py.rx_run); this module's rx_classify without a Python call."""
    return _rx_run(run, classify, frames, mac, local, bcast, verify_tcp, ehash, now, lo, syn, v6)


cdef object _rx_run(RxRun run, classify, frames, mac, local, bcast, bint verify_tcp, ehash,
                    double now, bint lo, syn, tuple v6):
    cdef Py_ssize_t i = run.pos, n = len(frames)
    cdef bint own = classify is rx_classify
    cdef SynPath sp = None
    if own and syn is not None:
        sp = <SynPath?>syn
    while i < n:
        run.pos = i
        if own:
            rec = _classify(frames[i], mac, local, bcast, verify_tcp, ehash, now, lo, sp, v6)
        else:
            rec = classify(frames[i], mac, local, bcast, verify_tcp, ehash, now, lo, syn, v6)
        if rec is True:
            run.taken += 1
        elif type(rec) is int:          # RX_TAKEN6
            run.taken6 += 1
        else:
            return rec
        i += 1
    run.pos = n
    return False


def rx_receive(host, classifier, ifindex, frames, double now):
    """Host.receive_batch (see rx_py.rx_receive)."""
    host.now = now
    iface = host.interfaces.get(ifindex)
    if iface is None or not iface.up:
        host.mib["InNoInterface"] += len(frames)
        return
    rx_batch(host, iface, frames, now, classifier["rx_classify"])
    if host._loopback and not host.backlog_deferred:
        host._run_loopback()


def rx_batch(host, iface, frames, double now, classify):
    """Host._rx_batch (see rx_py.rx_batch)."""
    cdef RxRun run
    cdef bint fast, lo, was_busy
    cdef tuple v6 = None
    tcp = host.protocols.get(C_TCP)
    if tcp is not host._tcp_handler:
        host._rx_tcp_setup(tcp)
    _demux, verify, ehash, syn, ehash6 = host._rx_tcp
    mac = iface.mac
    local = host._local
    bcast = host._bcast
    lo = iface is host.lo
    fast = not host.raw.tcpudp
    if lo:
        syn = None
    elif ehash6 is not None:
        v6 = (host.local6, ehash6, iface.ifindex)
    run = RxRun()
    was_busy = host._busy
    host._busy = True
    end = host._rx_end
    end.pending = {}
    if syn is not None:
        syn.batch_begin(host._output)
    try:
        while True:
            if fast:
                try:
                    rec = _rx_run(run, classify, frames, mac, local, bcast, verify, ehash, now,
                                  lo, syn, v6)
                except Exception as exc:
                    if host._rx_fault(iface, run, frames, exc):
                        raise
                    continue
                if rec is False:
                    break
            elif run.pos < len(frames):
                rec = None
            else:
                break
            frame = frames[run.pos]
            run.pos += 1
            host._rx_one(iface, frame, rec, now)
        if end.pending:
            end.run(now, host._batch_end_error)
    finally:
        host._busy = was_busy
        end.pending = None
        if syn is not None:
            syn.batch_end(host.mib)
        if run.taken or run.taken6:
            rx_taken(host.mib, run.taken, run.taken6)


cdef object _classify(frame, mac, local, bcast, bint verify_tcp, ehash, double now,
                      bint lo, SynPath syn, tuple v6):
    cdef rbuf b
    cdef const unsigned char* p
    cdef const unsigned char* seg
    cdef Py_ssize_t n, ip, tot_len, seglen, off, end, ulen, doff
    cdef uint32_t src, dst, proto
    cdef long long segs = 1, gso_size = 0
    cdef bint csum_valid = False
    if type(frame) is not bytes and type(frame) is GsoFrame:
        # GRO's aggregate (or a MemoryWire super-frame): its segments, their
        # size, and whether the device already checked the checksums
        segs = getattr(frame, "gso_segs", 1)
        if segs < 1:
            segs = 1
        gso_size = getattr(frame, "gso_size", 0)
        csum_valid = frame.csum_valid
    owner = rbuf_get(frame, &b)
    try:
        p = b.p
        n = b.n
        if mac is not None:
            if n < C_ETH_HLEN + 20 or not _mac_is(p, mac):
                return None
            if p[12] == 0x86 and p[13] == 0xDD:
                if v6 is None or not verify_tcp:
                    return None
                return _rx_tcp6(p + C_ETH_HLEN, n - C_ETH_HLEN, C_ETH_HLEN, v6, now, segs,
                               gso_size, csum_valid, owner)
            if p[12] != 0x08 or p[13] != 0x00:
                return None
            ip = C_ETH_HLEN
        else:
            if n < 20:
                return None
            if p[0] >> 4 == 6:
                if v6 is None or not verify_tcp:
                    return None
                return _rx_tcp6(p, n, 0, v6, now, segs, gso_size, csum_valid, owner)
            ip = 0
        p += ip
        tot_len = rd16(p + 2)
        if tot_len == 0 and gso_size and p[9] == C_TCP:
            tot_len = n - ip        # BIG TCP (iph_totlen): the super-frame's buffer
        if p[0] != 0x45 or tot_len < 20 or tot_len > n - ip or rd16(p + 6) & 0x3FFF:
            return None
        proto = p[9]
        if proto != C_UDP and proto != C_TCP:
            return None
        src = rd32(p + 12)
        dst = rd32(p + 16)
        if src >> 28 == 0xE or src == 0xFFFFFFFF:
            return None
        dst_obj = dst
        if lo:
            # From lo's backlog (see rx_py): ours by construction, 127/8 and
            # our own sources allowed; a broadcast copy goes the slow way.
            if dst_obj in bcast:
                return None
        else:
            if src >> 24 == 127 or dst >> 24 == 127:
                return None
            if dst_obj not in local or dst_obj in bcast:
                return None
            # fib_validate_source (see rx_py): 0/8, our own or our broadcast source.
            if src >> 24 == 0:
                return None
            src_obj = src
            if src_obj in local or src_obj in bcast:
                return None
        if csum_net(p, 20, 0) != 0xFFFF:
            return None
        off = ip + 20
        end = ip + tot_len
        seglen = tot_len - 20
        seg = p + 20
        if proto == C_UDP:
            if seglen < 8:
                return None
            ulen = rd16(seg + 4)
            if ulen < 8 or ulen > seglen:
                return None
            if (not csum_valid and (seg[6] or seg[7])
                    and csum_net(seg, ulen,
                                 pseudo_sum(src, dst, proto, ulen)) != 0xFFFF):
                return None
            return (C_UDP, src, dst_obj, rd16(seg), rd16(seg + 2),
                    PyBytes_FromStringAndSize(<const char*>seg + 8, ulen - 8),
                    off, off + ulen)
        if seglen < 20:
            return None
        doff = (seg[12] >> 4) << 2
        if doff < 20 or doff > seglen:
            return None
        if (verify_tcp and not csum_valid
                and csum_net(seg, seglen, pseudo_sum(src, dst, proto, seglen)) != 0xFFFF):
            return None
        if verify_tcp and ehash is not None:
            if seg[13] & C_SYN_MASK == C_TCPHDR_SYN:
                if syn is not None and tcp_syn(seg, doff, src, dst, ehash, syn, now):
                    return True
            elif tcp_fast(seg, seglen, doff, src, dst, ehash, now, segs, gso_size, owner,
                          off):
                return True
        return (C_TCP, src, dst_obj, rd16(seg), rd16(seg + 2),
                _parse_ipv4(owner, ip), off, end)
    finally:
        rbuf_release(&b)


cdef class BatchEnd:
    """What a receive batch's frames defer to its end (see rx_py.BatchEnd)."""
    cdef public dict pending

    def defer(self, fn, owner):
        cdef dict pending = self.pending
        if pending is None:
            return False
        key = id(owner)
        if key not in pending:
            pending[key] = (fn, owner)
        return True

    def run(self, double now, on_error):
        cdef dict pending = self.pending
        cdef tuple entry
        while pending:
            for key in list(pending):
                entry = pending.pop(key)
                fn, owner = entry
                try:
                    fn(owner, now)
                except Exception as exc:
                    if on_error(exc):
                        raise


def wake_socks(socks, on_error):
    """Each sock's ``wakeup()`` in turn (see rx_py.wake_socks)."""
    for sk in socks:
        wakeup = getattr(sk, "wakeup", None)
        if wakeup is not None:
            try:
                wakeup()
            except Exception as exc:
                on_error(sk, exc)


def host_defer_loopback(host):
    """Host.defer_loopback, compiled (see rx_py.host_defer_loopback)."""
    if host._busy:
        return False
    host._busy = True
    return True


def host_release_loopback(host, held):
    """Host.release_loopback, compiled (see rx_py.host_release_loopback)."""
    if held:
        host._busy = False
        if host._loopback and not host.backlog_deferred:
            host._run_loopback()


def stack_time(stack):
    """Stack.update_time, compiled (see rx_py.stack_time)."""
    host = stack.host
    clock = stack._clock
    if clock is None:
        clock = stack._clock = stack._bind_clock()
    now = clock()
    if now < host.now:
        return host.now
    host.now = now
    return now


def stack_on_frames(stack, ifindex, frames):
    """Stack._on_frames, compiled (see rx_py.stack_on_frames)."""
    if stack._closed:
        return
    host = stack.host
    host.receive_batch(ifindex, frames, stack_time(stack))
    dev = stack._napi.get(ifindex)
    if dev is not None:
        if dev.rx_more:
            stack._rx_pending[ifindex] = dev
        elif stack._rx_pending:
            stack._rx_pending.pop(ifindex, None)
    if stack._in_softirq:
        if host._output:
            out = host.take_output()
            if out:
                stack._transmit(out)
        return
    was = stack._rx_busy
    stack._rx_busy = True
    try:
        stack.kick()
    finally:
        stack._rx_busy = was


def stack_kick(stack, Py_ssize_t rounds):
    """Stack.kick, compiled (see rx_py.stack_kick)."""
    if stack._closed:
        return
    host = stack.host
    while True:
        if host._output:
            out = host._output
            host._output = []
            if host._tx_stopped:
                out = host._hold_stopped(out)
            if len(out) == 1:
                ifindex, frame = out[0]
                dev = stack.devices.get(ifindex)
                if dev is not None:
                    dev.send(frame)
            elif out:
                stack._transmit(out)
        pending = host._wakeups
        if not pending:
            if stack._closed:
                return
            break
        wakeups = list(pending)
        pending.clear()
        wake_socks(wakeups, stack._wakeup_error)
        if stack._closed:
            return
        rounds -= 1
        if not rounds:
            stack.loop.call_soon(stack.kick)
            break
    if stack._rx_pending and not stack._rx_busy:
        stack._softirq()
        if stack._closed:
            return
    if host._loopback and stack._backlog_handle is None:
        stack._backlog_handle = stack.loop.call_soon(stack._on_backlog)
    if host.deadline_bound() != stack._timer_when:
        stack._rearm()


def rx_taken(mib, Py_ssize_t taken, Py_ssize_t taken6):
    """The counters the layered path moves for the segments rx_classify's
    TCP fast path took whole in a receive batch (see rx_py.rx_taken)."""
    if taken:
        mib["InReceives"] += taken
        mib["InDelivers"] += taken
    if taken6:
        mib["Ip6InReceives"] += taken6
        mib["Ip6InDelivers"] += taken6
    if taken or taken6:
        mib["InSegs"] += taken + taken6


cdef inline Py_ssize_t _rdn16(const unsigned char* p) noexcept nogil:
    # a legacy virtio header field: the host's byte order
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


def vnet_rx(raw, Py_ssize_t hlen):
    """The frame behind a virtio-net header (see rx_py.vnet_rx)."""
    cdef rbuf b
    cdef const unsigned char* p
    cdef unsigned char* d
    cdef Py_ssize_t n, gso_size, start, where, l4, payload, segs
    cdef int flags, gso
    cdef bint flagged
    owner = rbuf_get(raw, &b)
    try:
        if hlen < C_VNET_HDR_LEN or b.n < hlen:
            return None
        p = b.p
        flags = p[0]
        gso = p[1] & ~C_GSO_ECN
        gso_size = _rdn16(p + 4)
        start = _rdn16(p + 6)
        where = start + _rdn16(p + 8)
        n = b.n - hlen
        if gso != C_GSO_NONE and gso != C_GSO_TCPV4 and gso != C_GSO_TCPV6:
            return None
        if flags & C_F_NEEDS_CSUM and where + 2 > n:
            return None
        flagged = gso != C_GSO_NONE or (n > C_RX_FLAGGED_MIN
                                        and flags & (C_F_NEEDS_CSUM | C_F_DATA_VALID))
        if flagged:
            out = bytes_subtype_alloc(GsoFrame, n)
        else:
            out = PyBytes_FromStringAndSize(NULL, n)
        # (a new object nobody else holds yet: written in place)
        d = <unsigned char*>PyBytes_AS_STRING(out)
        memcpy(d, p + hlen, n)
        if flags & C_F_NEEDS_CSUM:
            # skb_checksum_help: the field holds the pseudo-header sum
            wr16(d + where, ~csum_net(d + start, n - start, 0) & 0xFFFF)
        if not flagged:
            return out
        segs = 1
        if gso != C_GSO_NONE:
            if gso_size == 0:
                return None
            # the TCP payload: from the L4 header the checksum starts at when
            # the kernel gave it, else past hdr_len
            l4 = start if flags & C_F_NEEDS_CSUM else -1
            if l4 >= 0 and l4 + 20 <= n:
                payload = n - l4 - ((d[l4 + 12] >> 4) << 2)
            else:
                payload = n - _rdn16(p + 2)
            if payload > gso_size:
                segs = (payload + gso_size - 1) // gso_size
        else:
            gso_size = 0
        out.gso_size = gso_size
        out.gso_segs = segs
        out.csum_valid = (flags & (C_F_NEEDS_CSUM | C_F_DATA_VALID)) != 0
        return out
    finally:
        rbuf_release(&b)
