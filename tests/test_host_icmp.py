"""ICMP: when errors are (not) sent, rate limits, and errors in -> protocol handlers."""

from __future__ import annotations

import errno

import pytest
from hostutil import MY, PEER, inject, make_host
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tcpio import _fast
from tcpio.core.addr import ip_aton

wire = _fast.load("wire")


class Recorder:
    def __init__(self):
        self.errs = []
        self.rcvd = []

    def rcv(self, iph, payload, now):
        self.rcvd.append(bytes(payload))
        return True

    def err(self, kind, code, code_errno, info, iph, payload):
        self.errs.append((kind, code, code_errno, info, iph.src, iph.dst, bytes(payload[:4])))


def split(pkt) -> tuple:
    raw = bytes(pkt)
    iph = wire.parse_ipv4(raw)
    return iph, raw[iph.ihl * 4:]


@pytest.mark.parametrize("name, pkt, allowed", [
    ("udp", IP(src=PEER, dst=MY) / UDP(), True),
    ("echo request", IP(src=PEER, dst=MY) / ICMP(type=8), True),
    ("an icmp error", IP(src=PEER, dst=MY) / ICMP(type=3, code=3) / (b"x" * 28), False),
    ("time exceeded", IP(src=PEER, dst=MY) / ICMP(type=11) / (b"x" * 28), False),
    ("limited broadcast", IP(src=PEER, dst="255.255.255.255") / UDP(), False),
    ("directed broadcast", IP(src=PEER, dst="10.0.0.255") / UDP(), False),
    ("multicast", IP(src=PEER, dst="224.0.0.9") / UDP(), False),
    ("non-first fragment", IP(src=PEER, dst=MY, frag=10) / Raw(b"x" * 16), False),
    ("from 0.0.0.0", IP(src="0.0.0.0", dst=MY) / UDP(), False),
    ("from a broadcast", IP(src="10.0.0.255", dst=MY) / UDP(), False),
])
def test_rfc1122_when_not_to_send_errors(name, pkt, allowed):
    h = make_host()
    iph, payload = split(pkt)
    h.icmp_send(iph, payload, 3, 3)
    sent = [Ether(f) for _, f in h.take_output()]
    assert bool(sent) == allowed, name
    if allowed:
        (err,) = sent
        assert err[ICMP].type == 3 and err[IP].dst == PEER
        assert bytes(err[ICMP].payload)[:20] == bytes(pkt)[:20]   # quotes the header


def test_errors_rate_limited_per_destination():
    h = make_host(icmp_ratelimit=1.0, icmp_ratemask_burst=5)
    errs = []
    for _ in range(10):
        errs += inject(h, IP(src=PEER, dst=MY) / UDP(sport=1, dport=9), now=0.0)
    assert len(errs) == 5 and h.mib["IcmpOutRateLimitHost"] == 5
    assert h.mib["UdpNoPorts"] == 10
    for _ in range(10):
        errs += inject(h, IP(src=PEER, dst=MY) / UDP(sport=1, dport=9), now=3.0)
    assert len(errs) == 8        # three tokens refilled in three seconds


def test_frag_needed_is_not_rate_limited():
    h = make_host(icmp_ratelimit=1.0, icmp_ratemask_burst=1)
    iph, payload = split(IP(src=PEER, dst=MY) / UDP())
    for _ in range(5):
        h.icmp_send(iph, payload, 3, 4, info=1280)
    sent = [Ether(f) for _, f in h.take_output()]
    assert len(sent) == 5 and all(p[ICMP].nexthopmtu == 1280 for p in sent)


def test_bad_icmp_checksum_counted_no_reply():
    h = make_host()
    assert inject(h, IP(src=PEER, dst=MY) / ICMP(type=8, chksum=0xBEEF) / b"x") == []
    assert h.mib["IcmpInCsumErrors"] == 1 and h.mib["IcmpInErrors"] == 1
    assert inject(h, IP(src=PEER, dst=MY, proto=1) / Raw(b"\x08\x00")) == []   # too short
    assert h.mib["IcmpInErrors"] == 2


def test_error_delivered_to_the_registered_protocol():
    h = make_host()
    rec = Recorder()
    h.register_protocol(253, rec)
    quoted = bytes(IP(src=MY, dst=PEER, proto=253) / Raw(b"ABCDEFGH"))
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=1400) / quoted)
    assert rec.errs == [(3, 4, errno.EMSGSIZE, 1400, ip_aton(MY), ip_aton(PEER), b"ABCD")]
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=12, ptr=9) / quoted)
    assert rec.errs[-1][:4] == (12, 0, errno.EPROTO, 9)
    # Source quench (RFC 6633) and unknown unreachable codes are ignored.
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=4) / quoted)
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=99) / quoted)
    assert len(rec.errs) == 2


@pytest.mark.parametrize("code", [0, 1, 255])
def test_echo_reply_copies_the_requests_code_id_seq_and_data(code):
    """Linux's icmp_echo answers with the request's ICMP header, type
    changed: an odd code comes back as sent (nmap's IE probe reads it)."""
    h = make_host()
    (rep,) = inject(h, IP(src=PEER, dst=MY) / ICMP(type=8, code=code, id=9, seq=4) / (b"x" * 20))
    assert (rep[IP].src, rep[IP].dst) == (MY, PEER)
    # the whole ICMP message, checksum included, as scapy builds the reply
    assert bytes(rep[ICMP]) == bytes(ICMP(type=0, code=code, id=9, seq=4) / (b"x" * 20))


def test_our_pings_get_replies_and_errors():
    h = make_host()
    h.icmp.echo_request(ip_aton(PEER), 42, 1, b"data")
    (req,) = [Ether(f) for _, f in h.take_output()]
    assert (req[ICMP].type, req[ICMP].id, req[ICMP].seq, req[Raw].load) == (8, 42, 1, b"data")
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=0, id=42, seq=1) / b"data", now=0.5)
    (rep,) = h.icmp.echo_replies
    assert (rep.src, rep.ident, rep.seq, rep.data, rep.time) == (ip_aton(PEER), 42, 1, b"data",
                                                                 0.5)
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=1) / bytes(req[IP]))
    (e,) = h.icmp.errors
    assert (e.type, e.code, e.errno, e.ident, e.seq) == (3, 1, errno.EHOSTUNREACH, 42, 1)


def test_frag_needed_lowers_the_path_mtu_for_a_while():
    h = make_host()
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    sport = sk.getsockname()[1]
    quoted = bytes(IP(src=MY, dst=PEER, flags="DF") / UDP(sport=sport, dport=53) / (b"x" * 8))
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=1000) / quoted)
    assert h.route_lookup(ip_aton(PEER)).mtu == 1000
    assert [e.errno for e in sk.errors] == [errno.EMSGSIZE]
    sk.errors.clear()           # (read, as recv would: a pending error fails the next send)
    sk.sendto(b"y" * 1400)
    frames = [Ether(f) for _, f in h.take_output()]
    assert len(frames) == 2 and max(len(f[IP]) for f in frames) <= 1000
    # A forged tiny MTU is clamped to 552; the learned MTU expires after 600 s.
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=100) / quoted)
    assert h.route_lookup(ip_aton(PEER)).mtu == 552
    h.now = 601.0
    assert h.route_lookup(ip_aton(PEER)).mtu == 1500
