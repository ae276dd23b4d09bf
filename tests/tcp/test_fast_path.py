"""The established-state receive fast path (tcpio._fast.tcp_fast, called from
the rx classifier): header prediction must be a pure optimisation.

Two kinds of evidence:
- differential: the same seeded transfers over a VirtualNetwork (clean, and
  with loss, reordering and duplication; data both ways) put exactly the same
  frames on the wire, byte for byte, and move exactly the same counters,
  whether segments take the compiled fast path, its pure twin, or no fast
  path at all (everything through tcp_input's Python state machine);
- per rule: each condition of header prediction (RFC 9293 3.10.7.4's order
  of checks as Linux's tcp_rcv_established short-cuts it; RFC 7323 PAWS)
  declines the segment without touching the sock, and an accepted segment
  does what the slow path does: bytes queued, rcv_nxt moved, ts_recent
  taken, an ACK for every second full segment and a delayed ACK otherwise.
"""

from __future__ import annotations

import hashlib
import random
import socket

import pytest

from tcpio import _fast
from tcpio._fast import load_compiled, load_pure
from tcpio.core import host as host_mod
from tcpio.core.addr import ip6_aton
from tcpio.core.in_h import AF_INET6
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp import tcp_input, tcp_ipv4, tcp_output
from tcpio.core.tcp.inet6_addr import V6MASK
from tcpio.core.tcp.sock import TcpSock
from tcpio.core.tcp.tcp_output import tcp_send_ack
from tcpio.core.tcp.tcp_states import (
    TCP_CA_DISORDER,
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
)
from tcpio.devices.impair import Impairment

from .helpers import ACK, FIN, PSH, SYN, URG, TcpOptions, passive_open, sim_connect

rx_py = load_pure("rx")
fast_py = load_pure("tcp_fast")
fast_c = load_compiled("tcp_fast")
rx_c = load_compiled("rx")

# TcpSock derives from whichever TcpCb tcpio._fast.load picked at import; the
# compiled fast path only takes socks built on the compiled TcpCb.
SOCK_IS_COMPILED = fast_c is not None and issubclass(TcpSock, fast_c.TcpCb)


def _flavours() -> list:
    out = [pytest.param("pure", id="pure"), pytest.param("off", id="off")]
    reason = ("tcpio._fast.tcp_fast not built" if fast_c is None else
              "TcpSock is built on the pure TcpCb in this run (TCPIO_NO_EXTENSIONS=1)")
    out.append(pytest.param("compiled", id="compiled",
                            marks=() if SOCK_IS_COMPILED else pytest.mark.skip(reason=reason)))
    return out


def _no_fast(*_args, **_kw) -> bool:
    return False


@pytest.fixture
def flavour(request, monkeypatch):
    """Route every segment through one implementation of the fast path."""
    name = request.param
    if name == "compiled":
        fast, rx = fast_c, (rx_c or rx_py)
    elif name == "pure":
        fast, rx = fast_py, rx_py
        monkeypatch.setattr(rx_py, "_TcpCb", fast_py.TcpCb if not SOCK_IS_COMPILED
                            else fast_c.TcpCb)
        monkeypatch.setattr(rx_py, "_rcv_established", fast_py.rcv_established)
        monkeypatch.setattr(rx_py, "_rcv_window_ack", fast_py.rcv_window_ack)
    else:
        fast, rx = None, rx_py
    if fast is not None:
        # the hooks production installs (the bare-ACK bypass and the ACK
        # coalescing on: set_hooks alone leaves them off)
        tcp_input.tcp_init_fast_hooks(fast)
        monkeypatch.setattr(tcp_input, "rcv_established_fast", fast.rcv_established)
        monkeypatch.setattr(tcp_input, "rcv_window_ack_fast", fast.rcv_window_ack)
        monkeypatch.setattr(host_mod, "rx_classify", rx.rx_classify)
        monkeypatch.setattr(tcp_output, "_tcp_fast", fast)
        monkeypatch.setattr(tcp_input, "clean_rtx_queue_walk", fast.clean_rtx_queue)
        monkeypatch.setattr(tcp_input, "ack_fast", fast.ack_fast)
    else:
        monkeypatch.setattr(tcp_input, "rcv_established_fast", _no_fast)
        monkeypatch.setattr(tcp_input, "rcv_window_ack_fast", _no_fast)
        # and the send side's compiled loop: every segment through tcp_transmit_skb
        monkeypatch.setattr(tcp_output, "_tcp_xmit_path", lambda sk, mss: None)

        def classify_without_fast_path(frame, mac, local, bcast, verify_tcp=True,
                                       ehash=None, now=0.0, lo=False, syn=None, v6=None):
            return rx_py.rx_classify(frame, mac, local, bcast, verify_tcp)

        monkeypatch.setattr(host_mod, "rx_classify", classify_without_fast_path)
    return name


# --- differential: same frames, same counters ------------------------------------------------

def _sim_connect6(net: VirtualNetwork, link, a, b, port: int = 80) -> tuple:
    """sim_connect over IPv6: fd00::1 on ``a``, fd00::2 on ``b`` (no DAD),
    an AF_INET6 client and listener; (client, accepted child), established."""
    a.add_address6(link.ifa, ip6_aton("fd00::1"), 64, nodad=True)
    b.add_address6(link.ifb, ip6_aton("fd00::2"), 64, nodad=True)
    listener = b.tcp.socket(AF_INET6)
    listener.bind(0, port)
    listener.listen(4)
    c = a.tcp.socket(AF_INET6)
    with pytest.raises(BlockingIOError):
        c.connect(ip6_aton("fd00::2"), port)
    assert net.run_until(lambda: listener.accept_queue and c.state == TCP_ESTABLISHED, 30)
    return c, listener.accept()


def _run_transfer(impair: bool, seed: int, family: int = 4, fin_early: bool = False,
                  chunks: bool = False) -> tuple[bytes, dict, dict, int]:
    """Data both ways on one connection (over IPv4, or IPv6 with ``family``
    6); returns (digest of every frame on the wire in order, a's MIB, b's
    MIB, segments delivered to b).  ``fin_early``: the client shuts its
    sending side as soon as its last byte is queued (most of it unsent: the
    FIN rides on the last data segment, and the client's ACKs arrive in
    FIN-WAIT-1), and the server closes after reading it all.  ``chunks``:
    the server reads irregular pieces at irregular times, so the window it
    advertises changes on many of its ACKs (issue 11)."""
    net = VirtualNetwork(seed=seed)
    a, b = net.host("a"), net.host("b")
    imp = (Impairment(loss=0.03, reorder=0.05, duplicate=0.01, seed=seed)
           if impair else None)
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", impairment=imp,
                    impairment_ba=Impairment(loss=0.03, seed=seed + 1) if impair else None)
    if family == 6:
        c, s = _sim_connect6(net, link, a, b)
        # every data segment must have crossed as IPv6
        assert c.raddr > V6MASK and s.raddr > V6MASK
    else:
        c, s = sim_connect(net, a, b)
    rng = random.Random(seed)
    up, down = rng.randbytes(600_000), rng.randbytes(150_000)
    got_up, got_down = bytearray(), bytearray()
    sent = [0, 0]

    def pump() -> bool:
        if sent[0] < len(up):
            sent[0] += c.sendmsg(memoryview(up)[sent[0]:sent[0] + 65536])
            if fin_early and sent[0] == len(up):
                c.shutdown(socket.SHUT_WR)
        if sent[1] < len(down) and len(got_up) > 100_000:
            sent[1] += s.sendmsg(memoryview(down)[sent[1]:sent[1] + 8192])
        if chunks:
            if s.readable() and rng.random() < 0.3:
                got_up.extend(s.recvmsg(rng.randrange(1, 10000)))
        else:
            while s.readable() and (data := s.recvmsg(1 << 20)):
                got_up.extend(data)
        while c.readable() and (data := c.recvmsg(1 << 20)):
            got_down.extend(data)
        return len(got_up) == len(up) and len(got_down) == len(down)

    assert net.run_until(pump, 600)
    assert bytes(got_up) == up and bytes(got_down) == down
    if fin_early:
        assert net.run_until(lambda: s.rcv_eof, 60)
        s.close()
        c.close()
        net.run_for(130)            # both FINs acknowledged, TIME-WAIT ends
        assert c.state == s.state == TCP_CLOSE
    h = hashlib.sha256()
    for when, frame in link.capture:
        h.update(repr(when).encode())
        h.update(bytes(frame))
    return h.digest(), a.mib.snapshot(), b.mib.snapshot(), len(link.capture)


_REFERENCE: dict = {}


def _counting(fn, counts: dict, key: str):
    """``fn`` adding what it returns (segments sent, or True if taken) to counts[key]."""
    def wrapper(*args):
        n = fn(*args)
        counts[key] += n
        return n
    return wrapper


def _counted_connection(monkeypatch, fast, family: int, seed: int) -> tuple:
    """(net, a, b, client, accepted child) over a clean link, every frame
    through the pure classifier (whose calls of ``fast`` a test can count)."""
    monkeypatch.setattr(rx_py, "_TcpCb", fast.TcpCb)
    monkeypatch.setattr(host_mod, "rx_classify", rx_py.rx_classify)
    net = VirtualNetwork(seed=seed)
    a, b = net.host("a"), net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    c, s = _sim_connect6(net, link, a, b) if family == 6 else sim_connect(net, a, b)
    return net, a, b, c, s


@pytest.mark.parametrize("chunks", [False, True], ids=["read_all", "read_chunks"])
@pytest.mark.parametrize("fin_early", [False, True], ids=["open", "fin_queued"])
@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("impair", [False, True], ids=["clean", "lossy"])
@pytest.mark.parametrize("flavour", _flavours(), indirect=True)
def test_same_frames_and_counters_with_and_without_fast_path(flavour, impair, family,
                                                               fin_early, chunks):
    result = _run_transfer(impair, seed=11, family=family, fin_early=fin_early, chunks=chunks)
    # Every flavour must agree with the one that ran first (order-independent:
    # pytest may run any flavour first, and each is checked against the same
    # deterministic scenario).
    ref = _REFERENCE.setdefault((impair, family, fin_early, chunks), (flavour, result))
    assert result[3] > 400
    assert result[1] == ref[1][1], f"a's counters differ from the {ref[0]} run"
    assert result[2] == ref[1][2], f"b's counters differ from the {ref[0]} run"
    assert result[0] == ref[1][0], f"the frames on the wire differ from the {ref[0]} run"


@pytest.mark.parametrize("fin_early", [False, True], ids=["open", "fin_queued"])
@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_fast_path_takes_the_bulk_of_a_clean_transfer(monkeypatch, family, fin_early):
    """The point of it: on a clean one-way transfer almost every data segment
    is sent by the compiled send loop (write_xmit) and handled on arrival by
    rcv_established (the receive fast path), over IPv6 as over IPv4 (issue 17).
    ``fin_queued``: the sender shut its sending side right after its last
    write, with most of the data unsent (issue 11's flows): the FIN does not
    send the rest of the transfer and its ACKs (in FIN-WAIT-1) to the slow
    paths."""
    fast = _fast.load("tcp_fast")
    calls = {"taken": 0, "declined": 0, "acks": 0}
    real = fast.rcv_established

    states = []     # the sender's state for each bare ACK a fast path took

    def counting(*args):
        state = args[0].state
        ok = real(*args)
        if len(args[7]):            # data segments (bare ACKs go this way too)
            calls["taken" if ok else "declined"] += 1
        elif ok:
            calls["acks"] += 1      # bare ACKs the prediction accepted
            states.append(state)
        return ok

    real_window_ack = fast.rcv_window_ack

    def window_ack(*args):
        state = args[0].state
        ok = real_window_ack(*args)
        if ok:
            states.append(state)
        return ok

    burst = {"segments": 0}
    # (write_burst: the send loop, write_xmit, with its TTL and TSO limits)
    monkeypatch.setattr(fast, "write_burst", _counting(fast.write_burst, burst, "segments"))
    # Count through the pure classifier so every fast-path attempt is visible.
    monkeypatch.setattr(rx_py, "_rcv_established", counting)
    monkeypatch.setattr(rx_py, "_rcv_window_ack", window_ack)
    net, a, b, c, s = _counted_connection(monkeypatch, fast, family, seed=3)
    data = bytes(2_000_000)
    sent, got = 0, 0

    slow = []
    real_slow = tcp_ipv4.tcp_rcv_state_process

    def slow_state(sk, skb, now):
        slow.append((sk.state, len(skb.data)))
        return real_slow(sk, skb, now)

    monkeypatch.setattr(tcp_ipv4, "tcp_rcv_state_process", slow_state)

    def pump() -> bool:
        nonlocal sent, got
        if sent < len(data):
            sent += c.sendmsg(memoryview(data)[sent:sent + 65536])
            if fin_early and sent == len(data):
                c.shutdown(socket.SHUT_WR)
        while s.readable() and (chunk := s.recvmsg(1 << 20)):
            got += len(chunk)
        return got == len(data)

    try:
        assert net.run_until(pump, 120)
    finally:
        tcp_input.tcp_init_fast_hooks()
    if fin_early:
        assert net.run_until(lambda: s.rcv_eof, 10)
        # the FIN went with the last data segment (no segment of its own)
        assert c.snd_nxt == (c.write_seq + 1) & 0xFFFFFFFF
        # ... and the ACKs that reached the sender in FIN-WAIT-1 (all but the
        # one acknowledging the FIN) were predicted, not the state machine's
        predicted = states.count(TCP_FIN_WAIT1)
        assert predicted > 100 and slow.count((TCP_FIN_WAIT1, 0)) <= 1, (predicted, slow)
    segments = len(data) // (1428 if family == 6 else 1448)     # MSS - 12 (timestamps)
    assert calls["taken"] >= segments * 0.95, calls
    # ...and most of the receiver's ACKs (about one per two segments) too
    assert calls["acks"] >= segments * 0.3, calls
    assert b.mib["InSegs"] >= calls["taken"]
    # ...and the sender built almost all of them in the compiled send loop.
    assert burst["segments"] >= segments * 0.95, burst
    assert a.mib["OutSegs"] >= burst["segments"]
    if family == 6:
        # every one of them an IPv6 datagram, counted as the layered path would
        assert b.mib["Ip6InReceives"] >= calls["taken"]
        assert a.mib["Ip6OutRequests"] >= burst["segments"]
        assert b.mib["InReceives"] < 10 and a.mib["OutRequests"] < 10


@pytest.mark.parametrize("classifier", [
    pytest.param("pure", id="rx_py"),
    pytest.param("compiled", id="rx_c", marks=() if SOCK_IS_COMPILED and rx_c is not None
                 else pytest.mark.skip(reason="compiled build only: the compiled classifier and TcpCb not both in use"))])
@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_request_response_data_takes_the_classifiers_fast_path(monkeypatch, family,
                                                               classifier):
    """Issue 12's 1-byte echo: each request acknowledges the last answer, so
    every data segment after the first acknowledges new data.  Linux's
    tcp_rcv_established takes it on its fast path (queue the data, then
    tcp_ack with FLAG_DATA), and so does the classifier's call (before, it
    went the layered way: parse, Skb, a second lookup, then the same
    prediction).  TCP_INFO's segs_in still counts each segment once: during
    the exchange each side's grows by what the other sent."""
    fast = _fast.load("tcp_fast")
    net, _, _, c, s = _counted_connection(monkeypatch, fast, family, seed=5)
    if classifier == "compiled":
        monkeypatch.setattr(host_mod, "rx_classify", rx_c.rx_classify)
    layered: list[int] = []
    real = tcp_ipv4.tcp_rcv_established

    def counting(sk, skb, now):
        layered.append(len(skb.data))
        return real(sk, skb, now)

    monkeypatch.setattr(tcp_ipv4, "tcp_rcv_established", counting)
    rounds = 50
    before = c.segs_in, c.segs_out, s.segs_in, s.segs_out
    for _ in range(rounds):
        assert c.sendmsg(b"q") == 1
        assert net.run_until(lambda: s.readable(), 5)
        assert s.recvmsg(10) == b"q"
        assert s.sendmsg(b"a") == 1
        assert net.run_until(lambda: c.readable(), 5)
        assert c.recvmsg(10) == b"a"
    assert [n for n in layered if n] == [], layered
    net.run_for(1)          # the last answer's delayed ACK
    c_in, c_out, s_in, s_out = (now - then for now, then in zip(
        (c.segs_in, c.segs_out, s.segs_in, s.segs_out), before))
    assert (c_in, s_in) == (s_out, c_out)
    assert s_in >= rounds


@pytest.mark.parametrize("family", [4, 6], ids=["ipv4", "ipv6"])
def test_window_update_acks_take_the_compiled_slow_path(monkeypatch, family):
    """Issue 11: a receiver that reads irregular pieces at irregular times
    advertises a different window on many of its ACKs.  Header prediction declines those
    (the window is part of Linux's pred_flags); what the slow path does for
    such an in-order bare ACK (tcp_ack, tcp_data_snd_check,
    tcp_ack_snd_check) runs in tcp_fast.rcv_window_ack instead of
    tcp_rcv_state_process, on the sender's side (the frames and counters
    are the layered path's: test_same_frames_and_counters_..., read_chunks)."""
    fast = _fast.load("tcp_fast")
    calls = {"window_acks": 0}
    monkeypatch.setattr(rx_py, "_rcv_window_ack",
                        _counting(fast.rcv_window_ack, calls, "window_acks"))
    net, _a, _b, c, s = _counted_connection(monkeypatch, fast, family, seed=5)
    slow = []
    real_slow = tcp_ipv4.tcp_rcv_state_process

    def slow_state(sk, skb, now):
        if sk is c and not skb.data and skb.flags == ACK:
            slow.append(skb.window << sk.snd_wscale != sk.snd_wnd)
        return real_slow(sk, skb, now)

    monkeypatch.setattr(tcp_ipv4, "tcp_rcv_state_process", slow_state)
    windows = []
    rng = random.Random(5)
    data = bytes(1_000_000)
    sent, got = 0, 0

    def pump() -> bool:
        nonlocal sent, got
        if sent < len(data):
            sent += c.sendmsg(memoryview(data)[sent:sent + 65536])
        if s.readable() and rng.random() < 0.3:
            got += len(s.recvmsg(rng.randrange(1, 10000)))
            windows.append(s.rcv_wnd)
        return got == len(data)

    assert net.run_until(pump, 120)
    # the receiver's window moved (else this test would show nothing)
    assert len(set(windows)) > 10, sorted(set(windows))
    segments = len(data) // (1428 if family == 6 else 1448)
    # ... a good part of its ACKs (about one per two segments) were window
    # updates, taken by the new path
    assert calls["window_acks"] >= segments * 0.15, (calls, len(slow))
    # ... and (almost) none of the window-changing bare ACKs took the state machine
    assert slow.count(True) <= 2, (calls, slow.count(True), len(slow))


# --- per rule ------------------------------------------------------------------------------------

def _conn():
    """An established child with timestamps, MSS 1460 and an idle send side."""
    conn = passive_open(syn_opts=TcpOptions(mss=1460, wscale=7, sack_ok=True, ts_val=4000,
                                            ts_ecr=0))
    conn.tsval = 4001
    return conn


def _send(conn, payload: bytes, flags: int = ACK | PSH, ts: int | None = None, **kw) -> None:
    if ts is None:
        conn.tsval += 1
        ts = conn.tsval
    conn.send(payload, flags=flags, opts=TcpOptions(ts_val=ts, ts_ecr=0), **kw)


_FIELDS = ("rcv_nxt", "rcv_wup", "rcv_wnd", "rcv_mss", "ts_recent", "ts_recent_stamp",
           "rcv_tstamp", "rcv_rtt", "quick", "ack_pending", "got_data", "snd_una", "snd_wnd",
           "state")


def _snapshot(sk) -> dict:
    out = {f: getattr(sk, f) for f in _FIELDS}
    out["rq"] = bytes(sk.rq)
    return out


def _impl(flavour: str):
    return {"pure": fast_py, "compiled": fast_c}[flavour]


@pytest.mark.parametrize("flavour", [p for p in _flavours() if p.id != "off"], indirect=True)
class TestHeaderPrediction:
    def _call(self, conn, payload, *, seq=None, ack=None, window=None, ts=True, ts_val=None):
        sk = conn.sk
        fast = _impl(self.flavour)
        win = (sk.snd_wnd >> sk.snd_wscale) if window is None else window
        conn.tsval += 1
        return fast.rcv_established(
            sk, conn.snd if seq is None else seq, sk.snd_una if ack is None else ack, win,
            ts, conn.tsval if ts_val is None else ts_val, 0, payload, conn.host.now)

    @pytest.fixture(autouse=True)
    def _setup(self, flavour):
        self.flavour = flavour

    def test_in_order_segment_is_queued_and_acked_every_second_segment(self):
        conn = _conn()
        sk = conn.sk
        conn.recv()
        sk.quick = 0            # past the quick-ACK start: delayed ACKs apply
        sk.got_data = True
        start = sk.rcv_nxt
        assert self._call(conn, b"a" * 1460)
        conn.snd += 1460
        assert sk.rcv_nxt == (start + 1460) & 0xFFFFFFFF
        assert bytes(sk.rq) == b"a" * 1460
        assert sk.ts_recent == conn.tsval
        # RFC 1122 4.2.3.2 / Linux: the first full segment is not ACKed at once...
        assert conn.recv() == []
        assert sk.delack_timer.pending and sk.ack_pending
        # ...the second one is.
        assert self._call(conn, b"b" * 1460)
        conn.snd += 1460
        acks = conn.recv()
        assert [(s.flags, s.ack) for s in acks] == [(ACK, (start + 2920) & 0xFFFFFFFF)]
        assert not sk.ack_pending and not sk.delack_timer.pending

    def test_first_data_enters_quickack_mode(self):
        conn = _conn()
        conn.recv()
        sk = conn.sk
        assert not sk.got_data
        assert self._call(conn, b"x" * 100)
        # tcp_event_data_recv -> tcp_incr_quickack: ACK at once at the start.
        assert [s.ack for s in conn.recv()] == [sk.rcv_nxt]
        assert sk.got_data and sk.rcv_mss >= 88

    @pytest.mark.parametrize("rule", ["seq", "ack_new", "ack_old", "window", "paws", "no_ts",
                                      "ofo", "urg", "ca_state", "zero_window", "state",
                                      "bare_ack_old", "bare_ack_unsent"])
    def test_declined_segment_changes_nothing(self, rule):
        conn = _conn()
        conn.recv()
        sk = conn.sk
        kw: dict = {}
        payload = b"z" * 500
        if rule == "seq":
            kw["seq"] = (conn.snd + 1) & 0xFFFFFFFF
        elif rule == "ack_new":
            kw["ack"] = (sk.snd_una + 1) & 0xFFFFFFFF
        elif rule == "ack_old":
            kw["ack"] = (sk.snd_una - 1) & 0xFFFFFFFF
        elif rule == "window":
            kw["window"] = (sk.snd_wnd >> sk.snd_wscale) - 1
        elif rule == "paws":
            kw["ts_val"] = (sk.ts_recent - 1) & 0xFFFFFFFF
        elif rule == "no_ts":
            kw["ts"] = False
        elif rule == "bare_ack_old":
            payload = b""
            kw["ack"] = (sk.snd_una - 1) & 0xFFFFFFFF
        elif rule == "bare_ack_unsent":
            payload = b""
            kw["ack"] = (sk.snd_nxt + 1) & 0xFFFFFFFF
        elif rule == "ofo":
            sk.ofo = [[(conn.snd + 1000) & 0xFFFFFFFF, (conn.snd + 1010) & 0xFFFFFFFF,
                       b"q" * 10, 0]]
        elif rule == "urg":
            sk.urg_seq = conn.snd
        elif rule == "ca_state":
            sk.ca_state = TCP_CA_DISORDER
        elif rule == "zero_window":
            sk.rcv_wnd = 0
            sk.rcv_wup = sk.rcv_nxt
        elif rule == "state":
            sk.state = TCP_CLOSE_WAIT
        before = _snapshot(sk)
        assert not self._call(conn, payload, **kw)
        assert _snapshot(sk) == before
        assert conn.recv() == []


@pytest.mark.parametrize("flags", [ACK | FIN, ACK | SYN, ACK | URG, PSH])
@pytest.mark.parametrize("flavour", _flavours(), indirect=True)
def test_classifier_leaves_unusual_flags_to_the_state_machine(flavour, flags):
    """FIN, SYN, URG or no ACK: never the fast path (the slow path's answer,
    e.g. FIN -> CLOSE_WAIT, must happen)."""
    conn = _conn()
    conn.recv()
    sk = conn.sk
    _send(conn, b"d" * 10, flags=flags)
    if flags == ACK | FIN:
        assert sk.state == TCP_CLOSE_WAIT and bytes(sk.rq) == b"d" * 10
    elif flags == PSH:
        assert bytes(sk.rq) == b""          # RFC 9293: no ACK bit, drop
    else:
        assert sk.state == TCP_ESTABLISHED


def test_select_window_twins_agree():
    """__tcp_select_window: both twins give the same window for the same sock."""
    if not SOCK_IS_COMPILED:
        pytest.skip("the compiled twin needs socks built on the compiled TcpCb")
    rng = random.Random(5)
    conn = _conn()
    sk = conn.sk
    for _ in range(2000):
        sk.rcv_mss = rng.choice([88, 536, 1448, 1460, 9000])
        sk.advmss = rng.choice([536, 1460, 8960, 65495])
        sk.rcvbuf = rng.randrange(2304, 1 << 24)
        sk.window_clamp = rng.choice([65535, 65535 << 7, 65535 << 14, rng.randrange(1, 1 << 30)])
        sk.rcv_wscale = rng.randrange(0, 15)
        sk.rcv_wnd = rng.randrange(0, 1 << 24)
        sk.ofo_bytes = rng.randrange(0, 1 << 16)
        sk.rq = fast_c.RcvQueue(bytes(rng.randrange(0, 1 << 18)))
        assert fast_c.select_window(sk) == fast_py.select_window(sk)


def _random_queue(rng: random.Random, TxSeg) -> tuple[list, dict]:
    """A retransmit queue of 1..30 segments from snd_una (random sizes, SACK
    bits, retransmission counts and send times) and the counters that go with it."""
    una = rng.randrange(1 << 32)
    seq = una
    rtx = []
    counts = {"sacked_out": 0, "lost_out": 0, "retrans_out": 0}
    for _ in range(rng.randrange(1, 30)):
        end = (seq + rng.choice([1, 100, 1448])) & 0xFFFFFFFF
        seg = TxSeg(seq, end, 0, rng.random() * 100)
        seg.sacked = rng.choice([0, 0, 1, 2, 4, 6])
        seg.retrans = rng.choice([0, 0, 1, 2])
        counts["sacked_out"] += seg.sacked & 1
        counts["lost_out"] += bool(seg.sacked & 4 and not seg.sacked & 1)
        counts["retrans_out"] += bool(seg.sacked & 2)
        rtx.append(seg)
        seq = end
    return rtx, {"una": una, "end": seq, **counts}


def test_clean_rtx_queue_twins_agree():
    """tcp_clean_rtx_queue's walk: both twins, on the same random queues and
    ACKs, return the same (acked, first_tx, retrans_acked) and leave the same
    queue, counters and send buffer."""
    if not SOCK_IS_COMPILED:
        pytest.skip("the compiled twin needs socks built on the compiled TcpCb")
    rng = random.Random(9)
    for _ in range(500):
        state = rng.getstate()
        results = []
        for impl in (fast_py, fast_c):
            rng.setstate(state)
            rtx, q = _random_queue(rng, impl.TxSeg)
            ends = [s.end_seq for s in rtx]
            sk = TcpSock(_conn().host.tcp)
            sk.rtx = rtx
            sk.packets_out = len(rtx)
            sk.sacked_out, sk.lost_out, sk.retrans_out = (q["sacked_out"], q["lost_out"],
                                                          q["retrans_out"])
            sk.wq_seq = q["una"]
            sk.write_seq = q["end"]
            sk.wq = type(sk.wq)(rng.randbytes(min((q["end"] - q["una"]) & 0xFFFFFFFF, 50000)))
            sk.write_seq = (q["una"] + len(sk.wq)) & 0xFFFFFFFF
            sk.snd_una = (q["una"] + rng.randrange(0, ((q["end"] - q["una"]) & 0xFFFFFFFF) + 1)) \
                & 0xFFFFFFFF
            out = impl.clean_rtx_queue(sk)
            results.append((out, [(s.seq, s.end_seq, s.sacked) for s in sk.rtx],
                            sk.packets_out, sk.sacked_out, sk.lost_out, sk.retrans_out,
                            sk.wq_seq, bytes(sk.wq)))
        assert results[0] == results[1]
        # and against the rule itself: exactly the segments ending at or before
        # snd_una go, and the send buffer now starts at snd_una (or write_seq)
        n = results[0][0][0]
        una = sk.snd_una
        assert n == sum(1 for e in ends if (una - e) & 0xFFFFFFFF < 0x80000000)
        assert sk.wq_seq == (una if (sk.write_seq - una) & 0xFFFFFFFF < 0x80000000
                             else sk.write_seq)


@pytest.mark.parametrize("flavour", [p for p in _flavours() if p.id != "off"], indirect=True)
def test_bare_ack_prediction_runs_tcp_ack(flavour):
    """A bare in-window ACK of sent data: accepted, timestamps taken, then
    tcp_ack (through the hook) frees the acknowledged bytes and segments."""
    fast = _impl(flavour)
    conn = _conn()
    sk = conn.sk
    conn.recv()
    sk.nodelay = True
    assert sk.sendmsg(b"p" * 3000) == 3000
    sent = conn.recv()
    assert sum(len(s.payload) for s in sent) == 3000 and sk.packets_out == len(sent)
    una = sk.snd_una
    conn.tsval += 1
    ok = fast.rcv_established(sk, conn.snd, (una + 1448) & 0xFFFFFFFF,
                              sk.snd_wnd >> sk.snd_wscale, True, conn.tsval, 0, b"",
                              conn.host.now)
    assert ok
    assert sk.snd_una == (una + 1448) & 0xFFFFFFFF
    assert sk.packets_out == len(sent) - 1 and len(sk.wq) == 3000 - 1448
    assert sk.ts_recent == conn.tsval
    # Nothing outstanding and nothing new: accepted, only the bookkeeping.
    conn.tsval += 1
    assert fast.rcv_established(sk, conn.snd, (una + 3000) & 0xFFFFFFFF,
                                sk.snd_wnd >> sk.snd_wscale, True, conn.tsval, 0, b"",
                                conn.host.now)
    assert sk.packets_out == 0 and not sk.wq
    before = _snapshot(sk)
    conn.tsval += 1
    assert fast.rcv_established(sk, conn.snd, sk.snd_una, sk.snd_wnd >> sk.snd_wscale, True,
                                conn.tsval, 0, b"", conn.host.now)
    after = _snapshot(sk)
    assert after.pop("ts_recent") == conn.tsval
    before.pop("ts_recent")
    assert after == before


@pytest.mark.parametrize("impl", [p for p in (fast_py, fast_c) if p is not None],
                         ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_queue_append_and_consume_behave_like_a_bytearray(impl):
    """buf_append/buf_consume (the send and receive queues' FIFO operations)
    give exactly the bytes of ``+=`` and ``del b[:n]``, keep the memory within
    a few times the content, and refuse to resize an exported buffer."""
    import sys
    rng = random.Random(1)
    for _ in range(300):
        ref = bytearray(rng.randbytes(rng.randrange(0, 5000)))
        q = bytearray(ref)
        for _ in range(40):
            op = rng.random()
            if op < 0.4:
                k = rng.randrange(0, len(ref) + 2)
                del ref[:k]
                impl.buf_consume(q, k)
            elif op < 0.5:
                k = rng.randrange(0, len(ref) + 1)
                del ref[len(ref) - k:]
                del q[len(q) - k:]
            else:
                data = rng.randbytes(rng.randrange(0, 300000))
                ref += data
                impl.buf_append(q, memoryview(data) if op < 0.75 else data)
            assert q == ref
            assert sys.getsizeof(q) <= 8 * len(q) + 600000
    with memoryview(q):
        with pytest.raises(BufferError):
            impl.buf_append(q, b"x")
        if len(q):
            with pytest.raises(BufferError):
                impl.buf_consume(q, 1)
    with pytest.raises(ValueError):
        impl.buf_consume(q, -1)
