"""TCP over IPv6 (net/ipv6/tcp_ipv6.c): the inet6 handler for IPPROTO_TCP.

One TCP core serves both families (docs/internals.md "TCP and UDP over
IPv6"): ``tcp_v6_rcv`` checks the segment (length, the checksum over the
IPv6 pseudo-header), tags the addresses (``inet6_addr``) and hands it to
the same ``TcpProto.rcv_verified`` as IPv4's, whose lookups, state machine,
SYN cookies and output then see IPv6 4-tuples; ``tcp_v6_err`` finds the
sock an ICMPv6 error quotes and applies ``TcpProto.tcp_sk_err``.  Output
leaves as a whole frame (``ip6_output.ip6_queue_xmit_tcp``) or through
``inet6_addr.ip6_xmit_tcp``.  An established
connection's in-order segments usually skip this path: the compiled
receive classifier (``rx._rx_tcp6``) hands them to the fast path itself,
and the send loop builds their frames whole (docs/internals.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio.core.icmp_h import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_PARAMPROB,
    ICMPV6_PKT_TOOBIG,
)
from tcpio.core.in_h import IPPROTO_TCP
from tcpio.core.ipv6 import Iph6
from tcpio.core.tcp.inet6_addr import V6TAG

if TYPE_CHECKING:
    from tcpio.core.ipv6 import Ip6Skb
    from tcpio.core.tcp.tcp_ipv4 import TcpProto

csum = _fast.load("checksum")

# icmpv6_err_convert's tab_unreach "fatal" column, by code: what makes a
# request sock go (tcp_req_err's abort).
_UNREACH_FATAL = (False, True, False, False, True, True, True)


def icmpv6_fatal(type: int, code: int) -> bool:
    """icmpv6_err_convert's return value: is the error fatal?"""
    if type == ICMPV6_DEST_UNREACH:
        return _UNREACH_FATAL[code] if code < len(_UNREACH_FATAL) else True
    return type == ICMPV6_PARAMPROB


class TcpV6Proto:
    """tcpv6_protocol: receive and errors for the host's one TCP."""

    def __init__(self, tcp: TcpProto) -> None:
        self.tcp = tcp
        self.host = tcp.host

    def rcv(self, skb: Ip6Skb, payload: Any, now: float) -> None:
        """tcp_v6_rcv up to the lookup (the rest is IPv4's rcv_verified)."""
        mib = self.host.mib
        n = len(payload)
        if n < 20:
            mib["InErrs"] += 1
            return
        ip6h = skb.ip6h
        if csum.internet_checksum(payload,
                                  csum.pseudo_header_sum6(ip6h.src, ip6h.dst, IPPROTO_TCP, n)):
            mib["InCsumErrors"] += 1
            mib["InErrs"] += 1
            return
        if ip6h.dst >> 120 == 0xFF:
            # not PACKET_HOST: TCP never answers a multicast destination
            mib["TcpInBroadcastDrops"] += 1
            return
        self.tcp.rcv_verified(Iph6(V6TAG | ip6h.src, V6TAG | ip6h.dst, ip6h.hlim, ip6h.tclass),
                              payload, now)

    def rcv_verified(self, src: int, dst: int, payload: Any, now: float) -> None:
        """tcp_v6_rcv for a segment the host's rx classifier checked as
        ``rcv`` does (rx._rx_tcp6): ``src``/``dst`` already tagged."""
        self.tcp.rcv_verified(Iph6(src, dst), payload, now)

    def err(self, type: int, code: int, code_errno: int, info: int, ip6h: Any,
            payload: bytes) -> None:
        """tcp_v6_err: an ICMPv6 error quoting one of our segments."""
        if len(payload) < 8:
            return
        sport = int.from_bytes(payload[0:2], "big")
        dport = int.from_bytes(payload[2:4], "big")
        seq = int.from_bytes(payload[4:8], "big")
        tcp = self.tcp
        sk = tcp.hashinfo.lookup_established(V6TAG | ip6h.src, sport, V6TAG | ip6h.dst, dport)
        if sk is None:
            self.host.mib["Icmp6InErrors"] += 1
            return
        tcp.tcp_sk_err(sk, seq, code_errno, icmpv6_fatal(type, code),
                       type == ICMPV6_PKT_TOOBIG)
