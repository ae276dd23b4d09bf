"""The shape of the package (docs/internals.md, "Issue 10 contracts"):

- no runtime import cycle among the modules under ``tcpio/``: an import
  needed only for annotations sits under ``if TYPE_CHECKING:``, and a
  function-local import counts like any other (one that dodges a cycle is
  still a cycle in the design);
- the transports are wired without ``except ImportError``: a host whose TCP
  cannot be imported fails loudly, it is never a host without TCP (that
  behaviour itself: tests/test_suite_guards.py);
- the host/protocol seam (``tcpio.core.protocol``) is what both ``Host`` and
  the TCP tests' ``FakeHost`` provide, and ``FakeHost`` runs the production
  send path (the whole-frame path, not only ip_output).

Each checker is also run on a small bad example, so each test is shown able
to fail.  The checks are our own (ast over the sources); nothing outside the
project is imported.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from tcp.helpers import ACK, FakeHost, active_open

import tcpio
from tcpio.core.host import Host
from tcpio.core.protocol import NetHost

PACKAGE = Path(tcpio.__file__).parent


# ----- runtime import cycles ---------------------------------------------------------------

def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of every node under an ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.body:
                skip.update(id(n) for n in ast.walk(stmt))
    return skip


def runtime_imports(root: Path) -> dict[str, set[str]]:
    """module -> the modules of the same package it imports at run time."""
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_nodes(tree)
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")
                    up = up[:len(up) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                # ``from pkg import name``: name may be a submodule
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                # A package's own __init__ runs first anyway: not an edge.
                if target and target != mod and not mod.startswith(target + "."):
                    edges[mod].add(target)
    return edges


def import_cycles(root: Path) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    edges = runtime_imports(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return cycles


def test_no_module_under_tcpio_is_in_a_runtime_import_cycle():
    assert import_cycles(PACKAGE) == []


def _write_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def test_the_cycle_check_finds_a_cycle_and_ignores_type_checking_imports(tmp_path):
    root = _write_package(tmp_path, {
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    from . import a\n",          # lazy: still a cycle
        "c.py": "from .sub.d import X\n",
        "sub/__init__.py": "",
        "sub/d.py": ("from typing import TYPE_CHECKING\nX = 1\n"
                     "if TYPE_CHECKING:\n    from ..c import Y\n"),
    })
    assert import_cycles(root) == [["pkg.a", "pkg.b"]]


# ----- protocol wiring: no except ImportError ----------------------------------------------

def import_error_handlers(source: str) -> list[int]:
    """Lines of the ``except`` clauses that catch ImportError or ModuleNotFoundError."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ExceptHandler) or node.type is None:
            continue
        caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
        names = {ast.unparse(c).rpartition(".")[2] for c in caught}
        if names & {"ImportError", "ModuleNotFoundError"}:
            lines.append(node.lineno)
    return lines


def test_no_except_import_error_in_the_core():
    """The core (host, af_inet, the protocols) never treats a module that fails
    to import as optional; tcpio._fast's compiled-or-twin choice is outside it."""
    found = {str(p.relative_to(PACKAGE)): import_error_handlers(p.read_text())
             for p in (PACKAGE / "core").rglob("*.py")}
    assert {p: lines for p, lines in found.items() if lines} == {}


def test_the_import_error_check_finds_a_guarded_import():
    source = "try:\n    import x\nexcept (OSError, ImportError):\n    x = None\n"
    assert import_error_handlers(source) == [3]
    assert import_error_handlers("try:\n    pass\nexcept OSError:\n    pass\n") == []


# ----- the seam ------------------------------------------------------------------------------

def missing_members(obj: object, proto: type) -> list[str]:
    """The members of the typing Protocol ``proto`` (attributes and methods)
    that ``obj`` lacks."""
    names = set(getattr(proto, "__annotations__", {}))
    names |= {n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")}
    return sorted(n for n in names if not hasattr(obj, n))


def test_host_and_the_tests_fake_host_both_provide_net_host():
    assert missing_members(Host(seed=1), NetHost) == []
    assert missing_members(FakeHost(), NetHost) == []


def test_the_seam_check_finds_a_missing_member():
    class Partial:
        now = 0.0

        def route_lookup(self, dst: int) -> None:
            pass

    missing = missing_members(Partial(), NetHost)
    assert "now" not in missing and "route_lookup" not in missing
    assert {"ip_output", "ip_tcp_path", "tx_queue", "mib"} <= set(missing)


@pytest.mark.parametrize("size", [100, 5000])
def test_fake_host_sends_a_connections_data_as_whole_frames(size):
    """No isinstance(host, Host) in TCP any more: on FakeHost a connection's
    data takes the whole-frame path (one compiled call per segment, or the
    send loop for a burst), which counts OutRequests; ip_output's general path
    on FakeHost does not."""
    conn = active_open()
    host = conn.host
    before = host.mib["OutRequests"]
    conn.sk.sendmsg(b"x" * size)
    segs = conn.recv()
    assert b"".join(s.payload for s in segs) == b"x" * size
    assert all(s.flags & ACK for s in segs)
    assert host.mib["OutRequests"] - before == len(segs)
