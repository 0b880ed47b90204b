"""Type inference: every SSA value is a scalar or a tensor. The one place that decides validity.

>>> from simplifier.parse import parse
>>> t = infer_types(parse("def f(w, g, lr):\\n  s = lr * 2\\n  return g * s\\n"))
>>> t["s.1"].value, t["g"].value
('scalar', 'tensor')
"""

from __future__ import annotations

from enum import Enum

from simplifier.errors import ProgramError
from simplifier.interpret import forward
from simplifier.ir import Loc, Program, Role, Stmt
from simplifier.ops import OPS, Kind


class Type(Enum):
    SCALAR = "scalar"
    TENSOR = "tensor"


INPUT_TYPES = {
    Role.WEIGHT: Type.TENSOR,
    Role.GRADIENT: Type.TENSOR,
    Role.STATE: Type.TENSOR,
    Role.LR: Type.SCALAR,
    Role.STEP: Type.SCALAR,
    Role.HYPER: Type.SCALAR,
}
_ORDINAL = ("first", "second", "third")


def _error(program: Program, message: str, loc: Loc | None) -> ProgramError:
    line, col = (loc.line, loc.col) if loc else (1, 1)
    lines = program.source.splitlines() if program.source else []
    src = lines[line - 1] if 0 < line <= len(lines) else None
    return ProgramError(message, program.path, line, col, src)


def _fn_name(stmt: Stmt) -> str:
    op = OPS[stmt.op]
    return f"'{op.infix}'" if op.infix and stmt.op != "power" else f"{stmt.op}()"


def infer_types(program: Program) -> dict[str, Type]:
    """Map every SSA value to its type; raise ProgramError where a program is ill-typed."""

    def apply(s: Stmt, args: list[Type]) -> Type:
        op = OPS[s.op]
        for i in op.scalar_args:
            if args[i] is Type.TENSOR:
                raise _error(
                    program,
                    f"the {_ORDINAL[i]} argument of {_fn_name(s)} must be a scalar, got a tensor",
                    s.loc,
                )
        for i in op.tensor_args:
            if args[i] is Type.SCALAR:
                raise _error(
                    program,
                    f"{_fn_name(s)} reduces a tensor; its {_ORDINAL[i]} argument is a scalar",
                    s.loc,
                )
        if op.kind in (Kind.REDUCTION, Kind.CONSTANT):
            return Type.SCALAR
        if op.kind is Kind.CLIP:
            return args[0]
        return Type.TENSOR if Type.TENSOR in args else Type.SCALAR

    inputs = {p.name: INPUT_TYPES[p.role] for p in program.params}
    env, outs = forward(program, inputs, apply, lambda c: Type.SCALAR)
    locs = program.output_locs or (None,) * len(outs)
    for name, t, loc in zip(program.states, outs[1:], locs[1:], strict=True):
        if t is Type.SCALAR:
            raise _error(
                program,
                f"state {name!r} must be a tensor at the end of the step, but "
                "this return value is a scalar",
                loc,
            )
    return env
