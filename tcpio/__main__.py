"""The ``tcpio`` command (also ``python -m tcpio``).

``tcpio demo`` (the default; no root needed): an in-memory network.  One
server host is joined to each client host by its own MemoryWire (a star:
the server has one interface per wire), with optional loss, delay,
reordering and a rate limit on every wire.  The server speaks HTTP (aiohttp
when installed, else tcpio's built-in HTTP/1.1), the clients fetch
``/bytes/SIZE`` over keep-alive connections, a progress line runs while they
do, and a summary follows: throughput, requests, latency, retransmissions,
RTT, the server's connection table and the MIB counters that moved.

``tcpio serve --tap NAME --address A/N`` (root): serve HTTP (or echo with
``--echo``) on a TAP interface, so the kernel side can ``curl`` it.

Examples::

    tcpio                                   # demo with defaults (a few seconds)
    tcpio demo --loss 0.02 --delay 0.005 --reorder 0.01 --pcap demo.pcap
    tcpio demo --clients 3 --concurrency 8 --size 1000000 --duration 10
    sudo tcpio serve --tap tap0 --address 10.0.0.2/24

Input errors (a loss of 2, a negative size, an address without its prefix
length...) are argparse usage errors: the usage line, one message, exit 2.
A TAP that cannot be opened (busy, missing permission) is one line on
stderr and exit 1.  SIGINT (Ctrl-C) and SIGTERM stop ``demo`` and ``serve``
the way the end of ``--duration`` does: the summary, the pcap closed after
its last whole record, exit status as for a normal end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import math
import os
import signal
import statistics
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import tcpio
from tcpio.contrib import http11
from tcpio.core.addr import ip_aton

if TYPE_CHECKING:
    from tcpio.stack import Stack

# --- stopping on SIGINT / SIGTERM -----------------------------------------------


class Stop:
    """Set by SIGINT or SIGTERM while ``demo`` or ``serve`` runs."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.signal: str | None = None

    def __call__(self, sig: signal.Signals) -> None:
        if self.signal is None:
            self.signal = sig.name
            print(f"\ntcpio: {sig.name}, stopping", file=sys.stderr, flush=True)
        self.event.set()

    async def run(self, aw: Awaitable[Any]) -> bool:
        """Await ``aw`` unless a signal comes first (then cancel it); True if stopped."""
        task = asyncio.ensure_future(aw)
        waiter = asyncio.ensure_future(self.event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            task.result()
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True


@contextlib.contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """SIGINT and SIGTERM set the returned ``Stop`` instead of killing us, so the
    caller can finish: print its summary, close its pcap.  Off the main thread
    (where a loop cannot take signals) nothing is installed."""
    loop = asyncio.get_running_loop()
    stop = Stop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop, sig)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# --- demo ------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients did, for the progress line and the summary."""

    requests: int = 0
    failures: int = 0
    bytes: int = 0
    latencies: list[float] = field(default_factory=list)
    srtts: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, exc: BaseException) -> None:
        self.failures += 1
        name = type(exc).__name__
        self.errors[name] = self.errors.get(name, 0) + 1


class HttpServer(Protocol):
    """What ``start_http_server`` returns."""

    kind: str

    async def close(self) -> None: ...


async def start_http_server(stack: Stack, host: str | None, port: int,
                            use_aiohttp: bool) -> HttpServer:
    """aiohttp on the stack if available (and wanted), else the built-in server."""
    if use_aiohttp:
        try:
            from aiohttp import web

            from tcpio.contrib.aiohttp import TcpioSite
        except ImportError:
            use_aiohttp = False
    if use_aiohttp:
        async def data(request: web.Request) -> web.StreamResponse:
            status, body, n = http11.body_for(request.path)
            if body is not None:
                return web.Response(status=status, body=body)
            resp = web.StreamResponse(status=status)
            resp.content_length = n
            await resp.prepare(request)
            for chunk in http11.pattern_chunks(n):
                await resp.write(chunk)
            return resp

        app = web.Application()
        app.router.add_get("/{tail:.*}", data)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await TcpioSite(runner, stack, host, port).start()

        class AiohttpServer:
            kind = "aiohttp"

            async def close(self) -> None:
                await runner.cleanup()

        return AiohttpServer()

    server = await stack.start_server(http11.handle, host, port)

    class BuiltinServer:
        kind = "built-in HTTP/1.1"

        async def close(self) -> None:
            server.close()
            server.close_clients()
            await server.wait_closed()

    return BuiltinServer()


async def client_worker(stack: Stack, server_ip: str, port: int, path: str, tally: Tally,
                        deadline: float, budget: list[int], per_connection: int) -> None:
    """Fetch ``path`` over keep-alive connections until time or budget runs out."""
    loop = asyncio.get_running_loop()
    while loop.time() < deadline and budget[0] > 0:
        try:
            reader, writer = await stack.open_connection(server_ip, port)
        except OSError as exc:
            tally.error(exc)
            await asyncio.sleep(0.05)
            continue
        try:
            for _ in range(per_connection):
                if loop.time() >= deadline or budget[0] <= 0:
                    break
                budget[0] -= 1
                t0 = loop.time()
                status, body = await http11.get(reader, writer, path, host=server_ip)
                if status != 200:
                    tally.failures += 1
                    continue
                tally.requests += 1
                tally.bytes += len(body)
                tally.latencies.append(loop.time() - t0)
            srtt = getattr(writer.get_extra_info("tcp_sock"), "srtt", None)
            if srtt:
                tally.srtts.append(srtt)
        except (OSError, asyncio.IncompleteReadError) as exc:
            tally.error(exc)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} GB"


def total_mib(stacks: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for st in stacks:
        for k, v in st.host.mib.snapshot().items():
            out[k] = out.get(k, 0) + v
    return out


async def progress(tally: Tally, stacks: list[Any], started: float, stream: Any,
                   interval: float) -> None:
    loop = asyncio.get_running_loop()
    tty = stream.isatty()
    last_print = 0.0
    while True:
        await asyncio.sleep(interval)
        elapsed = loop.time() - started
        retrans = total_mib(stacks).get("RetransSegs", 0)
        rtt = f"{statistics.median(tally.srtts) * 1000:.2f} ms" if tally.srtts else "-"
        line = (f"[{elapsed:5.1f}s] {tally.requests} requests, {fmt_bytes(tally.bytes)}, "
                f"{fmt_bytes(tally.bytes / max(elapsed, 1e-9))}/s, "
                f"retrans {retrans}, srtt {rtt}")
        if tty:
            stream.write("\r" + line.ljust(90))
            stream.flush()
        elif elapsed - last_print >= 1.0:       # a log, not a terminal: one line a second
            stream.write(line + "\n")
            stream.flush()
            last_print = elapsed


async def run_demo(args: argparse.Namespace) -> int:
    out = sys.stdout
    stacks: list[Any] = []
    server_stack = tcpio.Stack(seed=args.seed, name="server")
    stacks.append(server_stack)
    client_stacks = []
    pcap_dev = None
    plot_devs: list[Any] = []
    for k in range(1, args.clients + 1):
        wire = tcpio.MemoryWire(loss=args.loss, delay=args.delay, reorder=args.reorder,
                                rate=args.rate, seed=args.seed * 100 + k * 2,
                                names=(f"srv-eth{k}", f"cli{k}-eth0"))
        server_end: Any = wire.a
        if args.pcap and k == 1:
            pcap_dev = server_end = tcpio.PcapDevice(wire.a, args.pcap)
        elif args.plot:
            os.makedirs(args.plot, exist_ok=True)
            server_end = tcpio.PcapDevice(wire.a, os.path.join(args.plot, f"wire{k}.pcap"))
            plot_devs.append(server_end)
        server_stack.add_interface(server_end, f"10.0.{k}.1/24")
        client = tcpio.Stack(seed=args.seed * 100 + k, name=f"client{k}")
        client.add_interface(wire.b, f"10.0.{k}.2/24")
        client_stacks.append(client)
        stacks.append(client)

    port = 80
    server = await start_http_server(server_stack, None, port, not args.builtin_http)
    impair = ", ".join(f"{name} {val}" for name, val in
                       (("loss", args.loss), ("delay", args.delay),
                        ("reorder", args.reorder), ("rate", args.rate)) if val) or "none"
    print(f"tcpio demo: server 10.0.x.1:{port} ({server.kind}), {args.clients} client hosts "
          f"x {args.concurrency} connections, GET /bytes/{args.size}, impairment: {impair}",
          file=out)

    mib_before = total_mib(stacks)
    tally = Tally()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + args.duration
    budget = [args.requests if args.requests > 0 else 1 << 62]
    path = f"/bytes/{args.size}"
    workers = [asyncio.create_task(client_worker(
        client, f"10.0.{k}.1", port, path, tally, deadline, budget, args.per_connection))
        for k, client in enumerate(client_stacks, 1) for _ in range(args.concurrency)]
    ticker = asyncio.create_task(progress(tally, stacks, started, sys.stderr, 0.25))
    conn_table: list[Any] = []
    try:
        with stop_on_signals() as stop:
            # Snapshot the connection table mid-run, while connections are open.
            if not await stop.run(asyncio.sleep(min(args.duration / 2, 1.0))):
                conn_table = server_stack.connections()
                await stop.run(asyncio.gather(*workers))
    finally:
        ticker.cancel()
        for w in workers:
            w.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    elapsed = loop.time() - started
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    await server.close()
    mib_moved = {k: v - mib_before.get(k, 0) for k, v in total_mib(stacks).items()
                 if v != mib_before.get(k, 0)}
    for st in stacks:
        st.close()
    if pcap_dev is not None:
        with contextlib.suppress(Exception):
            pcap_dev.writer.close()

    print_summary(out, args, tally, elapsed, mib_moved, conn_table)
    if args.plot:
        from tcpio.plot import demo_plots
        for dev in plot_devs:
            dev.writer.close()
        pcaps = [d.writer.path for d in plot_devs] + ([args.pcap] if pcap_dev else [])
        print(f"\n  plots: {len(demo_plots(pcaps, args.plot))} figures in {args.plot}", file=out)
    return 0 if tally.requests > 0 else 1


def print_summary(out: Any, args: argparse.Namespace, tally: Tally, elapsed: float,
                  mib_moved: dict[str, int], conn_table: list[Any]) -> None:
    p = print
    p("", file=out)
    p(f"  elapsed        {elapsed:.2f} s", file=out)
    p(f"  requests       {tally.requests} ok, {tally.failures} failed"
      f" ({tally.requests / max(elapsed, 1e-9):.0f} req/s)", file=out)
    if tally.errors:
        p(f"  errors         {tally.errors}", file=out)
    p(f"  transferred    {fmt_bytes(tally.bytes)} "
      f"({fmt_bytes(tally.bytes / max(elapsed, 1e-9))}/s, "
      f"{tally.bytes * 8 / max(elapsed, 1e-9) / 1e6:.1f} Mbit/s)", file=out)
    if tally.latencies:
        lat = sorted(tally.latencies)
        p(f"  latency        p50 {lat[len(lat) // 2] * 1000:.2f} ms, "
          f"p99 {lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000:.2f} ms", file=out)
    if tally.srtts:
        p(f"  srtt           median {statistics.median(tally.srtts) * 1000:.3f} ms "
          f"over {len(tally.srtts)} connections", file=out)
    p(f"  retransmitted  {mib_moved.get('RetransSegs', 0)} segments "
      f"of {mib_moved.get('OutSegs', 0)} sent", file=out)
    if conn_table:
        p("\n  server connections (mid-run, like ss -tan):", file=out)
        p(f"    {'State':<11}{'Recv-Q':>7}{'Send-Q':>8}  {'Local':<20}{'Peer':<20}Timer",
          file=out)
        for row in conn_table[:12]:
            p(f"    {row.state:<11}{row.recv_q:>7}{row.send_q:>8}  {row.local:<20}"
              f"{row.remote:<20}{row.timer}", file=out)
        if len(conn_table) > 12:
            p(f"    ... {len(conn_table) - 12} more", file=out)
    if mib_moved:
        from tcpio.core.mib import describe
        p("\n  MIB counters that moved (all hosts; `tcpio info --counters` lists all):",
          file=out)
        width = max(len(k) for k in mib_moved)
        for k, v in sorted(mib_moved.items()):
            p(f"    {k:<{width}} {v:>9}  {describe(k)}", file=out)
    if args.pcap:
        p(f"\n  capture of the first wire (server side): {args.pcap}", file=out)


# --- serve -----------------------------------------------------------------------


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


def kernel_side_commands(args: argparse.Namespace) -> list[str]:
    """The commands that give the kernel its end of the TAP (run in the same netns)."""
    ip_text, _, plen = args.address.partition("/")
    peer = args.peer or _peer_address(ip_text)
    url = f"http://{ip_text}:{args.port}/" if not args.echo else None
    return [
        f"ip addr add {peer}/{plen or 24} dev {args.tap}",
        f"ip link set {args.tap} up",
        f"curl {url}bytes/1000000 -o /dev/null" if url else f"nc {ip_text} {args.port}",
    ]


def _peer_address(ip_text: str) -> str:
    parts = ip_text.split(".")
    last = int(parts[-1])
    parts[-1] = str(1 if last != 1 else 2)
    return ".".join(parts)


def open_tap(args: argparse.Namespace) -> Any:
    """The TAP device, or None after one line on stderr saying why not."""
    try:
        return tcpio.TapDevice(args.tap, mtu=args.mtu, syn_queue=args.syn_queue)
    except OSError as exc:
        why = exc.strerror or str(exc)
        hint = {errno.EBUSY: " (another process has it open: is a tcpio or a VM "
                             "already using it?)",
                errno.EPERM: " (tcpio serve needs root or CAP_NET_ADMIN)",
                errno.EINVAL: " (is it a TUN device, or is the MTU too large?)"}
        print(f"tcpio serve: cannot open TAP {args.tap!r}: {why}{hint.get(exc.errno or 0, '')}",
              file=sys.stderr)
        return None


async def start_serving(stack: Stack, args: argparse.Namespace) -> Callable[[], Awaitable[None]]:
    """Start ``serve``'s server (echo or HTTP) on ``stack`` and print what it is
    and the kernel side's commands; returns the server's close."""
    ip_text = args.address.partition("/")[0]
    if args.echo:
        srv = await stack.start_server(echo, ip_text, args.port)

        async def close() -> None:
            srv.close()

        what = "echo"
    else:
        server = await start_http_server(stack, ip_text, args.port, not args.builtin_http)
        close = server.close
        what = f"HTTP ({server.kind})"
    print(f"tcpio serving {what} on {ip_text}:{args.port} via TAP {args.tap}", flush=True)
    print("Kernel side (as root, in the namespace that holds the TAP, e.g. after "
          "`unshare -n`):", flush=True)
    for cmd in kernel_side_commands(args):
        print(f"    {cmd}", flush=True)
    return close


async def run_serve(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("tcpio serve needs root (it opens /dev/net/tun)", file=sys.stderr)
        return 2
    device: Any = open_tap(args)
    if device is None:
        return 1
    stack = tcpio.Stack(name="tcpio-serve")
    if args.pcap:
        device = tcpio.PcapDevice(device, args.pcap)
    stack.add_interface(device, args.address)
    if args.gateway:
        stack.add_route("0.0.0.0/0", via=args.gateway)
    # The handlers go in before the server can answer anyone: a client that
    # is served (the kernel side is configured below, while the loop runs)
    # and then sends SIGTERM must find them, or the default action kills us
    # without a summary ("Terminated"), which test_serve_on_tap_answers_curl
    # hit when curl finished before the handlers were installed.
    with stop_on_signals() as stop:
        close = await start_serving(stack, args)
        try:
            if args.configure:
                for cmd in kernel_side_commands(args)[:2]:
                    proc = await asyncio.create_subprocess_exec(*cmd.split())
                    await proc.wait()
                print("kernel side configured", flush=True)
            await stop.run(asyncio.sleep(args.duration) if args.duration
                           else asyncio.Event().wait())
        finally:
            await close()
            stack.close()
        stopped_by = stop.signal
    mib = stack.host.mib.snapshot()
    print(f"tcpio serve: stopped{f' by {stopped_by}' if stopped_by else ''}; "
          f"{mib.get('PassiveOpens', 0)} connections accepted, "
          f"{mib.get('InSegs', 0)} segments in, {mib.get('OutSegs', 0)} out", flush=True)
    if args.pcap:
        print(f"capture: {args.pcap}", flush=True)
    return 0


# --- command line ----------------------------------------------------------------
# argparse ``type=`` checkers: a bad value is an ArgumentTypeError, which
# argparse turns into "usage: ...  error: argument --loss: ..." and exit 2.


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def probability(text: str) -> float:
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability (0 to 1)")
    return value


def int_at_least(low: int) -> Any:
    def check(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is less than {low}")
        return value
    check.__name__ = f"integer >= {low}"
    return check


def int_between(low: int, high: int) -> Any:
    def check(text: str) -> int:
        value = _number(text, int)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not in {low}..{high}")
        return value
    check.__name__ = f"integer in {low}..{high}"
    return check


def seconds(*, positive: bool) -> Any:
    def check(text: str) -> float:
        value = _number(text, float)
        if value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(
                f"{text} is not {'more than 0' if positive else '0 or more'} seconds")
        return value
    check.__name__ = "seconds"
    return check


def positive_rate(text: str) -> float:
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a rate above 0 bytes/second")
    return value


def ipv4(text: str) -> str:
    """A dotted-quad address (what ``ip addr`` takes), as the stack parses it."""
    try:
        ip_aton(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None
    return text


def ipv4_prefix(text: str) -> str:
    """A/N: an address and its prefix length, both required (the stack needs
    N to know the subnet; a bare address would silently be a /32)."""
    addr, slash, plen = text.partition("/")
    if not slash:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no prefix length (write it as A/N, e.g. {text}/24)")
    ipv4(addr)
    if not plen.isdigit() or not 0 <= int(plen) <= 32:
        raise argparse.ArgumentTypeError(f"{text!r}: the prefix length must be 0..32")
    return text


def tap_name(text: str) -> str:
    if not 1 <= len(text.encode()) <= 15 or "/" in text or text.strip() != text:
        raise argparse.ArgumentTypeError(f"{text!r} is not an interface name (1..15 bytes)")
    return text



def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tcpio", description="tcpio: a userspace TCP/IP stack "
                                "for asyncio.  Without a subcommand, runs the demo.")
    from tcpio import info
    p.add_argument("--version", action="version",
                   version=f"tcpio {tcpio.__version__} ({info.build_summary()})")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--uvloop", action="store_true", help="run on uvloop")
    sub = p.add_subparsers(dest="command")

    d = sub.add_parser("demo", parents=[common],
                       help="HTTP over an in-memory network (default; no root)")
    # the server's interfaces are 10.0.K.1/24, K = 1..clients: at most 255
    d.add_argument("--clients", type=int_between(1, 255), default=2,
                   help="client hosts, 1..255 (default 2)")
    d.add_argument("--concurrency", type=int_at_least(1), default=4,
                   help="connections per client host (default 4)")
    d.add_argument("--size", type=int_at_least(0), default=100_000,
                   help="response size in bytes")
    d.add_argument("--per-connection", type=int_at_least(1), default=10,
                   help="requests per keep-alive connection (default 10)")
    d.add_argument("--duration", type=seconds(positive=True), default=3.0,
                   help="seconds to run (default 3)")
    d.add_argument("--requests", type=int_at_least(0), default=0,
                   help="stop after this many requests (default: no limit)")
    d.add_argument("--loss", type=probability, default=0.0,
                   help="loss probability per frame, 0..1")
    d.add_argument("--delay", type=seconds(positive=False), default=0.0,
                   help="one-way delay, seconds")
    d.add_argument("--reorder", type=probability, default=0.0,
                   help="reorder probability, 0..1")
    d.add_argument("--rate", type=positive_rate, default=None, help="rate limit, bytes/second")
    d.add_argument("--seed", type=int_at_least(0), default=1,
                   help="seed for impairments and ISNs")
    d.add_argument("--pcap", metavar="FILE", help="capture the first wire to FILE")
    d.add_argument("--builtin-http", action="store_true",
                   help="use the built-in HTTP server even if aiohttp is installed")
    d.add_argument("--plot", metavar="DIR", help="capture every wire and draw each "
                   "connection's time-sequence graph into DIR (tcpio plot; needs matplotlib)")

    s = sub.add_parser("serve", parents=[common],
                       help="serve HTTP or echo on a TAP interface (root)")
    s.add_argument("--tap", required=True, type=tap_name, metavar="NAME",
                   help="TAP interface name")
    s.add_argument("--address", required=True, type=ipv4_prefix, metavar="A/N",
                   help="tcpio's address/prefix")
    s.add_argument("--peer", type=ipv4,
                   help="the kernel's address on the TAP (default: .1 or .2)")
    s.add_argument("--gateway", type=ipv4, help="default route via this address")
    s.add_argument("--port", type=int_between(1, 65535), default=80)
    # 68: the IPv4 minimum MTU (RFC 791); 65521: what Linux's tun takes
    s.add_argument("--mtu", type=int_between(68, 65521), default=1500)
    s.add_argument("--echo", action="store_true", help="TCP echo instead of HTTP")
    s.add_argument("--syn-queue", action=argparse.BooleanOptionalAction, default=None,
                   help="a second TAP queue the kernel steers SYNs to (eBPF), so a SYN "
                        "flood cannot crowd out established connections (default: on "
                        "when tcpio creates the TAP, as it was made when it exists)")
    s.add_argument("--builtin-http", action="store_true")
    s.add_argument("--pcap", metavar="FILE")
    s.add_argument("--configure", action="store_true",
                   help="also run the two `ip` commands for the kernel side")
    s.add_argument("--duration", type=seconds(positive=False), default=0.0,
                   help="stop after this many seconds (default: run until Ctrl-C)")

    from tcpio import relay
    relay.add_arguments(sub.add_parser("forward", help="relay every TCP and UDP flow "
                                       "entering a TUN to its destination (root)"))

    from tcpio.plot import add_arguments as add_plot_arguments
    add_plot_arguments(sub.add_parser("plot", help="time-sequence and cwnd/RTT graphs of "
                                      "TCP connections from a pcap or a tcpio trace"))
    from tcpio.packetdrill.cli import add_arguments
    add_arguments(sub.add_parser("packetdrill", help="run packetdrill scripts against tcpio "
                                 "on virtual time (no root)"))
    info.add_arguments(sub.add_parser("info", help="which build runs (compiled or pure); "
                                      "--counters: what each counter means"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["demo", *argv]          # demo is the default subcommand
    args = p.parse_args(argv)
    if args.command == "plot":
        from tcpio.plot import run as run_plot
        return run_plot(args)
    if args.command == "packetdrill":
        from tcpio.packetdrill.cli import run as run_packetdrill
        return run_packetdrill(args)
    if args.command == "forward":
        from tcpio.relay import run as run_relay
        return run_relay(args)
    if args.command == "info":
        from tcpio.info import run as run_info
        return run_info(args)
    run = run_demo if args.command == "demo" else run_serve
    loop_factory = None
    if args.uvloop:
        import uvloop
        loop_factory = uvloop.new_event_loop
    try:
        if sys.version_info >= (3, 11):
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                return runner.run(run(args))
        # Python 3.10 has no asyncio.Runner: the loop comes from the policy.
        if args.uvloop:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
