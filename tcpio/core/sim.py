"""VirtualNetwork: several sans-IO hosts joined by links, under a virtual clock.

For deterministic tests and demos: nothing here reads a real clock.  Each
step advances ``net.now`` to the earliest pending event (a frame arriving at
the far end of a link, or a host timer), processes it, moves every frame the
hosts emitted onto their links (through each direction's ``Impairment``), and
calls ``sk.wakeup()`` for every sock a host reported in ``take_wakeups()``.

    net = VirtualNetwork()
    a, b = net.host("a", seed=1), net.host("b", seed=2)
    link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24",
                    impairment=Impairment(loss=0.1, seed=3))
    ...user calls on a.udp / b.udp ...
    net.run_for(1.0)
    link.capture        # [(time, frame), ...] as put on the wire, both directions
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

from tcpio.core.addr import parse_cidr
from tcpio.core.host import Host
from tcpio.core.settings import Settings
from tcpio.devices.impair import Impairment

MAX_STEPS = 5_000_000    # a run that never settles is a bug: fail loudly instead of hanging


class Link:
    """One point-to-point link; ``capture`` holds every frame sent on it."""

    def __init__(self, index: int, kind: str, a: Host, ifa: int, b: Host, ifb: int,
                 imp_ab: Impairment | None, imp_ba: Impairment | None) -> None:
        self.index = index
        self.kind = kind
        self.a, self.ifa, self.b, self.ifb = a, ifa, b, ifb
        self.impairment_ab = imp_ab
        self.impairment_ba = imp_ba
        self.up = True
        self.capture: list[tuple[float, bytes]] = []
        # (time, sender name, frame): which way each captured frame went.
        self.trace: list[tuple[float, str, bytes]] = []
        # (time, receiver name, frame): what arrived, after the impairment.
        self.delivered: list[tuple[float, str, bytes]] = []
        self.capture_enabled = True
        # Optional test hook: drop(sender, frame) -> True loses that frame on the wire
        # (after capture), for losses a test wants to choose exactly.
        self.drop: Callable[[Host, bytes], bool] | None = None
        self.dropped = 0

    def impairment_from(self, host: Host) -> Impairment | None:
        return self.impairment_ab if host is self.a else self.impairment_ba

    def frames_from(self, host: Host) -> list[bytes]:
        return [f for _, name, f in self.trace if name == host.name]

    def write_pcap(self, path: str) -> int:
        """Write ``capture`` (virtual timestamps) to a pcap file; return the frame count."""
        from tcpio.devices.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter
        writer = PcapWriter(path, LINKTYPE_ETHERNET if self.kind == "ether" else LINKTYPE_RAW)
        try:
            for when, frame in self.capture:
                writer.write(frame, when)
        finally:
            writer.close()
        return len(self.capture)

    def __repr__(self) -> str:
        return f"<Link {self.index} {self.a.name}:{self.ifa} <-> {self.b.name}:{self.ifb}>"


class VirtualNetwork:
    def __init__(self, seed: int = 0, debug: bool = True) -> None:
        self.seed = seed
        self.debug = debug
        self.now = 0.0
        self.hosts: dict[str, Host] = {}
        self.links: list[Link] = []
        # (host id, ifindex) -> (link, peer host, peer ifindex)
        self._ports: dict[tuple[int, int], tuple[Link, Host, int]] = {}
        self._events: list[tuple[float, int, Host, int, bytes, Link]] = []
        self._seq = itertools.count()
        self.steps = 0
        self.max_steps = MAX_STEPS
        self.stats = {"frames_sent": 0, "frames_delivered": 0, "unlinked": 0, "link_down": 0}

    # ----- building the network -----------------------------------------------------

    def host(self, name: str, seed: int | None = None, settings: Settings | None = None
             ) -> Host:
        if name in self.hosts:
            raise ValueError(f"duplicate host name {name!r}")
        if seed is None:
            seed = self.seed * 1000 + len(self.hosts) + 1
        h = Host(name=name, seed=seed, settings=settings)
        h.debug = self.debug
        h.now = self.now
        self.hosts[name] = h
        return h

    def link(self, a: Host, b: Host, addr_a: str | None = None, addr_b: str | None = None,
             impairment: Impairment | None = None, impairment_ba: Impairment | None = None,
             mtu: int = 1500, kind: str = "ether") -> Link:
        """Join ``a`` and ``b``; ``impairment`` acts on a->b, ``impairment_ba`` on b->a."""
        index = len(self.links) + 1
        mac_a = mac_b = None
        if kind == "ether":
            # Deterministic, locally administered: 02:00:00:<link>:<side>.
            mac_a = bytes([0x02, 0, 0, index >> 8 & 0xFF, index & 0xFF, 1])
            mac_b = bytes([0x02, 0, 0, index >> 8 & 0xFF, index & 0xFF, 2])
        ifa = a.add_interface(f"eth{len(a.interfaces)}", link=kind, mac=mac_a, mtu=mtu)
        ifb = b.add_interface(f"eth{len(b.interfaces)}", link=kind, mac=mac_b, mtu=mtu)
        link = Link(index, kind, a, ifa, b, ifb, impairment, impairment_ba)
        self.links.append(link)
        self._ports[(id(a), ifa)] = (link, b, ifb)
        self._ports[(id(b), ifb)] = (link, a, ifa)
        for host, ifindex, addr in ((a, ifa, addr_a), (b, ifb, addr_b)):
            if addr:
                ip, plen = parse_cidr(addr)
                host.now = self.now
                host.add_address(ifindex, ip, plen)
        self._flush_all()
        return link

    # ----- moving frames ------------------------------------------------------------

    def _transmit(self, host: Host, ifindex: int, frame: bytes | bytearray) -> None:
        port = self._ports.get((id(host), ifindex))
        if port is None:
            self.stats["unlinked"] += 1
            return
        link, peer, peer_if = port
        if not link.up:
            self.stats["link_down"] += 1
            return
        # Looked up per frame, so a test may swap a link's impairment mid-run.
        imp = link.impairment_from(host)
        data = bytes(frame)
        self.stats["frames_sent"] += 1
        now = self.now
        if link.capture_enabled:
            link.capture.append((now, data))
            link.trace.append((now, host.name, data))
        if link.drop is not None and link.drop(host, data):
            link.dropped += 1
            return
        fates = imp.fate(data, now) if imp is not None else [(now, data)]
        for when, out in fates:
            heapq.heappush(self._events, (when, next(self._seq), peer, peer_if, out, link))

    def _send_output(self, host: Host) -> None:
        # _transmit only queues events: it never adds to the host's output.
        for ifindex, frame in host.take_output():
            self._transmit(host, ifindex, frame)

    def _flush(self, host: Host) -> None:
        self._send_output(host)
        for sk in host.take_wakeups():
            wakeup = getattr(sk, "wakeup", None)
            if wakeup is not None:
                wakeup()
        # A wakeup may have made the application send: move that too.
        self._send_output(host)

    def _flush_all(self) -> None:
        for host in self.hosts.values():
            self._flush(host)

    # ----- the clock ----------------------------------------------------------------

    def next_event_time(self) -> float | None:
        """When the next frame arrives or timer fires (never before ``now``)."""
        times = [self._events[0][0]] if self._events else []
        for host in self.hosts.values():
            d = host.next_deadline()
            if d is not None:
                times.append(d)
        if not times:
            return None
        return max(self.now, min(times))

    def step(self) -> bool:
        """Process the earliest event; False when nothing is pending."""
        self._flush_all()
        t = self.next_event_time()
        if t is None:
            return False
        self.steps += 1
        if self.steps > self.max_steps:
            raise RuntimeError("VirtualNetwork: too many steps (a timer or frame loop?)")
        self.now = t
        for h in self.hosts.values():
            h.now = t
        # Timers due at t run before frames arriving at t (like a kernel's softirq order
        # is arbitrary; this one is fixed, so runs are reproducible).
        for host in self.hosts.values():
            d = host.next_deadline()
            if d is not None and d <= t:
                host.poll(t)
                self._flush(host)
                return True
        _, _, host, ifindex, frame, link = heapq.heappop(self._events)
        if link.capture_enabled:
            link.delivered.append((t, host.name, frame))
        self.stats["frames_delivered"] += 1
        host.receive(ifindex, frame, t)
        self._flush(host)
        return True

    def run(self, until: float) -> None:
        """Process every event up to and including ``until``; then ``now = until``."""
        while True:
            self._flush_all()
            t = self.next_event_time()
            if t is None or t > until:
                break
            self.step()
        self.now = max(self.now, until)
        for h in self.hosts.values():
            h.now = self.now

    def run_for(self, seconds: float) -> None:
        self.run(self.now + seconds)

    def run_until(self, predicate: Callable[[], Any], timeout: float = 60.0) -> bool:
        """Step until ``predicate()`` is true (True) or ``timeout`` virtual seconds pass."""
        deadline = self.now + timeout
        while True:
            self._flush_all()
            if predicate():
                return True
            t = self.next_event_time()
            if t is None or t > deadline:
                self.now = max(self.now, deadline)
                for h in self.hosts.values():
                    h.now = self.now
                return bool(predicate())
            self.step()

    def settle(self, timeout: float = 60.0) -> None:
        """Run until no frames are in flight (timers may still be pending)."""
        self.run_until(lambda: not self._events and not any(
            h._output for h in self.hosts.values()), timeout)
