"""IPv6 beside IPv4, tcpio -> kernel bulk over a TAP at MTU 1500 (issues 12, 17: TSO6).

    python benchmarks/bench_tso6.py [--rounds 3] [--mib 128] [--pin 0,1]

Each round runs three figures back to back with ``bench_tcp.tap_bulk_from_tcpio``
(the kernel's receiver times connect -> EOF): IPv4 (TSO4 super-frames), IPv6
with TSO6 (super-frames, this change) and IPv6 with TUN_F_TSO6 left out of
the TAP's offloads (one frame per segment: IPv6 before TSO6).  The report
gives each figure's median and range over the rounds, in Gbit/s.  Needs
root.  ``TCPIO_NO_EXTENSIONS=1`` measures the interpreted build.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

import bench_tcp

from tcpio import _fast
from tcpio.devices import virtio_net as vnet
from tcpio.devices.tap import DEFAULT_OFFLOADS

NO_TSO6 = {"offloads": DEFAULT_OFFLOADS & ~vnet.TUN_F_TSO6}
FIGURES = {
    "IPv4, TSO4": {"ipv6": False},
    "IPv6, TSO6": {"ipv6": True},
    "IPv6, no TSO6 (before)": {"ipv6": True, "tap_options": NO_TSO6},
}


async def main(rounds: int, nbytes: int, peer_cpu: int | None) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in FIGURES}
    for r in range(rounds):
        for name, kw in FIGURES.items():
            rate = await asyncio.wait_for(bench_tcp.tap_bulk_from_tcpio(nbytes, peer_cpu, **kw),
                                          900)
            rates[name].append(rate * 8 / 1e9)
            print(f"round {r + 1}: {name:24} {rates[name][-1]:6.2f} Gbit/s", flush=True)
    return rates


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--peer-cpu", type=int, default=None, help="pin the kernel-side receiver")
    args = ap.parse_args()
    print(f"# compiled extensions: {_fast.load_compiled('checksum') is not None}")
    got = asyncio.run(main(args.rounds, args.mib * bench_tcp.MiB, args.peer_cpu))
    print(f"\n{'tcpio -> kernel, TAP MTU 1500':28} {'median':>8} {'range':>16}  Gbit/s, "
          f"{args.rounds} rounds of {args.mib} MiB")
    for name, vals in got.items():
        print(f"{name:28} {statistics.median(vals):8.2f} {min(vals):7.2f}..{max(vals):<7.2f}")
