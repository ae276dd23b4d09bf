"""Coalescing a device batch's back-to-back TCP frames into one super-frame
(tcpio/core/tx_coalesce.py, issue 11).

Oracle: scapy builds the frames a flow sends back to back; the super-frame,
cut by the software GSO that mirrors the kernel's (virtio_net.gso_segment),
must give back exactly those frames (every checksum re-verified by scapy),
except a PSH that ended an inner frame.  Frames that do not continue each
other exactly stay as they are."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from tcpio._fast.gso import GsoFrame, gso_frame
from tcpio.core.tx_coalesce import coalesce
from tcpio.devices import virtio_net as vnet

MSS = 1000
TS = [("NOP", None), ("NOP", None), ("Timestamp", (1234, 5678))]


def seg(seq: int, ident: int, size: int, flags: str = "A", *, dport: int = 80,
        df: bool = True, options: list | None = None) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                 / IP(src="10.0.0.1", dst="10.0.0.2", id=ident, flags="DF" if df else 0)
                 / TCP(sport=40000, dport=dport, seq=seq, ack=777, flags=flags, window=500,
                       options=TS if options is None else options)
                 / bytes((seq + i) & 0xFF for i in range(size)))


def burst(seq: int, ident: int, sizes: list[int], flags: str = "PA") -> bytes:
    """One frame of TCP's send loop: a super-frame of MSS segments (PSH on it)
    when there are several, as tcp_fast.write_xmit makes them."""
    if len(sizes) == 1:
        return seg(seq, ident, sizes[0], flags)
    one = bytearray(seg(seq, ident, sum(sizes), flags))
    return gso_frame(bytes(one), MSS, len(sizes), False)


def cut(frame: bytes) -> list[bytes]:
    """The segments the kernel's GSO makes of what we write."""
    if type(frame) is not GsoFrame:
        return [frame]
    return vnet.gso_segment(frame, vnet.gso_hdr_for(frame, frame.gso_size, partial=True))


def no_psh(frame: bytes) -> bytes:
    p = Ether(frame)
    p[TCP].flags = int(p[TCP].flags) & ~0x08
    del p[TCP].chksum
    return bytes(p)


def wire(frames: list[bytes]) -> list[bytes]:
    """Each frame as the segments it stands for on the wire."""
    return [s for f in frames for s in cut(f)]


def test_back_to_back_bursts_become_one_super_frame_with_the_same_segments():
    # three bursts a flow sends answering ACKs: 2 + 2 + 1 (short) segments
    frames = [burst(1000, 10, [MSS, MSS]), burst(3000, 12, [MSS, MSS]),
              burst(5000, 14, [400])]
    out = coalesce(frames, 14, 65535)
    assert len(out) == 1 and type(out[0]) is GsoFrame
    assert out[0].gso_size == MSS and out[0].gso_segs == 5 and out[0].csum_partial
    got = cut(out[0])
    want = wire(frames)
    # the same segments; PSH only where the last burst ended (GSO's rule)
    assert got[-1] == want[-1]
    assert got[:-1] == [no_psh(w) for w in want[:-1]]
    for g in got:
        p = Ether(g)
        ip_sum, tcp_sum = p[IP].chksum, p[TCP].chksum
        del p[IP].chksum, p[TCP].chksum
        again = Ether(bytes(p))
        assert (again[IP].chksum, again[TCP].chksum) == (ip_sum, tcp_sum)


def test_the_partial_checksum_completes_to_the_super_frames_own():
    # The kernel trusts a partial checksum on local delivery (CHECKSUM_PARTIAL)
    # and completes it only on the way out (skb_checksum_help, or each
    # segment's from it): the field must hold the pseudo-header sum of the
    # whole super-frame, so that completing it gives what scapy computes.
    out = coalesce([burst(1000, 10, [MSS, MSS]), burst(3000, 12, [MSS, 300])], 14, 65535)
    assert len(out) == 1
    done = bytearray(out[0])
    vnet.csum_complete(done, 14 + 20, 16)
    p = Ether(bytes(done))
    tcp_sum = p[TCP].chksum
    del p[TCP].chksum
    assert Ether(bytes(p))[TCP].chksum == tcp_sum


def test_the_super_frames_ip_header_is_valid_and_a_fin_may_end_it():
    frames = [burst(1000, 10, [MSS, MSS]), seg(3000, 12, 10, "FPA")]
    out = coalesce(frames, 14, 65535)
    assert len(out) == 1
    p = Ether(bytes(out[0]))
    assert p[IP].len == 20 + 32 + 2 * MSS + 10
    ip_sum = p[IP].chksum
    del p[IP].chksum
    assert Ether(bytes(p))[IP].chksum == ip_sum
    assert str(p[TCP].flags) == "FPA"
    assert wire(out)[-1] == frames[-1]


@pytest.mark.parametrize("second", [
    pytest.param(lambda: seg(3500, 11, MSS), id="sequence gap"),
    pytest.param(lambda: seg(3000, 15, MSS), id="IP ID not the next"),
    pytest.param(lambda: seg(3000, 11, MSS, dport=81), id="another connection"),
    pytest.param(lambda: seg(3000, 11, MSS, "PAU"), id="urgent"),
    pytest.param(lambda: seg(3000, 11, MSS, options=[("NOP", None), ("NOP", None),
                                                     ("Timestamp", (1235, 5678))]),
                 id="another timestamp"),
    pytest.param(lambda: seg(3000, 11, MSS, df=False), id="no DF"),
    pytest.param(lambda: seg(3000, 11, MSS + 1), id="larger than the MSS"),
])
def test_frames_that_do_not_continue_each_other_stay_apart(second):
    frames = [burst(1000, 9, [MSS, MSS]), second()]
    assert coalesce(frames, 14, 65535) == frames


def test_only_ipv4_behind_ethernet_joins():
    def retyped(frame: bytes) -> bytes:
        other = frame[:12] + b"\x88\xb5" + frame[14:]
        return gso_frame(other, MSS, 2, False) if type(frame) is GsoFrame else other
    frames = [retyped(burst(1000, 10, [MSS, MSS])), retyped(seg(3000, 12, MSS))]
    assert coalesce(frames, 14, 65535) == frames


def test_retransmissions_stay_segment_by_segment():
    # the send loop resends segment by segment: plain frames start no run
    resent = [seg(1000, 10, MSS), seg(2000, 11, MSS), seg(3000, 12, MSS)]
    assert coalesce(resent, 14, 65535) == resent


def test_a_run_ends_at_a_short_segment_a_fin_and_the_size_limit():
    short = [burst(1000, 10, [MSS, 500]), seg(2500, 12, MSS)]
    assert coalesce(short, 14, 65535) == short
    fin = [burst(1000, 10, [MSS, MSS], "FPA"), seg(3000, 12, MSS)]
    assert coalesce(fin, 14, 65535) == fin
    # the limit is on the IP datagram: 2 bursts fit in 20 + 32 + 4000, 3 do not
    three = [burst(1000 + i * 2 * MSS, 10 + 2 * i, [MSS, MSS]) for i in range(3)]
    out = coalesce(three, 14, 20 + 32 + 4 * MSS)
    assert len(out) == 2 and out[1] == three[2]
    assert [no_psh(s) for s in wire(out)] == [no_psh(s) for s in wire(three)]


def test_other_frames_keep_their_place_between_runs():
    arp_like = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)
    frames = [burst(1000, 10, [MSS, MSS]), seg(3000, 12, MSS), arp_like,
              burst(4000, 13, [MSS, MSS]), seg(6000, 15, MSS)]
    out = coalesce(frames, 14, 65535)
    assert len(out) == 3 and out[1] == arp_like
    for got, want in ((out[0], frames[:2]), (out[2], frames[3:])):
        assert wire([got]) == [no_psh(f) for f in wire(want[:1])] + [want[1]]


def test_on_a_tun_the_ip_header_comes_first():
    first = gso_frame(seg(1000, 10, 2 * MSS)[14:], MSS, 2, False)
    frames = [first, seg(3000, 12, MSS)[14:]]
    out = coalesce(frames, 0, 65535)
    assert len(out) == 1
    got = vnet.gso_segment(out[0], vnet.gso_hdr_for(out[0], MSS, ether=False), ether=False)
    assert got == vnet.gso_segment(first, vnet.gso_hdr_for(first, MSS, ether=False),
                                   ether=False) + [frames[1]]
