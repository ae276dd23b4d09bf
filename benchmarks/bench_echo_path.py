"""Where a 1-byte echo round trip's time goes on tcpio's side (issue 12's latency target).

    sudo python benchmarks/bench_echo_path.py [--rounds 3000] [--offloads on|off]
                                              [--profile] [--protocol] [--bytecodes]

A kernel client in a private namespace sends 1 byte and waits for it back,
``--rounds`` times (bench_tcp's ``echo`` peer, TCP_NODELAY), to a tcpio echo
server over a TAP; the server is bench_tap_offload's StreamReader/Writer echo
(or, with ``--protocol``, a plain asyncio.Protocol that writes back in
data_received).  Counted per round trip over the timed rounds, which do not
move with the machine's load the way times do:

- frames tcpio read and wrote on the TAP (one in, one out is the floor: the
  reply carries the ACK, as Linux's does when the application answers before
  the delayed-ACK timer);
- event-loop iterations (selector waits), callbacks the loop ran, timers
  armed (call_at) and cancelled, add/remove_writer calls;
- with ``--profile``: Python calls (cProfile) and the functions that make them;
- with ``--bytecodes``: Python bytecodes executed (sys.settrace opcode
  events) per round trip, by function and by file: the interpreter's work,
  which no load on the machine moves (only a timer that fires in a slow
  spell adds its own; its functions show in the list).

Syscalls per round trip: ``--syscalls`` runs this script twice under
``strace -c`` (this process's main thread only, so the client is not
counted), at ``--rounds`` and three times as many, and prints the
difference per round trip by syscall (errors apart: a read that found the
queue empty is one): the setup, the warm-up and the close cancel out.
Needs root.  Times: benchmarks/bench_tap_offload.py --only echo.

``--kernel``: the reference instead (issue 12's ratio is against it): the
same client to asyncio's own stream echo over kernel loopback, with the
same counters (and ``--bytecodes``), and under ``strace -c`` its syscalls.

``--memory``: the same exchange between two stacks on a MemoryWire in this
process (both ends' work, no root): Python calls and CPU per round trip,
and, run under callgrind at two ``--rounds`` (instructions(N2) -
instructions(N1)) / (N2 - N1), instructions per round trip, which the
machine's load does not move::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p \
        python benchmarks/bench_echo_path.py --memory --rounds 500

With ``--virtual`` the loop's clock stands still while it works (tests'
VirtualClockLoop), so a run slowed by callgrind or the machine's load fires
no timer it would not fire at full speed: the instruction counts repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_tcp import CHUNK, PORT, run_peer

WARMUP = 200        # the echo peer's untimed first round trips


async def stream_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
    writer.close()


class ProtocolEcho(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Counts:
    """Loop-level counters: selector waits, callbacks run, timers, writers."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.c = {"loop iterations": 0, "callbacks run": 0, "call_soon": 0,
                  "timers armed": 0, "timers cancelled": 0, "add/remove_writer": 0}
        self.on = False
        c = self.c
        me = self
        sel = loop._selector          # type: ignore[attr-defined]
        select = sel.select

        def counting_select(timeout: float | None = None) -> Any:
            if me.on:
                c["loop iterations"] += 1
            return select(timeout)
        sel.select = counting_select
        for name, key in (("call_soon", "call_soon"), ("call_at", "timers armed"),
                          ("add_writer", "add/remove_writer"),
                          ("remove_writer", "add/remove_writer")):
            orig = getattr(loop, name)

            def wrapped(*a: Any, _orig: Any = orig, _key: str = key, **kw: Any) -> Any:
                if me.on:
                    c[_key] += 1
                return _orig(*a, **kw)
            setattr(loop, name, wrapped)
        run = asyncio.events.Handle._run
        cancel = asyncio.events.TimerHandle.cancel

        def counting_run(handle: Any) -> None:
            if me.on:
                c["callbacks run"] += 1
            run(handle)

        def counting_cancel(handle: Any) -> None:
            if me.on and not handle._cancelled:
                c["timers cancelled"] += 1
            cancel(handle)
        asyncio.events.Handle._run = counting_run           # type: ignore[method-assign]
        asyncio.events.TimerHandle.cancel = counting_cancel  # type: ignore[method-assign]


class Bytecodes:
    """Bytecodes executed and calls made per Python function while enabled
    (sys.settrace with f_trace_opcodes): cProfile's enable/disable shape."""

    def __init__(self) -> None:
        self.ops: dict[str, int] = {}
        self.calls: dict[str, int] = {}

    def _trace(self, frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        key = f"{Path(code.co_filename).name}:{code.co_firstlineno}({code.co_name})"
        if event == "call":
            frame.f_trace_opcodes = True
            frame.f_trace_lines = False
            self.calls[key] = self.calls.get(key, 0) + 1
        elif event == "opcode":
            self.ops[key] = self.ops.get(key, 0) + 1
        return self._trace

    def enable(self) -> None:
        sys.settrace(self._trace)

    def disable(self) -> None:
        sys.settrace(None)

    def report(self, n: int, top: int = 40) -> None:
        total = sum(self.ops.values())
        print(f"  Python bytecodes per round trip: {total / n:.1f}, Python functions "
              f"called: {sum(self.calls.values()) / n:.1f}")
        files: dict[str, list[int]] = {}
        for key, ops in self.ops.items():
            f = files.setdefault(key.split(":")[0], [0, 0])
            f[0] += ops
            f[1] += self.calls.get(key, 0)
        print("  by file (bytecodes, calls per round trip):")
        for name, (ops, calls) in sorted(files.items(), key=lambda kv: -kv[1][0]):
            if ops >= n:
                print(f"    {ops / n:7.1f} {calls / n:6.2f}  {name}")
        print("  by function:")
        for key, ops in sorted(self.ops.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {ops / n:7.1f} {self.calls.get(key, 0) / n:6.2f}  {key}")


async def measure(rounds: int, offloads: bool, profile: bool, protocol: bool,
                  dump: str | None = None, bytecodes: bool = False) -> None:
    from netns import kernel_peer

    loop = asyncio.get_running_loop()
    counts = Counts(loop)
    prof: Any = cProfile.Profile() if profile else Bytecodes() if bytecodes else None
    async with kernel_peer(ipv6=False, tap_options={"offloads": offloads}) as peer:
        tap, stack = peer.tap, peer.stack
        state: dict[str, Any] = {}
        arrived = 0

        def stop() -> None:
            state.update(t1=time.perf_counter(), cpu1=time.process_time(), times1=os.times())

        def start() -> None:
            # from the first timed round trip on: counters and profile on
            state.update(rx=tap.stats["rx_packets"], tx=tap.stats["tx_packets"],
                         mib=dict(stack.mib()), t=time.perf_counter(), cpu=time.process_time(),
                         times=os.times())
            counts.on = True
            if prof is not None:
                prof.enable()

        if protocol:
            class Echo(ProtocolEcho):
                def data_received(self, data: bytes) -> None:
                    nonlocal arrived
                    arrived += 1
                    if arrived == WARMUP + 1:
                        start()
                    elif arrived == WARMUP + rounds:
                        stop()
                    self.transport.write(data)
            await stack.create_server(Echo, "0.0.0.0", PORT)
        else:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                nonlocal arrived
                while data := await reader.read(CHUNK):
                    arrived += 1
                    if arrived == WARMUP + 1:
                        start()
                    elif arrived == WARMUP + rounds:
                        stop()
                    writer.write(data)
                writer.close()
            await stack.start_server(handler, "0.0.0.0", PORT)
        out = await run_peer(peer.ns, None, "echo", peer.tcpio_ip, str(PORT), str(rounds))
        if prof is not None:
            prof.disable()
        counts.on = False
        wall = state["t1"] - state["t"]
        cpu = state["cpu1"] - state["cpu"]
        user = state["times1"].user - state["times"].user
        system = state["times1"].system - state["times"].system
        rx = tap.stats["rx_packets"] - state["rx"]
        tx = tap.stats["tx_packets"] - state["tx"]
        mib = stack.mib()
        dmib = {k: v - state["mib"].get(k, 0) for k, v in mib.items()
                if v != state["mib"].get(k, 0)}
    n = rounds      # the timed ones (the counts take in the close's few frames too)
    print(f"1-byte echo, {'Protocol' if protocol else 'streams'} server, offloads "
          f"{'on' if offloads else 'off'}, {n} round trips (after {WARMUP} warm-up), "
          f"pid {os.getpid()}")
    print(f"  client median round trip {out['median_us']:.1f} us; tcpio CPU "
          f"{cpu / (n - 1) * 1e6:.1f} us per round trip (user {user / (n - 1) * 1e6:.1f}, "
          f"system {system / (n - 1) * 1e6:.1f}; wall {wall / (n - 1) * 1e6:.1f} us)")
    print(f"  frames per round trip: in {rx / n:.3f}, out {tx / n:.3f}")
    for k, v in counts.c.items():
        print(f"  {k} per round trip: {v / n:.3f}")
    print("  MIB moved per round trip: " + ", ".join(
        f"{k}={v / n:.3f}" for k, v in sorted(dmib.items()) if abs(v) >= n / 100))
    if isinstance(prof, Bytecodes):
        prof.report(n)
    elif prof is not None:
        if dump:
            prof.dump_stats(dump)
        st = pstats.Stats(prof)
        calls = sum(v[1] for v in st.stats.values())      # type: ignore[attr-defined]
        print(f"  Python calls per round trip (cProfile): {calls / n:.1f}")
        rows = sorted(st.stats.items(), key=lambda kv: -kv[1][1])  # type: ignore[attr-defined]
        for (fname, line, func), (_cc, nc, tt, ct, _callers) in rows[:45]:
            print(f"    {nc / n:6.2f}  {tt / n * 1e6:6.2f} us own  "
                  f"{Path(fname).name}:{line}({func})")


async def measure_kernel(rounds: int, bytecodes: bool = False) -> None:
    """The reference of issue 12's echo ratio (bench_tap_offload's): the same
    kernel client, to asyncio's own stream echo server over kernel loopback,
    with the same loop counters (and ``--bytecodes``), so the two servers'
    work per round trip can be set side by side.  Syscalls: run it under
    ``strace -c`` (main thread only), as the TAP figure."""
    from bench_tap_offload import kernel_echo_peer

    loop = asyncio.get_running_loop()
    counts = Counts(loop)
    prof: Any = Bytecodes() if bytecodes else None
    state: dict[str, Any] = {}
    arrived = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        while data := await reader.read(CHUNK):
            arrived += 1
            if arrived == WARMUP + 1:
                state.update(cpu=time.process_time())
                counts.on = True
                if prof is not None:
                    prof.enable()
            elif arrived == WARMUP + rounds:
                state.update(cpu1=time.process_time())
            writer.write(data)
        writer.close()

    out = await kernel_echo_peer(rounds, None, handler)
    if prof is not None:
        prof.disable()
    counts.on = False
    n = rounds
    print(f"1-byte echo, asyncio streams server over kernel loopback, {n} round trips "
          f"(after {WARMUP} warm-up), pid {os.getpid()}")
    print(f"  client median round trip {out['median_us']:.1f} us; server CPU "
          f"{(state['cpu1'] - state['cpu']) / (n - 1) * 1e6:.1f} us per round trip")
    for k, v in counts.c.items():
        print(f"  {k} per round trip: {v / n:.3f}")
    if prof is not None:
        prof.report(n)


async def measure_memory(rounds: int, profile: bool, bytecodes: bool = False) -> None:
    """The same exchange between two stacks on a MemoryWire in this process
    (no TAP, no kernel, no second process): both ends' Python work per round
    trip, deterministic enough for instruction counts (see the docstring)."""
    import tcpio

    wire = tcpio.MemoryWire(seed=1)
    a = tcpio.Stack(seed=1, name="client")
    b = tcpio.Stack(seed=2, name="server")
    async with a, b:
        a.add_interface(wire.a, "10.0.0.1/24")
        b.add_interface(wire.b, "10.0.0.2/24")
        await b.start_server(stream_echo, "10.0.0.2", PORT)
        reader, writer = await a.open_connection("10.0.0.2", PORT)
        for _ in range(WARMUP):
            writer.write(b"x")
            await reader.read(1)
        loop = asyncio.get_running_loop()
        counts = Counts(loop)
        counts.on = True
        prof: Any = cProfile.Profile() if profile else Bytecodes() if bytecodes else None
        if prof is not None:
            prof.enable()
        cpu = time.process_time()
        for _ in range(rounds):
            writer.write(b"x")
            await reader.read(1)
        cpu = time.process_time() - cpu
        if prof is not None:
            prof.disable()
        counts.on = False
        frames = wire.a.stats["tx_packets"], wire.b.stats["tx_packets"]
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)       # the server's handler reads EOF and ends
    print(f"1-byte echo tcpio <-> tcpio over a MemoryWire, streams both ends, {rounds} "
          f"round trips: CPU {cpu / rounds * 1e6:.1f} us per round trip (both ends)")
    for k, v in counts.c.items():
        print(f"  {k} per round trip: {v / rounds:.3f}")
    print(f"  frames so far: client {frames[0]}, server {frames[1]}")
    if isinstance(prof, Bytecodes):
        prof.report(rounds)
    elif prof is not None:
        st = pstats.Stats(prof)
        calls = sum(v[1] for v in st.stats.values())      # type: ignore[attr-defined]
        print(f"  Python calls per round trip (cProfile): {calls / rounds:.1f}")


def _strace_counts(path: str) -> dict[str, tuple[int, int]]:
    """``strace -c``'s table: syscall -> (calls, errors)."""
    counts: dict[str, tuple[int, int]] = {}
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 5 and cols[0][0].isdigit() and cols[-1] != "total":
                errors = int(cols[4]) if len(cols) == 6 else 0
                counts[cols[-1]] = (int(cols[3]), errors)
    return counts


def count_syscalls(argv: list[str], rounds: int) -> None:
    """``--syscalls``: this script under ``strace -c`` at ``rounds`` and
    ``3 * rounds`` round trips; the difference per round trip."""
    import subprocess
    import tempfile

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (rounds, 3 * rounds):
            out = os.path.join(tmp, f"strace.{n}")
            subprocess.run(["strace", "-c", "-o", out, sys.executable, __file__, *argv,
                            "--rounds", str(n)], check=True, stdout=subprocess.DEVNULL)
            runs.append(_strace_counts(out))
    a, b = runs
    per = 2 * rounds
    print(f"syscalls per round trip ({' '.join(argv) or 'defaults'}; strace -c at {rounds} "
          f"and {3 * rounds} round trips, the difference):")
    total = 0.0
    for name in sorted(set(a) | set(b)):
        calls = (b.get(name, (0, 0))[0] - a.get(name, (0, 0))[0]) / per
        errors = (b.get(name, (0, 0))[1] - a.get(name, (0, 0))[1]) / per
        if abs(calls) >= 0.005:
            total += calls
            print(f"  {name:16s} {calls:6.3f}" + (f"  ({errors:.3f} failed)" if errors else ""))
    print(f"  {'total':16s} {total:6.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3000)
    ap.add_argument("--offloads", choices=("on", "off"), default="on")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--bytecodes", action="store_true",
                    help="Python bytecodes per round trip, by file and function")
    ap.add_argument("--dump", default=None, help="write the cProfile stats here")
    ap.add_argument("--protocol", action="store_true",
                    help="a plain asyncio.Protocol echo instead of streams")
    ap.add_argument("--memory", action="store_true",
                    help="two stacks on a MemoryWire in this process instead (no root)")
    ap.add_argument("--kernel", action="store_true",
                    help="the reference instead: asyncio's echo over kernel loopback, "
                         "the same client and counters (no root)")
    ap.add_argument("--virtual", action="store_true",
                    help="with --memory: on tests/virtual_loop's clock, which stands "
                         "still while the loop works, so no timer fires mid-exchange "
                         "however slow the run (callgrind): the same work every run")
    ap.add_argument("--syscalls", action="store_true",
                    help="syscalls per round trip: this script twice under strace -c "
                         "(--rounds and 3x), the difference")
    args = ap.parse_args()
    if args.syscalls:
        argv = [a for a in sys.argv[1:] if a != "--syscalls"]
        if "--rounds" in argv:
            i = argv.index("--rounds")
            del argv[i:i + 2]
        argv = [a for a in argv if not a.startswith("--rounds=")]
        count_syscalls(argv, args.rounds)
        return
    if args.memory:
        if args.virtual:
            from virtual_loop import VirtualClockLoop
            loop = VirtualClockLoop()
            try:
                loop.run_until_complete(measure_memory(args.rounds, args.profile,
                                                       args.bytecodes))
            finally:
                loop.close()
            return
        asyncio.run(measure_memory(args.rounds, args.profile, args.bytecodes))
        return
    if args.kernel:
        asyncio.run(measure_kernel(args.rounds, args.bytecodes))
        return
    if os.geteuid() != 0:
        sys.exit("needs root (TAP, namespaces)")
    asyncio.run(measure(args.rounds, args.offloads == "on", args.profile or bool(args.dump),
                        args.protocol, args.dump, args.bytecodes))


if __name__ == "__main__":
    main()
