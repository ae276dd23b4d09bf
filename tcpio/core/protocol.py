"""The seam between the host (IP) and its transport protocols, as typing Protocols.

Linux splits the same way: ``struct net_protocol`` is what IP asks of a
transport (``handler``, ``err_handler``, ``early_demux``), and a transport
reaches the rest of the stack only through the functions IP exports
(``ip_queue_xmit``, ``ip_route_output``, ``icmp_send``...).  Here:

* ``NetHost``: everything TCP and UDP may ask of the host.  ``Host`` provides
  it, and so does the TCP tests' ``FakeHost`` (tests/tcp/helpers.py), so the
  tests run the production send path.  Nothing under ``core/tcp`` imports
  ``core/host.py``; they are typed against this.
* ``InetProtocol``: what the host asks of a protocol it delivers to
  (``ip_local_deliver`` -> ``rcv``, an ICMP error quoting one of its
  datagrams -> ``err``).
* ``EarlyDemux``: what a protocol hands the host, when it registers, for the
  receive fast path (Linux's ``early_demux``): an entry for segments whose
  checksum the rx classifier already verified, and the established hash the
  classifier may search itself.

The send calls answer as Linux's do: ``xmit``, ``ip_output`` and
``ip6_output`` return the device queue's status, ``NET_XMIT_SUCCESS``,
``NET_XMIT_DROP`` or ``NET_XMIT_CN`` (tcpio.core.qdisc; dev_queue_xmit's
answer carried up through neigh_output and ip_local_out to ip_queue_xmit),
and the sender acts on that value (udp_send_skb's ENOBUFS, TCP's
tcp_enter_cwr), never on a host counter; failures before the device (no
route, EMSGSIZE) are raised as OSError.

These are structural types only: no class inherits from them and they cost
nothing at run time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from tcpio.core.ip_output import IpIdents
    from tcpio.core.mib import Mib
    from tcpio.core.settings import Settings
    from tcpio.core.timer import TimerWheel

# Where TCP datagrams to one destination leave as whole frames now (see
# NetHost.ip_tcp_path): (ifindex, dst_mac, src_mac, src); MACs None on a bare
# IP link.
TcpXmitPath = tuple[int, "bytes | None", "bytes | None", int]


class RouteInfo(Protocol):
    """What a transport reads of a route (``route.Route`` has it)."""

    @property
    def ifindex(self) -> int: ...
    @property
    def gateway(self) -> int | None: ...
    @property
    def src(self) -> int: ...
    @property
    def mtu(self) -> int: ...
    @property
    def mtu_locked(self) -> bool: ...


class NetHost(Protocol):
    """What a transport protocol may ask of the host it is registered with."""

    # The host's clock (set by receive/poll; transports never read a real clock).
    now: float
    mib: Mib
    settings: Settings
    timers: TimerWheel
    # Key of the keyed hashes (ISNs, ephemeral port offsets, IP IDs).
    secret: bytes
    rng: random.Random
    # True while a frame that arrived as a link-layer broadcast is processed
    # (RFC 1122: no answers, and TCP drops it: not PACKET_HOST).
    rx_link_bcast: bool
    # skb_shinfo's gso_segs/gso_size of the frame being received: a
    # super-frame (GRO's aggregate) stands for gso_segs segments of gso_size
    # (1 and 0 for any other frame).
    rx_gso_segs: int
    rx_gso_size: int
    # The forwarder of the protocol being delivered to while ip_rcv delivers a
    # datagram to a non-local destination on its interface (host.set_tproxy);
    # None otherwise (docs/internals.md "Transparent forwarding").
    rx_tproxy: Any
    # The IP ID counters (ip_idents) for datagrams no connected socket sends
    # without DF, and get_random_u16 for a connected socket's first ID.
    ip_ids: IpIdents

    def route_lookup(self, dst: int) -> RouteInfo:
        """ip_route_output: the route to ``dst``; raises OSError(ENETUNREACH)."""
        ...

    def is_local_address(self, ip: int) -> bool: ...

    def is_broadcast(self, ip: int) -> bool: ...

    def ip_output(self, proto: int, src: int | None, dst: int,
                  payload: bytes | bytearray | memoryview, *, ttl: int | None = None,
                  tos: int = 0, df: bool = False, ident: int = -1) -> int:
        """ip_queue_xmit / ip_build_and_send_pkt: route, fragment and send;
        the NET_XMIT_* status of the datagram's frame (qdisc.py).
        ``ident``: a connected socket's IP ID (its inet_id), -1 none
        (ip_output.ip_select_ident decides)."""
        ...

    def ip_tcp_path(self, dst: int, length: int) -> TcpXmitPath | None:
        """Where TCP datagrams of up to ``length`` bytes to ``dst`` can leave as
        one whole frame each, built by the transport (a cached route and a
        resolved neighbour, the kernel's sk_dst_cache + neigh_hh_output);
        None: they need ``ip_output``'s general path."""
        ...

    def ip_tcp_dst(self, dst: int) -> Any:
        """The route TCP's sockets cache for ``dst`` (sk_dst_cache: a
        tx.TcpDst, valid while its generation is the host's; tcp_fast's
        sk_dst_check keeps it), or None: nothing to cache, ask
        ``route_lookup`` and ``ip_tcp_path`` per call."""
        ...

    def tx_queue(self) -> list[tuple[int, bytes | bytearray]]:
        """The host's transmit queue, (ifindex, frame) in order: whole frames on
        an ``ip_tcp_path`` are appended here (the compiled send loop appends
        many in one call, so it gets the list, not a per-frame method)."""
        ...

    def xmit(self, ifindex: int, frame: bytes | bytearray) -> int:
        """dev_queue_xmit: one whole frame out of ``ifindex``; NET_XMIT_SUCCESS,
        or NET_XMIT_DROP when its queue is stopped and full and the frame
        was dropped (qdisc.py)."""
        ...

    def netif_xmit_stopped(self, ifindex: int) -> bool:
        """netif_xmit_stopped: the driver of ``ifindex`` stopped its queue, so
        a frame sent now waits in (or is refused by) the qdisc (qdisc.py)."""
        ...

    def gso_caps(self, ifindex: int, v6: bool = False) -> tuple[int, bool]:
        """What the device of ``ifindex`` takes from TCP (sk_setup_caps: the
        route's dev->gso_max_size and NETIF_F_TSO/TSO6/HW_CSUM; ``v6``: for
        IPv6 super-frames, TSO6): super-frames of
        up to the first value's bytes of IP datagram, which it cuts into the
        segments (0: it does not), and whether the checksum of a data frame
        (a super-frame or one segment) may be left partial.  Frames on the
        ``ip_tcp_path`` only."""
        ...

    def defer_loopback(self) -> bool:
        """Hold deliveries to our own addresses (the socket backlog); see Host."""
        ...

    def defer_to_batch_end(self, fn: Callable[[Any, float], None], owner: Any) -> bool:
        """Inside a receive batch, call ``fn(owner, now)`` once when the batch's
        frames are all processed (once per owner however often asked) and
        return True; outside one, do nothing and return False (the caller acts
        now).  TCP's ACK coalescing uses it, as GRO makes Linux decide one ACK
        per aggregate instead of per segment."""
        ...

    def release_loopback(self, held: bool) -> None: ...

    def schedule_wakeup(self, sk: Any) -> None:
        """sk_data_ready & co.: the driver wakes ``sk``'s waiters after this call."""
        ...

    def icmp_send(self, iph: Any, payload: bytes | bytearray | memoryview, type: int,
                  code: int, info: int = 0) -> None:
        """icmp_send: an ICMP error about the datagram (iph, payload) to its source."""
        ...


class NetHost6(NetHost, Protocol):
    """What a transport asks of the host for IPv6 beside IPv4 (issue 17):
    ``Host`` has it; the TCP tests' ``FakeHost`` (IPv4 only) need not."""

    def route6_lookup(self, dst: int, ifindex: int | None = None) -> RouteInfo:
        """ip6_route_output: the route to ``dst`` (``ifindex``: a link-local
        destination's interface); raises OSError(ENETUNREACH)."""
        ...

    def is_local_address6(self, ip: int) -> bool: ...

    def ip6_tcp_path(self, dst: int, length: int) -> TcpXmitPath | None:
        """``ip_tcp_path`` for IPv6: where TCP datagrams of up to ``length``
        bytes to ``dst`` (128-bit) can leave as one whole frame each."""
        ...

    def ip6_tcp_dst(self, dst: int) -> Any:
        """``ip_tcp_dst`` for IPv6 (``dst`` 128-bit): the route TCP's IPv6
        sockets cache, or None."""
        ...

    def ip6_output(self, proto: int, src: int | None, dst: int,
                   payload: bytes | bytearray | memoryview, *, hlim: int | None = None,
                   tclass: int = 0, dontfrag: bool = False,
                   ifindex: int | None = None) -> int:
        """ip6_xmit: route, fragment by the source, resolve by ND and send;
        the NET_XMIT_* status, as ``ip_output``."""
        ...

    def icmp6_send(self, packet: bytes | bytearray | memoryview, type: int, code: int,
                   info: int = 0) -> None:
        """icmp6_send: an ICMPv6 error about the received datagram ``packet``."""
        ...


class InetProtocol(Protocol):
    """What the host asks of a registered protocol (Linux's struct net_protocol)."""

    def rcv(self, iph: Any, payload: memoryview, now: float) -> Any:
        """The handler: one datagram for us, IP header checked (the host does
        not read what it returns)."""
        ...

    def err(self, kind: int, code: int, code_errno: int, info: int, iph: Any,
            payload: bytes) -> None:
        """err_handler: an ICMP error quoting one of our datagrams (``iph`` and
        the start of its payload); ``code_errno`` is icmp_err_convert's."""
        ...


class EarlyDemux(NamedTuple):
    """The receive fast path a protocol registers (Linux's ``early_demux``).

    ``rcv_verified``: ``rcv`` for a datagram whose checksum the host's rx
    classifier has already verified (CHECKSUM_UNNECESSARY).  ``ehash``: the
    protocol's established hash, which the classifier may search itself to
    hand in-order data straight to the sock (None: it does not).  ``syn``:
    TCP's stateless SYN path (``syn_fast.SynPath``), which the classifier
    hands SYNs that nothing in ``ehash`` claims; the host gives it each
    device batch's output list (``batch_begin``) and its MIB at the batch's
    end (``batch_end``).  ``ehash6``: the protocol's IPv6 established hash
    (tagged addresses, core.tcp.inet6_addr), which the classifier searches
    for an IPv6 segment's in-order data the same way (None: it does not)."""

    rcv_verified: Callable[[Any, memoryview, float], Any]
    ehash: Any = None
    syn: Any = None
    ehash6: Any = None
