"""Op -> PyTorch source: one table per code path, keyed by op (the language's and the lowering's).

An argument reaches a rule as an :class:`A`: its source text (always a name or a literal) and
its kind at run time:

- ``T`` a tensor (in the foreach path: a list of tensors, one per parameter),
- ``S`` a 0-d tensor (``SL`` in the foreach path: a list of them, one per parameter),
- ``N`` a Python number (``NL`` in the foreach path: a list of them, one per parameter).

Three tables:

- :data:`FUNCTIONAL` — an expression, out of place, written as the reference interpreter
  computes it (``interp`` is ``(1 - a) * x + a * y``). Used for scalar arithmetic and inside the
  compiled kernel, where Inductor fuses everything and temporaries cost nothing.
- :data:`EAGER` — the per-tensor path: an expression (a new tensor), or a statement that writes
  the result into a given buffer: the first argument's in place (``t.sign_()``), any other
  argument's or a free temporary through ``out=``. Reusing buffers matters on the CPU, where a
  fresh tensor costs page faults as well as memory traffic.
- :data:`FOREACH` — the multi-tensor path over lists with ``torch._foreach_*`` kernels, in place
  into the first argument when it is dead; :func:`foreach_source` falls back to a loop of the
  eager rule where no foreach kernel exists (``asinh``) or the kinds do not fit one.

>>> EAGER["sign"].into([A("c", "T")], "c")
'c.sign_()'
>>> EAGER["interp"].into([A("g", "T"), A("v", "T"), A("beta2", "N")], "v")  # runtime's lerp
'_interp(g, v, beta2, out=v)'
>>> foreach_source("sign", [A("c", "T")], 0)
'torch._foreach_sign_(c)'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simplifier.emit.lower import INTERNAL_OPS
from simplifier.ops import COMPOUND, OPS, PRIMITIVE_REDUCTIONS, Kind


@dataclass(frozen=True, slots=True)
class A:
    """An argument: its source (a name or a literal) and its kind (``T``, ``S``, ``N``, ...)."""

    src: str
    kind: str

    @property
    def tensor(self) -> bool:
        return self.kind in ("T", "S")


# From the op table: torch names of the element-wise unary ops that have a function, an out= and
# an in-place form; those with a foreach kernel; the infix and torch names of the binary ops.
_UNARY_TORCH = {
    name: op.torch
    for name, op in OPS.items()
    if op.kind is Kind.UNARY and op.torch is not None and op.inplace is not None
}
_FOREACH_UNARY = frozenset(
    op.foreach for op in OPS.values() if op.kind is Kind.UNARY and op.foreach is not None
)
_INFIX = {name: op.infix for name, op in OPS.items() if op.infix and op.torch and not op.truth}
_TORCH_BINARY = {name: op.torch for name, op in OPS.items() if op.infix and op.torch}
# Comparisons: the relation with its operands swapped (`2 < x` is `x > 2`).
_COMPARE = {name: op.infix for name, op in OPS.items() if op.truth}
_CONVERSE = {"lt": "gt", "le": "ge", "gt": "lt", "ge": "le", "eq": "eq", "ne": "ne"}
_CLAMP = {"maximum": "min", "minimum": "max"}  # maximum(x, c) is clamp(x, min=c)


# -- functional: expressions ------------------------------------------------------------------
def _f_unary(op: str) -> Callable[[list[A]], str]:
    return lambda a: f"torch.{_UNARY_TORCH[op]}({a[0].src})"


def _f_infix(symbol: str) -> Callable[[list[A]], str]:
    return lambda a: f"{a[0].src} {symbol} {a[1].src}"


def _f_extremum(op: str) -> Callable[[list[A]], str]:
    def rule(a: list[A]) -> str:
        x, y = a
        if x.tensor and y.tensor:
            return f"torch.{op}({x.src}, {y.src})"
        t, n = (x, y) if x.tensor else (y, x)
        return f"torch.clamp({t.src}, {_CLAMP[op]}={n.src})"

    return rule


def _like(a: list[A]) -> A | None:
    """The argument whose dtype a result takes: a tensor first, else a 0-d tensor."""
    return next((x for x in a if x.kind == "T"), None) or next((x for x in a if x.tensor), None)


def _f_compare(op: str) -> Callable[[list[A]], str]:
    """``x < y`` as 1.0 / 0.0 in the operands' floating type (a Python float for numbers)."""

    def rule(a: list[A]) -> str:
        text = f"{a[0].src} {_COMPARE[op]} {a[1].src}"
        like = _like(a)
        return f"float({text})" if like is None else f"({text}).to({like.src}.dtype)"

    return rule


def _f_where(a: list[A]) -> str:
    """Always a new value of the arguments' broadcast shape (never one of them, aliased)."""
    c, x, y = a
    like = _like(a)
    if like is None:
        return f"({x.src} if {c.src} != 0 else {y.src})"
    if not c.tensor:  # a number: as a boolean 0-d tensor where the tensors are
        return (
            f"torch.where({like.src}.new_tensor({c.src} != 0, dtype=torch.bool), {x.src}, {y.src})"
        )
    if not (x.tensor or y.tensor):  # two numbers: a tensor of c's dtype, not torch's default
        return f"torch.where({c.src} != 0, {c.src}.new_tensor({x.src}), {y.src})"
    return f"torch.where({c.src} != 0, {x.src}, {y.src})"


def _join(args: tuple[A, ...]) -> str:
    kinds = {a.kind for a in args}
    return "T" if "T" in kinds else "S" if "S" in kinds else "N"


def _f_formula(op: str) -> Callable[[list[A]], str]:
    """An op without a torch spelling: its formula from the op table, in the other rules."""
    formula = OPS[op].formula
    assert formula is not None, op

    def wrap(rule: Callable[[list[A]], str]) -> Callable[..., A]:
        return lambda *xs: A(f"({rule(list(xs))})", _join(xs))

    def rule(a: list[A]) -> str:
        table = {name: wrap(r) for name, r in FUNCTIONAL.items()}
        return formula.compose(table, lambda v: A(repr(float(v)), "N"))(*a).src

    return rule


FUNCTIONAL: dict[str, Callable[[list[A]], str]] = {
    **{op: _f_unary(op) for op in _UNARY_TORCH},
    "exp10": lambda a: f"torch.pow(10.0, {a[0].src})",
    "cube": lambda a: f"{a[0].src} * {a[0].src} * {a[0].src}",
    "cbrt": lambda a: f"torch.sign({a[0].src}) * torch.abs({a[0].src}).pow(1.0 / 3.0)",
    "reciprocal": lambda a: f"1.0 / {a[0].src}",
    **{op: _f_infix(symbol) for op, symbol in _INFIX.items()},
    "maximum": _f_extremum("maximum"),
    "minimum": _f_extremum("minimum"),
    "interp": lambda a: f"(1.0 - {a[2].src}) * {a[0].src} + {a[2].src} * {a[1].src}",
    **{op: _f_compare(op) for op in _COMPARE},
    "where": _f_where,
    "norm": lambda a: f"torch.linalg.vector_norm({a[0].src})",
    "sum": lambda a: f"torch.sum({a[0].src})",
    "numel": lambda a: f"{a[0].src}.new_tensor({a[0].src}.numel())",
    "ndim": lambda a: f"{a[0].src}.new_tensor({a[0].src}.ndim)",
    "tensor_dot": lambda a: f"torch.sum({a[0].src} * {a[1].src})",
    "combine_norm": lambda a: f"torch.linalg.vector_norm(_stack({a[0].src}))",
    "combine_sum": lambda a: f"_stack({a[0].src}).sum()",
    "as_local": lambda a: a[0].src,  # overridden per path: it needs the parameter
    "add_scaled": lambda a: f"{a[0].src} + {a[1].src} * {a[2].src}",
    "sub_scaled": lambda a: f"{a[0].src} - {a[1].src} * {a[2].src}",
}
FUNCTIONAL.update(
    {
        name: _f_formula(name)
        for name, op in OPS.items()
        if op.elementwise and not op.compound and name not in FUNCTIONAL
    }
)


# -- eager, one tensor at a time ----------------------------------------------------------------
@dataclass(frozen=True)
class EagerRule:
    """``expr(args)``: a new value; ``into(args, dest)``: write it into ``dest`` (None: cannot).

    ``dest`` is either one of the arguments' sources (then that argument is dead after this op)
    or a free temporary of the parameter's shape.
    """

    expr: Callable[[list[A]], str]
    write: Callable[[list[A], str], str | None]

    def into(self, args: list[A], dest: str) -> str | None:
        return self.write(args, dest)


def _out(fn: str) -> Callable[[list[A], str], str | None]:
    """``x.fn_(rest)`` when writing into the first argument, else ``torch.fn(..., out=dest)``."""

    def write(a: list[A], dest: str) -> str | None:
        if not a[0].tensor and fn not in ("sub", "div", "pow"):
            return None
        if a[0].src == dest and a[0].kind == "T":
            return f"{dest}.{fn}_({', '.join(x.src for x in a[1:])})"
        return f"torch.{fn}({', '.join(x.src for x in a)}, out={dest})"

    return write


def _eager_unary(op: str) -> EagerRule:
    fn = _UNARY_TORCH[op]
    return EagerRule(lambda a: f"torch.{fn}({a[0].src})", _out(fn))


def _eager_binary(op: str) -> EagerRule:
    fn = _TORCH_BINARY[op]
    commutative = OPS[op].commutative

    def expr(a: list[A]) -> str:
        x, y = a
        if not x.tensor and commutative:
            x, y = y, x
        return f"torch.{fn}({x.src}, {y.src})"

    def write(a: list[A], dest: str) -> str | None:
        x, y = a
        if commutative and (not x.tensor or (y.src == dest and y.kind == "T")):
            x, y = y, x
        return _out(fn)([x, y], dest)

    return EagerRule(expr, write)


def _eager_extremum(op: str) -> EagerRule:
    bound = _CLAMP[op]

    def write(a: list[A], dest: str) -> str | None:
        x, y = a
        if x.tensor and y.tensor:
            return f"torch.{op}({x.src}, {y.src}, out={dest})"
        t, n = (x, y) if x.tensor else (y, x)
        if t.src == dest and t.kind == "T":
            return f"{dest}.clamp_({bound}={n.src})"
        return f"torch.clamp({t.src}, {bound}={n.src}, out={dest})"

    return EagerRule(_f_extremum(op), write)


def _eager_compare(op: str) -> EagerRule:
    """Written into a floating buffer through out= (torch casts the booleans)."""

    def write(a: list[A], dest: str) -> str | None:
        x, y = a
        if not x.tensor:
            if not y.tensor:
                return None
            op_, x, y = _CONVERSE[op], y, x
        else:
            op_ = op
        if x.src == dest and x.kind == "T":
            return f"{dest}.{op_}_({y.src})"
        return f"torch.{op_}({x.src}, {y.src}, out={dest})"

    return EagerRule(_f_compare(op), write)


def _lerp_ok(a: list[A]) -> bool:
    """The lerp kernels fit (runtime ``_interp``): two tensors and a Python number as weight,
    whose finiteness ``_interp`` checks (a 0-d tensor weight would need a device sync)."""
    return a[0].kind == "T" and a[1].kind == "T" and a[2].kind == "N"


def _interp_expr(a: list[A]) -> str:
    if _lerp_ok(a):
        return f"_interp({', '.join(x.src for x in a)})"
    return FUNCTIONAL["interp"](a)


def _interp_write(a: list[A], dest: str) -> str | None:
    if not _lerp_ok(a):
        return None
    return f"_interp({', '.join(x.src for x in a)}, out={dest})"


def _scaled(fn: str) -> EagerRule:
    def write(a: list[A], dest: str) -> str | None:
        x, y, s = a
        if x.src == dest:
            return f"{dest}.{fn}_({y.src}, alpha={s.src})"
        return f"torch.{fn}({x.src}, {y.src}, alpha={s.src}, out={dest})"

    return EagerRule(lambda a: f"torch.{fn}({a[0].src}, {a[1].src}, alpha={a[2].src})", write)


def _no_write(a: list[A], dest: str) -> str | None:
    return None


def _scalar_rule(op: str) -> EagerRule:
    """Rules whose results are 0-d tensors: never written into a buffer."""
    return EagerRule(FUNCTIONAL[op], _no_write)


EAGER: dict[str, EagerRule] = {
    **{op: _eager_unary(op) for op in _UNARY_TORCH},
    "exp10": EagerRule(FUNCTIONAL["exp10"], lambda a, d: f"torch.pow(10.0, {a[0].src}, out={d})"),
    "cube": EagerRule(
        lambda a: f"torch.pow({a[0].src}, 3)",
        lambda a, d: f"{d}.pow_(3)" if a[0].src == d else f"torch.pow({a[0].src}, 3, out={d})",
    ),
    "cbrt": EagerRule(FUNCTIONAL["cbrt"], _no_write),
    **{op: _eager_binary(op) for op in _TORCH_BINARY},
    "maximum": _eager_extremum("maximum"),
    "minimum": _eager_extremum("minimum"),
    "interp": EagerRule(_interp_expr, _interp_write),
    **{op: _eager_compare(op) for op in _COMPARE},
    **{op: _scalar_rule(op) for op in ("norm", "sum", "numel", "ndim")},
    "tensor_dot": EagerRule(
        lambda a: f"torch.dot({a[0].src}.reshape(-1), {a[1].src}.reshape(-1))", _no_write
    ),
    "combine_norm": _scalar_rule("combine_norm"),
    "combine_sum": _scalar_rule("combine_sum"),
    "as_local": _scalar_rule("as_local"),  # the generator supplies the parameter
    "add_scaled": _scaled("add"),
    "sub_scaled": _scaled("sub"),
}
# Ops without a torch spelling: their formula, as an expression (never written into a buffer).
EAGER.update(
    {name: EagerRule(FUNCTIONAL[name], _no_write) for name in FUNCTIONAL if name not in EAGER}
)


# -- foreach, a list of tensors at a time -------------------------------------------------------
def _fe(name: str, a: list[A], inplace: bool) -> str:
    return f"torch._foreach_{name}{'_' if inplace else ''}({', '.join(x.src for x in a)})"


def _fe_unary(op: str, a: list[A], inplace: bool) -> str | None:
    if a[0].kind not in ("T", "SL"):
        return None
    x = a[0].src
    if op in _UNARY_TORCH and _UNARY_TORCH[op] in _FOREACH_UNARY:
        return _fe(_UNARY_TORCH[op], a, inplace)
    if op == "square":
        return f"torch._foreach_mul{'_' if inplace else ''}({x}, {x})"
    if op == "cube":
        return f"torch._foreach_pow{'_' if inplace else ''}({x}, 3)"
    if op in ("exp2", "exp10") and not inplace:
        return f"torch._foreach_pow({'2.0' if op == 'exp2' else '10.0'}, {x})"
    return None


def _fe_binary(op: str, a: list[A], pos: int | None) -> str | None:
    name = _TORCH_BINARY.get(op, op)
    x, y = a
    lists = ("T", "SL")
    if pos == 1 or (x.kind not in lists and OPS[op].commutative):
        if not OPS[op].commutative:
            return None
        x, y = y, x
    if x.kind not in lists:
        if op == "power" and x.kind == "N" and y.kind == "T" and pos is None:
            return _fe(name, [x, y], False)  # a number to the power of each tensor
        return None
    if y.kind in lists and y.kind != x.kind:
        return None  # a list of tensors with a list of 0-d tensors: shapes differ
    return _fe(name, [x, y], pos is not None)


def _fe_interp(a: list[A], pos: int | None) -> str | None:
    x, y, w = a
    if x.kind != "T" or y.kind != "T" or w.kind not in ("N", "NL") or pos not in (None, 0, 1):
        return None
    call = f"_foreach_interp({x.src}, {y.src}, {w.src}"
    return f"{call})" if pos is None else f"{call}, out={a[pos].src})"


def _fe_scaled(fn: str) -> Callable[[list[A], int | None], str | None]:
    def rule(a: list[A], pos: int | None) -> str | None:
        x, y, s = a
        if x.kind != "T" or y.kind != "T" or s.kind != "N" or pos not in (None, 0):
            return None
        inplace = "_" if pos == 0 else ""
        return f"torch._foreach_{fn}{inplace}({x.src}, {y.src}, alpha={s.src})"

    return rule


def _fe_unary_rule(op: str) -> Callable[[list[A], int | None], str | None]:
    def rule(a: list[A], pos: int | None) -> str | None:
        return _fe_unary(op, a, pos == 0) if pos in (None, 0) else None

    return rule


def _fe_binary_rule(op: str) -> Callable[[list[A], int | None], str | None]:
    return lambda a, pos: _fe_binary(op, a, pos)


def _no_foreach(a: list[A], pos: int | None) -> str | None:
    """No foreach kernel: the caller loops the eager rule over the tensors."""
    return None


def _fe_norm(a: list[A], pos: int | None) -> str | None:
    return f"torch._foreach_norm({a[0].src})" if a[0].kind == "T" and pos is None else None


FOREACH: dict[str, Callable[[list[A], int | None], str | None]] = {
    **{op: _fe_unary_rule(op) for op, o in OPS.items() if o.kind is Kind.UNARY},
    **{
        op: _fe_binary_rule(op) if o.foreach else _no_foreach
        for op, o in OPS.items()
        if o.kind is Kind.BINARY
    },
    "interp": _fe_interp,
    "where": _no_foreach,
    "norm": _fe_norm,
    "sum": _no_foreach,
    "numel": _no_foreach,
    "ndim": _no_foreach,
    "tensor_dot": lambda a, pos: None,
    "combine_norm": lambda a, pos: None,
    "combine_sum": lambda a, pos: None,
    "as_local": lambda a, pos: None,
    "add_scaled": _fe_scaled("add"),
    "sub_scaled": _fe_scaled("sub"),
}

_LOOP_VARS = ("_x", "_y", "_z")
_LIST_KINDS = {"T": "T", "SL": "S", "NL": "N"}


def _elements(args: list[A]) -> tuple[list[A], list[tuple[str, str]]]:
    """Per-element arguments of a loop over the lists among ``args``, and the (var, list) pairs."""
    elems: list[A] = []
    pairs: list[tuple[str, str]] = []
    for arg, var in zip(args, _LOOP_VARS, strict=False):
        if arg.kind in _LIST_KINDS:
            elems.append(A(var, _LIST_KINDS[arg.kind]))
            pairs.append((var, arg.src))
        else:
            elems.append(arg)
    return elems, pairs


def _zip(pairs: list[tuple[str, str]]) -> str:
    names = ", ".join(v for v, _ in pairs)
    if len(pairs) == 1:
        return f"{names} in {pairs[0][1]}"
    return f"{names} in zip({', '.join(src for _, src in pairs)}, strict=True)"


def foreach_source(op: str, args: list[A], pos: int | None, weight: str = "w") -> str | None:
    """Foreach source of ``op``: an expression (``pos`` None) or an in-place statement into the
    list ``args[pos]``; a loop of the eager rule where no foreach kernel fits; None when the
    in-place form is impossible (the caller then makes a new list).

    >>> foreach_source("arcsinh", [A("x", "T")], None)
    '[torch.asinh(_x) for _x in x]'
    """
    if op == "as_local" and pos is None:
        src, kind = args[0].src, args[0].kind
        if kind == "S":
            return f"[{src}] * len({weight})"
        if kind == "NL":
            return f"[_x.new_tensor(_y) for _x, _y in zip({weight}, {src}, strict=True)]"
        return f"[_x.new_tensor({src}) for _x in {weight}]"
    fast = FOREACH[op](args, pos)
    if fast is not None:
        return fast
    elems, pairs = _elements(args)
    rule = EAGER[op]
    if pos is None:
        return f"[{rule.expr(elems)} for {_zip(pairs)}]"
    if args[pos].kind != "T":
        return None
    body = rule.into(elems, elems[pos].src)
    if body is None:
        return None
    return f"for {_zip(pairs)}:\n    {body}"


def covered_ops() -> set[str]:
    """The ops every table handles: the language's (constants are literals, global reductions
    are lowered to ``norm``, ``tensor_dot`` and combinations) and the lowering's own."""
    lowered_away = COMPOUND | {n for n in PRIMITIVE_REDUCTIONS if OPS[n].global_reduction}
    ops = {n for n, o in OPS.items() if o.kind is not Kind.CONSTANT} - lowered_away
    return ops | set(INTERNAL_OPS)
