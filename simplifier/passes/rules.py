"""The rewrite rules, as data: one line of :data:`RULES` per rule.

A rule is a name, a left and a right pattern written in the program language
(:mod:`simplifier.passes.patterns`), and how exact the identity is under each semantics
(``math`` and ``hero``; :mod:`simplifier.passes.conditions`), with the identity itself in a
trailing comment. Constant folding is the rule whose right side is computed
(:func:`fold_constant`). The driver that applies them is :mod:`simplifier.passes.rewrite`.

Levels are stated for finite real values: ``exact`` means both sides are the same function,
defined at the same points; ``almost-everywhere`` means equal where the condition holds (a rule
that drops a variable, like ``x - x -> 0``, needs that variable to be finite); ``approximate``
states a bound. Overflow of float intermediates (to inf, then NaN) is outside these levels.

>>> RULES_BY_NAME["div-abs"].lhs_text, RULES_BY_NAME["div-abs"].math.condition
('x / abs(x)', '{x} != 0')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from math import isqrt

import numpy as np

from simplifier.ir import Node
from simplifier.numeric import Semantics
from simplifier.ops import EPS, OPS, Kind
from simplifier.passes.conditions import (
    ABOVE_MINUS_ONE,
    AT_LEAST_ONE,
    EXACT,
    FINITE,
    NONNEGATIVE,
    NONZERO,
    NOT_MINUS_EPS,
    OPEN_UNIT,
    POSITIVE,
    UNIT,
    Exactness,
    Relation,
    holds_where,
    within,
)
from simplifier.passes.patterns import Pattern, pattern

__all__ = [  # the relations are re-exported for simplifier.symbolic.fold
    "ABOVE_MINUS_ONE",
    "AT_LEAST_ONE",
    "EPS_FRACTION",
    "EXACT",
    "FINITE",
    "NONNEGATIVE",
    "NONZERO",
    "NOT_MINUS_EPS",
    "OPEN_UNIT",
    "POSITIVE",
    "RULES",
    "RULES_BY_NAME",
    "UNIT",
    "Relation",
    "Rule",
    "evaluate_constant",
    "fold_constant",
    "printable",
    "rw",
]

EPS_FRACTION = Fraction(1, 10**8)  # get_eps() and the hero protection, exactly


# -- constant folding ----------------------------------------------------------------------------
def printable(value: Fraction) -> bool:
    """Whether a constant prints exactly (a finite decimal): only those are folded into text."""
    den = value.denominator
    for prime in (2, 5):
        while den % prime == 0:
            den //= prime
    return den == 1 and abs(value.numerator) < 10**30 and value.denominator < 10**30


def _exact_sqrt(v: Fraction) -> Fraction | None:
    if v < 0:
        return None
    num, den = v.numerator, v.denominator
    rn, rd = isqrt(num), isqrt(den)
    return Fraction(rn, rd) if rn * rn == num and rd * rd == den else None


def evaluate_constant(op: str, args: tuple[Fraction, ...], semantics: Semantics) -> Fraction | None:
    """The exact value of ``op`` on constants, when it is a printable rational; else None.

    >>> evaluate_constant("mul", (Fraction("0.899"), Fraction("1.109")), "math")
    Fraction(996991, 1000000)
    """
    hero = semantics == "hero"
    value: Fraction | None = None
    if op == "get_eps":
        value = EPS_FRACTION
    elif op in ("add", "sub", "mul", "maximum", "minimum", "negative", "abs", "sign"):
        arithmetic: dict[str, Callable[..., Fraction]] = {
            "add": lambda a, b: a + b,
            "sub": lambda a, b: a - b,
            "mul": lambda a, b: a * b,
            "maximum": max,
            "minimum": min,
            "negative": lambda a: -a,
            "abs": abs,
            "sign": lambda a: Fraction((a > 0) - (a < 0)),
        }
        value = arithmetic[op](*args)
    elif op in ("square", "cube"):
        value = args[0] ** (2 if op == "square" else 3)
    elif op == "interp":
        x, y, a = args
        value = (1 - a) * x + a * y
    elif op in ("div", "reciprocal"):
        num, den = (args[0], args[1]) if op == "div" else (Fraction(1), args[0])
        if hero and op == "div":
            den += EPS_FRACTION
        value = num / den if den != 0 else None
    elif op == "sqrt":
        value = _exact_sqrt(abs(args[0]) if hero else args[0])
    elif op == "power":
        base, exponent = args
        if exponent.denominator == 1 and abs(exponent) <= 64 and (base != 0 or exponent >= 0):
            value = base ** int(exponent)
    return value if value is not None and printable(value) else None


def fold_constant(node: Node, semantics: Semantics) -> Node | None:
    """Constant folding as a computed right-hand side: ``f(k, ...)`` -> its exact value."""
    if OPS[node.op].kind is Kind.CONSTANT and node.op != "get_eps":
        return None
    values = tuple(a.leaf for a in node.args)
    assert all(isinstance(v, Fraction) for v in values)
    value = evaluate_constant(node.op, values, semantics)  # type: ignore[arg-type]
    return None if value is None else Node.make("const", (), value)


# -- the rules -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rule:
    """``lhs -> rhs`` with its exactness under ``math`` and ``hero`` (None: does not hold).

    ``nonconstant`` names pattern variables that must not match a constant (where they would,
    the node is all constants: constant folding's case, and a rule that only reorders
    constants would cycle on a product it cannot fold).
    """

    name: str
    lhs_text: str
    rhs_text: str
    math: Exactness | None
    hero: Exactness | None
    lhs: Pattern = field(compare=False)
    rhs: Pattern | Callable[[Node, Semantics], Node | None] = field(compare=False)
    nonconstant: tuple[str, ...] = ()

    def applies(self, env: Mapping[str, Node]) -> bool:
        """Whether bindings of the left side satisfy the rule's side condition."""
        return not any(env[v].op == "const" for v in self.nonconstant)

    def exactness(self, semantics: Semantics) -> Exactness | None:
        return self.hero if semantics == "hero" else self.math


def rw(
    name: str,
    lhs: str,
    rhs: str | Callable[[Node, Semantics], Node | None],
    math: Exactness | None,
    hero: Exactness | None,
    *,
    nonconstant: tuple[str, ...] = (),
) -> Rule:
    """A rule from its pattern texts (or a function computing the right-hand side)."""
    rhs_text = rhs if isinstance(rhs, str) else "its value"
    rhs_pattern = pattern(rhs) if isinstance(rhs, str) else rhs
    return Rule(name, lhs, rhs_text, math, hero, pattern(lhs), rhs_pattern, nonconstant)


FINITE_X = holds_where(FINITE, "x")
FINITE_Y = holds_where(FINITE, "y")
FINITE_A = holds_where(FINITE, "a")
NONZERO_X = holds_where(NONZERO, "x")
# Under hero, x / |x| is x / (|x| + 1e-8): off sign(x) by 1e-8 / (|x| + 1e-8) < 1e-8 / |x|.
SIGN_HERO = within("within 1e-8/|{x}| of sign({x})", lambda v: EPS / (np.abs(v["x"]) + EPS))
DIV_ONE_HERO = within("within 1e-8*|{x}| of {x}", lambda v: np.abs(v["x"]) * EPS)

# fmt: off
RULES: tuple[Rule, ...] = (
    rw("fold-constant", "f(k, ...)", fold_constant, EXACT, EXACT),  # f(k1, k2) = its exact value
    rw("mul-one", "x * 1", "x", EXACT, EXACT),  # x * 1 = x
    rw("add-zero", "x + 0", "x", EXACT, EXACT),  # x + 0 = x
    rw("sub-zero", "x - 0", "x", EXACT, EXACT),  # x - 0 = x
    rw("zero-sub", "0 - x", "-x", EXACT, EXACT),  # 0 - x = -x
    rw("div-one", "x / 1", "x", EXACT, DIV_ONE_HERO),  # x / 1 = x (hero: x / (1 + 1e-8))
    rw("sub-self", "x - x", "0", FINITE_X, FINITE_X),  # x - x = 0 for finite x
    rw("neg-neg", "-(-x)", "x", EXACT, EXACT),  # -(-x) = x
    rw("sign-sign", "sign(sign(x))", "sign(x)", EXACT, EXACT),  # sign(sign(x)) = sign(x)
    rw("abs-abs", "abs(abs(x))", "abs(x)", EXACT, EXACT),  # ||x|| = |x|
    rw("abs-neg", "abs(-x)", "abs(x)", EXACT, EXACT),  # |-x| = |x|
    rw("sqrt-mul-self", "sqrt(x * x)", "abs(x)", EXACT, EXACT),  # sqrt(x*x) = |x| (hero: sqrt|x*x|)
    rw("sqrt-square", "sqrt(square(x))", "abs(x)", EXACT, EXACT),  # sqrt(x**2) = |x| (hero too)
    rw("div-abs", "x / abs(x)", "sign(x)", NONZERO_X, SIGN_HERO),  # x / |x| = sign(x), x != 0
    rw("abs-div", "abs(x) / x", "sign(x)", NONZERO_X, None),  # |x| / x = sign(x), x != 0
    rw("interp-same", "interp(x, x, a)", "x", FINITE_A, FINITE_A),  # (1-a)x + ax = x
    rw("interp-zero", "interp(x, y, 0)", "x", FINITE_Y, FINITE_Y),  # 1x + 0y = x
    rw("interp-one", "interp(x, y, 1)", "y", FINITE_X, FINITE_X),  # 0x + 1y = y
    rw("interp-merge", "interp(x, interp(x, y, a), b)", "interp(x, y, a * b)", EXACT, EXACT),  # (1-b)x + b((1-a)x + ay) = (1-ab)x + ab y  # noqa: E501
    rw("interp-merge-left", "interp(interp(x, y, k1), y, k2)", "interp(x, y, 1 - (1 - k1) * (1 - k2))", EXACT, EXACT),  # (1-b)((1-a)x + ay) + by = (1-a)(1-b)x + (1 - (1-a)(1-b))y  # noqa: E501
    rw("mul-const-const", "(x * k1) * k2", "x * (k1 * k2)", EXACT, EXACT, nonconstant=("x",)),  # (x k1) k2 = x (k1 k2)  # noqa: E501
)
# fmt: on
RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}
