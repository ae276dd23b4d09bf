"""Opening connections: RFC 9293 3.5 / 3.10.7.2-3 and Linux's passive-open path.

Each test plays the peer by hand and checks the exact segments the stack sends.
"""

from __future__ import annotations

import errno

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_info import tcp_get_info
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_ESTABLISHED,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
)

from . import states
from .helpers import (
    ACK,
    PEER_ISS,
    REMOTE,
    RPORT,
    RST,
    SYN,
    FakeHost,
    Peer,
    TcpOptions,
    active_open,
    passive_open,
)


def _connect(host: FakeHost, addr: int = REMOTE, port: int = RPORT):
    sk = host.tcp.socket()
    with pytest.raises(BlockingIOError) as ei:
        sk.connect(addr, port)
    assert ei.value.errno == errno.EINPROGRESS
    return sk


def _listen(settings: Settings | None = None, backlog: int = 8):
    """A host with a listener on port 80 and a hand-played peer."""
    host = FakeHost(settings=settings)
    ls = host.tcp.socket()
    ls.bind(0, 80)
    ls.listen(backlog)
    return host, Peer(host), ls


def _syn_sent(settings: Settings | None = None):
    """A host whose socket has sent its SYN; the peer answers to its port."""
    host = FakeHost(settings=settings)
    peer = Peer(host)
    sk = _connect(host)
    syn = peer.recv_one()
    peer.lport = syn.sport
    return host, peer, sk, syn


# --- LISTEN ------------------------------------------------------------------------
def test_syn_to_listener_gets_synack_with_options():
    host, peer, _ls = _listen()
    peer.send(SYN, PEER_ISS, 0, 65535,
              opts=TcpOptions(mss=1460, wscale=7, sack_ok=True, ts_val=100, ts_ecr=0))
    s = peer.recv_one()
    assert s.flags == SYN | ACK
    assert s.ack == PEER_ISS + 1
    assert s.opts.mss == 1460            # MTU 1500 - 40
    assert s.opts.wscale == 7            # enough for tcp_rmem[2] = 6 MiB
    assert s.opts.sack_ok
    assert s.opts.ts_ecr == 100          # echoes the SYN's TSval
    assert s.window == 65160             # 45 x 1448 (MSS less timestamps), as Linux
    assert host.mib["PassiveOpens"] == 0  # not before the third ACK


def test_synack_without_options_when_syn_has_none():
    _host, peer, _ls = _listen()
    peer.send(SYN, PEER_ISS)
    s = peer.recv_one()
    assert s.opts.wscale is None and not s.opts.sack_ok and s.opts.ts_val is None
    assert s.opts.mss == 1460


def test_third_ack_creates_child_in_accept_queue():
    c = passive_open()
    assert c.sk.state == TCP_ESTABLISHED
    assert c.host.mib["PassiveOpens"] == 1
    assert c.host.mib["CurrEstab"] == 1
    assert c.sk.getpeername() == (REMOTE, RPORT)
    assert c.listener.accept() is None


def test_ack_to_listener_gets_rst_with_seq_from_ack():
    """RFC 9293 3.10.7.2: <SEQ=SEG.ACK><CTL=RST> for an ACK in LISTEN."""
    _host, peer, _ls = _listen()
    peer.send(ACK, 5000, 777)
    s = peer.recv_one()
    assert (s.flags, s.seq) == (RST, 777)


def test_rst_to_listener_is_ignored():
    host, peer, _ls = _listen()
    peer.send(RST, 5000)
    assert peer.recv() == []
    assert host.mib["OutRsts"] == 0


def test_segment_to_closed_port_gets_rst_ack():
    """No socket: RST with ACK = SEG.SEQ + SEG.LEN (SYN counts one)."""
    host = FakeHost()
    peer = Peer(host)
    peer.send(SYN, 4000)
    s = peer.recv_one()
    assert (s.flags, s.seq, s.ack) == (RST | ACK, 0, 4001)
    peer.send(ACK, 4001, 9999, payload=b"abc")
    s = peer.recv_one()
    assert (s.flags, s.seq) == (RST, 9999)


def test_never_rst_a_rst():
    host = FakeHost()
    peer = Peer(host)
    peer.send(RST | ACK, 4000, 1)
    assert peer.recv() == []


def test_retransmitted_syn_gets_same_synack():
    _host, peer, _ls = _listen()
    peer.send(SYN, PEER_ISS)
    a = peer.recv_one()
    peer.send(SYN, PEER_ISS)
    b = peer.recv_one()
    assert (a.flags, a.seq, a.ack) == (b.flags, b.seq, b.ack)


def test_synack_retransmission_backoff_then_drop():
    host, peer, ls = _listen(Settings(tcp_synack_retries=3))
    peer.send(SYN, PEER_ISS)
    first = peer.recv_one()
    times = []
    t = 0.0
    while t < 60:
        t += 0.25
        host.advance(t)
        for s in peer.recv():
            assert s.seq == first.seq and s.flags == SYN | ACK
            times.append(t)
    assert times == [1.0, 3.0, 7.0]        # 1 s, then doubling (TCP_TIMEOUT_INIT)
    assert len(ls.syn_queue) == 0          # dropped after tcp_synack_retries
    peer.send(ACK, PEER_ISS + 1, first.seq + 1)
    assert peer.recv_one().flags == RST     # the request is gone
    assert ls.accept() is None


def test_bad_ack_in_syn_recv_gets_rst():
    _host, peer, ls = _listen()
    peer.send(SYN, PEER_ISS)
    synack = peer.recv_one()
    peer.send(ACK, PEER_ISS + 1, synack.seq + 5)
    s = peer.recv_one()
    assert (s.flags, s.seq) == (RST, synack.seq + 5)
    assert ls.accept() is None


def test_rst_in_syn_recv_drops_request():
    _host, peer, ls = _listen()
    peer.send(SYN, PEER_ISS)
    peer.recv_one()
    peer.send(RST, PEER_ISS + 1)
    assert len(ls.syn_queue) == 0
    assert peer.recv() == []


def _complete(host, port, isn):
    p = Peer(host, port=port)
    p.send(SYN, isn)
    sa = p.recv_one()
    p.send(ACK, isn + 1, sa.seq + 1)
    return p, sa


def test_accept_queue_holds_backlog_plus_one():
    """Linux's sk_acceptq_is_full is ``ack_backlog > max_ack_backlog``."""
    host, _, ls = _listen(backlog=1)
    _complete(host, 1111, 10)
    _complete(host, 2222, 20)
    assert len(ls.accept_queue) == 2
    assert host.mib["ListenOverflows"] == 0


def test_accept_queue_full_drops_third_ack_and_counts():
    host, _, ls = _listen(backlog=0)          # holds one child (see above)
    p1, p2 = Peer(host, port=1111), Peer(host, port=2222)
    p1.send(SYN, 10)
    s1 = p1.recv_one()
    p2.send(SYN, 20)
    s2 = p2.recv_one()
    p1.send(ACK, 11, s1.seq + 1)
    assert len(ls.accept_queue) == 1
    p2.send(ACK, 21, s2.seq + 1)              # queue full: dropped, no RST
    assert p2.recv() == []
    assert len(ls.accept_queue) == 1
    assert host.mib["ListenOverflows"] == 1 and host.mib["ListenDrops"] == 1
    # once the app accepts, the client's retransmitted ACK gets through
    ls.accept()
    p2.send(ACK, 21, s2.seq + 1)
    assert ls.accept() is not None


def test_syn_dropped_when_accept_queue_full():
    host, _, _ls = _listen(backlog=0)
    _complete(host, 1111, 10)
    p2 = Peer(host, port=2222)
    p2.send(SYN, 20)
    assert p2.recv() == []
    assert host.mib["ListenOverflows"] == 1


def test_syncookies_when_syn_queue_full():
    # Linux's inet_csk_reqsk_queue_is_full: qlen > the listen() backlog (6.13+)
    host, _, ls = _listen(backlog=2)
    for port in (1000, 1001, 1002):
        Peer(host, port=port).send(SYN, 5)
    assert len(ls.syn_queue) == 3
    p = Peer(host, port=1003)
    p.send(SYN, 700, opts=TcpOptions(mss=1460, wscale=5, sack_ok=True, ts_val=42, ts_ecr=0))
    synack = p.recv_one()
    assert host.mib["SyncookiesSent"] == 1
    assert len(ls.syn_queue) == 3          # no state kept
    # the cookie's timestamp carries wscale and SACK back to us
    p.send(ACK, 701, synack.seq + 1, opts=TcpOptions(ts_val=43, ts_ecr=synack.opts.ts_val))
    child = ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED
    assert host.mib["SyncookiesRecv"] == 1
    assert child.snd_wscale == 5 and child.sack_ok and child.tstamp_ok
    assert child.mss_clamp <= 1460


def test_bad_cookie_is_counted_and_reset():
    host, _, ls = _listen(Settings(tcp_syncookies=2), backlog=16)
    p = Peer(host, port=1003)
    p.send(SYN, 700)
    synack = p.recv_one()
    p.send(ACK, 701, synack.seq + 77)
    assert host.mib["SyncookiesFailed"] == 1
    assert p.recv_one().flags == RST
    assert ls.accept() is None


def test_syn_queue_full_without_cookies_drops():
    # a full SYN queue (qlen > backlog 0, Linux 6.13+) without cookies drops
    host, _, _ls = _listen(Settings(tcp_syncookies=0), backlog=0)
    Peer(host, port=1).send(SYN, 5)
    p = Peer(host, port=2)
    p.send(SYN, 5)
    assert p.recv() == []
    assert host.mib["ListenDrops"] == 1


def test_listener_close_resets_accept_queue():
    c = passive_open()
    # a second connection waiting in the queue
    p2 = Peer(c.host, port=3333)
    p2.send(SYN, 50)
    s = p2.recv_one()
    p2.send(ACK, 51, s.seq + 1)
    c.listener.close()
    r = p2.recv_one()
    assert r.flags & RST and r.seq == s.seq + 1
    # the already accepted one is untouched
    assert c.sk.state == TCP_ESTABLISHED


# --- SYN-SENT (active open) ------------------------------------------------------------
def test_connect_sends_syn_with_options():
    host, _peer, sk, syn = _syn_sent()
    assert syn.flags == SYN and syn.ack == 0
    assert syn.opts.mss == 1460 and syn.opts.wscale == 7 and syn.opts.sack_ok
    assert syn.opts.ts_val is not None and syn.opts.ts_ecr == 0
    assert sk.state == TCP_SYN_SENT
    assert host.mib["ActiveOpens"] == 1
    lo, hi = host.settings.ip_local_port_range
    assert lo <= syn.sport <= hi


def test_connect_again_ealready_then_established_then_eisconn():
    host = FakeHost()
    peer = Peer(host)
    sk = _connect(host)
    with pytest.raises(OSError) as ei:
        sk.connect(REMOTE, RPORT)
    assert ei.value.errno == errno.EALREADY
    syn = peer.recv_one()
    peer.lport = syn.sport
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1)
    ack = peer.recv_one()
    assert (ack.flags, ack.seq, ack.ack) == (ACK, syn.seq + 1, PEER_ISS + 1)
    assert sk.state == TCP_ESTABLISHED
    sk.connect(REMOTE, RPORT)                 # reports success once, like Linux
    with pytest.raises(OSError) as ei:
        sk.connect(REMOTE, RPORT)
    assert ei.value.errno == errno.EISCONN


def test_rst_in_syn_sent_is_econnrefused():
    host, peer, sk, syn = _syn_sent()
    peer.send(RST | ACK, 0, syn.seq + 1)
    assert sk.state == TCP_CLOSE
    assert sk.sk_err == errno.ECONNREFUSED
    with pytest.raises(ConnectionRefusedError):
        sk.connect(REMOTE, RPORT)
    assert host.mib["AttemptFails"] == 1


def test_rst_with_unacceptable_ack_in_syn_sent_is_ignored():
    _host, peer, sk, syn = _syn_sent()
    peer.send(RST | ACK, 0, syn.seq + 100)
    assert sk.state == TCP_SYN_SENT
    assert peer.recv() == []


def test_bad_ack_in_syn_sent_gets_rst():
    _host, peer, sk, syn = _syn_sent()
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 10)
    s = peer.recv_one()
    assert (s.flags, s.seq) == (RST, syn.seq + 10)
    assert sk.state == TCP_SYN_SENT


def test_syn_retransmit_backoff_and_etimedout():
    host, peer, sk, syn = _syn_sent(Settings(tcp_syn_retries=3))
    times = []
    t = 0.0
    while sk.state == TCP_SYN_SENT and t < 100:
        t += 0.5
        host.advance(t)
        for s in peer.recv():
            assert s.flags == SYN and s.seq == syn.seq
            times.append(t)
    assert times == [1.0, 3.0, 7.0]
    assert t == 15.0                   # fails when the 4th timeout (8 s) expires
    assert sk.sk_err == errno.ETIMEDOUT
    assert host.mib["AttemptFails"] == 1


def test_simultaneous_open():
    """RFC 9293 figure 7: SYN crosses SYN -> SYN-RECEIVED, SYN-ACK, then ESTABLISHED."""
    _host, peer, sk, syn = _syn_sent()
    peer.send(SYN, PEER_ISS)
    sa = peer.recv_one()
    assert (sa.flags, sa.seq, sa.ack) == (SYN | ACK, syn.seq, PEER_ISS + 1)
    assert sk.state == TCP_SYN_RECV
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1)
    assert sk.state == TCP_ESTABLISHED


def test_established_from_synack_negotiates_options():
    c = active_open(synack_opts=TcpOptions(mss=1000, wscale=3, sack_ok=True, ts_val=5,
                                           ts_ecr=0))
    sk = c.sk
    assert sk.state == TCP_ESTABLISHED
    assert sk.snd_wscale == 3 and sk.sack_ok and sk.tstamp_ok
    assert sk.mss_cache == 1000 - 12      # peer MSS minus the timestamp option
    ack = c.handshake_ack[0]
    assert ack.opts.ts_ecr == 5


def test_peer_without_wscale_disables_scaling_both_ways():
    c = active_open(synack_opts=TcpOptions(mss=1460))
    assert c.sk.rcv_wscale == 0 and c.sk.snd_wscale == 0
    assert not c.sk.sack_ok and not c.sk.tstamp_ok


def test_connect_unbound_fails_enetunreach_passthrough():
    host = FakeHost()

    def no_route(dst):
        raise OSError(errno.ENETUNREACH, "unreachable")
    host.route_lookup = no_route
    sk = host.tcp.socket()
    with pytest.raises(OSError) as ei:
        sk.connect(REMOTE, RPORT)
    assert ei.value.errno == errno.ENETUNREACH
    assert sk.state == TCP_CLOSE


def test_icmp_unreachable_in_syn_sent_fails_connect():
    host, _, sk, syn = _syn_sent()
    from types import SimpleNamespace
    quoted = syn.sport.to_bytes(2, "big") + RPORT.to_bytes(2, "big") + syn.seq.to_bytes(4, "big")
    host.tcp.err(3, 1, errno.EHOSTUNREACH, 0,
                 SimpleNamespace(src=host.addr, dst=REMOTE), quoted)
    assert sk.state == TCP_CLOSE and sk.sk_err == errno.EHOSTUNREACH


def test_bind_conflict_and_listen():
    host = FakeHost()
    a = host.tcp.socket()
    a.bind(0, 8080)
    a.listen(4)
    b = host.tcp.socket()
    with pytest.raises(OSError) as ei:
        b.bind(0, 8080)
    assert ei.value.errno == errno.EADDRINUSE
    c = host.tcp.socket()
    with pytest.raises(OSError) as ei:
        c.bind(0x0B000001, 9000)          # not our address
    assert ei.value.errno == errno.EADDRNOTAVAIL


def test_two_reuseaddr_socks_share_a_port_but_only_one_listens():
    import socket as so
    host = FakeHost()
    a, b = host.tcp.socket(), host.tcp.socket()
    for s in (a, b):
        s.setsockopt(so.SOL_SOCKET, so.SO_REUSEADDR, 1)
        s.bind(0, 7000)
    a.listen(4)
    with pytest.raises(OSError) as ei:
        b.listen(4)
    assert ei.value.errno == errno.EADDRINUSE


def test_simultaneous_open_counts_received_bytes_from_the_peers_isn():
    """After a simultaneous open the peer's ISN is the one its crossing SYN
    carried (RFC 9293 3.10.7.3: IRS = SEG.SEQ), so TCP_INFO's bytes_received
    (Linux tcpi_bytes_received: data bytes, the SYN not counted) counts only
    the data that followed, as after any other open."""
    conn = states.syn_received()
    conn.send(flags=ACK, ack=conn.syn.seq + 1)           # ACKs our SYN: ESTABLISHED
    assert conn.sk.state == TCP_ESTABLISHED
    conn.send(b"d" * 300)
    assert tcp_get_info(conn.sk)["tcpi_bytes_received"] == 300
