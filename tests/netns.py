"""The Linux kernel as a test peer: private network namespaces joined to tcpio by a TAP.

Each test gets its own namespace (``ip netns add tcpio-<random>``), so nothing
it sends can reach a real network: the namespace has only ``lo`` and the TAP
whose other end is tcpio.  Everything here needs root and /dev/net/tun; call
``conftest.require_tap()`` first (the fixtures in tests/tap/conftest.py do).

Three ways to act inside the namespace from this process:

- ``ns.ip(...)``: ``ip -n NS ...`` (configuration, synchronous).
- ``await ns.arun("ping", ...)``: any command under ``ip netns exec NS``, as an
  asyncio subprocess, so the event loop (and so tcpio) keeps running while the
  kernel side waits for tcpio's answers.  A blocking ``subprocess.run`` here
  would deadlock: nobody would answer the pings.
- ``ns.socket(...)`` / ``ns.call(fn)``: run ``fn`` on a short-lived thread that
  has entered the namespace with setns(2).  Network namespaces are per thread,
  and a socket stays in the namespace it was created in, so the returned
  socket talks from inside the namespace while this process stays outside.
  Use it non-blocking with ``loop.sock_*`` calls, or blocking in a thread.

``ns.tap(...)`` creates the TAP the same way: /dev/net/tun is opened by a
thread inside the namespace, so the kernel interface is born there (it never
exists in the machine's own namespace) and the fd works from anywhere.

The usual pairing is ``kernel_peer()``: namespace, TAP, kernel address
10.7.0.1/24, and a started ``tcpio.Stack`` at 10.7.0.2/24 on the TAP::

    async with kernel_peer(pcap=tmp_path / "x.pcap") as peer:
        out = await peer.ns.arun("ping", "-c", "1", peer.tcpio_ip)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tcpio.core.settings import Settings
from tcpio.devices.base import Device
from tcpio.devices.pcap import PcapDevice
from tcpio.devices.tap import TapDevice
from tcpio.stack import Stack

if TYPE_CHECKING:
    from typing import Self

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = Path("/run/netns")

T = TypeVar("T")


def setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    """setns(2) for the calling thread (os.setns exists only from Python 3.12)."""
    if hasattr(os, "setns"):
        os.setns(fd, nstype)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class NetNs:
    """A named network namespace owned by the test that created it."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or f"tcpio-{secrets.token_hex(4)}"
        self.created = False

    @property
    def path(self) -> Path:
        return NETNS_RUN_DIR / self.name

    # --- lifetime -----------------------------------------------------------

    def create(self) -> NetNs:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.created = True
        self.ip("link", "set", "lo", "up")
        return self

    def delete(self) -> None:
        """Remove the namespace (it dies with its last process/socket/fd user)."""
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
            self.created = False

    def __enter__(self) -> Self:
        return self.create() if not self.created else self

    def __exit__(self, *exc: object) -> None:
        self.delete()

    # --- commands inside ------------------------------------------------------

    def ip(self, *args: str) -> str:
        """``ip -n NS args...``; returns stdout, raises CalledProcessError with stderr."""
        res = subprocess.run(["ip", "-n", self.name, *args], check=False, capture_output=True,
                             text=True)
        if res.returncode != 0:
            raise subprocess.CalledProcessError(res.returncode, res.args, res.stdout,
                                                res.stderr)
        return res.stdout

    def ip_json(self, *args: str) -> Any:
        """``ip -j -n NS args...`` parsed (e.g. ``ip_json("neigh", "show")``)."""
        out = subprocess.run(["ip", "-j", "-n", self.name, *args], capture_output=True,
                             text=True, check=True).stdout
        return json.loads(out) if out.strip() else []

    def exec_argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, *argv: str, timeout: float = 30, check: bool = False
            ) -> subprocess.CompletedProcess[str]:
        """Run a command inside, blocking.  Only for commands that need no answer
        from tcpio (the loop does not run meanwhile); otherwise use ``arun``."""
        return subprocess.run(self.exec_argv(*argv), capture_output=True, text=True,
                              timeout=timeout, check=check)

    async def arun(self, *argv: str, timeout: float = 60, check: bool = False
                   ) -> subprocess.CompletedProcess[str]:
        """Run a command inside as an asyncio subprocess; the loop keeps serving."""
        proc = await asyncio.create_subprocess_exec(
            *self.exec_argv(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            out, err = await proc.communicate()
            raise subprocess.TimeoutExpired(list(argv), timeout, out, err) from None
        res = subprocess.CompletedProcess(list(argv), proc.returncode or 0,
                                          out.decode(errors="replace"),
                                          err.decode(errors="replace"))
        if check:
            res.check_returncode()
        return res

    def sysctl(self, key: str, value: str | int) -> None:
        self.run("sysctl", "-qw", f"{key}={value}", check=True)

    # --- this process, inside ---------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a fresh thread that entered the namespace.

        The thread ends afterwards, so no other work ever runs in the namespace
        by accident.  Whatever ``fn`` created (sockets, TAP fds) stays bound to it.
        """
        result: list[Any] = []
        error: list[BaseException] = []

        def inside() -> None:
            try:
                with open(self.path, "rb") as nsfile:
                    setns(nsfile.fileno(), CLONE_NEWNET)
                result.append(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                error.append(exc)

        thread = threading.Thread(target=inside, name=f"netns:{self.name}")
        thread.start()
        thread.join()
        if error:
            raise error[0]
        return result[0]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM,
               proto: int = 0) -> socket.socket:
        """A kernel socket living in the namespace (the kernel peer's socket)."""
        return self.call(socket.socket, family, type, proto)

    def tap(self, name: str | None = None, mtu: int = 1500, **kwargs: Any) -> TapDevice:
        """A TapDevice whose kernel interface is created inside the namespace."""
        return self.call(TapDevice, name or f"tcpio{secrets.token_hex(3)}", mtu, **kwargs)

    def move_link(self, ifname: str) -> None:
        """Move an interface of this process's namespace into this one (an open
        TAP fd stays valid; the link comes down and loses its addresses)."""
        subprocess.run(["ip", "link", "set", ifname, "netns", self.name], check=True,
                       capture_output=True)

    def neighbours(self, dev: str | None = None) -> list[dict[str, Any]]:
        """The kernel's neighbour (ARP) table inside, as ``ip -j neigh`` reports it."""
        args = ["neigh", "show"] + (["dev", dev] if dev else [])
        return self.ip_json(*args)

    def __repr__(self) -> str:
        return f"NetNs({self.name!r})"


@dataclass
class KernelPeer:
    """A kernel in a namespace and a tcpio Stack, joined by one TAP."""

    ns: NetNs
    tap: TapDevice            # the raw TAP (tcpio's MAC is tap.mac)
    device: Device            # what the stack was given (the TAP, maybe wrapped)
    stack: Stack
    ifindex: int
    kernel_ip: str
    tcpio_ip: str
    prefixlen: int

    @property
    def ifname(self) -> str:
        """The interface name on the kernel side (inside the namespace)."""
        return self.tap.name


@contextlib.asynccontextmanager
async def kernel_peer(*, kernel_cidr: str = "10.7.0.1/24", tcpio_cidr: str = "10.7.0.2/24",
                      mtu: int = 1500, pcap: str | os.PathLike[str] | None = None,
                      wrap: Callable[[Device], Device] | None = None,
                      settings: Settings | None = None, seed: int | None = 1,
                      ipv6: bool = True,
                      tap_options: dict[str, Any] | None = None) -> AsyncIterator[KernelPeer]:
    """Namespace + TAP + kernel address + started Stack; everything undone on exit.

    ``pcap`` records the TAP's frames as they cross the link (innermost
    wrapper); ``wrap`` (e.g. ``lambda d: ImpairedDevice(d, out, in_)``) goes
    around that.  ``ipv6=False`` silences the kernel's IPv6 ND/RS chatter.
    ``tap_options`` go to ``TapDevice`` (e.g. ``{"offloads": False}``).
    """
    with kernel_side(kernel_cidr, mtu=mtu, ipv6=ipv6, tap_options=tap_options) as (ns, tap):
        device: Device = tap
        if pcap is not None:
            device = PcapDevice(device, os.fspath(pcap))
        if wrap is not None:
            device = wrap(device)
        async with Stack(settings=settings, seed=seed) as stack:
            ifindex = stack.add_interface(device, tcpio_cidr)
            yield KernelPeer(ns=ns, tap=tap, device=device, stack=stack, ifindex=ifindex,
                             kernel_ip=kernel_cidr.partition("/")[0],
                             tcpio_ip=tcpio_cidr.partition("/")[0],
                             prefixlen=int(kernel_cidr.partition("/")[2] or 32))


def veth(a: NetNs, a_dev: str, a_cidr: str, b: NetNs, b_dev: str, b_cidr: str) -> None:
    """A veth pair from namespace ``a`` to ``b``, each end with its address and up."""
    subprocess.run(["ip", "link", "add", a_dev, "netns", a.name, "type", "veth", "peer",
                    "name", b_dev, "netns", b.name], check=True, capture_output=True)
    for ns, dev, cidr in ((a, a_dev, a_cidr), (b, b_dev, b_cidr)):
        ns.ip("addr", "add", cidr, "dev", dev)
        ns.ip("link", "set", dev, "up")


@contextlib.contextmanager
def kernel_side(kernel_cidr: str = "10.7.0.1/24", *, mtu: int = 1500,
                ipv6: bool = True, tap_options: dict[str, Any] | None = None
                ) -> Iterator[tuple[NetNs, TapDevice]]:
    """A fresh namespace whose TAP is up with ``kernel_cidr``; the TapDevice is
    tcpio's end, for a Stack to add (kernel_peer's, or a tcpio.run loop's);
    ``tap_options`` go to ``TapDevice`` (e.g. ``{"offloads": False}``)."""
    ns = NetNs().create()
    tap: TapDevice | None = None
    try:
        if not ipv6:
            ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
            ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        tap = ns.tap(mtu=mtu, **(tap_options or {}))
        ns.ip("addr", "add", kernel_cidr, "dev", tap.name)
        ns.ip("link", "set", tap.name, "up")
        yield ns, tap
    finally:
        if tap is not None:
            tap.stop()          # idempotent: the stack normally stopped it already
        ns.delete()
