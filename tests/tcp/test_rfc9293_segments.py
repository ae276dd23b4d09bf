"""Segment arrival in synchronized states: RFC 9293 3.10.7.4 and RFC 5961.

The stack's side is established by ``passive_open`` without options, so every
segment out is plain: seq/ack/window can be checked exactly.
"""

from __future__ import annotations

import errno

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_CLOSE, TCP_ESTABLISHED

from .helpers import ACK, FIN, PSH, RST, SYN, passive_open


def test_out_of_window_data_gets_ack_and_is_dropped():
    """First check: unacceptable segment -> <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>."""
    c = passive_open()
    c.send(b"x" * 10, seq=c.snd + 70000)
    s = c.recv()
    assert [x.key() for x in s] == [(ACK, c.rcv, c.snd, b"")]
    assert c.sk.readable() == 0


def test_old_duplicate_data_gets_ack():
    c = passive_open()
    c.send(b"hello")
    c.recv()
    c.send(b"hello", seq=c.snd - 5)
    s = c.recv()
    assert len(s) == 1 and s[0].flags == ACK and s[0].ack == c.snd
    assert c.sk.recvmsg(100) == b"hello"


def test_in_order_data_is_delivered():
    c = passive_open()
    c.send(b"abc", flags=ACK | PSH)
    assert c.sk.readable() == 3
    assert c.sk.recvmsg(10) == b"abc"
    assert c.sk.rcv_nxt == c.snd


def test_exact_rst_resets_connection():
    c = passive_open()
    c.send(flags=RST)
    assert c.sk.state == TCP_CLOSE
    assert c.sk.sk_err == errno.ECONNRESET
    assert c.host.mib["EstabResets"] == 1
    assert c.host.mib["CurrEstab"] == 0
    assert c.recv() == []                 # never answer a RST


def test_in_window_rst_not_exact_gets_challenge_ack():
    """RFC 5961 3.2."""
    c = passive_open()
    c.send(flags=RST, seq=c.snd + 100)
    assert c.sk.state == TCP_ESTABLISHED
    assert [x.key() for x in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    assert c.host.mib["TCPChallengeACK"] == 1


def test_out_of_window_rst_is_silently_dropped():
    c = passive_open()
    c.send(flags=RST, seq=c.snd + 100000)
    assert c.sk.state == TCP_ESTABLISHED
    assert c.recv() == []


def test_syn_in_established_gets_challenge_ack():
    """RFC 5961 4.2: any SYN in a synchronized state -> challenge ACK, no reset."""
    c = passive_open()
    c.send(flags=SYN, seq=c.snd + 10)
    assert c.sk.state == TCP_ESTABLISHED
    assert [x.key() for x in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    assert c.host.mib["TCPChallengeACK"] == 1


def test_ack_of_unsent_data_gets_ack_and_is_dropped_after_established():
    """RFC 9293 3.10.7.4 (CLOSE-WAIT ...): SEG.ACK > SND.NXT -> send an ACK,
    drop the segment (Linux tcp_rcv_state_process: a challenge ACK; in
    ESTABLISHED it drops silently, test_input_established)."""
    c = passive_open()
    c.send(b"", flags=ACK | FIN)
    c.recv()
    c.send(b"", ack=c.rcv + 1000)
    assert [x.key() for x in c.recv()] == [(ACK, c.rcv, c.snd, b"")]


def test_too_old_ack_gets_challenge():
    """RFC 5961 5.2: SEG.ACK < SND.UNA - MAX.SND.WND."""
    c = passive_open()
    c.send(ack=c.rcv - 100000)
    assert [x.key() for x in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    assert c.host.mib["TCPChallengeACK"] == 1


def test_segment_without_ack_is_dropped():
    c = passive_open()
    c.send(b"zzz", flags=PSH)
    assert c.sk.readable() == 0
    assert c.recv() == []


def test_challenge_ack_rate_limit():
    """Linux (tcp_send_challenge_ack since 4.0): one challenge ACK per socket
    per tcp_invalid_ratelimit comes before any host-wide budget."""
    c = passive_open(settings=Settings(tcp_challenge_ack_limit=3))
    for i in range(10):
        c.send(flags=RST, seq=c.snd + 100 + i)
    assert len(c.recv()) == 1
    assert c.host.mib["TCPChallengeACK"] == 1 and c.host.mib["TCPACKSkippedChallenge"] == 9
    c.host.advance(1.5)                   # a new second: budget again
    c.send(flags=RST, seq=c.snd + 100)
    assert len(c.recv()) == 1


def test_out_of_window_pure_ack_responses_are_rate_limited():
    c = passive_open()
    for _ in range(3):
        c.send(seq=c.snd + 100000)
    assert len(c.recv()) == 1             # tcp_invalid_ratelimit (0.5 s)
    c.host.advance(0.6)
    c.send(seq=c.snd + 100000)
    assert len(c.recv()) == 1


def test_ack_advances_snd_una_and_frees_buffer():
    c = passive_open()
    c.sk.sendmsg(b"x" * 100)
    out = c.recv()
    assert len(out) == 1 and out[0].payload == b"x" * 100
    space = c.sk.send_space()
    c.ack_all(out)
    c.send()
    assert c.sk.snd_una == c.rcv
    assert c.sk.send_space() == space + 100


def test_data_after_fin_is_not_delivered():
    c = passive_open()
    c.send(b"ab", flags=ACK | FIN)
    c.recv()
    assert c.sk.rcv_eof
    c.send(b"late", seq=c.snd)
    assert c.sk.recvmsg(100) == b"ab"
    assert c.sk.recvmsg(100) == b""
