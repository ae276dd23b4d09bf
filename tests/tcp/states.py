"""A vocabulary for TCP tests: a socket in each RFC 9293 state, and ICMP errors
as a router sends them.

Built on tests/tcp/helpers.py (FakeHost, Peer, Conn): every function below
returns a ``Conn`` whose ``sk`` is in the named state against a hand-played
peer, so a test goes on with ``conn.send(...)`` / ``conn.recv()``:
``conn.snd`` is the peer's next sequence number, ``conn.rcv`` what the peer
expects next from us (its ACK field) and ``conn.iss`` our ISS as seen on the
wire (the sock's own ``iss`` is only kept for an active open).  The peer's
next ACK covers our SYN (as its SYN-ACK would) but not our FIN, which a test
acknowledges with ``conn.ack_all([conn.fin])`` when it wants to.

Each docstring lists the segments exchanged, ``>`` from us and ``<`` from
the peer, with ``I`` our ISS and ``P`` = PEER_ISS the peer's.  The peer
offers no TCP options, so a synchronized connection uses 536-byte segments
(TCP_MSS_DEFAULT), no timestamps and unscaled windows.  No segment is left
unread: ``conn.recv()`` after a fixture returns only what the test's own
actions caused.

tests/tcp/test_state_fixtures.py checks each fixture's state and sequence
variables (SND.UNA, SND.NXT, RCV.NXT, ...), so a test may rely on them.

The ICMP helpers build the IP datagram a router sends about one of our
segments (RFC 792: our IP header and the first 8 bytes of the segment are
quoted), and ``deliver_icmp`` feeds it to a FakeHost through the host's own
ICMP input (``tcpio.core.icmp.IcmpProto.rcv``: checksum, quote checks,
icmp_err_convert), so TCP sees exactly what ``Host`` would hand it.  The
same datagram can be given to a real ``Host`` on an IP link
(``host.receive(ifindex, datagram, now)``).
"""

from __future__ import annotations

import socket
from typing import Any

from tcpio._fast import load_pure
from tcpio.core.icmp import IcmpProto
from tcpio.core.icmp_h import (
    ICMP_DEST_UNREACH,
    ICMP_FRAG_NEEDED,
    ICMP_PORT_UNREACH,
    ICMP_TIME_EXCEEDED,
)
from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
)

from .helpers import (
    ACK,
    FIN,
    LOCAL,
    PEER_ISS,
    REMOTE,
    RPORT,
    SYN,
    Conn,
    FakeHost,
    Peer,
    Seg,
    passive_open,
)

wire = load_pure("wire")

MASK = 0xFFFFFFFF


def _end(seg: Seg) -> int:
    """The sequence number after ``seg`` (SYN and FIN count one each)."""
    return (seg.seq + len(seg.payload) + (1 if seg.flags & (SYN | FIN) else 0)) & MASK


def _our_fin(conn: Conn, state: int) -> Conn:
    """We shut down the sending side: our FIN goes out (``conn.fin``), not
    yet acknowledged, and the sock is in ``state``."""
    conn.sk.shutdown(socket.SHUT_WR)
    fin = conn.peer.recv_one()
    assert fin.key() == (FIN | ACK, conn.rcv, conn.snd, b"")
    assert conn.sk.state == state
    conn.fin = fin
    return conn


def _their_fin(conn: Conn, our_seq: int, delayed: bool = False) -> Conn:
    """The peer's FIN, which we acknowledge from ``our_seq``: at once, or
    (``delayed``: entering CLOSE-WAIT, Linux's tcp_fin pingpong mode) when
    the delayed-ACK timer fires."""
    conn.send(flags=FIN | ACK)
    if delayed:
        assert conn.recv() == []
        host = conn.host
        host.advance(host.now + host.settings.tcp_delack_min)
    assert [s.key() for s in conn.recv()] == [(ACK, our_seq, conn.snd, b"")]
    return conn


# --- a socket in each state -------------------------------------------------------------

def syn_sent(settings: Settings | None = None) -> Conn:
    """SYN-SENT (RFC 9293 3.5, active open): the peer has not answered yet.

        > SYN seq=I

    ``conn.syn`` is our SYN; ``conn.rcv`` = I+1, ``conn.snd`` = P (the peer's
    SYN would carry it).
    """
    host = FakeHost(settings=settings)
    peer = Peer(host)
    sk = host.tcp.socket()
    try:
        sk.connect(REMOTE, RPORT)
    except BlockingIOError:
        pass
    syn = peer.recv_one()
    assert syn.flags == SYN and sk.state == TCP_SYN_SENT
    peer.lport = syn.sport
    conn = Conn(host, peer, sk, PEER_ISS, _end(syn))
    conn.syn = syn
    conn.iss = syn.seq
    return conn


def syn_received(settings: Settings | None = None) -> Conn:
    """SYN-RECEIVED by simultaneous open (RFC 9293 figure 8): a full socket in
    SYN-RECEIVED.  (A listener's passive open keeps a request sock instead,
    Linux's TCP_NEW_SYN_RECV; see test_request_sock_rules.py.)

        > SYN seq=I
        < SYN seq=P                 (crossed ours)
        > SYN,ACK seq=I ack=P+1

    ``conn.syn`` and ``conn.synack`` are our two segments; our SYN is not
    acknowledged yet, so ``conn.rcv`` = I+1 and SND.UNA = I.
    """
    conn = syn_sent(settings)
    conn.send(flags=SYN, ack=0)
    synack = conn.peer.recv_one()
    assert (synack.flags, synack.seq, synack.ack) == (SYN | ACK, conn.syn.seq, conn.snd)
    assert conn.sk.state == TCP_SYN_RECV
    conn.synack = synack
    return conn


def established(settings: Settings | None = None, active: bool = False) -> Conn:
    """ESTABLISHED, by passive open (the default) or active open.

    passive (a listener on LPORT; ``conn.listener``, ``conn.synack``):
        < SYN seq=P
        > SYN,ACK seq=I ack=P+1
        < ACK seq=P+1 ack=I+1

    active (``conn.syn``, ``conn.handshake_ack``):
        > SYN seq=I
        < SYN,ACK seq=P ack=I+1
        > ACK seq=I+1 ack=P+1
    """
    if not active:
        conn = passive_open(settings)
        conn.iss = conn.synack.seq
    else:
        conn = syn_sent(settings)
        conn.send(flags=SYN | ACK)
        conn.handshake_ack = conn.recv()
        assert [s.key() for s in conn.handshake_ack] == [(ACK, conn.rcv, conn.snd, b"")]
    assert conn.sk.state == TCP_ESTABLISHED
    return conn


def fin_wait_1(settings: Settings | None = None) -> Conn:
    """FIN-WAIT-1: ESTABLISHED, then we shut down the sending side.

        > FIN,ACK seq=I+1 ack=P+1   (not acknowledged yet)

    ``conn.fin`` is our FIN; ``conn.rcv`` stays I+1 (the peer has not
    acknowledged the FIN), SND.NXT = I+2.  shutdown(SHUT_WR), not close(),
    so the socket stays the user's (not an orphan).
    """
    return _our_fin(established(settings), TCP_FIN_WAIT1)


def fin_wait_2(settings: Settings | None = None) -> Conn:
    """FIN-WAIT-2: FIN-WAIT-1, then the peer acknowledges our FIN.

        > FIN,ACK seq=I+1 ack=P+1
        < ACK seq=P+1 ack=I+2       (nothing sent back)
    """
    conn = fin_wait_1(settings)
    conn.ack_all([conn.fin])
    conn.send()
    assert conn.recv() == []
    assert conn.sk.state == TCP_FIN_WAIT2
    return conn


def close_wait(settings: Settings | None = None) -> Conn:
    """CLOSE-WAIT: ESTABLISHED, then the peer's FIN, which we acknowledge
    when the delayed-ACK timer fires (tcp_fin enters pingpong mode).

        < FIN,ACK seq=P+1 ack=I+1
        > ACK seq=I+1 ack=P+2       (tcp_delack_min later)
    """
    conn = established(settings)
    _their_fin(conn, conn.rcv, delayed=True)
    assert conn.sk.state == TCP_CLOSE_WAIT
    return conn


def closing(settings: Settings | None = None) -> Conn:
    """CLOSING (simultaneous close): our FIN and the peer's crossed.

        > FIN,ACK seq=I+1 ack=P+1
        < FIN,ACK seq=P+1 ack=I+1   (sent before ours arrived)
        > ACK seq=I+2 ack=P+2

    Our FIN is still unacknowledged: ``conn.rcv`` = I+1, SND.UNA = I+1.
    """
    conn = fin_wait_1(settings)
    _their_fin(conn, _end(conn.fin))
    assert conn.sk.state == TCP_CLOSING
    return conn


def last_ack(settings: Settings | None = None) -> Conn:
    """LAST-ACK: CLOSE-WAIT, then we shut down the sending side.

        < FIN,ACK seq=P+1 ack=I+1
        > ACK seq=I+1 ack=P+2
        > FIN,ACK seq=I+1 ack=P+2   (not acknowledged yet)

    ``conn.fin`` is our FIN.
    """
    return _our_fin(close_wait(settings), TCP_LAST_ACK)


def time_wait(settings: Settings | None = None) -> Conn:
    """TIME-WAIT: FIN-WAIT-2, then the peer's FIN, which we acknowledge.

        > FIN,ACK seq=I+1 ack=P+1
        < ACK seq=P+1 ack=I+2
        < FIN,ACK seq=P+1 ack=I+2
        > ACK seq=I+2 ack=P+2

    As in Linux (tcp_time_wait), the full socket is done (``conn.sk`` is
    CLOSE) and a time-wait sock holds the connection in the established
    hash: ``conn.tw``, whose ``state`` is TIME-WAIT.  It lasts
    tcp_tw_timeout from now (t = 0).
    """
    conn = fin_wait_2(settings)
    _their_fin(conn, conn.rcv)
    sk = conn.sk
    tw = conn.host.tcp.hashinfo.lookup_established(sk.laddr, sk.lport, sk.raddr, sk.rport)
    assert sk.state == TCP_CLOSE and tw is not None and tw.state == TCP_TIME_WAIT
    conn.tw = tw
    return conn


# Every fixture by its RFC 9293 state name, in the order of the state diagram.
STATES = {
    "SYN-SENT": syn_sent,
    "SYN-RECEIVED": syn_received,
    "ESTABLISHED": established,
    "FIN-WAIT-1": fin_wait_1,
    "FIN-WAIT-2": fin_wait_2,
    "CLOSE-WAIT": close_wait,
    "CLOSING": closing,
    "LAST-ACK": last_ack,
    "TIME-WAIT": time_wait,
}


# --- ICMP errors, as a router sends them ----------------------------------------------------

ROUTER = 0x0A0000FE   # 10.0.0.254: a router between the stack and the peer
RFC792_QUOTE = 8      # octets of the original payload an error must quote


def our_datagram(seg: Seg | bytes, src: int = LOCAL, dst: int = REMOTE, ttl: int = 64,
                 df: bool = True) -> bytes:
    """The IP datagram that carried one of our segments, as a router saw it.

    ``seg`` is a segment the peer received (a ``Seg`` from ``conn.recv()``,
    rebuilt byte for byte) or raw TCP bytes."""
    if isinstance(seg, Seg):
        tcp = wire.build_tcp(src, dst, seg.sport, seg.dport, seg.seq, seg.ack, seg.flags,
                             seg.window, seg.opts, seg.payload)
    else:
        tcp = bytes(seg)
    buf = bytearray(20)
    wire.build_ipv4(buf, 0, wire.IPv4Header(total_length=20 + len(tcp), df=df, ttl=ttl,
                                            proto=6, src=src, dst=dst))
    return bytes(buf) + tcp


def icmp_error(type: int, code: int, seg: Seg | bytes, rest: int = 0, src: int = ROUTER,
               quote: int = RFC792_QUOTE) -> bytes:
    """The IP datagram (router -> us) of an ICMP error about ``seg``: the
    ICMP header with ``rest`` (its second word) and the quoted datagram, its
    IP header and the first ``quote`` bytes of the segment (RFC 792; RFC 1812
    routers may quote more, up to 576 bytes in all)."""
    orig = our_datagram(seg)
    ihl = (orig[0] & 0x0F) * 4
    icmp = wire.build_icmp(type, code, rest, orig[:ihl + quote])
    buf = bytearray(20)
    wire.build_ipv4(buf, 0, wire.IPv4Header(total_length=20 + len(icmp), ttl=255, proto=1,
                                            src=src, dst=int.from_bytes(orig[12:16], "big")))
    return bytes(buf) + icmp


def port_unreachable(seg: Seg | bytes, src: int = REMOTE) -> bytes:
    """Destination unreachable, port unreachable (3/3): sent by the peer's
    host itself, hence from REMOTE by default (icmp_err_convert: ECONNREFUSED)."""
    return icmp_error(ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, seg, src=src)


def dest_unreachable(seg: Seg | bytes, code: int, src: int = ROUTER) -> bytes:
    """Destination unreachable with ``code`` (0 net, 1 host, ...), from a router."""
    return icmp_error(ICMP_DEST_UNREACH, code, seg, src=src)


def frag_needed(seg: Seg | bytes, mtu: int, src: int = ROUTER) -> bytes:
    """Fragmentation needed and DF set (3/4) with the next-hop MTU (RFC 1191:
    the low 16 bits of the second word; 0 from routers older than it)."""
    return icmp_error(ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, seg, rest=mtu & 0xFFFF, src=src)


def time_exceeded(seg: Seg | bytes, code: int = 0, src: int = ROUTER) -> bytes:
    """Time exceeded (11): TTL expired in transit (code 0) or fragment
    reassembly time exceeded (code 1)."""
    return icmp_error(ICMP_TIME_EXCEEDED, code, seg, src=src)


class _IcmpHostView:
    """What ``IcmpProto`` asks of its host, answered by a FakeHost: TCP is
    protocol 6, and a learned path MTU becomes the FakeHost's single route's
    MTU (floored at min_pmtu and never above the interface MTU, as
    Host.update_pmtu and Host.route_lookup do)."""

    def __init__(self, host: FakeHost) -> None:
        self._host = host
        self.protocols = {6: host.tcp}
        self.iface_mtu = host.mtu

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    def update_pmtu(self, dst: int, mtu: int) -> None:
        self._host.mtu = min(self.iface_mtu, max(mtu, self._host.settings.min_pmtu))


def deliver_icmp(host: FakeHost, datagram: bytes) -> None:
    """Hand an ICMP datagram (from ``icmp_error`` and friends) to ``host``
    through the production ICMP input, as Host.receive would after ip_rcv."""
    icmp = getattr(host, "icmp", None)
    if icmp is None:
        icmp = host.icmp = IcmpProto(_IcmpHostView(host))
    iph = wire.parse_ipv4(datagram)
    assert iph.proto == 1 and iph.dst == host.addr
    icmp.rcv(iph, memoryview(datagram)[iph.ihl * 4:iph.total_length], host.now)
