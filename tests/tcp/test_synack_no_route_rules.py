"""A SYN-ACK with no route is not sent, so it is not counted as sent.

Linux: tcp_v4_send_synack looks the route up first (inet_csk_route_req,
which counts IP OutNoRoutes when there is none) and returns -1 before
tcp_make_synack, which is where a SYN-ACK counts in OutSegs; tcp_rtx_synack
counts RetransSegs and TCPSynRetrans only ``if (!res)``.  So when the route
to a half-open peer goes away: the timer's retransmission sends and counts
nothing and, having failed, drops the request (reqsk_timer_handler:
``!inet_rtx_syn_ack(...) || acked`` or drop); a retransmitted SYN gets no
SYN-ACK and does not restart the timer.
"""

from __future__ import annotations

import errno

from .helpers import ACK, LPORT, PEER_ISS, SYN, FakeHost, Peer


class _RouteHost(FakeHost):
    """FakeHost whose route to everything can be taken away: then, as a real
    Host, route lookups fail and ip_output counts OutNoRoutes and raises."""

    no_route = False

    def route_lookup(self, dst):
        if self.no_route:
            raise OSError(errno.ENETUNREACH, "no route")
        return super().route_lookup(dst)

    def ip_tcp_path(self, dst, length):
        return None if self.no_route else super().ip_tcp_path(dst, length)

    def ip_output(self, proto, src, dst, payload, **kw):
        if self.no_route:
            self.mib["OutNoRoutes"] += 1
            raise OSError(errno.ENETUNREACH, "no route")
        return super().ip_output(proto, src, dst, payload, **kw)


def _half_open():
    host = _RouteHost()
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    peer.send(SYN, PEER_ISS)
    [synack] = peer.recv()
    assert synack.flags == SYN | ACK
    assert host.mib["OutSegs"] == 1
    host.no_route = True
    return host, peer, ls


def test_a_synack_retransmission_without_a_route_is_not_counted_and_drops_the_request():
    host, peer, ls = _half_open()
    host.advance(1.0)                   # the SYN-ACK timer (TCP_TIMEOUT_INIT)
    assert peer.recv() == []
    assert host.mib["OutSegs"] == 1
    assert host.mib["TCPSynRetrans"] == 0 and host.mib["RetransSegs"] == 0
    assert host.mib["OutNoRoutes"] == 1
    assert len(ls.syn_queue) == 0       # the failed retransmission ends it


def test_a_retransmitted_syn_without_a_route_gets_nothing_counted():
    host, peer, ls = _half_open()
    peer.send(SYN, PEER_ISS)
    assert peer.recv() == []
    assert host.mib["OutSegs"] == 1
    assert host.mib["TCPSynRetrans"] == 0 and host.mib["RetransSegs"] == 0
    assert len(ls.syn_queue) == 1       # (its timer decides)


def test_a_synack_retransmission_that_goes_counts_as_a_retransmission():
    """The other side: with the route, tcp_rtx_synack counts the SYN-ACK in
    OutSegs, RetransSegs and TCPSynRetrans."""
    host, peer, ls = _half_open()
    host.no_route = False
    host.advance(1.0)
    assert [s.flags for s in peer.recv()] == [SYN | ACK]
    assert host.mib["OutSegs"] == 2
    assert host.mib["TCPSynRetrans"] == 1 and host.mib["RetransSegs"] == 1
