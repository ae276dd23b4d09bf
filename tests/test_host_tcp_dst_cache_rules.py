"""A TCP connection keeps its route on the socket (the kernel's sk_dst_cache,
checked against rt_genid by dst_check) and the neighbour's hardware header
with it (neigh_hh_output), so sending asks the host nothing while nothing
changed, and every change that matters reaches the very next frame.

The rules are the kernel's: a routing change (a route added or removed, an
address added or removed, an MTU, a learned path MTU and its expiry, a
link) obsoletes every cached dst (rt_genid_bump), and a neighbour that
changes its MAC (neigh_update_hhs), goes stale or fails (neigh_suspect, the
next packet through neigh_resolve_output: ARP) never lends its old header
to another frame.  Each case warms a connection up (its dst cached), makes
one change, and looks at what the sender puts on the wire next: the
Ethernet destination, the datagram sizes, the ARP frames.  The counting
case says what "cached" means here: no host lookup per segment.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.in_h import AF_INET6
from tcpio.core.settings import Settings
from tcpio.core.sim import Link, VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

A, B = "10.0.0.1", "10.0.0.2"
A_MAC = bytes.fromhex("020000000101")          # VirtualNetwork's MACs for link 1
B_MAC = bytes.fromhex("020000000102")
GW, GW_MAC = "10.0.0.9", bytes.fromhex("020000000009")
NEW_MAC = bytes.fromhex("02000000abcd")
A6, B6 = "fd00::1", "fd00::2"


class Conn:
    """A connection a -> b over one link, established, its route cached
    (a warm-up transfer went through)."""

    def __init__(self, seed: int = 11, v6: bool = False) -> None:
        self.net = net = VirtualNetwork(seed=seed)
        # (IPv4 only unless ``v6``: no address events of IPv6's own in the
        # background; with it, addresses without DAD)
        settings = {"dad_transmits": 0} if v6 else {"disable_ipv6": 1}
        self.a = net.host("a", settings=Settings(**settings))
        self.b = net.host("b", settings=Settings(**settings))
        self.link: Link = net.link(self.a, self.b, f"{A}/24", f"{B}/24")
        family = 0
        if v6:
            self.a.add_address6(1, ip6_aton(A6), 64, nodad=True)
            self.b.add_address6(1, ip6_aton(B6), 64, nodad=True)
            family = AF_INET6
        listener = self.b.tcp.socket(family) if v6 else self.b.tcp.socket()
        listener.bind(0, 80)
        listener.listen(4)
        self.c = self.a.tcp.socket(family) if v6 else self.a.tcp.socket()
        with pytest.raises(BlockingIOError):
            self.c.connect(ip6_aton(B6) if v6 else ip_aton(B), 80)
        net.run_until(lambda: self.c.state == TCP_ESTABLISHED)
        net.run_for(0.1)
        self.child = listener.accept()
        self.got = bytearray()
        self.transfer(64 * 1024)

    def send(self, n: int, run: float = 0.05) -> None:
        """Queue ``n`` bytes on the client and let the network run a while."""
        data = bytes(range(256)) * (n // 256)
        sent = 0
        while sent < len(data):
            sent += self.c.sendmsg(data[sent:sent + 65536])
            self.net.run_for(run)
            self.got += self.child.recvmsg(1 << 20)

    def transfer(self, n: int) -> None:
        """Send ``n`` bytes and run until the server has read all it was sent."""
        self.send(n)
        deadline = self.net.now + 120
        while len(self.got) < self.c.write_seq - self.c.iss - 1:
            self.net.run_for(0.05)
            self.got += self.child.recvmsg(1 << 20)
            assert self.net.now < deadline, "transfer stalled"

    def mark(self) -> int:
        return len(self.link.frames_from(self.a))

    def frames(self, since: int) -> list[Ether]:
        """What a sent since ``since`` (mark()), dissected."""
        return [Ether(f) for f in self.link.frames_from(self.a)[since:]]

    def tcp_frames(self, since: int) -> list[Ether]:
        return [f for f in self.frames(since) if f.haslayer(TCP) and len(f[TCP].payload)]


def count_calls(monkeypatch: pytest.MonkeyPatch, obj: Any, names: tuple[str, ...]
                ) -> collections.Counter[str]:
    """Count calls of ``obj``'s methods ``names`` (on the instance)."""
    counts: collections.Counter[str] = collections.Counter()
    for name in names:
        real = getattr(obj, name)

        def counted(*args: Any, _real: Callable[..., Any] = real, _name: str = name,
                    **kwargs: Any) -> Any:
            counts[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(obj, name, counted)
    return counts


HOST_LOOKUPS = ("route_lookup", "ip_tcp_path", "ip_tcp_dst", "gso_caps",
                "netif_xmit_stopped")


def test_segments_of_an_established_connection_ask_the_host_nothing(monkeypatch):
    conn = Conn()
    a = conn.a
    counts = count_calls(monkeypatch, a, HOST_LOOKUPS)
    counts.update(count_calls(monkeypatch, a.arp, ("hh_lookup", "lookup", "output")))
    segs, retrans = a.mib["OutSegs"], a.mib["RetransSegs"]
    conn.transfer(512 * 1024)
    assert a.mib["OutSegs"] - segs > 300           # data segments (and an ACK or two)
    # the send loop's bursts and the ACKs: the socket's dst alone; a
    # retransmission (here the tail loss probes) goes segment by segment
    # through ip_queue_xmit_tcp, whose ip_tcp_path reads the destination's
    # dst: no route or neighbour lookup either
    assert counts["ip_tcp_path"] <= a.mib["RetransSegs"] - retrans
    del counts["ip_tcp_path"]
    assert counts == {}


@pytest.mark.parametrize("change", [
    "add_route", "remove_route", "add_address", "remove_address", "set_mtu",
    "update_pmtu", "add_static_arp"])
def test_every_routing_change_sends_the_next_segment_to_the_host_again(monkeypatch, change):
    conn = Conn()
    a = conn.a
    a.add_address(1, ip_aton("10.0.0.77"), 24)      # (one for remove_address)
    conn.transfer(8 * 1024)
    counts = count_calls(monkeypatch, a, ("ip_tcp_dst",))
    conn.transfer(8 * 1024)
    assert counts["ip_tcp_dst"] == 0                # cached: nothing changed
    if change == "add_route":
        a.add_route(ip_aton("192.168.0.0"), 16, ip_aton(B))
    elif change == "remove_route":
        a.add_route(ip_aton("192.168.0.0"), 16, ip_aton(B))
        conn.transfer(8 * 1024)
        counts.clear()
        a.remove_route(ip_aton("192.168.0.0"), 16)
    elif change == "add_address":
        a.add_address(1, ip_aton("10.0.0.78"), 24)
    elif change == "remove_address":
        a.remove_address(1, ip_aton("10.0.0.77"))
    elif change == "set_mtu":
        a.set_mtu(1, 1400)
    elif change == "update_pmtu":
        a.update_pmtu(ip_aton(B), 1300)
    else:
        a.add_static_arp(ip_aton("10.0.0.50"), NEW_MAC)
    conn.transfer(8 * 1024)
    assert counts["ip_tcp_dst"] >= 1                # dst_check failed: looked up again
    counts.clear()
    conn.transfer(8 * 1024)
    assert counts["ip_tcp_dst"] == 0                # and cached again


def test_a_route_added_after_use_takes_the_next_frame_and_its_removal_gives_it_back():
    conn = Conn()
    a = conn.a
    a.add_static_arp(ip_aton(GW), GW_MAC)
    a.add_route(ip_aton(B), 32, ip_aton(GW))
    mark = conn.mark()
    conn.send(4096, run=0.01)
    sent = conn.tcp_frames(mark)
    assert sent and {f.dst for f in sent} == {"02:00:00:00:00:09"}   # all to the gateway
    a.remove_route(ip_aton(B), 32)
    mark = conn.mark()
    conn.transfer(0)        # what went to the gateway is lost: retransmitted to b
    conn.transfer(16 * 1024)
    assert {f.dst for f in conn.tcp_frames(mark)} == {"02:00:00:00:01:02"}


def test_mtu_and_learned_path_mtu_changes_and_its_expiry_size_the_next_datagrams():
    conn = Conn()
    a = conn.a
    # (a permanent neighbour: no other change comes with the time it takes
    # the learned MTU to expire)
    a.add_static_arp(ip_aton(B), B_MAC)

    def largest(mark: int) -> int:
        return max(f[IP].len for f in conn.tcp_frames(mark))

    mark = conn.mark()
    conn.transfer(64 * 1024)
    assert largest(mark) == 1500
    a.set_mtu(1, 1200)
    mark = conn.mark()
    conn.transfer(64 * 1024)
    assert largest(mark) == 1200
    a.update_pmtu(ip_aton(B), 1000)
    mark = conn.mark()
    conn.transfer(64 * 1024)
    assert largest(mark) == 1000
    # the learned MTU expires (ip_rt_mtu_expires): the route's MTU is the
    # interface's again, and so is the socket's MSS on its next segment
    conn.net.run_for(a.settings.ip_rt_mtu_expires + 1)
    mark = conn.mark()
    conn.transfer(64 * 1024)
    assert largest(mark) == 1200


def _arp_reply(mac: bytes, now: float) -> tuple[bytes, float]:
    frame = bytes(Ether(dst=A_MAC, src=mac) / ARP(op=2, hwsrc=mac, psrc=B, hwdst=A_MAC,
                                                  pdst=A))
    return frame, now


def assert_next_tcp_frames_go_to(conn: Conn, mac: str) -> None:
    """The next data the connection sends leaves in frames to ``mac`` only."""
    mark = conn.mark()
    conn.send(4096, run=0.01)
    sent = conn.tcp_frames(mark)
    assert sent and {f.dst for f in sent} == {mac}


def test_a_neighbour_that_changes_its_mac_gets_the_next_frame_at_the_new_one():
    conn = Conn()
    a = conn.a
    frame, now = _arp_reply(NEW_MAC, conn.net.now)
    a.receive(1, frame, now)                        # b's address moved to another card
    assert a.arp.lookup(1, ip_aton(B)).mac == NEW_MAC
    assert_next_tcp_frames_go_to(conn, "02:00:00:00:ab:cd")


def test_a_stale_neighbour_is_probed_and_a_failed_one_resolved_before_any_frame_leaves():
    conn = Conn()
    a, b, net = conn.a, conn.b, conn.net
    # b stops answering ARP; its entry goes STALE with time
    conn.link.drop = lambda host, f: host is b and Ether(f).haslayer(ARP)
    net.run_for(2 * a.settings.arp_base_reachable_time)
    mark = conn.mark()
    conn.send(4096, run=0.01)
    first = conn.frames(mark)
    # neigh_resolve_output: the frame goes with the known MAC, and a unicast probe
    assert any(f.haslayer(ARP) and f[ARP].op == 1 and f.dst == "02:00:00:00:01:02"
               for f in first)
    # no answer: the entry fails and goes; from then on every frame waits for
    # ARP (broadcast requests) and none takes the old header
    net.run_for(a.settings.arp_ucast_solicit * a.settings.arp_retrans_time + 0.5)
    n = a.arp.lookup(1, ip_aton(B))
    assert n is None or n.mac is None
    mark = conn.mark()
    conn.send(4096, run=0.01)
    net.run_for(2.0)
    later = conn.frames(mark)
    assert any(f.haslayer(ARP) and f[ARP].op == 1 and f.dst == "ff:ff:ff:ff:ff:ff"
               for f in later)
    assert not [f for f in later if f.haslayer(TCP)]
    conn.link.drop = None                           # b answers again: the transfer ends
    conn.transfer(0)
    assert len(conn.got) == 64 * 1024 + 2 * 4096


def test_an_ipv6_connection_asks_the_host_nothing_and_follows_a_learned_path_mtu(monkeypatch):
    conn = Conn(v6=True)
    a = conn.a
    counts = count_calls(monkeypatch, a, ("route6_lookup", "ip6_tcp_path", "ip6_tcp_dst",
                                          "gso_caps", "netif_xmit_stopped"))
    counts.update(count_calls(monkeypatch, a.ndisc, ("hh_lookup", "lookup", "output")))
    segs, retrans = a.mib["OutSegs"], a.mib["RetransSegs"]
    conn.transfer(512 * 1024)
    assert a.mib["OutSegs"] - segs > 300
    assert counts["ip6_tcp_path"] <= a.mib["RetransSegs"] - retrans
    del counts["ip6_tcp_path"]
    assert counts == {}
    monkeypatch.undo()
    # a Packet Too Big's MTU (update_pmtu6) sizes the very next datagrams
    a.update_pmtu6(ip6_aton(B6), 1280)
    mark = conn.mark()
    conn.transfer(64 * 1024)
    sizes = {len(f) - 14 for f in conn.link.frames_from(a)[mark:] if len(f) > 1000}
    assert max(sizes) == 1280


def test_an_ipv6_neighbour_advertising_a_new_mac_gets_the_next_frame_there():
    from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
    conn = Conn(v6=True)
    a = conn.a
    na = (Ether(dst=A_MAC, src=NEW_MAC) / IPv6(src=B6, dst=A6, hlim=255)
          / ICMPv6ND_NA(tgt=B6, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=NEW_MAC))
    a.receive(1, bytes(na), conn.net.now)           # RFC 4861 7.2.5: override
    assert a.ndisc.lookup(1, ip6_aton(B6)).mac == NEW_MAC
    assert_next_tcp_frames_go_to(conn, "02:00:00:00:ab:cd")


def test_a_dst_cached_for_another_peer_is_not_the_connection_s():
    """A socket connected again elsewhere must not keep its old peer's dst
    (Linux resets sk_dst_cache on connect and disconnect): the check
    compares the destination too."""
    conn = Conn()
    a = conn.a
    a.add_static_arp(ip_aton("10.0.0.5"), NEW_MAC)
    elsewhere = a.ip_tcp_dst(ip_aton("10.0.0.5"))
    assert elsewhere is not None and elsewhere.path[1] == NEW_MAC
    conn.c.dst_cache = elsewhere
    mark = conn.mark()
    conn.transfer(16 * 1024)
    assert {f.dst for f in conn.tcp_frames(mark)} == {"02:00:00:00:01:02"}
