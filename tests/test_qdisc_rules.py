"""The per-interface transmit queue (core/qdisc.py; issue 18, docs/internals.md
"Interface state").

Linux's model, checked rule by rule on the virtual clock: while the driver
has stopped its queue (netif_stop_queue) frames wait in the qdisc, at most
txqueuelen of them (pfifo_fast); beyond, dev_queue_xmit drops the frame
(NET_XMIT_DROP) and udp_send_skb reports ENOBUFS only to a socket with
IP_RECVERR / IPV6_RECVERR, counting OutDiscards and SndbufErrors (and never
OutDatagrams) either way; netif_wake_queue sends the backlog in order.  A
TCP segment the qdisc refuses is no loss: TCP enters CWR and sends it later
(__tcp_transmit_skb).  The test plays the driver (``host.attach_netif`` is what a device
gets); what reaches the link is read back with scapy.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from tcpio.core.addr import ip6_aton, ip_aton
from tcpio.core.in_h import AF_INET6
from tcpio.core.qdisc import DEFAULT_TX_QUEUE_LEN
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_CA_CWR, TCP_CA_OPEN, TCP_ESTABLISHED
from tcpio.core.udp import IP_RECVERR, IPV6_RECVERR

B = ip_aton("10.0.0.2")
B6 = ip6_aton("fd00::2")


class Pair:
    """a (10.0.0.1, fd00::1) --ip link-- b (10.0.0.2, fd00::2); a's queue held by the test."""

    def __init__(self, txqueuelen: int | None = None, kind: str = "ip") -> None:
        self.net = VirtualNetwork(seed=3)
        self.a = self.net.host("a")
        self.b = self.net.host("b")
        self.link = self.net.link(self.a, self.b, "10.0.0.1/24", "10.0.0.2/24", kind=kind)
        self.a.add_address6(1, ip6_aton("fd00::1"), 64, nodad=True)
        self.b.add_address6(1, B6, 64, nodad=True)
        self.netif = self.a.attach_netif(1)         # the test is a's driver
        if txqueuelen is not None:
            self.a.set_txqueuelen("eth0", txqueuelen)
        self.rx = self.b.udp.socket()
        self.rx.bind(0, 9)
        self.rx6 = self.b.udp.socket(AF_INET6)
        self.rx6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.rx6.bind(0, 9)

    def sent(self) -> list[bytes]:
        return self.link.frames_from(self.a)

    def tcp_pair(self, rcvbuf: int | None = None) -> tuple[Any, Any]:
        """An established connection a -> b:80: (a's sock, b's accepted child,
        with SO_RCVBUF ``rcvbuf`` when given)."""
        ls = self.b.tcp.socket()
        if rcvbuf is not None:
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        ls.bind(0, 80)
        ls.listen(4)
        sk = self.a.tcp.socket()
        with pytest.raises(BlockingIOError):
            sk.connect(B, 80)
        self.net.run_until(lambda: sk.state == TCP_ESTABLISHED)
        self.net.run_for(0.01)
        return sk, ls.accept()

    def receive(self, child: Any, n: int, timeout: float = 5) -> bytes:
        """What ``child`` reads until ``n`` bytes came (or ``timeout``)."""
        got = bytearray()

        def drain() -> bool:
            got.extend(child.recvmsg(1 << 20))
            return len(got) >= n

        self.net.run_until(drain, timeout=timeout)
        return bytes(got)


def test_the_default_queue_is_1000_frames_and_txqueuelen_sets_it_by_name() -> None:
    p = Pair()
    assert p.a.qdiscs[1].limit == DEFAULT_TX_QUEUE_LEN == 1000   # ether_setup / pfifo_fast
    p.a.set_txqueuelen("eth0", 7)
    assert p.a.qdiscs[1].limit == 7
    with pytest.raises(OSError) as e:
        p.a.set_txqueuelen("nope0", 7)
    assert e.value.errno == errno.ENODEV


def test_a_running_queue_holds_nothing() -> None:
    p = Pair(txqueuelen=2)
    sk = p.a.udp.socket()
    for i in range(10):
        assert sk.sendto(b"%d" % i, B, 9) == 1
    p.net.run_for(0.01)
    assert len(p.sent()) == 10 and p.a.qdisc_drops == 0
    assert p.a.mib["UdpOutDatagrams"] == 10


def test_udp_into_a_full_queue_is_silently_dropped_and_counted_as_linux() -> None:
    """udp_send_skb without IP_RECVERR: the send succeeds, the datagram is
    gone; OutDiscards (ip_send_skb) and SndbufErrors, not OutDatagrams."""
    p = Pair(txqueuelen=4)
    sk = p.a.udp.socket()
    p.netif.stop()
    results = [sk.sendto(b"d%d" % i, B, 9) for i in range(6)]
    assert results == [2] * 6                   # no error without IP_RECVERR
    p.net.run_for(0.1)
    assert p.sent() == []                       # the driver is stopped: nothing left
    m = p.a.mib
    assert (m["UdpOutDatagrams"], m["OutDiscards"], m["UdpSndbufErrors"]) == (4, 2, 2)
    assert p.a.qdisc_drops == 2 and p.a.qdiscs[1].stats()["backlog"] == 4
    p.netif.wake()                              # netif_wake_queue: the backlog, in order
    p.net.run_for(0.1)
    assert [bytes(IP(f)[UDP].payload) for f in p.sent()] == [b"d0", b"d1", b"d2", b"d3"]
    assert [p.rx.recvfrom()[0] for _ in range(4)] == [b"d0", b"d1", b"d2", b"d3"]
    assert p.rx.recvfrom() is None


def test_udp_with_ip_recverr_gets_enobufs() -> None:
    p = Pair(txqueuelen=1)
    sk = p.a.udp.socket()
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    p.netif.stop()
    assert sk.sendto(b"x", B, 9) == 1
    with pytest.raises(OSError) as e:
        sk.sendto(b"y", B, 9)
    assert e.value.errno == errno.ENOBUFS
    m = p.a.mib
    assert (m["UdpOutDatagrams"], m["OutDiscards"], m["UdpSndbufErrors"]) == (1, 1, 1)
    assert m["UdpOutErrors"] == 0               # not a routing failure


def test_udp_over_ipv6_uses_ipv6_recverr() -> None:
    """udp_v6_send_skb looks at IPV6_RECVERR, not IP_RECVERR."""
    p = Pair(txqueuelen=1)
    sk = p.a.udp.socket(AF_INET6)
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)          # the IPv4 flag: no effect here
    p.netif.stop()
    assert sk.sendto(b"x", B6, 9) == 1
    assert sk.sendto(b"y", B6, 9) == 1                       # dropped, silently
    sk.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    with pytest.raises(OSError) as e:
        sk.sendto(b"z", B6, 9)
    assert e.value.errno == errno.ENOBUFS
    m = p.a.mib
    assert (m["Udp6OutDatagrams"], m["Ip6OutDiscards"], m["Udp6SndbufErrors"]) == (1, 2, 2)
    p.netif.wake()
    p.net.run_for(0.1)
    (only,) = [IPv6(f) for f in p.sent()]
    assert bytes(only[UDP].payload) == b"x"


def test_frames_queued_before_the_stop_wait_too() -> None:
    """Frames the host had queued for the driver when it stopped (or that
    TCP's send loop appended itself) do not reach a stopped device: they
    join the qdisc.  They were admitted while the queue ran (dev_queue_xmit
    said NET_XMIT_SUCCESS, the sender heard no error), so none is dropped,
    even past txqueuelen, as Linux's requeued skbs are outside the limit."""
    p = Pair(txqueuelen=3)
    sk = p.a.udp.socket()
    for i in range(5):
        sk.sendto(b"e%d" % i, B, 9)             # in the host's output, not yet taken
    p.netif.stop()
    p.net.run_for(0.1)
    assert p.sent() == [] and p.a.qdisc_drops == 0
    assert p.a.qdiscs[1].stats()["backlog"] == 5
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    with pytest.raises(OSError) as e:           # but nothing more is admitted
        sk.sendto(b"late", B, 9)
    assert e.value.errno == errno.ENOBUFS
    p.netif.wake()
    p.net.run_for(0.1)
    assert [bytes(IP(f)[UDP].payload) for f in p.sent()] == [b"e%d" % i for i in range(5)]


def test_frames_a_compiled_path_appends_after_the_stop_are_bounded() -> None:
    """A frame appended to the host's transmit list (NetHost.tx_queue: the
    compiled ACK and SYN-ACK paths) after the driver stopped was never
    admitted: it meets the limit like any dev_queue_xmit then."""
    p = Pair(txqueuelen=3)
    sk = p.a.udp.socket()
    sk.sendto(b"before", B, 9)                  # admitted while the queue ran
    p.netif.stop()
    frame = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=9) / b"late")
    p.a.tx_queue().extend((1, frame) for _ in range(5))
    p.net.run_for(0.1)
    # the held frame counts towards the limit: two of the five fit
    assert p.a.qdiscs[1].stats()["backlog"] == 3 and p.a.qdisc_drops == 3
    p.netif.wake()
    p.net.run_for(0.1)
    assert [bytes(IP(f)[UDP].payload) for f in p.sent()] == [b"before"] + [b"late"] * 2


def test_a_tcp_segment_the_qdisc_refuses_enters_cwr_and_is_sent_later() -> None:
    """__tcp_transmit_skb hears NET_XMIT_DROP: tcp_enter_cwr (ssthresh from
    the CC module once, PRR down to it, no loss, no RTO), and tcp_write_xmit
    stops before tcp_event_new_data_sent, so the refused segment stays
    unsent and goes out on the ACKs after the driver wakes the queue."""
    p = Pair(txqueuelen=3)
    sk, child = p.tcp_pair()
    tp = sk
    cwnd0 = tp.snd_cwnd
    mss = tp.mss_cache
    data = bytes(range(256)) * 200                          # 51 200 bytes
    p.netif.stop()
    assert sk.sendmsg(data) == len(data)
    # the initial window meets the queue: three segments wait there, the
    # fourth is refused (each time sendmsg pushes) and not sent (snd_nxt
    # stays after the third)
    assert p.a.qdisc_drops >= 1 and p.a.qdiscs[1].stats()["backlog"] == 3
    assert tp.packets_out == 3 and tp.snd_nxt == (tp.snd_una + 3 * mss) & 0xFFFFFFFF
    assert tp.ca_state == TCP_CA_CWR and tp.high_seq == tp.snd_nxt
    assert tp.snd_ssthresh == cwnd0 * 717 // 1024          # CUBIC's beta, once
    assert tp.snd_cwnd == cwnd0                             # PRR lowers it on the ACKs
    p.net.run_for(0.05)
    p.netif.wake()
    got = bytearray()
    cwnds = []

    def drain() -> bool:
        got.extend(child.recvmsg(1 << 20))
        cwnds.append(tp.snd_cwnd)
        return len(got) >= len(data)

    assert p.net.run_until(drain, timeout=30)
    assert bytes(got) == data                               # every byte, in order
    mib = p.a.mib
    # no network loss was assumed: nothing retransmitted, no RTO, and the
    # window was reduced once (to ssthresh), never collapsed to one segment
    assert mib["RetransSegs"] == 0 and mib["TCPTimeouts"] == 0
    assert tp.snd_ssthresh == cwnd0 * 717 // 1024 and min(cwnds) >= tp.snd_ssthresh // 2
    assert tp.ca_state == TCP_CA_OPEN


def test_a_segment_the_queue_took_is_sent_even_if_the_arp_probe_after_it_is_dropped() -> None:
    """A sender hears only its own frame's answer: the neighbour's
    solicitation that its output triggers (a used STALE entry probed, or an
    unresolved one) goes out on its own, and Linux ignores arp_xmit's
    answer.  Here the segment takes the queue's last place and the ARP probe
    after it is dropped: TCP must not take that drop for its segment's (no
    CWR, the segment counted sent, the peer gets it once)."""
    p = Pair(txqueuelen=1, kind="ether")
    sk, child = p.tcp_pair()
    neigh = p.a.arp.lookup(1, B)
    assert neigh is not None and p.a.arp.delay_first_probe_time() == 0
    p.a.arp.set_stale(neigh, p.a.now)                       # probed when next used
    p.netif.stop()
    assert sk.sendmsg(b"q" * 100) == 100
    q = p.a.qdiscs[1]
    assert q.stats()["backlog"] == 1 and q.drops == 1       # the segment in, the probe out
    assert sk.ca_state == TCP_CA_OPEN and sk.packets_out == 1
    p.netif.wake()
    assert p.receive(child, 100) == b"q" * 100
    p.net.run_for(1.0)
    assert p.b.mib["DelayedACKLost"] == 0                   # no second copy came
    assert p.a.mib["RetransSegs"] == 0


def test_a_refused_segment_with_nothing_in_flight_waits_for_the_persist_timer() -> None:
    """Nothing in flight, so no ACK will send the refused segment: the
    persist timer does (tcp_check_probe_timer, then tcp_write_wakeup).
    While the queue still refuses, tcp_send_probe0 tries again every
    TCP_RESOURCE_PROBE_INTERVAL (0.5 s) with no backoff; once the driver
    wakes the queue, the next try sends the data and the rest follows."""
    p = Pair(txqueuelen=1)
    sk, child = p.tcp_pair()
    udp = p.a.udp.socket()
    p.netif.stop()
    udp.sendto(b"fill", B, 9)                               # the queue's one place
    data = bytes(range(256)) * 12                           # 3 072 bytes
    assert sk.sendmsg(data) == len(data)
    assert sk.packets_out == 0 and sk.snd_nxt == sk.snd_una  # nothing went
    assert sk.rtx_timer.pending                             # the persist timer
    drops = p.a.qdisc_drops
    p.net.run_for(1.5)                                      # first try, then 0.5 s apart
    tries = p.a.qdisc_drops - drops
    assert tries in (2, 3) and sk.backoff == 0 and sk.probes_out == tries
    assert sk.packets_out == 0
    p.netif.wake()
    got = p.receive(child, len(data))
    assert got == data
    assert p.a.mib["RetransSegs"] == 0 and p.a.mib["TCPTimeouts"] == 0


def test_a_zero_window_probe_the_queue_refuses_is_retried_without_backoff() -> None:
    """The peer's window is zero, so the persist timer sends a window probe
    (tcp_xmit_probe_skb), which returns tcp_transmit_skb's error:
    tcp_send_probe0 then retries after TCP_RESOURCE_PROBE_INTERVAL with no
    backoff, as for refused data.  After the wake the probes back off again."""
    p = Pair(txqueuelen=1)
    sk, _ = p.tcp_pair(rcvbuf=4096)                         # a window soon full, never read
    assert sk.sendmsg(b"z" * 40000) == 40000
    assert p.net.run_until(lambda: sk.snd_wnd == 0 and sk.packets_out == 0, timeout=10)
    assert sk.rtx_timer.pending and sk.backoff == 0         # the persist timer
    p.netif.stop()
    p.a.udp.socket().sendto(b"fill", B, 9)                  # the queue's one place
    drops = p.a.qdisc_drops
    p.net.run_for(3.0)                                      # first try, then 0.5 s apart
    tries = p.a.qdisc_drops - drops
    assert tries >= 5 and sk.backoff == 0 and sk.probes_out == tries
    p.netif.wake()
    p.net.run_for(3.0)                                      # probes go out, backing off
    assert p.a.qdisc_drops - drops == tries and sk.backoff >= 1


def test_an_rto_retransmission_the_queue_refuses_is_retried_without_backoff() -> None:
    """tcp_retransmit_timer: when tcp_retransmit_skb fails for local
    congestion the timer is re-armed at TCP_RESOURCE_PROBE_INTERVAL with no
    backoff; the segment is not marked retransmitted (TCPRetransFail counts
    the refusals).  The attempt itself counts (tcp_update_rto_stats comes
    before it), so the retry's tcp_enter_loss, in Loss with
    icsk_retransmits set, leaves ssthresh where the first one put it
    instead of reducing it again from the cwnd of 1.  After the wake it
    goes out."""
    p = Pair(txqueuelen=1)
    sk, child = p.tcp_pair()
    p.link.drop = lambda sender, frame: sender is p.a       # a's segment is lost
    data = b"r" * 1000
    assert sk.sendmsg(data) == len(data)
    p.net.run_for(0.001)
    p.link.drop = None
    p.netif.stop()
    p.a.udp.socket().sendto(b"fill", B, 9)                  # the queue's one place
    rto = sk.rto
    mib = p.a.mib
    # the loss probe (2 * srtt) comes first and is refused as well: no probe
    # is outstanding after it (tlp_high_seq unset)
    p.net.run_until(lambda: mib["TCPRetransFail"] == 1, timeout=rto)
    assert mib["TCPTimeouts"] == 0 and sk.tlp_high_seq is None
    cwnd0 = sk.snd_cwnd
    p.net.run_for(rto + 0.1)                                # the RTO: refused
    assert mib["TCPTimeouts"] == 1 and mib["TCPRetransFail"] == 2
    assert sk.retransmits == 1 and sk.retrans_out == 0 and sk.rto == rto
    assert sk.snd_ssthresh == cwnd0 * 717 // 1024           # CUBIC's beta, once
    p.net.run_for(0.5)                                      # TCP_RESOURCE_PROBE_INTERVAL
    assert mib["TCPTimeouts"] == 2 and mib["TCPRetransFail"] == 3 and sk.rto == rto
    # every attempt counts (tcp_update_rto_stats), refused or not
    assert sk.snd_ssthresh == cwnd0 * 717 // 1024 and sk.retransmits == 2
    p.netif.wake()
    got = p.receive(child, len(data))
    assert got == data and mib["TCPRetransFail"] == 3


def test_link_down_forgets_the_backlog() -> None:
    """dev_deactivate resets the qdisc: nothing waits for a link that is down."""
    p = Pair(txqueuelen=5)
    sk = p.a.udp.socket()
    p.netif.stop()
    for i in range(3):
        sk.sendto(b"f%d" % i, B, 9)
    assert p.a.qdiscs[1].stats()["backlog"] == 3
    p.a.set_link(1, False)
    assert p.a.qdiscs[1].stats()["backlog"] == 0
    p.a.set_link(1, True)
    p.netif.wake()
    p.net.run_for(0.1)
    assert p.sent() == []


def test_a_raw_socket_into_a_full_queue_as_raw_sendmsg() -> None:
    """raw_sendmsg: OutDiscards, ENOBUFS only with IP_RECVERR (no UDP counters)."""
    p = Pair(txqueuelen=1)
    raw = p.a.raw.socket(253)
    p.netif.stop()
    assert raw.sendto(b"r0", B) == 2
    assert raw.sendto(b"r1", B) == 2                        # dropped, silently
    raw.recverr = True
    with pytest.raises(OSError) as e:
        raw.sendto(b"r2", B)
    assert e.value.errno == errno.ENOBUFS
    assert p.a.mib["OutDiscards"] == 2 and p.a.mib["UdpSndbufErrors"] == 0
    p.netif.wake()
    p.net.run_for(0.1)
    (only,) = [IP(f) for f in p.sent()]
    assert only.proto == 253 and bytes(only.payload) == b"r0"
