"""Stream echo with 1000 concurrent kernel clients, and drain() against a kernel
reader that stops reading, over a TAP.

Oracles: the kernel's own TCP (an asyncio script in the namespace on kernel
sockets checks every echoed byte) and tcpio's MIB (PassiveOpens); for the
back-pressure test, bytes written by a draining writer stay bounded by the
buffers on the path while the kernel side does not read.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import textwrap

import pytest
from conftest import require_tap
from fake_core import both_loops, stream_echo
from netns import kernel_peer

pytestmark = pytest.mark.tap

CLIENTS = 1000

KERNEL_CLIENTS = textwrap.dedent("""
    import asyncio, os, resource, sys
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 256, n + 256))
    async def one(i):
        r, w = await asyncio.open_connection(host, port)
        msg = os.urandom(1000 + i % 500)
        w.write(msg)
        await w.drain()
        got = await r.readexactly(len(msg))
        w.close()
        await w.wait_closed()
        return got == msg
    async def main():
        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
        ok = sum(1 for r in results if r is True)
        errors = {type(r).__name__ for r in results if isinstance(r, BaseException)}
        print(ok, sorted(errors))
    asyncio.run(main())
""")


@both_loops
async def test_1000_concurrent_kernel_echo_clients(tmp_path) -> None:  # type: ignore[no-untyped-def]
    require_tap()
    async with kernel_peer(ipv6=False) as peer:
        server = await peer.stack.start_server(stream_echo, peer.tcpio_ip, 7, backlog=CLIENTS)
        opens = peer.stack.mib().get("PassiveOpens", 0)
        (tmp_path / "clients.py").write_text(KERNEL_CLIENTS)
        res = await peer.ns.arun(sys.executable, str(tmp_path / "clients.py"), peer.tcpio_ip,
                                 "7", str(CLIENTS), timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        ok, errors = res.stdout.split(" ", 1)
        assert int(ok) == CLIENTS, errors
        assert peer.stack.mib().get("PassiveOpens", 0) - opens == CLIENTS
        server.close()
        await server.wait_closed()


@both_loops
async def test_drain_holds_memory_flat_against_a_kernel_reader_that_stops() -> None:
    require_tap()
    async with kernel_peer(ipv6=False) as peer:
        listener = peer.ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        listener.bind((peer.kernel_ip, 9000))
        listener.listen(1)
        listener.setblocking(False)
        loop = asyncio.get_running_loop()
        accept = loop.create_task(loop.sock_accept(listener))
        _reader, writer = await peer.stack.open_connection(peer.kernel_ip, 9000)
        conn, _ = await accept
        transport = writer.transport
        high = transport.get_write_buffer_limits()[1]
        chunk = b"d" * 16384
        written = 0

        async def pump() -> None:
            nonlocal written
            while True:
                writer.write(chunk)
                written += len(chunk)
                assert transport.get_write_buffer_size() <= high + len(chunk)
                await writer.drain()

        task = asyncio.create_task(pump())
        try:
            # The kernel never reads: its receive buffer and tcpio's send buffer
            # fill, then drain() blocks and ``written`` stops growing.
            samples = []
            for _ in range(3):
                await asyncio.sleep(0.5)
                samples.append(written)
            assert not task.done()
            assert samples[1] == samples[2]          # flat
            kernel_rcvbuf = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            # tcpio's send buffer autotunes (tcp_sndbuf_expand) up to tcp_wmem[2]:
            # read its size now that it has stopped growing
            sndbuf = transport.get_extra_info("tcp_sock").getsockopt(socket.SOL_SOCKET,
                                                                     socket.SO_SNDBUF)
            assert written <= high + len(chunk) + sndbuf + kernel_rcvbuf + len(chunk)
            # and it flows again once the kernel reads
            conn.setblocking(False)
            drained = 0
            while drained < samples[2] // 2:
                drained += len(await loop.sock_recv(conn, 1 << 20))
            for _ in range(100):
                if written > samples[2]:
                    break
                await asyncio.sleep(0.01)
            assert written > samples[2]
        finally:
            task.cancel()
            writer.transport.abort()
            conn.close()
            listener.close()
