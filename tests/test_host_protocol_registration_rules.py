"""Host.register_protocol: what a registration replaces, one rule per test.

Linux registers a protocol as one ``struct net_protocol`` (inet_add_protocol):
its ``handler``, ``err_handler`` and ``early_demux`` come and go together, so
registering a protocol again installs exactly what the new registration
brings.  tcpio's register_protocol takes the early demux apart from the
handler (docs/internals.md, "tcpio.core.host.Host"); the same rule holds.
"""

from __future__ import annotations

from hostutil import MAC, MY, PEER, PEER_MAC, make_host
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpio.core.protocol import EarlyDemux

IPPROTO_TCP = 6


class Handler:
    """A TCP handler with rcv only (no rcv_verified of its own)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes]] = []

    def rcv(self, iph, payload, now) -> bool:
        self.log.append(("rcv", bytes(payload)[-4:]))
        return True

    def err(self, kind, code, code_errno, info, iph, payload) -> None:
        pass

    def fast(self, iph, payload, now) -> bool:
        self.log.append(("early_demux", bytes(payload)[-4:]))
        return True


def _segment(data: bytes) -> bytes:
    return bytes(Ether(dst=MAC, src=PEER_MAC) / IP(src=PEER, dst=MY) /
                 TCP(sport=1000, dport=2000, flags="A") / data)


def test_registering_a_handler_again_without_early_demux_drops_its_previous_one():
    """inet_add_protocol installs a whole net_protocol: the same handler
    registered again with no early demux (and no rcv_verified) gets every
    segment through rcv; the fast path it registered before is gone."""
    h = make_host()
    handler = Handler()
    h.register_protocol(IPPROTO_TCP, handler, EarlyDemux(handler.fast))
    h.receive(1, _segment(b"one!"), 1.0)
    h.register_protocol(IPPROTO_TCP, handler)
    h.receive(1, _segment(b"two!"), 2.0)
    assert handler.log == [("early_demux", b"one!"), ("rcv", b"two!")]
