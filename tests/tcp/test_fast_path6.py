"""The compiled IPv6 paths of an established connection (issue 17): the
receive classifier's ``_rx_tcp6`` and the send loop's IPv6 frames.

The receive side is fed segments built by scapy (the independent oracle for
the IPv6 header, the pseudo-header checksum and the TCP options) on one
dual-stack Host, three ways: through the compiled classifier, its pure twin,
and no classifier at all (ipv6_rcv -> tcp_v6_rcv, the layered path).  The
three must leave the same bytes for the application, put the same frames on
the wire and move the same counters; the classifiers must take the clean
in-order segments whole (RX_TAKEN6) and hand every unusual one (extension
headers, bad checksum, SACK or other options, FIN/SYN/RST/URG, a multicast
or loopback address, a truncated payload length, an address not ours) to
the layered path.  The send side is checked against scapy's dissection of
the frames the compiled loop built.
"""

from __future__ import annotations

import pytest
from hostutil import MAC, MY6, PEER6, PEER_MAC, make_dual_host
from scapy.layers.inet import TCP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Ether

from tcpio._fast import load_compiled, load_pure
from tcpio.core import host as host_mod
from tcpio.core.addr import ip6_aton, ip6_ntoa
from tcpio.core.in_h import AF_INET6
from tcpio.core.tcp.inet6_addr import V6TAG
from tcpio.core.tcp.sock import TcpSock
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

rx_py = load_pure("rx")
fast_c = load_compiled("tcp_fast")
# the compiled classifier takes only socks built on the compiled TcpCb (not
# so with TCPIO_NO_EXTENSIONS=1, where the host's objects are the pure ones)
rx_c = (load_compiled("rx") if fast_c is not None and issubclass(TcpSock, fast_c.TcpCb)
        else None)
tx_py = load_pure("tx")
tx_c = load_compiled("tx")

TS_PEER = 5000          # the peer's TSval


def _flavours() -> list:
    return [pytest.param("pure", id="pure"),
            pytest.param("compiled", id="compiled",
                         marks=() if rx_c is not None else pytest.mark.skip(
                             reason="the compiled twin needs socks built on the compiled "
                                    "TcpCb"))]


def ip6(src: str = PEER6, dst: str = MY6, **kw) -> IPv6:
    return IPv6(src=src, dst=dst, **kw)


def seg(seq: int, ack: int, data: bytes = b"", flags: str = "A", ts: int | None = TS_PEER,
        ts_ecr: int = 0, options: list | None = None, src: str = PEER6, dst: str = MY6,
        ext=None, **kw):
    opts = options if options is not None else (
        [("NOP", None), ("NOP", None), ("Timestamp", (ts, ts_ecr))] if ts is not None else [])
    t = TCP(sport=40000, dport=80, flags=flags, seq=seq, ack=ack, window=8192,
            options=opts, **kw) / data
    return ip6(src, dst) / ext / t if ext is not None else ip6(src, dst) / t


def frame(pkt, dst_mac: bytes = MAC) -> bytes:
    return bytes(Ether(dst=dst_mac, src=PEER_MAC) / pkt)


def established():
    """A dual-stack host with an IPv6 connection from PEER6:40000 to MY6:80
    (timestamps on), made by scapy segments; (host, child, iss, tsval)."""
    h = make_dual_host()
    lst = h.tcp.socket(AF_INET6)
    lst.bind(0, 80)
    lst.listen(4)
    syn = seg(1000, 0, flags="S", options=[("MSS", 1440), ("SAckOK", b""),
                                           ("Timestamp", (TS_PEER, 0)), ("WScale", 7)])
    h.receive(1, frame(syn), 3.0)
    [synack] = [Ether(f) for _, f in h.take_output()]
    iss = synack[TCP].seq
    tsval = dict(synack[TCP].options)["Timestamp"][0]
    h.receive(1, frame(seg(1001, iss + 1, ts_ecr=tsval)), 3.0)
    h.take_output()
    child = lst.accept()
    assert child is not None and child.state == TCP_ESTABLISHED
    return h, child, iss, tsval


TAKEN, TUPLE, LAYERED = "taken", "tuple", "layered"


def scenario(iss: int, tsval: int) -> list[tuple[str, bytes, str]]:
    """(name, frame, what the classifier must answer) in order."""
    a = iss + 1
    seq = 1001
    out = []

    def data(name, n, want=TAKEN, **kw):
        nonlocal seq
        pkt = seg(seq, a, bytes([len(out) & 0xFF]) * n, ts_ecr=tsval, **kw)
        out.append((name, frame(pkt), want))
        seq += n

    data("plain data", 1000)
    data("PSH data", 700, flags="PA")
    data("no timestamp", 10, TUPLE, ts=None)
    out.append(("bad checksum", frame(seg(seq, a, b"x" * 100, ts_ecr=tsval, chksum=0x1234)),
                LAYERED))
    # the layered path takes these as they come: the receiver's state must
    # still match whichever way they went
    data("hop-by-hop header", 50, LAYERED, ext=IPv6ExtHdrHopByHop())
    data("destination options", 50, LAYERED, ext=IPv6ExtHdrDestOpt())
    data("SACK option", 20, TUPLE,
         options=[("NOP", None), ("NOP", None), ("Timestamp", (TS_PEER, tsval)),
                  ("NOP", None), ("NOP", None), ("SAck", (1, 2))])
    data("URG", 5, TUPLE, flags="AU", urgptr=1)
    out.append(("to a multicast group", frame(seg(seq, a, b"m", ts_ecr=tsval, dst="ff02::1"),
                                              bytes.fromhex("333300000001")), LAYERED))
    out.append(("from a multicast source", frame(seg(seq, a, b"m", ts_ecr=tsval,
                                                     src="ff02::1")), LAYERED))
    out.append(("from ::1", frame(seg(seq, a, b"l", ts_ecr=tsval, src="::1")), LAYERED))
    out.append(("to an address not ours", frame(seg(seq, a, b"n", ts_ecr=tsval,
                                                    dst="fd00::99")), LAYERED))
    trunc = bytearray(frame(seg(seq, a, b"t" * 40, ts_ecr=tsval)))
    trunc[14 + 4:14 + 6] = (40 + 32 + 60).to_bytes(2, "big")     # plen past the frame
    out.append(("payload length past the frame", bytes(trunc), LAYERED))
    bad_doff = bytearray(frame(seg(seq, a, b"d" * 8, ts_ecr=tsval)))
    bad_doff[14 + 40 + 12] = 0x40       # data offset 16 bytes: under the minimum
    out.append(("data offset under 20", bytes(bad_doff), LAYERED))
    data("data after them", 1400)
    out.append(("out of order", frame(seg(seq + 5000, a, b"o" * 100, ts_ecr=tsval)), TUPLE))
    data("in order again", 300, TUPLE)      # an out-of-order queue: the general path
    data("FIN", 10, TUPLE, flags="FA")
    return out


def run(classify) -> dict:
    h, child, iss, tsval = established()
    verdicts = []

    def recording(*args):
        rec = classify(*args)
        verdicts.append(rec)
        return rec

    saved = host_mod.rx_classify
    host_mod.rx_classify = recording
    out = []
    try:
        for _, f, _ in scenario(iss, tsval):
            h.receive(1, f, 3.5)
            out.append([bytes(f) for _, f in h.take_output()])
    finally:
        host_mod.rx_classify = saved
    got = bytearray()
    while child.readable():
        chunk = child.recvmsg(1 << 20)
        if not chunk:
            break
        got += chunk
    return {"mib": h.mib.snapshot(), "out": out, "got": bytes(got), "verdicts": verdicts,
            "rcv_nxt": child.rcv_nxt, "state": child.state}


def never(*args):
    return None


@pytest.mark.parametrize("flavour", _flavours())
def test_scapy_segments_same_result_as_the_layered_path(flavour):
    rx = rx_c if flavour == "compiled" else rx_py
    fast = run(rx.rx_classify)
    slow = run(never)
    cases = scenario(*established()[2:])
    assert len(fast["verdicts"]) == len(cases)
    for (name, f, want), verdict in zip(cases, fast["verdicts"]):
        if want == TAKEN:
            assert verdict == rx.RX_TAKEN6, name
        elif want == LAYERED:
            assert verdict is None, name
        else:
            # clean, for TCP's general path: scapy's addresses (tagged), ports, TCP bytes
            pkt = Ether(f)
            assert isinstance(verdict, tuple), name
            assert verdict[:6] == (6, V6TAG | ip6_aton(pkt[IPv6].src),
                                   V6TAG | ip6_aton(pkt[IPv6].dst), 40000, 80, None), name
            assert f[verdict[6]:verdict[7]] == bytes(pkt[TCP]), name
    assert fast["got"] == slow["got"] and len(fast["got"]) > 3000
    assert fast["rcv_nxt"] == slow["rcv_nxt"] and fast["state"] == slow["state"]
    assert fast["out"] == slow["out"]
    assert fast["mib"] == slow["mib"]
    # the fast-path segments were counted as IPv6 datagrams, not IPv4 ones
    assert fast["mib"]["Ip6InReceives"] >= len(cases) and fast["mib"].get("InReceives", 0) == 0


def test_twins_give_the_same_verdicts():
    if rx_c is None:
        pytest.skip("the compiled twin needs socks built on the compiled TcpCb")
    assert run(rx_c.rx_classify)["verdicts"] == run(rx_py.rx_classify)["verdicts"]


def test_no_v6_context_means_the_layered_path():
    """Without the IPv6 context (a host whose IPv6 TCP is not this TCP) or
    without verification, an IPv6 frame is never classified."""
    h, child, iss, tsval = established()
    f = frame(seg(1001, iss + 1, b"d" * 100, ts_ecr=tsval))
    for rx in filter(None, (rx_py, rx_c)):
        assert rx.rx_classify(f, MAC, {}, set(), True, None, 4.0) is None
        assert rx.rx_classify(f, MAC, {}, set(), False, None, 4.0, False, None,
                              (h.local6, h.tcp.hashinfo.ehash6, 1)) is None
    assert child.rcv_nxt == 1001


# --- the frame builder -----------------------------------------------------------------------

TX = [pytest.param(tx_py, id="pure"),
      pytest.param(tx_c, id="compiled",
                   marks=() if tx_c is not None else pytest.mark.skip(reason="not built"))]


@pytest.mark.parametrize("tx", TX)
@pytest.mark.parametrize("ts, sack, n", [(-1, (), 0), (77, (), 1), (77, ((5, 9),), 1400),
                                         (-1, ((1, 2), (3, 4)), 33)])
def test_tcp_frame6_is_what_scapy_builds(tx, ts, sack, n):
    src, dst = 0xFD00 << 112 | 2, 0xFE80 << 112 | 0x1234
    payload = bytes(range(256)) * 6
    payload = payload[:n]
    f = tx.tcp_frame6(PEER_MAC, MAC, src, dst, 61, 80, 40000, 0xFFFFFFF0, 7, 0x18, 500, ts,
                      12, sack, payload, 0)
    opts = []
    if ts != -1:
        opts += [("NOP", None), ("NOP", None), ("Timestamp", (ts, 12))]
    if sack:
        opts += [("NOP", None), ("NOP", None), ("SAck", tuple(e for b in sack for e in b))]
    want = Ether(dst=PEER_MAC, src=MAC) / IPv6(src="fd00::2", dst="fe80::1234", hlim=61) / TCP(
        sport=80, dport=40000, seq=0xFFFFFFF0, ack=7, flags="PA", window=500,
        options=opts) / payload
    assert f == bytes(want)
    assert tx.tcp_frame6(None, None, src, dst, 61, 80, 40000, 0xFFFFFFF0, 7, 0x18, 500, ts, 12,
                         sack, payload, 0) == bytes(want)[14:]


@pytest.mark.parametrize("tx", TX)
def test_tcp_frame6_partial_checksum_is_the_pseudo_header_sum(tx):
    src, dst = 0xFD00 << 112 | 2, 0xFD00 << 112 | 1
    full = tx.tcp_frame6(None, None, src, dst, 64, 1, 2, 3, 4, 0x10, 5, -1, 0, (), b"abc", 0)
    part = tx.tcp_frame6(None, None, src, dst, 64, 1, 2, 3, 4, 0x10, 5, -1, 0, (), b"abc", 0,
                         True)
    csum = load_pure("checksum")
    assert int.from_bytes(part[56:58], "big") == csum.pseudo_header_sum6(src, dst, 6, 23)
    # finishing it over the segment gives the full checksum
    seg = bytearray(part[40:])
    assert ~csum.csum_partial(bytes(seg)) & 0xFFFF == int.from_bytes(full[56:58], "big")


@pytest.mark.parametrize("tx", TX)
def test_tcp_frame6_rejects_what_does_not_fit(tx):
    ok = {"dst_mac": None, "src_mac": None, "src": 1, "dst": 2, "hlim": 64, "sport": 1,
          "dport": 2, "seq": 3, "ack": 4, "flags": 0x10, "window": 5, "ts_val": -1, "ts_ecr": 0,
          "sack_blocks": (), "payload": b"", "urg_ptr": 0}
    for field, bad in (("src", 1 << 128), ("dst", -1), ("hlim", 256), ("sport", 65536),
                       ("payload", bytes(65536))):
        with pytest.raises(ValueError):
            tx.tcp_frame6(*{**ok, field: bad}.values())


@pytest.mark.parametrize("tx", TX)
def test_tcp_frame6_takes_each_calls_addresses(tx):
    # The compiled builder keeps the last pair's 32 header bytes: pairs that
    # alternate, share one side, or differ in one bit still get their own
    # (the addresses scapy reads back), and a bad pair after a good one
    # is still refused.
    pairs = [(0xFD00 << 112 | 2, 0xFD00 << 112 | 1), (0xFD00 << 112 | 2, 0xFD00 << 112 | 3),
             (0xFD00 << 112 | 2, 0xFD00 << 112 | 1), (0xFD00 << 112 | 3, 0xFD00 << 112 | 1),
             (0xFD00 << 112 | 3, 0xFD00 << 112 | 1 | 1 << 64),
             (0xFD00 << 112 | 2, 0xFD00 << 112 | 1)]
    for src, dst in pairs:
        f = tx.tcp_frame6(None, None, src, dst, 64, 1, 2, 3, 4, 0x10, 5, -1, 0, (), b"x", 0)
        want = IPv6(src=ip6_ntoa(src), dst=ip6_ntoa(dst), hlim=64) / TCP(
            sport=1, dport=2, seq=3, ack=4, flags="A", window=5) / b"x"
        assert f == bytes(want)
    with pytest.raises(ValueError):
        tx.tcp_frame6(None, None, 1 << 128, pairs[-1][1], 64, 1, 2, 3, 4, 0x10, 5, -1, 0, (),
                      b"", 0)
