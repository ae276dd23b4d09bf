"""Linux sysctls (as packetdrill scripts set them) onto tcpio's Settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tcpio.core.settings import Settings


def _ints(n: int) -> Callable[[str], tuple[int, ...]]:
    def convert(value: str) -> tuple[int, ...]:
        parts = tuple(int(p, 0) for p in value.split())
        if len(parts) != n:
            raise ValueError(f"expected {n} integers, got {value!r}")
        return parts
    return convert


def _int(value: str) -> int:
    return int(value.strip(), 0)


def _secs(value: str) -> float:
    return float(int(value.strip(), 0))


def _ms(value: str) -> float:
    return int(value.strip(), 0) / 1000.0


# sysctl name -> (Settings field, how to read the value)
SYSCTL_SETTINGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "net.ipv4.tcp_rmem": ("tcp_rmem", _ints(3)),
    "net.ipv4.tcp_wmem": ("tcp_wmem", _ints(3)),
    "net.ipv4.tcp_notsent_lowat": ("tcp_notsent_lowat", _int),
    "net.ipv4.tcp_timestamps": ("tcp_timestamps", _int),
    "net.ipv4.tcp_sack": ("tcp_sack", _int),
    "net.ipv4.tcp_dsack": ("tcp_dsack", _int),
    "net.ipv4.tcp_window_scaling": ("tcp_window_scaling", _int),
    "net.ipv4.tcp_syn_retries": ("tcp_syn_retries", _int),
    "net.ipv4.tcp_synack_retries": ("tcp_synack_retries", _int),
    "net.ipv4.tcp_syncookies": ("tcp_syncookies", _int),
    "net.ipv4.tcp_max_syn_backlog": ("tcp_max_syn_backlog", _int),
    "net.ipv4.tcp_abort_on_overflow": ("tcp_abort_on_overflow", _int),
    "net.ipv4.tcp_fin_timeout": ("tcp_fin_timeout", _secs),
    "net.ipv4.tcp_retries2": ("tcp_retries2", _int),
    "net.ipv4.tcp_orphan_retries": ("tcp_orphan_retries", _int),
    "net.ipv4.tcp_max_orphans": ("tcp_max_orphans", _int),
    "net.ipv4.tcp_max_tw_buckets": ("tcp_max_tw_buckets", _int),
    "net.ipv4.tcp_tw_reuse": ("tcp_tw_reuse", _int),
    "net.ipv4.ip_no_pmtu_disc": ("ip_no_pmtu_disc", _int),
    "net.ipv4.tcp_challenge_ack_limit": ("tcp_challenge_ack_limit", _int),
    "net.ipv4.tcp_invalid_ratelimit": ("tcp_invalid_ratelimit", _ms),
    "net.ipv4.tcp_keepalive_time": ("tcp_keepalive_time", _secs),
    "net.ipv4.tcp_keepalive_intvl": ("tcp_keepalive_intvl", _secs),
    "net.ipv4.tcp_keepalive_probes": ("tcp_keepalive_probes", _int),
    "net.ipv4.tcp_congestion_control": ("tcp_congestion_control", str.strip),
    "net.ipv4.tcp_early_retrans": ("tcp_early_retrans", _int),
    "net.ipv4.tcp_recovery": ("tcp_recovery", _int),
    "net.ipv4.tcp_reordering": ("tcp_reordering", _int),
    "net.ipv4.tcp_min_tso_segs": ("tcp_min_tso_segs", _int),
    "net.ipv4.tcp_pacing_ss_ratio": ("tcp_pacing_ss_ratio", _int),
    "net.ipv4.tcp_pacing_ca_ratio": ("tcp_pacing_ca_ratio", _int),
    "net.ipv4.tcp_max_reordering": ("tcp_max_reordering", _int),
    "net.ipv4.ip_local_port_range": ("ip_local_port_range", _ints(2)),
    "net.ipv4.ip_default_ttl": ("ip_default_ttl", _int),
    "net.core.somaxconn": ("somaxconn", _int),
    # /sys/module/tcp_cubic/parameters/hystart_detect (shell.py names it so)
    "module.tcp_cubic.hystart_detect": ("tcp_cubic_hystart_detect", _int),
}

# Sysctls with no Settings field whose value is what tcpio always does, so
# setting them changes nothing (tcpio has no ECN, no FACK, no Fast Open).
MATCHES_TCPIO: dict[str, Callable[[str], bool]] = {
    "net.ipv4.tcp_ecn": lambda v: v.strip() == "0",
    "net.ipv4.tcp_ecn_option": lambda v: True,       # only used with tcp_ecn
    "net.ipv4.tcp_ecn_fallback": lambda v: True,
    "net.ipv4.tcp_fack": lambda v: v.strip() == "0",
    "net.ipv4.tcp_fastopen": lambda v: True,         # matters only with TFO, not supported
    "net.ipv4.tcp_fastopen_key": lambda v: True,
}


def apply(settings: Settings, name: str, value: str) -> str | None:
    """Apply one sysctl; None if applied (or already tcpio's behaviour), else
    a note saying why not."""
    name = name.replace("/", ".")
    entry = SYSCTL_SETTINGS.get(name)
    if entry is not None:
        attr, convert = entry
        try:
            setattr(settings, attr, convert(value))
        except ValueError as e:
            return f"sysctl {name}={value}: {e}"
        return None
    if name == "net.ipv4.tcp_ecn":
        settings.extra["tcp_ecn"] = value.strip() not in ("0", "")
    check = MATCHES_TCPIO.get(name)
    if check is not None and check(value):
        return None
    return f"sysctl {name}={value} not applied (no tcpio setting)"
