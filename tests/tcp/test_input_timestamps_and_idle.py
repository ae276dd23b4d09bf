"""What tcp_input records for later: TS.Recent and its age (RFC 7323 4.3,
5.5), the time the peer was last heard from (keepalive, TCP_USER_TIMEOUT:
RFC 1122 4.2.3.6, RFC 5482), and what a completed active open sets up
(keepalive timer, send buffer: Linux tcp_finish_connect / tcp_init_transfer).

The peer is played by hand on a virtual clock.
"""

from __future__ import annotations

import errno
import socket

import pytest

from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .helpers import (
    ACK,
    PEER_ISS,
    REMOTE,
    RPORT,
    SYN,
    Conn,
    FakeHost,
    Peer,
    TcpOptions,
    passive_open,
)

DAY = 86400.0


def _ts(val: int) -> TcpOptions:
    return TcpOptions(ts_val=val, ts_ecr=0)


def _ts_conn() -> Conn:
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))
    c.send(b"a", opts=_ts(1000))
    c.recv()
    assert c.sk.ts_recent == 1000
    return c


# --- TS.Recent ---------------------------------------------------------------------
def test_out_of_order_segment_does_not_update_ts_recent():
    """RFC 7323 4.3 (2): TS.Recent is taken only from a segment with
    SEG.SEQ =< Last.ACK.sent; the dupack for a segment beyond a hole echoes
    the old value."""
    c = _ts_conn()
    c.send(b"z" * 10, seq=c.snd + 100, opts=_ts(2000))
    segs = c.recv()
    assert [s.opts.ts_ecr for s in segs] == [1000]
    assert c.sk.ts_recent == 1000


def test_segment_filling_the_hole_updates_ts_recent():
    c = _ts_conn()
    c.send(b"z" * 10, seq=c.snd + 10, opts=_ts(2000))
    c.recv()
    c.send(b"y" * 10, opts=_ts(1500))         # at RCV.NXT, later than 1000
    segs = c.recv()
    assert [s.opts.ts_ecr for s in segs] == [1500]


def test_slow_path_segment_renews_the_age_of_ts_recent():
    """RFC 7323 5.5: TS.Recent is invalid only when it is older than 24 days;
    every accepted segment that sets it restarts that age."""
    c = _ts_conn()
    c.host.now = 30 * DAY
    c.send(b"b", opts=_ts(5000), window=60000)   # a window change: the slow path
    assert c.sk.ts_recent == 5000
    c.host.now = 30 * DAY + 1
    c.send(b"c", opts=_ts(4000))                 # older than 5000, 1 s later
    assert c.host.mib["PAWSEstabRejected"] == 1
    assert c.sk.recvmsg(10) == b"ab"


def test_fast_path_pure_ack_renews_the_age_of_ts_recent():
    c = _ts_conn()
    c.host.now = 30 * DAY
    c.send(opts=_ts(5000))
    c.host.now = 30 * DAY + 1
    c.send(b"c", opts=_ts(4000))
    assert c.host.mib["PAWSEstabRejected"] == 1


# --- when the peer was last heard from ------------------------------------------------
def _keepalive(sk, idle: int = 10, intvl: int = 1, cnt: int = 9) -> None:
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, intvl)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, cnt)
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


def _probe_times(c: Conn, until: float, step: float = 0.5) -> list[float]:
    out = []
    t = c.host.now
    while t < until:
        t += step
        c.host.advance(t)
        out += [t for s in c.recv() if not s.payload and s.flags == ACK]
    return out


def test_slow_path_segment_restarts_the_keepalive_idle_time():
    """RFC 1122 4.2.3.6: keep-alives only after the idle interval with no
    segment received; a segment taking the slow path counts too."""
    c = passive_open()
    _keepalive(c.sk)
    c.host.advance(8.0)
    c.send(b"x" * 10, seq=c.snd + 50)          # out of order: the slow path
    c.recv()
    assert _probe_times(c, 18.0) == [18.0]


def _established_at(t: float, setup=None) -> tuple[FakeHost, Peer, object]:
    host = FakeHost()
    peer = Peer(host)
    sk = host.tcp.socket()
    if setup:
        setup(sk)
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    syn = peer.recv_one()
    peer.lport = syn.sport
    host.advance(t)
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, opts=TcpOptions(mss=1460))
    peer.recv()
    assert sk.state == TCP_ESTABLISHED
    return host, peer, sk


def test_keepalive_set_before_connect_starts_when_the_connection_does():
    """Linux tcp_finish_connect: SO_KEEPALIVE set before connect() arms the
    keepalive timer when the handshake completes."""
    host, peer, _sk = _established_at(0.5, _keepalive)
    times = []
    t = 0.5
    while t < 12.0:
        t += 0.5
        host.advance(t)
        times += [t for _ in peer.recv()]
    assert times == [10.5, 11.5]


def test_user_timeout_counts_from_the_synack_for_keepalive():
    """RFC 5482 / Linux tcp_keepalive_timer: with TCP_USER_TIMEOUT the
    connection is dropped once the peer has been silent that long after a
    probe went unanswered; silence starts at the SYN-ACK."""
    def setup(sk):
        _keepalive(sk, idle=10, intvl=1)
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 12000)
    host, _peer, sk = _established_at(5.0, setup)
    t = 5.0
    while t < 40.0 and not sk.sk_err:
        t += 0.5
        host.advance(t)
    assert sk.sk_err == errno.ETIMEDOUT
    assert t == 17.0                      # 12 s after the SYN-ACK at 5 s


# --- what the completed handshake sets up ----------------------------------------------------
def test_send_buffer_grows_for_the_initial_window_when_connected():
    """Linux tcp_init_transfer -> tcp_sndbuf_expand: room for twice the
    congestion window (twice again for overhead), bounded by tcp_wmem[2]."""
    host, _peer, sk = _established_at(0.0)
    mss = sk.mss_cache
    want = min(2 * 2 * 10 * mss, host.settings.tcp_wmem[2])
    assert want > host.settings.tcp_wmem[1]
    assert sk.sendmsg(b"q" * (1 << 20)) == want


def test_connect_completion_wakes_the_connecting_socket():
    host, _peer, sk = _established_at(0.0)
    assert sk in host.woken


def test_in_order_data_updates_ts_recent_across_the_wrap():
    """RFC 7323 5.2: timestamps compare modulo 2**32; a TSval of 0 after
    0xFFFFFFF1 is newer, and is what the ACK echoes."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=0xFFFFFFF0, ts_ecr=0))
    assert c.sk.ts_recent == 0xFFFFFFF1
    c.send(b"w" * 10, opts=_ts(0))
    segs = c.recv()
    assert [s.opts.ts_ecr for s in segs] == [0]
    assert c.host.mib["PAWSEstabRejected"] == 0


def test_delayed_ack_echoes_the_earliest_unacknowledged_timestamp():
    """RFC 7323 4.3 (2): with an ACK delayed, TS.Recent is not taken from
    later segments (SEG.SEQ > Last.ACK.sent), so the ACK echoes the timestamp
    of the first segment it acknowledges."""
    c = _ts_conn()
    c.sk.quick = 0
    out = c.sk.sendmsg(b"o" * 10)
    assert out == 10
    ours = c.recv()
    c.send(b"1" * 10, opts=_ts(2000))            # ACK delayed
    assert c.recv() == []
    c.ack_all(ours)
    c.send(opts=_ts(3000))                        # a pure ACK of our data, later
    assert c.sk.ts_recent == 2000
    c.host.advance(c.host.settings.tcp_delack_min)
    assert [s.opts.ts_ecr for s in c.recv()] == [2000]


# --- the receiver's RTT estimate (Linux tcp_rcv_rtt_measure_ts) --------------------------
def test_receiver_rtt_is_measured_from_the_echoed_timestamp():
    """Linux tcp_rcv_rtt_measure_ts: RTT = now - TSecr (ms clock); the first
    sample is taken as is, later ones as rtt = 7/8 rtt + 1/8 sample."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))
    sent = c.sk.sendmsg(b"q" * 10)
    assert sent == 10
    ecr = c.recv()[0].opts.ts_val
    c.host.now = 0.2
    c.ack_all([])
    c.send(b"r" * 10, opts=TcpOptions(ts_val=200, ts_ecr=ecr), window=60000)  # slow path
    assert c.sk.rcv_rtt == pytest.approx(0.2)
    c.host.now = 0.3
    c.send(b"s" * 10, opts=TcpOptions(ts_val=300, ts_ecr=ecr), window=50000)
    assert c.sk.rcv_rtt == pytest.approx(0.2 * 0.875 + 0.3 * 0.125)


def test_receiver_rtt_ignores_an_echo_of_zero_and_one_from_the_future():
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))
    c.host.now = 0.2
    c.send(b"r" * 10, opts=TcpOptions(ts_val=200, ts_ecr=0), window=60000)
    assert not c.sk.rcv_rtt
    ours = (int(c.host.now * 1000) + c.sk.ts_off) & 0xFFFFFFFF
    c.send(b"s" * 10, opts=TcpOptions(ts_val=300, ts_ecr=(ours + 5000) & 0xFFFFFFFF),
           window=50000)
    assert not c.sk.rcv_rtt


def test_receiver_rtt_sample_has_a_floor_of_one_millisecond():
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))
    ours = (int(c.host.now * 1000) + c.sk.ts_off) & 0xFFFFFFFF
    c.send(b"r" * 10, opts=TcpOptions(ts_val=200, ts_ecr=ours), window=60000)
    assert c.sk.rcv_rtt == pytest.approx(0.001)


@pytest.mark.parametrize(("age", "taken"), [(0x7FFFFFFE, True), (0x7FFFFFFF, False)])
def test_receiver_rtt_takes_echoes_up_to_half_the_timestamp_space(age, taken):
    """An echo is a measurement only while now - TSecr < 2**31 ms."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))
    ours = (int(c.host.now * 1000) + c.sk.ts_off) & 0xFFFFFFFF
    c.send(b"r" * 10, opts=TcpOptions(ts_val=200, ts_ecr=(ours - age) & 0xFFFFFFFF),
           window=60000)
    assert c.sk.rcv_rtt == (pytest.approx(age / 1000.0) if taken else 0)
