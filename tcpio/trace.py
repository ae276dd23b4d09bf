"""Per-connection tracing: sinks and the JSON-lines format (docs/internals.md, "Tracing").

Switch it on for a whole stack with ``stack.set_trace(sink)``, or for one
socket with ``trace_socket(sock, sink)``; a sink is any callable taking one
event dict.  ``JsonLinesWriter`` is the sink that writes the JSON-lines file
``tcpio plot`` reads, ``read_trace`` reads one back::

    with JsonLinesWriter("trace.jsonl") as w:
        stack.set_trace(w)
        ...
        stack.set_trace(None)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import IO, Any

from tcpio._version import __version__
from tcpio.core.tcp.tcp_trace import CA_NAMES, STATE_NAMES, TIMER_NAMES, SockTracer

__all__ = ["CA_NAMES", "FORMAT", "STATE_NAMES", "TIMER_NAMES", "VERSION", "JsonLinesWriter",
           "SockTracer", "read_trace", "trace_socket"]

FORMAT = "tcpio-trace"
VERSION = 1

TraceSink = Callable[[dict[str, Any]], None]


def _core_sock(sock: Any) -> Any:
    """The core TcpSock behind a tcpio Socket, a transport or a TcpSock."""
    for _ in range(3):
        if hasattr(sock, "set_trace") and hasattr(sock, "rtt_est"):
            return sock
        inner = getattr(sock, "_sk", None)
        if inner is None:
            inner = getattr(sock, "_sock", None)
        if inner is None:
            break
        sock = inner
    raise TypeError(f"not a tcpio TCP socket: {sock!r}")


def trace_socket(sock: Any, sink: TraceSink | None) -> None:
    """Trace one connection (a ``tcpio.socket.Socket``, a tcpio transport's
    socket, or a core ``TcpSock``) to ``sink``; None stops.  A listener's sink
    goes to the connections it accepts."""
    _core_sock(sock).set_trace(sink)


class JsonLinesWriter:
    """A trace sink writing one JSON object per line, after a header line
    ``{"ev": "trace_start", "format": "tcpio-trace", "version": 1, ...}``.
    ``target``: a path (opened, and closed by ``close``) or a binary file."""

    def __init__(self, target: str | Any) -> None:
        if isinstance(target, (str, bytes)) or hasattr(target, "__fspath__"):
            self._f: IO[bytes] = open(target, "wb")  # noqa: SIM115 (closed by close())
            self._owned = True
        else:
            self._f = target
            self._owned = False
        self._write({"ev": "trace_start", "format": FORMAT, "version": VERSION,
                     "tcpio": __version__})

    def _write(self, event: dict[str, Any]) -> None:
        self._f.write(json.dumps(event, separators=(", ", ": ")).encode() + b"\n")

    def __call__(self, event: dict[str, Any]) -> None:
        self._write(event)

    def close(self) -> None:
        self._f.flush()
        if self._owned:
            self._f.close()

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_trace(source: str | Any) -> Iterator[dict[str, Any]]:
    """The events of a JSON-lines trace (a path or a text/binary file), the
    header line included."""
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        with open(source, "rb") as f:
            yield from _lines(f)
    else:
        yield from _lines(source)


def _lines(f: Any) -> Iterator[dict[str, Any]]:
    for line in f:
        if isinstance(line, bytes):
            line = line.decode()
        line = line.strip()
        if line:
            yield json.loads(line)
