"""The receive queue (tcp_fast.RcvQueue, sk.rq): in-order bytes kept as views
of the frames they arrived in, copied once when read.

Linux queues the skb itself on sk_receive_queue and copies only in
tcp_recvmsg; small skbs are merged into the tail one (tcp_try_coalesce) so
a peer sending tiny segments does not pin a buffer per byte.  Here: a
payload of at least _RQ_REF_MIN bytes that is at least half of an immutable
frame is kept by reference, anything else copied into the queue's own
block; a read copies each byte once and lets go of every frame it finished.
Both builds (the ``tf`` twins)."""

from __future__ import annotations

import socket
import sys

import pytest
from conftest import twin_fixture

from .helpers import passive_open
from .test_input_urgent import _oob, _urg

tf = twin_fixture("tcp_fast", "tf")

BIG = 4096


def _frame(payload: bytes, hdr: int = 54) -> bytes:
    """A frame-like immutable buffer: ``hdr`` header bytes, then the payload."""
    return bytes(hdr) + payload


def _payload_view(frame: bytes, hdr: int = 54) -> memoryview:
    return memoryview(frame)[hdr:]


def test_a_large_payload_of_an_immutable_frame_is_queued_by_reference(tf):
    frame = _frame(b"a" * BIG)
    q = tf.RcvQueue()
    q.push(_payload_view(frame))
    assert len(q) == BIG and len(q.chunks) == 1
    assert q.chunks[0].obj is frame          # a view of the frame, no copy


def test_small_payloads_are_copied_and_coalesced_into_one_block(tf):
    q = tf.RcvQueue()
    frames = [_frame(bytes([i]) * 10) for i in range(100)]
    idle = [sys.getrefcount(f) for f in frames]
    for i in range(100):
        q.push(_payload_view(frames[i]))
    assert len(q) == 1000 and len(q.chunks) == 1
    assert type(q.chunks[0]) is bytearray
    assert [sys.getrefcount(f) for f in frames] == idle     # none of them pinned
    assert q.take(1000) == b"".join(bytes([i]) * 10 for i in range(100))


def test_a_small_part_of_a_large_frame_is_copied_not_pinned(tf):
    """Less than half of the frame (e.g. the new tail of a retransmission):
    copied, so the queue never pins much more than it holds."""
    frame = _frame(b"x" * (4 * BIG))
    before = sys.getrefcount(frame)
    q = tf.RcvQueue()
    q.push(memoryview(frame)[-BIG:])
    assert len(q) == BIG and type(q.chunks[0]) is bytearray
    assert sys.getrefcount(frame) == before


def test_a_view_of_a_mutable_buffer_is_copied(tf):
    """The owner of a bytearray may reuse it: the queue must not see that."""
    buf = bytearray(b"m" * BIG)
    q = tf.RcvQueue()
    q.push(memoryview(buf))
    buf[:] = b"z" * BIG                      # would raise if still exported
    assert q.take(BIG) == b"m" * BIG


def test_reading_a_frames_last_byte_lets_the_frame_go(tf):
    frame = _frame(b"f" * BIG)
    q = tf.RcvQueue()
    idle = sys.getrefcount(frame)
    q.push(_payload_view(frame))
    assert sys.getrefcount(frame) > idle
    assert q.take(BIG - 1) == b"f" * (BIG - 1)
    assert sys.getrefcount(frame) > idle     # one byte of it still queued
    assert q.take(10) == b"f"
    assert sys.getrefcount(frame) == idle and len(q.chunks) == 0


def test_clear_lets_every_frame_go(tf):
    frames = [_frame(bytes([i]) * BIG) for i in range(3)]
    idle = [sys.getrefcount(f) for f in frames]
    q = tf.RcvQueue()
    for i in range(3):
        q.push(_payload_view(frames[i]))
    assert [sys.getrefcount(f) for f in frames] != idle
    q.clear()
    assert [sys.getrefcount(f) for f in frames] == idle and len(q) == 0


def test_reads_keep_order_across_views_and_copied_blocks(tf):
    parts = [b"A" * BIG, b"b" * 7, b"c" * 9, b"D" * (BIG + 3), b"e" * 5]
    frames = [_frame(p) for p in parts]
    q = tf.RcvQueue()
    for i in range(len(frames)):
        q.push(_payload_view(frames[i]))
    whole = b"".join(parts)
    assert bytes(q) == whole and len(q) == len(whole)        # bytes() does not consume
    got = b""
    for size in (1, BIG, 3, 20, 1, 100000):
        got += q.take(size)
    assert got == whole and len(q) == 0 and q.take(5) == b""


def test_peek_leaves_the_bytes_queued(tf):
    q = tf.RcvQueue(_payload_view(_frame(b"p" * BIG)))
    q.push(b"tail")
    assert q.peek(BIG + 2) == b"p" * BIG + b"ta"
    assert len(q) == BIG + 4
    assert q.take(BIG + 4) == b"p" * BIG + b"tail"


def test_take_into_fills_the_buffer_in_partial_reads(tf):
    q = tf.RcvQueue(_payload_view(_frame(bytes(range(256)) * 16)))     # 4096 bytes
    q.push(b"XYZ")
    buf = bytearray(1000)
    assert q.take_into(buf) == 1000 and buf == (bytes(range(256)) * 4)[:1000]
    assert q.take_into(buf, 10) == 10 and buf[:10] == (bytes(range(256)) * 16)[1000:1010]
    assert q.peek_into(buf) == 1000 and len(q) == 4099 - 1010
    big = bytearray(10000)
    assert q.take_into(big) == 4099 - 1010
    assert bytes(big[:4099 - 1010]) == (bytes(range(256)) * 16)[1010:] + b"XYZ"
    assert q.take_into(big) == 0


def test_take_into_refuses_a_read_only_buffer(tf):
    q = tf.RcvQueue(b"abc")
    with pytest.raises((TypeError, BufferError)):
        q.take_into(b"xyz")
    assert len(q) == 3


# --- through the socket ----------------------------------------------------------------------

def test_a_large_segment_is_queued_as_a_view_of_its_frame():
    c = passive_open()
    c.send(b"s" * 3000)
    assert len(c.sk.rq) == 3000 and type(c.sk.rq.chunks[0]) is memoryview


def test_recvmsg_peek_returns_the_bytes_and_leaves_them_queued():
    c = passive_open()
    c.send(b"q" * 3000)
    c.send(b"rest")
    assert c.sk.recvmsg(3002, socket.MSG_PEEK) == b"q" * 3000 + b"re"
    assert c.sk.readable() == 3004
    assert c.sk.recvmsg(5000) == b"q" * 3000 + b"rest" and c.sk.readable() == 0


def test_recvmsg_into_partial_reads_in_order():
    c = passive_open()
    c.send(bytes(range(250)) * 12)          # 3000 bytes: a view
    c.send(b"end")
    buf = bytearray(1024)
    got = b""
    while n := c.sk.recvmsg_into(buf):
        got += bytes(buf[:n])
    assert got == bytes(range(250)) * 12 + b"end" and len(c.sk.rq.chunks) == 0


def test_recvmsg_into_peek_and_nbytes():
    c = passive_open()
    c.send(b"0123456789")
    buf = bytearray(8)
    assert c.sk.recvmsg_into(buf, 4, socket.MSG_PEEK) == 4 and buf[:4] == b"0123"
    assert c.sk.recvmsg_into(buf, 3) == 3 and buf[:3] == b"012"
    assert c.sk.recvmsg(100) == b"3456789"


def test_urgent_byte_is_lifted_out_of_a_large_segment():
    """The layered path splits the payload around the urgent byte: both
    halves queued (by reference when large), the byte read with MSG_OOB."""
    c = passive_open()
    data = b"u" * 2500 + b"X" + b"v" * 2500
    _urg(c, data, 2501)
    assert _oob(c) == b"X"
    assert c.sk.recvmsg(10000) == b"u" * 2500 + b"v" * 2500


def test_recvmsg_into_oob_reads_the_urgent_byte():
    c = passive_open()
    _urg(c, b"abXd", 3)
    buf = bytearray(4)
    assert c.sk.recvmsg_into(buf, 0, socket.MSG_OOB) == 1 and buf[:1] == b"X"
    assert c.sk.recvmsg(10) == b"abd"


def test_a_queued_view_outlives_the_callers_view(tf):
    """The caller may release the memoryview it passed: the queue holds a
    view of its own of the same frame."""
    frame = _frame(b"r" * BIG)
    q = tf.RcvQueue()
    view = _payload_view(frame)
    q.push(view)
    view.release()
    assert q.take(BIG) == b"r" * BIG


@pytest.mark.parametrize("flags", [0, socket.MSG_PEEK, socket.MSG_OOB])
def test_recvmsg_into_refuses_nbytes_past_the_buffer_before_taking_anything(flags):
    """socket.recv_into's rule (ValueError, "buffer too small for requested
    bytes"), checked before the urgent byte or any data is taken."""
    with socket.socket() as k, pytest.raises(ValueError) as kernel:
        k.recv_into(bytearray(2), 3)
    c = passive_open()
    _urg(c, b"abXd", 3)
    with pytest.raises(ValueError) as ours:
        c.sk.recvmsg_into(bytearray(2), 3, flags)
    assert str(ours.value) == str(kernel.value)
    assert _oob(c) == b"X"                       # the urgent byte is still there
    assert c.sk.recvmsg(10) == b"abd"


def _bytes_per_queue(tf, use) -> float:
    """tracemalloc's bytes still held per queue after ``use(queue)``, over
    200 queues kept alive (the object itself included)."""
    import tracemalloc
    tf.RcvQueue()                                  # warm the code paths
    use(tf.RcvQueue())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        queues = [tf.RcvQueue() for _ in range(200)]
        for q in queues:
            use(q)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return (after - before) / len(queues)


def test_an_idle_connections_empty_queue_holds_no_chunk_container(tf):
    """Every idle connection has an empty receive queue (issue 11: bytes per
    idle socket).  An empty deque alone is ~0.76 KiB; the empty queue costs
    only its own object, before any data and again once everything was read
    (the frames and the container go with the last byte)."""
    def fill_and_read(q):
        q.push(b"s" * 100)                         # copied into an own block
        q.push(_payload_view(_frame(b"r" * BIG)))  # by reference
        assert len(q.take(100 + BIG)) == 100 + BIG

    def fill_and_clear(q):
        q.push(b"c" * 10)
        q.clear()

    for use in (lambda q: None, fill_and_read, fill_and_clear):
        assert _bytes_per_queue(tf, use) < 256
