"""The persist timer armed by the send path waits the base interval.

Linux tcp_check_probe_timer (include/net/tcp.h): with nothing in flight and
no timer pending, tcp_reset_xmit_timer(sk, ICSK_TIME_PROBE0,
tcp_probe0_base(sk), ...) where tcp_probe0_base = max(icsk_rto, TCP_RTO_MIN):
not shifted by icsk_backoff; only the probes themselves back off
(tcp_send_probe0 and tcp_ack_probe -> tcp_probe0_when).

(In Linux icsk_backoff is shared with the RTO, so a backoff an RTO left
behind reaches this.  tcpio keeps the RTO's backoff in the RTT estimator and
sk.backoff for probes only, and every way out of probing clears it, so the
state is set here directly: a backoff left from earlier probing.)
"""

from __future__ import annotations

from .helpers import ACK, passive_open

RTO_INIT = 1.0


def test_the_send_path_arms_the_persist_timer_at_the_rto_whatever_the_backoff():
    c = passive_open(window=0)
    c.sk.backoff = 3                    # left over: not the send path's to use
    assert c.sk.sendmsg(b"x" * 100) == 100
    assert c.recv() == []
    probe = (ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b"")
    c.host.advance(RTO_INIT - 0.001)
    assert c.recv() == []
    c.host.advance(RTO_INIT)            # tcp_probe0_base, not RTO << 3 (8 s)
    assert [s.key() for s in c.recv()] == [probe]
