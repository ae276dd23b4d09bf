"""The receive-path classifier (tcpio._fast.rx), both twins.

What must hold:
- rx_classify says "deliver" only for frames the layered path (ether_input ->
  ip_rcv -> udp/tcp) would deliver, with the same fields; scapy builds the
  frames and is the oracle for the fields and for what a bad frame is.
- A host using the fast path and a host forced onto the layered path end in
  the same state for any frame, valid or hypothesis-mangled: same MIB counters
  (every drop reason), same datagrams queued, same frames sent (ICMP errors),
  same segments handed to TCP.
- The two twins give identical answers.
"""

from __future__ import annotations

import pytest
from conftest import built_twins, twin_fixture, twin_pair
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, in4_chksum
from scapy.layers.l2 import ARP, Ether
from scapy.utils import checksum

from tcpio import _fast
from tcpio.core import host as host_mod
from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings

HYPO = settings(max_examples=300, deadline=None, derandomize=True, database=None)

MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
MY, MY2, PEER = "10.0.0.2", "10.0.0.3", "10.0.0.1"
BCAST = "10.0.0.255"
LOCAL = {ip_aton(MY): 1, ip_aton(MY2): 1}
BCASTS = {0xFFFFFFFF, ip_aton(BCAST)}


rx = twin_fixture("rx", "rx")


def eth(pkt, dst=MAC) -> bytes:
    return bytes(Ether(dst=dst, src=PEER_MAC) / pkt)


def udp(data=b"hello", sport=1000, dport=53, src=PEER, dst=MY, **kw) -> IP:
    return IP(src=src, dst=dst) / UDP(sport=sport, dport=dport, **kw) / data


def tcp(data=b"", sport=40000, dport=80, src=PEER, dst=MY, **kw) -> IP:
    fields = {"flags": "A", "seq": 1, "ack": 2, **kw}
    return IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, **fields) / data


def corrupt(frame: bytes, index: int, xor: int = 0xFF) -> bytes:
    b = bytearray(frame)
    b[index] ^= xor
    return bytes(b)


# ----- fields against scapy -------------------------------------------------------------

def test_udp_fields_match_scapy(rx):
    frame = eth(udp(b"payload!", sport=1234, dport=53))
    rec = rx.rx_classify(frame, MAC, LOCAL, BCASTS)
    assert rec is not None
    proto, src, dst, sport, dport, data, off, end = rec
    pkt = Ether(frame)
    assert (proto, src, dst) == (17, ip_aton(pkt[IP].src), ip_aton(pkt[IP].dst))
    assert (sport, dport, data) == (1234, 53, b"payload!")
    assert frame[off:end] == bytes(pkt[UDP])


def test_tcp_fields_and_iph_match_scapy(rx):
    frame = eth(tcp(b"x" * 100, sport=40001, dport=8080, options=[("MSS", 1460)]))
    rec = rx.rx_classify(frame, MAC, LOCAL, BCASTS)
    assert rec is not None
    proto, src, dst, sport, dport, iph, off, end = rec
    pkt = Ether(frame)
    assert (proto, sport, dport) == (6, 40001, 8080)
    assert (iph.src, iph.dst, iph.proto, iph.ttl, iph.ident) == \
        (src, dst, 6, pkt[IP].ttl, pkt[IP].id)
    assert iph == _fast.load("wire").parse_ipv4(frame, 14)
    assert frame[off:end] == bytes(pkt[TCP])


def test_ethernet_padding_is_trimmed(rx):
    # A 2-byte UDP payload makes a 44-byte frame: the sender pads it to 60.
    frame = eth(udp(b"ab"))
    padded = frame + bytes(60 - len(frame))
    rec = rx.rx_classify(padded, MAC, LOCAL, BCASTS)
    assert rec[5] == b"ab" and rec[7] == len(frame)


def test_udp_length_shorter_than_ip_payload_is_trimmed(rx):
    # RFC 768: the UDP length rules; extra bytes inside the IP datagram are not data.
    pkt = IP(src=PEER, dst=MY) / UDP(sport=1, dport=53, len=8 + 3, chksum=0) / b"abcdef"
    rec = rx.rx_classify(eth(pkt), MAC, LOCAL, BCASTS)
    assert rec is not None and rec[5] == b"abc"


def test_zero_udp_checksum_means_none(rx):
    frame = eth(udp(b"nocsum", chksum=0))
    assert rx.rx_classify(frame, MAC, LOCAL, BCASTS)[5] == b"nocsum"


def test_bare_ip_link(rx):
    packet = bytes(udp(b"tun"))
    assert rx.rx_classify(packet, None, LOCAL, BCASTS)[5] == b"tun"
    assert rx.rx_classify(bytes(IP(src=PEER, dst=MY, version=6) / (b"x" * 40)), None,
                          LOCAL, BCASTS) is None


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_buffer_types_agree(rx, kind):
    for frame in (eth(udp(b"abc")), eth(tcp(b"def"))):
        assert rx.rx_classify(kind(frame), MAC, LOCAL, BCASTS) == \
            rx.rx_classify(frame, MAC, LOCAL, BCASTS)


def test_tcp_checksum_only_when_asked(rx):
    frame = eth(tcp(b"data"))
    bad = corrupt(frame, len(frame) - 1)
    assert rx.rx_classify(bad, MAC, LOCAL, BCASTS, True) is None
    assert rx.rx_classify(bad, MAC, LOCAL, BCASTS, False) is not None


# ----- every reason to leave the fast path, and the counter the slow path moves -----------

def _frame_cases():
    good_udp = eth(udp(b"hello"))
    good_tcp = eth(tcp(b"hello"))
    ip0 = 14
    u0 = 34
    return [
        # (id, frame, MIB counter the layered path must move)
        ("runt", good_udp[:13], "EthInTruncated"),
        ("other-mac", eth(udp(), dst="02:00:00:00:00:09"), "EthInNotForUs"),
        ("bcast-mac", eth(udp(dst=BCAST), dst="ff:ff:ff:ff:ff:ff"), "InBcastPkts"),
        ("arp", eth(ARP(op=1, psrc=PEER, pdst=MY, hwsrc="02:00:00:00:00:01"),
                    dst="ff:ff:ff:ff:ff:ff"), None),
        ("ipv6-type", Ether(dst=MAC, src=PEER_MAC, type=0x86DD).build() + bytes(40),
         "Ip6InHdrErrors"),            # IPv6's layered path: version 0
        ("ip-short", good_udp[:ip0 + 19], "InHdrErrors"),
        ("version", eth(IP(src=PEER, dst=MY, version=5) / UDP() / b"x"), "InHdrErrors"),
        ("ihl-4", eth(IP(src=PEER, dst=MY, ihl=4) / UDP(dport=53) / b"xxxxxxxx"),
         "InHdrErrors"),
        ("options", eth(IP(src=PEER, dst=MY, options=b"\x01\x01\x01\x00") / UDP(dport=53)),
         "UdpInDatagrams"),
        ("hdr-csum", corrupt(good_udp, ip0 + 10), "InCsumErrors"),
        ("tot-len-long", eth(IP(src=PEER, dst=MY, len=200) / UDP(dport=53) / b"x"),
         "InTruncatedPkts"),
        ("tot-len-short", eth(IP(src=PEER, dst=MY, len=19) / UDP(dport=53) / b"x"),
         "InHdrErrors"),
        ("mf", eth(IP(src=PEER, dst=MY, flags="MF", id=7) / UDP(dport=53) / (b"x" * 16)),
         "ReasmReqds"),
        ("frag-off", eth(IP(src=PEER, dst=MY, frag=3, id=8, proto=17) / (b"x" * 16)),
         "ReasmReqds"),
        ("src-multicast", eth(udp(src="224.0.0.1")), "InAddrErrors"),
        ("src-bcast", eth(udp(src="255.255.255.255")), "InAddrErrors"),
        ("src-loopback", eth(udp(src="127.0.0.1")), "InAddrErrors"),
        # fib_validate_source: our own address or our broadcast as a source is forged;
        # 0/8 is a source only towards 255.255.255.255 (never unicast to us).
        ("src-ours", eth(udp(src=MY2)), "InAddrErrors"),
        ("src-dir-bcast", eth(udp(src=BCAST)), "InAddrErrors"),
        ("src-zeronet", eth(udp(src="0.1.2.3")), "InAddrErrors"),
        ("src-unspecified", eth(udp(src="0.0.0.0")), "InAddrErrors"),
        ("dst-loopback", eth(udp(dst="127.0.0.1")), "InAddrErrors"),
        ("not-ours", eth(udp(dst="10.0.0.77")), "InAddrErrors"),
        ("dst-bcast", eth(udp(dst=BCAST)), "InBcastPkts"),
        ("icmp", eth(IP(src=PEER, dst=MY) / ICMP()), "InDelivers"),
        ("unknown-proto", eth(IP(src=PEER, dst=MY, proto=99) / b"xxxx"), "InUnknownProtos"),
        ("udp-short", eth(IP(src=PEER, dst=MY, proto=17) / b"1234567"), "UdpInErrors"),
        ("udp-len-small", eth(udp(len=7)), "UdpInErrors"),
        ("udp-len-big", eth(udp(len=200)), "UdpInErrors"),
        ("udp-len-big-nocsum", eth(udp(len=200, chksum=0)), "UdpInErrors"),
        ("udp-csum", corrupt(good_udp, len(good_udp) - 1), "UdpInCsumErrors"),
        ("udp-csum-field", corrupt(good_udp, u0 + 7, 0x01), "UdpInCsumErrors"),
        ("udp-no-port", eth(udp(dport=9)), "UdpNoPorts"),
        ("tcp-short", eth(IP(src=PEER, dst=MY, proto=6) / (b"\0" * 19)), "InErrs"),
        ("tcp-csum", corrupt(good_tcp, len(good_tcp) - 1), "InCsumErrors"),
        ("tcp-doff-4", eth(tcp(dataofs=4)), "InErrs"),
        ("tcp-doff-15", eth(tcp(dataofs=15)), "InErrs"),
    ]


CASES = _frame_cases()


@pytest.mark.parametrize("frame,counter", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_slow_cases_leave_the_fast_path(rx, frame, counter):
    """Each reason is rejected by the classifier and counted by the layered path."""
    rec = rx.rx_classify(frame, MAC, LOCAL, BCASTS)
    if counter == "UdpNoPorts":
        assert rec is not None        # valid: the socket lookup is the host's job
    else:
        assert rec is None
    fast, slow = run_pair(rx, [frame])
    assert fast == slow
    if counter is not None:
        assert slow["mib"].get(counter, 0) >= 1, slow["mib"]


# ----- fast host == layered host ------------------------------------------------------------

class TcpSink:
    """Stands in for TCP: records what it is given, drops like tcp_v4_rcv counts."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.got: list[tuple[int, int, int, bytes]] = []

    def rcv(self, iph, payload, now) -> bool:
        data = bytes(payload)
        csum = _fast.load_pure("checksum")
        mib = self.host.mib
        if len(data) >= 20 and csum.tcpudp_checksum(iph.src, iph.dst, 6, data):
            mib["InCsumErrors"] += 1
            mib["InErrs"] += 1
            return True
        if len(data) < 20 or (data[12] >> 4) < 5 or (data[12] >> 4) * 4 > len(data):
            mib["InErrs"] += 1
            return True
        self.got.append((iph.src, iph.dst, iph.ttl, data))
        return True

    def err(self, *args) -> None:
        pass


class VerifiedTcpSink(TcpSink):
    """A TCP offering rcv_verified (the host verified checksum and data offset)."""

    def rcv_verified(self, iph, payload, now) -> bool:
        self.got.append((iph.src, iph.dst, iph.ttl, bytes(payload)))
        return True


def make_host(sink_cls=TcpSink) -> tuple[Host, list, TcpSink]:
    h = Host("h", seed=1, settings=Settings())
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, ip_aton(MY), 24)
    h.add_address(1, ip_aton(MY2), 24)
    h.add_static_arp(ip_aton(PEER), PEER_MAC)
    h.take_output()
    socks = []
    # Port 53: one wildcard sock.  54: one per address plus a connected one,
    # scored like compute_score.  55: one connected sock only.
    for addr, port, peer in ((0, 53, None), (ip_aton(MY2), 54, None), (0, 54, None),
                             (ip_aton(MY), 54, (PEER, 1000)), (0, 55, (PEER, 1234))):
        sk = h.udp.socket()
        sk.reuseaddr = True
        sk.bind(addr, port)
        if peer is not None:
            sk.connect(ip_aton(peer[0]), peer[1])
        socks.append(sk)
    sink = sink_cls(h)
    h.register_protocol(6, sink)
    return h, socks, sink


def run_host(frames, classify, sink_cls=TcpSink) -> dict:
    h, socks, sink = make_host(sink_cls)
    saved = host_mod.rx_classify
    host_mod.rx_classify = classify
    try:
        out = []
        for frame in frames:
            h.receive(1, frame, 1.0)
            out.extend(bytes(f) for _, f in h.take_output())
    finally:
        host_mod.rx_classify = saved
    queued = []
    for i, sk in enumerate(socks):
        while (item := sk.recvfrom()) is not None:
            queued.append((i, item))
    return {"mib": h.mib.snapshot(), "udp": queued, "tcp": sink.got, "out": out}


def never(*args):
    return None


def run_pair(rx, frames, sink_cls=TcpSink) -> tuple[dict, dict]:
    fast = run_host(frames, rx.rx_classify, sink_cls)
    slow = run_host(frames, never, sink_cls)
    return fast, slow


def test_local_address_that_is_also_a_broadcast(rx):
    """An address that is both ours and a directed broadcast: udp_rcv's broadcast rules.

    Linux delivers it as a broadcast (to every matching sock, no port-unreachable),
    so the fast path must leave it alone.
    """
    frame = eth(udp(b"x", dport=9, dst=BCAST))
    assert rx.rx_classify(frame, MAC, {**LOCAL, ip_aton(BCAST): 1}, BCASTS) is None
    saved = host_mod.rx_classify
    outs = []
    for classify in (rx.rx_classify, never):
        host_mod.rx_classify = classify
        try:
            h, _, _ = make_host()
            h.add_address(1, ip_aton(BCAST), 24)
            h.take_output()
            h.receive(1, frame, 1.0)
            outs.append((h.take_output(), h.mib.snapshot()))
        finally:
            host_mod.rx_classify = saved
    assert outs[0] == outs[1]
    # Nobody listens: Linux's __udp4_lib_mcast_deliver counts IgnoredMulti, not NoPorts.
    assert outs[1][0] == [] and outs[1][1]["UdpIgnoredMulti"] == 1
    assert "UdpNoPorts" not in outs[1][1]


class UdpSink(TcpSink):
    """Someone else's UDP handler: gets the generic rcv(iph, payload, now)."""

    def rcv(self, iph, payload, now) -> bool:
        self.got.append((iph.src, iph.dst, iph.ident, bytes(payload)))
        return True


@pytest.mark.parametrize("swap", ["udp-handler", "no-tcp"])
def test_replaced_or_missing_handlers(rx, swap):
    frames = [eth(udp(b"one")), eth(udp(b"two", dport=9)), eth(tcp(b"three"))]
    results = []
    for classify in (rx.rx_classify, never):
        saved = host_mod.rx_classify
        host_mod.rx_classify = classify
        try:
            h, _, _ = make_host()
            sink = UdpSink(h)
            if swap == "udp-handler":
                h.register_protocol(17, sink)
            else:
                del h.protocols[6]
            out = []
            for frame in frames:
                h.receive(1, frame, 1.0)
                out.extend(bytes(f) for _, f in h.take_output())
            results.append((sink.got, out, h.mib.snapshot()))
        finally:
            host_mod.rx_classify = saved
    assert results[0] == results[1]
    got, out, mib = results[1]
    if swap == "udp-handler":
        assert [d[8:] for *_, d in got] == [b"one", b"two"]
    else:
        # Port unreachable for dport 9, protocol unreachable for the TCP segment.
        assert mib["InUnknownProtos"] == 1
        assert sorted(Ether(f)[ICMP].code for f in out) == [2, 3]


def test_valid_traffic_takes_the_fast_path_with_the_same_result(rx):
    frames = [eth(udp(b"a" * n, sport=1000 + n, dst=MY if n % 2 else MY2)) for n in range(40)]
    frames += [eth(udp(b"c", sport=sport, dport=dport, dst=dst))
               for sport in (1000, 1001, 1234) for dport in (54, 55) for dst in (MY, MY2)]
    frames += [eth(tcp(b"b" * n, seq=n)) for n in range(0, 1400, 97)]
    calls = []

    def counting(*args):
        rec = rx.rx_classify(*args)
        calls.append(rec is not None)
        return rec

    fast = run_host(frames, counting)
    slow = run_host(frames, never)
    assert all(calls) and len(calls) == len(frames)
    assert fast == slow
    assert len(fast["tcp"]) == 15 and len(fast["udp"]) + fast["mib"]["UdpNoPorts"] == 52
    assert {i for i, _ in fast["udp"]} == {0, 1, 2, 3, 4}


def test_udp_no_port_sends_the_same_icmp(rx):
    fast, slow = run_pair(rx, [eth(udp(b"knock", dport=9))])
    assert fast == slow
    (reply,) = [Ether(f) for f in fast["out"]]
    assert reply[ICMP].type == 3 and reply[ICMP].code == 3


def test_verified_tcp_gets_only_good_segments(rx):
    good = eth(tcp(b"good"))
    frames = [good, corrupt(good, len(good) - 1), eth(tcp(dataofs=15)), good]
    fast = run_host(frames, rx.rx_classify, VerifiedTcpSink)
    slow = run_host(frames, never, VerifiedTcpSink)
    assert fast == slow
    assert [d for *_, d in fast["tcp"]] == [bytes(Ether(good)[TCP])] * 2


# ----- hypothesis: mangled frames ----------------------------------------------------------

def _csum16(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


@st.composite
def mangled_frames(draw) -> bytes:
    """A UDP or TCP frame with a few fields set to anything, checksums often fixed."""
    proto = draw(st.sampled_from([17, 6, 1, 50]))
    data = draw(st.binary(max_size=80))
    dst = draw(st.sampled_from([MY, MY2, PEER, BCAST, "127.0.0.1", "255.255.255.255"]))
    src = draw(st.sampled_from([PEER, "224.1.1.1", "127.0.0.9", "192.168.1.1"]))
    if proto == 6:
        l4 = bytes(TCP(sport=draw(st.integers(1, 65535)), dport=80, flags="PA",
                       dataofs=draw(st.sampled_from([None, 4, 5, 6, 15]))) / data)
    else:
        l4 = bytes(UDP(sport=draw(st.sampled_from([1000, 1234, 7])),
                       dport=draw(st.sampled_from([53, 9, 54, 55]))) / data)
    packet = bytearray(bytes(IP(src=src, dst=dst, proto=proto, id=1) / l4))
    for _ in range(draw(st.integers(0, 3))):
        # Mangle a header byte (IP header and the transport's first 20 bytes).
        i = draw(st.integers(0, min(39, len(packet) - 1)))
        packet[i] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        # Fix the transport checksum over what the IP header now says.
        ihl = (packet[0] & 0x0F) * 4
        seg = packet[ihl:]
        pos = {6: 16, 17: 6}.get(proto)
        if 20 <= ihl and pos is not None and len(seg) >= pos + 2:
            seg[pos:pos + 2] = b"\0\0"
            pseudo = bytes(packet[12:20]) + bytes([0, proto]) + len(seg).to_bytes(2, "big")
            seg[pos:pos + 2] = _csum16(pseudo + bytes(seg)).to_bytes(2, "big")
            packet[ihl:] = seg
    if draw(st.booleans()) and len(packet) >= 20:
        packet[10:12] = b"\0\0"
        packet[10:12] = _csum16(bytes(packet[:20])).to_bytes(2, "big")
    frame = Ether(dst=draw(st.sampled_from([MAC, MAC, "ff:ff:ff:ff:ff:ff"])),
                  src=PEER_MAC).build()[:14] + bytes(packet)
    cut = draw(st.integers(0, len(frame) + 20))
    frame = frame[:cut] if cut < len(frame) else frame + bytes(cut - len(frame))
    return frame


@HYPO
@given(frames=st.lists(mangled_frames(), min_size=1, max_size=4))
def test_mangled_frames_same_state_as_layered_path(frames):
    for rx in built_twins("rx"):
        for sink_cls in (TcpSink, VerifiedTcpSink):
            fast, slow = run_pair(rx, frames, sink_cls)
            assert fast == slow


@HYPO
@given(frame=mangled_frames(), verify=st.booleans(),
       mac=st.sampled_from([MAC, None]))
def test_twins_agree(frame, verify, mac):
    pure, compiled = twin_pair("rx")
    f = frame if mac is not None else frame[14:]
    assert pure.rx_classify(f, mac, LOCAL, BCASTS, verify) == \
        compiled.rx_classify(f, mac, LOCAL, BCASTS, verify)


def _martian(src: int, dst: int) -> bool:
    """ip_route_input's rules for a unicast datagram to us (RFC 1122 3.2.1.3):
    a multicast, limited-broadcast, loopback, zero-network, local or
    directed-broadcast source; a loopback destination."""
    return (src >> 28 == 0xE or src == 0xFFFFFFFF or src >> 24 in (0, 127)
            or src in LOCAL or src in BCASTS or dst >> 24 == 127)


def scapy_verdict(frame: bytes, mac: bytes | None, verify: bool = True) -> tuple | None:
    """What rx_classify may answer besides None, decided with scapy: the tuple
    for a clean unicast IPv4 UDP datagram or TCP segment to one of LOCAL
    (RFC 791/1122 for IP, RFC 768 for UDP, RFC 9293 for TCP), else None."""
    ip_off = 0
    if mac is not None:
        if len(frame) < 14 + 20:
            return None
        e = Ether(frame[:14])
        if e.dst != ":".join(f"{b:02x}" for b in mac) or e.type != 0x0800:
            return None
        ip_off = 14
    raw = frame[ip_off:]
    if len(raw) < 20:
        return None
    ip = IP(raw[:20])
    if ip.version != 4 or ip.ihl != 5 or not 20 <= ip.len <= len(raw):
        return None
    if ip.flags.MF or ip.frag or ip.proto not in (6, 17):
        return None
    if checksum(raw[:20]) != 0:          # RFC 1071: a correct header sums to 0
        return None
    src, dst = ip_aton(ip.src), ip_aton(ip.dst)
    if dst not in LOCAL or dst in BCASTS or _martian(src, dst):
        return None
    seg = raw[20:ip.len]
    off = ip_off + 20
    if ip.proto == 17:
        if len(seg) < 8:
            return None
        u = UDP(seg[:8])
        if not 8 <= u.len <= len(seg):
            return None
        # RFC 768: the pseudo-header carries the UDP length (scapy's in4_chksum
        # takes the length of what it is given when the IP layer has none).
        if u.chksum and in4_chksum(17, IP(src=ip.src, dst=ip.dst), seg[:u.len]) != 0:
            return None
        return (17, src, dst, u.sport, u.dport, seg[8:u.len], off, off + u.len)
    if len(seg) < 20:
        return None
    t = TCP(seg[:20])
    if not 20 <= t.dataofs * 4 <= len(seg):
        return None
    if verify and in4_chksum(6, IP(src=ip.src, dst=ip.dst), seg) != 0:
        return None
    return (6, src, dst, t.sport, t.dport, "iph", off, off + len(seg))


def _same(rec, want) -> bool:
    """rx_classify's tuple against the verdict (TCP's aux is the IPv4 header record)."""
    if rec is None or want is None:
        return rec is want
    if rec[0] == 6:
        return (rec[:5] + rec[6:] == want[:5] + want[6:]
                and (rec[5].src, rec[5].dst, rec[5].proto) == (want[1], want[2], 6))
    return tuple(rec) == want


@HYPO
@given(frame=st.binary(max_size=100))
def test_random_bytes_are_never_taken_for_a_clean_datagram(frame):
    """Random bytes (as a frame to us, as a bare IP datagram, and behind our
    MAC) are classified the same way by both twins, and "deliver" only if
    scapy finds a clean datagram for us in them (in practice: never)."""
    for mac in (MAC, None):
        for f in (frame, MAC + frame, eth(IP(src=PEER, dst=MY))[:14] + frame):
            got = [r.rx_classify(f, mac, LOCAL, BCASTS) for r in built_twins("rx")]
            assert all(g == got[0] for g in got)
            assert got[0] is None or _same(got[0], scapy_verdict(f, mac))


@st.composite
def random_transport(draw) -> tuple[bytes, bool]:
    """A clean Ethernet + IPv4 header to us, then random bytes as the UDP
    datagram or TCP segment: sometimes with a length field (UDP length, TCP
    data offset) that fits, and a checksum that is random, right, or (UDP)
    zero; and whether TCP checksums are to be verified."""
    proto = draw(st.sampled_from([6, 17]))
    n = draw(st.integers(0, 60))
    seg = bytearray(draw(st.binary(min_size=n, max_size=n)))
    dst = draw(st.sampled_from([MY, MY2]))
    if proto == 17 and n >= 8 and draw(st.booleans()):
        seg[4:6] = draw(st.integers(8, n)).to_bytes(2, "big")      # a UDP length that fits
    if proto == 6 and n >= 20 and draw(st.booleans()):
        seg[12] = (draw(st.integers(5, min(15, n // 4))) << 4) | (seg[12] & 0x0F)
    pos = {6: 16, 17: 6}[proto]
    csum = draw(st.sampled_from(["random", "right", "zero"] if proto == 17
                                else ["random", "right"]))
    if n >= pos + 2 and csum != "right":
        # UDP's zero means "no checksum"; random values include 0x00nn and 0xnn00
        value = 0 if csum == "zero" else draw(st.integers(1, 0xFFFF))
        seg[pos:pos + 2] = value.to_bytes(2, "big")
    ulen = int.from_bytes(seg[4:6], "big") if proto == 17 else n
    if n >= pos + 2 and csum == "right" and (proto == 6 or 8 <= ulen <= n):
        seg[pos:pos + 2] = b"\0\0"
        value = in4_chksum(proto, IP(src=PEER, dst=dst), bytes(seg[:ulen]))
        seg[pos:pos + 2] = (value or (0xFFFF if proto == 17 else 0)).to_bytes(2, "big")
    packet = IP(src=PEER, dst=dst, proto=proto, id=1) / bytes(seg)
    return eth(packet), draw(st.booleans())


@HYPO
@given(case=random_transport())
def test_random_transport_bytes_behind_a_clean_ip_header(case):
    """The IP header is a clean one to us, so the answer is the transport's
    checks alone: "deliver" with scapy's fields exactly when the UDP length
    fits and the checksum is zero or right (RFC 768), or the TCP data offset
    is at least 5 and fits and the checksum is right when verified (RFC 9293)."""
    frame, verify = case
    want = scapy_verdict(frame, MAC, verify)
    for r in built_twins("rx"):
        assert _same(r.rx_classify(frame, MAC, LOCAL, BCASTS, verify), want)


# ----- lo: datagrams from the host's own backlog ---------------------------------------

@pytest.mark.parametrize("src, dst", [("127.0.0.1", "127.0.0.1"), ("127.0.0.1", "127.9.9.9"),
                                      (MY, MY), (MY2, MY)])
def test_lo_takes_what_the_wire_would_call_martian(rx, src, dst):
    """On lo (``lo=True``) 127/8 and our own sources are the normal case and
    take the fast path with the same fields; from a device they are martian
    (None: the layered path counts the drop)."""
    for pkt in (udp(b"lo", src=src, dst=dst), tcp(b"lo", src=src, dst=dst)):
        packet = bytes(pkt)
        assert rx.rx_classify(packet, None, LOCAL, BCASTS) is None
        rec = rx.rx_classify(packet, None, LOCAL, BCASTS, True, None, 0.0, True)
        assert rec is not None and rec[1:3] == (ip_aton(src), ip_aton(dst))
        assert rec[6:] == (20, len(packet))


def test_lo_still_sends_broadcast_copies_and_bad_checksums_the_slow_way(rx):
    """A broadcast's loopback copy (ip_mc_output) needs the broadcast rules of
    the layered path; a bad checksum is never "clean", on lo or not."""
    bcast = bytes(udp(b"b", src=MY, dst=BCAST))
    assert rx.rx_classify(bcast, None, LOCAL, BCASTS, True, None, 0.0, True) is None
    bad = corrupt(bytes(udp(b"x", src="127.0.0.1", dst="127.0.0.1")), 27)
    assert rx.rx_classify(bad, None, LOCAL, BCASTS, True, None, 0.0, True) is None


def test_rx_taken_moves_the_layered_paths_counters_and_no_other(rx):
    """A batch's segments taken whole by the TCP fast path are counted as
    ip_rcv -> ip_local_deliver -> tcp_v4_rcv (ipv6_rcv -> ip6_input_finish
    for IPv6) count each: In/Ip6InReceives, In/Ip6InDelivers, InSegs; a
    family with none taken moves nothing, and a batch with none at all
    leaves the MIB without a key it did not have (snapshot() unchanged)."""
    from tcpio.core.mib import Mib
    mib = Mib()
    rx.rx_taken(mib, 0, 0)
    assert mib.snapshot() == Mib().snapshot()
    rx.rx_taken(mib, 3, 0)
    assert (mib["InReceives"], mib["InDelivers"], mib["InSegs"]) == (3, 3, 3)
    assert "Ip6InReceives" not in mib and "Ip6InDelivers" not in mib
    rx.rx_taken(mib, 0, 2)
    rx.rx_taken(mib, 1, 1)
    assert (mib["InReceives"], mib["InDelivers"]) == (4, 4)
    assert (mib["Ip6InReceives"], mib["Ip6InDelivers"]) == (3, 3)
    assert mib["InSegs"] == 7
