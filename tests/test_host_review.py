"""Second-look review of the host core against RFC 1122 / RFC 826 and Linux.

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
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings

BCAST = "10.0.0.255"


# ----- ip_rcv / ip_route_input_slow: martian sources -------------------------------------

@pytest.mark.parametrize("src", [MY, BCAST, "0.1.2.3", "0.0.0.0"],
                         ids=["our-own", "directed-bcast", "zeronet", "unspecified"])
def test_martian_source_is_dropped_not_answered(src):
    """RFC 1122 3.2.1.3 ("MUST silently discard" an invalid source) and Linux's
    fib_validate_source / martian_source: a datagram from the wire claiming one
    of our addresses, our subnet's broadcast, or 0/8 towards a unicast
    destination is dropped; no echo reply, no delivery.  (Checked against a
    kernel over TAP: own address and 0.0.0.0 always; the directed broadcast and
    0.1.2.3 with rp_filter=1, the usual distribution setting.)"""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    assert inject(h, IP(src=src, dst=MY) / ICMP(id=1, seq=1) / b"ping") == []
    assert inject(h, IP(src=src, dst=MY) / UDP(sport=9, dport=53) / b"x") == []
    assert sk.recvfrom() is None
    assert h.mib["InAddrErrors"] == 2 and h.mib["InDelivers"] == 0


def test_dhcp_style_unspecified_source_to_broadcast_is_still_delivered():
    """Linux: saddr 0 with daddr 255.255.255.255 goes to brd_input (DHCP discover)."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 67)
    inject(h, IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / b"d",
           dst_mac="ff:ff:ff:ff:ff:ff")
    assert sk.recvfrom() == (b"d", (0, 68))


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


# ----- __udp4_lib_mcast_deliver ---------------------------------------------------------

def test_broadcast_udp_without_listener_is_ignored_multi_not_noport():
    """Linux counts a broadcast nobody listens to as Udp IgnoredMulti, not NoPorts."""
    h = make_host()
    inject(h, IP(src=PEER, dst=BCAST) / UDP(sport=1, dport=99) / b"b",
           dst_mac="ff:ff:ff:ff:ff:ff")
    assert h.mib["UdpIgnoredMulti"] == 1 and h.mib["UdpNoPorts"] == 0


# ----- arp_process ----------------------------------------------------------------------

@pytest.mark.parametrize("spa", [MY, BCAST, "127.0.0.1"])
def test_arp_request_from_a_martian_sender_is_not_answered_or_learned(spa):
    """Linux arp_process answers a request only if ip_route_input(tip, sip) accepts
    sip: a request claiming our own address (an address conflict, RFC 5227 2.4),
    our broadcast or loopback gets no reply and creates no neighbour entry.
    (Checked against a kernel over TAP; the broadcast case needs rp_filter=1,
    consistent with ip_rcv refusing that source above.)"""
    h = make_host()
    other = "02:00:00:00:00:77"
    out = [Ether(f) for _, f in (h.receive(1, bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=other)
        / ARP(op=1, hwsrc=other, psrc=spa, hwdst="00:00:00:00:00:00", pdst=MY)), 0.0)
        or h.take_output())]
    assert out == []
    assert h.arp.lookup(1, ip_aton(spa)) is None


def test_arp_ucast_solicit_setting_is_honoured():
    """Settings.arp_ucast_solicit (neigh.default.ucast_solicit) bounds the unicast
    probes of a STALE entry that is used again."""
    h = Host("h", seed=1, settings=Settings(arp_ucast_solicit=1))
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, ip_aton(MY), 24)
    h.take_output()
    # Learn PEER as STALE from its request, then use it: one unicast probe only.
    h.receive(1, bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC)
                       / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER, pdst=MY)), 0.0)
    h.take_output()
    sk = h.udp.socket()
    sk.sendto(b"x", ip_aton(PEER), 9)
    probes = [f for _, f in h.take_output() if Ether(f).type == 0x0806]
    assert len(probes) == 1
    now = 0.0
    for _ in range(5):
        now += 1.0
        h.poll(now)
        probes += [f for _, f in h.take_output() if Ether(f).type == 0x0806]
    assert len(probes) == 1 and h.arp.lookup(1, ip_aton(PEER)) is None


# ----- ip_frag_queue --------------------------------------------------------------------

def test_zero_length_last_fragment_drops_the_datagram():
    """ip_frag_queue: ``if (end == offset) goto discard_qp`` for every fragment."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    udp = bytes(UDP(sport=1, dport=53, chksum=0) / b"12345678")[:16]
    inject(h, IP(src=PEER, dst=MY, id=9, proto=17, flags="MF", frag=0) / Raw(udp))
    inject(h, IP(src=PEER, dst=MY, id=9, proto=17, frag=2))
    assert sk.recvfrom() is None
    assert h.mib["ReasmOKs"] == 0 and h.mib["ReasmFails"] == 1 and len(h.frags) == 0


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


# ----- ip_options_compile: parameter problem ---------------------------------------------

def _with_options(opts: bytes, dst: str = MY) -> bytes:
    """An echo request whose header carries ``opts`` verbatim (scapy would pad or
    re-encode them), with the header checksum computed here (RFC 1071)."""
    raw = bytearray(bytes(IP(src=PEER, dst=dst) / ICMP(id=1, seq=1)))
    raw[0] = 0x45 + len(opts) // 4
    raw[20:20] = opts
    raw[2:4] = len(raw).to_bytes(2, "big")
    raw[10:12] = b"\0\0"
    s = sum(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(opts) + 20, 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    raw[10:12] = (~s & 0xFFFF).to_bytes(2, "big")
    return bytes(raw)


@pytest.mark.parametrize("opts, pointer", [
    (b"\x44\x01\x00\x00", 20),          # timestamp with length 1
    (b"\x07\x30\x00\x00", 20),          # record route running past the header
    (b"\x01\x01\x01\x83", 23),          # LSRR type byte with no room for its length
])
def test_malformed_option_gets_parameter_problem_pointing_at_it(opts, pointer):
    """Linux ip_options_compile: icmp_send(PARAMETERPROB, 0, pointer << 24), the
    pointer being the octet (from the start of the IP header) that is wrong."""
    h = make_host()
    h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC, type=0x0800)) + _with_options(opts), 0.0)
    out = [Ether(f) for _, f in h.take_output()]
    assert len(out) == 1
    err = out[0]
    assert err[IP].dst == PEER and err[ICMP].type == 12 and err[ICMP].code == 0
    assert err[ICMP].ptr == pointer
    assert h.mib["InHdrErrors"] == 1 and h.mib["IcmpOutParmProbs"] == 1
    assert h.mib["InDelivers"] == 0


def test_malformed_option_to_a_broadcast_gets_no_parameter_problem():
    h = make_host()
    h.receive(1, bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC, type=0x0800))
              + _with_options(b"\x44\x01\x00\x00", dst=BCAST), 0.0)
    assert h.take_output() == [] and h.mib["InHdrErrors"] == 1


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


# ----- __neigh_event_send: unres_qlen_bytes ---------------------------------------------

def test_unresolved_queue_is_bounded_in_bytes_too():
    """Linux bounds a neighbour's queue by bytes (unres_qlen_bytes, 212992 by
    default), so a big-MTU link cannot park 101 x 64 KiB per neighbour."""
    h = Host("h", seed=1)
    h.debug = True
    h.add_interface("tap0", mac=MAC, mtu=65000)
    h.add_address(1, ip_aton(MY), 24)
    h.take_output()
    sk = h.udp.socket()
    for i in range(10):
        sk.sendto(bytes([i]) * 60000, ip_aton(PEER), 9)
    h.take_output()
    n = h.arp.lookup(1, ip_aton(PEER))
    assert sum(len(p) for p in n.queue) <= 212992
    # The newest datagrams are the ones kept; they go out once the reply comes.
    h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC)
                       / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER, hwdst=MAC, pdst=MY)), 0.1)
    sent = [Ether(f) for _, f in h.take_output()]
    assert sent and bytes(sent[-1][UDP].payload)[:1] == b"\x09"
    assert len(sent) == 3 and h.mib["ArpUnresolvedDiscards"] == 7


# ----- __udp_enqueue_schedule_skb: rmem counts truesize ---------------------------------

def test_empty_datagrams_cannot_grow_the_receive_queue_without_bound():
    """Linux charges each queued datagram its skb truesize, not its payload, so a
    flood of zero-length datagrams fills sk_rcvbuf like any other."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    sk.rcvbuf = 4096
    for _ in range(200):
        inject(h, IP(src=PEER, dst=MY) / UDP(sport=9, dport=53))
    assert 1 <= sk.pending() < 200
    assert h.mib["UdpRcvbufErrors"] == 200 - sk.pending()


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


# ----- ip_frag_queue: memory accounting stays exact ---------------------------------------

@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 64),
                          st.booleans(), st.floats(0, 40)), min_size=1, max_size=25))
def test_reassembly_memory_accounting_is_exact(frags):
    """Whatever mix of fragments arrives (ids, offsets, sizes, MF, times), the
    bytes charged to the reassembler are exactly what its live queues hold, and
    never more than the cap; when every queue is gone, the charge is zero."""
    h = make_host(ipfrag_high_thresh=2000)
    now = 0.0
    for ident, off8, size, mf, dt in frags:
        now += dt
        h.poll(now)
        inject(h, IP(src=PEER, dst=MY, id=ident, proto=17, frag=off8,
                     flags="MF" if mf else 0) / Raw(b"z" * size), now)
        held = sum(q.mem for q in h.frags.queues.values())
        assert h.frags.mem == held <= 2000
    h.poll(now + 31.0)
    assert len(h.frags) == 0 and h.frags.mem == 0


def test_a_flood_of_new_datagrams_is_held_to_the_cap_in_real_memory():
    """ipfrag_high_thresh bounds what reassembly really holds: Linux charges each
    queue (sizeof(struct ipq)) as well as each fragment's truesize, so a flood of
    one-fragment datagrams (the cheapest attack) cannot hold many times the cap.
    Measured with tracemalloc (allocation bytes, deterministic), with 2x slack."""
    import tracemalloc

    cap = 128 * 1024
    h = make_host(ipfrag_high_thresh=cap)
    frames = [bytes(Ether(dst=MAC, src=PEER_MAC)
                    / IP(src=PEER, dst=MY, id=i, proto=17, flags="MF") / Raw(b"z" * 8))
              for i in range(2500)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for f in frames:
            h.receive(1, f, 0.0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert h.frags.mem <= cap and h.mib["ReasmFails"] > 0
    assert held <= 2 * cap, (held, len(h.frags))


# ----- ip_mc_output: our own broadcasts are looped back -----------------------------------

def test_a_broadcast_we_send_also_reaches_our_own_listeners():
    """Linux's ip_mc_output clones every RTCF_BROADCAST datagram back to the local
    stack (seen over TAP: the kernel hears its own broadcast echo reply), so a
    listener on the sending host gets the datagram too, and it still goes out."""
    h = make_host()
    listener = h.udp.socket()
    listener.bind(0, 5000)
    sender = h.udp.socket()
    sender.broadcast = True
    sender.bind(ip_aton(MY), 4000)
    sender.sendto(b"hello all", ip_aton(BCAST), 5000)
    out = [Ether(f) for _, f in h.take_output()]
    assert len(out) == 1 and out[0].dst == "ff:ff:ff:ff:ff:ff" and out[0][IP].dst == BCAST
    assert listener.recvfrom() == (b"hello all", (ip_aton(MY), 4000))


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
