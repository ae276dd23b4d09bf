"""What tcp_fast refuses before it touches memory, on both twins.

The compiled module reads a TcpCb's queues and the caller's MAC addresses as
C buffers (tcp_fast.pxd: ``bytearray`` and ``bytes`` arguments Cython lets be
None), so each entry point checks them first and raises a Python exception
with its own message; the pure twin makes the same checks so the two builds
refuse the same calls the same way.  Each test is run in-process (the
subprocess probes in test_fast_path_twin_rules.py only see "raised
TypeError", which a later, accidental TypeError also gives).
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture

from .fastcb import DEFAULTS, hook_fixture, make_cb

tf = twin_fixture("tcp_fast", "tf")
hooks = hook_fixture()

NOW = 10.0
MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"


def test_buf_consume_refuses_a_missing_queue(tf):
    """buf_consume(None, n): the queue check comes first (the compiled
    ba_consume would dereference it), with its own message."""
    with pytest.raises(TypeError, match="buf_consume: the queue must be a bytearray"):
        tf.buf_consume(None, 1)


def test_select_window_refuses_a_sock_without_a_receive_queue(tf):
    """select_window reads len(sk.rq) as a C length: rq None is refused by
    the guard, not by whatever fails first after it."""
    sk = make_cb(tf)
    sk.rq = None
    with pytest.raises(TypeError, match="the receive queue must be a RcvQueue"):
        tf.select_window(sk)


def test_header_prediction_refuses_a_sock_without_a_receive_queue(tf, hooks):
    """rcv_established with rq None raises before prediction, even for a
    segment it would accept without touching the queue (a bare ACK of
    nothing new): no half-processed segment, no ACK decided."""
    sk = make_cb(tf)
    sk.rq = None
    with pytest.raises(TypeError, match="the receive queue must be a RcvQueue"):
        tf.rcv_established(sk, DEFAULTS["rcv_nxt"], DEFAULTS["snd_una"], DEFAULTS["snd_wnd"],
                           False, 0, 0, b"", NOW)
    assert sk.rcv_tstamp == DEFAULTS["rcv_tstamp"]
    assert hooks.calls == []


def _xmit(tf, sk, dst_mac, src_mac):
    out: list = []
    return tf.write_xmit(sk, 1460, out, 1, dst_mac, src_mac, 64, NOW), out


@pytest.mark.parametrize("dst_mac, src_mac", [
    (MAC_A, None),              # a destination but no source
    (MAC_A[:5], MAC_B),         # a 5-byte destination
    (MAC_A, MAC_B + b"\x00"),   # a 7-byte source
], ids=["no-source", "short-destination", "long-source"])
def test_write_xmit_refuses_an_ethernet_header_without_two_6_byte_macs(tf, dst_mac, src_mac):
    """An Ethernet II header (IEEE 802.3 3.2.3) is two 6-byte addresses: with
    a destination MAC write_xmit refuses a missing source or either of the
    wrong length, before anything is sent (nothing is queued here, so a
    missing check shows as a plain return of 0)."""
    sk = make_cb(tf)
    with pytest.raises(ValueError, match="mac addresses must be 6 bytes"):
        _xmit(tf, sk, dst_mac, src_mac)


def test_write_xmit_accepts_two_6_byte_macs(tf):
    sk = make_cb(tf)
    assert _xmit(tf, sk, MAC_A, MAC_B) == (0, [])
