"""TLS for tcpio transports: asyncio's own SSL protocol, layered on top.

``loop.start_tls`` cannot be used: uvloop refuses transports it did not make
(TypeError).  Wrapping the application protocol in
``asyncio.sslproto.SSLProtocol`` works on every loop: the TcpTransport carries
ciphertext to and from the SSLProtocol, which hands the application an
``_SSLProtocolTransport`` with plaintext.  That is also what asyncio itself
does for ``create_connection(ssl=...)`` on kernel sockets.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
from asyncio import sslproto
from typing import Any

# ssl_shutdown_timeout appeared in Python 3.11.
_HAS_SHUTDOWN_TIMEOUT = "ssl_shutdown_timeout" in inspect.signature(
    sslproto.SSLProtocol.__init__).parameters


def wrap_protocol(loop: asyncio.AbstractEventLoop, app_protocol: asyncio.BaseProtocol,
                  sslcontext: ssl.SSLContext, waiter: asyncio.Future[None], *,
                  server_side: bool, server_hostname: str | None = None,
                  ssl_handshake_timeout: float | None = None,
                  ssl_shutdown_timeout: float | None = None,
                  call_connection_made: bool = True) -> sslproto.SSLProtocol:
    """An SSLProtocol feeding ``app_protocol``; ``waiter`` resolves after the handshake."""
    kwargs: dict[str, Any] = {"server_side": server_side,
                              "server_hostname": server_hostname,
                              "ssl_handshake_timeout": ssl_handshake_timeout,
                              "call_connection_made": call_connection_made}
    if _HAS_SHUTDOWN_TIMEOUT:
        kwargs["ssl_shutdown_timeout"] = ssl_shutdown_timeout
    return sslproto.SSLProtocol(loop, app_protocol, sslcontext, waiter, **kwargs)


async def start_tls(transport: asyncio.Transport, protocol: asyncio.BaseProtocol,
                    sslcontext: ssl.SSLContext, *, server_side: bool = False,
                    server_hostname: str | None = None,
                    ssl_handshake_timeout: float | None = None,
                    ssl_shutdown_timeout: float | None = None) -> asyncio.Transport:
    """Upgrade a connected tcpio transport to TLS: ``loop.start_tls`` for any loop.

    Same steps as asyncio's own ``start_tls``: stop reading, put an
    SSLProtocol between the transport and ``protocol`` (which is not told
    about a new connection), restart reading, wait for the handshake.
    Returns the plaintext transport to use from now on.
    """
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    ssl_protocol = wrap_protocol(loop, protocol, sslcontext, waiter, server_side=server_side,
                                 server_hostname=server_hostname,
                                 ssl_handshake_timeout=ssl_handshake_timeout,
                                 ssl_shutdown_timeout=ssl_shutdown_timeout,
                                 call_connection_made=False)
    transport.pause_reading()
    transport.set_protocol(ssl_protocol)
    conmade = loop.call_soon(ssl_protocol.connection_made, transport)
    resume = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        conmade.cancel()
        resume.cancel()
        raise
    return ssl_protocol._app_transport
