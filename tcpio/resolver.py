"""A stub resolver whose queries go through the stack itself.

``Stack.getaddrinfo``/``getnameinfo`` answer what ``socket.getaddrinfo`` and
``socket.getnameinfo`` answer on Linux with glibc (``hosts: files dns``), but
every DNS packet is a tcpio datagram (or, for a truncated answer, a tcpio TCP
connection, RFC 7766), sent from the stack's own addresses:

- numeric hosts never reach DNS: glibc's ``inet_aton`` forms ("10.1",
  "0x7f.1", "4294967295"), and a name of only digits and dots that is not a
  valid address ("10.0.0.300", "1.2.3.4.5") is EAI_NONAME without a query,
  as glibc 2.36 gives it for AF_INET (the call CPython's connect makes; for
  AF_UNSPEC or AI_CANONNAME glibc does send such a name, and a server's
  NXDOMAIN makes the same EAI_NONAME); an IPv6 literal for AF_INET is
  EAI_ADDRFAMILY; names res_hnok refuses ("-", "a b") are never sent either;
- then the hosts table (``stack.hosts``, "localhost" in it), case-insensitive,
  exact names only (glibc's files backend does not match "localhost.");
- then DNS: the search list (``ndots`` as in resolv.conf(5)), A for AF_INET,
  AAAA for AF_INET6, both for AF_UNSPEC (IPv4 first while the stack has no
  IPv6: RFC 6724 rule 1, unusable destinations last), ``attempts`` rounds
  over the servers with ``timeout`` seconds each, a fresh connected UDP
  endpoint (ephemeral port) and a random ID per query.

Every answer is checked before it is believed: the source (the core's
connected-socket lookup and here), the length (512 bytes over UDP: we send no
EDNS), the ID, the QR bit, and the question echoed back; a datagram failing
any check is counted in ``resolver.stats`` and the query keeps waiting.  An
answer that passes those checks but cannot be parsed (pointer loops, records
cut short) is EAI_NODATA, which is what glibc 2.36 gives for it.  The errors
are glibc's: NXDOMAIN -> EAI_NONAME, no address records -> EAI_NODATA,
SERVFAIL/REFUSED/NOTIMP, silence or ICMP errors from every server ->
EAI_AGAIN, FORMERR -> EAI_NONAME.  Nothing waits longer than
``attempts * len(servers) * timeout``; every endpoint and TCP connection is
closed when its query ends.

Answers are cached for their TTL (the smallest in the CNAME chain), NXDOMAIN
and NODATA for the SOA's negative TTL (RFC 2308 section 5); the cache holds
``CACHE_SIZE`` names, least recently used out first.
"""

from __future__ import annotations

import asyncio
import collections
import random
import socket as _socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tcpio import dns_wire as w
from tcpio.netdb import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    SOCKTYPES,
    HostsTable,
    gaierror,
    inet6_literal,
    inet_aton,
    looks_numeric,
    numeric_host,
    service_ports,
    valid_hostname,
)

if TYPE_CHECKING:
    from tcpio.stack import Stack

CACHE_SIZE = 512
MAX_TTL = 86400          # cache nothing longer than a day, whatever the TTL says
MAX_CNAME_CHAIN = 8


# --- the cache ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Answer:
    canonical: str
    addresses: tuple[str, ...]


class DnsCache:
    """(name, qtype) -> an answer or a negative result (an EAI code), until its TTL."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: collections.OrderedDict[tuple[str, int], tuple[float, _Answer | int]] = \
            collections.OrderedDict()

    def get(self, key: tuple[str, int], now: float) -> _Answer | int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: tuple[str, int], value: _Answer | int, ttl: float, now: float) -> None:
        if ttl <= 0 or self.size <= 0:
            return
        self._entries[key] = (now + min(ttl, MAX_TTL), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# --- one query on the wire -------------------------------------------------------------------

class _Failure(Exception):
    def __init__(self, code: int, detail: str, *, servfail: bool = False) -> None:
        super().__init__(detail)
        self.code = code
        self.servfail = servfail      # the server answered that it failed (vs. silence)


class _UdpCatcher(asyncio.DatagramProtocol):
    """One query's endpoint: each datagram is judged as it arrives (``judge``
    counts the drops), and the first that answers the query, or an ICMP error,
    ends the wait.  Nothing is queued, so a flood costs no memory."""

    def __init__(self, judge: Callable[[bytes, Any], w.Message | object | None]) -> None:
        self.judge = judge
        self.done: asyncio.Future[w.Message | object | None] = \
            asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.done.done():
            msg = self.judge(data, addr)
            if msg is not None:
                self.done.set_result(msg)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_result(exc)


_MALFORMED = object()


class Resolver:
    """The stack's stub resolver: hosts table, name servers, search list, cache.

    ``stats`` counts every answer thrown away and why ("wrong_id",
    "wrong_question", "not_response", "oversized", "short", "wrong_source",
    "malformed"), plus "queries", "timeouts", "unreachable" (no route, or an ICMP
    error), "tcp_fallbacks", "cache_hits" and "joined" (a caller that waited for
    a query already on the wire).
    """

    def __init__(self, stack: Stack, *, rng: random.Random | None = None) -> None:
        self._stack = stack
        self.hosts = HostsTable()
        self.nameservers: list[tuple[str, int]] = []
        self.search: list[str] = []
        self.ndots = 1
        self.timeout = 5.0
        self.attempts = 2
        self.cache = DnsCache()
        self.stats: collections.Counter[str] = collections.Counter()
        # DNS IDs must not be guessable (RFC 5452); tests may pass a seeded Random.
        self.rng: random.Random = rng if rng is not None else random.SystemRandom()
        self._inflight: dict[tuple[str, int], asyncio.Future[_Answer]] = {}

    def configure(self, servers: Iterable[str | tuple[str, int]],
                  search: Iterable[str] | None = None, *, ndots: int | None = None,
                  timeout: float | None = None, attempts: int | None = None) -> None:
        """Name servers ("10.0.0.53" or (address, port)), search list, options."""
        parsed = []
        for server in servers:
            host, port = (server, 53) if isinstance(server, str) else server
            addr = inet_aton(host) if ":" not in host else None
            if addr is None:
                raise ValueError(f"a name server must be an IPv4 address: {host!r}")
            if not 0 < int(port) < 65536:
                raise ValueError(f"bad name server port: {port!r}")
            parsed.append((addr, int(port)))
        self.nameservers = parsed
        if search is not None:
            domains = [d.strip(".").encode("idna").decode("ascii").lower() for d in search]
            if not all(valid_hostname(d) for d in domains):
                raise ValueError(f"bad search domain in {list(search)!r}")
            self.search = domains
        if ndots is not None:
            self.ndots = max(0, min(int(ndots), 15))       # resolv.conf caps it at 15
        if timeout is not None:
            if not timeout > 0:
                raise ValueError("timeout must be positive")
            self.timeout = float(timeout)
        if attempts is not None:
            if int(attempts) < 1:
                raise ValueError("attempts must be at least 1")
            self.attempts = int(attempts)
        self.cache.clear()

    # --- what the non-async calls may use ----------------------------------------

    def lookup_nowait(self, host: str) -> str | None:
        """An IPv4 address for ``host`` without waiting: numeric, the hosts table or
        a cached answer (what a non-async call such as ``bind`` can use)."""
        numeric = inet_aton(host)
        if numeric is not None:
            return numeric
        found = self.hosts.lookup(host, AF_INET)
        if found:
            return found[0][1]
        for name in self._candidates(host.lower()):
            hit = self.cache.get((name, w.TYPE_A), self._now())
            if isinstance(hit, _Answer) and hit.addresses:
                return hit.addresses[0]
        return None

    async def resolve_address(self, address: Any, type: int = _socket.SOCK_STREAM,
                              family: int = AF_INET) -> Any:
        """(host, port) with a name -> (numeric address, port), as a socket call
        resolves it (the first answer of ``family``); numeric or empty hosts
        unchanged."""
        host, port = address[0], address[1]
        if not isinstance(host, str) or not host:
            return address
        if self.lookup_nowait(host) if family == AF_INET else inet6_literal(host):
            return address
        infos = await self.getaddrinfo(host, port, family, type)
        return (infos[0][4][0], port, *address[2:])

    # --- name -> addresses -----------------------------------------------------------

    async def lookup(self, name: str, family: int = AF_UNSPEC) -> tuple[str, list[tuple[int, str]]]:
        """(canonical name, [(family, address)...]) for an ASCII host name that is
        not numeric; ``socket.gaierror`` when there is none."""
        found = self.hosts.lookup(name, family)
        if found:
            return self.hosts.canonical(name), found
        if not valid_hostname(name):
            raise gaierror(_socket.EAI_NONAME)
        if not self.nameservers:
            raise gaierror(_socket.EAI_NONAME, "tcpio: no name servers, see Stack.set_name_servers")
        qtypes: tuple[int, ...] = (w.TYPE_A,) if family == AF_INET else \
            (w.TYPE_AAAA,) if family == AF_INET6 else (w.TYPE_A, w.TYPE_AAAA)
        failure: _Failure | None = None
        servfail: _Failure | None = None
        nodata: _Failure | None = None
        for candidate in self._candidates(name.lower()):
            try:
                canonical, addrs = await self._lookup_types(candidate, qtypes)
                return canonical, addrs
            except _Failure as exc:
                failure = exc
                if exc.code == _socket.EAI_NODATA:
                    nodata = nodata or exc
                elif exc.code == _socket.EAI_AGAIN:
                    if not exc.servfail:
                        break             # silence: the next domain would time out too
                    servfail = servfail or exc
        # res_search's verdict: NODATA for any domain beats a server failure,
        # which beats NXDOMAIN everywhere.
        final = nodata or servfail or failure
        assert final is not None
        raise gaierror(final.code, str(final) if final.code == _socket.EAI_AGAIN else None)

    def _candidates(self, name: str) -> list[str]:
        """The names to try, in res_search's order (resolv.conf(5) ndots)."""
        if name.endswith("."):
            return [name[:-1]]
        with_domains = [f"{name}.{d}" for d in self.search]
        if name.count(".") >= self.ndots:
            return [name, *with_domains]
        return [*with_domains, name]

    async def _lookup_types(self, name: str, qtypes: Sequence[int]) -> tuple[str, list[tuple[int, str]]]:
        if len(qtypes) == 1:
            results: list[_Answer | BaseException] = [await self._query(name, qtypes[0])]
        else:
            results = list(await asyncio.gather(*(self._query(name, q) for q in qtypes),
                                                 return_exceptions=True))
        found: list[tuple[int, str]] = []
        canonical = name
        first_error: _Failure | None = None
        for qtype, res in zip(qtypes, results):
            if isinstance(res, _Answer):
                if res.addresses and not found:
                    canonical = res.canonical
                fam = AF_INET if qtype == w.TYPE_A else AF_INET6
                found += [(fam, a) for a in res.addresses]
            elif isinstance(res, _Failure):
                first_error = first_error or res
            elif isinstance(res, BaseException):
                raise res
        if found:
            return canonical, found
        assert first_error is not None
        raise first_error

    def _now(self) -> float:
        """The stack's clock (the loop's, virtual in tests), for TTLs."""
        try:
            self._stack.update_time()
        except RuntimeError:        # no running loop: a non-async call from outside
            pass
        return self._stack.host.now

    async def _query(self, name: str, qtype: int) -> _Answer:
        key = (name, qtype)
        hit = self.cache.get(key, self._now())
        if hit is not None:
            self.stats["cache_hits"] += 1
            if isinstance(hit, int):
                raise _Failure(hit, "cached")
            return hit
        # One query on the wire per name and type at a time: later callers wait
        # for the same answer (shielded: one caller's cancel is not everyone's).
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._query_servers(key))
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._query_done(key, t))
        else:
            self.stats["joined"] += 1
        return await asyncio.shield(task)

    def _query_done(self, key: tuple[str, int], task: asyncio.Future[_Answer]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()          # retrieved: nobody may be left to await it

    async def _query_servers(self, key: tuple[str, int]) -> _Answer:
        name, qtype = key
        last = _Failure(_socket.EAI_AGAIN, "no answer")
        for _ in range(self.attempts):
            for server in self.nameservers:
                msg = await self._ask_udp(server, name, qtype)
                if msg is None:
                    last = _Failure(_socket.EAI_AGAIN, "no answer")
                    continue
                if msg is _MALFORMED:
                    raise _Failure(_socket.EAI_NODATA, "malformed answer")
                assert isinstance(msg, w.Message)
                rcode = msg.rcode
                if rcode == w.NXDOMAIN:
                    self._cache_negative(key, msg, _socket.EAI_NONAME)
                    raise _Failure(_socket.EAI_NONAME, "NXDOMAIN")
                if rcode == w.NOERROR:
                    return self._answer(key, msg, qtype)
                last = _Failure(_socket.EAI_NONAME, "FORMERR") if rcode == w.FORMERR else \
                    _Failure(_socket.EAI_AGAIN, "server failure", servfail=True)
        raise last

    def _answer(self, key: tuple[str, int], msg: w.Message, qtype: int) -> _Answer:
        """Follow the CNAME chain from the question's name; keep class IN records of
        ``qtype`` owned by its end (RFC 1034 4.3.2)."""
        owner = key[0]
        ttl = MAX_TTL
        for _ in range(MAX_CNAME_CHAIN):
            alias = [rr for rr in msg.answers
                     if rr.name == owner and rr.type == w.TYPE_CNAME and rr.rclass == w.CLASS_IN]
            if not alias:
                break
            ttl = min(ttl, alias[0].ttl)
            owner = str(alias[0].data)
        records = [rr for rr in msg.answers
                   if rr.name == owner and rr.type == qtype and rr.rclass == w.CLASS_IN]
        if not records:
            self._cache_negative(key, msg, _socket.EAI_NODATA)
            raise _Failure(_socket.EAI_NODATA, "no address records")
        ttl = min([ttl, *(rr.ttl for rr in records)])
        addresses = tuple(dict.fromkeys(str(rr.data) for rr in records))
        answer = _Answer(owner, addresses)
        self.cache.put(key, answer, ttl, self._now())
        return answer

    def _cache_negative(self, key: tuple[str, int], msg: w.Message, code: int) -> None:
        # RFC 2308 5: the negative TTL is min(SOA TTL, SOA MINIMUM); no SOA, no caching.
        for rr in msg.authority:
            if rr.type == w.TYPE_SOA and isinstance(rr.data, w.Soa):
                self.cache.put(key, code, min(rr.ttl, rr.data.minimum), self._now())
                return

    def _check(self, data: bytes, qid: int, name: str, qtype: int,
               limit: int) -> w.Message | object | None:
        """A message that answers this query, _MALFORMED, or None (counted drop)."""
        stats = self.stats
        if len(data) > limit:
            stats["oversized"] += 1
            return None
        try:
            rid, flags, _ = w.parse_header(data)
        except w.DnsError:
            stats["short"] += 1
            return None
        if rid != qid:
            stats["wrong_id"] += 1
            return None
        if not flags & 0x8000:
            stats["not_response"] += 1
            return None
        try:
            questions, _ = w.parse_question(data)
        except w.DnsError:
            questions = []
        if questions != [(name, qtype, w.CLASS_IN)]:
            stats["wrong_question"] += 1
            return None
        if flags & 0x0200:
            return w.Message(rid, flags, questions)      # truncated: TCP will tell
        try:
            return w.parse_message(data)
        except w.DnsError:
            stats["malformed"] += 1
            return _MALFORMED

    async def _ask_udp(self, server: tuple[str, int], name: str,
                       qtype: int) -> w.Message | object | None:
        qid = self.rng.getrandbits(16)
        query = w.build_query(qid, name, qtype)
        self.stats["queries"] += 1

        def judge(data: bytes, addr: Any) -> w.Message | object | None:
            if tuple(addr) != server:
                self.stats["wrong_source"] += 1
                return None
            return self._check(data, qid, name, qtype, w.UDP_MAX)

        catcher = _UdpCatcher(judge)
        try:
            transport, _ = await self._stack.create_datagram_endpoint(lambda: catcher,
                                                                      remote_addr=server)
        except OSError:
            self.stats["unreachable"] += 1      # no route to it: the next server
            return None
        loop = self._stack.loop
        deadline = loop.time() + self.timeout
        try:
            transport.sendto(query)
            try:
                msg = await asyncio.wait_for(asyncio.shield(catcher.done), self.timeout)
            except asyncio.TimeoutError:
                self.stats["timeouts"] += 1
                return None
        finally:
            transport.close()
        if isinstance(msg, OSError):
            self.stats["unreachable"] += 1      # an ICMP error: the next server
            return None
        if isinstance(msg, w.Message) and msg.tc:
            self.stats["tcp_fallbacks"] += 1
            return await self._ask_tcp(server, query, qid, name, qtype, deadline - loop.time())
        return msg

    async def _ask_tcp(self, server: tuple[str, int], query: bytes, qid: int, name: str,
                       qtype: int, left: float) -> w.Message | object | None:
        """The same query over TCP (RFC 7766 5): two-byte length, then the message."""
        writer: asyncio.StreamWriter | None = None
        try:
            async def exchange() -> bytes:
                nonlocal writer
                reader, writer = await self._stack.open_connection(server[0], server[1])
                writer.write(len(query).to_bytes(2, "big") + query)
                size = int.from_bytes(await reader.readexactly(2), "big")
                return await reader.readexactly(size)

            data = await asyncio.wait_for(exchange(), max(left, 0.001))
        except asyncio.TimeoutError:
            self.stats["timeouts"] += 1
            return None
        except (OSError, asyncio.IncompleteReadError):
            return None
        finally:
            if writer is not None:
                writer.transport.abort()
        msg = self._check(data, qid, name, qtype, 0xFFFF)
        if isinstance(msg, w.Message) and msg.tc:
            return _MALFORMED            # truncated over TCP: nothing more to ask for
        return msg

    # --- address -> name -------------------------------------------------------------

    async def name_of(self, address: str) -> str | None:
        """The hosts table's name for ``address``, else its PTR record, else None."""
        name = self.hosts.name_of(address)
        if name is not None or not self.nameservers:
            return name
        qname = w.reverse_name(address)
        key = (qname, w.TYPE_PTR)
        hit = self.cache.get(key, self._now())
        if isinstance(hit, _Answer):
            return hit.addresses[0]
        if hit is not None:
            return None
        for _ in range(self.attempts):
            for server in self.nameservers:
                msg = await self._ask_udp(server, qname, w.TYPE_PTR)
                if isinstance(msg, w.Message):
                    ptrs = [rr for rr in msg.answers if rr.name == qname
                            and rr.type == w.TYPE_PTR and rr.rclass == w.CLASS_IN]
                    if ptrs:
                        self.cache.put(key, _Answer(qname, (str(ptrs[0].data),)),
                                       ptrs[0].ttl, self._now())
                        return str(ptrs[0].data)
                    return None
                if msg is _MALFORMED:
                    return None
        return None

    # --- the socket module's two calls ----------------------------------------------------

    async def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple[Any, Any, int, str, Any]]:
        """``socket.getaddrinfo`` with the stack as the network (see the module doc)."""
        if host is None:
            hostname = None
        elif isinstance(host, str):
            hostname = host.encode("idna").decode("ascii")   # UnicodeError, as CPython
        elif isinstance(host, (bytes, bytearray)):
            hostname = bytes(host).decode("ascii")
        else:
            raise TypeError("getaddrinfo() argument 1 must be string or None")
        if family not in (AF_UNSPEC, AF_INET, AF_INET6):
            raise gaierror(_socket.EAI_FAMILY)
        kinds = [(t, p) for t, p in SOCKTYPES
                 if type in (0, t) and (proto in (0, p) or t == _socket.SOCK_RAW and type)]
        if not kinds:
            raise gaierror(_socket.EAI_SOCKTYPE)
        ports = service_ports(port, kinds, flags)
        canonical = ""
        if hostname is None:
            passive = flags & _socket.AI_PASSIVE
            found: list[tuple[int, str]] = [(f, a) for f, a in ((AF_INET, "0.0.0.0" if passive else "127.0.0.1"),
                                         (AF_INET6, "::" if passive else "::1"))
                     if family in (AF_UNSPEC, f)]
            scope = 0
        else:
            found, scope = numeric_host(hostname, family)
            if found:
                canonical = hostname
            elif flags & _socket.AI_NUMERICHOST or looks_numeric(hostname) or not hostname:
                raise gaierror(_socket.EAI_NONAME)
            else:
                canonical, found = await self.lookup(hostname, family)
                found = self._order(found)
        if not flags & _socket.AI_CANONNAME:
            canonical = ""
        result: list[tuple[Any, Any, int, str, Any]] = []
        for fam, addr in found:
            for (kind, kproto), kport in ports:
                sockaddr: Any = (addr, kport) if fam == AF_INET else (addr, kport, 0, scope)
                result.append((_socket.AddressFamily(fam), _socket.SocketKind(kind), kproto,
                               canonical, sockaddr))
                canonical = ""        # only the first entry carries it, as in glibc
        return result

    def _order(self, found: list[tuple[int, str]]) -> list[tuple[int, str]]:
        # RFC 6724 rule 1 (avoid unusable destinations): the stack speaks IPv4 only
        # so far, so IPv6 goes last.  Happy eyeballs will interleave here later.
        return sorted(found, key=lambda fa: fa[0] != AF_INET)

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        """``socket.getnameinfo``: the host must be numeric, as in CPython."""
        if not isinstance(sockaddr, tuple):
            raise TypeError("getnameinfo() argument 1 must be a tuple")
        if len(sockaddr) not in (2, 4) or not isinstance(sockaddr[0], str) \
                or not isinstance(sockaddr[1], int):
            raise TypeError("getnameinfo(): illegal sockaddr argument")
        host, port = sockaddr[0], sockaddr[1] & 0xFFFF
        address = inet_aton(host)
        if address is None:
            six = inet6_literal(host)
            if six is None:
                raise gaierror(_socket.EAI_NONAME)
            address = six[0]
        name = None if flags & _socket.NI_NUMERICHOST else await self.name_of(address)
        if name is None:
            if flags & _socket.NI_NAMEREQD:
                raise gaierror(_socket.EAI_NONAME)
            name = address
        elif flags & _socket.NI_NOFQDN:
            name = name.split(".", 1)[0]
        serv = str(port)
        if not flags & _socket.NI_NUMERICSERV:
            try:
                serv = _socket.getservbyport(port, "udp" if flags & _socket.NI_DGRAM else "tcp")
            except OSError:
                pass
        return name, serv
