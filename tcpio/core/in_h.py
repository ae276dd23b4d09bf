"""Protocol numbers (Linux's include/uapi/linux/in.h), defined once for the core.

The IPv4 header's protocol field: which transport a datagram is for, and the
key of the host's protocol table (``Host.protocols``, ``inet_add_protocol``).
"""

from __future__ import annotations

from typing import Final

IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
# IPv6 next-header values (include/uapi/linux/in6.h): the extension headers
# share the space with the transports.
IPPROTO_HOPOPTS: Final = 0
IPPROTO_ROUTING: Final = 43
IPPROTO_FRAGMENT: Final = 44
IPPROTO_ICMPV6: Final = 58
IPPROTO_NONE: Final = 59
IPPROTO_DSTOPTS: Final = 60
# Address families (include/linux/socket.h): a core sock's ``family``.
AF_INET: Final = 2
AF_INET6: Final = 10
# IPV6_V6ONLY (include/uapi/linux/in6.h), at level IPPROTO_IPV6 (41).
IPPROTO_IPV6: Final = 41
IPV6_V6ONLY: Final = 26
