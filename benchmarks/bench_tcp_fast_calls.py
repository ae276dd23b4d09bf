#!/usr/bin/env python3
"""Nanoseconds per call of the compiled TCP fast path's entry points.

Measures ``tcpio._fast.tcp_fast`` as built in the tree on PYTHONPATH (so
``benchmarks/ab_trees.py`` can compare two trees): header prediction on an
in-order data segment and on a bare ACK, the window selection, and one
send-loop call that emits one segment plus the ACK's walk of the
retransmit queue.  Best of ``--repeat`` timings of ``--number`` calls each.

    python benchmarks/bench_tcp_fast_calls.py [--number 200000] [--repeat 7] [--pure]
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

from tcpio import _fast


class _Timer:
    when: float | None = None

    def arm(self, when: float) -> None:
        self.when = None        # stay disarmed: every call takes the same path


class _Settings:
    tcp_delack_min = 0.04


class _Host:
    settings = _Settings()

    def schedule_wakeup(self, sk: Any) -> None:
        pass


def make_cb(m: Any) -> Any:
    class Cb(m.TcpCb):
        pass

    sk = Cb()
    for name, value in {
        "state": 1, "ca_state": 0, "rcv_nxt": 1000, "rcv_wup": 1000, "rcv_wnd": 65535,
        "rcv_mss": 1460, "rcv_wscale": 0, "rcvbuf": 1 << 30, "window_clamp": 65535,
        "ofo_bytes": 0, "advmss": 1460, "quick": 0, "snd_una": 5000, "snd_nxt": 5000,
        "snd_wnd": 65535, "snd_wscale": 0, "ts_recent": 0, "ts_off": 0, "tstamp_ok": False,
        "got_data": True, "ack_pending": False, "dead": False, "rcv_tstamp": 0.0,
        "ts_recent_stamp": 0.0, "rcv_rtt": 0.0, "laddr": 0x0A000001, "raddr": 0x0A000002,
        "lport": 80, "rport": 40000, "snd_cwnd": 1 << 20, "packets_out": 0, "sacked_out": 0,
        "lost_out": 0, "retrans_out": 0, "snd_sml": 5000, "write_seq": 5000, "wq_seq": 5000,
        "nodelay": True, "is_cwnd_limited": False,
    }.items():
        setattr(sk, name, value)
    sk.rq = m.RcvQueue()
    sk.wq = m.SndQueue()
    sk.rtx = []
    sk.ofo = []
    sk.urg_seq = None
    sk.host = _Host()
    sk.delack_timer = _Timer()
    return sk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--pure", action="store_true", help="the interpreted module instead")
    args = ap.parse_args()
    m = _fast.load_pure("tcp_fast") if args.pure else _fast.load_compiled("tcp_fast")
    if m is None:
        raise SystemExit("tcpio._fast.tcp_fast is not built")
    m.set_hooks(lambda sk, now: None, lambda sk, now: None, lambda *a: None)
    payload = bytes(100)

    rx = make_cb(m)

    def data_segment() -> None:
        # in order, acknowledged at once is avoided: quick 0, one small segment
        rx.rcv_wup = rx.rcv_nxt
        m.rcv_established(rx, rx.rcv_nxt, 5000, 65535, False, 0, 0, payload, 1.0)
        if len(rx.rq) > 1 << 20:
            rx.rq.clear()

    ack = make_cb(m)

    def bare_ack() -> None:
        m.rcv_established(ack, 1000, 5000, 65535, False, 0, 0, b"", 1.0)

    win = make_cb(m)

    def select_window() -> None:
        m.select_window(win)

    tx = make_cb(m)
    out: list = []

    def send_and_ack() -> None:
        m.sq_append(tx.wq, payload, False)
        tx.write_seq = (tx.write_seq + len(payload)) & 0xFFFFFFFF
        m.write_xmit(tx, 1460, out, 1, None, None, 64, 1.0)
        out.clear()
        tx.snd_una = tx.snd_nxt
        m.clean_rtx_queue(tx)

    print(f"# tcp_fast {'interpreted' if not _fast.is_compiled(m) else 'compiled'} "
          f"({m.__file__}), best of {args.repeat} x {args.number} calls")
    for name, fn in (("rcv_established data 100 B", data_segment),
                     ("rcv_established bare ACK", bare_ack),
                     ("select_window", select_window),
                     ("write_xmit 1 seg + clean_rtx_queue", send_and_ack)):
        best = min(timeit.repeat(fn, number=args.number, repeat=args.repeat))
        print(f"{name:40s} {best / args.number * 1e9:8.1f} ns/call")


if __name__ == "__main__":
    main()
