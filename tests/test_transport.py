"""The asyncio Transport contract of TcpTransport, one test per rule.

Runs over tests/fake_core.py (an in-memory fake of the TCP core's user API),
so these pin the glue's behaviour independently of TCP itself.  The oracle
for each rule is asyncio's documented Transport/Protocol contract and what
its own selector transports do.  Every test runs on asyncio and on uvloop.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile

import pytest
from fake_core import KINDS, FakeNet, both_loops, fake_pair, make_pair

from tcpio.transports import TcpTransport

# tests that need no fake internals also run on real Stacks over a MemoryWire
both_kinds = pytest.mark.parametrize("kind", KINDS)


class Recorder(asyncio.Protocol):
    """Logs every callback, in order, and collects received bytes."""

    def __init__(self, keep_open: bool = False) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.transport: TcpTransport | None = None
        self.exc: BaseException | None = None
        self.keep_open = keep_open
        self.lost = asyncio.get_running_loop().create_future()
        self.eof = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.events.append("made")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if "data" not in self.events:
            self.events.append("data")
        self.data += data

    def eof_received(self) -> bool:
        self.events.append("eof")
        self.eof.set_result(None)
        return self.keep_open

    def pause_writing(self) -> None:
        self.events.append("pause")

    def resume_writing(self) -> None:
        self.events.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.events.append("lost")
        self.exc = exc
        if not self.lost.done():
            self.lost.set_result(exc)


async def connected_pair(kind: str = "fake", net_kw: dict | None = None,  # type: ignore[no-untyped-def]
                         server_proto=None, client_proto=None):
    """A connected pair; returns (server, client_protocol, server_protocol)."""
    srv_stack, cli_stack = await make_pair(kind, **(net_kw or {}))
    server_side: list[asyncio.Protocol] = []
    made = asyncio.get_running_loop().create_future()

    def factory() -> asyncio.Protocol:
        p = server_proto() if server_proto else Recorder()
        server_side.append(p)
        asyncio.get_running_loop().call_soon(
            lambda: made.done() or made.set_result(None))
        return p

    server = await srv_stack.create_server(factory, "10.0.0.1", 80)
    _, cp = await cli_stack.create_connection(client_proto or Recorder, "10.0.0.1", 80)
    await made
    await asyncio.sleep(0)
    return server, cp, server_side[0]


@both_kinds
@both_loops
async def test_connection_made_then_lost_exactly_once(kind: str) -> None:
    server, cp, sp = await connected_pair(kind)
    cp.transport.write(b"hello")
    cp.transport.close()
    await sp.lost
    await cp.lost
    await asyncio.sleep(0.01)
    assert cp.events == ["made", "lost"]
    assert sp.events == ["made", "data", "eof", "lost"]
    assert bytes(sp.data) == b"hello"
    assert cp.exc is None and sp.exc is None
    server.close()


@both_loops
async def test_close_before_connection_made_still_orders_made_then_lost() -> None:
    srv_stack, cli_stack = fake_pair()
    server = await srv_stack.create_server(Recorder, "10.0.0.1", 80)
    class Closer(Recorder):
        def connection_made(self, transport):  # type: ignore[no-untyped-def]
            super().connection_made(transport)
            transport.close()
            transport.close()   # idempotent

    _t, p = await cli_stack.create_connection(Closer, "10.0.0.1", 80)
    await p.lost
    assert p.events == ["made", "lost"]
    server.close()


@both_kinds
@both_loops
async def test_close_inside_connection_lost_is_harmless(kind: str) -> None:
    class Uvicornish(Recorder):
        def connection_lost(self, exc):  # type: ignore[no-untyped-def]
            super().connection_lost(exc)
            self.transport.close()      # uvicorn does this
            self.transport.abort()

    server, cp, sp = await connected_pair(kind, client_proto=Uvicornish)
    cp.transport.close()
    await cp.lost
    await sp.lost
    await asyncio.sleep(0.01)
    assert cp.events.count("lost") == 1
    assert sp.exc is None       # the late abort() sent no RST
    server.close()


@both_kinds
@both_loops
async def test_write_accepts_bytes_like_and_writelines(kind: str) -> None:
    server, cp, sp = await connected_pair(kind)
    t = cp.transport
    t.write(b"ab")
    t.write(bytearray(b"cd"))
    t.write(memoryview(b"xxef")[2:])
    t.writelines([b"g", bytearray(b"h"), memoryview(b"i")])
    t.write(b"")
    with pytest.raises(TypeError):
        t.write("text")  # type: ignore[arg-type]
    t.close()
    await sp.eof
    assert bytes(sp.data) == b"abcdefghi"
    server.close()


@both_kinds
@both_loops
async def test_write_after_write_eof_raises_and_eof_reaches_peer(kind: str) -> None:
    server, cp, sp = await connected_pair(kind)
    t = cp.transport
    assert t.can_write_eof() is True
    t.write(b"last")
    t.write_eof()
    t.write_eof()    # idempotent
    with pytest.raises(RuntimeError):
        t.write(b"more")
    await sp.eof
    assert bytes(sp.data) == b"last"
    assert not t.is_closing()   # half-close is not close
    server.close()
    t.close()


@both_loops
async def test_write_buffer_counts_only_bytes_the_core_refused() -> None:
    sndbuf = 4096
    server, cp, sp = await connected_pair(net_kw={"sndbuf": sndbuf, "rcvbuf": 8192})
    sp.transport.pause_reading()           # peer window will close
    t = cp.transport
    t.set_write_buffer_limits(high=10000)
    t.write(b"a" * 3000)
    # all of it fits the core's send buffer: nothing is the transport's
    assert t.get_write_buffer_size() == 0
    await asyncio.sleep(0.01)
    sk = t._sk
    in_core = sk.bytes_sent
    t.write(b"b" * 50000)
    # the core took what it had room for, the rest waits in the transport
    assert t.get_write_buffer_size() == 3000 + 50000 - sk.bytes_sent
    assert sk.bytes_sent > in_core
    assert cp.events[-1] == "pause"
    server.close()
    t.abort()


@both_kinds
@both_loops
async def test_pause_resume_writing_strictly_alternate(kind: str) -> None:
    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192})
    t = cp.transport
    t.set_write_buffer_limits(high=4096, low=1024)
    reader = sp.transport
    total = 0
    for round_ in range(5):
        reader.pause_reading()
        for _ in range(10):
            t.write(b"z" * 3000)
            total += 3000
        await asyncio.sleep(0.01)
        assert t.get_write_buffer_size() > 4096
        reader.resume_reading()
        while len(sp.data) < total:
            await asyncio.sleep(0.005)
    flow = [e for e in cp.events if e in ("pause", "resume")]
    assert flow == ["pause", "resume"] * 5
    assert len(sp.data) == total
    server.close()
    t.close()


@both_loops
async def test_pause_reading_stops_recvmsg_and_closes_window() -> None:
    rcvbuf = 8192
    server, cp, sp = await connected_pair(net_kw={"sndbuf": 4096, "rcvbuf": rcvbuf})
    st = sp.transport
    st.pause_reading()
    st.pause_reading()       # idempotent (uvicorn calls it unguarded)
    assert not st.is_reading()
    cp.transport.write(b"q" * 50000)
    await asyncio.sleep(0.02)
    assert len(sp.data) == 0
    # nothing was read: the core's receive buffer is full (window closed)
    assert st._sk.readable() == rcvbuf
    st.resume_reading()
    st.resume_reading()
    assert st.is_reading()
    while len(sp.data) < 50000:
        await asyncio.sleep(0.005)
    assert bytes(sp.data) == b"q" * 50000
    server.close()
    cp.transport.close()


@both_kinds
@both_loops
async def test_eof_while_paused_is_delivered_after_resume(kind: str) -> None:
    server, cp, sp = await connected_pair(kind)
    sp.transport.pause_reading()
    cp.transport.write(b"abc")
    cp.transport.write_eof()
    await asyncio.sleep(0.02)
    assert "eof" not in sp.events
    sp.transport.resume_reading()
    await sp.eof
    assert sp.events[:3] == ["made", "data", "eof"]
    assert bytes(sp.data) == b"abc"
    server.close()


@both_kinds
@both_loops
async def test_close_flushes_buffer_then_fin(kind: str) -> None:
    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192})
    t = cp.transport
    payload = os.urandom(100_000)
    t.write(payload)
    assert t.get_write_buffer_size() > 0
    t.close()
    assert t.is_closing()
    await sp.eof
    assert bytes(sp.data) == payload
    await cp.lost
    assert cp.exc is None
    server.close()


@both_kinds
@both_loops
async def test_abort_resets_the_peer(kind: str) -> None:
    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192})
    t = cp.transport
    t.write(b"x" * 100_000)
    t.abort()
    assert t.is_closing()
    assert t.get_write_buffer_size() == 0
    exc = await sp.lost
    assert isinstance(exc, ConnectionResetError) and exc.errno == errno.ECONNRESET
    await cp.lost
    assert cp.exc is None
    assert len(sp.data) < 100_000
    server.close()


@both_kinds
@both_loops
async def test_get_extra_info(kind: str) -> None:
    server, cp, sp = await connected_pair(kind)
    t = cp.transport
    local = t.get_extra_info("sockname")
    assert t.get_extra_info("peername") == ("10.0.0.1", 80)
    assert local[0] == "10.0.0.2" and isinstance(local[1], int)
    assert sp.transport.get_extra_info("peername") == local
    assert t.get_extra_info("socket") is None
    assert t.get_extra_info("nonexistent", "dflt") == "dflt"
    server.close()
    t.close()


@both_kinds
@both_loops
async def test_set_protocol_redirects_callbacks(kind: str) -> None:
    server, cp, sp = await connected_pair(kind)
    other = Recorder()
    sp.transport.set_protocol(other)
    assert sp.transport.get_protocol() is other
    cp.transport.write(b"to-other")
    cp.transport.close()
    await other.lost
    assert bytes(other.data) == b"to-other" and bytes(sp.data) == b""
    server.close()


@both_kinds
@both_loops
async def test_eof_received_true_keeps_half_open_connection(kind: str) -> None:
    server, cp, sp = await connected_pair(kind, server_proto=lambda: Recorder(keep_open=True))
    cp.transport.write(b"request")
    cp.transport.write_eof()
    await sp.eof
    assert not sp.transport.is_closing()
    # the server still answers after the client's FIN
    sp.transport.write(b"response")
    sp.transport.close()
    await cp.eof
    assert bytes(cp.data) == b"response"
    await sp.lost
    assert sp.exc is None
    server.close()


@both_kinds
@both_loops
async def test_eof_received_false_closes(kind: str) -> None:
    server, cp, sp = await connected_pair(kind)
    cp.transport.write_eof()
    await sp.lost
    assert sp.events[-2:] == ["eof", "lost"]
    await cp.eof    # the server's close reached us as FIN
    server.close()


class Buffered(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.buf = bytearray(1000)
        self.got = bytearray()
        self.sizes: list[int] = []
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        self.sizes.append(sizehint)
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        assert 0 < nbytes <= len(self.buf)
        self.got += self.buf[:nbytes]

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc):  # type: ignore[no-untyped-def]
        self.lost.set_result(exc)


@both_kinds
@both_loops
async def test_buffered_protocol_reads_into_its_buffer(kind: str) -> None:
    server, cp, sp = await connected_pair(kind, server_proto=Buffered)
    payload = os.urandom(20_000)
    cp.transport.write(payload)
    cp.transport.close()
    assert await sp.lost is None
    assert bytes(sp.got) == payload
    assert max(sp.sizes) > 0
    server.close()


@both_loops
async def test_connect_errors_have_errno_classes() -> None:
    _, cli = fake_pair()
    with pytest.raises(ConnectionRefusedError) as ei:
        await cli.create_connection(Recorder, "10.0.0.1", 81)
    assert ei.value.errno == errno.ECONNREFUSED
    with pytest.raises(TimeoutError) as ei2:
        await cli.create_connection(Recorder, FakeNet.UNREACHABLE, 80)
    assert ei2.value.errno == errno.ETIMEDOUT


@both_loops
async def test_core_error_reaches_connection_lost_with_errno() -> None:
    server, cp, _sp = await connected_pair()
    sk = cp.transport._sk
    sk.sk_err = errno.ETIMEDOUT           # e.g. retransmissions exhausted
    sk.host.schedule_wakeup(sk)
    sk.host.net.kick()
    exc = await cp.lost
    assert isinstance(exc, TimeoutError) and exc.errno == errno.ETIMEDOUT
    server.close()
    server.abort_clients()


@both_kinds
@both_loops
async def test_sendfile_falls_back_to_write(kind: str) -> None:
    """loop.sendfile (aiohttp's FileResponse path) must not send an empty body."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.BaseEventLoop):
        pytest.skip("uvloop has no loop.sendfile (aiohttp then writes the file itself)")
    server, cp, sp = await connected_pair(kind)
    payload = os.urandom(70_000)
    with tempfile.TemporaryFile() as f:
        f.write(payload)
        f.seek(0)
        sent = await loop.sendfile(cp.transport, f)
    assert sent == len(payload)
    cp.transport.close()
    await sp.eof
    assert bytes(sp.data) == payload
    server.close()


@both_loops
async def test_data_before_connection_made_waits_for_it() -> None:
    """A wakeup between the transport's creation and the loop running
    connection_made (a request right behind the handshake, as curl sends it)
    must not reach data_received first: uvicorn crashed on exactly that."""
    srv_stack, _ = fake_pair()
    sk = srv_stack.host.tcp.socket()
    sk.state = 1                         # ESTABLISHED, with a request queued
    sk.rcvq += b"GET / HTTP/1.1\r\n\r\n"
    proto = Recorder()
    TcpTransport(asyncio.get_running_loop(), srv_stack, sk, proto)
    sk.wakeup()                          # the driver delivers a wakeup at once
    assert proto.events == []
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert proto.events == ["made", "data"]
    assert bytes(proto.data) == b"GET / HTTP/1.1\r\n\r\n"
