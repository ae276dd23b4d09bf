"""Bugs and invariants that making the outer modules mypy-clean brought to light.

- ``create_connection(host, None)`` raised ``TypeError`` (``int(None)`` deep in
  ``Socket.connect``); asyncio resolves a None port to 0 and the connect is
  refused.  Oracle: asyncio's own ``loop.create_connection`` on kernel sockets.
- The ``tcpio`` command called ``asyncio.Runner``, which Python 3.10 (allowed
  by ``requires-python``) does not have: the command died at start-up there.
  Oracle: the command's exit status under a Python 3.10 interpreter.
- ARP's ``add_static`` used the Optional result of ``_create``; it is now a
  separate path that always creates the entry (evicting one if the table is
  full, as before).  These pin that behaviour at ``arp_gc_thresh3``.
"""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess

import pytest
from hostutil import PEER, make_host
from stackutil import run_on, wired_stacks

from tcpio.core.addr import ip_aton

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- create_connection with no port ---------------------------------------------

def test_asyncio_refuses_a_none_port_on_kernel_sockets() -> None:
    """The oracle: port None means port 0, and that connection is refused."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", None)

    asyncio.run(main())


@pytest.mark.parametrize("loop_name", ["asyncio", "virtual"])
def test_create_connection_with_no_port_is_refused_not_a_type_error(loop_name: str) -> None:
    async def main() -> None:
        async with wired_stacks() as (a, _b):
            with pytest.raises(ConnectionRefusedError):
                await a.create_connection(asyncio.Protocol, "10.0.0.2", None)
            with pytest.raises(ConnectionRefusedError):
                await a.open_connection("10.0.0.2", None)

    run_on(loop_name, main)


# --- the tcpio command on Python 3.10 -----------------------------------------------

def _python310() -> str | None:
    """A working Python 3.10 interpreter, if this machine has one."""
    candidates = ["python3.10", *sorted(glob.glob(os.path.expanduser(
        "~/.pyenv/versions/3.10*/bin/python3.10")))]
    for exe in candidates:
        try:
            proc = subprocess.run([exe, "-c", "import sys; assert sys.version_info[:2] == (3, 10)"],
                                  check=False, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            return exe
    return None


def test_the_command_runs_on_python_3_10() -> None:
    exe = _python310()
    if exe is None:
        pytest.skip("no Python 3.10 interpreter on this machine")
    # The compiled modules are built for this interpreter, not 3.10: the twins run.
    env = dict(os.environ, PYTHONPATH=ROOT, TCPIO_NO_EXTENSIONS="1")
    proc = subprocess.run([exe, "-m", "tcpio", "--builtin-http", "--clients", "1",
                           "--concurrency", "1", "--requests", "3", "--duration", "20"],
                          check=False, capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "3 ok, 0 failed" in proc.stdout


# --- ARP: a static entry always goes in ---------------------------------------------

def test_static_entry_evicts_a_resolved_one_when_the_table_is_full() -> None:
    h = make_host(arp_gc_thresh3=2)          # PEER's static entry, and room for one more
    other = ip_aton("10.0.0.7")
    n = h.arp._create(1, other)
    assert n is not None
    h.arp._confirm(n, b"\x02\x00\x00\x00\x00\x07", 0.0, reachable=True)
    assert len(h.arp.table) == 2             # full
    h.add_static_arp(ip_aton("10.0.0.9"), b"\x02\x00\x00\x00\x00\x09")
    assert (1, ip_aton("10.0.0.9")) in h.arp.table
    assert (1, other) not in h.arp.table     # the REACHABLE entry made room
    assert h.mib["ArpCacheEvictions"] == 1


def test_static_entry_goes_in_even_when_nothing_can_be_evicted() -> None:
    h = make_host(arp_gc_thresh3=1)          # only PEER's PERMANENT entry: not evictable
    assert len(h.arp.table) == 1
    assert h.arp._create(1, ip_aton("10.0.0.7")) is None    # dynamic entries are refused
    h.add_static_arp(ip_aton("10.0.0.9"), b"\x02\x00\x00\x00\x00\x09")
    snapshot = {ip: (mac, state) for _, ip, mac, state in h.arp.snapshot()}
    assert snapshot[ip_aton("10.0.0.9")] == (b"\x02\x00\x00\x00\x00\x09", "PERMANENT")
    assert snapshot[ip_aton(PEER)][1] == "PERMANENT"
