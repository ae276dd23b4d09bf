"""The device queue's answer is a return value (core/qdisc.py, NET_XMIT_*).

Linux's shape, rule by rule on the virtual clock: dev_queue_xmit answers
NET_XMIT_SUCCESS, NET_XMIT_DROP or NET_XMIT_CN; neigh_output,
ip_finish_output2 and ip_local_out hand that answer up to ip_queue_xmit /
ip_send_skb, and the sender acts on the value it got: udp_send_skb
(net_xmit_errno: ENOBUFS with IP_RECVERR for a drop, nothing for a
congestion notification), __tcp_transmit_skb (tcp_enter_cwr for any
positive status, whatever the segment, then net_xmit_eval: a CN'd segment
was sent, a dropped one was not), ip_do_fragment (a refused fragment ends
its datagram).  A frame the sender's output triggers but that is not the
sender's (the ARP solicitation) answers nobody.  tcp_retransmit_timer counts
a refused SYN retransmission (tcp_update_rto_stats) and tcp_write_timeout
gives up on the SYN by that count.  The test plays the driver
(``Pair.netif``, tests/test_qdisc_rules.py) and reads the link with scapy.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from test_qdisc_rules import B6, B, Pair

from tcpio.core.in_h import AF_INET, AF_INET6, IPPROTO_UDP
from tcpio.core.qdisc import NET_XMIT_CN, NET_XMIT_DROP, NET_XMIT_SUCCESS, Qdisc
from tcpio.core.tcp.tcp_states import TCP_CA_CWR, TCP_CLOSE, TCP_ESTABLISHED, TCP_SYN_SENT
from tcpio.core.udp import IP_RECVERR, IPV6_RECVERR


class MarkingQdisc(Qdisc):
    """A qdisc that takes every frame but answers NET_XMIT_CN, a congestion
    notification: this frame is queued, but the queue is dropping others
    (or soon will), so senders should slow down (sch_red, sch_sfq...)."""

    def enqueue(self, frame: bytes | bytearray) -> int:
        self.backlog.append(frame)
        return NET_XMIT_CN


def marking_pair() -> Pair:
    p = Pair()
    p.a.qdiscs[1] = MarkingQdisc(1)
    p.netif = p.a.attach_netif(1)                   # the driver's handle on the new qdisc
    return p


def tcp_pair(p: Pair, family: int) -> tuple[Any, Any]:
    """An established connection a -> b:80 over ``family`` (Pair.tcp_pair's,
    or its IPv6 twin: the segments then take ip6_queue_xmit_tcp)."""
    if family == AF_INET:
        return p.tcp_pair()
    ls = p.b.tcp.socket(AF_INET6)
    ls.bind(0, 80)
    ls.listen(4)
    sk = p.a.tcp.socket(AF_INET6)
    with pytest.raises(BlockingIOError):
        sk.connect(B6, 80)
    p.net.run_until(lambda: sk.state == TCP_ESTABLISHED)
    p.net.run_for(0.01)
    return sk, ls.accept()


def refusing(p: Pair) -> None:
    """The driver stops a's queue, which then takes nothing (txqueuelen 0)."""
    p.a.set_txqueuelen("eth0", 0)
    p.netif.stop()


# ----- the status up the output path ----------------------------------------------------

def test_ip_output_and_ip6_output_return_the_queues_answer() -> None:
    p = Pair(txqueuelen=1)
    p.netif.stop()
    dgram = b"\x00\x01\x00\x09\x00\x0a\x00\x00ab"       # a UDP header and two bytes
    assert p.a.ip_output(IPPROTO_UDP, None, B, dgram) == NET_XMIT_SUCCESS    # the one place
    assert p.a.ip_output(IPPROTO_UDP, None, B, dgram) == NET_XMIT_DROP
    assert p.a.ip6_output(IPPROTO_UDP, None, B6, dgram) == NET_XMIT_DROP
    assert p.a.qdisc_drops == 2                           # the statistic still counts


def test_a_refused_fragment_ends_its_datagram() -> None:
    """ip_do_fragment: "err = output(net, sk, skb2); if (err) goto fail":
    the fragments after a refused one are not offered (a datagram missing
    one cannot be reassembled), FragFails instead of FragOKs, and the
    sender hears the error (ENOBUFS with IP_RECVERR)."""
    p = Pair(txqueuelen=1)
    sk = p.a.udp.socket()
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    p.netif.stop()
    with pytest.raises(OSError) as e:
        sk.sendto(b"f" * 4000, B, 9)                      # three fragments at MTU 1500
    assert e.value.errno == errno.ENOBUFS
    m = p.a.mib
    assert p.a.qdiscs[1].drops == 1                       # the third was never offered
    assert (m["FragCreates"], m["FragFails"], m["FragOKs"]) == (1, 1, 0)
    assert (m["OutDiscards"], m["UdpSndbufErrors"], m["UdpOutDatagrams"]) == (1, 1, 0)


def test_a_refused_ipv6_fragment_ends_its_datagram() -> None:
    """ip6_fragment: the same rule and counters for IPv6 (IPV6_RECVERR)."""
    p = Pair(txqueuelen=1)
    sk = p.a.udp.socket(socket.AF_INET6)
    sk.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    p.netif.stop()
    with pytest.raises(OSError) as e:
        sk.sendto(b"f" * 4000, B6, 9)
    assert e.value.errno == errno.ENOBUFS
    m = p.a.mib
    assert p.a.qdiscs[1].drops == 1
    assert (m["Ip6FragCreates"], m["Ip6FragFails"], m["Ip6FragOKs"]) == (1, 1, 0)
    assert (m["Ip6OutDiscards"], m["Udp6SndbufErrors"], m["Udp6OutDatagrams"]) == (1, 1, 0)


# ----- UDP: net_xmit_errno ------------------------------------------------------------------

def test_udp_hears_enobufs_from_its_own_datagrams_status() -> None:
    """udp_send_skb: the status of this datagram decides, nothing else: a
    drop is ENOBUFS (IP_RECVERR), the next datagram after the wake is sent."""
    p = Pair()
    refusing(p)
    sk = p.a.udp.socket()
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    with pytest.raises(OSError) as e:
        sk.sendto(b"no", B, 9)
    assert e.value.errno == errno.ENOBUFS
    p.netif.wake()
    assert sk.sendto(b"yes", B, 9) == 3
    p.net.run_for(0.1)
    assert [bytes(IP(f)[UDP].payload) for f in p.sent()] == [b"yes"]


def test_udp_with_a_congestion_notification_is_sent_without_error() -> None:
    """net_xmit_errno(NET_XMIT_CN) is 0: the datagram was queued, so the
    send succeeds even with IP_RECVERR and counts OutDatagrams, not
    OutDiscards or SndbufErrors."""
    p = marking_pair()
    p.netif.stop()
    sk = p.a.udp.socket()
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    assert sk.sendto(b"cn", B, 9) == 2
    m = p.a.mib
    assert (m["UdpOutDatagrams"], m["OutDiscards"], m["UdpSndbufErrors"]) == (1, 0, 0)
    assert p.a.qdisc_drops == 0                           # a notification is no drop
    p.netif.wake()
    p.net.run_for(0.1)
    assert p.rx.recvfrom()[0] == b"cn"


# ----- the neighbour's solicitation is not the sender's frame --------------------------------

def test_an_arp_request_the_queue_refuses_does_not_fail_the_datagram_waiting_for_it() -> None:
    """neigh_resolve_output queues the datagram in the INCOMPLETE entry and
    returns 0; the ARP request it sends is refused by the full queue
    (counted), and arp_xmit's answer goes to nobody.  The sendto succeeds
    with IP_RECVERR; the next request (retrans_time later) resolves the
    neighbour and the datagram goes."""
    p = Pair(kind="ether")
    p.net.run_for(0.5)                                    # the links' announcements are over
    assert p.a.arp.lookup(1, B) is None
    refusing(p)
    sk = p.a.udp.socket()
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    assert sk.sendto(b"waits", B, 9) == 5
    assert p.a.qdisc_drops == 1                           # the ARP request, not the datagram
    assert p.a.mib["UdpOutDatagrams"] == 1 and p.a.mib["OutDiscards"] == 0
    p.a.set_txqueuelen("eth0", 10)
    p.netif.wake()
    p.net.run_for(2.0)
    assert p.rx.recvfrom()[0] == b"waits"
    frames = [Ether(f) for f in p.sent()]
    requests = [f for f in frames if ARP in f and f[ARP].pdst == "10.0.0.2"]
    assert len(requests) == 1                             # the second one: the first was refused
    assert [f[Raw].load for f in frames if UDP in f] == [b"waits"]


def test_a_stale_neighbours_probe_refused_after_the_datagram_leaves_it_sent() -> None:
    """A used STALE entry: the datagram goes first (taking the queue's last
    place), then the unicast probe, which is refused: the sender hears its
    own frame's NET_XMIT_SUCCESS, and the peer gets the datagram once."""
    p = Pair(kind="ether", txqueuelen=1)
    sk = p.a.udp.socket()
    sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    sk.sendto(b"first", B, 9)                             # resolves b
    p.net.run_for(1.0)
    assert p.rx.recvfrom()[0] == b"first"
    neigh = p.a.arp.lookup(1, B)
    assert neigh is not None
    p.a.arp.set_stale(neigh, p.a.now)
    before = len(p.sent())
    p.netif.stop()
    assert sk.sendto(b"second", B, 9) == 6
    q = p.a.qdiscs[1]
    assert q.stats()["backlog"] == 1 and q.drops == 1     # the datagram in, the probe out
    p.netif.wake()
    p.net.run_for(0.5)
    assert p.rx.recvfrom()[0] == b"second" and p.rx.recvfrom() is None
    assert Ether(p.sent()[before])[Raw].load == b"second"


# ----- TCP: tcp_enter_cwr on any positive status, then net_xmit_eval --------------------------

@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_a_pure_ack_the_queue_refuses_enters_cwr(family: int) -> None:
    """__tcp_transmit_skb calls tcp_enter_cwr for err > 0 whatever the skb:
    __tcp_send_ack goes through it, so a refused pure ACK is a local
    congestion signal too (ssthresh once, CWR until high_seq).  The ACK's
    bookkeeping stands (tcp_event_ack_sent runs before ip_queue_xmit)."""
    p = Pair(txqueuelen=1)
    sk, child = tcp_pair(p, family)
    cwnd0 = sk.snd_cwnd
    p.netif.stop()
    p.a.udp.socket().sendto(b"fill", B, 9)                # the queue's one place
    drops = p.a.qdisc_drops
    assert child.sendmsg(b"d" * 100) == 100
    p.net.run_for(0.001)                                  # a quick-ACKs it: refused
    assert p.a.qdisc_drops == drops + 1
    assert sk.ca_state == TCP_CA_CWR and sk.high_seq == sk.snd_nxt
    assert sk.snd_ssthresh == cwnd0 * 717 // 1024          # CUBIC's beta
    assert not sk.ack_pending
    assert sk.recvmsg(1000) == b"d" * 100                  # the data was received


def test_a_data_segment_with_a_congestion_notification_is_sent_and_enters_cwr() -> None:
    """NET_XMIT_CN: tcp_enter_cwr, but net_xmit_eval makes it no error, so
    the segment counts as sent (in flight, never TCPRetransFail) and the
    send loop goes on to the next one."""
    p = marking_pair()
    sk, child = p.tcp_pair()
    cwnd0 = sk.snd_cwnd
    mss = sk.mss_cache
    p.netif.stop()
    assert sk.sendmsg(b"c" * (3 * mss)) == 3 * mss
    assert sk.packets_out == 3 and sk.snd_nxt == (sk.snd_una + 3 * mss) & 0xFFFFFFFF
    assert sk.ca_state == TCP_CA_CWR and sk.snd_ssthresh == cwnd0 * 717 // 1024
    assert p.a.qdiscs[1].stats()["backlog"] == 3 and p.a.qdisc_drops == 0
    p.netif.wake()
    assert p.receive(child, 3 * mss) == b"c" * (3 * mss)
    assert p.a.mib["RetransSegs"] == 0 and p.a.mib["TCPRetransFail"] == 0


# ----- SYN: tcp_update_rto_stats + tcp_write_timeout ----------------------------------------

def _syn_attempts(p: Pair) -> int:
    return sum(1 for f in p.sent() if TCP in IP(f) and IP(f)[TCP].flags == "S")


@pytest.mark.parametrize(("family", "syn_retries"),
                         [(AF_INET, 6), (AF_INET, 2), (AF_INET6, 6)],
                         ids=["ipv4-6", "ipv4-2", "ipv6-6"])
def test_syn_retransmissions_the_queue_refuses_end_in_etimedout(family: int,
                                                                syn_retries: int) -> None:
    """tcp_retransmit_timer counts every attempt (tcp_update_rto_stats, before
    tcp_retransmit_skb) and retries a refused one after
    TCP_RESOURCE_PROBE_INTERVAL without backoff; tcp_write_timeout gives up
    on a SYN when icsk_retransmits reaches tcp_syn_retries.  So a SYN the
    queue keeps refusing is tried as often as one the network keeps losing
    (the oracle below: the same host with a lossy link), 0.5 s apart after
    the first RTO, and the connecting user gets ETIMEDOUT."""
    p = Pair()
    p.a.settings.tcp_syn_retries = syn_retries
    refusing(p)
    dst = B if family == AF_INET else B6
    sk = p.a.tcp.socket(family)
    with pytest.raises(BlockingIOError):
        sk.connect(dst, 80)
    t0 = p.net.now
    assert p.net.run_until(lambda: sk.state == TCP_CLOSE, timeout=30)
    assert p.net.now - t0 == pytest.approx(1.0 + 0.5 * syn_retries)
    assert p.a.qdiscs[1].drops == syn_retries + 1         # the SYN and every retry, refused
    mib = p.a.mib
    assert mib["TCPTimeouts"] == syn_retries + 1 and mib["TCPAbortOnTimeout"] == 1
    assert sk.rto == 1.0                                  # never backed off
    with pytest.raises(OSError) as e:
        sk.connect(dst, 80)
    assert e.value.errno == errno.ETIMEDOUT

    lossy = Pair()
    lossy.a.settings.tcp_syn_retries = syn_retries
    lossy.link.drop = lambda sender, frame: sender is lossy.a
    sk2 = lossy.a.tcp.socket(family)
    with pytest.raises(BlockingIOError):
        sk2.connect(dst, 80)
    assert lossy.net.run_until(lambda: sk2.state == TCP_CLOSE, timeout=600)
    assert lossy.a.mib["TCPAbortOnTimeout"] == 1
    assert lossy.a.mib["TCPTimeouts"] == mib["TCPTimeouts"]
    assert lossy.a.mib["OutSegs"] == mib["OutSegs"] == syn_retries + 1


def test_a_syn_refused_once_is_sent_again_and_connects() -> None:
    """The refusal is local congestion, not a lost SYN: once the driver
    wakes the queue the retry half a second later goes and connects."""
    p = Pair()
    refusing(p)
    sk = p.a.tcp.socket()
    ls = p.b.tcp.socket()
    ls.bind(0, 80)
    ls.listen(1)
    with pytest.raises(BlockingIOError):
        sk.connect(B, 80)
    t0 = p.net.now
    p.net.run_for(1.2)                                    # the SYN and the first retry refused
    assert sk.state == TCP_SYN_SENT and p.a.qdiscs[1].drops == 2
    p.a.set_txqueuelen("eth0", 10)
    p.netif.wake()
    assert p.net.run_until(lambda: sk.state != TCP_SYN_SENT, timeout=1.0)
    assert p.net.now - t0 == pytest.approx(1.5)           # the retry after the wake
    p.net.run_for(0.01)
    assert sk.state == TCP_ESTABLISHED and ls.accept() is not None
    assert _syn_attempts(p) == 1                          # only the one that went


# ----- keepalive: tcp_keepalive_timer on tcp_write_wakeup's error ----------------------------

def test_a_keepalive_probe_the_queue_refuses_is_not_counted_and_retried_soon() -> None:
    """tcp_keepalive_timer: "if (tcp_write_wakeup(sk, ...) <= 0)" counts the
    probe and waits keepintvl; a probe lost to local congestion (> 0) is
    not counted and is tried again after TCP_RESOURCE_PROBE_INTERVAL.  So a
    queue that refuses for longer than keepcnt * keepintvl does not kill
    the connection, and the first probe after the wake is answered."""
    p = Pair()
    sk, _ = p.tcp_pair()
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
    refusing(p)
    p.net.run_for(20.0)                                   # keepidle, then 10 s of refusals
    assert sk.state == TCP_ESTABLISHED and sk.probes_out == 0
    assert p.a.qdiscs[1].drops == 20 or p.a.qdiscs[1].drops == 21   # every 0.5 s
    assert p.a.mib["TCPKeepAliveTimeouts"] == 0
    p.netif.wake()
    p.a.set_txqueuelen("eth0", 10)
    p.net.run_for(1.0)                                    # the next try goes, b answers
    assert sk.state == TCP_ESTABLISHED and sk.probes_out == 0
    sent = [IP(f)[TCP] for f in p.sent() if TCP in IP(f)]
    assert sent and sent[-1].flags == "A" and sent[-1].seq == (sk.snd_una - 1) & 0xFFFFFFFF
