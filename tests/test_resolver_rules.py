"""The stub resolver (tcpio/resolver.py, tcpio/dns_wire.py) against a scripted server.

Stack a (10.0.0.1) resolves through Stack b (10.0.0.2), whose UDP and TCP
port 53 are endpoints the test scripts, over a MemoryWire on virtual time:
timeouts and TTLs pass in no real time.  The references:

- the DNS format: scapy's DNS layer, an independent encoder and decoder;
- the errors: what glibc 2.36's getaddrinfo gives for the same answers,
  measured with the same hostile answers from a scripted server on
  127.0.0.1:53 in a private namespace ("hosts: files dns", timeout:1
  attempts:1): NXDOMAIN -> EAI_NONAME, NOERROR without records -> EAI_NODATA,
  SERVFAIL/REFUSED/NOTIMP -> EAI_AGAIN, FORMERR -> EAI_NONAME, a wrong ID or
  question or no question -> ignored, then EAI_AGAIN, an answer whose records
  cannot be read (pointer loop, cut short, bad rdata length) or whose records
  are of another class or owner -> EAI_NODATA;
- numeric hosts and the argument rules: ``socket.getaddrinfo`` itself with
  AI_NUMERICHOST, which never touches the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSRR, DNSRRSOA
from stackutil import LOOPS, run_on, wired_stacks

from tcpio import dns_wire as w
from tcpio.netdb import inet_aton

Script = Callable[[bytes], list[bytes]]


# --- the scripted name server -----------------------------------------------------------

class Server(asyncio.DatagramProtocol):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.queries: list[DNS] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.queries.append(DNS(data))
        for reply in self.script(data):
            self.transport.sendto(reply, addr)


def reply(query: bytes, *, rcode: int = 0, an: list[Any] | None = None,
          ns: list[Any] | None = None, tc: int = 0) -> bytes:
    """A well-formed answer to ``query``, built (and compressed) by scapy."""
    q = DNS(query)
    return bytes(DNS(id=q.id, qr=1, rd=1, ra=1, tc=tc, rcode=rcode, qd=q.qd,
                     an=an or [], ns=ns or []).compress())


def a_records(query: bytes, *addrs: str, ttl: int = 60) -> list[Any]:
    name = DNS(query).qd[0].qname
    return [DNSRR(rrname=name, type="A", rdata=ip, ttl=ttl) for ip in addrs]


def question(query: bytes) -> bytes:
    """The question section as the query wrote it."""
    return query[12:12 + len(DNS(query).qd[0])]


def raw_answer(query: bytes, body: bytes, *, an: int = 1, flags: int = 0x8180,
               qd: bytes | None = None, qid: int | None = None, qdcount: int = 1) -> bytes:
    """A hand-built answer: header, the question (echoed unless given), ``body``."""
    rid = DNS(query).id if qid is None else qid
    return struct.pack("!HHHHHH", rid, flags, qdcount, an, 0, 0) + \
        (question(query) if qd is None else qd) + body


def rr_a(ip: str, *, name: bytes = b"\xc0\x0c", rclass: int = 1, rdata: bytes | None = None
         ) -> bytes:
    data = socket.inet_aton(ip) if rdata is None else rdata
    return name + struct.pack("!HHIH", 1, rclass, 60, len(data)) + data


def run(body: Callable[[Any, Server], Any], script: Script, *,
        tcp: Callable[[bytes], bytes | None] | None = None, loop: str = "virtual",
        **config: Any) -> Any:
    """Run ``body(a, server)`` with a resolving through b's scripted port 53."""
    async def main() -> Any:
        async with wired_stacks() as (a, b):
            _, server = await b.create_datagram_endpoint(lambda: Server(script),
                                                         local_addr=("10.0.0.2", 53))
            if tcp is not None:
                async def handle(reader: asyncio.StreamReader,
                                 writer: asyncio.StreamWriter) -> None:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    answer = tcp(await reader.readexactly(size))
                    if answer == b"":                     # a server that never answers
                        with contextlib.suppress(ConnectionError):
                            await reader.read()             # until the client gives up
                    if answer is not None:                  # None: close without an answer
                        writer.write(len(answer).to_bytes(2, "big") + answer)
                        await writer.drain()
                    writer.close()
                await b.start_server(handle, "10.0.0.2", 53)
            config.setdefault("timeout", 1.0)
            config.setdefault("attempts", 2)
            a.set_name_servers(config.pop("servers", ["10.0.0.2"]), **config)
            result = await body(a, server)
            # nothing left behind: every query endpoint and connection closed
            assert not a._endpoints
            assert not any(a.host.udp.ports.values())
            return result
    return run_on(loop, main)


async def resolve(a: Any, name: str, family: int = socket.AF_INET) -> Any:
    """The addresses, or the gaierror code, with the virtual time it took."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        infos = await a.getaddrinfo(name, 80, family, socket.SOCK_STREAM)
        out: Any = [info[4][0] for info in infos]
    except socket.gaierror as exc:
        out = exc.errno
    return out, loop.time() - t0


# --- the wire format against scapy ------------------------------------------------------

def test_query_is_what_scapy_reads_as_one_recursive_question() -> None:
    q = DNS(w.build_query(0x1234, "www.Example.test", w.TYPE_AAAA))
    assert (q.id, q.qr, q.rd, q.qdcount, q.ancount, q.arcount) == (0x1234, 0, 1, 1, 0, 0)
    assert (q.qd[0].qname, q.qd[0].qtype, q.qd[0].qclass) == (b"www.Example.test.", 28, 1)


def test_compressed_answer_from_scapy_parses_record_by_record() -> None:
    query = w.build_query(5, "www.example.test", w.TYPE_A)
    raw = reply(query, an=[
        DNSRR(rrname="www.example.test", type="CNAME", rdata="web.example.test", ttl=30),
        DNSRR(rrname="web.example.test", type="A", rdata="10.0.0.9", ttl=60),
        DNSRR(rrname="web.example.test", type="AAAA", rdata="fd00::9", ttl=70)],
        ns=[DNSRRSOA(rrname="example.test", mname="ns.example.test", rname="h.example.test",
                     serial=7, minimum=300, ttl=900)])
    assert b"\xc0" in raw          # scapy did compress
    msg = w.parse_message(raw)
    assert [(r.name, r.type, r.ttl, r.data) for r in msg.answers] == [
        ("www.example.test", w.TYPE_CNAME, 30, "web.example.test"),
        ("web.example.test", w.TYPE_A, 60, "10.0.0.9"),
        ("web.example.test", w.TYPE_AAAA, 70, "fd00::9")]
    soa = msg.authority[0].data
    assert isinstance(soa, w.Soa) and (soa.mname, soa.serial, soa.minimum) == \
        ("ns.example.test", 7, 300)


@pytest.mark.parametrize("name, why", [
    (b"\xc0\x1d", "points at itself"),
    (b"\xc0\x20", "points forwards"),
    (b"\x01a\xc0\x1d", "points at its own label"),
    (b"\x01a", "runs off the end"),
    (b"\xc0", "half a pointer"),
    (b"\x80\x00", "reserved label type"),
])
def test_names_that_could_loop_or_overrun_are_errors(name: bytes, why: str) -> None:
    # header (12) + a root name at 12 + the name under test at 29
    buf = bytes(12) + b"\x00" + bytes(16) + name
    with pytest.raises(w.DnsError):
        w.read_name(buf, 29)


def test_two_pointer_loop_is_an_error() -> None:
    buf = bytes(12) + b"\xc0\x0e" + b"\xc0\x0c"        # 12 -> 14 -> 12 ...
    with pytest.raises(w.DnsError):
        w.read_name(buf, 14)


def test_name_length_limits_of_rfc1035() -> None:
    with pytest.raises(w.DnsError):
        w.encode_name("a" * 64 + ".test")
    with pytest.raises(w.DnsError):
        w.encode_name(".".join(["abcdefghi"] * 26))     # 260 bytes on the wire
    long = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"   # 257 bytes
    with pytest.raises(w.DnsError):
        w.read_name(long, 0)


# --- hostile and failed answers: glibc's verdicts ---------------------------------------------

def _nodata(q: bytes) -> list[bytes]:
    return [reply(q)]


CASES: dict[str, tuple[Script, Any]] = {
    "ok": (lambda q: [reply(q, an=a_records(q, "10.9.9.9"))], ["10.9.9.9"]),
    "nx": (lambda q: [reply(q, rcode=3)], socket.EAI_NONAME),
    "nodata": (_nodata, socket.EAI_NODATA),
    "servfail": (lambda q: [reply(q, rcode=2)], socket.EAI_AGAIN),
    "refused": (lambda q: [reply(q, rcode=5)], socket.EAI_AGAIN),
    "notimp": (lambda q: [reply(q, rcode=4)], socket.EAI_AGAIN),
    "formerr": (lambda q: [reply(q, rcode=1)], socket.EAI_NONAME),
    "silent": (lambda q: [], socket.EAI_AGAIN),
    "wrongid": (lambda q: [raw_answer(q, rr_a("1.1.1.1"), qid=DNS(q).id ^ 1)], socket.EAI_AGAIN),
    "wrongq": (lambda q: [raw_answer(q, rr_a("1.1.1.1"), qd=b"\x05other\x04test\x00\x00\x01\x00\x01")],
               socket.EAI_AGAIN),
    "noq": (lambda q: [raw_answer(q, rr_a("1.1.1.1", name=question(q)[:-4]), qd=b"", qdcount=0)],
            socket.EAI_AGAIN),
    "loop": (lambda q: [raw_answer(q, rr_a("1.1.1.1", name=b"\xc0" + bytes([12 + len(question(q))])))],
             socket.EAI_NODATA),
    "trunc": (lambda q: [raw_answer(q, rr_a("1.1.1.1"))[:-3]], socket.EAI_NODATA),
    "badlen": (lambda q: [raw_answer(q, rr_a("1.1.1.1", rdata=b"\x01" * 5))], socket.EAI_NODATA),
    "otherclass": (lambda q: [raw_answer(q, rr_a("1.1.1.1", rclass=3))], socket.EAI_NODATA),
    "wrongname": (lambda q: [raw_answer(q, rr_a("1.1.1.1", name=b"\x03zzz\x00"))], socket.EAI_NODATA),
    "cname": (lambda q: [reply(q, an=[
        DNSRR(rrname=DNS(q).qd[0].qname, type="CNAME", rdata="a.test", ttl=60),
        DNSRR(rrname="a.test", type="A", rdata="2.2.2.2", ttl=60)])], ["2.2.2.2"]),
    "multi": (lambda q: [reply(q, an=a_records(q, "1.1.1.1", "1.1.1.2", "1.1.1.3"))],
              ["1.1.1.1", "1.1.1.2", "1.1.1.3"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_answers_get_glibcs_verdict_and_nothing_waits_past_the_timeouts(case: str) -> None:
    script, expected = CASES[case]

    async def body(a: Any, server: Server) -> Any:
        return await resolve(a, case + ".test")

    got, took = run(body, script, timeout=1.0, attempts=2)
    assert got == expected
    assert took <= 2 * 1.0 + 0.1          # attempts * servers * timeout, at most


@pytest.mark.parametrize("case, counter", [("wrongid", "wrong_id"), ("wrongq", "wrong_question"),
                                           ("noq", "wrong_question")])
def test_a_forged_answer_is_a_counted_drop_and_the_real_one_still_counts(case: str,
                                                                         counter: str) -> None:
    forged = CASES[case][0]

    def script(q: bytes) -> list[bytes]:
        return [*forged(q), reply(q, an=a_records(q, "10.3.3.3"))]

    async def body(a: Any, server: Server) -> Any:
        return await resolve(a, "x.test"), a.resolver.stats[counter]

    (got, _), drops = run(body, script)
    assert got == ["10.3.3.3"] and drops == 1


def test_answer_not_marked_as_response_is_dropped() -> None:
    def script(q: bytes) -> list[bytes]:
        return [raw_answer(q, rr_a("1.1.1.1"), flags=0x0180)]

    async def body(a: Any, server: Server) -> Any:
        return await resolve(a, "x.test"), a.resolver.stats["not_response"]

    (got, _), drops = run(body, script, attempts=1)
    assert got == socket.EAI_AGAIN and drops == 1


def test_oversized_udp_answer_is_dropped() -> None:
    # No EDNS in the query, so a UDP answer may not exceed 512 bytes (RFC 1035 4.2.1).
    def script(q: bytes) -> list[bytes]:
        big = reply(q, an=a_records(q, *(f"10.1.{i // 250}.{i % 250}" for i in range(40))))
        assert len(big) > 512
        return [big]

    async def body(a: Any, server: Server) -> Any:
        return await resolve(a, "big.test"), a.resolver.stats["oversized"]

    (got, _), drops = run(body, script, attempts=1)
    assert got == socket.EAI_AGAIN and drops == 1


def test_answer_from_another_port_never_reaches_the_resolver() -> None:
    async def body(a: Any, server: Server) -> Any:
        task = asyncio.ensure_future(resolve(a, "x.test"))
        while not server.queries:
            await asyncio.sleep(0.001)
        query = bytes(server.queries[0])
        client_port = next(port for port, socks in a.host.udp.ports.items() if socks)
        b = server.transport._stack
        stranger, _ = await b.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=("10.0.0.2", 5353))
        # the right ID and question, from port 5353 instead of 53: the client's
        # connected socket does not match it (the core counts UdpNoPorts)
        stranger.sendto(reply(query, an=a_records(query, "6.6.6.6")), ("10.0.0.1", client_port))
        server.transport.sendto(reply(query, an=a_records(query, "10.4.4.4")),
                                ("10.0.0.1", client_port))
        got = await task
        stranger.close()
        return got, a.mib()["UdpNoPorts"]

    (got, _), noports = run(body, lambda q: [])
    assert got == ["10.4.4.4"]
    assert noports == 1


@pytest.mark.parametrize("cut", [False, True])
def test_truncated_answer_is_asked_again_over_tcp(cut: bool) -> None:
    many = [f"10.8.{i // 200}.{i % 200 + 1}" for i in range(60)]      # > 512 bytes

    def udp(q: bytes) -> list[bytes]:
        # TC with the records left out, or cut at 512 bytes mid-record (RFC 1035
        # 4.1.1 allows either): the rest is never read, TCP is asked
        return [reply(q, an=a_records(q, *many), tc=1)[:512] if cut else reply(q, tc=1)]

    def tcp(q: bytes) -> bytes:
        return reply(q, an=a_records(q, *many))

    async def body(a: Any, server: Server) -> Any:
        got = await resolve(a, "many.test")
        await asyncio.sleep(1)
        states = [c.state for c in a.connections()]
        return got, a.resolver.stats["tcp_fallbacks"], states

    (got, _), fallbacks, states = run(body, udp, tcp=tcp)
    assert got == many and fallbacks == 1
    assert "ESTAB" not in states and "ESTABLISHED" not in states


@pytest.mark.parametrize("case, tcp, expected", [
    ("wrong id", lambda q: raw_answer(q, rr_a("1.1.1.1"), qid=DNS(q).id ^ 0x8000), socket.EAI_AGAIN),
    ("closed", lambda q: None, socket.EAI_AGAIN),
    ("silent", lambda q: b"", socket.EAI_AGAIN),
    ("pointer loop", lambda q: CASES["loop"][0](q)[0],
     socket.EAI_NODATA),
    ("truncated again", lambda q: reply(q, tc=1), socket.EAI_NODATA),
])
def test_hostile_answers_over_tcp(case: str, tcp: Callable[[bytes], bytes | None],
                                  expected: int) -> None:
    async def body(a: Any, server: Server) -> Any:
        got, took = await resolve(a, "tc.test")
        await asyncio.sleep(1)
        return got, took, [c.state for c in a.connections()]

    got, took, states = run(body, lambda q: [reply(q, tc=1)], tcp=tcp, attempts=1, timeout=1.0)
    assert got == expected and took <= 1.0 + 0.01
    assert states == []               # aborted (RST), not left open or closing


def test_a_flood_of_forged_answers_is_counted_and_the_answer_still_gets_through() -> None:
    def script(q: bytes) -> list[bytes]:
        forged = [raw_answer(q, rr_a("6.6.6.6"), qid=(DNS(q).id + i) & 0xFFFF)
                  for i in range(1, 301)]
        return [*forged, reply(q, an=a_records(q, "10.1.1.1"))]

    async def body(a: Any, server: Server) -> Any:
        return (await resolve(a, "x.test"))[0], a.resolver.stats["wrong_id"]

    assert run(body, script) == (["10.1.1.1"], 300)


def test_truncated_answer_with_no_tcp_server_is_eai_again() -> None:
    # glibc 2.36: TC set and TCP refused -> "Temporary failure in name resolution"
    async def body(a: Any, server: Server) -> Any:
        return await resolve(a, "tc.test")

    got, took = run(body, lambda q: [reply(q, tc=1)], attempts=1)
    assert got == socket.EAI_AGAIN and took < 1.0


def test_retries_each_server_then_each_round() -> None:
    seen: list[int] = []

    def script(q: bytes) -> list[bytes]:
        seen.append(DNS(q).id)
        return [reply(q, an=a_records(q, "10.5.5.5"))] if len(seen) == 3 else []

    async def body(a: Any, server: Server) -> Any:
        return await resolve(a, "x.test")

    # two servers (the same one twice), two rounds: silence, silence, answer
    (got, took) = run(body, script, servers=["10.0.0.2", "10.0.0.2"], attempts=2, timeout=1.0)
    assert got == ["10.5.5.5"] and len(seen) == 3 and 2.0 <= took < 3.0
    assert len(set(seen)) == 3               # a fresh ID per query


def test_unreachable_servers_are_skipped_at_once() -> None:
    # 192.0.2.53: no route (connect fails); 10.0.0.2:5353: ICMP port unreachable.
    # glibc 2.36 with its only server refusing (port unreachable): EAI_AGAIN at once.
    async def body(a: Any, server: Server) -> Any:
        alone = await resolve(a, "x.test")
        a.set_name_servers(["192.0.2.53", ("10.0.0.2", 5353), "10.0.0.2"], timeout=1,
                           attempts=1)
        good = await resolve(a, "x.test")
        return alone, good, a.resolver.stats["unreachable"]

    def script(q: bytes) -> list[bytes]:
        return [reply(q, an=a_records(q, "10.2.2.2"))]

    alone, good, unreachable = run(body, script, servers=[("10.0.0.2", 5353)])
    assert alone == (socket.EAI_AGAIN, 0.0)
    assert good == (["10.2.2.2"], 0.0) and unreachable == 2 + 2    # 2 rounds alone, then 2


def test_concurrent_lookups_of_one_name_share_one_query() -> None:
    def script(q: bytes) -> list[bytes]:
        return [reply(q, an=a_records(q, "10.6.6.1"))]

    async def body(a: Any, server: Server) -> Any:
        first = asyncio.ensure_future(resolve(a, "same.test"))
        others = [asyncio.ensure_future(resolve(a, "same.test")) for _ in range(3)]
        await asyncio.sleep(0)
        others[0].cancel()                      # one caller gives up: the rest still get it
        got = [(await t)[0] for t in (first, *others[1:])]
        return got, len(server.queries), a.resolver.stats["joined"]

    got, queries, joined = run(body, script)
    assert got == [["10.6.6.1"]] * 3 and queries == 1 and joined == 3


def test_aaaa_for_af_inet6_and_both_for_af_unspec_ipv4_first() -> None:
    # The stack speaks IPv4 only so far: RFC 6724 rule 1 puts IPv6 last.
    def script(q: bytes) -> list[bytes]:
        d = DNS(q)
        if d.qd[0].qtype == 28:
            return [reply(q, an=[DNSRR(rrname=d.qd[0].qname, type="AAAA", rdata="fd00::7",
                                       ttl=60)])]
        return [reply(q, an=a_records(q, "10.7.7.7"))]

    async def body(a: Any, server: Server) -> Any:
        six = await resolve(a, "dual.test", socket.AF_INET6)
        both = await a.getaddrinfo("dual.test", 80, 0, socket.SOCK_STREAM)
        return six[0], [i[4] for i in both], sorted(q.qd[0].qtype for q in server.queries)

    six, both, qtypes = run(body, script)
    assert six == ["fd00::7"]
    assert both == [("10.7.7.7", 80), ("fd00::7", 80, 0, 0)]
    assert qtypes == [1, 28]                    # AAAA cached from the first call


@pytest.mark.parametrize("loop", list(LOOPS))
def test_udp_answer_and_tcp_fallback_on_every_loop(loop: str) -> None:
    many = [f"10.9.0.{i}" for i in range(1, 61)]

    def udp(q: bytes) -> list[bytes]:
        name = DNS(q).qd[0].qname
        return [reply(q, tc=1)] if name == b"many.test." else [reply(q, an=a_records(q, "10.9.9.1"))]

    async def body(a: Any, server: Server) -> Any:
        return (await resolve(a, "one.test"))[0], (await resolve(a, "many.test"))[0]

    one, got = run(body, udp, tcp=lambda q: reply(q, an=a_records(q, *many)), loop=loop)
    assert one == ["10.9.9.1"] and got == many


# --- cache and search list -------------------------------------------------------------------

def test_answers_are_cached_for_their_ttl() -> None:
    def script(q: bytes) -> list[bytes]:
        return [reply(q, an=a_records(q, "10.6.6.6", ttl=30))]

    async def body(a: Any, server: Server) -> Any:
        await resolve(a, "c.test")
        await resolve(a, "c.test")
        n1 = len(server.queries)
        await asyncio.sleep(29)
        await resolve(a, "c.test")
        n2 = len(server.queries)
        await asyncio.sleep(2)
        await resolve(a, "c.test")
        return n1, n2, len(server.queries)

    assert run(body, script) == (1, 1, 2)


def test_negative_answers_are_cached_for_the_soa_minimum_rfc2308() -> None:
    def script(q: bytes) -> list[bytes]:
        soa = DNSRRSOA(rrname="test", mname="ns.test", rname="h.test", minimum=20, ttl=300)
        return [reply(q, rcode=3, ns=[soa])]

    async def body(a: Any, server: Server) -> Any:
        codes = [(await resolve(a, "gone.test"))[0] for _ in range(2)]
        n1 = len(server.queries)
        await asyncio.sleep(21)
        codes.append((await resolve(a, "gone.test"))[0])
        return codes, n1, len(server.queries)

    codes, n1, n2 = run(body, script)
    assert codes == [socket.EAI_NONAME] * 3 and (n1, n2) == (1, 2)


def test_negative_answer_without_soa_is_not_cached() -> None:
    async def body(a: Any, server: Server) -> Any:
        for _ in range(2):
            await resolve(a, "gone.test")
        return len(server.queries)

    assert run(body, lambda q: [reply(q, rcode=3)]) == 2


@pytest.mark.parametrize("name, ndots, expected", [
    ("www", 1, ["www.one.test", "www.two.test", "www"]),
    ("a.b", 1, ["a.b", "a.b.one.test", "a.b.two.test"]),
    ("a.b", 2, ["a.b.one.test", "a.b.two.test", "a.b"]),
    ("abs.", 1, ["abs"]),
])
def test_search_list_order_follows_ndots(name: str, ndots: int, expected: list[str]) -> None:
    async def body(a: Any, server: Server) -> Any:
        got = await resolve(a, name)
        return got[0], [q.qd[0].qname.decode().rstrip(".") for q in server.queries]

    got, asked = run(body, lambda q: [reply(q, rcode=3)], search=["one.test", "two.test"],
                     ndots=ndots)
    assert got == socket.EAI_NONAME and asked == expected


def test_search_stops_at_the_first_answer() -> None:
    def script(q: bytes) -> list[bytes]:
        name = DNS(q).qd[0].qname
        return [reply(q, an=a_records(q, "10.7.7.7"))] if name == b"www.two.test." \
            else [reply(q, rcode=3)]

    async def body(a: Any, server: Server) -> Any:
        infos = await a.getaddrinfo("www", 80, socket.AF_INET, socket.SOCK_STREAM, 0,
                                    socket.AI_CANONNAME)
        return infos, len(server.queries)

    infos, n = run(body, script, search=["one.test", "two.test"])
    assert n == 2 and infos[0][3] == "www.two.test" and infos[0][4] == ("10.7.7.7", 80)


# --- no DNS at all: numeric hosts, the hosts table, argument rules -----------------------------

NUMERIC = ["10.0.0.1", "127.1", "10.1", "0x7f.1", "010.0.0.1", "1.2.3", "4294967295",
           "4294967296", "10.0.0.300", "256.1.1.1", "1.2.3.4.5", "1.2.3.04", " 1.2.3.4",
           "1.2.3.4 ", "1.2.3.4 x", "", "::1", "fe80::1%1", "1.2.3.4.", "0x", "08.1.1.1"]


@pytest.mark.parametrize("host", NUMERIC)
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNSPEC, socket.AF_INET6])
def test_numeric_hosts_as_socket_getaddrinfo_reads_them(host: str, family: int) -> None:
    def reference() -> Any:
        try:
            return socket.getaddrinfo(host, 80, family, socket.SOCK_STREAM, 0,
                                      socket.AI_NUMERICHOST)
        except socket.gaierror as exc:
            return exc.errno

    async def body(a: Any, server: Server) -> Any:
        try:
            got: Any = await a.getaddrinfo(host, 80, family, socket.SOCK_STREAM, 0,
                                           socket.AI_NUMERICHOST)
        except socket.gaierror as exc:
            got = exc.errno
        return got, len(server.queries)

    got, queries = run(body, lambda q: [])
    assert got == reference() and queries == 0


@pytest.mark.parametrize("host", ["10.0.0.300", "256.1.1.1", "1.2.3.4.5", "4294967296", "-",
                                  "a b", "", "a." * 126 + "test"])
def test_malformed_hosts_are_eai_noname_without_a_query(host: str) -> None:
    # glibc 2.36, AF_INET without AI_CANONNAME (CPython's connect): an all-numeric
    # name that is no address, one res_hnok refuses, or one longer than a DNS name
    # can be (256 characters), is EAI_NONAME and never sent (measured: no query
    # reached the server).  tcpio never sends them.
    async def body(a: Any, server: Server) -> Any:
        return (await resolve(a, host))[0], len(server.queries)

    assert run(body, lambda q: []) == (socket.EAI_NONAME, 0)


@pytest.mark.parametrize("args", [
    ("1.2.3.4", 70000), ("1.2.3.4", -1), ("1.2.3.4", "http"), ("1.2.3.4", "nosuch"),
    ("1.2.3.4", None), ("1.2.3.4", "80"), ("1.2.3.4", b"80"), (b"1.2.3.4", 80),
    ("1.2.3.4", 80, socket.AF_INET, 0, socket.IPPROTO_UDP),
    ("1.2.3.4", 80, socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_UDP),
    ("1.2.3.4", 80, 99), ("1.2.3.4", 80, 0, 99),
    ("1.2.3.4", 80, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME),
    (None, 80, 0, 0, 0, socket.AI_PASSIVE), (None, 80, socket.AF_INET),
    ("1.2.3.4", "http", 0, 0, 0, socket.AI_NUMERICSERV),
])
def test_getaddrinfo_arguments_as_the_socket_module(args: tuple[Any, ...]) -> None:
    def call(fn: Callable[..., Any]) -> Any:
        return fn(*args)

    def outcome(fn: Callable[..., Any]) -> Any:
        try:
            return call(fn)
        except socket.gaierror as exc:
            return ("gaierror", exc.errno)

    async def body(a: Any, server: Server) -> Any:
        try:
            return await a.getaddrinfo(*args)
        except socket.gaierror as exc:
            return ("gaierror", exc.errno)

    assert run(body, lambda q: []) == outcome(socket.getaddrinfo)


def test_localhost_comes_from_the_hosts_table() -> None:
    async def body(a: Any, server: Server) -> Any:
        v4 = await a.getaddrinfo("LocalHost", 80, socket.AF_INET, socket.SOCK_STREAM)
        both = await a.getaddrinfo("localhost", 80, 0, socket.SOCK_STREAM)
        a.hosts.add("10.0.0.2", "peer", "peer.test")
        peer = await a.getaddrinfo("peer.test", 80, socket.AF_INET, socket.SOCK_STREAM)
        name = await a.getnameinfo(("10.0.0.2", 80), socket.NI_NUMERICSERV)
        dotted = await resolve(a, "localhost.")        # not in the table: DNS
        return v4, both, peer, name, dotted[0], len(server.queries)

    v4, both, peer, name, dotted, queries = run(body, lambda q: [reply(q, rcode=3)])
    assert [i[4] for i in v4] == [("127.0.0.1", 80)]
    assert [i[4] for i in both] == [("127.0.0.1", 80), ("::1", 80, 0, 0)]   # IPv4 first
    assert [i[4] for i in peer] == [("10.0.0.2", 80)]
    assert name == ("peer", "80")
    assert dotted == socket.EAI_NONAME and queries == 1


def test_hosts_table_canonical_name_and_every_line_as_glibc_files() -> None:
    # glibc 2.36, "hosts: files", the same two lines in /etc/hosts:
    # getaddrinfo("PEER.test", AI_CANONNAME) -> [("peer", 10.0.0.2), ("", 10.0.0.3)]
    async def body(a: Any, server: Server) -> Any:
        a.hosts.load("10.0.0.2 peer peer.test  # a comment\n10.0.0.3 peer.test\n")
        infos = await a.getaddrinfo("PEER.test", 80, socket.AF_INET, socket.SOCK_STREAM, 0,
                                    socket.AI_CANONNAME)
        return [(i[3], i[4][0]) for i in infos]

    assert run(body, lambda q: []) == [("peer", "10.0.0.2"), ("", "10.0.0.3")]


def test_getnameinfo_asks_for_the_ptr_record() -> None:
    def script(q: bytes) -> list[bytes]:
        qname = DNS(q).qd[0].qname
        assert qname == b"9.0.0.10.in-addr.arpa."
        return [reply(q, an=[DNSRR(rrname=qname, type="PTR", rdata="nine.test", ttl=60)])]

    async def body(a: Any, server: Server) -> Any:
        return (await a.getnameinfo(("10.0.0.9", 53), socket.NI_DGRAM),
                await a.getnameinfo(("10.0.0.9", 53), socket.NI_NUMERICHOST),
                len(server.queries))

    assert run(body, script) == (("nine.test", "domain"), ("10.0.0.9", "domain"), 1)


@pytest.mark.parametrize("sockaddr, flags", [
    (("1.2.3.4", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV),
    (("1.2.3.4", 70000), socket.NI_NUMERICHOST),
    (("1.2.3.4", 53), socket.NI_NUMERICHOST | socket.NI_DGRAM),
    (("localhost", 80), socket.NI_NUMERICHOST), (("1.2.3.4",), 0), ("x", 0),
])
def test_getnameinfo_arguments_as_the_socket_module(sockaddr: Any, flags: int) -> None:
    def reference() -> Any:
        try:
            return socket.getnameinfo(sockaddr, flags)
        except (socket.gaierror, TypeError) as exc:
            return type(exc), getattr(exc, "errno", None)

    async def body(a: Any, server: Server) -> Any:
        try:
            return await a.getnameinfo(sockaddr, flags)
        except (socket.gaierror, TypeError) as exc:
            return type(exc), getattr(exc, "errno", None)

    assert run(body, lambda q: []) == reference()


@pytest.mark.parametrize("text", ["10.0.0.1", "127.1", "0x7f.0.0.1", "4294967295", "1.2.3",
                                  "0x", "1.2.3.4.5", "256.0.0.1", "08.0.0.1", "1..2", "",
                                  # four parts that are not all plain decimal
                                  "010.0.0.1", "10.0.0.010", "1.2.3.0x4", "0.0.0.0",
                                  "255.255.255.255", "1.2.3.256", "\u0661.2.3.4"])
def test_inet_aton_reads_what_glibc_reads(text: str) -> None:
    try:
        expected: str | None = socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        expected = None
    assert inet_aton(text) == expected


# --- names in the connection calls -------------------------------------------------------------

def test_open_connection_and_sockets_take_names() -> None:
    def script(q: bytes) -> list[bytes]:
        return [reply(q, an=a_records(q, "10.0.0.2"))]

    async def body(a: Any, server: Server) -> Any:
        b = server.transport._stack

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()
        srv = await b.start_server(echo, "10.0.0.2", 7)
        reader, writer = await a.open_connection("echo.test", 7)
        writer.write(b"hello")
        got = await reader.read(100)
        writer.close()
        peer = writer.get_extra_info("peername")
        sock = a.socket(socket.SOCK_DGRAM)
        await sock.sendto(b"x", ("echo.test", 9))      # resolved: from the cache
        sock.close()
        with pytest.raises(socket.gaierror) as info:
            await a.open_connection("10.0.0.300", 7)
        srv.close()
        return got, peer, info.value.errno, len(server.queries)

    got, peer, err, queries = run(body, script)
    # open_connection asks for both families (AF_UNSPEC, as asyncio's
    # getaddrinfo does, now that the stack has IPv6): an A and an AAAA query;
    # the datagram socket's AF_INET lookup is then answered from the cache.
    assert (got, peer, err, queries) == (b"hello", ("10.0.0.2", 7), socket.EAI_NONAME, 2)


def test_create_connection_tries_each_address_in_turn() -> None:
    def script(q: bytes) -> list[bytes]:
        return [reply(q, an=a_records(q, "10.0.0.3", "10.0.0.2"))]

    async def body(a: Any, server: Server) -> Any:
        b = server.transport._stack
        b.add_address(next(iter(b.devices)), "10.0.0.3/24")
        srv = await b.start_server(lambda r, w: w.close(), "10.0.0.2", 8)
        with pytest.raises(OSError) as info:
            await a.open_connection("two.test", 9)        # both refuse: asyncio's rule,
        _, writer = await a.open_connection("two.test", 8)   # one error if alike
        writer.close()
        srv.close()
        return info.value, writer.get_extra_info("peername"), a.mib().get("ActiveOpens")

    err, peer, opens = run(body, script)
    assert isinstance(err, ConnectionRefusedError)
    assert peer == ("10.0.0.2", 8) and opens == 4          # 10.0.0.3 refused, then 10.0.0.2
