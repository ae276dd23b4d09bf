"""Shared plumbing for the TCP tests with the Linux kernel as the peer.

No tests here (pytest collects the module and finds none).  The kernel side
uses asyncio's own streams on kernel sockets created inside the namespace, so
one event loop drives both tcpio and the kernel's sockets and nothing waits on
a thread; tcpio's side uses its own ``start_server``/``open_connection``.

- ``kernel_sockets(ns, n)``: n non-blocking TCP sockets living in the namespace.
- ``kernel_connect`` / ``kernel_listener``: a kernel client or server as asyncio streams.
- ``connect_to_kernel(peer, port)``: a tcpio socket connected to a kernel socket.
- ``echo_handler``: a stream handler that reads to EOF, echoes, and closes.
- ``payload(i)``: a seeded, varied message for connection i.
- ``tcp_info(sock)``: the fields of Linux's ``struct tcp_info`` the tests read.
- ``ss(ns)``: the kernel's socket table in the namespace, ``ss -tan`` parsed.
- ``wait_until(pred)``: poll a condition with a generous timeout (no timing asserts).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from netns import NetNs

# struct tcp_info (include/uapi/linux/tcp.h): 8 bytes of u8 fields, then u32s.
_TCP_INFO = struct.Struct("8B24I")
TCP_INFO_FIELDS = ("state", "ca_state", "retransmits", "probes", "backoff", "options",
                   "wscale", "flags", "rto", "ato", "snd_mss", "rcv_mss", "unacked",
                   "sacked", "lost", "retrans", "fackets", "last_data_sent",
                   "last_ack_sent", "last_data_recv", "last_ack_recv", "pmtu",
                   "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss",
                   "reordering", "rcv_rtt", "rcv_space", "total_retrans")
TCP_ESTABLISHED = 1     # Linux state numbers (tcp_info.state)


def kernel_sockets(ns: NetNs, n: int) -> list[socket.socket]:
    """n non-blocking TCP sockets created inside the namespace (one setns thread)."""
    def make() -> list[socket.socket]:
        socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
        for s in socks:
            s.setblocking(False)
        return socks
    return ns.call(make)


async def kernel_connect(sock: socket.socket, addr: tuple[str, int], timeout: float = 20
                         ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect a namespace socket and wrap it in asyncio streams (the kernel client)."""
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, addr), timeout)
    return await asyncio.open_connection(sock=sock)


async def kernel_listener(ns: NetNs, addr: tuple[str, int], handler: Callable[..., Any],
                          backlog: int = 4096) -> asyncio.AbstractServer:
    """asyncio's own server on a kernel socket listening inside the namespace."""
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(addr)
        s.listen(backlog)
        s.setblocking(False)
        return s
    return await asyncio.start_server(handler, sock=ns.call(make), backlog=backlog)


async def connect_to_kernel(peer: Any, port: int, timeout: float = 20
                            ) -> tuple[Any, socket.socket]:
    """(tcpio socket, non-blocking kernel socket) joined by one connection: the
    kernel side accepts on ``peer.kernel_ip:port`` inside the namespace."""
    loop = asyncio.get_running_loop()

    def make_listener() -> socket.socket:
        srv = socket.socket()
        srv.bind((peer.kernel_ip, port))
        srv.listen(1)
        srv.setblocking(False)
        return srv

    srv = peer.ns.call(make_listener)
    sock = peer.stack.socket(socket.SOCK_STREAM)
    accepted = asyncio.ensure_future(loop.sock_accept(srv))
    await asyncio.wait_for(sock.connect((peer.kernel_ip, port)), timeout)
    ksock, _ = await asyncio.wait_for(accepted, timeout)
    srv.close()
    ksock.setblocking(False)
    return sock, ksock


async def echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read everything up to the peer's FIN, send it back, close."""
    try:
        data = await reader.read()
        writer.write(data)
        await writer.drain()
    finally:
        writer.close()


async def echo_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         data: bytes, timeout: float = 20) -> bytes:
    """Client half of the echo: send, half-close, read the echo to EOF, close."""
    try:
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def payload(i: int) -> bytes:
    """Message i: 1 to 4000 seeded bytes (so some need several segments)."""
    rng = random.Random(i)
    return rng.randbytes(rng.choice((1, 17, 500, 1448, 1449, 4000, rng.randrange(1, 4000))))


def tcp_info(sock: socket.socket) -> dict[str, int]:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
    return dict(zip(TCP_INFO_FIELDS, _TCP_INFO.unpack(raw.ljust(_TCP_INFO.size, b"\0"))))


def ss(ns: NetNs) -> list[tuple[str, str, str]]:
    """(state, local, peer) for each TCP socket in the namespace (``ss -tan``)."""
    out = ns.run("ss", "-tanH", check=True).stdout
    rows = []
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 5:
            rows.append((cols[0], cols[3], cols[4]))
    return rows


def kernel_mib(ns: NetNs) -> dict[str, int]:
    """The namespace kernel's counters: /proc/net/snmp ``Tcp:`` and /proc/net/netstat
    ``TcpExt:`` merged (the names ``nstat`` prints without their prefix)."""
    mib: dict[str, int] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        lines = ns.run("cat", path, check=True).stdout.splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            prefix, _, names = names.partition(":")
            if prefix in ("Tcp", "TcpExt"):
                mib.update(zip(names.split(), map(int, values.split(":")[1].split())))
    return mib


# --- tshark's judgement of a capture -------------------------------------------------------

# Flags that would mean tcpio got something wrong, whoever sent the frame:
# data acknowledged that was never sent ("ACKed unseen segment"), sequence
# gaps in a capture that lost nothing, retransmissions of what had arrived.
# (tshark 4.0 has no window-exceeded flag: window_violations() checks that.)
WRONG_ANYWHERE = ("tcp.analysis.ack_lost_segment", "tcp.analysis.lost_segment",
                  "tcp.analysis.spurious_retransmission")
# ... and on tcpio's own frames, on a clean path: it never needs to resend.
WRONG_FROM_TCPIO = ("tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
                    "tcp.analysis.out_of_order", "tcp.analysis.zero_window_probe",
                    "tcp.analysis.reused_ports")


def tshark_tcp_problems(path: str, tcpio_ip: str, *, clean_path: bool = True) -> list[str]:
    """What Wireshark's TCP dissector holds against tcpio in a capture.

    Returns offending summary lines (empty = clean): malformed frames, IPv4
    or TCP checksums that are not Good, and the analysis flags above.  The
    kernel's own retransmissions (e.g. a tail-loss probe racing our ACK) and
    our duplicate ACKs answering them are not errors and are not listed.
    """
    from .tshark import fields, matching

    problems = [f"malformed: {line}" for line in matching(path, "_ws.malformed")]
    rows = fields(path, "frame.number", "ip.checksum.status", "tcp.checksum.status",
                  display_filter="tcp")
    if not rows:
        problems.append("no TCP frames in the capture")
    for num, ipsum, tcpsum in rows:
        if ipsum.split(",")[0] != "1" or tcpsum.split(",")[0] != "1":
            problems.append(f"frame {num}: checksum status ip={ipsum} tcp={tcpsum}")
    flags = list(WRONG_ANYWHERE)
    if clean_path:
        flags += [f"({flag} && ip.src == {tcpio_ip})" for flag in WRONG_FROM_TCPIO]
    problems += [f"flagged: {line}" for line in matching(path, " || ".join(flags))]
    return problems


def window_violations(path: str) -> list[str]:
    """Segments whose data goes past the right edge of the window the receiver
    last advertised (ack + scaled window, as tshark computes them)."""
    from .tshark import fields

    edge: dict[tuple[str, str], int] = {}       # (receiver, sender) -> right edge
    bad = []
    rows = fields(path, "frame.number", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport",
                  "tcp.seq_raw", "tcp.len", "tcp.ack_raw", "tcp.window_size", "tcp.flags.ack",
                  display_filter="tcp && !icmp")
    for num, src, dst, sport, dport, seq, length, ack, win, has_ack in rows:
        me, peer = f"{src}:{sport}", f"{dst}:{dport}"
        if int(length):
            right = edge.get((peer, me))
            end = (int(seq) + int(length)) & 0xFFFFFFFF
            if right is not None and 0 < ((end - right) & 0xFFFFFFFF) < 0x80000000:
                bad.append(f"frame {num}: {me} sends up to {end}, window ends at {right}")
        if has_ack in ("1", "True") and win:
            right = (int(ack) + int(win)) & 0xFFFFFFFF
            old = edge.get((me, peer))
            # the edge never moves left in our bookkeeping (RFC 9293 3.8.6)
            if old is None or ((right - old) & 0xFFFFFFFF) < 0x80000000:
                edge[(me, peer)] = right
    return bad


def tcpio_rows(stack: Any) -> list[Any]:
    """tcpio's own ``ss -tan`` (state, local, remote, recv_q, send_q, timer)."""
    return stack.host.tcp.connections()


async def wait_until(pred: Callable[[], bool | Awaitable[bool]], timeout: float = 20,
                     step: float = 0.05) -> bool:
    """Poll ``pred`` until true or ``timeout`` (generous: the machine is shared)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = pred()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(step)
