"""Adapters that run existing asyncio frameworks on a tcpio Stack.

Each module imports its framework, which is an optional extra:

- ``tcpio.contrib.aiohttp``: ``TcpioSite``, an aiohttp ``web.BaseSite``
  (``pip install tcpio[aiohttp]``);
- ``tcpio.contrib.uvicorn``: ``TcpioServer``, a ``uvicorn.Server`` for any
  ASGI app (``pip install tcpio[uvicorn]``);
- ``tcpio.contrib.httpx``: ``TcpioBackend`` (an httpcore network backend) and
  ``TcpioTransport`` for ``httpx.AsyncClient`` (``pip install tcpio[httpx]``).

They only call the public glue (``stack.create_server``,
``stack.open_connection``), so anything they do, user code can do too.
"""
