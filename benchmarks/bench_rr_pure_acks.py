"""Pure ACKs a request/response connection costs at its start (pingpong mode).

    python benchmarks/bench_rr_pure_acks.py [--rounds 20]

Two tcpio stacks on a MemoryWire in this process; the client writes 1 byte
and waits for the server's echo, ``--rounds`` times, then waits 0.1 s (the
last answer's delayed ACK).  Printed: each side's TCP segments (MIB OutSegs,
so ARP is not counted) split into the handshake, the data segments (one per
request, one per answer) and the pure ACKs left over.  Counts, not times:
run it on two trees (PYTHONPATH) to compare.

Linux's reference: the first request and the first answer are ACKed at once
(quick-ACK mode), then an answer sent within the ATO of the request
(tcp_event_data_sent) puts each side in pingpong mode and every later ACK
rides on data, so one pure ACK per side plus the client's final delayed one.
Without pingpong mode every request and answer spent a quick ACK until
quick-ACK mode's count (up to 16, one per segment sent) ran out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import tcpio

PORT = 7000


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(100):
        writer.write(data)
        await writer.drain()
    writer.close()


async def measure(rounds: int) -> None:
    wire = tcpio.MemoryWire(seed=1)
    ends = (("client", wire.a, "10.0.0.1/24"), ("server", wire.b, "10.0.0.2/24"))
    async with contextlib.AsyncExitStack() as stack:
        a, b = [await stack.enter_async_context(tcpio.Stack(seed=i, name=name))
                for i, (name, _, _) in enumerate(ends, 1)]
        for st, (_, dev, addr) in zip((a, b), ends):
            st.add_interface(dev, addr)
        server = await b.start_server(echo, "10.0.0.2", PORT)
        c0, s0 = a.mib().get("OutSegs", 0), b.mib().get("OutSegs", 0)
        reader, writer = await a.open_connection("10.0.0.2", PORT)
        for _ in range(rounds):
            writer.write(b"x")
            assert await reader.read(1) == b"x"
        await asyncio.sleep(0.1)
        c = a.mib().get("OutSegs", 0) - c0
        s = b.mib().get("OutSegs", 0) - s0
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0.05)
        server.close()
    print(f"{rounds} request/response rounds over a MemoryWire:")
    print(f"  client: {c} segments = SYN + ACK + {rounds} requests + {c - 2 - rounds} pure ACKs")
    print(f"  server: {s} segments = SYN-ACK + {rounds} answers + {s - 1 - rounds} pure ACKs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    asyncio.run(measure(ap.parse_args().rounds))


if __name__ == "__main__":
    main()
