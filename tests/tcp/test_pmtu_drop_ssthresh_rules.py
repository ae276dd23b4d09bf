"""The slow-start threshold a path-MTU drop leaves (Linux tcp_simple_retransmit:
outside Loss, ssthresh = tcp_current_ssthresh(), which in Open or Disorder is
max(ssthresh, 3/4 cwnd) = max(ssthresh, (cwnd >> 1) + (cwnd >> 2)); CA_Loss
follows, with no cwnd reduction: only the units changed, not the congestion).

The connection comes from test_tlp_cwnd_reduction_rules.py: Reno, ssthresh
5 after a loss probe's cwnd reduction, then grown in congestion avoidance
by one per round trip (RFC 5681 3.1) to cwnd 8.
"""

from __future__ import annotations

from tcpio.core.tcp.tcp_info import tcp_get_info
from tcpio.core.tcp.tcp_states import TCP_CA_LOSS, TCP_CA_OPEN

from . import states
from .test_tlp_cwnd_reduction_rules import reduced_by_a_probe
from .test_tlp_rules import MSS, R


def test_a_path_mtu_drop_keeps_three_quarters_of_the_grown_window_as_ssthresh():
    """cwnd 8 above ssthresh 5 in Open: the fragmentation-needed ICMP
    (RFC 1191, MTU 576: 536-byte segments) makes every queued 1000-byte
    segment lost, and ssthresh becomes max(5, 4 + 2) = 6, neither the old 5
    nor cwnd itself; cwnd stays 8."""
    c = reduced_by_a_probe()
    c.sk.sendmsg(b"x" * 40 * MSS)
    for cwnd in (5, 6, 7):
        flight = c.recv()
        assert len(flight) == cwnd and tcp_get_info(c.sk)["tcpi_snd_cwnd"] == cwnd
        c.host.advance(c.host.now + R)
        c.send(ack=flight[-1].seq + MSS)              # the whole window: cwnd + 1
    flight = c.recv()
    info = tcp_get_info(c.sk)
    assert (len(flight), info["tcpi_snd_cwnd"], info["tcpi_snd_ssthresh"]) == (8, 8, 5)
    assert c.sk.ca_state == TCP_CA_OPEN
    states.deliver_icmp(c.host, states.frag_needed(flight[0], 576))
    resent = c.recv()
    assert resent and all(len(s.payload) <= 536 for s in resent)
    info = tcp_get_info(c.sk)
    assert (info["tcpi_snd_ssthresh"], info["tcpi_snd_cwnd"]) == (6, 8)
    assert c.sk.ca_state == TCP_CA_LOSS
