"""SOCK_RAW against the kernel over a TAP (issue 18): ping implemented on a raw
ICMP socket, and the kernel's own ping seen by one."""

from __future__ import annotations

import asyncio
import socket

from netns import KernelPeer
from scapy.layers.inet import ICMP, IP

import tcpio


async def test_ping_the_kernel_from_a_raw_icmp_socket(peer: KernelPeer) -> None:
    sock = peer.stack.socket(tcpio.SOCK_RAW, socket.IPPROTO_ICMP)
    for seq in (1, 2, 3):
        await sock.sendto(bytes(ICMP(type=8, id=0x1234, seq=seq) / b"from tcpio raw"),
                          (peer.kernel_ip, 0))
        data, src = await asyncio.wait_for(sock.recvfrom(65535), 5)
        reply = IP(data)
        assert src == (peer.kernel_ip, 0) and reply.dst == peer.tcpio_ip
        assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 0x1234, seq)
        assert bytes(reply[ICMP].payload) == b"from tcpio raw"
    sock.close()


async def test_the_kernels_ping_is_answered_and_copied_to_a_raw_socket(peer: KernelPeer) -> None:
    sock = peer.stack.socket(tcpio.SOCK_RAW, socket.IPPROTO_ICMP)
    res = await peer.ns.arun("ping", "-c", "1", "-W", "5", "-p", "abcd", peer.tcpio_ip)
    assert res.returncode == 0, res.stdout + res.stderr
    data, src = await asyncio.wait_for(sock.recvfrom(65535), 5)
    request = IP(data)
    assert src == (peer.kernel_ip, 0) and request[ICMP].type == 8
    assert bytes(request[ICMP].payload).endswith(b"\xab\xcd")
