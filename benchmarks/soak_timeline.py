"""When and why the many-flows soak's RTOs fire (issue 11): a timeline.

    sudo python benchmarks/soak_timeline.py [--flows 1000] [--size 1048576]
                                            [--copy] [--out DIR] [--tag NAME]
                                            [--rx-cap SECONDS]

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

The machine is shared: alternate the variants and report each run.
"""

from __future__ import annotations

import argparse
import asyncio
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


async def run(flows: int, size: int, copy: bool, out: Path, tag: str,
              rx_cap: float | None = None) -> dict[str, Any]:
    from netns import kernel_peer
    from tap import test_tcp_kernel_many_flows as T
    from tap.test_tcp_kernel_common import kernel_mib

    from tcpio.devices.tap import RxShare

    verdicts: list[bool] = []
    serve = T.server_handler(size, verdicts, copy)

    out.mkdir(parents=True, exist_ok=True)
    opts = None if rx_cap is None else {"rx_share": RxShare(cap=rx_cap)}
    async with kernel_peer(ipv6=False, tap_options=opts) as peer:
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
        await sampling
        sampler.terminate()
        await sampler.wait()
        k_rtos = kernel_mib(peer.ns).get("TCPTimeouts", 0) - k0
        tcpio_rtos = peer.stack.mib().get("TCPTimeouts", 0)
        tap = peer.tap
        reader = {**tap.rx_share.stats(), "cap": tap.rx_share.cap,
                  "time_squeeze": tap.time_squeeze}
    return summary(out, tag, tc, {
        "tag": tag, "flows": flows, "size": size, "copy": copy,
        "client": res.stdout.strip()[:100], "server_ok": verdicts.count(True),
        "elapsed": round(elapsed, 1), "MBps_both_ways": round(2 * flows * size / elapsed / 1e6, 1),
        "tcpio_rtos": tcpio_rtos, "kernel_rtos": k_rtos, "reader": reader})


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
    a = ap.parse_args()
    tag = a.tag or f"{'copy' if a.copy else 'view'}-{a.flows}x{a.size}-{os.getpid()}"
    print(json.dumps(asyncio.run(run(a.flows, a.size, a.copy, a.out, tag, a.rx_cap))))


if __name__ == "__main__":
    main()
