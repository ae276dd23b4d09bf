"""TcpSock.sock_error() with no error pending.

Linux sock_error(): ``if (likely(!READ_ONCE(sk->sk_err))) return 0;`` -- no
error, errno 0, and nothing to clear.  tcpio returns it as an OSError whose
errno is 0 and whose message is strerror(0) ("Success", as glibc says).
"""

from __future__ import annotations

import os

from .helpers import passive_open


def test_sock_error_with_nothing_pending_is_errno_0_success():
    c = passive_open()
    assert c.sk.sk_err == 0
    err = c.sk.sock_error()
    assert (type(err), err.errno, err.strerror) == (OSError, 0, os.strerror(0))
    assert c.sk.sk_err == 0
