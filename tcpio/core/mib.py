"""MIB counters like the kernel's /proc/net/snmp and netstat (netstat -s).

The counters live in one dict so the hot path does ``mib["InReceives"] += 1``
(one dict operation) and users read a dict.  Names are the kernel's bare
names (InReceives, InHdrErrors, ListenOverflows, ...); where two kernel groups
share a name, the group is the prefix: "UdpInErrors", "IcmpInErrors",
"UdpNoPorts", "TcpInErrors".
"""

from __future__ import annotations

from collections import defaultdict


class Mib(defaultdict):
    """A defaultdict(int) of counters; ``snapshot()`` gives a plain dict."""

    def __init__(self) -> None:
        super().__init__(int)

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self.items()))

    def delta(self, before: dict[str, int]) -> dict[str, int]:
        """Counters that moved since ``before`` (a snapshot)."""
        return {k: v - before.get(k, 0) for k, v in sorted(self.items())
                if v != before.get(k, 0)}
