"""Established flows and new connections under a SYN flood (issue 13).

    sudo python benchmarks/bench_flood.py [--flows 4] [--pre 3] [--flood 5] [--post 3]
                                          [--budget N] [--txqueuelen N] [--json FILE]
                                          [--syn-queue off|on|both] [--syn-share F]
                                          [--syn-max-wait S]
                                          [--rate N] [--trace-legit] [--runs N]
    python benchmarks/bench_flood.py --inproc [--rounds 7]

``--inproc`` (no root) measures the compiled stateless SYN path alone: CPU
microseconds per cookie SYN through ``Host.receive_batch``, batches of 64
hping3-like SYNs (no options, random off-link sources), with the SYN-ACK's
route resolved once per batch (syn_fast.synack_path) and, side by side in
the same run, per SYN (the route-scope callback off); median and range.

Runs one after the other in the same process, the same job:

- ``tcpio``: a Stack on a TAP (tests/netns.py's kernel_peer), a sink server
  and an accept-and-close listener.  From the namespace: ``--flows`` kernel
  TCP flows send to the sink the whole time, a new connection to the
  listener is tried every 0.1 s (3 s each: one SYN retransmission allowed),
  and during the middle phase ``hping3 --flood -S --rand-source`` floods the
  listener's port from spoofed sources, as fast as it can (the raw-socket
  sender's ceiling on this machine, stated in the output).  ``--rate N``
  floods at N SYN/s instead, paced (flood_peer.py's raw-socket sender:
  hping3's ``-i uN`` sleeps far longer than asked); the rate it reached is
  printed, the kernel's run gets the same offer.
- ``tcpio, SYN queue``: the same with ``TapDevice(syn_queue=True)``: the
  kernel steers SYNs to a second TAP queue (devices/tun_steering.py), so the
  flood fills a ring of its own instead of the flows' (``--syn-queue``
  picks off, on or both; both by default).
- ``kernel``: the same peer script against a kernel listener in a second
  namespace over a veth pair, under the same flood.

Printed per run: the flood rate (hping3's own count / the flood's seconds),
the flows' throughput before, during and after (the senders' bytes: their
buffers are small, so what they hand the kernel is what the receiver takes),
new connections tried/made per phase, and for tcpio the frames it read per
second during the flood, the kernel's drops on the TAP toward tcpio and the
SYN path's counters (SyncookiesSent, TCPSynBudgetDrop, ListenDrops).  The
targets of issue 13 with a verdict: during the flood the flows keep >= 50%
of their pre-flood throughput, and >= 90% of new connections succeed.

``--trace-legit`` (a debug run: a Python look at every frame tcpio reads)
follows the legitimate client's SYNs, whose source is the namespace's
address where the flood's are random: the SYNs the client sent during the
flood (attempts + the namespace's TCPSynRetrans), those tcpio read, and the
share of the flood's SYNs the TAP's ring let through (read / offered), to
show where a failed connection's SYNs went.  Without it the client's times
still say which connections the first SYN made and which its retransmission.

The machine is shared (2 vCPUs; hping3 takes one): quote ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))         # netns: the namespace + TAP fixture

from netns import NetNs, kernel_peer  # noqa: E402

from tcpio.core.settings import Settings  # noqa: E402

PEER = str(ROOT / "benchmarks" / "flood_peer.py")
FLOW_PORT = 5001
CONN_PORT = 5002


async def start(argv: list[str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)


async def expect(proc: asyncio.subprocess.Process, word: bytes) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if word not in line:
        err = (await proc.stderr.read()).decode()[-2000:] if proc.stderr else ""
        raise RuntimeError(f"peer said {line!r}: {err}")


async def run_job(ns: NetNs, target: str, args: argparse.Namespace,
                  sample: Any = None) -> dict:
    """The client in ``ns`` against ``target``; hping3 floods in the middle phase.
    ``sample()`` is read at the flood's start and end (tcpio's counters)."""
    sender = None
    if args.rate:       # the paced raw-socket sender: its pool is built before the run
        sender = await asyncio.create_subprocess_exec(
            *ns.exec_argv(sys.executable, PEER, "flood", target, str(CONN_PORT),
                          str(args.rate), str(args.flood)),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        await expect(sender, b"ready")
    client = await start(ns.exec_argv(sys.executable, PEER, "client", target, str(FLOW_PORT),
                                      str(CONN_PORT), str(args.flows), str(args.pre),
                                      str(args.flood), str(args.post)))
    await expect(client, b"ready")
    sp, tp = (sample() if sample else None), time.monotonic()
    await asyncio.sleep(args.pre)
    s0 = sample() if sample else None
    t0 = time.monotonic()
    if sender is not None:
        assert sender.stdin is not None and sender.stdout is not None
        sender.stdin.write(b"go\n")
        await sender.stdin.drain()
        line = await asyncio.wait_for(sender.stdout.readline(), args.flood + 30)
        flood_s = time.monotonic() - t0
        s1 = sample() if sample else None
        await sender.wait()
        got = json.loads(line)
        sent, how = got["sent"], f"raw sender paced at {args.rate:,.0f}/s"
        if got.get("replayed"):
            how += f", {got['replayed']:,} of them SYNs sent before"
        flood_s = got["seconds"]
    else:
        hping = await start(ns.exec_argv("hping3", "--flood", "-S", "--rand-source", "-p",
                                         str(CONN_PORT), target))
        await asyncio.sleep(args.flood)
        hping.send_signal(signal.SIGINT)
        _, herr = await hping.communicate()
        flood_s = time.monotonic() - t0
        s1 = sample() if sample else None
        m = re.search(rb"(\d+) packets transmitted", herr)
        sent, how = (int(m.group(1)) if m else 0), "hping3 --flood"
    out, err = await client.communicate()
    lines = out.decode().strip().splitlines()
    if client.returncode != 0 or not lines:
        raise RuntimeError(f"flood_peer failed: {err.decode()[-2000:]}")
    res = json.loads(lines[-1])
    res["flood_sent"] = sent
    res["flood_rate"] = sent / flood_s
    res["flood_how"] = how
    if s0 is not None and s1 is not None:
        res["during_flood"] = {k: (s1[k] - s0[k]) for k in s1}
        res["during_flood"]["seconds"] = flood_s
    if sp is not None and s0 is not None:
        res["before_flood"] = {k: (s0[k] - sp[k]) for k in s0}
        res["before_flood"]["seconds"] = t0 - tp
    return res


async def tcpio_run(args: argparse.Namespace, syn_queue: bool) -> dict:
    settings = Settings()
    if args.budget is not None:
        settings.tcp_syn_budget = args.budget
    tap_options: dict[str, Any] = {"syn_queue": syn_queue}
    if args.syn_share is not None or args.syn_max_wait is not None:
        from tcpio.devices.tap import SynShare
        share_options: dict[str, Any] = {"min_batch": args.syn_min_batch or 32,
                                         "max_wait": args.syn_max_wait}
        if args.syn_share is not None:    # else SynShare's default share
            share_options["share"] = args.syn_share
        tap_options["syn_share"] = SynShare(**share_options)
    if args.txqueuelen is not None:
        tap_options["txqueuelen"] = args.txqueuelen
    if args.syn_budget is not None:
        tap_options["syn_budget"] = args.syn_budget
    async with kernel_peer(ipv6=False, settings=settings, tap_options=tap_options) as peer:
        if syn_queue and not peer.tap.syn_queue:
            raise SystemExit(f"the kernel refused the SYN queue: {peer.tap.syn_queue_error}")
        stack = peer.stack
        stack.add_route("0.0.0.0/0", via=peer.kernel_ip)   # SYN-ACKs to spoofed sources

        async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(262144):
                pass
            writer.close()

        async def accept_close(reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
            writer.close()

        s1 = await stack.start_server(sink, "0.0.0.0", FLOW_PORT, backlog=128)
        s2 = await stack.start_server(accept_close, "0.0.0.0", CONN_PORT, backlog=4096)
        legit = [0]
        seen: dict[int, list[float]] = {}
        if args.trace_legit:
            # the client's SYNs (its source is the namespace's address; the
            # flood's are random) among the frames tcpio reads: per source
            # port, when they were read (CLOCK_MONOTONIC, the client's clock)
            tap, deliver = peer.tap, peer.tap._on_frames
            assert deliver is not None
            src = socket.inet_aton(peer.kernel_ip)

            def counting(frames: list[bytes]) -> None:
                mine = [f for f in frames if f[26:30] == src and f[23] == 6
                        and f[47] & 0x17 == 0x02]
                if mine:
                    now = time.monotonic()
                    legit[0] += len(mine)
                    for f in mine:
                        seen.setdefault(int.from_bytes(f[34:36], "big"), []).append(now)
                deliver(frames)

            tap._on_frames = counting

        def sample() -> dict:
            mib = stack.mib()
            k = peer.ns.call(peer.tap.kernel_counters) or {}
            sh = peer.tap.syn_share.stats()
            return {"cpu": time.process_time(),
                    "syn_time": sh["syn_time"], "syn_frames": sh["syn_frames"],
                    "est_time": sh["est_time"], "est_frames": sh["est_frames"],
                    "syn_deferred": sh["deferred"],
                    "tcpio_rx_frames": peer.tap.stats["rx_packets"],
                    "syn_queue_rx": peer.tap.syn_queue_rx,
                    "tap_kernel_tx_dropped": k.get("tx_dropped", 0),
                    "SyncookiesSent": mib.get("SyncookiesSent", 0),
                    "TCPSynBudgetDrop": mib.get("TCPSynBudgetDrop", 0),
                    "ListenDrops": mib.get("ListenDrops", 0),
                    "TCPReqQFullDoCookies": mib.get("TCPReqQFullDoCookies", 0),
                    "legit_syns_read": legit[0],
                    # (getattr: the benchmark also runs against trees before it)
                    "syn_ring_changes": getattr(peer.tap, "syn_ring_changes", 0),
                    # retransmitted SYNs the kernel steered to the flows' queue,
                    # and those over the promotion budget (tun_steering)
                    "syn_retrans_promoted": retrans()[0], "syn_retrans_over": retrans()[1]}

        def retrans() -> tuple[int, int]:
            counts = getattr(peer.tap, "syn_retrans_counts", None)
            return counts() if counts is not None else (0, 0)

        try:
            res = await run_job(peer.ns, peer.tcpio_ip, args, sample)
            if args.trace_legit:
                res["legit_reads"] = seen
            return res
        finally:
            s1.close()
            s2.close()


async def kernel_run(args: argparse.Namespace) -> dict:
    with NetNs() as client_ns, NetNs() as server_ns:
        client_ns.ip("link", "add", "fl0", "type", "veth", "peer", "name", "fl1", "netns",
                     server_ns.name)
        client_ns.ip("addr", "add", "10.8.0.1/24", "dev", "fl0")
        client_ns.ip("link", "set", "fl0", "up")
        server_ns.ip("addr", "add", "10.8.0.2/24", "dev", "fl1")
        server_ns.ip("link", "set", "fl1", "up")
        server_ns.ip("route", "add", "default", "via", "10.8.0.1")
        server = await start(server_ns.exec_argv(sys.executable, PEER, "server", "10.8.0.2",
                                                 str(FLOW_PORT), str(CONN_PORT)))
        try:
            await expect(server, b"listening")
            return await run_job(client_ns, "10.8.0.2", args)
        finally:
            server.kill()
            await server.wait()


def inproc_syn_cost(rounds: int, batches: int = 200, batch: int = 64) -> None:
    """CPU µs per cookie SYN in-process, per batch route scope vs per SYN."""
    import random
    import statistics
    import struct

    from tcpio.core.addr import ip_aton
    from tcpio.core.host import Host
    from tcpio.devices.base import random_mac

    us_mac, gw_mac = random_mac(), random_mac()
    h = Host(name="us", seed=7, settings=Settings(tcp_syncookies=2, tcp_syn_budget=1 << 20))
    ifi = h.add_interface("eth0", mac=us_mac)
    h.add_address(ifi, ip_aton("10.9.0.2"), 24)
    h.add_static_arp(ip_aton("10.9.0.1"), gw_mac, ifi)
    h.add_route(0, 0, ip_aton("10.9.0.1"))
    lsk = h.tcp.socket()
    lsk.bind(ip_aton("10.9.0.2"), CONN_PORT)
    lsk.listen(128)
    rng = random.Random(1)

    def csum(data: bytes) -> int:
        if len(data) % 2:
            data += b"\0"
        s = sum(struct.unpack(f"!{len(data) // 2}H", data))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF

    def syn() -> bytes:
        src = rng.randrange(0x0B000000, 0x7F000000)         # off-link, unicast, not 127/8
        dst = ip_aton("10.9.0.2")
        tcp = struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), CONN_PORT,
                          rng.getrandbits(32), 0, 5 << 4, 0x02, 512, 0, 0)
        pseudo = struct.pack("!IIBBH", src, dst, 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
        ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        return us_mac + gw_mac + b"\x08\x00" + ip + tcp

    work = [[syn() for _ in range(batch)] for _ in range(batches)]
    path = h.tcp.syn_path
    scope_cb = path.route_scope
    res: dict[str, list[float]] = {"per batch": [], "per SYN": []}
    now = 100.0
    for _ in range(rounds):
        for name, got in res.items():
            path.route_scope = scope_cb if name == "per batch" else None
            sent0 = h.mib["SyncookiesSent"]
            t0 = time.process_time()
            for frames in work:
                h.receive_batch(ifi, frames, now)
                h.take_output()
            dt = time.process_time() - t0
            n = h.mib["SyncookiesSent"] - sent0
            assert n == batches * batch, (n, h.mib.snapshot())
            got.append(dt / n * 1e6)
            now += 0.01
    path.route_scope = scope_cb
    from tcpio import _fast
    print("build:", _fast.build_info()["syn_fast"], "| cpus:", os.cpu_count(), "(unpinned)")
    for name, v in res.items():
        print(f"  route {name:>9}: {statistics.median(v):.2f} us/SYN "
              f"({min(v):.2f}-{max(v):.2f}), {rounds} rounds of {batches} x {batch} SYNs")


async def ring_syn_cost(rounds: int, n: int = 20000, perf_ctl: str | None = None,
                        syn_budget: int | None = None) -> None:
    """CPU µs per cookie SYN through the real SYN queue: ``n`` hping3-like
    SYNs (flood_peer.flood_pool) put in the TAP's SYN ring while tcpio does
    not read it, then read and answered turn by turn (the device's
    _on_readable at the SYN budget: the read(2)s, Host.receive_batch, the
    SYN-ACKs' write(2)s with the kernel's receive of each), timed with this
    process's CPU clock (user + system: the syscalls' kernel work counts,
    the sender's does not: it ran before).  ``perf_ctl``: a ``perf record
    --control fifo:CTL,ACK -D -1`` control fifo, profiling only the reads."""
    import statistics

    def perf(cmd: str) -> None:
        if perf_ctl is not None:
            ctl, ack = perf_ctl.split(",")
            with open(ctl, "w") as f:
                f.write(cmd + "\n")
            with open(ack) as f:
                f.readline()

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from flood_peer import flood_pool

    settings = Settings(tcp_syncookies=2)
    tap_options: dict[str, Any] = {"syn_queue": True, "txqueuelen": n + 1000}
    if syn_budget is not None:
        # every SYN of a turn answered (the cookie budget per receive batch
        # would drop those past it: cheaper, and not what is measured)
        tap_options["syn_budget"] = syn_budget
        settings.tcp_syn_budget = max(settings.tcp_syn_budget, syn_budget)
    async with kernel_peer(ipv6=False, settings=settings, tap_options=tap_options) as peer:
        tap, loop = peer.tap, asyncio.get_running_loop()
        if not tap.syn_queue:
            raise SystemExit(f"the kernel refused the SYN queue: {tap.syn_queue_error}")
        assert tap.syn_fd is not None
        peer.stack.add_route("0.0.0.0/0", via=peer.kernel_ip)
        server = await peer.stack.start_server(lambda r, w: w.close(), "0.0.0.0", CONN_PORT,
                                               backlog=128)
        # the kernel resolves our MAC first (it would queue 3 SYNs per
        # unresolved neighbour and drop the rest)
        await peer.ns.arun("ping", "-c", "1", "-W", "2", peer.tcpio_ip, check=True)
        loop.remove_reader(tap.syn_fd)
        pool = flood_pool(peer.tcpio_ip, CONN_PORT, n * rounds)

        def burst(pkts: list[bytes]) -> int:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.connect((peer.tcpio_ip, 0))
            sent = 0
            for p in pkts:
                try:
                    sent += s.send(p) > 0
                except OSError:
                    pass
            s.close()
            return sent

        us: list[float] = []
        mib = peer.stack.mib
        budget = tap.syn_budget
        for r in range(rounds):
            offered = peer.ns.call(burst, pool[r * n:(r + 1) * n])
            sent0, got = mib().get("SyncookiesSent", 0), 0
            perf("enable")
            t0 = time.process_time()
            while True:
                k = tap._on_readable(tap.syn_fd, tap.syn_budget)
                got += k
                if k < tap.syn_budget:
                    break
            dt = time.process_time() - t0
            perf("disable")
            cookies = mib().get("SyncookiesSent", 0) - sent0
            us.append(dt / max(got, 1) * 1e6)
            print(f"  round {r + 1}: {offered} SYNs sent, {got} read, {cookies} cookie SYN-ACKs, "
                  f"{us[-1]:.2f} us/SYN", flush=True)
        server.close()
    from tcpio import _fast
    print("build:", _fast.build_info()["syn_fast"], "| cpus:", os.cpu_count(), "(unpinned)",
          "| load:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"  SYN queue, read to SYN-ACK written: {statistics.median(us):.2f} us/SYN "
          f"({min(us):.2f}-{max(us):.2f}), {rounds} rounds of {n} SYNs, turns of {budget}")


def trace_legit(res: dict, d: dict) -> None:
    """Where the flood phase's legitimate SYNs went: per connection attempt
    (its source port), the SYNs tcpio read and when, against the client's
    clock (the first SYN at the attempt's start, the retransmission 1 s on)."""
    by_port = {int(k): v for k, v in res["legit_reads"].items()}
    att = res["flood_attempts"]

    def reads(t1: float, sport: int) -> list[float]:
        """The attempt's SYNs read: its port's reads from its start on (an
        ephemeral port an earlier attempt had is the kernel's to reuse)."""
        return [r for r in by_port.get(sport, ()) if r >= t1]

    failed = [a for a in att if not a[1]]
    sent = sum(1 if ok and dt < 1.0 else 2 for _, ok, dt, _ in att)
    got = sum(len(reads(t1, sport)) for t1, _, _, sport in att)
    # delay of the first SYN read (in the ring, then tcpio's read loop)
    delays = sorted(reads(t1, sport)[0] - t1 for t1, _, _, sport in att if reads(t1, sport))
    fail_none = sum(1 for t1, _, _, sport in failed if not reads(t1, sport))
    fail_late = [reads(t1, sport)[0] - t1 for t1, _, _, sport in failed if reads(t1, sport)]
    flood_sent = res["flood_sent"]
    print(f"  legitimate SYNs of the flood's {len(att)} attempts: the client sent about "
          f"{sent} (1 per connection made by its first SYN, 2 otherwise), tcpio read {got} "
          f"({got / max(1, sent):.0%}); the flood's SYNs: {d['syn_queue_rx']:,} of "
          f"{flood_sent:,} read ({d['syn_queue_rx'] / max(1, flood_sent):.0%}), the TAP "
          f"dropped {d['tap_kernel_tx_dropped']:,}")
    if delays:
        print(f"  a legitimate SYN's first read came {delays[len(delays) // 2]:.2f} s after "
              f"the attempt began (median; {delays[0]:.2f}-{delays[-1]:.2f})")
    print(f"  failed attempts {len(failed)}: no SYN of theirs read (dropped by the TAP's "
          f"ring) {fail_none}, read but too late or lost after {len(fail_late)}"
          + (f" (first read {', '.join(f'{x:.2f}' for x in sorted(fail_late))} s after)"
             if fail_late else ""))


def report(name: str, res: dict, args: argparse.Namespace) -> dict:
    ph = {p["phase"]: p for p in res["phases"]}
    keep = ph["flood"]["mb_s"] / ph["pre"]["mb_s"] if ph["pre"]["mb_s"] else 0.0
    ok = ph["flood"]["conns_ok"] / max(1, ph["flood"]["conns_tried"])
    print(f"\n{name}: flood {res['flood_rate']:,.0f} SYN/s reached ({res['flood_how']} "
          f"sent {res['flood_sent']:,})")
    for p in res["phases"]:
        print(f"  {p['phase']:>5}: flows {p['mb_s']:7.1f} MB/s   new connections "
              f"{p['conns_ok']}/{p['conns_tried']} (first SYN {p['conns_first']}, "
              f"retransmission {p['conns_retry']}; client SYN retransmissions "
              f"{p['syn_retrans']})")
    d = res.get("during_flood")
    flood = ph["flood"]
    if d:
        secs = d["seconds"]
        print(f"  during the flood: tcpio read {d['tcpio_rx_frames'] / secs:,.0f} frames/s, "
              f"the kernel dropped {d['tap_kernel_tx_dropped']:,} on the TAP; "
              f"SyncookiesSent {d['SyncookiesSent']:,}, TCPSynBudgetDrop "
              f"{d['TCPSynBudgetDrop']:,}, ListenDrops {d['ListenDrops']:,}"
              + (f"; {d['syn_queue_rx']:,} frames from the SYN queue"
                 if d.get("syn_queue_rx") else "")
              + (f"; retransmitted SYNs to the flows' queue {d['syn_retrans_promoted']:,} "
                 f"({d['syn_retrans_over']:,} over the budget)"
                 if d.get("syn_retrans_promoted") or d.get("syn_retrans_over") else ""))
        if args.trace_legit:
            trace_legit(res, d)
        if "cpu" in d:
            # where tcpio's time went: its CPU share of the flood's wall clock,
            # and the read loop's time per queue (read + process + reply)
            se, sf = d["syn_time"], d["syn_frames"]
            ee, ef = d["est_time"], d["est_frames"]
            res["shares"] = {"cpu": d["cpu"] / secs, "syn": se / secs, "est": ee / secs,
                             "syn_us": se / sf * 1e6 if sf else 0.0,
                             "est_us": ee / ef * 1e6 if ef else 0.0}
            sh = res["shares"]
            b = res.get("before_flood")
            if b and b["est_frames"]:
                # the same figures before the flood: is a flows' frame dearer under it?
                bf = b["est_frames"]
                print(f"  before the flood: tcpio CPU {b['cpu'] / b['seconds']:.0%}; flows' "
                      f"queue {b['est_time'] / b['seconds']:.0%} ({bf:,} frames, "
                      f"{b['est_time'] / bf * 1e6:.1f} us/frame, ~"
                      f"{ph['pre']['bytes'] / bf / 1024:.0f} KiB of the flows' data each)")
            print(f"  tcpio CPU {sh['cpu']:.0%} of the flood's wall clock; SYN queue "
                  f"{sh['syn']:.0%} ({sf:,} frames, {sh['syn_us']:.1f} us/frame, "
                  f"{d['syn_deferred']:,} turns put off), flows' queue {sh['est']:.0%} "
                  f"({ef:,} frames, {sh['est_us']:.1f} us/frame"
                  + (f", ~{flood['bytes'] / ef / 1024:.0f} KiB of the flows' data each"
                     if ef else "") + ")"
                  + (f"; the TAP's ring length changed {d['syn_ring_changes']} times"
                     if d.get("syn_ring_changes") else ""))
    print(f"  flows kept {keep:.0%} of pre-flood throughput (target >= 50%: "
          f"{'met' if keep >= 0.5 else 'NOT met'}); new connections during the flood "
          f"{ok:.0%} (target >= 90%: {'met' if ok >= 0.9 else 'NOT met'})")
    return {"keep": keep, "conn_ok": ok}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=4)
    ap.add_argument("--pre", type=float, default=3.0)
    ap.add_argument("--flood", type=float, default=5.0)
    ap.add_argument("--post", type=float, default=3.0)
    ap.add_argument("--budget", type=int, default=None,
                    help="Settings.tcp_syn_budget for tcpio (default: the setting's)")
    ap.add_argument("--syn-share", type=float, default=None,
                    help="tcpio's SynShare share of the read loop for the SYN queue "
                         "(default: TapDevice's)")
    ap.add_argument("--syn-max-wait", type=float, default=None,
                    help="SynShare's max_wait: under a flood, the TAP's ring at most what the "
                         "SYN queue reads in this many seconds (default: off)")
    ap.add_argument("--syn-min-batch", type=int, default=None,
                    help="with --syn-share: SynShare's min_batch (default 32)")
    ap.add_argument("--txqueuelen", type=int, default=None,
                    help="the TAP's queue toward tcpio, frames (default: TapDevice's)")
    ap.add_argument("--syn-budget", type=int, default=None,
                    help="the TAP's syn_budget: SYNs a turn of the SYN queue reads at most "
                         "(default: TapDevice's)")
    ap.add_argument("--syn-queue", choices=("off", "on", "both"), default="both",
                    help="tcpio's TAP with a second queue for SYNs (default: both runs)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="flood at this many SYN/s with flood_peer.py's paced raw-socket "
                         "sender (default: hping3 --flood, as fast as it goes)")
    ap.add_argument("--trace-legit", action="store_true",
                    help="debug: count the legitimate client's SYNs tcpio reads")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat the variants, alternating, and print each one's median and "
                         "range (the targets judged by the medians)")
    ap.add_argument("--skip-kernel", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--inproc", action="store_true",
                    help="the in-process cost of a cookie SYN only (no root, no flood)")
    ap.add_argument("--ring", action="store_true",
                    help="the cost of a cookie SYN through the real SYN queue, syscalls "
                         "included (root, no flows, no concurrent sender)")
    ap.add_argument("--rounds", type=int, default=7,
                    help="--inproc, --ring: rounds (median, range)")
    ap.add_argument("--perf-ctl", default=None, metavar="CTL,ACK",
                    help="--ring: perf record's control fifos (--control fifo:CTL,ACK -D -1): "
                         "profile the SYN queue's reads only")
    args = ap.parse_args()
    if args.inproc:
        print("command:", shlex.join([sys.executable, *sys.argv]))
        inproc_syn_cost(args.rounds)
        return
    if args.ring:
        print("command:", shlex.join([sys.executable, *sys.argv]))
        asyncio.run(ring_syn_cost(args.rounds, perf_ctl=args.perf_ctl,
                                  syn_budget=args.syn_budget))
        return
    if os.geteuid() != 0:
        sys.exit("bench_flood needs root (namespaces, TAP, hping3's raw socket)")
    if not args.rate and subprocess.run(["which", "hping3"], capture_output=True).returncode:
        sys.exit("bench_flood needs hping3 (apt-get install -y hping3)")
    print("command:", shlex.join([sys.executable, *sys.argv]))
    from tcpio import _fast
    print("build:", _fast.build_info()["syn_fast"], "| cpus:", os.cpu_count(), "(unpinned)")
    variants: list[tuple[str, str, Any]] = []
    if args.syn_queue in ("off", "both"):
        variants.append(("tcpio", "tcpio (one TAP queue)", lambda: tcpio_run(args, False)))
    if args.syn_queue in ("on", "both"):
        variants.append(("tcpio_syn_queue", "tcpio (SYN queue)", lambda: tcpio_run(args, True)))
    if not args.skip_kernel:
        variants.append(("kernel", "kernel (veth, same flood)", lambda: kernel_run(args)))
    runs: list[dict[str, Any]] = []
    for i in range(args.runs):
        out: dict[str, Any] = {}
        if args.runs > 1:
            print(f"\n--- run {i + 1} of {args.runs}")
        for key, name, job in variants:     # alternating: a slow spell hits each alike
            out[key] = asyncio.run(job())
            out[key + "_verdict"] = report(name, out[key], args if key != "kernel"
                                           else argparse.Namespace(trace_legit=False))
        runs.append(out)
    if args.runs > 1:
        summary(variants, runs)
    if args.json:
        Path(args.json).write_text(json.dumps(runs[0] if args.runs == 1 else runs, indent=1))


def summary(variants: list[tuple[str, str, Any]], runs: list[dict[str, Any]]) -> None:
    """Median (range) per variant over the runs; the targets judged by the medians."""
    import statistics

    def mr(xs: list[float], fmt: str) -> str:
        return (f"{format(statistics.median(xs), fmt)} "
                f"({format(min(xs), fmt)}-{format(max(xs), fmt)})")

    print(f"\nsummary of {len(runs)} runs, median (range):")
    for key, name, _ in variants:
        rate = [r[key]["flood_rate"] for r in runs]
        keep = [r[key + "_verdict"]["keep"] for r in runs]
        ok = [r[key + "_verdict"]["conn_ok"] for r in runs]
        both = sum(1 for k, c in zip(keep, ok) if k >= 0.5 and c >= 0.9)
        print(f"  {name}: flood {mr(rate, ',.0f')} SYN/s; flows kept {mr(keep, '.0%')} "
              f"(target >= 50%: {'met' if statistics.median(keep) >= 0.5 else 'NOT met'}); "
              f"new connections {mr(ok, '.0%')} (target >= 90%: "
              f"{'met' if statistics.median(ok) >= 0.9 else 'NOT met'}); both targets in "
              f"{both} of {len(runs)} runs")


if __name__ == "__main__":
    main()
