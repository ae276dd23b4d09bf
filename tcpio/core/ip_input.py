"""IPv4 input: ip_rcv's sanity checks, then local delivery (ip_local_deliver).

Every drop is counted where Linux counts it (``/proc/net/snmp`` Ip: line):
too short / bad version / bad IHL / bad total length -> InHdrErrors; a frame
shorter than the total length -> InTruncatedPkts; bad header checksum ->
InCsumErrors and InHdrErrors; not addressed to us -> InAddrErrors (we are a
host: forwarding is off); no handler for the protocol -> InUnknownProtos plus
ICMP protocol unreachable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio.core.addr import is_multicast

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface

wire = _fast.load("wire")
csum = _fast.load("checksum")

IP_HLEN = 20


def peek_dst(packet: bytes | bytearray | memoryview) -> int:
    return int.from_bytes(packet[16:20], "big")


def options_ok(opts: bytes) -> bool:
    """Walk the option list (ip_options_compile) without acting on any option.

    We are a host that neither forwards nor source-routes, so every option is
    skipped; a malformed list (length < 2 or running past the header) is
    rejected, like Linux answers it with a parameter problem.
    """
    i = 0
    n = len(opts)
    while i < n:
        kind = opts[i]
        if kind == 0:           # IPOPT_END
            return True
        if kind == 1:           # IPOPT_NOOP
            i += 1
            continue
        if i + 1 >= n:
            return False
        olen = opts[i + 1]
        if olen < 2 or i + olen > n:
            return False
        i += olen
    return True


def ip_rcv(host: Host, iface: Interface, packet: bytes | bytearray | memoryview, now: float,
           link_bcast: bool, loopback: bool = False) -> None:
    mib = host.mib
    mib["InReceives"] += 1
    n = len(packet)
    if n < IP_HLEN:
        mib["InHdrErrors"] += 1
        return
    b0 = packet[0]
    ihl = b0 & 0x0F
    hlen = ihl << 2
    if b0 >> 4 != 4 or ihl < 5 or n < hlen:
        mib["InHdrErrors"] += 1
        return
    tot_len = (packet[2] << 8) | packet[3]
    if n < tot_len:
        mib["InTruncatedPkts"] += 1
        return
    if tot_len < hlen:
        mib["InHdrErrors"] += 1
        return
    if csum.csum_partial(packet[:hlen]) != 0xFFFF:
        mib["InCsumErrors"] += 1
        mib["InHdrErrors"] += 1
        return
    iph = wire.parse_ipv4(packet)
    if ihl > 5 and not options_ok(iph.options):
        mib["InHdrErrors"] += 1
        return
    src = iph.src
    dst = iph.dst
    if is_multicast(src) or src == 0xFFFFFFFF or \
            (not loopback and (src >> 24 == 127 or dst >> 24 == 127)):
        mib["InAddrErrors"] += 1          # martian: 127/8 never comes from a wire
        return
    host.rx_link_bcast = link_bcast
    bcast = False
    if not host.is_local_address(dst):
        if host.is_broadcast(dst):
            bcast = True
            mib["InBcastPkts"] += 1
        else:
            # Someone else's datagram (or a multicast group we never joined).
            mib["InAddrErrors"] += 1
            return
    payload: memoryview | bytes = memoryview(packet)[hlen:tot_len]
    if iph.mf or iph.frag_offset:
        done = host.frags.defrag(iph, payload, now)
        if done is None:
            return
        first, data = done
        iph = wire.IPv4Header(4, first.ihl, first.tos, first.ihl * 4 + len(data), first.ident,
                              first.df, False, 0, first.ttl, first.proto, 0, first.src,
                              first.dst, first.options)
        payload = memoryview(data)
    ip_local_deliver(host, iph, payload, now, bcast)


def ip_local_deliver(host: Host, iph: Any, payload: memoryview, now: float,
                     bcast: bool) -> None:
    handler = host.protocols.get(iph.proto)
    if handler is None:
        host.mib["InUnknownProtos"] += 1
        if not bcast:
            host.icmp_send(iph, payload, 3, 2)   # protocol unreachable
        return
    host.mib["InDelivers"] += 1
    handler.rcv(iph, payload, now)
