"""tcpio -> kernel bulk over a TAP at MTU 1500 with the offloads off (issue 12's
2 Gbit/s figure), alone, with where tcpio's time goes per 1514-byte frame.

    sudo python benchmarks/bench_tx_off.py [--runs 5] [--mib 256] [--pin A,B]
                                           [--profile] [--counts]

The same run as bench_tap_offload.py's "tcpio -> kernel offloads off" (a kernel
client in a namespace reads to EOF, tcpio writes ``--mib`` MiB from a streams
server), made ``--runs`` times: Gbit/s, median and range, frames written and
ACK frames read per run, and tcpio's process CPU us per frame sent.
``--profile``: one run under cProfile; Python calls per frame sent (a count,
steady on a noisy machine) and the functions by own time.  ``--counts``: the
calls per frame only, sorted by count.  Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

# --tree PATH: tcpio (and the test helpers) from another checkout, built in
# place, so a before/after pair runs the same script alternately
ROOT = Path(__file__).resolve().parent.parent
if "--tree" in sys.argv:
    ROOT = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_tcp import PORT, run_peer, write_bytes  # noqa: E402

MiB = 1024 * 1024


async def one_run(nbytes: int, peer_cpu: int | None,
                  prof: cProfile.Profile | None) -> tuple[float, int, int, float]:
    from netns import kernel_peer

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await write_bytes(writer, nbytes)
        writer.close()

    async with kernel_peer(ipv6=False, tap_options={"offloads": False}) as peer:
        await peer.stack.start_server(source, "0.0.0.0", PORT)
        tx0, rx0 = peer.tap.stats["tx_packets"], peer.tap.stats["rx_packets"]
        cpu0 = time.process_time()
        if prof is not None:
            prof.enable()
        out = await run_peer(peer.ns, peer_cpu, "sink", peer.tcpio_ip, str(PORT), "0")
        if prof is not None:
            prof.disable()
        cpu = time.process_time() - cpu0
        tx = peer.tap.stats["tx_packets"] - tx0
        rx = peer.tap.stats["rx_packets"] - rx0
    assert out["got"] == nbytes
    return out["rate"], tx, rx, cpu


def pin_cpus(pin: str | None) -> int | None:
    """``--pin A,B``: this process on CPU A; B (returned) for the kernel side."""
    if not pin:
        return None
    cpus = [int(x) for x in pin.split(",")]
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--pin", default=None, help="TCPIO_CPU,PEER_CPU")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--counts", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--tree", default=None, help="the checkout to run (default: this one)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (TAP, namespaces)")
    peer_cpu = pin_cpus(args.pin)
    import tcpio
    rates = []
    for _ in range(1 if args.profile or args.counts else args.runs):
        prof = cProfile.Profile() if args.profile or args.counts else None
        rate, tx, rx, cpu = asyncio.run(one_run(args.mib * MiB, peer_cpu, prof))
        rates.append(rate)
        print(f"  {rate * 8 / 1e9:5.2f} Gbit/s  frames out {tx}  in {rx}  "
              f"tcpio CPU {cpu / tx * 1e6:.3f} us/frame out", flush=True)
        if prof is not None:
            st = pstats.Stats(prof)
            calls = sum(v[1] for v in st.stats.values())    # type: ignore[attr-defined]
            print(f"  Python calls per frame out: {calls / tx:.2f}, per ACK in: {calls / rx:.1f}")
            rows = sorted(st.stats.items(), key=lambda kv: -kv[1][1 if args.counts else 2])
            for (fn, line, name), (cc, nc, tt, ct, _) in rows[:args.top]:
                print(f"    {nc / tx:7.3f}/frame  own {tt / tx * 1e6:6.3f} us  "
                      f"cum {ct / tx * 1e6:6.3f} us  {Path(fn).name}:{line} {name}")
    g = [r * 8 / 1e9 for r in rates]
    print(f"tcpio -> kernel offloads off, {args.mib} MiB, {tcpio.__file__}: median "
          f"{statistics.median(g):.2f} Gbit/s  range {min(g):.2f}-{max(g):.2f}")


if __name__ == "__main__":
    main()
