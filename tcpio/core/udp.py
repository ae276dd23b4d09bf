"""UDP (net/ipv4/udp.c): udp_rcv, udp_sendmsg, port binding, ICMP errors.

Socks are found by local port, then scored like Linux's compute_score: an
exact local address beats a wildcard bind, a matching connected peer beats
an unconnected sock.  Broadcast datagrams go to every matching sock.

An ICMP error becomes the sock's pending error (``errors``, Linux's single
sk_err: a newer one replaces it; the next recv or send reports it once) when
the sock set IP_RECVERR (IPV6_RECVERR for ICMPv6), or when the error is hard
(__udp4_lib_err's harderr: port or protocol unreachable, parameter problem,
fragmentation needed ...) and the sock is connected; a soft one (net or host
unreachable, time exceeded) is otherwise ignored, as in Linux.

One table serves both families (issue 17): an AF_INET6 sock keeps 128-bit
addresses (``::ffff:a.b.c.d`` for IPv4 peers, which it reaches through IPv4
unless IPV6_V6ONLY); IPv6 input, output and errors are ``udp_ipv6.py``'s
(docs/internals.md "TCP and UDP over IPv6").
"""

from __future__ import annotations

import errno
import socket as _socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio.core.errors import sock_error
from tcpio.core.icmp import err_fatal
from tcpio.core.icmp_h import ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED
from tcpio.core.in_h import AF_INET, AF_INET6, IPPROTO_IPV6, IPPROTO_UDP, IPV6_V6ONLY
from tcpio.core.ipv6 import (
    V4MAPPED_PREFIX,
    bind_scopes_overlap,
    is_v4mapped,
    sk_bind_scope,
)
from tcpio.core.qdisc import net_xmit_errno, xmit_dropped

if TYPE_CHECKING:
    from tcpio.core.protocol import NetHost6
    from tcpio.core.udp_ipv6 import UdpV6Proto

wire = _fast.load("wire")
csum = _fast.load("checksum")

UDP_HLEN = 8
UDP_MAX_PAYLOAD = 65535 - 20 - UDP_HLEN     # 65507
# What one queued datagram costs beyond its payload (the tuple, the bytes and
# address objects): charged against rcvbuf like Linux charges skb truesize, so
# empty datagrams cannot grow a queue without bound.
UDP_SKB_OVERHEAD = 256
# What _queue counts: delivered, receive buffer full, and in errors.
UDP_MIB = ("UdpInDatagrams", "UdpRcvbufErrors", "UdpInErrors")
UDP6_MIB = ("Udp6InDatagrams", "Udp6RcvbufErrors", "Udp6InErrors")
IP_RECVERR = 11         # include/uapi/linux/in.h (Python's socket module lacks it)
IPV6_RECVERR = 25       # include/uapi/linux/in6.h


class UdpSock:
    """A core UDP sock (see docs/internals.md "UDP core sock")."""

    def __init__(self, proto: UdpProto, family: int = AF_INET) -> None:
        self.proto = proto
        self.host = proto.host
        self.family = family
        self.v6only = family == AF_INET6 and bool(self.host.settings.bindv6only)
        self.scope_id = 0               # AF_INET6: the interface of a link-local peer
        self.laddr = 0
        self.lport = 0
        self.raddr = 0
        self.rport = 0
        self.connected = False
        self.inet_id = 0                # a connected socket's next IP ID (ip4_datagram_connect)
        self.closed = False
        self.broadcast = False          # SO_BROADCAST
        self.reuseaddr = False          # SO_REUSEADDR: share a port when both socks set it
        self.recverr = False            # IP_RECVERR: errors even when unconnected
        self.recverr6 = False           # IPV6_RECVERR (ENOBUFS from a full queue, IPv6)
        self.rcvbuf = self.host.settings.udp_rmem_default
        self.rcv_queue: deque[tuple[bytes, tuple[int, ...]]] = deque()
        self.rcv_bytes = 0
        self.errors: deque[OSError] = deque(maxlen=1)   # sk_err: at most one pending
        self.drops = 0
        self.wakeup: Callable[[], None] | None = None

    # ----- user calls -------------------------------------------------------------

    def bind(self, addr: int, port: int, scope_id: int = 0) -> None:
        self._check_open()
        if self.lport:
            raise sock_error(errno.EINVAL, "already bound")
        if not 0 <= port <= 0xFFFF:
            raise sock_error(errno.EINVAL, "port out of range")
        host = self.host
        if self.family == AF_INET6 and not is_v4mapped(addr):
            # inet6_bind: one of our IPv6 addresses, or ::
            if addr and not host.is_local_address6(addr):
                raise sock_error(errno.EADDRNOTAVAIL)
            self.scope_id = scope_id
        else:
            if self.family == AF_INET6 and self.v6only:
                raise sock_error(errno.EINVAL, "IPv4-mapped address on an IPV6_V6ONLY socket")
            a4 = addr & 0xFFFFFFFF
            if a4 and not host.is_local_address(a4) and not host.is_broadcast(a4):
                raise sock_error(errno.EADDRNOTAVAIL)
        self.proto.get_port(self, addr, port)

    def _v4_peer(self, addr: int) -> int | None:
        """The IPv4 address this sock sends ``addr``'s traffic to, None for an
        IPv6 destination.  ENETUNREACH for a mapped one under IPV6_V6ONLY, as
        ip6_datagram_connect and udpv6_sendmsg say, and for a peer of the
        other family than the bound address (an IPv6 source cannot reach
        an IPv4 peer, nor a mapped source an IPv6 one)."""
        if self.family == AF_INET:
            return addr
        mapped_src = is_v4mapped(self.laddr)
        if not is_v4mapped(addr):
            if mapped_src:
                raise sock_error(errno.ENETUNREACH, "IPv6 peer of an IPv4-mapped source")
            return None
        if self.v6only:
            raise sock_error(errno.ENETUNREACH, "IPv4-mapped peer on an IPV6_V6ONLY socket")
        if self.laddr and not mapped_src:
            raise sock_error(errno.ENETUNREACH, "IPv4-mapped peer of an IPv6 source")
        return addr & 0xFFFFFFFF

    def connect(self, addr: int | None, port: int | None, scope_id: int = 0) -> None:
        """Set the default peer; ``addr=None`` (AF_UNSPEC) dissolves the association."""
        self._check_open()
        if addr is None:
            self.connected = False
            self.raddr = self.rport = 0
            return
        if not port or not 0 < port <= 0xFFFF:
            raise sock_error(errno.EINVAL, "bad port")
        host = self.host
        a4 = self._v4_peer(addr)
        if a4 is None:
            src = host.route6_lookup(addr, scope_id or None).src    # ENETUNREACH
        else:
            src = host.route_lookup(a4).src        # ENETUNREACH
            if host.is_broadcast(a4) and not self.broadcast:
                raise sock_error(errno.EACCES, "broadcast needs SO_BROADCAST")
            if self.family == AF_INET6:
                src |= V4MAPPED_PREFIX
        if not self.lport:
            self.proto.get_port(self, 0, 0)
        if not self.laddr:
            # ip4_datagram_connect / ip6_datagram_connect fix the source
            # address from the route.
            self.laddr = src
        self.raddr = addr
        self.rport = port
        if a4 is None:
            self.scope_id = scope_id
        else:
            # ip4_datagram_connect: the socket's own IP IDs from a random start
            self.inet_id = host.ip_ids.random_u16()
        self.connected = True

    def sendto(self, data: bytes | bytearray | memoryview, addr: int | None = None,
               port: int | None = None, scope_id: int = 0) -> int:
        self._check_open()
        if self.errors:
            # sock_alloc_send_skb's sock_error: a pending ICMP error is the
            # send's answer (reported once), and the datagram is not sent
            raise self.errors.popleft()
        host = self.host
        if addr is None:
            if not self.connected:
                raise sock_error(errno.EDESTADDRREQ)
            addr, port, scope_id = self.raddr, self.rport, self.scope_id
        if not port or not 0 < port <= 0xFFFF:
            raise sock_error(errno.EINVAL, "bad port")
        a4 = self._v4_peer(addr)
        if a4 is None:
            return self.proto.v6.sendmsg(self, data, addr, port, scope_id)
        addr = a4
        n = len(data)
        if n > UDP_MAX_PAYLOAD:
            raise sock_error(errno.EMSGSIZE)
        if host.is_broadcast(addr) and not self.broadcast:
            raise sock_error(errno.EACCES, "broadcast needs SO_BROADCAST")
        if not self.lport:
            self.proto.get_port(self, 0, 0)
        src = self.laddr & 0xFFFFFFFF if self.family == AF_INET6 else self.laddr
        route = host.route_lookup(addr)            # ENETUNREACH
        if not src:
            src = route.src
        dgram = wire.build_udp(src, addr, self.lport, port, data)
        # IP_PMTUDISC_WANT, the default without ip_no_pmtu_disc (__ip_make_skb,
        # ip_dont_fragment): DF on a datagram that fits the path, unless the
        # path's MTU is locked; a larger one is fragmented here, without DF.
        df = (not host.settings.ip_no_pmtu_disc and not route.mtu_locked
              and 20 + len(dgram) <= route.mtu)
        # ip_select_ident_segs: a connected socket numbers with its own
        # counter, DF or not; otherwise the hashed ip_idents counter, DF or
        # not (ID 0 is for DF without a socket's ignore_df, and a WANT
        # socket's datagrams have it: ip_sk_ignore_df; seen on Linux 6.x).
        if self.connected:
            ident = self.inet_id = (self.inet_id + 1) & 0xFFFF
        else:
            ident = host.ip_ids.next(addr, IPPROTO_UDP)
        try:
            rc = host.ip_output(IPPROTO_UDP, src, addr, dgram, df=df, ident=ident)
        except OSError:
            host.mib["UdpOutErrors"] += 1
            raise
        if net_xmit_errno(rc):
            # udp_send_skb: ip_send_skb said ENOBUFS (the queue dropped it)
            return xmit_dropped(host.mib, n, self.recverr, UDP_XMIT_DROPPED)
        host.mib["UdpOutDatagrams"] += 1
        return n

    def send(self, data: bytes | bytearray | memoryview) -> int:
        return self.sendto(data)

    def recvfrom(self) -> tuple[bytes, tuple[int, ...]] | None:
        if not self.rcv_queue:
            return None
        data, peer = self.rcv_queue.popleft()
        self.rcv_bytes -= len(data) + UDP_SKB_OVERHEAD
        return data, peer

    def pending(self) -> int:
        return len(self.rcv_queue)

    # ----- options: sk_setsockopt / do_ip_setsockopt for what a UDP sock keeps ------

    def setsockopt(self, level: int, name: int, value: Any) -> None:
        """SO_BROADCAST, SO_REUSEADDR, IP_RECVERR (flags: any non-zero int sets
        them); ENOPROTOOPT for any other option, SO_REUSEPORT included, as
        TcpSock's table says for what it does not list."""
        self._check_open()
        attr = self._opt(level, name)
        if isinstance(value, (bytes, bytearray)):
            value = int.from_bytes(bytes(value)[:4], "little", signed=True)
        if attr == "v6only" and self.lport:
            raise sock_error(errno.EINVAL, "IPV6_V6ONLY after bind")
        setattr(self, attr, bool(int(value)))

    def getsockopt(self, level: int, name: int, buflen: int = 0) -> int:
        if level == _socket.SOL_SOCKET and name == _socket.SO_TYPE:
            return _socket.SOCK_DGRAM
        attr = self._opt(level, name)
        return int(getattr(self, attr))

    def _opt(self, level: int, name: int) -> str:
        attr = _UDP_FLAG_OPTS.get((level, name))
        # IPPROTO_IPV6 options exist on AF_INET6 sockets only (ipv6_setsockopt).
        if attr is None or (level == IPPROTO_IPV6 and self.family != AF_INET6):
            raise sock_error(errno.ENOPROTOOPT)
        return attr

    def getsockname(self) -> tuple[int, ...]:
        if self.family == AF_INET6:
            return self.laddr, self.lport, 0, self.scope_id
        return self.laddr, self.lport

    def getpeername(self) -> tuple[int, ...]:
        if not self.connected:
            raise sock_error(errno.ENOTCONN)
        if self.family == AF_INET6:
            return self.raddr, self.rport, 0, self.scope_id
        return self.raddr, self.rport

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proto.unhash(self)
        self.rcv_queue.clear()
        self.rcv_bytes = 0

    def _check_open(self) -> None:
        if self.closed:
            raise sock_error(errno.EBADF)

    # ----- from the protocol ------------------------------------------------------

    def _enqueue(self, data: bytes, peer: tuple[int, ...]) -> bool:
        size = len(data) + UDP_SKB_OVERHEAD
        if self.rcv_bytes + size > self.rcvbuf and self.rcv_queue:
            # Like Linux, one datagram always fits an empty queue.
            self.drops += 1
            return False
        self.rcv_queue.append((data, peer))
        self.rcv_bytes += size
        self.host.schedule_wakeup(self)
        return True

    def __repr__(self) -> str:
        peer = f" -> {self.raddr:#x}:{self.rport}" if self.connected else ""
        return f"<UdpSock {self.laddr:#x}:{self.lport}{peer}>"


# a datagram the interface's queue dropped (qdisc.xmit_dropped): udp_send_skb
# counts SndbufErrors either way (udp_sendmsg's ``out:`` also counts the
# ENOBUFS it returns), OutDatagrams never
UDP_XMIT_DROPPED = ("OutDiscards", "UdpSndbufErrors")
UDP6_XMIT_DROPPED = ("Ip6OutDiscards", "Udp6SndbufErrors")


# (level, optname) -> the UdpSock flag it sets
_UDP_FLAG_OPTS = {
    (_socket.SOL_SOCKET, _socket.SO_BROADCAST): "broadcast",
    (_socket.SOL_SOCKET, _socket.SO_REUSEADDR): "reuseaddr",
    (_socket.IPPROTO_IP, IP_RECVERR): "recverr",
    (IPPROTO_IPV6, IPV6_RECVERR): "recverr6",
    (IPPROTO_IPV6, IPV6_V6ONLY): "v6only",
}


class UdpProto:
    """The UDP table plus udp_rcv / udp_err."""

    def __init__(self, host: NetHost6) -> None:
        self.host = host
        self.ports: dict[int, list[UdpSock]] = {}
        # udpv6: IPv6 input, output and errors (set by af_inet6.inet6_init).
        self.v6: UdpV6Proto

    def socket(self, family: int = AF_INET) -> UdpSock:
        return UdpSock(self, family)

    # ----- binding: udp_lib_get_port --------------------------------------------------

    def _conflicts(self, sk: UdpSock, addr: int, port: int, reuse: bool = False) -> bool:
        """udp_lib_lport_inuse: the families share the ports, and two binds
        clash when their address sets overlap (``ipv6.sk_bind_scope``)."""
        mine = sk_bind_scope(sk.family, addr, sk.v6only)
        for other in self.ports.get(port, ()):
            if reuse and other.reuseaddr:
                continue
            if bind_scopes_overlap(mine, sk_bind_scope(other.family, other.laddr, other.v6only)):
                return True
        return False

    def get_port(self, sk: UdpSock, addr: int, port: int) -> None:
        if port == 0:
            low, high = self.host.settings.ip_local_port_range
            span = high - low + 1
            start = self.host.rng.randrange(span)
            for i in range(span):
                candidate = low + (start + i) % span
                if not self._conflicts(sk, addr, candidate):
                    port = candidate
                    break
            else:
                raise sock_error(errno.EADDRINUSE, "no free ephemeral port")
        elif self._conflicts(sk, addr, port, sk.reuseaddr):
            raise sock_error(errno.EADDRINUSE)
        sk.laddr = addr
        sk.lport = port
        self.ports.setdefault(port, []).append(sk)

    def unhash(self, sk: UdpSock) -> None:
        socks = self.ports.get(sk.lport)
        if socks and sk in socks:
            socks.remove(sk)
            if not socks:
                del self.ports[sk.lport]

    def lookup(self, saddr: int, sport: int, daddr: int, dport: int) -> UdpSock | None:
        """__udp4_lib_lookup: the best-scoring sock for this IPv4 4-tuple; an
        AF_INET6 sock without IPV6_V6ONLY takes it as ::ffff:a.b.c.d, scored
        below an AF_INET one (compute_score's family point)."""
        best = None
        best_score = -1
        for sk in self.ports.get(dport, ()):
            if sk.family == AF_INET:
                score = _score(sk, saddr, sport, daddr, 2)
            elif sk.v6only:
                continue
            else:
                score = _score(sk, V4MAPPED_PREFIX | saddr, sport, V4MAPPED_PREFIX | daddr, 1)
            if score > best_score:
                best, best_score = sk, score
        return best

    def lookup6(self, saddr: int, sport: int, daddr: int, dport: int) -> UdpSock | None:
        """__udp6_lib_lookup: the best-scoring AF_INET6 sock for an IPv6 4-tuple."""
        best = None
        best_score = -1
        for sk in self.ports.get(dport, ()):
            if sk.family == AF_INET6:
                score = _score(sk, saddr, sport, daddr, 1)
                if score > best_score:
                    best, best_score = sk, score
        return best

    # ----- input: __udp4_lib_rcv --------------------------------------------------------

    def rcv(self, iph: Any, payload: memoryview, now: float) -> bool:
        host = self.host
        mib = host.mib
        n = len(payload)
        if n < UDP_HLEN:
            mib["UdpInErrors"] += 1
            return False
        udph = wire.parse_udp(payload)
        ulen = udph.length
        if ulen < UDP_HLEN or ulen > n:
            mib["UdpInErrors"] += 1      # short packet
            return False
        if ulen < n:
            payload = payload[:ulen]     # trim to the UDP length
        if udph.checksum and csum.tcpudp_checksum(iph.src, iph.dst, IPPROTO_UDP, payload) != 0:
            mib["UdpInCsumErrors"] += 1
            mib["UdpInErrors"] += 1
            return False
        sport = udph.sport
        dport = udph.dport
        tproxy = host.rx_tproxy
        if tproxy is not None:
            # to a non-local destination, for the interface's forwarder
            # (udp_forward.py; docs/internals.md "Transparent forwarding")
            return bool(tproxy.rcv(iph, sport, dport, bytes(payload[UDP_HLEN:]), now))
        peer = (iph.src, sport)
        if host.is_broadcast(iph.dst):
            delivered = False
            data = bytes(payload[UDP_HLEN:])
            for sk in list(self.ports.get(dport, ())):
                if sk.family == AF_INET:
                    match = (not sk.laddr or sk.laddr == iph.dst or host.is_broadcast(sk.laddr)) \
                        and (not sk.connected or (sk.raddr, sk.rport) == peer)
                else:
                    match = not sk.v6only and not sk.laddr and not sk.connected
                if match:
                    delivered |= self._queue(sk, data, _peer(sk, iph.src, sport))
            if not delivered:
                mib["UdpIgnoredMulti"] += 1     # __udp4_lib_mcast_deliver: no ICMP either
            return delivered
        dest = self.lookup(iph.src, sport, iph.dst, dport)
        if dest is None:
            mib["UdpNoPorts"] += 1
            host.icmp_send(iph, payload, 3, 3)      # port unreachable
            return False
        return self._queue(dest, bytes(payload[UDP_HLEN:]), _peer(dest, iph.src, sport))

    def rcv_fast(self, rec: tuple, frame: bytes | bytearray | memoryview, now: float) -> bool:
        """udp_rcv for a datagram the host's rx classifier already checked.

        ``rec`` is ``rx_classify``'s tuple: unicast to one of our addresses,
        length and checksum good, payload already copied out.  Only the socket
        lookup and the queueing are left; the counters are those of ``rcv``.
        """
        _, src, dst, sport, dport, data, off, end = rec
        socks = self.ports.get(dport)
        sk = None
        if socks:
            if len(socks) == 1 and socks[0].family == AF_INET:
                # The usual case, one sock on the port: lookup()'s scoring reduced
                # to "does it match at all".
                sk = socks[0]
                if (sk.laddr and sk.laddr != dst) or \
                        (sk.connected and (sk.raddr != src or sk.rport != sport)):
                    sk = None
            else:
                sk = self.lookup(src, sport, dst, dport)
        host = self.host
        if sk is None:
            host.mib["UdpNoPorts"] += 1
            # The error quotes the datagram: build the header record only now.
            host.icmp_send(wire.parse_ipv4(frame, off - 20), memoryview(frame)[off:end], 3, 3)
            return False
        # _queue + UdpSock._enqueue, inlined: this runs once per datagram.
        n = len(data) + UDP_SKB_OVERHEAD
        if sk.rcv_bytes + n > sk.rcvbuf and sk.rcv_queue:
            sk.drops += 1
            mib = host.mib
            mib["UdpRcvbufErrors"] += 1
            mib["UdpInErrors"] += 1
            return False
        sk.rcv_queue.append((data, _peer(sk, src, sport)))
        sk.rcv_bytes += n
        host.schedule_wakeup(sk)
        host.mib["UdpInDatagrams"] += 1
        return True

    def _queue(self, sk: UdpSock, data: bytes, peer: tuple[int, ...],
               counters: tuple[str, str, str] = UDP_MIB) -> bool:
        """Queue on ``sk``, counted in ``counters`` (UDP_MIB, or UDP6_MIB for
        an IPv6 datagram: Linux counts by the datagram's family)."""
        mib = self.host.mib
        delivered, rcvbuf_errors, in_errors = counters
        if not sk._enqueue(data, peer):
            mib[rcvbuf_errors] += 1
            mib[in_errors] += 1
            return False
        mib[delivered] += 1
        return True

    # ----- ICMP errors: __udp4_lib_err ----------------------------------------------------

    def err(self, kind: int, code: int, code_errno: int, info: int, iph: Any,
            payload: bytes) -> None:
        if len(payload) < 4:
            return
        sport = (payload[0] << 8) | payload[1]
        dport = (payload[2] << 8) | payload[3]
        # The quoted datagram is ours: its source is our address, its destination the peer.
        sk = self.lookup(iph.dst, dport, iph.src, sport)
        if sk is None:
            self.host.mib["UdpInErrorsNoSock"] += 1
            return
        if kind == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
            if self.host.settings.ip_no_pmtu_disc:
                return      # IP_PMTUDISC_DONT: not even with IP_RECVERR
            hard = True
        else:
            hard = err_fatal(kind, code)
        self.sk_err(sk, kind, code, code_errno, info, hard, sk.recverr)

    def sk_err(self, sk: UdpSock, kind: int, code: int, code_errno: int, info: int,
               hard: bool, recverr: bool) -> None:
        """An ICMP or ICMPv6 error for ``sk`` (__udp4_lib_err, __udp6_lib_err):
        with IP_RECVERR (IPV6_RECVERR: ``recverr``) any error, else a ``hard``
        one on a connected sock, becomes its pending error (sk_err), replacing
        one not yet reported; anything else is ignored."""
        if not (recverr or (hard and sk.connected)):
            return
        detail = f"ICMP type {kind} code {code}"
        if code_errno == errno.EMSGSIZE and info:
            detail += f", next-hop MTU {info}"
        sk.errors.append(sock_error(code_errno, detail))    # (maxlen 1: replaces)
        self.host.schedule_wakeup(sk)


def _score(sk: UdpSock, saddr: int, sport: int, daddr: int, score: int) -> int:
    """compute_score for one sock (addresses in its family's form): -1 when
    it does not match, else ``score`` plus 4 for an exact local address and
    8 for a matching connected peer."""
    if sk.laddr:
        if sk.laddr != daddr:
            return -1
        score += 4
    if sk.connected:
        if sk.raddr != saddr or sk.rport != sport:
            return -1
        score += 8
    return score


def _peer(sk: UdpSock, src: int, sport: int) -> tuple[int, ...]:
    """What recvfrom reports for an IPv4 datagram from src:sport: for an
    AF_INET6 sock a sockaddr_in6 of ::ffff:src."""
    if sk.family == AF_INET:
        return (src, sport)
    return (V4MAPPED_PREFIX | src, sport, 0, 0)
