"""A TAP's fd without root: a non-blocking SOCK_SEQPACKET socketpair keeps
datagram boundaries (one frame per read and per write, EAGAIN when empty or
full); used by tests/test_devio.py and tests/test_tap_devio_rules.py."""

from __future__ import annotations

import socket


def seqpacket_pair() -> tuple[socket.socket, socket.socket]:
    """(ours, the peer), both non-blocking."""
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    peer.setblocking(False)
    return ours, peer


def drain(peer: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``peer``, in order."""
    out = []
    while True:
        try:
            out.append(peer.recv(70000))
        except BlockingIOError:
            return out
