"""Router mode (issue 18; tcpio/core/ip_forward.py, Linux's ip_forward).

a (10.0.1.1) -- r (10.0.1.2 | 10.0.2.2) -- b (10.0.2.1) on Ethernet links,
r with ``Settings(ip_forward=True)``; virtual clock.  What crosses the
links is read back with scapy (checksums, the ICMP quote); RFC 1812 and
RFC 792/1191 are the rules.
"""

from __future__ import annotations

import errno
import hashlib

from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton
from tcpio.core.in_h import IPPROTO_UDP
from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

A, R1, R2, B = "10.0.1.1", "10.0.1.2", "10.0.2.2", "10.0.2.1"


class Routed:
    def __init__(self, forward: bool = True, mtu2: int = 1500) -> None:
        self.net = VirtualNetwork(seed=3)
        self.a = self.net.host("a")
        self.r = self.net.host("r", settings=Settings(ip_forward=forward))
        self.b = self.net.host("b")
        self.l1 = self.net.link(self.a, self.r, f"{A}/24", f"{R1}/24")
        self.l2 = self.net.link(self.r, self.b, f"{R2}/24", f"{B}/24", mtu=mtu2)
        self.a.add_route(0, 0, ip_aton(R1))
        self.b.add_route(0, 0, ip_aton(R2))

    def ip_from(self, link, host) -> list[IP]:
        return [Ether(f)[IP] for f in link.frames_from(host) if Ether(f).type == 0x0800]


def _udp_pair(n: Routed, port: int = 9000):
    rx = n.b.udp.socket()
    rx.bind(0, port)
    tx = n.a.udp.socket()
    tx.connect(ip_aton(B), port)
    return tx, rx


def test_forwarded_datagram_leaves_with_ttl_one_less_and_a_good_checksum() -> None:
    n = Routed()
    tx, rx = _udp_pair(n)
    tx.send(b"through the router")
    n.net.run_for(1)
    assert rx.recvfrom() == (b"through the router", (ip_aton(A), tx.lport))
    (sent,) = [p for p in n.ip_from(n.l1, n.a) if UDP in p]
    (fwd,) = [p for p in n.ip_from(n.l2, n.r) if UDP in p]
    assert fwd.ttl == sent.ttl - 1 and (fwd.src, fwd.dst) == (A, B)
    chk = fwd.chksum
    del fwd.chksum
    assert IP(bytes(fwd)).chksum == chk          # scapy's own checksum of the new header
    assert n.r.mib["ForwDatagrams"] == 1 and n.r.mib["InAddrErrors"] == 0


def test_forwarding_is_off_by_default() -> None:
    n = Routed(forward=False)
    tx, rx = _udp_pair(n)
    tx.send(b"x")
    n.net.run_for(1)
    assert rx.recvfrom() is None and n.ip_from(n.l2, n.r) == []
    assert n.r.mib["InAddrErrors"] == 1 and n.r.mib["ForwDatagrams"] == 0


def test_ttl_expiry_is_time_exceeded_quoting_the_datagram_as_it_arrived() -> None:
    n = Routed()
    tx, _ = _udp_pair(n)
    tx.connect(ip_aton(B), 9000)
    tx.recverr = True           # time exceeded is a soft error: IP_RECVERR hears it
    n.a.ip_output(IPPROTO_UDP, ip_aton(A), ip_aton(B),
                  bytes(UDP(sport=tx.lport, dport=9000) / b"probe"), ttl=1)
    n.net.run_for(1)
    assert [p for p in n.ip_from(n.l2, n.r) if UDP in p] == []
    (err,) = [p for p in n.ip_from(n.l1, n.r) if ICMP in p]
    assert (err.src, err.dst) == (R1, A)
    assert (err[ICMP].type, err[ICMP].code) == (11, 0)   # TTL exceeded in transit
    quoted = err[IPerror]
    assert quoted.ttl == 1 and (quoted.src, quoted.dst) == (A, B)
    assert err[UDPerror].sport == tx.lport and err[UDPerror].dport == 9000
    assert n.r.mib["InHdrErrors"] == 1 and n.r.mib["IcmpOutTimeExcds"] == 1
    # the socket hears about it (EHOSTUNREACH)
    assert [e.errno for e in tx.errors] == [errno.EHOSTUNREACH]


def test_no_route_is_net_unreachable() -> None:
    n = Routed()
    sk = n.a.udp.socket()
    sk.recverr = True           # net unreachable is a soft error: IP_RECVERR hears it
    sk.connect(ip_aton("192.0.2.1"), 53)
    sk.send(b"x")
    n.net.run_for(1)
    (err,) = [p for p in n.ip_from(n.l1, n.r) if ICMP in p]
    assert (err[ICMP].type, err[ICMP].code) == (3, 0)
    assert n.r.mib["InNoRoutes"] == 1 and [e.errno for e in sk.errors] == [errno.ENETUNREACH]


def test_smaller_mtu_in_the_middle_gives_frag_needed_and_tcp_adapts() -> None:
    n = Routed(mtu2=1000)
    n.b.set_mtu(n.l2.ifb, 1500)     # b says MSS 1460: only r knows the 1000 in between
    listener = n.b.tcp.socket()
    listener.bind(0, 80)
    listener.listen(8)
    c = n.a.tcp.socket()
    try:
        c.connect(ip_aton(B), 80)
    except BlockingIOError:
        pass
    n.net.run_until(lambda: c.state == TCP_ESTABLISHED)
    n.net.run_for(0.1)
    child = listener.accept()
    data = bytes(range(256)) * 800               # 200 KiB
    sent = 0
    got = bytearray()
    while len(got) < len(data):
        if sent < len(data):
            sent += c.sendmsg(data[sent:sent + 65536])
        n.net.run_for(0.05)
        got += child.recvmsg(1 << 20)
        assert n.net.now < 60
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    errs = [p for p in n.ip_from(n.l1, n.r) if ICMP in p]
    assert errs and all((p[ICMP].type, p[ICMP].code, p[ICMP].nexthopmtu) == (3, 4, 1000)
                        for p in errs)
    assert n.r.mib["FragFails"] == len(errs) and n.a.mib["PMTUUpdates"] >= 1
    assert max(len(p) for p in n.ip_from(n.l2, n.r)) <= 1000
    assert c.mss_cache <= 1000 - 40


def test_without_df_the_router_fragments_again_and_b_reassembles() -> None:
    n = Routed(mtu2=1000)
    tx, rx = _udp_pair(n)
    payload = bytes(range(256)) * 12             # 3072 bytes: 3 fragments leave a
    tx.send(payload)
    n.net.run_for(1)
    assert rx.recvfrom() == (payload, (ip_aton(A), tx.lport))
    from_a = n.ip_from(n.l1, n.a)
    from_r = n.ip_from(n.l2, n.r)
    assert len(from_a) == 3 and len(from_r) > 3
    assert all(len(p) <= 1000 for p in from_r)
    assert len({p.id for p in from_r}) == 1 and from_r[0].id == from_a[0].id
    # a's two 1500-byte fragments are cut in two each, its short last one goes as it is
    too_big = [p for p in from_a if len(p) > 1000]
    assert len(from_r) == 2 * len(too_big) + (len(from_a) - len(too_big))
    assert n.r.mib["FragOKs"] == len(too_big) and n.r.mib["FragCreates"] == 2 * len(too_big)
    assert n.r.mib["ForwDatagrams"] == 3
    assert [p.frag * 8 for p in from_r] == sorted(p.frag * 8 for p in from_r)
