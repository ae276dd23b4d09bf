"""The tokens of packetdrill's script language.

Written from the token rules of packetdrill's ``lexer.l`` (read, not copied):
the longest match wins and, between matches of equal length, the earlier rule
(so ``0x10`` is a hex integer, not a word, and ``1.2.3.4`` an address, not a
float).  Keywords (``ack``, ``win``, ``mss``...) come out as words: the parser
knows where each one is a keyword.  A word that names a ``-D``/``--define``
symbol is replaced by its value, typed the way packetdrill types it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class ScriptError(Exception):
    """A script that does not parse: ``path:line: message``."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


@dataclass
class Token:
    kind: str          # INT HEX FLOAT WORD STRING BACKQUOTE CODE OPTION ELLIPSIS IPV4 IPV6 EOF
    text: str          # or the punctuation character itself
    line: int
    value: object = None

    def __repr__(self) -> str:
        return f"{self.kind}({self.text!r})@{self.line}"


# (kind, pattern) in flex rule order: ties go to the earlier one.
_RULES: list[tuple[str, re.Pattern[str]]] = [(k, re.compile(p, re.DOTALL)) for k, p in [
    ("ELLIPSIS", r"\.\.\."),
    ("OPTION", r"--[a-zA-Z0-9_]+"),
    ("FLOAT", r"-?[0-9]*\.[0-9]+"),
    ("INT", r"-?[0-9]+"),
    ("HEX", r"0x[0-9a-fA-F]+"),
    ("WORD", r"[a-zA-Z0-9_]+#?"),
    ("STRING", r'"(?:\\.|[^"\\])*"'),
    ("BACKQUOTE", r"`(?:\\.|[^`\\])*`"),
    ("CHAR", r"[^ \t\r\n]"),
    ("SPACE", r"[ \t\r\n]+"),
    ("COMMENT", r"//[^\n]*\n?"),
    ("COMMENT", r"/\*.*?\*/"),
    ("CODE", r"%\{.*?\}%"),
    ("IPV4", r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+"),
    ("IPV6", r"[0-9a-fA-F:]*:[0-9a-fA-F:.]*[0-9a-fA-F.:]"),
]]

def _is_ipv6(text: str) -> bool:
    """An IPv6 address has "::" or eight groups (so 1:1001 is no address)."""

    if "::" not in text and text.count(":") != 7:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "`": "`"}


def unquote(text: str) -> str:
    """The body of a "..." or `...` token, backslash escapes resolved."""
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body, flags=re.DOTALL)


def define_token(name: str, value: str, line: int) -> Token:
    """A defined symbol's value as the token packetdrill's word() makes of it."""
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return Token("STRING", value, line, unquote(value))
    if value.startswith("`") and value.endswith("`") and len(value) >= 2:
        return Token("BACKQUOTE", value, line, value[1:-1])
    try:
        return Token("INT", value, line, int(value, 0))
    except ValueError:
        return Token("WORD", value, line, value)


def tokens(text: str, path: str = "<script>",
           defines: Callable[[], dict[str, str]] | None = None) -> Iterator[Token]:
    """Lazily, so options parsed so far (``--define``) apply to what follows."""
    pos, line, n = 0, 1, len(text)
    while pos < n:
        best_kind, best_end = "", pos
        for kind, rx in _RULES:
            m = rx.match(text, pos)
            if m is not None and m.end() > best_end:
                if kind == "IPV6" and not _is_ipv6(m.group()):
                    continue
                best_kind, best_end = kind, m.end()
        if best_end == pos + 1 and text[pos] in "\"`" or text.startswith(("/*", "%{"), pos) \
                and best_kind not in ("COMMENT", "CODE"):
            what = {"\"": "string", "`": "command"}.get(text[pos], "comment or code block")
            raise ScriptError(path, line, f"unterminated {what} starting {text[pos:pos + 20]!r}")
        lexeme = text[pos:best_end]
        start_line = line
        line += lexeme.count("\n")
        pos = best_end
        if best_kind in ("SPACE", "COMMENT"):
            continue
        if best_kind == "CHAR":
            yield Token(lexeme, lexeme, start_line)
        elif best_kind == "INT":
            yield Token("INT", lexeme, start_line, int(lexeme))
        elif best_kind == "HEX":
            yield Token("HEX", lexeme, start_line, int(lexeme, 16))
        elif best_kind == "FLOAT":
            yield Token("FLOAT", lexeme, start_line, float(lexeme))
        elif best_kind == "STRING":
            yield Token(best_kind, lexeme, start_line, unquote(lexeme))
        elif best_kind == "BACKQUOTE":
            # A shell command: backslashes are the shell's to read.
            yield Token(best_kind, lexeme, start_line, lexeme[1:-1])
        elif best_kind == "CODE":
            yield Token("CODE", lexeme, start_line, lexeme[2:-2])
        elif best_kind == "OPTION":
            yield Token("OPTION", lexeme, start_line, lexeme[2:])
        elif best_kind == "WORD":
            table = defines() if defines is not None else {}
            if lexeme in table:
                yield define_token(lexeme, table[lexeme], start_line)
            else:
                yield Token("WORD", lexeme, start_line, lexeme)
        else:
            yield Token(best_kind, lexeme, start_line, lexeme)
    yield Token("EOF", "", line)
