"""``tcpio forward --tun`` against the Linux kernel (issue 18).

Two private namespaces:
- B, "the internet": 198.51.100.1 on its lo, a kernel HTTP server
  (``http.server``), a UDP echo and a few TCP servers for the
  half-close and reset cases; ``tcpio forward`` runs here (a subprocess under
  ``ip netns exec B``), so its upstream kernel sockets are B's;
- A, the client: the forwarder's TUN is moved into it (``--netns A``), gets
  10.77.0.2/24 and A's default route.  Everything A sends leaves through the
  TUN, so every flow from A reaches B only through tcpio.

The kernel in A is the independent judge: curl's bytes and sha256, its
"connection refused" (the RST to its SYN), a socket's ECONNRESET, EOF on
half-closed connections.  Sizes: 8 MB and 20 concurrent connections in the
suite; TCPIO_SLOW=1 runs 100 MB and 200 connections.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netns import NetNs

SLOW = os.environ.get("TCPIO_SLOW") == "1"
BULK = (100 if SLOW else 8) * 1_000_000
CONCURRENT = 200 if SLOW else 20
FAR = "198.51.100.1"
CLIENT = "10.77.0.2"
FAR6 = "2001:db8:77::1"         # B's IPv6 "internet" address (on its lo)
CLIENT6 = "fd77::2"
WORKTREE = Path(__file__).resolve().parents[2]
# http.server with a listen backlog for the concurrent test (its default is 5:
# the kernel server itself would drop the handshakes of a burst)
HTTP_SERVER = """
import functools, http.server, socket, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    address_family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
Server((sys.argv[1], 8080), handler).serve_forever()
"""


def _serve(sock: socket.socket, handler) -> threading.Thread:
    """Accept on ``sock`` (a listening socket of namespace B) for ever, one
    thread per connection; the thread is a daemon, ended with the namespace."""
    def loop() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=handler, args=(conn,), daemon=True).start()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def _udp_echo(server: socket.socket) -> socket.socket:
    """Answer every datagram on ``server`` with its bytes reversed (a daemon
    thread, until the socket closes)."""
    def echo() -> None:
        while True:
            try:
                data, addr = server.recvfrom(65536)
            except OSError:
                return
            server.sendto(data[::-1], addr)
    threading.Thread(target=echo, daemon=True).start()
    return server


def _read_all(conn: socket.socket) -> bytes:
    chunks = []
    while data := conn.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


class World:
    def __init__(self, a: NetNs, b: NetNs, www: Path, fwd: subprocess.Popen[str]) -> None:
        self.a, self.b, self.www = a, b, www
        self.fwd = fwd
        self.log: str | None = None
        self.early = ""         # what wait_log read before stop()

    def wait_log(self, text: str, timeout: float = 20) -> None:
        """Read the forwarder's output until ``text`` appears in it: a flow's
        line is printed when the relay has closed both of its connections,
        which can be after the client program has exited (its last FIN, the
        peer's last ACK are still crossing), so stop() at once may come
        before the line (the forwarder prints and flushes line by line)."""
        assert self.fwd.stdout is not None
        fd = self.fwd.stdout.fileno()
        deadline = time.monotonic() + timeout
        while text not in self.early and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self.early += chunk.decode(errors="replace")

    def stop(self) -> str:
        """SIGINT the forwarder; what it printed (its flow lines and counters)."""
        if self.log is None:
            self.fwd.send_signal(2)
            self.log = self.early + self.fwd.communicate(timeout=20)[0]
        return self.log

    def listen(self, port: int, kind: int = socket.SOCK_STREAM,
               family: int = socket.AF_INET) -> socket.socket:
        s = self.b.socket(family, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((FAR6 if family == socket.AF_INET6 else FAR, port))
        if kind == socket.SOCK_STREAM:
            s.listen(256)
        return s

    def client(self, kind: int = socket.SOCK_STREAM,
               family: int = socket.AF_INET) -> socket.socket:
        s = self.a.socket(family, kind)
        s.settimeout(20)
        return s


@pytest.fixture
def world(tap_required: None, tmp_path: Path) -> Iterator[World]:
    a, b = NetNs(), NetNs()
    a.create()
    b.create()
    procs: list[subprocess.Popen[str]] = []
    try:
        b.ip("addr", "add", f"{FAR}/32", "dev", "lo")
        b.ip("-6", "addr", "add", f"{FAR6}/128", "dev", "lo")
        www = tmp_path / "www"
        www.mkdir()
        (www / "bulk").write_bytes(os.urandom(BULK))
        (www / "small").write_bytes(b"small file\n" * 100)
        for far in (FAR, FAR6):
            procs.append(subprocess.Popen(
                b.exec_argv(sys.executable, "-c", HTTP_SERVER, far, str(www)),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
        tun = f"tfwd{secrets.token_hex(3)}"
        env = dict(os.environ, PYTHONPATH=str(WORKTREE))
        fwd = subprocess.Popen(
            b.exec_argv(sys.executable, "-m", "tcpio", "forward", "--tun", tun,
                        "--netns", a.name, "--udp-timeout", "5", "--answer-ping"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        procs.append(fwd)
        assert fwd.stdout is not None
        first = fwd.stdout.readline()
        assert first.startswith("tcpio forwarding"), first + fwd.stdout.read()
        a.ip("link", "set", tun, "up")
        a.ip("addr", "add", f"{CLIENT}/24", "dev", tun)
        a.ip("route", "add", "default", "dev", tun)
        a.ip("-6", "addr", "add", f"{CLIENT6}/64", "dev", tun, "nodad")
        a.ip("-6", "route", "add", "default", "dev", tun)
        w = World(a, b, www, fwd)
        # the HTTP servers may still be starting
        for far in (FAR, FAR6):
            for _ in range(100):
                if b.run("python3", "-c", f"import socket; socket.create_connection(('{far}', "
                         "8080), 1)").returncode == 0:
                    break
                time.sleep(0.05)
        yield w
        log = w.stop()
        assert "Traceback" not in log, log
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        a.delete()
        b.delete()


def test_curl_fetches_bulk_through_the_forwarder_with_sha256_equal(world: World,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "got"
    res = world.a.run("curl", "-sS", "--max-time", "120", "-o", str(out),
                      f"http://{FAR}:8080/bulk", timeout=150)
    assert res.returncode == 0, res.stderr
    got = out.read_bytes()
    assert len(got) == BULK
    assert hashlib.sha256(got).digest() == hashlib.sha256(
        (world.www / "bulk").read_bytes()).digest()


def test_concurrent_connections_all_succeed(world: World) -> None:
    script = f"""
import asyncio, sys
async def one(i):
    r, w = await asyncio.open_connection("{FAR}", 8080)
    w.write(b"GET /small HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n")
    data = await r.read()
    w.close()
    return data.endswith(b"small file\\n" * 100) and b" 200 " in data.split(b"\\r\\n")[0]
async def main():
    ok = await asyncio.gather(*(one(i) for i in range({CONCURRENT})))
    print(sum(ok))
asyncio.run(main())
"""
    res = world.a.run(sys.executable, "-c", script, timeout=120)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) == CONCURRENT


def test_udp_echo_through_the_forwarder(world: World) -> None:
    server = _udp_echo(world.listen(7, socket.SOCK_DGRAM))
    c = world.client(socket.SOCK_DGRAM)
    c.connect((FAR, 7))
    for msg in (b"first", b"x" * 1400, b"third"):
        c.send(msg)
        data, addr = c.recvfrom(65536)
        assert (data, addr) == (msg[::-1], (FAR, 7))     # from the original destination
    server.close()


def test_udp_to_a_closed_port_at_the_far_end_is_refused_at_the_near_end(world: World) -> None:
    c = world.client(socket.SOCK_DGRAM)
    c.connect((FAR, 9))                         # nobody listens on B's UDP port 9
    c.send(b"hello?")
    with pytest.raises(ConnectionRefusedError):
        c.recv(100)                             # the kernel's ICMP, passed on by tcpio


def test_refused_at_the_far_end_is_refused_at_the_near_end(world: World) -> None:
    c = world.client()
    with pytest.raises(ConnectionRefusedError):
        c.connect((FAR, 9))                             # nobody listens on B's port 9
    res = world.a.run("curl", "-sS", "-v", f"http://{FAR}:9/", timeout=30)
    assert res.returncode == 7 and "Connection refused" in res.stderr, res.stderr


def test_ping_to_any_address_is_answered_with_answer_ping(world: World) -> None:
    res = world.a.run("ping", "-c", "1", "-W", "5", "203.0.113.77", timeout=30)
    assert res.returncode == 0 and "1 received" in res.stdout, res.stdout + res.stderr


def test_half_close_from_the_client(world: World) -> None:
    def handler(conn: socket.socket) -> None:
        data = _read_all(conn)                  # until the client's FIN came through
        conn.sendall(b"got %d" % len(data))
        conn.close()
    _serve(world.listen(7001), handler)
    c = world.client()
    c.connect((FAR, 7001))
    c.sendall(b"a" * 100_000)
    c.shutdown(socket.SHUT_WR)
    assert _read_all(c) == b"got 100000"


def test_half_close_from_the_server(world: World) -> None:
    received: list[bytes] = []
    done = threading.Event()

    def handler(conn: socket.socket) -> None:
        conn.sendall(b"hello")
        conn.shutdown(socket.SHUT_WR)           # our FIN first; keep reading
        received.append(_read_all(conn))
        conn.close()
        done.set()
    _serve(world.listen(7002), handler)
    c = world.client()
    c.connect((FAR, 7002))
    assert _read_all(c) == b"hello"             # EOF from the far end arrived
    c.sendall(b"bye" * 1000)                    # our direction is still open
    c.shutdown(socket.SHUT_WR)
    assert done.wait(20) and received == [b"bye" * 1000]


def test_reset_at_the_far_end_is_reset_at_the_near_end(world: World) -> None:
    def handler(conn: socket.socket) -> None:
        conn.recv(1)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()                            # RST
    _serve(world.listen(7003), handler)
    c = world.client()
    c.connect((FAR, 7003))
    c.sendall(b"x")
    with pytest.raises(ConnectionResetError):
        while c.recv(100):
            pass


def test_reset_at_the_near_end_is_reset_at_the_far_end(world: World) -> None:
    outcome: list[str] = []
    done = threading.Event()

    def handler(conn: socket.socket) -> None:
        conn.settimeout(20)
        try:
            while conn.recv(100):
                pass
            outcome.append("eof")
        except ConnectionResetError:
            outcome.append("reset")
        except OSError as exc:
            outcome.append(repr(exc))
        done.set()
    _serve(world.listen(7004), handler)
    c = world.client()
    c.connect((FAR, 7004))
    c.sendall(b"x")
    time.sleep(0.3)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    assert done.wait(20) and outcome == ["reset"]


def test_forwarder_logs_a_line_per_flow_and_its_counters(world: World) -> None:
    res = world.a.run("curl", "-sS", "-o", "/dev/null", f"http://{FAR}:8080/small", timeout=30)
    assert res.returncode == 0, res.stderr
    with pytest.raises(ConnectionRefusedError):
        world.client().connect((FAR, 9))
    world.wait_log(f"-> {FAR}:8080 fin/fin up ")
    world.wait_log(f"-> {FAR}:9 refused")
    log = world.stop()
    assert f"-> {FAR}:8080 fin/fin up " in log, log
    assert f"-> {FAR}:9 refused" in log, log
    assert "TcpFwdAccepted 1" in log and "TcpFwdRefused 1" in log, log


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq (Debian package) missing")
def test_curl_by_name_dns_and_http_both_through_the_forwarder(world: World,
                                                                tmp_path: Path) -> None:
    """The client's resolver asks a DNS server in B (UDP through the
    forwarder), then curl fetches from the name (TCP through it)."""
    world.b.ip("addr", "add", "198.51.100.53/32", "dev", "lo")
    dns = subprocess.Popen(world.b.exec_argv(
        "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
        "--no-hosts", "--address=/example.test/" + FAR, "--bind-interfaces",
        "--listen-address=198.51.100.53", "--port=53", "--user=root", "--group=root",
        f"--pid-file={tmp_path / 'dnsmasq.pid'}"), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    etc = Path("/etc/netns") / world.a.name      # `ip netns exec` mounts its resolv.conf
    etc.mkdir(parents=True)
    try:
        (etc / "resolv.conf").write_text("nameserver 198.51.100.53\n")
        for _ in range(100):
            if "198.51.100.53:53" in world.b.run("ss", "-lnuH").stdout:
                break
            time.sleep(0.05)
        out = tmp_path / "got"
        res = world.a.run("curl", "-sS", "-o", str(out), "http://www.example.test:8080/small",
                          timeout=60)
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == (world.www / "small").read_bytes()
    finally:
        shutil.rmtree(etc, ignore_errors=True)
        dns.terminate()
        dns.wait()
    world.wait_log(f"-> {FAR}:8080 fin/fin")
    log = world.stop()
    assert "UdpFwdSessions" in log, log          # the DNS queries were sessions
    assert f"-> {FAR}:8080 fin/fin" in log, log


# ----- IPv6 flows through the same forwarder ----------------------------------------


def test_curl_6_fetches_bulk_over_ipv6_through_the_forwarder_with_sha256_equal(
        world: World, tmp_path: Path) -> None:
    out = tmp_path / "got6"
    res = world.a.run("curl", "-6", "-sS", "--max-time", "120", "-o", str(out),
                      f"http://[{FAR6}]:8080/bulk", timeout=150)
    assert res.returncode == 0, res.stderr
    got = out.read_bytes()
    assert len(got) == BULK
    assert hashlib.sha256(got).digest() == hashlib.sha256(
        (world.www / "bulk").read_bytes()).digest()
    world.wait_log(f"-> [{FAR6}]:8080 fin/fin up ")
    log = world.stop()
    assert f"-> [{FAR6}]:8080 fin/fin up " in log, log


def test_udp_echo_over_ipv6_through_the_forwarder(world: World) -> None:
    server = _udp_echo(world.listen(7, socket.SOCK_DGRAM, socket.AF_INET6))
    c = world.client(socket.SOCK_DGRAM, socket.AF_INET6)
    c.connect((FAR6, 7))
    for msg in (b"first", b"x" * 1400, b"y" * 3000, b"third"):     # 3000: fragmented both ways
        c.send(msg)
        data, addr = c.recvfrom(65536)
        assert (data, addr[:2]) == (msg[::-1], (FAR6, 7))      # from the original destination
    server.close()
    c.connect((FAR6, 9))                        # nobody listens on B's UDP port 9
    c.send(b"hello?")
    with pytest.raises(ConnectionRefusedError):
        c.recv(100)                             # the kernel's ICMPv6, passed on by tcpio


def test_refused_over_ipv6_at_the_far_end_is_an_rst_at_the_near_end(world: World) -> None:
    c = world.client(family=socket.AF_INET6)
    with pytest.raises(ConnectionRefusedError):
        c.connect((FAR6, 9))                            # nobody listens on B's port 9


def test_half_close_over_ipv6_from_the_client(world: World) -> None:
    def handler(conn: socket.socket) -> None:
        data = _read_all(conn)
        conn.sendall(b"got %d" % len(data))
        conn.close()
    _serve(world.listen(7001, family=socket.AF_INET6), handler)
    c = world.client(family=socket.AF_INET6)
    c.connect((FAR6, 7001))
    assert c.getpeername()[:2] == (FAR6, 7001)
    c.sendall(b"a" * 100_000)
    c.shutdown(socket.SHUT_WR)
    assert _read_all(c) == b"got 100000"


def test_ping_6_to_any_address_is_answered_with_answer_ping(world: World) -> None:
    res = world.a.run("ping", "-6", "-c", "1", "-W", "5", "2001:db8:99::7", timeout=30)
    assert res.returncode == 0 and "1 received" in res.stdout, res.stdout + res.stderr


# ----- what the client hears when the far end cannot be reached ------------------------


@pytest.mark.parametrize(("route", "dst", "err"), [
    ("unreachable", "203.0.113.9", errno.EHOSTUNREACH),
    ("prohibit", "192.0.2.9", errno.EHOSTUNREACH),
    (None, "100.64.0.9", errno.ENETUNREACH),
    (None, "2001:db8:dead::9", errno.ENETUNREACH),
])
def test_unreachable_at_the_far_end_is_the_icmp_a_kernel_router_sends(
        world: World, route: str | None, dst: str, err: int) -> None:
    """B's kernel says EHOSTUNREACH (an `unreachable` route), EACCES (a
    `prohibit` one) or ENETUNREACH (no route, either family) to the relay's
    connect(); A's connect() fails as behind a Linux router with that route
    (ip_error: host unreachable, packet filtered, net unreachable), at once
    rather than after its SYN retries."""
    if route is not None:
        world.b.ip("route", "add", route, f"{dst.rsplit('.', 1)[0]}.0/24")
    c = world.client(family=socket.AF_INET6 if ":" in dst else socket.AF_INET)
    t0 = time.monotonic()
    with pytest.raises(OSError) as exc:
        c.connect((dst, 80))
    assert exc.value.errno == err, exc.value
    assert time.monotonic() - t0 < 5
    log = world.stop()
    assert f"{dst}]:80 unreachable" in log or f"{dst}:80 unreachable" in log, log
    assert "TcpFwdUnreachable 1" in log, log


@pytest.mark.parametrize(("route", "dst", "err"), [
    ("unreachable", "203.0.113.9", errno.EHOSTUNREACH),
    ("prohibit", "192.0.2.9", errno.EHOSTUNREACH),
    (None, "100.64.0.9", errno.ENETUNREACH),
    (None, "2001:db8:dead::9", errno.ENETUNREACH),
])
def test_udp_unreachable_at_the_far_end_is_the_icmp_a_kernel_router_sends(
        world: World, route: str | None, dst: str, err: int) -> None:
    """The UDP twin of the test above: the relay's upstream UDP socket in B
    gets EHOSTUNREACH / EACCES / ENETUNREACH from connect(), and A's
    connected UDP socket hears the ICMP a Linux router with that route sends
    (host unreachable, packet filtered, net unreachable / ICMPv6 no route),
    turned into its errno by A's kernel.  Net and host unreachable are soft
    errors for a Linux UDP socket (__udp4_lib_err, __udp6_lib_err report
    them only with IP_RECVERR / IPV6_RECVERR), so A's socket sets it."""
    from tcpio.core.udp import IP_RECVERR, IPV6_RECVERR
    if route is not None:
        world.b.ip("route", "add", route, f"{dst.rsplit('.', 1)[0]}.0/24")
    v6 = ":" in dst
    c = world.client(socket.SOCK_DGRAM, family=socket.AF_INET6 if v6 else socket.AF_INET)
    if v6:
        c.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    else:
        c.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    c.settimeout(5)
    c.connect((dst, 53))
    c.send(b"anyone there?")
    with pytest.raises(OSError) as exc:
        c.recv(100)
    assert exc.value.errno == err, exc.value
    log = world.stop()
    assert f"{dst}]:53 failed" in log or f"{dst}:53 failed" in log, log
