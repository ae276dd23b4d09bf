"""1000 concurrent stream echo clients between two real Stacks over a MemoryWire.

Every client checks its own random message comes back intact; the server
host's MIB must count exactly one passive open per client, and the client
host one active open each.
"""

from __future__ import annotations

import asyncio
import os

from fake_core import both_loops, make_pair, stream_echo

CLIENTS = 1000


@both_loops
async def test_1000_concurrent_echo_clients_over_memory_wire() -> None:
    srv, cli = await make_pair("memory")
    server = await srv.start_server(stream_echo, "10.0.0.1", 7, backlog=CLIENTS)
    # Resolve ARP first: 1000 SYNs queued behind one unresolved neighbour
    # overflow its queue (arp_unres_qlen), which is not what this test is about.
    _, w = await cli.open_connection("10.0.0.1", 7)
    w.close()
    await w.wait_closed()
    before_srv, before_cli = srv.mib(), cli.mib()

    async def one(i: int) -> bool:
        reader, writer = await cli.open_connection("10.0.0.1", 7)
        msg = os.urandom(500 + i % 1000)
        writer.write(msg)
        await writer.drain()
        got = await reader.readexactly(len(msg))
        writer.close()
        await writer.wait_closed()
        return got == msg

    results = await asyncio.gather(*(one(i) for i in range(CLIENTS)))
    assert all(results)
    assert srv.mib()["PassiveOpens"] - before_srv.get("PassiveOpens", 0) == CLIENTS
    assert cli.mib()["ActiveOpens"] - before_cli.get("ActiveOpens", 0) == CLIENTS
    server.close()
    await server.wait_closed()
