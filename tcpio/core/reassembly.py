"""IPv6 reassembly (net/ipv6/reassembly.c: ipv6_frag_rcv), on ip_fragment's queues.

The fragment header's own rules come first, in Linux's order (RFC 8200 4.5):
- an atomic fragment (offset 0, M clear) is no fragment: processed alone
  (RFC 6946), counted Ip6ReasmReqds and Ip6ReasmOKs;
- a first fragment that does not hold the whole header chain and the upper
  header (TCP 20, UDP 8, ICMPv6 8 bytes, else 1) is dropped with a parameter
  problem code 3, pointer 0 (RFC 7112, ipv6frag_thdr_truncated);
- a fragment reaching past 65535 bytes: parameter problem code 0 pointing at
  its fragment offset field;
- a non-final fragment whose length is not a multiple of 8: parameter
  problem code 0 pointing at the payload length field.
Each of those is an Ip6InHdrErrors.  Then the queue code shared with IPv4
(``ip_fragment.Reassembler.frag_queue``): fragments keyed by (source,
destination, identification), a duplicate inside a fragment we hold is
ignored, any other overlap drops the whole datagram (RFC 5722), the queue
lives ``ip6frag_time`` (60 s, RFC 8200's reassembly time), all queues are
capped at ``ip6frag_high_thresh`` bytes; expiry after fragment 0 came sends
time exceeded code 1 quoting it (ip6_expire).

The reassembled datagram is fragment 0's unfragmentable part (the fixed
header and the extension headers before the fragment header, its payload
length and the next header field in front of the fragment header rewritten)
followed by the fragmentable part; input resumes there (ip6_frag_reasm).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio.core.icmp_h import (
    ICMPV6_EXC_FRAGTIME,
    ICMPV6_HDR_FIELD,
    ICMPV6_HDR_INCOMP,
    ICMPV6_PARAMPROB,
    ICMPV6_TIME_EXCEED,
)
from tcpio.core.ip_fragment import Reassembler
from tcpio.core.ipv6 import (
    FRAG_HLEN,
    IPV6_HLEN,
    IPV6_MAXPLEN,
    UPPER_HDR_LEN,
    Ipv6Header,
    ipv6_skip_exthdr,
)

if TYPE_CHECKING:
    from tcpio.core.host import Host



def ip6_reassembler(host: Host) -> Reassembler:
    """The host's IPv6 fragment queues."""

    def expire(first: tuple[bytes, int, int], data: bytes) -> None:
        host.icmp6_send(first[0], ICMPV6_TIME_EXCEED, ICMPV6_EXC_FRAGTIME)

    return Reassembler(host, "Ip6", "ip6frag_time", "ip6frag_high_thresh", expire)


def ipv6frag_thdr_truncated(packet: bytes | bytearray | memoryview, nexthdr: int) -> bool:
    """A first fragment without the whole chain and upper-layer header."""
    walked = ipv6_skip_exthdr(packet, IPV6_HLEN, nexthdr)
    if walked is None:
        return True
    proto, off, frag_off = walked
    if frag_off:
        return False
    return off + UPPER_HDR_LEN.get(proto, 1) > len(packet)


def ipv6_frag_rcv(host: Host, packet: bytes | bytearray | memoryview, ip6h: Ipv6Header,
                  off: int, nhoff: int, now: float
                  ) -> tuple[bytes | bytearray | memoryview, int, int] | None:
    """The fragment header at ``off`` (named by the byte at ``nhoff``).
    Returns the datagram to go on with, the offset of the header after the
    fragment header and where its type is, or None (queued or dropped)."""
    mib = host.mib
    mib["Ip6ReasmReqds"] += 1
    if off + FRAG_HLEN > len(packet):
        mib["Ip6InHdrErrors"] += 1
        host.icmp6_send(packet, ICMPV6_PARAMPROB, ICMPV6_HDR_FIELD, off)
        return None
    word = (packet[off + 2] << 8) | packet[off + 3]
    offset = word & 0xFFF8
    mf = bool(word & 1)
    if not offset and not mf:
        mib["Ip6ReasmOKs"] += 1
        return packet, off + FRAG_HLEN, off
    if ipv6frag_thdr_truncated(packet, ip6h.nexthdr):
        mib["Ip6InHdrErrors"] += 1
        host.icmp6_send(packet, ICMPV6_PARAMPROB, ICMPV6_HDR_INCOMP, 0)
        return None
    data = memoryview(packet)[off + FRAG_HLEN:]
    end = offset + len(data)
    if end > IPV6_MAXPLEN:
        mib["Ip6InHdrErrors"] += 1
        host.icmp6_send(packet, ICMPV6_PARAMPROB, ICMPV6_HDR_FIELD, off + 2)
        return None
    if mf and end & 7:
        mib["Ip6InHdrErrors"] += 1
        host.icmp6_send(packet, ICMPV6_PARAMPROB, ICMPV6_HDR_FIELD, 4)
        return None
    ident = int.from_bytes(packet[off + 4:off + 8], "big")
    done = host.frags6.frag_queue((ip6h.src, ip6h.dst, -1, ident), offset, mf, 0, data,
                                  (bytes(packet), off, nhoff), now)
    if done is None:
        return None
    (first, foff, fnhoff), payload = done
    head = bytearray(first[:foff])
    head[fnhoff] = first[foff]              # the fragment header's next header
    plen = len(head) - IPV6_HLEN + len(payload)
    head[4] = plen >> 8
    head[5] = plen & 0xFF
    return bytes(head) + payload, foff, fnhoff
