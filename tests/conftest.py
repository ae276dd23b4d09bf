"""Shared test plumbing: both twins of every _fast module, TAP requirements,
and two guards every test runs under.

No swallowed crashes.  ``Host`` catches every exception raised while it
processes a frame or runs a timer, counts it in ``mib["CoreExceptions"]`` and
logs it (``tcpio.host``), unless ``host.debug`` is set: a program on tcpio
must not die because one packet hit a bug.  In a test that is a hidden
failure (a hang, missing data, or a pass).  So every Host built while the
tests run (directly, by a ``Stack`` or by a ``VirtualNetwork``) is tracked,
and a test during which any of them counted a core exception fails at
teardown, naming the host and showing the logged traceback.  A test that
provokes core exceptions on purpose (a test of the count-and-log behaviour
itself) says so with ``@pytest.mark.allow_core_exceptions("why")``.

No silent skips in CI.  Under ``TCPIO_REQUIRE_TAP=1`` or
``TCPIO_REQUIRE_COMPILED=1`` (CI sets both) a skipped test or module is a
failure unless its reason is in ``ALLOWED_SKIPS``: the opt-in soaks and
limitations no environment can lift.  A new skip is strict by default: to
let CI take it, add it there with the reason why CI may.
"""

from __future__ import annotations

import logging
import os
import re
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest

from tcpio import _fast

REQUIRE_COMPILED = os.environ.get("TCPIO_REQUIRE_COMPILED") == "1"
REQUIRE_TAP = os.environ.get("TCPIO_REQUIRE_TAP") == "1"

# Property tests draw the same examples on every run (a seed derived from
# each test), so the suite is deterministic: a counterexample found once is
# found again, and CI cannot turn red on a draw nobody can replay.  Exploring
# with fresh random draws is opt-in: TCPIO_HYPOTHESIS_RANDOM=1.
try:
    from hypothesis import settings as _hyp_settings
except ImportError:        # hypothesis is a test extra; its tests import it
    pass
else:
    _hyp_settings.register_profile("tcpio", derandomize=True, database=None)
    _hyp_settings.register_profile("tcpio-random")
    _hyp_settings.load_profile(
        "tcpio-random" if os.environ.get("TCPIO_HYPOTHESIS_RANDOM") == "1" else "tcpio")


def twin_params(name: str) -> list:
    """pytest params for the pure twin and the compiled module of ``name``.

    The compiled one is skipped (with a reason) when it was not built; under
    the CI variables that skip is a failure (see ``ALLOWED_SKIPS``).
    """
    compiled = _fast.load_compiled(name)
    params = [pytest.param(_fast.load_pure(name), id=f"{name}_py")]
    if compiled is not None:
        params.append(pytest.param(compiled, id=f"{name}_c"))
    else:
        params.append(pytest.param(None, id=f"{name}_c",
                                   marks=pytest.mark.skip(reason=f"tcpio._fast.{name} not built")))
    return params


def twin_fixture(name: str, fixture_name: str):
    """A module-scoped fixture named ``fixture_name``: each twin of ``name`` in turn."""

    def fixture(request):
        return request.param

    return pytest.fixture(params=twin_params(name), scope="module", name=fixture_name)(fixture)


def built_twins(name: str) -> list:
    """The twins of ``name`` that can run here: the pure one, and the compiled one if built."""
    compiled = _fast.load_compiled(name)
    if compiled is None and strict_skips():
        pytest.fail(f"tcpio._fast.{name} not built (TCPIO_REQUIRE_COMPILED/TAP=1)")
    return [_fast.load_pure(name)] if compiled is None else [_fast.load_pure(name), compiled]


def twin_pair(name: str) -> tuple:
    """(pure, compiled) for a test comparing the twins; skipped when not built
    (a failure under the CI variables)."""
    compiled = _fast.load_compiled(name)
    if compiled is None:
        pytest.skip(f"tcpio._fast.{name} not built")
    return _fast.load_pure(name), compiled


def tap_unavailable_reason() -> str | None:
    """Why TAP tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "TAP tests need root"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun"
    return None


def require_tap() -> None:
    """Skip (or, with TCPIO_REQUIRE_TAP=1, fail) when TAP is unavailable."""
    reason = tap_unavailable_reason()
    if reason is None:
        return
    if REQUIRE_TAP:
        pytest.fail(f"TCPIO_REQUIRE_TAP=1 but {reason}")
    pytest.skip(reason)


# ----- no silent skips in CI -----------------------------------------------------------


def strict_skips() -> bool:
    """True under the CI variables: a skip not in ALLOWED_SKIPS is a failure."""
    env = os.environ
    return env.get("TCPIO_REQUIRE_TAP") == "1" or env.get("TCPIO_REQUIRE_COMPILED") == "1"


def _interpreted_run() -> bool:
    return (os.environ.get("TCPIO_NO_EXTENSIONS") == "1"
            and os.environ.get("TCPIO_REQUIRE_COMPILED") != "1")


@dataclass(frozen=True)
class AllowedSkip:
    """A skip CI may take: ``pattern`` must match the whole reason, and
    ``applies()`` must hold in this run."""

    pattern: str
    why: str
    applies: Callable[[], bool] = lambda: True


ALLOWED_SKIPS: tuple[AllowedSkip, ...] = (
    AllowedSkip(r".*\bset TCPIO_SLOW=1\b.*",
                "an opt-in soak: it runs when TCPIO_SLOW=1 asks for it",
                lambda: os.environ.get("TCPIO_SLOW") != "1"),
    AllowedSkip(r"uvloop's start_tls refuses transports it did not make",
                "uvloop limitation: its start_tls takes only uvloop's own transports"),
    AllowedSkip(r"uvloop has no loop\.sendfile\b.*",
                "uvloop limitation: loop.sendfile is not implemented there"),
    AllowedSkip(r"TcpSock is built on the pure TcpCb in this run \(TCPIO_NO_EXTENSIONS=1\)",
                "the interpreted run: the compiled fast path needs socks on the compiled TcpCb",
                _interpreted_run),
    AllowedSkip(r"compiled build only: .*",
                "the interpreted run: a rule about the compiled build's objects (slots, size)",
                _interpreted_run),
    AllowedSkip(r"the compiled twin needs socks built on the compiled TcpCb",
                "the interpreted run: the compiled fast path needs socks on the compiled TcpCb",
                _interpreted_run),
)


def skip_allowed(reason: str) -> bool:
    return any(re.fullmatch(a.pattern, reason) and a.applies() for a in ALLOWED_SKIPS)


def _skip_reason(longrepr: Any) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def _strict_failure(reason: str) -> str:
    return (f"skip not allowed under TCPIO_REQUIRE_TAP/TCPIO_REQUIRE_COMPILED=1: {reason}"
            "\nFix the environment, or if no environment can lift this skip, "
            "add it to ALLOWED_SKIPS in tests/conftest.py with the reason why.")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator:
    rep = yield
    if rep.skipped and not hasattr(rep, "wasxfail") and strict_skips():
        reason = _skip_reason(rep.longrepr)
        if not skip_allowed(reason):
            rep.outcome = "failed"
            rep.longrepr = _strict_failure(reason)
    return rep


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator:
    # A module-level skip (pytest.importorskip of a test dependency, ...).
    rep = yield
    if rep.skipped and strict_skips():
        reason = _skip_reason(rep.longrepr)
        if not skip_allowed(reason):
            rep.outcome = "failed"
            rep.longrepr = _strict_failure(reason)
    return rep


# ----- no swallowed crashes ------------------------------------------------------------


class _Tracked:
    """One Host: its name, its MIB (kept alive, so a host collected during the
    test is still checked), and the CoreExceptions count already judged."""

    __slots__ = ("mib", "name", "ref", "seen")

    def __init__(self, host: Any) -> None:
        self.name = getattr(host, "name", "?")
        self.mib = host.mib
        self.ref = weakref.ref(host)
        self.seen = 0

    def count(self) -> int:
        # .get: reading a defaultdict with [] would add the key to snapshots.
        return self.mib.get("CoreExceptions", 0)


class _CoreLogRecords(logging.Handler):
    """The tracebacks Host logs with log.exception when it counts one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.records.append(text)
        except Exception:       # pragma: no cover - never break the code under test
            self.records.append("(unformattable record)")


class CoreExceptionGuard:
    """Tracks every Host built while the tests run (Host.__init__ wrapped)."""

    def __init__(self) -> None:
        self.tracked: list[_Tracked] = []
        self.handler = _CoreLogRecords()
        self._saved_init: Any = None

    def install(self) -> None:
        from tcpio.core.host import Host

        saved = self._saved_init = Host.__init__
        tracked = self.tracked

        def __init__(host: Any, *args: Any, **kwargs: Any) -> None:
            saved(host, *args, **kwargs)
            tracked.append(_Tracked(host))

        __init__.__wrapped__ = saved  # type: ignore[attr-defined]
        Host.__init__ = __init__      # type: ignore[method-assign]
        logging.getLogger("tcpio.host").addHandler(self.handler)

    def uninstall(self) -> None:
        from tcpio.core.host import Host

        if self._saved_init is not None:
            Host.__init__ = self._saved_init  # type: ignore[method-assign]
        logging.getLogger("tcpio.host").removeHandler(self.handler)

    def check(self) -> list[str]:
        """Hosts whose counter moved since the last check (and forget dead hosts)."""
        moved = []
        for t in self.tracked:
            n = t.count()
            if n != t.seen:
                moved.append(f"host {t.name!r}: CoreExceptions = {n} (was {t.seen})")
                t.seen = n
        self.tracked[:] = [t for t in self.tracked if t.ref() is not None]
        return moved

    def take_records(self) -> list[str]:
        records = self.handler.records[:]
        self.handler.records.clear()
        return records


_guard = CoreExceptionGuard()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_core_exceptions(reason): this test makes a Host count CoreExceptions on "
        "purpose (the production count-and-log behaviour); the guard does not fail it")
    _guard.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    _guard.uninstall()


# Tests in files this conftest's owner does not edit that inject core exceptions
# on purpose: node id -> why (the marker is added at collection).
EXPECTED_CORE_EXCEPTIONS = {
    "tests/tcp/test_fast_path_twin_rules.py::"
    "test_counters_of_a_frame_that_raises_match_the_layered_path":
        "injects a RuntimeError into a sock's wakeup to compare the counters the fast "
        "and the layered path move for a frame that raises (CoreExceptions among them)",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        why = EXPECTED_CORE_EXCEPTIONS.get(item.nodeid.split("[")[0])
        if why is not None:
            item.add_marker(pytest.mark.allow_core_exceptions(why))


@pytest.fixture(autouse=True)
def _no_core_exceptions(request: pytest.FixtureRequest) -> Generator[None, None, None]:
    """Fail a test during which any Host counted CoreExceptions (see the module doc)."""
    _guard.check()          # whatever happened before this test is not its fault
    _guard.take_records()
    yield
    moved = _guard.check()
    records = _guard.take_records()
    if request.node.get_closest_marker("allow_core_exceptions") is not None:
        return
    if moved or records:
        shown = "\n\n".join(records[-3:]) or "(nothing logged by tcpio.host)"
        pytest.fail("a Host swallowed an exception (mib['CoreExceptions'] moved):\n"
                    + "\n".join(moved or ["(a host logged it; its counter was not seen)"])
                    + f"\n\nlast of {len(records)} logged by tcpio.host:\n{shown}",
                    pytrace=False)
