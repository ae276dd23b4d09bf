"""errno for bad calls on a TCP sock, checked against the Linux kernel itself."""

from __future__ import annotations

import errno
import socket

import pytest

from .helpers import LOCAL, FakeHost


def kernel_send_errno(listening: bool) -> int:
    """What the kernel's tcp_sendmsg says for a socket that never connected."""
    s = socket.socket()
    try:
        if listening:
            s.bind(("127.0.0.1", 0))
            s.listen()
        s.send(b"x")
    except OSError as exc:
        return exc.errno
    finally:
        s.close()
    raise AssertionError("the kernel accepted a send on an unconnected socket")


@pytest.mark.parametrize("listening", [False, True], ids=["fresh", "listening"])
def test_send_on_unconnected_socket_is_epipe_like_linux(listening):
    expected = kernel_send_errno(listening)
    assert expected == errno.EPIPE
    host = FakeHost()
    sk = host.tcp.socket()
    if listening:
        sk.bind(LOCAL, 8080)
        sk.listen(4)
    with pytest.raises(BrokenPipeError) as ei:
        sk.sendmsg(b"x")
    assert ei.value.errno == expected
