"""The accepted child's struct tcp_sock fields, as Linux's
``tcp_create_openreq_child`` (and ``tcp_v4_syn_recv_sock``, ``tcp_sync_mss``,
``tcp_initialize_rcv_mss``) sets them from the request and the third ACK.

tcpio fills them in one compiled call (syn_fast.sock_init, openreq_child);
the expected values below are Linux's formulas written out, from what the
test's peer sent and the SYN-ACK it got (the ISNs, the window scale, the
timestamps), not from tcpio's code.  A second test runs the compiled and
the interpreted syn_fast on the same request and compares every TcpCb field.
"""

from __future__ import annotations

from typing import Any

import pytest

from tcpio import _fast
from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

from .helpers import ACK, PEER_ISS, SYN, FakeHost, Peer, TcpOptions

MTU = 1500
THIRD_ACK_WINDOW = 501      # unscaled, unlike the SYN's 65535: the child must take this one
TS0 = 4000

CASES = {
    # name: (SYN options, listener's TCP_MAXSEG)
    "none": (None, 0),
    "mss_only": (TcpOptions(mss=1200), 0),
    "linux": (TcpOptions(mss=1460, wscale=7, sack_ok=True, ts_val=TS0, ts_ecr=0), 0),
    "ts_no_ws": (TcpOptions(mss=1400, ts_val=TS0, ts_ecr=0), 0),
    "ws_no_ts": (TcpOptions(mss=1460, wscale=3, sack_ok=True), 0),
    "maxseg": (TcpOptions(mss=1460, wscale=7, ts_val=TS0, ts_ecr=0), 1000),
}


def accept(syn_opts: Any, user_mss: int, now: float = 5.0) -> tuple[Any, Any, Any]:
    """Handshake at ``now`` (no time passes); returns (child, SYN-ACK, host)."""
    host = FakeHost(mtu=MTU, settings=Settings())
    peer = Peer(host)
    ls = host.tcp.socket()
    if user_mss:
        ls.opts = ls.opts.with_(user_mss=user_mss)
    ls.bind(0, 80)
    ls.listen(8)
    host.advance(now)
    peer.send(SYN, PEER_ISS, 0, 65535, opts=syn_opts)
    synack = peer.recv_one()
    ack_opts = None
    if syn_opts is not None and syn_opts.ts_val is not None:
        ack_opts = TcpOptions(ts_val=TS0 + 1, ts_ecr=synack.opts.ts_val)
    peer.send(ACK, PEER_ISS + 1, synack.seq + 1, THIRD_ACK_WINDOW, opts=ack_opts)
    child = ls.accept()
    assert child is not None
    return child, synack, host


@pytest.mark.parametrize("case", list(CASES))
def test_the_child_has_linuxs_fields(case: str) -> None:
    syn_opts, user_mss = CASES[case]
    child, synack, host = accept(syn_opts, user_mss)
    iss = synack.seq
    ts = syn_opts is not None and syn_opts.ts_val is not None
    ws = syn_opts is not None and syn_opts.wscale is not None
    # the 4-tuple and both sequence spaces from the ISNs (the SYN and SYN-ACK
    # each took one sequence number)
    assert (child.lport, child.rport) == (80, 49500)
    assert child.iss == iss and child.irs == PEER_ISS
    for name in ("snd_una", "snd_nxt", "write_seq", "snd_sml", "pushed_seq"):
        assert getattr(child, name) == iss + 1, name
    assert child.rcv_nxt == child.rcv_wup == PEER_ISS + 1
    # the third ACK's window, scaled by the peer's shift, is SND.WND and
    # MAX.SND.WND; its sequence number is SND.WL1
    snd_wscale = syn_opts.wscale if ws else 0
    assert child.snd_wscale == snd_wscale
    assert child.snd_wnd == child.max_window == THIRD_ACK_WINDOW << snd_wscale
    assert child.snd_wl1 == PEER_ISS + 1
    # our shift is the SYN-ACK's (0 unless the peer offered scaling);
    # window_clamp 65535 << rcv_wscale; RCV.WND is the SYN-ACK's window
    rcv_wscale = synack.opts.wscale if ws else 0
    assert child.rcv_wscale == rcv_wscale
    assert child.window_clamp == 65535 << rcv_wscale
    assert child.rcv_wnd == synack.window
    # timestamps: TS.Recent the SYN's TSval in the new child, then the third
    # ACK's (tcp_replace_ts_recent: it is in order), stamped at the
    # handshake; ts_off such that the SYN-ACK's TSval = our clock in ms + ts_off
    assert child.tstamp_ok == ts
    if ts:
        assert child.ts_recent == TS0 + 1
        assert child.ts_recent_stamp == host.now
        assert child.ts_off == (synack.opts.ts_val - int(host.now * 1000)) & 0xFFFFFFFF
    # MSS: mss_clamp the peer's MSS (536 without the option) bounded by
    # TCP_MAXSEG; advmss the route's (MTU - 40) bounded by TCP_MAXSEG;
    # tcp_sync_mss: min(MTU - 40, mss_clamp), less 12 with timestamps;
    # tcp_initialize_rcv_mss: min(advmss, mss_cache, rcv_wnd / 2, 536), at least 88
    peer_mss = syn_opts.mss if syn_opts is not None and syn_opts.mss else 536
    mss_clamp = min(peer_mss, user_mss) if user_mss and syn_opts is not None and syn_opts.mss \
        else peer_mss
    assert child.mss_clamp == mss_clamp
    advmss = min(MTU - 40, user_mss) if user_mss else MTU - 40
    assert child.advmss == advmss
    assert child.mss_cache == min(MTU - 40, mss_clamp) - (12 if ts else 0)
    assert child.pmtu_cookie == MTU
    assert child.rcv_mss == max(min(advmss, child.mss_cache, child.rcv_wnd // 2, 536), 88)
    # the SYN counted in segs_in; ESTABLISHED and connected, made by a listener
    assert child.segs_in >= 1
    assert child.state == TCP_ESTABLISHED
    assert child.passive
    assert host.mib["CurrEstab"] == 1


# every TcpCb field (the interpreted class declares each with an annotation)
FIELDS = sorted(_fast.load_pure("tcp_fast").TcpCb.__annotations__)


def _fields(sk: Any) -> dict[str, Any]:
    out = {}
    for name in FIELDS:
        v = getattr(sk, name)
        # objects made per sock (queues, timers, the host) by type, values by value
        out[name] = v if isinstance(v, (int, float, bool, str, type(None), tuple)) \
            else type(v).__name__
    return out


@pytest.mark.skipif(not _fast.is_compiled(_fast.load("syn_fast")),
                    reason="compiled build only: compares it with the interpreted syn_fast")
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_and_interpreted_children_agree(case: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tcpio.core.tcp.sock as sock_mod
    import tcpio.core.tcp.tcp_minisocks as minisocks

    syn_opts, user_mss = CASES[case]
    compiled, _synack, _host = accept(syn_opts, user_mss)
    pure = _fast.load_pure("syn_fast")
    monkeypatch.setattr(sock_mod, "_sock_init", pure.sock_init)
    monkeypatch.setattr(minisocks, "_openreq_child", pure.openreq_child)
    interpreted, _synack, _host = accept(syn_opts, user_mss)
    assert len(FIELDS) > 50
    assert _fields(interpreted) == _fields(compiled)
