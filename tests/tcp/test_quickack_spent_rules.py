"""Quick ACKs are spent by ACKs of new data actually sent, not per segment.

Linux 6.x (since "tcp: fix quick-ack counting to count actual ACKs of new
data", 6.6): __tcp_transmit_skb calls tcp_event_ack_sent for every segment
with ACK set, and tcp_dec_quickack_mode spends
``pkts = inet_csk_ack_scheduled(sk) ? 1 : 0``: one quick ACK if an ACK was
scheduled (data arrived: tcp_event_data_recv, tcp_data_queue_ofo, the
out_of_window label, tcp_fin all call inet_csk_schedule_ack), none
otherwise; then inet_csk_clear_xmit_timer(ICSK_TIME_DACK) unschedules it, so
the rest of a burst spends nothing.  ACKs sent with nothing scheduled (a
segment out of the window answered by tcp_send_dupack, a window update, a
probe, our own data) spend none.  The kernel on this machine runs 6.18.
"""

from __future__ import annotations

from .helpers import passive_open

QUICK = 5
TCP_MAX_QUICKACKS = 16


def _conn():
    c = passive_open()
    c.send(b"a")                    # the first data: quick-ACK mode, its ACK sent
    c.recv()
    assert not c.sk.ack_pending
    return c


def test_data_sent_with_no_ack_scheduled_spends_no_quick_ack():
    c = _conn()
    c.sk.quick = QUICK
    mss = c.sk.mss_cache
    c.sk.sendmsg(b"d" * (4 * mss))
    assert len(c.recv()) == 4
    assert c.sk.quick == QUICK


def test_a_burst_carrying_a_scheduled_ack_spends_one():
    """A request/response exchange: in pingpong mode the request's ACK is
    delayed (scheduled), the four-segment reply carries it: one quick ACK
    spent, the delayed ACK unscheduled."""
    c = _conn()
    c.sk.pingpong = c.host.settings.tcp_pingpong_thresh
    c.sk.quick = QUICK
    c.send(b"request")
    assert c.recv() == [] and c.sk.ack_pending
    mss = c.sk.mss_cache
    c.sk.sendmsg(b"r" * (4 * mss))
    segs = c.recv()
    assert len(segs) == 4 and all(s.ack == c.snd for s in segs)
    assert c.sk.quick == QUICK - 1
    assert not c.sk.ack_pending and c.sk.delack_timer.when is None


def test_an_ack_for_a_segment_outside_the_window_spends_none():
    """tcp_validate_incoming -> tcp_send_dupack (no old data in it: no
    quick-ACK mode entered, nothing scheduled): the ACK goes, the count stays."""
    c = _conn()
    c.sk.quick = QUICK
    c.send(b"z", seq=(c.snd + 10_000_000) & 0xFFFFFFFF)
    [ack] = c.recv()
    assert ack.ack == c.snd
    assert c.sk.quick == QUICK


def test_out_of_order_data_is_acked_with_a_quick_ack_spent():
    """tcp_data_queue_ofo schedules the ACK (inet_csk_schedule_ack); the
    duplicate ACK that says where the hole is spends one quick ACK.  (The
    count starts at TCP_MAX_QUICKACKS: tcpio enters quick-ACK mode for
    out-of-order data too, which cannot raise it further.)"""
    c = _conn()
    c.sk.quick = TCP_MAX_QUICKACKS
    c.send(b"o" * 10, seq=(c.snd + 100) & 0xFFFFFFFF)
    [ack] = c.recv()
    assert ack.ack == c.snd
    assert c.sk.quick == TCP_MAX_QUICKACKS - 1 and not c.sk.ack_pending
