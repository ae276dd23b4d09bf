"""The first zero-window probe of a connection whose window was zero from the
handshake on.

RFC 9293 3.8.6.1 (persist timer), RFC 1122 4.2.2.17: the first probe after
one RTO, then exponential backoff.  Linux tcp_check_probe_timer arms
ICSK_TIME_PROBE0 at tcp_probe0_base = max(RTO, TCP_RTO_MIN); tcp_probe_timer
-> tcp_send_probe0 sends <SEQ=SND.UNA-1><CTL=ACK> with no data and doubles
the interval (icsk_backoff + 1), icsk_backoff starting at 0.
"""

from __future__ import annotations

import socket

from tcpio.core.tcp.tcp_states import TCP_FIN_WAIT2
from tcpio.core.tcp.tcp_timer import ICSK_TIME_PROBE0

from .helpers import ACK, FIN, passive_open

RTO_INIT = 1.0          # RFC 6298 2.1: no RTT sample yet


def test_a_window_closed_since_the_handshake_is_first_probed_after_one_rto_then_two():
    c = passive_open(window=0)          # the peer's SYN and third ACK: window 0
    assert c.sk.sendmsg(b"x" * 100) == 100
    assert c.recv() == []               # nothing fits in a zero window
    probe = (ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b"")
    c.host.advance(RTO_INIT - 0.001)
    assert c.recv() == []
    c.host.advance(RTO_INIT)
    assert [s.key() for s in c.recv()] == [probe]
    c.host.advance(RTO_INIT + 2 * RTO_INIT - 0.001)
    assert c.recv() == []
    c.host.advance(RTO_INIT + 2 * RTO_INIT)
    assert [s.key() for s in c.recv()] == [probe]


def test_a_persist_timer_with_nothing_left_unsent_does_nothing():
    """Linux tcp_probe_timer: `if (packets_out || !tcp_send_head(sk))` reset
    the probe count and return.  Our FIN sent and ACKed (FIN-WAIT-2) leaves
    nothing unsent (snd_nxt is one past write_seq): a persist timer that
    fires then sends no probe, and counts none toward tcp_retries2."""
    c = passive_open()
    c.sk.shutdown(socket.SHUT_WR)
    [fin] = c.recv()
    assert fin.flags & FIN
    c.send(ack=(fin.seq + 1) & 0xFFFFFFFF)
    assert c.sk.state == TCP_FIN_WAIT2 and c.sk.packets_out == 0
    c.sk.probes_out = 3
    c.sk.pending = ICSK_TIME_PROBE0
    c.sk.rtx_timer.arm(c.host.now + RTO_INIT)
    c.host.advance(c.host.now + RTO_INIT)
    assert c.recv() == []
    assert c.sk.probes_out == 0 and c.sk.state == TCP_FIN_WAIT2
