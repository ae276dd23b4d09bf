"""The time-wait sock: FIN-WAIT-2 of an orphan and TIME-WAIT proper
(Linux tcp_timewait_state_process, tcp_time_wait, tcp_v4_rcv's TCP_TW_* cases).

RFC 9293 3.10.7.4 (segment arrival in FIN-WAIT-2 and TIME-WAIT), RFC 1122
4.2.2.13 (a new SYN may reopen a TIME-WAIT tuple if the new ISN is above the
old sequence space), RFC 7323 5.3 (PAWS).  Where the RFCs leave room, Linux is
the reference; the cases marked "Linux 6.18" were checked against it with
hand-made segments on a TUN device.
"""

from __future__ import annotations

import errno
import socket

import pytest

from tcpio.core.settings import Settings

from .helpers import (
    ACK,
    FIN,
    PEER_ISS,
    REMOTE,
    RPORT,
    RST,
    SYN,
    Conn,
    FakeHost,
    Peer,
    TcpOptions,
    passive_open,
)


def _rows(c) -> list:
    return [r for r in c.host.tcp.connections() if r.state in ("TIME-WAIT", "FIN-WAIT-2")
            and r.remote.endswith(f":{c.peer.port}")]


def _states(c) -> list[str]:
    return [r.state for r in _rows(c)]


def _fin_wait2(settings: Settings | None = None, syn_opts=None):
    """We closed, the peer ACKed our FIN: an orphan in FIN-WAIT-2, kept by a
    time-wait sock.  ``c.rcv`` is our SND.NXT, ``c.snd`` our RCV.NXT."""
    c = passive_open(settings=settings, syn_opts=syn_opts)
    c.sk.close()
    fin = c.recv()
    assert [s.flags for s in fin] == [FIN | ACK]
    c.window = fin[0].window
    c.ack_all(fin)
    c.send()
    assert _states(c) == ["FIN-WAIT-2"]
    return c


def _ack_from_tw(c) -> tuple:
    """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> with the last advertised window."""
    return (ACK, c.rcv, c.snd, c.window)


def _fields(seg) -> tuple:
    return (seg.flags, seg.seq, seg.ack, seg.window)


# --- FIN-WAIT-2 (orphan) ------------------------------------------------------------
def test_fin_wait2_old_duplicate_ending_at_rcv_nxt_gets_an_ack():
    """Out of window by tcp_in_window (ends at RCV.NXT): ACK it (Linux 6.18)."""
    c = _fin_wait2()
    c.send(b"x" * 5, seq=c.snd - 5)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["FIN-WAIT-2"]


def test_fin_wait2_in_window_syn_is_reset_and_ends_the_time_wait_sock():
    """A SYN at or above RCV.NXT: <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>, and
    the tuple is free (Linux tcp_v4_rcv, TCP_TW_RST; Linux 6.18)."""
    c = _fin_wait2()
    c.peer.send(SYN, c.snd + 10)
    assert [s.key() for s in c.recv()] == [(RST | ACK, 0, c.snd + 11, b"")]
    assert _states(c) == []


def test_fin_wait2_fin_with_data_is_reset_and_ends_the_time_wait_sock():
    """Data after our close cannot be delivered: <SEQ=SEG.ACK><CTL=RST>
    (RFC 1122 4.2.2.13; Linux 6.18 resets a FIN carrying data too)."""
    c = _fin_wait2()
    c.send(b"abc", flags=FIN | ACK)
    assert [s.key() for s in c.recv()] == [(RST, c.rcv, 0, b"")]
    assert _states(c) == []


def test_fin_wait2_new_data_is_reset_and_ends_the_time_wait_sock():
    c = _fin_wait2()
    c.send(b"late")
    assert [s.key() for s in c.recv()] == [(RST, c.rcv, 0, b"")]
    assert _states(c) == []


def test_fin_wait2_fin_after_a_gap_is_reset():
    """A FIN whose sequence is not RCV.NXT means data we will never get."""
    c = _fin_wait2()
    c.send(flags=FIN | ACK, seq=c.snd + 3)
    assert [s.key() for s in c.recv()] == [(RST, c.rcv, 0, b"")]
    assert _states(c) == []


def test_fin_wait2_data_without_ack_is_dropped_silently():
    """No ACK bit: drop it (RFC 9293 fifth check; Linux 6.18 keeps the entry)."""
    c = _fin_wait2()
    c.send(b"abc", flags=0)
    assert c.recv() == []
    assert _states(c) == ["FIN-WAIT-2"]


def test_fin_wait2_duplicate_ack_is_ignored():
    c = _fin_wait2()
    c.send()
    assert c.recv() == []
    assert _states(c) == ["FIN-WAIT-2"]


def test_fin_wait2_out_of_window_rst_is_dropped_without_reply():
    """RFC 9293 3.10.7.4: an unacceptable RST is dropped, never answered."""
    c = _fin_wait2()
    c.send(flags=RST, seq=c.snd + 100000)
    assert c.recv() == []
    assert _states(c) == ["FIN-WAIT-2"]


def test_fin_wait2_in_window_rst_ends_the_time_wait_sock_silently():
    c = _fin_wait2()
    c.send(flags=RST, seq=c.snd + 5)
    assert c.recv() == []
    assert _states(c) == []


def test_fin_wait2_out_of_window_data_gets_an_ack():
    c = _fin_wait2()
    c.send(b"far", seq=c.snd + 200000)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["FIN-WAIT-2"]


def test_fin_wait2_peer_fin_is_acked_and_starts_time_wait_for_its_full_length():
    """The FIN moves the tuple to TIME-WAIT for tcp_tw_timeout (TCP_TIMEWAIT_LEN),
    not what was left of the FIN-WAIT-2 timeout."""
    c = _fin_wait2(Settings(tcp_fin_timeout=10.0, tcp_tw_timeout=30.0))
    c.host.advance(4.0)
    c.send(flags=FIN | ACK)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["TIME-WAIT"]
    c.host.advance(33.9)
    assert _states(c) == ["TIME-WAIT"]
    c.host.advance(34.1)
    assert _states(c) == []


# --- TIME-WAIT ---------------------------------------------------------------------
def _time_wait(settings: Settings | None = None, syn_opts=None):
    """Then the peer's FIN, which we ACK: TIME-WAIT from t = 0."""
    c = _fin_wait2(settings, syn_opts)
    c.send(flags=FIN | ACK)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["TIME-WAIT"]
    return c


def _gone_at(c, t: float) -> bool:
    """Still there just before ``t``, gone just after."""
    c.host.advance(t - 0.01)
    there = _states(c) == ["TIME-WAIT"]
    c.host.advance(t + 0.01)
    return there and _states(c) == []


def test_time_wait_lasts_tcp_tw_timeout():
    c = _time_wait(Settings(tcp_tw_timeout=5.0))
    assert _gone_at(c, 5.0)


def test_time_wait_bare_ack_at_rcv_nxt_restarts_the_timer_without_reply():
    """In-window bare ACK: nothing to answer, but the peer still holds the
    connection, so TIME-WAIT starts over (Linux inet_twsk_reschedule; 6.18)."""
    c = _time_wait()
    c.host.advance(30.0)
    c.send()
    assert c.recv() == []
    assert _gone_at(c, 90.0)


def test_time_wait_retransmitted_fin_without_ack_is_acked_but_keeps_the_timer():
    """An ACK-less segment is answered; only the ACK bit (or a PAWS failure)
    restarts the clock (Linux 6.18: the timer keeps running)."""
    c = _time_wait()
    c.host.advance(30.0)
    c.send(flags=FIN, seq=c.snd - 1)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _gone_at(c, 60.0)


def test_time_wait_old_ack_is_acked_and_restarts_the_timer():
    c = _time_wait()
    c.host.advance(20.0)
    c.send(b"old", seq=c.snd - 10)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _gone_at(c, 80.0)


def test_time_wait_old_syn_is_acked_and_does_not_restart_the_timer():
    """A SYN below RCV.NXT cannot reopen the tuple; it gets the time-wait ACK
    and, having no ACK bit, leaves the timer alone (Linux 6.18)."""
    c = _time_wait()
    c.host.advance(30.0)
    c.peer.send(SYN, c.snd - 1000)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _gone_at(c, 60.0)


def test_time_wait_rst_not_at_rcv_nxt_is_ignored():
    """Only an exact RST ends TIME-WAIT (Linux, tcp_rfc1337 = 0; 6.18); any
    other is dropped without reply and without touching the timer."""
    c = _time_wait()
    c.host.advance(30.0)
    c.send(flags=RST, seq=c.snd + 1)
    c.send(flags=RST | ACK, seq=c.snd - 1)
    assert c.recv() == []
    assert _gone_at(c, 60.0)


def test_time_wait_exact_rst_ends_it_without_reply():
    c = _time_wait()
    c.send(flags=RST)
    assert c.recv() == []
    assert _states(c) == []


# --- a new SYN in TIME-WAIT (RFC 1122 4.2.2.13) -----------------------------------
def test_new_syn_reopens_the_tuple_with_an_isn_above_the_old_sequence_space():
    """RFC 1122 4.2.2.13 (1): the new ISN must be larger than any sequence
    number the old incarnation used.  Linux takes the time-wait sock's
    SND.NXT + 65535 + 2 (Linux 6.18); a clock-based ISN for the same tuple at
    about the same time would land inside the old space."""
    c = _time_wait()
    c.peer.send(SYN, c.snd + 1000)
    out = c.recv()
    assert [s.key() for s in out] == [(SYN | ACK, c.rcv + 65537, c.snd + 1001, b"")]
    assert _states(c) == []
    c.peer.send(ACK, c.snd + 1001, c.rcv + 65538)
    child = c.listener.accept()
    assert child is not None and (child.snd_nxt, child.rcv_nxt) == (c.rcv + 65538,
                                                                     c.snd + 1001)


def test_reopening_syn_is_taken_even_when_the_syn_queue_would_want_a_cookie():
    """tcp_conn_request: a SYN that brings its ISN from TIME-WAIT skips the
    SYN-queue-full / syncookie decision ((syncookies == 2 ||
    inet_csk_reqsk_queue_is_full) && !isn: tcp_syncookies = 2 wants a cookie
    for every SYN)."""
    c = _time_wait(Settings(tcp_syncookies=2))   # the first handshake was a cookie's
    cookies = c.host.mib["SyncookiesSent"]
    c.peer.send(SYN, c.snd + 1000)
    assert [s.key() for s in c.recv()] == [(SYN | ACK, c.rcv + 65537, c.snd + 1001, b"")]
    assert c.host.mib["SyncookiesSent"] == cookies == 1
    assert len(c.listener.syn_queue) == 1


def test_new_syn_without_a_listener_gets_the_time_wait_ack():
    """No listener to hand the SYN to: TIME-WAIT stays and ACKs it like any
    other out-of-window segment (Linux tcp_v4_rcv; 6.18), no reset."""
    c = _time_wait()
    c.listener.close()
    c.host.advance(10.0)
    c.peer.send(SYN, c.snd + 1000)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _gone_at(c, 60.0)


def test_syn_with_ack_does_not_reopen_and_gets_the_time_wait_ack():
    c = _time_wait()
    c.peer.send(SYN | ACK, c.snd + 1000, c.rcv)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["TIME-WAIT"]


def test_syn_with_rst_neither_reopens_nor_gets_an_answer():
    c = _time_wait()
    c.peer.send(SYN | RST, c.snd + 1000)
    assert c.recv() == []
    assert _states(c) == ["TIME-WAIT"]


def test_syn_at_rcv_nxt_does_not_reopen():
    """Reopening needs SEG.SEQ above RCV.NXT (or a newer timestamp)."""
    c = _time_wait()
    c.peer.send(SYN, c.snd)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["TIME-WAIT"]


# --- connect() over a TIME-WAIT tuple (tcp_twsk_unique) ----------------------------
def _connect(host: FakeHost, port: int = 0, reuseaddr: bool = False):
    sk = host.tcp.socket()
    if reuseaddr:
        sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port:
        sk.bind(0, port)
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    return sk


def _client_time_wait(settings: Settings | None = None, port: int = 0,
                      timestamps: bool = True):
    """Our client sent 100 bytes and closed first; the peer's FIN put the
    tuple in TIME-WAIT at t = 0.  Returns the connection and our final SND.NXT."""
    host = FakeHost(settings=settings)
    peer = Peer(host)
    sk = _connect(host, port, reuseaddr=bool(port))
    syn = peer.recv_one()
    peer.lport = syn.sport
    ts = (lambda v: TcpOptions(ts_val=v, ts_ecr=syn.opts.ts_val)) if timestamps \
        else (lambda v: None)
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1,
              opts=TcpOptions(mss=1460, ts_val=700, ts_ecr=syn.opts.ts_val) if timestamps
              else TcpOptions(mss=1460))
    c = Conn(host, peer, sk, PEER_ISS + 1, syn.seq + 1)
    c.recv()
    sk.sendmsg(b"z" * 100)
    sk.close()
    c.ack_all(c.recv())                     # the data and our FIN
    c.send(flags=FIN | ACK, opts=ts(701))
    assert [s.flags for s in c.recv()] == [ACK]
    assert _states(c) == ["TIME-WAIT"]
    assert c.rcv == syn.seq + 1 + 100 + 1
    return c, syn.sport


def test_connect_from_the_bound_port_recycles_time_wait_above_the_old_space():
    """A sock bound (SO_REUSEADDR) to the time-wait sock's port may take the
    tuple at once when the old connection had timestamps, whatever
    tcp_tw_reuse says; its ISN is the old SND.NXT + 65537 (RFC 1122 4.2.2.13;
    Linux tcp_twsk_unique, 6.18 with tcp_tw_reuse = 0)."""
    c, _port = _client_time_wait(Settings(tcp_tw_reuse=0), port=40000)
    _connect(c.host, 40000, reuseaddr=True)
    syn = c.peer.recv_one()
    assert (syn.flags, syn.sport, syn.seq) == (SYN, 40000, c.rcv + 65537)
    assert c.host.mib["TWRecycled"] == 1
    assert _states(c) == []


def test_connect_from_the_bound_port_needs_timestamps_to_recycle_time_wait():
    """Without timestamps nothing guards the new connection against the old
    one's duplicates: EADDRNOTAVAIL (Linux 6.18)."""
    c, _port = _client_time_wait(port=40000, timestamps=False)
    sk = c.host.tcp.socket()
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sk.bind(0, 40000)
    with pytest.raises(OSError) as ei:
        sk.connect(REMOTE, RPORT)
    assert ei.value.errno == errno.EADDRNOTAVAIL
    assert c.host.mib["TWRecycled"] == 0
    assert _states(c) == ["TIME-WAIT"]


ONE_PORT = (40000, 40000)


def test_connect_choosing_a_port_recycles_time_wait_with_tw_reuse_after_a_second():
    """tcp_tw_reuse = 1: an automatically chosen port may reuse a TIME-WAIT
    tuple once its last timestamp is more than a second old; the ISN is again
    the old SND.NXT + 65537 (Linux 6.18)."""
    c, port = _client_time_wait(Settings(ip_local_port_range=ONE_PORT, tcp_tw_reuse=1))
    assert port == 40000
    c.host.advance(0.9)
    with pytest.raises(OSError) as ei:
        c.host.tcp.socket().connect(REMOTE, RPORT)
    assert ei.value.errno == errno.EADDRNOTAVAIL
    c.host.advance(1.1)
    _connect(c.host)
    syn = c.peer.recv_one()
    assert (syn.flags, syn.sport, syn.seq) == (SYN, 40000, c.rcv + 65537)
    assert c.host.mib["TWRecycled"] == 1


def test_connect_choosing_a_port_leaves_time_wait_alone_without_tw_reuse():
    c, _port = _client_time_wait(Settings(ip_local_port_range=ONE_PORT, tcp_tw_reuse=2))
    c.host.advance(5.0)
    with pytest.raises(OSError) as ei:
        c.host.tcp.socket().connect(REMOTE, RPORT)
    assert ei.value.errno == errno.EADDRNOTAVAIL
    assert _states(c) == ["TIME-WAIT"]


# --- timestamps (RFC 7323) --------------------------------------------------------------
TS0 = 100


def _ts(v: int) -> TcpOptions:
    return TcpOptions(ts_val=v, ts_ecr=0)


def _ts_time_wait():
    """TIME-WAIT with timestamps: the peer's TSvals were 100, 101 (handshake),
    102 (ACK of our FIN), 103 (its FIN), all at t = 0.  ``c.tsv0`` is our
    TSval at t = 0."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=TS0, ts_ecr=0))
    c.sk.close()
    [fin] = c.recv()
    c.tsv0 = fin.opts.ts_val
    c.window = fin.window
    c.ack_all([fin])
    c.send(opts=_ts(TS0 + 2))
    c.send(flags=FIN | ACK, opts=_ts(TS0 + 3))
    [ack] = c.recv()
    assert _fields(ack) == _ack_from_tw(c)
    assert (ack.opts.ts_val, ack.opts.ts_ecr) == (c.tsv0, TS0 + 3)
    assert _states(c) == ["TIME-WAIT"]
    return c


def test_time_wait_ack_carries_our_clock_and_echoes_ts_recent():
    """The time-wait ACK keeps the connection's timestamp clock (offset and
    all: TSval grows by the milliseconds elapsed) and echoes TS.Recent."""
    c = _ts_time_wait()
    c.host.advance(2.5)
    c.send(b"old", seq=c.snd - 10, opts=_ts(TS0 + 4))
    [ack] = c.recv()
    assert _fields(ack) == _ack_from_tw(c)
    assert (ack.opts.ts_val, ack.opts.ts_ecr) == (c.tsv0 + 2500, TS0 + 3)


def test_time_wait_bare_ack_with_a_newer_timestamp_updates_ts_recent():
    c = _ts_time_wait()
    c.send(opts=_ts(TS0 + 50))
    assert c.recv() == []
    c.send(b"old", seq=c.snd - 10, opts=_ts(TS0 + 51))
    [ack] = c.recv()
    assert ack.opts.ts_ecr == TS0 + 50


def test_time_wait_paws_rejects_an_old_timestamp_even_at_rcv_nxt():
    """RFC 7323 5.3: a TSval below TS.Recent is an old duplicate: ACKed,
    counted (Linux 6.18: TcpExtPAWSTimewait), and it restarts TIME-WAIT."""
    c = _ts_time_wait()
    c.host.advance(30.0)
    c.send(opts=_ts(TS0 + 2))
    [ack] = c.recv()
    assert _fields(ack) == _ack_from_tw(c) and ack.opts.ts_ecr == TS0 + 3
    assert (c.host.mib["PAWSTimewait"], c.host.mib["PAWSEstabRejected"]) == (1, 0)
    assert _gone_at(c, 90.0)


def test_time_wait_paws_rejected_rst_does_not_end_it():
    """Linux 6.18: an exact RST with an old TSval is rejected too (counted,
    not answered); TIME-WAIT stays."""
    c = _ts_time_wait()
    c.send(flags=RST, opts=_ts(TS0 + 2))
    assert c.recv() == []
    assert _states(c) == ["TIME-WAIT"] and c.host.mib["PAWSTimewait"] == 1


def test_time_wait_exact_rst_with_a_current_timestamp_ends_it():
    c = _ts_time_wait()
    c.send(flags=RST, opts=_ts(TS0 + 3))
    assert _states(c) == []


def test_syn_with_a_newer_timestamp_reopens_even_below_rcv_nxt():
    """With timestamps a newer TSval is enough to tell a new incarnation
    (Linux: RFC 1122's sequence test relaxed by PAWS)."""
    c = _ts_time_wait()
    c.peer.send(SYN, c.snd - 500, opts=TcpOptions(mss=1460, ts_val=TS0 + 10, ts_ecr=0))
    [synack] = c.recv()
    assert (synack.flags, synack.seq, synack.ack) == (SYN | ACK, c.rcv + 65537, c.snd - 499)
    assert _states(c) == []


def test_syn_with_the_same_timestamp_below_rcv_nxt_does_not_reopen():
    c = _ts_time_wait()
    c.peer.send(SYN, c.snd - 500, opts=TcpOptions(mss=1460, ts_val=TS0 + 3, ts_ecr=0))
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["TIME-WAIT"]


def test_paws_rejected_syn_does_not_reopen_even_above_rcv_nxt():
    c = _ts_time_wait()
    c.peer.send(SYN, c.snd + 5000, opts=TcpOptions(mss=1460, ts_val=TS0, ts_ecr=0))
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["TIME-WAIT"] and c.host.mib["PAWSTimewait"] == 1


def test_fin_wait2_takes_ts_recent_from_the_peers_fin():
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=TS0, ts_ecr=0))
    c.sk.close()
    [fin] = c.recv()
    c.window = fin.window
    c.ack_all([fin])
    c.send(opts=_ts(TS0 + 2))
    assert _states(c) == ["FIN-WAIT-2"]
    c.send(flags=FIN | ACK, opts=_ts(TS0 + 9))
    [ack] = c.recv()
    assert _fields(ack) == _ack_from_tw(c) and ack.opts.ts_ecr == TS0 + 9


def test_fin_wait2_paws_rejected_segment_gets_an_ack_without_counting():
    """Linux 6.18: in FIN-WAIT-2 an old TSval gets the ACK (TSecr unchanged)
    and no PAWS counter moves."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=TS0, ts_ecr=0))
    c.sk.close()
    [fin] = c.recv()
    c.window = fin.window
    c.ack_all([fin])
    c.send(opts=_ts(TS0 + 2))
    c.send(b"x", seq=c.snd, opts=_ts(TS0 + 1))
    [ack] = c.recv()
    assert _fields(ack) == _ack_from_tw(c) and ack.opts.ts_ecr == TS0 + 2
    assert _states(c) == ["FIN-WAIT-2"]
    assert c.host.mib["PAWSTimewait"] == c.host.mib["PAWSEstabRejected"] == 0


# --- the time-wait sock's copy of the connection (tcp_time_wait) -------------------------
def test_time_wait_ack_window_is_scaled_like_the_connections():
    """tw_rcv_wnd >> tw_rcv_wscale: the ACK advertises what the connection
    last advertised, in the same scaled units."""
    c = _fin_wait2(syn_opts=TcpOptions(mss=1460, wscale=4))
    assert c.window < 65535 >> 4 and c.sk.rcv_wscale == 7
    c.send(b"x", seq=c.snd + 400000)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]


def test_time_wait_holds_the_port_until_it_ends():
    """The port belongs to the time-wait sock after the connection closed: a
    plain bind() to it fails until TIME-WAIT is over."""
    c = _time_wait(Settings(tcp_tw_timeout=5.0))
    other = c.host.tcp.socket()
    with pytest.raises(OSError) as ei:
        other.bind(0, 80)
    assert ei.value.errno == errno.EADDRINUSE
    c.listener.close()
    with pytest.raises(OSError):
        other.bind(0, 80)
    c.host.advance(5.1)
    other.bind(0, 80)


def test_time_wait_of_a_sock_the_user_still_holds_outlives_its_close():
    """shutdown(SHUT_WR), then the peer's FIN: TIME-WAIT while the user
    still has the sock; closing it later does not end TIME-WAIT early."""
    c = passive_open(settings=Settings(tcp_tw_timeout=5.0))
    c.sk.shutdown(socket.SHUT_WR)
    c.ack_all(c.recv())
    c.send()
    c.send(flags=FIN | ACK)
    assert [s.flags for s in c.recv()] == [ACK]
    assert _states(c) == ["TIME-WAIT"]
    c.sk.close()
    assert _states(c) == ["TIME-WAIT"] and c.host.tcp.orphans == 0
    c.host.advance(5.1)
    assert _states(c) == [] and c.host.tcp.tw_count == 0


def _time_wait_with_iss(iss: int):
    """TIME-WAIT of a connection whose ISS (ours) was ``iss``: no data, so
    the time-wait sock's SND.NXT is iss + 2."""
    from tcpio.core.tcp.secure_seq import ISN_TICKS_PER_SECOND, secure_tcp_seq

    from .helpers import LOCAL, LPORT

    def setup(ls):
        base = secure_tcp_seq(ls.host.secret, LOCAL, LPORT, REMOTE, RPORT, 0.0)
        ls.host.advance((((iss - base) & 0xFFFFFFFF) + 0.5) / ISN_TICKS_PER_SECOND)
    c = passive_open(setup=setup)
    assert c.synack.seq == iss
    c.sk.close()
    c.ack_all(c.recv())
    c.send()
    c.send(flags=FIN | ACK)
    c.recv()
    assert _states(c) == ["TIME-WAIT"] and c.rcv == (iss + 2) & 0xFFFFFFFF
    return c


def test_reopening_isn_wraps_around_2_32():
    c = _time_wait_with_iss(0xFFFFFFF0)
    c.peer.send(SYN, c.snd + 1000)
    [synack] = c.recv()
    assert synack.seq == (0xFFFFFFF2 + 65537) & 0xFFFFFFFF


def test_reopening_isn_is_never_zero():
    """Linux's tcp_timewait_state_process: an ISN of 0 becomes 1."""
    c = _time_wait_with_iss(0xFFFEFFFD)          # SND.NXT + 65537 = 2**32
    c.peer.send(SYN, c.snd + 1000)
    [synack] = c.recv()
    assert (synack.flags, synack.seq) == (SYN | ACK, 1)


def test_time_wait_takes_an_old_timestamp_rst_once_ts_recent_is_an_msl_old():
    """tcp_paws_reject: a RST is exempt from PAWS once TS.Recent is
    TCP_PAWS_MSL (60 s) old (a peer that rebooted with a new clock must be
    able to reset).  An old-TSval ACK at 50 s restarts TIME-WAIT (to 110 s)
    without touching TS.Recent; at 59 s an old RST is still rejected, at
    61 s it ends TIME-WAIT (tcp_rfc1337 = 0)."""
    c = _ts_time_wait()
    c.host.advance(50.0)
    c.send(opts=_ts(TS0 + 2))
    assert c.host.mib["PAWSTimewait"] == 1
    c.recv()
    c.host.advance(59.0)
    c.send(flags=RST, opts=_ts(TS0 + 2))
    assert _states(c) == ["TIME-WAIT"] and c.host.mib["PAWSTimewait"] == 2
    c.host.advance(61.0)
    c.send(flags=RST, opts=_ts(TS0 + 2))
    assert _states(c) == []
    assert c.host.mib["PAWSTimewait"] == 2
