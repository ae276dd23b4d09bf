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

import logging
import sys
from typing import Any

import uvicorn

logger = logging.getLogger("uvicorn.error")

# uvicorn's exit status when startup fails (uvicorn.server.STARTUP_FAILURE)
STARTUP_FAILURE = 3


class TcpioServer(uvicorn.Server):
    """A uvicorn server listening on ``host:port`` of a tcpio ``stack``."""

    def __init__(self, config: uvicorn.Config, stack: Any, host: str | None = None,
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

        def protocol_factory() -> Any:
            return config.http_protocol_class(config=config, server_state=self.server_state,
                                              app_state=self.lifespan.state)

        try:
            server = await self.stack.create_server(protocol_factory, self.host, self.port,
                                                    ssl=config.ssl, backlog=config.backlog)
        except OSError as exc:
            logger.error(exc)
            await self.lifespan.shutdown()
            sys.exit(STARTUP_FAILURE)
        self.servers = [server]
        host, port = server.sockets[0].getsockname()
        scheme = "https" if config.ssl else "http"
        logger.info("Uvicorn running on tcpio %s://%s:%d", scheme, host, port)
        self.bound_port = port
        self.started = True
