"""Deciding ``expr == 0`` over the reals: SymPy first, then z3 for piecewise functions.

SymPy's ``expand`` settles polynomial and rational identities. What it cannot decide (``sign``,
``abs``, ``maximum``, ``minimum`` mixed with division, as in ``m / abs(m)`` vs ``sign(m)``, and
the comparisons and ``where``, which SymPy holds as ``Piecewise``) goes to z3 over real
arithmetic: the piecewise functions become ``If`` terms, so z3 splits on the signs involved;
``floor`` is z3's ``ToInt`` (exact), ``%`` an uninterpreted function. The encoding is sound,
never optimistic:

- element-wise transcendental functions (``cosh``, ``arcsin``, ``exp``, real powers ...) become
  uninterpreted functions: equal arguments give equal results, nothing more is assumed (a few
  facts are added, such as ``exp(x) > 0``);
- reductions and ``clip`` (``norm``, ``global_norm``, ``dot``, ``cosine_sim``, ``clip``) depend on
  whole tensors, not on the one entry a symbol stands for; each distinct argument expression (in
  a canonical expanded form) becomes a fresh unknown, so two are equal only when their arguments
  are the same expression;
- ``sqrt(x)`` is a fresh ``r`` with ``x >= 0 -> (r >= 0 and r * r == x)``;
- division by zero is z3's (an unspecified real): callers assume the domain (denominators non-zero)
  explicitly, see :mod:`simplifier.equiv.align`.

z3 answers ``unsat`` (proved), ``sat`` (a model: a candidate counterexample, to be confirmed
numerically because uninterpreted functions may make it spurious) or ``unknown`` (timeout).

>>> x = sp.Symbol("x", real=True)
>>> check_zero(x * sp.sign(x) - sp.Abs(x)).status
'equal'
>>> check_zero(x / (sp.Abs(x) + sp.Rational(1, 10**8)) - sp.sign(x)).status
'different'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import sympy as sp
import z3

from simplifier.symbolic.translate import (
    OPAQUE,
    SymbolicTimeout,
    expand_interp,
    interp,
    time_budget,
)

Status = Literal["equal", "different", "unknown"]
Z3_TIMEOUT_MS = 3000
SYMPY_BUDGET_S = 2.0


class Unsupported(Exception):
    """An expression z3 cannot represent (complex infinity, NaN, ...)."""


@dataclass(frozen=True)
class Outcome:
    """Whether an expression is zero; ``model`` holds symbol values where it is not (from z3)."""

    status: Status
    model: dict[sp.Symbol, Fraction] = field(default_factory=dict)
    method: str = ""
    reason: str = ""


def canonical(expr: sp.Expr) -> sp.Expr:
    """Interps expanded, then SymPy's ``expand``: equal polynomials get equal forms."""
    return sp.expand(expand_interp(expr))


class Encoder:
    """Translates SymPy expressions and relations to z3, collecting side facts as it goes."""

    def __init__(self) -> None:
        self.symbols: dict[sp.Symbol, z3.ArithRef] = {}
        self.functions: dict[tuple[str, int], z3.FuncDeclRef] = {}
        self.opaque: dict[str, z3.ArithRef] = {}
        self.sqrts: dict[sp.Expr, z3.ArithRef] = {}
        self.facts: list[z3.BoolRef] = []
        self._cache: dict[sp.Basic, z3.ArithRef] = {}
        self._fresh = 0

    # -- leaves --------------------------------------------------------------------------------
    def _var(self, name: str) -> z3.ArithRef:
        self._fresh += 1
        return z3.Real(f"{name}!{self._fresh}")

    def symbol(self, s: sp.Symbol) -> z3.ArithRef:
        if s not in self.symbols:
            v = self._var(s.name)
            self.symbols[s] = v
            if s.is_positive:  # the step number
                self.facts.append(v >= 1)
        return self.symbols[s]

    def _function(self, name: str, arity: int) -> z3.FuncDeclRef:
        key = (name, arity)
        if key not in self.functions:
            self.functions[key] = z3.Function(name, *([z3.RealSort()] * (arity + 1)))
        return self.functions[key]

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, e: sp.Basic) -> z3.ArithRef:
        cached = self._cache.get(e)
        if cached is None:
            cached = self._expr(e)
            self._cache[e] = cached
        return cached

    def _expr(self, e: sp.Basic) -> z3.ArithRef:
        if isinstance(e, sp.Symbol):
            return self.symbol(e)
        if e.is_Rational:
            if max(int(e.p).bit_length(), int(e.q).bit_length()) > 4096:  # e.g. 0.999 ** 10000
                raise Unsupported("a constant of more than 4096 bits")
            return z3.RealVal(f"{int(e.p)}/{int(e.q)}")
        if e is sp.pi or e is sp.E:
            v = self._var(str(e))
            lo, hi = (Fraction(314159, 100000), Fraction(314160, 100000))
            if e is sp.E:
                lo, hi = Fraction(271828, 100000), Fraction(271829, 100000)
            self.facts += [v > z3.RealVal(str(lo)), v < z3.RealVal(str(hi))]
            return v
        if isinstance(e, sp.Add):
            return z3.Sum([self.expr(a) for a in e.args])
        if isinstance(e, sp.Mul):
            return z3.Product([self.expr(a) for a in e.args])
        if isinstance(e, sp.Pow):
            return self._pow(e.base, e.exp)
        if isinstance(e, sp.Abs):
            x = self.expr(e.args[0])
            return z3.If(x >= 0, x, -x)
        if isinstance(e, sp.sign):
            x = self.expr(e.args[0])
            return z3.If(x > 0, z3.RealVal(1), z3.If(x < 0, z3.RealVal(-1), z3.RealVal(0)))
        if isinstance(e, sp.Max | sp.Min):
            return self._extremum(e)
        if isinstance(e, interp):
            x, y, a = (self.expr(t) for t in e.args)
            return (1 - a) * x + a * y
        if isinstance(e, sp.Piecewise):  # comparisons and where: nested If, first match wins
            out = self.expr(e.args[-1][0])
            if e.args[-1][1] is not sp.true:
                raise Unsupported(f"a Piecewise without a default: {e}")
            for value, cond in reversed(e.args[:-1]):
                out = z3.If(self.relation(cond), self.expr(value), out)
            return out
        if isinstance(e, sp.floor):  # exact: the integer part, rounding down
            return z3.ToReal(z3.ToInt(self.expr(e.args[0])))
        if isinstance(e, OPAQUE):
            return self._opaque(e)
        if isinstance(e, sp.Function):
            args = [self.expr(a) for a in e.args]
            name = type(e).__name__
            out = self._function(name, len(args))(*args)
            if name in ("exp", "cosh"):
                self.facts.append(out > 0)
            return out
        raise Unsupported(f"cannot encode {type(e).__name__}: {e}")

    def _extremum(self, e: sp.Max | sp.Min) -> z3.ArithRef:
        args = [self.expr(a) for a in e.args]
        out = args[0]
        for a in args[1:]:
            out = z3.If(a > out, a, out) if isinstance(e, sp.Max) else z3.If(a < out, a, out)
        return out

    def _pow(self, base: sp.Expr, exp: sp.Expr) -> z3.ArithRef:
        if exp.is_Integer:
            n = int(exp)
            b = self.expr(base)
            if n == 0:
                return z3.RealVal(1)
            power = b
            for _ in range(abs(n) - 1):
                power = power * b
            return power if n > 0 else 1 / power
        if exp == sp.Rational(1, 2):
            return self._sqrt(base)
        if exp == sp.Rational(-1, 2):
            return 1 / self._sqrt(base)
        e = self.expr(exp)
        out = self._function("pow", 2)(self.expr(base), e)
        if base.is_positive:
            self.facts.append(out > 0)
        if base.is_number and base.is_positive and base != 1:
            # A real power of a constant base is monotone in the exponent (bias corrections
            # such as 1 - 0.9 ** step are then known to be non-zero for step >= 1).
            below = bool(base < 1)
            self.facts.append(z3.Implies(e > 0, out < 1 if below else out > 1))
            self.facts.append(z3.Implies(e < 0, out > 1 if below else out < 1))
            self.facts.append(z3.Implies(e == 0, out == 1))
        return out

    def _sqrt(self, base: sp.Expr) -> z3.ArithRef:
        if base not in self.sqrts:
            r = self._var("sqrt")
            x = self.expr(base)
            self.facts.append(z3.Implies(x >= 0, z3.And(r >= 0, r * r == x)))
            self.sqrts[base] = r
        return self.sqrts[base]

    def _opaque(self, e: sp.Function) -> z3.ArithRef:
        args = [canonical(a) for a in e.args]
        if type(e).__name__ in ("dot", "cosine_sim"):  # commutative
            args = sorted(args, key=sp.srepr)
        key = f"{type(e).__name__}({', '.join(sp.srepr(a) for a in args)})"
        if key not in self.opaque:
            v = self._var(type(e).__name__)
            if type(e).__name__ in ("norm", "global_norm"):
                self.facts.append(v >= 0)
            self.opaque[key] = v
        return self.opaque[key]

    # -- relations -----------------------------------------------------------------------------
    def relation(self, r: sp.Basic) -> z3.BoolRef:
        if r is sp.true:
            return z3.BoolVal(True)
        if r is sp.false:
            return z3.BoolVal(False)
        if isinstance(r, sp.And):
            return z3.And([self.relation(a) for a in r.args])
        if isinstance(r, sp.Or):
            return z3.Or([self.relation(a) for a in r.args])
        if isinstance(r, sp.Not):
            return z3.Not(self.relation(r.args[0]))
        ops: dict[type, Callable[[Any, Any], z3.BoolRef]] = {
            sp.Ne: lambda a, b: a != b,
            sp.Eq: lambda a, b: a == b,
            sp.Ge: lambda a, b: a >= b,
            sp.Gt: lambda a, b: a > b,
            sp.Le: lambda a, b: a <= b,
            sp.Lt: lambda a, b: a < b,
        }
        rel: Any = r  # a SymPy relational: lhs and rhs
        for cls, op in ops.items():
            if isinstance(r, cls):
                return op(self.expr(rel.lhs), self.expr(rel.rhs))
        raise Unsupported(f"cannot encode relation {r}")


def _solve(
    build: Callable[[Encoder], list[z3.BoolRef]], timeout_ms: int
) -> tuple[z3.CheckSatResult, dict[sp.Symbol, Fraction], str]:
    """Check the conjunction that ``build`` returns (plus the encoder's facts)."""
    enc = Encoder()
    try:
        goals = build(enc)
    except Unsupported as e:
        return z3.unknown, {}, str(e)
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    solver.add(*enc.facts, *goals)
    result = solver.check()
    model: dict[sp.Symbol, Fraction] = {}
    if result == z3.sat:
        m = solver.model()
        for s, v in enc.symbols.items():
            model[s] = _value(m.eval(v, model_completion=True))
    reason = solver.reason_unknown() if result == z3.unknown else ""
    return result, model, reason


def _value(v: z3.ExprRef) -> Fraction:
    if z3.is_rational_value(v):
        return Fraction(v.as_fraction())
    if z3.is_algebraic_value(v):
        return Fraction(v.approx(20).as_fraction())
    return Fraction(0)


def sympy_zero(expr: sp.Expr, budget: float = SYMPY_BUDGET_S) -> bool:
    """True when SymPy's expansion of ``expr``, or its cancelled form, is literally 0.

    Within a time budget; False means "not shown", never "non-zero".
    """
    if expr == 0:
        return True
    try:
        with time_budget(budget):
            expanded = canonical(expr)
            # Rational-function identities need a common denominator (valid on the domain,
            # where every denominator is non-zero).
            return bool(expanded == 0 or sp.cancel(sp.together(expanded)) == 0)
    except SymbolicTimeout:
        return False
    except (ValueError, TypeError):  # SymPy refuses a form (e.g. Max of an opaque global_norm(0))
        return False


def check_zero(
    expr: sp.Expr,
    assumptions: Sequence[sp.Basic] = (),
    timeout_ms: int = Z3_TIMEOUT_MS,
) -> Outcome:
    """Is ``expr == 0`` for every real assignment satisfying ``assumptions``?

    ``equal``: proved (by SymPy or z3); ``different``: z3 found a model (a candidate, possibly
    spurious where uninterpreted functions are involved); ``unknown``: undecided.
    """
    if expr.has(sp.nan, sp.zoo, sp.oo, -sp.oo, sp.I):
        return Outcome("unknown", reason=f"not a real expression: {expr}")
    if sympy_zero(expr):
        return Outcome("equal", method="sympy")
    result, model, reason = _solve(
        lambda enc: [*(enc.relation(a) for a in assumptions), enc.expr(expr) != 0], timeout_ms
    )
    if result == z3.unsat:
        return Outcome("equal", method="z3")
    if result == z3.sat:
        return Outcome("different", model, method="z3")
    return Outcome("unknown", method="z3", reason=reason)


def satisfiable(relations: Sequence[sp.Basic], timeout_ms: int = Z3_TIMEOUT_MS) -> bool | None:
    """Whether the relations can hold together (None: z3 could not tell)."""
    result, _, _ = _solve(lambda enc: [enc.relation(r) for r in relations], timeout_ms)
    return None if result == z3.unknown else result == z3.sat


def implied(relation: sp.Basic, by: Iterable[sp.Basic], timeout_ms: int = Z3_TIMEOUT_MS) -> bool:
    """True when ``by`` proves ``relation`` (False when it does not, or z3 cannot tell)."""
    premises = list(by)
    result, _, _ = _solve(
        lambda enc: [*(enc.relation(r) for r in premises), z3.Not(enc.relation(relation))],
        timeout_ms,
    )
    return result == z3.unsat
