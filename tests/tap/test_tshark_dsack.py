"""tshark.warnings_besides_answered_dsacks on hand-made captures (no TAP).

Wireshark flags every D-SACK "D-SACK Sequence" (a warning), so a capture
judge that rejects every warning failed whenever the kernel's tail loss
probe was spurious: our ACK came after its PTO (a few ms of a busy loop),
the probe and the original were read together, and we D-SACKed the probe
as RFC 2883 says (Linux does the same).  The helper lets such a D-SACK
pass only when the capture holds the retransmission it answers."""

from __future__ import annotations

import ipaddress
import struct

from tcpio.devices.pcap import LINKTYPE_RAW, PcapWriter

from .tshark import PI_WARN, matching, needs_tshark, warnings_besides_answered_dsacks

A, B = ipaddress.IPv6Address("fd00::1").packed, ipaddress.IPv6Address("fd00::2").packed


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp6(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
         payload: bytes = b"", sack: tuple[int, int] | None = None) -> bytes:
    opts = b"" if sack is None else b"\x01\x01\x05\x0a" + struct.pack("!II", *sack)
    hlen = 20 + len(opts)
    hdr = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, hlen // 4 << 4,
                      0x18 if payload else 0x10, 65535, 0, 0) + opts
    seg = hdr + payload
    pseudo = src + dst + struct.pack("!IxxxB", len(seg), 6)
    seg = seg[:16] + struct.pack("!H", _csum(pseudo + seg)) + seg[18:]
    return struct.pack("!IHBB", 6 << 28, len(seg), 6, 64) + src + dst + seg


def capture(path: str, frames: list[bytes]) -> str:
    w = PcapWriter(path, LINKTYPE_RAW)
    for i, f in enumerate(frames):
        w.write(f, 1.0 + i * 0.001)
    w.close()
    return path


DATA = tcp6(A, B, 40000, 7600, 1000, 5000, b"x" * 100)
EARLIER = tcp6(A, B, 40000, 7600, 900, 5000, b"y" * 100)
DSACK = tcp6(B, A, 7600, 40000, 5000, 1100, sack=(1000, 1100))
WARN = f"tcp && _ws.expert.severity >= {PI_WARN}"


@needs_tshark
def test_a_dsack_answering_a_captured_retransmission_passes(tmp_path):
    path = capture(str(tmp_path / "a.pcap"), [EARLIER, DATA, DATA, DSACK])
    assert len(matching(path, WARN)) == 1          # Wireshark warns, as before
    assert warnings_besides_answered_dsacks(path) == []


@needs_tshark
def test_a_dsack_of_data_never_retransmitted_still_counts(tmp_path):
    path = capture(str(tmp_path / "b.pcap"), [EARLIER, DATA, DSACK])
    assert len(warnings_besides_answered_dsacks(path)) == 1


@needs_tshark
def test_a_dsack_before_the_retransmission_still_counts(tmp_path):
    path = capture(str(tmp_path / "c.pcap"), [EARLIER, DATA, DSACK, DATA])
    assert len(warnings_besides_answered_dsacks(path)) == 1
