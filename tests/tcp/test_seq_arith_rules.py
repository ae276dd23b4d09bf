"""Sequence-number arithmetic of the fast path (tcp_fast.seq_diff, before,
after) on both twins, against Linux's definition in include/net/tcp.h:
``before(seq1, seq2)`` is ``(s32)(seq1 - seq2) < 0``, i.e. the distance is
the 32-bit difference read as a two's-complement s32 (RFC 1982 serial
arithmetic, with Linux's choice at the ambiguous distance 2**31)."""

from __future__ import annotations

import struct

import pytest
from conftest import twin_fixture

tf = twin_fixture("tcp_fast", "tf")


def _s32(x: int) -> int:
    """(s32)x, by the C cast's bytes: the independent reference."""
    return struct.unpack("<i", struct.pack("<I", x & 0xFFFFFFFF))[0]


@pytest.mark.parametrize("a, b", [
    (0, 0), (1, 0), (0, 1), (0x7FFFFFFF, 0), (0x80000000, 0), (0x80000001, 0),
    (0, 0x80000000), (0xFFFFFFFF, 0), (5, 0xFFFFFFF0), (0x12345678, 0x92345678),
    (0x92345678, 0x12345678), (0x92345679, 0x12345678),
])
def test_seq_diff_is_the_s32_distance_and_before_after_follow_it(tf, a, b):
    """seq_diff(a, b) == (s32)(a - b) everywhere, the distance 2**31 included
    (it is negative: a is "before" b, and b is before a too, as in Linux)."""
    d = _s32(a - b)
    assert tf.seq_diff(a, b) == d
    assert tf.before(a, b) == (d < 0)
    assert tf.after(a, b) == (_s32(b - a) < 0)
