"""How much of the in-memory bulk cost is the send buffer's size (issue 12).

    python benchmarks/bench_wire_sndbuf.py [--mib 128] [--runs 5]

bench_tcp.py's ``bulk tcpio -> tcpio, MemoryWire MTU 64K`` transfer (its
``stream_bulk`` over ``wire_pair(65535, gso=True)``), with the sender's
socket left as it is (autotuning takes its send buffer to tcp_wmem's 4 MiB,
and the queue holds that much: more than this machine's caches) or with
SO_SNDBUF or TCP_NOTSENT_LOWAT set.  The cases alternate within each run;
the output is tcpio's CPU microseconds per 64 KiB moved (process time over
the transfer: the steadier figure on a shared machine) and Gbit/s, median
and range over ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))                   # run from a checkout
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_tcp

TCP_NOTSENT_LOWAT = 25
CASES: list[tuple[str, int, int] | None] = [
    None,
    ("SO_SNDBUF", socket.SOL_SOCKET, socket.SO_SNDBUF),
    ("TCP_NOTSENT_LOWAT", socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT),
]


async def one(mib: int, option: tuple[str, int, int] | None, value: int) -> tuple[float, float]:
    """(CPU us per 64 KiB, Gbit/s) of one transfer of ``mib`` MiB."""
    client, server = await bench_tcp.wire_pair(65535, gso=True)
    await client.ping("10.0.0.2", timeout=5)
    write_bytes = bench_tcp.write_bytes

    async def tuned(writer: Any, nbytes: int) -> None:
        if option is not None:
            writer.get_extra_info("tcp_sock").setsockopt(option[1], option[2], value)
        await write_bytes(writer, nbytes)

    bench_tcp.write_bytes = tuned       # type: ignore[assignment]
    try:
        c0 = time.process_time()
        rate = await bench_tcp.stream_bulk(client, server, "10.0.0.2", mib << 20)
        cpu = time.process_time() - c0
    finally:
        bench_tcp.write_bytes = write_bytes
        client.close()
        server.close()
    return cpu * 1e6 / (mib * 16), rate * 8 / 1e9


async def measure(mib: int, runs: int, value: int) -> None:
    results: dict[str, list[tuple[float, float]]] = {}
    await one(8, None, value)           # warm up
    for _ in range(runs):
        for option in CASES:
            name = "autotuned" if option is None else f"{option[0]} {value >> 10} KiB"
            results.setdefault(name, []).append(await one(mib, option, value))
    for name, rows in results.items():
        cpu = [r[0] for r in rows]
        rate = [r[1] for r in rows]
        print(f"{name:<28} CPU {statistics.median(cpu):6.1f} us per 64 KiB "
              f"({min(cpu):.1f}-{max(cpu):.1f})  {statistics.median(rate):6.2f} Gbit/s "
              f"({min(rate):.2f}-{max(rate):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=128, help="MiB per transfer (128)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each case (5)")
    parser.add_argument("--kib", type=int, default=512, help="the option's value in KiB (512)")
    args = parser.parse_args()
    print(f"# python benchmarks/bench_wire_sndbuf.py --mib {args.mib} --runs {args.runs} "
          f"--kib {args.kib}; unpinned")
    asyncio.run(measure(args.mib, args.runs, args.kib << 10))


if __name__ == "__main__":
    main()
