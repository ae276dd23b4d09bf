"""SockOpts: the options a user sets on a TCP socket, one shared object.

Linux keeps these scattered over struct sock, inet_sock and tcp_sock
(sk_userlocks, SOCK_KEEPOPEN, sk_lingertime, inet->tos, inet->pmtudisc,
tp->keepalive_time, tp->rx_opt.user_mss, icsk_user_timeout, ...); gVisor
gathers an endpoint's settable options in one place apart from its sender
and receiver state.  tcpio does the latter: ``sk.opts`` is a frozen,
slotted record, read-only by type.

Copy on write: every socket starts with the default instance for its
host's settings (one object shared by all of them, so the group costs a
socket one slot until the user sets an option), setsockopt stores a
modified copy (``sk.opts = sk.opts.with_(keepidle=...)``), and an accepted
child shares its listener's object, as inet_csk_clone_lock copies the
listener's options.

Options that are not here, and why: TCP_NODELAY/TCP_CORK (nodelay,
nonagle) are TcpCb fields the compiled send loop reads; SO_REUSEADDR,
IPV6_V6ONLY (reuseaddr, v6only) belong to the bind hash's identity of a
sock (sock_common's skc_reuse, skc_ipv6only), which request and timewait
socks carry too; SO_SNDBUF/SO_RCVBUF set sndbuf/rcvbuf, which the stack
also grows itself (tcp_sndbuf_expand, tcp_rcv_space_adjust); only their
locks are options; TCP_CONGESTION (ca_ops) is read on every ACK.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..settings import Settings

# include/uapi/linux/in.h: IP_MTU_DISCOVER's values
IP_PMTUDISC_DONT, IP_PMTUDISC_WANT, IP_PMTUDISC_DO = 0, 1, 2
IP_PMTUDISC_OMIT = 5                # the highest value


@dataclass(frozen=True, slots=True)
class SockOpts:
    """What setsockopt changed (or the host's defaults); never modified in
    place: ``with_`` makes the copy a socket then holds alone."""

    keepalive: bool = False         # SO_KEEPALIVE (SOCK_KEEPOPEN)
    keepidle: float = 7200.0        # TCP_KEEPIDLE, seconds (tp->keepalive_time)
    keepintvl: float = 75.0         # TCP_KEEPINTVL, seconds
    keepcnt: int = 9                # TCP_KEEPCNT (tp->keepalive_probes)
    linger: tuple[int, int] = (0, 0)  # SO_LINGER (l_onoff, l_linger)
    user_mss: int = 0               # TCP_MAXSEG (tp->rx_opt.user_mss; 0: none)
    user_timeout: float = 0.0       # TCP_USER_TIMEOUT, seconds (0: off)
    sndbuf_locked: bool = False     # SO_SNDBUF set (SOCK_SNDBUF_LOCK)
    rcvbuf_locked: bool = False     # SO_RCVBUF set (SOCK_RCVBUF_LOCK)
    tos: int = 0                    # IP_TOS (inet->tos)
    pmtudisc: int = IP_PMTUDISC_WANT  # IP_MTU_DISCOVER (inet->pmtudisc)
    # DF on the socket's segments: None is the host's default (what the
    # whole-frame fast path sets), else what IP_MTU_DISCOVER asked for
    ip_df: bool | None = None
    notsent_lowat: int = 0          # TCP_NOTSENT_LOWAT (0: the sysctl's)
    recvmsg_inq: bool = False       # TCP_INQ: recvmsg reports tcp_inq_hint

    def with_(self, **changes: Any) -> SockOpts:
        """A copy with ``changes`` (the caller stores it in ``sk.opts``); an
        unknown name raises TypeError, as dataclasses.replace does.  Written
        out, as replace through the frozen __init__ is several times slower."""
        new = _new(SockOpts)
        for name, value in zip(_FIELDS, _get_all(self)):
            _set(new, name, value)
        for name, value in changes.items():
            if name not in _FIELDS:
                raise TypeError(f"SockOpts has no field {name!r}")
            _set(new, name, value)
        return new


_FIELDS = tuple(f.name for f in dataclasses.fields(SockOpts))
_get_all = operator.attrgetter(*_FIELDS)
_new = object.__new__
_set = object.__setattr__


# The default instance per distinct set of the sysctls it is built from
# (Settings is mutable, so the key is their values, not the object).
_DEFAULTS: dict[tuple[float, float, int, int], SockOpts] = {}


def default_opts(st: Settings) -> SockOpts:
    """The options of a new socket on a host with settings ``st``: the
    keepalive sysctls, IP_MTU_DISCOVER from ip_no_pmtu_disc (the rest
    are the fields' defaults).  One shared object per value set."""
    key = (st.tcp_keepalive_time, st.tcp_keepalive_intvl, st.tcp_keepalive_probes,
           st.ip_no_pmtu_disc)
    opts = _DEFAULTS.get(key)
    if opts is None:
        if len(_DEFAULTS) >= 64:        # tests that sweep sysctls: stay small
            _DEFAULTS.clear()
        opts = _DEFAULTS[key] = SockOpts(
            keepidle=st.tcp_keepalive_time, keepintvl=st.tcp_keepalive_intvl,
            keepcnt=st.tcp_keepalive_probes,
            pmtudisc=IP_PMTUDISC_DONT if st.ip_no_pmtu_disc else IP_PMTUDISC_WANT)
    return opts
