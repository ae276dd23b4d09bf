"""Pluggable congestion control, shaped like Linux's ``struct tcp_congestion_ops``.

The window is counted in segments (``tp.snd_cwnd``), as in the kernel.  The
TCP core calls, for the module chosen for the socket (``tp.ca_ops``):

* ``init(tp, now)`` once the connection is established;
* ``cong_avoid(tp, acked, now)`` for each ACK that advanced snd_una while the
  connection is in CA_OPEN (or CA_DISORDER) and was cwnd-limited (the caller
  checks ``tcp_is_cwnd_limited``, RFC 7661, as tcp_ack does here; the modules
  do not check again), ``acked`` = segments newly acked;
* ``pkts_acked(tp, acked, rtt, now)`` for each such ACK with its RTT sample
  (seconds, or None under Karn's rule), before ``cong_avoid``;
* ``ssthresh(tp)`` when loss is detected (entering recovery or on RTO); the
  core then sets ``snd_ssthresh`` to the result (and on RTO cwnd to 1);
* ``set_state(tp, ca_state)`` on every CA state change;
* ``undo_cwnd(tp)`` when a reduction proves spurious;
* ``cwnd_event(tp, event, now=None)`` on CA_EVENT_* events (CUBIC uses
  ``now`` on CA_EVENT_TX_START, sending after idle, to shift its epoch).

Loss recovery itself (fast retransmit, NewReno partial ACKs per RFC 6582,
SACK recovery) lives in the core, as in Linux (``tcp_input.c``); a module only
decides how the window grows and how far it is cut.

``tp`` must provide: snd_cwnd, snd_ssthresh, snd_cwnd_cnt, snd_cwnd_clamp,
prior_cwnd, mss_cache, srtt, min_rtt, packets_out, snd_una, snd_nxt, ca_state,
ca_priv.  Optional (read with a default 0): ``sacked_out``, ``lost_out``,
``retrans_out``; and for the ``tcp_is_cwnd_limited`` helper ``is_cwnd_limited``
(True) and ``max_packets_out`` (packets_out).
"""

from __future__ import annotations

from typing import Any

# inet_connection_sock ca_state values (enum tcp_ca_state).
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


def tcp_in_slow_start(tp: Any) -> bool:
    return tp.snd_cwnd < tp.snd_ssthresh


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


def tcp_slow_start(tp: Any, acked: int) -> int:
    """RFC 5681 slow start: cwnd += acked, up to ssthresh; returns the acks left over."""
    cwnd = min(tp.snd_cwnd + acked, tp.snd_ssthresh)
    acked -= cwnd - tp.snd_cwnd
    tp.snd_cwnd = min(cwnd, tp.snd_cwnd_clamp)
    return acked


def tcp_cong_avoid_ai(tp: Any, w: int, acked: int) -> None:
    """Additive increase: +1 segment per ``w`` segments acked (w = cwnd: +1 per RTT)."""
    w = max(int(w), 1)
    # Credits accumulated at a larger w are applied gently now.
    if tp.snd_cwnd_cnt >= w:
        tp.snd_cwnd_cnt = 0
        tp.snd_cwnd += 1
    tp.snd_cwnd_cnt += acked
    if tp.snd_cwnd_cnt >= w:
        delta = tp.snd_cwnd_cnt // w
        tp.snd_cwnd_cnt -= delta * w
        tp.snd_cwnd += delta
    tp.snd_cwnd = min(tp.snd_cwnd, tp.snd_cwnd_clamp)


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


class Reno(CongestionOps):
    """Linux's "reno": ssthresh = max(cwnd / 2, 2) (``tcp_reno_ssthresh``)."""

    name = "reno"


class NewReno(CongestionOps):
    """RFC 5681 window rules for NewReno (RFC 6582) recovery.

    Same growth as Reno; on loss ssthresh = max(FlightSize / 2, 2 segments)
    (RFC 5681 eq. 4) instead of Linux's cwnd / 2, which differ when the sender
    is application-limited.
    """

    name = "newreno"

    def ssthresh(self, tp: Any) -> int:
        return max(tcp_packets_in_flight(tp) >> 1, 2)


_REGISTRY: dict[str, type[CongestionOps]] = {"reno": Reno, "newreno": NewReno}


def tcp_register_congestion_control(cls: type[CongestionOps]) -> type[CongestionOps]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # tcp_cubic registers itself; import here to avoid an import cycle.
    from tcpio.core.tcp import tcp_cubic  # noqa: F401


def get_congestion_control(name: str) -> CongestionOps:
    """A fresh instance of the module called ``name``; OSError(ENOENT) if unknown.

    (Linux's setsockopt(TCP_CONGESTION) returns ENOENT for an unknown name.)
    """
    _load_builtin()
    cls = _REGISTRY.get(name)
    if cls is None:
        import errno

        from tcpio.core.errors import sock_error
        raise sock_error(errno.ENOENT, f"congestion control {name!r}")
    return cls()


def available() -> list[str]:
    """Names accepted by get_congestion_control (tcp_available_congestion_control)."""
    _load_builtin()
    return sorted(_REGISTRY)
