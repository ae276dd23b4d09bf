"""The asyncio driver: two Stacks joined by a MemoryWire, on asyncio's default
loop, on uvloop, and on a virtual-clock loop (deterministic, exact).

Oracles: what each stack's device actually received (recorded in a pcap and
dissected by scapy, not by tcpio), and the Impairment's own accounting.
"""

from __future__ import annotations

import asyncio
import io

import pytest
from scapy.layers.inet import ICMP, UDP
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether
from stackutil import Echo, Sink, all_loops, received, run_on, two_stacks, warm_up

import tcpio
from tcpio.stack import Stack

# --- clean wire: ping and UDP --------------------------------------------------


@all_loops
def test_ping_and_udp_echo_over_clean_wire(loop_name):
    sizes = [0, 1, 100, 1472, 1473, 3000, 8000, 65507]

    async def main():
        wire = tcpio.MemoryWire(delay=0.0005, seed=1)
        a, b = await two_stacks(wire)
        try:
            rtt = await a.ping("10.0.0.2", b"hello")
            big = await a.ping("10.0.0.2", bytes(range(256)) * 31)   # 7936 B: fragments
            await b.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
            t, p = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
            for n in sizes:
                t.sendto(bytes([n % 251]) * n)
            assert await p.wait_for(lambda: len(p.received) == len(sizes))
            return rtt, big, p.received, a.mib(), b.mib(), t.get_extra_info("sockname")
        finally:
            a.close()
            b.close()

    rtt, big, got, mib_a, mib_b, sockname = run_on(loop_name, main)
    assert rtt >= 0 and big >= 0              # uvloop's clock ticks in milliseconds
    if loop_name == "virtual":
        assert big == pytest.approx(0.001)     # exactly two 0.5 ms hops
    assert sorted(len(d) for d, _ in got) == sorted(sizes)
    assert all(d == bytes([len(d) % 251]) * len(d) for d, _ in got)
    assert {addr for _, addr in got} == {("10.0.0.2", 7)}
    assert sockname[0] == "10.0.0.1" and 32768 <= sockname[1] <= 60999
    # Fragmentation happened both ways and reassembly succeeded both ways.
    for mib in (mib_a, mib_b):
        assert mib["FragCreates"] > 0 and mib["ReasmOKs"] > 0
        assert mib.get("ReasmFails", 0) == 0


@all_loops
def test_closed_port_gives_econnrefused(loop_name):
    async def main():
        wire = tcpio.MemoryWire(seed=1)
        a, b = await two_stacks(wire)
        try:
            t, p = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 9))
            t.sendto(b"anyone?")
            assert await p.wait_for(lambda: bool(p.errors))
            return p.errors, b.mib()
        finally:
            a.close()
            b.close()

    errors, mib_b = run_on(loop_name, main)
    assert isinstance(errors[0], ConnectionRefusedError)
    assert mib_b["UdpNoPorts"] == 1 and mib_b["IcmpOutDestUnreachs"] == 1


# --- lossy, reordering wire ----------------------------------------------------


@all_loops
def test_lossy_wire_udp_loses_exactly_what_the_wire_lost(loop_name):
    """10% loss and 10% reordering: a datagram reaches the application iff its
    frame reached the receiving device (judged from that device's pcap)."""
    n = 300

    async def main():
        wire = tcpio.MemoryWire(loss=0.1, reorder=0.1, delay=0.001, seed=5)
        cap_b = io.BytesIO()
        a, b = await two_stacks(wire, pcap_b=cap_b)
        try:
            await warm_up(a, "10.0.0.2")
            _, sink = await b.create_datagram_endpoint(Sink, local_addr=("10.0.0.2", 5000))
            ta, _ = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 5000))
            for i in range(n):
                ta.sendto(b"%05d" % i + b"." * (i % 500))
            # Frames are processed to completion when the wire delivers them, so
            # once nothing is in flight every survivor has reached the sink.
            while wire.in_flight:
                await asyncio.sleep(0.005)
            return sink.received, cap_b, wire
        finally:
            a.close()
            b.close()

    got, cap_b, wire = run_on(loop_name, main)
    arrived = [bytes(p[UDP].payload)[:p[UDP].len - 8] for p in received(cap_b, wire.b.mac)
               if UDP in p and p[UDP].dport == 5000]
    data = [d for d, _ in got]
    assert data == arrived                  # same datagrams, same (wire) order
    assert 0.8 * n < len(data) < n          # the wire really lost some
    assert wire.a_to_b.stats["lost"] > 0 and wire.a_to_b.stats["reordered"] > 0
    if loop_name == "virtual":
        order = [int(d[:5]) for d in data]
        assert order != sorted(order)       # and really reordered some


@all_loops
def test_lossy_wire_ping_succeeds_iff_both_frames_survived(loop_name):
    count = 20

    async def main():
        wire = tcpio.MemoryWire(loss=0.1, reorder=0.1, delay=0.001, seed=9)
        cap_a, cap_b = io.BytesIO(), io.BytesIO()
        a, b = await two_stacks(wire, cap_a, cap_b)
        try:
            await warm_up(a, "10.0.0.2")
            first = a._ping_seq + 1
            ok = []
            for i in range(count):
                try:
                    await a.ping("10.0.0.2", b"seq%03d" % i, timeout=0.5)
                    ok.append(first + i)
                except TimeoutError:
                    pass
            return first, ok, cap_a, cap_b, wire
        finally:
            a.close()
            b.close()

    first, ok, cap_a, cap_b, wire = run_on(loop_name, main)
    requests_in = {p[ICMP].seq for p in received(cap_b, wire.b.mac)
                   if ICMP in p and p[ICMP].type == 8}
    replies_in = {p[ICMP].seq for p in received(cap_a, wire.a.mac)
                  if ICMP in p and p[ICMP].type == 0}
    survived = [s for s in range(first, first + count) if s in requests_in and s in replies_in]
    if loop_name == "virtual":
        assert ok == survived
    else:
        # On a real (shared, noisy) clock a reply may also come after the
        # timeout; a ping can still never succeed unless both frames survived.
        assert set(ok) <= set(survived)
    assert 0 < len(ok) < count


def test_virtual_clock_runs_are_identical():
    """Same seeds, same wire, virtual clock: the pcaps match byte for byte."""
    def once() -> bytes:
        async def main():
            wire = tcpio.MemoryWire(loss=0.1, reorder=0.1, jitter=0.002, delay=0.001, seed=3)
            cap = io.BytesIO()
            a, b = await two_stacks(wire, pcap_a=cap)
            try:
                await warm_up(a, "10.0.0.2")
                await b.create_datagram_endpoint(Echo, local_addr=("0.0.0.0", 7))
                t, _ = await a.create_datagram_endpoint(Sink, remote_addr=("10.0.0.2", 7))
                for i in range(50):
                    t.sendto(b"x" * (i * 97))
                await asyncio.sleep(2)
                return cap.getvalue()
            finally:
                a.close()
                b.close()
        return run_on("virtual", main)

    first, second = once(), once()
    assert len(first) > 10_000
    assert first == second


# --- the driver itself -------------------------------------------------------------


def test_one_stack_timer_and_close_cancels_it():
    """However many core timers are pending, the loop holds one for the stack."""
    async def main():
        loop = asyncio.get_running_loop()
        wire = tcpio.MemoryWire(seed=1)
        a, b = await two_stacks(wire)
        b.close()                          # nobody answers: ARP retries, timers pending
        t, _ = await a.create_datagram_endpoint(Sink)
        for i in range(20):
            t.sendto(b"x", (f"10.0.0.{10 + i}", 9))
        stack_timers = [h for h in loop._scheduled
                        if not h.cancelled() and getattr(h._callback, "__self__", None) is a]
        deadline = a.host.next_deadline()
        a.close()
        left = [h for h in loop._scheduled
                if not h.cancelled() and getattr(h._callback, "__self__", None) is a]
        return stack_timers, deadline, left, wire

    timers, deadline, left, wire = run_on("virtual", main)
    assert len(timers) == 1 and timers[0].when() == deadline
    assert left == []
    assert wire.a.stats["tx_packets"] > 0


def test_an_ipv6_solicitation_for_someone_else_is_received_and_ignored():
    async def main():
        wire = tcpio.MemoryWire(seed=1)
        a, _ = await two_stacks(wire)
        await asyncio.sleep(0.01)          # let the gratuitous ARPs pass
        before = a.mib()
        ns = (Ether(dst="33:33:ff:00:00:01", src="02:00:00:00:00:02")
              / IPv6(src="fe80::2", dst="ff02::1:ff00:1") / ICMPv6ND_NS(tgt="fe80::1"))
        wire.b.send(bytes(ns))
        await asyncio.sleep(0.01)
        return a.host.mib.delta(before)

    delta = run_on("virtual", main)
    # ff02::1:ff00:1 is a's solicited-node group (its link-local address ends
    # in 00:00:01), the target is not a's: ND reads it and answers nothing.
    assert delta["Ip6InReceives"] == 1 and delta["Icmp6InNeighborSolicits"] == 1
    assert delta["NdiscInIgnored"] == 1
    assert "Icmp6OutNeighborAdvertisements" not in delta and "EthInUnknownProtos" not in delta


def test_add_route_and_bad_arguments():
    async def main():
        wire = tcpio.MemoryWire(seed=1)
        async with Stack(seed=1) as s:
            ifindex = s.add_interface(wire.a, "10.0.0.1/24")
            s.add_route("0.0.0.0/0", via="10.0.0.254")
            route = s.host.route_lookup(0x08080808)
            errs = []
            for bad in (lambda: s.add_route("banana", via="10.0.0.254"),
                        lambda: s.add_route("0.0.0.0/0", via="300.1.1.1"),
                        lambda: s.add_address(ifindex, "10.0.0.300/24")):
                try:
                    bad()
                except OSError as exc:
                    errs.append(exc.errno)
            return ifindex, route, errs, s

    ifindex, route, errs, s = run_on("virtual", main)
    assert ifindex == 1
    assert route.gateway == 0x0A0000FE and route.ifindex == 1 and route.src == 0x0A000001
    assert errs == [22, 22, 22]             # EINVAL
    assert s.closed and wire_stopped(s)


def wire_stopped(s: Stack) -> bool:
    return all(getattr(d, "_on_frames", None) is None for d in s.devices.values())


def test_ping_unreachable_raises():
    """ARP for a silent neighbour fails: the echo request comes back as an error."""
    async def main():
        wire = tcpio.MemoryWire(seed=1)
        async with Stack(seed=1) as s:
            s.add_interface(wire.a, "10.0.0.1/24")
            wire.b.start(asyncio.get_running_loop(), lambda frames: None)  # a deaf peer
            with pytest.raises(OSError) as info:
                await s.ping("10.0.0.99", timeout=30)
            return info.value

    err = run_on("virtual", main)
    assert err.errno == 113                 # EHOSTUNREACH, like Linux after ARP failure


def test_a_failing_protocol_does_not_stall_the_stack():
    """An exception in one protocol callback goes to the loop's exception
    handler; other sockets in the same batch still hear their data, and the
    stack's timer stays armed."""
    class Boom(Sink):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            raise RuntimeError("application bug")

    async def main():
        loop = asyncio.get_running_loop()
        reported = []
        loop.set_exception_handler(lambda loop, ctx: reported.append(ctx["exception"]))
        wire = tcpio.MemoryWire(seed=1)
        a, b = await two_stacks(wire)
        try:
            await b.create_datagram_endpoint(Boom, local_addr=("0.0.0.0", 1))
            _, ok = await b.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", 2))
            t, _ = await a.create_datagram_endpoint(Sink)
            t.sendto(b"to boom", ("10.0.0.2", 1))
            t.sendto(b"to ok", ("10.0.0.2", 2))
            await ok.wait_for(lambda: bool(ok.received))
            return reported, ok.received, b._timer is not None or b.host.next_deadline() is None
        finally:
            a.close()
            b.close()

    reported, got, timer_ok = run_on("virtual", main)
    assert [str(e) for e in reported] == ["application bug"]
    assert [d for d, _ in got] == [b"to ok"]
    assert timer_ok


def test_closing_the_stack_from_a_callback():
    """A protocol that closes the whole stack while being woken: nothing is left
    scheduled for the closed stack."""
    class CloseStack(Sink):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.get_extra_info("stack").close()  # type: ignore[union-attr]

    async def main():
        loop = asyncio.get_running_loop()
        wire = tcpio.MemoryWire(seed=1)
        a, b = await two_stacks(wire)
        try:
            _, p = await b.create_datagram_endpoint(CloseStack, local_addr=("0.0.0.0", 1))
            t, _ = await a.create_datagram_endpoint(Sink)
            t.sendto(b"bye", ("10.0.0.2", 1))
            await asyncio.sleep(0.1)
            left = [h for h in loop._scheduled
                    if not h.cancelled() and getattr(h._callback, "__self__", None) is b]
            return b.closed, left, p.lost
        finally:
            a.close()

    closed, left, lost = run_on("virtual", main)
    assert closed and left == [] and lost == [None]



@all_loops
def test_connections_lists_listener_and_established_like_ss(loop_name):
    """stack.connections() mirrors `ss -tan`: the listener, and each end ESTAB."""
    async def main():
        wire = tcpio.MemoryWire(seed=3)
        async with tcpio.Stack(seed=1) as a, tcpio.Stack(seed=2) as b:
            a.add_interface(wire.a, "10.0.0.1/24")
            b.add_interface(wire.b, "10.0.0.2/24")
            server = await a.start_server(lambda r, w: None, "10.0.0.1", 8080)
            _reader, writer = await b.open_connection("10.0.0.1", 8080)
            rows_a = {(r.state, r.local, r.remote) for r in a.connections()}
            rows_b = [(r.state, r.remote) for r in b.connections()]
            assert ("LISTEN", "10.0.0.1:8080", "0.0.0.0:*") in rows_a
            local_b = "{}:{}".format(*writer.get_extra_info("sockname"))
            assert ("ESTAB", "10.0.0.1:8080", local_b) in rows_a
            assert rows_b == [("ESTAB", "10.0.0.1:8080")]
            assert "LISTEN" in a.format_connections()
            writer.close()
            server.close()
    run_on(loop_name, main)


def test_connections_lists_live_sockets_before_time_wait_entries():
    """stack.connections() promises listeners, then full sockets, then request
    and TIME_WAIT entries: a busy server's table cut to its first rows (the
    demo prints 12) must still show its live connections, however many
    earlier connections left TIME_WAIT entries ahead of them in ehash."""
    async def main():
        wire = tcpio.MemoryWire(seed=5)
        async with tcpio.Stack(seed=1) as a, tcpio.Stack(seed=2) as b:
            a.add_interface(wire.a, "10.0.0.1/24")
            b.add_interface(wire.b, "10.0.0.2/24")

            async def handle(reader, writer):
                await reader.read()
                writer.close()

            server = await a.start_server(handle, "10.0.0.1", 8080)
            for _ in range(20):     # the client closes first: TIME_WAIT on b
                _r, w = await b.open_connection("10.0.0.1", 8080)
                w.close()
                await _r.read()
            _r, live = await b.open_connection("10.0.0.1", 8080)
            states = [r.state for r in b.connections()]
            live.close()
            server.close()
            return states

    states = run_on("virtual", main)
    assert states.count("TIME-WAIT") == 20 and states.count("ESTAB") == 1, states
    assert states.index("ESTAB") < states.index("TIME-WAIT"), states


@all_loops
def test_closing_a_stack_ends_its_tcp_connections(loop_name):
    """Stack.close() is a host going down: local protocols get ECONNABORTED and
    nothing waits for ever (readers, wait_closed, the server's wait_closed).
    (The RST it sends is lost with the wire end that goes down with it.)"""
    async def main():
        wire = tcpio.MemoryWire(seed=4)
        accepted, server_errors = [], []
        async with tcpio.Stack(seed=1) as a, tcpio.Stack(seed=2) as b:
            a.add_interface(wire.a, "10.0.0.1/24")
            b.add_interface(wire.b, "10.0.0.2/24")

            async def handle(reader, writer):
                accepted.append(writer)
                try:
                    await reader.read()
                except OSError as exc:
                    server_errors.append(exc)

            server = await a.start_server(handle, "10.0.0.1", 8080)
            # keep the client's writer: a collected StreamWriter closes (FIN)
            _reader, _writer = await b.open_connection("10.0.0.1", 8080)
            while not accepted:
                await asyncio.sleep(0.01)
            a.close()
            # the server side's writer is done (wait_closed re-raises what
            # connection_lost got, as asyncio does)
            with pytest.raises(ConnectionAbortedError):
                await asyncio.wait_for(accepted[0].wait_closed(), 5)
            for _ in range(100):   # let the handler's read() see it
                if server_errors:
                    break
                await asyncio.sleep(0.01)
            assert [type(e) for e in server_errors] == [ConnectionAbortedError]
            server.close()
            await asyncio.wait_for(server.wait_closed(), 5)
    run_on(loop_name, main)


def test_input_a_device_still_holds_is_processed_before_due_timers():
    """A reader that stopped at its budget (TapDevice.poll_rx) is drained
    before the stack's timers run: the ACK waiting there must reach TCP
    before the loss probe or RTO it would cancel (the kernel's 200 clients at
    once over a TAP drew a RST for every FIN probed that way)."""
    async def main():
        wire = tcpio.MemoryWire(seed=1)
        a, _b = await two_stacks(wire)
        order: list[str] = []
        held = [bytes(60)]              # a frame the device has read no further than

        dev = a.devices[1]
        on_frames = a._on_frames

        def poll_rx(rounds: int, seconds: float | None) -> bool:
            while held:
                order.append("input")
                on_frames(1, [held.pop()])
            return False

        dev.poll_rx = poll_rx           # type: ignore[attr-defined]
        real_poll = a.host.poll

        def poll(now: float, due: float | None = None) -> None:
            order.append("timers")
            real_poll(now, due)

        a.host.poll = poll              # type: ignore[method-assign]
        a._on_timer()
        a.close()
        return order

    assert run_on("virtual", main) == ["input", "timers"]
