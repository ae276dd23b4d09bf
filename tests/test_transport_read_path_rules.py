"""The transport's read path: what reaches the protocol, from which wakeup.

The rule is epoll's, level-triggered: bytes that were announced by a wakeup
reach the protocol (data_received, or a tcpio StreamReader's feed_data)
without waiting for another one; a protocol that asks for data_received
gets it called.  The glue alone, on the fake core (tests/fake_core.py):
``sk.wakeup()`` is the driver's delivery of the sock's wakeup.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fake_core import both_loops, fake_pair

from tcpio.streams import StreamReader, StreamReaderProtocol
from tcpio.transports import TcpTransport

TCP_ESTABLISHED = 1


def established_sock(data: bytes = b"") -> tuple[Any, Any]:
    """A fake server-side sock, connected, with ``data`` queued to read."""
    srv_stack, _ = fake_pair()
    sk = srv_stack.host.tcp.socket()
    sk.state = TCP_ESTABLISHED
    sk.rcvq += data
    return srv_stack, sk


async def loop_turns(n: int = 2) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@both_loops
async def test_wakeup_delivered_inside_data_received_is_not_lost() -> None:
    """A kick inside a protocol callback (a write to another connection
    runs the driver) can deliver this sock's wakeup while its own wakeup
    runs: the bytes it announced reach data_received when the callback
    returns, with no later wakeup needed."""
    stack, sk = established_sock(b"first")
    got: list[bytes] = []

    class Nested(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            got.append(data)
            if data == b"first":
                sk.rcvq += b"second"
                sk.wakeup()             # the nested kick's delivery

    TcpTransport(asyncio.get_running_loop(), stack, sk, Nested())
    await loop_turns()
    assert got == [b"first", b"second"]
    assert not sk.rcvq


@both_loops
async def test_stream_reader_protocol_feeds_its_reader() -> None:
    """tcpio's StreamReaderProtocol: the reader gets the bytes and EOF as
    asyncio's protocol would hand them over."""
    stack, sk = established_sock(b"hello")
    reader = StreamReader()
    protocol = StreamReaderProtocol(reader)
    TcpTransport(asyncio.get_running_loop(), stack, sk, protocol)
    assert await reader.read(100) == b"hello"
    sk.rcvq += b" world"
    sk.rcv_eof = True
    sk.wakeup()
    assert await reader.read() == b" world"
    assert reader.at_eof()


@both_loops
async def test_stream_reader_protocol_subclass_gets_data_received() -> None:
    """A StreamReaderProtocol subclass that overrides data_received has it
    called for every byte (the transport feeds the reader directly only
    for the class's own data_received)."""
    stack, sk = established_sock(b"abc")
    seen: list[bytes] = []

    class Watching(StreamReaderProtocol):
        def data_received(self, data: bytes) -> None:
            seen.append(data)
            super().data_received(data)

    reader = StreamReader()
    TcpTransport(asyncio.get_running_loop(), stack, sk, Watching(reader))
    assert await reader.read(10) == b"abc"
    assert seen == [b"abc"]


@both_loops
async def test_set_protocol_from_stream_reader_protocol_to_another() -> None:
    """After set_protocol (start_tls hands the transport to its SSL
    protocol), the new protocol's data_received gets the bytes, not the
    old protocol's reader."""
    stack, sk = established_sock()
    reader = StreamReader()
    transport = TcpTransport(asyncio.get_running_loop(), stack, sk,
                             StreamReaderProtocol(reader))
    await loop_turns()
    got = bytearray()

    class Plain(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            got.extend(data)

    transport.set_protocol(Plain())
    sk.rcvq += b"after"
    sk.wakeup()
    assert bytes(got) == b"after"
    assert not reader._chunks and not reader._buf      # type: ignore[attr-defined]


@both_loops
async def test_wakeup_delivered_inside_a_reads_own_pull_is_not_lost() -> None:
    """A read that finds its buffer empty takes what the sock holds
    (TcpTransport._pull); a wakeup delivered while it feeds the reader (a
    StreamReader subclass whose feed_data runs the driver) is looked at
    before the read goes on: the bytes it announced are the read's too."""
    stack, sk = established_sock()

    class Nested(StreamReader):
        def feed_data(self, data: bytes) -> None:
            super().feed_data(data)
            if data == b"first":
                sk.rcvq += b"second"
                sk.wakeup()             # the nested kick's delivery

    reader = Nested()
    TcpTransport(asyncio.get_running_loop(), stack, sk, StreamReaderProtocol(reader))
    await loop_turns()
    sk.rcvq += b"first"                 # queued, its wakeup not yet delivered
    assert await reader.read(100) == b"firstsecond"
