"""Header prediction on the layered path (tcp_input.tcp_rcv_established ->
tcp_fast.rcv_established): what the call passes on from the parsed segment,
one rule per test, exact state after a segment in.

tcp_rcv_established hands tcp_fast only segments whose flags are exactly ACK
(Linux tcp_rcv_established's pred_flags: no SYN/FIN/RST/URG), and passes the
timestamp option's fields as they are on the wire: 0 is a valid TSval and a
TSecr of 0 means "no echo" (RFC 7323 3.2, 4.2.1; Linux
tcp_rcv_rtt_measure_ts returns when rcv_tsecr is 0).
"""

from __future__ import annotations

from tcpio.core.tcp.tcp_states import TCP_CLOSE_WAIT

from .helpers import ACK, FIN, PSH, TcpOptions, passive_open

# The peer's clock is near the wrap, so a TSval of 0 is newer than TS.Recent
# (RFC 7323 5.3: timestamps compare mod 2**32).
PEER_TS = 0xFFFFFF00


def _ts_conn():
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=PEER_TS, ts_ecr=0))
    assert c.sk.tstamp_ok and c.sk.ts_recent == PEER_TS + 1
    return c


def test_in_order_data_with_fin_is_not_predicted_and_the_fin_is_taken():
    """Linux's header prediction needs flags == ACK (FIN excluded): data at
    RCV.NXT that carries a FIN goes to the state machine, which queues the
    data and takes the FIN (RFC 9293 3.10.7.4: RCV.NXT = SEG.SEQ + SEG.LEN,
    FIN counted, ESTABLISHED -> CLOSE-WAIT)."""
    c = passive_open()
    s0 = c.snd
    c.send(b"abc", flags=ACK | PSH | FIN)
    assert c.sk.rcv_nxt == s0 + 3 + 1
    assert c.sk.state == TCP_CLOSE_WAIT
    assert bytes(c.sk.rq) == b"abc"


def test_a_tsval_of_0_becomes_ts_recent():
    """RFC 7323 4.3: TS.Recent = SEG.TSval for an in-order segment at
    Last.ACK.sent; a TSval of 0 is a timestamp like any other."""
    c = _ts_conn()
    ecr = (c.sk.ts_off + 1) & 0xFFFFFFFF
    c.send(b"x" * 100, opts=TcpOptions(ts_val=0, ts_ecr=ecr))
    assert c.sk.rcv_nxt == (c.snd) & 0xFFFFFFFF
    assert c.sk.ts_recent == 0


def test_a_tsecr_of_0_gives_no_receiver_rtt_sample():
    """RFC 7323 4.2.1 / Linux tcp_rcv_rtt_measure_ts: TSecr 0 is no echo, so
    in-order data carrying it leaves the receiver's RTT estimate unset."""
    c = _ts_conn()
    assert c.sk.rcv_rtt == 0.0
    c.host.now += 0.25
    c.send(b"x" * 100, opts=TcpOptions(ts_val=PEER_TS + 2, ts_ecr=0))
    assert c.sk.ts_recent == PEER_TS + 2       # the segment was taken
    assert c.sk.rcv_rtt == 0.0
