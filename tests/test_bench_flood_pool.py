"""benchmarks/flood_peer.py's raw-socket flood (bench_flood.py --rate): the
SYNs it precomputes are what hping3 --rand-source sends, checked with scapy
(an independent oracle for the TCP checksum it sums by hand): SYN only, no
options, the listener's port, a TCP checksum scapy agrees with, and every
source distinct, unicast and off-link (a repeat would meet its own request
sock in the listener instead of the SYN path under test)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from scapy.layers.inet import IP, TCP

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import flood_peer  # noqa: E402


def test_flood_pool_syns_are_valid_distinct_and_off_link() -> None:
    pool = flood_peer.flood_pool("10.7.0.2", 5002, 2000, seed=3)
    assert len(pool) == 2000
    sources = set()
    for raw in pool:
        pkt = IP(raw)
        tcp = pkt[TCP]
        assert pkt.dst == "10.7.0.2" and pkt.proto == 6 and pkt.ihl == 5
        assert tcp.dport == 5002 and tcp.flags == "S" and tcp.dataofs == 5
        assert tcp.options == [] and tcp.ack == 0
        want = tcp.chksum
        tcp.chksum = None
        assert IP(bytes(pkt))[TCP].chksum == want, raw.hex()
        src = ipaddress.IPv4Address(pkt.src)
        assert not (src.is_multicast or src.is_loopback or src.is_reserved
                    or src.is_unspecified or src in ipaddress.IPv4Network("10.0.0.0/8"))
        sources.add(pkt.src)
    assert len(sources) == len(pool)
    # the same seed, the same pool (runs are comparable)
    assert flood_peer.flood_pool("10.7.0.2", 5002, 2000, seed=3) == pool
