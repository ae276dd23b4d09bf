"""RACK keeps detecting losses after an RTO (Linux tcp_fastretrans_alert,
case TCP_CA_Loss: tcp_process_loss, then tcp_identify_packet_loss ->
tcp_rack_mark_lost; RFC 8985 6.2 step 5 applies to every ACK that delivers
something, whatever the congestion state).

Same set-up as test_rack_rules.py (SACK, one RTT sample of R = 0.5 s, so
SRTT = min_rtt = R and RTO = 1.5 s), with tail loss probes off
(net.ipv4.tcp_early_retrans = 0) so that the first timer is the RTO.
"""

from __future__ import annotations

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CA_LOSS

from .test_rack_rules import EPS, MSS, R, _conn, _sack, _send


def _seqs(segs) -> list[int]:
    return [s.seq for s in segs]


def test_a_retransmission_sent_in_the_loss_state_is_found_lost_by_rack():
    """After the RTO every segment in flight is marked lost and they go out
    again as the window reopens.  Segment 2's retransmission goes out at T2,
    segment 3's 10 ms later; one RTT after segment 3's, the peer SACKs it but
    still asks for segment 2: segment 2's retransmission was sent before a
    delivered one more than RACK.rtt + reo_wnd ago (reo_wnd = 0 in the Loss
    state with no reordering seen, Linux tcp_rack_reo_wnd), so it is lost
    (TCPLostRetransmit) and goes a third time on that very ACK, not a second
    RTO later, and the connection stays in Loss until all of the flight sent
    before the RTO is acknowledged."""
    c = _conn(Settings(tcp_early_retrans=0))
    out = _send(c, 4)
    c.host.advance(c.host.now + c.sk.rto + EPS)
    assert _seqs(c.recv()) == [out[0].seq]                   # cwnd 1
    assert c.sk.ca_state == TCP_CA_LOSS and c.host.mib["TCPTimeouts"] == 1
    c.host.advance(c.host.now + R)
    c.send(ack=out[1].seq)
    assert _seqs(c.recv()) == [out[1].seq, out[2].seq]       # cwnd 2, at T2
    c.host.advance(c.host.now + 0.01)
    c.send(ack=out[2].seq)
    assert _seqs(c.recv()) == [out[3].seq]                   # cwnd 3, at T2 + 10 ms
    c.host.advance(c.host.now + R)
    assert _seqs(_sack(c, out[2].seq, (out[3].seq, out[3].seq + MSS))) == [out[2].seq]
    assert c.host.mib["TCPLostRetransmit"] == 1
    assert c.sk.ca_state == TCP_CA_LOSS and c.host.mib["TCPTimeouts"] == 1
    c.host.advance(c.host.now + R)
    c.send(ack=out[3].seq + MSS)
    assert c.sk.packets_out == 0 and c.sk.ca_state != TCP_CA_LOSS
