"""ACK coalescing per receive batch (issue 11), on a real Host, segments built
by scapy and answers dissected by scapy.

Linux decides its ACK once per GRO aggregate: the in-order segments of one
flow that arrive together are merged, and __tcp_ack_snd_check runs once for
the aggregate (more than one full segment unacknowledged, or quick-ACK mode:
ACK now).  tcpio has no GRO; the device batch plays its part: an ACK that
in-order data calls for waits for the end of the batch and goes once,
acknowledging everything the batch brought.  What does not change:
- a single segment in a batch still waits for the delayed-ACK timer
  (RFC 1122 4.2.3.2);
- out-of-order data is ACKed at once, segment by segment, with SACK blocks
  (RFC 5681 4.2: an immediate duplicate ACK; the sender counts them);
- at most 64 KiB (GRO's largest aggregate) wait for the batch's end;
- each coalesced ACK counts once against quick-ACK mode (tcp_dec_quickack_mode
  per ACK sent).
Both builds run these (the compiled fast path and the interpreted one call
the same hook).
"""

from __future__ import annotations

import socket

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, make_host
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

PORT = 8080
SPORT = 40000
PEER_ISS = 1000
MSS = 1000


class Flow:
    """A peer that has connected to a listener on the host: its segments as
    frames, the host's answers dissected."""

    def __init__(self, big_window: bool = False, **settings) -> None:
        self.h = make_host(**settings)
        lst = self.h.tcp.socket()
        options = [("MSS", MSS), ("SAckOK", b"")]
        if big_window:       # a 2 MiB buffer and window scaling: room for 80 segments
            lst.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            options.append(("WScale", 7))
        lst.bind(0, PORT)
        lst.listen(8)
        self.now = 1.0
        syn = TCP(sport=SPORT, dport=PORT, flags="S", seq=PEER_ISS, window=65535,
                  options=options)
        (synack,) = self.receive([IP(src=PEER, dst=MY) / syn])
        self.our_iss = synack[TCP].seq
        self.seq = PEER_ISS + 1
        self.receive([self.pkt(b"", flags="A")])
        self.sk = lst.accept()
        assert self.sk is not None and self.sk.state == TCP_ESTABLISHED

    def past_quick_ack(self) -> None:
        """Data once (which starts quick-ACK mode), read and ACKed, then quick-ACK
        mode ended: from here on the two-full-segments rule decides."""
        self.receive(self.data(1), advance=0.5)
        self.poll(self.now + 1.0)
        self.sk.recvmsg(1 << 20)
        self.sk.quick = 0

    def pkt(self, data: bytes, seq: int | None = None, flags: str = "A") -> IP:
        return (IP(src=PEER, dst=MY)
                / TCP(sport=SPORT, dport=PORT, flags=flags,
                      seq=self.seq if seq is None else seq, ack=self.our_iss + 1,
                      window=65535) / data)

    def data(self, n: int, size: int = MSS, flags: str = "A") -> list[IP]:
        """n in-order segments of ``size`` bytes from the current sequence."""
        out = []
        for _ in range(n):
            out.append(self.pkt(b"d" * size, flags=flags))
            self.seq += size
        return out

    def receive(self, pkts: list[IP], advance: float = 0.0) -> list[Ether]:
        """One device batch; the frames the host sent in answer."""
        self.now += advance
        frames = [bytes(Ether(dst=MAC, src=PEER_MAC) / p) for p in pkts]
        self.h.receive_batch(1, frames, self.now)
        return [Ether(f) for _, f in self.h.take_output()]

    def poll(self, until: float) -> list[Ether]:
        self.now = until
        self.h.poll(self.now)
        return [Ether(f) for _, f in self.h.take_output()]


def payload_len(frame: Ether) -> int:
    """From the headers (scapy shows Ethernet padding as payload)."""
    return frame[IP].len - frame[IP].ihl * 4 - frame[TCP].dataofs * 4


def acks(frames: list[Ether]) -> list[int]:
    """The ACK numbers of the pure ACKs among ``frames``."""
    return [f[TCP].ack for f in frames if TCP in f and payload_len(f) == 0]


def sack_blocks(frame: Ether) -> list[tuple[int, int]]:
    for kind, value in frame[TCP].options:
        if kind == "SAck":
            return list(zip(value[::2], value[1::2]))
    return []


def test_in_order_segments_of_one_batch_get_one_ack_for_all_of_them():
    f = Flow()
    f.past_quick_ack()
    out = f.receive(f.data(8), advance=0.5)
    assert acks(out) == [f.seq]                 # one ACK, for all eight segments
    assert not f.sk.ack_pending


def test_the_same_segments_one_per_batch_get_an_ack_every_second_segment():
    """The reference without batching: RFC 1122 4.2.3.2, every second full segment."""
    f = Flow()
    f.past_quick_ack()
    start = f.seq
    out = []
    for _ in range(8):
        out += f.receive(f.data(1), advance=0.001)
    assert acks(out) == [start + 2 * MSS, start + 4 * MSS, start + 6 * MSS, start + 8 * MSS]


def test_a_lone_segment_in_a_batch_still_waits_for_the_delayed_ack():
    f = Flow(tcp_delack_min=0.04)
    f.past_quick_ack()
    assert acks(f.receive(f.data(1), advance=0.5)) == []
    assert f.sk.ack_pending
    assert acks(f.poll(f.now + 0.04)) == [f.seq]


def test_out_of_order_segments_are_acked_at_once_one_dupack_each_with_sack():
    f = Flow()
    f.past_quick_ack()
    hole = f.seq
    f.seq += MSS                                # the first segment is lost
    out = f.receive(f.data(3), advance=0.5)
    dup = [x for x in out if TCP in x]
    assert [x[TCP].ack for x in dup] == [hole, hole, hole]
    assert [sack_blocks(x) for x in dup] == [
        [(hole + MSS, hole + 2 * MSS)],
        [(hole + MSS, hole + 3 * MSS)],
        [(hole + MSS, hole + 4 * MSS)],
    ]


def test_filling_the_hole_is_acked_at_the_end_of_the_batch_that_fills_it():
    f = Flow()
    f.past_quick_ack()
    hole = f.seq
    f.seq += MSS
    f.receive(f.data(3), advance=0.5)
    f.seq = hole
    fill = f.data(1)
    f.seq = hole + 4 * MSS
    out = f.receive(fill + f.data(2), advance=0.01)
    # the fill empties the out-of-order queue: its ACK and the next in-order
    # segments' are one, at the batch's end
    assert acks(out)[-1] == hole + 6 * MSS
    assert acks(out).count(hole + 6 * MSS) == 1


def test_push_segments_are_coalesced_like_any_other():
    f = Flow()
    f.past_quick_ack()
    out = f.receive(f.data(6, flags="PA"), advance=0.5)
    assert acks(out) == [f.seq]


def test_at_most_64_kib_wait_for_the_end_of_the_batch():
    """(In quick-ACK mode, where every segment asks for an ACK now: with the
    window wide open and nothing read, the two-segment rule itself would wait
    for the delayed-ACK timer, since the window cannot advance.)"""
    f = Flow(big_window=True)
    f.receive(f.data(1), advance=0.5)           # quick-ACK mode starts
    f.sk.recvmsg(1 << 20)
    assert f.sk.quick >= 2
    start = f.seq
    out = f.receive(f.data(80), advance=0.5)     # 80 000 bytes in one batch
    got = acks(out)
    assert len(got) == 2
    first = got[0] - start
    assert 65536 <= first < 65536 + MSS          # sent as the 64 KiB mark was passed
    assert got[1] == f.seq                       # and the rest at the batch's end


def test_quick_ack_mode_counts_one_ack_per_batch():
    """tcp_incr_quickack gives a new receiver quick-ACK credit; each ACK sent
    uses one (tcp_dec_quickack_mode), so a coalesced ACK uses one, not one
    per segment."""
    f = Flow()
    f.receive(f.data(1), advance=0.5)        # the first data: quick-ACK mode starts
    quick = f.sk.quick
    assert quick >= 3
    out = f.receive(f.data(3), advance=0.5)
    assert acks(out) == [f.seq]
    assert f.sk.quick == quick - 1


@pytest.mark.parametrize("n", [2, 5])
def test_a_batch_ack_carries_the_window_after_the_whole_batch(n):
    f = Flow()
    f.past_quick_ack()
    out = f.receive(f.data(n), advance=0.5)
    (ack,) = [x for x in out if TCP in x]
    # the advertised window is what is left after all n segments were queued
    assert ack[TCP].ack == f.seq
    assert ack[TCP].window == f.sk.rcv_wnd >> f.sk.rcv_wscale
    assert f.sk.rcv_wup == f.seq


def test_the_host_runs_deferred_work_once_per_owner_after_the_whole_batch():
    """The host side (NetHost.defer_to_batch_end): inside a batch, asked any
    number of times, ``fn(owner, now)`` runs once, after every frame of the
    batch; outside a batch nothing is deferred."""
    h = make_host()
    log: list[tuple] = []

    class Proto:
        def rcv(self, iph, payload, now) -> bool:
            log.append(("rcv", bytes(payload)))
            for owner in ("a", "b", "a"):
                assert h.defer_to_batch_end(lambda o, t: log.append(("end", o, t)), owner)
            return True

        def err(self, *args) -> None:
            pass

    h.register_protocol(253, Proto())
    frames = [bytes(Ether(dst=MAC, src=PEER_MAC) / IP(src=PEER, dst=MY, proto=253) / x)
              for x in (b"one", b"two")]
    h.receive_batch(1, frames, 2.0)
    assert log == [("rcv", b"one"), ("rcv", b"two"), ("end", "a", 2.0), ("end", "b", 2.0)]
    assert h.defer_to_batch_end(lambda o, t: log.append(o), "c") is False
    h.poll(3.0)
    assert log[-1] == ("end", "b", 2.0)
