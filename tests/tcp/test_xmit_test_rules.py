"""tcp_fast.xmit_test: tcp_write_xmit's three tests for the next segment, the
one decision both send loops (the compiled write_xmit and tcp_output's
general loop) ask, on both twins.

- tcp_cwnd_test (RFC 5681 / RFC 6675 pipe): packets in flight =
  packets_out - (sacked_out + lost_out) + retrans_out must be below snd_cwnd;
  when it is not, is_cwnd_limited is set (tcp_is_cwnd_limited reads it).
- tcp_snd_wnd_test (RFC 9293 3.8.6.2.1): the segment must end at or before
  snd_una + snd_wnd, in sequence space.
- tcp_nagle_test with Minshall's tweak (RFC 896, RFC 1122 4.2.3.4; Linux
  tcp_nagle_check): a segment shorter than the MSS waits while a small
  segment is unacknowledged (snd_una < snd_sml <= seq), unless TCP_NODELAY;
  a FIN is never held back (tcp_nagle_test's "final FIN" rule).
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture

from .fastcb import make_cb

tf = twin_fixture("tcp_fast", "tf")

UNA = 5000
MSS = 1000


def _cb(tf, **fields):
    return make_cb(tf, **{"snd_una": UNA, "snd_nxt": UNA, "snd_sml": UNA, **fields})


@pytest.mark.parametrize("packets_out, sacked, lost, retrans, cwnd, ok", [
    (9, 0, 0, 0, 10, True),
    (10, 0, 0, 0, 10, False),
    (12, 2, 1, 0, 10, True),        # 12 - 3 = 9 in flight
    (12, 2, 1, 1, 10, False),       # a retransmission counts again
])
def test_cwnd_test_counts_packets_in_flight(tf, packets_out, sacked, lost, retrans, cwnd, ok):
    sk = _cb(tf, packets_out=packets_out, sacked_out=sacked, lost_out=lost,
             retrans_out=retrans, snd_cwnd=cwnd, snd_nxt=UNA + 20 * MSS, nodelay=True)
    seq = sk.snd_nxt
    assert tf.xmit_test(sk, seq, seq + MSS, MSS, MSS, False) is ok
    assert sk.is_cwnd_limited is (not ok)


@pytest.mark.parametrize("una, wnd, end, ok", [
    (UNA, 3000, UNA + 3000, True),                   # ends exactly at the right edge
    (UNA, 3000, UNA + 3001, False),
    (0xFFFFFF00, 0x200, 0x100, True),                # the edge wrapped past 2**32
    (0xFFFFFF00, 0x200, 0x101, False),
])
def test_the_segment_must_fit_the_peers_window(tf, una, wnd, end, ok):
    sk = _cb(tf, snd_una=una, snd_nxt=una, snd_sml=una, snd_wnd=wnd)
    seq = (end - MSS) & 0xFFFFFFFF
    assert tf.xmit_test(sk, seq, end, MSS, MSS, False) is ok
    assert sk.is_cwnd_limited is False


@pytest.mark.parametrize("seglen, sml, nodelay, fin, ok", [
    (MSS, UNA + 100, False, False, True),     # a full segment always goes
    (100, UNA + 100, False, False, False),    # a small one waits for the small one out
    (100, UNA + 100, True, False, True),      # TCP_NODELAY
    (100, UNA + 100, False, True, True),      # the FIN goes anyway
    (100, UNA, False, False, True),           # the small one is acknowledged (Minshall)
])
def test_nagle_with_minshalls_tweak(tf, seglen, sml, nodelay, fin, ok):
    sk = _cb(tf, packets_out=1, snd_nxt=UNA + 1000, snd_sml=sml, nodelay=nodelay)
    seq = sk.snd_nxt
    assert tf.xmit_test(sk, seq, seq + seglen + fin, seglen, MSS, fin) is ok


def test_nagle_does_not_hold_a_small_segment_with_nothing_in_flight(tf):
    sk = _cb(tf, packets_out=0, snd_sml=UNA + 100, snd_nxt=UNA + 100)
    assert tf.xmit_test(sk, UNA + 100, UNA + 200, 100, MSS, False) is True
