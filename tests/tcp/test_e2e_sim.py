"""Two real Hosts over tcpio.core.sim.VirtualNetwork: many connections, bulk
transfer under loss/reordering/duplication/corruption (sha256 must match), a
path whose bandwidth-delay product needs window scaling, and ss-style rows."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

from tcpio.core.addr import ip_aton
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_CLOSE, TCP_ESTABLISHED
from tcpio.devices.impair import Impairment

A_IP, B_IP = "10.0.0.1", "10.0.0.2"


def _net(imp_ab=None, imp_ba=None, mtu=1500):
    net = VirtualNetwork(seed=7)
    a = net.host("a")
    b = net.host("b")
    link = net.link(a, b, f"{A_IP}/24", f"{B_IP}/24", impairment=imp_ab,
                    impairment_ba=imp_ba, mtu=mtu)
    link.capture_enabled = False
    return net, a, b, link


def _harsh(seed, delay=0.005, rate=None):
    """Loss, reordering, duplication and corruption on one direction."""
    return Impairment(loss=0.05, reorder=0.05, duplicate=0.01, corrupt=0.005,
                      delay=delay, rate=rate, seed=seed)


def _listen(b, port=80, backlog=128):
    ls = b.tcp.socket()
    ls.bind(0, port)
    ls.listen(backlog)
    return ls


def _dial(a, n=1, port=80):
    """``n`` sockets on ``a`` that have started connecting to B."""
    socks = []
    for _ in range(n):
        c = a.tcp.socket()
        with pytest.raises(BlockingIOError):
            c.connect(ip_aton(B_IP), port)
        socks.append(c)
    return socks


def _connect(net, a, b, port=80):
    listener = _listen(b, port)
    (c,) = _dial(a, 1, port)
    assert net.run_until(lambda: listener.accept_queue and c.state == TCP_ESTABLISHED, 60)
    return listener, c, listener.accept()


class _Stream:
    """Seeded random bytes produced in chunks and hashed as they go, so a
    soak never holds its whole payload in memory."""

    CHUNK = 1 << 20

    def __init__(self, src, dst, size: int, rng: random.Random) -> None:
        self.src, self.dst, self.size, self.rng = src, dst, size, rng
        self.produced = 0
        self.pending = memoryview(b"")
        self.sent_hash = hashlib.sha256()
        self.got_hash = hashlib.sha256()
        self.received = 0

    def pump(self) -> bool:
        while True:
            if not self.pending and self.produced < self.size:
                chunk = self.rng.randbytes(min(self.CHUNK, self.size - self.produced))
                self.produced += len(chunk)
                self.sent_hash.update(chunk)
                self.pending = memoryview(chunk)
            if not self.pending:
                break
            n = self.src.sendmsg(self.pending)
            if not n:
                break
            self.pending = self.pending[n:]
        while self.dst.readable():
            data = self.dst.recvmsg(1 << 22)
            self.received += len(data)
            self.got_hash.update(data)
        return self.received == self.size


def _transfer(net, pairs, size, seed, timeout):
    """Send ``size`` seeded random bytes each way on every (x, y) pair and
    compare sha256 of what was sent and what arrived."""
    rng = random.Random(seed)
    jobs = [_Stream(src, dst, size, random.Random(rng.random()))
            for x, y in pairs for src, dst in ((x, y), (y, x))]

    def pump():
        done = True
        for job in jobs:             # every job pumps: no short-circuit
            done = job.pump() and done
        return done

    assert net.run_until(pump, timeout), [j.received for j in jobs]
    for job in jobs:
        assert job.got_hash.digest() == job.sent_hash.digest()


def test_many_connections_open_transfer_close():
    net, a, b, _ = _net(Impairment(delay=0.001), Impairment(delay=0.001))
    ls = _listen(b)
    clients = _dial(a, 50)
    assert net.run_until(lambda: len(ls.accept_queue) == 50, 30)
    servers = [ls.accept() for _ in range(50)]
    ports = {c.getsockname()[1] for c in clients}
    assert len(ports) == 50                       # distinct ephemeral ports
    _transfer(net, list(zip(clients, servers)), 20_000, 1, 60)
    for c in clients:
        c.close()
    for s in servers:
        net.run_until(lambda s=s: s.rcv_eof, 10)
        s.close()
    net.run_for(5)
    assert all(s.state == TCP_CLOSE for s in servers)
    rows = a.tcp.connections()
    assert len([r for r in rows if r.state == "TIME-WAIT"]) == 50
    assert a.mib["ActiveOpens"] == 50 and b.mib["PassiveOpens"] == 50
    assert a.mib["CurrEstab"] == 0 and b.mib["CurrEstab"] == 0
    net.run_for(61)
    assert [r for r in a.tcp.connections() if r.state == "TIME-WAIT"] == []


def test_connect_to_closed_port_is_refused():
    net, a, _b, _ = _net()
    (c,) = _dial(a, 1, 81)
    net.run_until(lambda: c.state == TCP_CLOSE, 10)
    with pytest.raises(ConnectionRefusedError):
        c.connect(ip_aton(B_IP), 81)


@pytest.mark.parametrize("seed", [1, 2])
def test_bulk_under_loss_reorder_duplication_corruption(seed):
    net, a, b, _ = _net(_harsh(seed * 10), _harsh(seed * 10 + 1))
    _, c, s = _connect(net, a, b)
    _transfer(net, [(c, s)], 1 << 20, seed, 600)
    assert a.mib["RetransSegs"] > 0 and b.mib["InCsumErrors"] + a.mib["InCsumErrors"] > 0


def test_window_scaling_fills_a_large_bdp_path():
    """100 Mbit/s x 40 ms RTT = 500 kB in flight: impossible with a 64 KiB window."""
    imp = Impairment(delay=0.02, rate=100e6, seed=1)
    imp2 = Impairment(delay=0.02, rate=100e6, seed=2)
    net, a, b, _ = _net(imp, imp2)
    _, c, s = _connect(net, a, b)
    assert c.rcv_wscale > 0 and c.snd_wscale > 0
    size = 4 << 20
    data = random.Random(5).randbytes(size)
    sent = 0
    got = bytearray()
    start = net.now
    max_inflight = 0

    def pump():
        nonlocal sent, max_inflight
        if sent < size:
            sent += c.sendmsg(memoryview(data)[sent:])
        max_inflight = max(max_inflight, (c.snd_nxt - c.snd_una) & 0xFFFFFFFF)
        if s.readable():
            got.extend(s.recvmsg(1 << 22))
        return len(got) == size

    assert net.run_until(pump, 60)
    assert bytes(got) == data
    assert max_inflight > 65535                  # more than an unscaled window allows
    elapsed = net.now - start
    assert size * 8 / elapsed > 30e6              # well beyond 64 KiB / 40 ms = 13 Mbit/s


def test_listener_backlog_overflow_client_retransmits_and_gets_in():
    net, a, b, _ = _net(Impairment(delay=0.001), Impairment(delay=0.001))
    ls = _listen(b, backlog=2)
    # Three handshakes first: a fourth SYN among them would find three
    # request socks, more than the backlog (Linux 6.13+'s
    # inet_csk_reqsk_queue_is_full), and get a cookie, whose dropped ACK no
    # SYN-ACK retransmission repairs.  Alone, it gets a request sock.
    _dial(a, 3)
    net.run_for(0.1)
    _dial(a, 1)
    net.run_for(0.5)
    assert len(ls.accept_queue) == 3               # backlog + 1, like Linux
    assert b.mib["ListenOverflows"] > 0
    accepted = [ls.accept(), ls.accept(), ls.accept()]
    assert net.run_until(lambda: len(ls.accept_queue) == 1, 30)
    accepted += [ls.accept()]
    assert all(x is not None for x in accepted)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TCPIO_SLOW") != "1", reason="set TCPIO_SLOW=1 for soaks")
def test_soak_256mib_each_way_impaired():
    net, a, b, _ = _net(_harsh(101), _harsh(102))
    _, c, s = _connect(net, a, b)
    _transfer(net, [(c, s)], 256 << 20, 9, 1e6)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TCPIO_SLOW") != "1", reason="set TCPIO_SLOW=1 for soaks")
def test_soak_256mib_each_way_impaired_large_bdp():
    """The same impairments on a 100 Mbit/s path with 40 ms RTT (BDP 500 kB)."""
    net, a, b, _ = _net(_harsh(201, delay=0.02, rate=100e6), _harsh(202, delay=0.02, rate=100e6))
    _, c, s = _connect(net, a, b)
    assert c.rcv_wscale and c.snd_wscale
    _transfer(net, [(c, s)], 256 << 20, 10, 1e6)
