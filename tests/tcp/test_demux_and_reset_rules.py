"""tcp_v4_rcv's checks and demultiplexing, tcp_v4_send_reset, tcp_v4_connect,
and the end of a sock (tcp_done, tcp_set_state, tcp_time_wait, listen stop),
with the per-host numbers Linux derives from the route and buffers
(net/ipv4/tcp_ipv4.c, tcp.c, tcp_output.c's tcp_select_initial_window).

RFC 9293 3.10.7.1 (a segment for no connection), RFC 1122 4.2.3.10 (no
answer to broadcasts), RFC 7323 2.3 (window scale), RFC 6528 (ISN).
"""

from __future__ import annotations

import errno
import socket

import pytest

from tcpio._fast import load_pure
from tcpio.core.settings import Settings
from tcpio.core.tcp.secure_seq import secure_tcp_seq, secure_tcp_ts_off
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_SYN_SENT,
)

from .helpers import (
    ACK,
    FIN,
    LOCAL,
    LPORT,
    PEER_ISS,
    PSH,
    REMOTE,
    RPORT,
    RST,
    SYN,
    FakeHost,
    Peer,
    TcpOptions,
    active_open,
    parse,
    passive_open,
)

wire = load_pure("wire")
checksum = load_pure("checksum")


def _raw(host: FakeHost, seg: bytes, dst: int = LOCAL) -> list:
    """Deliver raw segment bytes from REMOTE; the segments sent back to it."""
    host.deliver(REMOTE, dst, seg)
    out = [parse(b) for (_s, d, b) in host.sent if d == REMOTE]
    host.sent = [x for x in host.sent if x[1] != REMOTE]
    return out


def _segment(flags: int = ACK, seq: int = 1, ack: int = 2, payload: bytes = b"",
             dst: int = LOCAL, dport: int = LPORT) -> bytes:
    return wire.build_tcp(REMOTE, dst, RPORT, dport, seq, ack, flags, 1000, None, payload)


# --- tcp_v4_rcv: what is dropped before any lookup -------------------------------------
def test_segment_shorter_than_a_tcp_header_is_an_input_error():
    host = FakeHost()
    seg = _segment(SYN)
    assert _raw(host, seg[:19]) == []
    assert (host.mib["InErrs"], host.mib["InSegs"], host.mib["InCsumErrors"]) == (1, 0, 0)


def test_a_bare_twenty_byte_header_is_a_segment():
    host = FakeHost()
    assert [s.flags for s in _raw(host, _segment(SYN))] == [RST | ACK]
    assert (host.mib["InErrs"], host.mib["InSegs"]) == (0, 1)


def test_bad_checksum_is_counted_and_never_answered():
    host = FakeHost()
    seg = bytearray(_segment(ACK, payload=b"data"))
    seg[-1] ^= 0x01
    assert _raw(host, bytes(seg)) == []
    assert (host.mib["InCsumErrors"], host.mib["InErrs"], host.mib["InSegs"]) == (1, 1, 0)


def _with_doff(seg: bytes, doff: int) -> bytes:
    """The segment with another data offset and its checksum fixed."""
    b = bytearray(seg)
    b[12] = (doff << 4) | (b[12] & 0x0F)
    b[16:18] = b"\0\0"
    csum = checksum.tcpudp_checksum(REMOTE, LOCAL, 6, bytes(b))
    b[16:18] = csum.to_bytes(2, "big")
    return bytes(b)


@pytest.mark.parametrize("doff", [4, 6, 15], ids=["below-5", "past-the-end", "far-past"])
def test_impossible_data_offset_is_an_input_error(doff):
    host = FakeHost()
    assert _raw(host, _with_doff(_segment(ACK), doff)) == []
    assert (host.mib["InErrs"], host.mib["InSegs"]) == (1, 0)


def test_segment_to_a_broadcast_address_is_dropped_silently():
    """RFC 1122 4.2.3.10: a SYN to a broadcast address MUST be silently
    discarded; tcp_v4_rcv drops whatever is not for this host alone."""
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    assert _raw(host, _segment(SYN, dst=0xFFFFFFFF), dst=0xFFFFFFFF) == []
    assert len(ls.syn_queue) == 0
    assert (host.mib["TcpInBroadcastDrops"], host.mib["InSegs"]) == (1, 0)


def test_segment_in_a_link_layer_broadcast_frame_is_dropped_silently():
    host = FakeHost()
    host.rx_link_bcast = True
    assert _raw(host, _segment(SYN)) == []
    assert host.mib["TcpInBroadcastDrops"] == 1 and host.mib["OutRsts"] == 0


def test_every_segment_that_parses_counts_in_segs():
    c = passive_open()
    before = c.host.mib["InSegs"]
    c.send(b"a")
    c.send(b"b")
    assert c.host.mib["InSegs"] == before + 2


# --- no connection: tcp_v4_send_reset (RFC 9293 3.10.7.1) ----------------------------
def test_reset_for_a_segment_with_ack_takes_its_seq_from_seg_ack():
    """<SEQ=SEG.ACK><CTL=RST>, window 0, from the address and port the
    segment was sent to, back to its source."""
    host = FakeHost()
    host.deliver(REMOTE, LOCAL, _segment(ACK | PSH, seq=123, ack=4567, payload=b"abc"))
    [(src, dst, raw)] = host.sent
    th = wire.parse_tcp(raw)
    assert (src, dst, th.sport, th.dport) == (LOCAL, REMOTE, LPORT, RPORT)
    assert (th.flags, th.seq, th.ack, th.window) == (RST, 4567, 0, 0)
    assert host.mib["OutRsts"] == 1


@pytest.mark.parametrize("flags,payload,ack", [(SYN, b"", 124), (FIN, b"", 124),
                                               (PSH, b"abc", 126), (SYN | FIN, b"ab", 127)])
def test_reset_for_a_segment_without_ack_acknowledges_all_of_it(flags, payload, ack):
    """<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; SYN and FIN count one each."""
    host = FakeHost()
    [rst] = _raw(host, _segment(flags, seq=123, ack=999, payload=payload))
    assert (rst.flags, rst.seq, rst.ack, rst.window) == (RST | ACK, 0, ack, 0)


@pytest.mark.parametrize("flags", [RST, RST | ACK])
def test_a_reset_is_never_answered(flags):
    host = FakeHost()
    assert _raw(host, _segment(flags, seq=5, ack=6)) == []
    assert host.mib["OutRsts"] == 0


def test_reset_wraps_the_acknowledgment_around_the_sequence_space():
    host = FakeHost()
    [rst] = _raw(host, _segment(SYN, seq=0xFFFFFFFF, ack=0))
    assert rst.ack == 0


# --- tcp_v4_connect -----------------------------------------------------------------
def _connect(host: FakeHost, sk=None):
    sk = sk or host.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    return sk


def test_connect_syn_carries_the_isn_and_options_linux_would():
    """RFC 6528 ISN from the secret and a 4 us clock; MSS from the route,
    our scale for tcp_rmem[2] (6 MiB -> 7), SACK, a timestamp from the ms
    clock plus the address pair's offset; the window is 44 x 1460."""
    host = FakeHost()
    host.advance(3.0)
    sk = _connect(host)
    [syn] = Peer(host).recv()
    assert syn.seq == secure_tcp_seq(host.secret, LOCAL, syn.sport, REMOTE, RPORT, 3.0)
    assert (syn.flags, syn.ack, syn.window) == (SYN, 0, 64240)
    o = syn.opts
    assert (o.mss, o.wscale, o.sack_ok) == (1460, 7, True)
    assert (o.ts_val, o.ts_ecr) == ((3000 + secure_tcp_ts_off(host.secret, LOCAL, REMOTE))
                                    & 0xFFFFFFFF, 0)
    assert sk.state == TCP_SYN_SENT and host.mib["ActiveOpens"] == 1
    assert sk.getsockname() == (LOCAL, syn.sport)


def test_connect_offers_only_what_the_settings_allow():
    host = FakeHost(settings=Settings(tcp_window_scaling=0, tcp_sack=0, tcp_timestamps=0))
    _connect(host)
    [syn] = Peer(host).recv()
    o = syn.opts
    assert (o.mss, o.wscale, o.sack_ok, o.ts_val) == (1460, None, False, None)


def test_connect_with_tcp_maxseg_advertises_it_and_never_sends_more():
    """tcp_connect_init: TCP_MAXSEG bounds the advertised MSS and mss_clamp."""
    host = FakeHost(settings=Settings(tcp_timestamps=0))
    sk = host.tcp.socket()
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _connect(host, sk)
    peer = Peer(host)
    [syn] = peer.recv()
    assert syn.opts.mss == 1000 and syn.window == 65000
    peer.lport = syn.sport
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, opts=TcpOptions(mss=1460))
    peer.recv()
    sk.sendmsg(b"x" * 2500)
    assert [len(s.payload) for s in peer.recv()] == [1000, 1000, 500]


@pytest.mark.parametrize("mtu,mss", [(1500, 1460), (576, 536), (300, 260), (200, 256)])
def test_advertised_mss_is_the_route_mtu_less_40_but_at_least_256(mtu, mss):
    """dst_metric_advmss: MTU - 40, floored at ip_rt_min_advmss (256): Linux
    6.18 on a 200-byte MTU link advertises 256."""
    host = FakeHost(mtu=mtu)
    _connect(host)
    [syn] = Peer(host).recv()
    assert syn.opts.mss == mss
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(1)
    p = Peer(host, port=2000)
    p.send(SYN, 1, opts=TcpOptions(mss=1460))
    assert p.recv_one().opts.mss == mss


@pytest.mark.parametrize("rmem_max,wscale", [(65535, 0), (65536, 1), (131071, 1),
                                             (131072, 2), (6291456, 7), (1 << 40, 14)])
def test_our_window_scale_is_the_smallest_shift_that_fits_the_largest_buffer(rmem_max,
                                                                              wscale):
    """tcp_select_initial_window: ilog2(max buffer) - 15, clamped to 0..14
    (RFC 7323 2.3 caps the shift at 14)."""
    host = FakeHost(settings=Settings(tcp_rmem=(4096, 16384, rmem_max)))
    _connect(host)
    [syn] = Peer(host).recv()
    assert syn.opts.wscale == wscale


def test_window_scale_follows_a_larger_so_rcvbuf():
    host = FakeHost(settings=Settings(tcp_rmem=(4096, 16384, 65535)))
    sk = host.tcp.socket()
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 40000)   # doubled: 80000
    _connect(host, sk)
    [syn] = Peer(host).recv()
    assert syn.opts.wscale == 1


def test_small_receive_buffer_is_offered_whole():
    """A buffer below one MSS is offered as it is (tcp_select_initial_window
    rounds down to whole segments only when there is room for one)."""
    host = FakeHost(settings=Settings(tcp_rmem=(1000, 1000, 1000), tcp_window_scaling=0))
    sk = host.tcp.socket()
    sk.rcvbuf = 1000
    _connect(host, sk)
    [syn] = Peer(host).recv()
    assert syn.window == 1000


def test_failed_connect_restores_the_sock_and_keeps_no_tuple():
    """All local ports towards the destination taken: EADDRNOTAVAIL, and the
    sock is as before (no local address, no peer)."""
    host = FakeHost(settings=Settings(ip_local_port_range=(40000, 40000)))
    _connect(host)
    sk = host.tcp.socket()
    with pytest.raises(OSError) as ei:
        sk.connect(REMOTE, RPORT)
    assert ei.value.errno == errno.EADDRNOTAVAIL
    assert sk.getsockname() == (0, 0) and (sk.raddr, sk.rport) == (0, 0)
    assert sk.state == TCP_CLOSE and host.mib["ActiveOpens"] == 1


def test_connect_again_after_a_refusal_starts_clean():
    """A second connect after ECONNREFUSED works like the first: no stale
    error, no shutdown bits left by tcp_done."""
    host = FakeHost()
    peer = Peer(host)
    sk = _connect(host)
    [syn] = peer.recv()
    peer.lport = syn.sport
    peer.send(RST | ACK, 0, syn.seq + 1)
    assert sk.state == TCP_CLOSE and host.mib["AttemptFails"] == 1
    with pytest.raises(ConnectionRefusedError):
        sk.connect(REMOTE, RPORT)
    _connect(host, sk)
    [syn2] = peer.recv()
    peer.lport = syn2.sport
    peer.send(SYN | ACK, PEER_ISS, syn2.seq + 1)
    assert sk.state == TCP_ESTABLISHED and sk.sk_err == 0
    assert sk.sendmsg(b"ok") == 2


# --- the end of a sock ----------------------------------------------------------------
def test_refused_connect_gives_back_its_automatic_port():
    host = FakeHost()
    peer = Peer(host)
    sk = _connect(host)
    [syn] = peer.recv()
    peer.lport = syn.sport
    peer.send(RST | ACK, 0, syn.seq + 1)
    other = host.tcp.socket()
    other.bind(0, syn.sport)
    assert other.getsockname() == (0, syn.sport)
    assert sk.state == TCP_CLOSE


def test_refused_connect_keeps_a_port_the_user_bound():
    """tcp_set_state(CLOSE) keeps the port when SOCK_BINDPORT_LOCK is set."""
    host = FakeHost()
    peer = Peer(host)
    sk = host.tcp.socket()
    sk.bind(0, 5000)
    _connect(host, sk)
    [syn] = peer.recv()
    peer.lport = syn.sport
    peer.send(RST | ACK, 0, syn.seq + 1)
    other = host.tcp.socket()
    with pytest.raises(OSError) as ei:
        other.bind(0, 5000)
    assert ei.value.errno == errno.EADDRINUSE


def test_reset_of_an_orphan_frees_it_and_its_port():
    c = passive_open()
    c.sk.close()
    assert c.sk.state == TCP_FIN_WAIT1 and c.host.tcp.orphans == 1
    c.ack_all(c.recv())
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE and c.sk.dead
    assert c.host.tcp.orphans == 0
    assert c.host.tcp.hashinfo.lookup_established(LOCAL, LPORT, REMOTE, RPORT) is None


def test_curr_estab_counts_established_and_close_wait_only():
    """tcp_set_state: CurrEstab is the number of ESTABLISHED and CLOSE-WAIT
    connections."""
    c = passive_open()
    mib = c.host.mib
    assert mib["CurrEstab"] == 1
    c.send(flags=FIN | ACK)                       # -> CLOSE-WAIT
    assert mib["CurrEstab"] == 1
    c.sk.close()                                  # -> LAST-ACK
    assert mib["CurrEstab"] == 0
    c.ack_all(c.recv())
    c.send()                                      # -> CLOSED
    assert mib["CurrEstab"] == 0


def test_curr_estab_drops_when_we_close_first():
    c = passive_open()
    c.sk.close()                                  # -> FIN-WAIT-1
    assert c.host.mib["CurrEstab"] == 0


def test_time_wait_buckets_are_given_back_when_time_wait_ends():
    """tcp_max_tw_buckets bounds live time-wait socks; one that expires
    makes room for the next (no TCPTimeWaitOverflow)."""
    settings = Settings(tcp_max_tw_buckets=1, tcp_tw_timeout=5.0)
    host = FakeHost(settings=settings)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    for i, port in enumerate((3000, 3001)):
        p = Peer(host, port=port)
        p.send(SYN, 100)
        [sa] = p.recv()
        p.send(ACK, 101, sa.seq + 1)
        sk = ls.accept()
        sk.close()
        [fin] = p.recv()
        p.send(FIN | ACK, 101, fin.seq + 1)
        assert [s.flags for s in p.recv()] == [ACK]
        assert host.tcp.tw_count == 1
        host.advance(host.now + 6.0)
        assert host.tcp.tw_count == 0
    assert host.mib["TCPTimeWaitOverflow"] == 0


def test_listener_close_resets_queued_children_and_frees_the_port():
    """inet_csk_listen_stop: children nobody accepted get a RST at their
    SND.NXT; the listener is CLOSED and its port free again."""
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    p = Peer(host, port=3000)
    p.send(SYN, 100)
    [sa] = p.recv()
    p.send(ACK, 101, sa.seq + 1)
    child = ls.accept_queue[0]
    ls.close()
    assert [s.key() for s in p.recv()] == [(RST | ACK, sa.seq + 1, 101, b"")]
    assert ls.state == TCP_CLOSE and child.state == TCP_CLOSE
    assert host.tcp.orphans == 0 and host.mib["CurrEstab"] == 0
    again = host.tcp.socket()
    again.bind(0, LPORT)
    again.listen(1)


# --- ss -tan (TcpProto.connections) ---------------------------------------------------
def test_connections_lists_each_state_with_queues_and_timers():
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(5)
    p = Peer(host, port=3000)
    p.send(SYN, 100)
    [sa] = p.recv()
    p.send(ACK, 101, sa.seq + 1, payload=b"hello")
    p2 = Peer(host, port=3001)
    p2.send(SYN, 200)                            # stays in SYN-RECV
    child = ls.accept()
    child.sendmsg(b"xyz")
    host.advance(0.25)
    rows = {(r.state, r.remote): r for r in host.tcp.connections()}
    assert rows[("LISTEN", "0.0.0.0:*")][1:] == ("0.0.0.0:80", "0.0.0.0:*", 0, 5, "")
    est = rows[("ESTAB", "10.0.0.2:3000")]
    assert (est.local, est.recv_q, est.send_q) == ("10.0.0.1:80", 5, 3)
    assert est.timer.startswith("on(")
    req = rows[("SYN-RECV", "10.0.0.2:3001")]
    assert (req.recv_q, req.send_q, req.timer) == (0, 0, "on(0.750s)")


def test_connections_shows_time_wait_with_its_remaining_time():
    c = passive_open()
    c.sk.close()
    c.ack_all(c.recv())
    c.send()
    c.send(flags=FIN | ACK)
    c.host.advance(10.0)
    [tw] = [r for r in c.host.tcp.connections() if r.state == "TIME-WAIT"]
    assert (tw.local, tw.remote, tw.recv_q, tw.send_q, tw.timer) == (
        "10.0.0.1:80", "10.0.0.2:49500", 0, 0, "timewait(50.000s)")


class RoutelessHost(FakeHost):
    """A FakeHost whose route to the peer can be taken away."""

    routed = True

    def route_lookup(self, dst: int):
        if not self.routed:
            raise OSError(errno.ENETUNREACH, "no route")
        return super().route_lookup(dst)


def test_handshake_finishing_without_a_route_falls_back_to_536_bytes():
    """With no route (so no path MTU) the MSS is the RFC 1122 / RFC 879
    default: 576-byte datagrams, 536 bytes of data."""
    host = RoutelessHost()
    peer = Peer(host)
    sk = _connect(host)
    [syn] = peer.recv()
    peer.lport = syn.sport
    host.routed = False
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, opts=TcpOptions(mss=1460))
    assert sk.state == TCP_ESTABLISHED
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 536


@pytest.mark.parametrize("maxseg,size", [(0, 536), (1000, 1000)])
def test_synack_without_an_mss_option_means_536_or_our_maxseg(maxseg, size):
    """RFC 9293 3.7.1: with no MSS option the send MSS MUST be 536; Linux
    (tcp_v4_connect / tcp_connect_init) takes TCP_MAXSEG instead when set.
    Linux 6.18 sends 536- (or 1000-) byte segments here."""
    def setup(sk):
        if maxseg:
            sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, maxseg)
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = active_open(setup=setup)
    c.sk.sendmsg(b"d" * 3000)
    sizes = [len(s.payload) for s in c.recv() if s.payload]
    assert sizes[0] == size and all(n <= size for n in sizes)


@pytest.mark.parametrize("timestamps,mss", [(0, 536), (1, 524)])
def test_mss_while_connecting_is_536_less_the_timestamp(timestamps, mss):
    """getsockopt(TCP_MAXSEG) in SYN-SENT: tcp_sync_mss with the default
    clamp, less 12 bytes when timestamps are on (Linux 6.18: 536 / 524)."""
    host = FakeHost(settings=Settings(tcp_timestamps=timestamps))
    sk = _connect(host)
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == mss


def test_connections_shows_the_keepalive_and_persist_timers():
    def setup(ls):
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 100)
    c = passive_open(setup=setup)
    c.host.advance(40.0)
    [row] = [r for r in c.host.tcp.connections() if r.state == "ESTAB"]
    assert (row.send_q, row.timer) == (0, "keepalive(60.000s)")
    c.send(window=0)                          # the peer's window closes
    c.sk.sendmsg(b"z" * 10)
    [row] = [r for r in c.host.tcp.connections() if r.state == "ESTAB"]
    assert row.send_q == 10 and row.timer.startswith("persist(")


def test_connections_send_q_is_never_negative_after_our_fin_is_acked():
    """FIN-WAIT-2 of a sock the user holds: SND.UNA is past the FIN, the
    send queue shows 0."""
    c = passive_open()
    c.sk.shutdown(socket.SHUT_WR)
    c.ack_all(c.recv())
    c.send()
    [row] = [r for r in c.host.tcp.connections() if r.state == "FIN-WAIT-2"]
    assert (row.recv_q, row.send_q, row.timer) == (0, 0, "")


def test_close_with_unread_data_resets_and_frees_the_receive_queue():
    """RFC 2525 2.17: unread data at close means a RST; the sock's queued
    bytes go with it (sk_release), the user cannot read them afterwards."""
    c = passive_open()
    c.send(b"unread")
    assert c.sk.readable() == 6
    c.sk.close()
    assert c.recv()[-1].flags & RST
    assert c.sk.readable() == 0 and c.sk.recvmsg(100) == b""
    assert c.sk.dead and c.host.tcp.orphans == 0


def test_release_empties_both_queues_of_an_aborted_sock():
    """SO_LINGER 0 (RFC 9293 3.10.4 ABORT): the RST goes out, and the sock's
    unsent and unread bytes are dropped with it (sk_release): both queues
    of the released sock are empty, and nothing is sent afterwards."""
    c = passive_open()
    c.send(b"unread")
    c.send(window=0)                          # the peer's window closes: ours stays queued
    c.sk.sendmsg(b"z" * 10)
    assert len(c.sk.wq) == 10 and c.sk.readable() == 6
    c.sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1, 0))
    c.sk.close()
    assert c.recv()[-1].flags & RST
    assert c.sk.dead and len(c.sk.wq) == 0 and len(c.sk.rq) == 0
    assert c.recv() == []
