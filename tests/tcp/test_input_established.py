"""The established state's receive path in tcp_input (tcp_rcv_established's
Python part and tcp_ack, net/ipv4/tcp_input.c): data that also acknowledges
ours, pure ACKs, window updates (RFC 9293 3.10.7.4 fifth, SND.WL1/SND.WL2),
ACK acceptability (RFC 5961 5.2), the retransmission timer on new ACKs
(RFC 6298 5.3), zero-window probing (RFC 1122 4.2.2.17), timestamps (RFC 7323)
and when cwnd may grow (RFC 7661, Linux tcp_is_cwnd_limited).

The stack is the passive side of a connection without options unless a test
says otherwise; the peer is played by hand.
"""

from __future__ import annotations

import errno

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .helpers import ACK, Conn, TcpOptions, passive_open

MSS = 536


def _sent(c: Conn, n: int, window: int | None = None) -> list:
    """Queue ``n`` bytes; return the segments that went out."""
    c.sk.sendmsg(bytes(range(256)) * (n // 256) + bytes(n % 256))
    return c.recv()


# --- data that also acknowledges new data --------------------------------------------
def test_data_acking_new_data_is_delivered_and_acks_ours():
    """RFC 9293 3.10.7.4: the ACK field advances SND.UNA, the text is queued
    and RCV.NXT advanced; the first data is acknowledged at once (Linux's
    quick-ACK mode at the start of a connection)."""
    c = passive_open()
    out = _sent(c, 100)
    c.ack_all(out)
    s0 = c.snd
    c.send(b"reply" * 10)
    assert c.sk.snd_una == c.rcv and c.sk.packets_out == 0
    assert not c.sk.rtx_timer.pending
    assert c.sk.recvmsg(1000) == b"reply" * 10
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, s0 + 50, b"")]
    assert c.host.woken and c.host.woken[-1] is c.sk


def test_data_acking_new_data_releases_data_the_window_held_back():
    c = passive_open(window=1000)
    out = _sent(c, 2000)
    assert sum(len(s.payload) for s in out) == 1000     # the peer's window
    c.ack_all(out)
    c.send(b"x" * 10, window=1000)
    segs = [s for s in c.recv() if s.payload]
    assert sum(len(s.payload) for s in segs) == 1000
    assert segs[0].seq == c.rcv


def test_in_order_data_after_quickack_gets_a_delayed_ack():
    """RFC 1122 4.2.3.2: a lone segment may wait for the delayed-ACK timer."""
    c = passive_open()
    c.sk.quick = 0
    c.sk.got_data = True
    out = _sent(c, 100)
    c.ack_all(out)
    c.send(b"y" * 10)
    assert c.recv() == []
    assert c.sk.delack_timer.pending
    c.host.advance(c.host.settings.tcp_delack_min)
    assert [s.ack for s in c.recv()] == [c.snd]


def test_two_full_segments_acking_new_data_get_an_immediate_ack():
    """RFC 5681 4.2: an ACK at least for every second full-sized segment."""
    c = passive_open()
    c.sk.quick = 0
    c.sk.got_data = True
    out = _sent(c, 100)
    c.ack_all(out)
    c.send(b"a" * MSS)
    assert c.recv() == []
    c.send(b"b" * MSS)
    assert [s.ack for s in c.recv()] == [c.snd]


def test_data_with_ack_of_unsent_data_is_dropped_silently():
    """SEG.ACK > SND.NXT in ESTABLISHED: Linux's tcp_rcv_established drops
    the segment without a reply (tcp_ack < 0 -> discard), where RFC 9293
    3.10.7.4 would send an ACK; the data that follows is ACKed as usual."""
    c = passive_open()
    s0 = c.snd
    c.send(b"zz", ack=c.rcv + 5)
    assert c.recv() == []
    assert c.sk.readable() == 0
    c.send(b"zz", seq=s0)
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, s0 + 2, b"")]


def test_data_with_a_too_old_ack_is_dropped_with_a_challenge():
    """RFC 5961 5.2: SEG.ACK < SND.UNA - MAX.SND.WND: discard and send an ACK."""
    c = passive_open()
    s0 = c.snd
    c.send(b"zz", ack=c.rcv - 70000)
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, s0, b"")]
    assert c.sk.readable() == 0
    assert c.host.mib["TCPChallengeACK"] == 1


def test_data_with_an_old_ack_inside_max_window_is_accepted():
    """RFC 5961 5.2: an old ACK within MAX.SND.WND is acceptable: the text
    is processed, the ACK field ignored."""
    c = passive_open()
    out = _sent(c, 1000)
    c.ack_all(out)
    c.send()
    c.send(b"old-ack", ack=c.rcv - 1000)
    assert c.sk.recvmsg(100) == b"old-ack"
    assert c.sk.snd_una == c.rcv
    assert c.host.mib["TCPChallengeACK"] == 0


def test_ack_at_the_edge_of_max_window_is_not_challenged():
    c = passive_open(window=2000)
    out = _sent(c, 999 if c.rcv % 2 == 0 else 1000)   # an odd SND.UNA - MAX.SND.WND
    c.ack_all(out)
    c.send(window=2000)
    assert c.sk.max_window == 2000
    c.send(b"q", ack=c.rcv - 2000, window=2000)
    assert c.host.mib["TCPChallengeACK"] == 0 and c.sk.recvmsg(10) == b"q"
    c.send(b"r", ack=c.rcv - 2001, window=2000)
    assert c.host.mib["TCPChallengeACK"] == 1 and c.sk.readable() == 0


# --- pure ACKs ----------------------------------------------------------------------------
def test_ack_of_new_data_restarts_the_retransmission_timer():
    """RFC 6298 5.3: an ACK of new data restarts the timer (RTO = 1 s here)."""
    c = passive_open()
    c.sk.nodelay = True
    a = _sent(c, 100)
    c.host.advance(0.5)
    b = _sent(c, 100)
    assert c.sk.rtx_timer.when == 1.0
    c.ack_all(a)
    c.send()
    assert c.sk.rtx_timer.when > 1.0
    c.host.advance(1.0)
    assert c.recv() == []
    del b


def test_ack_of_everything_stops_the_retransmission_timer():
    """RFC 6298 5.2."""
    c = passive_open()
    c.ack_all(_sent(c, 100))
    c.send()
    assert not c.sk.rtx_timer.pending
    c.host.advance(5.0)
    assert c.recv() == []


def _full(c: Conn) -> list:
    """Fill the send buffer (a write larger than it: short, so the writer
    now waits for space, SOCK_NOSPACE); return the segments that went out."""
    big = 1 << 20
    assert c.sk.sendmsg(b"w" * big) < big
    out = c.recv()
    c.host.woken.clear()
    return out


def test_ack_of_new_data_wakes_the_writer():
    """Linux tcp_check_space / sk_stream_write_space: a writer that found
    the send buffer full is woken by the ACK that makes it writeable."""
    c = passive_open()
    c.ack_all(_full(c))
    c.send()
    assert c.host.woken == [c.sk]


def test_ack_wakes_no_writer_when_none_waits_for_space():
    """tcp_check_space tests SOCK_NOSPACE first: with every write taken
    whole, nobody waits for space and an ACK wakes nobody."""
    c = passive_open()
    c.ack_all(_sent(c, 100))
    c.host.woken.clear()
    c.send()
    assert c.host.woken == []


def test_writer_sleeps_until_the_free_space_is_half_of_what_is_queued():
    """sk_stream_write_space wakes only when __sk_stream_is_writeable: free
    space >= half the bytes queued (sk_stream_min_wspace); an ACK freeing
    less leaves the writer waiting (SOCK_NOSPACE stays set), the first one
    leaving enough wakes it, once."""
    c = passive_open()
    out = _full(c)
    woke = []
    for _ in range(20):
        for seg in out:                   # one ACK per segment, in order
            c.send(ack=seg.seq + len(seg.payload))
            queued = len(c.sk.wq)
            writeable = c.sk.sndbuf - queued >= queued // 2
            if c.host.woken:
                woke.append(writeable)
                c.host.woken.clear()
            elif not woke:
                assert not writeable      # writeable, and the writer still asleep
        out = c.recv()
        if not out:
            break
    assert woke == [True]                 # once, when writeable


def test_writer_that_polled_no_space_is_woken():
    """tcp_poll sets SOCK_NOSPACE when it finds the sock not writeable: a
    writer that asked (stream_writeable, send_space) and waits is woken."""
    c = passive_open()
    out = _full(c)
    c.sk.nospace = False              # the short write's flag, taken away
    assert not c.sk.stream_writeable() and c.sk.send_space() == 0
    c.ack_all(out)
    c.send()
    assert c.host.woken == [c.sk]


def test_duplicate_ack_with_nothing_outstanding_changes_nothing():
    c = passive_open()
    c.host.woken.clear()
    c.send()
    c.send()
    assert c.recv() == [] and c.host.woken == []
    assert c.sk.snd_una == c.rcv


# --- window updates (RFC 9293 3.10.7.4 fifth: SND.WL1 / SND.WL2) -----------------------------
def test_window_update_in_a_pure_ack_opens_the_send_window():
    c = passive_open(window=600)
    out = _sent(c, 2000)
    assert sum(len(s.payload) for s in out) == 600
    c.send(window=2000)                  # same ACK, a larger window
    more = c.recv()
    assert sum(len(s.payload) for s in more) == 1400
    assert c.sk.snd_wnd == 2000 and c.sk.max_window == 2000


def test_window_from_an_older_segment_is_ignored():
    """SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK): a
    reordered older segment must not move the window."""
    c = passive_open(window=5000)
    s0 = c.snd
    c.send(b"a" * 10)
    c.send(b"n" * 10, window=300)        # SND.WL1 = s0 + 10, window 300
    c.recv()
    assert c.sk.snd_wnd == 300
    c.send(b"a" * 10 + b"n" * 10, seq=s0, window=9000)   # older, reaches RCV.NXT
    assert c.sk.snd_wnd == 300
    c.send(window=9000)                  # newer: taken
    assert c.sk.snd_wnd == 9000


def test_window_shrink_with_the_same_seq_and_ack_is_ignored():
    """Linux tcp_may_update_window: with SEG.SEQ = SND.WL1 and no new ACK,
    only a larger (or zero) window is taken."""
    c = passive_open(window=5000)
    c.send(window=3000)
    assert c.sk.snd_wnd == 5000
    c.send(window=6000)
    assert c.sk.snd_wnd == 6000
    c.send(window=0)
    assert c.sk.snd_wnd == 0


def test_window_from_a_newer_segment_is_taken_even_if_smaller():
    c = passive_open(window=5000)
    c.send(b"m" * 10)
    c.send(b"m" * 10, window=3000)
    assert c.sk.snd_wnd == 3000


def test_window_with_an_ack_of_new_data_is_taken_even_if_smaller():
    c = passive_open(window=5000)
    c.ack_all(_sent(c, 10))
    c.send(window=3000)
    assert c.sk.snd_wnd == 3000


def test_window_is_scaled_by_the_peer_shift():
    """RFC 7323 2.3: SND.WND = SEG.WND << Snd.Wind.Shift outside SYNs."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, wscale=3))
    c.send(b"a")
    c.send(window=1000)
    assert c.sk.snd_wnd == 8000


# --- zero-window probes ---------------------------------------------------------------
def test_answered_zero_window_probes_keep_the_connection_open():
    """RFC 1122 4.2.2.17: the sender MUST allow the connection to stay open
    indefinitely as long as the receiver keeps acknowledging the probes
    (Linux: every ACK clears icsk_probes_out in tcp_ack)."""
    c = passive_open(settings=Settings(tcp_retries2=3))
    c.send(window=0)
    c.sk.sendmsg(b"z" * 100)
    t = 0.0
    probes = 0
    while t < 400.0:
        t += 0.5
        c.host.advance(t)
        for _ in c.recv():
            probes += 1
            c.send(window=0)             # the receiver answers, window still zero
    assert probes > 3
    assert c.sk.state == TCP_ESTABLISHED and c.sk.sk_err == 0


def test_unanswered_zero_window_probes_time_out():
    c = passive_open(settings=Settings(tcp_retries2=3))
    c.send(window=0)
    c.sk.sendmsg(b"z" * 100)
    t = 0.0
    while t < 400.0 and not c.sk.sk_err:
        t += 0.5
        c.host.advance(t)
    assert c.sk.sk_err == errno.ETIMEDOUT
    assert t == 15.0                      # probes at 1, 3, 7; gives up at 15


def test_window_opening_stops_probing_and_sends_the_data():
    c = passive_open()
    c.send(window=0)
    c.sk.sendmsg(b"z" * 100)
    c.host.advance(1.0)
    assert len(c.recv()) == 1            # a probe
    c.send(window=1000)
    assert [s.payload for s in c.recv()] == [b"z" * 100]
    assert c.sk.probes_out == 0 and c.sk.backoff == 0


# --- timestamps --------------------------------------------------------------------------
def _ts_conn() -> Conn:
    return passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))


def test_pure_ack_at_rcv_nxt_updates_ts_recent_which_we_echo():
    """RFC 7323 4.3: TS.Recent = SEG.TSval for a segment at Last.ACK.sent;
    our next segment echoes it."""
    c = _ts_conn()
    c.send(opts=TcpOptions(ts_val=5000, ts_ecr=0))
    assert c.sk.ts_recent == 5000
    out = _sent(c, 10)
    assert out[0].opts.ts_ecr == 5000


def test_data_acking_new_data_updates_ts_recent():
    c = _ts_conn()
    c.ack_all(_sent(c, 10))
    c.send(b"d", opts=TcpOptions(ts_val=6000, ts_ecr=0))
    assert c.sk.ts_recent == 6000
    assert c.sk.recvmsg(10) == b"d"


def test_pure_ack_with_an_old_timestamp_is_paws_rejected():
    """Older than TS.Recent by more than one RTO's replay window (1 s at
    1200 ticks a second: tcp_disordered_ack_check; tests/tcp/test_paws_rules.py)."""
    c = _ts_conn()
    c.send(opts=TcpOptions(ts_val=5000, ts_ecr=0))
    c.send(opts=TcpOptions(ts_val=5000 - 1201, ts_ecr=0))
    assert c.host.mib["PAWSEstabRejected"] == 1
    assert c.sk.ts_recent == 5000


def test_pure_ack_without_a_timestamp_on_a_timestamp_connection_is_not_taken():
    """RFC 7323 3.2: once negotiated, a segment without TSopt (other than a
    RST) is dropped -- here: it must not advance SND.UNA on the fast path."""
    c = _ts_conn()
    out = _sent(c, 10)
    c.ack_all(out)
    c.send()
    assert c.sk.ts_recent == 101


# --- when cwnd may grow ----------------------------------------------------------------
def _reno() -> Conn:
    return passive_open(settings=Settings(tcp_congestion_control="reno"))


def test_slow_start_grows_cwnd_by_the_segments_acked_when_window_limited():
    """RFC 5681 3.1: cwnd += SMSS per ACK of new data in slow start (Linux:
    acked segments) when the window was used."""
    c = _reno()
    out = _sent(c, 10 * MSS)
    assert len(out) == 10
    c.ack_all(out[:6])
    c.send()
    assert c.sk.snd_cwnd == 16


def test_application_limited_sender_does_not_grow_cwnd():
    """RFC 7661 / Linux tcp_is_cwnd_limited: in slow start cwnd grows only
    while cwnd < 2 * packets in flight."""
    c = _reno()
    out = _sent(c, 2 * MSS)
    c.ack_all(out)
    c.send()
    assert c.sk.snd_cwnd == 10


def test_slow_start_growth_edge_is_twice_the_flight():
    c = _reno()
    out = _sent(c, 6 * MSS)              # 10 < 2 * 6: may grow
    c.ack_all(out[:1])
    c.send()
    assert c.sk.snd_cwnd == 11
    c2 = _reno()
    out = _sent(c2, 5 * MSS)             # 10 == 2 * 5: may not
    c2.ack_all(out[:1])
    c2.send()
    assert c2.sk.snd_cwnd == 10


def test_congestion_avoidance_grows_only_when_the_window_was_full():
    c = _reno()
    c.sk.snd_ssthresh = 4
    c.sk.snd_cwnd = 4
    out = _sent(c, 8 * MSS)
    assert len(out) == 4
    c.ack_all(out)
    c.send()                              # 4 acked with 4 in flight: +1
    assert c.sk.snd_cwnd == 5
    c3 = _reno()
    c3.sk.snd_ssthresh = 4
    c3.sk.snd_cwnd = 4
    out = _sent(c3, 3 * MSS)              # 3 in flight < cwnd 4: no growth
    c3.ack_all(out)
    c3.send()
    assert c3.sk.snd_cwnd == 4 and c3.sk.snd_cwnd_cnt == 0


# --- what an ACK of new data resets -----------------------------------------------------
def test_ack_of_new_data_restarts_the_retransmission_count():
    """Linux tcp_ack (icsk_retransmits = 0 when SND.UNA advances): the next
    RTO cannot give up (retransmits_timed_out needs a retransmission since
    the progress), but the episode's clock (retrans_stamp, from A's first
    retransmission at 1 s) runs on while B's retransmission is unacked, so
    the one after it does: tcp_retries2=3 is 3.0 s of it."""
    c = passive_open(settings=Settings(tcp_retries2=3))
    c.sk.nodelay = True
    a = _sent(c, 100)
    b = _sent(c, 100)
    t = 0.0
    resent = []
    while t < 3.5:
        t += 0.5
        c.host.advance(t)
        resent += [s.seq for s in c.recv()]
    assert resent == [a[0].seq, a[0].seq]           # RTOs at 1 s and 3 s
    c.ack_all(a)
    c.send()                                        # progress: A acked at 3.5 s
    resent = []
    while t < 400.0 and not c.sk.sk_err:
        t += 0.5
        c.host.advance(t)
        resent += [s.seq for s in c.recv()]
    # B goes again at once (the ACK leaves it marked lost in the Loss state),
    # then once by the RTO, and the next RTO gives up
    assert resent == [b[0].seq] * 2
    assert c.sk.sk_err == errno.ETIMEDOUT


def test_partial_ack_keeps_urgent_mode_for_the_retransmission():
    """Urgent mode lasts until the urgent byte is acknowledged (Linux
    tcp_clean_rtx_queue ends urg_mode only when snd_una reaches snd_up): a
    retransmission before that still carries URG and the pointer."""
    import socket
    c = passive_open()
    c.sk.nodelay = True
    first = _sent(c, 100)
    c.sk.sendmsg(b"abc!", socket.MSG_OOB)
    urg = c.recv()
    assert urg and urg[0].flags & 0x20 and urg[0].urg_ptr == 4
    c.ack_all(first)
    c.send()                                        # acks the plain data only
    c.host.advance(c.sk.rtx_timer.when)
    again = c.recv()
    assert [(s.seq, s.payload, s.flags & 0x20, s.urg_ptr) for s in again] == \
        [(urg[0].seq, b"abc!", 0x20, 4)]


def test_sack_blocks_are_ignored_without_sack_permitted():
    """RFC 2018 2: SACK options are used only when SACK-permitted was
    exchanged; a duplicate ACK carrying blocks is one duplicate ACK."""
    c = _reno()
    out = _sent(c, 20 * MSS)
    base = out[0].seq
    c.send(ack=base, opts=TcpOptions(sack_blocks=((base + MSS, base + 5 * MSS),)))
    assert c.sk.sacked_out == 1
    assert c.host.mib["RetransSegs"] == 0


def test_cwnd_grows_in_disorder():
    """Linux tcp_may_raise_cwnd: Disorder (SACKed data, no loss yet) does not
    stop slow start: an ACK of new data grows cwnd by what it delivered
    (tcp_cong_control's acked_sacked): two acked and one newly SACKed add
    three, the next two acked (the SACKed one already counted) two.  (RFC 6675's
    DupThresh loss detection, tcp_recovery=0: with RACK and no RTT sample yet
    the SACK above the holes would mark them lost at once.)"""
    c = passive_open(settings=Settings(tcp_congestion_control="reno", tcp_recovery=0),
                     syn_opts=TcpOptions(mss=MSS, sack_ok=True))
    out = _sent(c, 20 * MSS)
    base = out[0].seq
    sack = TcpOptions(sack_blocks=((base + 5 * MSS, base + 6 * MSS),))
    c.send(ack=base + 2 * MSS, opts=sack)
    assert c.sk.snd_cwnd == 13
    c.send(ack=base + 4 * MSS, opts=sack)
    assert c.sk.ca_state == 1                       # Disorder
    assert c.sk.snd_cwnd == 15


def test_user_timeout_counts_from_the_current_loss_episode():
    """Linux retransmits_timed_out: TCP_USER_TIMEOUT is measured from the
    first retransmission of the current episode (retrans_stamp; Linux 6.18
    gave up 3.0 s after its first RTO with a 3000 ms user timeout); an
    episode that ended with an ACK of everything leaves no trace."""
    import socket
    c = passive_open()
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)
    c.sk.nodelay = True
    a = _sent(c, 100)
    c.host.advance(1.0)
    assert [s.seq for s in c.recv()] == [a[0].seq]   # an RTO: an episode began
    c.ack_all(a)
    c.send()
    c.host.advance(10.0)
    b = _sent(c, 100)                                 # sent at 10 s
    t, resent = 10.0, []
    while t < 60.0 and not c.sk.sk_err:
        t += 0.5
        c.host.advance(t)
        resent += [(t, s.seq) for s in c.recv()]
    assert resent == [(12.0, b[0].seq), (16.0, b[0].seq)]
    assert c.sk.sk_err == errno.ETIMEDOUT and t == 17.0   # 12 s + 5 s


def test_send_buffer_grows_with_cwnd():
    """Linux tcp_ack -> tcp_sndbuf_expand after cwnd grew: room for twice
    the congestion window (twice again for overhead)."""
    c = _reno()
    out = _sent(c, 10 * MSS)
    c.ack_all(out)
    c.send()
    assert c.sk.snd_cwnd == 20
    want = min(2 * 2 * 20 * MSS, c.host.settings.tcp_wmem[2])
    assert c.sk.sendmsg(b"w" * (1 << 20)) == want


def test_ack_of_part_of_a_segment_wakes_the_writer():
    """Send space is freed by any advance of SND.UNA, even inside a segment:
    a waiting writer is woken once it is writeable."""
    c = passive_open()
    out = _full(c)
    part = out[0].seq + len(out[0].payload) * (len(out) - 1) + 100    # inside the last
    c.send(ack=part)
    assert c.sk.snd_una == part
    assert c.sk.sndbuf - len(c.sk.wq) >= len(c.sk.wq) // 2
    assert c.host.woken == [c.sk]


def test_congestion_avoidance_counts_a_window_filled_exactly_as_used():
    """Linux tcp_cwnd_validate: in flight >= cwnd is cwnd-limited, even when
    the application had no more to send."""
    c = _reno()
    c.sk.snd_ssthresh = 4
    c.sk.snd_cwnd = 4
    out = _sent(c, 4 * MSS)
    assert len(out) == 4
    c.ack_all(out)
    c.send()
    assert c.sk.snd_cwnd == 5


def test_cwnd_limited_state_is_forgotten_after_each_ack():
    """tcp_is_cwnd_limited looks at the last flight only: after a round that
    was cwnd-limited, an application-limited round adds nothing."""
    c = _reno()
    c.sk.snd_ssthresh = 4
    c.sk.snd_cwnd = 4
    out = _sent(c, 7 * MSS)                   # 4 go out: cwnd-limited
    assert len(out) == 4
    c.ack_all(out)
    c.send()
    assert (c.sk.snd_cwnd, c.sk.snd_cwnd_cnt) == (5, 0)
    rest = c.recv()
    assert len(rest) == 3                     # the rest: 3 < cwnd 5
    c.ack_all(rest)
    c.send()
    assert (c.sk.snd_cwnd, c.sk.snd_cwnd_cnt) == (5, 0)
