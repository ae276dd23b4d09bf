"""IPv4/TCP and IPv6/TCP packets for the runner: built from script packets, parsed from
the stack's output, and printed the way packetdrill prints them.

Written for tcpio (no packetdrill code): plain ``struct`` packing, the
checksum from tcpio._fast.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tcpio import _fast
from tcpio.core.in_h import IPPROTO_TCP

from . import ast

if TYPE_CHECKING:
    from tcpio._fast import checksum_py as _checksum
else:
    _checksum = _fast.load("checksum")

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, AE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x100
# Script flag letters -> header bits ('.' is ACK), packetdrill's tcpdump-style letters.
FLAG_BITS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, ".": ACK, "U": URG,
             "E": ECE, "W": CWR, "A": AE}
_FLAG_ORDER = "FSRPUEWA"      # the order packetdrill prints them in (then '.')

OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACKOK, OPT_SACK, OPT_TS = 0, 1, 2, 3, 4, 5, 8
OPT_MD5, OPT_FO, OPT_EXP = 19, 34, 254
OPTION_KINDS = {"eol": OPT_EOL, "nop": OPT_NOP, "mss": OPT_MSS, "wscale": OPT_WSCALE,
                "sackOK": OPT_SACKOK, "sack": OPT_SACK, "TS": OPT_TS, "md5": OPT_MD5,
                "FO": OPT_FO, "FOEXP": OPT_EXP}


def flag_bits(flags: str) -> int:
    bits = 0
    for ch in flags:
        bits |= FLAG_BITS.get(ch, 0)
    return bits


def flag_text(bits: int) -> str:
    text = "".join(ch for ch in _FLAG_ORDER if bits & FLAG_BITS[ch])
    if bits & ACK:
        text += "."
    return text or "-"


@dataclass
class Option:
    """One TCP option as on the wire: kind and the bytes after kind/length."""
    kind: int
    data: bytes = b""

    def ints(self) -> tuple[int, ...]:
        if self.kind == OPT_MSS and len(self.data) == 2:
            return struct.unpack("!H", self.data)
        if self.kind == OPT_WSCALE and len(self.data) == 1:
            return (self.data[0],)
        if self.kind == OPT_TS and len(self.data) == 8:
            return struct.unpack("!II", self.data)
        if self.kind == OPT_SACK and len(self.data) % 8 == 0:
            return struct.unpack(f"!{len(self.data) // 4}I", self.data)
        return tuple(self.data)

    def text(self) -> str:
        names = {v: k for k, v in OPTION_KINDS.items()}
        name = names.get(self.kind, f"kind{self.kind}")
        if self.kind in (OPT_EOL, OPT_NOP, OPT_SACKOK):
            return name
        vals = self.ints()
        if self.kind in (OPT_MSS, OPT_WSCALE):
            return f"{name} {vals[0]}" if vals else name
        if self.kind == OPT_TS and len(vals) == 2:
            return f"TS val {vals[0]} ecr {vals[1]}"
        if self.kind == OPT_SACK:
            return "sack " + " ".join(f"{vals[i]}:{vals[i + 1]}"
                                      for i in range(0, len(vals) - 1, 2))
        return f"{name} {self.data.hex()}"


def script_option(opt: ast.TcpOption) -> Option:
    kind = OPTION_KINDS[opt.kind]
    if opt.kind == "mss":
        return Option(kind, struct.pack("!H", opt.values[0]))
    if opt.kind == "wscale":
        return Option(kind, bytes([opt.values[0]]))
    if opt.kind in ("TS", "sack"):
        return Option(kind, struct.pack(f"!{len(opt.values)}I", *opt.values))
    if opt.kind == "FOEXP":
        return Option(kind, b"\xf9\x89" + bytes(opt.values))
    return Option(kind, bytes(opt.values))


def encode_options(opts: list[Option]) -> bytes:
    out = bytearray()
    for o in opts:
        if o.kind in (OPT_EOL, OPT_NOP):
            out.append(o.kind)
        else:
            out += bytes([o.kind, 2 + len(o.data)]) + o.data
    while len(out) % 4:
        out.append(OPT_EOL)
    return bytes(out)


def decode_options(raw: bytes) -> list[Option] | None:
    """The options of a header; None if malformed."""
    opts: list[Option] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == OPT_EOL:
            opts.append(Option(kind))
            # packetdrill's iterator stops at EOL: the rest is padding.
            break
        if kind == OPT_NOP:
            opts.append(Option(kind))
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
            return None
        n = raw[i + 1]
        opts.append(Option(kind, bytes(raw[i + 2:i + n])))
        i += n
    return opts


@dataclass
class TcpSegment:
    """A TCP segment in an IPv4 datagram, or an IPv6 one when ``version`` is 6
    (addresses then 128-bit ints, ``tos`` the traffic class, ``ttl`` the hop
    limit), in either direction."""
    src: int
    dst: int
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    win: int
    urg: int = 0
    options: list[Option] = field(default_factory=list)
    payload: bytes = b""
    tos: int = 0
    ttl: int = 64
    time: float = 0.0
    version: int = 4

    def option(self, kind: int) -> Option | None:
        for o in self.options:
            if o.kind == kind:
                return o
        return None

    def to_bytes(self) -> bytes:
        opts = encode_options(self.options)
        doff = (20 + len(opts)) // 4
        off_flags = (doff << 12) | (self.flags & 0x1FF)
        tcp = struct.pack("!HHIIHHHH", self.sport, self.dport, self.seq & 0xFFFFFFFF,
                          self.ack & 0xFFFFFFFF, off_flags, self.win, 0, self.urg)
        tcp += opts + self.payload
        if self.version == 6:
            check = _checksum.internet_checksum(tcp, _checksum.pseudo_header_sum6(
                self.src, self.dst, IPPROTO_TCP, len(tcp))) & 0xFFFF
            tcp = tcp[:16] + struct.pack("!H", check) + tcp[18:]
            # RFC 8200 3: version, traffic class, flow label 0, payload
            # length, next header, hop limit, the two addresses
            return struct.pack("!IHBB", (6 << 28) | (self.tos << 20), len(tcp), IPPROTO_TCP,
                               self.ttl) + self.src.to_bytes(16, "big") + \
                self.dst.to_bytes(16, "big") + tcp
        check = _checksum.tcpudp_checksum(self.src, self.dst, IPPROTO_TCP, tcp) & 0xFFFF
        tcp = tcp[:16] + struct.pack("!H", check) + tcp[18:]
        total = 20 + len(tcp)
        ip = struct.pack("!BBHHHBBHII", 0x45, self.tos, total, 0, 0x4000, self.ttl,
                         IPPROTO_TCP, 0, self.src, self.dst)
        ip = ip[:10] + struct.pack("!H", _checksum.internet_checksum(ip) & 0xFFFF) + ip[12:]
        return ip + tcp


def parse_ip_tcp(frame: bytes, when: float) -> TcpSegment | str:
    """A datagram from the stack (IPv4 or IPv6) as a TcpSegment, or a one-line
    description of what else it is (UDP, ICMP, a malformed header)."""
    if len(frame) >= 40 and frame[0] >> 4 == 6:
        first, plen, nexthdr, hops = struct.unpack("!IHBB", frame[:8])
        if nexthdr != IPPROTO_TCP:
            # the stack puts no extension header on TCP: anything else is not TCP
            return {58: "ICMPv6", 17: "UDP"}.get(nexthdr, f"IPv6 next header {nexthdr}") + \
                f" {len(frame)} bytes"
        return _parse_tcp(frame[40:40 + plen], int.from_bytes(frame[8:24], "big"),
                          int.from_bytes(frame[24:40], "big"), (first >> 20) & 0xFF, hops,
                          when, 6)
    if len(frame) < 20 or frame[0] >> 4 != 4:
        return f"not IPv4 or IPv6 ({len(frame)} bytes)"
    ihl = (frame[0] & 0xF) * 4
    total = struct.unpack("!H", frame[2:4])[0]
    proto = frame[9]
    src, dst = struct.unpack("!II", frame[12:20])
    if proto != IPPROTO_TCP:
        return {1: "ICMP", 17: "UDP"}.get(proto, f"IP protocol {proto}") + \
            f" {len(frame)} bytes"
    return _parse_tcp(frame[ihl:total], src, dst, frame[1], frame[8], when, 4)


def _parse_tcp(seg: bytes, src: int, dst: int, tos: int, ttl: int, when: float,
               version: int) -> TcpSegment | str:
    if len(seg) < 20:
        return "truncated TCP header"
    sport, dport, seq, ack, off_flags, win, _check, urg = struct.unpack("!HHIIHHHH", seg[:20])
    doff = (off_flags >> 12) * 4
    opts = decode_options(bytes(seg[20:doff]))
    if opts is None:
        return "malformed TCP options"
    return TcpSegment(src, dst, sport, dport, seq, ack, off_flags & 0x1FF, win, urg, opts,
                      bytes(seg[doff:]), tos, ttl, when, version)


def format_segment(flags: int, seq: int, length: int, ack: int | None, win: int | None,
                   urg: int | None, options: list[Option] | None) -> str:
    text = f"{flag_text(flags)} {seq}:{(seq + length) & 0xFFFFFFFF}({length})"
    if ack is not None:
        text += f" ack {ack}"
    if win is not None:
        text += f" win {win}"
    if urg:
        text += f" urg {urg}"
    if options is None:
        text += " <...>"
    elif options:
        text += " <" + ",".join(o.text() for o in options) + ">"
    return text


def format_script_packet(pkt: ast.TcpPacket) -> str:
    opts = None if pkt.options is None else [script_option(o) for o in pkt.options]
    return format_segment(flag_bits(pkt.flags), pkt.seq, pkt.payload, pkt.ack, pkt.win,
                          pkt.urg, opts)
