"""Differential test: tcpio's datagram endpoints against asyncio's own, on kernel
sockets, with the same script.  Each side talks to the other through the TAP,
so the kernel is both the reference implementation and the peer, and the
callback traces must match.  Runs on asyncio's default loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest
from netns import KernelPeer, kernel_peer

pytestmark = pytest.mark.tap

LOOPS = ["asyncio", "uvloop"]


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.new_event_loop
    return asyncio.new_event_loop


class Trace(asyncio.DatagramProtocol):
    """Records the callbacks in order, normalised so two stacks can be compared."""

    def __init__(self) -> None:
        self.trace: list[str] = []
        self.event = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.trace.append("made")

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        host, port = addr
        assert isinstance(host, str) and isinstance(port, int)
        self.trace.append(f"data {data!r} from port {port}")
        self.event.set()

    def error_received(self, exc: Exception) -> None:
        self.trace.append(f"error {type(exc).__name__}")
        self.event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.trace.append(f"lost {exc!r}")
        self.event.set()


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data.upper(), addr)  # type: ignore[attr-defined]


MakeEndpoint = Callable[[tuple[str, int] | None],
                        Awaitable[tuple[asyncio.DatagramTransport, Trace]]]


async def script(make: MakeEndpoint, other: str) -> list[str]:
    """The same steps for either implementation; returns the callback trace."""
    async def settle(p: Trace, timeout: float = 2.0) -> None:
        try:
            await asyncio.wait_for(p.event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        p.event.clear()

    trace: list[str] = []
    # 1. connected to an echo service
    t, p = await make((other, 7))
    t.sendto(b"hello")
    await settle(p)
    lost_early = bool([x for x in p.trace if x.startswith("lost")])
    t.close()
    await settle(p)
    trace += ["echo:", *p.trace, f"lost synchronously: {lost_early}"]
    # 2. connected to a closed port: the ICMP error reaches the protocol
    t, p = await make((other, 9))
    t.sendto(b"anyone?")
    await settle(p)
    t.close()
    await settle(p)
    trace += ["closed port, connected:", *p.trace]
    # 3. unconnected: the same ICMP error is not reported (no IP_RECVERR)
    t, p = await make(None)
    t.sendto(b"anyone?", (other, 9))
    await settle(p, 0.5)
    t.close()
    await settle(p)
    trace += ["closed port, unconnected:", *p.trace]
    return trace


async def kernel_endpoint(peer: KernelPeer, remote: tuple[str, int] | None
                          ) -> tuple[asyncio.DatagramTransport, Trace]:
    """asyncio's endpoint on a kernel socket inside the namespace."""
    sock = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((peer.kernel_ip, 0))
    if remote is not None:
        sock.connect(remote)
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(Trace, sock=sock)  # type: ignore[return-value]


async def both_traces() -> tuple[list[str], list[str]]:
    async with kernel_peer() as peer:
        loop = asyncio.get_running_loop()
        kernel_echo = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        kernel_echo.bind((peer.kernel_ip, 7))
        ke, _ = await loop.create_datagram_endpoint(Echo, sock=kernel_echo)
        te, _ = await peer.stack.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))

        async def tcpio_endpoint(remote: tuple[str, int] | None
                                 ) -> tuple[asyncio.DatagramTransport, Trace]:
            return await peer.stack.create_datagram_endpoint(  # type: ignore[return-value]
                Trace, local_addr=(peer.tcpio_ip, 0), remote_addr=remote)

        try:
            kernel = await script(lambda r: kernel_endpoint(peer, r), peer.tcpio_ip)
            ours = await script(tcpio_endpoint, peer.kernel_ip)
        finally:
            ke.close()
            te.close()
        return kernel, ours


@pytest.mark.parametrize("loop_name", LOOPS)
def test_same_callbacks_as_asyncio_on_kernel_sockets(tap_required, loop_name):
    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:
        kernel, ours = runner.run(asyncio.wait_for(both_traces(), 60))
    assert ours == kernel
    # And the trace says what the contract says (so equal-but-wrong fails too).
    assert ours == [
        "echo:", "made", "data b'HELLO' from port 7", "lost None",
        "lost synchronously: False",
        "closed port, connected:", "made", "error ConnectionRefusedError", "lost None",
        "closed port, unconnected:", "made", "lost None",
    ]
