"""The TAP's queue for connection requests (TapDevice(syn_queue=True)): the
kernel itself sorts frames with the steering program, so these tests read
what the kernel put on each queue, and run a connection through both."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import socket
import time

import pytest
from netns import NetNs, kernel_peer
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from tcpio.devices import tun_steering

pytestmark = pytest.mark.tap


def drain(fd: int, hlen: int) -> list[Ether]:
    frames = []
    with contextlib.suppress(BlockingIOError):
        while True:
            frames.append(Ether(os.read(fd, 70000)[hlen:]))
    return frames


def is_syn(p: Ether) -> bool:
    return TCP in p and (int(p[TCP].flags) & 0x17) == 0x02


def test_the_kernel_puts_syns_on_their_own_queue_and_everything_else_on_the_flows(
        tap_required):
    with NetNs() as ns:
        tap = ns.tap(syn_queue=True)
        try:
            assert tap.syn_queue, tap.syn_queue_error
            mac = tap.mac.hex(":")
            ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
            ns.ip("addr", "add", "fd00::1/64", "dev", tap.name, "nodad")
            ns.ip("link", "set", tap.name, "up")
            ns.ip("neigh", "add", "10.7.0.2", "lladdr", mac, "dev", tap.name, "nud", "permanent")
            ns.ip("neigh", "add", "fd00::2", "lladdr", mac, "dev", tap.name, "nud", "permanent")
            listener = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("10.7.0.1", 5000))
            listener.listen()
            time.sleep(0.3)                 # the kernel's link-up chatter
            drain(tap.fd, tap.vnet_hdr_len)
            drain(tap.syn_fd, tap.vnet_hdr_len)

            clients = []
            for family, addr in ((socket.AF_INET, "10.7.0.2"), (socket.AF_INET6, "fd00::2")):
                c = ns.socket(family, socket.SOCK_STREAM)
                c.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    c.connect((addr, 80))
                clients.append(c)
            with ns.socket() as u:
                u.sendto(b"u", ("10.7.0.2", 9))
            # our SYN to the kernel's listener: its SYN-ACK must stay with the flows
            kernel_mac = ns.ip_json("link", "show", tap.name)[0]["address"]
            syn = Ether(dst=kernel_mac, src=mac) / IP(src="10.7.0.2", dst="10.7.0.1") \
                / TCP(sport=4242, dport=5000, flags="S", seq=1000)
            os.write(tap.fd, bytes(tap.vnet_hdr_len) + bytes(syn))
            time.sleep(0.3)
            on_syn = drain(tap.syn_fd, tap.vnet_hdr_len)
            on_flows = drain(tap.fd, tap.vnet_hdr_len)
            for c in clients:
                c.close()
            listener.close()
        finally:
            tap.stop()
    assert all(is_syn(p) for p in on_syn), [p.summary() for p in on_syn]
    assert sorted((IP in p, p[TCP].dport) for p in on_syn) == [(False, 80), (True, 80)]
    assert IPv6 in [p for p in on_syn if IP not in p][0]
    assert not any(is_syn(p) for p in on_flows)
    assert any(UDP in p and p[UDP].dport == 9 for p in on_flows)
    synack = [p for p in on_flows if TCP in p and p[TCP].sport == 5000]
    assert [int(p[TCP].flags) & 0x12 for p in synack] == [0x12]
    assert synack[0][TCP].ack == 1001


@pytest.mark.parametrize("link", ["ether", "ip"])
def test_the_steering_program_loads_for_both_links(tap_required, link):
    fd = tun_steering.load_socket_filter(tun_steering.syn_steering_program(link))
    os.close(fd)


def test_a_malformed_program_is_refused_with_the_kernels_errno(tap_required):
    with pytest.raises(OSError) as info:
        # a lone jump past the end: the verifier says no
        tun_steering.load_socket_filter(tun_steering._insn(0x05, off=5))
    assert info.value.errno in (22, 13)     # EINVAL from the verifier (EACCES if restricted)
    with pytest.raises(ValueError):
        tun_steering.load_socket_filter(b"\0" * 7)


async def test_connections_and_data_cross_a_tap_with_a_syn_queue(tap_required):
    """Handshakes arrive through the SYN queue, their data through the flows';
    the stack sees one device and every byte arrives."""
    async with kernel_peer(ipv6=False, tap_options={"syn_queue": True}) as peer:
        assert peer.tap.syn_queue, peer.tap.syn_queue_error
        got: list[bytes] = []

        async def handle(reader, writer):
            data = await reader.read()
            got.append(hashlib.sha256(data).digest())
            writer.write(hashlib.sha256(data).digest())
            await writer.drain()
            writer.close()

        server = await peer.stack.start_server(handle, peer.tcpio_ip, 8080)
        payload = os.urandom(1 << 20)

        def client() -> bytes:
            with socket.create_connection((peer.tcpio_ip, 8080), timeout=10) as s:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                return s.recv(64)

        loop = asyncio.get_running_loop()
        answers = await asyncio.gather(*(loop.run_in_executor(None, peer.ns.call, client)
                                         for _ in range(8)))
        server.close()
    assert answers == [hashlib.sha256(payload).digest()] * 8 == got
    assert peer.tap.syn_queue_rx >= 8            # the eight SYNs, read from their queue


def test_a_kernel_that_refuses_the_program_leaves_one_working_queue(tap_required, monkeypatch):
    """No eBPF (an old kernel, no CAP_BPF, a seccomp filter): the device opens
    with its one queue, says why, and still carries every frame."""
    def refuse(code: bytes) -> int:
        raise PermissionError(1, "bpf(BPF_PROG_LOAD): Operation not permitted")

    monkeypatch.setattr(tun_steering, "load_socket_filter", refuse)
    with NetNs() as ns:
        tap = ns.tap(syn_queue=True)
        try:
            assert not tap.syn_queue and tap.syn_fd is None
            assert tap.syn_queue_error is not None and tap.syn_queue_error.errno == 1
            ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
            ns.ip("link", "set", tap.name, "up")
            ns.ip("neigh", "add", "10.7.0.2", "lladdr", tap.mac.hex(":"), "dev", tap.name,
                  "nud", "permanent")
            c = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("10.7.0.2", 80))
            time.sleep(0.3)
            frames = drain(tap.fd, tap.vnet_hdr_len)
            c.close()
        finally:
            tap.stop()
    assert [p[TCP].dport for p in frames if is_syn(p)] == [80]


def test_syn_queue_off_opens_one_queue(tap_required):
    """syn_queue=False: one queue, and a second opener of the interface gets
    EBUSY from the kernel, as from any single-queue TAP held open."""
    with NetNs() as ns:
        tap = ns.tap(syn_queue=False)
        try:
            assert not tap.syn_queue and tap.syn_fd is None and tap.syn_queue_error is None
            with pytest.raises(OSError) as busy:
                ns.tap(tap.name, syn_queue=False)
            assert busy.value.errno == errno.EBUSY
        finally:
            tap.stop()


@pytest.mark.parametrize("second", [None, False])
def test_by_default_an_interface_tcpio_creates_has_the_syn_queue_and_stays_exclusive(
        tap_required, second):
    """The default (syn_queue=None): tcpio made the interface, so it is
    multi-queue with the SYN queue; a second opener, by default or asking for
    one queue, still gets EBUSY while the first holds it (the kernel would
    otherwise attach it as a third queue, or say EINVAL)."""
    with NetNs() as ns:
        tap = ns.tap()
        try:
            assert tap.syn_queue and tap.syn_fd is not None, tap.syn_queue_error
            flags = int(ns.run("cat", f"/sys/class/net/{tap.name}/tun_flags").stdout.strip(), 16)
            assert flags & tun_steering.IFF_MULTI_QUEUE
            with pytest.raises(OSError) as busy:
                ns.tap(tap.name, syn_queue=second)
            assert busy.value.errno == errno.EBUSY
        finally:
            tap.stop()
        # closed (not persistent): the name is free for a new interface
        again = ns.tap(tap.name)
        try:
            assert again.syn_queue
        finally:
            again.stop()


def test_by_default_an_existing_interface_is_taken_as_it_was_made(tap_required):
    """An interface someone made with `ip tuntap add ... mode tap` (one
    queue): the default attaches to it with one queue, and that is no error."""
    with NetNs() as ns:
        ns.ip("tuntap", "add", "dev", "tcpiopers1", "mode", "tap")
        tap = ns.tap("tcpiopers1")
        try:
            assert tap.fd is not None and not tap.syn_queue and tap.syn_queue_error is None
        finally:
            tap.stop()


def test_a_persistent_single_queue_interface_is_taken_as_it_is(tap_required):
    """An interface someone made with `ip tuntap add ... mode tap` (one queue):
    the device attaches without the SYN queue instead of failing."""
    with NetNs() as ns:
        ns.ip("tuntap", "add", "dev", "tcpiopers0", "mode", "tap")
        tap = ns.tap("tcpiopers0", syn_queue=True)
        try:
            assert tap.fd is not None and not tap.syn_queue
            assert tap.syn_queue_error is not None
        finally:
            tap.stop()


def test_max_wait_shortens_the_kernels_ring_for_the_syns_and_restores_it(tap_required):
    """SynShare(max_wait=...): the device sets the TAP's txqueuelen to the
    length the share asks (the kernel resizes every queue's ring to it, the
    SYN queue's too) and back.  The kernel is the oracle: its txqueuelen,
    and how many of 2500 SYNs sent while nobody reads the SYN queue holds."""
    from tcpio.devices.tap import SynShare

    with NetNs() as ns:
        tap = ns.tap(syn_queue=True, txqueuelen=20000, offloads=False,
                     syn_share=SynShare(max_wait=0.5))
        try:
            assert tap.syn_queue, tap.syn_queue_error
            assert tap._ring_ctl is not None
            mac = tap.mac.hex(":")
            ns.ip("addr", "add", "10.7.0.1/24", "dev", tap.name)
            ns.ip("link", "set", tap.name, "up")
            ns.ip("neigh", "add", "10.7.0.2", "lladdr", mac, "dev", tap.name, "nud", "permanent")
            kernel_mac = ns.ip_json("link", "show", tap.name)[0]["address"]

            def txqlen() -> int:
                return int(ns.ip_json("link", "show", tap.name)[0]["txqlen"])

            def fill(n: int) -> int:
                """n SYNs from the kernel's side, then the SYN queue read dry."""
                drain(tap.syn_fd, 0)

                # each its own ISN: the same SYN again would be a retransmission,
                # which the steering program sends to the flows' queue
                syn = bytes(Ether(dst=mac, src=kernel_mac) / IP(src="11.0.0.1", dst="10.7.0.2")
                            / TCP(sport=1024, dport=80, flags="S"))

                def send() -> None:
                    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as raw:
                        raw.bind((tap.name, 0))
                        for i in range(sent[0], sent[0] + n):
                            # the ISN (TCP checksum not fixed: the kernel's
                            # steering does not look, and nobody answers)
                            raw.send(syn[:38] + i.to_bytes(4, "big") + syn[42:])
                ns.call(send)
                sent[0] += n
                time.sleep(0.2)
                return len(drain(tap.syn_fd, 0))

            sent = [0]

            assert txqlen() == 20000
            tap._syn_ring(1500)          # what SynShare.ring_len asks under a flood
            assert txqlen() == 1500 and tap.syn_ring_len == 1500
            assert fill(2500) == 1500
            tap._syn_ring(20000)         # the flood over
            assert txqlen() == 20000 and tap.syn_ring_len == 0
            assert fill(2500) == 2500
            assert tap.syn_ring_changes == 2 and tap.syn_ring_error is None
        finally:
            tap.stop()
