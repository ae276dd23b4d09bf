"""The asyncio DatagramProtocol contract on tcpio's UDP transport.

The rules checked here are asyncio's (Lib/asyncio/selector_events.py
_SelectorDatagramTransport and the DatagramProtocol docs) and Linux's UDP
semantics (connected sockets hear ICMP errors, unconnected ones do not).
tests/tap/test_kernel_udp.py runs the same protocol script against asyncio on
kernel sockets as a differential check.
"""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest
from stackutil import Sink, all_loops, run_on, two_stacks, wired_stacks

import tcpio


class Recorder(Sink):
    """Sink that also logs the order of callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("connection_made")
        super().connection_made(transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.calls.append("datagram_received")
        super().datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.calls.append(f"error_received:{getattr(exc, 'errno', None)}")
        super().error_received(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("connection_lost")
        super().connection_lost(exc)


@all_loops
def test_lifecycle_and_extra_info(loop_name):
    async def main():
        async with wired_stacks() as (a, _):
            t, p = await a.create_datagram_endpoint(Recorder, local_addr=("10.0.0.1", 4000),
                                                    remote_addr=("10.0.0.2", 7))
            made_before_return = list(p.calls)
            info = (t.get_extra_info("sockname"), t.get_extra_info("peername"),
                    t.get_extra_info("nonsense", 42), t.get_protocol() is p)
            t.close()
            closing = t.is_closing()
            lost_synchronously = "connection_lost" in p.calls
            t.close()                            # twice is harmless
            t.sendto(b"ignored")                 # after close: dropped silently
            await asyncio.sleep(0)
            return made_before_return, info, closing, lost_synchronously, p, a.mib()

    made, info, closing, lost_sync, p, mib = run_on(loop_name, main)
    assert made == ["connection_made"]
    assert info == (("10.0.0.1", 4000), ("10.0.0.2", 7), 42, True)
    assert closing and not lost_sync
    assert p.calls == ["connection_made", "connection_lost"]
    assert p.lost == [None]
    assert mib.get("UdpOutDatagrams", 0) == 0


def test_unbound_endpoint_gets_an_ephemeral_port_on_any():
    async def main():
        async with wired_stacks() as (a, _):
            t, _ = await a.create_datagram_endpoint(Sink)
            return t.get_extra_info("sockname"), t.get_extra_info("peername")

    (addr, port), peer = run_on("virtual", main)
    assert addr == "0.0.0.0" and 32768 <= port <= 60999 and peer is None


def test_sendto_argument_rules():
    """asyncio: bytes-like only; a connected transport takes addr None or its peer."""
    async def main():
        async with wired_stacks() as (a, b):
            _, sink = await b.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 7))
            t, p = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
            with pytest.raises(TypeError):
                t.sendto("text")  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                t.sendto(b"x", ("10.0.0.3", 7))
            buf = bytearray(b"original")
            t.sendto(buf)
            buf[:] = b"mutated!"                 # the datagram was copied at sendto
            t.sendto(memoryview(b"view"), ("10.0.0.2", 7))
            await sink.wait_for(lambda: len(sink.received) == 2)
            return [d for d, _ in sink.received], p.errors

    data, errors = run_on("virtual", main)
    assert data == [b"original", b"view"]
    assert errors == []


def test_send_errors_go_to_error_received():
    """Like asyncio on a kernel socket: a failing send is reported, not raised."""
    async def main():
        async with wired_stacks() as (a, _):
            t, p = await a.create_datagram_endpoint(Recorder)
            t.sendto(b"x", ("192.0.2.1", 9))          # no route (no default route)
            t.sendto(b"x" * 65508, ("10.0.0.2", 9))   # larger than any IPv4 datagram
            t.sendto(b"x")                            # unconnected, no address
            return [getattr(e, "errno", None) for e in p.errors]

    assert run_on("virtual", main) == [errno.ENETUNREACH, errno.EMSGSIZE, errno.EDESTADDRREQ]


def test_icmp_errors_only_for_connected_endpoints():
    """Linux reports port unreachable to connected UDP sockets only (without
    IP_RECVERR); so does tcpio, through error_received."""
    async def main():
        async with wired_stacks() as (a, b):
            tc, pc = await a.create_datagram_endpoint(Recorder, remote_addr=("10.0.0.2", 9))
            tu, pu = await a.create_datagram_endpoint(Recorder)
            tc.sendto(b"connected")
            tu.sendto(b"unconnected", ("10.0.0.2", 9))
            await asyncio.sleep(0.1)
            tc.sendto(b"again")                    # the endpoint stays usable
            await asyncio.sleep(0.1)
            return list(pc.calls), list(pu.calls), b.mib()

    connected, unconnected, mib_b = run_on("virtual", main)
    refused = f"error_received:{errno.ECONNREFUSED}"
    assert connected == ["connection_made", refused, refused]
    assert unconnected == ["connection_made"]
    assert mib_b["UdpNoPorts"] == 3


def test_bind_errors_raise():
    async def main():
        async with wired_stacks() as (a, _):
            await a.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 53))
            errs = []
            for kwargs in ({"local_addr": ("0.0.0.0", 53)},       # in use
                           {"local_addr": ("10.9.9.9", 54)},      # not our address
                           {"local_addr": ("no.such.name", 55)},  # tcpio resolves no names
                           {"remote_addr": ("10.0.0.2", 0)}):     # port 0
                with pytest.raises(OSError) as info:
                    await a.create_datagram_endpoint(Sink, **kwargs)
                errs.append(info.value)
            with pytest.raises(OSError) as info:     # asyncio on Linux: EAI_ADDRFAMILY
                await a.create_datagram_endpoint(Sink, local_addr=("10.0.0.1", 57),
                                                 family=socket.AF_INET6)
            errs.append(info.value)
            return errs, len(a._endpoints)

    errs, endpoints = run_on("virtual", main)
    assert [e.errno for e in errs] == [errno.EADDRINUSE, errno.EADDRNOTAVAIL,
                                       socket.EAI_NONAME, errno.EINVAL, socket.EAI_ADDRFAMILY]
    assert isinstance(errs[2], socket.gaierror)
    assert endpoints == 1                      # failed attempts leave nothing behind


def test_closing_the_stack_closes_endpoints_and_frees_ports():
    async def main():
        a, b = await two_stacks(tcpio.MemoryWire(seed=1))
        t, p = await a.create_datagram_endpoint(Recorder, local_addr=("0.0.0.0", 53))
        a.close()
        b.close()
        await asyncio.sleep(0)
        return t.is_closing(), p.calls, a.host.udp.ports

    closing, calls, ports = run_on("virtual", main)
    assert closing
    assert calls == ["connection_made", "connection_lost"]
    assert ports == {}


def test_protocol_may_close_inside_datagram_received():
    """Closing from a callback stops delivery of the rest of the batch."""
    class CloseOnFirst(Recorder):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            super().datagram_received(data, addr)
            self.transport.close()  # type: ignore[union-attr]

    async def main():
        async with wired_stacks() as (a, b):
            _, p = await b.create_datagram_endpoint(CloseOnFirst, local_addr=("0.0.0.0", 7))
            t, _ = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
            for i in range(5):
                t.sendto(b"%d" % i)
            await asyncio.sleep(0.1)
            return list(p.calls)

    assert run_on("virtual", main) == ["connection_made", "datagram_received",
                                       "connection_lost"]


class RaisesOnFirst(Recorder):
    """A protocol with a bug: its first datagram_received raises."""

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        super().datagram_received(data, addr)
        if len(self.received) == 1:
            raise ValueError("bug in the protocol")


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_exception_in_datagram_received_does_not_strand_the_rest(loop_name):
    """Differential: on kernel sockets (loopback) asyncio reports the exception
    to the loop's handler and still delivers the datagrams behind it, with
    no further traffic.  tcpio must not leave them queued on the sock."""
    async def burst(make_endpoints):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        errors: list[dict] = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        (t, _), (_, p) = await make_endpoints()
        for i in range(3):
            t.sendto(b"%d" % i)
        await p.wait_for(lambda: len(p.received) == 3, timeout=1.0)
        t.close()
        p.transport.close()
        await asyncio.sleep(0)
        return [d for d, _ in p.received], [type(c.get("exception")) for c in errors]

    async def kernel():  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        rx = await loop.create_datagram_endpoint(RaisesOnFirst, local_addr=("127.0.0.1", 0))
        port = rx[0].get_extra_info("sockname")[1]
        tx = await loop.create_datagram_endpoint(Sink, remote_addr=("127.0.0.1", port))
        return tx, rx

    async def main():
        oracle = await burst(kernel)
        async with wired_stacks() as (a, b):
            async def ours():  # type: ignore[no-untyped-def]
                rx = await b.create_datagram_endpoint(RaisesOnFirst, local_addr=("0.0.0.0", 7))
                tx = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
                return tx, rx
            return oracle, await burst(ours)

    oracle, ours = run_on(loop_name, main)
    assert oracle == ([b"0", b"1", b"2"], [ValueError])
    assert ours == oracle
