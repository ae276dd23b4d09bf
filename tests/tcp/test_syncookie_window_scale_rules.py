"""A SYN-cookie child whose cookie carries no window scale.

RFC 7323 2.2: window scaling is in effect only when both SYNs carried the
option; otherwise every window field is taken as it is (shift 0).  Linux
cookie_v4_check -> cookie_timestamp_decode: a cookie whose TSval says "no
wscale" (0xF) leaves ``wscale_ok`` off and ``snd_wscale`` 0, so the child
reads the peer's windows unscaled.
"""

from __future__ import annotations

from tcpio.core.settings import Settings

from .helpers import ACK, PEER_ISS, SYN, FakeHost, Peer, TcpOptions


def test_a_cookie_child_without_window_scale_reads_the_peers_window_unscaled():
    """tcp_syncookies = 2; the SYN has MSS 1460 and timestamps but no WS
    option, so the SYN-ACK has none either.  The third ACK says window 1000:
    the child may have 1000 bytes in flight (RFC 9293 3.8.6), not 1000 << 1,
    in segments of half the largest window seen (Linux tcp_bound_to_half_wnd:
    max_window 1000 > 536, so 500 bytes each)."""
    host = FakeHost(settings=Settings(tcp_syncookies=2))
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, peer.lport)
    ls.listen(8)
    peer.send(SYN, PEER_ISS, opts=TcpOptions(mss=1460, ts_val=100, ts_ecr=0))
    synack = peer.recv_one()
    assert synack.flags == SYN | ACK and synack.opts.wscale is None
    assert len(ls.syn_queue) == 0                     # a cookie, not a request
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1, window=1000,
              opts=TcpOptions(ts_val=101, ts_ecr=synack.opts.ts_val))
    child = ls.accept()
    assert child is not None and host.mib["SyncookiesRecv"] == 1
    assert child.sendmsg(b"x" * 3000) == 3000
    segs = peer.recv()
    assert [(s.seq, len(s.payload)) for s in segs] == [(synack.seq + 1, 500),
                                                    (synack.seq + 501, 500)]
