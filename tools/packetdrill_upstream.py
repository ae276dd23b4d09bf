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

from tcpio.packetdrill.runner import Result, run_file

CATEGORIES = ["blocking", "close", "cwnd_moderation", "fast_recovery", "fast_retransmit",
              "inq", "limited_transmit", "mss", "nagle", "notsent_lowat", "sack", "shutdown",
              "slow_start", "syscall_bad_arg", "ts_recent", "user_timeout", "cubic",
              "validate"]

PSH = ("tcpio deviation: PSH placement. Linux's bulk writes carry PSH on every burst the "
       "scripts show (tcp_sendmsg's tcp_mark_push at the end of each write and every "
       "max_window/2 bytes, forced_push); tcpio sets PSH only on the segment that empties "
       "the unsent queue")
PSH_RTX = ("tcpio deviation: a retransmission keeps the PSH of the data it resends in Linux "
           "(tcp_retransmit_skb; a split head has none); tcpio sets PSH on every "
           "retransmission (tests/packetdrill/deviations/retransmit-keeps-psh.pkt)")
RACK = ("unsupported feature: RACK loss detection (net.ipv4.tcp_recovery=1): Linux marks "
        "a segment lost when a later one is SACKed and a reordering window passes; tcpio "
        "uses RFC 6675 dupthresh (3 segments SACKed above)")
TLP = ("unsupported feature: Tail Loss Probe (net.ipv4.tcp_early_retrans=4, RFC 8985): "
       "Linux probes after ~2 RTT; tcpio waits for the RTO")

APP_LIMITED = ("tcpio deviation: slow start stops growing when application-limited. Linux "
               "grows cwnd while cwnd < 2 * max_packets_out (tcp_is_cwnd_limited); tcpio "
               "compares with the packets in flight before each ACK, so cwnd stops at 14, "
               "not 20 (tests/packetdrill/deviations/slow-start-app-limited-growth.pkt)")

# script -> (first failure, and what the lenient run adds)
CLASSES: dict[str, str] = {
    "blocking/blocking-write.pkt":
        "tcpio deviation: slow-start growth. tcpio's CUBIC applies HyStart++'s per-ACK cap "
        "(RFC 9406, L = 8 segments) so one ACK of 10 segments grows cwnd to 18, not 20 "
        "(Linux tcp_slow_start: cwnd += acked); the peer then ACKs data tcpio never sent "
        "and the write stalls (tests/packetdrill/deviations/slow-start-growth.pkt)",
    "fast_recovery/prr-ss-10pkt-lost-1.pkt": PSH_RTX,
    "fast_recovery/prr-ss-30pkt-lost-1_4-11_16.pkt": PSH + "; then " + RACK,
    "fast_recovery/prr-ss-30pkt-lost1_4.pkt": PSH_RTX,
    "fast_recovery/prr-ss-ack-below-snd_una-cubic.pkt": PSH_RTX + "; then " + RACK,
    "fast_retransmit/fr-4pkt-fack-last-byte.pkt": TLP,
    "fast_retransmit/fr-4pkt-fack-last-mss.pkt": PSH_RTX + "; then " + RACK,
    "fast_retransmit/fr-4pkt-sack.pkt": PSH_RTX,
    "fast_retransmit/fr-4pkt.pkt": PSH_RTX,
    "limited_transmit/limited-transmit-no-sack.pkt":
        PSH + "; then tcpio deviation: after limited transmit, the ACK that shows "
        "reordering (undo to Open) lets 3 new segments out, Linux 2 (cwnd 11, 9 in flight)",
    "limited_transmit/limited-transmit-sack.pkt":
        PSH + "; then the same limited-transmit undo difference",
    "nagle/https_client.pkt": PSH,
    "sack/sack-shift-sacked-2-6-8-3-9-nofack.pkt": PSH_RTX + "; then " + RACK,
    "sack/sack-shift-sacked-7-3-4-8-9-fack.pkt": PSH_RTX + "; then " + RACK,
    "sack/sack-shift-sacked-7-5-6-8-9-fack.pkt": PSH_RTX + "; then " + RACK,
    "shutdown/shutdown-rdwr-send-queue-ack-close.pkt": PSH + "; then " + TLP,
    "shutdown/shutdown-rdwr-write-queue-close.pkt":
        "tcpio deviation: a lone FIN waits for cwnd in tcpio; Linux sends it at once "
        "(tcp_cwnd_test: 'Don't be strict about the congestion window for the final FIN') "
        "(tests/packetdrill/deviations/fin-ignores-cwnd.pkt)",
    "slow_start/slow-start-ack-per-1pkt.pkt": PSH,
    "slow_start/slow-start-ack-per-2pkt.pkt": PSH,
    "slow_start/slow-start-ack-per-4pkt.pkt": PSH,
    "slow_start/slow-start-after-idle.pkt": PSH,
    "slow_start/slow-start-after-win-update.pkt": PSH,
    "ts_recent/invalid_ack.pkt":
        "tcpio deviation: a segment acking data never sent gets an ACK from tcpio "
        "(RFC 9293 3.10.7.4); Linux drops it silently (tcp_ack < 0 -> discard), so "
        "the script's next expected ACK comes second "
        "(tests/packetdrill/deviations/ack-of-unsent-data.pkt)",
    "user_timeout/user_timeout.pkt": TLP,
    "mss/mss-setsockopt-tcp_maxseg-client.pkt": PSH,
    "mss/mss-setsockopt-tcp_maxseg-server.pkt": PSH,
    "slow_start/slow-start-app-limited.pkt": APP_LIMITED,
    "slow_start/slow-start-app-limited-9-packets-out.pkt": APP_LIMITED,
    "cubic/cubic-rack-reo-timeout-retrans-failed-incoming-data.pkt":
        "unsupported feature: adaptive reordering degree (tp->reordering grows with the "
        "reordering RACK sees; tcpio's dupthresh is fixed at 3: tcpi_reordering 3, not 10)",
    "cubic/cubic-rto-ss-ca-cwnd-bump.pkt": TLP,
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
