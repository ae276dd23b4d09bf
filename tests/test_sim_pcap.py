"""Our frames through an independent dissector: tshark finds every checksum Good."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tcpio.core.addr import ip_aton
from tcpio.core.sim import VirtualNetwork

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

CHECKS = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]


def tshark(path, *args: str) -> list[str]:
    out = subprocess.run(["tshark", "-r", str(path), *CHECKS, *args], capture_output=True,
                         text=True, timeout=120, check=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_tshark_reports_good_checksums_and_nothing_malformed(tmp_path):
    net = VirtualNetwork()
    a, b = net.host("a"), net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    srv = b.udp.socket()
    srv.bind(0, 7)
    cli = a.udp.socket()
    for size in (0, 1, 100, 1472, 1473, 8000, 65507):
        cli.sendto(bytes(size % 251 for size in range(size)), ip_aton("10.0.0.2"), 7)
        a.icmp.echo_request(ip_aton("10.0.0.2"), 1, size & 0xFFFF, b"p" * min(size, 8000))
    cli.sendto(b"nobody", ip_aton("10.0.0.2"), 9)            # port unreachable back
    net.run_for(1.0)
    assert srv.pending() == 7 and len(a.icmp.echo_replies) == 7
    path = tmp_path / "sim.pcap"
    n = link.write_pcap(str(path))
    fields = tshark(path, "-T", "fields", "-e", "frame.number", "-e", "ip.checksum.status",
                    "-e", "udp.checksum.status", "-e", "icmp.checksum.status",
                    "-e", "_ws.malformed")
    assert len(fields) == n
    statuses = [line.split("\t") for line in fields]
    ip_ok = [s for s in statuses if s[1]]
    assert len(ip_ok) > 60                                    # fragments included
    for number, ip_status, udp_status, icmp_status, malformed in statuses:
        for status in (ip_status, udp_status, icmp_status):
            # "1" is Good; a quoted header in an ICMP error shows as "1,1" etc.
            assert set(status.split(",")) <= {"1", ""}, (number, ip_status, udp_status,
                                                          icmp_status)
        assert not malformed, number
    assert tshark(path, "-Y", "_ws.expert.severity >= 6291456") == []   # no warnings/errors
    # tshark's own reassembly sees the 8000-byte echo and the 65507-byte datagram whole.
    sizes = tshark(path, "-Y", "udp.dstport == 7", "-T", "fields", "-e", "udp.length")
    assert "65515" in sizes and "8008" in sizes
