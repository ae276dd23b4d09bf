"""DF and IP IDs of what UDP sends, as Linux chooses them.

- DF: a UDP socket is IP_PMTUDISC_WANT unless ip_no_pmtu_disc (inet_create),
  and __ip_make_skb sets DF on a datagram that fits the path's MTU
  (``skb->len <= dst_mtu && ip_dont_fragment``); a larger one is fragmented
  at the source without DF; a path whose MTU was locked below the floor
  (__ip_rt_update_pmtu) gets no DF.
- IDs (ip_select_ident_segs): a connected socket numbers its datagrams from
  its own counter, inet_id, random at ip4_datagram_connect
  (get_random_u16), incremented before use (atomic_add_return), DF or not;
  without a connected socket, the hashed ip_idents counter even under DF:
  a WANT socket's datagrams are ignore_df (ip_sk_ignore_df), so the "DF
  means ID 0" branch does not apply (a Linux 6.x sender over veth showed DF
  and consecutive non-zero IDs for unconnected datagrams).

The datagrams are read back with scapy.
"""

from __future__ import annotations

from itertools import pairwise

from hostutil import MY, PEER, inject, make_host
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

from tcpio.core.addr import ip_aton


def _sent(h) -> list:
    return [Ether(f)[IP] for _, f in h.take_output()]


def _consecutive(ids: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in pairwise(ids))


def test_unconnected_datagrams_that_fit_carry_df_and_the_hashed_counter():
    h = make_host()
    sk = h.udp.socket()
    for n in (1, 100, 1472):
        sk.sendto(b"u" * n, ip_aton(PEER), 53)
    out = _sent(h)
    assert [p[UDP].len - 8 for p in out] == [1, 100, 1472]
    assert all(p.flags.DF for p in out)
    assert _consecutive([p.id for p in out])


def test_a_datagram_larger_than_the_path_is_fragmented_without_df():
    h = make_host()
    sk = h.udp.socket()
    sk.sendto(b"v" * 3000, ip_aton(PEER), 53)
    frags = _sent(h)
    assert len(frags) == 3
    assert not any(p.flags.DF for p in frags)
    assert len({p.id for p in frags}) == 1 and frags[0].id != 0


def test_a_connected_socket_counts_its_own_ids_from_a_random_start():
    starts = set()
    for seed in range(1, 6):
        h = make_host(seed=seed)
        sk = h.udp.socket()
        sk.connect(ip_aton(PEER), 53)
        for _ in range(4):
            sk.send(b"c")
        sk.sendto(b"x" * 3000, ip_aton(PEER), 53)     # fragments share one ID
        out = _sent(h)
        assert all(p.flags.DF for p in out[:4]) and not any(p.flags.DF for p in out[4:])
        ids = [p.id for p in out[:4]] + [out[4].id]
        assert _consecutive(ids) and {p.id for p in out[4:]} == {out[4].id}
        starts.add(ids[0])
    assert len(starts) >= 4


def test_without_pmtu_discovery_no_df_and_the_hashed_counter():
    """ip_no_pmtu_disc = 1: sockets are IP_PMTUDISC_DONT, so no DF; an
    unconnected socket's IDs come from the per-destination counter."""
    h = make_host(ip_no_pmtu_disc=1)
    sk = h.udp.socket()
    for _ in range(3):
        sk.sendto(b"w", ip_aton(PEER), 53)
    out = _sent(h)
    assert not any(p.flags.DF for p in out)
    assert _consecutive([p.id for p in out])


def test_a_locked_path_mtu_takes_df_off():
    """A fragmentation-needed announcing 300 (below min_pmtu 552) locks the
    path's MTU at 552: datagrams that fit go without DF (ip_dont_fragment)."""
    h = make_host()
    sk = h.udp.socket()
    sk.sendto(b"a" * 1000, ip_aton(PEER), 53)
    [first] = _sent(h)
    assert first.flags.DF
    quoted = bytes(first)[:28]
    inject(h, IP(src=PEER, dst=MY) / ICMP(type=3, code=4, nexthopmtu=300) / quoted)
    assert h.route_lookup(ip_aton(PEER)).mtu_locked
    sk.sendto(b"b" * 500, ip_aton(PEER), 53)
    sk.sendto(b"c" * 1000, ip_aton(PEER), 53)
    out = _sent(h)
    assert [len(p) for p in out if not p.flags.MF and p.frag == 0] == [528]
    assert not any(p.flags.DF for p in out)
