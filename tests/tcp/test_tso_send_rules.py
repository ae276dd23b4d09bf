"""TSO out (issue 12): on a device that takes TCP super-frames
(NetHost.gso_caps), the send loop hands over runs of full segments as one
frame, and the device's cut of it (virtio_net.gso_segment, the kernel's
tcp_gso_segment rules) must give exactly the segments the loop sends without
TSO: same bytes, same IP IDs, same order, so cwnd, the peer's window and
Nagle still decide everything, and the retransmit queue still holds
segment-sized records, so a retransmission is one segment.  Both builds
(FakeHost runs the production send path)."""

from __future__ import annotations

import socket

import pytest

from .helpers import ACK, TcpOptions, passive_open

SYN_OPTS = TcpOptions(mss=1460, wscale=7, sack_ok=True)


def conn(gso: int, window: int = 2000):
    c = passive_open(syn_opts=SYN_OPTS, window=window)   # 2000 << 7: 256 000 bytes
    c.host.gso_max_size = gso
    c.sk.nodelay = False
    c.sk.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    return c


def flight(c, data: bytes) -> list[bytes]:
    """Write ``data``; the IP datagrams on the wire (super-frames cut)."""
    c.host.sent = []
    c.sk.sendmsg(data)
    dgrams = [bytes(d) for _i, d in c.host._cut(c.host._txq)]
    c.host._txq.clear()
    return dgrams


def ack(c, upto: int, window: int = 2000) -> None:
    c.send(b"", ACK, window=window, ack=upto)


@pytest.mark.parametrize("nbytes", [1460 * 10, 1460 * 10 - 7, 100_000])
def test_the_cut_super_frames_are_the_segments_sent_without_tso(nbytes):
    data = bytes(i * 31 & 0xFF for i in range(nbytes))
    plain, tso = conn(0), conn(65535)
    for c in (plain, tso):
        c.sk.snd_cwnd = 60
    a, b = flight(plain, data), flight(tso, data)
    assert a and b == a
    assert tso.host.gso_frames and not plain.host.gso_frames
    if nbytes > 65535:
        assert len(tso.host.gso_frames) >= 2       # IP IDs carry on across frames
    assert all(len(f) <= 65535 for f in tso.host.gso_frames)
    assert tso.sk.packets_out == plain.sk.packets_out == len(a)
    assert tso.host.mib["OutSegs"] == plain.host.mib["OutSegs"]
    assert tso.host.mib["OutRequests"] < plain.host.mib["OutRequests"]


def test_cwnd_limits_a_super_frame_to_the_segments_it_allows():
    """cwnd 4 lets four segments go, in two bursts of half the cwnd (Linux's
    tcp_cwnd_test: "ensure we have at least 2 GSO packets in flight"), each
    its own super-frame whose last segment carries PSH."""
    c = conn(65535)
    c.sk.snd_cwnd = 4
    segs = flight(c, b"x" * 20 * 1460)
    assert len(segs) == 4 and [len(f) for f in c.host.gso_frames] == [20 + 20 + 2 * 1460] * 2
    assert [s[33] & 0x08 for s in segs] == [0, 0x08, 0, 0x08]


def test_the_peers_window_limits_it_too():
    c = conn(65535, window=3 * 1460 // 128 + 1)   # a little more than three segments
    c.sk.snd_cwnd = 40
    segs = flight(c, b"x" * 20 * 1460)
    assert len(segs) == 3


def test_a_retransmission_is_one_segment():
    c = conn(65535)
    c.sk.snd_cwnd = 10
    first = flight(c, b"y" * 10 * 1460)
    assert len(first) == 10 and c.host.gso_frames
    c.host.gso_frames.clear()
    c.host.timers.run(c.host.now + 5.0)      # the RTO (or its loss probe) fires
    c.host._drain()
    again = [seg for (_s, _d, seg) in c.host.sent]
    assert again and all(len(s) <= 20 + 1460 for s in again)
    assert again[0][20:] in {f[40:] for f in first}       # one of them, whole
    assert not c.host.gso_frames


def test_no_super_frame_without_the_device_capability():
    c = conn(0)
    c.sk.snd_cwnd = 40
    flight(c, b"z" * 40 * 1460)
    assert not c.host.gso_frames


def test_write_xmit_ignores_gso_it_cannot_fill():
    """gso_max no larger than headers + one segment: one frame per segment."""
    c = conn(20 + 20 + 1460)
    c.sk.snd_cwnd = 10
    assert len(flight(c, b"w" * 5 * 1460)) == 5 and not c.host.gso_frames


def test_a_super_frame_takes_one_ip_id_per_segment_from_the_connection():
    """ip_select_ident_segs(sk, gso_segs): the super-frame carries the
    connection's next ID and inet_id moves on by its segment count, so the
    device's cut (consecutive IDs from the first, as tcp_gso_segment's
    IP header update does) numbers the segments as if sent one by one."""
    c = conn(65535)
    c.sk.snd_cwnd = 60
    start = c.sk.inet_id
    dgrams = flight(c, bytes(100_000))
    assert len(c.host.gso_frames) >= 2
    ids = [int.from_bytes(d[4:6], "big") for d in dgrams]
    assert ids == [(start + i) & 0xFFFF for i in range(len(dgrams))]
    assert c.sk.inet_id == (start + len(dgrams)) & 0xFFFF
    assert all(d[6] & 0x40 for d in dgrams)        # DF


def test_a_queued_fin_rides_on_the_last_segment_of_a_super_frame():
    """Data queued behind a closed window, then shutdown(SHUT_WR): when the
    window opens the loop sends it all with the FIN on the last segment (as
    Linux's tcp_send_fin marks the write queue's tail skb), and the device's
    cut gives the FIN to that segment only (tcp_gso_segment), the same
    segments as without TSO."""
    data = bytes(i * 7 & 0xFF for i in range(1460 * 12 - 100))
    out = []
    for gso in (0, 65535):
        c = conn(gso, window=0)
        c.sk.snd_cwnd = 60
        c.sk.sendmsg(data)
        c.sk.shutdown(socket.SHUT_WR)
        c.host.sent = []
        c.host._txq.clear()
        ack(c, c.sk.snd_una)            # the window opens
        dgrams = [bytes(d) for _i, d in c.host._cut(c.host._txq)]
        c.host._txq.clear()
        flags = [d[20 + 13] for d in dgrams]
        assert len(dgrams) == 12 and [f & 0x01 for f in flags] == [0] * 11 + [1]
        assert c.sk.snd_nxt == (c.sk.write_seq + 1) & 0xFFFFFFFF
        out.append((dgrams, bool(c.host.gso_frames)))
    (plain, plain_gso), (tso, tso_gso) = out
    assert tso == plain and tso_gso and not plain_gso
