"""IPv6 against the Linux kernel over a TAP (issue 17, the network layer).

The kernel at fd00::1/64 (no DAD on its side) and its own link-local
address, tcpio at fd00::2/64 and its EUI-64 link-local address, both after
tcpio's DAD.  iputils ``ping -6`` from the namespace pings tcpio (56, 1400
and 8000 bytes: the kernel fragments the big request, tcpio reassembles it
and fragments its reply, the kernel reassembles that); the kernel must have
resolved tcpio by ND (``ip -6 neigh``), and tcpio pings the kernel, resolving
it by ND in turn.  Wireshark reads the capture: every ICMPv6 checksum Good,
nothing malformed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import pytest
from netns import KernelPeer, NetNs, kernel_peer

from tcpio.core.addr import ip6_aton, ip6_ntoa
from tcpio.core.ipv6 import eui64_linklocal

from .tshark import PI_WARN, fields, matching, needs_tshark

pytestmark = pytest.mark.tap

KERNEL6, TCPIO6 = "fd00::1", "fd00::2"
SIZES = (56, 1400, 8000)


def ping_received(output: str) -> int:
    m = re.search(r"(\d+) received", output)
    return int(m.group(1)) if m else 0


async def wait_for(cond, timeout: float = 6.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def ipv6_peer(**kw) -> AsyncIterator[KernelPeer]:
    async with kernel_peer(**kw) as peer:
        peer.ns.ip("-6", "addr", "add", f"{KERNEL6}/64", "dev", peer.ifname, "nodad")
        peer.stack.add_address(peer.ifindex, f"{TCPIO6}/64")
        host = peer.stack.host
        # tcpio's DAD (both addresses) and the kernel's for its link-local one.
        await wait_for(lambda: all(state == "preferred"
                                   for _, _, state in host.addresses6(peer.ifindex)))
        await wait_for(lambda: kernel_linklocal(peer) is not None)
        yield peer


def kernel_linklocal(peer: KernelPeer) -> str | None:
    return linklocal(peer.ns, peer.ifname)


def linklocal(ns: NetNs, ifname: str) -> str | None:
    """The kernel's link-local address on ``ifname`` once DAD is done (None
    while tentative: Linux's ndisc_send_ns needs it as the source of its
    Neighbor Solicitations, so none go out on the link until then)."""
    for link in ns.ip_json("-6", "addr", "show", "dev", ifname):
        for a in link.get("addr_info", []):
            if a.get("scope") == "link" and not a.get("tentative"):
                return a["local"]
    return None


def tcpio_linklocal(peer: KernelPeer) -> str:
    return ip6_ntoa(eui64_linklocal(peer.tap.mac))


@pytest.fixture
async def peer6(tap_required) -> AsyncIterator[KernelPeer]:
    async with ipv6_peer() as p:
        yield p


async def kernel_ping(peer: KernelPeer, dst: str, size: int, count: int = 2) -> str:
    res = await peer.ns.arun("ping", "-6", "-c", str(count), "-i", "0.2", "-W", "2",
                             "-s", str(size), dst)
    assert ping_received(res.stdout) == count, res.stdout + res.stderr
    assert f"{size + 8} bytes from" in res.stdout
    return res.stdout


@pytest.mark.parametrize("which", ["global", "link-local"])
async def test_kernel_pings_tcpio_at_56_1400_and_8000_bytes(peer6, which):
    dst = TCPIO6 if which == "global" else f"{tcpio_linklocal(peer6)}%{peer6.ifname}"
    before = peer6.stack.mib()
    for size in SIZES:
        await kernel_ping(peer6, dst, size)
    delta = peer6.stack.host.mib.delta(before)
    assert delta["Icmp6InEchos"] == 6 and delta["Icmp6OutEchoReplies"] == 6
    # 8000 + 8 bytes of ICMPv6 in 1448-byte fragments: 6 each way, reassembled
    # by tcpio (twice) and fragmented by tcpio as the source (twice).
    assert delta["Ip6ReasmOKs"] == 2 and delta["Ip6ReasmReqds"] == 2 * 6
    assert delta["Ip6FragOKs"] == 2 and delta["Ip6FragCreates"] == 2 * 6
    assert "Ip6ReasmFails" not in delta and "Ip6InHdrErrors" not in delta
    assert "Icmp6InCsumErrors" not in delta


async def test_kernel_resolves_tcpio_by_nd(peer6):
    await kernel_ping(peer6, TCPIO6, 56, count=1)
    entries = [e for e in peer6.ns.ip_json("-6", "neigh", "show", "dev", peer6.ifname)
               if e.get("dst") == TCPIO6]
    assert len(entries) == 1
    assert entries[0]["lladdr"] == peer6.tap.mac.hex(":")
    assert set(entries[0]["state"]) & {"REACHABLE", "STALE", "DELAY", "PROBE"}
    mib = peer6.stack.mib()
    assert mib["Icmp6InNeighborSolicits"] >= 1 and mib["Icmp6OutNeighborAdvertisements"] >= 1


async def test_tcpio_resolves_and_pings_the_kernel(peer6):
    kernel_mac = peer6.ns.ip_json("link", "show", peer6.ifname)[0]["address"]
    ll = kernel_linklocal(peer6)
    assert ll is not None
    for dst in (KERNEL6, f"{ll}%{peer6.ifindex}"):
        for size in SIZES:
            data = bytes(range(256)) * (size // 256) + bytes(size % 256)
            rtt = await peer6.stack.ping(dst, data, timeout=3)
            assert rtt >= 0
    table = {ip: (mac, state) for _, ip, mac, state in peer6.stack.host.ndisc.snapshot()}
    for ip in (KERNEL6, ll):
        mac, state = table[ip6_aton(ip)]
        assert mac is not None and mac.hex(":") == kernel_mac
        assert state in ("REACHABLE", "STALE", "DELAY", "PROBE")
    mib = peer6.stack.mib()
    assert mib["Icmp6OutNeighborSolicits"] >= 2 and mib["Icmp6InNeighborAdvertisements"] >= 2
    assert mib["Icmp6InEchoReplies"] == 6 and mib["Ip6FragOKs"] == 2


@needs_tshark
async def test_tshark_reads_the_ipv6_capture_clean(tap_required, tmp_path):
    path = str(tmp_path / "ipv6.pcap")
    async with ipv6_peer(pcap=path) as peer:
        for size in SIZES:
            await kernel_ping(peer, TCPIO6, size)
            await peer.stack.ping(KERNEL6, b"x" * size, timeout=3)
        our_mac = peer.tap.mac.hex(":")
    rows = await asyncio.to_thread(fields, path, "eth.src", "ipv6.src", "icmpv6.type",
                                   "icmpv6.checksum.status", display_filter="ipv6")
    ours = [r for r in rows if r[0] == our_mac]
    statuses = [s for r in rows for s in r[3].split(",") if s]
    assert statuses and set(statuses) == {"1"}, rows
    types = [t for r in ours for t in r[2].split(",") if t]
    assert types.count("129") == 6 and types.count("128") == 3       # replies, our pings
    assert "135" in types and "136" in types                          # NS and NA
    assert await asyncio.to_thread(matching, path, "_ws.malformed") == []
    assert await asyncio.to_thread(
        matching, path, f"ipv6 && _ws.expert.severity >= {PI_WARN}") == []
