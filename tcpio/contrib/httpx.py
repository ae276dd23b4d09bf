"""httpx (via httpcore) over a tcpio Stack.

``TcpioBackend`` is an ``httpcore.AsyncNetworkBackend``: httpcore asks it for
TCP connections and gets tcpio streams.  ``TcpioTransport`` plugs it into
``httpx.AsyncClient``; https works (TLS through ``tcpio.streams.start_tls``,
so on uvloop too)::

    import httpx
    from tcpio.contrib.httpx import TcpioTransport

    async with httpx.AsyncClient(transport=TcpioTransport(stack)) as client:
        r = await client.get("http://10.0.0.1:8080/")

There is no DNS in tcpio: URLs name hosts by address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from tcpio import streams

if TYPE_CHECKING:
    from tcpio.stack import Stack


@contextlib.contextmanager
def _map_errors(kind: type[Exception]) -> Iterator[None]:
    """Turn timeouts and socket errors into the httpcore exceptions httpx maps."""
    try:
        yield
    except (TimeoutError, asyncio.TimeoutError) as exc:
        timeout = (httpcore.ConnectTimeout if kind is httpcore.ConnectError else
                   httpcore.WriteTimeout if kind is httpcore.WriteError else
                   httpcore.ReadTimeout)
        raise timeout(str(exc)) from exc
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
        raise kind(str(exc)) from exc


class TcpioStream(httpcore.AsyncNetworkStream):
    """One connection, as the asyncio streams tcpio's open_connection returns."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _map_errors(httpcore.ReadError):
            return await asyncio.wait_for(self._reader.read(max_bytes), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _map_errors(httpcore.WriteError):
            self._writer.write(buffer)
            await asyncio.wait_for(self._writer.drain(), timeout)

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self._writer.wait_closed()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        with _map_errors(httpcore.ConnectError):
            await asyncio.wait_for(
                streams.start_tls(self._writer, ssl_context, server_hostname=server_hostname),
                timeout)
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "is_readable":
            # httpcore asks this of idle pooled connections: readable means
            # the server closed it (EOF) or sent something unexpected.
            # StreamReader has no public "bytes buffered": _buffer is it.
            return self._reader.at_eof() or bool(self._reader._buffer)  # type: ignore[attr-defined]
        return None


class TcpioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, with tcpio ``stack`` in place of the kernel."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        kw: dict[str, Any] = {}
        if local_address is not None:
            kw["local_addr"] = (local_address, 0)
        with _map_errors(httpcore.ConnectError):
            reader, writer = await asyncio.wait_for(
                self.stack.open_connection(host, port, **kw), timeout)
        return TcpioStream(reader, writer)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Any = None) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("tcpio has no unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's


class TcpioTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through a tcpio stack."""

    def __init__(self, stack: Stack, *, verify: ssl.SSLContext | str | bool = True,
                 cert: Any = None, trust_env: bool = True, http1: bool = True,
                 limits: httpx.Limits = DEFAULT_LIMITS,
                 retries: int = 0) -> None:
        super().__init__(verify=verify, cert=cert, trust_env=trust_env, http1=http1,
                         limits=limits, retries=retries)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1, retries=retries,
            network_backend=TcpioBackend(stack))
