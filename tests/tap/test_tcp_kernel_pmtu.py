"""DF, IP IDs and path-MTU discovery for TCP against the Linux kernel (issue 13).

1. IP IDs and DF in a capture, the kernel as the reference: in one namespace
   tcpio connects to a kernel listener and the kernel connects to a tcpio
   listener (TSO off, so each frame is one segment), and both sides answer a
   SYN to a closed port.  What Linux sends is read from the same capture
   (tshark): every TCP segment has DF; a listener's SYN-ACK and a RST for no
   socket have ID 0; a connection's segments are numbered one by one from a
   start that is neither 0 nor shared.  tcpio's frames must follow the same
   rules.

2. A real lower-MTU hop: tcpio -- TAP -- namespace A (forwarding) -- veth --
   namespace B, where A's end of the veth has MTU 1280.  tcpio sends bulk
   data with DF to a kernel server in B; A's kernel cannot forward the
   1500-byte segments and answers with ICMP fragmentation-needed (MTU 1280),
   as a router would.  tcpio must lower its MSS, resend what was in flight cut
   to the new size, and deliver every byte (sha256); tshark checks the
   capture: the ICMP is there, no tcpio datagram over 1280 bytes follows it,
   and there were larger ones before.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from itertools import pairwise

import pytest
from netns import NetNs, kernel_peer

from .test_tcp_kernel_common import connect_to_kernel
from .tshark import fields, needs_tshark

pytestmark = [pytest.mark.tap, needs_tshark]

KERNEL_PORT = 7320
TCPIO_PORT = 7321
CLOSED_PORT = 7329


def _rows(pcap: str, src: str) -> list[dict[str, str]]:
    """TCP frames from ``src``: IP ID, DF, flags, ports, payload length."""
    names = ("frame.number", "ip.id", "ip.flags.df", "tcp.flags.syn", "tcp.flags.ack",
             "tcp.flags.reset", "tcp.srcport", "tcp.dstport", "tcp.len")
    keys = ("n", "id", "df", "syn", "ack", "rst", "sport", "dport", "len")
    rows = fields(pcap, *names, display_filter=f"tcp && !icmp && ip.src == {src}")
    return [dict(zip(keys, r)) for r in rows]


def _id(r: dict[str, str]) -> int:
    return int(r["id"], 16) if r["id"].startswith("0x") else int(r["id"])


def _consecutive(ids: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in pairwise(ids))


def _check_rules(rows: list[dict[str, str]], who: str) -> dict[str, object]:
    """The rules of the module doc for one side's frames; what was found."""
    assert rows, who
    assert all(r["df"] in ("1", "True") for r in rows), (who, [r for r in rows if r["df"] != "1"])
    synacks = [r for r in rows if r["syn"] == "1" and r["ack"] == "1"]
    rsts = [r for r in rows if r["rst"] == "1" and r["sport"] == str(CLOSED_PORT)]
    assert synacks and all(_id(r) == 0 for r in synacks), (who, synacks)
    assert rsts and all(_id(r) == 0 for r in rsts), (who, rsts)
    conns = {}
    for r in rows:
        if (r["rst"] == "0" and not (r["syn"] == "1" and r["ack"] == "1")
                and r["dport"] != str(CLOSED_PORT)):
            conns.setdefault((r["sport"], r["dport"]), []).append(_id(r))
    assert len(conns) == 2, (who, list(conns))
    for key, ids in conns.items():
        assert len(ids) >= 5, (who, key, ids)
        assert _consecutive(ids), (who, key, ids)
    starts = [ids[0] for ids in conns.values()]
    assert 0 not in starts and starts[0] != starts[1], (who, starts)
    return {"starts": starts, "segments": sum(len(i) for i in conns.values())}


async def _both_ways(loop, ours, theirs: socket.socket) -> None:
    """20 000 bytes from tcpio's socket to the kernel's, 5000 back, close both."""
    await ours.sendall(b"a" * 20000)
    got = b""
    while len(got) < 20000:
        got += await loop.sock_recv(theirs, 65536)
    await loop.sock_sendall(theirs, b"b" * 5000)
    back = b""
    while len(back) < 5000:
        back += await ours.recv(65536)
    ours.close()
    theirs.close()


async def _exchange(peer, loop) -> None:
    """tcpio -> kernel listener and kernel -> tcpio listener, data both ways,
    and a SYN to a closed port each way."""
    # tcpio client, kernel server
    sock, ksock = await connect_to_kernel(peer, KERNEL_PORT)
    await _both_ways(loop, sock, ksock)
    # kernel client, tcpio listener
    lsock = peer.stack.socket(socket.SOCK_STREAM)
    lsock.bind((peer.tcpio_ip, TCPIO_PORT))
    lsock.listen(4)
    kc = peer.ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    kc.setblocking(False)
    accepted = asyncio.ensure_future(lsock.accept())
    await asyncio.wait_for(loop.sock_connect(kc, (peer.tcpio_ip, TCPIO_PORT)), 20)
    child, _ = await asyncio.wait_for(accepted, 20)
    await _both_ways(loop, child, kc)
    lsock.close()
    # a SYN to a closed port, each way: RSTs from no socket
    probe = peer.stack.socket(socket.SOCK_STREAM)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(probe.connect((peer.kernel_ip, CLOSED_PORT)), 20)
    probe.close()
    kp = peer.ns.socket(socket.AF_INET, socket.SOCK_STREAM)
    kp.setblocking(False)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(loop.sock_connect(kp, (peer.tcpio_ip, CLOSED_PORT)), 20)
    kp.close()
    await asyncio.sleep(0.2)


async def test_df_and_ip_ids_follow_the_kernels_rules(tmp_path):
    pcap = tmp_path / "ids.pcap"
    loop = asyncio.get_running_loop()
    async with kernel_peer(pcap=pcap, ipv6=False, tap_options={"offloads": False},
                           seed=None) as peer:
        await _exchange(peer, loop)
    kernel = _check_rules(_rows(str(pcap), peer.kernel_ip), "kernel")
    ours = _check_rules(_rows(str(pcap), peer.tcpio_ip), "tcpio")
    assert kernel["segments"] and ours["segments"]


# --- a lower-MTU hop ---------------------------------------------------------------------

FAR_MTU = 1280
NBYTES = 4 * 1024 * 1024
FAR_PORT = 7322


def _far_namespace(near: NetNs) -> tuple[NetNs, str]:
    """Namespace B behind ``near`` over a veth pair; near's end MTU 1280
    (the hop tcpio's 1500-byte segments cannot cross), near forwarding."""
    far = NetNs().create()
    a, b = f"pa{far.name[-6:]}", f"pb{far.name[-6:]}"
    near.ip("link", "add", a, "type", "veth", "peer", "name", b)
    near.ip("link", "set", b, "netns", far.name)
    near.ip("addr", "add", "10.8.0.1/24", "dev", a)
    near.ip("link", "set", a, "mtu", str(FAR_MTU))
    near.ip("link", "set", a, "up")
    far.ip("addr", "add", "10.8.0.2/24", "dev", b)
    far.ip("link", "set", b, "up")
    far.ip("route", "add", "default", "via", "10.8.0.1")
    near.sysctl("net.ipv4.ip_forward", 1)
    return far, "10.8.0.2"


async def test_frag_needed_from_a_forwarding_kernel_shrinks_the_flight(tmp_path):
    pcap = tmp_path / "pmtu.pcap"
    loop = asyncio.get_running_loop()
    data = random.Random(13).randbytes(NBYTES)
    async with kernel_peer(pcap=pcap, ipv6=False, tap_options={"offloads": False},
                           seed=None) as peer:
        far, far_ip = _far_namespace(peer.ns)
        try:
            peer.stack.add_route("10.8.0.0/24", via=peer.kernel_ip)

            def make_listener() -> socket.socket:
                s = socket.socket()
                s.bind((far_ip, FAR_PORT))
                s.listen(1)
                s.setblocking(False)
                return s

            srv = far.call(make_listener)
            accepted = asyncio.ensure_future(loop.sock_accept(srv))
            sock = peer.stack.socket(socket.SOCK_STREAM)
            await asyncio.wait_for(sock.connect((far_ip, FAR_PORT)), 20)
            ksock, _ = await asyncio.wait_for(accepted, 20)
            ksock.setblocking(False)
            mss_before = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)

            async def receive() -> str:
                h = hashlib.sha256()
                while chunk := await loop.sock_recv(ksock, 1 << 20):
                    h.update(chunk)
                return h.hexdigest()

            async def send() -> None:
                await sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)

            got, _ = await asyncio.wait_for(asyncio.gather(receive(), send()), 120)
            mss_after = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
            mib = peer.stack.mib()
            sock.close()
            ksock.close()
            srv.close()
        finally:
            far.delete()
    assert got == hashlib.sha256(data).hexdigest()
    assert mss_before > FAR_MTU - 40 >= mss_after
    assert mib["PMTUUpdates"] >= 1 and mib["RetransSegs"] >= 1
    # the capture: the kernel's ICMP (type 3 code 4, next-hop MTU 1280) ...
    icmps = fields(str(pcap), "frame.number", "icmp.mtu",
                   display_filter=f"icmp.type == 3 && icmp.code == 4 && ip.dst == {peer.tcpio_ip}")
    assert icmps and {r[1] for r in icmps} == {str(FAR_MTU)}
    first = int(icmps[0][0])
    ours = fields(str(pcap), "frame.number", "ip.len", "ip.flags.df",
                  display_filter=f"tcp && !icmp && ip.src == {peer.tcpio_ip}")
    before = [r for r in ours if int(r[0]) < first]
    after = [r for r in ours if int(r[0]) > first]
    # ... larger datagrams before it, none over the hop's MTU after it, DF on all
    assert any(int(r[1]) > FAR_MTU for r in before)
    assert after and max(int(r[1]) for r in after) <= FAR_MTU
    assert all(r[2] in ("1", "True") for r in ours)
    # in-flight data went again, cut to the new size, right after the ICMP
    resent = fields(str(pcap), "frame.number", "ip.len", display_filter=(
        f"tcp.analysis.retransmission && !icmp && ip.src == {peer.tcpio_ip}"))
    assert any(int(r[0]) > first for r in resent)
    assert all(int(r[1]) <= FAR_MTU for r in resent if int(r[0]) > first)
