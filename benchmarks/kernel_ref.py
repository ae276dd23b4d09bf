"""The Linux kernel's own figures, measured in the same run as tcpio's.

Benchmarks quote tcpio beside these so a ratio, not an absolute number on a
noisy shared machine, is what we report:

- Python sockets over kernel loopback (no root needed);
- kernel <-> kernel over a veth pair between two private network namespaces
  (root), Python sockets at both ends, MTU 1500.

Run directly for the numbers alone: ``python benchmarks/kernel_ref.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid

CHUNK = 256 * 1024


def _sink(srv: socket.socket, result: dict) -> None:
    conn, _ = srv.accept()
    got = 0
    buf = bytearray(CHUNK)
    while True:
        n = conn.recv_into(buf)
        if not n:
            break
        got += n
    result["received"] = got
    conn.close()


def loopback_bulk(nbytes: int = 256 * 1024 * 1024) -> float:
    """Bytes/s of one TCP stream over 127.0.0.1 with Python sockets."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    result: dict = {}
    t = threading.Thread(target=_sink, args=(srv, result))
    t.start()
    cli = socket.create_connection(srv.getsockname())
    payload = memoryview(bytes(CHUNK))
    start = time.perf_counter()
    sent = 0
    while sent < nbytes:
        cli.sendall(payload)
        sent += CHUNK
    cli.shutdown(socket.SHUT_WR)
    t.join()
    elapsed = time.perf_counter() - start
    cli.close()
    srv.close()
    assert result["received"] == sent
    return sent / elapsed


def loopback_connects(count: int = 2000) -> float:
    """Connections/s (connect, accept, close) over 127.0.0.1."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4096)
    addr = srv.getsockname()
    done = threading.Event()

    def acceptor() -> None:
        for _ in range(count):
            c, _ = srv.accept()
            c.close()
        done.set()

    t = threading.Thread(target=acceptor)
    t.start()
    start = time.perf_counter()
    for _ in range(count):
        s = socket.create_connection(addr)
        s.close()
    done.wait()
    elapsed = time.perf_counter() - start
    t.join()
    srv.close()
    return count / elapsed


_VETH_SCRIPT = textwrap.dedent(
    """
    import socket, sys, time
    role, addr, nbytes = sys.argv[1], sys.argv[2], int(sys.argv[3])
    CHUNK = 256 * 1024
    if role == "sink":
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((addr, 5201)); srv.listen(1); print("ready", flush=True)
        c, _ = srv.accept(); buf = bytearray(CHUNK); got = 0
        while True:
            n = c.recv_into(buf)
            if not n: break
            got += n
        print(got, flush=True)
    else:
        for _ in range(100):
            try:
                s = socket.create_connection((addr, 5201)); break
            except OSError:
                time.sleep(0.05)
        p = memoryview(bytes(CHUNK)); sent = 0; t0 = time.perf_counter()
        while sent < nbytes:
            s.sendall(p); sent += CHUNK
        s.shutdown(socket.SHUT_WR); s.recv(1)
        print(sent / (time.perf_counter() - t0), flush=True)
    """
)


def veth_bulk(nbytes: int = 256 * 1024 * 1024) -> float | None:
    """Bytes/s kernel->kernel over a veth pair (MTU 1500) between two namespaces.

    Returns None without root.  Only the two private namespaces see traffic.
    """
    if os.geteuid() != 0:
        return None
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"tcpio-ka-{tag}", f"tcpio-kb-{tag}"
    va, vb = f"vka{tag}", f"vkb{tag}"
    run = lambda *cmd: subprocess.run(cmd, check=True, capture_output=True)
    try:
        run("ip", "netns", "add", ns_a)
        run("ip", "netns", "add", ns_b)
        run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        run("ip", "link", "set", va, "netns", ns_a)
        run("ip", "link", "set", vb, "netns", ns_b)
        for ns, dev, addr in ((ns_a, va, "10.99.0.1/24"), (ns_b, vb, "10.99.0.2/24")):
            run("ip", "-n", ns, "addr", "add", addr, "dev", dev)
            run("ip", "-n", ns, "link", "set", dev, "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
        sink = subprocess.Popen(
            ["ip", "netns", "exec", ns_b, sys.executable, "-c", _VETH_SCRIPT, "sink",
             "10.99.0.2", str(nbytes)], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None
        sink.stdout.readline()
        src = subprocess.run(
            ["ip", "netns", "exec", ns_a, sys.executable, "-c", _VETH_SCRIPT, "source",
             "10.99.0.2", str(nbytes)], capture_output=True, text=True, check=True)
        sink.wait(timeout=120)
        return float(src.stdout.strip())
    finally:
        subprocess.run(["ip", "netns", "del", ns_a], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns_b], capture_output=True, check=False)


def main() -> None:
    mib = 1024 * 1024
    print(f"kernel loopback bulk (Python sockets): {loopback_bulk() * 8 / 1e9:.2f} Gbit/s")
    print(f"kernel loopback connections/s:         {loopback_connects():.0f}")
    v = veth_bulk()
    if v is None:
        print("kernel veth bulk: needs root")
    else:
        print(f"kernel<->kernel veth MTU 1500 bulk:    {v * 8 / 1e9:.2f} Gbit/s ({v / mib:.0f} MiB/s)")


if __name__ == "__main__":
    main()
