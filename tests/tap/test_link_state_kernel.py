"""Interface down/up: tcpio's host does what the Linux kernel does (issue 18).

The same configuration and the same steps on both: an interface with
10.9.0.1/24 and fd09::1/64, a static route and a default route through
10.9.0.2, an IPv6 static route through fd09::2; then ``ip link set down``,
``up``.  After each step the routes through the interface, its addresses,
whether a route can be added through it, and what a UDP send to each of a
set of destinations gives (sent, or the errno) are read from the kernel (a
veth in a private namespace) and from tcpio (a VirtualNetwork host), and
must be equal.  In particular: Linux's sockets get ENETUNREACH, not
ENETDOWN, from a send that needs a down interface (its routes are deleted
before any device is reached); ENETDOWN is what adding a route through it
gives; and after up, a send to a link-local address fails with
EADDRNOTAVAIL while the new link-local address is still tentative (DAD).
"""

from __future__ import annotations

import errno
import json
import sys

from netns import NetNs

from tcpio.core.addr import ip6_aton, ip6_ntoa, ip_aton, ip_ntoa
from tcpio.core.in_h import AF_INET6
from tcpio.core.sim import VirtualNetwork

DESTS = ["10.9.0.2", "10.10.0.5", "192.0.2.1", "10.9.0.1", "fd09::2", "fd10::5", "fe80::2"]

KERNEL = r"""
import errno, json, socket, subprocess, sys
DESTS = json.loads(sys.argv[1])
def ip(*a):
    return subprocess.run(["ip", *a], capture_output=True, text=True)
def state():
    routes = sorted(f"{r['dst']} {r.get('gateway', '-')}"
                    for fam in ("-4", "-6")
                    for r in json.loads(ip("-j", fam, "route", "show", "dev", "v0").stdout or "[]")
                    if not r["dst"].startswith("fe80"))
    addrs = sorted(a["local"] for i in json.loads(ip("-j", "addr", "show", "dev", "v0").stdout)
                   for a in i.get("addr_info", []) if not a["local"].startswith("fe80"))
    sends = {}
    for d in DESTS:
        fam = socket.AF_INET6 if ":" in d else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_DGRAM)
        dst = (d, 9, 0, socket.if_nametoindex("v0")) if d.startswith("fe80") else (d, 9)
        try:
            s.sendto(b"x", dst)
            sends[d] = "sent"
        except OSError as e:
            sends[d] = errno.errorcode[e.errno]
        s.close()
    added = ip("route", "add", "10.11.0.0/24", "dev", "v0")
    if added.returncode == 0:
        ip("route", "del", "10.11.0.0/24", "dev", "v0")
    return {"routes": routes, "addrs": addrs, "sends": sends,
            "route_add": "ok" if added.returncode == 0 else added.stderr.strip()}
ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
ip("link", "set", "v1", "up")
ip("link", "set", "v0", "up")
ip("addr", "add", "10.9.0.1/24", "dev", "v0")
ip("-6", "addr", "add", "fd09::1/64", "dev", "v0", "nodad")
ip("route", "add", "10.10.0.0/24", "via", "10.9.0.2")
ip("route", "add", "default", "via", "10.9.0.2")
ip("-6", "route", "add", "fd10::/64", "via", "fd09::2")
out = {"start": state()}
ip("link", "set", "v0", "down")
out["down"] = state()
ip("link", "set", "v0", "up")
out["up"] = state()
print(json.dumps(out))
"""


def _tcpio() -> dict:
    net = VirtualNetwork(seed=9)
    a = net.host("a")      # DAD on, as the kernel: a new link-local is tentative at first
    b = net.host("b")
    net.link(a, b, "10.9.0.1/24", "10.9.0.2/24")
    a.add_address6(1, ip6_aton("fd09::1"), 64, nodad=True)
    gw = ip_aton("10.9.0.2")
    a.add_route(ip_aton("10.10.0.0"), 24, gw)
    a.add_route(0, 0, gw)
    a.add_route6(ip6_aton("fd10::"), 64, ip6_aton("fd09::2"))

    def state() -> dict:
        iface = a.interfaces[1]
        routes = []
        for fib, ntoa in ((a.fib, ip_ntoa), (a.fib6, ip6_ntoa)):
            for t in fib._by_len.values():
                for e in t.values():
                    if e.ifindex != 1:
                        continue
                    dst = "default" if e.prefixlen == 0 else f"{ntoa(e.prefix)}/{e.prefixlen}"
                    if fib is a.fib and e.prefixlen == 32 or fib is a.fib6 and e.prefixlen == 128:
                        dst = ntoa(e.prefix)
                    routes.append(f"{dst} {ntoa(e.gateway) if e.gateway is not None else '-'}")
        addrs = [ip_ntoa(ip) for ip, _ in iface.addrs]
        addrs += [ip6_ntoa(x.ip) for x in iface.ip6.addrs if x.ip >> 118 != 0xFE80 >> 6]
        sends = {}
        for d in DESTS:
            six = ":" in d
            sk = a.udp.socket(AF_INET6) if six else a.udp.socket()
            try:
                if six:
                    sk.sendto(b"x", ip6_aton(d), 9, 1 if d.startswith("fe80") else 0)
                else:
                    sk.sendto(b"x", ip_aton(d), 9)
                sends[d] = "sent"
            except OSError as e:
                sends[d] = errno.errorcode[e.errno]
            sk.close()
        try:
            a.add_route(ip_aton("10.11.0.0"), 24, None, 1)
            a.remove_route(ip_aton("10.11.0.0"), 24)
            added = "ok"
        except OSError as e:
            added = errno.errorcode[e.errno]
        return {"routes": sorted(routes), "addrs": sorted(addrs), "sends": sends,
                "route_add": added}

    out = {"start": state()}
    a.set_link(1, False)
    out["down"] = state()
    a.set_link(1, True)
    out["up"] = state()
    return out


def test_down_and_up_give_the_kernels_routes_addresses_and_errnos(tap_required: None) -> None:
    with NetNs() as ns:
        res = ns.run(sys.executable, "-c", KERNEL, json.dumps(DESTS), timeout=60)
        assert res.returncode == 0, res.stderr
        kernel = json.loads(res.stdout)
    ours = _tcpio()
    # the kernel's refusal is iproute2's text for -ENETDOWN (fib_check_nh)
    for step in kernel.values():
        if step["route_add"] == "Error: Device for nexthop is not up.":
            step["route_add"] = "ENETDOWN"
    for step in ("start", "down", "up"):
        assert ours[step] == kernel[step], (step, ours[step], kernel[step])
    assert kernel["down"]["sends"]["10.9.0.2"] == "ENETUNREACH"       # not ENETDOWN
    assert kernel["down"]["route_add"] == "ENETDOWN"
