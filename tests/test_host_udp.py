"""UDP socks on one Host: binding, demux, checksums, limits, ICMP errors, wakeups."""

from __future__ import annotations

import errno

import hostutil
import pytest
from hostutil import MY, MY2, PEER, PEER_MAC, inject
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.udp import UDP_SKB_OVERHEAD


def make_host(**settings) -> Host:
    """Two addresses (MY, MY2) for the demux tests."""
    return hostutil.make_host(MY2, **settings)


def dgram(data=b"hi", sport=1000, dport=53, dst=MY, **udp):
    return IP(src=PEER, dst=dst) / UDP(sport=sport, dport=dport, **udp) / data


def errno_of(fn) -> int:
    with pytest.raises(OSError) as exc:
        fn()
    return exc.value.errno


# ----- binding ------------------------------------------------------------------------

def test_bind_conflicts_like_linux():
    h = make_host()
    a = h.udp.socket()
    a.bind(0, 53)
    assert errno_of(lambda: h.udp.socket().bind(0, 53)) == errno.EADDRINUSE
    assert errno_of(lambda: h.udp.socket().bind(ip_aton(MY), 53)) == errno.EADDRINUSE
    b = h.udp.socket()
    b.bind(ip_aton(MY), 54)
    c = h.udp.socket()
    c.bind(ip_aton(MY2), 54)          # another specific address: fine
    assert errno_of(lambda: h.udp.socket().bind(0, 54)) == errno.EADDRINUSE
    assert errno_of(lambda: a.bind(0, 55)) == errno.EINVAL
    assert errno_of(lambda: h.udp.socket().bind(ip_aton("10.9.9.9"), 1)) == errno.EADDRNOTAVAIL
    a.close()
    h.udp.socket().bind(0, 53)        # free again after close
    assert errno_of(lambda: a.sendto(b"x", ip_aton(PEER), 1)) == errno.EBADF


def test_ephemeral_ports_in_range_and_distinct():
    h = make_host(ip_local_port_range=(40000, 40099))
    ports = set()
    for _ in range(100):
        sk = h.udp.socket()
        sk.bind(0, 0)
        ports.add(sk.getsockname()[1])
    assert ports == set(range(40000, 40100))
    assert errno_of(lambda: h.udp.socket().bind(0, 0)) == errno.EADDRINUSE


def test_sendto_autobinds_and_builds_a_valid_datagram():
    h = make_host()
    sk = h.udp.socket()
    assert sk.sendto(b"payload", ip_aton(PEER), 9) == 7
    (p,) = [Ether(f) for _, f in h.take_output()]
    assert p[IP].src == MY and p[UDP].dport == 9 and p[UDP].load == b"payload"
    assert sk.getsockname() == (0, p[UDP].sport)
    sent = p[UDP].chksum
    del p[UDP].chksum
    assert Ether(bytes(p))[UDP].chksum == sent
    assert h.mib["UdpOutDatagrams"] == 1


def test_user_errors():
    h = make_host()
    sk = h.udp.socket()
    assert errno_of(lambda: sk.sendto(b"x")) == errno.EDESTADDRREQ
    assert errno_of(lambda: sk.sendto(b"x" * 65508, ip_aton(PEER), 9)) == errno.EMSGSIZE
    assert errno_of(lambda: sk.sendto(b"x", ip_aton("10.0.0.255"), 9)) == errno.EACCES
    assert errno_of(lambda: sk.sendto(b"x", ip_aton("192.168.0.1"), 9)) == errno.ENETUNREACH
    assert errno_of(lambda: sk.sendto(b"x", ip_aton(PEER), 0)) == errno.EINVAL
    assert errno_of(sk.getpeername) == errno.ENOTCONN
    sk.broadcast = True
    sk.sendto(b"x", ip_aton("10.0.0.255"), 9)
    (p,) = [Ether(f) for _, f in h.take_output()]
    assert p.dst == "ff:ff:ff:ff:ff:ff"


# ----- receiving --------------------------------------------------------------------------

def test_demux_prefers_connected_then_specific():
    h = make_host()
    wild = h.udp.socket()
    wild.reuseaddr = True
    wild.bind(0, 53)
    conn = h.udp.socket()
    conn.reuseaddr = True
    conn.bind(ip_aton(MY2), 53)
    conn.connect(ip_aton(PEER), 7)
    assert conn.getpeername() == (ip_aton(PEER), 7)
    inject(h, dgram(b"1", sport=7, dst=MY2))
    inject(h, dgram(b"2", sport=8, dst=MY2))    # not the connected peer: the wildcard
    inject(h, dgram(b"3", sport=7, dst=MY))
    assert conn.recvfrom() == (b"1", (ip_aton(PEER), 7)) and conn.recvfrom() is None
    assert [wild.recvfrom()[0] for _ in range(2)] == [b"2", b"3"]


def test_closed_port_gets_port_unreachable():
    h = make_host()
    (err,) = inject(h, dgram(dport=4242))
    assert (err[ICMP].type, err[ICMP].code) == (3, 3)
    assert err[IP].dst == PEER and err[IP].src == MY
    assert err[UDPerror].dport == 4242
    assert h.mib["UdpNoPorts"] == 1


def test_zero_checksum_accepted_bad_checksum_counted():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    inject(h, dgram(b"nocsum", chksum=0))
    assert sk.recvfrom()[0] == b"nocsum"
    assert inject(h, dgram(b"bad", chksum=0x1234)) == []
    assert sk.recvfrom() is None
    assert h.mib["UdpInCsumErrors"] == 1 and h.mib["UdpInErrors"] == 1
    # A bad checksum to a closed port is an error, not a reason for ICMP.
    assert inject(h, dgram(b"bad", dport=9, chksum=0x1234)) == []


@pytest.mark.parametrize("length", [0, 7, 200])
def test_bad_udp_length_counted(length):
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    assert inject(h, dgram(b"abc", len=length, chksum=0)) == []
    assert h.mib["UdpInErrors"] == 1 and sk.recvfrom() is None


def test_udp_length_shorter_than_ip_payload_trims():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    inject(h, dgram(b"abcdef", len=8 + 3, chksum=0))
    assert sk.recvfrom()[0] == b"abc"


def test_receive_queue_bounded():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    # Each datagram is charged its payload plus the per-datagram overhead
    # (Linux: skb truesize), so this buffer holds exactly ten of them.
    sk.rcvbuf = 10 * (100 + UDP_SKB_OVERHEAD)
    for _ in range(20):
        inject(h, dgram(b"x" * 100))
    assert sk.pending() == 10
    assert h.mib["UdpRcvbufErrors"] == 10 and h.mib["UdpInDatagrams"] == 10
    sk.recvfrom()
    inject(h, dgram(b"x" * 100))
    assert sk.pending() == 10


def test_wakeups_deduplicated_per_batch():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    assert h.take_wakeups() == []
    inject(h, dgram())
    inject(h, dgram())
    assert h.take_wakeups() == [sk]
    assert h.take_wakeups() == []


# ----- ICMP errors ------------------------------------------------------------------------

def icmp_about(sk_port: int, peer_port: int, type: int, code: int, **icmp):
    quoted = IP(src=MY, dst=PEER) / UDP(sport=sk_port, dport=peer_port) / b"data"
    return IP(src=PEER, dst=MY) / ICMP(type=type, code=code, **icmp) / bytes(quoted)


@pytest.mark.parametrize("type, code, expected", [
    (3, 3, errno.ECONNREFUSED), (3, 4, errno.EMSGSIZE), (3, 13, errno.EHOSTUNREACH),
    (12, 0, errno.EPROTO),
])
def test_icmp_errors_reach_the_connected_sock(type, code, expected):
    """Hard errors only (soft ones need IP_RECVERR: test_udp_icmp_error_rules.py)."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 5000)
    sk.connect(ip_aton(PEER), 53)
    other = h.udp.socket()
    other.bind(0, 5001)
    other.connect(ip_aton(PEER), 53)
    extra = {"nexthopmtu": 1200} if (type, code) == (3, 4) else {}
    inject(h, icmp_about(5000, 53, type, code, **extra))
    (e,) = sk.errors
    assert e.errno == expected
    if extra:
        assert "1200" in str(e)
    assert not other.errors
    assert sk in h.take_wakeups()


def test_unconnected_sock_hears_errors_only_with_recverr():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 5000)
    inject(h, icmp_about(5000, 53, 3, 3))
    assert not sk.errors
    sk.recverr = True
    inject(h, icmp_about(5000, 53, 3, 3))
    assert [e.errno for e in sk.errors] == [errno.ECONNREFUSED]


def test_icmp_error_with_bad_quote_is_dropped():
    h = make_host()
    sk = h.udp.socket()
    sk.connect(ip_aton(PEER), 53)
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=3) / b"\x45\x00short")
    assert not sk.errors and h.mib["IcmpInErrors"] == 1


def test_error_quoted_by_scapy_error_layers_roundtrip():
    # Our own port unreachable, fed back to us, reaches the sock that "sent" it.
    h = make_host()
    (err,) = inject(h, dgram(dport=4242, sport=5000))
    assert IPerror in err
    sk = h.udp.socket()
    sk.bind(0, 4242)
    sk.connect(ip_aton(PEER), 5000)
    # Swap roles: the error now looks like one about a datagram we sent to PEER:5000.
    e = IP(src=PEER, dst=MY) / ICMP(type=3, code=3) / bytes(
        IP(src=MY, dst=PEER) / UDP(sport=4242, dport=5000))
    inject(h, e)
    assert [x.errno for x in sk.errors] == [errno.ECONNREFUSED]


def test_datagrams_to_our_own_address_loop_back():
    h = make_host()
    a, b = h.udp.socket(), h.udp.socket()
    a.bind(ip_aton(MY), 1)
    b.bind(0, 2)
    a.sendto(b"self", ip_aton(MY2), 2)
    assert h.take_output() == []               # nothing on the wire
    assert b.recvfrom() == (b"self", (ip_aton(MY), 1))
    a.sendto(b"closed", ip_aton(MY), 3)        # port unreachable comes back to us too
    a.connect(ip_aton(MY), 3)
    a.sendto(b"closed")
    assert [e.errno for e in a.errors] == [errno.ECONNREFUSED]


def test_127_is_loopback_and_martian_on_the_wire():
    h = make_host()
    srv, cli = h.udp.socket(), h.udp.socket()
    srv.bind(ip_aton("127.0.0.1"), 7)
    cli.sendto(b"lo", ip_aton("127.0.0.1"), 7)
    data, (src, _) = srv.recvfrom()
    assert data == b"lo" and src == ip_aton("127.0.0.1")
    assert h.take_output() == []
    assert inject(h, IP(src=PEER, dst="127.0.0.1") / UDP(dport=7) / b"x") == []
    assert h.mib["InAddrErrors"] == 1 and srv.recvfrom() is None


def test_no_port_unreachable_for_link_layer_broadcasts():
    h = make_host()
    frame = Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC) / dgram(dport=4242)
    h.receive(1, bytes(frame), 0.0)
    assert h.take_output() == [] and h.mib["UdpNoPorts"] == 1
