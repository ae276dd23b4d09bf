"""Which local port bind(addr, 0) and connect() pick: the rules of Linux's
``inet_csk_find_open_port`` and ``__inet_hash_connect`` (RFC 6056 3.3.4,
algorithm 4, "double-hash port selection").

connect() starts at ``low + (table_perturb[F & mask] + (F >> 32)) % remaining``
rounded down to the range's low parity, F = RFC 6056's keyed hash of the
destination; it tries every port of that parity before any of the other one,
and each success moves the destination's perturbation slot by ``i + 2`` with
``i = max(probes, random(8) * 2)``.  bind(0) takes the opposite parity first
and, for an SO_REUSEADDR sock, the lower half of the range before the upper.

The orders below were read from the kernel (``KERNEL_PORT_ORDERS``, run under
``unshare -n``); ``test_kernel_agrees_on_port_orders`` asks it again when it
can, so the expectations cannot drift from Linux.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import subprocess
import sys

import pytest

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings
from tcpio.core.tcp.inet_hashtables import INET_TABLE_PERTURB_SIZE, InetHashInfo
from tcpio.core.tcp.secure_seq import secure_port_offset
from tcpio.core.tcp.tcp_states import TCP_CLOSE, TCP_SYN_SENT, TCP_TIME_WAIT
from tests.conftest import REQUIRE_TAP

A1 = ip_aton("127.0.0.1")
A2 = ip_aton("127.0.0.2")
DST = ip_aton("127.0.0.5")
SECRET = b"port-choice"


class Sk:
    """The attributes the tables read, nothing else."""

    def __init__(self, reuseaddr: bool = False, state: int = TCP_CLOSE, laddr: int = 0,
                 lport: int = 0, raddr: int = 0, rport: int = 0) -> None:
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.state = state
        self.reuseaddr = reuseaddr


def hinfo(low: int = 32768, high: int = 60999, secret: bytes = SECRET) -> InetHashInfo:
    return InetHashInfo(Settings(ip_local_port_range=(low, high)), secret)


def tuple_free(h: InetHashInfo):
    """check_established that refuses only a 4-tuple already in ehash."""
    def check(sk: Sk, lport: int) -> bool:
        return h.lookup_established(sk.laddr, lport, sk.raddr, sk.rport) is None
    return check


def connect(h: InetHashInfo, raddr: int = DST, rport: int = 9000, laddr: int = A1) -> int | str:
    sk = Sk(False, TCP_SYN_SENT, laddr, 0, raddr, rport)
    try:
        h.inet_hash_connect(sk, tuple_free(h))
    except OSError as e:
        return errno.errorcode[e.errno]
    assert h.lookup_established(laddr, sk.lport, raddr, rport) is sk
    return sk.lport


def bind0(h: InetHashInfo, reuse: bool, addr: int = A1) -> int | str:
    try:
        return h.inet_csk_get_port(Sk(reuse), addr, 0)
    except OSError as e:
        return errno.errorcode[e.errno]


def raw_offset(raddr: int, rport: int = 9000, laddr: int = A1, secret: bytes = SECRET) -> int:
    """RFC 6056's F(local, remote, remote port, secret) as inet_hash_connect splits it."""
    return secure_port_offset(secret, laddr, raddr, rport)


def expected_start(f: int, perturb: int, low: int, high: int) -> int:
    """__inet_hash_connect's first port: (perturb + F >> 32) % remaining, low parity."""
    remaining = (high + 1 - low) & ~1
    return low + (((perturb + (f >> 32)) % remaining) & ~1)


# -- connect(): where the scan starts --------------------------------------------------


def test_connect_starts_at_the_rfc6056_offset_rounded_down_to_even():
    """RFC 6056 3.3.4 / __inet_hash_connect: offset = F(...) % remaining, then
    ``offset &= ~1`` so connect() prefers the low parity (bind(0) the other)."""
    odd_raw = 0
    for n in range(40):
        raddr = DST + n
        f = raw_offset(raddr)
        remaining = 61000 - 32768
        odd_raw += ((f >> 32) % remaining) & 1
        assert connect(hinfo(), raddr) == expected_start(f, 0, 32768, 60999), n
    assert odd_raw >= 10          # the rounding down was exercised


def test_connect_start_in_a_small_range_keeps_the_low_parity():
    # Range 1000..1099: remaining 100; the start is always even.
    starts = set()
    for n in range(60):
        f = raw_offset(DST + n)
        p = connect(hinfo(1000, 1099), DST + n)
        assert p == expected_start(f, 0, 1000, 1099)
        starts.add(p)
    assert all(p % 2 == 0 for p in starts) and len(starts) > 20


def _slot(f: int) -> int:
    return f & (INET_TABLE_PERTURB_SIZE - 1)


def _find(pred, base: int = 0x0B000000, limit: int = 200000) -> int:
    for n in range(limit):
        if pred(raw_offset(base + n)):
            return base + n
    raise AssertionError("no such destination")


def _perturb_after(k: int, raddr: int) -> int:
    """The slot counter of ``raddr`` after k connects to it, read from the port
    the (k+1)-th connect takes on an identical table (same secret, same RNG)."""
    h = hinfo()
    for _ in range(k):
        connect(h, raddr)
    port = connect(h, raddr)
    f = raw_offset(raddr)
    remaining = 61000 - 32768
    # port = low + (P + (F >> 32 & ~1)) % remaining with P even
    return (port - 32768 - ((f >> 32) & ~1)) % remaining


def test_destinations_in_one_perturbation_slot_share_its_counter():
    """RFC 6056 algorithm 4: the table index is a hash of the destination
    (Linux: F & (INET_TABLE_PERTURB_SIZE - 1)); every destination hashing to
    the slot starts from the counter earlier connects moved."""
    a = _find(lambda f: True)
    fa = raw_offset(a)
    k = 5
    perturb = _perturb_after(k, a)
    assert 10 <= perturb <= 80           # five steps of 2..16
    # Same slot, different high bits of the index (bit 8 set differently).
    same = _find(lambda f: _slot(f) == _slot(fa) and (f >> 8) & 1 != (fa >> 8) & 1,
                 base=0x0C000000)
    h = hinfo()
    for _ in range(k):
        connect(h, a)
    assert connect(h, same) == expected_start(raw_offset(same), perturb, 32768, 60999)


@pytest.mark.parametrize("bit", [0, 7], ids=["bit0", "bit7"])
def test_destinations_in_other_slots_do_not_see_the_counter(bit):
    """A destination whose slot differs (here in one bit of the index) starts
    at its own offset, untouched by connects elsewhere."""
    a = _find(lambda f: True)
    fa = raw_offset(a)
    other = _find(lambda f: _slot(f) == _slot(fa) ^ (1 << bit), base=0x0D000000)
    h = hinfo()
    for _ in range(5):
        connect(h, a)
    assert connect(h, other) == expected_start(raw_offset(other), 0, 32768, 60999)


def test_each_connect_moves_the_slot_by_an_even_step_from_2_to_16():
    """__inet_hash_connect: ``i = max(i, random(8) * step)``, the counter
    grows by ``i + step`` (step 2); with no contention i = 0, so successive
    ports to one destination differ by every even value 2..16, nothing else."""
    h = hinfo()
    ports = [connect(h) for _ in range(400)]
    steps = {(b - a) % (61000 - 32768) for a, b in itertools.pairwise(ports)}
    assert steps == set(range(2, 17, 2))


def test_a_contended_connect_moves_the_slot_past_the_ports_it_probed():
    """i = max(probes, random): after skipping k bound ports the counter moves
    by at least 2k + 2, so the next connect starts right after the port taken."""
    low, high = 20000, 29999
    start = expected_start(raw_offset(DST), 0, low, high)

    def at(k: int) -> int:
        return low + (start - low + k) % (high + 1 - low)

    h = hinfo(low, high)
    for j in range(12):                   # 12 even ports from the start: bound
        assert bind0_at(h, at(2 * j)) == "ok"
    assert connect(h) == at(24)
    # The next connect does not come back to the probed ports: it starts at +26.
    assert connect(h) == at(26)
    # That one probed nothing, so its step is the random one alone: the same
    # as the second step of a table with the same secret and no contention.
    twin = hinfo(low, high)
    ports = [connect(twin) for _ in range(3)]
    step = ports[2] - ports[1]
    assert connect(h) == at(26 + step)
    # (Sensitive to an off-by-one in the probe count: the start is even and
    # the random step is not the smallest.)
    assert ((raw_offset(DST) >> 32) % (high + 1 - low)) % 2 == 0 and step >= 4


def bind0_at(h: InetHashInfo, port: int) -> str:
    try:
        h.inet_csk_get_port(Sk(), A2, port)
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"


# -- connect(): parity order and exhaustion -------------------------------------------


def _classes(ports: list, low: int, half: int | None = None) -> list[str]:
    """Each port as its parity relative to ``low`` ("even"/"odd"), prefixed with
    "lo"/"hi" when ``half`` splits the range; errors as they are."""
    out = []
    for p in ports:
        if isinstance(p, str):
            out.append(p)
            continue
        c = "even" if (p - low) % 2 == 0 else "odd"
        if half is not None:
            c = ("lo-" if p < half else "hi-") + c
        out.append(c)
    return out


def connect_order(low: int, high: int, raddr: int = DST, n: int | None = None) -> list:
    h = hinfo(low, high)
    n = high - low + 2 if n is None else n
    return [connect(h, raddr) for _ in range(n)]


# Kernel (KERNEL_PORT_ORDERS): 9 connects to one destination, range 40000-40007.
CONNECT_8 = ["even"] * 4 + ["odd"] * 4 + ["EADDRNOTAVAIL"]


@pytest.mark.parametrize("n", range(12))
def test_connect_tries_every_even_port_before_any_odd_one(n):
    """__inet_hash_connect: the low-parity pass covers the whole range, then
    ``offset++`` and the other parity; then EADDRNOTAVAIL.  Several
    destinations, so every starting offset (and the wrap at the range's end)
    is exercised."""
    got = connect_order(40000, 40007, DST + n)
    assert _classes(got, 40000) == CONNECT_8
    assert sorted(got[:8]) == list(range(40000, 40008))


def test_connect_starts_cover_every_even_offset():
    # The parametrized test above meets every start in 40000..40006.
    starts = {connect_order(40000, 40007, DST + n, 1)[0] for n in range(12)}
    assert starts == {40000, 40002, 40004, 40006}


def test_connect_start_in_an_odd_sized_range_uses_an_even_window():
    """remaining = high + 1 - low rounded down to even (``remaining &= ~1``):
    in a 99-port range the start is F % 98, so the last port is never a start."""
    for n in range(60):
        f = raw_offset(DST + n)
        assert connect(hinfo(1000, 1098), DST + n) == expected_start(f, 0, 1000, 1098)
    # (The test can tell: most starts would differ with remaining = 99.)
    assert sum(((raw_offset(DST + n) >> 32) % 98) & ~1 != ((raw_offset(DST + n) >> 32) % 99) & ~1
               for n in range(60)) > 30


def test_connect_in_a_nine_port_range_stays_in_the_range():
    """Kernel (KERNEL_PORT_ORDERS "connect9"): 8 or 9 connects to one
    destination succeed, all inside the range (the scan wraps at high + 1),
    then EADDRNOTAVAIL."""
    for n in range(16):
        got = connect_order(40000, 40008, DST + n, 11)
        ports = [p for p in got if isinstance(p, int)]
        assert got[len(ports):] == ["EADDRNOTAVAIL"] * (11 - len(ports))
        assert 8 <= len(ports) <= 9 and len(set(ports)) == len(ports)
        assert all(40000 <= p <= 40008 for p in ports)


def test_a_one_port_range_serves_each_destination_once():
    """remaining = 1 (not rounded to 0): the single port is used, once per
    destination (4-tuple), and shared across destinations."""
    h = hinfo(5000, 5000)
    assert connect(h, DST) == 5000
    assert connect(h, DST) == "EADDRNOTAVAIL"
    assert connect(h, DST + 1) == 5000
    assert connect(h, DST, rport=9001) == 5000
    assert len(h.bind_owners(5000)) == 3


def test_a_two_port_range_gives_one_destination_both_ports():
    h = hinfo(5000, 5001)
    assert sorted([connect(h), connect(h)]) == [5000, 5001]
    assert connect(h) == "EADDRNOTAVAIL"


def test_an_empty_port_range_fails_connect_with_eaddrnotavail():
    """No port to offer (low > high): EADDRNOTAVAIL, as when all are taken."""
    assert connect(hinfo(5000, 4999)) == "EADDRNOTAVAIL"
    assert connect(hinfo(5000, 4990)) == "EADDRNOTAVAIL"


def test_connect_never_offers_a_port_past_the_range():
    """The scan wraps at ``high`` (port -= remaining), not one past it."""
    for n in range(30):
        for p in connect_order(40000, 40005, DST + n):
            assert p == "EADDRNOTAVAIL" or 40000 <= p <= 40005


def test_connect_shares_a_connect_port_only_when_the_tuple_is_free():
    """A bucket made by connect (connect_only) is shared with another
    destination when check_established agrees; with a one-port range a second
    connect to the same destination has nothing left."""
    h = hinfo(7000, 7000)
    assert connect(h, DST, 80) == 7000
    assert h.bhash[7000].connect_only
    assert connect(h, DST, 81) == 7000
    assert connect(h, DST, 80) == "EADDRNOTAVAIL"


def test_connect_skips_a_port_bound_with_reuseaddr_too():
    """Any bind()-ed bucket (SO_REUSEADDR or not) is skipped:
    connect() only shares ports that connect() took."""
    h = hinfo(7000, 7001)
    s = Sk(True)
    h.inet_csk_get_port(s, A1, 7000)
    assert not h.bhash[7000].connect_only
    assert connect(h, DST, 80) == 7001
    assert connect(h, DST, 81) == 7001
    assert connect(h, DST, 80) == "EADDRNOTAVAIL"


# Kernel (KERNEL_SHARING below), port range 40000-40000: a connect() takes
# 40000; another sock then bind()s 127.0.0.2:40000 (no overlap with the
# connection's 127.0.0.1), with or without SO_REUSEADDR; a second connect() to
# another destination can no longer share the port; nor can connect() take
# a port (42000, the whole range then) that a SO_REUSEADDR sock bind()-ed.
SHARING = {"reuse1": [40000, "EADDRNOTAVAIL"], "reuse0": [40000, "EADDRNOTAVAIL"],
           "bound_reuse_then_connect": "EADDRNOTAVAIL"}


def _sharing_ours() -> dict:
    out = {}
    for reuse in (1, 0):
        h = hinfo(40000, 40000)
        first = connect(h, DST, 9000)
        h.inet_csk_get_port(Sk(bool(reuse)), A2, 40000)
        out[f"reuse{reuse}"] = [first, connect(h, DST, 9001)]
    h = hinfo(42000, 42000)
    h.inet_csk_get_port(Sk(True), A1, 42000)
    out["bound_reuse_then_connect"] = connect(h, DST, 9000)
    return out


def test_a_bind_on_a_connect_port_stops_connect_sharing_it():
    """inet_csk_update_fastreuse sets fastreuseport = 0 for any bind() (no
    SO_REUSEPORT), and __inet_hash_connect skips a bucket whose fastreuse or
    fastreuseport is >= 0: from then on connect() leaves the port alone,
    SO_REUSEADDR or not."""
    assert _sharing_ours() == SHARING


def test_connect_shares_the_port_again_only_after_the_bucket_is_gone():
    h = hinfo(40000, 40000)
    c1 = Sk(False, TCP_SYN_SENT, A1, 0, DST, 9000)
    h.inet_hash_connect(c1, tuple_free(h))
    b = Sk()
    h.inet_csk_get_port(b, A2, 40000)
    h.inet_put_port(b)                     # the bind()-ed sock leaves ...
    assert connect(h, DST, 9001) == "EADDRNOTAVAIL"   # ... the bucket stays bind-marked
    h.ehash_remove(c1)
    h.inet_put_port(c1)                    # last owner gone: bucket freed
    assert connect(h, DST, 9001) == 40000


KERNEL_SHARING = r"""
import errno, json, socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
    f.write("40000 40000")
ls = []
for p in range(9000, 9006):
    l = socket.socket(); l.bind(("127.0.0.5", p)); l.listen(100); ls.append(l)
def conn(port):
    c = socket.socket()
    try:
        c.connect(("127.0.0.5", port)); return c, c.getsockname()[1]
    except OSError as e:
        return c, errno.errorcode[e.errno]
res = {}
for reuse in (1, 0):
    c1, p1 = conn(9002 + 2 * reuse)
    b = socket.socket()
    if reuse:
        b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    b.bind(("127.0.0.2", 40000))
    c2, p2 = conn(9003 + 2 * reuse)
    res[f"reuse{reuse}"] = [p1, p2]
    for s in (c1, b, c2):
        s.close()
with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
    f.write("42000 42000")
a = socket.socket(); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
a.bind(("127.0.0.1", 42000))
c, res["bound_reuse_then_connect"] = conn(9000)
print(json.dumps(res))
"""


def test_kernel_agrees_on_sharing():
    assert _ask_kernel(KERNEL_SHARING) == SHARING


def test_connect_recycling_the_last_timewait_keeps_the_port_in_bhash():
    """check_established may kill the port's only (time-wait) owner, which
    frees the bucket; the new sock must still end up owning the port."""
    h = hinfo(7000, 7000)
    first = Sk(False, TCP_SYN_SENT, A1, 0, DST, 80)
    h.inet_hash_connect(first, tuple_free(h))
    tw = Sk(False, TCP_TIME_WAIT, A1, 7000, DST, 80)
    h.inet_twsk_hashdance(tw, first)
    assert h.bind_owners(7000) == [tw]

    def recycle(sk: Sk, lport: int) -> bool:
        other = h.lookup_established(sk.laddr, lport, sk.raddr, sk.rport)
        if other is tw:
            h.inet_twsk_kill(tw)
            return True
        return other is None

    new = Sk(False, TCP_SYN_SENT, A1, 0, DST, 80)
    h.inet_hash_connect(new, recycle)
    assert new.lport == 7000
    assert h.bind_owners(7000) == [new]
    assert h.lookup_established(A1, 7000, DST, 80) is new
    # The port is still held: bind() to it conflicts.
    assert bind0_at(h, 7000) == "ok"      # A2 does not overlap A1 ...
    s = Sk()
    with pytest.raises(OSError):
        h.inet_csk_get_port(s, 0, 7000)   # ... but 0.0.0.0 does


# -- bind(addr, 0) --------------------------------------------------------------------

# Kernel (KERNEL_PORT_ORDERS), bind(127.0.0.1, 0) until it fails, ranges from
# 41000: a plain sock takes every odd port, then every even one; an
# SO_REUSEADDR sock does that in the lower half (low + ((n >> 2) << 1)) first,
# then in the upper half.  A 3-port range has remaining 2: 41002 is never used.
BIND0_ORDERS = {
    (False, 41003): ["odd"] * 2 + ["even"] * 2 + ["EADDRINUSE"],
    (False, 41007): ["odd"] * 4 + ["even"] * 4 + ["EADDRINUSE"],
    (False, 41015): ["odd"] * 8 + ["even"] * 8 + ["EADDRINUSE"],
    (False, 41002): ["odd", "even", "EADDRINUSE", "EADDRINUSE"],
    (True, 41003): ["lo-odd", "lo-even", "hi-odd", "hi-even", "EADDRINUSE"],
    (True, 41007): ["lo-odd"] * 2 + ["lo-even"] * 2 + ["hi-odd"] * 2 + ["hi-even"] * 2
    + ["EADDRINUSE"],
    (True, 41015): ["lo-odd"] * 4 + ["lo-even"] * 4 + ["hi-odd"] * 4 + ["hi-even"] * 4
    + ["EADDRINUSE"],
    (True, 41002): ["lo-odd", "lo-even", "EADDRINUSE", "EADDRINUSE"],
}


def bind0_order(reuse: bool, high: int, secret: bytes = SECRET) -> list:
    h = hinfo(41000, high, secret)
    return [bind0(h, reuse) for _ in range(high - 41000 + 2)]


def _half(high: int) -> int:
    n = high + 1 - 41000
    return 41000 + ((n >> 2) << 1) if n >= 4 else 41000 + n


@pytest.mark.parametrize("reuse,high", sorted(BIND0_ORDERS), ids=lambda v: str(v))
@pytest.mark.parametrize("secret", [b"a", b"b", b"c", b"d"])
def test_bind0_port_order_like_linux(reuse, high, secret):
    """inet_csk_find_open_port: odd offset first (``offset |= 1``), the other
    parity after (``offset--``); SO_REUSEADDR: lower half, then upper half
    (``attempt_half``).  Every port of the (even-sized) window once."""
    got = bind0_order(reuse, high, secret)
    half = _half(high) if reuse else None
    assert _classes(got, 41000, half) == BIND0_ORDERS[(reuse, high)]
    ports = [p for p in got if isinstance(p, int)]
    window = (high + 1 - 41000) & ~1
    assert sorted(ports) == list(range(41000, 41000 + window))


def test_bind0_in_a_four_port_range_with_reuseaddr_is_fully_determined():
    # Kernel: 41001, 41000, 41003, 41002 every time (halves of two ports).
    assert bind0_order(True, 41003) == [41001, 41000, 41003, 41002, "EADDRINUSE"]


def test_bind0_start_is_random_within_the_parity():
    """The first port is random (get_random_u32_below), not always the lowest
    odd one: over several tables every odd port of the range comes first."""
    firsts = {bind0_order(False, 41007, bytes([i]))[0] for i in range(40)}
    assert firsts == {41001, 41003, 41005, 41007}


@pytest.mark.parametrize("reuse", [False, True])
def test_bind0_in_a_one_port_range_takes_that_port_once(reuse):
    """remaining = 1 is not rounded down to 0 (``if remaining > 1``), and the
    scan wraps onto it (kernel: 41000, then EADDRINUSE)."""
    h = hinfo(41000, 41000)
    assert [bind0(h, reuse) for _ in range(3)] == [41000, "EADDRINUSE", "EADDRINUSE"]


def test_bind0_in_an_empty_port_range_is_eaddrinuse():
    for high in (40999, 40990):
        assert bind0(hinfo(41000, high), False) == "EADDRINUSE"
        assert bind0(hinfo(41000, high), True) == "EADDRINUSE"


def test_bind0_upper_half_scan_starts_anywhere_in_the_upper_half():
    """attempt_half == 2: the scan is over [half, high) with a random start
    there (``low = half``), so once the lower half is full every upper odd
    port is about equally likely to come first, not mostly the lowest one."""
    firsts = []
    for i in range(200):
        h = hinfo(41000, 41015, b"half-%d" % i)
        got = [bind0(h, True) for _ in range(9)]
        assert all(p < 41008 for p in got[:8])
        firsts.append(got[8])
    counts = {p: firsts.count(p) for p in (41009, 41011, 41013, 41015)}
    assert sum(counts.values()) == 200
    assert all(25 <= n <= 80 for n in counts.values()), counts


def test_bind0_shares_no_port_even_between_reuseaddr_socks():
    """relax = false: an automatically chosen port has no overlapping owner,
    even when both socks have SO_REUSEADDR (kernel: EADDRINUSE when full)."""
    h = hinfo(41000, 41003)
    got = [bind0(h, True) for _ in range(5)]
    assert got[-1] == "EADDRINUSE" and len(set(got[:4])) == 4
    # Another address does not overlap 127.0.0.1: it gets ports again.
    assert isinstance(bind0(h, True, A2), int)


# -- the kernel itself ------------------------------------------------------------------

KERNEL_PORT_ORDERS = r"""
import errno, json, socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
def port_range(lo, hi):
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
        f.write(f"{lo} {hi}")
res = {}
def connects(lo, hi, n, tag):
    port_range(lo, hi)
    l = socket.socket(); l.bind(("127.0.0.5", 9000)); l.listen(100)
    keep, out = [l], []
    for _ in range(n):
        c = socket.socket()
        try:
            c.connect(("127.0.0.5", 9000)); out.append(c.getsockname()[1]); keep.append(c)
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    res[tag] = out
    for s in keep:
        s.close()
connects(40000, 40007, 9, "connect8")
connects(40100, 40108, 10, "connect9")
for reuse in (0, 1):
    for hi in (41003, 41007, 41015, 41002):
        port_range(41000, hi)
        out, keep = [], []
        for _ in range(hi - 41000 + 2):
            s = socket.socket()
            if reuse:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", 0)); out.append(s.getsockname()[1]); keep.append(s)
            except OSError as e:
                out.append(errno.errorcode[e.errno])
        res[f"bind0-{reuse}-{hi}"] = out
        for s in keep:
            s.close()
print(json.dumps(res))
"""


def _ask_kernel(code: str, timeout: float = 120):
    """Run ``code`` in a new network namespace and return its JSON.  No root
    or no ``unshare -n``: skip, or fail under TCPIO_REQUIRE_TAP=1 (CI has
    both); anything else going wrong is a failure."""
    reason = None
    if os.geteuid() != 0:
        reason = "asking the kernel needs root (unshare -n)"
    elif shutil.which("unshare") is None:
        reason = "no unshare to ask the kernel"
    elif subprocess.run(["unshare", "-n", "true"], capture_output=True,
                        timeout=30, check=False).returncode != 0:
        reason = "unshare -n does not work here"
    if reason is not None:
        if REQUIRE_TAP:
            pytest.fail(f"TCPIO_REQUIRE_TAP=1 but {reason}")
        pytest.skip(reason)
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_ehash_remove_says_whether_it_removed():
    """docs/internals.md: ``ehash_remove(sk)`` removes only that exact object
    and returns a bool."""
    h = hinfo()
    a = Sk(False, TCP_SYN_SENT, A1, 5000, DST, 80)
    b = Sk(False, TCP_SYN_SENT, A1, 5000, DST, 80)
    h.ehash_insert(a)
    assert h.ehash_remove(b) is False
    assert h.lookup_established(A1, 5000, DST, 80) is a
    assert h.ehash_remove(a) is True
    assert h.ehash_remove(a) is False
    assert h.lookup_established(A1, 5000, DST, 80) is None


def test_kernel_agrees_on_port_orders():
    k = _ask_kernel(KERNEL_PORT_ORDERS)
    assert _classes(k["connect8"], 40000) == CONNECT_8
    c9 = k["connect9"]
    ports = [p for p in c9 if isinstance(p, int)]
    assert c9[len(ports):] == ["EADDRNOTAVAIL"] * (10 - len(ports))
    assert 8 <= len(ports) <= 9 and len(set(ports)) == len(ports)
    assert all(40100 <= p <= 40108 for p in ports)
    for (reuse, high), want in BIND0_ORDERS.items():
        got = k[f"bind0-{int(reuse)}-{high}"]
        assert _classes(got, 41000, _half(high) if reuse else None) == want, (reuse, high)
    assert k["bind0-1-41003"] == [41001, 41000, 41003, 41002, "EADDRINUSE"]
