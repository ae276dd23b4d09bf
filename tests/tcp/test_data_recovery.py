"""Loss recovery: fast retransmit after exactly three duplicate ACKs (RFC 5681),
limited transmit (RFC 3042), NewReno partial ACKs (RFC 6582), SACK generation
(RFC 2018) and SACK-based recovery (RFC 6675), D-SACK (RFC 2883)."""

from __future__ import annotations

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CA_OPEN, TCP_CA_RECOVERY

from .helpers import TcpOptions, passive_open

MSS = 536   # no MSS option from the peer: RFC 9293's default


def _flight(c, nseg: int):
    c.sk.sendmsg(b"".join(bytes([65 + i % 26]) * MSS for i in range(nseg)))
    return c.recv()


def test_fast_retransmit_after_exactly_three_dupacks_with_limited_transmit():
    c = passive_open()
    out = _flight(c, 30)
    assert len(out) == 10                       # initial window: 10 segments (RFC 6928)
    base = out[0].seq
    c.send(ack=base + MSS)                      # segment 1 arrives, segment 2 is lost
    more = c.recv()
    assert all(s.seq > out[-1].seq for s in more)   # slow start: new data only
    hole = base + MSS
    for n in (1, 2):
        c.send(ack=hole)                        # duplicate ACK n
        segs = c.recv()
        # RFC 3042: each of the first two dupacks releases one new segment
        assert len(segs) == 1 and segs[0].seq != hole, (n, segs)
        assert c.host.mib["RetransSegs"] == 0
    c.send(ack=hole)                            # third duplicate ACK
    segs = c.recv()
    assert segs[0].seq == hole and segs[0].payload == bytes([66]) * MSS
    assert c.host.mib["RetransSegs"] == 1
    assert c.sk.ca_state == TCP_CA_RECOVERY


def test_two_dupacks_do_not_retransmit():
    c = passive_open()
    out = _flight(c, 10)
    c.send(ack=out[0].seq + MSS)
    c.recv()
    for _ in range(2):
        c.send(ack=out[0].seq + MSS)
    assert c.host.mib["RetransSegs"] == 0


def test_newreno_partial_ack_retransmits_next_hole():
    c = passive_open()
    out = _flight(c, 10)
    base = out[0].seq
    # segments 1 and 4 lost
    for _ in range(4):
        c.send(ack=base)
    first = [s for s in c.recv() if s.seq == base]
    assert first, "fast retransmit of segment 1"
    c.send(ack=base + 3 * MSS)                  # partial ACK: up to the second hole
    segs = c.recv()
    assert any(s.seq == base + 3 * MSS for s in segs)
    assert c.sk.ca_state == TCP_CA_RECOVERY
    c.send(ack=c.sk.snd_nxt)                    # everything: recovery ends
    assert c.sk.ca_state == TCP_CA_OPEN
    assert c.sk.snd_cwnd == c.sk.snd_ssthresh


def test_sack_blocks_generated_most_recent_first():
    c = passive_open(syn_opts=TcpOptions(mss=1000, sack_ok=True))
    s0 = c.snd

    def seg(i):
        c.send(bytes([48 + i]) * 100, seq=s0 + 100 * i)

    seg(0)
    c.recv()
    seg(2)
    a = c.recv()[-1]
    assert a.ack == s0 + 100 and a.opts.sack_blocks == ((s0 + 200, s0 + 300),)
    seg(4)
    a = c.recv()[-1]
    assert a.opts.sack_blocks == ((s0 + 400, s0 + 500), (s0 + 200, s0 + 300))
    seg(3)                                       # joins both blocks
    a = c.recv()[-1]
    assert a.opts.sack_blocks == ((s0 + 200, s0 + 500),)
    seg(1)                                       # fills the hole
    a = c.recv()[-1]
    assert a.ack == s0 + 500 and a.opts.sack_blocks == ()
    assert c.sk.recvmsg(1000) == b"".join(bytes([48 + i]) * 100 for i in range(5))


def test_dsack_for_duplicate_segment():
    c = passive_open(syn_opts=TcpOptions(mss=1000, sack_ok=True))
    s0 = c.snd
    c.send(b"a" * 100)
    c.recv()
    c.send(b"a" * 100, seq=s0)                   # a duplicate
    a = c.recv()[-1]
    assert a.ack == s0 + 100
    assert a.opts.sack_blocks == ((s0, s0 + 100),)   # RFC 2883: first block below ACK


def test_at_most_three_sack_blocks_with_timestamps():
    c = passive_open(syn_opts=TcpOptions(mss=1000, sack_ok=True, ts_val=1, ts_ecr=0))
    s0 = c.snd
    for i in (2, 4, 6, 8, 10):
        c.send(b"x" * 10, seq=s0 + 10 * i, opts=TcpOptions(ts_val=2, ts_ecr=0))
    a = c.recv()[-1]
    assert len(a.opts.sack_blocks) == 3
    assert a.opts.sack_blocks[0] == (s0 + 100, s0 + 110)


def test_sack_recovery_retransmits_only_the_hole():
    """RFC 6675: a segment is lost once DupThresh segments above it are SACKed
    (net.ipv4.tcp_recovery=0: RFC 6675 instead of RACK, Linux's default)."""
    c = passive_open(Settings(tcp_recovery=0), syn_opts=TcpOptions(mss=1000, sack_ok=True))
    mss = c.sk.mss_cache
    out = _flight_bytes(c, 10 * mss)
    base = out[0].seq
    for k in (2, 3):                              # segment 1 lost, 2.. SACKed
        c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + k * mss),)))
        assert c.host.mib["RetransSegs"] == 0
        c.recv()
    c.send(ack=base, opts=TcpOptions(sack_blocks=((base + mss, base + 4 * mss),)))
    segs = c.recv()
    assert [s.seq for s in segs if s.seq == base] == [base]
    assert c.host.mib["RetransSegs"] == 1
    assert c.sk.sacked_out == 3


def test_dsack_received_is_harmless():
    c = passive_open(syn_opts=TcpOptions(mss=1000, sack_ok=True))
    out = _flight_bytes(c, 2000)
    base = out[0].seq
    c.send(ack=base + 1000, opts=TcpOptions(sack_blocks=((base, base + 1000),)))
    assert c.host.mib["TCPDSACKRecv"] == 1
    assert c.sk.sacked_out == 0 and c.host.mib["RetransSegs"] == 0


def _flight_bytes(c, n):
    c.sk.sendmsg(b"d" * n)
    return c.recv()


def _optlen(opts):
    n = 0
    if opts.ts_val is not None:
        n += 12
    if opts.sack_blocks:
        n += 4 + 8 * len(opts.sack_blocks)
    return n


def test_data_segments_with_sack_blocks_stay_within_mss():
    """Like Linux's tcp_current_mss: SACK option bytes come out of the payload,
    or the segment would exceed the path MTU and be fragmented by IP."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, sack_ok=True, ts_val=1, ts_ecr=0))
    ts = TcpOptions(ts_val=2, ts_ecr=0)
    for k in (1, 3, 5):                         # three holes: three SACK blocks
        c.send(b"h" * 100, seq=c.snd + 200 * k, opts=ts)
    c.recv()
    assert len(c.sk.sack_blocks) == 3
    c.sk.sendmsg(b"D" * 20000)
    out = c.recv()
    assert out
    for s in out:
        assert s.opts.sack_blocks, "data carries the SACK information"
        assert len(s.payload) + _optlen(s.opts) <= 1460


def test_retransmission_drops_sack_blocks_that_do_not_fit():
    c = passive_open(syn_opts=TcpOptions(mss=1460, sack_ok=True, ts_val=1, ts_ecr=0))
    c.sk.sendmsg(b"R" * 1448)
    first = c.recv()[0]
    assert len(first.payload) == 1448
    for k in (1, 3, 5):
        c.send(b"h" * 100, seq=c.snd + 200 * k, opts=TcpOptions(ts_val=2, ts_ecr=0))
    c.recv()
    c.host.advance(1.5)                         # RTO: the 1448-byte segment again
    again = [s for s in c.recv() if s.payload]
    assert again and len(again[0].payload) == 1448
    assert len(again[0].payload) + _optlen(again[0].opts) <= 1460
