"""The orphan count (tcp_max_orphans) after an orphan hands its connection to a
time-wait sock.

Linux: tcp_close orphans the socket (tcp_orphan_count + 1) and resets it at
once when ``tcp_too_many_orphans``: orphans > tcp_max_orphans
(LINUX_MIB_TCPABORTONMEMORY, RST instead of FIN).  When the orphan reaches
TIME-WAIT, tcp_time_wait -> tcp_done -> inet_csk_destroy_sock takes it off
the count (the time-wait sock is not an orphan; TIME-WAIT entries have their
own limit, tcp_max_tw_buckets).
"""

from __future__ import annotations

from tcpio.core.settings import Settings

from .helpers import ACK, FIN, PEER_ISS, RPORT, SYN, Peer, passive_open


def test_an_orphan_that_reached_time_wait_no_longer_counts_against_tcp_max_orphans():
    """tcp_max_orphans = 1.  Connection A is closed and goes to TIME-WAIT
    (its orphan is destroyed); then closing connection B makes one orphan,
    not more than the limit: B's close sends <SEQ=I+1><ACK=P+1><CTL=FIN,ACK>,
    no RST."""
    a = passive_open(Settings(tcp_max_orphans=1))
    host = a.host
    b_peer = Peer(host, port=RPORT + 1)
    b_peer.send(SYN, PEER_ISS)
    synack = b_peer.recv_one()
    b_peer.send(ACK, PEER_ISS + 1, synack.seq + 1)
    b_sk = a.listener.accept()
    assert b_sk is not None

    a.sk.close()
    [fin] = a.recv()
    assert fin.flags == FIN | ACK
    a.ack_all([fin])
    a.send(flags=FIN | ACK)                  # ACKs our FIN and closes: TIME-WAIT
    assert [s.flags for s in a.recv()] == [ACK]
    assert [r.state for r in host.tcp.connections()
            if r.remote.endswith(f":{RPORT}")] == ["TIME-WAIT"]

    b_sk.close()
    assert [s.key() for s in b_peer.recv()] == [
        (FIN | ACK, synack.seq + 1, PEER_ISS + 1, b"")]
    assert host.mib["TCPAbortOnMemory"] == 0
