"""A listener's decisions on a SYN and on a bare ACK (Linux tcp_conn_request,
tcp_syn_flood_action, cookie_v4_check, tcp_v4_syn_recv_sock; RFC 9293
3.10.7.2, RFC 4987 3.6 on SYN cookies, RFC 7323, RFC 6528).

The MIB counters are the kernel's (nstat names without the TcpExt prefix);
the cases marked "Linux 6.18" were checked against it with hand-made segments
on a TUN device.
"""

from __future__ import annotations

import errno
import socket

import pytest
from scapy.layers.inet import IP

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings
from tcpio.core.tcp.secure_seq import secure_tcp_seq, secure_tcp_ts_off
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .helpers import (
    ACK,
    FIN,
    LOCAL,
    LPORT,
    PEER_ISS,
    REMOTE,
    RPORT,
    RST,
    SYN,
    FakeHost,
    Peer,
    TcpOptions,
    parse,
    wire,
)


def _listen(settings: Settings | None = None, backlog: int = 8, setup=None):
    host = FakeHost(settings=settings)
    ls = host.tcp.socket()
    if setup:
        setup(ls)
    ls.bind(0, LPORT)
    ls.listen(backlog)
    return host, ls


def _syn(host: FakeHost, port: int = RPORT, isn: int = PEER_ISS, opts=None, window=65535):
    """A SYN from ``port``; the peer and what came back."""
    p = Peer(host, port=port)
    p.send(SYN, isn, window=window, opts=opts)
    return p, p.recv()


def _handshake(host: FakeHost, port: int = RPORT, isn: int = PEER_ISS, opts=None):
    p, [synack] = _syn(host, port, isn, opts)
    p.send(ACK, isn + 1, synack.seq + 1)
    return p, synack


# --- SYN queue, cookies and the accept queue (tcp_conn_request) ------------------------
def test_syncookies_2_answers_every_syn_with_a_cookie_and_counts_it():
    """tcp_syncookies = 2: cookies even with an empty SYN queue; nothing is
    queued, and tcp_syn_flood_action counts TCPReqQFullDoCookies (Linux 6.18)."""
    host, ls = _listen(Settings(tcp_syncookies=2))
    _p, out = _syn(host)
    assert [s.flags for s in out] == [SYN | ACK]
    assert len(ls.syn_queue) == 0
    mib = host.mib
    assert (mib["SyncookiesSent"], mib["TCPReqQFullDoCookies"], mib["ListenDrops"]) == (1, 1, 0)


def test_full_syn_queue_with_full_accept_queue_counts_the_cookie_then_the_overflow():
    """tcp_conn_request decides on cookies first, then finds the accept queue
    full: both counted, the SYN dropped without an answer.  With backlog 0 one
    request sock makes the SYN queue full (inet_csk_reqsk_queue_is_full:
    qlen > sk_max_ack_backlog, Linux 6.13+)."""
    host, ls = _listen(backlog=0)
    _syn(host, port=999)                        # a request sock: the SYN queue is full
    _handshake(host, port=1000)                 # a cookie child fills the accept queue
    assert len(ls.accept_queue) == 1
    _p, out = _syn(host, port=1001)
    assert out == []
    mib = host.mib
    assert (mib["SyncookiesSent"], mib["TCPReqQFullDoCookies"]) == (1, 2)
    assert (mib["ListenOverflows"], mib["ListenDrops"]) == (1, 1)


def test_full_syn_queue_without_cookies_is_a_request_queue_drop_not_an_overflow():
    """Backlog 0 still takes one request sock (Linux 6.13's
    inet_csk_reqsk_queue_is_full is qlen > sk_max_ack_backlog, commit
    3479c7549fb1); the next SYN finds the SYN queue full."""
    host, ls = _listen(Settings(tcp_syncookies=0), backlog=0)
    Peer(host, port=999).send(SYN, 1)
    assert len(ls.syn_queue) == 1
    Peer(host, port=1000).send(SYN, 1)
    assert len(ls.syn_queue) == 1
    mib = host.mib
    assert (mib["TCPReqQFullDrop"], mib["ListenDrops"], mib["ListenOverflows"]) == (1, 1, 0)
    assert mib["SyncookiesSent"] == 0


def test_syn_is_dropped_while_the_accept_queue_is_full():
    """sk_acceptq_is_full: no request, no SYN-ACK, counted twice."""
    host, ls = _listen(backlog=0)
    _handshake(host, port=1000)
    _p, out = _syn(host, port=1001)
    assert out == [] and len(ls.syn_queue) == 0
    assert (host.mib["ListenOverflows"], host.mib["ListenDrops"]) == (1, 1)


def test_syn_queue_is_full_past_the_listen_backlog():
    """inet_csk_reqsk_queue_is_full: more request socks than listen()'s
    backlog (qlen > sk_max_ack_backlog; Linux 6.13+, commit 3479c7549fb1),
    whatever tcp_max_syn_backlog is: backlog 2 takes three, then cookies."""
    host, ls = _listen(Settings(tcp_max_syn_backlog=1), backlog=2)
    _syn(host, port=1000)
    _syn(host, port=1001)
    _syn(host, port=1002)
    assert len(ls.syn_queue) == 3 and host.mib["SyncookiesSent"] == 0
    _syn(host, port=1003)
    assert len(ls.syn_queue) == 3 and host.mib["SyncookiesSent"] == 1


@pytest.mark.parametrize("max_syn_backlog", [8, 1024])
def test_tcp_max_syn_backlog_is_no_limit_while_cookies_are_on(max_syn_backlog):
    """The old rule (cookies once qlen >= tcp_max_syn_backlog) would send a
    cookie to the ninth SYN here; Linux keeps making request socks until the
    listen() backlog (128) is passed."""
    host, ls = _listen(Settings(tcp_max_syn_backlog=max_syn_backlog), backlog=128)
    for port in range(1000, 1000 + 129):
        _syn(host, port=port)
    assert len(ls.syn_queue) == 129 and host.mib["SyncookiesSent"] == 0
    _p, out = _syn(host, port=2000)
    assert [s.flags for s in out] == [SYN | ACK]
    assert len(ls.syn_queue) == 129 and host.mib["SyncookiesSent"] == 1


def test_without_cookies_the_last_quarter_of_tcp_max_syn_backlog_is_not_taken():
    """tcp_conn_request with tcp_syncookies = 0: a SYN is dropped when
    max_syn_backlog - qlen < max_syn_backlog >> 2 and tcp_peer_is_proven
    says no (tcpio keeps no tcp_metrics: no peer is proven).  8 >> 2 = 2:
    seven request socks, the eighth SYN dropped; only ListenDrops counts it
    (the drop is pr_drop_req's, not tcp_syn_flood_action's)."""
    host, ls = _listen(Settings(tcp_max_syn_backlog=8, tcp_syncookies=0), backlog=128)
    for port in range(1000, 1007):
        _syn(host, port=port)
    assert len(ls.syn_queue) == 7
    _p, out = _syn(host, port=1007)
    assert out == [] and len(ls.syn_queue) == 7
    mib = host.mib
    assert (mib["ListenDrops"], mib["TCPReqQFullDrop"], mib["ListenOverflows"]) == (1, 0, 0)


# --- a bare ACK at the listener (cookie_v4_check) -------------------------------------
def test_good_cookie_with_the_accept_queue_full_is_dropped_silently():
    """cookie_v4_check -> tcp_get_cookie_sock fails on a full accept queue:
    the ACK is dropped (the client will retransmit), no reset (Linux 6.18:
    SyncookiesRecv 2, ListenOverflows 1, nothing sent)."""
    host, ls = _listen(Settings(tcp_syncookies=2), backlog=0)
    p1, [s1] = _syn(host, port=1000)
    p2, [s2] = _syn(host, port=1001)
    p1.send(ACK, PEER_ISS + 1, s1.seq + 1)
    p2.send(ACK, PEER_ISS + 1, s2.seq + 1)
    assert p2.recv() == []
    assert len(ls.accept_queue) == 1
    mib = host.mib
    assert (mib["SyncookiesRecv"], mib["ListenOverflows"], mib["ListenDrops"]) == (2, 1, 1)
    ls.accept()                                   # room again: the retransmission gets in
    p2.send(ACK, PEER_ISS + 1, s2.seq + 1)
    child = ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED


@pytest.mark.parametrize("t,child", [(119.9, True), (120.0, True), (121.0, False)])
def test_cookies_are_checked_for_120_s_after_the_last_one_was_sent(t, child):
    """tcp_synq_no_recent_overflow: an ACK is taken for a cookie only within
    TCP_SYNCOOKIE_VALID (120 s) of the last cookie SYN-ACK; later it is an
    ordinary ACK to a listener: <SEQ=SEG.ACK><CTL=RST>, not a failed cookie.
    (The cookie itself, counted in 64 s ticks, is still valid at 121 s.)"""
    host, ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host)
    host.advance(t)
    p.send(ACK, PEER_ISS + 1, synack.seq + 1)
    if child:
        assert ls.accept() is not None and p.recv() == []
    else:
        assert [s.key() for s in p.recv()] == [(RST, synack.seq + 1, 0, b"")]
        assert ls.accept() is None
    assert host.mib["SyncookiesFailed"] == 0


def test_bad_cookie_is_counted_and_reset_with_seq_from_the_ack():
    host, _ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host)
    # (+1 would only move the cookie's 2-bit MSS index, as in Linux)
    p.send(ACK, PEER_ISS + 1, synack.seq + 101)
    assert [s.key() for s in p.recv()] == [(RST, synack.seq + 101, 0, b"")]
    assert (host.mib["SyncookiesFailed"], host.mib["SyncookiesRecv"]) == (1, 0)


def test_without_syncookies_a_bare_ack_is_reset_unchecked():
    host, _ls = _listen(Settings(tcp_syncookies=0))
    p = Peer(host)
    p.send(ACK, PEER_ISS + 1, 777)
    assert [s.key() for s in p.recv()] == [(RST, 777, 0, b"")]
    assert host.mib["SyncookiesFailed"] == 0


def test_syn_ack_at_a_listener_is_reset_not_taken_for_a_cookie():
    """RFC 9293 3.10.7.2: any ACK in LISTEN -> <SEQ=SEG.ACK><CTL=RST>."""
    host, ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host)
    p.send(SYN | ACK, PEER_ISS, synack.seq + 1)
    assert [s.key() for s in p.recv()] == [(RST, synack.seq + 1, 0, b"")]
    assert host.mib["SyncookiesRecv"] == host.mib["SyncookiesFailed"] == 0
    assert ls.accept() is None


def test_rst_ack_at_a_listener_is_dropped_silently():
    host, ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host)
    p.send(RST | ACK, PEER_ISS + 1, synack.seq + 1)
    assert p.recv() == [] and ls.accept() is None
    assert host.mib["SyncookiesRecv"] == 0


def test_syn_fin_at_a_listener_is_dropped_silently():
    host, ls = _listen()
    p = Peer(host)
    p.send(SYN | FIN, PEER_ISS)
    assert p.recv() == [] and len(ls.syn_queue) == 0


def test_cookie_child_starts_at_both_isns():
    """The cookie ACK's SEG.SEQ - 1 is the client's ISN and SEG.ACK - 1 ours:
    the child continues both sequence spaces."""
    host, ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host)
    p.send(ACK, PEER_ISS + 1, synack.seq + 1, payload=b"hi")
    child = ls.accept()
    assert child.recvmsg(10) == b"hi"
    child.sendmsg(b"yo")
    out = [s for s in p.recv() if s.payload]
    assert [(s.seq, s.ack, s.payload) for s in out] == [(synack.seq + 1, PEER_ISS + 3, b"yo")]


@pytest.mark.parametrize("mss,table", [(1460, 1460), (1459, 1440), (1400, 1300), (1299, 536)])
def test_cookie_child_uses_the_largest_mss_table_entry_not_above_the_peers(mss, table):
    """A cookie carries 2 bits of MSS: Linux's msstab {536, 1300, 1440, 1460}."""
    host, ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host, opts=TcpOptions(mss=mss))
    p.send(ACK, PEER_ISS + 1, synack.seq + 1)
    child = ls.accept()
    child.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    child.sendmsg(b"x" * 3000)
    assert len(p.recv()[0].payload) == table


def test_cookie_without_timestamps_cannot_keep_window_scale_or_sack():
    """Only the timestamp can carry wscale and SACK-permitted through a
    cookie; without it the SYN-ACK offers neither and the child uses neither."""
    host, ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host, opts=TcpOptions(mss=1460, wscale=5, sack_ok=True))
    assert (synack.opts.wscale, synack.opts.sack_ok, synack.opts.ts_val) == (None, False, None)
    p.send(ACK, PEER_ISS + 1, synack.seq + 1, window=1000)
    child = ls.accept()
    assert (child.wscale_ok, child.snd_wscale, child.rcv_wscale, child.sack_ok) == \
        (False, 0, 0, False)
    assert child.snd_wnd == 1000


def test_cookie_with_timestamps_brings_back_the_peers_scale_and_sets_ours():
    host, ls = _listen(Settings(tcp_syncookies=2))
    p, [synack] = _syn(host, opts=TcpOptions(mss=1460, wscale=5, sack_ok=True, ts_val=42,
                                              ts_ecr=0))
    assert synack.opts.wscale == 7 and synack.opts.sack_ok
    p.send(ACK, PEER_ISS + 1, synack.seq + 1, window=100,
           opts=TcpOptions(ts_val=43, ts_ecr=synack.opts.ts_val))
    child = ls.accept()
    assert (child.snd_wscale, child.rcv_wscale, child.sack_ok, child.tstamp_ok) == \
        (5, 7, True, True)
    assert child.snd_wnd == 100 << 5
    assert child.ts_recent == 43


def test_cookie_ack_with_timestamps_off_in_settings_keeps_no_options():
    """tcp_timestamps = 0: the SYN-ACK carried no timestamp, so an echo in the
    ACK cannot be a cookie's option bits."""
    host, ls = _listen(Settings(tcp_syncookies=2, tcp_timestamps=0))
    p, [synack] = _syn(host, opts=TcpOptions(mss=1460, wscale=5, sack_ok=True, ts_val=42,
                                              ts_ecr=0))
    assert synack.opts.ts_val is None
    p.send(ACK, PEER_ISS + 1, synack.seq + 1, opts=TcpOptions(ts_val=43, ts_ecr=0x1F))
    child = ls.accept()
    assert (child.tstamp_ok, child.wscale_ok, child.sack_ok) == (False, False, False)


# --- the SYN's options (tcp_parse_options in tcp_conn_request) ------------------------
def test_window_scale_above_14_is_taken_as_14():
    """RFC 7323 2.3: a shift above 14 MUST be used as 14."""
    host, ls = _listen()
    p, [synack] = _syn(host, opts=TcpOptions(mss=1460, wscale=15))
    p.send(ACK, PEER_ISS + 1, synack.seq + 1, window=3)
    child = ls.accept()
    assert (child.snd_wscale, child.snd_wnd) == (14, 3 << 14)


def test_settings_turn_off_the_options_we_offer():
    host, ls = _listen(Settings(tcp_window_scaling=0, tcp_sack=0, tcp_timestamps=0))
    p, [synack] = _syn(host, opts=TcpOptions(mss=1460, wscale=5, sack_ok=True, ts_val=42,
                                              ts_ecr=0))
    assert (synack.opts.mss, synack.opts.wscale, synack.opts.sack_ok, synack.opts.ts_val) \
        == (1460, None, False, None)
    assert synack.window == 64240
    p.send(ACK, PEER_ISS + 1, synack.seq + 1, window=1000)
    child = ls.accept()
    assert (child.wscale_ok, child.sack_ok, child.tstamp_ok, child.snd_wnd) == \
        (False, False, False, 1000)


@pytest.mark.parametrize("opts", [None, TcpOptions(mss=0)], ids=["no-option", "mss-0"])
def test_peer_without_a_usable_mss_option_gets_536_byte_segments(opts):
    """RFC 9293 3.7.1 / RFC 1122 4.2.2.6: no MSS option means 536."""
    host, ls = _listen()
    p, _ = _handshake(host, opts=opts)
    child = ls.accept()
    child.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    child.sendmsg(b"x" * 2000)
    assert len(p.recv()[0].payload) == 536


def test_synack_isn_and_timestamp_come_from_the_secret_and_the_clock():
    """RFC 6528: ISN = F(4-tuple, secret) + 4 us clock; RFC 7323 5.4 / Linux:
    TSval = ms clock + a per address pair offset (secure_tcp_ts_off)."""
    host, _ls = _listen()
    host.advance(2.5)
    _p, [synack] = _syn(host, opts=TcpOptions(mss=1460, ts_val=42, ts_ecr=0))
    assert synack.seq == secure_tcp_seq(host.secret, LOCAL, LPORT, REMOTE, RPORT, 2.5)
    assert synack.opts.ts_val == (2500 + secure_tcp_ts_off(host.secret, LOCAL, REMOTE)) \
        & 0xFFFFFFFF
    assert synack.opts.ts_ecr == 42


# --- the third ACK (tcp_v4_syn_recv_sock) -------------------------------------------
def test_third_ack_queues_an_established_child_and_wakes_the_listener():
    host, ls = _listen()
    _handshake(host)
    assert len(ls.accept_queue) == 1 and ls.accept_queue[0].parent is ls
    child = ls.accept()
    assert child.state == TCP_ESTABLISHED and child.parent is None
    assert (host.mib["PassiveOpens"], host.mib["CurrEstab"]) == (1, 1)
    assert ls in host.woken
    assert len(ls.syn_queue) == 0


def test_child_keeps_the_listeners_port_after_the_listener_closes():
    """inet_inherit_port: the child owns the port too; a new bind to it fails
    while the child lives."""
    host, ls = _listen()
    _handshake(host)
    child = ls.accept()
    ls.close()
    other = host.tcp.socket()
    with pytest.raises(OSError) as ei:
        other.bind(0, LPORT)
    assert ei.value.errno == errno.EADDRINUSE
    assert child.state == TCP_ESTABLISHED


def test_child_of_a_keepalive_listener_probes_after_keepidle():
    """SO_KEEPALIVE is inherited and armed at once (tcp_create_openreq_child:
    inet_csk_reset_keepalive_timer): after TCP_KEEPIDLE of silence the child
    sends <SEQ=SND.UNA-1><ACK=RCV.NXT><CTL=ACK>."""
    def setup(ls):
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 100)
    host, ls = _listen(setup=setup)
    p, synack = _handshake(host)
    ls.accept()
    host.advance(99.9)
    assert p.recv() == []
    host.advance(100.1)
    assert [s.key() for s in p.recv()] == [(ACK, synack.seq, PEER_ISS + 1, b"")]


# --- no route back to the peer (a real Host) ----------------------------------------
class RoutedHost:
    """A Host at 10.0.0.2/24 on an IP link, with a default route via
    10.0.0.1 that tests remove; peers far away at 192.168.9.9."""

    FAR = "192.168.9.9"

    def __init__(self, settings: Settings | None = None) -> None:
        self.h = Host("h", seed=1, settings=settings or Settings())
        self.h.debug = True
        self.h.add_interface("tun0", link="ip")
        self.h.add_address(1, ip_aton("10.0.0.2"), 24)
        self.h.add_route(0, 0, ip_aton("10.0.0.1"))
        self.h.take_output()
        self.ls = self.h.tcp.socket()
        self.ls.bind(0, LPORT)
        self.ls.listen(8)

    def send(self, flags: int, seq: int, ack: int = 0, opts=None) -> list:
        seg = wire.build_tcp(ip_aton(self.FAR), ip_aton("10.0.0.2"), RPORT, LPORT,
                             seq, ack, flags, 8000, opts, b"")
        self.h.receive(1, bytes(IP(src=self.FAR, dst="10.0.0.2", proto=6) / seg), self.h.now)
        return [parse(f[20:]) for _, f in self.h.take_output()]

    def unroute(self) -> None:
        self.h.remove_route(0, 0)

    def reroute(self) -> None:
        self.h.add_route(0, 0, ip_aton("10.0.0.1"))


def test_syn_from_a_peer_we_cannot_route_to_leaves_no_state():
    """tcp_conn_request: when inet_csk_route_req finds no route the SYN is
    dropped (ListenDrops): no request, no SYN-ACK retransmitted into the void."""
    r = RoutedHost()
    r.unroute()
    assert r.send(SYN, PEER_ISS) == []
    assert len(r.ls.syn_queue) == 0 and r.h.mib["ListenDrops"] == 1
    r.h.poll(10.0)
    assert r.h.mib["TCPSynRetrans"] == 0


def test_third_ack_after_the_route_went_away_is_dropped_and_the_request_kept():
    """tcp_v4_syn_recv_sock: no route for the child -> no child, a listen
    drop; the request stays, and the ACK gets in once the route is back."""
    r = RoutedHost()
    [synack] = r.send(SYN, PEER_ISS)
    r.unroute()
    assert r.send(ACK, PEER_ISS + 1, synack.seq + 1) == []
    assert r.ls.accept() is None and len(r.ls.syn_queue) == 1
    assert (r.h.mib["ListenDrops"], r.h.mib["ListenOverflows"]) == (1, 0)
    r.reroute()
    r.send(ACK, PEER_ISS + 1, synack.seq + 1)
    assert r.ls.accept() is not None


def test_cookie_ack_from_a_peer_we_cannot_route_to_is_dropped_silently():
    r = RoutedHost(Settings(tcp_syncookies=2))
    [synack] = r.send(SYN, PEER_ISS)
    r.unroute()
    assert r.send(ACK, PEER_ISS + 1, synack.seq + 1) == []
    assert r.ls.accept() is None
    assert (r.h.mib["SyncookiesRecv"], r.h.mib["SyncookiesFailed"]) == (1, 0)
    r.reroute()
    r.send(ACK, PEER_ISS + 1, synack.seq + 1)
    assert r.ls.accept() is not None
