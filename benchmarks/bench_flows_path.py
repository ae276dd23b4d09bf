"""Where the data phase of many small-window flows spends its Python work, per MiB.

    python benchmarks/bench_flows_path.py [--flows 1000] [--total 128] [--per-flow BYTES]
                                          [--top 40] [--calls-only] [--no-trace]

bench_scale.py's ``wire`` step (N tcpio flows to another tcpio Stack over a
MemoryWire, MTU 1500, each writing its ``total / N`` bytes in 64 KiB writes
honouring drain(), the server reading each to EOF), counted instead of timed:
over the whole step, the bytecodes each Python function executes and its
calls (sys.settrace with opcode events; ``--calls-only``: call events only,
several times faster), per MiB moved.  Issue 11: at 1000 flows each flow
moves ~134 KB, its whole life in slow start with small windows, and the
cost per MiB was ~6.7x the 1-flow figure in Python calls.

Printed besides, per MiB:

- wakeups: the transports' ``sk.wakeup`` calls (TcpTransport._on_wakeup),
  the sender's and the receiver's apart, and how many of them found
  nothing to do (no buffered write the sock could take, nothing to read,
  no EOF or error: a wakeup nobody waited for);
- application reads: StreamReader.feed_data calls (server; the transport
  feeds the reader without StreamReaderProtocol.data_received since `reads`);
- tcp_write_xmit calls (both stacks: the data and the FINs);
- segments out per stack (MIB OutSegs: the server sends only its SYN-ACKs,
  FINs and ACKs), the server's delayed and quick ACKs;
- the cycle collector's collections per generation over the step.

Counts, not times, but the Stacks' timers run on the loop's wall clock: a
traced run is ~50 times slower, and on a loaded machine the RTO (200 ms at
least) fires where it would not untraced; the first line prints the RTOs
(and TLPs show per MiB): compare runs with RTOs 0.  From run to run on a
quiet machine the calls per MiB move by ~3 %.

``--no-trace`` runs the step untraced (for callgrind: ``valgrind
--tool=callgrind python benchmarks/bench_flows_path.py --no-trace``).
Compare two trees by running this script from each (its own copy of tcpio).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scale

MiB = 1024 * 1024

WAKEUP = "transports.py:_on_wakeup"
READ = "streams.py:feed_data"
XMIT = "tcp_output.py:tcp_write_xmit"
SERVER_MIB = ("OutSegs", "DelayedACKs", "TCPQuickAck", "TCPTimeouts")   # (absent: 0)
CLIENT_MIB = ("OutSegs", "InSegs", "TCPTimeouts", "TCPLossProbes")


class Wasted:
    """Which transport wakeups had nothing to do: looked at on the call
    (before it runs), as _on_wakeup itself would decide."""

    def __init__(self) -> None:
        self.by_side: collections.Counter[str] = collections.Counter()
        self.idle: collections.Counter[str] = collections.Counter()
        self.client: Any = None

    def note(self, frame: FrameType) -> None:
        tr = frame.f_locals.get("self")
        if tr is None:
            return
        side = "sender" if tr._stack is self.client else "receiver"
        self.by_side[side] += 1
        sk = tr._sk
        if sk is None or tr._conn_lost:
            return
        busy = ((tr._buffer and sk.send_space() > 0 and sk.stream_writeable())
                or sk.readable() or (sk.rcv_eof and not tr._read_eof) or sk.sk_err)
        if not busy:
            self.idle[side] += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--total", type=int, default=128, help="MiB moved in all (bench_scale's)")
    ap.add_argument("--per-flow", type=int, default=0, metavar="BYTES",
                    help="bytes per flow instead of total / flows")
    ap.add_argument("--top", type=int, default=40, help="functions listed")
    ap.add_argument("--calls-only", action="store_true", help="call events only (faster)")
    ap.add_argument("--no-trace", action="store_true", help="run untraced (for callgrind)")
    args = ap.parse_args()
    n = args.flows
    nbytes = args.per_flow or max(1, args.total * MiB // n)
    mib = n * nbytes / MiB
    codes: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    wasted = Wasted()
    opcodes = not args.calls_only

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            key = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"
            calls[key] += 1
            if key == WAKEUP:
                wasted.note(frame)
            if not opcodes:
                return None
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            return tracer
        if event == "opcode":
            codes[f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"] += 1
        return tracer

    stacks: dict[str, Any] = {}
    import tcpio
    real_stack = tcpio.Stack

    def stack(*a: Any, **kw: Any) -> Any:
        # bench_scale.wire makes the client first, then the server
        st = real_stack(*a, **kw)
        stacks[kw.get("name", "?")] = st
        if kw.get("name") == "c":
            wasted.client = st
        return st

    mibs: dict[str, dict[str, int]] = {}
    real_mib = real_stack.mib

    def keep_mib(self: Any) -> dict[str, int]:
        out = real_mib(self)
        mibs[getattr(self, "name", None) or ("c" if self is wasted.client else "s")] = out
        return out

    tcpio.Stack = stack            # type: ignore[misc]
    real_stack.mib = keep_mib      # type: ignore[method-assign]
    gc0 = [s["collections"] for s in gc.get_stats()]
    if not args.no_trace:
        sys.settrace(tracer)
    try:
        res = asyncio.run(bench_scale.wire(n, nbytes))
    finally:
        sys.settrace(None)
        tcpio.Stack = real_stack   # type: ignore[misc]
    gcs = [s["collections"] - c for s, c in zip(gc.get_stats(), gc0)]
    print(f"# reproduce: python benchmarks/bench_flows_path.py --flows {n} --per-flow {nbytes}"
          + (" --calls-only" if args.calls_only else "") + (" --no-trace" if args.no_trace else ""))
    print(f"{n} flows x {nbytes} bytes = {mib:.1f} MiB; RTOs {res['rtos']}; "
          f"gc collections per generation {gcs}")
    if args.no_trace:
        return
    print(f"\nper MiB: {sum(codes.values()) / mib:.0f} bytecodes, "
          f"{sum(calls.values()) / mib:.0f} Python calls")
    side = wasted.by_side
    print(f"  wakeups: sender {side['sender'] / mib:.1f} (nothing to do "
          f"{wasted.idle['sender'] / mib:.1f}), receiver {side['receiver'] / mib:.1f} "
          f"(nothing to do {wasted.idle['receiver'] / mib:.1f})")
    print(f"  application reads {calls[READ] / mib:.1f}, tcp_write_xmit calls "
          f"{calls[XMIT] / mib:.1f}")
    for name, keys in (("c", CLIENT_MIB), ("s", SERVER_MIB)):
        m = mibs.get(name, {})
        print(f"  {'client' if name == 'c' else 'server'}: "
              + ", ".join(f"{k} {m.get(k, 0) / mib:.1f}" for k in keys))
    if opcodes:
        print("\nby function (bytecodes, calls per MiB)")
        for key, c in codes.most_common(args.top):
            print(f"{c / mib:9.1f} {calls[key] / mib:7.1f}  {key}")
    else:
        print("\nby function (calls per MiB)")
        for key, c in calls.most_common(args.top):
            print(f"{c / mib:9.1f}  {key}")


if __name__ == "__main__":
    main()
