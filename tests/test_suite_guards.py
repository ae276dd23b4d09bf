"""The suite's own guards (tests/conftest.py), and the rules they rely on.

- No swallowed crashes: a test during which a Host counts CoreExceptions
  fails, naming the host and the exception; ``allow_core_exceptions`` opts a
  test out.  Shown by running inner tests with pytester against a copy of
  the real conftest.
- The production behaviour the guard relies on: a Host that hits a bug
  while processing a frame or a timer counts it, logs it with its traceback
  and keeps running; ``debug`` makes it raise instead.
- No silent skips in CI: under TCPIO_REQUIRE_TAP=1 or TCPIO_REQUIRE_COMPILED=1
  a skip that is not on the allowlist is a failure; without them it stays a
  skip.
- A broken import is a failure everywhere: every module under tcpio/ imports,
  and a Host whose TCP does not import raises instead of running without TCP.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import tcpio
from tcpio.core.addr import ip_aton
from tcpio.core.host import Host

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).with_name("conftest.py")
STRICT_VARS = ("TCPIO_REQUIRE_TAP", "TCPIO_REQUIRE_COMPILED", "TCPIO_SLOW",
               "TCPIO_NO_EXTENSIONS")

MAC = bytes.fromhex("020000000002")
PEER_MAC = bytes.fromhex("020000000001")


def _inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: dict[str, str],
           *args: str, **files: str) -> pytest.RunResult:
    """Run ``files`` (test modules) in a fresh directory with the real conftest,
    in a child process, with exactly the CI variables in ``env``."""
    for name in STRICT_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # The inner tests need no third-party plugin; loading them all costs a second a run.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(**files)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA", *args)


# ----- no swallowed crashes --------------------------------------------------------------

CRASH_PRELUDE = '''
import asyncio, gc
import pytest
import tcpio
from tcpio.core.host import Host

class Boom:
    """A protocol handler with a bug: rcv raises."""
    def __init__(self):
        self.calls = 0
    def rcv(self, iph, payload, now):
        self.calls += 1
        raise ZeroDivisionError("injected into rcv")
    def err(self, *args):
        pass

def victim():
    h = Host("victim", seed=1)
    h.add_interface("eth0", mac=bytes.fromhex("020000000002"))
    h.add_address(1, 0x0A000002, 24)
    h.register_protocol(6, Boom())
    return h

FRAME = {frame!r}    # a SYN from 10.0.0.1 to 10.0.0.2:80 (scapy-built outside)
'''

CRASH_TESTS = {
    # A frame whose processing raises inside the protocol handler.
    "test_frame": '''
{marker}
def test_frame():
    h = victim()
    h.receive(1, FRAME, 1.0)        # counted and logged, never raised
    assert h.protocols[6].calls == 1 and h.mib["InReceives"] == 1
''',
    # A timer callback that raises (Host.poll).
    "test_timer": '''
{marker}
def test_timer():
    h = victim()
    h.timers.timer(lambda now: 1 // 0).arm(2.0)
    h.poll(3.0)
''',
    # The host is gone by teardown: its counter is still checked.
    "test_collected": '''
{marker}
def test_collected():
    h = victim()
    h.receive(1, FRAME, 1.0)
    del h
    gc.collect()
''',
    # A Stack on a real event loop: the host its Stack made is tracked too.
    "test_stack": '''
{marker}
def test_stack():
    async def main():
        wire = tcpio.MemoryWire()
        async with tcpio.Stack(name="victim") as a, tcpio.Stack(name="peer") as b:
            a.add_interface(wire.a, "10.0.0.2/24")
            b.add_interface(wire.b, "10.0.0.1/24")
            boom = Boom()
            a.host.register_protocol(1, boom)        # ICMP input raises
            with pytest.raises(TimeoutError):
                await b.ping("10.0.0.2", timeout=0.3)
            assert boom.calls >= 1
    asyncio.run(main())
''',
}

# No false alarm: a host that drops what it cannot handle counts no exception.
CLEAN_TEST = '''
def test_clean():
    h = victim()
    del h.protocols[6]                  # TCP goes unanswered, nothing raises
    h.receive(1, FRAME, 1.0)
    assert h.mib["InUnknownProtos"] == 1
'''


ALLOW = '@pytest.mark.allow_core_exceptions("testing the count-and-log path")'


def _crash_module() -> str:
    """Each crash test twice: as is, and with the opt-out marker (``_allowed``)."""
    frame = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
                  / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=80, flags="S"))
    tests = [t.format(marker="") for t in CRASH_TESTS.values()]
    tests += [t.format(marker=ALLOW).replace(f"def {name}(", f"def {name}_allowed(")
              for name, t in CRASH_TESTS.items()]
    return CRASH_PRELUDE.format(frame=frame) + "".join(tests) + CLEAN_TEST


def test_a_swallowed_core_exception_fails_the_test(pytester, monkeypatch):
    """Each inner test passes on its own terms (nothing raised), and fails at
    teardown because its host counted CoreExceptions; the report names the
    counter, the host and the exception with its traceback.  The same tests
    with ``allow_core_exceptions`` pass, and so does a clean one."""
    result = _inner(pytester, monkeypatch, {}, test_inner=_crash_module())
    result.assert_outcomes(passed=2 * len(CRASH_TESTS) + 1, errors=len(CRASH_TESTS))
    out = result.stdout.str()
    errors = {line.split("::")[1].split()[0] for line in result.outlines
              if line.startswith("ERROR test_inner.py::")}
    assert errors == set(CRASH_TESTS)           # not the _allowed ones, not test_clean
    for name in CRASH_TESTS:
        # the section under "___ ERROR at teardown of NAME ___", up to the next header
        section = out.split(f"ERROR at teardown of {name} ", 1)[1].split("\n", 1)[1]
        report = re.split(r"^(?:_{3,}|={3,}) ", section, maxsplit=1, flags=re.M)[0]
        assert "a Host swallowed an exception (mib['CoreExceptions'] moved)" in report
        assert "host 'victim': CoreExceptions = 1 (was 0)" in report
        assert "Traceback (most recent call last)" in report
        assert "ZeroDivisionError" in report


def _boom_host(debug: bool = False) -> tuple[Host, list]:
    h = Host("prod", seed=1)
    h.debug = debug
    h.add_interface("eth0", mac=MAC)
    h.add_address(1, ip_aton("10.0.0.2"), 24)
    h.add_static_arp(ip_aton("10.0.0.1"), PEER_MAC)
    h.take_output()
    seen: list = []

    class FailsOnce:
        def rcv(self, iph, payload, now):
            seen.append(bytes(payload))
            if len(seen) == 1:
                raise ZeroDivisionError("bug in a protocol handler")

        def err(self, *args):
            pass

    h.register_protocol(6, FailsOnce())
    return h, seen


def _frame(pkt) -> bytes:
    return bytes(Ether(dst=MAC, src=PEER_MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / pkt)


@pytest.mark.allow_core_exceptions("the production count-and-log behaviour itself")
def test_production_host_counts_logs_and_keeps_running(caplog):
    """A bug hit while processing a frame or a timer never raises out of the
    Host (the program on top keeps running): it is counted in CoreExceptions,
    logged with its traceback on ``tcpio.host``, the frame is dropped, and the
    next frames and timers are processed as usual."""
    h, seen = _boom_host()
    caplog.set_level(logging.ERROR, logger="tcpio.host")
    h.receive(1, _frame(TCP(dport=80, flags="S")), 1.0)
    assert h.mib["CoreExceptions"] == 1 and len(seen) == 1
    (rec,) = caplog.records
    assert rec.name == "tcpio.host" and rec.levelno == logging.ERROR
    assert "prod" in rec.getMessage() and "frame" in rec.getMessage()
    assert rec.exc_info[0] is ZeroDivisionError
    # The next frames are processed: the handler gets the next segment, and
    # ICMP echo (another protocol) is still answered.
    h.receive_batch(1, [_frame(TCP(dport=80, flags="S", seq=7)),
                        _frame(ICMP(type=8, id=1, seq=1) / b"ping")], 1.5)
    assert len(seen) == 2 and h.mib["CoreExceptions"] == 1
    (reply,) = [Ether(f) for _, f in h.take_output()]
    assert reply[ICMP].type == 0 and reply[Raw].load == b"ping"
    # A timer that raises: counted and logged; a later timer still fires.
    fired = []
    h.timers.timer(lambda now: 1 // 0).arm(2.0)
    h.timers.timer(fired.append).arm(2.5)
    h.poll(2.0)
    assert h.mib["CoreExceptions"] == 2
    assert "timer" in caplog.records[-1].getMessage()
    assert caplog.records[-1].exc_info[0] is ZeroDivisionError
    h.poll(3.0)
    assert fired == [3.0] and h.mib["CoreExceptions"] == 2


def test_debug_host_raises_instead_of_counting():
    h, seen = _boom_host(debug=True)
    with pytest.raises(ZeroDivisionError):
        h.receive(1, _frame(TCP(dport=80, flags="S")), 1.0)
    h.timers.timer(lambda now: 1 // 0).arm(2.0)
    with pytest.raises(ZeroDivisionError):
        h.poll(2.0)
    assert h.mib.get("CoreExceptions", 0) == 0


# ----- no silent skips in CI ---------------------------------------------------------------

SKIPS = '''
import pytest

def test_new_skip():
    pytest.skip("tshark not installed")

@pytest.mark.skip(reason="a marker skip nobody allowed")
def test_marker_skip():
    pass

def test_soak():
    pytest.skip("set TCPIO_SLOW=1 for soaks")

def test_uvloop_limitation():
    pytest.skip("uvloop's start_tls refuses transports it did not make")

@pytest.mark.xfail(reason="expected failures are not skips", strict=True)
def test_xfail():
    assert False
'''

IMPORTORSKIP = '''
import pytest
missing = pytest.importorskip("tcpio_no_such_dependency")

def test_never_runs():
    pass
'''

def test_strict_skips_fail_under_the_ci_variables(pytester, monkeypatch):
    result = _inner(pytester, monkeypatch, {"TCPIO_REQUIRE_TAP": "1"},
                    "--continue-on-collection-errors",
                    test_skips=SKIPS, test_optional=IMPORTORSKIP)
    # The two non-allowlisted skips fail (the marker's at setup: an error), and
    # so does the module-level importorskip (a collection error); the allowed
    # skips and the xfail are untouched.
    result.assert_outcomes(failed=1, errors=2, skipped=2, xfailed=1)
    out = result.stdout.str()
    for reason in ("tshark not installed", "a marker skip nobody allowed",
                   "could not import 'tcpio_no_such_dependency'"):
        assert f"skip not allowed under TCPIO_REQUIRE_TAP/TCPIO_REQUIRE_COMPILED=1: {reason}" \
            in out
    assert result.ret != 0


def test_skips_stay_skips_without_the_ci_variables(pytester, monkeypatch):
    result = _inner(pytester, monkeypatch, {}, "--continue-on-collection-errors",
                    test_skips=SKIPS, test_optional=IMPORTORSKIP)
    result.assert_outcomes(skipped=5, xfailed=1)
    assert result.ret == 0


def test_soaks_are_not_skipped_when_asked_for(pytester, monkeypatch):
    """The soak allowance holds only while TCPIO_SLOW is unset (and
    TCPIO_REQUIRE_COMPILED=1 alone makes skips strict too)."""
    result = _inner(pytester, monkeypatch, {"TCPIO_REQUIRE_COMPILED": "1", "TCPIO_SLOW": "1"},
                    test_skips=SKIPS)
    result.assert_outcomes(failed=2, errors=1, skipped=1, xfailed=1)


# ----- a broken import is a failure everywhere ---------------------------------------------

def _tcpio_modules() -> list[str]:
    broken: list[str] = []
    names = [m.name for m in pkgutil.walk_packages(tcpio.__path__, "tcpio.",
                                                   onerror=broken.append)]
    return sorted(set(names + broken))


TCPIO_MODULES = _tcpio_modules()
# Optional dependencies of tcpio.contrib (the test extra installs them all).
OPTIONAL = {"aiohttp", "httpx", "uvicorn", "httpcore", "anyio"}


def test_the_module_walk_sees_the_whole_package():
    for name in ("tcpio.core.host", "tcpio.core.tcp.tcp_ipv4", "tcpio.core.tcp.tcp_input",
                 "tcpio._fast.rx_py", "tcpio.contrib.aiohttp", "tcpio.stack"):
        assert name in TCPIO_MODULES


@pytest.mark.parametrize("name", TCPIO_MODULES)
def test_every_tcpio_module_imports(name):
    try:
        importlib.import_module(name)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in OPTIONAL:
            pytest.skip(f"optional dependency {missing} not installed")
        raise


def test_a_host_whose_tcp_does_not_import_raises(monkeypatch):
    """Host used to catch ImportError and run without TCP (host.tcp None),
    which made a broken TCP a skip in the tests that checked for it."""
    monkeypatch.setitem(sys.modules, "tcpio.core.tcp.tcp_ipv4", None)
    with pytest.raises(ImportError):
        Host("h")
