"""Every rewrite rule is checked by oracles independent of the rewriter, under each semantics.

Two oracles per rule and semantics:
- a proof, listed by rule name in PROOFS: SymPy (``simplify(lhs - rhs) == 0`` over real, hence
  finite, symbols; a ``x != 0`` condition by the case split x > 0, x < 0) or z3 (the stated
  bound of an approximate rule); constant folding against SymPy's exact arithmetic;
- a random numeric check derived from the rule table itself (NumPy, float64): exact rules agree
  everywhere on finite values, almost-everywhere rules agree where their condition holds and
  differ somewhere it does not (so the condition is needed), approximate rules stay within
  their bound, and a rule declared invalid under a semantics really is not an identity there.

A rule added to the table without an entry in PROOFS fails ``test_every_rule_has_a_proof``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
import z3

from simplifier.ir import Node
from simplifier.numeric import NUMPY_IMPL, hero_overrides
from simplifier.ops import OPS, Kind
from simplifier.parse import parse
from simplifier.passes.conditions import EXACT, FINITE, NONZERO
from simplifier.passes.patterns import Pattern, PConstCall, PVar, instantiate
from simplifier.passes.rewrite import RewriteLimit, rewrite
from simplifier.passes.rules import RULES, RULES_BY_NAME, Rule, evaluate_constant, rw
from simplifier.printer import to_text
from simplifier.symbolic.translate import HERO_SYMPY_IMPL, SYMPY_IMPL, expand_interp

SEMANTICS = ("math", "hero")


# -- building both sides -------------------------------------------------------------------------
def variables(p: Pattern, out: dict[str, bool] | None = None) -> dict[str, bool]:
    """Pattern variables -> whether they are constant-only."""
    out = {} if out is None else out
    if isinstance(p, PVar):
        out[p.name] = p.const_only
    for a in getattr(p, "args", ()):
        variables(a, out)
    return out


def sides(rule: Rule, env: Mapping[str, Node]) -> tuple[Node, Node]:
    assert not callable(rule.rhs)
    return instantiate(rule.lhs, env), instantiate(rule.rhs, env)


def to_sympy(node: Node, semantics: str, symbols: Mapping[str, sp.Expr]) -> sp.Expr:
    table = {**SYMPY_IMPL, **HERO_SYMPY_IMPL} if semantics == "hero" else SYMPY_IMPL
    values: dict[int, sp.Expr] = {}
    for n in node.walk():
        if n.op == "input":
            values[id(n)] = symbols[str(n.leaf)]
        elif n.op == "const":
            assert isinstance(n.leaf, Fraction)
            values[id(n)] = sp.Rational(n.leaf.numerator, n.leaf.denominator)
        else:
            values[id(n)] = table[n.op](*(values[id(a)] for a in n.args))
    return expand_interp(values[id(node)])


def to_numpy(node: Node, semantics: str, values: Mapping[str, np.ndarray]) -> np.ndarray:
    impl = dict(NUMPY_IMPL)
    if semantics == "hero":
        impl.update(hero_overrides(impl))
    out: dict[int, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for n in node.walk():
            if n.op == "input":
                out[id(n)] = values[str(n.leaf)]
            elif n.op == "const":
                out[id(n)] = np.float64(n.leaf)  # type: ignore[arg-type]
            else:
                out[id(n)] = impl[n.op](*(out[id(a)] for a in n.args))
    return np.asarray(out[id(node)], dtype=np.float64)


def symbolic_env(
    rule: Rule, **assume: dict[str, bool]
) -> tuple[dict[str, Node], dict[str, sp.Expr]]:
    env = {v: Node.make("input", (), v) for v in variables(rule.lhs)}
    symbols = {v: sp.Symbol(v, real=True, **assume.get(v, {})) for v in env}
    return env, symbols


# -- proofs --------------------------------------------------------------------------------------
def sympy_proof(rule: Rule, semantics: str) -> None:
    """lhs - rhs simplifies to 0 over the reals; a nonzero condition is split into x > 0, x < 0."""
    how = rule.exactness(semantics)
    assert how is not None and how.level in ("exact", "almost-everywhere")
    env, symbols = symbolic_env(rule)
    lhs, rhs = sides(rule, env)
    cases: list[dict[str, sp.Expr]] = [{}]
    if how.relation is NONZERO:
        assert how.subject is not None
        p = sp.Symbol("p", positive=True)
        cases = [{how.subject: p}, {how.subject: -p}]
    else:
        assert how.relation in (None, FINITE)  # real symbols are finite
    for case in cases:
        l_expr = to_sympy(lhs, semantics, {**symbols, **case})
        r_expr = to_sympy(rhs, semantics, {**symbols, **case})
        assert sp.simplify(l_expr - r_expr) == 0, (rule.name, semantics, case)


def _z3(node: Node, semantics: str, symbols: Mapping[str, z3.ArithRef]) -> z3.ArithRef:
    eps = z3.RealVal("1/100000000")
    out: dict[int, z3.ArithRef] = {}
    for n in node.walk():
        a = [out[id(c)] for c in n.args]
        if n.op == "input":
            out[id(n)] = symbols[str(n.leaf)]
        elif n.op == "const":
            assert isinstance(n.leaf, Fraction)
            out[id(n)] = z3.RealVal(f"{n.leaf.numerator}/{n.leaf.denominator}")
        elif n.op == "abs":
            out[id(n)] = z3.If(a[0] >= 0, a[0], -a[0])
        elif n.op == "sign":
            out[id(n)] = z3.If(a[0] > 0, 1, z3.If(a[0] < 0, -1, 0))
        elif n.op == "div":
            out[id(n)] = a[0] / (a[1] + eps) if semantics == "hero" else a[0] / a[1]
        else:
            binary = {
                "add": lambda x, y: x + y,
                "sub": lambda x, y: x - y,
                "mul": lambda x, y: x * y,
            }
            out[id(n)] = binary[n.op](*a)
    return out[id(node)]


def z3_bound(
    bound: Callable[[Mapping[str, z3.ArithRef]], z3.ArithRef],
) -> Callable[[Rule, str], None]:
    """Proves |lhs - rhs| <= bound for every real value of the variables (hero ``/`` protected)."""

    def prove(rule: Rule, semantics: str) -> None:
        env = {v: Node.make("input", (), v) for v in variables(rule.lhs)}
        symbols = {v: z3.Real(v) for v in env}
        lhs, rhs = sides(rule, env)
        diff = _z3(lhs, semantics, symbols) - _z3(rhs, semantics, symbols)
        solver = z3.Solver()
        solver.add(z3.Not(z3.If(diff >= 0, diff, -diff) <= bound(symbols)))
        assert solver.check() == z3.unsat, (rule.name, semantics, solver.model())

    return prove


def constant_folding_proof(rule: Rule, semantics: str) -> None:
    """Every folded value equals SymPy's exact evaluation of the op on the same rationals."""
    table = {**SYMPY_IMPL, **HERO_SYMPY_IMPL} if semantics == "hero" else SYMPY_IMPL
    numbers = [
        Fraction(s) for s in ("0", "1", "-1", "0.5", "2", "-0.25", "0.899", "1.109", "4", "3")
    ]
    folded = 0
    for name, op in OPS.items():
        if op.kind is Kind.CONSTANT:
            pools: list[tuple[Fraction, ...]] = [()]
        else:
            pools = list(itertools.product(numbers, repeat=op.arity))[:400]
        for args in pools:
            value = evaluate_constant(name, args, semantics)  # type: ignore[arg-type]
            if value is None:
                continue
            exact = table[name](*(sp.Rational(a.numerator, a.denominator) for a in args))
            assert sp.Rational(value.numerator, value.denominator) == exact, (name, args)
            folded += 1
    assert folded > 500


def hero_abs(z: z3.ArithRef) -> z3.ArithRef:
    return z3.If(z >= 0, z, -z)


_E = z3.RealVal("1/100000000")
Proof = dict[str, Callable[[Rule, str], None]]
BOTH: Proof = {"math": sympy_proof, "hero": sympy_proof}
MATH_ONLY: Proof = {"math": sympy_proof}

PROOFS: dict[str, Proof] = {
    "fold-constant": {"math": constant_folding_proof, "hero": constant_folding_proof},
    "mul-one": BOTH,
    "add-zero": BOTH,
    "sub-zero": BOTH,
    "zero-sub": BOTH,
    "div-one": {"math": sympy_proof, "hero": z3_bound(lambda v: hero_abs(v["x"]) * _E)},
    "sub-self": BOTH,
    "neg-neg": BOTH,
    "sign-sign": BOTH,
    "abs-abs": BOTH,
    "abs-neg": BOTH,
    "sqrt-mul-self": BOTH,
    "sqrt-square": BOTH,
    "div-abs": {"math": sympy_proof, "hero": z3_bound(lambda v: _E / (hero_abs(v["x"]) + _E))},
    "abs-div": MATH_ONLY,
    "interp-same": BOTH,
    "interp-zero": BOTH,
    "interp-one": BOTH,
    "interp-merge": BOTH,
    "interp-merge-left": BOTH,
    "mul-const-const": BOTH,
}


def test_every_rule_has_a_proof() -> None:
    assert set(PROOFS) == set(RULES_BY_NAME)
    for rule in RULES:
        for semantics in SEMANTICS:
            declared = rule.exactness(semantics) is not None  # type: ignore[arg-type]
            assert (semantics in PROOFS[rule.name]) == declared, (rule.name, semantics)


CASES = [(r, s) for r in RULES for s in SEMANTICS if r.exactness(s) is not None]  # type: ignore[arg-type]
PATTERN_CASES = [(r, s) for r, s in CASES if not isinstance(r.lhs, PConstCall)]
AE_CASES = [(r, s) for r, s in CASES if r.exactness(s).level == "almost-everywhere"]  # type: ignore[arg-type, union-attr]


@pytest.mark.parametrize(("rule", "semantics"), CASES, ids=lambda x: getattr(x, "name", x))
def test_proof(rule: Rule, semantics: str) -> None:
    PROOFS[rule.name][semantics](rule, semantics)


# -- the random numeric oracle -------------------------------------------------------------------
SPECIAL = np.array([0.0, 1.0, -1.0, 1e-12, -1e-12, 0.5, -2.0, 1e6, 3.0])
NONFINITE = np.array([np.inf, -np.inf, np.nan])
CONSTANTS = [Fraction(s) for s in ("0.899", "1.109", "-0.5", "2", "0.0002")]


def numeric_cases(
    rule: Rule, with_nonfinite: bool = False
) -> list[tuple[dict[str, Node], dict[str, np.ndarray]]]:
    """Environments for both sides: arrays for free variables, exact constants for ``k``s."""
    rng = np.random.default_rng(7)
    kinds = variables(rule.lhs)
    free = [v for v, const in kinds.items() if not const]
    consts = [v for v, const in kinds.items() if const]
    pool = np.concatenate([SPECIAL, NONFINITE]) if with_nonfinite else SPECIAL
    grid = np.array(list(itertools.product(pool, repeat=len(free)))).reshape(-1, len(free))
    noise = rng.normal(size=(300, len(free))) * rng.choice([1e-3, 1.0, 1e3], size=(300, 1))
    table = np.concatenate([grid, noise]) if free else np.zeros((1, 0))
    out = []
    for values in itertools.product(CONSTANTS, repeat=len(consts)):
        env = {v: Node.make("input", (), v) for v in free}
        env.update({k: Node.make("const", (), c) for k, c in zip(consts, values, strict=True)})
        arrays = {v: table[:, i] for i, v in enumerate(free)}
        out.append((env, arrays))
    return out


def agree(lhs: np.ndarray, rhs: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Equal up to rounding (relative to the inputs' scale), NaN where both are NaN."""
    with np.errstate(all="ignore"):
        close = np.abs(lhs - rhs) <= 1e-12 * scale
    return close | (np.isnan(lhs) & np.isnan(rhs)) | (lhs == rhs)


def scale_of(arrays: Mapping[str, np.ndarray], n: int) -> np.ndarray:
    scale = np.ones(n)
    for a in arrays.values():
        scale = np.maximum(scale, np.abs(a))
    return scale * 16  # a few roundings of intermediates as large as the inputs squared, at most


@pytest.mark.parametrize(("rule", "semantics"), PATTERN_CASES, ids=lambda x: getattr(x, "name", x))
def test_numeric_oracle(rule: Rule, semantics: str) -> None:
    """(Constant folding is checked against SymPy's exact arithmetic in test_proof.)"""
    how = rule.exactness(semantics)  # type: ignore[arg-type]
    assert how is not None
    for env, arrays in numeric_cases(rule):
        lhs_node, rhs_node = sides(rule, env)
        n = len(next(iter(arrays.values()))) if arrays else 1
        lhs = np.broadcast_to(to_numpy(lhs_node, semantics, arrays), (n,))
        rhs = np.broadcast_to(to_numpy(rhs_node, semantics, arrays), (n,))
        scale = scale_of(arrays, n) ** (2 if "interp" in rule.name or "mul" in rule.name else 1)
        if how.level == "exact":
            assert agree(lhs, rhs, scale).all(), rule.name
        elif how.level == "almost-everywhere":
            assert how.relation is not None and how.subject is not None
            subject = to_numpy(env[how.subject], semantics, arrays)
            holds = np.broadcast_to(how.relation.holds(subject), (n,))
            assert agree(lhs, rhs, scale)[holds].all(), rule.name
        else:
            assert how.error is not None
            values = {v: to_numpy(node, semantics, arrays) for v, node in env.items()}
            with np.errstate(all="ignore"):
                # the stated bound, plus a few roundings of values of order |rhs|
                bound = how.error(values) * (1 + 1e-9) + 4e-16 * np.maximum(1, np.abs(rhs))
            assert (np.abs(lhs - rhs) <= bound).all(), rule.name


@pytest.mark.parametrize(("rule", "semantics"), AE_CASES, ids=lambda x: getattr(x, "name", x))
def test_condition_is_needed(rule: Rule, semantics: str) -> None:
    """An almost-everywhere rule really differs somewhere its condition fails."""
    how = rule.exactness(semantics)  # type: ignore[arg-type]
    assert how is not None and how.relation is not None and how.subject is not None
    found = False
    for env, arrays in numeric_cases(rule, with_nonfinite=True):
        lhs_node, rhs_node = sides(rule, env)
        n = len(next(iter(arrays.values())))
        lhs = np.broadcast_to(to_numpy(lhs_node, semantics, arrays), (n,))
        rhs = np.broadcast_to(to_numpy(rhs_node, semantics, arrays), (n,))
        subject = to_numpy(env[how.subject], semantics, arrays)
        fails = ~np.broadcast_to(how.relation.holds(subject), (n,))
        found |= bool((~agree(lhs, rhs, scale_of(arrays, n)) & fails).any())
    assert found, f"{rule.name}: equal even where the condition fails: it is exact"


@pytest.mark.parametrize("rule", [r for r in RULES if r.hero is None], ids=lambda r: r.name)
def test_math_only_rules_fail_under_hero(rule: Rule) -> None:
    """A rule declared invalid under hero is not an identity there (so it must not be applied)."""
    differs = False
    for env, arrays in numeric_cases(rule):
        lhs_node, rhs_node = sides(rule, env)
        n = len(next(iter(arrays.values())))
        lhs = np.broadcast_to(to_numpy(lhs_node, "hero", arrays), (n,))
        rhs = np.broadcast_to(to_numpy(rhs_node, "hero", arrays), (n,))
        differs |= bool((np.abs(lhs - rhs) > 1e-3).any())
    assert differs


# -- the driver ----------------------------------------------------------------------------------
def run(text: str, semantics: str = "math", allow: str = "almost-everywhere") -> tuple[str, list]:
    r = rewrite(parse(text), semantics, allow)  # type: ignore[arg-type]
    return to_text(r.program), [(c.detail.split(":")[0], c.level, c.condition) for c in r.changes]


def test_program4_rules_log() -> None:
    text = (
        "def f(w, g, v, lr):\n  m = interp(g, v, 0.9)\n  v = interp(g, m, 1.1)\n"
        "  return m / sqrt(m * m) * lr, v\n"
    )
    program, log = run(text)
    assert "sign(m)" in program and "interp(g, v, 0.99)" in program
    assert log == [  # the update's cone first, then the states'
        ("sqrt-mul-self", "exact", None),
        ("div-abs", "almost-everywhere", "m != 0"),
        ("interp-merge", "exact", None),
        ("fold-constant", "exact", None),
    ]


@pytest.mark.parametrize(
    ("form", "rules"),
    [
        ("g / abs(g)", ["div-abs"]),
        ("g / sqrt(g * g)", ["sqrt-mul-self", "div-abs"]),
        ("g / sqrt(square(g))", ["sqrt-square", "div-abs"]),
        ("abs(g) / g", ["abs-div"]),
    ],
)
def test_the_sign_forms(form: str, rules: list[str]) -> None:
    """The issue's four spellings of sign(x), each needing x != 0 under math."""
    program, log = run(f"def f(w, g, lr):\n  return {form} * lr\n")
    assert program == "def f(w, g, lr):\n  return sign(g) * lr\n"
    assert [name for name, _, _ in log] == rules
    assert log[-1][1:] == ("almost-everywhere", "g != 0")


def test_commutative_match_and_fixed_point() -> None:
    program, log = run("def f(w, g, lr):\n  return 1 * (0 + -(-(g * 2 * 0.5))) * lr\n")
    assert program == "def f(w, g, lr):\n  return g * lr\n"
    names = {name for name, _, _ in log}
    assert names == {"neg-neg", "mul-const-const", "fold-constant", "mul-one", "add-zero"}


def test_hero_never_applies_a_math_only_rule() -> None:
    text = "def f(w, g, lr):\n  return abs(g) / g * lr\n"
    assert "sign" in run(text)[0]
    r = rewrite(parse(text), "hero", "approximate")
    assert not r.changes and "abs(g) / g" in to_text(r.program)
    assert "holds only under the math semantics" in r.notes[0]


def test_allow_levels() -> None:
    text = "def f(w, g, lr):\n  return g / abs(g) * lr\n"
    assert "sign" not in run(text, allow="exact")[0]
    assert "sign" in run(text, allow="almost-everywhere")[0]
    assert "sign" not in run(text, "hero", "almost-everywhere")[0]
    program, log = run(text, "hero", "approximate")
    assert "sign(g)" in program and log == [
        ("div-abs", "approximate", "within 1e-8/|g| of sign(g)")
    ]


def test_a_tensor_never_becomes_a_scalar() -> None:
    text = "def f(w, g, m):\n  m = m - m\n  return g, m\n"
    assert run(text)[1] == []  # a state must stay a tensor: `m - m -> 0` is not applied
    assert run("def f(w, g, lr):\n  return g * (lr - lr)\n")[1] == [
        ("sub-self", "almost-everywhere", "lr is finite")
    ]


def test_constants_stay_exact() -> None:
    program, _ = run("def f(w, g, lr):\n  return g * 0.1 * 3 * lr\n")
    assert "g * 0.3 * lr" in program  # 0.1 * 3 is exactly 0.3
    assert evaluate_constant("div", (Fraction(1), Fraction(3)), "math") is None  # not printable
    assert evaluate_constant("div", (Fraction(1), Fraction(4)), "hero") is None  # 1/(4 + 1e-8)
    assert evaluate_constant("div", (Fraction(1), Fraction(4)), "math") == Fraction(1, 4)


def test_loop_guard() -> None:
    looping = (rw("grow", "-x", "-(-(-x))", EXACT, EXACT),)  # never reaches a fixed point
    with pytest.raises(RewriteLimit):
        rewrite(parse("def f(w, g):\n  return -g\n"), rules=looping, limit=50)
