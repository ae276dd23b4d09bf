"""Many connections at once (issue 11): aggregate throughput, connections/s,
memory and opening cost as the number of concurrent connections grows.

    sudo python benchmarks/bench_scale.py [--quick] [--steps 1,10,100,1000,10000]
                                          [--modes tap_in,tap_out,wire] [--json FILE]
                                          [--loop-stats] [--txqueuelen N]

For each step N (concurrent connections):

- ``tap_in``: N kernel flows send to a tcpio server over a TAP (MTU 1500),
  ``tap_out``: N tcpio flows send to a kernel server over the TAP,
  ``wire``: N tcpio flows to another tcpio Stack over a MemoryWire (MTU 1500),
  each moving ``total / N`` bytes (a counter pattern the receiver checks), so
  every step moves the same total; aggregate throughput = total / elapsed,
  timed on the sending side from the first connect to the last EOF.
- ``kernel``: the same job kernel to kernel on the namespace's loopback
  (benchmarks/scale_peer.py on both ends), in the same run.
- connections/s: a kernel client keeps min(N, 1000) connects in flight
  against a tcpio server (accept, close), beside the same client against a
  kernel asyncio server on loopback; both warmed up, then measured
  alternately ``--conns-rounds`` times (default 3): the ratio's median and
  range, and the verdict from the median.
- ``--rounds R``: the throughput steps R times in turn (1, 1000, 1, 1000,
  ...); each mode's median rate per step (the median round's counters with
  it), the target's ratio from the medians, each round's ratio beside it.

Before each TAP measurement the kernel and tcpio resolve each other (one
ping), as the loopback baseline needs no neighbour resolution.

Reported with each TAP step: the kernel's drops on the TAP (its tx_dropped:
frames it could not queue toward tcpio), tcpio's device drops, the RTOs
tcpio's stack took (TCPTimeouts), and when there were any, the resets tcpio
sent and the kernel's own SYN retransmissions, RTOs, loss probes and resets;
with ``--loop-stats``, the longest event-loop callback of the step and how
many took 50 ms or more (by name), and the stack's timers' waits for input
(Stack.softnet_stat); BENCH_FULL_MIB=1 in the environment adds tcpio's
whole MIB delta to the JSON.  Then, in one process: the memory per idle
established connection (bare sockets and asyncio streams; RSS delta, both
ends counted, per end) and the time to open 5 000 and 20 000 idle
connections, spread over IDLE_PORTS server ports (as bench_open_idle.py
--ports: one destination's port search is not a per-connection cost), with
the cycle collector's share of that time, its full collections and the
objects it tracks per connection.  The targets issue 11 sets are printed
with a verdict.

The machine is shared and noisy: quote ratios from one run, and several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))         # netns: the namespace + TAP fixture

import scale_peer

PEER = str(ROOT / "benchmarks" / "scale_peer.py")
PORT = 5001
IDLE_PORTS = 4         # server ports the idle step spreads over (idle())
MiB = 1024 * 1024


# --- helpers -------------------------------------------------------------------------------

async def peer_json(proc: asyncio.subprocess.Process) -> dict:
    """The last JSON line a scale_peer process prints."""
    assert proc.stdout is not None
    out, err = await proc.communicate()
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"scale_peer failed ({proc.returncode}): {err.decode()[-2000:]}")
    return json.loads(lines[-1])


async def start_peer(ns: Any, *args: str) -> asyncio.subprocess.Process:
    argv = ns.exec_argv(sys.executable, PEER, *args)
    return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def wait_listening(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if b"listening" not in line:
        raise RuntimeError(f"scale_peer did not start: {line!r}")


async def sink_handler(counts: list[int], bad: list[int], n: int,
                       done: asyncio.Future[None]) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chk = await scale_peer.read_checked(reader)
        if not chk.ok:
            bad.append(1)
        counts.append(chk.received)
        writer.close()
        if len(counts) == n and not done.done():
            done.set_result(None)
    return handle


async def tcpio_send(stack: Any, host: str, n: int, nbytes: int) -> float:
    """n concurrent flows of nbytes from ``stack`` to host:PORT; elapsed to the last EOF."""
    async def flow(i: int) -> None:
        reader, writer = await stack.open_connection(host, PORT)
        for piece in scale_peer.pattern_chunks(i, nbytes):
            writer.write(piece)
            await writer.drain()
        writer.write_eof()
        await reader.read()
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(flow(i) for i in range(n)))
    return time.perf_counter() - t0


# tcpio's counters of the listener's decisions, reported with each TAP step
LISTEN_MIB = ("OutRsts", "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed",
              "ListenOverflows", "ListenDrops", "TCPReqQFullDoCookies")


# the kernel's counters of its own retransmissions (its TcpExt/Tcp MIB in
# the namespace): a SYN it sent again (TCPSynRetrans: no SYN-ACK within its
# 1 s SYN RTO) costs that flow a second, and shows as a slow, noisy step
KERNEL_MIB = ("TCPSynRetrans", "TCPTimeouts", "TCPLossProbes", "OutRsts")


def drops(peer: Any) -> dict[str, int]:
    from tap.test_tcp_kernel_common import kernel_mib

    k = peer.ns.call(peer.tap.kernel_counters) or {}
    mib = peer.stack.mib()
    kmib = kernel_mib(peer.ns)
    # the stack's due timers put off for input still waiting, and the runs a
    # cap forced with input left (Stack.softnet_stat; trees before it: none)
    soft = getattr(peer.stack, "softnet_stat", {})
    return {"kernel_tx_dropped": k.get("tx_dropped", 0),
            "tcpio_tx_dropped": peer.tap.stats["tx_dropped"],
            # frames tcpio read and wrote: their bytes per frame say how far
            # the kernel's super-frames (toward tcpio) and tcpio's ACKs go
            **{f"tcpio_{k}": peer.tap.stats[k]
               for k in ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")},
            "timers_deferred": soft.get("timers_deferred", 0),
            "timers_forced": soft.get("timers_forced", 0),
            "rtos": mib.get("TCPTimeouts", 0),
            **{name: mib.get(name, 0) for name in LISTEN_MIB},
            **({f"mib_{k}": v for k, v in mib.items()} if os.environ.get("BENCH_FULL_MIB") else {}),
            **{f"kernel_{name}": kmib.get(name, 0) for name in KERNEL_MIB}}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


class LoopStats:
    """How long the event loop's callbacks ran (``--loop-stats``): each
    ``asyncio.Handle._run`` timed, and those of ``SLOW`` seconds or more
    counted by callback name (count, seconds, longest).  A callback that
    holds the loop holds every other flow's reads, writes and timers
    (issue 11: a timer callback that read the TAP's ring for 0.73 s).
    Costs two clock reads per callback, in both trees alike when comparing."""

    SLOW = 0.05

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.longest = 0.0
        self.slow: dict[str, list[float]] = {}

    def install(self) -> None:
        from asyncio import events

        orig = events.Handle._run
        clock = time.perf_counter
        stats = self

        def timed_run(handle: Any) -> None:
            t0 = clock()
            orig(handle)
            took = clock() - t0
            stats.longest = max(stats.longest, took)
            if took >= stats.SLOW:
                cb = handle._callback
                name = getattr(cb, "__qualname__", None) or type(cb).__name__
                row = stats.slow.setdefault(name, [0, 0.0, 0.0])
                row[0] += 1
                row[1] += took
                row[2] = max(row[2], took)
        events.Handle._run = timed_run     # type: ignore[method-assign]

    def take(self) -> dict[str, Any]:
        """The figures since the last take (or reset), then reset."""
        out = {"loop_longest": self.longest, "loop_slow": self.slow}
        self.reset()
        return out


def loop_slow_text(r: dict) -> str:
    """``--loop-stats`` figures of a step, as the report prints them."""
    rows = sorted(r["loop_slow"].items(), key=lambda kv: -kv[1][2])
    slow = ", ".join(f"{name} {int(c)} ({s:.2f} s, max {m * 1e3:.0f} ms)"
                     for name, (c, s, m) in rows)
    return (f"longest callback {r['loop_longest'] * 1e3:.0f} ms; "
            f">= {LoopStats.SLOW * 1e3:.0f} ms: {slow or 'none'}")


LOOP_STATS: LoopStats | None = None


def loop_stats_start(peer: Any) -> None:
    soft = getattr(peer.stack, "softnet_stat", None)
    if soft is not None:
        soft["timers_waited_max"] = 0.0         # the step's own longest wait
    if LOOP_STATS is not None:
        LOOP_STATS.reset()


def loop_stats_take(peer: Any) -> dict[str, Any]:
    out = LOOP_STATS.take() if LOOP_STATS is not None else {}
    soft = getattr(peer.stack, "softnet_stat", None)
    if soft is not None:
        out["timers_waited_max"] = soft["timers_waited_max"]
    return out


async def warm_neighbours(peer: Any) -> None:
    """Resolve the kernel and tcpio to each other before a timed step (one
    ping: tcpio's ARP request also gives the kernel tcpio's MAC).  Otherwise
    N connections opened at once all queue behind one unresolved neighbour,
    which holds 101 packets (arp_unres_qlen, and Linux's unres_qlen_bytes on
    the kernel side): at 1000 flows 899 SYNs were dropped (ArpUnresolvedDiscards)
    and waited a second for their retransmission, which the step's time and
    RTO count then measured instead of the flows."""
    await peer.stack.ping(peer.kernel_ip, timeout=5.0)


# --- the measurements ----------------------------------------------------------------------

async def tap_in(peer: Any, n: int, nbytes: int) -> dict:
    await warm_neighbours(peer)
    counts: list[int] = []
    bad: list[int] = []
    done = asyncio.get_running_loop().create_future()
    server = await peer.stack.start_server(await sink_handler(counts, bad, n, done),
                                           "0.0.0.0", PORT, backlog=4096)
    before = drops(peer)
    loop_stats_start(peer)
    try:
        out = await peer_json(await start_peer(peer.ns, "send", peer.tcpio_ip, str(PORT),
                                               str(n), str(nbytes)))
        if out["failed"]:
            # clients that failed (their errno names counted) may never end a
            # connection here: the rate is the completed flows'
            await asyncio.wait([done], timeout=10)
        else:
            await asyncio.wait_for(done, 60)
    finally:
        server.close()
    assert not bad, len(bad)
    assert out["failed"] or sum(counts) == n * nbytes, sum(counts)
    return {"rate": out["bytes"] / out["elapsed"], "client_errors": out["errors"],
            **loop_stats_take(peer), **delta(drops(peer), before)}


async def tap_out(peer: Any, n: int, nbytes: int) -> dict:
    await warm_neighbours(peer)
    proc = await start_peer(peer.ns, "sink", peer.kernel_ip, str(PORT), str(n))
    await wait_listening(proc)
    before = drops(peer)
    loop_stats_start(peer)
    await tcpio_send(peer.stack, peer.kernel_ip, n, nbytes)
    out = await peer_json(proc)
    assert out["bad"] == 0 and out["bytes"] == n * nbytes, out
    return {"rate": out["bytes"] / out["elapsed"], **loop_stats_take(peer),
            **delta(drops(peer), before)}


async def wire(n: int, nbytes: int) -> dict:
    import tcpio
    w = tcpio.MemoryWire(mtu=1500)
    async with tcpio.Stack(seed=1, name="c") as client, tcpio.Stack(seed=2, name="s") as srv:
        client.add_interface(w.a, "10.0.0.1/24")
        srv.add_interface(w.b, "10.0.0.2/24")
        counts: list[int] = []
        bad: list[int] = []
        done = asyncio.get_running_loop().create_future()
        await srv.start_server(await sink_handler(counts, bad, n, done), "0.0.0.0", PORT,
                               backlog=4096)
        await client.ping("10.0.0.2", timeout=5)
        elapsed = await tcpio_send(client, "10.0.0.2", n, nbytes)
        await asyncio.wait_for(done, 60)
        assert not bad and sum(counts) == n * nbytes
        rtos = client.mib().get("TCPTimeouts", 0) + srv.mib().get("TCPTimeouts", 0)
    return {"rate": n * nbytes / elapsed, "rtos": rtos}


async def kernel_bulk(ns: Any, n: int, nbytes: int) -> dict:
    proc = await start_peer(ns, "sink", "127.0.0.1", str(PORT + 1), str(n))
    await wait_listening(proc)
    out = await peer_json(await start_peer(ns, "send", "127.0.0.1", str(PORT + 1), str(n),
                                           str(nbytes)))
    await peer_json(proc)
    return {"rate": out["bytes"] / out["elapsed"]}


async def conns_tap(peer: Any, n: int, total: int) -> dict:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    await warm_neighbours(peer)
    server = await peer.stack.start_server(handle, "0.0.0.0", PORT, backlog=4096)
    before = drops(peer)
    try:
        out = await peer_json(await start_peer(peer.ns, "connect", peer.tcpio_ip, str(PORT),
                                               str(n), str(total)))
    finally:
        server.close()
    return {"rate": out["conns"] / out["elapsed"], "failed": out["failed"],
            **delta(drops(peer), before)}


async def conns_kernel(ns: Any, n: int, total: int) -> dict:
    srv = await start_peer(ns, "accept", "127.0.0.1", str(PORT + 2))
    await wait_listening(srv)
    try:
        out = await peer_json(await start_peer(ns, "connect", "127.0.0.1", str(PORT + 2),
                                               str(n), str(total)))
    finally:
        srv.kill()
        await srv.wait()
    return {"rate": out["conns"] / out["elapsed"], "failed": out["failed"]}


async def conns_rounds(n: int, total: int, rounds: int) -> dict:
    """conn/s kernel -> tcpio beside the kernel loopback asyncio server:
    both warmed up (50 connections one at a time: ARP, imports, first code
    paths, as bench_conns does), then measured alternately, ``rounds`` times
    each, so a swing of the shared machine's load falls on both; each
    round's ratio is tcpio's figure over the kernel one next to it.  The
    median round's figures are the step's conns_tap/conns_kernel."""
    from netns import NetNs, kernel_peer

    async with kernel_peer(ipv6=False) as peer:
        with NetNs() as ns:
            ns.ip("link", "set", "lo", "up")
            await conns_tap(peer, 1, 50)
            await conns_kernel(ns, 1, 50)
            runs = []
            for i in range(rounds):
                # alternate which side goes first, so neither always follows the other
                if i % 2:
                    ck = await conns_kernel(ns, n, total)
                    ct = await conns_tap(peer, n, total)
                else:
                    ct = await conns_tap(peer, n, total)
                    ck = await conns_kernel(ns, n, total)
                runs.append((ct["rate"] / ck["rate"], ct, ck))
    runs.sort(key=lambda r: r[0])
    _, ct, ck = runs[len(runs) // 2]
    return {"conns_tap": ct, "conns_kernel": ck, "conns_ratios": [r[0] for r in runs]}


# --- idle connections in one process -----------------------------------------------------

def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def idle(n: int, streams: bool, ports: int = IDLE_PORTS) -> dict:
    """Open n idle established connections between two stacks; per-end memory
    (RSS delta over both ends) and time (run in a fresh process).  The server
    listens on ``ports`` consecutive ports and the client spreads over them:
    from one client address to one server port, connect()'s port search
    (__inet_hash_connect, Linux's algorithm) walks every taken port of the
    first parity once ~14 100 are used, a cost of the single destination
    that Linux pays too and not the per-connection cost issue 11 measures
    (bench_open_idle.py --ports)."""
    import tcpio
    w = tcpio.MemoryWire(mtu=1500)
    keep: list[Any] = []
    async with tcpio.Stack(seed=1, name="c") as client, tcpio.Stack(seed=2, name="s") as srv:
        client.add_interface(w.a, "10.0.0.1/24")
        srv.add_interface(w.b, "10.0.0.2/24")
        if streams:
            async def handle(reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
                keep.append((reader, writer))
            for i in range(ports):
                await srv.start_server(handle, "0.0.0.0", PORT + i, backlog=4096)
        else:
            async def acceptor(port: int) -> None:
                lst = srv.socket(socket.SOCK_STREAM)
                lst.bind(("0.0.0.0", port))
                lst.listen(4096)
                while True:
                    keep.append(await lst.accept())
            accs = [asyncio.ensure_future(acceptor(PORT + i)) for i in range(ports)]
        await client.ping("10.0.0.2", timeout=5)
        gc.collect()
        tracked0 = len(gc.get_objects())
        collector = GcTimer()
        gc.callbacks.append(collector)
        m0 = rss()
        t0 = time.perf_counter()
        c0 = time.process_time()
        batch = 500
        for start in range(0, n, batch):
            k = min(batch, n - start)
            if streams:
                keep.extend(await asyncio.gather(
                    *(client.open_connection("10.0.0.2", PORT + (start + j) % ports)
                      for j in range(k))))
            else:
                socks = [client.socket(socket.SOCK_STREAM) for _ in range(k)]
                await asyncio.gather(*(s.connect(("10.0.0.2", PORT + (start + j) % ports))
                                       for j, s in enumerate(socks)))
                keep.extend(socks)
        while len(keep) < 2 * n:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0
        gc.callbacks.remove(collector)
        gc.collect()
        tracked = (len(gc.get_objects()) - tracked0) / n
        m1 = rss()
        established = len(srv.connections())
        if not streams:
            for acc in accs:
                acc.cancel()
    return {"n": n, "seconds": elapsed, "cpu_seconds": cpu, "bytes_per_end": (m1 - m0) / (2 * n),
            "established_server_side": established, "ports": ports,
            "gc_seconds": collector.seconds, "gc_full": collector.counts[2],
            "gc_collections": collector.counts,
            "gc_tracked_per_connection": tracked}


class GcTimer:
    """A gc.callbacks entry: collections per generation and the seconds spent
    in the cycle collector while installed.  While the heap is small CPython
    runs a full collection every ~77 000 net new tracked objects, each one
    scanning all of them: what grows faster than the number of idle
    connections opened (issue 11), in proportion to the tracked objects each
    connection keeps (gc_tracked_per_connection, both ends)."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = 0.0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._t0
            self.counts[info["generation"]] += 1


# --- the run -------------------------------------------------------------------------------

def tap_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """--txqueuelen N: the TAP's ring toward tcpio (None: TapDevice's default)."""
    return None if args.txqueuelen is None else {"txqueuelen": args.txqueuelen}


def idle_counts(text: str) -> list[int]:
    """The --idle counts: '' or 0 (alone or in the list) means no idle step."""
    return [n for n in (int(x) for x in text.split(",") if x.strip()) if n > 0]


async def run(args: argparse.Namespace) -> dict:
    from netns import NetNs, kernel_peer

    steps = [int(x) for x in args.steps.split(",")]
    modes = args.modes.split(",")
    total = args.total * MiB
    results: dict[str, Any] = {"steps": {}, "idle": {}, "rounds": []}
    root = os.geteuid() == 0 and os.path.exists("/dev/net/tun")
    # --rounds: every step again, in turn (1, 1000, 1, 1000, ...), so the
    # steps a ratio compares ran in the same phases of a shared machine
    for rnd in range(args.rounds):
        rows: dict[int, dict[str, Any]] = {}
        for n in steps:
            nbytes = max(1, total // n)
            row: dict[str, Any] = {"bytes_per_flow": nbytes}
            if root and ("tap_in" in modes or "tap_out" in modes):
                async with kernel_peer(ipv6=False, tap_options=tap_options(args)) as peer:
                    if "tap_in" in modes:
                        row["tap_in"] = await tap_in(peer, n, nbytes)
                    if "tap_out" in modes:
                        row["tap_out"] = await tap_out(peer, n, nbytes)
            if root and "conns" in modes and rnd == 0:
                row.update(await conns_rounds(min(n, 1000), max(args.conns, n),
                                              args.conns_rounds))
            if "wire" in modes:
                row["wire"] = await wire(n, nbytes)
            if root and "kernel" in modes:
                with NetNs() as ns:
                    ns.ip("link", "set", "lo", "up")
                    row["kernel"] = await kernel_bulk(ns, n, nbytes)
            rows[n] = row
            print(json.dumps({n: row}), flush=True)
        results["rounds"].append(rows)
    results["steps"] = median_rows(results["rounds"])
    for n in idle_counts(args.idle):
        for kind in ("bare", "streams"):
            # a fresh process each: RSS grows only by what these connections take
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "--idle-child", f"{n},{kind}",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            results["idle"][f"{n}_{kind}"] = await peer_json(proc)
            print(json.dumps({f"{n}_{kind}": results["idle"][f"{n}_{kind}"]}), flush=True)
    return results


THROUGHPUT_MODES = ("tap_in", "tap_out", "wire", "kernel")


def median_rows(rounds: list[dict[int, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """One row per step from several rounds: for each mode the round with the
    median rate (its drops and counters with it), and ``rates``, every
    round's rate in order."""
    steps: dict[int, dict[str, Any]] = {}
    for n in rounds[0]:
        row = dict(rounds[0][n])
        for key in THROUGHPUT_MODES:
            runs = [r[n][key] for r in rounds if key in r[n]]
            if runs:
                ordered = sorted(runs, key=lambda v: v["rate"])
                row[key] = {**ordered[(len(ordered) - 1) // 2],
                            "rates": [v["rate"] for v in runs]}
        steps[n] = row
    return steps


def rate_text(r: dict | None) -> str:
    return "n/a" if not r else f"{r['rate']:.0f}"


def report(res: dict, args: argparse.Namespace) -> None:
    steps = res["steps"]
    ns = sorted(steps, key=int)

    def mbs(row: dict, key: str) -> str:
        v = row.get(key)
        return "n/a" if not v else f"{v['rate'] / 1e6:8.1f}"

    print()
    print(f"{'flows':>6} {'tap_in MB/s':>12} {'tap_out MB/s':>13} {'wire MB/s':>10} "
          f"{'kernel lo MB/s':>15} {'conn/s tcpio':>13} {'conn/s kernel':>14}  "
          "drops (kernel tx, tcpio tx), RTOs")
    for n in ns:
        row = steps[n]
        ct = row.get("conns_tap")
        ck = row.get("conns_kernel")
        extra = []
        for key in ("tap_in", "tap_out", "conns_tap"):
            if key in row:
                r = row[key]
                if key != "conns_tap":
                    extra.append(f"{key}: {r['kernel_tx_dropped']},{r['tcpio_tx_dropped']}, "
                                 f"RTO {r['rtos']}")
                    if r.get("tcpio_rx_packets"):
                        extra.append(f"{key}: {r['tcpio_rx_bytes'] / r['tcpio_rx_packets']:.0f}"
                                     f" B per frame read")
                # resets and the kernel's retransmissions, when there were any
                noted = [f"tcpio RSTs {r['OutRsts']}"] if r.get("OutRsts") else []
                noted += [f"kernel {name} {r[f'kernel_{name}']}" for name in KERNEL_MIB
                          if r.get(f"kernel_{name}")]
                if noted:
                    extra.append(f"{key}: " + ", ".join(noted))
                if r.get("timers_deferred"):
                    extra.append(f"{key}: timers waited for input {r['timers_deferred']} "
                                 f"times (longest {r.get('timers_waited_max', 0) * 1e3:.0f} ms), "
                                 f"ran with input left {r['timers_forced']}")
                if "loop_longest" in r:
                    extra.append(f"{key}: {loop_slow_text(r)}")
                if r.get("client_errors"):
                    extra.append(f"{key} clients failed: {r['client_errors']}")
        if "wire" in row:
            extra.append(f"wire: RTO {row['wire']['rtos']}")
        print(f"{n:>6} {mbs(row, 'tap_in'):>12} {mbs(row, 'tap_out'):>13} "
              f"{mbs(row, 'wire'):>10} {mbs(row, 'kernel'):>15} "
              f"{rate_text(ct):>13} {rate_text(ck):>14}  {'; '.join(extra)}")
    print()
    print("targets (issue 11):")
    first, big = (ns[0], next((n for n in ns if int(n) == 1000), None)) if ns else (None, None)
    for key in ("tap_in", "tap_out", "wire"):
        if big is not None and key in steps[first] and key in steps[big]:
            ratio = steps[big][key]["rate"] / steps[first][key]["rate"]
            each = [b / a for a, b in zip(steps[first][key].get("rates", []),
                                          steps[big][key].get("rates", []))]
            spread = (f", median of {len(each)} rounds; each round {min(each):.0%}-"
                      f"{max(each):.0%}" if len(each) > 1 else "")
            print(f"  {key}: 1000 flows at {ratio:.0%} of {first} flow(s)  (>= 70%: "
                  f"{'met' if ratio >= 0.7 else 'NOT met'}{spread})")
    for n in ns:
        ct, ck = steps[n].get("conns_tap"), steps[n].get("conns_kernel")
        if ct and ck:
            ratios = steps[n].get("conns_ratios") or [ct["rate"] / ck["rate"]]
            ratio = ratios[len(ratios) // 2]
            print(f"  conn/s kernel -> tcpio at {n}: {ratio:.2f}x kernel loopback asyncio, "
                  f"median of {len(ratios)} alternating rounds ({min(ratios):.2f}-"
                  f"{max(ratios):.2f}x) (>= 0.5x: {'met' if ratio >= 0.5 else 'NOT met'})")
    idle_res = res["idle"]
    for kind in ("bare", "streams"):
        rows = sorted((v for k, v in idle_res.items() if k.endswith(kind)),
                      key=lambda v: v["n"])
        for v in rows:
            print(f"  idle {kind}: {v['n']} connections opened in {v['seconds']:.2f} s, "
                  f"{v['bytes_per_end'] / 1024:.2f} KiB per end "
                  f"(target {'3' if kind == 'bare' else '5'} KiB)"
                  + (f"; cycle collector {v['gc_seconds']:.2f} s of it "
                     f"({v['gc_full']} full collections), "
                     f"{v['gc_tracked_per_connection']:.1f} tracked objects per connection"
                     if "gc_seconds" in v else ""))
        if len(rows) >= 2:
            a, b = rows[0], rows[-1]
            cost = (b["seconds"] / b["n"]) / (a["seconds"] / a["n"])
            print(f"  idle {kind}: opening {b['n']} costs {b['seconds'] / a['seconds']:.1f}x "
                  f"opening {a['n']} (per connection {cost:.2f}x; target: 20 000 <= 5x 5 000)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="steps 1,10,100; 16 MiB per step; idle 1000,4000")
    ap.add_argument("--steps", default="1,10,100,1000,10000")
    ap.add_argument("--modes", default="tap_in,tap_out,wire,kernel,conns")
    ap.add_argument("--total", type=int, default=128, help="MiB moved per step")
    ap.add_argument("--conns", type=int, default=3000, help="connections per conn/s figure")
    ap.add_argument("--conns-rounds", type=int, default=3,
                    help="alternating tcpio/kernel rounds per conn/s figure (median, range)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="throughput steps measured this many times in turn: each mode's "
                         "median rate per step, the targets' ratio from the medians")
    ap.add_argument("--idle", default="5000,20000", help="idle-connection counts ('' or 0 skips)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--txqueuelen", type=int, default=None,
                    help="the TAP's tx queue in frames (default: TapDevice's)")
    ap.add_argument("--loop-stats", action="store_true",
                    help="time every loop callback: the longest, and those >= 50 ms (TAP steps)")
    ap.add_argument("--idle-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.idle_child:
        n, kind = args.idle_child.split(",")
        print(json.dumps(asyncio.run(idle(int(n), kind == "streams"))))
        return
    if args.quick:
        args.steps, args.total, args.conns, args.idle = "1,10,100", 16, 1000, "1000,4000"
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_scale.py",
                                                 *sys.argv[1:]])
    from tcpio import _fast
    build = "compiled" if _fast.load_compiled("checksum") is not None else "pure"
    print("# tcpio many-connections benchmark (issue 11)")
    print(f"# reproduce: sudo {command}   (from the repository root)")
    print(f"# {platform.python_implementation()} {platform.python_version()}, kernel "
          f"{platform.release()}, tcpio {build}, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} CPUs, not pinned")
    sys.stdout.flush()
    if args.loop_stats:
        global LOOP_STATS
        LOOP_STATS = LoopStats()
        LOOP_STATS.install()
    t0 = time.perf_counter()
    res = asyncio.run(run(args))
    report(res, args)
    print(f"# total {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
