"""The duplicate ACK for a PAWS-rejected segment is rate-limited.

Linux tcp_validate_incoming: a segment failing PAWS (and not a RST) is
counted in PAWSEstabRejected and answered with tcp_send_dupack unless
tcp_oow_rate_limited(.., LINUX_MIB_TCPACKSKIPPEDPAWS, &tp->last_oow_ack_time)
says the socket sent such an ACK less than tcp_invalid_ratelimit (500 ms)
ago; segments with data (and no SYN) are never limited.  The last time is
the socket's one, shared with the out-of-window (TCPACKSkippedSeq) ACKs.

The old timestamps here are far older than TS.Recent (by more than
Linux's tcp_disordered_ack allowance of about one RTO), so Linux rejects
them too.
"""

from __future__ import annotations

from .helpers import ACK, TcpOptions, passive_open

OLD = TcpOptions(ts_val=10, ts_ecr=0)


def _ts_conn():
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))
    c.send(opts=TcpOptions(ts_val=50000, ts_ecr=0))      # TS.Recent 50000
    assert c.sk.ts_recent == 50000
    assert c.recv() == []
    return c


def _acks(c):
    return [(s.flags, s.seq, s.ack, s.payload) for s in c.recv()]


def test_paws_rejected_bare_acks_are_answered_once_per_half_second():
    c = _ts_conn()
    expect = [(ACK, c.rcv, c.snd, b"")]
    c.host.advance(1.0)
    c.send(opts=OLD)
    assert _acks(c) == expect
    c.host.advance(1.3)
    c.send(opts=OLD)
    c.send(opts=OLD)
    assert _acks(c) == []
    assert c.host.mib["PAWSEstabRejected"] == 3
    assert c.host.mib["TCPACKSkippedPAWS"] == 2
    c.host.advance(1.5)
    c.send(opts=OLD)
    assert _acks(c) == expect
    assert c.host.mib["TCPACKSkippedPAWS"] == 2


def test_the_limit_is_shared_with_out_of_window_acks():
    c = _ts_conn()
    c.host.advance(1.0)
    c.send(seq=c.snd + 100000, opts=TcpOptions(ts_val=50001, ts_ecr=0))
    assert len(_acks(c)) == 1               # out of window: answered
    c.send(opts=OLD)
    assert _acks(c) == []                   # the same socket's clock
    assert c.host.mib["TCPACKSkippedPAWS"] == 1


def test_paws_rejected_data_is_always_answered():
    c = _ts_conn()
    c.host.advance(1.0)
    for _ in range(3):
        c.send(b"old", opts=OLD, seq=c.snd)
        assert len(_acks(c)) == 1
    assert c.host.mib["PAWSEstabRejected"] == 3
    assert c.host.mib["TCPACKSkippedPAWS"] == 0
    assert c.sk.recvmsg(10) == b""
