"""TCP over IPv6 and dual-stack TCP on one Host (issue 17, phase 2).

Segments in are built by scapy, segments out dissected by scapy with their
checksums recomputed (the IPv6 pseudo-header, RFC 8200 8.1).  The rules:
RFC 9293 (handshake, RST for a closed port), RFC 8200 / tcp_v6_syn_recv_sock
(MSS = IPv6 path MTU - 60), RFC 8201 (Packet Too Big lowers the MSS of the
quoted connection), RFC 4443 / icmpv6_err_convert (errors to sockets),
RFC 3493 and Linux's ipv6(7) (IPv4-mapped peers on a ``::`` listener,
IPV6_V6ONLY, bind conflicts across the families), and SYN cookies and ISNs
keyed over the 128-bit addresses.
"""

from __future__ import annotations

import errno

import pytest
from hostutil import MY, MY6, PEER, PEER6, inject, make_dual_host
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6PacketTooBig, IPv6
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.host import Host
from tcpio.core.in_h import AF_INET, AF_INET6, IPPROTO_IPV6, IPV6_V6ONLY
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED, TCP_SYN_SENT

MY6_I, PEER6_I = ip6_aton(MY6), ip6_aton(PEER6)
MAPPED_PEER = ip6_aton("::ffff:" + PEER)


def listener6(h: Host, port: int = 80, v6only: bool = False, addr: int = 0):
    sk = h.tcp.socket(AF_INET6)
    if v6only:
        sk.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
    sk.bind(addr, port)
    sk.listen(16)
    return sk


def syn6(sport: int = 40000, dport: int = 80, seq: int = 1000, **kw) -> IPv6:
    return IPv6(src=PEER6, dst=MY6) / TCP(sport=sport, dport=dport, flags="S", seq=seq,
                                          options=[("MSS", 1460)], **kw)


def checked(frames: list[Ether]) -> list[Ether]:
    """Every TCP segment's checksum recomputed by scapy must be ours."""
    for f in frames:
        if f.haslayer(TCP):
            ours = f[TCP].chksum
            del f[TCP].chksum
            assert Ether(bytes(f))[TCP].chksum == ours
    return [Ether(bytes(f)) for f in frames]


def send(h: Host, pkt, now: float = 3.0) -> list[Ether]:
    return checked(inject(h, pkt, now))


def out(h: Host) -> list[Ether]:
    return checked([Ether(f) for _, f in h.take_output()])


def handshake6(h: Host, sport: int = 40000, dport: int = 80) -> Ether:
    """SYN in, SYN-ACK out, ACK in; returns the SYN-ACK."""
    [synack] = send(h, syn6(sport, dport))
    send(h, IPv6(src=PEER6, dst=MY6) / TCP(sport=sport, dport=dport, flags="A", seq=1001,
                                            ack=synack[TCP].seq + 1))
    return synack


def errno_of(fn) -> int:
    with pytest.raises(OSError) as exc:
        fn()
    return exc.value.errno


# ----- passive open ---------------------------------------------------------------------

def test_a_syn_gets_a_syn_ack_with_the_ipv6_mss():
    h = make_dual_host()
    listener6(h)
    [synack] = send(h, syn6())
    assert synack.haslayer(IPv6) and (synack[IPv6].src, synack[IPv6].dst) == (MY6, PEER6)
    t = synack[TCP]
    assert t.flags == "SA" and t.ack == 1001 and (t.sport, t.dport) == (80, 40000)
    assert dict(t.options)["MSS"] == 1500 - 60


def test_the_handshake_makes_a_child_with_a_sockaddr_in6_peer():
    h = make_dual_host()
    lst = listener6(h)
    handshake6(h)
    child = lst.accept()
    assert child is not None and child.state == TCP_ESTABLISHED
    assert child.getpeername() == (PEER6_I, 40000, 0, 0)
    assert child.getsockname() == (MY6_I, 80, 0, 0)
    assert h.mib["PassiveOpens"] == 1 and h.mib["ActiveOpens"] == 0


def test_data_both_ways_over_ipv6():
    h = make_dual_host()
    lst = listener6(h)
    synack = handshake6(h)
    child = lst.accept()
    iss = synack[TCP].seq
    [ack] = send(h, IPv6(src=PEER6, dst=MY6) / TCP(sport=40000, dport=80, flags="PA",
                                                   seq=1001, ack=iss + 1) / (b"q" * 2000))
    assert child.recvmsg(5000) == b"q" * 2000
    assert ack[TCP].ack == 3001
    child.sendmsg(b"r" * 3000)
    segs = [f for f in out(h) if f.haslayer(TCP) and len(f[TCP].payload)]
    assert [len(f[TCP].payload) for f in segs] == [1440, 1440, 120]      # MSS 1440, no TS
    assert b"".join(bytes(f[TCP].payload) for f in segs) == b"r" * 3000


def test_a_syn_to_a_closed_port_gets_a_reset():
    h = make_dual_host()
    [rst] = send(h, syn6(dport=81, seq=5000))
    assert rst.haslayer(IPv6) and rst[TCP].flags == "RA" and rst[TCP].ack == 5001
    assert rst[TCP].seq == 0


def test_a_bad_checksum_is_counted_and_not_answered():
    h = make_dual_host()
    listener6(h)
    assert send(h, syn6(chksum=0x1234)) == []
    assert h.mib["InCsumErrors"] == 1 and h.mib["InErrs"] == 1


def test_syn_cookies_over_ipv6_make_a_child():
    h = make_dual_host(tcp_syncookies=2)
    lst = listener6(h)
    [synack] = send(h, syn6())
    assert h.mib["SyncookiesSent"] == 1
    send(h, IPv6(src=PEER6, dst=MY6) / TCP(sport=40000, dport=80, flags="A", seq=1001,
                                            ack=synack[TCP].seq + 1))
    assert h.mib["SyncookiesRecv"] == 1 and lst.accept() is not None
    # a cookie for another address does not check out
    [synack2] = send(h, syn6(sport=40001))
    bad = IPv6(src="fd00::9", dst=MY6) / TCP(sport=40001, dport=80, flags="A", seq=1001,
                                             ack=synack2[TCP].seq + 1)
    h.add_route6(ip6_aton("fd00::9"), 128, None, 1)
    h.ndisc._learn(1, ip6_aton("fd00::9"), bytes.fromhex("020000000001"), h.now)
    send(h, bad)
    assert h.mib["SyncookiesFailed"] == 1


def test_isns_differ_between_the_families_and_addresses():
    """RFC 6528's F() over the 128-bit addresses: the same ports from
    another IPv6 address, or over IPv4, start elsewhere."""
    h = make_dual_host()
    listener6(h)
    h.ndisc._learn(1, ip6_aton("fd00::1:1"), bytes.fromhex("020000000001"), h.now)
    [a] = send(h, syn6(sport=40000))
    [b] = send(h, IPv6(src="fd00::1:1", dst=MY6) / TCP(sport=40000, dport=80, flags="S",
                                                        seq=1000))
    [c] = send(h, IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="S", seq=1000))
    assert len({a[TCP].seq, b[TCP].seq, c[TCP].seq}) == 3


# ----- active open ----------------------------------------------------------------------

def test_connect_sends_a_syn_with_the_ipv6_mss_and_completes():
    h = make_dual_host()
    sk = h.tcp.socket(AF_INET6)
    assert errno_of(lambda: sk.connect(PEER6_I, 80)) == errno.EINPROGRESS
    [syn] = out(h)
    assert (syn[IPv6].src, syn[IPv6].dst) == (MY6, PEER6)
    assert syn[TCP].flags == "S" and dict(syn[TCP].options)["MSS"] == 1440
    send(h, IPv6(src=PEER6, dst=MY6) / TCP(sport=80, dport=syn[TCP].sport, flags="SA",
                                            seq=7000, ack=syn[TCP].seq + 1,
                                            options=[("MSS", 1440)]))
    assert sk.state == TCP_ESTABLISHED
    assert sk.getpeername() == (PEER6_I, 80, 0, 0)
    assert sk.getsockname()[0] == MY6_I


def test_port_unreachable_while_connecting_is_econnrefused():
    h = make_dual_host()
    sk = h.tcp.socket(AF_INET6)
    errno_of(lambda: sk.connect(PEER6_I, 80))
    [syn] = out(h)
    send(h, IPv6(src=PEER6, dst=MY6) / ICMPv6DestUnreach(code=4) / syn[IPv6])
    assert sk.state != TCP_SYN_SENT and sk.sk_err == errno.ECONNREFUSED


def test_packet_too_big_lowers_the_mss_of_the_quoted_connection():
    h = make_dual_host()
    sk = h.tcp.socket(AF_INET6)
    errno_of(lambda: sk.connect(PEER6_I, 80))
    [syn] = out(h)
    send(h, IPv6(src=PEER6, dst=MY6) / TCP(sport=80, dport=syn[TCP].sport, flags="SA",
                                            seq=7000, ack=syn[TCP].seq + 1,
                                            options=[("MSS", 1440)]))
    out(h)
    sk.sendmsg(b"x" * 1440)
    [seg] = [f for f in out(h) if len(f[TCP].payload)]
    assert len(seg[TCP].payload) == 1440
    frames = send(h, IPv6(src="fd00::fe", dst=MY6) / ICMPv6PacketTooBig(mtu=1280) / seg[IPv6])
    assert sk.mss_cache == 1280 - 60
    # tcp_simple_retransmit: the lost segment again, cut to the new MSS
    resent = [f for f in frames if f.haslayer(TCP) and len(f[TCP].payload)]
    assert [len(f[TCP].payload) for f in resent] == [1220, 220]
    assert all(len(f[IPv6]) <= 1280 for f in resent)
    assert h.mib["Ip6PmtuUpdates"] == 1


# ----- dual stack -----------------------------------------------------------------------

def test_an_ipv4_client_on_a_dual_stack_listener_is_v4_mapped():
    h = make_dual_host()
    lst = listener6(h)
    [synack] = send(h, IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="S", seq=1000,
                                                  options=[("MSS", 1460)]))
    assert synack.haslayer(IP) and dict(synack[TCP].options)["MSS"] == 1460
    send(h, IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="A", seq=1001,
                                       ack=synack[TCP].seq + 1))
    child = lst.accept()
    assert child.getpeername() == (MAPPED_PEER, 40000, 0, 0)
    assert child.getsockname() == (ip6_aton("::ffff:" + MY), 80, 0, 0)


def test_v6only_listener_refuses_ipv4():
    h = make_dual_host()
    listener6(h, v6only=True)
    [rst] = send(h, IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="S", seq=1000))
    assert rst[TCP].flags == "RA"


def test_ipv4_and_ipv6_connections_with_the_same_ports_never_collide():
    h = make_dual_host()
    lst = listener6(h)
    handshake6(h)
    [synack] = send(h, IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="S", seq=1000))
    send(h, IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="A", seq=1001,
                                       ack=synack[TCP].seq + 1))
    six, four = lst.accept(), lst.accept()
    assert six is not None and four is not None and six is not four
    send(h, IP(src=PEER, dst=MY) / TCP(sport=40000, dport=80, flags="PA", seq=1001,
                                       ack=synack[TCP].seq + 1) / b"four")
    assert four.recvmsg(10) == b"four" and six.readable() == 0


def test_connect_to_a_v4_mapped_address_goes_over_ipv4():
    h = make_dual_host()
    sk = h.tcp.socket(AF_INET6)
    errno_of(lambda: sk.connect(MAPPED_PEER, 80))
    [syn] = out(h)
    assert syn.haslayer(IP) and syn[IP].dst == PEER and dict(syn[TCP].options)["MSS"] == 1460
    v6only = h.tcp.socket(AF_INET6)
    v6only.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
    assert errno_of(lambda: v6only.connect(MAPPED_PEER, 80)) == errno.ENETUNREACH


BINDS = [       # (first, second, conflict?): Linux's inet_bind_conflict
    ((AF_INET, "0.0.0.0", False), (AF_INET6, "::", False), True),
    ((AF_INET, "0.0.0.0", False), (AF_INET6, "::", True), False),
    ((AF_INET6, "::", False), (AF_INET, MY, False), True),
    ((AF_INET6, "::", True), (AF_INET, "0.0.0.0", False), False),
    ((AF_INET6, MY6, False), (AF_INET6, "::", True), True),
    ((AF_INET6, MY6, False), (AF_INET, "0.0.0.0", False), False),
    ((AF_INET6, "::ffff:" + MY, False), (AF_INET, MY, False), True),
]


@pytest.mark.parametrize(("first", "second", "conflict"), BINDS)
def test_tcp_bind_conflicts_across_the_families_like_linux(first, second, conflict):
    h = make_dual_host()

    def bind(family, text, v6only):
        sk = h.tcp.socket(family)
        if v6only:
            sk.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
        sk.bind(ip6_aton(text) if family == AF_INET6 else ip_aton(text), 80)
        sk.listen(1)

    bind(*first)
    if conflict:
        assert errno_of(lambda: bind(*second)) == errno.EADDRINUSE
    else:
        bind(*second)


def test_format_of_ipv6_connections():
    h = make_dual_host()
    listener6(h)
    handshake6(h)
    rows = h.tcp.connections()
    assert ("LISTEN", "[::]:80") == (rows[0].state, rows[0].local)
    assert any(r.local == f"[{MY6}]:80" and r.remote == f"[{PEER6}]:40000" for r in rows)


def test_a_socket_bound_to_one_family_cannot_connect_to_the_other():
    h = make_dual_host()
    six = h.tcp.socket(AF_INET6)
    six.bind(MY6_I, 0)
    assert errno_of(lambda: six.connect(MAPPED_PEER, 80)) == errno.ENETUNREACH
    four = h.tcp.socket(AF_INET6)
    four.bind(ip6_aton("::ffff:" + MY), 0)
    assert errno_of(lambda: four.connect(PEER6_I, 80)) == errno.ENETUNREACH
    assert h.take_output() == []


def test_traces_and_log_lines_name_ipv6_connections(caplog):
    """The trace events and the tcpio.tcp log lines print an IPv6 4-tuple
    as IPv6 text (tcp_trace: the tagged addresses are never dotted quads)."""
    h = make_dual_host()
    events: list[dict] = []
    h.tcp.set_trace(events.append)
    with caplog.at_level("INFO", logger="tcpio.tcp"):
        listener6(h)
        handshake6(h)
    assert {(e["saddr"], e["daddr"]) for e in events if e.get("saddr")} >= {(MY6, PEER6)}
    assert any(f"{MY6}:80 -> {PEER6}:40000" in r.getMessage() for r in caplog.records)
