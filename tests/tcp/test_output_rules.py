"""The sending side (core/tcp/tcp_output.py, Linux net/ipv4/tcp_output.c),
one rule per test, with exact segments out of a FakeHost connection.

Options on SYNs and after the handshake (RFC 7323, RFC 2018/2883), the
urgent pointer, MSS from the path MTU and the peer's window, the send and
receive buffer autotuning, the retransmission timer (RFC 6298 5.1), the
persist timer (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17), retransmission of a
segment from the send queue, cwnd restart after idle (RFC 7661 /
tcp_cwnd_restart), resets on abort (tcp_need_reset), the FIN.
"""

from __future__ import annotations

import socket

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp import tcp_output
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_SYN_RECV,
)

from .helpers import (
    ACK,
    FIN,
    PSH,
    REMOTE,
    RPORT,
    RST,
    SYN,
    URG,
    FakeHost,
    Peer,
    TcpOptions,
    passive_open,
)

MASK = 0xFFFFFFFF


def _ms(now: float) -> int:
    return int(now * 1000) & MASK


def _bigbuf(ls) -> None:
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)


def _syn_sent(settings: Settings | None = None, now: float = 0.0):
    """(host, peer, sock in SYN_SENT, the SYN it sent)."""
    host = FakeHost(settings=settings)
    host.now = now
    peer = Peer(host)
    sk = host.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    syn = peer.recv_one()
    peer.lport = syn.sport
    return host, peer, sk, syn


# --- options on the SYN (tcp_syn_options) ------------------------------------------------

def test_syn_carries_mss_window_scale_sack_permitted_and_timestamp():
    """tcp_syn_options: MSS = our advmss, the window scale we will use, SACK
    permitted, and a timestamp TSval = ms clock + ts_off with TSecr 0 (RFC
    7323 3.2: TSecr is only meaningful with ACK)."""
    _host, _peer, sk, syn = _syn_sent()
    assert syn.flags == SYN
    assert syn.opts.mss == sk.advmss == 1460
    assert syn.opts.wscale == sk.rcv_wscale and sk.rcv_wscale > 0
    assert syn.opts.sack_ok is True
    assert syn.opts.ts_val == (_ms(0.0) + sk.ts_off) & MASK and sk.ts_off
    assert syn.opts.ts_ecr == 0
    # RFC 7323 2.2: the window of a SYN is never scaled
    assert syn.window == min(sk.rcv_wnd, 65535)


@pytest.mark.parametrize("sysctl, field, off", [
    ("tcp_sack", "sack_ok", False),
    ("tcp_timestamps", "ts_val", None),
    ("tcp_window_scaling", "wscale", None),
])
def test_syn_options_follow_the_sysctls(sysctl, field, off):
    syn = _syn_sent(Settings(**{sysctl: 0}))[3]
    assert getattr(syn.opts, field) == off
    assert syn.opts.mss == 1460


def test_syn_timestamp_is_the_clock_plus_the_connection_offset():
    """RFC 7323 5.4 / RFC 6528-style offsets: TSval is ts_off + the ms clock,
    modulo 2**32, at the time the SYN is sent."""
    _host, _peer, sk, syn = _syn_sent(now=12.3457)
    assert syn.opts.ts_val == (12345 + sk.ts_off) & MASK


def test_synack_of_a_simultaneous_open_echoes_the_peers_timestamp():
    """tcp_send_synack from a full sock (RFC 9293 3.5 simultaneous open):
    seq = ISS, ACK of the peer's SYN, the SYN options again, TSecr = the
    peer's TSval (TS.Recent)."""
    host, peer, sk, syn = _syn_sent()
    peer.send(SYN, 7000, 0, 65535, opts=TcpOptions(mss=1400, ts_val=4242, ts_ecr=0,
                                                   sack_ok=True, wscale=2))
    s = peer.recv_one()
    assert (s.flags, s.seq, s.ack) == (SYN | ACK, syn.seq, 7001)
    assert s.opts.mss == 1460 and s.opts.ts_ecr == 4242 and s.opts.wscale == syn.opts.wscale
    assert s.opts.ts_val == (_ms(host.now) + sk.ts_off) & MASK
    assert s.window == syn.window
    assert sk.state == TCP_SYN_RECV


# --- the urgent pointer ------------------------------------------------------------------

def test_the_urgent_pointer_is_capped_at_0xffff_ahead():
    """Linux tcp_transmit_skb: the pointer is snd_up - seq when that fits in
    16 bits, else 0xFFFF (the urgent byte is further on); URG on every
    segment before snd_up."""
    c = passive_open(setup=_bigbuf)
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = 0x10000 + 100
    assert c.sk.sendmsg(b"u" * n, socket.MSG_OOB) == n
    out = c.recv()
    start = out[0].seq
    snd_up = (start + n) & MASK
    assert len(out) >= 2
    assert out[0].flags & URG and out[0].urg_ptr == 0xFFFF
    for s in out[1:]:
        assert s.flags & URG and s.urg_ptr == (snd_up - s.seq) & MASK


def test_a_segment_at_the_urgent_pointer_is_not_urgent():
    """The urgent data ends before snd_up: a segment starting there carries
    no URG (the pointer would point at or behind its own start)."""
    c = passive_open()
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"ab!", socket.MSG_OOB)
    c.sk.sendmsg(b"cd")
    first, second = c.recv()
    assert first.flags & URG and first.urg_ptr == 3
    assert not second.flags & URG and second.urg_ptr == 0


# --- resets -------------------------------------------------------------------------------

def _rst_of(c):
    return [s for s in c.recv() if s.flags & RST]


def test_active_reset_is_rst_ack_at_snd_nxt_and_rcv_nxt():
    """tcp_send_active_reset: RST|ACK with seq = snd_nxt, ack = rcv_nxt."""
    c = passive_open()
    c.send(b"unread")
    c.recv()
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"xyz")
    c.recv()
    nxt, rcv_nxt = c.sk.snd_nxt, c.sk.rcv_nxt
    c.sk.close()
    rst, = _rst_of(c)
    assert (rst.flags, rst.seq, rst.ack, rst.payload) == (RST | ACK, nxt, rcv_nxt, b"")
    # no timestamp without one negotiated, no urgent pointer
    assert rst.opts.ts_val is None and not rst.opts.sack_blocks and rst.urg_ptr == 0
    assert c.host.mib["OutRsts"] == 1


def test_an_active_reset_carries_the_timestamp_and_the_window():
    """RFC 7323 3.2: once negotiated, TSopt SHOULD be sent in a RST too.
    Linux's tcp_send_active_reset goes through tcp_transmit_skb, so its RST
    carries TSval/TSecr and the connection's window like any segment
    (checked against the kernel over loopback: close() with unread data
    sends [R.] with a non-zero window (64, scaled) and <nop,nop,TS>)."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, wscale=7, ts_val=500, ts_ecr=0))
    c.send(b"unread", opts=TcpOptions(ts_val=501, ts_ecr=0))
    c.recv()
    sk = c.sk
    c.host.advance(2.5)
    expect_window = tcp_output.__tcp_select_window(sk) >> sk.rcv_wscale \
        if hasattr(tcp_output, "__tcp_select_window") else None
    sk.close()
    rst, = _rst_of(c)
    assert rst.flags == RST | ACK
    assert (rst.opts.ts_val, rst.opts.ts_ecr) == ((_ms(2.5) + sk.ts_off) & MASK, 501)
    assert rst.window > 0
    if expect_window is not None:
        assert rst.window == expect_window


def _to_state(state: int):
    """A passive connection with unread data in ``state``."""
    c = passive_open()
    c.send(b"unread")
    if state in (TCP_CLOSE_WAIT, TCP_LAST_ACK):
        c.send(flags=ACK | FIN)
    if state in (TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK):
        c.sk.shutdown(socket.SHUT_WR)
    if state == TCP_FIN_WAIT2:
        c.ack_all(c.recv())
        c.send()
    c.recv()
    assert c.sk.state == state
    return c


@pytest.mark.parametrize("state", [TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_FIN_WAIT1,
                                   TCP_FIN_WAIT2])
def test_abort_resets_the_peer_in_the_synchronized_states(state):
    """tcp_need_reset: ESTABLISHED, CLOSE_WAIT, FIN_WAIT1, FIN_WAIT2 (and
    SYN_RECV): the peer holds state, so an abort (here: close with unread
    data, RFC 2525 2.17) tells it with a RST."""
    c = _to_state(state)
    c.sk.close()
    assert len(_rst_of(c)) == 1
    assert c.sk.state == TCP_CLOSE


def test_abort_of_an_unsynchronized_connection_sends_no_reset():
    """Aborting a SYN_SENT connection (shutdown(SHUT_WR) before the
    handshake, tcp_disconnect): the peer has nothing to reset."""
    host, peer, sk, _syn = _syn_sent()
    sk.shutdown(socket.SHUT_WR)
    assert sk.state == TCP_CLOSE
    assert peer.recv() == [] and host.mib["OutRsts"] == 0


def test_send_ack_in_close_sends_nothing():
    c = passive_open()
    c.send(b"x")
    c.recv()
    c.sk.close()            # unread data: RST, then CLOSE
    c.recv()
    tcp_output.tcp_send_ack(c.sk, c.host.now)
    assert c.recv() == []


# --- MSS ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pmtu, clamp, ts, expect", [
    (1500, 65535, False, 1460),
    (1500, 65535, True, 1448),       # the timestamp option takes 12 bytes
    (1500, 1000, True, 988),         # the peer's MSS first, then the options
    (576, 65535, False, 536),
    (100, 65535, False, 60),
    (80, 65535, True, 48),           # never below 48 (TCP_MIN_SND_MSS)
    (60, 65535, False, 48),
])
def test_mss_from_the_path_mtu(pmtu, clamp, ts, expect):
    """tcp_sync_mss / tcp_mtu_to_mss: MTU - 40, at most the peer's MSS
    (mss_clamp), minus the options every segment carries, at least 48."""
    c = passive_open()
    sk = c.sk
    sk.mss_clamp, sk.tstamp_ok = clamp, ts
    assert tcp_output.tcp_sync_mss(sk, pmtu) == expect == sk.mss_cache


@pytest.mark.parametrize("max_window, expect", [
    (0, 1460),                # nothing offered yet: the MSS
    (65535, 1460),
    (2000, 1000),             # half the largest window
    (537, 268),
    (536, 536),               # up to 536 (TCP_MSS_DEFAULT): the whole window
    (400, 400),
    (60, 60),
    (40, 48),                 # never below 48
])
def test_segments_are_at_most_half_the_largest_window_offered(max_window, expect):
    """tcp_bound_to_half_wnd: a peer with a tiny window still gets whole
    segments (RFC 1122 4.2.3.4's "Fs" fraction, Linux: half of max_window
    above 536 bytes)."""
    c = passive_open()
    sk = c.sk
    sk.mss_cache, sk.max_window = 1460, max_window
    assert tcp_output.tcp_current_mss(sk) == expect


def test_a_small_peer_window_gets_half_window_segments():
    c = passive_open(syn_opts=TcpOptions(mss=1460), window=2000)
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"w" * 5000)
    assert [len(s.payload) for s in c.recv()] == [1000, 1000]


# --- SACK option room ---------------------------------------------------------------------

@pytest.mark.parametrize("sack_ok, ts, blocks, dsack, expect", [
    (False, False, 2, False, 0),
    (True, False, 0, False, 0),
    (True, False, 1, False, 12),
    (True, False, 0, True, 12),          # a D-SACK block alone
    (True, False, 4, False, 36),
    (True, False, 4, True, 36),          # at most 4 blocks without timestamps
    (True, True, 3, False, 28),
    (True, True, 2, True, 28),           # at most 3 with them
    (True, True, 4, True, 28),
])
def test_sack_option_length(sack_ok, ts, blocks, dsack, expect):
    """RFC 2018 3: 2 + 8n bytes (with two NOPs, 4 + 8n), n <= 4, and <= 3
    beside the 12 bytes of the timestamp option (40 bytes of options)."""
    c = passive_open()
    sk = c.sk
    sk.sack_ok, sk.tstamp_ok = sack_ok, ts
    sk.sack_blocks = [(1000 * i, 1000 * i + 10) for i in range(1, blocks + 1)]
    sk.dsack = (1, 2) if dsack else None
    assert tcp_output.tcp_sack_option_len(sk) == expect


def _sack_conn(ts: bool):
    c = passive_open(syn_opts=TcpOptions(mss=1460, sack_ok=True,
                                         ts_val=1 if ts else None, ts_ecr=0 if ts else None))
    return c


def _opts(c, ts: bool):
    return TcpOptions(ts_val=2, ts_ecr=0) if ts else None


@pytest.mark.parametrize("ts", [True, False])
def test_the_dsack_block_goes_first_and_once(ts):
    """RFC 2883 4: the D-SACK block is the first block of the next ACK, and
    is reported once; the SACK blocks follow, most recent first."""
    c = _sack_conn(ts)
    c.send(b"a" * 100, opts=_opts(c, ts))
    c.send(b"h" * 100, seq=c.snd + 1000, opts=_opts(c, ts))     # a hole: one SACK block
    c.recv()
    c.send(b"a" * 10, seq=c.snd - 10, opts=_opts(c, ts))        # an old duplicate
    ack, = c.recv()
    hole = ((c.snd + 1000) & MASK, (c.snd + 1100) & MASK)
    assert ack.opts.sack_blocks == (((c.snd - 10) & MASK, c.snd), hole)
    assert c.sk.dsack is None
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"x")
    assert c.recv()[0].opts.sack_blocks == (hole,)


@pytest.mark.parametrize("ts, room", [(True, 3), (False, 4)])
def test_an_ack_carries_at_most_the_blocks_the_option_space_allows(ts, room):
    c = _sack_conn(ts)
    for k in range(1, 6):               # five holes
        c.send(b"h" * 10, seq=c.snd + 100 * k, opts=_opts(c, ts))
    acks = c.recv()
    assert len(acks[-1].opts.sack_blocks) == room
    # most recent first
    assert acks[-1].opts.sack_blocks[0] == ((c.snd + 500) & MASK, (c.snd + 510) & MASK)


@pytest.mark.parametrize("datalen, blocks", [
    (1448, 0),          # a full segment: no room
    (1448 - 11, 0),     # 11 bytes: not even one block (4 + 8)
    (1448 - 12, 1),
    (1448 - 20, 2),
    (1448 - 27, 2),
    (1448 - 28, 3),
])
def test_sack_blocks_of_a_segment_fit_in_the_mss(datalen, blocks):
    """_established_options: the SACK option never makes a segment exceed
    the MSS: spare = mss_cache - data, blocks = (spare - 4) // 8 when at
    least 12 bytes are spare (and at most 3 beside a timestamp)."""
    c = _sack_conn(True)
    for k in range(1, 5):
        c.send(b"h" * 10, seq=c.snd + 100 * k, opts=_opts(c, True))
    c.recv()
    sk = c.sk
    assert sk.mss_cache == 1448 and len(sk.sack_blocks) == 4
    ts_val, ts_ecr, sack = tcp_output._established_options(sk, c.host.now, datalen)
    assert len(sack) == blocks
    assert sack == tuple(sk.sack_blocks[:blocks])
    assert ts_val == (_ms(c.host.now) + sk.ts_off) & MASK and ts_ecr == sk.ts_recent


# --- autotuning ---------------------------------------------------------------------------

def test_the_send_buffer_grows_with_the_congestion_window():
    """tcp_sndbuf_expand: sndbuf = 2 * cwnd * per-segment memory (Linux's
    per_mss ~ 2 * MSS of skb overhead), capped at tcp_wmem[2], never shrinking."""
    c = passive_open()
    sk = c.sk
    sk.sndbuf, sk.snd_cwnd, sk.mss_cache = 16384, 20, 1000
    tcp_output.sndbuf_expand(sk)
    assert sk.sndbuf == 2 * 20 * 1000 * 2
    sk.snd_cwnd = 5
    tcp_output.sndbuf_expand(sk)
    assert sk.sndbuf == 80_000               # never shrinks
    sk.snd_cwnd = 10_000
    tcp_output.sndbuf_expand(sk)
    assert sk.sndbuf == c.host.settings.tcp_wmem[2]


def test_a_locked_send_buffer_does_not_grow():
    """SO_SNDBUF locks the buffer (SOCK_SNDBUF_LOCK): no autotuning."""
    c = passive_open(setup=lambda ls: ls.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 5000))
    sk = c.sk
    before = sk.sndbuf
    sk.snd_cwnd = 100
    tcp_output.sndbuf_expand(sk)
    assert sk.sndbuf == before == 10_000


def _autotune_conn():
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    sk = c.sk
    sk.rcv_rtt = 0.25
    sk.rcvbuf = 50_000
    sk.rcvq_space = 2000
    sk.rcvq_time = 1.0
    sk.rcvq_seq = sk.rcv_nxt
    return c, sk


def test_receive_buffer_autotuning_waits_one_rtt():
    """tcp_rcv_space_adjust measures once per RTT: before an RTT has passed
    since the last measure, nothing changes."""
    _c, sk = _autotune_conn()
    sk.rcv_nxt = (sk.rcv_nxt + 30_000) & MASK      # 30000 bytes read since
    tcp_output.tcp_rcv_space_adjust(sk, 1.2499)
    assert (sk.rcvbuf, sk.rcvq_space, sk.rcvq_time) == (50_000, 2000, 1.0)


def test_receive_buffer_grows_when_the_reader_took_more_than_last_rtt():
    """...after one RTT, if the app read more than in the last one, the
    buffer may hold 2 * (2 * copied + 16 * advmss) (Linux: rcvwin =
    2 * copied + 16 * advmss, doubled for overhead by tcp_space_from_win),
    up to tcp_rmem[2]; the measure restarts from here."""
    c, sk = _autotune_conn()
    start = sk.rcvq_seq
    sk.rcv_nxt = (start + 30_000) & MASK
    tcp_output.tcp_rcv_space_adjust(sk, 1.25)         # exactly one RTT later
    assert sk.rcvbuf == 4 * 30_000 + 16 * sk.advmss
    assert (sk.rcvq_space, sk.rcvq_seq, sk.rcvq_time) == (30_000, (start + 30_000) & MASK, 1.25)
    # less than last time: the measure moves on, the buffer stays
    sk.rcv_nxt = (sk.rcv_nxt + 1000) & MASK
    tcp_output.tcp_rcv_space_adjust(sk, 1.5)
    assert sk.rcvbuf == 4 * 30_000 + 16 * sk.advmss and sk.rcvq_space == 30_000
    assert sk.rcvq_time == 1.5
    # more than tcp_rmem[2] allows: capped
    sk.rcv_nxt = (sk.rcv_nxt + 5_000_000) & MASK
    tcp_output.tcp_rcv_space_adjust(sk, 1.75)
    assert sk.rcvbuf == c.host.settings.tcp_rmem[2]


def test_receive_buffer_counts_only_what_the_app_read():
    """copied = rcv_nxt - len(rq) - rcvq_seq: bytes still queued are not read."""
    _c, sk = _autotune_conn()
    sk.rcv_nxt = (sk.rcvq_seq + 30_000) & MASK
    sk.rq = type(sk.rq)(bytes(27_000))
    tcp_output.tcp_rcv_space_adjust(sk, 1.25)
    assert sk.rcvq_space == 3000 and sk.rcvbuf == max(50_000, 4 * 3000 + 16 * sk.advmss)


def test_no_autotuning_without_an_rtt_estimate():
    _c, sk = _autotune_conn()
    sk.rcv_rtt = 0.0
    sk.rcv_nxt = (sk.rcv_nxt + 30_000) & MASK
    tcp_output.tcp_rcv_space_adjust(sk, 100.0)
    assert (sk.rcvbuf, sk.rcvq_time) == (50_000, 1.0)


def test_the_first_measure_only_starts_the_clock():
    """With no earlier measure (rcvq_time 0) the first call records the
    starting point and grows nothing."""
    _c, sk = _autotune_conn()
    sk.rcvq_time = 0.0
    sk.rcv_nxt = (sk.rcv_nxt + 30_000) & MASK
    tcp_output.tcp_rcv_space_adjust(sk, 5.0)
    assert (sk.rcvbuf, sk.rcvq_space, sk.rcvq_time) == (50_000, 2000, 5.0)


# --- the retransmission timer (RFC 6298) ----------------------------------------------------

def test_new_data_does_not_restart_a_running_retransmission_timer():
    """RFC 6298 5.1: when data is sent, start the timer *if it is not
    running*; a second segment sent 0.1 s later leaves the deadline of the
    first in place."""
    c = passive_open()
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"a" * 100)
    first = c.recv()
    deadline = c.sk.rtx_timer.when
    assert deadline == pytest.approx(c.sk.rto)
    c.host.advance(0.1)
    c.sk.sendmsg(b"b" * 100)
    assert len(c.recv()) == 1
    assert c.sk.rtx_timer.when == deadline
    c.host.advance(deadline)
    again = c.recv()
    assert [s.key() for s in again] == [first[0].key()]


def test_the_retransmission_timer_is_started_by_the_first_segment():
    c = passive_open()
    assert not c.sk.rtx_timer.pending
    c.host.advance(2.0)
    c.sk.sendmsg(b"a" * 100)
    c.recv()
    assert c.sk.pending == 1 and c.sk.rtx_timer.when == pytest.approx(2.0 + c.sk.rto)


def test_a_retransmission_repeats_the_segment_from_the_send_queue():
    """tcp_retransmit_skb: same sequence number, same bytes (rebuilt from the
    send queue), PSH, the current ACK; RetransSegs counts each one; the
    episode's start (retrans_stamp) is this first retransmission's time
    (Linux's "stamp of the first (attempted) retransmit": tcp_retries2's
    model time and TCP_USER_TIMEOUT are measured from there)."""
    c = passive_open()
    c.host.advance(0.5)
    c.sk.sendmsg(b"r" * 100)
    orig, = c.recv()
    c.send(b"data from the peer")           # moves our ACK point
    c.recv()
    c.host.advance(0.5 + c.sk.rto)
    again, = c.recv()
    assert (again.flags, again.seq, again.ack, again.payload) == \
        (PSH | ACK, orig.seq, c.snd, b"r" * 100)
    assert c.host.mib["RetransSegs"] == 1
    assert c.sk.retrans_stamp == c.host.now == 0.5 + 1.0
    seg = c.sk.rtx[0]
    assert seg.retrans == 1 and seg.tstamp == c.host.now and c.sk.retrans_out == 1
    assert seg.sacked == 4 | 2          # TCPCB_LOST (the RTO) | TCPCB_SACKED_RETRANS


def test_a_second_retransmission_counts_once_in_flight():
    """A segment retransmitted twice is still one retransmission in flight
    (TCPCB_SACKED_RETRANS is set once: retrans_out counts segments)."""
    host, peer, sk, _syn = _syn_sent()
    host.advance(1.0)
    host.advance(3.0)
    assert [s.flags for s in peer.recv()] == [SYN, SYN]
    assert sk.retrans_out == 1 and sk.rtx[0].retrans == 2
    assert host.mib["RetransSegs"] == 2
    assert sk.retrans_stamp == 0.0


def test_a_simultaneous_open_retransmits_its_syn_as_a_synack():
    """In SYN_RECV after a simultaneous open our SYN is retransmitted with
    the ACK of the peer's SYN (Linux tcp_send_synack turns the queued SYN
    into a SYN-ACK)."""
    host, peer, _sk, syn = _syn_sent()
    peer.send(SYN, 7000, 0, 65535)
    first = peer.recv_one()
    host.advance(1.0)
    again = peer.recv_one()
    assert (again.flags, again.seq, again.ack) == (SYN | ACK, syn.seq, 7001) == \
        (first.flags, first.seq, first.ack)


# --- the FIN ----------------------------------------------------------------------------

def test_a_fin_alone_takes_one_sequence_number():
    """tcp_send_fin with nothing queued: a FIN|ACK segment at snd_nxt, kept
    for retransmission like data."""
    c = passive_open()
    nxt = c.sk.snd_nxt
    c.sk.shutdown(socket.SHUT_WR)
    fin, = c.recv()
    assert fin.key() == (FIN | ACK, nxt, c.snd, b"")
    assert c.sk.snd_nxt == (nxt + 1) & MASK and c.sk.packets_out == 1
    assert c.sk.rtx[-1].flags & FIN
    c.sk.shutdown(socket.SHUT_WR)           # a second shutdown queues nothing more
    assert c.recv() == [] and c.sk.snd_nxt == (nxt + 1) & MASK


def test_the_fin_rides_on_the_last_data_segment_past_nagle():
    """Linux tcp_send_fin: the FIN goes on the last queued segment, which is
    pushed with Nagle off (TCP_NAGLE_OFF)."""
    c = passive_open()
    c.sk.sendmsg(b"abc")
    first, = c.recv()
    c.sk.sendmsg(b"de")                     # held: a small segment is unacked
    assert c.recv() == []
    c.sk.shutdown(socket.SHUT_WR)
    fin, = c.recv()
    assert fin.key() == (FIN | PSH | ACK, (first.seq + 3) & MASK, c.snd, b"de")
    assert c.sk.snd_nxt == (first.seq + 6) & MASK


def _data_and_fin_waiting(data: bytes):
    c = passive_open()
    c.send(window=0)
    c.sk.sendmsg(data)
    c.sk.shutdown(socket.SHUT_WR)
    assert c.recv() == []
    return c


def test_a_data_and_fin_segment_waits_until_the_fin_fits_the_window():
    """The FIN takes sequence space: a segment of data + FIN is sent only if
    its end, FIN included, is within SND.UNA + SND.WND (tcp_snd_wnd_test on
    the skb's end_seq)."""
    c = _data_and_fin_waiting(b"x" * 100)
    start = c.sk.snd_nxt
    c.send(window=100)
    assert c.recv() == []
    c.send(window=101)
    seg, = c.recv()
    assert seg.key() == (FIN | PSH | ACK, start, c.snd, b"x" * 100)


def test_a_fin_is_retransmitted_with_the_data_it_rode_on():
    c = _data_and_fin_waiting(b"abc")
    c.send(window=1000)
    first, = c.recv()
    c.host.advance(c.host.now + c.sk.rto)
    again = c.recv()
    assert [s.key() for s in again] == [first.key()] == \
        [(FIN | PSH | ACK, first.seq, c.snd, b"abc")]


# --- the persist timer (zero window) -------------------------------------------------------

@pytest.mark.parametrize("n", [1, 10])
def test_the_persist_timer_is_armed_when_data_waits_on_a_zero_window(n):
    """RFC 9293 3.8.6.1 / RFC 1122 4.2.2.17: nothing in flight, data waiting
    (even one byte), window zero: the probe timer (ICSK_TIME_PROBE0) runs,
    at max(RTO, rto_min) << backoff."""
    c = passive_open()
    c.send(window=0)
    c.host.advance(1.0)
    c.sk.sendmsg(b"z" * n)
    assert c.recv() == []
    sk = c.sk
    assert sk.pending == 3
    assert sk.rtx_timer.when == pytest.approx(1.0 + max(sk.rto, 0.2))


def test_more_data_does_not_push_the_persist_timer_back():
    """Linux tcp_check_probe_timer arms the timer only if none is pending:
    the app writing more does not delay the next probe."""
    c = passive_open()
    c.send(window=0)
    c.sk.sendmsg(b"z" * 10)
    when = c.sk.rtx_timer.when
    c.host.advance(0.1)
    c.sk.sendmsg(b"y" * 10)
    assert c.sk.rtx_timer.when == when and c.sk.pending == 3


def test_the_cc_module_hears_of_transmission_after_idle():
    """tcp_event_data_sent: the first segment with nothing in flight tells the
    congestion control module (CA_EVENT_TX_START; CUBIC moves its epoch so
    the idle time does not count as growth time); later segments do not."""
    from tcpio.core.tcp.tcp_cong import CA_EVENT_TX_START

    c = passive_open(syn_opts=TcpOptions(mss=1000))
    sk = c.sk
    events = []
    real = sk.ca_ops

    class Recorder:
        def __getattr__(self, name):
            return getattr(real, name)

        def cwnd_event(self, tp, event, now=None):
            events.append((event, now))
            return real.cwnd_event(tp, event, now)

    sk.ca_ops = Recorder()
    c.host.advance(3.0)
    sk.sendmsg(b"a" * 3000)
    assert len(c.recv()) == 3
    assert events == [(CA_EVENT_TX_START, 3.0)]
    sk.sendmsg(b"b" * 1000)
    c.recv()
    assert events == [(CA_EVENT_TX_START, 3.0)]


def test_the_persist_timer_is_armed_for_a_fin_alone():
    c = passive_open()
    c.send(window=0)
    c.sk.shutdown(socket.SHUT_WR)
    assert c.recv() == [] and c.sk.pending == 3


def test_no_persist_timer_without_anything_to_send():
    c = passive_open()
    c.send(window=0)
    tcp_output.tcp_write_xmit(c.sk, c.host.now)
    assert c.sk.pending == 0 and not c.sk.rtx_timer.pending


@pytest.mark.parametrize("backoff", [0, 1, 3, 9, 40, 2000])
def test_probe_interval_backs_off_exponentially_up_to_rto_max(backoff):
    """tcp_probe0_when: tcp_probe0_base << icsk_backoff, at most tcp_rto_max."""
    c = passive_open()
    sk = c.sk
    sk.backoff = backoff
    base = max(sk.rto, c.host.settings.tcp_rto_min)
    # (the backoff keeps counting while a peer holds its window at zero for
    # hours; the interval stays rto_max, never a float overflow)
    assert tcp_output.tcp_probe0_when(sk) == min(base * 2.0 ** min(backoff, 100),
                                                 c.host.settings.tcp_rto_max)


def test_probe_interval_uses_the_rto_floor():
    c = passive_open(settings=Settings(tcp_rto_min=1.5))
    sk = c.sk
    sk.backoff = 1
    assert sk.rto < 1.5
    assert tcp_output.tcp_probe0_when(sk) == 3.0


# --- cwnd restart after idle (RFC 7661 / Linux tcp_cwnd_restart) ---------------------------------

@pytest.mark.parametrize("cwnd, idle_rtos, expect", [
    (64, 0.5, 64),       # not idle for a whole RTO: unchanged
    (64, 1.5, 32),       # halved once per RTO idle beyond the first
    (64, 2.0, 32),       # (delta -= rto) > 0: exactly two RTOs halve once
    (64, 2.5, 16),
    (64, 20.5, 10),      # ...not below the initial window
    (8, 20.5, 8),        # a cwnd below the initial window is kept
])
def test_cwnd_restarts_after_an_idle_period(cwnd, idle_rtos, expect):
    """RFC 7661 / Linux tcp_cwnd_restart (slow start after idle): idle for
    more than an RTO, cwnd is halved for every RTO of idle time beyond the
    first, not below min(initial window, cwnd)."""
    from tcpio.core.tcp.tcp_rtt import RttEstimator
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    sk = c.sk
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.sndbuf = 1 << 20
    sk.sendmsg(b"a")
    c.ack_all(c.recv())
    c.send()
    sk.snd_cwnd = cwnd
    sk.rtt_est = RttEstimator(0.5, 0.2, 120.0)     # an RTO of exactly 0.5 s
    assert sk.lsndtime == 0.0
    c.host.advance(idle_rtos * 0.5)
    sk.sendmsg(b"b" * 100_000)
    assert len(c.recv()) == expect == sk.packets_out
    assert sk.lsndtime == idle_rtos * 0.5


# --- window updates after a read (tcp_cleanup_rbuf) --------------------------------------------

def _reader(rcvbuf: int, rcv_wnd: int, **kw):
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    sk = c.sk
    sk.rcv_mss = sk.advmss = 1000
    sk.rcvbuf, sk.rcv_wnd, sk.rcv_wup = rcvbuf, rcv_wnd, sk.rcv_nxt
    sk.ack_pending, sk.quick = False, 0
    for k, v in kw.items():
        setattr(sk, k, v)
    c.recv()
    return c, sk


@pytest.mark.parametrize("rcvbuf, rcv_wnd, acked", [
    (10_000, 2000, True),      # 2000 -> 10000
    (10_000, 5000, True),      # exactly doubled
    (10_000, 5001, False),     # 5001 -> 10000: not quite
    (1999, 0, True),           # 0 -> 1000: one MSS
    (1999, 400, False),        # 400 -> 1000: doubled, but by less than an MSS
])
def test_a_read_sends_a_window_update_when_the_window_doubles_by_an_mss(rcvbuf, rcv_wnd,
                                                                        acked):
    """Receiver SWS avoidance on window updates (RFC 1122 4.2.3.3, Linux
    tcp_cleanup_rbuf): after the app reads, a window update goes out when the
    window it can now offer is at least twice what the peer still has and at
    least one MSS more."""
    c, sk = _reader(rcvbuf, rcv_wnd)
    tcp_output.tcp_cleanup_rbuf(sk, c.host.now)
    segs = c.recv()
    assert len(segs) == int(acked)
    if acked:
        assert segs[0].key() == (ACK, sk.snd_nxt, c.snd, b"")


def test_no_window_update_when_the_peer_will_send_nothing_more():
    """Not in CLOSE_WAIT (the peer's FIN is in) nor after SHUT_RD, unless an
    ACK is owed anyway."""
    c, sk = _reader(10_000, 2000)
    sk.state = TCP_CLOSE_WAIT
    tcp_output.tcp_cleanup_rbuf(sk, c.host.now)
    assert c.recv() == []
    c, sk = _reader(10_000, 2000)
    sk.shutdown(socket.SHUT_RD)
    c.recv()
    tcp_output.tcp_cleanup_rbuf(sk, c.host.now)
    assert c.recv() == []


@pytest.mark.parametrize("state", [TCP_FIN_WAIT1, TCP_FIN_WAIT2])
def test_window_updates_continue_after_our_fin(state):
    c, sk = _reader(10_000, 2000)
    sk.state = state
    tcp_output.tcp_cleanup_rbuf(sk, c.host.now)
    assert len(c.recv()) == 1


@pytest.mark.parametrize("quick, unacked, acked", [
    (1, 0, True),              # quick-ACK mode: the owed ACK goes now
    (0, 1001, True),           # more than one segment unacknowledged
    (0, 1000, False),          # one full segment: the window rule decides (no change)
])
def test_an_owed_ack_goes_out_with_the_read(quick, unacked, acked):
    """tcp_cleanup_rbuf: an ACK is scheduled and either quick-ACK mode or
    more than one full segment is unacknowledged (the once-per-two-segments
    ACK that __tcp_ack_snd_check held back): send it at the read."""
    c, sk = _reader(10_000, 9000, ack_pending=True, quick=quick)
    sk.rcv_wup = (sk.rcv_nxt - unacked) & MASK
    sk.rcv_wnd = 9000 + unacked              # what is left of the offer stays 9000
    tcp_output.tcp_cleanup_rbuf(sk, c.host.now)
    assert len(c.recv()) == int(acked)


def test_an_owed_ack_goes_out_even_in_close_wait():
    c, sk = _reader(10_000, 9000, ack_pending=True, quick=1)
    sk.state = TCP_CLOSE_WAIT
    tcp_output.tcp_cleanup_rbuf(sk, c.host.now)
    assert len(c.recv()) == 1


# --- options after the handshake (tcp_established_options) ---------------------------------

def test_no_sack_option_to_a_peer_that_did_not_permit_sack():
    """RFC 2018 2: SACK blocks only go to a peer whose SYN carried
    SACK-permitted; an out-of-order segment still gets its duplicate ACK."""
    c = passive_open(syn_opts=TcpOptions(mss=1460))
    c.send(b"h" * 100, seq=c.snd + 1000)
    ack, = c.recv()
    assert ack.ack == c.snd
    assert ack.opts is None or not ack.opts.sack_blocks
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"x")
    data, = c.recv()
    assert data.opts is None or not data.opts.sack_blocks


def test_without_timestamps_a_dsack_and_four_sack_blocks_make_four_blocks():
    """40 bytes of options hold 4 blocks (RFC 2018 3): with a D-SACK pending
    the D-SACK and the three most recent SACK blocks go."""
    c = _sack_conn(False)
    c.send(b"a" * 100)
    for k in range(1, 6):                   # five holes, four blocks kept
        c.send(b"h" * 10, seq=c.snd + 100 * k)
    c.recv()
    assert len(c.sk.sack_blocks) == 4
    c.send(b"a" * 10, seq=c.snd - 10)      # an old duplicate: D-SACK
    ack, = c.recv()
    assert ack.opts.sack_blocks == (((c.snd - 10) & MASK, c.snd), *c.sk.sack_blocks[:3])


def test_a_dsack_that_does_not_fit_is_dropped_not_delayed():
    """With no room for a block (a near-full segment), the D-SACK is not
    sent and not kept for a later segment: it reports one arrival."""
    c = _sack_conn(True)
    sk = c.sk
    sk.dsack = (5, 10)
    assert tcp_output._established_options(sk, c.host.now, sk.mss_cache - 11)[2] == ()
    assert sk.dsack is None
    sk.dsack = (5, 10)
    assert tcp_output._established_options(sk, c.host.now, sk.mss_cache - 12)[2] == ((5, 10),)
    assert sk.dsack is None


def test_an_ack_sent_clears_the_owed_ack():
    """tcp_event_ack_sent: any segment carrying the ACK (here data) settles
    the ACK owed: no delayed ACK timer, nothing pending."""
    c = passive_open()
    c.send(b"q")                              # quick-ACK mode: ACKed at once
    c.recv()
    c.sk.quick = 0
    c.send(b"y")
    assert c.sk.ack_pending and c.sk.delack_timer.pending
    c.sk.sendmsg(b"reply")
    assert not c.sk.ack_pending and not c.sk.delack_timer.pending


def test_the_receive_window_left_is_never_negative():
    """tcp_receive_window: rcv_wup + rcv_wnd - rcv_nxt, or 0 when the peer
    sent past the offer."""
    c = passive_open()
    sk = c.sk
    sk.rcv_wup, sk.rcv_wnd = (sk.rcv_nxt - 2000) & MASK, 1000
    assert tcp_output.tcp_receive_window(sk) == 0
    sk.rcv_wnd = 2500
    assert tcp_output.tcp_receive_window(sk) == 500


def test_receive_buffer_does_not_grow_when_the_reader_took_the_same():
    """tcp_rcv_space_adjust: copied <= rcvq_space is no growth (Linux: goto
    new_measure)."""
    _c, sk = _autotune_conn()
    sk.rcvbuf = 10_000
    sk.rcv_nxt = (sk.rcvq_seq + 2000) & MASK
    tcp_output.tcp_rcv_space_adjust(sk, 1.25)
    assert (sk.rcvbuf, sk.rcvq_space, sk.rcvq_time) == (10_000, 2000, 1.25)


def test_sack_blocks_never_push_the_payload_below_48_bytes():
    """tcp_write_xmit sizes segments to the MSS minus the SACK option, but
    not below 48 bytes (TCP_MIN_SND_MSS, Linux's floor since CVE-2019-11477)."""
    c = _sack_conn(True)
    c.send(b"a" * 10, opts=_opts(c, True))
    c.send(b"h" * 10, seq=c.snd + 100, opts=_opts(c, True))
    c.recv()
    sk = c.sk
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.max_window = 48                        # segments of at most 48 bytes
    sk.snd_wnd = 1000
    sk.sendmsg(b"z" * 200)
    assert [len(s.payload) for s in c.recv()] == [48, 48, 48, 48, 8]


def test_sending_data_turns_a_pending_persist_timer_into_the_rto():
    """RFC 6298 5.1 / RFC 9293 3.8.6.1: once data is in flight the
    retransmission timer runs, not the zero-window probe timer."""
    c = passive_open()
    sk = c.sk
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.send(window=0)
    sk.sendmsg(b"p" * 10)
    assert sk.pending == 3
    sk.snd_wnd = 1000                        # (as if the window opened unseen)
    c.host.now = 0.5
    assert tcp_output.tcp_write_xmit(sk, 0.5) is True
    assert len(c.recv()) == 1
    assert sk.pending == 1 and sk.rtx_timer.when == pytest.approx(0.5 + sk.rto)


def test_the_send_loop_records_that_cwnd_stopped_it():
    """tcp_cwnd_validate: the congestion window, not the application, limited
    the burst (is_cwnd_limited, for tcp_is_cwnd_limited); running out of data
    does not set it."""
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    sk = c.sk
    sk.sendmsg(b"a" * 5000)
    assert len(c.recv()) == 5 and not sk.is_cwnd_limited
    sk.sendmsg(b"b" * 10_000)
    assert len(c.recv()) == 5 and sk.is_cwnd_limited


def test_outsegs_counts_every_segment_sent():
    """RFC 4022 tcpOutSegs (Linux OutSegs): SYN-ACK, ACKs, data, FIN and RST,
    each counted once, whichever path built it."""
    c = passive_open()
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.send(b"x")
    c.sk.sendmsg(b"a" * 100)
    c.sk.sendmsg(b"b" * 100)
    c.sk.shutdown(socket.SHUT_WR)
    c.peer.send(ACK, 5, 5, 0, sport=c.peer.port + 1)      # unknown connection: RST
    assert c.host.mib["OutSegs"] == 1 + 1 + 2 + 1 + 1 == len(c.host.sent) + 1


def test_a_peer_timestamp_of_zero_is_echoed_as_zero():
    """RFC 7323 3.2: TSecr carries TS.Recent, whatever its value, 0 included
    (here a request sock's ACK for an out-of-window segment, RFC 9293
    3.10.7.4, built from a timestamp-only options record)."""
    host = FakeHost()
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, 80)
    ls.listen(8)
    peer.send(SYN, 5000, 0, 65535, opts=TcpOptions(mss=1460, ts_val=0, ts_ecr=0))
    synack = peer.recv_one()
    assert synack.opts.ts_ecr == 0
    peer.send(ACK, 5001 + 100_000, synack.seq + 1, 65535, b"far",
              opts=TcpOptions(ts_val=0, ts_ecr=synack.opts.ts_val))
    ack = peer.recv_one()
    assert (ack.flags, ack.seq, ack.ack) == (ACK, synack.seq + 1, 5001)
    assert (ack.opts.ts_val, ack.opts.ts_ecr) == (synack.opts.ts_val, 0)


def test_a_one_byte_segment_is_retransmitted_with_its_byte():
    c = passive_open()
    c.sk.sendmsg(b"!")
    first, = c.recv()
    c.host.advance(c.host.now + c.sk.rto)
    again, = c.recv()
    assert again.key() == first.key() == (PSH | ACK, first.seq, c.snd, b"!")


def test_a_retransmission_counts_in_flight_even_if_the_segment_was_sacked():
    """RFC 6675 pipe: a retransmitted copy is in the network; retrans_out
    counts it (TCPCB_SACKED_RETRANS) whatever else is marked on the segment
    (here a SACK from a reneging receiver, then an RTO retransmits the head)."""
    c = _sack_conn(True)
    sk = c.sk
    sk.sendmsg(b"s" * 100)
    c.recv()
    seg = sk.rtx[0]
    seg.sacked = 1
    sk.sacked_out = 1
    tcp_output.tcp_retransmit_skb(sk, seg, c.host.now)
    assert seg.sacked & 2 and sk.retrans_out == 1
    assert sk.tcp_packets_in_flight == 1


@pytest.mark.parametrize("timestamps", [1, 0])
def test_the_mss_follows_an_mtu_one_byte_under_it(timestamps):
    """When the interface MTU drops one byte under a connection's MSS, the
    MSS is synced to it before the next send (tcp_current_mss: dst_mtu !=
    icsk_pmtu_cookie), so no datagram on the wire exceeds the MTU and none is
    fragmented: TCP sets DF, as Linux does.  (It asserted fragmentation while
    TCP sent without DF.)"""
    from tcpio.core.sim import VirtualNetwork

    from .helpers import sim_connect
    net = VirtualNetwork(seed=4)
    a, b = net.host("a"), net.host("b")
    a.settings.tcp_timestamps = b.settings.tcp_timestamps = timestamps
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    c, s = sim_connect(net, a, b)
    assert c.mss_cache == (1448 if timestamps else 1460)
    a.set_mtu(1, 1499)
    data = bytes(range(256)) * 40
    sent = [0]
    got = bytearray()

    def pump() -> bool:
        if sent[0] < len(data):
            sent[0] += c.sendmsg(memoryview(data)[sent[0]:])
        while s.readable():
            got.extend(s.recvmsg(1 << 20))
        return len(got) == len(data)

    start = len(link.capture)
    assert net.run_until(pump, 60)
    assert bytes(got) == data
    assert a.mib["FragCreates"] == 0
    assert c.mss_cache == (1447 if timestamps else 1459)
    ip_lengths = [int.from_bytes(f[16:18], "big") for _t, f in link.capture[start:]
                  if f[12:14] == b"\x08\x00"]
    assert max(ip_lengths) <= 1499


@pytest.mark.parametrize("timestamps", [1, 0])
def test_full_size_data_segments_take_the_burst_path(monkeypatch, timestamps):
    """docs/internals.md: tcp_write_xmit hands plain data to the compiled
    loop (tcp_fast.write_xmit) when the route takes whole frames; a full
    segment (20 + 20 [+ 12] + MSS = the MTU) fits exactly, with or without
    timestamps, so a clean bulk transfer goes out that way."""
    from tcpio.core.sim import VirtualNetwork

    from .helpers import sim_connect
    real = tcp_output._tcp_fast
    burst = [0]

    class Counting:
        def __getattr__(self, name):
            return getattr(real, name)

        def write_burst(self, *args):
            n = real.write_burst(*args)
            burst[0] += n
            return n

    monkeypatch.setattr(tcp_output, "_tcp_fast", Counting())
    net = VirtualNetwork(seed=5)
    a, b = net.host("a"), net.host("b")
    a.settings.tcp_timestamps = b.settings.tcp_timestamps = timestamps
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    c, s = sim_connect(net, a, b)
    data = bytes(300_000)
    sent = [0]
    got = [0]

    def pump() -> bool:
        if sent[0] < len(data):
            sent[0] += c.sendmsg(memoryview(data)[sent[0]:])
        while s.readable():
            got[0] += len(s.recvmsg(1 << 20))
        return got[0] == len(data)

    assert net.run_until(pump, 60)
    assert burst[0] >= 0.9 * len(data) / c.mss_cache
    # "Returns True if anything was sent": nothing left, False
    assert tcp_output.tcp_write_xmit(c, net.now) is False


def test_an_abort_with_an_error_reports_it():
    """tcp_abort_with_reset(sk, now, err): RST to the peer, the sock closed,
    and ``err`` pending for the user (sk_err)."""
    import errno
    c = passive_open()
    tcp_output.tcp_abort_with_reset(c.sk, c.host.now, errno.ECONNABORTED)
    assert [s.flags for s in c.recv()] == [RST | ACK]
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == errno.ECONNABORTED
    c = passive_open()
    tcp_output.tcp_abort_with_reset(c.sk, c.host.now, 0)
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == 0


# --- retransmitting what is marked lost (tcp_xmit_retransmit_queue) ----------------------------

def _scoreboard(marks: list[int], cwnd: int, hint_index: int | None = None, size: int = 100):
    """A SACK connection with len(marks) segments of ``size`` bytes out,
    marked as given (TCPCB_* bits), counters to match, cwnd as given."""
    c = passive_open(syn_opts=TcpOptions(mss=100, sack_ok=True))
    sk = c.sk
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.snd_cwnd = len(marks)
    for i in range(len(marks)):
        sk.sendmsg(bytes(range(i, i + size)))
    out = c.recv()
    assert len(out) == len(marks) == len(sk.rtx)
    for seg, m in zip(sk.rtx, marks, strict=True):
        seg.sacked = m
    sk.sacked_out = sum(1 for m in marks if m & 1)
    sk.lost_out = sum(1 for m in marks if m & 4 and not m & 1)
    sk.retrans_out = sum(1 for m in marks if m & 2)
    sk.snd_cwnd = cwnd
    sk.retransmit_hint = None if hint_index is None else sk.rtx[hint_index].seq
    return c, sk, out


def test_lost_segments_are_retransmitted_in_order_while_pipe_is_below_cwnd():
    """RFC 6675 5 (NextSeg rule 1, "while pipe < cwnd"): the lost segments
    not SACKed and not yet retransmitted go again, lowest first, one per
    unit of cwnd above pipe; the walk remembers where it stopped."""
    #        0  1  2      3  4  5  6  7
    marks = [4, 1, 4 | 2, 4, 4, 0, 0, 0]
    c, sk, out = _scoreboard(marks, cwnd=6)
    assert sk.tcp_packets_in_flight == 4
    tcp_output.tcp_xmit_retransmit_queue(sk, c.host.now)
    again = c.recv()
    assert [s.seq for s in again] == [out[0].seq, out[3].seq]
    assert [s.payload for s in again] == [out[0].payload, out[3].payload]
    assert sk.tcp_packets_in_flight == 6 and sk.retrans_out == 3
    assert sk.retransmit_hint == out[4].seq
    assert c.host.mib["RetransSegs"] == 2


def test_nothing_is_retransmitted_when_pipe_fills_cwnd():
    c, sk, _out = _scoreboard([4, 0, 0, 0], cwnd=3)
    assert sk.tcp_packets_in_flight == 3
    tcp_output.tcp_xmit_retransmit_queue(sk, c.host.now)
    assert c.recv() == [] and sk.retrans_out == 0


def test_nothing_is_retransmitted_without_lost_segments():
    c, sk, _out = _scoreboard([0, 1, 2, 0], cwnd=20)
    tcp_output.tcp_xmit_retransmit_queue(sk, c.host.now)
    assert c.recv() == []


def test_the_walk_resumes_at_the_retransmit_hint():
    """Linux's retransmit_skb_hint: the walk starts where the last one
    stopped (whoever marks an earlier segment lost moves the hint back), so
    a long queue is not rescanned on every ACK."""
    c, sk, out = _scoreboard([4, 4, 4, 4, 0], cwnd=20, hint_index=2)
    tcp_output.tcp_xmit_retransmit_queue(sk, c.host.now)
    assert [s.seq for s in c.recv()] == [out[2].seq, out[3].seq]
    assert sk.retransmit_hint == sk.snd_nxt


def test_a_hint_at_snd_una_walks_from_the_head():
    c, sk, out = _scoreboard([4, 4, 0], cwnd=20, hint_index=0)
    tcp_output.tcp_xmit_retransmit_queue(sk, c.host.now)
    assert [s.seq for s in c.recv()] == [out[0].seq, out[1].seq]


def test_a_hint_one_byte_past_snd_una_skips_the_head():
    c, sk, out = _scoreboard([4, 4, 0], cwnd=20, hint_index=1, size=1)
    assert sk.retransmit_hint == (sk.snd_una + 1) & MASK
    tcp_output.tcp_xmit_retransmit_queue(sk, c.host.now)
    assert [s.seq for s in c.recv()] == [out[1].seq]


def test_without_a_hint_the_walk_starts_at_the_head():
    """One unit of cwnd free: the lowest lost segment goes, not a later one."""
    c, sk, out = _scoreboard([4, 0, 4], cwnd=2)
    assert sk.tcp_packets_in_flight == 1
    tcp_output.tcp_xmit_retransmit_queue(sk, c.host.now)
    assert [s.seq for s in c.recv()] == [out[0].seq]


def test_retransmitting_the_head_starts_a_stopped_timer():
    """RFC 6298 5.1: a retransmission of the head with no timer running
    starts the retransmission timer..."""
    c, sk, _out = _scoreboard([4, 0], cwnd=20)
    sk.rtx_timer.cancel()
    c.host.now = 0.25
    tcp_output.tcp_xmit_retransmit_queue(sk, 0.25)
    assert len(c.recv()) == 1
    assert sk.rtx_timer.when == pytest.approx(0.25 + sk.rto) and sk.pending == 1


def test_retransmitting_leaves_a_running_timer_alone():
    """...and leaves a running one as it is (only an ACK of new data
    restarts it, RFC 6298 5.3); a later segment's retransmission does not
    start it either."""
    c, sk, _out = _scoreboard([4, 0], cwnd=20)
    deadline = sk.rtx_timer.when
    c.host.now = 0.25
    tcp_output.tcp_xmit_retransmit_queue(sk, 0.25)
    assert len(c.recv()) == 1 and sk.rtx_timer.when == deadline
    c, sk, _out = _scoreboard([0, 4], cwnd=20)
    sk.rtx_timer.cancel()
    tcp_output.tcp_xmit_retransmit_queue(sk, 0.25)
    assert len(c.recv()) == 1 and not sk.rtx_timer.pending


def test_a_syn_offers_a_full_65535_byte_window():
    """RFC 7323 2.2: the SYN's window is unscaled, at most 65535; an initial
    window of exactly 65535 (whole 1285-byte segments on a 1325-byte MTU
    route) is offered in full."""
    host = FakeHost(mtu=1325)
    peer = Peer(host)
    sk = host.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    syn = peer.recv_one()
    assert syn.opts.mss == 1285 and sk.rcv_wnd == 65535
    assert syn.window == 65535



def _sim_pair(seed: int = 6):
    from tcpio.core.sim import VirtualNetwork

    from .helpers import sim_connect
    net = VirtualNetwork(seed=seed)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    c, s = sim_connect(net, a, b)
    net.run(net.now + 1.0)
    return net, c, s


def test_data_from_the_burst_path_carries_the_owed_ack():
    """tcp_event_ack_sent for the burst path (tcp_fast.write_xmit): the data
    segment carries the ACK owed, so the delayed ACK is cancelled and
    nothing is owed any more; the send time is the connection's lsndtime."""
    net, c, s = _sim_pair()
    s.quick, s.got_data = 0, True          # past the quick-ACK start
    c.sendmsg(b"request")
    assert net.run_until(lambda: s.readable(), 5)
    assert s.ack_pending and s.delack_timer.pending
    s.sendmsg(b"reply")
    assert not s.ack_pending and not s.delack_timer.pending
    assert s.lsndtime == net.now


def test_data_to_ourselves_from_a_user_call_arrives_when_the_call_returns():
    """Loopback from a user call is held while the send loop runs (the
    kernel's socket backlog) and delivered when it ends (release_sock), not
    left for the next timer."""
    from tcpio.core.sim import VirtualNetwork

    from .helpers import sim_connect
    net = VirtualNetwork(seed=7)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    c, s = sim_connect(net, a, a, "10.0.0.1")
    net.run(net.now + 1.0)
    c.sendmsg(b"to myself")
    assert s.readable() == 9


def test_an_active_open_has_nothing_in_flight_after_the_handshake():
    """tcp_connect queues the SYN as one packet in flight; the SYN-ACK
    acknowledges it, leaving nothing outstanding, so the first flight is
    the full initial window (RFC 6928: 10 segments)."""
    from .helpers import active_open
    c = active_open(synack_opts=TcpOptions(mss=1000))
    assert c.sk.packets_out == 0 and c.sk.rtx == []
    c.sk.sendmsg(b"i" * 50_000)
    assert len(c.recv()) == 10



def test_a_retransmitted_syn_follows_the_sysctls_at_the_time():
    """tcp_syn_options reads the sysctls when the SYN is built (Linux
    tcp_syn_options: sysctl_tcp_sack): SACK turned off before the
    retransmission, the retransmitted SYN offers no SACK-permitted."""
    host, peer, _sk, syn = _syn_sent()
    assert syn.opts.sack_ok
    host.settings.tcp_sack = 0
    host.advance(1.0)
    again = peer.recv_one()
    assert again.flags == SYN and again.seq == syn.seq and not again.opts.sack_ok


def test_a_reset_for_an_unknown_connection_has_no_options_or_urgent_pointer():
    """tcp_v4_send_reset: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (RFC 9293
    3.10.7.1) with no options (Linux sends no timestamp in a stateless RST)
    and a zero urgent pointer."""
    host = FakeHost()
    peer = Peer(host)
    peer.send(SYN, 0xFFFFFFF0, 0, 1000, b"abcdefghijklmnopqrst",
              opts=TcpOptions(mss=1000, ts_val=7, ts_ecr=0))
    rst = peer.recv_one()
    assert (rst.flags, rst.seq, rst.ack) == (RST | ACK, 0, (0xFFFFFFF0 + 21) & MASK)
    assert rst.opts.ts_val is None and rst.opts.mss is None and rst.urg_ptr == 0


def test_a_synack_has_a_zero_urgent_pointer():
    host = FakeHost()
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, 80)
    ls.listen(8)
    peer.send(SYN, 5000, 0, 65535, opts=TcpOptions(mss=1460))
    synack = peer.recv_one()
    assert synack.flags == SYN | ACK and synack.urg_ptr == 0
