"""IPv4 input rules of the host core against RFC 1122 and Linux: which
sources ip_rcv refuses (martians) and the parameter problem for malformed
options (ip_options_compile).

Each test pins one rule where the core used to differ from the kernel; the
packets are built by scapy (an independent builder) and the expected
behaviour is the RFC's or Linux's (function named in each docstring).
"""

from __future__ import annotations

import pytest
from hostutil import MAC, MY, PEER, PEER_MAC, inject, make_host
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether

BCAST = "10.0.0.255"


# ----- ip_rcv / ip_route_input_slow: martian sources -------------------------------------

@pytest.mark.parametrize("src", [MY, BCAST, "0.1.2.3", "0.0.0.0"],
                         ids=["our-own", "directed-bcast", "zeronet", "unspecified"])
def test_martian_source_is_dropped_not_answered(src):
    """RFC 1122 3.2.1.3 ("MUST silently discard" an invalid source) and Linux's
    fib_validate_source / martian_source: a datagram from the wire claiming one
    of our addresses, our subnet's broadcast, or 0/8 towards a unicast
    destination is dropped; no echo reply, no delivery.  (Checked against a
    kernel over TAP: own address and 0.0.0.0 always; the directed broadcast and
    0.1.2.3 with rp_filter=1, the usual distribution setting.)"""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 53)
    assert inject(h, IP(src=src, dst=MY) / ICMP(id=1, seq=1) / b"ping") == []
    assert inject(h, IP(src=src, dst=MY) / UDP(sport=9, dport=53) / b"x") == []
    assert sk.recvfrom() is None
    assert h.mib["InAddrErrors"] == 2 and h.mib["InDelivers"] == 0


def test_dhcp_style_unspecified_source_to_broadcast_is_still_delivered():
    """Linux: saddr 0 with daddr 255.255.255.255 goes to brd_input (DHCP discover)."""
    h = make_host()
    sk = h.udp.socket()
    sk.bind(0, 67)
    inject(h, IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / b"d",
           dst_mac="ff:ff:ff:ff:ff:ff")
    assert sk.recvfrom() == (b"d", (0, 68))


# ----- ip_options_compile: parameter problem ---------------------------------------------

def _with_options(opts: bytes, dst: str = MY) -> bytes:
    """An echo request whose header carries ``opts`` verbatim (scapy would pad or
    re-encode them), with the header checksum computed here (RFC 1071)."""
    raw = bytearray(bytes(IP(src=PEER, dst=dst) / ICMP(id=1, seq=1)))
    raw[0] = 0x45 + len(opts) // 4
    raw[20:20] = opts
    raw[2:4] = len(raw).to_bytes(2, "big")
    raw[10:12] = b"\0\0"
    s = sum(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(opts) + 20, 2))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    raw[10:12] = (~s & 0xFFFF).to_bytes(2, "big")
    return bytes(raw)


@pytest.mark.parametrize("opts, pointer", [
    (b"\x44\x01\x00\x00", 20),          # timestamp with length 1
    (b"\x07\x30\x00\x00", 20),          # record route running past the header
    (b"\x01\x01\x01\x83", 23),          # LSRR type byte with no room for its length
])
def test_malformed_option_gets_parameter_problem_pointing_at_it(opts, pointer):
    """Linux ip_options_compile: icmp_send(PARAMETERPROB, 0, pointer << 24), the
    pointer being the octet (from the start of the IP header) that is wrong."""
    h = make_host()
    h.receive(1, bytes(Ether(dst=MAC, src=PEER_MAC, type=0x0800)) + _with_options(opts), 0.0)
    out = [Ether(f) for _, f in h.take_output()]
    assert len(out) == 1
    err = out[0]
    assert err[IP].dst == PEER and err[ICMP].type == 12 and err[ICMP].code == 0
    assert err[ICMP].ptr == pointer
    assert h.mib["InHdrErrors"] == 1 and h.mib["IcmpOutParmProbs"] == 1
    assert h.mib["InDelivers"] == 0


def test_malformed_option_to_a_broadcast_gets_no_parameter_problem():
    h = make_host()
    h.receive(1, bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=PEER_MAC, type=0x0800))
              + _with_options(b"\x44\x01\x00\x00", dst=BCAST), 0.0)
    assert h.take_output() == [] and h.mib["InHdrErrors"] == 1
