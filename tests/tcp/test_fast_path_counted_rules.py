"""tcp_segs_in on header prediction's call (tcp_fast.rcv_established), on
both twins: ``new_ack_data`` only says which segments the call may take (in-order
data that also acknowledges new data, Linux's tcp_rcv_established fast path);
``counted`` (default False) only says whether the caller already counted the
segment (the layered path: tcp_v4_rcv's tcp_segs_in runs before
tcp_rcv_established).  Each segment taken is counted exactly once, as
max(1, gso_segs).
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


@pytest.mark.parametrize("new_ack_data", [False, True])
def test_taken_data_is_counted_by_the_call_whatever_it_may_take(tf, hooks, new_ack_data):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    before = sk.segs_in
    # data that acknowledges nothing new: taken with or without new_ack_data
    assert tf.rcv_established(sk, NXT, UNA, 65535, False, 0, 0, b"d" * 100, NOW,
                              new_ack_data, 3) is True
    assert sk.segs_in - before == 3


def test_data_acking_new_data_is_counted_once_by_the_call(tf, hooks):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    before = sk.segs_in
    assert tf.rcv_established(sk, NXT, UNA + 1000, 65535, False, 0, 0, b"d" * 100, NOW,
                              True) is True
    assert sk.segs_in - before == 1


@pytest.mark.parametrize("payload, ack", [(b"d" * 100, UNA + 1000), (b"", UNA + 1000),
                                          (b"d" * 100, UNA)])
def test_a_caller_that_counted_is_not_counted_again(tf, hooks, payload, ack):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    before = sk.segs_in
    assert tf.rcv_established(sk, NXT, ack, 65535, False, 0, 0, payload, NOW, True, 2,
                              counted=True) is True
    assert sk.segs_in == before


def test_a_declined_segment_is_not_counted(tf, hooks):
    sk = make_cb(tf, snd_nxt=UNA + 3000, packets_out=2)
    before = sk.segs_in
    # data acking new data without new_ack_data: the state machine's
    assert tf.rcv_established(sk, NXT, UNA + 1000, 65535, False, 0, 0, b"z", NOW) is False
    assert sk.segs_in == before
