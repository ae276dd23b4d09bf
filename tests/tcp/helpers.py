"""Test plumbing for the TCP core: a tiny fake host and a segment-level harness.

``FakeHost`` is a ``tcpio.core.protocol.NetHost``, what TcpProto may ask of
a host (timers, settings, mib, now, secret, rng, ip_output, route_lookup,
schedule_wakeup, the whole-frame TCP transmit path...), on one bare IP link
(no Ethernet, no ARP), and records every segment sent.  TCP takes the same
send paths as on a real Host: the compiled send loop and the one-call frame
builder for a connection's segments, ip_output for the rest.
``Peer`` plays the remote end by hand, smoltcp style: tests build exact
segments in with ``peer.send(...)`` and assert exact segments out with
``peer.recv()``.  ``Link`` joins two fake hosts for small end-to-end runs
under a virtual clock, with an optional seeded drop/reorder function.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from tcpio._fast import load_pure
from tcpio.core.in_h import IPPROTO_TCP
from tcpio.core.ip_output import IpIdents
from tcpio.core.mib import Mib
from tcpio.core.qdisc import NET_XMIT_SUCCESS
from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_ipv4 import TcpProto
from tcpio.core.timer import TimerWheel
from tcpio.devices import virtio_net

wire = load_pure("wire")
TcpOptions = wire.TcpOptions

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

LOCAL = 0x0A000001    # 10.0.0.1: the stack under test
REMOTE = 0x0A000002   # 10.0.0.2: the hand-played peer
LPORT = 80
RPORT = 49500


@dataclass
class Route:
    ifindex: int
    gateway: int | None
    src: int
    mtu: int
    mtu_locked: bool = False


class FakeHost:
    def __init__(self, addr: int = LOCAL, settings: Settings | None = None, mtu: int = 1500,
                 seed: int = 1) -> None:
        self.name = f"fake{addr & 0xFF}"
        self.addr = addr
        self.settings = settings or Settings()
        self.mib = Mib()
        self.timers = TimerWheel()
        self.now = 0.0
        self.rng = random.Random(seed)
        self.secret = bytes(self.rng.getrandbits(8) for _ in range(16))
        self.mtu = mtu
        # Its own generator: IP IDs must not shift what the tests draw from rng.
        self.ip_ids = IpIdents(random.Random(seed))
        self._sent: list[tuple[int, int, bytes]] = []
        self._txq: list[tuple[int, bytes | bytearray]] = []   # whole IP datagrams
        self.woken: list[Any] = []
        self.gso_frames: list[bytes] = []      # super-frames the send loop handed over
        self.tcp = TcpProto(self)

    # the NetHost contract (tcpio/core/protocol.py)
    def defer_to_batch_end(self, fn: Any, owner: Any) -> bool:
        """No receive batches here: every segment is its own (ACK at once)."""
        return False

    def ip_output(self, proto: int, src: int | None, dst: int, payload: Any, *,
                  ttl: int | None = None, tos: int = 0, df: bool = False,
                  ident: int = -1) -> int:
        assert proto == IPPROTO_TCP
        self._drain()       # whole frames queued before this one go first
        self._sent.append((src if src is not None else self.addr, dst, bytes(payload)))
        return NET_XMIT_SUCCESS                 # no transmit queue: never refused

    def ip_tcp_path(self, dst: int, length: int) -> tuple[int, None, None, int] | None:
        """Like Host's on an "ip" link: whole datagrams unless local or too big."""
        if self.is_local_address(dst) or self.is_broadcast(dst) or length > self.mtu:
            return None
        return 1, None, None, self.addr

    def ip_tcp_dst(self, dst: int) -> None:
        """No route for sockets to cache: route_lookup and ip_tcp_path per call."""

    def tx_queue(self) -> list[tuple[int, bytes | bytearray]]:
        return self._txq

    # TSO: set gso_max_size to have the send loop hand over super-frames
    # (cut back into segments by _drain, as the device would)
    gso_max_size = 0

    def gso_caps(self, ifindex: int, v6: bool = False) -> tuple[int, bool]:
        return self.gso_max_size, False

    def xmit(self, ifindex: int, frame: bytes | bytearray) -> int:
        self._txq.append((ifindex, frame))
        return NET_XMIT_SUCCESS

    def netif_xmit_stopped(self, ifindex: int) -> bool:
        return False                            # no transmit queue to stop

    @property
    def sent(self) -> list[tuple[int, int, bytes]]:
        """(src, dst, TCP segment) of everything sent, in order."""
        self._drain()
        return self._sent

    @sent.setter
    def sent(self, value: list[tuple[int, int, bytes]]) -> None:
        self._drain()
        self._sent = value

    def _drain(self) -> None:
        """The datagrams on the transmit queue as (src, dst, segment) in ``sent``."""
        if self._txq:
            for _ifindex, dgram in self._cut(self._txq):
                iph = wire.parse_ipv4(dgram)
                assert iph.proto == IPPROTO_TCP and not iph.mf and iph.frag_offset == 0
                self._sent.append((iph.src, iph.dst, bytes(dgram[iph.ihl * 4:iph.total_length])))
            self._txq.clear()

    def _cut(self, queue: list[tuple[int, bytes | bytearray]]
             ) -> list[tuple[int, bytes | bytearray]]:
        """The queue with each super-frame cut into its segments (the
        device's TSO, done by virtio_net.gso_segment); counted in
        ``self.gso_frames``."""
        out: list[tuple[int, bytes | bytearray]] = []
        for ifindex, dgram in queue:
            gso_size = getattr(dgram, "gso_size", 0)
            if not gso_size:
                out.append((ifindex, dgram))
                continue
            assert len(dgram) > self.mtu and dgram.gso_segs > 1
            self.gso_frames.append(dgram)
            hdr = virtio_net.gso_hdr_for(dgram, gso_size, ether=False, partial=False)
            out += [(ifindex, seg) for seg in virtio_net.gso_segment(dgram, hdr, ether=False)]
        return out

    def route_lookup(self, dst: int) -> Route:
        return Route(1, None, self.addr, self.mtu)

    def is_local_address(self, ip: int) -> bool:
        return ip == self.addr

    # Segments come in as unicast IP in unicast frames.
    rx_link_bcast = False
    # ...each one segment (NetHost.rx_gso_*: no super-frame in hand)
    rx_gso_segs = 1
    rx_gso_size = 0
    # No forwarder on a FakeHost's link (Host.set_tproxy).
    rx_tproxy = None

    def icmp_send(self, iph: Any, payload: Any, type: int, code: int, info: int = 0) -> None:
        raise AssertionError("TCP sends no ICMP")

    # No loopback here: nothing to hold back (Host.defer_loopback).
    def defer_loopback(self) -> bool:
        return False

    def release_loopback(self, held: bool) -> None:
        pass

    def is_broadcast(self, ip: int) -> bool:
        return ip == 0xFFFFFFFF

    def schedule_wakeup(self, sk: Any) -> None:
        self.woken.append(sk)

    # driving
    def advance(self, t: float) -> None:
        """Move the virtual clock to ``t`` and run the timers due."""
        assert t >= self.now
        self.now = t
        self.timers.run(t)

    def deliver(self, src: int, dst: int, segment: bytes) -> None:
        iph = SimpleNamespace(src=src, dst=dst, proto=6)
        self.tcp.rcv(iph, memoryview(segment), self.now)


@dataclass
class Seg:
    """A parsed segment, compared field by field in tests."""
    flags: int
    seq: int
    ack: int
    window: int
    payload: bytes = b""
    opts: Any = field(default=None, compare=False)
    sport: int = field(default=0, compare=False)
    dport: int = field(default=0, compare=False)
    urg_ptr: int = field(default=0, compare=False)

    def key(self) -> tuple:
        """(flags, seq, ack, payload): what most rules are about."""
        return (self.flags, self.seq, self.ack, self.payload)

    def __repr__(self) -> str:
        names = "".join(n for b, n in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"),
                                       (ACK, "."), (URG, "U")) if self.flags & b)
        return (f"Seg([{names}] seq={self.seq} ack={self.ack} win={self.window} "
                f"len={len(self.payload)} opts={self.opts!r})")


def parse(segment: bytes) -> Seg:
    th = wire.parse_tcp(segment)
    return Seg(th.flags, th.seq, th.ack, th.window, bytes(segment[th.doff * 4:]), th.options,
               th.sport, th.dport, th.urg_ptr)


class Peer:
    """The remote end, played by the test."""

    def __init__(self, host: FakeHost, addr: int = REMOTE, port: int = RPORT,
                 lport: int = LPORT) -> None:
        self.host = host
        self.addr = addr
        self.port = port
        self.lport = lport

    def send(self, flags: int, seq: int, ack: int = 0, window: int = 65535,
             payload: bytes = b"", opts: Any = None, sport: int | None = None) -> None:
        seg = wire.build_tcp(self.addr, self.host.addr, self.port if sport is None else sport,
                             self.lport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, flags, window,
                             opts, payload)
        self.host.deliver(self.addr, self.host.addr, seg)

    def recv(self) -> list[Seg]:
        """Segments the stack sent to us since the last call."""
        mine = [x for x in self.host.sent
                if x[1] == self.addr and int.from_bytes(x[2][2:4], "big") == self.port]
        self.host.sent = [x for x in self.host.sent if not any(x is m for m in mine)]
        return [parse(b) for (_s, _d, b) in mine]

    def recv_one(self) -> Seg:
        segs = self.recv()
        assert len(segs) == 1, segs
        return segs[0]


class Link:
    """Two FakeHosts joined back to back, with a virtual clock.

    ``fault(src_host, segment_bytes) -> list[bytes]`` may drop (return []),
    duplicate or corrupt; reordering comes from per-packet delay in
    ``delay_fn``.  Everything is seeded.
    """

    def __init__(self, a: FakeHost, b: FakeHost, delay: float = 0.001,
                 fault: Callable[[FakeHost, bytes], list[bytes]] | None = None,
                 delay_fn: Callable[[], float] | None = None) -> None:
        self.a, self.b = a, b
        self.delay = delay
        self.fault = fault
        self.delay_fn = delay_fn
        self.now = 0.0
        self.inflight: list[tuple[float, int, FakeHost, int, int, bytes]] = []
        self._n = 0

    def _collect(self) -> None:
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            sent, src.sent = src.sent, []
            for (s, d, seg) in sent:
                segs = self.fault(src, seg) if self.fault else [seg]
                for x in segs:
                    dl = self.delay + (self.delay_fn() if self.delay_fn else 0.0)
                    self._n += 1
                    self.inflight.append((self.now + dl, self._n, dst, s, d, x))
        self.inflight.sort(key=lambda e: (e[0], e[1]))

    def step(self) -> bool:
        """Deliver the next packet or fire the next timer; False when idle."""
        self._collect()
        t_pkt = self.inflight[0][0] if self.inflight else None
        deadlines = [d for d in (self.a.timers.next_deadline(), self.b.timers.next_deadline())
                     if d is not None]
        t_tmr = min(deadlines) if deadlines else None
        if t_pkt is None and t_tmr is None:
            return False
        if t_pkt is not None and (t_tmr is None or t_pkt <= t_tmr):
            when, _, dst, s, d, seg = self.inflight.pop(0)
            self.now = max(self.now, when)
            for h in (self.a, self.b):
                h.now = self.now
            dst.deliver(s, d, seg)
        else:
            self.now = max(self.now, t_tmr)
            for h in (self.a, self.b):
                h.advance(self.now)
        self._collect()
        return True

    def run_until(self, cond: Callable[[], bool], limit: float = 600.0,
                  max_steps: int = 10_000_000) -> None:
        steps = 0
        while not cond():
            if self.now > limit or steps > max_steps:
                raise AssertionError(f"condition not met by t={self.now}")
            if not self.step():
                if cond():
                    return
                raise AssertionError(f"idle at t={self.now} before condition")
            steps += 1

    def run_for(self, duration: float) -> None:
        end = self.now + duration
        while True:
            self._collect()
            t_pkt = self.inflight[0][0] if self.inflight else None
            deadlines = [d for d in (self.a.timers.next_deadline(),
                                     self.b.timers.next_deadline()) if d is not None]
            nxt = min([x for x in (t_pkt, *deadlines) if x is not None], default=None)
            if nxt is None or nxt > end:
                break
            self.step()
        self.now = end
        for h in (self.a, self.b):
            h.advance(end)


# --- connection set-up shortcuts ------------------------------------------------------
PEER_ISS = 1000


class Conn:
    """An established connection between the stack (``sk``) and a hand-played peer.

    ``snd`` is the peer's next sequence number, ``rcv`` what the peer expects
    next from the stack (i.e. the peer's ACK field).
    """

    def __init__(self, host: FakeHost, peer: Peer, sk: Any, snd: int, rcv: int) -> None:
        self.host, self.peer, self.sk, self.snd, self.rcv = host, peer, sk, snd, rcv

    def send(self, payload: bytes = b"", flags: int = ACK, window: int = 65535,
             opts: Any = None, seq: int | None = None, ack: int | None = None) -> None:
        s = self.snd if seq is None else seq
        self.peer.send(flags, s, self.rcv if ack is None else ack, window, payload, opts)
        if seq is None:
            self.snd = (self.snd + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def recv(self) -> list[Seg]:
        return self.peer.recv()

    def ack_all(self, segs: list[Seg]) -> None:
        """Move our ACK point past everything in ``segs`` (without sending)."""
        for s in segs:
            end = (s.seq + len(s.payload) + (1 if s.flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
            if ((end - self.rcv) & 0xFFFFFFFF) < 0x80000000:
                self.rcv = end


def passive_open(settings: Settings | None = None, syn_opts: Any = None, window: int = 65535,
                 backlog: int = 8, setup: Callable[[Any], None] | None = None,
                 ack_ts: int | None = None) -> Conn:
    """Listener on LPORT; the peer completes the handshake; return the child.

    The handshake takes no virtual time, so the child's SYN-ACK RTT sample
    (tcp_synack_rtt_meas) is 0 s.  The child's estimator is then put back to
    "no sample yet" (RFC 6298 2.1: RTO 1 s), the starting point the RTT/RTO
    rule tests measure from; the handshake's own sample is tested in
    test_passive_child_init_rules.py."""
    host = FakeHost(settings=settings)
    peer = Peer(host)
    ls = host.tcp.socket()
    if setup:
        setup(ls)
    ls.bind(0, LPORT)
    ls.listen(backlog)
    peer.send(SYN, PEER_ISS, 0, window, opts=syn_opts)
    synack = peer.recv_one()
    assert synack.flags == SYN | ACK and synack.ack == PEER_ISS + 1
    ack_opts = None
    if syn_opts is not None and syn_opts.ts_val is not None and synack.opts.ts_val is not None:
        # (the third ACK's TSval: the SYN's + 1, or ``ack_ts``)
        ack_opts = TcpOptions(ts_val=syn_opts.ts_val + 1 if ack_ts is None else ack_ts,
                              ts_ecr=synack.opts.ts_val)
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1, window, opts=ack_opts)
    sk = ls.accept()
    assert sk is not None
    sk.rtt_est.reset()
    sk.min_rtt = 0.0
    conn = Conn(host, peer, sk, PEER_ISS + 1, (synack.seq + 1) & 0xFFFFFFFF)
    conn.listener = ls
    conn.synack = synack
    return conn


def active_open(settings: Settings | None = None, synack_opts: Any = None,
                window: int = 65535, setup: Callable[[Any], None] | None = None) -> Conn:
    """The stack connects to the peer; the peer answers SYN-ACK."""
    host = FakeHost(settings=settings)
    peer = Peer(host)
    sk = host.tcp.socket()
    if setup:
        setup(sk)
    try:
        sk.connect(REMOTE, RPORT)
    except BlockingIOError:
        pass
    syn = peer.recv_one()
    assert syn.flags == SYN
    peer.lport = syn.sport
    peer.send(SYN | ACK, PEER_ISS, syn.seq + 1, window, opts=synack_opts)
    segs = peer.recv()
    conn = Conn(host, peer, sk, PEER_ISS + 1, (syn.seq + 1) & 0xFFFFFFFF)
    conn.syn = syn
    conn.handshake_ack = segs
    return conn


def sim_connect(net: Any, a: Any, b: Any, addr: str = "10.0.0.2", port: int = 80) -> tuple:
    """Over a VirtualNetwork: (client on ``a``, the child ``b`` accepted), established."""
    import pytest

    from tcpio.core.addr import ip_aton
    from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

    listener = b.tcp.socket()
    listener.bind(0, port)
    listener.listen(4)
    c = a.tcp.socket()
    with pytest.raises(BlockingIOError):
        c.connect(ip_aton(addr), port)
    assert net.run_until(lambda: listener.accept_queue and c.state == TCP_ESTABLISHED, 30)
    return c, listener.accept()


def sim_transfer(net: Any, c: Any, s: Any, data: bytes, limit: float = 600) -> bytes:
    """Over a VirtualNetwork: send ``data`` from core sock ``c`` to ``s`` (the
    app writing and reading as fast as the stack allows); what ``s`` read."""
    sent = [0]
    got = bytearray()

    def pump() -> bool:
        if sent[0] < len(data):
            sent[0] += c.sendmsg(memoryview(data)[sent[0]:sent[0] + 65536])
        while s.readable():
            got.extend(s.recvmsg(1 << 20))
        return len(got) == len(data)

    assert net.run_until(pump, limit)
    return bytes(got)
