"""Transmit-path builders, pure-Python twin of ``tx.pyx``.

``ip_build`` turns a transport payload into what goes on the link in one
call and one copy of the payload: the Ethernet header (when ``dst_mac`` is
given: the kernel's cached hard header, hh_cache, for a resolved neighbour),
a 20-byte IPv4 header with its checksum, the payload, and the padding to the
60-byte Ethernet minimum.  With ``dst_mac=None`` it builds the bare IPv4
datagram (TUN links, the ARP queue, loopback, fragments).

``tcp_frame`` does the same for one TCP segment after the handshake, TCP
header included: what ``wire.build_tcp`` followed by ``ip_build`` produce,
in one call (the kernel's tcp_transmit_skb -> ip_queue_xmit with a cached
route and neighbour).  Its arguments are flat ints, no options record: a
call into compiled code is priced per argument conversion (FIELD-NOTES).

The layered alternative copies the payload once per layer (IP packet, then
Ethernet frame) and builds a header record object on the way; see
benchmarks/bench_rx.py (udp-out rows) and benchmarks/bench_tcp_cpu.py for
what this saves.
"""

from __future__ import annotations

import struct
from typing import Any

from tcpio._fast import load
from tcpio._fast.gso import GSO_MAX_SIZE

__all__ = ["ETH_ZLEN", "DstGen", "TcpDst", "ip_build", "tcp_frame", "tcp_frame6"]

_checksum = load("checksum")
_csum_partial = _checksum.csum_partial
_pseudo_header_sum = _checksum.pseudo_header_sum
_pseudo_header_sum6 = _checksum.pseudo_header_sum6

ETH_ZLEN = 60          # minimum frame without FCS
_IP = struct.Struct("!BBHHHBBHII")
_IP_DF = 0x4000
_IP_MF = 0x2000
_ETH_P_IP = b"\x08\x00"
_ETH_P_IPV6 = b"\x86\xdd"
_IPV6_HLEN = 40
_TCP = struct.Struct("!HHIIBBHHH")
# NOP, NOP, TCPOPT_TIMESTAMP, TCPOLEN_TIMESTAMP as one word, then TSval, TSecr.
_TS_OPT = struct.Struct("!III")
_TS_OPT_HEAD = 0x0101080A
_SACK_OPT_HEAD = b"\x01\x01\x05"    # NOP, NOP, TCPOPT_SACK (the length follows)
_MAX_TCP_OPTION_SPACE = 40
_IPPROTO_TCP = 6


def _ipv4_header(proto: int, src: int, dst: int, ident: int, ttl: int, tos: int, df: bool,
                 mf: bool, frag_offset: int, total: int) -> bytes:
    """20-byte IPv4 header (no options) with its checksum; ValueError out of range."""
    if total > 0xFFFF:
        raise ValueError("ipv4: datagram longer than 65535 bytes")
    if frag_offset & 7 or not 0 <= frag_offset <= 0xFFF8:
        raise ValueError("ipv4: frag_offset must be a multiple of 8 in 0..65528")
    frag = (frag_offset >> 3) | (_IP_DF if df else 0) | (_IP_MF if mf else 0)
    try:
        hdr = _IP.pack(0x45, tos, total, ident, frag, ttl, proto, 0, src, dst)
    except struct.error as exc:
        raise ValueError(str(exc)) from None
    check = ~_csum_partial(hdr) & 0xFFFF
    return hdr[:10] + check.to_bytes(2, "big") + hdr[12:]


def _big_len(length: int, total: int, gso: bool) -> int:
    """An IP length field's value: ``length``, or 0 for a super-frame
    (``gso``) too long for the field (BIG TCP) whose datagram (``total``
    bytes) is at most GSO_MAX_SIZE."""
    if gso and length > 0xFFFF:
        if total > GSO_MAX_SIZE:
            raise ValueError("gso: super-frame longer than GSO_MAX_SIZE")
        return 0
    return length


def _flat(payload: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """``payload`` as bytes.join takes it and len() counts it: a strided or
    multi-byte-item view is copied (as the compiled twin's rbuf_get reads it)."""
    if type(payload) is memoryview and (not payload.contiguous or payload.itemsize != 1):
        return payload.tobytes()
    return payload


def _frame(dst_mac: bytes | None, src_mac: bytes | None,
           parts: tuple[bytes | bytearray | memoryview, ...],
           ethertype: bytes = _ETH_P_IP) -> bytes:
    """``parts`` joined behind an Ethernet header (none when ``dst_mac`` is None),
    padded to ETH_ZLEN; ValueError for a bad MAC."""
    if dst_mac is None:
        return b"".join(parts)
    if src_mac is None or len(dst_mac) != 6 or len(src_mac) != 6:
        raise ValueError("mac addresses must be 6 bytes")
    frame = b"".join((dst_mac, src_mac, ethertype, *parts))
    if len(frame) < ETH_ZLEN:
        frame += bytes(ETH_ZLEN - len(frame))
    return frame


def ip_build(dst_mac: bytes | None, src_mac: bytes | None, proto: int, src: int, dst: int,
             ident: int, ttl: int, tos: int, df: bool, mf: bool, frag_offset: int,
             payload: bytes | bytearray | memoryview) -> bytes:
    """Ethernet (optional) + IPv4 header (no options) + ``payload``.

    ``frag_offset`` is in bytes (a multiple of 8); ValueError when a field is
    out of range or the datagram would exceed 65535 bytes.
    """
    payload = _flat(payload)
    hdr = _ipv4_header(proto, src, dst, ident, ttl, tos, df, mf, frag_offset, 20 + len(payload))
    return _frame(dst_mac, src_mac, (hdr, payload))


def _established_th(sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
                    ts_val: int, ts_ecr: int, sack_blocks: tuple[tuple[int, int], ...],
                    urg_ptr: int) -> bytes:
    """The TCP header of a segment after the handshake, checksum zero (see
    ``tcp_frame``); ValueError for a field out of range or too many options."""
    try:
        opts = b"" if ts_val == -1 else _TS_OPT.pack(_TS_OPT_HEAD, ts_val, ts_ecr)
        if sack_blocks:
            blocks = tuple(sack_blocks)
            if len(opts) + 4 + 8 * len(blocks) > _MAX_TCP_OPTION_SPACE:
                raise ValueError("tcp: options longer than 40 bytes")
            edges = [edge for start, end in blocks for edge in (start, end)]
            opts += (_SACK_OPT_HEAD + bytes((2 + 8 * len(blocks),))
                     + struct.pack(f"!{len(edges)}I", *edges))
        thlen = 20 + len(opts)
        return _TCP.pack(sport, dport, seq, ack, (thlen >> 2) << 4, flags, window, 0,
                         urg_ptr) + opts
    except struct.error as exc:
        raise ValueError(str(exc)) from None


def _with_check(th: bytes, payload: bytes | bytearray | memoryview, pseudo: int,
                partial: bool) -> bytes:
    """``th`` with its checksum field set: over th + payload from ``pseudo``
    (``partial``: the pseudo-header sum alone, CHECKSUM_PARTIAL)."""
    check = pseudo if partial else ~_csum_partial(payload, _csum_partial(th, pseudo)) & 0xFFFF
    return th[:16] + check.to_bytes(2, "big") + th[18:]


def tcp_frame(dst_mac: bytes | None, src_mac: bytes | None, src: int, dst: int, ident: int,
              ttl: int, sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
              ts_val: int, ts_ecr: int, sack_blocks: tuple[tuple[int, int], ...],
              payload: bytes | bytearray | memoryview, urg_ptr: int,
              partial: bool = False, gso: bool = False) -> bytes:
    """Ethernet (optional) + IPv4 + TCP header with options + ``payload``, checksummed.

    The IPv4 header is the one ``ip_output`` gives a TCP segment: TOS 0, no
    DF, ``ttl``, ``ident``.  Options are those of a segment after the
    handshake, in ``tcp_options_write`` order and alignment: NOP NOP
    timestamp (unless ``ts_val`` is -1; ``ts_ecr`` is ignored then), then NOP
    NOP SACK with ``sack_blocks`` ((start, end) pairs; usually empty).  Same
    bytes as ``ip_build(dst_mac, src_mac, 6, src, dst, ident, ttl, 0, False,
    False, 0, wire.build_tcp(src, dst, sport, dport, seq, ack, flags, window,
    TcpOptions(sack_blocks=..., ts_val=..., ts_ecr=...), payload, urg_ptr))``.
    ValueError when a field is out of range, the options exceed 40 bytes or
    the datagram 65535 bytes.  ``partial``: the TCP checksum field holds only
    the pseudo-header sum (CHECKSUM_PARTIAL, for a device that finishes it:
    a TSO super-frame).  ``gso``: a super-frame, which may be longer than
    65535 bytes (BIG TCP, up to gso.GSO_MAX_SIZE: its tot_len is then 0);
    the compiled twin builds it as a GsoFrame, this one as bytes.
    """
    th = _established_th(sport, dport, seq, ack, flags, window, ts_val, ts_ecr, sack_blocks,
                         urg_ptr)
    payload = _flat(payload)
    seglen = len(th) + len(payload)
    # DF: TCP does path-MTU discovery (ip_tcp_path sends nothing here when it is off)
    iph = _ipv4_header(_IPPROTO_TCP, src, dst, ident, ttl, 0, True, False, 0,
                       _big_len(20 + seglen, 20 + seglen, gso))
    th = _with_check(th, payload, _pseudo_header_sum(src, dst, _IPPROTO_TCP, seglen), partial)
    return _frame(dst_mac, src_mac, (iph, th, payload))


def tcp_frame6(dst_mac: bytes | None, src_mac: bytes | None, src: int, dst: int, hlim: int,
               sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
               ts_val: int, ts_ecr: int, sack_blocks: tuple[tuple[int, int], ...],
               payload: bytes | bytearray | memoryview, urg_ptr: int,
               partial: bool = False, gso: bool = False) -> bytes:
    """``tcp_frame`` over IPv6 (issue 17): Ethernet (optional, type 0x86DD) +
    the fixed IPv6 header ip6_output gives a TCP segment (traffic class and
    flow label 0, ``hlim``, next header TCP, no extension headers) + the same
    TCP header and payload, checksummed over the IPv6 pseudo-header (RFC 8200
    8.1).  ``src``/``dst`` are the 128-bit addresses (not TCP's tagged ones).
    Same bytes as ``core.ipv6.build_ipv6hdr(6, src, dst, len(seg), hlim) +
    seg`` behind the Ethernet header, ``seg`` the segment ``build_tcp`` gives
    with these addresses' pseudo-header.  ValueError out of range."""
    if not 0 <= hlim <= 0xFF:
        raise ValueError("ipv6: hop limit out of range")
    try:
        addrs = src.to_bytes(16, "big") + dst.to_bytes(16, "big")
    except OverflowError:
        raise ValueError("ipv6: address out of range") from None
    th = _established_th(sport, dport, seq, ack, flags, window, ts_val, ts_ecr, sack_blocks,
                         urg_ptr)
    payload = _flat(payload)
    seglen = len(th) + len(payload)
    plen = _big_len(seglen, _IPV6_HLEN + seglen, gso)
    if plen > 0xFFFF:
        raise ValueError("ipv6: payload longer than 65535 bytes")
    ip6h = b"\x60\0\0\0" + bytes((plen >> 8, plen & 0xFF, _IPPROTO_TCP, hlim)) + addrs
    th = _with_check(th, payload, _pseudo_header_sum6(src, dst, _IPPROTO_TCP, seglen), partial)
    return _frame(dst_mac, src_mac, (ip6h, th, payload), _ETH_P_IPV6)


class DstGen:
    """The host's route generation (Linux's rt_genid, with the neighbour's
    hh updates folded in): ``genid`` moves on with every change a cached
    transmit path depends on (addresses, routes, MTUs, a learned path MTU,
    links, a neighbour that leaves the connected states, changes its MAC or
    goes away), so a ``TcpDst`` taken before is stale.  One object per host
    (``Host.dst_gen``), which every TcpDst holds: the check is two integer
    reads, in C from the compiled send paths."""

    __slots__ = ("genid",)

    def __init__(self) -> None:
        self.genid = 0


class TcpDst:
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

    __slots__ = ("csum_partial", "daddr", "expires", "gen", "genid", "gso_max_size", "ifindex",
                 "limit", "mtu", "neigh", "path", "stopped")

    def __init__(self, gen: DstGen, daddr: int, mtu: int, limit: int,
                 path: tuple[int, bytes | None, bytes | None, int] | None, neigh: Any,
                 stopped: Any, gso_max_size: int, csum_partial: bool, expires: float) -> None:
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
