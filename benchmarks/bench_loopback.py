"""Loopback bulk throughput beside tcpio <-> tcpio over a MemoryWire, in one run.

    python benchmarks/bench_loopback.py [--mib 64] [--runs 5] [--pure] [--profile lo]

One process, one event loop, compiled hot path unless ``--pure``
(``TCPIO_NO_EXTENSIONS=1``).  Each run moves ``--mib`` MiB through a stream
(``open_connection`` / ``start_server``, 256 KiB writes honouring drain(),
the reader timing from the first write to EOF) three ways:

- ``lo 127.0.0.1``: client and server on one Stack, over 127.0.0.1 (lo's MTU
  65536, so TCP's MSS is 65483 as on Linux);
- ``lo own address``: the same Stack, to the address of its wire interface
  (routed through lo, never the wire);
- ``wire``: two Stacks on a MemoryWire with a 64 KiB MTU and its offloads
  (checksum offload: ``gso=True``; bench_tcp.py's ``bulk tcpio -> tcpio``
  figure, by its own function; both use its ``stream_bulk``);
- ``wire, offloads off``: the same with every checksum summed on both sides;
- ``kernel``: Python sockets over the kernel's loopback (kernel_ref.py's
  ``loopback_bulk``: two threads, sendall / recv_into of 256 KiB), issue 12's
  reference for the wire (target: wire / kernel >= 1.0).

The cases alternate within each run, so load on this shared machine hits them
alike; the output is the median and range over ``--runs`` runs, and the ratios
of the medians.  ``--profile lo`` runs one loopback transfer under cProfile
instead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))                   # run from a checkout
sys.path.insert(0, str(ROOT / "benchmarks"))

import kernel_ref
from bench_tcp import stream_bulk, wire_bulk  # the same transfer as bench_tcp's

MiB = 1024 * 1024


async def lo_bulk(nbytes: int, dst: str) -> float:
    import tcpio

    async with tcpio.Stack(seed=1, name="lo") as stack:
        stack.add_interface(tcpio.MemoryWire(mtu=65535).a, "10.0.0.1/24")
        return await stream_bulk(stack, stack, dst, nbytes)


CASES: dict[str, Callable[[int], Awaitable[float]]] = {
    "lo 127.0.0.1": lambda n: lo_bulk(n, "127.0.0.1"),
    "lo own address": lambda n: lo_bulk(n, "10.0.0.1"),
    "wire (MemoryWire, MTU 64 KiB)": wire_bulk,
    "wire, offloads off": lambda n: wire_bulk(n, gso=False),
    "kernel (Python sockets, lo)": lambda n: _kernel(n),
}
WIRE = "wire (MemoryWire, MTU 64 KiB)"


async def _kernel(nbytes: int) -> float:
    return kernel_ref.loopback_bulk(nbytes)     # (its own threads: the loop just waits)


async def measure(nbytes: int, runs: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in CASES}
    for case in CASES.values():        # warm up: imports, first allocations
        await case(min(nbytes, 4 * MiB))
    for _ in range(runs):
        for name, case in CASES.items():
            rates[name].append(await case(nbytes))
    return rates


def gbit(rate: float) -> str:
    return f"{rate * 8 / 1e9:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB per transfer (64)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each case (5)")
    parser.add_argument("--pure", action="store_true",
                        help="the pure-Python twins (TCPIO_NO_EXTENSIONS=1)")
    parser.add_argument("--profile", choices=["lo", "wire"],
                        help="one transfer under cProfile instead")
    args = parser.parse_args()
    if args.pure and os.environ.get("TCPIO_NO_EXTENSIONS") != "1":
        os.environ["TCPIO_NO_EXTENSIONS"] = "1"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    nbytes = args.mib * MiB
    if args.profile:
        import cProfile
        import pstats
        fn = (lambda: lo_bulk(nbytes, "127.0.0.1")) if args.profile == "lo" \
            else (lambda: wire_bulk(nbytes))
        prof = cProfile.Profile()
        prof.runcall(asyncio.run, fn())
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    from tcpio import _fast
    compiled = _fast.is_compiled(_fast.load("rx"))
    print(f"# {' '.join(shlex.quote(a) for a in ['python', *sys.argv])}")
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"{'compiled' if compiled else 'pure twins'}, {os.cpu_count()} CPUs, "
          f"unpinned; {args.mib} MiB per transfer, {args.runs} runs")
    rates = asyncio.run(measure(nbytes, args.runs))
    medians = {}
    for name, values in rates.items():
        medians[name] = statistics.median(values)
        print(f"{name:<32} {gbit(medians[name]):>6} Gbit/s "
              f"({gbit(min(values))}-{gbit(max(values))})")
    wire = medians[WIRE]
    print(f"loopback 127.0.0.1 / wire: {medians['lo 127.0.0.1'] / wire:.2f}")
    print(f"wire / wire with offloads off: {wire / medians['wire, offloads off']:.2f}")
    ratios = [w / k for w, k in zip(rates[WIRE], rates["kernel (Python sockets, lo)"])]
    print(f"wire / kernel (issue 12's target >= 1.0): "
          f"{wire / medians['kernel (Python sockets, lo)']:.2f} of the medians; "
          f"per run {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
