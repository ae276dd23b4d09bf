"""Frames per second through ``Host.receive`` (and UDP out), compiled vs pure twin.

    python benchmarks/bench_rx.py [--frames 200000] [--rounds 5] [--profile]

Each row runs in a fresh subprocess, once with the compiled ``tcpio._fast``
modules and once with ``TCPIO_NO_EXTENSIONS=1`` (the pure twins), so both
columns exercise exactly the code a user gets.  Rows:

- udp-in 64 / 1472: Ethernet frames carrying a UDP datagram to a bound sock
  (the sock's queue is emptied between rounds; its rcvbuf is large).
- tcp-in 64 / 1460: TCP-shaped frames (ACK + data) delivered to a sink handler
  registered for protocol 6: the host's share of a TCP segment's cost (Ethernet,
  ip_rcv, demux), without the TCP engine, which is not ours to measure here.
- udp-out 64 / 1472: ``UdpSock.sendto`` -> ip_output -> ether_xmit ->
  ``take_output`` with a static ARP entry: the transmit budget per datagram.

Single process per row, no pinning, best of ``--rounds``, timed in process CPU
time (time.process_time) so that other load on a shared machine inflates the
numbers less; still quote ratios rather than absolute numbers.  To compare with
an older revision, run this same file from an export of it:
``git archive REV | tar -x -C /tmp/base && cp benchmarks/bench_rx.py /tmp/base/benchmarks/``,
build the extensions there, then ``python /tmp/base/benchmarks/bench_rx.py``.  ``--profile`` prints
a cProfile of one row (``--profile udp-out:1472``) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # run from a checkout

from tcpio._fast import wire_py as w  # frames are built by the pure twin

# CPU time of this process, not wall time: on a shared, loaded machine the
# wall clock also counts the time other processes held the CPU.
_clock = time.process_time

MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")
MY = 0x0A000002
PEER = 0x0A000001


def ip_frame(proto: int, l4: bytes) -> bytes:
    """Ethernet + IPv4 (DF, TTL 64, PEER -> MY) + ``l4``, built by the pure twin."""
    hdr = bytearray(20)
    w.build_ipv4(hdr, 0, w.IPv4Header(total_length=20 + len(l4), ident=1, df=True,
                                      proto=proto, src=PEER, dst=MY))
    return MAC + PEER_MAC + b"\x08\x00" + bytes(hdr) + l4


def data_bytes(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def udp_frame(size: int) -> bytes:
    return ip_frame(17, w.build_udp(PEER, MY, 4000, 53, data_bytes(size)))


def tcp_frame(size: int) -> bytes:
    return ip_frame(6, w.build_tcp(PEER, MY, 40000, 80, 1000, 2000, w.ACK | w.PSH, 65535,
                                   None, data_bytes(size)))


class Sink:
    """A protocol handler that accepts every datagram and does nothing."""

    def __init__(self) -> None:
        self.n = 0

    def rcv(self, iph, payload, now) -> bool:
        self.n += 1
        return True

    def err(self, *args) -> None:
        pass


def make_host():
    from tcpio.core.host import Host
    from tcpio.core.settings import Settings

    h = Host("bench", seed=1, settings=Settings())
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, MY, 24)
    h.add_static_arp(PEER, PEER_MAC)
    h.take_output()
    return h


def run_row(kind: str, size: int, frames: int, rounds: int) -> dict:
    from tcpio import _fast

    h = make_host()
    best = float("inf")
    if kind == "udp-in":
        sk = h.udp.socket()
        sk.bind(0, 53)
        sk.rcvbuf = 1 << 62
        frame = udp_frame(size)
        receive = h.receive
        for _ in range(rounds):
            t0 = _clock()
            for _ in range(frames):
                receive(1, frame, 1.0)
            best = min(best, _clock() - t0)
            ok = len(sk.rcv_queue) == frames
            sk.rcv_queue.clear()
            sk.rcv_bytes = 0
            h.take_wakeups()
            assert ok, "datagrams were not delivered"
    elif kind == "tcp-in":
        sink = Sink()
        h.register_protocol(6, sink)
        frame = tcp_frame(size)
        receive = h.receive
        for _ in range(rounds):
            sink.n = 0
            t0 = _clock()
            for _ in range(frames):
                receive(1, frame, 1.0)
            best = min(best, _clock() - t0)
            assert sink.n == frames, "segments were not delivered"
    elif kind == "udp-out":
        sk = h.udp.socket()
        sk.bind(0, 4000)
        data = bytes(size)
        sendto = sk.sendto
        take = h.take_output
        for _ in range(rounds):
            t0 = _clock()
            for _ in range(frames):
                sendto(data, PEER, 53)
                take()
            best = min(best, _clock() - t0)
    else:
        raise ValueError(kind)
    compiled = _fast.is_compiled(_fast.load("checksum"))
    return {"kind": kind, "size": size, "fps": frames / best, "compiled": compiled}


ROWS = [("udp-in", 64), ("udp-in", 1472), ("tcp-in", 64), ("tcp-in", 1460),
        ("udp-out", 64), ("udp-out", 1472)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", nargs="?", const="udp-in:64", metavar="KIND:SIZE",
                    help="cProfile one row (default udp-in:64) with the compiled modules")
    ap.add_argument("--row", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.row:
        kind, size = args.row.split(":")
        print(json.dumps(run_row(kind, int(size), args.frames, args.rounds)))
        return
    if args.profile:
        import cProfile
        import pstats
        kind, size = args.profile.split(":")
        cProfile.runctx("run_row(kind, int(size), args.frames, 1)", globals(),
                        {"args": args, "run_row": run_row, "kind": kind, "size": size},
                        "/tmp/bench_rx.prof")
        pstats.Stats("/tmp/bench_rx.prof").sort_stats("tottime").print_stats(15)
        return
    print(f"{'row':<16}{'compiled fr/s':>15}{'us/fr':>8}{'pure fr/s':>13}{'us/fr':>8}"
          f"{'ratio':>7}")
    for kind, size in ROWS:
        res = {}
        for pure in (False, True):
            env = dict(os.environ)
            env.pop("TCPIO_NO_EXTENSIONS", None)
            if pure:
                env["TCPIO_NO_EXTENSIONS"] = "1"
            out = subprocess.run([sys.executable, __file__, "--row", f"{kind}:{size}",
                                  "--frames", str(args.frames), "--rounds", str(args.rounds)],
                                 capture_output=True, text=True, env=env, check=True)
            res[pure] = json.loads(out.stdout)
        c, p = res[False], res[True]
        tag = "" if c["compiled"] else " (compiled modules not built!)"
        print(f"{kind + ' ' + str(size):<16}{c['fps']:>15,.0f}{1e6 / c['fps']:>8.2f}"
              f"{p['fps']:>13,.0f}{1e6 / p['fps']:>8.2f}{c['fps'] / p['fps']:>7.2f}{tag}")


if __name__ == "__main__":
    main()
