"""A bare ACK built in one compiled call is the ACK tcp_transmit_skb builds.

tcp_send_ack hands a bare ACK (no SACK block pending, nothing xmit_plain
declines) to ``tcp_fast.ack_whole`` where the send loop's frames go whole
(``xmit_path``): one call builds the frame (ack_xmit: the same timestamp,
window and IP ID, taken in tcp_transmit_skb's order) and counts it
(burst_sent).
The oracle is tcp_transmit_skb -> ip_queue_xmit_tcp's path for the same
segment (``_tcp_xmit_path`` off): the same bytes and the same counters.
A pending SACK block still takes the general path, which carries it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tcpio.core.tcp import tcp_output

from .helpers import ACK, TcpOptions, passive_open


def _ack_after_data(monkeypatch: pytest.MonkeyPatch, whole: bool, ooo: bool = False,
                    calls: list[Any] | None = None) -> tuple[bytes, dict, int, int]:
    """The ACK a connection sends for data (``ooo``: after a hole, with a
    SACK block), its host's counters and the sock's segs_out / pending."""
    c = passive_open(syn_opts=TcpOptions(mss=1460, ts_val=100, sack_ok=True, wscale=7))
    if not whole:
        monkeypatch.setattr(tcp_output, "_tcp_xmit_path", lambda *args: None)
    c.host.advance(c.host.now + 0.25)
    opts = TcpOptions(ts_val=200, ts_ecr=c.synack.opts.ts_val)
    if ooo:
        c.send(b"b" * 100, seq=(c.snd + 100) & 0xFFFFFFFF, opts=opts)
    else:
        c.send(b"a" * 100, opts=opts)
    c.host._txq.clear()
    if calls is not None:
        calls.clear()
    tcp_output.tcp_send_ack(c.sk, c.host.now)
    [(_, frame)] = c.host._txq
    return bytes(frame), c.host.mib.snapshot(), c.sk.segs_out, c.sk.ack_pending


@pytest.mark.parametrize("ooo", [False, True], ids=["in_order", "with_sack_block"])
def test_a_bare_ack_built_whole_is_the_layered_paths_ack(monkeypatch: pytest.MonkeyPatch,
                                                         ooo: bool) -> None:
    calls: list[Any] = []
    real = tcp_output._tcp_fast.ack_whole
    monkeypatch.setattr(tcp_output._tcp_fast, "ack_whole",
                        lambda *args: calls.append(args) or real(*args))
    whole = _ack_after_data(monkeypatch, whole=True, ooo=ooo, calls=calls)
    assert len(calls) == (0 if ooo else 1)     # a SACK block: the general path
    monkeypatch.undo()
    layered = _ack_after_data(monkeypatch, whole=False, ooo=ooo)
    assert whole == layered
    frame = whole[0]
    assert frame[33] == ACK                    # IPv4 header 20 + TCP flags at 13
