"""Where the in-memory bulk spends its Python work, per application write.

    python benchmarks/bench_wire_write_path.py [--writes 400] [--big-tcp 262144] [--top 40]

Runs bench_tcp.py's MemoryWire bulk (two Stacks in this process, the writer
writing CHUNK bytes per write and honouring drain(), the reader reading
CHUNK per read) and, over ``--writes`` writes after the first 40 (the start
left out), counts the bytecodes each Python function executes and its calls
(sys.settrace with opcode events: slow, but counts, which the machine's load
does not move).  Printed: bytecodes and Python calls per write in total, by
area (asyncio's loop, streams, the transport, the driver, the wire, the
host's receive and routing, TCP), and the ``--top`` functions.  The
interpreter is most of the CPU time of this figure (perf: ~70 % in
libpython, ~17 % in memmove for the two copies of each byte), so bytecodes
per write are a steady proxy for it; run it on two trees (each its own copy)
to compare.  Issue 12 (2026-12-07): main at 0e89be8 6384 bytecodes / 228
calls per 256 KiB write with ``--big-tcp 262144`` and 7372 / 243 without;
the branch mem 5084 / 176 and 6086 / 192; main at 687d1d2 4920 / 164 and
5925 / 178, the branch mem3 4573 / 151 and 5596 / 164 (medians of three,
alternated); main at 405b438 4665 / 155 and 5946 / 180 (one run each),
the branch mem4 (the stream reader takes what its sock holds before it
waits, the route's part of ip_tcp_path kept per destination, a device
batch on the MemoryWire's line in one call) 2743 / 83 and 4054 / 121
(medians of three).  The figure moves by ~±3 % from run to run with the timers
(under the tracer a write takes ~50 times as long, so whether the delayed
ACK and the RTO are re-armed per write differs between runs): compare
medians of alternated runs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tcp

SKIP = 40           # writes before counting starts

# file names -> the area their functions are counted under
AREAS = {
    "base_events.py": "asyncio loop, handles, futures", "events.py": "asyncio loop, handles, futures",
    "selectors.py": "asyncio loop, handles, futures",
    "selector_events.py": "asyncio loop, handles, futures",
    "streams.py": "streams (reader, writer, drain)", "transports.py": "transport",
    "stack.py": "driver (kick, time, timers)", "timer.py": "driver (kick, time, timers)",
    "memory.py": "MemoryWire", "impair.py": "MemoryWire", "qdisc.py": "MemoryWire",
    "gso.py": "MemoryWire",
    "host.py": "host: receive batch, routing", "ip_output.py": "host: receive batch, routing",
    "neighbour.py": "host: receive batch, routing", "addr.py": "host: receive batch, routing",
    "sock.py": "TCP sock (sendmsg, recvmsg)", "tcp_output.py": "TCP output and input",
    "tcp_input.py": "TCP output and input", "tcp_ipv4.py": "TCP output and input",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writes", type=int, default=400, help="writes counted")
    ap.add_argument("--big-tcp", type=int, default=0, metavar="BYTES",
                    help="the MemoryWire's gso_max_size (as bench_tcp.py's --big-tcp)")
    ap.add_argument("--top", type=int, default=40, help="functions listed")
    args = ap.parse_args()
    bench_tcp.BIG_TCP = args.big_tcp
    chunk = bench_tcp.CHUNK
    codes: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    on = [False]

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if not on[0]:
            return None
        frame.f_trace_opcodes = True
        key = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"
        if event == "call":
            calls[key] += 1
        elif event == "opcode":
            codes[key] += 1
        return tracer

    async def write_bytes(writer: asyncio.StreamWriter, nbytes: int) -> None:
        # bench_tcp.write_bytes, counting writes SKIP .. SKIP + --writes
        sent = 0
        while sent < nbytes:
            on[0] = SKIP * chunk <= sent < (SKIP + args.writes) * chunk
            n = min(chunk, nbytes - sent)
            writer.write(bench_tcp._ZEROS[:n])
            await writer.drain()
            sent += n
        on[0] = False

    bench_tcp.write_bytes = write_bytes
    sys.settrace(tracer)
    try:
        asyncio.run(bench_tcp.wire_bulk((SKIP + args.writes + 20) * chunk))
    finally:
        sys.settrace(None)
    w = args.writes
    print(f"# reproduce: python benchmarks/bench_wire_write_path.py --writes {w} "
          f"--big-tcp {args.big_tcp}")
    print(f"{sum(codes.values()) / w:.0f} bytecodes and {sum(calls.values()) / w:.0f} "
          f"Python calls per {chunk // 1024} KiB write")
    areas: collections.Counter[str] = collections.Counter()
    for key, n in codes.items():
        areas[AREAS.get(key.split(":")[0], "other")] += n
    print("\nby area (bytecodes per write)")
    for area, n in areas.most_common():
        print(f"{n / w:8.0f}  {area}")
    print("\nby function (bytecodes, calls per write)")
    for key, n in codes.most_common(args.top):
        print(f"{n / w:8.1f} {calls[key] / w:5.1f}  {key}")


if __name__ == "__main__":
    main()
