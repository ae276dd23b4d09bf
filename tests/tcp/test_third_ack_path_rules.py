"""The segment that completes a passive open, processed by the new child.

tcpio makes the child ESTABLISHED in ``tcp_v4_syn_recv_sock`` (Linux leaves
it SYN_RECV until ``tcp_rcv_state_process`` moves it), so the third ACK then
takes an established sock's path: ``tcp_rcv_established``, header prediction
first, the state machine for what it declines.  Whatever path it takes, what
the segment does is RFC 9293's and RFC 7323's:

* data on the third ACK is the child's, in order (RFC 9293 3.10.7.4, the
  SYN-RECEIVED "ESTABLISHED processing" of the text);
* a bare ACK is not answered (no ACK of an ACK);
* TS.Recent takes its TSval (RFC 7323 4.3: SEG.SEQ <= Last.ACK.sent);
* a FIN on it moves the child to CLOSE-WAIT, a RST closes it.

And the whole child, field by field and frame by frame, is the same as when
the state machine takes the segment (the path tcpio used before): the
differential check below runs both on one script.
"""

from __future__ import annotations

import pytest

from tcpio.core.tcp import tcp_ipv4
from tcpio.core.tcp.tcp_input import tcp_rcv_state_process
from tcpio.core.tcp.tcp_states import TCP_CLOSE_WAIT, TCP_ESTABLISHED

from .helpers import ACK, FIN, PEER_ISS, PSH, RST, SYN, FakeHost, Peer, TcpOptions

T0 = 10.0
TS0 = 5000


def open_to_third_ack(ts: bool = True):
    host = FakeHost()
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, 80)
    ls.listen(8)
    host.advance(T0)
    peer.send(SYN, PEER_ISS, 0, opts=TcpOptions(mss=1460, wscale=7, sack_ok=True,
                                                ts_val=TS0 if ts else None,
                                                ts_ecr=0 if ts else None))
    synack = peer.recv_one()
    host.advance(T0 + 0.02)
    opts = TcpOptions(ts_val=TS0 + 20, ts_ecr=synack.opts.ts_val) if ts else None
    return host, peer, ls, (synack.seq + 1) & 0xFFFFFFFF, opts


@pytest.mark.parametrize("ts", [True, False])
def test_data_on_the_third_ack_is_the_childs_in_order(ts):
    host, peer, ls, ours, opts = open_to_third_ack(ts)
    peer.send(ACK | PSH, PEER_ISS + 1, ours, payload=b"hello", opts=opts)
    child = ls.accept()
    assert child.state == TCP_ESTABLISHED
    assert child.recvmsg(100) == b"hello"
    assert child.rcv_nxt == (PEER_ISS + 6) & 0xFFFFFFFF


def test_a_bare_third_ack_is_not_answered():
    host, peer, ls, ours, opts = open_to_third_ack()
    peer.send(ACK, PEER_ISS + 1, ours, opts=opts)
    assert ls.accept() is not None
    host.advance(T0 + 1.0)
    assert peer.recv() == []


def test_the_third_acks_tsval_is_ts_recent_and_it_is_heard_from():
    host, peer, ls, ours, opts = open_to_third_ack()
    peer.send(ACK, PEER_ISS + 1, ours, opts=opts)
    child = ls.accept()
    assert child.ts_recent == TS0 + 20
    assert child.ts_recent_stamp == host.now
    assert child.rcv_tstamp == host.now


def test_a_fin_on_the_third_ack_moves_the_child_to_close_wait():
    host, peer, ls, ours, opts = open_to_third_ack()
    peer.send(ACK | FIN, PEER_ISS + 1, ours, opts=opts)
    child = ls.accept()
    assert child.state == TCP_CLOSE_WAIT
    assert child.rcv_nxt == (PEER_ISS + 2) & 0xFFFFFFFF
    assert child.recvmsg(10) == b"" and child.rcv_eof


# --- the same child whichever path takes the third ACK ---------------------------------
FIELDS = ("state", "rcv_nxt", "rcv_wup", "rcv_wnd", "snd_una", "snd_nxt", "snd_wnd",
          "max_window", "snd_wl1", "ts_recent", "ts_recent_stamp", "rcv_tstamp",
          "ack_pending", "quick", "pending", "segs_in", "segs_out", "snd_cwnd",
          "snd_ssthresh", "rcv_mss", "mss_cache", "got_data", "lrcvtime", "rcv_eof",
          "srtt", "rto", "packets_out", "sndbuf", "rcvbuf", "window_clamp", "ca_state")


def _snapshot(host, peer, child):
    fields = {name: getattr(child, name) for name in FIELDS}
    fields["rtx_when"] = child.rtx_timer.when
    fields["delack_when"] = child.delack_timer.when
    fields["readable"] = child.readable()
    fields["mib"] = {k: v for k, v in host.mib.items() if v}
    host.advance(host.now + 0.5)        # what its timers send
    fields["frames"] = [s.key() for s in peer.recv()]
    return fields


def _state_machine_path(self, req, skb, iph, now):
    """TcpProto._rcv_request as it was: the child's third ACK to tcp_rcv_state_process."""
    child = tcp_ipv4.tcp_check_req(self, req, skb, now)
    if child is req.listener:
        self._rcv_listen(child, skb, iph, now, req=req)
    elif child is not None:
        child.segs_in += skb.gso_segs
        tcp_rcv_state_process(child, skb, now)


@pytest.mark.parametrize("flags, payload", [(ACK, b""), (ACK | PSH, b"x" * 100),
                                            (ACK | FIN, b""), (ACK | PSH | FIN, b"bye")])
@pytest.mark.parametrize("ts", [True, False])
def test_the_child_is_the_same_as_after_the_state_machine(monkeypatch, flags, payload, ts):
    def run():
        host, peer, ls, ours, opts = open_to_third_ack(ts)
        peer.send(flags, PEER_ISS + 1, ours, payload=payload, opts=opts)
        child = ls.accept()
        return _snapshot(host, peer, child)

    now = run()
    monkeypatch.setattr(tcp_ipv4.TcpProto, "_rcv_request", _state_machine_path)
    before = run()
    assert now == before


def test_a_rst_on_the_third_ack_still_closes_the_request():
    host, peer, ls, ours, opts = open_to_third_ack()
    peer.send(RST, PEER_ISS + 1, 0)
    assert ls.accept() is None
    assert host.tcp.connections()[1:] == []
