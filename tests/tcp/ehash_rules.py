"""Checks both established hashes must pass (``EHash``, IPv4, in
test_ehash.py; ``EHash6``, IPv6, in test_ehash6.py): one copy of each rule,
given the table and the keys of its family."""

from __future__ import annotations

import gc
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import strategies as st

from tcpio import _fast

Key = tuple[int, int, int, int]


def compiled_ehash() -> Any:
    """The compiled module (built in both runs: TCPIO_NO_EXTENSIONS only
    changes what ``_fast.load`` picks)."""
    mod = _fast.load_compiled("ehash")
    if mod is None:
        pytest.skip("tcpio._fast.ehash not built")
    return mod


def op_lists(addr: Any, small_addr: Any) -> Any:
    """Lists of (operation, 4-tuple, n): any addresses of the family, or a few
    (``small_addr``) and a few ports, so operations hit the same keys often."""
    port = st.integers(0, 2**16 - 1)
    small_port = st.sampled_from([0, 1, 80, 443, 65535])
    tuples = st.one_of(st.tuples(addr, port, addr, port),
                       st.tuples(small_addr, small_port, small_addr, small_port))
    return st.lists(st.tuples(st.sampled_from(["insert", "remove", "lookup"]), tuples,
                              st.integers(0, 9)), max_size=300)


class Obj:
    def __init__(self, n: int) -> None:
        self.n = n


def behaves_like_a_dict(table: Any, ops: Sequence[tuple[str, Key, int]]) -> None:
    """``ops`` on ``table`` and on a dict give the same answers throughout."""
    model: dict[Key, object] = {}
    for op, key, n in ops:
        if op == "insert":
            obj = Obj(n)
            table.insert(*key, obj)
            model[key] = obj
        elif op == "remove":
            assert table.remove(*key) is model.pop(key, None)
        else:
            assert table.lookup(*key) is model.get(key)
        assert len(table) == len(model)
    assert sorted(map(id, table)) == sorted(map(id, model.values()))
    assert dict(table.items()) == model


def twins_agree(a: Any, b: Any, ops: Sequence[tuple[str, Key, int]]) -> None:
    """The compiled table ``a`` and the twin ``b``: the same hash, bucket,
    answers, and in the end the same chains in the same order."""
    for op, key, n in ops:
        assert a.hash4(*key) == b.hash4(*key)
        assert a.bucket_index(*key) == b.bucket_index(*key)
        if op == "insert":
            a.insert(*key, n)
            b.insert(*key, n)
        elif op == "remove":
            assert a.remove(*key) == b.remove(*key)
        else:
            assert a.lookup(*key) == b.lookup(*key)
    assert a.nbuckets == b.nbuckets
    assert a.items() == b.items()          # same chains, same order
    assert a.bucket_sizes() == b.bucket_sizes()


def twins_agree_through_growth(a: Any, b: Any, keys: Sequence[Key]) -> None:
    for i, k in enumerate(keys):
        a.insert(*k, i)
        b.insert(*k, i)
    assert a.nbuckets == b.nbuckets >= 4096
    assert a.items() == b.items()
    for k in keys[::3]:
        assert a.remove(*k) == b.remove(*k)
    assert a.items() == b.items()
    for i, k in enumerate(keys):
        assert a.lookup(*k) == b.lookup(*k) == (None if i % 3 == 0 else i)


def replaces_in_place(table: Any, k: Key) -> None:
    """Inserting a present key replaces its object; None cannot be stored."""
    o1, o2 = Obj(1), Obj(2)
    table.insert(*k, o1)
    table.insert(*k, o2)
    assert len(table) == 1 and table.lookup(*k) is o2
    assert table.remove(*k) is o2
    assert table.remove(*k) is None and len(table) == 0
    try:
        table.insert(*k, None)
    except TypeError:
        return
    raise AssertionError("None was stored")


def holds_and_releases_references(make: Callable[[], Any], k1: Key, k2: Key, k3: Key) -> None:
    """A compiled table owns one reference per stored object, and drops it."""
    t = make()
    o = Obj(1)
    base = sys.getrefcount(o)
    t.insert(*k1, o)
    assert sys.getrefcount(o) == base + 1
    t.insert(*k1, Obj(2))               # replaced: reference dropped
    assert sys.getrefcount(o) == base
    t.insert(*k2, o)
    assert t.remove(*k2) is o
    assert sys.getrefcount(o) == base
    t.insert(*k2, o)
    dead = Obj(3)
    ref = weakref.ref(dead)
    t.insert(*k3, dead)
    del dead, t
    gc.collect()
    assert ref() is None and sys.getrefcount(o) == base


def aimed_tuples(make: Callable[[bytes], Any], secret: bytes, n: int,
                 candidates: Callable[[int], Key]) -> list[Key]:
    """n tuples an attacker who knew ``secret`` would send: all in bucket 0,
    from ``candidates(i)`` (what the attacker controls: its side)."""
    t = make(secret)
    out: list[Key] = []
    i = 0
    while len(out) < n:
        i += 1
        k = candidates(i)
        if t.bucket_index(*k) == 0:
            out.append(k)
    return out


def aimed_collisions_do_not_survive_another_secret(make: Callable[[bytes], Any],
                                                   candidates: Callable[[int], Key]) -> None:
    aimed = aimed_tuples(make, b"known secret", 48, candidates)
    victim = make(b"the real secret")
    for i, k in enumerate(aimed):
        victim.insert(*k, i)
    assert victim.nbuckets == 64
    # Under the known secret all 48 share one chain; under another they
    # spread like random keys (48 keys in 64 buckets: longest chain ~3-4).
    assert max(victim.bucket_sizes()) <= 8
    same = make(b"known secret")
    for i, k in enumerate(aimed):
        same.insert(*k, i)
    assert max(same.bucket_sizes()) == 48


def spreads_like_random_keys(table: Any, keys: Sequence[Key]) -> None:
    """16384 sequential keys at load 1: chains as random keys give them (the
    longest ~7-8; a weak hash gives long chains, or for a plain mask of the
    port exactly 1 everywhere)."""
    for i, k in enumerate(keys):
        table.insert(*k, i)
    assert table.nbuckets == 16384
    sizes = table.bucket_sizes()
    assert 4 <= max(sizes) <= 12
    empty = sizes.count(0) / len(sizes)
    assert 0.33 < empty < 0.40           # Poisson(1): e**-1 = 0.368 empty
