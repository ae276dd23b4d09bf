"""The host's IPv6 protocols, registered from outside it (net/ipv6/af_inet6.c).

``inet6_init`` builds ICMPv6 (which hands ND messages to ``host.ndisc``) and
registers it in the host's inet6 protocol table, as Linux's inet6_init does
with inet6_add_protocol, then UDP's and TCP's IPv6 handlers (``udp_ipv6``,
``tcp.tcp_ipv6``, on the host's one UDP and one TCP).  ``inet_init`` has built UDP and TCP before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpio.core.icmpv6 import Icmpv6Proto
from tcpio.core.in_h import IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from tcpio.core.tcp.tcp_ipv6 import TcpV6Proto
from tcpio.core.udp_ipv6 import UdpV6Proto

if TYPE_CHECKING:
    from tcpio.core.host import Host


def inet6_init(host: Host) -> Icmpv6Proto:
    icmp6 = Icmpv6Proto(host)
    host.register_protocol6(IPPROTO_ICMPV6, icmp6)
    host.udp.v6 = UdpV6Proto(host.udp)
    host.register_protocol6(IPPROTO_UDP, host.udp.v6)
    host.register_protocol6(IPPROTO_TCP, TcpV6Proto(host.tcp))
    return icmp6
