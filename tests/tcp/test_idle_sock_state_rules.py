"""What an idle established connection carries (issue 11: memory per idle
socket), and that the state made on first use still behaves.

The keepalive timer, the out-of-order queue, the SACK block lists and
CUBIC's per-flow state are made when a connection first needs them, so
thousands of idle connections do not each hold them; these tests pin both
halves: none exist after a handshake, and each works when it is needed
(RFC 1122 4.2.3.6 keepalive enabled long after the handshake, RFC 2018
SACK blocks for an out-of-order segment, and the queue going away again
once the hole fills).
"""

from __future__ import annotations

import socket

from tcpio.core.tcp.tcp_sack import NO_OFO
from tcpio.core.tcp.tcp_states import TCP_CLOSE

from .helpers import ACK, RST, TcpOptions, active_open, passive_open

SACK = TcpOptions(sack_ok=True)


def _idle_state(sk) -> dict:
    return {"keepalive timer": sk.ka_timer, "ofo queue": sk.ofo,
            "SACK blocks sent": sk.sack_blocks, "SACK blocks seen": sk.sack_cache,
            "CUBIC state": sk.ca_priv}


def test_an_idle_connection_holds_none_of_the_state_made_on_first_use():
    for c in (passive_open(syn_opts=SACK), active_open(synack_opts=SACK)):
        c.host.advance(c.host.now + 3600.0)
        assert c.recv() == []
        assert _idle_state(c.sk) == {"keepalive timer": None, "ofo queue": NO_OFO,
                                     "SACK blocks sent": (), "SACK blocks seen": (),
                                     "CUBIC state": None}


def test_keepalive_enabled_an_hour_after_the_handshake_probes_then_resets():
    c = passive_open()
    sk = c.sk
    c.host.advance(3600.0)
    assert sk.ka_timer is None                 # never enabled: no timer exists
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 2)
    sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
    sk.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    sent = []
    t = 3600.0
    while t < 3620.0:
        t += 0.5
        c.host.advance(t)
        sent += [(t, s) for s in c.recv()]
    # tcp_set_keepalive arms keepidle from now; the peer has been silent for
    # longer than that, so the first expiry probes (seq snd_una - 1, no data)
    probes = [(t, s) for t, s in sent if not s.flags & RST]
    assert [t for t, _ in probes] == [3610.0, 3612.0]
    for _, p in probes:
        assert p.key() == (ACK, (c.rcv - 1) & 0xFFFFFFFF, c.snd, b"")
    assert [t for t, s in sent if s.flags & RST] == [3614.0]
    assert sk.state == TCP_CLOSE


def test_keepalive_switched_off_before_it_was_ever_on_makes_no_timer():
    c = passive_open()
    c.sk.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
    c.sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 5)
    c.host.advance(7300.0)
    assert c.recv() == [] and c.sk.ka_timer is None


def test_the_ofo_queue_is_made_for_a_hole_and_dropped_when_it_fills():
    c = passive_open(syn_opts=SACK)
    s0 = c.snd
    c.send(b"B" * 10, seq=s0 + 10)
    acks = c.recv()
    assert [tuple(a.opts.sack_blocks) for a in acks] == [((s0 + 10, s0 + 20),)]
    assert len(c.sk.ofo) == 1
    c.send(b"A" * 10, seq=s0)
    acks = c.recv()
    assert [(a.ack, tuple(a.opts.sack_blocks)) for a in acks] == [(s0 + 20, ())]
    assert c.sk.recvmsg(100) == b"A" * 10 + b"B" * 10
    assert c.sk.ofo is NO_OFO and c.sk.sack_blocks == ()
    # a second hole makes a new queue, and SACK reports it as the first did
    c.send(b"D" * 10, seq=s0 + 30)
    acks = c.recv()
    assert [tuple(a.opts.sack_blocks) for a in acks] == [((s0 + 30, s0 + 40),)]
    assert c.sk.ofo_bytes == 10
