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
blocks).  Declined here: another state, a segment not at rcv_nxt, loss
recovery, an out-of-order queue, pending urgent data, a window change, a
timestamp missing or older than ts_recent (PAWS); for data, an ACK other
than snd_una (tcp_input queues it and runs tcp_ack) or a closed receive
window; for a bare ACK, one below snd_una or above snd_nxt.  An accepted bare
ACK gets the timestamp bookkeeping here, then tcp_ack through the
``ack_predicted`` hook, as Linux's fast path calls tcp_ack.

``TcpCb`` is the part of the control block this path uses; the compiled twin
makes those C fields.  ``core.tcp.sock.TcpSock`` subclasses it.

``select_window(sk)`` is __tcp_select_window (receiver SWS avoidance), the one
the fast path needs to decide whether to ACK; ``tcp_select_window(sk)`` the
window field of the next segment.  core.tcp.tcp_output uses both.

``clean_rtx_queue(sk)`` is the loop of tcp_clean_rtx_queue: drop the
segments snd_una now covers from sk.rtx (trimming a partly acked head),
keep the SACK scoreboard counts right, free the acknowledged bytes of sk.wq;
it returns (segments acked, send time of the first one never retransmitted
nor SACKed or None, whether a retransmitted one was acked) for Karn's rule.

The send side: ``write_xmit(sk, mss, out, ifindex, dst_mac, src_mac, ttl,
ids, bucket, now)`` (``ids[bucket]``: the IP ID counter of the destination) is tcp_write_xmit's loop for plain data segments, each built
as a whole frame (tx.tcp_frame) and appended to ``out`` (the host's output
list), with its ``TxSeg`` (the retransmit queue's record of a segment)
appended to sk.rtx.  core.tcp.tcp_output calls it when nothing unusual is
pending (no FIN queued, no urgent mode, no SACK option to send) and the
route's neighbour is resolved; it returns the number of segments sent.
"""

from __future__ import annotations

from typing import Any

from tcpio._fast import load

__all__ = ["TcpCb", "TxSeg", "buf_append", "buf_consume", "clean_rtx_queue", "rcv_established", "select_window",
           "set_hooks", "tcp_select_window", "write_xmit"]

_tcp_frame = load("tx").tcp_frame

_TCP_ESTABLISHED = 1
_TCP_CA_OPEN = 0
_TCP_MAX_QUICKACKS = 16
_MAX_TCP_WINDOW = 65535
_TCPHDR_ACK = 0x10
_TCPHDR_PSH = 0x08

# The Python side the fast paths call out to, set by core.tcp (this module
# sits below it; see set_hooks).
_send_ack: Any = None
_data_sent_idle: Any = None
_ack_predicted: Any = None


def set_hooks(send_ack: Any, data_sent_idle: Any, ack_predicted: Any) -> None:
    """Install the Python side the fast paths call out to: tcp_send_ack(sk, now),
    tcp_event_data_sent_idle(sk, now) and tcp_ack_predicted(sk, seq, ack,
    window, ts_val, ts_ecr, now) (tcp_ack for a bare ACK prediction accepted)."""
    global _send_ack, _data_sent_idle, _ack_predicted
    _send_ack = send_ack
    _data_sent_idle = data_sent_idle
    _ack_predicted = ack_predicted


class TcpCb:
    """The hot part of the TCP control block; plain attributes in this twin."""


class TxSeg:
    """One transmitted, not yet acknowledged segment: [seq, end_seq) + flags.

    The payload is not stored: it is ``sk.wq`` sliced at ``seq``.
    """

    __slots__ = ("end_seq", "flags", "retrans", "sacked", "seq", "tstamp")

    def __init__(self, seq: int, end_seq: int, flags: int, tstamp: float) -> None:
        self.seq = seq
        self.end_seq = end_seq
        self.flags = flags      # TCPHDR_SYN / TCPHDR_FIN bits carried
        self.sacked = 0         # TCPCB_* bits (tcp_sack)
        self.tstamp = tstamp    # last (re)transmission time
        self.retrans = 0

    def __repr__(self) -> str:
        return f"TxSeg({self.seq}, {self.end_seq}, flags={self.flags}, sacked={self.sacked})"


def select_window(sk: Any) -> int:
    """__tcp_select_window: receiver SWS avoidance (RFC 1122 4.2.3.3).

    Offer space in whole MSS units, and nothing while less than
    min(MSS, half the buffer) is free."""
    mss = min(sk.rcv_mss, sk.advmss) or 1
    full = min(sk.rcvbuf, sk.window_clamp)
    # (an over-committed buffer gives a negative free space: zero below)
    free = min(sk.rcvbuf - len(sk.rq) - sk.ofo_bytes, sk.window_clamp)
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


def tcp_select_window(sk: Any) -> int:
    """The 16-bit window field for the next segment; never shrinks the window."""
    cur = _receive_window(sk)
    new = select_window(sk)
    if new < cur:
        # RFC 7323 2.4: do not move the right edge back.
        gran = 1 << sk.rcv_wscale
        new = (cur + gran - 1) // gran * gran
    new = min(new, _MAX_TCP_WINDOW << sk.rcv_wscale)
    sk.rcv_wnd = new
    sk.rcv_wup = sk.rcv_nxt
    return new >> sk.rcv_wscale


def _before(a: int, b: int) -> bool:
    return ((a - b) & 0xFFFFFFFF) >= 0x80000000


def _seq_diff(a: int, b: int) -> int:
    """a - b as a signed 32-bit distance."""
    return ((a - b + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def _receive_window(sk: Any) -> int:
    """tcp_receive_window: what the peer may still send beyond rcv_nxt."""
    return max(_seq_diff(sk.rcv_wup, sk.rcv_nxt) + sk.rcv_wnd, 0)


def _tcp_time_stamp(now: float) -> int:
    """The 1 ms timestamp clock (tcp_time_stamp_ms)."""
    return int(now * 1000) & 0xFFFFFFFF


def _store_ts_recent(sk: Any, seq: int, has_ts: bool, ts_val: int, now: float) -> None:
    """tcp_store_ts_recent, with the time the peer was last heard from."""
    sk.rcv_tstamp = now
    if has_ts and not _before(sk.rcv_wup, seq):
        sk.ts_recent = ts_val
        sk.ts_recent_stamp = now


def rcv_established(sk: Any, seq: int, ack: int, window: int, has_ts: bool, ts_val: int,
                    ts_ecr: int, data: Any, now: float) -> bool:
    """Header prediction and the in-order data path (see the module docstring)."""
    n = len(data)
    if (sk.state != _TCP_ESTABLISHED or seq != sk.rcv_nxt
            or sk.ca_state != _TCP_CA_OPEN or sk.urg_seq is not None or sk.ofo
            or (window << sk.snd_wscale) != sk.snd_wnd):
        return False
    if sk.tstamp_ok and (not has_ts or _before(ts_val, sk.ts_recent)):
        return False
    if not n:
        # A bare ACK: acceptable if it acknowledges nothing we did not send.
        if _before(ack, sk.snd_una) or _before(sk.snd_nxt, ack):
            return False
        _store_ts_recent(sk, seq, has_ts, ts_val, now)
        # New data acked, or a duplicate ACK while data is out: tcp_ack.
        if ack != sk.snd_una or sk.packets_out:
            _ack_predicted(sk, seq, ack, window, ts_val if has_ts else None,
                           ts_ecr if has_ts else None, now)
        return True
    if ack != sk.snd_una:
        return False        # data that also acknowledges new data: tcp_input's path
    if not _receive_window(sk):
        return False
    # Commit: nothing below declines the segment.
    _store_ts_recent(sk, seq, has_ts, ts_val, now)
    if sk.tstamp_ok and ts_ecr:
        # tcp_rcv_rtt_measure_ts: the receiver's RTT, for buffer autotuning
        d = (_tcp_time_stamp(now) + sk.ts_off - ts_ecr) & 0xFFFFFFFF
        if d < 0x7FFFFFFF:
            sample = max(d / 1000.0, 0.001)
            sk.rcv_rtt = sample if not sk.rcv_rtt else sk.rcv_rtt * 0.875 + sample * 0.125
    buf_append(sk.rq, data)
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
    if ((_seq_diff(sk.rcv_nxt, sk.rcv_wup) > sk.rcv_mss and select_window(sk) >= sk.rcv_wnd)
            or sk.quick or sk.ofo):
        _send_ack(sk, now)
    else:
        timer = sk.delack_timer
        if timer.when is None:
            timer.arm(now + sk.host.settings.tcp_delack_min)
    return True


def write_xmit(sk: Any, mss: int, out: list, ifindex: int, dst_mac: bytes | None,
               src_mac: bytes | None, ttl: int, ids: list[int], bucket: int,
               now: float) -> int:
    """tcp_write_xmit's loop for plain data segments (see the module docstring)."""
    wq_seq = sk.wq_seq
    write_seq = sk.write_seq
    wnd_end = (sk.snd_una + sk.snd_wnd) & 0xFFFFFFFF
    # ts_val -1: no timestamp option (tcp_frame then ignores ts_ecr)
    ts_val = (_tcp_time_stamp(now) + sk.ts_off) & 0xFFFFFFFF if sk.tstamp_ok else -1
    ts_ecr = sk.ts_recent
    if mss <= 0 or not 0 <= ttl <= 0xFF:
        raise ValueError("tcp: mss must be positive and ttl at most 255")
    if not 0 <= bucket < len(ids):
        raise IndexError("IP ID bucket out of range")
    sent = 0
    with memoryview(sk.wq) as wq:
        while True:
            seq = sk.snd_nxt
            unsent = _seq_diff(write_seq, seq)
            if unsent <= 0:
                break
            if (sk.packets_out - (sk.sacked_out + sk.lost_out) + sk.retrans_out
                    >= sk.snd_cwnd):
                sk.is_cwnd_limited = True
                break
            seglen = min(mss, unsent)
            end = (seq + seglen) & 0xFFFFFFFF
            if _before(wnd_end, end):
                break   # rwnd-limited; tcp_output arms the probe timer
            # Nagle with Minshall's tweak: at most one small segment unacked.
            if (seglen < mss and not sk.nodelay and sk.packets_out
                    and _before(sk.snd_una, sk.snd_sml) and not _before(seq, sk.snd_sml)):
                break
            if not sk.packets_out:
                _data_sent_idle(sk, now)
            off = ((seq - wq_seq) & 0xFFFFFFFF)
            if off + seglen > len(wq):
                raise RuntimeError("tcp: send buffer shorter than write_seq says")
            flags = _TCPHDR_ACK | _TCPHDR_PSH if seglen == unsent else _TCPHDR_ACK
            sk.rtx.append(TxSeg(seq, end, 0, now))
            sk.packets_out += 1
            sk.snd_nxt = end
            if seglen < mss:
                sk.snd_sml = end
            # tcp_transmit_skb -> ip_queue_xmit: the whole frame in one call,
            # the IP ID from the destination's counter (IpIdents.next)
            window = tcp_select_window(sk)
            ident = ids[bucket] = (ids[bucket] + 1) & 0xFFFF
            out.append((ifindex, _tcp_frame(
                dst_mac, src_mac, sk.laddr, sk.raddr, ident, ttl,
                sk.lport, sk.rport, seq, sk.rcv_nxt, flags, window, ts_val, ts_ecr, (),
                wq[off:off + seglen], 0)))
            if sk.quick:
                sk.quick -= 1          # tcp_event_ack_sent, per segment
            sent += 1
    return sent


def clean_rtx_queue(sk: Any) -> tuple[int, float | None, bool]:
    """tcp_clean_rtx_queue's walk of the retransmit queue (see the module docstring)."""
    rtx = sk.rtx
    ack = sk.snd_una
    n = 0
    first_tx = None
    retrans_acked = False
    for seg in rtx:
        if _before(ack, seg.end_seq):
            # partially acked: trim the head (tcp_trim_head).  (A SYN is one
            # sequence number, so never partly acked.)
            if _before(seg.seq, ack):
                seg.seq = ack
            break
        s = seg.sacked
        if s & 2:           # TCPCB_SACKED_RETRANS
            sk.retrans_out -= 1
            retrans_acked = True
        if s & 1:           # TCPCB_SACKED_ACKED
            sk.sacked_out -= 1
        elif s & 4:         # TCPCB_LOST
            sk.lost_out -= 1
        if not seg.retrans and first_tx is None and not s & 1:
            first_tx = seg.tstamp
        n += 1
    if n:
        del rtx[:n]
        sk.packets_out -= n
    if sk.packets_out == 0:
        sk.sacked_out = sk.lost_out = sk.retrans_out = 0
    # free acknowledged bytes (the SYN and FIN take sequence space but no bytes)
    data_end = sk.write_seq if _before(sk.write_seq, ack) else ack
    freed = _seq_diff(data_end, sk.wq_seq)
    if freed > 0:
        buf_consume(sk.wq, freed)
        sk.wq_seq = data_end
    return n, first_tx, retrans_acked


def buf_append(ba: bytearray, data: Any) -> None:
    """``ba += data`` for a socket queue.  The compiled twin also keeps this
    amortized O(len(data)) when the front has been consumed (see _buf.pxd)."""
    ba += data


def buf_consume(ba: bytearray, n: int) -> None:
    """``del ba[:n]`` for a socket queue (see buf_append)."""
    if n < 0:
        raise ValueError("buf_consume: negative length")
    del ba[:n]
