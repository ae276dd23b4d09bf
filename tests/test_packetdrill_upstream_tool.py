"""tools/packetdrill_upstream.py --linux: the kselftest wrapper's arguments are
read from its ksft_runner.sh (never run), each script runs once per --ip_version,
and only the issue's categories are taken (tcp_<category>_<name>.pkt)."""

from __future__ import annotations

import importlib.util
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The shape of Linux's ksft_runner.sh argument arrays (written here, not copied).
RUNNER = """\
#!/bin/bash
readonly ipv4_args=('--ip_version=ipv4 '
\t\t    '--local_ip=192.168.0.1 '
\t\t    '--remote_ip=192.0.2.1 '
\t\t    '-D CMSG_LEVEL_IP=SOL_IP ')

readonly ipv6_args=('--ip_version=ipv6 '
\t\t    '--mtu=1520 '
\t\t    '--local_ip=fd3d:0a0b:17d6::1 '
\t\t    '--remote_ip=fd3d:fa7b:d17d::1 '
\t\t    '-D CMSG_LEVEL_IP=SOL_IPV6 ')
"""


def _tool():   # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "packetdrill_upstream", os.path.join(ROOT, "tools", "packetdrill_upstream.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ksft_runner_arrays_become_three_runs(tmp_path) -> None:
    tool = _tool()
    path = tmp_path / "ksft_runner.sh"
    path.write_text(RUNNER)
    runs = tool.ksft_variants(str(path))
    assert [r[0] for r in runs] == ["ipv4", "ipv6", "ipv4-mapped-ipv6"]
    v4, v6, mapped = runs
    assert v4[1] == {"CMSG_LEVEL_IP": "SOL_IP"} and v6[1] == {"CMSG_LEVEL_IP": "SOL_IPV6"}
    assert ("mtu", "1520") in v6[2] and ("local_ip", "fd3d:0a0b:17d6::1") in v6[2]
    assert ("ip_version", "ipv4-mapped-ipv6") in mapped[2]
    assert ("remote_ip", "192.0.2.1") in mapped[2]


def test_categories_from_linux_names() -> None:
    tool = _tool()
    assert tool.linux_category("tcp_slow_start_slow-start-ack-per-1pkt.pkt") == "slow_start"
    assert tool.linux_category("tcp_fast_recovery_prr-ss-10pkt-lost-1.pkt") == "fast_recovery"
    assert tool.linux_category("tcp_close_no_rst.pkt") == "close"
    assert tool.linux_category("tcp_zerocopy_basic.pkt") is None


def test_a_linux_directory_runs_every_script_three_times(tmp_path, capsys) -> None:
    tool = _tool()
    (tmp_path / "ksft_runner.sh").write_text(RUNNER)
    own = os.path.join(ROOT, "tests", "packetdrill")
    shutil.copy(os.path.join(own, "close.pkt"), tmp_path / "tcp_close_ours.pkt")
    shutil.copy(os.path.join(own, "data.pkt"), tmp_path / "tcp_zerocopy_ours.pkt")
    passed, total = tool.run_linux(str(tmp_path))
    out = capsys.readouterr().out
    assert (passed, total) == (3, 3), out
    assert "| tcp_close_ours.pkt | pass | pass | pass |" in out
    assert "1 tcp_*.pkt of other categories not run" in out
