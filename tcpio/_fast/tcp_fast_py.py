"""The established-state receive fast path, pure-Python twin of ``tcp_fast.pyx``.

Linux's tcp_rcv_established starts with header prediction: on an established
connection with nothing unusual going on, a segment that carries the next
in-order data and acknowledges nothing new needs no state machine, only
"append the bytes, advance rcv_nxt, decide whether to ACK now".  That is the
segment a bulk receiver sees all the time, so it is the one worth compiling.

``rcv_established(sk, seq, ack, window, has_ts, ts_val, ts_ecr, data, now)``
returns True when it processed the segment completely, and False, having
changed nothing, when the segment needs the full path
(core.tcp.tcp_input.tcp_rcv_established).  The caller has already checked
what the header alone says: the flags are ACK (PSH, ECE, CWR allowed; no
SYN, FIN, RST or URG) and the options are at most a timestamp (no SACK
blocks).  Declined here: another state, no data, data not at rcv_nxt, an ACK
other than snd_una (new data acked or an old ACK: tcp_ack must run), loss
recovery, an out-of-order queue, pending urgent data, a window change, a
timestamp missing or older than ts_recent (PAWS), or a closed receive window.

``TcpCb`` is the part of the control block this path uses; the compiled twin
makes those C fields.  ``core.tcp.sock.TcpSock`` subclasses it.

``select_window(sk)`` is __tcp_select_window (receiver SWS avoidance), the one
the fast path needs to decide whether to ACK; core.tcp.tcp_output uses it too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TcpCb", "rcv_established", "select_window", "set_hooks"]

_TCP_ESTABLISHED = 1
_TCP_CA_OPEN = 0
_TCP_MAX_QUICKACKS = 16

# tcp_send_ack(sk, now): set by core.tcp.tcp_input (this module sits below it).
_send_ack: Any = None


def set_hooks(send_ack: Any) -> None:
    """Install the Python side the fast path calls out to (tcp_send_ack)."""
    global _send_ack
    _send_ack = send_ack


class TcpCb:
    """The hot part of the TCP control block; plain attributes in this twin."""


def select_window(sk: Any) -> int:
    """__tcp_select_window: receiver SWS avoidance (RFC 1122 4.2.3.3).

    Offer space in whole MSS units, and nothing while less than
    min(MSS, half the buffer) is free."""
    mss = min(sk.rcv_mss, sk.advmss) or 1
    full = min(sk.rcvbuf, sk.window_clamp)
    free = min(max(0, sk.rcvbuf - len(sk.rq) - sk.ofo_bytes), sk.window_clamp)
    if free < full >> 1 and free < mss:
        return 0
    if sk.rcv_wscale:
        # The scaled field cannot express less than 1 << wscale: round down.
        gran = 1 << sk.rcv_wscale
        window = free // max(mss, gran) * max(mss, gran) if free >= mss else free
        return window - window % gran
    window = sk.rcv_wnd
    if window <= free - mss or window > free:
        window = free // mss * mss
    return window


def _before(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) >= 0x80000000


def rcv_established(sk: Any, seq: int, ack: int, window: int, has_ts: bool, ts_val: int,
                    ts_ecr: int, data: Any, now: float) -> bool:
    """Header prediction and the in-order data path (see the module docstring)."""
    n = len(data)
    if (sk.state != _TCP_ESTABLISHED or n <= 0 or seq != sk.rcv_nxt or ack != sk.snd_una
            or sk.ca_state != _TCP_CA_OPEN or sk.urg_seq is not None or sk.ofo
            or (window << sk.snd_wscale) != sk.snd_wnd):
        return False
    if sk.tstamp_ok and (not has_ts or _before(ts_val, sk.ts_recent)):
        return False
    # tcp_receive_window
    if ((sk.rcv_wup - sk.rcv_nxt + 0x80000000) & 0xFFFFFFFF) - 0x80000000 + sk.rcv_wnd <= 0:
        return False
    # Commit: nothing below declines the segment.
    sk.rcv_tstamp = now
    if has_ts and not _before(sk.rcv_wup, seq):
        sk.ts_recent = ts_val
        sk.ts_recent_stamp = now
    if sk.tstamp_ok and ts_ecr:
        # tcp_rcv_rtt_measure_ts: the receiver's RTT, for buffer autotuning
        d = (int(now * 1000) + sk.ts_off - ts_ecr) & 0xFFFFFFFF
        if d < 0x7FFFFFFF:
            sample = max(d / 1000.0, 0.001)
            sk.rcv_rtt = sample if not sk.rcv_rtt else sk.rcv_rtt * 0.875 + sample * 0.125
    sk.rq += data
    sk.rcv_nxt = (seq + n) & 0xFFFFFFFF
    # tcp_event_data_recv: the peer's MSS guess, quick-ACK at the start
    if n > sk.rcv_mss:
        sk.rcv_mss = min(n, sk.advmss)
    if not sk.got_data:
        sk.got_data = True
        sk.quick = min(max(sk.rcv_wnd // (2 * max(sk.rcv_mss, 1)), 2), _TCP_MAX_QUICKACKS)
    sk.ack_pending = True
    sk.host.schedule_wakeup(sk)
    # __tcp_ack_snd_check: ACK every second full segment (if the window moved),
    # in quick-ACK mode, or with a hole; else delay.
    if sk.dead:
        return True
    if ((((sk.rcv_nxt - sk.rcv_wup + 0x80000000) & 0xFFFFFFFF) - 0x80000000 > sk.rcv_mss
         and select_window(sk) >= sk.rcv_wnd) or sk.quick or sk.ofo):
        _send_ack(sk, now)
    else:
        timer = sk.delack_timer
        if timer.when is None:
            timer.arm(now + sk.host.settings.tcp_delack_min)
    return True
