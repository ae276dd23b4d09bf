"""tcpio: a userspace TCP/IP stack for asyncio.

Public names are imported lazily so ``import tcpio`` stays cheap and a missing
optional piece does not break the rest.
"""

from __future__ import annotations

import importlib
from typing import Any

from tcpio._version import __version__

# name -> module that defines it
_EXPORTS = {
    "Stack": "tcpio.stack",
    "Settings": "tcpio.core.settings",
    "Host": "tcpio.core.host",
    "VirtualNetwork": "tcpio.core.sim",
    "Impairment": "tcpio.devices.impair",
    "MemoryWire": "tcpio.devices.memory",
    "ImpairedDevice": "tcpio.devices.memory",
    "TapDevice": "tcpio.devices.tap",
    "TunDevice": "tcpio.devices.tap",
    "PcapDevice": "tcpio.devices.pcap",
    "PcapWriter": "tcpio.devices.pcap",
    "Socket": "tcpio.socket",
    "SOCK_STREAM": "tcpio.socket",
    "SOCK_DGRAM": "tcpio.socket",
    "AF_INET": "tcpio.socket",
    "AF_INET6": "tcpio.socket",
    "SOCK_RAW": "tcpio.rawsocket",
    "run": "tcpio.loop",
    "loop_factory": "tcpio.loop",
    "use_stack": "tcpio.loop",
    "TcpioEventLoop": "tcpio.loop",
    "TcpForwardRequest": "tcpio.forward",
    "UdpForwardSession": "tcpio.forward",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "__version__", "Stack", "Settings", "Host", "VirtualNetwork", "Impairment", "MemoryWire",
    "ImpairedDevice", "TapDevice", "TunDevice", "PcapDevice", "PcapWriter", "Socket",
    "SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "AF_INET", "AF_INET6", "run", "loop_factory",
    "use_stack", "TcpioEventLoop",
    "TcpForwardRequest", "UdpForwardSession",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tcpio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
