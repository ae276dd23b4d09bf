"""Probing stops only when the head segment fits the window (Linux tcp_ack ->
tcp_ack_probe).

An ACK that finds nothing in flight (tcp_ack's no_queue) runs tcp_ack_probe:
with something unsent, ``!after(TCP_SKB_CB(head)->end_seq, tcp_wnd_end(tp))``
(the segment the send loop would send next fits in snd_una + snd_wnd) stops
probing (icsk_backoff = 0, ICSK_TIME_PROBE0 cleared); otherwise the persist
timer is re-armed from this ACK at tcp_probe0_when (RTO << icsk_backoff), the
backoff kept.  A window that opens by less than that segment therefore keeps
the probes' backoff; the next probe (tcp_write_wakeup: the part of the data
that fits) comes a backed-off interval after the ACK, not one RTO.
"""

from __future__ import annotations

from tcpio.core.tcp.tcp_timer import ICSK_TIME_PROBE0, ICSK_TIME_RETRANS

from .helpers import ACK, PSH, passive_open

RTO = 1.0               # RFC 6298 2.1: no RTT sample yet


def _probed_once():
    """A connection whose peer closed its window (having offered 4000 bytes:
    tcp_bound_to_half_wnd leaves the MSS whole): 2000 bytes wait, one probe
    went at t=1 (the next due at 1 + 2 RTO, backoff 1)."""
    c = passive_open(window=4000)
    c.send(window=0)
    assert c.sk.sendmsg(b"x" * 2000) == 2000
    assert c.recv() == []
    c.host.advance(RTO)
    assert [s.key() for s in c.recv()] == [(ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b"")]
    assert c.sk.backoff == 1
    return c


def test_a_window_smaller_than_the_head_segment_keeps_probing_with_backoff():
    c = _probed_once()
    mss = c.sk.mss_cache
    assert 100 < mss < 2000
    c.host.advance(1.5)
    c.send(window=100)                  # the answer opens 100 bytes: less than a segment
    assert c.recv() == []               # tcp_snd_wnd_test: the head segment does not fit
    assert c.sk.pending == ICSK_TIME_PROBE0 and c.sk.backoff == 1
    c.host.advance(1.5 + 2 * RTO - 0.001)
    assert c.recv() == []
    c.host.advance(1.5 + 2 * RTO)       # re-armed from the ACK at RTO << backoff
    assert [s.key() for s in c.recv()] == [(ACK | PSH, c.rcv, c.snd, b"x" * 100)]


def test_a_zero_window_answer_rearms_the_probe_from_the_answer():
    c = _probed_once()
    c.host.advance(1.5)
    c.send(window=0)
    c.host.advance(1.5 + 2 * RTO - 0.001)
    assert c.recv() == []
    c.host.advance(1.5 + 2 * RTO)
    assert [s.key() for s in c.recv()] == [(ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b"")]
    assert c.sk.backoff == 2


def test_a_window_that_takes_the_head_segment_stops_probing():
    c = _probed_once()
    mss = c.sk.mss_cache
    c.host.advance(1.5)
    c.send(window=mss)                  # exactly the head segment
    [seg] = c.recv()
    assert (seg.seq, len(seg.payload)) == (c.rcv, mss)
    assert c.sk.backoff == 0 and c.sk.pending == ICSK_TIME_RETRANS
