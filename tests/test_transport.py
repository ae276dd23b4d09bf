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
from typing import TYPE_CHECKING

import pytest
from fake_core import KINDS, FakeNet, both_loops, fake_pair, make_pair

from tcpio.transports import TcpTransport

if TYPE_CHECKING:
    from typing_extensions import Self

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
async def test_get_extra_info_addresses_first_asked_after_a_reset(kind: str) -> None:
    # asyncio reads both addresses when it makes the transport; tcpio makes
    # them when first asked, so a transport asked only after the peer reset
    # the connection must still give the ones it was connected with
    server, cp, sp = await connected_pair(kind)
    client_sock = cp.transport.get_extra_info("sockname")
    cp.transport.abort()
    assert isinstance(await sp.lost, ConnectionResetError)
    assert sp.transport.get_extra_info("peername") == client_sock
    assert sp.transport.get_extra_info("sockname") == ("10.0.0.1", 80)
    server.close()


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


class ArrayBuffer(Buffered):
    """Hands out an array of 4-byte ints: any writable contiguous buffer is
    a valid get_buffer() result (asyncio's transports recv_into it)."""

    def __init__(self) -> None:
        from array import array
        super().__init__()
        self.arr = array("i", bytes(1000))

    def get_buffer(self, sizehint: int):  # type: ignore[no-untyped-def]
        self.sizes.append(sizehint)
        return self.arr

    def buffer_updated(self, nbytes: int) -> None:
        assert 0 < nbytes <= 4000
        self.got += self.arr.tobytes()[:nbytes]


def _no_recvmsg(maxlen: int) -> bytes:
    raise AssertionError("recvmsg called for a BufferedProtocol")


@both_kinds
@both_loops
@pytest.mark.parametrize("proto", ["Buffered", "ArrayBuffer"])
async def test_buffered_protocol_reads_into_its_buffer(kind: str, proto: str) -> None:
    """Into whatever writable buffer get_buffer() returns (asyncio's
    transports recv_into it), in one copy from the core (recvmsg_into:
    on the fake, recvmsg's intermediate bytes object is refused)."""
    server, cp, sp = await connected_pair(kind, server_proto=globals()[proto])
    if kind == "fake":
        sp.transport._sk.recvmsg = _no_recvmsg
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


# --- differential tests: the same scenario on kernel sockets over loopback ---
#
# The oracle is asyncio's own transport on a kernel TCP socket (127.0.0.1),
# driven in the same test and on the same loop: what its protocols observe
# is what ours must observe.


async def kernel_pair(server_proto, client_proto=Recorder):  # type: ignore[no-untyped-def]
    """``connected_pair`` on kernel sockets over loopback (the oracle)."""
    loop = asyncio.get_running_loop()
    server_side: list[asyncio.Protocol] = []
    made = loop.create_future()

    def factory() -> asyncio.Protocol:
        p = server_proto()
        server_side.append(p)
        loop.call_soon(lambda: made.done() or made.set_result(None))
        return p

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, cp = await loop.create_connection(client_proto, "127.0.0.1", port)
    await made
    await asyncio.sleep(0)
    return server, cp, server_side[0]


class LoopErrors:
    """Collects what reaches the loop's exception handler during a block."""

    def __init__(self) -> None:
        self.contexts: list[dict] = []

    def __enter__(self) -> Self:
        self.loop = asyncio.get_running_loop()
        self.old = self.loop.get_exception_handler()
        self.loop.set_exception_handler(lambda _loop, ctx: self.contexts.append(ctx))
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.set_exception_handler(self.old)

    def messages(self) -> list[str]:
        return [str(c.get("message")) for c in self.contexts]


class RaisesInDataReceived(Recorder):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        raise ValueError("bug in the protocol")


class RaisesInEofReceived(Recorder):
    def eof_received(self) -> bool:
        super().eof_received()
        raise ValueError("bug in the protocol")


async def _protocol_bug_scenario(pair, server_proto, trigger):  # type: ignore[no-untyped-def]
    server, cp, sp = await pair(server_proto)
    with LoopErrors() as errors:
        trigger(cp.transport)
        exc = await sp.lost
        await cp.lost
    server.close()
    return type(exc), cp.events, cp.exc, errors.messages()


@both_kinds
@both_loops
@pytest.mark.parametrize("server_proto, trigger, message", [
    (RaisesInDataReceived, lambda t: t.write(b"hello"),
     "Fatal error: protocol.data_received() call failed."),
    (RaisesInEofReceived, lambda t: t.write_eof(),
     "Fatal error: protocol.eof_received() call failed."),
], ids=["data_received", "eof_received"])
async def test_protocol_callback_error_closes_like_asyncio(  # type: ignore[no-untyped-def]
        kind: str, server_proto, trigger, message) -> None:
    """A protocol that raises gets connection_lost(its exception) and the
    connection is *closed* (FIN), not reset: asyncio's _fatal_error closes the
    socket, so the peer sees EOF and a clean connection_lost(None)."""
    ours = await _protocol_bug_scenario(
        lambda sp: connected_pair(kind, server_proto=sp), server_proto, trigger)
    oracle = await _protocol_bug_scenario(kernel_pair, server_proto, trigger)
    assert oracle[0] is ValueError and len(oracle[3]) == 1
    assert ours[:3] == oracle[:3]
    assert ours[3] == [message]
    if isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
        assert oracle[3] == [message]     # uvloop words it differently


class EmptyBuffer(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport

    def get_buffer(self, sizehint: int) -> bytearray:
        return bytearray()

    def buffer_updated(self, nbytes: int) -> None:
        raise AssertionError("no buffer, no update")

    def connection_lost(self, exc):  # type: ignore[no-untyped-def]
        self.lost.set_result(exc)


@both_kinds
@both_loops
async def test_get_buffer_returning_empty_buffer_is_a_fatal_error(kind: str) -> None:
    """asyncio: RuntimeError to connection_lost and to the exception handler
    as a get_buffer() failure.  (Compared with the selector transport only:
    uvloop's own TCP transport spins on an empty buffer.)"""
    async def scenario(pair):  # type: ignore[no-untyped-def]
        server, cp, sp = await pair(EmptyBuffer)
        with LoopErrors() as errors:
            cp.transport.write(b"hello")
            exc = await sp.lost
            await cp.lost
        server.close()
        return type(exc), errors.messages()

    ours = await scenario(lambda sp: connected_pair(kind, server_proto=sp))
    assert ours == (RuntimeError, ["Fatal error: protocol.get_buffer() call failed."])
    if isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
        assert await scenario(kernel_pair) == ours


@both_kinds
@both_loops
@pytest.mark.parametrize("action", ["close", "abort"])
async def test_close_inside_resume_writing_loses_the_connection_once(
        kind: str, action: str) -> None:
    """resume_writing() is called as the buffer drains; a protocol that closes
    (or aborts) there must get connection_lost exactly once and leave nothing
    for the loop's exception handler.  (asyncio 3.11's selector transport
    calls _call_connection_lost twice here and errors; uvloop does not.)"""
    class CloseOnResume(Recorder):
        def resume_writing(self) -> None:
            super().resume_writing()
            getattr(self.transport, action)()

    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192},
                                          client_proto=CloseOnResume)
    t = cp.transport
    with LoopErrors() as errors:
        sp.transport.pause_reading()
        t.set_write_buffer_limits(high=1, low=0)
        t.write(b"x" * 50_000)          # more than the core takes: pause
        assert cp.events[-1] == "pause"
        await asyncio.sleep(0.01)
        sp.transport.resume_reading()   # the buffer drains: resume, then close
        await cp.lost
        await sp.lost
        await asyncio.sleep(0.01)
    assert cp.events == ["made", "pause", "resume", "lost"]
    assert errors.contexts == []
    server.close()


@both_kinds
@both_loops
async def test_nothing_keeps_a_lost_connection_alive(kind: str) -> None:
    """After connection_lost, the stack, the server and the core must hold no
    reference to the transport or the protocol (sk.wakeup is the usual
    culprit): a long-running server would otherwise grow per connection."""
    import gc
    import weakref

    server, cp, sp = await connected_pair(kind)
    refs = [weakref.ref(o) for o in (cp, cp.transport, sp, sp.transport)]
    cp.transport.write(b"bye")
    cp.transport.close()
    await cp.lost
    await sp.lost
    await asyncio.sleep(0.01)
    server.close()          # (its protocol factory remembers sp: see connected_pair)
    await server.wait_closed()
    del cp, sp, server
    gc.collect()
    assert [r() for r in refs] == [None] * 4


class KeepOpen(Recorder):
    def __init__(self) -> None:
        super().__init__(keep_open=True)


class OneByteBuffers(asyncio.BufferedProtocol):
    """Hands out 1-byte buffers: every byte is one get_buffer/buffer_updated."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.buf = bytearray(1)
        self.lost = asyncio.get_running_loop().create_future()
        self.eof = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        self.transport = transport
        self.events.append("made")

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.events.append(f"updated {nbytes}")
        self.data += self.buf[:nbytes]

    def eof_received(self) -> None:
        self.events.append("eof")
        self.eof.set_result(None)

    def connection_lost(self, exc):  # type: ignore[no-untyped-def]
        self.events.append("lost")
        self.lost.set_result(exc)


async def _close_while_paused_with_unread_data(server, cp, sp):  # type: ignore[no-untyped-def]
    sp.transport.pause_reading()
    cp.transport.write(b"x" * 1000)
    await asyncio.sleep(0.02)
    sp.transport.close()        # tcp_close with unread data: RST
    await sp.lost
    await cp.lost


async def _half_close_both_ways(server, cp, sp):  # type: ignore[no-untyped-def]
    cp.transport.write(b"request")
    cp.transport.write_eof()
    await sp.eof
    sp.transport.write(b"response")
    sp.transport.write_eof()
    await cp.eof                # the client's eof_received closes it
    await cp.lost
    sp.transport.close()
    await sp.lost


async def _one_byte_buffers(server, cp, sp):  # type: ignore[no-untyped-def]
    cp.transport.write(b"abc")
    await asyncio.sleep(0.02)
    cp.transport.close()
    await sp.lost


@both_kinds
@both_loops
@pytest.mark.parametrize("scenario, server_proto", [
    (_close_while_paused_with_unread_data, Recorder),
    (_half_close_both_ways, KeepOpen),
    (_one_byte_buffers, OneByteBuffers),
], ids=["close_paused_unread", "half_close_both_ways", "one_byte_buffers"])
async def test_same_events_as_asyncio_on_kernel_sockets(  # type: ignore[no-untyped-def]
        kind: str, scenario, server_proto) -> None:
    """Differential: both protocols see the same callbacks, in the same order,
    with the same exception types, as over kernel sockets on this loop."""
    async def run(pair):  # type: ignore[no-untyped-def]
        server, cp, sp = await pair(server_proto)
        with LoopErrors() as errors:
            await scenario(server, cp, sp)
            await asyncio.sleep(0.01)
        server.close()
        return (cp.events, type(cp.lost.result()), sp.events, type(sp.lost.result()),
                bytes(sp.data), errors.messages())

    oracle = await run(kernel_pair)
    ours = await run(lambda sp: connected_pair(kind, server_proto=sp))
    assert ours == oracle


class GrowingBuffer(Buffered):
    """Resizes its buffer in buffer_updated (legal: the read is over by then)."""

    def buffer_updated(self, nbytes: int) -> None:
        super().buffer_updated(nbytes)
        self.buf.extend(b"\0" * 10)


@both_kinds
@both_loops
async def test_buffered_protocol_may_resize_its_buffer_in_buffer_updated(kind: str) -> None:
    """The transport must not hold a view of the buffer past the copy (a
    resize would raise BufferError: "Existing exports of data")."""
    server, cp, sp = await connected_pair(kind, server_proto=GrowingBuffer)
    with LoopErrors() as errors:
        payload = os.urandom(5000)
        cp.transport.write(payload)
        cp.transport.close()
        assert await sp.lost is None
    assert errors.contexts == []
    assert bytes(sp.got) == payload
    server.close()


class ReadOnlyBuffer(EmptyBuffer):
    def get_buffer(self, sizehint: int) -> bytes:  # type: ignore[override]
        return b"\0" * 100


@both_kinds
@both_loops
async def test_get_buffer_returning_a_readonly_buffer_is_a_fatal_error(kind: str) -> None:
    server, cp, sp = await connected_pair(kind, server_proto=ReadOnlyBuffer)
    with LoopErrors() as errors:
        cp.transport.write(b"hello")
        exc = await sp.lost
        await cp.lost
    assert isinstance(exc, (BufferError, TypeError))
    assert errors.messages() == ["Fatal error: protocol.get_buffer() call failed."]
    server.close()


@both_kinds
@both_loops
async def test_write_of_a_wide_memoryview_sends_every_byte(kind: str) -> None:
    """write() takes any bytes-like object; a memoryview of 4-byte items that
    the core takes only in part must continue at the right *byte*."""
    from array import array

    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192})
    payload = array("i", range(10_000))
    cp.transport.write(memoryview(payload))     # 40 000 bytes: a partial send
    cp.transport.close()
    await sp.eof
    assert bytes(sp.data) == payload.tobytes()
    server.close()


@both_kinds
@both_loops
async def test_write_copies_what_the_caller_may_change_after_it(kind: str) -> None:
    """write() returns before the bytes are sent; what it was given is the
    data, whatever the caller does with a mutable buffer afterwards (the
    rule asyncio's selector transport kept up to 3.11 by copying them).
    Each write is partly refused by the core, so its rest waits in the
    transport: bytes by reference, mutable buffers as a copy, and a write
    behind one waiting is appended in order."""
    from array import array

    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192})
    t = cp.transport
    first = os.urandom(30_000)
    ba = bytearray(os.urandom(30_000))
    arr = array("i", range(5_000))
    sent = first + bytes(ba) + arr.tobytes() + first[:1000]
    t.write(first)                      # bytes: the rest kept by reference
    assert t.get_write_buffer_size() > 0
    t.write(ba)                         # appended behind it
    t.write(memoryview(arr))
    t.write(memoryview(first)[:1000])
    ba[:] = bytes(len(ba))              # the caller reuses its buffers
    arr[:] = array("i", bytes(len(arr) * 4))
    t.close()
    await sp.eof
    assert bytes(sp.data) == sent
    server.close()


@both_kinds
@both_loops
@pytest.mark.parametrize("make", [bytearray, lambda b: memoryview(bytearray(b))],
                         ids=["bytearray", "memoryview"])
async def test_a_mutable_buffer_waiting_alone_is_a_copy(kind: str, make) -> None:  # type: ignore[no-untyped-def]
    """The first write's rest, with nothing buffered before it, is copied
    when the caller can change it (bytes are not: see above)."""
    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192})
    t = cp.transport
    payload = os.urandom(50_000)
    buf = make(payload)
    t.write(buf)
    assert t.get_write_buffer_size() > 0
    buf[:] = bytes(len(payload))
    t.close()
    await sp.eof
    assert bytes(sp.data) == payload
    server.close()



@both_kinds
@both_loops
async def test_writes_behind_waiting_bytes_queue_in_order_unjoined(kind: str) -> None:
    """Writes that find bytes waiting are queued behind them in order, never
    joined into one buffer (asyncio's ``buffer += data`` copies every byte
    written while blocked): large immutable ones by reference, the rest
    copied onto the last chunk; the buffer size counts them all, and the
    peer receives exactly what was written, whatever the caller does with
    its mutable buffers afterwards."""
    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 8192})
    t = cp.transport
    t.set_write_buffer_limits(high=1 << 30)
    big = os.urandom(20_000)
    small = [os.urandom(10) for _ in range(50)]
    ba = bytearray(os.urandom(9_000))
    writes: list[bytes | bytearray | memoryview] = [big, *small, ba, big,
                                                    memoryview(big)[5:15_005]]
    sent = b"".join(bytes(w) for w in writes)
    before = None
    for w in writes:
        t.write(w)
        if before is None:
            before = t.get_write_buffer_size()
            assert before > 0                       # everything after waits
    in_core = cp.transport._sk.bytes_sent if kind == "fake" else None
    assert t.get_write_buffer_size() == before + len(sent) - len(big)
    if in_core is not None:
        assert t.get_write_buffer_size() == len(sent) - in_core
    kept = [c for c in t._more if isinstance(c, memoryview) or type(c) is bytes]
    assert any((c.obj if isinstance(c, memoryview) else c) is big for c in kept)
    assert len(t._more) <= 5                        # the 50 small writes: one chunk
    ba[:] = bytes(len(ba))
    t.close()
    await sp.eof
    assert bytes(sp.data) == sent
    assert t.get_write_buffer_size() == 0
    server.close()


@both_loops
async def test_buffered_writes_go_to_the_core_only_when_it_is_writeable() -> None:
    """The transport hands its buffer to the core when the sock is writeable
    as tcp_poll's EPOLLOUT says (sk_stream_is_writeable: free space at
    least half of what is queued), which is when asyncio's own transport
    over a kernel socket hears the fd writable; not on every byte of room
    an ACK frees (issue 12: that woke a bulk writer once per write)."""
    server, cp, sp = await connected_pair(net_kw={"sndbuf": 4096, "rcvbuf": 4096})
    t = cp.transport
    sp.transport.pause_reading()
    t.write(b"w" * 20000)
    await asyncio.sleep(0.01)
    sk = t._sk
    assert len(sk.sndq) == 4096                    # the peer's window is shut
    buffered = t.get_write_buffer_size()
    assert buffered == 20000 - 4096 - 4096
    del sk.sndq[:1000]                             # 1000 acknowledged: free 1000 < 3096 / 2
    t._on_wakeup()
    assert t.get_write_buffer_size() == buffered
    del sk.sndq[:1000]                             # free 2000 >= 2096 / 2: writeable
    t._on_wakeup()
    assert t.get_write_buffer_size() == buffered - 2000
    server.close()
    t.abort()


@both_kinds
@both_loops
async def test_a_buffered_bytearray_arrives_as_it_was_at_write(kind: str) -> None:
    """What write() accepted is what the peer reads, as with a kernel socket:
    a bytearray (or a view of one) that waits in the transport's buffer,
    which now waits for the sock to be writeable, is the transport's copy,
    so the caller reusing it at once changes nothing on the wire."""
    server, cp, sp = await connected_pair(kind, net_kw={"sndbuf": 4096, "rcvbuf": 4096})
    t = cp.transport
    sp.transport.pause_reading()
    first = bytes(range(256)) * 40                  # 10 240 bytes: past both buffers
    buf = bytearray(first)
    t.write(buf)
    view_src = bytearray(b"v" * 3000)
    t.write(memoryview(view_src))
    await asyncio.sleep(0.01)
    assert t.get_write_buffer_size() > 0            # some of each waits in the transport
    buf[:] = bytes(len(buf))                        # the caller reuses its buffers
    view_src[:] = b"x" * 3000
    sp.transport.resume_reading()
    while len(sp.data) < len(first) + 3000:
        await asyncio.sleep(0.005)
    assert bytes(sp.data) == first + b"v" * 3000
    server.close()
    t.close()
