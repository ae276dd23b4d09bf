"""A TAP/TUN fd's read and write loops, pure-Python twin of ``devio.pyx``.

``FrameIO(size, hlen)``: ``read`` takes up to ``budget`` frames from an fd,
one read each, onto a list (the ``hlen``-byte virtio-net header stripped, a
frame whose header has flags or gso_type set handed to ``offloaded(raw,
frames)`` whole); ``write`` writes ``frames[start:]`` one write each (the
header in front with writev) until one fails and returns its index.  After
each call ``nbytes``, ``error`` (the errno that ended it, 0 for EAGAIN or
the end) and ``runts`` (reads shorter than the header).  See ``devio.pyx``
for why the compiled one exists: this is what the device did before it.
"""

from __future__ import annotations

import errno
import os
import select
import sys
from collections.abc import Callable, Sequence
from typing import Any

from tcpio._fast import load

_csum = load("checksum").csum_partial

__all__ = ["FrameIO", "LONE_DRAIN"]

# The flows' reader's lone reads drain every LONE_DRAIN + 1-th (devio.pyx).
LONE_DRAIN = 3

_Frame = bytes | bytearray


class FrameIO:
    """The read and write loops of a device fd (see the module doc)."""

    def __init__(self, size: int, hlen: int = 0) -> None:
        if hlen < 0 or size <= hlen:
            raise ValueError("FrameIO: size must exceed hlen >= 0")
        self.size = size
        self.hlen = hlen
        self.nbytes = 0
        self.error = 0
        self.runts = 0
        self.dropped = 0
        self.csum_done = 0

    def read(self, fd: int, budget: int, frames: list[bytes],
             offloaded: Callable[[bytes, list[bytes]], None], small: int = 0,
             stats: dict[str, int] | None = None,
             gso_stats: dict[str, int] | None = None) -> int:
        """Read up to ``budget`` frames from ``fd`` onto ``frames``; the
        number of reads that returned a frame.  ``small``: flagged frames
        up to that size without GSO taken here; ``stats``, ``gso_stats``:
        the device's counters, counted here (see devio.pyx)."""
        read, size, hlen = os.read, self.size, self.hlen
        nread = nbytes = runts = done = 0
        self.error = 0
        if hlen < 10:
            small = 0
        try:
            for _ in range(budget):
                try:
                    frame = read(fd, size)
                except BlockingIOError:
                    break
                except OSError as exc:
                    self.error = exc.errno or errno.EIO
                    break
                nread += 1
                if hlen:
                    if len(frame) < hlen:
                        runts += 1
                        continue
                    nbytes += len(frame) - hlen
                    if frame[0] or frame[1]:
                        if (len(frame) - hlen <= small and frame[1] == 0
                                and not frame[0] & ~3):
                            if not frame[0] & 1:
                                frames.append(frame[hlen:])
                                continue
                            start = int.from_bytes(frame[6:8], sys.byteorder)
                            where = start + int.from_bytes(frame[8:10], sys.byteorder)
                            if where + 2 <= len(frame) - hlen:
                                data = bytearray(frame[hlen:])
                                # skb_checksum_help: the field holds the pseudo-header sum
                                data[where:where + 2] = (
                                    (~_csum(bytes(data[start:])) & 0xFFFF).to_bytes(2, "big"))
                                frames.append(bytes(data))
                                done += 1
                                continue
                        # flags or gso_type: a partial checksum or a super-frame
                        offloaded(frame, frames)
                    else:
                        frames.append(frame[hlen:])
                else:
                    frames.append(frame)
                    nbytes += len(frame)
        finally:
            self.nbytes, self.runts, self.csum_done = nbytes, runts, done
        if stats is not None:
            if nread > runts:
                stats["rx_packets"] += nread - runts
                stats["rx_bytes"] += nbytes
            if self.error or runts:
                stats["rx_errors"] += (self.error != 0) + runts
            if done and gso_stats is not None:
                gso_stats["rx_csum_partial"] += done
        return nread

    def read_flows(self, dev: Any, small: int = 0, timed: bool = False) -> int:
        """One turn of a device's flows' queue, the lone read rule with it
        (see devio.pyx)."""
        fd = dev.fd
        if fd is None:
            return 0
        if not timed and dev.syn_share.times_flows:
            return int(dev._on_readable())
        lone = dev._rx_lone
        budget = 1 if lone & LONE_DRAIN else dev.budget
        frames: list[bytes] = []
        nread = self.read(fd, budget, frames, dev._rx_offloaded, small, dev.stats,
                          dev.gso_stats)
        full = nread == budget
        dev.rx_more = full and not lone & LONE_DRAIN
        dev.rx_flows_read += nread
        if not full:
            dev.rx_emptied += 1
        dev._rx_lone = lone + 1 if nread == 1 else 0
        if frames:
            on_frames = dev._on_frames
            if on_frames is not None:
                on_frames(frames)
        return nread

    def send(self, fd: int, frame: _Frame, plain: bytes,
             tx_hdr: Callable[[_Frame, bytes], bytes], stats: dict[str, int]) -> int:
        """One frame as ``write`` writes it, counted in ``stats`` when it
        went: 0, or the errno of the write that failed (see devio.pyx)."""
        self.nbytes = 0
        if not self.write(fd, (frame,), 0, plain, tx_hdr):
            return self.error
        stats["tx_packets"] += 1
        stats["tx_bytes"] += self.nbytes
        return 0

    def write(self, fd: int, frames: Sequence[_Frame], start: int, plain: bytes,
              tx_hdr: Callable[[_Frame, bytes], bytes]) -> int:
        """Write ``frames[start:]`` one frame a write until one fails: its
        index (its errno in ``error``), or ``len(frames)``."""
        write, writev, hlen = os.write, os.writev, self.hlen
        nbytes = 0
        self.error = 0
        try:
            for i in range(max(start, 0), len(frames)):
                frame = frames[i]
                try:
                    if not hlen:
                        write(fd, frame)
                    elif type(frame) is bytes:
                        writev(fd, (plain, frame))
                    else:
                        writev(fd, (tx_hdr(frame, plain), frame))
                except OSError as exc:
                    self.error = exc.errno or errno.EIO
                    return i
                nbytes += len(frame)
            return len(frames)
        finally:
            self.nbytes = nbytes

    def write_all(self, fd: int, frames: list[bytes], hdrs: list[bytes] | None,
                  wait_ms: int) -> int:
        """Each of ``frames`` with one write (behind ``hdrs[i]`` when
        ``hlen``); a full queue waited out with poll, ``wait_ms`` in all,
        then the frame dropped (``dropped``, ``error``); the count written.
        (os.write and os.writev release the GIL in each call.)"""
        hlen = self.hlen
        if hlen and (hdrs is None or len(hdrs) != len(frames)):
            raise ValueError("write_all: one header a frame")
        sent = dropped = nbytes = waited = last = 0
        poller = None
        for i, frame in enumerate(frames):
            while True:
                try:
                    if hlen:
                        assert hdrs is not None
                        os.writev(fd, (hdrs[i], frame))
                    else:
                        os.write(fd, frame)
                except OSError as exc:
                    e = exc.errno or errno.EIO
                    if e in (errno.EAGAIN, errno.ENOBUFS) and waited < wait_ms:
                        if poller is None:
                            poller = select.poll()
                            poller.register(fd, select.POLLOUT)
                        poller.poll(1)
                        waited += 1
                        continue
                    dropped += 1
                    last = e
                else:
                    sent += 1
                    nbytes += len(frame)
                break
        self.nbytes, self.error, self.dropped = nbytes, last, dropped
        return sent
