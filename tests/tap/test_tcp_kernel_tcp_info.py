"""TCP_INFO: tcpio's against the Linux kernel's, both ends of one connection.

Over a TAP, a tcpio socket connected to a kernel socket in the namespace.
What the two ends of one connection must agree on, read with the same
``struct.unpack`` of Linux's ``struct tcp_info`` layout from both
``getsockopt(IPPROTO_TCP, TCP_INFO)`` answers: the state, the options
negotiated (timestamps, SACK, window scaling: the same bits on both ends),
each side's send scale is the other's receive scale, the MSS (both paths
have MTU 1500: pmtu 1500, snd_mss 1448 with timestamps), nothing
unacknowledged after an exchange, the bytes each acknowledged and received
(mirror images).

Then an induced loss (every frame dropped both ways on tcpio's side of the
TAP: this kernel has no netem) while both ends have data out: each end's
retransmission timer fires; read when each has retransmitted twice, the
kernel's and tcpio's counts have the same shape (ca_state Loss, retransmits
== backoff, the one segment unacked, lost and retransmitted); when the path
heals both recover and keep the total.
"""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from netns import kernel_peer

from tcpio.devices.impair import Impairment
from tcpio.devices.memory import ImpairedDevice

from .test_tcp_kernel_common import connect_to_kernel, wait_until

pytestmark = pytest.mark.tap

PORT = 7340
# Linux's struct tcp_info up to tcpi_bytes_received (include/uapi/linux/tcp.h),
# written here independently of tcpio.core.tcp.tcp_info
LAYOUT = struct.Struct("=8B24I4Q2I")
NAMES = ("state", "ca_state", "retransmits", "probes", "backoff", "options", "wscale",
         "flags", "rto", "ato", "snd_mss", "rcv_mss", "unacked", "sacked", "lost", "retrans",
         "fackets", "last_data_sent", "last_ack_sent", "last_data_recv", "last_ack_recv",
         "pmtu", "rcv_ssthresh", "rtt", "rttvar", "snd_ssthresh", "snd_cwnd", "advmss",
         "reordering", "rcv_rtt", "rcv_space", "total_retrans", "pacing_rate",
         "max_pacing_rate", "bytes_acked", "bytes_received", "segs_out", "segs_in")


def unpack(raw: bytes) -> dict[str, int]:
    return dict(zip(NAMES, LAYOUT.unpack_from(raw)))


def kernel_info(ks: socket.socket) -> dict[str, int]:
    return unpack(ks.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 248))


def tcpio_info(sock) -> dict[str, int]:
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO)
    assert isinstance(raw, bytes) and len(raw) == 248
    info = unpack(raw)
    # the packed struct says what the dict says
    d = sock.tcp_info()
    for k in ("state", "options", "snd_mss", "unacked", "retransmits", "rto", "snd_cwnd"):
        assert info[k] == d["tcpi_" + k], k
    return info


async def kernel_recv_some(ks: socket.socket, n: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = b""
    while len(got) < n:
        got += await asyncio.wait_for(loop.sock_recv(ks, n - len(got)), 20)
    return got


async def kernel_connects(peer, port: int):
    """(tcpio socket accepted, kernel client socket): the mirror of connect_to_kernel."""
    loop = asyncio.get_running_loop()
    listener = peer.stack.socket(socket.SOCK_STREAM)
    listener.bind(("0.0.0.0", port))
    listener.listen(4)

    def make() -> socket.socket:
        s = socket.socket()
        s.setblocking(False)
        return s

    ks = peer.ns.call(make)
    await asyncio.wait_for(loop.sock_connect(ks, (peer.tcpio_ip, port)), 20)
    sock, _ = await asyncio.wait_for(listener.accept(), 20)
    listener.close()
    return sock, ks


async def exchange(sock, ks) -> tuple[dict[str, int], dict[str, int]]:
    """5000 bytes tcpio -> kernel, 7000 back; both ends' TCP_INFO after."""
    loop = asyncio.get_running_loop()
    try:
        await sock.sendall(b"a" * 5000)
        assert await kernel_recv_some(ks, 5000) == b"a" * 5000
        await loop.sock_sendall(ks, b"b" * 7000)
        got = b""
        while len(got) < 7000:
            got += await asyncio.wait_for(sock.recv(65536), 20)
        assert await wait_until(lambda: tcpio_info(sock)["unacked"] == 0
                                and kernel_info(ks)["unacked"] == 0)
        return tcpio_info(sock), kernel_info(ks)
    finally:
        sock.close()
        ks.close()


@pytest.mark.parametrize("offloads", [False, True])
async def test_both_ends_of_one_connection_agree_with_the_kernel(tap_required, offloads):
    # With offloads the data crosses the TAP as super-frames both ways: each
    # end counts one as the segments it stands for (tcp_segs_in: gso_segs).
    async with kernel_peer(ipv6=False, tap_options={"offloads": offloads}) as peer:
        active = await exchange(*await connect_to_kernel(peer, PORT))    # tcpio connects
        passive = await exchange(*await kernel_connects(peer, PORT + 2))  # the kernel does
    print(f"tcpio active, kernel passive: {active}\ntcpio passive, kernel active: {passive}")
    for ours, theirs in (active, passive):
        assert ours["state"] == theirs["state"] == 1                 # TCP_ESTABLISHED
        # TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE, as negotiated
        assert ours["options"] & 7 == theirs["options"] & 7 == 7
        snd, rcv = ours["wscale"] & 15, ours["wscale"] >> 4
        assert (snd, rcv) == (theirs["wscale"] >> 4, theirs["wscale"] & 15)
        assert ours["pmtu"] == theirs["pmtu"] == 1500
        assert ours["snd_mss"] == theirs["snd_mss"] == 1448
        # each end's guess of the other's MSS (tcp_measure_rcv_mss: a
        # super-frame's gso_size, not its length) is what the other sends
        assert ours["rcv_mss"] == theirs["snd_mss"] and theirs["rcv_mss"] == ours["snd_mss"]
        assert ours["unacked"] == theirs["unacked"] == 0
        assert ours["retransmits"] == theirs["retransmits"] == 0
        assert ours["ca_state"] == theirs["ca_state"] == 0
        # mirror images: what one end acknowledged the other received (plus
        # the active opener's SYN, which Linux counts in bytes_acked)
        assert ours["bytes_received"] == 7000 and theirs["bytes_received"] == 5000
    # segments: each end received what the other sent, but the SYN-ACK, which
    # the listener's request sock sent before the passive child existed (the
    # child counts the SYN it was made from in segs_in: Linux's
    # tcp_create_openreq_child)
    (t_act, k_pas), (t_pas, k_act) = active, passive
    for act, pas in ((t_act, k_pas), (k_act, t_pas)):
        assert act["segs_out"] >= 5 and pas["segs_out"] >= 5
        if offloads and act is k_act:
            # The kernel's receive side undercounts what tcpio sends with TSO:
            # tun's virtio_net_hdr_to_skb leaves gso_segs 0 (SKB_GSO_DODGY,
            # "gso_segs computed" later, which a local delivery never does),
            # so tcp_segs_in's max(1, gso_segs) counts a super-frame once.
            assert act["segs_in"] <= pas["segs_out"] + 1
        else:
            assert act["segs_in"] == pas["segs_out"] + 1
        if offloads and pas is k_pas:
            assert pas["segs_in"] <= act["segs_out"]
        else:
            assert pas["segs_in"] == act["segs_out"]
    # tcpio in a role counts as the kernel in that role
    (act_ours, act_kernel_peer), (pas_ours, pas_kernel_peer) = active, passive
    assert act_ours["bytes_acked"] - 5000 == pas_kernel_peer["bytes_acked"] - 7000 == 1
    assert pas_ours["bytes_acked"] - 5000 == act_kernel_peer["bytes_acked"] - 7000 == 0


async def test_retransmits_after_an_induced_loss_like_the_kernel(tap_required):
    out_imp, in_imp = Impairment(), Impairment()
    async with kernel_peer(ipv6=False, wrap=lambda d: ImpairedDevice(d, out_imp, in_imp)
                           ) as peer:
        # a permanent neighbour: no ARP to lose
        peer.ns.ip("neigh", "replace", peer.tcpio_ip, "lladdr", peer.tap.mac.hex(":"),
                   "dev", peer.ifname, "nud", "permanent")
        sock, ks = await connect_to_kernel(peer, PORT + 1)
        loop = asyncio.get_running_loop()
        try:
            await sock.sendall(b"x" * 100)           # an RTT sample on both ends
            await kernel_recv_some(ks, 100)
            await loop.sock_sendall(ks, b"y" * 100)
            await asyncio.wait_for(sock.recv(100), 20)
            assert await wait_until(lambda: tcpio_info(sock)["unacked"] == 0
                                    and kernel_info(ks)["unacked"] == 0)
            out_imp.loss = in_imp.loss = 1.0         # the path goes black both ways
            await sock.sendall(b"z" * 1000)
            await loop.sock_sendall(ks, b"w" * 1000)
            snaps: dict[str, dict[str, int]] = {}

            def both_twice() -> bool:
                for name, read in (("tcpio", lambda: tcpio_info(sock)),
                                   ("kernel", lambda: kernel_info(ks))):
                    info = read()
                    if name not in snaps and info["retransmits"] == 2:
                        snaps[name] = info
                return len(snaps) == 2

            assert await wait_until(both_twice, timeout=30, step=0.01)
            out_imp.loss = in_imp.loss = 0.0         # healed
            assert await wait_until(lambda: tcpio_info(sock)["unacked"] == 0
                                    and kernel_info(ks)["unacked"] == 0, timeout=30)
            after = {"tcpio": tcpio_info(sock), "kernel": kernel_info(ks)}
        finally:
            sock.close()
            ks.close()
    print(snaps, after)

    def shape(i: dict[str, int]) -> dict[str, int]:
        return {"ca_state": i["ca_state"], "retransmits": i["retransmits"],
                "backoff": i["backoff"], "unacked": i["unacked"], "lost": i["lost"],
                "retrans": i["retrans"], "snd_cwnd": i["snd_cwnd"],
                # a loss probe may resend the tail before the RTO (both do TLP)
                "total_retrans_over_rto": i["total_retrans"] - i["retransmits"]}

    assert shape(snaps["tcpio"]) == shape(snaps["kernel"])
    assert shape(snaps["kernel"])["ca_state"] == 4 and snaps["kernel"]["lost"] == 1
    for name in ("tcpio", "kernel"):
        a = after[name]
        assert (a["retransmits"], a["ca_state"], a["unacked"]) == (0, 0, 0), name
        assert a["total_retrans"] >= snaps[name]["total_retrans"], name
