"""The retransmit queue walk on an ACK (tcp_fast.clean_rtx_queue, Linux
tcp_clean_rtx_queue) and the send/receive queue operations, on both twins.

The rules: segments snd_una covers leave the queue and a partly covered head
is trimmed; the SACK scoreboard counts (sacked_out, lost_out, retrans_out)
always describe the segments still queued, so that RFC 6675's pipe / Linux
tcp_packets_in_flight (packets_out - (sacked_out + lost_out) + retrans_out)
is right after recovery; the acknowledged bytes (not the SYN or FIN) leave
the send buffer; the walk reports, for Karn's algorithm (RFC 6298 3), the
send time of the first acknowledged segment never retransmitted nor SACKed,
and whether a retransmitted one was acknowledged.
"""

from __future__ import annotations

import random

import pytest
from conftest import twin_fixture

from .fastcb import make_cb

tf = twin_fixture("tcp_fast", "tf")

SACKED, RETRANS, LOST = 1, 2, 4


def _queue(tf, una: int, spec: list[tuple[int, int, int, float]], *, write_seq: int | None = None,
           **kw):
    """A sock whose retransmit queue holds segments of (length, sacked bits,
    retrans count, tstamp) from ``una`` on, with consistent counters and the
    bytes in the send queue."""
    sk = make_cb(tf, snd_una=una, wq_seq=una, **kw)
    seq = una
    for length, sacked, retrans, tstamp in spec:
        seg = tf.TxSeg(seq, (seq + length) & 0xFFFFFFFF, 0, tstamp)
        seg.sacked = sacked
        seg.retrans = retrans
        sk.rtx.append(seg)
        seq = (seq + length) & 0xFFFFFFFF
    _recount(sk)
    sk.snd_nxt = seq
    sk.write_seq = seq if write_seq is None else write_seq
    sk.wq = tf.SndQueue(bytes(i % 253 for i in range((sk.write_seq - una) & 0xFFFFFFFF)))
    return sk


def _recount(sk) -> None:
    sk.packets_out = len(sk.rtx)
    sk.sacked_out = sum(1 for s in sk.rtx if s.sacked & SACKED)
    sk.lost_out = sum(1 for s in sk.rtx if s.sacked & LOST and not s.sacked & SACKED)
    sk.retrans_out = sum(1 for s in sk.rtx if s.sacked & RETRANS)


def _in_flight(sk) -> int:
    return sk.packets_out - (sk.sacked_out + sk.lost_out) + sk.retrans_out


def _pipe(rtx) -> int:
    """RFC 6675 SetPipe over the queue: each segment not SACKed and not
    marked lost counts once; each retransmission (not SACKed since) once more."""
    return sum((not s.sacked & SACKED and not s.sacked & LOST) + bool(s.sacked & RETRANS)
               for s in rtx)


def _ack(tf, sk, ack: int):
    sk.snd_una = ack & 0xFFFFFFFF
    return tf.clean_rtx_queue(sk)


def test_acknowledged_segments_leave_the_queue(tf):
    sk = _queue(tf, 1000, [(100, 0, 0, 1.0), (100, 0, 0, 2.0), (100, 0, 0, 3.0)])
    n, first_tx, retrans_acked = _ack(tf, sk, 1200)
    assert (n, first_tx, retrans_acked) == (2, 1.0, False)
    assert [(s.seq, s.end_seq) for s in sk.rtx] == [(1200, 1300)]
    assert sk.packets_out == 1
    # the acknowledged bytes are freed: the send queue starts at snd_una
    assert sk.wq_seq == 1200 and len(sk.wq) == 100 and bytes(sk.wq)[0] == 200 % 253


def test_a_partly_acknowledged_head_is_trimmed(tf):
    """tcp_trim_head: the head segment now starts at snd_una (a retransmission
    sends only the unacknowledged part); it is still one packet out."""
    sk = _queue(tf, 1000, [(1000, 0, 0, 1.0), (1000, 0, 0, 2.0)])
    assert _ack(tf, sk, 1333) == (0, None, False)
    assert [(s.seq, s.end_seq) for s in sk.rtx] == [(1333, 2000), (2000, 3000)]
    assert sk.packets_out == 2 and sk.wq_seq == 1333 and len(sk.wq) == 1667


def test_an_ack_of_nothing_new_changes_nothing(tf):
    sk = _queue(tf, 1000, [(1000, SACKED, 0, 1.0), (1000, LOST | RETRANS, 1, 2.0)])
    assert _ack(tf, sk, 1000) == (0, None, False)
    assert [(s.seq, s.end_seq) for s in sk.rtx] == [(1000, 2000), (2000, 3000)]
    assert (sk.packets_out, sk.sacked_out, sk.lost_out, sk.retrans_out) == (2, 1, 1, 1)
    assert sk.wq_seq == 1000 and len(sk.wq) == 2000


def test_one_byte_acknowledged_frees_one_byte(tf):
    sk = _queue(tf, 1000, [(1000, 0, 0, 1.0)])
    _ack(tf, sk, 1001)
    assert sk.wq_seq == 1001 and len(sk.wq) == 999


def test_in_flight_drops_when_a_retransmitted_segment_is_acknowledged(tf):
    """The retransmission of a lost segment counts in flight (RFC 6675 pipe,
    Linux retrans_out) until acknowledged; then it leaves, with its lost and
    retransmitted marks: after recovery the in-flight count is what is still
    in the network, not more."""
    sk = _queue(tf, 1000, [(100, LOST | RETRANS, 1, 1.0), (100, SACKED, 0, 1.0),
                           (100, 0, 0, 1.0)])
    assert _in_flight(sk) == 2          # the retransmission + the last one
    n, _first_tx, retrans_acked = _ack(tf, sk, 1100)
    assert n == 1 and retrans_acked
    assert (sk.packets_out, sk.sacked_out, sk.lost_out, sk.retrans_out) == (2, 1, 0, 0)
    assert _in_flight(sk) == 1


def test_every_mark_leaves_with_its_segment(tf):
    """Acknowledging a SACKed, a lost and a lost-and-retransmitted segment
    takes each out of its count; what stays is counted as before."""
    spec = [(100, SACKED, 0, 1.0), (100, LOST, 0, 1.0), (100, LOST | RETRANS, 1, 1.0),
            (100, RETRANS, 1, 1.0), (100, SACKED, 0, 1.0), (100, LOST, 0, 1.0),
            (100, LOST | RETRANS, 1, 1.0), (100, 0, 0, 1.0)]
    sk = _queue(tf, 1000, spec)
    assert (sk.sacked_out, sk.lost_out, sk.retrans_out) == (2, 4, 3)
    _ack(tf, sk, 1400)
    assert [s.sacked for s in sk.rtx] == [SACKED, LOST, LOST | RETRANS, 0]
    assert (sk.packets_out, sk.sacked_out, sk.lost_out, sk.retrans_out) == (4, 1, 2, 1)
    assert _in_flight(sk) == _pipe(sk.rtx) == 2


def test_the_scoreboard_counts_describe_the_segments_still_queued(tf):
    """On random queues (seeded) and ACKs: after the walk the counters equal
    a recount of the queue, and tcp_packets_in_flight equals RFC 6675's pipe."""
    rng = random.Random(6675)
    for _ in range(400):
        una = rng.choice([0, 0xFFFFF000, rng.randrange(1 << 32)])
        spec = [(rng.choice([1, 100, 1448]), rng.choice([0, 0, SACKED, RETRANS, LOST,
                                                          LOST | RETRANS]),
                 rng.choice([0, 1]), float(i)) for i in range(rng.randrange(1, 20))]
        sk = _queue(tf, una, spec)
        end = sk.snd_nxt
        ack = (una + rng.randrange(0, ((end - una) & 0xFFFFFFFF) + 1)) & 0xFFFFFFFF
        _ack(tf, sk, ack)
        want = (len(sk.rtx), sum(1 for s in sk.rtx if s.sacked & SACKED),
                sum(1 for s in sk.rtx if s.sacked & LOST and not s.sacked & SACKED),
                sum(1 for s in sk.rtx if s.sacked & RETRANS))
        assert (sk.packets_out, sk.sacked_out, sk.lost_out, sk.retrans_out) == want
        assert _in_flight(sk) == _pipe(sk.rtx)
        assert all((s.end_seq - ack) & 0xFFFFFFFF and ((s.end_seq - ack) & 0xFFFFFFFF) < 1 << 31
                   for s in sk.rtx)


def test_nothing_in_flight_means_no_scoreboard(tf):
    """When the queue empties, nothing is SACKed, lost or retransmitted any
    more, whatever the counters said: without SACK the duplicate ACKs stand
    for segments that left the network (tcp_add_reno_sack) without marking
    any, and a full ACK ends that (tcp_remove_reno_sacks)."""
    sk = _queue(tf, 1000, [(100, 0, 0, 1.0), (100, 0, 0, 2.0), (100, 0, 0, 3.0)])
    sk.sacked_out = 2          # two duplicate ACKs, Reno style
    _ack(tf, sk, 1300)
    assert (sk.packets_out, sk.sacked_out, sk.lost_out, sk.retrans_out) == (0, 0, 0, 0)


def test_a_remaining_segment_keeps_the_reno_count(tf):
    sk = _queue(tf, 1000, [(100, 0, 0, 1.0), (100, 0, 0, 2.0), (100, 0, 0, 3.0)])
    sk.sacked_out = 1
    _ack(tf, sk, 1200)
    assert (sk.packets_out, sk.sacked_out) == (1, 1)


@pytest.mark.parametrize("spec, expect", [
    ([(100, 0, 1, 1.0), (100, 0, 0, 2.0), (100, 0, 0, 3.0)], 2.0),     # retransmitted: skip
    ([(100, SACKED, 0, 1.0), (100, 0, 0, 2.0)], 2.0),                  # SACKed: skip
    ([(100, 0, 0, 1.0), (100, 0, 0, 2.0)], 1.0),                       # the first one
    ([(100, 0, 1, 1.0), (100, SACKED, 0, 2.0)], None),                 # none qualifies
])
def test_karn_the_rtt_sample_comes_from_the_first_never_retransmitted_segment(tf, spec, expect):
    """RFC 6298 3 (Karn): no RTT sample from a retransmitted segment; the walk
    gives the send time of the first acknowledged segment sent once and not
    SACKed (a SACKed one was timed when its SACK came)."""
    sk = _queue(tf, 1000, spec)
    n, first_tx, _ = _ack(tf, sk, sk.snd_nxt)
    assert n == len(spec) and first_tx == expect


def test_retrans_acked_reports_an_acknowledged_retransmission(tf):
    sk = _queue(tf, 1000, [(100, 0, 0, 1.0), (100, RETRANS, 1, 2.0), (100, RETRANS, 1, 3.0)])
    assert _ack(tf, sk, 1100)[2] is False
    assert _ack(tf, sk, 1200)[2] is True


def test_the_fin_takes_sequence_space_but_no_bytes(tf):
    """A FIN segment [write_seq, write_seq + 1): once acknowledged, the send
    queue ends empty at write_seq (the FIN frees no byte)."""
    sk = _queue(tf, 1000, [(100, 0, 0, 1.0), (1, 0, 0, 1.0)], write_seq=1100)
    sk.rtx[-1].flags = 0x01
    n, _, _ = _ack(tf, sk, 1101)
    assert n == 2 and sk.rtx == [] and len(sk.wq) == 0 and sk.wq_seq == 1100


def test_the_syn_takes_sequence_space_but_no_bytes(tf):
    iss = 0xFFFFFFFF
    sk = make_cb(tf, snd_una=iss, snd_nxt=0, write_seq=0, wq_seq=0, packets_out=1)
    sk.rtx.append(tf.TxSeg(iss, 0, 0x02, 1.0))
    assert _ack(tf, sk, 0) == (1, 1.0, False)
    assert sk.rtx == [] and sk.packets_out == 0 and sk.wq_seq == 0


def test_an_unacknowledged_syn_frees_nothing(tf):
    sk = make_cb(tf, snd_una=999, snd_nxt=1000, write_seq=1000, wq_seq=1000, packets_out=1)
    sk.rtx.append(tf.TxSeg(999, 1000, 0x02, 1.0))
    assert _ack(tf, sk, 999) == (0, None, False)
    assert [(s.seq, s.end_seq) for s in sk.rtx] == [(999, 1000)] and sk.wq_seq == 1000


def test_the_walk_works_across_the_sequence_wrap(tf):
    una = 0xFFFFFF9C          # 100 below 2**32
    sk = _queue(tf, una, [(100, 0, 0, 1.0), (101, 0, 0, 2.0), (100, 0, 0, 3.0)])
    n, first_tx, _ = _ack(tf, sk, una + 201)
    assert (n, first_tx) == (2, 1.0)
    assert [(s.seq, s.end_seq) for s in sk.rtx] == [(101, 201)]
    assert sk.wq_seq == 101 and len(sk.wq) == 100


# --- the FIFO operations on the socket queues ---------------------------------------------

def test_buf_consume_drops_from_the_front(tf):
    q = bytearray(b"abcdef")
    tf.buf_consume(q, 0)
    assert q == b"abcdef"
    tf.buf_consume(q, 1)
    assert q == b"bcdef"
    tf.buf_consume(q, 99)
    assert q == b""


def test_buf_consume_refuses_a_negative_length(tf):
    q = bytearray(b"abc")
    with pytest.raises(ValueError):
        tf.buf_consume(q, -1)
    assert q == b"abc"


def test_buf_append_adds_at_the_end(tf):
    q = bytearray(b"ab")
    tf.buf_append(q, b"cd")
    tf.buf_append(q, memoryview(b"ef"))
    assert q == b"abcdef"


def test_twins_walk_the_queue_alike():
    """clean_rtx_queue, compiled and pure, on the same seeded queues and
    ACKs: the same result, queue, counters and send buffer."""
    from conftest import twin_pair
    pure, comp = twin_pair("tcp_fast")
    for case in range(500):
        results = []
        for mod in (pure, comp):
            rng = random.Random(case)
            una = rng.choice([0, 0xFFFFF000, rng.randrange(1 << 32)])
            spec = [(rng.choice([1, 100, 1448]), rng.choice([0, 0, SACKED, RETRANS, LOST,
                                                              LOST | RETRANS]),
                     rng.choice([0, 1]), rng.random()) for _ in range(rng.randrange(1, 20))]
            fin = rng.random() < 0.2
            sk = _queue(mod, una, spec)
            if fin:
                sk.rtx[-1].flags = 0x01
                sk.write_seq = (sk.snd_nxt - 1) & 0xFFFFFFFF
                sk.wq = mod.SndQueue(bytes(sk.wq)[:-1])
            if rng.random() < 0.2:
                sk.sacked_out += 1            # a Reno duplicate ACK
            ack = (una + rng.randrange(0, ((sk.snd_nxt - una) & 0xFFFFFFFF) + 1)) & 0xFFFFFFFF
            out = _ack(mod, sk, ack)
            results.append((out, [(s.seq, s.end_seq, s.flags, s.sacked) for s in sk.rtx],
                            sk.packets_out, sk.sacked_out, sk.lost_out, sk.retrans_out,
                            sk.wq_seq, bytes(sk.wq)))
        assert results[0] == results[1], case
