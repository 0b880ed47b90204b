"""Targeted SymPy folding: interp chains merged, affine pairs back to interp, constants exact.

The program's outputs are translated to SymPy (exact rationals, real symbols, hypers kept as
symbols so that they stay tunable), folded by a few targeted transforms, and rebuilt into a
program by :mod:`simplifier.symbolic.rebuild`. No general ``simplify()``: SymPy's automatic
evaluation combines like terms, folds constants and flattens products (which collects scalar
factors such as ``lr * 0.0002``), and :class:`Folder` adds the one transform this domain needs,
recognising an affine combination of two values whose weights sum to 1 (which includes every
chain of interps on a shared argument) and writing it as ``interp``.

Only the algebra SymPy should see is translated transparently: ``+ - * /``, powers, ``sqrt``,
``abs``, ``sign``, ``exp``, ``log``, ``maximum``/``minimum`` and ``interp``. Every other function
(trigonometric and hyperbolic, their inverses, ``log2``, ``expm1``, ...) is an opaque function
named after its op, so that SymPy cannot turn ``sin(arctan(x))`` into a longer algebraic
expression, and under ``hero`` the protected operations (``/``, ``sqrt``, ``log*``) are opaque
too: no math-only identity can touch them. Where folding removes an operation that is undefined
somewhere (a division, a square root, a logarithm, ...), the domain condition that the input
needed is logged (:func:`lost_conditions`), so ``x / x -> 1`` says ``x != 0``. Every SymPy call
runs under :func:`~simplifier.symbolic.translate.time_budget`.

>>> from simplifier.parse import parse
>>> p = parse("def f(w, g, v):\\n  v = 0.9 * v + 0.1 * g\\n  return g, v\\n")
>>> t = to_sympy(p)
>>> Folder(t.tensors, t.states)(t.outputs[1])
interp(g, v, 9/10)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import sympy as sp

from simplifier.analysis.types import Type, infer_types
from simplifier.ir import Atom, Const, Node, Program, Ref, Role, Stmt, dag
from simplifier.numeric import Semantics
from simplifier.ops import OPS, PROTECTED, Kind
from simplifier.passes.conditions import (
    ABOVE_MINUS_ONE,
    AT_LEAST_ONE,
    NONNEGATIVE,
    NONZERO,
    NOT_MINUS_EPS,
    OPEN_UNIT,
    POSITIVE,
    UNIT,
    Relation,
)
from simplifier.symbolic.translate import OPAQUE, SYMPY_IMPL, clip, interp, translate


class Opaque(sp.Function):
    """A function SymPy must not look into; ``op`` is the IR op it stands for."""

    is_real = True
    op: ClassVar[str] = ""


def _opaque(op: str, arity: int, prefix: str = "") -> type[Opaque]:
    return type(f"{prefix}{op}", (Opaque,), {"nargs": arity, "op": op, "__module__": __name__})


# From the op table: element-wise ops SymPy must not look into when folding (all but the
# algebraic ones), and under hero the protected ones.
MATH_OPAQUE = [name for name, op in OPS.items() if op.elementwise and not op.algebraic]
HERO_OPAQUE = sorted(PROTECTED)

MATH_FUNCTIONS: dict[str, type[Opaque]] = {op: _opaque(op, OPS[op].arity) for op in MATH_OPAQUE}
HERO_FUNCTIONS: dict[str, type[Opaque]] = {
    op: _opaque(op, OPS[op].arity, "hero_") for op in HERO_OPAQUE
}

FOLD_IMPL: dict[str, Callable[..., sp.Expr]] = {**SYMPY_IMPL, **MATH_FUNCTIONS}
HERO_FOLD_IMPL: dict[str, Callable[..., sp.Expr]] = {**FOLD_IMPL, **HERO_FUNCTIONS}


def fold_table(semantics: Semantics) -> dict[str, Callable[..., sp.Expr]]:
    """The op -> SymPy table used for folding under ``semantics``."""
    return HERO_FOLD_IMPL if semantics == "hero" else FOLD_IMPL


# -- domain conditions of partial operations ------------------------------------------------------
# op -> (relation, index of the argument it constrains), per semantics. `power` is special-cased.
PARTIAL_MATH: dict[str, tuple[Relation, int]] = {
    "div": (NONZERO, 1),
    "reciprocal": (NONZERO, 0),
    "sqrt": (NONNEGATIVE, 0),
    "log": (POSITIVE, 0),
    "log2": (POSITIVE, 0),
    "log10": (POSITIVE, 0),
    "log1p": (ABOVE_MINUS_ONE, 0),
    "arcsin": (UNIT, 0),
    "arccos": (UNIT, 0),
    "arccosh": (AT_LEAST_ONE, 0),
    "arctanh": (OPEN_UNIT, 0),
}
NOT_MINUS_ONE = Relation("not-minus-one", "{} != -1", lambda v: v != -1)
PARTIAL_HERO: dict[str, tuple[Relation, int]] = {
    **{k: v for k, v in PARTIAL_MATH.items() if k not in ("sqrt",)},
    "div": (NOT_MINUS_EPS, 1),  # a / (b + 1e-8)
    "log": (NONZERO, 0),  # log(|x|)
    "log2": (NONZERO, 0),
    "log10": (NONZERO, 0),
    "log1p": (NOT_MINUS_ONE, 0),  # log(|1 + x|)
}


@dataclass(frozen=True)
class Partial:
    """An operation that is undefined somewhere: ``relation`` must hold for its argument."""

    relation: Relation
    expr: sp.Expr  # the constrained argument, in SymPy
    node: Node  # the same argument in the program's DAG
    op: str
    line: int | None


def _partial(op: str, args: Sequence[sp.Expr], semantics: Semantics) -> tuple[Relation, int] | None:
    if op == "power":
        exponent = args[1]
        if exponent.is_Integer:
            return (NONZERO, 0) if exponent < 0 else None
        return (POSITIVE, 0)
    table = PARTIAL_HERO if semantics == "hero" else PARTIAL_MATH
    return table.get(op)


# -- translation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Translation:
    """One step in SymPy: every SSA value, the outputs, and the partial operations met."""

    values: dict[str, sp.Expr]
    outputs: list[sp.Expr]
    symbols: dict[str, sp.Expr]
    partials: list[Partial]
    tensors: frozenset[sp.Symbol]
    states: frozenset[sp.Symbol]
    # Tensor arguments of reductions and clip: their values must stay tensors when folded
    # (the global norm of a tensor filled with c is not the global norm of the scalar c).
    reduced: list[sp.Expr] = field(default_factory=list)

    def collapsed(self, fold: Callable[[sp.Expr], sp.Expr]) -> sp.Expr | None:
        """A reduced tensor argument that folding turns into a scalar, if any."""
        for e in self.reduced:
            if not is_tensor(fold(e), self.tensors):
                return e
        return None


def to_sympy(program: Program, semantics: Semantics = "math") -> Translation:
    """Translate one step for folding (hypers stay symbols; see the module docstring).

    >>> from simplifier.parse import parse
    >>> to_sympy(parse("def f(w, g, lr):\\n  return sin(g) * lr * 0.5\\n")).outputs
    [lr*sin(g)/2]
    """
    nodes = dag(program)
    partials: list[Partial] = []
    reduced: list[sp.Expr] = []
    types = infer_types(program)

    def node_of(a: Atom) -> Node:
        return Node.make("const", (), a.value) if isinstance(a, Const) else nodes[a.name]

    def observe(s: Stmt, args: list[sp.Expr]) -> None:
        found = _partial(s.op, args, semantics)
        if found is not None:
            relation, i = found
            line = s.loc.line if s.loc else None
            partials.append(Partial(relation, args[i], node_of(s.args[i]), s.op, line))
        kind = OPS[s.op].kind
        if kind in (Kind.REDUCTION, Kind.CLIP):
            for a, value in zip(s.args, args, strict=False):
                if isinstance(a, Ref) and types[a.name] is Type.TENSOR:
                    reduced.append(value)

    step = translate(
        program,
        semantics,
        bind_hypers=False,
        table=fold_table(semantics),
        observe=observe,
        scalar_clips=False,
    )
    values, outputs, symbols = step.values, step.outputs, step.inputs
    tensor_roles = (Role.WEIGHT, Role.GRADIENT, Role.STATE)
    tensors = frozenset(
        s
        for p in program.params
        if p.role in tensor_roles and isinstance(s := symbols[p.name], sp.Symbol)
    )
    states = frozenset(
        s
        for p in program.params
        if p.role is Role.STATE and isinstance(s := symbols[p.name], sp.Symbol)
    )
    return Translation(values, outputs, symbols, partials, tensors, states, reduced)


def is_tensor(expr: sp.Expr, tensors: frozenset[sp.Symbol]) -> bool:
    """Whether a SymPy value is a tensor: it reads a tensor input outside every reduction."""
    if isinstance(expr, sp.Symbol):
        return expr in tensors
    if isinstance(expr, OPAQUE) and not isinstance(expr, clip):
        return False
    if isinstance(expr, clip):
        return is_tensor(expr.args[0], tensors)
    return any(is_tensor(a, tensors) for a in expr.args)


# -- folding -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """One targeted transform applied by the folder (for the change log)."""

    kind: str  # "interp-merge" or "affine-to-interp"
    before: sp.Expr
    after: sp.Expr


@dataclass
class Folder:
    """Bottom-up, memoised folding of SymPy expressions (see the module docstring).

    ``tensors`` are the tensor input symbols (scalars are everything else); ``states`` the state
    symbols, which an affine pair puts second (``interp(g, m, 0.9)``: the memory is ``y``).
    """

    tensors: frozenset[sp.Symbol]
    states: frozenset[sp.Symbol] = frozenset()
    events: list[Event] = field(default_factory=list)
    memo: dict[sp.Expr, sp.Expr] = field(default_factory=dict)

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        hit = self.memo.get(expr)
        if hit is not None:
            return hit
        result = expr
        if expr.args and not expr.is_Atom:
            args = [self(a) for a in expr.args]
            if any(a is not b for a, b in zip(args, expr.args, strict=True)):
                result = expr.func(*args)
            if isinstance(result, interp) or result.is_Add:
                better = self.as_interp(result)
                if better is not None:
                    kind = "interp-merge" if isinstance(result, interp) else "affine-to-interp"
                    self.events.append(Event(kind, expr, better))
                    result = better
        self.memo[expr] = result
        return result

    def linear(self, expr: sp.Expr, weight: sp.Expr, out: dict[sp.Expr, sp.Expr]) -> None:
        """Add ``weight * expr`` to ``out`` as a combination of non-affine terms."""
        if isinstance(expr, interp):
            x, y, a = expr.args
            self.linear(x, weight * (1 - a), out)
            self.linear(y, weight * a, out)
        elif expr.is_Add:
            for term in expr.args:
                self.linear(term, weight, out)
        elif expr.is_Mul:
            tensor = is_tensor(expr, self.tensors)
            coeff = [
                f for f in expr.args if (not is_tensor(f, self.tensors) if tensor else f.is_Number)
            ]
            rest = [f for f in expr.args if f not in coeff]
            inner = sp.Mul(*rest)
            if rest and (isinstance(inner, interp) or inner.is_Add):
                self.linear(inner, weight * sp.Mul(*coeff), out)
            else:
                out[inner] = out.get(inner, sp.Integer(0)) + weight * sp.Mul(*coeff)
        else:
            out[expr] = out.get(expr, sp.Integer(0)) + weight

    def as_interp(self, expr: sp.Expr) -> sp.Expr | None:
        """``expr`` as one interp (or a single value) if its affine terms are two values with
        weights summing to 1; None when it is not of that shape."""
        terms: dict[sp.Expr, sp.Expr] = {}
        self.linear(expr, sp.Integer(1), terms)
        kept = [(t, sp.expand(c)) for t, c in terms.items()]
        kept = [(t, c) for t, c in kept if c != 0]
        from_interp = isinstance(expr, interp)
        if len(kept) == 1 and kept[0][1] == 1 and from_interp:
            return kept[0][0]
        if len(kept) != 2 or sp.expand(kept[0][1] + kept[1][1] - 1) != 0:
            return None
        (x, _), (y, a) = kept if from_interp else self._order(kept)
        if not from_interp and not _plain_weight(a):
            return None  # `2*x - y` reads better than an extrapolating interp
        if any(t == 1 for t, _ in kept):
            return None  # a constant term: `0.1 + 0.9 * x` is not an interpolation to write
        if from_interp and isinstance(expr, interp) and expr.args[:2] == (x, y):
            return None  # already this interp (only the weight could differ: it cannot)
        return interp(x, y, _tidy(a))

    def _order(self, kept: list[tuple[sp.Expr, sp.Expr]]) -> list[tuple[sp.Expr, sp.Expr]]:
        """(x, y) for an affine pair: the term that reads a state is the memory ``y``."""

        def has_state(t: sp.Expr) -> bool:
            return bool(t.free_symbols & self.states)

        first, second = kept
        if has_state(first[0]) != has_state(second[0]):
            return [second, first] if has_state(first[0]) else kept
        if first[1].is_Number and second[1].is_Number and first[1] > second[1]:
            return [second, first]
        return kept


def _plain_weight(a: sp.Expr) -> bool:
    """A weight that reads as an interpolation: symbolic, or a number strictly in (0, 1)."""
    if a.is_Number:
        return bool(0 < a < 1)
    return True


def _tidy(a: sp.Expr) -> sp.Expr:
    """A weight in its shortest form among the plain and the expanded one."""
    expanded = sp.expand(a)
    return expanded if sp.count_ops(expanded) <= sp.count_ops(a) else a


# -- lost domain conditions ----------------------------------------------------------------------
def _trivially_holds(relation: Relation, expr: sp.Expr) -> bool:
    """Whether SymPy's assumptions already decide the condition (e.g. ``x**2 >= 0``)."""
    checks: dict[str, Callable[[sp.Expr], bool | None]] = {
        "nonzero": lambda e: e.is_nonzero,
        "nonnegative": lambda e: e.is_nonnegative,
        "positive": lambda e: e.is_positive,
    }
    check = checks.get(relation.name)
    if check is not None:
        return bool(check(expr))
    if expr.is_Number:
        value = float(expr)
        import numpy as np

        return bool(relation.holds(np.array(value)))
    return False


def lost_conditions(
    before: Sequence[Partial],
    after: Sequence[Partial],
    fold: Callable[[sp.Expr], sp.Expr],
) -> list[Partial]:
    """The partial operations of ``before`` whose condition no operation of ``after`` keeps.

    A division by ``2 * x`` is kept by a division by ``x * y`` (``x * y != 0`` implies ``x != 0``).
    """
    kept: dict[str, list[sp.Expr]] = {}
    for p in after:
        kept.setdefault(p.relation.name, []).append(fold(p.expr))
    lost: list[Partial] = []
    seen: set[tuple[str, sp.Expr]] = set()
    for p in before:
        expr = fold(p.expr)
        key = (p.relation.name, expr)
        if key in seen or _trivially_holds(p.relation, expr):
            continue
        seen.add(key)
        if _covers(p.relation, kept.get(p.relation.name, []), expr):
            continue
        lost.append(p)
    return lost


def _factors(e: sp.Expr) -> set[sp.Expr]:
    """The non-numeric factors of a product (a positive integer power counts as its base)."""
    out = set()
    for f in sp.Mul.make_args(e):
        if f.is_Number:
            continue
        out.add(f.base if f.is_Pow and f.exp.is_Integer and f.exp > 0 else f)
    return out


def _covers(relation: Relation, kept: Sequence[sp.Expr], wanted: sp.Expr) -> bool:
    """Whether the conditions of the kept operations imply ``relation`` on ``wanted``: the same
    argument, or for ``!= 0`` every factor of ``wanted`` a factor of some kept divisor."""
    if wanted in kept:
        return True
    if relation.name != "nonzero":
        return False
    available = set().union(*(_factors(k) for k in kept)) if kept else set()
    return _factors(wanted) <= available


def source_hints(
    translation: Translation, fold: Callable[[sp.Expr], sp.Expr], program: Program
) -> dict[sp.Expr, str]:
    """Names from the source: each named statement's folded value -> its variable (first wins)."""
    hints: dict[sp.Expr, str] = {}
    for s in program.body:
        if s.var is not None:
            hints.setdefault(fold(translation.values[s.target]), s.var)
    return hints


def cone_inputs(program: Program) -> list[set[str]]:
    """The inputs each output reads (through its cone in the DAG)."""
    nodes = dag(program)
    return [
        set()
        if isinstance(a, Const)
        else {str(n.leaf) for n in nodes[a.name].walk() if n.op == "input"}
        for a in program.outputs
    ]


def cone_sizes(program: Program) -> list[int]:
    """The number of operations each output needs (its cone in the DAG)."""
    nodes = dag(program)
    sizes = []
    for a in program.outputs:
        if isinstance(a, Const) or nodes[a.name].op == "input":
            sizes.append(0)
            continue
        sizes.append(sum(1 for n in nodes[a.name].walk() if n.op not in ("input", "const")))
    return sizes
