"""The time-wait sock: FIN-WAIT-2 of an orphan and TIME-WAIT proper
(Linux tcp_timewait_state_process, tcp_time_wait, tcp_v4_rcv's TCP_TW_* cases).

RFC 9293 3.10.7.4 (segment arrival in FIN-WAIT-2 and TIME-WAIT), RFC 1122
4.2.2.13 (a new SYN may reopen a TIME-WAIT tuple if the new ISN is above the
old sequence space), RFC 7323 5.3 (PAWS).  Where the RFCs leave room, Linux is
the reference; the cases marked "Linux 6.18" were checked against it with
hand-made segments on a TUN device.
"""

from __future__ import annotations

from tcpio.core.settings import Settings

from .helpers import ACK, FIN, RST, SYN, passive_open


def _rows(c) -> list:
    return [r for r in c.host.tcp.connections() if r.state in ("TIME-WAIT", "FIN-WAIT-2")
            and r.remote.endswith(f":{c.peer.port}")]


def _states(c) -> list[str]:
    return [r.state for r in _rows(c)]


def _fin_wait2(settings: Settings | None = None, syn_opts=None):
    """We closed, the peer ACKed our FIN: an orphan in FIN-WAIT-2, kept by a
    time-wait sock.  ``c.rcv`` is our SND.NXT, ``c.snd`` our RCV.NXT."""
    c = passive_open(settings=settings, syn_opts=syn_opts)
    c.sk.close()
    fin = c.recv()
    assert [s.flags for s in fin] == [FIN | ACK]
    c.window = fin[0].window
    c.ack_all(fin)
    c.send()
    assert _states(c) == ["FIN-WAIT-2"]
    return c


def _ack_from_tw(c) -> tuple:
    """<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> with the last advertised window."""
    return (ACK, c.rcv, c.snd, c.window)


def _fields(seg) -> tuple:
    return (seg.flags, seg.seq, seg.ack, seg.window)


# --- FIN-WAIT-2 (orphan) ------------------------------------------------------------
def test_fin_wait2_old_duplicate_ending_at_rcv_nxt_gets_an_ack():
    """Out of window by tcp_in_window (ends at RCV.NXT): ACK it (Linux 6.18)."""
    c = _fin_wait2()
    c.send(b"x" * 5, seq=c.snd - 5)
    assert [_fields(s) for s in c.recv()] == [_ack_from_tw(c)]
    assert _states(c) == ["FIN-WAIT-2"]
