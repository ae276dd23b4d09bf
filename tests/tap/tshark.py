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
