"""ENOBUFS from a full transmit queue, as the Linux kernel reports it (issue 18;
core/qdisc.py, docs/internals.md "Interface state").

The same eight 1000-byte UDP datagrams (or raw IP datagrams of protocol
253), sent back to back into a queue that takes three and drops the rest,
once with IP_RECVERR and once without; what each ``sendto`` gives (the
length or the errno) and the MIB deltas (Udp OutDatagrams and SndbufErrors,
Ip OutRequests and OutDiscards) are read from the kernel and from tcpio and
must be equal.

Kernel: a veth between two private namespaces, the sender's end under a
token bucket filter whose burst passes one datagram and whose byte limit
holds two more (``tc qdisc add dev v0 root tbf rate 8kbit burst 1600
limit 3000``; deleted and added again before each round so both start
empty).  tcpio: a
VirtualNetwork host whose driver (the test) takes one frame and then stops
its queue (netif_stop_queue), with ``txqueuelen`` 2.  The point is not the
three: it is that a dropped datagram is ENOBUFS only with IP_RECVERR,
silently gone without, counted in SndbufErrors and OutDiscards and never in
OutDatagrams (udp_send_skb, ip_send_skb; raw_sendmsg likewise, OutDiscards
only).
"""

from __future__ import annotations

import errno
import json
import socket
import sys
from functools import partial

import pytest
from netns import NetNs

from tcpio.core.addr import ip_aton
from tcpio.core.sim import VirtualNetwork
from tcpio.core.udp import IP_RECVERR

COUNTERS = {"udp": ("UdpOutDatagrams", "UdpSndbufErrors", "OutRequests", "OutDiscards"),
            "raw": ("OutRequests", "OutDiscards")}
SENDS = 8
PROTO = 253             # RFC 3692's experimental protocol, for the raw socket

KERNEL = r"""
import errno, json, socket, subprocess, sys, time
KIND, COUNTERS, SENDS, PEER, PROTO = json.loads(sys.argv[1])
def snmp():
    lines = open("/proc/net/snmp").read().splitlines()
    d = {}
    for head, vals in zip(lines[::2], lines[1::2]):
        proto, *keys = head.split()
        for k, v in zip(keys, vals.split()[1:]):
            d[(proto[:-1] if proto != "Ip:" else "") + k] = int(v)
    return d
s = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if KIND == "udp" else
     socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO))
s.sendto(b"arp", (PEER, 9))
time.sleep(0.5)
out = {}
for recverr in (1, 0):
    # a new qdisc each round: empty, its bucket full ("replace" keeps the old backlog)
    subprocess.run(["tc", "qdisc", "del", "dev", "v0", "root"], capture_output=True)
    subprocess.run(["tc", "qdisc", "add", "dev", "v0", "root", "tbf", "rate", "8kbit",
                    "burst", "1600", "limit", "3000"], check=True)
    s.setsockopt(socket.IPPROTO_IP, 11, recverr)
    before = snmp()
    res = []
    for _ in range(SENDS):
        try:
            res.append(s.sendto(b"x" * 1000, (PEER, 9)))
        except OSError as e:
            res.append(errno.errorcode[e.errno])
    after = snmp()
    out[recverr] = {"sends": res, "mib": {k: after[k] - before[k] for k in COUNTERS}}
print(json.dumps(out))
"""


def _kernel(kind: str) -> dict:
    with NetNs() as x, NetNs() as y:
        x.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
        x.ip("link", "set", "v1", "netns", y.name)
        x.ip("addr", "add", "10.9.0.1/24", "dev", "v0")
        y.ip("addr", "add", "10.9.0.2/24", "dev", "v1")
        x.ip("link", "set", "v0", "up")
        y.ip("link", "set", "v1", "up")
        # a receiver, so that no port (protocol) unreachable comes back
        if kind == "udp":
            rx = y.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind(("10.9.0.2", 9))
        else:
            rx = y.socket(socket.AF_INET, socket.SOCK_RAW, PROTO)
        try:
            res = x.run(sys.executable, "-c", KERNEL,
                        json.dumps([kind, COUNTERS[kind], SENDS, "10.9.0.2", PROTO]), timeout=60)
        finally:
            rx.close()
        assert res.returncode == 0, res.stderr
        return {int(k): v for k, v in json.loads(res.stdout).items()}


def _tcpio(kind: str) -> dict:
    out = {}
    for recverr in (1, 0):
        net = VirtualNetwork(seed=5)
        a, b = net.host("a"), net.host("b")
        net.link(a, b, "10.9.0.1/24", "10.9.0.2/24", kind="ip")
        rx = b.udp.socket()
        rx.bind(0, 9)
        netif = a.attach_netif(1)
        a.set_txqueuelen("eth0", 2)
        if kind == "udp":
            sk = a.udp.socket()
            sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, recverr)
            send = partial(sk.sendto, b"x" * 1000, ip_aton("10.9.0.2"), 9)
        else:
            raw = a.raw.socket(PROTO)
            raw.recverr = bool(recverr)
            send = partial(raw.sendto, b"x" * 1000, ip_aton("10.9.0.2"))
        before = a.mib.snapshot()
        res: list[int | str] = []
        for i in range(SENDS):
            try:
                res.append(send())
            except OSError as e:
                res.append(errno.errorcode[e.errno])
            if i == 0:
                netif.stop()            # the driver took one frame and is full
        after = a.mib.snapshot()
        out[recverr] = {"sends": res,
                        "mib": {k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS[kind]}}
    return out


@pytest.mark.parametrize("kind", ["udp", "raw"])
def test_a_full_queue_gives_enobufs_and_counts_as_the_kernel(tap_required: None,
                                                            kind: str) -> None:
    kernel = _kernel(kind)
    assert kernel[1]["sends"].count("ENOBUFS") > 0          # the set-up did fill the queue
    ours = _tcpio(kind)
    for recverr in (1, 0):
        assert ours[recverr] == kernel[recverr], (recverr, ours[recverr], kernel[recverr])
