"""tcpio: a userspace TCP/IP stack for asyncio."""

from __future__ import annotations

from tcpio._version import __version__

__all__ = ["__version__"]
