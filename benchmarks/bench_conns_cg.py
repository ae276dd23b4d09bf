"""User-space instructions per accepted connection, kernel client -> tcpio
server over a TAP, one connect in flight (bench_scale's ``conns`` mode),
for callgrind with the real interpreter (issue 11).

    sudo valgrind --tool=callgrind --callgrind-out-file=cg.100 \\
        $(python -c 'import sys;print(sys.executable)') benchmarks/bench_conns_cg.py 100
    ... the same with 1100; instructions per connection =
        (total(cg.1100) - total(cg.100)) / 1000

The difference of two runs takes out start-up, imports and the TAP's
set-up.  ``--tree DIR`` runs another tree's tcpio with this same script (a
base tree against a branch).  Under callgrind tcpio runs ~50x slower than
the kernel client, so frames batch differently than at full speed: compare
trees in the same conditions, and repeat (the figure moves by 1-2 % from run
to run).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def main(n: int) -> None:
    import bench_scale
    from netns import kernel_peer

    async with kernel_peer(ipv6=False) as peer:
        await bench_scale.conns_tap(peer, 1, 50)       # warm-up: ARP, first paths
        r = await bench_scale.conns_tap(peer, 1, n)
        st = peer.tap.stats
        print(f"{n} connections, {r['failed']} failed; frames in {st['rx_packets']}, "
              f"out {st['tx_packets']}", file=sys.stderr)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("conns", type=int)
    ap.add_argument("--tree", type=Path, default=ROOT, help="the tcpio tree to run")
    args = ap.parse_args()
    tree = args.tree.resolve()
    sys.path[:0] = [str(tree), str(tree / "benchmarks"), str(tree / "tests")]
    asyncio.run(main(args.conns))
