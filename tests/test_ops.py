"""The op table and every interpretation table keyed by op: each covers every op.

An interpretation (numpy, torch, types, SymPy, and later hashes, emitted torch source, ...) is
registered once in ``TABLES`` below: a name and a function returning the op names it handles.
Coverage is checked by what the table actually does where that is cheap (the numeric and type
rules are run on every op), not only by its keys.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import pytest

from simplifier.analysis.types import Type, infer_types
from simplifier.ir import Ref, Stmt
from simplifier.numeric import (
    CONSTANTS,
    NUMPY,
    NUMPY_IMPL,
    Backend,
    _torch_impl,
    hero_overrides,
    step_rules,
    torch_backend,
)
from simplifier.ops import ALIASES, CALLABLE, INFIX, OPS, Kind, resolve
from simplifier.parse import parse

# The functions of LANGUAGE.md ("Functions"), by the names the op table uses.
SPEC_UNARY = (
    "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 exp10 "
    "expm1 log log10 log2 log1p square sqrt cube cbrt sign reciprocal negative"
).split()
SPEC_OPS = {
    *SPEC_UNARY,
    *("add", "sub", "mul", "div", "power", "maximum", "minimum"),
    "interp",
    *("norm", "global_norm", "dot", "cosine_sim"),
    "clip",
    *("get_pi", "get_e", "get_eps"),
}
SPEC_ALIASES = {
    "max": "maximum",
    "min": "minimum",
    "interpolate": "interp",
    "clip_by_global_norm": "clip",
}


# -- probes: what a rule table really handles ------------------------------------------------------
def _stmt(op: str) -> Stmt:
    return Stmt("x.1", op, tuple(Ref(f"a{i}") for i in range(OPS[op].arity)), "x")


def numeric_coverage(backend: Backend, semantics: str) -> set[str]:
    """Ops the interpreter evaluates with this backend: element-wise rules and the reductions
    of ``step_rules``, plus the constants of ``CONSTANTS``."""
    apply = step_rules(backend, semantics)  # type: ignore[arg-type]
    tensors = [backend.array(np.array([0.5, -0.25])), backend.array(np.array([2.0]))]
    scalar = [backend.scalar(0.5)] * 2
    covered = set(CONSTANTS)
    for name, op in OPS.items():
        if op.kind is Kind.CONSTANT:
            continue
        args = [scalar if i in op.scalar_args else tensors for i in range(op.arity)]
        try:
            with np.errstate(all="ignore"):  # the probe values are outside some ops' domains
                out = apply(_stmt(name), args)
        except (AssertionError, KeyError):
            continue
        assert len(out) == len(tensors), name
        covered.add(name)
    return covered


def type_coverage() -> set[str]:
    """Ops that ``infer_types`` types, each in a one-statement program with well-typed args."""
    covered = set()
    for name, op in OPS.items():
        args = ", ".join("lr" if i in op.scalar_args else "g" for i in range(op.arity))
        call = f"{name}({args})" if op.infix is None or name == "power" else f"g {op.infix} g"
        p = parse(f"def f(w, g, lr):\n  x = {call}\n  return g * x\n")
        types = infer_types(p)
        expected = Type.SCALAR if op.kind in (Kind.REDUCTION, Kind.CONSTANT) else Type.TENSOR
        assert types["x.1"] is expected, name
        covered.add(name)
    return covered


def sympy_coverage() -> set[str]:
    from simplifier.symbolic.translate import SYMPY_IMPL

    return set(SYMPY_IMPL)


def hash_coverage() -> set[str]:
    from simplifier.analysis.hashing import HASH_RULES

    return set(HASH_RULES)


def emit_coverage() -> set[str]:
    """Ops that ``emit_torch`` turns into source, each in a one-statement program."""
    from simplifier.emit import emit_torch

    covered = set()
    for name, op in OPS.items():
        args = ", ".join("lr" if i in op.scalar_args else "g" for i in range(op.arity))
        call = f"{name}({args})" if op.infix is None or name == "power" else f"g {op.infix} g"
        source = emit_torch(parse(f"def f(w, g, lr):\n  x = {call}\n  return g * x\n"))
        compile(source, f"<emitted {name}>", "exec")
        covered.add(name)
    return covered


@dataclass(frozen=True)
class Table:
    name: str
    covered: Callable[[], Collection[str]]


# Register each interpretation table here (one line each).
TABLES = [
    Table(
        "numpy (NUMPY_IMPL + reductions + CONSTANTS), math", lambda: numeric_coverage(NUMPY, "math")
    ),
    Table("numpy, hero", lambda: numeric_coverage(NUMPY, "hero")),
    Table(
        "torch (_torch_impl + reductions + CONSTANTS), math",
        lambda: numeric_coverage(torch_backend(), "math"),
    ),
    Table("torch, hero", lambda: numeric_coverage(torch_backend(), "hero")),
    Table("type rules (infer_types)", type_coverage),
    Table("sympy (SYMPY_IMPL)", sympy_coverage),
    Table("structural hash (HASH_RULES)", hash_coverage),
    Table("emitted torch source (emit_torch)", emit_coverage),
]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_table_covers_every_op(table: Table) -> None:
    covered = set(table.covered())
    assert not set(OPS) - covered, f"{table.name} misses {sorted(set(OPS) - covered)}"
    assert not covered - set(OPS), f"{table.name} has unknown ops {sorted(covered - set(OPS))}"


def test_element_wise_tables_have_exactly_the_element_wise_ops() -> None:
    elementwise = {name for name, op in OPS.items() if op.elementwise}
    assert set(NUMPY_IMPL) == elementwise
    assert set(_torch_impl()) == elementwise


def test_hero_overrides_only_protected_ops() -> None:
    protected = {"div", "sqrt", "log", "log2", "log10", "log1p"}
    assert set(hero_overrides(dict(NUMPY_IMPL))) == protected
    from simplifier.symbolic.translate import HERO_SYMPY_IMPL

    assert set(HERO_SYMPY_IMPL) == protected


# -- the op table itself ------------------------------------------------------------------------
def test_op_table_is_the_spec() -> None:
    assert set(OPS) == SPEC_OPS
    assert ALIASES == SPEC_ALIASES


ARITY = {Kind.UNARY: 1, Kind.BINARY: 2, Kind.MIX: 3, Kind.CLIP: 2, Kind.CONSTANT: 0}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_declaration_is_consistent(name: str) -> None:
    op = OPS[name]
    assert op.name == name
    if op.kind is Kind.REDUCTION:
        assert op.arity in (1, 2) and set(op.tensor_args) == set(range(op.arity))
    else:
        assert op.arity == ARITY[op.kind]
    assert all(0 <= i < op.arity for i in (*op.scalar_args, *op.tensor_args))
    assert not op.commutative or op.arity == 2
    assert op.global_reduction == (name in {"global_norm", "dot", "cosine_sim", "clip"})


def test_every_op_and_alias_resolves() -> None:
    for name, op in OPS.items():
        if op.infix is None or name == "power":
            assert resolve(name) is op
    for alias, name in ALIASES.items():
        assert resolve(alias) is OPS[name]
    assert resolve("nonexistent") is None
    # + - * / are written only as operators, never called by name
    assert {"add", "sub", "mul", "div"}.isdisjoint(CALLABLE)
    assert INFIX == {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "power"}


def test_commutative_flags_are_true() -> None:
    """An op flagged commutative gives the same value with its arguments swapped."""
    x, y = np.array([0.5, -1.5, 2.0]), np.array([-0.25, 3.0, 2.0])
    apply = step_rules(NUMPY, "math")
    for name, op in OPS.items():
        if not op.commutative:
            continue
        a = apply(Stmt("t", name, (Ref("x"), Ref("y")), None), [[x], [y]])
        b = apply(Stmt("t", name, (Ref("y"), Ref("x")), None), [[y], [x]])
        assert np.allclose(a[0], b[0]), name
    assert not OPS["sub"].commutative and not OPS["div"].commutative


def test_constants_values() -> None:
    assert CONSTANTS == {"get_pi": np.pi, "get_e": np.e, "get_eps": 1e-8}
