"""ehash lookups per second: compiled vs pure twin vs a plain dict of tuples.

    python benchmarks/bench_ehash.py [--conns 10000] [--lookups 1000000]

The receive path calls ``lookup(laddr, lport, raddr, rport)`` once per segment
with four ints parsed from the headers.  The dict rows show what a plain
``dict`` costs for the same job: building the key tuple from the four ints
(what the receive path would have to do), and with the tuple prebuilt (a lower
bound no real caller gets).  A plain dict is not an option anyway: Python's
hash of int tuples is public, so a peer can aim collisions at it.
Single process, no pinning; quote the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout
from tcpio import _fast


def keys(n: int, seed: int = 1) -> list[tuple[int, int, int, int]]:
    rng = random.Random(seed)
    return [(0x0A000002, 443, rng.getrandbits(32), rng.randrange(1024, 65536))
            for _ in range(n)]


def best_rate(loop, fn, probes, rounds: int) -> float:
    """Probes per second of ``loop(fn, probes)``, best of ``rounds`` runs.

    Each loop gets the callable it times as an argument: a fast local, as the
    receive path's own bound lookup is.
    """
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        loop(fn, probes)
        best = min(best, time.perf_counter() - t0)
    return len(probes) / best


def _loop_lookup(lookup, probes) -> None:
    for la, lp, ra, rp in probes:
        lookup(la, lp, ra, rp)


def _loop_get_built(get, probes) -> None:
    for la, lp, ra, rp in probes:
        get((la, lp, ra, rp))


def _loop_get_prebuilt(get, probes) -> None:
    for k in probes:
        get(k)


def _loop_unpack(_fn, probes) -> None:
    for _la, _lp, _ra, _rp in probes:
        pass


def bench_table(table, probes, rounds: int) -> float:
    return best_rate(_loop_lookup, table.lookup, probes, rounds)


def bench_dict_build(d, probes, rounds: int) -> float:
    return best_rate(_loop_get_built, d.get, probes, rounds)


def bench_dict_prebuilt(d, probes, rounds: int) -> float:
    return best_rate(_loop_get_prebuilt, d.get, probes, rounds)


def bench_loop_only(probes, rounds: int) -> float:
    """The for-loop and unpacking alone, to subtract from the rows above."""
    return best_rate(_loop_unpack, None, probes, rounds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=10_000)
    ap.add_argument("--lookups", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    ks = keys(args.conns)
    rng = random.Random(2)
    hits = [ks[rng.randrange(len(ks))] for _ in range(args.lookups)]
    misses = keys(args.lookups // 10, seed=3)

    rows: list[tuple[str, float, float]] = []
    loop = bench_loop_only(hits, args.rounds)
    for name, mod in (("compiled ehash", _fast.load_compiled("ehash")),
                      ("pure twin ehash_py", _fast.load_pure("ehash"))):
        if mod is None:
            print(f"{name}: not built (python setup.py build_ext --inplace)")
            continue
        t = mod.EHash(b"bench secret")
        for i, k in enumerate(ks):
            t.insert(*k, i)
        rows.append((name, bench_table(t, hits, args.rounds),
                     bench_table(t, misses, args.rounds)))
    d = {k: i for i, k in enumerate(ks)}
    rows.append(("dict, tuple built per lookup", bench_dict_build(d, hits, args.rounds),
                 bench_dict_build(d, misses, args.rounds)))
    rows.append(("dict, prebuilt tuple key", bench_dict_prebuilt(d, hits, args.rounds),
                 bench_dict_prebuilt(d, misses, args.rounds)))

    print(f"{args.conns} connections, {args.lookups} lookups, best of {args.rounds}")
    print(f"(loop + unpack alone: {loop / 1e6:.1f} M/s, {1e9 / loop:.0f} ns each)")
    base = rows[-2][1]
    print(f"{'':32} {'hits M/s':>9} {'ns/lookup':>10} {'misses M/s':>11} {'vs dict+build':>14}")
    for name, h, m in rows:
        print(f"{name:32} {h / 1e6:9.2f} {1e9 / h:10.0f} {m / 1e6:11.2f} {h / base:13.2f}x")


if __name__ == "__main__":
    main()
