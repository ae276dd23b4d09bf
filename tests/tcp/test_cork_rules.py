"""TCP_CORK and MSG_MORE (net/ipv4/tcp.c: __tcp_sock_set_cork, tcp_push;
tcp_output.c: tcp_nagle_check, tcp_write_wakeup).

Corked (TCP_CORK, or the push of a MSG_MORE write), a partial segment waits
while full ones go; uncorking pushes it, TCP_NODELAY pushes it
(TCP_NAGLE_PUSH) and the next write corks again; a MSG_MORE write sets no
PSH point.  Linux has no cork timer of its own: a partial segment waiting
with nothing in flight leaves when the probe0 timer fires (tcp_probe0_base:
the RTO, at least tcp_rto_min), by tcp_write_wakeup, with PSH.
"""

from __future__ import annotations

import socket

from tcpio.core.settings import Settings

from .helpers import ACK, PSH, passive_open

TCP = socket.IPPROTO_TCP
MSG_MORE = int(socket.MSG_MORE)


def _payloads(segs) -> list[tuple[int, int]]:
    """(flags, length) of each segment."""
    return [(s.flags, len(s.payload)) for s in segs]


def test_cork_holds_small_writes_and_uncorking_pushes_them_as_one_segment():
    c = passive_open()
    assert c.sk.getsockopt(TCP, socket.TCP_CORK) == 0
    c.sk.setsockopt(TCP, socket.TCP_CORK, 1)
    assert c.sk.getsockopt(TCP, socket.TCP_CORK) == 1
    c.sk.sendmsg(b"a" * 40)
    c.sk.sendmsg(b"b" * 40)
    assert c.recv() == []                 # nothing in flight, still held
    c.sk.setsockopt(TCP, socket.TCP_CORK, 0)
    segs = c.recv()
    assert [s.key() for s in segs] == [(ACK | PSH, c.rcv, c.snd, b"a" * 40 + b"b" * 40)]


def test_cork_lets_full_segments_go_and_holds_the_partial_tail():
    c = passive_open()
    mss = c.sk.mss_cache
    c.sk.setsockopt(TCP, socket.TCP_CORK, 1)
    c.sk.sendmsg(b"x" * (2 * mss + 100))
    assert [len(s.payload) for s in c.recv()] == [mss, mss]
    c.send(ack=(c.rcv + 2 * mss) & 0xFFFFFFFF)   # an ACK does not uncork
    assert c.recv() == []
    c.sk.setsockopt(TCP, socket.TCP_CORK, 0)
    assert _payloads(c.recv()) == [(ACK | PSH, 100)]


def test_nodelay_pushes_a_corked_tail_once_and_the_next_write_is_corked_again():
    c = passive_open()
    c.sk.setsockopt(TCP, socket.TCP_CORK, 1)
    c.sk.sendmsg(b"a" * 40)
    assert c.recv() == []
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 1)
    assert _payloads(c.recv()) == [(ACK | PSH, 40)]
    c.send(ack=(c.rcv + 40) & 0xFFFFFFFF)
    c.sk.sendmsg(b"b" * 40)               # a new skb: TCP_NAGLE_PUSH is over
    assert c.recv() == []
    assert c.sk.getsockopt(TCP, socket.TCP_CORK) == 1
    assert c.sk.getsockopt(TCP, socket.TCP_NODELAY) == 1


def test_uncorking_with_nodelay_pushes_past_nagle():
    """Uncorking with TCP_NODELAY set sets TCP_NAGLE_PUSH; without it, Nagle
    still holds a small segment while another is unacknowledged."""
    for nodelay, sent in ((0, []), (1, [(ACK | PSH, 30)])):
        c = passive_open()
        c.sk.sendmsg(b"a" * 20)
        assert _payloads(c.recv()) == [(ACK | PSH, 20)]     # in flight, unacked
        c.sk.setsockopt(TCP, socket.TCP_NODELAY, nodelay)
        c.sk.setsockopt(TCP, socket.TCP_CORK, 1)
        c.sk.sendmsg(b"b" * 30)
        c.sk.setsockopt(TCP, socket.TCP_CORK, 0)
        assert _payloads(c.recv()) == sent


def test_msg_more_holds_the_write_without_a_psh_point_until_a_plain_write():
    c = passive_open()
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 1)
    assert c.sk.sendmsg(b"a" * 100, MSG_MORE) == 100
    assert c.sk.sendmsg(b"b" * 60, MSG_MORE) == 60
    assert c.recv() == []
    c.sk.sendmsg(b"c" * 5)
    assert [s.key() for s in c.recv()] == [
        (ACK | PSH, c.rcv, c.snd, b"a" * 100 + b"b" * 60 + b"c" * 5)]


def test_msg_more_corks_only_its_own_push_an_ack_sends_the_tail_without_psh():
    """tcp_push's TCP_NAGLE_CORK is for that call: the ACK's push uses the
    socket's own Nagle setting (TCP_NODELAY here); the MSG_MORE tail is no
    PSH point, and full segments went at once."""
    c = passive_open()
    mss = c.sk.mss_cache
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"x" * (mss + 150), MSG_MORE)
    assert _payloads(c.recv()) == [(ACK, mss)]
    c.send(ack=(c.rcv + mss) & 0xFFFFFFFF)
    assert _payloads(c.recv()) == [(ACK, 150)]


def test_a_corked_segment_leaves_on_the_probe0_timer_not_a_cork_timer():
    """With nothing in flight the probe0 timer is armed at the RTO (1 s
    before any RTT sample, RFC 6298 2.1), tcp_rto_min at least; on expiry
    tcp_write_wakeup sends the held data with PSH, and the RTO takes over."""
    for rto_min, fires in ((0.2, 1.0), (3.0, 3.0)):
        c = passive_open(Settings(tcp_rto_min=rto_min))
        t0 = c.host.now
        c.sk.setsockopt(TCP, socket.TCP_CORK, 1)
        c.sk.sendmsg(b"a" * 40)
        c.host.advance(t0 + fires - 0.001)
        assert c.recv() == []
        c.host.advance(t0 + fires)
        assert [s.key() for s in c.recv()] == [(ACK | PSH, c.rcv, c.snd, b"a" * 40)]
        assert c.sk.packets_out == 1 and c.sk.probes_out == 0


def test_probe0_sends_only_what_the_window_takes():
    """tcp_write_wakeup: a window smaller than the held data gets a segment
    of the window's size (PSH), not a zero-window probe."""
    c = passive_open(window=30)
    c.sk.setsockopt(TCP, socket.TCP_CORK, 1)
    c.sk.sendmsg(b"a" * 40)
    assert c.recv() == []
    c.host.advance(c.host.now + 1.0)
    assert [s.key() for s in c.recv()] == [(ACK | PSH, c.rcv, c.snd, b"a" * 30)]


def test_an_accepted_socket_inherits_the_listeners_cork():
    c = passive_open(setup=lambda ls: ls.setsockopt(TCP, socket.TCP_CORK, 1))
    assert c.sk.getsockopt(TCP, socket.TCP_CORK) == 1
    c.sk.sendmsg(b"a" * 10)
    assert c.recv() == []
