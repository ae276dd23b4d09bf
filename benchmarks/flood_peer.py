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
        Each attempt's time to connect is kept: made in under 1 s means the
        first SYN was answered, later the retransmitted one (Linux's initial
        SYN RTO is 1 s).  The namespace's TcpExtTCPSynRetrans per phase
        counts the retransmitted SYNs, so the SYNs the client sent in a phase
        are its attempts plus those.
    flood_peer.py server ADDR FLOW_PORT CONN_PORT
        The kernel reference: a sink on FLOW_PORT and an accept-and-close
        listener on CONN_PORT, until killed.  Prints "listening".
    flood_peer.py flood HOST PORT RATE SECONDS
        A raw-socket SYN flood at RATE SYN/s (0: as fast as it can) for
        SECONDS: spoofed random off-link sources, like hping3 --rand-source,
        from a pool of distinct precomputed SYNs (no 4-tuple repeats within
        the pool, so the listener never meets its own request socks, and
        as large as RATE * SECONDS, at most 2**20: none is sent twice, which
        would be a retransmission to the TAP's steering).  Prints
        "ready" once the pool is built, starts on a line on stdin, and prints
        one JSON line: SYNs sent (sendto accepted them), the seconds and the
        rate reached.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import sys
import threading
import time

SNDBUF = 128 * 1024
SYN_RTO = 1.0           # Linux's initial SYN retransmission timeout (TCP_TIMEOUT_INIT)
POOL = 1 << 18          # distinct flood SYNs, sent round robin, at least
POOL_MAX = 1 << 20      # ... and at most (a flat-out flood's pool)


def syn_retrans() -> int:
    """The namespace's TcpExtTCPSynRetrans (the thread's network namespace)."""
    with open("/proc/thread-self/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split()[1:], values.split()[1:]))["TCPSynRetrans"])
    return 0


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

    attempts: list[tuple[float, bool, float, float, int]] = []

    def connect_once(t: float) -> None:
        s = socket.socket()
        s.settimeout(3.0)
        t1 = time.monotonic()
        try:
            s.connect((host, conn_port))
            ok = True
        except OSError:
            ok = False
        finally:
            sport = s.getsockname()[1]      # bound by connect(), kept until close
            s.close()
        # (phase time, made?, seconds to connect, CLOCK_MONOTONIC at the
        # first SYN (one clock for every process), source port)
        attempts.append((t, ok, time.monotonic() - t1, t1, sport))

    threads = [threading.Thread(target=flow, args=(i,), daemon=True) for i in range(nflows)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    t0 = time.monotonic()
    edges = [0.0, pre, pre + flood, pre + flood + post]
    marks = []
    retrans = [syn_retrans()]
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
        retrans.append(syn_retrans())
    stop.set()
    for th in conn_threads:
        th.join(4)
    phases = []
    prev = 0
    for k, name in enumerate(("pre", "flood", "post")):
        dur = edges[k + 1] - edges[k]
        tried = [(ok, dt) for t, ok, dt, _, _ in attempts if edges[k] <= t < edges[k + 1]]
        phases.append({"phase": name, "seconds": dur, "bytes": marks[k] - prev,
                       "mb_s": (marks[k] - prev) / dur / 1e6,
                       "conns_tried": len(tried), "conns_ok": sum(ok for ok, _ in tried),
                       # made by the first SYN / by its retransmission
                       "conns_first": sum(ok and dt < SYN_RTO for ok, dt in tried),
                       "conns_retry": sum(ok and dt >= SYN_RTO for ok, dt in tried),
                       "syn_retrans": retrans[k + 1] - retrans[k]})
        prev = marks[k]
    flood_attempts = [(t1, ok, dt, sport) for t, ok, dt, t1, sport in attempts
                      if edges[1] <= t < edges[2]]
    print(json.dumps({"phases": phases, "flood_attempts": flood_attempts}), flush=True)


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


def _fold(x: int) -> int:
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x


def flood_pool(host: str, port: int, n: int, seed: int = 13) -> list[bytes]:
    """``n`` SYNs (IP header + 20-byte TCP header, no options: hping3's) from
    distinct random off-link sources, checksums right.  The IP checksum, ID
    and length the kernel fills in for an IP_HDRINCL socket."""
    rng = random.Random(seed)
    dst = struct.unpack("!I", socket.inet_aton(host))[0]
    dport = port
    # the TCP checksum's constant part: the destination, protocol, length,
    # destination port, data offset and flags, window
    const = (dst >> 16) + (dst & 0xFFFF) + 6 + 20 + dport + (5 << 12 | 0x02) + 512
    srcs = set()
    out = []
    while len(out) < n:
        src = rng.randrange(0x0B000000, 0x7F000000)      # 11/8 .. 126/8: unicast, off-link
        if src in srcs:
            continue
        srcs.add(src)
        sport, seq = rng.randrange(1024, 65536), rng.getrandbits(32)
        csum = ~_fold(const + (src >> 16) + (src & 0xFFFF) + sport + (seq >> 16)
                      + (seq & 0xFFFF)) & 0xFFFF
        out.append(struct.pack("!BBHHHBBHII", 0x45, 0, 40, 0, 0, 64, 6, 0, src, dst)
                   + struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 512,
                                 csum, 0))
    return out


def flood(host: str, port: int, rate: float, seconds: float) -> None:
    """SYNs at ``rate`` per second (0: flat out) for ``seconds``, paced by the
    clock: a burst of 256 once a quarter of one is due, a short sleep before
    that (so the offered rate is never above ``rate`` by more than a burst)."""
    # As many distinct SYNs as the flood sends (a flat-out one: the most), so
    # none repeats: the same SYN again is a retransmission, which the TAP's
    # steering program sends to the flows' queue (tun_steering), not the
    # random-source flood measured here.  "replayed" says how many did.
    want = int(rate * seconds) if rate > 0 else POOL_MAX
    size = min(POOL_MAX, max(POOL, (want // 256 + 2) * 256))    # a burst past the pace
    pool = flood_pool(host, port, size)
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.connect((host, 0))        # send(), not sendto(): no address to parse per SYN
    send = s.send
    print("ready", flush=True)
    sys.stdin.readline()
    clock = time.perf_counter
    burst = 256                 # the pool's size is a multiple of it
    t0 = clock()
    end = t0 + seconds
    offered = errors = i = 0
    while True:
        now = clock()
        if now >= end:
            break
        if rate > 0 and int((now - t0) * rate) - offered < burst // 4:
            time.sleep(0.0002)      # ahead of the pace
            continue
        for p in pool[i:i + burst]:
            try:
                send(p)
            except OSError:
                errors += 1
        offered += burst
        i = (i + burst) % size
    dt = clock() - t0
    sent = offered - errors
    print(json.dumps({"sent": sent, "errors": errors, "seconds": dt, "rate": sent / dt,
                      "replayed": max(0, offered - size)}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
               float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]))
    elif sys.argv[1] == "flood":
        flood(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
