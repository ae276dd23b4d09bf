"""Connection teardown with the Linux kernel as the peer, checked on the wire.

Each test records the TAP (PcapDevice) and asks three judges: the kernel's
own socket table (``ss`` in the namespace), tcpio's table, and Wireshark's
TCP analysis of the capture (checksums Good, nothing malformed, no analysis
flag that would be our fault).

- TIME_WAIT: tcpio closes first and ends in TIME_WAIT while the kernel's socket
  is gone; a retransmitted FIN (the kernel's own frame, replayed) is ACKed
  again; the entry expires after tcp_tw_timeout.
- FIN_WAIT_2: tcpio closes, the kernel does not.  An orphan waits
  tcp_fin_timeout, then is gone and the kernel's late data meets a RST.  A
  half-close (shutdown(SHUT_WR)) instead waits as long as it takes and still
  receives.
- Simultaneous close: both FINs cross on the wire; both ends pass through
  CLOSING and both end in TIME_WAIT, which only a simultaneous close does.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from netns import KernelPeer, kernel_peer
from scapy.layers.inet import IP, TCP
from scapy.utils import rdpcap

from tcpio.core.settings import Settings

from .test_tcp_kernel_common import (
    connect_to_kernel,
    ss,
    tcp_info,
    tcpio_rows,
    tshark_tcp_problems,
    wait_until,
)
from .tshark import needs_tshark

pytestmark = [pytest.mark.tap, needs_tshark]

PORT = 7200
FIN = 0x01
TCP_CLOSE = 7          # Linux state number in tcp_info


async def connected_pair(peer: KernelPeer, port: int = PORT) -> tuple[Any, socket.socket]:
    """A tcpio socket connected to a kernel socket in the namespace, after one
    exchange each way (so both sides are idle and everything is ACKed).

    The kernel's tail-loss probe is turned off in the namespace: on a busy
    machine it may re-send the kernel's FIN a few ms after the first, before
    our ACK lands, and the RST the closed kernel then sends to our second ACK
    ends our TIME_WAIT (Linux's tcp_rfc1337=0).  Correct, but not what these
    tests are about; with only the RTO (>= 200 ms) left, the race is gone.
    """
    loop = asyncio.get_running_loop()
    peer.ns.sysctl("net.ipv4.tcp_early_retrans", 0)
    sock, ksock = await connect_to_kernel(peer, port)
    await sock.sendall(b"hello kernel")
    assert await asyncio.wait_for(loop.sock_recv(ksock, 100), 20) == b"hello kernel"
    await loop.sock_sendall(ksock, b"hello tcpio")
    assert await asyncio.wait_for(sock.recv(100), 20) == b"hello tcpio"
    return sock, ksock


def tuple_of(sock: Any) -> tuple[str, str]:
    """("ip:port", "ip:port") local and remote, as ``ss`` and tcpio's table print them."""
    (lip, lport), (rip, rport) = sock.getsockname(), sock.getpeername()
    return f"{lip}:{lport}", f"{rip}:{rport}"


def tcpio_state(peer: KernelPeer, local: str, remote: str) -> str | None:
    for row in tcpio_rows(peer.stack):
        if row.local == local and row.remote == remote:
            return row.state
    return None


def kernel_state(peer: KernelPeer, local: str, remote: str) -> str | None:
    """The kernel's state for the connection (its local is our remote)."""
    for state, klocal, kpeer in ss(peer.ns):
        if klocal == remote and kpeer == local:
            return state
    return None


def fins(path: str, port: int) -> list[tuple[str, int, int]]:
    """(src ip, seq, ack) of every FIN on the connection, in capture order."""
    out = []
    for pkt in rdpcap(path):
        if TCP in pkt and port in (pkt[TCP].sport, pkt[TCP].dport) and pkt[TCP].flags & FIN:
            out.append((pkt[IP].src, pkt[TCP].seq, pkt[TCP].ack))
    return out


async def close_from_tcpio_first(peer: KernelPeer, port: int) -> tuple[str, str]:
    """Connect, then tcpio closes, then the kernel: tcpio should be in TIME_WAIT."""
    loop = asyncio.get_running_loop()
    sock, ksock = await connected_pair(peer, port)
    local, remote = tuple_of(sock)
    sock.close()                                   # tcpio's FIN goes first
    assert await asyncio.wait_for(loop.sock_recv(ksock, 100), 20) == b""
    ksock.close()                                  # the kernel's FIN answers it
    assert await wait_until(lambda: tcpio_state(peer, local, remote) == "TIME-WAIT")
    assert await wait_until(lambda: kernel_state(peer, local, remote) is None)
    return local, remote


async def test_time_wait(tap_required, tmp_path):
    path = str(tmp_path / "time_wait.pcap")
    settings = Settings(tcp_tw_timeout=3.0)
    async with kernel_peer(pcap=path, settings=settings) as peer:
        # 1. TIME_WAIT lasts tcp_tw_timeout (3 s here, 60 s by default), then ends.
        local, remote = await close_from_tcpio_first(peer, PORT)
        assert await wait_until(lambda: tcpio_state(peer, local, remote) is None, timeout=30)
        # 2. A retransmitted FIN in TIME_WAIT is ACKed again.  Replay the
        #    kernel's FIN of a second connection exactly as it was sent.
        local, remote = await close_from_tcpio_first(peer, PORT + 1)
        peer.device.writer.flush()                     # type: ignore[attr-defined]
        kernel_fin = [bytes(p) for p in rdpcap(path)
                      if TCP in p and p[IP].src == peer.kernel_ip and p[TCP].flags & FIN][-1]
        out_before = peer.stack.mib()["OutSegs"]
        raw = peer.ns.call(socket.socket, socket.AF_PACKET, socket.SOCK_RAW)
        raw.bind((peer.ifname, 0))
        raw.send(kernel_fin)
        raw.close()
        assert await wait_until(lambda: peer.stack.mib()["OutSegs"] >= out_before + 1)
        # The kernel, long closed, answers that ACK with a RST, and the RST
        # ends our TIME_WAIT at once: Linux's default (tcp_rfc1337 = 0).
        assert await wait_until(lambda: tcpio_state(peer, local, remote) is None)
        assert peer.stack.mib()["OutSegs"] == out_before + 1
        assert "OutRsts" not in peer.stack.mib()
    for port in (PORT, PORT + 1):
        ours, theirs, *replayed = fins(path, port)
        assert ours[0] == peer.tcpio_ip and theirs[0] == peer.kernel_ip
        assert theirs[2] == ours[1] + 1                # the kernel had seen our FIN
        acks = [p[TCP].ack for p in rdpcap(path) if TCP in p and p[IP].src == peer.tcpio_ip
                and p[TCP].dport == port]
        assert acks[-1] == theirs[1] + 1               # we ACK the kernel's FIN ...
    assert replayed == [theirs]                        # ... both copies of it (port + 1)
    assert acks[-2:] == [theirs[1] + 1] * 2
    assert await asyncio.to_thread(tshark_tcp_problems, path, peer.tcpio_ip) == []


async def test_orphan_fin_wait_2_times_out(tap_required, tmp_path):
    path = str(tmp_path / "fin_wait_2.pcap")
    settings = Settings(tcp_fin_timeout=2.0)
    async with kernel_peer(pcap=path, settings=settings) as peer:
        loop = asyncio.get_running_loop()
        sock, ksock = await connected_pair(peer)
        local, remote = tuple_of(sock)
        sock.close()                       # orphaned: the kernel ACKs our FIN, no FIN back
        assert await asyncio.wait_for(loop.sock_recv(ksock, 100), 20) == b""
        assert await wait_until(lambda: tcpio_state(peer, local, remote) == "FIN-WAIT-2")
        assert kernel_state(peer, local, remote) == "CLOSE-WAIT"
        # tcp_fin_timeout later the orphan is gone ...
        assert await wait_until(lambda: tcpio_state(peer, local, remote) is None, timeout=30)
        rsts = peer.stack.mib().get("OutRsts", 0)
        # ... and data from the kernel is answered with a RST, as Linux does:
        # the kernel's socket is reset (CLOSE) and its next send fails.
        await loop.sock_sendall(ksock, b"anyone there?")
        assert await wait_until(lambda: tcp_info(ksock)["state"] == TCP_CLOSE)
        with pytest.raises((ConnectionResetError, BrokenPipeError)):
            await loop.sock_sendall(ksock, b"hello?")
        ksock.close()
        assert peer.stack.mib()["OutRsts"] >= rsts + 1
    assert [f[0] for f in fins(path, PORT)] == [peer.tcpio_ip]
    assert await asyncio.to_thread(tshark_tcp_problems, path, peer.tcpio_ip) == []


async def test_half_close_waits_in_fin_wait_2_and_still_receives(tap_required, tmp_path):
    path = str(tmp_path / "half_close.pcap")
    settings = Settings(tcp_fin_timeout=1.0)       # must not apply: the socket is not orphaned
    async with kernel_peer(pcap=path, settings=settings) as peer:
        loop = asyncio.get_running_loop()
        sock, ksock = await connected_pair(peer)
        local, remote = tuple_of(sock)
        sock.shutdown(socket.SHUT_WR)
        assert await asyncio.wait_for(loop.sock_recv(ksock, 100), 20) == b""
        assert await wait_until(lambda: tcpio_state(peer, local, remote) == "FIN-WAIT-2")
        await asyncio.sleep(2.5)                   # well past tcp_fin_timeout
        assert tcpio_state(peer, local, remote) == "FIN-WAIT-2"
        data = bytes(range(256)) * 400             # 100 KiB the other way
        await loop.sock_sendall(ksock, data)
        ksock.close()
        got = b""
        while chunk := await asyncio.wait_for(sock.recv(65536), 20):
            got += chunk
        assert got == data
        assert await wait_until(lambda: tcpio_state(peer, local, remote) == "TIME-WAIT")
        sock.close()
    assert [f[0] for f in fins(path, PORT)] == [peer.tcpio_ip, peer.kernel_ip]
    assert await asyncio.to_thread(tshark_tcp_problems, path, peer.tcpio_ip) == []


async def test_simultaneous_close(tap_required, tmp_path):
    path = str(tmp_path / "simultaneous_close.pcap")
    async with kernel_peer(pcap=path) as peer:
        sock, ksock = await connected_pair(peer)
        local, remote = tuple_of(sock)
        # No await between the two: the kernel's FIN waits in the TAP while
        # tcpio, still ESTABLISHED, sends its own.
        ksock.shutdown(socket.SHUT_WR)
        sock.close()
        assert await wait_until(lambda: tcpio_state(peer, local, remote) == "TIME-WAIT")
        assert await wait_until(lambda: kernel_state(peer, local, remote) == "TIME-WAIT")
        ksock.close()
        mib = peer.stack.mib()
    (a, a_seq, a_ack), (b, b_seq, b_ack) = fins(path, PORT)
    assert {a, b} == {peer.tcpio_ip, peer.kernel_ip}
    # Each FIN was sent before the other side's FIN arrived: neither acks the other.
    assert a_ack == b_seq and b_ack == a_seq
    assert "OutRsts" not in mib
    assert await asyncio.to_thread(tshark_tcp_problems, path, peer.tcpio_ip) == []
