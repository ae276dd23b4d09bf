"""When and why the many-flows soak's RTOs fire (issue 11): a timeline.

    sudo python benchmarks/soak_timeline.py [--flows 1000] [--size 1048576]
                                            [--copy] [--out DIR] [--tag NAME]
                                            [--rx-cap SECONDS] [--loop-trace S]
                                            [--pyspy S] [--capture S]
                                            [--rx-only] [--gc-off S] [--gc-freeze]
                                            [--tx-thread]

Runs the workload of tests/tap/test_tcp_kernel_many_flows.py (N kernel
clients in a namespace, one tcpio server over TAP, ``size`` bytes each way
per connection, every byte checked) and samples both sides while it runs:

- inside the namespace, every 0.1 s: the kernel's TcpExt/Tcp counters
  (TCPTimeouts, TCPLossUndo, RetransSegs, TCPLossProbes), and every 0.4 s
  ``ss -tin`` over the clients' sockets (segments in flight summed and the
  largest, median RTT and RTO, median cwnd and peer window), the TAP's
  frames and bytes read by tcpio and its tx_dropped (``ip -s link``);
- in tcpio's process, every 0.05 s: how late the sampler woke (the loop's
  stall), InSegs/OutSegs, PassiveOpens and tcpio's own TCPTimeouts.

The rows go to DIR/TAG.ns.jsonl and DIR/TAG.tcpio.jsonl; the summary line
says how many kernel RTOs had fired by 2, 5, 10 and 20 s and at the end,
when the TAP first dropped, the longest stall in the first 5 s, the largest
in-flight and median RTT seen, and what tcpio read of the TAP in the first
2 s, and the flows' reader's turns (RxShare: budgets read past the first,
turns its time stopped; ``--rx-cap 0.05`` turns RxShare on, ``--rx-cap 0``
is the default reader, one budget a wake-up: A/B in one tree).  ``--copy``
makes each server handler copy its bytes as the test did before (a 1 MiB
``bytes`` slice per handler as it starts), for A/B runs.

What tcpio's loop did in the first seconds (issue 11: what keeps the ring
unread): ``--loop-trace S`` records every loop iteration of the first S
seconds (time in select; seconds and calls per callback, the receive path,
kicks, device writes and the collector's pauses among them; frames and
bytes read and written, children made) to TAG.loop.jsonl and per 0.1 s to
TAG.loopbins.jsonl; ``--pyspy S`` samples the process's stacks (py-spy,
TAG.pyspy.txt, folded); ``--capture S`` captures the TAP inside the
namespace (dumpcap, 96 bytes a frame: a frame toward tcpio is stamped when
the kernel sent it, before the ring) and the summary's ``first_flights``
says, per connection, how long the client's first data waited for tcpio's
ACK of it, how long its handshake took (the client's RTO comes from it),
when tcpio's first data went, and the clients' retransmissions.
``--rx-only``: the server only reads (the clients' digests then fail): the
receive path's capacity alone.  ``--gc-off S``: no collector in the first S
seconds.  ``--gc-freeze``: ``gc.freeze()`` once the server listens (what an
application may do after its start-up: the objects it made so far are no
longer traversed by the collections of the burst).  Every run logs the
collector's pauses (``gc``: per generation, count and seconds by 2 and 5 s and
in all, the longest) and the objects it tracks before the clients start and
after they end.  With ``--pyspy`` the summary's ``pyspy`` says where the
samples went, by the innermost of a few marker frames (receive, device writes,
accept, wakeups, the handlers' sends ...); py-spy shows a collection under
whatever Python line allocated when it began, so a stack's outsized count at
one allocating line is a pause (compare with ``gc``).
``--tx-thread``: the TAP writes from a thread of its own
(``TapDevice(tx_thread=True)``: the kernel's receive of what tcpio sends runs
beside the loop), for A/B runs in one tree.
The tracing costs time of its own: compare counts, not elapsed.

The machine is shared: alternate the variants and report each run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

NS_SAMPLER = r'''
import json, re, subprocess, sys, time
ifname, port, out = sys.argv[1], sys.argv[2], open(sys.argv[3], "w")
KEYS = ("TCPTimeouts", "TCPLossUndo", "RetransSegs", "TCPLossProbes")
def mib():
    d = {}
    for p in ("/proc/net/snmp", "/proc/net/netstat"):
        ls = open(p).read().splitlines()
        for a, b in zip(ls[::2], ls[1::2]):
            pre, _, names = a.partition(":")
            if pre in ("Tcp", "TcpExt"):
                d.update(zip(names.split(), map(int, b.split(":")[1].split())))
    return {k: d.get(k, 0) for k in KEYS}
def med(xs):
    return sorted(xs)[len(xs) // 2] if xs else 0
t0, n = time.monotonic(), 0
while True:
    rec = {"t": round(time.monotonic() - t0, 3), **mib()}
    if n % 4 == 0:
        s = subprocess.run(["ss", "-tinH", "( dport = :" + port + " )"],
                           capture_output=True, text=True).stdout
        unacked = [int(x) for x in re.findall(r" unacked:(\d+)", s)]
        rec.update(socks=len(re.findall(r" rto:", s)), inflight=sum(unacked),
                   inflight_max=max(unacked, default=0),
                   rtt_med=med([float(x) for x in re.findall(r" rtt:([\d.]+)/", s)]),
                   rto_med=med([float(x) for x in re.findall(r" rto:([\d.]+)", s)]),
                   cwnd_med=med([int(x) for x in re.findall(r" cwnd:(\d+)", s)]),
                   snd_wnd_med=med([int(x) for x in re.findall(r" snd_wnd:(\d+)", s)]))
        st = json.loads(subprocess.run(["ip", "-s", "-j", "link", "show", ifname],
                                       capture_output=True, text=True).stdout)[0]["stats64"]
        rec.update(tap_frames=st["tx"]["packets"], tap_bytes=st["tx"]["bytes"],
                   tap_dropped=st["tx"]["dropped"])
    print(json.dumps(rec), file=out, flush=True)
    n += 1
    time.sleep(0.1)
'''


class LoopTrace:
    """tcpio's event loop, iteration by iteration, for the first ``seconds``
    (``--loop-trace``): time in select, then what the iteration ran, by
    callback (the TAP's readers, the stack's timer and kicks, transports'
    callbacks, task steps ...: seconds and calls each), and what it moved:
    frames and bytes read from the flows' and SYN queues, frames and bytes
    written, children created (PassiveOpens), segments in and out.  Wraps
    ``Handle._run`` (every callback, timers too) and the loop selector's
    ``select`` (the iteration's boundary); ~1 us per callback of overhead."""

    def __init__(self, loop: asyncio.AbstractEventLoop, tap: Any, stack: Any, seconds: float) -> None:
        self.loop, self.tap, self.mib, self.seconds = loop, tap, stack.host.mib, seconds
        # inside the callbacks: the receive path, the kicks (wakeups and
        # output), the device writes (the kernel's receive runs in them)
        self.parts = [(stack.host, "receive_batch"), (stack, "kick"), (stack, "_transmit")]
        self.rows: list[dict[str, Any]] = []
        self._gc_t0 = 0.0
        self.cur: dict[str, Any] | None = None
        self.t0 = 0.0
        self.snap = self._counters()

    def _counters(self) -> tuple[int, ...]:
        st, mib, tap = self.tap.stats, self.mib, self.tap
        return (tap.rx_flows_read, tap.syn_queue_rx, st["rx_bytes"], st["tx_packets"],
                st["tx_bytes"], mib.get("PassiveOpens", 0), mib.get("InSegs", 0),
                mib.get("OutSegs", 0))

    def install(self) -> None:
        import asyncio.events as ev
        clock = time.perf_counter
        self.t0 = clock()
        sel = self.loop._selector     # type: ignore[attr-defined]
        orig_select = sel.select
        orig_run = ev.Handle._run
        trace = self

        def select(timeout: float | None = None) -> Any:
            t0 = clock()
            res = orig_select(timeout)
            t1 = clock()
            trace._close(t0)
            if t1 - trace.t0 > trace.seconds:
                sel.select = orig_select
                ev.Handle._run = orig_run     # type: ignore[method-assign]
                for obj, attr in trace.parts:
                    vars(obj).pop(attr, None)
                gc.callbacks.remove(trace._gc)
                trace.cur = None
            else:
                trace.cur = {"t": round(t1 - trace.t0, 5), "select": round(t1 - t0, 5),
                             "events": len(res), "cb": {}}
            return res

        def run(handle: Any) -> None:
            cur = trace.cur
            if cur is None:
                orig_run(handle)
                return
            t0 = clock()
            try:
                orig_run(handle)
            finally:
                dt = clock() - t0
                cb = handle._callback
                f = getattr(cb, "__func__", cb)
                name = getattr(f, "__qualname__", None) or type(cb).__name__
                slot = cur["cb"].get(name)
                if slot is None:
                    cur["cb"][name] = [1, dt]
                else:
                    slot[0] += 1
                    slot[1] += dt

        sel.select = select
        ev.Handle._run = run      # type: ignore[method-assign]
        gc.callbacks.append(self._gc)
        for obj, attr in self.parts:
            setattr(obj, attr, self._timed(getattr(obj, attr), "+" + attr))

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        """The collector's pauses, as the iteration's ``gc<generation>``."""
        if phase == "start":
            self._gc_t0 = time.perf_counter()
            return
        cur = self.cur
        if cur is not None:
            slot = cur["cb"].setdefault(f"gc{info['generation']}", [0, 0.0])
            slot[0] += 1
            slot[1] += time.perf_counter() - self._gc_t0

    def _timed(self, fn: Any, name: str) -> Any:
        """``fn`` with its time added to the iteration's ``name`` (inclusive:
        a kick's transmit is in both)."""
        clock = time.perf_counter
        trace = self

        def timed(*args: Any) -> Any:
            cur = trace.cur
            if cur is None:
                return fn(*args)
            t0 = clock()
            try:
                return fn(*args)
            finally:
                slot = cur["cb"].setdefault(name, [0, 0.0])
                slot[0] += 1
                slot[1] += clock() - t0
        return timed

    def _close(self, end: float) -> None:
        cur = self.cur
        snap = self._counters()
        if cur is not None:
            d = [a - b for a, b in zip(snap, self.snap)]
            cur.update(dur=round(end - self.t0 - cur["t"], 5), rx=d[0], syn_rx=d[1], rx_bytes=d[2],
                       tx=d[3], tx_bytes=d[4], opens=d[5], in_segs=d[6], out_segs=d[7])
            cur["cb"] = {k: [n, round(s, 6)] for k, (n, s) in cur["cb"].items()}
            self.rows.append(cur)
        self.snap = snap

    def bins(self, width: float = 0.1) -> list[dict[str, Any]]:
        """The iterations summed per ``width`` seconds: what the loop did when."""
        out: dict[int, dict[str, Any]] = {}
        for r in self.rows:
            b = out.setdefault(int(r["t"] / width), {
                "t": round(int(r["t"] / width) * width, 2), "iters": 0, "select": 0.0,
                "max_iter": 0.0, "rx": 0, "syn_rx": 0, "rx_MB": 0.0, "tx": 0, "tx_MB": 0.0,
                "opens": 0, "in_segs": 0, "out_segs": 0, "cb": {}})
            b["iters"] += 1
            b["select"] += r["select"]
            b["max_iter"] = max(b["max_iter"], r["dur"])
            for k in ("rx", "syn_rx", "tx", "opens", "in_segs", "out_segs"):
                b[k] += r[k]
            b["rx_MB"] += r["rx_bytes"] / 1e6
            b["tx_MB"] += r["tx_bytes"] / 1e6
            for name, (n, s) in r["cb"].items():
                slot = b["cb"].setdefault(name, [0, 0.0])
                slot[0] += n
                slot[1] += s
        rows = []
        for b in sorted(out.values(), key=lambda b: b["t"]):
            b["select"] = round(b["select"], 4)
            b["rx_MB"], b["tx_MB"] = round(b["rx_MB"], 2), round(b["tx_MB"], 2)
            b["cb"] = {k: [n, round(s, 4)] for k, (n, s) in
                       sorted(b["cb"].items(), key=lambda kv: -kv[1][1])[:8]}
            rows.append(b)
        return rows


class GcLog:
    """The collector's pauses over the whole run (gc.callbacks): generation,
    start (seconds since ``t0``) and length of each; ~1 us a collection."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.pauses: list[tuple[int, float, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._start = now
        else:
            self.pauses.append((info["generation"], self._start - self.t0, now - self._start))

    def summary(self) -> dict[str, Any]:
        """Per generation: [count, seconds] of the pauses that began by 2 s,
        by 5 s and in all; the longest pause and when it began."""
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            ps = [(t, d) for g, t, d in self.pauses if g == gen]
            out[f"gen{gen}"] = [[sum(1 for t, _ in ps if t <= lim),
                                 round(sum(d for t, d in ps if t <= lim), 3)]
                                for lim in (2.0, 5.0, float("inf"))]
        if self.pauses:
            g, t, d = max(self.pauses, key=lambda p: p[2])
            out["longest"] = {"gen": g, "at_s": round(t, 2), "s": round(d, 3)}
        return out


# py-spy's samples by the innermost of these frames on their stack (the first
# of a stack's frames, from the leaf up, that names one): where tcpio's time goes
PYSPY_CATEGORIES = (
    ("tx: device writes", ("_TunTapBase.send_batch",)),
    ("tx: coalesce", ("coalesce",)),
    ("tx: other", ("Stack._transmit",)),
    ("accept: SYN", ("TcpProto._rcv_request", "_TunTapBase._on_syn")),
    ("accept: child", ("tcp_check_req",)),
    ("accept: glue", ("TcpTransport._connection_made", "Server._accept_connection")),
    ("rx: batch end (ACKs, ACK-clocked sends)", ("Host._run_batch_end",)),
    ("rx: segments", ("Host.receive_batch",)),
    ("rx: device reads", ("_TunTapBase._read_flows", "_TunTapBase.poll_rx",
                          "_TunTapBase._on_readable")),
    ("wakeups: to the streams", ("TcpTransport._on_wakeup", "TcpTransport._read_ready")),
    ("app: sendmsg", ("TcpSock.sendmsg",)),
    ("app: transport write", ("TcpTransport.write",)),
    ("app: handler, streams", ("server_handler.<locals>.serve",
                               "server_handler.<locals>.serve.<locals>.send",
                               "server_handler.<locals>.serve.<locals>.receive")),
    ("kick: other", ("Stack.kick",)),
    ("timers", ("Stack._on_timer",)),
    ("tx thread: writes, beside the loop", ("TxWriter._run",)),
    ("tx thread: waiting for work", ("Condition.wait",)),
)


def pyspy_summary(path: Path) -> dict[str, Any]:
    """py-spy's folded stacks (``--format raw``) by PYSPY_CATEGORIES: share
    of the samples each; ``busiest_lines``: the leaf lines with the most
    samples (a collection shows as one allocating line's outsized count)."""
    cats: dict[str, int] = {}
    leaves: dict[str, int] = {}
    names = {name: cat for cat, frames in PYSPY_CATEGORIES for name in frames}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_s = line.rpartition(" ")
        if not stack or not n_s.isdigit():
            continue
        n = int(n_s)
        total += n
        frames = stack.split(";")
        cat = "other"
        for frame in reversed(frames):
            c = names.get(frame.split(" (", 1)[0])
            if c is not None:
                cat = c
                break
        cats[cat] = cats.get(cat, 0) + n
        leaves[frames[-1]] = leaves.get(frames[-1], 0) + n
    if not total:
        return {}
    top = sorted(leaves.items(), key=lambda kv: -kv[1])[:6]
    return {"samples": total,
            "percent": {c: round(100 * n / total, 1)
                        for c, n in sorted(cats.items(), key=lambda kv: -kv[1])},
            "busiest_lines": {k: v for k, v in top}}


async def run(flows: int, size: int, copy: bool, out: Path, tag: str,
              rx_cap: float | None = None, loop_trace: float = 0.0,
              pyspy: float = 0.0, capture: float = 0.0, rx_only: bool = False,
              gc_off: float = 0.0, gc_freeze: bool = False,
              tx_thread: bool = False) -> dict[str, Any]:
    from netns import kernel_peer
    from tap import test_tcp_kernel_many_flows as T
    from tap.test_tcp_kernel_common import kernel_mib

    from tcpio.devices.tap import RxShare

    verdicts: list[bool] = []
    serve = T.server_handler(size, verdicts, copy)
    if rx_only:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:  # type: ignore[no-redef]
            # the server only reads (the clients then count a digest
            # mismatch each): what the receive path alone keeps up with
            await reader.readexactly(4)
            while await reader.read(1 << 18):
                pass
            verdicts.append(True)
            writer.close()

    out.mkdir(parents=True, exist_ok=True)
    opts: dict[str, Any] = {}
    if rx_cap is not None:
        opts["rx_share"] = RxShare(cap=rx_cap)
    if tx_thread:
        opts["tx_thread"] = True
    async with kernel_peer(ipv6=False, tap_options=opts or None) as peer:
        await peer.stack.start_server(serve, peer.tcpio_ip, T.PORT, backlog=flows)
        k0 = kernel_mib(peer.ns).get("TCPTimeouts", 0)
        (out / "clients.py").write_text(T.KERNEL_CLIENTS)
        (out / "ns_sampler.py").write_text(NS_SAMPLER)
        sampler = await asyncio.create_subprocess_exec(*peer.ns.exec_argv(
            sys.executable, str(out / "ns_sampler.py"), peer.ifname, str(T.PORT),
            str(out / f"{tag}.ns.jsonl")))
        done = False

        tc: list[dict[str, Any]] = []

        async def local() -> None:
            t0 = last = time.monotonic()
            while not done:
                await asyncio.sleep(0.05)
                now = time.monotonic()
                m = peer.stack.mib()
                tc.append({"t": round(now - t0, 3), "lag": round(now - last - 0.05, 4),
                           **{k: m.get(k, 0) for k in ("InSegs", "OutSegs", "PassiveOpens",
                                                       "TCPTimeouts")}})
                last = now

        sampling = asyncio.create_task(local())
        spy = None
        if pyspy:
            # sampled stacks of this process (raw: one folded stack a line)
            spy = await asyncio.create_subprocess_exec(
                "py-spy", "record", "--pid", str(os.getpid()), "--duration", str(max(1, round(pyspy))),
                "--rate", "250", "--format", "raw", "--nonblocking",
                "--output", str(out / f"{tag}.pyspy.txt"),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(0.5)
        cap = None
        if capture:
            # the TAP seen from the kernel's side: a frame toward tcpio when the
            # kernel sent it (before the ring), one from tcpio when tcpio wrote it
            cap = await asyncio.create_subprocess_exec(*peer.ns.exec_argv(
                "dumpcap", "-q", "-i", peer.ifname, "-s", "96", "-a", f"duration:{capture}",
                "-B", "64", "-P", "-w", str(out / f"{tag}.pcap")),
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)
        trace = None
        if loop_trace:
            trace = LoopTrace(asyncio.get_running_loop(), peer.tap, peer.stack, loop_trace)
            trace.install()
        if gc_off:
            # no collector pauses in the first seconds (what they cost)
            gc.disable()
            asyncio.get_running_loop().call_later(gc_off, gc.enable)
        if gc_freeze:
            # the start-up's objects out of the burst's collections
            gc.freeze()
        tracked0 = len(gc.get_objects())
        gclog = GcLog()
        gc.callbacks.append(gclog)
        t0 = time.monotonic()
        res = await peer.ns.arun(sys.executable, str(out / "clients.py"), peer.tcpio_ip,
                                 str(T.PORT), str(flows), str(size), str(T.CLIENT_SEED),
                                 str(T.SERVER_SEED), str(T.SPAN), timeout=1200)
        elapsed = time.monotonic() - t0
        for _ in range(200):
            if len(verdicts) == flows:
                break
            await asyncio.sleep(0.05)
        done = True
        gc.callbacks.remove(gclog)
        tracked1 = len(gc.get_objects())
        await sampling
        if spy is not None:
            await spy.wait()
        if cap is not None:
            await cap.wait()
        if trace is not None:
            (out / f"{tag}.loop.jsonl").write_text("".join(json.dumps(r) + "\n" for r in trace.rows))
            (out / f"{tag}.loopbins.jsonl").write_text(
                "".join(json.dumps(r) + "\n" for r in trace.bins()))
        sampler.terminate()
        await sampler.wait()
        k_rtos = kernel_mib(peer.ns).get("TCPTimeouts", 0) - k0
        tcpio_rtos = peer.stack.mib().get("TCPTimeouts", 0)
        tap = peer.tap
        writer = tap.tx_writer
        tx = None if writer is None else {"batches": writer.batches, "waits": writer.waits}
        reader = {**tap.rx_share.stats(), "cap": tap.rx_share.cap, "tx_thread": tx,
                  "time_squeeze": tap.time_squeeze,
                  "softnet": {k: round(v, 3) for k, v in peer.stack.softnet_stat.items()}}
    flights = first_flights(out / f"{tag}.pcap", T.PORT) if capture else None
    return summary(out, tag, tc, {
        "first_flights": flights,
        "tag": tag, "flows": flows, "size": size, "copy": copy,
        "client": res.stdout.strip()[:100], "server_ok": verdicts.count(True),
        "elapsed": round(elapsed, 1), "MBps_both_ways": round(2 * flows * size / elapsed / 1e6, 1),
        "tcpio_rtos": tcpio_rtos, "kernel_rtos": k_rtos, "reader": reader,
        "gc": {**gclog.summary(), "freeze": gc_freeze, "frozen": gc.get_freeze_count(),
               "tracked_before_after": [tracked0, tracked1]},
        "pyspy": pyspy_summary(out / f"{tag}.pyspy.txt") if pyspy else None})


def first_flights(pcap: Path, port: int) -> dict[str, Any]:
    """Per connection, from the capture: how long the client's first data
    waited for tcpio's ACK of it (ring wait + tcpio's work), how long until
    tcpio's first data (the handler's first send), and the client's
    retransmissions in the capture; percentiles over the connections."""
    import subprocess
    rows = subprocess.run(
        ["tshark", "-r", str(pcap), "-n", "-T", "fields", "-E", "separator=,",
         "-e", "frame.time_relative", "-e", "tcp.srcport", "-e", "tcp.dstport",
         "-e", "tcp.seq_raw", "-e", "tcp.ack_raw", "-e", "tcp.len", "-e", "tcp.flags"],
        check=False, capture_output=True, text=True).stdout.splitlines()
    flows: dict[int, dict[str, Any]] = {}
    for line in rows:
        f = line.split(",")
        if len(f) < 7 or not f[5]:
            continue
        t, sport, dport, seq, ack, n, flags = (float(f[0]), int(f[1]), int(f[2]), int(f[3]),
                                               int(f[4] or 0), int(f[5]), int(f[6], 16))
        if dport == port:       # client -> tcpio
            fl = flows.setdefault(sport, {"sent": {}, "rtx": 0})
            if flags & 0x02:
                fl.setdefault("syn", t)
                continue
            if n:
                end = (seq + n) & 0xFFFFFFFF
                if end in fl["sent"]:
                    fl["rtx"] += 1
                    fl.setdefault("rtx_t", t)
                else:
                    fl["sent"][end] = t
                if "data" not in fl:
                    fl["data"], fl["data_end"] = t, end
                elif "acked" not in fl:
                    fl["data_end"] = end      # the first flight: all sent before its ACK
        elif sport == port:
            fl = flows.setdefault(dport, {"sent": {}, "rtx": 0})
            if flags & 0x02:
                fl.setdefault("synack", t)
            if "data_end" in fl and "acked" not in fl and ((ack - fl["data_end"]) & 0xFFFFFFFF) < 1 << 31:
                fl["acked"] = t
            if n and "tx" not in fl:
                fl["tx"] = t

    def pct(xs: list[float]) -> dict[str, float]:
        xs = sorted(xs)
        if not xs:
            return {}
        return {f"p{q}": round(xs[min(len(xs) - 1, len(xs) * q // 100)] * 1e3, 1)
                for q in (10, 50, 90, 99)} | {"max": round(xs[-1] * 1e3, 1), "n": len(xs)}

    done = [fl for fl in flows.values() if "data" in fl and "acked" in fl]
    return {
        "flows_seen": len(flows),
        "handshake_ms": pct([fl["synack"] - fl["syn"] for fl in flows.values()
                             if "syn" in fl and "synack" in fl]),
        "first_flight_ack_ms": pct([fl["acked"] - fl["data"] for fl in done]),
        "first_flight_acked_over_200ms": sum(fl["acked"] - fl["data"] > 0.2 for fl in done),
        "tcpio_first_data_ms": pct([fl["tx"] - fl["data"] for fl in flows.values()
                                    if "tx" in fl and "data" in fl]),
        "client_rtx_frames": sum(fl["rtx"] for fl in flows.values()),
        "client_rtx_flows": sum(1 for fl in flows.values() if fl["rtx"]),
        "client_first_rtx_s": pct([fl["rtx_t"] for fl in flows.values() if "rtx_t" in fl]),
    }


def summary(out: Path, tag: str, tc: list[dict[str, Any]], head: dict[str, Any]) -> dict[str, Any]:
    """Write tcpio's rows beside the namespace's; the figures the report quotes."""
    (out / f"{tag}.tcpio.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tc))
    ns = [json.loads(line) for line in (out / f"{tag}.ns.jsonl").read_text().splitlines()]

    def rtos_by(t: float) -> int:
        rows = [r["TCPTimeouts"] for r in ns if r["t"] <= t]
        return rows[-1] if rows else 0

    full = [r for r in ns if "tap_frames" in r]
    early = [r for r in full if r["t"] <= 2.0]
    return {
        **head,
        "kernel_rtos_by_2_5_10_20_s": [rtos_by(t) for t in (2, 5, 10, 20)],
        "first_tap_drop_s": next((r["t"] for r in full if r["tap_dropped"]), None),
        "tap_dropped": full[-1]["tap_dropped"] if full else None,
        "longest_stall_first_5s": max((r["lag"] for r in tc if r["t"] <= 5), default=0),
        "inflight_max_segs": max((r["inflight"] for r in full), default=0),
        "rtt_med_max_ms": max((r["rtt_med"] for r in full), default=0),
        "tap_read_first_2s": ({"frames": early[-1]["tap_frames"], "MB": round(early[-1]["tap_bytes"] / 1e6, 1)}
                              if early else None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--copy", action="store_true", help="handlers copy their bytes (the old test)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/soak_timeline"))
    ap.add_argument("--tag", default=None)
    ap.add_argument("--rx-cap", type=float, default=None,
                    help="RxShare's cap in seconds (0, the default: one budget per wake-up)")
    ap.add_argument("--loop-trace", type=float, default=0.0, metavar="SECONDS",
                    help="trace tcpio's loop for the first SECONDS: DIR/TAG.loop.jsonl (each "
                         "iteration) and DIR/TAG.loopbins.jsonl (per 0.1 s)")
    ap.add_argument("--pyspy", type=float, default=0.0, metavar="SECONDS",
                    help="py-spy record of tcpio's process for the first SECONDS: "
                         "DIR/TAG.pyspy.txt (folded stacks)")
    ap.add_argument("--capture", type=float, default=0.0, metavar="SECONDS",
                    help="capture the TAP in the namespace (96 bytes a frame) for the first "
                         "SECONDS: per connection, how long its first flight waited for "
                         "tcpio's ACK (DIR/TAG.pcap)")
    ap.add_argument("--rx-only", action="store_true",
                    help="the server only reads (the clients' digests then fail): what the "
                         "receive path keeps up with when tcpio sends nothing")
    ap.add_argument("--gc-off", type=float, default=0.0, metavar="SECONDS",
                    help="the cyclic collector off for the first SECONDS")
    ap.add_argument("--tx-thread", action="store_true",
                    help="the TAP writes from a thread of its own (TapDevice(tx_thread=True))")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="gc.freeze() once the server listens, before the clients start")
    a = ap.parse_args()
    if a.size > (1 << 20):
        # the test's windows are cut from buffers of 2 MiB: a larger size
        # would be cut short silently (and the MB/s overstated)
        ap.error("--size: at most 1 MiB (tests/tap/test_tcp_kernel_many_flows.py's SPAN)")
    tag = a.tag or f"{'copy' if a.copy else 'view'}-{a.flows}x{a.size}-{os.getpid()}"
    print(json.dumps(asyncio.run(run(a.flows, a.size, a.copy, a.out, tag, a.rx_cap,
                                        a.loop_trace, a.pyspy, a.capture, a.rx_only,
                                        a.gc_off, a.gc_freeze, a.tx_thread))))


if __name__ == "__main__":
    main()
