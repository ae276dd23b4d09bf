"""curl (the kernel's TCP) against an ASGI app run by uvicorn on tcpio over a TAP.

Same checks as test_http_aiohttp (50 MB download verified by SHA-256, 1000
small responses with and without keep-alive, connection counts from curl
and from tcpio's PassiveOpens), then uvicorn's graceful shutdown.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import require_tap
from fake_core import both_loops
from netns import kernel_peer

from tap.test_http_aiohttp import check_big_and_small
from tcpio.contrib import http11

pytestmark = pytest.mark.tap


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    """ASGI: /bytes/N streams N bytes of http11's pattern in 64 KiB chunks."""
    if scope["type"] != "http":
        return
    status, body, n = http11.body_for(scope["path"])
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(n).encode())]})
    if body is not None:
        await send({"type": "http.response.body", "body": body})
        return
    for chunk in http11.pattern_chunks(n):
        n -= len(chunk)
        await send({"type": "http.response.body", "body": chunk, "more_body": n > 0})


@both_loops
async def test_curl_against_uvicorn_on_tcpio(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_tap()
    uvicorn = pytest.importorskip("uvicorn")
    from tcpio.contrib.uvicorn import TcpioServer

    async with kernel_peer(ipv6=False) as peer:
        config = uvicorn.Config(app, lifespan="off", log_level="warning", http="h11")
        server = TcpioServer(config, peer.stack, peer.tcpio_ip, 8000)
        task = asyncio.create_task(server.serve())
        while not server.started:
            assert not task.done()
            await asyncio.sleep(0.01)
        try:
            await check_big_and_small(peer, 8000, tmp_path)
        finally:
            server.should_exit = True
            await task
        # after a graceful shutdown the port is closed: the kernel gets a RST
        res = await peer.ns.arun("curl", "-s", "--max-time", "10",
                                 f"http://{peer.tcpio_ip}:8000/")
        assert res.returncode == 7          # curl: "Failed to connect"
