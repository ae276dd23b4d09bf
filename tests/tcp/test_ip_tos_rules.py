"""IP_TOS and IP_MTU_DISCOVER on a TCP socket (net/ipv4/ip_sockglue.c:
__ip_sock_set_tos, ip_dont_fragment), and the header of its segments.

The option values are compared live with a kernel socket under the same
ip_no_pmtu_disc; the frames are dissected by scapy: the TOS byte is the
socket's (a stream socket keeps its own ECN bits, so 0x13 reads back 0x10),
DF is set for IP_PMTUDISC_WANT and _DO only.
"""

from __future__ import annotations

import errno
import socket

import pytest
from hostutil import MY, PEER, inject, make_host
from scapy.layers.inet import IP, TCP

IP_MTU_DISCOVER = 10        # include/uapi/linux/in.h
DONT, WANT, DO, PROBE = 0, 1, 2, 3
SOL_IP = socket.IPPROTO_IP


def _no_pmtu_disc() -> int:
    with open("/proc/sys/net/ipv4/ip_no_pmtu_disc") as f:
        return int(f.read())


def _answers(sock, calls) -> list:
    out = []
    for name, value in calls:
        try:
            if value is None:
                out.append(sock.getsockopt(SOL_IP, name))
            else:
                sock.setsockopt(SOL_IP, name, value)
                out.append("ok")
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    return out


def test_option_values_are_the_kernels():
    calls = [(socket.IP_TOS, None), (socket.IP_TOS, 0x13), (socket.IP_TOS, None),
             (socket.IP_TOS, 0x1FF), (socket.IP_TOS, None),
             (IP_MTU_DISCOVER, None), (IP_MTU_DISCOVER, PROBE), (IP_MTU_DISCOVER, None),
             (IP_MTU_DISCOVER, 6), (IP_MTU_DISCOVER, -1), (IP_MTU_DISCOVER, None)]
    with socket.socket() as real:
        want = _answers(real, calls)
    h = make_host(ip_no_pmtu_disc=_no_pmtu_disc())
    assert _answers(h.tcp.socket(), calls) == want


def _accepted(h):
    ls = h.tcp.socket()
    ls.bind(0, 80)
    ls.listen(1)
    [synack] = inject(h, IP(src=PEER, dst=MY) / TCP(sport=4000, dport=80, flags="S", seq=100))
    inject(h, IP(src=PEER, dst=MY) / TCP(sport=4000, dport=80, flags="A", seq=101,
                                          ack=synack[TCP].seq + 1, window=8000))
    sk = ls.accept()
    assert sk is not None
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)    # one segment per send
    return sk


def _send(h, sk, n: int = 100) -> list:
    sk.sendmsg(bytes(n))
    return [(f[IP].tos, bool(f[IP].flags & 2)) for f in
            (IP(bytes(f)[14:]) for _, f in h.take_output())]


def test_the_socket_tos_and_df_go_on_its_segments():
    h = make_host()
    sk = _accepted(h)
    assert _send(h, sk) == [(0, True)]
    sk.setsockopt(SOL_IP, socket.IP_TOS, 0x2B)
    assert _send(h, sk) == [(0x28, True)]
    sk.setsockopt(SOL_IP, IP_MTU_DISCOVER, DONT)
    assert _send(h, sk) == [(0x28, False)]
    sk.setsockopt(SOL_IP, socket.IP_TOS, 0)
    sk.setsockopt(SOL_IP, IP_MTU_DISCOVER, DO)
    assert _send(h, sk) == [(0, True)]
    sk.setsockopt(SOL_IP, IP_MTU_DISCOVER, PROBE)
    assert _send(h, sk) == [(0, False)]


def test_without_pmtu_discovery_do_still_sets_df():
    h = make_host(ip_no_pmtu_disc=1)
    sk = _accepted(h)
    assert sk.getsockopt(SOL_IP, IP_MTU_DISCOVER) == DONT
    assert _send(h, sk) == [(0, False)]
    sk.setsockopt(SOL_IP, IP_MTU_DISCOVER, DO)
    assert _send(h, sk) == [(0, True)]


@pytest.mark.parametrize("name, value, got", [
    (socket.IP_TOS, 0x10, 0x10), (IP_MTU_DISCOVER, DO, DO)])
def test_an_accepted_socket_inherits_the_listeners(name, value, got):
    h = make_host()
    ls = h.tcp.socket()
    ls.setsockopt(SOL_IP, name, value)
    ls.bind(0, 80)
    ls.listen(1)
    [synack] = inject(h, IP(src=PEER, dst=MY) / TCP(sport=4000, dport=80, flags="S", seq=100))
    inject(h, IP(src=PEER, dst=MY) / TCP(sport=4000, dport=80, flags="A", seq=101,
                                          ack=synack[TCP].seq + 1, window=8000))
    assert ls.accept().getsockopt(SOL_IP, name) == got

