"""ICMP error rules of the host core against RFC 1122 / RFC 1191 and Linux:
errors sent to a broadcast address, path MTU learned from frag-needed
(__ip_rt_update_pmtu), malformed quotes (icmp_unreach) and the host-wide
limit on the errors we send (icmp_global_allow).

Each test pins one rule where the core used to differ from the kernel; the
packets are built by scapy (an independent builder) and the expected
behaviour is the RFC's or Linux's (function named in each docstring).
"""

from __future__ import annotations

import errno

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, inject, make_host
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tcpio.core.addr import ip_aton

BCAST = "10.0.0.255"


# ----- icmp_rcv: broadcast destinations --------------------------------------------------

def _port_unreach_about(sk_port: int) -> bytes:
    return bytes(IP(src=MY, dst=PEER) / UDP(sport=sk_port, dport=53) / (b"q" * 8))


def test_icmp_errors_sent_to_a_broadcast_address_are_ignored():
    """Linux icmp_rcv: to a broadcast/multicast address only echo, timestamp and
    address-mask messages are looked at; anything else is an error (IcmpInErrors).
    Otherwise one forged broadcast could reset every host's sockets."""
    h = make_host()
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    quoted = _port_unreach_about(sk.getsockname()[1])
    inject(h, IP(src=PEER, dst=BCAST) / ICMP(type=3, code=3) / quoted,
           dst_mac="ff:ff:ff:ff:ff:ff")
    assert list(sk.errors) == []
    assert h.mib["IcmpInErrors"] == 1
    # Control: the same error to our unicast address does reach the sock.
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=3) / quoted)
    assert [e.errno for e in sk.errors] == [errno.ECONNREFUSED]


def test_echo_reply_sent_to_a_broadcast_address_is_ignored():
    h = make_host()
    inject(h, IP(src=PEER, dst=BCAST) / ICMP(type=0, id=5, seq=6) / b"r",
           dst_mac="ff:ff:ff:ff:ff:ff")
    assert len(h.icmp.echo_replies) == 0 and h.mib["IcmpInErrors"] == 1
    assert h.mib["IcmpInEchoReps"] == 1       # as the kernel counts it (checked over TAP)


def test_broadcast_echo_counts_as_in_error_like_linux():
    """icmp_echo_ignore_broadcasts=1: Linux counts the echo (InType8) and an InError."""
    h = make_host()
    assert inject(h, IP(src=PEER, dst=BCAST) / ICMP(), dst_mac="ff:ff:ff:ff:ff:ff") == []
    assert h.mib["IcmpInEchos"] == 1 and h.mib["IcmpInErrors"] == 1


# ----- __ip_rt_update_pmtu --------------------------------------------------------------

def test_pmtu_floor_and_lifetime_come_from_settings():
    h = make_host(min_pmtu=1200, ip_rt_mtu_expires=5.0)
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    quoted = bytes(IP(src=MY, dst=PEER, flags="DF")
                   / UDP(sport=sk.getsockname()[1], dport=53) / (b"x" * 8))
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=600) / quoted)
    assert h.route_lookup(ip_aton(PEER)).mtu == 1200
    h.now = 6.0
    assert h.route_lookup(ip_aton(PEER)).mtu == 1500


# ----- __ip_rt_update_pmtu: only ever lower ----------------------------------------------

def _frag_needed(h, sk, mtu: int) -> None:
    """A frag-needed about our UDP datagram, received at the host's ``now``."""
    quoted = bytes(IP(src=MY, dst=PEER, flags="DF")
                   / UDP(sport=sk.getsockname()[1], dport=53) / (b"x" * 8))
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=mtu) / quoted, h.now)


def test_frag_needed_announcing_a_larger_mtu_changes_nothing():
    """__ip_rt_update_pmtu: ``if (old_mtu < mtu) return;`` -- an MTU above the
    route's current one (learned or the interface's) is not learned, counted
    or given a new lifetime: a stale or forged ICMP cannot raise the path
    MTU (RFC 1191 section 6.3: only a decrease is acted on; increases come
    from aging)."""
    h = make_host(ip_rt_mtu_expires=100.0)
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    _frag_needed(h, sk, 1600)               # above the interface's 1500
    assert h.pmtu == {} and h.mib["PMTUUpdates"] == 0
    _frag_needed(h, sk, 1200)
    assert h.route_lookup(ip_aton(PEER)).mtu == 1200 and h.mib["PMTUUpdates"] == 1
    h.now = 60.0
    _frag_needed(h, sk, 1400)               # above what was learned
    assert h.route_lookup(ip_aton(PEER)).mtu == 1200 and h.mib["PMTUUpdates"] == 1
    h.now = 100.0                           # the 1200 learned at 0 expired, not renewed
    assert h.route_lookup(ip_aton(PEER)).mtu == 1500
    # a lower one still counts
    _frag_needed(h, sk, 1100)
    assert h.route_lookup(ip_aton(PEER)).mtu == 1100 and h.mib["PMTUUpdates"] == 2


def test_the_same_mtu_again_renews_only_in_the_second_half_of_its_life():
    """``if (rt->rt_pmtu == mtu && !lock && time_before(jiffies, dst->expires -
    ip_rt_mtu_expires / 2)) return;``: a repeat in the first half is not news;
    later it restarts the lifetime."""
    h = make_host(ip_rt_mtu_expires=100.0)
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    _frag_needed(h, sk, 1200)
    h.now = 40.0
    _frag_needed(h, sk, 1200)
    assert h.mib["PMTUUpdates"] == 1 and h.pmtu[ip_aton(PEER)] == (1200, 100.0, False)
    h.now = 60.0
    _frag_needed(h, sk, 1200)
    assert h.mib["PMTUUpdates"] == 2 and h.pmtu[ip_aton(PEER)] == (1200, 160.0, False)
    h.now = 150.0
    assert h.route_lookup(ip_aton(PEER)).mtu == 1200


# ----- __ip_rt_update_pmtu below the floor ------------------------------------------------

@pytest.mark.parametrize("mtu", [0, 40])
def test_frag_needed_with_a_tiny_or_missing_mtu_locks_the_floor(mtu):
    """__ip_rt_update_pmtu: ``if (mtu < ip_rt_min_pmtu) mtu = min(old_mtu, min_pmtu)``;
    an old router's zero MTU field (RFC 1191 section 5) takes the same branch."""
    h = make_host()
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    quoted = bytes(IP(src=MY, dst=PEER, flags="DF")
                   / UDP(sport=sk.getsockname()[1], dport=53) / (b"x" * 8))
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=mtu) / quoted)
    assert h.route_lookup(ip_aton(PEER)).mtu == 552
    assert [e.errno for e in sk.errors] == [errno.EMSGSIZE]


# ----- icmp_unreach: whatever an ICMP error quotes, nothing raises ------------------------

def test_error_quoting_a_header_longer_than_the_quote_is_counted_not_raised():
    """The quoted IHL says 60 bytes but only 28 are quoted: icmp_unreach's
    pskb_may_pull(iph->ihl * 4 + 8) fails, the message is an InError."""
    h = make_host()
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=3) / Raw(b"\x4f" + bytes(27)))
    assert h.mib["IcmpInErrors"] == 1


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(kind=st.sampled_from([(3, 3), (3, 4), (11, 0), (12, 0), (4, 0), (5, 1)]),
       first=st.integers(0x40, 0x4F), rest=st.binary(max_size=80),
       proto=st.sampled_from([1, 6, 17, 99]))
def test_any_quoted_datagram_never_raises(kind, first, rest, proto):
    h = make_host()
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    quoted = bytearray([first]) + bytearray(rest)
    if len(quoted) > 9:
        quoted[9] = proto
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=kind[0], code=kind[1]) / Raw(bytes(quoted)))
    assert h.mib["IcmpInMsgs"] == 1


# ----- icmp_global_allow: a host-wide cap on ICMP errors ------------------------------------

def test_errors_to_many_sources_hit_the_global_limit():
    """Per-destination buckets alone let a scan with spoofed sources (one fresh
    bucket each) draw unlimited errors; Linux also has icmp_global_allow
    (icmp_msgs_per_sec=1000, icmp_msgs_burst=50), counted as OutRateLimitGlobal."""
    h = make_host()
    h.add_route(0, 0, via=ip_aton(PEER))      # the spoofed sources are off-link
    for i in range(200):
        src = f"10.0.{1 + i // 250}.{1 + i % 250}"
        h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC)
                           / IP(src=src, dst=MY) / UDP(sport=1, dport=9)), 0.0)
    assert h.mib["UdpNoPorts"] == 200
    assert h.mib["IcmpOutDestUnreachs"] == 50
    assert h.mib["IcmpOutRateLimitGlobal"] == 150
    # The credit comes back at icmp_msgs_per_sec: 10 ms later, 10 more.
    for i in range(20):
        h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC)
                           / IP(src=f"10.0.9.{i + 1}", dst=MY) / UDP(sport=1, dport=9)), 0.010)
    assert h.mib["IcmpOutDestUnreachs"] == 60
