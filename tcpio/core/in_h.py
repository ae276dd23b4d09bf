"""Protocol numbers (Linux's include/uapi/linux/in.h), defined once for the core.

The IPv4 header's protocol field: which transport a datagram is for, and the
key of the host's protocol table (``Host.protocols``, ``inet_add_protocol``).
"""

from __future__ import annotations

from typing import Final

IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
