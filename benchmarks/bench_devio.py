"""The TAP device's own cost per frame, read and write, without a stack (issues 11-13).

    sudo python benchmarks/bench_devio.py [--frames 200000] [--size 1514]
                                          [--offloads on|off] [--batch 64] [--mode rx,tx]

A TapDevice in a private namespace, its kernel interface up (IPv6 off: no
neighbour discovery frames), and nothing else:

- rx: a packet socket on the kernel's side of the interface puts ``--frames``
  frames of ``--size`` bytes (ethertype 0x88b5, no protocol takes it) on the
  TAP's ring, 10 000 at a time (the ring holds 20 000); the device's reader
  (``_on_readable``, as the loop calls it) then drains them.  Only the drain
  is timed.
- tx: ``send_batch`` writes ``--frames`` such frames, ``--batch`` a call,
  addressed to another station: the kernel drops each at once (no protocol
  for the ethertype), so what is timed is tcpio's side and the write itself.

Prints the process CPU time per frame (user + system: ``time.process_time``),
and the frames counted by the device.  The machine is shared: compare trees
with instruction counts, which load does not move (callgrind counts user-space
instructions only, so the kernel's side of each read/write is left out):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python benchmarks/bench_devio.py --frames N --mode tx

at two values of N; (I(2N) - I(N)) / N is the user-space instructions per
frame, start-up cancelled out.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "PYTHONPATH" not in os.environ:      # else the tree it names (comparing trees)
    sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))

ETHERTYPE = b"\x88\xb5"
FILL = 10_000           # frames put on the ring per round (it holds DEFAULT_TXQUEUELEN)


def frame(size: int, dst: bytes, src: bytes) -> bytes:
    return (dst + src + ETHERTYPE).ljust(size, b"\x5a")


def bench_rx(ns: object, tap: object, frames: int, size: int) -> tuple[float, int]:
    """Drain ``frames`` frames the kernel put on the ring; CPU seconds, frames read."""
    pkt = ns.call(socket.socket, socket.AF_PACKET, socket.SOCK_RAW, 0)   # type: ignore[attr-defined]
    pkt.bind((tap.name, 0))                                              # type: ignore[attr-defined]
    data = frame(size, tap.mac, bytes.fromhex("020000000001"))           # type: ignore[attr-defined]
    got = [0]

    def on_frames(batch: list[bytes]) -> None:
        got[0] += len(batch)
    tap._on_frames = on_frames                                           # type: ignore[attr-defined]
    cpu = 0.0
    left = frames
    while left > 0:
        n = min(FILL, left)
        for _ in range(n):
            pkt.send(data)
        left -= n
        t0 = time.process_time()
        while tap._on_readable():                                        # type: ignore[attr-defined]
            pass
        cpu += time.process_time() - t0
    pkt.close()
    return cpu, got[0]


def bench_tx(tap: object, frames: int, size: int, batch: int) -> tuple[float, int]:
    """Write ``frames`` frames, ``batch`` a call; CPU seconds, frames the device counted sent."""
    data = frame(size, bytes.fromhex("020000000099"), tap.mac)           # type: ignore[attr-defined]
    chunk = [data] * batch
    before = tap.stats["tx_packets"]                                     # type: ignore[attr-defined]
    send = tap.send_batch                                                # type: ignore[attr-defined]
    t0 = time.process_time()
    for _ in range(frames // batch):
        send(chunk)
    cpu = time.process_time() - t0
    return cpu, tap.stats["tx_packets"] - before                         # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=1514)
    ap.add_argument("--offloads", choices=("on", "off"), default="off")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--mode", default="rx,tx")
    args = ap.parse_args()

    from netns import kernel_side

    from tcpio import _fast

    with kernel_side(ipv6=False, tap_options={"offloads": args.offloads == "on"}) as (ns, tap):
        print(f"{Path(_fast.__file__).parent.parent.parent}: devio "
              f"{_fast.build_info().get('devio', 'absent')}, offloads {args.offloads} "
              f"(virtio header {tap.vnet_hdr_len} bytes), {args.size}-byte frames")
        for mode in args.mode.split(","):
            if mode == "rx":
                cpu, n = bench_rx(ns, tap, args.frames, args.size)
            else:
                cpu, n = bench_tx(tap, args.frames, args.size, args.batch)
            print(f"  {mode}: {n} frames, {cpu / max(n, 1) * 1e6:.3f} us CPU per frame "
                  f"(errors rx {tap.stats['rx_errors']} tx {tap.stats['tx_errors']}, "
                  f"tx dropped {tap.stats['tx_dropped']})")


if __name__ == "__main__":
    main()
