"""Hostile input never raises out of the TCP core: random segments (and random
user calls) against every state, checked for exceptions and basic invariants."""

from __future__ import annotations

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpio.core.tcp.tcp_states import TCP_CLOSE

from .helpers import FIN, SYN, TcpOptions, passive_open

_opts = st.one_of(
    st.none(),
    st.builds(TcpOptions,
              mss=st.one_of(st.none(), st.integers(0, 65535)),
              wscale=st.one_of(st.none(), st.integers(0, 255)),
              sack_ok=st.booleans(),
              sack_blocks=st.lists(st.tuples(st.integers(0, 2**32 - 1),
                                             st.integers(0, 2**32 - 1)), max_size=2)
              .map(tuple),
              ts_val=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
              ts_ecr=st.integers(0, 2**32 - 1)).map(
                  lambda o: TcpOptions(o.mss, o.wscale, o.sack_ok, o.sack_blocks, o.ts_val,
                                       o.ts_ecr if o.ts_val is not None else None)),
)

_segment = st.tuples(
    st.integers(0, 255),                       # flags
    st.integers(-70000, 70000),                # seq relative to the peer's next
    st.integers(-70000, 70000),                # ack relative to what it has seen
    st.integers(0, 65535),                     # window
    st.binary(max_size=600),
    _opts,
    st.floats(0, 3),                           # time step
    st.sampled_from(["none", "read", "send", "close", "shutdown", "abort"]),
)


def _check(c):
    sk = c.sk
    assert sk.packets_out == len(sk.rtx)
    assert 0 <= sk.sacked_out <= sk.packets_out
    assert 0 <= sk.lost_out <= sk.packets_out
    assert 0 <= sk.retrans_out <= sk.packets_out
    assert sk.ofo_bytes == sum(len(e[2]) for e in sk.ofo)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_segment, min_size=1, max_size=25), st.booleans())
def test_random_segments_never_raise(segs, with_opts):
    syn_opts = TcpOptions(mss=1000, wscale=4, sack_ok=True, ts_val=10, ts_ecr=0) \
        if with_opts else None
    c = passive_open(syn_opts=syn_opts)
    c.sk.sendmsg(b"s" * 5000)
    for flags, dseq, dack, win, payload, opts, dt, call in segs:
        c.host.advance(c.host.now + dt)
        c.peer.send(flags, (c.snd + dseq) & 0xFFFFFFFF, (c.rcv + dack) & 0xFFFFFFFF, win,
                    payload, opts)
        c.recv()
        sk = c.sk
        try:
            if call == "read":
                sk.recvmsg(1000)
            elif call == "send" and sk.state != TCP_CLOSE:
                sk.sendmsg(b"t" * 700)
            elif call == "close":
                sk.close()
            elif call == "shutdown":
                sk.shutdown(socket.SHUT_WR)
            elif call == "abort":
                sk.abort()
        except OSError:
            pass                               # user errors are fine; crashes are not
        if not sk.dead:
            _check(c)
    c.host.advance(c.host.now + 500)
    assert c.host.mib["CoreExceptions"] == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1), st.binary(max_size=50), _opts),
                max_size=20))
def test_random_segments_to_listener_never_raise(segs):
    c = passive_open()
    for flags, seq, ack, payload, opts in segs:
        c.peer.send(flags | (SYN if flags & 1 and not flags & FIN else 0), seq, ack, 1000,
                    payload, opts)
    c.host.advance(100.0)
