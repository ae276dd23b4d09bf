"""The TAP device's read and write loops through devio, on socketpairs (no root).

The device's contract around its fd, with each twin of devio.FrameIO in turn:
a write the fd refuses for want of room (EAGAIN) hands the refused frame and
the rest back to the interface's queue, in order, and stops it; without a
queue, and for other errors, each refused frame is a counted drop and the
next is tried (tx_errors only for an errno that is not a link's "cannot
take it now"); a frame whose virtio header has work in it (here NEEDS_CSUM)
comes up through the offload path with its checksum completed (scapy
recomputes it), in its place among the plain ones; read errors and runts
are rx_errors.  tests/tap/test_devio_kernel.py does the same against a TAP.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import twin_fixture
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from seqpacket import drain, seqpacket_pair

import tcpio.devices.tap as tap_mod
from tcpio.devices.base import new_stats
from tcpio.devices.tap import RxShare, SynShare, TapDevice, new_gso_stats

HLEN = 10
MAC = bytes.fromhex("020000000002")

devio = twin_fixture("devio", "devio")


class FakeLoop:
    def __init__(self) -> None:
        self.writers: dict[int, Any] = {}

    def add_writer(self, fd: int, cb: Any) -> None:
        self.writers[fd] = cb

    def remove_writer(self, fd: int) -> bool:
        return self.writers.pop(fd, None) is not None


class FakeNetif:
    """The interface's queue as the device sees it (NetifQueue)."""

    def __init__(self) -> None:
        self.requeued: list[bytes] = []
        self.stopped = False

    def requeue(self, frame: bytes) -> None:
        self.requeued.append(frame)

    def stop(self) -> None:
        self.stopped = True

    def wake(self) -> None:
        self.stopped = False


def make_device(fd: int, hlen: int = 0) -> TapDevice:
    dev = TapDevice.__new__(TapDevice)
    dev.name, dev.mtu, dev.mac = "devio0", 1500, MAC
    dev.fd, dev.syn_fd = fd, None
    dev.budget, dev.vnet_hdr_len, dev._readsize = 8, hlen, hlen + 2048
    dev.stats = new_stats()
    dev.gso_stats = new_gso_stats()
    dev.rx_more, dev.rx_emptied, dev.time_squeeze, dev.syn_queue_rx = False, 0, 0, 0
    dev.rx_flows_read, dev.rx_ring_len = 0, 0
    dev.syn_share, dev._syn_timer, dev._loop = SynShare(), None, None
    dev.rx_share = RxShare()
    dev._on_frames = None
    return dev


@pytest.fixture
def pair(devio: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, socket.socket]]:
    """(the device's fd, the peer) on SOCK_SEQPACKET, the device on ``devio``'s twin."""
    monkeypatch.setattr(tap_mod, "_FrameIO", devio.FrameIO)
    ours, peer = seqpacket_pair()
    yield ours.fileno(), peer
    ours.close()
    peer.close()


def frames(n: int) -> list[bytes]:
    return [b"%06d" % i + bytes(1000) for i in range(n)]


# --- send_batch -------------------------------------------------------------------------

def test_a_full_fd_hands_the_refused_frame_and_the_rest_back_to_the_queue(pair) -> None:
    fd, peer = pair
    dev = make_device(fd)
    loop, netif = FakeLoop(), FakeNetif()
    dev._loop, dev.netif = loop, netif      # type: ignore[assignment]
    batch = frames(2000)
    dev.send_batch(batch)
    written = drain(peer)
    assert 0 < len(written) < len(batch)
    assert written + netif.requeued == batch                # nothing lost, nothing twice, in order
    assert netif.stopped and fd in loop.writers             # watched for room
    st = dev.stats
    assert st["tx_packets"] == len(written) and st["tx_bytes"] == 1006 * len(written)
    assert st["tx_dropped"] == 0 and st["tx_errors"] == 0
    # stopped: the next batch goes straight back to the queue
    dev.send_batch(batch[:3])
    assert netif.requeued[-3:] == batch[:3] and drain(peer) == []


def test_without_a_queue_a_full_fd_drops_each_refused_frame_and_tries_the_next(pair) -> None:
    fd, peer = pair
    dev = make_device(fd)
    batch = frames(1500)
    dev.send_batch(batch)
    written = drain(peer)
    st = dev.stats
    assert 0 < len(written) < len(batch)
    assert st["tx_packets"] == len(written) and st["tx_dropped"] == len(batch) - len(written)
    assert st["tx_errors"] == 0                              # EAGAIN: the link's "not now"
    dev.send_batch(batch[:2])                                # room again: written
    assert drain(peer) == batch[:2] and st["tx_packets"] == len(written) + 2


def test_an_error_that_is_not_the_links_counts_in_tx_errors_for_each_frame(pair) -> None:
    fd, peer = pair
    dev = make_device(fd)
    peer.close()                                             # EPIPE from now on
    dev.send_batch(frames(3))
    st = dev.stats
    assert st["tx_errors"] == 3 and st["tx_dropped"] == 3 and st["tx_packets"] == 0


def test_one_frame_sent_alone_goes_as_in_a_batch_of_one(pair) -> None:
    """``send`` (one frame, an echo's answer: no batch loop) writes, counts,
    hands back to a stopped or full queue and drops as ``send_batch`` does."""
    fd, peer = pair
    dev = make_device(fd)
    loop, netif = FakeLoop(), FakeNetif()
    dev._loop, dev.netif = loop, netif      # type: ignore[assignment]
    one = frames(1)[0]
    dev.send(one)                            # first: the fd's writer made on the way
    dev.send(one)
    assert drain(peer) == [one, one]
    st = dev.stats
    assert st["tx_packets"] == 2 and st["tx_bytes"] == 2 * len(one)
    many = frames(5000)
    sent = 0
    while not netif.stopped:                 # until the fd is full: the refused one queued
        dev.send(many[sent])
        sent += 1
    assert netif.requeued == [many[sent - 1]] and fd in loop.writers
    assert st["tx_packets"] == 2 + sent - 1 and st["tx_dropped"] == 0
    dev.send(one)                            # stopped: straight back to the queue
    assert netif.requeued[-1] is one and st["tx_dropped"] == 0
    drain(peer)
    dev.netif = None
    peer.close()                             # EPIPE: not the link's, an error
    dev.send(one)
    assert st["tx_errors"] == 1 and st["tx_dropped"] == 1


def test_send_batch_with_the_header_puts_it_in_front_of_every_frame(pair) -> None:
    fd, peer = pair
    dev = make_device(fd, HLEN)
    batch: list[bytes | bytearray] = [b"a" * 60, bytearray(b"b" * 61)]
    dev.send_batch(batch)
    assert drain(peer) == [bytes(HLEN) + b"a" * 60, bytes(HLEN) + b"b" * 61]
    assert dev.stats["tx_packets"] == 2 and dev.stats["tx_bytes"] == 121


def test_a_link_error_drops_without_tx_errors(devio, monkeypatch) -> None:
    monkeypatch.setattr(tap_mod, "_FrameIO", devio.FrameIO)
    r, w = os.pipe()
    try:
        dev = make_device(r)                                 # the read end: EBADF
        dev.send_batch(frames(4))
        assert dev.stats["tx_dropped"] == 4 and dev.stats["tx_errors"] == 0
    finally:
        os.close(r)
        os.close(w)


# --- _on_readable -----------------------------------------------------------------------

def partial_csum_frame() -> tuple[bytes, bytes]:
    """(virtio header + frame with a partial UDP checksum, the frame scapy
    checksums whole): NEEDS_CSUM, the field holding the pseudo-header sum."""
    pkt = Ether(dst=MAC, src="02:00:00:00:00:01") / IP(src="10.0.0.1", dst="10.0.0.2") / \
        UDP(sport=5000, dport=53) / (b"q" * 333)
    whole = bytes(pkt)
    ulen = 8 + 333
    addrs = socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.0.2")
    pseudo = sum(struct.unpack("!4H", addrs)) + 17 + ulen      # RFC 768's pseudo-header
    while pseudo >> 16:
        pseudo = (pseudo & 0xFFFF) + (pseudo >> 16)
    start = 14 + 20
    raw = bytearray(whole)
    raw[start + 6:start + 8] = struct.pack("!H", pseudo)
    hdr = struct.pack("<BBHHHH", 1, 0, 0, 0, start, 6)     # NEEDS_CSUM, start, offset
    return hdr + bytes(raw), whole


def test_a_flagged_header_goes_through_the_offload_path_in_its_place(pair) -> None:
    fd, peer = pair
    dev = make_device(fd, HLEN)
    got: list[list[bytes]] = []
    dev._on_frames = got.append
    partial, whole = partial_csum_frame()
    assert partial[HLEN:] != whole                           # the checksum is not there yet
    peer.send(bytes(HLEN) + b"A" * 60)
    peer.send(partial)
    peer.send(bytes(HLEN) + b"B" * 60)
    assert dev._on_readable() == 3
    assert got == [[b"A" * 60, whole, b"B" * 60]]
    assert Ether(got[0][1])[UDP].chksum == UDP(bytes(Ether(whole)[UDP]))[UDP].chksum
    assert dev.gso_stats["rx_csum_partial"] == 1
    assert dev.stats["rx_packets"] == 3
    assert dev.stats["rx_bytes"] == 120 + len(whole)
    assert not dev.rx_more and dev.rx_emptied == 1 and dev.rx_flows_read == 3


def test_reading_to_the_budget_says_more_and_reading_to_eagain_says_emptied(pair) -> None:
    fd, peer = pair
    dev = make_device(fd)
    got: list[list[bytes]] = []
    dev._on_frames = got.append
    for f in frames(10):
        peer.send(f)
    assert dev._on_readable() == 8 and dev.rx_more and dev.rx_emptied == 0
    assert dev._on_readable() == 2 and not dev.rx_more and dev.rx_emptied == 1
    assert dev._on_readable() == 0 and dev.rx_emptied == 2
    assert [f for b in got for f in b] == frames(10) and dev.rx_flows_read == 10
    assert dev.stats["rx_packets"] == 10 and dev.stats["rx_errors"] == 0


def test_read_errors_and_runts_are_rx_errors(devio, monkeypatch, pair) -> None:
    fd, peer = pair
    dev = make_device(fd, HLEN)
    got: list[list[bytes]] = []
    dev._on_frames = got.append
    peer.send(b"\0\0\0")                                     # shorter than the header
    peer.send(bytes(HLEN) + b"ok")
    assert dev._on_readable() == 2
    assert got == [[b"ok"]] and dev.stats["rx_errors"] == 1 and dev.stats["rx_packets"] == 1
    r, w = os.pipe()
    try:
        bad = make_device(w)                                 # the write end: EBADF
        assert bad._on_readable() == 0
        assert bad.stats["rx_errors"] == 1 and not bad.rx_more and bad.rx_emptied == 1
    finally:
        os.close(r)
        os.close(w)


def test_the_syn_queue_counts_its_own_frames(pair) -> None:
    fd, peer = pair
    flows_r, flows_w = seqpacket_pair()
    with flows_r, flows_w:
        dev = make_device(flows_r.fileno())
        dev.syn_fd = fd
        got: list[list[bytes]] = []
        dev._on_frames = got.append
        for f in frames(5):
            peer.send(f)
        assert dev._on_readable(fd, 3) == 3
        assert dev.syn_queue_rx == 3 and dev.rx_flows_read == 0 and not dev.rx_more
        assert dev.rx_emptied == 0 and got == [frames(3)]
