"""An orphan's zero-window probes and retransmissions (net/ipv4/tcp_timer.c).

- tcp_probe_timer: an orphan (closed by the application, SOCK_DEAD) probes a
  shut window while its backed-off interval, icsk_rto << icsk_backoff, is
  under tcp_rto_max ("alive"); once it would reach it, tcp_orphan_retries
  (0 by default, so 0 probes more) ends the connection: tcp_write_err,
  TCPAbortOnTimeout.  A socket the application still holds probes for
  tcp_retries2 unanswered probes instead.
- tcp_out_of_resources, before each of those probes and each orphan's RTO:
  with more orphans than tcp_max_orphans, counting them double (one shift)
  for a connection that saw an ICMP error (sk_err_soft), the orphan is
  dropped (TCPAbortOnMemory), with a RST when the peer's window is shut and
  nothing is in flight, or it sent within TCP_TIMEWAIT_LEN.
"""

from __future__ import annotations

import errno
import itertools

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CLOSE

from .helpers import ACK, RST, Conn, passive_open


def _shut_window(settings: Settings | None = None) -> Conn:
    """The peer shuts its window; we have data queued: the persist timer runs."""
    c = passive_open(settings)
    c.send(window=0)
    c.sk.sendmsg(b"x" * 100)
    assert c.recv() == []
    return c


def _probes_until_closed(c: Conn, limit: float = 3600.0) -> list[float]:
    """Run the clock; the times of the zero-window probes sent (<SEQ=SND.UNA-1>)."""
    times = []
    while c.sk.state != TCP_CLOSE and c.host.now < limit:
        c.host.advance(c.host.now + 0.25)
        for s in c.recv():
            if s.flags == ACK and not s.payload:
                times.append(round(c.host.now, 2))
    return times


def test_an_orphan_probes_while_its_backoff_is_under_tcp_rto_max() -> None:
    c = _shut_window()
    c.sk.close()                             # orphaned with data and a FIN queued
    rto = c.sk.rto
    times = _probes_until_closed(c)
    # intervals rto, 2 rto, 4 rto, ... while rto << backoff < tcp_rto_max (120 s)
    alive = [k for k in range(32) if rto * (1 << k) < 120.0]
    assert len(times) == len(alive)
    assert c.sk.state == TCP_CLOSE
    assert c.host.mib["TCPAbortOnTimeout"] == 1
    assert c.host.mib["TCPAbortOnMemory"] == 0


def test_a_socket_still_held_probes_for_tcp_retries2_probes() -> None:
    c = _shut_window(Settings(tcp_retries2=10))
    times = _probes_until_closed(c)
    assert len(times) == 10
    assert c.sk.sk_err == errno.ETIMEDOUT


def test_an_orphan_with_an_icmp_error_over_the_orphan_limit_is_reset_at_its_next_probe() -> None:
    c = _shut_window(Settings(tcp_max_orphans=1))
    c.sk.close()                             # one orphan: not over the limit
    assert c.host.mib["TCPAbortOnMemory"] == 0
    c.sk.sk_err_soft = errno.EHOSTUNREACH    # counted twice now
    _probes_until_closed(c, limit=30.0)
    assert c.sk.state == TCP_CLOSE
    assert c.host.mib["TCPAbortOnMemory"] == 1
    assert c.host.mib["TCPAbortOnTimeout"] == 0


def test_the_reset_goes_out_when_the_window_is_shut_and_nothing_is_in_flight() -> None:
    c = _shut_window(Settings(tcp_max_orphans=1))
    c.sk.close()
    c.sk.sk_err_soft = errno.EHOSTUNREACH
    seen = []
    while c.sk.state != TCP_CLOSE and c.host.now < 30.0:
        c.host.advance(c.host.now + 0.25)
        seen += c.recv()
    assert [s.flags & RST for s in seen] == [RST]
    assert seen[0].seq == c.rcv               # at SND.NXT


def test_under_the_limit_the_same_orphan_keeps_probing() -> None:
    c = _shut_window(Settings(tcp_max_orphans=2))
    c.sk.close()
    c.sk.sk_err_soft = errno.EHOSTUNREACH    # 1 orphan << 1 = 2: not over
    times = _probes_until_closed(c, limit=30.0)
    assert times and c.sk.state != TCP_CLOSE
    assert c.host.mib["TCPAbortOnMemory"] == 0


def test_an_orphans_rto_over_the_orphan_limit_drops_it() -> None:
    """The same check before an orphan's retransmission (tcp_write_timeout)."""
    c = passive_open(Settings(tcp_max_orphans=1))
    c.sk.sendmsg(b"y" * 100)
    assert len(c.recv()) == 1                # in flight, never ACKed
    c.sk.close()
    assert [s.flags & RST for s in c.recv()] == [0]      # its FIN
    c.sk.sk_err_soft = errno.EHOSTUNREACH
    c.host.advance(c.host.now + c.sk.rto + 0.01)
    assert c.sk.state == TCP_CLOSE
    assert c.host.mib["TCPAbortOnMemory"] == 1
    assert [s.flags & RST for s in c.recv()] == [RST]    # it sent within TCP_TIMEWAIT_LEN


def test_probes_answered_with_a_shut_window_back_off_no_further_than_tcp_retries2() -> None:
    """tcp_send_probe0: icsk_backoff grows only while under tcp_retries2, so a
    peer that answers every probe (resetting probes_out: RFC 1122 4.2.2.17,
    probe for as long as the receiver answers) is probed every rto << 3 here,
    not at intervals doubling up to tcp_rto_max."""
    c = _shut_window(Settings(tcp_retries2=3))
    rto = c.sk.rto
    times = []
    while len(times) < 7:
        c.host.advance(c.host.now + 0.25)
        for s in c.recv():
            if s.flags == ACK and not s.payload:
                times.append(c.host.now)
                c.send(window=0)             # the answer: still shut
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(times)]
    assert gaps == [2 * rto, 4 * rto, 8 * rto, 8 * rto, 8 * rto, 8 * rto]
    assert c.sk.state != TCP_CLOSE
