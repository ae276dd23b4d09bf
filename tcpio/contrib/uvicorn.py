"""Serve an ASGI app with uvicorn on a tcpio Stack.

``TcpioServer`` is a ``uvicorn.Server`` whose listening socket is on the
stack; everything else (h11 or httptools, lifespan, graceful shutdown on
``should_exit`` or a signal) is uvicorn's own::

    import uvicorn
    from tcpio.contrib.uvicorn import TcpioServer

    config = uvicorn.Config(app, lifespan="off")
    server = TcpioServer(config, stack, "10.0.0.1", 8000)
    task = asyncio.create_task(server.serve())
    ...
    server.should_exit = True      # graceful: finishes in-flight requests
    await task
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import uvicorn

if TYPE_CHECKING:
    from tcpio.stack import Stack

logger = logging.getLogger("uvicorn.error")

# uvicorn's exit status when startup fails (uvicorn.server.STARTUP_FAILURE)
STARTUP_FAILURE = 3


class TcpioServer(uvicorn.Server):
    """A uvicorn server listening on ``host:port`` of a tcpio ``stack``."""

    def __init__(self, config: uvicorn.Config, stack: Stack, host: str | None = None,
                 port: int | None = None) -> None:
        super().__init__(config)
        self.stack = stack
        self.host = host if host is not None else config.host
        self.port = port if port is not None else config.port

    async def startup(self, sockets: list[Any] | None = None) -> None:
        """uvicorn's startup, with the listener made by the stack."""
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            sys.exit(STARTUP_FAILURE)
        config = self.config
        # Declared as type[asyncio.Protocol], but uvicorn's HTTP protocol classes
        # take these keywords (uvicorn.Server calls them the same way).
        protocol_class: Callable[..., asyncio.Protocol] = config.http_protocol_class

        def protocol_factory() -> asyncio.Protocol:
            return protocol_class(config=config, server_state=self.server_state,
                                  app_state=self.lifespan.state)

        try:
            server = await self.stack.create_server(protocol_factory, self.host, self.port,
                                                    ssl=config.ssl, backlog=config.backlog)
        except OSError as exc:
            logger.error(exc)
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        # uvicorn declares asyncio.Server here but only calls close() and
        # wait_closed(), which tcpio's Server (an asyncio.AbstractServer) has.
        self.servers = [server]  # type: ignore[list-item]
        host, port = server.sockets[0].getsockname()
        scheme = "https" if config.ssl else "http"
        logger.info("Uvicorn running on tcpio %s://%s:%d", scheme, host, port)
        self.bound_port = port
        self.started = True
