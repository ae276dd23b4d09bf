"""The kernel's side of bench_scale.py: asyncio over kernel sockets, one JSON line out.

    python scale_peer.py send HOST PORT N BYTES     # N concurrent flows to HOST, BYTES each
    python scale_peer.py sink HOST PORT N           # accept N flows, read each to EOF
    python scale_peer.py connect HOST PORT N TOTAL  # TOTAL connect+close, N at a time
    python scale_peer.py accept HOST PORT           # accept and close until killed

bench_scale.py runs it inside the TAP's namespace (the kernel as tcpio's peer)
and on that namespace's loopback against itself (the kernel doing the same
job).  Every flow's payload is a counter pattern the receiver checks, so a
figure is never for bytes that arrived wrong.  Timing is from the first
connect (or accept) to the last EOF, on this side.
"""

from __future__ import annotations

import asyncio
import errno
import json
import resource
import socket
import sys
import time

CHUNK = 64 * 1024


def pattern(flow: int, nbytes: int) -> bytes:
    """Flow ``flow``'s payload: its 4-byte index, then bytes counting up."""
    head = flow.to_bytes(4, "big")
    body = bytes(range(256)) * (nbytes // 256 + 1)
    return (head + body)[:nbytes]


def check(data: bytes) -> bool:
    if len(data) < 4:
        return True
    flow = int.from_bytes(data[:4], "big")
    return data == pattern(flow, len(data))


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def send(host: str, port: int, n: int, nbytes: int) -> dict:
    """A flow that fails (ECONNRESET, ...) is counted by its errno name and
    the others go on; "bytes" counts the flows that completed."""
    errors: dict[str, int] = {}

    async def flow(i: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            data = memoryview(pattern(i, nbytes))
            for off in range(0, nbytes, CHUNK):
                writer.write(data[off:off + CHUNK])
                await writer.drain()
            writer.write_eof()
            await reader.read()             # the receiver closes when it has it all
            writer.close()
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            errors[name] = errors.get(name, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(flow(i) for i in range(n)))
    failed = sum(errors.values())
    return {"elapsed": time.perf_counter() - t0, "bytes": (n - failed) * nbytes,
            "failed": failed, "errors": errors}


async def sink(host: str, port: int, n: int) -> dict:
    got: list[int] = []
    bad = 0
    first: list[float] = []
    done = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal bad
        if not first:
            first.append(time.perf_counter())
        data = await reader.read()
        bad += not check(data)
        got.append(len(data))
        writer.close()
        if len(got) == n and not done.done():
            done.set_result(time.perf_counter())

    server = await asyncio.start_server(handle, host, port, backlog=4096)
    print(json.dumps({"listening": True}), flush=True)
    t_end = await done
    server.close()
    return {"elapsed": t_end - first[0], "bytes": sum(got), "flows": len(got), "bad": bad}


async def connect(host: str, port: int, n: int, total: int) -> dict:
    left = total
    failed = 0

    async def worker() -> None:
        nonlocal left, failed
        while left > 0:
            left -= 1
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                failed += 1
                continue
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(n, total))))
    return {"elapsed": time.perf_counter() - t0, "conns": total - failed, "failed": failed}


async def accept(host: str, port: int) -> dict:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    await asyncio.start_server(handle, host, port, backlog=4096, reuse_address=True)
    print(json.dumps({"listening": True}), flush=True)
    await asyncio.Event().wait()
    return {}


def main() -> None:
    raise_nofile()
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rest = [int(x) for x in sys.argv[4:]]
    socket.setdefaulttimeout(None)
    fn = {"send": send, "sink": sink, "connect": connect, "accept": accept}[mode]
    out = asyncio.run(fn(host, port, *rest))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
