"""RTOs of lossy transfers under a virtual clock, with and without RACK-TLP.

    python benchmarks/bench_rack_tlp.py [--seeds N] [--json FILE]

Two hosts on a VirtualNetwork link (25 ms each way, seeded random loss on
both directions), one TCP connection with SACK and timestamps.  Two
workloads, each over ``--seeds`` seeds:

- ``bulk``: 1 MiB one way;
- ``messages``: 40 messages of 8 KiB, each sent when the previous one has
  arrived (application-limited: every message ends in a tail).

For each loss rate it prints the totals over the seeds of TCPTimeouts (RTOs),
TCPLossProbes, TCPLossProbeRecovery, TCPSackRecovery (fast recoveries),
TCPLostRetransmit, RetransSegs, TCPDSACKRecv (retransmissions the receiver
already had), and the mean virtual completion time, for three settings:
``off`` (tcp_early_retrans=0, tcp_recovery=0: no TLP, RFC 6675 DupThresh:
tcpio before RACK-TLP), ``tlp`` (TLP only) and ``rack-tlp`` (the defaults,
Linux's: tcp_early_retrans=3, tcp_recovery=1).  Everything is virtual time:
the figures are exact and the same on every machine and in both builds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.devices.impair import Impairment

MODES = {"off": (0, 0), "tlp": (3, 0), "rack-tlp": (3, 1)}
COUNTERS = ("TCPTimeouts", "TCPLossProbes", "TCPLossProbeRecovery", "TCPSackRecovery",
            "TCPLostRetransmit", "RetransSegs", "TCPDSACKRecv")


def _settings(mode: str) -> Settings:
    st = Settings()
    early, recovery = MODES[mode]
    # (set only what this tree knows: the script also runs on older trees)
    if hasattr(st, "tcp_early_retrans"):
        st.tcp_early_retrans = early
        st.tcp_recovery = recovery
    elif mode != "off":
        raise SystemExit("this tree has no RACK-TLP: only --modes off")
    return st


def run_one(mode: str, workload: str, loss: float, seed: int) -> dict[str, float]:
    net = VirtualNetwork(seed=seed, debug=True)
    st = _settings(mode)
    a = net.host("a", settings=st)
    b = net.host("b", settings=_settings(mode))
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24",
             impairment=Impairment(delay=0.025, loss=loss, seed=seed * 2 + 1),
             impairment_ba=Impairment(delay=0.025, loss=loss, seed=seed * 2 + 2))
    lst = b.tcp.socket()
    lst.bind(0, 80)
    lst.listen(4)
    c = a.tcp.socket()
    with contextlib.suppress(BlockingIOError):      # (non-blocking connect: EINPROGRESS)
        c.connect(ip_aton("10.0.0.2"), 80)
    if not net.run_until(lambda: bool(lst.accept_queue), 120):
        raise RuntimeError("no connection")
    s = lst.accept()
    got = bytearray()
    t0 = net.now
    if workload == "bulk":
        total = 1 << 20
        msgs = [bytes(range(256)) * (total // 256)]
    else:
        msgs = [bytes([i]) * 8192 for i in range(40)]
        total = sum(len(m) for m in msgs)
    want = 0
    for m in msgs:
        want += len(m)
        rest = [memoryview(m)]

        def pump() -> bool:
            # (the predicate does the app's work after every network step)
            while rest[0] and c.send_space() > 0:
                rest[0] = rest[0][c.sendmsg(rest[0]):]
            while s.readable():
                got.extend(s.recvmsg(1 << 20))
            return len(got) >= want
        if not net.run_until(pump, 600):
            raise RuntimeError(f"{mode} {workload} loss={loss} seed={seed}: stalled")
    assert len(got) == total
    out: dict[str, float] = {k: a.mib[k] for k in COUNTERS}
    out["time"] = net.now - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--loss", type=float, nargs="*", default=[0.01, 0.03])
    ap.add_argument("--modes", nargs="*", default=list(MODES))
    ap.add_argument("--json")
    args = ap.parse_args()
    results = []
    print(f"{'workload':9s} {'loss':>5s} {'mode':9s} " + " ".join(f"{k.removeprefix('TCP'):>15s}" for k in COUNTERS)
          + f" {'mean time s':>12s}")
    for workload in ("bulk", "messages"):
        for loss in args.loss:
            for mode in args.modes:
                tot = dict.fromkeys((*COUNTERS, "time"), 0.0)
                for seed in range(1, args.seeds + 1):
                    r = run_one(mode, workload, loss, seed)
                    for k, v in r.items():
                        tot[k] += v
                row = {"workload": workload, "loss": loss, "mode": mode, "seeds": args.seeds,
                       **{k: int(tot[k]) for k in COUNTERS},
                       "mean_time": tot["time"] / args.seeds}
                results.append(row)
                print(f"{workload:9s} {loss:5.2f} {mode:9s} "
                      + " ".join(f"{row[k]:15d}" for k in COUNTERS)
                      + f" {row['mean_time']:12.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
