"""The transparent forwarder over IPv6 (issue 18; docs/internals.md
"Transparent forwarding").

As tests/test_forward_rules.py, with the client talking IPv6: ``c``
(fd00::1) sends everything through an "ip" link (a TUN's kernel side) to
``f``, which has no IPv6 address of its own and a forwarder on the link.
Virtual clock; every datagram ``f`` sends is read back with scapy, which
recomputes the IPv6 pseudo-header checksums.
"""

from __future__ import annotations

import errno

import pytest
from scapy.layers.inet import TCP, UDP, UDPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
)
from test_forward_rules import accepted_flow, assert_segments_fit

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.in_h import AF_INET6, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from tcpio.core.ndisc import icmp6_message
from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_forward import CONNECTED, PENDING, TcpForwarder
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED, TCP_SYN_SENT
from tcpio.core.udp_forward import UdpForwarder
from tcpio.forward import _name

FAR = "2001:db8:5::80"          # somebody else's address: never one of f's
FAR_IP = ip6_aton(FAR)
CLIENT = "fd00::1"
CLIENT_IP = ip6_aton(CLIENT)
V6TAG = 1 << 128


class Net6:
    """c (fd00::1, 10.0.0.1) --ip link-- f (no IPv6 address; forwarders on the link)."""

    def __init__(self, f_settings: Settings | None = None, **limits: float) -> None:
        self.net = VirtualNetwork(seed=11)
        self.c = self.net.host("c")
        self.f = self.net.host("f", settings=f_settings)
        self.link = self.net.link(self.c, self.f, "10.0.0.1/24", "10.0.0.2/24", kind="ip")
        self.c.add_route(0, 0, ip_aton("10.0.0.2"))
        self.c.add_address6(1, CLIENT_IP, 64, nodad=True)
        self.c.add_route6(0, 0, None, 1)
        self.f.add_route6(0, 0, None, 1)        # as `tcpio forward` routes ::/0 to the TUN
        self.fwd = TcpForwarder(self.f.tcp, **limits)   # type: ignore[arg-type]
        self.f.set_tproxy(1, IPPROTO_TCP, self.fwd)
        self.ready: list = []
        self.fwd.wakeup = lambda: self.ready.extend(self.fwd.take_ready())
        self.ufwd = UdpForwarder(self.f)  # type: ignore[arg-type]
        self.f.set_tproxy(1, IPPROTO_UDP, self.ufwd)
        self.sessions: list = []
        self.ufwd.wakeup = lambda: self.sessions.extend(self.ufwd.take_ready())

    def connect(self, dst: str = FAR, port: int = 80):
        sk = self.c.tcp.socket(AF_INET6)
        with pytest.raises(BlockingIOError):
            sk.connect(ip6_aton(dst), port)
        return sk

    def udp(self, dst: str = FAR, port: int = 53):
        sk = self.c.udp.socket(AF_INET6)
        sk.connect(ip6_aton(dst), port)
        return sk

    def requests(self, state: int = PENDING) -> list:
        return [r for r in self.ready if r.state == state]

    def from_f(self) -> list[IPv6]:
        return [IPv6(fr) for fr in self.link.frames_from(self.f)]

    def from_c(self) -> list[IPv6]:
        return [IPv6(fr) for fr in self.link.frames_from(self.c)]


def _checksum_ok(pkt: IPv6, layer, field: str = "chksum") -> bool:
    """scapy's own checksum over the IPv6 pseudo-header equals the one sent."""
    sent = getattr(pkt[layer], field)
    again = IPv6(bytes(pkt))
    delattr(again[layer], field)
    return getattr(IPv6(bytes(again))[layer], field) == sent


def test_syn_over_ipv6_to_any_address_is_a_request_with_the_original_4tuple() -> None:
    n = Net6()
    sk = n.connect(FAR, 80)
    n.net.run_for(0.5)
    (req,) = n.requests()
    assert (req.src, req.sport, req.dst, req.dport) == (
        V6TAG | CLIENT_IP, sk.lport, V6TAG | FAR_IP, 80)
    assert _name(req.dst, req.dport) == (FAR, 80, 0, 0)     # a sockaddr_in6, as AF_INET6 gives
    assert n.from_f() == [] and sk.state == TCP_SYN_SENT
    assert n.f.mib["TcpFwdRequests"] == 1 and n.f.mib["Ip6InAddrErrors"] == 0


def test_accept_over_ipv6_answers_from_the_original_destination_with_ipv6_mss() -> None:
    n = Net6()
    sk = n.connect(FAR, 443)
    n.net.run_for(0.1)
    syn = n.from_c()[0]
    n.requests()[0].accept()
    n.net.run_until(lambda: n.requests(CONNECTED))
    synack = n.from_f()[0]
    assert synack.src == FAR and synack.dst == CLIENT
    assert synack[TCP].sport == 443 and synack[TCP].flags == "SA"
    assert synack[TCP].ack == syn[TCP].seq + 1
    assert _checksum_ok(synack, TCP)
    assert dict(synack[TCP].options)["MSS"] == 1500 - 60       # RFC 8200: IPv6 + TCP headers
    child = n.requests(CONNECTED)[0].child
    assert sk.state == TCP_ESTABLISHED and child.state == TCP_ESTABLISHED
    assert child.family == AF_INET6
    assert child.getsockname() == (FAR_IP, 443, 0, 0)       # as getsockname() under TPROXY
    assert child.getpeername() == (CLIENT_IP, sk.lport, 0, 0)
    sk.sendmsg(b"ping" * 1000)
    n.net.run_for(0.5)
    assert child.recvmsg(10000) == b"ping" * 1000
    child.sendmsg(b"pong")
    n.net.run_for(0.5)
    assert sk.recvmsg(100) == b"pong"
    assert all(_checksum_ok(p, TCP) for p in n.from_f())


def test_refuse_over_ipv6_is_the_rst_ack_of_a_closed_port() -> None:
    n = Net6()
    sk = n.connect(FAR, 81)
    n.net.run_for(0.1)
    syn = n.from_c()[0]
    n.requests()[0].refuse()
    n.net.run_for(0.5)
    (rst,) = n.from_f()
    assert rst.src == FAR and rst[TCP].flags == "RA" and rst[TCP].seq == 0
    assert rst[TCP].ack == syn[TCP].seq + 1 and _checksum_ok(rst, TCP)
    assert sk.sk_err == errno.ECONNREFUSED


def test_ipv4_and_ipv6_flows_share_one_forwarder_and_keep_their_families() -> None:
    n = Net6()
    sk4 = n.c.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk4.connect(ip_aton("93.184.216.34"), 80)
    sk6 = n.connect(FAR, 80)
    n.net.run_for(0.1)
    reqs = n.requests()
    for req in reqs:
        req.accept()
    n.net.run_until(lambda: all(r.state == CONNECTED for r in reqs))
    names = sorted((r.child.family, r.child.getsockname()[:2]) for r in reqs)
    assert names == [(2, (ip_aton("93.184.216.34"), 80)), (AF_INET6, (FAR_IP, 80))]
    assert sk4.state == sk6.state == TCP_ESTABLISHED


def test_syn_cookies_apply_to_forwarded_ipv6_syns() -> None:
    n = Net6(Settings(tcp_syncookies=2))
    sk = n.connect(FAR, 80)
    n.net.run_for(0.1)
    n.requests()[0].accept()
    n.net.run_until(lambda: n.requests(CONNECTED))
    assert n.f.mib["SyncookiesSent"] == 1 and n.f.mib["SyncookiesRecv"] == 1
    assert sk.state == TCP_ESTABLISHED
    assert n.requests(CONNECTED)[0].child.getsockname() == (FAR_IP, 80, 0, 0)


def test_an_ack_to_a_forwarded_ipv6_tuple_nobody_holds_is_reset() -> None:
    n = Net6()
    seg = TCP(sport=4000, dport=80, flags="A", seq=1000, ack=2000)
    pkt = IPv6(src=CLIENT, dst=FAR) / seg
    n.c.ip6_output(IPPROTO_TCP, CLIENT_IP, FAR_IP, bytes(pkt)[40:])
    n.net.run_for(0.1)
    (rst,) = n.from_f()
    assert rst.src == FAR and rst[TCP].flags == "R" and rst[TCP].seq == 2000
    assert n.ready == []


def test_link_local_and_other_protocols_to_someone_else_are_not_forwarded() -> None:
    n = Net6()
    # a SYN to a link-local address that is not f's: its link's, not a flow
    n.f.receive(1, bytes(IPv6(src="fe80::1", dst="fe80::99") / TCP(dport=80, flags="S")),
                n.net.now)
    n.c.icmp6.echo_request(FAR_IP, 1, 1, b"x")      # no echo-any on this link
    n.net.run_for(0.5)
    assert n.ready == [] and n.from_f() == []
    assert n.f.mib["Ip6InAddrErrors"] == 2


def test_ipv6_echo_to_any_address_is_answered_from_it_when_asked() -> None:
    n = Net6()
    n.f.set_tproxy(1, IPPROTO_ICMPV6, n.f.icmp6)
    n.c.icmp6.echo_request(FAR_IP, 7, 3, b"ping data")
    n.net.run_for(0.5)
    (reply,) = n.from_f()
    assert reply.src == FAR and ICMPv6EchoReply in reply
    assert (reply[ICMPv6EchoReply].id, reply[ICMPv6EchoReply].seq,
            reply[ICMPv6EchoReply].data) == (7, 3, b"ping data")
    assert _checksum_ok(reply, ICMPv6EchoReply, "cksum")
    # any other ICMPv6 message to someone else is still not ours (a time
    # exceeded quoting a made-up datagram: no error is ever answered, and no
    # reply either)
    n.c.ip6_output(IPPROTO_ICMPV6, CLIENT_IP, FAR_IP,
                   icmp6_message(CLIENT_IP, FAR_IP, 3, 0, bytes(4) + bytes(48)))
    n.net.run_for(0.5)
    assert len(n.from_f()) == 1
    assert ICMPv6EchoRequest in n.from_c()[0] and ICMPv6TimeExceeded in n.from_c()[1]


def test_udp_over_ipv6_session_answers_from_the_original_destination() -> None:
    n = Net6()
    sk = n.udp(FAR, 53)
    sk.send(b"q1")
    sk.send(b"q2")
    n.net.run_for(0.1)
    (s,) = n.sessions
    assert (s.src, s.sport, s.dst, s.dport) == (V6TAG | CLIENT_IP, sk.lport, V6TAG | FAR_IP, 53)
    assert [s.recv(), s.recv(), s.recv()] == [b"q1", b"q2", None]
    s.send(b"answer")
    n.net.run_for(0.1)
    (dgram,) = n.from_f()
    assert dgram.src == FAR and dgram[UDP].sport == 53 and dgram[UDP].dport == sk.lport
    assert _checksum_ok(dgram, UDP) and dgram[UDP].chksum != 0
    assert sk.recvfrom()[:2] == (b"answer", (FAR_IP, 53, 0, 0))
    # the same ports to the IPv4 address whose 32 bits equal FAR's low ones:
    # another family, another session
    v4 = n.c.udp.socket()
    v4.bind(0, sk.lport)
    v4.connect(FAR_IP & 0xFFFFFFFF, 53)
    v4.send(b"t")
    n.net.run_for(0.1)
    assert len(n.sessions) == 2 and n.f.mib["UdpFwdSessions"] == 2


def test_udp_over_ipv6_unreachable_is_an_icmpv6_port_unreachable_from_the_destination() -> None:
    n = Net6()
    sk = n.udp(FAR, 5353)
    sk.send(b"anyone?")
    n.net.run_for(0.1)
    (s,) = n.sessions
    assert s.unreachable(3)
    n.net.run_for(0.1)
    (err,) = n.from_f()
    assert err.src == FAR and err.dst == CLIENT
    assert (err[ICMPv6DestUnreach].type, err[ICMPv6DestUnreach].code) == (1, 4)   # RFC 4443 3.1
    assert _checksum_ok(err, ICMPv6DestUnreach, "cksum")
    assert (err[IPerror6].src, err[IPerror6].dst) == (CLIENT, FAR)
    assert (err[UDPerror].sport, err[UDPerror].dport) == (sk.lport, 5353)
    assert bytes(err[UDPerror].payload) == b"anyone?"
    assert [e.errno for e in sk.errors] == [errno.ECONNREFUSED]   # as from FAR itself


def test_packet_too_big_about_a_forwarded_flow_shrinks_its_segments() -> None:
    """A Packet Too Big sent to the original destination quoting what it
    sent (a router between the client and the tunnel would send one) is
    about the forwarded connection: its path MTU drops (RFC 8201) and its
    segments with it.  One quoting somebody else's datagram changes nothing."""
    n = Net6()
    sk, child = accepted_flow(n, FAR, 443)
    seg = IPv6(src=FAR, dst=CLIENT) / TCP(sport=443, dport=sk.lport, seq=child.snd_una,
                                          flags="A")
    for quoted in (IPv6(src="2001:db8::66", dst=CLIENT) / TCP(sport=443, dport=sk.lport), seg):
        n.c.ip6_output(IPPROTO_ICMPV6, CLIENT_IP, FAR_IP,
                       icmp6_message(CLIENT_IP, FAR_IP, 2, 0,
                                     (1280).to_bytes(4, "big") + bytes(quoted)))
        n.net.run_for(0.1)
        if quoted is not seg:
            assert n.f.route6_lookup(CLIENT_IP).mtu == 1500      # not its flow: ignored
    assert n.f.route6_lookup(CLIENT_IP).mtu == 1280
    assert_segments_fit(n, sk, child, 1280)


@pytest.mark.parametrize(("code", "code6", "err"), [(1, 3, errno.EHOSTUNREACH),
                                                    (0, 0, errno.ENETUNREACH),
                                                    (13, 1, errno.EACCES)])
def test_unreachable_over_ipv6_is_the_matching_icmpv6_and_the_client_connect_fails(
        code: int, code6: int, err: int) -> None:
    """RFC 4443 3.1's codes for what RFC 792 calls host unreachable, net
    unreachable and administratively prohibited; the client's connect()
    fails with icmpv6_err_convert's errno."""
    n = Net6()
    sk = n.connect(FAR, 80)
    n.net.run_for(0.1)
    syn = n.from_c()[0]
    n.requests()[0].unreachable(code)
    n.net.run_for(0.5)
    (icmp,) = n.from_f()
    assert icmp.src == FAR and icmp.dst == CLIENT
    assert (icmp[ICMPv6DestUnreach].type, icmp[ICMPv6DestUnreach].code) == (1, code6)
    assert _checksum_ok(icmp, ICMPv6DestUnreach, "cksum")
    assert bytes(icmp[IPerror6]) == bytes(syn)                # the whole SYN quoted
    assert sk.sk_err == err and sk.state == 7                 # TCP_CLOSE
    assert n.f.mib["TcpFwdUnreachable"] == 1 and n.f.mib["Icmp6OutDestUnreachs"] == 1
