"""IPv6 beside IPv4 over a MemoryWire, side by side in one process (issue 17).

    python benchmarks/bench_family.py [--rounds 7] [--conns 1000] [--mib 128] [--mib1500 32]

Each round measures, for IPv4 (10.0.0.1 -> 10.0.0.2) and then IPv6 (fd00::1
-> fd00::2) on the same two Stacks' set-up: connections/s (connect, close),
bulk throughput at a 64 KiB MTU and bulk throughput at MTU 1500, with
``bench_tcp``'s own functions (``wire_connections``, ``wire_bulk``).  The
report gives every figure per round and, per measurement, IPv6 as a share of
IPv4: the median and range over the rounds of each round's ratio (the two
families of one round ran back to back, so the machine's load moves both).
Every figure comes twice: by the wall clock, and "(CPU)" by the process's
CPU time over the same call (connections or Gbit per CPU second; both
Stacks and the loop run in this process), the steadier of the two on a
shared machine.

tcpio is imported from PYTHONPATH when it is set (to measure another tree
with this script: ``cd /work/main && PYTHONPATH=/work/main python
/path/to/bench_family.py``), else from this checkout.  Whether the compiled
extensions are in use is printed; ``TCPIO_NO_EXTENSIONS=1`` measures the
interpreted build.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))      # after PYTHONPATH: another tree may be measured

import tcpio  # noqa: E402  (first, so bench_tcp's path insertion does not pick the tree)
from tcpio import _fast  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_tcp  # noqa: E402

MiB = 1024 * 1024
V4, V6 = "10.0.0.2", "fd00::2"


async def one_round(conns: int, nbytes: int, nbytes1500: int) -> dict[str, dict[str, float]]:
    """Each figure twice: by the wall clock (bench_tcp's own rate) and by the
    process's CPU time over the same call (both Stacks and the loop run in
    this process, so CPU time is the work done; far steadier than the wall
    clock on a shared machine)."""
    out: dict[str, dict[str, float]] = {}

    async def fig(name: str, fam: str, amount: float, call) -> None:
        t0 = time.process_time()
        rate = await call
        cpu = time.process_time() - t0
        out.setdefault(name, {})[fam] = rate * (8 / 1e9 if "Gbit" in name else 1)
        out.setdefault(name + " (CPU)", {})[fam] = amount / cpu

    for fam, dst in (("4", V4), ("6", V6)):
        await fig("conn/s", fam, conns, bench_tcp.wire_connections(conns, dst))
        await fig("bulk 64K MTU Gbit/s", fam, nbytes * 8 / 1e9,
                  bench_tcp.wire_bulk(nbytes, 65535, dst))
        await fig("bulk MTU 1500 Gbit/s", fam, nbytes1500 * 8 / 1e9,
                  bench_tcp.wire_bulk(nbytes1500, 1500, dst))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--conns", type=int, default=1000, help="connections per conn/s figure")
    ap.add_argument("--mib", type=int, default=128, help="MiB per bulk figure at MTU 64K")
    ap.add_argument("--mib1500", type=int, default=32, help="MiB per bulk figure at MTU 1500")
    args = ap.parse_args()
    compiled = _fast.load("tcp_fast") is _fast.load_compiled("tcp_fast")
    print(f"# tcpio from {Path(tcpio.__file__).parent}; "
          f"{'compiled' if compiled else 'interpreted'}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rounds = []
    for i in range(args.rounds):
        r = asyncio.run(one_round(args.conns, args.mib * MiB, args.mib1500 * MiB))
        rounds.append(r)
        print(f"round {i + 1}: " + "; ".join(
            f"{name} v4 {v['4']:.3f} v6 {v['6']:.3f}" for name, v in r.items()), flush=True)
    print(f"# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'measurement':30} {'IPv4 median':>12} {'IPv6 median':>12}  IPv6/IPv4 median [range]")
    for name in rounds[0]:
        v4 = [r[name]["4"] for r in rounds]
        v6 = [r[name]["6"] for r in rounds]
        ratios = [b / a for a, b in zip(v4, v6)]
        print(f"{name:30} {statistics.median(v4):12.3f} {statistics.median(v6):12.3f}  "
              f"{statistics.median(ratios):6.1%} [{min(ratios):.1%} .. {max(ratios):.1%}]")


if __name__ == "__main__":
    main()
