"""Cost of opening many idle connections between two stacks in one process (issue 11).

    python benchmarks/bench_open_idle.py [--counts 5000,20000] [--batch 500] [--ports 1]

Two tcpio Stacks on a MemoryWire (MTU 1500), one process per count: a
listener on the server, the client opens N bare sockets in batches of
``--batch`` concurrent connects and keeps them all open (idle, established);
the server accepts and keeps every child.  Reported per N: wall time from the
first connect to the N-th accepted child, and the time for the first and the
last ``--batch`` connections, which shows whether the per-connection cost
grows with the number already open (all on the listener's one port: what
the bind bucket's owner list costs), and the resident memory the N
connections added, per connection (both ends: a client socket, an accepted
child, and the Stack's Socket wrappers).  Then the ratio of the largest N's time
to the smallest's; issue 11's target is <= 5x for 4x the connections (linear
is 4x).

The server listens on ``--ports`` consecutive ports and the client spreads
its connections over them.  Every connection to one server port shares that
port's bind bucket, and the client's autobind packs many connections on each
of its own ports: a per-connection walk of a port's owners makes the cost
quadratic.  With one server port, 20 000 connections to one destination take
71% of the default ephemeral range (32768-60999), and connect()'s port
search (``__inet_hash_connect``, Linux's algorithm: ports of one parity
first, then the other) walks every port of the first parity once they are
all taken (after ~14 100 connections): a cost Linux's search has too, which
``--ports 4`` keeps out of the measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PORT = 5001


async def open_idle(n: int, batch: int, ports: int) -> dict:
    import tcpio
    w = tcpio.MemoryWire(mtu=1500)
    clients: list[Any] = []
    children: list[Any] = []
    async with tcpio.Stack(seed=1, name="c") as client, tcpio.Stack(seed=2, name="s") as srv:
        client.add_interface(w.a, "10.0.0.1/24")
        srv.add_interface(w.b, "10.0.0.2/24")
        async def acceptor(port: int) -> None:
            lst = srv.socket(socket.SOCK_STREAM)
            lst.bind(("0.0.0.0", port))
            lst.listen(4096)
            while True:
                children.append(await lst.accept())
        accs = [asyncio.ensure_future(acceptor(PORT + i)) for i in range(ports)]
        await asyncio.sleep(0)
        await client.ping("10.0.0.2", timeout=5)
        batches: list[float] = []
        rss0 = _rss_bytes()
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            tb = time.perf_counter()
            k = min(batch, n - start)
            socks = [client.socket(socket.SOCK_STREAM) for _ in range(k)]
            await asyncio.gather(*(s.connect(("10.0.0.2", PORT + (start + j) % ports))
                                   for j, s in enumerate(socks)))
            clients.extend(socks)
            while len(children) < len(clients):
                await asyncio.sleep(0)
            batches.append(time.perf_counter() - tb)
        elapsed = time.perf_counter() - t0
        rss1 = _rss_bytes()
        for acc in accs:
            acc.cancel()
        established = sum(1 for r in srv.connections() if r.state == "ESTAB")
    return {"n": n, "seconds": elapsed, "first_batch_s": batches[0],
            "last_batch_s": batches[-1], "batch": batch, "ports": ports,
            "established_server_side": established,
            "rss_per_connection": (rss1 - rss0) / n}


def _rss_bytes() -> int:
    """Resident memory of this process (/proc/self/statm, pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="5000,20000")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--ports", type=int, default=1, help="server ports to spread over")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(open_idle(args.child, args.batch, args.ports))))
        return
    cmd = "python " + " ".join(shlex.quote(a) for a in [
        os.path.relpath(__file__, os.getcwd()), *sys.argv[1:]])
    compiled = os.environ.get("TCPIO_NO_EXTENSIONS") != "1"
    print(f"# {cmd}  (tcpio at {ROOT}, {'compiled' if compiled else 'interpreted'}; "
          "CPUs not pinned)")
    res = []
    for n in [int(x) for x in args.counts.split(",") if x]:
        out = subprocess.run([sys.executable, __file__, "--child", str(n),
                              "--batch", str(args.batch), "--ports", str(args.ports)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        res.append(r)
        print(f"{r['n']:>7} idle connections: {r['seconds']:7.2f} s "
              f"({r['n'] / r['seconds']:6.0f}/s; first {r['batch']}: "
              f"{r['first_batch_s'] * 1e3:.0f} ms, last {r['batch']}: "
              f"{r['last_batch_s'] * 1e3:.0f} ms; server ESTABLISHED "
              f"{r['established_server_side']}; RSS {r['rss_per_connection'] / 1024:.1f} KiB "
              "per connection, both ends)", flush=True)
    if len(res) >= 2:
        a, b = res[0], res[-1]
        ratio = b["seconds"] / a["seconds"]
        print(f"{b['n']} vs {a['n']} ({b['n'] / a['n']:.0f}x the connections): "
              f"{ratio:.1f}x the time; target <= {1.25 * b['n'] / a['n']:.1f}x: "
              f"{'met' if ratio <= 1.25 * b['n'] / a['n'] else 'NOT met'}")


if __name__ == "__main__":
    main()
