"""tcp_fast.copy_skbs: tcp_sendmsg_locked's copy loop (net/ipv4/tcp.c), one
rule per test, on both twins.

Each skb is filled to the size goal (tcp_xmit_size_goal: here 3000, half
the peer's largest window of 6000, tcp_bound_to_half_wnd, in whole 1000-byte
segments); a full one with data left is pushed (TCP_NAGLE_PUSH) when more
than half the peer's largest window went unpushed (forced_push, with a
tcp_mark_push PSH mark where it ends) or when it is the send head
(tcp_push_one).  The push hook here sends nothing, as a closed window
would, so the send head stays the first skb: the same skbs as
tests/packetdrill/psh-forced-push.pkt's write (1:3001, 3001:6001 marked,
6001:9001, 9001:12001 marked, 12001:15001).
"""

from __future__ import annotations

import pytest
from conftest import twin_fixture

from tcpio.core.tcp import tcp_input
from tcpio.core.tcp.tcp_states import TCP_NAGLE_PUSH

from .fastcb import make_cb

tf = twin_fixture("tcp_fast", "tf")

ISS = 1000      # write_seq and snd_nxt before the write (nothing unsent)


@pytest.fixture
def pushes(tf):
    """The push hook's calls, (write_seq, nonagle) each; the real hooks back
    afterwards."""
    calls: list[tuple[int, int]] = []

    def push(sk, now, nonagle):
        assert now == sk.host.now
        calls.append((sk.write_seq, nonagle))

    tf.set_xmit_hooks(tcp_input.tcp_write_xmit, tcp_input.tcp_send_ack, push)
    try:
        yield calls
    finally:
        tcp_input.tcp_init_fast_hooks(tf)


def _cb(tf):
    sk = make_cb(tf, mss_cache=1000, max_window=6000, gso_max_size=0,
                 snd_una=ISS, snd_nxt=ISS, write_seq=ISS, wq_seq=ISS, pushed_seq=ISS)
    sk.push_marks = None
    sk.host.now = 3.5
    return sk


def test_full_skbs_push_when_forced_or_the_send_head(tf, pushes):
    sk = _cb(tf)
    data = memoryview(bytes(range(256)) * 60)[:15000]
    assert tf.copy_skbs(sk, data, 15000, 0xFFFFFFFF, False, False) == 15000
    assert pushes == [(ISS + 3000, TCP_NAGLE_PUSH), (ISS + 6000, TCP_NAGLE_PUSH),
                      (ISS + 12000, TCP_NAGLE_PUSH)]
    assert list(sk.push_marks) == [ISS + 6000, ISS + 12000]
    assert sk.pushed_seq == ISS + 12000           # the write's end is sendmsg's
    assert sk.write_seq == ISS + 15000
    assert bytes(sk.wq) == bytes(data) and len(sk.wq) == 15000


def test_an_oob_write_pushes_only_at_its_end(tf, pushes):
    sk = _cb(tf)
    assert tf.copy_skbs(sk, memoryview(b"u" * 15000), 15000, 0xFFFFFFFF, True, False) == 15000
    assert pushes == [] and not sk.push_marks and sk.pushed_seq == ISS


def test_notsent_lowat_stops_at_an_skb_boundary(tf, pushes):
    """sk_stream_memory_free is asked before each new skb: 3000 unsent is
    below 4000, 6000 is not."""
    sk = _cb(tf)
    assert tf.copy_skbs(sk, memoryview(b"x" * 15000), 15000, 4000, False, False) == 6000
    assert sk.write_seq == ISS + 6000 and len(sk.wq) == 6000


def test_marks_already_acknowledged_are_dropped(tf, pushes):
    sk = _cb(tf)
    sk.push_marks = [ISS - 10, ISS + 10]
    sk.snd_una = ISS
    tf.copy_skbs(sk, memoryview(b"y" * 100), 100, 0xFFFFFFFF, False, False)
    assert list(sk.push_marks) == [ISS + 10] and pushes == []
