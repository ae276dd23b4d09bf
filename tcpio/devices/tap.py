"""Linux TAP and TUN devices (``/dev/net/tun``) for the asyncio driver.

``TapDevice("tap0")`` creates (or attaches to) a kernel interface that carries
Ethernet frames; tcpio is the host at the far end of that virtual cable, with
its own MAC.  ``TunDevice("tun0")`` carries bare IPv4 datagrams (no Ethernet,
no ARP).  Both use IFF_NO_PI, so a read returns exactly one frame.

Receiving: one ``loop.add_reader`` callback reads until EAGAIN (at most
``budget`` frames, so one busy device cannot starve the loop) and hands the
whole batch to ``on_frames``; given an ``RxShare`` with a ``cap`` (off by
default: see its doc), the flows' reader then reads further budgets, each
its own batch, for as long as the loop's other work took since it last read
or until EAGAIN (issue 11).  Reading one frame per wake-up costs 4x
in loop overhead (FIELD-NOTES.md).  A TAP gives one frame per read and takes one per
write, so the reads of a batch, and the writes of one, are each one compiled
call (``_fast.devio.FrameIO``: no Python per frame around the syscall).

Queue: the kernel queues frames for us on the interface's tx queue (the
tun driver's ring is ``txqueuelen`` frames long) and drops what does not fit
while Python works through a batch.  The kernel's default is 1000 frames,
which overflows with ten busy flows (FIELD-NOTES.md: 8186 drops); the devices
set ``txqueuelen`` (default ``DEFAULT_TXQUEUELEN``) when they create or
attach.  ``kernel_counters()`` reads the kernel's own counters for the
interface (its ``tx_dropped`` is what it dropped on the way to us).

Sending: written straight away, one write(2) per frame.  A frame the kernel
will not take right now is never an exception: on EAGAIN/ENOBUFS (the tun
socket's sndbuf is spent) the device stops its interface's queue
(``attach_netif``; the frames not written wait in the qdisc,
docs/internals.md "Interface state") and watches the fd for room, then
wakes it; without a queue, and for EIO while the link is down (the kernel
refuses writes then), it is a counted drop.  ``tx_thread=True`` (off by
default): the writes go from a thread of the device's own (``TxWriter``,
the GIL released for each batch), in order, so the kernel's receive of each
frame, which runs inside its write(2), runs beside the loop instead of in
it; the loop then waits only when the thread is ``MAX_PENDING`` frames
behind, and a full queue is waited out in the thread.

A queue for connection requests: the device opens with IFF_MULTI_QUEUE and
a second fd, and an eBPF steering program (devices/tun_steering.py) makes
the kernel put TCP SYNs on the second queue and everything else on the
first, so a SYN flood fills a ring of its own and no longer drops the
established flows' frames with its SYNs.  The SYN queue is read at most
``syn_budget`` frames per wake-up, and while a flood keeps it backlogged
only with its share of the loop's time (``SynShare``: established traffic
first; the SYNs it leaves overflow the kernel's ring, the TAP's
tx_dropped).  A SYN sent again (the same request: a client's
retransmission) is steered to the flows' queue instead, up to a budget
(tun_steering's ``seen`` map; ``device.syn_retrans``), so a real client
whose first SYN the flood's ring dropped gets its answer to the second.
``syn_queue=None`` (the default) uses it
when tcpio creates the interface (TUNSETIFF with IFF_TUN_EXCL) and attaches
to an existing one as it was made; ``True`` asks for it on an existing
interface too, ``False`` never.  A multi-queue interface would let a second
process attach as one more queue where a single-queue one answers EBUSY, so
an interface tcpio made multi-queue and still holds (not persistent) answers
a second opener with EBUSY too.  ``device.syn_queue`` says whether the
kernel took it (False where it refused the program, with the reason in
``device.syn_queue_error`` when it was asked for).

Offloads (``offloads=True``, the default): the device is opened with
IFF_VNET_HDR, so a virtio-net header (devices/virtio_net.py) travels in front
of every frame both ways, and TUNSETOFFLOAD tells the kernel what we take:
partial checksums (TUN_F_CSUM), TCP super-frames of up to 64 KiB (TSO4/6) and
UDP ones (USO4/6), each bit dropped in turn if the kernel refuses it.
``device.offloads`` is the TUN_F_* mask the kernel accepted (0: none;
``offloads=False`` asks for nothing and opens without the header).  The
kernel then hands us its TCP data as it built it, up to 64 KiB at a time (its
GSO is not run for us): such a frame goes to the host whole, like GRO's
aggregate, as a ``GsoFrame`` carrying the segments it stands for (TCP counts
and measures it as those), with its checksum completed (a partial one is
finished here, as skb_checksum_help would) and marked valid so the host does
not sum it again (rx.vnet_rx, compiled); a UDP super-frame is cut into its
datagrams.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from tcpio import _fast
from tcpio.devices import tun_steering
from tcpio.devices import virtio_net as vnet
from tcpio.devices.base import Link, OnFrames, max_frame_len, new_stats, random_mac

if TYPE_CHECKING:
    from tcpio._fast.devio_py import FrameIO
    from tcpio.core.qdisc import NetifQueue

_clock = time.perf_counter

# Budgets one poll_rx reads at most (unless its time limit stops it first).
POLL_RX_ROUNDS = 64

# <linux/if_tun.h>, <linux/sockios.h>
TUNSETIFF = 0x400454CA
TUNGETIFF = 0x800454D2
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_PERSIST = 0x0800
IFF_NO_PI = 0x1000
IFF_TUN_EXCL = 0x8000       # TUNSETIFF: EBUSY if the interface already exists
SIOCGIFMTU = 0x8921
SIOCSIFMTU = 0x8922
SIOCGIFTXQLEN = 0x8942
SIOCSIFTXQLEN = 0x8943
IFNAMSIZ = 16

# Frames the kernel may queue for us.  20 000 removed the drops in the
# measurements of FIELD-NOTES.md; a full queue of MTU-sized frames is tens of
# MB at worst, and only while tcpio falls behind.  Swept again with offloads
# on (benchmarks/README.md, "The TAP's ring length"): below 10 000 the ring
# drops 1000 kernel flows' tails (kernel RTOs, 4-29% of 1 flow), 15 000 to
# 40 000 are alike (no drops, ~50%); 1 and 100 flows do not care.
DEFAULT_TXQUEUELEN = 20000

# What offloads=True asks for, most first; refused bits are dropped in this order.
DEFAULT_OFFLOADS = (vnet.TUN_F_CSUM | vnet.TUN_F_TSO4 | vnet.TUN_F_TSO6
                    | vnet.TUN_F_USO4 | vnet.TUN_F_USO6)
_KNOWN_OFFLOADS = (vnet.TUN_F_CSUM | vnet.TUN_F_TSO4 | vnet.TUN_F_TSO6 | vnet.TUN_F_TSO_ECN
                   | vnet.TUN_F_UFO | vnet.TUN_F_USO4 | vnet.TUN_F_USO6)
_DROP_ORDER = (~_KNOWN_OFFLOADS, vnet.TUN_F_USO4 | vnet.TUN_F_USO6, vnet.TUN_F_UFO, vnet.TUN_F_TSO_ECN,
               vnet.TUN_F_TSO6, vnet.TUN_F_TSO4, vnet.TUN_F_CSUM)
# A super-frame: an IP datagram of up to 64 KiB behind the link header.
_GSO_FRAME_MAX = 0xFFFF + 14 + 4

# The frame behind a virtio-net header, compiled (one call per offloaded frame).
_vnet_rx = _fast.load("rx").vnet_rx
# The flagged frames (no GSO) small enough that vnet_rx hands them up as
# plain bytes: the read loop completes their checksums itself (FrameIO.read's
# ``small``), no _rx_offloaded call per frame (every frame of a handshake
# and close from the kernel's own stack has a partial checksum).
_RX_SMALL = _fast.load("rx").RX_FLAGGED_MIN
# _rx_offloaded's header tests, as globals (a frame the kernel hands with a
# partial checksum, every echo's, looks at both)
_NEEDS_CSUM = vnet.VIRTIO_NET_HDR_F_NEEDS_CSUM
_NOT_GSO_ECN = ~vnet.VIRTIO_NET_HDR_GSO_ECN
# The fd's read and write loops, compiled (one call per batch each way).
_FrameIO = _fast.load("devio").FrameIO

# Write errors that mean "the link cannot take this frame now": count, drop.
_DROP_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS, errno.EIO, errno.ENETDOWN,
                          errno.EMSGSIZE, errno.EINVAL, errno.EBADF})
# ... of those, "no room now, later": with a queue attached, the frames wait.
_FULL_ERRNOS = frozenset({errno.EAGAIN, errno.ENOBUFS})


def _ifreq(name: str, value: int, fmt: str) -> bytes:
    raw = name.encode()
    if not raw or len(raw) >= IFNAMSIZ:
        raise OSError(errno.EINVAL, f"interface name must be 1..15 bytes: {name!r}")
    return struct.pack(f"{IFNAMSIZ}s{fmt}", raw, value).ljust(40, b"\0")


_PROC_NET_DEV_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped", "rx_fifo",
                        "rx_frame", "rx_compressed", "rx_multicast",
                        "tx_bytes", "tx_packets", "tx_errors", "tx_dropped", "tx_fifo",
                        "tx_colls", "tx_carrier", "tx_compressed")


def read_proc_net_dev(ifname: str, path: str = "/proc/thread-self/net/dev") -> dict[str, int] | None:
    """One interface's line of /proc/net/dev (the reading thread's network
    namespace) as a dict, or None when it is not there."""
    with open(path) as f:
        for line in f.readlines()[2:]:
            name, sep, rest = line.partition(":")
            if sep and name.strip() == ifname:
                return dict(zip(_PROC_NET_DEV_FIELDS, map(int, rest.split())))
    return None


def new_gso_stats() -> dict[str, int]:
    """A TAP/TUN device's offload counters (``gso_stats``), all zero: frames
    that came or went as super-frames and the segments they stood for, and
    the partial checksums completed on receive."""
    return dict.fromkeys(("rx_gso_frames", "rx_gso_segs", "rx_csum_partial",
                          "tx_gso_frames", "tx_gso_segs"), 0)


class SynShare:
    """The SYN queue's share of the device's read loop (issue 13).

    Established traffic first: while the flows' queue carries frames, the
    SYN queue is read only with the time it has earned, ``share`` of the
    wall clock (a token bucket of seconds, at most ``burst`` saved up), so
    a flood that always has SYNs waiting takes at most that share of the
    loop and the flows keep the rest.  A SYN turn reads as many SYNs as
    the credit pays for at the measured cost of one (``cost_syn``: the
    read, the cookie and the SYN-ACK's write, an average over recent
    turns), at most ``batch``; what it really took is charged.  Without
    credit for ``min_batch`` SYNs (and a bucket not yet full) the turn is
    put off (``wait()`` says how long) rather than read a few SYNs per loop
    iteration: the queue's SYNs wait in the kernel's ring, whose overflow
    the kernel drops and counts (the TAP's tx_dropped), as Linux's backlog
    drops before the listener.
    Only a SYN queue that stays backlogged, every turn stopping at its
    budget for ``grace`` seconds and more, is held to its share: a flood
    keeps it so, while a burst of real connections (a thousand clients at
    once, each SYN a request sock) is read a whole ``batch`` a turn until
    it is through, so their SYNs do not wait in the ring past the peers'
    retransmission (a late duplicate SYN of a connection already gone gets
    a SYN-ACK, the peer's ACK to that a RST).  Any turn while the flows'
    queue has had nothing for ``idle`` seconds reads a whole batch too
    (nothing to protect).
    A flood is also what overflows the listeners: given ``overflowed`` (a
    count of the SYNs the host's listeners could not queue, the Stack wires
    ListenDrops + TCPReqQFullDoCookies), the share holds a backlogged queue
    only while that count has grown within the last ``grace`` seconds.  A
    burst of real connections that the listeners' queues take (a thousand
    kernel clients at once behind a busy flows' queue: more than ``grace``
    to read, and held to the share they waited past the kernel's 1 s SYN
    retransmission: issue 11) is read a whole batch a turn to its end.

    The defaults (a 0.15 share, turns of at least 32 SYNs) are what
    benchmarks/bench_flood.py measured best for the flows with every new
    connection still made (benchmarks/README.md); fewer SYNs a turn cost
    more each (the turn's fixed work).  A smaller share leaves the
    legitimate first SYNs fewer free places in the kernel's ring, but only
    their first SYNs: the steering program sends a retransmitted SYN to the
    flows' queue (tun_steering), so a client whose first SYN the ring
    dropped is answered on its retransmission, 1 s later, whatever the
    share.  Under hping3's full flood (~170 000 SYN/s) a 0.3 share kept the
    flows at 47 % of their throughput, 0.15 at 62 %, 0.1 at 64 % with
    almost no first SYN answered (1 in 50, against 7 in 50 at 0.15).

    A SYN the ring takes waits there ring length / read rate: 20 000
    frames read at a starved loop's 5 000 SYN/s is 4 s, past a client's
    connect() (bench_flood --trace-legit: on a loaded machine most failed
    connections had their SYNs read, too late).  ``max_wait`` (seconds,
    None: off) bounds that wait while a flood holds the queue to its share:
    ``ring_len`` is then what the SYN queue reads in ``max_wait`` at its
    recent rate (``rate``, frames per second of wall clock over at least
    ``rate_window``), at least ``ring_floor``, at most the configured
    length, which the device sets as the TAP's txqueuelen once as the flood
    begins (the kernel gives every queue of a tun device that one length,
    the flows' too; a change is dear, see ``_syn_ring``) and restores when
    it ends.

    The rules are pure arithmetic on the times given (``now``: the loop
    clock, ``seconds``: what a turn took), so tests drive them with a
    virtual clock; the device feeds them from time.perf_counter.  Counters:
    frames and seconds per queue (``syn_frames``/``syn_time``,
    ``est_frames``/``est_time``: the flows' queue's only while the device
    times it, ``times_flows``, i.e. while the SYN queue is backlogged),
    SYN turns taken and put off.
    """

    def __init__(self, share: float = 0.15, batch: int = 64, min_batch: int = 32,
                 burst: float = 0.002, idle: float = 0.05, grace: float = 0.2,
                 alpha: float = 0.25, overflowed: Callable[[], int] | None = None,
                 max_wait: float | None = None, ring_floor: int = 1000,
                 rate_window: float = 0.25) -> None:
        if not 0.0 < share <= 1.0:
            raise ValueError("share must be in (0, 1]")
        if batch < 1 or not 1 <= min_batch <= batch:
            raise ValueError("batch >= 1 and 1 <= min_batch <= batch")
        if (max_wait is not None and max_wait <= 0.0) or ring_floor < 1 or rate_window <= 0.0:
            raise ValueError("max_wait > 0 (or None), ring_floor >= 1, rate_window > 0")
        self.max_wait = max_wait
        self.ring_floor = ring_floor
        self.rate_window = rate_window
        self.rate = 0.0             # SYNs read per second of wall clock, recently
        self._rate_at: float | None = None      # where the rate's window began:
        self._rate_frames = 0                   # when, and syn_frames then
        self.held = False           # the last turn was held to the share (a flood)
        self.share = share
        self.batch = batch
        self.min_batch = min_batch
        self.burst = burst
        self.idle = idle
        self.grace = grace
        self.alpha = alpha
        self.credit = burst         # seconds of SYN work earned
        self.last: float | None = None     # when credit was last earned
        self.last_est = float("-inf")      # when the flows' queue last had frames
        self.cost_syn = 0.0         # seconds per SYN (0: not measured yet)
        self.cost_est = 0.0         # seconds per frame of the flows' queue
        self.syn_frames = self.est_frames = 0
        self.syn_time = self.est_time = 0.0
        self.turns = self.deferred = 0
        # since when every turn stopped at its budget (None: the last one did not)
        self.backlog_since: float | None = None
        # the listeners' overflow count (None: not wired, every backlog is a flood),
        # its last value seen and when it last grew
        self.overflowed = overflowed
        self.overflow_seen: int | None = None
        self.overflow_at = float("-inf")
        # the device times the flows' reads for est_done only while this
        # says so (_update_times_flows): the clock reads stay off an echo's path
        self.times_flows = False
        self._update_times_flows()

    def _update_times_flows(self) -> None:
        """``times_flows``: must the flows' reads be timed (est_done) now?
        ``budget`` looks at them (``flows_busy``: the last ``idle`` seconds)
        only on a turn held to the share, which needs a SYN queue backlogged
        for ``grace`` seconds: while it is backlogged, then, unless
        ``grace`` < ``idle`` (a held turn looks back past the backlog's
        start: always).  Kept by ``syn_done``; after changing ``grace`` or
        ``idle`` call this.  The est_* counters count those reads only."""
        self.times_flows = self.backlog_since is not None or self.grace < self.idle

    def flooding(self, now: float) -> bool:
        """The listeners overflowed within the last ``grace`` seconds (always
        True without ``overflowed``)."""
        count = self.overflowed
        if count is None:
            return True
        n, seen = count(), self.overflow_seen
        if n != seen:
            self.overflow_seen = n
            if seen is not None:        # the first look only sets the baseline
                self.overflow_at = now
        return now - self.overflow_at < self.grace

    def flows_busy(self, now: float) -> bool:
        """The flows' queue had frames in the last ``idle`` seconds."""
        return now - self.last_est < self.idle

    def budget(self, now: float) -> int:
        """SYNs a turn at ``now`` may read: 0 puts the turn off (see wait)."""
        # the credit earned since the last turn (once per SYN turn: inline)
        last = self.last
        if last is None:
            self.last = now
        elif now > last:
            self.credit = min(self.burst, self.credit + (now - last) * self.share)
            self.last = now
        flood = self.flooding(now)      # every turn: when the count grew is then known
        since = self.backlog_since
        self.held = since is not None and now - since >= self.grace and flood
        if not self.held or not self.flows_busy(now) or self.cost_syn <= 0.0:
            return self.batch
        n = int(self.credit / self.cost_syn) if self.credit > 0 else 0
        if n < self.min_batch and self.credit < self.burst:
            self.deferred += 1
            return 0
        return max(1, min(n, self.batch))

    def wait(self) -> float:
        """Seconds until the credit pays for ``min_batch`` SYNs, or fills the
        bucket when that is less (a SYN dearer than ``burst / min_batch``,
        a real handshake's, gets a turn of one with a full bucket); 0: now."""
        need = min(self.min_batch * self.cost_syn, self.burst) - self.credit
        return need / self.share if need > 0 else 0.0

    def syn_done(self, frames: int, seconds: float, more: bool, now: float) -> None:
        """A SYN turn that began at ``now`` read ``frames`` and took
        ``seconds``: charged; ``more``: it stopped at its budget (the queue
        still had SYNs)."""
        self.turns += 1
        if not more:
            if self.backlog_since is not None:
                self.backlog_since = None
                self._update_times_flows()
        elif self.backlog_since is None:
            self.backlog_since = now
            self.times_flows = True
        self.credit -= seconds
        if self._rate_at is None:
            self._rate_at, self._rate_frames = now, self.syn_frames
        elif now - self._rate_at >= self.rate_window:
            self.rate = (self.syn_frames - self._rate_frames) / (now - self._rate_at)
            self._rate_at, self._rate_frames = now, self.syn_frames
        if frames:
            self.syn_frames += frames
            self.syn_time += seconds
            # (a moving average, as est_done's: inline, once per SYN turn)
            cost, old = seconds / frames, self.cost_syn
            self.cost_syn = cost if old <= 0.0 else old + self.alpha * (cost - old)

    def ring_len(self, full: int) -> int:
        """The ring length for the TAP now (see the class doc): ``full`` (the
        configured one) unless ``max_wait`` is set and the last turn was held
        to the share with a rate measured."""
        if self.max_wait is None or not self.held or self.rate <= 0.0:
            return full
        return min(full, max(self.ring_floor, int(self.rate * self.max_wait)))

    def est_done(self, frames: int, seconds: float, now: float) -> None:
        """The flows' queue delivered ``frames`` in ``seconds`` (ending at ``now``)."""
        if frames:
            self.est_frames += frames
            self.est_time += seconds
            # (a moving average: once per read of the flows' queue, an echo's every request)
            cost, old = seconds / frames, self.cost_est
            self.cost_est = cost if old <= 0.0 else old + self.alpha * (cost - old)
            self.last_est = now

    def stats(self) -> dict[str, float]:
        """What bench_flood prints: frames, seconds and µs per frame per queue."""
        return {"syn_frames": self.syn_frames, "syn_time": self.syn_time,
                "est_frames": self.est_frames, "est_time": self.est_time,
                "syn_us": self.cost_syn * 1e6, "est_us": self.cost_est * 1e6,
                "turns": self.turns, "deferred": self.deferred, "syn_rate": self.rate}


class RxShare:
    """How long the flows' reader reads in one wake-up (issue 11: the drain
    that keeps up).

    Linux's receive side is never starved by the application's sends: the
    NET_RX softirq runs at every interrupt (and in ksoftirqd) with its own
    budget, whatever the processes were doing, and the ACK that stops a
    peer's RTO goes out from there.  tcpio's reader is one callback among
    the loop's others; reading one budget per loop iteration, however long
    the iteration's other work took (the wakeups its batch triggered: app
    callbacks, their sends), gave the ring a few per cent of the loop at
    1000 flows and a queue seconds deep.

    The rule: a wake-up reads budget after budget (each delivered as its
    own batch, so its ACKs go out before the next is read) until a read
    stops short of its budget (EAGAIN: the ring was seen empty) or it has
    read for as long as the loop did other work since the reader last
    ended (``other``, at least ``floor``, at most ``cap`` seconds).  The
    first budget is always read.  So when the loop's other work grows, the
    reader's time grows with it and the ring gets at least about half the
    loop, as a softirq that runs whatever the processes do; an idle loop
    (the gap is time in select) reads to EAGAIN, which ends the turn at
    once; ``cap`` bounds how long timers and the SYN queue wait behind one
    turn (a ring refilled as fast as it is read never ends it otherwise:
    0.73 s once, see Stack._timers_due).

    Off by default (``cap`` 0: one budget a wake-up, as before): measured
    (issue 11, load 2-12, benchmarks/soak_timeline.py --rx-cap, alternate
    runs in one tree) it did not move the 1000-flow soak's kernel RTOs
    (cap 0: 802, 1019; cap 50 ms: 947, 567; all within the first 2 s, the
    accept burst, which no read policy reaches: the application's work at
    accept holds the loop), while 1-flow bulk over the TAP looked slower
    with it (tcpio -> kernel median 617 vs 747 MB/s, 8 of 9 alternate
    pairs; kernel -> tcpio 738 vs 969, 5 of 9; wide ranges).  Set ``cap``
    (``TapDevice(rx_share=RxShare(cap=0.05))``) to use it.

    Pure arithmetic on the times given (``now``), so tests drive it with a
    virtual clock; the device feeds it time.perf_counter.  Counters (kept
    only while capped: off, the reader is FrameIO.read_flows and nothing
    here is asked): turns, budgets read beyond the first (``extra``), turns
    stopped by the time (``timed_out``) and the largest allowance given
    (``max_allow``).
    """

    def __init__(self, floor: float = 0.0, cap: float = 0.0) -> None:
        if floor < 0.0 or cap < floor:
            raise ValueError("0 <= floor <= cap")
        self.floor = floor
        self.cap = cap
        self.last_end: float | None = None     # when the reader last stopped reading
        self.turns = self.extra = self.timed_out = 0
        self.max_allow = 0.0

    def allowance(self, now: float) -> float:
        """Seconds a turn beginning at ``now`` may read for (``floor`` on the
        first turn: no other work measured yet)."""
        last = self.last_end
        other = 0.0 if last is None else max(0.0, now - last)
        allow = min(self.cap, max(self.floor, other))
        self.turns += 1
        if allow > self.max_allow:
            self.max_allow = allow
        return allow

    def more(self, start: float, allow: float, now: float) -> bool:
        """After a budget that stopped at its limit: read another one?"""
        if now - start < allow:
            self.extra += 1
            return True
        self.timed_out += 1
        return False

    def end(self, now: float) -> None:
        """The reader stopped reading at ``now`` (its turn, or a poll_rx)."""
        self.last_end = now

    def stats(self) -> dict[str, float]:
        return {"turns": self.turns, "extra": self.extra, "timed_out": self.timed_out,
                "max_allow": self.max_allow}


class TxWriter:
    """A device's writer thread (``TapDevice(tx_thread=True)``, issue 11).

    A TAP takes one frame per write(2), and the kernel's whole receive of
    that frame (its TCP's ACK processing, the data that ACK lets the peer
    send, back into our ring) runs inside the write: most of what tcpio's
    loop paid for sending.  Here the loop only queues its batches; this
    thread writes them (devio.FrameIO.write_all, the GIL released for each
    batch), so the kernel's work runs beside the loop's Python on another
    CPU.  Order is kept (one queue, one thread).  The loop waits (a
    blocking write's backpressure) while MAX_PENDING frames are queued and
    not yet written; a full tun queue is waited out in the thread (WAIT_MS
    for a batch, then what is left is dropped and counted)."""

    MAX_PENDING = 4096
    WAIT_MS = 1000

    def __init__(self, dev: _TunTapBase, io: FrameIO) -> None:
        self.dev = dev
        self.io = io            # the thread's own (a FrameIO keeps per-call state)
        self.cv = threading.Condition()
        self.frames: list[bytes] = []
        self.hdrs: list[bytes] = []
        self.pending = 0        # frames queued or being written
        self.stopping = False
        self.waits = 0          # put()s that waited for the thread (backpressure)
        self.batches = 0        # write_all calls
        self.thread = threading.Thread(target=self._run, name=f"tcpio-tx-{dev.name}",
                                       daemon=True)
        self.thread.start()

    def put(self, frames: list[bytes], hdrs: list[bytes]) -> None:
        cv = self.cv
        with cv:
            if self.pending >= self.MAX_PENDING:
                self.waits += 1
                while self.pending >= self.MAX_PENDING and not self.stopping:
                    cv.wait(0.05)
            self.frames += frames
            self.hdrs += hdrs
            self.pending += len(frames)
            cv.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued, then end the thread (before the fd closes)."""
        with self.cv:
            self.stopping = True
            self.cv.notify_all()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _run(self) -> None:
        dev, io, cv = self.dev, self.io, self.cv
        hlen = io.hlen
        while True:
            with cv:
                while not self.frames and not self.stopping:
                    cv.wait()
                frames, hdrs = self.frames, self.hdrs
                if not frames:
                    return          # stopping, all written
                self.frames, self.hdrs = [], []
            fd = dev.fd
            st = dev.stats
            if fd is None:
                st["tx_dropped"] += len(frames)
            else:
                sent = io.write_all(fd, frames, hdrs if hlen else None, self.WAIT_MS)
                self.batches += 1
                st["tx_packets"] += sent
                st["tx_bytes"] += io.nbytes
                if io.dropped:
                    st["tx_dropped"] += io.dropped
                    if io.error not in _DROP_ERRNOS and io.error not in _FULL_ERRNOS:
                        st["tx_errors"] += io.dropped
            with cv:
                self.pending -= len(frames)
                cv.notify_all()


class _TunTapBase:
    """Shared fd handling for TAP and TUN; subclasses set the flags and link."""

    _flags: int
    link: Link
    netif: NetifQueue | None = None     # the interface's queue (attach_netif)
    _tx_waiting = False                 # a writer watches the fd for room
    tx_thread = False                   # writes from a thread of our own (TxWriter)
    tx_writer: TxWriter | None = None   # that thread, made at the first send
    _io: FrameIO | None = None          # the fd's read/write loops (devio), made at first use
    _rx_lone = 0            # reader batches in a row of one frame each (FrameIO.read_flows)
    _tx_plain = b""                     # the plain virtio header (_frame_io)
    # SynShare.max_wait: the ring length set now (0: the configured one,
    # untouched), times it changed, the socket (in the TAP's namespace) that
    # sets it, and why it could not (the feature then off)
    syn_ring_len = 0
    syn_ring_changes = 0
    syn_ring_error: OSError | None = None
    _ring_ctl: socket.socket | None = None
    # the steering program sends a retransmitted SYN to the flows' queue
    # (tun_steering's seen map), or why not
    syn_retrans = False
    syn_retrans_error: OSError | None = None
    _seen_fd: int | None = None         # the steering program's seen map
    # how long the flows' reader reads per wake-up (RxShare)
    rx_share: RxShare

    def __init__(self, name: str, mtu: int = 1500, *, budget: int = 256,
                 txqueuelen: int | None = DEFAULT_TXQUEUELEN,
                 offloads: bool | int = True, syn_queue: bool | None = None,
                 syn_budget: int = 64, syn_share: SynShare | None = None,
                 rx_share: RxShare | None = None, tx_thread: bool = False) -> None:
        if budget < 1 or syn_budget < 1:
            raise ValueError("budget and syn_budget must be >= 1")
        if txqueuelen is not None and not 1 <= txqueuelen <= 0x7FFFFFFF:
            raise ValueError("txqueuelen must be 1..2**31-1, or None to leave the kernel's")
        want = DEFAULT_OFFLOADS if offloads is True else int(offloads)
        if want < 0:
            raise ValueError("offloads must be True, False or a TUN_F_* mask")
        self.mtu = mtu
        self.budget = budget
        self.stats = new_stats()
        self.tx_thread = tx_thread
        # Frames that came or went as super-frames (virtio gso_type set) and
        # the segments they stood for.
        self.gso_stats = new_gso_stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frames: OnFrames | None = None
        self.vnet_hdr_len = 0       # bytes of virtio_net_hdr before each frame on the fd
        self.offloads = 0           # the TUN_F_* bits the kernel accepted
        self.syn_budget = syn_budget
        self.syn_queue = False      # a second queue takes the SYNs (see the module doc)
        self.syn_queue_error: OSError | None = None
        self.syn_fd: int | None = None    # the SYN queue's fd
        self.syn_queue_rx = 0               # frames read from it
        # the SYN queue's share of the read loop (established traffic first)
        self.syn_share = syn_share if syn_share is not None else SynShare(
            batch=syn_budget, min_batch=min(32, syn_budget))
        self._syn_timer: asyncio.TimerHandle | None = None
        self.rx_share = rx_share if rx_share is not None else RxShare()
        self.rx_more = False                # the last read of the flows' queue hit the budget
        self.rx_emptied = 0                 # reads of the flows' queue that ended at EAGAIN
        self.rx_flows_read = 0              # frames read from the flows' queue
        self.time_squeeze = 0               # poll_rx calls that stopped with frames waiting
        # frames the kernel's ring holds for us at most (txqueuelen): after
        # reading that many, all that waited at some moment has been read
        self.rx_ring_len = txqueuelen or 0
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            flags = self._flags | IFF_NO_PI
            if want and self._kernel_has_vnet_hdr(fd):
                flags |= vnet.IFF_VNET_HDR
            ifr, flags = self._attach(fd, name, flags, syn_queue)
            # The kernel fills in the name it used (a "tap%d" pattern expands).
            self.name = ifr[:IFNAMSIZ].rstrip(b"\0").decode()
            if flags & vnet.IFF_VNET_HDR:
                self.vnet_hdr_len = self._vnet_hdr_size(fd)
                self.offloads = self._negotiate_offloads(fd, want)
            self._set_kernel_mtu(mtu)
            if txqueuelen is not None:
                self._set_kernel_txqueuelen(txqueuelen)
            else:
                try:
                    self.rx_ring_len = self.txqueuelen
                except OSError:
                    # no interface by that name to ask (an fd standing for a
                    # TAP, as in the qdisc tests): the ring's length unknown
                    # (0), the timers' wait bounded by TIMER_DEFER_MAX instead
                    pass
            if flags & tun_steering.IFF_MULTI_QUEUE:
                self._open_syn_queue(fd, flags)
        except BaseException:
            os.close(fd)
            if self.syn_fd is not None:
                os.close(self.syn_fd)
            if self._ring_ctl is not None:
                self._ring_ctl.close()
            if self._seen_fd is not None:
                os.close(self._seen_fd)
            raise
        # What we hand the kernel: TCP super-frames of up to 64 KiB, IPv4's
        # (gso_max_size) and IPv6's (gso_max_size6, issue 12: TSO6); the
        # host's interface takes these as its TSO capability per family.  The
        # kernel segments what we send whatever TUN_F_* says (that is what we
        # take); TSO4/TSO6 accepted is the sign this kernel does both ways.
        self.gso_max_size = 0xFFFF if self.offloads & vnet.TUN_F_TSO4 else 0
        self.gso_max_size6 = 0xFFFF if self.offloads & vnet.TUN_F_TSO6 else 0
        self.tx_csum_partial = bool(self.offloads & vnet.TUN_F_CSUM)
        gso_in = self.offloads & (vnet.TUN_F_TSO4 | vnet.TUN_F_TSO6
                                  | vnet.TUN_F_USO4 | vnet.TUN_F_USO6)
        self._readsize = self.vnet_hdr_len + (_GSO_FRAME_MAX if gso_in
                                              else max_frame_len(mtu, self.link))
        self.fd: int | None = fd

    def _attach(self, fd: int, name: str, flags: int,
                syn_queue: bool | None) -> tuple[bytes, int]:
        """TUNSETIFF: create or attach to the interface ``name``, multi-queue
        as ``syn_queue`` says (see the module doc); the kernel's ifreq and
        the flags to go on with (IFF_MULTI_QUEUE in them: open the SYN queue)."""
        mq = tun_steering.IFF_MULTI_QUEUE
        if syn_queue is None:
            try:    # ours if we make it: then with the SYN queue
                return fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, flags | mq | IFF_TUN_EXCL,
                                                         "H")), flags | mq
            except OSError as exc:
                if exc.errno not in (errno.EBUSY, errno.EINVAL):
                    raise       # (EINVAL: a kernel without multi-queue tun)
        elif syn_queue:
            try:
                return fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, flags | mq, "H")), flags | mq
            except OSError as exc:
                # an existing persistent interface made single-queue: take it as it is
                if exc.errno != errno.EINVAL:
                    raise
                self.syn_queue_error = exc
        try:        # it exists: single-queue, as made (the kernel's EBUSY if held open)
            return fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, flags, "H")), flags
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
        # made multi-queue: attach as it was made, unless another process
        # holds it (it is not persistent, so it would be gone otherwise)
        ifr = fcntl.ioctl(fd, TUNSETIFF, _ifreq(name, flags | mq, "H"))
        got = struct.unpack_from("H", fcntl.ioctl(fd, TUNGETIFF, bytes(40)), IFNAMSIZ)[0]
        if not got & IFF_PERSIST:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), name)
        return ifr, flags | mq if syn_queue is not False else flags

    def _open_syn_queue(self, fd: int, flags: int) -> None:
        """Attach the second queue and the steering program; where the kernel
        refuses (no eBPF, no permission), stay on one queue and say why."""
        qfd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(qfd, TUNSETIFF, _ifreq(self.name, flags, "H"))
            if self.vnet_hdr_len and self.vnet_hdr_len != vnet.VNET_HDR_LEN:
                fcntl.ioctl(qfd, vnet.TUNSETVNETHDRSZ, struct.pack("i", self.vnet_hdr_len))
            prog = self._steering_program()
            try:
                fcntl.ioctl(fd, tun_steering.TUNSETSTEERINGEBPF, struct.pack("i", prog))
            finally:
                os.close(prog)          # the device holds its own reference
        except OSError as exc:
            os.close(qfd)
            self.syn_queue_error = exc
            if self._seen_fd is not None:
                os.close(self._seen_fd)
                self._seen_fd = None
                self.syn_retrans = False
            return
        self.syn_fd = qfd
        self.syn_queue = True
        if self.syn_share.max_wait is not None and self.rx_ring_len > 0:
            # made here: the socket stays in the namespace the TAP is made in
            self._ring_ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def _steering_program(self) -> int:
        """The steering program's fd: the one that sends a retransmitted SYN
        to the flows' queue (tun_steering's ``seen`` map), or, where the
        kernel will not make the map or load it, the plain one
        (``syn_retrans_error`` says why)."""
        try:
            seen = tun_steering.seen_map()
        except OSError as exc:
            self.syn_retrans_error = exc
        else:
            try:
                prog = tun_steering.load_socket_filter(
                    tun_steering.syn_steering_program(self.link, seen=seen))
            except OSError as exc:
                self.syn_retrans_error = exc
                os.close(seen)
            else:
                self.syn_retrans = True
                self._seen_fd = seen    # for its counts (syn_retrans_counts)
                return prog
        return tun_steering.load_socket_filter(tun_steering.syn_steering_program(self.link))

    def syn_retrans_counts(self) -> tuple[int, int]:
        """(retransmitted SYNs the kernel steered to the flows' queue, those
        over the promotion budget it left on the SYN queue); (0, 0) without
        ``syn_retrans``."""
        fd = self._seen_fd
        if fd is None:
            return 0, 0
        return tun_steering.seen_counts(fd)

    @staticmethod
    def _kernel_has_vnet_hdr(fd: int) -> bool:
        """TUNGETFEATURES: does this kernel's tun know IFF_VNET_HDR?"""
        try:
            raw = fcntl.ioctl(fd, vnet.TUNGETFEATURES, b"\0" * 4)
        except OSError:
            return False
        return bool(struct.unpack("I", raw)[0] & vnet.IFF_VNET_HDR)

    @staticmethod
    def _vnet_hdr_size(fd: int) -> int:
        """TUNGETVNETHDRSZ (10 unless someone set 12 with TUNSETVNETHDRSZ)."""
        try:
            raw = fcntl.ioctl(fd, vnet.TUNGETVNETHDRSZ, b"\0" * 4)
        except OSError:
            return vnet.VNET_HDR_LEN
        size = struct.unpack("i", raw)[0]
        if size not in (vnet.VNET_HDR_LEN, vnet.VNET_HDR_MRG_LEN):
            # a header we do not lay out: ask for the plain one
            fcntl.ioctl(fd, vnet.TUNSETVNETHDRSZ, struct.pack("i", vnet.VNET_HDR_LEN))
            return vnet.VNET_HDR_LEN
        return int(size)

    @staticmethod
    def _negotiate_offloads(fd: int, want: int) -> int:
        """TUNSETOFFLOAD with ``want``; on EINVAL (a bit this kernel does not
        know, or a combination it refuses) drop bits in ``_DROP_ORDER`` and try
        again.  Returns the mask the kernel took (0: none)."""
        mask = want
        drops = iter(_DROP_ORDER)
        while mask:
            if mask & ~vnet.TUN_F_CSUM and not mask & vnet.TUN_F_CSUM:
                return 0            # every segmentation offload needs partial checksums
            try:
                fcntl.ioctl(fd, vnet.TUNSETOFFLOAD, mask)
                return mask
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
            for drop in drops:
                if mask & drop:
                    mask &= ~drop
                    break
            else:
                return 0
        return 0

    def _set_kernel_mtu(self, mtu: int) -> None:
        """Make the kernel side of the link agree with our MTU (while it is still
        in our namespace: after ``ip link set NAME netns X`` use ``ip`` there)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            cur = struct.unpack_from("i", fcntl.ioctl(s, SIOCGIFMTU,
                                                      _ifreq(self.name, 0, "i")), IFNAMSIZ)[0]
            if cur != mtu:
                fcntl.ioctl(s, SIOCSIFMTU, _ifreq(self.name, mtu, "i"))

    def _set_kernel_txqueuelen(self, qlen: int) -> None:
        """SIOCSIFTXQLEN: the tun driver resizes its ring to match."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s, SIOCSIFTXQLEN, _ifreq(self.name, qlen, "i"))

    @property
    def txqueuelen(self) -> int:
        """The kernel interface's tx queue length (SIOCGIFTXQLEN; the
        interface must be in this process's network namespace)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            ifr = fcntl.ioctl(s, SIOCGIFTXQLEN, _ifreq(self.name, 0, "i"))
        return int(struct.unpack_from("i", ifr, IFNAMSIZ)[0])

    def kernel_counters(self) -> dict[str, int] | None:
        """The kernel's counters for this interface, as /proc/net/dev names
        them (rx_*/tx_* from the kernel's side: its ``tx_dropped`` are frames
        it dropped on the way to tcpio), or None when the interface is not in
        this process's network namespace."""
        return read_proc_net_dev(self.name)

    # --- the device contract -------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop, on_frames: OnFrames) -> None:
        if self.fd is None:
            raise OSError(errno.EBADF, f"{self.name}: device is stopped")
        if self._loop is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._loop = loop
        self._on_frames = on_frames
        # the reader: one budget a wake-up, FrameIO.read_flows itself (no
        # Python of the device's: an echo's every request) unless RxShare is
        # capped; it hands a turn the SYN share times to _on_readable
        reader: Callable[[], object] = self._on_flows
        if not self.rx_share.cap:
            reader = functools.partial(self._frame_io().read_flows, self, _RX_SMALL)
        loop.add_reader(self.fd, reader)
        if self.syn_fd is not None:
            loop.add_reader(self.syn_fd, self._on_syn)

    def _on_flows(self) -> None:
        """The flows' queue is readable: one budget (``_on_readable``, which
        ``start`` makes the loop's reader itself unless RxShare is capped),
        or, with a capped RxShare, budget after budget for the time the
        loop's other work took since the last read, or to EAGAIN."""
        rs = self.rx_share
        if not rs.cap:
            self._on_readable()
            return
        start = _clock()
        allow = rs.allowance(start)
        while self._read_flows() and rs.more(start, allow, _clock()):
            pass
        rs.end(_clock())

    def _read_flows(self) -> bool:
        """One budget of the flows' queue; True if it stopped at the budget
        (more is waiting)."""
        self._on_readable()
        return self.rx_more and self.fd is not None

    def _on_syn(self) -> None:
        """The SYN queue is readable: a turn as the SYN share allows, or, out
        of credit, stop watching the queue until the share has earned a turn
        (a ring that stays readable would otherwise wake the loop at once)."""
        loop, fd = self._loop, self.syn_fd
        if loop is None or fd is None:
            return
        share = self.syn_share
        t0 = _clock()
        n = share.budget(t0)
        if share.max_wait is not None:
            # the SYN queue's work, paid from its credit, not a cost per SYN
            # (a ring change, once per flood: most turns cost nothing here)
            cost = self._syn_ring(share.ring_len(self.rx_ring_len))
            if cost:
                share.credit -= cost
                t0 = _clock()
        if n <= 0:
            loop.remove_reader(fd)
            self._syn_timer = loop.call_later(share.wait(), self._syn_rearm)
            return
        got = self._on_readable(fd, n)
        share.syn_done(got, _clock() - t0, got == n, t0)

    def _syn_ring(self, want: int) -> float:
        """Shorten the TAP's ring to ``want`` frames (SynShare.ring_len) once
        when a flood begins, and give it back its configured length once
        when the flood ends: nothing in between.  A change is dear: the
        kernel takes rtnl_lock and swaps the TAP's qdisc out and in around
        it (dev_deactivate's synchronize_net), 12-136 ms on this 2-vCPU
        machine under load (benchmarks/README.md), during which frames sent
        to the TAP are dropped.  An error turns the feature off
        (``syn_ring_error``).  Returns the seconds it took."""
        ctl, full = self._ring_ctl, self.rx_ring_len
        cur = self.syn_ring_len or full
        if ctl is None or want == cur or (want != full and cur != full):
            return 0.0
        t0 = _clock()
        try:
            fcntl.ioctl(ctl, SIOCSIFTXQLEN, _ifreq(self.name, want, "i"))
        except OSError as exc:
            self.syn_ring_error = exc
            self._ring_ctl = None
            ctl.close()
            return 0.0
        self.syn_ring_len = 0 if want == full else want
        self.syn_ring_changes += 1
        return _clock() - t0

    def _syn_rearm(self) -> None:
        self._syn_timer = None
        if self._loop is not None and self.syn_fd is not None:
            self._loop.add_reader(self.syn_fd, self._on_syn)

    def _frame_io(self) -> FrameIO:
        """The fd's read/write loops, made at first use (the header length is
        known by then), with the plain virtio header every write without
        offload work carries."""
        io = self._io
        if io is None:
            hlen = self.vnet_hdr_len
            self._tx_plain = vnet.build_vnet_hdr(size=hlen) if hlen else b""
            io = self._io = _FrameIO(self._readsize, hlen)
        return io

    def _on_readable(self, fd: int | None = None, budget: int = 0) -> int:
        """Drain the fd (the flows' queue unless ``fd`` names the SYN queue)
        until EAGAIN or the budget, then deliver one batch; frames read.
        The reads and their counting are one compiled call (devio.FrameIO.read:
        the header stripped without a second copy, a flagged one's frame
        through ``_rx_offloaded`` in its place, the device's counters kept);
        the flows' queue's turn, its lone-read rule and reader state
        (``rx_more``, ``rx_emptied``, ``rx_flows_read``) with it, is
        FrameIO.read_flows, which ``start`` makes the loop's reader itself.

        Timed for the SYN share (its est_done: the flows' cost per frame, and
        when they last had frames) only when it asks for that
        (``SynShare.times_flows``: while the SYN queue is backlogged, the
        only time its rule looks at the flows); otherwise no clock is read."""
        if self.fd is None:
            return 0
        io = self._io
        if io is None:
            io = self._frame_io()
        if fd is not None:
            frames: list[bytes] = []
            nread = io.read(fd, budget, frames, self._rx_offloaded, _RX_SMALL,
                            self.stats, self.gso_stats)
            if nread:
                self.syn_queue_rx += nread
            if frames and self._on_frames is not None:
                self._on_frames(frames)
            return nread
        share = self.syn_share
        if not share.times_flows:
            return io.read_flows(self, _RX_SMALL, True)
        t0 = _clock()
        nread = io.read_flows(self, _RX_SMALL, True)
        if nread:
            t1 = _clock()
            share.est_done(nread, t1 - t0, t1)
        return nread

    def poll_rx(self, rounds: int = POLL_RX_ROUNDS, seconds: float | None = None) -> bool:
        """Read the flows' queue a budget at a time until EAGAIN, ``rounds``
        budgets, or ``seconds`` (looked at after each budget, so one is
        always read): Linux's net_rx_action with its netdev_budget and
        netdev_budget_usecs.  True when it stopped with frames still waiting
        (counted in ``time_squeeze``, as softnet_stat counts it).

        The stack calls this when timers fall due (Stack._on_timer): an ACK
        already waiting here must not lose the race to a loss probe or RTO
        whose deadline passed while the loop worked (a probe of a FIN that
        was in fact acknowledged gets the peer's TIME-WAIT ACK, and that a
        RST: issue 11, 1000 flows).  While this says True the stack puts its
        due timers off and reads again on the next loop iteration, until the
        queue has been seen empty or a ring's length read since they fell due
        (``rx_mark``/``rx_caught_up``, reads by the loop's reader too); it
        never reads a ring that stays full for long in one callback (0.73 s
        once, issue 11).  An empty queue costs one read that says EAGAIN."""
        deadline = None if seconds is None else _clock() + seconds
        try:
            for _ in range(rounds):
                if self.fd is None:
                    return False
                self._rx_lone = 0       # each round a full budget (until EAGAIN)
                if not self._read_flows():
                    return False
                if deadline is not None and _clock() >= deadline:
                    break
        finally:
            # a read of the ring: the reader's next turn counts the loop's
            # other work from here (only a capped RxShare reads it)
            if self.rx_share.cap:
                self.rx_share.end(_clock())
        self.time_squeeze += 1
        return True

    def rx_mark(self) -> tuple[int, int]:
        """Where the flows' queue's reading is now, for ``rx_caught_up``."""
        return self.rx_emptied, self.rx_flows_read

    def rx_caught_up(self, mark: tuple[int, int]) -> bool:
        """Has every frame that waited in the flows' queue at ``mark`` been
        read?  Yes once a read found the queue empty since, or once as many
        frames as the ring holds (``rx_ring_len``) have been read since: the
        ring is first in, first out.  (0: the ring's length is not known.)"""
        emptied, nread = mark
        ring = self.rx_ring_len
        return self.rx_emptied != emptied or (ring > 0 and self.rx_flows_read - nread >= ring)

    def _rx_offloaded(self, raw: bytes, frames: list[bytes]) -> None:
        """A frame whose virtio header has work in it, in one compiled call
        (rx.vnet_rx): a TCP super-frame goes on whole as a GsoFrame (GRO's
        aggregate: its gso_segs and gso_size reach TCP), a partial checksum
        is completed in the copy that strips the header, and what the kernel
        vouched for (NEEDS_CSUM, DATA_VALID) is not summed again; a UDP
        super-frame is cut into its datagrams."""
        frame = _vnet_rx(raw, self.vnet_hdr_len)
        gs = self.gso_stats
        if raw[0] & _NEEDS_CSUM:
            gs["rx_csum_partial"] += 1
        if frame is not None:
            if raw[1] & _NOT_GSO_ECN:
                gs["rx_gso_frames"] += 1
                gs["rx_gso_segs"] += getattr(frame, "gso_segs", 1)
            frames.append(frame)
            return
        try:
            hdr = vnet.parse_vnet_hdr(raw)
            if hdr.gso_type & ~vnet.VIRTIO_NET_HDR_GSO_ECN != vnet.VIRTIO_NET_HDR_GSO_UDP_L4:
                raise ValueError("virtio_net_hdr: a header that does not fit its frame")
            segs = vnet.gso_segment(memoryview(raw)[self.vnet_hdr_len:], hdr,
                                    ether=self.link == "ether")
        except ValueError:
            self.stats["rx_errors"] += 1
            return
        gs["rx_gso_frames"] += 1
        gs["rx_gso_segs"] += len(segs)
        frames.extend(segs)

    def attach_netif(self, netif: NetifQueue) -> None:
        """The interface's queue (Stack.add_interface): stopped when the fd
        will not take a frame (EAGAIN/ENOBUFS: the tun socket's sndbuf is
        spent), woken when it is writable again."""
        self.netif = netif

    def _on_writable(self) -> None:
        """The fd takes frames again (tun_sock_write_space): wake the queue,
        whose backlog, the refused frame first, then goes out."""
        loop, fd = self._loop, self.fd
        self._tx_waiting = False
        if loop is not None and fd is not None:
            loop.remove_writer(fd)
        if self.netif is not None:
            self.netif.wake()

    def _tx_full(self, frames: Sequence[bytes | bytearray]) -> bool:
        """The fd said EAGAIN/ENOBUFS: with a queue to push back on, hand
        ``frames`` (the refused one and the rest) back to it, stop it, and
        watch the fd for room (netif_stop_queue in the driver's xmit); False
        without one (the frame is dropped, counted, as before)."""
        netif, loop, fd = self.netif, self._loop, self.fd
        if netif is None or loop is None or fd is None:
            return False
        for frame in frames:
            netif.requeue(frame)
        netif.stop()
        if not self._tx_waiting:
            self._tx_waiting = True
            loop.add_writer(fd, self._on_writable)
        return True

    def send(self, frame: bytes | bytearray) -> None:
        """One frame (an answer, an ACK: what a request/response flow sends
        per kick): ``send_batch``'s write without its loop, written and
        counted in one compiled call (FrameIO.send), once the fd's writer is
        made; anything else (no fd, the writer thread, a queue we stopped and
        wait to wake: ``_tx_waiting``, the one way its queue stops) goes
        through ``send_batch``, which looks at the queue itself."""
        io = self._io
        if io is None or self._tx_waiting or self.tx_thread or self.fd is None:
            self.send_batch((frame,))
            return
        err = io.send(self.fd, frame, self._tx_plain, self._tx_hdr, self.stats)
        if err and not (err in _FULL_ERRNOS and self._tx_full((frame,))):
            self._tx_drop(err)

    def send_batch(self, frames: Sequence[bytes | bytearray]) -> None:
        """One write per frame (a TAP takes one frame per write), counted once.
        With the virtio header, it goes first in the same write (writev).
        EAGAIN/ENOBUFS with a queue attached: the frames not written wait in
        it (``_tx_full``); other errors (EIO while the link is down) drop."""
        fd = self.fd
        st = self.stats
        if fd is None:
            st["tx_dropped"] += len(frames)
            return
        netif = self.netif
        if netif is not None and netif.stopped:
            for frame in frames:
                netif.requeue(frame)        # NETDEV_TX_BUSY: back to the qdisc
            return
        io = self._frame_io()
        plain = self._tx_plain
        if self.tx_thread:
            self._tx_queue(frames, io.hlen, plain)
            return
        count = len(frames)
        sent = nbytes = 0
        i = 0
        while True:
            done = io.write(fd, frames, i, plain, self._tx_hdr)
            sent += done - i
            nbytes += io.nbytes
            if done >= count:
                break
            err = io.error
            if err in _FULL_ERRNOS and self._tx_full(frames[done:]):
                break
            self._tx_drop(err)
            i = done + 1
        st["tx_packets"] += sent
        st["tx_bytes"] += nbytes

    def _tx_drop(self, err: int) -> None:
        """A frame the fd refused (``err``) and nothing queues: a counted
        drop, an error too unless the link just cannot take it now."""
        st = self.stats
        if err not in _DROP_ERRNOS:
            st["tx_errors"] += 1
        st["tx_dropped"] += 1

    def _tx_queue(self, frames: Sequence[bytes | bytearray], hlen: int, plain: bytes) -> None:
        """``send_batch`` with ``tx_thread``: the frames (as ``bytes``) and
        their virtio headers, made here, to the writer thread."""
        w = self.tx_writer
        if w is None:
            w = self.tx_writer = TxWriter(self, _FrameIO(self._readsize, hlen))
        out = [f if isinstance(f, bytes) else bytes(f) for f in frames]
        if hlen:
            tx_hdr = self._tx_hdr
            hdrs = [plain if type(f) is bytes else tx_hdr(f, plain) for f in frames]
        else:
            hdrs = []
        w.put(out, hdrs)

    def _tx_hdr(self, frame: bytes | bytearray, plain: bytes) -> bytes:
        """The virtio header for a frame that is not plain ``bytes``: a TCP
        super-frame (``gso_size`` set) gets its segmentation header."""
        gso_size: int = getattr(frame, "gso_size", 0)
        partial: bool = getattr(frame, "csum_partial", False)
        if gso_size:
            gs = self.gso_stats
            gs["tx_gso_frames"] += 1
            gs["tx_gso_segs"] += getattr(frame, "gso_segs", 1)
        elif not partial:
            return plain
        # (gso_size 0: one segment, its checksum left to the kernel: NEEDS_CSUM only)
        hdr = vnet.gso_hdr_for(frame, gso_size, ether=self.link == "ether", partial=partial)
        return vnet.build_vnet_hdr(hdr, self.vnet_hdr_len)

    def stop(self) -> None:
        """Stop reading and close the fd (the kernel interface goes away unless
        it was made persistent).  Idempotent."""
        w, self.tx_writer = self.tx_writer, None
        if w is not None:
            w.stop()        # what is queued goes before the fd closes
        fd, self.fd = self.fd, None
        if fd is None:
            return
        syn_fd, self.syn_fd = self.syn_fd, None
        loop, self._loop = self._loop, None
        if self._syn_timer is not None:
            self._syn_timer.cancel()
            self._syn_timer = None
        if loop is not None and not loop.is_closed():
            # Remove the reader first: uvloop keeps its own poll handle on the
            # fd and misbehaves if the fd is closed (and reused) under it.
            loop.remove_reader(fd)
            if self._tx_waiting:
                loop.remove_writer(fd)
                self._tx_waiting = False
            if syn_fd is not None:
                loop.remove_reader(syn_fd)
        os.close(fd)
        if syn_fd is not None:
            os.close(syn_fd)
        seen, self._seen_fd = self._seen_fd, None
        if seen is not None:
            os.close(seen)
        ctl, self._ring_ctl = self._ring_ctl, None
        if ctl is not None:
            if self.syn_ring_len:       # a persistent interface keeps its length
                try:
                    fcntl.ioctl(ctl, SIOCSIFTXQLEN, _ifreq(self.name, self.rx_ring_len, "i"))
                except OSError:
                    pass                # gone with the fd: not persistent
            ctl.close()

    close = stop

    def fileno(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, f"{self.name}: device is stopped")
        return self.fd

    def __repr__(self) -> str:
        state = "closed" if self.fd is None else f"fd={self.fd}"
        return (f"{type(self).__name__}({self.name!r}, mtu={self.mtu}, "
                f"offloads={self.offloads:#x}, {state})")


class TapDevice(_TunTapBase):
    """A kernel TAP interface: Ethernet frames, tcpio answering ARP with ``mac``
    (random, locally administered unless given)."""

    _flags = IFF_TAP
    link: Link = "ether"

    def __init__(self, name: str = "tap%d", mtu: int = 1500, *, mac: bytes | None = None,
                 budget: int = 256, txqueuelen: int | None = DEFAULT_TXQUEUELEN,
                 offloads: bool | int = True, syn_queue: bool | None = None,
                 syn_budget: int = 64, syn_share: SynShare | None = None,
                 rx_share: RxShare | None = None, tx_thread: bool = False) -> None:
        if mac is not None and len(mac) != 6:
            raise ValueError("mac must be 6 bytes")
        self.mac: bytes | None = mac if mac is not None else random_mac()
        super().__init__(name, mtu, budget=budget, txqueuelen=txqueuelen, offloads=offloads,
                         syn_queue=syn_queue, syn_budget=syn_budget, syn_share=syn_share,
                         rx_share=rx_share, tx_thread=tx_thread)


class TunDevice(_TunTapBase):
    """A kernel TUN interface: bare IPv4 datagrams, no Ethernet, no ARP."""

    _flags = IFF_TUN
    link: Link = "ip"
    mac: bytes | None = None

    def __init__(self, name: str = "tun%d", mtu: int = 1500, *, budget: int = 256,
                 txqueuelen: int | None = DEFAULT_TXQUEUELEN,
                 offloads: bool | int = True, syn_queue: bool | None = None,
                 syn_budget: int = 64, syn_share: SynShare | None = None,
                 rx_share: RxShare | None = None, tx_thread: bool = False) -> None:
        super().__init__(name, mtu, budget=budget, txqueuelen=txqueuelen, offloads=offloads,
                         syn_queue=syn_queue, syn_budget=syn_budget, syn_share=syn_share,
                         rx_share=rx_share, tx_thread=tx_thread)
