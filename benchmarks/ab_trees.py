#!/usr/bin/env python3
"""Side-by-side benchmark of two checkouts of tcpio (old tree vs new tree).

Each tree must be built in place (``python setup.py -q build_ext --inplace``
in it).  The benchmarks run alternately, old then new, ``--rounds`` times, so
a slow spell of the (shared) machine hits both trees alike; the report gives
each figure's median and range per tree.  Noise: compare the old-vs-new
difference of the medians with the spread of each tree's own runs.

    python benchmarks/ab_trees.py OLD_TREE NEW_TREE [--rounds 3] [--quick]

Figures: ``bench_tcp_cpu.py`` (us of CPU per data segment, lower is better)
and ``bench_tcp.py`` (connections/s and Gbit/s, higher is better; the
``ref`` rows are the kernel's figures from the same run, which no tcpio change
moves: their spread is the machine's), each run from its own tree with
PYTHONPATH set to that tree.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile


def run_cpu(tree: str, mib: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "benchmarks/bench_tcp_cpu.py", "--mib", str(mib)],
                         cwd=tree, env={**os.environ, "PYTHONPATH": tree}, capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"([\d.]+) us CPU per data segment", out)
    if not m:
        raise RuntimeError(f"bench_tcp_cpu output not understood:\n{out}")
    return {"cpu us/segment": float(m.group(1))}


def run_tcp(tree: str, quick: bool) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([sys.executable, "benchmarks/bench_tcp.py", "--json", f.name,
                        *(["--quick"] if quick else [])],
                       cwd=tree, env={**os.environ, "PYTHONPATH": tree}, capture_output=True,
                       text=True, check=True)
        raw = json.load(open(f.name))
    figures: dict[str, float] = {}
    for build in ("compiled", "pure"):
        for k, v in raw.get(build, {}).items():
            if k == "compiled":
                continue            # the build flag, not a figure
            # connections/s as they are, bulk (bytes/s in the JSON) in Gbit/s
            figures[f"tcp {build} {k}"] = v * 8 / 1e9 if k.startswith("bulk") else v
    # the kernel's own figures in the same run: how loaded the machine was
    for k in ("kernel_loopback_conns", "kernel_loopback_bulk", "kernel_veth_bulk"):
        if k in raw:
            figures[f"ref {k}"] = raw[k] * 8 / 1e9 if k.endswith("bulk") else raw[k]
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=16, help="bench_tcp_cpu.py --mib")
    ap.add_argument("--quick", action="store_true", help="bench_tcp.py --quick")
    ap.add_argument("--no-tcp", action="store_true", help="bench_tcp_cpu.py only")
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {"old": {}, "new": {}}
    for r in range(args.rounds):
        for label, tree in (("old", args.old), ("new", args.new)):
            figs = run_cpu(tree, args.mib)
            if not args.no_tcp:
                figs.update(run_tcp(tree, args.quick))
            for k, v in figs.items():
                results[label].setdefault(k, []).append(v)
            print(f"round {r + 1} {label}: " + ", ".join(f"{k}={v:g}" for k, v in figs.items()),
                  file=sys.stderr, flush=True)
    print(f"{'figure':36s} {'old median [range]':>28s} {'new median [range]':>28s} {'new/old':>8s}")
    for k in results["old"]:
        o, n = results["old"][k], results["new"].get(k, [])
        if not n:
            continue
        mo, mn = statistics.median(o), statistics.median(n)
        print(f"{k:36s} {mo:10.3f} [{min(o):.3f}, {max(o):.3f}] "
              f"{mn:10.3f} [{min(n):.3f}, {max(n):.3f}] {mn / mo if mo else float('nan'):8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
