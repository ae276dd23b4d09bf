"""TCP_MAXSEG on a listener: tcpio against the Linux kernel with the same setting.

In one namespace, the same exchange is run twice with roles swapped:

- a kernel listener with TCP_MAXSEG 1000, a tcpio client, the kernel's child sends;
- a tcpio listener with TCP_MAXSEG 1000, a kernel client, tcpio's child sends;

both with SYN cookies off (``tcp_syncookies=1`` and an empty SYN queue) and
forced (``tcp_syncookies=2``: the kernel's sysctl in the namespace, tcpio's
Settings).  The TAP capture (read back by scapy) gives each listener's SYN-ACK
MSS option and the payload sizes each child sent; the children's and clients'
getsockopt(TCP_MAXSEG) give the MSS each side settled on.  tcpio must match
the kernel on every one of them.

What Linux 6.18 does here (and what the test finds again each run): the
SYN-ACK says MSS 1000 in both modes; the queued child sends 988-byte segments
(1000 less 12 bytes of timestamps), the cookie child 524 (a cookie can only
carry 536, the largest table entry not above the 1000-bounded MSS).

A second test plays the client by hand (scapy frames on a bare TAP), so the
SYN can offer a smaller MSS or none at all, and plays the same segments to a
tcpio listener on the virtual clock; both must answer alike, including
TCP_MAXSEG 300 with a SYN without an MSS option, where Linux sends
536-byte segments (TCP_MAXSEG bounds only a received MSS option).
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import time
from dataclasses import dataclass

import pytest
from netns import KernelPeer, NetNs, kernel_peer
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from tcpio.core.settings import Settings
from tests.tcp.test_listen_maxseg import (
    CLIENT_ISN,
    _data_sizes,
    _handshake,
    _mss_option,
    _syn_options,
    _third_ack,
    wire,  # noqa: F401  (fixture: both twins)
)

from .test_tcp_kernel_common import kernel_mib

pytestmark = pytest.mark.tap

MAXSEG = 1000
KERNEL_PORT = 7310          # kernel listener, tcpio client
TCPIO_PORT = 7311           # tcpio listener, kernel client
NBYTES = 20000              # enough for several full-size segments
MODES = {"queued": 1, "cookie": 2}     # tcp_syncookies on both sides


@dataclass
class Side:
    """What one listener did, as its child and its client saw it."""

    listener_maxseg: int    # getsockopt(TCP_MAXSEG) on the listener
    child_maxseg: int       # ... on the accepted socket
    client_maxseg: int      # ... on the connecting socket
    synack_mss: int | None = None      # from the capture
    max_payload: int = 0               # largest data segment the child sent


async def _read(recv, n: int) -> None:
    got = 0
    while got < n:
        chunk = await asyncio.wait_for(recv(65536), 20)
        assert chunk, "EOF before all data arrived"
        got += len(chunk)


async def kernel_serves(peer: KernelPeer) -> Side:
    """Kernel listener with TCP_MAXSEG; a tcpio client; the kernel child sends."""
    loop = asyncio.get_running_loop()

    def make_listener() -> socket.socket:
        srv = socket.socket()
        srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MAXSEG)
        srv.bind((peer.kernel_ip, KERNEL_PORT))
        srv.listen(8)
        srv.setblocking(False)
        return srv

    srv = peer.ns.call(make_listener)
    client = peer.stack.socket(socket.SOCK_STREAM)
    accepted = asyncio.ensure_future(loop.sock_accept(srv))
    await asyncio.wait_for(client.connect((peer.kernel_ip, KERNEL_PORT)), 20)
    child, _ = await asyncio.wait_for(accepted, 20)
    child.setblocking(False)
    side = Side(srv.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
                child.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
                client.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
    await loop.sock_sendall(child, b"k" * NBYTES)
    await _read(client.recv, NBYTES)
    for s in (client, child, srv):
        s.close()
    return side


async def tcpio_serves(peer: KernelPeer) -> Side:
    """tcpio listener with TCP_MAXSEG; a kernel client; tcpio's child sends."""
    loop = asyncio.get_running_loop()
    listener = peer.stack.socket(socket.SOCK_STREAM)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, MAXSEG)
    listener.bind(("0.0.0.0", TCPIO_PORT))
    listener.listen(8)

    def make_client() -> socket.socket:
        s = socket.socket()
        s.setblocking(False)
        return s

    client = peer.ns.call(make_client)
    await asyncio.wait_for(loop.sock_connect(client, (peer.tcpio_ip, TCPIO_PORT)), 20)
    child, _ = await asyncio.wait_for(listener.accept(), 20)
    side = Side(listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
                child.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG),
                client.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG))
    await child.sendall(b"t" * NBYTES)
    await _read(lambda n: loop.sock_recv(client, n), NBYTES)
    for s in (client, child, listener):
        s.close()
    return side


def read_capture(path: str, server_ip: str, port: int, side: Side) -> None:
    """Fill in the SYN-ACK's MSS and the largest data segment from the server."""
    for pkt in rdpcap(path):
        if IP not in pkt or TCP not in pkt or pkt[IP].src != server_ip:
            continue
        th = pkt[TCP]
        if th.sport != port:
            continue
        if th.flags.S and th.flags.A:
            side.synack_mss = {k: v for k, v in th.options if isinstance(k, str)}.get("MSS")
        side.max_payload = max(side.max_payload, len(th.payload))


@pytest.mark.parametrize("mode", MODES)
async def test_listener_maxseg_like_linux(tap_required, wire, tmp_path, mode):  # noqa: F811
    cap = str(tmp_path / "maxseg.pcap")
    settings = Settings(tcp_syncookies=MODES[mode])
    # offloads off: the capture must show the kernel's segments as they are
    # cut for the wire, not its TSO super-frames
    async with kernel_peer(pcap=cap, settings=settings, ipv6=False,
                           tap_options={"offloads": False}) as peer:
        peer.ns.sysctl("net.ipv4.tcp_syncookies", MODES[mode])
        await peer.stack.ping(peer.kernel_ip, timeout=5)      # no ARP in the way
        kernel = await kernel_serves(peer)
        tcpio = await tcpio_serves(peer)
        tcpio_mib = peer.stack.mib()
        linux_mib = kernel_mib(peer.ns)
        await asyncio.sleep(0.2)            # let the FIN exchanges reach the capture
    read_capture(cap, peer.kernel_ip, KERNEL_PORT, kernel)
    read_capture(cap, peer.tcpio_ip, TCPIO_PORT, tcpio)
    # Both listeners really took the path the mode names.
    assert (linux_mib["SyncookiesRecv"] == 1) == (mode == "cookie")
    assert (tcpio_mib.get("SyncookiesRecv", 0) == 1) == (mode == "cookie")
    # The oracle, as documented above (if a kernel changes, the comparison below
    # still holds tcpio to it, but the docs here need a look).
    assert kernel.synack_mss == MAXSEG
    assert kernel.child_maxseg == (988 if mode == "queued" else 524)
    # tcpio does what the kernel did, field by field.
    assert tcpio.listener_maxseg == kernel.listener_maxseg
    assert tcpio.synack_mss == kernel.synack_mss
    assert tcpio.child_maxseg == kernel.child_maxseg
    assert tcpio.client_maxseg == kernel.client_maxseg
    # Every data segment fits the child's MSS, and full ones reach it.
    assert kernel.max_payload == kernel.child_maxseg
    assert tcpio.max_payload == kernel.max_payload


# --- the same hand-played client against the kernel and against tcpio's core ---------------
# A client no socket API can play: its SYN may lack the MSS option.  scapy
# frames go into the kernel through a bare TAP (no Stack on it); the same
# segments go into a tcpio listener on the virtual clock (_handshake of
# tests/tcp/test_listen_maxseg.py).  Each side reports (SYN-ACK MSS, child's
# TCP_MAXSEG, largest data segment of 4000 bytes sent by the child).
CLIENT_MAC = "02:00:00:00:00:02"
KERNEL_IP, CLIENT_IP = "10.7.0.1", "10.7.0.2"
RAW_PORT, CLIENT_PORT = 7320, 49500


def _tap_frames(fd: int, quiet: float) -> list[TCP]:
    """TCP segments the kernel writes to the TAP until ``quiet`` seconds pass
    without one for our client port."""
    out = []
    while select.select([fd], [], [], quiet)[0]:
        pkt = Ether(os.read(fd, 65536))
        if TCP in pkt and pkt[TCP].dport == CLIENT_PORT:
            out.append(pkt[TCP])
    return out


def kernel_with_hand_client(user_mss: int, client_mss: int | None, timestamps: bool
                            ) -> tuple[int | None, int, int]:
    ns = NetNs().create()
    try:
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        # raw frames on the fd: no virtio-net header in front of them
        tap = ns.tap(offloads=False)
        ns.ip("addr", "add", f"{KERNEL_IP}/24", "dev", tap.name)
        ns.ip("link", "set", tap.name, "up")
        ns.ip("neigh", "add", CLIENT_IP, "lladdr", CLIENT_MAC, "dev", tap.name)
        kernel_mac = ns.ip_json("link", "show", tap.name)[0]["address"]
        fd = tap.fileno()

        def send(flags: str, seq: int, ack: int, options: list, window: int = 64240) -> None:
            os.write(fd, bytes(Ether(src=CLIENT_MAC, dst=kernel_mac)
                               / IP(src=CLIENT_IP, dst=KERNEL_IP)
                               / TCP(sport=CLIENT_PORT, dport=RAW_PORT, flags=flags, seq=seq,
                                     ack=ack, window=window, options=options)))

        def make_listener() -> socket.socket:
            srv = socket.socket()
            srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, user_mss)
            srv.bind((KERNEL_IP, RAW_PORT))
            srv.listen(4)
            srv.settimeout(20)
            return srv

        srv = ns.call(make_listener)
        try:
            send("S", CLIENT_ISN, 0, _syn_options(client_mss, timestamps))
            deadline = time.monotonic() + 20
            synacks: list[TCP] = []
            while not synacks and time.monotonic() < deadline:
                synacks = [t for t in _tap_frames(fd, 0.5) if t.flags.S]
            assert synacks, "no SYN-ACK from the kernel"
            synack = synacks[0]
            ack_opts, window = _third_ack(synack)
            send("A", CLIENT_ISN + 1, synack.seq + 1, ack_opts, window)
            child, _ = srv.accept()
            maxseg = child.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            child.sendall(b"x" * 4000)
            # Never ACKed, so the kernel sends one flight (initial cwnd 10),
            # then waits for its RTO; half a second of quiet ends the flight.
            sizes = [len(t.payload) for t in _tap_frames(fd, 0.5) if len(t.payload)]
            child.close()
        finally:
            srv.close()
            tap.stop()
        return _mss_option(synack), maxseg, max(sizes)
    finally:
        ns.delete()


def tcpio_with_hand_client(user_mss: int, client_mss: int | None, timestamps: bool
                           ) -> tuple[int | None, int, int]:
    host, synack, child = _handshake("queued", user_mss, client_mss, timestamps=timestamps)
    maxseg = child.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    return _mss_option(synack), maxseg, max(_data_sizes(host, child))


@pytest.mark.parametrize("user_mss,client_mss,timestamps", [
    pytest.param(MAXSEG, 1460, True, id="maxseg1000-mss1460-ts"),
    pytest.param(MAXSEG, 800, False, id="maxseg1000-mss800"),
    pytest.param(MAXSEG, None, False, id="maxseg1000-no-mss"),
    pytest.param(300, 1460, True, id="maxseg300-mss1460-ts"),
    pytest.param(300, None, False, id="maxseg300-no-mss"),
])
def test_hand_played_client_gets_what_linux_gives(tap_required, wire,  # noqa: F811
                                                  user_mss, client_mss, timestamps):
    linux = kernel_with_hand_client(user_mss, client_mss, timestamps)
    assert linux[0] == user_mss                 # the oracle: SYN-ACK MSS = TCP_MAXSEG
    assert tcpio_with_hand_client(user_mss, client_mss, timestamps) == linux
