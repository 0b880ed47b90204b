"""Every op through every emitted code path, in every kind of argument position, and random
programs (Hypothesis) through the eager paths, all against the reference interpreter.

Kinds: a tensor, a literal, a per-parameter 0-d tensor (``norm(w)``), a group-wide 0-d tensor
(``dot(g, w)``, a reduction over all parameters), a per-parameter number (from ``step``).
"""

from __future__ import annotations

import pytest
import torch
from emit_support import assert_close_steps, inputs, run_emitted, run_reference, signature
from hypothesis import HealthCheck, given, settings

from simplifier.emit import compile_torch
from simplifier.emit.torch_source import EAGER, FOREACH, FUNCTIONAL, covered_ops
from simplifier.ops import OPS, Kind
from simplifier.parse import parse
from simplifier.testing import SAFE_BINARY, SAFE_UNARY, Profile, programs

# Arguments kept inside each op's domain (the point is the code path, not NaN propagation).
DOMAIN = {
    "arcsin": "tanh({x})",
    "arccos": "tanh({x})",
    "arctanh": "tanh({x}) * 0.5",
    "arccosh": "abs({x}) + 1",
    "log": "abs({x}) + 0.5",
    "log2": "abs({x}) + 0.5",
    "log10": "abs({x}) + 0.5",
    "log1p": "abs({x})",
    "sqrt": "abs({x})",
    "reciprocal": "abs({x}) + 1",
    "tan": "tanh({x})",
    "exp": "tanh({x})",
    "exp2": "tanh({x})",
    "exp10": "tanh({x})",
    "expm1": "tanh({x})",
    "sinh": "tanh({x})",
    "cosh": "tanh({x})",
}
FIRST = {"power": "abs({x}) + 0.5"}  # the base of a power
SECOND = {"div": "abs({x}) + 1", "power": "tanh({x})"}  # a divisor; an exponent


def _d(table: dict[str, str], op: str, x: str) -> str:
    return table.get(op, "{x}").format(x=x)


def unary_program(op: str) -> str:
    def u(x: str) -> str:
        return f"{op}({_d(DOMAIN, op, x)})"

    return f"""def f(w, g, m, lr, step):
  a = {u("g")}
  m = interp(g, m, 0.9) + {u("m")} * 0.1
  s = {u("norm(w) * 0.1")}
  t = {u("dot(g, w) * 0.01")}
  k = {u("step * 0.1")}
  update = lr * 0.01 * (a + s + t + k)
  return update, m
"""


def binary_program(op: str) -> str:
    def b(x: str, y: str) -> str:
        args = _d(FIRST, op, x), _d(SECOND, op, y)
        if OPS[op].infix and op != "power":
            return f"({args[0]}) {OPS[op].infix} ({args[1]})"
        return f"{op}({args[0]}, {args[1]})"

    return f"""def f(w, g, m, lr, step):
  a = {b("g", "m")}
  c = {b("g", "0.5")}
  d = {b("0.5", "g")}
  e = {b("norm(w)", "g")}
  h = {b("g", "dot(g, w) * 0.01")}
  k = {b("lr", "norm(g)")}
  n = {b("step * 0.1", "g")}
  m = interp(g, m, 0.9) + {b("m", "g")} * 0.1
  update = lr * 0.01 * (a + c + d + e + h + k + n)
  return update, m
"""


INTERP = """def f(w, g, m, lr, step):
  a = interp(g, m, 0.3) + interp(g, 0.5, 0.3) + interp(0.5, g, lr)
  b = interp(g, m, norm(w) * 0.1) + interp(g, m, dot(g, w) * 0.01)
  c = interp(g, w, step * 0.01) + interp(norm(w), g, 0.2)
  m = interp(a, m, 0.9)
  update = lr * 0.01 * (a + b + c)
  return update, m
"""

SECOND["mod"] = "abs({x}) + 1"


def ternary_program(op: str) -> str:
    """``where``/``clamp`` with tensors, numbers, 0-d tensors and step numbers in each place
    (comparisons as conditions; ``where(0.5, ...)`` and a condition that is exactly 0 too)."""
    return f"""def f(w, g, m, lr, step):
  a = {op}(g, m, w) + {op}(g, -0.5, 0.5) + {op}(0.5, g, m)
  c = {op}(norm(w) - 1, g, m) + {op}(g, dot(g, w) * 0.01, 1) + {op}(lr, norm(g), 0.5)
  d = {op}(step * 0.1, g, 0.5) + {op}(g > 0, 0.5, -0.5) + {op}(g * 0, g, m)
  e = {op}(step % 2 == 0, g, 0.25) + {op}(norm(w), 0.5, lr)
  m = interp(g, m, 0.9) + {op}(m, g, 0.3) * 0.1
  update = lr * 0.01 * (a + c + d + e)
  return update, m
"""


OP_PROGRAMS = {
    **{op: unary_program(op) for op, o in OPS.items() if o.kind is Kind.UNARY},
    **{op: binary_program(op) for op, o in OPS.items() if o.kind is Kind.BINARY},
    "interp": INTERP,
    **{op: ternary_program(op) for op, o in OPS.items() if o.kind is Kind.TERNARY},
}

# The per-tensor reductions on each kind of tensor they may read, and mean (lowered to them).
PER_TENSOR = """def f(w, g, m, lr, step):
  a = sum(g) * g + numel(w) * 0.01 + ndim(g) * 0.1 + mean(m) + sum(g * m) / numel(m)
  m = interp(g, m, 0.9) + ndim(m) * 0.01 * m
  update = lr * 0.01 * (a + where(ndim(w) >= 2, g, -g))
  return update, m
"""


def test_every_table_covers_every_op() -> None:
    ops = covered_ops()
    assert set(FUNCTIONAL) == ops
    assert set(EAGER) == ops
    assert set(FOREACH) == ops
    language = {n for n, o in OPS.items() if o.kind is not Kind.CONSTANT}
    lowered = {"global_norm", "dot", "cosine_sim", "clip", "mean", "clamp"}  # parts, formulas
    assert language - ops == lowered
    assert set(OP_PROGRAMS) == {n for n, o in OPS.items() if o.elementwise}


@pytest.mark.parametrize("path", ["single", "foreach"])
@pytest.mark.parametrize("op", sorted(OP_PROGRAMS))
def test_op_in_every_argument_kind(op: str, path: str) -> None:
    text = OP_PROGRAMS[op]
    program = parse(text)
    data = inputs(torch.float64, steps=5)
    expected = run_reference(program, data, "math", torch.float64)
    cls = compile_torch(program)
    actual, _, _ = run_emitted(cls, signature(program), data, foreach=path == "foreach")
    assert_close_steps(actual, expected, 1e-10)


@pytest.mark.parametrize("path", ["single", "foreach", "fused"])
def test_per_tensor_reductions_on_every_path(path: str) -> None:
    """sum, numel, ndim (and mean) per tensor: the model has tensors of 0 to 3 dimensions,
    so ndim and numel differ between them; flat refuses such a program."""
    program = parse(PER_TENSOR)
    data = inputs(torch.float64, steps=4)
    assert {w.ndim for w in data.weights} == {0, 1, 2, 3}
    expected = run_reference(program, data, "math", torch.float64)
    cls = compile_torch(program)
    options = {"single": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    actual, _, _ = run_emitted(cls, signature(program), data, **options[path])
    assert_close_steps(actual, expected, 1e-10)
    params = [torch.nn.Parameter(w.clone()) for w in data.weights]
    with pytest.raises(ValueError, match=r"per-tensor reductions \(sum, numel, ndim, mean"):
        cls(params, flat=True)  # type: ignore[call-arg]


def test_constants_are_literals() -> None:
    text = "def f(w, g, lr):\n  return lr * (g * get_pi() + get_e() * w + get_eps())\n"
    program = parse(text)
    data = inputs(torch.float64, steps=3)
    cls = compile_torch(program)
    actual, _, _ = run_emitted(cls, signature(program), data)
    assert_close_steps(actual, run_reference(program, data, "math", torch.float64), 1e-12)


# Random programs: continuous ops only (sign's jump at 0 turns a rounding difference of lerp
# against the reference's (1 - a) x + a y into a difference of 2).
CONTINUOUS = Profile(
    unary=tuple(u for u in SAFE_UNARY if u != "sign"),
    binary=SAFE_BINARY,
    reductions=True,
    clip=True,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(programs(max_statements=8, profile=CONTINUOUS))
def test_random_programs_match_the_reference(text: str) -> None:
    for semantics in ("math", "hero"):
        program = parse(text)
        data = inputs(torch.float64, steps=3, seed=len(text))
        expected = run_reference(program, data, semantics, torch.float64)
        cls = compile_torch(program, semantics=semantics)
        for foreach in (False, True):
            actual, _, _ = run_emitted(cls, signature(program), data, foreach=foreach)
            assert_close_steps(actual, expected, 1e-9)


# Interp weights that are not finite (constant expressions may overflow; step * inf is a
# per-parameter number): the lerp kernels compute x + w (y - x), which differs from the
# program's (1 - w) x + w y there (+-inf where the program gives nan), so they must not run.
# Each line exercises one form: into the first or second argument, into a temporary, a new
# value, a per-parameter weight.
NONFINITE_INTERP = [
    "m = interp(g, m, 10 ** 400)\n  a = m",
    "m = interp(m, g, -(10 ** 400))\n  a = m",
    "a = interp(g, w, 10 ** 400)",
    "a = interp(w, g * 2, 10 ** 400) * 3",
    "a = interp(g, w, step * 10 ** 400)",
]


@pytest.mark.parametrize("path", ["single", "foreach", "fused", "flat"])
@pytest.mark.parametrize("line", NONFINITE_INTERP, ids=range(len(NONFINITE_INTERP)))
def test_interp_with_a_nonfinite_weight_is_the_programs_formula(line: str, path: str) -> None:
    program = parse(f"def f(w, g, m, lr, step):\n  {line}\n  return lr * 0.01 * a, m\n")
    data = inputs(torch.float64, steps=3)
    expected = run_reference(program, data, "math", torch.float64)
    cls = compile_torch(program)
    options = {
        "single": {"foreach": False},
        "foreach": {"foreach": True},
        "fused": {"fused": True},
        "flat": {"foreach": True, "flat": True},
    }
    actual, _, _ = run_emitted(cls, signature(program), data, **options[path])
    assert_close_steps(actual, expected, 1e-10)
