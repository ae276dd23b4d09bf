"""TSO6 out (issues 12 and 17): on an interface that takes IPv6 TCP
super-frames (Interface.gso_max_size6, a TAP with TUN_F_TSO6), the compiled
send loop hands over runs of full IPv6 segments as one frame: one IPv6+TCP
header whose payload length is the whole frame's, a GsoFrame with gso_size,
gso_segs and (on a device that takes it) a partial checksum.  The device's
cut of it (virtio_net.gso_segment, the kernel's tcp_gso_segment rules) must
give exactly the frames the same host sends without TSO6, and scapy must
find every one of them whole with its checksum right.  Runs on whichever
build is active (both in CI: TCPIO_NO_EXTENSIONS=1)."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tcpio._fast.gso import GsoFrame
from tcpio.devices import virtio_net as vnet

from .test_fast_path6 import established


def flight(gso6: int, partial: bool, data: bytes, cwnd: int = 60):
    """The frames an established IPv6 connection puts out for ``data``, as
    the device hands them over (super-frames whole), and the host."""
    h, child, _iss, _tsval = established()
    iface = h.interfaces[1]
    iface.gso_max_size6 = gso6
    iface.tx_csum_partial = partial
    child.nodelay = False
    child.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    child.snd_cwnd = cwnd
    before = h.mib.snapshot()
    child.sendmsg(data)
    return [f for _, f in h.take_output()], h, before


def cut(frames) -> list[bytes]:
    out: list[bytes] = []
    for f in frames:
        size = getattr(f, "gso_size", 0)
        if size:
            hdr = vnet.gso_hdr_for(f, size, partial=f.csum_partial)
            out += vnet.gso_segment(f, hdr)
        else:
            out.append(bytes(f))
    return out


@pytest.mark.parametrize("partial", [False, True], ids=["full", "partial"])
@pytest.mark.parametrize("nbytes", [1428 * 10, 1428 * 10 - 7, 150_000])
def test_the_cut_super_frames_are_the_frames_sent_without_tso6(nbytes, partial):
    data = bytes(i * 29 & 0xFF for i in range(nbytes))
    plain, _h0, _ = flight(0, False, data)
    tso, h, before = flight(0xFFFF, partial, data)
    supers = [f for f in tso if type(f) is GsoFrame]
    assert supers and not [f for f in plain if type(f) is GsoFrame]
    assert cut(tso) == [bytes(f) for f in plain]
    assert len(tso) < len(plain)
    got = b""
    for f in supers:
        p = Ether(f)
        assert len(f) - 14 <= 0xFFFF
        assert p[IPv6].plen == len(f) - 54                 # the whole frame's
        hdr = vnet.gso_hdr_for(f, f.gso_size, partial=f.csum_partial)
        assert hdr.gso_type == vnet.VIRTIO_NET_HDR_GSO_TCPV6 and hdr.hdr_len == 54 + 32
        assert f.gso_size == 1428 and f.csum_partial == partial
        assert f.gso_segs == -(-len(p[TCP].payload) // f.gso_size) > 1
    for s in cut(tso):
        p = Ether(s)
        ref = Ether(s)
        del ref[TCP].chksum, ref[IPv6].plen
        ref = Ether(bytes(ref))
        assert (p[IPv6].plen, p[TCP].chksum) == (ref[IPv6].plen, ref[TCP].chksum)
        got += bytes(p[TCP].payload)
    # all of it, or as much as cwnd 60 lets go (more than one super-frame's worth)
    assert got == data[:len(got)] and len(got) >= min(nbytes, 60 * 1428)
    mib = h.mib.snapshot()
    # TCP counts segments, IPv6 its datagrams (one per super-frame)
    assert mib["OutSegs"] - before.get("OutSegs", 0) == len(plain)
    assert mib["Ip6OutRequests"] - before.get("Ip6OutRequests", 0) == len(tso)


def test_no_super_frame_without_tso6_even_with_tso4():
    h, child, _iss, _tsval = established()
    h.interfaces[1].gso_max_size = 0xFFFF        # TSO4 only: IPv6 goes segment by segment
    child.snd_cwnd = 60
    child.sendmsg(b"q" * 50_000)
    frames = [f for _, f in h.take_output()]
    assert len(frames) > 30 and not [f for f in frames if type(f) is GsoFrame]
    assert h.gso_caps(1, v6=True) == (0, False) and h.gso_caps(1)[0] == 0xFFFF
