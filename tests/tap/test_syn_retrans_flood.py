"""A retransmitted SYN skips the flood's queue (issue 13, tun_steering's
``seen`` map): the steering program sends a connection request it has
seen before (same source, port and ISN) to the flows' queue, up to a
budget per millisecond.  The kernel is the oracle: its verdict for a packet
(BPF_PROG_TEST_RUN of the loaded program) and, live, the queue its
retransmission arrives on and the kernel client's connect()."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from netns import kernel_peer
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tcpio.devices import tun_steering
from tcpio.devices.tun_steering import FLOW_QUEUE, SYN_QUEUE

pytestmark = pytest.mark.tap

# a socket filter's test run takes an Ethernet frame and starts the program
# past its header: the TUN ("ip") program reads it as the TAP's reads a frame
_ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def syn(src: str = "11.0.0.1", sport: int = 40000, seq: int = 1000, flags: str = "S",
        v6: bool = False) -> bytes:
    ip = IPv6(src=src, dst="fd00::2") if v6 else IP(src=src, dst="10.7.0.2")
    return bytes(_ETH / ip / TCP(sport=sport, dport=80, flags=flags, seq=seq))


SLOTS = 1 << 10


@pytest.fixture
def program(tap_required):
    """load(promote_per_ms) -> the program's fd; its map's fd in ``seen[fd]``."""
    def load(promote_per_ms: int = tun_steering.PROMOTE_PER_MS) -> int:
        m = tun_steering.seen_map(SLOTS)
        fds.append(m)
        fd = tun_steering.load_socket_filter(tun_steering.syn_steering_program(
            "ip", seen=m, slots=SLOTS, promote_per_ms=promote_per_ms))
        fds.append(fd)
        seen[fd] = m
        return fd

    fds: list[int] = []
    seen: dict[int, int] = {}
    load.seen = seen        # type: ignore[attr-defined]
    yield load
    for fd in fds:
        os.close(fd)


def test_the_same_syn_again_goes_to_the_flows_queue(program):
    p = program()
    run = tun_steering.prog_test_run
    assert run(p, syn()) == SYN_QUEUE           # first seen: the SYN queue
    assert run(p, syn()) == FLOW_QUEUE          # the retransmission
    assert run(p, syn()) == FLOW_QUEUE          # and the next one


def test_every_request_of_a_burst_is_remembered(program):
    """Sixteen clients' SYNs, then each one's retransmission: every slot
    (either half of a map element) keeps its own."""
    p = program(promote_per_ms=1000)
    run = tun_steering.prog_test_run
    pkts = [syn(src=f"11.0.{i}.{i + 1}", sport=40000 + i, seq=1000 * i) for i in range(16)]
    assert [run(p, pkt) for pkt in pkts] == [SYN_QUEUE] * 16
    assert [run(p, pkt) for pkt in pkts] == [FLOW_QUEUE] * 16
    assert tun_steering.seen_counts(program.seen[p], SLOTS) == (16, 0)


def test_a_new_isn_port_or_source_is_a_new_request(program):
    p = program()
    run = tun_steering.prog_test_run
    assert run(p, syn()) == SYN_QUEUE
    assert run(p, syn(seq=1001)) == SYN_QUEUE
    assert run(p, syn(sport=40001)) == SYN_QUEUE
    assert run(p, syn(src="11.0.0.2")) == SYN_QUEUE


def test_ipv6_requests_are_remembered_too(program):
    p = program()
    run = tun_steering.prog_test_run
    assert run(p, syn("fd00::7", v6=True)) == SYN_QUEUE
    assert run(p, syn("fd00::7", v6=True)) == FLOW_QUEUE
    assert run(p, syn("fd00::8", v6=True)) == SYN_QUEUE


def test_only_connection_requests_are_steered_or_remembered(program):
    p = program()
    run = tun_steering.prog_test_run
    for flags in ("A", "SA", "R", "SR", "SF", "PA"):
        assert run(p, syn(flags=flags)) == FLOW_QUEUE
    assert run(p, syn()) == SYN_QUEUE           # the ACKs left nothing behind


def test_promotions_stop_at_the_budget_of_the_millisecond_and_are_counted(program):
    """A flood that sends each SYN again gets at most ``promote_per_ms`` of its
    repeats into the flows' queue per 2**20 ns window, the rest stay on the
    SYN queue, both counted.  The kernel runs the repeat 200 times in one
    call (microseconds: one window, or two if it straddles a boundary)."""
    p = program(promote_per_ms=3)
    run = tun_steering.prog_test_run
    assert run(p, syn()) == SYN_QUEUE
    assert tun_steering.seen_counts(program.seen[p], SLOTS) == (0, 0)
    assert run(p, syn(), repeat=200) == SYN_QUEUE      # the last run: over the budget
    promoted, over = tun_steering.seen_counts(program.seen[p], SLOTS)
    assert promoted + over == 200
    assert promoted in (3, 6)


def test_a_budget_of_zero_promotes_nothing(program):
    p = program(promote_per_ms=0)
    run = tun_steering.prog_test_run
    assert [run(p, syn()) for _ in range(3)] == [SYN_QUEUE] * 3


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        tun_steering.syn_steering_program("ip", seen=3, slots=1000)
    with pytest.raises(ValueError):
        tun_steering.syn_steering_program("ip", seen=3, promote_per_ms=-1)
    with pytest.raises(ValueError):
        tun_steering.seen_map(3)


async def test_a_kernel_clients_retransmitted_syn_is_answered_from_the_flows_queue(
        tap_required):
    """Nobody reads the SYN queue (a flood's ring, full): the kernel client's
    first SYN waits there, its retransmission (Linux: after 1 s) arrives on
    the flows' queue and the handshake completes with it."""
    async with kernel_peer(ipv6=False, tap_options={"syn_queue": True}) as peer:
        tap = peer.tap
        assert tap.syn_queue and tap.syn_retrans, (tap.syn_queue_error, tap.syn_retrans_error)
        assert tap.syn_fd is not None
        asyncio.get_running_loop().remove_reader(tap.syn_fd)
        server = await peer.stack.start_server(lambda r, w: w.close(), peer.tcpio_ip, 8080)

        def client() -> float:
            t0 = time.monotonic()
            with socket.create_connection((peer.tcpio_ip, 8080), timeout=5):
                return time.monotonic() - t0

        took = await asyncio.get_running_loop().run_in_executor(None, peer.ns.call, client)
        server.close()
        assert tap.syn_queue_rx == 0
        assert tap.syn_retrans_counts() == (1, 0)
        first = tap._frame_io().read(tap.syn_fd, 10, waiting := [], tap._rx_offloaded)
    assert 0.9 < took < 3.0             # made by the retransmission
    assert first == 1                   # the first SYN, still waiting in its queue
    assert TCP in Ether(waiting[0]) and Ether(waiting[0])[TCP].dport == 8080
