"""Urgent data on receive (tcp_check_urg / tcp_urg in net/ipv4/tcp_input.c):
BSD pointer semantics (tcp_stdurg=0: the pointer names the byte after the
urgent one, RFC 1122 4.2.2.4 notwithstanding, as Linux does), SO_OOBINLINE off:
the urgent byte is taken out of the stream and read with MSG_OOB
(RFC 6093 describes this behaviour of the deployed stacks).
"""

from __future__ import annotations

import errno
import socket

import pytest

from .helpers import ACK, URG, Conn, passive_open, wire


def _urg(c: Conn, payload: bytes, urg_ptr: int, seq: int | None = None) -> None:
    """A segment with URG set and the given pointer, from the peer."""
    s = c.snd if seq is None else seq
    seg = wire.build_tcp(c.peer.addr, c.host.addr, c.peer.port, c.peer.lport, s, c.rcv,
                         ACK | URG, 65535, None, payload, urg_ptr)
    c.host.deliver(c.peer.addr, c.host.addr, seg)
    if seq is None:
        c.snd = (c.snd + len(payload)) & 0xFFFFFFFF


def _oob(c: Conn) -> bytes | int:
    try:
        return c.sk.recvmsg(1, socket.MSG_OOB)
    except OSError as e:
        return e.errno


def test_urgent_byte_is_the_one_before_the_pointer():
    c = passive_open()
    _urg(c, b"abcXd", 4)
    assert _oob(c) == b"X"
    assert c.sk.recvmsg(100) == b"abcd"


def test_pointer_zero_names_the_first_byte():
    """tcp_check_urg: the pointer is decremented only when it is not zero."""
    c = passive_open()
    _urg(c, b"Xab", 0)
    assert _oob(c) == b"X"
    assert c.sk.recvmsg(100) == b"ab"


def test_urgent_byte_at_the_end_of_the_segment():
    c = passive_open()
    _urg(c, b"abcX", 4)
    assert _oob(c) == b"X"
    assert c.sk.recvmsg(100) == b"abc"


def test_pointer_just_past_the_segment_waits_for_the_next_one():
    c = passive_open()
    _urg(c, b"abc", 4)                     # urgent byte is the next one
    assert _oob(c) == errno.EAGAIN
    assert c.sk.recvmsg(100) == b"abc"
    c.send(b"Xyz")
    assert _oob(c) == b"X"
    assert c.sk.recvmsg(100) == b"yz"


def test_announced_urgent_data_wakes_the_reader():
    c = passive_open()
    c.host.woken.clear()
    _urg(c, b"", 10)                       # pointer only, no data yet
    assert c.host.woken == [c.sk]
    assert _oob(c) == errno.EAGAIN


def test_pointer_to_data_already_received_is_ignored():
    """tcp_check_urg: a pointer before RCV.NXT names data we already have."""
    c = passive_open()
    c.send(b"abcdef")
    _urg(c, b"abcdef", 2, seq=c.snd - 6)   # a retransmission naming old byte b
    assert _oob(c) == errno.EINVAL
    assert c.sk.recvmsg(100) == b"abcdef"


def test_taken_urgent_byte_is_not_replayed_by_a_repeated_pointer():
    """tcp_check_urg: "do not replay urg ptr"."""
    c = passive_open()
    _urg(c, b"aX", 2)
    assert _oob(c) == b"X"
    _urg(c, b"", 0, seq=c.snd - 1)         # the same pointer again (seq - 1 + 0)
    assert _oob(c) == errno.EINVAL


def test_pending_pointer_is_not_moved_back():
    c = passive_open()
    _urg(c, b"", 10)                        # urgent byte at snd + 9
    _urg(c, b"", 5)                         # an older announcement: ignored
    c.send(b"abcdeFghiJ")
    assert _oob(c) == b"J"
    assert c.sk.recvmsg(100) == b"abcdeFghi"


def test_newer_pointer_replaces_an_unread_urgent_byte():
    """Linux tcp_check_urg: a new urgent pointer discards the old urgent byte
    if it has not been read (it stays out of the stream)."""
    c = passive_open()
    _urg(c, b"aX", 2)
    _urg(c, b"bY", 2)
    assert _oob(c) == b"Y"
    assert c.sk.recvmsg(100) == b"ab"


def test_urgent_byte_in_data_that_fills_a_hole():
    """The byte is lifted out wherever the in-order data comes from."""
    c = passive_open()
    s0 = c.snd
    c.send(b"defXg", seq=s0 + 3)           # out of order
    _urg(c, b"", 7, seq=s0)                 # pointer: byte s0 + 6
    c.send(b"abc", seq=s0)
    assert _oob(c) == b"X"
    assert c.sk.recvmsg(100) == b"abcdefg"


@pytest.mark.parametrize("pos", [0, 1, 4])
def test_urgent_byte_anywhere_in_a_segment(pos):
    c = passive_open()
    data = bytearray(b"abcde")
    data[pos] = ord("!")
    _urg(c, bytes(data), pos + 1)
    assert _oob(c) == b"!"
    assert c.sk.recvmsg(100) == bytes(data[:pos] + data[pos + 1:])
