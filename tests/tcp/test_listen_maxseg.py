"""A listener's TCP_MAXSEG bounds the MSS it advertises and the MSS its children use.

The rule is Linux's, and tests/tap/test_tcp_kernel_maxseg.py measures it on
the real kernel (6.18) with the same setting:

- The SYN-ACK's MSS option is the route's advmss bounded by the listener's
  user_mss (tcp_make_synack: ``tcp_mss_clamp(tp, dst_metric_advmss(dst))``),
  whatever MSS the client offered.
- The request's MSS is the client's option bounded by user_mss
  (tcp_parse_options with ``opt_rx->user_mss``); 536 when the SYN has none.
  A SYN cookie encodes that bounded value, rounded down to its table
  {536, 1300, 1440, 1460}: with TCP_MAXSEG 1000 a cookie child sends 536-byte
  segments (524 with timestamps) where a queued child sends 1000 (988).
- The child inherits user_mss; its advmss is bounded like the SYN-ACK's
  (tcp_v4_syn_recv_sock) and its mss_cache (getsockopt TCP_MAXSEG) is
  min(path MTU - 40, request MSS) less 12 bytes of timestamp option.  Linux's
  tcp_sync_mss does not look at user_mss again, so a SYN without an MSS option
  gets 536-byte segments even from a listener with TCP_MAXSEG 300; so does tcpio.

Segments go in built by scapy and come out decoded by scapy, with the virtual
clock of tests/tcp/helpers.py; each test runs with both twins of tcpio._fast.wire
(the module that parses the SYN's options and writes the SYN-ACK's).
"""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP, TCP

from tcpio.core.addr import ip_ntoa
from tcpio.core.settings import Settings
from tcpio.core.tcp import tcp_ipv4, tcp_minisocks, tcp_output
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED
from tests.conftest import twin_params

from .helpers import LOCAL, LPORT, REMOTE, RPORT, FakeHost

CLIENT_ISN = 0x1000
MAXSEG = 1000
COOKIES = {"queued": 1, "cookie": 2}     # tcp_syncookies: 2 answers every SYN with a cookie


@pytest.fixture(params=twin_params("wire"))
def wire(request, monkeypatch):
    """Run the TCP core with one twin of tcpio._fast.wire for the whole test."""
    mod = request.param
    for core in (tcp_ipv4, tcp_output, tcp_minisocks):
        for name in ("wire", "parse_tcp", "ParseError", "build_tcp", "TcpOptions"):
            if hasattr(core, name):
                monkeypatch.setattr(core, name, getattr(mod, name) if name != "wire" else mod)
    return mod


def _seg(flags: str, seq: int, ack: int = 0, options: list | None = None,
         window: int = 64240) -> bytes:
    """A client segment built by scapy (checksummed over the IPv4 pseudo-header)."""
    pkt = IP(src=ip_ntoa(REMOTE), dst=ip_ntoa(LOCAL)) / TCP(
        sport=RPORT, dport=LPORT, flags=flags, seq=seq, ack=ack, window=window,
        options=options or [])
    return bytes(pkt)[20:]


def _sent(host: FakeHost) -> list[TCP]:
    """What the stack sent since the last call, decoded by scapy."""
    out, host.sent = host.sent, []
    return [TCP(seg) for (_src, _dst, seg) in out]


def _options(th: TCP) -> dict:
    """scapy's option list as {name: value} (every option we send has a name)."""
    return {k: v for k, v in th.options if isinstance(k, str)}


def _mss_option(th: TCP) -> int | None:
    return _options(th).get("MSS")


def _linux_syn_options(mss: int | None, ts_val: int = 7000) -> list:
    """The options a Linux client puts on its SYN (MSS, SACK_PERM, TS, NOP, WS)."""
    opts: list = [("MSS", mss)] if mss is not None else []
    return opts + [("SAckOK", b""), ("Timestamp", (ts_val, 0)), ("NOP", None), ("WScale", 7)]


def _syn_options(client_mss: int | None, timestamps: bool) -> list:
    options = _linux_syn_options(client_mss)
    return options if timestamps else [o for o in options if o[0] != "Timestamp"]


def _third_ack(synack: TCP) -> tuple[list, int]:
    """(options, window) of the client's ACK of ``synack``: it echoes the
    timestamp, and offers 64256 bytes of window, scaled by its 7 if the SYN-ACK
    agreed to scaling (a cookie without timestamps cannot)."""
    got = _options(synack)
    ack_opts = []
    if "Timestamp" in got:
        ack_opts = [("NOP", None), ("NOP", None), ("Timestamp", (7001, got["Timestamp"][0]))]
    return ack_opts, 502 if "WScale" in got else 64256


def _listener(host: FakeHost, user_mss: int | None):
    ls = host.tcp.socket()
    if user_mss is not None:
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, user_mss)
    ls.bind(0, LPORT)
    ls.listen(8)
    return ls


def _handshake(mode: str, user_mss: int | None, client_mss: int | None, *,
               timestamps: bool = True):
    """Listener with ``user_mss`` (None: not set); a client SYN offering
    ``client_mss`` (None: no MSS option).  Returns (host, SYN-ACK, child)."""
    host = FakeHost(settings=Settings(tcp_syncookies=COOKIES[mode]))
    ls = _listener(host, user_mss)
    host.deliver(REMOTE, LOCAL, _seg("S", CLIENT_ISN, options=_syn_options(client_mss,
                                                                        timestamps)))
    (synack,) = _sent(host)
    assert synack.flags == "SA"
    assert (host.mib["SyncookiesSent"] == 1) == (mode == "cookie")
    ack_opts, window = _third_ack(synack)
    host.deliver(REMOTE, LOCAL, _seg("A", CLIENT_ISN + 1, synack.seq + 1, ack_opts, window))
    assert (host.mib["SyncookiesRecv"] == 1) == (mode == "cookie")
    child = ls.accept()
    assert child is not None and child.state == TCP_ESTABLISHED
    return host, synack, child


def _data_sizes(host: FakeHost, child, n: int = 4000) -> list[int]:
    """Payload sizes of the segments the child sends for ``n`` bytes (the
    client's 64 KB window and an initial cwnd of 10 even 524-byte segments
    let all 4000 bytes go at once)."""
    _sent(host)
    assert child.sendmsg(b"x" * n) == n
    return [len(th.payload) for th in _sent(host) if len(th.payload)]


@pytest.mark.parametrize("mode", COOKIES)
def test_synack_advertises_the_listener_maxseg(wire, mode):
    _host, synack, _child = _handshake(mode, MAXSEG, 1460)
    assert _mss_option(synack) == MAXSEG       # Linux: MSS 1000 (tcp_mss_clamp)


@pytest.mark.parametrize("mode", COOKIES)
def test_without_maxseg_the_synack_advertises_the_route_mss(wire, mode):
    _host, synack, child = _handshake(mode, None, 1460)
    assert _mss_option(synack) == 1500 - 40
    assert child.advmss == 1460 and child.opts.user_mss == 0


@pytest.mark.parametrize("mode,mss_clamp", [("queued", MAXSEG), ("cookie", 536)])
def test_child_inherits_maxseg_and_sends_at_most_that(wire, mode, mss_clamp):
    host, _synack, child = _handshake(mode, MAXSEG, 1460)
    assert child.opts.user_mss == MAXSEG                  # sk_clone_lock copies it
    assert child.advmss == MAXSEG                    # tcp_v4_syn_recv_sock
    # The client offered 1460; our TCP_MAXSEG bounds it (tcp_parse_options), and
    # a cookie can only carry the table entry below 1000.
    assert child.mss_clamp == mss_clamp
    mss_cache = mss_clamp - 12                       # the timestamp option's 12 bytes
    assert child.mss_cache == mss_cache
    assert child.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == mss_cache
    sizes = _data_sizes(host, child)
    assert max(sizes) == mss_cache and sum(sizes) == 4000


@pytest.mark.parametrize("mode,mss_clamp", [("queued", 800), ("cookie", 536)])
def test_a_smaller_client_mss_wins_but_the_synack_still_says_maxseg(wire, mode, mss_clamp):
    host, synack, child = _handshake(mode, MAXSEG, 800)
    assert _mss_option(synack) == MAXSEG     # what we advertise does not echo theirs
    assert child.mss_clamp == mss_clamp
    assert max(_data_sizes(host, child)) == child.mss_cache == mss_clamp - 12


@pytest.mark.parametrize("mode", COOKIES)
def test_maxseg_above_the_route_mss_changes_nothing(wire, mode):
    host, synack, child = _handshake(mode, 5000, 1460)
    assert _mss_option(synack) == 1460
    assert child.advmss == 1460
    # The cookie table's top entry is 1460 too, so both paths send 1448.
    assert child.mss_clamp == 1460 and child.mss_cache == 1448
    assert max(_data_sizes(host, child)) == 1448


@pytest.mark.parametrize("mode", COOKIES)
@pytest.mark.parametrize("user_mss", [MAXSEG, 300])
def test_syn_without_mss_option(wire, mode, user_mss):
    # RFC 9293 3.7.1: no MSS option means 536.  Linux leaves that 536 unclamped
    # by user_mss (tcp_parse_options only bounds a received option), and still
    # advertises its own TCP_MAXSEG (measured: SYN-ACK MSS 300, child 536).
    host, synack, child = _handshake(mode, user_mss, None, timestamps=False)
    assert _mss_option(synack) == user_mss
    assert child.mss_clamp == 536
    if user_mss > 536:
        assert child.mss_cache == 536
        assert max(_data_sizes(host, child)) == 536


def test_syn_without_mss_option_ignores_a_smaller_maxseg_like_linux(wire):
    # Measured on Linux 6.18 over TAP: listener TCP_MAXSEG 300, a SYN without
    # an MSS option (no timestamps): the child's getsockopt(TCP_MAXSEG) is 536
    # and it sends 536-byte segments: user_mss bounds mss_clamp only when an
    # MSS option is read (tcp_parse_options), never mss_cache directly.
    host, _synack, child = _handshake("queued", 300, None, timestamps=False)
    assert child.mss_cache == 536
    assert max(_data_sizes(host, child)) == 536


def test_cookie_encodes_the_bounded_mss_not_the_option(wire):
    # With TCP_MAXSEG 1000 and MSS 1460 offered, the cookie must carry 536
    # (the largest table entry <= 1000), like Linux's cookie_v4_init_sequence
    # given the request's already bounded MSS; carrying 1460 would let the
    # child send 1448-byte segments past its own TCP_MAXSEG.
    from tcpio.core.tcp.syncookies import cookie_v4_check

    host, synack, _child = _handshake("cookie", MAXSEG, 1460)
    assert cookie_v4_check(host.secret, LOCAL, LPORT, REMOTE, RPORT, CLIENT_ISN,
                           synack.seq, host.now) == 536
