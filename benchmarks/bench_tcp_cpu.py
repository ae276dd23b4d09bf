"""CPU cost of TCP bulk transfer per data segment, on the sans-IO core alone.

Two Hosts on a VirtualNetwork (MTU 1500, no impairment, virtual clock), one
connection, N MiB one way; reports process CPU microseconds per data segment
(both hosts plus the simulator), best of R runs.  CPU time of a deterministic
workload is far steadier than wall-clock throughput on a shared machine, so
this is the number to watch when optimising the TCP path.

    python benchmarks/bench_tcp_cpu.py [--mib 16] [--runs 3] [--profile] [--trace on|jsonl]

``--trace on`` traces every connection of both hosts to a sink that drops
the events (the cost of making them, and of the general path a traced
connection takes); ``--trace jsonl`` writes them as JSON lines to /dev/null.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout

from tcpio import _fast
from tcpio.core.addr import ip_aton
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED


def one_run(size: int, profile: cProfile.Profile | None = None,
            trace: str = "off") -> tuple[float, int]:
    net = VirtualNetwork(seed=7, debug=False)
    a, b = net.host("a"), net.host("b")
    writer = None
    if trace != "off":
        from tcpio.trace import JsonLinesWriter

        writer = JsonLinesWriter(os.devnull) if trace == "jsonl" else None
        sink = writer if writer is not None else (lambda event: None)
        a.tcp.set_trace(sink)
        b.tcp.set_trace(sink)
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", mtu=1500)
    link.capture_enabled = False
    listener = b.tcp.socket()
    listener.bind(0, 80)
    listener.listen(8)
    client = a.tcp.socket()
    try:
        client.connect(ip_aton("10.0.0.2"), 80)
    except BlockingIOError:
        pass
    assert net.run_until(lambda: listener.accept_queue and client.state == TCP_ESTABLISHED, 10)
    server = listener.accept()
    payload = memoryview(bytes(1 << 20))
    state = {"sent": 0, "got": 0}

    def pump() -> bool:
        while state["sent"] < size:
            n = client.sendmsg(payload[: min(len(payload), size - state["sent"])])
            if not n:
                break
            state["sent"] += n
        while server.readable():
            state["got"] += len(server.recvmsg(1 << 22))
        return state["got"] == size

    if profile:
        profile.enable()
    t0 = time.process_time()
    assert net.run_until(pump, 600)
    cpu = time.process_time() - t0
    if profile:
        profile.disable()
    if writer is not None:
        writer.close()
    return cpu, a.mib["OutSegs"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="cProfile one run, by self time")
    ap.add_argument("--trace", choices=("off", "on", "jsonl"), default="off",
                    help="trace every connection: events dropped (on) or JSON lines to /dev/null")
    args = ap.parse_args()
    size = args.mib << 20
    print(f"# reproduce: python benchmarks/bench_tcp_cpu.py --mib {args.mib} --runs {args.runs}"
          f" --trace {args.trace}")
    mods = ", ".join(f"{n}={'compiled' if _fast.is_compiled(_fast.load(n)) else 'pure'}"
                     for n in ("checksum", "wire", "ehash", "rx", "tx"))
    print(f"# _fast: {mods}")
    if args.profile:
        prof = cProfile.Profile()
        one_run(size, prof, args.trace)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    best = min((one_run(size, trace=args.trace) for _ in range(args.runs)),
               key=lambda r: r[0] / r[1])
    cpu, segs = best
    print(f"{cpu / segs * 1e6:.1f} us CPU per data segment (both hosts + simulator), "
          f"{segs} segments, {size / cpu * 8 / 1e9:.2f} Gbit/s of CPU-bound goodput")


if __name__ == "__main__":
    main()
