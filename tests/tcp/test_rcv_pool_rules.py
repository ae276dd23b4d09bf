"""The receive pool (tcp_fast.RcvPool, Settings.tcp_rcv_pool; issue 11): what
the receive windows of all the connections receiving at once share.

Rules, one per test (the unit ones on both twins of tcp_fast):
- a receiving connection is offered at most its share of the pool, the
  pool divided by the receivers counted, and never less than four segments
  (Linux's floor under memory pressure, tcp_adjust_rcv_ssthresh); one
  receiving alone is not held;
- receivers are counted per epoch (a quarter second): a connection once in
  each epoch it receives in-order data, a new one when its first window is
  chosen (SYN or SYN-ACK); the share divides by the larger of this epoch's
  count and the last one's, and an epoch with no receivers forgets them;
- the pool is sized by the rate: entering an epoch it becomes what the last
  one received in a quarter second (_POOL_DELAY), between ``least`` (where
  it starts, and returns after an idle epoch) and ``most``;
- within an epoch, the pool grows to what the epoch received so far once
  that is more, when the segments wait little (every receiver RTT noted in
  this epoch and the last below a quarter of _POOL_DELAY): the pool, not
  the reader, binds;
- the pool never moves a right edge already offered back (RFC 7323 2.4): it
  only stops the window from growing;
- ``most`` 0 is no pool; with the default pool one connection alone is
  offered exactly what it was without a pool.
End to end, over a VirtualNetwork: N connections sending to one host at
once hold at most the pool (or four segments each) in flight, where without
a pool they hold many times more, and every byte arrives; over a link of a
given rate the pool settles at what that rate brings in a quarter second.

The oracle for why: the 1000-flow soak against the kernel over TAP
(tests/tap/test_tcp_kernel_many_flows.py, TCPIO_SLOW=1) fires no RTO with the
pool, where without it 4-134 of the kernel's RTOs fired in every run.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from conftest import twin_fixture

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED
from tcpio.devices.impair import Impairment

from .fastcb import make_cb

tf = twin_fixture("tcp_fast", "tf")

MSS = 1460
EPOCH = 0.25        # tcp_fast._POOL_EPOCHS_PER_S = 4
MOST = 64 << 20


def _pool(tf, size: int, least: int = 1, most: int = MOST):
    pool = tf.RcvPool(least, most)
    pool.size = size
    return pool


# --- the share ---------------------------------------------------------------------------

@pytest.mark.parametrize("size, receivers, expect", [
    (1 << 20, 0, MOST),             # nobody counted yet, or one alone: not held
    (1 << 20, 1, MOST),
    (1 << 20, 2, 1 << 19),          # split evenly
    (1 << 20, 100, 10_485),
    (1 << 20, 1000, 4 * MSS),       # never below four segments
])
def test_the_share_is_the_pool_split_among_receivers_at_least_four_segments(
        tf, size, receivers, expect):
    pool = _pool(tf, size)
    pool.epoch, pool.cur = 1, receivers
    assert tf.rcv_pool_share(pool, MSS) == expect


def test_the_share_divides_by_the_larger_of_this_epoch_and_the_last(tf):
    pool = _pool(tf, 1 << 20)
    pool.epoch, pool.prev, pool.cur = 5, 8, 2
    assert tf.rcv_pool_share(pool, MSS) == (1 << 20) // 8
    pool.cur = 16
    assert tf.rcv_pool_share(pool, MSS) == (1 << 20) // 16


# --- counting ----------------------------------------------------------------------------

def _receiver(tf, pool, **kw):
    sk = make_cb(tf, rcvbuf=1 << 22, window_clamp=65535 << 7, rcv_wscale=7, **kw)
    sk.rcv_pool = pool
    return sk


def test_a_connection_counts_once_per_epoch_it_receives_in(tf):
    pool = tf.RcvPool(1 << 20, MOST)
    a, b = _receiver(tf, pool), _receiver(tf, pool)
    for now in (10.0, 10.01, 10.2):             # one epoch: [10.0, 10.25)
        tf.rcv_pool_note(a, now, 1000)
    tf.rcv_pool_note(b, 10.1, 1000)
    assert (pool.cur, pool.prev, pool.nbytes) == (2, 0, 4000)
    tf.rcv_pool_note(a, 10.3, 1000)             # the next epoch: last one's count kept
    assert (pool.cur, pool.prev, pool.nbytes) == (1, 2, 1000)


def test_entering_an_epoch_sizes_the_pool_by_what_the_last_one_received(tf):
    """A quarter second's worth of the last epoch's rate: its bytes, within
    [least, most]."""
    pool = tf.RcvPool(1 << 20, 8 << 20)
    assert pool.size == 1 << 20                 # it starts at least
    sk = _receiver(tf, pool)
    for k in range(50):
        tf.rcv_pool_note(sk, 20.0 + k * 0.004, 60_000)   # 3 MB in [20.0, 20.25)
    tf.rcv_pool_note(sk, 20.26, 1)
    assert pool.size == 3_000_000
    for k in range(100):
        tf.rcv_pool_note(sk, 20.26 + k * 0.002, 100_000)  # 10 MB: above most
    tf.rcv_pool_note(sk, 20.5, 1)
    assert pool.size == 8 << 20
    tf.rcv_pool_note(sk, 20.8, 1)               # 1 byte: below least
    assert pool.size == 1 << 20


QUICK_WAIT = 0.25 / 4      # tcp_fast._POOL_QUICK_WAIT


@pytest.mark.parametrize("rcv_rtt, grows", [
    (0.010, True),                  # segments hardly queue
    (QUICK_WAIT * 0.99, True),
    (QUICK_WAIT, False),            # they queue: the epoch rule decides
    (0.200, False),
    (0.0, False),                   # no receiver RTT (no timestamps): no sign
])
def test_a_pool_turned_over_quickly_grows_within_the_epoch(tf, rcv_rtt, grows):
    pool = tf.RcvPool(1 << 20, 8 << 20)
    sk = _receiver(tf, pool)
    sk.rcv_rtt = rcv_rtt
    for k in range(10):
        tf.rcv_pool_note(sk, 30.0 + k * 0.001, 200_000)    # 2 MB in 10 ms
    assert pool.size == (2_000_000 if grows else 1 << 20)
    for k in range(100):
        tf.rcv_pool_note(sk, 30.01 + k * 0.001, 100_000)   # 10 MB more
    assert pool.size == (8 << 20 if grows else 1 << 20)    # never above most
    tf.rcv_pool_note(sk, 30.25, 1)  # the next epoch: sized by the last, as before
    assert pool.size == 8 << 20


def test_one_receiver_that_waited_stops_the_growth_for_this_epoch_and_the_next(tf):
    pool = tf.RcvPool(1 << 20, 8 << 20)
    quick, slow = _receiver(tf, pool), _receiver(tf, pool)
    quick.rcv_rtt, slow.rcv_rtt = 0.005, 0.150
    tf.rcv_pool_note(slow, 40.0, 1000)
    for k in range(10):
        tf.rcv_pool_note(quick, 40.01 + k * 0.001, 200_000)
    assert pool.size == 1 << 20                 # this epoch: held
    for k in range(10):
        tf.rcv_pool_note(quick, 40.25 + k * 0.001, 500_000)
    assert pool.size == 2_001_000               # the next: sized by the last, held
    for k in range(10):
        tf.rcv_pool_note(quick, 40.5 + k * 0.001, 600_000)
    assert pool.size == 6_000_000               # the one after: free to grow again


def test_an_epoch_without_receivers_forgets_them_and_the_rate(tf):
    pool = tf.RcvPool(1 << 20, MOST)
    socks = [_receiver(tf, pool) for _ in range(8)]
    for sk in socks:
        tf.rcv_pool_note(sk, 3.0, 1_000_000)
    tf.rcv_pool_note(socks[0], 3.0 + EPOCH, 1)
    assert (pool.size, pool.prev) == (8_000_000, 8)
    assert tf.rcv_pool_share(pool, MSS) == 1_000_000
    tf.rcv_pool_note(socks[0], 3.0 + 3 * EPOCH, 1)  # an epoch went by with none
    assert (pool.cur, pool.prev, pool.size) == (1, 0, 1 << 20)
    assert tf.rcv_pool_share(pool, MSS) == MOST


def test_a_late_note_from_an_older_epoch_is_not_counted(tf):
    pool = tf.RcvPool(1 << 20, MOST)
    a, b = _receiver(tf, pool), _receiver(tf, pool)
    tf.rcv_pool_note(a, 7.6, 10)
    tf.rcv_pool_note(b, 7.4, 10)                # before the epoch the pool is in
    assert (pool.cur, pool.prev, pool.nbytes) == (1, 0, 10)


def test_no_pool_counts_nothing(tf):
    sk = _receiver(tf, None)
    tf.rcv_pool_note(sk, 1.0, 10)
    assert sk.rcv_epoch == 0
    off = tf.RcvPool(0, 0)
    sk = _receiver(tf, off)
    tf.rcv_pool_note(sk, 1.0, 10)
    assert (sk.rcv_epoch, off.cur, off.nbytes) == (0, 0, 0)


# --- the first window --------------------------------------------------------------------

def test_first_windows_of_a_burst_shrink_with_the_count_in_whole_segments(tf):
    """rcv_pool_open: each new connection is counted, then offered the
    smaller of tcp_select_initial_window's window and its share, in whole
    segments, at least four; the first alone is not held."""
    pool = tf.RcvPool(200_000, MOST)
    got = [tf.rcv_pool_open(pool, 1.0, 1448, 65_160) for _ in range(12)]
    expect = [min(65_160, max(200_000 // k, 4 * 1448) // 1448 * 1448) if k > 1 else 65_160
              for k in range(1, 13)]
    assert got == expect
    assert got[-1] == 11 * 1448 and pool.cur == 12


def test_no_pool_leaves_the_first_window(tf):
    pool = tf.RcvPool(0, 0)
    assert [tf.rcv_pool_open(pool, 1.0, 1448, 65_160) for _ in range(3)] == [65_160] * 3
    assert pool.cur == 0


# --- the offer ---------------------------------------------------------------------------

def test_the_offer_is_held_to_the_share(tf):
    pool = _pool(tf, 1 << 20)
    pool.epoch, pool.cur = 1, 64                 # 16 KiB each
    sk = _receiver(tf, pool, rcv_wnd=0)
    # 16384 in whole MSS (11 x 1460 = 16060), then whole 128-byte units
    assert tf.select_window(sk) == 16_000
    sk.rcv_pool = None                          # without it: the 4 MiB buffer's
    assert tf.select_window(sk) == 4_193_024


def test_the_pool_never_moves_the_right_edge_back(tf):
    """An offer made before the receivers grew stays: what is left of it is
    offered again (tcp_select_window), not the smaller share."""
    pool = _pool(tf, 1 << 20)
    sk = _receiver(tf, pool, rcv_wnd=200 * 128)
    pool.epoch, pool.cur = 1, 1000              # the share falls to four segments
    assert tf.select_window(sk) == 5_760        # 4 x 1460 in 128-byte units
    assert tf.tcp_select_window(sk) == 200      # the old edge, unscaled 25 600
    assert sk.rcv_wnd == 200 * 128


# --- end to end --------------------------------------------------------------------------

def _net(pool: tuple[int, int], rate: float | None = None):
    net = VirtualNetwork(seed=5)
    a = net.host("a")
    b = net.host("b", settings=Settings(tcp_rcv_pool=pool))
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24",
                    impairment=Impairment(delay=0.005, rate=rate),
                    impairment_ba=Impairment(delay=0.005))
    link.capture_enabled = False
    return net, a, b


def _connected(pool: tuple[int, int], n: int, rate: float | None = None):
    """``n`` connections from a to a listener on b (whose pool is ``pool``),
    established and accepted: (net, a's sockets, b's sockets)."""
    net, a, b = _net(pool, rate)
    ls = b.tcp.socket()
    ls.bind(0, 80)
    ls.listen(n)
    clients = []
    for _ in range(n):
        c = a.tcp.socket()
        with pytest.raises(BlockingIOError):
            c.connect(ip_aton("10.0.0.2"), 80)
        clients.append(c)
    assert net.run_until(lambda: len(ls.accept_queue) == n
                         and all(c.state == TCP_ESTABLISHED for c in clients), 30)
    return net, clients, [ls.accept() for _ in range(n)]


def _uploads(pool: tuple[int, int], n: int, size: int):
    """``n`` connections from a each send ``size`` seeded bytes to b, which
    reads all it can after every step.  Returns the largest total b had
    offered and not yet received, over the steps once every connection
    had received 128 KiB (earlier offers used up), and whether every
    connection's bytes arrived intact."""
    net, clients, servers = _connected(pool, n)
    rng = random.Random(3)
    data = [rng.randbytes(size) for _ in range(n)]
    sent = [0] * n
    got = [bytearray() for _ in range(n)]
    base = [s.rcv_nxt for s in servers]
    most = 0

    def pump() -> bool:
        nonlocal most
        for i, c in enumerate(clients):
            if sent[i] < size:
                sent[i] += c.sendmsg(memoryview(data[i])[sent[i]:sent[i] + (1 << 16)]) or 0
        for i, s in enumerate(servers):
            while s.readable():
                got[i] += s.recvmsg(1 << 20)
        if all((s.rcv_nxt - base[i]) % (1 << 32) >= 1 << 17 for i, s in enumerate(servers)):
            offered = sum((s.rcv_wup + s.rcv_wnd - s.rcv_nxt) % (1 << 32) for s in servers)
            most = max(most, offered)
        return all(len(g) == size for g in got)

    assert net.run_until(pump, 600), [len(g) for g in got]
    intact = all(hashlib.sha256(g).digest() == hashlib.sha256(d).digest()
                 for g, d in zip(got, data))
    return most, intact


def _send_and_read(clients, servers, data) -> None:
    """One step of endless uploads: each client writes what it can of
    ``data``, each server reads all it has."""
    for c in clients:
        c.sendmsg(data)
    for s in servers:
        while s.readable():
            s.recvmsg(1 << 20)


def test_many_senders_hold_at_most_the_pool_in_flight_and_every_byte_arrives():
    n, pool = 16, 96 * 1024
    seg = 1448
    share = max(pool // n, 4 * seg)
    bound = n * (-(-share // 128) * 128)       # each offer in whole scaling units (wscale 7)
    most, intact = _uploads((pool, pool), n, 1 << 20)
    assert intact
    assert 0 < most <= bound
    # without a pool the same senders are offered many times more
    most_off, intact_off = _uploads((0, 0), n, 1 << 20)
    assert intact_off
    assert most_off > 4 * bound


def test_one_connection_alone_is_offered_what_it_was_without_a_pool():
    """One connection receiving alone is not held (and the pool's most is
    above tcp_rmem[2], the most its buffer may grow to): its windows are
    those of no pool at all, step by step."""
    assert Settings().tcp_rcv_pool[1] >= Settings().tcp_rmem[2]
    def windows(pool: tuple[int, int]) -> list[tuple[float, int]]:
        net, (c,), (s,) = _connected(pool, 1)
        data = memoryview(random.Random(1).randbytes(4 << 20))
        sent, got, seen = 0, 0, []

        def pump() -> bool:
            nonlocal sent, got
            if sent < len(data):
                sent += c.sendmsg(data[sent:sent + (1 << 16)]) or 0
            while s.readable():
                got += len(s.recvmsg(1 << 20))
            seen.append((net.now, s.rcv_wnd))
            return got == len(data)

        assert net.run_until(pump, 120)
        return seen

    assert windows(Settings().tcp_rcv_pool) == windows((0, 0))


def test_over_a_link_of_a_given_rate_the_pool_settles_at_a_quarter_second_of_it():
    """Eight senders share a 80 Mbit/s link into b: b receives 10 MB/s, and
    its pool settles at what a quarter second brings (2.5 MB)."""
    rate = 80e6
    net, clients, servers = _connected((64 << 10, 64 << 20), 8, rate)
    pool = servers[0].rcv_pool
    data = memoryview(bytes(1 << 16))
    sizes = []

    def pump() -> bool:
        _send_and_read(clients, servers, data)
        sizes.append((net.now, pool.size))
        return net.now > 6.0

    assert net.run_until(pump, 30)
    settled = [size for t, size in sizes if t > 3.0]
    want = rate / 8 * 0.25
    assert min(settled) > 0.85 * want and max(settled) < 1.15 * want


def test_where_nothing_queues_the_pool_grows_before_its_first_epoch_ends():
    """Sixteen uploads over a 10 ms path into a pool that starts small
    (64 KiB, four segments each): their segments wait little, so the pool
    grows as soon as the epoch has received more than it, in the epoch the
    data started, where the epoch rule alone would hold it a quarter
    second; the windows offered then grow past the floor."""
    least = 64 << 10
    net, clients, servers = _connected((least, 64 << 20), 16)
    pool = servers[0].rcv_pool
    data = memoryview(bytes(1 << 16))
    first: list[int] = []           # the epoch the data started in
    grown: list[int] = []           # ... and the one the pool first grew in

    def pump() -> bool:
        _send_and_read(clients, servers, data)
        if pool.nbytes and not first:
            first.append(pool.epoch)
        if pool.size > least and not grown:
            grown.append(pool.epoch)
            until.append(net.now + 0.05)
        return bool(until) and net.now > until[0]

    until: list[float] = []
    assert net.run_until(pump, 30)
    assert grown == first
    assert sum(s.rcv_wnd for s in servers) > 2 * 16 * 4 * 1448
