"""ICMPv6 (RFC 4443), after net/ipv6/icmp.c: echo, errors out (icmp6_send), errors in.

Input (icmpv6_rcv): the checksum with the IPv6 pseudo-header, the
per-type counters of /proc/net/snmp6, echo requests answered (to a group we
joined too, from our address for the route back, as Linux with
icmpv6_echo_ignore_multicast=0), ND messages to ndisc, errors to the protocol whose datagram they
quote (``err`` of the handler registered with ``register_protocol6``), a
Packet Too Big lowering the path MTU (RFC 8201, floor 1280).

Output (icmp6_send): never about an ICMPv6 error or a datagram from ``::``
or a multicast source; never about a datagram sent to a multicast group or
as link-layer multicast/broadcast, except Packet Too Big and a parameter
problem about an unknown option whose type says "report even if multicast"
(RFC 4443 2.4 (e)); rate limited like Linux: the host-wide ICMP budget
shared with IPv4 (icmp_global_allow) and a per-destination bucket
(inet_peer_xrlim_allow: bursts of 6, one per ``icmpv6_ratelimit`` scaled
down for wider routes), neither for informational messages or Packet Too
Big.  The error quotes as much of the datagram as fits in 1280 bytes.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from tcpio import _fast
from tcpio.core.icmp import HZ, XRLIM_BURST_FACTOR, inet_peer_xrlim_allow, jiffies
from tcpio.core.icmp_h import (
    ICMPV6_DEST_UNREACH,
    ICMPV6_ECHO_REPLY,
    ICMPV6_ECHO_REQUEST,
    ICMPV6_INFOMSG_MASK,
    ICMPV6_PARAMPROB,
    ICMPV6_PKT_TOOBIG,
    ICMPV6_TIME_EXCEED,
    ICMPV6_UNK_OPTION,
)
from tcpio.core.in_h import IPPROTO_ICMPV6
from tcpio.core.ipv6 import (
    IPV6_HLEN,
    IPV6_MIN_MTU,
    Ipv6Header,
    ipv6_skip_exthdr,
    is_multicast6,
    parse_ipv6hdr,
)
from tcpio.core.ndisc import (
    NDISC_NEIGHBOUR_ADVERTISEMENT,
    NDISC_NEIGHBOUR_SOLICITATION,
    NDISC_ROUTER_ADVERTISEMENT,
    icmp6_message,
)

if TYPE_CHECKING:
    from tcpio.core.host import Host
    from tcpio.core.ipv6 import Ip6Skb

csum = _fast.load("checksum")



# icmpv6_err_convert's table (tab_unreach), code -> errno.
UNREACH_ERRNO = (
    errno.ENETUNREACH,    # 0 no route
    errno.EACCES,         # 1 administratively prohibited
    errno.EHOSTUNREACH,   # 2 beyond scope (was: not a neighbour)
    errno.EHOSTUNREACH,   # 3 address unreachable
    errno.ECONNREFUSED,   # 4 port unreachable
    errno.EACCES,         # 5 source address failed policy
    errno.EACCES,         # 6 reject route
)
# tab_unreach's ``fatal`` for the same codes; a code past the table is
# fatal (EPROTO).  A UDP socket hears of a soft error only with IPV6_RECVERR.
UNREACH_FATAL = (False, True, False, False, True, True, True)
ICMPV6_QUOTE_MAX = IPV6_MIN_MTU - IPV6_HLEN - 8

_IN_COUNTER = {
    ICMPV6_DEST_UNREACH: "Icmp6InDestUnreachs", ICMPV6_PKT_TOOBIG: "Icmp6InPktTooBigs",
    ICMPV6_TIME_EXCEED: "Icmp6InTimeExcds", ICMPV6_PARAMPROB: "Icmp6InParmProblems",
    ICMPV6_ECHO_REQUEST: "Icmp6InEchos", ICMPV6_ECHO_REPLY: "Icmp6InEchoReplies",
    133: "Icmp6InRouterSolicits", 134: "Icmp6InRouterAdvertisements",
    135: "Icmp6InNeighborSolicits", 136: "Icmp6InNeighborAdvertisements",
    137: "Icmp6InRedirects", 130: "Icmp6InGroupMembQueries",
    131: "Icmp6InGroupMembResponses", 143: "Icmp6InMLDv2Reports",
}
_OUT_COUNTER = {
    ICMPV6_DEST_UNREACH: "Icmp6OutDestUnreachs", ICMPV6_PKT_TOOBIG: "Icmp6OutPktTooBigs",
    ICMPV6_TIME_EXCEED: "Icmp6OutTimeExcds", ICMPV6_PARAMPROB: "Icmp6OutParmProblems",
}


def err_fatal(type: int, code: int) -> bool:
    """icmpv6_err_convert's ``fatal``: destination unreachable by tab_unreach
    (codes past it fatal), parameter problem; not packet too big (the caller
    decides by its path MTU discovery mode) nor time exceeded."""
    if type == ICMPV6_DEST_UNREACH:
        return code >= len(UNREACH_FATAL) or UNREACH_FATAL[code]
    return type == ICMPV6_PARAMPROB


def err_convert(type: int, code: int) -> int | None:
    """icmpv6_err_convert: errno for an error (None: not one we act on).
    A destination unreachable code past tab_unreach is EPROTO."""
    if type == ICMPV6_DEST_UNREACH:
        return UNREACH_ERRNO[code] if code < len(UNREACH_ERRNO) else errno.EPROTO
    if type == ICMPV6_PKT_TOOBIG:
        return errno.EMSGSIZE
    if type == ICMPV6_PARAMPROB:
        return errno.EPROTO
    if type == ICMPV6_TIME_EXCEED:
        return errno.EHOSTUNREACH
    return None


class EchoReply(NamedTuple):
    src: int
    ident: int
    seq: int
    data: bytes
    time: float


class Icmp6Error(NamedTuple):
    """An ICMPv6 error about one of our echo requests (for ping-like users)."""

    src: int
    type: int
    code: int
    errno: int
    ident: int
    seq: int


class Icmpv6Proto:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.echo_replies: deque[EchoReply] = deque(maxlen=1024)
        self.errors: deque[Icmp6Error] = deque(maxlen=1024)
        self._peers: dict[int, tuple[int, int]] = {}     # dst -> (tokens, last), jiffies
        self.wakeup: Callable[[], None] | None = None

    # ----- input: icmpv6_rcv ------------------------------------------------------------

    def rcv(self, skb: Ip6Skb, payload: memoryview, now: float) -> None:
        host = self.host
        mib = host.mib
        mib["Icmp6InMsgs"] += 1
        ip6h = skb.ip6h
        if len(payload) < 4:
            mib["Icmp6InErrors"] += 1
            return
        if csum.csum_partial(payload, csum.pseudo_header_sum6(
                ip6h.src, ip6h.dst, IPPROTO_ICMPV6, len(payload))) != 0xFFFF:
            mib["Icmp6InCsumErrors"] += 1
            mib["Icmp6InErrors"] += 1
            return
        type = payload[0]
        counter = _IN_COUNTER.get(type)
        if counter is not None:
            mib[counter] += 1
        if host.rx_tproxy is not None:
            # to a non-local address on a forwarder's interface (issue 18):
            # echo is answered from that address when the interface answers
            # echo for any address (Stack.set_icmp_echo_any); an error
            # quoting a datagram that address sent is about a forwarded flow
            if len(payload) < 8:
                return
            if type == ICMPV6_ECHO_REQUEST and host.rx_tproxy is self:
                self._echo_reply(skb, payload[1], int.from_bytes(payload[4:8], "big"),
                                 payload[8:])
            elif not type & ICMPV6_INFOMSG_MASK and payload[8:][8:24] == \
                    ip6h.dst.to_bytes(16, "big"):
                self._error_in(type, payload[1], int.from_bytes(payload[4:8], "big"),
                               payload[8:])
            return
        if type in (NDISC_NEIGHBOUR_SOLICITATION, NDISC_NEIGHBOUR_ADVERTISEMENT):
            host.ndisc.rcv(skb, type, payload, now)
            return
        if type == NDISC_ROUTER_ADVERTISEMENT:
            host.ndisc.router_discovery(skb, payload, now)
            return
        if len(payload) < 8:
            mib["Icmp6InErrors"] += 1
            return
        rest = int.from_bytes(payload[4:8], "big")
        if type == ICMPV6_ECHO_REQUEST:
            self._echo_reply(skb, payload[1], rest, payload[8:])
        elif type == ICMPV6_ECHO_REPLY:
            self.echo_replies.append(EchoReply(ip6h.src, rest >> 16, rest & 0xFFFF,
                                               bytes(payload[8:]), now))
            host.schedule_wakeup(self)
        elif not type & ICMPV6_INFOMSG_MASK:
            self._error_in(type, payload[1], rest, payload[8:])

    def _echo_reply(self, skb: Ip6Skb, code: int, rest: int, data: memoryview) -> None:
        """icmpv6_echo_reply: same code, identifier, sequence and data (Linux
        copies the request's header and changes the type), from the
        address the request was sent to."""
        host = self.host
        ip6h = skb.ip6h
        try:
            src = ip6h.dst if not is_multicast6(ip6h.dst) else \
                host.route6_lookup(ip6h.src, skb.iif).src
            msg = icmp6_message(src, ip6h.src, ICMPV6_ECHO_REPLY, code,
                                rest.to_bytes(4, "big") + bytes(data))
            host.ip6_output(IPPROTO_ICMPV6, src, ip6h.src, msg, tclass=ip6h.tclass,
                            ifindex=skb.iif)
        except OSError:
            host.mib["Icmp6OutErrors"] += 1
            return
        host.mib["Icmp6OutMsgs"] += 1
        host.mib["Icmp6OutEchoReplies"] += 1

    def _error_in(self, type: int, code: int, info: int, quoted: memoryview) -> None:
        """icmpv6_notify: find the protocol the quoted datagram is for."""
        host = self.host
        if len(quoted) < IPV6_HLEN or quoted[0] >> 4 != 6:
            host.mib["Icmp6InErrors"] += 1
            return
        inner = parse_ipv6hdr(quoted)
        walked = ipv6_skip_exthdr(quoted, IPV6_HLEN, inner.nexthdr)
        if walked is None:
            host.mib["Icmp6InErrors"] += 1
            return
        proto, off, _ = walked
        code_errno = err_convert(type, code)
        if code_errno is None:
            host.mib["Icmp6InErrors"] += 1
            return
        if type == ICMPV6_PKT_TOOBIG and (host.is_local_address6(inner.src) or
                                          host.rx_tproxy is not None):
            host.update_pmtu6(inner.dst, info)
        self.deliver_err(type, code, code_errno, info, inner._replace(nexthdr=proto),
                         bytes(quoted[off:]))

    def deliver_err(self, type: int, code: int, code_errno: int, info: int,
                    inner: Ipv6Header, quoted_payload: bytes) -> None:
        handler = self.host.protocols6.get(inner.nexthdr)
        err = getattr(handler, "err", None)
        if err is None:
            self.host.mib["Icmp6InErrorsUnmatched"] += 1
            return
        err(type, code, code_errno, info, inner, quoted_payload)

    def err(self, kind: int, code: int, code_errno: int, info: int, iph: Any,
            payload: bytes) -> None:
        """Errors about our own echo requests."""
        if len(payload) >= 8 and payload[0] == ICMPV6_ECHO_REQUEST:
            rest = int.from_bytes(payload[4:8], "big")
            self.errors.append(Icmp6Error(iph.dst, kind, code, code_errno, rest >> 16,
                                          rest & 0xFFFF))
            self.host.schedule_wakeup(self)

    # ----- output -------------------------------------------------------------------

    def echo_request(self, dst: int, ident: int, seq: int, data: bytes = b"",
                     src: int | None = None, ifindex: int | None = None) -> None:
        """Send a ping; the reply appears in ``echo_replies``."""
        host = self.host
        route = host.route6_lookup(dst, ifindex)
        if src is None:
            src = route.src
        rest = ((ident & 0xFFFF) << 16) | (seq & 0xFFFF)
        msg = icmp6_message(src, dst, ICMPV6_ECHO_REQUEST, 0, rest.to_bytes(4, "big") + data)
        host.ip6_output(IPPROTO_ICMPV6, src, dst, msg, ifindex=ifindex)
        host.mib["Icmp6OutMsgs"] += 1
        host.mib["Icmp6OutEchos"] += 1

    def send_error(self, packet: bytes | bytearray | memoryview, type: int, code: int,
                   info: int = 0, iif: int | None = None) -> bool:
        """icmp6_send: an error about the received datagram ``packet`` to its source."""
        host = self.host
        mib = host.mib
        if len(packet) < IPV6_HLEN:
            return False
        hdr = parse_ipv6hdr(packet)
        src = hdr.src
        if src == 0 or is_multicast6(src):
            return False
        if is_multicast6(hdr.dst) or host.rx_link_bcast:
            # 2.4 (e.3)/(e.4), with its exceptions (e.3 exception 2: an
            # unknown option of type 10xxxxxx is reported even then).
            if not (type == ICMPV6_PKT_TOOBIG or (
                    type == ICMPV6_PARAMPROB and code == ICMPV6_UNK_OPTION
                    and info < len(packet) and packet[info] & 0xC0 == 0x80)):
                return False
        if self._is_ineligible(packet, hdr.nexthdr):
            return False
        if iif is None:
            iif = host.rx_iif6
        reply_src = hdr.dst if host.is_local_address6(hdr.dst) else None
        try:
            route = host.route6_lookup(src, iif)
        except OSError:
            mib["Icmp6OutErrors"] += 1
            return False
        if not self.xrlim_allow(type, src, route):
            return False
        if reply_src is None:
            reply_src = route.src
        quoted = bytes(packet[:ICMPV6_QUOTE_MAX])
        msg = icmp6_message(reply_src, src, type, code, info.to_bytes(4, "big") + quoted)
        try:
            host.ip6_output(IPPROTO_ICMPV6, reply_src, src, msg, ifindex=iif)
        except OSError:
            mib["Icmp6OutErrors"] += 1
            return False
        mib["Icmp6OutMsgs"] += 1
        mib[_OUT_COUNTER[type]] += 1
        return True

    @staticmethod
    def _is_ineligible(packet: bytes | bytearray | memoryview, nexthdr: int) -> bool:
        """is_ineligible: never an error about an ICMPv6 error (or a truncated
        ICMPv6 message we cannot tell)."""
        walked = ipv6_skip_exthdr(packet, IPV6_HLEN, nexthdr)
        if walked is None:
            return False
        proto, off, frag_off = walked
        if proto != IPPROTO_ICMPV6:
            return False
        if off >= len(packet):
            return frag_off == 0
        return not packet[off] & ICMPV6_INFOMSG_MASK

    def xrlim_allow(self, type: int, dst: int, route: Any) -> bool:
        """icmpv6_global_allow + icmpv6_xrlim_allow: may an error of ``type`` go
        to ``dst`` by ``route`` now?  Informational messages and Packet Too Big
        are never limited, nor errors to ourselves; then the host-wide budget
        shared with IPv4, then ``dst``'s bucket: in jiffies, integers as in
        Linux (``icmpv6_ratelimit`` shifted right by (128 - the route's prefix
        length) >> 5, truncating; six timeouts' burst).  Each refusal counted.
        Every ICMPv6 error tcpio sends goes through here, a forwarder's
        impersonated ones (fwd_icmp.py) included."""
        host = self.host
        if type & ICMPV6_INFOMSG_MASK or type == ICMPV6_PKT_TOOBIG:
            return True
        if route.ifindex == 0:
            return True         # to ourselves (loopback): never limited
        if not host.icmp._global_allow():
            host.mib["IcmpOutRateLimitGlobal"] += 1
            return False
        tmo = round(host.settings.icmpv6_ratelimit * HZ)
        if tmo <= 0:
            return True
        # Give more bandwidth to wider prefixes (icmpv6_xrlim_allow).
        tmo >>= (128 - route_prefixlen(host, dst)) >> 5
        if not inet_peer_xrlim_allow(self._peers, dst, tmo, XRLIM_BURST_FACTOR * tmo,
                                     jiffies(host.now)):
            host.mib["Icmp6OutRateLimitHost"] += 1
            return False
        return True

    def local_error(self, packet: bytes | bytearray, type: int, code: int, info: int = 0
                    ) -> None:
        """An error about a datagram we generated and could not send (ND failed):
        to the protocol that sent it, as if the ICMPv6 error had come back."""
        host = self.host
        if len(packet) < IPV6_HLEN:
            return
        inner = parse_ipv6hdr(packet)
        walked = ipv6_skip_exthdr(packet, IPV6_HLEN, inner.nexthdr)
        code_errno = err_convert(type, code)
        if walked is None or walked[2] or code_errno is None:
            return              # one error per datagram: the first fragment's
        proto, off, _ = walked
        host.mib["Ip6LocalErrors"] += 1
        self.deliver_err(type, code, code_errno, info, inner._replace(nexthdr=proto),
                         bytes(packet[off:off + ICMPV6_QUOTE_MAX]))


def route_prefixlen(host: Host, dst: int) -> int:
    entry = host.fib6.lookup(dst)
    return entry.prefixlen if entry is not None else 128
