"""Connection set-up and tear-down with the Linux kernel as the peer, in bulk.

The kernel connects to a tcpio listener 2000 times in a row and 200 times at
once, and tcpio connects to a kernel listener the same way; every connection
carries a seeded message that must come back byte for byte (the echo side
reads to EOF, so each connection also closes from both ends).  Connecting to a
closed port is refused on both sides, as the kernel reports it.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from conftest import twin_params
from netns import KernelPeer
from scapy.layers.inet import TCP

from .test_tcp_kernel_common import (
    echo_handler,
    echo_roundtrip,
    kernel_connect,
    kernel_listener,
    kernel_mib,
    kernel_sockets,
    payload,
    ss,
    wait_until,
)

pytestmark = pytest.mark.tap

PORT = 7000
IN_A_ROW = 2000
AT_ONCE = 200


async def kernel_client_echo(peer: KernelPeer, sock: socket.socket, i: int) -> bytes:
    reader, writer = await kernel_connect(sock, (peer.tcpio_ip, PORT))
    return await echo_roundtrip(reader, writer, payload(i))


async def tcpio_client_echo(peer: KernelPeer, i: int) -> bytes:
    reader, writer = await asyncio.wait_for(
        peer.stack.open_connection(peer.kernel_ip, PORT), 20)
    return await echo_roundtrip(reader, writer, payload(i))


def no_live_tcpio_connections(peer: KernelPeer) -> bool:
    """Only the listener and TIME_WAIT entries are left in tcpio's tables."""
    return all(r.state in ("LISTEN", "TIME-WAIT") for r in peer.stack.host.tcp.connections())


async def test_kernel_connects_to_tcpio_2000_times_in_a_row(peer):
    server = await peer.stack.start_server(echo_handler, "0.0.0.0", PORT, backlog=128)
    done = 0
    for base in range(0, IN_A_ROW, 200):
        for k, sock in enumerate(kernel_sockets(peer.ns, 200)):
            i = base + k
            assert await kernel_client_echo(peer, sock, i) == payload(i), f"connection {i}"
            done += 1
    assert done == IN_A_ROW
    assert await wait_until(lambda: no_live_tcpio_connections(peer))
    mib = peer.stack.mib()
    assert mib["PassiveOpens"] == IN_A_ROW
    assert "ListenOverflows" not in mib and "AttemptFails" not in mib
    assert "OutRsts" not in mib and "EstabResets" not in mib
    server.close()


async def test_kernel_connects_to_tcpio_200_at_once(peer):
    server = await peer.stack.start_server(echo_handler, "0.0.0.0", PORT, backlog=512)
    socks = kernel_sockets(peer.ns, AT_ONCE)
    echoes = await asyncio.gather(*(kernel_client_echo(peer, s, i)
                                    for i, s in enumerate(socks)))
    assert echoes == [payload(i) for i in range(AT_ONCE)]
    assert await wait_until(lambda: no_live_tcpio_connections(peer))
    mib = peer.stack.mib()
    assert mib["PassiveOpens"] == AT_ONCE
    # (a RST here has been the answer to the peer's TIME-WAIT ACK of a FIN
    # probed needlessly: the counters say which)
    assert "ListenOverflows" not in mib and "OutRsts" not in mib, {
        k: mib[k] for k in ("ListenOverflows", "OutRsts", "TCPLossProbes", "RetransSegs")
        if k in mib}
    server.close()


async def test_tcpio_connects_to_kernel_2000_times_in_a_row(peer):
    server = await kernel_listener(peer.ns, (peer.kernel_ip, PORT), echo_handler)
    try:
        for i in range(IN_A_ROW):
            assert await tcpio_client_echo(peer, i) == payload(i), f"connection {i}"
        mib = peer.stack.mib()
        assert mib["ActiveOpens"] == IN_A_ROW
        assert "AttemptFails" not in mib and "EstabResets" not in mib
        # tcpio closed first on every connection (write_eof), so the TIME_WAIT
        # entries are tcpio's and the kernel's sockets are all gone.
        assert await wait_until(lambda: [r for r in ss(peer.ns) if r[0] != "LISTEN"] == [])
        tw = [r for r in peer.stack.host.tcp.connections() if r.state == "TIME-WAIT"]
        assert len({r.local for r in tw}) == len(tw)           # distinct ports
        # Sometimes the kernel's tail-loss probe re-sends its FIN just as our
        # last ACK is on the way: tcpio's TIME_WAIT ACKs it again, the kernel
        # (closed by then) answers RST, and the RST ends that TIME_WAIT early,
        # as Linux does with tcp_rfc1337=0.  Each such RST is one TIME_WAIT less.
        assert len(tw) == IN_A_ROW - kernel_mib(peer.ns)["OutRsts"]
    finally:
        server.close()


async def test_tcpio_connects_to_kernel_200_at_once(peer):
    server = await kernel_listener(peer.ns, (peer.kernel_ip, PORT), echo_handler)
    # Resolve the kernel's MAC first: this test is about TCP; the ARP queue's
    # part is test_200_connects_while_arp_resolves.
    await peer.stack.ping(peer.kernel_ip, timeout=5)
    try:
        echoes = await asyncio.gather(*(tcpio_client_echo(peer, i) for i in range(AT_ONCE)))
        assert echoes == [payload(i) for i in range(AT_ONCE)]
        mib = peer.stack.mib()
        assert mib["ActiveOpens"] == AT_ONCE and "AttemptFails" not in mib
    finally:
        server.close()


async def test_200_connects_while_arp_resolves(peer):
    """200 SYNs to a neighbour tcpio has not resolved yet: more than
    arp_unres_qlen wait for ARP.  Linux drops the overflow silently, the
    connects retransmit their SYN and all succeed; none may fail."""
    server = await kernel_listener(peer.ns, (peer.kernel_ip, PORT), echo_handler)
    try:
        echoes = await asyncio.gather(*(tcpio_client_echo(peer, i) for i in range(AT_ONCE)))
        assert echoes == [payload(i) for i in range(AT_ONCE)]
    finally:
        server.close()


async def test_closed_port_is_refused_both_ways(peer):
    # kernel -> tcpio: nothing listens on tcpio's port 9, the kernel sees a RST.
    (sock,) = kernel_sockets(peer.ns, 1)
    with pytest.raises(ConnectionRefusedError):
        await kernel_connect(sock, (peer.tcpio_ip, 9))
    sock.close()
    assert peer.stack.mib()["OutRsts"] == 1
    # tcpio -> kernel: the kernel answers tcpio's SYN with a RST.
    s = peer.stack.socket(socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError) as info:
        await asyncio.wait_for(s.connect((peer.kernel_ip, 9)), 20)
    assert info.value.errno == 111     # ECONNREFUSED
    s.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(peer.stack.open_connection(peer.kernel_ip, 9), 20)
    mib = peer.stack.mib()
    assert mib["AttemptFails"] == 2 and mib["ActiveOpens"] == 2
    assert mib["OutRsts"] == 1          # never answer a RST with a RST


@pytest.mark.parametrize("wire", twin_params("wire"))
def test_timestamps_of_a_kernel_syn_ack_parse_as_sent(wire):
    """The option layout Linux puts on its SYN-ACK (MSS, SACK_PERM, TS, NOP, WS),
    built by scapy.  A wrong TSval here makes tcpio echo a bad TSecr in its
    third ACK, which Linux 6.x's tcp_check_req rejects: connects then hang."""
    seg = bytes(TCP(sport=7000, dport=50294, flags="SA", seq=1, ack=2,
                    options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (4257097643, 7)),
                             ("NOP", None), ("WScale", 10)]))
    opts = wire.parse_tcp(seg).options
    assert (opts.ts_val, opts.ts_ecr) == (4257097643, 7)
    assert (opts.mss, opts.wscale, opts.sack_ok) == (1460, 10, True)
