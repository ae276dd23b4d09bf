"""aiohttp served on tcpio (TcpioSite), fetched by httpx over tcpio.

The oracles are independent implementations: httpx/h11 parse what aiohttp
sends (status, chunked framing, bodies), and the WebSocket handshake is
checked against RFC 6455's accept-key rule with a hand-built client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct

import pytest
from fake_core import KINDS, both_loops, make_pair

web = pytest.importorskip("aiohttp.web")
httpx = pytest.importorskip("httpx")

from tcpio.contrib.aiohttp import TcpioSite
from tcpio.contrib.httpx import TcpioTransport

FILE_BYTES = os.urandom(300_000)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# every test runs on the fake core and on real Stacks over a MemoryWire
pytestmark = pytest.mark.parametrize("kind", KINDS)


def make_app(file_path: str) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {request.remote}")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(5):
            await resp.write(b"chunk%d;" % i)
        await resp.write_eof()
        return resp

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(file_path)

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            await sock.send_str("echo:" + msg.data)
        return sock

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/file", file)
    app.router.add_get("/ws", ws)
    return app


async def serve(tmp_path, srv):  # type: ignore[no-untyped-def]
    path = tmp_path / "blob.bin"
    path.write_bytes(FILE_BYTES)
    runner = web.AppRunner(make_app(str(path)))
    await runner.setup()
    site = TcpioSite(runner, srv, "10.0.0.1", 8080)
    await site.start()
    return runner, site


@both_loops
async def test_plain_chunked_and_file_responses(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv, cli = await make_pair(kind, sndbuf=16384, rcvbuf=32768)
    runner, site = await serve(tmp_path, srv)
    assert site.name == "http://10.0.0.1:8080"
    try:
        async with httpx.AsyncClient(transport=TcpioTransport(cli)) as client:
            r = await client.get("http://10.0.0.1:8080/")
            assert r.status_code == 200 and r.text == "hello 10.0.0.2"
            r = await client.get("http://10.0.0.1:8080/chunked")
            assert r.headers["transfer-encoding"] == "chunked"
            assert r.content == b"".join(b"chunk%d;" % i for i in range(5))
            r = await client.get("http://10.0.0.1:8080/file")
            assert r.status_code == 200
            assert int(r.headers["content-length"]) == len(FILE_BYTES)
            assert r.content == FILE_BYTES
            # keep-alive: several requests, one connection each way is reused
            for _ in range(20):
                assert (await client.get("http://10.0.0.1:8080/")).status_code == 200
    finally:
        await runner.cleanup()


async def read_ws_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    return b0, await reader.readexactly(n)


@both_loops
async def test_websocket_echo(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv, cli = await make_pair(kind)
    runner, _ = await serve(tmp_path, srv)
    try:
        reader, writer = await cli.open_connection("10.0.0.1", 8080)
        key = base64.b64encode(os.urandom(16))
        writer.write(b"GET /ws HTTP/1.1\r\nHost: 10.0.0.1\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: " + key + b"\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        expect = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if line)
        accept = {k.lower(): v for k, v in headers.items()}[b"sec-websocket-accept"]
        assert accept == expect
        mask = os.urandom(4)
        payload = b"hi there"
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        writer.write(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        opcode, data = await read_ws_frame(reader)
        assert opcode == 0x81 and data == b"echo:hi there"
        writer.write(bytes([0x88, 0x80]) + mask)        # close frame
        opcode, _ = await read_ws_frame(reader)
        assert opcode == 0x88
        writer.close()
    finally:
        await runner.cleanup()
