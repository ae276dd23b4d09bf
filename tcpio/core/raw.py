"""Raw IPv4 sockets (net/ipv4/raw.c): SOCK_RAW, seed 000; issue 18.

``host.raw.socket(proto) -> RawSock``.  Receiving is ``raw_v4_input``: in
``ip_local_deliver``, before the protocol's handler, every raw sock of the
datagram's protocol whose bound address (if any) is the destination and
whose connected peer (if any) is the source gets a copy of the whole
datagram, IP header included (after reassembly, as Linux).  A protocol that
has no handler but a raw sock is not "unreachable": no ICMP protocol
unreachable goes back (raw_local_deliver found a socket).  While a raw sock
exists for TCP or UDP the host's compiled receive path steps aside
(``RawTable.tcpudp``), so the copies see every segment.

Sending (``raw_sendmsg``): without ``IP_HDRINCL`` the data is the payload and
``ip_output`` builds the header (protocol = the sock's); with it the data is
the whole datagram and, as ``raw_send_hdrinc`` does, we fill in the total
length and the header checksum always, the source when it is 0 and the IP ID
when it is 0; the datagram is not fragmented (EMSGSIZE over the route's
MTU).  ICMP errors are not queued on raw socks (Linux needs IP_RECVERR).
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tcpio import _fast
from tcpio.core.errors import sock_error
from tcpio.core.in_h import IPPROTO_TCP, IPPROTO_UDP
from tcpio.core.ip_input import IP_HLEN, IP_MAX_LEN
from tcpio.core.ip_output import ip_select_ident, neigh_output
from tcpio.core.qdisc import NET_XMIT_SUCCESS, net_xmit_errno, xmit_dropped

if TYPE_CHECKING:
    from tcpio.core.host import Host

wire = _fast.load("wire")
csum = _fast.load("checksum")

IP_HDRINCL = 3              # include/uapi/linux/in.h
RAW_SKB_OVERHEAD = 256      # charged per queued datagram, like UDP's


class RawSock:
    def __init__(self, table: RawTable, proto: int) -> None:
        self.table = table
        self.host = table.host
        self.proto = proto
        self.laddr = 0
        self.raddr = 0
        self.hdrincl = proto == 255         # IPPROTO_RAW implies IP_HDRINCL
        self.recverr = False                # IP_RECVERR: ENOBUFS from a full queue
        self.rcvbuf = self.host.settings.udp_rmem_default
        self.rcv_queue: deque[tuple[bytes, int]] = deque()
        self.rcv_bytes = 0
        self.drops = 0
        self.closed = False
        self.wakeup: Callable[[], None] | None = None

    def bind(self, addr: int) -> None:
        if addr and not self.host.is_local_address(addr) and not self.host.is_broadcast(addr):
            raise sock_error(errno.EADDRNOTAVAIL)
        self.laddr = addr

    def connect(self, addr: int) -> None:
        self.host.route_lookup(addr)        # ENETUNREACH
        self.raddr = addr

    def setsockopt_hdrincl(self, on: bool) -> None:
        self.hdrincl = bool(on)

    def recvfrom(self) -> tuple[bytes, int] | None:
        """The oldest datagram (IP header included) and its source, or None."""
        if not self.rcv_queue:
            return None
        data, src = self.rcv_queue.popleft()
        self.rcv_bytes -= len(data) + RAW_SKB_OVERHEAD
        return data, src

    def sendto(self, data: bytes | bytearray | memoryview, addr: int | None = None) -> int:
        if self.closed:
            raise sock_error(errno.EBADF)
        if addr is None:
            if not self.raddr:
                raise sock_error(errno.EDESTADDRREQ)
            addr = self.raddr
        host = self.host
        if host.is_broadcast(addr):
            raise sock_error(errno.EACCES, "broadcast needs SO_BROADCAST")
        n = len(data)
        if not self.hdrincl:
            if n > IP_MAX_LEN - IP_HLEN:
                raise sock_error(errno.EMSGSIZE)
            rc = host.ip_output(self.proto, self.laddr or None, addr, data)
        else:
            rc = self._send_hdrinc(bytearray(data), addr)
        if net_xmit_errno(rc):
            # raw_sendmsg / raw_send_hdrinc: OutDiscards, ENOBUFS with IP_RECVERR
            return xmit_dropped(host.mib, n, self.recverr, ("OutDiscards",))
        return n

    def _send_hdrinc(self, pkt: bytearray, addr: int) -> int:
        """raw_send_hdrinc: the caller's header, completed; routed by
        ``addr``; the NET_XMIT_* status of its frame."""
        host = self.host
        n = len(pkt)
        if n < IP_HLEN or pkt[0] >> 4 != 4 or (pkt[0] & 0x0F) * 4 > n or (pkt[0] & 0x0F) < 5:
            raise sock_error(errno.EINVAL, "not an IPv4 header")
        route = host.route_lookup(addr)
        if n > route.mtu:
            raise sock_error(errno.EMSGSIZE)
        hlen = (pkt[0] & 0x0F) * 4
        pkt[2:4] = n.to_bytes(2, "big")
        if not int.from_bytes(pkt[12:16], "big"):
            pkt[12:16] = route.src.to_bytes(4, "big")
        if not int.from_bytes(pkt[4:6], "big"):
            df = bool(pkt[6] & 0x40)
            ident = ip_select_ident(host, int.from_bytes(pkt[16:20], "big"), pkt[9], df, -1)
            pkt[4:6] = ident.to_bytes(2, "big")
        pkt[10:12] = b"\0\0"
        pkt[10:12] = csum.internet_checksum(pkt[:hlen]).to_bytes(2, "big")
        dst = int.from_bytes(pkt[16:20], "big")
        host.mib["OutRequests"] += 1
        if host.is_local_address(dst):
            host.loopback(bytes(pkt))
            return NET_XMIT_SUCCESS
        iface = host.interfaces[route.ifindex]
        return neigh_output(host, iface, route, dst, bytes(pkt))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.rcv_queue.clear()
            self.table.unhash(self)

    def __repr__(self) -> str:
        return f"<RawSock proto={self.proto}{' hdrincl' if self.hdrincl else ''}>"


class RawTable:
    """The raw socks by protocol (``raw_v4_hashinfo``)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.socks: dict[int, list[RawSock]] = {}
        # a raw sock for TCP or UDP: the compiled receive path steps aside
        self.tcpudp = False

    def socket(self, proto: int) -> RawSock:
        if not 0 <= proto <= 255:
            raise sock_error(errno.EPROTONOSUPPORT)
        sk = RawSock(self, proto)
        self.socks.setdefault(proto, []).append(sk)
        self._update()
        return sk

    def unhash(self, sk: RawSock) -> None:
        lst = self.socks.get(sk.proto)
        if lst and sk in lst:
            lst.remove(sk)
            if not lst:
                del self.socks[sk.proto]
        self._update()

    def _update(self) -> None:
        self.tcpudp = IPPROTO_TCP in self.socks or IPPROTO_UDP in self.socks

    def deliver(self, iph: Any, payload: bytes | bytearray | memoryview) -> bool:
        """raw_v4_input: a copy to each matching sock; True if any took it."""
        socks = self.socks.get(iph.proto)
        if not socks:
            return False
        hdr = bytearray(60)
        hlen = wire.build_ipv4(hdr, 0, iph)
        datagram = bytes(hdr[:hlen]) + bytes(payload)
        host = self.host
        delivered = False
        for sk in socks:
            if (sk.laddr and sk.laddr != iph.dst) or (sk.raddr and sk.raddr != iph.src):
                continue
            delivered = True
            n = len(datagram) + RAW_SKB_OVERHEAD
            if sk.rcv_bytes + n > sk.rcvbuf and sk.rcv_queue:
                sk.drops += 1
                host.mib["RawRcvbufErrors"] += 1
                continue
            sk.rcv_queue.append((datagram, iph.src))
            sk.rcv_bytes += n
            host.schedule_wakeup(sk)
        return delivered
