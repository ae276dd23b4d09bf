"""The transparent forwarder's rules (issue 18; docs/internals.md "Transparent forwarding").

A client host ``c`` sends through a forwarding host ``f`` (its default
route) on an "ip" link, as a TUN's kernel side does; ``f`` has a forwarder
on that link.  Virtual clock (VirtualNetwork); the segments on the wire are
read back with scapy, the independent dissector.
"""

from __future__ import annotations

import errno

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, UDPerror

from tcpio.core.addr import ip_aton
from tcpio.core.in_h import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_forward import CONNECTED, PENDING, TcpForwarder
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED, TCP_SYN_SENT
from tcpio.core.udp_forward import UdpForwarder

FAR = "93.184.216.34"           # somebody else's address: never one of f's
FAR_IP = ip_aton(FAR)


class Net:
    """c (10.0.0.1) --ip link-- f (10.0.0.2, forwarder on the link) [--ip link-- o]."""

    def __init__(self, f_settings: Settings | None = None, *, other_link: bool = False,
                 **limits: float) -> None:
        self.net = VirtualNetwork(seed=7)
        self.c = self.net.host("c")
        self.f = self.net.host("f", settings=f_settings)
        self.link = self.net.link(self.c, self.f, "10.0.0.1/24", "10.0.0.2/24", kind="ip")
        self.c.add_route(0, 0, ip_aton("10.0.0.2"))
        if other_link:
            self.o = self.net.host("o")
            self.link2 = self.net.link(self.o, self.f, "10.1.0.1/24", "10.1.0.2/24", kind="ip")
            self.o.add_route(0, 0, ip_aton("10.1.0.2"))
        self.fwd = TcpForwarder(self.f.tcp, **limits)   # type: ignore[arg-type]
        self.f.set_tproxy(1, IPPROTO_TCP, self.fwd)
        self.ready: list = []
        self.fwd.wakeup = lambda: self.ready.extend(self.fwd.take_ready())

    def connect(self, dst: str = FAR, port: int = 80, host=None):
        sk = (host or self.c).tcp.socket()
        with pytest.raises(BlockingIOError):
            sk.connect(ip_aton(dst), port)
        return sk

    def requests(self, state: int = PENDING) -> list:
        return [r for r in self.ready if r.state == state]

    def from_f(self) -> list[IP]:
        return [IP(fr) for fr in self.link.frames_from(self.f)]


def test_syn_to_any_address_is_a_request_with_the_original_4tuple_and_no_answer_yet() -> None:
    n = Net()
    sk = n.connect(FAR, 80)
    n.net.run_for(0.5)
    (req,) = n.requests()
    assert (req.src, req.sport, req.dst, req.dport) == (ip_aton("10.0.0.1"), sk.lport, FAR_IP, 80)
    assert n.from_f() == []             # no SYN-ACK before the application decides
    assert sk.state == TCP_SYN_SENT
    assert n.f.mib["TcpFwdRequests"] == 1 and n.f.mib["InAddrErrors"] == 0


def test_accept_answers_as_a_listener_from_the_original_destination() -> None:
    n = Net()
    sk = n.connect(FAR, 443)
    n.net.run_for(0.1)
    syn = IP(n.link.frames_from(n.c)[0])
    n.requests()[0].accept()
    n.net.run_until(lambda: n.requests(CONNECTED))
    synack = n.from_f()[0]
    # RFC 9293 3.10.7.2 from the address and port the client asked for
    assert synack.src == FAR and synack[TCP].sport == 443 and synack[TCP].flags == "SA"
    assert synack[TCP].ack == syn[TCP].seq + 1
    opts = dict(synack[TCP].options)
    assert opts["MSS"] == 1460 and "WScale" in opts and "SAckOK" in opts
    assert opts["Timestamp"][1] == dict(syn[TCP].options)["Timestamp"][0]
    child = n.requests(CONNECTED)[0].child
    assert sk.state == TCP_ESTABLISHED and child.state == TCP_ESTABLISHED
    assert child.getsockname() == (FAR_IP, 443)        # as getsockname() under TPROXY
    assert child.getpeername() == (ip_aton("10.0.0.1"), sk.lport)
    sk.sendmsg(b"ping")
    n.net.run_for(0.5)
    assert child.recvmsg(100) == b"ping"
    child.sendmsg(b"pong")
    n.net.run_for(0.5)
    assert sk.recvmsg(100) == b"pong"
    assert n.f.mib["PassiveOpens"] == 1 and n.f.mib["TcpFwdAccepted"] == 1


def test_refuse_is_the_rst_ack_of_a_closed_port_and_the_client_gets_econnrefused() -> None:
    n = Net()
    sk = n.connect(FAR, 81)
    n.net.run_for(0.1)
    syn = IP(n.link.frames_from(n.c)[0])
    n.requests()[0].refuse()
    n.net.run_for(0.5)
    (rst,) = n.from_f()
    assert rst.src == FAR and rst[TCP].flags == "RA" and rst[TCP].seq == 0
    assert rst[TCP].ack == syn[TCP].seq + 1
    assert sk.sk_err == errno.ECONNREFUSED
    assert n.f.mib["TcpFwdRefused"] == 1


def test_drop_sends_nothing_and_repeated_syns_make_no_second_request() -> None:
    n = Net()
    sk = n.connect(FAR, 80)
    n.net.run_for(3.5)                  # the client's SYN is retransmitted meanwhile
    assert len(n.link.frames_from(n.c)) >= 2
    (req,) = n.requests()
    req.drop()
    n.net.run_for(0.5)
    assert n.from_f() == [] and sk.state == TCP_SYN_SENT
    assert n.f.mib["TcpFwdDropped"] == 1 and n.f.mib["TcpFwdRequests"] == 1
    # once dropped the 4-tuple is new again: the next retransmission asks again
    n.net.run_until(lambda: n.f.mib["TcpFwdRequests"] == 2, timeout=10)


def test_a_decision_is_taken_once() -> None:
    n = Net()
    n.connect()
    n.net.run_for(0.1)
    req = n.requests()[0]
    req.refuse()
    with pytest.raises(OSError) as exc:
        req.accept()
    assert exc.value.errno == errno.EINVAL


def test_max_pending_drops_further_syns_and_counts_them() -> None:
    n = Net(max_pending=2)
    for port in (1, 2, 3):
        n.connect(FAR, port)
    n.net.run_for(0.1)
    assert [r.dport for r in n.requests()] == [1, 2]
    assert n.fwd.stats["TcpFwdPendingDrops"] == 1 == n.f.mib["TcpFwdPendingDrops"]


def test_max_connections_drops_syns_until_a_connection_closes() -> None:
    n = Net(max_connections=1)
    sk = n.connect(FAR, 1)
    n.net.run_for(0.1)
    n.requests()[0].accept()
    n.net.run_until(lambda: n.requests(CONNECTED))
    n.connect(FAR, 2)
    n.net.run_for(0.1)
    assert [r.dport for r in n.ready] == [1, 1]     # port 1 (new, then connected) only
    assert n.f.mib["TcpFwdConnLimitDrops"] == 1
    sk.abort()                          # RST: the forwarded connection ends
    n.net.run_for(0.5)
    n.net.run_until(lambda: len(n.ready) == 3, timeout=10)  # port 2's SYN, retransmitted
    assert n.ready[-1].dport == 2 and n.ready[-1].state == PENDING


def test_an_undecided_request_times_out_and_is_dropped() -> None:
    n = Net(pending_timeout=5.0)
    n.connect()
    n.net.run_for(0.1)
    req = n.requests()[0]
    n.net.run_for(4.8)
    assert n.f.mib["TcpFwdTimeouts"] == 0
    n.net.run_for(0.2)
    assert n.f.mib["TcpFwdTimeouts"] == 1
    with pytest.raises(OSError):
        req.accept()
    assert n.from_f() == []


def test_syn_cookies_apply_to_forwarded_syns_as_to_a_listener() -> None:
    n = Net(Settings(tcp_syncookies=2))
    sk = n.connect(FAR, 80)
    n.net.run_for(0.1)
    n.requests()[0].accept()
    n.net.run_until(lambda: n.requests(CONNECTED))
    assert n.f.mib["SyncookiesSent"] == 1 and n.f.mib["SyncookiesRecv"] == 1
    assert sk.state == TCP_ESTABLISHED
    assert n.requests(CONNECTED)[0].child.getsockname() == (FAR_IP, 80)


def test_other_interfaces_still_drop_datagrams_for_someone_else() -> None:
    n = Net(other_link=True)
    n.connect(FAR, 80, host=n.o)        # arrives on f's second link: no forwarder there
    n.net.run_for(0.1)
    assert n.ready == [] and n.f.mib["InAddrErrors"] == 1
    assert n.link2.frames_from(n.f) == []


def test_icmp_to_someone_else_is_not_forwarded() -> None:
    n = Net()
    n.c.icmp.echo_request(FAR_IP, 1, 1, b"x")
    n.net.run_for(0.5)
    assert n.f.mib["InAddrErrors"] == 1 and n.from_f() == []


def test_echo_to_any_address_is_answered_from_it_when_asked() -> None:
    n = Net()
    n.f.set_tproxy(1, IPPROTO_ICMP, n.f.icmp)
    n.c.icmp.echo_request(FAR_IP, 7, 3, b"ping data")
    n.net.run_for(0.5)
    (reply,) = n.from_f()
    assert reply.src == FAR and reply[ICMP].type == 0
    assert (reply[ICMP].id, reply[ICMP].seq, bytes(reply[ICMP].payload)) == (7, 3, b"ping data")
    assert [(r.src, r.ident, r.seq) for r in n.c.icmp.echo_replies] == [(FAR_IP, 7, 3)]
    # any other ICMP message to someone else is still not ours
    n.c.ip_output(IPPROTO_ICMP, None, FAR_IP, bytes(ICMP(type=13)))   # timestamp request
    n.net.run_for(0.5)
    assert len(n.from_f()) == 1


def test_our_own_address_meets_our_listeners_not_the_forwarder() -> None:
    n = Net()
    sk = n.connect("10.0.0.2", 80)      # nobody listens on f:80
    n.net.run_for(0.5)
    assert n.ready == [] and sk.sk_err == errno.ECONNREFUSED


def test_a_forwarder_removed_takes_no_more_syns() -> None:
    n = Net()
    n.f.set_tproxy(1, IPPROTO_TCP, None)
    n.connect()
    n.net.run_for(0.1)
    assert n.ready == [] and n.f.mib["InAddrErrors"] == 1


# --- UDP -------------------------------------------------------------------------------

class UdpNet(Net):
    def __init__(self, **limits: float) -> None:
        super().__init__()
        self.ufwd = UdpForwarder(self.f, **limits)  # type: ignore[arg-type]
        self.f.set_tproxy(1, IPPROTO_UDP, self.ufwd)
        self.sessions: list = []
        self.ufwd.wakeup = lambda: self.sessions.extend(self.ufwd.take_ready())

    def udp(self, dst: str = FAR, port: int = 53):
        sk = self.c.udp.socket()
        sk.connect(ip_aton(dst), port)
        return sk


def test_udp_session_per_4tuple_answers_from_the_original_destination() -> None:
    n = UdpNet()
    sk = n.udp(FAR, 53)
    sk.send(b"q1")
    sk.send(b"q2")
    n.net.run_for(0.1)
    (s,) = n.sessions
    assert (s.src, s.sport, s.dst, s.dport) == (ip_aton("10.0.0.1"), sk.lport, FAR_IP, 53)
    assert [s.recv(), s.recv(), s.recv()] == [b"q1", b"q2", None]
    s.send(b"answer")
    n.net.run_for(0.1)
    (dgram,) = n.from_f()
    assert dgram.src == FAR and dgram[UDP].sport == 53 and dgram[UDP].dport == sk.lport
    sent = dgram[UDP].chksum            # scapy recomputes it over the pseudo-header
    del dgram[UDP].chksum
    assert IP(bytes(dgram))[UDP].chksum == sent != 0
    assert sk.recvfrom() == (b"answer", (FAR_IP, 53))
    other = n.udp(FAR, 123)             # another 4-tuple, another session
    other.send(b"t")
    n.net.run_for(0.1)
    assert len(n.sessions) == 2 and n.f.mib["UdpFwdSessions"] == 2


def test_udp_session_ends_after_idle_timeout_of_silence_either_way() -> None:
    n = UdpNet(idle_timeout=10.0)
    sk = n.udp()
    sk.send(b"a")
    n.net.run_for(0.1)
    (s,) = n.sessions
    n.net.run_for(9.0)
    s.send(b"keep")                     # traffic towards the client counts too
    n.net.run_for(9.5)
    assert not s.closed
    n.net.run_for(0.6)
    assert s.closed and n.f.mib["UdpFwdIdleTimeouts"] == 1
    sk.send(b"again")                   # the same 4-tuple makes a new session
    n.net.run_for(0.1)
    assert len(n.sessions) == 2 and n.sessions[1].recv() == b"again"


def test_udp_max_sessions_drops_datagrams_of_new_4tuples() -> None:
    n = UdpNet(max_sessions=1)
    n.udp(FAR, 1).send(b"x")
    n.udp(FAR, 2).send(b"y")
    n.net.run_for(0.1)
    assert len(n.sessions) == 1 and n.f.mib["UdpFwdSessionDrops"] == 1


def test_udp_session_receive_queue_is_bounded() -> None:
    n = UdpNet()
    sk = n.udp()
    for _ in range(300):
        sk.send(b"z" * 1000)
    n.net.run_for(0.5)
    s = n.sessions[0]
    assert n.f.mib["UdpFwdRcvbufErrors"] > 0
    assert s.rcv_bytes <= s.rcvbuf
    assert n.f.mib["UdpFwdInDatagrams"] + n.f.mib["UdpFwdRcvbufErrors"] == 300


def test_udp_to_our_own_address_is_ordinary_udp() -> None:
    n = UdpNet()
    sk = n.udp("10.0.0.2", 9)           # closed port on f: port unreachable, no session
    sk.send(b"x")
    n.net.run_for(0.1)
    assert n.sessions == [] and n.f.mib["UdpNoPorts"] == 1
    assert ICMP in n.from_f()[0]


def test_a_syn_reopening_a_forwarded_tuple_in_time_wait_is_a_new_request() -> None:
    """RFC 6191 / tcp_timewait_state_process's TCP_TW_SYN: the forwarded
    side closed first and holds TIME-WAIT; the client's new SYN from the same
    port (ISN above the old sequence space) is a new request, not an ACK."""
    n = Net()
    sk = n.connect(FAR, 80)
    n.net.run_for(0.1)
    n.requests()[0].accept()
    n.net.run_until(lambda: n.requests(CONNECTED))
    child = n.requests(CONNECTED)[0].child
    port = sk.lport
    child.close()                       # our FIN first: the forwarded side ends in TIME-WAIT
    n.net.run_for(0.5)
    sk.close()
    n.net.run_for(0.5)
    assert [r.state for r in n.f.tcp.connections()] == ["TIME-WAIT"]
    again = n.c.tcp.socket()
    again.reuseaddr = True
    again.bind(0, port)
    with pytest.raises(BlockingIOError):
        again.connect(FAR_IP, 80)
    n.net.run_for(0.1)
    assert n.f.mib["TcpFwdRequests"] == 2
    new = n.ready[-1]
    assert new.state == PENDING and new.sport == port
    new.accept()
    n.net.run_until(lambda: new.state == CONNECTED)
    assert again.state == TCP_ESTABLISHED


def test_udp_session_unreachable_is_a_port_unreachable_from_the_original_destination() -> None:
    n = UdpNet()
    sk = n.udp(FAR, 5353)
    sk.send(b"anyone?")
    n.net.run_for(0.1)
    (s,) = n.sessions
    assert s.unreachable(3)
    n.net.run_for(0.1)
    (err,) = n.from_f()
    assert err.src == FAR and err.dst == "10.0.0.1"
    assert (err[ICMP].type, err[ICMP].code) == (3, 3)
    assert (err[IPerror].src, err[IPerror].dst) == ("10.0.0.1", FAR)
    assert (err[UDPerror].sport, err[UDPerror].dport) == (sk.lport, 5353)
    assert [e.errno for e in sk.errors] == [errno.ECONNREFUSED]   # as from FAR itself


def test_an_accepted_syn_whose_cookie_synack_was_lost_is_answered_again() -> None:
    """With cookies no request sock holds the tuple: the client's
    retransmitted SYN must meet the listener again (as every SYN does in
    Linux's cookie mode), not be taken for the pending request's duplicate."""
    n = Net(Settings(tcp_syncookies=2))
    lost = []
    n.link.drop = lambda host, frame: host is n.f and not lost and not lost.append(frame)
    sk = n.connect(FAR, 80)
    n.net.run_for(0.1)
    n.requests()[0].accept()
    n.net.run_until(lambda: n.requests(CONNECTED), timeout=10)
    assert len(lost) == 1 and sk.state == TCP_ESTABLISHED
    assert n.f.mib["SyncookiesSent"] == 2 and n.f.mib["TcpFwdRequests"] == 1


@pytest.mark.parametrize(("code", "err"), [(1, errno.EHOSTUNREACH), (0, errno.ENETUNREACH),
                                           (13, errno.EHOSTUNREACH)])
def test_unreachable_is_the_icmp_a_router_sends_and_the_client_connect_fails(
        code: int, err: int) -> None:
    """RFC 1812 5.2.7.1 / Linux's ip_error: a router that cannot reach the
    destination answers the SYN with destination unreachable quoting it; the
    client's connect() in SYN-SENT fails with icmp_err_convert's errno."""
    n = Net()
    sk = n.connect(FAR, 80)
    n.net.run_for(0.1)
    syn = IP(n.link.frames_from(n.c)[0])
    n.requests()[0].unreachable(code)
    n.net.run_for(0.5)
    (icmp,) = n.from_f()
    assert icmp.src == FAR and icmp.dst == "10.0.0.1" and icmp.tos == 0xC0
    assert (icmp[ICMP].type, icmp[ICMP].code) == (3, code)
    assert bytes(icmp[IPerror])[:40] == bytes(syn)[:40]     # the SYN as it was sent
    assert sk.sk_err == err and sk.state == 7               # TCP_CLOSE
    assert n.f.mib["TcpFwdUnreachable"] == 1 and n.f.mib["IcmpOutDestUnreachs"] == 1
    assert n.c.mib["IcmpInDestUnreachs"] == 1


def test_fragmentation_needed_about_a_forwarded_flow_shrinks_its_segments() -> None:
    """RFC 1191: an ICMP fragmentation needed sent to the original
    destination quoting what it sent is about the forwarded connection (a
    router between the client and the tunnel would send it); one quoting a
    datagram another address sent changes nothing."""
    n = Net()
    sk, child = accepted_flow(n, FAR, 443)
    client = ip_aton("10.0.0.1")
    seg = IP(src=FAR, dst="10.0.0.1") / TCP(sport=443, dport=sk.lport, seq=child.snd_una)
    other = IP(src="198.51.100.7", dst="10.0.0.1") / TCP(sport=443, dport=sk.lport)
    for quoted in (other, seg):
        n.c.ip_output(IPPROTO_ICMP, None, FAR_IP,
                      bytes(ICMP(type=3, code=4, nexthopmtu=1000) / bytes(quoted)[:28]))
        n.net.run_for(0.1)
        if quoted is other:
            assert n.f.route_lookup(client).mtu == 1500         # not its flow: ignored
    assert n.f.route_lookup(client).mtu == 1000
    assert_segments_fit(n, sk, child, 1000)


def accepted_flow(n, dst: str, port: int):
    """A forwarded connection: the client's sock and the accepted child."""
    sk = n.connect(dst, port)
    n.net.run_for(0.1)
    req = n.requests()[0]
    req.accept()
    n.net.run_until(lambda: req.state == CONNECTED)
    return sk, req.child


def assert_segments_fit(n, sk, child, mtu: int) -> None:
    """20 000 bytes from the child reach the client in datagrams of at most ``mtu``."""
    sent = len(n.link.frames_from(n.f))
    child.sendmsg(b"z" * 20000)
    n.net.run_for(1)
    frames = n.link.frames_from(n.f)[sent:]
    assert frames and max(len(f) for f in frames) <= mtu
    assert sk.recvmsg(1 << 16) == b"z" * 20000
