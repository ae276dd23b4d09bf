"""Receive-path classifier, pure-Python twin of ``rx.pyx``.

``rx_classify`` looks at one whole frame and answers one question: is this the
common case, a clean unicast IPv4 datagram for one of our addresses carrying an
unfragmented UDP datagram or TCP segment with a good checksum?  If so it returns
a small tuple with everything the host needs to hand the datagram to its
protocol; otherwise it returns ``None`` and the host runs the ordinary layered
path (ether_input -> ip_rcv -> the protocol), which does every check again and
counts every drop in the MIB.  So this module never counts and never drops:
it can only say "fast" for a frame the slow path would deliver the same way.
That keeps the drop counters exactly those of the layered path, and a bad or
unusual frame (ARP, broadcast, options, fragments, ICMP, bad checksums...)
simply costs one classification more.

The checks are ip_rcv's (RFC 1122 3.2.1, RFC 791): version 4, IHL 5 (options
go the slow way), total length within the frame and at least the header,
header checksum, no fragment bits, no martian source (multicast, limited
broadcast, 127/8, 0/8, one of ``local`` or ``bcast``) or 127/8 destination, destination one of ``local`` and not
one of ``bcast``.  Then UDP's (RFC 768: length within the datagram, checksum
zero or good) or TCP's (RFC 9293: data offset >= 5 and within the segment,
checksum good; the checksum only when ``verify_tcp``).

Result tuple ``(proto, src, dst, sport, dport, aux, off, end)``:
``frame[off:end]`` is the transport datagram (trimmed to the IP total length,
and for UDP to the UDP length); ``aux`` is the UDP payload as ``bytes`` for
UDP, and the ``wire.IPv4Header`` for TCP (which needs it).  Addresses are
host-order ints, as everywhere in the core.

The TCP established fast path: given ``ehash`` (the TCP established hash)
and ``now``, a verified TCP segment whose header says "plain ACK, at most a
timestamp option" is looked up in ``ehash``; when that finds a full sock
(``tcp_fast.TcpCb``) and ``tcp_fast.rcv_established`` accepts the segment
(header prediction: in-order data on a quiet established connection), or
``tcp_fast.rcv_window_ack`` does (an in-order bare ACK whose window changed),
the segment is fully processed and the result is ``True``.  So the common data
segment costs one call: parse, checksum, lookup and queueing together.  The
host counts it (InReceives, InDelivers, InSegs) like a delivered segment.
Everything else gets the tuple as before.

IPv6 (issue 17): given ``v6`` (``(local6, ehash6, ifindex)``: the host's
preferred IPv6 addresses -> interface, TCP's IPv6 established hash, the
receiving interface), an Ethernet frame of type 0x86DD (or a bare datagram
of version 6) goes to ``_rx_tcp6``, which takes TCP only: the fixed header
with next header TCP directly (any extension header goes the layered way),
ipv6_rcv's checks (payload length within the frame, the datagram trimmed
to it; no multicast or loopback address either side; the destination one
of ``local6``, a link-local one only on its own link), the data offset,
the checksum over the IPv6 pseudo-header (RFC 8200 8.1; not again with
``csum_valid``).  Then, for what header prediction takes (the flags and
options as for IPv4), the lookup in ``ehash6`` with TCP's tagged addresses
(``core.tcp.inet6_addr``: V6TAG | address) and ``rcv_established``: taken
whole, the result is ``RX_TAKEN6`` (the host counts Ip6InReceives,
Ip6InDelivers and InSegs for it).  Any other segment that passed the
checks (a SYN, a FIN, SACK blocks, out of order...) gives the tuple, with
the tagged addresses as ``src``/``dst`` and None for the header record
(the host hands it to TCP's IPv6 ``rcv_verified``, counting Ip6InReceives
and Ip6InDelivers); anything else is None, the layered path.

A super-frame (``gso.GsoFrame``: GRO's aggregate from a TAP, or a
MemoryWire's) goes the same way; its ``gso_segs``/``gso_size`` reach the TCP
fast path (the segments it stands for, skb_shinfo's), and with
``csum_valid`` (the device checked or completed every checksum: Linux's
CHECKSUM_UNNECESSARY, from VIRTIO_NET_HDR_F_DATA_VALID or NEEDS_CSUM) the
TCP/UDP checksum is not summed again.  The IP header's always is.

The stateless SYN path: given ``syn`` (TCP's ``syn_fast.SynPath``), a
verified SYN (no FIN, RST or ACK) whose 4-tuple is not in ``ehash`` and
whose options parse goes to ``syn_fast.syn_cookie``: to a listener whose SYN
queue is full (or with cookies forced) it is answered with the cookie
SYN-ACK, or dropped past the batch's budget, and the result is ``True``
(the host counts it like a delivered segment; TCP's own counters are folded
in at the batch's end).  Anything else it declines takes the tuple.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from tcpio._fast import load
from tcpio._fast.gso import GsoFrame, rx_gso as _rx_gso

__all__ = ["ETH_HLEN", "IPPROTO_TCP", "IPPROTO_UDP", "RX_FLAGGED_MIN", "RX_TAKEN6", "BatchEnd",
           "RxRun", "host_defer_loopback", "host_release_loopback", "rx_batch", "rx_classify",
           "rx_receive", "rx_run", "stack_kick", "stack_on_frames", "stack_time", "vnet_rx",
           "wake_socks"]

# The same checksum and header records as the rest of the core uses.
_csum = load("checksum")
_wire = load("wire")
_csum_partial = _csum.csum_partial
_pseudo = _csum.pseudo_header_sum
_pseudo6 = _csum.pseudo_header_sum6
_parse_ipv4 = _wire.parse_ipv4
_tcp_fast_mod = load("tcp_fast")
_TcpCb = _tcp_fast_mod.TcpCb
_rcv_established = _tcp_fast_mod.rcv_established
_rcv_window_ack = _tcp_fast_mod.rcv_window_ack
_syn_cookie = load("syn_fast").syn_cookie
_parse_tcp = _wire.parse_tcp
_ParseError = _wire.ParseError

ETH_HLEN = 14
IPPROTO_TCP = 6
IPPROTO_UDP = 17
# A frame without GSO above this size that the device flagged (NEEDS_CSUM or
# DATA_VALID) comes up as a GsoFrame with csum_valid; below it, as plain
# bytes: summing a small frame again costs less than carrying the flag.
RX_FLAGGED_MIN = 2048
# rx_classify's answer for an IPv6 segment the TCP fast path took whole
RX_TAKEN6 = 6
_IPV6_HLEN = 40
_V6TAG = 1 << 128
_ETH_P_IPV6 = 0x86DD
# payload length, next header; source and destination as two 128-bit halves
_IP6 = struct.Struct("!4xHB")
_LOOPBACK6 = 1
# <linux/virtio_net.h> (devices/virtio_net.py has the whole header)
_VNET = struct.Struct("=BBHHHH")
_F_NEEDS_CSUM = 1
_F_DATA_VALID = 2
_GSO_TCP = (0, 1, 4)        # NONE, TCPV4, TCPV6 (without the ECN bit)
# version/IHL, TOS, total length, ID, frag, TTL, proto, checksum, src, dst
_IP = struct.Struct("!BxHxxHxBxxII")
_PORTS = struct.Struct("!HHH")
# sport, dport, seq, ack, (doff, flags), window
_TCP = struct.Struct("!HHIIxBH")
_TS_ALIGNED = struct.Struct("!III")      # NOP NOP kind len, TSval, TSecr
_NOP_NOP_TS = 0x0101080A
# flags header prediction looks at: FIN SYN RST URG must be off, ACK on
_PRED_MASK = 0x37
_TCPHDR_ACK = 0x10
# flags of a SYN the stateless path answers: SYN, and no FIN RST ACK
_SYN_MASK = 0x17
_TCPHDR_SYN = 0x02


def _predicted(frame: bytes, off: int, doff: int, flags: int) -> tuple[bool, int, int] | None:
    """What header prediction reads of the TCP header at ``frame[off:]``
    (``doff`` bytes, within the segment): None unless the flags are ACK (PSH,
    ECE, CWR allowed) and the options at most an aligned timestamp; else
    (has_ts, ts_val, ts_ecr)."""
    if flags & _PRED_MASK != _TCPHDR_ACK:
        return None
    if doff == 32:
        kind, ts_val, ts_ecr = _TS_ALIGNED.unpack_from(frame, off + 20)
        if kind != _NOP_NOP_TS:
            return None
        return True, ts_val, ts_ecr
    if doff != 20:
        return None
    return False, 0, 0


def _tcp_fast(frame: bytes, off: int, end: int, doff: int, src: int, dst: int, ehash: Any,
             now: float, segs: int, gso_size: int) -> bool:
    """The established fast path for a verified segment ``frame[off:end]``."""
    sport, dport, seq, ack, flags, window = _TCP.unpack_from(frame, off)
    ts = _predicted(frame, off, doff, flags)
    if ts is None:
        return False
    has_ts, ts_val, ts_ecr = ts
    sk = ehash.lookup(dst, dport, src, sport)
    if not isinstance(sk, _TcpCb):
        return False
    # new_ack_data: in-order data that also acknowledges new data (a
    # request/response exchange: each segment acks the last answer) is taken
    # too, as Linux's tcp_rcv_established fast path takes it (tcp_ack with
    # FLAG_DATA after queueing); either call counts segs_in for what it takes
    return (_rcv_established(sk, seq, ack, window, has_ts, ts_val, ts_ecr,
                             memoryview(frame)[off + doff:end], now, True, segs, gso_size)
            or _rcv_window_ack(sk, flags, seq, ack, window, has_ts, ts_val, ts_ecr,
                               end - off - doff, now, False, segs))


def _tcp_syn(frame: bytes, off: int, end: int, src: int, dst: int, ehash: Any, syn: Any,
             now: float) -> bool:
    """The stateless SYN path for a verified SYN ``frame[off:end]``."""
    sport, dport, _ = _PORTS.unpack_from(frame, off)
    if ehash.lookup(dst, dport, src, sport) is not None:
        return False
    try:
        th = _parse_tcp(frame, off)
    except _ParseError:
        return False
    o = th.options
    return _syn_cookie(syn, src, dst, sport, dport, th.seq,
                       -1 if o.mss is None else o.mss, -1 if o.wscale is None else o.wscale,
                       o.sack_ok, -1 if o.ts_val is None else o.ts_val, now) != 0


def _rx_tcp6(frame: bytes, ip: int, v6: tuple, now: float, segs: int, gso_size: int,
            csum_valid: bool) -> int | tuple | None:
    """An IPv6 TCP segment, the datagram at ``frame[ip:]`` (see the module
    docstring): RX_TAKEN6 when the established fast path processed it whole,
    the delivery tuple when it is clean but needs TCP's general path, None
    for the layered path."""
    n = len(frame) - ip
    if n < _IPV6_HLEN + 20 or frame[ip] >> 4 != 6:
        return None
    plen, nexthdr = _IP6.unpack_from(frame, ip)
    if plen == 0 and gso_size:
        plen = n - _IPV6_HLEN       # BIG TCP: a TCP super-frame's length is its buffer's
    if nexthdr != IPPROTO_TCP or plen < 20 or _IPV6_HLEN + plen > n:
        return None
    src = int.from_bytes(frame[ip + 8:ip + 24], "big")
    dst = int.from_bytes(frame[ip + 24:ip + 40], "big")
    if src >> 120 == 0xFF or dst >> 120 == 0xFF or src == _LOOPBACK6 or dst == _LOOPBACK6:
        return None
    off = ip + _IPV6_HLEN
    end = off + plen
    sport, dport, seq, ack, flags, window = _TCP.unpack_from(frame, off)
    doff = (frame[off + 12] >> 4) << 2
    if doff < 20 or doff > plen:
        return None
    local6, ehash6, ifindex = v6
    where = local6.get(dst)
    if where is None:
        return None
    if dst >> 118 == 0xFE80 >> 6 and where != ifindex:
        return None             # a link-local address is only its link's
    if not csum_valid and \
            _csum_partial(frame[off:end], _pseudo6(src, dst, IPPROTO_TCP, plen)) != 0xFFFF:
        return None
    src |= _V6TAG
    dst |= _V6TAG
    ts = _predicted(frame, off, doff, flags)
    if ts is not None:
        has_ts, ts_val, ts_ecr = ts
        sk = ehash6.lookup(dst, dport, src, sport)
        if isinstance(sk, _TcpCb) and (_rcv_established(
                sk, seq, ack, window, has_ts, ts_val, ts_ecr, memoryview(frame)[off + doff:end],
                now, True, segs, gso_size) or _rcv_window_ack(
                    sk, flags, seq, ack, window, has_ts, ts_val, ts_ecr, end - off - doff, now,
                    False, segs)):
            return RX_TAKEN6
    return (IPPROTO_TCP, src, dst, sport, dport, None, off, end)


def _classify6(frame: bytes | bytearray | memoryview, ip: int, v6: tuple,
               now: float) -> int | tuple | None:
    segs, gso_size = _rx_gso(frame)
    csum_valid = type(frame) is GsoFrame and bool(frame.csum_valid)
    return _rx_tcp6(bytes(frame), ip, v6, now, segs, gso_size, csum_valid)


def rx_classify(frame: bytes | bytearray | memoryview, mac: bytes | None, local: Any,
                bcast: Any, verify_tcp: bool = True, ehash: Any = None,
                now: float = 0.0, lo: bool = False, syn: Any = None,
                v6: tuple | None = None) -> tuple | bool | int | None:
    """Classify one frame (Ethernet when ``mac`` is given, bare IP when None).

    ``lo``: a datagram from the host's loopback backlog (bare IPv4), which
    ip_output put there because its destination is ours (127/8 or one of
    ``local``): the wire's martian checks do not apply (127/8 and our own
    sources are what lo carries), only a broadcast copy goes the slow way."""
    n = len(frame)
    if mac is not None:
        # Unicast to us carrying IPv4 (or IPv6, for _rx_tcp6); broadcast and ARP
        # take the slow path.
        if n < ETH_HLEN + 20 or frame[0:6] != mac:
            return None
        if frame[12] << 8 | frame[13] == _ETH_P_IPV6:
            if v6 is None or not verify_tcp:
                return None
            return _classify6(frame, ETH_HLEN, v6, now)
        if frame[12] != 0x08 or frame[13] != 0x00:
            return None
        ip = ETH_HLEN
    else:
        if n < 20:
            return None
        if frame[0] >> 4 == 6:
            if v6 is None or not verify_tcp:
                return None
            return _classify6(frame, 0, v6, now)
        ip = 0
    vihl, tot_len, frag, proto, src, dst = _IP.unpack_from(frame, ip)
    if tot_len == 0 and proto == IPPROTO_TCP and _rx_gso(frame)[1]:
        tot_len = n - ip            # BIG TCP (iph_totlen): the super-frame's buffer
    if vihl != 0x45 or tot_len < 20 or tot_len > n - ip or frag & 0x3FFF:
        return None
    if proto != IPPROTO_UDP and proto != IPPROTO_TCP:
        return None
    if src >> 28 == 0xE or src == 0xFFFFFFFF:
        return None
    if lo:
        if dst in bcast:
            return None
    else:
        if src >> 24 == 127 or dst >> 24 == 127:
            return None
        if dst not in local or dst in bcast:
            return None
        # fib_validate_source: a source in 0/8, one of ours or one of our broadcasts
        # is martian on a unicast datagram; the slow path counts it.
        if src >> 24 == 0 or src in local or src in bcast:
            return None
    segs, gso_size = _rx_gso(frame)
    csum_valid = False
    if type(frame) is not bytes:
        # a GsoFrame's csum_valid: the device checked (or completed) the checksums
        csum_valid = type(frame) is GsoFrame and bool(frame.csum_valid)
        frame = bytes(frame)
    if _csum_partial(frame[ip:ip + 20]) != 0xFFFF:
        return None
    off = ip + 20
    end = ip + tot_len
    seglen = tot_len - 20
    if proto == IPPROTO_UDP:
        if seglen < 8:
            return None
        sport, dport, ulen = _PORTS.unpack_from(frame, off)
        if ulen < 8 or ulen > seglen:
            return None
        end = off + ulen
        seg = frame[off:end]
        if not csum_valid and (seg[6] or seg[7]) and \
                _csum_partial(seg, _pseudo(src, dst, IPPROTO_UDP, ulen)) != 0xFFFF:
            return None
        return (IPPROTO_UDP, src, dst, sport, dport, seg[8:], off, end)
    if seglen < 20:
        return None
    doff = (frame[off + 12] >> 4) << 2
    if doff < 20 or doff > seglen:
        return None
    if verify_tcp and not csum_valid and \
            _csum_partial(frame[off:end], _pseudo(src, dst, IPPROTO_TCP, seglen)) != 0xFFFF:
        return None
    if verify_tcp and ehash is not None:
        if frame[off + 13] & _SYN_MASK == _TCPHDR_SYN:
            if syn is not None and _tcp_syn(frame, off, end, src, dst, ehash, syn, now):
                return True
        elif _tcp_fast(frame, off, end, doff, src, dst, ehash, now, segs, gso_size):
            return True
    sport, dport, _ = _PORTS.unpack_from(frame, off)
    return (IPPROTO_TCP, src, dst, sport, dport, _parse_ipv4(frame, ip), off, end)


class RxRun:
    """Where ``rx_run`` is in a receive batch: ``pos``, the index of the
    frame it stopped at (the one it returned, or that raised), and the
    frames the TCP fast path took whole so far, ``taken`` IPv4 and
    ``taken6`` IPv6 ones (for ``rx_taken`` at the batch's end).  A new one
    per batch, all zero."""

    pos = 0
    taken = 0
    taken6 = 0


def rx_run(run: RxRun, classify: Callable[..., Any], frames: Any, mac: bytes | None,
           local: Any, bcast: Any, verify_tcp: bool, ehash: Any, now: float, lo: bool,
           syn: Any, v6: tuple | None) -> tuple | None | bool:
    """``classify`` (rx_classify, or what a test puts in its place: the
    host passes its own global) for each of ``frames`` from ``run.pos`` on, counting
    those the fast path took whole (True, RX_TAKEN6), up to the first the
    host must deliver itself: its result (a delivery tuple, or None for the
    layered path) with ``run.pos`` its index.  False once every frame is
    classified (``run.pos == len(frames)``).  One call per batch instead of
    one per frame when the fast path takes them all (issue 11: the host's
    Python loop over a 1000-flow batch was ~45 bytecodes a frame); a
    classification that raises leaves ``run.pos`` at its frame."""
    i = run.pos
    n = len(frames)
    while i < n:
        run.pos = i
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


def rx_receive(host: Any, classifier: dict[str, Any], ifindex: int, frames: Any,
               now: float) -> None:
    """Host.receive_batch: ``frames`` from the interface ``ifindex``, in
    arrival order, each processed to completion (``rx_batch``), then the
    loopback backlog they filled (unless the driver drains it).  The host's
    own ``receive_batch`` is this function bound to the host and its
    module's globals (``classifier``: ``rx_classify`` is looked up there at
    every batch, so a test that puts another classifier in its place is
    honoured), so a device's batch reaches the receive loop with no Python
    frame of the host's (issue 12: a lone echo frame's way in)."""
    host.now = now
    iface = host.interfaces.get(ifindex)
    if iface is None or not iface.up:
        host.mib["InNoInterface"] += len(frames)
        return
    rx_batch(host, iface, frames, now, classifier["rx_classify"])
    if host._loopback and not host.backlog_deferred:
        host._run_loopback()


def rx_batch(host: Any, iface: Any, frames: Any, now: float,
             classify: Callable[..., Any]) -> None:
    """Host._rx_batch: netif_receive_skb for each of ``frames`` (from
    ``iface``, or lo's backlog), then what the batch deferred
    (``host.defer_to_batch_end``).

    The batch's setup and end are here, compiled: the TCP handler's fast
    path (``host._rx_tcp``), the host busy (a send from inside the batch
    does not deliver to ourselves mid-segment), the batch-end dict, TCP's
    stateless SYN path's batch (its output list, its counters at the end),
    and the counters of the segments the fast path took whole (``rx_taken``).
    ``classify`` (``rx_run``) takes every frame it can whole; one it
    declines goes to ``host._rx_one`` (the host's delivery or the layered
    path, with its own exception handling), one whose classification
    raised to ``host._rx_fault`` (counted and skipped, or raised again
    when it says so).  A batch whose every frame the fast path takes runs
    no Python of the host's (issue 12: ~145 bytecodes a batch before).

    lo's frames: the wire's martian checks off (127/8 and our own source
    addresses are what lo carries), its SYNs and IPv6 segments layered.  A
    raw sock for TCP or UDP must see every segment: no fast path then."""
    tcp = host.protocols.get(IPPROTO_TCP)
    if tcp is not host._tcp_handler:
        host._rx_tcp_setup(tcp)
    # (what follows from the TCP handler, worked out once per handler:
    # every batch asks)
    _demux, verify, ehash, syn, ehash6 = host._rx_tcp
    mac = iface.mac
    local = host._local
    bcast = host._bcast
    lo = iface is host.lo
    fast = not host.raw.tcpudp
    v6 = None
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
                    # every frame the fast path takes whole, in one call,
                    # up to one the host delivers (or the batch's end)
                    rec = rx_run(run, classify, frames, mac, local, bcast, verify, ehash, now,
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
            syn.batch_end(host.mib)     # its counters, and the next batch's budget
        if run.taken or run.taken6:
            # What the layered path counts for each of them, in one call
            rx_taken(host.mib, run.taken, run.taken6)


class BatchEnd:
    """What a receive batch's frames defer to its end (Host.defer_to_batch_end,
    the NetHost contract): ``pending`` maps id(owner) to (fn, owner) in the
    order first asked, a dict inside a batch, None outside.  Compiled, the
    host's ``defer_to_batch_end`` is ``defer`` itself, so TCP's ACK
    coalescing asks with no Python frame (issue 11: ~760 asks per MiB at
    1000 flows, one per data segment or ACK read)."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: dict[int, tuple[Callable[[Any, float], None], Any]] | None = None

    def defer(self, fn: Callable[[Any, float], None], owner: Any) -> bool:
        """``fn(owner, now)`` once at the batch's end however often asked;
        False (nothing deferred) outside a batch."""
        pending = self.pending
        if pending is None:
            return False
        key = id(owner)
        if key not in pending:      # (no tuple for every later ACK of the batch)
            pending[key] = (fn, owner)
        return True

    def run(self, now: float, on_error: Callable[[Exception], bool]) -> None:
        """Run what was deferred, in the order first asked, each once; what
        that in turn defers runs after it (an owner still waiting is not
        asked again; one that already ran runs again).  An exception goes
        to ``on_error``, which says whether to raise it (the rest of the
        batch's work then does not run)."""
        pending = self.pending
        while pending:
            # the keys in order: each leaves the dict just before its call,
            # so the dict is what waits (no scan past popped entries at its
            # head); keys alone, not items(): a tuple per entry, hundreds
            # alive at once at 1000 flows, cost the cycle collector a
            # collection per batch (and the traced benchmark its RTOs)
            for key in list(pending):
                fn, owner = pending.pop(key)
                try:
                    fn(owner, now)
                except Exception as exc:
                    if on_error(exc):
                        raise


def wake_socks(socks: Iterable[Any], on_error: Callable[[Any, Exception], None]) -> None:
    """The driver's end of a batch (Stack.kick): each sock's ``wakeup()``
    (the glue's callback; a sock without one is skipped), in order; an
    exception goes to ``on_error(sk, exc)`` and the next sock is woken all
    the same.  Compiled: no Python frame per sock (issue 11: ~290 wakeups
    per MiB at 1000 flows)."""
    for sk in socks:
        wakeup = getattr(sk, "wakeup", None)
        if wakeup is not None:
            try:
                wakeup()
            except Exception as exc:  # noqa: BLE001 - application code
                on_error(sk, exc)


def host_defer_loopback(host: Any) -> bool:
    """Host.defer_loopback: hold deliveries to our own addresses (the host
    busy) until ``host_release_loopback``; whether this call took the hold
    (False inside packet or timer processing, which delivers afterwards
    anyway).  Each Host's ``defer_loopback`` is this function bound to it:
    TCP's send loop asks around every send, with no Python frame."""
    if host._busy:
        return False
    host._busy = True
    return True


def host_release_loopback(host: Any, held: bool) -> None:
    """Host.release_loopback: end a hold ``host_defer_loopback`` took and
    deliver what it held (unless the driver drains the backlog itself)."""
    if held:
        host._busy = False
        if host._loopback and not host.backlog_deferred:
            host._run_loopback()


def stack_time(stack: Any) -> float:
    """Stack.update_time: set ``host.now`` from the loop's clock (before any
    user call into the core) and return it.  Never backwards: after an
    early uvloop timer (see Stack._on_timer) the host may already be a
    fraction of a millisecond ahead of the loop.  Each Stack's
    ``update_time`` is this function bound to it: no Python frame per write
    (issue 12: transports.write asks before every sendmsg)."""
    host = stack.host
    clock = stack._clock
    if clock is None:
        # the loop's, once bound (Stack._bind_clock)
        clock = stack._clock = stack._bind_clock()
    now = clock()
    if now < host.now:      # (not max(): a call, several times a connection)
        return host.now
    host.now = now
    return now


def stack_on_frames(stack: Any, ifindex: int, frames: Any) -> None:
    """Stack._on_frames: a device's batch, each frame processed to
    completion (the host's ``receive_batch``, at the loop's clock), then one
    kick.  The device's partial is this function bound to the stack and
    the interface, so a lone frame's way from the device to the socks'
    wakeups runs no Python frame of the driver's or the host's when the
    fast path takes it whole (issue 12's echo).

    A batch that stopped at the device's budget leaves the device in
    ``_rx_pending`` (NET_RX still pending: ``_softirq`` reads it from the
    next sender's kick).  A batch of ``_softirq``'s own sends its output
    (the ACKs) at once and leaves the wakeups to ``_rx_wake``."""
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


def stack_kick(stack: Any, rounds: int) -> None:
    """Stack.kick: flush the host's output to the devices, deliver the
    socks' wakeups, re-arm the timer; up to ``rounds`` rounds of output and
    wakeups (a wakeup's callback sends, and that may wake again), then the
    rest on the next loop iteration rather than starve it.  Each Stack's
    ``kick`` is this function bound to it: a kick (one after every receive
    batch, one after every write) runs no Python frame of the driver's
    (issue 12: ~70 bytecodes a kick before).  See Stack.kick."""
    if stack._closed:
        return
    host = stack.host
    # (the host's output list and wakeup set are looked at before they are
    # taken: most kicks find one of the two empty)
    while True:
        if host._output:
            # host.take_output without its call
            out = host._output
            host._output = []
            if host._tx_stopped:
                out = host._hold_stopped(out)
            if len(out) == 1:
                # _transmit's one-frame case without its call: a bulk
                # transfer's every frame (a super-frame, or its ACK)
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
        # host.take_wakeups without its call: the marked socks in the
        # order first marked, and the set emptied for the next ones
        wakeups = list(pending)
        pending.clear()
        # a failing protocol callback must not leave the other socks
        # unwoken or the timer unarmed: reported, and the others woken
        wake_socks(wakeups, stack._wakeup_error)
        if stack._closed:
            return          # a callback closed the stack: arm nothing
        rounds -= 1
        if not rounds:
            # Still busy: finish on the next loop iteration rather than starve it.
            stack.loop.call_soon(stack.kick)
            break
    if stack._rx_pending and not stack._rx_busy:
        stack._softirq()
        if stack._closed:
            return
    if host._loopback and stack._backlog_handle is None:
        stack._backlog_handle = stack.loop.call_soon(stack._on_backlog)
    if host.deadline_bound() != stack._timer_when:
        stack._rearm()       # (most kicks leave the deadline as it was)


def rx_taken(mib: Any, taken: int, taken6: int) -> None:
    """The counters the layered path moves for the segments rx_classify's
    TCP fast path took whole in a receive batch, ``taken`` IPv4 and
    ``taken6`` IPv6 ones: ip_rcv's and ip_local_deliver's (ipv6_rcv's and
    ip6_input_finish's) and TCP's InSegs.  Once per batch, in one call: a
    counter none of them moved is not touched (the MIB would grow a 0)."""
    if taken:
        mib["InReceives"] += taken
        mib["InDelivers"] += taken
    if taken6:
        mib["Ip6InReceives"] += taken6
        mib["Ip6InDelivers"] += taken6
    if taken or taken6:
        mib["InSegs"] += taken + taken6


def vnet_rx(raw: bytes | bytearray | memoryview, hlen: int) -> bytes | GsoFrame | None:
    """The frame behind the ``hlen``-byte virtio-net header at the start of
    ``raw`` (what a TAP opened with IFF_VNET_HDR reads), in one call:

    - NEEDS_CSUM (the kernel's CHECKSUM_PARTIAL): the checksum at
      ``csum_start + csum_offset`` is completed (skb_checksum_help), in the
      copy that strips the header;
    - a TCP super-frame (gso_type TCPV4/TCPV6, with or without ECN) comes up
      whole as a ``GsoFrame``: ``gso_size`` from the header, ``gso_segs``
      the segments its TCP payload makes (ceil(payload / gso_size), the
      payload measured from the TCP header at csum_start, else past
      hdr_len), ``csum_valid`` when the header said NEEDS_CSUM or
      DATA_VALID (the checksums need no second sum);
    - a frame without GSO but flagged NEEDS_CSUM or DATA_VALID (Linux's
      CHECKSUM_UNNECESSARY) larger than RX_FLAGGED_MIN likewise, with
      ``gso_segs`` 1 and ``gso_size`` 0; any other frame as plain ``bytes``.

    None for what it does not take: a header that does not fit its frame
    (the checksum position outside it, gso_size 0), a UDP super-frame (the
    caller cuts those into datagrams: virtio_net.gso_segment)."""
    if hlen < 10 or len(raw) < hlen:
        return None
    flags, gso_type, hdr_len, gso_size, start, offset = _VNET.unpack_from(raw, 0)
    gso = gso_type & 0x7F
    n = len(raw) - hlen
    where = start + offset
    if gso not in _GSO_TCP:
        return None
    needs = flags & _F_NEEDS_CSUM
    if needs and where + 2 > n:
        return None
    data = bytearray(memoryview(raw)[hlen:])
    if needs:
        with memoryview(data) as view:
            check = ~_csum_partial(view[start:]) & 0xFFFF
        data[where:where + 2] = check.to_bytes(2, "big")
    if not gso and not (n > RX_FLAGGED_MIN and flags & (_F_NEEDS_CSUM | _F_DATA_VALID)):
        return bytes(data)
    segs = 1
    if gso:
        if not gso_size:
            return None
        if needs and start + 20 <= n:
            payload = n - start - ((data[start + 12] >> 4) << 2)
        else:
            payload = n - hdr_len
        if payload > gso_size:
            segs = -(-payload // gso_size)
    else:
        gso_size = 0
    out = GsoFrame(data)
    out.gso_size = gso_size
    out.gso_segs = segs
    out.csum_valid = bool(flags & (_F_NEEDS_CSUM | _F_DATA_VALID))
    return out
