"""The asyncio driver: binds one sans-IO ``Host`` to the running event loop.

    async with tcpio.Stack() as stack:
        stack.add_interface(tcpio.TapDevice("tap0"), "10.0.0.2/24")
        transport, proto = await stack.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))

The core never reads a clock or touches a file descriptor, so this module does
both for it, in three places only:

- a device callback (one per batch of received frames): ``host.receive`` for
  each frame, to completion, then ``kick()``;
- the one loop timer, armed for ``host.next_deadline()`` (or a moment before
  it: ``host.deadline_bound()``, see ``_rearm``): ``host.poll(now)``,
  then ``kick()``; input a device already holds is read first, and while it
  keeps coming the due timers wait for it, a loop iteration at a time
  (``_on_timer``: Linux's net_rx_action with its budget and time limit);
- user calls (datagram transports, sockets, streams): ``update_time()``, the
  core call, then ``kick()``.

A kick that is not the receive side's own also reads a device whose last
read stopped at its budget (``_softirq``: Linux's pending NET_RX run where
the sender re-enables bottom halves), sending that input's ACKs at once and
leaving its wakeups to one kick from the loop, at most half the loop's time.

``kick()`` flushes ``host.take_output()`` to the devices (one ``send_batch``
per device), delivers ``host.take_wakeups()`` to the socks' glue, and re-arms
the timer if the deadline moved.  No queue or task per packet anywhere.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import operator
import socket as _socket
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from tcpio._fast import load as _load
from tcpio.core.addr import ip6_aton, ip_aton, parse_cidr, parse_cidr6
from tcpio.core.errors import sock_error
from tcpio.core.host import Host
from tcpio.core.settings import Settings
from tcpio.core.tx_coalesce import coalesce
from tcpio.devices.base import Device
from tcpio.netdb import HostsTable
from tcpio.resolver import Resolver

_host_log = logging.getLogger("tcpio.host")

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self is 3.11+

    from tcpio.datagram import UdpTransport
    from tcpio.rawsocket import RawSocket
    from tcpio.server import Server
    from tcpio.socket import Socket

_ProtocolT = TypeVar("_ProtocolT", bound=asyncio.BaseProtocol)

# Wakeup callbacks may produce more output or wakeups without calling kick()
# themselves; kick() loops until quiet, but never forever.
_KICK_ROUNDS = 16

# When timers fall due, what a device still holds is read first, with
# net_rx_action's limits per timer callback: at most NET_RX_ROUNDS device
# budgets, stopping after the one that passes NET_RX_USECS (Linux:
# netdev_budget 300 frames, netdev_budget_usecs 2000; a TapDevice budget is
# 256 frames).  Input left over puts the timers off to the next loop
# iteration (the reader callbacks and the application's run in between),
# until all that waited when they fell due has been read: the device seen
# empty, or a whole ring's worth read since (a TAP's txqueuelen frames; the
# ring is first in, first out), which bounds the wait by work, so timers
# cannot starve under input that never stops.  TIMER_DEFER_MAX bounds it by
# time too, for a device that cannot say; it is no tighter because a wait
# cut short runs timers before ACKs that are there: at 50 ms, and at 1 s on
# a loaded machine (the TAP's ring held a second of frames at 1000 flows),
# loss probes of FINs already acknowledged drew 29-536 RSTs a run
# (benchmarks/README.md).
NET_RX_ROUNDS = 4
NET_RX_USECS = 2000
TIMER_DEFER_MAX = 5.0
_NOTHING_DUE = float("-inf")        # host.poll's due: only the prompt timers
# the driver's per-batch, per-kick and per-call work, compiled (rx_py's
# stack_kick, stack_on_frames, stack_time)
_rx = _load("rx")
stack_kick = _rx.stack_kick
stack_on_frames = _rx.stack_on_frames
stack_time = _rx.stack_time
# the parts of a host output's (ifindex, frame) item (_transmit)
_IFINDEX = operator.itemgetter(0)
_FRAME = operator.itemgetter(1)


class Stack:
    """One host: interfaces, routes, sockets, driven by the running asyncio loop."""

    def __init__(self, settings: Settings | None = None, seed: int | None = None, *,
                 name: str = "tcpio") -> None:
        self.host = Host(name=name, seed=seed, settings=settings or Settings())
        # kick (after every receive batch, every write, every timer) and
        # update_time (before every user call into the core) run compiled
        # with no Python frame of ours (rx.stack_kick, rx.stack_time; the
        # methods are what a test that deleted these attributes gets back)
        self.kick = functools.partial(  # type: ignore[method-assign]
            stack_kick, self, _KICK_ROUNDS)
        self.update_time = functools.partial(  # type: ignore[method-assign]
            stack_time, self)
        # lo's backlog runs from the loop (_on_backlog), like the NET_RX
        # softirq after netif_rx: a user call returns before anything it sent
        # to ourselves is processed, so its waiter is in place for the answer.
        self.host.backlog_deferred = True
        self._backlog_handle: asyncio.Handle | None = None
        # The receive side on the senders' path (_softirq, issue 11): the
        # devices whose last read stopped at its budget (NET_RX left
        # pending), whether a poll of them is running now (its batches'
        # wakeups then wait for _rx_wake's kick), when the next may run
        # (the loop's clock: the loop's other work gets as long as the last
        # took) and the counts (polls, frames read by them, polls the share
        # put off).
        self._rx_pending: dict[int, Device] = {}
        self._napi: dict[int, Any] = {}     # the devices that can (poll_rx, rx_more)
        self._in_softirq = False
        self._rx_busy = False
        self._softirq_at = 0.0
        self._rx_wake: asyncio.Handle | None = None
        self.devices: dict[int, Device] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # the loop's clock (update_time's, taken at its first call)
        self._clock: Callable[[], float] | None = None
        # the timer: a TimerHandle, or while due timers wait for input, the
        # call_soon Handle that looks again (_on_timer)
        self._timer: asyncio.Handle | None = None
        self._timer_when: float | None = None
        # _timer is _rearm's call_at (it may be left armed early: _rearm);
        # False for the call_soon _on_timer arms while timers wait for input
        self._timer_lazy = False
        # due timers waiting for input since (loop time; None: not waiting),
        # and each waiting device's rx_mark() when they began to
        self._squeeze_since: float | None = None
        self._rx_marks: dict[int, object] = {}
        # like /proc/net/softnet_stat: timer callbacks that left input
        # waiting and put the timers off, timer runs the cap forced with
        # input still waiting; the longest wait (seconds)
        self.softnet_stat: dict[str, float] = {
            "timers_deferred": 0, "timers_forced": 0, "timers_waited_max": 0.0,
            "softirq_polls": 0, "softirq_frames": 0, "softirq_deferred": 0}
        self._closed = False
        # frames _transmit joined into the super-frame before them (tx_coalesce)
        self.tx_coalesced = 0
        self._endpoints: set[UdpTransport] = set()
        # TCP transports register here so close() can end them, from their
        # creation to their connection_lost, as the server's _clients: a
        # set (a WeakSet took a weak reference per transport, one more
        # object per connection for the cycle collector: issue 11).  It
        # keeps nothing alive longer: until connection_lost the sock holds
        # its transport anyway (sk.wakeup).
        self._transports: set[Any] = set()
        # ping(): outstanding echo requests by (ident, seq); one ident per stack.
        self._pings: dict[tuple[int, int], tuple[asyncio.Future[float], bytes]] = {}
        self._ping_ident = self.host.rng.getrandbits(16)
        self._ping_seq = 0
        self.host.icmp.wakeup = self._on_icmp_wakeup
        self.host.icmp6.wakeup = self._on_icmp_wakeup
        # Transparent forwarders by (ifindex, protocol) (tcpio/forward.py).
        self._forwarders: dict[tuple[int, int], Any] = {}
        # Names: hosts table, name servers, cache (tcpio/resolver.py).
        self.resolver = Resolver(self)
        # tcpio.tcp at DEBUG: every segment of every connection, through tracing
        if logging.getLogger("tcpio.tcp").isEnabledFor(logging.DEBUG):
            from tcpio.core.tcp.tcp_trace import log_event
            self.host.tcp.set_trace(log_event)

    # --- lifetime -----------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._bind_loop()
        assert self._loop is not None
        return self._loop

    def _bind_loop(self) -> None:
        if self._closed:
            raise sock_error(errno.EBADF, "stack is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self.update_time()

    async def __aenter__(self) -> Self:
        self._bind_loop()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close datagram endpoints, stop every device, cancel the timer.  Idempotent."""
        if self._closed:
            return
        for transport in list(self._endpoints):
            transport.abort()
        self._endpoints.clear()
        # Like a host going down: every TCP connection is reset and its
        # protocol learns ECONNABORTED (otherwise readers and wait_closed()
        # would wait for ever on a stack that no longer runs).
        for tcp_transport in list(self._transports):
            tcp_transport._force_close(sock_error(errno.ECONNABORTED, "stack closed"), rst=True)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_when = None
        if self._backlog_handle is not None:
            self._backlog_handle.cancel()
            self._backlog_handle = None
        if self._rx_wake is not None:
            self._rx_wake.cancel()
            self._rx_wake = None
        self._rx_pending.clear()
        for dev in self.devices.values():
            dev.stop()
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    # --- configuration ------------------------------------------------------

    def add_interface(self, device: Device, address: str | None = None,
                      mtu: int | None = None) -> int:
        """Attach ``device`` as a new interface, optionally with "ip/prefixlen";
        start receiving from it.  Returns the ifindex."""
        self._bind_loop()
        self.update_time()
        # TSO: what the device says it takes (a device without the
        # attributes, or a wrapper that does not pass them on, takes none)
        ifindex = self.host.add_interface(
            device.name, link=device.link, mac=device.mac, mtu=mtu or device.mtu,
            gso_max_size=getattr(device, "gso_max_size", 0),
            gso_max_size6=getattr(device, "gso_max_size6", 0),
            tx_csum_partial=getattr(device, "tx_csum_partial", False))
        self.devices[ifindex] = device
        if getattr(device, "poll_rx", None) is not None and hasattr(device, "rx_more"):
            self._napi[ifindex] = device        # says when a read stopped at its budget
        self.host.attach_netif(ifindex, device, self.kick)     # its queue (core/qdisc.py)
        share = getattr(device, "syn_share", None)
        if share is not None and share.overflowed is None:
            # the SYN queue's share holds a flood, not a burst the listeners take
            mib = self.host.mib
            share.overflowed = lambda: mib.get("ListenDrops", 0) + mib.get("TCPReqQFullDoCookies", 0)
        # (a partial: the device's batch reaches the stack's receive work,
        # compiled, with no Python frame between: rx.stack_on_frames)
        device.start(self.loop, functools.partial(stack_on_frames, self, ifindex))
        if address is not None:
            self.add_address(ifindex, address)
        _host_log.info("%s: interface %d %s up (%s, mtu %d)%s", self.host.name, ifindex,
                       device.name, type(device).__name__, mtu or device.mtu,
                       f" {address}" if address is not None else "")
        self.kick()
        return ifindex

    def add_address(self, ifindex: int, address: str, *, nodad: bool = False) -> None:
        """Add "ip/prefixlen" to an interface (gratuitous ARP, connected
        route); an IPv6 one ("fd00::2/64") is tentative until DAD passes,
        unless ``nodad``."""
        self.update_time()
        if ":" in address:
            ip6, plen6 = _parse_cidr6(address)
            self.host.add_address6(ifindex, ip6, plen6, nodad=nodad)
        else:
            ip, prefixlen = _parse_cidr(address)
            self.host.add_address(ifindex, ip, prefixlen)
        self.kick()

    def add_route(self, prefix: str, via: str | None = None,
                  ifindex: int | None = None) -> None:
        """``add_route("0.0.0.0/0", via="10.0.0.1")``, like ``ip route add``
        (``add_route("::/0", via="fd00::1")`` for IPv6)."""
        if ":" in prefix:
            net6, plen6 = _parse_cidr6(prefix)
            self.update_time()
            self.host.add_route6(net6, plen6, _parse_ip6(via) if via is not None else None,
                                 ifindex)
            self.kick()
            return
        net, prefixlen = _parse_cidr(prefix)
        gateway = _parse_ip(via) if via is not None else None
        self.update_time()
        self.host.add_route(net, prefixlen, gateway, ifindex)
        self.kick()

    def set_link(self, ifindex: int, up: bool) -> None:
        """``ip link set IF up|down`` (see ``Host.set_link``)."""
        self.update_time()
        self.host.set_link(ifindex, up)
        self.kick()

    # --- names (tcpio/resolver.py) ----------------------------------------------

    @property
    def hosts(self) -> HostsTable:
        """Names known without DNS, like /etc/hosts (``localhost`` to start)."""
        return self.resolver.hosts

    def set_name_servers(self, servers: Iterable[str | tuple[str, int]],
                         search: Iterable[str] | None = None, **options: Any) -> None:
        """Like resolv.conf: ``set_name_servers(["10.0.0.53"], search=["example.test"])``;
        options ``ndots``, ``timeout`` (seconds per try), ``attempts``."""
        self.resolver.configure(servers, search, **options)

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple[Any, Any, int, str, Any]]:
        """``socket.getaddrinfo``, resolved through this stack."""
        self._bind_loop()
        return await self.resolver.getaddrinfo(host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        """``socket.getnameinfo``, resolved through this stack."""
        self._bind_loop()
        return await self.resolver.getnameinfo(sockaddr, flags)

    # --- the driver ---------------------------------------------------------

    def update_time(self) -> float:
        """Set ``host.now`` from the loop clock (before any user call into the core).

        Never backwards: after an early uvloop timer (see ``_on_timer``) the
        host may already be a fraction of a millisecond ahead of the loop.
        (rx.stack_time: each Stack's ``update_time`` is that function bound
        to it, set in __init__; this is what a test that deleted it gets back.)
        """
        return stack_time(self)

    def _bind_clock(self) -> Callable[[], float]:
        """The loop's clock, once bound (here, or by TcpioEventLoop setting
        _loop): update_time's from its first call on."""
        loop = self._loop if self._loop is not None else self.loop
        return _loop_clock(loop)

    def _on_frames(self, ifindex: int, frames: list[bytes]) -> None:
        """A device's batch: each frame processed to completion, then one kick
        (rx.stack_on_frames: the device's callback is that function bound to
        the stack and the interface)."""
        stack_on_frames(self, ifindex, frames)

    def _on_timer(self) -> None:
        """Due timers: ``host.poll(now)`` and a kick, after the input devices
        already hold (``_poll_input``); while that keeps coming, the timers
        wait for it (``_timers_due``), looking again on the next loop
        iteration.  (The receive side's own: its kicks do not ``_softirq``,
        it has just read within net_rx_action's limits.)"""
        self._timer = None
        if self._closed:
            return
        was, self._rx_busy = self._rx_busy, True
        try:
            # _timer_when stays the deadline while the devices are read: a kick
            # after a batch re-arms only if the input moved it
            try:
                waiting = self._poll_input()
            except BaseException:
                # a device's read raised (a pcap wrapper's full disk): the
                # deadline must not stay claimed by a timer no longer armed, or
                # no later kick would arm one again
                self._timer_when = None
                self._end_squeeze()
                if not self._closed:
                    self._rearm()
                raise
            if self._closed or self._timer is not None:
                return          # closed, or re-armed for the deadline the input left
            when = self._timer_when
            due = self._timers_due(waiting, when)
            if due is None:
                # what the input produced (ACKs, data) has gone out with each
                # batch; the timers stay due, looked at again after the loop's
                # other callbacks (a kick in between re-arms if the deadline moves)
                self._timer = self.loop.call_soon(self._on_timer)
                # the prompt ones (TCP's delayed ACKs) do not wait: a look at
                # the wheel's prompt heap alone, nothing per timer held back
                self.host.poll(self.update_time(), _NOTHING_DUE)
                self.kick()
                return
            self._timer_when = None
            now = self.update_time()
            if when is not None and now < when:
                # uvloop's timers have millisecond granularity and can fire a
                # little early: count the deadline as reached instead of spinning.
                now = self.host.now = when
            # the timers due by then (input is read up to then); any due since
            # re-arm the loop timer at once and wait for their own input
            self.host.poll(now, due if due < now else None)
            self.kick()
        finally:
            self._rx_busy = was

    def _poll_input(self) -> list[tuple[int, Any]]:
        """Read what the devices hold (``poll_rx``, within NET_RX_ROUNDS and
        NET_RX_USECS): the devices that still hold frames after it."""
        seconds = NET_RX_USECS * 1e-6
        waiting = []
        for ifindex, dev in list(self.devices.items()):
            poll = getattr(dev, "poll_rx", None)
            if poll is not None and poll(NET_RX_ROUNDS, seconds):
                waiting.append((ifindex, dev))
        return waiting

    def _timers_due(self, waiting: list[tuple[int, Any]], when: float | None) -> float | None:
        """Which due timers may run now, given the input still ``waiting``:
        None (none yet: they wait for it), or those due by the time returned.

        A reader that stops at its budget may hold the very ACK that would
        cancel a timer due now: a loss probe or RTO that overtakes it
        retransmits what was acknowledged (a probe of a FIN the peer, now in
        TIME-WAIT, answers with an ACK, and that a RST from us: issue 11,
        1000 flows).  Reading until the device is empty in one callback
        held the loop for up to 0.73 s when it never emptied (the kernel
        sends more for every batch of ACKs), so the read is bounded and the
        timers wait instead.  The first look that finds input left marks
        where each such device's reading is (``rx_mark``, at loop time
        ``start``); the timers wait until every frame that was waiting then
        has been read (``rx_caught_up``: the device seen empty since, by a
        poll or by its own reader callback in between, or a ring's length
        read), and then those due by ``start`` run: a timer that fell due
        meanwhile waits for the input of its own time, on the next look.
        Nothing waiting: all due run.  At most TIMER_DEFER_MAX: then all due
        run, input or not (counted in ``timers_forced``)."""
        now = self.loop.time()
        start = self._squeeze_since
        marks = self._rx_marks
        if start is None:
            if not waiting:
                return now
            # (not before the deadline: uvloop may call a little early)
            self._squeeze_since = start = now if when is None else max(now, when)
            for ifindex, dev in waiting:
                mark = getattr(dev, "rx_mark", None)
                marks[ifindex] = mark() if mark is not None else None
            behind = True
        else:
            behind = False
            for ifindex, dev in waiting:
                if ifindex in marks:        # else it was empty when they fell due
                    caught_up = getattr(dev, "rx_caught_up", None)
                    if caught_up is None or not caught_up(marks[ifindex]):
                        behind = True
                        break
        stat = self.softnet_stat
        due = start if waiting else now
        if behind:
            if now - start < TIMER_DEFER_MAX:
                stat["timers_deferred"] += 1
                return None
            stat["timers_forced"] += 1
            due = now
        stat["timers_waited_max"] = max(stat["timers_waited_max"], now - start)
        self._end_squeeze()
        return due

    def _end_squeeze(self) -> None:
        self._squeeze_since = None
        self._rx_marks.clear()

    def kick(self) -> None:
        """Flush output to devices, deliver sock wakeups, re-arm the timer
        (rx.stack_kick: each Stack's ``kick`` is that function bound to it,
        set in __init__; this is what a test that deleted it gets back)."""
        stack_kick(self, _KICK_ROUNDS)

    def _wakeup_error(self, sk: Any, exc: Exception) -> None:
        """A sock's wakeup raised (application code): to the loop's handler."""
        self.loop.call_exception_handler({
            "message": "exception in a tcpio socket wakeup", "exception": exc, "socket": sk})

    def _softirq(self) -> None:
        """Input a device left pending, read on the sender's path: Linux runs
        a pending NET_RX softirq when the sending process re-enables bottom
        halves (__local_bh_enable_ip -> do_softirq, on every dev_queue_xmit
        and release_sock), so a process that sends and sends does not keep
        the peers' segments waiting for their ACKs: the softirq reads the
        device (net_rx_action: NET_RX_ROUNDS budgets, NET_RX_USECS) and ACKs
        what arrived before the sender goes on.  Here a kick, after its own
        work, reads the devices whose last read stopped at their budget
        (``_rx_pending``): their batches' output (ACKs, what those ACKs let
        go) goes out at once; their wakeups (the application's callbacks
        and the sends those make) wait for one kick from the loop
        (``_on_rx_wake``: the woken process runs later), so no application
        callback runs inside the caller's write.  Not when the caller is
        itself reading (the devices' batches, the timers' poll), and, as
        Linux hands softirq work that keeps coming to ksoftirqd (a thread
        the scheduler gives a fair share), not again before the loop's
        other work has had as long as this poll took (issue 11: 1000
        handlers' first sends held the loop while the kernel peers' first
        flights waited in the TAP's ring past their RTO)."""
        clock = self._clock
        assert clock is not None        # (bound: a device delivered a batch)
        now = clock()
        stat = self.softnet_stat
        if now < self._softirq_at:
            stat["softirq_deferred"] += 1
            return
        seconds = NET_RX_USECS * 1e-6
        self._rx_busy = self._in_softirq = True
        nread = 0
        try:
            for ifindex, dev in list(self._rx_pending.items()):
                stats = getattr(dev, "stats", None) or {}
                before = stats.get("rx_packets", 0)
                poll = getattr(dev, "poll_rx", None)
                if poll is None or not poll(NET_RX_ROUNDS, seconds):
                    self._rx_pending.pop(ifindex, None)
                nread += stats.get("rx_packets", 0) - before
                if self._closed:
                    return
        finally:
            self._rx_busy = self._in_softirq = False
            end = clock()
            self._softirq_at = end + (end - now)
        stat["softirq_polls"] += 1
        stat["softirq_frames"] += nread
        if self.host._wakeups and self._rx_wake is None:
            self._rx_wake = self.loop.call_soon(self._on_rx_wake)

    def _on_rx_wake(self) -> None:
        """The wakeups ``_softirq``'s batches left: one kick from the loop."""
        self._rx_wake = None
        self.kick()

    def _on_backlog(self) -> None:
        """lo's receive side (the NET_RX softirq's process_backlog): one
        budget of datagrams to ourselves, then a kick; what is left (or what
        the kick's wakeups sent to ourselves) waits for the next iteration."""
        self._backlog_handle = None
        if self._closed:
            return
        self.host.process_backlog(self.update_time())
        self.kick()

    def _transmit(self, out: list[tuple[int, bytes | bytearray]]) -> None:
        devices = self.devices
        if len(out) == 1:
            ifindex, frame = out[0]
            dev = devices.get(ifindex)
            if dev is not None:
                dev.send(frame)
            return
        # One send_batch per device, frames in their original order (most
        # kicks have frames for one device only: its list in one pass)
        # (the one-device test and the frames' list by C iterators: no
        # bytecode per frame, a 1000-flow kick sends hundreds)
        if len(set(map(_IFINDEX, out))) == 1:
            batches = {out[0][0]: list(map(_FRAME, out))}
        else:
            batches = {}
            for ifindex, frame in out:
                batch = batches.get(ifindex)
                if batch is None:
                    batches[ifindex] = [frame]
                else:
                    batch.append(frame)
        interfaces = self.host.interfaces
        for ifindex, frames in batches.items():
            dev = devices.get(ifindex)
            if dev is not None:
                iface = interfaces.get(ifindex)
                if (len(frames) > 1 and iface is not None and iface.gso_max_size
                        and iface.tx_csum_partial):
                    # back-to-back frames of one flow as one super-frame (TSO)
                    joined = coalesce(frames, 14 if iface.link == "ether" else 0,
                                      iface.gso_max_size)
                    self.tx_coalesced += len(frames) - len(joined)
                    dev.send_batch(joined)
                else:
                    dev.send_batch(frames)

    def _rearm(self) -> None:
        """Keep the loop timer armed for ``host.next_deadline()``, lazily.

        A loop timer already armed (by us, with call_at) for a moment before
        the new deadline is left as it is: it fires early, finds the
        deadline gone later (``_on_loop_timer``) and only then arms for it.
        On a connection that answers each segment (request/response, echo)
        the deadline moves later on every segment, the delayed-ACK timer
        and the retransmission timer taking turns, and re-arming exactly
        was two call_at and two cancels per round trip; Linux leaves its
        timers the same way (inet_csk_clear_xmit_timer without
        INET_CSK_CLEAR_TIMERS does not stop the delayed-ACK or
        retransmission timer: it fires and finds nothing pending).  An
        earlier deadline still re-arms at once.

        The deadline asked for is the wheel's O(1) bound
        (``host.deadline_bound``: its heaps' tops as they are, which the
        cancels of each round trip leave stale, so it may be early, never
        late); ``_on_loop_timer`` asks for the exact one when the loop
        timer fires, and that settles the heaps."""
        deadline = self.host.deadline_bound()
        when = self._timer_when
        if deadline == when:
            return
        if self._squeeze_since is not None and (deadline is None or deadline > self.host.now):
            # nothing due any more (the input acknowledged it): no timers wait
            self._end_squeeze()
        timer = self._timer
        if timer is not None:
            if self._timer_lazy and when is not None and (deadline is None or deadline > when):
                return      # fires first; _on_loop_timer arms for the deadline then
            timer.cancel()
            self._timer = None
        self._timer_when = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_loop_timer)
            self._timer_lazy = True

    def _on_loop_timer(self) -> None:
        """The loop timer ``_rearm`` armed: the timers' run (``_on_timer``)
        if the host's deadline is still the one it was armed for (or
        earlier), or has passed anyway; if it has moved later (or gone)
        since, only a timer for it (see ``_rearm``)."""
        self._timer_lazy = False
        if self._closed:
            self._timer = None
            return
        deadline = self.host.next_deadline()
        when = self._timer_when
        if deadline is not None and when is not None and (
                deadline <= when or deadline <= self.loop.time()):
            self._on_timer()
            return
        self._timer = None
        self._timer_when = None
        self._rearm()

    # --- introspection ------------------------------------------------------

    def mib(self) -> dict[str, int]:
        """A snapshot of the host's MIB counters (netstat -s style)."""
        return self.host.mib.snapshot()

    def connections(self, info: bool = False) -> list:
        """TCP sockets like ``ss -tan``: rows of (state, local, remote, recv_q,
        send_q, timer, info), listeners first, then established, request and
        TIME_WAIT entries; ``info``: each full socket's TCP_INFO fields as a
        dict (``tcpi_`` names), else None."""
        tcp = getattr(self.host, "tcp", None)
        return tcp.connections(info) if tcp is not None else []

    def format_connections(self, info: bool = False) -> str:
        """``connections()`` as the table ``ss -tan`` prints; ``info``: each
        connection followed by its TCP_INFO line, like ``ss -ti``."""
        from tcpio.core.tcp.tcp_info import format_ss_info

        rows = self.connections(info)
        lines = [f"{'State':<12}{'Recv-Q':>7}{'Send-Q':>7}  {'Local':<22}{'Peer':<22}Timer"]
        for r in rows:
            lines.append(f"{r.state:<12}{r.recv_q:>7}{r.send_q:>7}  {r.local:<22}"
                         f"{r.remote:<22}{r.timer}")
            if info and r.info is not None and r.state != "LISTEN":
                lines.append("\t " + format_ss_info(r.info))
        return "\n".join(lines)

    def set_trace(self, sink: Callable[[dict[str, Any]], None] | None) -> None:
        """Trace every TCP connection of this stack to ``sink`` (a callable
        taking one event dict, e.g. ``tcpio.trace.JsonLinesWriter``); None
        stops (docs/internals.md, Tracing)."""
        self.host.tcp.set_trace(sink)

    def device_stats(self) -> dict[str, dict[str, int]]:
        """Per-interface counters, like /proc/net/dev (``lo`` first)."""
        stats = {"lo": dict(self.host.lo_stats)}
        stats.update((dev.name, dict(dev.stats)) for dev in self.devices.values())
        return stats

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self.devices)} interfaces"
        return f"<tcpio.Stack {self.host.name!r} {state}>"

    # --- UDP ----------------------------------------------------------------

    async def create_datagram_endpoint(
            self, protocol_factory: Callable[[], asyncio.DatagramProtocol],
            local_addr: tuple[str | None, int] | None = None,
            remote_addr: tuple[str, int] | None = None,
            **kwargs: Any) -> tuple[asyncio.DatagramTransport, asyncio.DatagramProtocol]:
        """Like ``loop.create_datagram_endpoint``: AF_INET, or AF_INET6 with
        ``family=`` or IPv6 addresses."""
        from tcpio.datagram import create_datagram_endpoint, endpoint_family
        from tcpio.socket import sockaddr_in

        self._bind_loop()
        family = endpoint_family(kwargs.pop("family", 0), local_addr, remote_addr)
        # The socket module's argument errors first (TypeError for a
        # non-tuple...), then names; the port range is checked after.
        if local_addr is not None:
            host, port, _ = sockaddr_in(family, local_addr, "bind")
            local_addr = await self.resolver.resolve_address(
                (host, port, *local_addr[2:]), _socket.SOCK_DGRAM, family)
        if remote_addr is not None:
            host, port, _ = sockaddr_in(family, remote_addr, "connect")
            remote_addr = await self.resolver.resolve_address(
                (host, port, *remote_addr[2:]), _socket.SOCK_DGRAM, family)
        transport, protocol = create_datagram_endpoint(
            self, protocol_factory, local_addr=local_addr, remote_addr=remote_addr,
            family=family, **kwargs)
        self._endpoints.add(transport)
        return transport, protocol

    def _forget_endpoint(self, transport: UdpTransport) -> None:
        self._endpoints.discard(transport)

    # --- ICMP echo ------------------------------------------------------------

    async def ping(self, host: str, data: bytes = b"", *, timeout: float = 1.0,
                   df: bool = False) -> float:
        """Send one ICMP echo request; return the round-trip time in seconds.

        Raises ``TimeoutError`` without a reply, or the OSError an ICMP error
        about the request maps to (e.g. EHOSTUNREACH when ARP fails).  An
        IPv6 address is pinged with ICMPv6 ("fe80::1%2": the interface's
        index as the scope).
        """
        v6 = ":" in host
        if v6:
            text, _, scope = host.partition("%")
            dst6 = _parse_ip6(text)
            ifindex = int(scope) if scope else None
        else:
            dst = _parse_ip(host)
        self._ping_seq = seq = (self._ping_seq + 1) & 0xFFFF
        key = (self._ping_ident, seq)
        fut: asyncio.Future[float] = self.loop.create_future()
        self._pings[key] = (fut, bytes(data))
        t0 = self.update_time()
        try:
            try:
                if v6:
                    self.host.icmp6.echo_request(dst6, key[0], seq, bytes(data),
                                                 ifindex=ifindex)
                else:
                    self.host.icmp.echo_request(dst, key[0], seq, bytes(data), df=df)
            finally:
                self.kick()
            return await asyncio.wait_for(fut, timeout) - t0
        finally:
            self._pings.pop(key, None)

    def _on_icmp_wakeup(self) -> None:
        for icmp in (self.host.icmp, self.host.icmp6):
            self._settle_pings(icmp)

    def _settle_pings(self, icmp: Any) -> None:
        pings = self._pings
        while icmp.echo_replies:
            reply = icmp.echo_replies.popleft()
            entry = pings.get((reply.ident, reply.seq))
            if entry is not None and not entry[0].done() and reply.data == entry[1]:
                entry[0].set_result(reply.time)
        while icmp.errors:
            err = icmp.errors.popleft()
            entry = pings.get((err.ident, err.seq))
            if entry is not None and not entry[0].done():
                entry[0].set_exception(sock_error(err.errno, f"ICMP type {err.type} "
                                                             f"code {err.code}"))

    # --- TCP: thin doors into the modules that implement them ----------------

    async def open_connection(self, host: str | None = None, port: int | None = None,
                              **kw: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        from tcpio.streams import open_connection
        return await open_connection(self, host, port, **kw)

    async def start_server(self, client_connected_cb: Callable[..., Any],
                           host: str | None = None, port: int | None = None,
                           **kw: Any) -> Server:
        from tcpio.streams import start_server
        return await start_server(self, client_connected_cb, host, port, **kw)

    async def create_connection(self, protocol_factory: Callable[[], _ProtocolT],
                                host: str | None = None, port: int | None = None,
                                **kw: Any) -> tuple[asyncio.Transport, _ProtocolT]:
        from tcpio.transports import create_connection
        return await create_connection(self, protocol_factory, host, port, **kw)

    async def create_server(self, protocol_factory: Callable[[], asyncio.BaseProtocol],
                            host: str | Iterable[str] | None = None, port: int | None = None,
                            **kw: Any) -> Server:
        from tcpio.server import create_server
        return await create_server(self, protocol_factory, host, port, **kw)

    # --- transparent forwarding (tcpio/forward.py, issue 18) ---------------------

    def set_tcp_forwarder(self, callback: Callable[[Any], Any] | None, ifindex: int,
                          **limits: Any) -> Any:
        """Terminate TCP to *any* address arriving on ``ifindex``: each SYN to a
        non-local destination is a ``tcpio.forward.TcpForwardRequest`` for
        ``callback`` (accept -> streams, refuse -> RST, drop); limits
        ``max_pending``, ``max_connections``, ``backlog``, ``pending_timeout``.
        None removes it.  Returns the forwarder's handle (``stats``)."""
        from tcpio.forward import set_tcp_forwarder
        return set_tcp_forwarder(self, callback, ifindex, **limits)

    def set_udp_forwarder(self, callback: Callable[[Any], Any] | None, ifindex: int,
                          **limits: Any) -> Any:
        """UDP to any address arriving on ``ifindex``, as sessions by 4-tuple
        (``tcpio.forward.UdpForwardSession`` for ``callback``); limits
        ``idle_timeout``, ``max_sessions``.  None removes it."""
        from tcpio.forward import set_udp_forwarder
        return set_udp_forwarder(self, callback, ifindex, **limits)

    def set_icmp_echo_any(self, ifindex: int, on: bool = True) -> None:
        """Answer ICMP and ICMPv6 echo requests to *any* address arriving on
        ``ifindex`` (from that address), as a forwarder's network expects
        ping to work."""
        from tcpio.core.in_h import IPPROTO_ICMP, IPPROTO_ICMPV6
        self.host.set_tproxy(ifindex, IPPROTO_ICMP, self.host.icmp if on else None)
        self.host.set_tproxy(ifindex, IPPROTO_ICMPV6, self.host.icmp6 if on else None)

    @overload
    def socket(  # type: ignore[overload-overlap]  # SOCK_RAW is an int too
            self, type: Literal[_socket.SocketKind.SOCK_RAW], proto: int = 0, /) -> RawSocket: ...

    @overload
    def socket(self, *args: int, family: int | None = None, type: int | None = None,
               proto: int | None = None) -> Socket: ...

    def socket(self, *args: int, family: int | None = None, type: int | None = None,
               proto: int | None = None) -> Socket | RawSocket:
        """A ``tcpio.Socket``: ``socket(SOCK_STREAM[, proto], family=AF_INET6)``
        (tcpio's form, IPv4 by default) or ``socket(AF_INET6, SOCK_DGRAM[,
        proto])`` (the socket module's order).  The two forms are told apart
        as only they can be: a first argument of AF_INET6, or AF_INET
        followed by a socket type, is a family (AF_INET is 2, as SOCK_DGRAM
        is, but no protocol of UDP or TCP is 1 or 2).  ``SOCK_RAW`` (IPv4
        only) gives a ``tcpio.rawsocket.RawSocket`` for protocol ``proto``."""
        from tcpio.socket import AF_INET, AF_INET6, SOCK_DGRAM, SOCK_STREAM, Socket
        if len(args) > 3:
            raise TypeError("socket() takes at most 3 arguments")
        if args and (args[0] == AF_INET6 or (
                args[0] == AF_INET and len(args) >= 2 and args[1] in (SOCK_STREAM, SOCK_DGRAM))):
            fam, typ, prt = (*args, None, None)[:3]
        else:
            if len(args) > 2:
                raise TypeError("socket(type, proto): the family goes first or as family=")
            fam, typ, prt = None, *(*args, None, None)[:2]
        family = family if family is not None else (fam if fam is not None else AF_INET)
        type = type if type is not None else (typ if typ is not None else SOCK_STREAM)
        proto = proto if proto is not None else (prt or 0)
        if type == _socket.SOCK_RAW:
            from tcpio.rawsocket import RawSocket
            if family != AF_INET:
                raise sock_error(errno.EAFNOSUPPORT)
            return RawSocket(self, proto)
        return Socket(self, type, proto=proto, family=family)


def _loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """What ``loop.time()`` reads, as a function to call: ``time.monotonic``
    itself for asyncio's own loops (their ``time()`` is a Python method that
    calls it: one frame fewer per call, two per echo round trip), else the
    loop's bound ``time`` (uvloop's, a test's virtual clock, a patched one)."""
    if (getattr(type(loop), "time", None) is asyncio.BaseEventLoop.time
            and "time" not in getattr(loop, "__dict__", {})):
        return time.monotonic
    return loop.time


def _parse_ip(text: str) -> int:
    try:
        return ip_aton(text)
    except ValueError:
        raise sock_error(errno.EINVAL, f"not an IPv4 address: {text!r}") from None


def _parse_ip6(text: str) -> int:
    try:
        return ip6_aton(text)
    except ValueError:
        raise sock_error(errno.EINVAL, f"not an IPv6 address: {text!r}") from None


def _parse_cidr6(text: str) -> tuple[int, int]:
    try:
        return parse_cidr6(text)
    except ValueError:
        raise sock_error(errno.EINVAL, f"not an IPv6 prefix: {text!r}") from None


def _parse_cidr(text: str) -> tuple[int, int]:
    try:
        return parse_cidr(text)
    except ValueError:
        raise sock_error(errno.EINVAL, f"not an IPv4 prefix: {text!r}") from None
