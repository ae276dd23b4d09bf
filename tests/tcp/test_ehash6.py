"""tcpio._fast.ehash.EHash6, the IPv6 established hash (issue 17): both twins
behave like a dict of IPv6 4-tuples (TCP's tagged addresses, ``inet6_addr``),
agree with each other bit for bit through growth, keep a remote party from
aiming collisions, and keep IPv4 and IPv6 connections apart in the host's
tables (an IPv4 peer of an AF_INET6 sock, ``::ffff:a.b.c.d``, is an IPv4
4-tuple there)."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpio import _fast
from tcpio.core.settings import Settings
from tcpio.core.tcp.inet6_addr import V6TAG
from tcpio.core.tcp.inet_hashtables import InetHashInfo
from tests.conftest import twin_params
from tests.tcp import ehash_rules as rules

TWINS = twin_params("ehash")


def a6(text: str) -> int:
    """TCP's tagged int for an IPv6 address."""
    return V6TAG | int(ipaddress.IPv6Address(text))


OURS, PEER = a6("fd00::2"), a6("fd00::1")
MAPPED = a6("::ffff:10.0.0.1")          # ::ffff:10.0.0.1 as an IPv6 key
COMPAT = a6("::10.0.0.1")               # the same low 32 bits, another address

addr = st.integers(0, 2**128 - 1).map(lambda a: V6TAG | a)
port = st.integers(0, 2**16 - 1)
# Few distinct values (v4-mapped, link-local, ::, ::1...) so operations hit
# the same keys often.
small_addr = st.sampled_from([a6(t) for t in ("::", "::1", "fd00::1", "fd00::2", "fe80::1",
                                              "::ffff:10.0.0.1", "::10.0.0.1",
                                              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")])
ops = rules.op_lists(addr, small_addr)


@settings(max_examples=150, deadline=None)
@given(ops=ops, secret=st.binary(max_size=40))
def test_each_twin_behaves_like_a_dict_and_both_agree_on_hash_and_layout(ops, secret):
    # Each twin against a dict, then the compiled one against the twin: the
    # same hash and bucket per key, the same chains in the same order.
    pure = _fast.load_pure("ehash")
    compiled = rules.compiled_ehash()
    for mod in (pure, compiled):
        rules.behaves_like_a_dict(mod.EHash6(secret), ops)
    rules.twins_agree(compiled.EHash6(secret), pure.EHash6(secret), ops)


def test_twins_agree_through_growth():
    pure = _fast.load_pure("ehash")
    rng = random.Random(17)
    keys = [(V6TAG | rng.getrandbits(128), rng.getrandbits(16), V6TAG | rng.getrandbits(128),
             rng.getrandbits(16)) for _ in range(5000)]
    rules.twins_agree_through_growth(rules.compiled_ehash().EHash6(b"grow"), pure.EHash6(b"grow"),
                                     keys)


@pytest.mark.parametrize("mod", TWINS)
def test_grows_when_fuller_than_its_buckets_and_keeps_every_entry(mod):
    t = mod.EHash6(b"resize")
    assert t.nbuckets == 64
    for p in range(65):
        t.insert(OURS, 443, PEER, 1024 + p, p)
    assert t.nbuckets == 128 and len(t) == 65 and sum(t.bucket_sizes()) == 65
    assert all(t.lookup(OURS, 443, PEER, 1024 + p) == p for p in range(65))


@pytest.mark.parametrize("mod", TWINS)
def test_the_tag_is_ignored_on_the_way_in_and_given_back(mod):
    # TCP hands tagged addresses; a plain 128-bit int names the same key.
    t = mod.EHash6(b"x")
    plain = OURS ^ V6TAG
    t.insert(plain, 80, PEER ^ V6TAG, 5000, "a")
    assert t.lookup(OURS, 80, PEER, 5000) == "a"
    assert t.items() == [((OURS, 80, PEER, 5000), "a")]
    assert t.remove(OURS, 80, PEER ^ V6TAG, 5000) == "a" and len(t) == 0


@pytest.mark.parametrize("mod", TWINS)
def test_v4_mapped_addresses_are_ipv6_keys_of_their_own(mod):
    # ::ffff:10.0.0.1, ::10.0.0.1 and the other fields swapped are all
    # different keys; an int is always a 128-bit address here (the family
    # is never guessed), so 10.0.0.1's 32 bits are ::10.0.0.1, not the
    # mapped address.
    t = mod.EHash6(b"x")
    t.insert(OURS, 80, MAPPED, 5000, "mapped")
    t.insert(OURS, 80, COMPAT, 5000, "compat")
    assert t.lookup(OURS, 80, MAPPED, 5000) == "mapped"
    assert t.lookup(OURS, 80, COMPAT, 5000) == "compat"
    assert t.lookup(OURS, 80, 0x0A000001, 5000) == "compat"
    assert t.lookup(OURS, 80, 0xFFFF0A000001, 5000) == "mapped"
    assert t.lookup(MAPPED, 5000, OURS, 80) is None
    assert t.remove(OURS, 80, MAPPED, 5000) == "mapped"
    assert t.lookup(OURS, 80, COMPAT, 5000) == "compat"


@pytest.mark.parametrize("mod", TWINS)
def test_fields_are_not_interchangeable(mod):
    t = mod.EHash6(b"x")
    t.insert(OURS, 20, PEER, 40, "a")
    swapped_words = V6TAG | ((OURS & ((1 << 64) - 1)) << 64) | ((OURS >> 64) & ((1 << 64) - 1))
    for k in [(PEER, 40, OURS, 20), (OURS, 40, PEER, 20), (OURS, 20, PEER, 41),
              (swapped_words, 20, PEER, 40), (OURS + 1, 20, PEER, 40)]:
        assert t.lookup(*k) is None
    assert t.lookup(OURS, 20, PEER, 40) == "a"


@pytest.mark.parametrize("mod", TWINS)
def test_insert_existing_key_replaces_and_none_cannot_be_stored(mod):
    rules.replaces_in_place(mod.EHash6(b"x"), (OURS, 2, PEER, 4))


def test_compiled_holds_and_releases_references():
    comp = rules.compiled_ehash()
    rules.holds_and_releases_references(lambda: comp.EHash6(b"x"), (OURS, 2, PEER, 4),
                                        (OURS, 6, PEER, 8), (OURS, 9, PEER, 9))


def test_compiled_rejects_out_of_range_fields():
    t = rules.compiled_ehash().EHash6(b"x")
    for bad in (1 << 129, -1):
        with pytest.raises(OverflowError):
            t.lookup(bad, 0, PEER, 0)
        with pytest.raises(OverflowError):
            t.insert(OURS, 0, bad, 0, 1)
    with pytest.raises(OverflowError):
        t.insert(OURS, 65536, PEER, 0, 1)


# -- keyed hashing: collision resistance -----------------------------------------------


def _attacker(i: int) -> tuple[int, int, int, int]:
    """The attacker controls its own address (a /64's host part) and port."""
    return (OURS, 443, PEER + (i << 16), 1024 + (i & 0xFFFF))


@pytest.mark.parametrize("mod", TWINS)
def test_aimed_collisions_do_not_survive_another_secret(mod):
    rules.aimed_collisions_do_not_survive_another_secret(mod.EHash6, _attacker)


@pytest.mark.parametrize("mod", TWINS)
@pytest.mark.parametrize("vary", ["port", "address low bits", "address high bits"])
def test_sequential_keys_spread_evenly(mod, vary):
    # One peer, every source port; or one port and sequential addresses in
    # either 64-bit half: the keyed hash must spread them like random keys.
    keys = {"port": [(OURS, 443, PEER, i) for i in range(16384)],
            "address low bits": [(OURS, 443, PEER + i, 5000) for i in range(16384)],
            "address high bits": [(OURS, 443, PEER + (i << 64), 5000) for i in range(16384)]}
    rules.spreads_like_random_keys(mod.EHash6(b"stack secret"), keys[vary])


# -- the host's tables: the family picks the table ---------------------------------------


class Sk:
    def __init__(self, laddr: int, lport: int, raddr: int, rport: int) -> None:
        self.laddr, self.lport, self.raddr, self.rport = laddr, lport, raddr, rport


@pytest.mark.parametrize("mod", TWINS)
def test_hashinfo_keeps_ipv4_and_ipv6_tuples_apart(mod):
    info = InetHashInfo(Settings(), b"secret", ehash_module=mod)
    assert type(info.ehash6) is mod.EHash6 and type(info.ehash) is mod.EHash
    # An AF_INET6 sock whose peer is IPv4 (::ffff:10.0.0.1) holds the plain
    # 32-bit addresses: an IPv4 4-tuple, in ehash.
    v4 = Sk(0x0A000002, 80, 0x0A000001, 5000)
    v6 = Sk(OURS, 80, PEER, 5000)
    mapped6 = Sk(OURS, 80, MAPPED, 5000)     # a real IPv6 peer at ::ffff:... (not TCP's use)
    for sk in (v4, v6, mapped6):
        info.ehash_insert(sk)
    assert len(info.ehash) == 1 and len(info.ehash6) == 2
    assert info.lookup_established(0x0A000002, 80, 0x0A000001, 5000) is v4
    assert info.lookup_established(OURS, 80, PEER, 5000) is v6
    assert info.lookup_established(OURS, 80, MAPPED, 5000) is mapped6
    assert set(info.established()) == {v4, v6, mapped6}
    assert info.ehash_remove(v6) and not info.ehash_remove(v6)
    assert info.lookup_established(OURS, 80, PEER, 5000) is None
    assert info.lookup_established(OURS, 80, MAPPED, 5000) is mapped6
