"""Segment arrival rules by state (tcp_rcv_state_process, tcp_rcv_synsent_state_process,
tcp_validate_incoming, tcp_reset in net/ipv4/tcp_input.c): RFC 9293 3.10.7,
RFC 5961 (RST and SYN), RFC 7323 5.3 (PAWS).

The peer is played by hand; every segment out is checked exactly.
"""

from __future__ import annotations

import errno

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import (
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
)

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

TS = TcpOptions(ts_val=1000, ts_ecr=0)


def _syn_sent(settings: Settings | None = None, setup=None):
    """The stack has sent its SYN; the peer answers to its port."""
    host = FakeHost(settings=settings)
    peer = Peer(host)
    sk = host.tcp.socket()
    if setup:
        setup(sk)
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    syn = peer.recv_one()
    peer.lport = syn.sport
    return host, peer, sk, syn


def _syn_recv():
    """Simultaneous open: our SYN crossed the peer's; we answered SYN-ACK."""
    host, peer, sk, syn = _syn_sent()
    peer.send(SYN, PEER_ISS)
    sa = peer.recv_one()
    assert (sa.flags, sa.seq, sa.ack) == (SYN | ACK, syn.seq, PEER_ISS + 1)
    assert sk.state == TCP_SYN_RECV
    return host, peer, sk, syn


def _keys(segs) -> list[tuple]:
    return [s.key() for s in segs]


# --- SYN-SENT -------------------------------------------------------------------------
@pytest.mark.parametrize("delta", [0, -5, 2, 1000])
def test_syn_sent_unacceptable_ack_gets_rst_from_the_ack(delta):
    """RFC 9293 3.10.7.3: SEG.ACK =< ISS or > SND.NXT -> <SEQ=SEG.ACK><CTL=RST>,
    with or without SYN; the connection stays in SYN-SENT."""
    _host, peer, sk, syn = _syn_sent()
    bad = syn.seq + delta
    peer.send(ACK, PEER_ISS, bad)
    assert _keys(peer.recv()) == [(RST, bad & 0xFFFFFFFF, 0, b"")]
    assert sk.state == TCP_SYN_SENT


def test_syn_sent_rst_with_unacceptable_ack_is_dropped_without_reply():
    _host, peer, sk, syn = _syn_sent()
    peer.send(RST | ACK, 0, syn.seq)
    assert peer.recv() == [] and sk.state == TCP_SYN_SENT


def test_syn_sent_rst_without_ack_is_ignored():
    """RFC 9293 3.10.7.3 second: a RST without ACK is dropped in SYN-SENT."""
    _host, peer, sk, _syn = _syn_sent()
    peer.send(RST, 0)
    assert sk.state == TCP_SYN_SENT and sk.sk_err == 0
    assert peer.recv() == []


def test_syn_sent_acceptable_ack_without_syn_is_dropped():
    """RFC 9293 3.10.7.3 fifth: neither SYN nor RST -> drop."""
    _host, peer, sk, syn = _syn_sent()
    peer.send(ACK, PEER_ISS, syn.seq + 1)
    assert sk.state == TCP_SYN_SENT and peer.recv() == []


def test_synack_establishes_and_acks_with_the_peer_isn_plus_one():
    """RFC 9293 3.10.7.3 fourth: RCV.NXT = SEG.SEQ + 1, SND.UNA = SEG.ACK,
    <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>; the window of a SYN is not scaled."""
    host, peer, sk, syn = _syn_sent()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, window=3000,
              opts=TcpOptions(mss=1200, wscale=4))
    assert _keys(peer.recv()) == [(ACK, syn.seq + 1, PEER_ISS + 1, b"")]
    assert sk.state == TCP_ESTABLISHED
    assert sk.rcv_nxt == PEER_ISS + 1 == sk.rcv_wup
    assert sk.snd_una == syn.seq + 1 == sk.snd_nxt
    assert sk.snd_wnd == 3000 and sk.snd_wl1 == PEER_ISS
    assert sk.snd_wscale == 4
    assert sk.mss_cache == 1200
    assert host.woken and host.woken[-1] is sk


def test_synack_mss_is_bounded_by_tcp_maxseg():
    _host, peer, sk, syn = _syn_sent(setup=lambda s: s.setsockopt(6, 2, 800))
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, opts=TcpOptions(mss=1200))
    assert sk.mss_clamp == 800 and sk.mss_cache == 800


def test_synack_wscale_above_14_is_taken_as_14():
    """RFC 7323 2.3: a shift count above 14 is used as 14."""
    _host, peer, sk, syn = _syn_sent()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, opts=TcpOptions(mss=1200, wscale=15))
    assert sk.snd_wscale == 14


def test_synack_without_sack_permitted_turns_sack_off():
    _host, peer, sk, syn = _syn_sent()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, opts=TcpOptions(mss=1200, wscale=2))
    assert not sk.sack_ok and sk.wscale_ok
    assert sk.window_clamp == 65535 << sk.rcv_wscale


def test_synack_with_timestamps_records_ts_recent():
    host, peer, sk, syn = _syn_sent()
    host.now = 0.25
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1,
              opts=TcpOptions(mss=1200, ts_val=777, ts_ecr=syn.opts.ts_val))
    assert sk.tstamp_ok and sk.ts_recent == 777 and sk.ts_recent_stamp == 0.25
    ack = peer.recv_one()
    assert ack.opts.ts_ecr == 777


def test_synack_echoing_a_timestamp_we_never_sent_is_rejected():
    """Linux tcp_rcv_synsent_state_process: PAWS on the SYN-ACK's TSecr, which
    must not be later than our clock (PAWSActiveRejected)."""
    host, peer, sk, syn = _syn_sent()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1,
              opts=TcpOptions(mss=1200, ts_val=777, ts_ecr=syn.opts.ts_val + 100000))
    assert sk.state == TCP_SYN_SENT
    assert host.mib["PAWSActiveRejected"] == 1
    assert peer.recv() == []


def test_synack_echoing_our_current_timestamp_is_accepted():
    host, peer, sk, syn = _syn_sent()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1,
              opts=TcpOptions(mss=1200, ts_val=777, ts_ecr=syn.opts.ts_val))
    assert sk.state == TCP_ESTABLISHED
    assert host.mib["PAWSActiveRejected"] == 0


def test_rst_ack_in_syn_sent_is_connection_refused():
    host, peer, sk, syn = _syn_sent()
    peer.send(RST | ACK, 0, syn.seq + 1)
    assert sk.state == TCP_CLOSE and sk.sk_err == errno.ECONNREFUSED
    assert host.mib["EstabResets"] == 0
    assert peer.recv() == []


# --- SYN-RECEIVED (simultaneous open) -------------------------------------------------
@pytest.mark.parametrize("delta", [0, 2, -1000])
def test_syn_received_unacceptable_ack_gets_rst_from_the_ack(delta):
    """RFC 9293 3.10.7.4 fifth, SYN-RECEIVED: unless SND.UNA < SEG.ACK =< SND.NXT,
    <SEQ=SEG.ACK><CTL=RST>; the connection stays in SYN-RECEIVED."""
    _host, peer, sk, syn = _syn_recv()
    bad = (syn.seq + delta) & 0xFFFFFFFF
    peer.send(ACK, PEER_ISS + 1, bad)
    assert _keys(peer.recv()) == [(RST, bad, 0, b"")]
    assert sk.state == TCP_SYN_RECV


def test_syn_received_acceptable_ack_establishes_and_takes_the_window():
    host, peer, sk, syn = _syn_recv()
    peer.send(ACK, PEER_ISS + 1, syn.seq + 1, window=4000)
    assert sk.state == TCP_ESTABLISHED
    assert sk.snd_una == syn.seq + 1
    assert sk.snd_wnd == 4000 and sk.max_window >= 4000 and sk.snd_wl1 == PEER_ISS + 1
    assert host.woken[-1] is sk
    assert peer.recv() == []


def test_syn_received_ack_with_data_establishes_and_delivers():
    _host, peer, sk, syn = _syn_recv()
    peer.send(ACK, PEER_ISS + 1, syn.seq + 1, payload=b"hello")
    assert sk.state == TCP_ESTABLISHED
    assert sk.recvmsg(100) == b"hello"


def test_syn_received_segment_without_ack_is_dropped():
    _host, peer, sk, _syn = _syn_recv()
    peer.send(0, PEER_ISS + 1, 0, payload=b"x")
    assert sk.state == TCP_SYN_RECV and peer.recv() == []


def test_syn_received_fin_with_the_ack_goes_to_close_wait():
    host, peer, sk, syn = _syn_recv()
    peer.send(ACK | FIN, PEER_ISS + 1, syn.seq + 1)
    assert sk.state == TCP_CLOSE_WAIT
    # the ACK of the FIN is delayed (tcp_fin: pingpong mode)
    assert peer.recv() == []
    host.advance(host.now + host.settings.tcp_delack_min)
    assert _keys(peer.recv()) == [(ACK, syn.seq + 1, PEER_ISS + 2, b"")]


# --- RST (RFC 5961 3.2) and tcp_reset --------------------------------------------------
def test_rst_in_close_wait_is_epipe_and_counts_estab_reset():
    c = passive_open()
    c.send(flags=ACK | FIN)
    c.recv()
    assert c.sk.state == TCP_CLOSE_WAIT
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == errno.EPIPE
    assert c.host.mib["EstabResets"] == 1


def test_rst_in_fin_wait1_is_econnreset_but_not_an_estab_reset():
    """tcp_reset: ECONNRESET; EstabResets counts only ESTABLISHED/CLOSE-WAIT
    (RFC 1213 tcpEstabResets)."""
    c = passive_open()
    c.sk.shutdown(1)
    c.recv()
    assert c.sk.state == TCP_FIN_WAIT1
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == errno.ECONNRESET
    assert c.host.mib["EstabResets"] == 0


def test_rst_to_an_orphan_sets_no_error():
    c = passive_open()
    c.sk.close()
    c.recv()
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == 0


def test_rst_at_the_right_edge_of_the_window_is_challenged_not_dropped():
    """RFC 5961 3.2: any RST inside the window that is not exact -> challenge."""
    c = passive_open()
    wnd = c.sk.rcv_wnd
    c.send(flags=RST, seq=c.snd + wnd - 1)
    assert c.sk.state == TCP_ESTABLISHED
    assert _keys(c.recv()) == [(ACK, c.rcv, c.snd, b"")]


def test_rst_ignores_paws():
    """RFC 7323 5.3 / Linux tcp_validate_incoming: PAWS is not applied to a RST."""
    c = passive_open(syn_opts=TS)
    c.send(opts=TcpOptions(ts_val=2000, ts_ecr=0))
    c.send(flags=RST, opts=TcpOptions(ts_val=1, ts_ecr=0))
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == errno.ECONNRESET


# --- SYN in a synchronized state (RFC 5961 4.2) --------------------------------------------
def test_out_of_window_syn_gets_a_challenge_ack_and_counts():
    c = passive_open()
    c.send(flags=SYN, seq=c.snd + 100000)
    assert c.sk.state == TCP_ESTABLISHED
    assert _keys(c.recv()) == [(ACK, c.rcv, c.snd, b"")]
    assert c.host.mib["TCPSYNChallenge"] == 1 and c.host.mib["TCPChallengeACK"] == 1


def test_syn_ack_in_window_in_established_gets_challenge_ack():
    c = passive_open()
    s0 = c.snd
    c.send(flags=SYN | ACK)
    assert c.sk.state == TCP_ESTABLISHED
    assert _keys(c.recv()) == [(ACK, c.rcv, s0, b"")]
    assert c.host.mib["TCPSYNChallenge"] == 1


# --- sequence acceptability (RFC 9293 3.10.7.4 first) --------------------------------------
def test_segment_ending_at_rcv_nxt_is_acceptable():
    """A zero-length segment at RCV.NXT and a segment ending exactly there (an
    old duplicate) are both acceptable: processed, no dupack for the first."""
    c = passive_open()
    c.send(b"abc")
    c.recv()
    c.send()
    assert c.recv() == []


def test_segment_starting_at_the_window_edge_is_not_acceptable():
    c = passive_open()
    wnd = c.sk.rcv_wnd
    c.send(b"x", seq=c.snd + wnd + 1)
    assert _keys(c.recv()) == [(ACK, c.rcv, c.snd, b"")]
    assert not c.sk.ofo


def test_out_of_window_data_is_not_rate_limited():
    """tcp_oow_rate_limited only limits segments without data."""
    c = passive_open()
    for _ in range(3):
        c.send(b"x" * 10, seq=c.snd + 100000)
    assert len(c.recv()) == 3
    assert c.host.mib["TCPACKSkippedSeq"] == 0


def test_out_of_window_pure_ack_rate_limit_counts_skips_and_expires():
    c = passive_open()
    c.send(seq=c.snd + 100000)
    c.send(seq=c.snd + 100000)
    assert len(c.recv()) == 1 and c.host.mib["TCPACKSkippedSeq"] == 1
    c.host.advance(0.5)                   # exactly tcp_invalid_ratelimit later
    c.send(seq=c.snd + 100000)
    assert len(c.recv()) == 1


def test_old_duplicate_below_the_window_gets_dsack():
    """tcp_send_dupack: an old segment is acknowledged at once with a D-SACK
    (RFC 2883) and counted as DelayedACKLost."""
    c = passive_open(syn_opts=TcpOptions(sack_ok=True))
    s0 = c.snd
    c.send(b"x" * 100)
    c.recv()
    c.sk.rcv_wup = c.sk.rcv_nxt            # as after a window update
    c.send(b"x" * 10, seq=s0)
    segs = c.recv()
    assert [(s.flags, s.ack, s.opts.sack_blocks) for s in segs] == \
        [(ACK, s0 + 100, ((s0, s0 + 10),))]
    assert c.host.mib["DelayedACKLost"] == 1


def test_paws_rejected_segment_crossing_rcv_nxt_is_dsacked_up_to_rcv_nxt():
    """Linux tcp_send_dupack: the D-SACK block of a rejected old segment ends
    at RCV.NXT (only that part is a duplicate)."""
    c = passive_open(syn_opts=TcpOptions(sack_ok=True, ts_val=1000, ts_ecr=0))
    s0 = c.snd
    c.send(b"x" * 100, opts=TcpOptions(ts_val=2000, ts_ecr=0))
    c.recv()
    c.send(b"y" * 100, seq=s0 + 50, opts=TcpOptions(ts_val=1500, ts_ecr=0))
    segs = c.recv()
    assert [(s.flags, s.ack, s.opts.sack_blocks) for s in segs] == \
        [(ACK, s0 + 100, ((s0 + 50, s0 + 100),))]
    assert c.host.mib["PAWSEstabRejected"] == 1 and c.host.mib["DelayedACKLost"] == 1
    assert c.sk.recvmsg(1000) == b"x" * 100


def test_paws_rejected_pure_ack_is_answered_without_dsack():
    c = passive_open(syn_opts=TcpOptions(sack_ok=True, ts_val=1000, ts_ecr=0))
    c.send(b"x", opts=TcpOptions(ts_val=2000, ts_ecr=0))
    c.recv()
    c.send(opts=TcpOptions(ts_val=1500, ts_ecr=0))
    segs = c.recv()
    assert [(s.flags, s.ack, s.opts.sack_blocks) for s in segs] == [(ACK, c.snd, ())]
    assert c.host.mib["DelayedACKLost"] == 0


# --- PAWS (RFC 7323 5.3) ------------------------------------------------------------------
def _ts_conn() -> Conn:
    c = passive_open(syn_opts=TS)
    c.send(b"a", opts=TcpOptions(ts_val=2000, ts_ecr=0))
    c.recv()
    assert c.sk.ts_recent == 2000
    return c


def test_paws_drops_an_older_timestamp_and_sends_a_dupack():
    """Two ticks older than TS.Recent (Linux allows one: TCP_PAWS_WINDOW)."""
    c = _ts_conn()
    c.send(b"b", opts=TcpOptions(ts_val=1998, ts_ecr=0))
    segs = c.recv()
    assert [(s.flags, s.ack) for s in segs] == [(ACK, c.snd - 1)]
    assert c.host.mib["PAWSEstabRejected"] == 1
    assert c.sk.recvmsg(10) == b"a"


def test_paws_accepts_an_equal_timestamp():
    c = _ts_conn()
    c.send(b"b", opts=TcpOptions(ts_val=2000, ts_ecr=0))
    assert c.host.mib["PAWSEstabRejected"] == 0
    assert c.sk.recvmsg(10) == b"ab"


def test_paws_accepts_an_old_timestamp_after_24_days_idle():
    """RFC 7323 5.5: ts_recent older than 24 days is not trusted."""
    c = _ts_conn()
    c.host.now = c.sk.ts_recent_stamp + 24 * 86400 + 1
    c.send(b"b", opts=TcpOptions(ts_val=1, ts_ecr=0))
    assert c.host.mib["PAWSEstabRejected"] == 0
    assert c.sk.recvmsg(10) == b"ab"


def test_paws_still_applies_at_exactly_24_days():
    c = _ts_conn()
    c.host.now = c.sk.ts_recent_stamp + 24 * 86400
    c.send(b"b", opts=TcpOptions(ts_val=1, ts_ecr=0))
    assert c.host.mib["PAWSEstabRejected"] == 1


def test_segment_without_timestamp_is_not_paws_checked():
    c = _ts_conn()
    c.send(b"b")
    assert c.host.mib["PAWSEstabRejected"] == 0


def test_ts_recent_follows_the_segment_at_the_left_window_edge():
    """RFC 7323 4.3: TS.Recent = SEG.TSval when SEG.SEQ =< Last.ACK.sent."""
    c = _ts_conn()
    c.send(b"b", opts=TcpOptions(ts_val=3000, ts_ecr=0), flags=ACK | FIN)
    assert c.sk.ts_recent == 3000


# --- FIN acknowledged: FIN-WAIT-1, CLOSING, LAST-ACK -----------------------------------
def test_ack_of_our_fin_moves_fin_wait1_to_fin_wait2():
    c = passive_open()
    c.sk.shutdown(1)
    c.ack_all(c.recv())
    c.send()
    assert c.sk.state == TCP_FIN_WAIT2
    assert c.sk.sk_shutdown & SEND_SHUTDOWN
    assert c.host.woken[-1] is c.sk


def test_ack_short_of_our_fin_stays_in_fin_wait1():
    c = passive_open()
    c.sk.sendmsg(b"abc")
    c.sk.shutdown(1)
    segs = c.recv()
    c.send(ack=c.rcv + 3)                  # the data, not the FIN
    assert c.sk.state == TCP_FIN_WAIT1
    c.ack_all(segs)
    c.send()
    assert c.sk.state == TCP_FIN_WAIT2


def test_data_in_fin_wait2_is_still_delivered():
    c = passive_open()
    c.sk.shutdown(1)
    c.ack_all(c.recv())
    c.send()
    c.send(b"late")
    assert c.sk.recvmsg(10) == b"late"
    assert c.sk.state == TCP_FIN_WAIT2


def test_orphan_fin_wait2_with_the_peer_fin_goes_to_time_wait():
    c = passive_open()
    c.sk.close()
    c.ack_all(c.recv())
    c.send(flags=ACK | FIN)
    assert _keys(c.recv()) == [(ACK, c.rcv, c.snd, b"")]
    assert [r.state for r in c.host.tcp.connections()
            if r.remote.endswith(str(c.peer.port))] == ["TIME-WAIT"]


def test_orphan_receiving_data_with_its_fin_ack_is_reset():
    """Linux tcp_rcv_state_process FIN-WAIT-1: an orphan that gets new data
    aborts with a RST (TCPAbortOnData)."""
    c = passive_open()
    c.sk.close()
    c.ack_all(c.recv())
    c.send(b"more")
    segs = c.recv()
    assert [s.flags & RST for s in segs] == [RST]
    assert c.host.mib["TCPAbortOnData"] == 1
    assert c.sk.state == TCP_CLOSE


def test_orphan_in_fin_wait1_receiving_data_is_reset():
    c = passive_open()
    c.sk.sendmsg(b"q" * 10)
    c.sk.close()
    c.recv()
    c.send(b"more")                         # acks nothing of ours
    assert [s.flags & RST for s in c.recv()] == [RST]
    assert c.host.mib["TCPAbortOnData"] == 1


def test_ack_of_our_fin_in_closing_enters_time_wait():
    c = passive_open()
    c.sk.shutdown(1)
    fin = c.recv()
    c.send(flags=ACK | FIN)                 # crosses our FIN
    c.recv()
    assert c.sk.state == TCP_CLOSING
    c.ack_all(fin)
    c.send()
    assert c.sk.state == TCP_CLOSE
    assert [r.state for r in c.host.tcp.connections()
            if r.remote.endswith(str(c.peer.port))] == ["TIME-WAIT"]


def test_ack_short_of_our_fin_stays_in_closing():
    c = passive_open()
    c.sk.shutdown(1)
    c.recv()
    c.send(flags=ACK | FIN)
    c.recv()
    c.send()                                # acks nothing new
    assert c.sk.state == TCP_CLOSING


def test_ack_of_our_fin_in_last_ack_closes():
    c = passive_open()
    c.send(flags=ACK | FIN)
    c.recv()
    c.sk.shutdown(1)
    fin = c.recv()
    assert c.sk.state == TCP_LAST_ACK
    c.send()                                # not the FIN yet
    assert c.sk.state == TCP_LAST_ACK
    c.ack_all(fin)
    c.send()
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == 0


def test_data_after_the_peer_fin_is_ignored_in_close_wait():
    """RFC 9293 3.10.7.4 seventh: CLOSE-WAIT/CLOSING/LAST-ACK ignore segment text."""
    c = passive_open()
    c.send(flags=ACK | FIN)
    c.recv()
    c.send(b"zzz")
    assert c.sk.readable() == 0 and c.sk.state == TCP_CLOSE_WAIT
    assert c.sk.sk_shutdown & RCV_SHUTDOWN


def test_ack_in_close_wait_releases_queued_data():
    c = passive_open()
    c.send(flags=ACK | FIN)
    c.recv()
    c.sk.sendmsg(b"A" * 2000)
    first = c.recv()
    assert first
    c.ack_all(first)
    c.send()
    assert c.sk.snd_una == c.rcv


# --- simultaneous open: the options of the peer's SYN --------------------------------------
def test_simultaneous_open_synack_offers_only_the_options_the_syn_had():
    """RFC 7323 1.3/2.2 and RFC 2018 2: a <SYN,ACK> carries Window Scale,
    SACK-permitted and Timestamps only if the <SYN> it answers did."""
    _host, peer, sk, syn = _syn_sent()
    assert syn.opts.wscale is not None and syn.opts.sack_ok and syn.opts.ts_val is not None
    peer.send(SYN, PEER_ISS, opts=TcpOptions(mss=1000))
    sa = peer.recv_one()
    assert sa.flags == SYN | ACK
    assert sa.opts.wscale is None and not sa.opts.sack_ok and sa.opts.ts_val is None
    assert sk.rcv_wscale == 0 and sk.snd_wscale == 0
    assert sk.mss_cache == 1000            # the peer's MSS, not our route's


def test_simultaneous_open_synack_keeps_the_options_the_syn_had():
    _host, peer, sk, syn = _syn_sent()
    peer.send(SYN, PEER_ISS, opts=TcpOptions(mss=1000, wscale=2, sack_ok=True,
                                              ts_val=55, ts_ecr=0))
    sa = peer.recv_one()
    assert sa.opts.wscale == syn.opts.wscale and sa.opts.sack_ok
    assert sa.opts.ts_ecr == 55
    assert sk.snd_wscale == 2 and sk.sack_ok and sk.tstamp_ok
    assert sk.mss_cache == 1000 - 12       # less the timestamp option
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, window=1000,
              opts=TcpOptions(ts_val=56, ts_ecr=sa.opts.ts_val))
    assert sk.state == TCP_ESTABLISHED
    assert sk.snd_wnd == 1000              # a SYN's window is never scaled


def test_simultaneous_open_retransmits_its_synack():
    """RFC 9293 3.10.7.3 / 3.8.1: in SYN-RECEIVED the retransmission timer
    resends our SYN, now with the ACK of the peer's SYN."""
    host, peer, sk, syn = _syn_recv()
    host.advance(sk.rtx_timer.when)
    again = peer.recv()
    assert [(s.flags, s.seq, s.ack) for s in again] == [(SYN | ACK, syn.seq, PEER_ISS + 1)]


def test_syn_with_data_in_window_is_challenged_and_its_data_dropped():
    """RFC 5961 4.2: a SYN in a synchronized state gets a challenge ACK and
    the segment is discarded, data and all."""
    c = passive_open()
    s0 = c.snd
    c.send(b"payload", flags=SYN | ACK)
    assert _keys(c.recv()) == [(ACK, c.rcv, s0, b"")]
    assert c.sk.readable() == 0 and c.sk.rcv_nxt == s0


def test_retransmitted_fin_in_close_wait_is_acked_at_once():
    """RFC 9293 3.10.7.4: a duplicate (here the peer's FIN again, its ACK was
    lost) gets an ACK, in CLOSE-WAIT too."""
    c = passive_open()
    s0 = c.snd
    c.send(b"ab", flags=ACK | FIN)
    c.recv()
    c.send(b"ab", flags=ACK | FIN, seq=s0)
    assert _keys(c.recv()) == [(ACK, c.rcv, s0 + 3, b"")]
    assert c.sk.state == TCP_CLOSE_WAIT


def test_window_update_in_close_wait_releases_data_the_window_held_back():
    c = passive_open(window=600)
    c.send(flags=ACK | FIN, window=600)
    c.recv()
    c.sk.sendmsg(b"W" * 2000)
    first = c.recv()
    assert sum(len(s.payload) for s in first) == 600
    c.send(window=3000)                     # same ACK, the window opens
    more = c.recv()
    assert sum(len(s.payload) for s in more) == 1400


def test_old_pure_ack_below_the_window_gets_a_plain_dupack():
    """tcp_send_dupack: only a segment with data is a duplicate to D-SACK
    (and counts DelayedACKLost)."""
    c = passive_open(syn_opts=TcpOptions(sack_ok=True))
    s0 = c.snd
    c.send(b"x" * 100)
    c.recv()
    c.send(seq=s0 - 10)
    segs = c.recv()
    assert [(s.flags, s.ack, s.opts.sack_blocks) for s in segs] == [(ACK, s0 + 100, ())]
    assert c.host.mib["DelayedACKLost"] == 0


def test_old_duplicate_below_the_window_without_dsack_setting_has_no_block():
    c = passive_open(settings=Settings(tcp_dsack=0), syn_opts=TcpOptions(sack_ok=True))
    s0 = c.snd
    c.send(b"x" * 100)
    c.recv()
    c.send(b"x" * 10, seq=s0)
    segs = c.recv()
    assert [(s.flags, s.ack, s.opts.sack_blocks) for s in segs] == [(ACK, s0 + 100, ())]
    assert c.host.mib["DelayedACKLost"] == 1


def test_old_duplicate_below_the_window_restarts_quickack_mode():
    """tcp_send_dupack -> tcp_enter_quickack_mode: the next ACKs go out at once."""
    c = passive_open()
    s0 = c.snd
    c.send(b"x" * 100)
    c.recv()
    c.sk.quick = 0
    c.send(b"x" * 10, seq=s0)
    assert len(c.recv()) == 1
    c.send(b"y" * 10)
    assert len(c.recv()) == 1             # quick-ACK: not delayed


def test_simultaneous_open_remembers_the_window_of_the_peer_syn():
    """MAX.SND.WND (Linux max_window) counts every window the peer offered,
    the SYN's too: segments are only cut to half of it (tcp_bound_to_half_wnd)."""
    _host, peer, sk, syn = _syn_sent()
    peer.send(SYN, PEER_ISS, window=60000, opts=TcpOptions(mss=1460))
    peer.recv_one()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, window=2000)
    assert sk.max_window == 60000 and sk.snd_wnd == 2000
    sk.sendmsg(b"x" * 3000)
    assert [len(s.payload) for s in peer.recv()] == [1460]


def test_active_open_guesses_the_peer_segment_size_from_its_mss():
    """Linux tcp_initialize_rcv_mss: the receiver's guess of the peer's
    segment size starts at min(MSS, 536); two such segments get an ACK at once."""
    _host, peer, sk, syn = _syn_sent()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, opts=TcpOptions(mss=200))
    peer.recv()
    assert sk.rcv_mss == 200
    sk.quick = 0
    sk.got_data = True
    peer.send(ACK, PEER_ISS + 1, syn.seq + 1, payload=b"a" * 200)
    assert peer.recv() == []                  # one segment: the ACK waits
    peer.send(ACK, PEER_ISS + 201, syn.seq + 1, payload=b"b" * 200)
    assert [s.ack for s in peer.recv()] == [PEER_ISS + 401]


def test_in_window_rst_with_data_is_challenged_and_its_data_dropped():
    """RFC 5961 3.2: a RST in the window but not at RCV.NXT gets a challenge
    ACK and the segment is discarded, text and all."""
    c = passive_open()
    s0 = c.snd
    c.send(b"rstdata", flags=RST | ACK, seq=s0 + 100)
    assert _keys(c.recv()) == [(ACK, c.rcv, s0, b"")]
    assert c.sk.state == TCP_ESTABLISHED
    assert not c.sk.ofo and c.host.mib["TCPOFOQueue"] == 0
