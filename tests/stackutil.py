"""Shared plumbing for tests that drive tcpio Stacks on event loops.

- ``LOOPS`` / ``run_on(name, main)``: run ``async def main()`` on asyncio's
  default loop, uvloop, or ``VirtualClockLoop`` (deterministic virtual time),
  without depending on a pytest-asyncio version's loop-factory API.
- ``two_stacks(wire)``: two started Stacks (10.0.0.1, 10.0.0.2) on a MemoryWire,
  optionally recording each end to an in-memory pcap; ``wired_stacks()``: the
  same on a fresh wire as an ``async with`` that closes both.
- ``Sink`` / ``Echo``: DatagramProtocols for tests.
- ``until(pred)``: wait on the loop's clock until a condition holds.
- ``received(pcap, mac)``: what a device received, dissected by scapy.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fake_core import LOOPS as FAKE_CORE_LOOPS
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap
from virtual_loop import VirtualClockLoop

import tcpio
from tcpio.devices.pcap import PcapDevice
from tcpio.stack import Stack

# fake_core's loops (asyncio, uvloop) plus the deterministic virtual clock
LOOPS = {**FAKE_CORE_LOOPS, "virtual": VirtualClockLoop}


def run_on(loop_name: str, main: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    """Run ``main()`` on a fresh loop of that kind (a guard timeout on real loops)."""
    async def guarded() -> Any:
        return await asyncio.wait_for(main(), timeout)

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        return runner.run(guarded())


all_loops = pytest.mark.parametrize("loop_name", list(LOOPS))


class Sink(asyncio.DatagramProtocol):
    """Collects datagrams and errors; lets a test wait for a count."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self.errors: list[OSError] = []
        self.lost: list[Exception | None] = []
        self._changed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append((data, addr))
        self._changed.set()

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)  # type: ignore[arg-type]
        self._changed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Wait until ``pred()``; False on timeout (lossy tests expect that)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred():
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                return pred()
        return True


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data, addr)  # type: ignore[attr-defined]


async def two_stacks(wire: tcpio.MemoryWire, pcap_a: io.BytesIO | None = None,
                     pcap_b: io.BytesIO | None = None) -> tuple[Stack, Stack]:
    loop = asyncio.get_running_loop()
    ns = lambda: round(loop.time() * 1e9)  # the loop's clock, virtual or not
    a = Stack(seed=1, name="a")
    b = Stack(seed=2, name="b")
    await a.__aenter__()
    await b.__aenter__()
    a.add_interface(PcapDevice(wire.a, pcap_a, clock=ns) if pcap_a else wire.a, "10.0.0.1/24")
    b.add_interface(PcapDevice(wire.b, pcap_b, clock=ns) if pcap_b else wire.b, "10.0.0.2/24")
    return a, b


@contextlib.asynccontextmanager
async def wired_stacks(seed: int = 1) -> AsyncIterator[tuple[Stack, Stack]]:
    """``two_stacks`` on a fresh ``MemoryWire(seed=seed)``, both closed on exit."""
    a, b = await two_stacks(tcpio.MemoryWire(seed=seed))
    try:
        yield a, b
    finally:
        a.close()
        b.close()


async def until(pred: Callable[[], bool], timeout: float = 30.0, step: float = 0.01) -> None:
    """Wait (on the running loop's clock) until ``pred()`` holds; AssertionError
    after ``timeout``.  Meant for the virtual clock, where the polling costs
    no real time and a protocol timer (an RTO) fires as soon as nothing else
    is due."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() >= deadline:
            raise AssertionError(f"condition not reached in {timeout} s")
        await asyncio.sleep(step)


async def warm_up(a: Stack, peer: str, tries: int = 10) -> None:
    """Resolve ARP both ways (a lossy wire may need a few tries)."""
    for _ in range(tries):
        try:
            await a.ping(peer, timeout=1.5)
            return
        except TimeoutError:
            continue
    raise AssertionError("no ping reply after warm-up")


def received(pcap: io.BytesIO, my_mac: bytes) -> list[Ether]:
    """Frames a device received (not sent), dissected by scapy."""
    mac = ":".join(f"{x:02x}" for x in my_mac)
    return [p for p in rdpcap(io.BytesIO(pcap.getvalue())) if p[Ether].src != mac]
