"""Per received 64 KiB TCP super-frame: the TAP's header work plus the classifier.

    python benchmarks/bench_vnet_rx.py [--number 3000] [--repeat 7]

Two ways of taking the kernel's TSO frame (virtio header NEEDS_CSUM +
GSO_TCPV4, checksum partial) from the bytes ``read()`` returned to a
classified segment, timed in process CPU time (best of ``--repeat``):

- ``python``: what the device did before issue 12's receive work, with the
  helpers still in devices/virtio_net.py: parse the header (a NamedTuple),
  copy the frame out behind it into a bytearray, complete the checksum, then
  ``rx_classify`` sums the TCP checksum again;
- ``vnet_rx``: the compiled ``rx.vnet_rx`` (one call: the copy, the
  completion, a GsoFrame marked csum_valid), then ``rx_classify``, which
  does not sum it again.

The classifier gets no TCP demux (it returns the delivery tuple), so this
is the device's and the classifier's share only, not TCP's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from tcpio._fast import load  # noqa: E402
from tcpio.core.addr import ip_aton  # noqa: E402
from tcpio.devices import virtio_net as vnet  # noqa: E402

MAC = bytes.fromhex("020000000002")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--number", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    rx, csum = load("rx"), load("checksum")
    src, dst = ip_aton("10.7.0.1"), ip_aton("10.7.0.2")
    pkt = (Ether(dst=MAC, src="02:00:00:00:00:01") / IP(src="10.7.0.1", dst="10.7.0.2")
           / TCP(sport=5000, dport=80, flags="A",
                 options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
           / (b"z" * (1448 * 45)))
    frame = bytearray(bytes(pkt))
    frame[50:52] = csum.pseudo_header_sum(src, dst, 6, len(frame) - 34).to_bytes(2, "big")
    raw = vnet.build_vnet_hdr(vnet.gso_hdr_for(frame, 1448)) + bytes(frame)
    local, bcast = {dst: 1}, {0xFFFFFFFF}

    def python() -> None:
        hdr = vnet.parse_vnet_hdr(raw)
        out = bytearray(memoryview(raw)[vnet.VNET_HDR_LEN:])
        vnet.csum_complete(out, hdr.csum_start, hdr.csum_offset)
        assert rx.rx_classify(out, MAC, local, bcast, True) is not None

    def compiled() -> None:
        assert rx.rx_classify(rx.vnet_rx(raw, vnet.VNET_HDR_LEN), MAC, local, bcast,
                              True) is not None

    print(f"{len(frame)}-byte super-frame, rx module {rx.__name__}")
    for name, fn in (("python", python), ("vnet_rx", compiled)) * 2:
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.process_time()
            for _ in range(args.number):
                fn()
            best = min(best, (time.process_time() - t0) / args.number)
        print(f"  {name:8} {best * 1e6:6.2f} us per frame")


if __name__ == "__main__":
    main()
