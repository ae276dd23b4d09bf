"""Where TCP's whole frames go (``Host.ip_tcp_path``) follows every change of
routes, addresses, MTUs, links and neighbours made after a destination was
first used.

The rules are the kernel's: a datagram leaves whole only through the route
the FIB gives now (ip_route_output, with the socket's cached dst dropped by
any routing change: rt_genid), not above that route's MTU (ip_fragment's
test), and with the link-layer header of a neighbour in a connected state
only (neigh_output's hh test for the states neigh_event_send lets through
at once; a STALE one goes through neigh_resolve_output, which moves it to
DELAY).  ip_tcp_path keeps the
route's part per destination (issue 12), so each case first uses the path,
then changes something, then asks again.
"""

from __future__ import annotations

from hostutil import MAC, MY, PEER, PEER_MAC, inject, make_host
from scapy.layers.l2 import ARP

from tcpio.core.addr import ip_aton
from tcpio.core.neighbour import HH_STATES, NUD_DELAY, NUD_PROBE, NUD_STALE

GW_MAC = bytes.fromhex("020000000009")
OTHER_MAC = bytes.fromhex("020000000005")


def ip(s: str) -> int:
    return ip_aton(s)


def test_a_connected_neighbour_gives_the_path_and_a_stale_one_does_not():
    h = make_host()
    other = ip("10.0.0.5")
    assert h.ip_tcp_path(other, 1500) is None       # unresolved: ip_output asks ARP
    h.ip_output(6, None, other, b"x" * 20)
    inject(h, ARP(op=2, hwsrc=OTHER_MAC, psrc="10.0.0.5", hwdst=MAC, pdst=MY))
    n = h.arp.lookup(1, other)
    assert n.state & HH_STATES                      # the reply: REACHABLE
    assert h.ip_tcp_path(other, 1500) == (1, OTHER_MAC, MAC, ip(MY))
    h.poll(h.now + 2 * h.settings.arp_base_reachable_time)     # reachable_time ran out
    assert n.state == NUD_STALE
    assert h.ip_tcp_path(other, 1500) is None
    # what ip_output then does with it: neigh_resolve_output, STALE -> DELAY
    # (PROBE at once without a first-probe delay), whose header goes as is
    h.ip_output(6, None, other, b"x" * 20)
    assert n.state in (NUD_DELAY, NUD_PROBE)
    assert h.ip_tcp_path(other, 1500) == (1, OTHER_MAC, MAC, ip(MY))


def test_a_new_route_moves_the_path_to_its_gateway():
    h = make_host()
    dst = ip("10.0.0.1")
    assert h.ip_tcp_path(dst, 1500)[1] == PEER_MAC
    h.add_static_arp(ip("10.0.0.9"), GW_MAC)
    h.add_route(dst, 32, ip("10.0.0.9"))
    assert h.ip_tcp_path(dst, 1500)[1] == GW_MAC
    h.remove_route(dst, 32)
    assert h.ip_tcp_path(dst, 1500)[1] == PEER_MAC


def test_an_mtu_lowered_after_use_holds_back_a_datagram_above_it():
    h = make_host()
    dst = ip(PEER)
    assert h.ip_tcp_path(dst, 1500) is not None
    h.set_mtu(1, 1400)
    assert h.ip_tcp_path(dst, 1500) is None
    assert h.ip_tcp_path(dst, 1400) is not None
    h.update_pmtu(dst, 1300)            # a learned path MTU lowers it further
    assert h.ip_tcp_path(dst, 1400) is None
    assert h.ip_tcp_path(dst, 1300) is not None


def test_a_link_taken_down_and_an_address_made_local_end_the_path():
    h = make_host()
    dst = ip(PEER)
    assert h.ip_tcp_path(dst, 1500) is not None
    h.set_link(1, False)
    assert h.ip_tcp_path(dst, 1500) is None         # no route: ip_output's ENETUNREACH
    h.set_link(1, True)
    h.add_static_arp(dst, PEER_MAC)
    assert h.ip_tcp_path(dst, 1500) is not None
    h.add_address(1, dst, 24)                       # now ours: lo, not the wire
    assert h.ip_tcp_path(dst, 1500) is None
