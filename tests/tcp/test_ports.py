"""Ports and bind(): inet_csk_get_port conflicts and inet_hash_connect autobind.

The reference is the Linux kernel.  BIND_TABLE below was produced by running
KERNEL_ORACLE (in this file) under ``unshare -n`` on Linux 6.18 with Python
sockets on loopback, and ``test_kernel_agrees_with_table`` re-runs it when
possible (root + unshare), so the table cannot drift from the kernel.

Table columns: what already holds port P (a bind()-ed sock, a listener, an
established child whose listener has closed, or a time-wait sock from a
connection the server closed first, then its listener closed), its
SO_REUSEADDR, its address (the listener's address; children and time-wait
socks always sit on A1, the connection's address), the new sock's address,
its SO_REUSEADDR, then bind(P) and, if that worked, listen().
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
from conftest import REQUIRE_TAP

from tcpio.core.addr import ip_aton
from tcpio.core.settings import Settings
from tcpio.core.tcp.inet_hashtables import InetHashInfo
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_ESTABLISHED,
    TCP_LISTEN,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
)

A1 = ip_aton("127.0.0.1")
A2 = ip_aton("127.0.0.2")
ANY = 0
P = 40000


class Sk:
    """The attributes the tables rely on, nothing else."""

    def __init__(self, reuseaddr: bool = False, state: int = TCP_CLOSE, laddr: int = 0,
                 lport: int = 0, raddr: int = 0, rport: int = 0) -> None:
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport
        self.state = state
        self.reuseaddr = bool(reuseaddr)

    def __repr__(self) -> str:
        return f"Sk({self.laddr:#x}:{self.lport} state={self.state} reuse={self.reuseaddr})"


def hinfo(port_range: tuple[int, int] = (32768, 60999), secret: bytes = b"s1") -> InetHashInfo:
    return InetHashInfo(Settings(ip_local_port_range=port_range), secret)


def bind(h: InetHashInfo, sk: Sk, addr: int, port: int) -> str:
    try:
        h.inet_csk_get_port(sk, addr, port)
    except OSError as e:
        return errno.errorcode[e.errno]
    return "ok"


def listen(h: InetHashInfo, sk: Sk) -> str:
    """inet_csk_listen_start: state LISTEN, then get_port again."""
    sk.state = TCP_LISTEN
    try:
        h.inet_csk_get_port(sk, sk.laddr, sk.lport)
    except OSError as e:
        sk.state = TCP_CLOSE
        return errno.errorcode[e.errno]
    h.listen_add(sk)
    return "ok"


def make_existing(h: InetHashInfo, kind: str, reuse: int, addr: int) -> None:
    """Put the table's first sock on port P, the way the kernel script did."""
    first = Sk(reuse)
    assert bind(h, first, addr, P) == "ok"
    if kind == "bound":
        return
    assert listen(h, first) == "ok"
    if kind == "listen":
        return
    # A connection from 127.0.0.1 accepted on A1: the child inherits the port
    # and the listener's SO_REUSEADDR; then the listener closes.
    child = Sk(reuse, TCP_ESTABLISHED, A1, P, A1, 50000)
    h.inet_inherit_port(first, child)
    h.ehash_insert(child)
    if kind == "timewait":
        tw = Sk(reuse, TCP_TIME_WAIT, A1, P, A1, 50000)
        h.inet_twsk_hashdance(tw, child)
    h.listen_remove(first)
    h.inet_put_port(first)


BIND_TABLE = [
    ("bound", 0, A1, A1, 0, "EADDRINUSE", "-"),
    ("bound", 0, A1, A1, 1, "EADDRINUSE", "-"),
    ("bound", 0, A1, ANY, 0, "EADDRINUSE", "-"),
    ("bound", 0, A1, ANY, 1, "EADDRINUSE", "-"),
    ("bound", 0, A1, A2, 0, "ok", "ok"),
    ("bound", 0, A1, A2, 1, "ok", "ok"),
    ("bound", 0, ANY, A1, 0, "EADDRINUSE", "-"),
    ("bound", 0, ANY, A1, 1, "EADDRINUSE", "-"),
    ("bound", 0, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("bound", 0, ANY, ANY, 1, "EADDRINUSE", "-"),
    ("bound", 0, ANY, A2, 0, "EADDRINUSE", "-"),
    ("bound", 0, ANY, A2, 1, "EADDRINUSE", "-"),
    ("bound", 1, A1, A1, 0, "EADDRINUSE", "-"),
    ("bound", 1, A1, A1, 1, "ok", "ok"),
    ("bound", 1, A1, ANY, 0, "EADDRINUSE", "-"),
    ("bound", 1, A1, ANY, 1, "ok", "ok"),
    ("bound", 1, A1, A2, 0, "ok", "ok"),
    ("bound", 1, A1, A2, 1, "ok", "ok"),
    ("bound", 1, ANY, A1, 0, "EADDRINUSE", "-"),
    ("bound", 1, ANY, A1, 1, "ok", "ok"),
    ("bound", 1, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("bound", 1, ANY, ANY, 1, "ok", "ok"),
    ("bound", 1, ANY, A2, 0, "EADDRINUSE", "-"),
    ("bound", 1, ANY, A2, 1, "ok", "ok"),
    ("listen", 0, A1, A1, 0, "EADDRINUSE", "-"),
    ("listen", 0, A1, A1, 1, "EADDRINUSE", "-"),
    ("listen", 0, A1, ANY, 0, "EADDRINUSE", "-"),
    ("listen", 0, A1, ANY, 1, "EADDRINUSE", "-"),
    ("listen", 0, A1, A2, 0, "ok", "ok"),
    ("listen", 0, A1, A2, 1, "ok", "ok"),
    ("listen", 0, ANY, A1, 0, "EADDRINUSE", "-"),
    ("listen", 0, ANY, A1, 1, "EADDRINUSE", "-"),
    ("listen", 0, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("listen", 0, ANY, ANY, 1, "EADDRINUSE", "-"),
    ("listen", 0, ANY, A2, 0, "EADDRINUSE", "-"),
    ("listen", 0, ANY, A2, 1, "EADDRINUSE", "-"),
    ("listen", 1, A1, A1, 0, "EADDRINUSE", "-"),
    ("listen", 1, A1, A1, 1, "EADDRINUSE", "-"),
    ("listen", 1, A1, ANY, 0, "EADDRINUSE", "-"),
    ("listen", 1, A1, ANY, 1, "EADDRINUSE", "-"),
    ("listen", 1, A1, A2, 0, "ok", "ok"),
    ("listen", 1, A1, A2, 1, "ok", "ok"),
    ("listen", 1, ANY, A1, 0, "EADDRINUSE", "-"),
    ("listen", 1, ANY, A1, 1, "EADDRINUSE", "-"),
    ("listen", 1, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("listen", 1, ANY, ANY, 1, "EADDRINUSE", "-"),
    ("listen", 1, ANY, A2, 0, "EADDRINUSE", "-"),
    ("listen", 1, ANY, A2, 1, "EADDRINUSE", "-"),
    ("estab", 0, A1, A1, 0, "EADDRINUSE", "-"),
    ("estab", 0, A1, A1, 1, "EADDRINUSE", "-"),
    ("estab", 0, A1, ANY, 0, "EADDRINUSE", "-"),
    ("estab", 0, A1, ANY, 1, "EADDRINUSE", "-"),
    ("estab", 0, A1, A2, 0, "ok", "ok"),
    ("estab", 0, A1, A2, 1, "ok", "ok"),
    ("estab", 0, ANY, A1, 0, "EADDRINUSE", "-"),
    ("estab", 0, ANY, A1, 1, "EADDRINUSE", "-"),
    ("estab", 0, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("estab", 0, ANY, ANY, 1, "EADDRINUSE", "-"),
    ("estab", 0, ANY, A2, 0, "ok", "ok"),
    ("estab", 0, ANY, A2, 1, "ok", "ok"),
    ("estab", 1, A1, A1, 0, "EADDRINUSE", "-"),
    ("estab", 1, A1, A1, 1, "ok", "ok"),
    ("estab", 1, A1, ANY, 0, "EADDRINUSE", "-"),
    ("estab", 1, A1, ANY, 1, "ok", "ok"),
    ("estab", 1, A1, A2, 0, "ok", "ok"),
    ("estab", 1, A1, A2, 1, "ok", "ok"),
    ("estab", 1, ANY, A1, 0, "EADDRINUSE", "-"),
    ("estab", 1, ANY, A1, 1, "ok", "ok"),
    ("estab", 1, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("estab", 1, ANY, ANY, 1, "ok", "ok"),
    ("estab", 1, ANY, A2, 0, "ok", "ok"),
    ("estab", 1, ANY, A2, 1, "ok", "ok"),
    ("timewait", 0, A1, A1, 0, "EADDRINUSE", "-"),
    ("timewait", 0, A1, A1, 1, "EADDRINUSE", "-"),
    ("timewait", 0, A1, ANY, 0, "EADDRINUSE", "-"),
    ("timewait", 0, A1, ANY, 1, "EADDRINUSE", "-"),
    ("timewait", 0, A1, A2, 0, "ok", "ok"),
    ("timewait", 0, A1, A2, 1, "ok", "ok"),
    ("timewait", 0, ANY, A1, 0, "EADDRINUSE", "-"),
    ("timewait", 0, ANY, A1, 1, "EADDRINUSE", "-"),
    ("timewait", 0, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("timewait", 0, ANY, ANY, 1, "EADDRINUSE", "-"),
    ("timewait", 0, ANY, A2, 0, "ok", "ok"),
    ("timewait", 0, ANY, A2, 1, "ok", "ok"),
    ("timewait", 1, A1, A1, 0, "EADDRINUSE", "-"),
    ("timewait", 1, A1, A1, 1, "ok", "ok"),
    ("timewait", 1, A1, ANY, 0, "EADDRINUSE", "-"),
    ("timewait", 1, A1, ANY, 1, "ok", "ok"),
    ("timewait", 1, A1, A2, 0, "ok", "ok"),
    ("timewait", 1, A1, A2, 1, "ok", "ok"),
    ("timewait", 1, ANY, A1, 0, "EADDRINUSE", "-"),
    ("timewait", 1, ANY, A1, 1, "ok", "ok"),
    ("timewait", 1, ANY, ANY, 0, "EADDRINUSE", "-"),
    ("timewait", 1, ANY, ANY, 1, "ok", "ok"),
    ("timewait", 1, ANY, A2, 0, "ok", "ok"),
    ("timewait", 1, ANY, A2, 1, "ok", "ok"),
]


_NAMES = {A1: "A1", A2: "A2", ANY: "ANY"}


@pytest.mark.parametrize(
    "kind,r1,a1,a2,r2,want_bind,want_listen", BIND_TABLE,
    ids=[f"{k}-reuse{r1}-{_NAMES[a1]}-vs-{_NAMES[a2]}-reuse{r2}"
         for k, r1, a1, a2, r2, _, _ in BIND_TABLE])
def test_bind_conflicts_like_linux(kind, r1, a1, a2, r2, want_bind, want_listen):
    h = hinfo()
    make_existing(h, kind, r1, a1)
    new = Sk(r2)
    got = bind(h, new, a2, P)
    assert got == want_bind
    if got == "ok":
        assert (new.laddr, new.lport) == (a2, P)
        assert listen(h, new) == want_listen
    else:
        assert not any(o is new for o in h.bind_owners(P))


@pytest.mark.parametrize("a1,a2", [(A1, A1), (A1, ANY), (ANY, A1), (ANY, ANY)],
                         ids=["A1-A1", "A1-ANY", "ANY-A1", "ANY-ANY"])
def test_two_reuseaddr_socks_share_a_port_but_only_one_listens(a1, a2):
    # Kernel: both bind() calls succeed; the second listen() fails EADDRINUSE.
    h = hinfo()
    s1, s2 = Sk(True), Sk(True)
    assert bind(h, s1, a1, P) == "ok"
    assert bind(h, s2, a2, P) == "ok"
    assert listen(h, s1) == "ok"
    assert listen(h, s2) == "EADDRINUSE"
    assert s2.state == TCP_CLOSE
    assert h.lookup_listener(A1, P) is s1


def test_put_port_releases_the_port():
    h = hinfo()
    s1 = Sk()
    assert bind(h, s1, ANY, P) == "ok"
    assert bind(h, Sk(), ANY, P) == "EADDRINUSE"
    h.inet_put_port(s1)
    assert P not in h.bhash
    assert bind(h, Sk(), ANY, P) == "ok"


def test_timewait_killed_frees_the_port():
    h = hinfo()
    make_existing(h, "timewait", 0, A1)
    assert bind(h, Sk(), ANY, P) == "EADDRINUSE"
    (tw,) = h.bind_owners(P)
    assert tw.state == TCP_TIME_WAIT
    assert h.lookup(A1, P, A1, 50000) is tw
    h.inet_twsk_kill(tw)
    assert h.lookup(A1, P, A1, 50000) is None
    assert bind(h, Sk(), ANY, P) == "ok"


# -- bind(addr, 0) ------------------------------------------------------------------


def test_bind_port0_picks_odd_ports_in_range_like_linux():
    # Kernel (KERNEL_ORACLE "bind0_ports"): 20 bind(0)s all got odd ports: the
    # range starts even and inet_csk_find_open_port takes the parity
    # connect() does not prefer.
    h = hinfo()
    ports = [h.inet_csk_get_port(Sk(), A1, 0) for _ in range(200)]
    assert all(32768 <= p <= 60999 and p % 2 == 1 for p in ports)
    assert len(set(ports)) == len(ports)


def test_bind_port0_with_reuseaddr_prefers_lower_half():
    h = hinfo()
    ports = [h.inet_csk_get_port(Sk(True), A1, 0) for _ in range(50)]
    half = 32768 + (((61000 - 32768) >> 2) << 1)
    assert all(32768 <= p < half for p in ports)


def test_bind_port0_exhaustion_is_eaddrinuse():
    h = hinfo((1000, 1009))
    ports = {h.inet_csk_get_port(Sk(), ANY, 0) for _ in range(10)}
    assert ports == set(range(1000, 1010))
    assert bind(h, Sk(), ANY, 0) == "EADDRINUSE"
    # A different address does not help when the holders are on 0.0.0.0.
    assert bind(h, Sk(), A1, 0) == "EADDRINUSE"


def test_bind_port0_skips_only_conflicting_ports():
    h = hinfo((1000, 1003))
    for p in (1000, 1001, 1002):
        assert bind(h, Sk(laddr=A1), A1, p) == "ok"
    # Port 1003 is the only one free for A1 ...
    assert h.inet_csk_get_port(Sk(), A1, 0) == 1003
    # ... but A2 does not overlap A1, so every port works for it.
    assert 1000 <= h.inet_csk_get_port(Sk(), A2, 0) <= 1003


# -- connect(): inet_hash_connect ---------------------------------------------------


def connecting(laddr: int = A1, raddr: int = A2, rport: int = 80) -> Sk:
    return Sk(False, TCP_SYN_SENT, laddr, 0, raddr, rport)


def tuple_free(h: InetHashInfo):
    """A check_established that only refuses tuples already in ehash."""
    def check(sk: Sk, lport: int) -> bool:
        return h.lookup_established(sk.laddr, lport, sk.raddr, sk.rport) is None
    return check


def test_connect_ports_even_and_successive_like_linux():
    # Kernel (KERNEL_ORACLE "connect_ports"): 20 connects to one destination
    # got even ports increasing by 2..16 (the perturbation table step is
    # i + 2 with i = max(i, random(8) * 2)).
    h = hinfo()
    ports = []
    for _ in range(20):
        sk = connecting()
        h.inet_hash_connect(sk, tuple_free(h))
        ports.append(sk.lport)
        assert h.lookup_established(A1, sk.lport, A2, 80) is sk
    assert all(p % 2 == 0 for p in ports)
    steps = [(b - a) % (61000 - 32768) for a, b in itertools.pairwise(ports)]
    assert all(2 <= s <= 16 and s % 2 == 0 for s in steps), steps


def test_connect_start_depends_on_destination_and_secret():
    # RFC 6056: the offset is F(laddr, raddr, rport, secret).
    def first_port(secret: bytes, raddr: int, rport: int) -> int:
        h = hinfo(secret=secret)
        sk = connecting(raddr=raddr, rport=rport)
        h.inet_hash_connect(sk, tuple_free(h))
        return sk.lport

    a = {first_port(b"k1", A2 + i, 80) for i in range(16)}
    assert len(a) >= 12          # unrelated starts for different destinations
    assert first_port(b"k1", A2, 80) == first_port(b"k1", A2, 80)   # deterministic
    b = {first_port(b"k%d" % i, A2, 80) for i in range(16)}
    assert len(b) >= 12          # and a different secret moves the start


def test_connect_shares_ports_across_destinations_not_with_bind():
    h = hinfo((1000, 1001))
    s1 = connecting(raddr=A2, rport=80)
    h.inet_hash_connect(s1, tuple_free(h))
    # Same port range, other destination: the port may be shared (tuple differs).
    s2 = connecting(raddr=A2, rport=81)
    h.inet_hash_connect(s2, tuple_free(h))
    s3 = connecting(raddr=A2, rport=80)
    h.inet_hash_connect(s3, tuple_free(h))
    assert {s1.lport, s3.lport} == {1000, 1001}
    # Exhausted for that destination.
    with pytest.raises(OSError) as ei:
        h.inet_hash_connect(connecting(raddr=A2, rport=80), tuple_free(h))
    assert ei.value.errno == errno.EADDRNOTAVAIL


def test_connect_skips_ports_held_by_bind_or_listen():
    h = hinfo((1000, 1003))
    for p in (1000, 1001, 1002):
        assert bind(h, Sk(), A1, p) == "ok"
    calls = []

    def check(answer):
        def f(sk, lport):
            calls.append(lport)
            return answer
        return f

    sk = connecting()
    h.inet_hash_connect(sk, check(True))
    assert sk.lport == 1003
    assert calls == []   # empty bucket: no tuple check needed (as in Linux)
    # Another destination shares 1003 when the tuple is free ...
    other = connecting(raddr=A2, rport=443)
    h.inet_hash_connect(other, check(True))
    assert other.lport == 1003 and calls == [1003]
    # ... and gets EADDRNOTAVAIL when it is not; the bound ports are never offered.
    with pytest.raises(OSError) as ei:
        h.inet_hash_connect(connecting(raddr=A2, rport=8080), check(False))
    assert ei.value.errno == errno.EADDRNOTAVAIL
    assert set(calls) == {1003}


def test_connect_may_recycle_a_timewait_tuple():
    h = hinfo((1000, 1001))
    tws = []
    for _ in range(2):
        tb_sk = connecting()
        h.inet_hash_connect(tb_sk, tuple_free(h))
        tw = Sk(False, TCP_TIME_WAIT, A1, tb_sk.lport, A2, 80)
        h.inet_twsk_hashdance(tw, tb_sk)
        tws.append(tw)
    assert sorted(t.lport for t in tws) == [1000, 1001]

    # A check_established that recycles time-wait tuples (tcp_twsk_unique).
    def recycle(sk, lport):
        other = h.lookup_established(sk.laddr, lport, sk.raddr, sk.rport)
        if other is None:
            return True
        if other.state == TCP_TIME_WAIT:
            h.inet_twsk_kill(other)
            return True
        return False

    new = connecting()
    h.inet_hash_connect(new, recycle)
    assert h.lookup_established(A1, new.lport, A2, 80) is new
    assert h.bind_owners(new.lport) == [new]


def test_connect_from_bound_sock_only_checks_the_tuple():
    h = hinfo()
    sk = Sk()
    assert bind(h, sk, A1, 5000) == "ok"
    sk.raddr, sk.rport, sk.state = A2, 80, TCP_SYN_SENT
    h.inet_hash_connect(sk, tuple_free(h))
    assert sk.lport == 5000 and h.lookup_established(A1, 5000, A2, 80) is sk
    sk2 = Sk(True)
    sk2.laddr, sk2.lport, sk2.raddr, sk2.rport = A1, 5000, A2, 80
    with pytest.raises(OSError) as ei:
        h.inet_hash_connect(sk2, tuple_free(h))
    assert ei.value.errno == errno.EADDRNOTAVAIL


# -- the kernel itself -----------------------------------------------------------------

KERNEL_ORACLE = r"""
import json, socket, subprocess, time
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
def mk(reuse):
    s = socket.socket()
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s
def existing(kind, reuse, addr, port):
    if kind in ("bound", "listen"):
        s = mk(reuse); s.bind((addr, port))
        if kind == "listen":
            s.listen()
        return [s]
    l = mk(reuse); l.bind((addr, port)); l.listen()
    c = socket.socket(); c.connect(("127.0.0.1", port))
    a, _ = l.accept(); l.close()
    if kind == "estab":
        return [a, c]
    a.close(); time.sleep(0.05); c.close(); time.sleep(0.1)   # server closes first
    return [c]
res = {}
port = 40000
A = {"A1": "127.0.0.1", "A2": "127.0.0.2", "ANY": "0.0.0.0"}
for kind, r1, a1, a2, r2 in json.loads(CASES):
    port += 1
    keep = existing(kind, r1, A[a1], port)
    s = mk(r2)
    try:
        s.bind((A[a2], port)); b = "ok"
    except OSError as e:
        b = e.errno
    lst = "-"
    if b == "ok":
        try:
            s.listen(); lst = "ok"
        except OSError as e:
            lst = e.errno
    res[repr((kind, r1, a1, a2, r2))] = (b, lst)
    s.close()
    for k in keep:
        k.close()
print(json.dumps(res))
"""


def _kernel_unavailable_reason() -> str | None:
    """Why the kernel cannot be asked here (no root, no unshare, no new
    network namespace), or None."""
    if os.geteuid() != 0:
        return "asking the kernel needs root (unshare -n)"
    if shutil.which("unshare") is None:
        return "no unshare to ask the kernel"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True,
                           timeout=30, check=False)
    if probe.returncode != 0:
        return f"unshare -n failed: {probe.stderr.strip()[:200]}"
    return None


def _ask_kernel(code: str, timeout: float = 120):
    """Run ``code`` under ``unshare -n`` and return the JSON it prints.

    Without root or a working ``unshare -n`` the test skips, or fails under
    TCPIO_REQUIRE_TAP=1 (``require_tap()``'s rule: CI has both).  Once the
    namespace works, anything else is a failure everywhere: a traceback or
    a non-zero exit of the oracle script, or output that is not its JSON."""
    reason = _kernel_unavailable_reason()
    if reason is not None:
        if REQUIRE_TAP:
            pytest.fail(f"TCPIO_REQUIRE_TAP=1 but {reason}")
        pytest.skip(reason)
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        pytest.fail(f"the kernel oracle exited with {out.returncode}:\n{out.stderr.strip()}",
                    pytrace=False)
    try:
        return json.loads(out.stdout)
    except ValueError:
        pytest.fail(f"the kernel oracle printed no JSON:\n{out.stdout[:500]}\n"
                    f"{out.stderr.strip()}", pytrace=False)


def test_kernel_agrees_with_table():
    cases = [(k, r1, _NAMES[a1], _NAMES[a2], r2) for k, r1, a1, a2, r2, _, _ in BIND_TABLE]
    code = f"CASES = {json.dumps(json.dumps(cases))}\n" + KERNEL_ORACLE
    got = _ask_kernel(code)
    for (k, r1, a1, a2, r2, want_bind, want_listen), case in zip(BIND_TABLE, cases):
        b, lst = got[repr(tuple(case))]
        b = b if b == "ok" else errno.errorcode[b]
        lst = lst if lst in ("ok", "-") else errno.errorcode[lst]
        assert (b, lst) == (want_bind, want_listen), case


# Range 40000-40003 with 40000..40002 held by SO_REUSEADDR socks bound to A1.
# Kernel answers (KERNEL_EXHAUSTION below): bind(A1, 0) -> 40003 (the only
# port with no overlapping owner), again -> EADDRINUSE (no sharing of an
# automatic port even with SO_REUSEADDR), bind(A2, 0) -> an odd port (no
# overlap with A1), connect() with every port taken by bind -> EADDRNOTAVAIL.
EXHAUSTION = {"first": 40003, "second": "EADDRINUSE", "other_addr_odd": True,
              "connect": "EADDRNOTAVAIL"}


def test_port0_and_connect_exhaustion_like_linux():
    h = hinfo((40000, 40003))
    for p in (40000, 40001, 40002):
        assert bind(h, Sk(True), A1, p) == "ok"
    first = Sk(True)
    assert bind(h, first, A1, 0) == "ok"
    got = {"first": first.lport, "second": bind(h, Sk(True), A1, 0)}
    other = Sk(True)
    assert bind(h, other, A2, 0) == "ok"
    got["other_addr_odd"] = other.lport % 2 == 1
    try:
        h.inet_hash_connect(connecting(A1, ip_aton("127.0.0.5"), 9000), tuple_free(h))
        got["connect"] = "ok"
    except OSError as e:
        got["connect"] = errno.errorcode[e.errno]
    assert got == EXHAUSTION


KERNEL_EXHAUSTION = r"""
import json, socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as f:
    f.write("40000 40003")
def mk():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s
def bind0(addr):
    s = mk()
    try:
        s.bind((addr, 0)); return s, s.getsockname()[1]
    except OSError as e:
        return s, e.errno
keep = []
for p in (40000, 40001, 40002):
    s = mk(); s.bind(("127.0.0.1", p)); keep.append(s)
res = {}
for name, addr in (("first", "127.0.0.1"), ("second", "127.0.0.1"), ("other", "127.0.0.2")):
    s, res[name] = bind0(addr); keep.append(s)
l = socket.socket(); l.bind(("127.0.0.5", 9000)); l.listen()
c = socket.socket()
try:
    c.connect(("127.0.0.5", 9000)); res["connect"] = "ok"
except OSError as e:
    res["connect"] = e.errno
print(json.dumps(res))
"""


def test_kernel_agrees_on_exhaustion():
    k = _ask_kernel(KERNEL_EXHAUSTION, timeout=60)
    name = (lambda v: v if isinstance(v, str) or v > 1024 else errno.errorcode[v])
    assert {"first": k["first"], "second": name(k["second"]),
            "other_addr_odd": k["other"] % 2 == 1,
            "connect": name(k["connect"])} == EXHAUSTION


# -- random bind/listen/close sequences, replayed in the kernel --------------------------


def random_sequences(n: int, length: int, seed: int = 6056) -> list[list[tuple]]:
    """Op lists over 4 socks and 2 ports: ("new", i, reuse), ("bind", i, addr, port),
    ("listen", i), ("close", i).  Seeded: the same sequences every run."""
    import random
    rng = random.Random(seed)
    seqs = []
    for s in range(n):
        ports = (45000 + 2 * s, 45001 + 2 * s)
        ops: list[tuple] = [("new", i, rng.random() < 0.5) for i in range(4)]
        for _ in range(length):
            i = rng.randrange(4)
            r = rng.random()
            if r < 0.55:
                ops.append(("bind", i, rng.choice(["A1", "A2", "ANY"]), rng.choice(ports)))
            elif r < 0.85:
                ops.append(("listen", i))
            else:
                ops.append(("close", i))
                ops.append(("new", i, rng.random() < 0.5))
        seqs.append(ops)
    return seqs


def replay_ours(ops: list[tuple]) -> list[str]:
    """The same calls through the tables, with sock.py's checks (EINVAL) emulated."""
    h = hinfo()
    socks: dict[int, Sk] = {}
    bound: set[int] = set()
    out = []
    addrs = {"A1": A1, "A2": A2, "ANY": ANY}
    for op in ops:
        kind, i = op[0], op[1]
        if kind == "new":
            socks[i] = Sk(op[2])
            bound.discard(i)
            continue
        sk = socks[i]
        if kind == "bind":
            if i in bound:
                out.append("EINVAL")          # inet_bind: already bound
                continue
            res = bind(h, sk, addrs[op[2]], op[3])
            if res == "ok":
                bound.add(i)
            out.append(res)
        elif kind == "listen":
            if i not in bound:
                out.append("skip")            # would autobind: not compared
            elif sk.state == TCP_LISTEN:
                out.append("ok")
            else:
                out.append(listen(h, sk))
        else:
            if sk.state == TCP_LISTEN:
                h.listen_remove(sk)
            if i in bound:
                h.inet_put_port(sk)
            out.append("ok")
    return out


KERNEL_REPLAY = r"""
import errno, json, socket, subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
A = {"A1": "127.0.0.1", "A2": "127.0.0.2", "ANY": "0.0.0.0"}
results = []
for ops in json.loads(SEQS):
    socks, bound, out = {}, set(), []
    for op in ops:
        kind, i = op[0], op[1]
        if kind == "new":
            s = socket.socket()
            if op[2]:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            socks[i] = s
            bound.discard(i)
            continue
        s = socks[i]
        try:
            if kind == "bind":
                s.bind((A[op[2]], op[3])); bound.add(i)
            elif kind == "listen":
                if i not in bound:
                    out.append("skip"); continue
                s.listen()
            else:
                s.close()
            out.append("ok")
        except OSError as e:
            out.append(errno.errorcode[e.errno])
    for s in socks.values():
        s.close()
    results.append(out)
print(json.dumps(results))
"""

SEQS = random_sequences(150, 14)


def test_random_sequences_against_the_kernel():
    code = f"SEQS = {json.dumps(json.dumps(SEQS))}\n" + KERNEL_REPLAY
    kernel = _ask_kernel(code)
    interesting = 0
    for ops, want in zip(SEQS, kernel):
        got = replay_ours(ops)
        assert got == want, ops
        interesting += want.count("EADDRINUSE")
    assert interesting > 50          # the sequences do exercise conflicts
