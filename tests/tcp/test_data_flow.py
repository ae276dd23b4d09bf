"""Data flow rules: Nagle (RFC 896 / Minshall, TCP_NODELAY), delayed ACK
(RFC 1122 4.2.3.2 + Linux quick-ACK), MSS, windows and window scaling
(RFC 7323), PAWS, receiver SWS avoidance, out-of-order queue bound."""

from __future__ import annotations

import socket

from tcpio.core.settings import Settings

from .helpers import ACK, FakeHost, Peer, TcpOptions, active_open, passive_open, wire


# --- Nagle ----------------------------------------------------------------------------
def test_nagle_holds_second_small_segment_until_ack():
    c = passive_open()
    c.sk.sendmsg(b"a")
    first = c.recv()
    assert [s.payload for s in first] == [b"a"]
    c.sk.sendmsg(b"b")
    c.sk.sendmsg(b"c")
    assert c.recv() == []                      # a small segment is unacked
    c.ack_all(first)
    c.send()
    assert [s.payload for s in c.recv()] == [b"bc"]   # coalesced


def test_nodelay_sends_small_segments_at_once():
    c = passive_open()
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"a")
    c.sk.sendmsg(b"b")
    assert [s.payload for s in c.recv()] == [b"a", b"b"]


def test_nagle_does_not_hold_full_segments():
    c = passive_open()
    c.sk.sendmsg(b"a")
    c.recv()
    c.sk.sendmsg(b"x" * 536 * 2 + b"tail")
    out = c.recv()
    assert [len(s.payload) for s in out] == [536, 536]   # the tail waits


# --- delayed ACK --------------------------------------------------------------------------
def _exhaust_quickack(c):
    n = 0
    while c.sk.quick or n == 0:
        c.send(b"q")
        c.recv()
        n += 1
        assert n < 100
    return n


def test_quickack_at_start_then_delayed_ack_40ms():
    c = passive_open()
    c.send(b"x")
    assert len(c.recv()) == 1                  # quick-ACK mode at the start
    n = _exhaust_quickack(c)
    assert n <= 16                             # TCP_MAX_QUICKACKS
    c.send(b"y")
    assert c.recv() == []
    c.host.advance(c.host.now + 0.039)
    assert c.recv() == []
    c.host.advance(c.host.now + 0.0011)
    acks = c.recv()
    assert [a.key() for a in acks] == [(ACK, c.rcv, c.snd, b"")]
    assert c.host.mib["DelayedACKs"] == 1


def test_ack_every_second_full_segment():
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    _exhaust_quickack(c)
    c.send(b"1" * 1000)
    assert c.recv() == []
    c.send(b"2" * 1000)
    acks = c.recv()
    assert len(acks) == 1 and acks[0].ack == c.snd


def test_held_back_second_segment_ack_goes_out_when_the_app_reads():
    """Linux's tcp_cleanup_rbuf: when two full segments arrived but the unread
    data kept the window from advancing, __tcp_ack_snd_check holds the ACK
    back ("tcp_recvmsg() will send ACK otherwise"); the app's read sends it at
    once, not the 40 ms delayed-ACK timer."""
    c = passive_open(syn_opts=TcpOptions(mss=1000),
                     setup=lambda ls: ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4000))
    _exhaust_quickack(c)
    c.sk.recvmsg(1 << 20)
    c.recv()
    c.send(b"1" * 1000)
    c.send(b"2" * 1000)
    assert c.recv() == []                      # held back: the window could not advance
    assert c.sk.ack_pending
    c.sk.recvmsg(1 << 20)                      # the app reads: ACK now
    acks = c.recv()
    assert [a.ack for a in acks] == [c.snd]
    assert c.host.mib["DelayedACKs"] == 0


def test_out_of_order_segment_is_acked_immediately():
    c = passive_open()
    _exhaust_quickack(c)
    c.send(b"z" * 10, seq=c.snd + 100)
    acks = c.recv()
    assert [a.ack for a in acks] == [c.snd]    # duplicate ACK at once


def test_filling_a_hole_is_acked_immediately():
    c = passive_open()
    _exhaust_quickack(c)
    c.send(b"z" * 10, seq=c.snd + 10)
    c.recv()
    c.send(b"a" * 10)                          # fills the hole
    acks = c.recv()
    assert acks and acks[-1].ack == c.snd + 10


def test_data_piggybacks_pending_ack():
    c = passive_open()
    _exhaust_quickack(c)
    c.send(b"y")
    c.sk.sendmsg(b"reply")
    out = c.recv()
    assert len(out) == 1 and out[0].ack == c.snd and out[0].payload == b"reply"
    c.host.advance(c.host.now + 0.1)
    assert c.recv() == []                       # no separate delayed ACK


# --- MSS and windows ----------------------------------------------------------------------------
def test_segments_respect_peer_mss_option():
    c = passive_open(syn_opts=TcpOptions(mss=700))
    c.sk.sendmsg(b"m" * 2000)
    assert [len(s.payload) for s in c.recv()] == [700, 700, 600]


def _syn(host, setup=None):
    """The SYN a fresh socket on ``host`` sends to the peer (``setup`` runs first)."""
    peer = Peer(host)
    sk = host.tcp.socket()
    if setup:
        setup(sk)
    try:
        sk.connect(peer.addr, peer.port)
    except BlockingIOError:
        pass
    return peer.recv_one()


def test_route_mtu_limits_mss():
    assert _syn(FakeHost(mtu=576)).opts.mss == 536


def test_sender_respects_peer_window():
    c = passive_open(window=1000)
    c.sk.sendmsg(b"w" * 3000)
    out = c.recv()
    assert sum(len(s.payload) for s in out) <= 1000


def test_window_scaling_applies_after_handshake():
    c = active_open(synack_opts=TcpOptions(mss=1460, wscale=2))
    c.send(window=100)                          # 100 << 2 = 400 bytes
    assert c.sk.snd_wnd == 400
    c.sk.sendmsg(b"s" * 1000)
    assert sum(len(s.payload) for s in c.recv()) <= 400
    # our own window field is scaled by our shift (7 for 6 MiB buffers)
    c.send(b"d" * 10)
    a = c.recv()[-1]
    assert a.window == c.sk.rcv_wnd >> 7


def test_syn_window_is_never_scaled():
    c = active_open(synack_opts=TcpOptions(mss=1460, wscale=2), window=1000)
    assert c.sk.snd_wnd == 1000


def test_receiver_sws_avoidance_and_window_update_on_read():
    c = passive_open(setup=lambda ls: ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096))
    rcvbuf = c.sk.rcvbuf
    last = None
    for _ in range(100):
        c.send(b"r" * 536)
        out = c.recv()
        if out:
            last = out[-1]
        if last is not None and last.window == 0:
            break
    assert last is not None and last.window == 0
    c.sk.recvmsg(100)                           # too little to reopen (SWS)
    assert c.recv() == []
    c.sk.recvmsg(rcvbuf)                       # the app drained it
    upd = c.recv()
    assert upd and upd[-1].window >= 536


def test_ofo_queue_memory_bound():
    c = passive_open(settings=Settings(tcp_ofo_max_bytes=1000))
    for i in range(1, 5):
        c.send(b"o" * 400, seq=c.snd + 1000 * i)
    assert c.host.mib["TCPOFODrop"] >= 1
    assert c.sk.ofo_bytes <= 1000


# --- timestamps / PAWS ------------------------------------------------------------------------------
def test_timestamps_echo_and_paws_rejects_old_segment():
    c = passive_open(syn_opts=TcpOptions(mss=1000, ts_val=1000, ts_ecr=0))
    c.send(b"a", opts=TcpOptions(ts_val=2000, ts_ecr=0))
    a = c.recv()[-1]
    assert a.opts.ts_ecr == 2000                # RFC 7323: echo TS.Recent
    c.send(b"b", opts=TcpOptions(ts_val=1500, ts_ecr=0))   # older timestamp
    assert c.host.mib["PAWSEstabRejected"] == 1
    assert c.sk.recvmsg(10) == b"a"
    d = c.recv()[-1]
    assert d.ack == c.snd - 1                   # dropped, but ACKed


def test_per_connection_timestamp_offset():
    a = active_open(synack_opts=TcpOptions(mss=1460, ts_val=1, ts_ecr=0))
    b = active_open(synack_opts=TcpOptions(mss=1460, ts_val=1, ts_ecr=0),
                    settings=Settings())
    assert a.syn.opts.ts_val != 0
    assert isinstance(b.syn.opts.ts_val, int)
    # the offset is keyed by the address pair: not simply the clock
    assert a.syn.opts.ts_val != int(a.host.now * 1000)


def test_rtt_from_timestamp_echo():
    c = passive_open(syn_opts=TcpOptions(mss=1000, ts_val=1, ts_ecr=0))
    c.sk.sendmsg(b"t" * 10)
    seg = c.recv()[0]
    c.host.advance(0.25)
    c.ack_all([seg])
    c.send(opts=TcpOptions(ts_val=5, ts_ecr=seg.opts.ts_val))
    assert abs(c.sk.srtt - 0.25) < 0.002


# --- congestion window ---------------------------------------------------------------------
def test_initial_window_is_ten_segments():
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    c.sk.sendmsg(b"i" * 50_000)
    assert len(c.recv()) == 10                  # RFC 6928


def test_slow_start_grows_cwnd_per_ack():
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    c.sk.sendmsg(b"i" * 100_000)
    out = c.recv()
    c.ack_all(out[:1])
    c.send()
    assert len(c.recv()) == 2                   # one acked -> two more (cwnd 11)


def test_cwnd_restart_after_idle():
    c = passive_open(syn_opts=TcpOptions(mss=1000))
    c.sk.snd_cwnd = 40
    c.sk.sendmsg(b"a")
    c.ack_all(c.recv())
    c.send()
    c.host.advance(c.host.now + 30.0)           # idle for many RTOs
    c.sk.sendmsg(b"b" * 50_000)
    assert len(c.recv()) == 10                  # back to the initial window


def test_tcp_congestion_option():
    c = passive_open()
    sk = c.sk
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION) == b"cubic"
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION) == b"reno"
    try:
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"nonesuch")
    except OSError as e:
        assert e.errno == 2                     # ENOENT, like Linux
    else:
        raise AssertionError("unknown congestion control accepted")


def test_socket_options_roundtrip():
    host = FakeHost()
    sk = host.tcp.socket()
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    assert sk.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 10000)
    assert sk.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 20000   # doubled, like Linux
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 10000)
    assert sk.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 20000
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1000
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
    try:
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 0)
    except OSError as e:
        assert e.errno == 22
    else:
        raise AssertionError("TCP_KEEPCNT 0 accepted")


def test_tcp_maxseg_limits_advertised_and_sent_mss():
    syn = _syn(FakeHost(),
               lambda sk: sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 700))
    assert syn.opts.mss == 700


# --- urgent data (MSG_OOB, BSD pointer semantics, SO_OOBINLINE off) -----------------------------
def test_send_oob_sets_urg_pointer_past_the_byte():
    c = passive_open()
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sk.sendmsg(b"abc!", socket.MSG_OOB)
    s = c.recv()[0]
    assert s.flags & 0x20 and s.payload == b"abc!"
    assert s.urg_ptr == 4                       # points after the urgent '!'
    c.ack_all([s])
    c.send()
    c.sk.sendmsg(b"plain")
    assert not c.recv()[0].flags & 0x20           # urgent mode ended with the ACK


def test_receive_oob_byte_is_out_of_band():
    c2 = passive_open()
    seg = wire.build_tcp(c2.peer.addr, c2.host.addr, c2.peer.port, c2.peer.lport, c2.snd,
                         c2.rcv, ACK | 0x20, 65535, None, b"hello!", 6)
    c2.host.deliver(c2.peer.addr, c2.host.addr, seg)
    assert c2.sk.recvmsg(100) == b"hello"
    assert c2.sk.recvmsg(1, socket.MSG_OOB) == b"!"
    try:
        c2.sk.recvmsg(1, socket.MSG_OOB)
    except OSError as e:
        assert e.errno == 22                     # EINVAL: no urgent data now
    else:
        raise AssertionError("second MSG_OOB read must fail")


def test_urgent_pointer_ahead_of_data_waits_for_the_byte():
    c = passive_open()
    seg = wire.build_tcp(c.peer.addr, c.host.addr, c.peer.port, c.peer.lport, c.snd, c.rcv,
                         ACK | 0x20, 65535, None, b"ab", 5)   # urgent byte is seq+4
    c.host.deliver(c.peer.addr, c.host.addr, seg)
    try:
        c.sk.recvmsg(1, socket.MSG_OOB)
    except OSError as e:
        assert e.errno == 11                     # EAGAIN: announced, not arrived
    c.peer.send(ACK, c.snd + 2, c.rcv, 65535, b"cdXe")
    assert c.sk.recvmsg(1, socket.MSG_OOB) == b"X"
    assert c.sk.recvmsg(100) == b"abcde"
