"""tcpio.server.Server behaves like asyncio.Server (3.12+ semantics).

Oracle: asyncio's documented Server API: close stops listening,
wait_closed waits for the connections to end, serve_forever, async with,
close_clients/abort_clients, is_serving, sockets, get_loop.
"""

from __future__ import annotations

import asyncio
import errno

import pytest
from fake_core import KINDS, both_loops, make_pair
from stackutil import run_on, until, wired_stacks
from test_transport import Recorder

import tcpio
from tcpio.server import Server

# the glue's tests run on the fake core and on real Stacks over a MemoryWire
all_kinds = pytest.mark.parametrize("kind", KINDS)


@all_kinds
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


@all_kinds
@both_loops
async def test_port_zero_picks_a_port(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, None, 0)
    host, port = server.sockets[0].getsockname()
    assert host == "0.0.0.0" and port > 0
    t, _ = await cli.create_connection(Recorder, "10.0.0.1", port)
    t.close()
    server.close()


@all_kinds
@both_loops
async def test_closed_server_refuses_new_connections(kind: str) -> None:
    srv, cli = await make_pair(kind)
    server = await srv.create_server(Recorder, "10.0.0.1", 80)
    server.close()
    with pytest.raises(ConnectionRefusedError):
        await cli.create_connection(Recorder, "10.0.0.1", 80)


@all_kinds
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


@all_kinds
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


class Accepted:
    """A protocol factory for servers: a Recorder per accepted connection,
    and ``await accepted.wait(n)`` until n connections were made."""

    def __init__(self) -> None:
        self.protocols: list[Recorder] = []
        self._changed = asyncio.Event()

    def __call__(self) -> Recorder:
        p = Recorder()
        self.protocols.append(p)
        self._changed.set()
        return p

    async def wait(self, n: int) -> list[Recorder]:
        while len(self.protocols) < n:
            self._changed.clear()
            await self._changed.wait()
        await asyncio.sleep(0)      # connection_made runs in the next loop iteration
        return self.protocols


@all_kinds
@both_loops
async def test_close_clients_and_abort_clients(kind: str) -> None:
    """asyncio's Server.close_clients closes each accepted transport (the
    peer reads EOF: a FIN, then its connection ends without error);
    abort_clients aborts them (the peer gets a reset, no EOF)."""
    srv, cli = await make_pair(kind)
    accepted = Accepted()
    server = await srv.create_server(accepted, "10.0.0.1", 80)
    _, p1 = await cli.create_connection(Recorder, "10.0.0.1", 80)
    _, p2 = await cli.create_connection(Recorder, "10.0.0.1", 80)
    s1, s2 = await accepted.wait(2)
    server.close()
    server.close_clients()
    assert await p1.lost is None and await p2.lost is None
    assert p1.events == p2.events == ["made", "eof", "lost"]
    await server.wait_closed()
    assert [p.events[-1] for p in (s1, s2)] == ["lost", "lost"]
    assert s1.exc is None and s2.exc is None

    accepted2 = Accepted()
    server2 = await srv.create_server(accepted2, "10.0.0.1", 81)
    _, p3 = await cli.create_connection(Recorder, "10.0.0.1", 81)
    (s3,) = await accepted2.wait(1)
    server2.abort_clients()
    exc = await p3.lost
    assert type(exc) is ConnectionResetError and exc.errno == errno.ECONNRESET
    assert p3.events == ["made", "lost"]            # a reset, not an EOF
    assert await s3.lost is None                    # abort() is not an error locally
    server2.close()
    await server2.wait_closed()


@all_kinds
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


@all_kinds
@both_loops
async def test_async_with_closes_and_waits(kind: str) -> None:
    srv, cli = await make_pair(kind)
    async with await srv.create_server(Recorder, "10.0.0.1", 80) as server:
        t, p = await cli.create_connection(Recorder, "10.0.0.1", 80)
        t.close()
        await p.lost
    assert not server.is_serving()


def test_backlog_bounds_the_accept_queue_until_serving() -> None:
    """listen(backlog) before the server serves, as Linux bounds it.

    The accept queue holds backlog + 1 connections: sk_acceptq_is_full is
    ``sk_ack_backlog > sk_max_ack_backlog``.  A final ACK that finds it full
    is dropped (tcp_check_req: the connection stays in SYN-RECV although the
    client believes it is established), and so is a SYN (tcp_conn_request:
    the client stays in SYN-SENT); each drop counts ListenOverflows and
    ListenDrops.  Once the server serves it accepts the queue, and the
    waiting handshakes complete on their retransmissions.  Real stacks on the
    virtual clock (the retransmissions take seconds); the fake core has no
    handshakes to drop.
    """
    async def main() -> None:
        async with wired_stacks() as (srv, cli):
            lsock = srv.socket(tcpio.SOCK_STREAM)
            lsock.bind(("10.0.0.1", 80))
            lsock.listen(2)
            accepted: list[Recorder] = []
            server = await srv.create_server(
                lambda: accepted.append(Recorder()) or accepted[-1],
                sock=lsock, backlog=2, start_serving=False)

            def listener() -> tuple[int, int]:
                (row,) = [r for r in srv.connections() if r.state == "LISTEN"]
                return row.recv_q, row.send_q       # ss: queued, backlog

            def drops() -> tuple[int, int]:
                mib = srv.mib()
                return mib.get("ListenOverflows", 0), mib.get("ListenDrops", 0)

            def server_states() -> list[str]:
                return sorted(r.state for r in srv.connections() if r.state != "LISTEN")

            clients = [await cli.create_connection(Recorder, "10.0.0.1", 80)
                       for _ in range(2)]
            await until(lambda: listener() == (2, 2))
            # Two handshakes at once: both SYNs find room, the first final ACK
            # fills the queue to backlog + 1, the second is dropped.
            clients += await asyncio.gather(
                *(cli.create_connection(Recorder, "10.0.0.1", 80) for _ in range(2)))
            await until(lambda: drops() == (1, 1))
            assert listener() == (3, 2)
            assert server_states() == ["ESTAB"] * 3 + ["SYN-RECV"]
            # A SYN now: dropped, not answered; that client stays in SYN-SENT.
            late = asyncio.create_task(cli.create_connection(Recorder, "10.0.0.1", 80))
            await until(lambda: drops() == (2, 2))
            assert not late.done() and listener() == (3, 2)
            assert "SYN-SENT" in [r.state for r in cli.connections()]
            assert server_states() == ["ESTAB"] * 3 + ["SYN-RECV"]
            assert accepted == []

            await server.start_serving()
            await until(lambda: len(accepted) == 3)
            clients.append(await asyncio.wait_for(late, 30))
            await until(lambda: len(accepted) == 5)
            assert listener() == (0, 2)
            for i, (t, _) in enumerate(clients):
                t.write(b"client %d" % i)
            await until(lambda: sorted(bytes(p.data) for p in accepted)
                        == [b"client %d" % i for i in range(5)])
            for t, _ in clients:
                t.close()
            server.close()
            await server.wait_closed()

    run_on("virtual", main)


@all_kinds
@both_loops
async def test_factory_error_is_reported_and_connection_reset(kind: str) -> None:
    """asyncio's rule for a failing protocol factory: the exception goes to
    the loop's exception handler, that connection is aborted (the client
    gets a reset), and the server goes on accepting."""
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    accepted = Accepted()

    def factory_failing_once() -> asyncio.Protocol:
        if not errors:
            raise ZeroDivisionError
        return accepted()

    srv, cli = await make_pair(kind)
    server = await srv.create_server(factory_failing_once, "10.0.0.1", 80)
    # the RST may arrive before or after connect() returned: both are resets
    try:
        _, p = await cli.create_connection(Recorder, "10.0.0.1", 80)
        exc = await p.lost
        assert "eof" not in p.events
    except ConnectionResetError as e:
        exc = e
    assert type(exc) is ConnectionResetError and exc.errno == errno.ECONNRESET
    assert len(errors) == 1
    assert type(errors[0]["exception"]) is ZeroDivisionError
    assert "protocol factory" in errors[0]["message"]
    # The next connection is served.
    t, p = await cli.create_connection(Recorder, "10.0.0.1", 80)
    (sp,) = await accepted.wait(1)
    t.write(b"still serving")
    while bytes(sp.data) != b"still serving":
        await asyncio.sleep(0)
    t.close()
    await p.lost
    assert len(errors) == 1
    server.close()
