"""TCP_USER_TIMEOUT while the peer keeps its window at zero.

Linux 6.x (tcp_probe_timer, since "tcp: fix TCP_USER_TIMEOUT with zero
window"): icsk_probes_tstamp is stamped when the persist timer first fires
with data waiting on the closed window, and is cleared only when probing
stops (the window opens: tcp_ack_probe; nothing left to probe:
tcp_probe_timer / tcp_send_probe0).  An ACK that answers a probe with the
window still zero clears icsk_probes_out but not the stamp, so once
user_timeout has passed since it the connection is aborted (tcp_write_err,
ETIMEDOUT).  Every re-arm of the probe timer (tcp_send_probe0, tcp_ack_probe)
is clamped to the time left (tcp_clamp_probe0_to_user_timeout), so the abort
comes on time, not at the next backed-off probe.
"""

from __future__ import annotations

import errno
import socket

from tcpio.core.tcp.tcp_states import TCP_CLOSE

from .helpers import ACK, RST, passive_open


def _run(c, until: float, answer: bool, step: float = 0.05):
    """Step the clock; answer each probe with a zero-window ACK if ``answer``.
    Returns the probe times and the time the sock closed (or None)."""
    probes = []
    t = c.host.now
    while t < until - 1e-9 and c.sk.state != TCP_CLOSE:
        t = round(t + step, 6)
        c.host.advance(t)
        for s in c.recv():
            assert not s.flags & RST
            if s.key() == (ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b""):
                probes.append(t)
                if answer and c.sk.state != TCP_CLOSE:
                    c.send(window=0)
    return probes, (t if c.sk.state == TCP_CLOSE else None)


def test_probes_answered_with_a_zero_window_still_end_at_the_user_timeout():
    """First probe at 1 s (the stamp), then 3 s; the timer after it is clamped
    from 4 s to the 3 s left, and at 6 s (5 s after the stamp) the sock is
    aborted with ETIMEDOUT although every probe was answered."""
    c = passive_open()
    c.send(window=0)
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)
    c.sk.sendmsg(b"z" * 100)
    assert c.recv() == []
    probes, closed = _run(c, 30.0, answer=True)
    assert probes == [1.0, 3.0]
    assert closed == 6.0 and c.sk.sk_err == errno.ETIMEDOUT


def test_unanswered_probes_end_at_the_user_timeout_not_the_next_probe():
    c = passive_open()
    c.send(window=0)
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 4000)
    c.sk.sendmsg(b"z" * 100)
    c.recv()
    probes, closed = _run(c, 30.0, answer=False)
    assert probes == [1.0, 3.0]           # the third (7 s) is clamped to 5 s
    assert closed == 5.0 and c.sk.sk_err == errno.ETIMEDOUT


def test_a_window_that_opens_starts_the_user_timeout_again():
    """tcp_ack_probe clears the stamp when the window opens: a later zero
    window is timed from its own first probe."""
    c = passive_open()
    c.send(window=0)
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)
    c.sk.sendmsg(b"z" * 100)
    c.recv()
    assert _run(c, 4.0, answer=True) == ([1.0, 3.0], None)
    c.send(window=1000)                   # opens: the data goes out
    [seg] = c.recv()
    assert seg.payload == b"z" * 100
    c.send(ack=(c.rcv + 100) & 0xFFFFFFFF, window=0)     # acked; closed again
    c.rcv = (c.rcv + 100) & 0xFFFFFFFF
    c.sk.sendmsg(b"y" * 100)
    assert c.recv() == []
    probes, closed = _run(c, 30.0, answer=True)
    assert c.sk.state == TCP_CLOSE and c.sk.sk_err == errno.ETIMEDOUT
    # (RTO 200 ms now: probes from 4.2 s; the clock steps by 50 ms and the
    # stamp plus 5 s is a float sum, so the abort is seen within one step)
    assert probes[0] == 4.2
    assert closed is not None and 9.2 <= closed <= 9.25
