"""A high-precision reference interpreter (mpmath, 50 digits) for confirming counterexamples.

Float64 runs can disagree only through rounding (catastrophic cancellation, overflow, the sign
of a value that is exactly zero in real arithmetic). Before the checker says two programs differ,
it recomputes the candidate inputs here, where rounding is 40 orders of magnitude smaller and
nothing overflows, with the same edge rules as NumPy: ``x / 0`` is ``±inf`` (``nan`` for
``0 / 0``), out-of-domain functions give ``nan``, and ``nan`` propagates.

Values are lists with one entry list per parameter tensor (a scalar is a one-entry list per
tensor, as in :mod:`simplifier.numeric`).

>>> from simplifier.parse import parse
>>> p = parse("def f(w, g, m):\\n  m = interp(g, m, 0.9)\\n  return m, m\\n")
>>> ups, _ = run(p, [Inputs([[0.0]], [[1.0]])])
>>> float(ups[0][0][0])
0.1
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath

from simplifier.interpret import bind_inputs, forward
from simplifier.ir import Const, Program, Stmt
from simplifier.ops import OPS, Kind, Op, Semantics, elementwise_table
from simplifier.passes.lower import Lower

DIGITS = 50
Mpf = Any  # mpmath.mpf
Value = list[list[Mpf]]  # per tensor, its entries


@dataclass(frozen=True)
class Inputs:
    """One step's inputs: weights and gradients per tensor (flat entry lists), lr."""

    w: Sequence[Sequence[float]]
    g: Sequence[Sequence[float]]
    lr: float = 1.0
    dims: Sequence[int] | None = None  # each tensor's number of dimensions (default: 1 each)

    @property
    def ndims(self) -> Sequence[int]:
        return self.dims if self.dims is not None else [1] * len(self.w)


def _nan() -> Mpf:
    return mpmath.mpf("nan")


def _isnan(x: Mpf) -> bool:
    return bool(mpmath.isnan(x))


def _real(z: Any) -> Mpf:
    """mpmath answers complex numbers outside a real function's domain: that is NaN here."""
    if isinstance(z, mpmath.mpc):
        return z.real if z.imag == 0 else _nan()
    return z


def _safe(f: Callable[..., Any]) -> Callable[..., Mpf]:
    def g(*xs: Mpf) -> Mpf:
        if any(_isnan(x) for x in xs):
            return _nan()
        try:
            return _real(f(*xs))
        except (ZeroDivisionError, ValueError, OverflowError, MemoryError):
            return _nan()  # MemoryError: a number whose exponent alone does not fit

    return g


def _div(a: Mpf, b: Mpf) -> Mpf:
    if _isnan(a) or _isnan(b):
        return _nan()
    if b == 0:
        return _nan() if a == 0 else mpmath.inf * mpmath.sign(a)
    return a / b


def _power(a: Mpf, b: Mpf) -> Mpf:
    if b == 0:
        return mpmath.mpf(1)  # NumPy: x ** 0 == 1, even for nan
    if a == 0 and b < 0:
        return mpmath.inf
    if mpmath.isfinite(b) and abs(b) >= mpmath.mpf(2) ** mpmath.mp.prec and a != 0:
        # An exponent this large is an even integer; mpmath's exact integer power would build
        # an integer with about |b| bits.
        return _safe(lambda x, y: mpmath.exp(y * mpmath.log(abs(x))))(a, b)
    return _safe(mpmath.power)(a, b)


def _extremum(pick: Callable[[Mpf, Mpf], Mpf]) -> Callable[[Mpf, Mpf], Mpf]:
    def f(a: Mpf, b: Mpf) -> Mpf:
        return _nan() if _isnan(a) or _isnan(b) else pick(a, b)

    return f


def _mod(a: Mpf, b: Mpf) -> Mpf:
    """Python's (and NumPy's) floor modulo, with their edge cases: NaN for ``x % 0`` and for an
    infinite ``x``; ``x % ±inf`` is ``x`` when ``x`` is 0 or has the divisor's sign, else ``b``."""
    if _isnan(a) or _isnan(b) or mpmath.isinf(a) or b == 0:
        return _nan()
    if mpmath.isinf(b):
        return a if a == 0 or (a > 0) == (b > 0) else b
    return a - b * mpmath.floor(a / b)


def _where(c: Mpf, a: Mpf, b: Mpf) -> Mpf:
    return a if c != 0 else b  # NaN != 0: NaN selects a, as in NumPy and torch


def _truth(relation: Callable[[Mpf, Mpf], bool]) -> Callable[[Mpf, Mpf], Mpf]:
    """A comparison as 1 or 0; NaN compares false (``!=`` true), as IEEE says."""
    return lambda a, b: mpmath.mpf(1) if relation(a, b) else mpmath.mpf(0)


# Rules with NumPy's edge cases that mpmath's functions do not have; the rest come from the op
# table's spellings (mpmath functions, Python operators, or formulas over both).
_SPECIAL: dict[str, Callable[..., Mpf]] = {
    "div": _div,
    "power": _power,
    "maximum": _extremum(max),
    "minimum": _extremum(min),
    "mod": _mod,
    "where": _where,
}


def _precise_rule(op: Op) -> Callable[..., Mpf] | None:
    if op.truth:
        assert op.operator is not None, op.name
        return _truth(getattr(operator, op.operator))
    if op.mpmath:
        return _safe(getattr(mpmath, op.mpmath))
    if op.operator:
        return _safe(getattr(operator, op.operator))
    return None


def _exact(v: Fraction) -> Mpf:
    return mpmath.mpf(v.numerator) / mpmath.mpf(v.denominator)


def element_wise() -> dict[str, Callable[..., Mpf]]:
    """The element-wise rules; build them at the working precision (formulas' literals are
    evaluated when the table is built)."""
    return elementwise_table(_precise_rule, _exact, _SPECIAL)


# The constants, evaluated at the working precision when read.
def _constant(op: Op) -> Callable[[], Mpf]:
    name, exact = op.mpmath, op.exact
    if name is not None:
        return lambda: +getattr(mpmath, name)
    assert exact is not None, op.name
    return lambda: _exact(exact)


CONSTANTS: dict[str, Callable[[], Mpf]] = {
    name: _constant(op) for name, op in OPS.items() if op.kind is Kind.CONSTANT
}


def _broadcast(*entries: list[Mpf]) -> list[tuple[Mpf, ...]]:
    n = max(len(e) for e in entries)
    return list(zip(*(e * n if len(e) == 1 else e for e in entries), strict=True))


def _rules(
    impl: dict[str, Callable[..., Mpf]], n: int, dims: Sequence[int]
) -> Callable[[Stmt, list[Value]], Value]:
    """The rule of one statement of a lowered program (see :mod:`simplifier.passes.lower`);
    ``dims`` are the parameter tensors' numbers of dimensions (for ``ndim``)."""

    def total(xs: list[list[Mpf]]) -> Mpf:
        return mpmath.fsum(x for t in xs for x in t)

    def dot(a: list[Value]) -> Value:
        x, y = a
        d = total([[p * q for p, q in _broadcast(x[i], y[i])] for i in range(n)])
        return [[d] for _ in range(n)]

    reductions: dict[str, Callable[[list[Value]], Value]] = {
        "norm": lambda a: [[mpmath.sqrt(mpmath.fsum(x * x for x in t))] for t in a[0]],
        "sum": lambda a: [[mpmath.fsum(t)] for t in a[0]],
        "numel": lambda a: [[mpmath.mpf(len(t))] for t in a[0]],
        "ndim": lambda a: [[mpmath.mpf(d)] for d in dims],
        # A scalar (from a lowered clip of a scalar) counts once per tensor, as in numeric.
        "global_norm": lambda a: [[mpmath.sqrt(total([[x * x for x in t] for t in a[0]]))]] * n,
        "dot": dot,
    }

    def apply(s: Stmt, args: list[Value]) -> Value:
        f = impl.get(s.op)
        if f is not None:
            return [[f(*xs) for xs in _broadcast(*(a[i] for a in args))] for i in range(n)]
        constant = CONSTANTS.get(s.op)
        if constant is not None:
            return [[constant()] for _ in range(n)]
        return reductions[s.op](args)

    return apply


def step(
    program: Program,
    inputs: Inputs,
    states: dict[str, Value],
    step_number: int,
    semantics: Semantics = "math",
) -> tuple[Value, dict[str, Value]]:
    """One call of the program in high precision: (update, new states)."""
    lowered = Lower(semantics).run(program)
    return _step(lowered, element_wise(), inputs, states, step_number)


def _step(
    program: Program,
    impl: dict[str, Callable[..., Mpf]],
    inputs: Inputs,
    states: dict[str, Value],
    step_number: int,
) -> tuple[Value, dict[str, Value]]:
    """One call of a lowered program."""
    n = len(inputs.w)
    env = bind_inputs(
        program,
        weight=[[mpmath.mpf(x) for x in t] for t in inputs.w],
        gradient=[[mpmath.mpf(x) for x in t] for t in inputs.g],
        states=states,
        lr=lambda: [[mpmath.mpf(inputs.lr)] for _ in range(n)],
        step=lambda: [[mpmath.mpf(step_number)] for _ in range(n)],
        hyper=lambda v: [[_exact(v)] for _ in range(n)],
    )

    def const(c: Const) -> Value:
        return [[_exact(c.value)] for _ in range(n)]

    _, outs = forward(program, env, _rules(impl, n, inputs.ndims), const)
    update = [u * len(w) if len(u) == 1 else u for u, w in zip(outs[0], inputs.w, strict=True)]
    return update, dict(zip(program.states, outs[1:], strict=True))


def run(
    program: Program, steps: Sequence[Inputs], semantics: Semantics = "math"
) -> tuple[list[Value], list[dict[str, Value]]]:
    """Run from the initial states over the given inputs: the updates, and the states after
    each step."""
    updates: list[Value] = []
    history: list[dict[str, Value]] = []
    lowered = Lower(semantics).run(program)
    with mpmath.workdps(DIGITS):
        impl = element_wise()
        sizes = [len(t) for t in steps[0].w] if steps else []
        states: dict[str, Value] = {
            s: [[_exact(v)] * k for k in sizes] for s, v in program.initial.items()
        }
        for t, inputs in enumerate(steps):
            update, states = _step(lowered, impl, inputs, states, t + 1)
            updates.append(update)
            history.append(states)
    return updates, history


def relative_difference(a: Value, b: Value) -> float:
    """``max |a - b| / max(|a|, |b|)`` over all entries; ``inf`` where NaN/inf patterns differ.

    Entries that are NaN in both, or the same infinity in both, agree.
    """
    worst = mpmath.mpf(0)
    scale = mpmath.mpf(0)
    for ta, tb in zip(a, b, strict=True):
        for x, y in zip(ta, tb, strict=True):
            if _isnan(x) or _isnan(y):
                if _isnan(x) != _isnan(y):
                    return float("inf")
                continue
            if mpmath.isinf(x) or mpmath.isinf(y):
                if x != y:
                    return float("inf")
                continue
            worst = max(worst, abs(x - y))
            scale = max(scale, abs(x), abs(y))
    if worst == 0:
        return 0.0
    return float(worst / scale)


def to_floats(v: Value) -> list[list[float]]:
    return [[float(x) for x in t] for t in v]
