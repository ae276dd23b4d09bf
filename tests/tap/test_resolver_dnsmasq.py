"""Names through a real DNS server: dnsmasq in the kernel peer's namespace.

dnsmasq (Debian's) listens on 10.7.0.1:53 inside the private namespace and
answers for ``zone.test`` from a hosts file it is given (nothing is forwarded
anywhere: ``--no-resolv``, ``--local=/zone.test/``); tcpio at 10.7.0.2 asks it
over the TAP.  The reference for every answer is glibc itself: the same
lookup by ``socket.getaddrinfo`` in a process inside the namespace, whose
resolv.conf (``/etc/netns/NS/resolv.conf``, which ``ip netns exec`` mounts)
names the same dnsmasq.

``many.zone.test`` has 60 A records, 960 bytes of answer: dnsmasq truncates
its UDP answer to a query without EDNS (512 bytes, RFC 1035 4.2.1) and sets
TC, so tcpio must ask again over TCP.  Each test runs on asyncio's default
loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fake_core import both_loops
from netns import KernelPeer, kernel_peer

pytestmark = pytest.mark.tap

needs_dnsmasq = pytest.mark.skipif(shutil.which("dnsmasq") is None,
                                   reason="dnsmasq (Debian package) missing")

MANY = [f"10.7.{1 + i // 200}.{1 + i % 200}" for i in range(60)]
HOSTS = "\n".join(["10.7.0.1 www.zone.test", "10.7.0.9 other.zone.test",
                   *(f"{ip} many.zone.test" for ip in MANY)]) + "\n"

# One lookup per (name, flags) argument, as glibc answers it.
GLIBC = """
import json, socket, sys
out = []
for arg in sys.argv[1:]:
    name, flags = json.loads(arg)
    try:
        infos = socket.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM, 0, flags)
        out.append([infos[0][3], sorted(i[4][0] for i in infos)])
    except socket.gaierror as exc:
        out.append(exc.errno)
print(json.dumps(out))
"""
# AF_INET without AI_CANONNAME is the path CPython's connect() takes, where glibc
# refuses a malformed numeric name without a query; with AI_CANONNAME (or
# AF_UNSPEC) glibc sends "10.0.0.300" to the server, which tcpio never does.
LOOKUPS = [("www.zone.test", 0), ("alias.zone.test", socket.AI_CANONNAME),
           ("many.zone.test", 0), ("nosuch.zone.test", 0), ("10.0.0.300", 0)]


@contextlib.asynccontextmanager
async def dnsmasq(peer: KernelPeer, tmp: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    hosts = tmp / "zone.hosts"
    hosts.write_text(HOSTS)
    proc = await asyncio.create_subprocess_exec(
        *peer.ns.exec_argv(
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
            "--no-hosts", f"--addn-hosts={hosts}", "--local=/zone.test/",
            "--cname=alias.zone.test,www.zone.test", "--local-ttl=60",
            "--bind-interfaces", f"--listen-address={peer.kernel_ip}", "--port=53",
            "--user=root", "--group=root", f"--pid-file={tmp / 'dnsmasq.pid'}",
            "--log-queries", f"--log-facility={tmp / 'dnsmasq.log'}"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):           # listening on UDP and TCP 53 yet?
            out = (await peer.ns.arun("ss", "-lnH", "sport", "=", ":53")).stdout
            if out.count(f"{peer.kernel_ip}:53") >= 2:
                break
            if proc.returncode is not None:
                err = await proc.stderr.read() if proc.stderr else b""
                pytest.fail(f"dnsmasq exited: {err.decode(errors='replace')}")
            await asyncio.sleep(0.05)
        else:
            pytest.fail("dnsmasq did not start listening")
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


@contextlib.contextmanager
def netns_resolv_conf(peer: KernelPeer) -> Any:
    """resolv.conf for processes started by ``ip netns exec`` in the namespace."""
    folder = Path("/etc/netns") / peer.ns.name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        (folder / "resolv.conf").write_text(
            f"nameserver {peer.kernel_ip}\noptions timeout:2 attempts:1\n")
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def glibc_answers(peer: KernelPeer, lookups: list[tuple[str, int]]) -> list[Any]:
    with netns_resolv_conf(peer):
        res = await peer.ns.arun(sys.executable, "-c", GLIBC,
                                 *(json.dumps(x) for x in lookups), check=True)
    return json.loads(res.stdout)


async def tcpio_answers(peer: KernelPeer, lookups: list[tuple[str, int]]) -> list[Any]:
    out: list[Any] = []
    for name, flags in lookups:
        try:
            infos = await peer.stack.getaddrinfo(name, 80, socket.AF_INET, socket.SOCK_STREAM,
                                                 0, flags)
            out.append([infos[0][3], sorted(i[4][0] for i in infos)])
        except socket.gaierror as exc:
            out.append(exc.errno)
    return out


@needs_dnsmasq
@both_loops
async def test_tcpio_resolves_as_glibc_does_through_dnsmasq(tap_required: None,
                                                            tmp_path: Path) -> None:
    async with kernel_peer(ipv6=False) as peer, dnsmasq(peer, tmp_path):
        peer.stack.set_name_servers([peer.kernel_ip], timeout=2, attempts=1)
        ours = await tcpio_answers(peer, LOOKUPS)
        theirs = await glibc_answers(peer, LOOKUPS)
        stats = dict(peer.stack.resolver.stats)
    assert ours == theirs
    www, alias, many, nosuch, malformed = ours
    assert www == ["", ["10.7.0.1"]] and alias == ["www.zone.test", ["10.7.0.1"]]
    assert many == ["", sorted(MANY)]
    assert nosuch == malformed == socket.EAI_NONAME
    assert stats["tcp_fallbacks"] == 1           # only "many" was truncated
    log = (tmp_path / "dnsmasq.log").read_text()
    assert "query[A] many.zone.test from 10.7.0.2" in log
    assert "10.0.0.300" not in log               # never asked, as glibc never asks


@needs_dnsmasq
@both_loops
async def test_open_connection_by_name_over_tap(tap_required: None, tmp_path: Path) -> None:
    async with kernel_peer(ipv6=False) as peer, dnsmasq(peer, tmp_path):
        peer.stack.set_name_servers([peer.kernel_ip], search=["zone.test"])
        listener = peer.ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((peer.kernel_ip, 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        loop = asyncio.get_running_loop()

        async def kernel_echo() -> None:
            conn, _ = await loop.sock_accept(listener)
            with conn:
                conn.setblocking(False)
                await loop.sock_sendall(conn, await loop.sock_recv(conn, 100))

        try:
            echo = asyncio.ensure_future(kernel_echo())
            reader, writer = await peer.stack.open_connection("www", port)   # search list
            writer.write(b"by name")
            got = await asyncio.wait_for(reader.read(100), 10)
            writer.close()
            await echo
            peername = writer.get_extra_info("peername")
            host, _ = await peer.stack.getnameinfo((peer.kernel_ip, port))   # PTR
        finally:
            listener.close()
    assert got == b"by name" and peername == (peer.kernel_ip, port)
    assert host == "www.zone.test"
    assert not peer.stack._endpoints               # every query endpoint closed
