"""IR -> SymPy: one step of a program as SymPy expressions, element by element.

Every op is element-wise except the reductions, so a tensor is one real symbol standing for any
one of its entries. Reductions (``norm``, ``global_norm``, ``dot``, ``cosine_sim``) and ``clip``
become opaque SymPy functions of their argument expressions: equal arguments give equal results,
which is all that folding and equivalence need. Constants are exact rationals from their source
text. ``interp`` is a SymPy Function that survives until :func:`expand_interp` is applied.

>>> from simplifier.parse import parse
>>> s = translate(parse("def f(w, g, m):\\n  m = interp(g, m, 0.9)\\n  return m * 2, m\\n"))
>>> s.outputs[0]
2*interp(g, m, 9/10)
>>> expand_interp(s.outputs[0])
g/5 + 9*m/5
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import sympy as sp

from simplifier.interpret import forward
from simplifier.ir import Const, Program, Role, Stmt
from simplifier.numeric import Semantics

EPS_RATIONAL = sp.Rational(1, 10**8)  # get_eps() and the hero protection, exactly


class interp(sp.Function):
    """``interp(x, y, a) = (1 - a) * x + a * y``, kept folded until expanded on purpose."""

    nargs = 3
    is_real = True

    @classmethod
    def eval(cls, x: sp.Expr, y: sp.Expr, a: sp.Expr) -> sp.Expr | None:
        if a.is_zero or x == y:
            return x
        if a == 1:
            return y
        if x.is_number and y.is_number and a.is_number:  # a constant: Max/Min must compare it
            return (1 - a) * x + a * y
        return None

    def _eval_rewrite_as_Add(self, x: sp.Expr, y: sp.Expr, a: sp.Expr, **kwargs: object) -> sp.Expr:
        return (1 - a) * x + a * y


class _Reduction(sp.Function):
    is_real = True


class norm(_Reduction):
    nargs = 1
    is_nonnegative = True


class global_norm(_Reduction):
    nargs = 1
    is_nonnegative = True


class dot(_Reduction):
    nargs = 2


class cosine_sim(_Reduction):
    nargs = 2


class clip(_Reduction):
    """``clip(x, c) = x * min(1, c / global_norm(x))``, opaque (it depends on the whole model)."""

    nargs = 2


class clip_scalar(clip):
    """``clip`` of a scalar-typed value: a different function from ``clip`` of a tensor filled
    with that value (the global norm counts entries), so the two must never compare equal."""


OPAQUE: tuple[type[sp.Function], ...] = (norm, global_norm, dot, cosine_sim, clip)


def _cbrt(x: sp.Expr) -> sp.Expr:
    return sp.sign(x) * sp.Abs(x) ** sp.Rational(1, 3)


SYMPY_IMPL: dict[str, Callable[..., sp.Expr]] = {
    "abs": sp.Abs,
    "cos": sp.cos,
    "sin": sp.sin,
    "tan": sp.tan,
    "arcsin": sp.asin,
    "arccos": sp.acos,
    "arctan": sp.atan,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "tanh": sp.tanh,
    "arcsinh": sp.asinh,
    "arccosh": sp.acosh,
    "arctanh": sp.atanh,
    "exp": sp.exp,
    "exp2": lambda x: sp.Integer(2) ** x,
    "exp10": lambda x: sp.Integer(10) ** x,
    "expm1": lambda x: sp.exp(x) - 1,
    "log": sp.log,
    "log10": lambda x: sp.log(x, 10),
    "log2": lambda x: sp.log(x, 2),
    "log1p": lambda x: sp.log(1 + x),
    "square": lambda x: x**2,
    "sqrt": sp.sqrt,
    "cube": lambda x: x**3,
    "cbrt": _cbrt,
    "sign": sp.sign,
    "reciprocal": lambda x: 1 / x,
    "negative": lambda x: -x,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "power": lambda a, b: a**b,
    "maximum": sp.Max,
    "minimum": sp.Min,
    "interp": interp,
    "norm": norm,
    "global_norm": global_norm,
    "dot": dot,
    "cosine_sim": cosine_sim,
    "clip": clip,
    "get_pi": lambda: sp.pi,
    "get_e": lambda: sp.E,
    "get_eps": lambda: EPS_RATIONAL,
}

HERO_SYMPY_IMPL: dict[str, Callable[..., sp.Expr]] = {
    "div": lambda a, b: a / (b + EPS_RATIONAL),
    "sqrt": lambda x: sp.sqrt(sp.Abs(x)),
    "log": lambda x: sp.log(sp.Abs(x)),
    "log2": lambda x: sp.log(sp.Abs(x), 2),
    "log10": lambda x: sp.log(sp.Abs(x), 10),
    "log1p": lambda x: sp.log(sp.Abs(1 + x)),
}


def impl_table(semantics: Semantics) -> dict[str, Callable[..., sp.Expr]]:
    return {**SYMPY_IMPL, **HERO_SYMPY_IMPL} if semantics == "hero" else SYMPY_IMPL


def rational(c: Const | Fraction) -> sp.Rational:
    """An exact SymPy rational (never via a binary float)."""
    v = c.value if isinstance(c, Const) else c
    return sp.Rational(v.numerator, v.denominator)


def input_symbols(program: Program, bind_hypers: bool = True) -> dict[str, sp.Expr]:
    """A real symbol per input (named as the parameter); hypers become their values if bound."""
    out: dict[str, sp.Expr] = {}
    for p in program.params:
        if p.role is Role.HYPER and bind_hypers and p.default is not None:
            out[p.name] = rational(p.default)
        else:
            out[p.name] = sp.Symbol(p.name, real=True, positive=p.role is Role.STEP or None)
    return out


@dataclass(frozen=True)
class SymbolicStep:
    """One step as SymPy: every SSA value's expression and the outputs (update, states)."""

    values: dict[str, sp.Expr]
    outputs: list[sp.Expr]
    inputs: dict[str, sp.Expr]

    @property
    def update(self) -> sp.Expr:
        return self.outputs[0]


def translate(
    program: Program,
    semantics: Semantics = "math",
    inputs: dict[str, sp.Expr] | None = None,
    bind_hypers: bool = True,
    overrides: dict[str, Callable[..., sp.Expr]] | None = None,
) -> SymbolicStep:
    """Translate one step; ``inputs`` may replace input symbols (e.g. states by expressions).

    ``overrides`` replaces rules of the op table (e.g. a cheaper ``maximum``).
    """
    table = {**impl_table(semantics), **(overrides or {})}
    symbols = input_symbols(program, bind_hypers)
    if inputs:
        symbols.update(inputs)

    scalar_clips = _scalar_clips(program)

    def apply(s: Stmt, args: list[sp.Expr]) -> sp.Expr:
        if s.target in scalar_clips:
            return clip_scalar(*args)
        return table[s.op](*args)

    values, outputs = forward(program, symbols, apply, rational)
    return SymbolicStep(values, outputs, symbols)


def _scalar_clips(program: Program) -> frozenset[str]:
    """The ``clip`` statements whose first argument is a scalar (see :class:`clip_scalar`)."""
    clips = [s for s in program.body if s.op == "clip"]
    if not clips:
        return frozenset()
    from simplifier.analysis.types import Type, infer_types

    types = infer_types(program)
    return frozenset(
        s.target
        for s in clips
        if isinstance(s.args[0], Const) or types[s.args[0].name] is Type.SCALAR
    )


def expand_interp(expr: sp.Expr) -> sp.Expr:
    """Replace every ``interp(x, y, a)`` by ``(1 - a) * x + a * y``."""
    return expr.replace(interp, lambda x, y, a: (1 - a) * x + a * y)


class SymbolicTimeout(Exception):
    """A SymPy call ran past its time budget."""


@contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Raise SymbolicTimeout if the block runs longer than ``seconds`` (main thread, POSIX).

    Elsewhere (other threads, no SIGALRM) the block runs unbounded: SymPy cannot be interrupted
    from outside its thread.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise SymbolicTimeout(f"SymPy call exceeded {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    outer = signal.getitimer(signal.ITIMER_REAL)[0]  # an enclosing budget's time left (0: none)
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, min(seconds, outer) if outer > 0 else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # the enclosing budget keeps running while this one does
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-6))
