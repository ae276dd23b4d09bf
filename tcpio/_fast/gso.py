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
