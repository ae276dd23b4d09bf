"""The tcpio loop itself: what is the stack's, what stays the wrapped loop's, what is refused.

- Not network: timers, executors, signals and subprocesses are the wrapped
  loop's own (the loop *is* an instance of the base class).
- ``loop_factory`` for ``asyncio.Runner`` (3.11+; ``asyncio.run`` takes it
  from 3.12): setup runs on the loop's stack, sync or async, and the stack
  closes with the loop.
- ``sock_*`` on tcpio sockets, ``connect_accepted_socket``, ``start_tls``,
  ``sendfile``/``sock_sendfile``, UDP ``sock_sendto``/``sock_recvfrom``.
- Kernel sockets: refused with a TypeError that says it is a kernel socket,
  except a fresh one given to ``sock_connect``, which then stands for a tcpio
  socket (what aiohttp's aiohappyeyeballs does).
Each test runs over asyncio's default loop and over uvloop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Any

import pytest
from looputil import CLIENT_IP, LOOP_CLASSES, PEER_IP, Net, loop_names, on_tcpio, until
from test_tls import tls_contexts

import tcpio
from tcpio.loop import TcpioEventLoop


async def echo_server(net: Net, port: int) -> Any:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    with tcpio.use_stack(net.peer):
        return await asyncio.start_server(echo, PEER_IP, port)


@loop_names
def test_timers_executor_signals_subprocesses_are_the_wrapped_loops(loop_name: str) -> None:
    async def main(net: Net) -> Any:
        loop = asyncio.get_running_loop()
        order: list[int] = []
        done = loop.create_future()
        # The later deadline is scheduled first, so order by deadline differs
        # from order of scheduling.  The gap is wide: uvloop keeps time in
        # whole milliseconds and may advance it between two call_later()s on
        # a loaded machine (0.002 then 0.001 once tied, and fired as scheduled).
        loop.call_later(0.05, order.append, 2)
        loop.call_later(0.001, order.append, 1)
        loop.call_soon(order.append, 0)
        loop.call_later(0.06, done.set_result, None)
        await done
        in_thread = await loop.run_in_executor(None, sum, [1, 2, 3])
        got_signal = asyncio.Event()
        loop.add_signal_handler(signal.SIGUSR1, got_signal.set)
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            await got_signal.wait()
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print(6 * 7)", stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return loop, order, in_thread, out

    loop, order, in_thread, out = on_tcpio(loop_name, main)
    assert isinstance(loop, LOOP_CLASSES[loop_name]) and isinstance(loop, TcpioEventLoop)
    # Timers fire by deadline; the call_soon ran too.  (Not asserted: that it
    # ran before the 1 ms timer. asyncio does that, but uvloop runs libuv's
    # timer phase first, so a timer already due when the loop turns goes
    # ahead of it: [1, 0, 2] was seen on a loaded machine.)
    assert [x for x in order if x] == [1, 2] and sorted(order) == [0, 1, 2]
    assert in_thread == 6 and out == b"42\n"
    assert loop.is_closed() and loop.stack.closed


@loop_names
@pytest.mark.parametrize("async_setup", [False, True])
def test_loop_factory_for_asyncio_runner(loop_name: str, async_setup: bool) -> None:
    seen: list[Any] = []

    def setup(stack: tcpio.Stack) -> None:
        seen.append(stack)
        stack.hosts.add("10.0.0.9", "printer")

    async def asetup(stack: tcpio.Stack) -> None:
        await asyncio.sleep(0)
        setup(stack)

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("printer", 631, type=socket.SOCK_STREAM)
        local = await loop.getaddrinfo("localhost", 80, family=socket.AF_INET,
                                       type=socket.SOCK_STREAM)
        return loop, infos, local

    factory = tcpio.loop_factory(asetup if async_setup else setup,
                                 loop_class=LOOP_CLASSES[loop_name])
    with asyncio.Runner(loop_factory=factory) as runner:
        loop, infos, local = runner.run(main())
    assert seen == [loop.stack]
    assert [info[4] for info in infos] == [("10.0.0.9", 631)]     # the stack's hosts table
    assert [info[4] for info in local] == [("127.0.0.1", 80)]
    assert loop.stack.closed


@loop_names
def test_kernel_sockets_are_refused_with_the_reason(loop_name: str) -> None:
    async def main(net: Net) -> Any:
        loop = asyncio.get_running_loop()
        errors: dict[str, BaseException] = {}
        with socket.socket() as fresh, socket.socket() as bound, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            bound.bind(("127.0.0.1", 0))
            calls = {
                "create_connection": lambda: loop.create_connection(asyncio.Protocol,
                                                                    sock=fresh),
                "create_server": lambda: loop.create_server(asyncio.Protocol, sock=bound),
                "create_datagram_endpoint": lambda: loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, sock=udp),
                "connect_accepted_socket": lambda: loop.connect_accepted_socket(
                    asyncio.Protocol, fresh),
                "sock_connect": lambda: loop.sock_connect(bound, (PEER_IP, 7)),
                "sock_accept": lambda: loop.sock_accept(bound),
                "sock_recv": lambda: loop.sock_recv(fresh, 10),
                "sock_recv_into": lambda: loop.sock_recv_into(fresh, bytearray(10)),
                "sock_sendall": lambda: loop.sock_sendall(fresh, b"x"),
                "sock_sendto": lambda: loop.sock_sendto(udp, b"x", (PEER_IP, 7)),
                "sock_recvfrom": lambda: loop.sock_recvfrom(udp, 10),
            }
            for name, call in calls.items():
                try:
                    await call()
                except BaseException as exc:  # noqa: BLE001 - the test looks at each
                    errors[name] = exc
        return errors

    errors = on_tcpio(loop_name, main)
    assert set(errors) == {"create_connection", "create_server", "create_datagram_endpoint",
                           "connect_accepted_socket", "sock_connect", "sock_accept",
                           "sock_recv", "sock_recv_into", "sock_sendall", "sock_sendto",
                           "sock_recvfrom"}
    for name, exc in errors.items():
        assert type(exc) is TypeError, (name, exc)
        assert f"loop.{name}()" in str(exc) and "kernel" in str(exc), (name, exc)
    assert "bound in the kernel" in str(errors["sock_connect"])


@loop_names
def test_a_fresh_kernel_socket_given_to_sock_connect_stands_for_a_tcpio_one(
        loop_name: str) -> None:
    async def main(net: Net) -> Any:
        loop = asyncio.get_running_loop()
        seen: list[Any] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(writer.get_extra_info("peername"))
            writer.write(b"hello " + await reader.read(100))
            writer.close()

        with tcpio.use_stack(net.peer):
            server = await asyncio.start_server(handler, PEER_IP, 7)
        ksock = socket.socket()
        ksock.setblocking(False)
        await loop.sock_connect(ksock, (PEER_IP, 7))
        kernel_peer_error = None
        try:
            ksock.getpeername()              # the kernel never connected it
        except OSError as exc:
            kernel_peer_error = exc.errno
        await loop.sock_sendall(ksock, b"k1")
        first = await loop.sock_recv(ksock, 100)
        # and handed to create_connection, as aiohttp does: the transport takes over
        ksock2 = socket.socket()
        await loop.sock_connect(ksock2, (PEER_IP, 7))
        reader = asyncio.StreamReader()
        transport, _ = await loop.create_connection(
            lambda: asyncio.StreamReaderProtocol(reader), sock=ksock2)
        view = transport.get_extra_info("socket")     # as asyncio's: a TransportSocket
        view_names = view.getsockname()[0], view.getpeername(), view.family, view.fileno()
        transport.write(b"k2")
        second = await reader.read()
        transport.close()
        ksock.close()
        server.close()
        await server.wait_closed()
        return first, second, seen, kernel_peer_error, ksock2.fileno(), view_names

    first, second, seen, kernel_peer_error, fileno, view_names = on_tcpio(loop_name, main)
    assert first == b"hello k1" and second == b"hello k2"
    assert [addr[0] for addr in seen] == [CLIENT_IP, CLIENT_IP]     # the stack's address
    assert kernel_peer_error == 107                                 # ENOTCONN
    assert fileno == -1                                             # closed once taken
    assert view_names == (CLIENT_IP, (PEER_IP, 7), socket.AF_INET, -1)


@loop_names
def test_sock_methods_and_connect_accepted_socket(loop_name: str, tmp_path: Any) -> None:
    blob = os.urandom(150_000)
    path = tmp_path / "blob"
    path.write_bytes(blob)

    async def main(net: Net) -> Any:
        loop = asyncio.get_running_loop()
        listener = net.peer.socket()
        listener.bind((PEER_IP, 9))
        listener.listen()
        client = loop.stack.socket()
        accepting = asyncio.ensure_future(loop.sock_accept(listener))
        await loop.sock_connect(client, (PEER_IP, 9))
        conn, addr = await accepting
        # client -> server: sock_sendall, read back with sock_recv_into
        sending = asyncio.ensure_future(loop.sock_sendall(client, blob))
        got = bytearray()
        buf = bytearray(10_000)
        while len(got) < len(blob):
            n = await loop.sock_recv_into(conn, buf)
            got += buf[:n]
        await sending
        # the accepted socket becomes a transport; client reads with sock_recv
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_accepted_socket(
            lambda: asyncio.StreamReaderProtocol(reader), conn)
        transport.write(b"from the transport")
        from_transport = await loop.sock_recv(client, 100)
        # sock_sendfile from the client, loop.sendfile from the transport
        with open(path, "rb") as f:  # noqa: ASYNC230 - sendfile takes a file object
            sent = await loop.sock_sendfile(client, f, 1000, 50_000)
            position = f.tell()
        by_sock_sendfile = await reader.readexactly(50_000)
        with open(path, "rb") as f:  # noqa: ASYNC230
            await loop.sendfile(transport, f)
        back = b""
        while len(back) < len(blob):
            back += await loop.sock_recv(client, 65536)
        transport.close()
        client.close()
        listener.close()
        return (addr, got, from_transport, sent, position, by_sock_sendfile, back)

    (addr, got, from_transport, sent, position, by_sock_sendfile, back) = \
        on_tcpio(loop_name, main)
    assert addr[0] == CLIENT_IP
    assert bytes(got) == blob and from_transport == b"from the transport"
    assert sent == 50_000 and position == 51_000 and by_sock_sendfile == blob[1000:51_000]
    assert back == blob


@loop_names
def test_udp_sock_methods_and_datagram_endpoint(loop_name: str) -> None:
    async def main(net: Net) -> Any:
        loop = asyncio.get_running_loop()
        server = net.peer.socket(socket.SOCK_DGRAM)
        server.bind((PEER_IP, 5000))
        client = loop.stack.socket(socket.SOCK_DGRAM)
        client.bind((CLIENT_IP, 4000))
        await loop.sock_sendto(client, b"ping", (PEER_IP, 5000))
        data, addr = await loop.sock_recvfrom(server, 100)
        await loop.sock_sendto(server, b"pong!", addr)
        buf = bytearray(16)
        n, frm = await loop.sock_recvfrom_into(client, buf)
        # an endpoint made by the loop is on the stack too
        received = loop.create_future()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                received.set_result((data, addr))

        transport, _ = await loop.create_datagram_endpoint(Proto, remote_addr=("peer", 5000))
        transport.sendto(b"via endpoint")
        via = await loop.sock_recvfrom(server, 100)
        await loop.sock_sendto(server, b"reply", via[1])
        reply = await received
        transport.close()
        server.close()
        client.close()
        return data, addr, bytes(buf[:n]), frm, via, reply

    data, addr, pong, frm, via, reply = on_tcpio(loop_name, main)
    assert (data, addr) == (b"ping", (CLIENT_IP, 4000))
    assert (pong, frm) == (b"pong!", (PEER_IP, 5000))
    assert via[0] == b"via endpoint" and via[1][0] == CLIENT_IP
    assert reply == (b"reply", (PEER_IP, 5000))


@loop_names
def test_start_tls_and_sendfile_over_tls(loop_name: str, tmp_path: Any) -> None:
    server_ctx, client_ctx = tls_contexts(PEER_IP)
    blob = os.urandom(100_000)
    path = tmp_path / "blob"
    path.write_bytes(blob)

    async def main(net: Net) -> Any:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()                   # plaintext first
            writer.write(b"ok " + line)
            await writer.drain()
            await writer.start_tls(server_ctx)               # loop.start_tls, server side
            writer.write(b"secret " + await reader.readline())
            await writer.drain()
            with open(path, "rb") as f:  # noqa: ASYNC230 - loop.sendfile over TLS
                await asyncio.get_running_loop().sendfile(writer.transport, f)
            writer.close()

        with tcpio.use_stack(net.peer):
            server = await asyncio.start_server(handler, PEER_IP, 443)
        reader, writer = await asyncio.open_connection(PEER_IP, 443)
        writer.write(b"STARTTLS\n")
        plain = await reader.readline()
        await writer.start_tls(client_ctx, server_hostname=PEER_IP)
        writer.write(b"hi\n")
        secret = await reader.readline()
        rest = await reader.read()
        cipher = writer.get_extra_info("ssl_object").cipher()
        writer.close()
        server.close()
        await server.wait_closed()
        return plain, secret, rest, cipher

    plain, secret, rest, cipher = on_tcpio(loop_name, main)
    assert plain == b"ok STARTTLS\n" and secret == b"secret hi\n"
    assert rest == blob and cipher is not None


@loop_names
def test_run_without_asyncio_runner_as_on_python_3_10(loop_name: str) -> None:
    """3.10 has no asyncio.Runner: tcpio.run takes asyncio.run's steps itself
    (result out, leftover tasks cancelled, async generators closed, loop closed)."""
    from tcpio.loop import _run_310, loop_factory

    events: list[str] = []

    async def gen() -> Any:
        try:
            yield 1
            yield 2
        finally:
            events.append("agen closed")

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            events.append("task cancelled")
            raise

    async def main() -> Any:
        asyncio.ensure_future(forever())
        agen = gen()
        await agen.__anext__()
        events.append("main done")
        return asyncio.get_running_loop()

    loop = _run_310(main(), loop_factory(loop_class=LOOP_CLASSES[loop_name]), None)
    assert events[0] == "main done"
    assert sorted(events[1:]) == ["agen closed", "task cancelled"]
    assert loop.is_closed() and loop.stack.closed


@loop_names
def test_use_stack_reaches_tasks_created_in_it_and_only_them(loop_name: str) -> None:
    async def main(net: Net) -> Any:
        loop = asyncio.get_running_loop()
        loop.stack.hosts.add("10.0.0.50", "where")     # each host names "where" its way
        net.peer.hosts.add("10.0.0.60", "where")

        async def lookup() -> str:
            infos = await loop.getaddrinfo("where", 1, family=socket.AF_INET,
                                           type=socket.SOCK_STREAM)
            return infos[0][4][0]

        with tcpio.use_stack(net.peer):
            inside = await lookup()
            task = asyncio.create_task(lookup())          # made inside: the peer's
        outside = await lookup()
        later = asyncio.create_task(lookup())             # made outside: the loop's
        # a sock= argument keeps its socket's stack, whatever the context: the
        # accepted connection is the peer's, so the peer going down ends it
        lost: list[Any] = []

        class Recorder(asyncio.Protocol):
            def connection_lost(self, exc: Exception | None) -> None:
                lost.append(exc)

        listener = net.peer.socket()
        listener.bind((PEER_IP, 11))
        server = await loop.create_server(Recorder, sock=listener)
        _, writer = await asyncio.open_connection(PEER_IP, 11)
        await until(lambda: bool(server._clients))
        net.peer.close()
        await until(lambda: bool(lost))
        writer.close()
        return inside, await task, outside, await later, lost

    *names, lost = on_tcpio(loop_name, main)
    assert names == ["10.0.0.60", "10.0.0.60", "10.0.0.50", "10.0.0.50"]
    assert [type(exc) for exc in lost] == [ConnectionAbortedError]
