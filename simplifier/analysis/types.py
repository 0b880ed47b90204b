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
    return ProgramError.at(message, program.path, program.source, line, col)


def _fn_name(stmt: Stmt) -> str:
    op = OPS[stmt.op]
    return f"'{op.infix}'" if op.infix and stmt.op != "power" else f"{stmt.op}()"


# Per op: (positions that must be scalars, positions that must be tensors, result rule), where
# the rule is a fixed type, "first" (the first argument's type: clip) or None (element-wise: a
# tensor if any argument is one). A table, so that the hot loop does one lookup per statement.
def _result(kind: Kind) -> Type | str | None:
    if kind in (Kind.REDUCTION, Kind.CONSTANT):
        return Type.SCALAR
    return "first" if kind is Kind.CLIP else None


_RULES: dict[str, tuple[tuple[int, ...], tuple[int, ...], Type | str | None]] = {
    name: (op.scalar_args, op.tensor_args, _result(op.kind)) for name, op in OPS.items()
}


def infer_types(program: Program) -> dict[str, Type]:
    """Map every SSA value to its type; raise ProgramError where a program is ill-typed."""
    rules = _RULES
    scalar, tensor = Type.SCALAR, Type.TENSOR

    def apply(s: Stmt, args: list[Type]) -> Type:
        must_be_scalar, must_be_tensor, result = rules[s.op]
        for i in must_be_scalar:
            if args[i] is tensor:
                raise _error(
                    program,
                    f"the {_ORDINAL[i]} argument of {_fn_name(s)} must be a scalar, got a tensor",
                    s.loc,
                )
        for i in must_be_tensor:
            if args[i] is scalar:
                raise _error(
                    program,
                    f"{_fn_name(s)} reduces a tensor; its {_ORDINAL[i]} argument is a scalar",
                    s.loc,
                )
        if result is None:
            return tensor if tensor in args else scalar
        return args[0] if result == "first" else result  # type: ignore[return-value]

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
