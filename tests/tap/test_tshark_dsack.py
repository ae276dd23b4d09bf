"""tshark.warnings_besides_answered_dsacks on hand-made captures (no TAP).

Wireshark flags every D-SACK "D-SACK Sequence" (a warning), so a capture
judge that rejects every warning failed whenever the kernel's tail loss
probe was spurious: our ACK came after its PTO (a few ms of a busy loop),
the probe and the original were read together, and we D-SACKed the probe
as RFC 2883 says (Linux does the same).  The helper lets such a D-SACK
pass only when the capture holds the retransmission it answers."""

from __future__ import annotations

from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6

from tcpio.devices.pcap import LINKTYPE_RAW, PcapWriter

from .tshark import PI_WARN, matching, needs_tshark, warnings_besides_answered_dsacks

A, B = "fd00::1", "fd00::2"


def tcp6(src: str, dst: str, sport: int, dport: int, seq: int, ack: int,
         payload: bytes = b"", sack: tuple[int, int] | None = None) -> bytes:
    """One IPv6 TCP segment, built (checksum included) by scapy."""
    opts = [] if sack is None else [("NOP", None), ("NOP", None), ("SAck", sack)]
    return bytes(IPv6(src=src, dst=dst, hlim=64)
                 / TCP(sport=sport, dport=dport, seq=seq, ack=ack, window=65535,
                       flags="PA" if payload else "A", options=opts) / payload)


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
