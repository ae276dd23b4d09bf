"""The compiled TCP fast paths (tcp_fast, rx, host.receive_batch) against
their pure twins and the layered path.

Each test here states a rule the two twins (and the Python code they
replaced) must share, and checks it against something independent of the
code under test: the twin's result, the layered path's result, or "a bad
argument is an exception, never a crash".  Tests that crash the interpreter
when they fail run the probe in a child process.

- the twins agree on header prediction and window selection for random
  control blocks, with sequence numbers and timestamps near 2**32 (seeded);
- write_xmit's "send buffer shorter than write_seq" error leaves the sock
  as it found it (the pure twin checks before it commits, the compiled one
  after: phantom segment, snd_nxt moved, IP ID consumed);
- the def entry points of the compiled module take ``TcpCb``/``bytearray``
  typed arguments that Cython lets be None; None must raise like the twin,
  not dereference NULL (segfault) or read past None's object (garbage);
- a frame whose processing raises inside the receive fast path moves the
  same MIB counters as the layered path does for it (InReceives, InDelivers,
  InSegs, then CoreExceptions).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap

import pytest
from conftest import twin_fixture

from tcpio._fast import load_compiled, load_pure
from tcpio.core import host as host_mod
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp import tcp_input
from tcpio.core.tcp.sock import TcpSock

from .helpers import sim_connect

tf = twin_fixture("tcp_fast", "tf")

fast_py = load_pure("tcp_fast")
fast_c = load_compiled("tcp_fast")
rx_py = load_pure("rx")
rx_c = load_compiled("rx")
SOCK_IS_COMPILED = fast_c is not None and issubclass(TcpSock, fast_c.TcpCb)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# --- the twins on the same random control blocks --------------------------------------------

class _Timer:
    def __init__(self) -> None:
        self.when: float | None = None
        self.armed: list[float] = []

    def arm(self, when: float) -> None:
        self.when = when
        self.armed.append(when)


class _Settings:
    tcp_delack_min = 0.04
    tcp_pingpong_thresh = 1


class _Host:
    def __init__(self) -> None:
        self.settings = _Settings()
        self.wakeups = 0

    def schedule_wakeup(self, sk: object) -> None:
        self.wakeups += 1


_RCV_FIELDS = (
    "state", "ca_state", "rcv_nxt", "rcv_wup", "rcv_wnd", "rcv_mss", "rcv_wscale", "rcvbuf",
    "window_clamp", "ofo_bytes", "advmss", "quick", "pingpong", "snd_una", "snd_wnd", "snd_wscale",
    "ts_recent", "ts_off", "tstamp_ok", "got_data", "ack_pending", "dead", "rcv_tstamp",
    "ts_recent_stamp", "rcv_rtt",
)


def _random_cb(mod, rng: random.Random):
    """A control block with the fields rcv_established and the window
    selection read, biased to the edges (wraparound, zero windows, scaling)."""
    class Cb(mod.TcpCb):
        pass
    sk = Cb()
    base = rng.choice([0, 0xFFFFFFFF - 3000, 0x7FFFFFFF - 100, rng.randrange(1 << 32)])
    sk.state = rng.choice([1, 1, 1, 2])
    sk.ca_state = rng.choice([0, 0, 0, 1])
    sk.rcv_nxt = base
    sk.rcv_wup = (base - rng.randrange(0, 5000)) & 0xFFFFFFFF
    sk.rcv_wscale = rng.choice([0, 0, 2, 7, 14])
    sk.rcv_mss = rng.choice([536, 1448, 1460, 0, 1])
    sk.advmss = rng.choice([1460, 1448, 536, 88])
    sk.rcvbuf = rng.choice([100, 4096, 65536, 131072, 6291456])
    sk.window_clamp = rng.choice([65535 << 14, 65535, 3000, 0])
    sk.rcv_wnd = rng.choice([0, 1000, 65535, 65535 << 2, rng.randrange(1 << 20)])
    sk.ofo_bytes = rng.choice([0, 0, 100])
    sk.quick = rng.choice([0, 0, 1, 5])
    sk.pingpong = rng.choice([0, 0, 1])
    sk.snd_una = rng.randrange(1 << 32)
    sk.snd_nxt = sk.snd_una
    sk.snd_wscale = rng.choice([0, 7])
    sk.snd_wnd = rng.choice([65535, 65535 << 7, 1000])
    sk.ts_recent = rng.choice([0, 0xFFFFFFF0, rng.randrange(1 << 32)])
    sk.ts_off = rng.randrange(1 << 32)
    sk.tstamp_ok = rng.random() < 0.7
    sk.got_data = rng.random() < 0.5
    sk.ack_pending = False
    sk.dead = rng.random() < 0.1
    sk.rcv_tstamp = 0.0
    sk.ts_recent_stamp = 0.0
    sk.rcv_rtt = rng.choice([0.0, 0.05])
    sk.rq = mod.RcvQueue(bytes(rng.randrange(0, 3000)))
    sk.ofo = rng.choice([[], [], [(1, 2, b"x")]])
    sk.urg_seq = None
    sk.host = _Host()
    sk.delack_timer = _Timer()
    return sk


def _rcv_state(sk) -> dict:
    state = {name: getattr(sk, name) for name in _RCV_FIELDS}
    state.update(rq=bytes(sk.rq), wakeups=sk.host.wakeups, armed=list(sk.delack_timer.armed))
    return state


def _agreement_check(cases: int) -> None:
    """rcv_established, select_window and tcp_select_window give the same
    answer, make the same calls out and leave the same sock in both twins.
    Installs its own hooks: run it in a child process (see the test)."""
    calls: list = []

    def send_ack(sk, now):
        calls.append(("ack", now))

    def ack_predicted(sk, *args):
        calls.append(("ack_predicted", *args))

    for mod in (fast_py, fast_c):
        mod.set_hooks(send_ack, None, ack_predicted)
    try:
        _compare_cases(cases, calls)
    finally:
        # the real hooks back, for every test after this one in the process
        for mod in (fast_py, fast_c):
            tcp_input.tcp_init_fast_hooks(mod)


def _compare_cases(cases: int, calls: list) -> None:
    for case in range(cases):
        a = _random_cb(fast_py, random.Random(case))
        b = _random_cb(fast_c, random.Random(case))
        a.packets_out = b.packets_out = case % 3
        rng = random.Random(-case - 1)
        n = rng.choice([0, 1, 100, 1448, 1460, 3000])
        data = rng.randbytes(n)
        seq = rng.choice([a.rcv_nxt, a.rcv_nxt, (a.rcv_nxt + 1) & 0xFFFFFFFF])
        ack = rng.choice([a.snd_una, a.snd_una, (a.snd_una + 1) & 0xFFFFFFFF,
                          (a.snd_una - 1) & 0xFFFFFFFF])
        window = rng.choice([a.snd_wnd >> a.snd_wscale, 100])
        has_ts = rng.random() < 0.8
        ts_val = rng.choice([a.ts_recent, (a.ts_recent + 5) & 0xFFFFFFFF,
                             (a.ts_recent - 5) & 0xFFFFFFFF, rng.randrange(1 << 32)])
        ts_ecr = rng.choice([0, rng.randrange(1 << 32)])
        # 4294967.296 s is where the 1 ms timestamp clock wraps
        now = rng.choice([rng.uniform(0, 1e6), 0.0015, 4294967.2961, 3 * 4294967.296 + 0.5])
        calls.clear()
        took_py = fast_py.rcv_established(a, seq, ack, window, has_ts, ts_val, ts_ecr, data, now)
        calls_py = list(calls)
        calls.clear()
        took_c = fast_c.rcv_established(b, seq, ack, window, has_ts, ts_val, ts_ecr, data, now)
        assert (took_c, calls) == (took_py, calls_py), case
        assert _rcv_state(b) == _rcv_state(a), case
        assert fast_c.select_window(b) == fast_py.select_window(a), case
        assert fast_c.tcp_select_window(b) == fast_py.tcp_select_window(a), case
        assert _rcv_state(b) == _rcv_state(a), case


def test_twins_agree_on_header_prediction_and_windows():
    """_agreement_check on 20000 seeded control blocks, in a child process:
    it replaces the modules' hooks, which the rest of the suite relies on."""
    if fast_c is None:
        pytest.skip("tcpio._fast.tcp_fast not built")
    code = ("import sys\n"
            f"sys.path[:0] = [{REPO!r}, {os.path.join(REPO, 'tests')!r}]\n"
            "from tcp import test_fast_path_twin_rules as t\n"
            "t._agreement_check(20000)\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


# --- write_xmit: an error must not half-commit ----------------------------------------------

def _short_send_buffer_cb(mod):
    """A sock whose wq holds 1000 bytes though write_seq says 3000 are queued."""
    class Cb(mod.TcpCb):
        pass
    sk = Cb()
    sk.rtx = []
    sk.rcv_nxt = sk.rcv_wup = 1000
    sk.rcv_wnd = 65535
    sk.rcv_wscale = 0
    sk.rcv_mss = sk.advmss = 1460
    sk.rcvbuf = 1 << 20
    sk.window_clamp = 65535
    sk.ofo_bytes = 0
    sk.rq = mod.RcvQueue()
    sk.quick = sk.pingpong = 0
    sk.wq_seq = sk.snd_una = sk.snd_nxt = sk.snd_sml = 5000
    sk.wq = mod.SndQueue(bytes(1000))
    sk.write_seq = 8000
    # one segment already in flight, so the idle hook is not called
    sk.packets_out = 1
    sk.sacked_out = sk.lost_out = sk.retrans_out = 0
    sk.snd_cwnd = 10
    sk.snd_wnd = 65535
    sk.nodelay = True
    sk.is_cwnd_limited = False
    sk.tstamp_ok = False
    sk.ts_off = sk.ts_recent = 0
    sk.laddr, sk.raddr, sk.lport, sk.rport = 0x0A000002, 0x0A000001, 40000, 80
    return sk


def test_write_xmit_error_leaves_the_sock_unchanged(tf):
    """The pure twin raises before it commits a segment; so must the compiled
    loop (tcp_fast.pyx write_xmit checks the buffer after appending the TxSeg,
    moving snd_nxt/packets_out/snd_sml/rcv_wup and taking an IP ID)."""
    sk = _short_send_buffer_cb(tf)
    before = (sk.snd_nxt, sk.packets_out, sk.snd_sml, sk.quick, sk.rcv_wnd, sk.rcv_wup)
    out: list = []
    sk.inet_id = 7
    with pytest.raises(RuntimeError):
        tf.write_xmit(sk, 1460, out, 1, None, None, 64, 1.0)
    assert out == []
    assert sk.inet_id == 7
    assert sk.rtx == []
    assert (sk.snd_nxt, sk.packets_out, sk.snd_sml, sk.quick, sk.rcv_wnd, sk.rcv_wup) == before


# --- None where the compiled code expects a TcpCb / bytearray --------------------------------

_NONE_PROBES = {
    "select_window(None)": "m.select_window(None)",
    "tcp_select_window(None)": "m.tcp_select_window(None)",
    "clean_rtx_queue(None)": "m.clean_rtx_queue(None)",
    "rcv_established(None, ...)": "m.rcv_established(None, 0, 0, 0, False, 0, 0, b'x', 1.0)",
    "write_xmit(None, ...)": "m.write_xmit(None, 1460, [], 1, None, None, 64, 1.0)",
    "ip_select_ident_segs(None, 1)": "m.ip_select_ident_segs(None, 1)",
    "incr_quickack(None, 16)": "m.incr_quickack(None, 16)",
    "rq=None then rcv_established": "sk.rq = None\n"
                                    "m.rcv_established(sk, 100, 5, 1000, False, 0, 0, b'x' * 100, 1.0)",
    "rq=None then select_window": "sk.rq = None\nm.select_window(sk)",
    "wq=None then write_xmit": "sk.wq = None\n"
                               "m.write_xmit(sk, 1460, [], 1, None, None, 64, 1.0)",
    "None in rtx then clean_rtx_queue": "sk.rtx = [None]\nm.clean_rtx_queue(sk)",
}

_PROBE_PRELUDE = """
import sys
from tcpio import _fast
m = _fast.load_pure("tcp_fast") if sys.argv[1] == "pure" else _fast.load_compiled("tcp_fast")
m.set_hooks(lambda sk, now: None, lambda sk, now: None, lambda *args: None)

class Host:
    def schedule_wakeup(self, sk):
        pass

class Cb(m.TcpCb):
    pass

sk = Cb()
sk.rtx = []
sk.state = 1
sk.ca_state = 0
sk.rcv_nxt = sk.rcv_wup = 100
sk.rcv_wnd = 65535
sk.rcv_wscale = sk.snd_wscale = sk.ofo_bytes = sk.quick = sk.pingpong = 0
sk.rcv_mss = sk.advmss = 1460
sk.rcvbuf = 1 << 20
sk.window_clamp = 65535
sk.snd_una = sk.snd_nxt = sk.wq_seq = sk.snd_sml = 5
sk.snd_wnd = 1000
sk.write_seq = 3005
sk.rq = m.RcvQueue()
sk.wq = m.SndQueue(bytes(3000))
sk.packets_out = 1
sk.sacked_out = sk.lost_out = sk.retrans_out = 0
sk.snd_cwnd = 10
sk.nodelay = True
sk.tstamp_ok = sk.got_data = sk.dead = False
sk.ts_recent = sk.ts_off = 0
sk.rcv_tstamp = sk.ts_recent_stamp = sk.rcv_rtt = 0.0
sk.ofo = []
sk.urg_seq = None
sk.host = Host()
sk.laddr, sk.raddr, sk.lport, sk.rport = 1, 2, 3, 4
try:
{body}
except (TypeError, AttributeError) as exc:
    print("raised", type(exc).__name__)
else:
    print("returned")
"""


@pytest.mark.parametrize("probe", list(_NONE_PROBES))
@pytest.mark.parametrize("kind", ["pure", "compiled"])
def test_none_is_a_type_error_not_a_crash(kind, probe):
    """Cython lets None through a ``TcpCb``-typed def argument and into a
    ``cdef public bytearray`` field; the compiled code then reads C fields of
    None (segfault) or applies PyByteArray_* macros to it (reads past the
    object: a garbage window, or a segfault in PyByteArray_Resize).  The pure
    twin raises TypeError/AttributeError; the compiled one must too (e.g.
    ``TcpCb sk not None`` in the def signatures and a None check, or a typed
    setter, for rq/wq)."""
    if kind == "compiled" and fast_c is None:
        pytest.skip("tcpio._fast.tcp_fast not built")
    code = _PROBE_PRELUDE.format(body=textwrap.indent(_NONE_PROBES[probe], "    "))
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code, kind], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 0, f"{probe}: child died (rc {proc.returncode}) {proc.stderr[-500:]}"
    assert proc.stdout.startswith("raised"), f"{probe}: {proc.stdout.strip()}"


# --- receive_batch: counters of a frame whose processing raises ------------------------------

def _no_fast(*_args, **_kw) -> bool:
    return False


def _use_flavour(mp: pytest.MonkeyPatch, name: str) -> None:
    """'fast': the classifier's TCP fast path (compiled when built and TcpSock
    is built on it, else the pure twin); 'off': every segment through the
    layered path (the reference)."""
    if name == "fast":
        # (the hooks are those core.tcp.tcp_input installed at import)
        fast = fast_c if SOCK_IS_COMPILED else fast_py
        rx = (rx_c or rx_py) if SOCK_IS_COMPILED else rx_py
        mp.setattr(host_mod, "rx_classify", rx.rx_classify)
        if rx is rx_py:
            mp.setattr(rx_py, "_TcpCb", fast.TcpCb)
            mp.setattr(rx_py, "_rcv_established", fast.rcv_established)
    else:
        mp.setattr(tcp_input, "rcv_established_fast", _no_fast)

        def classify_without_fast_path(frame, mac, local, bcast, verify_tcp=True,
                                       ehash=None, now=0.0, lo=False, syn=None, v6=None):
            return rx_py.rx_classify(frame, mac, local, bcast, verify_tcp)

        mp.setattr(host_mod, "rx_classify", classify_without_fast_path)


def _counters_when_the_wakeup_raises(mp: pytest.MonkeyPatch) -> dict:
    """b's MIB movement for one 100-byte data segment whose processing raises
    (the wakeup of the receiving sock fails once), on an idle connection."""
    net = VirtualNetwork(seed=5)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    c, s = sim_connect(net, a, b)
    net.run(net.now + 1.0)
    b.debug = False
    real = b.schedule_wakeup
    raised = []

    def failing_wakeup(sk):
        if sk is s and not raised:
            raised.append(True)
            raise RuntimeError("injected")
        real(sk)

    mp.setattr(b, "schedule_wakeup", failing_wakeup)
    before = b.mib.snapshot()
    c.sendmsg(b"x" * 100)
    net.run(net.now + 1.0)
    assert raised
    after = b.mib.snapshot()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}
    return {k: v for k, v in delta.items() if v}


def test_counters_of_a_frame_that_raises_match_the_layered_path():
    """Host.receive_batch counts InReceives/InDelivers/InSegs for fast-path
    frames only after rx_classify returned True; when processing raises after
    the segment was accepted (here: the wakeup), the layered path has already
    counted the three and the fast path counts none.  Same frame, same
    outcome, different MIB."""
    deltas = {}
    for name in ("off", "fast"):
        with pytest.MonkeyPatch.context() as mp:
            _use_flavour(mp, name)
            deltas[name] = _counters_when_the_wakeup_raises(mp)
    assert deltas["off"].get("CoreExceptions") == 1
    assert deltas["fast"] == deltas["off"]
