"""The op table: every function of the language, declared once.

Each interpretation (numpy, torch, types, hash, SymPy, emitted torch source) is its own table
keyed by op name; ``tests/test_ops.py`` asserts that every table covers every op.

>>> OPS["interp"].arity, resolve("interpolate").name
(3, 'interp')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    UNARY = "unary"  # element-wise, one argument
    BINARY = "binary"  # element-wise, two arguments
    MIX = "mix"  # interp(x, y, a): element-wise, a must be a scalar
    REDUCTION = "reduction"  # tensor(s) -> scalar
    CLIP = "clip"  # clip(x, c): x rescaled by a global reduction, c must be a scalar
    CONSTANT = "constant"  # no arguments, a scalar


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    kind: Kind
    arity: int
    aliases: tuple[str, ...] = ()
    commutative: bool = False
    infix: str | None = None  # printed as an infix operator
    scalar_args: tuple[int, ...] = ()  # argument positions that must be scalars
    tensor_args: tuple[int, ...] = ()  # argument positions that must be tensors
    global_reduction: bool = False  # reduces over all parameters of the optimizer, not one tensor

    @property
    def elementwise(self) -> bool:
        return self.kind in (Kind.UNARY, Kind.BINARY, Kind.MIX)


_UNARY = (
    "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 exp10 "
    "expm1 log log10 log2 log1p square sqrt cube cbrt sign reciprocal negative"
).split()

_OPS: list[Op] = [Op(name, Kind.UNARY, 1) for name in _UNARY]
_OPS += [
    Op("add", Kind.BINARY, 2, commutative=True, infix="+"),
    Op("sub", Kind.BINARY, 2, infix="-"),
    Op("mul", Kind.BINARY, 2, commutative=True, infix="*"),
    Op("div", Kind.BINARY, 2, infix="/"),
    Op("power", Kind.BINARY, 2, infix="**"),
    Op("maximum", Kind.BINARY, 2, aliases=("max",), commutative=True),
    Op("minimum", Kind.BINARY, 2, aliases=("min",), commutative=True),
    Op("interp", Kind.MIX, 3, aliases=("interpolate",), scalar_args=(2,)),
    Op("norm", Kind.REDUCTION, 1, tensor_args=(0,)),
    Op("global_norm", Kind.REDUCTION, 1, tensor_args=(0,), global_reduction=True),
    Op("dot", Kind.REDUCTION, 2, commutative=True, tensor_args=(0, 1), global_reduction=True),
    Op(
        "cosine_sim",
        Kind.REDUCTION,
        2,
        commutative=True,
        tensor_args=(0, 1),
        global_reduction=True,
    ),
    Op(
        "clip",
        Kind.CLIP,
        2,
        aliases=("clip_by_global_norm",),
        scalar_args=(1,),
        global_reduction=True,
    ),
    Op("get_pi", Kind.CONSTANT, 0),
    Op("get_e", Kind.CONSTANT, 0),
    Op("get_eps", Kind.CONSTANT, 0),
]

OPS: dict[str, Op] = {op.name: op for op in _OPS}
ALIASES: dict[str, str] = {alias: op.name for op in _OPS for alias in op.aliases}
# Binary operators of the surface syntax, mapped to op names.
INFIX: dict[str, str] = {op.infix: op.name for op in _OPS if op.infix}
EPS = 1e-8  # get_eps(), and the protection constant of the `hero` semantics

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
