"""Traceroute-like probes from the kernel across tcpio's router, beside the
same probes across a Linux router (issue 18: router mode, and the ICMP
error rate limits of docs/internals.md "Transparent forwarding").

K1 sends UDP probes with IP_TTL 1 (and then 2) to K2, as traceroute does,
and reads the answers from its error queue (IP_RECVERR, MSG_ERRQUEUE:
struct sock_extended_err and the offender's address).  Across tcpio
(Settings(ip_forward=True), between two TAPs; tests/tap/test_ip_forward_kernel.py's
set-up) and across a Linux router (a namespace with net.ipv4.ip_forward=1
between two veth pairs), the kernel in K1 must see the same thing:

- TTL 1: ICMP time exceeded from the router's address on K1's link (the
  first hop), and for ten probes sent back to back only as many as the
  router's per-destination bucket lets through (icmpv4_xrlim_allow: six,
  XRLIM_BURST_FACTOR timeouts of net.ipv4.icmp_ratelimit);
- TTL 2: K2's port unreachable from K2 (the second hop is the destination).
"""

from __future__ import annotations

import asyncio
import json
import sys

from netns import NetNs, veth

from .test_ip_forward_kernel import routed

PROBES = 10
PROBE = r"""
import json, socket, struct, sys, time
dst, ttl, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):          # one socket a probe: an error on one never fails the next send
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, 11, 1)              # IP_RECVERR
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
    socks.append(s)
for i, s in enumerate(socks):
    s.sendto(b"probe", (dst, 33434 + i))
time.sleep(1.0)
seen = []
for s in socks:
    while True:
        try:
            _, anc, _, _ = s.recvmsg(512, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        for level, kind, data in anc:
            if level == socket.IPPROTO_IP and kind == 11:   # IP_RECVERR
                _err, origin, etype, ecode, _pad, _info, _data = struct.unpack_from("=IBBBBII",
                                                                                  data)
                offender = socket.inet_ntoa(data[16 + 4:16 + 8])
                seen.append([origin, etype, ecode, offender])
print(json.dumps(seen))
"""


def probe(ns: NetNs, dst: str, ttl: int, n: int = PROBES) -> list[list]:
    res = ns.run(sys.executable, "-c", PROBE, dst, str(ttl), str(n), timeout=30)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def linux_router() -> tuple[list[list], list[list]]:
    """K1 10.81.0.1 -- R (10.81.0.2 | 10.82.0.2, ip_forward) -- K2 10.82.0.1."""
    with NetNs() as k1, NetNs() as r, NetNs() as k2:
        for ns in (k1, r, k2):
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        r.sysctl("net.ipv4.ip_forward", 1)
        veth(k1, "k1", "10.81.0.1/24", r, "r1", "10.81.0.2/24")
        veth(k2, "k2", "10.82.0.1/24", r, "r2", "10.82.0.2/24")
        k1.ip("route", "add", "10.82.0.0/24", "via", "10.81.0.2")
        k2.ip("route", "add", "10.81.0.0/24", "via", "10.82.0.2")
        k1.run("ping", "-c", "1", "-W", "5", "10.82.0.1", timeout=10)   # neighbours
        return probe(k1, "10.82.0.1", 1), probe(k1, "10.82.0.1", 2)


def tcpio_router() -> tuple[list[list], list[list], dict[str, int]]:
    async def main() -> tuple[list[list], list[list], dict[str, int]]:
        async with routed() as (k1, _, stack):
            await k1.arun("ping", "-c", "1", "-W", "5", "10.82.0.1")
            first = await asyncio.to_thread(probe, k1, "10.82.0.1", 1)
            second = await asyncio.to_thread(probe, k1, "10.82.0.1", 2)
            return first, second, stack.mib()
    return asyncio.run(main())


def test_traceroute_probes_see_the_router_hop_and_its_rate_limit_as_linux(
        tap_required: None) -> None:
    linux1, linux2 = linux_router()
    ours1, ours2, mib = tcpio_router()
    # the first hop: time exceeded from the router's address on K1's link
    assert {tuple(x) for x in linux1} == {(2, 11, 0, "10.81.0.2")}     # SO_EE_ORIGIN_ICMP
    assert ours1 == linux1
    assert len(ours1) == 6 < PROBES                 # the per-destination bucket, as Linux's
    assert mib["IcmpOutTimeExcds"] == 6 and mib["IcmpOutRateLimitHost"] == PROBES - 6
    # the second hop is the destination itself
    assert {tuple(x) for x in ours2} == {(2, 3, 3, "10.82.0.1")} == {tuple(x) for x in linux2}
