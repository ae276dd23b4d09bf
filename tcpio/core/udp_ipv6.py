"""UDP over IPv6 (net/ipv6/udp.c): udpv6_rcv, udpv6_sendmsg, __udp6_lib_err.

The inet6 handler for IPPROTO_UDP, on the same table as IPv4's UDP
(``UdpProto.ports``): socks are AF_INET6 ones, found by ``lookup6``.
Registered by ``af_inet6.inet6_init``; docs/internals.md "TCP and UDP over
IPv6" is the contract.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio.core.errors import sock_error
from tcpio.core.icmp_h import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_PKT_TOOBIG,
    ICMPV6_PORT_UNREACH,
)
from tcpio.core.icmpv6 import err_fatal
from tcpio.core.in_h import IPPROTO_UDP
from tcpio.core.ipv6 import Iph6
from tcpio.core.qdisc import net_xmit_errno, xmit_dropped
from tcpio.core.tcp.inet6_addr import V6TAG
from tcpio.core.udp import UDP6_MIB, UDP6_XMIT_DROPPED

if TYPE_CHECKING:
    from tcpio.core.ipv6 import Ip6Skb
    from tcpio.core.udp import UdpProto, UdpSock

csum = _fast.load("checksum")

UDP_HLEN = 8
UDP6_MAX_PAYLOAD = 65535 - UDP_HLEN
_UDPH = struct.Struct("!HHHH")


def build_udp6(src: int, dst: int, sport: int, dport: int,
               payload: bytes | bytearray | memoryview) -> bytearray:
    """UDP header + ``payload`` with the IPv6 pseudo-header checksum (a
    computed 0 is sent as 0xFFFF: 0 means none, which IPv6 forbids)."""
    length = UDP_HLEN + len(payload)
    seg = bytearray(_UDPH.pack(sport, dport, length, 0))
    seg += payload
    check = csum.internet_checksum(seg, csum.pseudo_header_sum6(src, dst, IPPROTO_UDP, length))
    seg[6:8] = (check or 0xFFFF).to_bytes(2, "big")
    return seg


class UdpV6Proto:
    """udpv6_protocol: IPv6 input and errors, and udpv6_sendmsg."""

    def __init__(self, udp: UdpProto) -> None:
        self.udp = udp
        self.host = udp.host

    # ----- input: __udp6_lib_rcv ----------------------------------------------------

    def rcv(self, skb: Ip6Skb, payload: memoryview, now: float) -> bool:
        mib = self.host.mib
        n = len(payload)
        if n < UDP_HLEN:
            mib["Udp6InErrors"] += 1
            return False
        sport, dport, ulen, check = _UDPH.unpack_from(payload)
        if ulen < UDP_HLEN or ulen > n:
            mib["Udp6InErrors"] += 1      # short packet
            return False
        if ulen < n:
            payload = payload[:ulen]
        ip6h = skb.ip6h
        # udp6_csum_init: a zero checksum is invalid over IPv6 (RFC 8200 8.1)
        # and counted as a checksum error, as a wrong one is.
        if check == 0 or csum.internet_checksum(
                payload, csum.pseudo_header_sum6(ip6h.src, ip6h.dst, IPPROTO_UDP, ulen)) != 0:
            mib["Udp6InCsumErrors"] += 1
            mib["Udp6InErrors"] += 1
            return False
        tproxy = self.host.rx_tproxy
        if tproxy is not None:
            # to a non-local destination, for the interface's forwarder
            # (udp_forward.py; docs/internals.md "Transparent forwarding")
            iph = Iph6(V6TAG | ip6h.src, V6TAG | ip6h.dst, ip6h.hlim, ip6h.tclass)
            return bool(tproxy.rcv(iph, sport, dport, bytes(payload[UDP_HLEN:]), now))
        sk = self.udp.lookup6(ip6h.src, sport, ip6h.dst, dport)
        if sk is None:
            mib["Udp6NoPorts"] += 1
            self.host.icmp6_send(skb.packet, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH)
            return False
        # sin6_scope_id: the arrival interface for a link-local peer (0 else).
        scope = skb.iif if ip6h.src >> 118 == 0xFE80 >> 6 else 0
        return self.udp._queue(sk, bytes(payload[UDP_HLEN:]), (ip6h.src, sport, 0, scope),
                               UDP6_MIB)

    # ----- ICMPv6 errors: __udp6_lib_err --------------------------------------------

    def err(self, kind: int, code: int, code_errno: int, info: int, ip6h: Any,
            payload: bytes) -> None:
        if len(payload) < 4:
            return
        sport = (payload[0] << 8) | payload[1]
        dport = (payload[2] << 8) | payload[3]
        sk = self.udp.lookup6(ip6h.dst, dport, ip6h.src, sport)
        if sk is None:
            self.host.mib["Udp6InErrorsNoSock"] += 1
            return
        # __udp6_lib_err: packet too big is hard (IPV6_PMTUDISC_WANT, the
        # default), the rest as icmpv6_err_convert says; IPV6_RECVERR for all
        hard = kind == ICMPV6_PKT_TOOBIG or err_fatal(kind, code)
        self.udp.sk_err(sk, kind, code, code_errno, info, hard, sk.recverr6)

    # ----- output: udpv6_sendmsg ----------------------------------------------------

    def sendmsg(self, sk: UdpSock, data: bytes | bytearray | memoryview, dst: int,
                port: int, scope_id: int) -> int:
        host = self.host
        n = len(data)
        if n > UDP6_MAX_PAYLOAD:
            raise sock_error(errno.EMSGSIZE)
        if not sk.lport:
            self.udp.get_port(sk, 0, 0)
        src = sk.laddr
        ifindex = scope_id or sk.scope_id or None
        if not src:
            src = host.route6_lookup(dst, ifindex).src       # ENETUNREACH
            if not src:
                raise sock_error(errno.EADDRNOTAVAIL, "no IPv6 source address")
        dgram = build_udp6(src, dst, sk.lport, port, data)
        try:
            rc = host.ip6_output(IPPROTO_UDP, src, dst, dgram, ifindex=ifindex)
        except OSError:
            host.mib["Udp6OutErrors"] += 1
            raise
        if net_xmit_errno(rc):                  # udp_v6_send_skb: ENOBUFS
            return xmit_dropped(host.mib, n, sk.recverr6, UDP6_XMIT_DROPPED)
        host.mib["Udp6OutDatagrams"] += 1
        return n
