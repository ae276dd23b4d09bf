"""IPv4 input: ip_rcv's sanity checks, then local delivery (ip_local_deliver).

Every drop is counted where Linux counts it (``/proc/net/snmp`` Ip: line):
too short / bad version / bad IHL / bad total length -> InHdrErrors; a frame
shorter than the total length -> InTruncatedPkts; bad header checksum ->
InCsumErrors and InHdrErrors; a martian source (multicast, broadcast, 127/8,
0/8 towards a unicast address, or one of our own addresses: RFC 1122 3.2.1.3)
or a 127/8 destination from a device -> InAddrErrors (and InMartianSrc or
InMartianDst, Linux's rt_cache in_martian_src/in_martian_dst); not addressed
to us -> InAddrErrors (we are a host: forwarding is off), unless the
interface has a transparent forwarder for the protocol (Host.set_tproxy:
then it is delivered with ``host.rx_tproxy`` set) or forwarding is on
(``Settings.ip_forward``: ip_forward.py routes it on); a
malformed option list -> InHdrErrors plus ICMP parameter problem; no handler
for the protocol -> InUnknownProtos plus ICMP protocol unreachable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio.core.addr import is_multicast
from tcpio.core.in_h import IPPROTO_ICMP, IPPROTO_TCP

if TYPE_CHECKING:
    from tcpio.core.host import Host, Interface

wire = _fast.load("wire")
csum = _fast.load("checksum")

IP_HLEN = 20
IP_MAX_LEN = 65535


def peek_dst(packet: bytes | bytearray | memoryview) -> int:
    return int.from_bytes(packet[16:20], "big")


def options_error(opts: bytes) -> int | None:
    """Walk the option list like ip_options_compile, without acting on any option.

    We are a host that neither forwards nor source-routes, so every option is
    skipped.  Returns None for a well-formed list, else the offset (from the
    start of the options) of the option whose length is wrong: its type octet,
    as Linux's ``pp_ptr`` (an option with no room for its length byte, a
    length below 2, or one running past the header).
    """
    i = 0
    n = len(opts)
    while i < n:
        kind = opts[i]
        if kind == 0:           # IPOPT_END
            return None
        if kind == 1:           # IPOPT_NOOP
            i += 1
            continue
        if i + 1 >= n:
            return i
        olen = opts[i + 1]
        if olen < 2 or i + olen > n:
            return i
        i += olen
    return None


def martian_on_wire(host: Host, src: int, dst: int) -> bool:
    """ip_route_input_slow + fib_validate_source for a datagram from a link.

    127/8 never comes from a wire (either way).  A source that is one of our
    own addresses or one of our broadcast addresses is forged or looped
    (RFC 1122 3.2.1.3; fib_validate_source always refuses our own addresses,
    and with rp_filter on, as distributions set it, broadcast ones too).  0/8 is
    only a valid source towards 255.255.255.255 (a DHCP client before it has
    an address: Linux takes the brd_input branch before its zeronet check).
    """
    if src >> 24 == 127 or dst >> 24 == 127:
        return True
    if src >> 24 == 0:
        return dst != 0xFFFFFFFF
    return host.is_local_address(src) or host.is_broadcast(src)


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
    if not tot_len and host.rx_gso_size and packet[9] == IPPROTO_TCP:
        # iph_totlen: a TCP super-frame past 64 KiB (BIG TCP) says 0 and is
        # as long as its buffer; any other datagram saying 0 is malformed
        tot_len = n
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
    src = iph.src
    dst = iph.dst
    if is_multicast(src) or src == 0xFFFFFFFF or \
            (not loopback and martian_on_wire(host, src, dst)):
        mib["InAddrErrors"] += 1
        # Linux's rt_cache statistics, in ip_route_input_slow's order: a
        # multicast, broadcast or 0/8 source is in_martian_src, then a 127/8
        # destination in_martian_dst, then any other (127/8, ours) source.
        mib["InMartianDst" if dst >> 24 == 127 and src >> 24 != 0 and
            not is_multicast(src) and src != 0xFFFFFFFF else "InMartianSrc"] += 1
        return
    host.rx_link_bcast = link_bcast
    bcast = False
    tproxy = None
    if not host.is_local_address(dst):
        if host.is_broadcast(dst):
            bcast = True
            mib["InBcastPkts"] += 1
        else:
            # Someone else's datagram (or a multicast group we never joined),
            # unless the interface has a transparent forwarder for its protocol.
            tp = iface.tproxy
            tproxy = tp.get(iph.proto) if tp is not None and not is_multicast(dst) else None
            if tproxy is None and tp is not None and iph.proto == IPPROTO_ICMP \
                    and IPPROTO_TCP in tp and not is_multicast(dst) and not iph.mf \
                    and not iph.frag_offset and tot_len > hlen \
                    and packet[hlen] in _ICMP_ERRORS:
                # an ICMP error, maybe about a forwarded flow (icmp.py)
                tproxy = tp[IPPROTO_TCP]
            if tproxy is None:
                if host.settings.ip_forward:
                    # router mode (ip_forward.py): forwarded or answered with ICMP
                    host.ip_forward(iph, packet, hlen, tot_len, link_bcast)
                    return
                mib["InAddrErrors"] += 1
                return
    payload = memoryview(packet)[hlen:tot_len]
    if ihl > 5:
        # ip_rcv_finish_core: options are compiled after the route lookup, so a
        # datagram for someone else is an address error first; a malformed list
        # gets a parameter problem pointing at the bad octet (icmp_send refuses
        # it for broadcasts itself).
        bad = options_error(iph.options)
        if bad is not None:
            mib["InHdrErrors"] += 1
            host.icmp_send(iph, payload, 12, 0, IP_HLEN + bad)
            return
    if iph.mf or iph.frag_offset:
        done = host.frags.defrag(iph, payload, now)
        if done is None:
            return
        first, data = done
        iph = wire.IPv4Header(4, first.ihl, first.tos, first.ihl * 4 + len(data), first.ident,
                              first.df, False, 0, first.ttl, first.proto, 0, first.src,
                              first.dst, first.options)
        payload = memoryview(data)
    if tproxy is None:
        ip_local_deliver(host, iph, payload, now, bcast)
        return
    host.rx_tproxy = tproxy
    try:
        ip_local_deliver(host, iph, payload, now, False)
    finally:
        host.rx_tproxy = None


# ICMP destination unreachable, time exceeded, parameter problem
_ICMP_ERRORS = frozenset((3, 11, 12))


def ip_local_deliver(host: Host, iph: Any, payload: memoryview, now: float,
                     bcast: bool) -> None:
    # raw_local_deliver: copies to the raw socks of the protocol (core/raw.py)
    raw = bool(host.raw.socks) and host.raw.deliver(iph, payload)
    handler = host.protocols.get(iph.proto)
    if handler is None:
        if raw:
            host.mib["InDelivers"] += 1     # a raw sock took it: not unreachable
            return
        host.mib["InUnknownProtos"] += 1
        if not bcast:
            host.icmp_send(iph, payload, 3, 2)   # protocol unreachable
        return
    host.mib["InDelivers"] += 1
    handler.rcv(iph, payload, now)
