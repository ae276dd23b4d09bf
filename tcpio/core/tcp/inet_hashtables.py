"""Where TCP socks live: ehash, listening hash and bind hash (``inet_hashtables.c``).

* ehash: full socks, request socks (NEW_SYN_RECV) and time-wait socks by
  4-tuple ``(laddr, lport, raddr, rport)``, ours first.  A keyed hash, compiled
  (``tcpio._fast.ehash``): one lookup per received segment; ``ehash6`` the
  same for IPv6 4-tuples (``ehash.EHash6``, 128-bit addresses).
* listening hash: listeners by (local address, port); an exact address wins
  over the wildcard 0.0.0.0 (``__inet_lookup_listener``).
* bhash: port -> ``InetBindBucket`` (owners = every sock holding the port:
  bound, listening, connected, accepted children, time-wait), used by
  ``inet_csk_get_port`` (bind) and ``inet_hash_connect`` (connect's autobind).

Every stored sock has ``laddr, lport, raddr, rport, state, reuseaddr``
(and, when it is an AF_INET6 sock, ``family`` and ``v6only``).

IPv6 (issue 17): an IPv6 4-tuple (tagged addresses, ``inet6_addr``) lives in
``ehash6`` (``EHash6``, the same compiled chains keyed by 128-bit
addresses), never in ``ehash`` (32-bit keys), so the families never
collide; the listeners an IPv6 SYN may reach are ``by_port6``'s, an IPv4
SYN's ``by_port``'s (an AF_INET6 listener on ``::`` without IPV6_V6ONLY is
in both); bhash is shared and a bind conflict compares the
address sets each bind covers (``_bind_scope``, ipv6_rcv_saddr_equal).

Bind conflicts follow ``inet_csk_bind_conflict`` / ``inet_bind_conflict``
(no SO_REUSEPORT, no bound devices): on the same port, two socks whose local
addresses overlap (equal, or either is 0.0.0.0) conflict unless both have
SO_REUSEADDR and the one already there is not listening.  A time-wait sock is
an owner like any other and keeps its SO_REUSEADDR from the sock it replaces.
``listen()`` re-runs the check with the sock in LISTEN (as
``inet_csk_listen_start`` calls ``get_port`` again), which is why two
SO_REUSEADDR socks may bind the same port but only one may listen.
A bucket whose bind()-ed socks all had SO_REUSEADDR and were not listening
(``fastreuse > 0``) takes a further SO_REUSEADDR bind() without the check,
as Linux's ``inet_csk_get_port`` does.

Cost: every per-connection operation (connect's autobind once it has its
port, accept's ``inet_inherit_port``, ``inet_put_port``, the time-wait
hashdance and kill) is O(1) in the number of socks on the port; only a bind
conflict check walks a port's owners (Linux's does too).

Contract with the TCP core (beyond docs/internals.md):
* before ``inet_hash_connect``, the core sets ``sk.laddr`` (source address),
  ``sk.raddr`` and ``sk.rport``;
* ``check_established(sk, lport) -> bool`` must NOT insert ``sk``; if it
  recycles a time-wait sock it removes it with ``inet_twsk_kill(tw)``;
* entering TIME_WAIT: ``inet_twsk_hashdance(tw, sk)`` swaps the sock for its
  time-wait sock in ehash and bhash; when the time-wait sock dies:
  ``inet_twsk_kill(tw)``;
* accept: ``inet_inherit_port(listener, child)`` puts the child on the port
  (``__inet_inherit_port``), ``ehash_insert(child)`` replaces the request sock.
"""

from __future__ import annotations

import errno
import hashlib
import random
from collections.abc import Callable
from typing import Any

from tcpio import _fast
from tcpio.core.errors import sock_error
from tcpio.core.in_h import AF_INET6
from tcpio.core.ipv6 import bind_scopes_overlap
from tcpio.core.tcp.inet6_addr import V6MASK
from tcpio.core.tcp.secure_seq import secure_port_offset
from tcpio.core.tcp.tcp_states import TCP_LISTEN

listener_pick = _fast.load("syn_fast").listener_pick
# The same rule for IPv6 SYNs, whose 129-bit tagged addresses the compiled
# function's C argument cannot take: its one source, run interpreted.
listener_pick6 = _fast.load_pure("syn_fast").listener_pick

# Linux's INET_TABLE_PERTURB_SIZE is 2**16; a smaller table is plenty for one host.
INET_TABLE_PERTURB_SHIFT = 8
INET_TABLE_PERTURB_SIZE = 1 << INET_TABLE_PERTURB_SHIFT


class InetBindBucket:
    """One port in bhash (``struct inet_bind_bucket``).

    ``owners``: every sock holding the port, as an insertion-ordered dict used
    as a set (Linux's ``tb->owners`` hlist): putting a sock on the port,
    taking it off and swapping it for its time-wait sock are O(1) whatever the
    number of connections on the port.  Only a bind conflict check
    (``inet_csk_bind_conflict``) walks the owners, as Linux's does.

    ``fastreuse`` / ``fastreuseport``: Linux's caches (``inet_csk_update_fastreuse``).
    Both are -1 in a bucket connect()'s autobind made.  A bind() or listen()
    (``inet_csk_get_port``'s success) sets, on an empty bucket, fastreuse to 1
    when the sock has SO_REUSEADDR and is not listening, else 0; on a bucket
    with owners it only ever lowers fastreuse to 0 (a sock without that
    reuse).  fastreuseport is 0 after any bind() (there is no SO_REUSEPORT
    here).  ``fastreuse > 0`` lets a further SO_REUSEADDR bind() skip the
    conflict walk; ``inet_hash_connect`` shares only ``connect_only`` ports
    (both still -1), so a port someone bind()-ed is never offered to
    connect() again, even once that sock has left.
    """

    __slots__ = ("fastreuse", "fastreuseport", "owners", "port")

    def __init__(self, port: int, connect_only: bool = False) -> None:
        self.port = port
        self.owners: dict[Any, None] = {}
        self.fastreuse = self.fastreuseport = -1 if connect_only else 0

    @property
    def connect_only(self) -> bool:
        """Only connect()'s autobind has used the port (``__inet_hash_connect``'s
        ``fastreuse < 0 && fastreuseport < 0``)."""
        return self.fastreuse < 0 and self.fastreuseport < 0

    def add_owner(self, sk: Any) -> None:
        """Put ``sk`` on the port (no-op if it is already there)."""
        self.owners[sk] = None

    def update_fastreuse(self, sk: Any) -> None:
        """``inet_csk_update_fastreuse``, before a bind()-ed sock joins."""
        reuse = bool(sk.reuseaddr) and sk.state != TCP_LISTEN
        if not self.owners:
            self.fastreuse = 1 if reuse else 0
        elif not reuse:
            self.fastreuse = 0
        self.fastreuseport = 0      # no SO_REUSEPORT

    def __repr__(self) -> str:
        return f"<InetBindBucket port={self.port} owners={len(self.owners)} " \
               f"fastreuse={self.fastreuse} fastreuseport={self.fastreuseport}>"


def _bind_scope(sk: Any, addr: int) -> tuple[int | None, int | None]:
    """The IPv4 and IPv6 addresses ``sk`` bound to ``addr`` covers (None:
    none, 0: all): an IPv6 address only itself, ``::`` both families unless
    IPV6_V6ONLY, anything else its IPv4 address (an AF_INET6 sock bound to
    ``::ffff:a.b.c.d`` holds ``a.b.c.d``)."""
    if addr > V6MASK:
        return None, addr
    if addr == 0 and getattr(sk, "family", 0) == AF_INET6:
        return (None if sk.v6only else 0), 0
    return addr, None


def _listens_v4(sk: Any) -> bool:
    """Can an IPv4 SYN reach this listener?"""
    return sk.laddr <= V6MASK and not (sk.laddr == 0 and getattr(sk, "v6only", False))


def _listens_v6(sk: Any) -> bool:
    """Can an IPv6 SYN reach this listener?"""
    return sk.laddr > V6MASK or (sk.laddr == 0 and getattr(sk, "family", 0) == AF_INET6)


class InetHashInfo:
    """The host's TCP tables (``struct inet_hashinfo``)."""

    def __init__(self, settings: Any, secret: bytes, ehash_module: Any = None) -> None:
        self.settings = settings
        self.secret = bytes(secret)
        mod = ehash_module if ehash_module is not None else _fast.load("ehash")
        self.ehash = mod.EHash(self.secret)
        self.ehash6 = mod.EHash6(self.secret)
        self.lhash: dict[tuple[int, int], list[Any]] = {}
        # the listeners of each port in listen() order (None: none), what
        # lookup_listener and the compiled SYN path (syn_fast.SynPath) search;
        # by_port6: those an IPv6 SYN may reach
        self.by_port: list[list[Any] | None] = [None] * 65536
        self.by_port6: dict[int, list[Any]] = {}
        self.bhash: dict[int, InetBindBucket] = {}
        seed = hashlib.blake2b(self.secret, digest_size=8, person=b"bind").digest()
        self._rng = random.Random(int.from_bytes(seed, "little"))
        self._table_perturb = [0] * INET_TABLE_PERTURB_SIZE

    # -- ehash ----------------------------------------------------------------
    def lookup_established(self, laddr: int, lport: int, raddr: int, rport: int) -> Any:
        """``__inet_lookup_established`` / ``__inet6_lookup_established``."""
        return (self.ehash6 if raddr > V6MASK else self.ehash).lookup(laddr, lport, raddr, rport)

    def established(self) -> Any:
        """Every sock in ehash and ehash6 (the iteration ``ss`` does)."""
        yield from self.ehash
        yield from self.ehash6

    def ehash_insert(self, sk: Any) -> None:
        """Hash ``sk`` by its 4-tuple (replaces whatever had that tuple)."""
        # (_table inlined here and below: a few calls per connection each)
        raddr = sk.raddr
        (self.ehash6 if raddr > V6MASK else self.ehash).insert(sk.laddr, sk.lport, raddr,
                                                               sk.rport, sk)

    def ehash_remove(self, sk: Any) -> bool:
        """Unhash ``sk`` if it (not another sock with its tuple) is in ehash."""
        laddr, lport, raddr, rport = sk.laddr, sk.lport, sk.raddr, sk.rport
        table = self.ehash6 if raddr > V6MASK else self.ehash
        if table.lookup(laddr, lport, raddr, rport) is not sk:
            return False
        table.remove(laddr, lport, raddr, rport)
        return True

    # -- listening hash ---------------------------------------------------------
    def listen_add(self, sk: Any) -> None:
        self.lhash.setdefault((sk.laddr, sk.lport), []).append(sk)
        if _listens_v4(sk):
            self.by_port[sk.lport] = (self.by_port[sk.lport] or []) + [sk]
        if _listens_v6(sk):
            self.by_port6[sk.lport] = self.by_port6.get(sk.lport, []) + [sk]

    def listen_remove(self, sk: Any) -> None:
        key = (sk.laddr, sk.lport)
        lst = self.lhash.get(key)
        if lst is None:
            return
        lst[:] = [s for s in lst if s is not sk]
        if not lst:
            del self.lhash[key]
        on_port = [s for s in self.by_port[sk.lport] or () if s is not sk]
        self.by_port[sk.lport] = on_port or None
        on_port6 = [s for s in self.by_port6.get(sk.lport, ()) if s is not sk]
        if on_port6:
            self.by_port6[sk.lport] = on_port6
        else:
            self.by_port6.pop(sk.lport, None)

    def lookup_listener(self, laddr: int, lport: int) -> Any:
        """The listener for a segment to laddr:lport: exact address, then the
        wildcard (syn_fast.listener_pick, the rule the compiled SYN path uses
        too), among those of the segment's family."""
        if laddr > V6MASK:
            return listener_pick6(self.by_port6.get(lport), laddr)
        return listener_pick(self.by_port[lport], laddr)

    def lookup(self, laddr: int, lport: int, raddr: int, rport: int) -> Any:
        """``__inet_lookup``: established/request/time-wait first, then a listener."""
        sk = (self.ehash6 if raddr > V6MASK else self.ehash).lookup(laddr, lport, raddr, rport)
        return sk if sk is not None else self.lookup_listener(laddr, lport)

    def inet_unhash(self, sk: Any) -> None:
        """Remove ``sk`` from ehash or the listening hash (not from bhash)."""
        if sk.state == TCP_LISTEN:
            self.listen_remove(sk)
        else:
            self.ehash_remove(sk)

    # -- bhash: bind() ------------------------------------------------------------
    def bind_owners(self, port: int) -> list[Any]:
        tb = self.bhash.get(port)
        return list(tb.owners) if tb is not None else []

    def _bind_conflict(self, sk: Any, addr: int, tb: InetBindBucket, relax: bool) -> bool:
        """``inet_csk_bind_conflict``: would ``sk`` at ``addr`` clash with an owner?"""
        mine = _bind_scope(sk, addr)
        for sk2 in tb.owners:
            if sk2 is sk or not bind_scopes_overlap(mine, _bind_scope(sk2, sk2.laddr)):
                continue
            if sk.reuseaddr and sk2.reuseaddr and sk2.state != TCP_LISTEN and relax:
                continue
            return True
        return False

    def _bind_hash(self, sk: Any, tb: InetBindBucket, addr: int) -> None:
        """``inet_csk_update_fastreuse`` + ``inet_bind_hash``."""
        tb.update_fastreuse(sk)
        tb.add_owner(sk)
        sk.laddr = addr
        sk.lport = tb.port

    def _local_port_range(self) -> tuple[int, int]:
        low, high = self.settings.ip_local_port_range
        return low, high + 1     # [low, high] -> [low, high + 1[

    def _find_open_port(self, sk: Any, addr: int) -> InetBindBucket | None:
        """``inet_csk_find_open_port``: a free port for bind(addr, 0).

        Random start, ports of the parity opposite to connect()'s first; a
        SO_REUSEADDR sock tries the lower half of the range first.  Only ports
        with no overlapping owner qualify (relax = False: even two
        SO_REUSEADDR socks do not share an automatically chosen port).
        """
        # Linux's attempt_half: 1 (lower half), then 2 (upper half).  (Linux
        # skips the halves below 4 ports; no need here: then half == low, the
        # lower half is empty and the upper one is the whole range.)
        for part in ("lower", "upper") if sk.reuseaddr else ("all",):
            low, high = self._local_port_range()
            if part != "all":
                half = low + (((high - low) >> 2) << 1)
                if part == "lower":
                    high = half
                else:
                    low = half
            remaining = high - low
            if remaining > 1:
                remaining &= ~1
            if remaining > 0:
                offset = self._rng.randrange(remaining) | 1
                while True:         # this parity, then (offset - 1) the other
                    port = low + offset
                    for _ in range(0, remaining, 2):
                        if port >= high:
                            port -= remaining
                        tb = self.bhash.get(port)
                        if tb is None:
                            tb = self.bhash[port] = InetBindBucket(port)
                        # (a new, empty bucket never conflicts)
                        if not self._bind_conflict(sk, addr, tb, relax=False):
                            return tb
                        port += 2
                    offset -= 1
                    if offset & 1:
                        break
        return None

    def inet_csk_get_port(self, sk: Any, addr: int, port: int) -> int:
        """Bind ``sk`` to addr:port (port 0: pick one); returns the port.

        Raises OSError(EADDRINUSE) on a conflict or when no port is free (as
        Linux does for bind; connect() reports EADDRNOTAVAIL instead).  Called
        again by listen() with ``sk.state == LISTEN`` to re-check conflicts.
        Whether ``addr`` is one of the host's addresses (EADDRNOTAVAIL) is for
        the caller (``inet_bind``) to check.
        """
        if port == 0:
            tb = self._find_open_port(sk, addr)
            if tb is None:
                raise sock_error(errno.EADDRINUSE, "no free local port")
        else:
            tb = self.bhash.get(port)
            if tb is None:
                tb = self.bhash[port] = InetBindBucket(port)
            elif tb.fastreuse > 0 and sk.reuseaddr and sk.state != TCP_LISTEN:
                # Every sock bind() put here had SO_REUSEADDR and was not
                # listening then (nor since: listen() would have come through
                # here and cleared fastreuse): no need to walk the owners.
                pass
            elif self._bind_conflict(sk, addr, tb, relax=True):
                raise sock_error(errno.EADDRINUSE)
        self._bind_hash(sk, tb, addr)
        return tb.port

    def inet_put_port(self, sk: Any) -> None:
        """Release ``sk``'s port (its bucket goes when its last owner does)."""
        tb = self.bhash.get(sk.lport)
        if tb is None:
            return
        owners = tb.owners
        owners.pop(sk, None)
        if not owners:
            del self.bhash[tb.port]

    def inet_inherit_port(self, sk: Any, child: Any) -> None:
        """``__inet_inherit_port``: an accepted child shares its listener's port
        (a listener holds its bucket until listen_stop puts the port).  The
        tproxy case: a transparent listener's child has the original
        destination's port, so it goes on that port's bucket (made if need be)."""
        tb = self.bhash.get(child.lport)
        if tb is None:
            tb = self.bhash[child.lport] = InetBindBucket(child.lport)
            tb.update_fastreuse(child)
        tb.owners[child] = None     # (tb.add_owner, once per accepted connection)

    # -- time-wait ---------------------------------------------------------------
    def inet_twsk_hashdance(self, tw: Any, sk: Any) -> None:
        """``inet_twsk_hashdance``: ``tw`` takes ``sk``'s place in ehash and bhash
        (``sk`` owns its port until then: bind, connect or inherit put it there)."""
        owners = self.bhash[sk.lport].owners
        del owners[sk]          # (KeyError if sk does not own its port: a core bug)
        owners[tw] = None
        self.ehash_remove(sk)
        self.ehash_insert(tw)

    def inet_twsk_kill(self, tw: Any) -> None:
        """A time-wait sock is gone (timer or recycled): unhash it everywhere."""
        self.ehash_remove(tw)
        self.inet_put_port(tw)

    # -- connect(): autobind ----------------------------------------------------------
    def inet_hash_connect(self, sk: Any,
                          check_established: Callable[[Any, int], bool]) -> None:
        """Pick the local port for connect() and hash ``sk`` (``__inet_hash_connect``).

        RFC 6056 with Linux's refinement (RFC 6056 algorithm 4 "double hash"):
        the start is F(laddr, raddr, rport, secret) plus a perturbation
        counter for that destination's slot, so consecutive connections to the
        same destination take successive ports while other destinations see
        unrelated ones.  Ports of the range's low parity are tried first (bind(0)
        takes the other parity first).  A port someone bind()-ed is skipped; a
        port used by other connections is shared if ``check_established`` says
        the 4-tuple is free.  OSError(EADDRNOTAVAIL) when none is.
        """
        if sk.lport:
            if not check_established(sk, sk.lport):
                raise sock_error(errno.EADDRNOTAVAIL)
            self.ehash_insert(sk)
            return

        low, high = self._local_port_range()
        remaining = high - low
        if remaining > 1:
            remaining &= ~1
        if remaining <= 0:
            raise sock_error(errno.EADDRNOTAVAIL)
        port_offset = secure_port_offset(self.secret, sk.laddr, sk.raddr, sk.rport)
        index = port_offset & (INET_TABLE_PERTURB_SIZE - 1)
        offset = (self._table_perturb[index] + (port_offset >> 32)) % remaining
        offset &= ~1
        while True:
            port = low + offset
            for i in range(0, remaining, 2):
                if port >= high:
                    port -= remaining
                tb = self.bhash.get(port)
                if tb is None:
                    if self.lookup_established(sk.laddr, port, sk.raddr, sk.rport) is None:
                        tb = self.bhash[port] = InetBindBucket(port, connect_only=True)
                        return self._hash_connect_ok(sk, tb, index, i)
                elif tb.connect_only and check_established(sk, port):
                    return self._hash_connect_ok(sk, tb, index, i)
                port += 2
            offset += 1
            # (Linux also stops when remaining == 1: the other pass would
            # only look at the same single port again.)
            if not offset & 1:
                break
        raise sock_error(errno.EADDRNOTAVAIL, "no free local port for this destination")

    def _hash_connect_ok(self, sk: Any, tb: InetBindBucket, index: int, i: int) -> None:
        # A little randomness in the next port for this slot, maximal under
        # low contention (Linux: i = max(i, random(8) * step)).
        i = max(i, self._rng.randrange(8) * 2)
        self._table_perturb[index] += i + 2
        # check_established may have recycled the bucket's last time-wait sock,
        # which dropped the bucket: put it back.
        tb = self.bhash.setdefault(tb.port, tb)
        tb.add_owner(sk)
        sk.lport = tb.port
        self.ehash_insert(sk)
