"""The DNS message format (RFC 1035 section 4), as much as a stub resolver needs.

``build_query`` writes one question; ``parse_message`` reads a whole answer
into a ``Message`` and raises ``DnsError`` (a ``ValueError``) on anything it
cannot read safely: a message shorter than its counts say, a name longer than
255 bytes or with a label over 63, a compression pointer that does not point
strictly backwards (which is what makes a pointer loop impossible: every jump
goes to an earlier offset, so the walk ends), the wrong rdata length for A and
AAAA.  Owner names come back lower-cased and without the trailing dot
("www.example.test"), so callers compare them as strings.

Hand-written rather than a library: a stub resolver reads five record types,
and the parser is the part that faces hostile input, so it is small enough
to read whole and is tested against scapy's independent encoder.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

# RR types (RFC 1035 3.2.2, RFC 3596, RFC 6891) and the one class we ask for.
TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_OPT = 41
CLASS_IN = 1

# RCODEs (RFC 1035 4.1.1)
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = range(6)

HEADER_LEN = 12
MAX_NAME = 255          # RFC 1035 2.3.4: octets of a name, length bytes included
MAX_LABEL = 63
UDP_MAX = 512           # RFC 1035 4.2.1: UDP messages without EDNS

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")       # type, class, ttl, rdlength


class DnsError(ValueError):
    """A message (or a name to put in one) that breaks the format."""


@dataclass(frozen=True)
class Record:
    name: str
    type: int
    rclass: int
    ttl: int
    data: object        # A/AAAA: address str; CNAME/PTR/NS: name; SOA: Soa; others: bytes


@dataclass(frozen=True)
class Soa:
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


@dataclass
class Message:
    id: int
    flags: int
    questions: list[tuple[str, int, int]] = field(default_factory=list)
    answers: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)

    @property
    def qr(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def tc(self) -> bool:
        return bool(self.flags & 0x0200)

    @property
    def rcode(self) -> int:
        return self.flags & 0x000F


def encode_name(name: str) -> bytes:
    """"www.example.test" (or with the final dot) -> wire labels.  ASCII only:
    callers IDNA-encode first, as ``socket.getaddrinfo`` does."""
    out = bytearray()
    if name not in ("", "."):
        for label in name[:-1].split(".") if name.endswith(".") else name.split("."):
            raw = label.encode("ascii")
            if not 0 < len(raw) <= MAX_LABEL:
                raise DnsError(f"bad label length in {name!r}")
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise DnsError(f"name longer than {MAX_NAME} bytes: {name[:40]!r}...")
    return bytes(out)


def build_query(qid: int, name: str, qtype: int, *, rd: bool = True) -> bytes:
    """One question, recursion desired, no EDNS (so answers stay within 512 bytes
    over UDP and a larger one comes back truncated, RFC 1035 4.2.1)."""
    flags = 0x0100 if rd else 0
    return _HEADER.pack(qid, flags, 1, 0, 0, 0) + encode_name(name) + struct.pack(
        "!HH", qtype, CLASS_IN)


def read_name(buf: bytes, off: int) -> tuple[str, int]:
    """The name at ``off`` and the offset just after it (after the first pointer
    if it is compressed).  Pointers must go strictly backwards (RFC 1035 4.1.4
    only allows "a prior occurrence"), which bounds the walk: no loops."""
    labels: list[str] = []
    total = 1
    end = -1
    limit = off         # a pointer must point before the label it replaces
    n = len(buf)
    while True:
        if off >= n:
            raise DnsError("name runs past the end of the message")
        length = buf[off]
        if length == 0:
            off += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if off + 1 >= n:
                raise DnsError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | buf[off + 1]
            if end < 0:
                end = off + 2
            if target >= limit:
                raise DnsError("compression pointer does not point backwards")
            off = limit = target
            continue
        if kind:
            raise DnsError(f"unknown label type 0x{kind:02x}")
        total += length + 1
        if total > MAX_NAME:
            raise DnsError("name longer than 255 bytes")
        if off + 1 + length > n:
            raise DnsError("label runs past the end of the message")
        labels.append(buf[off + 1:off + 1 + length].decode("latin-1").lower())
        off += 1 + length
    return ".".join(labels), (end if end >= 0 else off)


def _read_rr(buf: bytes, off: int) -> tuple[Record, int]:
    name, off = read_name(buf, off)
    if off + _RR_FIXED.size > len(buf):
        raise DnsError("record header runs past the end of the message")
    rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(buf, off)
    off += _RR_FIXED.size
    end = off + rdlen
    if end > len(buf):
        raise DnsError("rdata runs past the end of the message")
    data: object
    if rtype == TYPE_A:
        if rdlen != 4:
            raise DnsError(f"A record with {rdlen} bytes of rdata")
        data = socket.inet_ntop(socket.AF_INET, buf[off:end])
    elif rtype == TYPE_AAAA:
        if rdlen != 16:
            raise DnsError(f"AAAA record with {rdlen} bytes of rdata")
        data = socket.inet_ntop(socket.AF_INET6, buf[off:end])
    elif rtype in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
        data, used = read_name(buf, off)
        if used != end:
            raise DnsError("name in rdata does not fill the rdata")
    elif rtype == TYPE_SOA:
        mname, p = read_name(buf, off)
        rname, p = read_name(buf, p)
        if p + 20 != end:
            raise DnsError("SOA rdata has the wrong length")
        data = Soa(mname, rname, *struct.unpack_from("!IIIII", buf, p))
    else:
        data = bytes(buf[off:end])
    # RFC 2181 8: a TTL with the top bit set is read as zero.
    return Record(name, rtype, rclass, ttl if ttl < 0x80000000 else 0, data), end


def parse_header(buf: bytes) -> tuple[int, int, int]:
    """(id, flags, qdcount) of a message; DnsError if shorter than a header."""
    if len(buf) < HEADER_LEN:
        raise DnsError("shorter than a DNS header")
    qid, flags, qd, _, _, _ = _HEADER.unpack_from(buf, 0)
    return qid, flags, qd


def parse_question(buf: bytes) -> tuple[list[tuple[str, int, int]], int]:
    """The question section and the offset after it."""
    qd = parse_header(buf)[2]
    off = HEADER_LEN
    questions = []
    for _ in range(qd):
        name, off = read_name(buf, off)
        if off + 4 > len(buf):
            raise DnsError("question runs past the end of the message")
        qtype, qclass = struct.unpack_from("!HH", buf, off)
        off += 4
        questions.append((name, qtype, qclass))
    return questions, off


def parse_message(buf: bytes) -> Message:
    """The whole message; ``DnsError`` when any section is malformed or cut short."""
    qid, flags, _ = parse_header(buf)
    _, _, _, an, ns, ar = _HEADER.unpack_from(buf, 0)
    questions, off = parse_question(buf)
    msg = Message(qid, flags, questions)
    for section, count in ((msg.answers, an), (msg.authority, ns), (msg.additional, ar)):
        for _ in range(count):
            rr, off = _read_rr(buf, off)
            section.append(rr)
    return msg


def reverse_name(address: str) -> str:
    """"10.0.0.1" -> "1.0.0.10.in-addr.arpa" (RFC 1035 3.5); IPv6 -> ip6.arpa (RFC 3596)."""
    if ":" in address:
        nibbles = socket.inet_pton(socket.AF_INET6, address).hex()
        return ".".join(reversed(nibbles)) + ".ip6.arpa"
    return ".".join(reversed(address.split("."))) + ".in-addr.arpa"
