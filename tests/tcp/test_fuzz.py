"""Hostile input never raises out of the TCP core: random segments (and random
user calls) against every state, checked for exceptions and basic invariants."""

from __future__ import annotations

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpio.core.tcp.tcp_states import TCP_CLOSE, TCP_CLOSE_WAIT, TCP_ESTABLISHED

from .helpers import ACK, FIN, PSH, RPORT, RST, SYN, Peer, Seg, TcpOptions, parse, passive_open

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


# Segments at the listener's port: from the established child's 4-tuple
# (RPORT) or from four new ones.  "answer" takes seq/ack from the last SYN-ACK
# sent to that port, otherwise they are random; "handshake" first sends a SYN
# from that port, so with "answer" and an ACK handshakes complete, and the
# accept queue (listen(0): one entry) fills and overflows.
NEW_PORTS = (40001, 40002, 40003, 40004)
_listener_segment = st.tuples(
    st.one_of(st.sampled_from([ACK, ACK, SYN, ACK | PSH, RST, SYN | ACK, FIN | ACK]),
              st.integers(0, 255)),                            # flags
    st.sampled_from((RPORT, *NEW_PORTS)),                      # source port
    st.integers(0, 3).map(lambda n: n == 0),                   # handshake first
    st.booleans(),                                             # answer the SYN-ACK
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),      # seq, ack otherwise
    st.binary(max_size=50),
    _opts,
    st.floats(0, 2),                                           # time step
)


def _run_until(host, t: float) -> None:
    """Each timer at its own deadline (one big FakeHost.advance would run them
    all at ``t``, so their backoff would restart from there)."""
    while (d := host.timers.next_deadline()) is not None and d <= t:
        host.advance(max(d, host.now))
    host.advance(t)


def _check_listener(c, sent: list) -> None:
    """What must hold after any segment to a listener (listen(0))."""
    ls, host = c.listener, c.host
    mib = host.mib
    # Bounded: Linux's sk_acceptq_is_full (ack_backlog > max_ack_backlog),
    # one request sock per 4-tuple, one ehash entry per 4-tuple.
    assert len(ls.accept_queue) <= ls.max_ack_backlog + 1
    assert len(ls.syn_queue) <= len(NEW_PORTS) + 1
    assert len({(r.raddr, r.rport) for r in ls.syn_queue}) == len(ls.syn_queue)
    entries = list(host.tcp.hashinfo.ehash)
    assert len(entries) <= len(NEW_PORTS) + 1
    # Counters agree with what happened: every segment sent is counted in
    # OutSegs (RSTs also in OutRsts, as tcp_v4_send_reset does); CurrEstab is
    # the number of connections in ESTABLISHED or CLOSE-WAIT (RFC 4022
    # tcpCurrEstab); each overflow is also a listen drop.
    assert mib["OutSegs"] == len(sent)
    assert mib["OutRsts"] == sum(1 for seg in sent if seg.flags & RST)
    estab = [sk for sk in entries if getattr(sk, "state", None) in (TCP_ESTABLISHED,
                                                                     TCP_CLOSE_WAIT)]
    assert mib["CurrEstab"] == len(estab)
    assert mib["ListenDrops"] >= mib["ListenOverflows"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_listener_segment, max_size=25))
def test_random_segments_to_listener_never_raise(segs):
    """Random segments at a listener (and its established child) keep the
    listener's state bounded and its counters consistent; afterwards the
    request socks have expired and a new client is served as usual."""
    c = passive_open(backlog=0)
    host = c.host
    sent = [c.synack]                  # every segment the stack sent, parsed
    in_segs = host.mib["InSegs"]
    last_synack: dict[int, Seg] = {}

    def collect() -> None:
        for _src, _dst, raw in host.sent:
            seg = parse(raw)
            sent.append(seg)
            if seg.flags == SYN | ACK:
                last_synack[seg.dport] = seg
        host.sent.clear()

    delivered = 0
    for flags, port, handshake, answer, seq, ack, payload, opts, dt in segs:
        _run_until(host, host.now + dt)
        collect()
        if handshake:
            c.peer.send(SYN, seq - 1, 0, 1000, sport=port)
            delivered += 1
            collect()
            _check_listener(c, sent)
        if answer and port in last_synack:
            synack = last_synack[port]
            seq, ack = synack.ack, synack.seq + 1
        c.peer.send(flags, seq, ack, 1000, payload, opts, sport=port)
        delivered += 1
        collect()
        _check_listener(c, sent)
    assert host.mib["InSegs"] - in_segs == delivered      # each one was counted
    # Request socks give up after tcp_synack_retries (63 s), TIME-WAIT after 60 s.
    _run_until(host, host.now + 100.0)
    collect()
    _check_listener(c, sent)
    assert not c.listener.syn_queue
    while c.listener.accept() is not None:
        pass
    # The listener still works: a new client's handshake and data.
    peer = Peer(host, port=40100)
    peer.send(SYN, 5000, 0, 65535)
    synack = peer.recv_one()
    assert synack.flags == SYN | ACK and synack.ack == 5001
    peer.send(ACK, 5001, synack.seq + 1, 65535)
    child = c.listener.accept()
    assert child is not None and child.state == TCP_ESTABLISHED
    peer.send(ACK | PSH, 5001, synack.seq + 1, 65535, b"still listening")
    assert child.recvmsg(100) == b"still listening"
