"""The op table: every function of the language, declared once, with its spellings.

Each row says what an op is (kind, arity, argument types, commutativity, infix) and how each
interpretation spells it where that is natural: the NumPy function, the torch function (and its
in-place method and ``torch._foreach_*`` kernel), the SymPy function, the mpmath function, the
Python operator. An op that an interpretation cannot spell directly has a :class:`Formula`, its
definition in the language's own syntax over other ops, which that interpretation composes from
its own rules. So a new element-wise op is one row here (plus its tests and docs).

Compound ops (``cosine_sim``, ``clip``) and the ``hero`` protections (``a / (b + 1e-8)``,
``sqrt(|x|)``, ...) are formulas too; the lowering pass :mod:`simplifier.passes.lower` rewrites
them into primitives before an interpreter runs a program. The protection constant is
:data:`EPS_EXACT`, here and nowhere else.

Each interpretation (numpy, torch, the batched engine, the 50-digit interpreter, SymPy, types,
hash, emitted torch source) is its own table keyed by op name, built from these rows;
``tests/test_ops.py`` asserts that every table covers every op.

>>> OPS["interp"].arity, resolve("interpolate").name
(3, 'interp')
>>> OPS["clip"].formula.text, OPS["div"].hero.text
('x * minimum(1, y / global_norm(x))', 'x / (y + get_eps())')
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Literal, TypeVar

V = TypeVar("V")


class Kind(Enum):
    UNARY = "unary"  # element-wise, one argument
    BINARY = "binary"  # element-wise, two arguments
    MIX = "mix"  # interp(x, y, a): element-wise, a must be a scalar
    TERNARY = "ternary"  # element-wise, three arguments, all broadcast: where, clamp
    REDUCTION = "reduction"  # tensor(s) -> scalar
    CLIP = "clip"  # clip(x, c): x rescaled by a global reduction, c must be a scalar
    CONSTANT = "constant"  # no arguments, a scalar


Semantics = Literal["math", "hero"]
SEMANTICS: tuple[Semantics, ...] = ("math", "hero")

EPS_EXACT = Fraction(1, 10**8)  # get_eps(), and the protection constant of the `hero` semantics
EPS = float(EPS_EXACT)

# The names of a formula's arguments, by position.
ARGS = ("x", "y", "a")


# -- formulas: an op's meaning in terms of other ops ----------------------------------------------
# A formula is parsed once into a small tree: ("arg", i), ("const", Fraction) or (op, *children).
Tree = tuple[object, ...]

_BINOPS: dict[type, str] = {
    ast.Add: "add",
    ast.Sub: "sub",
    ast.Mult: "mul",
    ast.Div: "div",
    ast.Pow: "power",
}


@dataclass(frozen=True)
class Formula:
    """An op's definition in the language's syntax over its arguments ``x``, ``y``, ``a``.

    Literal subexpressions are folded exactly (``1/3`` is ``Fraction(1, 3)``).

    >>> f = Formula("sign(x) * power(abs(x), 1/3)")
    >>> f.tree
    ('mul', ('sign', ('arg', 0)), ('power', ('abs', ('arg', 0)), ('const', Fraction(1, 3))))
    >>> f.compose({"sign": lambda x: 1, "abs": abs, "mul": lambda a, b: a * b,
    ...            "power": lambda a, b: a ** b}, float)(-8.0)
    2.0
    """

    text: str
    tree: Tree = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tree", _tree(ast.parse(self.text, mode="eval").body))

    def ops(self) -> set[str]:
        """The ops the formula uses."""
        found: set[str] = set()

        def walk(t: Tree) -> None:
            if t[0] not in ("arg", "const"):
                found.add(str(t[0]))
                for c in _children(t):
                    walk(c)

        walk(self.tree)
        return found

    def compose(
        self, table: Mapping[str, Callable[..., V]], const: Callable[[Fraction], V]
    ) -> Callable[..., V]:
        """The formula as a function, built from ``table``'s rules (``const`` makes literals)."""

        def build(t: Tree) -> Callable[[tuple[V, ...]], V]:
            head = t[0]
            if head == "arg":
                i = t[1]
                assert isinstance(i, int)
                return lambda xs: xs[i]
            if head == "const":
                assert isinstance(t[1], Fraction)
                value = const(t[1])
                return lambda xs: value
            f = table[str(head)]
            parts = [build(c) for c in _children(t)]
            if len(parts) == 1:
                (p,) = parts
                return lambda xs: f(p(xs))
            if len(parts) == 2:
                p, q = parts
                return lambda xs: f(p(xs), q(xs))
            return lambda xs: f(*(p(xs) for p in parts))

        body = build(self.tree)
        return lambda *xs: body(xs)


def _children(t: Tree) -> list[Tree]:
    return [c for c in t[1:] if isinstance(c, tuple)]


def _tree(node: ast.expr) -> Tree:
    if isinstance(node, ast.Name) and node.id in ARGS:
        return ("arg", ARGS.index(node.id))
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return ("const", Fraction(Decimal(repr(node.value))))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _tree(node.operand)
        if inner[0] == "const" and isinstance(inner[1], Fraction):
            return ("const", -inner[1])
        return ("negative", inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _tree(node.left), _tree(node.right)
        name = _BINOPS[type(node.op)]
        a, b = left[-1], right[-1]
        if left[0] == "const" and right[0] == "const":
            assert isinstance(a, Fraction) and isinstance(b, Fraction)
            return ("const", _fold(name, a, b))
        return (name, left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        return (node.func.id, *(_tree(a) for a in node.args))
    raise ValueError(f"not a formula: {ast.unparse(node)}")


def _fold(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "power":
        if b.denominator != 1:
            raise ValueError("a literal power must have an integer exponent")
        return a ** int(b)
    return {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b if b else a}[op]


# -- the rows ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Op:
    """One op. The spelling fields are None where an interpretation has no function of its own
    (it then composes ``formula``, or, for the non-element-wise ops, has its own rule)."""

    name: str
    kind: Kind
    arity: int
    aliases: tuple[str, ...] = ()
    commutative: bool = False
    infix: str | None = None  # printed as an infix operator
    scalar_args: tuple[int, ...] = ()  # argument positions that must be scalars
    tensor_args: tuple[int, ...] = ()  # argument positions that must be tensors
    global_reduction: bool = False  # reduces over all parameters of the optimizer, not one tensor
    # spellings
    numpy: str | None = None  # numpy.<numpy>
    torch: str | None = None  # torch.<torch>, which takes out= when `inplace` is set
    inplace: str | None = None  # the in-place Tensor method, x.<inplace>(...)
    foreach: str | None = None  # torch._foreach_<foreach> (and its in-place _foreach_<foreach>_)
    sympy: str | None = None  # sympy.<sympy>
    mpmath: str | None = None  # mpmath.<mpmath>
    operator: str | None = None  # operator.<operator>, for interpretations on Python numbers
    formula: Formula | None = None  # the op in terms of others (where a spelling is missing)
    compound: bool = False  # always lowered to `formula` before interpretation
    hero: Formula | None = None  # the protected meaning under `hero` semantics, over math ops
    algebraic: bool = False  # SymPy folding looks into it (else it is an opaque function)
    value: float | None = None  # a constant's value (float64)
    exact: Fraction | None = None  # a constant's exact value, when it is rational
    # A comparison: the spellings return booleans (NaN compares false, except with `!=`);
    # the language's value is 1.0 where the relation holds and 0.0 where it does not.
    truth: bool = False

    @property
    def elementwise(self) -> bool:
        return self.kind in (Kind.UNARY, Kind.BINARY, Kind.MIX, Kind.TERNARY)


def _f(text: str | None) -> Formula | None:
    return Formula(text) if text else None


def _unary(
    name: str,
    numpy: str | None = None,
    torch: str | None = None,
    *,
    inplace: bool = True,
    foreach: bool = False,
    sympy: str | None = None,
    mpmath: str | None = None,
    formula: str | None = None,
    hero: str | None = None,
    algebraic: bool = False,
) -> Op:
    """A unary row; ``inplace``/``foreach``: torch has ``x.<torch>_()`` / ``_foreach_<torch>``."""
    return Op(
        name,
        Kind.UNARY,
        1,
        numpy=numpy,
        torch=torch,
        inplace=f"{torch}_" if torch and inplace else None,
        foreach=torch if torch and foreach else None,
        sympy=sympy,
        mpmath=mpmath,
        formula=_f(formula),
        hero=_f(hero),
        algebraic=algebraic,
    )


def _same(name: str, **kw: object) -> Op:
    """A unary op spelled ``name`` in numpy, torch, SymPy and mpmath alike."""
    return _unary(name, name, name, sympy=name, mpmath=name, **kw)  # type: ignore[arg-type]


_OPS: list[Op] = [
    _unary("abs", "abs", "abs", foreach=True, sympy="Abs", mpmath="fabs", algebraic=True),
    _same("cos", foreach=True),
    _same("sin", foreach=True),
    _same("tan", foreach=True),
    _unary("arcsin", "arcsin", "asin", foreach=True, sympy="asin", mpmath="asin"),
    _unary("arccos", "arccos", "acos", foreach=True, sympy="acos", mpmath="acos"),
    _unary("arctan", "arctan", "atan", foreach=True, sympy="atan", mpmath="atan"),
    _same("sinh", foreach=True),
    _same("cosh", foreach=True),
    _same("tanh", foreach=True),
    _unary("arcsinh", "arcsinh", "asinh", sympy="asinh", mpmath="asinh"),
    _unary("arccosh", "arccosh", "acosh", sympy="acosh", mpmath="acosh"),
    _unary("arctanh", "arctanh", "atanh", sympy="atanh", mpmath="atanh"),
    _same("exp", foreach=True, algebraic=True),
    _unary("exp2", "exp2", "exp2", formula="power(2, x)"),
    _unary("exp10", formula="power(10, x)"),
    _unary("expm1", "expm1", "expm1", foreach=True, mpmath="expm1", formula="exp(x) - 1"),
    _same("log", foreach=True, hero="log(abs(x))", algebraic=True),
    _unary(
        "log10",
        "log10",
        "log10",
        foreach=True,
        mpmath="log10",
        formula="log(x) / log(10)",
        hero="log10(abs(x))",
    ),
    _unary("log2", "log2", "log2", foreach=True, formula="log(x) / log(2)", hero="log2(abs(x))"),
    _unary(
        "log1p",
        "log1p",
        "log1p",
        foreach=True,
        mpmath="log1p",
        formula="log(1 + x)",
        hero="log(abs(1 + x))",
    ),
    _unary("square", "square", "square", formula="x * x", algebraic=True),
    _same("sqrt", foreach=True, hero="sqrt(abs(x))", algebraic=True),
    _unary("cube", formula="x * x * x", algebraic=True),
    _unary("cbrt", "cbrt", formula="sign(x) * power(abs(x), 1/3)"),
    _same("sign", foreach=True, algebraic=True),
    _unary("reciprocal", None, "reciprocal", foreach=True, formula="1 / x", algebraic=True),
    _unary("negative", "negative", "neg", foreach=True, formula="0 - x", algebraic=True),
    _unary("sigmoid", None, "sigmoid", foreach=True, mpmath="sigmoid", formula="1 / (1 + exp(-x))"),
    _same("floor", foreach=True),
]


def _binary(
    name: str,
    torch: str,
    operator: str | None = None,
    infix: str | None = None,
    *,
    numpy: str | None = None,
    inplace: bool = True,
    foreach: bool = True,
    commutative: bool = False,
    aliases: tuple[str, ...] = (),
    sympy: str | None = None,
    hero: str | None = None,
    algebraic: bool = True,
    truth: bool = False,
) -> Op:
    return Op(
        name,
        Kind.BINARY,
        2,
        aliases=aliases,
        commutative=commutative,
        infix=infix,
        numpy=numpy or name,
        torch=torch,
        inplace=f"{torch}_" if inplace else None,
        foreach=torch if foreach else None,
        sympy=sympy,
        operator=operator,
        hero=_f(hero),
        algebraic=algebraic,
        truth=truth,
    )


def _compare(name: str, infix: str, numpy: str, sympy: str, commutative: bool = False) -> Op:
    """A comparison ``x <infix> y``: 1.0 where it holds, else 0.0 (torch and Python spell it
    ``name``; SymPy's relational class is ``sympy``)."""
    return _binary(
        name,
        name,
        name,
        infix,
        numpy=numpy,
        foreach=False,
        commutative=commutative,
        sympy=sympy,
        algebraic=False,
        truth=True,
    )


_OPS += [
    _binary("add", "add", "add", "+", commutative=True),
    _binary("sub", "sub", "sub", "-", numpy="subtract"),
    _binary("mul", "mul", "mul", "*", commutative=True, numpy="multiply"),
    _binary("div", "div", "truediv", "/", numpy="divide", hero="x / (y + get_eps())"),
    _binary("power", "pow", "pow", "**"),
    # Python's floor modulo (the result has the divisor's sign; x % 0 is NaN), as numpy.mod
    # and torch.remainder compute it; SymPy's Mod means the same over the reals.
    _binary("mod", "remainder", "mod", "%", foreach=False, sympy="Mod", algebraic=False),
    _compare("lt", "<", "less", "Lt"),
    _compare("le", "<=", "less_equal", "Le"),
    _compare("gt", ">", "greater", "Gt"),
    _compare("ge", ">=", "greater_equal", "Ge"),
    _compare("eq", "==", "equal", "Eq", commutative=True),
    _compare("ne", "!=", "not_equal", "Ne", commutative=True),
    _binary(
        "maximum",
        "maximum",
        None,
        None,
        aliases=("max",),
        commutative=True,
        inplace=False,
        sympy="Max",
    ),
    _binary(
        "minimum",
        "minimum",
        None,
        None,
        aliases=("min",),
        commutative=True,
        inplace=False,
        sympy="Min",
    ),
    Op(
        "interp",
        Kind.MIX,
        3,
        aliases=("interpolate",),
        scalar_args=(2,),
        formula=Formula("(1 - a) * x + a * y"),
        algebraic=True,
    ),
    # where(c, a, b): a where c != 0 (NaN counts as true, as in Python), else b. Its own rule in
    # each interpretation but NumPy's (numpy.where reads c the same way).
    Op("where", Kind.TERNARY, 3, numpy="where"),
    # Compound: lowered before emission, so that its parts are planned by their own kinds.
    Op("clamp", Kind.TERNARY, 3, formula=Formula("minimum(maximum(x, y), a)"), compound=True),
    Op("norm", Kind.REDUCTION, 1, tensor_args=(0,)),
    # Per-tensor sums and sizes: enough to define most reductions as formulas (mean below).
    Op("sum", Kind.REDUCTION, 1, tensor_args=(0,)),
    Op("numel", Kind.REDUCTION, 1, tensor_args=(0,)),
    Op("ndim", Kind.REDUCTION, 1, tensor_args=(0,)),
    Op(
        "mean",
        Kind.REDUCTION,
        1,
        tensor_args=(0,),
        formula=Formula("sum(x) / numel(x)"),
        compound=True,
    ),
    Op("global_norm", Kind.REDUCTION, 1, tensor_args=(0,), global_reduction=True),
    Op("dot", Kind.REDUCTION, 2, commutative=True, tensor_args=(0, 1), global_reduction=True),
    Op(
        "cosine_sim",
        Kind.REDUCTION,
        2,
        commutative=True,
        tensor_args=(0, 1),
        global_reduction=True,
        formula=Formula("dot(x, y) / (global_norm(x) * global_norm(y))"),
        compound=True,
    ),
    Op(
        "clip",
        Kind.CLIP,
        2,
        aliases=("clip_by_global_norm",),
        scalar_args=(1,),
        global_reduction=True,
        formula=Formula("x * minimum(1, y / global_norm(x))"),
        compound=True,
    ),
    Op("get_pi", Kind.CONSTANT, 0, sympy="pi", mpmath="pi", value=3.141592653589793),
    Op("get_e", Kind.CONSTANT, 0, sympy="E", mpmath="e", value=2.718281828459045),
    Op("get_eps", Kind.CONSTANT, 0, value=EPS, exact=EPS_EXACT),
]

OPS: dict[str, Op] = {op.name: op for op in _OPS}
ALIASES: dict[str, str] = {alias: op.name for op in _OPS for alias in op.aliases}
# Binary operators of the surface syntax, mapped to op names.
INFIX: dict[str, str] = {op.infix: op.name for op in _OPS if op.infix}
# The ops the `hero` semantics protects, and the compound ops: what the lowering pass rewrites.
PROTECTED: frozenset[str] = frozenset(op.name for op in _OPS if op.hero is not None)
COMPOUND: frozenset[str] = frozenset(op.name for op in _OPS if op.compound)
# The reductions every interpreter implements itself (what is left after lowering).
PRIMITIVE_REDUCTIONS: frozenset[str] = frozenset(
    op.name for op in _OPS if op.kind is Kind.REDUCTION and not op.compound
)

# Functions callable by name in source text: all but + - * / (which are only written infix).
CALLABLE: dict[str, str] = {
    **{op.name: op.name for op in _OPS if op.infix is None or op.name == "power"},
    **ALIASES,
}


def resolve(name: str) -> Op | None:
    """The op a function name (or alias) denotes, or None.

    >>> resolve("max").name
    'maximum'
    """
    canonical = CALLABLE.get(name)
    return OPS[canonical] if canonical else None


def elementwise_table(
    native: Callable[[Op], Callable[..., V] | None],
    const: Callable[[Fraction], V],
    special: Mapping[str, Callable[..., V]] | None = None,
) -> dict[str, Callable[..., V]]:
    """An interpretation's table of element-wise rules, driven by the rows.

    Each op gets ``special[name]`` if given, else ``native(op)`` (its spelling in this
    interpretation, or None), else its formula composed from this same table.
    """
    table: dict[str, Callable[..., V]] = dict(special or {})
    pending: list[Op] = []
    for op in _OPS:
        if not op.elementwise or op.name in table:
            continue
        rule = native(op)
        if rule is not None:
            table[op.name] = rule
        else:
            pending.append(op)
    while pending:  # formulas over ops that are themselves formulas: resolve in dependency order
        ready = [op for op in pending if op.formula and op.formula.ops() <= table.keys()]
        if not ready:
            raise ValueError(f"no rule for {sorted(op.name for op in pending)}")
        for op in ready:
            assert op.formula is not None
            table[op.name] = op.formula.compose(table, const)
            pending.remove(op)
    return table


def hero_table(
    table: Mapping[str, Callable[..., V]], const: Callable[[Fraction], V]
) -> dict[str, Callable[..., V]]:
    """The protected rules of the ``hero`` semantics, composed from a (math) ``table``.

    ``table`` must give the constants (``get_eps``) as zero-argument rules.
    """
    formulas = {name: OPS[name].hero for name in PROTECTED}
    return {name: f.compose(table, const) for name, f in formulas.items() if f is not None}
