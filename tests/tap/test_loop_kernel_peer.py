"""Unmodified asyncio clients on ``tcpio.run`` over a TAP, the Linux kernel as the peer.

The program's host is the loop's stack (10.7.0.2 on the TAP); in the
private namespace behind the TAP are the kernel (10.7.0.1), Debian's dnsmasq
answering for ``zone.test`` (as in test_resolver_dnsmasq.py) and an aiohttp
server on kernel sockets, run as its own process under ``ip netns exec``.
The clients are the libraries' plain APIs (``aiohttp.ClientSession()``,
``httpx.AsyncClient()``, ``asyncio.open_connection``) naming hosts by name.
The oracles: the kernel-side server reports the client address it accepted
(10.7.0.2: tcpio's, over the TAP; nothing else can reach that namespace),
dnsmasq's query log names tcpio's address, and the truncated answer (60 A
records) comes back complete because tcpio asked again over TCP.  The other
way round, ``uvicorn.Server`` on ``tcpio.run`` serves curl in the namespace
(the kernel's TCP as the client; the app sees curl at 10.7.0.1), both from
a task and through ``uvicorn.Server.run`` given ``tcpio.loop_factory`` by
import string (``uvicorn --loop module:name``).
Each test runs over asyncio's default loop and over uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from looputil import LOOP_CLASSES, loop_names
from netns import NetNs, kernel_side

import tcpio

from .test_resolver_dnsmasq import MANY, dnsmasq, needs_dnsmasq

pytestmark = pytest.mark.tap

KERNEL_IP, TCPIO_IP = "10.7.0.1", "10.7.0.2"
HTTP_PORT = 8080

# The kernel-side server: aiohttp on kernel sockets, in its own process.
SERVER = """
import asyncio, sys
from aiohttp import web

async def hello(request):
    return web.json_response({"remote": request.remote, "host": request.host})

async def echo(request):
    return web.Response(body=await request.read())

async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, sys.argv[1], int(sys.argv[2])).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


@dataclass
class Peer:
    """What test_resolver_dnsmasq's ``dnsmasq()`` needs of a KernelPeer."""
    ns: NetNs
    kernel_ip: str = KERNEL_IP


@contextlib.asynccontextmanager
async def kernel_http_server(ns: NetNs) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        *ns.exec_argv(sys.executable, "-c", SERVER, KERNEL_IP, str(HTTP_PORT)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line != b"ready\n":
            err = await proc.stderr.read() if proc.stderr else b""
            pytest.fail(f"kernel aiohttp server did not start: {err.decode(errors='replace')}")
        yield
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def run_over_tap(loop_name: str, tmp_path: Path,
                 main: Callable[[tcpio.Stack, NetNs], Awaitable[Any]]) -> Any:
    """``tcpio.run(program)``: the loop's stack on a TAP into a fresh namespace
    with dnsmasq for zone.test and the kernel aiohttp server."""
    from conftest import require_tap
    require_tap()
    with kernel_side(f"{KERNEL_IP}/24", ipv6=False) as (ns, tap):
        def setup(stack: tcpio.Stack) -> None:
            stack.add_interface(tap, f"{TCPIO_IP}/24")
            stack.set_name_servers([KERNEL_IP], search=["zone.test"], timeout=2, attempts=2)

        async def program() -> Any:
            async with dnsmasq(Peer(ns), tmp_path), kernel_http_server(ns):  # type: ignore[arg-type]
                stack = asyncio.get_running_loop().stack  # type: ignore[attr-defined]
                return await asyncio.wait_for(main(stack, ns), 60)

        return tcpio.run(program(), setup=setup, loop_class=LOOP_CLASSES[loop_name], seed=1)


@needs_dnsmasq
@loop_names
def test_aiohttp_and_httpx_clients_against_a_kernel_server(loop_name: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    httpx = pytest.importorskip("httpx")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    body = bytes(range(256)) * 400          # 100 KiB: many segments each way

    async def main(stack: tcpio.Stack, ns: NetNs) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://www:{HTTP_PORT}/") as r:
                by_aiohttp = await r.json()
            async with session.post(f"http://www.zone.test:{HTTP_PORT}/echo", data=body) as r:
                echoed = await r.read()
        async with httpx.AsyncClient() as client:
            by_httpx = (await client.get(f"http://www.zone.test:{HTTP_PORT}/")).json()
        return by_aiohttp, echoed, by_httpx, stack.mib()

    by_aiohttp, echoed, by_httpx, mib = run_over_tap(loop_name, tmp_path, main)
    assert by_aiohttp == {"remote": TCPIO_IP, "host": f"www:{HTTP_PORT}"}
    assert by_httpx == {"remote": TCPIO_IP, "host": f"www.zone.test:{HTTP_PORT}"}
    assert echoed == body
    assert mib["ActiveOpens"] >= 3
    log = (tmp_path / "dnsmasq.log").read_text()
    assert f"query[A] www.zone.test from {TCPIO_IP}" in log


@needs_dnsmasq
@loop_names
def test_open_connection_by_name_and_a_truncated_answer_over_tcp(loop_name: str,
                                                                 tmp_path: Path) -> None:
    async def main(stack: tcpio.Stack, ns: NetNs) -> Any:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("www", HTTP_PORT)   # search list
        writer.write(b"GET / HTTP/1.1\r\nHost: www\r\nConnection: close\r\n\r\n")
        response = await reader.read()
        peername = writer.get_extra_info("peername")
        writer.close()
        many = await loop.getaddrinfo("many", 80, family=socket.AF_INET,
                                      type=socket.SOCK_STREAM)
        name = await loop.getnameinfo((KERNEL_IP, HTTP_PORT))
        return response, peername, many, name, dict(stack.resolver.stats)

    response, peername, many, name, stats = run_over_tap(loop_name, tmp_path, main)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["remote"] == TCPIO_IP
    assert peername == (KERNEL_IP, HTTP_PORT)
    assert sorted(info[4][0] for info in many) == sorted(MANY)
    assert stats["tcp_fallbacks"] == 1          # dnsmasq truncated "many" over UDP
    # the PTR name from dnsmasq; the service as glibc's getnameinfo names the port
    service = socket.getnameinfo(("127.0.0.1", HTTP_PORT), socket.NI_NUMERICHOST)[1]
    assert name == ("www.zone.test", service)


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = json.dumps({"client": scope["client"][0]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@needs_dnsmasq
@loop_names
def test_uvicorn_with_its_normal_api_serves_curl_in_the_kernel(loop_name: str, tmp_path: Path) -> None:
    uvicorn = pytest.importorskip("uvicorn")

    async def main(stack: tcpio.Stack, ns: NetNs) -> Any:
        server = uvicorn.Server(uvicorn.Config(asgi_app, host=TCPIO_IP, port=8000,
                                               lifespan="off", log_level="warning"))
        task = asyncio.create_task(server.serve())
        try:
            for _ in range(10_000):
                if server.started or task.done():
                    break
                await asyncio.sleep(0)
            assert server.started
            res = await ns.arun("curl", "-sS", f"http://{TCPIO_IP}:8000/", timeout=30)
        finally:
            server.should_exit = True
            await task
        return res

    res = run_over_tap(loop_name, tmp_path, main)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"client": KERNEL_IP}


# uvicorn's own entry point takes a loop factory by import string
# (``uvicorn.run(app, loop="module:name")``, ``uvicorn --loop module:name``):
# tcpio.loop_factory(setup) is one.  The test sets the TAP it is to use.
_uvicorn_tap: list[Any] = []


def _uvicorn_setup(stack: tcpio.Stack) -> None:
    stack.add_interface(_uvicorn_tap[0], f"{TCPIO_IP}/24")


uvicorn_tcpio_loop = tcpio.loop_factory(_uvicorn_setup)
uvicorn_tcpio_uvloop = tcpio.loop_factory(_uvicorn_setup, loop_class=LOOP_CLASSES.get("uvloop"))


@loop_names
def test_uvicorn_run_takes_tcpio_loop_factory_by_import_string(loop_name: str) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    from conftest import require_tap
    require_tap()
    with kernel_side(f"{KERNEL_IP}/24", ipv6=False) as (ns, tap):
        _uvicorn_tap[:] = [tap]
        factory = "uvicorn_tcpio_loop" if loop_name == "asyncio" else "uvicorn_tcpio_uvloop"
        server = uvicorn.Server(uvicorn.Config(asgi_app, host=TCPIO_IP, port=8001,
                                               lifespan="off", log_level="warning",
                                               loop=f"{__name__}:{factory}"))
        result: dict[str, Any] = {}

        def kernel_client() -> None:
            # curl retries until uvicorn (in this process's main thread) listens
            try:
                result["curl"] = ns.run("curl", "-sS", "--retry", "50", "--retry-delay", "0",
                                        "--retry-all-errors", "--max-time", "20",
                                        f"http://{TCPIO_IP}:8001/", timeout=60)
            finally:
                server.should_exit = True

        thread = threading.Thread(target=kernel_client)
        thread.start()
        try:
            server.run()                         # uvicorn.run's own path: asyncio_run + factory
        finally:
            server.should_exit = True
            thread.join()
        _uvicorn_tap.clear()
    res = result["curl"]
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"client": KERNEL_IP}
