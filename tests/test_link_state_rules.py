"""Interface down/up (issue 18; ``ip link set IF down|up``).

Linux's rules as the reference: a down interface receives nothing, the
routes through it are dead (a send that needed one fails with ENETUNREACH;
a less specific route through another interface takes over), its
neighbours are forgotten, and an established TCP connection survives a short
down period: its retransmissions fail while the link is down and resume
when it is up.  Virtual clock.
"""

from __future__ import annotations

import errno
import hashlib

import pytest

from tcpio.core.addr import ip_aton
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED


def pair() -> tuple[VirtualNetwork, object, object]:
    net = VirtualNetwork(seed=5)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    return net, a, b


def test_established_tcp_survives_a_short_down_period() -> None:
    net, a, b = pair()
    listener = b.tcp.socket()
    listener.bind(0, 80)
    listener.listen(4)
    c = a.tcp.socket()
    with pytest.raises(BlockingIOError):
        c.connect(ip_aton("10.0.0.2"), 80)
    net.run_until(lambda: c.state == TCP_ESTABLISHED)
    net.run_for(0.1)
    child = listener.accept()
    data = bytes(range(256)) * 8192                # 2 MiB
    sent, got = 0, bytearray()
    down_at, up_at = 0.0, 3.0
    start = net.now
    while len(got) < len(data):
        if sent < len(data):
            sent += c.sendmsg(data[sent:sent + 65536])
        net.run_for(0.05)
        t = net.now - start
        if down_at <= t < up_at and a.interfaces[1].up:
            a.set_link(1, False)
        elif t >= up_at and not a.interfaces[1].up:
            a.set_link(1, True)
        got += child.recvmsg(1 << 20)
        assert net.now - start < 120
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert c.state == child.state == TCP_ESTABLISHED
    assert a.mib["TCPOutNoRoute"] > 0 and a.mib["RetransSegs"] > 0
    assert b.mib.get("InNoInterface", 0) == 0 and a.mib["InNoInterface"] > 0


def test_a_send_that_needs_a_down_interface_is_enetunreach_until_it_is_up() -> None:
    net, a, b = pair()
    sk = a.udp.socket()
    sk.sendto(b"warm", ip_aton("10.0.0.2"), 9)      # ARP resolved
    net.run_for(1)
    assert a.arp.lookup(1, ip_aton("10.0.0.2")) is not None
    a.set_link(1, False)
    assert a.arp.lookup(1, ip_aton("10.0.0.2")) is None    # neigh_ifdown
    with pytest.raises(OSError) as exc:
        sk.sendto(b"x", ip_aton("10.0.0.2"), 9)
    assert exc.value.errno == errno.ENETUNREACH
    with pytest.raises(OSError) as exc:
        a.route_lookup(ip_aton("10.0.0.2"))
    assert exc.value.errno == errno.ENETUNREACH
    a.set_link(1, True)
    rx = b.udp.socket()
    rx.bind(0, 9)
    sk.sendto(b"again", ip_aton("10.0.0.2"), 9)
    net.run_for(1)
    assert rx.recvfrom() == (b"again", (ip_aton("10.0.0.1"), sk.lport))


def test_a_less_specific_route_through_another_interface_takes_over() -> None:
    net = VirtualNetwork(seed=6)
    a, b, c = net.host("a"), net.host("b"), net.host("c")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    net.link(a, c, "10.9.0.1/24", "10.9.0.2/24")
    a.add_route(0, 0, ip_aton("10.9.0.2"))          # default through c
    far = ip_aton("10.0.0.77")
    assert a.route_lookup(far).ifindex == 1
    a.set_link(1, False)
    assert a.route_lookup(far).ifindex == 2          # the connected /24 is dead
    a.set_link(1, True)
    assert a.route_lookup(far).ifindex == 1
