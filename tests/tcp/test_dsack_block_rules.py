"""The pending D-SACK block (RFC 2883), one rule per test: Linux's
tcp_dsack_set and tcp_dsack_extend (net/ipv4/tcp_input.c), here
tcp_sack.tcp_dsack_set / tcp_dsack_extend.

    tcp_dsack_set:    only with SACK and net.ipv4.tcp_dsack, the block is
                      [seq, end_seq)
    tcp_dsack_extend: no block yet: tcp_dsack_set; else tcp_sack_extend:
                      if (!after(seq, sp->end_seq) && !after(sp->start_seq, end_seq))
                          the block grows to cover both
                      (a range apart from it is not reported)
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_sack import tcp_dsack_extend, tcp_dsack_set


def _sk(dsack=None, sack_ok: bool = True, tcp_dsack: int = 1) -> SimpleNamespace:
    return SimpleNamespace(sack_ok=sack_ok, dsack=dsack,
                           host=SimpleNamespace(settings=Settings(tcp_dsack=tcp_dsack)))


@pytest.mark.parametrize(("sack_ok", "tcp_dsack", "want"),
                         [(True, 1, (100, 200)), (False, 1, None), (True, 0, None)])
def test_a_dsack_block_needs_sack_and_the_dsack_setting(sack_ok, tcp_dsack, want):
    sk = _sk(sack_ok=sack_ok, tcp_dsack=tcp_dsack)
    tcp_dsack_set(sk, 100, 200)
    assert sk.dsack == want


def test_extend_with_no_block_pending_sets_one():
    sk = _sk()
    tcp_dsack_extend(sk, 100, 200)
    assert sk.dsack == (100, 200)


@pytest.mark.parametrize(("seq", "end", "want"), [
    (50, 150, (50, 200)),       # overlaps its start: grows left
    (150, 250, (100, 250)),     # overlaps its end: grows right
    (50, 250, (50, 250)),       # covers it
    (120, 180, (100, 200)),     # inside it: unchanged
    (200, 300, (100, 300)),     # touches its end
    (0, 100, (0, 200)),         # touches its start
])
def test_extend_grows_the_block_over_a_range_that_meets_it(seq, end, want):
    sk = _sk(dsack=(100, 200))
    tcp_dsack_extend(sk, seq, end)
    assert sk.dsack == want


@pytest.mark.parametrize(("seq", "end"), [(201, 300), (0, 99)])
def test_extend_leaves_the_block_alone_for_a_range_apart(seq, end):
    sk = _sk(dsack=(100, 200))
    tcp_dsack_extend(sk, seq, end)
    assert sk.dsack == (100, 200)


def test_extend_compares_in_sequence_space_across_the_wrap():
    """after()/before() are modulo 2**32: a block across the wrap grows left."""
    sk = _sk(dsack=(0xFFFFFF00, 0x100))
    tcp_dsack_extend(sk, 0xFFFFFE00, 0xFFFFFF80)
    assert sk.dsack == (0xFFFFFE00, 0x100)
