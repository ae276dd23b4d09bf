"""httpx over tcpio (TcpioBackend/TcpioTransport): https, errors, pooling.

Oracles: aiohttp as an independent HTTP server; Python's ssl verifying a
throwaway certificate; httpx's documented exception classes.
"""

from __future__ import annotations

import pytest
from fake_core import KINDS, FakeNet, both_loops, make_pair
from test_tls import tls_contexts

web = pytest.importorskip("aiohttp.web")
httpx = pytest.importorskip("httpx")

from tcpio.contrib.aiohttp import TcpioSite
from tcpio.contrib.httpx import TcpioBackend, TcpioTransport

# every test runs on the fake core and on real Stacks over a MemoryWire
pytestmark = pytest.mark.parametrize("kind", KINDS)


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=b"secret " * 10000 if request.secure else b"plain")


async def serve(srv, port: int, ssl_context=None):  # type: ignore[no-untyped-def]
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    await TcpioSite(runner, srv, "10.0.0.1", port, ssl_context=ssl_context).start()
    return runner


@both_loops
async def test_https_via_start_tls(kind: str) -> None:
    server_ctx, client_ctx = tls_contexts()
    srv, cli = await make_pair(kind)
    runner = await serve(srv, 8443, server_ctx)
    try:
        async with httpx.AsyncClient(transport=TcpioTransport(cli, verify=client_ctx)) as c:
            for _ in range(3):
                r = await c.get("https://10.0.0.1:8443/")
                assert r.status_code == 200 and r.content == b"secret " * 10000
            # an untrusted certificate is an error, as with kernel sockets
        async with httpx.AsyncClient(transport=TcpioTransport(cli)) as c:
            with pytest.raises(httpx.ConnectError):
                await c.get("https://10.0.0.1:8443/")
    finally:
        await runner.cleanup()


@both_loops
async def test_connect_errors_map_to_httpx_exceptions(kind: str) -> None:
    _, cli = await make_pair(kind)
    async with httpx.AsyncClient(transport=TcpioTransport(cli)) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get("http://10.0.0.1:9/")
        if kind == "fake":      # real SYN retries would take minutes of wall time
            with pytest.raises(httpx.ConnectTimeout):       # ETIMEDOUT from the core
                await c.get(f"http://{FakeNet.UNREACHABLE}:80/")


@both_loops
async def test_backend_stream_extra_info(kind: str) -> None:
    srv, cli = await make_pair(kind)
    runner = await serve(srv, 8080)
    try:
        stream = await TcpioBackend(cli).connect_tcp("10.0.0.1", 8080)
        assert stream.get_extra_info("server_addr") == ("10.0.0.1", 8080)
        assert stream.get_extra_info("client_addr")[0] == "10.0.0.2"
        assert stream.get_extra_info("is_readable") is False
        await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := await stream.read(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"plain")
        await stream.aclose()
    finally:
        await runner.cleanup()
