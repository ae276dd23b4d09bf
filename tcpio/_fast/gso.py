"""A TCP super-frame, on its way to a device that segments it (TSO/GSO) or
from one that merged it (GRO: the kernel's TSO frame read from a TAP).

``GsoFrame`` is the frame itself (``bytes``: one IP datagram of up to 64 KiB,
or up to GSO_MAX_SIZE on a device that takes BIG TCP, behind its link
header, so anything that only looks at bytes, a capture included, sees the
super-frame as it crosses the device), plus what Linux keeps beside an skb
(skb_shinfo and ip_summed): ``gso_size`` (the MSS every segment but the
last carries), ``gso_segs`` (how many segments it stands
for), ``csum_partial`` (out: the TCP checksum field holds only the
pseudo-header sum, CHECKSUM_PARTIAL) and ``csum_valid`` (in: the device
checked or completed every checksum in it, CHECKSUM_UNNECESSARY, so the
receive path does not sum 64 KiB again).  The TAP device turns these into
the virtio-net header and back (devices/virtio_net.py, rx.vnet_rx); TCP's
send loop (tcp_fast.write_xmit) makes them, and its receive side counts
and measures one as its ``gso_segs`` segments of ``gso_size``
(tcp_segs_in, tcp_measure_rcv_mss).
"""

from __future__ import annotations

from typing import Any

# BIG TCP (Linux 5.19 for IPv6, 6.3 for IPv4): a device may take TCP
# super-frames above the 64 KiB an IP length field can say, up to
# include/linux/netdevice.h's GSO_MAX_SIZE (8 * GSO_MAX_SEGS: gso_segs is 16
# bits and TCP's smallest GSO size 8 bytes); the default stays
# GSO_LEGACY_MAX_SIZE, as the kernel's does for every device.  Such a frame
# says 0 in its length field (IPv4 tot_len, IPv6 payload length) and its
# length is the buffer's, which only a receiver that knows it is a TCP
# super-frame may take (iph_totlen / ipv6_payload_len: rx_classify, ip_rcv,
# ipv6_rcv and virtio_net.gso_segment each apply it where they read the field).
GSO_LEGACY_MAX_SIZE = 65536
GSO_MAX_SIZE = 8 * 65535


class GsoFrame(bytes):
    gso_size: int
    gso_segs: int
    csum_partial: bool = False
    csum_valid: bool = False


def gso_frame(frame: bytes, gso_size: int, gso_segs: int, csum_partial: bool) -> GsoFrame:
    """``frame`` as a super-frame of ``gso_segs`` segments of ``gso_size``:
    a frame built as a GsoFrame (the compiled send loop builds it in place,
    tx.tcp_data_frame's ``gso``) takes the attributes, any other is copied
    into a new one."""
    out = frame if type(frame) is GsoFrame else GsoFrame(frame)
    out.gso_size = gso_size
    out.gso_segs = gso_segs
    out.csum_partial = csum_partial
    return out


def rx_gso(frame: Any) -> tuple[int, int]:
    """``(gso_segs, gso_size)`` of a received frame: ``(1, 0)`` unless it is a
    super-frame (tcp_segs_in's ``max(1, gso_segs)``)."""
    if type(frame) is GsoFrame:
        segs = getattr(frame, "gso_segs", 1)
        return (segs if segs > 1 else 1), getattr(frame, "gso_size", 0)
    return 1, 0


def csum_completed(frame: GsoFrame, ether: bool = True) -> GsoFrame:
    """``frame`` with its partial TCP checksum finished (skb_checksum_help),
    for code that checks checksums itself (the layered receive path); the
    frame itself if its checksum is not partial.  The TCP header follows
    IPv4's IHL or IPv6's fixed header (a frame TCP's send loop built)."""
    if not frame.csum_partial:
        return frame
    from tcpio import _fast  # (here: the module is imported by the builds' loader)
    csum = _fast.load("checksum").csum_partial
    ip = 14 if ether else 0
    l4 = ip + (40 if frame[ip] >> 4 == 6 else (frame[ip] & 0x0F) * 4)
    done = bytearray(frame)
    check = ~csum(memoryview(done)[l4:]) & 0xFFFF
    done[l4 + 16:l4 + 18] = check.to_bytes(2, "big")
    out = GsoFrame(done)
    out.gso_size = getattr(frame, "gso_size", 0)
    out.gso_segs = getattr(frame, "gso_segs", 1)
    out.csum_valid = True
    return out
