"""Transmit-path builder, pure-Python twin of ``tx.pyx``.

``ip_build`` turns a transport payload into what goes on the link in one
call and one copy of the payload: the Ethernet header (when ``dst_mac`` is
given: the kernel's cached hard header, hh_cache, for a resolved neighbour),
a 20-byte IPv4 header with its checksum, the payload, and the padding to the
60-byte Ethernet minimum.  With ``dst_mac=None`` it builds the bare IPv4
datagram (TUN links, the ARP queue, loopback, fragments).

The layered alternative copies the payload once per layer (IP packet, then
Ethernet frame) and builds a header record object on the way; see
benchmarks/bench_rx.py (udp-out rows) for what this saves.
"""

from __future__ import annotations

import struct

from tcpio._fast import load

__all__ = ["ETH_ZLEN", "ip_build"]

_csum_partial = load("checksum").csum_partial

ETH_ZLEN = 60          # minimum frame without FCS
_IP = struct.Struct("!BBHHHBBHII")
_IP_DF = 0x4000
_IP_MF = 0x2000


def ip_build(dst_mac: bytes | None, src_mac: bytes | None, proto: int, src: int, dst: int,
             ident: int, ttl: int, tos: int, df: bool, mf: bool, frag_offset: int,
             payload: bytes | bytearray | memoryview) -> bytes:
    """Ethernet (optional) + IPv4 header (no options) + ``payload``.

    ``frag_offset`` is in bytes (a multiple of 8); ValueError when a field is
    out of range or the datagram would exceed 65535 bytes.
    """
    n = len(payload)
    total = 20 + n
    if total > 0xFFFF:
        raise ValueError("ipv4: datagram longer than 65535 bytes")
    if frag_offset & 7 or not 0 <= frag_offset <= 0xFFF8:
        raise ValueError("ipv4: frag_offset must be a multiple of 8 in 0..65528")
    frag = (frag_offset >> 3) | (_IP_DF if df else 0) | (_IP_MF if mf else 0)
    try:
        hdr = bytearray(_IP.pack(0x45, tos, total, ident, frag, ttl, proto, 0, src, dst))
    except struct.error as exc:
        raise ValueError(str(exc)) from None
    check = ~_csum_partial(bytes(hdr)) & 0xFFFF
    hdr[10] = check >> 8
    hdr[11] = check & 0xFF
    if dst_mac is None:
        return bytes(hdr) + bytes(payload)
    if src_mac is None or len(dst_mac) != 6 or len(src_mac) != 6:
        raise ValueError("mac addresses must be 6 bytes")
    frame = b"".join((dst_mac, src_mac, b"\x08\x00", hdr, payload))
    if len(frame) < ETH_ZLEN:
        frame += bytes(ETH_ZLEN - len(frame))
    return frame
