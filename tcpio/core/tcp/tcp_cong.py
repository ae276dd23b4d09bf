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

The interface a module implements, and its helpers, are in ``tcp_ca.py``
(re-exported here); this module is the registry.
"""

from __future__ import annotations

import errno
from typing import Any

from tcpio.core.errors import sock_error
from tcpio.core.tcp.tcp_ca import (
    CA_CWR,
    CA_DISORDER,
    CA_EVENT_COMPLETE_CWR,
    CA_EVENT_CWND_RESTART,
    CA_EVENT_ECN_IS_CE,
    CA_EVENT_ECN_NO_CE,
    CA_EVENT_LOSS,
    CA_EVENT_TX_START,
    CA_LOSS,
    CA_OPEN,
    CA_RECOVERY,
    TCP_INFINITE_SSTHRESH,
    CongestionOps,
    tcp_cong_avoid_ai,
    tcp_in_slow_start,
    tcp_is_cwnd_limited,
    tcp_packets_in_flight,
    tcp_slow_start,
)
from tcpio.core.tcp.tcp_cubic import Cubic

__all__ = [
    "CA_CWR", "CA_DISORDER", "CA_EVENT_COMPLETE_CWR", "CA_EVENT_CWND_RESTART",
    "CA_EVENT_ECN_IS_CE", "CA_EVENT_ECN_NO_CE", "CA_EVENT_LOSS", "CA_EVENT_TX_START", "CA_LOSS",
    "CA_OPEN", "CA_RECOVERY", "TCP_INFINITE_SSTHRESH", "CongestionOps", "Cubic", "NewReno",
    "Reno", "available", "get_congestion_control", "tcp_cong_avoid_ai", "tcp_in_slow_start",
    "tcp_is_cwnd_limited", "tcp_packets_in_flight", "tcp_register_congestion_control",
    "tcp_slow_start",
]


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


# The modules built in (CONFIG_TCP_CONG_*=y): registered before anyone asks.
_REGISTRY: dict[str, type[CongestionOps]] = {"reno": Reno, "newreno": NewReno, "cubic": Cubic}


def tcp_register_congestion_control(cls: type[CongestionOps]) -> type[CongestionOps]:
    _REGISTRY[cls.name] = cls
    return cls


def get_congestion_control(name: str) -> CongestionOps:
    """A fresh instance of the module called ``name``; OSError(ENOENT) if unknown.

    (Linux's setsockopt(TCP_CONGESTION) returns ENOENT for an unknown name.)
    """
    cls = _REGISTRY.get(name)
    if cls is None:
        raise sock_error(errno.ENOENT, f"congestion control {name!r}")
    return cls()


_SHARED: dict[str, CongestionOps] = {}


def shared_congestion_control(name: str) -> CongestionOps:
    """One instance of the module called ``name`` for every sock that takes
    the default (as Linux's socks all point at one tcp_congestion_ops): a
    module keeps its per-connection state in ``tp.ca_priv``, never on
    itself.  OSError(ENOENT) if unknown; re-registering a name replaces it."""
    ops = _SHARED.get(name)
    if ops is None or type(ops) is not _REGISTRY.get(name):
        ops = _SHARED[name] = get_congestion_control(name)
    return ops


def available() -> list[str]:
    """Names accepted by get_congestion_control (tcp_available_congestion_control)."""
    return sorted(_REGISTRY)
