"""Seeing inside (issue 15): the ``tcpio`` loggers, the build in use, and what
each counter means.

- every MIB counter the code increments has a one-line description (found by
  reading the source, so a new counter without one fails here);
- a warning, once, when the pure twins run because a compiled module failed
  to import, and none when TCPIO_NO_EXTENSIONS=1 asked for them;
- connection lifecycle on ``tcpio.tcp`` at INFO (connected, accepted, refused
  with its errno, RTO), per-segment detail at DEBUG;
- ``tcpio info`` / ``--counters``, the nstat-style delta.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import io
import logging
import re
from pathlib import Path

import pytest
from stackutil import wired_stacks
from tcp.helpers import sim_connect

import tcpio
from tcpio import _fast
from tcpio.__main__ import main as tcpio_main
from tcpio.core import icmp
from tcpio.core.addr import ip_aton
from tcpio.core.mib import DESCRIPTIONS, format_nstat, nstat
from tcpio.core.sim import VirtualNetwork
from tcpio.core.tcp.tcp_states import TCP_CLOSE
from tcpio.devices.impair import Impairment

SRC = Path(tcpio.__file__).parent


def incremented_counters() -> set[str]:
    """Every counter name the source increments: each string in ``mib[...]``
    anywhere, and the ICMP per-type tables (``mib[_IN_COUNTER[type]]``)."""
    names: set[str] = set()
    for path in SRC.rglob("*.py*"):
        if path.suffix not in (".py", ".pyx"):
            continue
        for index in re.findall(r'mib\[([^\]]+)\]', path.read_text()):
            names.update(re.findall(r'"(\w+)"', index))    # mib["X" if c else "Y"] too
    names.update(icmp._IN_COUNTER.values())
    names.update(icmp._OUT_COUNTER.values())
    names.add("IcmpOutOther")           # icmp's default for _OUT_COUNTER.get
    return names


def test_every_counter_the_code_increments_has_a_description():
    names = incremented_counters()
    assert len(names) > 100
    missing = sorted(n for n in names if not DESCRIPTIONS.get(n))
    assert missing == []
    # one line each, and Linux's name where it has one ("Group: Name - ...")
    for name, text in DESCRIPTIONS.items():
        assert "\n" not in text and len(text) < 200, name
        assert text.startswith("tcpio:") or re.match(r"[A-Za-z_][A-Za-z_0-9]*(/\w+)?: ?\w+ - ", text) \
            or text.startswith("LINUX_MIB_"), name


def test_nstat_delta_lists_what_moved_with_its_meaning():
    before = {"InSegs": 10, "OutSegs": 7, "RetransSegs": 0}
    after = {"InSegs": 15, "OutSegs": 7, "RetransSegs": 2, "TCPTimeouts": 1}
    rows = nstat(before, after)
    assert [(n, d) for n, d, _ in rows] == [("InSegs", 5), ("RetransSegs", 2),
                                           ("TCPTimeouts", 1)]
    assert rows[1][2] == DESCRIPTIONS["RetransSegs"]
    assert len(nstat(before, after, with_zero=True)) == 4
    lines = format_nstat(rows).splitlines()
    assert lines[1].split()[:2] == ["RetransSegs", "2"]


def test_tcpio_info_counters_lists_every_description(capsys):
    assert tcpio_main(["info", "--counters"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(DESCRIPTIONS)
    assert any(line.split()[0] == "DelayedACKLost" and "TcpExt: DelayedACKLost" in line
               for line in out)


def test_tcpio_info_and_version_say_which_build_runs(capsys):
    assert tcpio_main(["info"]) == 0
    out = capsys.readouterr().out
    info = _fast.build_info()
    for name, how in info.items():
        assert f"tcpio._fast.{name}" in out and how in out
    compiled = _fast.is_compiled(_fast.load("tcp_fast"))
    assert out.splitlines()[0].endswith("compiled" if compiled else ")")
    with pytest.raises(SystemExit):
        tcpio_main(["--version"])
    ver = capsys.readouterr().out
    assert ver.startswith(f"tcpio {tcpio.__version__} (")
    assert ("(compiled)" in ver) == (not _fast.NO_EXTENSIONS and compiled)


def _fail_import(monkeypatch, name: str) -> None:
    real = importlib.import_module

    def fake(modname, *a, **k):
        if modname == f"tcpio._fast.{name}":
            raise ImportError(f"undefined symbol: fake_{name}")
        return real(modname, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)


def test_a_warning_once_when_the_twins_run_because_compiled_failed(monkeypatch, caplog):
    monkeypatch.setattr(_fast, "NO_EXTENSIONS", False)
    monkeypatch.setattr(_fast, "_warned", False)
    _fail_import(monkeypatch, "checksum")
    _fail_import(monkeypatch, "wire")
    with caplog.at_level(logging.WARNING, logger="tcpio"):
        mod = _fast.load("checksum")
        _fast.load("wire")
        _fast.load("checksum")
    assert not _fast.is_compiled(mod)
    warnings = [r for r in caplog.records if r.name == "tcpio"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "tcpio._fast.checksum" in warnings[0].getMessage()
    assert "undefined symbol: fake_checksum" in warnings[0].getMessage()
    assert _fast.build_info()["checksum"].startswith("pure (ImportError: undefined symbol")


def test_no_warning_when_tcpio_no_extensions_asked_for_the_twins(monkeypatch, caplog):
    monkeypatch.setattr(_fast, "NO_EXTENSIONS", True)
    monkeypatch.setattr(_fast, "_warned", False)
    _fail_import(monkeypatch, "checksum")
    with caplog.at_level(logging.DEBUG, logger="tcpio"):
        _fast.load("checksum")
    assert [r for r in caplog.records if r.name == "tcpio"] == []
    assert _fast.build_info()["checksum"] == "pure (TCPIO_NO_EXTENSIONS=1)"


def test_connection_lifecycle_is_logged_at_info(caplog):
    net = VirtualNetwork(seed=2)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    with caplog.at_level(logging.INFO, logger="tcpio.tcp"):
        c, s = sim_connect(net, a, b)
        c.close()
        s.close()
        net.run_for(1)
        refused = a.tcp.socket()
        with pytest.raises(BlockingIOError):
            refused.connect(ip_aton("10.0.0.2"), 81)     # nobody listens: RST
        assert net.run_until(lambda: refused.state == TCP_CLOSE, 10)
    msgs = [r.getMessage() for r in caplog.records if r.name == "tcpio.tcp"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "tcpio.tcp")
    port = c.lport
    assert msgs[0] == "listening on 0.0.0.0:80"     # (sim_connect's listener)
    assert f"connected 10.0.0.1:{port} -> 10.0.0.2:80" in msgs
    assert f"accepted 10.0.0.2:80 -> 10.0.0.1:{port}" in msgs
    assert sum("closed" in m for m in msgs) == 2
    assert msgs[-1] == (f"connection 10.0.0.1:{refused.lport} -> 10.0.0.2:81 failed in "
                        f"TCP_SYN_SENT: {errno.errorcode[errno.ECONNREFUSED]}")


def test_an_rto_is_logged_at_info(caplog):
    net = VirtualNetwork(seed=3)
    a, b = net.host("a"), net.host("b")
    imp = Impairment(seed=1)
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", impairment=imp)
    c, _s = sim_connect(net, a, b)
    with caplog.at_level(logging.INFO, logger="tcpio.tcp"):
        imp.loss = 1.0                  # a -> b goes black
        c.sendmsg(b"x" * 100)
        net.run_for(3)
    rto = [r.getMessage() for r in caplog.records if "retransmission timeout" in r.getMessage()]
    assert rto and rto[0].startswith(f"retransmission timeout 10.0.0.1:{c.lport} -> "
                                     "10.0.0.2:80: resending from")


def test_a_stack_made_with_tcpio_tcp_at_debug_logs_every_segment(caplog):
    async def main():
        async with wired_stacks(seed=3) as (x, y):
            server = await x.start_server(lambda r, w: None, "10.0.0.1", 8080)
            _reader, writer = await y.open_connection("10.0.0.1", 8080)
            writer.write(b"hello")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            server.close()

    with caplog.at_level(logging.DEBUG, logger="tcpio"):
        asyncio.run(main())
    seg = [r.getMessage() for r in caplog.records
           if r.name == "tcpio.tcp" and r.levelno == logging.DEBUG]
    assert any(" tcp_transmit_skb [S] " in m for m in seg)          # the SYN
    assert any(" tcp_probe [SA] " in m for m in seg)                # the SYN-ACK, received
    assert any(" tcp_transmit_skb [PA] " in m and " len 5 " in m for m in seg)
    host = [r.getMessage() for r in caplog.records if r.name == "tcpio.host"]
    assert any("interface 1 " in m and "up" in m and "10.0.0.1/24" in m for m in host)


def test_state_logging_follows_level_changes_made_between_connections(caplog):
    """tcp_set_state reads the logger's own cached answer: a level set (or a
    logger disabled) after connections were made holds for the next one."""
    net = VirtualNetwork(seed=3)
    a, b = net.host("a"), net.host("b")
    net.link(a, b, "10.0.0.1/24", "10.0.0.2/24")
    log = logging.getLogger("tcpio.tcp")
    level, disabled = log.level, log.disabled
    caplog.set_level(logging.DEBUG)             # the records reach caplog's handler
    ports = []

    def connect_and_close(port: int) -> None:
        c, s = sim_connect(net, a, b, port=port)
        ports.append(c.lport)
        c.close()
        s.close()
        net.run_for(1)

    try:
        log.setLevel(logging.WARNING)
        connect_and_close(80)                   # (the answer "no" is cached now)
        log.setLevel(logging.INFO)
        connect_and_close(81)
        log.disabled = True
        connect_and_close(82)
    finally:
        log.setLevel(level)
        log.disabled = disabled
    msgs = [r.getMessage() for r in caplog.records if r.name == "tcpio.tcp"]
    assert [m for m in msgs if m.startswith("connected")] == [
        f"connected 10.0.0.1:{ports[1]} -> 10.0.0.2:81"]
