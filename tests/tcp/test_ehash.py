"""tcpio._fast.ehash: both twins behave like a dict of 4-tuples, agree with each
other bit for bit, and keep a remote party from aiming collisions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpio import _fast
from tests.conftest import twin_params
from tests.tcp import ehash_rules as rules

TWINS = twin_params("ehash")

addr = st.integers(0, 2**32 - 1)
port = st.integers(0, 2**16 - 1)
# Few distinct values so operations hit the same keys often.
small_addr = st.sampled_from([0, 1, 0x0A000001, 0x0A000002, 2**32 - 1])
ops = rules.op_lists(addr, small_addr)


@pytest.mark.parametrize("mod", TWINS)
@settings(max_examples=150, deadline=None)
@given(ops=ops, secret=st.binary(min_size=0, max_size=40))
def test_behaves_like_a_dict(mod, ops, secret):
    rules.behaves_like_a_dict(mod.EHash(secret), ops)


@settings(max_examples=150, deadline=None)
@given(ops=ops, secret=st.binary(max_size=40))
def test_compiled_and_twin_agree_on_hash_and_layout(ops, secret):
    rules.twins_agree(rules.compiled_ehash().EHash(secret),
                      _fast.load_pure("ehash").EHash(secret), ops)


def test_twins_agree_through_growth():
    pure = _fast.load_pure("ehash")
    rng = random.Random(7)
    keys = [(rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32),
             rng.getrandbits(16)) for _ in range(5000)]
    rules.twins_agree_through_growth(rules.compiled_ehash().EHash(b"grow"), pure.EHash(b"grow"),
                                     keys)


@pytest.mark.parametrize("mod", TWINS)
def test_insert_existing_key_replaces(mod):
    rules.replaces_in_place(mod.EHash(b"x"), (1, 2, 3, 4))


@pytest.mark.parametrize("mod", TWINS)
def test_fields_are_not_interchangeable(mod):
    # Swapping ours/theirs or address/port must not find the entry.
    t = mod.EHash(b"x")
    t.insert(10, 20, 30, 40, "a")
    for k in [(30, 40, 10, 20), (10, 40, 30, 20), (20, 10, 40, 30), (10, 20, 30, 41)]:
        assert t.lookup(*k) is None
    assert t.lookup(10, 20, 30, 40) == "a"


@pytest.mark.parametrize("mod", TWINS)
def test_none_cannot_be_stored(mod):
    with pytest.raises(TypeError):
        mod.EHash(b"x").insert(1, 2, 3, 4, None)


def test_compiled_holds_and_releases_references():
    comp = rules.compiled_ehash()
    rules.holds_and_releases_references(lambda: comp.EHash(b"x"), (1, 2, 3, 4), (5, 6, 7, 8),
                                        (9, 9, 9, 9))


def test_compiled_rejects_out_of_range_fields():
    comp = rules.compiled_ehash()
    t = comp.EHash(b"x")
    with pytest.raises(OverflowError):
        t.lookup(2**32, 0, 0, 0)
    with pytest.raises(OverflowError):
        t.insert(0, 65536, 0, 0, 1)


# -- keyed hashing: collision resistance -----------------------------------------------


def _attacker(i: int) -> tuple[int, int, int, int]:
    """The attacker controls only its own address and port (ours is fixed)."""
    return (0x0A000001, 80, 0xC0A80000 + (i - 1) // 65535, (i - 1) % 65535 + 1)


@pytest.mark.parametrize("mod", TWINS)
def test_aimed_collisions_do_not_survive_another_secret(mod):
    rules.aimed_collisions_do_not_survive_another_secret(mod.EHash, _attacker)


@pytest.mark.parametrize("mod", TWINS)
def test_different_secrets_give_different_layouts(mod):
    keys = [(0x0A000001, 80, 0x0A000002, p) for p in range(1000, 1200)]
    layouts = set()
    for s in (b"a", b"b", b"c", b"d"):
        t = mod.EHash(s)
        layouts.add(tuple(t.bucket_index(*k) for k in keys))
    assert len(layouts) == 4


@pytest.mark.parametrize("mod", TWINS)
def test_sequential_ports_spread_evenly(mod):
    # The cheapest attack: one source, every source port.  Python's own
    # tuple hash of small ints is public; the keyed hash must not care.
    rules.spreads_like_random_keys(mod.EHash(b"stack secret"),
                                   [(0x0A000001, 443, 0x0A000063, p) for p in range(16384)])
