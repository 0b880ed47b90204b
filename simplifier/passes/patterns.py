"""The pattern language of the rewrite rules: patterns written in the program language.

Pattern variables ``x y z a b`` match any value and ``k k1 k2`` match constants only;
``f(k, ...)`` (any op applied to constants only) is the left side of constant folding.

>>> p = pattern("x / abs(x)")
>>> render_pattern(p, {"x": ("g + 1", 1)})
'(g + 1) / abs(g + 1)'
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from simplifier.ir import Node
from simplifier.ops import resolve
from simplifier.printer import ATOM, Text, apply_text, number_text


@dataclass(frozen=True, slots=True)
class PVar:
    name: str
    const_only: bool


@dataclass(frozen=True, slots=True)
class PConst:
    value: Fraction


@dataclass(frozen=True, slots=True)
class POp:
    op: str
    args: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class PConstCall:
    """Any op applied to constants only (``f(k, ...)``): the left side of constant folding."""


Pattern = PVar | PConst | POp | PConstCall
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "power"}


def pattern(text: str) -> Pattern:
    """Parse a pattern written in the program language.

    >>> pattern("x / abs(x)")
    POp(op='div', args=(PVar(name='x', const_only=False), POp(op='abs', args=(PVar(name='x', const_only=False),))))
    """  # noqa: E501
    if text == "f(k, ...)":
        return PConstCall()

    def build(e: ast.expr) -> Pattern:
        if isinstance(e, ast.BinOp) and type(e.op) in _BINOPS:
            return POp(_BINOPS[type(e.op)], (build(e.left), build(e.right)))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            inner = build(e.operand)
            return PConst(-inner.value) if isinstance(inner, PConst) else POp("negative", (inner,))
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            op = resolve(e.func.id)
            if op is None:
                raise ValueError(f"unknown function {e.func.id!r} in pattern {text!r}")
            return POp(op.name, tuple(build(a) for a in e.args))
        if isinstance(e, ast.Name):
            return PVar(e.id, e.id.startswith("k"))
        if isinstance(e, ast.Constant) and isinstance(e.value, int | float):
            return PConst(Fraction(Decimal(repr(e.value))))
        raise ValueError(f"unsupported pattern syntax in {text!r}")

    return build(ast.parse(text, mode="eval").body)


def instantiate(p: Pattern, env: Mapping[str, Node]) -> Node:
    if isinstance(p, PVar):
        return env[p.name]
    if isinstance(p, PConst):
        return Node.make("const", (), p.value)
    if isinstance(p, PConstCall):
        raise ValueError("f(k, ...) is only a left-hand pattern")
    return Node.make(p.op, tuple(instantiate(a, env) for a in p.args))


def render_pattern(p: Pattern, env: Mapping[str, Text]) -> str:
    """A pattern as text, its variables replaced by the given printed texts (parenthesised
    where their precedence needs it)."""
    if isinstance(p, PConstCall):
        return "f(k, ...)"

    def text(q: Pattern) -> Text:
        if isinstance(q, PVar):
            return env.get(q.name, (q.name, ATOM))
        if isinstance(q, PConst):
            return number_text(q.value)
        if isinstance(q, PConstCall):
            return "f(k, ...)", ATOM
        return apply_text(q.op, [text(a) for a in q.args])

    return text(p)[0]
