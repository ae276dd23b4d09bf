"""``tcpio plot``: time-sequence and congestion graphs of a TCP connection.

Two inputs, one picture:

- a **capture** (pcap or pcapng, from tcpio's ``PcapDevice``, tcpdump, tshark or
  dumpcap) of any TCP connection: ``analyze_pcap`` finds the connections,
  takes the direction that carries the data, and reads from the segments what
  an observer on the wire can know: data sent, retransmissions, the ACK line,
  SACK blocks, the receive window, RTT samples (Karn's rule: never from a
  retransmitted segment) and the bytes in flight (highest sequence sent minus
  the highest acknowledged, as Wireshark's ``tcp.analysis.bytes_in_flight``);
- a **trace** (tcpio's JSON lines, docs/internals.md "Tracing"):
  ``analyze_trace`` takes one connection's events and adds what only the
  sender knows: cwnd, ssthresh, srtt, rttvar, rto, packets in flight, and the
  cause of each retransmission.

Both give a ``PlotData`` (plain lists, so a test compares the figure's data,
not its pixels); ``render`` draws it with matplotlib (the optional extra
``tcpio[plot]``) as PNG or SVG: the time-sequence graph in the style of
tcptrace and Wireshark's Stevens graph on top (segments as vertical bars,
retransmissions in red with a marker, the ACK line, the window line
``ack + rwnd``, SACK blocks), the window sizes below, the RTT at the bottom.

A retransmission (Wireshark's ``tcp.analysis.retransmission`` rule, for a
capture): a segment with payload, SYN or FIN whose sequence number is below
the highest sequence already sent in its direction, unless it is a
keep-alive (one byte or none at the highest sequence minus one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from tcpio import _fast
from tcpio.core.addr import ip_ntoa
from tcpio.devices.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PcapFormatError,
    read_pcap,
)

wire = _fast.load("wire")

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_FLAG_LETTERS = "FSRPAUEC"          # the trace format's order (docs/internals.md)
_ETH_P_IP, _ETH_P_IPV6, _ETH_P_8021Q = 0x0800, 0x86DD, 0x8100
_IPV6_EXT = {0, 43, 60}             # hop-by-hop, routing, destination options
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
_MOD = 1 << 32

Endpoint = tuple[str, int]


# --- segments ------------------------------------------------------------------------


@dataclass
class Segment:
    """One TCP segment as seen on the wire (or in a trace)."""

    t: float
    src: Endpoint
    dst: Endpoint
    seq: int
    ack: int
    length: int                     # payload bytes
    flags: int
    window: int                     # the raw 16-bit field (scaled later, if known)
    wscale: int | None = None       # the option, in a SYN
    sack: tuple[tuple[int, int], ...] = ()


def flags_text(flags: int) -> str:
    return "".join(c for i, c in enumerate(_FLAG_LETTERS) if flags >> i & 1)


def flags_value(text: str) -> int:
    return sum(1 << _FLAG_LETTERS.index(c) for c in text if c in _FLAG_LETTERS)


def _ip_from(frame: bytes, linktype: int) -> tuple[int, int] | None:
    """(ethertype-like version marker, offset of the IP header), or None."""
    if linktype == LINKTYPE_ETHERNET:
        off, etype = 14, int.from_bytes(frame[12:14], "big")
        while etype == _ETH_P_8021Q and len(frame) >= off + 4:
            etype = int.from_bytes(frame[off + 2:off + 4], "big")
            off += 4
        return etype, off
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6, 12, 14):
        return (_ETH_P_IPV6 if frame[:1] and frame[0] >> 4 == 6 else _ETH_P_IP), 0
    if linktype == LINKTYPE_LINUX_SLL:
        return int.from_bytes(frame[14:16], "big"), 16
    if linktype == LINKTYPE_LINUX_SLL2:
        return int.from_bytes(frame[0:2], "big"), 20
    if linktype == LINKTYPE_NULL:
        return (_ETH_P_IPV6 if frame[:1] and frame[4:5] and frame[4] >> 4 == 6
                else _ETH_P_IP), 4
    return None


def _ipv6_addr(b: bytes) -> str:
    import ipaddress
    return str(ipaddress.IPv6Address(b))


def parse_frame(t: float, linktype: int, frame: bytes) -> Segment | None:
    """The TCP segment in a captured frame (IPv4 or IPv6), or None."""
    where = _ip_from(frame, linktype)
    if where is None:
        return None
    etype, off = where
    try:
        if etype == _ETH_P_IP:
            ip = wire.parse_ipv4(frame, off)
            if ip.proto != 6 or ip.frag_offset or ip.mf:
                return None
            tcp_off = off + ip.ihl * 4
            ip_payload = ip.total_length - ip.ihl * 4
            src, dst = ip_ntoa(ip.src), ip_ntoa(ip.dst)
        elif etype == _ETH_P_IPV6:
            if len(frame) < off + 40:
                return None
            nxt, plen = frame[off + 6], int.from_bytes(frame[off + 4:off + 6], "big")
            src, dst = _ipv6_addr(frame[off + 8:off + 24]), _ipv6_addr(frame[off + 24:off + 40])
            tcp_off, ip_payload = off + 40, plen
            while nxt in _IPV6_EXT and len(frame) >= tcp_off + 8:
                hlen = (frame[tcp_off + 1] + 1) * 8
                nxt = frame[tcp_off]
                tcp_off += hlen
                ip_payload -= hlen
            if nxt != 6:
                return None
        else:
            return None
        th = wire.parse_tcp(frame, tcp_off)
    except ValueError:
        return None
    o = th.options
    return Segment(t, (src, th.sport), (dst, th.dport), th.seq, th.ack,
                   max(0, ip_payload - th.doff * 4), th.flags, th.window,
                   o.wscale if th.flags & SYN else None, tuple(o.sack_blocks))


def pcap_segments(path: str | IO[bytes]) -> list[Segment]:
    """Every TCP segment of a capture, in file order."""
    out = []
    for t, linktype, frame in read_pcap(path):  # type: ignore[arg-type]
        seg = parse_frame(t, linktype, frame)
        if seg is not None:
            out.append(seg)
    return out


# --- what the figure shows -------------------------------------------------------------


@dataclass
class PlotData:
    """The series of one connection's figure; sequence numbers relative to ``isn``.

    Times are seconds from the connection's first segment (``t0`` is that
    segment's absolute time).  ``retransmissions`` are the marks the figure
    draws (one per retransmitted segment), ``retrans_causes`` their causes
    (trace only: ``rto``, ``loss``, ``tlp``).  Window series are in bytes for a
    capture; ``cwnd``/``ssthresh``/``in_flight_segs`` (trace) are in segments.
    """

    title: str
    source: str                                   # "pcap" or "trace"
    sender: Endpoint
    receiver: Endpoint
    isn: int = 0
    t0: float = 0.0
    data: list[tuple[float, int, int]] = field(default_factory=list)
    retransmissions: list[tuple[float, int, int]] = field(default_factory=list)
    retrans_causes: list[str] = field(default_factory=list)
    acks: list[tuple[float, int]] = field(default_factory=list)
    window: list[tuple[float, int]] = field(default_factory=list)       # ack + rwnd
    sacks: list[tuple[float, int, int]] = field(default_factory=list)
    rtt: list[tuple[float, float]] = field(default_factory=list)         # samples, s
    in_flight: list[tuple[float, int]] = field(default_factory=list)     # bytes
    cwnd: list[tuple[float, int]] = field(default_factory=list)          # segments
    ssthresh: list[tuple[float, int]] = field(default_factory=list)
    srtt: list[tuple[float, float]] = field(default_factory=list)        # s
    rttvar: list[tuple[float, float]] = field(default_factory=list)
    rto: list[tuple[float, float]] = field(default_factory=list)
    in_flight_segs: list[tuple[float, int]] = field(default_factory=list)


class Conn:
    """The segments of one connection (both directions), found in a capture."""

    def __init__(self, a: Endpoint, b: Endpoint) -> None:
        self.a, self.b = a, b
        self.segments: list[Segment] = []
        self.payload = {a: 0, b: 0}

    @property
    def name(self) -> str:
        return f"{_ep(self.a)}-{_ep(self.b)}"

    def __repr__(self) -> str:
        return (f"Conn({self.name}, {len(self.segments)} segments, "
                f"{self.payload[self.a]}+{self.payload[self.b]} bytes)")


def _ep(e: Endpoint) -> str:
    return f"[{e[0]}]:{e[1]}" if ":" in e[0] else f"{e[0]}:{e[1]}"


def split_connections(segments: Iterable[Segment]) -> list[Conn]:
    """Group segments by connection, in order of first appearance.  A SYN
    (without ACK) after the 4-tuple's earlier segments starts a new connection
    (a reused port)."""
    conns: list[Conn] = []
    live: dict[frozenset[Endpoint], Conn] = {}
    for s in segments:
        key = frozenset((s.src, s.dst))
        c = live.get(key)
        if c is None or (s.flags & (SYN | ACK) == SYN and any(
                x.flags & (SYN | ACK) == SYN and x.src == s.src and x.seq != s.seq
                for x in c.segments)):
            c = Conn(s.src, s.dst)
            live[key] = c
            conns.append(c)
        c.segments.append(s)
        c.payload[s.src] += s.length
    return conns


def _unwrap(isn: int) -> Any:
    """seq -> offset from isn, following wraparound (sequence space > 4 GiB)."""
    state = {"base": 0, "last": 0}

    def rel(seq: int) -> int:
        r = (seq - isn) % _MOD + state["base"]
        if r < state["last"] - (1 << 31):
            state["base"] += _MOD
            r += _MOD
        elif r > state["last"] + (1 << 31) and r >= _MOD:
            r -= _MOD                     # an old segment from before the wrap
        state["last"] = max(state["last"], r)
        return r

    return rel


def analyze_connection(conn: Conn, sender: Endpoint | None = None) -> PlotData:
    """The figure's series for ``conn``, seen from the data sender (the side that
    sent more payload, unless ``sender`` names it)."""
    segs = conn.segments
    if sender is None:
        sender = conn.a if conn.payload[conn.a] >= conn.payload[conn.b] else conn.b
    receiver = conn.b if sender == conn.a else conn.a
    out_syn = next((s for s in segs if s.src == sender and s.flags & SYN), None)
    in_syn = next((s for s in segs if s.src == receiver and s.flags & SYN), None)
    first_out = next((s for s in segs if s.src == sender), None)
    isn = out_syn.seq if out_syn else (first_out.seq if first_out else 0)
    # Window scaling applies only when both SYNs carried the option (RFC 7323 2.2).
    rcv_shift = 0
    if out_syn and in_syn and out_syn.wscale is not None and in_syn.wscale is not None:
        rcv_shift = in_syn.wscale
    t0 = segs[0].t if segs else 0.0
    d = PlotData(title=f"{_ep(sender)} -> {_ep(receiver)}", source="pcap",
                 sender=sender, receiver=receiver, isn=isn, t0=t0)
    rel = _unwrap(isn)
    snd_max: int | None = None          # highest sequence sent + 1 (relative)
    snd_una: int | None = None
    sent: dict[int, tuple[float, bool]] = {}     # end -> (first sent, retransmitted)
    for s in segs:
        t = s.t - t0
        if s.src == sender:
            span = s.length + (1 if s.flags & SYN else 0) + (1 if s.flags & FIN else 0)
            if span == 0:
                continue
            start = rel(s.seq)
            end = start + span
            keepalive = (snd_max is not None and s.length <= 1 and not s.flags & (SYN | FIN)
                         and start == snd_max - 1)
            if snd_max is not None and start < snd_max and not keepalive:
                d.retransmissions.append((t, start, end))
                for e in [e for e in sent if start < e <= end]:
                    sent[e] = (sent[e][0], True)
            elif not keepalive:
                d.data.append((t, start, end))
                sent.setdefault(end, (t, False))
            if snd_max is None or end > snd_max:
                snd_max = end
            if snd_una is not None and s.length:
                d.in_flight.append((t, snd_max - snd_una))
        elif s.flags & ACK:
            ack = rel(s.ack)
            if s.flags & SYN and snd_max is None:
                continue
            win = s.window if s.flags & SYN else s.window << rcv_shift
            if snd_una is None or ack > snd_una:
                # RTT from the newest segment this ACK covers; none when it covers a
                # retransmitted segment (Karn: which transmission does it answer?).
                covered = [e for e in sent if (snd_una or 0) < e <= ack]
                if covered and not any(sent[e][1] for e in covered):
                    d.rtt.append((t, t - sent[max(covered)][0]))
                    for e in covered:
                        del sent[e]
                snd_una = ack
            d.acks.append((t, ack))
            d.window.append((t, ack + win))
            for left, right in s.sack:
                d.sacks.append((t, rel(left), rel(right)))
    return d


def analyze_pcap(path: str | IO[bytes], connection: str | None = None) -> list[PlotData]:
    """PlotData for each TCP connection in a capture that carried data (or the
    one whose name, ``A:P-B:P`` either way round, or index matches ``connection``)."""
    conns = split_connections(pcap_segments(path))
    conns = [c for c in conns if c.payload[c.a] or c.payload[c.b] or connection is not None]
    return [analyze_connection(c) for c in _select(conns, connection)]


def _select(conns: list[Conn], connection: str | None) -> list[Conn]:
    if connection is None:
        return conns
    if connection.isdigit():
        i = int(connection)
        return conns[i:i + 1]
    want = connection.replace(" ", "")
    picked = [c for c in conns if want in (c.name, f"{_ep(c.b)}-{_ep(c.a)}")]
    if not picked:
        raise ValueError(f"no connection {connection!r}; the capture has: "
                         + ", ".join(c.name for c in conns))
    return picked


# --- traces ----------------------------------------------------------------------------


def read_trace(path: str | IO[str]) -> Iterator[dict[str, Any]]:
    """The events of a tcpio trace (JSON lines; blank lines skipped)."""
    if isinstance(path, str):
        with open(path, encoding="utf-8") as f:
            yield from read_trace(f)
        return
    for line in path:
        line = line.strip()
        if line:
            yield json.loads(line)


def analyze_trace(events: Iterable[dict[str, Any]], sock: int | None = None) -> list[PlotData]:
    """PlotData for each traced connection that sent or received data (or the one
    with id ``sock``), seen from the traced socket, data in the direction that
    carried more payload."""
    by_sock: dict[int, list[dict[str, Any]]] = {}
    for ev in events:
        if "sock" in ev and ev.get("ev") != "trace_start":
            by_sock.setdefault(int(ev["sock"]), []).append(ev)
    out = []
    for sid, evs in by_sock.items():
        if sock is not None and sid != sock:
            continue
        sent = sum(e.get("len", 0) for e in evs if e["ev"] == "tcp_transmit_skb")
        rcvd = sum(e.get("len", 0) for e in evs if e["ev"] == "tcp_probe")
        if sock is None and not (sent or rcvd):
            continue
        out.append(_trace_connection(sid, evs, sending=sent >= rcvd))
    return out


def _trace_connection(sid: int, evs: list[dict[str, Any]], sending: bool) -> PlotData:
    first = evs[0]
    local = (str(first.get("saddr")), int(first.get("sport", 0)))
    peer = (str(first.get("daddr")), int(first.get("dport", 0)))
    sender, receiver = (local, peer) if sending else (peer, local)
    data_ev = "tcp_transmit_skb" if sending else "tcp_probe"
    ack_ev = "tcp_probe" if sending else "tcp_transmit_skb"
    syn = next((e for e in evs if e["ev"] == data_ev and "S" in e.get("flags", "")), None)
    first_data = next((e for e in evs if e["ev"] == data_ev), None)
    isn = int(syn["seq"]) if syn else int(first_data["seq"]) if first_data else 0
    t0 = float(first["t"])
    d = PlotData(title=f"{_ep(sender)} -> {_ep(receiver)} (sock {sid})", source="trace",
                 sender=sender, receiver=receiver, isn=isn, t0=t0)
    rel = _unwrap(isn)
    snd_max: int | None = None
    cause: str | None = None
    for e in evs:
        t = float(e["t"]) - t0
        ev = e["ev"]
        if ev == "tcp_retransmit_skb":
            cause = str(e.get("cause", ""))
        if ev == data_ev:
            flags = flags_value(e.get("flags", ""))
            span = int(e.get("len", 0)) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            if span:
                start = rel(int(e["seq"]))
                end = start + span
                # The sender knows: its own retrans flag.  A receiver's view uses
                # the capture rule (below the highest sequence seen).
                again = bool(e.get("retrans")) if sending else (
                    snd_max is not None and start < snd_max)
                if again:
                    d.retransmissions.append((t, start, end))
                    d.retrans_causes.append(cause or "")
                else:
                    d.data.append((t, start, end))
                snd_max = end if snd_max is None else max(snd_max, end)
            cause = None
        elif ev == ack_ev and "A" in e.get("flags", ""):
            ack = rel(int(e["ack"]))
            if snd_max is not None:
                d.acks.append((t, ack))
                d.window.append((t, ack + int(e.get("win", 0))))
                for left, right in e.get("sack") or ():
                    d.sacks.append((t, rel(int(left)), rel(int(right))))
        if sending and "snd_cwnd" in e:
            _change(d.cwnd, t, int(e["snd_cwnd"]))
            ss = int(e.get("ssthresh", TCP_INFINITE_SSTHRESH))
            if ss < TCP_INFINITE_SSTHRESH:
                _change(d.ssthresh, t, ss)
            if e.get("srtt_us"):
                _change(d.srtt, t, e["srtt_us"] / 1e6)
                _change(d.rttvar, t, e.get("rttvar_us", 0) / 1e6)
            if e.get("rto_us"):
                _change(d.rto, t, e["rto_us"] / 1e6)
            if "in_flight" in e:
                _change(d.in_flight_segs, t, int(e["in_flight"]))
    return d


def _change(series: list[Any], t: float, value: float) -> None:
    """Append (t, value) if the value changed: a step series keeps its steps only."""
    if not series or series[-1][1] != value:
        series.append((t, value))


# --- drawing ---------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise SystemExit("tcpio plot needs matplotlib: pip install 'tcpio[plot]'") from exc
    matplotlib.use("Agg")           # files only; never a window
    import matplotlib.pyplot as plt
    return plt


def _steps(points: list[tuple[float, Any]]) -> tuple[list[float], list[Any]]:
    xs: list[float] = []
    ys: list[Any] = []
    for t, v in points:
        if xs:
            xs.append(t)
            ys.append(ys[-1])
        xs.append(t)
        ys.append(v)
    return xs, ys


def render(d: PlotData, path: str) -> str:
    """Draw ``d`` to ``path`` (``.png`` or ``.svg``, by its suffix); returns the path."""
    plt = _pyplot()
    from matplotlib.collections import LineCollection

    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True,
                             gridspec_kw={"height_ratios": [3, 1.2, 1.2]})
    ts, cw, rt = axes
    # Time-sequence graph (tcptrace / Stevens).
    if d.data:
        ts.add_collection(LineCollection([[(t, s), (t, e)] for t, s, e in d.data],
                                         colors="black", linewidths=1.2, label="data sent"))
        ts.plot([t for t, _, _ in d.data], [e for _, _, e in d.data], ls="", marker="_",
                color="black", markersize=4)
    if d.retransmissions:
        ts.add_collection(LineCollection([[(t, s), (t, e)] for t, s, e in d.retransmissions],
                                         colors="red", linewidths=2.0))
        ts.plot([t for t, _, _ in d.retransmissions], [e for _, _, e in d.retransmissions],
                ls="", marker="x", color="red", markersize=7, gid="retransmissions",
                label=f"retransmission ({len(d.retransmissions)})")
    if d.sacks:
        ts.add_collection(LineCollection([[(t, s), (t, e)] for t, s, e in d.sacks],
                                         colors="tab:purple", linewidths=3, alpha=0.6,
                                         label="SACK block"))
    if d.acks:
        ts.plot(*_steps(d.acks), color="tab:green", lw=1, label="ACK")
    if d.window:
        ts.plot(*_steps(d.window), color="tab:olive", lw=1, ls="--",
                label="receive window (ack + rwnd)")
    ts.set_ylabel(f"sequence offset (bytes, ISN {d.isn})")
    ts.set_title(f"{d.title}  [{d.source}]")
    ts.autoscale()
    ts.legend(loc="upper left", fontsize=8)
    ts.grid(alpha=0.3)
    # Windows.
    if d.cwnd:
        cw.plot(*_steps(d.cwnd), color="tab:blue", label="cwnd (segments)")
        if d.ssthresh:
            cw.plot(*_steps(d.ssthresh), color="tab:orange", label="ssthresh (segments)")
        if d.in_flight_segs:
            cw.plot(*_steps(d.in_flight_segs), color="tab:gray", lw=0.8,
                    label="in flight (segments)")
        cw.set_ylabel("segments")
    else:
        if d.in_flight:
            cw.plot(*_steps(d.in_flight), color="tab:gray", label="bytes in flight")
        cw.set_ylabel("bytes")
    if cw.get_legend_handles_labels()[0]:
        cw.legend(loc="upper left", fontsize=8)
    cw.grid(alpha=0.3)
    # RTT.
    if d.rtt:
        rt.plot([t for t, _ in d.rtt], [v * 1e3 for _, v in d.rtt], ls="", marker=".",
                color="tab:blue", label="RTT samples")
    if d.srtt:
        rt.plot(*_steps([(t, v * 1e3) for t, v in d.srtt]), color="tab:blue", label="srtt")
    if d.rto:
        rt.plot(*_steps([(t, v * 1e3) for t, v in d.rto]), color="tab:red", lw=0.8,
                label="rto")
    if d.rto:
        rt.set_yscale("log")            # the RTO (>= 200 ms) dwarfs a LAN's srtt
    else:
        rt.set_ylim(bottom=0)
        rt.ticklabel_format(axis="y", useOffset=False)
    rt.set_ylabel("ms")
    rt.set_xlabel("time (s)")
    if rt.get_legend_handles_labels()[0]:
        rt.legend(loc="upper left", fontsize=8)
    rt.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": "tcpio plot"} if path.endswith(".png") else None)
    plt.close(fig)
    return path


# --- command line ----------------------------------------------------------------------

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
               b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a"}


def is_capture(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in PCAP_MAGICS


def analyze_file(path: str, connection: str | None = None) -> list[PlotData]:
    """A capture or a trace, told apart by the file's first bytes."""
    if is_capture(path):
        return analyze_pcap(path, connection)
    sock = int(connection) if connection is not None else None
    return analyze_trace(read_trace(path), sock)


def plot_file(path: str, out: str, fmt: str = "png", connection: str | None = None,
              limit: int | None = None) -> list[tuple[str, PlotData]]:
    """Draw each connection of ``path`` (capture or trace) into directory ``out``
    as ``<input>-<n>.<fmt>``; returns (file, data) pairs."""
    os.makedirs(out, exist_ok=True)
    stem = os.path.splitext(os.path.basename(path))[0]
    done = []
    for i, d in enumerate(analyze_file(path, connection)[:limit]):
        done.append((render(d, os.path.join(out, f"{stem}-{i}.{fmt}")), d))
    return done


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a capture (pcap/pcapng) or a tcpio trace (JSON lines)")
    p.add_argument("-o", "--out", default=".", metavar="DIR",
                   help="directory for the figures (default: current)")
    p.add_argument("--format", choices=("png", "svg"), default="png")
    p.add_argument("-c", "--connection", metavar="CONN",
                   help="only this connection: A:P-B:P or its index (capture), "
                        "the sock id (trace)")
    p.add_argument("--list", action="store_true",
                   help="list the connections and what the figure would mark; draw nothing")
    p.add_argument("--limit", type=int, default=None, help="draw at most this many")


def run(args: argparse.Namespace) -> int:
    try:
        if args.list:
            for i, d in enumerate(analyze_file(args.input, args.connection)):
                print(summary_line(i, d))
            return 0
        for path, d in plot_file(args.input, args.out, args.format, args.connection, args.limit):
            print(f"{path}: {summary_line(None, d)}")
    except (OSError, ValueError, PcapFormatError) as exc:
        print(f"tcpio plot: {exc}", file=sys.stderr)
        return 1
    return 0


def summary_line(i: int | None, d: PlotData) -> str:
    sent = sum(e - s for _, s, e in d.data)
    head = f"{i}: " if i is not None else ""
    return (f"{head}{d.title}: {len(d.data)} segments ({sent} bytes), "
            f"{len(d.retransmissions)} retransmissions, {len(d.acks)} ACKs, "
            f"{len(d.rtt) or len(d.srtt)} RTT samples")


def demo_plots(pcaps: Iterable[str], out: str, fmt: str = "png") -> list[str]:
    """``tcpio demo --plot DIR``: a figure per connection of each capture."""
    files = []
    for pcap in pcaps:
        files += [p for p, _ in plot_file(pcap, out, fmt)]
    return files
