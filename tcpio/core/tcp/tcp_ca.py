"""The congestion-control module interface (Linux's ``struct tcp_congestion_ops``
and the helpers every module uses, ``tcp_slow_start``, ``tcp_cong_avoid_ai``...).

What a module needs to be written, apart from the registry that chooses one
(``tcp_cong.py``, which imports the built-in modules; they import this, so
there is no import cycle).  See ``tcp_cong``'s docstring for the contract.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ... import _fast

if TYPE_CHECKING:
    from tcpio._fast import cong_fast as _cong_fast
else:
    _cong_fast = _fast.load("cong_fast")

CA_OPEN = 0
CA_DISORDER = 1
CA_CWR = 2
CA_RECOVERY = 3
CA_LOSS = 4

# enum tcp_ca_event.
CA_EVENT_TX_START = 0       # first transmit when no packets in flight
CA_EVENT_CWND_RESTART = 1   # congestion window restart after idle
CA_EVENT_COMPLETE_CWR = 2   # end of congestion recovery
CA_EVENT_LOSS = 3           # loss timeout
CA_EVENT_ECN_NO_CE = 4
CA_EVENT_ECN_IS_CE = 5

TCP_INFINITE_SSTHRESH = 0x7FFFFFFF


# tcp_in_slow_start, tcp_slow_start (RFC 5681: cwnd += acked up to ssthresh,
# returns the acks left over) and tcp_cong_avoid_ai (+1 segment per ``w``
# acked): one source with CUBIC's arithmetic, compiled or interpreted
# (tcpio/_fast/cong_fast.py).
tcp_in_slow_start = _cong_fast.tcp_in_slow_start
tcp_slow_start = _cong_fast.tcp_slow_start
tcp_cong_avoid_ai = _cong_fast.tcp_cong_avoid_ai


def tcp_packets_in_flight(tp: Any) -> int:
    """packets_out - (sacked_out + lost_out) + retrans_out, as Linux counts it."""
    return (tp.packets_out - getattr(tp, "sacked_out", 0) - getattr(tp, "lost_out", 0)
            + getattr(tp, "retrans_out", 0))


def tcp_is_cwnd_limited(tp: Any) -> bool:
    """Should the window grow?  Not when the application, not cwnd, limits sending.

    Linux: in slow start, grow while cwnd < 2 * max_packets_out; otherwise only
    if the flow was cwnd-limited (``tp->is_cwnd_limited``, RFC 7661 spirit).
    """
    if tcp_in_slow_start(tp):
        return tp.snd_cwnd < 2 * getattr(tp, "max_packets_out", tp.packets_out) \
            or getattr(tp, "is_cwnd_limited", True)
    return getattr(tp, "is_cwnd_limited", True)


class CongestionOps:
    """Base class; the defaults are Reno's (``tcp_reno_*`` in tcp_cong.c)."""

    name = "base"

    def init(self, tp: Any, now: float) -> None:
        pass

    def ssthresh(self, tp: Any) -> int:
        return max(tp.snd_cwnd >> 1, 2)

    def cong_avoid(self, tp: Any, acked: int, now: float) -> None:
        if tcp_in_slow_start(tp):
            acked = tcp_slow_start(tp, acked)
            if not acked:
                return
        tcp_cong_avoid_ai(tp, tp.snd_cwnd, acked)

    def set_state(self, tp: Any, ca_state: int) -> None:
        pass

    def pkts_acked(self, tp: Any, acked: int, rtt: float | None, now: float) -> None:
        pass

    def undo_cwnd(self, tp: Any) -> int:
        return max(tp.snd_cwnd, tp.prior_cwnd)

    def cwnd_event(self, tp: Any, event: int, now: float | None = None) -> None:
        pass

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
