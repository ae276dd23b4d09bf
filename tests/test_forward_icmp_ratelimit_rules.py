"""The ICMP errors a transparent forwarder sends pass the host's rate limits
(issue 18; docs/internals.md "Transparent forwarding").

A relay that learns "unreachable" for many flows at once must not answer
each of them with an ICMP error any more than a Linux router would: its
errors go through icmp_global_allow (the host-wide budget,
``icmp_msgs_per_sec``/``icmp_msgs_burst``) and the per-destination bucket
(inet_peer_xrlim_allow via icmpv4_xrlim_allow / icmpv6_xrlim_allow).  The
reference is Linux's algorithm: a bucket of jiffies that refills with time
up to a burst, an error costing one timeout; for ICMPv6 the timeout is
``icmpv6_ratelimit`` shifted right by (128 - the route's prefix length) >> 5
in integer jiffies.  Virtual clock; what reaches the wire is read with scapy.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDPerror
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6
from test_forward6_rules import Net6
from test_forward_rules import FAR, Net

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.in_h import IPPROTO_UDP
from tcpio.core.settings import Settings
from tcpio.core.udp_forward import UdpForwarder

# Only the per-destination bucket in play: 1 s per error, bursts of 6
# (Linux's XRLIM_BURST_FACTOR timeouts), no host-wide budget.
PER_DST = Settings(icmp_ratelimit=1.0, icmp_ratemask_burst=6, icmp_msgs_per_sec=0)


class UdpNet(Net):
    """Net with a UDP forwarder on f's link(s); sessions collected in order."""

    def __init__(self, settings: Settings, *, other_link: bool = False) -> None:
        super().__init__(settings, other_link=other_link)
        self.ufwd = UdpForwarder(self.f)  # type: ignore[arg-type]
        self.f.set_tproxy(1, IPPROTO_UDP, self.ufwd)
        if other_link:
            self.f.set_tproxy(2, IPPROTO_UDP, self.ufwd)
        self.sessions: list = []
        self.ufwd.wakeup = lambda: self.sessions.extend(self.ufwd.take_ready())

    def sessions_to(self, host, count: int, first_port: int = 1000) -> list:
        """``count`` flows from ``host`` to FAR, one datagram each: their sessions."""
        before = len(self.sessions)
        for i in range(count):
            sk = host.udp.socket()
            sk.connect(ip_aton(FAR), first_port + i)
            sk.send(b"q%d" % i)
        self.net.run_for(0.01)
        got = self.sessions[before:]
        assert len(got) == count
        return got


def unreachables(frames: list[bytes]) -> list[IP]:
    return [p for p in map(IP, frames) if ICMP in p and p[ICMP].type == 3]


def test_a_burst_of_unreachables_to_one_client_is_cut_at_the_bucket_and_refills() -> None:
    n = UdpNet(PER_DST)
    sent = [s.unreachable(3) for s in n.sessions_to(n.c, 10)]
    n.net.run_for(0.01)
    assert sent == [True] * 6 + [False] * 4
    errs = unreachables(n.link.frames_from(n.f))
    # the six that left are ordinary port unreachables quoting their flows
    assert [(e.src, e[ICMP].code, e[UDPerror].dport) for e in errs] == \
        [(FAR, 3, 1000 + i) for i in range(6)]
    assert n.f.mib["IcmpOutRateLimitHost"] == 4 and n.f.mib["IcmpOutDestUnreachs"] == 6
    # one timeout later: exactly one more (the bucket holds one error's worth)
    n.net.run_for(0.99)
    later = n.sessions_to(n.c, 2, first_port=2000)
    assert [s.unreachable(3) for s in later] == [True, False]
    assert n.f.mib["IcmpOutRateLimitHost"] == 5
    # a long quiet period refills the whole burst, never more
    n.net.run_for(60)
    assert [s.unreachable(3) for s in n.sessions_to(n.c, 8, first_port=3000)] == \
        [True] * 6 + [False] * 2


def test_refills_that_add_up_to_a_timeout_allow_one_error() -> None:
    """0.4 s + 0.6 s of refill is one whole timeout (1000 jiffies), as in the
    kernel's integer arithmetic; float seconds leave it a hair short."""
    n = UdpNet(PER_DST)
    first = n.sessions_to(n.c, 7)
    assert [s.unreachable(3) for s in first] == [True] * 6 + [False]
    n.net.run_for(0.39)                 # 0.4 s after the burst (sessions_to ran 0.01)
    (a,) = n.sessions_to(n.c, 1, first_port=2000)
    assert not a.unreachable(3)         # 400 of 1000 jiffies
    n.net.run_for(0.59)
    (b,) = n.sessions_to(n.c, 1, first_port=2001)
    assert b.unreachable(3)             # 400 + 600


def test_the_bucket_is_per_client_and_the_budget_host_wide() -> None:
    """A second client behind the forwarder has its own bucket (per
    destination); the host-wide icmp_global_allow budget caps both."""
    n = UdpNet(PER_DST, other_link=True)
    assert [s.unreachable(3) for s in n.sessions_to(n.c, 7)] == [True] * 6 + [False]
    assert [s.unreachable(3) for s in n.sessions_to(n.o, 7)] == [True] * 6 + [False]
    n.net.run_for(0.01)
    assert len(unreachables(n.link2.frames_from(n.f))) == 6
    assert n.f.mib["IcmpOutRateLimitHost"] == 2

    g = UdpNet(Settings(icmp_ratelimit=1.0, icmp_ratemask_burst=6, icmp_msgs_per_sec=1,
                        icmp_msgs_burst=4), other_link=True)
    assert [s.unreachable(3) for s in g.sessions_to(g.c, 3)] == [True] * 3
    assert [s.unreachable(3) for s in g.sessions_to(g.o, 3)] == [True, False, False]
    assert g.f.mib["IcmpOutRateLimitGlobal"] == 2 and g.f.mib["IcmpOutRateLimitHost"] == 0


def test_a_refused_tcp_request_is_limited_like_any_error() -> None:
    """TcpForwarder's unreachable(): past the bucket the SYN is answered by
    nothing (the client's connect waits for its SYN retries), as behind a
    rate-limited router."""
    n = Net(PER_DST)
    socks = [n.connect(FAR, 80 + i) for i in range(8)]
    n.net.run_for(0.1)
    for r in n.requests():
        r.unreachable(1)
    n.net.run_for(0.1)
    assert len(unreachables(n.link.frames_from(n.f))) == 6
    assert n.f.mib["TcpFwdUnreachable"] == 8 and n.f.mib["IcmpOutRateLimitHost"] == 2
    assert sum(sk.state == 7 for sk in socks) == 6          # TCP_CLOSE: connect failed


@pytest.mark.parametrize(("prefixlen", "tmo"), [(0, 62), (64, 250), (96, 500), (128, 1000)])
def test_icmpv6_timeout_is_shifted_by_the_prefix_in_whole_jiffies(prefixlen: int,
                                                                 tmo: int) -> None:
    """icmpv6_xrlim_allow: tmo = icmpv6_ratelimit >> ((128 - plen) >> 5) in
    integer jiffies (1000 >> 4 is 62, not 62.5); six timeouts' burst, one
    error a timeout after."""
    n = Net6(Settings(icmpv6_ratelimit=1.0, icmp_msgs_per_sec=0))
    client = ip6_aton("fd00::1")
    if prefixlen:
        n.f.add_route6(client if prefixlen == 128 else client & ~((1 << (128 - prefixlen)) - 1),
                       prefixlen, None, 1)
    socks = []
    for i in range(7):
        sk = n.udp(port=1000 + i)
        sk.send(b"x")
        socks.append(sk)
    n.net.run_for(0.001)
    assert [s.unreachable(3) for s in n.sessions] == [True] * 6 + [False]
    n.net.run_for((tmo - 1) / 1000)
    tail = len(n.sessions)
    for port in (2000, 2001):
        n.udp(port=port).send(b"y")
    n.net.run_for(0.001)                # now exactly tmo jiffies after the burst
    a, b = n.sessions[tail:]
    assert a.unreachable(3) and not b.unreachable(3)
    n.net.run_for(0.001)
    errs = [p for p in map(IPv6, n.link.frames_from(n.f)) if ICMPv6DestUnreach in p]
    assert len(errs) == 7 and n.f.mib["Icmp6OutRateLimitHost"] == 2
