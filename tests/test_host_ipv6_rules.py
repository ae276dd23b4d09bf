"""IPv6 input, extension headers, fragments, ND and DAD on one Host (issue 17).

Every packet in is built by scapy and every packet out is dissected by
scapy (its checksum recomputed and compared), under the virtual clock.
The rules are RFC 8200's (header, extension headers, fragments), RFC 5722's
(overlaps), RFC 7112's (first fragment holds the chain), RFC 4443's (ICMPv6
errors), RFC 4861's (ND states) and RFC 4862's (DAD).
"""

from __future__ import annotations

import pytest
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    fragment6,
)
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tcpio.core.addr import ip6_aton, ip6_ntoa
from tcpio.core.host import Host
from tcpio.core.ipv6 import eui64_linklocal
from tcpio.core.settings import Settings

MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
MY, PEER = "fd00::2", "fd00::1"
MY_MC_MAC = "33:33:ff:00:00:02"       # solicited-node group of ...::2


def make_host(**settings) -> Host:
    """fd00::2/64 (no DAD) on eth0, the peer fd00::1 resolved by an NA."""
    h = Host("h6", seed=1, settings=Settings(**settings))
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    h.add_address6(1, ip6_aton(MY), 64, nodad=True)
    h.poll(1.0)                        # the link-local address's DAD probe ...
    h.poll(2.0)                        # ... and no answer: preferred
    assert all(state == "preferred" for _, _, state in h.addresses6(1))
    h.take_output()
    return h


def inject(h: Host, pkt, now: float = 2.0, dst_mac: str | bytes = MAC) -> list[Ether]:
    h.receive(1, bytes(Ether(dst=dst_mac, src=PEER_MAC) / pkt), now)
    return out(h)


def out(h: Host) -> list[Ether]:
    frames = [Ether(f) for _, f in h.take_output()]
    for f in frames:
        # scapy recomputes the checksum of what we sent: it must be ours.
        if f.haslayer(IPv6) and f[IPv6].nh == 58:
            icmp = f[IPv6].payload
            sent = icmp.cksum
            del icmp.cksum
            assert Ether(bytes(f))[IPv6].payload.cksum == sent
    return frames


def dstopt(options: bytes, nh: int = 58) -> Raw:
    """A destination options header around ``options`` (PadN to 8 bytes)."""
    body = bytes(options)
    pad = -(len(body) + 2) % 8
    if pad == 1:
        body += b"\0"
    elif pad:
        body += bytes((1, pad - 2)) + bytes(pad - 2)
    return Raw(bytes((nh, (len(body) + 2) // 8 - 1)) + body)


def ping(size: int = 8, **kw) -> IPv6:
    return IPv6(src=PEER, dst=MY, **kw) / ICMPv6EchoRequest(id=7, seq=1, data=b"p" * size)


def resolve_peer(h: Host) -> None:
    h.ndisc._learn(1, ip6_aton(PEER), PEER_MAC, h.now)
    h.ndisc.set_reachable(h.ndisc.lookup(1, ip6_aton(PEER)), h.now)


# ----- the fixed header -------------------------------------------------------------------

def test_echo_request_is_answered_from_the_address_it_was_sent_to():
    h = make_host()
    resolve_peer(h)
    (reply,) = inject(h, ping(100))
    assert reply[IPv6].src == MY and reply[IPv6].dst == PEER and reply[IPv6].hlim == 64
    assert reply.haslayer(ICMPv6EchoReply) and reply[ICMPv6EchoReply].data == b"p" * 100
    assert h.mib["Icmp6InEchos"] == 1 and h.mib["Icmp6OutEchoReplies"] == 1


@pytest.mark.parametrize("code", [0, 1, 255])
def test_echo_reply_copies_the_requests_code(code):
    """icmpv6_echo_reply copies the request's header and changes only the
    type; scapy checks the reply's checksum over the IPv6 pseudo-header."""
    h = make_host()
    resolve_peer(h)
    req = IPv6(src=PEER, dst=MY) / ICMPv6EchoRequest(code=code, id=7, seq=3, data=b"q" * 9)
    (reply,) = inject(h, req)
    assert (reply[IPv6].src, reply[IPv6].dst) == (MY, PEER)
    # the whole ICMPv6 message, pseudo-header checksum included, as scapy builds it
    expected = IPv6(src=MY, dst=PEER) / ICMPv6EchoReply(code=code, id=7, seq=3, data=b"q" * 9)
    assert bytes(reply[IPv6])[40:] == bytes(expected)[40:]


@pytest.mark.parametrize("mangle, counter", [
    (lambda b: b[:39], "Ip6InHdrErrors"),                        # shorter than the header
    (lambda b: bytes([0x40]) + b[1:], "Ip6InHdrErrors"),         # version 4 in an IPv6 frame
    (lambda b: b[:4] + (len(b)).to_bytes(2, "big") + b[6:], "Ip6InTruncatedPkts"),
])
def test_bad_fixed_headers_are_dropped_and_counted(mangle, counter):
    h = make_host()
    resolve_peer(h)
    raw = mangle(bytes(ping()))
    h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC, type=0x86DD)) + raw, 2.0)
    assert out(h) == [] and h.mib[counter] == 1 and h.mib["Ip6InDelivers"] == 0


def test_padding_after_the_payload_length_is_trimmed():
    h = make_host()
    resolve_peer(h)
    frame = bytes(Ether(dst=MAC, src=PEER_MAC) / ping(4)) + b"junk"
    h.receive(1, frame, 2.0)
    (reply,) = out(h)
    assert reply[ICMPv6EchoReply].data == b"pppp"


@pytest.mark.parametrize("pkt, counter", [
    (IPv6(src="ff02::1", dst=MY) / ICMPv6EchoRequest(), "Ip6InHdrErrors"),   # multicast source
    (IPv6(src="::1", dst=MY) / ICMPv6EchoRequest(), "Ip6InHdrErrors"),       # loopback on a wire
    (IPv6(src=PEER, dst="fd00::99") / ICMPv6EchoRequest(), "Ip6InAddrErrors"),  # not ours
    (IPv6(src=PEER, dst="ff02::1:ff00:99") / ICMPv6EchoRequest(), "Ip6InDiscards"),  # not joined
])
def test_datagrams_not_for_us_or_from_impossible_sources_are_dropped(pkt, counter):
    h = make_host()
    resolve_peer(h)
    assert inject(h, pkt) == [] and h.mib[counter] == 1


def test_a_tentative_address_is_neither_destination_nor_source():
    h = make_host()
    resolve_peer(h)
    h.add_address6(1, ip6_aton("fd00::3"), 64)
    assert inject(h, IPv6(src=PEER, dst="fd00::3") / ICMPv6EchoRequest()) == []
    assert h.mib["Ip6InAddrErrors"] == 1
    assert h.route6_lookup(ip6_aton("fd00::77")).src == ip6_aton(MY)


# ----- extension headers ----------------------------------------------------------------------

def test_known_extension_headers_are_walked_to_the_upper_layer():
    h = make_host()
    resolve_peer(h)
    pkt = (IPv6(src=PEER, dst=MY) / IPv6ExtHdrHopByHop(options=[PadN(optdata=b"\0\0\0\0")])
           / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting(segleft=0) / IPv6ExtHdrDestOpt()
           / ICMPv6EchoRequest(data=b"x"))
    (reply,) = inject(h, pkt)
    assert reply.haslayer(ICMPv6EchoReply)


def test_hop_by_hop_anywhere_but_first_is_an_unknown_next_header():
    h = make_host()
    resolve_peer(h)
    pkt = (IPv6(src=PEER, dst=MY) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop()
           / ICMPv6EchoRequest())
    (err,) = inject(h, pkt)
    pp = err[ICMPv6ParamProblem]
    assert pp.code == 1 and pp.ptr == 40          # the destination header's next header octet
    assert h.mib["Ip6InUnknownProtos"] == 1


def test_unknown_next_header_gets_parameter_problem_pointing_at_it():
    h = make_host()
    resolve_peer(h)
    (err,) = inject(h, IPv6(src=PEER, dst=MY, nh=253) / Raw(b"x" * 8))
    assert err[ICMPv6ParamProblem].code == 1 and err[ICMPv6ParamProblem].ptr == 6
    # the error quotes the datagram from its first byte
    assert bytes(err[ICMPv6ParamProblem].payload)[:40] == bytes(IPv6(src=PEER, dst=MY, nh=253,
                                                                      plen=8))


@pytest.mark.parametrize("otype, answered", [
    (0x1E, "skip"),          # 00: skip over it
    (0x5E, None),            # 01: discard silently
    (0x9E, "param"),         # 10: discard, parameter problem even to multicast
    (0xDE, "param"),         # 11: discard, parameter problem unless multicast
])
def test_unknown_option_types_act_as_their_two_top_bits_say(otype, answered):
    h = make_host()
    resolve_peer(h)
    pkt = IPv6(src=PEER, dst=MY, nh=60) / dstopt(bytes([otype, 2, 0, 0])) / ICMPv6EchoRequest()
    frames = inject(h, pkt)
    if answered == "skip":
        assert frames[0].haslayer(ICMPv6EchoReply)
    elif answered is None:
        assert frames == [] and h.mib["Ip6InHdrErrors"] == 1
    else:
        pp = frames[0][ICMPv6ParamProblem]
        assert pp.code == 2 and pp.ptr == 42 and h.mib["Ip6InHdrErrors"] == 1


def test_unknown_option_to_multicast_reports_only_type_10():
    h = make_host()
    resolve_peer(h)
    for otype, errors in ((0xDE, 0), (0x9E, 1)):
        pkt = IPv6(src=PEER, dst="ff02::1", nh=60) / dstopt(bytes([otype, 0])) / ICMPv6EchoRequest()
        frames = inject(h, pkt, dst_mac="33:33:00:00:00:01")
        assert sum(f.haslayer(ICMPv6ParamProblem) for f in frames) == errors


def test_nonzero_padding_and_long_padding_runs_are_dropped():
    h = make_host()
    resolve_peer(h)
    for opts in (bytes([1, 2, 0, 1]), bytes([1, 6]) + bytes(6) + bytes([1, 0])):
        pkt = IPv6(src=PEER, dst=MY, nh=60) / dstopt(opts) / ICMPv6EchoRequest()
        assert inject(h, pkt) == []
    assert h.mib["Ip6InHdrErrors"] == 2


def test_routing_header_with_segments_left_is_refused_pointing_at_its_type():
    h = make_host()
    resolve_peer(h)
    pkt = (IPv6(src=PEER, dst=MY) / IPv6ExtHdrRouting(addresses=["fd00::9"], segleft=1)
           / ICMPv6EchoRequest())
    (err,) = inject(h, pkt)
    assert err[ICMPv6ParamProblem].code == 0 and err[ICMPv6ParamProblem].ptr == 42


def test_a_chain_past_the_limit_or_past_the_datagram_is_dropped():
    h = make_host()
    resolve_peer(h)
    long_chain = IPv6(src=PEER, dst=MY, nh=60)
    for i in range(9):
        long_chain = long_chain / dstopt(b"", nh=60 if i < 8 else 58)
    assert inject(h, long_chain / ICMPv6EchoRequest()) == []
    cut = bytes(IPv6(src=PEER, dst=MY, nh=60) / Raw(bytes((58, 5)) + bytes(6))
                / ICMPv6EchoRequest())
    h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC, type=0x86DD)) + cut, 2.0)
    assert out(h) == [] and h.mib["Ip6InHdrErrors"] == 2


# ----- fragments ----------------------------------------------------------------------------------

def frags(size: int = 3000, ident: int = 5, fragsize: int = 1280) -> list[IPv6]:
    return fragment6(IPv6(src=PEER, dst=MY) / IPv6ExtHdrFragment(id=ident)
                     / ICMPv6EchoRequest(data=b"r" * size), fragsize)


def test_fragments_in_any_order_are_reassembled_and_the_reply_fragmented():
    h = make_host()
    resolve_peer(h)
    pieces = frags()
    replies = []
    for f in reversed(pieces):
        replies += inject(h, f)
    assert h.mib["Ip6ReasmOKs"] == 1 and h.mib["Ip6ReasmReqds"] == len(pieces)
    # our reply: fragmented by us, every fragment within 1500 bytes, 8-byte multiples
    assert len(replies) == 3 and all(len(r[IPv6]) <= 1500 for r in replies)
    fh = [r[IPv6ExtHdrFragment] for r in replies]
    assert len({f.id for f in fh}) == 1 and [f.m for f in fh] == [1, 1, 0]
    assert all(len(r[IPv6ExtHdrFragment].payload) % 8 == 0 for r in replies[:-1])
    data = b"".join(bytes(r[IPv6ExtHdrFragment].payload)
                    for r in sorted(replies, key=lambda r: r[IPv6ExtHdrFragment].offset))
    assert ICMPv6EchoReply(data).data == b"r" * 3000


def test_an_overlapping_fragment_drops_the_whole_datagram():
    h = make_host()
    resolve_peer(h)
    a, b, c = frags()
    inject(h, a)
    overlap = b.copy()
    overlap[IPv6ExtHdrFragment].offset -= 1          # 8 bytes into fragment a
    inject(h, overlap)
    assert h.mib["Ip6ReasmOverlaps"] == 1 and h.mib["Ip6ReasmFails"] == 1
    assert inject(h, b) == [] and inject(h, c) == []  # the rest can never complete
    assert h.mib["Ip6ReasmOKs"] == 0


def test_an_exact_duplicate_is_ignored_and_the_datagram_still_completes():
    h = make_host()
    resolve_peer(h)
    a, b, c = frags()
    for f in (a, b, b, c):
        frames = inject(h, f)
    assert h.mib["Ip6ReasmDuplicates"] == 1 and h.mib["Ip6ReasmOKs"] == 1 and frames


def test_a_first_fragment_without_the_upper_header_is_a_parameter_problem_code_3():
    h = make_host()
    resolve_peer(h)
    tiny = (IPv6(src=PEER, dst=MY) / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrFragment(id=9, m=1, nh=58) / Raw(b"\x80\0\0\0\0\0\0\0"))
    tiny[IPv6ExtHdrDestOpt].nh = 44
    inject(h, IPv6(bytes(tiny)))     # 8 bytes of ICMPv6: enough
    hdr_only = (IPv6(src=PEER, dst=MY) / IPv6ExtHdrFragment(id=10, m=1, nh=58) / Raw(b"\x80\0\0\0"))
    (err,) = inject(h, hdr_only)      # 4 bytes of an 8-byte ICMPv6 header
    assert err[ICMPv6ParamProblem].code == 3 and err[ICMPv6ParamProblem].ptr == 0
    assert h.mib["Ip6InHdrErrors"] == 1


def test_a_non_final_fragment_not_a_multiple_of_8_points_at_the_payload_length():
    h = make_host()
    resolve_peer(h)
    bad = IPv6(src=PEER, dst=MY) / IPv6ExtHdrFragment(id=3, m=1, nh=58) / Raw(b"\x80" + bytes(12))
    (err,) = inject(h, bad)
    assert err[ICMPv6ParamProblem].code == 0 and err[ICMPv6ParamProblem].ptr == 4


def test_a_fragment_past_65535_bytes_points_at_its_offset_field():
    h = make_host()
    resolve_peer(h)
    bad = IPv6(src=PEER, dst=MY) / IPv6ExtHdrFragment(id=3, m=0, nh=58, offset=8191) / Raw(bytes(16))
    (err,) = inject(h, bad)
    assert err[ICMPv6ParamProblem].code == 0 and err[ICMPv6ParamProblem].ptr == 42


def test_an_atomic_fragment_is_processed_alone():
    h = make_host()
    resolve_peer(h)
    (reply,) = inject(h, IPv6(src=PEER, dst=MY) / IPv6ExtHdrFragment(id=1, m=0)
                      / ICMPv6EchoRequest(data=b"a"))
    assert reply.haslayer(ICMPv6EchoReply) and len(h.frags6) == 0
    assert h.mib["Ip6ReasmOKs"] == 1


def test_reassembly_timeout_sends_time_exceeded_quoting_the_first_fragment():
    h = make_host()
    resolve_peer(h)
    a, b, c = frags()
    inject(h, a, now=2.0)
    inject(h, c, now=2.0)
    h.poll(2.0 + h.settings.ip6frag_time - 0.01)
    assert out(h) == [] and len(h.frags6) == 1
    h.poll(2.0 + h.settings.ip6frag_time)
    (err,) = out(h)
    assert err[ICMPv6TimeExceeded].code == 1
    assert bytes(err[ICMPv6TimeExceeded].payload)[:48] == bytes(a)[:48]
    assert h.mib["Ip6ReasmTimeout"] == 1 and len(h.frags6) == 0


def test_no_time_exceeded_without_the_first_fragment():
    h = make_host()
    resolve_peer(h)
    _, b, _ = frags()
    inject(h, b)
    h.poll(100.0)
    assert out(h) == [] and h.mib["Ip6ReasmTimeout"] == 1


# ----- ICMPv6 errors: rate limit, never about errors ------------------------------------------

def test_errors_are_rate_limited_per_destination_like_linux():
    h = make_host()
    resolve_peer(h)
    sent = [len(inject(h, IPv6(src=PEER, dst=MY, nh=253) / Raw(b"x"), now=2.0))
            for _ in range(10)]
    # inet_peer_xrlim_allow: a burst of 6, then one per ratelimit / 2**((128-64)>>5)
    assert sum(sent) == 6 and h.mib["Icmp6OutRateLimitHost"] == 4
    assert len(inject(h, IPv6(src=PEER, dst=MY, nh=253) / Raw(b"x"), now=2.26)) == 1


def test_no_error_about_an_icmpv6_error():
    h = make_host()
    resolve_peer(h)
    err = IPv6(src=PEER, dst=MY, nh=60) / dstopt(bytes([0xDE, 0])) / ICMPv6DestUnreach()
    assert inject(h, err) == []


# ----- Neighbor Discovery ------------------------------------------------------------------------

def test_an_ns_for_our_address_gets_a_solicited_na_and_teaches_us_the_sender():
    h = make_host()
    ns = (IPv6(src=PEER, dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=MY)
          / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC.hex(":")))
    (na,) = inject(h, ns, dst_mac=MY_MC_MAC)
    assert na.dst == PEER_MAC.hex(":") and na[IPv6].hlim == 255 and na[IPv6].dst == PEER
    assert na[ICMPv6ND_NA].S == 1 and na[ICMPv6ND_NA].O == 1 and na[ICMPv6ND_NA].tgt == MY
    assert na[ICMPv6NDOptDstLLAddr].lladdr == MAC.hex(":")
    n = h.ndisc.lookup(1, ip6_aton(PEER))
    assert n.mac == PEER_MAC and n.state == 0x04          # STALE (RFC 4861 7.2.3)


def test_nd_with_a_hop_limit_below_255_is_ignored():
    h = make_host()
    ns = (IPv6(src=PEER, dst="ff02::1:ff00:2", hlim=254) / ICMPv6ND_NS(tgt=MY)
          / ICMPv6NDOptSrcLLAddr(lladdr=PEER_MAC.hex(":")))
    assert inject(h, ns, dst_mac=MY_MC_MAC) == [] and h.mib["NdiscInErrors"] == 1


def na(flags: str = "SO", mac: bytes = PEER_MAC, dst: str = MY) -> IPv6:
    return (IPv6(src=PEER, dst=dst, hlim=255)
            / ICMPv6ND_NA(tgt=PEER, S=int("S" in flags), O=int("O" in flags), R=0)
            / ICMPv6NDOptDstLLAddr(lladdr=mac.hex(":")))


def test_resolution_queues_then_flushes_and_walks_the_nud_states():
    """INCOMPLETE (multicast NS, packets queued) -> REACHABLE on a solicited
    NA -> STALE after reachable time -> DELAY on use -> PROBE (unicast NS)
    -> gone after ucast_solicit probes."""
    h = make_host()
    s = h.settings
    h.icmp6.echo_request(ip6_aton(PEER), 1, 1, b"q1")
    h.icmp6.echo_request(ip6_aton(PEER), 1, 2, b"q2")
    (ns,) = out(h)
    assert ns[IPv6].dst == "ff02::1:ff00:1" and ns.dst == "33:33:ff:00:00:01"
    assert ns[ICMPv6ND_NS].tgt == PEER and ns[IPv6].src == MY
    assert ns[ICMPv6NDOptSrcLLAddr].lladdr == MAC.hex(":")
    flushed = inject(h, na("SO"))
    assert [f[ICMPv6EchoRequest].data for f in flushed] == [b"q1", b"q2"]
    assert all(f.dst == PEER_MAC.hex(":") for f in flushed)
    n = h.ndisc.lookup(1, ip6_aton(PEER))
    assert n.state == 0x02                                   # REACHABLE
    h.poll(2.0 + 1.5 * s.arp_base_reachable_time)
    assert n.state == 0x04                                   # STALE
    t = h.now
    h.icmp6.echo_request(ip6_aton(PEER), 1, 3)
    assert len(out(h)) == 1 and n.state == 0x08              # DELAY: sent, no probe yet
    h.poll(t + s.ndisc_delay_first_probe_time)
    (probe,) = out(h)
    assert n.state == 0x10 and probe[IPv6].dst == PEER and probe.dst == PEER_MAC.hex(":")
    for i in range(1, s.arp_ucast_solicit):
        h.poll(h.now + s.arp_retrans_time)
        assert len(out(h)) == 1
    h.poll(h.now + s.arp_retrans_time)
    assert h.ndisc.lookup(1, ip6_aton(PEER)) is None


def test_a_confirmation_during_delay_makes_it_reachable_without_a_probe():
    h = make_host()
    resolve_peer(h)
    n = h.ndisc.lookup(1, ip6_aton(PEER))
    h.ndisc.set_stale(n, 2.0)
    h.icmp6.echo_request(ip6_aton(PEER), 1, 1)
    out(h)
    assert n.state == 0x08
    h.ndisc.confirm(1, ip6_aton(PEER))
    h.poll(2.0 + h.settings.ndisc_delay_first_probe_time)
    assert out(h) == [] and n.state == 0x02


def test_na_rules_of_rfc_4861_7_2_5():
    h = make_host()
    resolve_peer(h)
    n = h.ndisc.lookup(1, ip6_aton(PEER))
    other = bytes.fromhex("020000000009")
    inject(h, na("S", other))                 # no override, new MAC: REACHABLE -> STALE, keep MAC
    assert n.state == 0x04 and n.mac == PEER_MAC
    inject(h, na("O", other))                 # override, unsolicited: new MAC, STALE
    assert n.state == 0x04 and n.mac == other
    inject(h, na("SO", other))                # solicited: REACHABLE
    assert n.state == 0x02
    assert inject(h, na("SO", dst="ff02::1"), dst_mac="33:33:00:00:00:01") == []
    assert h.mib["NdiscInErrors"] == 1        # solicited NA to a multicast group


def test_resolution_failure_reports_address_unreachable_to_the_sender():
    h = make_host()
    h.icmp6.echo_request(ip6_aton(PEER), 9, 1)
    for _ in range(h.settings.arp_mcast_solicit):
        assert len(out(h)) == 1
        h.poll(h.now + h.settings.arp_retrans_time)
    (e,) = list(h.icmp6.errors)
    assert (e.type, e.code, e.ident, e.seq) == (1, 3, 9, 1)
    assert h.mib["NdiscResolveFailed"] == 1


# ----- addrconf: link-local and DAD ---------------------------------------------------------------

def test_every_ethernet_interface_gets_an_eui64_link_local_address_after_dad():
    h = Host("h", seed=3)
    h.debug = True
    h.add_interface("eth0", mac=MAC)
    ll = eui64_linklocal(MAC)
    assert ip6_ntoa(ll) == "fe80::ff:fe00:2"            # RFC 4291 appendix A
    assert h.addresses6(1) == [(ll, 64, "tentative")]
    h.poll(h.next_deadline())
    (probe,) = out(h)
    assert probe[IPv6].src == "::" and probe[IPv6].dst == "ff02::1:ff00:2"
    assert probe[ICMPv6ND_NS].tgt == ip6_ntoa(ll) and not probe.haslayer(ICMPv6NDOptSrcLLAddr)
    assert probe.dst == MY_MC_MAC and probe[IPv6].hlim == 255
    h.poll(h.now + h.settings.arp_retrans_time)
    assert h.addresses6(1) == [(ll, 64, "preferred")] and h.is_local_address6(ll)


def test_dad_fails_on_an_na_for_the_tentative_address():
    h = make_host()
    h.add_address6(1, ip6_aton("fd00::5"), 64)
    inject(h, IPv6(src=PEER, dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt="fd00::5", O=1)
           / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC.hex(":")), dst_mac="33:33:00:00:00:01")
    h.poll(10.0)
    assert (ip6_aton("fd00::5"), 64, "dadfailed") in h.addresses6(1)
    assert not h.is_local_address6(ip6_aton("fd00::5")) and h.mib["Ip6DadFailures"] == 1


def test_dad_fails_when_another_node_probes_the_same_tentative_address():
    h = make_host()
    h.add_address6(1, ip6_aton("fd00::5"), 64)
    inject(h, IPv6(src="::", dst="ff02::1:ff00:5", hlim=255) / ICMPv6ND_NS(tgt="fd00::5"),
           dst_mac="33:33:ff:00:00:05")
    assert (ip6_aton("fd00::5"), 64, "dadfailed") in h.addresses6(1)


def test_we_defend_a_preferred_address_against_another_nodes_dad():
    h = make_host()
    (na_,) = inject(h, IPv6(src="::", dst="ff02::1:ff00:2", hlim=255) / ICMPv6ND_NS(tgt=MY),
                    dst_mac=MY_MC_MAC)
    assert na_[IPv6].dst == "ff02::1" and na_[ICMPv6ND_NA].S == 0 and na_[ICMPv6ND_NA].O == 1
    assert h.addresses6(1)[-1][2] == "preferred"


# ----- routes and source selection ----------------------------------------------------------------

def test_a_looked_up_route_follows_every_change_after_it():
    """route6_lookup caches per destination (as route_lookup does for IPv4):
    a route, an address that passes DAD, a removed route, an MTU change and a
    learned path MTU (and its expiry) must each show in the next lookup."""
    h = make_host()
    far = ip6_aton("2001:db8:9::1")
    with pytest.raises(OSError):
        h.route6_lookup(far)
    h.add_route6(ip6_aton("2001:db8:9::"), 48, ip6_aton(PEER))
    r = h.route6_lookup(far)
    assert r.gateway == ip6_aton(PEER) and r.src == ip6_aton(MY) and r.mtu == 1500
    h.add_address6(1, ip6_aton("2001:db8:9::2"), 64)            # tentative: not a source yet
    assert h.route6_lookup(far).src == ip6_aton(MY)
    start = h.now
    for t in range(1, 10):
        h.poll(start + t)                                        # DAD passes
    assert h.addresses6(1)[-1][2] == "preferred"
    assert h.route6_lookup(far).src == ip6_aton("2001:db8:9::2")    # RFC 6724 rule 8
    h.set_mtu(1, 1400)
    assert h.route6_lookup(far).mtu == 1400
    h.update_pmtu6(far, 1280)
    assert h.route6_lookup(far).mtu == 1280
    assert h.route6_lookup(ip6_aton("2001:db8:9::5")).mtu == 1400     # that destination only
    h.poll(h.now + h.settings.ip_rt_mtu_expires + 1)
    assert h.route6_lookup(far).mtu == 1400                          # expired
    h.remove_route6(ip6_aton("2001:db8:9::"), 48)
    with pytest.raises(OSError):
        h.route6_lookup(ip6_aton("2001:db8:99::1"))
    assert h.route6_lookup(far).gateway is None      # now on the connected 2001:db8:9::/64


def test_longest_prefix_and_default_route_and_source_selection():
    h = make_host()
    h.add_address6(1, ip6_aton("2001:db8::2"), 64, nodad=True)
    h.add_route6(0, 0, ip6_aton(PEER))
    h.add_route6(ip6_aton("2001:db8:1::"), 48, ip6_aton("fd00::7"))
    r = h.route6_lookup(ip6_aton("2001:db8:1::9"))
    assert r.gateway == ip6_aton("fd00::7") and r.src == ip6_aton("2001:db8::2")
    r = h.route6_lookup(ip6_aton("2607::1"))
    assert r.gateway == ip6_aton(PEER) and r.src == ip6_aton("2001:db8::2")   # rule 8 tie: longest
    assert h.route6_lookup(ip6_aton("fd00::9")).src == ip6_aton(MY)          # rule 8
    assert h.route6_lookup(ip6_aton("fe80::1")).src == eui64_linklocal(MAC)  # rule 2: scope
