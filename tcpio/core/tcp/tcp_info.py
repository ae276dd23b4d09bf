"""TCP_INFO (net/ipv4/tcp.c tcp_get_info, include/uapi/linux/tcp.h struct tcp_info).

``tcp_get_info(sk)`` gives the fields of ``struct tcp_info`` that tcpio keeps,
by their ``tcpi_`` names and in Linux's units (microseconds for rto, ato, rtt,
rttvar, rcv_rtt and min_rtt; milliseconds for the ``last_*`` ages; segments
for cwnd and ssthresh; bytes for the rest).  A field tcpio does not keep is
absent from the dict (so a checker can tell "unknown" from 0), and 0 in the
packed struct ``tcp_info_pack`` builds in Linux's layout (248 bytes, as
Linux 6.x; callers that ask for fewer bytes get the prefix, as getsockopt
truncates to the caller's length).

Not kept: tcpi_rcv_ssthresh, tcpi_last_ack_sent,
pacing and delivery rates, data_segs_*, busy/limited times,
bytes_sent/bytes_retrans, delivered, dsack_dups, rcv_ooopack.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .tcp_states import TCP_LISTEN, TCP_SYN_SENT, seq_diff
from .inet6_addr import IPV6_TCP_EXTRA, V6MASK

if TYPE_CHECKING:
    from .sock import TcpSock

# tcpi_options bits (include/uapi/linux/tcp.h)
TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4
TCPI_OPT_ECN = 8
TCPI_OPT_ECN_SEEN = 16
TCPI_OPT_SYN_DATA = 32

TCP_INFINITE_SSTHRESH = 0x7FFFFFFF

# struct tcp_info, native alignment (x86-64 and every Linux ABI tcpio runs on
# put the u64 fields at multiples of 8 here without padding).
_LAYOUT: tuple[tuple[str, str], ...] = (
    ("tcpi_state", "B"), ("tcpi_ca_state", "B"), ("tcpi_retransmits", "B"),
    ("tcpi_probes", "B"), ("tcpi_backoff", "B"), ("tcpi_options", "B"),
    ("_wscale", "B"), ("_app_limited", "B"),
    ("tcpi_rto", "I"), ("tcpi_ato", "I"), ("tcpi_snd_mss", "I"), ("tcpi_rcv_mss", "I"),
    ("tcpi_unacked", "I"), ("tcpi_sacked", "I"), ("tcpi_lost", "I"), ("tcpi_retrans", "I"),
    ("tcpi_fackets", "I"),
    ("tcpi_last_data_sent", "I"), ("tcpi_last_ack_sent", "I"), ("tcpi_last_data_recv", "I"),
    ("tcpi_last_ack_recv", "I"),
    ("tcpi_pmtu", "I"), ("tcpi_rcv_ssthresh", "I"), ("tcpi_rtt", "I"), ("tcpi_rttvar", "I"),
    ("tcpi_snd_ssthresh", "I"), ("tcpi_snd_cwnd", "I"), ("tcpi_advmss", "I"),
    ("tcpi_reordering", "I"),
    ("tcpi_rcv_rtt", "I"), ("tcpi_rcv_space", "I"),
    ("tcpi_total_retrans", "I"),
    ("tcpi_pacing_rate", "Q"), ("tcpi_max_pacing_rate", "Q"), ("tcpi_bytes_acked", "Q"),
    ("tcpi_bytes_received", "Q"),
    ("tcpi_segs_out", "I"), ("tcpi_segs_in", "I"),
    ("tcpi_notsent_bytes", "I"), ("tcpi_min_rtt", "I"), ("tcpi_data_segs_in", "I"),
    ("tcpi_data_segs_out", "I"),
    ("tcpi_delivery_rate", "Q"),
    ("tcpi_busy_time", "Q"), ("tcpi_rwnd_limited", "Q"), ("tcpi_sndbuf_limited", "Q"),
    ("tcpi_delivered", "I"), ("tcpi_delivered_ce", "I"),
    ("tcpi_bytes_sent", "Q"), ("tcpi_bytes_retrans", "Q"),
    ("tcpi_dsack_dups", "I"), ("tcpi_reord_seen", "I"),
    ("tcpi_rcv_ooopack", "I"),
    ("tcpi_snd_wnd", "I"), ("tcpi_rcv_wnd", "I"),
    ("tcpi_rehash", "I"),
    ("tcpi_total_rto", "H"), ("tcpi_total_rto_recoveries", "H"), ("tcpi_total_rto_time", "I"),
)
TCP_INFO_STRUCT = struct.Struct("=" + "".join(f for _, f in _LAYOUT))
TCP_INFO_FIELDS = tuple(n for n, _ in _LAYOUT)
assert TCP_INFO_STRUCT.size == 248


def _us(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


def _ms(seconds: float) -> int:
    return max(0, min(int(seconds * 1000), 0xFFFFFFFF))


def tcp_get_info(sk: TcpSock) -> dict[str, int]:
    """The tcp_info fields tcpio keeps, by their tcpi_ names, as Linux's
    tcp_get_info computes them."""
    now = sk.host.now
    est = sk.rtt_est
    options = 0
    if sk.tstamp_ok:
        options |= TCPI_OPT_TIMESTAMPS
    if sk.sack_ok:
        options |= TCPI_OPT_SACK
    info: dict[str, int] = {
        "tcpi_state": sk.state,
        "tcpi_ca_state": sk.ca_state,
        "tcpi_retransmits": sk.retransmits,
        "tcpi_probes": sk.probes_out,
        # icsk_backoff: RTO backoff, or the zero-window probe's
        "tcpi_backoff": max(est.backoff_count, sk.backoff),
        "tcpi_options": options,
        "tcpi_rto": _us(sk.rto),
        "tcpi_ato": _us(sk.host.settings.tcp_delack_min),
        "tcpi_snd_mss": sk.mss_cache,
        "tcpi_rcv_mss": sk.rcv_mss,
        "tcpi_unacked": sk.packets_out,
        "tcpi_sacked": sk.sacked_out,
        "tcpi_lost": sk.lost_out,
        "tcpi_retrans": sk.retrans_out,
        "tcpi_last_ack_recv": _ms(now - sk.rcv_tstamp) if sk.rcv_tstamp else 0,
        "tcpi_rtt": _us(est.srtt) if est.has_sample else 0,
        "tcpi_rttvar": _us(est.rttvar) if est.has_sample else 0,
        "tcpi_snd_ssthresh": min(sk.snd_ssthresh, TCP_INFINITE_SSTHRESH),
        "tcpi_snd_cwnd": sk.snd_cwnd,
        "tcpi_advmss": sk.advmss,
        "tcpi_reordering": sk.reordering,
        "tcpi_rcv_rtt": _us(sk.rcv_rtt),
        "tcpi_rcv_space": sk.rcvq_space,
        "tcpi_total_retrans": sk.total_retrans,
        "tcpi_segs_out": sk.segs_out,
        "tcpi_segs_in": sk.segs_in,
        "tcpi_notsent_bytes": max(seq_diff(sk.write_seq, sk.snd_nxt), 0),
        "tcpi_min_rtt": _us(sk.min_rtt) if sk.min_rtt else 0xFFFFFFFF,
        "tcpi_reord_seen": sk.reord_seen,
        "tcpi_snd_wnd": sk.snd_wnd,
        "tcpi_rcv_wnd": sk.rcv_wnd,
    }
    if sk.wscale_ok:
        info["tcpi_options"] = options | TCPI_OPT_WSCALE
        info["tcpi_snd_wscale"] = sk.snd_wscale
        info["tcpi_rcv_wscale"] = sk.rcv_wscale
    if sk.lsndtime is not None:
        info["tcpi_last_data_sent"] = _ms(now - sk.lsndtime)
    if sk.lrcvtime >= 0:
        info["tcpi_last_data_recv"] = _ms(now - sk.lrcvtime)
    if sk.raddr:
        try:
            extra = IPV6_TCP_EXTRA if sk.raddr > V6MASK else 0   # route_mtu's IPv6 offset
            info["tcpi_pmtu"] = sk.proto.route_mtu(sk.raddr) + extra
        except OSError:
            pass
    if sk.state == TCP_LISTEN:
        # tcp_get_info: a listener reports its accept queue and backlog here
        info["tcpi_unacked"] = len(sk.accept_queue)
        info["tcpi_sacked"] = sk.max_ack_backlog
    elif sk.state != TCP_SYN_SENT and sk.raddr:
        # tcp_snd_una_update / tcp_rcv_nxt_update sums: what SND.UNA and
        # RCV.NXT moved past; as in Linux the active opener's SYN counts (its
        # ACK moved SND.UNA), a passive child starts past its SYN-ACK
        base = (sk.iss + 1) & 0xFFFFFFFF if sk.passive else sk.iss
        info["tcpi_bytes_acked"] = seq_diff(sk.snd_una, base) & 0xFFFFFFFF
        info["tcpi_bytes_received"] = (seq_diff(sk.rcv_nxt, sk.irs) - 1) & 0xFFFFFFFF
    return info


def tcp_info_pack(info: dict[str, int], buflen: int | None = None) -> bytes:
    """``struct tcp_info`` in Linux's layout from a tcp_get_info dict (absent
    fields 0), cut to ``buflen`` bytes when given (getsockopt's length)."""
    values = []
    for name, _fmt in _LAYOUT:
        if name == "_wscale":
            values.append((info.get("tcpi_snd_wscale", 0) & 0xF)
                          | (info.get("tcpi_rcv_wscale", 0) & 0xF) << 4)
        else:
            values.append(info.get(name, 0))
    raw = TCP_INFO_STRUCT.pack(*values)
    return raw if buflen is None else raw[:max(buflen, 0)]


def tcp_info_unpack(raw: bytes) -> dict[str, int]:
    """The fields of a (possibly shorter, older kernel's) packed tcp_info,
    snd/rcv_wscale split out of their bitfield byte."""
    n = len(raw)
    out: dict[str, int] = {}
    off = 0
    for name, fmt in _LAYOUT:
        size = struct.calcsize(fmt)
        if off + size > n:
            break
        (v,) = struct.unpack_from("=" + fmt, raw, off)
        off += size
        if name == "_wscale":
            out["tcpi_snd_wscale"] = v & 0xF
            out["tcpi_rcv_wscale"] = v >> 4
        elif not name.startswith("_"):
            out[name] = v
    return out


_CA_NAMES = ("open", "disorder", "cwr", "recovery", "loss")


def format_ss_info(info: dict[str, int], cc: str = "") -> str:
    """One connection's line of ``ss -ti`` details from a tcp_get_info dict."""
    parts: list[str] = []
    opts = info.get("tcpi_options", 0)
    if opts & TCPI_OPT_TIMESTAMPS:
        parts.append("ts")
    if opts & TCPI_OPT_SACK:
        parts.append("sack")
    if cc:
        parts.append(cc)
    if opts & TCPI_OPT_WSCALE:
        parts.append(f"wscale:{info['tcpi_snd_wscale']},{info['tcpi_rcv_wscale']}")
    parts.append(f"rto:{info['tcpi_rto'] / 1000:g}")
    if info.get("tcpi_backoff"):
        parts.append(f"backoff:{info['tcpi_backoff']}")
    if info.get("tcpi_rtt"):
        parts.append(f"rtt:{info['tcpi_rtt'] / 1000:g}/{info['tcpi_rttvar'] / 1000:g}")
    parts.append(f"ato:{info['tcpi_ato'] // 1000}")
    parts.append(f"mss:{info['tcpi_snd_mss']}")
    if "tcpi_pmtu" in info:
        parts.append(f"pmtu:{info['tcpi_pmtu']}")
    parts.append(f"rcvmss:{info['tcpi_rcv_mss']}")
    parts.append(f"advmss:{info['tcpi_advmss']}")
    parts.append(f"cwnd:{info['tcpi_snd_cwnd']}")
    if info["tcpi_snd_ssthresh"] < TCP_INFINITE_SSTHRESH:
        parts.append(f"ssthresh:{info['tcpi_snd_ssthresh']}")
    if "tcpi_bytes_acked" in info:
        parts.append(f"bytes_acked:{info['tcpi_bytes_acked']}")
        parts.append(f"bytes_received:{info['tcpi_bytes_received']}")
    parts.append(f"segs_out:{info['tcpi_segs_out']}")
    parts.append(f"segs_in:{info['tcpi_segs_in']}")
    if info.get("tcpi_last_data_sent") is not None:
        parts.append(f"lastsnd:{info['tcpi_last_data_sent']}")
    if "tcpi_last_data_recv" in info:
        parts.append(f"lastrcv:{info['tcpi_last_data_recv']}")
    parts.append(f"lastack:{info['tcpi_last_ack_recv']}")
    if info.get("tcpi_ca_state"):
        parts.append(f"ca_state:{_CA_NAMES[info['tcpi_ca_state']]}")
    if info.get("tcpi_unacked"):
        parts.append(f"unacked:{info['tcpi_unacked']}")
    if info.get("tcpi_retrans") or info.get("tcpi_total_retrans"):
        parts.append(f"retrans:{info.get('tcpi_retrans', 0)}/{info['tcpi_total_retrans']}")
    if info.get("tcpi_lost"):
        parts.append(f"lost:{info['tcpi_lost']}")
    if info.get("tcpi_sacked"):
        parts.append(f"sacked:{info['tcpi_sacked']}")
    if info.get("tcpi_reordering", 3) != 3:
        parts.append(f"reordering:{info['tcpi_reordering']}")
    if info.get("tcpi_rcv_rtt"):
        parts.append(f"rcv_rtt:{info['tcpi_rcv_rtt'] / 1000:g}")
    parts.append(f"rcv_space:{info['tcpi_rcv_space']}")
    if info.get("tcpi_notsent_bytes"):
        parts.append(f"notsent:{info['tcpi_notsent_bytes']}")
    if info.get("tcpi_min_rtt", 0xFFFFFFFF) != 0xFFFFFFFF:
        parts.append(f"minrtt:{info['tcpi_min_rtt'] / 1000:g}")
    parts.append(f"snd_wnd:{info['tcpi_snd_wnd']}")
    parts.append(f"rcv_wnd:{info['tcpi_rcv_wnd']}")
    return " ".join(parts)
