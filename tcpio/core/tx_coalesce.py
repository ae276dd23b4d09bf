"""Coalescing one device batch's TCP frames into super-frames (issue 11).

With many flows TCP's send loop emits small frames: tcp_tso_autosize sizes a
burst to about 1 ms at the pacing rate, and with 1000 flows sharing a link
(each RTT inflated by the queue) that is ``tcp_min_tso_segs``, 2 segments.
Answering one ACK, a flow then sends two such frames back to back, and the
kernel behind a TAP, which takes each frame we write as one skb (no GRO on
that path), ACKs each: frames per byte stay ~12x those of one flow for the
whole transfer, and every frame costs a write, an ACK read and its
processing.

tcpio has no pacing: the segments of one send-loop call leave in the same
device batch whatever their grouping, so the grouping changes only how many
frames carry them.  ``coalesce`` joins consecutive frames of one batch that
continue each other exactly (same connection and headers, next sequence
number and IP ID, full segments of one MSS, DF; the first a super-frame of
new data, as retransmissions leave segment by segment) into one super-frame
with a partial checksum, which the device cuts (TSO over the virtio header)
into the very segments the frames were, except that a segment which ended a
frame but not the super-frame loses its PSH (GSO keeps PSH and FIN on the
last segment only): the segments tcp_tso_autosize gives one burst when the
pacing rate allows it.  Only for a device that takes TSO and partial
checksums (``Interface.gso_max_size`` and ``tx_csum_partial``).
"""

from __future__ import annotations

from collections.abc import Sequence

from tcpio import _fast
from tcpio._fast.gso import GsoFrame, gso_frame

_pseudo_header_sum = _fast.load("checksum").pseudo_header_sum
_internet_checksum = _fast.load("checksum").internet_checksum

_ACK, _PSH, _FIN = 0x10, 0x08, 0x01
_DF = 0x4000
_IP_MAX = 0xFFFF


def _parse(frame: bytes | bytearray, ip: int) -> tuple | None:
    """(key, seq, payload start, IP end, mss, segs, ident, flags) of an IPv4
    TCP frame that may join a super-frame, else None."""
    if len(frame) < ip + 40 or frame[ip] != 0x45 or frame[ip + 9] != 6:
        return None
    if ip and frame[ip - 2:ip] != b"\x08\x00":
        return None                         # Ethernet: IPv4's EtherType only
    if (frame[ip + 6] << 8 | frame[ip + 7]) != _DF:
        return None                         # DF, not a fragment
    l4 = ip + 20
    thl = (frame[l4 + 12] >> 4) * 4
    flags = frame[l4 + 13]
    if flags & ~(_ACK | _PSH | _FIN) or not flags & _ACK:
        return None
    at = l4 + thl
    end = ip + (frame[ip + 2] << 8 | frame[ip + 3])
    plen = end - at
    if plen <= 0 or end > len(frame):
        return None
    if type(frame) is GsoFrame:
        mss = getattr(frame, "gso_size", 0) or plen
        segs = max(getattr(frame, "gso_segs", 1), 1)
    else:
        mss, segs = plen, 1
    # everything but the length, ID, checksums, sequence number and flags
    key = (bytes(frame[:ip + 2]) + bytes(frame[ip + 6:ip + 10]) + bytes(frame[ip + 12:l4 + 4])
           + bytes(frame[l4 + 8:l4 + 13]) + bytes(frame[l4 + 14:l4 + 16])
           + bytes(frame[l4 + 18:at]))
    return (key, int.from_bytes(frame[l4 + 4:l4 + 8], "big"), at, end, mss, segs,
            frame[ip + 4] << 8 | frame[ip + 5], flags)


def _join(run: list, ip: int) -> bytes | bytearray:
    """One super-frame for the frames of ``run`` (each with its _parse)."""
    if len(run) == 1:
        return run[0][0]
    first, d0 = run[0]
    at = d0[2]
    l4 = ip + 20
    head = bytearray(first[:at])
    parts: list = [head]
    segs = 0
    for frame, d in run:
        parts.append(memoryview(frame)[d[2]:d[3]])
        segs += d[5]
    tcp_len = sum(len(p) for p in parts) - l4
    head[ip + 2:ip + 4] = (tcp_len + 20).to_bytes(2, "big")
    head[ip + 10:ip + 12] = b"\0\0"
    head[ip + 10:ip + 12] = _internet_checksum(head[ip:l4]).to_bytes(2, "big")
    head[l4 + 13] = run[-1][1][7]           # the last frame's PSH and FIN
    src = int.from_bytes(head[ip + 12:ip + 16], "big")
    dst = int.from_bytes(head[ip + 16:ip + 20], "big")
    head[l4 + 16:l4 + 18] = _pseudo_header_sum(src, dst, 6, tcp_len).to_bytes(2, "big")
    return gso_frame(b"".join(parts), d0[4], segs, True)


def coalesce(frames: Sequence[bytes | bytearray], ip: int, limit: int
             ) -> Sequence[bytes | bytearray]:
    """``frames`` (one device's batch, in order) with each run of frames that
    continue each other exactly joined into one super-frame of at most
    ``limit`` bytes of IP datagram; ``ip``: the IP header's offset (14 behind
    Ethernet, 0 on a TUN).  The batch itself when nothing joins."""
    limit = min(limit, _IP_MAX)
    out: list[bytes | bytearray] = []
    run: list = []          # (frame, parsed) of the run being built
    joined = False
    nxt = None              # what the next frame must be to join: (key, seq, id, mss)
    size = 0
    # a frame this long joins nothing and nothing joins it (a super-frame of
    # the most a datagram may be, or BIG TCP's, past it: issue 12)
    whole = ip + limit
    for frame in frames:
        if (nxt is None and type(frame) is not GsoFrame) or len(frame) >= whole:
            # no run open, and a plain frame cannot start one (a run starts
            # at a super-frame): the ACKs and lone segments of a batch go
            # through unparsed
            if run:
                out.append(_join(run, ip))
                run = []
            nxt = None
            out.append(frame)
            continue
        d = _parse(frame, ip)
        if (d is not None and nxt is not None and d[0] == nxt[0] and d[1] == nxt[1]
                and d[6] == nxt[2] and d[4] <= nxt[3] and (d[5] == 1 or d[4] == nxt[3])
                and size + d[3] - d[2] <= limit):
            run.append((frame, d))
            joined = True
            size += d[3] - d[2]
        else:
            if run:
                out.append(_join(run, ip))
            if d is None:
                out.append(frame)
                run, nxt = [], None
                continue
            run = [(frame, d)]
            size = d[3] - ip
        plen = d[3] - d[2]
        mss = nxt[3] if len(run) > 1 and nxt is not None else d[4]
        # a run starts at a super-frame (new data: the send loop sends
        # retransmissions segment by segment, and they stay so) and goes on
        # only after full segments of one MSS, never past a FIN
        if (run[0][1][5] > 1 and plen == d[5] * d[4] and d[4] == mss
                and not d[7] & _FIN):
            nxt = (d[0], (d[1] + plen) & 0xFFFFFFFF, (d[6] + d[5]) & 0xFFFF, mss)
        else:
            nxt = None
    if run:
        out.append(_join(run, ip))
    return out if joined else frames
