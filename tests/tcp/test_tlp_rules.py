"""Tail loss probe (RFC 8985 section 7; Linux tcp_schedule_loss_probe,
tcp_send_loss_probe, tcp_process_tlp_ack), segment by segment under the
virtual clock.

Every connection here negotiates SACK (TLP needs it) and takes one RTT
sample of exactly R = 0.5 s first, so SRTT = 0.5 and, by RFC 6298's first
sample, RTTVAR = 0.25 and RTO = 0.5 + 4 * 0.25 = 1.5 s.  Then:
  PTO = 2 * SRTT + 2 ms      = 1.002 s with two or more segments in flight,
  PTO = 2 * SRTT + rto_min   = 1.2 s with one (the peer's delayed ACK),
never later than the RTO would fire.
"""

from __future__ import annotations

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CA_LOSS, TCP_CA_OPEN

from .helpers import ACK, PSH, TcpOptions, passive_open

MSS = 1000
R = 0.5
EPS = 1e-6


def _conn(settings: Settings | None = None, sack: bool = True):
    """Established, one RTT sample of R taken (t = R afterwards)."""
    c = passive_open(settings, syn_opts=TcpOptions(mss=MSS, sack_ok=sack))
    c.sk.sendmsg(b"w" * MSS)
    (warm,) = c.recv()
    c.host.advance(R)
    c.send(ack=warm.seq + MSS)
    assert c.sk.srtt == R and c.sk.rto == 3 * R
    assert not c.recv()
    return c


def _tail(c, n: int):
    """The app writes n segments; all go out now."""
    c.sk.sendmsg(b"".join(bytes([97 + i]) * MSS for i in range(n)))
    out = c.recv()
    assert [len(s.payload) for s in out] == [MSS] * n
    return out


def _quiet_until(c, t: float) -> None:
    c.host.advance(t - EPS)
    assert not c.recv(), f"nothing may go out before {t}"
    c.host.advance(t + EPS)


def _next_out(c, limit: float = 30.0, step: float = 0.001):
    """Run the clock in small steps (each timer fires at its own time) until
    the stack sends something."""
    end = c.host.now + limit
    while c.host.now < end:
        c.host.advance(c.host.now + step)
        segs = c.recv()
        if segs:
            return segs
    return []


def test_probe_retransmits_the_last_segment_one_pto_after_the_flight_not_an_rto():
    """RFC 8985 7.2/7.3: with new data sent and nothing ACKed, the probe goes
    out at PTO = 2*SRTT + 2 ms (3 in flight), well before the RTO (1.5 s),
    and with nothing new to send it is the highest segment sent again."""
    c = _conn()
    out = _tail(c, 3)
    t0 = c.host.now
    _quiet_until(c, t0 + 2 * R + 0.002)
    (probe,) = c.recv()
    assert probe.key() == (ACK | PSH, out[2].seq, c.snd, out[2].payload)
    mib = c.host.mib
    assert (mib["TCPLossProbes"], mib["RetransSegs"], mib["TCPTimeouts"]) == (1, 1, 0)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.snd_cwnd == 10   # a probe is not a loss


def test_the_probe_ack_repairs_the_tail_without_an_rto():
    """Segments 1-2 arrived (their ACK lost), 3 was lost: the probe's ACK
    covers everything and no RTO ever fires."""
    c = _conn()
    out = _tail(c, 3)
    c.host.advance(c.host.now + 2 * R + 0.002 + EPS)
    (probe,) = c.recv()
    c.host.advance(c.host.now + R)
    c.send(ack=out[2].seq + MSS)
    assert c.sk.packets_out == 0
    c.host.advance(c.host.now + 30)
    assert not c.recv()
    mib = c.host.mib
    assert (mib["TCPLossProbes"], mib["TCPTimeouts"], mib["RetransSegs"]) == (1, 0, 1)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.snd_cwnd == 10
    # Karn's rule: that ACK may answer the probe, not the originals sent
    # 1.5 s earlier: no RTT sample from it (SRTT stays R, not 7/8 R + 1.5/8)
    assert c.sk.srtt == R


def test_an_ack_beyond_the_probe_counts_a_repaired_loss_and_reduces_cwnd_once():
    """RFC 8985 7.4.2 / tcp_process_tlp_ack: the episode ends at the first ACK
    above the probe's snd_nxt (TLP.end_seq); with a retransmitted probe and
    no D-SACK for it, the probe repaired a loss: TCPLossProbeRecovery and
    one cwnd reduction (CWR: cwnd = ssthresh = CUBIC's 717/1024 of 10 = 7)."""
    c = _conn()
    out = _tail(c, 3)
    c.host.advance(c.host.now + 2 * R + 0.002 + EPS)
    c.recv()
    c.host.advance(c.host.now + R)
    c.send(ack=out[2].seq + MSS)
    assert c.host.mib["TCPLossProbeRecovery"] == 0     # ack == TLP.end_seq: not yet
    assert c.sk.snd_cwnd == 10
    (more,) = _tail(c, 1)
    c.host.advance(c.host.now + R)
    c.send(ack=more.seq + MSS)
    assert c.host.mib["TCPLossProbeRecovery"] == 1
    assert (c.sk.snd_cwnd, c.sk.snd_ssthresh) == (7, 7)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.tlp_high_seq is None
    # one episode, one reduction
    (again,) = _tail(c, 1)
    c.host.advance(c.host.now + R)
    c.send(ack=again.seq + MSS)
    assert c.host.mib["TCPLossProbeRecovery"] == 1 and c.sk.snd_cwnd == 7


def test_a_dsack_of_the_probe_means_nothing_was_lost():
    """Both the original and the probe arrived: the peer D-SACKs the probe
    (RFC 2883); the episode ends with no cwnd reduction."""
    c = _conn()
    out = _tail(c, 3)
    c.host.advance(c.host.now + 2 * R + 0.002 + EPS)
    (probe,) = c.recv()
    c.host.advance(c.host.now + R)
    end = out[2].seq + MSS
    c.send(ack=end, opts=TcpOptions(sack_blocks=((out[2].seq, end),)))
    assert c.sk.tlp_high_seq is None and c.host.mib["TCPDSACKRecv"] == 1
    (more,) = _tail(c, 1)
    c.host.advance(c.host.now + R)
    c.send(ack=more.seq + MSS)
    assert c.host.mib["TCPLossProbeRecovery"] == 0 and c.sk.snd_cwnd == 10


def test_the_probe_is_new_data_when_the_window_allows():
    """RFC 8985 7.3: a segment never sent is preferred (it may trigger SACK
    feedback for the tail); it goes out past cwnd, once."""
    c = _conn()
    c.sk.sendmsg(b"".join(bytes([97 + i % 26]) * MSS for i in range(15)))
    out = c.recv()
    assert len(out) == 10                       # the initial window
    _quiet_until(c, c.host.now + 2 * R + 0.002)
    (probe,) = c.recv()
    assert probe.seq == out[-1].seq + MSS and probe.payload == bytes([97 + 10]) * MSS
    assert c.host.mib["TCPLossProbes"] == 1 and c.host.mib["RetransSegs"] == 0
    assert c.sk.snd_cwnd == 10 and c.sk.packets_out == 11
    # a probe of new data needs no verdict: its ACK simply ends the episode
    c.host.advance(c.host.now + R)
    c.send(ack=probe.seq + MSS)
    assert c.sk.tlp_high_seq is None and c.host.mib["TCPLossProbeRecovery"] == 0


def test_one_probe_per_episode_then_the_rto_runs_from_the_probe():
    """At most one probe outstanding: when it is not answered either, the
    next event is the RTO, a full RTO after the probe (Linux re-arms it from
    the probe), and it retransmits the head."""
    c = _conn()
    out = _tail(c, 3)
    t_probe = c.host.now + 2 * R + 0.002
    c.host.advance(t_probe + EPS)
    c.recv()
    rto = c.sk.rto
    _quiet_until(c, t_probe + rto)
    (rtx,) = c.recv()
    assert rtx.seq == out[0].seq
    mib = c.host.mib
    assert (mib["TCPLossProbes"], mib["TCPTimeouts"]) == (1, 1)
    assert c.sk.ca_state == TCP_CA_LOSS and c.sk.tlp_high_seq is None


def test_one_segment_in_flight_waits_for_the_peers_delayed_ack_too():
    """RFC 8985 7.2: with one segment in flight the PTO adds the worst-case
    delayed ACK (Linux: tcp_rto_min, 200 ms): 2*SRTT + 0.2 = 1.2 s."""
    c = _conn()
    (seg,) = _tail(c, 1)
    _quiet_until(c, c.host.now + 2 * R + 0.2)
    (probe,) = c.recv()
    assert probe.seq == seg.seq and c.host.mib["TCPLossProbes"] == 1


def test_an_ack_of_new_data_reschedules_the_probe_from_the_ack():
    """An ACK that leaves data in flight restarts the probe timer (Linux
    tcp_set_xmit_timer): a PTO after the ACK, not after the flight."""
    c = _conn()
    out = _tail(c, 3)
    c.host.advance(c.host.now + R)
    c.send(ack=out[0].seq + MSS)                # 2 left in flight
    _quiet_until(c, c.host.now + 2 * R + 0.002)
    (probe,) = c.recv()
    assert probe.seq == out[2].seq


def test_the_probe_never_fires_later_than_the_rto():
    """PTO is capped by the time left on the RTO (Linux: tcp_rto_delta_us).
    Steady samples of 0.5 s shrink RTTVAR until RTO = SRTT + rto_min = 0.7 s,
    below the one-segment PTO of 1.2 s: the probe goes out at the RTO's time,
    as a probe (no timeout, no cwnd collapse)."""
    c = _conn()
    for _ in range(12):
        (seg,) = _tail(c, 1)
        c.host.advance(c.host.now + R)
        c.send(ack=seg.seq + MSS)
    rto = c.sk.rto
    assert abs(rto - (c.sk.srtt + 0.2)) < 1e-9 and rto < 2 * c.sk.srtt + 0.2
    (seg,) = _tail(c, 1)
    _quiet_until(c, c.host.now + rto)
    (probe,) = c.recv()
    assert probe.seq == seg.seq
    assert c.host.mib["TCPLossProbes"] == 1 and c.host.mib["TCPTimeouts"] == 0


@pytest.mark.parametrize("settings, sack", [(None, False), (Settings(tcp_early_retrans=0), True)],
                         ids=["reno", "tcp_early_retrans=0"])
def test_no_probe_without_sack_or_when_switched_off(settings, sack):
    """TLP needs SACK (Linux: tcp_is_sack), and net.ipv4.tcp_early_retrans 3
    or 4: otherwise the tail waits for the RTO (3R = 1.5 s)."""
    c = _conn(settings, sack=sack)
    out = _tail(c, 3)
    _quiet_until(c, c.host.now + 3 * R)
    (rtx,) = c.recv()
    assert rtx.seq == out[0].seq
    assert c.host.mib["TCPLossProbes"] == 0 and c.host.mib["TCPTimeouts"] == 1


def test_at_most_one_probe_outstanding():
    """RFC 8985 7.3 / Linux: while a probe is unanswered (TLP.end_seq set) a
    probe timer that fires again (re-armed by an ACK of the head) sends no
    second probe; the RTO takes over and retransmits the head."""
    c = _conn()
    out = _tail(c, 3)
    c.host.advance(c.host.now + 2 * R + 0.002 + EPS)
    c.recv()
    c.host.advance(c.host.now + R)
    c.send(ack=out[0].seq + MSS)                # the head arrived, 2 and 3 did not
    assert c.sk.pending == 5                    # the probe timer again (ICSK_TIME_LOSS_PROBE)
    segs = _next_out(c)
    assert segs[0].seq == out[1].seq
    mib = c.host.mib
    assert (mib["TCPLossProbes"], mib["TCPTimeouts"]) == (1, 1)


def test_new_data_does_not_push_the_probe_past_the_oldest_segments_rto():
    """Linux tcp_rto_delta_us: a probe scheduled when new data goes out is
    capped by the time the RTO of the oldest outstanding segment has left.
    A at t0, B at t0 + 1.0: PTO from B would be 1.002 s, but A's RTO is due
    at t0 + 1.5, so the probe (of B, the last segment) goes out then."""
    c = _conn()
    (a,) = _tail(c, 1)
    t0 = c.host.now
    c.host.advance(t0 + 1.0)
    (b,) = _tail(c, 1)
    _quiet_until(c, t0 + 3 * R)
    (probe,) = c.recv()
    assert probe.seq == b.seq
    assert c.host.mib["TCPLossProbes"] == 1 and c.host.mib["TCPTimeouts"] == 0
