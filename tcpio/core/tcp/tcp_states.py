"""TCP states with Linux's numbering (include/net/tcp_states.h) and seq arithmetic.

The infra modules (hash tables, syncookies) import these too, so the numbers
must stay the kernel's.
"""

from __future__ import annotations

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

# Shutdown bits (sk->sk_shutdown).
RCV_SHUTDOWN = 1
SEND_SHUTDOWN = 2
SHUTDOWN_MASK = 3

_MOD = 0x100000000
_HALF = 0x80000000


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed 32-bit distance."""
    d = (a - b) & 0xFFFFFFFF
    return d - _MOD if d >= _HALF else d


def before(a: int, b: int) -> bool:
    """a < b in sequence space (the kernel's before())."""
    return ((a - b) & 0xFFFFFFFF) >= _HALF


def after(a: int, b: int) -> bool:
    return ((b - a) & 0xFFFFFFFF) >= _HALF


def between(seq: int, lo: int, hi: int) -> bool:
    """lo <= seq <= hi in sequence space (the kernel's between())."""
    return ((hi - lo) & 0xFFFFFFFF) >= ((seq - lo) & 0xFFFFFFFF)
