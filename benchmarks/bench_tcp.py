"""TCP benchmarks: connections per second and bulk throughput, beside the kernel.

    sudo python benchmarks/bench_tcp.py [--quick] [--pin TCPIO_CPU,PEER_CPU] [--json FILE]

What is measured (each figure is the best of ``--repeat`` runs):

- connections/s, kernel client -> tcpio server over a TAP (a Python client
  process in a private network namespace: connect, close; tcpio accepts and
  closes), and tcpio <-> tcpio over a MemoryWire (two Stacks, one loop);
- bulk throughput kernel -> tcpio and tcpio -> kernel over the TAP at MTU 1500
  (the receiver times from connect to EOF), and tcpio -> tcpio over a
  MemoryWire with a 64 KiB MTU;
- the MemoryWire figures again over IPv6 (fd00::1 -> fd00::2), beside IPv4's
  (issue 17; benchmarks/bench_family.py has the two side by side, round by
  round, at MTU 1500 too).

Every tcpio figure is measured twice, in child processes: with the compiled
hot path and with the pure-Python twin (``TCPIO_NO_EXTENSIONS=1``).  The
kernel's own figures come from ``kernel_ref.py`` in the same run: Python
sockets over loopback (connections/s and bulk) and kernel <-> kernel over a
veth pair at MTU 1500.  The machine is shared and noisy: quote ratios.

``--pin A,B`` runs the tcpio process on CPU A and the kernel-side peer
process on CPU B (``taskset``); without it nothing is pinned, and the output
says so (waking a process on the other vCPU costs ~30 us here, so two-process
figures move with placement).  ``--quick`` runs in under a minute.
Needs root for the TAP and veth figures (the rest runs without).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))                   # run from a checkout
sys.path.insert(0, str(ROOT / "benchmarks"))    # kernel_ref
sys.path.insert(0, str(ROOT / "tests"))         # netns: the namespace + TAP fixture

import kernel_ref

MiB = 1024 * 1024
CHUNK = 256 * 1024
PORT = 5001
TARGET_TAP_GBITS = 2.0

# --- sizes ---------------------------------------------------------------------------------


@dataclass
class Sizes:
    conns_tap: int
    conns_wire: int
    bulk_tap: int          # bytes, compiled run
    bulk_wire: int
    pure_divisor: int      # the pure twin moves this many times less
    ref_bulk: int
    ref_conns: int
    repeat: int


FULL = Sizes(conns_tap=3000, conns_wire=3000, bulk_tap=256 * MiB, bulk_wire=256 * MiB,
             pure_divisor=4, ref_bulk=1024 * MiB, ref_conns=5000, repeat=3)
QUICK = Sizes(conns_tap=500, conns_wire=500, bulk_tap=32 * MiB, bulk_wire=32 * MiB,
              pure_divisor=4, ref_bulk=256 * MiB, ref_conns=1000, repeat=1)


# --- the kernel-side peer: a Python process inside the namespace -----------------------------

PEER_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys, time
    mode, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    addr = (host, port)
    if mode == "connect":          # count connections: connect, close
        t0 = time.perf_counter()
        for _ in range(count):
            s = socket.create_connection(addr)
            s.close()
        print(json.dumps({"rate": count / (time.perf_counter() - t0)}))
    elif mode == "send":           # count bytes to tcpio, then wait for its close
        s = socket.create_connection(addr)
        p = memoryview(bytes(256 * 1024))
        sent = 0
        while sent < count:
            n = min(len(p), count - sent)
            s.sendall(p[:n])
            sent += n
        s.shutdown(socket.SHUT_WR)
        s.recv(1)
        print(json.dumps({"sent": sent}))
    elif mode == "sink":           # read from tcpio until EOF, timing connect -> EOF
        t0 = time.perf_counter()
        s = socket.create_connection(addr)
        buf = bytearray(256 * 1024)
        got = 0
        while True:
            n = s.recv_into(buf)
            if not n:
                break
            got += n
        print(json.dumps({"rate": got / (time.perf_counter() - t0), "got": got}))
    elif mode == "echo":           # count 1-byte round trips: the median in microseconds
        s = socket.create_connection(addr)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for i in range(count + 200):       # the first 200: warm-up
            t0 = time.perf_counter()
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise SystemExit("echo: wrong answer")
            rtts.append(time.perf_counter() - t0)
        s.close()
        rtts = sorted(rtts[200:])
        print(json.dumps({"median_us": rtts[len(rtts) // 2] * 1e6}))
    """
)


def peer_argv(pin: int | None, *args: str) -> list[str]:
    argv = [sys.executable, "-c", PEER_SCRIPT, *args]
    return (["taskset", "-c", str(pin)] + argv) if pin is not None else argv


async def run_peer(ns: Any, pin: int | None, *args: str, timeout: float = 600) -> dict:
    res = await ns.arun(*peer_argv(pin, *args), timeout=timeout)
    if res.returncode != 0:
        raise RuntimeError(f"kernel peer {args} failed: {res.stderr.strip()}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --- tcpio measurements (run in a child process) -------------------------------------------

_ZEROS = memoryview(bytes(CHUNK))


async def write_bytes(writer: asyncio.StreamWriter, nbytes: int) -> None:
    """Write ``nbytes`` zero bytes in CHUNK pieces, honouring drain()."""
    sent = 0
    while sent < nbytes:
        n = min(CHUNK, nbytes - sent)
        writer.write(_ZEROS[:n])
        await writer.drain()
        sent += n


async def read_to_eof(reader: asyncio.StreamReader) -> int:
    """Read until EOF; the byte count."""
    got = 0
    while chunk := await reader.read(CHUNK):
        got += len(chunk)
    return got


async def tap_connections(count: int, peer_cpu: int | None) -> float:
    from netns import kernel_peer

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with kernel_peer(ipv6=False) as peer:
        await peer.stack.start_server(handle, "0.0.0.0", PORT, backlog=1024)
        out = await run_peer(peer.ns, peer_cpu, "connect", peer.tcpio_ip, str(PORT),
                             str(count))
    return out["rate"]


async def tap_bulk_to_tcpio(nbytes: int, peer_cpu: int | None) -> float:
    """Kernel sends ``nbytes``; tcpio receives, timing accept -> EOF."""
    from netns import kernel_peer

    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t0 = time.perf_counter()
        got = await read_to_eof(reader)
        elapsed = time.perf_counter() - t0
        writer.close()
        done.set_result(got / elapsed)

    async with kernel_peer(ipv6=False) as peer:
        await peer.stack.start_server(sink, "0.0.0.0", PORT)
        out, rate = await asyncio.gather(
            run_peer(peer.ns, peer_cpu, "send", peer.tcpio_ip, str(PORT), str(nbytes)), done)
    assert out["sent"] == nbytes
    return rate


async def tap_bulk_from_tcpio(nbytes: int, peer_cpu: int | None, ipv6: bool = False,
                              tap_options: dict[str, Any] | None = None) -> float:
    """tcpio sends ``nbytes``; the kernel receives, timing connect -> EOF.
    ``ipv6``: over fd00::2 -> fd00::1 (TSO6 where the TAP took it);
    ``tap_options`` go to the TapDevice (e.g. an ``offloads`` mask)."""
    from netns import kernel_peer
    from tap.test_ipv6_kernel import TCPIO6, ipv6_peer

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await write_bytes(writer, nbytes)
        writer.close()

    peer_cm = (ipv6_peer(tap_options=tap_options) if ipv6
               else kernel_peer(ipv6=False, tap_options=tap_options))
    async with peer_cm as peer:
        addr = TCPIO6 if ipv6 else peer.tcpio_ip
        await peer.stack.start_server(source, addr, PORT)
        out = await run_peer(peer.ns, peer_cpu, "sink", addr, str(PORT), "0")
    assert out["got"] == nbytes
    return out["rate"]


async def wire_pair(mtu: int, ipv6: bool = False) -> tuple[Any, Any]:
    """Two Stacks on a MemoryWire: 10.0.0.1 and 10.0.0.2, with ``ipv6``
    fd00::1 and fd00::2 too."""
    import tcpio

    wire = tcpio.MemoryWire(mtu=mtu)
    client, server = tcpio.Stack(seed=1, name="client"), tcpio.Stack(seed=2, name="server")
    await client.__aenter__()
    await server.__aenter__()
    client.add_interface(wire.a, "10.0.0.1/24")
    server.add_interface(wire.b, "10.0.0.2/24")
    if ipv6:
        client.add_address(1, "fd00::1/64", nodad=True)
        server.add_address(1, "fd00::2/64", nodad=True)
    return client, server


def _any(dst: str) -> str:
    return "::" if ":" in dst else "0.0.0.0"


async def wire_connections(count: int, dst: str = "10.0.0.2") -> float:
    client, server = await wire_pair(1500, ":" in dst)
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    try:
        await server.start_server(handle, _any(dst), PORT, backlog=1024)
        await client.ping(dst, timeout=5)       # ARP / ND out of the timed part
        t0 = time.perf_counter()
        for _ in range(count):
            sock = client.socket(socket.SOCK_STREAM, family=family)
            await sock.connect((dst, PORT))
            sock.close()
        return count / (time.perf_counter() - t0)
    finally:
        client.close()
        server.close()


async def stream_bulk(client: Any, server: Any, dst: str, nbytes: int) -> float:
    """Bytes/s of one stream from Stack ``client`` to a server on Stack
    ``server`` at ``dst`` (the receiver times from the first write to EOF)."""
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    t0 = 0.0

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = await read_to_eof(reader)
        done.set_result(got / (time.perf_counter() - t0))
        writer.close()

    srv = await server.start_server(sink, _any(dst), PORT)
    try:
        _, writer = await client.open_connection(dst, PORT)
        t0 = time.perf_counter()
        await write_bytes(writer, nbytes)
        writer.write_eof()
        rate = await asyncio.wait_for(done, 600)
        writer.close()
        return rate
    finally:
        srv.close()


async def wire_bulk(nbytes: int, mtu: int = 65535, dst: str = "10.0.0.2") -> float:
    client, server = await wire_pair(mtu, ":" in dst)
    try:
        await client.ping(dst, timeout=5)       # ARP / ND out of the timed part
        return await stream_bulk(client, server, dst, nbytes)
    finally:
        client.close()
        server.close()


async def child_main(sizes: Sizes, pure: bool, peer_cpu: int | None, root: bool) -> dict:
    div = sizes.pure_divisor if pure else 1
    results: dict[str, float | None] = {}

    async def best(name: str, fn: Any, *args: Any) -> None:
        rates = []
        for _ in range(sizes.repeat):
            rates.append(await asyncio.wait_for(fn(*args), 900))
        results[name] = max(rates)

    if root:
        await best("conn_tap", tap_connections, sizes.conns_tap // div, peer_cpu)
    await best("conn_wire", wire_connections, sizes.conns_wire // div)
    if root:
        await best("bulk_to_tcpio", tap_bulk_to_tcpio, sizes.bulk_tap // div, peer_cpu)
        await best("bulk_from_tcpio", tap_bulk_from_tcpio, sizes.bulk_tap // div, peer_cpu)
    await best("bulk_wire", wire_bulk, sizes.bulk_wire // div)
    await best("conn_wire6", wire_connections, sizes.conns_wire // div, "fd00::2")
    await best("bulk_wire6", wire_bulk, sizes.bulk_wire // div, 65535, "fd00::2")
    from tcpio import _fast
    results["compiled"] = float(_fast.load_compiled("checksum") is not None and not pure)
    return results


def run_child(args: argparse.Namespace, pure: bool, tcpio_cpu: int | None,
              peer_cpu: int | None) -> dict:
    env = dict(os.environ)
    env["TCPIO_NO_EXTENSIONS"] = "1" if pure else "0"
    argv = [sys.executable, __file__, "--child"] + (["--quick"] if args.quick else [])
    if args.repeat:
        argv += ["--repeat", str(args.repeat)]
    if peer_cpu is not None:
        argv += ["--peer-cpu", str(peer_cpu)]
    if tcpio_cpu is not None:
        argv = ["taskset", "-c", str(tcpio_cpu)] + argv
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600,
                         check=False)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


PROFILES = {
    "conn_tap": lambda z: tap_connections(z.conns_tap, None),
    "conn_wire": lambda z: wire_connections(z.conns_wire),
    "bulk_to_tcpio": lambda z: tap_bulk_to_tcpio(z.bulk_tap, None),
    "bulk_from_tcpio": lambda z: tap_bulk_from_tcpio(z.bulk_tap, None),
    "bulk_wire": lambda z: wire_bulk(z.bulk_wire),
}


def profile(name: str, sizes: Sizes, root: bool) -> None:
    """Where the time goes: one figure under pyinstrument (a test dependency)."""
    from pyinstrument import Profiler

    if name in ("conn_tap", "bulk_to_tcpio", "bulk_from_tcpio") and not root:
        raise SystemExit(f"{name} needs root")
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    with profiler:
        rate = asyncio.run(PROFILES[name](sizes))
    print(f"{name}: {rate:.0f} {'conn/s' if name.startswith('conn') else 'B/s'}"
          f" (under the profiler)")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


# --- report -----------------------------------------------------------------------------------


def gbit(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 8 / 1e9:6.3f} Gbit/s"


def per_s(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:8.0f} /s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run (< 1 min)")
    ap.add_argument("--pin", help="TCPIO_CPU,PEER_CPU: pin the tcpio and kernel-peer processes")
    ap.add_argument("--repeat", type=int, default=0, help="runs per figure (best is kept)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--profile", choices=list(PROFILES),
                    help="run one tcpio figure in this process under pyinstrument instead")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--peer-cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.repeat:
        sizes.repeat = args.repeat
    root = os.geteuid() == 0 and os.path.exists("/dev/net/tun")

    if args.profile:
        profile(args.profile, sizes, root)
        return

    if args.child:
        pure = os.environ.get("TCPIO_NO_EXTENSIONS") == "1"
        out = asyncio.run(child_main(sizes, pure, args.peer_cpu, root))
        print(json.dumps(out))
        return

    tcpio_cpu = peer_cpu = None
    if args.pin:
        tcpio_cpu, peer_cpu = (int(x) for x in args.pin.split(","))
    command = " ".join(shlex.quote(a) for a in ["python", "benchmarks/bench_tcp.py",
                                                 *sys.argv[1:]])
    affinity = sorted(os.sched_getaffinity(0))
    pinning = (f"pinned: tcpio on CPU {tcpio_cpu}, kernel-side peer on CPU {peer_cpu} "
               "(taskset; the kernel_ref figures are not pinned)"
               if args.pin else f"not pinned (affinity {affinity}, {os.cpu_count()} CPUs)")
    print("# tcpio TCP benchmarks")
    print(f"# reproduce: sudo {command}   (from the repository root)")
    print(f"# CPUs: {pinning}; load average {os.getloadavg()[0]:.2f}")
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"kernel {platform.release()}, mode {'quick' if args.quick else 'full'}, "
          f"best of {sizes.repeat}")
    print(f"# targets: bulk over TAP at MTU 1500 >= {TARGET_TAP_GBITS:g} Gbit/s each way; "
          "tcpio<->tcpio bulk >= Python sockets over kernel loopback")
    if not root:
        print("# not root: TAP and veth figures skipped")
    sys.stdout.flush()

    t_start = time.perf_counter()
    compiled = run_child(args, False, tcpio_cpu, peer_cpu)
    pure = run_child(args, True, tcpio_cpu, peer_cpu)
    ref_conns = kernel_ref.loopback_connects(sizes.ref_conns)
    ref_loop = kernel_ref.loopback_bulk(sizes.ref_bulk)
    ref_veth = kernel_ref.veth_bulk(sizes.ref_bulk) if root else None

    rows = [
        ("connections/s kernel client -> tcpio, TAP", "conn_tap", per_s,
         f"kernel loopback {per_s(ref_conns).strip()}", None),
        ("connections/s tcpio <-> tcpio, MemoryWire", "conn_wire", per_s,
         f"kernel loopback {per_s(ref_conns).strip()}", None),
        ("bulk kernel -> tcpio, TAP MTU 1500", "bulk_to_tcpio", gbit,
         f"kernel veth MTU 1500 {gbit(ref_veth).strip()}", TARGET_TAP_GBITS * 1e9 / 8),
        ("bulk tcpio -> kernel, TAP MTU 1500", "bulk_from_tcpio", gbit,
         f"kernel veth MTU 1500 {gbit(ref_veth).strip()}", TARGET_TAP_GBITS * 1e9 / 8),
        ("bulk tcpio -> tcpio, MemoryWire MTU 64K", "bulk_wire", gbit,
         f"Python sockets loopback {gbit(ref_loop).strip()}", ref_loop),
        ("connections/s tcpio <-> tcpio, IPv6", "conn_wire6", per_s,
         f"IPv4 {per_s(compiled.get('conn_wire')).strip()}",
         0.9 * compiled["conn_wire"] if compiled.get("conn_wire") else None),
        ("bulk tcpio -> tcpio, IPv6, MTU 64K", "bulk_wire6", gbit,
         f"IPv4 {gbit(compiled.get('bulk_wire')).strip()}",
         0.9 * compiled["bulk_wire"] if compiled.get("bulk_wire") else None),
    ]
    print()
    print(f"{'measurement':44} {'tcpio compiled':>16} {'tcpio pure':>16}  "
          f"{'kernel, same run':36} target")
    for label, key, fmt, ref, target in rows:
        c, p = compiled.get(key), pure.get(key)
        verdict = ""
        if target is not None and c is not None:
            verdict = f"{'met' if c >= target else 'NOT met'} ({c / target:.1%} of target)"
        print(f"{label:44} {fmt(c):>16} {fmt(p):>16}  {ref:36} {verdict}")
    if compiled.get("compiled") != 1.0:
        print("# note: the compiled extensions were not built; both columns are pure Python")
    print(f"# total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "compiled": compiled, "pure": pure, "kernel_loopback_conns": ref_conns,
            "kernel_loopback_bulk": ref_loop, "kernel_veth_bulk": ref_veth,
            "pinned": args.pin, "quick": args.quick}, indent=2))


if __name__ == "__main__":
    main()
