"""The user calls on a TCP sock and their errno rules (net/ipv4/af_inet.c,
tcp.c, core/sock.c), checked against the Linux kernel where a bare socket
can be asked without any traffic (option values, errno of calls on a fresh
or listening socket), and with exact segments where the call touches the wire.
"""

from __future__ import annotations

import array
import ctypes
import errno
import socket
import struct

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_LISTEN,
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
    URG,
    FakeHost,
    Peer,
    TcpOptions,
    active_open,
    passive_open,
    wire,
)
from .test_port_choice_rules import _ask_kernel

SOL, TCP = socket.SOL_SOCKET, socket.IPPROTO_TCP


def errno_of(fn, *args) -> int | None:
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return None


def fresh(settings: Settings | None = None):
    host = FakeHost(settings=settings)
    return host, host.tcp.socket()


def syn_sent():
    host = FakeHost()
    peer = Peer(host)
    sk = host.tcp.socket()
    with pytest.raises(BlockingIOError) as ei:
        sk.connect(REMOTE, RPORT)
    assert ei.value.errno == errno.EINPROGRESS
    syn = peer.recv_one()
    peer.lport = syn.sport
    return host, peer, sk, syn


# -- options: the kernel's answers for a fresh socket ------------------------------------

# (level, name, value to set): what setsockopt says and what getsockopt reads
# back afterwards, compared with a kernel socket given the same call.
OPTION_CASES = [
    (SOL, socket.SO_SNDBUF, 1), (SOL, socket.SO_SNDBUF, 2303), (SOL, socket.SO_SNDBUF, 2304),
    (SOL, socket.SO_SNDBUF, 2305), (SOL, socket.SO_SNDBUF, 10000),
    (SOL, socket.SO_RCVBUF, 1), (SOL, socket.SO_RCVBUF, 1151), (SOL, socket.SO_RCVBUF, 1152),
    (SOL, socket.SO_RCVBUF, 1153), (SOL, socket.SO_RCVBUF, 10000),
    (SOL, socket.SO_REUSEADDR, 1), (SOL, socket.SO_REUSEADDR, 0),
    (SOL, socket.SO_KEEPALIVE, 1), (SOL, socket.SO_KEEPALIVE, 5),
    (TCP, socket.TCP_NODELAY, 1), (TCP, socket.TCP_NODELAY, 7),
    (TCP, socket.TCP_MAXSEG, 0), (TCP, socket.TCP_MAXSEG, 87), (TCP, socket.TCP_MAXSEG, 88),
    (TCP, socket.TCP_MAXSEG, 1000), (TCP, socket.TCP_MAXSEG, 32767),
    (TCP, socket.TCP_MAXSEG, 32768), (TCP, socket.TCP_MAXSEG, -1),
    (TCP, socket.TCP_KEEPIDLE, 0), (TCP, socket.TCP_KEEPIDLE, 1), (TCP, socket.TCP_KEEPIDLE, 32767),
    (TCP, socket.TCP_KEEPIDLE, 32768), (TCP, socket.TCP_KEEPIDLE, 600),
    (TCP, socket.TCP_KEEPINTVL, 0), (TCP, socket.TCP_KEEPINTVL, 1),
    (TCP, socket.TCP_KEEPINTVL, 32767), (TCP, socket.TCP_KEEPINTVL, 32768),
    (TCP, socket.TCP_KEEPCNT, 0), (TCP, socket.TCP_KEEPCNT, 1), (TCP, socket.TCP_KEEPCNT, 127),
    (TCP, socket.TCP_KEEPCNT, 128),
    (TCP, socket.TCP_USER_TIMEOUT, -1), (TCP, socket.TCP_USER_TIMEOUT, 0),
    (TCP, socket.TCP_USER_TIMEOUT, 1500),
    (TCP, socket.TCP_CONGESTION, b"reno"), (TCP, socket.TCP_CONGESTION, b"no-such-cc"),
    (SOL, socket.SO_LINGER, struct.pack("ii", 1, 5)),
    (SOL, socket.SO_LINGER, struct.pack("ii", 7, 0)),
    (SOL, socket.SO_LINGER, struct.pack("ii", 0, 9)),
    (SOL, 9999, 1), (TCP, 9999, 1), (socket.IPPROTO_IP + 200, 1, 1),
]


def _read(get, level: int, name: int):
    if name == socket.SO_LINGER and level == SOL:
        return struct.unpack("ii", get(level, name, 8))
    if name == socket.TCP_CONGESTION and level == TCP:
        return get(level, name, 16).rstrip(b"\0")
    try:
        return get(level, name)
    except OSError as e:
        return errno.errorcode[e.errno]


def _apply(set_, get, level: int, name: int, value) -> tuple:
    before = _read(get, level, name)
    try:
        set_(level, name, value)
        res = "ok"
    except OSError as e:
        res = errno.errorcode[e.errno]
    after = _read(get, level, name)
    # The default congestion control is the host's choice: compare only
    # whether a failed call left it alone.
    return res, "unchanged" if after == before and res != "ok" else after


def _ours(level: int, name: int, value) -> tuple:
    _host, sk = fresh()
    return _apply(sk.setsockopt, sk.getsockopt, level, name, value)


def _kernel(level: int, name: int, value) -> tuple:
    with socket.socket() as s:
        return _apply(s.setsockopt, s.getsockopt, level, name, value)


@pytest.mark.parametrize("level,name,value", OPTION_CASES,
                         ids=[f"{lv}-{nm}-{v!r}" for lv, nm, v in OPTION_CASES])
def test_setsockopt_then_getsockopt_like_linux(level, name, value):
    """sock_setsockopt / do_tcp_setsockopt ranges (TCP_MAXSEG 88..32767 or 0,
    TCP_KEEPIDLE/INTVL 1..32767, TCP_KEEPCNT 1..127, SO_SNDBUF doubled with a
    4608 floor, SO_RCVBUF doubled with a 2304 floor, ENOPROTOOPT for unknown
    options and levels, ENOENT for an unknown congestion control)."""
    assert _ours(level, name, value) == _kernel(level, name, value)


FRESH_READS = [
    (SOL, socket.SO_REUSEADDR), (SOL, socket.SO_KEEPALIVE), (SOL, socket.SO_ERROR),
    (SOL, socket.SO_TYPE), (SOL, socket.SO_ACCEPTCONN), (SOL, socket.SO_LINGER),
    (TCP, socket.TCP_NODELAY), (TCP, socket.TCP_MAXSEG), (TCP, socket.TCP_USER_TIMEOUT),
    (SOL, 9999), (TCP, 9999), (socket.IPPROTO_IP + 200, 1), (socket.IPPROTO_IP, 9999),
    (socket.IPPROTO_UDP, 1),
]


@pytest.mark.parametrize("level,name", FRESH_READS, ids=[f"{lv}-{nm}" for lv, nm in FRESH_READS])
def test_fresh_socket_option_values_like_linux(level, name):
    """sk_alloc zeroes the sock; tcp_init_sock sets mss_cache = TCP_MSS_DEFAULT
    (536, what TCP_MAXSEG reads before a connection)."""
    _host, sk = fresh()
    with socket.socket() as s:
        assert _read(sk.getsockopt, level, name) == _read(s.getsockopt, level, name)


def _sysctl(name: str) -> list[int]:
    with open(f"/proc/sys/net/ipv4/{name}") as f:
        return [int(x) for x in f.read().split()]


def test_fresh_socket_takes_buffer_and_keepalive_defaults_from_the_sysctls():
    """sk_sndbuf = tcp_wmem[1], sk_rcvbuf = tcp_rmem[1] (tcp_init_sock);
    keepalive time/intvl/probes from tcp_keepalive_*; the kernel's own socket
    reads its own sysctls the same way."""
    with socket.socket() as s:
        assert s.getsockopt(SOL, socket.SO_SNDBUF) == _sysctl("tcp_wmem")[1]
        assert s.getsockopt(SOL, socket.SO_RCVBUF) == _sysctl("tcp_rmem")[1]
        assert s.getsockopt(TCP, socket.TCP_KEEPIDLE) == _sysctl("tcp_keepalive_time")[0]
        assert s.getsockopt(TCP, socket.TCP_KEEPINTVL) == _sysctl("tcp_keepalive_intvl")[0]
        assert s.getsockopt(TCP, socket.TCP_KEEPCNT) == _sysctl("tcp_keepalive_probes")[0]
    st = Settings(tcp_wmem=(4096, 20000, 4194304), tcp_rmem=(4096, 90000, 6291456),
                  tcp_keepalive_time=3000.0, tcp_keepalive_intvl=30.0,
                  tcp_keepalive_probes=4)
    _host, sk = fresh(st)
    assert [sk.getsockopt(SOL, socket.SO_SNDBUF), sk.getsockopt(SOL, socket.SO_RCVBUF),
            sk.getsockopt(TCP, socket.TCP_KEEPIDLE), sk.getsockopt(TCP, socket.TCP_KEEPINTVL),
            sk.getsockopt(TCP, socket.TCP_KEEPCNT)] == [20000, 90000, 3000, 30, 4]


def test_buffer_sizes_are_capped_at_the_maximum():
    """SO_SNDBUF/SO_RCVBUF: the value is limited before doubling (tcpio's
    limit is tcp_wmem[2] / tcp_rmem[2], Linux's net.core.[wr]mem_max)."""
    st = Settings(tcp_wmem=(4096, 16384, 100000), tcp_rmem=(4096, 131072, 200000))
    _host, sk = fresh(st)
    sk.setsockopt(SOL, socket.SO_SNDBUF, 10**9)
    sk.setsockopt(SOL, socket.SO_RCVBUF, 10**9)
    assert (sk.sndbuf, sk.rcvbuf) == (200000, 400000)
    sk.setsockopt(SOL, socket.SO_SNDBUF, 100000)
    assert sk.sndbuf == 200000


def test_options_accept_a_packed_int_like_the_c_api():
    _host, sk = fresh()
    sk.setsockopt(TCP, socket.TCP_KEEPCNT, struct.pack("i", 5))
    sk.setsockopt(TCP, socket.TCP_MAXSEG, struct.pack("i", 1000))
    sk.setsockopt(TCP, socket.TCP_CONGESTION, "reno")
    assert (sk.opts.keepcnt, sk.opts.user_mss, sk.getsockopt(TCP, socket.TCP_CONGESTION)) == \
        (5, 1000, b"reno")
    sk.setsockopt(TCP, socket.TCP_CONGESTION, b"cubic\0\0\0")
    assert sk.getsockopt(TCP, socket.TCP_CONGESTION) == b"cubic"


def test_so_error_reads_and_clears_the_pending_error():
    """sock_getsockopt SO_ERROR: sock_error() pops sk_err."""
    _host, peer, sk, syn = syn_sent()
    peer.send(RST | ACK, 0, syn.seq + 1)
    assert sk.getsockopt(SOL, socket.SO_ERROR) == errno.ECONNREFUSED
    assert sk.getsockopt(SOL, socket.SO_ERROR) == 0


def test_so_acceptconn_is_set_only_while_listening():
    _host, sk = fresh()
    sk.bind(0, LPORT)
    assert sk.getsockopt(SOL, socket.SO_ACCEPTCONN) == 0
    sk.listen(5)
    assert sk.getsockopt(SOL, socket.SO_ACCEPTCONN) == 1


def test_tcp_maxseg_reads_the_user_value_before_a_connection_and_mss_after():
    """do_tcp_getsockopt TCP_MAXSEG: user_mss while CLOSE/LISTEN, else mss_cache."""
    _host, sk = fresh()
    sk.setsockopt(TCP, socket.TCP_MAXSEG, 1000)
    assert sk.getsockopt(TCP, socket.TCP_MAXSEG) == 1000
    sk.bind(0, LPORT)
    sk.listen(1)
    assert sk.getsockopt(TCP, socket.TCP_MAXSEG) == 1000
    c = active_open(setup=lambda s: s.setsockopt(TCP, socket.TCP_MAXSEG, 1000),
                    synack_opts=TcpOptions(mss=700))
    assert c.sk.getsockopt(TCP, socket.TCP_MAXSEG) == c.sk.mss_cache == 700
    assert c.syn.opts.mss == 1000


def test_tcp_maxseg_after_a_connection_ends_still_reads_its_mss_like_linux():
    """do_tcp_getsockopt TCP_MAXSEG returns mss_cache, which a finished
    connection leaves as it was (kernel: KERNEL_MAXSEG_AFTER_RESET)."""
    k = _ask_kernel(KERNEL_MAXSEG_AFTER_RESET)
    assert k["fresh"] == 536 and k["after_reset"] == k["established"] != 536
    c = active_open(synack_opts=TcpOptions(mss=1200))
    assert c.sk.getsockopt(TCP, socket.TCP_MAXSEG) == 1200
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE
    assert c.sk.getsockopt(TCP, socket.TCP_MAXSEG) == 1200


KERNEL_MAXSEG_AFTER_RESET = r"""
import json, socket, struct, subprocess, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
res = {"fresh": socket.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)}
l = socket.socket(); l.bind(("127.0.0.1", 5000)); l.listen()
d = socket.socket(); d.connect(("127.0.0.1", 5000)); a, _ = l.accept()
res["established"] = d.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); a.close()
time.sleep(0.1)
try:
    d.recv(10)
except OSError:
    pass
res["after_reset"] = d.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
print(json.dumps(res))
"""


def test_tcp_maxseg_set_on_the_socket_limits_the_mss_it_advertises():
    c = active_open(setup=lambda s: s.setsockopt(TCP, socket.TCP_MAXSEG, 700),
                    synack_opts=None)
    assert c.syn.opts.mss == 700


# -- bind / listen / accept ---------------------------------------------------------------


def test_bind_twice_is_einval_like_linux():
    """inet_bind: a sock that already has a port (or is not CLOSE) -> EINVAL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        with pytest.raises(OSError) as ke:
            s.bind(("127.0.0.1", 0))
    _host, sk = fresh()
    sk.bind(LOCAL, 5000)
    assert errno_of(sk.bind, LOCAL, 5001) == ke.value.errno == errno.EINVAL
    assert sk.getsockname() == (LOCAL, 5000)


def test_bind_after_connect_is_einval():
    _host, _peer, sk, syn = syn_sent()
    assert errno_of(sk.bind, 0, 6000) == errno.EINVAL
    assert sk.lport == syn.sport


def test_bind_to_a_foreign_address_is_eaddrnotavail():
    _host, sk = fresh()
    assert errno_of(sk.bind, REMOTE, 5000) == errno.EADDRNOTAVAIL
    assert sk.getsockname() == (0, 0)
    sk.bind(0, 5000)                       # the wildcard is always fine
    assert sk.getsockname() == (0, 5000) and sk.bound


@pytest.mark.parametrize("port,want", [(-1, errno.EINVAL), (0x10000, errno.EINVAL),
                                       (0xFFFF, None), (0, None)])
def test_bind_port_must_fit_16_bits(port, want):
    _host, sk = fresh()
    assert errno_of(sk.bind, LOCAL, port) == want
    if want is None:
        assert sk.lport == (port or sk.lport) and sk.lport > 0


def test_bind_conflict_leaves_the_sock_unbound_and_free_to_retry():
    host, a = fresh()
    a.bind(LOCAL, 5000)
    b = host.tcp.socket()
    assert errno_of(b.bind, LOCAL, 5000) == errno.EADDRINUSE
    assert (b.getsockname(), b.bound) == ((0, 0), False)
    b.bind(LOCAL, 5001)
    assert b.getsockname() == (LOCAL, 5001)


def test_bind_records_the_address_for_the_syn():
    host = FakeHost()
    peer = Peer(host)
    sk = host.tcp.socket()
    sk.bind(LOCAL, 5555)
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    syn = peer.recv_one()
    assert syn.sport == 5555 and host.sent == []


def test_listen_without_bind_takes_an_ephemeral_port_like_linux():
    """inet_listen -> inet_csk_get_port(sk, 0): an automatic (odd) port."""
    with socket.socket() as s:
        s.listen()
        kport = s.getsockname()[1]
    lo, hi = _sysctl("ip_local_port_range")
    assert lo <= kport <= hi and (kport - lo) % 2 == 1
    host, sk = fresh()
    sk.listen(4)
    addr, port = sk.getsockname()
    lo, hi = host.settings.ip_local_port_range
    assert addr == 0 and lo <= port <= hi and (port - lo) % 2 == 1
    assert host.tcp.hashinfo.lookup_listener(LOCAL, port) is sk


def test_listen_on_a_connecting_socket_is_einval():
    _host, _peer, sk, _syn = syn_sent()
    assert errno_of(sk.listen, 5) == errno.EINVAL
    assert sk.state == TCP_SYN_SENT


def test_listen_on_an_accepted_socket_is_einval():
    c = passive_open()
    assert errno_of(c.sk.listen, 5) == errno.EINVAL
    assert c.sk.state == TCP_ESTABLISHED


def test_listen_conflict_leaves_the_sock_closed_and_unlisted():
    """inet_csk_listen_start: get_port fails -> state back to CLOSE, EADDRINUSE."""
    host = FakeHost()
    a, b = host.tcp.socket(), host.tcp.socket()
    for s in (a, b):
        s.setsockopt(SOL, socket.SO_REUSEADDR, 1)
        s.bind(0, LPORT)
    a.listen(4)
    assert errno_of(b.listen, 4) == errno.EADDRINUSE
    assert b.state == TCP_CLOSE
    assert host.tcp.hashinfo.lookup_listener(LOCAL, LPORT) is a
    assert b.getsockopt(SOL, socket.SO_ACCEPTCONN) == 0


def test_listen_again_only_changes_the_backlog():
    """inet_listen on a listener: sk_max_ack_backlog = backlog, nothing else."""
    host, sk = fresh()
    sk.bind(0, LPORT)
    sk.listen(1)
    sk.listen(3)
    assert sk.state == TCP_LISTEN and sk.max_ack_backlog == 3
    assert host.tcp.hashinfo.lhash[(0, LPORT)] == [sk]


@pytest.mark.parametrize("backlog,queued", [(0, 1), (1, 2), (-5, 1), (3, 4)])
def test_backlog_admits_backlog_plus_one_connections(backlog, queued):
    """sk_acceptq_is_full: ack_backlog > max_ack_backlog, so a listen(n)
    queue holds n + 1 children (listen(0) holds one); a negative backlog is 0
    (CPython's listen() clamps it before the kernel sees it)."""
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(backlog)
    for i in range(queued + 2):
        peer = Peer(host, port=40000 + i)
        peer.send(SYN, PEER_ISS)
        synack = peer.recv()
        if synack:
            peer.send(ACK, PEER_ISS + 1, synack[0].seq + 1)
    assert len(ls.accept_queue) == queued


def test_backlog_is_clamped_to_somaxconn():
    _host, sk = fresh(Settings(somaxconn=2))
    sk.bind(0, LPORT)
    sk.listen(100)
    assert sk.max_ack_backlog == 2


def test_accept_on_a_non_listener_is_einval_like_linux():
    with socket.socket() as s, pytest.raises(OSError) as ke:
        s.accept()
    _host, sk = fresh()
    assert errno_of(sk.accept) == ke.value.errno == errno.EINVAL


def test_accept_returns_children_in_arrival_order_then_none():
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    assert ls.accept() is None
    for port in (40001, 40002):
        peer = Peer(host, port=port)
        peer.send(SYN, PEER_ISS)
        synack = peer.recv_one()
        peer.send(ACK, PEER_ISS + 1, synack.seq + 1)
    first, second = ls.accept(), ls.accept()
    assert (first.rport, second.rport) == (40001, 40002)
    assert first.parent is None and second.parent is None
    assert ls.accept() is None
    # An accepted child is connected: connect() on it is EISCONN.
    assert errno_of(first.connect, REMOTE, 1) == errno.EISCONN


def test_closing_an_accepted_child_does_not_touch_the_listener():
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    peer = Peer(host)
    peer.send(SYN, PEER_ISS)
    synack = peer.recv_one()
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1)
    child = ls.accept()
    child.abort()
    peer.recv()
    assert ls.state == TCP_LISTEN
    assert host.tcp.hashinfo.lookup_listener(LOCAL, LPORT) is ls


# -- connect (inet_stream_connect) ----------------------------------------------------


def test_connect_on_a_listener_is_eisconn_like_linux():
    """inet_stream_connect: SS_UNCONNECTED with sk_state != CLOSE -> EISCONN,
    a listener included."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(OSError) as ke:
            s.connect(("127.0.0.1", 9))
    host, sk = fresh()
    sk.bind(0, LPORT)
    sk.listen(1)
    assert errno_of(sk.connect, REMOTE, RPORT) == ke.value.errno == errno.EISCONN
    assert sk.state == TCP_LISTEN and host.sent == []


def test_connect_to_port_zero_is_refused_like_linux():
    with socket.socket() as s, pytest.raises(OSError) as ke:
        s.connect(("127.0.0.1", 0))
    host, sk = fresh()
    assert errno_of(sk.connect, REMOTE, 0) == ke.value.errno == errno.ECONNREFUSED
    assert host.sent == [] and sk.state == TCP_CLOSE


@pytest.mark.parametrize("port", [-1, 0x10000])
def test_connect_port_must_fit_16_bits(port):
    host, sk = fresh()
    assert errno_of(sk.connect, REMOTE, port) == errno.EINVAL
    assert host.sent == [] and sk.state == TCP_CLOSE


def test_connect_to_port_65535_sends_a_syn():
    host = FakeHost()
    peer = Peer(host, port=0xFFFF)
    sk = host.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, 0xFFFF)
    assert peer.recv_one().flags == SYN


def test_connect_while_connecting_is_ealready_until_the_handshake_ends():
    _host, peer, sk, syn = syn_sent()
    for _ in range(2):
        assert errno_of(sk.connect, REMOTE, RPORT) == errno.EALREADY
    assert peer.recv() == []                      # no second SYN
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1)
    peer.recv()
    assert sk.connect(REMOTE, RPORT) is None     # success, reported once
    assert errno_of(sk.connect, REMOTE, RPORT) == errno.EISCONN
    assert errno_of(sk.connect, REMOTE, RPORT) == errno.EISCONN


def test_failed_connect_reports_its_error_once_then_may_connect_again():
    """inet_stream_connect after the attempt died: sock_error() (pops
    sk_err) and SS_UNCONNECTED, so the next connect() starts a new attempt."""
    _host, peer, sk, syn = syn_sent()
    peer.send(RST | ACK, 0, syn.seq + 1)
    assert errno_of(sk.connect, REMOTE, RPORT) == errno.ECONNREFUSED
    assert sk.sk_err == 0
    with pytest.raises(BlockingIOError):
        sk.connect(REMOTE, RPORT)
    again = peer.recv_one()
    assert again.flags == SYN and sk.state == TCP_SYN_SENT


def test_connect_after_a_silent_teardown_is_econnaborted():
    """No error recorded (the attempt was torn down by shutdown()): the kernel
    reports sock_error() or ECONNABORTED (inet_stream_connect's
    sock_intr_errno/ECONNABORTED path)."""
    _host, peer, sk, _syn = syn_sent()
    sk.shutdown(socket.SHUT_WR)
    assert sk.state == TCP_CLOSE
    assert peer.recv() == []                      # SYN-SENT: nothing to reset
    assert errno_of(sk.connect, REMOTE, RPORT) == errno.ECONNABORTED


# -- send ----------------------------------------------------------------------------------


@pytest.mark.parametrize("setup", ["fresh", "listening"])
def test_send_space_is_zero_unless_connected(setup):
    _host, sk = fresh()
    if setup == "listening":
        sk.bind(0, LPORT)
        sk.listen(1)
    assert sk.send_space() == 0


def test_send_space_counts_unacknowledged_bytes_against_sndbuf():
    c = passive_open(setup=lambda s: s.setsockopt(SOL, socket.SO_SNDBUF, 5000))
    assert c.sk.sndbuf == 10000
    assert c.sk.send_space() == 10000
    assert c.sk.sendmsg(b"x" * 3000) == 3000
    assert c.sk.send_space() == 7000
    assert c.sk.sendmsg(b"y" * 9000) == 7000
    assert c.sk.send_space() == 0
    assert c.sk.sendmsg(b"z") == 0
    c.sk.shutdown(socket.SHUT_WR)
    assert c.sk.send_space() == 0


def test_send_space_in_close_wait():
    c = passive_open()
    c.send(flags=FIN | ACK)
    assert c.sk.state == TCP_CLOSE_WAIT
    assert c.sk.send_space() == c.sk.sndbuf
    assert c.sk.sendmsg(b"late") == 4
    segs = c.recv()
    assert [s.payload for s in segs if s.payload] == [b"late"]


def test_send_while_connecting_queues_nothing():
    _host, _peer, sk, _syn = syn_sent()
    assert sk.sendmsg(b"early") == 0
    assert sk.send_space() == 0 and len(sk.wq) == 0


def test_send_reports_a_pending_error_first_and_pops_it():
    """tcp_sendmsg: sk_err first (sk_stream_error), then EPIPE once closed."""
    c = passive_open()
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE
    with pytest.raises(OSError) as ei:
        c.sk.sendmsg(b"x")
    assert ei.value.errno == errno.ECONNRESET
    assert c.sk.sk_err == 0
    assert errno_of(c.sk.sendmsg, b"x") == errno.EPIPE


def test_send_goes_out_at_once_with_the_next_sequence_numbers():
    c = passive_open(setup=lambda s: s.setsockopt(TCP, socket.TCP_NODELAY, 1))
    assert c.sk.sendmsg(b"hello") == 5
    assert c.sk.sendmsg(b" world") == 6
    segs = c.recv()
    data = b"".join(s.payload for s in segs)
    assert data == b"hello world"
    assert segs[0].seq == c.rcv
    assert c.sk.write_seq == (c.rcv + 11) & 0xFFFFFFFF


def test_send_takes_any_buffer_as_bytes():
    """tcp_sendmsg copies bytes: an array of shorts is sent as its raw bytes."""
    c = passive_open(setup=lambda s: s.setsockopt(TCP, socket.TCP_NODELAY, 1))
    arr = array.array("H", [0x0102, 0x0304])
    assert c.sk.sendmsg(arr) == 4
    assert c.sk.sendmsg(memoryview(b"abcdef")[2:4]) == 2
    assert b"".join(s.payload for s in c.recv()) == arr.tobytes() + b"cd"


def test_send_takes_a_multi_dimensional_buffer_whole():
    """A C-contiguous 2-D buffer is its bytes in order, like any buffer
    socket.send() accepts; a 2-D array of shorts counts 2 bytes a cell."""
    c = passive_open(setup=lambda s: s.setsockopt(TCP, socket.TCP_NODELAY, 1))
    grid = memoryview(b"abcdef").cast("B", (2, 3))
    assert c.sk.sendmsg(grid) == 6
    shorts = memoryview(array.array("H", [1, 2, 3, 4]).tobytes()).cast("H", (2, 2))
    assert c.sk.sendmsg(shorts) == 8
    assert b"".join(s.payload for s in c.recv()) == b"abcdef" + shorts.tobytes()


def test_send_takes_a_zero_dimensional_buffer_as_its_one_byte():
    """A ctypes scalar is a 0-d buffer: socket.send() sends its bytes (a
    socketpair agrees), so does sendmsg."""
    a, b = socket.socketpair()
    with a, b:
        assert a.send(ctypes.c_ubyte(7)) == 1
        assert b.recv(4) == b"\x07"
    c = passive_open(setup=lambda s: s.setsockopt(TCP, socket.TCP_NODELAY, 1))
    assert c.sk.sendmsg(ctypes.c_ubyte(7)) == 1
    assert [s.payload for s in c.recv()] == [b"\x07"]


def test_send_that_copies_nothing_sets_no_urgent_mark():
    """tcp_sendmsg marks urgent data (MSG_OOB) only in tcp_push, which runs
    only when something was copied: a full buffer or empty data leaves urgent
    mode alone."""
    c = passive_open(setup=lambda s: s.setsockopt(SOL, socket.SO_SNDBUF, 1))
    assert c.sk.sendmsg(b"", socket.MSG_OOB) == 0
    assert c.sk.snd_up is None
    assert c.sk.sendmsg(b"x" * c.sk.sndbuf) == c.sk.sndbuf
    c.recv()
    assert c.sk.sendmsg(b"y", socket.MSG_OOB) == 0
    assert c.sk.snd_up is None
    assert all(not s.flags & URG for s in c.recv())


def test_sequence_numbers_wrap_at_2_32():
    c = passive_open()
    c.sk.write_seq = c.sk.snd_nxt = c.sk.snd_una = c.sk.wq_seq = c.sk.snd_sml = 0xFFFFFFFE
    c.rcv = 0xFFFFFFFE
    assert c.sk.sendmsg(b"abcd") == 4
    assert c.sk.write_seq == 2
    segs = c.recv()
    assert [(s.seq, s.payload) for s in segs] == [(0xFFFFFFFE, b"abcd")]


def test_msg_oob_sends_the_last_byte_as_urgent():
    """BSD urgent semantics (tcp_stdurg = 0): the urgent pointer points just
    past the last byte of the send, with URG set."""
    c = passive_open()
    assert c.sk.sendmsg(b"abc", socket.MSG_OOB) == 3
    (seg,) = c.recv()
    assert seg.flags & URG and seg.payload == b"abc"
    assert seg.urg_ptr == 3
    assert c.sk.snd_up == (c.rcv + 3) & 0xFFFFFFFF


# -- receive -------------------------------------------------------------------------------


def test_recv_negative_length_is_einval():
    c = passive_open()
    assert errno_of(c.sk.recvmsg, -1) == errno.EINVAL


def test_recv_returns_at_most_maxlen_in_order():
    c = passive_open()
    c.send(b"abcdef", flags=ACK | PSH)
    assert c.sk.readable() == 6
    assert c.sk.recvmsg(0) == b""
    assert c.sk.recvmsg(4) == b"abcd"
    assert c.sk.readable() == 2
    assert c.sk.recvmsg(100) == b"ef"
    assert c.sk.recvmsg(100) == b""


def test_recv_on_a_listener_is_enotconn_like_linux():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(OSError) as ke:
            s.recv(1)
    _host, sk = fresh()
    sk.bind(0, LPORT)
    sk.listen(1)
    assert errno_of(sk.recvmsg, 1) == ke.value.errno == errno.ENOTCONN


def test_recv_data_before_a_pending_error():
    """tcp_recvmsg: queued data is returned first; the error comes when the
    queue is empty, and is popped."""
    c = passive_open()
    c.send(b"last words", flags=ACK | PSH)
    c.send(flags=RST, seq=c.snd)
    assert c.sk.state == TCP_CLOSE
    assert c.sk.recvmsg(100) == b"last words"
    assert errno_of(c.sk.recvmsg, 100) == errno.ECONNRESET
    assert c.sk.recvmsg(100) == b""


def test_recv_after_eof_returns_empty_even_with_an_error_pending():
    c = passive_open()
    c.send(flags=FIN | ACK)
    assert c.sk.rcv_eof
    c.sk.sk_err = errno.ETIMEDOUT
    assert c.sk.recvmsg(10) == b""
    assert c.sk.sk_err == errno.ETIMEDOUT


def test_reading_reopens_a_closed_window():
    """tcp_cleanup_rbuf: once the app has read enough to re-open a window the
    peer saw as closed, a window update goes out without waiting for data."""
    c = passive_open(setup=lambda s: s.setsockopt(SOL, socket.SO_RCVBUF, 2304))
    sk = c.sk
    chunk = b"z" * 500
    while True:
        segs = c.recv()
        if segs and segs[-1].window == 0:
            break
        c.send(chunk, flags=ACK | PSH)
    assert sk.readable() > 0
    sk.recvmsg(100000)
    upd = c.recv()
    assert upd and upd[-1].flags == ACK and upd[-1].window > 0


def test_receive_buffer_grows_only_when_not_locked():
    """tcp_rcv_space_adjust (DRS) runs from recvmsg unless SO_RCVBUF locked
    the buffer (SOCK_RCVBUF_LOCK)."""
    def run(lock: bool) -> int:
        c = passive_open(settings=Settings(tcp_rmem=(4096, 8192, 6291456)),
                         setup=(lambda s: s.setsockopt(SOL, socket.SO_RCVBUF, 4096))
                         if lock else None)
        assert c.sk.rcvbuf == 8192
        sk = c.sk
        # An RTT sample first (DRS measures once per RTT).
        sk.sendmsg(b"p")
        c.host.advance(0.04)
        c.ack_all(c.recv())
        c.send()
        assert sk.srtt > 0
        start = sk.rcvbuf
        t = 0.04
        for _ in range(40):
            t += 0.05
            c.host.advance(t)
            c.send(b"d" * 1400, flags=ACK | PSH)
            c.recv()
            sk.recvmsg(1 << 20)
        return sk.rcvbuf - start

    assert run(lock=True) == 0
    assert run(lock=False) > 0


def test_msg_oob_without_urgent_data_is_einval_like_linux():
    with socket.socket() as s, pytest.raises(OSError) as ke:
        s.recv(1, socket.MSG_OOB)
    c = passive_open()
    assert errno_of(c.sk.recvmsg, 1, socket.MSG_OOB) == ke.value.errno == errno.EINVAL


def test_msg_oob_reads_the_urgent_byte_once_and_peek_leaves_it():
    """tcp_recv_urg: the out-of-band byte; MSG_PEEK does not consume it;
    announced but not yet arrived -> EAGAIN."""
    c = passive_open()
    # The urgent pointer announces a byte beyond this segment: not arrived yet.
    c.peer.send(ACK | URG, c.snd, c.rcv, payload=b"ab")
    c.recv()
    c.snd += 2
    # (urg_ptr is set through the raw builder below)
    c2 = passive_open()
    seg = wire.build_tcp(c2.peer.addr, c2.host.addr, c2.peer.port, c2.peer.lport, c2.snd,
                         c2.rcv, ACK | URG, 65535, None, b"xy", 10)
    c2.host.deliver(c2.peer.addr, c2.host.addr, seg)
    assert errno_of(c2.sk.recvmsg, 1, socket.MSG_OOB) == errno.EAGAIN
    c2.snd += 2
    seg = wire.build_tcp(c2.peer.addr, c2.host.addr, c2.peer.port, c2.peer.lport, c2.snd,
                         c2.rcv, ACK | URG, 65535, None, b"12345678", 8)
    c2.host.deliver(c2.peer.addr, c2.host.addr, seg)
    assert c2.sk.recvmsg(1, socket.MSG_OOB | socket.MSG_PEEK) == b"8"
    assert c2.sk.recvmsg(0, socket.MSG_OOB | socket.MSG_PEEK) == b""
    assert c2.sk.recvmsg(1, socket.MSG_OOB) == b"8"
    assert errno_of(c2.sk.recvmsg, 1, socket.MSG_OOB) == errno.EINVAL
    assert c2.sk.recvmsg(100) == b"xy1234567"


# -- shutdown -------------------------------------------------------------------------------


def test_shutdown_bad_how_is_einval():
    _host, sk = fresh()
    assert errno_of(sk.shutdown, 3) == errno.EINVAL
    assert errno_of(sk.shutdown, -1) == errno.EINVAL


def test_shutdown_of_an_unconnected_socket_is_enotconn_like_linux():
    with socket.socket() as s, pytest.raises(OSError) as ke:
        s.shutdown(socket.SHUT_RDWR)
    _host, sk = fresh()
    assert errno_of(sk.shutdown, socket.SHUT_RDWR) == ke.value.errno == errno.ENOTCONN
    # inet_shutdown still records the bits: a send now is EPIPE.
    assert errno_of(sk.sendmsg, b"x") == errno.EPIPE


def test_shutdown_wr_of_a_listener_is_a_no_op_like_linux():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.shutdown(socket.SHUT_WR)
        assert s.getsockopt(SOL, socket.SO_ACCEPTCONN) == 1
    host, sk = fresh()
    sk.bind(0, LPORT)
    sk.listen(1)
    sk.shutdown(socket.SHUT_WR)
    assert sk.state == TCP_LISTEN
    assert host.tcp.hashinfo.lookup_listener(LOCAL, LPORT) is sk


@pytest.mark.parametrize("how", [socket.SHUT_RD, socket.SHUT_RDWR])
def test_shutdown_rd_of_a_listener_stops_listening(how):
    """inet_shutdown: LISTEN with RCV_SHUTDOWN -> disconnect (listen stop)."""
    host, sk = fresh()
    sk.bind(0, LPORT)
    sk.listen(1)
    sk.shutdown(how)
    assert sk.state == TCP_CLOSE
    assert host.tcp.hashinfo.lookup_listener(LOCAL, LPORT) is None
    peer = Peer(host)
    peer.send(SYN, PEER_ISS)
    assert peer.recv_one().flags == RST | ACK


def test_shutdown_rd_makes_reads_end_after_the_queued_data():
    c = passive_open()
    c.send(b"queued", flags=ACK | PSH)
    c.sk.shutdown(socket.SHUT_RD)
    assert c.sk.recvmsg(100) == b"queued"
    assert c.sk.recvmsg(100) == b"" and c.sk.rcv_eof
    assert c.sk.state == TCP_ESTABLISHED
    assert c.recv() == [] or all(not s.flags & FIN for s in c.recv())


def test_shutdown_wr_sends_fin_once_and_enters_fin_wait1():
    c = passive_open()
    c.host.woken.clear()
    c.sk.shutdown(socket.SHUT_WR)
    assert c.sk.state == TCP_FIN_WAIT1
    assert [s.key() for s in c.recv()] == [(FIN | ACK, c.rcv, c.snd, b"")]
    assert c.sk in c.host.woken
    c.sk.shutdown(socket.SHUT_WR)
    c.sk.shutdown(socket.SHUT_RDWR)
    assert c.recv() == [] and c.sk.state == TCP_FIN_WAIT1


def test_shutdown_wr_in_close_wait_sends_fin_and_enters_last_ack():
    c = passive_open()
    c.send(flags=FIN | ACK)
    c.recv()
    c.sk.shutdown(socket.SHUT_WR)
    assert c.sk.state == TCP_LAST_ACK
    assert [s.key() for s in c.recv()] == [(FIN | ACK, c.rcv, c.snd, b"")]


def test_shutdown_wr_while_connecting_tears_the_attempt_down_silently():
    """inet_shutdown on SYN-SENT: disconnect, no RST (tcp_need_reset is
    false for SYN-SENT), the sock is CLOSE."""
    host, peer, sk, syn = syn_sent()
    sk.shutdown(socket.SHUT_WR)
    assert sk.state == TCP_CLOSE and peer.recv() == []
    assert host.tcp.hashinfo.lookup_established(LOCAL, syn.sport, REMOTE, RPORT) is None


# -- close / abort ------------------------------------------------------------------------


def test_close_sends_fin_and_orphans_the_sock():
    c = passive_open()
    c.sk.close()
    assert [s.key() for s in c.recv()] == [(FIN | ACK, c.rcv, c.snd, b"")]
    assert c.sk.state == TCP_FIN_WAIT1 and c.sk.orphan
    assert c.host.tcp.orphans == 1
    c.sk.close()                                   # a second close does nothing
    assert c.recv() == [] and c.host.tcp.orphans == 1


def test_close_of_a_fresh_socket_frees_its_port():
    host, sk = fresh()
    sk.bind(LOCAL, 5000)
    sk.close()
    assert host.tcp.hashinfo.bind_owners(5000) == []
    assert sk.dead and host.sent == []
    other = host.tcp.socket()
    other.bind(LOCAL, 5000)


def test_close_while_connecting_sends_nothing_and_frees_the_tuple():
    """tcp_close in SYN-SENT: tcp_close_state -> CLOSE, no FIN, no RST."""
    host, peer, sk, syn = syn_sent()
    sk.close()
    assert peer.recv() == []
    assert sk.state == TCP_CLOSE
    assert host.tcp.hashinfo.lookup_established(LOCAL, syn.sport, REMOTE, RPORT) is None
    assert host.tcp.hashinfo.bind_owners(syn.sport) == []
    # A late SYN-ACK finds nobody: RST.
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1)
    assert peer.recv_one().flags == RST


def test_close_with_unread_data_resets_with_the_current_sequence():
    """RFC 2525 2.17 / tcp_close: unread data -> RST <SEQ=SND.NXT>, not FIN."""
    c = passive_open()
    c.sk.sendmsg(b"out")
    c.send(b"unread", flags=ACK | PSH)
    c.recv()
    c.sk.close()
    (rst,) = c.recv()
    assert (rst.flags, rst.seq) == (RST | ACK, (c.rcv + 3) & 0xFFFFFFFF)
    assert c.sk.state == TCP_CLOSE
    assert c.host.mib["TCPAbortOnClose"] == 1 and c.host.mib["TCPAbortOnLinger"] == 0


def test_close_after_reading_everything_is_a_normal_fin():
    c = passive_open()
    c.send(b"read me", flags=ACK | PSH)
    c.recv()
    assert c.sk.recvmsg(100) == b"read me"
    c.sk.close()
    assert [s.flags for s in c.recv()] == [FIN | ACK]
    assert c.host.mib["TCPAbortOnClose"] == 0


@pytest.mark.parametrize("linger,want", [((1, 0), RST | ACK), ((1, 5), FIN | ACK),
                                         ((0, 0), FIN | ACK), ((0, 7), FIN | ACK)])
def test_so_linger_zero_timeout_alone_turns_close_into_reset(linger, want):
    """tcp_close: sock_flag(SOCK_LINGER) && !sk_lingertime -> RST (TCPAbortOnLinger)."""
    c = passive_open()
    c.sk.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", *linger))
    c.sk.close()
    assert [s.flags for s in c.recv()] == [want]
    assert c.host.mib["TCPAbortOnLinger"] == (1 if want & RST else 0)


def test_so_linger_off_keeps_the_linger_time_like_linux():
    """sock_setsockopt SO_LINGER: l_onoff = 0 clears SOCK_LINGER only."""
    on_off = [struct.pack("ii", 1, 5), struct.pack("ii", 0, 9)]
    with socket.socket() as s:
        for v in on_off:
            s.setsockopt(SOL, socket.SO_LINGER, v)
        want = struct.unpack("ii", s.getsockopt(SOL, socket.SO_LINGER, 8))
    _host, sk = fresh()
    for v in on_off:
        sk.setsockopt(SOL, socket.SO_LINGER, v)
    assert struct.unpack("ii", sk.getsockopt(SOL, socket.SO_LINGER)) == want == (0, 5)


def test_so_linger_negative_time_lingers_without_limit():
    """A negative l_linger is a huge unsigned time (MAX_SCHEDULE_TIMEOUT in
    Linux), not zero: close() sends a FIN, not a RST."""
    with socket.socket() as s:
        s.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, -3))
        on, secs = struct.unpack("ii", s.getsockopt(SOL, socket.SO_LINGER, 8))
        assert on == 1 and secs != 0
    c = passive_open()
    c.sk.setsockopt(SOL, socket.SO_LINGER, struct.pack("ii", 1, -3))
    on, secs = struct.unpack("ii", c.sk.getsockopt(SOL, socket.SO_LINGER))
    assert on == 1 and secs > 0
    c.sk.close()
    assert [s.flags for s in c.recv()] == [FIN | ACK]
    assert c.host.mib["TCPAbortOnLinger"] == 0


def test_so_linger_short_buffer_is_einval_like_linux():
    with socket.socket() as s, pytest.raises(OSError) as ke:
        s.setsockopt(SOL, socket.SO_LINGER, b"\1\0\0\0")
    _host, sk = fresh()
    assert errno_of(sk.setsockopt, SOL, socket.SO_LINGER, b"\1\0\0\0") == \
        ke.value.errno == errno.EINVAL
    assert sk.opts.linger == (0, 0)


def test_so_linger_takes_a_pair_too():
    _host, sk = fresh()
    sk.setsockopt(SOL, socket.SO_LINGER, (5, 3))
    assert struct.unpack("ii", sk.getsockopt(SOL, socket.SO_LINGER)) == (1, 3)


def test_abort_resets_an_established_connection():
    c = passive_open()
    c.sk.abort()
    assert [s.key() for s in c.recv()] == [(RST | ACK, c.rcv, c.snd, b"")]
    assert c.sk.state == TCP_CLOSE and c.sk.dead


def test_too_many_orphans_resets_instead_of_fin():
    """tcp_close -> tcp_check_oom: past tcp_max_orphans the orphan is reset
    (TCPAbortOnMemory)."""
    c1 = passive_open(settings=Settings(tcp_max_orphans=0))
    c1.sk.close()
    flags = [s.flags for s in c1.recv()]
    assert flags[-1] == RST | ACK and c1.host.mib["TCPAbortOnMemory"] == 1
    c2 = passive_open(settings=Settings(tcp_max_orphans=1))
    c2.sk.close()
    assert [s.flags for s in c2.recv()] == [FIN | ACK]
    assert c2.host.mib["TCPAbortOnMemory"] == 0


def test_closing_a_half_closed_sock_in_fin_wait2_starts_the_fin_timeout():
    """tcp_close in FIN-WAIT-2: the orphan waits tcp_fin_timeout as a
    time-wait entry (substate FIN-WAIT-2), then the tuple is free."""
    c = passive_open(settings=Settings(tcp_fin_timeout=30.0))
    c.sk.shutdown(socket.SHUT_WR)
    fin = c.recv()[-1]
    c.send(ack=fin.seq + 1)
    assert c.sk.state == TCP_FIN_WAIT2 and not c.sk.orphan
    c.sk.close()
    assert c.sk.state == TCP_CLOSE
    tw = c.host.tcp.hashinfo.lookup_established(LOCAL, LPORT, REMOTE, RPORT)
    assert tw is not None and tw is not c.sk
    c.host.advance(29.0)
    assert c.host.tcp.hashinfo.lookup_established(LOCAL, LPORT, REMOTE, RPORT) is tw
    c.host.advance(30.5)
    assert c.host.tcp.hashinfo.lookup_established(LOCAL, LPORT, REMOTE, RPORT) is None


def test_close_of_a_listener_resets_its_queue_and_frees_the_port():
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(4)
    peer = Peer(host)
    peer.send(SYN, PEER_ISS)
    synack = peer.recv_one()
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1)
    ls.close()
    assert peer.recv_one().flags & RST
    assert host.tcp.hashinfo.bind_owners(LPORT) == []
    assert ls.state == TCP_CLOSE


def test_close_clears_the_wakeup_and_shuts_both_sides():
    c = passive_open()
    c.sk.wakeup = lambda: None
    c.sk.close()
    assert c.sk.wakeup is None
    assert errno_of(c.sk.sendmsg, b"x") == errno.EPIPE


# -- names ---------------------------------------------------------------------------------


def test_getpeername_only_once_the_peer_is_known():
    """inet_getname(peer): ENOTCONN without a remote port or in CLOSE/SYN-SENT."""
    _host, sk = fresh()
    assert errno_of(sk.getpeername) == errno.ENOTCONN
    _h, _p, sk2, _syn = syn_sent()
    assert errno_of(sk2.getpeername) == errno.ENOTCONN
    c = passive_open()
    assert c.sk.getpeername() == (REMOTE, RPORT)
    assert c.sk.getsockname() == (LOCAL, LPORT)
    assert errno_of(c.listener.getpeername) == errno.ENOTCONN
    c.send(flags=RST)
    assert errno_of(c.sk.getpeername) == errno.ENOTCONN


def test_a_new_sock_is_unbound_and_unconnected():
    """sk_alloc zeroes the sock: no addresses, no ports, CLOSE (ss shows
    UNCONN), until bind/connect fill them in; repr says so."""
    host, sk = fresh()
    assert (sk.laddr, sk.lport, sk.raddr, sk.rport, sk.state) == (0, 0, 0, 0, TCP_CLOSE)
    assert repr(sk) == "<TcpSock UNCONN 0x0:0 -> 0x0:0>"
    assert host.tcp.socket() is not sk
    c = passive_open()
    assert repr(c.sk) == f"<TcpSock ESTAB {LOCAL:#x}:{LPORT} -> {REMOTE:#x}:{RPORT}>"


# -- option side effects --------------------------------------------------------------------


def test_tcp_nodelay_pushes_what_nagle_held_back():
    """TCP_NODELAY set on a sock with a small segment held by Nagle sends it
    at once (tcp_push_pending_frames from do_tcp_setsockopt)."""
    c = passive_open()
    c.sk.sendmsg(b"a" * 10)
    first = c.recv()
    assert [s.payload for s in first] == [b"a" * 10]
    c.sk.sendmsg(b"b" * 10)                      # unacked small segment: held
    assert c.recv() == []
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 1)
    assert [s.payload for s in c.recv()] == [b"b" * 10]
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 0)
    assert c.sk.getsockopt(TCP, socket.TCP_NODELAY) == 0


def test_tcp_nodelay_with_nothing_unsent_does_not_enter_the_send_loop(monkeypatch):
    """tcp_push_pending_frames pushes only when there is a send head: every
    accepted asyncio transport sets TCP_NODELAY on a sock with nothing queued
    (sent and unacked data is not unsent), where the send loop has nothing
    to do; with a byte held back it does push."""
    from tcpio.core.tcp import tcp_output
    c = passive_open()
    c.sk.sendmsg(b"a" * 10)
    c.recv()                                     # in flight, not acked: not unsent
    pushes = []
    real = tcp_output.tcp_push
    monkeypatch.setattr(tcp_output, "tcp_push", lambda sk, now, *a: (pushes.append(sk),
                                                                      real(sk, now, *a)))
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 1)
    assert pushes == [] and c.recv() == []
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 0)
    c.sk.sendmsg(b"b" * 10)                      # held by Nagle
    assert c.recv() == []
    pushes.clear()
    c.sk.setsockopt(TCP, socket.TCP_NODELAY, 1)
    assert pushes == [c.sk] and [s.payload for s in c.recv()] == [b"b" * 10]


def test_so_sndbuf_wakes_the_writer():
    """A new send buffer size may mean new space: the sock is woken."""
    c = passive_open()
    c.host.woken.clear()
    c.sk.setsockopt(SOL, socket.SO_SNDBUF, 100000)
    assert c.sk in c.host.woken and c.sk.opts.sndbuf_locked


def test_keepalive_option_arms_the_timer_and_keepidle_moves_it():
    c = passive_open()
    sk = c.sk
    sk.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    assert sk.getsockopt(SOL, socket.SO_KEEPALIVE) == 1
    sk.setsockopt(TCP, socket.TCP_KEEPIDLE, 10)
    sk.setsockopt(TCP, socket.TCP_KEEPINTVL, 3)
    c.host.advance(9.5)
    assert c.recv() == []
    c.host.advance(10.5)
    probe = c.recv()
    assert [(s.flags, s.seq) for s in probe] == [(ACK, (c.rcv - 1) & 0xFFFFFFFF)]
    c.host.advance(12.0)
    assert c.recv() == []
    c.host.advance(13.6)
    assert len(c.recv()) == 1


def test_keepalive_off_stops_the_probes():
    c = passive_open()
    c.sk.setsockopt(SOL, socket.SO_KEEPALIVE, 1)
    c.sk.setsockopt(TCP, socket.TCP_KEEPIDLE, 10)
    c.sk.setsockopt(SOL, socket.SO_KEEPALIVE, 0)
    c.host.advance(100.0)
    assert c.recv() == []


def test_keepidle_on_a_sock_without_keepalive_arms_nothing():
    c = passive_open()
    c.sk.setsockopt(TCP, socket.TCP_KEEPIDLE, 5)
    c.host.advance(7300.0)
    assert c.recv() == []
    assert c.sk.getsockopt(TCP, socket.TCP_KEEPIDLE) == 5


def test_tcp_congestion_switch_reinitialises_a_live_connection():
    c = passive_open()
    c.sk.setsockopt(TCP, socket.TCP_CONGESTION, b"reno")
    assert c.sk.ca_ops.name == "reno" and c.sk.ca_priv is None
    c.sk.setsockopt(TCP, socket.TCP_CONGESTION, b"cubic")
    # CUBIC starts over: no state kept from before (made afresh on first use)
    assert c.sk.ca_ops.name == "cubic" and c.sk.ca_priv is None
    assert c.sk.ca_ops.ssthresh(c.sk) == max(int(c.sk.snd_cwnd * 0.7), 2)
    assert c.sk.ca_priv.w_max == c.sk.snd_cwnd


def test_tcp_congestion_on_an_unconnected_socket_only_records_the_choice():
    _host, sk = fresh()
    sk.setsockopt(TCP, socket.TCP_CONGESTION, b"cubic")
    assert sk.ca_ops.name == "cubic" and sk.ca_priv is None


def test_tcp_user_timeout_is_kept_in_milliseconds():
    _host, sk = fresh()
    sk.setsockopt(TCP, socket.TCP_USER_TIMEOUT, 2500)
    assert sk.opts.user_timeout == 2.5
    assert sk.getsockopt(TCP, socket.TCP_USER_TIMEOUT) == 2500
