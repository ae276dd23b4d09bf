"""The figures of the documentation, drawn by ``tcpio plot`` from a run made here.

A mkdocs hook (mkdocs.yml ``hooks:``): ``on_files`` runs a deterministic
transfer over a virtual link (300 kB, 10 ms each way, four chosen segments
lost on the wire), captures it, draws the capture with ``python -m tcpio plot``
and adds the figure to the site as ``img/transfer-0.png``.  Nothing is
written into docs/: the picture is made by every build, from the code of
that build.

``python tools/docs_figures.py DIR`` writes the same figure to DIR (the
README's picture, docs/img is not used).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROPS = {10, 30, 31, 70}
SIZE = 300_000
DELAY = 0.01


def capture_transfer(path: str) -> None:
    """A virtual-time transfer a -> b with the data frames numbered in DROPS lost."""
    sys.path.insert(0, ROOT)
    from tcpio.core.addr import ip_aton
    from tcpio.core.sim import VirtualNetwork
    from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED
    from tcpio.devices.impair import Impairment

    net = VirtualNetwork(seed=1)
    a, b = net.host("a"), net.host("b")
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", impairment=Impairment(delay=DELAY),
                    impairment_ba=Impairment(delay=DELAY))
    listener = b.tcp.socket()
    listener.bind(0, 80)
    listener.listen(4)
    c = a.tcp.socket()
    try:
        c.connect(ip_aton("10.0.0.2"), 80)
    except BlockingIOError:
        pass
    assert net.run_until(lambda: listener.accept_queue and c.state == TCP_ESTABLISHED, 30)
    s = listener.accept()
    count = [0]

    def drop(sender: Any, frame: bytes) -> bool:
        if sender is a and len(frame) > 200:
            count[0] += 1
            return count[0] in DROPS
        return False

    link.drop = drop
    data = bytes(SIZE)
    sent, got = [0], [0]

    def pump() -> bool:
        if sent[0] < SIZE:
            sent[0] += c.sendmsg(memoryview(data)[sent[0]:sent[0] + 65536])
        while s.readable():
            got[0] += len(s.recvmsg(1 << 20))
        return got[0] == SIZE

    assert net.run_until(pump, 600)
    c.close()
    s.close()
    net.run_for(1.0)
    link.write_pcap(path)


def make_figures(out_dir: str, fmt: str = "png") -> list[str]:
    """Capture the transfer and draw it with the ``tcpio plot`` command."""
    os.makedirs(out_dir, exist_ok=True)
    pcap = os.path.join(out_dir, "transfer.pcap")
    capture_transfer(pcap)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-m", "tcpio", "plot", pcap, "-o", out_dir,
                    "--format", fmt], check=True, env=env, cwd=ROOT, capture_output=True)
    os.remove(pcap)
    return sorted(os.path.join(out_dir, f) for f in os.listdir(out_dir))


# --- the mkdocs hook ----------------------------------------------------------------

_tmp: tempfile.TemporaryDirectory[str] | None = None


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    global _tmp
    _tmp = tempfile.TemporaryDirectory(prefix="tcpio-docs-")
    for path in make_figures(_tmp.name):
        files.append(File.generated(config, f"img/{os.path.basename(path)}",
                                    abs_src_path=path))
    return files


def on_post_build(config: Any) -> None:
    global _tmp
    if _tmp is not None:
        _tmp.cleanup()
        _tmp = None


if __name__ == "__main__":
    for f in make_figures(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(f, os.path.getsize(f))
