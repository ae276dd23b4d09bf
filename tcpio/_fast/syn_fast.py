# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, annotation_typing=False
# mypy: always-false=compiled
"""The stateless SYN path (SYN cookies): one source, compiled and interpreted.

Like tcp_fast.py this file runs as it is (``_fast.load_pure("syn_fast")``)
and setup.py compiles it with ``syn_fast.pxd`` (Cython's pure Python mode).
It holds the rules of a SYN cookie (Linux's ``net/ipv4/syncookies.c``) and of
the listener's answer to a SYN that the layered path
(core.tcp.tcp_ipv4.tcp_v4_conn_request, through core.tcp.syncookies) and the
compiled receive classifier (rx.pyx) both use:

- the cookie: ``cookie_hash`` (BLAKE2s keyed by the host's secret, as
  core.tcp.secure_seq; compiled: ``_blake2s.pxd``, interpreted: hashlib),
  ``secure_tcp_syn_cookie``/``check_tcp_syn_cookie``, ``cookie_mss_index``
  (Linux's msstab), ``cookie_init_timestamp`` (wscale and SACK in TSval);
- the listener's numbers for a request: ``tcp_rcv_wscale``,
  ``initial_rcv_wnd``, ``route_advmss``, ``listener_pick`` (the listening
  hash's choice: exact address, then the wildcard);
- ``syn_cookie(syn, ...)``: a SYN (already checksummed, its options parsed,
  nothing in the established hash for its 4-tuple) to a listener whose SYN
  queue is full (or with ``tcp_syncookies=2``) answered with the cookie
  SYN-ACK, frame built and queued, without a request sock: the same bytes
  tcp_v4_conn_request sends for it.  Returns ``SYN_DECLINED`` (0: the layered
  path takes the SYN, which counts whatever it drops), ``SYN_COOKIE_SENT``
  or ``SYN_BUDGET_DROP``: past ``syn.budget`` cookie SYN-ACKs in the current
  receive batch the SYN is dropped and counted (ListenDrops, as
  tcp_conn_request's drop; TCPSynBudgetDrop), so a flood cannot take the
  batch's time from the established connections (issue 13).

``SynPath`` is what TCP registers with its early demux: the host's secret
(``SynKeys``), settings, listeners by port, the route/neighbour callbacks
(per SYN, and the batch's shared route scope: ``synack_path``),
and the counters the host folds into the MIB per batch
(``batch_end``).  Compiled, a SYN costs no Python object but the frame, its
(ifindex, frame) entry and what the route callback builds.
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:       # Cython ships no type information: check against the shim
    from tcpio._fast import _cython_shim as cython
else:
    try:
        import cython
    except ImportError:     # Cython is a build dependency only: run without it
        from tcpio._fast import _cython_shim as cython

from tcpio._fast import load

__all__ = [
    "MSSTAB",
    "SynKeys",
    "SynPath",
    "check_tcp_syn_cookie",
    "cookie_hash",
    "cookie_init_timestamp",
    "cookie_mss_index",
    "done_clear",
    "initial_rcv_wnd",
    "initialize_rcv_mss",
    "isn_hash",
    "listener_pick",
    "openreq_child",
    "release_queues",
    "reqsk_queue_full",
    "route_advmss",
    "secure_tcp_syn_cookie",
    "set_state",
    "sock_init",
    "syn_cookie",
    "synack_frame",
    "synack_path",
    "sync_mss",
    "tcp_rcv_wscale",
    "tcp_set_state",
    "ts_off_hash",
]

# (C constants when compiled, see syn_fast.pxd; the public names below)
_COOKIEBITS = 24
_COOKIEMASK = 0xFFFFFF
_TCP_SYNCOOKIE_PERIOD = 64.0    # seconds per count tick
_MAX_SYNCOOKIE_AGE = 2          # ticks: a cookie is valid for up to 2 periods
# Timestamp option bits (Linux TSBITS / TS_OPT_*).
_TSBITS = 6
_TS_OPT_WSCALE_MASK = 0xF
_TS_OPT_SACK = 1 << 4
COOKIEBITS = _COOKIEBITS
COOKIEMASK = _COOKIEMASK
TCP_SYNCOOKIE_PERIOD = _TCP_SYNCOOKIE_PERIOD
MAX_SYNCOOKIE_AGE = _MAX_SYNCOOKIE_AGE
TSBITS = _TSBITS
TSMASK = (1 << _TSBITS) - 1
TS_OPT_WSCALE_MASK = _TS_OPT_WSCALE_MASK
TS_OPT_SACK = _TS_OPT_SACK
# Linux's msstab (ipv4): the MSS values a cookie can carry (2 bits).
MSSTAB = (536, 1300, 1440, 1460)

SYN_DECLINED = 0
SYN_COOKIE_SENT = 1
SYN_BUDGET_DROP = 2

_M32 = 0xFFFFFFFF
_TCP_LISTEN = 10
_TCP_MSS_DEFAULT = 536
_IP_RT_MIN_ADVMSS = 256
_TCPHDR_SYN_ACK = 0x12
_IPPROTO_TCP = 6
_PACK_COOKIE = struct.Struct("!IIHHI").pack
_PACK_ADDRS = struct.Struct("!II").pack
_PACK_4TUPLE = struct.Struct("!IIHH").pack

# The interpreted path builds the frame with wire.build_tcp + tx.ip_build; the
# compiled one calls tx.pyx's tcp_synack_frame (cimported in syn_fast.pxd).
_wire = load("wire")
_tx = load("tx")
_tcp_fast = load("tcp_fast")


class SynKeys:
    """The host's secret as the SYN path hashes with it: keyed BLAKE2s states
    for the cookie's H0/H1 (person ``cookie0``/``cookie1``, 4 bytes), the
    timestamp offset (``tsoff``, 8 bytes) and the ISN's F (``isn``, 8 bytes),
    as core.tcp.secure_seq.keyed_digest."""

    secret: bytes

    def __init__(self, secret: bytes) -> None:
        secret = bytes(secret)
        key = secret if len(secret) <= 32 else hashlib.blake2s(secret).digest()
        self.secret = secret
        if cython.compiled:
            kp: cython.p_const_uchar = key
            b2s_key_state(self.k0, kp, len(key), b"cookie0\x00", 4)
            b2s_key_state(self.k1, kp, len(key), b"cookie1\x00", 4)
            b2s_key_state(self.kts, kp, len(key), b"tsoff\x00\x00\x00", 8)
            b2s_key_state(self.kisn, kp, len(key), b"isn\x00\x00\x00\x00\x00", 8)
        else:
            self._h = (hashlib.blake2s(key=key, person=b"cookie0", digest_size=4),
                       hashlib.blake2s(key=key, person=b"cookie1", digest_size=4),
                       hashlib.blake2s(key=key, person=b"tsoff", digest_size=8),
                       hashlib.blake2s(key=key, person=b"isn", digest_size=8))


def _digest(keys: SynKeys, which: int, msg: bytes) -> bytes:
    """Interpreted: the keyed digest of ``msg`` (0, 1: cookie H0/H1; 2: tsoff; 3: isn)."""
    h = keys._h[which].copy()
    h.update(msg)
    return h.digest()


def cookie_hash(keys: SynKeys, laddr: int, lport: int, raddr: int, rport: int, count: int,
                c: int) -> int:
    """Keyed 32-bit hash of the 4-tuple and ``count``; ``c`` selects H0 or H1."""
    if cython.compiled:
        if c:
            return b2s_cookie(keys.k1, laddr, lport, raddr, rport, count & _M32)
        return b2s_cookie(keys.k0, laddr, lport, raddr, rport, count & _M32)
    else:
        return int.from_bytes(_digest(keys, 1 if c else 0,
                                      _PACK_COOKIE(raddr, laddr, rport, lport, count & _M32)),
                              "big")


def ts_off_hash(keys: SynKeys, laddr: int, raddr: int) -> int:
    """core.tcp.secure_seq.secure_tcp_ts_off with these keys."""
    if cython.compiled:
        return b2s_tsoff(keys.kts, laddr, raddr)
    else:
        return int.from_bytes(_digest(keys, 2, _PACK_ADDRS(laddr, raddr)), "little") & _M32


def isn_hash(keys: SynKeys, laddr: int, lport: int, raddr: int, rport: int) -> int:
    """core.tcp.secure_seq.secure_tcp_seq's keyed F(4-tuple), IPv4, with these
    keys: the passive open's ISN without hashlib's objects (once per SYN)."""
    if cython.compiled:
        return b2s_isn(keys.kisn, laddr, lport, raddr, rport)
    else:
        return int.from_bytes(_digest(keys, 3, _PACK_4TUPLE(laddr, raddr, lport, rport)),
                              "little") & _M32


def tcp_cookie_time(now: float) -> int:
    return cython.cast(cython.longlong, now // _TCP_SYNCOOKIE_PERIOD)


def secure_tcp_syn_cookie(keys: SynKeys, laddr: int, lport: int, raddr: int, rport: int,
                          sseq: int, data: int, now: float) -> int:
    """cookie = H0 + client ISN + (count << 24) + ((H1(count) + data) mod 2**24)."""
    count = tcp_cookie_time(now)
    return (cookie_hash(keys, laddr, lport, raddr, rport, 0, 0) + sseq
            + ((count << _COOKIEBITS) & _M32)
            + ((cookie_hash(keys, laddr, lport, raddr, rport, count, 1) + data)
               & _COOKIEMASK)) & _M32


def check_tcp_syn_cookie(keys: SynKeys, laddr: int, lport: int, raddr: int, rport: int,
                         sseq: int, cookie: int, now: float) -> int:
    """The data (MSS index) encoded in ``cookie``, or -1 if it is too old."""
    count = tcp_cookie_time(now)
    cookie = (cookie - cookie_hash(keys, laddr, lport, raddr, rport, 0, 0) - sseq) & _M32
    # What is left is (count << 24) + (H1 + data) mod 2**24.
    diff = (count - (cookie >> _COOKIEBITS)) & (_M32 >> _COOKIEBITS)
    if diff >= _MAX_SYNCOOKIE_AGE:
        return -1
    return (cookie - cookie_hash(keys, laddr, lport, raddr, rport, count - diff, 1)) \
        & _COOKIEMASK


def cookie_mss_index(mss: int) -> int:
    """The largest msstab entry <= ``mss`` (the smallest when none is)."""
    mssind = 3
    while mssind > 0 and mss < MSSTAB[mssind]:
        mssind -= 1
    return mssind


def cookie_init_timestamp(now_ts: int, wscale: int, sack_ok: bool) -> int:
    """Our TSval for a cookie SYN-ACK, with the SYN's options in the low 6 bits
    (``wscale`` -1: none).  Never ahead of the clock ``now_ts``: if setting the
    low bits would move it forward, it steps back one 64-tick block."""
    options = _TS_OPT_WSCALE_MASK if wscale < 0 else wscale & _TS_OPT_WSCALE_MASK
    if sack_ok:
        options |= _TS_OPT_SACK
    now_ts &= _M32
    ts = ((now_ts >> _TSBITS) << _TSBITS) | options
    if ts > now_ts:
        ts -= 1 << _TSBITS
    return ts & _M32


def tcp_rcv_wscale(window_scaling: bool, rmem_max: int, rcvbuf: int) -> int:
    """tcp_select_initial_window: enough scale for the largest buffer."""
    if not window_scaling:
        return 0
    space = max(rmem_max, rcvbuf)
    ws = 0
    while space > 65535 and ws < 14:
        space >>= 1
        ws += 1
    return ws


def initial_rcv_wnd(rcvbuf: int, mss: int) -> int:
    """tcp_select_initial_window: the buffer, at most 65535 (a SYN's window is
    not scaled), rounded down to whole segments when one fits."""
    space = min(rcvbuf, 65535)
    return space // mss * mss or space


def route_advmss(mtu: int, user_mss: int) -> int:
    """The MSS we advertise over a route of ``mtu`` (dst_metric_advmss, floor
    ip_rt_min_advmss), bounded by a TCP_MAXSEG ``user_mss`` (tcp_mss_clamp)."""
    advmss = max(mtu - 40, _IP_RT_MIN_ADVMSS)
    return min(user_mss, advmss) if user_mss else advmss


def inet_csk_reqsk_queue_is_full(listener: Any) -> bool:
    """Linux's test for "the SYN queue is full", after which tcp_conn_request
    answers with cookies (or drops, with tcp_syncookies = 0): more request
    socks than the listen() backlog (sk_max_ack_backlog).  Linux compares with
    ``>`` since 6.13 (commit 3479c7549fb1, "tcp/dccp: allow a connection when
    sk_max_ack_backlog is zero"), as sk_acceptq_is_full does.  Since
    ef547f2ac16b ("tcp: remove max_qlen_log") tcp_max_syn_backlog plays no
    part here, only in tcp_conn_request's early drop without cookies."""
    return reqsk_queue_full(listener.syn_queue, listener.max_ack_backlog)


def reqsk_queue_full(synq: Any, backlog: int) -> bool:
    """inet_csk_reqsk_queue_is_full's comparison, on a SYN queue and a
    backlog (the compiled SYN path holds both per batch)."""
    return len(synq) > backlog


def listener_pick(socks: Any, laddr: int) -> Any:
    """__inet_lookup_listener over the listeners of one port (in the order
    they started listening): the first bound to ``laddr``, else the first
    bound to 0.0.0.0, else None."""
    if socks is None:
        return None
    wild = None
    for sk in socks:
        if sk.laddr == laddr:
            return sk
        if wild is None and sk.laddr == 0:
            wild = sk
    return wild


class SynPath:
    """The stateless SYN path's context (one per TCP; see the module doc)."""

    keys: SynKeys
    settings: Any
    by_port: list
    route: Any
    route_scope: Any
    out: list
    budget: int
    sent: int
    eth_sent: int
    dropped: int
    # the batch's route scope (synack_path): 0 none yet, 1 held
    sc_state: int
    sc_prefix: int
    sc_mask: int
    sc_excl: list
    sc_path: Any
    sc_token: Any
    sc_fib: Any
    sc_pmtu: Any
    scopes: int
    # the batch's settings (batch_begin: nothing changes them inside a batch)
    s_syncookies: int
    s_tstamps: bool
    s_wscaling: bool
    s_sack: bool
    s_rmem_max: int
    s_ttl: int
    s_read: bool        # the s_ fields hold this batch's (read by its first SYN)
    # the batch's last listener lookup (listener_pick for l_port, l_addr:
    # l_sk, None for none) and what the SYN path reads of that listener that
    # only a socket call changes (no socket call runs inside a batch): its
    # backlog, TCP_MAXSEG and its request and accept queues (their lengths
    # are read per SYN)
    l_port: int
    l_addr: int
    l_sk: Any
    l_backlog: int
    l_user_mss: int
    l_synq: Any
    l_acceptq: Any

    def __init__(self, keys: SynKeys, settings: Any, route: Any,
                 route_scope: Any = None) -> None:
        self.keys = keys
        self.settings = settings
        self.by_port = [None] * 65536
        self.route = route
        self.route_scope = route_scope
        self.out = []
        self.budget = settings.tcp_syn_budget
        self.sent = self.eth_sent = self.dropped = 0
        self.sc_state = 0
        self.sc_prefix = self.sc_mask = 0
        self.sc_excl = []
        self.sc_path = self.sc_token = self.sc_fib = self.sc_pmtu = None
        self.scopes = 0
        self._batch_state()

    def _batch_state(self) -> None:
        """What a batch reads once: the settings; no listener looked up yet."""
        self.s_read = True
        st = self.settings
        self.s_syncookies = st.tcp_syncookies
        self.s_tstamps = bool(st.tcp_timestamps)
        self.s_wscaling = bool(st.tcp_window_scaling)
        self.s_sack = bool(st.tcp_sack)
        self.s_rmem_max = st.tcp_rmem[2]
        self.s_ttl = st.ip_default_ttl
        self.l_port = -1
        self.l_addr = 0
        self.l_sk = self.l_synq = self.l_acceptq = None
        self.l_backlog = self.l_user_mss = 0

    def batch_begin(self, out: list) -> None:
        """A receive batch starts: SYN-ACKs go to ``out`` (the host's output).
        Its settings are read by its first SYN (syn_cookie), not here: most
        batches have none (every batch of a connection's data and ACKs)."""
        self.out = out
        self.sc_state = 0
        self.s_read = False

    def batch_end(self, mib: Any) -> None:
        """A receive batch ended: fold what the compiled path did into ``mib``
        (the counters tcp_v4_conn_request and ip_output move for the same
        SYNs) and give the next batch its budget."""
        sent = self.sent
        if sent:
            mib["TCPReqQFullDoCookies"] += sent
            mib["SyncookiesSent"] += sent
            mib["OutSegs"] += sent
            mib["OutRequests"] += sent
            if self.eth_sent:
                mib["EthOutFrames"] += self.eth_sent
            self.sent = self.eth_sent = 0
        if self.dropped:
            mib["TCPReqQFullDoCookies"] += self.dropped
            mib["TCPSynBudgetDrop"] += self.dropped
            mib["ListenDrops"] += self.dropped
            self.dropped = 0
        self.budget = self.settings.tcp_syn_budget
        self.out = []
        self.sc_state = 0
        self.sc_path = self.sc_token = self.sc_fib = self.sc_pmtu = None
        self.l_sk = self.l_synq = self.l_acceptq = None     # no listener kept alive
        self.l_port = -1


def synack_path(syn: SynPath, src: int) -> Any:
    """Where the SYN-ACK to ``src`` leaves as one whole frame: (ifindex,
    dst_mac, src_mac, route MTU), or None (ip_output's general path).

    The route and neighbour are resolved once per receive batch, not per SYN
    (a flood's spoofed sources each miss the host's per-destination route
    cache): a SYN asks ``syn.route_scope(src)`` for its path and the part of
    the address space that shares it, the prefix of the gatewayed FIB entry
    that routes ``src`` less any more specific route inside it
    (syncookies.synack_route_scope; an on-link route shares nothing).  Later
    SYNs of the batch inside that scope take the held path while the FIB is
    the one the scope was computed from (the same ``Fib.rt_genid``: a route
    added or removed mid-batch makes it compute again) and
    no path MTU was learned for the source; those outside it ask
    ``syn.route(src)`` as before."""
    state = syn.sc_state
    if state == 1:
        if syn.sc_fib.rt_genid != syn.sc_token:
            state = 0               # the table changed under the held scope
        else:
            if src & syn.sc_mask != syn.sc_prefix:
                return syn.route(src)
            for pm in syn.sc_excl:
                pprefix = pm[0]
                pmask = pm[1]
                if src & pmask == pprefix:
                    return syn.route(src)
            pmtu = syn.sc_pmtu
            if pmtu and src in pmtu:
                return syn.route(src)
            return syn.sc_path
    if syn.route_scope is None:
        return syn.route(src)
    scope = syn.route_scope(src)
    if scope is None:
        return None
    if scope[4] is None:
        syn.sc_state = 0
        return scope[0]             # nothing to share: this SYN's own path
    (syn.sc_path, prefix, mask, syn.sc_excl, syn.sc_token, syn.sc_fib, syn.sc_pmtu) = scope
    syn.sc_prefix = prefix
    syn.sc_mask = mask
    syn.sc_state = 1
    syn.scopes += 1
    return syn.sc_path


def syn_cookie(syn: SynPath, src: int, dst: int, sport: int, dport: int, seq: int,
               opt_mss: int, opt_wscale: int, opt_sack: bool, opt_tsval: int,
               now: float) -> int:
    """A SYN ``src:sport -> dst:dport`` (options parsed: -1 for an absent MSS,
    window scale or timestamp) that has no entry in the established hash.
    See the module doc; the rules are tcp_v4_conn_request's cookie branch."""
    if not syn.s_read:
        syn._batch_state()      # the batch's first SYN
    if dport != syn.l_port or dst != syn.l_addr:
        found = listener_pick(syn.by_port[dport], dst)
        syn.l_port = dport
        syn.l_addr = dst
        syn.l_sk = found
        if found is not None:
            syn.l_backlog = found.max_ack_backlog
            syn.l_user_mss = found.opts.user_mss
            syn.l_synq = found.syn_queue
            syn.l_acceptq = found.accept_queue
    listener = syn.l_sk
    if listener is None or listener.state != _TCP_LISTEN:
        return SYN_DECLINED
    syncookies = syn.s_syncookies
    if not syncookies:
        return SYN_DECLINED
    backlog = syn.l_backlog
    # inet_csk_reqsk_queue_is_full, on the batch's view of the listener
    if syncookies != 2 and not reqsk_queue_full(syn.l_synq, backlog):
        return SYN_DECLINED         # room for a request sock: the layered path's
    if len(syn.l_acceptq) > backlog:
        return SYN_DECLINED         # sk_acceptq_is_full: counted there
    if syn.budget <= 0:
        syn.dropped += 1
        return SYN_BUDGET_DROP
    path = synack_path(syn, src)
    if path is None:
        return SYN_DECLINED         # no route, or a neighbour to resolve: ip_output's work
    ifindex, dst_mac, src_mac, mtu = path
    syn.budget -= 1
    user_mss = syn.l_user_mss
    # tcp_parse_options: the peer's MSS bounded by TCP_MAXSEG, 536 without it
    mss = opt_mss if opt_mss > 0 else _TCP_MSS_DEFAULT
    if opt_mss > 0 and user_mss:
        mss = min(opt_mss, user_mss)
    tstamp_ok = syn.s_tstamps and opt_tsval >= 0
    wscale_ok = tstamp_ok and syn.s_wscaling and opt_wscale >= 0
    sack_ok = tstamp_ok and syn.s_sack and opt_sack
    snd_wscale = min(opt_wscale, 14) if wscale_ok else -1
    rcv_wscale = tcp_rcv_wscale(syn.s_wscaling, syn.s_rmem_max,
                                listener.rcvbuf) if wscale_ok else -1
    advmss = route_advmss(mtu, user_mss)
    rcv_wnd = initial_rcv_wnd(listener.rcvbuf, advmss - 12 if tstamp_ok else advmss)
    mssind = cookie_mss_index(mss)
    isn = secure_tcp_syn_cookie(syn.keys, dst, dport, src, sport, seq, mssind, now)
    ts_val = -1
    if tstamp_ok:
        # the cookie's bits, then the connection's offset (secure_tcp_ts_off),
        # which the returning TSecr has taken off again when it is decoded
        if cython.compiled:
            now_ts = tcp_time_stamp(now)
        else:
            now_ts = _tcp_fast.tcp_time_stamp(now)
        ts_val = (cookie_init_timestamp(now_ts, snd_wscale, sack_ok)
                  + ts_off_hash(syn.keys, dst, src)) & _M32
    listener.last_synq_overflow = now   # tcp_synq_overflow: ACKs may bring cookies
    # ip_build_and_send_pkt: a SYN-ACK with DF (a whole frame always has it)
    # is no connected socket's datagram: IP ID 0 (ip_output.ip_select_ident)
    ident = 0
    frame = synack_frame(dst_mac, src_mac, dst, src, ident, syn.s_ttl, dport, sport, isn,
                         (seq + 1) & _M32, rcv_wnd, advmss, rcv_wscale, sack_ok, ts_val,
                         opt_tsval if tstamp_ok else 0)
    syn.out.append((ifindex, frame))
    syn.sent += 1
    if dst_mac is not None:
        syn.eth_sent += 1
    return SYN_COOKIE_SENT


def synack_frame(dst_mac: Any, src_mac: Any, src: int, dst: int, ident: int, ttl: int,
                 sport: int, dport: int, seq: int, ack: int, window: int, mss: int,
                 wscale: int, sack_ok: bool, ts_val: int, ts_ecr: int) -> bytes:
    """A SYN-ACK as one whole frame (Ethernet when ``dst_mac`` is set, else
    bare IPv4; DF set, TOS 0): the bytes ip_build + wire.build_tcp give for
    ``TcpOptions(mss, wscale, sack_ok, ts_val, ts_ecr)`` (``wscale``,
    ``ts_val`` -1: absent).  The cookie path's (syn_cookie) and a request
    sock's (tcp_send_synack, when ip_tcp_path says the frame may leave
    whole): compiled, one C call and no options record."""
    if cython.compiled:
        return tcp_synack_frame(dst_mac, src_mac, 14 if dst_mac is not None else 0, src, dst,
                                ident, ttl, sport, dport, seq, ack, window, mss, wscale,
                                sack_ok, ts_val, ts_ecr)
    opts = _wire.TcpOptions(mss=mss, wscale=wscale if wscale >= 0 else None,
                            sack_ok=sack_ok, ts_val=ts_val if ts_val >= 0 else None,
                            ts_ecr=ts_ecr if ts_val >= 0 else None)
    return _tx.ip_build(dst_mac, src_mac, _IPPROTO_TCP, src, dst, ident, ttl, 0, True, False,
                        0, _wire.build_tcp(src, dst, sport, dport, seq, ack, _TCPHDR_SYN_ACK,
                                           window, opts))


# --- the sock and the accepted child (TcpSock.__init__, tcp_create_openreq_child) ---
# A TcpCb field set from Python is a generic attribute store (a getset
# descriptor, which CPython 3.11 does not specialize); set here, compiled,
# each is one C store.  An accepted connection sets some sixty of them
# (issue 11: CPU per accepted connection).
_TCP_SYN_RECV = 3
_TCP_CLOSE = 7
_MAX_TCP_WINDOW = 65535
_TCP_MAX_WSCALE = 14


def sock_init(sk: Any, host: Any, rcv_pool: Any, listener: Any, init_cwnd: int,
              no_ofo: Any, no_timer: Any) -> None:
    """TcpSock.__init__'s TcpCb fields whose first value is not zero (the
    rest start at zero compiled; interpreted, sock._cb_zero sets them), and
    the user options and buffer sizes a child of ``listener`` takes from it
    (sk_clone_lock; ``listener`` None: TcpSock sets the settings' own)."""
    sk.host = host
    sk.laddr = 0
    sk.raddr = 0
    sk.state = _TCP_CLOSE
    sk.wq = _tcp_fast.SNDQ_EMPTY       # (its own queue on the first write)
    sk.rtx = []
    sk.window_clamp = _MAX_TCP_WINDOW << _TCP_MAX_WSCALE
    sk.rq = _tcp_fast.RcvQueue()
    sk.rcv_pool = rcv_pool              # the host's (tcp_fast.RcvPool)
    sk.ofo = no_ofo
    sk.advmss = 1460
    sk.mss_cache = _TCP_MSS_DEFAULT
    sk.mss_clamp = _MAX_TCP_WINDOW      # the peer's MSS option
    sk.rcv_mss = _TCP_MSS_DEFAULT
    sk.snd_cwnd = init_cwnd
    sk.rack_mstamp = -1.0               # send time of the latest segment (S)ACKed (-1: none)
    sk.lrcvtime = -1.0                  # when in-order data last arrived (-1: never)
    sk.last_synq_overflow = -1e9
    sk.delack_timer = no_timer          # made when first armed (TcpSock.delack_timer_made)
    if listener is not None:
        lcb: Any = listener
        sk.nodelay = lcb.nodelay
        sk.nonagle = lcb.nonagle
        sk.sndbuf = lcb.sndbuf
        sk.rcvbuf = lcb.rcvbuf


def sync_mss(sk: Any, pmtu: int) -> int:
    """tcp_sync_mss: the effective MSS from the path MTU, the peer's MSS
    option and TCP_MAXSEG (already in mss_clamp, as in Linux: a SYN without
    an MSS option leaves 536 unclamped); less 12 with timestamps."""
    o: Any = sk
    o.pmtu_cookie = pmtu
    mss = min(pmtu - 40, sk.mss_clamp)
    if sk.tstamp_ok:
        mss -= 12
    sk.mss_cache = max(mss, 48)
    return sk.mss_cache


def initialize_rcv_mss(sk: Any) -> None:
    """tcp_initialize_rcv_mss: our guess of the peer's segment size starts
    small, like Linux (536), and grows with what arrives (tcp_event_data_recv)."""
    hint = min(sk.advmss, sk.mss_cache, sk.rcv_wnd // 2, 536)
    sk.rcv_mss = max(hint, 88)


def openreq_child(sk: Any, req: Any, seq: int, window: int, now: float, mtu: int,
                  user_mss: int) -> None:
    """tcp_create_openreq_child's TcpCb fields of a new child ``sk`` from
    its request sock ``req`` and the third ACK (``seq``, its unscaled
    ``window``): the 4-tuple, both sequence spaces from the handshake's
    ISNs, the send window, the negotiated window scale and timestamps, the
    MSS (``mtu``: the route's, ``user_mss``: the listener's TCP_MAXSEG),
    the receive pool's epoch; SYN_RECV, which the caller moves on."""
    r: Any = req
    sk.laddr = r.laddr
    sk.lport = r.lport
    sk.raddr = r.raddr
    sk.rport = r.rport
    snt_isn = r.snt_isn
    rcv_isn = r.rcv_isn
    isn1 = (snt_isn + 1) & _M32
    sk.snd_una = isn1
    sk.snd_nxt = isn1
    sk.write_seq = isn1
    sk.wq_seq = isn1
    sk.snd_sml = isn1
    sk.pushed_seq = isn1
    sk.iss = snt_isn
    sk.irs = rcv_isn
    sk.segs_in = 1      # the SYN, as Linux's child counts it (not the SYN-ACK in segs_out)
    sk.rcv_nxt = (rcv_isn + 1) & _M32
    sk.rcv_wup = sk.rcv_nxt
    sk.rcv_wnd = r.rcv_wnd
    if sk.rcv_pool is not None:
        # counted as a receiver of this epoch already, when its SYN-ACK's
        # window was chosen (rcv_pool_open)
        sk.rcv_epoch = sk.rcv_pool.epoch
    sk.snd_wscale = r.snd_wscale        # both 0 unless wscale_ok
    sk.rcv_wscale = r.rcv_wscale
    # The third ACK's window, scaled, is the first SND.WND and MAX.SND.WND
    # (the SYN's is unscaled and stale)
    sk.snd_wnd = window << sk.snd_wscale
    sk.max_window = sk.snd_wnd
    sk.snd_wl1 = seq
    sk.window_clamp = _MAX_TCP_WINDOW << sk.rcv_wscale
    tstamp_ok: bool = r.tstamp_ok
    sk.tstamp_ok = tstamp_ok
    sk.ts_recent = r.ts_recent
    sk.ts_recent_stamp = now if tstamp_ok else 0.0
    sk.ts_off = r.ts_off
    # req.mss is the peer's MSS already bounded by our TCP_MAXSEG (or a
    # cookie's table value): mss_clamp, which tcp_sync_mss applies (user_mss
    # is not applied a second time there, as in Linux)
    sk.mss_clamp = r.mss
    # tcp_v4_syn_recv_sock: dst_metric_advmss clamped (TcpProto.advmss_for's rule)
    sk.advmss = route_advmss(mtu, user_mss)
    sync_mss(sk, mtu)
    initialize_rcv_mss(sk)
    sk.state = _TCP_SYN_RECV


# --- a connection's state changes and end (tcp_set_state, tcp_done, sk_release) ---
_TCP_ESTABLISHED = 1
_TCP_CLOSE_WAIT = 8


def set_state(sk: Any, state: int, mib: Any, host: Any) -> int:
    """tcp_set_state's store, its CurrEstab count (the connections in
    ESTABLISHED or CLOSE_WAIT, as Linux counts TCP_MIB_CURRESTAB) and the
    connection's trace (at ``host.now``); returns the old state (the caller
    logs the change)."""
    old = sk.state
    if state == _TCP_ESTABLISHED and old != _TCP_ESTABLISHED:
        mib["CurrEstab"] += 1
    elif (old == _TCP_ESTABLISHED and state != _TCP_CLOSE_WAIT) or \
            (old == _TCP_CLOSE_WAIT and state != _TCP_CLOSE_WAIT):
        mib["CurrEstab"] -= 1
    sk.state = state
    if sk.trace is not None:
        sk.trace.set_state(sk, old, state, host.now)
    return old


def tcp_set_state(log: tuple, sk: Any, state: int) -> None:
    """TcpProto.tcp_set_state whole, in one compiled call (a Python method
    and this module's set_state under it were two calls, four times per
    connection, issue 11): set_state at ``sk.host``, then the change on the
    log when it is on.  ``log``: (the logger's own cache of isEnabledFor's
    answers, the logger, the level, ``log_state(sk, old, new)``); the cache
    is read without a call, a level not in it asked the usual way."""
    host = sk.host
    old = set_state(sk, state, host.mib, host)
    cache: dict = log[0]
    logger = log[1]
    level = log[2]
    if (cache[level] if level in cache else logger.isEnabledFor(level)) \
            and not logger.disabled:
        log[3](sk, old, state)


def done_clear(sk: Any) -> None:
    """tcp_done's TcpCb work: no ACK owed, the retransmit queue and its
    counts emptied (tcp_write_queue_purge)."""
    sk.ack_pending = False
    sk.rtx.clear()
    sk.packets_out = 0
    sk.sacked_out = 0
    sk.lost_out = 0
    sk.retrans_out = 0


def release_queues(sk: Any, no_ofo: Any) -> None:
    """sk_release's TcpCb work: the queues' memory given back.  The send
    queue is replaced, not cleared (a memoryview of the old may be out;
    most socks close with nothing unsent and keep their shared empty one)."""
    if sk.wq:
        sk.wq = type(sk.wq)()
    sk.rq.clear()
    sk.ofo = no_ofo
    sk.ofo_bytes = 0
