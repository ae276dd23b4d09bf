"""Which ICMP errors a UDP socket hears, and how it reports them (Linux's
__udp4_lib_err / __udp6_lib_err).

- Without IP_RECVERR (IPV6_RECVERR for ICMPv6) only a *hard* error reaches the
  socket, and only a connected one: icmp_err_convert's ``fatal`` codes (port,
  protocol unreachable, the administratively prohibited ones ...), parameter
  problem, fragmentation needed / packet too big.  A soft one (net or host
  unreachable, time exceeded, source route failed) is ignored.
- With IP_RECVERR every error is reported, connected or not.
- Source quench and "fragment reassembly time exceeded" reach nobody.
- The error is sk_err: one slot, a newer error replaces the pending one, and
  the next recv or send reports it once; a send that reports it sends nothing.

KERNEL_V4 / KERNEL_V6 are the kernel's answers (measured on Linux 6.18 by
``kernel_table`` below, which the root-only test re-runs in a private network
namespace against loopback sockets, forging the ICMP errors with a raw socket).
"""

from __future__ import annotations

import errno
import socket
import struct

import pytest
from conftest import require_tap
from hostutil import MY, MY6, PEER, PEER6, inject, make_dual_host, make_host
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
)
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.in_h import AF_INET6, IPPROTO_IPV6
from tcpio.core.udp import IP_RECVERR, IPV6_RECVERR

# (type, code) -> (errno name, hard); (None, False): reaches no socket.
KERNEL_V4 = {
    (3, 0): ("ENETUNREACH", False), (3, 1): ("EHOSTUNREACH", False),
    (3, 2): ("ENOPROTOOPT", True), (3, 3): ("ECONNREFUSED", True),
    (3, 4): ("EMSGSIZE", True), (3, 5): ("EOPNOTSUPP", False),
    (3, 6): ("ENETUNREACH", True), (3, 7): ("EHOSTDOWN", True),
    (3, 8): ("ENONET", True), (3, 9): ("ENETUNREACH", True),
    (3, 10): ("EHOSTUNREACH", True), (3, 11): ("ENETUNREACH", False),
    (3, 12): ("EHOSTUNREACH", False), (3, 13): ("EHOSTUNREACH", True),
    (3, 14): ("EHOSTUNREACH", True), (3, 15): ("EHOSTUNREACH", True),
    (11, 0): ("EHOSTUNREACH", False), (11, 1): (None, False),
    (12, 0): ("EPROTO", True), (4, 0): (None, False),
}
KERNEL_V6 = {
    (1, 0): ("ENETUNREACH", False), (1, 1): ("EACCES", True),
    (1, 2): ("EHOSTUNREACH", False), (1, 3): ("EHOSTUNREACH", False),
    (1, 4): ("ECONNREFUSED", True), (1, 5): ("EACCES", True), (1, 6): ("EACCES", True),
    (1, 7): ("EPROTO", True), (1, 8): ("EPROTO", True),
    (2, 0): ("EMSGSIZE", True),
    (3, 0): ("EHOSTUNREACH", False), (3, 1): ("EHOSTUNREACH", False),
    (4, 0): ("EPROTO", True), (4, 1): ("EPROTO", True),
}
MODES = [(False, True), (False, False), (True, True), (True, False)]   # (recverr, connected)


def expected(table: dict, key: tuple[int, int], recverr: bool, connected: bool) -> str | None:
    name, hard = table[key]
    return name if name and (recverr or (hard and connected)) else None


def errno_name(exc: OSError | None) -> str | None:
    # EOPNOTSUPP and ENOTSUP are one number on Linux: compare numbers by one name
    return None if exc is None else errno.errorcode[exc.errno].replace("ENOTSUP", "EOPNOTSUPP")


# ----- tcpio: the sans-IO host ------------------------------------------------------------

def icmp4_about(sport: int, type: int, code: int):
    quoted = IP(src=MY, dst=PEER) / UDP(sport=sport, dport=53) / b"data"
    extra = {"nexthopmtu": 1200} if (type, code) == (3, 4) else {}
    return IP(src=PEER, dst=MY) / ICMP(type=type, code=code, **extra) / bytes(quoted)


def icmp6_about(sport: int, type: int, code: int):
    quoted = IPv6(src=MY6, dst=PEER6) / UDP(sport=sport, dport=53) / b"data"
    layer = {1: ICMPv6DestUnreach(code=code), 2: ICMPv6PacketTooBig(mtu=1280),
             3: ICMPv6TimeExceeded(code=code), 4: ICMPv6ParamProblem(code=code)}[type]
    return IPv6(src=PEER6, dst=MY6) / layer / bytes(quoted)


def tcpio_answer(family: int, type: int, code: int, recverr: bool, connected: bool
                 ) -> str | None:
    if family == socket.AF_INET:
        h = make_host()
        sk = h.udp.socket()
        if recverr:
            sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sk.bind(0, 5000)
        if connected:
            sk.connect(ip_aton(PEER), 53)
        inject(h, icmp4_about(5000, type, code))
    else:
        h = make_dual_host()
        sk = h.udp.socket(AF_INET6)
        if recverr:
            sk.setsockopt(IPPROTO_IPV6, IPV6_RECVERR, 1)
        sk.bind(0, 5000)
        if connected:
            sk.connect(ip6_aton(PEER6), 53)
        inject(h, icmp6_about(5000, type, code), 3.0)
    assert len(sk.errors) <= 1
    return errno_name(sk.errors[0] if sk.errors else None)


@pytest.mark.parametrize("recverr, connected", MODES)
@pytest.mark.parametrize("key", sorted(KERNEL_V4))
def test_icmp_error_reaches_a_udp_socket_as_linux_decides(key, recverr, connected):
    assert tcpio_answer(socket.AF_INET, *key, recverr, connected) == \
        expected(KERNEL_V4, key, recverr, connected)


@pytest.mark.parametrize("recverr, connected", MODES)
@pytest.mark.parametrize("key", sorted(KERNEL_V6))
def test_icmpv6_error_reaches_a_udp_socket_as_linux_decides(key, recverr, connected):
    assert tcpio_answer(AF_INET6, *key, recverr, connected) == \
        expected(KERNEL_V6, key, recverr, connected)


def connected_sock():
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 5000)
    sk.connect(ip_aton(PEER), 53)
    return h, sk


def test_a_newer_error_replaces_the_pending_one_which_is_reported_once():
    h, sk = connected_sock()
    inject(h, icmp4_about(5000, 3, 3))      # port unreachable
    inject(h, icmp4_about(5000, 3, 2))      # protocol unreachable
    assert [e.errno for e in sk.errors] == [errno.ENOPROTOOPT]


def test_a_send_reports_the_pending_error_and_sends_nothing():
    h, sk = connected_sock()
    inject(h, icmp4_about(5000, 3, 3))
    with pytest.raises(ConnectionRefusedError):
        sk.sendto(b"x")
    assert h.take_output() == [] and not sk.errors
    assert sk.sendto(b"x") == 1               # reported once: the next one goes
    [frame] = [Ether(f) for _, f in h.take_output()]
    assert frame[UDP].len == 9             # (the frame itself is padded to 60 bytes)


def test_a_soft_error_does_not_stop_a_connected_socket():
    h, sk = connected_sock()
    inject(h, icmp4_about(5000, 3, 1))      # host unreachable: transient (RFC 1122 3.2.2.1)
    assert not sk.errors
    assert sk.sendto(b"x") == 1


# ----- the kernel: the tables above ---------------------------------------------------------

def _csum(b: bytes) -> int:
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def kernel_answer(family: int, type: int, code: int, recverr: bool, connected: bool
                  ) -> str | None:
    """In the current (private) namespace: a loopback UDP socket, an ICMP error
    about its datagram forged with a raw socket, and what recv says."""
    lo = "127.0.0.1" if family == socket.AF_INET else "::1"
    with socket.socket(family, socket.SOCK_DGRAM) as a:
        a.bind((lo, 0))
        if recverr:
            if family == socket.AF_INET:
                a.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            else:
                a.setsockopt(IPPROTO_IPV6, IPV6_RECVERR, 1)
        if connected:
            a.connect((lo, 40000))
        udp = struct.pack("!HHHH", a.getsockname()[1], 40000, 12, 0) + b"data"
        if family == socket.AF_INET:
            ip = bytes(IP(src=lo, dst=lo, proto=17, flags=0) / udp)
            rest = struct.pack("!HH", 0, 1400) if (type, code) == (3, 4) else bytes(4)
            msg = struct.pack("!BBH", type, code, 0) + rest + ip
            msg = msg[:2] + struct.pack("!H", _csum(msg)) + msg[4:]
            proto = socket.IPPROTO_ICMP
        else:
            ip = bytes(IPv6(src=lo, dst=lo, nh=17) / udp)
            rest = struct.pack("!I", 1280) if type == 2 else bytes(4)
            msg = struct.pack("!BBH", type, code, 0) + rest + ip   # the kernel sums it
            proto = socket.IPPROTO_ICMPV6
        with socket.socket(family, socket.SOCK_RAW, proto) as raw:
            raw.sendto(msg, (lo, 0))
        try:
            a.recv(100, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError as exc:
            return errno_name(exc)
        return "data"


def kernel_table(family: int, keys) -> dict:
    return {(key, mode): kernel_answer(family, *key, *mode) for key in keys for mode in MODES}


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_the_tables_are_the_kernels(family):
    require_tap()   # root, for a namespace of our own and a raw socket
    from netns import NetNs
    table = KERNEL_V4 if family == socket.AF_INET else KERNEL_V6
    with NetNs() as ns:
        got = ns.call(kernel_table, family, sorted(table))
    want = {(key, mode): expected(table, key, *mode) for key in table for mode in MODES}
    assert got == want
