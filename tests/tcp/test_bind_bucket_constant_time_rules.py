"""The bind hash costs O(1) per connection, as Linux's does.

Linux keeps a port's socks on ``tb->owners``, an hlist: ``inet_bind_hash``
(bind, connect's autobind), ``__inet_inherit_port`` (accept),
``inet_put_port`` and ``inet_twsk_hashdance`` add, remove or swap one node
without looking at the others.  Only ``inet_csk_bind_conflict`` walks the
owners, and ``inet_csk_get_port`` skips even that for a SO_REUSEADDR bind()
to a port whose ``fastreuse`` is set (every bind()-ed sock there had
SO_REUSEADDR and was not listening).

These tests count the owners each operation visits, not time: the port's
owner container is swapped for an instrumented copy of the same type that
counts every element handed out by iteration and charges a full pass for
each linear-time method (``in`` on a list, ``index``, ``remove``, ``count``;
``keys``/``values``/``items`` on a dict).  An operation that scans the port
visits as many owners as the port has; a constant-time one visits none.  The
positive controls (a bind conflict check does walk the owners) show the
counter sees a walk when there is one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings
from tcpio.core.tcp.inet_hashtables import InetHashInfo
from tcpio.core.tcp.tcp_states import (
    TCP_ESTABLISHED,
    TCP_LISTEN,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
)
from tests.conftest import twin_params

from .helpers import ACK, FIN, SYN, FakeHost, Peer
from .test_hashtables import Sk

A = ip_aton("10.0.0.2")
B = ip_aton("10.0.0.3")
PEER = ip_aton("10.0.0.1")
MANY = 500


# --- instrumentation -------------------------------------------------------------------
_LINEAR = {
    list: ("__contains__", "index", "remove", "count", "copy", "__reversed__"),
    dict: ("keys", "values", "items", "copy", "__reversed__"),
}


def counting(container: Any) -> Any:
    """A copy of ``container`` (a list or dict of owners) of a subclass that
    counts, in ``.visits``, the elements any operation looks at."""
    base = type(container)

    def _iter(self: Any) -> Any:
        for x in base.__iter__(self):
            self.visits += 1
            yield x

    ns: dict[str, Any] = {"__iter__": _iter}
    def linear(method: Any) -> Any:
        def counted(self: Any, *args: Any) -> Any:
            self.visits += base.__len__(self)
            return method(self, *args)
        return counted

    for name in _LINEAR[base]:
        ns[name] = linear(getattr(base, name))
    c = type("Counting" + base.__name__.title(), (base,), ns)(container)
    c.visits = 0
    return c


def peek(owners: Any) -> list:
    """The owners, for the test's own checks (not counted)."""
    v = owners.visits
    out = list(owners)
    owners.visits = v
    return out


def instrument(h: InetHashInfo, port: int) -> Any:
    tb = h.bhash[port]
    tb.owners = counting(tb.owners)
    return tb.owners


@pytest.fixture(params=twin_params("ehash"))
def h(request):
    return InetHashInfo(Settings(), b"secret", ehash_module=request.param)


def listener_with_children(h: InetHashInfo, n: int, reuse: bool = True) -> tuple[Any, list]:
    lst = Sk(reuseaddr=reuse)
    h.inet_csk_get_port(lst, A, 80)
    lst.state = TCP_LISTEN
    h.inet_csk_get_port(lst, A, 80)
    children = []
    for i in range(n):
        c = Sk(A, 80, PEER, 10000 + i, TCP_ESTABLISHED, reuseaddr=reuse)
        h.ehash_insert(c)
        h.inet_inherit_port(lst, c)
        children.append(c)
    return lst, children


# --- table operations, one at a time ---------------------------------------------------
@pytest.mark.parametrize("n", [1, MANY])
def test_accept_inherit_port_visits_no_owner(h, n):
    """__inet_inherit_port: hlist_add of the child, whatever is on the port."""
    lst, _ = listener_with_children(h, n)
    owners = instrument(h, 80)
    child = Sk(A, 80, PEER, 9, TCP_ESTABLISHED, reuseaddr=True)
    h.inet_inherit_port(lst, child)
    assert owners.visits == 0
    assert any(o is child for o in peek(owners)) and len(peek(owners)) == n + 2


@pytest.mark.parametrize("n", [1, MANY])
def test_put_port_visits_no_owner(h, n):
    """inet_put_port: __sk_del_bind_node of one sock; the bucket stays while
    others own the port and goes with the last one."""
    _, children = listener_with_children(h, n)
    owners = instrument(h, 80)
    h.inet_put_port(children[n // 2])
    h.inet_put_port(children[n // 2])          # (a second put is a no-op)
    assert owners.visits == 0
    assert not any(o is children[n // 2] for o in peek(owners))
    assert len(peek(owners)) == n


@pytest.mark.parametrize("n", [1, MANY])
def test_timewait_hashdance_and_kill_visit_no_owner(h, n):
    """inet_twsk_hashdance swaps the sock for its time-wait sock on the
    port; inet_twsk_kill takes the time-wait sock off again."""
    _, children = listener_with_children(h, n)
    owners = instrument(h, 80)
    sk = children[n // 2]
    tw = Sk(sk.laddr, sk.lport, sk.raddr, sk.rport, TCP_TIME_WAIT, reuseaddr=True)
    h.inet_twsk_hashdance(tw, sk)
    assert owners.visits == 0
    assert any(o is tw for o in peek(owners)) and not any(o is sk for o in peek(owners))
    h.inet_twsk_kill(tw)
    assert owners.visits == 0
    assert len(h.bind_owners(80)) == n


@pytest.mark.parametrize("n", [1, MANY])
def test_connect_sharing_a_port_visits_no_owner(h, n):
    """__inet_hash_connect on a port only connect() uses: the 4-tuple check
    is an ehash lookup and inet_bind_hash an hlist_add."""
    h.settings = Settings(ip_local_port_range=(40000, 40000))

    def free(sk, lport):
        return h.lookup_established(sk.laddr, lport, sk.raddr, sk.rport) is None

    def connect(i: int) -> Sk:
        sk = Sk(A, 0, PEER, 1000 + i, TCP_SYN_SENT)
        h.inet_hash_connect(sk, free)
        return sk

    for i in range(n):
        connect(i)
    owners = instrument(h, 40000)
    sk = connect(n)
    assert sk.lport == 40000 and owners.visits == 0


@pytest.mark.parametrize("n", [1, MANY])
def test_reuseaddr_bind_on_a_fastreuse_port_visits_no_owner(h, n):
    """inet_csk_get_port: tb->fastreuse > 0 and a SO_REUSEADDR sock that is
    not listening: success without inet_csk_bind_conflict."""
    for _ in range(n):
        h.inet_csk_get_port(Sk(reuseaddr=True), A, 80)
    assert h.bhash[80].fastreuse == 1
    owners = instrument(h, 80)
    h.inet_csk_get_port(Sk(reuseaddr=True), A, 80)
    assert owners.visits == 0 and len(peek(owners)) == n + 1


# --- the conflict walk Linux keeps (positive controls of the counter) -------------------
@pytest.mark.parametrize("n", [1, MANY])
def test_bind_without_fastreuse_walks_the_owners(h, n):
    """inet_csk_bind_conflict walks the port's owners (sk_for_each_bound):
    a bind() that is not covered by fastreuse visits each one once."""
    listener_with_children(h, n)
    assert h.bhash[80].fastreuse == 0          # a listener is there
    owners = instrument(h, 80)
    h.inet_csk_get_port(Sk(reuseaddr=True), B, 80)   # no overlap with A: allowed
    assert owners.visits == n + 1


def test_a_bind_that_is_not_reuse_clears_fastreuse_and_the_walk_returns(h):
    """inet_csk_update_fastreuse: a sock without SO_REUSEADDR joining a
    fastreuse port sets fastreuse to 0 for the bucket's life; the next
    SO_REUSEADDR bind() is checked against every owner again."""
    for _ in range(3):
        h.inet_csk_get_port(Sk(reuseaddr=True), A, 80)
    h.inet_csk_get_port(Sk(reuseaddr=False), B, 80)
    assert h.bhash[80].fastreuse == 0
    owners = instrument(h, 80)
    with pytest.raises(OSError):
        h.inet_csk_get_port(Sk(reuseaddr=True), 0, 80)    # overlaps B's plain bind
    assert owners.visits == 4


def test_listen_clears_fastreuse(h):
    """listen() runs get_port again with the sock in LISTEN: not reuse, so
    fastreuse drops to 0 and a later SO_REUSEADDR bind() on an overlapping
    address finds the listener (EADDRINUSE), as in Linux."""
    a = Sk(reuseaddr=True)
    h.inet_csk_get_port(a, A, 80)
    assert h.bhash[80].fastreuse == 1
    a.state = TCP_LISTEN
    h.inet_csk_get_port(a, A, 80)
    assert h.bhash[80].fastreuse == 0
    with pytest.raises(OSError):
        h.inet_csk_get_port(Sk(reuseaddr=True), A, 80)


# --- the whole TCP core: accept, active close into TIME-WAIT, expiry ----------------------
def _open(host: FakeHost, peer: Peer) -> None:
    peer.send(SYN, 1000)
    (synack,) = peer.recv()
    peer.send(ACK, 1001, synack.seq + 1)


def test_accept_close_time_wait_and_expiry_visit_no_owner():
    """With MANY connections on the listener's port, one more connection's
    whole life (SYN, third ACK -> child on the port, active close, FIN-WAIT-2
    and TIME-WAIT as a time-wait sock, expiry) visits none of the others."""
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, 80)
    ls.listen(MANY + 8)
    for i in range(MANY):
        _open(host, Peer(host, port=20000 + i))
        assert ls.accept() is not None
    owners = instrument(host.tcp.hashinfo, 80)
    peer = Peer(host, port=30000)
    _open(host, peer)
    child = ls.accept()
    assert child is not None and any(o is child for o in peek(owners))
    child.close()
    (fin,) = peer.recv()
    assert fin.flags == FIN | ACK
    peer.send(ACK | FIN, 1001, fin.seq + 1)     # ACKs our FIN, sends its own
    peer.recv()
    assert host.tcp.hashinfo.bhash[80].owners is owners
    tws = [o for o in peek(owners) if o.state == TCP_TIME_WAIT]
    assert len(tws) == 1 and not any(o is child for o in peek(owners))
    host.advance(host.now + host.settings.tcp_tw_timeout + 1)
    assert len(peek(owners)) == MANY + 1 and tws[0].dead
    assert owners.visits == 0
