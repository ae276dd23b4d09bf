"""IPv4 reassembly rules of the host core against Linux's ip_frag_queue: a
zero-length fragment drops the datagram, and the memory charged to the
reassembler is exact and bounded by ipfrag_high_thresh.

Each test pins one rule where the core used to differ from the kernel; the
packets are built by scapy (an independent builder) and the expected
behaviour is Linux's (function named in each docstring).
"""

from __future__ import annotations

from hostutil import MAC, MY, PEER, PEER_MAC, inject, make_host
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

# ----- ip_frag_queue --------------------------------------------------------------------

def test_zero_length_last_fragment_drops_the_datagram():
    """ip_frag_queue: ``if (end == offset) goto discard_qp`` for every fragment."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    udp = bytes(UDP(sport=1, dport=53, chksum=0) / b"12345678")[:16]
    inject(h, IP(src=PEER, dst=MY, id=9, proto=17, flags="MF", frag=0) / Raw(udp))
    inject(h, IP(src=PEER, dst=MY, id=9, proto=17, frag=2))
    assert sk.recvfrom() is None
    assert h.mib["ReasmOKs"] == 0 and h.mib["ReasmFails"] == 1 and len(h.frags) == 0


# ----- ip_frag_queue: memory accounting stays exact ---------------------------------------

@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 64),
                          st.booleans(), st.floats(0, 40)), min_size=1, max_size=25))
def test_reassembly_memory_accounting_is_exact(frags):
    """Whatever mix of fragments arrives (ids, offsets, sizes, MF, times), the
    bytes charged to the reassembler are exactly what its live queues hold, and
    never more than the cap; when every queue is gone, the charge is zero."""
    h = make_host(ipfrag_high_thresh=2000)
    now = 0.0
    for ident, off8, size, mf, dt in frags:
        now += dt
        h.poll(now)
        inject(h, IP(src=PEER, dst=MY, id=ident, proto=17, frag=off8,
                     flags="MF" if mf else 0) / Raw(b"z" * size), now)
        held = sum(q.mem for q in h.frags.queues.values())
        assert h.frags.mem == held <= 2000
    h.poll(now + 31.0)
    assert len(h.frags) == 0 and h.frags.mem == 0


def test_a_flood_of_new_datagrams_is_held_to_the_cap_in_real_memory():
    """ipfrag_high_thresh bounds what reassembly really holds: Linux charges each
    queue (sizeof(struct ipq)) as well as each fragment's truesize, so a flood of
    one-fragment datagrams (the cheapest attack) cannot hold many times the cap.
    Measured with tracemalloc (allocation bytes, deterministic), with 2x slack."""
    import tracemalloc

    cap = 128 * 1024
    h = make_host(ipfrag_high_thresh=cap)
    frames = [bytes(Ether(dst=MAC, src=PEER_MAC)
                    / IP(src=PEER, dst=MY, id=i, proto=17, flags="MF") / Raw(b"z" * 8))
              for i in range(2500)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for f in frames:
            h.receive(1, f, 0.0)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert h.frags.mem <= cap and h.mib["ReasmFails"] > 0
    assert held <= 2 * cap, (held, len(h.frags))
