"""The device fd loops (tcpio._fast.devio), both twins, on socketpairs and pipes.

A SOCK_SEQPACKET socketpair keeps datagram boundaries like a TAP (one frame
per read and per write, EAGAIN when empty or full), so the loops can be held
to a TAP's contract without root: what a read returns is exactly the frame
written behind the header, in order; a header with flags or gso_type goes to
``offloaded`` whole, in its place; the loop stops at the budget, at EAGAIN
(not an error) and at any other errno (left in ``error``); a read shorter
than the header is a runt.  Writes go one frame a write, the header first,
and stop at the first failure with its index.  tests/tap/test_devio_kernel.py
holds them to a real TAP.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator

import pytest
from conftest import twin_fixture, twin_pair
from hypothesis import given, settings
from hypothesis import strategies as st
from seqpacket import drain, seqpacket_pair

HLEN = 10
ZERO_HDR = bytes(HLEN)
# flags NEEDS_CSUM (1): what the device must hand to its offload path
CSUM_HDR = bytes([1, 0]) + bytes(HLEN - 2)
GSO_HDR = bytes([0, 1]) + bytes(HLEN - 2)    # gso_type TCPV4, flags 0

devio = twin_fixture("devio", "devio")
HYPO = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@pytest.fixture
def pair() -> Iterator[tuple[int, socket.socket]]:
    """(our fd, the peer's socket): a non-blocking SOCK_SEQPACKET pair."""
    ours, peer = seqpacket_pair()
    yield ours.fileno(), peer
    ours.close()
    peer.close()


def payload(n: int, tag: int) -> bytes:
    return bytes((tag + i) & 0xFF for i in range(n))


def no_offload(raw: bytes, frames: list[bytes]) -> None:
    raise AssertionError(f"offloaded called for {raw[:HLEN].hex()}")


# --- read ---------------------------------------------------------------------------

def test_read_stops_at_the_budget_then_at_eagain_without_an_error(devio, pair) -> None:
    fd, peer = pair
    sent = [payload(60 + i, i) for i in range(5)]
    for f in sent:
        peer.send(f)
    io = devio.FrameIO(2048)
    got: list[bytes] = []
    assert io.read(fd, 3, got, no_offload) == 3
    assert got == sent[:3] and io.error == 0 and io.nbytes == sum(map(len, sent[:3]))
    assert io.read(fd, 10, got, no_offload) == 2          # EAGAIN after two: not an error
    assert got == sent and io.error == 0 and io.nbytes == sum(map(len, sent[3:]))
    assert io.read(fd, 10, got, no_offload) == 0 and io.error == 0 and io.nbytes == 0
    assert io.read(fd, 0, got, no_offload) == 0


def test_read_strips_the_header_and_hands_a_flagged_one_over_in_its_place(devio, pair) -> None:
    fd, peer = pair
    a, b, c, d = (payload(n, n) for n in (60, 1514, 300, 90))
    for f in (ZERO_HDR + a, CSUM_HDR + b, ZERO_HDR + c, GSO_HDR + d):
        peer.send(f)
    seen: list[bytes] = []

    def offloaded(raw: bytes, frames: list[bytes]) -> None:
        seen.append(raw)
        frames.append(b"<" + raw[HLEN:] + b">")
    io = devio.FrameIO(HLEN + 2048, HLEN)
    got: list[bytes] = []
    assert io.read(fd, 16, got, offloaded) == 4
    assert seen == [CSUM_HDR + b, GSO_HDR + d]
    assert got == [a, b"<" + b + b">", c, b"<" + d + b">"]
    assert io.nbytes == len(a) + len(b) + len(c) + len(d)      # frames, not headers
    assert io.runts == 0


def test_a_read_shorter_than_the_header_is_a_runt_and_the_loop_goes_on(devio, pair) -> None:
    fd, peer = pair
    for f in (b"\1\2\3\4", ZERO_HDR + b"x" * 50, b""):
        peer.send(f)
    io = devio.FrameIO(HLEN + 2048, HLEN)
    got: list[bytes] = []
    assert io.read(fd, 16, got, no_offload) == 3
    assert got == [b"x" * 50] and io.runts == 2 and io.error == 0 and io.nbytes == 50
    # a header alone is a frame of no bytes, not a runt
    peer.send(ZERO_HDR)
    assert io.read(fd, 16, got, no_offload) == 1 and got[-1] == b"" and io.runts == 0


@pytest.mark.parametrize("hlen", [0, HLEN])
def test_frames_read_stay_as_read_whatever_is_read_after(devio, pair, hlen: int) -> None:
    """The loop reads into a buffer it keeps: a frame it handed out (copied
    out, or the buffer itself when large) must not change with later reads."""
    fd, peer = pair
    size = hlen + 1000
    sizes = [10, 999, 600, 400, 501, 500, 1000, 1, 1000]
    io = devio.FrameIO(size, hlen)
    got: list[bytes] = []
    want = []
    for i, n in enumerate(sizes):
        f = payload(n, 7 * i)
        want.append(f)
        peer.send(bytes(hlen) + f)
        assert io.read(fd, 1, got, no_offload) == 1
    for i in range(3):      # more reads into the same buffer
        peer.send(bytes(hlen) + b"\xff" * 1000)
        io.read(fd, 1, [], no_offload)
    assert got == want
    assert all(type(f) is bytes for f in got)


def test_a_read_error_ends_the_loop_and_is_left_in_error(devio) -> None:
    r, w = os.pipe()
    try:
        io = devio.FrameIO(2048)
        got: list[bytes] = []
        assert io.read(w, 8, got, no_offload) == 0          # the write end: EBADF
        assert io.error == errno.EBADF and got == []
    finally:
        os.close(r)
        os.close(w)


def test_a_truncated_read_gives_what_fit(devio, pair) -> None:
    """A frame larger than ``size`` (the device's MTU-sized reads): the
    datagram is cut as read(2) cuts it, the next one is whole."""
    fd, peer = pair
    peer.send(payload(3000, 1))
    peer.send(payload(100, 2))
    io = devio.FrameIO(2048)
    got: list[bytes] = []
    assert io.read(fd, 8, got, no_offload) == 2
    assert got == [payload(3000, 1)[:2048], payload(100, 2)]


def test_an_exception_in_the_offload_path_propagates(devio, pair) -> None:
    fd, peer = pair
    peer.send(CSUM_HDR + b"y" * 80)

    def offloaded(raw: bytes, frames: list[bytes]) -> None:
        raise ValueError("bad header")
    with pytest.raises(ValueError, match="bad header"):
        devio.FrameIO(2048, HLEN).read(fd, 8, [], offloaded)


def test_read_counts_what_it_read_in_the_devices_counters(devio, pair) -> None:
    """Given the device's counters, a read keeps them (one compiled call per
    batch, no counting by the device): frames and their bytes (headers not
    counted), runts and a read error as rx_errors, and a small partial
    checksum completed in the copy as rx_csum_partial."""
    from tcpio.devices.base import new_stats
    from tcpio.devices.tap import new_gso_stats

    fd, peer = pair
    a = payload(60, 1)
    # NEEDS_CSUM, csum_start 0, csum_offset 4 (host order): small, no GSO
    csum_hdr = bytes([1, 0, 0, 0, 0, 0]) + (0).to_bytes(2, "little") + (4).to_bytes(2, "little")
    b = bytes(40)
    for f in (ZERO_HDR + a, b"\1\2", csum_hdr + b):
        peer.send(f)
    stats, gso = new_stats(), new_gso_stats()
    io = devio.FrameIO(HLEN + 2048, HLEN)
    got: list[bytes] = []
    assert io.read(fd, 8, got, no_offload, 1500, stats, gso) == 3
    assert got[0] == a and len(got[1]) == len(b)
    assert (stats["rx_packets"], stats["rx_bytes"], stats["rx_errors"]) == (2, 100, 1)
    assert gso["rx_csum_partial"] == 1
    assert io.read(fd, 8, got, no_offload, 1500, stats, gso) == 0     # EAGAIN: no error
    assert (stats["rx_packets"], stats["rx_errors"]) == (2, 1)
    r, w = os.pipe()
    try:
        assert io.read(w, 8, got, no_offload, 1500, stats, gso) == 0   # EBADF
        assert (stats["rx_packets"], stats["rx_bytes"], stats["rx_errors"]) == (2, 100, 2)
    finally:
        os.close(r)
        os.close(w)


def test_frameio_refuses_a_size_not_above_the_header(devio) -> None:
    with pytest.raises(ValueError):
        devio.FrameIO(10, 10)
    with pytest.raises(ValueError):
        devio.FrameIO(100, -1)


# --- write ----------------------------------------------------------------------------

def test_write_puts_one_frame_per_write_with_the_header_first(devio, pair) -> None:
    fd, peer = pair
    calls: list[object] = []

    def tx_hdr(frame: bytes | bytearray, plain: bytes) -> bytes:
        calls.append(frame)
        return b"H" * HLEN
    frames: list[bytes | bytearray] = [b"a" * 60, bytearray(b"b" * 70), b"c" * 1514]
    io = devio.FrameIO(2048, HLEN)
    assert io.write(fd, frames, 0, ZERO_HDR, tx_hdr) == 3
    assert io.error == 0 and io.nbytes == 60 + 70 + 1514
    assert drain(peer) == [ZERO_HDR + b"a" * 60, b"H" * HLEN + b"b" * 70, ZERO_HDR + b"c" * 1514]
    assert calls == [bytearray(b"b" * 70)]            # only for what is not plain bytes
    plain = devio.FrameIO(2048)
    assert plain.write(fd, tuple(frames), 1, b"", tx_hdr) == 3     # from ``start``, no header
    assert drain(peer) == [b"b" * 70, b"c" * 1514] and plain.nbytes == 70 + 1514
    assert len(calls) == 1


def test_send_writes_one_frame_as_write_does_and_counts_it(devio, pair) -> None:
    """``send``: one frame behind its header (``plain`` for bytes,
    ``tx_hdr`` for anything else), counted as sent in the device's
    counters; a write that fails returns its errno and counts nothing."""
    from tcpio.devices.base import new_stats

    fd, peer = pair

    def tx_hdr(frame: bytes | bytearray, plain: bytes) -> bytes:
        return b"H" * HLEN
    stats = new_stats()
    io = devio.FrameIO(2048, HLEN)
    assert io.send(fd, b"a" * 60, ZERO_HDR, tx_hdr, stats) == 0
    assert io.send(fd, bytearray(b"b" * 70), ZERO_HDR, tx_hdr, stats) == 0
    assert drain(peer) == [ZERO_HDR + b"a" * 60, b"H" * HLEN + b"b" * 70]
    assert (stats["tx_packets"], stats["tx_bytes"]) == (2, 130)
    sent = 0
    while (err := io.send(fd, payload(1000, sent), ZERO_HDR, tx_hdr, stats)) == 0:
        sent += 1                                   # until the socket is full
    assert err == errno.EAGAIN == io.error
    assert stats["tx_packets"] == 2 + sent and len(drain(peer)) == sent
    r, w = os.pipe()
    try:
        assert devio.FrameIO(2048).send(r, b"x", b"", no_offload, stats) == errno.EBADF
        assert stats["tx_packets"] == 2 + sent and stats["tx_errors"] == 0
    finally:
        os.close(r)
        os.close(w)


def test_write_stops_at_eagain_with_the_index_of_the_refused_frame(devio, pair) -> None:
    fd, peer = pair
    frames = [payload(1000, i) for i in range(2000)]       # far more than the socket takes
    io = devio.FrameIO(2048)
    done = io.write(fd, frames, 0, b"", no_offload)
    assert 0 < done < len(frames)
    assert io.error == errno.EAGAIN and io.nbytes == 1000 * done
    assert drain(peer) == frames[:done]
    again = io.write(fd, frames, done, b"", no_offload)    # room again: on from there
    assert again > done and io.nbytes == 1000 * (again - done)
    assert drain(peer) == frames[done:again]


def test_write_errors_are_left_in_error_with_the_frames_index(devio) -> None:
    r, w = os.pipe()
    try:
        io = devio.FrameIO(2048)
        assert io.write(r, [b"x" * 10, b"y"], 0, b"", no_offload) == 0   # the read end
        assert io.error == errno.EBADF and io.nbytes == 0
        assert io.write(w, [b"x" * 10, b"y"], 0, b"", no_offload) == 2
        assert os.read(r, 100) == b"x" * 10 + b"y"
        assert io.write(w, [b"z"], 5, b"", no_offload) == 1 and io.nbytes == 0
    finally:
        os.close(r)
        os.close(w)


def test_an_exception_from_tx_hdr_propagates(devio, pair) -> None:
    fd, peer = pair

    def tx_hdr(frame: bytes | bytearray, plain: bytes) -> bytes:
        raise RuntimeError("no header")
    with pytest.raises(RuntimeError):
        devio.FrameIO(2048, HLEN).write(fd, [b"a" * 60, bytearray(60)], 0, ZERO_HDR, tx_hdr)
    assert drain(peer) == [ZERO_HDR + b"a" * 60]



# --- write_all (a writer thread's batch, the GIL released) ---------------------------

def test_write_all_puts_each_frame_behind_its_header_in_order(devio, pair) -> None:
    fd, peer = pair
    frames = [b"a" * 60, payload(1514, 3), b"c"]
    hdrs = [ZERO_HDR, b"H" * HLEN, ZERO_HDR]
    io = devio.FrameIO(2048, HLEN)
    assert io.write_all(fd, frames, hdrs, 0) == 3
    assert io.error == 0 and io.dropped == 0 and io.nbytes == 60 + 1514 + 1
    assert drain(peer) == [h + f for h, f in zip(hdrs, frames)]
    plain = devio.FrameIO(2048)
    assert plain.write_all(fd, frames, None, 0) == 3 and plain.nbytes == 60 + 1514 + 1
    assert drain(peer) == frames
    assert plain.write_all(fd, [], None, 0) == 0
    with pytest.raises(ValueError):
        io.write_all(fd, frames, hdrs[:2], 0)        # one header a frame


def test_write_all_waits_for_room_then_drops_what_still_does_not_fit(devio, pair) -> None:
    fd, peer = pair
    frames = [payload(1000, i) for i in range(2000)]       # far more than the socket takes
    io = devio.FrameIO(2048)
    sent = io.write_all(fd, frames, None, 3)       # nobody reads: ~3 ms of waiting, then drops
    assert 0 < sent < len(frames)
    assert io.dropped == len(frames) - sent and io.error == errno.EAGAIN
    assert io.nbytes == 1000 * sent
    assert drain(peer) == frames[:sent]            # the first ones, in order


def test_write_all_errors_drop_the_frame_and_go_on(devio) -> None:
    r, w = os.pipe()
    try:
        io = devio.FrameIO(2048)
        assert io.write_all(r, [b"x" * 10, b"y"], None, 100) == 0      # the read end
        assert io.dropped == 2 and io.error == errno.EBADF and io.nbytes == 0
        assert io.write_all(w, [b"x" * 10, b"y"], None, 0) == 2 and io.dropped == 0
        assert os.read(r, 100) == b"x" * 10 + b"y"
    finally:
        os.close(r)
        os.close(w)


# --- the twins agree ------------------------------------------------------------------

frame_st = st.tuples(st.sampled_from([ZERO_HDR, CSUM_HDR, GSO_HDR, b"\0\0\x01", b""]),
                     st.integers(0, 1600))


@HYPO
@given(st.lists(frame_st, max_size=40), st.integers(1, 50), st.sampled_from([0, HLEN]),
       st.sampled_from([700, 1600, 4000]))
def test_the_twins_read_alike(seq: list[tuple[bytes, int]], budget: int, hlen: int,
                              size: int) -> None:
    pure, compiled = twin_pair("devio")
    results = []
    for mod in (pure, compiled):
        ours, peer = seqpacket_pair()
        with ours, peer:
            for i, (hdr, n) in enumerate(seq):
                peer.send(hdr + payload(n, i))
            io = mod.FrameIO(size + hlen, hlen)
            got: list[bytes] = []
            offl: list[bytes] = []

            def offloaded(raw: bytes, frames: list[bytes], offl: list[bytes] = offl) -> None:
                offl.append(raw)
                frames.append(b"O")
            counts = []
            while True:
                n = io.read(ours.fileno(), budget, got, offloaded)
                counts.append((n, io.nbytes, io.runts, io.error))
                if n < budget:
                    break
            results.append((got, offl, counts))
    assert results[0] == results[1]


# --- small flagged frames taken in the read loop (``small``) ------------------------

def _vnet_hdr(flags: int, gso: int, start: int, offset: int) -> bytes:
    """A legacy virtio-net header (the host's byte order, as the TAP writes it)."""
    return (bytes([flags, gso]) + bytes(4) + start.to_bytes(2, "little")
            + offset.to_bytes(2, "little"))


small_st = st.tuples(st.integers(0, 7), st.sampled_from([0, 1, 0x80]), st.integers(0, 120),
                     st.integers(0, 40), st.integers(0, 200))


@HYPO
@given(st.lists(small_st, min_size=1, max_size=20), st.sampled_from([0, 64, 2048]),
       st.sampled_from([HLEN, 12]))
def test_a_small_flagged_frame_read_is_what_vnet_rx_gives(seq: list[tuple], small: int,
                                                          hlen: int) -> None:
    """With ``small``, a flagged frame of at most ``small`` bytes whose header
    says NEEDS_CSUM and/or DATA_VALID and no GSO comes out of the read as
    rx.vnet_rx hands it up (plain bytes, the partial checksum completed from
    csum_start over the rest of the frame, RFC 1071), counted in csum_done
    for NEEDS_CSUM; anything else still goes to ``offloaded`` whole.  Both
    twins alike, and alike with vnet_rx."""
    from tcpio._fast import load
    vnet_rx = load("rx").vnet_rx
    pure, compiled = twin_pair("devio")
    results = []
    for mod in (pure, compiled):
        ours, peer = seqpacket_pair()
        with ours, peer:
            want: list[bytes] = []
            csum = 0
            for i, (flags, gso, start, offset, n) in enumerate(seq):
                raw = _vnet_hdr(flags, gso, start, offset) + bytes(hlen - HLEN) + payload(n, i)
                peer.send(raw)
                taken = (n <= small and gso == 0 and not flags & ~3 and flags
                         and (not flags & 1 or start + offset + 2 <= n))
                if not flags and not gso:
                    want.append(payload(n, i))                  # not flagged
                elif taken:
                    want.append(bytes(vnet_rx(raw, hlen)))
                    csum += flags & 1
                else:
                    want.append(b"O" + raw)
            io = mod.FrameIO(4096, hlen)
            got: list[bytes] = []

            def offloaded(raw: bytes, frames: list[bytes]) -> None:
                frames.append(b"O" + raw)
            assert io.read(ours.fileno(), 64, got, offloaded, small) == len(seq)
            assert got == want and io.csum_done == csum
            assert all(type(f) is bytes for f in got)
            results.append(got)
    assert results[0] == results[1]


def test_a_partial_checksum_completed_in_the_read_checks_out(devio, pair) -> None:
    """A completed frame verifies as its receiver checks it: the sum from
    csum_start, with the pseudo-header's sum (what the kernel left in the
    field) added, is all ones (RFC 1071)."""
    from tcpio._fast import load
    csum_partial = load("checksum").csum_partial
    fd, peer = pair
    body = bytearray(payload(100, 3))
    start, offset = 20, 16
    body[start + offset:start + offset + 2] = (0x1234).to_bytes(2, "big")   # pseudo sum
    peer.send(_vnet_hdr(1, 0, start, offset) + bytes(body))
    io = devio.FrameIO(2048, HLEN)
    got: list[bytes] = []
    assert io.read(fd, 8, got, no_offload, 2048) == 1 and io.csum_done == 1
    [frame] = got
    assert csum_partial(frame[start:], 0x1234) == 0xFFFF
    assert frame[:start + offset] == body[:start + offset]
    assert frame[start + offset + 2:] == body[start + offset + 2:]
