"""TCP benchmarks: connections per second and bulk throughput, beside the kernel.

    sudo python benchmarks/bench_tcp.py [--quick] [--repeat N] [--family 4,6]
        [--only tap|wire] [--compiled-only] [--no-ref] [--pin TCPIO_CPU,PEER_CPU]
        [--json FILE] [--profile FIGURE] [--big-tcp BYTES]

What is measured (each figure ``--repeat`` times; the median and range):

- connections/s, kernel client -> tcpio server over a TAP (a Python client
  process in a private network namespace: connect, close; tcpio accepts and
  closes), and tcpio <-> tcpio over a MemoryWire (two Stacks, one loop);
- bulk throughput kernel -> tcpio and tcpio -> kernel over the TAP at MTU 1500
  (the receiver times from connect to EOF), and tcpio -> tcpio over a
  MemoryWire with a 64 KiB MTU;
- each of them for IPv4 and IPv6 (``--family``, both by default): over the
  TAP 10.7.0.2 or fd00::2 on one set-up (the kernel at 10.7.0.1 and
  fd00::1), over the MemoryWire 10.0.0.2 or fd00::2.  Within each round
  the families run back to back (4, 6, 4, 6, ...), so the machine's load
  moves both, and the report gives each round's IPv6/IPv4 ratio, median
  and range, by the wall clock and by tcpio's CPU time over the timed part
  (work per CPU second, the steadier one on a shared machine), with the
  verdict against issue 17's target (IPv6 within 10 % of IPv4).

Every tcpio figure is measured in child processes: with the compiled hot
path and (unless ``--compiled-only``) with the pure-Python twin
(``TCPIO_NO_EXTENSIONS=1``).  The kernel's own figures come from
``kernel_ref.py`` in the same run (unless ``--no-ref``): Python sockets over
loopback (connections/s and bulk) and kernel <-> kernel over a veth pair at
MTU 1500.  The machine is shared and noisy: quote ratios.

``--only tap`` / ``--only wire`` measures only the TAP or MemoryWire
figures.  ``--pin A,B`` runs the tcpio process on CPU A and the kernel-side
peer process on CPU B (``taskset``); without it nothing is pinned, and the
output says so (waking a process on the other vCPU costs ~30 us here, so
two-process figures move with placement).  ``--quick`` runs in a few
minutes.  ``--profile bulk_to_tcpio6`` (any figure, ``6`` for IPv6) runs one
figure in this process under pyinstrument.  Needs root for the TAP and veth
figures (the rest runs without).  ``--big-tcp 262144`` gives the MemoryWire
bulk figure BIG TCP (super-frames of up to that many bytes of IP datagram;
Python's sockets over lo keep the kernel's default 64 KiB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
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


FULL = Sizes(conns_tap=3000, conns_wire=3000, bulk_tap=1024 * MiB, bulk_wire=256 * MiB,
             pure_divisor=4, ref_bulk=1024 * MiB, ref_conns=5000, repeat=3)
QUICK = Sizes(conns_tap=500, conns_wire=500, bulk_tap=32 * MiB, bulk_wire=32 * MiB,
              pure_divisor=4, ref_bulk=256 * MiB, ref_conns=1000, repeat=1)


# --- the kernel-side peer: a Python process inside the namespace -----------------------------

PEER_SCRIPT = textwrap.dedent(
    """
    import json, socket, sys, time
    mode, host, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    addr = (host, port)
    c0 = time.process_time()       # the peer's CPU (its syscalls' kernel work included)
    if mode == "connect":          # count connections: connect, close
        t0 = time.perf_counter()
        for _ in range(count):
            s = socket.create_connection(addr)
            s.close()
        print(json.dumps({"rate": count / (time.perf_counter() - t0),
                          "cpu": time.process_time() - c0}))
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
        print(json.dumps({"sent": sent, "cpu": time.process_time() - c0}))
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
        print(json.dumps({"rate": got / (time.perf_counter() - t0), "got": got,
                          "cpu": time.process_time() - c0}))
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


@contextlib.asynccontextmanager
async def tap_peer(fam: int, tap_options: dict[str, Any] | None = None
                   ) -> AsyncIterator[tuple[Any, str]]:
    """The kernel over a TAP, and tcpio's address for family ``fam``: one
    set-up for both families (``ipv6_peer``: 10.7.0.1/24 and fd00::1/64 on
    the kernel side, 10.7.0.2/24 and fd00::2/64 on tcpio's after DAD), so
    the IPv4 and IPv6 figures differ only in the addresses used."""
    from tap.test_ipv6_kernel import TCPIO6, ipv6_peer

    async with ipv6_peer(tap_options=tap_options) as peer:
        yield peer, (TCPIO6 if fam == 6 else peer.tcpio_ip)


async def tap_connections(count: int, peer_cpu: int | None, fam: int = 4,
                          cpu: list[float] | None = None,
                          peer_cpu_s: list[float] | None = None) -> float:
    """Kernel client connects and closes ``count`` times (it times the loop);
    ``cpu`` gets tcpio's CPU seconds over the same part, ``peer_cpu_s`` the
    client process's (with the kernel work its syscalls do)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async with tap_peer(fam) as (peer, addr):
        await peer.stack.start_server(handle, addr, PORT, backlog=1024)
        c0 = time.process_time()
        out = await run_peer(peer.ns, peer_cpu, "connect", addr, str(PORT), str(count))
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    if peer_cpu_s is not None:
        peer_cpu_s.append(out["cpu"])
    return out["rate"]


async def tap_bulk_to_tcpio(nbytes: int, peer_cpu: int | None, fam: int = 4,
                            cpu: list[float] | None = None,
                            peer_cpu_s: list[float] | None = None) -> float:
    """Kernel sends ``nbytes``; tcpio receives, timing accept -> EOF (and
    its CPU time over the same part into ``cpu``; the sender's whole CPU
    time into ``peer_cpu_s``)."""
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        got = await read_to_eof(reader)
        elapsed = time.perf_counter() - t0
        if cpu is not None:
            cpu.append(time.process_time() - c0)
        writer.close()
        done.set_result(got / elapsed)

    async with tap_peer(fam) as (peer, addr):
        await peer.stack.start_server(sink, addr, PORT)
        out, rate = await asyncio.gather(
            run_peer(peer.ns, peer_cpu, "send", addr, str(PORT), str(nbytes)), done)
    assert out["sent"] == nbytes
    if peer_cpu_s is not None:
        peer_cpu_s.append(out["cpu"])
    return rate


async def tap_bulk_from_tcpio(nbytes: int, peer_cpu: int | None, ipv6: bool = False,
                              tap_options: dict[str, Any] | None = None, fam: int = 4,
                              cpu: list[float] | None = None,
                              peer_cpu_s: list[float] | None = None) -> float:
    """tcpio sends ``nbytes``; the kernel receives, timing connect -> EOF;
    ``cpu`` gets tcpio's CPU seconds from accept to the kernel's EOF,
    ``peer_cpu_s`` the receiving process's.
    ``ipv6`` (or ``fam=6``): over fd00::2 -> fd00::1 (TSO6 where the TAP
    took it); ``tap_options`` go to the TapDevice (e.g. an ``offloads`` mask)."""
    c0 = [0.0]

    async def source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c0[0] = time.process_time()
        await write_bytes(writer, nbytes)
        writer.close()

    async with tap_peer(6 if ipv6 else fam, tap_options) as (peer, addr):
        await peer.stack.start_server(source, addr, PORT)
        out = await run_peer(peer.ns, peer_cpu, "sink", addr, str(PORT), "0")
        if cpu is not None:
            cpu.append(time.process_time() - c0[0])
    assert out["got"] == nbytes
    if peer_cpu_s is not None:
        peer_cpu_s.append(out["cpu"])
    return out["rate"]


# --big-tcp: the MemoryWire's gso_max_size for the bulk figure (BIG TCP,
# super-frames past 64 KiB); 0: the wire's default, 64 KiB as the kernel's lo
BIG_TCP = 0


async def wire_pair(mtu: int, ipv6: bool = False, gso: bool = False,
                    gso_max_size: int = 0) -> tuple[Any, Any]:
    """Two Stacks on a MemoryWire: 10.0.0.1 and 10.0.0.2, with ``ipv6``
    fd00::1 and fd00::2 too; ``gso``: the wire's offloads (TSO and checksum
    offload, as a veth pair has them), ``gso_max_size`` past 64 KiB: BIG TCP."""
    import tcpio

    wire = (tcpio.MemoryWire(mtu=mtu, gso=gso, gso_max_size=gso_max_size) if gso_max_size
            else tcpio.MemoryWire(mtu=mtu, gso=gso))
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


async def wire_connections(count: int, dst: str = "10.0.0.2",
                           cpu: list[float] | None = None) -> float:
    client, server = await wire_pair(1500, ":" in dst)
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    try:
        await server.start_server(handle, _any(dst), PORT, backlog=1024)
        await client.ping(dst, timeout=5)       # ARP / ND out of the timed part
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(count):
            sock = client.socket(socket.SOCK_STREAM, family=family)
            await sock.connect((dst, PORT))
            sock.close()
        rate = count / (time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
        return rate
    finally:
        client.close()
        server.close()


async def stream_bulk(client: Any, server: Any, dst: str, nbytes: int,
                      cpu: list[float] | None = None) -> float:
    """Bytes/s of one stream from Stack ``client`` to a server on Stack
    ``server`` at ``dst`` (the receiver times from the first write to EOF;
    ``cpu`` gets the process's CPU seconds over the same part)."""
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    t0 = c0 = 0.0

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = await read_to_eof(reader)
        done.set_result(got / (time.perf_counter() - t0))
        if cpu is not None:
            cpu.append(time.process_time() - c0)
        writer.close()

    srv = await server.start_server(sink, _any(dst), PORT)
    try:
        _, writer = await client.open_connection(dst, PORT)
        t0, c0 = time.perf_counter(), time.process_time()
        await write_bytes(writer, nbytes)
        writer.write_eof()
        rate = await asyncio.wait_for(done, 600)
        writer.close()
        return rate
    finally:
        srv.close()


async def wire_bulk(nbytes: int, mtu: int = 65535, dst: str = "10.0.0.2",
                    cpu: list[float] | None = None, gso: bool = True) -> float:
    """tcpio -> tcpio over a MemoryWire, with its offloads unless ``gso`` is
    False (Python's sockets over lo, the reference, have them too: lo takes
    64 KiB segments and never sums their checksums)."""
    client, server = await wire_pair(mtu, ":" in dst, gso, BIG_TCP)
    try:
        await client.ping(dst, timeout=5)       # ARP / ND out of the timed part
        return await stream_bulk(client, server, dst, nbytes, cpu)
    finally:
        client.close()
        server.close()


# (key, what, amount per run from Sizes, transport) in the order measured
FIGURES = [
    ("conn_tap", "connections/s kernel client -> tcpio, TAP", "conns_tap", "tap"),
    ("bulk_to_tcpio", "bulk kernel -> tcpio, TAP MTU 1500", "bulk_tap", "tap"),
    ("bulk_from_tcpio", "bulk tcpio -> kernel, TAP MTU 1500", "bulk_tap", "tap"),
    ("conn_wire", "connections/s tcpio <-> tcpio, MemoryWire", "conns_wire", "wire"),
    ("bulk_wire", "bulk tcpio -> tcpio, MemoryWire MTU 64K", "bulk_wire", "wire"),
]


def fig_key(name: str, fam: int) -> str:
    """A figure's name in the JSON: IPv4's as before, IPv6's with a 6."""
    return name + ("6" if fam == 6 else "")


async def measure(name: str, amount: int, fam: int, peer_cpu: int | None,
                  cpu: list[float], peer_cpu_s: list[float] | None = None) -> float:
    """One run of figure ``name`` for family ``fam`` (rate; tcpio's CPU into
    ``cpu``, a kernel-side peer process's into ``peer_cpu_s``)."""
    wire_dst = "fd00::2" if fam == 6 else "10.0.0.2"
    if name == "conn_tap":
        return await tap_connections(amount, peer_cpu, fam, cpu, peer_cpu_s)
    if name == "bulk_to_tcpio":
        return await tap_bulk_to_tcpio(amount, peer_cpu, fam, cpu, peer_cpu_s)
    if name == "bulk_from_tcpio":
        return await tap_bulk_from_tcpio(amount, peer_cpu, fam=fam, cpu=cpu,
                                         peer_cpu_s=peer_cpu_s)
    if name == "conn_wire":
        return await wire_connections(amount, wire_dst, cpu=cpu)
    return await wire_bulk(amount, 65535, wire_dst, cpu=cpu)


async def child_main(sizes: Sizes, pure: bool, peer_cpu: int | None, root: bool,
                     families: list[int], only: str | None) -> dict:
    """Every figure ``sizes.repeat`` times; within a round the families run
    back to back (4, 6, 4, 6, ...), so the machine's load moves both."""
    div = sizes.pure_divisor if pure else 1
    runs: dict[str, list[dict[str, float]]] = {}
    for name, _, size_field, transport in FIGURES:
        if (only and transport != only) or (transport == "tap" and not root):
            continue
        amount = getattr(sizes, size_field) // div
        for _ in range(sizes.repeat):
            for fam in families:
                cpu: list[float] = []
                pcpu: list[float] = []
                rate = await asyncio.wait_for(
                    measure(name, amount, fam, peer_cpu, cpu, pcpu), 900)
                runs.setdefault(fig_key(name, fam), []).append(
                    {"rate": rate, "cpu": cpu[0] if cpu else 0.0, "amount": amount,
                     "peer_cpu": pcpu[0] if pcpu else 0.0})
    from tcpio import _fast
    return {"runs": runs,
            "compiled": float(_fast.load_compiled("checksum") is not None and not pure)}


def run_child(args: argparse.Namespace, pure: bool, tcpio_cpu: int | None,
              peer_cpu: int | None) -> dict:
    env = dict(os.environ)
    env["TCPIO_NO_EXTENSIONS"] = "1" if pure else "0"
    argv = [sys.executable, __file__, "--child", "--family", args.family] + (
        ["--quick"] if args.quick else [])
    if args.repeat:
        argv += ["--repeat", str(args.repeat)]
    if args.only:
        argv += ["--only", args.only]
    if args.big_tcp:
        argv += ["--big-tcp", str(args.big_tcp)]
    if peer_cpu is not None:
        argv += ["--peer-cpu", str(peer_cpu)]
    if tcpio_cpu is not None:
        argv = ["taskset", "-c", str(tcpio_cpu)] + argv
    res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600,
                         check=False)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


PROFILES = {fig_key(name, fam): (name, size_field, fam)
            for name, _, size_field, _ in FIGURES for fam in (4, 6)}


def profile(name: str, sizes: Sizes, root: bool) -> None:
    """Where the time goes: one figure under pyinstrument (a test dependency)."""
    from pyinstrument import Profiler

    fig, size_field, fam = PROFILES[name]
    if "wire" not in fig and not root:
        raise SystemExit(f"{name} needs root")
    profiler = Profiler(interval=0.0005, async_mode="disabled")
    with profiler:
        rate = asyncio.run(measure(fig, getattr(sizes, size_field), fam, None, []))
    print(f"{name}: {rate:.0f} {'conn/s' if name.startswith('conn') else 'B/s'}"
          f" (under the profiler)")
    print(profiler.output_text(unicode=False, color=False, show_all=False))


# --- report -----------------------------------------------------------------------------------

TARGET_FAMILY = 0.9     # issue 17: IPv6 within 10 % of IPv4


def gbit(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 8 / 1e9:6.3f} Gbit/s"


def per_s(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:8.0f} /s"


def pct(v: float) -> str:
    return f"{v:.1%}"


def spread(values: list[float], fmt: Any = pct) -> str:
    """``median (min-max)`` of ``values``, each formatted by ``fmt``."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    show = lambda v: fmt(v).strip()
    if len(values) == 1:
        return show(med)
    return f"{show(med)} ({show(min(values))}-{show(max(values))})"


def medians(child: dict) -> dict[str, float]:
    """Each figure's median rate (what --json and ab_trees.py read)."""
    out = {k: statistics.median(r["rate"] for r in v) for k, v in child["runs"].items()}
    out["compiled"] = child["compiled"]
    return out


def family_rows(child: dict) -> list[str]:
    """IPv6 beside IPv4, figure by figure: each round's IPv6/IPv4 ratio (the
    two ran back to back), by the wall clock and by tcpio's CPU time over the
    timed part (work per CPU second), median and range, and the verdict."""
    lines = []
    for name, label, _, _ in FIGURES:
        v4, v6 = child["runs"].get(name), child["runs"].get(name + "6")
        if not v4 or not v6:
            continue
        fmt = per_s if name.startswith("conn") else gbit
        wall = [b["rate"] / a["rate"] for a, b in zip(v4, v6)]
        cpu = [a["cpu"] / b["cpu"] for a, b in zip(v4, v6) if a["cpu"] > 0 and b["cpu"] > 0]
        peer = [a["peer_cpu"] / b["peer_cpu"] for a, b in zip(v4, v6)
                if a.get("peer_cpu", 0) > 0 and b.get("peer_cpu", 0) > 0]
        med = statistics.median(wall)
        verdict = f"{'met' if med >= TARGET_FAMILY else 'NOT met'} (target {TARGET_FAMILY:.0%})"
        lines.append(f"{label:50} IPv4 {spread([r['rate'] for r in v4], fmt)}")
        lines.append(f"{'':50} IPv6 {spread([r['rate'] for r in v6], fmt)}")
        lines.append(f"{'':50} IPv6/IPv4 {spread(wall, pct)}, by tcpio's CPU time "
                     f"{spread(cpu, pct)}: {verdict}")
        if peer:
            lines.append(f"{'':50} (the kernel-side peer process's CPU time, IPv6/IPv4 by "
                         f"work per CPU second: {spread(peer, pct)})")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one run (< 1 min)")
    ap.add_argument("--pin", help="TCPIO_CPU,PEER_CPU: pin the tcpio and kernel-peer processes")
    ap.add_argument("--repeat", type=int, default=0, help="runs per figure and family")
    ap.add_argument("--family", default="4,6",
                    help="address families measured, interleaved run by run (4, 6 or 4,6)")
    ap.add_argument("--only", choices=["tap", "wire"], help="only the TAP or MemoryWire figures")
    ap.add_argument("--compiled-only", action="store_true",
                    help="skip the pure-Python twin's run")
    ap.add_argument("--no-ref", action="store_true", help="skip the kernel's reference figures")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--profile", choices=list(PROFILES),
                    help="run one tcpio figure in this process under pyinstrument instead")
    ap.add_argument("--big-tcp", type=int, default=0, metavar="BYTES",
                    help="MemoryWire bulk with BIG TCP: super-frames of up to BYTES "
                         "(e.g. 262144; the kernel's lo reference stays at 64 KiB)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--peer-cpu", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    global BIG_TCP
    BIG_TCP = args.big_tcp
    sizes = QUICK if args.quick else FULL
    if args.repeat:
        sizes.repeat = args.repeat
    families = sorted({int(f) for f in args.family.split(",")})
    if not families or any(f not in (4, 6) for f in families):
        raise SystemExit("--family takes 4, 6 or 4,6")
    root = os.geteuid() == 0 and os.path.exists("/dev/net/tun")

    if args.profile:
        profile(args.profile, sizes, root)
        return

    if args.child:
        pure = os.environ.get("TCPIO_NO_EXTENSIONS") == "1"
        out = asyncio.run(child_main(sizes, pure, args.peer_cpu, root, families, args.only))
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
    if args.big_tcp:
        print(f"# MemoryWire bulk with BIG TCP: gso_max_size {args.big_tcp} "
              "(Python sockets over lo: the kernel's default 64 KiB)")
    print(f"# {platform.python_implementation()} {platform.python_version()}, "
          f"kernel {platform.release()}, mode {'quick' if args.quick else 'full'}, "
          f"{sizes.repeat} runs per figure and family (median and range), "
          f"families {','.join(map(str, families))} interleaved")
    print(f"# targets: bulk over TAP at MTU 1500 >= {TARGET_TAP_GBITS:g} Gbit/s each way; "
          "tcpio<->tcpio bulk >= Python sockets over kernel loopback; "
          f"IPv6 >= {TARGET_FAMILY:.0%} of IPv4 (issue 17)")
    if not root:
        print("# not root: TAP and veth figures skipped")
    sys.stdout.flush()

    t_start = time.perf_counter()
    compiled_raw = run_child(args, False, tcpio_cpu, peer_cpu)
    pure_raw = None if args.compiled_only else run_child(args, True, tcpio_cpu, peer_cpu)
    compiled = medians(compiled_raw)
    pure = medians(pure_raw) if pure_raw else {}
    ref_conns = ref_loop = ref_veth = None
    if not args.no_ref:
        ref_conns = kernel_ref.loopback_connects(sizes.ref_conns)
        ref_loop = kernel_ref.loopback_bulk(sizes.ref_bulk)
        ref_veth = kernel_ref.veth_bulk(sizes.ref_bulk) if root else None

    refs = {"conn_tap": f"kernel loopback {per_s(ref_conns).strip()}",
            "conn_wire": f"kernel loopback {per_s(ref_conns).strip()}",
            "bulk_to_tcpio": f"kernel veth MTU 1500 {gbit(ref_veth).strip()}",
            "bulk_from_tcpio": f"kernel veth MTU 1500 {gbit(ref_veth).strip()}",
            "bulk_wire": f"Python sockets loopback {gbit(ref_loop).strip()}"}
    targets = {"bulk_to_tcpio": TARGET_TAP_GBITS * 1e9 / 8,
               "bulk_from_tcpio": TARGET_TAP_GBITS * 1e9 / 8, "bulk_wire": ref_loop}
    print()
    print(f"{'measurement (median)':50} {'tcpio compiled':>16} {'tcpio pure':>16}  "
          f"{'kernel, same run':36} target")
    for name, label, _, _ in FIGURES:
        for fam in families:
            key = fig_key(name, fam)
            if key not in compiled:
                continue
            fmt = per_s if name.startswith("conn") else gbit
            c, p = compiled.get(key), pure.get(key)
            target = targets.get(name)
            verdict = ""
            if target is not None and c is not None:
                verdict = f"{'met' if c >= target else 'NOT met'} ({c / target:.1%} of target)"
            ref = refs[name] if not args.no_ref else "(--no-ref)"
            shown = label + (", IPv6" if fam == 6 else "")
            print(f"{shown:50} {fmt(c):>16} {fmt(p):>16}  {ref:36} {verdict}")
    if len(families) == 2:
        for build, raw in (("compiled", compiled_raw), ("pure", pure_raw)):
            rows = family_rows(raw) if raw else []
            if rows:
                print()
                print(f"# IPv6 beside IPv4, tcpio {build} (per-round ratio, median and range)")
                print("\n".join(rows))
    if compiled.get("compiled") != 1.0:
        print("# note: the compiled extensions were not built; both columns are pure Python")
    print(f"# total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "compiled": compiled, "pure": pure, "kernel_loopback_conns": ref_conns,
            "kernel_loopback_bulk": ref_loop, "kernel_veth_bulk": ref_veth,
            "runs": {"compiled": compiled_raw["runs"],
                     "pure": pure_raw["runs"] if pure_raw else None},
            "pinned": args.pin, "quick": args.quick}, indent=2))


if __name__ == "__main__":
    main()
