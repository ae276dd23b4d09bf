"""ICMP (net/ipv4/icmp.c): echo, errors out (icmp_send), errors in (icmp_unreach).

Errors we receive are matched to the transport by the datagram they quote
and handed to its ``err(kind, code, errno, info, iph_quoted, payload_quoted)``
with the errno Linux's ``icmp_err_convert`` gives.  Errors we send obey
RFC 1122 3.2.2: never about an ICMP error, a broadcast or multicast, a
non-initial fragment, or a datagram whose source is not a unicast host; and
they are rate limited host-wide (icmp_msgs_per_sec) and per destination
(token bucket, Linux's icmp_ratelimit) except "fragmentation needed", which
path MTU discovery depends on.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from tcpio import _fast
from tcpio.core.addr import is_multicast
from tcpio.core.icmp_h import (
    ICMP_DEST_UNREACH,
    ICMP_ECHO,
    ICMP_ECHOREPLY,
    ICMP_EXC_FRAGTIME,
    ICMP_FRAG_NEEDED,
    ICMP_PARAMETERPROB,
    ICMP_SOURCE_QUENCH,
    ICMP_TIME_EXCEEDED,
)
from tcpio.core.in_h import IPPROTO_ICMP

if TYPE_CHECKING:
    from tcpio.core.host import Host

wire = _fast.load("wire")
csum = _fast.load("checksum")



# Types that are queries/replies, about which an error may be sent.
_INFO_TYPES = frozenset((0, 8, 13, 14, 15, 16, 17, 18))
# Linux's icmp_err_convert: destination unreachable code -> errno.
UNREACH_ERRNO = (
    errno.ENETUNREACH,    # 0 net unreachable
    errno.EHOSTUNREACH,   # 1 host unreachable
    errno.ENOPROTOOPT,    # 2 protocol unreachable
    errno.ECONNREFUSED,   # 3 port unreachable
    errno.EMSGSIZE,       # 4 fragmentation needed
    errno.EOPNOTSUPP,     # 5 source route failed
    errno.ENETUNREACH,    # 6 net unknown
    errno.EHOSTDOWN,      # 7 host unknown
    errno.ENONET,         # 8 host isolated
    errno.ENETUNREACH,    # 9 net administratively prohibited
    errno.EHOSTUNREACH,   # 10 host administratively prohibited
    errno.ENETUNREACH,    # 11 net unreachable for TOS
    errno.EHOSTUNREACH,   # 12 host unreachable for TOS
    errno.EHOSTUNREACH,   # 13 communication administratively prohibited
    errno.EHOSTUNREACH,   # 14 host precedence violation
    errno.EHOSTUNREACH,   # 15 precedence cut-off
)
# icmp_err_convert's ``fatal`` for the same codes (RFC 1122 3.2.2.1: net and
# host unreachable, and source route failed, are transient).  A UDP socket
# hears of a non-fatal ("soft") error only with IP_RECVERR (__udp4_lib_err).
UNREACH_FATAL = (False, False, True, True, False, False, True, True, True, True, True,
                 False, False, True, True, True)
_IN_COUNTER = {3: "IcmpInDestUnreachs", 4: "IcmpInSrcQuenchs", 11: "IcmpInTimeExcds",
               12: "IcmpInParmProbs"}
_OUT_COUNTER = {3: "IcmpOutDestUnreachs", 11: "IcmpOutTimeExcds", 12: "IcmpOutParmProbs"}
# RFC 1812 4.3.2.3: an error quotes as much of the datagram as fits in 576 bytes.
ICMP_QUOTE_MAX = 576 - 20 - 8
# inet_peer_xrlim_allow's burst: XRLIM_BURST_FACTOR timeouts' worth.
XRLIM_BURST_FACTOR = 6
# The rate limiters count in jiffies (HZ = 1000: milliseconds), integers as in
# Linux, so that refills adding up to a whole timeout allow one more error
# (float seconds would leave 0.1 + 0.15 just short of 0.25).
HZ = 1000


def jiffies(now: float) -> int:
    """The host clock in jiffies (to the nearest: virtual-clock times are exact)."""
    return round(now * HZ)


def inet_peer_xrlim_allow(peers: dict[int, tuple[int, int]], dst: int, timeout: int,
                          burst: int, now: int) -> bool:
    """Linux's inet_peer_xrlim_allow: ``dst``'s tokens (jiffies) grow with time
    up to ``burst``; an error costs ``timeout`` of them.  A destination not
    seen before starts full (Linux's new peer has rate_last a minute ago)."""
    tokens, last = peers.get(dst, (burst, now))
    tokens = min(burst, tokens + now - last)
    if tokens < timeout:
        peers[dst] = (tokens, now)
        return False
    if len(peers) > 4096:
        peers.clear()           # bounded; forgetting only makes us more permissive
    peers[dst] = (tokens - timeout, now)
    return True


def err_fatal(type: int, code: int) -> bool:
    """__udp4_lib_err's harderr: a fatal destination unreachable code, or a
    parameter problem.  (Fragmentation needed depends on the socket's path MTU
    discovery mode: its caller decides.)  Time exceeded is soft."""
    if type == ICMP_DEST_UNREACH:
        return code < len(UNREACH_FATAL) and UNREACH_FATAL[code]
    return type == ICMP_PARAMETERPROB


def err_convert(type: int, code: int) -> int | None:
    """errno for an ICMP error (None: not an error we act on)."""
    if type == ICMP_DEST_UNREACH:
        return UNREACH_ERRNO[code] if code < len(UNREACH_ERRNO) else None
    if type == ICMP_TIME_EXCEEDED:
        return errno.EHOSTUNREACH
    if type == ICMP_PARAMETERPROB:
        return errno.EPROTO
    return None


class EchoReply(NamedTuple):
    src: int
    ident: int
    seq: int
    data: bytes
    time: float


class IcmpError(NamedTuple):
    """An ICMP error about one of our echo requests (for ping-like users)."""

    src: int
    type: int
    code: int
    errno: int
    ident: int
    seq: int


class IcmpProto:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.echo_replies: deque[EchoReply] = deque(maxlen=1024)
        self.errors: deque[IcmpError] = deque(maxlen=1024)
        self._peers: dict[int, tuple[int, int]] = {}     # dst -> (tokens, last), jiffies
        self._global = (float(host.settings.icmp_msgs_burst), 0.0)  # (tokens, last)
        # Woken (via host.schedule_wakeup) when echo_replies or errors grow.
        self.wakeup: Callable[[], None] | None = None

    # ----- input ------------------------------------------------------------------

    def rcv(self, iph: Any, payload: memoryview, now: float) -> bool:
        host = self.host
        mib = host.mib
        mib["IcmpInMsgs"] += 1
        if len(payload) < 8:
            mib["IcmpInErrors"] += 1
            return False
        if csum.csum_partial(payload) != 0xFFFF:
            mib["IcmpInCsumErrors"] += 1
            mib["IcmpInErrors"] += 1
            return False
        icmph = wire.parse_icmp(payload)
        type = icmph.type
        if host.rx_tproxy is not None:
            # to a non-local address on a forwarder's interface (issue 18):
            # echo is answered from that address when the interface answers
            # echo for any address (Host.set_tproxy(ifindex, IPPROTO_ICMP,
            # icmp)); an error quoting a datagram that address sent is about
            # a forwarded flow (its TCP sock is hashed by that 4-tuple)
            if type == ICMP_ECHO and host.rx_tproxy is self:
                mib["IcmpInEchos"] += 1
                self._reply(iph, icmph.code, icmph.rest, payload[8:])
                return True
            if type in _IN_COUNTER:
                mib[_IN_COUNTER[type]] += 1
                self._error_in(iph, icmph.code, type, icmph.rest, payload[8:])
                return True
            return False
        if host.is_broadcast(iph.dst) or is_multicast(iph.dst):
            # icmp_rcv: to a broadcast only queries are looked at, and echo is
            # ignored too (icmp_echo_ignore_broadcasts=1, no smurf amplifier).
            # An error or reply sent to everyone is never believed: one forged
            # broadcast must not reset every host's sockets.
            if type == ICMP_ECHO:
                mib["IcmpInEchos"] += 1
            elif type == ICMP_ECHOREPLY:
                mib["IcmpInEchoReps"] += 1
            elif type in _IN_COUNTER:
                mib[_IN_COUNTER[type]] += 1
            mib["IcmpInErrors"] += 1
            return False
        if type == ICMP_ECHO:
            mib["IcmpInEchos"] += 1
            self._reply(iph, icmph.code, icmph.rest, payload[8:])
        elif type == ICMP_ECHOREPLY:
            mib["IcmpInEchoReps"] += 1
            self.echo_replies.append(EchoReply(iph.src, icmph.rest >> 16, icmph.rest & 0xFFFF,
                                               bytes(payload[8:]), now))
            host.schedule_wakeup(self)
        elif type in _IN_COUNTER:
            mib[_IN_COUNTER[type]] += 1
            self._error_in(iph, icmph.code, type, icmph.rest, payload[8:])
        return True

    def _reply(self, iph: Any, code: int, rest: int, data: memoryview) -> None:
        """icmp_echo: the reply is the request's header with the type changed
        (Linux copies the whole header, so a nonzero code comes back as sent;
        RFC 792 says only that the code is 0, which every real request has)."""
        host = self.host
        try:
            host.ip_output(IPPROTO_ICMP, iph.dst, iph.src,
                           wire.build_icmp(ICMP_ECHOREPLY, code, rest, data), tos=iph.tos)
        except OSError:
            host.mib["IcmpOutErrors"] += 1
            return
        host.mib["IcmpOutMsgs"] += 1
        host.mib["IcmpOutEchoReps"] += 1

    def _error_in(self, iph: Any, code: int, type: int, rest: int, quoted: memoryview) -> None:
        """icmp_unreach: find the transport the quoted datagram came from."""
        mib = self.host.mib
        if type == ICMP_SOURCE_QUENCH:
            return          # RFC 6633: ignored
        if type == ICMP_TIME_EXCEEDED and code == ICMP_EXC_FRAGTIME:
            return          # icmp_unreach: reassembly time exceeded is for nobody
        if len(quoted) < 20:
            mib["IcmpInErrors"] += 1
            return
        # icmp_unreach: the quoted header must be IPv4 with a sane IHL, and the
        # quote must hold all of it plus 8 bytes (the ports) before it is parsed.
        b0 = quoted[0]
        if b0 >> 4 != 4 or b0 & 0x0F < 5 or len(quoted) < (b0 & 0x0F) * 4 + 8:
            mib["IcmpInErrors"] += 1
            return
        inner = wire.parse_ipv4(quoted)
        if self.host.rx_tproxy is not None and inner.src != iph.dst:
            mib["IcmpInErrors"] += 1        # not about what that address sent
            return
        code_errno = err_convert(type, code)
        if code_errno is None:
            mib["IcmpInErrors"] += 1
            return
        info = 0
        if type == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
            info = rest & 0xFFFF         # next-hop MTU (RFC 1191; 0 from old routers)
            # (ip_no_pmtu_disc: our datagrams carry no DF, so none learns a path MTU)
            if (self.host.is_local_address(inner.src) or self.host.rx_tproxy is not None) \
                    and not self.host.settings.ip_no_pmtu_disc:
                self.host.update_pmtu(inner.dst, info)
        elif type == ICMP_PARAMETERPROB:
            info = rest >> 24            # pointer
        self.deliver_err(type, code, code_errno, info, inner,
                         bytes(quoted[inner.ihl * 4:]))

    def deliver_err(self, type: int, code: int, code_errno: int, info: int, inner: Any,
                    quoted_payload: bytes) -> None:
        handler = self.host.protocols.get(inner.proto)
        err = getattr(handler, "err", None)
        if err is None:
            self.host.mib["IcmpInErrorsUnmatched"] += 1
            return
        err(type, code, code_errno, info, inner, quoted_payload)

    def err(self, kind: int, code: int, code_errno: int, info: int, iph: Any,
            payload: bytes) -> None:
        """Errors about our own ICMP messages (an echo request that bounced)."""
        if len(payload) >= 8 and payload[0] == ICMP_ECHO:
            rest = wire.parse_icmp(payload).rest
            self.errors.append(IcmpError(iph.dst, kind, code, code_errno, rest >> 16,
                                         rest & 0xFFFF))
            self.host.schedule_wakeup(self)

    # ----- output -----------------------------------------------------------------

    def echo_request(self, dst: int, ident: int, seq: int, data: bytes = b"",
                     src: int | None = None, df: bool = False) -> None:
        """Send a ping; the reply appears in ``echo_replies``."""
        host = self.host
        rest = ((ident & 0xFFFF) << 16) | (seq & 0xFFFF)
        host.ip_output(IPPROTO_ICMP, src, dst, wire.build_icmp(ICMP_ECHO, 0, rest, data), df=df)
        host.mib["IcmpOutMsgs"] += 1
        host.mib["IcmpOutEchos"] += 1

    def send_error(self, iph: Any, payload: bytes | bytearray | memoryview, type: int,
                   code: int, info: int = 0) -> bool:
        """icmp_send: an error about the datagram (iph, payload) to its source."""
        host = self.host
        mib = host.mib
        src = iph.src
        if iph.frag_offset or host.is_broadcast(iph.dst) or is_multicast(iph.dst) \
                or src == 0 or host.is_broadcast(src) or is_multicast(src) \
                or host.rx_link_bcast:
            return False
        if iph.proto == IPPROTO_ICMP and (len(payload) < 1 or payload[0] not in _INFO_TYPES):
            return False     # never an error about an error
        if not self.xrlim_allow(src, type, code):
            return False
        hdr = bytearray(60)
        hlen = wire.build_ipv4(hdr, 0, iph)
        quoted = bytes(hdr[:hlen]) + bytes(payload[:max(0, ICMP_QUOTE_MAX - hlen)])
        if type == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
            rest = info & 0xFFFF
        elif type == ICMP_PARAMETERPROB:
            rest = (info & 0xFF) << 24
        else:
            rest = 0
        reply_src = iph.dst if host.is_local_address(iph.dst) else None
        try:
            host.ip_output(IPPROTO_ICMP, reply_src, src, wire.build_icmp(type, code, rest, quoted),
                           tos=0xC0)
        except OSError:
            mib["IcmpOutErrors"] += 1
            return False
        mib["IcmpOutMsgs"] += 1
        mib[_OUT_COUNTER.get(type, "IcmpOutOther")] += 1
        return True

    def _global_allow(self) -> bool:
        """icmp_global_allow: all errors share icmp_msgs_per_sec, burst icmp_msgs_burst.

        Without it, a scan from spoofed sources (a fresh per-destination bucket
        each) would draw an error for every datagram.
        """
        settings = self.host.settings
        rate = float(settings.icmp_msgs_per_sec)
        burst = float(settings.icmp_msgs_burst)
        if rate <= 0:
            return True         # 0 disables the limit, as in Linux
        now = self.host.now
        tokens, last = self._global
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._global = (tokens, now)
            return False
        self._global = (tokens - 1.0, now)
        return True

    def xrlim_allow(self, dst: int, type: int, code: int) -> bool:
        """May an error of ``type``/``code`` go to ``dst`` now?  __icmp_send's
        two limits: icmpv4_global_allow (the host-wide budget) first, then
        icmpv4_xrlim_allow (``dst``'s bucket: ``icmp_ratemask_burst`` errors,
        one more per ``icmp_ratelimit`` seconds); each refusal counted.  Only
        the types in ``icmp_ratemask`` are limited, and never fragmentation
        needed (path MTU discovery depends on it): icmpv4_mask_allow.  Every
        ICMP error tcpio sends goes through here, a forwarder's impersonated
        ones (fwd_icmp.py) included."""
        if (type == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED) or type > 31 \
                or not (1 << type) & self.host.settings.icmp_ratemask:
            return True
        mib = self.host.mib
        if not self._global_allow():
            mib["IcmpOutRateLimitGlobal"] += 1
            return False
        s = self.host.settings
        timeout = round(s.icmp_ratelimit * HZ)
        if timeout <= 0:
            return True         # 0 disables it, as in Linux
        if not inet_peer_xrlim_allow(self._peers, dst, timeout,
                                     s.icmp_ratemask_burst * timeout, jiffies(self.host.now)):
            mib["IcmpOutRateLimitHost"] += 1
            return False
        return True

    def local_error(self, packet: bytes | bytearray, type: int, code: int, info: int = 0
                    ) -> None:
        """An error about a datagram we generated and could not send (ARP failure)."""
        host = self.host
        try:
            inner = wire.parse_ipv4(packet)
        except ValueError:
            return
        if inner.frag_offset:
            return              # one error per datagram: the first fragment's
        code_errno = err_convert(type, code)
        if code_errno is None:
            return
        host.mib["IpLocalErrors"] += 1
        hlen = inner.ihl * 4
        self.deliver_err(type, code, code_errno, info, inner,
                         bytes(packet[hlen:hlen + ICMP_QUOTE_MAX]))
