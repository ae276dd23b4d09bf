"""In-memory links for the asyncio driver: ``MemoryWire`` joins two stacks in one
process; ``ImpairedDevice`` puts an impaired link in front of any device.

Frames in flight sit in a ``DelayLine`` per direction: a heap ordered by
delivery time (from ``Impairment.fate``) and ONE loop timer for its earliest
entry.  When the timer fires, every frame due by then is handed over as one
batch, just as a TAP reader hands over what it drained.  Even a zero-delay
frame goes through the timer, so a frame sent from inside a receive callback
is never delivered re-entrantly into the middle of that callback.

``MemoryWire(gso=True)`` carries TCP super-frames (issue 12): its ends say
they take them (``gso_max_size``/``gso_max_size6``) and, unless
``csum_offload=False``, partial checksums (``tx_csum_partial``, a TAP's
TUN_F_CSUM), so the send loop hands over up to 64 KiB per frame and leaves
the TCP checksum of its data frames to the device (super-frames, and lone
segments of 8 KiB or more, as at a 64 KiB MTU): the same path as TSO and
checksum offload on a TAP.  Such a frame crosses whole,
as GRO's aggregate, when the direction only delays (the receiving host
takes a big segment as the run of segments it is, and trusts its checksums,
csum_valid: nothing in memory corrupts it, so no byte of it is summed on
either side); with loss, jitter, reordering, duplication, corruption or a
rate it is cut into its segments first, each with its checksum complete
(virtio_net.gso_segment), so each meets the impairment model on its own, as
it would on a real link, and a corrupted one fails its checksum.  A capture
(PcapDevice) records such frames with the checksum completed.

``MemoryWire(gso=True, gso_max_size=N)`` with N above 64 KiB is BIG TCP
(Linux 5.19 for IPv6, 6.3 for IPv4, where an admin raises a loopback's or
veth's gso_max_size/gso_ipv4_max_size): super-frames of up to N bytes of IP
datagram, so a bulk transfer pays its per-frame cost (send loop, wire,
receive, ACK) once per N bytes.  Off by default, as the kernel keeps every
device at 64 KiB unless told: a frame past 65535 bytes says 0 in its IP
length field (IPv4 tot_len, as Linux's; IPv6's payload length too, with
no RFC 2675 hop-by-hop jumbo option: Linux's IPv6 BIG TCP keeps that option
only inside the stack, where GRO adds it and the driver or software GSO
strips it, so it never reaches a wire, and one rule for both families keeps
the cutter and the receive paths' fixed-header parse as they are), and a
receiver takes the length from the buffer only for a TCP super-frame
(iph_totlen, ipv6_payload_len).  A capture (PcapDevice) records an IPv6 one
with the jumbo option inserted, which tcpdump and Wireshark read (payload
length 0 without it is a malformed packet to them); an IPv4 one as it is,
which both read as a TSO frame.  A TAP never gets one (the kernel's tun takes
64 KiB at most).

``MemoryWire(tx_ring=N)`` gives each end a transmit ring of N frames (the
frames it has put on the line that the other end has not received yet), and
flow control as a NIC driver does it: the end stops its interface's queue
(``netif.stop()``, core/qdisc.py) when the ring is full and wakes it when the
other end has taken frames, so the host's frames wait in its qdisc
(``txqueuelen``) instead of being dropped here.  ``end.pause()`` stops
transmitting altogether (a stalled link: the ring does not drain) until
``end.resume()``.  Without ``tx_ring`` the ends never stop their queue.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence

from tcpio._fast import load as _load
from tcpio._fast.gso import GSO_MAX_SIZE, GsoFrame
from tcpio.core.qdisc import NetifQueue
from tcpio.devices import virtio_net
from tcpio.devices.base import ETH_HLEN, Device, DeviceWrapper, Link, OnFrames, SendEach, new_stats
from tcpio.devices.impair import Impairment

# push_batch's loop over a batch's frames, compiled (wire_py.line_ready)
line_ready = _load("wire").line_ready


def _cut(frame: bytes | bytearray, gso_size: int) -> list[bytes] | None:
    """A TCP frame the sender left to the device (a super-frame's segments,
    virtio_net.gso_segment; ``gso_size`` 0: the one frame, its partial
    checksum completed, as netem's skb_checksum_help before it corrupts),
    or None for one the cutter does not know (IPv6 with extension headers)."""
    try:
        hdr = virtio_net.gso_hdr_for(frame, gso_size,
                                     partial=bool(getattr(frame, "csum_partial", False)))
        return virtio_net.gso_segment(frame, hdr)
    except ValueError:
        return None


class DelayLine:
    """Frames in flight in one direction, delivered to ``sink`` in due batches.

    Frames due at once (no delay, jitter, reordering or rate: nothing that
    holds one back) wait in a plain list behind one ``call_soon`` while
    nothing is held in the heap, so a bulk transfer's frames skip the heap
    and the loop's timer heap; they still arrive in a later callback, in
    order, never re-entrantly."""

    def __init__(self, impairment: Impairment | None,
                 sink: Callable[[list[bytes]], None] | None = None) -> None:
        self.impairment = impairment
        self.sink = sink
        self.loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()   # FIFO among frames due at the same time
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        self._ready: list[bytes] = []   # due now, heap empty (the fast path)
        self._ready_handle: asyncio.Handle | None = None

    def __len__(self) -> int:
        return len(self._heap) + len(self._ready)

    def push(self, frame: bytes | bytearray) -> bool:
        """Put one frame on the line; False if there is no loop to carry it."""
        loop = self.loop
        if loop is None:
            return False
        imp = self.impairment
        if type(frame) is GsoFrame:
            # an impairment that acts on each segment (not only delays them all)
            if imp is not None and (imp.loss or imp.jitter or imp.reorder or imp.duplicate
                                    or imp.corrupt or imp.rate):
                # each segment meets the impairment model on its own, with
                # its checksum complete (a corrupted bit must show)
                gso_size = getattr(frame, "gso_size", 0) if getattr(frame, "gso_segs", 1) > 1 \
                    else 0
                segs = _cut(frame, gso_size) \
                    if gso_size or getattr(frame, "csum_partial", False) else None
                if segs is not None:
                    for seg in segs:
                        self.push(seg)
                    return True
                # one the cutter does not know, or a plain one: taken whole
                fates = imp.fate(frame, loop.time())
            else:
                # whole, delayed like any frame (the MTU is the segments');
                # still a GsoFrame, so the receiver takes it as the segments
                # it stands for.  The same object crosses (no copy), and
                # nothing on this line can corrupt it: the receiving end
                # trusts its checksums, a partial one included, as veth
                # marks a frame from a local stack CHECKSUM_UNNECESSARY
                # (NETIF_F_RXCSUM), so 64 KiB are neither summed on the way
                # out nor on arrival.
                frame.csum_valid = True
                delay = imp.delay if imp is not None else 0.0
                if not delay and not self._heap:
                    # _push_ready without its call
                    self._ready.append(frame)
                    if self._ready_handle is None:
                        self._ready_handle = loop.call_soon(self._fire_ready)
                    return True
                fates = [(loop.time() + delay, frame)]
        elif imp is not None:
            if not (self._heap or imp.loss or imp.delay or imp.jitter or imp.reorder
                    or imp.duplicate or imp.corrupt or imp.rate):
                # the MTU alone (every MemoryWire has one): due now or dropped
                data = imp.pass_mtu(frame)
                if data is not None:
                    self._push_ready(data)
                return True
            fates = imp.fate(frame, loop.time())
            if not self._heap and not (imp.delay or imp.jitter or imp.reorder or imp.rate):
                # nothing holds a frame back: each fate is due now
                for _, data in fates:
                    self._push_ready(data)
                return True
        else:
            if not self._heap:
                self._push_ready(bytes(frame))
                return True
            fates = [(loop.time(), bytes(frame))]
        heap, seq = self._heap, self._seq
        for when, data in fates:
            heapq.heappush(heap, (when, next(seq), data))
        if heap:
            self._arm()
        return True

    def push_batch(self, frames: Sequence[bytes | bytearray]) -> int:
        """``push`` for each of ``frames``; how many it put on the line.  The
        usual case in one loop: a line that only has an MTU (nothing held in
        the heap, no impairment that acts on each frame or delays it), where
        every frame is due now: a super-frame crosses whole, trusted as
        ``push`` marks it, any other frame is ``pass_mtu``'s (counted, and
        dropped over the MTU), and one ``call_soon`` hands them over (issue
        12: a kick's frames for the device, one Python call each before)."""
        loop = self.loop
        imp = self.impairment
        if (loop is None or self._heap or (imp is not None and (
                imp.loss or imp.delay or imp.jitter or imp.reorder or imp.duplicate
                or imp.corrupt or imp.rate))):
            push = self.push
            return sum(1 for frame in frames if push(frame))
        # (the loop over the frames compiled: wire.line_ready)
        count, over, nbytes = line_ready(frames, self._ready,
                                         imp.mtu if imp is not None else None)
        if imp is not None and count:
            stats = imp.stats
            stats["frames"] += count
            stats["mtu_drops"] += over
            stats["delivered"] += count - over
            stats["bytes"] += nbytes
        if self._ready and self._ready_handle is None:
            self._ready_handle = loop.call_soon(self._fire_ready)
        return len(frames)

    def _push_ready(self, frame: bytes) -> None:
        self._ready.append(frame)
        if self._ready_handle is None:
            assert self.loop is not None
            self._ready_handle = self.loop.call_soon(self._fire_ready)

    def _fire_ready(self) -> None:
        self._ready_handle = None
        due, self._ready = self._ready, []
        if due and self.sink is not None:
            self.sink(due)

    def _arm(self) -> None:
        first = self._heap[0][0]
        if self._timer is not None:
            if self._timer_when <= first:
                return          # already armed early enough
            self._timer.cancel()
        assert self.loop is not None
        self._timer_when = first
        self._timer = self.loop.call_at(first, self._fire)

    def _fire(self) -> None:
        self._timer = None
        assert self.loop is not None
        # uvloop's timers have millisecond granularity and may fire a little
        # early: treat the armed time as reached rather than spinning.
        now = max(self.loop.time(), self._timer_when)
        heap = self._heap
        due = []
        if self._ready:
            # frames due at once went before anything in the heap now
            due, self._ready = self._ready, []
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        if heap:
            self._arm()
        if due and self.sink is not None:
            self.sink(due)

    def clear(self) -> None:
        """Forget frames in flight and the timer (the link was taken down)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._ready_handle is not None:
            self._ready_handle.cancel()
            self._ready_handle = None
        self._heap.clear()
        self._ready.clear()


class WireEnd(SendEach):
    """One end of a MemoryWire: an Ethernet device whose frames reach the peer end."""

    link: Link = "ether"

    def __init__(self, name: str, mac: bytes, mtu: int, line_out: DelayLine,
                 gso: bool = False, tx_ring: int | None = None,
                 csum_offload: bool = True, gso_max_size: int = 0xFFFF) -> None:
        self.name = name
        self.tx_ring = tx_ring          # frames on the line at most (None: unbounded)
        self.netif: NetifQueue | None = None
        self.paused = False
        # TSO: super-frames of up to 64 KiB (BIG TCP: ``gso_max_size``), and
        # checksum offload (see above) (at a 64 KiB MTU every segment is that
        # big already: no TSO then, unless BIG TCP allows more)
        self.gso_max_size = gso_max_size if gso and mtu < gso_max_size else 0
        self.gso_max_size6 = self.gso_max_size
        self.tx_csum_partial = gso and csum_offload
        self.mac: bytes | None = mac
        self.mtu = mtu
        self.stats = new_stats()
        self.peer: WireEnd | None = None
        self._line_out = line_out
        self._on_frames: OnFrames | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def impairment(self) -> Impairment | None:
        """The impairment of the direction this end transmits on."""
        return self._line_out.impairment

    def start(self, loop: asyncio.AbstractEventLoop, on_frames: OnFrames) -> None:
        if self._on_frames is not None:
            raise RuntimeError(f"{self.name}: already started")
        peer_loop = self.peer._loop if self.peer is not None else None
        if peer_loop is not None and peer_loop is not loop:
            raise RuntimeError("both ends of a MemoryWire must run on the same loop")
        self._loop = loop
        self._on_frames = on_frames
        # Both directions run on this loop (frames towards us may already be waiting).
        self._line_out.loop = loop
        if self.peer is not None:
            self.peer._line_out.loop = loop

    def _deliver(self, frames: list[bytes]) -> None:
        st = self.stats
        on_frames = self._on_frames
        if on_frames is None:       # this end is down: the frames fall on the floor
            st["rx_dropped"] += len(frames)
            return
        st["rx_packets"] += len(frames)
        st["rx_bytes"] += sum(map(len, frames))
        on_frames(frames)

    def attach_netif(self, netif: NetifQueue) -> None:
        """The interface's queue this end stops and wakes (Stack.add_interface)."""
        self.netif = netif

    def _ring_full(self) -> bool:
        ring = self.tx_ring
        return self.paused or (ring is not None and len(self._line_out) >= ring)

    def send(self, frame: bytes | bytearray) -> None:
        st = self.stats
        netif = self.netif
        # (the qdisc's flag read directly: NetifQueue.stopped is a property,
        # a Python call per frame sent)
        if netif is not None and netif.qdisc.stopped:
            netif.requeue(frame)        # NETDEV_TX_BUSY: back to the qdisc
            return
        if self._on_frames is None:
            st["tx_dropped"] += 1
            return
        if self.paused:
            if netif is None:           # nobody to push back on: the frame is lost
                st["tx_dropped"] += 1
                return
            netif.requeue(frame)
            netif.stop()
            return
        if not self._line_out.push(frame):
            st["tx_dropped"] += 1
            return
        st["tx_packets"] += 1
        st["tx_bytes"] += len(frame)
        # _ring_full without its call (not paused: that returned above)
        ring = self.tx_ring
        if ring is not None and netif is not None and len(self._line_out) >= ring:
            netif.stop()                # netif_stop_queue: no room for another

    def send_batch(self, frames: Sequence[bytes | bytearray]) -> None:
        """``send`` for each frame: the usual case (up, not paused, no ring
        to fill, its queue running) in one loop, counted once."""
        netif = self.netif
        if (self.tx_ring is not None or self.paused or self._on_frames is None
                or (netif is not None and netif.stopped)):
            for frame in frames:
                self.send(frame)
            return
        sent = self._line_out.push_batch(frames)
        st = self.stats
        if sent == len(frames):
            st["tx_packets"] += sent
            st["tx_bytes"] += sum(map(len, frames))
            return
        # (only without a loop, where push takes none)
        st["tx_packets"] += sent
        st["tx_dropped"] += len(frames) - sent

    def tx_done(self) -> None:
        """The other end took frames off the line: room in the ring again
        (the driver's TX completion), so a stopped queue is woken."""
        netif = self.netif
        if netif is not None and netif.stopped and not self._ring_full():
            netif.wake()

    def pause(self) -> None:
        """Stop transmitting (the line does not drain): the queue is stopped."""
        self.paused = True
        if self.netif is not None:
            self.netif.stop()

    def resume(self) -> None:
        """Transmit again: the queue is woken and its backlog goes out."""
        self.paused = False
        self.tx_done()

    def stop(self) -> None:
        """Take this end down; frames it had in flight are lost."""
        self._on_frames = None
        self._loop = None
        self._line_out.clear()

    def __repr__(self) -> str:
        return f"WireEnd({self.name!r}, mtu={self.mtu})"


class MemoryWire:
    """Two Ethernet ends (``wire.a``, ``wire.b``) joined in memory.

    The impairment knobs (see ``Impairment``) apply to each direction
    independently, with seeds ``seed`` (a->b) and ``seed + 1`` (b->a).  ``mtu``
    is the IP MTU of both ends; the wire carries frames up to mtu + 14 bytes.
    MACs are deterministic: 02:00:00:00:00:01 for ``a`` and ...:02 for ``b``
    unless ``macs`` is given.  ``gso=True``: TCP super-frames and checksum
    offload (module docstring); ``csum_offload=False`` keeps the super-frames
    and has the sender complete every checksum.  ``gso_max_size`` (with
    ``gso``): the largest super-frame's IP datagram, 64 KiB by default as
    Linux's for every device; above that BIG TCP (module docstring), up to
    GSO_MAX_SIZE (512 KiB less 8 bytes), as ``ip link set lo gso_max_size N
    gso_ipv4_max_size N`` allows on the kernel's loopback.
    """

    def __init__(self, loss: float = 0.0, delay: float = 0.0, jitter: float = 0.0,
                 reorder: float = 0.0, duplicate: float = 0.0, corrupt: float = 0.0,
                 rate: float | None = None, mtu: int = 1500, seed: int = 0, *,
                 reorder_delay: float = 0.005, macs: tuple[bytes, bytes] | None = None,
                 names: tuple[str, str] = ("wire.a", "wire.b"), gso: bool = False,
                 tx_ring: int | None = None, csum_offload: bool = True,
                 gso_max_size: int = 0xFFFF) -> None:
        def impairment(direction_seed: int) -> Impairment:
            return Impairment(loss=loss, delay=delay, jitter=jitter, reorder=reorder,
                              duplicate=duplicate, corrupt=corrupt, rate=rate,
                              mtu=mtu + ETH_HLEN, seed=direction_seed,
                              reorder_delay=reorder_delay)

        mac_a, mac_b = macs or (b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02")
        self.a_to_b = impairment(seed)
        self.b_to_a = impairment(seed + 1)
        line_ab = DelayLine(self.a_to_b)
        line_ba = DelayLine(self.b_to_a)
        if not 0 < gso_max_size <= GSO_MAX_SIZE:
            raise ValueError(f"gso_max_size must be in 1..{GSO_MAX_SIZE}")
        self.a = WireEnd(names[0], mac_a, mtu, line_ab, gso, tx_ring, csum_offload,
                         gso_max_size)
        self.b = WireEnd(names[1], mac_b, mtu, line_ba, gso, tx_ring, csum_offload,
                         gso_max_size)
        self.a.peer, self.b.peer = self.b, self.a
        a, b = self.a, self.b

        # (the sender's tx_done only when its queue is stopped: it does
        # nothing otherwise, and this runs for every frame delivered)
        def a_to_b(frames: list[bytes]) -> None:
            b._deliver(frames)
            netif = a.netif
            if netif is not None and netif.qdisc.stopped:
                a.tx_done()

        def b_to_a(frames: list[bytes]) -> None:
            a._deliver(frames)
            netif = b.netif
            if netif is not None and netif.qdisc.stopped:
                b.tx_done()

        line_ab.sink = a_to_b
        line_ba.sink = b_to_a

    @property
    def in_flight(self) -> int:
        """Frames currently on the wire, both directions."""
        return len(self.a._line_out) + len(self.b._line_out)

    def __repr__(self) -> str:
        return f"MemoryWire({self.a_to_b!r})"


class ImpairedDevice(DeviceWrapper):
    """Wrap any device so frames it sends (``impairment_out``) and receives
    (``impairment_in``) cross an impaired link first; None means untouched.

    On a TAP this impairs both directions from our side, which is how tests
    get loss and delay against the kernel (this kernel has no netem).
    """

    def __init__(self, device: Device, impairment_out: Impairment | None = None,
                 impairment_in: Impairment | None = None) -> None:
        super().__init__(device)
        self._out = DelayLine(impairment_out, device.send_batch)
        self._in = DelayLine(impairment_in)

    @property
    def impairment_out(self) -> Impairment | None:
        return self._out.impairment

    @property
    def impairment_in(self) -> Impairment | None:
        return self._in.impairment

    def start(self, loop: asyncio.AbstractEventLoop, on_frames: OnFrames) -> None:
        self._out.loop = self._in.loop = loop
        if self._in.impairment is None:
            self.device.start(loop, on_frames)
            return
        self._in.sink = on_frames
        push = self._in.push

        def impair_in(frames: list[bytes]) -> None:
            for frame in frames:
                push(frame)

        self.device.start(loop, impair_in)

    def send(self, frame: bytes | bytearray) -> None:
        if self._out.impairment is None:
            self.device.send(frame)
        elif not self._out.push(frame):
            self.device.stats["tx_dropped"] += 1

    def send_batch(self, frames: Sequence[bytes | bytearray]) -> None:
        if self._out.impairment is None:
            self.device.send_batch(frames)
            return
        for frame in frames:
            self.send(frame)

    def stop(self) -> None:
        self._out.clear()
        self._in.clear()
        self.device.stop()

    def __repr__(self) -> str:
        return (f"ImpairedDevice({self.device!r}, out={self._out.impairment!r}, "
                f"in={self._in.impairment!r})")
