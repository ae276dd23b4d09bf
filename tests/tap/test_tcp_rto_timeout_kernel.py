"""The kernel as the oracle for tests/test_tcp_rto_timeout_rules.py: an
established connection whose data is lost and whose every retransmission
the device queue then refuses (NET_XMIT_DROP) ends in ETIMEDOUT after the
same number of tries on Linux and on tcpio (tcp_retries2=3: a refused tail
loss probe, six RTO tries 0.5 s apart, the seventh RTO gives up).

Linux's side: two private namespaces joined by a veth; after the handshake
the receiver's address is removed (what it is sent is lost) and, once the
data left, ``pfifo limit 0`` on the sender's veth refuses every frame.  The
counters are the kernel's (/proc/net/netstat of the sender's namespace).
Counts, not times: the kernel's timers run late by a few ms, never early,
and 0.5 s steps meet the 3.0 s model time with 0.5 s to spare.
"""

from __future__ import annotations

import socket
import time

import pytest
from netns import NetNs, veth
from test_qdisc_rules import Pair
from test_tcp_rto_timeout_rules import _lost_then

from tcpio.core.in_h import AF_INET
from tcpio.core.tcp.tcp_states import TCP_CLOSE

COUNTERS = ("TCPTimeouts", "TCPRetransFail", "TCPAbortOnTimeout")


def _netstat() -> dict[str, int]:
    """TcpExt counters of the calling thread's namespace."""
    with open("/proc/thread-self/net/netstat") as f:
        lines = f.read().split("\n")
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:])))
    raise AssertionError("no TcpExt in netstat")


def kernel_counts() -> tuple[dict[str, int], int]:
    with NetNs() as a, NetNs() as b:
        veth(a, "va", "10.9.0.1/24", b, "vb", "10.9.0.2/24")
        a.sysctl("net.ipv4.tcp_retries2", 3)
        ls = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.bind(("10.9.0.2", 5000))
        ls.listen()
        c = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(30)
        c.connect(("10.9.0.2", 5000))
        s, _ = ls.accept()
        for _ in range(20):                  # RTT samples: an RTO near 200 ms
            c.send(b"x")
            s.recv(10)
        b.ip("addr", "flush", "dev", "vb")
        before = a.call(_netstat)
        c.send(b"y")
        time.sleep(0.05)
        a.run("tc", "qdisc", "add", "dev", "va", "root", "pfifo", "limit", "0", check=True)
        with pytest.raises(TimeoutError) as e:   # socket.timeout would be a plain timeout
            c.recv(10)
        after = a.call(_netstat)
        for sk in (c, s, ls):
            sk.close()
    return {k: after[k] - before[k] for k in COUNTERS}, e.value.errno


def tcpio_counts() -> dict[str, int]:
    p = Pair()
    sk, _first = _lost_then(p, AF_INET, refuse=True)
    assert p.net.run_until(lambda: sk.state == TCP_CLOSE, timeout=60)
    return {k: p.a.mib[k] for k in COUNTERS}


def test_refused_rto_retransmissions_give_up_after_as_many_tries_as_on_linux(
        tap_required: None) -> None:
    got, err = kernel_counts()
    assert err == 110                                  # ETIMEDOUT
    assert got == {"TCPTimeouts": 7, "TCPRetransFail": 7, "TCPAbortOnTimeout": 1}
    assert tcpio_counts() == got
