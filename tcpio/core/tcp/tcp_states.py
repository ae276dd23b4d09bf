"""TCP states with Linux's numbering (include/net/tcp_states.h) and seq arithmetic
(the sequence helpers are tcpio._fast.tcp_fast's).

The infra modules (hash tables, syncookies) import these too, so the numbers
must stay the kernel's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import _fast

# mypy reads the one source; at run time _fast.load picks the compiled module
# or the same file run interpreted.
if TYPE_CHECKING:
    from tcpio._fast import tcp_fast as _tcp_fast
else:
    _tcp_fast = _fast.load("tcp_fast")

TCP_ESTABLISHED = 1
TCP_SYN_SENT = 2
TCP_SYN_RECV = 3
TCP_FIN_WAIT1 = 4
TCP_FIN_WAIT2 = 5
TCP_TIME_WAIT = 6
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8
TCP_LAST_ACK = 9
TCP_LISTEN = 10
TCP_CLOSING = 11
TCP_NEW_SYN_RECV = 12

# Names as `ss -tan` prints them.
STATE_NAMES = {
    TCP_ESTABLISHED: "ESTAB",
    TCP_SYN_SENT: "SYN-SENT",
    TCP_SYN_RECV: "SYN-RECV",
    TCP_FIN_WAIT1: "FIN-WAIT-1",
    TCP_FIN_WAIT2: "FIN-WAIT-2",
    TCP_TIME_WAIT: "TIME-WAIT",
    TCP_CLOSE: "UNCONN",
    TCP_CLOSE_WAIT: "CLOSE-WAIT",
    TCP_LAST_ACK: "LAST-ACK",
    TCP_LISTEN: "LISTEN",
    TCP_CLOSING: "CLOSING",
    TCP_NEW_SYN_RECV: "SYN-RECV",
}

# Congestion-avoidance states (enum tcp_ca_state).
TCP_CA_OPEN = 0
TCP_CA_DISORDER = 1
TCP_CA_CWR = 2
TCP_CA_RECOVERY = 3
TCP_CA_LOSS = 4

# Header flag bits (the kernel's TCPHDR_*).
TCPHDR_FIN = 0x01
TCPHDR_SYN = 0x02
TCPHDR_RST = 0x04
TCPHDR_PSH = 0x08
TCPHDR_ACK = 0x10
TCPHDR_URG = 0x20
# TxSeg.flags beside those: the last segment of its burst (one GSO skb in
# Linux; tcp_fast keeps its own C copy, _TCPCB_EOB)
TCPCB_EOB = 0x100

# tp->nonagle's bits (include/net/tcp.h; tcp_fast keeps its own C copies):
# TCP_NAGLE_OFF is sk.nodelay, these two are sk.nonagle.
TCP_NAGLE_CORK = 2      # TCP_CORK set, or a MSG_MORE write's push
TCP_NAGLE_PUSH = 4      # push what is queued (set by TCP_NODELAY, uncorking with it)

# Shutdown bits (sk->sk_shutdown).
RCV_SHUTDOWN = 1
SEND_SHUTDOWN = 2
SHUTDOWN_MASK = 3

# Sequence space: the one definition is tcp_fast's (compiled, C-typed on
# uint32_t: every caller passes values already taken mod 2**32).
seq_diff = _tcp_fast.seq_diff      # a - b as a signed 32-bit distance
before = _tcp_fast.before          # a < b in sequence space (the kernel's before())
after = _tcp_fast.after


def between(seq: int, lo: int, hi: int) -> bool:
    """lo <= seq <= hi in sequence space (the kernel's between())."""
    return ((hi - lo) & 0xFFFFFFFF) >= ((seq - lo) & 0xFFFFFFFF)

# TCP_TIMEWAIT_LEN (include/net/tcp.h): TIME-WAIT's length (tcpio's default
# for Settings.tcp_tw_timeout), and tcp_out_of_resources' "sent recently"
TCP_TIMEWAIT_LEN = 60.0
