"""Shared plumbing for the one-Host tests (tests/test_host_*.py).

- ``make_host(*extra, **settings)``: a debug Host (IPv4 only unless
  ``disable_ipv6=0``) with one Ethernet interface
  (ifindex 1, ``MAC``), ``MY``/24 plus any ``extra`` addresses in the same
  subnet, a static ARP entry for ``PEER``, and its start-up output discarded.
- ``inject(h, pkt, now, dst_mac)``: one scapy packet in from ``PEER_MAC``, the
  frames the host sent in answer out, dissected by scapy.
"""

from __future__ import annotations

from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings

MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
MY, MY2, PEER = "10.0.0.2", "10.0.0.3", "10.0.0.1"


def make_host(*extra: str, seed: int = 1, **settings) -> Host:
    # IPv4 rules: no IPv6 link-local address, so the frames and timers a test
    # sees are its rule's alone (not DAD's neighbour solicitations).
    settings.setdefault("disable_ipv6", 1)
    h = Host("h", seed=seed, settings=Settings(**settings))
    h.debug = True          # a bug raises instead of being counted
    h.add_interface("eth0", mac=MAC)
    for addr in (MY, *extra):
        h.add_address(1, ip_aton(addr), 24)
    h.add_static_arp(ip_aton(PEER), PEER_MAC)
    h.take_output()
    return h


def inject(h: Host, pkt, now: float = 0.0, dst_mac: bytes | str = MAC) -> list[Ether]:
    h.receive(1, bytes(Ether(dst=dst_mac, src=PEER_MAC) / pkt), now)
    return [Ether(f) for _, f in h.take_output()]


MY6, PEER6 = "fd00::2", "fd00::1"


def make_dual_host(**settings) -> Host:
    """A dual-stack host: ``make_host``'s IPv4 side, fd00::2/64 (no DAD) beside
    it on eth0 and the IPv6 peer fd00::1 resolved, its start-up output
    (link-local DAD) discarded."""
    from tcpio.core.addr import ip6_aton
    settings.setdefault("disable_ipv6", 0)
    h = make_host(**settings)
    h.add_address6(1, ip6_aton(MY6), 64, nodad=True)
    h.poll(1.0)
    h.poll(2.0)                         # the link-local address passes DAD
    h.ndisc._learn(1, ip6_aton(PEER6), PEER_MAC, h.now)
    h.ndisc.set_reachable(h.ndisc.lookup(1, ip6_aton(PEER6)), h.now)
    h.take_output()
    return h
