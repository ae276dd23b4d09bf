"""``tcpio forward``: relay every TCP and UDP flow entering a TUN to where it was going.

A tun2socks-style forwarder (issue 18) on tcpio's transparent forwarders
(tcpio/forward.py): the TUN's kernel side is a network's way out (a
namespace's default route points into it); tcpio terminates each flow that
comes in and opens the same flow again through ordinary kernel sockets on
the running loop (or through a SOCKS5 proxy with ``--socks5``).

Per TCP flow: the upstream connection is made *before* the client's
handshake completes, so what the client sees is what the destination said:
a refused upstream is an RST to the client's SYN (its connect() fails with
"Connection refused"); an unreachable one (no route, host unreachable,
prohibited) is the ICMP destination unreachable a Linux router would send
for it (ip_error's codes; the client's connect() fails with "No route to
host" / "Network is unreachable"); a silent one leaves the SYN unanswered.  Then bytes are copied both ways with backpressure (read, write,
drain), EOF is propagated as a half-close (``write_eof``: shutdown(SHUT_WR)),
and a reset on either side resets the other (tcpio's ``abort()`` sends RST;
a kernel socket is reset by SO_LINGER {1, 0} and close, as Linux's
``tcp_disconnect`` on close with a zero linger).

IPv6 flows are relayed as IPv4 ones are (upstream over the host's IPv6,
or a SOCKS5 CONNECT with ATYP 4); the TUN needs no IPv6 address of
tcpio's.

Per UDP 4-tuple: a session (idle timeout ``--udp-timeout``) and a
connected kernel datagram socket to the destination; answers go back from
the original destination's address.  The upstream socket's errors go back
as the ICMP destination unreachable that says the same (icmp_err_convert
read backwards, ``udp_unreach_code``): refused -> port unreachable,
ENETUNREACH -> net unreachable, EHOSTUNREACH -> host unreachable, EACCES ->
administratively prohibited, so the client's socket gets the errno its
kernel would have got from a router.

One log line per flow when it ends (``--quiet`` turns them off), counters
at exit.  See docs/forwarding.md for the namespace set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import ipaddress
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcpio.forward import TcpForwardRequest, UdpForwardSession

COPY_CHUNK = 1 << 16
# An upstream connect()'s errno -> the ICMP destination unreachable code a
# Linux router sends for a route with that error (ip_error: EHOSTUNREACH ->
# host unreachable, ENETUNREACH -> net unreachable, EACCES -> packet
# filtered), which makes the client's own connect() fail the same way.  A
# timeout stays silence, as a black hole gives.
UNREACH_CODES = {errno.ENETUNREACH: 0, errno.EHOSTUNREACH: 1, errno.EACCES: 13}
ICMP_PORT_UNREACH = 3


def udp_unreach_code(exc: BaseException) -> int | None:
    """The ICMP destination unreachable code to give a UDP session's client
    for its upstream socket's error (icmp_err_convert read backwards):
    ECONNREFUSED (the destination's port unreachable) -> port unreachable;
    ENETUNREACH, EHOSTUNREACH, EACCES (no route, an ICMP host unreachable
    from further on, a prohibit route) -> what a router sends for them
    (UNREACH_CODES).  None: nothing to pass on (EMSGSIZE, ENOBUFS, ...)."""
    err = getattr(exc, "errno", None)
    if err == errno.ECONNREFUSED:
        return ICMP_PORT_UNREACH
    return UNREACH_CODES.get(err or 0)
# SOCKS5 replies (RFC 1928 6) that say the same
SOCKS5_ERRNO = {2: errno.EACCES, 3: errno.ENETUNREACH, 4: errno.EHOSTUNREACH}


@dataclass
class RelayCounters:
    """What ``tcpio forward`` did (printed at exit, kept for tests)."""

    tcp_flows: int = 0
    tcp_refused: int = 0
    tcp_unreachable: int = 0
    tcp_failed: int = 0
    tcp_reset: int = 0
    udp_sessions: int = 0
    bytes_up: int = 0           # client -> destination
    bytes_down: int = 0         # destination -> client
    active: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (f"tcp flows {self.tcp_flows} (refused {self.tcp_refused}, unreachable "
                f"{self.tcp_unreachable}, failed "
                f"{self.tcp_failed}, reset {self.tcp_reset}), udp sessions "
                f"{self.udp_sessions}, bytes up {self.bytes_up} down {self.bytes_down}")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: tcpio's transports reset on abort(); a kernel socket
    needs a zero linger first (SO_LINGER {1, 0})."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                counters: RelayCounters, up: bool) -> str:
    """Copy until EOF ("fin", then half-close the other side) or a reset
    ("rst", reading or writing); backpressure through drain()."""
    try:
        while True:
            data = await reader.read(COPY_CHUNK)
            if not data:
                break
            writer.write(data)
            if up:
                counters.bytes_up += len(data)
            else:
                counters.bytes_down += len(data)
            await writer.drain()
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
        return "fin"
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return "rst"
    except OSError:
        return "rst"


async def splice(client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                 counters: RelayCounters) -> tuple[str, str]:
    """Both directions until both ended; a reset in one direction resets both
    connections at once.  Returns how each direction ended (up, down)."""
    c_reader, c_writer = client
    u_reader, u_writer = upstream
    up = asyncio.ensure_future(_copy(c_reader, u_writer, counters, True))
    down = asyncio.ensure_future(_copy(u_reader, c_writer, counters, False))
    pending = {up, down}
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(t.result() == "rst" for t in done):
                _reset(c_writer)
                _reset(u_writer)
                for t in pending:
                    t.cancel()
                break
    finally:
        for t in (up, down):
            if not t.done():
                t.cancel()
    ends = tuple(t.result() if t.done() and not t.cancelled() else "rst" for t in (up, down))
    if ends == ("fin", "fin"):
        for w in (c_writer, u_writer):
            w.close()
        for w in (c_writer, u_writer):
            with contextlib.suppress(OSError):
                await w.wait_closed()
    return ends[0], ends[1]


async def socks5_connect(proxy: tuple[str, int], host: str, port: int,
                         open_connection: Any = asyncio.open_connection
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """CONNECT through a SOCKS5 proxy (RFC 1928, no authentication).  A
    "connection refused" reply (REP 5) raises ConnectionRefusedError."""
    reader, writer = await open_connection(*proxy)
    try:
        writer.write(b"\x05\x01\x00")
        if await reader.readexactly(2) != b"\x05\x00":
            raise ConnectionError("SOCKS5 proxy wants authentication")
        addr = ipaddress.ip_address(host)
        atyp = b"\x01" if addr.version == 4 else b"\x04"
        writer.write(b"\x05\x01\x00" + atyp + addr.packed + port.to_bytes(2, "big"))
        head = await reader.readexactly(4)
        if head[1] != 0:
            if head[1] == 5:
                raise ConnectionRefusedError(f"SOCKS5: {host}:{port} refused")
            if head[1] in SOCKS5_ERRNO:
                err = SOCKS5_ERRNO[head[1]]
                raise OSError(err, f"SOCKS5: {host}:{port}: {os.strerror(err)}")
            raise ConnectionError(f"SOCKS5 reply {head[1]}")
        await reader.readexactly({1: 4, 4: 16}.get(head[3], 0) + 2)
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer


class Relay:
    """The forwarder's application: what each request and session does."""

    def __init__(self, *, connect_timeout: float = 10.0, socks5: tuple[str, int] | None = None,
                 log: Any = None, open_connection: Any = None,
                 create_datagram_endpoint: Any = None) -> None:
        # how upstream connections and UDP sockets are made: asyncio's (kernel
        # sockets) unless given (a test passes another tcpio stack's)
        self.open_connection = open_connection or asyncio.open_connection
        self.create_datagram_endpoint = create_datagram_endpoint
        self.connect_timeout = connect_timeout
        self.socks5 = socks5
        self.log = log              # a callable taking one line, or None
        self.counters = RelayCounters()

    def _log(self, text: str) -> None:
        if self.log is not None:
            self.log(text)

    async def _open(self, host: str, port: int
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.socks5 is not None:
            coro = socks5_connect(self.socks5, host, port, self.open_connection)
        else:
            coro = self.open_connection(host, port)
        return await asyncio.wait_for(coro, self.connect_timeout)

    async def tcp(self, req: TcpForwardRequest) -> None:
        c = self.counters
        host, port = req.sockname[:2]
        flow = f"tcp {_hostport_str(req.peername)} -> {_hostport_str(req.sockname)}"
        t0 = time.monotonic()
        try:
            upstream = await self._open(host, port)
        except ConnectionRefusedError:
            c.tcp_refused += 1
            req.refuse()
            self._log(f"{flow} refused")
            return
        except (OSError, asyncio.TimeoutError) as exc:
            code = UNREACH_CODES.get(getattr(exc, "errno", None) or 0)
            if code is not None:
                # what a router that cannot reach the destination sends
                c.tcp_unreachable += 1
                req.unreachable(code)
                self._log(f"{flow} unreachable: {exc}")
                return
            c.tcp_failed += 1
            name = type(exc).__name__
            c.errors[name] = c.errors.get(name, 0) + 1
            req.drop()
            self._log(f"{flow} failed: {exc or name}")
            return
        try:
            client = await req.accept()
        except OSError as exc:
            c.tcp_failed += 1
            _reset(upstream[1])
            self._log(f"{flow} handshake failed: {exc}")
            return
        c.tcp_flows += 1
        c.active += 1
        up0, down0 = c.bytes_up, c.bytes_down
        try:
            ends = await splice(client, upstream, c)
        finally:
            c.active -= 1
        if "rst" in ends:
            c.tcp_reset += 1
        # (bytes of concurrent flows interleave in the totals; per flow:)
        self._log(f"{flow} {ends[0]}/{ends[1]} up {c.bytes_up - up0} down "
                  f"{c.bytes_down - down0} in {time.monotonic() - t0:.3f}s")

    async def udp(self, session: UdpForwardSession) -> None:
        c = self.counters
        c.udp_sessions += 1
        host, port = session.sockname[:2]
        create = self.create_datagram_endpoint or \
            asyncio.get_running_loop().create_datagram_endpoint
        flow = f"udp {_hostport_str(session.peername)} -> {_hostport_str(session.sockname)}"

        class Upstream(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                c.bytes_down += len(data)
                if not session.closed:
                    with contextlib.suppress(OSError):
                        session.send(data)

            def error_received(self, exc: Exception) -> None:
                # the destination's port unreachable, or a router's
                # unreachable on the way: passed on to the client as the ICMP
                # it would have had from that router
                code = udp_unreach_code(exc)
                if code is not None and not session.closed:
                    session.unreachable(code)

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            transport, _ = await create(Upstream, remote_addr=(host, port), family=family)
        except OSError as exc:
            # connect() found no route (or a prohibit one): the client hears
            # it as from a router without that route, quoting its datagram
            code = udp_unreach_code(exc)
            if code is not None and code != ICMP_PORT_UNREACH:
                session.unreachable(code)
            self._log(f"{flow} failed: {exc}")
            session.close()
            return
        n = 0
        try:
            while (data := await session.recv()) is not None:
                n += 1
                c.bytes_up += len(data)
                transport.sendto(data)
        finally:
            transport.close()
        self._log(f"{flow} ended ({n} datagrams up)")


def _hostport_str(name: tuple[Any, ...]) -> str:
    """'10.0.0.1:80' or '[fd00::1]:80' (a socket address for a log line)."""
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tun", required=True, metavar="NAME", help="TUN interface to create "
                   "(or attach to); its kernel side is where the flows come from")
    p.add_argument("--netns", metavar="NS", help="move the TUN into this named network "
                   "namespace (`ip netns add NS`) once it is open; configure it there")
    p.add_argument("--address", metavar="A/N", help="tcpio's own address on the TUN "
                   "(optional: flows to any other address are forwarded)")
    p.add_argument("--mtu", type=int, default=1500)
    p.add_argument("--socks5", type=_hostport, metavar="HOST:PORT",
                   help="open TCP flows through this SOCKS5 proxy instead of directly")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="S")
    p.add_argument("--udp-timeout", type=float, default=60.0, metavar="S",
                   help="end a UDP session after this many idle seconds (default 60)")
    p.add_argument("--max-connections", type=int, default=65536)
    p.add_argument("--max-pending", type=int, default=1024)
    p.add_argument("--duration", type=float, default=0.0,
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--quiet", action="store_true", help="no per-flow log lines")
    p.add_argument("--answer-ping", action="store_true",
                   help="answer ICMP echo to every address (from that address) "
                   "instead of dropping it")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop")


async def _wait_for_stop(duration: float) -> str | None:
    """Until SIGINT/SIGTERM (its name) or ``duration`` seconds (None)."""
    import signal

    loop = asyncio.get_running_loop()
    stopped: asyncio.Future[str] = loop.create_future()
    installed = []

    def on_signal(sig: signal.Signals) -> None:
        if not stopped.done():
            stopped.set_result(sig.name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    try:
        return await asyncio.wait_for(stopped, duration or None)
    except asyncio.TimeoutError:
        return None
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run_forward(args: argparse.Namespace) -> int:
    import subprocess

    import tcpio

    if os.geteuid() != 0:
        print("tcpio forward needs root (it opens /dev/net/tun)", file=sys.stderr)
        return 2
    try:
        tun = tcpio.TunDevice(args.tun, mtu=args.mtu)
    except OSError as exc:
        print(f"tcpio forward: cannot open TUN {args.tun!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    if args.netns:
        proc = await asyncio.create_subprocess_exec(
            "ip", "link", "set", tun.name, "netns", args.netns,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode:
            print(f"tcpio forward: cannot move {tun.name} into {args.netns}: "
                  f"{err.decode(errors='replace').strip()}", file=sys.stderr)
            tun.stop()
            return 1

    def log(line: str) -> None:
        print(line, flush=True)

    relay = Relay(connect_timeout=args.connect_timeout, socks5=args.socks5,
                  log=None if args.quiet else log)
    async with tcpio.Stack(name="tcpio-forward") as stack:
        ifindex = stack.add_interface(tun, args.address)
        # every destination is reached back through the TUN, in both families
        stack.add_route("0.0.0.0/0", ifindex=ifindex)
        stack.add_route("::/0", ifindex=ifindex)
        tcp = stack.set_tcp_forwarder(relay.tcp, ifindex, max_connections=args.max_connections,
                                      max_pending=args.max_pending)
        udp = stack.set_udp_forwarder(relay.udp, ifindex, idle_timeout=args.udp_timeout)
        if args.answer_ping:
            stack.set_icmp_echo_any(ifindex)
        where = f" (in namespace {args.netns})" if args.netns else ""
        via = f" via SOCKS5 {args.socks5[0]}:{args.socks5[1]}" if args.socks5 else ""
        print(f"tcpio forwarding TCP and UDP from TUN {tun.name}{where}{via}", flush=True)
        stopped_by = await _wait_for_stop(args.duration)
        print(f"tcpio forward: stopped{f' by {stopped_by}' if stopped_by else ''}; "
              f"{relay.counters.line()}", flush=True)
        stats = {**tcp.stats, **udp.stats}
        print("tcpio forward: " + ", ".join(f"{k} {v}" for k, v in stats.items() if v),
              flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    if args.uvloop:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        return asyncio.run(run_forward(args))
    except KeyboardInterrupt:
        return 130
