"""IPv4 in and out of one Host, against packets built and dissected by scapy."""

from __future__ import annotations

import errno
import itertools
import random

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, make_host
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, IPOption_NOP, IPOption_RR, fragment
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host


def inject(h: Host, pkt, now: float = 0.0, raw: bytes | None = None) -> list[Ether]:
    frame = raw if raw is not None else bytes(Ether(dst=MAC, src=PEER_MAC) / pkt)
    h.receive(1, frame, now)
    return [Ether(f) for _, f in h.take_output()]


def eth(raw_ip: bytes) -> bytes:
    return bytes(Ether(dst=MAC, src=PEER_MAC, type=0x0800)) + raw_ip


def echo(size=8, **ip):
    return IP(src=PEER, dst=MY, **ip) / ICMP(id=3, seq=4) / (b"e" * size)


def assert_good(pkt: Ether) -> None:
    for layer in (IP, ICMP, UDP):
        if layer in pkt and (layer is IP or not (pkt[IP].flags.MF or pkt[IP].frag)):
            copy = pkt.copy()
            del copy[layer].chksum
            assert Ether(bytes(copy))[layer].chksum == pkt[layer].chksum, layer.__name__


def test_echo_request_from_scapy_gets_a_correct_reply():
    h = make_host()
    out = inject(h, echo(100, ttl=7, id=99))
    assert len(out) == 1
    rep = out[0]
    assert_good(rep)
    assert rep[Ether].dst == PEER_MAC.hex(":") and rep[Ether].src == MAC.hex(":")
    assert rep[IP].src == MY and rep[IP].dst == PEER and rep[IP].ttl == 64
    assert rep[ICMP].type == 0 and (rep[ICMP].id, rep[ICMP].seq) == (3, 4)
    assert bytes(rep[ICMP].payload) == b"e" * 100
    assert h.mib["InDelivers"] == 1 and h.mib["IcmpOutEchoReps"] == 1


def good_ip() -> bytes:
    return bytes(echo(20))


def with_csum(b: bytearray) -> bytes:
    b[10:12] = b"\0\0"
    s = sum(int.from_bytes(b[i:i + 2], "big") for i in range(0, (b[0] & 15) * 4, 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    b[10:12] = (~s & 0xFFFF).to_bytes(2, "big")
    return bytes(b)


def mutate(fn) -> bytes:
    b = bytearray(good_ip())
    fn(b)
    return bytes(b)


def set_version(b, v=6):
    b[0] = (v << 4) | (b[0] & 15)


@pytest.mark.parametrize("name, packet, counter", [
    ("too short for a header", good_ip()[:19], "InHdrErrors"),
    ("version 6", with_csum(bytearray(mutate(set_version))), "InHdrErrors"),
    ("IHL 4", with_csum(bytearray(mutate(lambda b: b.__setitem__(0, 0x44)))), "InHdrErrors"),
    ("IHL past the data", mutate(lambda b: b.__setitem__(0, 0x4F))[:40], "InHdrErrors"),
    ("bad header checksum", mutate(lambda b: b.__setitem__(10, b[10] ^ 0xFF)), "InCsumErrors"),
    ("total length > frame", with_csum(bytearray(
        mutate(lambda b: b.__setitem__(slice(2, 4), (len(b) + 1).to_bytes(2, "big"))))),
     "InTruncatedPkts"),
    ("total length < IHL", with_csum(bytearray(
        mutate(lambda b: b.__setitem__(slice(2, 4), (19).to_bytes(2, "big"))))),
     "InHdrErrors"),
])
def test_bad_headers_dropped_and_counted(name, packet, counter):
    h = make_host()
    out = inject(h, None, raw=eth(packet))
    assert out == []
    assert h.mib[counter] == 1, name
    assert h.mib["InDelivers"] == 0 and h.mib["InReceives"] == 1


def test_bad_checksum_counts_both_like_linux():
    h = make_host()
    inject(h, None, raw=eth(mutate(lambda b: b.__setitem__(10, b[10] ^ 1))))
    assert h.mib["InCsumErrors"] == 1 and h.mib["InHdrErrors"] == 1


def test_ethernet_padding_is_trimmed_by_total_length():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    pkt = IP(src=PEER, dst=MY) / UDP(sport=9, dport=53) / b"hi"
    inject(h, None, raw=eth(bytes(pkt) + b"\xAA" * 20))
    assert sk.recvfrom() == (b"hi", (ip_aton(PEER), 9))


def test_options_are_skipped_safely():
    h = make_host()
    pkt = IP(src=PEER, dst=MY, options=[IPOption_NOP(), IPOption_RR(routers=["1.2.3.4"])]) \
        / ICMP(id=1, seq=1) / b"opt"
    out = inject(h, pkt)
    assert len(out) == 1 and out[0][ICMP].type == 0 and out[0][Raw].load == b"opt"


@pytest.mark.parametrize("opts", [b"\x44\x01\x00\x00", b"\x07\x30\x00\x00", b"\x01\x01\x01\x83"])
def test_malformed_options_dropped(opts):
    b = bytearray(bytes(IP(src=PEER, dst=MY, ihl=6) / ICMP()))
    b[0] = 0x46
    b[20:20] = opts
    b[2:4] = (len(b)).to_bytes(2, "big")
    h = make_host()
    out = inject(h, None, raw=eth(with_csum(b)))
    # Not delivered (no echo reply): only a parameter problem goes back
    # (tests/test_host_ip_rcv_rules.py pins its pointer).
    assert [(p[ICMP].type, p[ICMP].code) for p in out] == [(12, 0)]
    assert h.mib["InHdrErrors"] == 1 and h.mib["InDelivers"] == 0


def test_not_for_us_dropped():
    h = make_host()
    assert inject(h, IP(src=PEER, dst="10.0.0.77") / ICMP()) == []
    assert h.mib["InAddrErrors"] == 1
    # Another station's MAC: dropped before IP even looks.
    frame = bytes(Ether(dst="02:00:00:00:00:99", src=PEER_MAC) / echo())
    assert inject(h, None, raw=frame) == []
    assert h.mib["EthInNotForUs"] == 1 and h.mib["InReceives"] == 1


def test_martian_source_dropped():
    h = make_host()
    assert inject(h, IP(src="224.0.0.1", dst=MY) / ICMP()) == []
    assert h.mib["InAddrErrors"] == 1


def test_broadcast_echo_ignored_but_udp_broadcast_delivered():
    h = make_host()
    assert inject(h, IP(src=PEER, dst="10.0.0.255") / ICMP()) == []
    assert h.mib["IcmpInEchos"] == 1 and h.mib["IcmpOutEchoReps"] == 0
    sk = h.udp.socket()
    sk.bind(0, 67)
    inject(h, IP(src=PEER, dst="255.255.255.255") / UDP(sport=68, dport=67) / b"b")
    assert sk.recvfrom() == (b"b", (ip_aton(PEER), 68))
    # No port unreachable for broadcasts to a closed port.
    assert inject(h, IP(src=PEER, dst="10.0.0.255") / UDP(sport=68, dport=99) / b"b") == []


@pytest.mark.parametrize("dst,dst_mac", [("10.0.0.255", MAC), ("255.255.255.255", MAC),
                                         (MY, "ff:ff:ff:ff:ff:ff")])
def test_tcp_to_a_broadcast_is_silently_discarded(dst, dst_mac):
    """RFC 1122 4.2.3.10: a SYN addressed to a broadcast address MUST be
    silently discarded (Linux's tcp_v4_rcv drops anything not PACKET_HOST,
    link-layer broadcasts included): no SYN-ACK from a broadcast source, no RST."""
    h = make_host()
    ls = h.tcp.socket()
    ls.bind(0, 80)
    ls.listen(4)
    for dport, flags in ((80, "S"), (81, "S"), (80, "A")):
        seg = IP(src=PEER, dst=dst) / TCP(sport=1234, dport=dport, flags=flags, seq=1, ack=5)
        assert inject(h, None, raw=bytes(Ether(dst=dst_mac, src=PEER_MAC) / seg)) == []
    assert not ls.syn_queue and h.mib["TcpInBroadcastDrops"] == 3
    # the same SYN to our unicast address is answered
    (synack,) = inject(h, IP(src=PEER, dst=MY) / TCP(sport=1234, dport=80, flags="S", seq=1))
    assert synack[TCP].flags == "SA" and synack[IP].src == MY


def test_unknown_protocol_gets_protocol_unreachable():
    h = make_host()
    out = inject(h, IP(src=PEER, dst=MY, proto=200) / Raw(b"12345678abc"))
    assert h.mib["InUnknownProtos"] == 1
    (err,) = out
    assert_good(err)
    assert err[ICMP].type == 3 and err[ICMP].code == 2
    assert err[IPerror].proto == 200     # scapy dissects the quoted header


# ----- fragmentation out ---------------------------------------------------------------

def test_big_echo_reply_is_fragmented_and_scapy_reassembles_it():
    h = make_host()
    data = random.Random(1).randbytes(8000)
    request = IP(src=PEER, dst=MY, id=1234) / ICMP(id=1, seq=2) / data
    out = []
    for frag in fragment(request, fragsize=1480):
        out += inject(h, frag)
    assert h.mib["ReasmOKs"] == 1
    assert len(out) == 6 and all(len(p[IP]) <= 1500 for p in out)
    assert len({p[IP].id for p in out}) == 1
    for p in out:
        assert_good(p)
    whole = b"".join(bytes(p[IP].payload) for p in sorted(out, key=lambda p: p[IP].frag))
    icmp = ICMP(whole)
    assert icmp.type == 0 and bytes(icmp.payload) == data
    copy = icmp.copy()
    del copy.chksum
    assert ICMP(bytes(copy)).chksum == icmp.chksum


def test_df_over_mtu_gives_emsgsize():
    h = make_host()
    with pytest.raises(OSError) as exc:
        h.ip_output(17, None, ip_aton(PEER), b"x" * 1481, df=True)
    assert exc.value.errno == errno.EMSGSIZE
    assert h.mib["FragFails"] == 1 and h.take_output() == []
    h.ip_output(17, None, ip_aton(PEER), b"x" * 1480, df=True)
    (frame,) = [Ether(f) for _, f in h.take_output()]
    assert frame[IP].flags.DF and len(frame[IP]) == 1500


def test_no_route_is_enetunreach():
    h = make_host()
    with pytest.raises(OSError) as exc:
        h.ip_output(17, None, ip_aton("192.168.1.1"), b"x")
    assert exc.value.errno == errno.ENETUNREACH
    assert h.mib["OutNoRoutes"] == 1


def test_ip_ids_unique_per_destination():
    h = make_host()
    for _ in range(1000):
        h.ip_output(253, None, ip_aton(PEER), b"x")
    ids = [Ether(f)[IP].id for _, f in h.take_output()]
    assert len(set(ids)) == 1000


# ----- reassembly ------------------------------------------------------------------------

def udp_frags(size=5000, ident=77, fragsize=1000, dport=53):
    data = random.Random(size).randbytes(size)
    pkt = IP(src=PEER, dst=MY, id=ident) / UDP(sport=1, dport=dport) / data
    return data, fragment(pkt, fragsize=fragsize)


@pytest.mark.parametrize("seed", range(5))
def test_reassembly_in_any_order_with_duplicates(seed):
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    data, frags = udp_frags()
    rng = random.Random(seed)
    rng.shuffle(frags)
    # An exact duplicate of a fragment already queued is harmless (before completion:
    # after it, a late duplicate starts a new queue that times out, as on Linux).
    k = rng.randrange(1, len(frags))
    frags.insert(k, frags[rng.randrange(k)])
    for f in frags:
        inject(h, f)
    assert sk.recvfrom() == (data, (ip_aton(PEER), 1))
    assert h.mib["ReasmOKs"] == 1 and h.mib["ReasmFails"] == 0
    assert len(h.frags) == 0 and h.frags.mem == 0


def raw_frag(offset: int, payload: bytes, mf: bool, ident=5, proto=17) -> IP:
    return IP(src=PEER, dst=MY, id=ident, proto=proto, frag=offset // 8,
              flags="MF" if mf else 0) / Raw(payload)


def test_overlapping_fragments_drop_the_whole_datagram():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    udp = bytes(UDP(sport=1, dport=53) / (b"a" * 40))   # checksum over the honest bytes
    inject(h, raw_frag(0, udp[:24], True))
    inject(h, raw_frag(16, b"Z" * 16, True))            # overlaps 16..24
    inject(h, raw_frag(24, udp[24:], False))
    assert sk.recvfrom() is None
    assert h.mib["ReasmOverlaps"] == 1 and h.mib["ReasmFails"] >= 1
    assert h.mib["ReasmOKs"] == 0


def test_fragment_data_past_the_last_fragment_is_rejected():
    h = make_host()
    inject(h, raw_frag(64, b"x" * 16, True))
    inject(h, raw_frag(8, b"x" * 8, False))             # claims the datagram ends at 16
    assert h.mib["ReasmFails"] == 1 and len(h.frags) == 0


def test_ping_of_death_dropped():
    h = make_host()
    inject(h, raw_frag(65528, b"x" * 64, False, proto=1))
    inject(h, raw_frag(0, bytes(ICMP()) + b"x" * 8, True, proto=1))
    assert h.mib["ReasmOKs"] == 0 and h.mib["ReasmFails"] >= 1


def test_reassembly_timeout_sends_time_exceeded_if_first_fragment_seen():
    h = make_host()
    _, frags = udp_frags(ident=1)
    inject(h, frags[0], now=0.0)                 # offset 0 seen
    _, frags2 = udp_frags(ident=2)
    inject(h, frags2[1], now=0.0)                # only a middle fragment
    assert h.next_deadline() == pytest.approx(30.0)
    h.poll(29.9)
    assert h.take_output() == []
    h.poll(30.0)
    out = [Ether(f) for _, f in h.take_output()]
    assert h.mib["ReasmTimeout"] == 2 and h.mib["ReasmFails"] == 2
    (err,) = out                                  # one error: for the datagram with fragment 0
    assert_good(err)
    assert (err[ICMP].type, err[ICMP].code) == (11, 1)
    assert err[IPerror].id == 1


def test_fragment_flood_stays_under_the_memory_cap():
    cap = 64 * 1024
    h = make_host(ipfrag_high_thresh=cap)
    for ident in range(500):
        inject(h, raw_frag(0, b"f" * 1000, True, ident=ident))
        assert h.frags.mem <= cap
    assert h.mib["ReasmEvictions"] > 400
    assert h.mib["ReasmFails"] == h.mib["ReasmEvictions"]
    # The newest datagrams survived and can still complete.
    sk = h.udp.socket()
    sk.bind(0, 53)
    data, frags = udp_frags(size=3000, ident=9999)
    for f in frags:
        inject(h, f)
    assert sk.recvfrom()[0] == data


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_reassembly_property_any_split_any_order(data):
    """Any split on 8-byte boundaries, in any order, with repeats, gives the datagram back."""
    size = data.draw(st.integers(9, 6000))
    payload = random.Random(size).randbytes(size - 8)
    udp = bytes(UDP(sport=1, dport=53) / payload)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, (len(udp) - 1) // 8), max_size=12))))
    bounds = [0, *(c * 8 for c in cuts), len(udp)]
    frags = [raw_frag(lo, udp[lo:hi], hi < len(udp), ident=size)
             for lo, hi in itertools.pairwise(bounds)]
    order = data.draw(st.permutations(frags))
    if len(order) > 1:
        # Repeat an already-delivered fragment before the datagram completes.
        k = data.draw(st.integers(1, len(order) - 1))
        order = [*order[:k], order[data.draw(st.integers(0, k - 1))], *order[k:]]
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    for f in order:
        inject(h, f)
    assert sk.recvfrom() == (payload, (ip_aton(PEER), 1))
    assert len(h.frags) == 0 and h.frags.mem == 0
    assert h.mib["ReasmOKs"] == (1 if len(frags) > 1 else 0)
