"""Challenge ACKs (RFC 5961 7) limited as Linux 6.x limits them, and the
CVE-2016-5696 side channel they once opened.

tcp_send_challenge_ack: first a per-socket limit (one ACK per
tcp_invalid_ratelimit, 500 ms, shared with the out-of-window dupacks of
tcp_oow_rate_limited; TCPACKSkippedChallenge), then a host-wide budget per
second that is off by default since Linux 6.0 (tcp_challenge_ack_limit =
INT_MAX) and, when set, drawn at random each second from
[(limit + 1) / 2, limit + (limit + 1) / 2 - 1] as since Linux 4.7.

The attack (Cao et al., USENIX Security 2016): an off-path attacker with its
own connection to the server sends spoofed RSTs for a guessed victim 4-tuple
and sequence number, then, in the same second, in-window RSTs on its own
connection, and counts the challenge ACKs it gets back.  With a fixed shared
budget of 1000, a guess that hit the victim's window spent 100 of them (900
come back); a miss spent none (1000 come back).
"""

from __future__ import annotations

import pytest

from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .helpers import ACK, LPORT, PEER_ISS, RST, SYN, Conn, FakeHost, Peer

VICTIM = 0x0A000002      # 10.0.0.2: the victim's client
ATTACKER = 0x0A000003    # 10.0.0.3: the attacker, with a connection of its own


def _connect(host: FakeHost, ls, addr: int, port: int) -> Conn:
    peer = Peer(host, addr=addr, port=port, lport=LPORT)
    peer.send(SYN, PEER_ISS, 0)
    synack = peer.recv_one()
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1)
    sk = ls.accept()
    assert sk is not None and sk.state == TCP_ESTABLISHED
    return Conn(host, peer, sk, PEER_ISS + 1, (synack.seq + 1) & 0xFFFFFFFF)


def _server(settings: Settings | None = None) -> tuple[FakeHost, Conn, Conn]:
    host = FakeHost(settings=settings)
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(8)
    return host, _connect(host, ls, VICTIM, 49500), _connect(host, ls, ATTACKER, 40000)


def _attack(settings: Settings | None, guess_in_window: bool) -> int:
    """Challenge ACKs the attacker counts on its own connection in the second
    after its 100 spoofed RSTs for the victim's 4-tuple."""
    host, victim, attacker = _server(settings)
    host.advance(10.0)                       # the start of a second
    offset = 100 if guess_in_window else 10_000_000
    for i in range(100):                     # spoofed: the victim's address and port
        victim.send(flags=RST, seq=victim.snd + offset + i)
    assert victim.sk.state == TCP_ESTABLISHED
    victim.recv()                            # (what the attacker never sees)
    for i in range(1000):
        attacker.send(flags=RST, seq=attacker.snd + 100 + i)
    return len(attacker.recv())


@pytest.mark.parametrize("settings, expected", [
    (None, 1),                                        # Linux 6.x defaults
    # An attacker with a socket per probe escapes the per-socket limit; the
    # host-wide budget, off by default, then leaks nothing either.
    (Settings(tcp_invalid_ratelimit=0.0), 1000),
])
def test_side_channel_count_does_not_depend_on_the_guess(settings, expected):
    assert _attack(settings, True) == _attack(settings, False) == expected


def test_a_fixed_shared_budget_would_leak_the_guess():
    """The pre-4.7 rule (what tcpio did): a fixed host budget of 1000 shared
    by every socket.  Emulated with the per-socket limit off and a budget
    whose random draw has a single value, to show the test above can fail."""
    s = Settings(tcp_invalid_ratelimit=0.0, tcp_challenge_ack_limit=1)
    # limit 1: exactly one per second, spent by an in-window guess
    assert _attack(s, True) == 0 and _attack(s, False) == 1


def test_per_socket_limit_is_500_ms_with_exact_segments():
    host, c, _ = _server()
    host.advance(10.0)
    c.send(flags=RST, seq=c.snd + 100)
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    host.advance(10.499)
    c.send(flags=RST, seq=c.snd + 100)
    assert c.recv() == [] and host.mib["TCPACKSkippedChallenge"] == 1
    host.advance(10.5)                      # elapsed == tcp_invalid_ratelimit: not limited
    c.send(flags=SYN, seq=c.snd + 7)          # RFC 5961 4.2: SYN -> challenge ACK
    assert [s.key() for s in c.recv()] == [(ACK, c.rcv, c.snd, b"")]
    assert host.mib["TCPChallengeACK"] == 2 and host.mib["TCPSYNChallenge"] == 1


def test_per_socket_limit_is_per_socket():
    host, victim, attacker = _server()
    victim.send(flags=RST, seq=victim.snd + 100)
    attacker.send(flags=RST, seq=attacker.snd + 100)
    assert len(victim.recv()) == 1 and len(attacker.recv()) == 1


def test_out_of_window_ack_and_challenge_ack_share_the_per_socket_clock():
    """Linux keeps one last_oow_ack_time per socket for both."""
    host, c, _ = _server()
    c.send(seq=c.snd + 10_000_000)          # out of window: a dupack
    assert len(c.recv()) == 1
    host.advance(0.1)
    c.send(flags=RST, seq=c.snd + 100)
    assert c.recv() == []
    assert host.mib["TCPACKSkippedChallenge"] == 1 and host.mib["TCPChallengeACK"] == 0


def test_challenge_ack_limit_is_off_by_default():
    assert Settings().tcp_challenge_ack_limit == 0x7FFFFFFF


@pytest.mark.parametrize("limit", [10, 1000])
def test_set_host_budget_is_drawn_each_second_around_the_limit(limit):
    """Each second's budget lies in [(limit + 1) >> 1, limit + ((limit + 1) >> 1) - 1]
    and changes from second to second (Linux >= 4.7)."""
    s = Settings(tcp_invalid_ratelimit=0.0, tcp_challenge_ack_limit=limit)
    host, c, _ = _server(s)
    half = (limit + 1) >> 1
    budgets = []
    for second in range(10, 30):
        host.advance(float(second))
        for i in range(2 * limit):
            c.send(flags=RST, seq=c.snd + 100 + i)
        budgets.append(len(c.recv()))
    assert all(half <= b <= limit + half - 1 for b in budgets), budgets
    assert len(set(budgets)) > 1, budgets
    assert host.mib["TCPChallengeACK"] == sum(budgets)
