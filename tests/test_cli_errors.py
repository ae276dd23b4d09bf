"""The ``tcpio`` command's bad inputs and its ends: usage errors, a busy TAP, signals.

Oracles: argparse's contract for a bad option value (the usage line, "error:
argument --X: ...", exit status 2, no traceback), checked on the real command
line as a subprocess as well as in-process; the TUNSETIFF answer of Linux for
a TAP another file already holds (EBUSY, see drivers/net/tun.c tun_set_iff:
``if (tfile->detached) ... -EBUSY`` / ``tun->numqueues == 1 -> -EBUSY``); for
SIGINT/SIGTERM, what a stopped run must leave: the summary on stdout and a
pcap that tshark reads to its last record and whose records, walked by their
own length fields, end exactly at the end of the file (a capture cut short
mid-record fails both).
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import require_tap
from netns import NetNs

from tcpio.__main__ import main, parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))

BAD_DEMO = [
    (["--loss", "2"], "--loss"),
    (["--loss", "-0.1"], "--loss"),
    (["--loss", "nan"], "--loss"),
    (["--reorder", "1.5"], "--reorder"),
    (["--size", "-5"], "--size"),
    (["--size", "ten"], "--size"),
    (["--clients", "0"], "--clients"),
    (["--clients", "256"], "--clients"),      # 10.0.256.1 is no address
    (["--concurrency", "0"], "--concurrency"),
    (["--per-connection", "0"], "--per-connection"),
    (["--duration", "0"], "--duration"),
    (["--duration", "-1"], "--duration"),
    (["--delay", "-0.5"], "--delay"),
    (["--rate", "0"], "--rate"),
    (["--requests", "-1"], "--requests"),
]
SERVE = ["serve", "--tap", "tap7"]
BAD_SERVE = [
    ([*SERVE, "--address", "10.0.0.300/24"], "--address"),
    ([*SERVE, "--address", "10.0.0.3"], "--address"),          # no prefix length
    ([*SERVE, "--address", "10.0.0.3/"], "--address"),
    ([*SERVE, "--address", "10.0.0.3/33"], "--address"),
    ([*SERVE, "--address", "10.0.0.3/24", "--peer", "10.0.0"], "--peer"),
    ([*SERVE, "--address", "10.0.0.3/24", "--gateway", "gw"], "--gateway"),
    ([*SERVE, "--address", "10.0.0.3/24", "--port", "65536"], "--port"),
    ([*SERVE, "--address", "10.0.0.3/24", "--port", "0"], "--port"),
    ([*SERVE, "--address", "10.0.0.3/24", "--mtu", "67"], "--mtu"),
    (["serve", "--tap", "a-name-of-16-byt", "--address", "10.0.0.3/24"], "--tap"),
]


@pytest.mark.parametrize(("argv", "option"), [(["demo", *a], o) for a, o in BAD_DEMO]
                         + [([*a], o) for a, o in BAD_DEMO[:3]]       # demo is the default
                         + BAD_SERVE)
def test_bad_values_are_usage_errors(argv: list[str], option: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's rule: exit 2, the usage line, "error: argument OPTION: ..."."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("usage: tcpio "), err
    assert f"error: argument {option}: " in err, err


@pytest.mark.parametrize("argv", [
    ["demo", "--loss", "0", "--reorder", "1", "--size", "0", "--clients", "255",
     "--requests", "0", "--delay", "0"],
    ["serve", "--tap", "a-name-of-15-by", "--address", "10.0.0.3/32", "--port", "65535",
     "--mtu", "68", "--duration", "0"],
    ["serve", "--tap", "t", "--address", "0.0.0.0/0", "--port", "1", "--mtu", "65521"],
])
def test_the_limits_themselves_are_accepted(argv: list[str]) -> None:
    """The same checks from the other side: each bound is a valid value."""
    args = parser().parse_args(argv)
    assert args.command == argv[0]


def test_usage_error_on_the_real_command_line_has_no_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "tcpio", "serve", "--tap", "tap7",
                           "--address", "10.0.0.3"], capture_output=True, text=True,
                          timeout=60, env=ENV, cwd=ROOT, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "tcpio serve: error: argument --address: '10.0.0.3' has no prefix length "
        "(write it as A/N, e.g. 10.0.0.3/24)")


# --- pcap completeness -------------------------------------------------------------


def pcap_records(path: Path) -> int:
    """Walk the records by their incl_len fields; they must end exactly at EOF."""
    data = path.read_bytes()
    assert len(data) >= 24, f"{path}: no file header"
    magic = struct.unpack_from("<I", data)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), hex(magic)
    off, n = 24, 0
    while off < len(data):
        assert off + 16 <= len(data), f"record header cut at byte {off} of {len(data)}"
        incl = struct.unpack_from("<I", data, off + 8)[0]
        off += 16 + incl
        assert off <= len(data), f"record {n + 1} cut: needs {off}, file has {len(data)}"
        n += 1
    return n


def assert_tshark_reads_all(path: Path, records: int) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    proc = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.number"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "cut short" not in proc.stderr, proc.stderr
    assert proc.stdout.split()[-1] == str(records)


def run_until_signalled(argv: list[str], sig: signal.Signals, ready: Callable[[Any], None]
                        ) -> tuple[int, str, str]:
    """Start ``argv``, call ``ready(proc)`` (it waits for the run to be under
    way), send ``sig``, collect the end: (exit status, stdout, stderr)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV, cwd=ROOT)
    try:
        ready(proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err
    return proc.returncode, out, err


def wait_for_line(stream, needle: str, timeout: float = 60) -> str:  # type: ignore[no-untyped-def]
    """Read ``stream`` line by line until one contains ``needle``."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"{needle!r} never came; got {seen!r}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_demo_with_its_summary_and_a_whole_pcap(
        sig: signal.Signals, tmp_path: Path) -> None:
    pcap = tmp_path / "demo.pcap"
    # ready: a progress line on stderr (the clients run, frames are captured)
    status, out, err = run_until_signalled(
        [sys.executable, "-m", "tcpio", "demo", "--builtin-http", "--duration", "120",
         "--size", "20000", "--rate", "2000000", "--pcap", str(pcap)],
        sig, lambda proc: wait_for_line(proc.stderr, " requests, "))
    assert status == 0, err
    assert f"tcpio: {sig.name}, stopping" in err
    assert "requests" in out and " ok, " in out and "retransmitted" in out, out
    assert f"capture of the first wire (server side): {pcap}" in out
    n = pcap_records(pcap)
    assert n > 0
    assert_tshark_reads_all(pcap, n)


# --- serve on a TAP (root) ----------------------------------------------------------


@pytest.mark.tap
def test_a_busy_tap_is_one_clear_line_and_exit_1() -> None:
    """Linux gives EBUSY to a second TUNSETIFF on a single-queue TAP held open."""
    require_tap()
    with NetNs() as ns:
        held = ns.tap("tcpiobusy0")
        try:
            proc = subprocess.run(ns.exec_argv(
                sys.executable, "-m", "tcpio", "serve", "--tap", "tcpiobusy0",
                "--address", "10.9.0.2/24", "--duration", "1"),
                capture_output=True, text=True, timeout=60, env=ENV, cwd=ROOT, check=False)
        finally:
            held.stop()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        ("tcpio serve: cannot open TAP 'tcpiobusy0': Device or resource busy (another "
         "process has it open: is a tcpio or a VM already using it?)")]


@pytest.mark.tap
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_serve_with_its_summary_and_a_whole_pcap(
        sig: signal.Signals, tmp_path: Path) -> None:
    require_tap()
    pcap = tmp_path / "serve.pcap"
    with NetNs() as ns:
        # ip netns exec execs the command: the pid is tcpio's own
        def ready(proc: subprocess.Popen[str]) -> None:
            wait_for_line(proc.stdout, "kernel side configured")
            ping = ns.run("ping", "-c", "3", "-i", "0.2", "-W", "5", "10.9.0.2")
            assert ping.returncode == 0, ping.stdout + ping.stderr

        status, out, err = run_until_signalled(ns.exec_argv(
            sys.executable, "-m", "tcpio", "serve", "--tap", "tcpiosig0",
            "--address", "10.9.0.2/24", "--echo", "--configure", "--pcap", str(pcap)),
            sig, ready)
    assert status == 0, err
    assert f"tcpio serve: stopped by {sig.name}; " in out, out
    assert f"capture: {pcap}" in out
    n = pcap_records(pcap)
    assert n >= 6          # 3 echo requests and 3 replies, ARP besides
    assert_tshark_reads_all(pcap, n)
