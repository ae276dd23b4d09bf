"""A packetdrill runner: Linux's TCP test scripts against tcpio on virtual time.

    from tcpio.packetdrill import parse, run_file
    result = run_file("tests/packetdrill/handshake.pkt")
    print(result.report())

``parser`` reads packetdrill's script language into ``ast`` dataclasses;
``runner`` plays the script's remote end against a fresh sans-IO Host;
``shell`` reads backtick commands for their sysctls (never runs them).
"""

from __future__ import annotations

from .lexer import ScriptError
from .parser import parse, parse_file
from .runner import Result, Runner, run_file

__all__ = ["Result", "Runner", "ScriptError", "parse", "parse_file", "run_file"]
