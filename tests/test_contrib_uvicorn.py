"""An ASGI app served by uvicorn (h11) on tcpio, fetched by httpx over tcpio.

Oracle: httpx parses uvicorn's responses; graceful shutdown is uvicorn's own
rule (in-flight requests finish, new connections are refused).
"""

from __future__ import annotations

import asyncio

import pytest
from fake_core import KINDS, both_loops, make_pair

uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from tcpio.contrib.httpx import TcpioTransport
from tcpio.contrib.uvicorn import TcpioServer

# every test runs on the fake core and on real Stacks over a MemoryWire
pytestmark = pytest.mark.parametrize("kind", KINDS)


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(0.2)
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d " % i,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    text = f"{scope['method']} {scope['path']} from {scope['client'][0]} {len(body)}"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text.encode()})


async def start(srv) -> tuple[TcpioServer, asyncio.Task]:  # type: ignore[no-untyped-def]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", http="h11")
    server = TcpioServer(config, srv, "10.0.0.1", 8000)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.005)
    return server, task


@both_loops
async def test_requests_and_streaming_response(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server, task = await start(srv)
    async with httpx.AsyncClient(transport=TcpioTransport(cli)) as client:
        r = await client.get("http://10.0.0.1:8000/x")
        assert r.status_code == 200 and r.text == "GET /x from 10.0.0.2 0"
        r = await client.post("http://10.0.0.1:8000/up", content=b"z" * 100_000)
        assert r.text == "POST /up from 10.0.0.2 100000"
        r = await client.get("http://10.0.0.1:8000/stream")
        assert r.headers["transfer-encoding"] == "chunked"
        assert r.text == "part0 part1 part2 "
    server.should_exit = True
    await task


@both_loops
async def test_graceful_shutdown_finishes_inflight_request(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server, task = await start(srv)
    async with httpx.AsyncClient(transport=TcpioTransport(cli)) as client:
        slow = asyncio.create_task(client.get("http://10.0.0.1:8000/slow"))
        await asyncio.sleep(0.05)
        server.should_exit = True
        r = await slow
        assert r.status_code == 200 and r.text.startswith("GET /slow")
        await task
        with pytest.raises(httpx.ConnectError):
            await client.get("http://10.0.0.1:8000/")
