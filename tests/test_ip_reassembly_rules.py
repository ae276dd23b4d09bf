"""IPv4 reassembly, one rule per test (net/ipv4/ip_fragment.c, inet_fragment.c; RFC 791, 815).

Fragments go in as scapy packets through a whole Host (hostutil), and what
comes out is read from the wire, the UDP socket and the MIB: ReasmReqds for
every fragment (ip_defrag), ReasmOKs per datagram rebuilt, ReasmFails per
datagram given up (ip_frag_queue's discard_qp, ip_expire, eviction),
ReasmTimeout, and tcpio's ReasmOverlaps / ReasmDuplicates / ReasmEvictions.
"""

from __future__ import annotations

import gc

import pytest
from hostutil import MY, MY2, PEER, inject, make_host
from scapy.layers.inet import ICMP, IP, UDP, IPerror, IPOption_NOP
from scapy.packet import Raw

from tcpio.core.addr import ip_aton
from tcpio.core.ip_fragment import FRAG_OVERHEAD, IPQ_OVERHEAD, Ipq

OTHER_PEER = "10.0.0.7"


def frag(offset: int, data: bytes, mf: bool, ident: int = 5, proto: int = 17,
         src: str = PEER, dst: str = MY) -> IP:
    """One fragment: ``data`` at byte ``offset`` of the datagram's payload."""
    assert offset % 8 == 0
    return IP(src=src, dst=dst, id=ident, proto=proto, frag=offset // 8,
              flags="MF" if mf else 0) / Raw(data)


def udp_bytes(data: bytes, dport: int = 53) -> bytes:
    """A whole UDP datagram (header + data), checksummed for PEER -> MY."""
    return bytes(UDP(sport=1, dport=dport) / data)


def split(payload: bytes, cuts: list[int]) -> list[tuple[int, bytes, bool]]:
    """(offset, data, mf) for ``payload`` cut at ``cuts`` (multiples of 8)."""
    bounds = [0, *cuts, len(payload)]
    return [(lo, payload[lo:hi], hi < len(payload)) for lo, hi in zip(bounds, bounds[1:])]


def listener(h, port: int = 53):
    sk = h.udp.socket()
    sk.bind(0, port)
    return sk


# ----- what a queue is -----------------------------------------------------------------

def test_every_fragment_counts_one_reassembly_request():
    """ip_defrag: IPSTATS_MIB_REASMREQDS for every fragment, duplicates and bad ones too."""
    h = make_host()
    udp = udp_bytes(b"x" * 24)
    inject(h, frag(0, udp[:16], True))
    inject(h, frag(0, udp[:16], True))          # duplicate
    inject(h, frag(16, udp[16:], False))
    inject(h, frag(0, b"y" * 4, True, ident=6))  # too short: dropped
    assert h.mib["ReasmReqds"] == 4
    assert h.mib["ReasmOKs"] == 1


def test_queues_are_per_source_destination_protocol_and_id():
    """ip_find: one ipq per (saddr, daddr, id, protocol); fragments that differ in
    any of the four never join, even when they fit together."""
    h = make_host(MY2)
    sk = listener(h)
    udp = udp_bytes(b"q" * 24)
    head, tail = udp[:16], udp[16:]
    # Heads of four datagrams with the same id, each differing in one key field
    # from the real one, and tails that would complete each of them.
    inject(h, frag(0, head, True))
    inject(h, frag(0, head, True, src=OTHER_PEER))
    inject(h, frag(0, head, True, dst=MY2))
    inject(h, frag(0, head, True, proto=253))
    inject(h, frag(0, head, True, ident=6))
    assert len(h.frags) == 5
    assert h.mib["ReasmDuplicates"] == 0
    inject(h, frag(16, tail, False))
    assert sk.recvfrom() == (b"q" * 24, (ip_aton(PEER), 1))
    assert h.mib["ReasmOKs"] == 1 and len(h.frags) == 4


def test_a_completed_datagram_frees_its_queue_and_timer():
    """ip_frag_reasm: ipq_kill, so no timer is left and no memory is held."""
    h = make_host()
    sk = listener(h)
    data = b"z" * 100
    for off, part, mf in split(udp_bytes(data), [40, 80]):
        inject(h, frag(off, part, mf), now=1.0)
    assert sk.recvfrom() == (data, (ip_aton(PEER), 1))
    assert h.mib["ReasmOKs"] == 1
    assert len(h.frags) == 0 and h.frags.mem == 0
    assert h.next_deadline() is None
    h.poll(100.0)
    assert h.take_output() == [] and h.mib["ReasmTimeout"] == 0


def test_a_finished_queue_is_freed_without_the_cyclic_collector():
    """inet_frag_kill drops the timer's reference to the queue: a dead queue must
    not wait for the garbage collector (or for its stale timer) to be freed."""
    h = make_host()
    udp = udp_bytes(b"g" * 24)
    gc.collect()
    gc.disable()
    try:
        before = {id(o) for o in gc.get_objects() if isinstance(o, Ipq)}
        inject(h, frag(0, udp[:16], True))
        inject(h, frag(16, udp[16:], False))            # completed
        inject(h, frag(0, udp[:16], True, ident=9))
        inject(h, frag(0, b"short", True, ident=9))      # dropped: too short
        inject(h, frag(0, udp[:16], True, ident=10))
        h.poll(30.0)                                     # timed out
        alive = [o for o in gc.get_objects() if isinstance(o, Ipq) and id(o) not in before]
    finally:
        gc.enable()
    assert h.mib["ReasmOKs"] == 1 and h.mib["ReasmFails"] == 2
    assert alive == []


def test_the_datagram_is_rebuilt_in_offset_order_whatever_the_arrival_order():
    """RFC 815: each fragment's data goes to its offset; arrival order is free."""
    h = make_host()
    sk = listener(h)
    data = bytes(range(256)) * 2
    parts = split(udp_bytes(data), [64, 128, 256, 384])
    for off, part, mf in reversed(parts):
        inject(h, frag(off, part, mf))
    assert sk.recvfrom() == (data, (ip_aton(PEER), 1))
    for order in ([2, 0, 4, 1, 3], [4, 3, 0, 2, 1], [1, 3, 0, 4, 2]):
        for i in order:
            off, part, mf = parts[i]
            inject(h, frag(off, part, mf, ident=100 + order[0]))
        assert sk.recvfrom() == (data, (ip_aton(PEER), 1))
    assert h.mib["ReasmOKs"] == 4


@pytest.mark.parametrize("missing", ["first", "middle", "last"])
def test_a_datagram_is_complete_only_with_first_last_and_every_byte(missing):
    """ip_frag_queue: reassemble when FIRST_IN and LAST_IN are both set and
    meat == len; a missing first, middle or last fragment keeps it queued."""
    h = make_host()
    sk = listener(h)
    parts = split(udp_bytes(b"m" * 40), [16, 32])
    skip = {"first": 0, "middle": 1, "last": 2}[missing]
    for i, (off, part, mf) in enumerate(parts):
        if i != skip:
            inject(h, frag(off, part, mf))
    assert sk.recvfrom() is None
    assert h.mib["ReasmOKs"] == 0 and len(h.frags) == 1
    off, part, mf = parts[skip]
    inject(h, frag(off, part, mf))
    assert sk.recvfrom() == (b"m" * 40, (ip_aton(PEER), 1))


# ----- fragment lengths and the datagram's end -------------------------------------------

def test_a_non_final_fragment_is_cut_to_a_multiple_of_8_bytes():
    """RFC 791 / ip_frag_queue ``end &= ~7``: only whole 8-byte blocks of a
    fragment with MF count; the tail beyond them is ignored, so it neither
    overlaps the next fragment nor ends up in the datagram."""
    h = make_host()
    sk = listener(h)
    udp = udp_bytes(b"t" * 24)
    inject(h, frag(0, udp[:16] + b"GARBAGE", True))   # 23 bytes: 16 count
    inject(h, frag(16, udp[16:], False))
    assert sk.recvfrom() == (b"t" * 24, (ip_aton(PEER), 1))
    assert h.mib["ReasmOverlaps"] == 0 and h.mib["ReasmOKs"] == 1


def test_a_non_final_fragment_shorter_than_8_bytes_drops_the_datagram():
    """ip_frag_queue: after ``end &= ~7``, ``end == offset`` -> discard_qp."""
    h = make_host()
    udp = udp_bytes(b"s" * 24)
    inject(h, frag(0, udp[:16], True))
    inject(h, frag(16, udp[16:23], True))       # 7 bytes with MF: nothing left
    assert h.mib["ReasmFails"] == 1 and len(h.frags) == 0 and h.frags.mem == 0
    assert h.mib["ReasmOverlaps"] == 0


def test_a_final_fragment_ending_before_data_already_held_drops_the_datagram():
    """ip_frag_queue: a last fragment with ``end < qp->q.len`` -> discard_qp."""
    h = make_host()
    inject(h, frag(32, b"x" * 16, True))
    inject(h, frag(8, b"x" * 8, False))         # says the datagram ends at 16
    assert h.mib["ReasmFails"] == 1 and len(h.frags) == 0
    assert h.mib["ReasmOverlaps"] == 0


def test_a_final_fragment_inside_data_already_held_is_a_duplicate():
    """ip_frag_queue: ``end < q.len`` is the length error, not ``end <= q.len``;
    a last fragment lying inside a fragment we hold is a duplicate
    (inet_frag_queue_insert IPFRAG_DUP): dropped, the queue kept."""
    h = make_host()
    inject(h, frag(0, b"x" * 16, True))
    inject(h, frag(8, b"x" * 8, False))
    assert h.mib["ReasmFails"] == 0 and h.mib["ReasmDuplicates"] == 1
    assert len(h.frags) == 1


def test_a_second_final_fragment_with_another_end_drops_the_datagram():
    """ip_frag_queue: LAST_IN already set and ``end != qp->q.len`` -> discard_qp."""
    h = make_host()
    inject(h, frag(16, b"x" * 8, False))
    inject(h, frag(24, b"x" * 8, False))
    assert h.mib["ReasmFails"] == 1 and len(h.frags) == 0
    assert h.mib["ReasmOverlaps"] == 0


def test_a_repeated_final_fragment_is_a_duplicate_and_the_datagram_still_completes():
    """The same last fragment twice: same end, so only inet_frag_queue_insert's
    duplicate rule applies; the datagram completes when the rest arrives."""
    h = make_host()
    sk = listener(h)
    udp = udp_bytes(b"r" * 24)
    inject(h, frag(16, udp[16:], False))
    inject(h, frag(16, udp[16:], False))
    assert h.mib["ReasmDuplicates"] == 1 and h.mib["ReasmFails"] == 0
    inject(h, frag(0, udp[:16], True))
    assert sk.recvfrom() == (b"r" * 24, (ip_aton(PEER), 1))


def test_a_non_final_fragment_beyond_the_final_length_drops_the_datagram():
    """ip_frag_queue: with LAST_IN set, a fragment with MF and ``end > q.len``
    is "some bits beyond end" -> discard_qp (a length error, not an overlap)."""
    h = make_host()
    inject(h, frag(16, b"x" * 8, False))        # the datagram is 24 bytes
    inject(h, frag(24, b"x" * 8, True))
    assert h.mib["ReasmFails"] == 1 and len(h.frags) == 0
    assert h.mib["ReasmOverlaps"] == 0


def test_a_non_final_fragment_reaching_exactly_the_end_is_judged_as_an_overlap():
    """ip_frag_queue tests ``end > q.len`` only; a fragment with MF that ends
    exactly where the datagram ends passes it and then overlaps the last
    fragment (IPSTATS_MIB_REASM_OVERLAPS + REASMFAILS)."""
    h = make_host()
    inject(h, frag(16, b"x" * 8, False))
    inject(h, frag(8, b"x" * 16, True))
    assert h.mib["ReasmOverlaps"] == 1 and h.mib["ReasmFails"] == 1
    assert len(h.frags) == 0


def test_a_datagram_of_exactly_65535_bytes_is_rebuilt():
    """RFC 791: 65535 is the largest total length; ip_frag_reasm refuses only
    ``ihl + len > 65535``."""
    h = make_host(ipfrag_high_thresh=1 << 20)
    sk = listener(h)
    data = bytes(range(256)) * 255 + bytes(227)          # 65507: UDP's maximum
    udp = udp_bytes(data)
    assert 20 + len(udp) == 65535
    for off, part, mf in split(udp, list(range(8192, len(udp), 8192))):
        inject(h, frag(off, part, mf))
    assert sk.recvfrom() == (data, (ip_aton(PEER), 1))
    assert h.mib["ReasmOKs"] == 1 and h.mib["ReasmFails"] == 0


@pytest.mark.parametrize("options", [0, 4])
def test_a_datagram_one_byte_over_65535_is_dropped(options):
    """Ping of death: a fragment whose end puts the datagram (with this header's
    options) past 65535 bytes ends the queue (ip_frag_reasm out_oversize); one
    byte less is a datagram of exactly 65535, queued as usual."""
    hlen = 20 + options

    def last(size: int) -> IP:
        return IP(src=PEER, dst=MY, id=5, proto=17, frag=65504 // 8,
                  options=[IPOption_NOP()] * options) / Raw(b"p" * size)

    over = 65535 + 1 - hlen - 65504
    h = make_host()
    inject(h, frag(0, b"p" * 64, True))
    inject(h, last(over))
    assert h.mib["ReasmFails"] == 1 and len(h.frags) == 0 and h.frags.mem == 0
    h = make_host()
    inject(h, frag(0, b"p" * 64, True))
    inject(h, last(over - 1))
    assert h.mib["ReasmFails"] == 0 and len(h.frags) == 1


# ----- overlaps and duplicates (Linux >= 4.19, RFC 5722 carried over to IPv4) ------------

@pytest.mark.parametrize("offset, size", [(0, 16), (8, 8), (0, 8), (8, 16)])
def test_a_fragment_inside_one_we_hold_is_a_duplicate_and_the_queue_is_kept(offset, size):
    """inet_frag_queue_insert: IPFRAG_DUP when ``offset >= start && end <= run end``:
    the fragment is dropped, the datagram still completes."""
    h = make_host()
    sk = listener(h)
    udp = udp_bytes(b"d" * 24)
    inject(h, frag(0, udp[:24], True))
    inject(h, frag(offset, udp[offset:offset + size], True))
    assert h.mib["ReasmDuplicates"] == 1
    assert h.mib["ReasmFails"] == 0 and h.mib["ReasmOverlaps"] == 0
    inject(h, frag(24, udp[24:], False))
    assert sk.recvfrom() == (b"d" * 24, (ip_aton(PEER), 1))


@pytest.mark.parametrize("held, new", [
    ((8, 16), (0, 16)),     # starts before the held one, ends inside it
    ((8, 16), (16, 16)),    # starts inside the held one, ends after it
    ((8, 16), (8, 24)),     # same start, longer
    ((8, 16), (0, 40)),     # covers it
])
def test_any_other_overlap_drops_the_whole_datagram(held, new):
    """ip_frag_queue insert_error: IPSTATS_MIB_REASM_OVERLAPS, then discard_qp
    (REASMFAILS); fragments that come later start a new queue."""
    h = make_host()
    sk = listener(h)
    udp = udp_bytes(b"o" * 40)
    inject(h, frag(held[0], udp[held[0]:held[0] + held[1]], True))
    inject(h, frag(new[0], udp[new[0]:new[0] + new[1]], True))
    assert h.mib["ReasmOverlaps"] == 1 and h.mib["ReasmFails"] == 1
    assert len(h.frags) == 0 and h.frags.mem == 0
    inject(h, frag(0, udp[:8], True))
    inject(h, frag(40, udp[40:], False))
    assert sk.recvfrom() is None and len(h.frags) == 1


# ----- the timer (ip_expire) --------------------------------------------------------------

def test_the_timeout_runs_from_the_first_fragment_and_is_not_restarted():
    """inet_frag_create arms the timer once (ipfrag_time); later fragments do not
    push it back."""
    h = make_host(ipfrag_time=5.0)
    udp = udp_bytes(b"e" * 40)
    inject(h, frag(16, udp[16:24], True), now=10.0)
    inject(h, frag(24, udp[24:32], True), now=14.0)
    assert h.next_deadline() == pytest.approx(15.0)
    h.poll(14.999)
    assert h.mib["ReasmTimeout"] == 0 and len(h.frags) == 1
    h.poll(15.0)
    assert h.mib["ReasmTimeout"] == 1 and h.mib["ReasmFails"] == 1
    assert len(h.frags) == 0 and h.frags.mem == 0
    assert h.take_output() == []              # fragment 0 never came: no ICMP


def test_time_exceeded_quotes_the_first_fragment_like_linux():
    """ip_expire: with FIRST_IN, icmp_send(head, ICMP_TIME_EXCEEDED,
    ICMP_EXC_FRAGTIME) about the first fragment, quoting its header and as much
    of its data as fits in 576 bytes (checked against Linux 6.x: 528 bytes of a
    1024-byte first fragment)."""
    h = make_host()
    first = bytes(range(256)) * 4
    inject(h, frag(0, first, True, ident=0x1234), now=2.0)
    inject(h, frag(2048, b"x" * 8, True, ident=0x1234), now=3.0)
    h.poll(31.999)
    assert h.take_output() == []
    h.poll(32.0)
    ((_, frame),) = h.take_output()
    err = IP(bytes(frame)[14:])
    assert (err.src, err.dst, err.len) == (MY, PEER, 576)
    assert (err[ICMP].type, err[ICMP].code) == (11, 1)
    quoted = err[IPerror]
    assert (quoted.id, quoted.frag, quoted.flags.MF, quoted.len) == (0x1234, 0, True, 1044)
    assert bytes(frame)[14 + 20 + 8 + 20:] == first[:576 - 20 - 8 - 20]
    assert h.mib["ReasmTimeout"] == 1 and h.mib["ReasmFails"] == 1


def test_time_exceeded_is_sent_once_per_datagram_with_its_first_fragment():
    """Two datagrams time out together; only the one whose fragment 0 arrived
    draws an ICMP error, about that datagram."""
    h = make_host()
    inject(h, frag(8, b"x" * 8, True, ident=1))
    inject(h, frag(0, b"y" * 8, True, ident=2))
    h.poll(30.0)
    (err,) = [IP(bytes(f)[14:]) for _, f in h.take_output()]
    assert err[IPerror].id == 2 and bytes(err[ICMP].payload)[20:] == b"y" * 8
    assert h.mib["ReasmTimeout"] == 2 and h.mib["ReasmFails"] == 2


def test_a_link_broadcast_frame_does_not_silence_later_timeout_errors():
    """RFC 1122 3.2.2 forbids errors about link-layer broadcasts only: the mark
    set for one received frame must not outlive it (a timer later is free to
    send time exceeded)."""
    h = make_host()
    inject(h, frag(0, b"y" * 8, True, ident=2))
    inject(h, IP(src=PEER, dst="10.0.0.255") / UDP(dport=9) / b"b",
           dst_mac="ff:ff:ff:ff:ff:ff")
    h.poll(30.0)
    out = [IP(bytes(f)[14:]) for _, f in h.take_output()]
    assert [(p[ICMP].type, p[ICMP].code) for p in out] == [(11, 1)]


# ----- memory (ipfrag_high_thresh) --------------------------------------------------------

def test_memory_charged_is_data_plus_per_fragment_and_per_queue_overhead():
    """Like Linux's sub_frag_mem_limit/add_frag_mem_limit with skb truesize and
    sizeof(struct ipq): each queue costs IPQ_OVERHEAD (1024) once, each queued
    fragment its data plus FRAG_OVERHEAD (128); duplicates cost nothing, and
    everything is given back when the queue goes."""
    assert (FRAG_OVERHEAD, IPQ_OVERHEAD) == (128, 1024)
    h = make_host()
    udp = udp_bytes(b"c" * 2000)
    inject(h, frag(0, udp[:1000], True))
    assert h.frags.mem == 1024 + 128 + 1000
    inject(h, frag(1000, udp[1000:1600], True))
    assert h.frags.mem == 1024 + 2 * 128 + 1600
    inject(h, frag(1000, udp[1000:1600], True))            # duplicate
    assert h.frags.mem == 1024 + 2 * 128 + 1600
    inject(h, frag(0, udp[:16], True, ident=6))
    assert h.frags.mem == 2 * 1024 + 3 * 128 + 1616
    inject(h, frag(1600, udp[1600:], False))
    assert h.frags.mem == 1024 + 128 + 16 and h.mib["ReasmOKs"] == 1


def test_a_queue_exactly_at_the_memory_limit_is_kept():
    """inet_frag_alloc refuses only above ipfrag_high_thresh (``>``), so memory
    equal to the limit is allowed."""
    h = make_host(ipfrag_high_thresh=1024 + 128 + 800)
    inject(h, frag(0, b"k" * 800, True))
    assert h.mib["ReasmEvictions"] == 0 and len(h.frags) == 1
    h = make_host(ipfrag_high_thresh=1024 + 128 + 800 - 1)
    inject(h, frag(0, b"k" * 800, True))
    assert h.mib["ReasmEvictions"] == 1 and len(h.frags) == 0 and h.frags.mem == 0


def test_over_the_limit_the_oldest_queues_are_evicted_first():
    """Each eviction is a failed reassembly (ReasmFails) and an eviction; the
    oldest datagrams go first, as many as needed to get back under the limit,
    and the newest can still complete."""
    per_queue = 1024 + 128 + 200
    h = make_host(ipfrag_high_thresh=3 * per_queue)
    sk = listener(h)
    for ident in (1, 2, 3):
        inject(h, frag(8, b"k" * 200, True, ident=ident))
    assert h.mib["ReasmEvictions"] == 0
    inject(h, frag(8, b"k" * 200, True, ident=4))          # one too many
    assert sorted(q.key[3] for q in h.frags.queues.values()) == [2, 3, 4]
    assert h.mib["ReasmEvictions"] == 1 and h.mib["ReasmFails"] == 1
    inject(h, frag(8, b"k" * (200 + per_queue), True, ident=5))  # needs two queues' room
    assert sorted(q.key[3] for q in h.frags.queues.values()) == [4, 5]
    assert h.mib["ReasmEvictions"] == 3 and h.mib["ReasmFails"] == 3
    assert h.frags.mem == per_queue + (1024 + 128 + 200 + per_queue)
    # The newest datagram completes; adding its header evicts the older one.
    udp = udp_bytes(b"k" * 1560)
    inject(h, frag(0, udp[:8], True, ident=5))
    assert [q.key[3] for q in h.frags.queues.values()] == [5]
    inject(h, frag(1560, udp[1560:], False, ident=5))
    assert sk.recvfrom() == (b"k" * 1560, (ip_aton(PEER), 1))
    assert h.mib["ReasmEvictions"] == 4 and len(h.frags) == 0 and h.frags.mem == 0
