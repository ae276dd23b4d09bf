"""A seeded model of what a bad network does to frames (like Linux netem).

``Impairment.fate(frame, now)`` decides, for one frame handed to the link at
``now``, when (and whether, and how often, and in which shape) it arrives at
the other end.  It is pure bookkeeping: no clock, no I/O.  The same seed and
the same sequence of calls always give the same fates, so a lossy test run
is reproducible bit for bit.

Order of the decisions for one frame (each draws from the RNG only when its
knob is non-zero, so a link with only loss sees exactly the loss pattern of
``random.Random(seed)``):

1. ``mtu``: a frame longer than the link MTU never leaves (counted).
2. ``rate``: serialisation at ``rate`` bit/s; a frame starts after the
   previous one finished (an unbounded FIFO in front of the link).
3. ``loss``: the frame is lost on the wire (it still used link time).
4. ``delay`` +- ``jitter`` (uniform), never before its departure time.
5. ``reorder``: held back by an extra ``reorder_delay``, so frames sent
   after it overtake it.
6. ``corrupt``: one random bit of the frame flipped.
7. ``duplicate``: a second identical copy arrives at the same time.
"""

from __future__ import annotations

import random


class Impairment:
    """Seeded loss/delay/jitter/reorder/duplicate/corrupt/rate/MTU for one direction."""

    def __init__(self, loss: float = 0.0, delay: float = 0.0, jitter: float = 0.0,
                 reorder: float = 0.0, duplicate: float = 0.0, corrupt: float = 0.0,
                 rate: float | None = None, mtu: int | None = None, seed: int = 0,
                 reorder_delay: float = 0.005) -> None:
        for name, p in (("loss", loss), ("reorder", reorder),
                        ("duplicate", duplicate), ("corrupt", corrupt)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        if delay < 0 or jitter < 0 or reorder_delay < 0:
            raise ValueError("delay, jitter and reorder_delay must be >= 0")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be > 0 bits/s or None")
        self.loss = loss
        self.delay = delay
        self.jitter = jitter
        self.reorder = reorder
        self.reorder_delay = reorder_delay
        self.duplicate = duplicate
        self.corrupt = corrupt
        self.rate = rate
        self.mtu = mtu
        self.seed = seed
        self.rng = random.Random(seed)
        self._busy_until = 0.0   # when the link finishes serialising the last frame
        self.stats: dict[str, int] = dict.fromkeys(
            ("frames", "delivered", "lost", "mtu_drops", "reordered",
             "duplicated", "corrupted", "bytes"), 0)

    @property
    def dropped(self) -> int:
        """Frames that did not arrive at all (lost on the wire or over the MTU)."""
        return self.stats["lost"] + self.stats["mtu_drops"]

    def is_noop(self) -> bool:
        return not (self.loss or self.delay or self.jitter or self.reorder or self.duplicate
                    or self.corrupt or self.rate or self.mtu)

    def pass_mtu(self, frame: bytes | bytearray) -> bytes | None:
        """``fate`` for a link whose only knob is the MTU (every MemoryWire
        has one; the caller checks the others are off): the frame as
        delivered now, or None when it is over the MTU; the same counts,
        without fate's list of (time, frame) pairs (issue 11: once per
        frame of every in-memory flow)."""
        stats = self.stats
        stats["frames"] += 1
        n = len(frame)
        if self.mtu is not None and n > self.mtu:
            stats["mtu_drops"] += 1
            return None
        stats["delivered"] += 1
        stats["bytes"] += n
        return frame if type(frame) is bytes else bytes(frame)

    def fate(self, frame: bytes | bytearray, now: float) -> list[tuple[float, bytes]]:
        """(delivery_time, frame) pairs for one frame sent at ``now``; [] if dropped."""
        stats = self.stats
        rng = self.rng
        stats["frames"] += 1
        n = len(frame)
        if self.mtu is not None and n > self.mtu:
            stats["mtu_drops"] += 1
            return []
        depart = now
        if self.rate:
            # The frame waits for the link, then occupies it for n*8/rate seconds.
            depart = max(now, self._busy_until) + n * 8.0 / self.rate
            self._busy_until = depart
        if self.loss and rng.random() < self.loss:
            stats["lost"] += 1
            return []
        when = depart + self.delay
        if self.jitter:
            when = max(depart, when + rng.uniform(-self.jitter, self.jitter))
        if self.reorder and rng.random() < self.reorder:
            when += self.reorder_delay
            stats["reordered"] += 1
        data = bytes(frame)
        if self.corrupt and n and rng.random() < self.corrupt:
            bit = rng.randrange(n * 8)
            buf = bytearray(data)
            buf[bit >> 3] ^= 1 << (bit & 7)
            data = bytes(buf)
            stats["corrupted"] += 1
        out = [(when, data)]
        if self.duplicate and rng.random() < self.duplicate:
            out.append((when, data))
            stats["duplicated"] += 1
        stats["delivered"] += len(out)
        stats["bytes"] += n * len(out)
        return out

    def __repr__(self) -> str:
        knobs = {k: getattr(self, k) for k in ("loss", "delay", "jitter", "reorder",
                                               "duplicate", "corrupt", "rate", "mtu")}
        shown = ", ".join(f"{k}={v!r}" for k, v in knobs.items() if v)
        return f"Impairment({shown}{', ' if shown else ''}seed={self.seed})"
