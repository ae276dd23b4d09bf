"""The stateless SYN path (issue 13): a SYN cookie answered inside the rx
classifier's call, the same bytes and counters as the layered path.

The references are independent of the code under test: hashlib's BLAKE2s for
the cookie's keyed hash, scapy for the frames in, and the layered path
(tcp_v4_conn_request, the SYN path switched off) for the SYN-ACK that must
come out.  Each case runs three ways on identically seeded hosts: the
compiled path (rx.pyx + syn_fast compiled; skipped without the build), its
pure twin (rx_py + syn_fast interpreted) and the layered path.
"""

from __future__ import annotations

import hashlib
import random
import struct

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

import tcpio.core.host as host_mod
from tcpio import _fast
from tcpio.core.addr import ip_aton
from tcpio.core.host import Host
from tcpio.core.protocol import EarlyDemux
from tcpio.core.settings import Settings
from tcpio.core.tcp.tcp_states import TCP_ESTABLISHED

US_MAC = b"\x02\x00\x00\x00\x00\x02"
GW_MAC = b"\x02\x00\x00\x00\x00\x01"
US = "10.9.0.2"
GW = "10.9.0.1"
CLIENT = "198.51.100.7"      # off-link: SYN-ACKs go to the gateway's MAC
PORT = 80

COMPILED = _fast.load_compiled("syn_fast")
PURE = _fast.load_pure("syn_fast")
RX_PURE = _fast.load_pure("rx")

# SYN option sets: none (hping3's flood), MSS only, Linux's, no timestamps,
# timestamps without window scale, SACK without timestamps, a tiny MSS
OPTIONS = {
    "none": [],
    "mss": [("MSS", 1400)],
    "linux": [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 0)), ("NOP", None),
              ("WScale", 7)],
    "no_ts": [("MSS", 1460), ("NOP", None), ("WScale", 9), ("SAckOK", b"")],
    "ts_no_ws": [("MSS", 1300), ("Timestamp", (0xFFFFFFF0, 0))],
    "sack_only": [("MSS", 600), ("SAckOK", b"")],
    "wscale_big": [("MSS", 9000), ("Timestamp", (7, 0)), ("WScale", 14), ("SAckOK", b"")],
}


def syn(seq: int = 1000, sport: int = 40000, src: str = CLIENT, options: list | None = None,
        flags: str = "S", payload: bytes = b"") -> bytes:
    return bytes(Ether(dst=US_MAC, src=GW_MAC) / IP(src=src, dst=US)
                 / TCP(sport=sport, dport=PORT, flags=flags, seq=seq,
                       options=OPTIONS["linux"] if options is None else options, window=64240)
                 / payload)


def make_host(mode: str, monkeypatch: pytest.MonkeyPatch, user_mss: int = 0,
              backlog: int = 128, **settings: int) -> tuple[Host, int, object]:
    """A host listening on PORT with ``backlog``, its SYN path ``mode``:
    compiled, pure, layered."""
    settings.setdefault("tcp_syncookies", 2)
    h = Host(name="us", seed=7, settings=Settings(**settings))
    ifi = h.add_interface("eth0", mac=US_MAC)
    h.add_address(ifi, ip_aton(US), 24)
    h.add_static_arp(ip_aton(GW), GW_MAC, ifi)
    h.add_route(0, 0, ip_aton(GW))
    lsk = h.tcp.socket()
    lsk.bind(ip_aton(US), PORT)
    if user_mss:
        lsk.opts = lsk.opts.with_(user_mss=user_mss)
    lsk.listen(backlog)
    tcp = h.tcp
    if mode == "layered":
        h.register_protocol(6, tcp, EarlyDemux(tcp.rcv_verified, tcp.hashinfo.ehash))
    elif mode == "pure":
        path = PURE.SynPath(PURE.SynKeys(h.secret), h.settings, tcp.synack_route,
                            tcp.synack_route_scope)
        path.by_port = tcp.hashinfo.by_port
        h.syn_path_used = path      # type: ignore[attr-defined]
        h.register_protocol(6, tcp, EarlyDemux(tcp.rcv_verified, tcp.hashinfo.ehash, path))
        monkeypatch.setattr(host_mod, "rx_classify", RX_PURE.rx_classify)
        monkeypatch.setattr(RX_PURE, "_syn_cookie", PURE.syn_cookie)
    else:
        assert type(tcp.syn_path).__module__ == COMPILED.__name__
        h.syn_path_used = tcp.syn_path      # type: ignore[attr-defined]
        monkeypatch.setattr(host_mod, "rx_classify", _fast.load_compiled("rx").rx_classify)
    # every SYN the layered path sees, so a test can say which path answered
    layered: list[int] = []
    conn_request = tcp.tcp_v4_conn_request

    def counted(*args: object, **kw: object) -> None:
        layered.append(1)
        conn_request(*args, **kw)
    monkeypatch.setattr(tcp, "tcp_v4_conn_request", counted)
    h.layered_syns = layered     # type: ignore[attr-defined]
    h.take_output()
    return h, ifi, lsk


MODES = [pytest.param("compiled", marks=pytest.mark.skipif(
    COMPILED is None or _fast.NO_EXTENSIONS, reason="compiled build only: the C SYN path (rx.pyx, syn_fast) is not built here")), "pure"]


def run(mode: str, frames: list[bytes], monkeypatch: pytest.MonkeyPatch, now: float = 100.0,
        user_mss: int = 0, backlog: int = 128, **settings: int) -> tuple[list[bytes], dict, Host]:
    with monkeypatch.context() as mp:
        h, ifi, _ = make_host(mode, mp, user_mss, backlog, **settings)
        h.receive_batch(ifi, frames, now)
        return [bytes(f) for _, f in h.take_output()], h.mib.snapshot(), h


# --- the keyed hash: C against hashlib ------------------------------------------------------

def _hashlib_cookie(secret: bytes, laddr: int, lport: int, raddr: int, rport: int,
                    count: int, c: int) -> int:
    key = secret if len(secret) <= 32 else hashlib.blake2s(secret).digest()
    h = hashlib.blake2s(struct.pack("!IIHHI", raddr, laddr, rport, lport, count & 0xFFFFFFFF),
                        key=key, person=b"cookie%d" % c, digest_size=4)
    return int.from_bytes(h.digest(), "big")


def _hashlib_ts_off(secret: bytes, laddr: int, raddr: int) -> int:
    key = secret if len(secret) <= 32 else hashlib.blake2s(secret).digest()
    h = hashlib.blake2s(struct.pack("!II", laddr, raddr), key=key, person=b"tsoff",
                        digest_size=8)
    return int.from_bytes(h.digest(), "little") & 0xFFFFFFFF


@pytest.mark.parametrize("module", [pytest.param(COMPILED, id="compiled", marks=pytest.mark.skipif(
    COMPILED is None, reason="not built")), pytest.param(PURE, id="pure")])
def test_cookie_hash_is_keyed_blake2s_on_random_inputs(module: object) -> None:
    rng = random.Random(13)
    for secret in (b"", b"k", bytes(range(16)), rng.randbytes(32), rng.randbytes(33),
                   rng.randbytes(64)):
        keys = module.SynKeys(secret)
        for _ in range(3000):
            laddr, raddr, count = rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32)
            lport, rport, c = rng.getrandbits(16), rng.getrandbits(16), rng.getrandbits(1)
            assert module.cookie_hash(keys, laddr, lport, raddr, rport, count, c) == \
                _hashlib_cookie(secret, laddr, lport, raddr, rport, count, c)
            assert module.ts_off_hash(keys, laddr, raddr) == _hashlib_ts_off(secret, laddr, raddr)


def _hashlib_isn_f(secret: bytes, laddr: int, lport: int, raddr: int, rport: int) -> int:
    key = secret if len(secret) <= 32 else hashlib.blake2s(secret).digest()
    h = hashlib.blake2s(struct.pack("!IIHH", laddr, raddr, lport, rport), key=key,
                        person=b"isn", digest_size=8)
    return int.from_bytes(h.digest(), "little") & 0xFFFFFFFF


@pytest.mark.parametrize("module", [pytest.param(COMPILED, id="compiled", marks=pytest.mark.skipif(
    COMPILED is None, reason="not built")), pytest.param(PURE, id="pure")])
def test_isn_hash_is_secure_tcp_seqs_keyed_blake2s_on_random_inputs(module: object) -> None:
    """The passive open takes its ISN's F from the SYN path's keys
    (tcp_v4_conn_request): the same keyed BLAKE2s as secure_tcp_seq, so the
    ISN a SYN-ACK carries does not depend on which build computed it."""
    from tcpio.core.tcp.secure_seq import secure_tcp_seq
    rng = random.Random(17)
    for secret in (b"", b"k", bytes(range(16)), rng.randbytes(32), rng.randbytes(33)):
        keys = module.SynKeys(secret)
        for _ in range(2000):
            laddr, raddr = rng.getrandbits(32), rng.getrandbits(32)
            lport, rport = rng.getrandbits(16), rng.getrandbits(16)
            f = module.isn_hash(keys, laddr, lport, raddr, rport)
            assert f == _hashlib_isn_f(secret, laddr, lport, raddr, rport)
            now = rng.random() * 1e5
            assert secure_tcp_seq(secret, laddr, lport, raddr, rport, now, f) == \
                secure_tcp_seq(secret, laddr, lport, raddr, rport, now)


# --- the SYN-ACK: byte for byte the layered path's ---------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("opts", sorted(OPTIONS))
def test_cookie_synack_is_the_layered_paths(mode: str, opts: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [syn(seq=0xFFFFFFFF - i, sport=40000 + i, options=OPTIONS[opts]) for i in range(3)]
    got, mib, h = run(mode, frames, monkeypatch)
    want, want_mib, h_layered = run("layered", frames, monkeypatch)
    assert len(want) == 3 and got == want
    assert mib["SyncookiesSent"] == 3
    assert mib == want_mib
    assert not h.layered_syns and len(h_layered.layered_syns) == 3


@pytest.mark.parametrize("mode", MODES)
def test_cookie_synack_with_user_mss_and_no_window_scaling(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [syn()]
    kw = dict(user_mss=1000, tcp_window_scaling=0, tcp_sack=0)
    got, mib, _ = run(mode, frames, monkeypatch, **kw)
    want, want_mib, _ = run("layered", frames, monkeypatch, **kw)
    assert got == want and mib == want_mib


@pytest.mark.parametrize("mode", MODES)
def test_full_syn_queue_turns_to_the_compiled_cookie(mode: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """tcp_syncookies=1: request socks until more than listen()'s backlog are
    queued (inet_csk_reqsk_queue_is_full: qlen > sk_max_ack_backlog, Linux
    6.13+), then cookies; tcp_max_syn_backlog is not the limit."""
    frames = [syn(sport=41000 + i, src=f"198.51.100.{10 + i}") for i in range(6)]
    kw = dict(tcp_syncookies=1, tcp_max_syn_backlog=1, backlog=1)
    got, mib, h = run(mode, frames, monkeypatch, **kw)
    want, want_mib, _ = run("layered", frames, monkeypatch, **kw)
    assert got == want and mib == want_mib
    assert mib["SyncookiesSent"] == 4 and mib["TCPReqQFullDoCookies"] == 4
    assert len(h.layered_syns) == 2       # the two request socks


@pytest.mark.parametrize("mode", MODES)
def test_syns_that_are_not_for_the_cookie_path_go_layered(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed port (RST), SYN+FIN (junk), a bad option (InErrs), cookies
    off: the same frames and counters as the layered path."""
    frames = [syn(options=[("MSS", 1460)]) .replace(b"\x00\x50", b"\x00\x51", 1),
              syn(flags="SF"),
              syn(options=[(2, b"\x05")]),      # MSS option of length 3
              syn(flags="SA")]
    for kw in (dict(), dict(tcp_syncookies=0)):
        got, mib, _ = run(mode, frames, monkeypatch, **kw)
        want, want_mib, _ = run("layered", frames, monkeypatch, **kw)
        assert got == want and mib == want_mib


# --- the SYN-ACK's route: resolved once per batch ----------------------------------------------

GW2 = "10.9.0.3"
GW2_MAC = b"\x02\x00\x00\x00\x00\x03"
ONLINK = "10.9.0.77"
ONLINK_MAC = b"\x02\x00\x00\x00\x00\x77"


def add_neighbours(h: Host, ifi: int) -> None:
    """A second gateway and an on-link client, both with static ARP entries."""
    h.add_static_arp(ip_aton(GW2), GW2_MAC, ifi)
    h.add_static_arp(ip_aton(ONLINK), ONLINK_MAC, ifi)


def run_routes(mode: str, frames: list[bytes], monkeypatch: pytest.MonkeyPatch,
               routes: list[tuple[str, int, str]], change: object = None,
               again: list[bytes] | None = None) -> tuple[list[bytes], dict, Host]:
    """``run`` on a host with the neighbours above and ``routes`` (prefix,
    length, gateway) added; ``change(h, src)``, if given, runs inside the
    SYN path's per-SYN route callback (mid-batch) before it answers;
    ``again``: a second batch after it (``h.scopes_seen``: the route scopes
    the SYN path had computed after each batch)."""
    with monkeypatch.context() as mp:
        h, ifi, _ = make_host(mode, mp)
        add_neighbours(h, ifi)
        for prefix, plen, gw in routes:
            h.add_route(ip_aton(prefix), plen, ip_aton(gw))
        if change is not None and mode != "layered":
            path = h.syn_path_used          # type: ignore[attr-defined]
            route = path.route

            def changing(src: int) -> object:
                change(h, src)
                return route(src)
            path.route = changing
        h.receive_batch(ifi, frames, 100.0)
        out = [bytes(f) for _, f in h.take_output()]
        mib = h.mib.snapshot()
        path = getattr(h, "syn_path_used", None)
        h.scopes_seen = [path.scopes if path is not None else 0]  # type: ignore[attr-defined]
        if again:
            h.receive_batch(ifi, again, 100.1)
            h.scopes_seen.append(path.scopes if path is not None else 0)  # type: ignore
        return out, mib, h


@pytest.mark.parametrize("mode", MODES)
def test_synacks_of_a_batch_share_the_route_where_they_may(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """SYNs from the default route's sources, from a more specific route's
    (another gateway) and from an on-link client, interleaved in one batch:
    every SYN-ACK the layered path's, byte for byte, to the neighbour that
    the route of its destination names; one route scope for the batch."""
    rng = random.Random(3)
    srcs = []
    for i in range(30):
        srcs.append(random.Random(i).choice([f"198.51.100.{rng.randrange(1, 255)}",
                                             f"192.0.2.{rng.randrange(1, 255)}",
                                             f"203.0.113.{rng.randrange(1, 255)}", ONLINK]))
    frames = [syn(seq=rng.getrandbits(32), sport=20000 + i, src=src, options=[])
              for i, src in enumerate(srcs)]
    routes = [("203.0.113.0", 24, GW2)]
    got, mib, h = run_routes(mode, frames, monkeypatch, routes, again=frames[:2])
    want, want_mib, _ = run_routes("layered", frames, monkeypatch, routes)
    assert got == want and mib == want_mib and mib["SyncookiesSent"] == len(frames)
    expect = {"203.0.113.": GW2_MAC, ONLINK: ONLINK_MAC}
    for src, raw in zip(srcs, got):
        p = Ether(raw)
        assert p[IP].dst == src and p[TCP].flags == "SA"
        mac = next((m for k, m in expect.items() if src.startswith(k)), GW_MAC)
        assert p.dst == mac.hex(":"), src
    # one route scope for the batch; the next batch resolves its own
    assert h.scopes_seen == [1, 2]          # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what", ["add", "remove"])
def test_a_route_change_mid_batch_reaches_the_next_synack(
        mode: str, what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A route to the flood's sources added (or removed) between two SYNs of
    one batch: the SYN-ACKs after it go to the new gateway (or back to the
    default's), not to the neighbour the batch's route scope held."""
    srcs = ["198.51.100.1", "198.51.100.2", ONLINK, "198.51.100.3", "198.51.100.4"]
    frames = [syn(seq=1000 + i, sport=30000 + i, src=src) for i, src in enumerate(srcs)]
    routes = [] if what == "add" else [("198.51.100.0", 25, GW2)]
    before, after = (GW_MAC, GW2_MAC) if what == "add" else (GW2_MAC, GW_MAC)

    def change(h: Host, src: int) -> None:
        if src == ip_aton(ONLINK):
            if what == "add":
                h.add_route(ip_aton("198.51.100.0"), 25, ip_aton(GW2))
            else:
                h.remove_route(ip_aton("198.51.100.0"), 25)

    got, mib, h = run_routes(mode, frames, monkeypatch, routes, change)
    want, _, _ = run_routes("layered", frames, monkeypatch, routes)
    assert mib["SyncookiesSent"] == len(frames) and not h.layered_syns  # type: ignore[attr-defined]
    # IP and TCP as the layered path builds them (the route changes only the MAC)
    assert [g[14:] for g in got] == [w[14:] for w in want]
    macs = [Ether(g).dst for g in got]
    assert macs == [m.hex(":") for m in (before, before, ONLINK_MAC, after, after)]
    assert h.scopes_seen == [2]             # type: ignore[attr-defined]


# --- the cookie comes back ---------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_cookie_ack_creates_the_connection(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as mp:
        h, ifi, lsk = make_host(mode, mp)
        h.receive_batch(ifi, [syn(seq=5000)], 100.0)
        out = h.take_output()
        assert len(out) == 1
        synack = Ether(bytes(out[0][1]))
        assert synack[TCP].flags == "SA" and synack[TCP].ack == 5001
        assert h.mib["SyncookiesSent"] == 1 and not lsk.syn_queue
        ts = dict(synack[TCP].options)["Timestamp"]
        ack = bytes(Ether(dst=US_MAC, src=GW_MAC) / IP(src=CLIENT, dst=US)
                    / TCP(sport=40000, dport=PORT, flags="A", seq=5001,
                          ack=synack[TCP].seq + 1, window=502,
                          options=[("NOP", None), ("NOP", None),
                                   ("Timestamp", (123457, ts[0]))]))
        h.receive_batch(ifi, [ack], 101.0)
        assert h.mib["SyncookiesRecv"] == 1 and h.mib["SyncookiesFailed"] == 0
        child = lsk.accept()
        assert child is not None and child.state == TCP_ESTABLISHED
        # what the cookie carried: MSS 1460 (msstab), window scale 7, SACK
        assert child.snd_wscale == 7 and child.sack_ok and child.tstamp_ok
        assert child.mss_cache == 1460 - 12


@pytest.mark.parametrize("mode", MODES)
def test_tampered_cookie_ack_is_reset(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as mp:
        h, ifi, lsk = make_host(mode, mp)
        h.receive_batch(ifi, [syn(seq=5000, options=[])], 100.0)
        synack = Ether(bytes(h.take_output()[0][1]))
        ack = bytes(Ether(dst=US_MAC, src=GW_MAC) / IP(src=CLIENT, dst=US)
                    / TCP(sport=40000, dport=PORT, flags="A", seq=5001,
                          ack=(synack[TCP].seq + 1 + 0x1000) & 0xFFFFFFFF, window=502))
        h.receive_batch(ifi, [ack], 101.0)
        assert h.mib["SyncookiesFailed"] == 1 and lsk.accept() is None
        rst = Ether(bytes(h.take_output()[0][1]))
        assert rst[TCP].flags == "R"


# --- the budget: established traffic first -----------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_syns_past_the_batch_budget_are_dropped_and_data_still_flows(
        mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    budget, flood = 16, 200
    with monkeypatch.context() as mp:
        h, ifi, lsk = make_host(mode, mp, tcp_syn_budget=budget)
        # one established connection, made through a cookie
        h.receive_batch(ifi, [syn(seq=5000, options=[("MSS", 1460)])], 100.0)
        synack = Ether(bytes(h.take_output()[0][1]))
        iss = synack[TCP].seq

        def seg(seq: int, data: bytes = b"") -> bytes:
            return bytes(Ether(dst=US_MAC, src=GW_MAC) / IP(src=CLIENT, dst=US)
                         / TCP(sport=40000, dport=PORT, flags="PA" if data else "A", seq=seq,
                               ack=(iss + 1) & 0xFFFFFFFF, window=65535) / data)

        h.receive_batch(ifi, [seg(5001)], 100.1)
        child = lsk.accept()
        assert child is not None
        before = h.mib.snapshot()
        rng = random.Random(5)
        syns = [syn(seq=rng.getrandbits(32), sport=rng.randrange(1024, 65535), options=[],
                    src=f"203.0.113.{rng.randrange(1, 255)}") for _ in range(flood)]
        batch = [seg(5001, b"a" * 500)] + syns[:100] + [seg(5501, b"b" * 500)] + syns[100:]
        h.receive_batch(ifi, batch, 100.2)
        assert child.recvmsg(4096) == b"a" * 500 + b"b" * 500
        out = [Ether(bytes(f)) for _, f in h.take_output()]
        synacks = [p for p in out if p[TCP].flags == "SA"]
        assert len(synacks) == budget
        after = h.mib.snapshot()
        d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert d["SyncookiesSent"] == budget
        assert d["TCPSynBudgetDrop"] == flood - budget
        assert d["ListenDrops"] == flood - budget
        assert d["InSegs"] == flood + 2
        # the next batch has its budget again
        h.receive_batch(ifi, syns[:3], 100.3)
        assert h.mib["SyncookiesSent"] - after["SyncookiesSent"] == 3
