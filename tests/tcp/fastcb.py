"""Plumbing for tests that drive one twin of tcpio._fast.tcp_fast directly.

``make_cb(mod, **fields)`` builds a control block on ``mod.TcpCb`` (the pure
twin's plain attributes or the compiled twin's C fields) with every field the
fast paths read set to a plain established connection, then the overrides.
It does not depend on which TcpCb ``core.tcp.sock.TcpSock`` is built on, so
tests using it run both twins in both builds.

``hooks`` (a fixture factory, see ``hook_fixture``) replaces the module's
calls out to core.tcp with recorders and puts the real ones back afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from tcpio._fast import load_pure

wire = load_pure("wire")


class Timer:
    """The delayed-ACK timer as the fast path sees it: ``when`` and ``arm``."""

    def __init__(self) -> None:
        self.when: float | None = None
        self.armed: list[float] = []

    def arm(self, when: float) -> None:
        self.when = when
        self.armed.append(when)


class Settings:
    tcp_delack_min = 0.04
    tcp_pingpong_thresh = 1


class Host:
    def __init__(self) -> None:
        self.settings = Settings()
        self.woken: list[Any] = []

    def schedule_wakeup(self, sk: Any) -> None:
        self.woken.append(sk)


DEFAULTS: dict[str, Any] = {
    "state": 1, "ca_state": 0,
    "rcv_nxt": 100_000, "rcv_wup": 100_000, "rcv_wnd": 65535, "rcv_mss": 1460, "rcv_wscale": 0,
    "rcvbuf": 1 << 20, "window_clamp": 65535, "ofo_bytes": 0, "advmss": 1460, "quick": 0,
    "snd_una": 5000, "snd_nxt": 5000, "snd_wnd": 65535, "snd_wscale": 0,
    "ts_recent": 0, "ts_off": 0, "tstamp_ok": False, "got_data": True, "ack_pending": False, "dead": False,
    "rcv_tstamp": 0.0, "ts_recent_stamp": 0.0, "rcv_rtt": 0.0,
    "laddr": 0x0A000001, "raddr": 0x0A000002, "lport": 80, "rport": 40000,
    "snd_cwnd": 10, "packets_out": 0, "sacked_out": 0, "lost_out": 0, "retrans_out": 0,
    "snd_sml": 5000, "write_seq": 5000, "wq_seq": 5000, "nodelay": False, "is_cwnd_limited": False,
}


def make_cb(mod: Any, **fields: Any) -> Any:
    class Cb(mod.TcpCb):
        pass

    sk = Cb()
    sk.rq = mod.RcvQueue()
    sk.wq = mod.SndQueue()
    sk.rtx = []
    sk.ofo = []
    sk.urg_seq = None
    sk.host = Host()
    sk.delack_timer = Timer()
    for name, value in {**DEFAULTS, **fields}.items():
        setattr(sk, name, value)
    return sk


def queue_data(sk: Any, data: bytes) -> None:
    """Put ``data`` in the send queue after what is there (sendmsg's effect,
    with tcp_mark_push at the end of the write)."""
    sk.wq = type(sk.wq)(bytes(sk.wq) + data)
    sk.write_seq = sk.pushed_seq = (sk.write_seq + len(data)) & 0xFFFFFFFF


class Hooks:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def send_ack(self, sk: Any, now: float) -> None:
        self.calls.append(("send_ack", now))

    def data_sent_idle(self, sk: Any, now: float) -> None:
        # record what the sock looked like when the hook ran
        self.calls.append(("idle", now, sk.packets_out))

    def ack_predicted(self, sk: Any, *args: Any) -> None:
        self.calls.append(("ack_predicted", *args))

    def named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


def install_hooks(mod: Any) -> Any:
    """A generator for a fixture: recorders in, the real hooks back after."""
    from tcpio.core.tcp import tcp_input

    h = Hooks()
    mod.set_hooks(h.send_ack, h.data_sent_idle, h.ack_predicted)
    try:
        yield h
    finally:
        tcp_input.tcp_init_fast_hooks(mod)


def hook_fixture(twin_name: str = "tf"):
    """A function-scoped fixture ``hooks`` for the twin fixture ``twin_name``."""

    @pytest.fixture
    def hooks(request):
        mod = request.getfixturevalue(twin_name)
        yield from install_hooks(mod)

    return hooks


def parse_frame(frame: bytes) -> tuple[Any, Any, bytes]:
    """(IPv4 header, TCP header, payload) of a frame without Ethernet header."""
    frame = bytes(frame)
    iph = wire.parse_ipv4(frame, 0)
    off = iph.ihl * 4
    th = wire.parse_tcp(frame, off)
    return iph, th, frame[off + th.doff * 4:iph.total_length]
