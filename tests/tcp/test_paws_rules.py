"""PAWS as Linux applies it (RFC 7323 5.3; net/ipv4/tcp_input.c
tcp_validate_incoming, tcp_paws_check, tcp_disordered_ack_check,
tcp_tsval_replay; Linux 6.15+ for the old-ACK case).

- A segment whose TSval is more than TCP_PAWS_WINDOW (1 tick) older than
  TS.Recent fails PAWS, unless TS.Recent is 0 (stacks that send tsval 0 on
  the SYN) or older than 24 days.
- A pure ACK that failed is still taken if it is "disordered": at rcv_nxt,
  a duplicate of snd_una, no window update, and within one RTO of TS.Recent
  at 1200 ticks a second (tcp_tsval_replay).  Such ACKs are reordered
  behind data (transmit queues) and still count for fast retransmit.
- A failed pure ACK from before rcv_nxt is an old ACK: counted in PAWSOldAck
  and dropped without a duplicate ACK.  Other failures are counted in
  PAWSEstab and answered with a (rate-limited) duplicate ACK; a SYN that
  fails is answered with a challenge ACK; a RST is taken whatever its TSval.
"""

from __future__ import annotations

from typing import Any

from tcpio.core.tcp.tcp_input import tcp_tsval_replay

from .helpers import ACK, LPORT, PEER_ISS, RST, SYN, Conn, FakeHost, Peer, TcpOptions, passive_open

MSS = 1460


def _ts_conn(syn_ts: int = 100, recent: int | None = 50000, window: int = 65535) -> Conn:
    c = passive_open(syn_opts=TcpOptions(mss=MSS, ts_val=syn_ts, ts_ecr=0), window=window)
    if recent is not None:
        c.send(opts=TcpOptions(ts_val=recent, ts_ecr=0))      # TS.Recent
        assert c.sk.ts_recent == recent
    assert c.recv() == []
    return c


def _ts(v: int) -> TcpOptions:
    return TcpOptions(ts_val=v & 0xFFFFFFFF, ts_ecr=0)


def test_the_replay_window_is_one_rto_at_1200_ticks_a_second() -> None:
    c = _ts_conn()
    assert c.sk.rto == 1.0                      # no RTT sample yet (RFC 6298 2.1)
    assert tcp_tsval_replay(c.sk) == 1200


def test_data_one_tick_older_than_ts_recent_passes_two_ticks_do_not() -> None:
    c = _ts_conn()
    c.send(b"a", opts=_ts(50000 - 1))
    assert c.sk.recvmsg(10) == b"a"
    assert c.host.mib["PAWSEstabRejected"] == 0
    assert c.sk.ts_recent == 50000              # tcp_replace_ts_recent: never older
    c.recv()
    c.send(b"b", opts=_ts(50000 - 2), seq=c.snd)
    assert c.sk.recvmsg(10) == b""
    assert c.host.mib["PAWSEstabRejected"] == 1
    dup = c.recv()
    assert [(s.flags, s.ack) for s in dup] == [(ACK, c.snd)]     # the dupack: rcv_nxt


def test_reordered_duplicate_acks_within_one_rto_still_trigger_fast_retransmit() -> None:
    """Three duplicate ACKs whose TSvals are up to one RTO (1200 ticks) older
    than TS.Recent are taken: the third retransmits the head."""
    c = _ts_conn()
    c.sk.sendmsg(bytes(6 * c.sk.mss_cache))
    out = c.recv()
    assert len(out) == 6
    for k in range(3):
        c.send(opts=_ts(50000 - 1200 + k))
    assert c.host.mib["PAWSEstabRejected"] == 0
    rtx = c.recv()
    assert [(s.seq, len(s.payload)) for s in rtx][:1] == [(out[0].seq, c.sk.mss_cache)]
    assert c.host.mib["RetransSegs"] >= 1


def test_duplicate_acks_older_than_one_rto_are_rejected_and_retransmit_nothing() -> None:
    c = _ts_conn()
    c.sk.sendmsg(bytes(6 * c.sk.mss_cache))
    out = c.recv()
    assert len(out) == 6
    for _ in range(3):
        c.send(opts=_ts(50000 - 1201))
    assert c.host.mib["PAWSEstabRejected"] == 3
    answers = c.recv()
    # one duplicate ACK (the others within tcp_invalid_ratelimit), no data
    assert [(s.flags, s.seq, len(s.payload)) for s in answers] == [
        (ACK, (out[-1].seq + c.sk.mss_cache) & 0xFFFFFFFF, 0)]
    assert c.host.mib["RetransSegs"] == 0


def test_an_old_ack_that_updates_the_window_is_not_exempt() -> None:
    c = _ts_conn()
    c.send(b"q", opts=_ts(50001), window=30000)    # newer: the window shrinks to 30000
    c.send(opts=_ts(50001), window=30000)          # snd_wl1 = this seq
    assert c.sk.snd_wnd == 30000
    c.sk.sendmsg(bytes(2 * c.sk.mss_cache))
    c.recv()
    c.send(opts=_ts(50001 - 10), window=40000)     # a larger window: an update
    assert c.host.mib["PAWSEstabRejected"] == 1
    assert c.sk.snd_wnd == 30000
    c.send(opts=_ts(50001 - 10), window=30000)     # the same window: disordered, taken
    assert c.host.mib["PAWSEstabRejected"] == 1


def test_an_old_pure_ack_from_before_rcv_nxt_is_dropped_without_an_answer() -> None:
    c = _ts_conn()
    old_seq = c.snd
    c.send(b"x" * 100, opts=_ts(50001))
    c.recv()
    c.send(opts=_ts(49000), seq=old_seq)           # an ACK from before that data
    assert c.host.mib["PAWSOldAck"] == 1
    assert c.host.mib["PAWSEstabRejected"] == 0
    assert c.recv() == []


def test_a_syn_failing_paws_gets_a_challenge_ack() -> None:
    c = _ts_conn()
    c.send(flags=SYN, opts=_ts(40000), seq=c.snd)
    assert c.host.mib["TCPSYNChallenge"] == 1
    assert c.host.mib["PAWSEstabRejected"] == 0
    assert [(s.flags, s.ack) for s in c.recv()] == [(ACK, c.snd)]


def test_a_rst_is_taken_whatever_its_timestamp() -> None:
    c = _ts_conn()
    c.send(flags=RST, opts=_ts(1), seq=c.snd)
    assert c.host.mib["PAWSEstabRejected"] == 0
    assert c.sk.state != 1 or c.sk.sk_err                  # reset: not ESTABLISHED
    assert c.sk.sk_err


def test_ts_recent_zero_accepts_any_timestamp() -> None:
    """A peer whose SYN carried tsval 0: TS.Recent 0 is not trusted, so a
    first real TSval that is 'negative' against it still passes."""
    c = _ts_conn(syn_ts=0, recent=None)
    c.sk.ts_recent = 0                       # as the handshake left it for such a peer
    c.send(b"z", opts=_ts(0x90000000))
    assert c.sk.recvmsg(10) == b"z"
    assert c.host.mib["PAWSEstabRejected"] == 0


def test_a_ts_recent_idle_for_more_than_24_days_is_not_trusted() -> None:
    c = _ts_conn()
    c.host.advance(24 * 86400 + 1)
    c.send(b"w", opts=_ts(10))
    assert c.sk.recvmsg(10) == b"w"
    assert c.host.mib["PAWSEstabRejected"] == 0


def _syn_with_tsval(tsval: int) -> tuple[FakeHost, Peer, Any, Any]:
    """A listener, and a peer's SYN with timestamps (TSval ``tsval``) to it."""
    host = FakeHost()
    peer = Peer(host)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    peer.send(SYN, PEER_ISS, 0, 65535, opts=TcpOptions(mss=MSS, ts_val=tsval, ts_ecr=0))
    return host, peer, ls, peer.recv_one()


def test_a_handshake_from_a_peer_whose_syn_had_tsval_0_completes() -> None:
    """tcp_check_req's PAWS (tcp_paws_reject) trusts no TS.Recent of 0: the
    third ACK's first real TSval, 'negative' against 0 in 32-bit sequence
    space, still completes the handshake."""
    host, peer, ls, synack = _syn_with_tsval(0)
    assert synack.opts.ts_val is not None
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1, 65535,
              opts=TcpOptions(ts_val=0x90000000, ts_ecr=synack.opts.ts_val))
    assert ls.accept() is not None
    assert host.mib["PAWSEstabRejected"] == 0


def test_a_request_rejects_a_third_ack_older_than_its_syns_timestamp() -> None:
    host, peer, ls, synack = _syn_with_tsval(5000)
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1, 65535,
              opts=TcpOptions(ts_val=4999, ts_ecr=synack.opts.ts_val))
    assert ls.accept() is None
    assert host.mib["PAWSEstabRejected"] == 1
