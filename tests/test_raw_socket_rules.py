"""SOCK_RAW (issue 18, seed 000; Linux's net/ipv4/raw.c).

Two stacks on a MemoryWire under the virtual clock; the datagrams a raw
socket returns (IP header included) and the ones it sends are read and
built with scapy.
"""

from __future__ import annotations

import asyncio
import socket

from scapy.layers.inet import ICMP, IP, UDP
from stackutil import Sink, run_on, wired_stacks

import tcpio
from tcpio.core.raw import IP_HDRINCL

A, B = "10.0.0.1", "10.0.0.2"


def test_ping_on_a_raw_icmp_socket() -> None:
    async def main() -> None:
        async with wired_stacks() as (a, _):
            sock = a.socket(tcpio.SOCK_RAW, socket.IPPROTO_ICMP)
            request = bytes(ICMP(type=8, id=0x4242, seq=7) / b"raw ping")
            assert await sock.sendto(request, (B, 0)) == len(request)
            data, src = await asyncio.wait_for(sock.recvfrom(65535), 5)
            reply = IP(data)                      # the IP header comes first
            assert src == (B, 0) and (reply.src, reply.dst) == (B, A)
            assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 0x4242, 7)
            assert bytes(reply[ICMP].payload) == b"raw ping"
            chk = reply.chksum
            del reply.chksum
            assert IP(bytes(reply)).chksum == chk
    run_on("virtual", main)


def test_unknown_protocol_with_a_raw_socket_is_delivered_not_unreachable() -> None:
    async def main() -> None:
        async with wired_stacks() as (a, b):
            tx = a.socket(tcpio.SOCK_RAW, 253)
            await tx.sendto(b"no listener", (B, 0))
            await asyncio.sleep(0.5)
            assert b.mib()["InUnknownProtos"] == 1 and a.mib()["IcmpInDestUnreachs"] == 1
            rx = b.socket(tcpio.SOCK_RAW, 253)
            await tx.sendto(b"hello 253", (B, 0))
            data, src = await asyncio.wait_for(rx.recvfrom(65535), 5)
            pkt = IP(data)
            assert src == (A, 0) and pkt.proto == 253 and bytes(pkt.payload) == b"hello 253"
            await asyncio.sleep(0.5)
            assert b.mib()["InUnknownProtos"] == 1 and a.mib()["IcmpInDestUnreachs"] == 1
    run_on("virtual", main)


def test_ip_hdrincl_fills_length_checksum_source_and_id() -> None:
    async def main() -> None:
        async with wired_stacks() as (a, b):
            rx = b.socket(tcpio.SOCK_RAW, 253)
            tx = a.socket(tcpio.SOCK_RAW, 253)
            tx.setsockopt(socket.IPPROTO_IP, IP_HDRINCL, 1)
            assert tx.getsockopt(socket.IPPROTO_IP, IP_HDRINCL) == 1
            raw = bytearray(bytes(IP(src="0.0.0.0", dst=B, proto=253, id=0, ttl=9, len=0,
                                     chksum=0) / b"own header"))
            await tx.sendto(raw, (B, 0))
            data, _ = await asyncio.wait_for(rx.recvfrom(65535), 5)
            pkt = IP(data)
            assert pkt.src == A and pkt.ttl == 9 and pkt.len == len(raw) and pkt.id != 0
            assert bytes(pkt.payload) == b"own header"
            chk = pkt.chksum
            del pkt.chksum
            assert IP(bytes(pkt)).chksum == chk
    run_on("virtual", main)


def test_a_raw_udp_socket_sees_copies_and_the_udp_socket_still_gets_them() -> None:
    async def main() -> None:
        async with wired_stacks() as (a, b):
            raw = b.socket(tcpio.SOCK_RAW, socket.IPPROTO_UDP)
            _, sink = await b.create_datagram_endpoint(Sink, local_addr=(B, 9999))
            tx, _ = await a.create_datagram_endpoint(Sink, remote_addr=(B, 9999))
            for i in range(3):
                tx.sendto(b"dgram %d" % i)
            assert await sink.wait_for(lambda: len(sink.received) == 3)
            copies = [IP(await asyncio.wait_for(raw.recv(65535), 5)) for _ in range(3)]
            assert [bytes(p[UDP].payload) for p in copies] == [b"dgram 0", b"dgram 1",
                                                                b"dgram 2"]
            raw.close()
            tx.sendto(b"after")
            assert await sink.wait_for(lambda: len(sink.received) == 4)
    run_on("virtual", main)


def test_a_bound_or_connected_raw_socket_takes_only_its_datagrams() -> None:
    async def main() -> None:
        async with wired_stacks() as (a, b):
            b.add_address(1, "10.0.0.3/24")
            only3 = b.socket(tcpio.SOCK_RAW, 253)
            only3.bind(("10.0.0.3", 0))
            from_c = b.socket(tcpio.SOCK_RAW, 253)
            from_c.connect(("10.0.0.99", 0))
            anyone = b.socket(tcpio.SOCK_RAW, 253)
            tx = a.socket(tcpio.SOCK_RAW, 253)
            await tx.sendto(b"to .2", (B, 0))
            await tx.sendto(b"to .3", ("10.0.0.3", 0))
            got = [IP(await asyncio.wait_for(anyone.recv(100), 5)).dst for _ in range(2)]
            assert got == [B, "10.0.0.3"]
            assert IP(await asyncio.wait_for(only3.recv(100), 5)).dst == "10.0.0.3"
            assert only3.core.recvfrom() is None and from_c.core.recvfrom() is None
    run_on("virtual", main)
