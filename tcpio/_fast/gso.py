"""A TCP super-frame on its way to a device that segments it (TSO/GSO).

``GsoFrame`` is the frame itself (``bytes``: one IPv4 datagram of up to 64 KiB
behind its link header, so anything that only looks at bytes, a capture
included, sees the super-frame as it crosses the device), plus what Linux
keeps beside an skb for the driver: ``gso_size`` (the MSS every segment but
the last carries), ``gso_segs`` (how many segments it stands for) and
``csum_partial`` (the TCP checksum field holds only the pseudo-header sum,
CHECKSUM_PARTIAL).  The TAP device turns these into the virtio-net header
(devices/virtio_net.py); TCP's send loop (tcp_fast.write_xmit) makes them.
"""

from __future__ import annotations


class GsoFrame(bytes):
    gso_size: int
    gso_segs: int
    csum_partial: bool


def gso_frame(frame: bytes, gso_size: int, gso_segs: int, csum_partial: bool) -> GsoFrame:
    """``frame`` as a super-frame of ``gso_segs`` segments of ``gso_size``."""
    out = GsoFrame(frame)
    out.gso_size = gso_size
    out.gso_segs = gso_segs
    out.csum_partial = csum_partial
    return out


class GroFrame(bytearray):
    """A received TCP aggregate (GRO's, or the kernel's GSO super-frame read
    from a TAP/TUN with offloads): the frame, plus ``gso_size``, the MSS of
    the segments it stands for.  Local delivery takes it whole; forwarding
    (core/ip_forward.py) cuts it back into segments that fit the way out,
    as Linux's ip_forward does with a GSO skb."""

    gso_size: int = 0
