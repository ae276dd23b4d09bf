"""Connections per second, kernel client -> tcpio server over a TAP (issue 11),
with the kernel loopback asyncio server in the same run, and optionally a
cProfile of the tcpio side: Python function calls per connection (a count,
free of the shared machine's noise) and where a connection's time goes.

    sudo python benchmarks/bench_conns.py [--conns 3000] [--inflight 1] [--rounds 1]
                                          [--profile] [--top 30]

The connection loop is bench_scale.py's ``conns`` mode (scale_peer.py
``connect``: ``--inflight`` connects at a time, each closed at once; the
tcpio server's handler closes its writer).  ``--profile`` runs the tcpio
side under cProfile (the kernel figure is then not comparable: the profiler
slows tcpio several times) and prints total calls / connections and the
functions with the most own time, as percentages of the profiled time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import bench_scale


async def one_round(args: argparse.Namespace) -> dict:
    from netns import NetNs, kernel_peer

    out: dict = {}
    async with kernel_peer(ipv6=False) as peer:
        # a short warm-up (ARP, first-time imports and code paths)
        await bench_scale.conns_tap(peer, 1, 50)
        prof = cProfile.Profile() if args.profile else None
        if prof is not None:
            prof.enable()
        st0 = dict(peer.tap.stats)
        mib0 = peer.stack.mib()
        t0 = os.times()
        r = await bench_scale.conns_tap(peer, args.inflight, args.conns)
        t1 = os.times()
        st1 = peer.tap.stats
        mib1 = peer.stack.mib()
        user, system = t1.user - t0.user, t1.system - t0.system
        if prof is not None:
            prof.disable()
            out["profile"] = prof
        out["tcpio"] = r["rate"]
        # this process's CPU (user + system: the TAP reads and writes) per connection
        out["tcpio_cpu_us"] = (user + system) / args.conns * 1e6
        out["tcpio_sys_us"] = system / args.conns * 1e6
        # frames each way per connection, and how many ACKs the delayed-ACK
        # timer sent (a FIN's ACK the application's FIN did not carry)
        out["frames_out"] = (st1["tx_packets"] - st0["tx_packets"]) / args.conns
        out["frames_in"] = (st1["rx_packets"] - st0["rx_packets"]) / args.conns
        out["delayed_acks"] = (mib1.get("DelayedACKs", 0) - mib0.get("DelayedACKs", 0)) / args.conns
        out["failed"] = r["failed"]
        out["rtos"] = r["rtos"]
    if not args.profile:
        with NetNs() as ns:
            ns.ip("link", "set", "lo", "up")
            out["kernel"] = (await bench_scale.conns_kernel(ns, args.inflight,
                                                            args.conns))["rate"]
    return out


def report_profile(prof: cProfile.Profile, conns: int, top: int) -> None:
    st = pstats.Stats(prof, stream=io.StringIO())
    total_calls = st.total_calls               # type: ignore[attr-defined]
    total_tt = st.total_tt                     # type: ignore[attr-defined]
    print(f"python function calls: {total_calls} total, {total_calls / conns:.0f} per "
          f"connection; profiled time {total_tt:.2f} s, {total_tt / conns * 1e6:.0f} us "
          "per connection (under the profiler)")
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])  # type: ignore[attr-defined]
    print(f"{'own %':>6} {'cum %':>6} {'calls/conn':>10}  function")
    for (path, line, name), (_cc, nc, tt, ct, _callers) in rows[:top]:
        short = path.replace(str(ROOT) + "/", "")
        print(f"{100 * tt / total_tt:6.1f} {100 * ct / total_tt:6.1f} {nc / conns:10.2f}  "
              f"{short}:{line}({name})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=3000)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--json", help="write the rounds' figures here")
    ap.add_argument("--dump", help="with --profile: write the pstats file here")
    args = ap.parse_args()
    rounds = []
    for _ in range(args.rounds):
        r = asyncio.run(one_round(args))
        prof = r.pop("profile", None)
        if prof is not None:
            report_profile(prof, args.conns, args.top)
            if args.dump:
                prof.dump_stats(args.dump)
        else:
            r["ratio"] = r["tcpio"] / r["kernel"]
            print(json.dumps(r), flush=True)
        rounds.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(rounds))


if __name__ == "__main__":
    main()
