"""TLS between the kernel's ``ssl`` module and tcpio, both directions, over a TAP.

A throwaway certificate (made here) names the server's address; the
kernel-side peer is a Python subprocess in the namespace using kernel
sockets and OpenSSL, so handshake and records are checked by an independent
TCP and the same TLS library.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import require_tap
from fake_core import both_loops, stream_echo, write_and_read_back
from netns import kernel_peer
from test_tls import make_cert

pytestmark = pytest.mark.tap

PAYLOAD = 1_000_000

KERNEL_CLIENT = textwrap.dedent("""
    import socket, ssl, sys
    host, port, cafile, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    ctx = ssl.create_default_context(cafile=cafile)
    data = bytes(range(256)) * (n // 256)
    with socket.create_connection((host, port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            print(s.version(), "OK" if got == data else f"BAD {len(got)}")
""")

KERNEL_SERVER = textwrap.dedent("""
    import socket, ssl, sys
    host, port, certfile, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certfile, keyfile)
    with socket.create_server((host, port)) as ls:
        print("READY", flush=True)
        conn, _ = ls.accept()
        with ctx.wrap_socket(conn, server_side=True) as s:
            while data := s.recv(65536):
                s.sendall(data)
            print(s.version(), "DONE", flush=True)
""")


def write_cert(tmp_path: Path, ip: str) -> bytes:
    """A certificate for ``ip`` as tmp_path/cert.pem and its key as key.pem."""
    cert, key = make_cert(ip)
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    return cert


@both_loops
async def test_kernel_ssl_client_to_tcpio_tls_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_tap()
    async with kernel_peer(ipv6=False) as peer:
        write_cert(tmp_path, peer.tcpio_ip)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        server = await peer.stack.start_server(stream_echo, peer.tcpio_ip, 4433, ssl=ctx)
        (tmp_path / "client.py").write_text(KERNEL_CLIENT)
        res = await peer.ns.arun(sys.executable, str(tmp_path / "client.py"), peer.tcpio_ip,
                                 "4433", str(tmp_path / "cert.pem"), str(PAYLOAD), timeout=60)
        assert res.returncode == 0, res.stderr
        version, verdict = res.stdout.split()
        assert verdict == "OK" and version.startswith("TLSv1.")
        server.close()


@both_loops
async def test_tcpio_tls_client_to_kernel_ssl_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_tap()
    async with kernel_peer(ipv6=False) as peer:
        cert = write_cert(tmp_path, peer.kernel_ip)
        (tmp_path / "server.py").write_text(KERNEL_SERVER)
        proc = await asyncio.create_subprocess_exec(
            *peer.ns.exec_argv(sys.executable, str(tmp_path / "server.py"), peer.kernel_ip,
                               "4443", str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            assert (await proc.stdout.readline()).strip() == b"READY"
            client_ctx = ssl.create_default_context(cadata=cert.decode())
            reader, writer = await peer.stack.open_connection(peer.kernel_ip, 4443,
                                                              ssl=client_ctx)
            assert writer.get_extra_info("ssl_object").version().startswith("TLSv1.")
            data = bytes(range(256)) * (PAYLOAD // 256)
            assert await write_and_read_back(reader, writer, data) == data
            writer.close()
            await writer.wait_closed()
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.split()[-1] == b"DONE"
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
