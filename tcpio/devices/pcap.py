"""Capture to classic pcap files: a writer, and a device wrapper that records
every frame in and out of any device; and a reader for pcap and pcapng files
(``read_pcap``, what ``tcpio plot`` reads).

Format (https://www.tcpdump.org/manpages/pcap-savefile.5.html, and
draft-ietf-opsawg-pcap): a 24-byte file header, then per frame a 16-byte record
header and the frame.  We write the nanosecond variant (magic 0xa1b23c4d),
little-endian; readers detect the byte order from the magic.

Timestamps come from a clock the caller supplies, so a test running under a
virtual clock writes a pcap whose times are the virtual ones.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

from tcpio._fast.gso import GsoFrame, csum_completed
from tcpio.devices.base import Device, DeviceWrapper, Link, OnFrames

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101          # bare IPv4/IPv6, what a TUN device carries
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_VERSION = (2, 4)
DEFAULT_SNAPLEN = 262144

_FILE_HDR = struct.Struct("<IHHiIII")   # magic, major, minor, thiszone, sigfigs, snaplen, linktype
_REC_HDR = struct.Struct("<IIII")       # ts_sec, ts_nsec, incl_len, orig_len

LINKTYPES: dict[Link, int] = {"ether": LINKTYPE_ETHERNET, "ip": LINKTYPE_RAW}


class PcapWriter:
    """Append frames to a pcap file.  ``write(frame, ts)`` with ``ts`` in seconds
    (float), ``write_ns(frame, ts_ns)`` with integer nanoseconds."""

    def __init__(self, path: str | BinaryIO, linktype: int = LINKTYPE_ETHERNET,
                 snaplen: int = DEFAULT_SNAPLEN) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.frames = 0
        if isinstance(path, str):
            self._file: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
            self._owns_file = True
        else:
            self._file = path
            self._owns_file = False
        self.path = path if isinstance(path, str) else getattr(path, "name", None)
        self._file.write(_FILE_HDR.pack(PCAP_MAGIC_NS, *PCAP_VERSION, 0, 0, snaplen, linktype))

    def write(self, frame: bytes | bytearray | memoryview, ts: float) -> None:
        self.write_ns(frame, round(ts * 1e9))

    def write_ns(self, frame: bytes | bytearray | memoryview, ts_ns: int) -> None:
        if self._file.closed:
            return
        sec, nsec = divmod(ts_ns, 1_000_000_000)
        orig = len(frame)
        incl = min(orig, self.snaplen)
        self._file.write(_REC_HDR.pack(sec, nsec, incl, orig))
        self._file.write(frame if incl == orig else frame[:incl])
        self.frames += 1

    def flush(self) -> None:
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if self._owns_file:
            self._file.close()
        else:
            self.flush()


def loop_wall_clock_ns(loop: asyncio.AbstractEventLoop) -> Callable[[], int]:
    """A clock that reads ``loop.time()`` (so it agrees with the stack's timers)
    shifted to wall-clock nanoseconds, the epoch pcap readers expect."""
    offset = time.time_ns() - round(loop.time() * 1e9)
    return lambda: round(loop.time() * 1e9) + offset


def _as_seen(frame: bytes | bytearray, link: str) -> bytes | bytearray:
    """A frame whose TCP checksum is left partial (the device finishes it:
    a TSO super-frame, or one segment with checksum offload) is recorded
    whole, with the checksum its content gives, so a reader finds it valid;
    an IPv6 BIG TCP super-frame with the jumbo option (_jumbo6); anything
    else as it is."""
    if type(frame) is GsoFrame:
        ether = link == "ether"
        if frame.csum_partial:
            frame = csum_completed(frame, ether)
        return _jumbo6(frame, 14 if ether else 0)
    return frame


def _jumbo6(frame: bytes | bytearray, ip: int) -> bytes | bytearray:
    """An IPv6 TCP super-frame past 64 KiB (BIG TCP: payload length 0, the
    length the buffer's) as Linux's IPv6 BIG TCP showed it to tcpdump (5.19
    on): with a hop-by-hop header carrying the RFC 2675 Jumbo Payload option
    (8 bytes: next header TCP, length 0, option type 0xC2, option length 4,
    the 32-bit payload length, which counts the hop-by-hop header).  Without
    it tcpdump and Wireshark take payload length 0 as a malformed packet;
    IPv4's tot_len 0 they read as a TSO frame, as it is.  Anything else is
    returned as it is."""
    if (len(frame) <= ip + 40 + 0xFFFF or frame[ip] >> 4 != 6 or frame[ip + 4]
            or frame[ip + 5] or frame[ip + 6] != 6):
        return frame
    hbh = bytes((6, 0, 0xC2, 4)) + (len(frame) - ip - 40 + 8).to_bytes(4, "big")
    return b"".join((frame[:ip + 6], b"\0", frame[ip + 7:ip + 40], hbh, frame[ip + 40:]))


class PcapDevice(DeviceWrapper):
    """Wrap ``device``: every frame it receives or sends is also written to ``path``.

    ``clock`` returns nanoseconds; by default it is the running loop's clock
    shifted to the wall clock (set at ``start``).  Frames the inner device then
    drops on send are still in the capture (like tcpdump on a full qdisc);
    frames it hands back to the interface's queue (flow control) are
    recorded once, when it takes them.
    """

    def __init__(self, device: Device, path: str | BinaryIO,
                 clock: Callable[[], int] | None = None,
                 snaplen: int = DEFAULT_SNAPLEN) -> None:
        super().__init__(device)
        self.writer = PcapWriter(path, LINKTYPES[device.link], snaplen)
        self._clock = clock or (lambda: time.time_ns())
        self._clock_given = clock is not None

    def start(self, loop: asyncio.AbstractEventLoop, on_frames: OnFrames) -> None:
        if not self._clock_given:
            self._clock = loop_wall_clock_ns(loop)

        def record_and_deliver(frames: list[bytes]) -> None:
            # (a frame from a MemoryWire end with checksum offload may come
            # with its checksum partial: recorded completed, as sent)
            self._record(frames, self._clock())
            on_frames(frames)

        self.device.start(loop, record_and_deliver)

    def send(self, frame: bytes | bytearray) -> None:
        self.send_batch((frame,))

    def send_batch(self, frames: Sequence[bytes | bytearray]) -> None:
        netif = self.netif
        if netif is None:
            self._record(frames, self._clock())
            self.device.send_batch(frames)
            return
        # With flow control the inner device may hand frames back to the queue
        # (requeue: it stopped); they are sent, and recorded, when it wakes.
        # Like tcpdump's tap in xmit_one, record only what it kept: a stopped
        # device requeues every frame after the first it had no room for, so
        # those are the batch's last ``requeued``.
        ts = self._clock()
        qdisc = netif.qdisc
        before = qdisc.requeues
        self.device.send_batch(frames)
        requeued = qdisc.requeues - before
        self._record(frames[:len(frames) - requeued] if requeued else frames, ts)

    def _record(self, frames: Sequence[bytes | bytearray], ts: int) -> None:
        write = self.writer.write_ns
        link = self.link
        for frame in frames:
            write(frame if type(frame) is bytes else _as_seen(frame, link), ts)

    def stop(self) -> None:
        try:
            self.device.stop()
        finally:
            self.writer.close()

    def __repr__(self) -> str:
        return f"PcapDevice({self.device!r}, {self.writer.path!r})"


# --- reading -----------------------------------------------------------------------

LINKTYPE_NULL = 0           # BSD loopback: a 4-byte address family in host order
LINKTYPE_LINUX_SLL = 113    # tcpdump -i any (cooked v1)
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276   # tcpdump -i any (cooked v2)

_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D


class PcapFormatError(ValueError):
    """The file is not a pcap/pcapng capture, or is cut in a header."""


def read_pcap(path: str | BinaryIO) -> Iterator[tuple[float, int, bytes]]:
    """Yield ``(timestamp_seconds, linktype, frame)`` for each packet of a capture.

    Reads classic pcap (either byte order, microsecond or nanosecond magic) and
    pcapng (what Wireshark, tshark and dumpcap write by default: section,
    interface and enhanced/simple packet blocks; ``if_tsresol`` honoured).
    A file cut inside its last record ends the iteration quietly, as tcpdump
    reads a capture that is still being written.
    """
    if isinstance(path, str):
        with open(path, "rb") as f:
            yield from _read_capture(f)
    else:
        yield from _read_capture(path)


def _read_capture(f: BinaryIO) -> Iterator[tuple[float, int, bytes]]:
    head = f.read(4)
    if len(head) < 4:
        raise PcapFormatError("not a capture: file shorter than a header")
    (magic_le,) = struct.unpack("<I", head)
    if magic_le == _PCAPNG_SHB:
        yield from _read_pcapng(f, head)
        return
    for endian in ("<", ">"):
        (magic,) = struct.unpack(endian + "I", head)
        if magic in (0xA1B2C3D4, PCAP_MAGIC_NS):
            break
    else:
        raise PcapFormatError(f"not a capture: magic {head.hex()}")
    rest = f.read(20)
    if len(rest) < 20:
        raise PcapFormatError("pcap: file header cut")
    linktype = struct.unpack(endian + "I", rest[16:20])[0] & 0x0FFFFFFF
    scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
    rec = struct.Struct(endian + "IIII")
    while True:
        hdr = f.read(16)
        if len(hdr) < 16:
            return
        sec, frac, incl, _orig = rec.unpack(hdr)
        frame = f.read(incl)
        if len(frame) < incl:
            return
        yield sec + frac * scale, linktype, frame


def _read_pcapng(f: BinaryIO, first: bytes) -> Iterator[tuple[float, int, bytes]]:
    endian = "<"
    interfaces: list[tuple[int, float]] = []     # (linktype, seconds per tick)
    pending = first
    while True:
        head = pending + f.read(8 - len(pending))
        pending = b""
        if len(head) < 8:
            return
        btype = struct.unpack(endian + "I", head[:4])[0]
        if btype == _PCAPNG_SHB:
            # A new section: its byte-order magic decides how to read the rest.
            bom = f.read(4)
            if len(bom) < 4:
                return
            endian = "<" if struct.unpack("<I", bom)[0] == _PCAPNG_BOM else ">"
            if struct.unpack(endian + "I", bom)[0] != _PCAPNG_BOM:
                raise PcapFormatError("pcapng: bad byte-order magic")
            blen = struct.unpack(endian + "I", head[4:8])[0]
            body = f.read(blen - 12)
            if len(body) < blen - 12:
                return
            interfaces = []
            continue
        blen = struct.unpack(endian + "I", head[4:8])[0]
        if blen < 12 or blen % 4:
            raise PcapFormatError(f"pcapng: bad block length {blen}")
        body = f.read(blen - 8)
        if len(body) < blen - 8:
            return
        body = body[:-4]                         # the trailing copy of the length
        if btype == 1:                           # Interface Description Block
            linktype = struct.unpack(endian + "H", body[:2])[0]
            interfaces.append((linktype, _pcapng_tsresol(body[8:], endian)))
        elif btype == 6 and interfaces:          # Enhanced Packet Block
            ifid, ts_hi, ts_lo, incl, _orig = struct.unpack(endian + "IIIII", body[:20])
            linktype, tick = interfaces[ifid]
            yield ((ts_hi << 32) | ts_lo) * tick, linktype, body[20:20 + incl]
        elif btype == 3 and interfaces:          # Simple Packet Block: no timestamp
            (orig,) = struct.unpack(endian + "I", body[:4])
            yield 0.0, interfaces[0][0], body[4:4 + orig]


def _pcapng_tsresol(options: bytes, endian: str) -> float:
    """Seconds per timestamp tick from an IDB's options (default microseconds)."""
    off = 0
    while off + 4 <= len(options):
        code, length = struct.unpack(endian + "HH", options[off:off + 4])
        if code == 0:
            break
        if code == 9 and length >= 1:            # if_tsresol
            v = options[off + 4]
            return 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        off += 4 + (length + 3) // 4 * 4
    return 1e-6
