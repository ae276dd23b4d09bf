"""The sans-IO host: interfaces, addresses, routes, neighbours and protocol tables.

Frames go in with ``receive(ifindex, frame, now)``, timers run with
``poll(now)``, and frames to transmit come out of ``take_output()``.  The
host never reads a clock: ``now`` is whatever the caller says (the asyncio
driver's loop.time(), or a virtual clock in tests).

Layering (each file mirrors a kernel file):
    ether.py      ether_input / ether_xmit (eth_type_trans, dev_hard_header)
    arp.py        neighbour table, ARP in/out
    ip_input.py   ip_rcv, ip_local_deliver
    ip_fragment.py reassembly
    ip_output.py  ip_output, ip_fragment, IP ID
    icmp.py       ICMP in, icmp_send, echo
    udp.py        UDP socks
    tcp/          TCP
    af_inet.py    inet_init: builds ICMP, UDP and TCP and registers them here
    IPv6 beside it (docs/internals.md "IPv6"): ip6_input.py, ip6_output.py,
    reassembly.py, icmpv6.py, ndisc.py, addrconf.py; af_inet6.py registers
    ICMPv6 in the inet6 table (``register_protocol6``)
    protocol.py   the seam: NetHost (what they may ask of us), InetProtocol
                  (what we ask of them), EarlyDemux (the receive fast path)

Receive fast path: ``receive`` first asks the compiled classifier
(tcpio._fast.rx) whether the frame is a clean unicast UDP datagram or TCP
segment for us; if so it is delivered straight to the protocol, after one call
into compiled code.  Anything else, including every frame that will be dropped,
takes the layered path above, which does all the checks and counts the drops.

Loopback (drivers/net/loopback.c, net/core/dev.c): every host has ``lo``
(ifindex 0, 127.0.0.1/8, MTU 65536).  A datagram to 127/8 or to one of our
own addresses (the kernel's RTN_LOCAL routes, table "local") never reaches a
device: ip_output hands it to ``loopback_xmit``, which queues it on the
backlog (netif_rx), and ``process_backlog`` later feeds the queue, a batch
at a time, to the same receive code as a device's frames (``receive_batch``
on ``lo``).  When is "later" is the driver's choice: by default the host
drains the backlog itself at the end of the current call (frame, timer or
user call); a driver that sets ``backlog_deferred`` (the asyncio Stack) runs
``process_backlog`` from its event loop instead, so a user call returns
before anything it sent to itself is processed (see docs/internals.md
"Loopback").
"""

from __future__ import annotations

import errno
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio._fast.gso import GSO_MAX_SIZE, GsoFrame, csum_completed, rx_gso
from tcpio.core import (
    addrconf,
    af_inet,
    af_inet6,
    ether,
    ip6_input,
    ip6_output,
    ip_input,
    ip_forward,
    ip_output,
)
from tcpio.core.addr import INADDR_BROADCAST, prefix_mask
from tcpio.core.arp import Arp
from tcpio.core.errors import sock_error
from tcpio.core.in_h import IPPROTO_TCP
from tcpio.core.ip6_output import ip6_tcp_dst as _ip6_tcp_dst
from tcpio.core.ip6_output import ip6_tcp_path as _ip6_tcp_path
from tcpio.core.ip_fragment import Reassembler
from tcpio.core.ip_output import ip_tcp_dst as _ip_tcp_dst
from tcpio.core.ip_output import ip_tcp_path as _ip_tcp_path
from tcpio.core.ipv6 import IPV6_MIN_MTU, addr_scope, is_linklocal6, is_multicast6
from tcpio.core.mib import Mib
from tcpio.core.ndisc import Ndisc
from tcpio.core.protocol import EarlyDemux, InetProtocol
from tcpio.core.qdisc import NET_XMIT_DROP, NET_XMIT_SUCCESS, NetifQueue, Qdisc
from tcpio.core.raw import RawTable
from tcpio.core.reassembly import ip6_reassembler
from tcpio.core.route import Fib, Route, select_source
from tcpio.core.settings import Settings
from tcpio.core.timer import TimerWheel

if TYPE_CHECKING:
    from tcpio.core.icmp import IcmpProto
    from tcpio.core.icmpv6 import Icmpv6Proto
    from tcpio.core.tcp.tcp_ipv4 import TcpProto
    from tcpio.core.udp import UdpProto

log = logging.getLogger("tcpio.host")

# One compiled call per frame classifies the common case (see tcpio/_fast/rx_py.py).
_rx = _fast.load("rx")
rx_classify = _rx.rx_classify
BatchEnd = _rx.BatchEnd
rx_taken = _rx.rx_taken
rx_batch = _rx.rx_batch
wire = _fast.load("wire")
LOOPBACK = 0x7F000001           # INADDR_LOOPBACK
LOOPBACK_IFINDEX = 0
LOOPBACK_MTU = 65536            # drivers/net/loopback.c: 64 KiB, as Linux's lo
# ipv4_mtu: a route's MTU is the device's, never above IP_MAX_MTU (lo's 65536
# would allow a 65536-byte datagram, which the 16-bit total length cannot say).
IP_MAX_MTU = 0xFFFF
# The drain budget when the host drains its own backlog (no driver): a
# protocol answering itself for ever is cut off here, the rest counted as
# LoopbackDrops.
LOOPBACK_BUDGET = 10000
# process_backlog's budget per call from a driver (net.core.netdev_budget is
# 300 packets per softirq round; a TCP flight over lo is a few 64 KiB
# segments, so a round here is bounded in packets and gives the loop back).
BACKLOG_BUDGET = 300
# net.core.netdev_max_backlog: the backlog queue's bound; netif_rx drops
# beyond it (LoopbackDrops).
NETDEV_MAX_BACKLOG = 1000
# Host._tcp_handler before a batch has looked at the table (None is a
# handler too: no TCP registered)
_UNKNOWN: Any = object()


class Interface:
    """One link: ``link`` is "ether" (Ethernet + ARP) or "ip" (TUN: bare datagrams)."""

    __slots__ = ("addrs", "gso_max_size", "gso_max_size6", "ifindex", "ip6", "link", "mac", "mtu", "name",
                 "tproxy", "tx_csum_partial", "up")

    def __init__(self, ifindex: int, name: str, link: str, mac: bytes | None,
                 mtu: int) -> None:
        # What the device takes (Linux's dev->gso_max_size, NETIF_F_TSO and
        # NETIF_F_HW_CSUM): TCP super-frames of up to this many bytes of IP
        # datagram (0: none), and TCP data frames' checksum left partial
        # (with or without super-frames);
        # gso_max_size6: the same for IPv6 (NETIF_F_TSO6, issue 12).  Above
        # 64 KiB (BIG TCP: Linux's gso_ipv4_max_size and gso_max_size raised
        # on lo or veth) a super-frame's IP length field says 0.
        self.gso_max_size = 0
        self.gso_max_size6 = 0
        self.tx_csum_partial = False
        self.ifindex = ifindex
        self.name = name
        self.link = link
        self.mac = mac
        self.mtu = mtu
        self.addrs: list[tuple[int, int]] = []   # (ip, prefixlen), primary first
        self.ip6 = addrconf.Inet6Dev()           # IPv6 addresses and groups
        self.up = True
        # protocol -> its transparent forwarder on this link (Host.set_tproxy)
        self.tproxy: dict[int, Any] | None = None

    def broadcasts(self) -> list[int]:
        """Directed broadcast address of each subnet on this link."""
        return [ip | (~prefix_mask(plen) & 0xFFFFFFFF) for ip, plen in self.addrs if plen < 31]

    def __repr__(self) -> str:
        return f"<Interface {self.ifindex}:{self.name} {self.link} mtu {self.mtu}>"


def _is_ipv6(frame: bytes | bytearray | memoryview, mac: bytes | None) -> bool:
    """Does ``frame`` (Ethernet when ``mac`` is given, else bare IP) carry IPv6?"""
    if mac is not None:
        return len(frame) > 13 and frame[12] == 0x86 and frame[13] == 0xDD
    return len(frame) > 0 and frame[0] >> 4 == 6


class Host:
    """A sans-IO IPv4 host (see docs/internals.md "tcpio.core.host.Host").

    It is the ``protocol.NetHost`` its transports are written against."""

    # The protocols af_inet.inet_init registered.
    icmp: IcmpProto
    udp: UdpProto
    tcp: TcpProto
    icmp6: Icmpv6Proto

    def __init__(self, name: str = "host", seed: int | None = None,
                 settings: Settings | None = None) -> None:
        self.name = name
        self.settings = settings if settings is not None else Settings()
        self.rng = random.Random(seed)
        # Key for the keyed hashes (IP ID buckets, TCP ISN/port offsets).
        self.secret = self.rng.randbytes(16) if seed is not None else os.urandom(16)
        self.now = 0.0
        self.mib = Mib()
        self.timers = TimerWheel()
        # next_deadline is the wheel's own (the wheel is never replaced): the
        # driver asks after every batch and every user call, twice per echo
        # round trip, with no wrapper frame between.  (The method below is
        # what a test that set its own and deleted it again gets back.)
        self.next_deadline = self.timers.next_deadline  # type: ignore[method-assign]
        # ... and the bound the driver arms its loop timer for (early, never
        # late: TimerWheel.deadline_bound), the wheel's own too
        self.deadline_bound = self.timers.deadline_bound  # type: ignore[method-assign]
        self.interfaces: dict[int, Interface] = {}
        self._links_down: set[int] = set()         # set_link(ifindex, False)
        self.fib = Fib()
        self.arp = Arp(self)
        self.frags = Reassembler(self)
        self.ip_ids = ip_output.IpIdents(self.rng)
        self.protocols: dict[int, Any] = {}
        # proto -> (the handler that registered it, its EarlyDemux); only
        # used while that handler is still protocols[proto].
        self._early_demux: dict[int, tuple[Any, EarlyDemux]] = {}
        # Path MTU learned from ICMP "fragmentation needed": dst -> (mtu, expires).
        # learned path MTUs: dst -> (mtu, expiry, locked) (update_pmtu)
        self.pmtu: dict[int, tuple[int, float, bool]] = {}
        self._rt_cache: dict[int, Route] = {}
        # TCP's whole-frame paths per destination (ip_output.ip_tcp_dst:
        # tx.TcpDst, what sockets cache), valid while their generation is
        # dst_gen's: every change of addresses, routes, MTUs, learned path
        # MTUs, links and connected neighbours moves it (Linux's rt_genid
        # and hh updates)
        self._tcp_paths: dict[int, Any] = {}
        self.dst_gen = ip_output.DstGen()
        self._rt6_cache: dict[int | tuple[int, int], Route] = {}
        # Set True in tests so that a bug surfaces as an exception instead of a counter.
        self.debug = False
        self._local: dict[int, int] = {}           # address -> ifindex
        # The loopback device: 127.0.0.0/8 is always local, as on Linux.  It
        # is not in ``interfaces`` (no driver device behind it).
        self.lo = Interface(LOOPBACK_IFINDEX, "lo", "ip", None, LOOPBACK_MTU)
        self.lo.addrs.append((LOOPBACK, 8))
        # lo's /proc/net/dev counters (what loopback_xmit / process_backlog moved).
        self.lo_stats = {"rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0,
                         "rx_dropped": 0}
        # True while processing a frame that arrived as a link-layer broadcast or
        # multicast: RFC 1122 3.2.2 forbids ICMP errors about those.
        self.rx_link_bcast = False
        # While a super-frame (gso.GsoFrame) takes the layered path: the
        # segments it stands for and their size (NetHost.rx_gso_segs).
        self.rx_gso_segs = 1
        self.rx_gso_size = 0
        # The forwarder a non-local datagram is being delivered to (set_tproxy;
        # set by ip_rcv around the delivery only).
        self.rx_tproxy: Any = None
        self._bcast: set[int] = {INADDR_BROADCAST}  # addresses that mean "everyone here"
        # (the driver looks at _output and _wakeups being empty before it
        # calls take_output/take_wakeups: Stack.kick)
        self._output: list[tuple[int, bytes | bytearray]] = []
        # Each interface's transmit queue (qdisc.py), those whose driver has
        # stopped them, and the frames the queues dropped: a statistic only
        # (a sender hears its own frame's NET_XMIT_* from its output call).
        self.qdiscs: dict[int, Qdisc] = {}
        self._tx_stopped: set[int] = set()
        # per stopped interface: how many frames of the host's output were
        # there when it stopped (admitted while it ran: _hold_stopped)
        self._stop_marks: dict[int, int] = {}
        self.qdisc_drops = 0
        self._wakeups: dict[Any, None] = {}
        # schedule_wakeup(sk) is the dict's own setdefault(sk): marked once,
        # in the order first marked, as ``_wakeups[sk] = None`` (take_wakeups
        # clears this dict, never replaces it), with no Python frame: ~800
        # calls per MiB at 1000 flows (issue 11), from compiled TCP mostly
        self.schedule_wakeup = self._wakeups.setdefault  # type: ignore[method-assign, assignment]
        # The backlog (softnet_data.input_pkt_queue): datagrams to ourselves,
        # waiting for process_backlog.
        self._loopback: deque[bytes | bytearray] = deque()
        self._in_loopback = False
        # Set by a driver that calls process_backlog itself from its loop
        # (the asyncio Stack); False: the host drains after each call.
        self.backlog_deferred = False
        self._busy = False
        # Inside receive_batch: what runs once the batch's frames are all
        # processed (defer_to_batch_end), by owner: rx.BatchEnd, whose
        # ``pending`` is None outside a batch.  defer_to_batch_end is its
        # ``defer`` (compiled: TCP's ACK coalescing asks with no Python frame).
        self._rx_end = BatchEnd()
        self.defer_to_batch_end = self._rx_end.defer  # type: ignore[method-assign]
        # A device's batch goes straight into the compiled receive loop
        # (rx.rx_receive: no Python frame of the host's for a batch the fast
        # path takes whole); this module's globals go with it, so the
        # classifier a test puts in place of rx_classify is the one used.
        self.receive_batch = partial(_rx.rx_receive, self,  # type: ignore[method-assign]
                                     globals())
        # TCP's send loop holds our own deliveries around every send: the
        # hold and its release compiled too (the methods are what a test
        # that deleted these gets back)
        self.defer_loopback = partial(  # type: ignore[method-assign]
            _rx.host_defer_loopback, self)
        self.release_loopback = partial(  # type: ignore[method-assign]
            _rx.host_release_loopback, self)
        # The TCP handler the fast path serves this batch, and its early demux
        # (None: none, every segment takes rcv).
        self._tcp_handler: Any = _UNKNOWN
        self._tcp_demux: EarlyDemux | None = None
        # (demux, verify, ehash, syn, ehash6) for that handler (_rx_tcp_setup)
        self._rx_tcp: tuple[EarlyDemux | None, bool, Any, Any, Any] = (None, False, None, None,
                                                                       None)
        # raw sockets (SOCK_RAW): copies of delivered datagrams by protocol
        self.raw = RawTable(self)
        # inet_init: the transports register themselves (af_inet.py).
        self.icmp, self.udp, self.tcp = af_inet.inet_init(self)
        # IPv6 (docs/internals.md "IPv6"): its own tables beside IPv4's.  Its
        # randomness (DAD delays) comes from its own generator, keyed by the
        # secret, so IPv4's draws from ``rng`` stay what they were.
        self.rng6 = random.Random(self.secret)
        self.fib6 = Fib(128)
        self.local6: dict[int, int] = {}           # preferred address -> ifindex
        self.protocols6: dict[int, Any] = {}
        self.pmtu6: dict[int, tuple[int, float]] = {}
        self.ndisc = Ndisc(self)
        self.frags6 = ip6_reassembler(self)
        self.ip6_ids = ip6_output.Ip6Idents(self.secret)
        # The interface of the IPv6 datagram being received (ICMPv6 errors
        # about it go back out there: a link-local source needs it).
        self.rx_iif6: int | None = None
        self.icmp6 = af_inet6.inet6_init(self)

    # ----- configuration ------------------------------------------------------------

    def add_interface(self, name: str, link: str = "ether", mac: bytes | None = None,
                      mtu: int = 1500, *, gso_max_size: int = 0,
                      tx_csum_partial: bool = False, gso_max_size6: int = 0) -> int:
        """A new link; ``gso_max_size``/``gso_max_size6``/``tx_csum_partial``:
        the device's TSO4/TSO6 and checksum offload (see Interface and
        NetHost.gso_caps)."""
        if link not in ("ether", "ip"):
            raise ValueError(f"link must be 'ether' or 'ip', not {link!r}")
        if mtu < 68:
            raise ValueError("mtu below the IPv4 minimum of 68")
        if link == "ether":
            if mac is None:
                # Locally administered unicast, from the host's RNG (deterministic per seed).
                mac = bytes([0x02, *self.rng.randbytes(5)])
            if len(mac) != 6 or mac[0] & 1:
                raise ValueError("mac must be 6 bytes, unicast")
        else:
            mac = None
        ifindex = max(self.interfaces, default=0) + 1
        iface = Interface(ifindex, name, link, bytes(mac) if mac else None, mtu)
        for size in (gso_max_size, gso_max_size6):
            # above 64 KiB: BIG TCP (the device takes super-frames whose IP
            # length field says 0), up to the kernel's GSO_MAX_SIZE
            if size and not mtu < size <= GSO_MAX_SIZE:
                raise ValueError(f"gso_max_size must be above the MTU and at most {GSO_MAX_SIZE}")
        iface.gso_max_size = gso_max_size
        iface.gso_max_size6 = gso_max_size6
        iface.tx_csum_partial = tx_csum_partial     # (with or without TSO: NETIF_F_HW_CSUM)
        self.interfaces[ifindex] = iface
        self.qdiscs[ifindex] = Qdisc(ifindex)
        if link == "ether":
            addrconf.addrconf_dev_config(self, iface)   # fe80::EUI-64, with DAD
        return ifindex

    # ----- transmit queues (qdisc.py) -------------------------------------------------

    def set_txqueuelen(self, ifname: str | int, length: int) -> None:
        """``ip link set dev IF txqueuelen N``: the interface's qdisc holds at
        most ``length`` frames while its driver is stopped (name or ifindex)."""
        if length < 0:
            raise ValueError("txqueuelen must not be negative")
        ifindex = ifname if isinstance(ifname, int) else next(
            (i.ifindex for i in self.interfaces.values() if i.name == ifname), None)
        if ifindex is None or ifindex not in self.qdiscs:
            raise sock_error(errno.ENODEV, f"no interface {ifname!r}")
        self.qdiscs[ifindex].limit = length

    def attach_netif(self, ifindex: int, device: Any = None,
                     kick: Callable[[], None] | None = None) -> NetifQueue:
        """The handle a driver stops and wakes the interface's queue with; a
        ``device`` with ``attach_netif`` gets it (``kick``: the driver's
        flush, run after a wake)."""
        netif = NetifQueue(self, self.qdiscs[ifindex], kick)
        attach = getattr(device, "attach_netif", None)
        if attach is not None:
            attach(netif)
        return netif

    def netif_stopped(self, qdisc: Qdisc, stopped: bool) -> None:
        if stopped:
            self._tx_stopped.add(qdisc.ifindex)
            self._stop_marks[qdisc.ifindex] = len(self._output)
        else:
            self._tx_stopped.discard(qdisc.ifindex)
            self._stop_marks.pop(qdisc.ifindex, None)

    def release_backlog(self, ifindex: int, frames: Iterable[bytes | bytearray]) -> None:
        self._output.extend([(ifindex, frame) for frame in frames])

    def netif_xmit_stopped(self, ifindex: int) -> bool:
        return ifindex in self._tx_stopped

    def set_mtu(self, ifindex: int, mtu: int) -> None:
        """``ip link set IF mtu N`` (ifindex 0 is ``lo``)."""
        if mtu < 68:
            raise ValueError("mtu below the IPv4 minimum of 68")
        iface = self.lo if ifindex == LOOPBACK_IFINDEX else self._iface(ifindex)
        iface.mtu = mtu
        self.invalidate_routes()

    def set_link(self, ifindex: int, up: bool) -> None:
        """``ip link set IF up|down`` (issue 18), as Linux does it:

        Down: nothing is received from it (InNoInterface); every route
        through it is deleted, connected and static (fib_disable_ip's
        fib_sync_down_dev + fib_flush; rt6_sync_down_dev), so sends that
        needed it fail with ENETUNREACH (what Linux's sockets get: the route
        lookup fails before any device is reached) and TCP keeps
        retransmitting (TCPOutNoRoute); its IPv4 addresses stay ours; its
        IPv6 addresses are removed unless ``Settings.keep_addr_on_down``
        (addrconf_ifdown); its neighbours are forgotten (neigh_ifdown).

        Up: the connected routes of its addresses come back (fib_add_ifaddr
        on NETDEV_UP, addrconf's prefix routes) and, on Ethernet, a new
        link-local address (addrconf_dev_config); static routes deleted at
        down stay deleted, as in Linux (whoever added them adds them again)."""
        iface = self._iface(ifindex)
        if iface.up == up:
            return
        iface.up = up
        if up:
            self._links_down.discard(ifindex)
            for ip, plen in iface.addrs:
                self._add_connected(ifindex, ip, plen)
            for ifa in iface.ip6.addrs:
                addrconf.addrconf_prefix_route(self, iface, ifa)
            if iface.link == "ether" and not any(is_linklocal6(a.ip) for a in iface.ip6.addrs):
                addrconf.addrconf_dev_config(self, iface)
        else:
            self._links_down.add(ifindex)
            self.qdiscs[ifindex].reset()        # dev_deactivate: the backlog goes
            self.fib.flush_dev(ifindex)
            self.fib6.flush_dev(ifindex)
            addrconf.addrconf_ifdown_ra(iface)
            if not self.settings.keep_addr_on_down:
                for ifa in list(iface.ip6.addrs):
                    addrconf.ipv6_del_addr(self, iface, ifa.ip)
            self.arp.neigh_ifdown(ifindex)
            self.ndisc.neigh_ifdown(ifindex)
        self.invalidate_routes()

    def _add_connected(self, ifindex: int, ip: int, prefixlen: int) -> None:
        """fib_add_ifaddr's prefix route, on an interface that is up: the
        first address in a subnet is primary and owns it (later ones are
        secondaries, as with `ip addr add` on Linux)."""
        if prefixlen < 32 and self.fib.get(ip, prefixlen) is None \
                and ifindex not in self._links_down:
            self.fib.add(ip, prefixlen, None, ifindex, prefsrc=ip)

    def _check_nh_dev(self, ifindex: int) -> None:
        """fib_check_nh / ip6_route_check_nh: no route through a down device."""
        if not self._iface(ifindex).up:
            raise sock_error(errno.ENETDOWN, "device for nexthop is not up")

    def add_address(self, ifindex: int, ip: int, prefixlen: int) -> None:
        """inet_insert_ifa: the address, its connected route, and a gratuitous ARP."""
        iface = self._iface(ifindex)
        if ip in self._local:
            raise sock_error(errno.EEXIST, "address already assigned")
        if not 0 <= prefixlen <= 32:
            raise ValueError("bad prefix length")
        iface.addrs.append((ip, prefixlen))
        self._local[ip] = ifindex
        self._rebuild_broadcasts()
        self._add_connected(ifindex, ip, prefixlen)     # once the link is up
        if iface.link == "ether":
            self.arp.gratuitous(iface, ip)

    def remove_address(self, ifindex: int, ip: int) -> None:
        iface = self._iface(ifindex)
        for entry in list(iface.addrs):
            if entry[0] == ip:
                iface.addrs.remove(entry)
                self._local.pop(ip, None)
                route = self.fib.get(ip, entry[1])
                if route is not None and route.prefsrc == ip:
                    self.fib.remove(ip, entry[1])
                    mask = prefix_mask(entry[1])
                    # Promote a secondary in the same subnet, if any.
                    for other, plen in iface.addrs:
                        if plen == entry[1] and other & mask == ip & mask:
                            self.fib.add(other, plen, None, ifindex, prefsrc=other)
                            break
                self._rebuild_broadcasts()
                return
        raise sock_error(errno.EADDRNOTAVAIL)

    def add_route(self, prefix: int, prefixlen: int, via: int | None,
                  ifindex: int | None = None) -> None:
        """``ip route add prefix/len [via GW] [dev IF]``."""
        if ifindex is None:
            if via is None:
                raise ValueError("a route needs a gateway or an interface")
            entry = self.fib.lookup(via)
            if entry is None or entry.gateway is not None:
                raise sock_error(errno.ENETUNREACH, "gateway not on a connected network")
            ifindex = entry.ifindex
        self._check_nh_dev(ifindex)
        self.fib.add(prefix, prefixlen, via, ifindex)
        self.invalidate_routes()

    def remove_route(self, prefix: int, prefixlen: int) -> None:
        if not self.fib.remove(prefix, prefixlen):
            raise sock_error(errno.ESRCH)
        self.invalidate_routes()

    def add_static_arp(self, ip: int, mac: bytes, ifindex: int | None = None) -> None:
        if ifindex is None:
            entry = self.fib.lookup(ip)
            if entry is None:
                raise sock_error(errno.ENETUNREACH)
            ifindex = entry.ifindex
        self.arp.add_static(ifindex, ip, mac)

    def register_protocol(self, proto: int, handler: InetProtocol,
                          early_demux: EarlyDemux | None = None) -> None:
        """inet_add_protocol: ``handler`` gets every datagram for ``proto`` from
        now on (replacing any other), and its ICMP errors.

        ``early_demux`` is its receive fast path, if it has one.  A handler
        given without one that has a ``rcv_verified`` method gets that as its
        fast path (docs/internals.md: rcv_verified is optional; the
        classifier's established-hash search is only for an explicit one)."""
        self.protocols[proto] = handler
        self._tcp_handler = _UNKNOWN    # the next batch looks the demux up again
        if early_demux is None:
            verified = getattr(handler, "rcv_verified", None)
            if verified is not None:
                early_demux = EarlyDemux(verified)
        if early_demux is None:
            self._early_demux.pop(proto, None)
        else:
            self._early_demux[proto] = (handler, early_demux)

    def set_tproxy(self, ifindex: int, proto: int, handler: Any) -> None:
        """Deliver ``proto`` datagrams to non-local destinations arriving on
        ``ifindex`` to ``handler`` (a transparent forwarder; None removes it):
        see docs/internals.md "Transparent forwarding"."""
        iface = self._iface(ifindex)
        table = dict(iface.tproxy or {})
        if handler is None:
            table.pop(proto, None)
        else:
            table[proto] = handler
        iface.tproxy = table or None

    # ----- IPv6 configuration (addrconf.py) ----------------------------------------

    def add_address6(self, ifindex: int, ip: int, prefixlen: int, nodad: bool = False) -> None:
        """``ip -6 addr add IP/LEN dev IF [nodad]``: tentative until DAD passes."""
        addrconf.ipv6_add_addr(self, self._iface(ifindex), ip, prefixlen, nodad)

    def remove_address6(self, ifindex: int, ip: int) -> None:
        addrconf.ipv6_del_addr(self, self._iface(ifindex), ip)

    def addresses6(self, ifindex: int) -> list[tuple[int, int, str]]:
        """(ip, prefixlen, state) of the interface's IPv6 addresses (``ip -6 addr``)."""
        return [(a.ip, a.prefixlen, a.state) for a in self._iface(ifindex).ip6.addrs]

    def add_route6(self, prefix: int, prefixlen: int, via: int | None,
                   ifindex: int | None = None) -> None:
        """``ip -6 route add prefix/len [via GW] [dev IF]``."""
        if ifindex is None:
            if via is None:
                raise ValueError("a route needs a gateway or an interface")
            if is_linklocal6(via):
                ifindex = self._default_iface6().ifindex
            else:
                entry = self.fib6.lookup(via)
                if entry is None or entry.gateway is not None:
                    raise sock_error(errno.ENETUNREACH, "gateway not on a connected network")
                ifindex = entry.ifindex
        self._check_nh_dev(ifindex)
        self.fib6.add(prefix, prefixlen, via, ifindex)
        self.invalidate_routes()

    def remove_route6(self, prefix: int, prefixlen: int) -> None:
        if not self.fib6.remove(prefix, prefixlen):
            raise sock_error(errno.ESRCH)
        self.invalidate_routes()

    def is_local_address6(self, ip: int) -> bool:
        """One of our preferred IPv6 addresses, or ::1."""
        return ip in self.local6 or ip == 1

    def route6_lookup(self, dst: int, ifindex: int | None = None) -> Route:
        """ip6_route_output: (ifindex, gateway, src, mtu) for ``dst``.  A
        link-scope destination goes out of ``ifindex`` (the scope id), or the
        first Ethernet interface; ENETUNREACH without a route."""
        # the route and its source (our own addresses' too) cached per
        # destination, or (destination, scope), as route_lookup's are,
        # cleared by invalidate_routes (which every address change calls);
        # the learned path MTU is applied on every lookup.  Once per burst
        # TCP sends, twice: keep it to one dict lookup of the int.
        key = dst if ifindex is None else (dst, ifindex)
        cache = self._rt6_cache
        rt = cache.get(key)
        if rt is None:
            rt = self._route6_slow(dst, ifindex)
            if len(cache) >= 4096:
                cache.clear()       # bounded: a scan of many destinations cannot grow it
            cache[key] = rt
        if self.pmtu6 and dst in self.pmtu6:
            return rt._replace(mtu=self._mtu6(self.interfaces[rt.ifindex], dst))
        return rt

    def _route6_slow(self, dst: int, ifindex: int | None) -> Route:
        if dst == 1 or dst in self.local6:
            return Route(LOOPBACK_IFINDEX, None, dst, min(self.lo.mtu, IP_MAX_MTU))
        if is_linklocal6(dst) or (is_multicast6(dst) and addr_scope(dst) <= 2):
            iface = self._iface(ifindex) if ifindex else self._default_iface6()
            if not iface.up:
                raise sock_error(errno.ENETUNREACH)     # (its fe80::/64 route went with it)
            return Route(iface.ifindex, None, addrconf.ipv6_dev_get_saddr(iface, dst) or 0,
                         self._link_mtu6(iface))
        entry = self.fib6.lookup(dst)
        if entry is None:
            raise sock_error(errno.ENETUNREACH)
        iface = self.interfaces[entry.ifindex]
        return Route(entry.ifindex, entry.gateway,
                     addrconf.ipv6_dev_get_saddr(iface, dst) or 0, self._link_mtu6(iface))

    def _default_iface6(self) -> Interface:
        for iface in self.interfaces.values():
            if iface.up and iface.link == "ether":
                return iface
        raise sock_error(errno.ENETUNREACH, "no interface for a link-local destination")

    @staticmethod
    def _link_mtu6(iface: Interface) -> int:
        """The link's IPv6 MTU: the interface's, or a router's MTU option below it."""
        return min(iface.mtu, iface.ip6.mtu6 or IP_MAX_MTU, IP_MAX_MTU)

    def _mtu6(self, iface: Interface, dst: int) -> int:
        mtu = self._link_mtu6(iface)
        learned = self.pmtu6.get(dst)
        if learned is not None:
            if learned[1] > self.now:
                mtu = min(mtu, learned[0])
            else:
                del self.pmtu6[dst]
        return mtu

    def update_pmtu6(self, dst: int, mtu: int) -> None:
        """A Packet Too Big about a datagram of ours to ``dst`` (RFC 8201):
        lower its path MTU, never below 1280, never raise it."""
        mtu = max(mtu, IPV6_MIN_MTU)
        try:
            current = self.route6_lookup(dst).mtu
        except OSError:
            return
        if mtu >= current:
            return
        if len(self.pmtu6) > 4096:
            self.pmtu6.clear()
        self.pmtu6[dst] = (mtu, self.now + self.settings.ip_rt_mtu_expires)
        self.dst_gen.genid += 1         # cached TcpDsts carry the old MTU
        self.mib["Ip6PmtuUpdates"] += 1

    def register_protocol6(self, proto: int, handler: Any) -> None:
        """inet6_add_protocol: ``handler.rcv(skb, payload, now)`` gets every
        IPv6 datagram for ``proto``, ``handler.err(...)`` its ICMPv6 errors."""
        self.protocols6[proto] = handler
        self._tcp_handler = _UNKNOWN    # the next batch looks at its TCP again

    def ip6_output(self, proto: int, src: int | None, dst: int,
                   payload: bytes | bytearray | memoryview, *, hlim: int | None = None,
                   tclass: int = 0, dontfrag: bool = False, ifindex: int | None = None) -> int:
        """Route, pick the source, fragment, resolve by ND (ip6_output.py);
        the NET_XMIT_* status (qdisc.py)."""
        rc = ip6_output.ip6_output(self, proto, src, dst, payload,
                                   self.settings.ipv6_hop_limit if hlim is None else hlim,
                                   tclass, dontfrag, ifindex)
        if self._loopback and not self._busy and not self.backlog_deferred:
            self._run_loopback()
        return rc

    def icmp6_send(self, packet: bytes | bytearray | memoryview, type: int, code: int,
                   info: int = 0) -> None:
        """icmp6_send: an ICMPv6 error about the received datagram ``packet``."""
        self.icmp6.send_error(packet, type, code, info)

    def _iface(self, ifindex: int) -> Interface:
        try:
            return self.interfaces[ifindex]
        except KeyError:
            raise sock_error(errno.ENODEV, f"no interface {ifindex}") from None

    def _rebuild_broadcasts(self) -> None:
        self.invalidate_routes()     # called on every address change
        self._bcast = {INADDR_BROADCAST}
        for iface in self.interfaces.values():
            self._bcast.update(iface.broadcasts())

    # ----- addresses and routes -----------------------------------------------------

    def is_local_address(self, ip: int) -> bool:
        return ip in self._local or ip >> 24 == 127

    def local_addresses(self) -> list[int]:
        return list(self._local)

    def is_broadcast(self, ip: int) -> bool:
        """Limited broadcast or the directed broadcast of one of our subnets."""
        return ip in self._bcast

    def route_lookup(self, dst: int) -> Route:
        """fib_lookup + source selection (cached per destination); raises ENETUNREACH."""
        cache = self._rt_cache
        rt = cache.get(dst)
        if rt is None:
            rt = self._route_slow(dst)
            if len(cache) >= 4096:
                cache.clear()       # bounded: a scan of many destinations cannot grow it
            cache[dst] = rt
        if self.pmtu:
            learned = self.pmtu.get(dst)
            if learned is not None:
                if learned[1] > self.now:
                    if learned[0] < rt.mtu or learned[2]:
                        return rt._replace(mtu=min(learned[0], rt.mtu),
                                           mtu_locked=learned[2])
                else:
                    del self.pmtu[dst]
        return rt

    def invalidate_routes(self) -> None:
        """Forget cached lookups after any change of addresses, routes or MTUs."""
        self._rt_cache.clear()
        self._rt6_cache.clear()
        self._tcp_paths.clear()
        self.dst_gen.genid += 1         # rt_genid_bump: the sockets' cached paths too

    def _route_slow(self, dst: int) -> Route:
        lo = self.lo
        if dst in self._local:
            # RTN_LOCAL (the kernel's "local" table: ``ip route get 10.0.0.1`` ->
            # ``local 10.0.0.1 dev lo src 10.0.0.1``): through lo, whichever
            # interface holds the address, with the address itself as source.
            return Route(lo.ifindex, None, dst, min(lo.mtu, IP_MAX_MTU))
        if dst >> 24 == 127:
            # Linux's "local 127.0.0.0/8 dev lo src 127.0.0.1": lo's address is
            # the source for the whole block, not the destination itself.
            return Route(lo.ifindex, None, LOOPBACK, min(lo.mtu, IP_MAX_MTU))
        entry = self.fib.lookup(dst, self._links_down)
        if entry is None:
            if dst == INADDR_BROADCAST and self.interfaces:
                iface = next((i for i in self.interfaces.values() if i.addrs),
                             next(iter(self.interfaces.values())))
                return Route(iface.ifindex, None, self.source_for(iface, dst),
                             min(iface.mtu, IP_MAX_MTU))
            raise sock_error(errno.ENETUNREACH)
        iface = self.interfaces[entry.ifindex]
        target = entry.gateway if entry.gateway is not None else dst
        src = select_source(iface.addrs, target, entry.prefsrc, next(iter(self._local), 0))
        return Route(entry.ifindex, entry.gateway, src, min(iface.mtu, IP_MAX_MTU))

    def update_pmtu(self, dst: int, mtu: int) -> None:
        """__ip_rt_update_pmtu: remember a smaller path MTU towards ``dst`` for a while.

        Only ever lowers it: an MTU above the route's current one (the
        interface's, or one learned before) changes nothing (``if (old_mtu <
        mtu) return;``), so a stale or forged ICMP cannot raise the path MTU;
        it grows back only when what was learned expires (RFC 8201-style
        aging, ip_rt_mtu_expires, 600 s).  Clamped below at min_pmtu (552,
        like Linux) so a forged ICMP cannot make us send tiny fragments: any
        smaller value, including an old router's 0 (RFC 1191 section 5),
        lands on the floor (``mtu = min(old_mtu, ip_rt_min_pmtu)``) and is
        locked: segments of sockets that only want PMTU discovery leave
        without DF on that path until it expires (ip_dont_fragment), so a
        router past a link that small may fragment them.  The
        same MTU again in the first half of its lifetime is not news (Linux
        leaves the exception as it is); later it restarts the lifetime.
        PMTUUpdates counts what was stored.
        """
        s = self.settings
        try:
            old_mtu = self.route_lookup(dst).mtu
        except OSError:
            return                     # no route, nothing to update
        if old_mtu < mtu:
            return
        locked = mtu < s.min_pmtu
        if locked:
            mtu = min(old_mtu, s.min_pmtu)
        learned = self.pmtu.get(dst)
        if (learned is not None and learned[0] == mtu and learned[2] == locked
                and self.now < learned[1] - s.ip_rt_mtu_expires / 2):
            return
        if len(self.pmtu) >= 4096:
            self.pmtu.clear()          # bounded; forgetting only costs a new ICMP
        self.pmtu[dst] = (mtu, self.now + s.ip_rt_mtu_expires, locked)
        self.dst_gen.genid += 1         # cached TcpDsts carry the old MTU
        self.mib["PMTUUpdates"] += 1

    def source_for(self, iface: Interface, target: int) -> int:
        return select_source(iface.addrs, target, None, next(iter(self._local), 0))

    # ----- the sans-IO surface ------------------------------------------------------

    def receive(self, ifindex: int, frame: bytes | bytearray | memoryview, now: float) -> None:
        """One frame from the link (Ethernet or bare IPv4 per the interface)."""
        self.receive_batch(ifindex, (frame,), now)

    def receive_batch(self, ifindex: int, frames: Any, now: float) -> None:
        """Frames from one link, in arrival order, each processed to completion
        (``receive`` for each, with the per-call setup done once per batch).
        (Each Host's is rx.rx_receive bound to it, set in __init__: a
        device's batch runs no Python of the host's when the fast path takes
        every frame; this is what a test that deleted it gets back.)"""
        _rx.rx_receive(self, globals(), ifindex, frames, now)

    def _rx_batch(self, iface: Interface, frames: Any, now: float) -> None:
        """netif_receive_skb for each of ``frames`` (from ``iface``, or lo's
        backlog), then what the batch deferred (``defer_to_batch_end``):
        rx.rx_batch, with this module's classifier (a test may replace it).

        Each takes the compiled classifier first (a datagram from lo with
        the wire's martian checks off: 127/8 and our own source addresses are
        what lo carries), then, if it declines, ``_rx_one``."""
        rx_batch(self, iface, frames, now, rx_classify)

    def _rx_one(self, iface: Interface, frame: Any, rec: tuple | None, now: float) -> None:
        """One frame of a receive batch the fast path declined: delivered
        from rx_classify's tuple ``rec``, or (None, or no handler for the
        protocol) the layered path.  A bug must not kill the stack: an
        exception is counted and logged, the frame dropped (raised again
        when ``debug``)."""
        gro = type(frame) is GsoFrame   # rx_gso_* set for the frame in hand
        try:
            if gro:
                self.rx_gso_segs, self.rx_gso_size = rx_gso(frame)
            demux = self._tcp_demux
            if demux is not None and rec is not None and rec[0] == IPPROTO_TCP \
                    and rec[5] is not None:
                # _rx_deliver's IPv4 TCP case without its call (a
                # handshake's and a close's every segment)
                mib = self.mib
                mib["InReceives"] += 1
                mib["InDelivers"] += 1
                demux.rcv_verified(rec[5], memoryview(frame)[rec[6]:rec[7]], now)
                return
            if rec is None or not self._rx_deliver(rec, frame, now):
                if gro and frame.csum_partial:
                    # checksum offload on the sender's device (a
                    # MemoryWire's): the layered path checks sums
                    frame = csum_completed(frame, iface.mac is not None)
                if iface is self.lo:
                    if frame[0] >> 4 == 6:
                        ip6_input.ipv6_rcv(self, iface, frame, now, False, True)
                    else:
                        ip_input.ip_rcv(self, iface, frame, now, False, True)
                else:
                    self._rx_slow(iface, frame, now)
        except Exception:
            if self.debug:
                raise
            self.mib["CoreExceptions"] += 1
            log.exception("%s: exception while processing a frame", self.name)
        finally:
            # Only meaningful inside receive (ip_rcv sets it per datagram).
            self.rx_link_bcast = False
            if gro:
                self.rx_gso_segs = 1
                self.rx_gso_size = 0

    def _rx_fault(self, iface: Interface, run: Any, frames: Any, exc: Exception) -> bool:
        """rx_run raised at ``frames[run.pos]``: only the TCP fast path runs
        protocol code there, after it took the segment, which the layered
        path would have counted before failing too.  The frame is counted
        and skipped; True: raise the exception again (``debug``), else it is
        counted and logged."""
        if _is_ipv6(frames[run.pos], iface.mac):
            run.taken6 += 1
        else:
            run.taken += 1
        run.pos += 1
        self.rx_link_bcast = False
        if self.debug:
            return True
        self.mib["CoreExceptions"] += 1
        log.error("%s: exception while processing a frame", self.name, exc_info=exc)
        return False

    def _rx_tcp_setup(self, tcp: Any) -> None:
        """What a receive batch takes from the TCP handler now in the table
        (``_rx_tcp``): its early demux, if it registered one (with it rx
        verifies the TCP checksum, CHECKSUM_UNNECESSARY, and may search its
        established hash; without, TCP checks its own), whether to verify,
        the established hash, TCP's stateless SYN path (a device's frames
        only), and the IPv6 established hash when the IPv6 TCP handler is
        this TCP's (_rx_tcp6).  Again when either table changes
        (register_protocol, register_protocol6 forget the handler)."""
        self._tcp_handler = tcp
        entry = self._early_demux.get(IPPROTO_TCP)
        demux = self._tcp_demux = entry[1] if entry is not None and entry[0] is tcp else None
        if demux is None:
            self._rx_tcp = (None, False, None, None, None)
            return
        ehash6 = demux.ehash6
        if ehash6 is not None and getattr(self.protocols6.get(IPPROTO_TCP), "tcp", None) \
                is not tcp:
            ehash6 = None
        self._rx_tcp = (demux, True, demux.ehash, demux.syn, ehash6)

    def _rx_deliver(self, rec: tuple, frame: bytes | bytearray | memoryview,
                    now: float) -> bool:
        """Deliver a frame rx_classify found clean (its tuple ``rec``).

        rx_classify did ip_rcv's checks in one compiled call (and, for an
        established TCP connection's in-order data, all of the receive work:
        it answered True then and we never get here).  Returns False when
        the frame needs the layered path after all (no handler for the
        protocol).  The counters moved here are the ones the layered path
        moves for the same frame: InReceives and InDelivers, then the
        protocol's own.
        """
        proto = rec[0]
        if rec[5] is None:
            # IPv6 TCP (_rx_tcp6, only with the IPv6 handler this TCP's):
            # ipv6_rcv's and ip6_input_finish's counts, then tcp_v6_rcv's rest
            mib = self.mib
            mib["Ip6InReceives"] += 1
            mib["Ip6InDelivers"] += 1
            self.protocols6[IPPROTO_TCP].rcv_verified(rec[1], rec[2],
                                                      memoryview(frame)[rec[6]:rec[7]], now)
            return True
        handler = self._tcp_handler if proto == IPPROTO_TCP else self.protocols.get(proto)
        if handler is None:
            return False      # InUnknownProtos + ICMP protocol unreachable: slow path
        mib = self.mib
        mib["InReceives"] += 1
        mib["InDelivers"] += 1
        if handler is self.udp:
            handler.rcv_fast(rec, frame, now)
        elif proto == IPPROTO_TCP:
            payload = memoryview(frame)[rec[6]:rec[7]]
            demux = self._tcp_demux
            if demux is not None:
                demux.rcv_verified(rec[5], payload, now)
            else:
                handler.rcv(rec[5], payload, now)
        else:
            # Another UDP handler registered in place of ours: the generic contract.
            off = rec[6]
            handler.rcv(wire.parse_ipv4(frame, off - ip_input.IP_HLEN),
                        memoryview(frame)[off:rec[7]], now)
        return True

    def _rx_slow(self, iface: Interface, frame: bytes | bytearray | memoryview,
                 now: float) -> None:
        """The layered path: every check, every drop counter."""
        if iface.link == "ether":
            ether.ether_input(self, iface, frame, now)
        elif frame and frame[0] >> 4 == 6:
            ip6_input.ipv6_rcv(self, iface, frame, now, False)
        else:
            ip_input.ip_rcv(self, iface, frame, now, False)

    def poll(self, now: float, due: float | None = None) -> None:
        """Run the timers due at ``now`` (only those due by ``due``, when
        given: see TimerWheel.run)."""
        self.now = now
        self._busy = True
        try:
            self.timers.run(now, due)
            if self._loopback and not self.backlog_deferred:
                self._run_loopback()
        except Exception:
            if self.debug:
                raise
            self.mib["CoreExceptions"] += 1
            log.exception("%s: exception in a timer", self.name)
        finally:
            self._busy = False

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    def deadline_bound(self) -> float | None:
        return self.timers.deadline_bound()

    def take_output(self) -> list[tuple[int, bytes | bytearray]]:
        out = self._output
        self._output = []
        if self._tx_stopped:
            out = self._hold_stopped(out)
        return out

    def _hold_stopped(self, out: list[tuple[int, bytes | bytearray]]
                      ) -> list[tuple[int, bytes | bytearray]]:
        """Frames for an interface whose driver is stopped wait in its qdisc.
        Those queued before it stopped were admitted while it ran, so none of
        them is dropped (Qdisc.hold); those a compiled path appended to the
        list itself since (an ACK, a SYN-ACK: only TCP's send loop checks
        ``netif_xmit_stopped``) are admitted now, up to the limit."""
        stopped, qdiscs, marks = self._tx_stopped, self.qdiscs, self._stop_marks
        go = []
        for i, item in enumerate(out):
            ifindex = item[0]
            if ifindex in stopped:
                if i < marks.get(ifindex, 0):
                    qdiscs[ifindex].hold(item[1])
                elif qdiscs[ifindex].enqueue(item[1]) == NET_XMIT_DROP:
                    self.qdisc_drops += 1   # appended unasked: nobody to answer
            else:
                go.append(item)
        for ifindex in marks:
            marks[ifindex] = 0          # the next output is all after the stop
        return go

    def tx_queue(self) -> list[tuple[int, bytes | bytearray]]:
        """The list ``take_output`` will return next: TCP's send loop appends
        whole frames to it (NetHost.tx_queue)."""
        return self._output

    def schedule_wakeup(self, sk: Any) -> None:
        # (each Host's is its _wakeups.setdefault, set in __init__)
        self._wakeups[sk] = None

    def take_wakeups(self) -> list[Any]:
        if not self._wakeups:
            return []
        woken = list(self._wakeups)
        self._wakeups.clear()
        return woken

    # ----- for the protocol layers ----------------------------------------------------

    def ip_output(self, proto: int, src: int | None, dst: int,
                  payload: bytes | bytearray | memoryview, *, ttl: int | None = None,
                  tos: int = 0, df: bool = False, ident: int = -1) -> int:
        """ip_output.ip_output; its NET_XMIT_* status (qdisc.py)."""
        rc = ip_output.ip_output(self, proto, src, dst, payload,
                                 self.settings.ip_default_ttl if ttl is None else ttl, tos, df,
                                 ident)
        # From a user call, deliver to ourselves now; from inside packet or timer
        # processing, after it (no re-entry into a protocol mid-segment); with
        # a driver that runs the backlog, from its loop.
        if self._loopback and not self._busy and not self.backlog_deferred:
            self._run_loopback()
        return rc

    def ip_forward(self, iph: Any, packet: bytes | bytearray | memoryview, hlen: int,
                   tot_len: int, link_bcast: bool) -> None:
        """Router mode (Settings.ip_forward): ip_rcv's datagram for someone else."""
        ip_forward.ip_forward(self, iph, packet, hlen, tot_len, link_bcast)

    def defer_to_batch_end(self, fn: Callable[[Any, float], None], owner: Any) -> bool:
        """Run ``fn(owner, now)`` once after this receive batch (see NetHost);
        False outside a batch.  (Each Host's is its BatchEnd's ``defer``,
        set in __init__: this is what a test that deleted it gets back.)"""
        return self._rx_end.defer(fn, owner)

    def _run_batch_end(self, now: float) -> None:
        """What the batch's frames deferred, in the order first asked; what
        that in turn defers runs too (BatchEnd.run)."""
        self._rx_end.run(now, self._batch_end_error)

    def _batch_end_error(self, exc: Exception) -> bool:
        """An exception in the batch's deferred work: raised again when
        ``debug``, else counted and logged (the rest of the work goes on)."""
        if self.debug:
            return True
        self.mib["CoreExceptions"] += 1
        log.error("%s: exception at the end of a receive batch", self.name, exc_info=exc)
        return False

    def defer_loopback(self) -> bool:
        """Hold deliveries to our own addresses until ``release_loopback``.

        Like the kernel's socket backlog while a user call owns the sock: a
        protocol that sends to itself from a user call (TCP over 127.0.0.1)
        must not have the reply processed in the middle of its own send loop.
        Returns whether this call took the hold (False inside packet or timer
        processing, which delivers afterwards anyway).  (Each Host's is
        rx.host_defer_loopback bound to it, set in __init__.)"""
        return _rx.host_defer_loopback(self)

    def release_loopback(self, held: bool) -> None:
        """End a ``defer_loopback`` hold and deliver what it held
        (rx.host_release_loopback, bound in __init__ likewise)."""
        _rx.host_release_loopback(self, held)

    def icmp_send(self, iph: Any, payload: bytes | bytearray | memoryview, type: int,
                  code: int, info: int = 0) -> None:
        """Send an ICMP error about the datagram (iph, payload) to its source."""
        self.icmp.send_error(iph, payload, type, code, info)

    def ip_local_error(self, packet: bytes | bytearray, type: int, code: int,
                       info: int = 0) -> None:
        """A locally generated packet could not be sent (e.g. ARP failed).

        Like Linux's icmp_send to ourselves: the transport that sent it gets
        the error through its err handler, as if an ICMP error had arrived.
        """
        self.icmp.local_error(packet, type, code, info)

    # NetHost.ip_tcp_path(dst, length): ip_output's function itself as the
    # method (no extra call per segment; its first parameter is the host).
    ip_tcp_path = _ip_tcp_path
    # NetHost.ip_tcp_dst(dst): the route TCP's sockets cache (ip_output's)
    ip_tcp_dst = _ip_tcp_dst
    # NetHost6.ip6_tcp_path(dst, length): the same for IPv6 (ip6_output's)
    ip6_tcp_path = _ip6_tcp_path
    # NetHost6.ip6_tcp_dst(dst): the route TCP's IPv6 sockets cache
    ip6_tcp_dst = _ip6_tcp_dst

    def ether_xmit(self, iface: Interface, dst_mac: bytes, ethertype: int,
                   payload: bytes | bytearray) -> int:
        return ether.ether_xmit(self, iface, dst_mac, ethertype, payload)

    def xmit(self, ifindex: int, frame: bytes | bytearray) -> int:
        """dev_queue_xmit: NET_XMIT_SUCCESS, or the qdisc's answer while the
        driver has stopped the interface's queue: NET_XMIT_DROP when it is
        full and the frame was dropped (counted in ``qdisc_drops``, a
        statistic), NET_XMIT_CN from a qdisc that takes it but signals
        congestion (qdisc.py)."""
        if self._tx_stopped and ifindex in self._tx_stopped:
            rc = self.qdiscs[ifindex].enqueue(frame)
            if rc == NET_XMIT_DROP:
                self.qdisc_drops += 1
            return rc
        self._output.append((ifindex, frame))
        return NET_XMIT_SUCCESS

    def gso_caps(self, ifindex: int, v6: bool = False) -> tuple[int, bool]:
        """NetHost.gso_caps: the interface's (gso_max_size, tx_csum_partial),
        its gso_max_size6 for IPv6."""
        iface = self.interfaces.get(ifindex)
        if iface is None:
            return 0, False
        size = iface.gso_max_size6 if v6 else iface.gso_max_size
        return size, iface.tx_csum_partial

    def loopback(self, packet: bytes | bytearray) -> None:
        """loopback_xmit + netif_rx: a datagram to one of our own addresses
        joins lo's backlog, delivered after the current call (or by the
        driver's ``process_backlog``); beyond netdev_max_backlog it is dropped."""
        queue = self._loopback
        stats = self.lo_stats
        if len(queue) >= NETDEV_MAX_BACKLOG:
            self.mib["LoopbackDrops"] += 1
            stats["rx_dropped"] += 1
            return
        queue.append(packet)
        stats["tx_packets"] += 1
        stats["tx_bytes"] += len(packet)

    @property
    def backlog(self) -> int:
        """Datagrams waiting on lo's backlog (a driver runs ``process_backlog``
        while this is not 0)."""
        return len(self._loopback)

    def _take_backlog(self, budget: int) -> list[bytes | bytearray]:
        """Up to ``budget`` datagrams off the backlog, oldest first."""
        queue = self._loopback
        if len(queue) <= budget:
            batch = list(queue)
            queue.clear()
        else:
            pop = queue.popleft
            batch = [pop() for _ in range(budget)]
        stats = self.lo_stats
        stats["rx_packets"] += len(batch)
        stats["rx_bytes"] += sum(map(len, batch))
        return batch

    def process_backlog(self, now: float, budget: int = BACKLOG_BUDGET) -> bool:
        """process_backlog (net/core/dev.c), for a driver that set
        ``backlog_deferred``: what lo's backlog holds, as receive batches on
        lo (so ACKs coalesce per batch as for a device's batch), including
        what that processing sends to ourselves in turn, up to ``budget``
        datagrams.  Returns True when some are left for the next call (the
        softirq's budget: the driver gives its loop a turn first)."""
        self.now = now
        queue = self._loopback
        while queue and budget > 0:
            batch = self._take_backlog(budget)
            budget -= len(batch)
            self._rx_batch(self.lo, batch, now)
        return bool(queue)

    def _run_loopback(self) -> None:
        """Drain the backlog now (no driver does): batch after batch, each
        after the processing that queued it, never nested."""
        if self._in_loopback:
            return
        self._in_loopback = True
        try:
            budget = LOOPBACK_BUDGET  # a protocol answering itself forever must not hang us
            queue = self._loopback
            while queue and budget:
                batch = self._take_backlog(budget)
                budget -= len(batch)
                self._rx_batch(self.lo, batch, self.now)
            if queue:
                self.mib["LoopbackDrops"] += len(queue)
                self.lo_stats["rx_dropped"] += len(queue)
                queue.clear()
        finally:
            self._in_loopback = False

    def __repr__(self) -> str:
        return f"<Host {self.name} {len(self.interfaces)} interfaces>"
