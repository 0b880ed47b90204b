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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath

from simplifier.interpret import bind_inputs, forward
from simplifier.ir import Const, Program, Stmt
from simplifier.numeric import Semantics
from simplifier.ops import OPS

DIGITS = 50
Mpf = Any  # mpmath.mpf
Value = list[list[Mpf]]  # per tensor, its entries


@dataclass(frozen=True)
class Inputs:
    """One step's inputs: weights and gradients per tensor (flat entry lists), lr."""

    w: Sequence[Sequence[float]]
    g: Sequence[Sequence[float]]
    lr: float = 1.0


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
        except (ZeroDivisionError, ValueError, OverflowError):
            return _nan()

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
    return _safe(mpmath.power)(a, b)


def _cbrt(x: Mpf) -> Mpf:
    return mpmath.sign(x) * mpmath.cbrt(abs(x))


def _extremum(pick: Callable[[Mpf, Mpf], Mpf]) -> Callable[[Mpf, Mpf], Mpf]:
    def f(a: Mpf, b: Mpf) -> Mpf:
        return _nan() if _isnan(a) or _isnan(b) else pick(a, b)

    return f


def _impl(semantics: Semantics) -> dict[str, Callable[..., Mpf]]:
    m = mpmath
    table: dict[str, Callable[..., Mpf]] = {
        "abs": _safe(abs),
        "cos": _safe(m.cos),
        "sin": _safe(m.sin),
        "tan": _safe(m.tan),
        "arcsin": _safe(m.asin),
        "arccos": _safe(m.acos),
        "arctan": _safe(m.atan),
        "sinh": _safe(m.sinh),
        "cosh": _safe(m.cosh),
        "tanh": _safe(m.tanh),
        "arcsinh": _safe(m.asinh),
        "arccosh": _safe(m.acosh),
        "arctanh": _safe(m.atanh),
        "exp": _safe(m.exp),
        "exp2": _safe(lambda x: m.power(2, x)),
        "exp10": _safe(lambda x: m.power(10, x)),
        "expm1": _safe(m.expm1),
        "log": _safe(m.log),
        "log10": _safe(lambda x: m.log(x, 10)),
        "log2": _safe(lambda x: m.log(x, 2)),
        "log1p": _safe(m.log1p),
        "square": _safe(lambda x: x * x),
        "sqrt": _safe(m.sqrt),
        "cube": _safe(lambda x: x * x * x),
        "cbrt": _safe(_cbrt),
        "sign": _safe(m.sign),
        "reciprocal": lambda x: _div(mpmath.mpf(1), x),
        "negative": _safe(lambda x: -x),
        "add": _safe(lambda a, b: a + b),
        "sub": _safe(lambda a, b: a - b),
        "mul": _safe(lambda a, b: a * b),
        "div": _div,
        "power": _power,
        "maximum": _extremum(max),
        "minimum": _extremum(min),
        "interp": _safe(lambda x, y, a: (1 - a) * x + a * y),
    }
    if semantics == "hero":
        eps = mpmath.mpf(1) / mpmath.mpf(10**8)
        log, log2, log10 = table["log"], table["log2"], table["log10"]
        table.update(
            {
                "div": lambda a, b: _div(a, b + eps),
                "sqrt": _safe(lambda x: m.sqrt(abs(x))),
                "log": lambda x: log(abs(x)),
                "log2": lambda x: log2(abs(x)),
                "log10": lambda x: log10(abs(x)),
                "log1p": lambda x: log(abs(1 + x)),
            }
        )
    return table


def _constant(op: str) -> Mpf:
    return {"get_pi": mpmath.pi, "get_e": mpmath.e, "get_eps": mpmath.mpf(1) / 10**8}[op]


def _exact(v: Fraction) -> Mpf:
    return mpmath.mpf(v.numerator) / mpmath.mpf(v.denominator)


def _broadcast(*entries: list[Mpf]) -> list[tuple[Mpf, ...]]:
    n = max(len(e) for e in entries)
    return list(zip(*(e * n if len(e) == 1 else e for e in entries), strict=True))


def _rules(semantics: Semantics, n: int) -> Callable[[Stmt, list[Value]], Value]:
    impl = _impl(semantics)
    plain_div, minimum = _div, _extremum(min)

    def total(xs: list[list[Mpf]]) -> Mpf:
        return mpmath.fsum(x for t in xs for x in t)

    def gnorm(xs: Value) -> Mpf:
        return mpmath.sqrt(total([[x * x for x in t] for t in xs]))

    def apply(s: Stmt, args: list[Value]) -> Value:
        op = OPS[s.op]
        if op.elementwise:
            f = impl[s.op]
            return [[f(*xs) for xs in _broadcast(*(a[i] for a in args))] for i in range(n)]
        if s.op in ("get_pi", "get_e", "get_eps"):
            return [[+_constant(s.op)] for _ in range(n)]
        if s.op == "norm":
            return [[mpmath.sqrt(mpmath.fsum(x * x for x in t))] for t in args[0]]
        if s.op == "global_norm":
            return [[gnorm(args[0])] for _ in range(n)]
        if s.op in ("dot", "cosine_sim"):
            x, y = args
            d = total([[p * q for p, q in _broadcast(x[i], y[i])] for i in range(n)])
            if s.op == "cosine_sim":
                d = plain_div(d, gnorm(x) * gnorm(y))
            return [[d] for _ in range(n)]
        if s.op == "clip":
            scale = minimum(mpmath.mpf(1), plain_div(args[1][0][0], gnorm(args[0])))
            return [[impl["mul"](x, scale) for x in t] for t in args[0]]
        raise AssertionError(f"no precise rule for {s.op}")

    return apply


def step(
    program: Program,
    inputs: Inputs,
    states: dict[str, Value],
    step_number: int,
    semantics: Semantics = "math",
) -> tuple[Value, dict[str, Value]]:
    """One call of the program in high precision: (update, new states)."""
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

    _, outs = forward(program, env, _rules(semantics, n), const)
    update = [u * len(w) if len(u) == 1 else u for u, w in zip(outs[0], inputs.w, strict=True)]
    return update, dict(zip(program.states, outs[1:], strict=True))


def run(
    program: Program, steps: Sequence[Inputs], semantics: Semantics = "math"
) -> tuple[list[Value], list[dict[str, Value]]]:
    """Run from zero state over the given inputs: the updates and the states after each step."""
    updates: list[Value] = []
    history: list[dict[str, Value]] = []
    with mpmath.workdps(DIGITS):
        zeros = [[mpmath.mpf(0)] * len(t) for t in steps[0].w] if steps else []
        states: dict[str, Value] = {s: zeros for s in program.states}
        for t, inputs in enumerate(steps):
            update, states = step(program, inputs, states, t + 1, semantics)
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
