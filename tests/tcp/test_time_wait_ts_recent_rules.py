"""TS.Recent of a TIME-WAIT sock when the peer's bare ACK carries no timestamp.

Linux tcp_timewait_state_process: a bare ACK at RCV.NXT restarts TIME-WAIT
and updates tw_ts_recent / tw_ts_recent_stamp only ``if
(tmp_opt.saw_tstamp)``, i.e. when the segment has a TSopt (RFC 7323 4.3:
TS.Recent is taken from a segment's TSval, and a segment without one has
none to give).  The ACKs TIME-WAIT sends afterwards keep echoing the last
TSval seen (RFC 7323 3.2).
"""

from __future__ import annotations

from .helpers import ACK, FIN
from .test_time_wait_rules import TS0, _ack_from_tw, _fields, _ts, _ts_time_wait


def test_time_wait_bare_ack_without_a_timestamp_keeps_ts_recent():
    """Timestamps negotiated, TS.Recent = 103 (the peer's FIN).  A bare ACK at
    RCV.NXT without TSopt, then the peer's FIN again with TSval 104 (a
    retransmission, below RCV.NXT: it does not update TS.Recent either).  It
    passes PAWS and gets the time-wait ACK, which still echoes TSecr = 103
    with the connection's clock."""
    c = _ts_time_wait()
    c.send()                                           # no options at all
    assert c.recv() == []
    c.send(flags=FIN | ACK, seq=c.snd - 1, opts=_ts(TS0 + 4))
    [ack] = c.recv()
    assert _fields(ack) == _ack_from_tw(c)
    assert (ack.opts.ts_val, ack.opts.ts_ecr) == (c.tsv0, TS0 + 3)
