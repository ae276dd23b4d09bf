"""Header prediction for in-order data that also acknowledges new data
(tcp_fast.rcv_established with ``new_ack_data``, the layered path's call), on
both twins.

Linux's tcp_rcv_established takes this segment on its fast path: the data
is queued (tcp_queue_rcv, tcp_event_data_recv, the ACK scheduled), then
tcp_ack(FLAG_DATA) and tcp_data_snd_check run, then __tcp_ack_snd_check.  The
ACK must lie in (snd_una, snd_nxt] (RFC 9293 3.10.7.4: an ACK of something
not yet sent is not acceptable, an old one is a duplicate); anything else is
declined with nothing changed.  Without ``new_ack_data`` (the classifier's
call) the segment is declined as before.
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture

from .fastcb import DEFAULTS, hook_fixture, make_cb

tf = twin_fixture("tcp_fast", "tf")
hooks = hook_fixture()

NXT = DEFAULTS["rcv_nxt"]
UNA = DEFAULTS["snd_una"]
NOW = 10.0
FLAG_DATA = 0x01


def _snapshot(sk) -> dict:
    out = {name: getattr(sk, name) for name in DEFAULTS}
    out.update(rq=bytes(sk.rq), woken=len(sk.host.woken), armed=list(sk.delack_timer.armed))
    return out


def _record(tf, sk):
    """Hooks that record what the sock looked like when each ran."""
    seen: list[tuple] = []

    def send_ack(s, now):
        seen.append(("send_ack", now))

    def idle(s, now):
        seen.append(("idle", now))

    def ack_predicted(s, *args):
        seen.append(("ack_predicted", *args, s.rcv_nxt, bytes(s.rq), s.ack_pending))

    tf.set_hooks(send_ack, idle, ack_predicted)
    return seen


def test_data_acking_new_data_is_queued_then_acked(tf, hooks):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    seen = _record(tf, sk)
    assert tf.rcv_established(sk, NXT, UNA + 1000, 65535, True, 7, 3, b"d" * 100, NOW,
                              True) is True
    # tcp_ack ran after the data was queued and the ACK scheduled (Linux's order)
    assert seen[0] == ("ack_predicted", NXT, UNA + 1000, 65535, 7, 3, NOW, FLAG_DATA,
                       NXT + 100, b"d" * 100, True)
    assert bytes(sk.rq) == b"d" * 100 and sk.rcv_nxt == NXT + 100
    assert sk.ts_recent == 7 and sk.rcv_tstamp == NOW


def test_without_timestamps_the_hook_gets_none(tf, hooks):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    seen = _record(tf, sk)
    assert tf.rcv_established(sk, NXT, UNA + 3000, 65535, False, 0, 0, b"e", NOW, True)
    assert seen[0][:8] == ("ack_predicted", NXT, UNA + 3000, 65535, None, None, NOW,
                           FLAG_DATA)


@pytest.mark.parametrize("ack, ok", [
    (UNA - 1, False),           # below snd_una: an old ACK, the state machine's
    (UNA + 1, True),
    (UNA + 3000, True),         # exactly snd_nxt
    (UNA + 3001, False),        # beyond snd_nxt: never sent
])
def test_the_ack_must_lie_between_snd_una_and_snd_nxt(tf, hooks, ack, ok):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    before = _snapshot(sk)
    got = tf.rcv_established(sk, NXT, ack, 65535, False, 0, 0, b"z" * 10, NOW, True)
    assert got is ok
    if ok:
        assert [c[7] for c in hooks.named("ack_predicted")] == [FLAG_DATA]
    else:
        assert _snapshot(sk) == before and hooks.calls == []


def test_the_classifiers_call_still_declines_it(tf, hooks):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    before = _snapshot(sk)
    assert tf.rcv_established(sk, NXT, UNA + 1000, 65535, False, 0, 0, b"z", NOW) is False
    assert _snapshot(sk) == before and hooks.calls == []


def test_a_closed_receive_window_declines_it(tf, hooks):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2, rcv_wup=NXT - 1000, rcv_wnd=1000)
    before = _snapshot(sk)
    assert tf.rcv_established(sk, NXT, UNA + 1000, 65535, False, 0, 0, b"z", NOW,
                              True) is False
    assert _snapshot(sk) == before and hooks.calls == []
