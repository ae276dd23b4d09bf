"""What every device offers the asyncio driver (see docs/internals.md "Devices").

A device moves whole frames: Ethernet frames for ``link == "ether"``, bare IPv4
datagrams for ``link == "ip"``.  ``start(loop, on_frames)`` begins delivering
received frames in batches (a list per call, from one loop callback); ``send``
never blocks and never raises for a frame the link cannot take (it counts a
drop instead, like a full qdisc).

Counters follow ``/proc/net/dev``: rx/tx packets, bytes, dropped, errors.

A device whose reader stops at a budget (TapDevice) may still hold frames
after a read; it offers ``poll_rx(rounds, seconds) -> bool`` (read more now,
within those limits; True: frames still wait), ``rx_mark()`` and
``rx_caught_up(mark)`` (has all that waited at the mark been read since?),
which the stack uses to keep due timers from overtaking input that is
already there (Stack._on_timer).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from tcpio.core.qdisc import NetifQueue

OnFrames = Callable[[list[bytes]], None]
Link = Literal["ether", "ip"]

ETH_HLEN = 14
VLAN_HLEN = 4


class Device(Protocol):
    name: str
    mtu: int
    link: Link
    mac: bytes | None
    stats: dict[str, int]

    def start(self, loop: asyncio.AbstractEventLoop, on_frames: OnFrames) -> None: ...
    def send(self, frame: bytes | bytearray) -> None: ...
    def send_batch(self, frames: Sequence[bytes | bytearray]) -> None: ...
    def stop(self) -> None: ...


def new_stats() -> dict[str, int]:
    """Zeroed interface counters, named like the columns of /proc/net/dev."""
    return dict.fromkeys(("rx_packets", "rx_bytes", "rx_dropped", "rx_errors",
                          "tx_packets", "tx_bytes", "tx_dropped", "tx_errors"), 0)


def random_mac() -> bytes:
    """A random unicast, locally administered MAC (bit 1 of the first byte set)."""
    first, *rest = os.urandom(6)
    return bytes([(first & 0xFC) | 0x02, *rest])


def max_frame_len(mtu: int, link: Link) -> int:
    """Largest frame a device with this MTU carries (room for one VLAN tag)."""
    return mtu + ETH_HLEN + VLAN_HLEN if link == "ether" else mtu


class SendEach:
    """``send_batch`` for a device whose frames go out one ``send`` at a time."""

    def send_batch(self, frames: Sequence[bytes | bytearray]) -> None:
        send = self.send  # type: ignore[attr-defined]
        for frame in frames:
            send(frame)


class DeviceWrapper:
    """A device that wraps another (impairment, capture) and keeps its identity:
    name, MTU, link kind, MAC and counters are the inner device's.

    Flow control passes through: the interface's queue (``attach_netif``)
    goes to the inner device, which stops and wakes it as if unwrapped; the
    wrapper keeps it as ``netif`` too (a capture records only the frames
    the inner device did not hand back to the queue)."""

    netif: NetifQueue | None = None

    def __init__(self, device: Device) -> None:
        self.device = device

    def attach_netif(self, netif: NetifQueue) -> None:
        """The interface's queue (Stack.add_interface): the inner device's."""
        self.netif = netif
        attach = getattr(self.device, "attach_netif", None)
        if attach is not None:
            attach(netif)

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def mtu(self) -> int:
        return self.device.mtu

    @property
    def link(self) -> Link:
        return self.device.link

    @property
    def mac(self) -> bytes | None:
        return self.device.mac

    @property
    def stats(self) -> dict[str, int]:
        return self.device.stats

    @property
    def gso_max_size(self) -> int:
        """The inner device's TSO: a wrapper passes super-frames through (a
        capture records them as they go, an impairment that acts per segment
        cuts them into their segments first)."""
        return int(getattr(self.device, "gso_max_size", 0))

    @property
    def gso_max_size6(self) -> int:
        """The inner device's TSO6 (IPv6 super-frames), as gso_max_size."""
        return int(getattr(self.device, "gso_max_size6", 0))

    @property
    def tx_csum_partial(self) -> bool:
        return bool(getattr(self.device, "tx_csum_partial", False))

    def poll_rx(self, rounds: int = 1, seconds: float | None = None) -> bool:
        """The inner device's poll_rx, if it has one (what it reads reaches
        this wrapper through the on_frames it was started with); True: frames
        still wait in it."""
        poll = getattr(self.device, "poll_rx", None)
        return bool(poll(rounds, seconds)) if poll is not None else False

    def rx_mark(self) -> object:
        """The inner device's rx_mark (None without one)."""
        mark = getattr(self.device, "rx_mark", None)
        return mark() if mark is not None else None

    def rx_caught_up(self, mark: object) -> bool:
        """The inner device's rx_caught_up (False without one)."""
        caught_up = getattr(self.device, "rx_caught_up", None)
        return bool(caught_up(mark)) if caught_up is not None else False
