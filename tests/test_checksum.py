"""RFC 1071 checksum, both twins, against the RFC's rule, RFC vectors and scapy.

Oracles that share no code with tcpio: ``rfc1071_sum`` below (the RFC's
16-bit loop, written the slow obvious way), the examples printed in RFC 1071
and RFC 1624, and scapy's ``checksum`` and its TCP/UDP checksum computation.
"""

from __future__ import annotations

import struct

import pytest
from conftest import twin_fixture, twin_pair
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.utils import checksum as scapy_checksum

FAST = settings(max_examples=200, deadline=None, derandomize=True, database=None)

data_st = st.binary(min_size=0, max_size=300)
addr_st = st.integers(0, 0xFFFFFFFF)


def rfc1071_sum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 section 4.1, in Python: add 16-bit words, fold the carries."""
    total = initial
    if len(data) % 2:
        data += b"\0"
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


ck = twin_fixture("checksum", "ck")


# --- known vectors -------------------------------------------------------------
def test_rfc1071_example(ck):
    # RFC 1071 section 3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (checksum 220d)
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert ck.csum_partial(data) == 0xDDF2
    assert ck.internet_checksum(data) == 0x220D
    assert ck.internet_checksum(data + b"\x22\x0d") == 0


def test_odd_length_pads_with_zero(ck):
    assert ck.csum_partial(b"\x01") == 0x0100
    assert ck.csum_partial(b"\x01\x02\x03") == 0x0102 + 0x0300


def test_empty_and_negative_zero(ck):
    assert ck.csum_partial(b"") == 0
    assert ck.internet_checksum(b"") == 0xFFFF
    # a non-zero sum never folds to 0: it folds to 0xFFFF ("negative zero")
    assert ck.csum_partial(b"\xff\xff") == 0xFFFF
    assert ck.csum_partial(b"\xff\xfe\x00\x01") == 0xFFFF
    assert ck.csum_partial(b"\x00" * 1001) == 0


def test_known_ipv4_header(ck):
    # the IPv4 header example used across the literature (Wikipedia "IPv4 header checksum")
    hdr = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert ck.internet_checksum(hdr) == 0xB861
    fixed = hdr[:10] + b"\xb8\x61" + hdr[12:]
    assert ck.internet_checksum(fixed) == 0


def test_rfc1624_example(ck):
    # RFC 1624 section 4: HC=0xDD2F, m=0x5555 -> m'=0x3285; eqn. 3 gives 0x0000
    assert ck.checksum_update16(0xDD2F, 0x5555, 0x3285) == 0x0000


# --- properties against the RFC's rule ------------------------------------------
@FAST
@given(data=data_st, initial=st.integers(0, 2**64 - 1))
def test_csum_partial_matches_rfc_loop(ck, data, initial):
    assert ck.csum_partial(data, initial) == rfc1071_sum(data, initial)


@FAST
@given(data=data_st)
def test_internet_checksum_matches_scapy(ck, data):
    assert ck.internet_checksum(data) == scapy_checksum(data)


@FAST
@given(data=data_st, cut=st.integers(0, 150))
def test_initial_chains_partial_sums(ck, data, cut):
    # summing in two pieces (the first of even length) equals summing at once
    cut = min(cut, len(data)) & ~1
    assert ck.csum_partial(data[cut:], ck.csum_partial(data[:cut])) == ck.csum_partial(data)


@FAST
@given(data=st.binary(min_size=2, max_size=200).map(lambda b: b if len(b) % 2 == 0 else b[:-1]))
def test_inserted_checksum_verifies(ck, data):
    check = ck.internet_checksum(data)
    assert ck.internet_checksum(data + struct.pack("!H", check)) == 0


@FAST
@given(data=data_st, lo=st.integers(0, 300), step=st.integers(1, 3))
def test_buffer_types_agree(ck, data, lo, step):
    view = memoryview(data)[lo::step]
    expect = rfc1071_sum(bytes(view))
    assert ck.csum_partial(view) == expect                    # non-contiguous when step > 1
    assert ck.csum_partial(bytearray(view)) == expect
    assert ck.csum_partial(memoryview(bytearray(view))) == expect


def test_memoryview_of_wider_items_sums_raw_bytes(ck):
    arr = memoryview(bytearray(range(16))).cast("H")
    assert ck.csum_partial(arr) == rfc1071_sum(bytes(range(16)))


def test_large_buffer(ck):
    data = bytes(range(256)) * 257 + b"\x7f"      # 65793 bytes, odd
    assert ck.csum_partial(data) == rfc1071_sum(data)
    assert ck.csum_partial(b"\xff" * 65536) == 0xFFFF


def test_initial_out_of_range_raises(ck):
    with pytest.raises(OverflowError):
        ck.csum_partial(b"ab", -1)
    with pytest.raises(OverflowError):
        ck.csum_partial(b"ab", 2**64)


# --- pseudo-header and TCP/UDP ----------------------------------------------------
@FAST
@given(src=addr_st, dst=addr_st, proto=st.integers(0, 255), length=st.integers(0, 0xFFFF))
def test_pseudo_header_sum_matches_packed_header(ck, src, dst, proto, length):
    # RFC 793: src, dst, zero, protocol, TCP length
    packed = struct.pack("!IIBBH", src, dst, 0, proto, length)
    assert ck.pseudo_header_sum(src, dst, proto, length) == rfc1071_sum(packed)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(src=addr_st, dst=addr_st, sport=st.integers(0, 0xFFFF), dport=st.integers(0, 0xFFFF),
       payload=st.binary(max_size=100), udp=st.booleans())
def test_tcpudp_checksum_matches_scapy(ck, src, dst, sport, dport, payload, udp):
    l4 = UDP(sport=sport, dport=dport) if udp else TCP(sport=sport, dport=dport, flags="PA")
    pkt = IP(bytes(IP(src=_dotted(src), dst=_dotted(dst)) / l4 / payload))  # scapy fills chksum
    seg = bytes(pkt.payload)
    proto = 17 if udp else 6
    # a correct segment verifies to 0 ...
    assert ck.tcpudp_checksum(src, dst, proto, seg) == 0
    # ... and the checksum over the segment with a zero field is what scapy put there
    off = 6 if udp else 16
    zeroed = seg[:off] + b"\0\0" + seg[off + 2:]
    ours = ck.tcpudp_checksum(src, dst, proto, zeroed)
    if udp and ours == 0:
        ours = 0xFFFF   # RFC 768: a computed 0 is transmitted as all ones
    assert ours == pkt.payload.chksum


def _dotted(ip: int) -> str:
    return ".".join(str(b) for b in ip.to_bytes(4, "big"))


# --- RFC 1624 incremental update ------------------------------------------------------
words_st = st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40)


def _replace_word(ck, fmt, words, idx, new):
    """Checksum of ``words`` (packed as ``fmt``), the word at 1 + idx (mod the
    rest) and the checksum recomputed after that word becomes ``new``."""
    idx = 1 + idx % (len(words) - 1)
    check = ck.internet_checksum(struct.pack(f"!{len(words)}{fmt}", *words))
    old, words[idx] = words[idx], new
    return check, old, ck.internet_checksum(struct.pack(f"!{len(words)}{fmt}", *words))


@FAST
@given(words=words_st, idx=st.integers(0, 39), new=st.integers(0, 0xFFFF))
def test_update16_equals_recompute(ck, words, idx, new):
    # a fixed non-zero word (like an IPv4 header's 0x45xx) keeps the sum away
    # from zero, where eqn. 3 and a full recompute legitimately differ (0 vs 0xFFFF)
    check, old, recomputed = _replace_word(ck, "H", [0x4500] + words, idx, new)
    assert ck.checksum_update16(check, old, new) == recomputed


@FAST
@given(words=st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=20),
       idx=st.integers(0, 19), new=st.integers(0, 0xFFFFFFFF))
def test_update32_equals_recompute(ck, words, idx, new):
    check, old, recomputed = _replace_word(ck, "I", [0x45000000] + words, idx, new)
    assert ck.checksum_update32(check, old, new) == recomputed


# --- the twins agree --------------------------------------------------------------------
@FAST
@given(data=st.binary(max_size=2000), initial=st.integers(0, 2**64 - 1),
       src=addr_st, dst=addr_st)
def test_twins_agree(data, initial, src, dst):
    pure, compiled = twin_pair("checksum")
    assert pure.csum_partial(data, initial) == compiled.csum_partial(data, initial)
    assert pure.internet_checksum(data, initial) == compiled.internet_checksum(data, initial)
    assert pure.tcpudp_checksum(src, dst, 6, data) == compiled.tcpudp_checksum(src, dst, 6, data)
    assert (pure.pseudo_header_sum(src, dst, 17, len(data))
            == compiled.pseudo_header_sum(src, dst, 17, len(data)))
