"""Printer round trip: ``parse(to_text(p)) == p`` for every corpus program and for random ones.

IR equality is exact: same statements, SSA targets, source names, ops, exact constants, roles
and hyper defaults. For IR that no source text produces directly (what passes build: a
temporary read twice, a name rebound while its old value is still read), the printer must
still give text that parses back to the same computation: the same interned DAG.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings

from simplifier.ir import Atom, Const, Param, Program, Ref, Role, Stmt, dag
from simplifier.parse import parse
from simplifier.printer import to_text
from simplifier.testing import programs

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.py"))


def assert_round_trip(p: Program) -> str:
    text = to_text(p)
    q = parse(text)
    assert q == p, f"round trip changed the program:\n{text}"
    assert to_text(q) == text  # the canonical text is a fixed point
    return text


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.stem)
def test_corpus_round_trip(path: Path) -> None:
    assert_round_trip(parse(path.read_text(encoding="utf-8"), str(path)))


def test_corpus_is_not_empty() -> None:
    assert len(CORPUS_FILES) >= 16


def test_program_4_prints_as_written() -> None:
    """Program 4 is already canonical: the printer gives back the paper's text."""
    text = (CORPUS / "program4.py").read_text(encoding="utf-8")
    code = "".join(line + "\n" for line in text.splitlines() if not line.startswith("#"))
    assert to_text(parse(text)) == code


@settings(max_examples=150, deadline=None)
@given(programs(max_statements=12))
def test_random_programs_round_trip(text: str) -> None:
    assert_round_trip(parse(text))


@pytest.mark.parametrize(
    "text",
    [
        # operators that need (and do not need) parentheses
        "def f(w, g, a=2):\n  return (g - w) - (g - a)\n",
        "def f(w, g, a=2):\n  u = g / (w * a) / (a / g)\n  return u\n",
        "def f(w, g):\n  u = -g ** 2 + (-g) ** 2 + g ** -1 + g ** (-w)\n  return u\n",
        "def f(w, g):\n  u = (g ** w) ** 2 + g ** w ** 2\n  return u\n",
        "def f(w, g):\n  u = (-0.5) ** 2 * g - -0.5 + -(-g)\n  return u\n",
        "def f(w, g):\n  u = -(g * w) + -(g + w) - -g\n  return u\n",
        # numbers in every spelling
        "def f(w, g, a=.5, b=-1e-8, c=1E3):\n  u = g * 0.899 + 1e-08 * w - 2.50 * a\n  return u\n",
        # hero syntax becomes paper syntax, with the same IR
        "def train(params: Params, m, v, gradient):\n"
        "  m = interpolate(gradient, m, 0.9)\n  v = max(m, min(v, gradient))\n  return (m, m, v)\n",
        # roles by annotation, Unicode, augmented assignment
        "def f(x: weight, dx: gradient, rate: lr, t: step, β: hyper=0.9, g: state):\n"
        "  g *= β\n  g += dx\n  return g * rate / t, g\n",
        # reductions and constants, nested
        "def f(w, g, lr):\n"
        "  u = clip(g, lr) * cosine_sim(g, w) + dot(g, g) * get_pi()\n  return u\n",
    ],
)
def test_tricky_programs_round_trip(text: str) -> None:
    assert_round_trip(parse(text))


# -- IR that passes build -----------------------------------------------------------------------
W, G = Param("w", Role.WEIGHT), Param("g", Role.GRADIENT)


def same_computation(p: Program, q: Program) -> bool:
    def out(prog: Program) -> list[object]:
        nodes = dag(prog)
        return [nodes[a.name] if isinstance(a, Ref) else a for a in prog.outputs]

    return out(p) == out(q) and [x.role for x in p.params] == [x.role for x in q.params]


def _program(params: tuple[Param, ...], body: list[Stmt], outputs: tuple[Atom, ...]) -> Program:
    p = Program("f", params, tuple(body), outputs)
    p.verify()
    return p


def test_rebound_name_still_read_is_renamed() -> None:
    """``m`` is reassigned while its first value is still needed: the printer renames one."""
    two, three = Const(Fraction(2)), Const(Fraction(3))
    p = _program(
        (W, G, Param("m", Role.STATE)),
        [
            Stmt("m.1", "mul", (Ref("g"), two), "m"),
            Stmt("m.2", "mul", (Ref("g"), three), "m"),
            Stmt("u.1", "add", (Ref("m.1"), Ref("m.2")), "u"),
        ],
        (Ref("u.1"), Ref("m.1")),
    )
    q = parse(to_text(p))
    assert same_computation(p, q)


def test_shared_temporary_gets_a_name() -> None:
    p = _program(
        (W, G),
        [
            Stmt("%1", "sign", (Ref("g"),), None),
            Stmt("u.1", "mul", (Ref("%1"), Ref("%1")), "u"),
        ],
        (Ref("u.1"),),
    )
    text = to_text(p)
    assert "sign(g)" in text and text.count("sign(") == 1  # computed once, not inlined twice
    assert same_computation(p, parse(text))


def test_temporary_output_is_inlined() -> None:
    p = _program(
        (W, G, Param("lr", Role.LR)),
        [Stmt("%1", "sign", (Ref("g"),), None), Stmt("%2", "mul", (Ref("%1"), Ref("lr")), None)],
        (Ref("%2"),),
    )
    assert to_text(p) == "def f(w, g, lr):\n  return sign(g) * lr\n"
    assert same_computation(p, parse(to_text(p)))


def test_input_named_like_a_printed_temporary() -> None:
    """Generated names (t1, ...) avoid every name already in the program."""
    p = _program(
        (W, G, Param("t1", Role.STATE)),
        [
            Stmt("%1", "abs", (Ref("g"),), None),
            Stmt("t1.1", "mul", (Ref("%1"), Ref("%1")), "t1"),
        ],
        (Ref("t1"), Ref("t1.1")),
    )
    q = parse(to_text(p))
    assert same_computation(p, q)
