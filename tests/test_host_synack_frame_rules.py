"""A request sock's SYN-ACK leaves as one whole frame (tcp_send_synack with
syn_fast.synack_frame, issue 11) when IP would send it as one: the frame and
the counters must be exactly those of IP's general path (tcp_v4_send ->
build_tcp -> ip_output), which the same SYN to the same host takes when
ip_tcp_path declines.  Both builds run these (synack_frame is syn_fast's,
compiled or interpreted); scapy reads the answers.
"""

from __future__ import annotations

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, make_host
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

PORT = 8080
COUNTERS = ("OutSegs", "OutRequests", "EthOutFrames", "OutNoRoutes", "TCPOutNoRoute")

OPTION_SETS = [
    [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None), ("WScale", 7)],
    [("MSS", 1460), ("Timestamp", (777, 0))],
    [("MSS", 1200), ("SAckOK", b"")],
    [("MSS", 1400), ("NOP", None), ("WScale", 14)],
    [("SAckOK", b""), ("NOP", None), ("WScale", 2)],
    [],
]


def _synack(options: list, whole: bool, **settings) -> tuple[bytes, dict[str, int]]:
    """The frame a fresh host answers a SYN with, and the counters it moved;
    ``whole`` False: ip_tcp_path declines, so IP's general path sends it."""
    h = make_host(seed=7, **settings)
    if not whole:
        h.ip_tcp_path = lambda dst, length: None        # type: ignore[method-assign]
    ls = h.tcp.socket()
    ls.bind(0, PORT)
    ls.listen(8)
    before = {k: h.mib[k] for k in COUNTERS}
    syn = IP(src=PEER, dst=MY) / TCP(sport=40000, dport=PORT, flags="S", seq=1000,
                                     window=29200, options=options)
    h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC) / syn), 2.5)
    out = h.take_output()
    assert len(out) == 1, out
    return bytes(out[0][1]), {k: h.mib[k] - before[k] for k in COUNTERS}


@pytest.mark.parametrize("options", OPTION_SETS)
def test_the_whole_frame_is_the_general_paths_frame(options: list) -> None:
    frame, moved = _synack(options, True)
    general, general_moved = _synack(options, False)
    assert frame == general
    assert moved == general_moved
    assert moved["OutSegs"] == moved["OutRequests"] == moved["EthOutFrames"] == 1
    # and it is a good SYN-ACK (scapy recomputes the sums): DF, ID 0, the
    # peer's SYN acknowledged
    pkt = Ether(frame)
    assert pkt[IP].flags == "DF" and pkt[IP].id == 0 and pkt[TCP].flags == "SA"
    assert pkt[TCP].ack == 1001
    ip_sum, tcp_sum = pkt[IP].chksum, pkt[TCP].chksum
    del pkt[IP].chksum, pkt[TCP].chksum
    again = Ether(bytes(pkt))
    assert (again[IP].chksum, again[TCP].chksum) == (ip_sum, tcp_sum)


def test_without_pmtu_discovery_the_synack_takes_ips_general_path() -> None:
    """ip_no_pmtu_disc: no DF, a random IP ID (tcp_send_synack's ident), so
    never the whole-frame builder, which sets DF and ID 0."""
    frame, moved = _synack(OPTION_SETS[0], True, ip_no_pmtu_disc=1)
    pkt = Ether(frame)
    assert pkt[IP].flags != "DF" and pkt[TCP].flags == "SA"
    assert moved["OutSegs"] == moved["OutRequests"] == 1
