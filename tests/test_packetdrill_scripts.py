"""tcpio's own packetdrill scripts (tests/packetdrill/*.pkt), each run by the
runner on virtual time: the script's expectations are Linux's behaviour (see
each script's header for the rule), so a pass means tcpio matched it.

tests/packetdrill/deviations/*.pkt are written the same way for behaviour where
tcpio differs from Linux today: they are expected to fail (strict xfail), so
the day the core changes they report XPASS and move up a directory.
"""

from __future__ import annotations

import glob
import os

import pytest

from tcpio.packetdrill import run_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "packetdrill")
SCRIPTS = sorted(glob.glob(os.path.join(HERE, "*.pkt")))
DEVIATIONS = sorted(glob.glob(os.path.join(HERE, "deviations", "*.pkt")))


def test_the_scripts_are_there() -> None:
    names = {os.path.basename(p) for p in SCRIPTS}
    assert {"handshake-passive.pkt", "handshake-active.pkt", "data.pkt", "close.pkt",
            "rst.pkt", "sack.pkt", "fast-retransmit.pkt", "rto.pkt", "zero-window.pkt",
            "nagle.pkt", "delayed-ack.pkt", "timestamps.pkt", "mss.pkt",
            "time-wait.pkt"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_script(path: str) -> None:
    res = run_file(path)
    assert res.status == "pass", res.report()


@pytest.mark.parametrize("ip_version", ["ipv6", "ipv4-mapped-ipv6"])
@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_script_over_ipv6(path: str, ip_version: str) -> None:
    """The same scripts as Linux's kselftest wrapper also runs them: IPv6 on the
    wire at MTU 1520 (so the MSS stays 1460), and AF_INET6 sockets over IPv4."""
    options: list[tuple[str, str | None]] = [("ip_version", ip_version)]
    if ip_version == "ipv6":
        options.append(("mtu", "1520"))
    res = run_file(path, None, options)
    assert res.status == "pass", res.report()


if DEVIATIONS:     # (none known today: an empty parameter set would be a skip)
    @pytest.mark.parametrize("path", DEVIATIONS, ids=os.path.basename)
    @pytest.mark.xfail(strict=True, reason="a known tcpio deviation from Linux (see the script)")
    def test_deviation(path: str) -> None:
        res = run_file(path)
        assert res.status == "pass", res.report()


@pytest.mark.parametrize("name, change", [
    ("sack.pkt", {"tcp_sack": 0}),
    ("delayed-ack.pkt", {"tcp_delack_min": 0.2}),
    ("rto.pkt", {"tcp_rto_min": 0.5}),
    ("timestamps.pkt", {"tcp_timestamps": 0}),
    ("time-wait.pkt", {"tcp_tw_timeout": 30.0}),
    ("mss.pkt", {"tcp_window_scaling": 0}),
])
def test_the_scripts_see_a_changed_stack(name: str, change: dict) -> None:
    """Each script fails on a stack that behaves otherwise (a setting changed)."""
    from tcpio.core.settings import Settings
    from tcpio.packetdrill.parser import parse_file
    from tcpio.packetdrill.runner import Runner

    path = os.path.join(HERE, name)
    assert Runner(parse_file(path)).run().passed
    res = Runner(parse_file(path), settings=Settings(**change)).run()
    assert res.status == "fail", res.report()
