"""The host's transport protocols, registered from outside it (net/ipv4/af_inet.c).

Linux's ``inet_init`` builds each protocol and hands it to IP with
``inet_add_protocol``; IP itself knows none of them.  ``inet_init`` here does
the same for one ``Host``: ICMP, UDP and TCP, TCP with its early demux (the
receive fast path, see ``protocol.EarlyDemux``).  ``Host()`` calls it by
default; a protocol that fails to import is an error, never a host without it.

TCP is imported when a host is built rather than with this module, so that a
TCP that cannot be imported fails every ``Host()`` on the spot
(tests/test_suite_guards.py), like a missing built-in protocol failing
inet_init.  There is no cycle behind it: nothing under ``core/tcp`` imports
the host or this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio.core.icmp import IcmpProto
from tcpio.core.in_h import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from tcpio.core.udp import UdpProto

if TYPE_CHECKING:
    from tcpio.core.host import Host
    from tcpio.core.tcp.tcp_ipv4 import TcpProto


def inet_init(host: Host) -> tuple[IcmpProto, UdpProto, TcpProto]:
    """Build and register ICMP, UDP and TCP for ``host``; returns them."""
    from tcpio.core.tcp.tcp_ipv4 import TcpProto  # see the module docstring
    icmp = IcmpProto(host)
    host.register_protocol(IPPROTO_ICMP, icmp)
    udp = UdpProto(host)
    host.register_protocol(IPPROTO_UDP, udp)
    tcp = TcpProto(host)
    host.register_protocol(IPPROTO_TCP, tcp, tcp.early_demux())
    return icmp, udp, tcp
