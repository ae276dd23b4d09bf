"""Answers to our probes on the established fast path (RFC 1122 4.2.2.17).

RFC 1122 4.2.2.17: while the receiver keeps acknowledging zero-window
probes, the sender MUST keep the connection open.  Linux: every ACK that
reaches tcp_ack clears icsk_probes_out, and tcp_rcv_established's bare-ACK
prediction sends an ACK to tcp_ack unless it acknowledges nothing new with
nothing in flight *and* no probe outstanding.  The answer to a probe is
exactly such an ACK (ack == snd_una, the probe carried no new data), so
header prediction must still hand it to tcp_ack when probes_out is set.

Two ways in: tcp_fast.rcv_established on each twin (the rule itself), and
whole frames between two Hosts (the rx classifier runs tcp_fast before any
Python; this is how real traffic arrives).
"""

from __future__ import annotations

from conftest import twin_fixture

from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .fastcb import DEFAULTS, hook_fixture, make_cb
from .helpers import sim_connect

tf = twin_fixture("tcp_fast", "tf")
hooks = hook_fixture()

NXT = DEFAULTS["rcv_nxt"]
UNA = DEFAULTS["snd_una"]
NOW = 10.0


def test_a_bare_ack_answering_a_probe_runs_tcp_ack(tf, hooks):
    """Nothing in flight, ack == snd_una, a probe unanswered: tcp_ack (which
    clears probes_out) through the ack_predicted hook."""
    sk = make_cb(tf, probes_out=2)
    assert tf.rcv_established(sk, NXT, UNA, 65535, False, 0, 0, b"", NOW) is True
    assert hooks.calls == [("ack_predicted", NXT, UNA, 65535, None, None, NOW)]


def test_a_bare_ack_with_no_probe_out_is_only_bookkeeping(tf, hooks):
    """The other side of the rule: no probe, nothing in flight, nothing new."""
    sk = make_cb(tf, probes_out=0)
    assert tf.rcv_established(sk, NXT, UNA, 65535, False, 0, 0, b"", NOW) is True
    assert hooks.calls == []


def test_answered_zero_window_probes_keep_the_connection_open_on_whole_frames():
    """Two Hosts, whole frames: b stops reading, its window closes (to less
    than a segment, which a's send loop will not fill), a probes; b's stack
    answers every probe with the same window.  a must not give up
    after tcp_retries2 probes (it would by 15 s with tcp_retries2=3 if the
    answers were not counted: probes at 1, 3, 7, gives up at 15)."""
    net = VirtualNetwork(seed=3)
    a = net.host("a", settings=Settings(tcp_retries2=3))
    b = net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    link.capture_enabled = False
    c, s = sim_connect(net, a, b)
    c.nodelay = True
    data = b"q" * 400_000
    sent = 0
    # b never reads: fill its receive buffer until a probes.
    for _ in range(100):
        if c.sk_err or c.probes_out:
            break
        if sent < len(data):
            sent += c.sendmsg(memoryview(data)[sent:])
        net.run_for(0.5)
    assert c.probes_out and c.sk_err == 0, "the scenario must reach window probing"
    # less than a segment offered: the send loop waits, the persist timer probes
    assert c.snd_wnd < c.mss_cache and not c.packets_out
    net.run_for(300.0)
    assert c.state == TCP_ESTABLISHED and c.sk_err == 0
    # b keeps answering: the probes go on, so the connection was kept by answers,
    # not by silence.
    assert c.probes_out <= 1
