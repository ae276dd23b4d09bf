"""The transparent TCP forwarder: connections to any address on one interface.

Linux's model (``IP_TRANSPARENT`` + TPROXY): a listener that accepts
connections addressed to someone else.  Here it is implicit: a
``TcpForwarder`` owns a ``TcpSock`` in LISTEN that is bound to nothing and
is in no listening hash, and ``tcp_v4_rcv`` reaches it only for a segment
that ``ip_rcv`` took for a non-local destination on the forwarder's
interface (``host.rx_tproxy``, see docs/internals.md "Transparent
forwarding") and that missed the established hash.

A SYN becomes a ``TcpFwdRequest`` for the application, which decides later
(gVisor's ``tcp.Forwarder`` shape): ``accept`` replays the SYN into
``tcp_v4_conn_request`` on the implicit listener, so the SYN queue, SYN
cookies and every option are a local listener's; ``refuse`` answers with the
RST a closed port sends; ``unreachable`` with the ICMP destination
unreachable a router would send; ``drop`` sends nothing.  The child the handshake
makes is hashed by the original 4-tuple: its ``getsockname()`` is the
original destination.

Sans-IO like the rest of the core: the forwarder is woken through
``host.schedule_wakeup(self)`` (its ``wakeup`` is the glue's) when requests
or accepted children wait; no application code runs inside packet processing.
"""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING, Any

from ... import _fast
from ..errors import sock_error
from ..fwd_icmp import ICMP_HOST_UNREACH, unreach_from_destination
from ..in_h import AF_INET, AF_INET6, IPPROTO_TCP
from .inet6_addr import V6MASK, addr_str
from .tcp_input import Skb
from .tcp_states import TCP_CLOSE, TCP_LISTEN, TCPHDR_ACK, TCPHDR_RST, TCPHDR_SYN

if TYPE_CHECKING:
    from collections.abc import Callable

    from .sock import TcpSock
    from .tcp_ipv4 import TcpProto

parse_tcp = _fast.load("wire").parse_tcp

# A request's fate (the application's decision, or the forwarder's)
PENDING, ACCEPTED, REFUSED, DROPPED, TIMED_OUT, CONNECTED, FAILED, UNREACHABLE = range(8)

# How long an accepted request may take to become a connection (the
# SYN-ACK's retransmissions, tcp_synack_retries = 5, give up after ~63 s).
HANDSHAKE_TIMEOUT = 75.0


class TcpFwdRequest:
    """One SYN to a non-local destination, waiting for the application.

    ``src, sport`` the client, ``dst, dport`` the original destination
    (host-order ints, as in the core).  ``state`` is one of the module's
    PENDING ... FAILED; ``child`` the connection once the handshake is done.
    """

    __slots__ = ("__weakref__", "child", "dport", "dst", "fwd", "iph", "isn", "sport", "src",
                 "state", "syn", "timer")

    def __init__(self, fwd: TcpForwarder, iph: Any, th: Any, syn: bytes, isn: int,
                 now: float) -> None:
        self.fwd = fwd
        self.src, self.dst = iph.src, iph.dst
        self.sport, self.dport = th.sport, th.dport
        self.iph = iph
        self.syn = syn          # the SYN's bytes (a copy: the frame is not ours to keep)
        self.isn = isn          # set when the SYN reopens a TIME-WAIT tuple
        self.state = PENDING
        self.child: TcpSock | None = None
        self.timer = fwd.host.timers.timer(_request_timeout, self)
        self.timer.arm(now + fwd.pending_timeout)

    @property
    def key(self) -> tuple[int, int, int, int]:
        """(laddr, lport, raddr, rport) of the connection, ours first (ehash order)."""
        return self.dst, self.dport, self.src, self.sport

    def _skb(self) -> Skb:
        th = parse_tcp(self.syn)
        return Skb(th, memoryview(self.syn)[th.doff << 2:])

    def accept(self) -> None:
        """Complete the handshake: the SYN goes to the implicit listener now."""
        self.fwd.decide(self, ACCEPTED)

    def refuse(self) -> None:
        """Answer the SYN with RST|ACK, as a closed port does."""
        self.fwd.decide(self, REFUSED)

    def drop(self) -> None:
        """Forget the SYN: the client hears nothing."""
        self.fwd.decide(self, DROPPED)

    def unreachable(self, code: int = ICMP_HOST_UNREACH) -> None:
        """Answer the SYN with ICMP destination unreachable (``code`` as in
        RFC 792; ICMPv6's matching one for an IPv6 flow) from the original
        destination, as a router that cannot reach it would: the client's
        connect() fails with EHOSTUNREACH, ENETUNREACH, ...  (fwd_icmp.py)."""
        self.fwd.decide(self, UNREACHABLE, code)

    def __repr__(self) -> str:
        return (f"<TcpFwdRequest {addr_str(self.src)}:{self.sport} -> "
                f"{addr_str(self.dst)}:{self.dport} state={self.state}>")


def _request_timeout(req: TcpFwdRequest, now: float) -> None:
    req.fwd.expire(req, now)


class TcpForwarder:
    """The per-interface forwarder (see the module docstring).

    ``requests`` holds the SYNs waiting for a decision and the accepted
    requests waiting for their handshake, by 4-tuple; ``ready`` the requests
    and completed connections the glue has not seen yet (it takes them with
    ``take_ready``); ``children`` the live accepted connections (what
    ``max_connections`` counts)."""

    def __init__(self, proto: TcpProto, *, max_pending: int = 1024,
                 max_connections: int = 65536, backlog: int = 4096,
                 pending_timeout: float = 30.0) -> None:
        if max_pending < 1 or max_connections < 1 or backlog < 0 or pending_timeout <= 0:
            raise ValueError("limits must be positive")
        self.proto = proto
        self.host = proto.host
        self.max_pending = max_pending
        self.max_connections = max_connections
        self.pending_timeout = pending_timeout
        # the implicit IP_TRANSPARENT wildcard listeners: one per family, so
        # an IPv6 flow's child is an AF_INET6 sock (its names sockaddr_in6s)
        self.listener = self._implicit_listener(AF_INET, backlog)
        self.listener6 = self._implicit_listener(AF_INET6, backlog)
        self.requests: dict[tuple[int, int, int, int], TcpFwdRequest] = {}
        self.pending = 0                # requests in state PENDING
        self.children: set[TcpSock] = set()
        self.ready: deque[TcpFwdRequest] = deque()
        self.stats: dict[str, int] = dict.fromkeys(
            ("TcpFwdRequests", "TcpFwdAccepted", "TcpFwdRefused", "TcpFwdUnreachable",
             "TcpFwdDropped",
             "TcpFwdPendingDrops", "TcpFwdConnLimitDrops", "TcpFwdTimeouts"), 0)
        self.wakeup: Callable[[], None] | None = None
        self.closed = False

    def _implicit_listener(self, family: int, backlog: int) -> TcpSock:
        listener = self.proto.socket(family)
        listener.v6only = family == AF_INET6
        listener.max_ack_backlog = backlog
        listener.accept_queue = deque()
        listener.syn_queue = {}
        listener.state = TCP_LISTEN
        listener.wakeup = self._listener_wakeup
        return listener

    def listener_for(self, addr: int) -> TcpSock:
        """The implicit listener of ``addr``'s family (IPv6 ones are tagged)."""
        return self.listener6 if addr > V6MASK else self.listener

    def _count(self, name: str) -> None:
        self.stats[name] += 1
        self.host.mib[name] += 1

    # --- from tcp_v4_rcv ------------------------------------------------------------
    def rcv(self, skb: Skb, iph: Any, raw: Any, now: float, isn: int = 0) -> None:
        """A segment to a non-local destination that missed the established
        hash (``raw``: the TCP segment's bytes, header included)."""
        flags = skb.flags
        if flags & (TCPHDR_SYN | TCPHDR_ACK | TCPHDR_RST) != TCPHDR_SYN or self.closed:
            # as a listener: an ACK may bring back a cookie, else RST; RST ignored
            self.proto._rcv_listen(self.listener_for(iph.dst), skb, iph, now)
            return
        key = (iph.dst, skb.th.dport, iph.src, skb.th.sport)
        req = self.requests.get(key)
        if req is not None:
            if req.state == ACCEPTED:
                # accepted, but no request sock holds the tuple (the SYN was
                # answered with a cookie, or dropped for a full accept queue):
                # this retransmission meets the listener as a new SYN would
                self.proto.tcp_v4_conn_request(self.listener_for(iph.dst), skb, iph, now,
                                               req.isn)
            return                      # pending: its request waits already
        if self.pending >= self.max_pending:
            self._count("TcpFwdPendingDrops")
            return
        if len(self.children) >= self.max_connections:
            self._prune()
            if len(self.children) >= self.max_connections:
                self._count("TcpFwdConnLimitDrops")
                return
        req = TcpFwdRequest(self, iph, skb.th, bytes(raw), isn, now)
        self.requests[key] = req
        self.pending += 1
        self._count("TcpFwdRequests")
        self.ready.append(req)
        self.host.schedule_wakeup(self)

    def _prune(self) -> None:
        """Forget children that have closed (the set is pruned only at the limit)."""
        self.children = {sk for sk in self.children if sk.state != TCP_CLOSE}

    # --- the application's decisions ------------------------------------------------
    def decide(self, req: TcpFwdRequest, verdict: int, code: int = 0) -> None:
        if req.state != PENDING:
            raise sock_error(errno.EINVAL, "request already decided")
        if self.requests.get(req.key) is not req:
            raise sock_error(errno.EINVAL, "request no longer pending")
        self.pending -= 1
        now = self.host.now
        if verdict == ACCEPTED:
            req.state = ACCEPTED
            self._count("TcpFwdAccepted")
            req.timer.arm(now + HANDSHAKE_TIMEOUT)
            # the SYN now meets the implicit listener: SYN queue, cookies, options
            skb = req._skb()
            self.proto.tcp_v4_conn_request(self.listener_for(req.dst), skb, req.iph, now,
                                           req.isn)
            return
        req.timer.cancel()
        del self.requests[req.key]
        if verdict == REFUSED:
            req.state = REFUSED
            self._count("TcpFwdRefused")
            self.proto.tcp_v4_send_reset(req.dst, req.src, req._skb())
        elif verdict == UNREACHABLE:
            req.state = UNREACHABLE
            self._count("TcpFwdUnreachable")
            unreach_from_destination(self.host, req.iph, IPPROTO_TCP, req.syn, code)
        else:
            req.state = DROPPED
            self._count("TcpFwdDropped")

    def expire(self, req: TcpFwdRequest, now: float) -> None:
        """The request's timer: undecided for ``pending_timeout``, or accepted
        and no connection within HANDSHAKE_TIMEOUT."""
        if self.requests.get(req.key) is not req:
            return
        del self.requests[req.key]
        if req.state == PENDING:
            self.pending -= 1
            self._count("TcpFwdTimeouts")
            req.state = TIMED_OUT
        elif req.state == ACCEPTED:
            req.state = FAILED
            self.ready.append(req)
            self.host.schedule_wakeup(self)

    # --- completed handshakes ---------------------------------------------------------
    def _listener_wakeup(self) -> None:
        """The implicit listener's accept queue moved (the driver calls this
        after the batch, like any sock's wakeup): wake the glue."""
        if self.wakeup is not None:
            self.wakeup()

    def _pair_children(self) -> None:
        """Pair each child on the implicit listener's accept queue with its
        request; a child nobody asked for (its request expired) is reset."""
        for listener in (self.listener, self.listener6):
            self._pair_queue(listener.accept_queue)

    def _pair_queue(self, queue: deque[TcpSock]) -> None:
        while queue:
            child = queue.popleft()
            child.parent = None
            key = (child.laddr, child.lport, child.raddr, child.rport)
            req = self.requests.get(key)
            if req is None or req.state != ACCEPTED or self.closed:
                child.abort()
                continue
            del self.requests[key]
            req.timer.cancel()
            req.state = CONNECTED
            req.child = child
            self.children.add(child)
            self.ready.append(req)

    def take_ready(self) -> list[TcpFwdRequest]:
        """New requests (PENDING), connections (CONNECTED, ``child`` set) and
        accepted requests that failed (FAILED), oldest first."""
        self._pair_children()
        out = list(self.ready)
        self.ready.clear()
        return out

    def close(self) -> None:
        """Stop taking SYNs (the interface's hook is removed by the caller):
        pending requests are dropped, accepted ones fail; live connections stay."""
        self.closed = True
        for req in list(self.requests.values()):
            req.timer.cancel()
            if req.state == PENDING:
                self.pending -= 1
                req.state = DROPPED
            else:
                req.state = FAILED
                self.ready.append(req)
        self.requests.clear()
        for listener in (self.listener, self.listener6):
            for req in list(listener.syn_queue):
                self.proto.reqsk_drop(req)
        if self.ready:
            self.host.schedule_wakeup(self)
