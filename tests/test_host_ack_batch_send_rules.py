"""A sender's ACKs read in one receive batch send once, at the batch's end
(issue 12), on a real Host, segments built by scapy and answers dissected by
scapy.

A bulk sender reads the peer's ACKs in batches (tens of them per device
read).  Each bare ACK runs tcp_ack at once (window, snd_una, RTT, cwnd,
timers), but tcp_data_snd_check waits for the end of the batch
(tcp_input.tcp_data_snd_check_batched): the frames leave after the batch
either way.  What must not change is what goes: cwnd, the peer's window and
Nagle decide on the state every ACK of the batch left, so the data segments
(sequence numbers and lengths) are the ones the same ACKs send one batch
each.  A segment that carries data still sends at once (what goes carries
its ACK).  Both builds run these (the compiled and the interpreted ACK path
call the same hook).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, make_host
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpio.core.tcp import tcp_input
from tcpio.core.tcp.tcp_output import ICSK_TIME_LOSS_PROBE
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

PORT = 8080
SPORT = 40000
PEER_ISS = 1000
MSS = 1000


def payload_len(frame: Ether) -> int:
    return frame[IP].len - frame[IP].ihl * 4 - frame[TCP].dataofs * 4


def data_segments(frames: list[Ether]) -> list[tuple[int, int]]:
    """(seq, length) of the frames that carry data, in order."""
    return [(f[TCP].seq, payload_len(f)) for f in frames if TCP in f and payload_len(f)]


class Sender:
    """The host accepted a connection from the peer and writes ``size`` bytes
    to it; the peer's ACKs go in as frames."""

    def __init__(self, size: int = 400_000, window: int = 65535) -> None:
        self.h = make_host()
        lst = self.h.tcp.socket()
        lst.bind(0, PORT)
        lst.listen(8)
        self.now = 1.0
        self.window = window
        syn = TCP(sport=SPORT, dport=PORT, flags="S", seq=PEER_ISS, window=window,
                  options=[("MSS", MSS), ("SAckOK", b"")])
        (synack,) = self.receive([IP(src=PEER, dst=MY) / syn])
        self.iss = synack[TCP].seq
        self.receive([self.ack(self.iss + 1)])
        self.sk = lst.accept()
        assert self.sk is not None and self.sk.state == TCP_ESTABLISHED
        self.sk.nodelay = True
        assert self.sk.sendmsg(b"x" * size) > 0
        self.first = data_segments([Ether(f) for _, f in self.h.take_output()])

    def ack(self, ack: int) -> IP:
        return IP(src=PEER, dst=MY) / TCP(sport=SPORT, dport=PORT, flags="A",
                                          seq=PEER_ISS + 1, ack=ack, window=self.window)

    def receive(self, pkts: list[IP], advance: float = 0.0) -> list[Ether]:
        """One device batch; the frames the host sent in answer."""
        self.now += advance
        frames = [bytes(Ether(dst=MAC, src=PEER_MAC) / p) for p in pkts]
        self.h.receive_batch(1, frames, self.now)
        return [Ether(f) for _, f in self.h.take_output()]


def _acks_for(s: Sender, every: int) -> list[IP]:
    """The peer's ACKs for the first flight, one per ``every`` segments."""
    ends = [seq + n for seq, n in s.first]
    return [s.ack(end) for end in ends[every - 1::every]]


@pytest.mark.parametrize("every", [1, 2, 3])
def test_acks_of_one_batch_send_what_the_same_acks_send_one_batch_each(every):
    batched, single = Sender(), Sender()
    assert batched.first == single.first and len(batched.first) == 10   # the initial window
    out_batched = batched.receive(_acks_for(batched, every), advance=0.05)
    out_single: list[Ether] = []
    for pkt in _acks_for(single, every):
        out_single += single.receive([pkt], advance=0.05 / len(batched.first) * every)
    assert data_segments(out_batched) == data_segments(out_single)
    # slow start: each acknowledged segment lets two go (RFC 5681 3.1)
    acked = len(batched.first) // every * every
    assert len(data_segments(out_batched)) == 2 * acked
    for s in (batched, single):
        assert s.sk.snd_cwnd == 10 + acked and s.sk.packets_out == 10 + acked


@pytest.fixture
def send_loops(monkeypatch) -> Iterator[list[int]]:
    """snd_una at each tcp_write_xmit that tcp_data_snd_check runs."""
    calls: list[int] = []
    real = tcp_input.tcp_write_xmit

    def counting(sk, now):
        calls.append(sk.snd_una)
        return real(sk, now)

    monkeypatch.setattr(tcp_input, "tcp_write_xmit", counting)
    tcp_input.tcp_init_fast_hooks()     # (the compiled tcp_data_snd_check calls the hook)
    yield calls
    monkeypatch.undo()
    tcp_input.tcp_init_fast_hooks()


def test_a_batch_of_acks_runs_the_send_loop_once(send_loops):
    s = Sender()
    calls = send_loops
    acks = _acks_for(s, 2)
    out = s.receive(acks, advance=0.05)
    # once, after every ACK of the batch was processed
    assert calls == [acks[-1][TCP].ack]
    assert len(data_segments(out)) == 20


def test_an_ack_outside_a_batch_sends_at_once(send_loops):
    s = Sender()
    calls = send_loops
    acks = _acks_for(s, 2)
    s.h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC) / acks[0]), s.now + 0.01)
    assert calls == [acks[0][TCP].ack]


def test_the_peers_window_still_bounds_a_batchs_send():
    """RFC 9293 3.8.6.2.1: nothing beyond snd_una + the window, also when the
    batch's last ACK is what set both."""
    s = Sender(window=20 * MSS)
    acks = _acks_for(s, 2)
    out = s.receive(acks, advance=0.05)
    last = acks[-1][TCP].ack
    sent = data_segments(out)
    assert sent and max(seq + n for seq, n in sent) == last + 20 * MSS


@pytest.mark.parametrize("batch", [True, False], ids=["in_a_batch", "alone"])
def test_an_ack_with_data_still_out_arms_the_loss_probe(batch):
    """RFC 8985 7.2 on an ACK of new data (tcp_ack's tcp_set_xmit_timer):
    SACK negotiated, data still outstanding, nothing new to send: the timer
    is the probe timeout, PTO = 2 * SRTT + 2 ms (more than one segment in
    flight), not the RTO."""
    s = Sender(size=10 * MSS)
    assert len(s.first) == 10 and s.sk.sack_ok
    sent_at = s.now
    seq, n = s.first[4]
    assert s.sk.rtt_est.has_sample
    srtt_before = s.sk.rtt_est.srtt
    s.now += 0.05
    frame = bytes(Ether(dst=MAC, src=PEER_MAC) / s.ack(seq + n))
    if batch:
        s.h.receive_batch(1, [frame], s.now)
    else:
        s.h.receive(1, frame, s.now)
    assert s.sk.packets_out == 5
    # SRTT: the handshake's sample, then this ACK's (RFC 6298 2.3)
    srtt = 0.875 * srtt_before + 0.125 * (s.now - sent_at)
    assert s.sk.pending == ICSK_TIME_LOSS_PROBE
    assert s.sk.rtx_timer.when == pytest.approx(s.now + 2 * srtt + 0.002)
    assert 2 * srtt + 0.002 < s.sk.rto


def test_the_batch_end_sends_data_first_and_it_carries_the_ack_of_the_peers_data():
    """tcp_batch_end's order (Linux's: tcp_data_snd_check, then
    tcp_ack_snd_check): data that goes at the batch's end carries the ACK the
    peer's data asked for, so no pure ACK goes out, before it or at all."""
    s = Sender()
    ends = [seq + n for seq, n in s.first]
    # the peer's data acknowledges nothing new (it lets nothing go by itself:
    # its ACK waits for the batch's end, ACK coalescing), the ACKs after it do
    data = IP(src=PEER, dst=MY) / TCP(sport=SPORT, dport=PORT, flags="PA", seq=PEER_ISS + 1,
                                      ack=s.iss + 1, window=s.window) / (b"q" * 100)
    acks = [IP(src=PEER, dst=MY) / TCP(sport=SPORT, dport=PORT, flags="A",
                                       seq=PEER_ISS + 101, ack=end, window=s.window)
            for end in ends[1::2]]
    out = s.receive([data] + acks, advance=0.05)
    tcp_out = [f for f in out if TCP in f]
    assert tcp_out and payload_len(tcp_out[0]) > 0          # data first ...
    assert tcp_out[0][TCP].ack == PEER_ISS + 101            # ... acking the peer's 100 bytes
    assert all(payload_len(f) > 0 for f in tcp_out)         # and no pure ACK at all
