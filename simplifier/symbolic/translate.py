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

import ctypes
import operator
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import sympy as sp

from simplifier.interpret import forward
from simplifier.ir import Const, Program, Role, Stmt
from simplifier.ops import EPS_EXACT, OPS, Kind, Op, Semantics, elementwise_table, hero_table

EPS_RATIONAL = sp.Rational(EPS_EXACT.numerator, EPS_EXACT.denominator)  # get_eps(), exactly


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

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        """The norm of a zero tensor (a state at its initial value) is 0: SymPy must not keep
        ``norm(0)`` as an opaque value it cannot compare (``Max(global_norm(0), 0.9)`` raises)."""
        return sp.S.Zero if x == 0 else None


class global_norm(_Reduction):
    nargs = 1
    is_nonnegative = True

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        """0 for a zero tensor, as :class:`norm`."""
        return sp.S.Zero if x == 0 else None


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


def _reduction(op: Op) -> type[_Reduction]:
    """The opaque SymPy function of a reduction that has no class of its own above."""
    return cast(
        type[_Reduction], type(op.name, (_Reduction,), {"nargs": op.arity, "__module__": __name__})
    )


_WRITTEN: tuple[type[sp.Function], ...] = (norm, global_norm, dot, cosine_sim, clip)
# Every reduction and clip, opaque: the classes above, and one made from the op table for each
# other reduction (``sum``, ``numel``, ``mean``, ...), so a new reduction needs nothing here.
OPAQUE: tuple[type[sp.Function], ...] = (
    *_WRITTEN,
    *(
        _reduction(op)
        for name, op in OPS.items()
        if op.kind is Kind.REDUCTION and name not in {c.__name__ for c in _WRITTEN}
    ),
)


def rational(c: Const | Fraction) -> sp.Rational:
    """An exact SymPy rational (never via a binary float)."""
    v = c.value if isinstance(c, Const) else c
    return sp.Rational(v.numerator, v.denominator)


def _truth(relation: Callable[[sp.Expr, sp.Expr], sp.Basic]) -> Callable[..., sp.Expr]:
    """A comparison as ``Piecewise((1, relation), (0, True))`` (over the reals: no NaN)."""

    def rule(x: sp.Expr, y: sp.Expr) -> sp.Expr:
        if x.has(sp.nan, sp.zoo) or y.has(sp.nan, sp.zoo):
            return sp.nan  # an undefined operand: no real truth value
        return sp.Piecewise((sp.S.One, relation(x, y)), (sp.S.Zero, True))

    return rule


def where(c: sp.Expr, a: sp.Expr, b: sp.Expr) -> sp.Expr:
    """``where(c, a, b)``: ``a`` where ``c != 0``, else ``b``."""
    if c.has(sp.nan, sp.zoo):
        return sp.nan
    return sp.Piecewise((a, sp.Ne(c, 0)), (b, True))


def _sympy_rule(op: Op) -> Callable[..., sp.Expr] | None:
    if op.truth:
        assert op.sympy is not None, op.name
        return _truth(getattr(sp, op.sympy))
    if op.sympy:
        return cast(Callable[..., sp.Expr], getattr(sp, op.sympy))
    if op.operator:
        return cast(Callable[..., sp.Expr], getattr(operator, op.operator))
    return None


def _constant(op: Op) -> Callable[[], sp.Expr]:
    if op.sympy:
        value = getattr(sp, op.sympy)
    else:
        assert op.exact is not None, op.name
        value = rational(op.exact)
    return lambda: value


# The op table in SymPy: element-wise ops from their spellings (SymPy functions, Python
# operators, formulas over both), interp kept folded, the reductions and clip opaque.
_OPAQUE_RULES: dict[str, Callable[..., sp.Expr]] = {
    "interp": interp,
    "where": where,
    **{cls.__name__: cls for cls in OPAQUE},
}
SYMPY_IMPL: dict[str, Callable[..., sp.Expr]] = {
    **elementwise_table(_sympy_rule, lambda v: rational(v), _OPAQUE_RULES),
    **{name: _constant(op) for name, op in OPS.items() if op.kind is Kind.CONSTANT},
}
HERO_SYMPY_IMPL: dict[str, Callable[..., sp.Expr]] = hero_table(SYMPY_IMPL, lambda v: rational(v))


def impl_table(semantics: Semantics) -> dict[str, Callable[..., sp.Expr]]:
    return {**SYMPY_IMPL, **HERO_SYMPY_IMPL} if semantics == "hero" else SYMPY_IMPL


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
    *,
    table: dict[str, Callable[..., sp.Expr]] | None = None,
    observe: Callable[[Stmt, list[sp.Expr]], None] | None = None,
    scalar_clips: bool = True,
) -> SymbolicStep:
    """Translate one step: the one IR -> SymPy translator (folding and the proofs use it too).

    ``inputs`` may replace input symbols (e.g. states by expressions); ``table`` replaces the op
    table of ``semantics`` (folding's keeps some functions opaque) and ``overrides`` some of its
    rules (e.g. a cheaper ``maximum``); ``observe`` sees every statement with its translated
    arguments; ``scalar_clips`` translates ``clip`` of a scalar as :class:`clip_scalar`.
    """
    table = {**(table or impl_table(semantics)), **(overrides or {})}
    symbols = input_symbols(program, bind_hypers)
    if inputs:
        symbols.update(inputs)

    clips = _scalar_clips(program) if scalar_clips else frozenset()

    def apply(s: Stmt, args: list[sp.Expr]) -> sp.Expr:
        if observe is not None:
            observe(s, args)
        if s.target in clips:
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


class time_budget:
    """Raise :class:`SymbolicTimeout` in the block if it runs longer than ``seconds``.

    Works in any thread (thread pools and distributed workers run analyses off the main thread)
    and uses no signal: a timer thread raises the exception asynchronously in the block's thread
    (``PyThreadState_SetAsyncExc``), which takes effect at the next Python bytecode, as a signal
    handler would; a call into C code finishes first. If the block swallows the exception (a
    broad ``except`` inside SymPy), it is raised again every :attr:`RETRY` seconds until the
    block ends. Budgets nest.

    >>> import time
    >>> try:
    ...     with time_budget(0.05):
    ...         while True:
    ...             pass
    ... except SymbolicTimeout as e:
    ...     print(e)
    SymPy call exceeded 0.05 s
    """

    RETRY = 0.25

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._done = False
        self._fired = False
        self._thread = 0
        self._timer: threading.Timer | None = None

    def __enter__(self) -> time_budget:
        self._thread = threading.get_ident()
        self._schedule(self.seconds)
        return self

    def _schedule(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._fired = True
            _async_raise(self._thread, _Expired)
            self._schedule(self.RETRY)

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        with self._lock:
            self._done = True
            if self._timer is not None:
                self._timer.cancel()
            if self._fired:  # a raise not delivered yet (the first, or a retry): withdraw it
                _async_raise(self._thread, None)
        if exc_type is not None and issubclass(exc_type, _Expired):
            raise SymbolicTimeout(f"SymPy call exceeded {self.seconds:g} s") from None


class _Expired(SymbolicTimeout):
    """What the timer raises in the block's thread (an exception class, without a message)."""


def _async_raise(thread: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread), ctypes.py_object(exc) if exc is not None else None
    )
