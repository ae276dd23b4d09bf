"""TCP_NOTSENT_LOWAT and net.ipv4.tcp_notsent_lowat (Linux
tcp_stream_memory_free, sk_stream_memory_free in tcp_sendmsg_locked, tcp_poll).

A write asks for memory only before it starts a new skb, which it fills to
the size goal (64 KB bounded to half the peer's largest window, in whole
segments) and pushes when full: it stops at the first skb boundary where
the unsent bytes (write_seq - snd_nxt) are at least the low-water mark.  The
socket is writable (tcp_poll's EPOLLOUT, __sk_stream_is_writeable(sk, 1))
only while fewer than half of them are unsent.  The option overrides the
sysctl (0: the sysctl's, whose default UINT_MAX is no limit).
"""

from __future__ import annotations

import socket

from tcpio.core.settings import Settings

from .helpers import TcpOptions, passive_open

TCP = socket.IPPROTO_TCP
TCP_NOTSENT_LOWAT = 25          # include/uapi/linux/tcp.h
MSS = 1000
WINDOW = 40000                  # the peer's window, unscaled


def _conn(settings: Settings | None = None, lowat: int | None = None):
    c = passive_open(settings, syn_opts=TcpOptions(mss=MSS), window=WINDOW)
    if lowat is not None:
        c.sk.setsockopt(TCP, TCP_NOTSENT_LOWAT, lowat)
    return c


def _size_goal() -> int:
    # tcp_xmit_size_goal: half the peer's window (tcp_bound_to_half_wnd) in whole MSS
    return (WINDOW // 2) // MSS * MSS


def _unsent(sk) -> int:
    return (sk.write_seq - sk.snd_nxt) & 0xFFFFFFFF


def test_the_option_reads_back_and_is_separate_from_the_sysctl():
    c = _conn(Settings(tcp_notsent_lowat=4000))
    assert c.sk.getsockopt(TCP, TCP_NOTSENT_LOWAT) == 0
    c.sk.setsockopt(TCP, TCP_NOTSENT_LOWAT, 7000)
    assert c.sk.getsockopt(TCP, TCP_NOTSENT_LOWAT) == 7000
    c.sk.setsockopt(TCP, TCP_NOTSENT_LOWAT, -1)       # a u32 in tcp_sock
    assert c.sk.getsockopt(TCP, TCP_NOTSENT_LOWAT) == -1


def test_a_write_stops_at_the_first_skb_boundary_past_the_low_water_mark():
    """The first skb is pushed when full (cwnd: 10 segments leave), the
    unsent rest of it is filled up to the size goal again, and the next
    skb finds lowat or more bytes unsent: 10 * MSS + size_goal accepted."""
    for settings, lowat in ((None, 4000), (Settings(tcp_notsent_lowat=4000), None)):
        c = _conn(settings, lowat)
        cwnd = c.sk.snd_cwnd
        n = c.sk.sendmsg(bytes(100000))
        assert n == cwnd * MSS + _size_goal()
        assert sum(len(s.payload) for s in c.recv()) == cwnd * MSS
        assert _unsent(c.sk) == _size_goal()
        assert c.sk.sendmsg(b"x") == 0        # no new skb: EAGAIN for the caller


def test_without_a_low_water_mark_only_the_send_buffer_limits_a_write():
    c = _conn()
    assert c.sk.sendmsg(bytes(100000)) == min(100000, c.sk.sndbuf)


def test_writable_only_while_fewer_than_half_the_mark_are_unsent():
    c = _conn(lowat=4000)
    assert c.sk.stream_writeable()
    c.sk.sendmsg(bytes(10 * MSS + 3000))      # 10 segments leave, 3000 bytes wait
    c.recv()
    assert _unsent(c.sk) == 3000
    assert not c.sk.stream_writeable()        # 2 * 3000 >= 4000
    c.sk.setsockopt(TCP, TCP_NOTSENT_LOWAT, 6001)
    assert c.sk.stream_writeable()            # 2 * 3000 < 6001
    c.sk.setsockopt(TCP, TCP_NOTSENT_LOWAT, 6000)
    assert not c.sk.stream_writeable()
    c.host.woken.clear()
    c.send(ack=(c.rcv + 2 * MSS) & 0xFFFFFFFF)    # cwnd grows: the 3000 leave
    assert _unsent(c.sk) == 0 and c.sk.stream_writeable()
    assert c.sk in c.host.woken


def test_an_accepted_socket_inherits_the_listeners_mark():
    c = passive_open(setup=lambda ls: ls.setsockopt(TCP, TCP_NOTSENT_LOWAT, 1234))
    assert c.sk.getsockopt(TCP, TCP_NOTSENT_LOWAT) == 1234
