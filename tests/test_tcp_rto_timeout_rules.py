"""When the RTO gives up on an established connection (tcp_write_timeout).

Linux's retransmits_timed_out decides by time, not by a count: the
connection times out when the time since the first (attempted)
retransmission of the episode (retrans_stamp) reaches TCP_USER_TIMEOUT, or
without one tcp_model_timeout(tcp_retries2): the time that many RTOs take
doubling from 200 ms up to 120 s (3.0 s for 3, 924.6 s for 15).  So a
retransmission the device queue refuses (NET_XMIT_DROP: tried again after
TCP_RESOURCE_PROBE_INTERVAL, 0.5 s, without backoff) times out as a lost one
does, by the clock.

The kernel, measured (Linux 6.18, tcp_retries2=3, a veth pair, the receiver's
address removed after the handshake so the data is lost, then ``tc qdisc
add dev va root pfifo limit 0`` on the sender so every retransmission is
refused): a tail loss probe at 0.21 s and the first RTO at 0.41 s, both
refused; the RTO tried again every 0.51 s; ETIMEDOUT 3.09 s after the first
RTO (6 RTO tries, 7 TCPRetransFail with the probe's).  The same without the
qdisc (every retransmission lost): RTOs at 0.41, 0.85, 1.68, 3.34 s and
ETIMEDOUT at 6.77 s, 6.35 s after the first RTO: four retransmissions, not
three, since the clock starts at the first one.
"""

from __future__ import annotations

import errno
import socket

import pytest
from test_qdisc_rules import Pair
from test_qdisc_xmit_status_rules import refusing, tcp_pair

from tcpio.core.in_h import AF_INET, AF_INET6
from tcpio.core.tcp.tcp_states import TCP_CLOSE
from tcpio.core.tcp.tcp_timer import tcp_model_timeout


def test_the_model_time_is_the_backoff_sum_from_200_ms_capped_at_120_s():
    """tcp_model_timeout (ms): (2^(n+1) - 1) * 200 while the RTO doubles
    (ilog2(120000 / 200) = 9 doublings), then 120 s per retry."""
    assert [tcp_model_timeout(n, 200) for n in (0, 1, 3, 9)] == [200, 600, 3000, 204600]
    assert tcp_model_timeout(15, 200) == 924600          # ip-sysctl.rst: 924.6 s
    assert tcp_model_timeout(6, 1000) == 127000          # a SYN's base: 1 s


def _lost_then(p: Pair, family: int, refuse: bool, retries2: int = 3,
               user_timeout_ms: int = 0):
    """An established a -> b whose next data segment is lost on the link;
    with ``refuse`` every later transmission is refused by a's queue.
    Returns (a's sock, the time of the first retransmission attempt)."""
    p.a.settings.tcp_retries2 = retries2
    sk, _child = tcp_pair(p, family)
    if user_timeout_ms:
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
    p.link.drop = lambda sender, frame: sender is p.a
    assert sk.sendmsg(b"d" * 100) == 100
    p.net.run_for(0.001)
    if refuse:
        refusing(p)
    assert p.net.run_until(lambda: sk.retrans_stamp is not None, timeout=10)
    return sk, sk.retrans_stamp


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_refused_rto_retransmissions_time_out_at_the_model_time(family: int) -> None:
    """Every RTO retransmission refused: tried every 0.5 s without backoff,
    and ETIMEDOUT when 3.0 s (tcp_retries2=3) have passed since the first
    try, as the kernel did; it used to be tried forever."""
    p = Pair()
    sk, first = _lost_then(p, family, refuse=True)
    fails = p.a.mib["TCPRetransFail"]
    assert p.net.run_until(lambda: sk.state == TCP_CLOSE, timeout=60)
    assert p.net.now - first == pytest.approx(3.0)
    assert p.a.mib["TCPRetransFail"] - fails == 5          # + the first: 6 tries
    assert p.a.mib["TCPAbortOnTimeout"] == 1 and p.a.mib["RetransSegs"] >= 6
    assert sk.rto == pytest.approx(sk.rtt_est.base_rto)    # never backed off
    assert sk.sk_err == errno.ETIMEDOUT


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_lost_rto_retransmissions_time_out_by_the_same_clock(family: int) -> None:
    """The oracle: the same connection with its retransmissions lost instead
    gives up at the first RTO at least 3.0 s after its first retransmission,
    after retransmitting with backoff until then."""
    p = Pair()
    sk, first = _lost_then(p, family, refuse=False)
    rto = sk.rtt_est.base_rto
    assert p.net.run_until(lambda: sk.state == TCP_CLOSE, timeout=600)
    # RTOs at first + rto*(2 + 4 + ...): the first sum past 3.0 s ends it
    waited, k = 0.0, 1
    while waited < 3.0 - 1e-9:
        waited += rto * 2 ** k
        k += 1
    assert p.net.now - first == pytest.approx(waited)
    assert p.a.mib["TCPAbortOnTimeout"] == 1 and sk.sk_err == errno.ETIMEDOUT


def test_refused_rto_retransmissions_honour_tcp_user_timeout() -> None:
    """TCP_USER_TIMEOUT replaces the model time, on the same clock."""
    p = Pair()
    sk, first = _lost_then(p, AF_INET, refuse=True, retries2=15, user_timeout_ms=2000)
    assert p.net.run_until(lambda: sk.state == TCP_CLOSE, timeout=60)
    assert p.net.now - first == pytest.approx(2.0)
    assert sk.sk_err == errno.ETIMEDOUT
