"""The TAP/TUN tx queue (issue 11): tcpio sizes the kernel's queue toward it,
and reads the kernel's own counters for the interface.

The independent witness is iproute2: ``ip -j -s link show`` reads the queue
length and the drop counters over netlink, not through our ioctl or
/proc/net/dev.  With a queue of 8 frames and nobody reading, a burst of 60
frames must overflow it (the tun driver drops what its ring cannot hold and
counts it as the interface's tx_dropped); with the default queue the same
burst fits.
"""

from __future__ import annotations

import os
import time

import pytest
from netns import NetNs
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tcpio.devices.tap import DEFAULT_TXQUEUELEN, TapDevice, TunDevice, read_proc_net_dev

pytestmark = pytest.mark.tap

BURST = 60


@pytest.fixture
def ns(tap_required):
    with NetNs() as ns:
        yield ns


def _link(ns: NetNs, name: str) -> dict:
    (info,) = ns.ip_json("-s", "link", "show", "dev", name)
    return info


def _unread_burst(ns: NetNs, tap: TapDevice, count: int) -> None:
    """Bring the link up with a permanent neighbour for 10.7.0.2 and have the
    kernel send ``count`` UDP datagrams to it while nobody reads the TAP."""
    ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
    ns.ip("link", "set", tap.name, "up")
    assert tap.mac is not None
    ns.ip("neigh", "add", "10.7.0.2", "lladdr", tap.mac.hex(":"), "dev", tap.name,
          "nud", "permanent")
    with ns.socket() as sock:
        for i in range(count):
            sock.sendto(b"%04d" % i, ("10.7.0.2", 9))
    time.sleep(0.05)        # the qdisc hands the frames to the driver


def test_a_new_tap_gets_the_large_default_queue(ns):
    tap = ns.tap()
    try:
        info = _link(ns, tap.name)
        ours = ns.call(lambda: tap.txqueuelen)
    finally:
        tap.stop()
    assert DEFAULT_TXQUEUELEN > 1000            # larger than the kernel's own default
    assert info["txqlen"] == DEFAULT_TXQUEUELEN == ours


def test_the_queue_length_is_configurable_and_none_keeps_the_kernels(ns):
    tap = ns.tap(txqueuelen=5000)
    kept = ns.tap(txqueuelen=None)
    tun = ns.call(TunDevice, "tcpiotunq", txqueuelen=3000)
    try:
        assert _link(ns, tap.name)["txqlen"] == 5000
        assert _link(ns, kept.name)["txqlen"] == 1000   # the kernel's default for a TAP
        assert _link(ns, tun.name)["txqlen"] == 3000
    finally:
        tap.stop()
        kept.stop()
        tun.stop()


@pytest.mark.parametrize("bad", [0, -1, 2**31])
def test_a_queue_length_outside_the_kernels_range_is_refused(tap_required, bad):
    with pytest.raises(ValueError, match="txqueuelen"):
        TapDevice("tcpiobadq", txqueuelen=bad)


def test_a_short_queue_overflows_and_the_kernel_counts_the_drops(ns):
    tap = ns.tap(txqueuelen=8)
    try:
        _unread_burst(ns, tap, BURST)
        stats = _link(ns, tap.name)["stats64"]
        ours = ns.call(tap.kernel_counters)
    finally:
        tap.stop()
    dropped = stats["tx"]["dropped"]
    assert dropped >= BURST - 8                  # at most 8 waited in the ring
    assert ours is not None
    assert ours["tx_dropped"] == dropped and ours["tx_packets"] == stats["tx"]["packets"]


def _drain(tap: TapDevice) -> list[bytes]:
    frames = []
    while True:
        try:
            frames.append(os.read(tap.fileno(), 65536))
        except BlockingIOError:
            return frames


def test_the_default_queue_holds_the_same_burst(ns):
    """(The tun driver counts tx_packets when we read a frame, not when it
    queues it: the frames are read back here, all of them.)"""
    tap = ns.tap(offloads=False)     # raw frames read from the fd: no virtio header
    try:
        _unread_burst(ns, tap, BURST)
        dropped = _link(ns, tap.name)["stats64"]["tx"]["dropped"]
        frames = _drain(tap)
    finally:
        tap.stop()
    assert dropped == 0
    udp = [Ether(f) for f in frames]
    udp = [bytes(p[UDP].payload) for p in udp if UDP in p and p[IP].dst == "10.7.0.2"]
    assert udp == [b"%04d" % i for i in range(BURST)]


def test_kernel_counters_is_none_outside_the_interfaces_namespace(ns):
    tap = ns.tap()
    try:
        assert tap.kernel_counters() is None     # we are not in ns
        assert ns.call(tap.kernel_counters) is not None
    finally:
        tap.stop()


def test_proc_net_dev_lines_are_read_by_field_name(tmp_path):
    """The format of /proc/net/dev (net/core/net-procfs.c dev_seq_printf_stats):
    two header lines, then ``name: rx bytes packets errs drop fifo frame
    compressed multicast tx bytes packets errs drop fifo colls carrier compressed``."""
    path = tmp_path / "dev"
    path.write_text(
        "Inter-|   Receive                                                |  Transmit\n"
        " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets"
        " errs drop fifo colls carrier compressed\n"
        "    lo:     100       2    0    0    0     0          0         0      100       2"
        "    0    0    0     0       0          0\n"
        "tap7: 5000 40 1 2 0 0 0 3 9000 60 0 52 0 0 0 0\n")
    got = read_proc_net_dev("tap7", str(path))
    assert got is not None
    assert (got["rx_bytes"], got["rx_packets"], got["rx_errors"], got["rx_dropped"]) == \
        (5000, 40, 1, 2)
    assert got["rx_multicast"] == 3
    assert (got["tx_bytes"], got["tx_packets"], got["tx_dropped"]) == (9000, 60, 52)
    assert read_proc_net_dev("tap", str(path)) is None    # a prefix is not a name
