"""Ethernet in and out (eth_type_trans + netif_receive_skb demux; dev_hard_header).

The Ethernet header is three fixed fields, so we slice them here instead of
calling wire.parse_eth: one fewer crossing per frame (DESIGN principle 3).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio.core import ip6_input, ip_input
from tcpio.core.ipv6 import ETH_P_IPV6

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface

ETH_HLEN = 14
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
_IP_TYPE = b"\x08\x00"


def ether_input(host: Host, iface: Interface, frame: bytes | bytearray | memoryview,
                now: float) -> None:
    mib = host.mib
    if len(frame) < ETH_HLEN:
        mib["EthInTruncated"] += 1
        mib["EthInDrops"] += 1
        return
    dst = bytes(frame[0:6])
    link_bcast = False
    if dst != iface.mac:
        if not dst[0] & 1:
            # Unicast for another station (PACKET_OTHERHOST): not ours to read.
            mib["EthInNotForUs"] += 1
            return
        link_bcast = True     # broadcast or multicast
    ethertype = (frame[12] << 8) | frame[13]
    view = memoryview(frame)[ETH_HLEN:]
    if ethertype == ETH_P_IP:
        ip_input.ip_rcv(host, iface, view, now, link_bcast)
    elif ethertype == ETH_P_ARP:
        host.arp.rcv(iface, view, now)
    elif ethertype == ETH_P_IPV6:
        ip6_input.ipv6_rcv(host, iface, view, now, link_bcast)
    else:
        mib["EthInUnknownProtos"] += 1          # VLANs, ...


def ether_xmit(host: Host, iface: Interface, dst_mac: bytes, ethertype: int,
               payload: bytes | bytearray) -> int:
    """Prepend the Ethernet header (or nothing, on an "ip" link) and queue
    the frame: dev_queue_xmit's NET_XMIT_* status (qdisc.py)."""
    src_mac = iface.mac
    if iface.link != "ether":
        return host.xmit(iface.ifindex, payload)
    # Host.add_interface gives every "ether" link a MAC (only "ip" links have none).
    assert src_mac is not None, f"{iface!r} has no MAC"
    header = dst_mac + src_mac + (_IP_TYPE if ethertype == ETH_P_IP
                                  else ethertype.to_bytes(2, "big"))
    frame = header + payload
    if len(frame) < 60:
        # Pad to the Ethernet minimum (the receiver trims by IP total length).
        frame += bytes(60 - len(frame))
    host.mib["EthOutFrames"] += 1
    return host.xmit(iface.ifindex, frame)


def multicast_mac(ip: int) -> bytes:
    """RFC 1112 mapping of a class D address to 01:00:5e + low 23 bits."""
    return bytes([0x01, 0x00, 0x5E, (ip >> 16) & 0x7F, (ip >> 8) & 0xFF, ip & 0xFF])
