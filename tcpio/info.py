"""``tcpio info``: which build runs, and what the counters mean.

    tcpio info              version, Python, each hot-path module compiled or pure (why)
    tcpio info --counters   every MIB counter with its Linux name and meaning
"""

from __future__ import annotations

import argparse
import platform
import sys
from typing import TextIO

from tcpio import _fast
from tcpio._version import __version__
from tcpio.core.mib import DESCRIPTIONS


def build_summary() -> str:
    """"compiled", "pure (TCPIO_NO_EXTENSIONS=1)", or "partly compiled: ..."."""
    info = _fast.build_info()
    pure = sorted(n for n, v in info.items() if v != "compiled")
    if not pure:
        return "compiled"
    if _fast.NO_EXTENSIONS:
        return "pure (TCPIO_NO_EXTENSIONS=1)"
    if len(pure) == len(info):
        return "pure (compiled modules not importable)"
    return "partly compiled (pure: " + ", ".join(pure) + ")"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--counters", action="store_true",
                   help="list every MIB counter with its Linux name and meaning")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    write = (out or sys.stdout).write
    if args.counters:
        width = max(len(n) for n in DESCRIPTIONS)
        for name in sorted(DESCRIPTIONS):
            write(f"{name:<{width}}  {DESCRIPTIONS[name]}\n")
        return 0
    write(f"tcpio {__version__}: {build_summary()}\n")
    write(f"Python {platform.python_version()} ({platform.python_implementation()}), "
          f"{platform.system()} {platform.release()} {platform.machine()}\n")
    for name, how in _fast.build_info().items():
        write(f"  tcpio._fast.{name:<9} {how}\n")
    return 0
