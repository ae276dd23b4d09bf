"""SYN-RECEIVED as a request sock: what each segment to it does (tcp_check_req),
the SYN-ACK and its retransmission, and the child it turns into.

Linux keeps a half-open passive connection as a request sock
(net/ipv4/tcp_minisocks.c); RFC 9293 3.10.7.4 says what SYN-RECEIVED does with
each segment, RFC 7323 5.3 adds PAWS.  The peer is played by hand and every
segment out is checked field by field.  Without options the listener
advertises 44 x 1460 = 64240 bytes (MTU 1500, rcvbuf 128 KiB capped at 65535,
whole segments), unscaled.
"""

from __future__ import annotations

import socket
from types import SimpleNamespace

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .helpers import ACK, FIN, LPORT, PEER_ISS, PSH, RST, SYN, FakeHost, Peer, TcpOptions

RCV_WND = 64240          # 44 whole 1460-byte segments below 65535
RCV_WND_TS = 65160       # 45 x 1448 when timestamps take 12 bytes of each segment


def _syn_recv(settings: Settings | None = None, opts=None, backlog: int = 8, setup=None):
    """A listener on LPORT and a peer whose SYN (ISN PEER_ISS) got a SYN-ACK."""
    host = FakeHost(settings=settings)
    peer = Peer(host)
    ls = host.tcp.socket()
    if setup:
        setup(ls)
    ls.bind(0, LPORT)
    ls.listen(backlog)
    peer.send(SYN, PEER_ISS, opts=opts)
    synack = peer.recv_one()
    assert synack.flags == SYN | ACK and synack.ack == PEER_ISS + 1
    return SimpleNamespace(host=host, peer=peer, ls=ls, synack=synack, iss=synack.seq,
                           rcv_nxt=PEER_ISS + 1)


def _completes(r) -> bool:
    """The third ACK now creates the child (so the request was still there)."""
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    child = r.ls.accept()
    return child is not None and child.state == TCP_ESTABLISHED


def _plain_ack(r, window: int = RCV_WND) -> tuple:
    """<SEQ=ISS+1><ACK=RCV.NXT><CTL=ACK>, the request sock's answer to junk."""
    return (ACK, r.iss + 1, r.rcv_nxt, window)


def _fields(seg) -> tuple:
    return (seg.flags, seg.seq, seg.ack, seg.window)


# --- the acceptability test (tcp_in_window) ---------------------------------------
def test_old_duplicate_ending_at_rcv_nxt_is_out_of_window_and_gets_an_ack():
    """RFC 9293 3.10.7.4: a segment is acceptable only if it starts or ends
    inside [RCV.NXT, RCV.NXT + RCV.WND); one that ends just before RCV.NXT is an
    old duplicate: ACK it, drop it, and do not let it complete the handshake
    (Linux tcp_check_req/tcp_in_window; checked against Linux 6.18)."""
    r = _syn_recv()
    r.peer.send(ACK, PEER_ISS, r.iss + 1, payload=b"x")     # [ISN, ISN+1): the SYN's slot
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None
    assert _completes(r)


def test_data_starting_at_the_right_window_edge_is_out_of_window():
    """RFC 9293 3.10.7.4: SEG.SEQ must be below RCV.NXT + RCV.WND for a
    segment with data; one starting at the edge gets an ACK, no child."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND, r.iss + 1, payload=b"x")
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None
    assert _completes(r)


def test_last_byte_inside_the_window_is_acceptable():
    """Data that starts before the right edge overlaps the window: the ACK
    completes the handshake (the data itself is then the child's business)."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND - 1, r.iss + 1, payload=b"x")
    child = r.ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED


def test_empty_ack_at_the_right_window_edge_completes_the_handshake():
    """Linux's tcp_in_window also takes an empty segment at RCV.NXT + RCV.WND
    (checked against Linux 6.18: the connection is established)."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND, r.iss + 1)
    child = r.ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED


def test_empty_ack_just_past_the_right_window_edge_gets_an_ack():
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND + 1, r.iss + 1)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None


def test_old_empty_ack_below_rcv_nxt_gets_an_ack():
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt - 1, r.iss + 1)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None
    assert _completes(r)


def test_data_overlapping_rcv_nxt_from_below_is_acceptable():
    """Starts before RCV.NXT, ends after it: its last byte is in the window."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt - 2, r.iss + 1, payload=b"abcd")
    child = r.ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED


# --- the child (tcp_create_openreq_child) -------------------------------------------
def test_child_send_window_is_the_third_acks_not_the_syns():
    """SND.WND and MAX.SND.WND start from the third ACK's window (scaled): the
    SYN's is stale.  Linux then bounds segments to half the largest window
    the peer offered (tcp_bound_to_half_wnd): 1000 bytes go as 500 + 500
    (Linux 6.18, with the same SYN window 65535 and ACK window 1000)."""
    r = _syn_recv(opts=TcpOptions(mss=1460))
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=1000)
    child = r.ls.accept()
    assert (child.snd_wnd, child.max_window) == (1000, 1000)
    child.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    child.sendmsg(b"d" * 1000)
    assert [(s.seq, len(s.payload)) for s in r.peer.recv()] == [(r.iss + 1, 500),
                                                                (r.iss + 501, 500)]


def test_child_send_window_is_scaled_by_the_peers_shift():
    """RFC 7323 2.3: after the handshake the peer's window field is shifted by
    the scale its SYN announced."""
    r = _syn_recv(opts=TcpOptions(mss=1460, wscale=3))
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=250)
    child = r.ls.accept()
    assert (child.snd_wnd, child.max_window) == (2000, 2000)
