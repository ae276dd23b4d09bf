"""The transparent UDP forwarder: datagrams to any address on one interface.

UDP has no connection, so the forwarder makes one up the way a NAT or
conntrack does (and gVisor's ``udp.Forwarder``): a **session** per 4-tuple
``(client, client port, original destination, its port)``.  The first
datagram of a new 4-tuple makes the session and hands it to the application
(through the forwarder's wakeup; no application code runs inside packet
processing); later ones join its receive queue.  A session sends back with
the original destination as its source, so the client sees the answer come
from where it sent.  A session ends ``idle_timeout`` seconds after its last
datagram in either direction (the host's clock: virtual in tests), or when
closed.

``udp_rcv`` reaches ``UdpForwarder.rcv`` only for a datagram that ``ip_rcv``
took for a non-local destination on the forwarder's interface
(``host.rx_tproxy``), after UDP's own length and checksum checks
(docs/internals.md "Transparent forwarding").
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from tcpio import _fast
from tcpio.core.errors import sock_error
from tcpio.core.fwd_icmp import unreach_from_destination
from tcpio.core.in_h import IPPROTO_UDP
from tcpio.core.tcp.inet6_addr import V6MASK, addr_str
from tcpio.core.udp import UDP_MAX_PAYLOAD, UDP_SKB_OVERHEAD
from tcpio.core.udp_ipv6 import build_udp6

if TYPE_CHECKING:
    from tcpio.core.protocol import NetHost, NetHost6

wire = _fast.load("wire")


class UdpFwdSession:
    """One 4-tuple's flow.  ``src, sport``: the client; ``dst, dport``: the
    original destination (our source when we answer)."""

    def __init__(self, fwd: UdpForwarder, src: int, sport: int, dst: int, dport: int,
                 now: float) -> None:
        self.fwd = fwd
        self.src, self.sport, self.dst, self.dport = src, sport, dst, dport
        self.rcv_queue: deque[bytes] = deque()
        self.rcv_bytes = 0
        self.rcvbuf = fwd.host.settings.udp_rmem_default
        self.drops = 0
        self.closed = False
        self.last = now
        self.wakeup: Callable[[], None] | None = None
        # the last datagram from the client (IP header record, UDP payload),
        # what an ICMP error from the original destination quotes
        self.last_in: tuple[Any, bytes] | None = None
        self.timer = fwd.host.timers.timer(_idle, self)
        self.timer.arm(now + fwd.idle_timeout)

    @property
    def key(self) -> tuple[int, int, int, int]:
        return self.src, self.sport, self.dst, self.dport

    def recv(self) -> bytes | None:
        """The oldest datagram from the client, or None."""
        if not self.rcv_queue:
            return None
        data = self.rcv_queue.popleft()
        self.rcv_bytes -= len(data) + UDP_SKB_OVERHEAD
        return data

    def send(self, data: bytes | bytearray | memoryview) -> None:
        """A datagram to the client, from the original destination."""
        if self.closed:
            raise sock_error(errno.EBADF, "session closed")
        if len(data) > UDP_MAX_PAYLOAD:
            raise sock_error(errno.EMSGSIZE)
        fwd = self.fwd
        host = cast("NetHost6", fwd.host)
        try:
            if self.dst > V6MASK:
                src, dst = self.dst & V6MASK, self.src & V6MASK
                host.ip6_output(IPPROTO_UDP, src, dst,
                                build_udp6(src, dst, self.dport, self.sport, data))
            else:
                host.ip_output(IPPROTO_UDP, self.dst, self.src,
                               wire.build_udp(self.dst, self.src, self.dport, self.sport, data))
        except OSError:
            host.mib["Udp6OutErrors" if self.dst > V6MASK else "UdpOutErrors"] += 1
            raise
        fwd._count("UdpFwdOutDatagrams")
        self._touch(host.now)

    def unreachable(self, code: int = 3) -> bool:
        """ICMP destination unreachable (``code`` 3: port) to the client, from
        the original destination, quoting its last datagram: what the client
        would have heard from the destination itself (a relay's upstream said
        "refused").  False when there is nothing to quote."""
        if self.closed or self.last_in is None:
            return False
        iph, data = self.last_in
        fwd = self.fwd
        if self.dst > V6MASK:
            udp = build_udp6(self.src & V6MASK, self.dst & V6MASK, self.sport, self.dport, data)
        else:
            udp = wire.build_udp(self.src, self.dst, self.sport, self.dport, data)
        return unreach_from_destination(fwd.host, iph, IPPROTO_UDP, bytes(udp), code)

    def _touch(self, now: float) -> None:
        # Arming later only records the deadline (timer.py): cheap per datagram.
        self.last = now
        self.timer.arm(now + self.fwd.idle_timeout)

    def close(self) -> None:
        """End the session: its 4-tuple makes a new one next time."""
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        self.rcv_queue.clear()
        self.rcv_bytes = 0
        fwd = self.fwd
        if fwd.sessions.get(self.key) is self:
            del fwd.sessions[self.key]
        fwd.host.schedule_wakeup(self)

    def __repr__(self) -> str:
        return (f"<UdpFwdSession {addr_str(self.src)}:{self.sport} -> "
                f"{addr_str(self.dst)}:{self.dport}{' closed' if self.closed else ''}>")


def _idle(session: UdpFwdSession, now: float) -> None:
    if not session.closed:
        session.fwd._count("UdpFwdIdleTimeouts")
        session.close()


class UdpForwarder:
    """Sessions by 4-tuple, the new ones in ``ready`` until the glue takes them."""

    def __init__(self, host: NetHost, *, idle_timeout: float = 60.0,
                 max_sessions: int = 65536) -> None:
        if idle_timeout <= 0 or max_sessions < 1:
            raise ValueError("idle_timeout and max_sessions must be positive")
        self.host = host
        self.idle_timeout = idle_timeout
        self.max_sessions = max_sessions
        self.sessions: dict[tuple[int, int, int, int], UdpFwdSession] = {}
        self.ready: deque[UdpFwdSession] = deque()
        self.stats: dict[str, int] = dict.fromkeys(
            ("UdpFwdSessions", "UdpFwdSessionDrops", "UdpFwdIdleTimeouts",
             "UdpFwdInDatagrams", "UdpFwdOutDatagrams", "UdpFwdRcvbufErrors"), 0)
        self.wakeup: Callable[[], None] | None = None
        self.closed = False

    def _count(self, name: str) -> None:
        self.stats[name] += 1
        self.host.mib[name] += 1

    def rcv(self, iph: Any, sport: int, dport: int, data: bytes, now: float) -> bool:
        """A datagram to a non-local destination (UDP's checks passed)."""
        host = self.host
        if host.rx_link_bcast or self.closed:
            return False            # not PACKET_HOST: no session from a link broadcast
        key = (iph.src, sport, iph.dst, dport)
        session = self.sessions.get(key)
        if session is None:
            if len(self.sessions) >= self.max_sessions:
                self._count("UdpFwdSessionDrops")
                return False
            session = UdpFwdSession(self, iph.src, sport, iph.dst, dport, now)
            self.sessions[key] = session
            self._count("UdpFwdSessions")
            self.ready.append(session)
            host.schedule_wakeup(self)
        n = len(data) + UDP_SKB_OVERHEAD
        if session.rcv_bytes + n > session.rcvbuf and session.rcv_queue:
            session.drops += 1
            self._count("UdpFwdRcvbufErrors")
            return False
        session.rcv_queue.append(data)
        session.last_in = (iph, data)
        session.rcv_bytes += n
        session._touch(now)
        self._count("UdpFwdInDatagrams")
        host.schedule_wakeup(session)
        return True

    def take_ready(self) -> list[UdpFwdSession]:
        """Sessions made since the last call, oldest first."""
        out = list(self.ready)
        self.ready.clear()
        return out

    def close(self) -> None:
        """Stop making sessions; the live ones end too."""
        self.closed = True
        for session in list(self.sessions.values()):
            session.close()
        self.ready.clear()
