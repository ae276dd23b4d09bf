"""What glibc's getaddrinfo decides before (and without) DNS: <netdb.h>'s part.

- ``gaierror(code)``: a ``socket.gaierror`` with glibc's gai_strerror text;
- numeric hosts as glibc reads them: ``inet_aton`` (a, a.b, a.b.c, a.b.c.d,
  decimal, 0octal, 0xhex parts), IPv6 literals with a numeric scope,
  ``looks_numeric`` (only digits and dots: glibc's AF_INET path fails such a
  name without a query when it is not an address), ``valid_hostname``
  (res_hnok: what glibc ever sends to a server);
- ``HostsTable``: /etc/hosts for one stack, ``localhost`` in it;
- ``service_ports``: the port for each socket kind, as gaih_inet_serv picks
  it (numbers truncated to 16 bits like glibc, names from /etc/services).

Every rule here is checked against ``socket.getaddrinfo``/``inet_aton`` with
AI_NUMERICHOST in tests/test_resolver_rules.py (those never touch a network).
"""

from __future__ import annotations

import socket as _socket
from typing import Any

from tcpio.dns_wire import MAX_LABEL

AF_INET: int = int(_socket.AF_INET)
AF_INET6: int = int(_socket.AF_INET6)
AF_UNSPEC: int = int(_socket.AF_UNSPEC)

# glibc's gai_strerror texts, so a tcpio gaierror reads like the kernel side's.
_GAI_TEXT = {
    _socket.EAI_NONAME: "Name or service not known",
    _socket.EAI_AGAIN: "Temporary failure in name resolution",
    _socket.EAI_FAIL: "Non-recoverable failure in name resolution",
    _socket.EAI_NODATA: "No address associated with hostname",
    _socket.EAI_FAMILY: "ai_family not supported",
    _socket.EAI_SOCKTYPE: "ai_socktype not supported",
    _socket.EAI_SERVICE: "Servname not supported for ai_socktype",
    _socket.EAI_ADDRFAMILY: "Address family for hostname not supported",
}

DEFAULT_HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"
# (socktype, protocol) in glibc's order: what type=0, proto=0 gives
SOCKTYPES: tuple[tuple[int, int], ...] = (
    (_socket.SOCK_STREAM, _socket.IPPROTO_TCP), (_socket.SOCK_DGRAM, _socket.IPPROTO_UDP),
    (_socket.SOCK_RAW, 0))


def gaierror(code: int, detail: str | None = None) -> _socket.gaierror:
    text = _GAI_TEXT.get(code, "Unknown error")
    return _socket.gaierror(code, f"{text} ({detail})" if detail else text)


# --- numeric hosts --------------------------------------------------------------

def inet_aton(text: str) -> str | None:
    """glibc's ``inet_aton`` forms (a, a.b, a.b.c, a.b.c.d; decimal, 0octal,
    0xhex parts) as a dotted quad, or None.  getaddrinfo accepts all of them."""
    # The usual form first, in C: inet_pton takes exactly four decimal parts
    # of 0-255 without leading zeros (a leading zero is octal to inet_aton),
    # which is already the dotted quad inet_aton's reading gives back.  Every
    # connect and resolve by number comes here (issue 11: the parse below was
    # ~3 % of a connection opened with open_connection("10.0.0.2", ...)).
    try:
        _socket.inet_pton(AF_INET, text)
        return text
    except (OSError, ValueError, TypeError):
        pass
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if not part or not part.isascii() or not part.isalnum():
            return None
        try:
            if part[:2] in ("0x", "0X"):
                value = int(part, 16)          # "0x" alone is no number
            elif part.startswith("0"):
                value = int(part, 8)
            else:
                value = int(part, 10)
        except ValueError:
            return None
        values.append(value)
    last_bits = 8 * (5 - len(values))
    if any(v > 255 for v in values[:-1]) or values[-1] >= 1 << last_bits:
        return None
    n = values[-1]
    for i, v in enumerate(values[:-1]):
        n |= v << (24 - 8 * i)
    return _socket.inet_ntoa(n.to_bytes(4, "big"))


def inet6_literal(text: str) -> tuple[str, int] | None:
    """An IPv6 literal, with an optional numeric "%scope", as (address, scope_id)."""
    addr, _, scope = text.partition("%")
    try:
        packed = _socket.inet_pton(AF_INET6, addr)
    except (OSError, ValueError):
        return None
    if scope and not scope.isdigit():
        return None
    return _socket.inet_ntop(AF_INET6, packed), int(scope or 0)


def looks_numeric(name: str) -> bool:
    """Only digits and dots, not ending in a dot: glibc treats such a name as an
    address and fails it without a query when it is not one."""
    return bool(name) and not name.endswith(".") and all(c in "0123456789." for c in name)


def valid_hostname(name: str) -> bool:
    """res_hnok: letters, digits, '-' and '_' in labels of 1..63, no leading '-',
    at most 253 characters (255 on the wire).  glibc never sends anything else."""
    body = name.removesuffix(".")
    if not body or len(body) > 253 or body.startswith("-"):
        return False
    for label in body.split("."):
        if not 0 < len(label) <= MAX_LABEL:
            return False
        if not all(c.isascii() and (c.isalnum() or c in "-_") for c in label):
            return False
    return True


# --- the hosts table ----------------------------------------------------------------

class HostsTable:
    """Names the stack knows without DNS, like /etc/hosts (``localhost`` to start)."""

    def __init__(self, text: str = DEFAULT_HOSTS) -> None:
        self._by_name: dict[str, list[str]] = {}
        self._official: dict[str, str] = {}     # any name -> its first line's first name
        self._names: dict[str, str] = {}
        self.load(text)

    def load(self, text: str) -> None:
        """Add entries in /etc/hosts syntax ("address name alias... # comment")."""
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                self.add(fields[0], *fields[1:])

    def add(self, address: str, *names: str) -> None:
        """Map each name to ``address`` (IPv4 or IPv6, numeric); the first name is
        what ``getnameinfo`` gives for the address."""
        canon = inet_aton(address) if "." in address and ":" not in address else None
        if canon is None:
            six = inet6_literal(address)
            if six is None or "%" in address:
                raise ValueError(f"not a numeric address: {address!r}")
            canon = six[0]
        if not names:
            raise ValueError("a hosts entry needs at least one name")
        for name in names:
            addrs = self._by_name.setdefault(name.lower(), [])
            if canon not in addrs:
                addrs.append(canon)
            self._official.setdefault(name.lower(), names[0])
        self._names.setdefault(canon, names[0])

    def remove(self, name: str) -> None:
        self._official.pop(name.lower(), None)
        for addr in self._by_name.pop(name.lower(), []):
            if self._names.get(addr, "").lower() == name.lower():
                del self._names[addr]

    def lookup(self, name: str, family: int = AF_UNSPEC) -> list[tuple[int, str]]:
        found = []
        for addr in self._by_name.get(name.lower(), ()):
            fam = AF_INET6 if ":" in addr else AF_INET
            if family in (AF_UNSPEC, fam):
                found.append((fam, addr))
        return found

    def canonical(self, name: str) -> str:
        """The official name (the first on the first line naming it), as glibc's
        files backend gives it for AI_CANONNAME."""
        return self._official.get(name.lower(), name)

    def name_of(self, address: str) -> str | None:
        return self._names.get(address)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_name

    def __repr__(self) -> str:
        return f"<HostsTable {dict(self._by_name)}>"


# --- getaddrinfo's steps before any lookup -------------------------------------

def numeric_host(hostname: str, family: int) -> tuple[list[tuple[int, str]], int]:
    """([(family, address)], IPv6 scope) for a numeric host, ([], 0) for a name;
    EAI_ADDRFAMILY for a literal of the other family."""
    v4 = inet_aton(hostname)
    if v4 is not None:
        if family == AF_INET6:
            raise gaierror(_socket.EAI_ADDRFAMILY)
        return [(AF_INET, v4)], 0
    v6 = inet6_literal(hostname)
    if v6 is not None:
        if family == AF_INET:
            raise gaierror(_socket.EAI_ADDRFAMILY)
        return [(AF_INET6, v6[0])], v6[1]
    return [], 0


def service_ports(port: Any, kinds: list[tuple[int, int]],
                   flags: int) -> list[tuple[tuple[int, int], int]]:
    """Each socket kind with its port number, as glibc's gaih_inet_serv picks them."""
    if port is None:
        return [(k, 0) for k in kinds]
    if isinstance(port, int):
        service = str(port)
    elif isinstance(port, str):
        service = port
    elif isinstance(port, (bytes, bytearray)):
        service = bytes(port).decode("ascii", "replace")
    else:
        raise OSError("Int or String expected")
    if service.isdigit():
        return [(k, int(service) & 0xFFFF) for k in kinds]   # glibc truncates to 16 bits
    if flags & _socket.AI_NUMERICSERV:
        raise gaierror(_socket.EAI_NONAME)
    out = []
    for kind in kinds:
        pname = {_socket.IPPROTO_TCP: "tcp", _socket.IPPROTO_UDP: "udp"}.get(kind[1])
        if pname is None:
            continue
        try:
            out.append((kind, _socket.getservbyname(service, pname)))
        except OSError:
            continue
    if not out:
        raise gaierror(_socket.EAI_SERVICE)
    return out
