"""A socket's lifetime (issue 11): once TCP is done with a socket and the
application lets go of it, reference counting frees it at once.

Linux frees a socket when its last reference is dropped (sock_put); its timers
find the socket from the timer (from_timer) and do not pin it.  Here the
retransmit, delayed-ACK and keepalive timers hold the socket weakly
(tcpio/core/timer.py), so no reference cycle is left for the cycle collector;
these tests run with the collector off and require the socket to be gone.
"""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator

import pytest

from tcpio.core.tcp.tcp_states import TCP_CLOSE, TCP_ESTABLISHED

from .helpers import ACK, LPORT, PEER_ISS, SYN, FakeHost, Peer
from .states import established, last_ack


@pytest.fixture
def no_cycle_collector() -> Iterator[None]:
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _drop_all(conn) -> weakref.ref:
    """A weak reference to conn's socket, after dropping every test-side
    reference to it (the host's wakeup list included)."""
    ref = weakref.ref(conn.sk)
    conn.host.woken.clear()
    conn.sk = None
    return ref


def test_a_closed_socket_is_freed_without_the_cycle_collector(no_cycle_collector):
    conn = last_ack()
    conn.ack_all([conn.fin])
    conn.send()                              # the peer ACKs our FIN: CLOSE
    assert conn.sk.state == TCP_CLOSE
    ref = _drop_all(conn)
    assert ref() is None


def test_a_closed_socket_with_its_timers_armed_is_freed_and_the_timers_do_nothing(
        no_cycle_collector):
    conn = established()
    sk = conn.sk
    sk.sendmsg(b"x" * 100)                   # the retransmit timer is armed
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)   # arms the keepalive timer
    assert sk.ka_timer is not None and sk.ka_timer.pending
    rtx_when = sk.rtx_timer.when
    assert rtx_when is not None
    sk.abort()                               # RST, CLOSE; the timers stay in the heap
    assert sk.state == TCP_CLOSE
    del sk
    conn.recv()
    ref = _drop_all(conn)
    assert ref() is None
    conn.host.advance(rtx_when + 7200.0)     # the stale entries surface: nothing runs
    assert conn.recv() == []


def test_an_established_socket_stays_alive_while_its_table_holds_it(no_cycle_collector):
    """The weak timer reference does not free a socket TCP still owns: the
    established hash holds it, and its retransmit timer still fires."""
    conn = established()
    conn.sk.sendmsg(b"y" * 100)
    (seg,) = conn.recv()
    ref = _drop_all(conn)
    live = ref()
    assert live is not None and live.state == TCP_ESTABLISHED
    when = live.rtx_timer.when
    del live
    conn.host.advance(when)
    (again,) = conn.recv()                   # the retransmission, from the table's socket
    assert again.seq == seg.seq and again.payload == seg.payload


def test_a_request_sock_is_freed_when_its_handshake_completes(no_cycle_collector):
    """inet_csk_reqsk_queue_drop: the request leaves the SYN queue when the
    third ACK makes the child, and nothing else holds it; its SYN-ACK timer
    (cancelled, its heap entry still queued for 1 s) must not pin it."""
    host = FakeHost()
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    peer.send(SYN, PEER_ISS, 0, 65535)
    synack = peer.recv_one()
    (req,) = ls.syn_queue
    ref = weakref.ref(req)
    del req
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1, 65535)
    child = ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED and not ls.syn_queue
    assert ref() is None
    host.advance(host.now + 3.0)          # the stale timer entry surfaces: nothing runs
    assert peer.recv() == [] and child.state == TCP_ESTABLISHED
