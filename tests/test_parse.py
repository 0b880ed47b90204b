"""The parser: every syntax feature of LANGUAGE.md, lowered to the SSA IR.

Structural claims are checked on the IR (ops, SSA targets, roles, exact constants) and, where a
feature is sugar for another spelling, by comparing the interned expression DAGs of the two
spellings (:func:`simplifier.ir.dag` returns the same node for equal structure). Operator
precedence is checked against Python's own evaluation of the same expression text.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from corpus_support import CORPUS, code

from simplifier.analysis.types import Type, infer_types
from simplifier.ir import Const, Program, Ref, Role, dag
from simplifier.numeric import step
from simplifier.parse import parse

# The paper's text (tests/test_corpus.py checks the file against it).
PROGRAM_4 = code(CORPUS / "program4.py")


def roles(p: Program) -> dict[str, str]:
    return {q.name: q.role.value for q in p.params}


def outputs(p: Program) -> list[object]:
    """The interned DAG nodes of the program's outputs (equal structure -> the same objects)."""
    nodes = dag(p)
    return [nodes[a.name] if isinstance(a, Ref) else a for a in p.outputs]


def same_meaning(a: str, b: str) -> bool:
    return outputs(parse(a)) == outputs(parse(b))


# -- the paper's programs --------------------------------------------------------------------------
def test_program_4_lowers_to_ssa() -> None:
    p = parse(PROGRAM_4)
    assert p.name == "train"
    assert roles(p) == {"w": "weight", "g": "gradient", "m": "state", "v": "state", "lr": "lr"}
    assert p.states == ("m", "v")
    assert [(s.target, s.op) for s in p.body] == [
        ("g.1", "clip"),
        ("g.2", "arcsin"),
        ("m.1", "interp"),
        ("m2.1", "mul"),
        ("v.1", "interp"),
        ("abs_m.1", "sqrt"),
        ("update.1", "div"),
        ("wd.1", "mul"),
        ("update.2", "add"),
        ("lr.1", "mul"),
        ("m.2", "cosh"),
        ("update.3", "mul"),
    ]
    # every read sees the latest assignment above it
    assert p.defining()["v.1"].args == (Ref("g.2"), Ref("m.1"), Const.of("1.109"))
    assert p.defining()["update.3"].args == (Ref("update.2"), Ref("lr.1"))
    assert p.outputs == (Ref("update.3"), Ref("m.2"), Ref("v.1"))
    assert [s.loc.line for s in p.body if s.loc] == list(range(2, 14))
    p.verify()


def test_program_4_types() -> None:
    types = infer_types(parse(PROGRAM_4))
    assert types["lr.1"] is Type.SCALAR
    assert all(types[t] is Type.TENSOR for t in ("g.1", "m.1", "v.1", "update.3", "m.2"))


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.py")), ids=lambda p: p.stem)
def test_every_corpus_program_parses_and_verifies(path: Path) -> None:
    p = parse(path.read_text(encoding="utf-8"), str(path))
    p.verify()
    assert p.path == str(path)
    assert p.input_named(Role.WEIGHT) and p.input_named(Role.GRADIENT)
    infer_types(p)


# -- expressions ---------------------------------------------------------------------------------
def test_nested_expression_becomes_temporaries() -> None:
    p = parse("def f(w, g, m, lr):\n  update = sign(interp(g, m, 0.9)) * lr\n  return update, m\n")
    assert [(s.target, s.op, s.var) for s in p.body] == [
        ("%1", "interp", None),
        ("%2", "sign", None),
        ("update.1", "mul", "update"),
    ]
    flat = "def f(w, g, m, lr):\n  c = interp(g, m, 0.9)\n  s = sign(c)\n  return s * lr, m\n"
    assert same_meaning(p.source or "", flat)


def test_nested_calls_and_parentheses() -> None:
    text = "def f(w, g, lr):\n  u = ((maximum(abs((g)), (sqrt(square(g) + 1e-8)))))\n  return u\n"
    p = parse(text)
    assert [s.op for s in p.body] == ["abs", "square", "add", "sqrt", "maximum"]


SCALARS = {"a": 1.5, "b": -0.7, "c": 2.25, "d": 0.5}


@pytest.mark.parametrize(
    "expr",
    [
        "a + b * c",
        "a - b - c",
        "a / b / c",
        "a - (b - c)",
        "a / (b * c)",
        "a * (b + c) - d",
        "d ** c ** a",
        "(d ** c) ** a",
        "-a ** 2",
        "(-a) ** 2",
        "-2 ** 2",
        "a ** -b",
        "2 ** -1 * a",
        "-a * -b",
        "- - a",
        "+a - -b",
        "1 - a ** 2 / b",
        "a * .5 + 5e-1 - 1E+0",
        "-(a + b) * -(c - d)",
        "a % b * c",
        "a * b % c",
        "-a % b",
        "a + b % c ** 2",
        "a < b + c",
        "a - b >= c * d",
        "(a < b) == (c > d)",
        "(a != b) % 2",
        "a == a",
    ],
)
def test_precedence_matches_python(expr: str) -> None:
    """Operators bind as in Python: evaluate the program and Python's ``eval`` of the text."""
    hypers = ", ".join(f"{k}={v}" for k, v in SCALARS.items())
    p = parse(f"def f(w, g, {hypers}):\n  u = {expr}\n  return u\n")
    update, _ = step(p, [np.zeros(1)], [np.zeros(1)], {})
    assert update[0][0] == pytest.approx(float(eval(expr, {}, dict(SCALARS))), rel=1e-15)


def test_negative_literal_is_a_constant() -> None:
    p = parse("def f(w, g):\n  u = g * -0.5\n  return u\n")
    assert [s.op for s in p.body] == ["mul"]
    assert p.body[0].args[1] == Const(Fraction(-1, 2))
    q = parse("def f(w, g):\n  u = -g\n  return u\n")
    assert [s.op for s in q.body] == ["negative"]


def test_numbers_are_exact() -> None:
    p = parse("def f(w, g, a=0.899, b=.5, c=5e-1, d=1e-8, e=-3):\n  return g * a\n")
    defaults = {q.name: q.default.value for q in p.hypers if q.default}
    assert defaults == {
        "a": Fraction(899, 1000),
        "b": Fraction(1, 2),
        "c": Fraction(1, 2),
        "d": Fraction(1, 10**8),
        "e": Fraction(-3),
    }
    assert p.hypers[1].default == p.hypers[2].default  # equality by value, not by spelling


def test_power_spellings_agree() -> None:
    assert same_meaning("def f(w, g):\n  return g ** 2\n", "def f(w, g):\n  return power(g, 2)\n")


def test_constants_are_zero_argument_calls() -> None:
    p = parse("def f(w, g):\n  u = g * get_pi() + get_e() - get_eps()\n  return u\n")
    assert {s.op for s in p.body} >= {"get_pi", "get_e", "get_eps"}


def test_every_function_of_the_spec_is_callable() -> None:
    unary = (
        "abs cos sin tan arcsin arccos arctan sinh cosh tanh arcsinh arccosh arctanh exp exp2 "
        "exp10 expm1 log log10 log2 log1p square sqrt cube cbrt sign reciprocal negative"
    ).split()
    lines = [f"  x = {f}(g)" for f in unary]
    lines += [
        "  x = power(g, 2)",
        "  x = maximum(g, w)",
        "  x = minimum(g, w)",
        "  x = max(g, w)",
        "  x = min(g, w)",
        "  x = interp(g, w, 0.5)",
        "  x = interpolate(g, w, 0.5)",
        "  s = norm(g)",
        "  s = global_norm(g)",
        "  s = dot(g, w)",
        "  s = cosine_sim(g, w)",
        "  x = clip(g, 1)",
        "  x = clip_by_global_norm(g, 1)",
        "  s = get_pi() + get_e() + get_eps()",
    ]
    p = parse("def f(w, g):\n" + "\n".join(lines) + "\n  return x * s\n")
    ops = {s.op for s in p.body}
    assert set(unary) <= ops
    assert {"power", "maximum", "minimum", "interp", "norm", "global_norm", "dot"} <= ops
    assert {"cosine_sim", "clip", "get_pi", "get_e", "get_eps"} <= ops


# -- statements --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("aug", "plain"),
    [
        ("m += g", "m = m + g"),
        ("m -= g", "m = m - g"),
        ("m *= 0.9", "m = m * 0.9"),
        ("m /= 2", "m = m / 2"),
        ("m *= 0.9 + lr", "m = m * (0.9 + lr)"),
    ],
)
def test_augmented_assignment(aug: str, plain: str) -> None:
    head = "def f(w, g, m, lr):\n  "
    a, b = parse(f"{head}{aug}\n  return m, m\n"), parse(f"{head}{plain}\n  return m, m\n")
    assert outputs(a) == outputs(b)
    assert a.body[-1].target == "m.1" and a.body[-1].var == "m"


def test_reassignment_and_self_reference() -> None:
    p = parse("def f(w, g, m):\n  m = m * 0.9\n  m = m + g\n  m = sign(m)\n  return m, m\n")
    assert [s.target for s in p.body] == ["m.1", "m.2", "m.3"]
    assert p.body[1].args == (Ref("m.1"), Ref("g"))


def test_copies_are_aliases() -> None:
    """`x = y` and `x = 0.5` compute nothing: the names become other names for the values."""
    p = parse("def f(w, g, m):\n  x = g\n  y = 0.5\n  m = x * y\n  return m, m\n")
    assert [(s.op, s.args) for s in p.body] == [("mul", (Ref("g"), Const(Fraction(1, 2))))]


def test_return_items_may_be_expressions() -> None:
    p = parse("def f(w, g, m, lr):\n  return sign(m) * lr, interp(g, m, 0.9)\n")
    assert [s.op for s in p.body] == ["sign", "mul", "interp"]
    assert p.outputs == (Ref("%2"), Ref("%3"))


def test_trailing_commas() -> None:
    a = parse("def f(w, g, m,):\n  return (g, m,)\n")
    b = parse("def f(w, g, m):\n  return g, m\n")
    assert a == b


# -- names, roles, hypers -----------------------------------------------------------------------
def test_unicode_names() -> None:
    p = parse((CORPUS / "program1_lion.py").read_text(encoding="utf-8"))
    assert roles(p) == {
        "weight": "weight",
        "gradient": "gradient",
        "momentum": "state",
        "lr": "lr",
        "β1": "hyper",
        "β2": "hyper",
        "λ": "hyper",
    }
    assert {q.name: q.default for q in p.hypers} == {
        "β1": Const.of("0.9"),
        "β2": Const.of("0.99"),
        "λ": Const.of("0.01"),
    }
    q = parse("def f(w, g, μ):\n  μ = interp(g, μ, 0.9)\n  δ_1 = sign(μ)\n  return δ_1, μ\n")
    assert [s.target for s in q.body] == ["μ.1", "δ_1.1"]


@pytest.mark.parametrize(
    ("name", "role"),
    [
        *((n, "weight") for n in ("w", "weight", "param", "params", "p", "theta")),
        *((n, "gradient") for n in ("g", "grad", "gradient")),
        *((n, "lr") for n in ("lr", "learning_rate")),
        ("step", "step"),
    ],
)
def test_roles_by_name(name: str, role: str) -> None:
    others = {
        "weight": "x: weight",
        "gradient": "y: gradient",
        "lr": "z: lr",
        "step": "t: step",
    }
    params = [name, *(v for k, v in others.items() if k != role)]
    p = parse(f"def f({', '.join(params)}):\n  return {'y' if role != 'gradient' else name}\n")
    assert roles(p)[name] == role


def test_roles_by_annotation_override_names() -> None:
    p = parse(
        "def f(x: weight, dx: gradient, rate: lr, t: step, beta: hyper = 0.5, acc: state,"
        " g: state):\n  return dx * rate * beta, acc, g\n"
    )
    assert roles(p) == {
        "x": "weight",
        "dx": "gradient",
        "rate": "lr",
        "t": "step",
        "beta": "hyper",
        "acc": "state",
        "g": "state",
    }
    assert p.states == ("acc", "g")


def test_hypers_and_states_by_default_value() -> None:
    p = parse("def f(w, g, m, beta=0.9, eps=1e-8):\n  m = interp(g, m, beta)\n  return m, m\n")
    assert [q.name for q in p.hypers] == ["beta", "eps"]
    assert p.states == ("m",)


def test_hyper_without_default_takes_a_value_from_outside() -> None:
    text = "def f(w, g, beta: hyper):\n  return g * beta\n"
    p = parse(text, values={"beta": Fraction(9, 10)})
    assert p.hypers[0].default == Const(Fraction(9, 10))


def test_lr_may_have_a_default() -> None:
    p = parse("def f(w, g, lr=0.1):\n  return g * lr\n")
    assert roles(p)["lr"] == "lr" and p.params[2].default == Const.of("0.1")


def test_step_role_is_the_step_count() -> None:
    p = parse(
        "def f(w, g, m, step, b=0.9):\n  m = interp(g, m, b)\n  return m / (1 - b ** step), m\n"
    )
    assert roles(p)["step"] == "step"
    assert infer_types(p)["step"] is Type.SCALAR


# -- the released search space's ("hero") syntax ------------------------------------------
def test_hero_syntax() -> None:
    hero = (
        "def train(params: Params, m, v, gradient):\n"
        "  m = interpolate(gradient, m, 0.9)\n"
        "  v = max(v, min(m, gradient))\n"
        "  return (m, m, v)\n"
    )
    paper = (
        "def train(params, gradient, m, v):\n"
        "  m = interp(gradient, m, 0.9)\n"
        "  v = maximum(v, minimum(m, gradient))\n"
        "  return m, m, v\n"
    )
    p = parse(hero)
    assert roles(p) == {"params": "weight", "m": "state", "v": "state", "gradient": "gradient"}
    assert p.params[0].annotation == "Params"
    assert outputs(p) == outputs(parse(paper))


def test_unknown_annotation_falls_back_to_the_name_rule() -> None:
    p = parse("def f(w: Tensor, g: Tensor, m: Tensor, beta: float = 0.9):\n  return g, m\n")
    assert roles(p) == {"w": "weight", "g": "gradient", "m": "state", "beta": "hyper"}


# -- layout ------------------------------------------------------------------------------------
def test_comments_and_blank_lines_anywhere() -> None:
    text = (
        "# a header comment\n"
        "\n"
        "def f(w, g, m):  # trailing comment on the def\n"
        "\n"
        "      # a comment indented differently\n"
        "  m = interp(g, m, 0.9)  # trailing\n"
        "\n"
        "# a comment at column 1 inside the body\n"
        "  u = sign(m)\n"
        "\n"
        "  return u, m  # done\n"
        "# trailing comment\n"
        "\n"
    )
    plain = "def f(w, g, m):\n  m = interp(g, m, 0.9)\n  u = sign(m)\n  return u, m\n"
    assert parse(text) == parse(plain)
    assert [s.loc.line for s in parse(text).body if s.loc] == [6, 9]


@pytest.mark.parametrize("indent", [" ", "    ", "\t", "        ", " \t"])
def test_free_indentation(indent: str) -> None:
    text = f"def f(w, g, m):\n{indent}m = interp(g, m, 0.9)\n{indent}return sign(m), m\n"
    assert parse(text) == parse("def f(w, g, m):\n  m = interp(g, m, 0.9)\n  return sign(m), m\n")


def test_line_endings_bom_and_final_newline() -> None:
    plain = parse("def f(w, g, lr):\n  u = g * lr\n  return u\n")
    assert parse("def f(w, g, lr):\r\n  u = g * lr\r\n  return u\r\n") == plain
    assert parse("def f(w, g, lr):\n  u = g * lr\n  return u") == plain
    assert parse("\ufeffdef f(w, g, lr):\n  u = g * lr\n  return u\n") == plain


def test_backslash_continuation() -> None:
    a = parse("def f(w, g, lr):\n  u = g * \\\n      lr\n  return u\n")
    assert a == parse("def f(w, g, lr):\n  u = g * lr\n  return u\n")


def test_locations_point_at_the_source() -> None:
    p = parse("def f(w, g, m):\n\n    m = interp(g, m, 0.9)\n    return sign(m), m\n")
    assert p.body[0].loc is not None
    assert (p.body[0].loc.line, p.body[0].loc.col) == (3, 9)
    assert p.params[2].loc is not None and (p.params[2].loc.line, p.params[2].loc.col) == (1, 13)


def test_parse_records_path_and_source() -> None:
    text = "def f(w, g):\n  return g\n"
    p = parse(text, "somewhere/f.py")
    assert p.path == "somewhere/f.py" and p.source == text


def test_deep_parentheses_are_free() -> None:
    """Parentheses add no nodes, so thousands of them nest fine."""
    n = 3000
    p = parse("def f(w, g):\n  u = " + "(" * n + "g" + ")" * n + " * 2\n  return u\n")
    assert [s.op for s in p.body] == ["mul"]


def test_new_constructs_round_trip_and_type() -> None:
    """Comparisons, %, where, clamp, floor, the per-tensor reductions and initial values parse,
    print back to the same program, and type as element-wise ops and reductions do."""
    from simplifier.analysis.types import Type, infer_types
    from simplifier.printer import to_text

    text = (
        "def f(w, g, m: state=1e-06, lr, step):\n"
        "  m = where(step % 3 == 0, clamp(g, -1, m), m)\n"
        "  s = sum(g) / numel(g) + ndim(w) * mean(m)\n"
        "  u = (g >= s) * floor(g % -2) + (lr < 1)\n"
        "  m %= 5\n"
        "  return u * lr, m\n"
    )
    p = parse(text)
    assert parse(to_text(p)) == p
    assert [x.default.value for x in p.params if x.name == "m"] == [Fraction(1, 10**6)]
    assert p.initial == {"m": Fraction(1, 10**6)}
    types = infer_types(p)
    assert types["s.1"] is Type.SCALAR and types["u.1"] is Type.TENSOR
    assert types[p.body[0].target] is Type.SCALAR  # step % 3
    ops = [s.op for s in p.body]
    new = {"mod", "eq", "where", "clamp", "sum", "numel", "ndim", "mean", "ge", "floor", "lt"}
    assert new <= set(ops)
    # a comparison of two scalars is a scalar; where() with a tensor branch is a tensor
    q = parse("def f(w, g, lr):\n  c = lr > 0.5\n  return where(c, g, 0)\n")
    assert infer_types(q)["c.1"] is Type.SCALAR
