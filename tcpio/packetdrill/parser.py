"""A parser for packetdrill's script language.

Written for tcpio from the grammar in packetdrill's ``parser.y`` (read, not
copied).  ``parse(text, path)`` returns an ``ast.Script``; a script that does
not parse raises ``ScriptError`` with the line number, like packetdrill's
"file:line: syntax error" messages.

    script   := option* [`init command`] event* [`cleanup command`]
    option   := --name[=value]
    event    := time action
    time     := [+]T | [+]T~[+]T | *              (T: seconds, int or float)
    action   := packet | syscall | `command` | %{ code }%
    packet   := (<|>) [(ip info)] [sport>dport] flags seq:end(len)
                [ack N] [win N] [urg N] [<option, ...> | <...>]
              | (<|>) [(ip info)] udp [sport>dport] (len)
              | (<|>) [(ip info)] icmp type [code] [mtu N] [[echoed]]
    syscall  := [...T] name(expr, ...) = expr [ERRNO] [(note)]
"""

from __future__ import annotations

from collections.abc import Iterator

from . import ast
from .lexer import ScriptError, Token, tokens

# The letters a flags word may hold (F S R P . E W U A), as packetdrill accepts them.
TCP_FLAG_CHARS = set("FSRPEWUA")
ECN_WORDS = {"noecn", "ect0", "ect1", "ce", "ect01"}


class Parser:
    def __init__(self, text: str, path: str = "<script>",
                 defines: dict[str, str] | None = None) -> None:
        self.path = path
        self.defines: dict[str, str] = dict(defines or {})
        self._tokens: Iterator[Token] = tokens(text, path, lambda: self.defines)
        self._buf: list[Token] = []
        self.last_line = 1

    # --- token plumbing --------------------------------------------------------
    def peek(self, k: int = 0) -> Token:
        while len(self._buf) <= k:
            tok = next(self._tokens, None)
            if tok is None:       # past the end: EOF again
                tok = Token("EOF", "", self.last_line)
            self._buf.append(tok)
        return self._buf[k]

    def next(self) -> Token:
        tok = self.peek()
        self._buf.pop(0)
        if tok.kind != "EOF":
            self.last_line = tok.line
        return tok

    def error(self, message: str, tok: Token | None = None) -> ScriptError:
        tok = tok if tok is not None else self.peek()
        # At the end of the file, blame the line the last token was on.
        line = self.last_line if tok.kind == "EOF" else tok.line
        return ScriptError(self.path, line, message)

    def unexpected(self, what: str) -> ScriptError:
        tok = self.peek()
        seen = "end of file" if tok.kind == "EOF" else repr(tok.text)
        return self.error(f"syntax error: expected {what}, found {seen}", tok)

    def is_word(self, *names: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "WORD" and (not names or tok.text in names)

    def is_char(self, ch: str, k: int = 0) -> bool:
        return self.peek(k).kind == ch

    def expect_char(self, ch: str) -> Token:
        if not self.is_char(ch):
            raise self.unexpected(repr(ch))
        return self.next()

    def expect_word(self, *names: str) -> Token:
        if not self.is_word(*names):
            raise self.unexpected(" or ".join(names) if names else "a word")
        return self.next()

    def expect_int(self, what: str = "an integer", lo: int | None = None,
                   hi: int | None = None) -> int:
        tok = self.peek()
        if tok.kind not in ("INT", "HEX"):
            raise self.unexpected(what)
        self.next()
        value = tok.value
        assert isinstance(value, int)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.error(f"{what} out of range: {value}", tok)
        return value

    # --- the script ---------------------------------------------------------------
    def parse(self) -> ast.Script:
        script = ast.Script(self.path)
        while self.peek().kind == "OPTION":
            name, value = self.option()
            script.options.append((name, value))
            if name == "define" and value is not None:
                sym, _, val = value.partition("=")
                self.defines[sym] = val
        script.defines = self.defines
        if self.peek().kind == "BACKQUOTE":
            tok = self.next()
            script.init_command = ast.Command(str(tok.value))
        while self.peek().kind != "EOF":
            if self.peek().kind == "BACKQUOTE" and self.peek(1).kind == "EOF":
                tok = self.next()
                script.events.append(ast.Event(tok.line, ast.EventTime(ast.RELATIVE, 0),
                                               ast.Command(str(tok.value))))
                continue
            script.events.append(self.event())
        return script

    def option(self) -> tuple[str, str | None]:
        tok = self.next()
        name = str(tok.value)
        if not self.is_char("="):
            return name, None
        self.next()
        val = self.next()
        if val.kind not in ("INT", "HEX", "FLOAT", "WORD", "STRING", "IPV4", "IPV6"):
            raise self.error(f"syntax error: bad value for option --{name}", val)
        text = str(val.value) if val.kind == "STRING" else val.text
        # a dashed word on the option's line: --ip_version=ipv4-mapped-ipv6
        while (val.kind == "WORD" and self.is_char("-") and self.peek(1).kind == "WORD"
               and self.peek(1).line == val.line):
            self.next()
            text = f"{text}-{self.next().text}"
        if val.kind == "WORD" and self.is_char("="):
            self.next()
            rhs = self.next()
            if rhs.kind not in ("WORD", "STRING", "BACKQUOTE", "INT", "HEX", "FLOAT"):
                raise self.error(f"syntax error: bad value for option --{name}", rhs)
            text = f"{text}={rhs.text}"
        return name, text

    # --- events -------------------------------------------------------------------
    def time_value(self) -> int:
        tok = self.peek()
        if tok.kind not in ("INT", "FLOAT"):
            raise self.unexpected("a time")
        self.next()
        assert isinstance(tok.value, (int, float))
        if tok.value < 0:
            raise self.error("negative time", tok)
        return round(tok.value * 1_000_000)

    def event_time(self) -> ast.EventTime:
        if self.is_char("*"):
            self.next()
            return ast.EventTime(ast.ANY)
        if self.is_char("+"):
            self.next()
            start = self.time_value()
            if self.is_char("~"):
                self.next()
                self.expect_char("+")
                return ast.EventTime(ast.RELATIVE_RANGE, start, self.time_value())
            return ast.EventTime(ast.RELATIVE, start)
        start = self.time_value()
        if self.is_char("~"):
            self.next()
            return ast.EventTime(ast.ABSOLUTE_RANGE, start, self.time_value())
        return ast.EventTime(ast.ABSOLUTE, start)

    def event(self) -> ast.Event:
        first = self.peek()
        if first.kind not in ("INT", "FLOAT", "+", "*"):
            raise self.unexpected("an event time")
        time = self.event_time()
        tok = self.peek()
        action: ast.Action
        if tok.kind in ("<", ">"):
            action = self.packet()
        elif tok.kind == "BACKQUOTE":
            self.next()
            action = ast.Command(str(tok.value))
        elif tok.kind == "CODE":
            self.next()
            action = ast.Code(str(tok.value))
        elif tok.kind in ("WORD", "ELLIPSIS"):
            action = self.syscall()
        else:
            raise self.unexpected("a packet, system call or command")
        if time.end_usecs is not None and time.end_usecs < time.usecs:
            raise self.error("time range is backwards", first)
        outbound = isinstance(action, (ast.TcpPacket, ast.UdpPacket, ast.IcmpPacket)) \
            and action.direction == ast.OUTBOUND
        if time.kind == ast.ANY and not outbound:
            raise self.error("event time <star> can only be used with outbound packets", first)
        if time.kind in (ast.ABSOLUTE_RANGE, ast.RELATIVE_RANGE) and not outbound:
            raise self.error("event time range can only be used with outbound packets", first)
        return ast.Event(first.line, time, action)

    # --- packets ------------------------------------------------------------------
    def packet(self) -> ast.Packet:
        direction = self.next().kind
        ip = self.ip_info()
        if self.is_word("udp"):
            self.next()
            ports = self.port_info()
            self.expect_char("(")
            length = self.expect_int("UDP payload length", 0, 0xFFFF)
            self.expect_char(")")
            return ast.UdpPacket(direction, length, ip, ports)
        if self.is_word("icmp"):
            return self.icmp(direction, ip)
        if self.is_word("encap"):
            raise self.error("unsupported: encapsulated packets (encap)")
        ports = self.port_info()
        flags_tok = self.peek()
        flags = self.flags()
        seq = self.expect_int("a TCP sequence number", 0, 0xFFFFFFFF)
        self.expect_char(":")
        end = self.expect_int("a TCP end sequence number", 0, 0xFFFFFFFF)
        self.expect_char("(")
        payload = self.expect_int("a TCP payload length", 0, 0xFFFF)
        self.expect_char(")")
        if end != seq + payload:
            raise self.error("inconsistent TCP sequence numbers and payload size", flags_tok)
        pkt = ast.TcpPacket(direction, flags, seq, end, payload, ip=ip, ports=ports)
        if self.is_word("ack"):
            self.next()
            pkt.ack = self.expect_int("a TCP ack sequence number", 0, 0xFFFFFFFF)
        if self.is_word("win"):
            self.next()
            pkt.win = self.expect_int("a TCP window value", 0, 0xFFFF)
        if self.is_word("urg"):
            self.next()
            pkt.urg = self.expect_int("a TCP urgent pointer", 0, 0xFFFF)
        if pkt.win is None and direction == ast.INBOUND:
            raise self.error("window must be specified for inbound packets", flags_tok)
        if self.is_char("<"):
            opt_tok = self.next()
            if self.peek().kind == "ELLIPSIS":
                self.next()
                self.expect_char(">")
                if direction != ast.OUTBOUND:
                    raise self.error("<...> for TCP options can only be used with "
                                     "outbound packets", opt_tok)
                pkt.options = None
            else:
                pkt.options = self.tcp_options()
        return pkt

    def ip_info(self) -> ast.IpInfo:
        info = ast.IpInfo()
        if not (self.is_char("(") or self.is_char("[")):
            return info
        close = ")" if self.next().kind == "(" else "]"
        while not self.is_char(close):
            if self.is_word(*ECN_WORDS):
                info.ecn = self.next().text
            elif self.is_word("tos"):
                self.next()
                info.tos = self.expect_int("a TOS value", 0, 0xFF)
            elif self.is_word("ttl"):
                self.next()
                info.ttl = self.expect_int("a TTL", 0, 0xFF)
            elif self.is_word("flowlabel"):
                self.next()
                info.flowlabel = self.expect_int("a flow label", 0, 0xFFFFF)
            elif self.is_char(","):
                self.next()
            else:
                raise self.unexpected("ip info (ecn, tos, ttl, flowlabel)")
        self.next()
        return info

    def port_info(self) -> tuple[int, int] | None:
        if self.peek().kind == "INT" and self.is_char(">", 1):
            src = self.expect_int("a source port", 0, 0xFFFF)
            self.next()
            return src, self.expect_int("a destination port", 0, 0xFFFF)
        return None

    def flags(self) -> str:
        tok = self.peek()
        if tok.kind == ".":
            self.next()
            return "."
        if tok.kind == "-":
            self.next()
            return ""
        if tok.kind == "WORD" and set(tok.text) <= TCP_FLAG_CHARS:
            self.next()
            if self.is_char("."):
                self.next()
                return tok.text + "."
            return tok.text
        raise self.unexpected("TCP flags")

    def tcp_options(self) -> list[ast.TcpOption]:
        opts: list[ast.TcpOption] = []
        while True:
            opts.append(self.tcp_option())
            if self.is_char(","):
                self.next()
                continue
            self.expect_char(">")
            return opts

    def tcp_option(self) -> ast.TcpOption:
        tok = self.peek()
        if tok.kind != "WORD":
            raise self.unexpected("a TCP option")
        self.next()
        name = tok.text
        if name in ("nop", "eol", "sackOK"):
            return ast.TcpOption(name)
        if name == "mss":
            return ast.TcpOption(name, (self.expect_int("mss value", 0, 0xFFFF),))
        if name == "wscale":
            return ast.TcpOption(name, (self.expect_int("window scale shift count", 0, 0xFF),))
        if name == "sack":
            blocks: list[int] = []
            while self.peek().kind == "INT" and self.is_char(":", 1):
                blocks.append(self.expect_int("TCP SACK left sequence number", 0, 0xFFFFFFFF))
                self.next()
                blocks.append(self.expect_int("TCP SACK right sequence number", 0, 0xFFFFFFFF))
            if not blocks:
                raise self.unexpected("a SACK block left:right")
            return ast.TcpOption(name, tuple(blocks))
        if name == "TS":
            self.expect_word("val")
            val = self.expect_int("ts val", 0, 0xFFFFFFFF)
            self.expect_word("ecr")
            return ast.TcpOption(name, (val, self.expect_int("ecr val", 0, 0xFFFFFFFF)))
        if name in ("FO", "FOEXP", "md5"):
            cookie = ""
            if self.peek().kind in ("WORD", "INT"):
                cookie = self.next().text
            try:
                raw = bytes.fromhex(cookie)
            except ValueError:
                raise self.error(f"bad hex blob {cookie!r} in {name} option", tok) from None
            return ast.TcpOption(name, tuple(raw))
        raise self.error(f"syntax error: unknown TCP option {name!r}", tok)

    def icmp(self, direction: str, ip: ast.IpInfo) -> ast.IcmpPacket:
        self.next()
        pkt = ast.IcmpPacket(direction, self.expect_word().text, ip=ip)
        if self.is_word() and not self.is_word("mtu"):
            pkt.code = self.next().text
        if self.is_word("mtu"):
            self.next()
            pkt.mtu = self.expect_int("an MTU", 0, 0xFFFFFFFF)
        if self.is_char("["):
            pkt.echoed = self.bracketed("[", "]", "']'")
        return pkt

    # --- system calls -------------------------------------------------------------
    def syscall(self) -> ast.Syscall:
        end: int | None = None
        if self.peek().kind == "ELLIPSIS":
            self.next()
            if self.is_char("+"):
                self.next()
            end = self.time_value()
        name = self.expect_word().text
        self.expect_char("(")
        args: list[ast.Expr] = []
        if not self.is_char(")"):
            args = self.expression_list(")")
        self.expect_char(")")
        if not self.is_char("="):
            raise self.unexpected("'=' and the expected result")
        self.next()
        call = ast.Syscall(name, args, self.expression(), end_usecs=end)
        if self.is_word():
            call.errno = self.next().text
        if self.is_char("("):
            call.note = self.bracketed("(", ")", "')' closing the note")
        return call

    def bracketed(self, open_: str, close: str, what: str) -> str:
        """The tokens up to the matching ``close``, as text (a note, an echoed header)."""
        self.next()
        depth = 1
        parts: list[str] = []
        while True:
            if self.peek().kind == "EOF":
                raise self.unexpected(what)
            tok = self.next()
            depth += (tok.kind == open_) - (tok.kind == close)
            if depth == 0:
                return " ".join(parts)
            parts.append(tok.text)

    def expression_list(self, close: str) -> list[ast.Expr]:
        items = [self.expression()]
        while self.is_char(","):
            self.next()
            if self.is_char(close):      # a trailing comma
                break
            items.append(self.expression())
        return items

    def expression(self) -> ast.Expr:
        lhs = self.primary()
        if self.is_char("=") and isinstance(lhs, (ast.Word, ast.Call)):
            self.next()
            return ast.Binary("=", lhs, self.expression())
        if self.is_char("|"):
            self.next()
            return ast.Binary("|", lhs, self.expression())
        return lhs

    def primary(self) -> ast.Expr:
        tok = self.peek()
        if tok.kind == "ELLIPSIS":
            self.next()
            return ast.Ellipsis_()
        if tok.kind in ("INT", "HEX"):
            self.next()
            assert isinstance(tok.value, int)
            return ast.Int(tok.value, tok.kind == "HEX")
        if tok.kind == "STRING":
            self.next()
            expr: ast.Expr = ast.Str(str(tok.value))
            if self.peek().kind == "ELLIPSIS":
                self.next()
                return ast.Str(str(tok.value), ellipsis=True)
            while self.peek().kind == "STRING":
                expr = ast.Binary(".", expr, ast.Str(str(self.next().value)))
            return expr
        if tok.kind == "WORD":
            self.next()
            if self.is_char("("):
                self.next()
                args = [] if self.is_char(")") else self.expression_list(")")
                self.expect_char(")")
                return ast.Call(tok.text, args)
            return ast.Word(tok.text)
        if tok.kind == "[":
            self.next()
            items = [] if self.is_char("]") else self.expression_list("]")
            self.expect_char("]")
            return ast.List(items)
        if tok.kind == "{":
            self.next()
            items = [] if self.is_char("}") else self.expression_list("}")
            self.expect_char("}")
            return ast.Struct(items)
        raise self.unexpected("an expression")


def parse(text: str, path: str = "<script>", defines: dict[str, str] | None = None
          ) -> ast.Script:
    """Parse a whole script; ``defines`` are the command line's ``-D NAME=VALUE``."""
    return Parser(text, path, defines).parse()


def parse_file(path: str, defines: dict[str, str] | None = None) -> ast.Script:
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse(f.read(), path, defines)
