"""The virtio-net header: what a TAP/TUN opened with IFF_VNET_HDR puts in front
of every frame, both ways (include/uapi/linux/virtio_net.h, if_tun.h).

    struct virtio_net_hdr {            10 bytes
        __u8  flags;                   NEEDS_CSUM 1, DATA_VALID 2, RSC_INFO 4
        __u8  gso_type;                NONE 0, TCPV4 1, UDP 3, TCPV6 4, UDP_L4 5; | ECN 0x80
        __virtio16 hdr_len;            Ethernet + IP + TCP/UDP header bytes
        __virtio16 gso_size;           payload bytes per segment (the MSS)
        __virtio16 csum_start;         where the checksum's sum starts (the L4 header)
        __virtio16 csum_offset;        where the checksum goes, from csum_start
    };
    struct virtio_net_hdr_mrg_rxbuf { struct virtio_net_hdr hdr; __virtio16 num_buffers; };  12 bytes

``__virtio16`` is the host's byte order for a legacy device, which is what tun
speaks unless told otherwise (TUNSETVNETLE/BE): native order here.  The header
is 10 bytes unless TUNSETVNETHDRSZ says 12 (mrg_rxbuf; the 2 extra bytes are
zero for tun).

NEEDS_CSUM (the kernel's CHECKSUM_PARTIAL): the L4 checksum field holds only
the pseudo-header sum; whoever finishes the frame sums ``frame[csum_start:]``
into it (``csum_complete``, Linux's skb_checksum_help).  DATA_VALID
(CHECKSUM_UNNECESSARY): the kernel checked it.  gso_type != NONE: one frame
stands for ``ceil(payload / gso_size)`` segments (``gso_segment`` cuts it
the way the kernel's tcp_gso_segment / __udp_gso_segment would).

The ioctls and TUN_F_* offload bits of <linux/if_tun.h> are here too.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from tcpio import _fast

_csum = _fast.load("checksum")

# <linux/if_tun.h>
IFF_VNET_HDR = 0x4000
TUNGETFEATURES = 0x800454CF      # _IOR('T', 207, unsigned int)
TUNSETOFFLOAD = 0x400454D0       # _IOW('T', 208, unsigned int)
TUNGETVNETHDRSZ = 0x800454D7     # _IOR('T', 215, int)
TUNSETVNETHDRSZ = 0x400454D8     # _IOW('T', 216, int)
TUN_F_CSUM = 0x01                # we take partial checksums
TUN_F_TSO4 = 0x02                # we take TSO (IPv4)
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
TUN_F_UFO = 0x10
TUN_F_USO4 = 0x20                # we take UDP segmentation offload (Linux 6.2+)
TUN_F_USO6 = 0x40

# <linux/virtio_net.h>
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_F_RSC_INFO = 4
VIRTIO_NET_HDR_GSO_NONE = 0
VIRTIO_NET_HDR_GSO_TCPV4 = 1
VIRTIO_NET_HDR_GSO_UDP = 3
VIRTIO_NET_HDR_GSO_TCPV6 = 4
VIRTIO_NET_HDR_GSO_UDP_L4 = 5
VIRTIO_NET_HDR_GSO_ECN = 0x80

VNET_HDR_LEN = 10                # sizeof(struct virtio_net_hdr)
VNET_HDR_MRG_LEN = 12            # sizeof(struct virtio_net_hdr_mrg_rxbuf)

_HDR = struct.Struct("=BBHHHH")  # native order: a legacy device, as tun is by default
NO_OFFLOAD_HDR = bytes(VNET_HDR_LEN)   # a frame with nothing to do: all zero

_ETH_HLEN = 14
_ETH_P_IP = 0x0800
_ETH_P_IPV6 = 0x86DD
_IPV6_HLEN = 40
_IPPROTO_TCP = 6
_IPPROTO_UDP = 17


class VirtioNetHdr(NamedTuple):
    flags: int = 0
    gso_type: int = VIRTIO_NET_HDR_GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @property
    def needs_csum(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)

    @property
    def data_valid(self) -> bool:
        return bool(self.flags & VIRTIO_NET_HDR_F_DATA_VALID)

    @property
    def is_gso(self) -> bool:
        return self.gso_type & ~VIRTIO_NET_HDR_GSO_ECN != VIRTIO_NET_HDR_GSO_NONE


def parse_vnet_hdr(buf: bytes | bytearray | memoryview, offset: int = 0) -> VirtioNetHdr:
    """The header at ``buf[offset:]`` (the first 10 bytes; a 12-byte header's
    num_buffers is not read).  ValueError when fewer than 10 bytes are there."""
    if len(buf) - offset < VNET_HDR_LEN:
        raise ValueError("virtio_net_hdr: truncated")
    return VirtioNetHdr._make(_HDR.unpack_from(buf, offset))


def build_vnet_hdr(hdr: VirtioNetHdr = VirtioNetHdr(), size: int = VNET_HDR_LEN) -> bytes:
    """The ``size``-byte (10 or 12) header for ``hdr`` (num_buffers zero)."""
    if size not in (VNET_HDR_LEN, VNET_HDR_MRG_LEN):
        raise ValueError("virtio_net_hdr is 10 or 12 bytes")
    out = _HDR.pack(*hdr)
    return out if size == VNET_HDR_LEN else out + b"\0\0"


def csum_complete(frame: bytearray, csum_start: int, csum_offset: int) -> None:
    """Finish a partial checksum in place (skb_checksum_help): the field at
    ``csum_start + csum_offset`` holds the pseudo-header sum; the result is
    the checksum of everything from ``csum_start`` on, that sum included."""
    where = csum_start + csum_offset
    if csum_start < 0 or where + 2 > len(frame):
        raise ValueError("virtio_net_hdr: checksum position outside the frame")
    with memoryview(frame) as view:
        check = ~_csum.csum_partial(view[csum_start:]) & 0xFFFF
    frame[where:where + 2] = check.to_bytes(2, "big")


def _l3_offset(frame: bytes | bytearray | memoryview, ether: bool) -> int:
    if not ether:
        return 0
    if len(frame) < _ETH_HLEN or frame[12] << 8 | frame[13] not in (_ETH_P_IP, _ETH_P_IPV6):
        raise ValueError("gso: not an IP frame")
    return _ETH_HLEN


def _l4_offset(frame: bytes | bytearray | memoryview, ip: int) -> int:
    """Where the TCP/UDP header starts: after IPv4's IHL, or right after
    IPv6's fixed header (a super-frame carries no extension headers, as
    Linux's TSO6 send path builds it)."""
    if len(frame) >= ip + 20 and frame[ip] >> 4 == 4:
        return ip + (frame[ip] & 0x0F) * 4
    if len(frame) >= ip + _IPV6_HLEN and frame[ip] >> 4 == 6:
        if frame[ip + 6] not in (_IPPROTO_TCP, _IPPROTO_UDP):
            raise ValueError("gso: IPv6 extension headers are not cut")
        return ip + _IPV6_HLEN
    raise ValueError("gso: not an IP frame")


def gso_segment(frame: bytes | bytearray | memoryview, hdr: VirtioNetHdr, *,
                ether: bool = True) -> list[bytes]:
    """Cut a TCP (gso_type TCPV4 over IPv4, TCPV6 over IPv6) or UDP (UDP_L4)
    super-frame into the frames it stands for, each with a complete checksum
    (IPv6's over its pseudo-header), as the kernel's software GSO does:
    every segment but the last carries ``gso_size`` bytes (a TCP super-frame
    whose IP length field says 0 is BIG TCP's, as long as its buffer); IPv4 IDs count up
    from the super-frame's, each IPv6 payload length is its segment's; TCP
    sequence numbers advance;
    FIN and PSH only on the last TCP segment, CWR only on the first; UDP
    datagrams each get their own length.  A frame that is not GSO comes back
    alone, its checksum completed if it was partial."""
    data = bytearray(frame)
    if not hdr.is_gso:
        if hdr.needs_csum:
            csum_complete(data, hdr.csum_start, hdr.csum_offset)
        return [bytes(data)]
    ip = _l3_offset(data, ether)
    l4 = _l4_offset(data, ip)
    v6 = data[ip] >> 4 == 6
    proto = data[ip + 6] if v6 else data[ip + 9]
    gso_type = hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    tcp_type = VIRTIO_NET_HDR_GSO_TCPV6 if v6 else VIRTIO_NET_HDR_GSO_TCPV4
    if gso_type == tcp_type and proto == _IPPROTO_TCP:
        if len(data) < l4 + 20:
            raise ValueError("gso: truncated TCP header")
        l4len = (data[l4 + 12] >> 4) * 4
    elif gso_type == VIRTIO_NET_HDR_GSO_UDP_L4 and proto == _IPPROTO_UDP:
        l4len = 8
    else:
        raise ValueError(f"gso: gso_type {hdr.gso_type} does not match IP protocol {proto}")
    mss = hdr.gso_size
    if mss <= 0:
        raise ValueError("gso: gso_size must be positive")
    payload_at = l4 + l4len
    if v6:
        ip_end = l4 + (data[ip + 4] << 8 | data[ip + 5])
        src = int.from_bytes(data[ip + 8:ip + 24], "big")
        dst = int.from_bytes(data[ip + 24:ip + 40], "big")
    else:
        ip_end = ip + (data[ip + 2] << 8 | data[ip + 3])
        src = int.from_bytes(data[ip + 12:ip + 16], "big")
        dst = int.from_bytes(data[ip + 16:ip + 20], "big")
    if ip_end == (l4 if v6 else ip) and proto == _IPPROTO_TCP:
        # BIG TCP: a TCP super-frame past 64 KiB says 0 and is as long as
        # its buffer (iph_totlen, ipv6_payload_len); its segments say theirs
        ip_end = len(data)
    if ip_end > len(data) or payload_at > ip_end:
        raise ValueError("gso: IP total length does not fit the frame")
    head = data[:payload_at]
    ident = data[ip + 4] << 8 | data[ip + 5]
    seq = int.from_bytes(data[l4 + 4:l4 + 8], "big")
    out: list[bytes] = []
    starts = range(payload_at, ip_end, mss)
    last = len(starts) - 1
    for i, start in enumerate(starts):
        chunk = data[start:min(start + mss, ip_end)]
        seg = bytearray(head)
        seg += chunk
        if v6:
            seg[ip + 4:ip + 6] = (l4len + len(chunk)).to_bytes(2, "big")
        else:
            ihl = l4 - ip
            seg[ip + 2:ip + 4] = (ihl + l4len + len(chunk)).to_bytes(2, "big")
            seg[ip + 4:ip + 6] = ((ident + i) & 0xFFFF).to_bytes(2, "big")
            seg[ip + 10:ip + 12] = b"\0\0"
            seg[ip + 10:ip + 12] = _csum.internet_checksum(seg[ip:l4]).to_bytes(2, "big")
        seg_len = l4len + len(chunk)
        if proto == _IPPROTO_TCP:
            seg[l4 + 4:l4 + 8] = ((seq + i * mss) & 0xFFFFFFFF).to_bytes(4, "big")
            if i != last:
                seg[l4 + 13] &= ~0x09 & 0xFF        # FIN, PSH: the last segment's
            if i != 0:
                seg[l4 + 13] &= ~0x80 & 0xFF        # CWR: the first segment's
            where = l4 + 16
        else:
            seg[l4 + 4:l4 + 6] = seg_len.to_bytes(2, "big")
            where = l4 + 6
        seg[where:where + 2] = b"\0\0"
        if v6:
            check = _csum.internet_checksum(
                seg[l4:], _csum.pseudo_header_sum6(src, dst, proto, len(seg) - l4))
        else:
            check = _csum.tcpudp_checksum(src, dst, proto, seg[l4:])
        if proto == _IPPROTO_UDP and check == 0:
            check = 0xFFFF
        seg[where:where + 2] = check.to_bytes(2, "big")
        out.append(bytes(seg))
    return out


def gso_hdr_for(frame: bytes | bytearray | memoryview, gso_size: int, *, ether: bool = True,
                partial: bool = True) -> VirtioNetHdr:
    """The header the kernel expects with a TCP super-frame we send
    (virtio_net_hdr_from_skb): gso_type TCPV4 or TCPV6 (by the IP version)
    with ``gso_size``, hdr_len the headers, and with ``partial`` NEEDS_CSUM
    at the TCP checksum.  ``gso_size`` 0: a frame of one segment, gso_type
    NONE (with ``partial``, a checksum offload only)."""
    ip = _ETH_HLEN if ether else 0
    l4 = _l4_offset(frame, ip)
    if not gso_size:
        gso_type = VIRTIO_NET_HDR_GSO_NONE
    elif frame[ip] >> 4 == 6:
        gso_type = VIRTIO_NET_HDR_GSO_TCPV6
    else:
        gso_type = VIRTIO_NET_HDR_GSO_TCPV4
    thl = (frame[l4 + 12] >> 4) * 4
    return VirtioNetHdr(VIRTIO_NET_HDR_F_NEEDS_CSUM if partial else 0,
                        gso_type, l4 + thl, gso_size, l4 if partial else 0,
                        16 if partial else 0)
