"""The cwnd reduction at the end of a loss-probe episode that repaired a
loss (RFC 8985 7.4.2; Linux tcp_process_tlp_ack: tcp_init_cwnd_reduction,
CA_CWR, tcp_end_cwnd_reduction, tcp_try_keep_open), seen through what
follows it.

Set-up of test_tlp_rules.py (SACK, one RTT sample of R = 0.5 s) with Reno
(net.ipv4.tcp_congestion_control = reno), whose arithmetic is simple: the
reduction sets ssthresh = max(cwnd / 2, 2) = 5 from the initial 10 (RFC 5681
eq. 4), and in congestion avoidance cwnd grows by one each time cwnd
segments have been acknowledged (RFC 5681 3.1, appropriate byte counting;
Linux tcp_cong_avoid_ai with snd_cwnd_cnt).
"""

from __future__ import annotations

from typing import Any

from tcpio.core.settings import Settings
from tcpio.core.tcp import tcp_cong
from tcpio.core.tcp.tcp_info import tcp_get_info
from tcpio.core.tcp.tcp_states import TCP_CA_CWR, TCP_CA_OPEN

from .test_tlp_rules import EPS, MSS, R, _conn, _tail


def reduced_by_a_probe(cc: str = "reno"):
    """A Reno connection whose tail probe repaired a loss: the probe's ACK,
    then an ACK above it (one new segment, so the ACK is not cwnd-limited
    and cwnd does not grow on it) ends the episode with the reduction."""
    c = _conn(Settings(tcp_congestion_control=cc))
    out = _tail(c, 3)
    c.host.advance(c.host.now + 2 * R + 0.002 + EPS)
    c.recv()
    c.host.advance(c.host.now + R)
    c.send(ack=out[2].seq + MSS)
    (more,) = _tail(c, 1)
    c.host.advance(c.host.now + R)
    c.send(ack=more.seq + MSS)
    info = tcp_get_info(c.sk)
    assert c.host.mib["TCPLossProbeRecovery"] == 1
    assert (info["tcpi_snd_cwnd"], info["tcpi_snd_ssthresh"]) == (5, 5)
    assert c.sk.ca_state == TCP_CA_OPEN and c.sk.packets_out == 0
    return c


def test_after_the_probe_reduction_cwnd_grows_after_a_full_window_is_acked():
    """tcp_init_cwnd_reduction zeroes snd_cwnd_cnt: the count of segments
    acknowledged toward the next increase starts afresh at the reduced
    window.  Five segments (cwnd 5) go out; ACKed one by one, cwnd stays 5
    for the first four ACKs and becomes 6 on the fifth, which then releases
    two segments (one for the ACKed segment, one for the larger window)."""
    c = reduced_by_a_probe()
    c.sk.sendmsg(b"x" * 40 * MSS)
    flight = c.recv()
    assert len(flight) == 5
    c.host.advance(c.host.now + R)
    seen = []
    for seg in flight:
        c.send(ack=seg.seq + MSS)
        seen.append((tcp_get_info(c.sk)["tcpi_snd_cwnd"], len(c.recv())))
    assert seen == [(5, 1)] * 4 + [(6, 2)]


class _StateRecorder(tcp_cong.Reno):
    """Reno that remembers every congestion state it is told about."""

    name = "test-state-recorder"

    def init(self, tp: Any, now: float) -> None:
        self.states: list[int] = []

    def set_state(self, tp: Any, ca_state: int) -> None:
        self.states.append(ca_state)


def test_the_congestion_module_is_told_of_cwr_and_of_the_return_to_open(monkeypatch):
    """Linux tcp_set_ca_state calls the module's set_state on every change
    of icsk_ca_state: tcp_process_tlp_ack enters CWR, and
    tcp_end_cwnd_reduction + tcp_try_keep_open leave it for Open at once (no
    SACKed or lost segment left).  A module keeping per-state data (CUBIC's
    reset on Loss, BBR's on every state) must see both transitions."""
    monkeypatch.setitem(tcp_cong._REGISTRY, _StateRecorder.name, _StateRecorder)
    c = reduced_by_a_probe(_StateRecorder.name)
    assert isinstance(c.sk.ca_ops, _StateRecorder)
    assert c.sk.ca_ops.states == [TCP_CA_CWR, TCP_CA_OPEN]
