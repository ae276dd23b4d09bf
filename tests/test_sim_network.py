"""Two hosts on a VirtualNetwork: ICMP echo and UDP, clean and impaired, deterministic."""

from __future__ import annotations

import random

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton
from tcpio.core.sim import VirtualNetwork
from tcpio.devices.impair import Impairment

A_IP = ip_aton("10.0.0.1")
B_IP = ip_aton("10.0.0.2")


def pair(imp_ab=None, imp_ba=None, mtu=1500, static_arp=False, seed=0):
    net = VirtualNetwork(seed=seed)
    a = net.host("a")
    b = net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", impairment=imp_ab,
                    impairment_ba=imp_ba, mtu=mtu)
    if static_arp:
        # Pin the neighbours so the impaired wire carries only the traffic under test.
        a.add_static_arp(B_IP, b.interfaces[link.ifb].mac)
        b.add_static_arp(A_IP, a.interfaces[link.ifa].mac)
    net.run_for(0.1)
    link.capture.clear()
    link.trace.clear()
    link.delivered.clear()
    return net, a, b, link


def udp_socks(a, b, port_a, port_b, addr_b=0):
    """A UDP socket on each host, bound to ``port_a`` and ``(addr_b, port_b)``."""
    sa, sb = a.udp.socket(), b.udp.socket()
    sa.bind(0, port_a)
    sb.bind(addr_b, port_b)
    return sa, sb


def drain(sk):
    """The payloads of every datagram waiting on ``sk``, in arrival order."""
    got = []
    while (m := sk.recvfrom()) is not None:
        got.append(m[0])
    return got


def test_ping_and_udp_over_a_clean_link():
    net, a, b, link = pair()
    a.icmp.echo_request(B_IP, 7, 1, b"ping")
    sa, sb = udp_socks(a, b, 5000, 53, B_IP)
    sa.sendto(b"question", B_IP, 53)
    net.run_for(1.0)
    assert [(r.src, r.ident, r.seq, r.data) for r in a.icmp.echo_replies] == \
        [(B_IP, 7, 1, b"ping")]
    assert sb.recvfrom() == (b"question", (A_IP, 5000))
    sb.sendto(b"answer", A_IP, 5000)
    net.run_for(1.0)
    assert sa.recvfrom() == (b"answer", (B_IP, 53))
    # Everything on the wire is well-formed for an independent dissector.
    for _, frame in link.capture:
        pkt = Ether(frame)
        if IP in pkt:
            assert_checksums_good(pkt)


def assert_checksums_good(pkt):
    """Recompute each checksum with scapy and compare with what we sent."""
    for layer in (IP, ICMP, UDP):
        if layer in pkt and not (layer is not IP and pkt[IP].flags.MF or pkt[IP].frag):
            sent = pkt[layer].chksum
            copy = pkt.copy()
            del copy[layer].chksum
            rebuilt = Ether(bytes(copy))
            assert rebuilt[layer].chksum == sent, (layer.__name__, pkt.summary())


@pytest.mark.parametrize("size", [1, 1472, 1473, 8000, 30000, 65507])
def test_large_udp_fragmented_and_reassembled(size):
    net, a, b, link = pair()
    sa, sb = udp_socks(a, b, 1111, 2222)
    data = random.Random(size).randbytes(size)
    sa.sendto(data, B_IP, 2222)
    net.run_for(1.0)
    assert sb.recvfrom() == (data, (A_IP, 1111))
    fragments = [Ether(f) for f in link.frames_from(a) if Ether(f).haslayer(IP)]
    expected = -(-(size + 8) // 1480)       # 1480 payload bytes per fragment at MTU 1500
    assert len(fragments) == expected
    assert all(len(f[IP]) <= 1500 for f in fragments)
    assert a.mib["FragCreates"] == (expected if expected > 1 else 0)
    assert b.mib["ReasmOKs"] == (1 if expected > 1 else 0)


@pytest.mark.parametrize("size", [8000, 65507])
def test_large_echo_both_ways(size):
    net, a, b, _ = pair()
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    a.icmp.echo_request(B_IP, 1, 1, data)
    net.run_for(1.0)
    assert len(a.icmp.echo_replies) == 1
    assert a.icmp.echo_replies[0].data == data
    assert b.mib["FragCreates"] > 1 and a.mib["ReasmOKs"] == 1


def test_fragments_reassembled_in_any_order():
    # Heavy reordering with jitter: the fragments of each datagram arrive shuffled.
    imp = Impairment(jitter=0.01, reorder=0.5, reorder_delay=0.02, seed=11)
    net, a, b, link = pair(imp_ab=imp, static_arp=True)
    sa, sb = udp_socks(a, b, 1, 2)
    blobs = [random.Random(i).randbytes(9000 + i) for i in range(20)]
    for blob in blobs:
        sa.sendto(blob, B_IP, 2)
    net.run_for(2.0)
    got = drain(sb)
    assert sorted(got) == sorted(blobs)
    # Confirm the wire really delivered fragments out of offset order.
    arrivals = [Ether(f)[IP] for _, who, f in link.delivered if who == "b"]
    order: dict[int, list[int]] = {}
    for ip in arrivals:
        order.setdefault(ip.id, []).append(ip.frag)
    shuffled = [offsets for offsets in order.values() if offsets != sorted(offsets)]
    assert len(shuffled) > 5


def test_udp_loses_exactly_what_the_wire_lost():
    imp_ab = Impairment(loss=0.1, reorder=0.2, delay=0.001, seed=5)
    net, a, b, link = pair(imp_ab=imp_ab, static_arp=True)
    sa, sb = udp_socks(a, b, 4000, 4001)
    # Room for every datagram (each is charged its payload plus a per-datagram
    # overhead, like skb truesize): only the wire may lose anything here.
    sb.rcvbuf = 1 << 20
    n = 1000
    for i in range(n):
        sa.sendto(i.to_bytes(4, "big") * 50, B_IP, 4001)
        net.run_for(0.0005)
    net.run_for(1.0)
    got = [int.from_bytes(d[:4], "big") for d in drain(sb)]
    lost = imp_ab.stats["lost"]
    assert 50 < lost < 150
    assert len(got) == n - lost
    # The very datagrams that survived the wire, no more and no fewer.
    survived = {int.from_bytes(bytes(Ether(f)[UDP].payload)[:4], "big")
                for _, who, f in link.delivered if who == "b"}
    assert set(got) == survived
    assert got != sorted(got)               # reordering really happened
    assert b.mib["UdpInDatagrams"] == n - lost


def test_echo_with_loss_both_ways():
    imp_ab = Impairment(loss=0.1, reorder=0.1, seed=1)
    imp_ba = Impairment(loss=0.1, reorder=0.1, seed=2)
    net, a, b, _ = pair(imp_ab, imp_ba, static_arp=True)
    n = 500
    for seq in range(n):
        a.icmp.echo_request(B_IP, 9, seq, b"x" * 56)
        net.run_for(0.001)
    net.run_for(1.0)
    assert b.mib["IcmpInEchos"] == n - imp_ab.stats["lost"]
    assert len(a.icmp.echo_replies) == b.mib["IcmpOutEchoReps"] - imp_ba.stats["lost"]
    assert 0 < len(a.icmp.echo_replies) < n


def run_scenario(seed):
    imp_ab = Impairment(loss=0.1, reorder=0.1, jitter=0.002, duplicate=0.05, seed=seed)
    imp_ba = Impairment(loss=0.1, reorder=0.1, jitter=0.002, seed=seed + 1)
    net, a, b, link = pair(imp_ab, imp_ba)
    sa, _sb = udp_socks(a, b, 0, 9)
    for i in range(100):
        sa.sendto(bytes([i]) * (100 + 50 * i), B_IP, 9)
        a.icmp.echo_request(B_IP, 1, i, b"p")
        net.run_for(0.001)
    net.run_for(5.0)
    return [(t, bytes(f)) for t, f in link.capture], a.mib.snapshot(), b.mib.snapshot()


def test_deterministic_for_a_seed():
    assert run_scenario(3) == run_scenario(3)
    assert run_scenario(3)[0] != run_scenario(4)[0]


def test_run_until_and_virtual_time():
    net, a, b, link = pair(static_arp=True)
    sb = b.udp.socket()
    sb.bind(0, 7)
    woken = []
    sb.wakeup = lambda: woken.append(net.now)
    link.impairment_ab = Impairment(delay=2.5)
    sa = a.udp.socket()
    start = net.now
    sa.sendto(b"late", B_IP, 7)
    assert net.run_until(lambda: sb.pending() > 0, timeout=10.0)
    assert net.now == pytest.approx(start + 2.5)
    assert woken == [net.now]
    assert not net.run_until(lambda: False, timeout=1.0)


def test_corrupted_frames_are_caught_by_checksums_never_delivered():
    # Single bit flips: every one lands in a checksummed header or payload, or in a
    # field whose damage is harmless (source MAC, padding).  Nothing corrupt gets through.
    imp = Impairment(corrupt=0.3, seed=9)
    net, a, b, _ = pair(imp_ab=imp, static_arp=True)
    sa, sb = udp_socks(a, b, 1, 2)
    sent = {random.Random(i).randbytes(200 + i) for i in range(300)}
    for blob in sorted(sent):
        sa.sendto(blob, B_IP, 2)
    net.run_for(1.0)
    got = drain(sb)
    assert set(got) <= sent and len(got) == len(set(got))
    assert imp.stats["corrupted"] > 50
    m = b.mib
    # Each frame ends in exactly one place: delivered intact, or one drop counter.
    drops = (m["EthInNotForUs"] + m["EthInUnknownProtos"] + m["EthInDrops"]
             + m["InHdrErrors"] + m["InAddrErrors"] + m["InTruncatedPkts"]
             + m["InUnknownProtos"] + m["UdpInErrors"] + m["UdpNoPorts"])
    assert len(got) + drops == 300
    assert 300 - imp.stats["corrupted"] <= len(got) < 300
