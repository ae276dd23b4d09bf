"""``tcpio forward`` beside the kernel's own routing of the same traffic (issue 18).

    sudo python benchmarks/bench_forward.py [--runs 3] [--mib 100] [--conns 200]

Namespace B is "the internet": 198.51.100.1 on its lo, a threaded kernel
HTTP server with a ``--mib`` MiB file.  Two clients fetch it with curl:

- through tcpio: namespace F's only way out is the TUN of ``tcpio forward``
  (compiled build, running in B: its upstream sockets are B's);
- through the kernel: namespace K reaches B through a router namespace R
  (two veth pairs, ``net.ipv4.ip_forward=1``): one kernel routing hop.

Per run, interleaved (tcpio, kernel, tcpio, ...): curl's download speed for
the bulk file, and the time for ``--conns`` concurrent small fetches (an
asyncio client in the namespace).  Median and range of ``--runs``; the ratio
is what to quote (the machine is a shared 2-vCPU VM; unpinned).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from netns import NetNs, veth

FAR = "198.51.100.1"
HTTP_SERVER = """
import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server((sys.argv[1], 8080), handler).serve_forever()
"""
CONCURRENT = """
import asyncio, sys, time
async def one():
    r, w = await asyncio.open_connection("{far}", 8080)
    w.write(b"GET /small HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
    data = await r.read()
    w.close()
    return b" 200 " in data[:20]
async def main():
    t0 = time.perf_counter()
    ok = await asyncio.gather(*(one() for _ in range({n})))
    print(sum(ok), time.perf_counter() - t0)
asyncio.run(main())
"""


def curl_speed(ns: NetNs) -> float:
    res = ns.run("curl", "-sS", "-o", "/dev/null", "-w", "%{speed_download}",
                 f"http://{FAR}:8080/bulk", timeout=600)
    if res.returncode:
        raise RuntimeError(res.stderr)
    return float(res.stdout) / 1e6


def concurrent(ns: NetNs, n: int) -> float:
    res = ns.run(sys.executable, "-c", CONCURRENT.format(far=FAR, n=n), timeout=600)
    ok, secs = res.stdout.split()
    if int(ok) != n:
        raise RuntimeError(f"{ok}/{n} fetches succeeded: {res.stderr}")
    return float(secs)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mib", type=int, default=100)
    ap.add_argument("--conns", type=int, default=200)
    args = ap.parse_args()
    print(f"command: sudo python benchmarks/bench_forward.py --runs {args.runs} "
          f"--mib {args.mib} --conns {args.conns}   (unpinned)", flush=True)
    b, f, k, r = NetNs(), NetNs(), NetNs(), NetNs()
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as www:
        try:
            for ns in (b, f, k, r):
                ns.create()
            Path(www, "bulk").write_bytes(os.urandom(args.mib * 1024 * 1024))
            Path(www, "small").write_bytes(b"x" * 1000)
            b.ip("addr", "add", f"{FAR}/32", "dev", "lo")
            procs.append(subprocess.Popen(b.exec_argv(sys.executable, "-c", HTTP_SERVER,
                                                      FAR, www),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            # the kernel's path: K -- R -- B
            veth(k, "bfk0", "10.88.0.2/24", r, "bfr0", "10.88.0.1/24")
            veth(r, "bfr1", "10.89.0.1/24", b, "bfb0", "10.89.0.2/24")
            k.ip("route", "add", "default", "via", "10.88.0.1")
            b.ip("route", "add", "10.88.0.0/24", "via", "10.89.0.1")
            r.ip("route", "add", f"{FAR}/32", "via", "10.89.0.2")
            r.sysctl("net.ipv4.ip_forward", 1)
            # tcpio's path: F -- TUN -- tcpio forward (in B)
            tun = f"bfw{secrets.token_hex(3)}"
            fwd = subprocess.Popen(
                b.exec_argv(sys.executable, "-m", "tcpio", "forward", "--tun", tun,
                            "--netns", f.name, "--quiet"),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                env=dict(os.environ, PYTHONPATH=str(ROOT)))
            procs.append(fwd)
            assert fwd.stdout is not None
            print(fwd.stdout.readline().strip(), flush=True)
            f.ip("link", "set", tun, "up")
            f.ip("addr", "add", "10.77.0.2/24", "dev", tun)
            f.ip("route", "add", "default", "dev", tun)
            time.sleep(1.0)
            res: dict[str, list[float]] = {"tcpio MB/s": [], "kernel MB/s": [],
                                           "tcpio conns s": [], "kernel conns s": []}
            for _ in range(args.runs):
                res["tcpio MB/s"].append(curl_speed(f))
                res["kernel MB/s"].append(curl_speed(k))
                res["tcpio conns s"].append(concurrent(f, args.conns))
                res["kernel conns s"].append(concurrent(k, args.conns))
            for name, vals in res.items():
                print(f"{name:16s} median {statistics.median(vals):8.2f}  "
                      f"range {min(vals):.2f}-{max(vals):.2f}")
            tm, km = statistics.median(res["tcpio MB/s"]), statistics.median(res["kernel MB/s"])
            print(f"bulk: tcpio forward / kernel routing = {tm / km:.2f}")
            tc, kc = (statistics.median(res["tcpio conns s"]),
                      statistics.median(res["kernel conns s"]))
            print(f"{args.conns} concurrent fetches: tcpio {args.conns / tc:.0f}/s, "
                  f"kernel {args.conns / kc:.0f}/s")
        finally:
            for p in procs:
                p.terminate()
                p.wait()
            for ns in (b, f, k, r):
                ns.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
