"""InetHashInfo lookups: ehash first, then the listening hash (exact address
before 0.0.0.0), as ``__inet_lookup`` / ``__inet_lookup_listener`` do; and the
ehash/bhash moves the TCP core makes (request sock -> child, sock -> time-wait)."""

from __future__ import annotations

import pytest

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings
from tcpio.core.tcp.inet_hashtables import InetHashInfo
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_ESTABLISHED,
    TCP_LISTEN,
    TCP_NEW_SYN_RECV,
    TCP_TIME_WAIT,
)
from tests.conftest import twin_params

A = ip_aton("10.0.0.2")
B = ip_aton("10.0.0.3")
PEER = ip_aton("10.0.0.1")


class Sk:
    def __init__(self, laddr=0, lport=0, raddr=0, rport=0, state=TCP_CLOSE, reuseaddr=False):
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.state, self.reuseaddr = state, reuseaddr


@pytest.fixture(params=twin_params("ehash"))
def h(request):
    return InetHashInfo(Settings(), b"secret", ehash_module=request.param)


def listener(h, addr, port, reuse=False):
    sk = Sk(reuseaddr=reuse)
    h.inet_csk_get_port(sk, addr, port)
    sk.state = TCP_LISTEN
    h.inet_csk_get_port(sk, addr, port)
    h.listen_add(sk)
    return sk


def test_exact_listener_beats_wildcard(h):
    wild = listener(h, 0, 80)
    exact = listener(h, B, 81)
    assert h.lookup_listener(A, 80) is wild
    assert h.lookup_listener(B, 81) is exact
    assert h.lookup_listener(A, 81) is None
    # Both kinds on one port need non-overlapping binds; exact A and wildcard
    # cannot coexist (bind conflict), but exact A and exact B can.
    a = listener(h, A, 90)
    b = listener(h, B, 90)
    assert h.lookup_listener(A, 90) is a and h.lookup_listener(B, 90) is b
    assert h.lookup_listener(PEER, 90) is None


def test_wildcard_found_when_no_exact_listener(h):
    exact = listener(h, A, 80)
    h.listen_remove(exact)
    h.inet_put_port(exact)
    wild = listener(h, 0, 80)
    assert h.lookup(A, 80, PEER, 1234) is wild


def test_established_beats_listener(h):
    lst = listener(h, 0, 80)
    child = Sk(A, 80, PEER, 40000, TCP_ESTABLISHED)
    h.inet_inherit_port(lst, child)
    h.ehash_insert(child)
    assert h.lookup(A, 80, PEER, 40000) is child
    assert h.lookup_established(A, 80, PEER, 40000) is child
    assert h.lookup(A, 80, PEER, 40001) is lst          # other tuple: the listener
    assert h.lookup_established(A, 80, PEER, 40001) is None
    assert h.lookup(A, 81, PEER, 40000) is None


def test_request_sock_replaced_by_child(h):
    lst = listener(h, A, 80)
    req = Sk(A, 80, PEER, 5555, TCP_NEW_SYN_RECV)
    h.ehash_insert(req)
    assert h.lookup(A, 80, PEER, 5555) is req
    child = Sk(A, 80, PEER, 5555, TCP_ESTABLISHED)
    h.ehash_insert(child)                 # inet_ehash_insert(child, req)
    h.inet_inherit_port(lst, child)
    assert h.lookup(A, 80, PEER, 5555) is child
    assert len(h.ehash) == 1
    assert not h.ehash_remove(req)        # no longer there: nothing removed
    assert h.lookup(A, 80, PEER, 5555) is child
    assert h.bind_owners(80) == [lst, child]


def test_timewait_hashdance(h):
    lst = listener(h, A, 80, reuse=True)
    child = Sk(A, 80, PEER, 5555, TCP_ESTABLISHED, reuseaddr=True)
    h.inet_inherit_port(lst, child)
    h.ehash_insert(child)
    tw = Sk(A, 80, PEER, 5555, TCP_TIME_WAIT, reuseaddr=True)
    h.inet_twsk_hashdance(tw, child)
    assert h.lookup(A, 80, PEER, 5555) is tw
    assert h.bind_owners(80) == [lst, tw]
    h.inet_twsk_kill(tw)
    assert h.lookup(A, 80, PEER, 5555) is lst
    assert h.bind_owners(80) == [lst]


def test_unhash(h):
    lst = listener(h, A, 80)
    sk = Sk(A, 80, PEER, 1, TCP_ESTABLISHED)
    h.ehash_insert(sk)
    h.inet_unhash(sk)
    h.inet_unhash(lst)
    assert h.lookup(A, 80, PEER, 1) is None
    assert len(h.ehash) == 0 and not h.lhash


def test_ehash_iterates_values(h):
    socks = [Sk(A, 80, PEER, p, TCP_ESTABLISHED) for p in range(100)]
    for s in socks:
        h.ehash_insert(s)
    assert sorted(map(id, h.ehash)) == sorted(map(id, socks))
