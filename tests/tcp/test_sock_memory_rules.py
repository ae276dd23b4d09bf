"""What a socket costs (issue 11: memory per idle connection).

A connected socket carries no per-instance dict (its fields are TcpCb's C
fields and TcpSock's slots, compiled build) and no accept or SYN queue: those
exist on listeners only.  benchmarks/bench_scale.py measures the bytes; these
tests keep the structure that gives them.
"""

from __future__ import annotations

import tracemalloc
from collections import deque

import pytest

from tcpio import _fast

from .states import established, syn_sent


def test_a_connected_socket_has_no_accept_or_syn_queue_of_its_own():
    a = established().sk
    b = syn_sent().sk
    assert len(a.accept_queue) == 0 and len(a.syn_queue) == 0
    # one shared, empty stand-in, not a deque and a dict per socket
    assert a.accept_queue is b.accept_queue and a.syn_queue is b.syn_queue
    with pytest.raises(AssertionError):
        a.accept_queue.append(b)
    with pytest.raises(AssertionError):
        a.syn_queue[object()] = None
    assert len(b.accept_queue) == 0 and len(b.syn_queue) == 0


def test_listen_gives_the_socket_its_own_queues():
    conn = established()
    lst = conn.host.tcp.socket()
    lst.bind(0, 8080)
    lst.listen(16)
    assert isinstance(lst.accept_queue, deque) and lst.accept_queue is not conn.sk.accept_queue
    lst.accept_queue.append(conn.sk)            # a real queue now
    lst.syn_queue[object()] = None
    assert len(lst.accept_queue) == 1 and len(lst.syn_queue) == 1
    assert len(conn.sk.accept_queue) == 0       # the stand-in is still empty


def test_an_unlisted_attribute_cannot_be_set_on_the_compiled_socket():
    if not _fast.is_compiled(_fast.load("tcp_fast")):
        pytest.skip("compiled build only: the interpreted TcpCb keeps a dict")
    sk = established().sk
    assert not hasattr(sk, "__dict__")
    with pytest.raises(AttributeError):
        sk.no_such_field = 1


def test_a_socket_costs_less_than_3_kib():
    """Every allocation one more socket makes (the object, its timers, queues,
    RTT and congestion state), measured with tracemalloc: under issue 11's
    3 KiB per bare socket (compiled build; the interpreted one keeps a dict)."""
    if not _fast.is_compiled(_fast.load("tcp_fast")):
        pytest.skip("compiled build only: the 3 KiB target is the compiled build's")
    proto = established().host.tcp
    proto.socket()                               # warm every code path once
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        socks = [proto.socket() for _ in range(100)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_sock = (after - before) / len(socks)
    assert 512 < per_sock < 3 * 1024, per_sock
