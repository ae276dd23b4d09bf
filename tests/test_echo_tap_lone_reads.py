"""The flows' reader while frames come one a batch (a request/response flow).

A 1-byte echo hands the TAP one frame per loop wake-up.  Reading until EAGAIN
made two read(2)s of each: the frame, and one that found the queue empty.
While batches come one frame each, the reader reads one and leaves the
emptiness to the loop's next poll of the fd, which wakes it again at once if
more came (level-triggered); every fourth batch still drains to EAGAIN.  What
must hold (the oracle: the frames the peer sent, in order, and the fd's own
EAGAIN counted by the device as ``rx_emptied``):

- every frame is delivered, once, in order;
- lone frames after the first cost one read each, three batches in four;
- a burst that starts then is read whole within four reader callbacks;
- ``poll_rx`` (the stack's look when timers fall due) reads a full budget
  each round, to EAGAIN, whatever the reader did before;
- a lone read leaves what may follow to the loop's poll of the fd, as NAPI
  that completes re-enables the interrupt: the device does not say more is
  waiting (``rx_more``), or the stack's softirq would read the queue on the
  answer's send (Stack._softirq), finding it empty: the read(2) saved here,
  back in every other round trip of an echo (issue 12, 1.61 reads per round
  trip, 0.5 of them EAGAIN).

Runs on both twins of devio, on a SOCK_SEQPACKET pair standing for the TAP
(tests/tap/test_tcp_kernel_echo.py is the same flow against the kernel).
"""

from __future__ import annotations

from typing import Any

from test_tap_devio_rules import devio, frames, make_device, pair  # noqa: F401 - fixtures


def _reader(fd: int) -> tuple[Any, list[list[bytes]]]:
    dev = make_device(fd)
    got: list[list[bytes]] = []
    dev._on_frames = got.append
    return dev, got


def test_lone_frames_are_read_one_read_each_three_batches_in_four(pair) -> None:  # noqa: F811
    fd, peer = pair
    dev, got = _reader(fd)
    sent = frames(9)
    emptied = []
    for f in sent:
        peer.send(f)
        assert dev._on_flows() is None
        emptied.append(dev.rx_emptied)
    assert got == [[f] for f in sent]
    # the queue seen empty (a read that found EAGAIN) on batches 1, 5 and 9 only
    assert emptied == [1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert dev.rx_flows_read == 9 and dev.stats["rx_packets"] == 9


def test_a_lone_read_leaves_the_rest_to_the_poll_of_the_fd(pair) -> None:  # noqa: F811
    fd, peer = pair
    dev, got = _reader(fd)
    peer.send(frames(1)[0])
    dev._on_flows()                 # drained: found EAGAIN
    assert not dev.rx_more
    second, third = frames(3)[1:]
    peer.send(second)
    peer.send(third)
    dev._on_flows()                 # one read, the queue's state not looked at
    assert not dev.rx_more and got[-1] == [second]
    # the next poll of the fd (level-triggered) finds the frame left
    dev._on_flows()
    assert got[-1] == [third]


def test_a_burst_after_lone_frames_is_read_whole_within_four_callbacks(pair) -> None:  # noqa: F811
    fd, peer = pair
    dev, got = _reader(fd)
    first = frames(2)
    for f in first:
        peer.send(f)
        dev._on_flows()
    burst = frames(20)[2:]
    for f in burst:
        peer.send(f)
    calls = 0
    while sum(map(len, got)) < 20:
        dev._on_flows()
        calls += 1
    assert calls <= 4
    assert [f for b in got for f in b] == first + burst


def test_poll_rx_reads_full_budgets_to_eagain_after_lone_frames(pair) -> None:  # noqa: F811
    fd, peer = pair
    dev, got = _reader(fd)
    for f in frames(2):
        peer.send(f)
        dev._on_flows()
    rest = frames(12)[2:]
    for f in rest:
        peer.send(f)
    emptied = dev.rx_emptied
    assert dev.poll_rx(rounds=2) is False       # 8 (the budget), then 2 and EAGAIN
    assert [len(b) for b in got[2:]] == [8, 2]
    assert dev.rx_emptied == emptied + 1 and not dev.rx_more
    assert [f for b in got for f in b] == frames(12)
