"""Backtick shell commands, read for the sysctls they set and never executed.

Upstream scripts start with `../common/defaults.sh` (a list of ``sysctl -q
net.ipv4.tcp_...=...`` lines) and some carry inline ``sysctl`` commands.
Running them would change the host's kernel, so instead ``interpret`` reads
them: ``sysctl [-q] [-w] name=value ...``, ``echo V > /proc/sys/...``,
``set_sysctls.py /proc/sys/...=V`` and ``*.sh`` scripts (followed, relative to
the script's directory) give sysctl assignments; commands that only touch the
test device (``tc``, ``ip tcp_metrics``, ``ethtool``) or restore state are
ignored; anything else is reported as an unknown command.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field

# Commands about the packetdrill tun device or the test harness itself: no
# effect on a tcpio stack, so nothing to apply.
IGNORED_COMMANDS = {"tc", "ip", "ethtool", "sleep", "true", ":", "cat", "nstat", "ss"}


@dataclass
class ShellEffects:
    sysctls: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def _arith(expr: str) -> str:
    """$((...)) with integers and + - * / % ( ) only."""
    if not re.fullmatch(r"[0-9+\-*/%() \t]+", expr):
        raise ValueError(f"unsupported shell arithmetic $(({expr}))")
    tokens = re.findall(r"\d+|[-+*/%()]", expr)
    pos = 0

    def atom() -> int:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "(":
            v = add()
            pos += 1
            return v
        if tok == "-":
            return -atom()
        return int(tok)

    def mul() -> int:
        nonlocal pos
        v = atom()
        while pos < len(tokens) and tokens[pos] in "*/%":
            op = tokens[pos]
            pos += 1
            r = atom()
            v = v * r if op == "*" else v // r if op == "/" else v % r
        return v

    def add() -> int:
        nonlocal pos
        v = mul()
        while pos < len(tokens) and tokens[pos] in "+-":
            op = tokens[pos]
            pos += 1
            r = mul()
            v = v + r if op == "+" else v - r
        return v

    return str(add())


def expand(text: str, env: dict[str, str] | None = None) -> str:
    text = re.sub(r"\$\(\((.*?)\)\)", lambda m: _arith(m.group(1)), text)
    env = env or {}
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), text)


def _proc_to_sysctl(path: str) -> str:
    return path.removeprefix("/proc/sys/").replace("/", ".")


def interpret(text: str, script_dir: str, effects: ShellEffects | None = None,
              env: dict[str, str] | None = None, depth: int = 0) -> ShellEffects:
    """Read a command (or a whole shell script) for its sysctl assignments."""
    fx = effects if effects is not None else ShellEffects()
    # Line continuations, then one command per line / ';' / '&&' / '||'.
    text = text.replace("\\\n", " ")
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        for cmd in re.split(r";|&&|\|\|", line):
            cmd = cmd.strip()
            if cmd:
                _one(cmd, script_dir, fx, env or {}, depth)
    return fx


def _one(cmd: str, script_dir: str, fx: ShellEffects, env: dict[str, str], depth: int) -> None:
    try:
        words = shlex.split(expand(cmd, env), comments=True)
    except ValueError as e:
        fx.unknown.append(f"{cmd} ({e})")
        return
    # Drop redirections: "> /dev/null", "2>&1", "2>/dev/null".
    clean: list[str] = []
    skip = False
    redirect_to: str | None = None
    for w in words:
        if skip:
            skip = False
            if redirect_to is None:
                redirect_to = w
            continue
        if w in (">", ">>", "2>", "1>"):
            skip = True
            continue
        if re.fullmatch(r"\d?>&\d|\d?>/dev/null|&>/dev/null", w):
            continue
        m = re.fullmatch(r"\d?>>?(\S+)", w)
        if m:
            if redirect_to is None:
                redirect_to = m.group(1)
            continue
        clean.append(w)
    if not clean:
        return
    prog = os.path.basename(clean[0])
    if prog == "sysctl":
        for w in clean[1:]:
            if w.startswith("-"):
                continue
            name, eq, value = w.partition("=")
            if eq:
                fx.sysctls.append((name, value))
        return
    if prog == "echo" and redirect_to and redirect_to.startswith("/proc/sys/"):
        fx.sysctls.append((_proc_to_sysctl(redirect_to), " ".join(clean[1:])))
        return
    if prog == "echo" and redirect_to and redirect_to.startswith("/sys/module/"):
        # a module parameter, named like a sysctl: module.tcp_cubic.hystart_detect
        mod, _, param = redirect_to.removeprefix("/sys/module/").partition("/parameters/")
        fx.sysctls.append((f"module.{mod}.{param}", " ".join(clean[1:])))
        return
    if prog == "set_sysctls.py":
        for w in clean[1:]:
            name, eq, value = w.partition("=")
            if eq and name.startswith("/proc/sys/"):
                fx.sysctls.append((_proc_to_sysctl(name), value))
        return
    if prog in IGNORED_COMMANDS or clean[0].startswith("/tmp/sysctl_restore"):
        fx.ignored.append(" ".join(clean))
        return
    if clean[0].endswith(".sh"):
        path = os.path.normpath(clean[0] if os.path.isabs(clean[0])
                                else os.path.join(script_dir, clean[0]))
        if depth < 8 and os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                interpret(f.read(), os.path.dirname(path), fx, env, depth + 1)
            return
        fx.unknown.append(f"{cmd} (script not found: {path})")
        return
    fx.unknown.append(cmd)
