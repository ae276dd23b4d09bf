"""pytest plugin for tools/mutate.py (loaded with ``-p mutate_plugin``, tools/ on sys.path).

Two jobs, chosen by environment variables the driver sets:

- ``TCPIO_MUTANT=<path>:<index>:<key>``: load module ``<path>`` with mutant
  ``<index>`` applied (an import hook in front of the normal finders, so every
  importer of the module, including the ones a test imports indirectly, sees
  the mutant).  The key is checked so that a driver and a plugin that disagree
  about the enumeration fail loudly instead of testing the wrong mutant.
- ``TCPIO_MUTATE_COLLECT=<json file>``: measure line coverage of ``tcpio/``
  with one coverage context per test, and write which tests execute each line
  (and how long each test took) to that file.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutate_ops import enumerate_mutants, mutated_tree  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def is_pure_mode(path: str) -> bool:
    """A tcpio/_fast source compiled and also run as it is (tcpio._fast.PURE_MODE):
    a ``.py`` with its augmenting ``.pxd`` beside it, as setup.py finds them.
    Interpreted, ``syn_fast.py`` is the module ``tcpio._fast.syn_fast_py``, and
    that is the build mutants run on.  (Read off the tree rather than
    tcpio._fast.PURE_MODE: importing tcpio here would import the module before
    its mutant is in place.)"""
    rel = Path(path)
    return (rel.parts[:2] == ("tcpio", "_fast") and rel.suffix == ".py"
            and (ROOT / rel.with_suffix(".pxd")).exists())


def module_name(path: str) -> str:
    rel = Path(path).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    if is_pure_mode(path):
        parts[-1] += "_py"
    return ".".join(parts)


class _MutantLoader(importlib.abc.Loader):
    def __init__(self, path: Path, index: int) -> None:
        self.path = path
        self.index = index

    def create_module(self, spec):  # default module creation
        return None

    def exec_module(self, module) -> None:
        global _mutant_loaded
        _mutant_loaded = True
        source = self.path.read_text()
        code = compile(mutated_tree(source, self.index), str(self.path), "exec")
        exec(code, module.__dict__)


class _MutantFinder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, path: Path, index: int) -> None:
        self.name = name
        self.path = path
        self.index = index

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(
            fullname, self.path, loader=_MutantLoader(self.path, self.index))


def _install_mutant(spec: str) -> None:
    path, index, key = spec.split(":", 2)
    i = int(index)
    full = ROOT / path
    mutants = enumerate_mutants(full.read_text())
    if i >= len(mutants) or mutants[i].key != key:
        raise SystemExit(f"mutate_plugin: mutant {i} of {path} is not {key}: "
                         "the source changed since the mutants were listed")
    name = module_name(path)
    if name in sys.modules:
        raise SystemExit(f"mutate_plugin: {name} was imported before the plugin")
    sys.meta_path.insert(0, _MutantFinder(name, full, i))


_mutant = os.environ.get("TCPIO_MUTANT")
_mutant_loaded = False      # set by _MutantLoader: the mutant really ran
if _mutant:
    _install_mutant(_mutant)


def pytest_sessionfinish(session, exitstatus) -> None:
    """A mutant whose module was never imported under its name here has not
    been tested: the tests that cover its line import the module, so this is
    the tool's fault (a module run under another name, as the pure-mode
    sources are): say so, and exit as an internal error, which the driver
    counts as 'error' and not as a survivor."""
    if _mutant and not _mutant_loaded and exitstatus == 0:
        print(f"\nmutate_plugin: {_mutant.split(':', 1)[0]} was never imported as "
              f"{module_name(_mutant.split(':', 1)[0])}: the mutant did not run")
        session.exitstatus = pytest.ExitCode.INTERNAL_ERROR


class _Collector:
    """Per-test line coverage of tcpio/ (a coverage context per test)."""

    def __init__(self, out: str) -> None:
        import coverage

        self.out = out
        self.cov = coverage.Coverage(data_file=None, source=[str(ROOT / "tcpio")],
                                     config_file=False)
        self.durations: dict[str, float] = {}
        self.outcomes: dict[str, str] = {}
        self.cov.start()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.cov.switch_context(item.nodeid)
        t0 = time.perf_counter()
        yield
        self.durations[item.nodeid] = time.perf_counter() - t0
        self.cov.switch_context("")

    def pytest_runtest_logreport(self, report) -> None:
        if report.failed or (report.when == "call" and not report.passed):
            self.outcomes[report.nodeid] = report.outcome if report.when == "call" \
                else f"{report.when} {report.outcome}"

    def pytest_sessionfinish(self, session) -> None:
        self.cov.stop()
        data = self.cov.get_data()
        tests = sorted(self.durations)
        ids = {t: n for n, t in enumerate(tests)}
        files: dict[str, dict[str, list[int]]] = {}
        for f in data.measured_files():
            rel = os.path.relpath(f, ROOT)
            lines: dict[str, list[int]] = {}
            for line, ctxs in data.contexts_by_lineno(f).items():
                # "" is import time: the driver treats such lines as covered
                # by every test that covers the file.
                lines[str(line)] = sorted({ids[c] for c in ctxs if c in ids} |
                                          ({-1} if "" in ctxs else set()))
            files[rel] = lines
        with open(self.out, "w") as fh:
            json.dump({"tests": tests, "durations": [self.durations[t] for t in tests],
                       "not_passed": self.outcomes, "files": files}, fh)


# Started at import (before any conftest imports tcpio) so that module-level
# lines are measured too.
_collector = _Collector(os.environ["TCPIO_MUTATE_COLLECT"]) \
    if os.environ.get("TCPIO_MUTATE_COLLECT") else None


def pytest_configure(config) -> None:
    if _collector is not None:
        config.pluginmanager.register(_collector, "mutate_collector")
