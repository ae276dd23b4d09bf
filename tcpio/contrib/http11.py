"""A tiny HTTP/1.1 server and client on asyncio streams (no dependencies).

Enough HTTP for the ``tcpio`` demo and for tests when no framework is
installed: GET/HEAD with Content-Length bodies, keep-alive by default,
``Connection: close`` honoured.  Not a general-purpose HTTP implementation
(no chunked request bodies, no pipelining guarantees beyond in-order replies).

Server routes (``handle``):
- ``/`` a short greeting; ``/bytes/N`` N bytes (a repeating pattern);
- anything else 404.

Example::

    server = await stack.start_server(http11.handle, "10.0.0.1", 80)
    reader, writer = await stack.open_connection("10.0.0.1", 80)
    status, body = await http11.get(reader, writer, "/bytes/1000")
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

MAX_BODY = 1 << 30
_PATTERN = bytes(range(256)) * 256      # 64 KiB, sliced for /bytes/N


def body_for(path: str) -> tuple[int, bytes | None, int]:
    """(status, small body or None, length) for a path (a query string is ignored)."""
    path = path.partition("?")[0]
    if path == "/":
        return 200, b"hello from tcpio\n", 17
    if path.startswith("/bytes/"):
        try:
            n = int(path[7:])
        except ValueError:
            return 400, b"bad length\n", 11
        if 0 <= n <= MAX_BODY:
            return 200, None, n
    return 404, b"not found\n", 10


def pattern_chunks(n: int) -> Iterator[bytes]:
    """The ``/bytes/n`` body in chunks of at most 64 KiB."""
    while n > 0:
        chunk = _PATTERN[:min(n, len(_PATTERN))]
        n -= len(chunk)
        yield chunk


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """A request or status line and the lower-cased header fields."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.partition(":") for line in lines[1:] if line)}
    return lines[0], headers


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve requests on one connection until the client closes or asks to."""
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                break
            first, headers = _parse_head(head)
            parts = first.split(" ")
            if len(parts) != 3:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                break
            method, path, version = parts
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)      # request bodies are ignored
            close = (headers.get("connection", "").lower() == "close"
                     or version == "HTTP/1.0")
            status, body, n = body_for(path)
            reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: {n}\r\n"
                         f"Content-Type: application/octet-stream\r\n"
                         f"{'Connection: close' + chr(13) + chr(10) if close else ''}"
                         f"\r\n".encode())
            if method != "HEAD":
                if body is not None:
                    writer.write(body)
                else:
                    for chunk in pattern_chunks(n):
                        writer.write(chunk)
                        await writer.drain()
            await writer.drain()
            if close:
                break
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str,
              host: str = "tcpio", close: bool = False) -> tuple[int, bytes]:
    """One GET on an open connection: (status, body)."""
    extra = "Connection: close\r\n" if close else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
    await writer.drain()
    first, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
    status = int(first.split(" ")[1])
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return status, body
