"""The packetdrill runner: scripts that match tcpio's behaviour pass, and a
script that expects anything else fails at the right line with the diff.

Oracles: packetdrill's rules for comparing (run_packet.c: flags, relative
seq/ack, window when given, the option list, payload length, the time within
--tolerance_usecs; TSO-style aggregation of consecutive segments unless
--strict_segments), and Linux's behaviour for what the stack must send
(the SYN-ACK echoes the peer's options it accepts, an ACK for data, EINPROGRESS
from a non-blocking connect, a blocking read returning when data arrives).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tcpio.packetdrill import run_file
from tcpio.packetdrill.runner import Result

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A passive open, mss 1000 from the peer; no timestamps so no TS mapping is involved.
SERVER = """\
`sysctl -q net.ipv4.tcp_timestamps=0`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
   +0 bind(3, ..., ...) = 0
   +0 listen(3, 1) = 0
   +0 < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
   +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>
  +.1 < . 1:1(0) ack 1 win 257
   +0 accept(3, ..., ...) = 4
"""
SERVER_LINES = SERVER.count("\n")


def run(tmp_path, body: str, name: str = "t.pkt", header: str = SERVER) -> Result:
    path = tmp_path / name
    path.write_text(header + body)
    return run_file(str(path))


def test_a_matching_script_passes(tmp_path) -> None:
    res = run(tmp_path, """\
   +0 write(4, ..., 1000) = 1000
   +0 > P. 1:1001(1000) ack 1
  +.1 < . 1:1(0) ack 1001 win 257
   +0 < P. 1:201(200) ack 1001 win 257
   +0 > . 1001:1001(0) ack 201
   +0 read(4, ..., 1000) = 200
   +0 close(4) = 0
   +0 > F. 1001:1001(0) ack 201
""")
    assert res.status == "pass", res.report()
    assert res.virtual_secs == pytest.approx(0.2)


@pytest.mark.parametrize("wrong, field", [
    ("> S. 0:0(0) ack 1 win 1234 <mss 1460,nop,nop,sackOK,nop,wscale 7>", "tcp_window"),
    ("> S. 0:0(0) ack 2 <mss 1460,nop,nop,sackOK,nop,wscale 7>", "tcp_ack_seq"),
    ("> S 0:0(0) <mss 1460,nop,nop,sackOK,nop,wscale 7>", "tcp_ack"),
    ("> S. 0:0(0) ack 1 <mss 1000,nop,nop,sackOK,nop,wscale 7>",
     "expected: mss 1000 actual: mss 1460"),
    ("> S. 0:0(0) ack 1 <mss 1460,sackOK,nop,nop,nop,wscale 7>", "bad outbound TCP options"),
    ("> S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK>", "bad outbound TCP options"),
])
def test_a_wrong_packet_fails_with_the_diff(tmp_path, wrong: str, field: str | None) -> None:
    header = SERVER.replace("> S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>", wrong)
    res = run(tmp_path, "", header=header)
    assert res.status == "fail", res.report()
    assert res.line == 7
    if field is not None:
        assert field in res.message
    # packetdrill's report: the script's packet and the one seen, with times.
    assert res.details[0] == f"script packet: 0.000000 {wrong[2:]}"
    # (a script SYN without ACK teaches no ISN to a passive socket, as in packetdrill)
    seq = "0:0(0)" if "S." in wrong else ""
    assert res.details[1].startswith("actual packet: 0.000000 S. " + seq)
    assert " ack 1 win " in res.details[1]
    report = res.report()
    assert report.startswith(f"FAIL {tmp_path / 't.pkt'}:7: ")


def test_a_syn_sequence_stands_for_the_live_isn(tmp_path) -> None:
    """A SYN's script seq is the live ISN whatever its value (seq 5:5 matches);
    every other segment counts from the ISN (1 is ISN + 1), as in packetdrill."""
    header = SERVER.replace("> S. 0:0(0)", "> S. 5:5(0)")
    res = run(tmp_path, "   +0 write(4, ..., 10) = 10\n   +0 > P. 1:11(10) ack 1\n", header=header)
    assert res.status == "pass", res.report()
    res = run(tmp_path, "   +0 write(4, ..., 10) = 10\n   +0 > P. 6:16(10) ack 1\n", header=header)
    assert res.status == "fail" and "tcp_seq: expected: 6 vs actual: 1" in res.message


def test_missing_and_unexpected_packets_fail(tmp_path) -> None:
    res = run(tmp_path, "   +0 > . 1:1(0) ack 1\n")
    assert res.status == "fail" and "timed out waiting for an outbound packet" in res.message
    assert res.line == SERVER_LINES + 1
    res = run(tmp_path, "   +0 write(4, ..., 100) = 100\n   +0 > P. 1:101(100) ack 1 urg 3\n")
    assert res.status == "fail" and "tcp_urg" in res.message


@pytest.mark.parametrize("when, ok", [("+0", True), ("+.003", True), ("+.01", False),
                                      ("+.2", False), ("*", True), ("+0~+.01", True),
                                      ("+.05~+.1", False)])
def test_timing_tolerance(tmp_path, when: str, ok: bool) -> None:
    res = run(tmp_path, f"   +0 write(4, ..., 100) = 100\n{when} > P. 1:101(100) ack 1\n")
    assert res.passed is ok, res.report()
    if not ok:
        assert "timing error" in res.message


def test_tolerance_option_widens_the_window(tmp_path) -> None:
    res = run(tmp_path, "   +0 write(4, ..., 100) = 100\n+.01 > P. 1:101(100) ack 1\n",
              header="--tolerance_usecs=20000\n" + SERVER)
    assert res.passed, res.report()


def test_consecutive_segments_aggregate_unless_strict(tmp_path) -> None:
    body = "   +0 write(4, ..., 3000) = 3000\n   +0 > P. 1:3001(3000) ack 1\n"
    assert run(tmp_path, body).passed
    res = run(tmp_path, body, header="--strict_segments\n" + SERVER)
    assert res.status == "fail" and "expected 3000 bytes vs actual 1000 bytes" in res.message


def test_syscall_results_and_errno(tmp_path) -> None:
    ok = run(tmp_path, "   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
                       "   +0 fcntl(4, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)\n"
                       "   +0 read(4, ..., 100) = -1 EAGAIN (Resource temporarily unavailable)\n"
                       "   +0 getsockopt(4, SOL_TCP, TCP_MAXSEG, [1000], [4]) = 0\n"
                       "   +0 shutdown(4, 7) = -1 EINVAL\n")
    assert ok.passed, ok.report()
    bad = run(tmp_path, "   +0 fcntl(4, F_SETFL, O_RDWR|O_NONBLOCK) = 0\n"
                        "   +0 read(4, ..., 100) = -1 ENOTCONN\n")
    assert bad.status == "fail" and bad.line == SERVER_LINES + 2
    assert "Expected errno 107 (ENOTCONN) but got 11 (EAGAIN)" in bad.message
    bad = run(tmp_path, "   +0 getsockopt(4, SOL_TCP, TCP_MAXSEG, [1460], [4]) = 0\n")
    assert bad.status == "fail" and "expected: 1460 actual: 1000" in bad.message


def test_nonblocking_connect_and_the_syn_isn(tmp_path) -> None:
    res = run(tmp_path, """\
`sysctl -q net.ipv4.tcp_timestamps=0`
    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
   +0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
   +0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
   +0 > S 0:0(0) <mss 1460,nop,nop,sackOK,nop,wscale 7>
  +.1 < S. 0:0(0) ack 1 win 5792 <mss 1200,nop,nop,sackOK,nop,wscale 6>
   +0 > . 1:1(0) ack 1
   +0 getsockopt(3, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
   +0 write(3, ..., 1000) = 1000
   +0 > P. 1:1001(1000) ack 1
""", header="")
    assert res.passed, res.report()


def test_blocking_call_with_an_end_time(tmp_path) -> None:
    body = """\
   +0...0.200 read(4, ..., 1000) = 500
  +.2 < P. 1:501(500) ack 1 win 257
   +0 > . 1:1(0) ack 501
"""
    # (a relative call's end time is relative too: it returns 0.2 s after it began)
    assert run(tmp_path, body).passed
    res = run(tmp_path, body.replace("0.200", "0.150"))
    assert res.status == "fail" and res.line == SERVER_LINES + 1
    assert "timing error" in res.message and "system call return" in res.message


def test_ts_ecr_needs_an_outbound_ts_val_to_map(tmp_path) -> None:
    header = SERVER.replace("`sysctl -q net.ipv4.tcp_timestamps=0`\n", "")
    header = header.replace("<mss 1000,sackOK,nop,nop,nop,wscale 7>",
                            "<mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>")
    header = header.replace("<mss 1460,nop,nop,sackOK,nop,wscale 7>",
                            "<mss 1460,sackOK,TS val 700 ecr 100,nop,wscale 7>")
    header = header.replace("+.1 < . 1:1(0) ack 1 win 257",
                            "+.1 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 110 ecr 700>")
    assert run(tmp_path, "", header=header).passed
    res = run(tmp_path, "", header=header.replace("ecr 700>", "ecr 701>"))
    assert res.status == "fail" and "unable to infer live TS ecr for script TS ecr 701" \
        in res.message


def test_sysctls_are_applied_from_commands(tmp_path) -> None:
    """tcp_timestamps=1 makes the SYN-ACK echo the peer's timestamp (Linux
    answers TS only when both sides offer it), =0 leaves it out."""
    header = SERVER.replace("tcp_timestamps=0", "tcp_timestamps=1").replace(
        "<mss 1000,sackOK,nop,nop,nop,wscale 7>", "<mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7>")
    res = run(tmp_path, "", header=header)
    assert res.status == "fail" and "bad outbound TCP options" in res.message
    assert "TS val" in res.details[1]


def test_unsupported_constructs_are_reported_not_crashed(tmp_path) -> None:
    for body, what in [("   +0 %{ assert tcpi_snd_cwnd == 10; f() }%\n", "Expr"),
                       ("   +0 setsockopt(4, SOL_SOCKET, SO_ZEROCOPY, [1], 4) = 0\n", "SO_ZEROCOPY"),
                       ("   +0 `rm -rf /tmp/x`\n", "shell command"),
                       ("   +0 < udp (100)\n", "UDP packets"),
                       ("   +0 epoll_create(1) = 5\n", "epoll_create")]:
        res = run(tmp_path, body)
        assert res.status == "unsupported", res.report()
        assert what in res.message and res.line == SERVER_LINES + 1
        assert res.report().startswith("UNSUPPORTED ") and "unsupported: " in res.report()


def test_a_parse_error_is_an_error_result(tmp_path) -> None:
    res = run(tmp_path, "   +0 > . 1:1(0) ack\n")
    assert res.status == "error" and res.line == SERVER_LINES + 1


def test_cli_prints_a_summary_and_exits_nonzero_on_failure(tmp_path) -> None:
    good = tmp_path / "good.pkt"
    good.write_text(SERVER)
    bad = tmp_path / "bad.pkt"
    bad.write_text(SERVER + "   +0 > . 1:1(0) ack 1\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for argv in (["-m", "tcpio", "packetdrill"], ["-m", "tcpio.packetdrill"]):
        p = subprocess.run([sys.executable, *argv, str(good)], capture_output=True, text=True,
                           env=env, check=False)
        assert p.returncode == 0 and p.stdout.endswith("1 passed, 0 failed\n"), p.stdout
        p = subprocess.run([sys.executable, *argv, str(good), str(bad)], capture_output=True,
                           text=True, env=env, check=False)
        assert p.returncode == 1 and p.stdout.endswith("1 passed, 1 failed\n"), p.stdout
        assert f"FAIL {bad}:{SERVER_LINES + 1}: timed out" in p.stdout


def test_tcp_info_blocks_are_asserted(tmp_path) -> None:
    """%{ }% blocks see the socket's tcp_info at that time: IW10 (RFC 6928),
    the MSS, CA_Open; a wrong value fails at the block's line."""
    ok = run(tmp_path, "   +0 %{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%\n"
                       "   +0 %{ assert tcpi_snd_mss == 1000 and tcpi_ca_state == TCP_CA_Open }%\n"
                       "   +0 %{\nassert tcpi_unacked == 0\nassert tcpi_lost + tcpi_sacked == 0\n}%\n")
    assert ok.passed, ok.report()
    bad = run(tmp_path, "   +0 %{ assert tcpi_snd_cwnd == 12, 'cwnd=%d' % tcpi_snd_cwnd }%\n")
    assert bad.status == "fail" and bad.line == SERVER_LINES + 1
    assert bad.message == "assert tcpi_snd_cwnd == 12 failed: cwnd=10"


@pytest.mark.parametrize("block, what", [
    ("import os", "Import"),
    ("assert __import__('os').system('true') == 0", "Call"),
    ("assert tcpi_snd_cwnd.real == 4", "Attribute"),
    ("assert tcpi_delivery_rate == 0", "tcp_info field tcpi_delivery_rate"),
])
def test_tcp_info_blocks_only_evaluate_assertions(tmp_path, block: str, what: str) -> None:
    res = run(tmp_path, f"   +0 %{{ {block} }}%\n")
    assert res.status == "unsupported" and what in res.message, res.report()


def test_poll_sendmsg_ioctl_and_options(tmp_path) -> None:
    """poll() reports POLLOUT on an idle connection and POLLIN once data came
    (a blocking poll returning when it arrives), sendmsg's iovecs add up,
    SIOCOUTQ counts unacked bytes, SO_LINGER and TCP_CONGESTION round-trip."""
    res = run(tmp_path, """\
   +0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLOUT}], 1, 0) = 1
   +0...0.050 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 1000) = 1
 +.05 < P. 1:11(10) ack 1 win 257
   +0 > . 1:1(0) ack 11
   +0 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 0) = 1
   +0 sendmsg(4, {msg_name(...)=..., msg_iov(2)=[{..., 30}, {..., 70}], msg_flags=0}, 0) = 100
   +0 > P. 1:101(100) ack 11
   +0 ioctl(4, SIOCOUTQ, [100]) = 0
   +0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=5}, 8) = 0
   +0 getsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=5}, [8]) = 0
   +0 setsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", 4) = 0
   +0 getsockopt(4, SOL_TCP, TCP_CONGESTION, "reno", [16]) = 0
""")
    assert res.passed, res.report()
    res = run(tmp_path, "   +0 poll([{fd=4, events=POLLIN, revents=POLLIN}], 1, 0) = 1\n")
    assert res.status == "fail" and "Expected result 1 but got 0" in res.message
    res = run(tmp_path, "   +0...0.200 poll([{fd=4, events=POLLIN}], 1, 100) = 0\n")
    assert res.status == "fail" and "system call return" in res.message  # returns at 0.1
    res = run(tmp_path, "   +0 poll([{fd=4, events=POLLIN|POLLOUT, revents=POLLIN}], 1, 0) = 1\n")
    assert res.status == "fail" and "poll revents: expected: 0x1 actual: 0x4" in res.message


INQ_READS = """\
   +0 setsockopt(4, SOL_TCP, TCP_INQ, [1], 4) = 0
   +0 getsockopt(4, SOL_TCP, TCP_INQ, [1], [4]) = 0
   +0 < . 1:3001(3000) ack 1 win 257
   +0 > . 1:1(0) ack 3001
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 1000}], msg_flags=0,
                  msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ,
                                cmsg_data=%d}]}, 0) = 1000
   +0 < F. 3001:3001(0) ack 1 win 257
 +.04 > . 1:1(0) ack 3002
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 5000}], msg_flags=0,
                  msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ,
                                cmsg_data=%d}]}, 0) = 2000
"""


@pytest.mark.parametrize("first, last, ok", [(2000, 1, True), (3000, 1, False), (2000, 0, False)])
def test_recvmsg_control_messages_are_compared(tmp_path, first: int, last: int, ok: bool) -> None:
    """TCP_INQ (Linux tcp_inq_hint): each recvmsg carries a TCP_CM_INQ control
    message with the bytes left to read, 1 when none are left after the
    peer's FIN; the runner compares it like packetdrill's cmsg check."""
    res = run(tmp_path, INQ_READS % (first, last))
    assert res.status == ("pass" if ok else "fail"), res.report()
    if not ok:
        assert "control messages" in res.message and res.line == SERVER_LINES + (
            5 if first != 2000 else 10)


def test_tcp_inq_takes_0_or_1_and_control_needs_it(tmp_path) -> None:
    res = run(tmp_path, """\
   +0 setsockopt(4, SOL_TCP, TCP_INQ, [2], 4) = -1 EINVAL (Invalid argument)
   +0 < . 1:101(100) ack 1 win 257
   +0 > . 1:1(0) ack 101
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 100}], msg_flags=0,
                  msg_control=[{cmsg_level=SOL_TCP, cmsg_type=TCP_CM_INQ,
                                cmsg_data=0}]}, 0) = 100
""")
    assert res.status == "fail" and "control messages" in res.message, res.report()


@pytest.mark.parametrize("options, mss", [
    ("", 1460),                                            # IPv4, MTU 1500: 1500 - 20 - 20
    ("--ip_version=ipv6 --mtu=1520", 1460),                # Linux's ksft IPv6 run: 1520 - 40 - 20
    ("--ip_version=ipv6", 1440),                           # IPv6 at MTU 1500: 1500 - 40 - 20
    ("--ip_version=ipv4-mapped-ipv6", 1460),               # AF_INET6 sockets, IPv4 on the wire
])
def test_ip_version_sets_the_wire_family(tmp_path, options: str, mss: int) -> None:
    """--ip_version=ipv6 puts IPv6 on the wire (the SYN-ACK's MSS is the MTU
    less a 40-byte IPv6 header, RFC 8200 / RFC 9293 3.7.1), ipv4-mapped-ipv6 keeps
    IPv4 under an AF_INET6 socket, as packetdrill's modes do."""
    header = SERVER.replace("<mss 1460,", f"<mss {mss},")
    res = run(tmp_path, """\
   +0 write(4, ..., 1000) = 1000
   +0 > P. 1:1001(1000) ack 1
""", header=(options + "\n" if options else "") + header)
    assert res.status == "pass", res.report()
    other = SERVER.replace("<mss 1460,", f"<mss {mss - 20 if mss == 1460 else 1460},")
    res = run(tmp_path, "", name="other.pkt", header=(options + "\n" if options else "") + other)
    assert res.status == "fail", res.report()


def test_ipv6_frames_are_ipv6(tmp_path, monkeypatch) -> None:
    """What the stack sends in IPv6 mode parses as IPv6 from the script's
    local address (fd3d:a0b:17d6::1, packetdrill's default) to its remote one."""
    import ipaddress

    from tcpio.packetdrill import runner as runner_mod

    seen: list[tuple[int, str, str]] = []
    real = runner_mod.parse_ip_tcp

    def spy(frame: bytes, when: float):   # type: ignore[no-untyped-def]
        seg = real(frame, when)
        if not isinstance(seg, str):
            seen.append((frame[0] >> 4, str(ipaddress.IPv6Address(frame[8:24])),
                         str(ipaddress.IPv6Address(frame[24:40]))))
        return seg

    monkeypatch.setattr(runner_mod, "parse_ip_tcp", spy)
    res = run(tmp_path, "", header="--ip_version=ipv6\n--mtu=1520\n" + SERVER)
    assert res.status == "pass", res.report()
    assert seen and set(seen) == {(6, "fd3d:a0b:17d6::1", "fd3d:fa7b:d17d::1")}
