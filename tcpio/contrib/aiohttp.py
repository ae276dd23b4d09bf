"""Serve an aiohttp app on a tcpio Stack.

``TcpioSite`` is a ``web.BaseSite`` like aiohttp's ``TCPSite``; it asks the
stack, not the event loop, for the listening server, and hands it the
runner's ``server`` as the protocol factory.  Plain, chunked, file and
WebSocket responses all work: the transport does what aiohttp expects of
kernel-socket transports (including the sendfile fallback)::

    from aiohttp import web
    from tcpio.contrib.aiohttp import TcpioSite

    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="hello"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = TcpioSite(runner, stack, "10.0.0.1", 8080)
    await site.start()
    ...
    await runner.cleanup()
"""

from __future__ import annotations

from ssl import SSLContext
from typing import TYPE_CHECKING

from aiohttp import web
from yarl import URL

if TYPE_CHECKING:
    from tcpio.stack import Stack


class TcpioSite(web.BaseSite):
    """An aiohttp site listening on ``host:port`` of a tcpio ``stack``."""

    __slots__ = ("_bound_port", "_host", "_port", "_stack")

    def __init__(self, runner: web.BaseRunner, stack: Stack, host: str | None = None,
                 port: int | None = None, *, ssl_context: SSLContext | None = None,
                 backlog: int = 128) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._stack = stack
        self._host = host
        self._port = (8443 if ssl_context else 8080) if port is None else port
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The listening port (the one picked, after start() with port 0)."""
        return self._bound_port if self._bound_port is not None else self._port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self._host or "0.0.0.0", port=self.port))

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        listener = await self._stack.create_server(
            server, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog)
        self._server = listener
        self._bound_port = listener.sockets[0].getsockname()[1]
