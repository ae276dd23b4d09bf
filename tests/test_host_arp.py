"""ARP and the neighbour table: replies, resolution, queueing, retries, aging, static."""

from __future__ import annotations

import errno

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings

BCAST = "ff:ff:ff:ff:ff:ff"


def make_host(**settings) -> Host:
    settings.setdefault("disable_ipv6", 1)      # ARP's frames alone (no DAD for fe80::)
    h = Host("h", seed=1, settings=Settings(**settings))
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, ip_aton(MY), 24)
    return h


def out(h: Host) -> list[Ether]:
    return [Ether(f) for _, f in h.take_output()]


def feed(h: Host, pkt, now: float = 0.0) -> list[Ether]:
    h.receive(1, bytes(pkt), now)
    return out(h)


def arp_reply(now_host: Host, now: float = 0.0, ip: str = PEER, mac: bytes = PEER_MAC):
    return feed(now_host, Ether(dst=MAC, src=mac) / ARP(op=2, hwsrc=mac, psrc=ip,
                                                         hwdst=MAC, pdst=MY), now)


def state(h: Host, ip: str = PEER) -> str | None:
    n = h.arp.lookup(1, ip_aton(ip))
    return None if n is None else {1: "INCOMPLETE", 2: "REACHABLE", 4: "STALE",
                                   0x10: "PROBE", 0x80: "PERMANENT"}[n.state]


def test_gratuitous_arp_when_an_address_comes_up():
    h = Host("h", seed=1)
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, ip_aton(MY), 24)
    (g,) = out(h)
    assert g.dst == BCAST and g[ARP].op == 1
    assert g[ARP].psrc == g[ARP].pdst == MY and g[ARP].hwsrc == MAC.hex(":")


def test_reply_to_a_request_for_our_address_and_learn_the_asker():
    h = make_host()
    out(h)
    req = Ether(dst=BCAST, src=PEER_MAC) / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER, pdst=MY)
    (rep,) = feed(h, req)
    assert rep.dst == PEER_MAC.hex(":") and rep.src == MAC.hex(":")
    assert (rep[ARP].op, rep[ARP].hwsrc, rep[ARP].psrc) == (2, MAC.hex(":"), MY)
    assert (rep[ARP].hwdst, rep[ARP].pdst) == (PEER_MAC.hex(":"), PEER)
    assert state(h) == "STALE"
    # Not for us: no answer, nothing learned.
    assert feed(h, Ether(dst=BCAST, src=PEER_MAC) /
                ARP(op=1, hwsrc=PEER_MAC, psrc="10.0.0.9", pdst="10.0.0.3")) == []
    assert state(h, "10.0.0.9") is None


def test_rfc5227_probe_is_answered_but_not_learned():
    h = make_host()
    out(h)
    (rep,) = feed(h, Ether(dst=BCAST, src=PEER_MAC) /
                  ARP(op=1, hwsrc=PEER_MAC, psrc="0.0.0.0", pdst=MY))
    assert rep[ARP].op == 2
    assert h.arp.table == {}


def test_resolution_queues_then_sends_in_order():
    h = make_host()
    out(h)
    for i in range(3):
        h.ip_output(253, None, ip_aton(PEER), bytes([i]) * 30)
    (req,) = out(h)
    assert req.dst == BCAST and req[ARP].op == 1 and req[ARP].pdst == PEER
    assert req[ARP].psrc == MY
    assert state(h) == "INCOMPLETE"
    sent = arp_reply(h)
    assert [p[IP].load[:1] for p in sent] == [b"\x00", b"\x01", b"\x02"]
    assert all(p.dst == PEER_MAC.hex(":") for p in sent)
    assert state(h) == "REACHABLE"
    # Resolved: the next packet goes straight out.
    h.ip_output(253, None, ip_aton(PEER), b"x")
    (p,) = out(h)
    assert IP in p


def test_unresolved_queue_is_bounded():
    h = make_host(arp_unres_qlen=3)
    out(h)
    for i in range(5):
        h.ip_output(253, None, ip_aton(PEER), bytes([i]) * 30)
    out(h)
    sent = arp_reply(h)
    assert [p[IP].load[:1] for p in sent] == [b"\x02", b"\x03", b"\x04"]
    assert h.mib["ArpUnresolvedDiscards"] == 2


def test_queue_overflow_drops_silently_like_neigh_event_send():
    """Linux frees the oldest queued packet without telling its sender (TCP will
    retransmit); only a failed resolution reports EHOSTUNREACH."""
    h = make_host(arp_unres_qlen=2)
    out(h)
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 9)
    for i in range(4):
        sk.sendto(bytes([i]))
    assert h.mib["ArpUnresolvedDiscards"] == 2
    assert not sk.errors


def test_retry_limit_then_ehostunreach_to_the_sender():
    h = make_host(arp_mcast_solicit=3, arp_retrans_time=1.0)
    out(h)
    sk = h.udp.socket()
    # Host unreachable is a soft error: a UDP socket hears it only with
    # IP_RECVERR (Linux 6.18 over a veth whose peer never answers ARP: recv
    # says EHOSTUNREACH with it, EAGAIN without).
    sk.recverr = True
    quiet = h.udp.socket()
    quiet.connect(ip_aton(PEER), 10)
    sk.connect(ip_aton(PEER), 9)
    sk.sendto(b"lost")
    quiet.sendto(b"lost too")
    requests = out(h)
    t = 0.0
    while (d := h.next_deadline()) is not None and d < 100:
        t = d
        h.poll(t)
        requests += out(h)
    assert [r[ARP].op for r in requests] == [1, 1, 1]
    assert t == pytest.approx(3.0)
    assert h.mib["ArpResolveFailed"] == 1
    e = sk.errors.popleft()     # (read, as recv would: a pending error fails the next send)
    assert e.errno == errno.EHOSTUNREACH and not sk.errors
    assert not quiet.errors
    assert state(h) is None
    # The next packet starts a fresh resolution.
    sk.sendto(b"again")
    (r,) = out(h)
    assert r[ARP].op == 1


def test_aging_reachable_stale_probe_and_gc():
    h = make_host(arp_base_reachable_time=30.0, arp_gc_stale_time=60.0)
    out(h)
    h.ip_output(253, None, ip_aton(PEER), b"x")
    out(h)
    arp_reply(h, now=0.0)
    assert state(h) == "REACHABLE"
    h.poll(14.9)
    assert state(h) == "REACHABLE"       # reachable time is 0.5..1.5 x base
    h.poll(45.1)
    assert state(h) == "STALE"
    # Using a STALE entry sends at once and probes the peer by unicast.
    h.now = 50.0
    h.ip_output(253, None, ip_aton(PEER), b"y")
    frames = out(h)
    assert [IP in f for f in frames] == [True, False]
    probe = frames[1]
    assert probe.dst == PEER_MAC.hex(":") and probe[ARP].op == 1
    assert state(h) == "PROBE"
    arp_reply(h, now=50.5)
    assert state(h) == "REACHABLE"
    # Left alone it goes STALE and is collected after gc_stale_time unused.
    h.poll(200.0)
    assert state(h) == "STALE"
    h.poll(300.0)
    assert state(h) is None


def test_unanswered_probe_deletes_the_entry():
    h = make_host()
    out(h)
    h.ip_output(253, None, ip_aton(PEER), b"x")
    arp_reply(h)
    h.poll(46.0)
    assert state(h) == "STALE"
    h.now = 46.0
    h.ip_output(253, None, ip_aton(PEER), b"x")
    probes = [f for f in out(h) if ARP in f]
    for t in (47.0, 48.0, 49.0):
        h.poll(t)
        probes += out(h)
    assert len(probes) == 3 and all(p.dst == PEER_MAC.hex(":") for p in probes)
    assert state(h) is None


def test_static_entries_never_resolve_age_or_change():
    h = make_host()
    out(h)
    h.add_static_arp(ip_aton(PEER), PEER_MAC)
    h.ip_output(253, None, ip_aton(PEER), b"x")
    (p,) = out(h)
    assert p.dst == PEER_MAC.hex(":")
    # Someone claims the address with another MAC: the static entry wins.
    feed(h, Ether(dst=BCAST, src="02:00:00:00:00:66") /
         ARP(op=2, hwsrc="02:00:00:00:00:66", psrc=PEER, pdst=MY))
    h.poll(10_000.0)
    assert state(h) == "PERMANENT"
    assert h.arp.lookup(1, ip_aton(PEER)).mac == PEER_MAC


def test_gateway_is_resolved_for_off_link_destinations():
    h = make_host()
    out(h)
    h.add_route(0, 0, ip_aton(PEER))
    h.ip_output(17, None, ip_aton("8.8.8.8"), bytes(UDP()))
    (req,) = out(h)
    assert req[ARP].pdst == PEER
    (p,) = arp_reply(h)
    assert p[IP].dst == "8.8.8.8" and p.dst == PEER_MAC.hex(":")


def test_gratuitous_arp_updates_a_known_neighbour():
    h = make_host()
    out(h)
    h.ip_output(253, None, ip_aton(PEER), b"x")
    arp_reply(h)
    new_mac = "02:00:00:00:00:77"
    feed(h, Ether(dst=BCAST, src=new_mac) /
         ARP(op=1, hwsrc=new_mac, psrc=PEER, pdst=PEER))
    assert h.arp.lookup(1, ip_aton(PEER)).mac.hex(":") == new_mac


@pytest.mark.parametrize("frame", [
    bytes(Ether(dst=BCAST, src=PEER_MAC, type=0x0806)) + b"\x00\x01\x08",        # truncated
    bytes(Ether(dst=BCAST, src=PEER_MAC) / ARP(hwtype=6, psrc=PEER, pdst=MY)),   # not Ethernet
    bytes(Ether(dst=BCAST, src=PEER_MAC) / ARP(op=3, psrc=PEER, pdst=MY)),       # RARP op
    bytes(Ether(dst=BCAST, src=PEER_MAC) / ARP(hwsrc=BCAST, psrc=PEER, pdst=MY)),  # bcast sha
    bytes(Ether(dst=BCAST, src=PEER_MAC) / ARP(hwsrc=PEER_MAC, psrc="224.0.0.1", pdst=MY)),
])
def test_garbage_arp_counted_never_answered(frame):
    h = make_host()
    out(h)
    h.receive(1, frame, 0.0)
    assert out(h) == []
    assert h.mib["ArpInErrors"] == 1
    assert h.arp.table == {}


# ----- a random walk through the neighbour state machine ---------------------------------

NEIGHBOURS = ["10.0.0.1", "10.0.0.5", "10.0.0.9"]


class NeighbourMachine(RuleBasedStateMachine):
    """Every IP packet handed to ARP is sent, still queued, or reported as discarded."""

    def __init__(self):
        super().__init__()
        self.h = make_host(arp_unres_qlen=4, arp_gc_thresh3=2)
        self.h.take_output()
        self.now = 0.0
        self.handed = 0
        self.sent = 0

    def _collect(self):
        for f in out(self.h):
            if IP in f:
                self.sent += 1

    @rule(who=st.sampled_from(NEIGHBOURS), n=st.integers(1, 6))
    def send(self, who, n):
        self.h.now = self.now
        for _ in range(n):
            self.h.ip_output(253, None, ip_aton(who), b"d")
            self.handed += 1
        self._collect()

    @rule(who=st.sampled_from(NEIGHBOURS), op=st.sampled_from([1, 2]))
    def peer_speaks(self, who, op):
        mac = bytes([2, 0, 0, 0, 0, NEIGHBOURS.index(who) + 10])
        self.h.receive(1, bytes(Ether(dst=BCAST if op == 1 else MAC, src=mac) /
                                ARP(op=op, hwsrc=mac, psrc=who, pdst=MY)), self.now)
        self._collect()

    @rule(dt=st.sampled_from([0.5, 1.0, 3.0, 20.0, 100.0]))
    def time_passes(self, dt):
        self.now += dt
        self.h.poll(self.now)
        self._collect()

    @invariant()
    def packets_are_conserved(self):
        queued = sum(len(n.queue) for n in self.h.arp.table.values())
        discarded = self.h.mib["ArpUnresolvedDiscards"]
        assert self.handed == self.sent + queued + discarded

    @invariant()
    def table_is_sane(self):
        assert len(self.h.arp.table) <= 2            # arp_gc_thresh3
        for n in self.h.arp.table.values():
            assert len(n.queue) <= 4                   # arp_unres_qlen
            if n.state == 1:
                assert n.timer.pending and n.mac is None
            else:
                assert n.mac is not None and not n.queue


NeighbourMachine.TestCase.settings = hsettings(max_examples=60, stateful_step_count=30,
                                               deadline=None)
TestNeighbourMachine = NeighbourMachine.TestCase
