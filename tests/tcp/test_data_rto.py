"""Retransmission timer (RFC 6298 with Linux's 200 ms floor), Karn's rule,
backoff, tcp_retries2 and TCP_USER_TIMEOUT, zero-window probes, keepalive."""

from __future__ import annotations

import errno
import socket

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CLOSE, TCP_ESTABLISHED

from .helpers import ACK, RST, passive_open


def _times_of(c, until: float, step: float = 0.05, pred=lambda s: True):
    """Advance the clock in small steps; record (time, seg) sent."""
    out = []
    t = c.host.now
    while t < until - 1e-9:
        t = round(t + step, 6)
        c.host.advance(t)
        for s in c.recv():
            if pred(s):
                out.append((t, s))
    return out


def _send_acked_at(c, data: bytes, t: float) -> None:
    """The stack sends ``data``; the peer ACKs all of it at time ``t``."""
    c.sk.sendmsg(data)
    seg = c.recv()
    c.host.advance(t)
    c.ack_all(seg)
    c.send()


def test_initial_rto_is_one_second_and_doubles():
    c = passive_open(settings=Settings(tcp_retries2=20))
    c.sk.sendmsg(b"x" * 100)
    first = c.recv()[0]
    rtx = _times_of(c, 16.0)
    assert [t for t, _ in rtx] == [1.0, 3.0, 7.0, 15.0]
    assert all(s.key() == first.key() for _, s in rtx)   # same bytes, same seq
    assert c.host.mib["RetransSegs"] == 4


def test_rto_from_first_rtt_sample():
    """RFC 6298 2.2: SRTT=R, RTTVAR=R/2, RTO=SRTT+4*RTTVAR = 3R (R=0.1 -> 0.3 s)."""
    c = passive_open()
    _send_acked_at(c, b"a" * 10, 0.1)
    assert abs(c.sk.rto - 0.3) < 1e-9
    c.sk.sendmsg(b"b" * 10)
    c.recv()
    rtx = _times_of(c, 0.5, step=0.01)
    assert [round(t, 2) for t, _ in rtx] == [0.4]


def test_rto_floor_is_200ms():
    c = passive_open()
    _send_acked_at(c, b"a", 0.001)
    assert c.sk.rto >= 0.2 - 1e-9


def test_karn_no_sample_from_retransmitted_segment_backoff_kept():
    c = passive_open()
    c.sk.sendmsg(b"a" * 10)
    seg = c.recv()
    _times_of(c, 1.0)                          # retransmitted at t = 1
    c.host.advance(1.05)
    c.ack_all(seg)
    c.send()                                   # ambiguous ACK: no RTT sample
    assert not c.sk.rtt_est.has_sample
    c.sk.sendmsg(b"b" * 10)
    c.recv()
    rtx = _times_of(c, 3.2)
    assert [round(t, 2) for t, _ in rtx] == [3.05]   # backed-off 2 s RTO kept


def test_retries2_gives_etimedout_without_rst():
    """retransmits_timed_out: tcp_retries2=3 is the model time of 3 RTOs
    from 200 ms (0.2 + 0.4 + 0.8 + 1.6 = 3.0 s) since the first
    retransmission, not a count: with a 1 s RTO the RTO at 7 s (6 s after
    the first retransmission) gives up after two retransmissions.  Linux
    6.18 with a 1 s rto_min route does the same (RTOs 2 s apart, then 4 s,
    then ETIMEDOUT)."""
    c = passive_open(settings=Settings(tcp_retries2=3))
    c.sk.sendmsg(b"x" * 10)
    c.recv()
    t, segs = 0.0, []
    while c.sk.state != TCP_CLOSE and t < 20.0:
        t = round(t + 0.05, 6)
        c.host.advance(t)
        segs += [(t, s) for s in c.recv()]
    assert [t for t, _ in segs] == [1.0, 3.0]
    assert c.sk.sk_err == errno.ETIMEDOUT and t == 7.0
    assert all(not s.flags & RST for _, s in segs)


def test_tcp_user_timeout():
    """Measured from the first retransmission (retrans_stamp), at 1 s: Linux
    6.18 with TCP_USER_TIMEOUT 3000 gave up 3.0 s after its first RTO."""
    c = passive_open(settings=Settings(tcp_retries2=15))
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)
    c.sk.sendmsg(b"x" * 10)
    c.recv()
    t = 0.0
    while c.sk.state != TCP_CLOSE and t < 30:
        t = round(t + 0.05, 6)
        c.host.advance(t)
        c.recv()
    assert c.sk.sk_err == errno.ETIMEDOUT
    assert t == 6.0


def test_ack_stops_retransmission():
    c = passive_open()
    _send_acked_at(c, b"x" * 10, 0.5)
    assert _times_of(c, 10.0) == []
    assert not c.sk.rtx_timer.pending


# --- zero window --------------------------------------------------------------------------
def test_zero_window_probes_with_backoff():
    c = passive_open()
    c.send(window=0)                            # the peer's window closes
    c.sk.sendmsg(b"z" * 100)
    assert c.recv() == []                        # nothing fits
    probes = _times_of(c, 8.0)
    assert [t for t, _ in probes] == [1.0, 3.0, 7.0]
    for _, p in probes:                          # seq = SND.UNA - 1, no data
        assert p.key() == (ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b"")
    c.send(window=1000)                          # the answer opens the window
    out = c.recv()
    assert len(out) == 1 and out[0].payload == b"z" * 100
    assert c.sk.state == TCP_ESTABLISHED


def test_receiver_answers_probe_and_keeps_zero_window():
    c = passive_open(setup=lambda ls: ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048))
    rcvbuf = c.sk.rcvbuf
    sent = 0
    while True:
        segs = c.recv()
        if segs and segs[-1].window == 0:
            break
        c.send(b"q" * 536)
        sent += 536
        if sent > rcvbuf * 2:
            raise AssertionError("window never closed")
    assert c.sk.readable() <= rcvbuf
    queued = c.sk.readable()
    c.send(b"p", seq=c.sk.rcv_nxt)               # a 1-byte probe into the zero window
    ack = c.recv()
    assert ack and ack[-1].window == 0 and ack[-1].ack == c.sk.rcv_nxt
    assert c.sk.readable() == queued             # the probe's byte was not taken
    c.sk.recvmsg(1 << 20)                        # the app reads: window update
    upd = c.recv()
    assert upd and upd[-1].window > 0


# --- keepalive ------------------------------------------------------------------------------
def _keepalive(sk, idle: int, intvl: int, cnt: int) -> None:
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def test_keepalive_probes_then_reset_and_etimedout():
    c = passive_open()
    sk = c.sk
    _keepalive(sk, idle=10, intvl=2, cnt=3)
    out = _times_of(c, 20.0, step=0.5)
    probes = [(t, s) for t, s in out if not s.flags & RST]
    assert [t for t, _ in probes] == [10.0, 12.0, 14.0]
    for _, p in probes:
        assert p.key() == (ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b"")
    rst = [t for t, s in out if s.flags & RST]
    assert rst == [16.0]
    assert sk.sk_err == errno.ETIMEDOUT and sk.state == TCP_CLOSE


def test_keepalive_answer_resets_the_count():
    c = passive_open()
    sk = c.sk
    _keepalive(sk, idle=10, intvl=2, cnt=2)
    _times_of(c, 10.0, step=0.5)
    c.send()                                     # the peer is alive
    out = _times_of(c, 21.0, step=0.5)
    assert [t for t, _ in out] == [20.0]         # idle counts from the last segment heard
    assert sk.state == TCP_ESTABLISHED
