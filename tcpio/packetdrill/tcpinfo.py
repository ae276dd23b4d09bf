"""``%{ assert tcpi_snd_cwnd == 10, tcpi_snd_cwnd }%`` blocks: TCP_INFO checks.

packetdrill runs such blocks in Python with the socket's ``struct tcp_info``
taken at the event's time (fields as ``tcpi_*`` names, TCP_CA_* constants).
Here the block is parsed with Python's ``ast`` and only assertions over names,
numbers, comparisons, arithmetic and boolean logic are evaluated (no calls, no
attribute access, nothing else a script could make run); the fields come from
the core TcpSock.  A field tcpio does not keep makes the script unsupported.
"""

from __future__ import annotations

import ast as pyast
import operator
from collections.abc import Callable
from typing import Any

from tcpio.core.tcp.sock import TcpSock
from tcpio.core.tcp.tcp_info import tcp_get_info

CA_STATES = {"TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2,
             "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4}


class CodeError(Exception):
    """The block uses something this evaluator does not do (unsupported)."""


class AssertFailed(Exception):
    pass


def tcp_info(sk: TcpSock) -> dict[str, Any]:
    """The tcp_info fields tcpio can answer, by their tcpi_ names (the core's
    tcp_get_info, Linux's tcp_get_info)."""
    return dict(tcp_get_info(sk))


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    pyast.Add: operator.add, pyast.Sub: operator.sub, pyast.Mult: operator.mul,
    pyast.FloorDiv: operator.floordiv, pyast.Div: operator.truediv, pyast.Mod: operator.mod,
    pyast.BitAnd: operator.and_, pyast.BitOr: operator.or_,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    pyast.Eq: operator.eq, pyast.NotEq: operator.ne, pyast.Lt: operator.lt,
    pyast.LtE: operator.le, pyast.Gt: operator.gt, pyast.GtE: operator.ge,
}


def _eval(node: pyast.AST, names: dict[str, Any]) -> Any:
    if isinstance(node, pyast.Constant) and isinstance(node.value, (int, float, str)):
        return node.value
    if isinstance(node, pyast.Name):
        if node.id in names:
            return names[node.id]
        raise CodeError(f"tcp_info field {node.id} (tcpio does not keep it)")
    if isinstance(node, pyast.UnaryOp) and isinstance(node.op, (pyast.USub, pyast.Not)):
        v = _eval(node.operand, names)
        return -v if isinstance(node.op, pyast.USub) else not v
    if isinstance(node, pyast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_eval(node.left, names), _eval(node.right, names))
    if isinstance(node, pyast.BoolOp):
        values = [_eval(v, names) for v in node.values]
        return all(values) if isinstance(node.op, pyast.And) else any(values)
    if isinstance(node, pyast.Compare) and all(type(o) in _CMPOPS for o in node.ops):
        left = _eval(node.left, names)
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, names)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, pyast.Tuple):
        return tuple(_eval(e, names) for e in node.elts)
    raise CodeError(f"python construct {type(node).__name__} in a %{{ }}% block")


def run_block(code: str, sk: TcpSock, env: dict[str, Any] | None = None) -> None:
    """Evaluate the block's assertions; AssertFailed or CodeError on failure.
    A ``NAME = expression`` (the same restricted expressions) binds NAME in
    ``env``, which the script's later blocks see, as packetdrill's blocks
    share one Python namespace (``TCP_INFINITE_SSTHRESH = 0x7fffffff``)."""
    try:
        tree = pyast.parse(code.strip())
    except SyntaxError as e:
        raise CodeError(f"python syntax: {e.msg}") from None
    names = dict(CA_STATES)
    if env is not None:
        names.update(env)
    names.update(tcp_info(sk))
    for stmt in tree.body:
        if isinstance(stmt, pyast.Pass):
            continue
        if (isinstance(stmt, pyast.Assign) and env is not None and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], pyast.Name)):
            env[stmt.targets[0].id] = names[stmt.targets[0].id] = _eval(stmt.value, names)
            continue
        if not isinstance(stmt, pyast.Assert):
            raise CodeError(f"python statement {type(stmt).__name__} in a %{{ }}% block")
        if not _eval(stmt.test, names):
            try:
                msg = "" if stmt.msg is None else f": {_eval(stmt.msg, names)}"
            except (CodeError, TypeError, ValueError):
                msg = ""
            raise AssertFailed(f"assert {pyast.unparse(stmt.test)} failed{msg}")
