"""TCP's delayed-ACK timer is a prompt timer; its other timers are not
(tcpio/core/timer.py, Stack._on_timer; issue 11).

While the driver holds due timers back to read input that came in before
them (``TimerWheel.run(now, due)`` with ``due`` before ``now``), a loss probe
or RTO must wait (the ACK that cancels it may be in that input), but a
delayed ACK must not: an ACK still queued does not make our ACK wrong, and
holding it for the whole wait made the peer retransmit.  The socket decides
this when it makes the timer (``timer(..., prompt=True)``), on both sides of
a connection, and the receive path (compiled or interpreted) only arms it.
"""

from __future__ import annotations

import pytest

from tcpio.core.tcp.tcp_timer import keepalive_timer

from .helpers import active_open, passive_open


@pytest.mark.parametrize("opened", [passive_open, active_open], ids=["passive", "active"])
def test_only_the_delayed_ack_timer_is_prompt(opened) -> None:
    c = opened()
    # (each timer is made when first armed: what arming takes)
    assert c.sk.delack_timer_made().prompt
    assert not c.sk.rtx_timer_made().prompt
    assert not keepalive_timer(c.sk).prompt


def test_a_delayed_ack_goes_out_while_the_rto_due_before_it_is_held() -> None:
    """Data of ours in flight (RTO armed) and a lone segment of the peer's
    (delayed ACK armed by the receive path): a run that holds timers back
    sends the ACK alone, at its deadline's run; the RTO fires, retransmitting,
    only on the run that lets it."""
    c = passive_open()
    c.sk.quick = 0
    c.sk.got_data = True
    c.sk.sendmsg(b"d" * 100)
    (data,) = c.recv()
    c.send(b"y" * 10)
    assert c.recv() == [] and c.sk.delack_timer.pending and c.sk.rtx_timer.pending
    assert c.sk.rtx_timer.when < 2.0
    c.host.now = 2.0
    c.host.timers.run(2.0, float("-inf"))
    (ack,) = c.recv()
    assert not ack.payload and ack.ack == c.snd
    assert c.sk.rtx_timer.pending and c.host.timers.next_deadline() == c.sk.rtx_timer.when
    c.host.timers.run(2.0)
    (rtx,) = c.recv()
    assert rtx.payload == data.payload and rtx.seq == data.seq
