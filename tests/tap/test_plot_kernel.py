"""``tcpio plot`` on a capture tcpio had no part in: two Linux kernels talking.

Three private namespaces: a sender, a router and a receiver, joined by veth
pairs.  The router's link to the receiver is a token bucket (tbf) with a short
queue, so the sender's bursts overflow it and the kernel retransmits; dumpcap
(Wireshark's capture engine) records the sender's link, upstream of the
losses, so every transmission is in the file once.  GSO is off on the links
(``gso_max_segs 1``): the capture then holds one frame per segment, as the
kernel counts them.

Oracles for the retransmission marks, both independent of tcpio: the sender
kernel's own ``RetransSegs`` (/proc/net/snmp of its namespace, no other
traffic there) for their number, and Wireshark's analysis of the same file
for which frames they are.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from netns import NetNs

from tap.tshark import fields
from tcpio import plot
from tcpio.devices.pcap import read_pcap

pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) not installed")

SIZE = 2_000_000
PORT = 5001
SENTINEL_PORT = 9


def retrans_segs(ns: NetNs) -> int:
    lines = [x.split() for x in ns.run("cat", "/proc/net/snmp", check=True).stdout.splitlines()
             if x.startswith("Tcp:")]
    return int(lines[1][lines[0].index("RetransSegs")])


def sync_capture(ns: NetNs, path: Path, tag: bytes, limit: float = 30.0) -> None:
    """Send UDP datagrams carrying ``tag`` until dumpcap has written one: then the
    capture is live (at the start) or holds everything sent before (at the end)."""
    udp = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            udp.sendto(tag, ("10.9.2.1", SENTINEL_PORT))
            time.sleep(0.1)
            if any(f.endswith(tag) and f[23:24] == b"\x11" for _, _, f in read_pcap(str(path))):
                return
    finally:
        udp.close()
    raise AssertionError(f"dumpcap never wrote the datagram {tag!r}")


def test_kernel_to_kernel_capture_marks_every_kernel_retransmission(tap_required, tmp_path
                                                                    ) -> None:
    sender, router, receiver = NetNs().create(), NetNs().create(), NetNs().create()
    cap = None
    try:
        for ns, dev, peer, peer_dev in ((sender, "vs", router, "rs"),
                                        (receiver, "vr", router, "rr")):
            subprocess.run(["ip", "link", "add", dev, "netns", ns.name, "type", "veth", "peer",
                            "name", peer_dev, "netns", peer.name], check=True)
        for ns, dev, cidr in ((sender, "vs", "10.9.1.1/24"), (router, "rs", "10.9.1.2/24"),
                              (router, "rr", "10.9.2.2/24"), (receiver, "vr", "10.9.2.1/24")):
            ns.ip("addr", "add", cidr, "dev", dev)
            ns.ip("link", "set", dev, "gso_max_segs", "1")
            ns.ip("link", "set", dev, "up")
        sender.ip("route", "add", "default", "via", "10.9.1.2")
        receiver.ip("route", "add", "default", "via", "10.9.2.2")
        router.sysctl("net.ipv4.ip_forward", 1)
        router.run("tc", "qdisc", "add", "dev", "rr", "root", "tbf", "rate", "50mbit",
                   "burst", "3000", "limit", "100000", check=True)

        pcap = tmp_path / "kernel.pcapng"
        cap = subprocess.Popen(sender.exec_argv("dumpcap", "-i", "vs", "-w", str(pcap),
                                                "-f", f"tcp or udp port {SENTINEL_PORT}"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not pcap.exists():
            time.sleep(0.05)
        sync_capture(sender, pcap, b"tcpio-plot-start")

        listener = receiver.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("10.9.2.1", PORT))
        listener.listen(1)
        received = [0]

        def serve() -> None:
            conn, _ = listener.accept()
            while chunk := conn.recv(65536):
                received[0] += len(chunk)
            conn.close()

        server = threading.Thread(target=serve)
        server.start()
        before = retrans_segs(sender)
        client = sender.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.settimeout(60)
        client.connect(("10.9.2.1", PORT))
        client.sendall(bytes(SIZE))
        client.shutdown(socket.SHUT_WR)
        server.join(60)
        client.close()
        listener.close()
        kernel_retrans = retrans_segs(sender) - before
        assert received[0] == SIZE
        sync_capture(sender, pcap, b"tcpio-plot-end")
    finally:
        if cap is not None:
            cap.terminate()
            cap.wait(30)
        for ns in (sender, router, receiver):
            ns.delete()

    [d] = plot.analyze_pcap(str(pcap))
    assert d.sender == ("10.9.1.1", d.sender[1]) and d.receiver == ("10.9.2.1", PORT)
    assert d.data[0][1:] == (0, 1)                                 # the SYN, then ...
    assert sum(e - s for _, s, e in d.data) == SIZE + 2            # SYN and FIN count one
    assert kernel_retrans > 0, "the bottleneck dropped nothing: no loss to mark"
    assert len(d.retransmissions) == kernel_retrans
    # Wireshark flags the same frames (by sequence number).  Most runs it calls
    # every one tcp.analysis.retransmission; now and then it calls one
    # "out of order" instead: a resend that leaves within its first-RTT
    # estimate (SYN to SYN-ACK, tens of microseconds here) of the newest data
    # and not at the ACK point, which its heuristic takes for network
    # reordering.  The kernel's count above is the one without heuristics.
    flagged = [int(r[0]) for r in fields(str(pcap), "tcp.seq", display_filter=(
        "tcp.analysis.retransmission || tcp.analysis.out_of_order"))]
    assert sorted(flagged) == sorted(s for _, s, _ in d.retransmissions)

    png = plot.render(d, str(tmp_path / "kernel.png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot.render(d, str(tmp_path / "kernel.svg"))
    [marks] = [g for g in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}g")
               if g.get("id") == "retransmissions"]
    assert len(marks.findall(".//{http://www.w3.org/2000/svg}use")) == kernel_retrans
