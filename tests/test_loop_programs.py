"""Unmodified asyncio programs on ``tcpio.run``: aiohttp, httpx, uvicorn, plain streams.

Nothing here imports tcpio's adapters (contrib/): the programs use their
libraries' normal APIs (``web.TCPSite``, ``aiohttp.ClientSession()``,
``httpx.AsyncClient()``, ``uvicorn.Server``, ``asyncio.open_connection``)
and find the network through the running loop.  The oracle that the traffic
went through tcpio and not the kernel: the addresses exist only on the
MemoryWire (10.0.0.0/24 is not configured on this machine; a kernel connect
would fail or go elsewhere), the server sees the client as 10.0.0.2, and the
stacks' MIB counts the segments.  Names resolve through the peer's DNS
responder (looputil.NameServer), which records each question it got.
Each test runs over asyncio's default loop and over uvloop.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import pytest
from looputil import CLIENT_IP, PEER_IP, Net, loop_names, on_tcpio, until
from test_tls import tls_contexts

import tcpio

web = pytest.importorskip("aiohttp.web")
aiohttp = pytest.importorskip("aiohttp")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

FILE_BYTES = os.urandom(200_000)


def aiohttp_app(tmp_path: Any) -> Any:
    path = tmp_path / "blob.bin"
    path.write_bytes(FILE_BYTES)

    async def hello(request: Any) -> Any:
        return web.json_response({"remote": request.remote, "host": request.host})

    async def echo(request: Any) -> Any:
        return web.Response(body=await request.read())

    async def blob(request: Any) -> Any:
        return web.FileResponse(path)     # loop.sendfile on the transport

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/echo", echo)
    app.router.add_get("/blob", blob)
    return app


async def start_aiohttp(net: Net, tmp_path: Any, port: int = 8080) -> Any:
    """The server program: aiohttp's AppRunner and TCPSite, on the peer host."""
    runner = web.AppRunner(aiohttp_app(tmp_path))
    await runner.setup()
    with tcpio.use_stack(net.peer):
        await web.TCPSite(runner, PEER_IP, port).start()
    return runner


@loop_names
def test_aiohttp_server_and_client_session(loop_name: str, tmp_path: Any) -> None:
    async def main(net: Net) -> Any:
        runner = await start_aiohttp(net, tmp_path)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get("http://www.example.test:8080/") as r:
                    hello = await r.json()
                body = os.urandom(100_000)
                async with session.post("http://www:8080/echo", data=body) as r:
                    echoed = await r.read()
                async with session.get("http://www.example.test:8080/blob") as r:
                    blob = await r.read()
        finally:
            await runner.cleanup()
        return hello, echoed == body, blob == FILE_BYTES, net.dns.questions

    hello, echoed, blob, questions = on_tcpio(loop_name, main)
    assert hello == {"remote": CLIENT_IP, "host": "www.example.test:8080"}
    assert echoed and blob
    # the names went to the peer's name server over the stack: "www" via the search list
    assert "www.example.test." in questions


@loop_names
def test_httpx_async_client_without_a_tcpio_transport(loop_name: str, tmp_path: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    async def main(net: Net) -> Any:
        runner = await start_aiohttp(net, tmp_path)
        try:
            async with httpx.AsyncClient() as client:
                first = await client.get("http://www.example.test:8080/")
                second = await client.post(f"http://{PEER_IP}:8080/echo", content=b"x" * 70_000)
        finally:
            await runner.cleanup()
        return first.json(), second.content, net.peer.mib()

    hello, echoed, mib = on_tcpio(loop_name, main)
    assert hello == {"remote": CLIENT_IP, "host": "www.example.test:8080"}
    assert echoed == b"x" * 70_000
    assert mib["PassiveOpens"] >= 1


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = json.dumps({"client": scope["client"][0], "server": list(scope["server"])}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@loop_names
def test_uvicorn_with_its_normal_api(loop_name: str) -> None:
    async def main(net: Net) -> Any:
        config = uvicorn.Config(asgi_app, host=PEER_IP, port=8000, lifespan="off",
                                log_level="warning")
        server = uvicorn.Server(config)
        with tcpio.use_stack(net.peer):           # the task (and its server) is the peer's
            task = asyncio.create_task(server.serve())
        await until(lambda: server.started or task.done())
        try:
            reader, writer = await asyncio.open_connection("peer", 8000)
            writer.write(b"GET / HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n")
            response = await reader.read()
            writer.close()
        finally:
            server.should_exit = True
            await task
        return response

    response = on_tcpio(loop_name, main)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body) == {"client": CLIENT_IP, "server": [PEER_IP, 8000]}


@loop_names
def test_open_connection_by_name_resolves_through_the_stack(loop_name: str) -> None:
    async def main(net: Net) -> Any:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        with tcpio.use_stack(net.peer):
            server = await asyncio.start_server(echo, PEER_IP, 7)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("www", 7, type=0)
        reader, writer = await asyncio.open_connection("peer", 7)
        writer.write(b"by name")
        got = await reader.read()
        peername = writer.get_extra_info("peername")
        writer.close()
        try:
            await asyncio.open_connection("nosuch", 7)
        except OSError as exc:
            missing: Any = exc
        server.close()
        await server.wait_closed()
        return infos, got, peername, missing, net.dns.questions

    infos, got, peername, missing, questions = on_tcpio(loop_name, main)
    assert {info[4] for info in infos} == {(PEER_IP, 7)}
    assert got == b"by name" and peername == (PEER_IP, 7)
    # glibc's verdict for a name no server knows: EAI_NONAME, after the search list
    assert isinstance(missing, socket.gaierror) and missing.errno == socket.EAI_NONAME
    # every name went to the peer's server, through the search list ("nosuch" also as is)
    assert list(dict.fromkeys(questions)) == ["www.example.test.", "peer.example.test.",
                                              "nosuch.example.test.", "nosuch."]


@loop_names
def test_https_aiohttp_and_httpx_clients(loop_name: str, tmp_path: Any,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server_ctx, client_ctx = tls_contexts(PEER_IP)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    async def main(net: Net) -> Any:
        runner = web.AppRunner(aiohttp_app(tmp_path))
        await runner.setup()
        with tcpio.use_stack(net.peer):
            await web.TCPSite(runner, PEER_IP, 8443, ssl_context=server_ctx).start()
        try:
            async with aiohttp.ClientSession() as session, \
                    session.get(f"https://{PEER_IP}:8443/", ssl=client_ctx) as r:
                by_aiohttp = await r.json()
            async with httpx.AsyncClient(verify=client_ctx) as client:
                r2 = await client.get(f"https://{PEER_IP}:8443/blob")
        finally:
            await runner.cleanup()
        return by_aiohttp, r2.content

    # the clients verified the peer's certificate (a failed handshake raises)
    by_aiohttp, blob = on_tcpio(loop_name, main)
    assert by_aiohttp == {"remote": CLIENT_IP, "host": f"{PEER_IP}:8443"}
    assert blob == FILE_BYTES
