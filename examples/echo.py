"""Two hosts in one process, joined by a lossy in-memory wire: a TCP echo.

    python examples/echo.py
"""

import asyncio

import tcpio


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main() -> None:
    wire = tcpio.MemoryWire(loss=0.01, delay=0.002, seed=1)
    async with tcpio.Stack() as server_host, tcpio.Stack() as client_host:
        server_host.add_interface(wire.a, "10.0.0.1/24")
        client_host.add_interface(wire.b, "10.0.0.2/24")

        server = await server_host.start_server(handle, "0.0.0.0", 7)
        reader, writer = await client_host.open_connection("10.0.0.1", 7)
        payload = b"hello over a userspace TCP " * 10000
        writer.write(payload)
        writer.write_eof()
        echoed = await reader.read()  # until the server's FIN
        assert echoed == payload
        print(f"echoed {len(echoed)} bytes over 1% loss")
        print(client_host.format_connections())
        mib = client_host.mib()
        print("counters:", {k: mib.get(k, 0) for k in
                            ("ActiveOpens", "OutSegs", "InSegs", "RetransSegs")})
        writer.close()
        server.close()


if __name__ == "__main__":
    asyncio.run(main())
