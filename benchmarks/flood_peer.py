"""The kernel side of bench_flood.py, run inside a namespace with `ip netns exec`.

    flood_peer.py client HOST FLOW_PORT CONN_PORT NFLOWS PRE FLOOD POST
        NFLOWS kernel TCP flows send to HOST:FLOW_PORT for the whole run, and
        a new connection to HOST:CONN_PORT is tried every 0.1 s (each may take
        3 s: the kernel's SYN retransmission at 1 s counts as success).
        Prints "ready" once the flows are connected, then, after
        PRE + FLOOD + POST seconds, one JSON line: per phase the bytes the
        flows handed the kernel (rate = their throughput; the socket buffers
        are small, so that is what the receiver took) and the connections
        tried / made.
    flood_peer.py server ADDR FLOW_PORT CONN_PORT
        The kernel reference: a sink on FLOW_PORT and an accept-and-close
        listener on CONN_PORT, until killed.  Prints "listening".
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

SNDBUF = 128 * 1024


def client(host: str, flow_port: int, conn_port: int, nflows: int, pre: float, flood: float,
           post: float) -> None:
    sent = [0] * nflows
    stop = threading.Event()
    socks = []
    for _ in range(nflows):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SNDBUF)
        s.settimeout(10)
        s.connect((host, flow_port))
        socks.append(s)

    def flow(i: int) -> None:
        buf = b"x" * 65536
        s = socks[i]
        s.settimeout(0.5)
        while not stop.is_set():
            try:
                sent[i] += s.send(buf)
            except TimeoutError:
                continue
            except OSError:
                return

    attempts: list[tuple[float, bool]] = []

    def connect_once(t: float) -> None:
        s = socket.socket()
        s.settimeout(3.0)
        try:
            s.connect((host, conn_port))
            ok = True
        except OSError:
            ok = False
        finally:
            s.close()
        attempts.append((t, ok))

    threads = [threading.Thread(target=flow, args=(i,), daemon=True) for i in range(nflows)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    t0 = time.monotonic()
    edges = [0.0, pre, pre + flood, pre + flood + post]
    marks = []
    conn_threads = []
    next_conn = 0.0
    for edge in edges[1:]:
        while True:
            now = time.monotonic() - t0
            if now >= edge:
                break
            if now >= next_conn:
                th = threading.Thread(target=connect_once, args=(now,), daemon=True)
                th.start()
                conn_threads.append(th)
                next_conn += 0.1
            time.sleep(min(0.01, max(0.0, edge - now)))
        marks.append(sum(sent))
    stop.set()
    for th in conn_threads:
        th.join(4)
    phases = []
    prev = 0
    for k, name in enumerate(("pre", "flood", "post")):
        dur = edges[k + 1] - edges[k]
        tried = [ok for t, ok in attempts if edges[k] <= t < edges[k + 1]]
        phases.append({"phase": name, "seconds": dur, "bytes": marks[k] - prev,
                       "mb_s": (marks[k] - prev) / dur / 1e6,
                       "conns_tried": len(tried), "conns_ok": sum(tried)})
        prev = marks[k]
    print(json.dumps({"phases": phases}), flush=True)


def server(addr: str, flow_port: int, conn_port: int) -> None:
    def sink(c: socket.socket) -> None:
        while c.recv(262144):
            pass

    def serve_flows() -> None:
        ls = socket.create_server((addr, flow_port), backlog=128)
        while True:
            c, _ = ls.accept()
            threading.Thread(target=sink, args=(c,), daemon=True).start()

    threading.Thread(target=serve_flows, daemon=True).start()
    ls = socket.create_server((addr, conn_port), backlog=4096)
    print("listening", flush=True)
    while True:
        c, _ = ls.accept()
        c.close()


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
               float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]))
    else:
        server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
