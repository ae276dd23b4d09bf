"""The Timer column of ``connections()`` (``ss -tano``) names the timer as
Linux's get_tcp4_sock does: "on" for ICSK_TIME_RETRANS, ICSK_TIME_LOSS_PROBE
and ICSK_TIME_REO_TIMEOUT (all one retransmission timer), "persist" only for
ICSK_TIME_PROBE0 (the zero-window probe).  Before, a tail-loss probe armed
behind data in flight showed as "persist".
"""

from __future__ import annotations

from test_qdisc_rules import Pair

from tcpio.core.tcp.tcp_output import (
    ICSK_TIME_LOSS_PROBE,
    ICSK_TIME_PROBE0,
    ICSK_TIME_RETRANS,
)


def _row(p: Pair) -> object:
    (row,) = [r for r in p.a.tcp.connections() if r.state == "ESTAB"]
    return row


def test_data_in_flight_shows_on_whichever_retransmission_timer_is_armed() -> None:
    p = Pair()
    sk, _ = p.tcp_pair()
    assert sk.sendmsg(b"x" * 3000) == 3000          # in flight, not yet acknowledged
    assert sk.packets_out and sk.pending in (ICSK_TIME_RETRANS, ICSK_TIME_LOSS_PROBE)
    assert _row(p).timer.startswith("on(")      # type: ignore[attr-defined]
    for pending in (ICSK_TIME_RETRANS, ICSK_TIME_LOSS_PROBE):
        sk.pending = pending                         # the same timer, either reason
        assert _row(p).timer.startswith("on(")  # type: ignore[attr-defined]


def test_a_zero_window_shows_persist() -> None:
    p = Pair()
    sk, _ = p.tcp_pair(rcvbuf=4096)                  # a window soon full, never read
    assert sk.sendmsg(b"z" * 40000) == 40000
    assert p.net.run_until(lambda: sk.snd_wnd == 0 and sk.packets_out == 0, timeout=10)
    assert sk.pending == ICSK_TIME_PROBE0
    assert _row(p).timer.startswith("persist(")  # type: ignore[attr-defined]
