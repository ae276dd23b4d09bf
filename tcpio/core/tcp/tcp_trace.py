"""Per-connection trace events (docs/internals.md, "Tracing").

Linux's tracepoints ``sock:inet_sock_set_state``, ``tcp:tcp_probe``,
``tcp:tcp_retransmit_skb`` and ``tcp:tcp_cong_state_set``, plus one event
per segment sent and per timer fired.  A traced socket has ``sk.trace`` set
to a ``SockTracer`` (None otherwise: the callers test that one attribute
and call nothing when it is None).  The events are plain dicts handed to the
tracer's sink.
"""

from __future__ import annotations

import errno
import itertools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .inet6_addr import addr_str
from .tcp_states import (
    TCP_CLOSE,
    TCP_ESTABLISHED,
    TCP_LISTEN,
    TCP_SYN_RECV,
    TCP_SYN_SENT,
    TCPHDR_SYN,
)

if TYPE_CHECKING:
    from .sock import TcpSock

TraceSink = Callable[[dict[str, Any]], None]

STATE_NAMES = {
    1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT", 3: "TCP_SYN_RECV", 4: "TCP_FIN_WAIT1",
    5: "TCP_FIN_WAIT2", 6: "TCP_TIME_WAIT", 7: "TCP_CLOSE", 8: "TCP_CLOSE_WAIT",
    9: "TCP_LAST_ACK", 10: "TCP_LISTEN", 11: "TCP_CLOSING", 12: "TCP_NEW_SYN_RECV",
}
CA_NAMES = ("Open", "Disorder", "CWR", "Recovery", "Loss")
_FLAG_LETTERS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "A"),
                 (0x20, "U"), (0x40, "E"), (0x80, "C"))
# the timer names of the "tcp_timer" event, by sk.pending (ICSK_TIME_*)
TIMER_NAMES = {1: "retrans", 3: "probe0", 5: "loss_probe", 6: "reo_timeout"}

_sock_ids = itertools.count(1)


def flag_letters(flags: int) -> str:
    return "".join(c for bit, c in _FLAG_LETTERS if flags & bit)


class SockTracer:
    """One traced connection: its sink, its id, what the events compare with."""

    __slots__ = ("ca_state", "id", "retransmitting", "sink")

    def __init__(self, sink: TraceSink) -> None:
        self.sink = sink
        self.id = next(_sock_ids)
        self.ca_state = 0
        self.retransmitting = False     # the next segment sent is a retransmission

    def _event(self, sk: TcpSock, ev: str, now: float) -> dict[str, Any]:
        if sk.ca_state != self.ca_state:
            old, self.ca_state = self.ca_state, sk.ca_state
            e = self._common(sk, "tcp_cong_state_set", now)
            e["old"] = CA_NAMES[old]
            e["new"] = CA_NAMES[sk.ca_state]
            self.sink(e)
        return self._common(sk, ev, now)

    def _common(self, sk: TcpSock, ev: str, now: float) -> dict[str, Any]:
        return {"t": now, "ev": ev, "sock": self.id, "saddr": addr_str(sk.laddr),
                "sport": sk.lport, "daddr": addr_str(sk.raddr), "dport": sk.rport}

    def _emit(self, sk: TcpSock, e: dict[str, Any]) -> None:
        """Add the snapshot (tcp_probe's fields) and hand the event over."""
        est = sk.rtt_est
        e["state"] = STATE_NAMES.get(sk.state, str(sk.state))
        e["ca_state"] = CA_NAMES[sk.ca_state]
        e["snd_una"] = sk.snd_una
        e["snd_nxt"] = sk.snd_nxt
        e["rcv_nxt"] = sk.rcv_nxt
        e["snd_wnd"] = sk.snd_wnd
        e["rcv_wnd"] = sk.rcv_wnd
        e["snd_cwnd"] = sk.snd_cwnd
        e["ssthresh"] = min(sk.snd_ssthresh, 0x7FFFFFFF)
        e["srtt_us"] = round(est.srtt * 1e6) if est.has_sample else 0
        e["rttvar_us"] = round(est.rttvar * 1e6) if est.has_sample else 0
        e["rto_us"] = round(sk.rto * 1e6)
        e["in_flight"] = sk.packets_out - (sk.sacked_out + sk.lost_out) + sk.retrans_out
        e["packets_out"] = sk.packets_out
        e["sacked_out"] = sk.sacked_out
        e["lost_out"] = sk.lost_out
        e["retrans_out"] = sk.retrans_out
        self.sink(e)

    # --- the events ------------------------------------------------------------
    def set_state(self, sk: TcpSock, old: int, new: int, now: float) -> None:
        e = self._common(sk, "inet_sock_set_state", now)
        e["oldstate"] = STATE_NAMES.get(old, str(old))
        e["newstate"] = STATE_NAMES.get(new, str(new))
        self.sink(e)

    def probe(self, sk: TcpSock, skb: Any, now: float) -> None:
        """tcp_probe: a segment received, after the connection processed it."""
        e = self._event(sk, "tcp_probe", now)
        flags = skb.flags
        e["seq"] = skb.seq
        e["ack"] = skb.ack_seq
        e["len"] = len(skb.data)
        e["flags"] = flag_letters(flags)
        e["win"] = skb.window if flags & TCPHDR_SYN else skb.window << sk.snd_wscale
        e["sack"] = [[s, t] for s, t in skb.opts.sack_blocks]
        self._emit(sk, e)

    def transmit(self, sk: TcpSock, seq: int, ack: int, flags: int, dlen: int, window: int,
                 sack_blocks: Any, now: float) -> None:
        """A segment sent (``window``: the header's field)."""
        e = self._event(sk, "tcp_transmit_skb", now)
        e["seq"] = seq
        e["ack"] = ack
        e["len"] = dlen
        e["flags"] = flag_letters(flags)
        e["win"] = window if flags & TCPHDR_SYN else window << sk.rcv_wscale
        e["sack"] = [[s, t] for s, t in sack_blocks]
        e["retrans"] = self.retransmitting
        self.retransmitting = False
        self._emit(sk, e)

    def retransmit(self, sk: TcpSock, seq: int, end_seq: int, cause: str, now: float) -> None:
        e = self._event(sk, "tcp_retransmit_skb", now)
        e["seq"] = seq
        e["end_seq"] = end_seq
        e["cause"] = cause
        self.retransmitting = True
        self._emit(sk, e)

    def timer(self, sk: TcpSock, name: str, now: float) -> None:
        e = self._event(sk, "tcp_timer", now)
        e["timer"] = name
        e["backoff"] = max(sk.rtt_est.backoff_count, sk.backoff)
        self._emit(sk, e)


# --- logging (the ``tcpio.tcp`` logger) ------------------------------------------
_log = logging.getLogger("tcpio.tcp")


def _ends(sk: TcpSock) -> str:
    return f"{addr_str(sk.laddr)}:{sk.lport} -> {addr_str(sk.raddr)}:{sk.rport}"


def tcp_log_state(sk: TcpSock, old: int, new: int) -> None:
    """A state change on the ``tcpio.tcp`` logger: INFO for the connection's
    lifecycle (connected, accepted, closed, failed with its errno), DEBUG for
    the steps between."""
    if new == TCP_ESTABLISHED and old in (TCP_SYN_SENT, TCP_SYN_RECV):
        _log.info("%s %s", "connected" if old == TCP_SYN_SENT else "accepted", _ends(sk))
    elif new == TCP_CLOSE and old != TCP_LISTEN:
        err = sk.sk_err
        if err:
            _log.info("connection %s failed in %s: %s", _ends(sk), STATE_NAMES.get(old, old),
                      errno.errorcode.get(err, err))
        else:
            _log.info("connection %s closed (from %s)", _ends(sk), STATE_NAMES.get(old, old))
    elif new == TCP_LISTEN:
        _log.info("listening on %s:%d", addr_str(sk.laddr), sk.lport)
    else:
        _log.debug("%s %s -> %s", _ends(sk), STATE_NAMES.get(old, old),
                   STATE_NAMES.get(new, new))


def log_rto(sk: TcpSock, now: float) -> None:
    """The retransmission timer fired with data out (INFO: a loss the peer did
    not repair in time)."""
    _log.info("retransmission timeout %s: resending from %d (RTO %.3f s, backoff %d)",
              _ends(sk), sk.snd_una, sk.rto, sk.rtt_est.backoff_count)


def log_event(event: dict[str, Any]) -> None:
    """A trace sink writing each event on the ``tcpio.tcp`` logger at DEBUG
    (a Stack made while that logger is at DEBUG traces to it)."""
    ev = event["ev"]
    head = f"{event['saddr']}:{event['sport']} -> {event['daddr']}:{event['dport']} {ev}"
    if "seq" in event and "flags" in event:
        _log.debug("%s [%s] seq %d ack %d len %d win %d cwnd %s ssthresh %s srtt %sus "
                   "inflight %s", head, event["flags"], event["seq"], event["ack"],
                   event["len"], event["win"], event["snd_cwnd"], event["ssthresh"],
                   event["srtt_us"], event["in_flight"])
    else:
        rest = {k: v for k, v in event.items()
                if k not in ("t", "ev", "sock", "saddr", "sport", "daddr", "dport")}
        _log.debug("%s %s", head, " ".join(f"{k}={v}" for k, v in rest.items()))
