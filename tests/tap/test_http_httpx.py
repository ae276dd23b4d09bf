"""tcpio's httpx client downloads 50 MB from the kernel's ``python -m http.server``.

The server runs inside the namespace on kernel sockets; the oracle is the
file it serves (SHA-256 and length compared with what httpx received over
tcpio).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys

import pytest
from conftest import require_tap
from fake_core import both_loops
from netns import kernel_peer

pytestmark = pytest.mark.tap

SIZE = 50_000_000


@both_loops
async def test_httpx_downloads_from_kernel_http_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_tap()
    httpx = pytest.importorskip("httpx")
    from tcpio.contrib.httpx import TcpioTransport

    blob = os.urandom(1 << 20) * (SIZE >> 20) + os.urandom(SIZE % (1 << 20))
    (tmp_path / "big.bin").write_bytes(blob)
    expect = hashlib.sha256(blob).hexdigest()
    del blob
    async with kernel_peer(ipv6=False) as peer:
        proc = await asyncio.create_subprocess_exec(
            *peer.ns.exec_argv(sys.executable, "-m", "http.server", "8000",
                               "--bind", peer.kernel_ip, "--directory", str(tmp_path)),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        url = f"http://{peer.kernel_ip}:8000/big.bin"
        try:
            async with httpx.AsyncClient(transport=TcpioTransport(peer.stack),
                                         timeout=60) as client:
                for _ in range(200):          # until the server listens
                    try:
                        head = await client.head(url)
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
                else:
                    pytest.fail("http.server never came up")
                assert int(head.headers["content-length"]) == SIZE
                h = hashlib.sha256()
                got = 0
                async with client.stream("GET", url) as r:
                    assert r.status_code == 200
                    async for chunk in r.aiter_raw():
                        h.update(chunk)
                        got += len(chunk)
                assert got == SIZE
                assert h.hexdigest() == expect
        finally:
            proc.kill()
            await proc.wait()
