"""UDP over IPv6 and dual-stack UDP socks on one Host (issue 17, phase 2).

Packets in are built by scapy, packets out dissected by scapy with their
checksums recomputed.  The rules: RFC 8200 8.1 (the IPv6 pseudo-header, a
zero UDP checksum is invalid), RFC 4443 (port unreachable, errors to the
socket: icmpv6_err_convert), RFC 3493 / Linux's ipv6(7) (IPv4-mapped
addresses, IPV6_V6ONLY, the shared port space and its bind conflicts).
"""

from __future__ import annotations

import errno
import socket

import pytest
from hostutil import MY, MY6, PEER, PEER6, inject, make_dual_host
from scapy.layers.inet import ICMP, IP, UDP, UDPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    IPerror6,
    IPv6,
    IPv6ExtHdrFragment,
    defragment6,
)
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.host import Host
from tcpio.core.in_h import AF_INET, AF_INET6, IPPROTO_IPV6, IPV6_V6ONLY

MY6_I, PEER6_I = ip6_aton(MY6), ip6_aton(PEER6)
MAPPED_PEER = ip6_aton("::ffff:" + PEER)
MAPPED_MY = ip6_aton("::ffff:" + MY)


def dgram6(data=b"hi", sport=1000, dport=53, **udp) -> IPv6:
    return IPv6(src=PEER6, dst=MY6) / UDP(sport=sport, dport=dport, **udp) / data


def sock6(h: Host, port: int = 53, addr: int = 0, v6only: bool = False):
    sk = h.udp.socket(AF_INET6)
    if v6only:
        sk.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
    sk.bind(addr, port)
    return sk


def errno_of(fn) -> int:
    with pytest.raises(OSError) as exc:
        fn()
    return exc.value.errno


def frames_out(h: Host) -> list[Ether]:
    return [Ether(f) for _, f in h.take_output()]


def sent_udp6(frames: list[Ether]) -> list[IPv6]:
    """Our IPv6 UDP datagrams, each checksum recomputed by scapy and compared."""
    out = []
    for f in frames:
        if f.haslayer(IPv6) and f.haslayer(UDP):
            ours = f[UDP].chksum
            del f[UDP].chksum
            assert Ether(bytes(f))[UDP].chksum == ours != 0
            out.append(Ether(bytes(f))[IPv6])
    return out


# ----- input --------------------------------------------------------------------------

def test_an_ipv6_datagram_reaches_the_bound_socket_with_a_sockaddr_in6():
    h = make_dual_host()
    sk = sock6(h)
    inject(h, dgram6(b"hello"), 3.0)
    assert sk.recvfrom() == (b"hello", (PEER6_I, 1000, 0, 0))
    assert h.mib["Udp6InDatagrams"] == 1 and h.mib["UdpInDatagrams"] == 0


def sums_to_zero() -> bytes:
    """A payload whose datagram's checksum computes to 0 (sent as 0xFFFF):
    with the field 0 the arithmetic verifies too, so only the rule that 0
    is invalid over IPv6 drops it."""
    fix = dgram6(b"hi\0\0")[UDP]
    fix = IPv6(bytes(fix.underlayer))[UDP].chksum
    data = b"hi" + fix.to_bytes(2, "big")
    assert IPv6(bytes(dgram6(data)))[UDP].chksum == 0xFFFF
    return data


def test_a_zero_or_wrong_checksum_is_dropped_and_counted():
    """RFC 8200 8.1: over IPv6 a UDP checksum of 0 is not "none" but invalid."""
    h = make_dual_host()
    sk = sock6(h)
    data = sums_to_zero()
    inject(h, dgram6(data, chksum=0xFFFF), 3.0)        # the same datagram, valid
    assert sk.recvfrom()[0] == data
    for chksum in (0, 0x1234):
        frames = inject(h, dgram6(data, chksum=chksum), 3.0)
        assert sk.recvfrom() is None and frames == []
    assert h.mib["Udp6InCsumErrors"] == 2 and h.mib["Udp6InErrors"] == 2


def test_a_udp_length_past_the_payload_is_an_error():
    h = make_dual_host()
    sock6(h)
    inject(h, dgram6(b"abc", len=40), 3.0)
    assert h.mib["Udp6InErrors"] == 1 and h.mib["Udp6InDatagrams"] == 0


def test_a_closed_port_answers_icmpv6_port_unreachable_quoting_the_datagram():
    h = make_dual_host()
    frames = inject(h, dgram6(b"knock", dport=9999), 3.0)
    assert len(frames) == 1
    err = frames[0][IPv6]
    assert (err.src, err.dst) == (MY6, PEER6)
    assert err[ICMPv6DestUnreach].code == 4
    quoted = err[ICMPv6DestUnreach].payload
    assert quoted[IPerror6].dst == MY6 and quoted[UDPerror].dport == 9999
    assert h.mib["Udp6NoPorts"] == 1 and h.mib["UdpNoPorts"] == 0


def test_an_ipv6_datagram_never_reaches_an_af_inet_socket():
    h = make_dual_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    frames = inject(h, dgram6(), 3.0)
    assert sk.recvfrom() is None
    assert frames[0].haslayer(ICMPv6DestUnreach)


def test_the_exact_address_beats_the_wildcard_and_connected_beats_both():
    h = make_dual_host()
    wild = sock6(h)
    exact = h.udp.socket(AF_INET6)
    exact.reuseaddr = wild.reuseaddr = True
    exact.bind(MY6_I, 53)
    inject(h, dgram6(b"1"), 3.0)
    assert exact.recvfrom()[0] == b"1" and wild.recvfrom() is None
    conn = h.udp.socket(AF_INET6)
    conn.reuseaddr = True
    conn.bind(MY6_I, 53)
    conn.connect(PEER6_I, 1000)
    inject(h, dgram6(b"2"), 3.0)
    assert conn.recvfrom()[0] == b"2" and exact.recvfrom() is None


# ----- output -------------------------------------------------------------------------

def test_sendto_builds_the_ipv6_pseudo_header_checksum():
    h = make_dual_host()
    sk = sock6(h, port=5353)
    assert sk.sendto(b"payload", PEER6_I, 7) == 7
    [d] = sent_udp6(frames_out(h))
    assert (d.src, d.dst, d[UDP].sport, d[UDP].dport) == (MY6, PEER6, 5353, 7)
    assert bytes(d[UDP].payload) == b"payload"
    assert h.mib["Udp6OutDatagrams"] == 1 and h.mib["UdpOutDatagrams"] == 0


def test_a_datagram_above_the_mtu_is_fragmented_by_the_source():
    h = make_dual_host()
    sk = sock6(h)
    data = bytes(range(256)) * 31
    sk.sendto(data, PEER6_I, 7)
    frames = frames_out(h)
    assert len(frames) == 6 and all(f.haslayer(IPv6ExtHdrFragment) for f in frames)
    whole = defragment6([f[IPv6] for f in frames])
    udp = IPv6(bytes(whole))[UDP]
    ours = udp.chksum
    del udp.chksum
    assert IPv6(bytes(udp.underlayer))[UDP].chksum == ours
    assert bytes(udp.payload) == data


def test_an_unbound_socket_takes_an_ephemeral_port_and_the_route_source():
    h = make_dual_host()
    sk = h.udp.socket(AF_INET6)
    sk.sendto(b"x", PEER6_I, 7)
    [d] = sent_udp6(frames_out(h))
    lo, hi = h.settings.ip_local_port_range
    assert d.src == MY6 and lo <= d[UDP].sport <= hi
    assert sk.getsockname() == (0, d[UDP].sport, 0, 0)


def test_payload_limit_is_65527_over_ipv6():
    h = make_dual_host()
    sk = sock6(h)
    assert errno_of(lambda: sk.sendto(b"x" * 65528, PEER6_I, 7)) == errno.EMSGSIZE
    assert sk.sendto(b"x" * 65527, PEER6_I, 7) == 65527


# ----- ICMPv6 errors to sockets -----------------------------------------------------

def port_unreachable_for(frames: list[Ether]) -> IPv6:
    """The ICMPv6 port unreachable the peer sends about our datagram."""
    [d] = [f[IPv6] for f in frames]
    return IPv6(src=PEER6, dst=MY6) / ICMPv6DestUnreach(code=4) / d


def test_port_unreachable_is_econnrefused_on_a_connected_socket_only():
    h = make_dual_host()
    conn = sock6(h, port=4000)
    conn.connect(PEER6_I, 7)
    conn.sendto(b"x")
    inject(h, port_unreachable_for(frames_out(h)), 3.0)
    assert [e.errno for e in conn.errors] == [errno.ECONNREFUSED]
    loose = sock6(h, port=4001)
    loose.sendto(b"x", PEER6_I, 7)
    inject(h, port_unreachable_for(frames_out(h)), 3.0)
    assert not loose.errors


# ----- dual stack: IPv4-mapped addresses, IPV6_V6ONLY ----------------------------------

def test_an_ipv4_datagram_reaches_a_dual_stack_socket_as_v4_mapped():
    h = make_dual_host()
    sk = sock6(h)
    inject(h, IP(src=PEER, dst=MY) / UDP(sport=1000, dport=53) / b"v4", 3.0)
    assert sk.recvfrom() == (b"v4", (MAPPED_PEER, 1000, 0, 0))
    assert h.mib["UdpInDatagrams"] == 1       # counted by the datagram's family


def test_v6only_refuses_ipv4_so_the_port_is_unreachable():
    h = make_dual_host()
    sk = sock6(h, v6only=True)
    frames = inject(h, IP(src=PEER, dst=MY) / UDP(sport=1000, dport=53) / b"v4", 3.0)
    assert sk.recvfrom() is None
    assert frames[0][ICMP].type == 3 and frames[0][ICMP].code == 3


def test_an_af_inet_socket_beats_a_dual_stack_one_for_ipv4():
    h = make_dual_host()
    six = sock6(h)
    four = h.udp.socket()
    six.reuseaddr = four.reuseaddr = True
    four.bind(0, 53)
    inject(h, IP(src=PEER, dst=MY) / UDP(sport=1000, dport=53) / b"v4", 3.0)
    assert four.recvfrom() is not None and six.recvfrom() is None


def test_sending_to_a_v4_mapped_address_goes_out_as_ipv4():
    h = make_dual_host()
    sk = sock6(h, port=5000)
    sk.sendto(b"to4", MAPPED_PEER, 7)
    [f] = frames_out(h)
    assert f.haslayer(IP) and (f[IP].src, f[IP].dst, f[UDP].sport) == (MY, PEER, 5000)
    ours = f[UDP].chksum
    del f[UDP].chksum
    assert Ether(bytes(f))[UDP].chksum == ours
    assert h.mib["UdpOutDatagrams"] == 1
    v6only = sock6(h, port=5001, v6only=True)
    assert errno_of(lambda: v6only.sendto(b"x", MAPPED_PEER, 7)) == errno.ENETUNREACH


def test_connect_to_v4_mapped_fixes_a_v4_mapped_source():
    h = make_dual_host()
    sk = h.udp.socket(AF_INET6)
    sk.connect(MAPPED_PEER, 7)
    assert sk.getsockname()[0] == MAPPED_MY
    assert sk.getpeername() == (MAPPED_PEER, 7, 0, 0)


# (first bind, second bind, conflict?) on one port, as Linux's udp_lib_lport_inuse
# with ipv6_rcv_saddr_equal: the families share the ports; :: covers IPv4 too
# unless IPV6_V6ONLY; ::ffff:a.b.c.d is the IPv4 address a.b.c.d.
BINDS = [
    ((AF_INET, "0.0.0.0", False), (AF_INET6, "::", False), True),
    ((AF_INET, "0.0.0.0", False), (AF_INET6, "::", True), False),
    ((AF_INET6, "::", False), (AF_INET, MY, False), True),
    ((AF_INET6, "::", True), (AF_INET, MY, False), False),
    ((AF_INET6, "::", True), (AF_INET6, MY6, False), True),
    ((AF_INET6, MY6, False), (AF_INET, "0.0.0.0", False), False),
    ((AF_INET6, "::ffff:" + MY, False), (AF_INET, MY, False), True),
    ((AF_INET6, "::ffff:" + MY, False), (AF_INET6, MY6, False), False),
    ((AF_INET, MY, False), (AF_INET6, "::ffff:0.0.0.0", False), True),
]


def _bind(h: Host, family: int, text: str, v6only: bool):
    sk = h.udp.socket(family)
    if v6only:
        sk.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
    sk.bind(ip6_aton(text) if family == AF_INET6 else ip_aton(text), 53)
    return sk


@pytest.mark.parametrize(("first", "second", "conflict"), BINDS)
def test_bind_conflicts_across_the_families_like_linux(first, second, conflict):
    h = make_dual_host()
    _bind(h, *first)
    if conflict:
        assert errno_of(lambda: _bind(h, *second)) == errno.EADDRINUSE
    else:
        _bind(h, *second)


def test_v6only_is_an_af_inet6_option_and_fixed_at_bind():
    h = make_dual_host()
    four = h.udp.socket()
    assert errno_of(lambda: four.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)) == errno.ENOPROTOOPT
    six = sock6(h)
    assert six.getsockopt(IPPROTO_IPV6, IPV6_V6ONLY) == 0     # bindv6only=0 by default
    assert errno_of(lambda: six.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)) == errno.EINVAL
    assert make_dual_host(bindv6only=1).udp.socket(AF_INET6).getsockopt(
        socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_a_v4_mapped_bind_on_a_v6only_socket_is_einval():
    h = make_dual_host()
    sk = h.udp.socket(AF_INET6)
    sk.setsockopt(IPPROTO_IPV6, IPV6_V6ONLY, 1)
    assert errno_of(lambda: sk.bind(MAPPED_MY, 53)) == errno.EINVAL


def test_binding_an_address_not_ours_is_eaddrnotavail():
    h = make_dual_host()
    assert errno_of(lambda: h.udp.socket(AF_INET6).bind(ip6_aton("fd00::99"), 53)) \
        == errno.EADDRNOTAVAIL


def test_a_source_of_one_family_cannot_reach_a_peer_of_the_other():
    h = make_dual_host()
    six = sock6(h, addr=MY6_I)
    assert errno_of(lambda: six.sendto(b"x", MAPPED_PEER, 7)) == errno.ENETUNREACH
    four = sock6(h, port=54, addr=MAPPED_MY)
    assert errno_of(lambda: four.sendto(b"x", PEER6_I, 7)) == errno.ENETUNREACH
    assert h.take_output() == []
