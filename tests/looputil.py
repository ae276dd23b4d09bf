"""Running test programs on ``tcpio.run``: two hosts over a MemoryWire, a name server.

``on_tcpio(loop_name, main)`` runs ``main(net)`` with ``tcpio.run`` over the
named base loop (asyncio's SelectorEventLoop or uvloop.Loop).  The loop's own
stack is the client host, 10.0.0.2 ("the program's network"); ``net.peer`` is
a second Stack on the same loop at 10.0.0.1, joined by a MemoryWire, where
servers go (``with tcpio.use_stack(net.peer):``).  The peer answers DNS on
port 53 for ``example.test`` (``ZONE``) from a scapy-built responder, and the
client's resolver points at it with ``example.test`` as its search list, so a
program can name hosts the way it would on a real network.

``loop_names`` parametrizes a test over both base loops, like ``both_loops``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fake_core import LOOPS, TEST_TIMEOUT
from scapy.layers.dns import DNS, DNSRR

import tcpio

CLIENT_IP, PEER_IP = "10.0.0.2", "10.0.0.1"
ZONE = {"www.example.test.": PEER_IP, "peer.example.test.": PEER_IP}


def _loop_classes() -> dict[str, type[asyncio.AbstractEventLoop]]:
    classes: dict[str, type[asyncio.AbstractEventLoop]] = {}
    for name in LOOPS:      # the loops fake_core found (uvloop when installed)
        if name == "asyncio":
            classes[name] = asyncio.SelectorEventLoop
        elif name == "uvloop":
            import uvloop
            classes[name] = uvloop.Loop
    return classes


LOOP_CLASSES = _loop_classes()
loop_names = pytest.mark.parametrize("loop_name", list(LOOP_CLASSES))


class NameServer(asyncio.DatagramProtocol):
    """Answers A queries for ``ZONE`` (NXDOMAIN otherwise); records every question."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        q = DNS(data)
        name = q.qd[0].qname.decode()
        self.questions.append(name)
        ip = ZONE.get(name.lower())
        an = [DNSRR(rrname=name, type="A", rdata=ip, ttl=60)] if ip and q.qd[0].qtype == 1 else []
        rcode = 0 if ip else 3
        self.transport.sendto(bytes(DNS(id=q.id, qr=1, aa=1, rd=q.rd, ra=1, rcode=rcode,
                                        qd=q.qd, an=an)), addr)


@dataclass
class Net:
    peer: tcpio.Stack
    dns: NameServer
    loop: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def on_tcpio(loop_name: str, main: Callable[[Net], Awaitable[Any]]) -> Any:
    """``tcpio.run`` a program whose host is 10.0.0.2, with a peer host at 10.0.0.1."""
    wire = tcpio.MemoryWire()

    def setup(stack: tcpio.Stack) -> None:
        stack.add_interface(wire.b, f"{CLIENT_IP}/24")
        stack.set_name_servers([PEER_IP], search=["example.test"], timeout=2, attempts=1)

    async def program() -> Any:
        peer = tcpio.Stack(seed=1, name="peer")
        try:
            peer.add_interface(wire.a, f"{PEER_IP}/24")
            _, dns = await peer.create_datagram_endpoint(NameServer, local_addr=(PEER_IP, 53))
            net = Net(peer, dns, asyncio.get_running_loop())
            return await asyncio.wait_for(main(net), TEST_TIMEOUT)
        finally:
            peer.close()

    return tcpio.run(program(), setup=setup, loop_class=LOOP_CLASSES[loop_name], seed=2)


async def until(pred: Callable[[], bool], rounds: int = 10_000) -> None:
    """Let the loop run until ``pred()`` holds (by loop iterations, not by time)."""
    for _ in range(rounds):
        if pred():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
