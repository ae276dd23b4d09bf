"""RTT samples taken when an ACK frees segments (tcp_clean_rtx_queue /
tcp_ack_update_rtt in net/ipv4/tcp_input.c): Karn's rule without timestamps,
RTTM from the echoed timestamp (RFC 7323 4), the backoff dropped by a new
sample (RFC 6298 5.7), and the RTO that results (RFC 6298 2, with Linux's
200 ms minimum).
"""

from __future__ import annotations

import pytest

from .helpers import Conn, TcpOptions, passive_open

TS_SYN = TcpOptions(mss=1460, ts_val=100, ts_ecr=0)


def _send(c: Conn, n: int = 100):
    c.sk.nodelay = True
    c.sk.sendmsg(b"r" * n)
    out = c.recv()
    assert out
    return out


def test_first_sample_sets_srtt_rttvar_and_rto():
    """RFC 6298 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4 RTTVAR),
    at least 200 ms (Linux tcp_rto_min)."""
    c = passive_open()
    out = _send(c)
    c.host.now = 0.1
    c.ack_all(out)
    c.send()
    assert c.sk.rtt_est.srtt == pytest.approx(0.1)
    assert c.sk.rtt_est.rttvar == pytest.approx(0.05)
    assert c.sk.rto == pytest.approx(0.3)


def test_zero_rtt_is_a_valid_sample():
    c = passive_open()
    out = _send(c)
    c.ack_all(out)
    c.send()                                    # at the same instant
    assert c.sk.rtt_est.has_sample
    assert c.sk.rto == pytest.approx(0.2)


def test_karn_no_sample_from_a_retransmitted_segment_without_timestamps():
    """RFC 6298 3 (Karn): an ACK for a retransmitted segment gives no sample."""
    c = passive_open()
    out = _send(c)
    c.host.advance(1.0)
    assert c.recv()                             # the RTO retransmission
    c.host.now = 1.3
    c.ack_all(out)
    c.send()
    assert not c.sk.rtt_est.has_sample


def test_timestamp_echo_measures_a_retransmitted_segment():
    """RFC 7323 4.1: with timestamps the echo says which transmission was
    acknowledged, so even a retransmission gives a sample: now - TSecr."""
    c = passive_open(syn_opts=TS_SYN)
    out = _send(c)
    c.host.advance(1.0)
    again = c.recv()
    assert again
    c.host.now = 1.301
    c.ack_all(out)
    c.send(opts=TcpOptions(ts_val=200, ts_ecr=again[0].opts.ts_val))
    assert c.sk.rtt_est.srtt == pytest.approx(0.301)


def test_new_sample_drops_the_rto_backoff():
    """RFC 6298 5.7 / Linux: once a new RTT sample arrives after a timeout
    the backed-off RTO is recomputed from SRTT."""
    c = passive_open(syn_opts=TS_SYN)
    out = _send(c)
    c.host.advance(1.0)
    again = c.recv()
    assert c.sk.rtt_est.backoff_count == 1
    c.host.now = 1.1
    c.ack_all(out)
    c.send(opts=TcpOptions(ts_val=200, ts_ecr=again[0].opts.ts_val))
    assert c.sk.rtt_est.backoff_count == 0
    assert c.sk.rto == pytest.approx(0.1 + 0.2)


def test_echo_without_negotiated_timestamps_is_ignored():
    """RFC 7323 3.2: without the option negotiated, a TSopt carries nothing."""
    c = passive_open()
    out = _send(c)
    c.host.advance(1.0)
    c.recv()
    c.host.now = 1.3
    c.ack_all(out)
    c.send(opts=TcpOptions(ts_val=200, ts_ecr=5))
    assert not c.sk.rtt_est.has_sample


@pytest.mark.parametrize("ahead", [0x7FFFFFFF, 0x80000000, 0xFFFFFFFF])
def test_echo_from_the_future_gives_no_sample(ahead):
    """An echoed value ahead of our clock (now - TSecr negative, i.e. at
    least 2**31 ms modulo 2**32) is not a measurement."""
    c = passive_open(syn_opts=TS_SYN)
    out = _send(c)
    c.host.advance(1.0)
    c.recv()
    ours = (int(c.host.now * 1000) + c.sk.ts_off) & 0xFFFFFFFF
    c.ack_all(out)
    c.send(opts=TcpOptions(ts_val=200, ts_ecr=(ours - ahead) & 0xFFFFFFFF))
    assert not c.sk.rtt_est.has_sample


def test_sample_just_inside_the_half_range_is_taken():
    c = passive_open(syn_opts=TS_SYN)
    out = _send(c)
    c.host.advance(1.0)
    c.recv()
    ours = (int(c.host.now * 1000) + c.sk.ts_off) & 0xFFFFFFFF
    c.ack_all(out)
    c.send(opts=TcpOptions(ts_val=200, ts_ecr=(ours - 0x7FFFFFFE) & 0xFFFFFFFF))
    assert c.sk.rtt_est.srtt == pytest.approx(0x7FFFFFFE / 1000.0)


def test_congestion_module_gets_each_sample_with_the_segments_acked():
    """tcp_clean_rtx_queue -> ca_ops.pkts_acked: CUBIC keeps the smallest RTT
    seen (delay_min, RFC 9406 HyStart++ / Linux bictcp_acked)."""
    from tcpio.core.settings import Settings
    c = passive_open(settings=Settings(tcp_congestion_control="cubic"))
    out = _send(c)
    c.host.now = 0.1
    c.ack_all(out)
    c.send()
    assert c.sk.ca_priv.delay_min == pytest.approx(0.1)
    out = _send(c)
    c.host.now = 0.25
    c.ack_all(out)
    c.send()
    assert c.sk.ca_priv.delay_min == pytest.approx(0.1)   # 0.15 is not smaller

