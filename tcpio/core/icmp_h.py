"""ICMP and ICMPv6 message types and codes (Linux's include/uapi/linux/icmp.h
and icmpv6.h), defined once for the core: the ICMP layers that send and
receive them, the transports whose errors they carry, the forwarders and
reassembly that generate them.  (The byte-level wire module keeps its own
copies as C constants.)"""

from __future__ import annotations

from typing import Final

# --- ICMP (RFC 792) types ---
ICMP_ECHOREPLY: Final = 0
ICMP_DEST_UNREACH: Final = 3
ICMP_SOURCE_QUENCH: Final = 4
ICMP_ECHO: Final = 8
ICMP_TIME_EXCEEDED: Final = 11
ICMP_PARAMETERPROB: Final = 12
# destination unreachable codes (RFC 792, RFC 1122, RFC 1812 5.2.7.1)
ICMP_NET_UNREACH: Final = 0
ICMP_HOST_UNREACH: Final = 1
ICMP_PROT_UNREACH: Final = 2
ICMP_PORT_UNREACH: Final = 3
ICMP_FRAG_NEEDED: Final = 4
ICMP_NET_ANO: Final = 9
ICMP_HOST_ANO: Final = 10
ICMP_PKT_FILTERED: Final = 13
# time exceeded codes
ICMP_EXC_TTL: Final = 0
ICMP_EXC_FRAGTIME: Final = 1

# --- ICMPv6 (RFC 4443) types ---
ICMPV6_DEST_UNREACH: Final = 1
ICMPV6_PKT_TOOBIG: Final = 2
ICMPV6_TIME_EXCEED: Final = 3
ICMPV6_PARAMPROB: Final = 4
ICMPV6_ECHO_REQUEST: Final = 128
ICMPV6_ECHO_REPLY: Final = 129
ICMPV6_INFOMSG_MASK: Final = 0x80       # set: informational, clear: an error
# destination unreachable codes
ICMPV6_NOROUTE: Final = 0
ICMPV6_ADM_PROHIBITED: Final = 1
ICMPV6_NOT_NEIGHBOUR: Final = 2
ICMPV6_ADDR_UNREACH: Final = 3
ICMPV6_PORT_UNREACH: Final = 4
# time exceeded codes
ICMPV6_EXC_HOPLIMIT: Final = 0
ICMPV6_EXC_FRAGTIME: Final = 1
# parameter problem codes
ICMPV6_HDR_FIELD: Final = 0
ICMPV6_UNK_NEXTHDR: Final = 1
ICMPV6_UNK_OPTION: Final = 2
ICMPV6_HDR_INCOMP: Final = 3
