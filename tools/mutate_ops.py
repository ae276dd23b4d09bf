"""Mutation operators for tools/mutate.py: find the mutants of a module, apply one.

A mutant is one small change to one place in the source, of the kinds a
slip of the hand makes in a protocol implementation:

    cmp      a comparison flipped at its boundary or negated
             (< <=, > >=, == !=, is / is not, in / not in), and the
             sequence-space comparisons before() <-> after()
    const    an integer constant moved by +1 or -1
    boolop   `and` <-> `or`
    negate   an if/while/conditional-expression test negated
    return   `return X` -> `return None`
    delete   a simple statement inside a function replaced by `pass`

Enumeration is deterministic: the same source gives the same mutants in the
same order, so a mutant is named by its index in that order, and applying it
re-parses the source and changes the node at that index.  A mutant's ``key``
(its stable name for the ignore file) depends on the function it sits in, the
operator and the source text of the mutated node, not on line numbers, so it
survives edits elsewhere in the file.

Left alone on purpose (noise, not tests): docstrings, type annotations,
``if TYPE_CHECKING:`` blocks, ``__slots__``, ``__repr__``, imports, logging
calls, asserts, and statements at module or class level other than constants.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_CMP_FLIP: dict[type, type] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
    ast.In: ast.NotIn, ast.NotIn: ast.In,
}
_CMP_TEXT = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
             ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
             ast.NotIn: "not in"}
_SEQ_FLIP = {"before": "after", "after": "before"}
_LOG_NAMES = {"log", "logger", "logging", "warnings"}
_SKIP_FUNCS = {"__repr__", "__str__"}


@dataclass(frozen=True)
class Mutant:
    index: int          # position in enumeration order (what apply() takes)
    op: str             # cmp | const | boolop | negate | return | delete
    desc: str           # e.g. "< -> <=", "16 -> 17"
    line: int           # the line of the enclosing statement (what coverage records)
    qualname: str       # enclosing function/class, "<module>" at top level
    key: str            # stable name: survives edits elsewhere in the file

    def label(self, path: str) -> str:
        return f"{path}:{self.line} [{self.op}] {self.desc} (in {self.qualname})"


# A mutation point: (op, desc, enclosing statement line, qualname, node source, apply).
_Point = tuple[str, str, int, str, str, Callable[[], None]]


def _is_log_call(node: ast.AST) -> bool:
    if isinstance(node, ast.Expr):
        node = node.value
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    while isinstance(f, ast.Attribute):
        f = f.value
    return isinstance(f, ast.Name) and f.id in _LOG_NAMES


def _is_docstring(body: list[ast.stmt], i: int) -> bool:
    s = body[i]
    return (i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
            and isinstance(s.value.value, str))


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


class _Walker:
    """Yields the mutation points of a tree in a fixed order."""

    def __init__(self, source: str) -> None:
        self.source = source

    def seg(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or ast.unparse(node)
        return " ".join(text.split())

    def points(self, tree: ast.Module) -> Iterator[_Point]:
        yield from self.body(tree.body, "<module>", in_func=False)

    def body(self, stmts: list[ast.stmt], qual: str, in_func: bool) -> Iterator[_Point]:
        for i, s in enumerate(stmts):
            if _is_docstring(stmts, i) or isinstance(s, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(s, (ast.Assert, ast.Global, ast.Nonlocal, ast.Pass)):
                continue
            if _is_log_call(s):
                continue
            if isinstance(s, ast.If) and _is_type_checking(s):
                continue
            if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if s.name in _SKIP_FUNCS:
                    continue
                name = s.name if qual == "<module>" else f"{qual}.{s.name}"
                for d in s.args.defaults + [d for d in s.args.kw_defaults if d]:
                    yield from self.expr(d, s.lineno, qual)
                yield from self.body(s.body, name, in_func=True)
                continue
            if isinstance(s, ast.ClassDef):
                name = s.name if qual == "<module>" else f"{qual}.{s.name}"
                yield from self.body(s.body, name, in_func=False)
                continue
            if isinstance(s, (ast.Assign, ast.AnnAssign)) and _assigns_slots(s):
                continue
            if in_func and _deletable(s) and not (i == len(stmts) - 1 and _is_tail_noop(s)):
                yield ("delete", "statement -> pass", s.lineno, qual, self.seg(s),
                       _replace_with_pass(stmts, i))
            yield from self.stmt(s, qual, in_func)

    def stmt(self, s: ast.stmt, qual: str, in_func: bool) -> Iterator[_Point]:
        line = s.lineno
        if isinstance(s, (ast.If, ast.While)):
            yield ("negate", "condition negated", line, qual, self.seg(s.test),
                   _negate(s, "test"))
            yield from self.expr(s.test, line, qual)
            yield from self.body(s.body, qual, in_func)
            yield from self.body(s.orelse, qual, in_func)
            return
        if isinstance(s, ast.Return):
            if s.value is not None and not (isinstance(s.value, ast.Constant)
                                            and s.value.value is None):
                yield ("return", "return value -> None", line, qual, self.seg(s),
                       _set_attr(s, "value", ast.Constant(None)))
                yield from self.expr(s.value, line, qual)
            return
        if isinstance(s, (ast.For, ast.AsyncFor)):
            yield from self.expr(s.iter, line, qual)
            yield from self.body(s.body, qual, in_func)
            yield from self.body(s.orelse, qual, in_func)
            return
        if isinstance(s, (ast.With, ast.AsyncWith)):
            for item in s.items:
                yield from self.expr(item.context_expr, line, qual)
            yield from self.body(s.body, qual, in_func)
            return
        if isinstance(s, ast.Try):
            yield from self.body(s.body, qual, in_func)
            for h in s.handlers:
                yield from self.body(h.body, qual, in_func)
            yield from self.body(s.orelse, qual, in_func)
            yield from self.body(s.finalbody, qual, in_func)
            return
        if isinstance(s, ast.AnnAssign):
            if s.value is not None:
                yield from self.expr(s.value, line, qual)
            return
        # Simple statements: mutate the expressions they hold.
        for field in ("value", "targets", "target", "exc", "cause", "msg"):
            v = getattr(s, field, None)
            if isinstance(v, list):
                for x in v:
                    if field != "targets" or isinstance(x, ast.Subscript):
                        yield from self.expr(x, line, qual)
            elif isinstance(v, ast.expr) and field != "target":
                yield from self.expr(v, line, qual)

    def expr(self, root: ast.expr, line: int, qual: str) -> Iterator[_Point]:
        """Points in an expression, pre-order, left to right."""
        stack: list[ast.AST] = [root]
        while stack:
            n = stack.pop()
            if _is_log_call(n) or isinstance(n, (ast.Lambda, ast.JoinedStr)):
                continue
            if isinstance(n, ast.Compare):
                for k, o in enumerate(n.ops):
                    flip = _CMP_FLIP[type(o)]
                    yield ("cmp", f"{_CMP_TEXT[type(o)]} -> {_CMP_TEXT[flip]}", line, qual,
                           self.seg(n), _flip_cmp(n, k, flip))
            elif isinstance(n, ast.BoolOp):
                other = ast.Or if isinstance(n.op, ast.And) else ast.And
                desc = "and -> or" if other is ast.Or else "or -> and"
                yield ("boolop", desc, line, qual, self.seg(n), _set_attr(n, "op", other()))
            elif isinstance(n, ast.IfExp):
                yield ("negate", "conditional negated", line, qual, self.seg(n.test),
                       _negate(n, "test"))
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) \
                    and n.func.id in _SEQ_FLIP and len(n.args) == 2:
                new = _SEQ_FLIP[n.func.id]
                yield ("cmp", f"{n.func.id}() -> {new}()", line, qual, self.seg(n),
                       _set_attr(n.func, "id", new))
            elif isinstance(n, ast.Constant) and type(n.value) is int:
                for d in (1, -1):
                    yield ("const", f"{n.value} -> {n.value + d}", line, qual,
                           self.seg(n), _set_attr(n, "value", n.value + d))
            stack.extend(reversed(list(_expr_children(n))))


def _expr_children(n: ast.AST) -> Iterator[ast.expr]:
    for c in ast.iter_child_nodes(n):
        if isinstance(c, ast.expr):
            yield c
        elif isinstance(c, (ast.keyword, ast.comprehension)):
            yield from _expr_children(c)


def _assigns_slots(s: ast.Assign | ast.AnnAssign) -> bool:
    targets = s.targets if isinstance(s, ast.Assign) else [s.target]
    return any(isinstance(t, ast.Name) and t.id == "__slots__" for t in targets)


def _is_tail_noop(s: ast.stmt) -> bool:
    """A bare ``return``/``return None``/``continue`` ending its block: deleting
    it changes nothing (or only where a fall-through follows, which is rare
    enough that the noise is not worth it)."""
    if isinstance(s, ast.Continue):
        return True
    return isinstance(s, ast.Return) and (
        s.value is None or (isinstance(s.value, ast.Constant) and s.value.value is None))


def _deletable(s: ast.stmt) -> bool:
    return isinstance(s, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Raise,
                          ast.Delete, ast.Return, ast.Continue, ast.Break))


def _replace_with_pass(stmts: list[ast.stmt], i: int) -> Callable[[], None]:
    def apply() -> None:
        stmts[i] = ast.copy_location(ast.Pass(), stmts[i])
    return apply


def _negate(node: ast.AST, field: str) -> Callable[[], None]:
    def apply() -> None:
        test = getattr(node, field)
        setattr(node, field, ast.copy_location(ast.UnaryOp(ast.Not(), test), test))
    return apply


def _flip_cmp(node: ast.Compare, k: int, flip: type) -> Callable[[], None]:
    def apply() -> None:
        node.ops[k] = flip()
    return apply


def _set_attr(node: ast.AST, field: str, value: object) -> Callable[[], None]:
    def apply() -> None:
        if isinstance(value, ast.AST):
            ast.copy_location(value, node)
        setattr(node, field, value)
    return apply


def enumerate_mutants(source: str) -> list[Mutant]:
    """Every mutant of ``source``, in the fixed order apply() uses."""
    out: list[Mutant] = []
    seen: dict[str, int] = {}
    for i, (op, desc, line, qual, seg, _apply) in enumerate(
            _Walker(source).points(ast.parse(source))):
        base = f"{qual}|{op}|{desc}|{seg}"
        n = seen.get(base, 0)
        seen[base] = n + 1
        key = f"{qual}:{op}:{hashlib.sha1(f'{base}|{n}'.encode()).hexdigest()[:10]}"
        out.append(Mutant(i, op, desc, line, qual, key))
    return out


def mutated_tree(source: str, index: int) -> ast.Module:
    """The tree of ``source`` with mutant ``index`` applied."""
    tree = ast.parse(source)
    for i, point in enumerate(_Walker(source).points(tree)):
        if i == index:
            point[5]()
            return ast.fix_missing_locations(tree)
    raise IndexError(f"no mutant {index}")
