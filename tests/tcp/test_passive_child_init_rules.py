"""What an accepted child has once the handshake is done, against Linux.

Linux, third ACK at a request sock: ``tcp_check_req`` -> ``syn_recv_sock``
(``tcp_create_openreq_child``) -> ``tcp_synack_rtt_meas(child, req)``; then
``tcp_rcv_state_process`` in SYN_RECV: ``tcp_synack_rtt_meas(sk, NULL)`` if
there is still no sample (the timestamp echo), ``tcp_init_transfer``
(``tcp_init_metrics``: RTO 3 s when the handshake gave no sample, RFC 6298
5.7; congestion control init; ``tcp_init_buffer_space`` ->
``tcp_sndbuf_expand``).

The figures below come from Linux's formulas, written out in the tests:

* RTT sample: time from the first SYN-ACK to the third ACK when no SYN-ACK
  was sent again (Karn), else ``tcp_time_stamp - (TSecr - ts_off)`` in ms
  (0 counts as 1), else none.
* ``tcp_rtt_estimator`` first sample m: srtt = m, mdev = m/2 (kept x4 as
  2m), rttvar = max(2m, tcp_rto_min); RTO = srtt + rttvar (``__tcp_set_rto``).
* send buffer: ``tcp_sndbuf_expand``: 2 (the congestion control's factor)
  x max(TCP_INIT_CWND, cwnd) x per-segment memory, capped at tcp_wmem[2],
  unless SO_SNDBUF locked it.  tcpio counts payload bytes against sndbuf
  and takes per-segment memory as 2 x mss_cache (Linux: the skb's truesize,
  ~2 x MSS), the model tcp_output.sndbuf_expand and the active side use.
* receive buffer: untouched (the listener's, via sk_clone_lock).
"""

from __future__ import annotations

import pytest

from tcpio.core.settings import Settings

from .helpers import (
    ACK,
    PEER_ISS,
    SYN,
    FakeHost,
    Peer,
    TcpOptions,
    active_open,
)

TCP_INIT_CWND = 10
TCP_TIMEOUT_FALLBACK = 3.0
T0 = 10.0


def linux_first_rto(m: float, rto_min: float = 0.2) -> float:
    """tcp_rtt_estimator's first sample, then __tcp_set_rto."""
    srtt = m
    rttvar = max(2 * m, rto_min)        # mdev_us = m << 1, floored at tcp_rto_min
    return srtt + rttvar


def listen(settings: Settings | None = None, setup=None) -> tuple[FakeHost, Peer, object]:
    host = FakeHost(settings=settings)
    peer = Peer(host)
    ls = host.tcp.socket()
    if setup:
        setup(ls)
    ls.bind(0, 80)
    ls.listen(8)
    # Start away from 0: a timestamp echo that is 0 once ts_off is taken off
    # means "no echo" to Linux (rcv_tsecr == 0), and our clock reads 0 ms at 0.
    host.advance(T0)
    return host, peer, ls


def handshake(host, peer, ls, ack_at: float, syn_opts=None, echo_first: bool = True,
              synack_resends_by_timer: int = 0, syn_again_at: float | None = None):
    """SYN at T0; the SYN-ACK(s); the third ACK at T0 + ``ack_at``.  Returns the child."""
    peer.send(SYN, PEER_ISS, 0, opts=syn_opts)
    synacks = peer.recv()
    if syn_again_at is not None:
        host.advance(T0 + syn_again_at)
        peer.send(SYN, PEER_ISS, 0, opts=syn_opts)   # our SYN-ACK "lost": sent again
        synacks += peer.recv()
    t = 1.0
    for _ in range(synack_resends_by_timer):
        host.advance(T0 + t)
        synacks += peer.recv()
        t = t * 3                                    # (1 s, then 2 s later: at 3 s)
    assert len(synacks) == 1 + synack_resends_by_timer + (syn_again_at is not None)
    host.advance(T0 + ack_at)
    opts = None
    if syn_opts is not None and syn_opts.ts_val is not None:
        echoed = synacks[0] if echo_first else synacks[-1]
        opts = TcpOptions(ts_val=syn_opts.ts_val + 1, ts_ecr=echoed.opts.ts_val)
    peer.send(ACK, PEER_ISS + 1, synacks[0].seq + 1, opts=opts)
    child = ls.accept()
    assert child is not None
    return child


def rtx_after(host, peer, child) -> float:
    """Send one segment from the child and return when it is retransmitted."""
    t0 = host.now
    assert child.sendmsg(b"d" * 100) == 100
    assert len(peer.recv()) == 1
    t = t0
    while True:
        t = round(t + 0.001, 6)
        host.advance(t)
        if peer.recv():
            return round(t - t0, 3)
        assert t < t0 + 10


# --- the RTT sample from the handshake --------------------------------------------------
@pytest.mark.parametrize("m", [0.05, 0.3])
def test_the_third_ack_gives_an_rtt_sample(m):
    host, peer, ls = listen()
    child = handshake(host, peer, ls, ack_at=m)
    assert child.srtt == pytest.approx(m)
    assert child.rtt_est.rttvar == pytest.approx(m / 2)
    assert child.rto == pytest.approx(linux_first_rto(m))
    assert child.min_rtt == pytest.approx(m)
    assert rtx_after(host, peer, child) == pytest.approx(linux_first_rto(m), abs=0.0011)


def test_an_instant_handshake_is_a_zero_sample_and_the_rto_floor():
    """Linux accepts a 0 us sample (only < 0 means none): RTO = tcp_rto_min."""
    host, peer, ls = listen()
    child = handshake(host, peer, ls, ack_at=0.0)
    assert child.rtt_est.has_sample and child.srtt == 0.0
    assert child.rto == pytest.approx(linux_first_rto(0.0))


def test_the_sample_follows_tcp_rto_min():
    host, peer, ls = listen(Settings(tcp_rto_min=0.05))
    child = handshake(host, peer, ls, ack_at=0.01)
    assert child.rto == pytest.approx(linux_first_rto(0.01, rto_min=0.05))


def test_a_synack_resent_by_the_timer_gives_no_sample_without_timestamps():
    """Karn: the third ACK may answer either SYN-ACK (num_retrans != 0: no
    sample); no timestamps to tell; tcp_init_metrics: RTO 3 s."""
    host, peer, ls = listen()
    child = handshake(host, peer, ls, ack_at=1.2, synack_resends_by_timer=1)
    assert not child.rtt_est.has_sample and child.srtt == 0.0
    assert child.rto == TCP_TIMEOUT_FALLBACK
    assert rtx_after(host, peer, child) == pytest.approx(TCP_TIMEOUT_FALLBACK, abs=0.0011)


def test_a_synack_resent_for_a_retransmitted_syn_gives_no_sample_either():
    """inet_rtx_syn_ack counts this resend in num_retrans too."""
    host, peer, ls = listen()
    child = handshake(host, peer, ls, ack_at=0.6, syn_again_at=0.5)
    assert not child.rtt_est.has_sample
    assert child.rto == TCP_TIMEOUT_FALLBACK


@pytest.mark.parametrize("echo_first, m", [(True, 3.2), (False, 0.2)])
def test_with_timestamps_a_resent_synack_is_measured_by_the_echo(echo_first, m):
    """tcp_ack_update_rtt's fallback: now - (TSecr - ts_off), whichever
    SYN-ACK the echo names (the first, sent at 0, or the one at 3 s)."""
    host, peer, ls = listen()
    syn_opts = TcpOptions(mss=1460, ts_val=100, ts_ecr=0, sack_ok=True, wscale=7)
    child = handshake(host, peer, ls, ack_at=3.2, syn_opts=syn_opts, echo_first=echo_first,
                      synack_resends_by_timer=2)
    assert child.srtt == pytest.approx(m)
    assert child.rto == pytest.approx(linux_first_rto(m))


def test_with_timestamps_and_no_resend_the_send_time_is_used():
    host, peer, ls = listen()
    syn_opts = TcpOptions(mss=1460, ts_val=100, ts_ecr=0)
    child = handshake(host, peer, ls, ack_at=0.0374, syn_opts=syn_opts)
    # the SYN-ACK's send time (us in Linux), not the ms timestamp echo (37)
    assert child.srtt == pytest.approx(0.0374)


def test_a_syncookie_child_measures_by_the_echo_or_falls_back():
    """A cookie's request has no snt_synack: only the timestamp echo can
    measure (cookie_init_timestamp's TSval is never ahead of the clock)."""
    for ts in (False, True):
        host, peer, ls = listen(Settings(tcp_syncookies=2))
        opts = TcpOptions(mss=1460, ts_val=100, ts_ecr=0) if ts else TcpOptions(mss=1460)
        peer.send(SYN, PEER_ISS, 0, opts=opts)
        (synack,) = peer.recv()
        host.advance(T0 + 0.4)
        ack_opts = TcpOptions(ts_val=101, ts_ecr=synack.opts.ts_val) if ts else None
        peer.send(ACK, PEER_ISS + 1, synack.seq + 1, opts=ack_opts)
        child = ls.accept()
        assert child is not None and host.mib["SyncookiesRecv"] == 1
        if ts:
            # the cookie's TSval (cookie_init_timestamp) is at most the clock,
            # so the sample is at least the 0.4 s that passed, within the
            # 64 ms (6 low bits) the cookie's encoding can take off
            assert 0.4 <= child.srtt <= 0.4 + 0.064
        else:
            assert not child.rtt_est.has_sample and child.rto == TCP_TIMEOUT_FALLBACK


# --- buffers ----------------------------------------------------------------------------
def linux_sndbuf(child, settings: Settings) -> int:
    per_mss = 2 * child.mss_cache
    nr_segs = max(TCP_INIT_CWND, child.snd_cwnd)
    return min(2 * nr_segs * per_mss, settings.tcp_wmem[2])


@pytest.mark.parametrize("mss, ts", [(1460, False), (1460, True), (536, False)])
def test_the_send_buffer_is_expanded_for_the_initial_window(mss, ts):
    host, peer, ls = listen()
    syn_opts = TcpOptions(mss=mss, ts_val=7, ts_ecr=0) if ts else TcpOptions(mss=mss)
    child = handshake(host, peer, ls, ack_at=0.01, syn_opts=syn_opts)
    want = linux_sndbuf(child, host.settings)
    assert want > host.settings.tcp_wmem[1]          # (it really grew)
    assert child.sndbuf == want
    assert child.sendmsg(b"s" * (1 << 20)) == want


def test_the_passive_side_gets_the_same_send_buffer_as_the_active_side():
    host, peer, ls = listen()
    child = handshake(host, peer, ls, ack_at=0.01, syn_opts=TcpOptions(mss=1460))
    active = active_open(synack_opts=TcpOptions(mss=1460))
    assert active.sk.mss_cache == child.mss_cache
    assert child.sndbuf == active.sk.sndbuf


def test_so_sndbuf_on_the_listener_locks_the_child_buffer():
    """SOCK_SNDBUF_LOCK is inherited (sk_clone_lock): no tcp_sndbuf_expand."""
    import socket
    host, peer, ls = listen(setup=lambda s: s.setsockopt(socket.SOL_SOCKET,
                                                         socket.SO_SNDBUF, 6000))
    child = handshake(host, peer, ls, ack_at=0.01, syn_opts=TcpOptions(mss=1460))
    assert child.opts.sndbuf_locked and child.sndbuf == 2 * 6000


def test_the_receive_buffer_is_the_listeners():
    import socket
    host, peer, ls = listen()
    child = handshake(host, peer, ls, ack_at=0.01, syn_opts=TcpOptions(mss=1460))
    assert child.rcvbuf == host.settings.tcp_rmem[1] and not child.opts.rcvbuf_locked
    host, peer, ls = listen(setup=lambda s: s.setsockopt(socket.SOL_SOCKET,
                                                         socket.SO_RCVBUF, 50000))
    child = handshake(host, peer, ls, ack_at=0.01, syn_opts=TcpOptions(mss=1460))
    assert child.rcvbuf == 100000 and child.opts.rcvbuf_locked


def test_options_set_on_a_child_are_its_own():
    """sk_clone_lock gives the child a copy of the listener's options: what
    the child sets later reaches neither the listener nor a new socket
    (which starts from the sysctls: tcp_keepalive_time)."""
    import socket
    SOL, TCP, IP = socket.SOL_SOCKET, socket.IPPROTO_TCP, socket.IPPROTO_IP

    def setup(s):
        s.setsockopt(TCP, socket.TCP_KEEPIDLE, 30)
        s.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    host, peer, ls = listen(setup=setup)
    child = handshake(host, peer, ls, ack_at=0.01, syn_opts=TcpOptions(mss=1460))
    assert (child.getsockopt(TCP, socket.TCP_KEEPIDLE),
            child.getsockopt(SOL, socket.SO_KEEPALIVE)) == (30, 1)
    child.setsockopt(TCP, socket.TCP_KEEPIDLE, 5)
    child.setsockopt(IP, socket.IP_TOS, 0x10)
    child.setsockopt(SOL, socket.SO_LINGER, (1, 0))
    assert (ls.getsockopt(TCP, socket.TCP_KEEPIDLE), ls.getsockopt(IP, socket.IP_TOS),
            ls.getsockopt(SOL, socket.SO_LINGER)) == (30, 0, b"\0" * 8)
    fresh = host.tcp.socket()
    assert (fresh.getsockopt(TCP, socket.TCP_KEEPIDLE), fresh.getsockopt(SOL, socket.SO_KEEPALIVE),
            fresh.getsockopt(IP, socket.IP_TOS)) == (int(host.settings.tcp_keepalive_time), 0, 0)
    assert child.getsockopt(TCP, socket.TCP_KEEPIDLE) == 5
