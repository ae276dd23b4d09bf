"""SLAAC against a real router advertisement daemon over a TAP (issue 17).

Debian's dnsmasq in the namespace advertises fd00:77::/64 (``ra-only``: the
A and L flags) on the TAP, with the kernel as the router (its link-local
address the source, fd00:77::1 on the link, fd00:99::1 behind it on lo).
tcpio, with ``accept_ra``, solicits, takes the advertisement, makes
fd00:77::<its EUI-64> with DAD and the default route through the kernel's
link-local address; then the kernel pings that address, and tcpio pings
both the on-link address and the one behind the router.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from netns import kernel_peer

from tcpio.core.addr import ip6_aton, ip6_ntoa
from tcpio.core.ipv6 import eui64_linklocal
from tcpio.core.settings import Settings

from .test_ipv6_kernel import kernel_linklocal, kernel_ping, wait_for

pytestmark = pytest.mark.tap

PREFIX = "fd00:77::"


async def test_tcpio_configures_itself_from_dnsmasqs_advertisements(tap_required, tmp_path):
    assert shutil.which("dnsmasq"), "dnsmasq (Debian package dnsmasq-base) is needed"
    async with kernel_peer(settings=Settings(accept_ra=1)) as peer:
        ns, ifname = peer.ns, peer.ifname
        ns.ip("-6", "addr", "add", f"{PREFIX}1/64", "dev", ifname, "nodad")
        ns.ip("-6", "addr", "add", "fd00:99::1/128", "dev", "lo")
        await wait_for(lambda: kernel_linklocal(peer) is not None)
        dns = subprocess.Popen(ns.exec_argv(
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
            f"--interface={ifname}", "--bind-interfaces", "--enable-ra",
            f"--dhcp-range={PREFIX},ra-only,64,1h", "--user=root", "--group=root",
            f"--pid-file={tmp_path / 'dnsmasq.pid'}"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            host = peer.stack.host
            slaac = ip6_aton(PREFIX) | (eui64_linklocal(peer.tap.mac) & ((1 << 64) - 1))
            await wait_for(lambda: (slaac, 64, "preferred") in host.addresses6(peer.ifindex),
                           timeout=20.0)
            router = ip6_aton(kernel_linklocal(peer) or "")
            default = host.fib6.get(0, 0)
            assert default is not None and default.gateway == router
            mib = peer.stack.mib()
            assert mib["Icmp6InRouterAdvertisements"] >= 1
            assert mib["Icmp6OutRouterSolicits"] >= 1
            # the kernel reaches the address tcpio made itself ...
            await kernel_ping(peer, ip6_ntoa(slaac), 56)
            await kernel_ping(peer, ip6_ntoa(slaac), 1400)
            # ... and tcpio reaches the link and, through the router, beyond it
            for dst in (f"{PREFIX}1", "fd00:99::1"):
                assert await peer.stack.ping(dst, b"slaac", timeout=3) >= 0
        finally:
            dns.terminate()
            _, err = await asyncio.to_thread(dns.communicate)
        assert dns.returncode in (0, -15), err
