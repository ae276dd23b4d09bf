"""Run a packetdrill script against a fresh tcpio stack on virtual time.

The stack is a sans-IO ``Host`` with one "ip" link (a tun device: whole IP
datagrams, no ARP or ND) at packetdrill's addresses: local 192.168.0.1/16 (what
Linux's selftests pass with --local_ip; packetdrill alone picks a random address
in 192.168.0.0/16), remote 192.0.2.1, server port 8080.  ``--ip_version`` is
packetdrill's: ``ipv4`` (the default), ``ipv6`` (IPv6 on the wire, AF_INET6
sockets, local fd3d:a0b:17d6::1/64 and remote fd3d:fa7b:d17d::1 unless
--local_ip/--remote_ip say otherwise) or ``ipv4-mapped-ipv6`` (IPv4 on the
wire, AF_INET6 sockets reaching it through ::ffff:a.b.c.d).  The runner plays the remote end: inbound script
packets are mapped onto the live connection (sequence numbers, ports, TS ecr)
and injected; outbound ones are compared with what the stack sent, by
packetdrill's rules (run_packet.c, read for the rules, code written here):

- seq/ack/SACK are relative to the ISNs: a SYN's script seq stands for the
  live ISN, any other segment's seq counts from it (script 1 = ISN + 1); the
  remote's ISN is the script's own number.
- flags, seq, ack, window (when the script gives ``win``), urgent pointer,
  the option list (kinds in order, values except TS; TS val only with
  ``--tcp_ts_tick_usecs``; ``<...>`` skips options), payload length; a script
  packet bigger than one live segment matches consecutive live segments
  (TSO/GSO aggregation, off with ``--strict_segments``).
- the time: within ``--tolerance_usecs`` (default 4000) or
  ``--tolerance_percent`` (12.5) of the interval since the last event.

System calls run on the core TcpSock directly.  A call on a blocking socket
that would block runs the clock until it completes (as the kernel would, with
the script stalled), unless the script marks it ``...T``: then it runs in the
background while later events proceed, and must return at T.
"""

from __future__ import annotations

import errno as _errno
import os
import select
import socket as _socket
import struct
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.host import Host
from tcpio.core.ipv6 import V4MAPPED_PREFIX
from tcpio.core.settings import Settings
from tcpio.core.tcp import sock as _tcpsock
from tcpio.core.tcp.sock import TcpSock
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_LISTEN,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
)

from . import ast, shell, sysctl, tcpinfo
from .lexer import ScriptError
from .packets import (
    ACK,
    AE,
    CWR,
    ECE,
    FIN,
    OPT_SACK,
    OPT_TS,
    PSH,
    RST,
    SYN,
    URG,
    Option,
    TcpSegment,
    flag_bits,
    format_script_packet,
    format_segment,
    parse_ip_tcp,
    script_option,
)
from .parser import parse_file

START = 100.0            # the virtual clock's reading when a script starts
MAX_BLOCK = 3600.0       # virtual seconds a blocking call may run the clock
SNIFF_SLACK = 2.0        # packetdrill waits this long past the expected time

# Symbols scripts use that Python's modules may lack (Linux values).
EXTRA_SYMBOLS = {
    "SOL_TCP": 6, "SOL_IP": 0, "SOL_SOCKET": 1, "TCP_NOTSENT_LOWAT": 25, "TCP_CORK": 3,
    "TCP_INFO": 11, "TCP_INQ": 36, "TCP_CM_INQ": 36, "TCP_FASTOPEN": 23,
    "TCP_FASTOPEN_CONNECT": 30, "TCP_USER_TIMEOUT": 18, "TCP_CONGESTION": 13,
    "TCP_MAXSEG": 2, "TCP_NODELAY": 1, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6, "TCP_SAVE_SYN": 27, "TCP_ZEROCOPY_RECEIVE": 35,
    "SO_ZEROCOPY": 60, "SO_MAX_PACING_RATE": 47, "SO_TIMESTAMPING": 37,
    "SIOCINQ": 0x541B, "SIOCOUTQ": 0x5411, "SIOCOUTQNSD": 0x894B, "FIONREAD": 0x541B,
    "FIONBIO": 0x5421, "MSG_MORE": 0x8000, "MSG_EOR": 0x80, "MSG_ZEROCOPY": 0x4000000,
    "MSG_FASTOPEN": 0x20000000, "MSG_DONTWAIT": 0x40, "MSG_PEEK": 2, "MSG_OOB": 1,
    "MSG_TRUNC": 0x20, "MSG_WAITALL": 0x100, "MSG_ERRQUEUE": 0x2000,
    "POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8, "POLLHUP": 0x10,
    "POLLNVAL": 0x20, "POLLRDNORM": 0x40, "POLLWRNORM": 0x100, "POLLRDHUP": 0x2000,
    "O_RDWR": 2, "O_NONBLOCK": 0o4000, "O_RDONLY": 0, "O_WRONLY": 1, "F_GETFL": 3,
    "F_SETFL": 4, "SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000,
    "AF_INET": 2, "AF_INET6": 10, "AF_UNSPEC": 0, "PF_INET": 2, "SOCK_STREAM": 1,
    "SOCK_DGRAM": 2, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17, "IPPROTO_IP": 0,
    "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2, "INADDR_ANY": 0,
    "IP_TOS": 1, "IP_MTU_DISCOVER": 10, "IP_PMTUDISC_DONT": 0, "IP_PMTUDISC_WANT": 1,
    "IP_PMTUDISC_DO": 2, "IP_PMTUDISC_PROBE": 3,
}

# Socket options a script expects to succeed that tcpio has no equivalent for:
# the script is then "unsupported", not failed.
_SUPPORTED_OPTS = set(_tcpsock.SOCKOPTS)


def symbol(name: str) -> int | None:
    if name in EXTRA_SYMBOLS:
        return EXTRA_SYMBOLS[name]
    for mod in (_socket, _errno, select, os):
        v = getattr(mod, name, None)
        if isinstance(v, int):
            return int(v)
    return None


class Failure(Exception):
    def __init__(self, line: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.details = details or []


class Unsupported(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class Result:
    path: str
    status: str                  # pass, fail, unsupported, error
    line: int = 0
    message: str = ""
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    virtual_secs: float = 0.0
    wall_secs: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def report(self) -> str:
        if self.status == "pass":
            return (f"PASS {self.path} ({self.virtual_secs:.3f} s virtual, "
                    f"{self.wall_secs:.3f} s wall)")
        head = {"fail": "FAIL", "unsupported": "UNSUPPORTED", "error": "ERROR"}[self.status]
        where = f"{self.path}:{self.line}" if self.line else self.path
        prefix = "unsupported: " if self.status == "unsupported" else ""
        lines = [f"{head} {where}: {prefix}{self.message}"]
        lines += ["    " + d for d in self.details]
        return "\n".join(lines)


@dataclass
class Config:
    tolerance_usecs: int = 4000
    tolerance_percent: float = 12.5
    ts_tick_usecs: int = 0
    ts_ecr_scaled: bool = False
    strict_segments: bool = False
    local_ip: int = ip_aton("192.168.0.1")
    remote_ip: int = ip_aton("192.0.2.1")
    prefixlen: int = 16
    # packetdrill's --ip_version and its IPv6 defaults (DEFAULT_V6_* in config.h)
    ip_version: str = "ipv4"
    local_ip6: int = ip6_aton("fd3d:a0b:17d6::1")
    remote_ip6: int = ip6_aton("fd3d:fa7b:d17d::1")
    prefixlen6: int = 64
    bind_port: int = 8080
    connect_port: int = 8080
    mtu: int = 1500
    # Diagnostics only (never for a verdict): "psh" does not compare the PSH
    # flag; "code" skips %{ }% blocks instead of calling the script unsupported.
    lenient: frozenset[str] = frozenset()


# Conn.state: packetdrill's socket states (socket.h), the ones TCP uses.
NEW, LISTENING, PASSIVE_SYN_RCVD, PASSIVE_SYNACK_SENT, PASSIVE_ACKED = (
    "new", "listening", "syn_received", "synack_sent", "synack_acked")
CONNECTING, SYN_SENT, SYN_ACKED = "connecting", "syn_sent", "synack_received"


@dataclass
class Conn:
    """packetdrill's "socket under test": the script <-> live mapping of one connection."""
    state: str = NEW
    local_port: int = 0
    remote_port: int = 0
    script_local_isn: int = 0
    live_local_isn: int = 0
    remote_isn: int = 0
    ts_map: dict[int, int] = field(default_factory=dict)
    first_ts: tuple[int, int] | None = None   # (script val, live val)
    sock: TcpSock | None = None


@dataclass
class Fd:
    sock: TcpSock
    nonblock: bool = False
    conn: Conn | None = None


@dataclass
class Pending:
    """A blocking system call (``...T``) running while the script goes on."""
    event: ast.Event
    call: ast.Syscall
    attempt: Callable[[], tuple[int, int] | None]
    end_usecs: int
    done: tuple[int, int, float] | None = None   # (ret, errno, live time)


SysResult = tuple[int, int]          # (return value, errno)
WOULD_BLOCK: None = None


def _err(e: OSError) -> SysResult:
    return -1, (e.errno or _errno.EIO)


class Runner:
    def __init__(self, script: ast.Script, config: Config | None = None,
                 settings: Settings | None = None) -> None:
        self.script = script
        self.cfg = config or Config()
        self.notes: list[str] = []
        self.settings = settings or Settings()
        self.script_dir = os.path.dirname(os.path.abspath(script.path))
        self._apply_options()
        self.host: Host | None = None
        self.ifindex = 0
        self.now = START
        self.outq: list[TcpSegment] = []
        self.fds: dict[int, Fd] = {}
        self.conn: Conn | None = None
        self.conns: list[Conn] = []
        self.pending: Pending | None = None
        self.next_remote_port = 49152
        self.last_event_usecs: int | None = None
        self.last_event: ast.Event | None = None
        self.event: ast.Event | None = None
        self.steps = 0
        self.alarms: list[float] = []
        # id(call) -> a check to run after its result is verified (poll's revents)
        self.post_checks: dict[int, Callable[[], None]] = {}
        # the names %{ NAME = ... }% blocks bind, for the script's later blocks
        self.code_env: dict[str, Any] = {}

    # --- setup ----------------------------------------------------------------------
    def _apply_options(self) -> None:
        for name, value in self.script.options:
            self.option(name, value, 0)

    def option(self, name: str, value: str | None, line: int) -> None:
        cfg = self.cfg
        try:
            if name == "tolerance_usecs" and value is not None:
                cfg.tolerance_usecs = int(value)
            elif name == "tolerance_percent" and value is not None:
                cfg.tolerance_percent = float(value)
            elif name == "tcp_ts_tick_usecs" and value is not None:
                cfg.ts_tick_usecs = int(value)
            elif name == "tcp_ts_ecr_scaled":
                cfg.ts_ecr_scaled = True
            elif name == "strict_segments":
                cfg.strict_segments = True
            elif name == "mtu" and value is not None:
                cfg.mtu = int(value)
            elif name == "bind_port" and value is not None:
                cfg.bind_port = int(value)
            elif name == "connect_port" and value is not None:
                cfg.connect_port = int(value)
            elif name in ("local_ip", "remote_ip") and value is not None:
                text = value.split("/")[0]
                if ":" in text:
                    setattr(cfg, name + "6", ip6_aton(text))
                else:
                    setattr(cfg, name, ip_aton(text))
            elif name == "ip_version" and value is not None:
                if value not in ("ipv4", "ipv6", "ipv4-mapped-ipv6"):
                    raise Unsupported(line, f"--ip_version={value}")
                cfg.ip_version = value
            elif name in ("define", "verbose", "non_fatal", "dry_run", "wire_client",
                          "wire_server", "speed", "gateway_ip", "netmask_ip"):
                pass
            else:
                self.notes.append(f"option --{name} ignored")
        except ValueError:
            raise Unsupported(line, f"bad value for --{name}: {value!r}") from None

    def _command(self, text: str, line: int) -> None:
        fx = shell.interpret(text, self.script_dir, env=self.script.defines)
        for cmd in fx.unknown:
            raise Unsupported(line, f"shell command `{cmd}`")
        for cmd in fx.ignored:
            if cmd.startswith("tc ") and "limit 0" in cmd:
                raise Unsupported(line, f"shell command `{cmd}` (a qdisc that drops)")
            if cmd.startswith("tc ") and " fq" in f"{cmd} ":
                raise Unsupported(line, f"shell command `{cmd}` (fq pacing)")
        for name, value in fx.sysctls:
            note = sysctl.apply(self.settings, name, value)
            if note is not None and note not in self.notes:
                self.notes.append(note)

    def _make_host(self) -> Host:
        host = Host("packetdrill", seed=1, settings=self.settings)
        host.now = self.now
        self.ifindex = host.add_interface("tun0", link="ip", mtu=self.cfg.mtu)
        host.add_address(self.ifindex, self.cfg.local_ip, self.cfg.prefixlen)
        host.add_route(0, 0, None, self.ifindex)
        if self.cfg.ip_version == "ipv6":
            host.add_address6(self.ifindex, self.cfg.local_ip6, self.cfg.prefixlen6, nodad=True)
            host.add_route6(0, 0, None, self.ifindex)
        host.take_output()
        return host

    # --- the clock --------------------------------------------------------------------
    def usecs(self) -> int:
        """The current virtual time as script microseconds."""
        return round((self.now - START) * 1_000_000)

    def live(self, usecs: int) -> float:
        return START + usecs / 1_000_000

    def collect(self) -> None:
        host = self.host
        assert host is not None
        for _ifindex, frame in host.take_output():
            seg = parse_ip_tcp(bytes(frame), self.now)
            if isinstance(seg, str):
                self.notes.append(f"{self.usecs() / 1e6:.6f}: stack sent {seg} (ignored)")
                continue
            self.outq.append(seg)
        host.take_wakeups()

    def _set_now(self, t: float) -> None:
        self.now = max(self.now, t)
        assert self.host is not None
        self.host.now = self.now

    def step(self, until: float) -> bool:
        """Run the next timer (or runner alarm) due by ``until``; False if none."""
        host = self.host
        assert host is not None
        d = host.next_deadline()
        alarm = min(self.alarms) if self.alarms else None
        if alarm is not None and (d is None or alarm < d):
            if alarm > until:
                return False
            self.alarms.remove(alarm)
            self._set_now(alarm)
            self._check_pending()
            return True
        if d is None or d > until:
            return False
        self.steps += 1
        if self.steps > 2_000_000:
            raise Failure(self._line(), "runaway: too many timer steps")
        self._set_now(d)
        host.poll(self.now)
        self.collect()
        self._check_pending()
        return True

    def advance(self, until: float) -> None:
        self._check_pending()
        while self.step(until):
            pass
        self._set_now(until)
        self._check_pending()

    def _line(self) -> int:
        return self.event.line if self.event is not None else 0

    # --- timing (packetdrill's verify_time) ---------------------------------------
    def verify_time(self, kind: str, expected: int, expected_end: int | None,
                    actual: int, what: str) -> str | None:
        if kind == ast.ANY:
            return None
        tol = float(self.cfg.tolerance_usecs)
        if self.last_event_usecs is not None:
            tol = max(tol, self.cfg.tolerance_percent / 100.0 * (expected - self.last_event_usecs))
        if kind in (ast.ABSOLUTE_RANGE, ast.RELATIVE_RANGE) and expected_end is not None:
            if actual < expected - tol or actual > expected_end + tol:
                return (f"timing error: expected {what} in time range "
                        f"{expected / 1e6:.6f}~{expected_end / 1e6:.6f} sec but happened "
                        f"at {actual / 1e6:.6f} sec")
            return None
        if actual < expected - tol or actual > expected + tol:
            return (f"timing error: expected {what} at {expected / 1e6:.6f} sec but happened "
                    f"at {actual / 1e6:.6f} sec; tolerance {tol / 1e6:.6f} sec")
        return None

    def adjust_time(self, ev: ast.Event) -> tuple[int, int | None]:
        """The event's script time (and range end) after relative offsets."""
        t = ev.time
        if t.kind in (ast.ABSOLUTE, ast.ABSOLUTE_RANGE):
            return t.usecs, t.end_usecs
        anchored = (self.last_event is not None and _inbound(self.last_event)
                    and _inbound(ev) and self.last_event_usecs is not None)
        offset = self.last_event_usecs if anchored and self.last_event_usecs is not None \
            else self.usecs()
        end = t.end_usecs + offset if t.end_usecs is not None else None
        return t.usecs + offset, end

    def wait_for(self, usecs: int, what: str) -> None:
        target = self.live(usecs)
        if target >= self.now:
            self.advance(target)
            return
        err = self.verify_time(ast.ABSOLUTE, usecs, None, self.usecs(), what)
        if err:
            raise Failure(self._line(), err)

    # --- running -----------------------------------------------------------------------
    def run(self) -> Result:
        t0 = _time.perf_counter()
        res = Result(self.script.path, "pass")
        try:
            if self.script.init_command is not None:
                self._command(self.script.init_command.text, 1)
            self.host = self._make_host()
            self._check_features()
            for ev in self.script.events:
                self.event = ev
                self.run_event(ev)
            self.event = None
            self._finish_pending()
        except Failure as f:
            res.status, res.line, res.message, res.details = "fail", f.line, f.message, f.details
        except Unsupported as u:
            res.status, res.line, res.message = "unsupported", u.line, u.message
        except ScriptError as e:
            res.status, res.line, res.message = "error", e.line, e.message
        except Exception as e:  # noqa: BLE001 - a runner or stack bug: report it, do not crash
            res.status, res.line = "error", self._line()
            res.message = f"internal error: {type(e).__name__}: {e}"
        for seg in self.outq:
            self.notes.append(f"unmatched outbound packet at {seg.time - START:.6f}: "
                              f"{seg.sport} > {seg.dport} {flag_text_of(seg)}")
        res.notes = self.notes
        res.virtual_secs = self.now - START
        res.wall_secs = _time.perf_counter() - t0
        return res

    def _check_features(self) -> None:
        """Constructs tcpio has no equivalent for, found before anything runs."""
        if self.settings.extra.get("tcp_ecn"):
            raise Unsupported(0, "ECN (net.ipv4.tcp_ecn != 0)")
        for ev in self.script.events:
            a = ev.action
            if isinstance(a, ast.TcpPacket):
                if set(a.flags) & set("EWA") or (a.ip.ecn not in (None, "noecn")):
                    raise Unsupported(ev.line, "ECN (ECE/CWR flags, ECT/CE marks)")
                for o in a.options or []:
                    if o.kind in ("md5", "FO", "FOEXP"):
                        raise Unsupported(ev.line, f"TCP option {o.kind}")

    def run_event(self, ev: ast.Event) -> None:
        start, end = self.adjust_time(ev)
        action = ev.action
        if isinstance(action, ast.TcpPacket):
            if action.direction == ast.OUTBOUND:
                self.outbound(ev, action, start, end)
            else:
                self.wait_for(start, "inbound packet")
                self.inbound(ev, action)
        elif isinstance(action, ast.Syscall):
            self.wait_for(start, "system call start")
            self.syscall(ev, action, start)
        elif isinstance(action, ast.Command):
            self.wait_for(start, "command")
            self._command(action.text, ev.line)
        elif isinstance(action, ast.Code):
            if "code" in self.cfg.lenient:
                self.notes.append(f"line {ev.line}: %{{ }}% block skipped")
            else:
                self.wait_for(start, "data collection for code")
                self.code(ev, action)
        elif isinstance(action, ast.UdpPacket):
            raise Unsupported(ev.line, "UDP packets")
        else:
            raise Unsupported(ev.line, "ICMP packets")
        if action is not None and not isinstance(action, ast.Code):
            self.last_event = ev
            self.last_event_usecs = start

    def code(self, ev: ast.Event, block: ast.Code) -> None:
        """A %{ }% block: its assertions over the tcp_info of the socket under test."""
        sk = self.conn.sock if self.conn is not None else None
        if sk is None:
            raise Failure(ev.line, "no socket under test for a %{ }% block")
        try:
            tcpinfo.run_block(block.text, sk, self.code_env)
        except tcpinfo.CodeError as e:
            raise Unsupported(ev.line, str(e)) from None
        except tcpinfo.AssertFailed as e:
            raise Failure(ev.line, str(e)) from None

    # --- inbound packets ---------------------------------------------------------------
    def _conn_for_inbound(self, pkt: ast.TcpPacket) -> Conn:
        conn = self.conn
        if conn is None or conn.state == LISTENING:
            new = Conn(state=PASSIVE_SYN_RCVD, local_port=self.cfg.bind_port,
                       remote_port=self.next_remote_port, remote_isn=pkt.seq)
            self.next_remote_port += 1
            self.conn = new
            self.conns.append(new)
            return new
        return conn

    def inbound(self, ev: ast.Event, pkt: ast.TcpPacket) -> None:
        bits = flag_bits(pkt.flags)
        conn = self._conn_for_inbound(pkt)
        if conn.state == PASSIVE_SYNACK_SENT and bits & ACK:
            conn.state = PASSIVE_ACKED
        elif conn.state in (SYN_SENT, CONNECTING) and bits & SYN and bits & ACK:
            conn.state = SYN_ACKED
            conn.remote_isn = pkt.seq
        syn = bool(bits & SYN)
        seq_off = 0 if syn else conn.remote_isn
        ack_off = (conn.live_local_isn - conn.script_local_isn) if syn else conn.live_local_isn
        opts: list[Option] = []
        for o in pkt.options or []:
            opt = script_option(o)
            if opt.kind == OPT_SACK:
                vals = [(v + ack_off) & 0xFFFFFFFF for v in o.values]
                opt = Option(OPT_SACK, struct.pack(f"!{len(vals)}I", *vals))
            elif opt.kind == OPT_TS and bits & ACK:
                val, ecr = o.values
                live_ecr = conn.ts_map.get(ecr)
                if live_ecr is None and self.cfg.ts_ecr_scaled and conn.first_ts is not None:
                    live_ecr = (ecr - conn.first_ts[0] + conn.first_ts[1]) & 0xFFFFFFFF
                if live_ecr is None:
                    raise Failure(ev.line, f"unable to infer live TS ecr for script TS ecr "
                                  f"{ecr}; no matching or preceding outbound TS val")
                opt = Option(OPT_TS, struct.pack("!II", val, live_ecr))
            opts.append(opt)
        sport, dport = pkt.ports if pkt.ports else (conn.remote_port, conn.local_port)
        tos = 0
        if pkt.ip.ecn is not None:
            tos = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}.get(pkt.ip.ecn, 0)
        if pkt.ip.tos is not None:
            tos = pkt.ip.tos
        v6 = self.cfg.ip_version == "ipv6"
        seg = TcpSegment(
            self.cfg.remote_ip6 if v6 else self.cfg.remote_ip,
            self.cfg.local_ip6 if v6 else self.cfg.local_ip, sport, dport,
            (pkt.seq + seq_off) & 0xFFFFFFFF,
            ((pkt.ack or 0) + (ack_off if bits & ACK else 0)) & 0xFFFFFFFF,
            bits, pkt.win or 0, pkt.urg or 0, opts, bytes(pkt.payload), tos,
            pkt.ip.ttl or 64, version=6 if v6 else 4)
        assert self.host is not None
        self.host.receive(self.ifindex, seg.to_bytes(), self.now)
        self.collect()
        self._check_pending()

    # --- outbound packets --------------------------------------------------------------
    def _live_match(self, seg: TcpSegment) -> Conn | None | bool:
        """The conn a live segment belongs to; False if it belongs to none we know."""
        for conn in reversed(self.conns):
            if seg.sport == conn.local_port and seg.dport == conn.remote_port:
                return conn
        return False

    def _next_live(self, deadline: float, ev: ast.Event) -> TcpSegment:
        while True:
            while self.outq:
                seg = self.outq.pop(0)
                conn = self._live_match(seg)
                if conn is False:
                    self.notes.append(
                        f"{(seg.time - START):.6f}: ignored a segment of no known "
                        f"connection ({seg.sport} > {seg.dport})")
                    continue
                if conn is not self.conn:
                    raise Failure(ev.line, "packet is not for expected socket",
                                  [(f"actual packet: {(seg.time - START):.6f} "
                                    f"{seg.sport} > {seg.dport} {flag_text_of(seg)}")])
                return seg
            if not self.step(deadline):
                self.advance(max(self.now, deadline))
                if not self.outq:
                    raise Failure(ev.line, "timed out waiting for an outbound packet",
                                  [(f"script packet: {self._expected_time_text(ev)} "
                                    f"{_script_text(ev)}")])

    def _expected_time_text(self, ev: ast.Event) -> str:
        return "*" if ev.time.kind == ast.ANY else f"{self.last_expected / 1e6:.6f}"

    last_expected = 0

    def outbound(self, ev: ast.Event, pkt: ast.TcpPacket, start: int, end: int | None) -> None:
        self.last_expected = start
        bits = flag_bits(pkt.flags)
        conn = self.conn
        if conn is None:
            raise Failure(ev.line, "no matching socket for script packet")
        if ev.time.kind == ast.ANY:
            deadline = self.now + MAX_BLOCK
        else:
            deadline = self.live(max(start, end or start)) + SNIFF_SLACK
        first = self._next_live(deadline, ev)
        # Learn the ISNs from the handshake, as packetdrill does.
        if conn.state == PASSIVE_SYN_RCVD and bits & SYN and bits & ACK:
            conn.script_local_isn = pkt.seq
            conn.live_local_isn = first.seq
            conn.state = PASSIVE_SYNACK_SENT
        elif conn.state == CONNECTING and bits & SYN and not bits & ACK:
            conn.script_local_isn = pkt.seq
            conn.live_local_isn = first.seq
            conn.state = SYN_SENT
        segs = [first]
        total = len(first.payload)
        # TSO-style aggregation takes only data that continues the data before
        # it: a segment without data (a pure ACK) or out of sequence is no
        # part of a burst, and stays queued for the script's next line, so
        # the payload check below fails rather than a segment going unchecked.
        while total and total < pkt.payload and not self.cfg.strict_segments:
            nxt = self._next_live(deadline, ev)
            prev = segs[-1]
            if not nxt.payload or nxt.seq != (prev.seq + len(prev.payload)) & 0xFFFFFFFF:
                self.outq.insert(0, nxt)
                break
            segs.append(nxt)
            total += len(nxt.payload)
        if total != pkt.payload:
            shown = self._to_script(conn, self._aggregate(segs), pkt)
            raise Failure(ev.line, f"live packet payload: expected {pkt.payload} bytes vs "
                          f"actual {total} bytes", [
                              f"script packet: {start / 1e6:.6f} {format_script_packet(pkt)}",
                              (f"actual packet: {shown.time - START:.6f} "
                               f"{self._format_actual(shown)}")])
        live = self._aggregate(segs)
        actual = self._to_script(conn, live, pkt)
        actual_usecs = round((live.time - START) * 1_000_000)
        problem = self._compare(conn, pkt, actual, live)
        if problem is None:
            problem = self.verify_time(ev.time.kind, start, end, actual_usecs, "outbound packet")
        if problem is not None:
            exp_time = "*" if ev.time.kind == ast.ANY else f"{start / 1e6:.6f}"
            raise Failure(ev.line, problem, [
                f"script packet: {exp_time} {format_script_packet(pkt)}",
                f"actual packet: {actual_usecs / 1e6:.6f} {self._format_actual(actual)}"])

    def _aggregate(self, segs: list[TcpSegment]) -> TcpSegment:
        if len(segs) == 1:
            return segs[0]
        # Like packetdrill's aggregate_packets: the last segment's headers
        # (flags, ack, window, options), the first one's seq and CWR.
        first, last = segs[0], segs[-1]
        flags = (last.flags & ~CWR) | (first.flags & CWR)
        return TcpSegment(last.src, last.dst, last.sport, last.dport, first.seq,
                          last.ack, flags, last.win, last.urg, last.options,
                          b"".join(s.payload for s in segs), last.tos, last.ttl, last.time)

    def _to_script(self, conn: Conn, live: TcpSegment, pkt: ast.TcpPacket) -> TcpSegment:
        """The live segment in script space (tcp_convert_seq_number, TS val)."""
        syn = bool(live.flags & SYN)
        seq_off = (conn.script_local_isn - conn.live_local_isn) if syn else -conn.live_local_isn
        ack_off = 0 if syn else -conn.remote_isn
        opts: list[Option] = []
        script_ts = next((o for o in pkt.options or [] if o.kind == "TS"), None)
        for o in live.options:
            if o.kind == OPT_SACK and len(o.data) % 8 == 0:
                vals = [(v + ack_off) & 0xFFFFFFFF for v in o.ints()]
                o = Option(OPT_SACK, struct.pack(f"!{len(vals)}I", *vals))
            elif o.kind == OPT_TS and len(o.data) == 8 and script_ts is not None:
                val, ecr = o.ints()
                conn.ts_map[script_ts.values[0]] = val
                if conn.first_ts is None:
                    conn.first_ts = (script_ts.values[0], val)
                sval = (conn.first_ts[0] + (val - conn.first_ts[1])) & 0xFFFFFFFF
                o = Option(OPT_TS, struct.pack("!II", sval, ecr))
            opts.append(o)
        ack = live.ack
        if live.flags & ACK:
            ack = (ack + ack_off) & 0xFFFFFFFF
        return TcpSegment(live.src, live.dst, live.sport, live.dport,
                          (live.seq + seq_off) & 0xFFFFFFFF, ack, live.flags, live.win,
                          live.urg, opts, live.payload, live.tos, live.ttl, live.time)

    def _format_actual(self, seg: TcpSegment) -> str:
        return format_segment(seg.flags, seg.seq, len(seg.payload),
                              seg.ack if seg.flags & ACK else None, seg.win, seg.urg,
                              seg.options)

    def _compare(self, conn: Conn, pkt: ast.TcpPacket, actual: TcpSegment,
                 live: TcpSegment) -> str | None:
        want = flag_bits(pkt.flags)
        if "psh" in self.cfg.lenient:
            want = (want & ~PSH) | (actual.flags & PSH)
        for bit, name in ((FIN, "fin"), (SYN, "syn"), (RST, "rst"), (PSH, "psh"),
                          (ACK, "ack"), (URG, "urg"), (ECE, "ece"), (CWR, "cwr"), (AE, "ae")):
            if bool(want & bit) != bool(actual.flags & bit):
                return (f"live packet field tcp_{name}: expected: {int(bool(want & bit))} "
                        f"vs actual: {int(bool(actual.flags & bit))}")
        if pkt.seq != actual.seq:
            return f"live packet field tcp_seq: expected: {pkt.seq} vs actual: {actual.seq}"
        want_ack = pkt.ack or 0
        if want_ack != actual.ack:
            return (f"live packet field tcp_ack_seq: expected: {want_ack} "
                    f"vs actual: {actual.ack}")
        if pkt.win is not None and pkt.win != actual.win:
            return f"live packet field tcp_window: expected: {pkt.win} vs actual: {actual.win}"
        if (pkt.urg or 0) != actual.urg:
            return f"live packet field tcp_urg_ptr: expected: {pkt.urg or 0} vs actual: {actual.urg}"
        if len(actual.payload) != pkt.payload:
            return (f"live packet payload: expected {pkt.payload} bytes vs actual "
                    f"{len(actual.payload)} bytes")
        if pkt.ip.ecn is not None and pkt.ip.ecn != "ect01":
            want_ecn = {"noecn": 0, "ect1": 1, "ect0": 2, "ce": 3}[pkt.ip.ecn]
            if actual.tos & 3 != want_ecn:
                return f"live packet field ip ecn: expected: {want_ecn} vs actual: {actual.tos & 3}"
        if pkt.ip.tos is not None and pkt.ip.tos != actual.tos:
            return f"live packet field ip tos: expected: {pkt.ip.tos:#x} vs actual: {actual.tos:#x}"
        if pkt.ip.ttl is not None and pkt.ip.ttl != actual.ttl:
            return f"live packet field ip ttl: expected: {pkt.ip.ttl} vs actual: {actual.ttl}"
        if pkt.options is not None:
            want_opts = [script_option(o) for o in pkt.options]
            # Trailing EOL padding of a script list the wire never shows.
            got = actual.options
            if len(want_opts) != len(got) or any(a.kind != b.kind for a, b in zip(want_opts, got)):
                return "bad outbound TCP options"
            for a, b in zip(want_opts, got):
                if a.kind == OPT_TS:
                    if self.cfg.ts_tick_usecs:
                        tol = max(float(self.cfg.tolerance_usecs),
                                  self.cfg.tolerance_percent / 100.0 * self.usecs())
                        sval = a.ints()[0]
                        aval = b.ints()[0]
                        diff = ((aval - sval + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                        if abs(diff) * self.cfg.ts_tick_usecs > tol:
                            return (f"bad outbound TCP timestamp value, tolerance "
                                    f"{int(tol)}: expected {sval} actual {aval}")
                    continue
                if a.kind in (0, 1):
                    continue
                if a.data != b.data:
                    return (f"bad value in outbound TCP option (kind={a.kind}): "
                            f"expected: {a.text()} actual: {b.text()}")
        if any(live.payload):
            return "incorrect outbound data payload"
        return None

    # --- blocking calls ------------------------------------------------------------
    def _check_pending(self) -> None:
        p = self.pending
        if p is None or p.done is not None:
            return
        res = p.attempt()
        if res is not None:
            p.done = (res[0], res[1], self.now)

    def _finish_pending(self, before: ast.Event | None = None) -> None:
        """Wait (run the clock) until the background call returns, then check it."""
        p = self.pending
        if p is None:
            return
        limit = max(self.now, self.live(p.end_usecs)) + MAX_BLOCK
        while p.done is None:
            self._check_pending()
            if p.done is not None:
                break
            if not self.step(limit):
                where = "at the end of the script" if before is None else \
                    f"when line {before.line} needs it finished"
                raise Failure(p.event.line, f"blocking {p.call.name}() never returned ({where})")
        self.pending = None
        ret, err, when = p.done
        self._verify_result(p.event, p.call, ret, err)
        actual = round((when - START) * 1_000_000)
        saved = self.last_event_usecs
        self.last_event_usecs = None
        msg = self.verify_time(ast.ABSOLUTE, p.end_usecs, None, actual, "system call return")
        self.last_event_usecs = saved
        if msg:
            raise Failure(p.event.line, msg)

    # --- system calls ------------------------------------------------------------------
    def syscall(self, ev: ast.Event, call: ast.Syscall, start: int) -> None:
        if self.pending is not None:
            if call.end_usecs is not None and self.pending.done is None:
                raise Failure(ev.line, "blocking system call while another blocking "
                              "system call is already in progress")
            self._finish_pending(ev)
        handler = getattr(self, "sys_" + call.name, None)
        if handler is None:
            raise Unsupported(ev.line, f"system call {call.name}()")
        attempt: Callable[[], SysResult | None] = handler(ev, call)
        res = attempt()
        self.collect()
        if call.end_usecs is not None:
            end = call.end_usecs
            if ev.time.kind == ast.RELATIVE:
                end += start - ev.time.usecs
            p = Pending(ev, call, attempt, end)
            if res is not None:
                p.done = (res[0], res[1], self.now)
            self.pending = p
            if res is not None:
                self._finish_pending()
            return
        while res is None:
            # A blocking call the script did not mark "...": the kernel would
            # block the script here while timers run.
            if not self.step(self.now + MAX_BLOCK):
                raise Failure(ev.line, f"{call.name}() blocks forever (no '...' end time "
                              "and nothing left to wake it)")
            res = attempt()
            self.collect()
        self._verify_result(ev, call, res[0], res[1])

    def _verify_result(self, ev: ast.Event, call: ast.Syscall, ret: int, err: int) -> None:
        self._verify_return(ev, call, ret, err)
        post = self.post_checks.pop(id(call), None)
        if post is not None:
            post()

    def _verify_return(self, ev: ast.Event, call: ast.Syscall, ret: int, err: int) -> None:
        expected = self.int_value(call.result, ev)
        fd_mode = call.name in ("socket", "accept", "accept4")
        if fd_mode and expected >= 0:
            if ret < 0:
                raise Failure(ev.line, f"Expected non-negative result but got {ret} with errno "
                              f"{err} ({_errno.errorcode.get(err, err)})")
        elif ret != expected:
            raise Failure(ev.line, f"Expected result {expected} but got {ret} with errno {err} "
                          f"({_errno.errorcode.get(err, '?') if ret < 0 else 'Success'})")
        if call.errno is not None:
            want = symbol(call.errno)
            if want is None:
                raise Failure(ev.line, f"unknown errno {call.errno}")
            if ret < 0 and err != want:
                raise Failure(ev.line, f"Expected errno {want} ({call.errno}) but got {err} "
                              f"({_errno.errorcode.get(err, '?')})")

    # --- argument helpers ----------------------------------------------------------
    def int_value(self, e: ast.Expr, ev: ast.Event) -> int:
        if isinstance(e, ast.Int):
            return e.value
        if isinstance(e, ast.Word):
            v = symbol(e.name)
            if v is None:
                raise Unsupported(ev.line, f"unknown symbol {e.name}")
            return v
        if isinstance(e, ast.Binary) and e.op == "|":
            return self.int_value(e.lhs, ev) | self.int_value(e.rhs, ev)
        if isinstance(e, ast.List) and len(e.items) == 1:
            return self.int_value(e.items[0], ev)
        if isinstance(e, ast.Call) and e.name == "htons" and len(e.args) == 1:
            return self.int_value(e.args[0], ev)
        raise Unsupported(ev.line, f"argument {e!r} where an integer was expected")

    def arg(self, call: ast.Syscall, i: int, ev: ast.Event) -> ast.Expr:
        if i >= len(call.args):
            raise Failure(ev.line, f"{call.name}(): expected at least {i + 1} arguments")
        return call.args[i]

    def fd(self, call: ast.Syscall, ev: ast.Event) -> Fd:
        n = self.int_value(self.arg(call, 0, ev), ev)
        fd = self.fds.get(n)
        if fd is None:
            raise Failure(ev.line, f"unable to find socket with script fd {n}")
        return fd

    def count(self, e: ast.Expr, ev: ast.Event) -> int:
        return self.int_value(e, ev)

    # --- the calls (each returns an attempt function) ----------------------------------
    def sys_socket(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        kind = self.int_value(self.arg(call, 1, ev), ev)
        # "..." is the family of --ip_version, as packetdrill fills it in
        family = 2 if self.cfg.ip_version == "ipv4" else 10
        if not isinstance(call.args[0], ast.Ellipsis_):
            family = self.int_value(call.args[0], ev)
            if family not in (2, 10):
                raise Unsupported(ev.line, f"socket family {family}")
            if family == 2 and self.cfg.ip_version == "ipv6":
                raise Unsupported(ev.line, "an AF_INET socket with --ip_version=ipv6")
        if kind & 0xF != 1:
            raise Unsupported(ev.line, "non-TCP sockets (SOCK_DGRAM, raw)")
        want = self.int_value(call.result, ev)

        def attempt() -> SysResult:
            assert self.host is not None
            if want < 0:
                return -1, _errno.EINVAL
            if want in self.fds:
                raise Failure(ev.line, f"duplicate fd {want} in script")
            sk = self.host.tcp.socket(family)
            conn = Conn(sock=sk)
            self.fds[want] = Fd(sk, nonblock=bool(kind & EXTRA_SYMBOLS["SOCK_NONBLOCK"]), conn=conn)
            self.conn = conn
            self.conns.append(conn)
            return want, 0
        return attempt

    def sys_bind(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)

        def attempt() -> SysResult:
            try:
                fd.sock.bind(0, self.cfg.bind_port)
            except OSError as e:
                return _err(e)
            return 0, 0
        return attempt

    def sys_listen(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        backlog = self.int_value(self.arg(call, 1, ev), ev)

        def attempt() -> SysResult:
            try:
                fd.sock.listen(backlog)
            except OSError as e:
                return _err(e)
            if fd.conn is not None:
                fd.conn.state = LISTENING
                fd.conn.local_port = self.cfg.bind_port
                self.conn = fd.conn
            return 0, 0
        return attempt

    def sys_accept(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        want = self.int_value(call.result, ev)

        def attempt() -> SysResult | None:
            try:
                child = fd.sock.accept()
            except OSError as e:
                return _err(e)
            if child is None:
                return (-1, _errno.EAGAIN) if fd.nonblock else WOULD_BLOCK
            conn = next((c for c in reversed(self.conns)
                         if c.remote_port == child.rport and c.local_port == child.lport), None)
            if conn is not None:
                conn.sock = child
            self.fds[want] = Fd(child, conn=conn)
            return want, 0
        return attempt

    sys_accept4 = sys_accept

    def sys_connect(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        addr = call.args[1] if len(call.args) > 1 else ast.Ellipsis_()
        if not isinstance(addr, ast.Ellipsis_):
            raise Unsupported(ev.line, "connect() to an explicit sockaddr")
        started = [False]

        def attempt() -> SysResult | None:
            sk = fd.sock
            if started[0] and sk.state in (TCP_SYN_SENT, TCP_SYN_RECV):
                # Blocking connect: wait for the handshake to finish either way.
                return WOULD_BLOCK
            try:
                sk.connect(self._remote_sockaddr(sk), self.cfg.connect_port)
            except BlockingIOError as e:
                started[0] = True
                conn = fd.conn
                if conn is not None and conn.state == NEW:
                    conn.state = CONNECTING
                    conn.local_port = sk.lport
                    conn.remote_port = self.cfg.connect_port
                    self.conn = conn
                if fd.nonblock:
                    return -1, e.errno or _errno.EINPROGRESS
                return WOULD_BLOCK
            except OSError as e:
                return _err(e)
            return 0, 0
        return attempt

    def _remote_sockaddr(self, sk: TcpSock) -> int:
        """The remote address as the script's connect() names it: IPv6, or
        IPv4-mapped on an AF_INET6 socket over IPv4."""
        if self.cfg.ip_version == "ipv6":
            return self.cfg.remote_ip6
        if sk.family == 10:
            return V4MAPPED_PREFIX | self.cfg.remote_ip
        return self.cfg.remote_ip

    def _send(self, ev: ast.Event, fd: Fd, size: int, flags: int
              ) -> Callable[[], SysResult | None]:
        stack_flags = flags & (EXTRA_SYMBOLS["MSG_OOB"] | EXTRA_SYMBOLS["MSG_MORE"])
        unsupported = flags & ~(EXTRA_SYMBOLS["MSG_DONTWAIT"] | stack_flags
                                | 0x4000)   # MSG_NOSIGNAL
        if unsupported:
            raise Unsupported(ev.line, f"send flags {unsupported:#x} (MSG_EOR/"
                              "MSG_ZEROCOPY/MSG_FASTOPEN)")
        nonblock = fd.nonblock or bool(flags & EXTRA_SYMBOLS["MSG_DONTWAIT"])
        sent = [0]
        data = bytes(size)

        def attempt() -> SysResult | None:
            sk = fd.sock
            try:
                n = sk.sendmsg(memoryview(data)[sent[0]:], stack_flags)
            except OSError as e:
                if sent[0]:
                    return sent[0], 0
                return _err(e)
            sent[0] += n
            if sent[0] >= size:
                return size, 0
            if nonblock:
                return (sent[0], 0) if sent[0] else (-1, _errno.EAGAIN)
            if sk.state in (TCP_SYN_SENT, TCP_SYN_RECV) or n >= 0:
                return WOULD_BLOCK
            return WOULD_BLOCK
        return attempt

    def _null_buffer(self, call: ast.Syscall, ev: ast.Event) -> Callable[[], SysResult] | None:
        """A NULL buffer: the kernel's copy to/from user space faults (EFAULT)
        before TCP sees the call, so the stack is not called."""
        buf = self.arg(call, 1, ev)
        if isinstance(buf, ast.Word) and buf.name == "NULL" and self.count(
                self.arg(call, 2, ev), ev) > 0:
            self.fd(call, ev)
            return lambda: (-1, _errno.EFAULT)
        return None

    def sys_write(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        null = self._null_buffer(call, ev)
        if null is not None:
            return null
        return self._send(ev, self.fd(call, ev), self.count(self.arg(call, 2, ev), ev), 0)

    def sys_send(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        null = self._null_buffer(call, ev)
        if null is not None:
            return null
        flags = self.int_value(self.arg(call, 3, ev), ev) if len(call.args) > 3 else 0
        return self._send(ev, self.fd(call, ev), self.count(self.arg(call, 2, ev), ev), flags)

    def sys_sendto(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        return self.sys_send(ev, call)

    def sys_sendmsg(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        msg = self.arg(call, 1, ev)
        size, msg_flags = self._msghdr(msg, ev)
        flags = self.int_value(call.args[2], ev) if len(call.args) > 2 else 0
        if msg_flags:
            raise Unsupported(ev.line, "sendmsg with msg_flags or control data")
        return self._send(ev, fd, size, flags)

    def _msghdr(self, msg: ast.Expr, ev: ast.Event) -> tuple[int, int]:
        """Total iov length and msg_flags of a ``{msg_name(...)=..., msg_iov(n)=[...], ...}``."""
        size, flags, control = self._msghdr_parts(msg, ev)
        if control:
            raise Unsupported(ev.line, "control messages (msg_control)")
        return size, flags

    def _msghdr_parts(self, msg: ast.Expr, ev: ast.Event
                      ) -> tuple[int, int, list[tuple[int, int, int]]]:
        """The iov length, msg_flags and control messages (cmsg_level,
        cmsg_type, cmsg_data as an int) of a msghdr literal."""
        if not isinstance(msg, ast.Struct):
            raise Unsupported(ev.line, "a msghdr that is not a {...} literal")
        size, flags = 0, 0
        control: list[tuple[int, int, int]] = []
        for item in msg.items:
            if not isinstance(item, ast.Binary) or item.op != "=":
                continue
            name = item.lhs.name if isinstance(item.lhs, (ast.Word, ast.Call)) else ""
            if name == "msg_iov" and isinstance(item.rhs, ast.List):
                for iov in item.rhs.items:
                    if isinstance(iov, ast.Struct) and iov.items:
                        size += self.int_value(iov.items[-1], ev)
            elif name == "msg_flags":
                flags = self.int_value(item.rhs, ev)
            elif name == "msg_control" and isinstance(item.rhs, ast.List):
                for cmsg in item.rhs.items:
                    fields = {i.lhs.name: i.rhs for i in getattr(cmsg, "items", ())
                              if isinstance(i, ast.Binary) and isinstance(i.lhs, ast.Word)}
                    if set(fields) != {"cmsg_level", "cmsg_type", "cmsg_data"}:
                        raise Unsupported(ev.line, "a control message other than "
                                          "{cmsg_level=..., cmsg_type=..., cmsg_data=N}")
                    control.append((self.int_value(fields["cmsg_level"], ev),
                                    self.int_value(fields["cmsg_type"], ev),
                                    self.int_value(fields["cmsg_data"], ev)))
        return size, flags, control

    def _recv(self, ev: ast.Event, fd: Fd, size: int, flags: int,
              control: list[tuple[int, int, int]] | None = None
              ) -> Callable[[], SysResult | None]:
        """``control``: the control messages recvmsg must return (None: not
        checked); the only one tcpio sends is TCP_INQ's (SOL_TCP,
        TCP_CM_INQ, tcp_inq_hint)."""
        supported = EXTRA_SYMBOLS["MSG_DONTWAIT"] | EXTRA_SYMBOLS["MSG_PEEK"] | \
            EXTRA_SYMBOLS["MSG_OOB"]
        if flags & ~supported:
            raise Unsupported(ev.line, f"recv flags {flags & ~supported:#x}")
        nonblock = fd.nonblock or bool(flags & EXTRA_SYMBOLS["MSG_DONTWAIT"])

        def attempt() -> SysResult | None:
            sk = fd.sock
            try:
                data = sk.recvmsg(size, flags & (EXTRA_SYMBOLS["MSG_PEEK"] | EXTRA_SYMBOLS["MSG_OOB"]))
            except OSError as e:
                if e.errno == _errno.EAGAIN and not nonblock:
                    return WOULD_BLOCK
                return _err(e)
            if data or size == 0 or sk.rcv_eof or sk.state in (TCP_CLOSE,) \
                    or sk.sk_shutdown & 1:
                if control is not None:
                    got = [(EXTRA_SYMBOLS["SOL_TCP"], EXTRA_SYMBOLS["TCP_CM_INQ"],
                            sk.inq_hint())] if sk.opts.recvmsg_inq else []
                    if got != control:
                        raise Failure(ev.line, f"Bad recvmsg control messages: expected: "
                                      f"{control} actual: {got}")
                return len(data), 0
            if sk.state == TCP_LISTEN:
                return -1, _errno.ENOTCONN
            return (-1, _errno.EAGAIN) if nonblock else WOULD_BLOCK
        return attempt

    def sys_read(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        null = self._null_buffer(call, ev)
        if null is not None:
            return null
        return self._recv(ev, self.fd(call, ev), self.count(self.arg(call, 2, ev), ev), 0)

    def sys_recv(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        null = self._null_buffer(call, ev)
        if null is not None:
            return null
        flags = self.int_value(self.arg(call, 3, ev), ev) if len(call.args) > 3 else 0
        return self._recv(ev, self.fd(call, ev), self.count(self.arg(call, 2, ev), ev), flags)

    def sys_recvfrom(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        return self.sys_recv(ev, call)

    def sys_recvmsg(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        size, _, control = self._msghdr_parts(self.arg(call, 1, ev), ev)
        flags = self.int_value(call.args[2], ev) if len(call.args) > 2 else 0
        for level, kind, _data in control:
            if (level, kind) != (EXTRA_SYMBOLS["SOL_TCP"], EXTRA_SYMBOLS["TCP_CM_INQ"]):
                raise Unsupported(ev.line, f"control message level {level} type {kind}")
        return self._recv(ev, fd, size, flags, control)

    def sys_close(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        n = self.int_value(self.arg(call, 0, ev), ev)

        def attempt() -> SysResult:
            fd = self.fds.pop(n, None)
            if fd is None:
                return -1, _errno.EBADF
            if fd.sock.opts.linger[0] and fd.sock.opts.linger[1] > 0 and not fd.nonblock:
                raise Unsupported(ev.line, "close() lingering with SO_LINGER > 0")
            fd.sock.close()
            return 0, 0
        return attempt

    def sys_shutdown(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        how = self.int_value(self.arg(call, 1, ev), ev)

        def attempt() -> SysResult:
            try:
                fd.sock.shutdown(how)
            except OSError as e:
                return _err(e)
            return 0, 0
        return attempt

    def sys_fcntl(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        cmd = self.int_value(self.arg(call, 1, ev), ev)
        if cmd == EXTRA_SYMBOLS["F_GETFL"]:
            return lambda: (EXTRA_SYMBOLS["O_RDWR"] |
                            (EXTRA_SYMBOLS["O_NONBLOCK"] if fd.nonblock else 0), 0)
        if cmd == EXTRA_SYMBOLS["F_SETFL"]:
            flags = self.int_value(self.arg(call, 2, ev), ev)

            def setfl() -> SysResult:
                fd.nonblock = bool(flags & EXTRA_SYMBOLS["O_NONBLOCK"])
                return 0, 0
            return setfl
        raise Unsupported(ev.line, f"fcntl command {cmd}")

    def sys_ioctl(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd = self.fd(call, ev)
        req = self.int_value(self.arg(call, 1, ev), ev)
        out = self.arg(call, 2, ev)
        if req == EXTRA_SYMBOLS["FIONBIO"]:
            on = self.int_value(out, ev)

            def fionbio() -> SysResult:
                fd.nonblock = bool(on)
                return 0, 0
            return fionbio
        getters: dict[int, Callable[[], int]] = {
            EXTRA_SYMBOLS["SIOCINQ"]: lambda: len(fd.sock.rq),
            EXTRA_SYMBOLS["SIOCOUTQ"]: lambda: len(fd.sock.wq),
            EXTRA_SYMBOLS["SIOCOUTQNSD"]: lambda: (fd.sock.write_seq - fd.sock.snd_nxt)
            & 0xFFFFFFFF,
        }
        get = getters.get(req)
        if get is None:
            raise Unsupported(ev.line, f"ioctl request {req:#x}")

        def ioctl() -> SysResult:
            if fd.sock.state == TCP_LISTEN:
                return -1, _errno.EINVAL
            value = get()
            if not isinstance(out, ast.Ellipsis_):
                want = self.int_value(out, ev)
                if want != value:
                    raise Failure(ev.line, f"Bad ioctl output: expected: {want} actual: {value}")
            return 0, 0
        return ioctl

    def _sockopt(self, ev: ast.Event, call: ast.Syscall) -> tuple[Fd, int, int]:
        fd = self.fd(call, ev)
        level = self.int_value(self.arg(call, 1, ev), ev)
        name = self.int_value(self.arg(call, 2, ev), ev)
        return fd, level, name

    def sys_setsockopt(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd, level, name = self._sockopt(ev, call)
        val = self.arg(call, 3, ev)
        value: Any
        if isinstance(val, ast.Struct):
            fields = {i.lhs.name: self.int_value(i.rhs, ev) for i in val.items
                      if isinstance(i, ast.Binary) and isinstance(i.lhs, ast.Word)}
            value = (fields.get("onoff", 0), fields.get("linger", 0))
        elif isinstance(val, ast.Str):
            value = val.value
        else:
            value = self.int_value(val, ev)
        expected = self.int_value(call.result, ev)
        if (level, name) not in _SUPPORTED_OPTS and expected == 0:
            raise Unsupported(ev.line, f"setsockopt {_opt_name(call)}")

        def attempt() -> SysResult:
            try:
                fd.sock.setsockopt(level, name, value)
            except OSError as e:
                return _err(e)
            return 0, 0
        return attempt

    def sys_getsockopt(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fd, level, name = self._sockopt(ev, call)
        val = self.arg(call, 3, ev)
        expected = self.int_value(call.result, ev)
        if (level, name) not in _SUPPORTED_OPTS and expected == 0:
            raise Unsupported(ev.line, f"getsockopt {_opt_name(call)}")

        def attempt() -> SysResult:
            try:
                got = fd.sock.getsockopt(level, name)
            except OSError as e:
                return _err(e)
            if isinstance(val, ast.Ellipsis_):
                return 0, 0
            if isinstance(val, ast.Struct):
                if isinstance(got, (bytes, bytearray)) and len(got) >= 8:
                    got_pair = struct.unpack("ii", bytes(got[:8]))
                    fields = {i.lhs.name: self.int_value(i.rhs, ev) for i in val.items
                              if isinstance(i, ast.Binary) and isinstance(i.lhs, ast.Word)}
                    want_pair = (fields.get("onoff", 0), fields.get("linger", 0))
                    if bool(got_pair[0]) != bool(want_pair[0]) or got_pair[1] != want_pair[1]:
                        raise Failure(ev.line, f"Bad getsockopt optval: expected: {want_pair} "
                                      f"actual: {got_pair}")
                return 0, 0
            if isinstance(val, ast.Str):
                text = got.decode().rstrip("\0") if isinstance(got, bytes) else str(got)
                if text != val.value:
                    raise Failure(ev.line, f"Bad getsockopt optval: expected: {val.value!r} "
                                  f"actual: {text!r}")
                return 0, 0
            want = self.int_value(val, ev)
            have = int(got) if not isinstance(got, (bytes, bytearray)) else \
                int.from_bytes(bytes(got[:4]), "little", signed=True)
            if want != have:
                raise Failure(ev.line, f"Bad getsockopt optval: expected: {want} actual: {have}")
            return 0, 0
        return attempt

    def sys_poll(self, ev: ast.Event, call: ast.Syscall) -> Callable[[], SysResult | None]:
        fds = self.arg(call, 0, ev)
        timeout_ms = self.int_value(self.arg(call, 2, ev), ev)
        if not isinstance(fds, ast.List):
            raise Unsupported(ev.line, "poll() without a [{fd=..., events=...}] list")
        entries: list[tuple[Fd, int, int | None]] = []
        for item in fds.items:
            if not isinstance(item, ast.Struct):
                raise Unsupported(ev.line, "poll() entry that is not a {...}")
            fields = {i.lhs.name: i.rhs for i in item.items
                      if isinstance(i, ast.Binary) and isinstance(i.lhs, ast.Word)}
            n = self.int_value(fields["fd"], ev)
            f = self.fds.get(n)
            if f is None:
                raise Failure(ev.line, f"poll(): no socket with script fd {n}")
            rev = fields.get("revents")
            entries.append((f, self.int_value(fields["events"], ev),
                            None if rev is None else self.int_value(rev, ev)))
        deadline = self.now + timeout_ms / 1000.0 if timeout_ms >= 0 else None

        def attempt() -> SysResult | None:
            ready = 0
            got: list[int] = []
            for f, events, _want in entries:
                r = _poll_mask(f.sock) & (events | 0x8 | 0x10 | 0x20)
                got.append(r)
                ready += bool(r)
            if ready == 0 and (deadline is None or self.now < deadline - 1e-9):
                return WOULD_BLOCK
            def check_revents() -> None:
                # after the result, as packetdrill's pollfds_check
                for (_f, _events, want), r in zip(entries, got):
                    if want is not None and want != r:
                        raise Failure(ev.line, f"poll revents: expected: {want:#x} "
                                      f"actual: {r:#x}")
            self.post_checks[id(call)] = check_revents
            return ready, 0
        if deadline is not None:
            self._poll_deadline(deadline)
        return attempt

    def _poll_deadline(self, when: float) -> None:
        """Make the clock stop at a poll() timeout."""
        self.alarms.append(when)


def _poll_mask(sk: TcpSock) -> int:
    """tcp_poll's answer for a sock (readable, writable, error, hang-up)."""
    mask = 0
    if sk.state == TCP_LISTEN:
        return 0x1 if sk.accept_queue else 0
    if sk.sk_err:
        mask |= 0x8
    if sk.sk_shutdown == 3 or sk.state == TCP_CLOSE:
        mask |= 0x10
    if sk.sk_shutdown & 1 or sk.rcv_eof:
        mask |= 0x1 | 0x40 | 0x2000
    if sk.state not in (TCP_SYN_SENT, TCP_SYN_RECV):
        if len(sk.rq):
            mask |= 0x1 | 0x40
        if not sk.sk_shutdown & 2:
            if sk.stream_writeable():
                mask |= 0x4 | 0x100
        else:
            mask |= 0x4 | 0x100
    return mask


def flag_text_of(seg: TcpSegment) -> str:
    return format_segment(seg.flags, seg.seq, len(seg.payload), None, None, None, [])


def _script_text(ev: ast.Event) -> str:
    return format_script_packet(ev.action) if isinstance(ev.action, ast.TcpPacket) else ""


def _opt_name(call: ast.Syscall) -> str:
    a = call.args
    names = [x.name if isinstance(x, ast.Word) else "?" for x in a[1:3]]
    return ", ".join(names)


def _inbound(ev: ast.Event) -> bool:
    return isinstance(ev.action, (ast.TcpPacket, ast.UdpPacket, ast.IcmpPacket)) and \
        ev.action.direction == ast.INBOUND


def run_file(path: str, defines: dict[str, str] | None = None,
             overrides: list[tuple[str, str | None]] | None = None,
             lenient: frozenset[str] = frozenset()) -> Result:
    """Parse and run one script file; never raises for a bad script."""
    try:
        script = parse_file(path, defines)
    except ScriptError as e:
        return Result(path, "error", e.line, e.message)
    except OSError as e:
        return Result(path, "error", 0, str(e))
    if overrides:
        script.options = list(script.options) + list(overrides)
    try:
        runner = Runner(script, Config(lenient=lenient))
    except Unsupported as u:
        return Result(path, "unsupported", u.line, u.message)
    return runner.run()
