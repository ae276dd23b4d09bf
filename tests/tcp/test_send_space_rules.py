"""send_space() when SO_SNDBUF shrinks below what is already queued.

TcpSock.send_space is what tcp_sendmsg would take now: sk_sndbuf minus the
bytes queued (Linux sk_stream_wspace; the socket is not writable while it is
<= 0, sk_stream_is_writeable).  Lowering SO_SNDBUF does not drop queued data,
so the queue may exceed the buffer; then there is no room: 0 bytes, and
sendmsg takes none.
"""

from __future__ import annotations

import socket

from .helpers import passive_open

SOL = socket.SOL_SOCKET


def test_send_space_is_zero_not_negative_when_sndbuf_shrinks_below_the_queue():
    """SO_SNDBUF 5000 (sndbuf 10000, doubled), 10000 bytes queued unACKed,
    then SO_SNDBUF 2500 (sndbuf 5000): 5000 bytes over the buffer, no room."""
    c = passive_open(setup=lambda s: s.setsockopt(SOL, socket.SO_SNDBUF, 5000))
    assert c.sk.sendmsg(b"x" * 10000) == 10000
    c.sk.setsockopt(SOL, socket.SO_SNDBUF, 2500)
    assert (c.sk.sndbuf, len(c.sk.wq)) == (5000, 10000)
    assert c.sk.send_space() == 0
    assert c.sk.sendmsg(b"y") == 0
