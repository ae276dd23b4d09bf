"""Run google/packetdrill's generic TCP scripts through tcpio's runner and
print the markdown table of docs/packetdrill.md.

    python tools/packetdrill_upstream.py PATH [--markdown]

PATH is a checkout of google/packetdrill (or any directory holding
gtests/net/tcp/), or its bare git directory (the scripts are then extracted
with ``git archive`` to a temporary directory).  Nothing is copied into this
repository: the scripts are GPL-licensed and stay where they are.

Each script runs twice: strictly (the verdict), and leniently (PSH not
compared, %{ }% TCP_INFO blocks skipped) to show what else a script would
find once its first difference is out of the way.  The "why" column is
hand-written below (CLASSES) from reading each failure; a script the table
does not know yet is listed as "unclassified".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

# The checkout this tool is in, not an installed tcpio: run as
# "python tools/packetdrill_upstream.py", sys.path[0] is tools/.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tcpio.packetdrill.runner import Result, run_file  # noqa: E402

CATEGORIES = ["blocking", "close", "cwnd_moderation", "fast_recovery", "fast_retransmit",
              "inq", "limited_transmit", "mss", "nagle", "notsent_lowat", "sack", "shutdown",
              "slow_start", "syscall_bad_arg", "ts_recent", "user_timeout", "cubic",
              "validate"]

RACK_TIMER = ("tcpio deviation, not reproduced: RACK's reordering timer fires rack.rtt + "
              "reo_wnd (min_rtt/4 = 25 ms) + TCP_TIMEOUT_MIN (2 ms) after the send, as "
              "tcp_rack_detect_loss and tcp_rack_mark_lost compute it with 1 ms jiffies; "
              "the script wants 40 +- 5 ms, which a kernel with HZ=250 would give (25 ms "
              "rounded up to 7 jiffies + 2 jiffies = 36 ms): a timer granularity tcpio "
              "does not model")
REORDERING = ("unsupported feature: adaptive reordering degree. Linux raises tp->reordering "
              "(tcpi_reordering) from the reordering distance a SACK or a spurious "
              "retransmission shows (tcp_check_sack_reordering, in segments); tcpio's "
              "RACK counts reordering events (reord_seen) but its tcpi_reordering moves "
              "differently")
SKB_PSH = ("tcpio deviation: PSH where Linux's write queue skb ends. tcp_mark_push marks "
           "the skb a write (or forced_push, every max_window/2 bytes) ends in, and data "
           "later appended to that skb moves the mark to its new end; tcpio keeps only "
           "the end of the last write (pushed_seq) and bursts (half the cwnd, "
           "tcp_tso_autosize), not the skbs tcp_sendmsg built")
TRUESIZE = ("tcpio deviation: the send buffer.  Linux checks SO_SNDBUF only before a "
            "new skb (sk_stream_memory_free) and counts skb truesize (payload plus "
            "per-skb overhead), so a write may overshoot it by most of an skb, and "
            "wakes a writer only when the free space is half of what is queued "
            "(sk_stream_write_space); tcpio counts payload bytes exactly")

# script -> why its first difference happens (and what the lenient run adds)
CLASSES: dict[str, str] = {
    "blocking/blocking-write.pkt":
        TRUESIZE + ": the write() blocked on a full send buffer returns after the "
        "second ACK (0.4 s), Linux's after the third (0.5 s)",
    "notsent_lowat/notsent-lowat-default.pkt":
        TRUESIZE + ": the 59000-byte write takes 50000 (tcpio's buffer), Linux's 58000 "
        "(three 16000-byte skbs past the 10000 sent); then POLLOUT depends on "
        "tcp_sndbuf_expand's truesize-based growth",
    "fast_retransmit/fr-4pkt-fack-last-mss.pkt": RACK_TIMER + " (0.227 s, not 0.240 s)",
    "cubic/cubic-rto-ss-ca-cwnd-bump.pkt": SKB_PSH + " (line 88: a PSH at 20001, the end "
        "of a forced_push skb that grew); passes leniently",
    "cubic/cubic-rack-reo-timeout-retrans-failed-incoming-data.pkt":
        REORDERING + " (tcpi_reordering 7, not 10); then a qdisc that drops",
}


def script_dir(path: str) -> tuple[str, tempfile.TemporaryDirectory[str] | None]:
    """The directory holding gtests/net/tcp, extracting a bare git dir if need be."""
    if os.path.isdir(os.path.join(path, "gtests", "net", "tcp")):
        return path, None
    tmp = tempfile.TemporaryDirectory(prefix="packetdrill-")
    archive = subprocess.run(["git", "--git-dir", path, "archive", "HEAD", "gtests/net"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", tmp.name], input=archive, check=True)
    return tmp.name, tmp


def scripts(root: str) -> list[str]:
    out = []
    for cat in CATEGORIES:
        d = os.path.join(root, "gtests", "net", "tcp", cat)
        if os.path.isdir(d):
            out += sorted(os.path.join(cat, f) for f in os.listdir(d) if f.endswith(".pkt"))
    return out


def verdict(res: Result) -> str:
    if res.passed:
        return "pass"
    where = f"line {res.line}: " if res.line else ""
    return f"{res.status}: {where}{res.message}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", help="google/packetdrill checkout or bare git directory")
    args = p.parse_args(argv)
    root, tmp = script_dir(args.path)
    try:
        base = os.path.join(root, "gtests", "net", "tcp")
        t0 = time.perf_counter()
        rows = []
        for rel in scripts(root):
            strict = run_file(os.path.join(base, rel))
            lenient = run_file(os.path.join(base, rel), lenient=frozenset({"psh", "code"}))
            rows.append((rel, strict, lenient))
        wall = time.perf_counter() - t0
    finally:
        if tmp is not None:
            tmp.cleanup()
    passed = sum(r[1].passed for r in rows)
    unsupported = sum(r[1].status == "unsupported" for r in rows)
    lenient_passed = sum(r[2].passed for r in rows)
    print("| script | result | first difference | lenient (no PSH, no %{ }%) | why |")
    print("|---|---|---|---|---|")
    for rel, strict, lenient in rows:
        if strict.passed:
            why = ""
        elif strict.status == "unsupported":
            why = f"unsupported feature: {strict.message}"
        else:
            why = CLASSES.get(rel, "unclassified")
        result = "pass" if strict.passed else strict.status
        cell = "" if strict.passed else verdict(strict).replace("|", "\\|")
        print(f"| {rel} | {result} | {cell} | {verdict(lenient).replace('|', chr(92) + '|')} "
              f"| {why} |")
    print()
    print(f"{passed} of {len(rows)} pass ({unsupported} unsupported); leniently "
          f"{lenient_passed}; both runs of all scripts took {wall:.1f} s of wall time.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
