"""ARP and neighbour rules of the host core against RFC 826 / RFC 5227 and
Linux: requests from martian senders (arp_process), unicast probes of a
stale entry (ucast_solicit) and the unresolved queue's byte bound
(__neigh_event_send).

Each test pins one rule where the core used to differ from the kernel; the
packets are built by scapy (an independent builder) and the expected
behaviour is the RFC's or Linux's (function named in each docstring).
"""

from __future__ import annotations

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, make_host
from scapy.layers.inet import UDP
from scapy.layers.l2 import ARP, Ether

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings

BCAST = "10.0.0.255"


# ----- arp_process ----------------------------------------------------------------------

@pytest.mark.parametrize("spa", [MY, BCAST, "127.0.0.1"])
def test_arp_request_from_a_martian_sender_is_not_answered_or_learned(spa):
    """Linux arp_process answers a request only if ip_route_input(tip, sip) accepts
    sip: a request claiming our own address (an address conflict, RFC 5227 2.4),
    our broadcast or loopback gets no reply and creates no neighbour entry.
    (Checked against a kernel over TAP; the broadcast case needs rp_filter=1,
    consistent with ip_rcv refusing that source above.)"""
    h = make_host()
    other = "02:00:00:00:00:77"
    out = [Ether(f) for _, f in (h.receive(1, bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src=other)
        / ARP(op=1, hwsrc=other, psrc=spa, hwdst="00:00:00:00:00:00", pdst=MY)), 0.0)
        or h.take_output())]
    assert out == []
    assert h.arp.lookup(1, ip_aton(spa)) is None


def test_arp_ucast_solicit_setting_is_honoured():
    """Settings.arp_ucast_solicit (neigh.default.ucast_solicit) bounds the unicast
    probes of a STALE entry that is used again."""
    h = Host("h", seed=1, settings=Settings(arp_ucast_solicit=1))
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, ip_aton(MY), 24)
    h.take_output()
    # Learn PEER as STALE from its request, then use it: one unicast probe only.
    h.receive(1, bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC)
                       / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER, pdst=MY)), 0.0)
    h.take_output()
    sk = h.udp.socket()
    sk.sendto(b"x", ip_aton(PEER), 9)
    probes = [f for _, f in h.take_output() if Ether(f).type == 0x0806]
    assert len(probes) == 1
    now = 0.0
    for _ in range(5):
        now += 1.0
        h.poll(now)
        probes += [f for _, f in h.take_output() if Ether(f).type == 0x0806]
    assert len(probes) == 1 and h.arp.lookup(1, ip_aton(PEER)) is None


# ----- __neigh_event_send: unres_qlen_bytes ---------------------------------------------

def test_unresolved_queue_is_bounded_in_bytes_too():
    """Linux bounds a neighbour's queue by bytes (unres_qlen_bytes, 212992 by
    default), so a big-MTU link cannot park 101 x 64 KiB per neighbour."""
    h = Host("h", seed=1)
    h.debug = True
    h.add_interface("tap0", mac=MAC, mtu=65000)
    h.add_address(1, ip_aton(MY), 24)
    h.take_output()
    sk = h.udp.socket()
    for i in range(10):
        sk.sendto(bytes([i]) * 60000, ip_aton(PEER), 9)
    h.take_output()
    n = h.arp.lookup(1, ip_aton(PEER))
    assert sum(len(p) for p in n.queue) <= 212992
    # The newest datagrams are the ones kept; they go out once the reply comes.
    h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC)
                       / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER, hwdst=MAC, pdst=MY)), 0.1)
    sent = [Ether(f) for _, f in h.take_output()]
    assert sent and bytes(sent[-1][UDP].payload)[:1] == b"\x09"
    assert len(sent) == 3 and h.mib["ArpUnresolvedDiscards"] == 7
