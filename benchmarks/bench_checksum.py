"""Checksum and header-parse throughput: plain C vs compiled Cython vs the pure twin.

    python benchmarks/bench_checksum.py [--min-time 0.2] [--repeat 5]

The C yardstick is benchmarks/csum.c, compiled here with ``cc -O2 -shared -fPIC``
into a temporary directory and called through ctypes.  Two C numbers are shown:
"via ctypes" pays a Python->ctypes call per sum (like the Cython call does, but
ctypes' call is slower; its fixed cost is printed), "in C loop" times the sum
repeated inside C (no call cost at all).  The requirement for tcpio is
Cython >= 0.9x plain C on a 64 KiB buffer when called from Python.

Timings are the best of ``--repeat`` rounds; a round times every variant once
for about ``--min-time`` seconds, so all variants see the same background load
(the machine is shared: read the ratios, not the absolute numbers).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tcpio import _fast

SIZES = (65536, 1500)


Run = Callable[[int], object]   # run(k) performs the operation k times


def calls(fn: Callable[[], object]) -> Run:
    """A Run that calls ``fn`` from Python k times."""
    def run(k: int) -> None:
        for _ in range(k):
            fn()
    return run


def calibrate(run: Run, min_time: float) -> int:
    """How many operations make one timed run last about ``min_time`` seconds."""
    k = 1
    while True:
        t0 = time.perf_counter()
        run(k)
        dt = time.perf_counter() - t0
        if dt >= min_time / 8:
            return max(1, int(k * min_time / dt))
        k *= 4


def interleaved_best(runs: dict[str, Run], min_time: float, repeat: int) -> dict[str, float]:
    """Seconds per operation for each run: the best of ``repeat`` rounds.

    Each round times every run once, one after the other, so all of them see
    the same background load (the machine is shared); a ratio between two runs
    is then much steadier than either absolute number.
    """
    counts = {name: calibrate(run, min_time) for name, run in runs.items()}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            k = counts[name]
            t0 = time.perf_counter()
            run(k)
            best[name] = min(best[name], (time.perf_counter() - t0) / k)
    return best


class CCsum:
    """benchmarks/csum.c compiled at run time, called through ctypes."""

    def __init__(self, tmp: str) -> None:
        cc = os.environ.get("CC", "cc")
        so = os.path.join(tmp, "csum.so")
        self.cmd = [cc, "-O2", "-shared", "-fPIC", "-o", so, str(HERE / "csum.c")]
        subprocess.run(self.cmd, check=True)
        lib = ctypes.CDLL(so)
        for name in ("csum_partial", "csum_partial_wide"):
            f = getattr(lib, name)
            f.restype = ctypes.c_uint32
            f.argtypes = [ctypes.c_char_p, ctypes.c_size_t]  # bytes pass by pointer, no copy
        lib.csum_repeat.restype = ctypes.c_uint32
        lib.csum_repeat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                                    ctypes.c_size_t]
        self.lib = lib

    def in_loop(self, wide: int, data: bytes) -> Run:
        """A Run whose k sums all happen inside C (no Python call per sum)."""
        n = len(data)
        return lambda k: self.lib.csum_repeat(wide, data, n, k)


def gbps(n: int, t: float) -> str:
    return f"{n / t / 1e9:8.2f} GB/s"


PLAIN_CTYPES = "plain C -O2, via ctypes (incl. call overhead)"
PLAIN_LOOP = "plain C -O2, in C loop (no call overhead)"
WIDE_CTYPES = "C -O2, Cython's kernel, via ctypes"
WIDE_LOOP = "C -O2, Cython's kernel, in C loop"
CYTHON = "Cython tcpio._fast.checksum, from Python"
PURE = "pure twin checksum_py, from Python"


def bench_checksum(args: argparse.Namespace, c: CCsum | None) -> None:
    pure = _fast.load_pure("checksum")
    compiled = _fast.load_compiled("checksum")
    empty = b""
    overhead: dict[str, Run] = {}
    if c is not None:
        overhead["ctypes"] = calls(lambda: c.lib.csum_partial(empty, 0))
    if compiled is not None:
        overhead["Cython"] = calls(lambda: compiled.csum_partial(empty))
    for name, t in interleaved_best(overhead, args.min_time, args.repeat).items():
        print(f"{name} call overhead (empty buffer): {t * 1e9:.0f} ns per call")
    print()
    header = f"{'size':>7}  {'implementation':<44} {'throughput':>13} {'per call':>11}"
    print(header)
    print("-" * len(header))
    results: dict[int, dict[str, float]] = {}
    for n in SIZES:
        data = os.urandom(n)
        expect = pure.csum_partial(data)
        runs: dict[str, Run] = {}
        if c is not None:
            assert c.lib.csum_partial(data, n) == expect, "C csum disagrees with the twin"
            assert c.lib.csum_partial_wide(data, n) == expect
            runs[PLAIN_CTYPES] = calls(lambda d=data, n=n: c.lib.csum_partial(d, n))
            runs[PLAIN_LOOP] = c.in_loop(0, data)
            runs[WIDE_CTYPES] = calls(lambda d=data, n=n: c.lib.csum_partial_wide(d, n))
            runs[WIDE_LOOP] = c.in_loop(1, data)
        if compiled is not None:
            assert compiled.csum_partial(data) == expect, "Cython csum disagrees with the twin"
            runs[CYTHON] = calls(lambda d=data: compiled.csum_partial(d))
        runs[PURE] = calls(lambda d=data: pure.csum_partial(d))
        res = results[n] = interleaved_best(runs, args.min_time, args.repeat)
        for name, t in res.items():
            print(f"{n:>7}  {name:<44} {gbps(n, t):>13} {t * 1e6:8.2f} us")
        print()
    if c is None or compiled is None:
        return
    print("speed of Cython (called from Python) relative to:")
    for n, res in results.items():
        cy = res[CYTHON]
        print(f"{n:>7} B: plain C via ctypes {res[PLAIN_CTYPES] / cy:5.2f}x | "
              f"plain C in loop {res[PLAIN_LOOP] / cy:5.2f}x | "
              f"same kernel in C via ctypes {res[WIDE_CTYPES] / cy:5.2f}x | "
              f"in loop {res[WIDE_LOOP] / cy:5.2f}x | pure twin {res[PURE] / cy:5.1f}x")
    res = results[65536]
    ratio = min(res[PLAIN_CTYPES], res[PLAIN_LOOP]) / res[CYTHON]
    verdict = "PASS" if ratio >= 0.9 else "FAIL"
    print(f"requirement (64 KiB, called from Python, Cython >= 0.9x plain C, "
          f"even against C without the ctypes call cost): {ratio:.2f}x {verdict}")


def sample_packets() -> dict[str, bytes]:
    """Realistic headers: a data segment with timestamps, a SYN with every option."""
    w = _fast.load_pure("wire")
    src, dst = 0x0A000001, 0x0A000002
    data_seg = w.build_tcp(src, dst, 40000, 80, 1000, 2000, w.ACK | w.PSH, 502,
                           w.TcpOptions(ts_val=123456, ts_ecr=654321), b"x" * 1448)
    syn = w.build_tcp(src, dst, 40000, 80, 1000, 0, w.SYN, 64240,
                      w.TcpOptions(mss=1460, wscale=7, sack_ok=True, ts_val=1, ts_ecr=0))
    ip = bytearray(20)
    w.build_ipv4(ip, 0, w.IPv4Header(total_length=20 + len(data_seg), ident=7, df=True,
                                     proto=6, src=src, dst=dst))
    return {"ipv4": bytes(ip) + data_seg, "tcp_ts": data_seg, "tcp_syn": syn}


def bench_parse(args: argparse.Namespace) -> None:
    pkts = sample_packets()
    mods = [("pure", _fast.load_pure("wire"))]
    compiled = _fast.load_compiled("wire")
    if compiled is not None:
        mods.append(("Cython", compiled))
    cases: list[tuple[str, str, Callable]] = [
        ("parse_ipv4 (20 B header)", "ipv4", lambda m, b: m.parse_ipv4(b)),
        ("parse_tcp (data seg, timestamps)", "tcp_ts", lambda m, b: m.parse_tcp(b)),
        ("parse_tcp (SYN, MSS+WS+SACK_OK+TS)", "tcp_syn", lambda m, b: m.parse_tcp(b)),
        ("parse_tcp from memoryview slice", "ipv4", lambda m, b: m.parse_tcp(b, 20)),
    ]
    print()
    header = f"{'operation':<36}" + "".join(f"{name:>16}" for name, _ in mods)
    if len(mods) == 2:
        header += f"{'speedup':>10}"
    print(header)
    print("-" * len(header))
    runs: dict[tuple[str, str], Run] = {}
    for label, key, op in cases:
        buf: bytes | memoryview = pkts[key]
        if "memoryview" in label:
            buf = memoryview(pkts[key])
        for name, m in mods:
            runs[(label, name)] = calls(lambda m=m, buf=buf, op=op: op(m, buf))
    best = interleaved_best(runs, args.min_time, args.repeat)  # type: ignore[arg-type]
    for label, _, _ in cases:
        rates = [1 / best[(label, name)] for name, _ in mods]
        line = f"{label:<36}" + "".join(f"{r / 1e6:12.2f} M/s" for r in rates)
        if len(rates) == 2:
            line += f"{rates[1] / rates[0]:9.1f}x"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per timing run")
    ap.add_argument("--repeat", type=int, default=5, help="timing runs (best is kept)")
    args = ap.parse_args()

    print("$ " + shlex.join([os.path.basename(sys.executable)] + sys.argv))
    taskset = ""
    if hasattr(os, "sched_getaffinity"):
        taskset = f", CPU affinity {sorted(os.sched_getaffinity(0))}"
    print(f"Python {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs{taskset}")
    compiled = _fast.load_compiled("checksum")
    if compiled is None:
        print("NOTE: tcpio._fast.checksum is not built: "
              "run `python setup.py build_ext --inplace` for the Cython rows")
    c = None
    with tempfile.TemporaryDirectory(prefix="tcpio-bench-") as tmp:
        if shutil.which(os.environ.get("CC", "cc")):
            c = CCsum(tmp)
            print("C yardstick: $ " + shlex.join(c.cmd))
        else:
            print("NOTE: no C compiler: plain C rows skipped")
        print("\n== RFC 1071 checksum (csum_partial) ==")
        bench_checksum(args, c)
    print("\n== header parsing (calls per second) ==")
    bench_parse(args)


if __name__ == "__main__":
    main()
