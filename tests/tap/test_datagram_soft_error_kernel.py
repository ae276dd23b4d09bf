"""Differential: a soft ICMP error reaches no asyncio DatagramProtocol, on
kernel sockets or on tcpio's (tests/test_udp_icmp_error_rules.py has the
rule).  Both endpoints are connected to an address on the TAP's subnet that
nobody answers ARP for: each side's neighbour resolution fails after three
requests and the datagram's host unreachable (soft) comes back to its own
UDP, which without IP_RECVERR ignores it, so neither protocol hears
anything, and the next send goes out without an error.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from netns import kernel_peer

from .test_datagram_contract import Trace

pytestmark = pytest.mark.tap

NOBODY = "10.7.0.99"


async def traces() -> tuple[list[str], list[str], int]:
    async with kernel_peer() as peer:
        loop = asyncio.get_running_loop()
        ksock = peer.ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ksock.bind((peer.kernel_ip, 0))
        ksock.connect((NOBODY, 9))
        kt, kp = await loop.create_datagram_endpoint(Trace, sock=ksock)
        tt, tp = await peer.stack.create_datagram_endpoint(
            Trace, local_addr=(peer.tcpio_ip, 0), remote_addr=(NOBODY, 9))
        kt.sendto(b"x")
        tt.sendto(b"x")
        await asyncio.sleep(4.5)                # three ARP requests 1 s apart, then failure
        failed = peer.stack.mib()["ArpResolveFailed"]
        kt.sendto(b"y")                         # no pending error to report either
        tt.sendto(b"y")
        await asyncio.sleep(0.2)
        kt.close()
        tt.close()
        await asyncio.sleep(0.05)
        return kp.trace, tp.trace, failed


def test_a_soft_error_reaches_no_datagram_protocol_as_on_kernel_sockets(tap_required):
    kernel, ours, arp_failed = asyncio.run(asyncio.wait_for(traces(), 30))
    assert arp_failed >= 1                      # tcpio's resolution did fail
    assert ours == kernel == ["made", "lost None"]
