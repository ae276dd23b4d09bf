"""``tcpio plot``: what the figure shows is what happened on the wire.

Oracles: the segments a test chose to drop on a virtual link (their
sequence numbers are known before the plot reads the capture), Wireshark's
TCP analysis of the same capture (``tcp.analysis.retransmission``), tshark's
own pcapng conversion of a capture for the reader, Pillow and ElementTree
for the files, and the trace format of docs/internals.md ("Tracing") for
trace input.  The kernel-to-kernel capture is in tests/tap/test_plot_kernel.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from tap.tshark import fields, needs_tshark
from tcp.helpers import sim_connect

from tcpio import plot
from tcpio._fast import load
from tcpio.core.host import Host
from tcpio.core.sim import Link, VirtualNetwork
from tcpio.devices.impair import Impairment
from tcpio.devices.pcap import read_pcap
from tcpio.trace import JsonLinesWriter

pytest.importorskip("matplotlib", reason="matplotlib (the plot extra) not installed")

wire = load("wire")
ROOT = Path(__file__).resolve().parent.parent
DELAY = 0.01            # one way, each direction


def transfer_with_drops(tmp_path: Path, drops: set[int], size: int = 300_000,
                        trace: Any = None) -> tuple[Path, list[int], Host]:
    """``size`` bytes from a to b over a virtual link with DELAY each way; the data
    frames of a numbered in ``drops`` (1 = the first data frame) are lost on the
    wire after the capture saw them.  Returns the capture, the relative sequence
    numbers of the dropped segments (tshark's relative numbering: the first data
    byte is 1) and the sender.  ``trace``: a sink for the sender's stack-wide
    trace (tcpio.trace), on from the SYN."""
    net = VirtualNetwork(seed=1)
    a, b = net.host("a"), net.host("b")
    link: Link = net.link(a, b, "10.0.0.1/24", "10.0.0.2/24", impairment=Impairment(delay=DELAY),
                          impairment_ba=Impairment(delay=DELAY))
    if trace is not None:
        a.tcp.set_trace(trace)
    c, s = sim_connect(net, a, b)
    count = [0]
    dropped_seq: list[int] = []

    def drop(sender: Host, frame: bytes) -> bool:
        if sender is not a or len(frame) <= 200:
            return False
        count[0] += 1
        if count[0] not in drops:
            return False
        dropped_seq.append(wire.parse_tcp(frame, 14 + (frame[14] & 0xF) * 4).seq)
        return True

    link.drop = drop
    data = bytes(size)
    sent, got = [0], bytearray()

    def pump() -> bool:
        if sent[0] < size:
            sent[0] += c.sendmsg(memoryview(data)[sent[0]:sent[0] + 65536])
        while s.readable():
            got.extend(s.recvmsg(1 << 20))
        return len(got) == size

    assert net.run_until(pump, 600)
    c.close()
    s.close()
    net.run_for(1.0)
    path = tmp_path / "transfer.pcap"
    link.write_pcap(str(path))
    iss = c.iss if hasattr(c, "iss") else None
    syn = next(f for _, f in link.capture if f[12:14] == b"\x08\x00" and f[23] == 6
               and wire.parse_tcp(f, 34).flags == 0x02)
    isn = wire.parse_tcp(syn, 34).seq
    assert iss is None or iss == isn
    return path, sorted((q - isn) % (1 << 32) for q in dropped_seq), a


def tshark_retransmissions(path: Path, which: str = "retransmission") -> list[int]:
    """Relative sequence numbers of the frames Wireshark flags tcp.analysis.<which>."""
    rows = fields(str(path), "tcp.seq", display_filter=f"tcp.analysis.{which}")
    return sorted(int(r[0]) for r in rows)


# --- the capture's marks ------------------------------------------------------------------

@needs_tshark
def test_each_dropped_segment_is_one_mark_and_wireshark_counts_the_same(tmp_path) -> None:
    path, dropped, a = transfer_with_drops(tmp_path, {10, 40, 70, 120})
    [d] = plot.analyze_pcap(str(path))
    assert [start for _, start, _ in d.retransmissions] == dropped
    assert a.mib["RetransSegs"] == len(dropped) == 4
    # Wireshark's analysis of the same file finds the same segments, flagging
    # each a retransmission or, when it follows the newest data by less than
    # its RTT estimate and is not at the ACK point, "out of order" (here the
    # ones RACK resent soon after new data went out): Wireshark's heuristic
    # for captures taken behind reordering, which this link does not do.
    # Which way each goes depends on timing; together they are the drops.
    # The kernel-to-kernel capture (tests/tap/test_plot_kernel.py) has none
    # of those and matches tcp.analysis.retransmission alone.
    wireshark = tshark_retransmissions(path)
    assert sorted(wireshark + tshark_retransmissions(path, "out_of_order")) == dropped
    assert wireshark
    # Every mark lies on a segment sent before (same bytes, later in time).
    first = {start: t for t, start, _ in d.data}
    for t, start, end in d.retransmissions:
        assert first[start] < t and end - start == 1448


@needs_tshark
def test_back_to_back_losses_wireshark_calls_the_second_out_of_order(tmp_path) -> None:
    """Two adjacent segments lost: the sender resends both.  Wireshark flags the
    first a (fast) retransmission and the second "out of order" (it arrived
    within an RTT of the highest sequence and not at the ACK point: its
    heuristic for a capture taken downstream of reordering).  The plot marks
    both: a capture of the sender's link has no reordering to confuse them."""
    path, dropped, _ = transfer_with_drops(tmp_path, {30, 31})
    [d] = plot.analyze_pcap(str(path))
    assert [start for _, start, _ in d.retransmissions] == dropped
    assert tshark_retransmissions(path) == dropped[:1]
    assert tshark_retransmissions(path, "out_of_order") == dropped[1:]


@needs_tshark
def test_a_lost_last_segment_resent_by_a_probe_is_one_mark(tmp_path) -> None:
    # The tail: nothing follows it, so no duplicate ACK; the loss probe resends it.
    path, dropped, a = transfer_with_drops(tmp_path, {100}, size=100 * 1448)
    [d] = plot.analyze_pcap(str(path))
    assert dropped == [99 * 1448 + 1]
    assert [(s, e) for _, s, e in d.retransmissions] == [(99 * 1448 + 1, 100 * 1448 + 1)]
    assert a.mib["TCPLossProbes"] == 1
    assert tshark_retransmissions(path) == dropped


def test_rtt_samples_follow_karn_and_the_link_delay(tmp_path) -> None:
    # The virtual link captures each frame as it is sent: an ACK leaves b one
    # link delay after the data left a, or later if b delays its ACK.
    path, _, _ = transfer_with_drops(tmp_path, {40})
    [d] = plot.analyze_pcap(str(path))
    assert d.rtt and min(v for _, v in d.rtt) == pytest.approx(DELAY)
    assert all(v >= DELAY - 1e-9 for _, v in d.rtt)
    # Karn: each ACK that moves snd_una gives one sample, except the one that
    # covers the retransmitted segment (56473 -> 130321 here, with SACK).
    advancing = [ack for i, (_, ack) in enumerate(d.acks) if i == 0 or ack > d.acks[i - 1][1]]
    assert len(d.rtt) == len(advancing) - 1
    # In flight: highest sent - highest acknowledged, positive at each data segment,
    # never above the receiver's window the sender respects.
    assert all(0 < v <= 65535 << 7 for _, v in d.in_flight)


def test_window_line_is_ack_plus_the_scaled_window(tmp_path) -> None:
    path, _, _ = transfer_with_drops(tmp_path, set(), size=50_000)
    segs = plot.pcap_segments(str(path))
    [conn] = plot.split_connections(segs)
    [d] = plot.analyze_pcap(str(path))
    syn_b = next(s for s in segs if s.src == d.receiver and s.flags & plot.SYN)
    last = [s for s in segs if s.src == d.receiver and not s.flags & plot.SYN][-1]
    shift = syn_b.wscale or 0
    assert shift > 0                        # tcpio scales its window
    assert d.window[-1][1] - d.acks[-1][1] == last.window << shift
    assert len(conn.segments) == len(segs)


# --- files ---------------------------------------------------------------------------------

@needs_tshark
def test_reader_reads_pcapng_as_tshark_converts_it(tmp_path) -> None:
    path, _, _ = transfer_with_drops(tmp_path, {5}, size=30_000)
    ng = tmp_path / "transfer.pcapng"
    subprocess.run(["tshark", "-r", str(path), "-F", "pcapng", "-w", str(ng)], check=True,
                   capture_output=True, timeout=120)
    assert ng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    classic, converted = list(read_pcap(str(path))), list(read_pcap(str(ng)))
    assert [f for _, _, f in converted] == [f for _, _, f in classic]
    assert [lt for _, lt, _ in converted] == [lt for _, lt, _ in classic]
    assert [t for t, _, _ in converted] == pytest.approx([t for t, _, _ in classic], abs=1e-9)
    [d_classic], [d_ng] = plot.analyze_pcap(str(path)), plot.analyze_pcap(str(ng))
    assert d_ng.retransmissions == d_classic.retransmissions and len(d_ng.data) > 10


def test_png_and_svg_are_valid_and_draw_every_mark(tmp_path) -> None:
    from PIL import Image

    path, dropped, _ = transfer_with_drops(tmp_path, {10, 40, 70})
    [d] = plot.analyze_pcap(str(path))
    png = plot.render(d, str(tmp_path / "t.png"))
    svg = plot.render(d, str(tmp_path / "t.svg"))
    with Image.open(png) as im:
        im.verify()
        assert im.format == "PNG" and im.size[0] > 500
    with Image.open(png) as im:
        assert im.info.get("Software") == "tcpio plot"
    root = ET.parse(svg).getroot()
    ns = {"svg": "http://www.w3.org/2000/svg"}
    [marks] = [g for g in root.iter("{http://www.w3.org/2000/svg}g")
               if g.get("id") == "retransmissions"]
    assert len(marks.findall(".//svg:use", ns)) == len(dropped) == 3


# --- traces ----------------------------------------------------------------------------------

def test_a_trace_tcpio_wrote_plots_the_same_marks_as_the_capture(tmp_path) -> None:
    """The sender's own trace (JSON lines written by tcpio during the transfer)
    and the capture of its link are independent records of one transfer: the
    figure from each marks the same segments, the ones the link dropped, and
    the trace's marks carry their causes; both files render."""
    from PIL import Image

    with JsonLinesWriter(str(tmp_path / "a.jsonl")) as w:
        path, dropped, a = transfer_with_drops(tmp_path, {10, 40, 70, 120}, trace=w)
    [from_pcap] = plot.analyze_pcap(str(path))
    [from_trace] = plot.analyze_file(str(tmp_path / "a.jsonl"))
    assert from_trace.source == "trace"
    marks = [(s, e) for _, s, e in from_trace.retransmissions]
    assert marks == [(s, e) for _, s, e in from_pcap.retransmissions]
    assert [s for s, _ in marks] == dropped and a.mib["RetransSegs"] == 4
    # Each was resent by a loss rule (SACK/RACK), none by a timer: the link
    # delivered everything after each drop, so duplicate ACKs followed.
    assert from_trace.retrans_causes == ["loss"] * 4
    # The congestion window fell at the first loss (CUBIC's decrease) and the
    # figure has the series the pcap cannot give.
    assert from_trace.ssthresh and from_trace.cwnd and from_trace.srtt
    png = plot.render(from_trace, str(tmp_path / "trace.png"))
    with Image.open(png) as im:
        im.verify()
        assert im.format == "PNG"
    root = ET.parse(plot.render(from_trace, str(tmp_path / "trace.svg"))).getroot()
    [g] = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("id") == "retransmissions"]
    assert len(g.findall(".//{http://www.w3.org/2000/svg}use")) == 4



def trace_event(t: float, ev: str, **kw: object) -> dict:
    base = {"t": t, "ev": ev, "sock": 7, "saddr": "10.0.0.1", "sport": 40000,
            "daddr": "10.0.0.2", "dport": 80}
    return {**base, **kw}


def snapshot(cwnd: int, ssthresh: int = 2147483647, srtt: int = 0, in_flight: int = 0,
             **kw: object) -> dict:
    return {"state": "TCP_ESTABLISHED", "ca_state": "Open", "snd_cwnd": cwnd,
            "ssthresh": ssthresh, "srtt_us": srtt, "rttvar_us": srtt // 2,
            "rto_us": 200000 + srtt, "in_flight": in_flight, **kw}


def test_trace_gives_marks_with_causes_and_the_window_series(tmp_path) -> None:
    """Events written as docs/internals.md "Tracing" specifies them."""
    isn = 4294967000                           # wraps past 2**32 during the transfer
    evs = [
        {"ev": "trace_start", "format": "tcpio-trace", "version": 1, "tcpio": "x"},
        trace_event(0.0, "inet_sock_set_state", oldstate="TCP_CLOSE", newstate="TCP_SYN_SENT"),
        trace_event(0.0, "tcp_transmit_skb", seq=isn, ack=0, len=0, flags="S", win=64240,
                    sack=[], retrans=False, **snapshot(10, in_flight=1)),
        trace_event(0.02, "tcp_probe", seq=9, ack=isn + 1, len=0, flags="SA", win=65535,
                    sack=[], **snapshot(10, srtt=20000)),
    ]
    seq = isn + 1
    for i in range(4):                        # four data segments at t=0.02
        evs.append(trace_event(0.02, "tcp_transmit_skb", seq=(seq + i * 1000) % 2**32,
                               ack=10, len=1000, flags="PA", win=64240, sack=[],
                               retrans=False, **snapshot(10, srtt=20000, in_flight=i + 1)))
    # The first is lost: SACKs for the others, fast retransmit, recovery.
    evs.append(trace_event(0.04, "tcp_probe", seq=10, ack=seq % 2**32, len=0, flags="A",
                           win=65535, sack=[[(seq + 1000) % 2**32, (seq + 4000) % 2**32]],
                           **snapshot(10, srtt=20000, in_flight=1)))
    evs.append(trace_event(0.04, "tcp_cong_state_set", old="Open", new="Recovery"))
    evs.append(trace_event(0.04, "tcp_retransmit_skb", seq=seq % 2**32,
                           end_seq=(seq + 1000) % 2**32, cause="loss",
                           **snapshot(5, ssthresh=7, srtt=20000, in_flight=1)))
    evs.append(trace_event(0.04, "tcp_transmit_skb", seq=seq % 2**32, ack=10, len=1000,
                           flags="A", win=64240, sack=[], retrans=True,
                           **snapshot(5, ssthresh=7, srtt=20000, in_flight=2)))
    evs.append(trace_event(0.06, "tcp_probe", seq=10, ack=(seq + 4000) % 2**32, len=0,
                           flags="A", win=65535, sack=[], **snapshot(7, ssthresh=7,
                                                                     srtt=21000)))
    evs.append(trace_event(0.5, "tcp_timer", timer="loss_probe", backoff=0,
                           **snapshot(7, ssthresh=7, srtt=21000)))
    evs.append(trace_event(0.5, "tcp_retransmit_skb", seq=(seq + 3000) % 2**32,
                           end_seq=(seq + 4000) % 2**32, cause="tlp", **snapshot(7, ssthresh=7)))
    evs.append(trace_event(0.5, "tcp_transmit_skb", seq=(seq + 3000) % 2**32, ack=10, len=1000,
                           flags="A", win=64240, sack=[], retrans=True, **snapshot(7, ssthresh=7)))
    path = tmp_path / "t.jsonl"
    path.write_text("".join(__import__("json").dumps(e) + "\n" for e in evs))

    [d] = plot.analyze_file(str(path))
    assert d.source == "trace" and d.sender == ("10.0.0.1", 40000) and d.isn == isn
    assert [(s, e) for _, s, e in d.data] == [(0, 1), (1, 1001), (1001, 2001), (2001, 3001),
                                              (3001, 4001)]
    assert d.retransmissions == [(0.04, 1, 1001), (0.5, 3001, 4001)]
    assert d.retrans_causes == ["loss", "tlp"]
    assert d.sacks == [(0.04, 1001, 4001)]
    assert d.acks == [(0.02, 1), (0.04, 1), (0.06, 4001)]       # the SYN-ACK's first
    assert d.window == [(0.02, 1 + 65535), (0.04, 1 + 65535), (0.06, 4001 + 65535)]
    assert d.cwnd == [(0.0, 10), (0.04, 5), (0.06, 7)]
    assert d.ssthresh == [(0.04, 7)]          # TCP_INFINITE_SSTHRESH is not drawn
    assert d.srtt[0] == (0.02, 0.02) and d.rto[0] == (0.0, 0.2)
    out = plot.render(d, str(tmp_path / "t.svg"))
    assert ET.parse(out).getroot().tag.endswith("svg")


# --- the command ------------------------------------------------------------------------------

def run_tcpio(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "tcpio", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT, check=False)


def test_tcpio_plot_command_lists_and_draws(tmp_path) -> None:
    path, dropped, _ = transfer_with_drops(tmp_path, {10, 40})
    listed = run_tcpio("plot", str(path), "--list")
    assert listed.returncode == 0, listed.stderr
    assert "10.0.0.1:" in listed.stdout and f"{len(dropped)} retransmissions" in listed.stdout
    out = tmp_path / "figs"
    drawn = run_tcpio("plot", str(path), "-o", str(out), "--format", "svg")
    assert drawn.returncode == 0, drawn.stderr
    assert sorted(os.listdir(out)) == ["transfer-0.svg"]
    bad = run_tcpio("plot", str(path), "-c", "1.2.3.4:5-6.7.8.9:10")
    assert bad.returncode == 1 and "no connection" in bad.stderr


def test_demo_plot_draws_each_connection_it_captured(tmp_path) -> None:
    out = tmp_path / "demo"
    proc = run_tcpio("demo", "--builtin-http", "--clients", "2", "--concurrency", "1",
                     "--per-connection", "2", "--requests", "4", "--duration", "30",
                     "--size", "20000", "--plot", str(out))
    assert proc.returncode == 0, proc.stderr
    pngs = sorted(p for p in os.listdir(out) if p.endswith(".png"))
    expected = sum(len(plot.analyze_pcap(str(out / f"wire{k}.pcap"))) for k in (1, 2))
    assert expected >= 2 and len(pngs) == expected
    assert f"plots: {expected} figures" in proc.stdout
