#!/usr/bin/env python3
"""Mutation testing for tcpio: does the suite fail when a rule breaks?

A mutant is one small change to a module (a comparison flipped, a constant
moved by one, `and` for `or`, a condition negated, a return value dropped, a
statement deleted; see tools/mutate_ops.py).  A mutant is *killed* when some
test fails with it applied, and *survives* when every test that executes the
mutated line still passes: then either a rule has no test, or the mutant is
equivalent (behaves the same as the original), which goes in
tools/mutants-ignore.txt with the reason.

Everything runs on the interpreted build (TCPIO_NO_EXTENSIONS=1): the pure
twins are what gets mutated, and the twin-agreement tests compare them with
the compiled modules, which follow.

    python tools/mutate.py collect [PYTEST ARGS]      # who covers what (≈5 min for all)
    python tools/mutate.py run MODULE... [--sample 75] [--seed N] [--jobs 2]
    python tools/mutate.py run --targets --sample 75  # the modules issue 9 names
    python tools/mutate.py list MODULE                # every mutant, with its key
    python tools/mutate.py smoke                      # the short check CI runs

``collect`` runs the tests once under coverage with a context per test and
stores, for each line of tcpio/, the tests that executed it
(.mutate/coverage.json; collecting some tests merges them into what is there).
``run`` then tries each sampled mutant against only the tests that execute its
line, fastest first, stopping at the first failure.  Lines that run only at
import time (module constants, defaults) are tried against every test that
covers the module.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mutate_ops import Mutant, enumerate_mutants  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".mutate"
COVERAGE = Path(os.environ.get("TCPIO_MUTATE_MAP", STATE / "coverage.json"))
IGNORE = ROOT / "tools" / "mutants-ignore.txt"

# The modules issue 9 measures.
TARGETS = [
    "tcpio/core/tcp/tcp_input.py",
    "tcpio/core/tcp/tcp_minisocks.py",
    "tcpio/core/tcp/inet_hashtables.py",
    "tcpio/_fast/tcp_fast.py",
    "tcpio/core/tcp/tcp_output.py",
    "tcpio/core/ip_fragment.py",
    "tcpio/core/tcp/tcp_ipv4.py",
    "tcpio/core/tcp/sock.py",
    "tcpio/core/host.py",
]


def test_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["TCPIO_NO_EXTENSIONS"] = "1"
    env["TCPIO_REQUIRE_COMPILED"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "tools"), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def pytest_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-p", "mutate_plugin", "-p", "no:cacheprovider",
            "-q", "--no-header", "-o", "addopts=", *args]


def file_hash(path: str) -> str:
    return hashlib.sha1((ROOT / path).read_bytes()).hexdigest()


# ----- coverage map -------------------------------------------------------------------------
class CoverageMap:
    """Which tests execute which line (from ``collect``)."""

    def __init__(self, raw: dict) -> None:
        self.tests: list[str] = raw["tests"]
        self.durations: list[float] = raw["durations"]
        self.files: dict[str, dict[str, list[int]]] = raw["files"]
        self.hashes: dict[str, str] = raw.get("hashes", {})
        # Tests that failed when collected would "kill" every mutant: left out.
        self.broken = {i for i, t in enumerate(self.tests)
                       if "failed" in raw.get("not_passed", {}).get(t, "")}

    @classmethod
    def load(cls) -> CoverageMap:
        if not COVERAGE.exists():
            sys.exit("no coverage map: run `python tools/mutate.py collect` first")
        cov = cls(json.loads(COVERAGE.read_text()))
        cov.drop_missing()
        return cov

    def drop_missing(self) -> None:
        """Leave out tests renamed or removed since ``collect``."""
        out = subprocess.run(pytest_cmd("--collect-only", *sorted(
            {t.split("::")[0] for t in self.tests if (ROOT / t.split("::")[0]).exists()})),
            cwd=ROOT, env=test_env(), capture_output=True, text=True).stdout
        present = {ln.strip() for ln in out.splitlines() if "::" in ln}
        gone = {i for i, t in enumerate(self.tests) if t not in present}
        if gone:
            print(f"note: {len(gone)} tests in the coverage map no longer exist "
                  "(re-run collect to measure their replacements)", file=sys.stderr)
        self.broken |= gone

    def stale(self, path: str) -> bool:
        return self.hashes.get(path) != file_hash(path)

    def tests_for(self, path: str, line: int) -> list[int]:
        lines = self.files.get(path, {})
        ids = set(lines.get(str(line), ()))
        if -1 in ids:               # executed at import: every test of the module
            ids.discard(-1)
            for v in lines.values():
                ids.update(v)
            ids.discard(-1)
        return sorted(ids - self.broken)


def merge(old: dict | None, new: dict, hashes: dict[str, str]) -> dict:
    """``new`` replaces ``old``'s data for the tests it ran; the rest is kept
    unless its file changed since."""
    if old is None:
        new["hashes"] = hashes
        return new
    rerun = set(new["tests"])
    keep = [(t, d) for t, d in zip(old["tests"], old["durations"]) if t not in rerun]
    tests = [t for t, _ in keep] + new["tests"]
    durations = [d for _, d in keep] + new["durations"]
    index = {t: i for i, t in enumerate(tests)}
    files: dict[str, dict[str, set[int]]] = {}
    for src, ids_of, fresh in ((old, old["tests"], False), (new, new["tests"], True)):
        for path, lines in src["files"].items():
            if not fresh and old.get("hashes", {}).get(path) != hashes.get(path):
                continue           # the file changed: its old line numbers mean nothing
            for line, ids in lines.items():
                acc = files.setdefault(path, {}).setdefault(line, set())
                for i in ids:
                    if i == -1:
                        acc.add(-1)
                    elif fresh or ids_of[i] not in rerun:
                        acc.add(index[ids_of[i]])
    return {"tests": tests, "durations": durations, "hashes": hashes,
            "not_passed": {**old.get("not_passed", {}), **new.get("not_passed", {})},
            "files": {p: {ln: sorted(v) for ln, v in ls.items()} for p, ls in files.items()}}


def collect(pytest_args: list[str]) -> int:
    STATE.mkdir(exist_ok=True)
    part = STATE / f"collect-{os.getpid()}.json"
    print(f"collecting per-test coverage ({' '.join(pytest_args) or 'all tests'}) ...",
          flush=True)
    t0 = time.time()
    rc = subprocess.call(pytest_cmd(*pytest_args), cwd=ROOT,
                         env=test_env(TCPIO_MUTATE_COLLECT=str(part)))
    if not part.exists():
        print("collection produced no data", file=sys.stderr)
        return rc or 1
    new = json.loads(part.read_text())
    part.unlink()
    hashes = {str(p.relative_to(ROOT)): file_hash(str(p.relative_to(ROOT)))
              for p in (ROOT / "tcpio").rglob("*.py")}
    with open(STATE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(COVERAGE.read_text()) if COVERAGE.exists() and pytest_args else None
        COVERAGE.write_text(json.dumps(merge(old, new, hashes)))
    bad = new.get("not_passed", {})
    print(f"{len(new['tests'])} tests measured in {time.time() - t0:.0f} s -> "
          f"{COVERAGE}")
    if bad:
        print(f"warning: {len(bad)} tests did not pass; mutants they cover look killed:")
        for t, o in list(bad.items())[:20]:
            print(f"  {o}: {t}")
    return 0


# ----- ignore file -------------------------------------------------------------------------
def load_ignores() -> dict[tuple[str, str], str]:
    """(path, key) -> reason, from tools/mutants-ignore.txt."""
    out: dict[tuple[str, str], str] = {}
    if not IGNORE.exists():
        return out
    for n, raw in enumerate(IGNORE.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry, _, reason = line.partition("#")
        parts = entry.split()
        if len(parts) != 2 or not reason.strip():
            sys.exit(f"{IGNORE.name}:{n}: want 'PATH KEY  # reason', got {raw!r}")
        out[(parts[0], parts[1])] = reason.strip()
    return out


# ----- running mutants --------------------------------------------------------------------
@dataclass
class Result:
    path: str
    index: int
    key: str
    op: str
    desc: str
    line: int
    qualname: str
    source: str
    status: str            # killed | survived | timeout | uncovered | equivalent | error
    tests_run: int = 0
    killer: str = ""
    seconds: float = 0.0
    reason: str = ""


def order_tests(cov: CoverageMap, ids: list[int]) -> list[str]:
    """Fastest files first (a mutant usually dies in the first file that
    exercises it); tests keep their file order so module fixtures are reused."""
    by_file: dict[str, list[int]] = {}
    for i in ids:
        by_file.setdefault(cov.tests[i].split("::")[0], []).append(i)
    files = sorted(by_file, key=lambda f: sum(cov.durations[i] for i in by_file[f]))
    return [cov.tests[i] for f in files for i in sorted(by_file[f])]


def run_tests(nodeids: list[str], mutant: str | None, timeout: float) -> tuple[str, str]:
    """('passed' | 'failed' | 'timeout' | 'error', first failing test or message).

    A test file that imports a compiled module which cimports the mutant's
    module (tests/tcp/test_fast_path.py imports the compiled rx, which needs
    the compiled syn_fast's types) cannot even be collected with the pure
    mutant in its place: pytest then refuses the whole run ("found no
    collectors for ...", exit 4).  Such a file's tests cannot run the
    mutant, so the run goes again without its tests (a test missing
    otherwise is an error).  pytest names such files a few at a time, so
    this repeats while each run names files still in the list."""
    status, detail = _run_tests_once(nodeids, mutant, timeout)
    for _ in range(8):
        if status != "error" or _NO_COLLECTORS not in detail:
            break
        gone = {os.path.relpath(ln.split(_NO_COLLECTORS, 1)[1].split("::", 1)[0].strip(), ROOT)
                for ln in detail.splitlines() if _NO_COLLECTORS in ln}
        rest = [n for n in nodeids if n.split("::", 1)[0] not in gone]
        if not rest or len(rest) == len(nodeids):
            break
        nodeids = rest
        status, detail = _run_tests_once(nodeids, mutant, timeout)
    return status, detail


_NO_COLLECTORS = "found no collectors for "


def _run_tests_once(nodeids: list[str], mutant: str | None,
                    timeout: float) -> tuple[str, str]:
    argfile = STATE / f"args-{os.getpid()}-{abs(hash((mutant, len(nodeids))))}.txt"
    argfile.write_text("\n".join(nodeids))
    env = test_env(**({"TCPIO_MUTANT": mutant} if mutant else {}))
    cmd = pytest_cmd("-x", "-rf", "-p", "no:randomly", f"@{argfile}")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", ""
    finally:
        argfile.unlink(missing_ok=True)
    if proc.returncode == 0:
        return "passed", ""
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in out.splitlines()
              if ln.startswith(("FAILED ", "ERROR "))]
    if proc.returncode in (1, 2):      # tests failed, or collection broke (import error)
        return "failed", failed[0] if failed else out.strip().splitlines()[-1][:200]
    missing = [ln for ln in out.splitlines() if _NO_COLLECTORS in ln]
    if missing:                         # every one of them (run_tests reads them), then the tail
        return "error", "\n".join(missing) + "\n" + out[-1000:]
    return "error", out[-2000:]


def try_mutant(path: str, m: Mutant, cov: CoverageMap, lines: list[str]) -> Result:
    src = lines[m.line - 1].strip() if m.line <= len(lines) else ""
    r = Result(path, m.index, m.key, m.op, m.desc, m.line, m.qualname, src, "uncovered")
    ids = cov.tests_for(path, m.line)
    if not ids:
        return r
    nodeids = order_tests(cov, ids)
    budget = 60 + 4 * sum(cov.durations[i] for i in ids)
    t0 = time.time()
    status, detail = run_tests(nodeids, f"{path}:{m.index}:{m.key}", budget)
    r.seconds = round(time.time() - t0, 1)
    r.tests_run = len(nodeids)
    r.status = {"passed": "survived", "failed": "killed"}.get(status, status)
    r.killer = detail if status == "failed" else ""
    if status == "error":
        r.reason = detail
    return r


def sample_mutants(path: str, n: int | None, rng: random.Random,
                   only: set[str] | None) -> list[Mutant]:
    mutants = enumerate_mutants((ROOT / path).read_text())
    if only is not None:
        return [m for m in mutants if m.key in only or str(m.index) in only]
    if n is None or n >= len(mutants):
        return mutants
    return sorted(rng.sample(mutants, n), key=lambda m: m.index)


def score_line(path: str, rs: list[Result]) -> str:
    counted = [r for r in rs if r.status not in ("equivalent", "error")]
    killed = sum(r.status in ("killed", "timeout") for r in counted)
    eq = sum(r.status == "equivalent" for r in rs)
    err = sum(r.status == "error" for r in rs)
    pct = 100.0 * killed / len(counted) if counted else 100.0
    return (f"{path}: {killed}/{len(counted)} killed = {pct:.1f}%  "
            f"(sampled {len(rs)}, equivalent {eq}, errors {err}, "
            f"survived {sum(r.status == 'survived' for r in rs)}, "
            f"uncovered {sum(r.status == 'uncovered' for r in rs)})")


def run(args: argparse.Namespace) -> int:
    paths = TARGETS if args.targets else [os.path.relpath(os.path.abspath(p), ROOT)
                                           for p in args.modules]
    if not paths:
        sys.exit("name modules, or --targets")
    cov = CoverageMap.load()
    for p in paths:
        if cov.stale(p):
            print(f"warning: {p} changed since `collect`; line coverage may be off "
                  "(re-run collect)", file=sys.stderr)
    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    only = set(args.mutants.split(",")) if args.mutants else None
    if args.survivors_of:
        old = json.loads(Path(args.survivors_of).read_text())
        only = {r["key"] for r in old["results"] if r["status"] in ("survived", "uncovered")}
    ignores = load_ignores()
    print(f"seed {seed}; command: python tools/mutate.py run "
          f"{'--targets' if args.targets else ' '.join(paths)} --sample {args.sample} "
          f"--seed {seed}", flush=True)
    # The unmutated code must pass the tests, or every mutant looks killed.
    if not args.no_baseline:
        check_baseline(cov, paths)
    work: list[tuple[str, Mutant, list[str]]] = []
    for p in paths:
        lines = (ROOT / p).read_text().splitlines()
        for m in sample_mutants(p, args.sample, rng, only):
            work.append((p, m, lines))
    results: dict[str, list[Result]] = {p: [] for p in paths}

    def one(item: tuple[str, Mutant, list[str]]) -> Result:
        p, m, lines = item
        if (p, m.key) in ignores:
            r = Result(p, m.index, m.key, m.op, m.desc, m.line, m.qualname,
                       lines[m.line - 1].strip(), "equivalent", reason=ignores[(p, m.key)])
        else:
            r = try_mutant(p, m, cov, lines)
        mark = {"killed": ".", "timeout": "T", "survived": "S", "uncovered": "U",
                "equivalent": "=", "error": "E"}[r.status]
        print(mark, end="", flush=True)
        return r

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for r in pool.map(one, work):
            results[r.path].append(r)
    print()
    report(results, seed, args)
    return 0


def check_baseline(cov: CoverageMap, paths: list[str]) -> None:
    ids: set[int] = set()
    for p in paths:
        for v in cov.files.get(p, {}).values():
            ids.update(i for i in v if i >= 0)
    ids -= cov.broken
    if not ids:
        return
    print(f"baseline: {len(ids)} tests on the unmutated code ...", flush=True)
    status, detail = run_tests(order_tests(cov, sorted(ids)), None,
                               120 + 4 * sum(cov.durations[i] for i in ids))
    if status != "passed":
        sys.exit(f"baseline {status}: {detail}\nthe unmutated tree must pass its tests "
                 "first (or re-run collect if tests were renamed)")


def report(results: dict[str, list[Result]], seed: int, args: argparse.Namespace) -> None:
    print()
    for path, rs in results.items():
        left = [r for r in rs if r.status in ("survived", "uncovered", "error")]
        if left:
            print(f"== {path}: not killed")
            for r in left:
                print(f"  {r.line:5d} [{r.op}] {r.desc:24s} {r.source[:70]}")
                print(f"        {r.status}; key {r.key}; index {r.index}"
                      + (f"; {r.reason[:300]}" if r.reason else ""))
        eq = [r for r in rs if r.status == "equivalent"]
        if eq:
            print(f"== {path}: equivalent (tools/mutants-ignore.txt)")
            for r in eq:
                print(f"  {r.line:5d} [{r.op}] {r.desc:24s} {r.source[:60]}  # {r.reason}")
    print()
    for path, rs in results.items():
        print(score_line(path, rs))
    if len(results) > 1:
        print(score_line("all", [r for rs in results.values() for r in rs]))
    print(f"seed {seed}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"seed": seed, "results": [asdict(r) for rs in results.values() for r in rs]},
            indent=1))


def list_mutants(args: argparse.Namespace) -> int:
    ignores = load_ignores()
    for path in args.modules:
        path = os.path.relpath(os.path.abspath(path), ROOT)
        lines = (ROOT / path).read_text().splitlines()
        for m in enumerate_mutants((ROOT / path).read_text()):
            eq = "  = equivalent" if (path, m.key) in ignores else ""
            print(f"{m.index:5d} {m.line:5d} {m.key:40s} [{m.op}] {m.desc:20s} "
                  f"{lines[m.line - 1].strip()[:60]}{eq}")
    return 0


def smoke(args: argparse.Namespace) -> int:
    """The short check CI runs: collect coverage for one test file, confirm the
    unmutated code passes, and that a sample of mutants is run and mostly
    killed (so the tool still applies mutants and reads coverage)."""
    global COVERAGE
    tests = "tests/tcp/test_rfc9293_open.py"
    path = "tcpio/core/tcp/tcp_minisocks.py"
    COVERAGE = STATE / "smoke.json"      # its own map: never mixed with a full one
    COVERAGE.unlink(missing_ok=True)
    rc = collect([tests])
    if rc:
        return rc
    ns = argparse.Namespace(modules=[path], targets=False, sample=args.sample, seed=args.seed,
                            jobs=args.jobs, mutants=None, survivors_of=None, json=None,
                            no_baseline=False)
    cov = CoverageMap.load()
    covered = [m for m in enumerate_mutants((ROOT / path).read_text())
               if cov.tests_for(path, m.line)]
    rng = random.Random(args.seed)
    pick = sorted(rng.sample(covered, min(args.sample, len(covered))), key=lambda m: m.index)
    ns.mutants = ",".join(m.key for m in pick)
    ns.sample = None
    ns.json = str(STATE / "smoke-results.json")
    run(ns)
    results = json.loads(Path(ns.json).read_text())["results"]
    errors = [r for r in results if r["status"] == "error"]
    killed = [r for r in results if r["status"] in ("killed", "timeout")]
    if errors or not killed:
        print(f"smoke: FAILED ({len(errors)} errors, {len(killed)} killed): the tool "
              "no longer applies mutants or reads coverage", file=sys.stderr)
        return 1
    print(f"smoke: ok ({len(killed)}/{len(results)} killed)")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect", help="per-test line coverage (pytest args restrict it)")
    c.add_argument("pytest_args", nargs=argparse.REMAINDER)
    r = sub.add_parser("run", help="run sampled mutants of modules")
    r.add_argument("modules", nargs="*")
    r.add_argument("--targets", action="store_true", help="the nine modules of issue 9")
    r.add_argument("--sample", type=int, default=None, help="mutants per module (default all)")
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--jobs", type=int, default=2)
    r.add_argument("--mutants", help="comma-separated keys or indexes to run instead")
    r.add_argument("--survivors-of", help="re-run the survivors in a --json report")
    r.add_argument("--json", help="write every result here")
    r.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    ls = sub.add_parser("list", help="list the mutants of modules")
    ls.add_argument("modules", nargs="+")
    s = sub.add_parser("smoke", help="a short end-to-end check (CI)")
    s.add_argument("--sample", type=int, default=8)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    if a.cmd == "collect":
        return collect(a.pytest_args)
    if a.cmd == "run":
        return run(a)
    if a.cmd == "list":
        return list_mutants(a)
    return smoke(a)


if __name__ == "__main__":
    sys.exit(main())
