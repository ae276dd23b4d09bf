#!/usr/bin/env python3
"""bench_scale's idle step in two trees, alternated (issue 11).

    python benchmarks/bench_idle_ab.py OLD_TREE NEW_TREE [--rounds 5] [--counts 5000,20000]
                                       [--kind streams|bare] [--gc-off]

Each round runs bench_scale's idle step (``--idle-child N,streams``: this
tree's script on the tcpio of the tree under test) in a fresh process for every count,
old tree then new (the order swapped every other round, so neither always
follows the other on the shared machine).  Reported per tree and count:
CPU seconds (time.process_time over the opening), seconds in the cycle
collector, full collections and gen0 collections (each one 700 net tracked
allocations: how many objects the opening keeps alive at once), as medians
with their ranges, and the ratio of the largest count's CPU time to the
smallest's per round (issue 11's target: <= 5x for 4x the connections).
``--gc-off`` disables the cycle collector in the child: what opening costs
without it, directly or through the caches its full scans leave cold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


# This tree's bench_scale.idle() on the tree under test's tcpio: bench_scale
# puts its own tree first on sys.path when imported, so the tree under test
# goes in front after that, and the child says which tcpio it ran.
CHILD = """
import asyncio, gc, json, sys
if {gc_off}:
    gc.disable()
sys.path.insert(0, {here!r})
import bench_scale
assert "tcpio" not in sys.modules
sys.path.insert(0, {tree!r})
res = asyncio.run(bench_scale.idle({n}, {streams}))
import tcpio
res["tcpio"] = tcpio.__file__
print(json.dumps(res))
"""


def run(tree: str, n: int, kind: str, gc_off: bool = False) -> dict:
    code = CHILD.format(here=HERE, tree=tree, n=n, streams=kind == "streams", gc_off=gc_off)
    out = subprocess.run([sys.executable, "-c", code], cwd=tree,
                         env={**os.environ, "PYTHONPATH": tree},
                         capture_output=True, text=True, check=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if not res["tcpio"].startswith(os.path.join(os.path.abspath(tree), "")):
        raise RuntimeError(f"ran {res['tcpio']}, not {tree}'s tcpio")
    return res


def summary(values: list[float], fmt: str = "{:.2f}") -> str:
    return (f"{fmt.format(statistics.median(values))} "
            f"({fmt.format(min(values))}-{fmt.format(max(values))})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--counts", default="5000,20000")
    ap.add_argument("--kind", default="streams", choices=("streams", "bare"))
    ap.add_argument("--gc-off", action="store_true",
                    help="gc.disable() in the child: the cost of opening without the "
                         "cycle collector, direct or indirect (its cache misses)")
    args = ap.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    trees = {"old": args.old, "new": args.new}
    res: dict[str, dict[int, list[dict]]] = {t: {n: [] for n in counts} for t in trees}
    for r in range(args.rounds):
        order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
        for t in order:
            for n in counts:
                res[t][n].append(run(trees[t], n, args.kind, args.gc_off))
        print(f"# round {r + 1}: " + ", ".join(
            f"{t} {res[t][n][-1]['cpu_seconds']:.2f}s@{n}" for t in trees for n in counts),
            flush=True)
    gc_off = " --gc-off" if args.gc_off else ""
    print(f"# python benchmarks/bench_idle_ab.py {args.old} {args.new} --rounds {args.rounds}"
          f" --counts {args.counts} --kind {args.kind}{gc_off}; median (range) of {args.rounds}")
    for t, tree in trees.items():
        for n in counts:
            rs = res[t][n]
            print(f"{t:3} {n:6}  cpu {summary([x['cpu_seconds'] for x in rs])} s  "
                  f"gc {summary([x['gc_seconds'] for x in rs])} s  "
                  f"full {summary([x['gc_full'] for x in rs], '{:.0f}')}  "
                  f"gen0 {summary([x['gc_collections'][0] for x in rs], '{:.0f}')}  "
                  f"tracked/conn {rs[0]['gc_tracked_per_connection']:.1f}  [{tree}]")
        lo, hi = counts[0], counts[-1]
        ratios = [b["cpu_seconds"] / a["cpu_seconds"] for a, b in zip(res[t][lo], res[t][hi])]
        nogc = [(b["cpu_seconds"] - b["gc_seconds"]) / (a["cpu_seconds"] - a["gc_seconds"])
                for a, b in zip(res[t][lo], res[t][hi])]
        print(f"{t:3} cpu {hi}/{lo}: {summary(ratios)}x   without the collector: "
              f"{summary(nogc)}x")


if __name__ == "__main__":
    main()
