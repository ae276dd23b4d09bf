"""HTTP keep-alive requests/s: kernel client -> aiohttp on tcpio over a TAP,
beside the same aiohttp app on kernel sockets, in the same run.

    sudo python benchmarks/bench_http.py [--requests 5000] [--parallel 8]
                                         [--size 100] [--rounds 3] [--uvloop]

Setup: a private network namespace (tests/netns.py) holds the TAP whose far
end is a tcpio Stack (10.7.0.2); the same process also serves the same
aiohttp app on a kernel socket inside that namespace (10.7.0.1:8081), so both
servers share one event loop and one Python process.  The client is ``curl``
in the namespace: ``--parallel-max P`` connections, each keep-alive, fetching
``/bytes/SIZE`` ``--requests`` times in total.  The two servers alternate
for ``--rounds`` rounds; the best round of each is reported.

Two-process benchmark on a 2-vCPU shared machine: curl and this process may
land on the same or on different CPUs (FIELD-NOTES.md: a cross-CPU wakeup
costs ~30 us).  Nothing is pinned here unless you run it under ``taskset``.
Remember also that asyncio's plain Protocol path on kernel sockets allocates
a 256 KiB read buffer per read (FIELD-NOTES.md), which aiohttp's kernel-socket
side pays and tcpio's transport does not.  Read the ratio, not the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from aiohttp import web

from tcpio.contrib import http11
from tcpio.contrib.aiohttp import TcpioSite


def make_app() -> web.Application:
    async def data(request: web.Request) -> web.Response:
        status, body, n = http11.body_for(request.path)
        if body is None:
            body = b"".join(http11.pattern_chunks(n))
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", data)
    return app


async def curl_round(ns, url: str, requests: int, parallel: int) -> float:  # type: ignore[no-untyped-def]
    """requests/s for ``requests`` keep-alive GETs by ``parallel`` curl connections."""
    argv = ["curl", "-s", "--no-progress-meter", "-Z", "--parallel-max", str(parallel),
            "-o", "/dev/null", "-w", "%{stderr}CODE=%{http_code}\\n",
            f"{url}?n=[1-{requests}]"]
    t0 = time.perf_counter()
    res = await ns.arun(*argv, timeout=600)
    elapsed = time.perf_counter() - t0
    ok = res.stderr.count("CODE=200")
    if res.returncode != 0 or ok != requests:
        raise RuntimeError(f"curl: rc={res.returncode}, {ok}/{requests} ok: {res.stderr[-300:]}")
    return requests / elapsed


async def main(args: argparse.Namespace) -> None:
    from netns import kernel_peer

    async with kernel_peer(ipv6=False) as peer:
        peer.ns.ip("link", "set", "lo", "up")
        runner = web.AppRunner(make_app(), access_log=None)
        await runner.setup()
        await TcpioSite(runner, peer.stack, peer.tcpio_ip, 8080).start()
        ksock = peer.ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        ksock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ksock.bind((peer.kernel_ip, 8081))
        await web.SockSite(runner, ksock).start()
        targets = {
            "aiohttp on tcpio (TAP)": f"http://{peer.tcpio_ip}:8080/bytes/{args.size}",
            "aiohttp on kernel sockets": f"http://{peer.kernel_ip}:8081/bytes/{args.size}",
        }
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(f"keep-alive GET /bytes/{args.size}: {args.requests} requests, "
              f"{args.parallel} connections, {args.rounds} rounds, loop={loop_name}, "
              f"pid {os.getpid()} (unpinned unless run under taskset)")
        best = dict.fromkeys(targets, 0.0)
        for r in range(args.rounds):
            for name, url in targets.items():
                rps = await curl_round(peer.ns, url, args.requests, args.parallel)
                best[name] = max(best[name], rps)
                print(f"  round {r + 1}: {name:<28} {rps:9.0f} req/s", flush=True)
        print("best:")
        for name, rps in best.items():
            print(f"  {name:<28} {rps:9.0f} req/s")
        kernel = best["aiohttp on kernel sockets"]
        if kernel:
            print(f"  ratio tcpio/kernel: {best['aiohttp on tcpio (TAP)'] / kernel:.2f}")
        await runner.cleanup()
        ksock.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--uvloop", action="store_true")
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (TAP in a private network namespace)")
    if a.uvloop:
        import uvloop
        uvloop.run(main(a))
    else:
        asyncio.run(main(a))
