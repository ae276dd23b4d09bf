"""Each request's SYN-ACK timer (Linux's rsk_timer) while the listener keeps
the first timeouts together (tcp_minisocks.SynQueueTimer).

Linux arms a request's timer at its SYN for TCP_TIMEOUT_INIT (1 s) and,
each time it runs out, sends the SYN-ACK again and doubles the interval
(reqsk_timer_handler, reqsk_timeout); the third ACK or a drop deletes it.
tcpio keeps the first timeout of all a listener's requests with one timer
(issue 11): these tests hold each request to its own deadlines as Linux's
per-request timers would, under a virtual clock, with requests arriving at
different moments, some answered, some not, and one SYN retransmitted by
the peer.  And that a request answered in time costs the timer heap
nothing: a count of heap entries, not a timing.
"""

from __future__ import annotations

from tcpio.core.settings import Settings

from .helpers import ACK, LPORT, PEER_ISS, SYN, FakeHost, Peer


def _listener(settings: Settings | None = None):
    host = FakeHost(settings=settings)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(64)
    return host, ls


def _synack_log(host: FakeHost, peers: dict[int, Peer], until: float,
                step: float = 0.05) -> list[tuple[float, int]]:
    """(time, peer port) of each SYN-ACK the peers get, advancing the clock
    in ``step``s up to ``until``: times are exact multiples of ``step``."""
    log = []
    t = host.now
    while t < until:
        t = round(t + step, 3)
        host.advance(t)
        for port, peer in peers.items():
            for s in peer.recv():
                assert s.flags == SYN | ACK
                log.append((t, port))
    return log


def test_each_request_retransmits_at_its_own_deadlines():
    """SYNs at 0.0, 0.3 and 0.6 s: each SYN-ACK goes again 1 s after its own
    SYN, then 2 s after that (TCP_TIMEOUT_INIT << num_retrans), whatever the
    other requests do; the one answered at 0.7 s never does."""
    host, ls = _listener(Settings(tcp_synack_retries=2))
    peers: dict[int, Peer] = {}
    synacks = {}
    for i, t in enumerate((0.0, 0.3, 0.6)):
        host.advance(t)
        port = 3000 + i
        peers[port] = Peer(host, port=port)
        peers[port].send(SYN, PEER_ISS)
        synacks[port] = peers[port].recv_one()
    host.advance(0.7)
    peers[3001].send(ACK, PEER_ISS + 1, synacks[3001].seq + 1)
    assert ls.accept() is not None
    log = _synack_log(host, peers, 8.0)
    assert log == [(1.0, 3000), (1.6, 3002), (3.0, 3000), (3.6, 3002)]
    # tcp_synack_retries (2) spent: at 7 s and 7.6 s they go instead
    assert len(ls.syn_queue) == 0


def test_a_retransmitted_syn_restarts_the_first_timeout_from_it():
    """tcp_check_req: the SYN again (our SYN-ACK lost) sends the SYN-ACK at
    once and restarts the running timer (mod_timer_pending): the next one
    is 1 s after that, not 1 s after the first SYN; the others keep theirs."""
    host, ls = _listener()
    a, b = Peer(host, port=3000), Peer(host, port=3001)
    a.send(SYN, PEER_ISS)
    b.send(SYN, PEER_ISS)
    a.recv_one(), b.recv_one()
    host.advance(0.4)
    a.send(SYN, PEER_ISS)
    assert a.recv_one().flags == SYN | ACK
    log = _synack_log(host, {3000: a, 3001: b}, 3.5)
    assert log == [(1.0, 3001), (1.4, 3000), (3.0, 3001), (3.4, 3000)]


def test_a_request_dropped_in_its_first_timeout_is_not_retransmitted():
    """The listener closed: its requests go, their SYN-ACK timers with them,
    and a listener made again on the port starts its own."""
    host, ls = _listener()
    a = Peer(host, port=3000)
    a.send(SYN, PEER_ISS)
    a.recv_one()
    ls.close()
    host.advance(0.5)
    ls2 = host.tcp.socket()
    ls2.bind(0, LPORT)
    ls2.listen(8)
    b = Peer(host, port=3001)
    b.send(SYN, PEER_ISS)
    b.recv_one()
    assert _synack_log(host, {3000: a, 3001: b}, 1.6) == [(1.5, 3001)]


def test_ss_shows_a_fresh_request_timer_counting_down():
    """``ss -tan``'s timer column for a request: on(time left)."""
    host, ls = _listener()
    a = Peer(host, port=3000)
    a.send(SYN, PEER_ISS)
    a.recv_one()
    host.advance(0.25)
    [req] = [r for r in host.tcp.connections() if r.state == "SYN-RECV"]
    assert req.timer == "on(0.750s)"
    host.advance(1.0)                   # run out: its own timer, 2 s from 1.0
    [req] = [r for r in host.tcp.connections() if r.state == "SYN-RECV"]
    assert req.timer == "on(2.000s)"


def test_requests_answered_in_time_leave_no_heap_entries():
    """A request answered within its first timeout needs no timer of its own:
    after 300 handshakes the heaps hold the listener's one entry, however
    many requests came (a Timer per request left one parked entry each)."""
    host, ls = _listener()
    for i in range(300):
        peer = Peer(host, port=3000 + i)
        peer.send(SYN, PEER_ISS)
        synack = peer.recv_one()
        peer.send(ACK, PEER_ISS + 1, synack.seq + 1)
        assert ls.accept() is not None
    wheel = host.timers
    assert len(wheel._heap) + len(wheel._prompt_heap) == 1
