"""A request sock rate-limits the ACKs it sends for junk (Linux tcp_check_req).

Linux's tcp_check_req answers an out-of-window segment (or a PAWS reject)
with an ACK, and a retransmitted SYN with the SYN-ACK again, each only if
``!tcp_oow_rate_limited(net, skb, LINUX_MIB_TCPACKSKIPPEDSYNRECV,
&tcp_rsk(req)->last_oow_ack_time)``: at most one per tcp_invalid_ratelimit
(500 ms) per request, a skipped one counted in TcpExt TCPACKSkippedSynRecv;
data without SYN is never limited ("not likely part of an ACK loop").  The
request's clock starts unset (tcp_openreq_init: last_oow_ack_time = 0), so
the first answer always goes.
"""

from __future__ import annotations

from .helpers import ACK, PEER_ISS, SYN
from .test_request_sock_rules import _completes, _fields, _plain_ack, _syn_recv

LIMIT = 0.5             # net.ipv4.tcp_invalid_ratelimit, 500 ms


def _oow_ack(r) -> None:
    """A pure ACK of our SYN-ACK far out of the window."""
    r.peer.send(ACK, r.rcv_nxt + 1_000_000, r.iss + 1)


def test_out_of_window_acks_are_answered_once_per_ratelimit():
    r = _syn_recv()
    _oow_ack(r)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    r.host.advance(LIMIT - 0.001)
    _oow_ack(r)
    assert r.peer.recv() == []
    assert r.host.mib["TCPACKSkippedSynRecv"] == 1
    r.host.advance(2 * LIMIT - 0.001)   # 500 ms after the last answer
    _oow_ack(r)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.host.mib["TCPACKSkippedSynRecv"] == 1
    assert _completes(r)


def test_out_of_window_data_is_always_answered():
    r = _syn_recv()
    for _ in range(3):
        r.peer.send(ACK, r.rcv_nxt + 1_000_000, r.iss + 1, payload=b"x")
        assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.host.mib["TCPACKSkippedSynRecv"] == 0


def test_a_retransmitted_syn_gets_the_synack_once_per_ratelimit():
    """The SYN again: the SYN-ACK again, but not twice within 500 ms (the
    same clock as the ACKs above)."""
    r = _syn_recv()
    r.peer.send(SYN, PEER_ISS)
    [again] = r.peer.recv()
    assert (again.flags, again.seq, again.ack) == (SYN | ACK, r.iss, r.rcv_nxt)
    r.host.advance(0.1)
    r.peer.send(SYN, PEER_ISS)
    assert r.peer.recv() == []
    assert r.host.mib["TCPACKSkippedSynRecv"] == 1
    _oow_ack(r)                         # shares the request's clock
    assert r.peer.recv() == []
    assert r.host.mib["TCPACKSkippedSynRecv"] == 2
    assert _completes(r)
