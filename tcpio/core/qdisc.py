"""A bounded transmit queue per interface (Linux's pfifo_fast and txqueuelen).

The sans-IO host hands every frame to its driver at once (``take_output``),
so without this nothing could ever be "full": a device that cannot take
more (a TAP whose fd says EAGAIN, a wire whose ring is full) could only drop
what it was given, and a UDP sender would never hear ENOBUFS.  Linux puts
the interface's qdisc between the two: while the driver has stopped the
queue (``netif_stop_queue``, its ring is full), frames wait in the qdisc, up
to ``txqueuelen`` of them (pfifo_fast's limit, 1000 by default for an
Ethernet device); a frame beyond that is dropped (``qdisc_drop``, counted)
and ``dev_queue_xmit`` says so (NET_XMIT_DROP, which ``net_xmit_errno``
makes ENOBUFS).  When the driver has room again (``netif_wake_queue``) the
backlog goes out in order (``qdisc_run``).

Here:

* ``Qdisc``: the queue of one interface (``limit``, the backlog, and the
  ``tc -s qdisc`` counters ``drops``/``requeues``/``sent``).
* ``NetifQueue``: what a device gets (``device.attach_netif(netif)``): its
  side of the queue.  ``stop()``/``wake()`` are netif_stop_queue and
  netif_wake_queue; ``requeue(frame)`` is dev_requeue_skb for a frame the
  driver was given but has no room for (the host's frames of one flush reach
  the device together, so the device may fill in the middle of them);
  ``stopped`` is netif_xmit_stopped.
* The host (``Host.xmit``) puts a frame for a stopped interface in its
  qdisc, and answers as dev_queue_xmit does: ``NET_XMIT_SUCCESS``, or
  ``NET_XMIT_DROP`` when the qdisc is full (``host.qdisc_drops`` counts it,
  a statistic only), or whatever else its ``enqueue`` says (``NET_XMIT_CN``
  from a queue that marks: queued, but slow down).  ``Host.take_output`` moves frames for a stopped
  interface that were queued before it stopped, or by TCP's compiled send
  loop (which appends to the host's transmit list itself), into the qdisc
  too (``hold``: they were admitted, so they are not dropped), and nothing
  reaches a stopped device.

The answer goes back up the way it does in Linux: ``Host.xmit`` (and
``ether_xmit``) -> ``neigh_output`` / the neighbour table's ``output``
(ip_finish_output2, neigh_output) -> ``ip_output`` / ``ip6_output``
(ip_local_out: a fragment refused stops the rest, FragFails) ->
``ip_queue_xmit_tcp`` and ``Host.ip_output``, to the sender, which acts on
it: udp_send_skb (``net_xmit_errno``: ENOBUFS only with IP_RECVERR, else
the datagram is silently lost and counted), raw_sendmsg the same, and TCP's
tcp_transmit_skb as __tcp_transmit_skb: any positive status enters CWR
(tcp_enter_cwr: cwnd reduced once, no loss counted), for a pure ACK too,
and ``net_xmit_eval`` decides whether the segment counts as sent (a refused
one is kept: new data unsent, a retransmission unmarked, for its ACKs and
timers to send again); while the queue is stopped TCP's compiled send loop
is not used (``netif_xmit_stopped``), so every segment hears the answer.
A neighbour solicitation that a packet's output triggers is a frame of its
own whose answer nobody reads (arp_xmit's is ignored in Linux): the
packet's status is its own frame's, or success when it waits for the
neighbour to resolve (neigh_resolve_output queues it).

A device that never calls ``stop()`` sees no difference: its qdisc never
holds anything.  The TAP stops its queue only when the tun fd says EAGAIN or
ENOBUFS (rare: the kernel takes a written frame at once) and wakes it when
the fd is writable again.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from tcpio.core.errors import sock_error

# DEFAULT_TX_QUEUE_LEN (ether_setup): pfifo_fast's limit unless told otherwise.
DEFAULT_TX_QUEUE_LEN = 1000

# dev_queue_xmit's answer (include/linux/netdevice.h), which every output
# function returns up to the sender: the frame was queued (or sent), dropped,
# or queued with a congestion notification (a qdisc that marks; none of
# tcpio's does yet, but the senders handle it as Linux's do).
NET_XMIT_SUCCESS = 0x00
NET_XMIT_DROP = 0x01
NET_XMIT_CN = 0x02

Frame = bytes | bytearray


def net_xmit_eval(rc: int) -> int:
    """net_xmit_eval: a congestion notification is no error (the packet went)."""
    return NET_XMIT_SUCCESS if rc == NET_XMIT_CN else rc


def net_xmit_errno(rc: int) -> int:
    """net_xmit_errno for an output's status: ENOBUFS for a drop, 0 when the
    packet went (NET_XMIT_SUCCESS, NET_XMIT_CN)."""
    return 0 if rc == NET_XMIT_SUCCESS or rc == NET_XMIT_CN else errno.ENOBUFS


def xmit_dropped(mib: Any, n: int, recverr: bool, counters: tuple[str, ...]) -> int:
    """A socket's datagram was refused (its output returned a status that
    ``net_xmit_errno`` makes ENOBUFS): ip_send_skb's OutDiscards and the
    protocol's own counters (``counters``), then ENOBUFS only for a socket
    with IP_RECVERR (IPV6_RECVERR for IPv6) as udp_send_skb and raw_sendmsg
    have it; otherwise the datagram is silently lost and the send returns ``n``."""
    for name in counters:
        mib[name] += 1
    if recverr:
        raise sock_error(errno.ENOBUFS, "the interface's transmit queue is full")
    return n


class Qdisc:
    """One interface's queue: a FIFO of at most ``limit`` frames (pfifo_fast
    with one band: tcpio does not look at the TOS)."""

    __slots__ = ("backlog", "drops", "ifindex", "limit", "requeues", "sent", "stopped")

    def __init__(self, ifindex: int, limit: int = DEFAULT_TX_QUEUE_LEN) -> None:
        self.ifindex = ifindex
        self.limit = limit
        self.backlog: deque[Frame] = deque()
        self.stopped = False            # __QUEUE_STATE_DRV_XOFF: the driver is full
        self.drops = 0                  # tc -s qdisc: dropped
        self.requeues = 0               # ... requeues (frames a full driver gave back)
        self.sent = 0                   # ... frames released to the driver (again after a requeue)

    def enqueue(self, frame: Frame) -> int:
        """pfifo_fast_enqueue: NET_XMIT_DROP (qdisc_drop, counted) when
        ``limit`` frames wait, else NET_XMIT_SUCCESS."""
        if len(self.backlog) >= self.limit:
            self.drops += 1
            return NET_XMIT_DROP
        self.backlog.append(frame)
        return NET_XMIT_SUCCESS

    def hold(self, frame: Frame) -> None:
        """A frame the queue had already let through (the driver stopped
        before it took it) waits at the tail, whatever the backlog: the limit
        is for admission (``enqueue``), as Linux's dev_requeue_skb keeps a
        requeued skb outside pfifo_fast's count; nothing admitted is lost."""
        self.backlog.append(frame)

    def reset(self) -> None:
        """qdisc_reset (the link went down): the backlog is forgotten, not counted."""
        self.backlog.clear()

    def stats(self) -> dict[str, int]:
        """``tc -s qdisc show dev IF``'s numbers."""
        return {"limit": self.limit, "backlog": len(self.backlog), "dropped": self.drops,
                "requeues": self.requeues, "sent": self.sent,
                "stopped": int(self.stopped)}

    def __repr__(self) -> str:
        return (f"Qdisc(if={self.ifindex}, limit={self.limit}, backlog={len(self.backlog)}, "
                f"drops={self.drops}{', stopped' if self.stopped else ''})")


class NetifQueue:
    """A device's handle on its interface's queue (``attach_netif``)."""

    __slots__ = ("_host", "kick", "qdisc")

    def __init__(self, host: QdiscHost, qdisc: Qdisc,
                 kick: Callable[[], None] | None = None) -> None:
        self._host = host
        self.qdisc = qdisc
        # The driver's flush (Stack.kick): called after a wake, so the backlog
        # the host released reaches the device.
        self.kick = kick

    @property
    def stopped(self) -> bool:
        """netif_xmit_stopped."""
        return self.qdisc.stopped

    def stop(self) -> None:
        """netif_stop_queue: the device has no room; frames wait in the qdisc."""
        if not self.qdisc.stopped:
            self.qdisc.stopped = True
            self._host.netif_stopped(self.qdisc, True)

    def wake(self) -> None:
        """netif_wake_queue: the device has room again; the backlog goes out
        in order (qdisc_run), then the driver flushes."""
        q = self.qdisc
        if not q.stopped:
            return
        q.stopped = False
        self._host.netif_stopped(q, False)
        if q.backlog:
            q.sent += len(q.backlog)
            self._host.release_backlog(q.ifindex, q.backlog)
            q.backlog.clear()
        if self.kick is not None:
            self.kick()

    def requeue(self, frame: Frame) -> None:
        """dev_requeue_skb: a frame the device was given after it stopped goes
        back to the qdisc's tail (order kept: every later frame of the flush
        follows it there).  It had passed the queue already, so it is never
        dropped (Qdisc.hold)."""
        q = self.qdisc
        q.requeues += 1
        q.hold(frame)


class QdiscHost(Protocol):
    """What NetifQueue needs of the host (Host has it)."""

    def netif_stopped(self, qdisc: Qdisc, stopped: bool) -> None:
        """The driver stopped (True) or woke (False) ``qdisc``'s interface."""
        ...

    def release_backlog(self, ifindex: int, frames: deque[Frame]) -> None:
        """qdisc_run: ``frames`` (in order) go to the driver with the next flush."""
        ...
