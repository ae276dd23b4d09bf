"""TCP_INFO (tcpio.core.tcp.tcp_info): Linux's struct tcp_info, its fields as
Linux's tcp_get_info fills them.  The kernel itself is compared over a TAP in
tests/tap/test_tcp_kernel_tcp_info.py; these are the rules checked with a
hand-played peer.

References: include/uapi/linux/tcp.h for the layout (offsets written out
below from the header, independently of tcpio's table); Linux 6.x
tcp_get_info for the values (a listener reports its accept queue in unacked
and its backlog in sacked; bytes_acked counts the active opener's SYN, as a
kernel socket pair on loopback shows: 5001 for the client after 5000 bytes,
5000 for the accepted end).
"""

from __future__ import annotations

import asyncio
import socket
import struct

from stackutil import wired_stacks

from tcpio.core.tcp.tcp_info import (
    TCP_INFO_STRUCT,
    format_ss_info,
    tcp_get_info,
    tcp_info_pack,
    tcp_info_unpack,
)
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_CA_LOSS, TCP_ESTABLISHED, TCP_LISTEN

from .helpers import active_open, passive_open, sim_connect, sim_transfer

# byte offsets in struct tcp_info (include/uapi/linux/tcp.h, Linux 6.x)
OFFSETS = {"tcpi_rto": (8, "I"), "tcpi_snd_mss": (16, "I"), "tcpi_unacked": (24, "I"),
           "tcpi_pmtu": (60, "I"), "tcpi_rtt": (68, "I"), "tcpi_snd_cwnd": (80, "I"),
           "tcpi_total_retrans": (100, "I"), "tcpi_bytes_acked": (120, "Q"),
           "tcpi_bytes_received": (128, "Q"), "tcpi_notsent_bytes": (144, "I"),
           "tcpi_min_rtt": (148, "I"), "tcpi_reord_seen": (220, "I"),
           "tcpi_snd_wnd": (228, "I"), "tcpi_rcv_wnd": (232, "I")}


def test_the_packed_struct_has_linuxs_layout():
    assert TCP_INFO_STRUCT.size == 248
    values = {name: 1000 + i for i, name in enumerate(OFFSETS)}
    values.update(tcpi_state=1, tcpi_options=7, tcpi_snd_wscale=7, tcpi_rcv_wscale=10)
    raw = tcp_info_pack(values)
    for name, (off, fmt) in OFFSETS.items():
        assert struct.unpack_from("=" + fmt, raw, off)[0] == values[name], name
    assert raw[0] == 1 and raw[5] == 7
    assert raw[6] == 7 | 10 << 4            # tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4
    back = tcp_info_unpack(raw)
    assert {k: back[k] for k in values} == values


def test_getsockopt_gives_the_struct_cut_to_the_callers_length():
    c = active_open()
    full = c.sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO)
    assert len(full) == 248
    old = c.sk.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)   # a 3.x-era struct
    assert old == full[:104]
    f = struct.unpack("8B24I", old)
    assert f[0] == TCP_ESTABLISHED and f[8 + 2] == c.sk.mss_cache and f[8 + 18] == 10


def test_bytes_acked_counts_the_active_openers_syn_and_not_the_passive_ones():
    for opener, syn in ((active_open, 1), (passive_open, 0)):
        c = opener()
        c.sk.sendmsg(b"d" * 300)
        c.ack_all(c.recv())
        c.send(b"e" * 200)                 # ACKs the 300, brings 200
        c.recv()
        info = tcp_get_info(c.sk)
        assert info["tcpi_bytes_acked"] == 300 + syn, opener.__name__
        assert info["tcpi_bytes_received"] == 200, opener.__name__


def test_a_listener_reports_its_accept_queue_and_backlog():
    c = passive_open(backlog=5)
    info = tcp_get_info(c.listener)
    assert info["tcpi_state"] == TCP_LISTEN
    assert (info["tcpi_unacked"], info["tcpi_sacked"]) == (0, 5)    # the child was accepted


def test_after_an_rto_the_counters_say_so():
    c = active_open()
    c.sk.sendmsg(b"r" * 500)
    c.recv()
    c.host.advance(c.host.now + c.sk.rto)             # not ACKed: the RTO fires
    assert len(c.recv()) == 1
    info = tcp_get_info(c.sk)
    assert info["tcpi_ca_state"] == TCP_CA_LOSS
    assert (info["tcpi_retransmits"], info["tcpi_backoff"]) == (1, 1)
    assert (info["tcpi_unacked"], info["tcpi_lost"], info["tcpi_retrans"]) == (1, 1, 1)
    assert info["tcpi_total_retrans"] == 1 and info["tcpi_snd_cwnd"] == 1
    assert info["tcpi_rto"] == round(c.sk.rto * 1e6)   # microseconds, backed off


def test_format_connections_with_info_prints_ss_ti_lines():
    async def main():
        async with wired_stacks(seed=3) as (a, b):
            server = await a.start_server(lambda r, w: None, "10.0.0.1", 8080)
            _reader, writer = await b.open_connection("10.0.0.1", 8080)
            text = b.format_connections(info=True)
            [row] = b.connections(info=True)
            assert b.format_connections() == "\n".join(text.splitlines()[:2])
            writer.close()
            server.close()
            return text, row

    text, row = asyncio.run(main())
    lines = text.splitlines()
    assert len(lines) == 3 and lines[2].startswith("\t ")
    assert lines[2].strip() == format_ss_info(row.info)
    words = lines[2].split()
    assert words[:3] == ["ts", "sack", "wscale:7,7"]
    assert "mss:1448" in words and "cwnd:10" in words and "pmtu:1500" in words


def test_segs_out_and_in_count_every_segment_on_the_wire_as_linux():
    """A transfer over a VirtualNetwork (the compiled or interpreted fast
    paths taking most segments): each end's segs_out is its frames on the
    wire, its segs_in what it got, but the SYN-ACK: the request sock sent
    it before the passive child existed; the child counts its SYN
    (Linux's tcp_create_openreq_child starts segs_in at 1)."""
    net = VirtualNetwork(seed=9)
    a, b = net.host("a"), net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    c, s = sim_connect(net, a, b)
    assert sim_transfer(net, c, s, bytes(300_000)) == bytes(300_000)
    net.run_for(1.0)
    tcp = [bytes(f) for _, f in link.capture if bytes(f)[12:14] == b"\x08\x00" and f[23] == 6]
    from_a = sum(1 for f in tcp if f[26:30] == bytes([10, 0, 0, 1]))
    from_b = len(tcp) - from_a
    ci, si = tcp_get_info(c), tcp_get_info(s)
    assert ci["tcpi_segs_out"] == from_a > 200
    assert ci["tcpi_segs_in"] == from_b
    assert si["tcpi_segs_out"] == from_b - 1            # the SYN-ACK was the request's
    assert si["tcpi_segs_in"] == from_a


def test_last_data_and_ack_ages_in_milliseconds():
    """tcpi_last_data_sent/recv and last_ack_recv: milliseconds since data
    last left, in-order data last arrived (icsk_ack.lrcvtime, tcp_event_data_recv),
    any segment last arrived (rcv_tstamp)."""
    c = passive_open()
    t0 = c.host.now
    c.send(b"q" * 100)                              # data in at t0
    c.recv()
    c.host.advance(t0 + 0.25)
    c.sk.sendmsg(b"r" * 10)                         # data out at t0 + 0.25
    c.ack_all(c.recv())
    c.host.advance(t0 + 0.5)
    c.send()                                        # a bare ACK at t0 + 0.5
    c.host.advance(t0 + 0.8)
    info = tcp_get_info(c.sk)
    assert info["tcpi_last_data_recv"] == 800
    assert info["tcpi_last_data_sent"] == 550
    assert info["tcpi_last_ack_recv"] == 300
