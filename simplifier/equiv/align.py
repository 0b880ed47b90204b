"""What the proof engines share: aligned input symbols, semantic liveness of states and
statements, the domain of partial operations, and printing SymPy in the language's syntax.

Two programs are compared over the SAME inputs: their weight, gradient, lr and step parameters
become one shared SymPy symbol per role (spelled as the first program names it).

>>> from simplifier.parse import parse
>>> a = parse("def f(w, g, m):\\n  m = interp(g, m, 0.9)\\n  return m, m\\n")
>>> b = parse("def f(p, grad, mom):\\n  mom = interp(grad, mom, 0.9)\\n  return mom, mom\\n")
>>> roles = RoleSymbols.of(a, b)
>>> roles.inputs(b)
{'p': w, 'grad': g}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp
from sympy.printing.precedence import precedence
from sympy.printing.str import StrPrinter

from simplifier.ir import Const, Program, Ref, Role, format_number
from simplifier.numeric import Semantics
from simplifier.ops import OPS, Kind
from simplifier.symbolic.translate import (
    EPS_RATIONAL,
    SymbolicStep,
    global_norm,
    interp,
    rational,
    translate,
)

ROLES: tuple[Role, ...] = (Role.WEIGHT, Role.GRADIENT, Role.LR, Role.STEP)
_DEFAULT_NAMES = {Role.WEIGHT: "w", Role.GRADIENT: "g", Role.LR: "lr", Role.STEP: "step"}


def real_symbol(name: str, role: Role | None = None) -> sp.Symbol:
    """A real symbol; the step number is positive (it starts at 1)."""
    return sp.Symbol(name, real=True, positive=True if role is Role.STEP else None)


@dataclass(frozen=True)
class RoleSymbols:
    """One shared symbol per input role of two programs (named as the first program names it)."""

    symbols: Mapping[Role, sp.Symbol]

    @staticmethod
    def of(a: Program, b: Program) -> RoleSymbols:
        taken = {p.name for p in a.params if p.role not in ROLES}
        out: dict[Role, sp.Symbol] = {}
        for role in ROLES:
            name = a.input_named(role) or b.input_named(role) or _DEFAULT_NAMES[role]
            while name in taken:  # a name of one program's state, used for a role by the other
                name += "'"
            taken.add(name)
            out[role] = real_symbol(name, role)
        return RoleSymbols(out)

    def inputs(self, program: Program) -> dict[str, sp.Expr]:
        """The program's role parameters mapped to the shared symbols."""
        return {p.name: self.symbols[p.role] for p in program.params if p.role in self.symbols}


def live_states(
    program: Program, outputs: Sequence[sp.Expr], state_symbols: Mapping[str, sp.Expr]
) -> tuple[str, ...]:
    """States whose incoming value can reach the update, at some step (a fixed point).

    ``outputs`` is the translated step (update, new states) with each state as its symbol in
    ``state_symbols``. A state is live when the update reads it, or a live state's new value does.
    Reading is by free symbols, so a state that SymPy cancels (``m - m``) counts as unread.
    """
    by_symbol = {s: name for name, s in state_symbols.items()}

    def reads(expr: sp.Expr) -> set[str]:
        return {by_symbol[s] for s in expr.free_symbols if s in by_symbol}

    new_value = dict(zip(program.states, outputs[1:], strict=True))
    live = reads(outputs[0])
    frontier = list(live)
    while frontier:
        for name in reads(new_value[frontier.pop()]):
            if name not in live:
                live.add(name)
                frontier.append(name)
    return tuple(s for s in program.states if s in live)


def live_targets(program: Program, states: Sequence[str]) -> set[str]:
    """SSA values that reach the update or the new value of one of ``states`` within a step."""
    defining = program.defining()
    outs = program.state_outputs()
    roots = [program.update, *(outs[s] for s in states)]
    seen: set[str] = set()
    stack = [a.name for a in roots if isinstance(a, Ref)]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stmt = defining.get(name)
        if stmt is not None:
            stack.extend(a.name for a in stmt.args if isinstance(a, Ref))
    return seen


# -- translation ---------------------------------------------------------------------------------
def _extremum(cls: type[sp.Max] | type[sp.Min]) -> Callable[[sp.Expr, sp.Expr], sp.Expr]:
    """SymPy's Max/Min simplify their arguments against each other, which takes seconds on
    nested expressions; here only numbers are folded and the arguments are put in a canonical
    order (so ``maximum(a, b)`` and ``maximum(b, a)`` are the same expression). z3 decides the
    rest."""

    def build(a: sp.Expr, b: sp.Expr) -> sp.Expr:
        if a == b:
            return a
        if a.is_comparable and b.is_comparable:
            return cls(a, b)
        x, y = sorted((a, b), key=sp.default_sort_key)
        return cls(x, y, evaluate=False)

    return build


RULES: dict[str, Callable[..., sp.Expr]] = {
    "maximum": _extremum(sp.Max),
    "minimum": _extremum(sp.Min),
}


def translate_step(
    program: Program, semantics: Semantics, inputs: Mapping[str, sp.Expr]
) -> SymbolicStep:
    """:func:`~simplifier.symbolic.translate.translate` with the checker's cheap Max/Min.

    Raises :class:`TranslationError` when SymPy rejects an expression.
    """
    try:
        return translate(program, semantics, dict(inputs), overrides=RULES)
    except (ValueError, TypeError, ZeroDivisionError) as e:
        raise TranslationError(f"SymPy cannot translate {program.name}: {e}") from e


class TranslationError(Exception):
    """SymPy rejected a step (an expression it cannot build); the proof gives up, honestly."""


# -- the domain of partial operations ------------------------------------------------------------
@dataclass(frozen=True)
class Constraint:
    """Where one statement of a program is defined, e.g. ``abs_m != 0`` for ``m / abs_m``."""

    relation: sp.Basic  # a SymPy relational (or And of relationals) over the step's inputs
    side: str  # "A" or "B"
    line: int | None
    statement: str  # the source name assigned, or the op for a temporary

    @property
    def text(self) -> str:
        return show_condition(self.relation)

    @property
    def source(self) -> str:
        where = f" line {self.line}" if self.line else ""
        return f"{self.side}{where} ({self.statement})"


def _domain(op: str, args: list[sp.Expr], semantics: Semantics) -> list[sp.Basic]:
    """The relations under which ``op(*args)`` is a finite real number (empty: everywhere)."""
    hero = semantics == "hero"
    x = args[0] if args else None
    if op == "div":
        return [sp.Ne(args[1] + EPS_RATIONAL, 0) if hero else sp.Ne(args[1], 0)]
    if op == "reciprocal":
        return [sp.Ne(x, 0)]
    if op == "mod":  # x % 0 is NaN
        return [sp.Ne(args[1], 0)]
    if op == "sqrt":
        return [] if hero else [sp.Ge(x, 0)]
    if op in ("log", "log2", "log10"):
        return [sp.Ne(x, 0)] if hero else [sp.Gt(x, 0)]
    if op == "log1p":
        return [sp.Ne(x, -1)] if hero else [sp.Gt(x, -1)]
    if op in ("arcsin", "arccos"):
        return [sp.Ge(x, -1), sp.Le(x, 1)]
    if op == "arccosh":
        return [sp.Ge(x, 1)]
    if op == "arctanh":
        return [sp.Gt(x, -1), sp.Lt(x, 1)]
    if op == "power":
        return _power_domain(args[0], args[1])
    # The reductions divide by global norms (unprotected under both semantics): cosine_sim is
    # 0/0 at a zero tensor, clip(x, c) is x * min(1, c / 0), NaN there unless c > 0.
    if op == "cosine_sim":
        return [sp.Ne(global_norm(args[0]), 0), sp.Ne(global_norm(args[1]), 0)]
    if op == "clip":
        return [sp.Or(sp.Ne(global_norm(args[0]), 0), sp.Gt(args[1], 0))]
    return []


def _power_domain(base: sp.Expr, exponent: sp.Expr) -> list[sp.Basic]:
    if exponent.is_Integer:
        return [sp.Ne(base, 0)] if exponent.is_negative else []
    if exponent.is_Rational:
        return [sp.Gt(base, 0)] if exponent.is_negative else [sp.Ge(base, 0)]
    # A variable exponent: a positive base, or 0 to a positive power (negative bases with an
    # integer exponent are left out: integrality is not expressible here, so this is smaller
    # than the true domain, which can only add conditions, never hide one).
    return [sp.Or(sp.Gt(base, 0), sp.And(sp.Eq(base, 0), sp.Gt(exponent, 0)))]


def domain_constraints(
    program: Program,
    values: Mapping[str, sp.Expr],
    targets: set[str],
    semantics: Semantics,
    side: str,
) -> tuple[list[Constraint], bool]:
    """The domain of the live statements in ``targets``; second item: False if it is empty.

    ``values`` maps SSA ids to their SymPy expressions (from :func:`translate`). Relations that
    SymPy decides to be true are dropped; one decided false means the program is undefined
    everywhere (a proof over its domain would be vacuous).
    """
    out: list[Constraint] = []
    # A temporary (nested expression) is named after the variable its source line assigns.
    line_var = {loc.line: "return" for loc in program.output_locs if loc}
    line_var.update({s.loc.line: s.var for s in program.body if s.loc and s.var})
    for s in program.body:
        if s.target not in targets:
            continue
        args = [rational(a) if isinstance(a, Const) else values[a.name] for a in s.args]
        for rel in _domain(s.op, args, semantics):
            rel = simplify_condition(rel)
            if rel is sp.true:
                continue
            if rel is sp.false:
                return [], False
            line = s.loc.line if s.loc else None
            name = s.var or (line_var.get(line) if line else None) or s.op
            out.append(Constraint(rel, side, line, name))
    return out, True


def simplify_condition(rel: sp.Basic) -> sp.Basic:
    """``abs(x) != 0`` and ``0.5 * x**2 != 0`` say ``x != 0``: print and prove the simpler form."""
    if isinstance(rel, sp.Ne) and rel.rhs == 0:
        lhs = rel.lhs
        while True:
            if isinstance(lhs, sp.Abs) or (
                isinstance(lhs, sp.Pow) and lhs.exp.is_positive and lhs.exp.is_Rational
            ):
                lhs = lhs.args[0]
            elif isinstance(lhs, sp.Mul) and lhs.as_coeff_Mul()[0].is_Rational:
                coeff, rest = lhs.as_coeff_Mul()
                if coeff == 1 or coeff == 0:
                    break
                lhs = rest
            else:
                break
        return sp.Ne(lhs, 0)
    return rel


# -- printing SymPy in the language's syntax -----------------------------------------------------
# SymPy's function names -> the language's (from the op table's SymPy spellings).
_NAMES = {
    op.sympy: name
    for name, op in OPS.items()
    if op.sympy is not None and op.sympy != name and op.kind is not Kind.CONSTANT
}


class _LanguagePrinter(StrPrinter):
    """SymPy's str printer with the language's function names and exact decimal constants."""

    def _print_Rational(self, expr: sp.Rational) -> str:
        return format_number(Fraction(int(expr.p), int(expr.q)))

    def _print_Integer(self, expr: sp.Integer) -> str:
        return str(int(expr))

    def _print_Function(self, expr: sp.Function) -> str:
        name = _NAMES.get(type(expr).__name__, type(expr).__name__)
        return f"{name}({', '.join(self._print(a) for a in expr.args)})"

    _print_Abs = _print_Max = _print_Min = _print_Function

    def _print_Mul(self, expr: sp.Mul) -> str:
        coeff, rest = expr.as_coeff_Mul()
        if coeff.is_Rational and not coeff.is_Integer and rest != 1:
            if coeff < 0:
                return "-" + self._print(-coeff * rest)
            return f"{self._print(coeff)}*{self.parenthesize(rest, precedence(expr))}"
        return str(super()._print_Mul(expr))

    def _print_Pi(self, expr: sp.Expr) -> str:
        return "get_pi()"

    def _print_Exp1(self, expr: sp.Expr) -> str:
        return "get_e()"


_PRINTER = _LanguagePrinter({"order": "none"})


def show(expr: sp.Basic) -> str:
    """An expression in the language's syntax.

    >>> x = sp.Symbol("g", real=True)
    >>> show(interp(x, sp.Symbol("v", real=True), sp.Rational(899, 1000)))
    'interp(g, v, 0.899)'
    """
    return str(_PRINTER.doprint(expr))


def show_condition(rel: sp.Basic) -> str:
    """A relation as ``LHS OP RHS`` (``!=``, ``>=``, ...)."""
    if isinstance(rel, sp.Or | sp.And):
        word = " or " if isinstance(rel, sp.Or) else " and "
        parts = sorted(show_condition(a) for a in rel.args)
        return word.join(f"({p})" if " or " in p or " and " in p else p for p in parts)
    ops = {sp.Ne: "!=", sp.Ge: ">=", sp.Gt: ">", sp.Le: "<=", sp.Lt: "<", sp.Eq: "=="}
    for cls, op in ops.items():
        if isinstance(rel, cls):
            return f"{show(rel.lhs)} {op} {show(rel.rhs)}"
    return show(rel)


__all__ = [
    "Constraint",
    "RoleSymbols",
    "domain_constraints",
    "interp",
    "live_states",
    "live_targets",
    "real_symbol",
    "show",
    "show_condition",
]
