"""The kernel's side of bench_scale.py: asyncio over kernel sockets, one JSON line out.

    python scale_peer.py send HOST PORT N BYTES     # N concurrent flows to HOST, BYTES each
    python scale_peer.py sink HOST PORT N           # accept N flows, read each to EOF
    python scale_peer.py connect HOST PORT N TOTAL  # TOTAL connect+close, N at a time
    python scale_peer.py accept HOST PORT           # accept and close until killed

bench_scale.py runs it inside the TAP's namespace (the kernel as tcpio's peer)
and on that namespace's loopback against itself (the kernel doing the same
job).  Every flow's payload is a counter pattern the receiver checks as it reads (PatternCheck), so a
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
from collections.abc import Iterator

CHUNK = 64 * 1024


def pattern(flow: int, nbytes: int) -> bytes:
    """Flow ``flow``'s payload: its 4-byte index, then bytes counting up."""
    head = flow.to_bytes(4, "big")
    body = bytes(range(256)) * (nbytes // 256 + 1)
    return (head + body)[:nbytes]


# The body's bytes repeat every 256: any piece of up to CHUNK bytes is a
# slice of this, so neither side ever holds a whole flow.  Built whole and
# checked whole, a 512 MiB flow cost four fresh 512 MiB buffers inside the
# timed part (their page faults, the join, the compare): the 1-flow figure
# fell from ~130 to ~60 MB/s between --total 128 and 512, while 1000 flows'
# 134 KB buffers came from the allocator's reuse (2026-12-07).
_PERIOD = memoryview(bytes(range(256)) * (CHUNK // 256 + 2))
_PERIOD_BYTES = bytes(_PERIOD)


def pattern_chunks(flow: int, nbytes: int) -> Iterator[bytes | memoryview]:
    """pattern(flow, nbytes) in pieces of at most CHUNK bytes."""
    if nbytes <= 0:
        return
    first = min(nbytes, CHUNK)
    yield (flow.to_bytes(4, "big") + bytes(_PERIOD[:max(0, first - 4)]))[:first]
    for off in range(first, nbytes, CHUNK):
        j = (off - 4) % 256
        yield _PERIOD[j:j + min(CHUNK, nbytes - off)]


class PatternCheck:
    """check() as the bytes arrive, a piece at a time (the head, a flow
    index, is whatever came; every body byte must be its offset mod 256)."""

    def __init__(self) -> None:
        self.received = 0
        self.ok = True

    def feed(self, data: bytes) -> None:
        # bytes.startswith at an offset into the period: a memcmp with no
        # copy (a memoryview's == compares item by item, ~100 us per 64 KiB:
        # at 1 flow that was ~40 % of the receiver's time in the timed part)
        view = memoryview(data)
        pos = self.received
        self.received += len(view)
        if pos < 4:                 # the head: any flow index
            view = view[4 - pos:]
            pos = 4
        while view and self.ok:
            piece = view[:CHUNK]
            self.ok = _PERIOD_BYTES.startswith(piece, (pos - 4) % 256)
            pos += len(piece)
            view = view[len(piece):]


async def read_checked(reader: asyncio.StreamReader) -> PatternCheck:
    """Read a flow to EOF, checking it against pattern() as it comes."""
    chk = PatternCheck()
    while chunk := await reader.read(CHUNK):
        chk.feed(chunk)
    return chk


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
            for piece in pattern_chunks(i, nbytes):
                writer.write(piece)
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
        chk = await read_checked(reader)
        bad += not chk.ok
        got.append(chk.received)
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
