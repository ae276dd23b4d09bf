"""Quick-ACK mode at the first data (tcp_fast.event_data_recv, Linux
tcp_event_data_recv -> tcp_incr_quickack), one rule per test, on both twins.

Linux (net/ipv4/tcp_input.c, tcp_incr_quickack):
    quickacks = rcv_wnd / (2 * rcv_mss);
    if (quickacks == 0) quickacks = 2;
    quickacks = min(quickacks, TCP_MAX_QUICKACKS);      /* 16 */
    if (quickacks > icsk_ack.quick) icsk_ack.quick = quickacks;
so the receiver ACKs at once about half a window's worth of segments, 2
when the window holds less than two segments, at most 16, and never fewer
than it was already going to.
"""

from __future__ import annotations

from conftest import twin_fixture

from .fastcb import make_cb

tf = twin_fixture("tcp_fast", "tf")


def _first_data(tf, n: int, **fields) -> object:
    sk = make_cb(tf, got_data=False, quick=0, **fields)
    tf.event_data_recv(sk, n)
    return sk


def test_quickacks_are_half_the_window_in_segments(tf):
    """rcv_wnd 10 * 1000, rcv_mss 1000: 10000 / 2000 = 5 quick ACKs."""
    sk = _first_data(tf, 1000, rcv_wnd=10_000, rcv_mss=536, advmss=1460)
    assert sk.rcv_mss == 1000
    assert sk.quick == 5


def test_a_window_of_less_than_two_segments_gives_two_quickacks(tf):
    """rcv_wnd / (2 rcv_mss) == 0 (1500 / 2000): quickacks = 2."""
    sk = _first_data(tf, 1000, rcv_wnd=1500, rcv_mss=536, advmss=1460)
    assert sk.quick == 2


def test_a_window_of_two_to_three_segments_gives_one_quickack(tf):
    """rcv_wnd / (2 rcv_mss) == 1 (3000 / 2000): Linux keeps 1 (only 0
    becomes 2)."""
    sk = _first_data(tf, 1000, rcv_wnd=3000, rcv_mss=536, advmss=1460)
    assert sk.quick == 1


def test_the_first_data_only_raises_the_quickack_count(tf):
    """tcp_incr_quickack: `if (quickacks > icsk_ack.quick)`: a count already
    higher (a zero-window drop's TCP_MAX_QUICKACKS before any data was
    taken) is kept, not lowered to this window's 5."""
    sk = make_cb(tf, got_data=False, quick=15, rcv_wnd=10_000, rcv_mss=536, advmss=1460)
    tf.event_data_recv(sk, 1000)
    assert sk.quick == 15


def test_the_first_data_raises_a_lower_quickack_count(tf):
    """A count below this window's (1 < 5) is raised to it."""
    sk = make_cb(tf, got_data=False, quick=1, rcv_wnd=10_000, rcv_mss=536, advmss=1460)
    tf.event_data_recv(sk, 1000)
    assert sk.quick == 5


def test_quickacks_are_capped_at_tcp_max_quickacks(tf):
    """TCP_MAX_QUICKACKS = 16: 65535 / (2 * 100) = 327 is capped."""
    sk = _first_data(tf, 100, rcv_wnd=65535, rcv_mss=88, advmss=1460)
    assert sk.quick == 16


def test_quickack_mode_is_entered_once(tf):
    """Only the first data enters quick-ACK mode (Linux: !icsk_ack.ato;
    here got_data): later data leaves the count alone."""
    sk = _first_data(tf, 1000, rcv_wnd=10_000, rcv_mss=536, advmss=1460)
    sk.quick = 1
    tf.event_data_recv(sk, 1000)
    assert sk.quick == 1


def test_rcv_mss_grows_to_the_largest_segment_up_to_advmss(tf):
    """tcp_measure_rcv_mss: the peer's MSS guess is the largest segment
    seen, never above our advertised MSS."""
    sk = make_cb(tf, rcv_mss=536, advmss=1460)
    tf.event_data_recv(sk, 1000)
    assert sk.rcv_mss == 1000
    tf.event_data_recv(sk, 600)
    assert sk.rcv_mss == 1000
    tf.event_data_recv(sk, 4000)
    assert sk.rcv_mss == 1460


def test_data_dropped_by_a_zero_window_enters_quickack_mode():
    """Linux tcp_data_queue: data at RCV.NXT with a zero receive window goes
    to out_of_window, tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS), and is
    ACKed at once (RFC 9293 3.10.7.4); that ACK spends one of the 16
    (tcp_event_ack_sent -> tcp_dec_quickack_mode), 15 remain."""
    from .helpers import passive_open

    c = passive_open()
    c.send(b"a")                    # the first data: quick-ACK mode by its own rule
    c.recv()
    c.sk.quick = 0
    c.sk.rcvbuf = 1                 # nothing fits any more
    c.sk.rcv_wnd = 0
    c.send(b"x" * 10)
    assert c.host.mib["TCPZeroWindowDrop"] == 1
    assert len(c.recv()) == 1
    assert c.sk.quick == 15
