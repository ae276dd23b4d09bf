"""Pingpong (interactive) ACK mode, Linux's icsk_ack.pingpong, one rule per test.

Linux (include/net/inet_connection_sock.h, net/ipv4/tcp_output.c,
tcp_input.c, tcp_timer.c):
- tcp_event_data_sent: ``if ((u32)(now - icsk->icsk_ack.lrcvtime) <
  icsk->icsk_ack.ato) inet_csk_inc_pingpong_cnt(sk);`` -- data sent within
  the ATO of the last received data is a reply (the ATO is 0 until data
  arrived, TCP_ATO_MIN, 40 ms, after);
- inet_csk_in_pingpong_mode: ``pingpong >= net.ipv4.tcp_pingpong_thresh``
  (1 by default; /proc/sys/net/ipv4/tcp_pingpong_thresh on 6.18 says 1);
- tcp_in_quickack_mode: ``icsk_ack.quick && !inet_csk_in_pingpong_mode(sk)``:
  in pingpong mode __tcp_ack_snd_check delays the ACK, the reply carries it;
- tcp_delack_timer_handler: the timer fires with an ACK pending in pingpong
  mode: ``inet_csk_exit_pingpong_mode(sk)`` (and the ATO deflated);
- tcp_enter_quickack_mode (a duplicate, out-of-window data, a zero-window
  drop) leaves pingpong mode too.
Virtual clock: the control block is driven with explicit times.
"""

from __future__ import annotations

from conftest import twin_fixture

from .fastcb import hook_fixture, make_cb
from .helpers import passive_open

tf = twin_fixture("tcp_fast", "tf")
hooks = hook_fixture()

T = 50.0


# --- the fast-path twins: tcp_event_data_sent and __tcp_ack_snd_check ----------------------

def test_a_reply_within_the_ato_enters_pingpong_mode(tf):
    sk = make_cb(tf, lrcvtime=T)
    tf.event_data_sent(sk, T + 0.039)
    assert sk.pingpong == 1 and tf.in_pingpong_mode(sk)


def test_a_reply_after_the_ato_does_not_count(tf):
    """now - lrcvtime < ato: just over 40 ms later is not a reply."""
    sk = make_cb(tf, lrcvtime=T)
    tf.event_data_sent(sk, T + 0.0401)
    tf.event_data_sent(sk, T + 1.0)
    assert sk.pingpong == 0 and not tf.in_pingpong_mode(sk)


def test_before_any_data_arrived_the_ato_is_zero(tf):
    """icsk_ack.ato is 0 until tcp_event_data_recv's first data: a client's
    first request, sent right after the handshake, is no reply."""
    sk = make_cb(tf, got_data=False, lrcvtime=T)
    tf.event_data_sent(sk, T)
    assert sk.pingpong == 0


def test_the_count_stops_at_u8_max(tf):
    sk = make_cb(tf, lrcvtime=T, pingpong=255)
    tf.event_data_sent(sk, T)
    assert sk.pingpong == 255


def test_under_the_threshold_the_count_is_not_the_mode(tf):
    """net.ipv4.tcp_pingpong_thresh 3 (Linux's value before 5.x's 1):
    two replies do not make the connection interactive, the third does."""
    sk = make_cb(tf, lrcvtime=T)
    sk.host.settings.tcp_pingpong_thresh = 3
    tf.event_data_sent(sk, T)
    tf.event_data_sent(sk, T)
    assert sk.pingpong == 2 and not tf.in_pingpong_mode(sk)
    tf.event_data_sent(sk, T)
    assert tf.in_pingpong_mode(sk)


def test_no_quick_ack_in_pingpong_mode(tf, hooks):
    """quick > 0 but pingpong: the ACK is delayed (TCP_ATO_MIN)."""
    sk = make_cb(tf, quick=5, pingpong=1, ack_pending=True)
    tf.ack_snd_check(sk, T)
    assert hooks.named("send_ack") == []
    assert sk.delack_timer.armed == [T + 0.04]


def test_quick_ack_below_the_threshold(tf, hooks):
    sk = make_cb(tf, quick=5, pingpong=1, ack_pending=True)
    sk.host.settings.tcp_pingpong_thresh = 2
    tf.ack_snd_check(sk, T)
    assert hooks.named("send_ack") == [("send_ack", T)]


def test_pingpong_mode_still_acks_two_full_segments(tf, hooks):
    """Only the quick-ACK reason is off: more than one full segment unacked
    (and the window moving) still ACKs at once."""
    sk = make_cb(tf, quick=5, pingpong=1, ack_pending=True, rcv_wup=100_000 - 2 * 1460)
    tf.ack_snd_check(sk, T)
    assert hooks.named("send_ack") == [("send_ack", T)]


# --- a whole connection (both builds' TcpSock) -----------------------------------------------

def _pure_acks(segs) -> int:
    return sum(1 for s in segs if not s.payload)


def _request(c, t: float, n: int = 10) -> list:
    c.host.now = t
    c.send(b"q" * n)
    return c.recv()


def _reply(c, t: float, n: int = 20) -> list:
    c.host.now = t
    c.sk.recvmsg(1 << 16)
    c.sk.sendmsg(b"r" * n)
    segs = c.recv()
    c.ack_all(segs)
    return segs


def test_request_response_sends_one_pure_ack_then_none():
    """The first request is quick-ACKed (quick-ACK mode); its reply, 1 ms
    later, enters pingpong mode; from then on every request's ACK rides on
    its reply: no pure ACK in the next rounds, though quick ACKs remain."""
    c = passive_open()
    t = T
    assert _pure_acks(_request(c, t)) == 1
    assert c.sk.quick > 0 and c.sk.pingpong == 0
    assert [len(s.payload) for s in _reply(c, t + 0.001)] == [20]
    assert c.sk.pingpong == 1
    for i in range(1, 8):
        t = T + i
        assert _request(c, t) == []
        assert c.sk.delack_timer.pending
        (reply,) = _reply(c, t + 0.001)
        assert reply.payload and reply.ack == c.snd
        assert not c.sk.delack_timer.pending
    assert c.sk.quick > 0 and c.sk.pingpong >= 1


def test_a_reply_after_the_ato_keeps_quick_acks():
    c = passive_open()
    _request(c, T)
    _reply(c, T + 0.05)                 # 50 ms: not a reply within the ATO
    assert c.sk.pingpong == 0
    assert _pure_acks(_request(c, T + 1)) == 1


def test_the_delayed_ack_timer_firing_leaves_pingpong_mode():
    """No reply within the delayed-ACK time: the timer sends the ACK and
    the connection is no longer interactive: the next request is
    quick-ACKed again."""
    c = passive_open()
    _request(c, T)
    _reply(c, T + 0.001)
    assert c.sk.pingpong == 1
    assert _request(c, T + 1) == []
    c.host.advance(T + 1.04)
    (ack,) = c.recv()
    assert not ack.payload and ack.ack == c.snd
    assert c.sk.pingpong == 0
    assert _pure_acks(_request(c, T + 2)) == 1


def test_a_duplicate_leaves_pingpong_mode():
    """tcp_data_queue: a segment all below rcv_nxt enters quick-ACK mode
    (tcp_enter_quickack_mode), which exits pingpong mode."""
    c = passive_open()
    _request(c, T)
    _reply(c, T + 0.001)
    assert c.sk.pingpong == 1
    c.host.now = T + 1
    c.send(b"q" * 10, seq=(c.snd - 10) & 0xFFFFFFFF)
    (dup_ack,) = c.recv()
    assert not dup_ack.payload
    assert c.sk.pingpong == 0
