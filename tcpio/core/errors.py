"""Errors with errno codes, as the BSD socket API reports them.

``sock_error(errno.ECONNREFUSED)`` returns a ``ConnectionRefusedError`` with
``.errno`` set, because ``OSError(errno, msg)`` picks the subclass itself.
"""

from __future__ import annotations

import os


def sock_error(code: int, detail: str | None = None) -> OSError:
    msg = os.strerror(code)
    if detail:
        msg = f"{msg} ({detail})"
    return OSError(code, msg)

