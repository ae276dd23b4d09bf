"""SYN-RECEIVED as a request sock: what each segment to it does (tcp_check_req),
the SYN-ACK and its retransmission, and the child it turns into.

Linux keeps a half-open passive connection as a request sock
(net/ipv4/tcp_minisocks.c); RFC 9293 3.10.7.4 says what SYN-RECEIVED does with
each segment, RFC 7323 5.3 adds PAWS.  The peer is played by hand and every
segment out is checked field by field.  Without options the listener
advertises 44 x 1460 = 64240 bytes (MTU 1500, rcvbuf 128 KiB capped at 65535,
whole segments), unscaled.
"""

from __future__ import annotations

import errno
import socket
from types import SimpleNamespace

import pytest

from tcpio.core.qdisc import NET_XMIT_CN, NET_XMIT_DROP, NET_XMIT_SUCCESS
from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .helpers import (
    ACK,
    LOCAL,
    LPORT,
    PEER_ISS,
    PSH,
    REMOTE,
    RPORT,
    RST,
    SYN,
    FakeHost,
    Peer,
    TcpOptions,
)

RCV_WND = 64240          # 44 whole 1460-byte segments below 65535
RCV_WND_TS = 65160       # 45 x 1448 when timestamps take 12 bytes of each segment


def _syn_recv(settings: Settings | None = None, opts=None, backlog: int = 8, setup=None):
    """A listener on LPORT and a peer whose SYN (ISN PEER_ISS) got a SYN-ACK."""
    host = FakeHost(settings=settings)
    peer = Peer(host)
    ls = host.tcp.socket()
    if setup:
        setup(ls)
    ls.bind(0, LPORT)
    ls.listen(backlog)
    peer.send(SYN, PEER_ISS, opts=opts)
    synack = peer.recv_one()
    assert synack.flags == SYN | ACK and synack.ack == PEER_ISS + 1
    return SimpleNamespace(host=host, peer=peer, ls=ls, synack=synack, iss=synack.seq,
                           rcv_nxt=PEER_ISS + 1)


def _completes(r) -> bool:
    """The third ACK now creates the child (so the request was still there)."""
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    child = r.ls.accept()
    return child is not None and child.state == TCP_ESTABLISHED


def _plain_ack(r, window: int = RCV_WND) -> tuple:
    """<SEQ=ISS+1><ACK=RCV.NXT><CTL=ACK>, the request sock's answer to junk."""
    return (ACK, r.iss + 1, r.rcv_nxt, window)


def _fields(seg) -> tuple:
    return (seg.flags, seg.seq, seg.ack, seg.window)


# --- the acceptability test (tcp_in_window) ---------------------------------------
def test_old_duplicate_ending_at_rcv_nxt_is_out_of_window_and_gets_an_ack():
    """RFC 9293 3.10.7.4: a segment is acceptable only if it starts or ends
    inside [RCV.NXT, RCV.NXT + RCV.WND); one that ends just before RCV.NXT is an
    old duplicate: ACK it, drop it, and do not let it complete the handshake
    (Linux tcp_check_req/tcp_in_window; checked against Linux 6.18)."""
    r = _syn_recv()
    r.peer.send(ACK, PEER_ISS, r.iss + 1, payload=b"x")     # [ISN, ISN+1): the SYN's slot
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None
    assert _completes(r)


def test_data_starting_at_the_right_window_edge_is_out_of_window():
    """RFC 9293 3.10.7.4: SEG.SEQ must be below RCV.NXT + RCV.WND for a
    segment with data; one starting at the edge gets an ACK, no child."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND, r.iss + 1, payload=b"x")
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None
    assert _completes(r)


def test_last_byte_inside_the_window_is_acceptable():
    """Data that starts before the right edge overlaps the window: the ACK
    completes the handshake (the data itself is then the child's business)."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND - 1, r.iss + 1, payload=b"x")
    child = r.ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED


def test_empty_ack_at_the_right_window_edge_completes_the_handshake():
    """Linux's tcp_in_window also takes an empty segment at RCV.NXT + RCV.WND
    (checked against Linux 6.18: the connection is established)."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND, r.iss + 1)
    child = r.ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED


def test_empty_ack_just_past_the_right_window_edge_gets_an_ack():
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt + RCV_WND + 1, r.iss + 1)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None


def test_old_empty_ack_below_rcv_nxt_gets_an_ack():
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt - 1, r.iss + 1)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.ls.accept() is None
    assert _completes(r)


def test_data_overlapping_rcv_nxt_from_below_is_acceptable():
    """Starts before RCV.NXT, ends after it: its last byte is in the window."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt - 2, r.iss + 1, payload=b"abcd")
    child = r.ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED


# --- the child (tcp_create_openreq_child) -------------------------------------------
def test_child_send_window_is_the_third_acks_not_the_syns():
    """SND.WND and MAX.SND.WND start from the third ACK's window (scaled): the
    SYN's is stale.  Linux then bounds segments to half the largest window
    the peer offered (tcp_bound_to_half_wnd): 1000 bytes go as 500 + 500
    (Linux 6.18, with the same SYN window 65535 and ACK window 1000)."""
    r = _syn_recv(opts=TcpOptions(mss=1460))
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=1000)
    child = r.ls.accept()
    assert (child.snd_wnd, child.max_window) == (1000, 1000)
    child.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    child.sendmsg(b"d" * 1000)
    assert [(s.seq, len(s.payload)) for s in r.peer.recv()] == [(r.iss + 1, 500),
                                                                (r.iss + 501, 500)]


def test_child_send_window_is_scaled_by_the_peers_shift():
    """RFC 7323 2.3: after the handshake the peer's window field is shifted by
    the scale its SYN announced."""
    r = _syn_recv(opts=TcpOptions(mss=1460, wscale=3))
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=250)
    child = r.ls.accept()
    assert (child.snd_wnd, child.max_window) == (2000, 2000)


# --- RST (RFC 5961 3.2) ---------------------------------------------------------------
def test_rst_at_rcv_nxt_drops_the_request_silently():
    r = _syn_recv()
    r.peer.send(RST, r.rcv_nxt)
    assert r.peer.recv() == [] and len(r.ls.syn_queue) == 0
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)           # now it meets the listener
    assert [s.key() for s in r.peer.recv()] == [(RST, r.iss + 1, 0, b"")]


def test_in_window_rst_not_at_rcv_nxt_gets_a_challenge_ack_and_keeps_the_request():
    """RFC 5961 3.2 covers every state but SYN-SENT: an in-window RST that is
    not exactly at RCV.NXT is challenged (Linux 6.18 does so for a request sock)."""
    r = _syn_recv()
    r.peer.send(RST, r.rcv_nxt + 4)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert r.host.mib["TCPChallengeACK"] == 1
    assert _completes(r)


def test_challenge_acks_from_request_socks_share_the_host_budget():
    # A limit of 1 is a budget of exactly 1 a second: Linux draws each second's
    # budget from [(limit + 1) / 2, limit + (limit + 1) / 2 - 1].
    r = _syn_recv(Settings(tcp_challenge_ack_limit=1))
    for i in range(3):
        r.peer.send(RST, r.rcv_nxt + 4 + i)
    assert len(r.peer.recv()) == 1 and r.host.mib["TCPChallengeACK"] == 1
    r.host.advance(1.0)
    r.peer.recv()                                   # the SYN-ACK retransmission
    r.peer.send(RST, r.rcv_nxt + 4)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert len(r.ls.syn_queue) == 1


def test_out_of_window_rst_is_dropped_silently_and_keeps_the_request():
    r = _syn_recv()
    r.peer.send(RST, r.rcv_nxt + RCV_WND + 1)
    r.peer.send(RST, r.rcv_nxt - 1)
    assert r.peer.recv() == []
    assert _completes(r)


def test_rst_with_an_unacceptable_ack_is_dropped_silently():
    r = _syn_recv()
    r.peer.send(RST | ACK, r.rcv_nxt, r.iss + 7)
    assert r.peer.recv() == []
    assert _completes(r)


# --- SYN -------------------------------------------------------------------------------
def test_retransmitted_syn_gets_the_same_synack_and_counts_tcpsynretrans():
    """Our SYN-ACK was lost: the SYN again (same ISN) gets it again."""
    r = _syn_recv(opts=TcpOptions(mss=1460, wscale=2, sack_ok=True))
    r.peer.send(SYN, PEER_ISS, opts=TcpOptions(mss=1460, wscale=2, sack_ok=True))
    [again] = r.peer.recv()
    assert (again.key(), again.window, again.opts) == (r.synack.key(), r.synack.window,
                                                       r.synack.opts)
    assert r.host.mib["TCPSynRetrans"] == 1
    assert _completes(r)


def test_a_retransmitted_syn_restarts_the_synack_timer_from_its_answer():
    """Linux tcp_check_req: after the SYN-ACK that answers a retransmitted SYN
    the request timer is re-armed (mod_timer_pending) for reqsk_timeout, so
    the next timeout counts from that SYN-ACK: 0.6 + 1 s, then 2 s more."""
    r = _syn_recv(Settings(tcp_synack_retries=2))
    r.host.advance(0.6)
    r.peer.send(SYN, PEER_ISS)
    assert r.peer.recv_one().key() == r.synack.key()
    times, t = [], 0.6
    while t < 10.0:
        t = round(t + 0.1, 3)
        r.host.advance(t)
        times += [t for _ in r.peer.recv()]
    assert times == [1.6, 3.6]
    assert len(r.ls.syn_queue) == 0


def test_a_refused_answer_to_a_retransmitted_syn_leaves_the_timer_alone():
    """Only a SYN-ACK that went restarts the timer (`!tcp_rtx_synack(...)`)."""
    r = _syn_recv(Settings(tcp_synack_retries=1))
    r.host.advance(0.6)
    _device_answers(r, NET_XMIT_DROP)
    r.peer.send(SYN, PEER_ISS)
    _device_answers(r, NET_XMIT_SUCCESS)
    r.host.advance(1.0)
    assert r.peer.recv_one().key() == r.synack.key()


def test_syn_with_an_old_timestamp_is_no_retransmission_but_an_old_duplicate():
    """RFC 7323 5.3: PAWS first.  A SYN with the same ISN and a TSval older
    than the one we hold is answered with a plain ACK (with timestamps), not
    a SYN-ACK, and counted (Linux tcp_check_req)."""
    r = _syn_recv(opts=TcpOptions(mss=1460, ts_val=1000, ts_ecr=0))
    r.host.advance(0.25)
    r.peer.send(SYN, PEER_ISS, opts=TcpOptions(mss=1460, ts_val=999, ts_ecr=0))
    [ack] = r.peer.recv()
    assert _fields(ack) == _plain_ack(r, RCV_WND_TS)
    assert (ack.opts.ts_val, ack.opts.ts_ecr) == (r.synack.opts.ts_val + 250, 1000)
    assert r.host.mib["PAWSEstabRejected"] == 1 and r.host.mib["TCPSynRetrans"] == 0


def test_in_window_syn_with_another_isn_resets_the_embryonic_connection():
    """Linux resets (RFC 5961 4.2 would challenge): <SEQ=0><ACK=SEG.SEQ+1><RST,ACK>."""
    r = _syn_recv()
    r.peer.send(SYN, PEER_ISS + 5)
    assert [s.key() for s in r.peer.recv()] == [(RST | ACK, 0, PEER_ISS + 6, b"")]
    assert len(r.ls.syn_queue) == 0


def test_out_of_window_syn_gets_an_ack_and_keeps_the_request():
    r = _syn_recv()
    r.peer.send(SYN, r.rcv_nxt + RCV_WND + 10)
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r)]
    assert _completes(r)


# --- the ACK field ------------------------------------------------------------------
def test_unacceptable_ack_gets_a_reset_from_seg_ack_and_keeps_the_request():
    """RFC 9293 3.10.7.3: SYN-RECEIVED and SEG.ACK is not ISS+1 ->
    <SEQ=SEG.ACK><CTL=RST>; the half-open connection stays."""
    r = _syn_recv()
    for bad in (r.iss, r.iss + 2):
        r.peer.send(ACK, r.rcv_nxt, bad)
        assert [s.key() for s in r.peer.recv()] == [(RST, bad, 0, b"")]
    assert len(r.ls.syn_queue) == 1 and r.ls.accept() is None
    assert _completes(r)


def test_in_window_segment_without_ack_is_dropped_and_keeps_the_request():
    r = _syn_recv()
    r.peer.send(PSH, r.rcv_nxt, payload=b"early")
    assert r.peer.recv() == [] and r.ls.accept() is None
    assert _completes(r)


# --- PAWS and the unacceptable-segment ACK ---------------------------------------------
def test_paws_rejected_third_ack_gets_an_ack_and_creates_no_child():
    """RFC 7323 5.3: a TSval older than TS.Recent marks an old duplicate: send
    <SEQ=ISS+1><ACK=RCV.NXT><CTL=ACK> with TSval from our clock and TSecr =
    TS.Recent, drop the segment, count PAWSEstabRejected."""
    r = _syn_recv(opts=TcpOptions(mss=1460, ts_val=1000, ts_ecr=0))
    r.host.advance(0.5)
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, opts=TcpOptions(ts_val=999,
                                                          ts_ecr=r.synack.opts.ts_val))
    [ack] = r.peer.recv()
    assert _fields(ack) == _plain_ack(r, RCV_WND_TS)
    assert (ack.opts.ts_val, ack.opts.ts_ecr) == (r.synack.opts.ts_val + 500, 1000)
    assert r.ls.accept() is None and r.host.mib["PAWSEstabRejected"] == 1
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, opts=TcpOptions(ts_val=1000,
                                                          ts_ecr=r.synack.opts.ts_val))
    assert r.ls.accept() is not None


def test_paws_rejected_rst_is_dropped_without_reply():
    r = _syn_recv(opts=TcpOptions(mss=1460, ts_val=1000, ts_ecr=0))
    r.peer.send(RST, r.rcv_nxt, opts=TcpOptions(ts_val=999, ts_ecr=0))
    assert r.peer.recv() == [] and len(r.ls.syn_queue) == 1


def test_ack_from_syn_received_scales_its_window_by_our_shift():
    """After our SYN-ACK announced our shift, the window field is scaled:
    64240 >> 7 = 501 (RFC 7323 2.2)."""
    r = _syn_recv(opts=TcpOptions(mss=1460, wscale=2))
    r.peer.send(ACK, r.rcv_nxt + RCV_WND + 5, r.iss + 1, payload=b"x")
    assert [_fields(s) for s in r.peer.recv()] == [_plain_ack(r, RCV_WND >> 7)]


# --- a full accept queue --------------------------------------------------------------
def _queue_full(settings: Settings | None = None):
    """backlog 0 holds one child; a second handshake's third ACK meets the full queue."""
    r = _syn_recv(settings, backlog=0)
    other = Peer(r.host, port=1111)
    other.send(SYN, 50)
    [sa] = other.recv()
    other.send(ACK, 51, sa.seq + 1)
    assert len(r.ls.accept_queue) == 1
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    return r


def test_third_ack_meeting_a_full_accept_queue_is_dropped_and_counted():
    r = _queue_full()
    assert r.peer.recv() == [] and len(r.ls.syn_queue) == 1
    assert (r.host.mib["ListenOverflows"], r.host.mib["ListenDrops"]) == (1, 1)


def test_abort_on_overflow_resets_the_third_ack_and_forgets_the_request():
    r = _queue_full(Settings(tcp_abort_on_overflow=1))
    assert [s.key() for s in r.peer.recv()] == [(RST, r.iss + 1, 0, b"")]
    assert len(r.ls.syn_queue) == 0 and r.host.mib["ListenOverflows"] == 1


def test_request_whose_third_ack_was_dropped_keeps_retransmitting_its_synack():
    """The client is ESTABLISHED already; our SYN-ACK makes it ACK again, which
    gets in once the application accepted (Linux's syn_ack_recalc resends)."""
    r = _queue_full()
    r.host.advance(1.0)
    [again] = r.peer.recv()
    assert again.key() == r.synack.key()
    r.ls.accept()
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    assert r.ls.accept() is not None


# --- SYN-ACK retransmission (reqsk_timer_handler) ------------------------------------
def _synack_times(r, until: float) -> list[float]:
    times, t = [], 0.0
    while t < until:
        t = round(t + 0.5, 3)
        r.host.advance(t)
        for s in r.peer.recv():
            assert s.key() == r.synack.key()
            times.append(t)
    return times


def test_synack_backoff_doubles_from_one_second_up_to_tcp_rto_max():
    """TCP_TIMEOUT_INIT << n, capped at TCP_RTO_MAX; tcp_synack_retries
    retransmissions, then the request goes."""
    r = _syn_recv(Settings(tcp_synack_retries=5, tcp_rto_max=3.0))
    assert _synack_times(r, 20.0) == [1.0, 3.0, 6.0, 9.0, 12.0]
    assert r.host.mib["TCPSynRetrans"] == 5
    assert len(r.ls.syn_queue) == 0


def test_synack_retries_setting_bounds_the_retransmissions():
    r = _syn_recv(Settings(tcp_synack_retries=1))
    assert _synack_times(r, 10.0) == [1.0]
    assert len(r.ls.syn_queue) == 0


def test_completed_handshake_stops_the_synack_timer():
    r = _syn_recv()
    assert _completes(r)
    assert _synack_times(r, 40.0) == []


def test_listener_close_drops_its_requests_and_their_timers():
    r = _syn_recv()
    r.ls.close()
    assert _synack_times(r, 40.0) == []
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    assert [s.key() for s in r.peer.recv()] == [(RST, r.iss + 1, 0, b"")]


# --- a SYN-ACK the device refuses (tcp_rtx_synack's status) ---------------------------
def _device_answers(r, status: int) -> None:
    """From now on the transmit queue answers ``status`` for every frame:
    NET_XMIT_DROP refuses it (nothing leaves), NET_XMIT_CN takes it."""
    host = r.host

    def ip_output(*args, **kw):
        if status != NET_XMIT_DROP:
            type(host).ip_output(host, *args, **kw)
        return status

    def xmit(*args, **kw):
        # (a whole frame: a SYN-ACK IP would send as one, tcp_send_synack)
        if status != NET_XMIT_DROP:
            type(host).xmit(host, *args, **kw)
        return status
    host.ip_output = ip_output
    host.xmit = xmit


def test_a_refused_synack_retransmission_ends_the_request():
    """Linux reqsk_timer_handler: the request is re-armed only if
    `!tcp_rtx_synack(...) || acked`; a SYN-ACK the device refuses (nonzero
    net_xmit_eval) ends a request that was not acked at once, unlike a lost
    one (test_synack_backoff_...: sent again up to tcp_synack_retries), and
    is not counted as a retransmission."""
    r = _syn_recv()
    _device_answers(r, NET_XMIT_DROP)
    r.host.advance(1.0)
    assert len(r.ls.syn_queue) == 0
    assert r.host.mib["TCPSynRetrans"] == 0
    _device_answers(r, NET_XMIT_SUCCESS)
    r.host.advance(40.0)
    assert r.peer.recv() == []


def test_a_synack_retransmission_with_a_congestion_notification_was_sent():
    """net_xmit_eval(NET_XMIT_CN) is 0: the SYN-ACK went, is counted, and the
    request keeps its timer."""
    r = _syn_recv(Settings(tcp_synack_retries=2))
    _device_answers(r, NET_XMIT_CN)
    assert _synack_times(r, 10.0) == [1.0, 3.0]
    assert r.host.mib["TCPSynRetrans"] == 2


def test_an_acked_request_keeps_its_timer_when_its_synack_is_refused():
    """inet_rsk(req)->acked (its third ACK met a full accept queue): a refused
    SYN-ACK does not end it; the timer backs off as after a sent one, and the
    next SYN-ACK that goes brings the client's ACK in."""
    r = _queue_full()
    _device_answers(r, NET_XMIT_DROP)
    r.host.advance(1.0)
    assert len(r.ls.syn_queue) == 1 and r.host.mib["TCPSynRetrans"] == 0
    _device_answers(r, NET_XMIT_SUCCESS)
    r.host.advance(2.5)
    assert r.peer.recv() == []                  # backed off: 1 s + 2 s
    r.host.advance(3.0)
    [again] = r.peer.recv()
    assert again.key() == r.synack.key() and r.host.mib["TCPSynRetrans"] == 1
    r.ls.accept()
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    assert r.ls.accept() is not None


def test_a_refused_answer_to_a_retransmitted_syn_is_not_counted():
    """tcp_check_req answers a retransmitted SYN with tcp_rtx_synack, which
    counts (TCPSynRetrans, num_retrans) only a SYN-ACK that went."""
    r = _syn_recv()
    _device_answers(r, NET_XMIT_DROP)
    r.peer.send(SYN, PEER_ISS)
    assert r.host.mib["TCPSynRetrans"] == 0
    assert len(r.ls.syn_queue) == 1             # (the timer decides its fate)
    _device_answers(r, NET_XMIT_SUCCESS)
    r.host.advance(0.5)         # tcp_invalid_ratelimit: one answer per 500 ms
    r.peer.send(SYN, PEER_ISS)
    assert r.peer.recv_one().key() == r.synack.key()
    assert r.host.mib["TCPSynRetrans"] == 1


# --- more of the child ----------------------------------------------------------------
def test_child_inherits_the_listeners_socket_options():
    """sk_clone_lock: user options set on the listener hold for its children."""
    def setup(ls):
        for level, name, value in OPTIONS:
            ls.setsockopt(level, name, value)
    r = _syn_recv(setup=setup)
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    child = r.ls.accept()
    for level, name, _value in OPTIONS:
        assert child.getsockopt(level, name) == r.ls.getsockopt(level, name), name
    assert (child.opts.sndbuf_locked, child.opts.rcvbuf_locked) == (True, True)
    assert child.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION) == b"reno"


OPTIONS = [
    (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.SOL_SOCKET, socket.SO_LINGER, (1, 7)),
    (socket.SOL_SOCKET, socket.SO_SNDBUF, 50000),
    (socket.SOL_SOCKET, socket.SO_RCVBUF, 60000),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 111),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 22),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
    (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 4000),
    (socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno"),
]


def test_child_continues_both_sequence_spaces_from_the_handshake():
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, payload=b"abc")
    child = r.ls.accept()
    assert child.recvmsg(10) == b"abc"
    child.sendmsg(b"xyz")
    out = [s for s in r.peer.recv() if s.payload]
    assert [(s.seq, s.ack, s.payload) for s in out] == [(r.iss + 1, r.rcv_nxt + 3, b"xyz")]


@pytest.mark.parametrize("ts,size", [(False, 1000), (True, 988)])
def test_child_segments_follow_the_peers_mss(ts, size):
    """The SYN's MSS bounds our segments, less 12 bytes of timestamps."""
    opts = TcpOptions(mss=1000, ts_val=5, ts_ecr=0) if ts else TcpOptions(mss=1000)
    r = _syn_recv(opts=opts)
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1,
                opts=TcpOptions(ts_val=6, ts_ecr=r.synack.opts.ts_val) if ts else None)
    child = r.ls.accept()
    child.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    child.sendmsg(b"x" * 3000)
    assert [len(s.payload) for s in r.peer.recv()][:2] == [size, size]


def test_child_timestamps_continue_the_handshakes():
    """The child keeps the request's clock offset and TS.Recent: its TSval
    goes on from the SYN-ACK's, its TSecr echoes the peer's latest TSval."""
    r = _syn_recv(opts=TcpOptions(mss=1460, ts_val=500, ts_ecr=0))
    r.host.advance(0.1)
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, opts=TcpOptions(ts_val=510,
                                                          ts_ecr=r.synack.opts.ts_val))
    child = r.ls.accept()
    r.host.advance(0.3)
    child.sendmsg(b"x")
    [seg] = r.peer.recv()
    assert (seg.opts.ts_val, seg.opts.ts_ecr) == (r.synack.opts.ts_val + 300, 510)


def test_child_without_window_scaling_advertises_an_unscaled_window():
    """RFC 7323 2.2: no shift unless both SYNs carried the option."""
    r = _syn_recv(opts=TcpOptions(mss=1460))
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=4000)
    child = r.ls.accept()
    child.sendmsg(b"x")
    [seg] = r.peer.recv()
    assert (child.snd_wscale, child.rcv_wscale, child.snd_wnd) == (0, 0, 4000)
    assert seg.window == child.rcv_wnd and child.window_clamp == 65535


def test_child_with_window_scaling_advertises_a_scaled_window():
    """Our shift is the one the SYN-ACK announced (7 for a 6 MiB tcp_rmem)."""
    r = _syn_recv(opts=TcpOptions(mss=1460, wscale=2))
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=4000)
    child = r.ls.accept()
    child.sendmsg(b"x")
    [seg] = r.peer.recv()
    assert (child.snd_wscale, child.rcv_wscale, child.snd_wnd) == (2, 7, 16000)
    assert seg.window == child.rcv_wnd >> 7 and child.window_clamp == 65535 << 7


def test_synack_echoes_a_zero_tsval():
    """RFC 7323 4.3: TSecr is the TSval received, 0 included (some stacks
    start their clock at 0)."""
    r = _syn_recv(opts=TcpOptions(mss=1460, ts_val=0, ts_ecr=0))
    assert r.synack.opts.ts_ecr == 0 and r.synack.opts.ts_val is not None
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, opts=TcpOptions(ts_val=1, ts_ecr=r.synack.opts.ts_val))
    child = r.ls.accept()
    assert child.tstamp_ok


def test_child_is_connected_for_the_socket_calls():
    """The accepted sock is connected: connect() is EISCONN, it has a peer."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    child = r.ls.accept()
    with pytest.raises(OSError) as ei:
        child.connect(REMOTE, r.peer.port)
    assert ei.value.errno == errno.EISCONN
    assert child.getpeername() == (REMOTE, r.peer.port)


def test_window_update_rule_starts_from_the_third_acks_sequence():
    """RFC 9293 3.10.7.4: SND.WND is taken from a segment only if SND.WL1 <
    SEG.SEQ, or SND.WL1 = SEG.SEQ and the ACK is new; the third ACK set
    SND.WL1, so a later segment with the same SEG.SEQ and ACK may not shrink
    the window (tcp_init_wl on entering ESTABLISHED)."""
    r = _syn_recv()
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=4000)
    child = r.ls.accept()
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=1000)
    assert child.snd_wnd == 4000
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1, window=6000)
    assert child.snd_wnd == 6000


# --- sequence and timestamp arithmetic wraps at 2**32 (RFC 9293 3.4, RFC 7323 5.2) ----
def _time_for_isn(host: FakeHost, isn: int) -> float:
    """The clock reading at which our RFC 6528 ISN towards the peer is ``isn``."""
    from tcpio.core.tcp.secure_seq import ISN_TICKS_PER_SECOND, secure_tcp_seq
    base = secure_tcp_seq(host.secret, LOCAL, LPORT, REMOTE, RPORT, 0.0)
    return (((isn - base) & 0xFFFFFFFF) + 0.5) / ISN_TICKS_PER_SECOND


def test_both_isns_at_2_32_minus_1_wrap_to_zero():
    """ISN 2**32-1 on both sides: every number after the SYNs is 0 mod 2**32
    (our SYN-ACK's ACK, the request's ACK, the reset's SEQ, the child's)."""
    host = FakeHost()
    host.advance(_time_for_isn(host, 0xFFFFFFFF))
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    peer.send(SYN, 0xFFFFFFFF)
    [synack] = peer.recv()
    assert (synack.seq, synack.ack) == (0xFFFFFFFF, 0)
    peer.send(ACK, RCV_WND + 10, 0, payload=b"x")          # out of window
    assert [_fields(s) for s in peer.recv()] == [(ACK, 0, 0, RCV_WND)]
    peer.send(ACK, 0, 1)                                     # unacceptable ACK
    assert [s.key() for s in peer.recv()] == [(RST, 1, 0, b"")]
    peer.send(ACK, 0, 0, payload=b"hi")
    child = ls.accept()
    assert child.recvmsg(10) == b"hi"
    child.sendmsg(b"yo")
    assert [(s.seq, s.ack, s.payload) for s in peer.recv() if s.payload] == [(0, 2, b"yo")]


def test_timestamps_wrap_at_2_32():
    """TSval = (ms clock + offset) mod 2**32: the SYN-ACK's and the request's
    ACK's timestamps wrap like sequence numbers."""
    from tcpio.core.tcp.secure_seq import secure_tcp_ts_off
    host = FakeHost()
    off = secure_tcp_ts_off(host.secret, LOCAL, REMOTE)
    host.advance(((1 << 32) - off + 5) / 1000 + 0.0001)
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    peer.send(SYN, PEER_ISS, opts=TcpOptions(mss=1460, ts_val=7, ts_ecr=0))
    [synack] = peer.recv()
    assert synack.opts.ts_val == 5
    host.advance(host.now + 0.010)
    peer.send(ACK, PEER_ISS + 1 + RCV_WND_TS + 10, synack.seq + 1, payload=b"x",
              opts=TcpOptions(ts_val=8, ts_ecr=5))
    [ack] = peer.recv()
    assert (ack.opts.ts_val, ack.opts.ts_ecr) == (15, 7)


def test_request_ack_and_reset_numbers_for_an_even_iss():
    """The same rules with ISS even (ISS + 1 odd): nothing may drop a bit."""
    host = FakeHost()
    host.advance(_time_for_isn(host, 0x12345678))
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    peer.send(SYN, 0x22222222)
    [synack] = peer.recv()
    assert (synack.seq, synack.ack) == (0x12345678, 0x22222223)
    peer.send(ACK, 0x22222223 + RCV_WND + 10, 0x12345679, payload=b"x")
    assert [_fields(s) for s in peer.recv()] == [(ACK, 0x12345679, 0x22222223, RCV_WND)]
    peer.send(ACK, 0x22222223, 0x12345679)
    child = ls.accept()
    child.sendmsg(b"yo")
    assert [(s.seq, s.ack) for s in peer.recv() if s.payload] == [(0x12345679, 0x22222223)]


def test_child_takes_the_listeners_values_not_the_hosts_settings():
    """sk_clone_lock copies the listener: a child's options record, buffer
    sizes, Nagle/cork bits, family and congestion control are the
    listener's, even where the host's settings changed after listen()
    (a child built from the settings would take the new defaults)."""
    def setup(ls):
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 50000)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 60000)
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    r = _syn_recv(setup=setup)
    st = r.host.settings
    st.tcp_congestion_control = "reno" if r.ls.ca_ops.name != "reno" else "cubic"
    st.tcp_keepalive_time = st.tcp_keepalive_time + 1
    st.tcp_wmem = (st.tcp_wmem[0], st.tcp_wmem[1] * 2, st.tcp_wmem[2])
    st.tcp_rmem = (st.tcp_rmem[0], st.tcp_rmem[1] * 2, st.tcp_rmem[2])
    r.peer.send(ACK, r.rcv_nxt, r.iss + 1)
    child = r.ls.accept()
    ls = r.ls
    assert child.opts is ls.opts            # shared, copy on write
    assert child.ca_ops is ls.ca_ops
    fields = ("sndbuf", "rcvbuf", "nodelay", "nonagle", "family", "v6only", "scope_id",
              "reuseaddr")
    assert [getattr(child, f) for f in fields] == [getattr(ls, f) for f in fields]
    assert (child.sndbuf, child.rcvbuf, child.nodelay, child.reuseaddr) == (
        100000, 120000, True, True)    # SO_SNDBUF/SO_RCVBUF double what is asked
