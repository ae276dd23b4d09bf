"""The passive open and close of one connection on the sans-IO core, counted:
Python function calls per connection (cProfile) and CPU µs per connection,
deterministic (virtual clock, no device, no event loop).

    python benchmarks/bench_accept_calls.py [--conns 2000] [--rounds 5] [--top 20] [--phases]

Each connection, from its own peer port, to one listener (tests/tcp/helpers'
FakeHost and Peer, the core the rule tests drive): SYN -> SYN-ACK
(tcp_v4_conn_request), the third ACK (tcp_check_req -> tcp_v4_syn_recv_sock
-> tcp_create_openreq_child), accept(), the peer's FIN, close() (the FIN-ACK:
tcp_fin's delayed ACK rides on it), the peer's ACK of our FIN (LAST-ACK ->
CLOSE, tcp_done: port and ehash released).  The asyncio glue and the TAP are
bench_conns.py's; this is the core's share, as a count that does not move
with the machine's load.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tcp.helpers import ACK, FIN, LPORT, PEER_ISS, SYN, FakeHost, Peer


def run(conns: int, phase: Callable[[str], None] | None = None) -> None:
    """``phase(name)``, if given, is called as each step begins ("" for the
    test peer's own work)."""
    host = FakeHost()
    ls = host.tcp.socket()
    ls.bind(0, LPORT)
    ls.listen(128)
    for i in range(conns):
        peer = Peer(host, port=20000 + i)
        if phase:
            phase("SYN")
        peer.send(SYN, PEER_ISS, 0)
        if phase:
            phase("")
        synack = peer.recv_one()
        ours = (synack.seq + 1) & 0xFFFFFFFF
        if phase:
            phase("third ACK")
        peer.send(ACK, PEER_ISS + 1, ours)
        if phase:
            phase("accept")
        sk = ls.accept()
        if phase:
            phase("peer's FIN")
        peer.send(ACK | FIN, PEER_ISS + 1, ours)
        if phase:
            phase("close")
        sk.close()
        if phase:
            phase("")
        fin = peer.recv()[-1]      # (a tree that ACKs the FIN at once sent that first)
        assert fin.flags == ACK | FIN and fin.ack == PEER_ISS + 2, fin
        if phase:
            phase("last ACK")
        peer.send(ACK, PEER_ISS + 2, (ours + 1) & 0xFFFFFFFF)
        if phase:
            phase("timers")
        host.advance(host.now + 0.0001)
        if phase:
            phase("")
    assert not host.tcp.connections()[1:], host.tcp.connections()[:3]


def core_calls_by_phase(conns: int) -> dict[str, float]:
    """Calls per connection made inside tcpio (not the test peer's building
    and parsing, nor its fake host's bookkeeping unless tcpio called it),
    per step: a sys.setprofile count of Python and built-in calls whose
    caller chain reaches a tcpio module (compiled code makes none)."""
    counts: dict[str, int] = {}
    current = [""]
    inside: list[bool] = []
    tcpio_dir = str(ROOT / "tcpio") + "/"
    fast_dir = tcpio_dir + "_fast/"      # (the peer builds and parses with these)

    def prof(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            path = frame.f_code.co_filename
            ours = bool(inside and inside[-1]) or (path.startswith(tcpio_dir)
                                                   and not path.startswith(fast_dir))
            inside.append(ours)
            if ours:
                counts[current[0]] = counts.get(current[0], 0) + 1
        elif event == "return":
            if inside:
                inside.pop()
        elif event == "c_call" and inside and inside[-1]:
            counts[current[0]] = counts.get(current[0], 0) + 1

    def phase(name: str) -> None:
        sys.setprofile(None)
        current[0] = name
        if name:
            sys.setprofile(prof)

    try:
        run(conns, phase)
    finally:
        sys.setprofile(None)
    return {name: n / conns for name, n in counts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--phases", action="store_true",
                    help="also count tcpio's own calls per connection, step by step")
    args = ap.parse_args()
    from tcpio import _fast
    build = "compiled" if _fast.is_compiled(_fast.load("tcp_fast")) else "pure"
    run(200)                                    # warm-up
    prof = cProfile.Profile()
    prof.enable()
    run(args.conns)
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    calls = st.total_calls / args.conns          # type: ignore[attr-defined]
    times = []
    for _ in range(args.rounds):
        t0 = time.process_time()
        run(args.conns)
        times.append((time.process_time() - t0) / args.conns * 1e6)
    print(f"{build}: {calls:.1f} Python calls per connection; CPU per connection "
          f"{statistics.median(times):.1f} us (range {min(times):.1f}-{max(times):.1f}, "
          f"{args.rounds} rounds of {args.conns}; the test peer's own work included)")
    if args.phases:
        steps = core_calls_by_phase(args.conns)
        print(f"tcpio's own calls per connection: {sum(steps.values()):.1f} ("
              + ", ".join(f"{name} {n:.1f}" for name, n in steps.items()) + ")")
    if args.top:
        rows = sorted(st.stats.items(), key=lambda kv: -kv[1][1])  # type: ignore[attr-defined]
        for (path, line, name), (_cc, nc, _tt, _ct, _callers) in rows[:args.top]:
            print(f"{nc / args.conns:8.2f}  {path.replace(str(ROOT) + '/', '')}:{line}({name})")


if __name__ == "__main__":
    main()
