"""Wireshark's dissector as an independent judge of our pcaps (tshark 4.x).

Checksum validation is off by default in Wireshark for IP and UDP (offloads
make captured checksums unreliable on real NICs); we turn it on, since tcpio
computes every checksum itself.  ICMP checksums are always checked.

``*.checksum.status`` values: 0 Bad, 1 Good, 2 Unverified, 3 Not present.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

CHECK_ALL = ("-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
             "-o", "tcp.check_checksum:TRUE")
PI_WARN = 0x00600000        # expert severity: PI_CHAT < PI_NOTE < PI_WARN < PI_ERROR

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                  reason="tshark (Debian package) missing")


def tshark(path: str, *args: str) -> str:
    """tshark's stdout for ``path`` with every checksum check on."""
    return subprocess.run(["tshark", "-n", "-r", path, *CHECK_ALL, *args],
                          capture_output=True, text=True, check=True, timeout=120).stdout


def fields(path: str, *names: str, display_filter: str | None = None) -> list[list[str]]:
    """One row per frame, one column per field; repeated fields joined by ','."""
    args = ["-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for name in names:
        args += ["-e", name]
    if display_filter:
        args += ["-Y", display_filter]
    return [line.split("\t") for line in tshark(path, *args).splitlines() if line]


def matching(path: str, display_filter: str) -> list[str]:
    """Summary lines of the frames a display filter selects (empty = none)."""
    return tshark(path, "-Y", display_filter).splitlines()


DSACK_MESSAGE = "D-SACK Sequence"


def _seq_range(seq: str, nxt: str) -> tuple[int, int]:
    start = int(seq)
    return start, int(nxt) if nxt else start


def warnings_besides_answered_dsacks(path: str, display_filter: str = "tcp") -> list[str]:
    """Summary lines of the frames ``display_filter`` selects that carry an
    expert warning or worse, except a D-SACK that answers a retransmission
    the capture holds: a pure "D-SACK Sequence" warning whose range lies in
    a segment seen earlier in the same stream, the other way, marked a
    retransmission.

    Wireshark flags every D-SACK a warning, but a receiver that gets a
    segment twice (here: the kernel's tail loss probe, sent because our ACK
    came after its PTO, and the original both in one read) SHOULD report it
    (RFC 2883; Linux's tcp_send_dupack / tcp_data_queue do; the sender uses
    it to undo the probe's cwnd reduction, RFC 8985 7.4.2).  A D-SACK of
    data never retransmitted, and any other warning, still counts."""
    warn = f"({display_filter}) && _ws.expert.severity >= {PI_WARN}"
    rows = fields(path, "frame.number", "_ws.expert.severity", "_ws.expert.message",
                  "tcp.stream", "tcp.srcport", "tcp.options.sack.dsack_le",
                  "tcp.options.sack.dsack_re", display_filter=warn)
    if not rows:
        return []
    rtx: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for frame, stream, sport, seq, nxt in fields(
            path, "frame.number", "tcp.stream", "tcp.srcport", "tcp.seq", "tcp.nxtseq",
            display_filter="tcp.analysis.retransmission"):
        rtx.setdefault((stream, sport), []).append((int(frame), *_seq_range(seq, nxt)))
    unexplained = []
    for frame, sevs, msgs, stream, sport, le, re_ in rows:
        severe = [m for s, m in zip(sevs.split(","), msgs.split(","))
                  if int(s, 0) >= PI_WARN]
        if le and re_ and set(severe) == {DSACK_MESSAGE}:
            lo, hi = int(le.split(",")[0]), int(re_.split(",")[0])
            if any(f < int(frame) and s <= lo and hi <= e
                   for key, segs in rtx.items() if key[0] == stream and key[1] != sport
                   for f, s, e in segs):
                continue
        unexplained.append(frame)
    if not unexplained:
        return []
    return matching(path, " || ".join(f"frame.number == {f}" for f in unexplained))
