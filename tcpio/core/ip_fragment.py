"""IPv4 reassembly (net/ipv4/ip_fragment.c: ip_defrag, ip_frag_queue, ip_frag_reasm).

The queue code (``Reassembler.frag_queue``) is also IPv6's (reassembly.py
checks the fragment header and calls it with its own key, counters,
settings and expiry message), as Linux shares inet_fragment.c between them.

Fragments are queued per (src, dst, proto, id) in an ``Ipq``.  Rules, as in
Linux since 4.19 (RFC 5722's rule carried over to IPv4):

- a fragment lying entirely inside one fragment we already hold is a
  duplicate: dropped, the queue is kept;
- any other overlap poisons the datagram: the whole queue is dropped and
  counted (ReasmOverlaps, ReasmFails);
- a non-final fragment's length is trimmed to a multiple of 8 (RFC 791);
- a datagram that would exceed 65535 bytes is dropped (ping of death);
- each queue lives at most ``ipfrag_time`` seconds from its first fragment; on
  expiry ReasmTimeout + ReasmFails, and ICMP time exceeded (code 1) about
  fragment 0, quoting as much of it as fits, if it arrived;
- the bytes held by all queues (data plus a per-fragment and a per-queue
  overhead, like the kernel's truesize + sizeof(struct ipq)) are capped by
  ``ipfrag_high_thresh``: the oldest queues are evicted (ReasmFails) to make
  room.  (Linux >= 4.17 refuses new queues instead of evicting old ones.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from tcpio.core.ip_input import IP_MAX_LEN
from tcpio.core.timer import Timer

if TYPE_CHECKING:
    from tcpio.core.host import Host

# Accounting overhead per fragment, standing in for the kernel's skb truesize
# (measured: a queued fragment costs ~150 bytes of Python objects beyond its data).
FRAG_OVERHEAD = 128
# Charged once per queue, like Linux charges sizeof(struct ipq) in inet_frag_alloc:
# a queue (Ipq, its Timer and callback, key, header record, dict slot) costs
# ~1 KiB here, so a flood of one-fragment datagrams is held to the cap as well.
IPQ_OVERHEAD = 1024


def _noop(now: float) -> None:
    pass


class Ipq:
    __slots__ = (
        "first_iph",
        "frags",
        "key",
        "last_seen",
        "meat",
        "mem",
        "timer",
        "total",
    )

    def __init__(self, key: tuple[int, int, int, int], timer: Timer) -> None:
        self.key = key
        self.frags: list[tuple[int, int, bytes]] = []   # (offset, end, data), sorted
        # Linux's q.len: the furthest end of any fragment so far; the datagram's
        # payload length once the last fragment (no MF) has arrived.
        self.total = 0
        self.meat = 0                                   # payload bytes received
        self.first_iph: Any = None                      # header of fragment 0
        self.timer = timer
        self.mem = IPQ_OVERHEAD                         # sizeof(struct ipq), then fragments
        self.last_seen = False


class Reassembler:
    """Fragment queues of one family.  ``prefix`` is put before the counter
    names ("" for IPv4's ReasmReqds..., "Ip6" for IPv6's); ``time_attr`` and
    ``thresh_attr`` name the settings for the timeout and the memory cap;
    ``on_expire(first, data)`` reports a queue that timed out after its
    fragment 0 came (``first`` is what ``frag_queue`` was given with it)."""

    def __init__(self, host: Host, prefix: str = "", time_attr: str = "ipfrag_time",
                 thresh_attr: str = "ipfrag_high_thresh",
                 on_expire: Callable[[Any, bytes], None] | None = None) -> None:
        self.host = host
        self.queues: OrderedDict[tuple[int, int, int, int], Ipq] = OrderedDict()
        self.mem = 0
        self.prefix = prefix
        self.time_attr = time_attr
        self.thresh_attr = thresh_attr
        self.on_expire = on_expire if on_expire is not None else self._icmp_expire

    def defrag(self, iph: Any, payload: bytes | memoryview, now: float
               ) -> tuple[Any, bytes] | None:
        """Queue one fragment; return (first fragment's header, whole payload) when complete."""
        self.host.mib["ReasmReqds"] += 1
        return self.frag_queue((iph.src, iph.dst, iph.proto, iph.ident), iph.frag_offset,
                               iph.mf, iph.ihl * 4, payload, iph, now)

    def frag_queue(self, key: tuple[int, int, int, int], offset: int, mf: bool, hlen: int,
                   payload: bytes | memoryview, first: Any, now: float
                   ) -> tuple[Any, bytes] | None:
        """ip_frag_queue + ip_frag_reasm: the fragment at ``offset`` (bytes)
        with ``payload``, the last one unless ``mf``; ``hlen`` the header
        length in front of it (for the 64 KiB limit); ``first`` is kept
        with fragment 0 and returned with the whole payload when complete."""
        host = self.host
        mib = host.mib
        p = self.prefix
        q = self.queues.get(key)
        if q is None:
            timer = host.timers.timer(_noop)
            q = Ipq(key, timer)
            timer.callback = partial(self._expire, q)
            timer.arm(now + getattr(host.settings, self.time_attr))
            self.queues[key] = q
            self.mem += IPQ_OVERHEAD
        end = offset + len(payload)
        if hlen + end > IP_MAX_LEN:
            self._kill(q)
            mib[p + "ReasmFails"] += 1
            return None
        # ip_frag_queue's length checks, in its order.
        if mf:
            end &= ~7
            if end > q.total:
                if q.last_seen:
                    self._bad(q)            # data past the end the last fragment gave
                    return None
                q.total = end
        else:
            # The last fragment fixes the length; data already past it is a lie.
            if end < q.total or (q.last_seen and end != q.total):
                self._bad(q)
                return None
            q.last_seen = True
            q.total = end
        if end == offset:
            # Nothing left (an empty last fragment, or under 8 bytes with MF):
            # discarded with its queue, so no zero-length fragment is queued.
            self._bad(q)
            return None
        data = bytes(payload[:end - offset])
        verdict = self._insert(q, offset, end, data)
        if verdict != "ok":
            if verdict == "dup":
                mib[p + "ReasmDuplicates"] += 1
                return None
            mib[p + "ReasmOverlaps"] += 1
            self._kill(q)
            mib[p + "ReasmFails"] += 1
            return None
        if offset == 0:
            q.first_iph = first
        size = len(data) + FRAG_OVERHEAD
        q.mem += size
        self.mem += size
        if q.last_seen and q.meat == q.total and q.first_iph is not None:
            self._kill(q)
            mib[p + "ReasmOKs"] += 1
            return q.first_iph, b"".join(f[2] for f in q.frags)
        self._enforce_cap()
        return None

    def _bad(self, q: Ipq) -> None:
        """A fragment inconsistent with the queue: drop the datagram (ip_frag_queue -EINVAL)."""
        self._kill(q)
        self.host.mib[self.prefix + "ReasmFails"] += 1

    @staticmethod
    def _insert(q: Ipq, offset: int, end: int, data: bytes) -> str:
        frags = q.frags
        # Find the insertion point; fragments are few (<= 45 for 64 KiB at MTU 1500).
        i = len(frags)
        while i > 0 and frags[i - 1][0] > offset:
            i -= 1
        # Now prev starts at or before offset and nxt after it: a fragment can
        # lie inside prev (a duplicate) but never inside nxt.
        prev = frags[i - 1] if i > 0 else None
        nxt = frags[i] if i < len(frags) else None
        if prev is not None and prev[1] > offset:
            return "dup" if end <= prev[1] else "overlap"
        if nxt is not None and end > nxt[0]:
            return "overlap"
        frags.insert(i, (offset, end, data))
        q.meat += end - offset
        return "ok"

    def _enforce_cap(self) -> None:
        cap = getattr(self.host.settings, self.thresh_attr)
        p = self.prefix
        while self.mem > cap and self.queues:
            _, victim = next(iter(self.queues.items()))
            self._kill(victim)
            self.host.mib[p + "ReasmFails"] += 1
            self.host.mib[p + "ReasmEvictions"] += 1

    def _kill(self, q: Ipq) -> None:
        q.timer.cancel()
        # Break the q -> timer -> callback -> q cycle so a dead queue is freed
        # at once by reference counting, not whenever the cyclic GC runs.
        q.timer.callback = _noop
        if self.queues.get(q.key) is q:
            del self.queues[q.key]
            self.mem -= q.mem

    def _expire(self, q: Ipq, now: float) -> None:
        """ip_expire: give up on the datagram; tell the sender if we saw its start.

        Like Linux, the error is about fragment 0 (held first in ``frags``) and
        quotes as much of its data as icmp_send fits in 576 bytes.
        """
        host = self.host
        self._kill(q)
        host.mib[self.prefix + "ReasmTimeout"] += 1
        host.mib[self.prefix + "ReasmFails"] += 1
        if q.first_iph is not None:
            self.on_expire(q.first_iph, q.frags[0][2])

    def _icmp_expire(self, first_iph: Any, data: bytes) -> None:
        self.host.icmp_send(first_iph, data, 11, 1)

    def __len__(self) -> int:
        return len(self.queues)
