"""ICMP errors about our TCP segments (Linux tcp_v4_err, tcp_req_err,
tcp_v4_mtu_reduced; RFC 1122 4.2.3.9, RFC 5461, RFC 5927).

A real Host on an IP link: the peer's segments and the ICMP errors come in as
whole datagrams built by scapy, so the host's own checks (quote length, path
MTU learning) run as they do in production.  The cases marked "Linux 6.18"
were checked against it with the same datagrams on a TUN device.
"""

from __future__ import annotations

import errno
import socket

import pytest
from scapy.layers.inet import ICMP, IP, TCP

from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CLOSE, TCP_ESTABLISHED, TCP_SYN_SENT

MY, PEER = "10.0.0.2", "10.0.0.1"
LPORT, RPORT = 80, 40000
PEER_ISS = 5000


class Wire:
    """A Host on an IP link, the peer played with scapy datagrams."""

    def __init__(self, settings: Settings | None = None, seed: int = 1) -> None:
        self.h = Host("h", seed=seed, settings=settings or Settings())
        self.h.debug = True
        self.h.add_interface("tun0", link="ip")
        self.h.add_address(1, ip_aton(MY), 24)
        self.now = 0.0
        self.h.take_output()

    def send(self, pkt) -> list:
        """One datagram from the peer in; what the host sent back (TCP layers)."""
        self.h.receive(1, bytes(IP(src=PEER, dst=MY) / pkt), self.now)
        return self.out()

    def out(self) -> list:
        return [IP(f)[TCP] for _, f in self.h.take_output() if IP(f).proto == 6]

    def icmp(self, type: int, code: int, quoted: TCP, mtu: int = 0) -> list:
        """An error about our segment ``quoted``: its IP header + 8 bytes."""
        inner = bytes(IP(src=MY, dst=PEER, flags="DF") / quoted)[:28]
        return self.send(ICMP(type=type, code=code, nexthopmtu=mtu) / inner)

    @property
    def mib(self):
        return self.h.mib


def _listening(settings: Settings | None = None):
    w = Wire(settings)
    ls = w.h.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    return w, ls


def _syn_recv():
    """A request sock: the peer's SYN got our SYN-ACK."""
    w, ls = _listening()
    [synack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="S", seq=PEER_ISS, window=8000))
    assert synack.flags == "SA"
    return w, ls, synack


def _established(timestamps: bool = False):
    w, ls = _listening()
    opts = [("MSS", 1460)] + ([("Timestamp", (100, 0))] if timestamps else [])
    [synack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="S", seq=PEER_ISS, window=8000,
                          options=opts))
    ack_opts = [("Timestamp", (101, dict(synack.options)["Timestamp"][0]))] if timestamps \
        else []
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=synack.seq + 1,
               window=8000, options=ack_opts))
    sk = ls.accept()
    assert sk is not None and sk.state == TCP_ESTABLISHED
    return w, sk, synack.seq + 1


def _connecting():
    w = Wire()
    sk = w.h.tcp.socket()
    with pytest.raises(BlockingIOError):
        sk.connect(ip_aton(PEER), RPORT)
    [syn] = w.out()
    assert sk.state == TCP_SYN_SENT
    return w, sk, syn


def _ours(sport: int, dport: int, seq: int, flags: str = "A") -> TCP:
    return TCP(sport=sport, dport=dport, seq=seq, flags=flags)


# --- no connection, TIME-WAIT ---------------------------------------------------------
def test_icmp_error_for_no_connection_counts_icmp_in_errors():
    """tcp_v4_err: no sock for the quoted tuple -> ICMP_MIB_INERRORS (Linux 6.18)."""
    w = Wire()
    assert w.icmp(3, 1, _ours(33333, 5555, 1)) == []
    assert w.mib["IcmpInErrors"] == 1


def test_icmp_error_for_a_time_wait_tuple_is_ignored():
    w, sk, _snd = _established()
    sk.close()
    [fin] = w.out()
    w.send(TCP(sport=RPORT, dport=LPORT, flags="FA", seq=PEER_ISS + 1, ack=fin.seq + 1,
               window=8000))
    assert sk.state == TCP_CLOSE
    w.icmp(3, 1, _ours(LPORT, RPORT, fin.seq + 1))
    assert (w.mib["IcmpInErrors"], w.mib["OutOfWindowIcmps"]) == (0, 0)
    assert [r.state for r in w.h.tcp.connections() if r.state == "TIME-WAIT"] == ["TIME-WAIT"]


# --- a request sock (tcp_req_err) ---------------------------------------------------
@pytest.mark.parametrize("type,code", [(3, 0), (3, 1), (11, 0), (12, 0)],
                         ids=["net-unreach", "host-unreach", "time-exceeded", "param-problem"])
def test_unreachable_peer_drops_the_request_silently(type, code):
    """tcp_req_err: net/host unreachable, time exceeded and parameter problem
    about our SYN-ACK drop the request, counted as a listen drop; nothing is
    sent and accept() never hears of it (Linux 6.18)."""
    w, ls, synack = _syn_recv()
    assert w.icmp(type, code, _ours(LPORT, RPORT, synack.seq, "SA")) == []
    assert len(ls.syn_queue) == 0 and w.mib["ListenDrops"] == 1
    # the request is gone: the third ACK now meets the listener
    [rst] = w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1,
                       ack=synack.seq + 1))
    assert (rst.flags, rst.seq) == ("R", synack.seq + 1)
    assert ls.accept() is None


@pytest.mark.parametrize("type,code", [(3, 3), (3, 4), (3, 13)],
                         ids=["port-unreach", "frag-needed", "admin-prohibited"])
def test_other_errors_leave_the_request_alone(type, code):
    """Only the 'cannot be reached' family aborts a request (Linux 6.18)."""
    w, ls, synack = _syn_recv()
    w.icmp(type, code, _ours(LPORT, RPORT, synack.seq, "SA"), mtu=1000)
    assert len(ls.syn_queue) == 1 and w.mib["ListenDrops"] == 0
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=synack.seq + 1))
    assert ls.accept() is not None


def test_icmp_quoting_another_sequence_than_our_synack_is_out_of_window():
    """tcp_req_err: the quoted sequence must be our ISN (Linux 6.18)."""
    w, ls, synack = _syn_recv()
    w.icmp(3, 1, _ours(LPORT, RPORT, synack.seq + 1, "SA"))
    assert len(ls.syn_queue) == 1
    assert (w.mib["OutOfWindowIcmps"], w.mib["ListenDrops"]) == (1, 0)


# --- SYN-SENT: hard errors --------------------------------------------------------
@pytest.mark.parametrize("type,code,err", [(3, 1, errno.EHOSTUNREACH),
                                           (3, 3, errno.ECONNREFUSED),
                                           (11, 0, errno.EHOSTUNREACH),
                                           (12, 0, errno.EPROTO)],
                         ids=["host-unreach", "port-unreach", "time-exceeded",
                              "param-problem"])
def test_error_about_our_syn_fails_the_connect(type, code, err):
    """tcp_v4_err: in SYN-SENT an error is hard: the connect fails with the
    converted errno and the attempt is counted as failed."""
    w, sk, syn = _connecting()
    w.icmp(type, code, _ours(syn.sport, RPORT, syn.seq, "S"))
    assert sk.state == TCP_CLOSE and sk.sk_err == err
    assert w.mib["AttemptFails"] == 1
    assert w.h.tcp.hashinfo.lookup_established(ip_aton(MY), syn.sport, ip_aton(PEER),
                                               RPORT) is None


def test_error_quoting_a_sequence_we_never_sent_is_ignored_in_syn_sent():
    """The quoted sequence must lie in [SND.UNA, SND.NXT], or the error may be
    forged (RFC 5927 4.1; Linux OutOfWindowIcmps)."""
    w, sk, syn = _connecting()
    w.icmp(3, 1, _ours(syn.sport, RPORT, syn.seq + 2, "S"))
    w.icmp(3, 1, _ours(syn.sport, RPORT, syn.seq - 1, "S"))
    assert sk.state == TCP_SYN_SENT and sk.sk_err == 0
    assert w.mib["OutOfWindowIcmps"] == 2


def test_error_quoting_snd_nxt_is_in_window():
    """between(seq, SND.UNA, SND.NXT) includes SND.NXT."""
    w, sk, syn = _connecting()
    w.icmp(3, 1, _ours(syn.sport, RPORT, syn.seq + 1, "S"))
    assert sk.state == TCP_CLOSE and sk.sk_err == errno.EHOSTUNREACH


# --- synchronized states: soft errors ---------------------------------------------
@pytest.mark.parametrize("type,code,err", [(3, 1, errno.EHOSTUNREACH),
                                           (3, 3, errno.ECONNREFUSED),
                                           (12, 0, errno.EPROTO)])
def test_error_in_established_is_soft(type, code, err):
    """RFC 5461 / Linux: an established connection keeps going; the error is
    kept as the soft error, reported only if the connection times out."""
    w, sk, snd = _established()
    w.icmp(type, code, _ours(LPORT, RPORT, snd))
    assert sk.state == TCP_ESTABLISHED
    assert (sk.sk_err, sk.sk_err_soft) == (0, err)


def test_error_quoting_old_data_is_ignored_in_established():
    w, sk, snd = _established()
    w.icmp(3, 3, _ours(LPORT, RPORT, snd - 1))
    assert sk.sk_err_soft == 0 and w.mib["OutOfWindowIcmps"] == 1


# --- fragmentation needed (tcp_v4_mtu_reduced) --------------------------------------
@pytest.mark.parametrize("timestamps,mtu,mss", [(False, 1000, 960), (True, 1000, 948),
                                                (False, 300, 512), (False, 0, 512)],
                         ids=["1000", "1000-ts", "below-floor", "old-router-zero"])
def test_fragmentation_needed_lowers_the_mss_to_the_learned_path_mtu(timestamps, mtu, mss):
    """RFC 1191 / Linux tcp_v4_mtu_reduced: new segments fit the path MTU the
    route learned, which the host floors at min_pmtu (552): an ICMP cannot
    make us send segments below 512 bytes."""
    w, sk, snd = _established(timestamps)
    w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=mtu)
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == mss
    assert sk.state == TCP_ESTABLISHED and sk.sk_err_soft == 0
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.sendmsg(b"d" * 2000)
    assert len(w.out()[0].payload) == mss


def test_fragmentation_needed_about_data_we_never_sent_is_ignored():
    w, sk, snd = _established()
    w.icmp(3, 4, _ours(LPORT, RPORT, snd + 1), mtu=1000)
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1460
    assert w.mib["OutOfWindowIcmps"] == 1


def test_fragmentation_needed_with_no_route_left_changes_nothing():
    """inet_csk_update_pmtu finds no route: the MSS stays."""
    w, sk, snd = _established()
    w.h.remove_route(ip_aton("10.0.0.0"), 24)
    w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=1000)
    assert sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) == 1460
    assert sk.state == TCP_ESTABLISHED


def _data_in_flight(w, sk, nbytes: int) -> list:
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.sendmsg(b"d" * nbytes)
    return w.out()


def test_fragmentation_needed_resends_what_no_longer_fits_cut_to_the_new_mss():
    """tcp_v4_mtu_reduced -> tcp_sync_mss, then tcp_simple_retransmit: every
    queued segment longer than the new MSS is lost (the router dropped it) and
    goes again at once, cut to the MSS (tcp_fragment); a segment that fits
    stays in flight; the congestion window is left alone (CA_Loss, no
    reduction: only the units changed)."""
    w, sk, snd = _established()
    out = _data_in_flight(w, sk, 3000)
    assert [len(s.payload) for s in out] == [1460, 1460, 80]
    cwnd = sk.snd_cwnd
    resent = w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=1000)
    assert [(s.seq - snd, len(s.payload)) for s in resent] == \
        [(0, 960), (960, 500), (1460, 960), (2420, 500)]
    assert sk.snd_cwnd == cwnd and sk.ca_state == 4          # TCP_CA_Loss
    assert w.mib["RetransSegs"] == 4
    # the peer ACKs it all: the queue is empty, nothing left over
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=snd + 3000,
               window=8000))
    assert sk.packets_out == 0 and sk.lost_out == 0 and sk.retrans_out == 0 and not sk.rtx


def test_fragmentation_needed_for_a_larger_mtu_resends_nothing():
    w, sk, snd = _established()
    _data_in_flight(w, sk, 1000)
    assert w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=1400) == []
    w.h.update_pmtu(ip_aton(PEER), 1500)
    assert w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=1500) == []
    assert w.mib["RetransSegs"] == 0


def test_a_larger_mtu_after_a_smaller_one_leaves_the_mss_down():
    """tcp_v4_mtu_reduced acts only when the path MTU went down; the host
    ignores an ICMP announcing more than it learned (__ip_rt_update_pmtu), so
    a later frag-needed for 1400 leaves the connection at 1000's MSS."""
    w, sk, snd = _established()
    _data_in_flight(w, sk, 100)
    w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=1000)
    assert sk.mss_cache == 960
    w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=1400)
    assert sk.mss_cache == 960 and w.h.route_lookup(ip_aton(PEER)).mtu == 1000
    sk.sendmsg(b"e" * 3000)
    assert {len(s.payload) for s in w.out()} == {960, 3000 - 3 * 960}


def test_the_mss_grows_back_when_the_learned_path_mtu_expires():
    """RFC 8201-style aging (RFC 1191 section 6.3): the learned PMTU is
    forgotten ip_rt_mtu_expires after it was learned; the connection's next
    segment (tcp_current_mss: the route's MTU is no longer the pmtu_cookie,
    tcp_sync_mss) is sized for the larger path again."""
    w = Wire(Settings(ip_rt_mtu_expires=30.0))
    ls = w.h.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    [synack] = w.send(TCP(sport=RPORT, dport=LPORT, flags="S", seq=PEER_ISS, window=65535,
                          options=[("MSS", 1460)]))
    snd = synack.seq + 1
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=snd, window=65535))
    sk = ls.accept()
    w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=1000)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.sendmsg(b"f" * 2000)
    assert [len(s.payload) for s in w.out()] == [960, 960, 80]
    w.now = 29.0
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=snd + 2000,
               window=65535))
    sk.sendmsg(b"g" * 2000)
    assert [len(s.payload) for s in w.out()] == [960, 960, 80]
    w.now = 31.0
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=snd + 4000,
               window=65535))
    sk.sendmsg(b"h" * 2000)
    assert [len(s.payload) for s in w.out()] == [1460, 540]
    assert sk.mss_cache == 1460


def test_every_tcp_segment_carries_df_and_ip_no_pmtu_disc_turns_it_off():
    """Linux sets DF on TCP (ip_no_pmtu_disc = 0: IP_PMTUDISC_WANT); with
    ip_no_pmtu_disc = 1 (IP_PMTUDISC_DONT) no segment of a socket has it and
    a fragmentation-needed leaves the MSS alone.  The RST for no socket comes
    from TCP's control socket, IP_PMTUDISC_DO whatever the sysctl
    (tcp_sk_init), so it keeps DF either way."""
    for setting, df in ((0, True), (1, False)):
        w = Wire(Settings(ip_no_pmtu_disc=setting))
        ls = w.h.tcp.socket()
        ls.bind(0, LPORT)
        ls.listen(8)
        frames = []
        w.h.receive(1, bytes(IP(src=PEER, dst=MY) / TCP(sport=RPORT, dport=LPORT, flags="S",
                                                       seq=PEER_ISS, options=[("MSS", 1460)])),
                    0.0)
        frames += w.h.take_output()
        synack = IP(frames[-1][1])[TCP]
        w.h.receive(1, bytes(IP(src=PEER, dst=MY) / TCP(sport=RPORT, dport=LPORT, flags="A",
                                                       seq=PEER_ISS + 1, ack=synack.seq + 1)),
                    0.0)
        sk = ls.accept()
        sk.sendmsg(b"x" * 3000)
        frames += w.h.take_output()
        w.h.receive(1, bytes(IP(src=PEER, dst=MY) / TCP(sport=RPORT, dport=9, flags="S")), 0.0)
        [(_, rst)] = w.h.take_output()                         # a RST from no socket
        assert IP(rst)[TCP].flags.R and IP(rst).flags.DF
        w.h.receive(1, bytes(IP(src=PEER, dst=MY) / TCP(sport=RPORT, dport=LPORT, flags="A",
                                                       seq=PEER_ISS + 1, ack=synack.seq + 1,
                                                       window=0)), 0.0)
        frames += w.h.take_output()
        ips = [IP(f) for _, f in frames]
        assert len(ips) >= 4 and {p.proto for p in ips} == {6}
        assert all(bool(p.flags.DF) == df for p in ips), [p.flags for p in ips]
        w.icmp(3, 4, _ours(LPORT, RPORT, synack.seq + 1), mtu=1000)
        assert sk.mss_cache == (960 if df else 1460)
        sk.sendmsg(b"y" * 3000)
        assert {len(IP(f)[TCP].payload) for _, f in w.h.take_output()} <= {960 if df else 1460}


def test_a_path_mtu_below_the_floor_locks_it_and_segments_leave_without_df():
    """__ip_rt_update_pmtu: a fragmentation-needed announcing less than
    ip_rt_min_pmtu (552) stores the floor and locks the route's MTU;
    ip_dont_fragment is then false for an IP_PMTUDISC_WANT socket, so its
    segments (512-byte payloads, sized for 552) leave without DF and a
    router before the small link may fragment them.  An IP_PMTUDISC_DO
    socket keeps DF; the control socket's RSTs keep it (tcp_sk_init); when
    the learned MTU expires, DF comes back with the full MSS."""
    w, sk, snd = _established()
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sk.sendmsg(b"d" * 1000)
    [(_, first)] = w.h.take_output()
    assert IP(first).flags.DF
    resent = w.icmp(3, 4, _ours(LPORT, RPORT, snd), mtu=300)
    assert w.h.route_lookup(ip_aton(PEER)).mtu == 552
    assert w.h.route_lookup(ip_aton(PEER)).mtu_locked
    assert sk.mss_cache == 512 and sk.sk_err_soft == 0
    assert [len(s.payload) for s in resent] == [512, 488]
    sk.sendmsg(b"z" * 1200)
    frames = [IP(f) for _, f in w.h.take_output()]
    assert [len(p[TCP].payload) for p in frames] == [512, 512, 176]
    assert not any(p.flags.DF for p in frames)
    # the control socket's RST to the same peer keeps DF
    w.h.receive(1, bytes(IP(src=PEER, dst=MY) / TCP(sport=RPORT, dport=9, flags="S")), w.now)
    [(_, rst)] = w.h.take_output()
    assert IP(rst)[TCP].flags.R and IP(rst).flags.DF
    # IP_PMTUDISC_DO: DF whatever the path
    sk.setsockopt(socket.IPPROTO_IP, 10, 2)                    # IP_MTU_DISCOVER, _DO
    sk.sendmsg(b"k" * 100)
    [(_, f)] = w.h.take_output()
    assert IP(f).flags.DF
    sk.setsockopt(socket.IPPROTO_IP, 10, 1)                    # back to _WANT
    sk.sendmsg(b"k" * 100)
    [(_, f)] = w.h.take_output()
    assert not IP(f).flags.DF
    # the peer ACKs everything; when the learned MTU expires the lock goes with it
    w.now = w.h.settings.ip_rt_mtu_expires + 1.0
    w.send(TCP(sport=RPORT, dport=LPORT, flags="A", seq=PEER_ISS + 1, ack=snd + 2400,
               window=8000))
    assert sk.packets_out == 0
    sk.sendmsg(b"m" * 1000)
    [(_, f)] = w.h.take_output()
    assert IP(f).flags.DF and len(IP(f)[TCP].payload) == 1000
    assert not w.h.route_lookup(ip_aton(PEER)).mtu_locked
