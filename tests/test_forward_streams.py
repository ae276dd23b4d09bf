"""Forwarded flows as asyncio streams, and the relay's copy rules (issue 18).

Three stacks on the virtual clock: a client ``c`` whose default route is the
forwarder ``f`` (wire 1, where ``f``'s forwarders are), and a server ``s``
that ``f`` reaches on wire 2.  ``tcpio.relay.Relay`` runs on ``f`` with
``f``'s own ``open_connection`` as its way upstream, so the whole relay
(refused -> RST, half-close both ways, reset -> reset) is checked without a
kernel; tests/tap/test_forward_kernel.py does the same against Linux.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import io
from collections.abc import AsyncIterator

import pytest
from stackutil import Sink, run_on

import tcpio
from tcpio.devices.pcap import PcapDevice
from tcpio.relay import Relay
from tcpio.stack import Stack

SERVER = "10.1.0.1"


@contextlib.asynccontextmanager
async def three_stacks(loss: float = 0.0, pcap: io.BytesIO | None = None
                       ) -> AsyncIterator[tuple[Stack, Stack, Stack]]:
    """``pcap``: record what c's end of wire 1 sees."""
    w1 = tcpio.MemoryWire(seed=3, loss=loss)
    w2 = tcpio.MemoryWire(seed=4, loss=loss)
    c, f, s = Stack(seed=1, name="c"), Stack(seed=2, name="f"), Stack(seed=3, name="s")
    for st in (c, f, s):
        await st.__aenter__()
    loop = asyncio.get_running_loop()
    try:
        c.add_interface(w1.a if pcap is None else
                        PcapDevice(w1.a, pcap, clock=lambda: round(loop.time() * 1e9)),
                        "10.0.0.1/24")
        f.add_interface(w1.b, "10.0.0.2/24")
        f.add_interface(w2.a, "10.1.0.2/24")
        s.add_interface(w2.b, "10.1.0.1/24")
        c.add_route("0.0.0.0/0", via="10.0.0.2")
        yield c, f, s
    finally:
        for st in (c, f, s):
            st.close()


def test_accepted_flow_is_streams_whose_sockname_is_the_original_destination() -> None:
    async def main() -> None:
        async with three_stacks() as (c, f, _):
            seen = []

            async def handle(req: tcpio.TcpForwardRequest) -> None:
                reader, writer = await req.accept()
                seen.append((req.sockname, req.peername, writer.get_extra_info("sockname"),
                             writer.get_extra_info("peername")))
                writer.write((await reader.read(100)).upper())
                await writer.drain()
                writer.close()

            fwd = f.set_tcp_forwarder(handle, 1)
            reader, writer = await c.open_connection("192.0.2.9", 8443)
            writer.write(b"abc")
            assert await reader.read() == b"ABC"
            local = writer.get_extra_info("sockname")
            assert seen == [(("192.0.2.9", 8443), local, ("192.0.2.9", 8443), local)]
            assert fwd.stats["TcpFwdAccepted"] == 1
    run_on("virtual", main)


def test_refused_and_undecided_requests() -> None:
    async def main() -> None:
        async with three_stacks() as (c, f, _):
            async def handle(req: tcpio.TcpForwardRequest) -> None:
                if req.sockname[1] == 1:
                    req.refuse()
                # port 2: the callback returns undecided -> dropped

            fwd = f.set_tcp_forwarder(handle, 1)
            with pytest.raises(ConnectionRefusedError):
                await c.open_connection("192.0.2.9", 1)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(c.open_connection("192.0.2.9", 2), 2.0)
            assert fwd.stats["TcpFwdRefused"] == 1 and fwd.stats["TcpFwdDropped"] >= 1
    run_on("virtual", main)


def test_bulk_through_the_relay_over_lossy_wires_arrives_whole() -> None:
    payload = bytes(range(256)) * 4096          # 1 MiB

    async def main() -> None:
        async with three_stacks(loss=0.01) as (c, f, s):
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await reader.read()
                writer.write(payload)
                await writer.drain()
                writer.close()

            await s.start_server(serve, SERVER, 80)
            relay = Relay(open_connection=f.open_connection)
            f.set_tcp_forwarder(relay.tcp, 1)
            reader, writer = await c.open_connection(SERVER, 80)
            writer.write(b"GET")
            writer.write_eof()
            got = await reader.read()
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
            assert relay.counters.bytes_down == len(payload)
    run_on("virtual", main, timeout=120)


def test_relay_propagates_half_close_both_ways() -> None:
    async def main() -> None:
        async with three_stacks() as (c, f, s):
            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                if writer.get_extra_info("sockname")[1] == 81:
                    # server closes its side first, then still reads
                    writer.write(b"hello")
                    writer.write_eof()
                    data = await reader.read()
                    assert data == b"bye"
                else:
                    # client closes first; the server answers after its EOF
                    data = await reader.read()
                    writer.write(b"got " + data)
                writer.close()

            await s.start_server(serve, SERVER, 80)
            await s.start_server(serve, SERVER, 81)
            relay = Relay(open_connection=f.open_connection)
            f.set_tcp_forwarder(relay.tcp, 1)
            reader, writer = await c.open_connection(SERVER, 80)
            writer.write(b"request")
            writer.write_eof()
            assert await reader.read() == b"got request"
            reader, writer = await c.open_connection(SERVER, 81)
            assert await reader.read() == b"hello"      # EOF from the server came through
            writer.write(b"bye")                        # our direction still open
            writer.write_eof()
            await asyncio.sleep(1)
            assert relay.counters.tcp_reset == 0 and relay.counters.tcp_flows == 2
    run_on("virtual", main)


@pytest.mark.parametrize("who", ["server", "client"])
def test_relay_propagates_reset_as_reset(who: str) -> None:
    async def main() -> None:
        async with three_stacks() as (c, f, s):
            server_side: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

            async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                server_side.append((reader, writer))
                await asyncio.sleep(3600)

            await s.start_server(serve, SERVER, 80)
            relay = Relay(open_connection=f.open_connection)
            f.set_tcp_forwarder(relay.tcp, 1)
            reader, writer = await c.open_connection(SERVER, 80)
            writer.write(b"x")
            while not server_side:
                await asyncio.sleep(0.01)
            s_reader, s_writer = server_side[0]
            assert await s_reader.readexactly(1) == b"x"
            if who == "server":
                s_writer.transport.abort()              # RST from the far end
                with pytest.raises(ConnectionResetError):
                    await reader.read()
            else:
                writer.transport.abort()                # RST from the near end
                with pytest.raises(ConnectionResetError):
                    await s_reader.read()
            await asyncio.sleep(0.5)
            assert relay.counters.tcp_reset == 1
            # the far side of the relay was reset, not closed with FIN
            assert (c if who == "server" else s).mib().get("EstabResets", 0) == 1
    run_on("virtual", main)


def test_relay_refused_upstream_is_refused_at_the_client() -> None:
    async def main() -> None:
        async with three_stacks() as (c, f, _):
            relay = Relay(open_connection=f.open_connection)
            f.set_tcp_forwarder(relay.tcp, 1)
            with pytest.raises(ConnectionRefusedError):
                await c.open_connection(SERVER, 9)      # nobody listens on s:9
            assert relay.counters.tcp_refused == 1
    run_on("virtual", main)


def test_relay_unreachable_upstream_is_unreachable_at_the_client() -> None:
    """f has no route to 198.18.0.1: its connect() fails with ENETUNREACH,
    and the client hears ICMP net unreachable, as from a router with no
    route (ip_error), so its connect() fails the same way at once."""
    async def main() -> None:
        async with three_stacks() as (c, f, _):
            relay = Relay(open_connection=f.open_connection)
            f.set_tcp_forwarder(relay.tcp, 1)
            t0 = asyncio.get_running_loop().time()
            with pytest.raises(OSError) as exc:
                await c.open_connection("198.18.0.1", 80)
            assert exc.value.errno == errno.ENETUNREACH
            assert asyncio.get_running_loop().time() - t0 < 1.0     # not a SYN timeout
            assert relay.counters.tcp_unreachable == 1
            assert c.host.mib["IcmpInDestUnreachs"] == 1
    run_on("virtual", main)


def test_udp_session_echo_and_idle_end() -> None:
    async def main() -> None:
        async with three_stacks() as (c, f, _):
            ended = []

            async def handle(session: tcpio.UdpForwardSession) -> None:
                while (data := await session.recv()) is not None:
                    session.send(data[::-1])
                ended.append(asyncio.get_running_loop().time())

            fwd = f.set_udp_forwarder(handle, 1, idle_timeout=30)
            transport, sink = await c.create_datagram_endpoint(
                Sink, remote_addr=("198.51.100.53", 53))
            t0 = asyncio.get_running_loop().time()
            transport.sendto(b"query")
            assert await sink.wait_for(lambda: sink.received)
            assert sink.received == [(b"yreuq", ("198.51.100.53", 53))]
            await asyncio.sleep(40)
            assert len(ended) == 1 and 30 <= ended[0] - t0 <= 31
            assert fwd.stats["UdpFwdIdleTimeouts"] == 1
    run_on("virtual", main)


def test_relay_through_socks5_sends_connect_for_the_original_destination() -> None:
    async def main() -> None:
        async with three_stacks() as (c, f, s):
            asked: list[bytes] = []

            async def socks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                # RFC 1928: greeting (no auth), CONNECT IPv4; REP 5 for port 9
                assert await reader.readexactly(3) == b"\x05\x01\x00"
                writer.write(b"\x05\x00")
                req = await reader.readexactly(10)
                asked.append(req)
                port = int.from_bytes(req[8:10], "big")
                if port == 9:
                    writer.write(b"\x05\x05\x00\x01" + bytes(6))
                    writer.close()
                    return
                writer.write(b"\x05\x00\x00\x01" + bytes(6))
                data = await reader.read()
                writer.write(b"via proxy: " + data)
                writer.close()

            await s.start_server(socks, SERVER, 1080)
            relay = Relay(open_connection=f.open_connection, socks5=(SERVER, 1080))
            f.set_tcp_forwarder(relay.tcp, 1)
            reader, writer = await c.open_connection("203.0.113.5", 443)
            writer.write(b"hi")
            writer.write_eof()
            assert await reader.read() == b"via proxy: hi"
            assert asked[0] == b"\x05\x01\x00\x01" + bytes([203, 0, 113, 5]) + (443).to_bytes(2, "big")
            with pytest.raises(ConnectionRefusedError):
                await c.open_connection("203.0.113.5", 9)
    run_on("virtual", main)


def test_relay_through_socks5_sends_an_ipv6_connect_for_an_ipv6_flow() -> None:
    """An IPv6 flow from the client asks the proxy for its original
    destination as RFC 1928's ATYP 4 (16 bytes), and the accepted streams
    name it as AF_INET6 sockets do."""
    async def main() -> None:
        async with three_stacks() as (c, f, s):
            c.add_address(1, "fd00::1/64", nodad=True)
            f.add_address(1, "fd00::2/64", nodad=True)
            c.add_route("::/0", via="fd00::2")
            asked: list[bytes] = []

            async def socks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                assert await reader.readexactly(3) == b"\x05\x01\x00"
                writer.write(b"\x05\x00")
                head = await reader.readexactly(4)
                req = head + await reader.readexactly({1: 4, 4: 16}[head[3]] + 2)
                asked.append(req)
                writer.write(b"\x05\x00\x00\x01" + bytes(6))
                writer.write(b"via proxy: " + await reader.read())
                writer.close()

            await s.start_server(socks, SERVER, 1080)
            relay = Relay(open_connection=f.open_connection, socks5=(SERVER, 1080))
            names = []

            async def tcp(req: tcpio.TcpForwardRequest) -> None:
                names.append((req.sockname, req.peername))
                await relay.tcp(req)

            f.set_tcp_forwarder(tcp, 1)
            reader, writer = await c.open_connection("2001:db8::5", 443)
            writer.write(b"hi6")
            writer.write_eof()
            assert await reader.read() == b"via proxy: hi6"
            local = writer.get_extra_info("sockname")
            assert names == [(("2001:db8::5", 443, 0, 0), local)]
            assert asked == [b"\x05\x01\x00\x04" + bytes.fromhex("20010db8" + "00" * 10 + "0005")
                             + (443).to_bytes(2, "big")]
    run_on("virtual", main)
