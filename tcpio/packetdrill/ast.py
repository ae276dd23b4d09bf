"""The syntax tree of a packetdrill script (see parser.py for the grammar).

Times are integer microseconds, as packetdrill keeps them.  Sequence and
acknowledgement numbers are the script's (relative) values; the runner maps
them onto the live connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INBOUND = "<"
OUTBOUND = ">"

# EventTime.kind
ABSOLUTE = "absolute"
RELATIVE = "relative"
ANY = "any"                   # "*": an outbound packet at any time
ABSOLUTE_RANGE = "absolute_range"
RELATIVE_RANGE = "relative_range"


@dataclass
class EventTime:
    kind: str
    usecs: int = 0
    end_usecs: int | None = None   # the "~ end" of a range


# --- expressions (system call arguments and results) -----------------------------

@dataclass
class Ellipsis_:
    """``...``: any value (an address, a buffer)."""


@dataclass
class Int:
    value: int
    hex: bool = False


@dataclass
class Word:
    """A symbol: SOCK_STREAM, O_NONBLOCK, EINPROGRESS, ..."""
    name: str


@dataclass
class Str:
    value: str
    ellipsis: bool = False     # "abc"...


@dataclass
class Binary:
    """``a | b`` (bitwise or), ``name = value`` (a struct field), ``a . b`` (strings)."""
    op: str
    lhs: Expr
    rhs: Expr


@dataclass
class List:
    """``[1]``, ``[]``, ``[{...}, ...]``."""
    items: list[Expr]


@dataclass
class Struct:
    """``{onoff=1, linger=0}``, ``{sa_family=AF_INET, ...}``, ``{..., 100}``."""
    items: list[Expr]


@dataclass
class Call:
    """``htons(8080)``, ``inet_addr("1.2.3.4")``, ``msg_iov(1)``."""
    name: str
    args: list[Expr]


Expr = Ellipsis_ | Int | Word | Str | Binary | List | Struct | Call


# --- packets ----------------------------------------------------------------------

@dataclass
class TcpOption:
    """One option of a ``<...>`` list.

    kind: nop, eol, mss, wscale, sackOK, sack, TS, md5, FO, FOEXP.
    values: mss/wscale -> (n,); sack -> (l1, r1, l2, r2, ...); TS -> (val, ecr);
    FO/FOEXP -> the cookie bytes as ints; md5 -> the key's bytes.
    """
    kind: str
    values: tuple[int, ...] = ()


@dataclass
class IpInfo:
    ecn: str | None = None     # noecn, ect0, ect1, ce, ect01
    tos: int | None = None
    ttl: int | None = None
    flowlabel: int | None = None


@dataclass
class TcpPacket:
    direction: str
    flags: str                 # "S.", "P.", "F.", ".", "R", "" (none)...
    seq: int
    end_seq: int
    payload: int
    ack: int | None = None
    win: int | None = None     # None: not checked (outbound), 0 never implied
    urg: int | None = None
    options: list[TcpOption] | None = field(default_factory=list)  # None: <...>
    ip: IpInfo = field(default_factory=IpInfo)
    ports: tuple[int, int] | None = None


@dataclass
class UdpPacket:
    direction: str
    length: int
    ip: IpInfo = field(default_factory=IpInfo)
    ports: tuple[int, int] | None = None


@dataclass
class IcmpPacket:
    direction: str
    type: str
    code: str | None = None
    mtu: int | None = None
    ip: IpInfo = field(default_factory=IpInfo)
    echoed: str | None = None  # the echoed header, unparsed


Packet = TcpPacket | UdpPacket | IcmpPacket


# --- other actions ----------------------------------------------------------------

@dataclass
class Syscall:
    name: str
    args: list[Expr]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end_usecs: int | None = None   # "...T": a blocking call that returns at T


@dataclass
class Command:
    """A backtick shell command: read for its sysctls, never executed."""
    text: str


@dataclass
class Code:
    """A ``%{ python }%`` block."""
    text: str


Action = TcpPacket | UdpPacket | IcmpPacket | Syscall | Command | Code


@dataclass
class Event:
    line: int
    time: EventTime
    action: Action


@dataclass
class Script:
    path: str
    options: list[tuple[str, str | None]] = field(default_factory=list)
    init_command: Command | None = None
    events: list[Event] = field(default_factory=list)
    defines: dict[str, str] = field(default_factory=dict)

    def option(self, name: str, default: str | None = None) -> str | None:
        value = default
        for k, v in self.options:
            if k == name:
                value = v
        return value
