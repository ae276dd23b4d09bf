"""The command line: run scripts, print packetdrill-style results, exit 0 iff all pass."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from .runner import Result, run_file


def build_parser(prog: str = "tcpio packetdrill") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Run packetdrill scripts against tcpio on virtual time "
        "(shell commands in backticks are read for their sysctls, never executed).")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scripts", nargs="+", metavar="SCRIPT", help="packetdrill .pkt files")
    p.add_argument("-D", "--define", action="append", default=[], metavar="NAME=VALUE",
                   help="define a symbol, as packetdrill's -D")
    p.add_argument("--tolerance_usecs", type=int, default=None,
                   help="timing tolerance (default 4000, or the script's)")
    p.add_argument("--lenient", default="", metavar="psh,code",
                   help="diagnostics only: do not compare PSH (psh), skip %%{ }%% blocks "
                   "(code); a lenient pass is not a pass of the script")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also print the notes (sysctls not applied, ignored segments)")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    defines: dict[str, str] = {}
    for d in args.define:
        name, _, value = d.partition("=")
        defines[name] = value
    overrides: list[tuple[str, str | None]] = []
    if args.tolerance_usecs is not None:
        overrides.append(("tolerance_usecs", str(args.tolerance_usecs)))
    results: list[Result] = []
    for path in args.scripts:
        lenient = frozenset(x for x in args.lenient.split(",") if x)
        res = run_file(path, defines, overrides, lenient)
        results.append(res)
        print(res.report(), file=out)
        if args.verbose:
            for note in res.notes:
                print(f"    note: {note}", file=out)
    passed = sum(r.passed for r in results)
    unsupported = sum(r.status == "unsupported" for r in results)
    failed = len(results) - passed
    extra = f" ({unsupported} unsupported)" if unsupported else ""
    print(f"{passed} passed, {failed} failed{extra}", file=out)
    return 0 if failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    return run(build_parser("python -m tcpio.packetdrill").parse_args(argv))
