"""UDP delivery rules of the host core against Linux: broadcasts nobody
listens to (__udp4_lib_mcast_deliver), our own broadcasts looped back
(ip_mc_output), and receive memory charged per datagram
(__udp_enqueue_schedule_skb).

Each test pins one rule where the core used to differ from the kernel; the
packets are built by scapy (an independent builder) and the expected
behaviour is Linux's (function named in each docstring).
"""

from __future__ import annotations

from hostutil import MY, PEER, inject, make_host
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton

BCAST = "10.0.0.255"


# ----- __udp4_lib_mcast_deliver ---------------------------------------------------------

def test_broadcast_udp_without_listener_is_ignored_multi_not_noport():
    """Linux counts a broadcast nobody listens to as Udp IgnoredMulti, not NoPorts."""
    h = make_host()
    inject(h, IP(src=PEER, dst=BCAST) / UDP(sport=1, dport=99) / b"b",
           dst_mac="ff:ff:ff:ff:ff:ff")
    assert h.mib["UdpIgnoredMulti"] == 1 and h.mib["UdpNoPorts"] == 0


# ----- __udp_enqueue_schedule_skb: rmem counts truesize ---------------------------------

def test_empty_datagrams_cannot_grow_the_receive_queue_without_bound():
    """Linux charges each queued datagram its skb truesize, not its payload, so a
    flood of zero-length datagrams fills sk_rcvbuf like any other."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    sk.rcvbuf = 4096
    for _ in range(200):
        inject(h, IP(src=PEER, dst=MY) / UDP(sport=9, dport=53))
    assert 1 <= sk.pending() < 200
    assert h.mib["UdpRcvbufErrors"] == 200 - sk.pending()


# ----- ip_mc_output: our own broadcasts are looped back -----------------------------------

def test_a_broadcast_we_send_also_reaches_our_own_listeners():
    """Linux's ip_mc_output clones every RTCF_BROADCAST datagram back to the local
    stack (seen over TAP: the kernel hears its own broadcast echo reply), so a
    listener on the sending host gets the datagram too, and it still goes out."""
    h = make_host()
    listener = h.udp.socket()
    listener.bind(0, 5000)
    sender = h.udp.socket()
    sender.broadcast = True
    sender.bind(ip_aton(MY), 4000)
    sender.sendto(b"hello all", ip_aton(BCAST), 5000)
    out = [Ether(f) for _, f in h.take_output()]
    assert len(out) == 1 and out[0].dst == "ff:ff:ff:ff:ff:ff" and out[0][IP].dst == BCAST
    assert listener.recvfrom() == (b"hello all", (ip_aton(MY), 4000))
