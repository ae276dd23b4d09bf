"""Joined super-frames (tcpio/core/tx_coalesce.py) against the Linux kernel
over TAP: many tcpio flows send to a kernel sink at once, so tcp_tso_autosize
makes small bursts and the driver joins them; the kernel's TCP must take
every joined frame (one skb each: IP header, lengths and sequence checked;
the partial checksum it trusts on local delivery is checked in
tests/test_tx_coalesce_rules.py) and hand each connection's bytes to the
sink intact, in order.  Oracles: the sink's digests, and the kernel's
out-of-order and error counters."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import textwrap

import pytest
from netns import kernel_peer

from .test_tcp_kernel_common import kernel_mib

pytestmark = pytest.mark.tap

PORT = 7460
FLOWS = 100
SIZE = 192 * 1024

SINK = textwrap.dedent("""
    import asyncio, hashlib, sys
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    digests = {}
    async def main():
        done = asyncio.get_running_loop().create_future()
        async def handle(r, w):
            data = await r.read()
            digests[data[:4].hex()] = hashlib.sha256(data).hexdigest()
            w.close()
            if len(digests) == n and not done.done():
                done.set_result(None)
        server = await asyncio.start_server(handle, host, port, backlog=4096)
        print("listening", flush=True)
        await asyncio.wait_for(done, 120)
        server.close()
        print(" ".join(f"{k}:{v}" for k, v in sorted(digests.items())), flush=True)
    asyncio.run(main())
""")


def payload(i: int) -> bytes:
    body = hashlib.sha256(i.to_bytes(4, "big")).digest() * (SIZE // 32 + 1)
    return (i.to_bytes(4, "big") + body)[:SIZE]


async def test_many_flows_joined_frames_reach_the_kernel_intact(tap_required, tmp_path):  # type: ignore[no-untyped-def]
    script = tmp_path / "sink.py"
    script.write_text(SINK)
    async with kernel_peer(ipv6=False) as peer:
        await peer.stack.ping(peer.kernel_ip, timeout=5.0)
        k_before = kernel_mib(peer.ns)
        proc = await asyncio.create_subprocess_exec(
            *peer.ns.exec_argv(sys.executable, str(script), peer.kernel_ip, str(PORT),
                               str(FLOWS)),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        assert b"listening" in await asyncio.wait_for(proc.stdout.readline(), 30)

        async def flow(i: int) -> None:
            reader, writer = await peer.stack.open_connection(peer.kernel_ip, PORT)
            data = memoryview(payload(i))
            for off in range(0, SIZE, 1 << 16):
                writer.write(data[off:off + (1 << 16)])
                await writer.drain()
            writer.write_eof()
            await reader.read()
            writer.close()

        await asyncio.wait_for(asyncio.gather(*(flow(i) for i in range(FLOWS))), 120)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        k_after = kernel_mib(peer.ns)
        joined = peer.stack.tx_coalesced
        gso = dict(peer.tap.gso_stats)
    got = dict(item.split(":") for item in out.decode().split())
    want = {i.to_bytes(4, "big").hex(): hashlib.sha256(payload(i)).hexdigest()
            for i in range(FLOWS)}
    assert got == want
    # frames were joined and went out as super-frames, and the kernel took
    # every one in order: a joined frame it dropped (a bad IP header, a length
    # that does not fit) would put the rest of its flow out of order, which
    # tcpio's retransmissions then repair (so the digests alone cannot tell)
    assert joined > 0 and gso["tx_gso_frames"] > 0
    assert k_after["TCPOFOQueue"] == k_before.get("TCPOFOQueue", 0)
    assert k_after["InErrs"] == k_before["InErrs"]
