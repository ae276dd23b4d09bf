"""The relay passes an upstream UDP socket's errors back to the client as
the ICMP destination unreachable a router would have sent (issue 18;
tcpio/relay.py, docs/internals.md "Transparent forwarding").

The kernel's icmp_err_convert turns an ICMP code into the errno a socket
sees; the relay reads it backwards: ECONNREFUSED -> port unreachable (3),
ENETUNREACH -> net unreachable (0), EHOSTUNREACH -> host unreachable (1),
EACCES (a prohibit route) -> communication administratively prohibited
(13), which Linux's ip_error sends for the same routes.  The client's own
socket then fails with the errno its kernel would give (the independent
side: tcpio's icmp_err_convert on the client, and scapy reading the ICMP
message off the client's wire).

Three stacks on the virtual clock, as tests/test_forward_streams.py: ``c``
routes everything to the forwarder ``f``, which relays upstream through
its own tcpio stack to wire 2 (``s`` is 10.1.0.1 there).
"""

from __future__ import annotations

import asyncio
import errno
import io
import socket
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, IPerror, UDPerror
from stackutil import Sink, received, run_on
from test_forward_streams import three_stacks

from tcpio.core.udp import IP_RECVERR
from tcpio.relay import Relay, udp_unreach_code
from tcpio.stack import Stack


def relay_udp(dst: str, *, create: Any = None, wait: float = 5.0) -> tuple[list[int], list[IP]]:
    """c sends one datagram to ``dst``:53 through the relay on f: the errnos
    c's socket gets, and the ICMP messages c received."""
    pcap = io.BytesIO()

    async def main() -> list[int]:
        async with three_stacks(pcap=pcap) as (c, f, _):
            relay = Relay(open_connection=f.open_connection,
                          create_datagram_endpoint=create(f) if create else
                          f.create_datagram_endpoint)
            f.set_udp_forwarder(relay.udp, 1)
            t, sink = await c.create_datagram_endpoint(Sink, remote_addr=(dst, 53))
            # net and host unreachable are soft errors for a Linux UDP socket:
            # reported only with IP_RECVERR (__udp4_lib_err)
            t._sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)  # type: ignore[attr-defined]
            t.sendto(b"where?")
            await sink.wait_for(lambda: sink.errors, timeout=wait)
            await asyncio.sleep(0.1)
            return [e.errno for e in sink.errors]

    errnos = run_on("virtual", main)
    icmps = [p[IP] for p in received(pcap, b"\x02\x00\x00\x00\x00\x01") if ICMP in p]
    return errnos, icmps


def assert_quotes_the_datagram(icmp: IP, dst: str) -> None:
    assert icmp.src == dst and icmp.dst == "10.0.0.1"      # from the original destination
    assert (icmp[IPerror].src, icmp[IPerror].dst) == ("10.0.0.1", dst)
    assert icmp[UDPerror].dport == 53 and bytes(icmp[UDPerror].payload) == b"where?"


def test_no_route_upstream_is_net_unreachable_at_the_client() -> None:
    errnos, icmps = relay_udp("198.18.0.1")                 # f has no route there
    (icmp,) = icmps
    assert (icmp[ICMP].type, icmp[ICMP].code) == (3, 0)
    assert_quotes_the_datagram(icmp, "198.18.0.1")
    assert errnos == [errno.ENETUNREACH]


def test_an_unanswered_neighbour_upstream_is_host_unreachable_at_the_client() -> None:
    """10.1.0.9 is on f's second link but nobody answers ARP: f's socket gets
    EHOSTUNREACH (as Linux's does when neighbour resolution fails, given
    IP_RECVERR) and the client an ICMP host unreachable."""
    def recverr_upstream(f: Stack) -> Any:
        # a failed neighbour is a soft error (host unreachable): a Linux UDP
        # socket hears it only with IP_RECVERR, so the upstream sets it here
        async def create(*args: Any, **kwargs: Any) -> Any:
            t, p = await f.create_datagram_endpoint(*args, **kwargs)
            t._sk.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)   # type: ignore[attr-defined]
            return t, p
        return create

    errnos, icmps = relay_udp("10.1.0.9", create=recverr_upstream, wait=10.0)
    (icmp,) = icmps
    assert (icmp[ICMP].type, icmp[ICMP].code) == (3, 1)
    assert_quotes_the_datagram(icmp, "10.1.0.9")
    assert errnos == [errno.EHOSTUNREACH]


def test_a_prohibited_upstream_is_administratively_prohibited_at_the_client() -> None:
    """EACCES (connect() over a `prohibit` route) -> code 13, which the
    client's icmp_err_convert makes EHOSTUNREACH."""
    def create(f: Stack) -> Any:
        async def prohibited(*args: Any, **kwargs: Any) -> Any:
            raise PermissionError(errno.EACCES, "Permission denied")
        return prohibited

    errnos, icmps = relay_udp("10.1.0.1", create=create)
    (icmp,) = icmps
    assert (icmp[ICMP].type, icmp[ICMP].code) == (3, 13)
    assert_quotes_the_datagram(icmp, "10.1.0.1")
    assert errnos == [errno.EHOSTUNREACH]


def test_a_refused_port_upstream_is_still_port_unreachable() -> None:
    errnos, icmps = relay_udp("10.1.0.1")                   # nobody on s:53
    (icmp,) = icmps
    assert (icmp[ICMP].type, icmp[ICMP].code) == (3, 3)
    assert errnos == [errno.ECONNREFUSED]


@pytest.mark.parametrize(("err", "code"), [(errno.ECONNREFUSED, 3), (errno.ENETUNREACH, 0),
                                           (errno.EHOSTUNREACH, 1), (errno.EACCES, 13),
                                           (errno.EMSGSIZE, None), (errno.ENOBUFS, None)])
def test_the_errno_to_code_table(err: int, code: int | None) -> None:
    assert udp_unreach_code(OSError(err, "x")) == code
