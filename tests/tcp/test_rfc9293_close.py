"""Closing: FIN_WAIT_1/2, CLOSING, TIME_WAIT, CLOSE_WAIT, LAST_ACK (RFC 9293 3.6),
half-close, aborts (RST on unread data, SO_LINGER 0) and Linux's limits."""

from __future__ import annotations

import errno
import socket
import struct

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import (
    TCP_CLOSE,
    TCP_CLOSE_WAIT,
    TCP_CLOSING,
    TCP_FIN_WAIT1,
    TCP_FIN_WAIT2,
    TCP_LAST_ACK,
    TCP_TIME_WAIT,
)

from .helpers import ACK, FIN, PSH, RST, SYN, passive_open


def _tw_rows(c):
    return [r for r in c.host.tcp.connections() if r.state in ("TIME-WAIT", "FIN-WAIT-2")
            and r.remote.endswith(str(c.peer.port))]


def _fin_wait2(settings=None):
    """We closed and the peer ACKed our FIN: FIN_WAIT2 (an orphan)."""
    c = passive_open(settings=settings)
    c.sk.close()
    c.ack_all(c.recv())
    c.send()
    return c


def _time_wait():
    """Then the peer's FIN, which we ACK: TIME_WAIT."""
    c = _fin_wait2()
    c.send(flags=FIN | ACK)
    c.recv()
    return c


def test_active_close_fin_wait1_fin_wait2_time_wait_then_gone():
    c = passive_open()
    c.sk.close()
    fin = c.recv()
    assert [s.key() for s in fin] == [(FIN | ACK, c.rcv, c.snd, b"")]
    assert c.sk.state == TCP_FIN_WAIT1
    c.ack_all(fin)
    c.send()                                    # ACK of our FIN
    # an orphan in FIN_WAIT2 becomes a light time-wait entry in FIN-WAIT-2
    assert [r.state for r in _tw_rows(c)] == ["FIN-WAIT-2"]
    c.send(flags=FIN | ACK)
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    assert [r.state for r in _tw_rows(c)] == ["TIME-WAIT"]
    c.host.advance(59.0)
    assert _tw_rows(c)
    c.host.advance(60.5)                       # TIME_WAIT lasts 60 s
    assert _tw_rows(c) == []
    assert c.host.mib["CurrEstab"] == 0


def test_time_wait_acks_retransmitted_fin_and_restarts_timer():
    c = _time_wait()
    c.host.advance(30.0)
    c.send(flags=FIN | ACK, seq=c.snd - 1)      # our ACK was lost: FIN again
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    c.host.advance(80.0)                       # 30 + 60 > 80: still there
    assert [r.state for r in _tw_rows(c)] == ["TIME-WAIT"]
    c.host.advance(91.0)
    assert _tw_rows(c) == []


def test_time_wait_rst_kills_entry():
    c = _time_wait()
    c.send(flags=RST)
    assert _tw_rows(c) == []


def test_new_syn_reopens_time_wait_tuple():
    c = _time_wait()
    c.peer.send(SYN, c.snd + 100000)
    out = c.recv()
    assert len(out) == 1 and out[0].flags == SYN | ACK and out[0].ack == c.snd + 100001


def test_fin_wait2_orphan_times_out_after_tcp_fin_timeout():
    c = _fin_wait2(Settings(tcp_fin_timeout=30.0))
    assert [r.state for r in _tw_rows(c)] == ["FIN-WAIT-2"]
    c.host.advance(29.0)
    assert _tw_rows(c)
    c.host.advance(30.5)
    assert _tw_rows(c) == []
    assert c.recv() == []                      # goes away silently


def test_half_close_keeps_receiving():
    """shutdown(SHUT_WR): FIN out, FIN_WAIT2, data from the peer still arrives."""
    c = passive_open()
    c.sk.shutdown(socket.SHUT_WR)
    c.ack_all(c.recv())
    c.send()
    assert c.sk.state == TCP_FIN_WAIT2
    c.send(b"more data", flags=ACK | PSH)
    assert c.sk.recvmsg(100) == b"more data"
    c.send(flags=FIN | ACK)
    assert c.sk.rcv_eof
    assert c.recv()[-1].ack == c.snd
    assert c.sk.recvmsg(100) == b""
    with_rows = [r.state for r in _tw_rows(c)]
    assert with_rows == ["TIME-WAIT"]


def test_sendmsg_after_shutdown_wr_is_epipe():
    c = passive_open()
    c.sk.shutdown(socket.SHUT_WR)
    try:
        c.sk.sendmsg(b"x")
    except OSError as e:
        assert e.errno == errno.EPIPE
    else:
        raise AssertionError("sendmsg after SHUT_WR must fail")


def test_passive_close_close_wait_last_ack_closed():
    c = passive_open()
    c.send(flags=FIN | ACK)
    assert c.sk.state == TCP_CLOSE_WAIT
    assert c.sk.rcv_eof and c.sk.recvmsg(10) == b""
    c.host.advance(0.1)                        # the ACK of the FIN may be delayed
    acks = c.recv()
    assert acks and acks[-1].ack == c.snd
    c.sk.sendmsg(b"bye")
    c.sk.close()
    out = c.recv()
    assert out[-1].flags & FIN and c.sk.state == TCP_LAST_ACK
    c.ack_all(out)
    c.send()
    assert c.sk.state == TCP_CLOSE
    assert c.host.mib["CurrEstab"] == 0
    assert _tw_rows(c) == []                   # the passive closer has no TIME_WAIT


def test_simultaneous_close_closing_then_time_wait():
    c = passive_open()
    c.sk.close()
    fin = c.recv()
    assert c.sk.state == TCP_FIN_WAIT1
    # the peer's FIN crosses ours (it has not seen our FIN yet)
    c.send(flags=FIN | ACK)
    ack = c.recv()
    assert [s.key() for s in ack] == [(ACK, c.rcv + 1, c.snd, b"")]
    assert c.sk.state == TCP_CLOSING
    c.ack_all(fin)
    c.send()
    assert [r.state for r in _tw_rows(c)] == ["TIME-WAIT"]


def test_fin_with_data_in_fin_wait1():
    c = passive_open()
    c.sk.shutdown(socket.SHUT_WR)
    fin = c.recv()
    c.ack_all(fin)
    c.send(b"last", flags=FIN | ACK)            # acks our FIN and closes its side
    assert c.sk.recvmsg(10) == b"last"
    assert c.sk.state in (TCP_TIME_WAIT, TCP_CLOSE)
    assert [r.state for r in _tw_rows(c)] == ["TIME-WAIT"]


def test_close_with_unread_data_sends_rst():
    """RFC 2525 2.17 / Linux tcp_close: unread data -> RST instead of FIN."""
    c = passive_open()
    c.send(b"unread")
    c.recv()
    c.sk.close()
    out = c.recv()
    assert [s.key() for s in out] == [(RST | ACK, c.rcv, c.snd, b"")]
    assert c.host.mib["TCPAbortOnClose"] == 1
    assert c.host.tcp.hashinfo.lookup_established(c.sk.laddr, c.sk.lport, c.sk.raddr,
                                                  c.sk.rport) is None


def test_so_linger_zero_sends_rst():
    c = passive_open()
    c.sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.sk.close()
    assert [s.flags for s in c.recv()] == [RST | ACK]
    assert _tw_rows(c) == []


def test_orphan_receiving_new_data_is_reset():
    c = passive_open()
    c.sk.close()
    c.recv()
    c.send(b"more")                            # does not ack our FIN; new data
    out = c.recv()
    assert out and out[-1].flags & RST
    assert c.host.mib["TCPAbortOnData"] == 1


def test_time_wait_bucket_limit():
    c = _fin_wait2(Settings(tcp_max_tw_buckets=0))
    c.send(flags=FIN | ACK)
    assert c.host.mib["TCPTimeWaitOverflow"] >= 1
    assert _tw_rows(c) == []


def test_rst_in_close_wait_gives_epipe():
    c = passive_open()
    c.send(flags=FIN | ACK)
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE
    assert c.sk.sk_err == errno.EPIPE


def test_peer_fin_then_our_fin_ack_in_last_ack_only_once():
    c = passive_open()
    c.send(flags=FIN | ACK)
    c.sk.close()
    fin = [s for s in c.recv() if s.flags & FIN]
    assert len(fin) == 1
    # a retransmission by RTO while in LAST_ACK
    c.host.advance(1.5)
    again = [s for s in c.recv() if s.flags & FIN]
    assert again and again[0].seq == fin[0].seq
