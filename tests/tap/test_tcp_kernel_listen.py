"""A tcpio listener under pressure, seen from the Linux kernel's side.

- Backlog overflow: a listener with a tiny backlog that nobody accept()s.
  Linux (tcp_abort_on_overflow=0) queues ``backlog + 1`` children (its
  sk_acceptq_is_full is ``>``); the clients whose third ACK finds the queue
  full believe they are connected, but the server drops that ACK (and their
  data), counts ListenOverflows/ListenDrops, and lets them retransmit.  Once
  accept() drains the queue, every connection goes through.  The number of
  children queued is compared with what the kernel itself queues for the
  same backlog, measured in the same namespace.
- SYN flood: spoofed SYNs (scapy-built, sent on the namespace's side of the
  TAP through an AF_PACKET socket) fill the SYN queue; further SYNs get SYN
  cookies, the queue stays bounded, and a real kernel client still connects
  (through a cookie) and exchanges data.
"""

from __future__ import annotations

import asyncio
import errno
import random
import socket

import pytest
from netns import KernelPeer, NetNs, kernel_peer
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings

from .test_tcp_kernel_common import (
    TCP_ESTABLISHED,
    echo_handler,
    echo_roundtrip,
    kernel_connect,
    kernel_sockets,
    payload,
    tcp_info,
    wait_until,
)

pytestmark = pytest.mark.tap

PORT = 7100
BACKLOG = 2
CLIENTS = 6


async def linux_accept_queue_capacity(ns: NetNs, backlog: int, clients: int) -> int:
    """How many connections the kernel queues on a listener with ``backlog``
    that never accepts (over the namespace's loopback, no tcpio involved)."""
    def make() -> list[socket.socket]:
        srv = socket.socket()
        srv.bind(("127.0.0.1", PORT))
        srv.listen(backlog)
        socks = [socket.socket() for _ in range(clients)]
        for s in socks:
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", PORT))
        return [srv, *socks]

    srv, *socks = ns.call(make)
    try:
        def queued() -> int:
            out = ns.run("ss", "-tlnH", f"sport = :{PORT}", check=True).stdout.split()
            return int(out[1])          # a listener's Recv-Q is its accept queue length
        await asyncio.sleep(0.3)        # loopback handshakes finish at once; be generous
        return queued()
    finally:
        for s in (srv, *socks):
            s.close()


async def overflow_listener(peer: KernelPeer) -> tuple[object, list[socket.socket],
                                                          list[bytes]]:
    """A tcpio listener with backlog BACKLOG and CLIENTS kernel clients that
    each sent a message; returns once the overflowed clients are retransmitting."""
    listener = peer.stack.socket(socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", PORT))
    listener.listen(BACKLOG)
    await peer.stack.ping(peer.kernel_ip, timeout=5)      # no ARP in the way
    socks = kernel_sockets(peer.ns, CLIENTS)
    # All SYNs leave before tcpio runs, so every SYN finds an empty accept
    # queue and is answered; the third ACKs then overflow it.  The SYNs past
    # BACKLOG + 1 request socks get cookies (Linux 6.13+'s
    # inet_csk_reqsk_queue_is_full): their clients' later segments would fail
    # the cookie check and be reset, as Linux resets them, if they arrived
    # before the first; so each message is one segment.
    for s in socks:
        assert s.connect_ex((peer.tcpio_ip, PORT)) == errno.EINPROGRESS
    loop = asyncio.get_running_loop()
    await asyncio.gather(*(asyncio.wait_for(loop.sock_connect(s, (peer.tcpio_ip, PORT)), 20)
                           for s in socks))
    messages = [payload(1000 + i)[:1448] for i in range(CLIENTS)]
    for s, msg in zip(socks, messages):
        await loop.sock_sendall(s, msg)
    queue = listener.core.accept_queue

    def overflowed_clients_retransmit() -> bool:
        stuck = [i for i in map(tcp_info, socks) if i["unacked"]]
        return (0 < len(stuck) == CLIENTS - len(queue)
                and all(i["total_retrans"] >= 1 for i in stuck))

    assert await wait_until(overflowed_clients_retransmit, timeout=30)
    return listener, socks, messages


async def test_accept_queue_holds_what_linux_holds(peer: KernelPeer):
    expected = await linux_accept_queue_capacity(peer.ns, BACKLOG, CLIENTS)
    assert expected == BACKLOG + 1          # the oracle itself, as documented
    listener, socks, _ = await overflow_listener(peer)
    assert len(listener.core.accept_queue) == expected
    for s in socks:
        s.close()
    listener.close()


async def test_backlog_overflow_behaves_like_a_linux_server(peer: KernelPeer):
    listener, socks, messages = await overflow_listener(peer)
    loop = asyncio.get_running_loop()
    queued = len(listener.core.accept_queue)
    assert queued == BACKLOG + 1      # as Linux (test_accept_queue_holds_what_linux_holds)
    # Every client is ESTABLISHED on the kernel side; the ones that did not
    # fit keep their data unacknowledged and retransmit it (overflow_listener).
    assert all(tcp_info(s)["state"] == TCP_ESTABLISHED for s in socks)
    mib = peer.stack.mib()
    assert mib["ListenOverflows"] >= CLIENTS - queued
    assert mib["ListenDrops"] >= mib["ListenOverflows"]
    assert mib["PassiveOpens"] == queued
    # accept() drains the queue; the retransmissions then complete the rest.
    by_addr = {s.getsockname(): msg for s, msg in zip(socks, messages)}
    got: dict[tuple[str, int], bytes] = {}
    for _ in range(CLIENTS):
        child, addr = await asyncio.wait_for(listener.accept(), 30)
        data = b""
        while len(data) < len(by_addr[addr]):
            chunk = await asyncio.wait_for(child.recv(65536), 30)
            assert chunk, "EOF before the client's message"
            data += chunk
        got[addr] = data
        await child.sendall(data[::-1])
        child.close()
    for s, msg in zip(socks, messages):
        assert got[s.getsockname()] == msg
        reply = b""
        while len(reply) < len(msg):
            chunk = await asyncio.wait_for(loop.sock_recv(s, 65536), 30)
            assert chunk, "connection closed before the reply"
            reply += chunk
        assert reply == msg[::-1]
        s.close()
    assert peer.stack.mib()["PassiveOpens"] == CLIENTS
    listener.close()


SPOOFED = [f"10.7.0.{i}" for i in range(10, 250)]
NOWHERE_MAC = bytes.fromhex("020000000099")   # nobody on the TAP has it: SYN-ACKs are lost


def spoofed_syns(peer: KernelPeer, kernel_mac: str, count: int, seed: int) -> list[bytes]:
    """SYNs from made-up hosts of the namespace's subnet, as Linux would send them."""
    rng = random.Random(seed)
    frames = []
    for _ in range(count):
        frames.append(bytes(
            Ether(dst=peer.tap.mac.hex(":"), src=kernel_mac)
            / IP(src=rng.choice(SPOOFED), dst=peer.tcpio_ip, ttl=64, id=rng.getrandbits(16))
            / TCP(sport=rng.randrange(1024, 65535), dport=PORT, flags="S",
                  seq=rng.getrandbits(32), window=64240,
                  options=[("MSS", 1460), ("SAckOK", b""),
                           ("Timestamp", (rng.getrandbits(32), 0)), ("NOP", None),
                           ("WScale", 7)])))
    return frames


FLOOD_BACKLOG = 64        # listen()'s: the SYN queue takes FLOOD_BACKLOG + 1 request socks
FLOOD = 600
BURST = 100


async def test_syn_flood_gets_cookies_and_a_real_client_still_connects(tap_required):
    # Every SYN of a burst is answered here: the per-batch SYN budget (which
    # drops cookie-bound SYNs past it, tests/tcp/test_syn_fast_rules.py) is
    # set above the flood, so the count below is the cookie rule's alone.
    # Linux 6.13+'s inet_csk_reqsk_queue_is_full: cookies once qlen > the
    # listen() backlog (commit 3479c7549fb1); tcp_max_syn_backlog is not it.
    settings = Settings(tcp_max_syn_backlog=8, tcp_syn_budget=FLOOD)
    async with kernel_peer(settings=settings) as peer:
        server = await peer.stack.start_server(echo_handler, "0.0.0.0", PORT, backlog=FLOOD_BACKLOG)
        listener = server.sockets[0].core
        # The spoofed hosts "exist" for tcpio (a neighbour entry each) but never
        # answer: their request socks wait out every SYN-ACK retry, as in a real
        # flood, instead of failing early on ARP.
        for ip in SPOOFED:
            peer.stack.host.add_static_arp(ip_aton(ip), NOWHERE_MAC)
        kernel_mac = peer.ns.ip_json("link", "show", peer.ifname)[0]["address"]
        frames = spoofed_syns(peer, kernel_mac, FLOOD, seed=7)

        def open_packet_socket() -> socket.socket:
            raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            raw.bind((peer.ifname, 0))
            return raw

        raw = peer.ns.call(open_packet_socket)
        base = peer.stack.mib().get("InSegs", 0)
        try:
            # In bursts the TAP's queue holds, each one read by tcpio before the next.
            for start in range(0, FLOOD, BURST):
                for frame in frames[start:start + BURST]:
                    raw.send(frame)
                sent = start + len(frames[start:start + BURST])
                assert await wait_until(
                    lambda n=sent: peer.stack.mib().get("InSegs", 0) >= base + n)
            assert len(listener.syn_queue) == FLOOD_BACKLOG + 1
            # With the SYN queue full, a real kernel client connects through a cookie.
            (sock,) = kernel_sockets(peer.ns, 1)
            reader, writer = await kernel_connect(sock, (peer.tcpio_ip, PORT))
            msg = payload(42) * 10
            assert await echo_roundtrip(reader, writer, msg) == msg
        finally:
            raw.close()
        mib = peer.stack.mib()
        assert len(listener.syn_queue) <= FLOOD_BACKLOG + 1
        # Only the first FLOOD_BACKLOG + 1 spoofed SYNs got a request sock; every
        # later SYN (the real client's too) was answered with a cookie.
        assert mib["SyncookiesSent"] == FLOOD - (FLOOD_BACKLOG + 1) + 1
        assert "TCPSynBudgetDrop" not in mib
        assert mib["SyncookiesRecv"] == 1          # the real client's third ACK
        assert "SyncookiesFailed" not in mib
        assert mib["PassiveOpens"] == 1
        server.close()
