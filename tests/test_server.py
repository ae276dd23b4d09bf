"""tcpio.server.Server behaves like asyncio.Server (3.12+ semantics).

Oracle: asyncio's documented Server API: close stops listening,
wait_closed waits for the connections to end, serve_forever, async with,
close_clients/abort_clients, is_serving, sockets, get_loop.
"""

from __future__ import annotations

import asyncio

import pytest
from fake_core import KINDS, both_loops, make_pair
from test_transport import Recorder

from tcpio.server import Server

# every test runs on the fake core and on real Stacks over a MemoryWire
pytestmark = pytest.mark.parametrize("kind", KINDS)


@both_loops
async def test_sockets_is_serving_get_loop(kind: str) -> None:
    srv, _ = await make_pair(kind)
    server = await srv.create_server(asyncio.Protocol, "10.0.0.1", 8080)
    assert isinstance(server, Server) and isinstance(server, asyncio.AbstractServer)
    assert server.is_serving()
    assert server.get_loop() is asyncio.get_running_loop()
    assert [s.getsockname() for s in server.sockets] == [("10.0.0.1", 8080)]
    server.close()
    assert not server.is_serving()
    assert server.sockets == ()
    await server.wait_closed()


@both_loops
async def test_port_zero_picks_a_port(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, None, 0)
    host, port = server.sockets[0].getsockname()
    assert host == "0.0.0.0" and port > 0
    t, _ = await cli.create_connection(Recorder, "10.0.0.1", port)
    t.close()
    server.close()


@both_loops
async def test_closed_server_refuses_new_connections(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, "10.0.0.1", 80)
    server.close()
    with pytest.raises(ConnectionRefusedError):
        await cli.create_connection(Recorder, "10.0.0.1", 80)


@both_loops
async def test_start_serving_false_does_not_listen_yet(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, "10.0.0.1", 80, start_serving=False)
    assert not server.is_serving()
    with pytest.raises(ConnectionRefusedError):
        await cli.create_connection(Recorder, "10.0.0.1", 80)
    await server.start_serving()
    assert server.is_serving()
    t, _ = await cli.create_connection(Recorder, "10.0.0.1", 80)
    t.close()
    server.close()


@both_loops
async def test_wait_closed_waits_for_connections_to_end(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, "10.0.0.1", 80)
    t, p = await cli.create_connection(Recorder, "10.0.0.1", 80)
    await asyncio.sleep(0.01)
    server.close()
    waiter = asyncio.create_task(server.wait_closed())
    await asyncio.sleep(0.02)
    assert not waiter.done()          # a connection is still open
    t.write(b"still works after close()")
    t.close()                         # the server side sees EOF and closes
    await waiter
    await p.lost


@both_loops
async def test_close_clients_and_abort_clients(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, "10.0.0.1", 80)
    _, p1 = await cli.create_connection(Recorder, "10.0.0.1", 80)
    _, p2 = await cli.create_connection(Recorder, "10.0.0.1", 80)
    await asyncio.sleep(0.01)
    server.close()
    server.close_clients()
    await p1.eof          # orderly: FIN
    await p2.eof
    await server.wait_closed()

    server2 = await srv.create_server(Recorder, "10.0.0.1", 81)
    _, p3 = await cli.create_connection(Recorder, "10.0.0.1", 81)
    await asyncio.sleep(0.01)
    server2.abort_clients()
    exc = await p3.lost
    assert isinstance(exc, ConnectionResetError)
    server2.close()
    await server2.wait_closed()


@both_loops
async def test_serve_forever_and_cancel(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, "10.0.0.1", 80, start_serving=False)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0.01)
    assert server.is_serving()
    t, _ = await cli.create_connection(Recorder, "10.0.0.1", 80)
    t.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not server.is_serving()
    with pytest.raises(RuntimeError):
        await server.serve_forever()    # closed


@both_loops
async def test_async_with_closes_and_waits(kind: str) -> None:
    srv, cli = await make_pair(kind)
    async with await srv.create_server(Recorder, "10.0.0.1", 80) as server:
        t, p = await cli.create_connection(Recorder, "10.0.0.1", 80)
        t.close()
        await p.lost
    assert not server.is_serving()


@both_loops
async def test_backlog_bounds_the_accept_queue_until_serving(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, "10.0.0.1", 80, backlog=2)
    # the server accepts as fast as connections come, so many more than the
    # backlog succeed one after another
    conns = [await cli.create_connection(Recorder, "10.0.0.1", 80) for _ in range(10)]
    for t, _ in conns:
        t.close()
    server.close()
    await server.wait_closed()


@both_loops
async def test_factory_error_is_reported_and_connection_reset(kind: str) -> None:
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))

    def bad_factory() -> asyncio.Protocol:
        raise ZeroDivisionError

    srv, cli = await make_pair(kind)
    server = await srv.create_server(bad_factory, "10.0.0.1", 80)
    # the RST may arrive before or after connect() returned: both are resets
    try:
        _, p = await cli.create_connection(Recorder, "10.0.0.1", 80)
        exc = await p.lost
    except ConnectionResetError as e:
        exc = e
    assert isinstance(exc, ConnectionResetError)
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    server.close()
