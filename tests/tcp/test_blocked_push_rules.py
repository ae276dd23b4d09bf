"""A push that the first segment's send test stops asks nothing of the route.

Linux's tcp_write_xmit tests each segment (tcp_cwnd_test, tcp_snd_wnd_test,
tcp_nagle_test) before tcp_transmit_skb hands it to the route it caches on
the socket; tcpio's tcp_write_xmit asks the first segment's test
(tcp_fast.xmit_more) before it looks up where frames go
(``host.ip_tcp_path``), so a writer whose peer's window is full, which
pushes on every write, costs no route or neighbour lookup per write.  What
such a push does is unchanged: nothing goes, the persist timer is armed
(tcp_check_probe_timer), and the segments go once the window opens.
"""

from __future__ import annotations

from typing import Any

from tcpio.core.tcp.tcp_timer import ICSK_TIME_PROBE0

from .helpers import passive_open


def _count_paths(c: Any) -> list[int]:
    calls: list[int] = []
    inner = c.host.ip_tcp_path

    def counted(dst: int, length: int) -> Any:
        calls.append(length)
        return inner(dst, length)

    c.host.ip_tcp_path = counted
    return calls


def test_a_write_into_a_closed_window_sends_nothing_and_looks_up_no_route():
    c = passive_open(window=0)
    calls = _count_paths(c)
    assert c.sk.sendmsg(b"x" * 100) == 100
    assert c.recv() == []
    assert calls == []
    assert c.sk.pending == ICSK_TIME_PROBE0     # the persist timer, as before


def test_writes_past_the_peers_window_look_up_the_route_only_when_a_segment_goes():
    c = passive_open(window=1000)
    calls = _count_paths(c)
    assert c.sk.sendmsg(b"a" * 1000) == 1000       # fills the window
    assert sum(len(s.payload) for s in c.recv()) == 1000
    looked_up = len(calls)
    assert looked_up
    for _ in range(3):                              # the window is full: no lookup
        assert c.sk.sendmsg(b"b" * 500) == 500
    assert c.recv() == [] and len(calls) == looked_up
    c.send(ack=c.sk.snd_nxt, window=3000)          # the window opens
    assert sum(len(s.payload) for s in c.recv()) == 1500
    assert len(calls) > looked_up
