"""Socket option rules not covered by the kernel comparisons in
test_socket_call_rules.py: when a keepalive option moves the timer
(tcp_set_keepalive, do_tcp_setsockopt), and the buffer locks set by
SO_SNDBUF/SO_RCVBUF (SOCK_SNDBUF_LOCK / SOCK_RCVBUF_LOCK, net/core/sock.c).
"""

from __future__ import annotations

import socket

from .helpers import ACK, passive_open

SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP


def test_so_keepalive_set_again_keeps_the_running_timer():
    """tcp_set_keepalive re-arms only when SOCK_KEEPOPEN was off: turning
    keepalive on a second time does not push the first probe back."""
    c = passive_open()
    c.sk.setsockopt(TCP, socket.TCP_KEEPIDLE, 10)
    c.sk.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    c.host.advance(6.0)
    c.sk.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    c.host.advance(10.5)
    assert [(s.flags, s.seq) for s in c.recv()] == [(ACK, (c.rcv - 1) & 0xFFFFFFFF)]


def test_tcp_keepintvl_does_not_move_the_first_probe():
    """TCP_KEEPINTVL only sets the interval between probes; the first one
    still waits keepidle (only TCP_KEEPIDLE re-arms a running timer)."""
    c = passive_open()
    c.sk.setsockopt(TCP, socket.TCP_KEEPIDLE, 10)
    c.sk.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    c.host.advance(6.0)
    c.sk.setsockopt(TCP, socket.TCP_KEEPINTVL, 1)
    assert c.sk.getsockopt(TCP, socket.TCP_KEEPINTVL) == 1
    c.host.advance(9.5)
    assert c.recv() == []
    c.host.advance(10.5)
    assert [(s.flags, s.seq) for s in c.recv()] == [(ACK, (c.rcv - 1) & 0xFFFFFFFF)]


def test_buffer_options_lock_their_own_buffer_only():
    """SO_SNDBUF sets SOCK_SNDBUF_LOCK and SO_RCVBUF SOCK_RCVBUF_LOCK: each
    stops auto-tuning of its own buffer and leaves the other alone."""
    c = passive_open()
    assert (c.sk.opts.sndbuf_locked, c.sk.opts.rcvbuf_locked) == (False, False)
    c.sk.setsockopt(SOL, socket.SO_RCVBUF, 50000)
    assert (c.sk.opts.sndbuf_locked, c.sk.opts.rcvbuf_locked) == (False, True)
    assert c.sk.getsockopt(SOL, socket.SO_RCVBUF) == 100000
    c.sk.setsockopt(SOL, socket.SO_SNDBUF, 50000)
    assert (c.sk.opts.sndbuf_locked, c.sk.opts.rcvbuf_locked) == (True, True)
