"""The op table and every interpretation keyed by op: each covers every op.

An interpretation (numpy, torch, the batched engine, the 50-digit interpreter, SymPy for proofs
and for folding, types, the structural hash, the emitted torch source) is registered once in
``TABLES`` below: a name and a function returning the op names it handles. Coverage is checked
by running each op through the interpretation's public entry point, one single-statement
program per op, under both semantics where they differ, not by reading a table's keys.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from simplifier.analysis.types import Type, infer_types
from simplifier.ir import Program
from simplifier.numeric import (
    CONSTANTS,
    NUMPY,
    NUMPY_IMPL,
    Backend,
    _torch_impl,
    hero_overrides,
    step,
    torch_backend,
)
from simplifier.ops import (
    ALIASES,
    CALLABLE,
    COMPOUND,
    EPS,
    EPS_EXACT,
    INFIX,
    OPS,
    PROTECTED,
    Formula,
    Kind,
    resolve,
)
from simplifier.parse import parse
from simplifier.passes.lower import Lower

# The functions of LANGUAGE.md ("Functions"), by the names the op table uses.
SPEC_UNARY = (
    "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 exp10 "
    "expm1 log log10 log2 log1p square sqrt cube cbrt sign reciprocal negative sigmoid floor"
).split()
# The comparisons (issue 13): 1.0 where the relation holds, else 0.0.
SPEC_COMPARISONS = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
SPEC_OPS = {
    *SPEC_UNARY,
    *("add", "sub", "mul", "div", "power", "maximum", "minimum", "mod"),
    *SPEC_COMPARISONS,
    "interp",
    *("where", "clamp"),
    *("norm", "global_norm", "dot", "cosine_sim"),
    *("sum", "numel", "ndim", "mean"),
    "clip",
    *("get_pi", "get_e", "get_eps"),
}
SPEC_ALIASES = {
    "max": "maximum",
    "min": "minimum",
    "interpolate": "interp",
    "clip_by_global_norm": "clip",
}
SEMANTICS = ("math", "hero")


# -- probes: what an interpretation really handles -------------------------------------------------
def one_op(name: str) -> Program:
    """``x = op(...)`` with well-typed arguments (a state, so that reductions see a tensor that
    is not the gradient), its value feeding the update."""
    op = OPS[name]
    args = ", ".join("lr" if i in op.scalar_args else ("g", "m", "g")[i] for i in range(op.arity))
    call = f"{name}({args})" if op.infix is None or name == "power" else f"g {op.infix} m"
    return parse(f"def f(w, g, m, lr):\n  x = {call}\n  return g * x, m\n")


def _probe(
    run: Callable[[Program, str], object], semantics: tuple[str, ...] = SEMANTICS
) -> set[str]:
    covered = set()
    for name in OPS:
        try:
            for s in semantics:
                run(one_op(name), s)
        except (KeyError, AssertionError, NotImplementedError):
            continue
        covered.add(name)
    return covered


TENSORS = [np.array([0.5, -0.25, 2.0]), np.array([1.5])]


def numeric_coverage(backend: Backend) -> set[str]:
    def run(p: Program, semantics: str) -> None:
        ws = [backend.array(t) for t in TENSORS]
        states = {"m": [backend.array(-t) for t in TENSORS]}
        with np.errstate(all="ignore"):
            update, _ = step(p, ws, ws, states, 0.5, semantics=semantics, backend=backend)  # type: ignore[arg-type]
        assert [np.shape(u) for u in update] == [np.shape(t) for t in TENSORS]

    return _probe(run)


def engine_coverage() -> set[str]:
    from simplifier.ablation.engine import step_batched

    def run(p: Program, semantics: str) -> None:
        w = torch.tensor([[0.5, -0.25, 2.0, 1.5]] * 2, dtype=torch.float64)
        update, _ = step_batched(p, w, w, {"m": -w}, 0.5, 1, semantics=semantics, segments=(3, 1))  # type: ignore[arg-type]
        assert update.shape == w.shape

    return _probe(run)


def precise_coverage() -> set[str]:
    from simplifier.equiv import precise

    def run(p: Program, semantics: str) -> None:
        inputs = precise.Inputs([t.tolist() for t in TENSORS], [t.tolist() for t in TENSORS])
        updates, _ = precise.run(p, [inputs], semantics)  # type: ignore[arg-type]
        assert [len(u) for u in updates[0]] == [t.size for t in TENSORS]

    return _probe(run)


def sympy_coverage() -> set[str]:
    from simplifier.symbolic.translate import translate

    return _probe(lambda p, s: translate(p, s))  # type: ignore[arg-type]


def fold_coverage() -> set[str]:
    from simplifier.symbolic.fold import to_sympy

    return _probe(lambda p, s: to_sympy(p, s))  # type: ignore[arg-type]


def type_coverage() -> set[str]:
    def run(p: Program, semantics: str) -> None:
        op = OPS[p.body[0].op]
        expected = Type.SCALAR if op.kind in (Kind.REDUCTION, Kind.CONSTANT) else Type.TENSOR
        assert infer_types(p)["x.1"] is expected

    return _probe(run, ("math",))


def hash_coverage() -> set[str]:
    from simplifier.analysis.hashing import HASH_RULES, structural_hash

    def run(p: Program, semantics: str) -> None:
        structural_hash(p)
        HASH_RULES[p.body[0].op]

    return _probe(run, ("math",))


def emit_coverage() -> set[str]:
    """Ops that ``emit_torch`` turns into source that compiles."""
    from simplifier.emit import emit_torch

    def run(p: Program, semantics: str) -> None:
        source = emit_torch(p, semantics=semantics)  # type: ignore[arg-type]
        compile(source, f"<emitted {p.body[0].op}>", "exec")

    return _probe(run)


@dataclass(frozen=True)
class Table:
    name: str
    covered: Callable[[], Collection[str]]


# Register each interpretation here (one line each).
TABLES = [
    Table("numpy (numeric.step)", lambda: numeric_coverage(NUMPY)),
    Table("torch (numeric.step, torch backend)", lambda: numeric_coverage(torch_backend())),
    Table("batched engine (step_batched)", engine_coverage),
    Table("50-digit interpreter (precise.run)", precise_coverage),
    Table("sympy (translate)", sympy_coverage),
    Table("sympy folding (to_sympy)", fold_coverage),
    Table("type rules (infer_types)", type_coverage),
    Table("structural hash (HASH_RULES)", hash_coverage),
    Table("emitted torch source (emit_torch)", emit_coverage),
]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_table_covers_every_op(table: Table) -> None:
    covered = set(table.covered())
    assert not set(OPS) - covered, f"{table.name} misses {sorted(set(OPS) - covered)}"
    assert not covered - set(OPS), f"{table.name} has unknown ops {sorted(covered - set(OPS))}"


def test_element_wise_tables_have_exactly_the_element_wise_ops() -> None:
    from simplifier.equiv.precise import element_wise
    from simplifier.symbolic.translate import SYMPY_IMPL

    elementwise = {name for name, op in OPS.items() if op.elementwise}
    assert set(NUMPY_IMPL) == elementwise
    assert set(_torch_impl()) == elementwise
    assert set(element_wise()) == elementwise
    assert elementwise <= set(SYMPY_IMPL)


def test_hero_protects_exactly_the_protected_ops() -> None:
    protected = {"div", "sqrt", "log", "log2", "log10", "log1p"}
    assert protected == PROTECTED
    assert set(hero_overrides(dict(NUMPY_IMPL))) == protected
    from simplifier.symbolic.translate import HERO_SYMPY_IMPL

    assert set(HERO_SYMPY_IMPL) == protected


# -- the lowering pass ----------------------------------------------------------------------------
@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("name", sorted(OPS))
def test_lowering_leaves_only_primitives(name: str, semantics: str) -> None:
    p = one_op(name)
    low = Lower(semantics).run(p)  # type: ignore[arg-type]
    low.verify()
    assert not {s.op for s in low.body} & COMPOUND
    assert {s.target for s in p.body} <= {s.target for s in low.body}  # values keep their names
    if semantics == "math" and name not in COMPOUND:
        assert low is p  # nothing to do: the same program
    if semantics == "hero" and name in PROTECTED:
        assert len(low.body) > 1


def test_lowering_protects_only_the_users_operations() -> None:
    """Under hero the divisions of a lowered clip stay plain: norms are unprotected."""
    p = parse("def f(w, g, lr):\n  return clip(g, lr) / lr\n")
    body = Lower("hero").run(p).body
    eps = [s for s in body if s.op == "add"]
    assert len(eps) == 1 and eps[0].args[1].value == EPS_EXACT  # type: ignore[union-attr]
    assert [s.op for s in body].count("div") == 2


def test_lowering_is_the_same_meaning() -> None:
    """Running the lowered program under math is running the program under its semantics."""
    p = parse(
        "def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n"
        "  u = clip(m / sqrt(g * g), norm(w)) + cosine_sim(g, w) * log1p(m)\n  return u * lr, m\n"
    )
    ws, gs = [np.array([0.5, -0.25]), np.array([1.5])], [np.array([0.0, 3.0]), np.array([-2.0])]
    for semantics in SEMANTICS:
        with np.errstate(all="ignore"):
            a, _ = step(p, ws, gs, {"m": gs}, semantics=semantics)  # type: ignore[arg-type]
            b, _ = step(Lower(semantics).run(p), ws, gs, {"m": gs})  # type: ignore[arg-type]
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


# -- formulas and rows ----------------------------------------------------------------------------
def test_formula_parses_folds_and_composes() -> None:
    f = Formula("1 / (1 + exp(-x)) * (2 ** 3 / 4)")
    assert f.ops() == {"div", "add", "exp", "negative", "mul"}
    assert f.tree[-1] == ("const", Fraction(2))
    sigmoid = f.compose(NUMPY_IMPL, float)
    assert sigmoid(np.float64(0.0)) == 1.0  # 2 * 0.5
    with pytest.raises(ValueError, match="not a formula"):
        Formula("x if y else a")
    with pytest.raises(ValueError, match="not a formula"):
        Formula("z + 1")  # only x, y, a are arguments


def test_every_formula_uses_known_ops_and_arguments() -> None:
    for name, op in OPS.items():
        for f in (op.formula, op.hero):
            if f is not None:
                assert f.ops() <= set(OPS), name
                if op.compound or op.elementwise:
                    assert name not in f.ops() or f is op.hero, f"{name} is defined by itself"


def test_spellings_exist() -> None:
    """Every spelling on a row names a real function of its library."""
    import operator

    import mpmath
    import sympy

    for name, op in OPS.items():
        for module, attr in (
            (np, op.numpy),
            (torch, op.torch),
            (sympy, op.sympy),
            (mpmath, op.mpmath),
            (operator, op.operator),
        ):
            if attr is not None:
                assert hasattr(module, attr), f"{name}: {module.__name__}.{attr}"
        if op.inplace is not None:
            assert hasattr(torch.Tensor, op.inplace), name
        if op.foreach is not None:
            assert hasattr(torch, f"_foreach_{op.foreach}"), name


def test_the_protection_constant_is_declared_once() -> None:
    """No other module writes 1e-8 (or 10**8) as a number: they read ops.EPS / EPS_EXACT."""
    root = Path(__file__).resolve().parent.parent / "simplifier"
    # passes/rules.py is being split by another change; its EPS_FRACTION is the one left.
    allowed = {root / "ops.py", root / "passes" / "rules.py"}
    found = []
    for path in sorted(root.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            eps = isinstance(node, ast.Constant) and node.value == 1e-8
            if eps or (isinstance(node, ast.BinOp) and ast.unparse(node) == "10 ** 8"):
                found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}")
    assert not found, found
    assert EPS == float(EPS_EXACT) == 1e-8


# -- the op table itself ------------------------------------------------------------------------
def test_op_table_is_the_spec() -> None:
    assert set(OPS) == SPEC_OPS
    assert ALIASES == SPEC_ALIASES


ARITY = {
    Kind.UNARY: 1,
    Kind.BINARY: 2,
    Kind.MIX: 3,
    Kind.TERNARY: 3,
    Kind.CLIP: 2,
    Kind.CONSTANT: 0,
}


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
    assert (op.kind is Kind.CONSTANT) == (op.value is not None)
    assert not op.compound or op.formula is not None


def test_every_op_and_alias_resolves() -> None:
    for name, op in OPS.items():
        if op.infix is None or name == "power":
            assert resolve(name) is op
    for alias, name in ALIASES.items():
        assert resolve(alias) is OPS[name]
    assert resolve("nonexistent") is None
    # + - * / are written only as operators, never called by name
    assert {"add", "sub", "mul", "div"}.isdisjoint(CALLABLE)
    assert INFIX == {
        "+": "add",
        "-": "sub",
        "*": "mul",
        "/": "div",
        "**": "power",
        "%": "mod",
        **{symbol: name for name, symbol in SPEC_COMPARISONS.items()},
    }
    assert {name for name, op in OPS.items() if op.truth} == set(SPEC_COMPARISONS)


def test_commutative_flags_are_true() -> None:
    """An op flagged commutative gives the same value with its arguments swapped."""
    ws, other = [backend_free(t) for t in TENSORS], [backend_free(-2 * t + 1) for t in TENSORS]

    def call(name: str, x: str, y: str) -> str:
        infix = OPS[name].infix
        return f"({x} {infix} {y})" if infix else f"{name}({x}, {y})"

    for name, op in OPS.items():
        if not op.commutative:
            continue
        a, b = (
            parse(f"def f(w, g, m, lr):\n  return g * {call(name, x, y)}, m\n")
            for x, y in (("g", "m"), ("m", "g"))
        )
        ua, _ = step(a, ws, ws, {"m": other})
        ub, _ = step(b, ws, ws, {"m": other})
        for x, y in zip(ua, ub, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-15, err_msg=name)
    assert not OPS["sub"].commutative and not OPS["div"].commutative


def backend_free(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def test_constants_values() -> None:
    assert CONSTANTS == {"get_pi": np.pi, "get_e": np.e, "get_eps": 1e-8}
