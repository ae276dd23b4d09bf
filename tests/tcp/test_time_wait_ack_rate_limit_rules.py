"""ACKs from TIME_WAIT are rate-limited as out-of-window ACKs are.

Linux tcp_timewait_state_process: a segment that is not a bare ACK at
RCV.NXT, a new SYN or a RST is answered with an ACK through
tcp_timewait_check_oow_rate_limit -> tcp_oow_rate_limited(..,
LINUX_MIB_TCPACKSKIPPEDTIMEWAIT, &tw_last_oow_ack_time): at most one per
tcp_invalid_ratelimit (500 ms) for segments without data (seq == end_seq)
and without SYN; one with data or a FIN (a retransmitted FIN: our ACK was
lost) is always answered.  A skipped ACK is counted in TCPACKSkippedTimeWait.
The time-wait sock starts with no last time (tcp_time_wait:
tw_last_oow_ack_time = 0), so the first one is always sent.
"""

from __future__ import annotations

from .helpers import ACK, FIN, passive_open


def _time_wait():
    c = passive_open()
    c.sk.close()
    c.ack_all(c.recv())
    c.send()                            # our FIN acked: FIN-WAIT-2
    c.send(flags=FIN | ACK)             # theirs: TIME-WAIT
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    return c


def test_bare_acks_out_of_window_are_answered_once_per_half_second():
    c = _time_wait()
    expect = [(ACK, c.rcv, c.snd, b"")]
    c.host.advance(1.0)
    c.send(seq=c.snd + 1000)            # out of window, no data
    assert [s.key() for s in c.recv()] == expect
    c.host.advance(1.2)
    c.send(seq=c.snd + 1000)
    c.send(seq=c.snd + 2000)
    assert c.recv() == []
    assert c.host.mib["TCPACKSkippedTimeWait"] == 2
    c.host.advance(1.5)                 # tcp_invalid_ratelimit later: again
    c.send(seq=c.snd + 1000)
    assert [s.key() for s in c.recv()] == expect
    assert c.host.mib["TCPACKSkippedTimeWait"] == 2


def test_a_retransmitted_fin_is_answered_whatever_the_rate():
    c = _time_wait()
    expect = [(ACK, c.rcv, c.snd, b"")]
    c.host.advance(1.0)
    c.send(seq=c.snd + 1000)
    assert [s.key() for s in c.recv()] == expect
    c.send(flags=FIN | ACK, seq=c.snd - 1)      # not an ACK loop: answered
    assert [s.key() for s in c.recv()] == expect
    c.send(b"late", seq=c.snd - 5)              # data: answered too
    assert [s.key() for s in c.recv()] == expect
    assert c.host.mib["TCPACKSkippedTimeWait"] == 0


def test_an_orphans_fin_wait2_rate_limits_its_out_of_window_acks_too():
    """tcp_timewait_state_process, substate FIN_WAIT2: out of window (or
    PAWS-rejected) -> tcp_timewait_check_oow_rate_limit(..,
    LINUX_MIB_TCPACKSKIPPEDFINWAIT2)."""
    c = passive_open()
    c.sk.close()
    c.ack_all(c.recv())
    c.send()                            # our FIN acked: an orphan's FIN-WAIT-2
    expect = [(ACK, c.rcv, c.snd, b"")]
    c.host.advance(1.0)
    c.send(seq=c.snd + 100000)
    assert [s.key() for s in c.recv()] == expect
    c.send(seq=c.snd + 100000)
    assert c.recv() == []
    assert c.host.mib["TCPACKSkippedFinWait2"] == 1
    assert c.host.mib["TCPACKSkippedTimeWait"] == 0
