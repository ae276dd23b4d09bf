"""pcap files: the header and records follow the savefile format, and two
independent readers (scapy, and tshark when installed) read back the same
frames and nanosecond timestamps."""

from __future__ import annotations

import asyncio
import io
import shutil
import struct
import subprocess
from decimal import Decimal

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap
from tap.tshark import PI_WARN, fields, matching, needs_tshark
from virtual_loop import VirtualClockLoop

from tcpio.devices.memory import MemoryWire
from tcpio.devices.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapDevice, PcapWriter

TS = [1_700_000_000_123_456_789, 1_700_000_000_123_456_790, 1_700_000_001_000_000_001]


def udp_frames() -> list[bytes]:
    return [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                  / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + i, dport=7)
                  / (b"x" * i)) for i in range(len(TS))]


def test_file_header_is_nanosecond_pcap(tmp_path):
    path = tmp_path / "h.pcap"
    PcapWriter(str(path), LINKTYPE_RAW, snaplen=4096).close()
    raw = path.read_bytes()
    assert len(raw) == 24
    _magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", raw)
    assert raw[:4] == bytes.fromhex("4d3cb2a1")    # 0xa1b23c4d little-endian
    assert (major, minor, zone, sigfigs, snaplen, linktype) == (2, 4, 0, 0, 4096, 101)


def test_scapy_reads_frames_and_nanoseconds(tmp_path):
    path = tmp_path / "s.pcap"
    frames = udp_frames()
    w = PcapWriter(str(path), LINKTYPE_ETHERNET)
    for f, ts in zip(frames, TS):
        w.write_ns(f, ts)
    w.close()
    got = rdpcap(str(path))
    assert [bytes(p) for p in got] == frames
    assert [Decimal(p.time) for p in got] == [Decimal(ts) / 10**9 for ts in TS]
    assert got[0][UDP].dport == 7


def test_float_seconds_and_snaplen(tmp_path):
    buf = io.BytesIO()
    w = PcapWriter(buf, LINKTYPE_ETHERNET, snaplen=20)
    w.write(b"\xaa" * 100, 12.5)
    w.close()
    raw = buf.getvalue()
    sec, nsec, incl, orig = struct.unpack_from("<IIII", raw, 24)
    assert (sec, nsec, incl, orig) == (12, 500_000_000, 20, 100)
    assert raw[40:] == b"\xaa" * 20


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
def test_tshark_reads_times_and_checksums(tmp_path):
    path = tmp_path / "t.pcap"
    frames = udp_frames()
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for frame, ts in zip(frames, TS):
            w.write_ns(frame, ts)
        w.close()
    out = subprocess.run(
        ["tshark", "-r", str(path), "-o", "udp.check_checksum:TRUE",
         "-T", "fields", "-e", "frame.time_epoch", "-e", "udp.srcport",
         "-e", "udp.checksum.status"],
        capture_output=True, text=True, check=True).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert [Decimal(r[0]) for r in rows] == [Decimal(ts) / 10**9 for ts in TS]
    assert [r[1] for r in rows] == ["1000", "1001", "1002"]
    assert {r[2] for r in rows} == {"1"}          # Good


def test_pcap_device_records_both_directions(tmp_path):
    """A PcapDevice on wire.a sees what a sent and what it received, with the
    clock it was given (virtual time here)."""
    path = tmp_path / "d.pcap"
    frames = udp_frames()

    async def main():
        loop = asyncio.get_running_loop()
        wire = MemoryWire(delay=0.5)
        clock = lambda: round(loop.time() * 1e9)
        dev = PcapDevice(wire.a, str(path), clock=clock)
        received: list[bytes] = []
        dev.start(loop, received.extend)
        wire.b.start(loop, lambda fs: wire.b.send_batch(fs))   # echo back
        t0 = loop.time()
        dev.send_batch(frames[:2])
        dev.send(frames[2])
        await asyncio.sleep(2)
        dev.stop()
        return t0, received

    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        t0, received = runner.run(main())
    assert received == frames
    got = rdpcap(str(path))
    assert [bytes(p) for p in got] == frames + frames
    times = [float(p.time) for p in got]
    assert times[:3] == [pytest.approx(t0)] * 3                # sent
    assert times[3:] == [pytest.approx(t0 + 1.0)] * 3          # echoed: two half-second hops


def test_pcap_device_linktype_follows_device(tmp_path):
    class TunLike:
        name, mtu, link, mac, stats = "tun9", 1500, "ip", None, {}

    dev = PcapDevice(TunLike(), str(tmp_path / "r.pcap"), clock=lambda: 0)
    assert dev.writer.linktype == LINKTYPE_RAW
    assert dev.link == "ip" and dev.mac is None and dev.name == "tun9"


@needs_tshark
def test_tshark_checks_catch_bad_frames(tmp_path):
    """Negative control for the TAP pcap checks: a wrong IP checksum shows as
    Bad with an expert error, a cut-short UDP header as malformed."""
    good = udp_frames()[1]
    bad_csum = bytearray(good)
    bad_csum[24] ^= 0xFF                          # IPv4 header checksum byte
    truncated = good[:14 + 20 + 4]                # IP says more; UDP header cut short
    path = str(tmp_path / "bad.pcap")
    w = PcapWriter(path)
    for i, f in enumerate((good, bytes(bad_csum), truncated)):
        w.write_ns(f, TS[0] + i)
    w.close()
    rows = fields(path, "frame.number", "ip.checksum.status")
    assert [r[1] for r in rows][:2] == ["1", "0"]
    assert [line.split()[0] for line in matching(path, f"_ws.expert.severity >= {PI_WARN}")
            ] == ["2", "3"]
    assert [line.split()[0] for line in matching(path, "_ws.malformed")] == ["3"]
