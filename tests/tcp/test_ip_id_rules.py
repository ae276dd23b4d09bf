"""IP IDs of what TCP sends, as Linux chooses them (include/net/ip.h
ip_select_ident_segs; issue 13).

- A connected socket (after connect() or accept) numbers its datagrams with
  its own counter, inet_id: random at tcp_v4_connect / tcp_v4_syn_recv_sock
  (get_random_u16), then one per segment, every segment of the connection
  (SYN, data, pure ACKs, retransmissions, RST|ACK of an abort).
- No connected socket and DF: ID 0 (a request's SYN-ACK, a cookie SYN-ACK,
  the RSTs and ACKs of TCP's control socket: no socket, TIME-WAIT, a request).
- Otherwise (DF off, ip_no_pmtu_disc = 1): the SYN-ACK gets a random ID
  (ip_build_and_send_pkt); a connection still uses its own counter.  The
  control socket is IP_PMTUDISC_DO whatever the sysctl (tcp_sk_init), so
  its RSTs and ACKs keep DF and ID 0.

A real Host on an IP link; the peer's segments are scapy datagrams, and the
IP headers are read back with scapy.
"""

from __future__ import annotations

import socket
from itertools import pairwise

import pytest
from scapy.layers.inet import ICMP, IP, TCP

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings

from .test_tcp_icmp_error_rules import LPORT, PEER, PEER_ISS, RPORT
from .test_tcp_icmp_error_rules import Wire as _IcmpWire


class Wire(_IcmpWire):
    def __init__(self, seed: int = 1, **settings) -> None:
        super().__init__(Settings(**settings), seed)

    def out(self) -> list:
        """What the host sent: scapy IP packets."""
        return [IP(bytes(f)) for _, f in self.h.take_output()]


def _consecutive(ids: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in pairwise(ids))


def _passive(w: Wire, sport: int = RPORT):
    """A listener, a handshake from the peer; (SYN-ACK packet, child sock)."""
    ls = w.h.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    [synack] = w.send(TCP(sport=sport, dport=LPORT, flags="S", seq=PEER_ISS,
                          options=[("MSS", 1460)]))
    w.send(TCP(sport=sport, dport=LPORT, flags="A", seq=PEER_ISS + 1,
               ack=synack[TCP].seq + 1, window=65535))
    child = ls.accept()
    assert child is not None
    return synack, child, ls


def test_a_request_synack_has_df_and_id_0_and_the_child_counts_from_a_random_start():
    """ip_build_and_send_pkt: the SYN-ACK of a request sock (no connected
    socket) with DF carries ID 0; the child (tcp_v4_syn_recv_sock) numbers
    its segments from its own random start, one per datagram."""
    w = Wire()
    synack, child, _ls = _passive(w)
    assert synack.flags.DF and synack.id == 0
    child.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    child.sendmsg(b"a" * 4000)
    data = w.out()
    assert len(data) == 3 and all(p.flags.DF for p in data)
    ids = [p.id for p in data]
    assert _consecutive(ids)
    # the peer ACKs the first segment with data: our pure ACK, then (at the
    # RTO) the retransmission of the second segment
    later = w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1,
                       ack=synack[TCP].seq + 1 + 1460, window=65535) / (b"q" * 1000))
    w.now = 1.5
    w.h.poll(w.now)
    later += w.out()
    assert [len(p[TCP].payload) for p in later][:2] == [0, 1460]
    assert _consecutive(ids + [p.id for p in later])


def test_two_hosts_seeded_differently_start_their_connections_elsewhere():
    """The start is random (get_random_u16), not a function of the 4-tuple:
    the same handshake on differently seeded hosts gives different starts."""
    starts = set()
    for seed in range(1, 6):
        w = Wire(seed=seed)
        _synack, child, _ls = _passive(w)
        child.sendmsg(b"x")
        [p] = w.out()
        starts.add(p.id)
    assert len(starts) >= 4


def test_connections_to_one_peer_keep_separate_counters():
    """Each connection has its own counter: sending on one does not move the
    other's IDs (one hashed per-destination counter would: both connections
    go to the same peer)."""
    w = Wire()
    _s1, a, ls = _passive(w, RPORT)
    [synack2] = w.send(TCP(sport=RPORT + 1, dport=LPORT, flags="S", seq=PEER_ISS,
                           options=[("MSS", 1460)]))
    w.send(TCP(sport=RPORT + 1, dport=LPORT, flags="A", seq=PEER_ISS + 1,
               ack=synack2[TCP].seq + 1, window=65535))
    b = ls.accept()
    for sk in (a, b):
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    a.sendmsg(b"1" * 2000)
    first = w.out()
    b.sendmsg(b"2" * 2000)
    other = w.out()
    a.sendmsg(b"3" * 100)
    again = w.out()
    assert len(first) == 2 and len(other) == 2 and len(again) == 1
    assert _consecutive([p.id for p in first + again])
    assert _consecutive([p.id for p in other])


def test_the_active_side_numbers_from_its_syn_on():
    """tcp_v4_connect draws inet_id before tcp_connect: the SYN takes the
    random start, the ACK of the SYN-ACK and every later segment the next IDs;
    retransmissions too (each is a new datagram)."""
    w = Wire()
    sk = w.h.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk.connect(ip_aton(PEER), RPORT)
    [syn] = w.out()
    assert syn.flags.DF
    out = w.send(TCP(sport=RPORT, dport=syn[TCP].sport, flags="SA", seq=PEER_ISS,
                     ack=syn[TCP].seq + 1, window=65535, options=[("MSS", 1460)]))
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.sendmsg(b"z" * 100)
    out += w.out()
    # the RTO resends the data segment
    w.now = 5.0
    w.h.poll(w.now)
    out += w.out()
    assert len(out) >= 3 and out[-1][TCP].seq == out[-2][TCP].seq   # a retransmission
    assert all(p.flags.DF for p in out)
    assert _consecutive([syn.id] + [p.id for p in out])


def test_rsts_and_acks_without_a_connected_socket_have_id_0():
    """TCP's control socket (tcp_sk_init: IP_PMTUDISC_DO, "enforce IP_DF and
    IPID==0 for RST and ACK sent in SYN-RECV and TIME-WAIT state"): a RST for
    no socket, the ACK a request sock sends for an out-of-window segment."""
    w = Wire()
    [rst] = w.send(TCP(sport=RPORT, dport=9, flags="S", seq=1))
    assert rst[TCP].flags.R and rst.flags.DF and rst.id == 0
    [rst2] = w.send(TCP(sport=RPORT, dport=9, flags="A", seq=1, ack=7))
    assert rst2.id == 0
    ls = w.h.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    [synack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="S", seq=PEER_ISS))
    assert synack.id == 0
    # a segment out of the request's window: tcp_check_req answers with an ACK
    # (tcp_v4_reqsk_send_ack) from the request, not a socket
    [ack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 100000,
                       ack=synack[TCP].seq + 1) / b"x")
    assert ack[TCP].flags == "A" and ack.flags.DF and ack.id == 0


@pytest.mark.parametrize("orphan", [False, True])
def test_time_wait_acks_have_id_0(orphan):
    """With the socket still held (shutdown), the ACK of the peer's FIN goes
    from the connection (tcp_fin sends it before tcp_time_wait), with its next
    ID; an orphan (close) is already a time-wait sock in FIN-WAIT-2 (tcp_close,
    tcp_rcv_state_process), so that ACK is the control socket's.  After that
    the TIME-WAIT sock is no connected socket: its ACK to a retransmitted FIN
    goes from the control socket (tcp_v4_timewait_ack), ID 0."""
    w = Wire()
    synack, child, _ls = _passive(w)
    iss = synack[TCP].seq
    if orphan:
        child.close()
    else:
        child.shutdown(socket.SHUT_WR)
    [fin] = w.out()
    assert fin[TCP].flags.F
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=iss + 2))
    [ack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="FA", seq=PEER_ISS + 1, ack=iss + 2))
    assert ack[TCP].flags == "A" and ack.flags.DF
    assert ack.id == 0 if orphan else _consecutive([fin.id, ack.id])
    [tw_ack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="FA", seq=PEER_ISS + 1,
                          ack=iss + 2))
    assert tw_ack[TCP].flags == "A" and tw_ack.flags.DF and tw_ack.id == 0


def test_without_pmtu_discovery_the_synack_id_is_random_and_the_connection_still_counts():
    """ip_no_pmtu_disc = 1: no DF.  ip_build_and_send_pkt gives a TCP SYN-ACK a
    random ID (never the hashed counters); the connection keeps numbering
    with its own counter (ip_select_ident_segs takes the socket first, DF or
    not).  The control socket's RSTs are not the connection's: tcp_sk_init
    made that socket IP_PMTUDISC_DO, so they keep DF and ID 0 (__ip_make_skb,
    ip_select_ident_segs without a connected socket)."""
    ids = set()
    for seed in range(1, 6):
        w = Wire(seed=seed, ip_no_pmtu_disc=1)
        synack, child, _ls = _passive(w)
        assert not synack.flags.DF
        ids.add(synack.id)
        child.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        child.sendmsg(b"b" * 3000)
        data = w.out()
        assert len(data) == 3 and not any(p.flags.DF for p in data)
        assert _consecutive([p.id for p in data])
        rsts = [w.send(TCP(sport=RPORT, dport=9, flags="S", seq=n))[0] for n in range(3)]
        assert all(p[TCP].flags.R and p.flags.DF and p.id == 0 for p in rsts)
    assert len(ids) >= 4


def test_icmp_with_df_and_no_socket_has_id_0_without_df_the_hashed_counter():
    """ip_select_ident_segs for a datagram no connected socket sends: 0 when
    DF is set (and the datagram may not be fragmented), else the hashed
    counter of (destination, protocol), consecutive."""
    w = Wire()
    w.h.icmp.echo_request(ip_aton(PEER), 1, 1, b"p", df=True)
    w.h.icmp.echo_request(ip_aton(PEER), 1, 2, b"p", df=True)
    w.h.icmp.echo_request(ip_aton(PEER), 1, 3, b"p")
    w.h.icmp.echo_request(ip_aton(PEER), 1, 4, b"p")
    pkts = [p for p in w.out() if p.haslayer(ICMP)]
    assert [bool(p.flags.DF) for p in pkts] == [True, True, False, False]
    assert [p.id for p in pkts[:2]] == [0, 0]
    assert _consecutive([p.id for p in pkts[2:]])


def test_without_pmtu_discovery_the_control_sockets_acks_keep_df_and_id_0():
    """ip_no_pmtu_disc = 1 changes the sockets made after it, not TCP's
    control socket (tcp_sk_init: IP_PMTUDISC_DO): a request's ACK to an
    out-of-window segment (tcp_v4_reqsk_send_ack) and a TIME-WAIT sock's ACK
    to a retransmitted FIN (tcp_v4_timewait_ack) carry DF and ID 0, while
    the connection's own segments go without DF."""
    w = Wire(ip_no_pmtu_disc=1)
    synack, child, _ls = _passive(w)
    [req_synack] = w.send(TCP(sport=RPORT + 1, dport=LPORT, flags="S", seq=PEER_ISS))
    assert not req_synack.flags.DF
    [ack] = w.send(TCP(sport=RPORT + 1, dport=LPORT, flags="A", seq=PEER_ISS + 100000,
                       ack=req_synack[TCP].seq + 1) / b"x")
    assert ack[TCP].flags == "A" and ack.flags.DF and ack.id == 0
    iss = synack[TCP].seq
    child.close()
    [fin] = w.out()
    assert fin[TCP].flags.F and not fin.flags.DF
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=iss + 2))
    w.send(TCP(sport=RPORT, dport=LPORT, flags="FA", seq=PEER_ISS + 1, ack=iss + 2))
    [tw_ack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="FA", seq=PEER_ISS + 1,
                          ack=iss + 2))
    assert tw_ack[TCP].flags == "A" and tw_ack.flags.DF and tw_ack.id == 0
