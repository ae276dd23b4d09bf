"""The packetdrill script parser: every construct of the language the generic
TCP scripts use, and malformed scripts rejected with the line number.

Oracle: packetdrill's grammar (parser.y/lexer.l): what each construct means
(times in microseconds, relative/absolute/range/any, seq:end(len), the option
list, errno and note of a system call), and the semantic errors packetdrill
reports ("inconsistent TCP sequence numbers and payload size", "window must
be specified for inbound packets", a range or * on anything but an outbound
packet, "time range is backwards").
"""

from __future__ import annotations

import pytest

from tcpio.packetdrill import ast, parse
from tcpio.packetdrill.lexer import ScriptError, tokens
from tcpio.packetdrill.shell import interpret


def one(line: str) -> ast.Event:
    script = parse(line + "\n", "t.pkt")
    assert len(script.events) == 1
    return script.events[0]


# --- times -------------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, usecs, end", [
    ("0 close(3) = 0", ast.ABSOLUTE, 0, None),
    ("1.5 close(3) = 0", ast.ABSOLUTE, 1_500_000, None),
    ("+0 close(3) = 0", ast.RELATIVE, 0, None),
    ("+.01 close(3) = 0", ast.RELATIVE, 10_000, None),
    ("+2 close(3) = 0", ast.RELATIVE, 2_000_000, None),
    ("* > . 1:1(0) ack 1", ast.ANY, 0, None),
    ("0.1~0.2 > . 1:1(0) ack 1", ast.ABSOLUTE_RANGE, 100_000, 200_000),
    ("+.1~+.25 > . 1:1(0) ack 1", ast.RELATIVE_RANGE, 100_000, 250_000),
])
def test_event_times(text: str, kind: str, usecs: int, end: int | None) -> None:
    ev = one(text)
    assert (ev.time.kind, ev.time.usecs, ev.time.end_usecs) == (kind, usecs, end)


@pytest.mark.parametrize("text, message", [
    ("* close(3) = 0", "<star> can only be used with outbound packets"),
    ("0.1~0.2 < . 1:1(0) ack 1 win 100", "range can only be used with outbound packets"),
    ("0.3~0.2 > . 1:1(0) ack 1", "time range is backwards"),
    ("-1 close(3) = 0", "negative time"),
])
def test_time_errors(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message) as ei:
        parse("// a comment\n\n" + text + "\n", "t.pkt")
    assert ei.value.line == 3
    assert str(ei.value).startswith("t.pkt:3: ")


# --- TCP packets ----------------------------------------------------------------------

def test_inbound_syn_with_every_option() -> None:
    ev = one("+0 < S 0:0(0) win 32792 <mss 1000,sackOK,TS val 100 ecr 0,nop,wscale 7,eol>")
    pkt = ev.action
    assert isinstance(pkt, ast.TcpPacket)
    assert (pkt.direction, pkt.flags, pkt.seq, pkt.end_seq, pkt.payload) == ("<", "S", 0, 0, 0)
    assert pkt.win == 32792 and pkt.ack is None and pkt.urg is None
    assert pkt.options == [ast.TcpOption("mss", (1000,)), ast.TcpOption("sackOK"),
                           ast.TcpOption("TS", (100, 0)), ast.TcpOption("nop"),
                           ast.TcpOption("wscale", (7,)), ast.TcpOption("eol")]


def test_outbound_data_ack_sack_urg() -> None:
    pkt = one("+.1 > P. 1001:2001(1000) ack 1 win 257 urg 5 <nop,nop,sack 1:1001 2001:3001>").action
    assert isinstance(pkt, ast.TcpPacket)
    assert (pkt.direction, pkt.flags, pkt.seq, pkt.end_seq, pkt.payload) == (">", "P.", 1001, 2001,
                                                                             1000)
    assert (pkt.ack, pkt.win, pkt.urg) == (1, 257, 5)
    assert pkt.options == [ast.TcpOption("nop"), ast.TcpOption("nop"),
                           ast.TcpOption("sack", (1, 1001, 2001, 3001))]


@pytest.mark.parametrize("flags", ["S", "S.", ".", "F.", "R", "R.", "P.", "FP.", "SEW", "SE."])
def test_flag_words(flags: str) -> None:
    pkt = one(f"+0 > {flags} 0:0(0) ack 1").action
    assert isinstance(pkt, ast.TcpPacket) and pkt.flags == flags


def test_no_flags_dash_and_options_ellipsis_and_ports_and_ip_info() -> None:
    pkt = one("+0 < [ect0] 8080>49152 - 1:1001(1000) win 20000").action
    assert isinstance(pkt, ast.TcpPacket)
    assert pkt.flags == "" and pkt.ports == (8080, 49152) and pkt.ip.ecn == "ect0"
    out = one("+0 > (tos 0x10) S 0:0(0) <...>").action
    assert isinstance(out, ast.TcpPacket)
    assert out.options is None and out.ip.tos == 0x10 and out.win is None


@pytest.mark.parametrize("text, message", [
    ("+0 > . 1:1001(999) ack 1", "inconsistent TCP sequence numbers and payload size"),
    ("+0 < . 1:1(0) ack 1", "window must be specified for inbound packets"),
    ("+0 < S 0:0(0) win 100 <...>", r"<\.\.\.> for TCP options can only be used with outbound"),
    ("+0 > . 1:1(0) ack 1 <mss 1460,bogus 3>", "unknown TCP option 'bogus'"),
    ("+0 > . 1:1(0) ack 1 <mss 70000>", "mss value out of range"),
    ("+0 > . 1:1(0) ack 1 win 65536", "TCP window value out of range"),
    ("+0 > XYZ 1:1(0)", "expected TCP flags"),
    ("+0 > . 1:1 ack 1", "expected '\\('"),
    ("+0 > . 1:1(0) ack 1 <mss 1460", "expected '>'"),
])
def test_packet_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message) as ei:
        parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n" + text + "\n", "t.pkt")
    assert ei.value.line == 2


def test_udp_and_icmp_lines() -> None:
    udp = one("+0 < udp (1472)").action
    assert isinstance(udp, ast.UdpPacket) and udp.length == 1472
    icmp = one("+0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]").action
    assert isinstance(icmp, ast.IcmpPacket)
    assert (icmp.type, icmp.code, icmp.mtu, icmp.echoed) == ("unreachable", "frag_needed",
                                                              1200, "1 : 1461 ( 1460 )")


# --- system calls ------------------------------------------------------------------------

def test_syscall_with_errno_and_note() -> None:
    call = one("+0 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)").action
    assert isinstance(call, ast.Syscall)
    assert call.name == "connect" and call.args == [ast.Int(3), ast.Ellipsis_(), ast.Ellipsis_()]
    assert call.result == ast.Int(-1)
    assert call.errno == "EINPROGRESS" and call.note == "Operation now in progress"
    assert call.end_usecs is None


def test_blocking_syscall_end_time() -> None:
    ev = one("+.1...0.200 read(4, ..., 2000) = 2000")
    call = ev.action
    assert isinstance(call, ast.Syscall)
    assert ev.time == ast.EventTime(ast.RELATIVE, 100_000) and call.end_usecs == 200_000


def test_syscall_argument_expressions() -> None:
    call = one("+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0").action
    assert isinstance(call, ast.Syscall)
    assert call.args[3] == ast.Struct([ast.Binary("=", ast.Word("onoff"), ast.Int(1)),
                                       ast.Binary("=", ast.Word("linger"), ast.Int(0))])
    f = one("+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0").action
    assert isinstance(f, ast.Syscall)
    assert f.args[2] == ast.Binary("|", ast.Word("O_RDWR"), ast.Word("O_NONBLOCK"))
    g = one("+0 getsockopt(4, SOL_TCP, TCP_MAXSEG, [1100], [4]) = 0").action
    assert isinstance(g, ast.Syscall) and g.args[3] == ast.List([ast.Int(1100)])
    s = one('+0 setsockopt(3, SOL_TCP, TCP_CONGESTION, "reno", 4) = 0').action
    assert isinstance(s, ast.Syscall) and s.args[3] == ast.Str("reno")
    h = one("+0 fcntl(3, F_GETFL) = 0x802 (flags O_RDWR|O_NONBLOCK)").action
    assert isinstance(h, ast.Syscall) and h.result == ast.Int(0x802, hex=True)
    m = one("+0 sendmsg(4, {msg_name(...)=..., msg_iov(1)=[{..., 100}], msg_flags=0}, "
            "MSG_MORE) = 100").action
    assert isinstance(m, ast.Syscall)
    msg = m.args[1]
    assert isinstance(msg, ast.Struct)
    assert msg.items[1] == ast.Binary("=", ast.Call("msg_iov", [ast.Int(1)]),
                                      ast.List([ast.Struct([ast.Ellipsis_(), ast.Int(100)])]))


@pytest.mark.parametrize("text, message", [
    ("+0 close(3)", "expected '=' and the expected result"),
    ("+0 close(3 = 0", "expected"),
    ("+0 close(3) = 0 (unterminated note", r"expected '\)' closing the note"),
    ("+0 close(3) = ", "expected an expression"),
    ("close(3) = 0", "expected an event time"),
    ('+0 write(4, "abc, 3) = 3', "unterminated string"),
])
def test_syscall_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message) as ei:
        parse("\n\n\n" + text + "\n", "t.pkt")
    assert ei.value.line == 4


# --- options, defines, commands, code, comments -----------------------------------------

def test_options_and_defines() -> None:
    text = ("--tolerance_usecs=10000\n--define=PORT=8080\n--verbose\n"
            "0 bind(3, ..., PORT) = 0\n")
    script = parse(text, "t.pkt", defines={"FD": "3"})
    assert script.option("tolerance_usecs") == "10000"
    assert script.option("verbose") is None and ("verbose", None) in script.options
    call = script.events[0].action
    assert isinstance(call, ast.Syscall) and call.args[2] == ast.Int(8080)
    assert parse("0 close(FD) = 0\n", defines={"FD": "3"}).events[0].action == \
        ast.Syscall("close", [ast.Int(3)], ast.Int(0))


def test_init_and_timed_and_cleanup_commands_and_code() -> None:
    text = ("/* header\n comment */\n`../common/defaults.sh\nsysctl -q net.ipv4.tcp_sack=0`\n"
            "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 // trailing comment\n"
            "+0 `sysctl -q net.ipv4.tcp_timestamps=0`\n"
            "+0 %{ assert tcpi_snd_cwnd == 10 }%\n"
            "`/tmp/sysctl_restore_${PPID}.sh`\n")
    script = parse(text, "t.pkt")
    assert script.init_command == ast.Command("../common/defaults.sh\n"
                                              "sysctl -q net.ipv4.tcp_sack=0")
    assert [e.line for e in script.events] == [5, 6, 7, 8]
    assert script.events[1].action == ast.Command("sysctl -q net.ipv4.tcp_timestamps=0")
    assert script.events[2].action == ast.Code(" assert tcpi_snd_cwnd == 10 ")
    assert script.events[3].action == ast.Command("/tmp/sysctl_restore_${PPID}.sh")


def test_lexer_longest_match_rules() -> None:
    kinds = [(t.kind, t.text) for t in tokens("0x1f .5 1.2.3.4 -1 ... sackOK 1:1001 ::1")]
    assert kinds == [("HEX", "0x1f"), ("FLOAT", ".5"), ("IPV4", "1.2.3.4"), ("INT", "-1"),
                     ("ELLIPSIS", "..."), ("WORD", "sackOK"), ("INT", "1"), (":", ":"),
                     ("INT", "1001"), ("IPV6", "::1"), ("EOF", "")]


# --- shell commands: read, never run ---------------------------------------------------

def test_shell_sysctls_followed_through_a_referenced_script(tmp_path) -> None:
    common = tmp_path / "common"
    common.mkdir()
    (common / "defaults.sh").write_text(
        "#!/bin/bash\nip tcp_metrics flush all > /dev/null 2>&1\n"
        'sysctl -q net.ipv4.tcp_rmem="4096 540000 $((15*1024*1024))"\n'
        "sysctl -q net.ipv4.tcp_early_retrans=4 net.ipv4.tcp_recovery=1\n")
    fx = interpret("../common/defaults.sh\n"
                   "../common/set_sysctls.py /proc/sys/net/ipv4/tcp_wmem=\"4096 50000 4194304\" \\\n"
                   "    /proc/sys/net/ipv4/tcp_min_tso_segs=10\n"
                   "echo 0 > /proc/sys/net/ipv4/tcp_sack\nrm -rf /\n",
                   str(tmp_path / "sub"))
    assert fx.sysctls == [("net.ipv4.tcp_rmem", "4096 540000 15728640"),
                          ("net.ipv4.tcp_early_retrans", "4"), ("net.ipv4.tcp_recovery", "1"),
                          ("net.ipv4.tcp_wmem", "4096 50000 4194304"),
                          ("net.ipv4.tcp_min_tso_segs", "10"), ("net.ipv4.tcp_sack", "0")]
    assert fx.ignored == ["ip tcp_metrics flush all"]
    assert fx.unknown == ["rm -rf /"]
