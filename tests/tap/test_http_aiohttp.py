"""curl (the kernel's TCP) against an aiohttp app served on tcpio over a TAP.

The oracle is the Linux kernel plus curl: curl's status and byte counts,
the SHA-256 of what it saved, and how many connections curl says it opened
(``num_connects``), cross-checked with tcpio's PassiveOpens counter.
Also home of the helpers the other kernel-peer HTTP tests share.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from conftest import require_tap
from fake_core import both_loops
from netns import KernelPeer, kernel_peer

from tcpio.contrib import http11

pytestmark = pytest.mark.tap

BIG = 50_000_000
SMALL_COUNT = 1000


def pattern_sha256(n: int) -> str:
    """SHA-256 of the body ``/bytes/n`` serves (tcpio.contrib.http11's pattern)."""
    h = hashlib.sha256()
    for chunk in http11.pattern_chunks(n):
        h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


async def curl_download(peer: KernelPeer, url: str, dest: str) -> tuple[int, int]:
    """curl in the namespace saves ``url`` to ``dest``: (status, bytes)."""
    res = await peer.ns.arun("curl", "-s", "--max-time", "120", "-o", dest,
                             "-w", "%{http_code} %{size_download}", url, timeout=150)
    assert res.returncode == 0, res.stderr
    status, size = res.stdout.split()
    return int(status), int(size)


async def curl_many(peer: KernelPeer, url: str, count: int, keepalive: bool
                    ) -> tuple[int, int]:
    """``count`` GETs of ``url`` by one curl: (number of 200s, connections opened)."""
    argv = ["curl", "-s", "--max-time", "120", "-o", "/dev/null",
            "-w", "%{stderr}%{http_code} %{num_connects}\\n"]
    if not keepalive:
        argv += ["-H", "Connection: close"]
    sep = "&" if "?" in url else "?"
    argv.append(f"{url}{sep}n=[1-{count}]")
    res = await peer.ns.arun(*argv, timeout=150)
    assert res.returncode == 0, res.stderr[-500:]
    lines = [line.split() for line in res.stderr.splitlines() if line.strip()]
    ok = sum(1 for status, _ in lines if status == "200")
    return ok, sum(int(n) for _, n in lines)


async def check_big_and_small(peer: KernelPeer, port: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The shared checks: 50 MB download, 1000 small responses with and without keep-alive."""
    base = f"http://{peer.tcpio_ip}:{port}"
    dest = os.path.join(tmp_path, "big.bin")
    status, size = await curl_download(peer, f"{base}/bytes/{BIG}", dest)
    assert (status, size) == (200, BIG)
    assert file_sha256(dest) == pattern_sha256(BIG)
    os.unlink(dest)

    opens = peer.stack.mib().get("PassiveOpens", 0)
    ok, connects = await curl_many(peer, f"{base}/bytes/100", SMALL_COUNT, keepalive=True)
    assert ok == SMALL_COUNT
    assert connects == 1                     # one keep-alive connection for all
    assert peer.stack.mib().get("PassiveOpens", 0) - opens == 1

    opens = peer.stack.mib().get("PassiveOpens", 0)
    ok, connects = await curl_many(peer, f"{base}/bytes/100", SMALL_COUNT, keepalive=False)
    assert ok == SMALL_COUNT
    assert connects == SMALL_COUNT           # a new connection per request
    assert peer.stack.mib().get("PassiveOpens", 0) - opens == SMALL_COUNT


@both_loops
async def test_curl_against_aiohttp_on_tcpio(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_tap()
    web = pytest.importorskip("aiohttp.web")
    from tcpio.__main__ import start_http_server

    async with kernel_peer(ipv6=False) as peer:
        server = await start_http_server(peer.stack, peer.tcpio_ip, 8080, use_aiohttp=True)
        assert server.kind == "aiohttp"
        assert web is not None
        try:
            await check_big_and_small(peer, 8080, tmp_path)
        finally:
            await server.close()
