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

import pytest
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
    ACKed at once (RFC 9293 3.10.7.4).  The count is tcp_incr_quickack's:
    rcv_wnd 0 gives 0 segments, so 2 (not TCP_MAX_QUICKACKS, the cap); that
    ACK spends one (tcp_event_ack_sent -> tcp_dec_quickack_mode), 1 remains."""
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
    assert c.sk.quick == 1


@pytest.mark.parametrize(("rcv_wnd", "cap", "quick", "want"), [
    (10_000, 16, 0, 5),         # half the window in 1000-byte segments
    (10_000, 3, 0, 3),          # at most the caller's cap
    (1_500, 16, 0, 2),          # 0 segments: 2
    (3_000, 16, 0, 1),          # 1 segment stays 1
    (10_000, 16, 9, 9),         # only ever raised
    (40, 100, 0, 10),           # rcv_mss 2 (as the rule has it, however unlikely)
])
def test_incr_quickack_is_one_rule_for_every_caller(tf, rcv_wnd, cap, quick, want):
    """tcp_incr_quickack(sk, max_quickacks), which tcp_enter_quickack_mode
    (out-of-order, duplicate, out-of-window and zero-window data) and the
    first data share: min(rcv_wnd / (2 rcv_mss) or 2, max), never lowering."""
    sk = make_cb(tf, quick=quick, rcv_wnd=rcv_wnd, rcv_mss=2 if rcv_wnd == 40 else 1000,
                 advmss=1460)
    tf.incr_quickack(sk, cap)
    assert sk.quick == want


@pytest.mark.parametrize("rcv_mss", [0, 1])
def test_incr_quickack_never_divides_by_zero(tf, rcv_mss):
    """No peer MSS guess yet (0, or 1): the window counts in bytes."""
    sk = make_cb(tf, quick=0, rcv_wnd=40, rcv_mss=rcv_mss, advmss=1460)
    tf.incr_quickack(sk, 100)
    assert sk.quick == 20


def test_out_of_order_data_into_a_small_window_gets_few_quick_acks():
    """tcp_data_queue_ofo: tcp_enter_quickack_mode(sk, TCP_MAX_QUICKACKS)
    with a window of 3 segments gives 1 quick ACK (3 * 536 / (2 * 536)),
    spent on the ACK of the out-of-order segment itself."""
    from .helpers import passive_open

    c = passive_open()
    c.sk.quick = 0
    c.sk.rcv_wnd = 3 * c.sk.rcv_mss
    c.send(b"x" * 10, seq=(c.snd + 100) & 0xFFFFFFFF)
    assert len(c.recv()) == 1                   # the out-of-order segment: ACKed at once
    assert c.sk.quick == 0
