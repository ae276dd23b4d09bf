"""The send loop for plain data (tcp_fast.write_xmit, Linux tcp_write_xmit), one rule per test.

Each test builds a control block on one twin's TcpCb (tests/tcp/fastcb.py), so
the rules are checked on the pure twin and the compiled module alike, in both
builds: segments of at most one MSS, PSH where a write ends and on the last
segment of each burst (Linux's GSO packet), the congestion window against RFC 6675's in-flight count, the
receiver's window (RFC 9293 3.8.6.2.1: never send past SND.UNA + SND.WND),
Nagle with Minshall's variant (RFC 896, RFC 1122 4.2.3.4, Linux
tcp_nagle_check / tcp_minshall_check), and the frame each segment goes out in.
"""

from __future__ import annotations

import random

import pytest
from conftest import twin_fixture

from .fastcb import hook_fixture, make_cb, parse_frame, queue_data

tf = twin_fixture("tcp_fast", "tf")
hooks = hook_fixture()

ACK, PSH = 0x10, 0x08
EOB = 0x100         # TxSeg.flags: the last segment of its burst (tcp_states.TCPCB_EOB)
MSS = 1000


def _xmit(tf, sk, *, mss: int = MSS, now: float = 1.0, ttl: int = 64,
          max_segs: int = 0) -> tuple[int, list]:
    out: list = []
    n = tf.write_xmit(sk, mss, out, 3, None, None, ttl, now, 0, False, max_segs)
    return n, [parse_frame(f) for (_ifx, f) in out]


def _pattern(n: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(n))


def _sk(tf, data: bytes = b"", **kw):
    sk = make_cb(tf, **kw)
    queue_data(sk, data)
    return sk


# --- segmentation ------------------------------------------------------------------------

def test_data_goes_out_in_mss_sized_segments_and_psh_marks_the_last(tf, hooks):
    """tcp_write_xmit: full MSS segments, the remainder last; PSH on the one
    that empties the send queue (tcp_mark_push on the last skb of a write)."""
    data = _pattern(2500)
    sk = _sk(tf, data)
    n, segs = _xmit(tf, sk)
    assert n == 3
    assert [(th.seq, th.flags, len(p)) for _ip, th, p in segs] == [
        (5000, ACK, 1000), (6000, ACK, 1000), (7000, ACK | PSH, 500)]
    assert b"".join(p for _ip, _th, p in segs) == data


def test_a_queue_of_exactly_one_mss_is_one_segment_with_psh(tf, hooks):
    sk = _sk(tf, _pattern(MSS))
    n, segs = _xmit(tf, sk)
    assert n == 1 and [(th.flags, len(p)) for _ip, th, p in segs] == [(ACK | PSH, MSS)]


def test_psh_ends_each_burst_of_max_segs(tf, hooks):
    """A burst (Linux's GSO skb) is at most max_segs segments (tcp_tso_autosize);
    __tcp_transmit_skb forces PSH on every GSO packet, so on the last segment
    of each burst, and tcp_mark_push put one where the write ends."""
    sk = _sk(tf, _pattern(4500))
    n, segs = _xmit(tf, sk, max_segs=2)
    assert n == 5
    assert [(th.flags, len(p)) for _ip, th, p in segs] == [
        (ACK, 1000), (ACK | PSH, 1000), (ACK, 1000), (ACK | PSH, 1000), (ACK | PSH, 500)]


def test_a_burst_is_at_most_half_the_cwnd(tf, hooks):
    """tcp_cwnd_test: "ensure we have at least 2 GSO packets in flight"; the
    write of 12 segments into a cwnd of 10 goes as two bursts of five."""
    sk = _sk(tf, _pattern(12 * MSS), snd_cwnd=10)
    n, segs = _xmit(tf, sk)
    assert n == 10
    assert [i for i, (_ip, th, _p) in enumerate(segs) if th.flags & PSH] == [4, 9]


def test_a_lone_segment_cut_from_a_write_has_no_psh(tf, hooks):
    """A burst of one that does not end the write carries no PSH (Linux
    forces PSH on GSO packets only); the PSH of the write's end stays with
    the rest, and is recorded with the segment that carries it, as the end
    of each burst is (a retransmission of several of one burst is one GSO
    packet again)."""
    sk = _sk(tf, _pattern(3 * MSS), snd_cwnd=1)
    n, segs = _xmit(tf, sk)
    assert n == 1 and segs[0][1].flags == ACK
    assert [s.flags for s in sk.rtx] == [EOB]
    sk.snd_cwnd = 3
    n, segs = _xmit(tf, sk)
    assert [th.flags for _ip, th, _p in segs] == [ACK, ACK | PSH]
    assert [s.flags for s in sk.rtx] == [EOB, EOB, PSH | EOB]     # bursts of cwnd/2 = 1


def test_each_segment_is_recorded_for_retransmission(tf, hooks):
    """Every segment sent joins the retransmit queue ([seq, end_seq), no SYN
    or FIN, PSH if the write ends in it, the end of its burst, its send time),
    packets_out counts it and snd_nxt moves past it."""
    sk = _sk(tf, _pattern(1500))
    n, _segs = _xmit(tf, sk, now=2.5)
    assert n == 2
    assert [(s.seq, s.end_seq, s.flags, s.sacked, s.retrans, s.tstamp) for s in sk.rtx] == [
        (5000, 6000, 0, 0, 0, 2.5), (6000, 6500, PSH | EOB, 0, 0, 2.5)]
    assert sk.packets_out == 2 and sk.snd_nxt == 6500
    # the send queue keeps the bytes until they are acknowledged
    assert len(sk.wq) == 1500 and sk.wq_seq == 5000


def test_sending_resumes_at_snd_nxt_with_the_bytes_at_that_offset(tf, hooks):
    """The payload of the next segment is the send queue at snd_nxt - wq_seq,
    in sequence space modulo 2**32 (the queue may start just below the wrap)."""
    wq_seq = 0xFFFFFF00
    data = _pattern(1201)
    # 0x101 (257) bytes are already in flight, across the wrap
    sk = _sk(tf, wq_seq=wq_seq, write_seq=wq_seq, snd_una=wq_seq, snd_sml=wq_seq,
             snd_nxt=(wq_seq + 257) & 0xFFFFFFFF, packets_out=1)
    queue_data(sk, data)
    sk.rtx.append(tf.TxSeg(wq_seq, (wq_seq + 257) & 0xFFFFFFFF, 0, 0.5))
    n, segs = _xmit(tf, sk)
    assert n == 1
    (_ip, th, payload), = segs
    assert th.seq == 1 and payload == data[257:]
    assert sk.snd_nxt == (wq_seq + 1201) & 0xFFFFFFFF == 0x3B1


def test_nothing_to_send_sends_nothing(tf, hooks):
    sk = _sk(tf)
    assert _xmit(tf, sk) == (0, [])
    assert sk.rtx == [] and sk.packets_out == 0 and hooks.calls == []


def test_nothing_is_sent_when_snd_nxt_is_past_write_seq(tf, hooks):
    """After a FIN, snd_nxt is one past the last data byte: nothing unsent."""
    sk = _sk(tf, _pattern(10))
    sk.snd_nxt = sk.snd_sml = (sk.write_seq + 1) & 0xFFFFFFFF
    sk.packets_out = 1
    assert _xmit(tf, sk) == (0, [])


def test_a_one_byte_tail_is_sent(tf, hooks):
    sk = _sk(tf, b"z")
    n, segs = _xmit(tf, sk)
    assert n == 1 and segs[0][2] == b"z" and segs[0][1].flags == ACK | PSH


def test_a_send_queue_shorter_than_write_seq_is_an_error(tf, hooks):
    sk = _sk(tf, _pattern(100))
    sk.write_seq = (sk.write_seq + 1) & 0xFFFFFFFF
    with pytest.raises(RuntimeError):
        _xmit(tf, sk)


# --- congestion window (RFC 5681, RFC 6675 pipe) --------------------------------------------

@pytest.mark.parametrize("packets_out, sacked_out, lost_out, retrans_out, cwnd, expect", [
    (0, 0, 0, 0, 3, 3),      # an idle connection: cwnd segments
    (4, 1, 1, 1, 5, 2),      # in flight 4 - (1 + 1) + 1 = 3
    (4, 2, 0, 0, 5, 3),      # SACKed segments have left the network
    (4, 0, 2, 0, 5, 3),      # so have the ones marked lost...
    (4, 0, 2, 2, 5, 1),      # ...until they are retransmitted
    (5, 0, 0, 0, 5, 0),      # in flight == cwnd: nothing
    (6, 0, 0, 0, 5, 0),
])
def test_new_segments_only_while_in_flight_is_below_cwnd(tf, hooks, packets_out, sacked_out,
                                                          lost_out, retrans_out, cwnd, expect):
    """tcp_cwnd_test: a new segment goes out while tcp_packets_in_flight =
    packets_out - (sacked_out + lost_out) + retrans_out is below snd_cwnd;
    stopping there marks the connection cwnd-limited (tcp_is_cwnd_limited)."""
    una = 5000
    sk = _sk(tf, snd_una=una, snd_nxt=una + packets_out * 10, snd_sml=una, wq_seq=una,
             write_seq=una, packets_out=packets_out, sacked_out=sacked_out, lost_out=lost_out,
             retrans_out=retrans_out, snd_cwnd=cwnd)
    queue_data(sk, _pattern(packets_out * 10 + 10 * MSS))
    n, segs = _xmit(tf, sk)
    assert n == expect == len(segs)
    assert sk.is_cwnd_limited
    assert sk.packets_out == packets_out + expect


def test_running_out_of_data_is_not_cwnd_limited(tf, hooks):
    sk = _sk(tf, _pattern(2 * MSS), snd_cwnd=10)
    n, _ = _xmit(tf, sk)
    assert n == 2 and not sk.is_cwnd_limited


# --- the receiver's window ----------------------------------------------------------------

def test_a_segment_that_ends_at_the_right_window_edge_is_sent(tf, hooks):
    """RFC 9293 3.8.6.2.1 / tcp_snd_wnd_test: a segment may end at SND.UNA + SND.WND..."""
    sk = _sk(tf, _pattern(3 * MSS), snd_wnd=2 * MSS)
    n, segs = _xmit(tf, sk)
    assert n == 2 and segs[-1][1].seq + MSS == 5000 + 2 * MSS


def test_a_segment_that_would_pass_the_right_window_edge_waits(tf, hooks):
    """...but not one byte beyond: the whole MSS segment waits (sender SWS
    avoidance, RFC 1122 4.2.3.4) rather than a piece that fits."""
    sk = _sk(tf, _pattern(3 * MSS), snd_wnd=2 * MSS - 1)
    n, _segs = _xmit(tf, sk)
    assert n == 1 and sk.snd_nxt == 5000 + MSS
    assert not sk.is_cwnd_limited


@pytest.mark.parametrize("una", [0xFFFFFC19, 0xFFFFFFFF, 0x7FFFFFFF])
def test_the_window_edge_is_computed_modulo_2_32(tf, hooks, una):
    """SND.UNA + SND.WND wraps: a window one byte short of two segments from
    just below 2**32 takes one 1000-byte segment and holds the second; a
    window of exactly two takes the second too, ending at the edge."""
    sk = _sk(tf, snd_una=una, snd_nxt=una, snd_sml=una, wq_seq=una, write_seq=una,
             snd_wnd=2 * MSS - 1)
    queue_data(sk, _pattern(2 * MSS))
    n, segs = _xmit(tf, sk)
    assert n == 1 and segs[0][1].seq == una
    assert sk.snd_nxt == (una + MSS) & 0xFFFFFFFF
    sk.snd_wnd = 2 * MSS
    n, segs = _xmit(tf, sk)
    assert n == 1 and segs[0][1].seq == (una + MSS) & 0xFFFFFFFF
    assert sk.snd_nxt == sk.write_seq == (una + 2 * MSS) & 0xFFFFFFFF


def test_a_zero_window_sends_nothing(tf, hooks):
    sk = _sk(tf, _pattern(10), snd_wnd=0)
    assert _xmit(tf, sk) == (0, [])
    assert sk.packets_out == 0 and sk.snd_nxt == 5000


# --- Nagle / Minshall ---------------------------------------------------------------------

def _small_outstanding(tf, **kw):
    """One small segment [5000, 5100) sent and unacked; 300 more bytes queued."""
    sk = _sk(tf, _pattern(400), snd_nxt=5100, snd_sml=5100, packets_out=1, **kw)
    sk.rtx.append(tf.TxSeg(5000, 5100, 0, 0.5))
    return sk


def test_nagle_holds_a_small_segment_while_a_small_one_is_unacked(tf, hooks):
    """RFC 896 as Minshall refined it (Linux tcp_nagle_check with
    tcp_minshall_check): a sub-MSS segment waits while an earlier sub-MSS
    segment (snd_sml, after snd_una) is unacknowledged."""
    sk = _small_outstanding(tf)
    assert _xmit(tf, sk) == (0, [])
    assert sk.snd_nxt == 5100 and sk.packets_out == 1


def test_nagle_sends_a_small_segment_once_the_small_one_is_acked(tf, hooks):
    """Minshall: with only full-size segments unacked (snd_sml not after
    snd_una) a small segment may go, even with data in flight."""
    sk = _small_outstanding(tf)
    sk.snd_sml = 5000          # the small segment was an earlier one, acked
    n, segs = _xmit(tf, sk)
    assert n == 1 and len(segs[0][2]) == 300


def test_nagle_sends_a_small_segment_when_nothing_is_in_flight(tf, hooks):
    """RFC 1122 4.2.3.4: with no unacknowledged data a small segment goes at
    once (whatever snd_sml says)."""
    sk = _sk(tf, _pattern(300), snd_una=4900, snd_sml=5000, packets_out=0)
    n, segs = _xmit(tf, sk)
    assert n == 1 and len(segs[0][2]) == 300


def test_nodelay_sends_the_small_segment_at_once(tf, hooks):
    """TCP_NODELAY turns Nagle off."""
    sk = _small_outstanding(tf, nodelay=True)
    n, segs = _xmit(tf, sk)
    assert n == 1 and (segs[0][1].seq, len(segs[0][2])) == (5100, 300)


def test_nagle_never_holds_a_full_segment(tf, hooks):
    """Only a segment shorter than the MSS is held; a full one goes, and the
    sub-MSS remainder behind it waits."""
    sk = _sk(tf, _pattern(100 + MSS + 50), snd_nxt=5100, snd_sml=5100, packets_out=1)
    sk.rtx.append(tf.TxSeg(5000, 5100, 0, 0.5))
    n, segs = _xmit(tf, sk)
    assert n == 1 and (segs[0][1].seq, len(segs[0][2])) == (5100, MSS)


def test_minshall_check_needs_snd_sml_not_after_snd_nxt(tf, hooks):
    """tcp_minshall_check is after(snd_sml, snd_una) && !after(snd_sml, snd_nxt):
    a snd_sml beyond snd_nxt (stale, e.g. data sent before a rewind) holds nothing."""
    sk = _small_outstanding(tf)
    sk.snd_sml = 5200
    n, _segs = _xmit(tf, sk)
    assert n == 1


def test_a_small_segment_becomes_snd_sml_and_a_full_one_does_not(tf, hooks):
    """tcp_minshall_update: snd_sml is the end of the last sub-MSS segment sent."""
    sk = _sk(tf, _pattern(MSS), nodelay=True)
    _xmit(tf, sk)
    assert sk.snd_sml == 5000
    queue_data(sk, _pattern(10))
    _xmit(tf, sk)
    assert sk.snd_sml == 5000 + MSS + 10


# --- what else goes with each segment -------------------------------------------------------

def test_the_idle_hook_runs_once_before_the_first_segment_from_idle(tf, hooks):
    """tcp_event_data_sent: the first transmission with nothing in flight
    restarts an idle cwnd (RFC 7661 / tcp_cwnd_restart) -- once, before it."""
    sk = _sk(tf, _pattern(3 * MSS))
    _xmit(tf, sk, now=7.0)
    assert hooks.named("idle") == [("idle", 7.0, 0)]


def test_no_idle_hook_with_data_in_flight(tf, hooks):
    sk = _small_outstanding(tf, nodelay=True)
    _xmit(tf, sk)
    assert hooks.named("idle") == []


def test_segments_carry_the_ack_window_and_timestamps_of_the_connection(tf, hooks):
    """Every segment: ACK = rcv_nxt, the window of tcp_select_window (which
    also moves rcv_wup/rcv_wnd), TSval = ms clock + ts_off (mod 2**32) and
    TSecr = ts_recent (RFC 7323 3), from the connection's addresses and ports."""
    sk = _sk(tf, _pattern(1200), tstamp_ok=True, ts_off=(1 << 32) - 1000,
             ts_recent=0xABCDEF01, rcv_nxt=777_777, rcv_wup=700_000, rcv_wnd=65535,
             rcvbuf=1 << 20, window_clamp=40_000)
    n, segs = _xmit(tf, sk, now=3.0015)
    assert n == 2
    for iph, th, _p in segs:
        assert (iph.src, iph.dst, th.sport, th.dport) == (0x0A000001, 0x0A000002, 80, 40000)
        assert th.ack == 777_777
        # 3001 ms + ts_off wraps to 2001
        assert (th.options.ts_val, th.options.ts_ecr) == (2001, 0xABCDEF01)
        assert th.window == 40_000 // 1460 * 1460
        assert th.urg_ptr == 0 and not th.flags & 0x20
    assert sk.rcv_wup == 777_777 and sk.rcv_wnd == 40_000 // 1460 * 1460


def test_segments_have_no_timestamp_option_without_timestamps(tf, hooks):
    sk = _sk(tf, _pattern(10), ts_recent=5, ts_off=9)
    _n, segs = _xmit(tf, sk)
    opts = segs[0][1].options
    assert opts is None or (opts.ts_val is None and opts.ts_ecr is None)
    assert segs[0][1].doff == 5


def test_each_frame_takes_the_next_ip_id_of_the_connection(tf, hooks):
    """ip_select_ident_segs for a connected socket: the IP ID is the sock's
    own counter (inet_id) as it stands, then the counter moves on by one per
    segment, 16 bits, wrapping; nothing else is consulted."""
    sk = _sk(tf, _pattern(3 * MSS), inet_id=0xFFFE)
    _n, segs = _xmit(tf, sk, ttl=17)
    assert [iph.ident for iph, _th, _p in segs] == [0xFFFE, 0xFFFF, 0]
    assert sk.inet_id == 1
    assert {iph.ttl for iph, _th, _p in segs} == {17}
    assert all(iph.df for iph, _th, _p in segs)


def test_the_loop_leaves_the_quickack_count_to_its_caller(tf, hooks):
    """Linux 6.6 on, tcp_dec_quickack_mode spends one quick ACK per ACK that
    was scheduled, not one per segment: the caller's tcp_event_ack_sent
    spends it once for the burst (tests/tcp/test_quickack_spent_rules.py)."""
    sk = _sk(tf, _pattern(3 * MSS), quick=5)
    n, segs = _xmit(tf, sk)
    assert n == len(segs) == 3 and sk.quick == 5


@pytest.mark.parametrize("mss, ttl", [(0, 64), (-1, 64), (MSS, 256)])
def test_bad_mss_or_ttl_is_refused_before_anything_is_sent(tf, hooks, mss, ttl):
    sk = _sk(tf, _pattern(10))
    with pytest.raises((ValueError, OverflowError)):
        _xmit(tf, sk, mss=mss, ttl=ttl)
    assert sk.rtx == [] and sk.snd_nxt == 5000


@pytest.mark.parametrize("mss, ttl", [(1, 64), (MSS, 255), (MSS, 0)])
def test_the_smallest_mss_and_any_8_bit_ttl_are_accepted(tf, hooks, mss, ttl):
    sk = _sk(tf, _pattern(3))
    n, segs = _xmit(tf, sk, mss=mss, ttl=ttl)
    assert n == (3 if mss == 1 else 1)
    assert {iph.ttl for iph, _th, _p in segs} == {ttl}


def test_a_negative_ttl_is_refused_before_anything_is_sent(tf, hooks):
    sk = _sk(tf, _pattern(3))
    with pytest.raises((ValueError, OverflowError)):
        _xmit(tf, sk, ttl=-1)
    assert sk.rtx == [] and sk.snd_nxt == 5000 and sk.packets_out == 0


# --- the compiled loop follows the twin ----------------------------------------------------

_XMIT_FIELDS = ("snd_nxt", "snd_sml", "packets_out", "is_cwnd_limited", "quick", "rcv_wnd",
                "rcv_wup", "write_seq", "wq_seq", "snd_una", "inet_id")


def _random_sender(mod, rng):
    una = rng.choice([0, 0xFFFFFFFF - 2000, 0x7FFFFFFF - 500, rng.randrange(1 << 32)])
    in_flight = rng.choice([0, 0, 1, 700, 3000])
    queued = rng.choice([0, 1, 500, 1460, 5000, 20000])
    sk = make_cb(mod, snd_una=una, wq_seq=una, snd_nxt=(una + in_flight) & 0xFFFFFFFF,
                 write_seq=una,
                 snd_sml=(una + rng.choice([0, in_flight, max(in_flight - 100, 0)])) & 0xFFFFFFFF,
                 packets_out=rng.choice([0, 1, 3]) if in_flight else 0,
                 sacked_out=rng.choice([0, 1]), lost_out=rng.choice([0, 1]),
                 retrans_out=rng.choice([0, 1]), snd_cwnd=rng.choice([1, 2, 4, 10, 40]),
                 snd_wnd=rng.choice([0, 100, 1460, 4000, 65535, 1 << 20]),
                 nodelay=rng.random() < 0.3, tstamp_ok=rng.random() < 0.7,
                 ts_off=rng.randrange(1 << 32), ts_recent=rng.randrange(1 << 32),
                 quick=rng.choice([0, 1, 3]), rcv_wscale=rng.choice([0, 7]),
                 rcv_wnd=rng.choice([0, 1000, 65535]), rcvbuf=rng.choice([4096, 1 << 20]),
                 rcv_nxt=rng.randrange(1 << 32), inet_id=rng.randrange(1 << 16))
    sk.rcv_wup = (sk.rcv_nxt - rng.choice([0, 10, 5000])) & 0xFFFFFFFF
    queue_data(sk, bytes(rng.randrange(256) for _ in range(in_flight + queued)))
    return sk


def _sender_state(sk) -> tuple:
    return (tuple(getattr(sk, f) for f in _XMIT_FIELDS),
            [(s.seq, s.end_seq, s.flags, s.sacked, s.retrans, s.tstamp) for s in sk.rtx])


def test_twins_send_the_same_frames_for_random_senders():
    """write_xmit, compiled and pure, on the same seeded control blocks: the
    same frames byte for byte (Ethernet or IP links), the same segments
    queued for retransmission, the same sock fields (the IP ID counter
    among them), the same calls of the idle hook."""
    from conftest import twin_pair

    from .fastcb import install_hooks
    pure, comp = twin_pair("tcp_fast")
    for case in range(400):
        results = []
        for mod in (pure, comp):
            rng = random.Random(case)
            sk = _random_sender(mod, rng)
            mss = rng.choice([1, 536, 1000, 1448, 1460])
            macs = rng.choice([(None, None), (b"\x02" * 6, b"\x04" * 6)])
            now = rng.choice([0.0015, rng.uniform(0, 1e5), 4294967.2961])
            gen = install_hooks(mod)
            hooks_ = next(gen)
            try:
                out: list = []
                n = mod.write_xmit(sk, mss, out, 2, macs[0], macs[1], 64, now)
            finally:
                gen.close()
            results.append((n, [(i, bytes(f)) for i, f in out], _sender_state(sk),
                            hooks_.calls))
        assert results[0] == results[1], case


def test_a_vanishing_srtt_leaves_the_burst_size_finite():
    """tcp_tso_autosize divides by srtt, which Linux keeps at 1/8 us or more
    (tcp_rtt_estimator's max(1U, srtt)): an RTT sample of a few float ulps
    (a virtual clock's step; hypothesis found 2.2e-308 s) gives the same
    bursts as a 1/8 us one, the 64 KB GSO limit, not an OverflowError."""
    from tcpio.core.tcp import tcp_output
    from .helpers import active_open

    sk = active_open().sk
    mss = sk.mss_cache
    sk.rtt_est.reset()
    sk.rtt_est.sample(2.2250738585072014e-308)
    tiny = tcp_output.tcp_tso_segs(sk, mss)
    sk.rtt_est.reset()
    sk.rtt_est.sample(tcp_output.SRTT_MIN)
    assert tiny == tcp_output.tcp_tso_segs(sk, mss) == max(
        65536 // mss, sk.host.settings.tcp_min_tso_segs)
