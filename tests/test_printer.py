"""The one expression printer: exact constants, precedence, linear and iterative printing."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from simplifier.ir import Const, Node, format_number
from simplifier.parse import parse
from simplifier.passes.patterns import pattern, render_pattern
from simplifier.passes.rewrite import rewrite
from simplifier.printer import ATOM, NodePrinter, apply_text, expression_text, to_text

# Finite decimals: an integer over 2**a * 5**b, up to 40 digits (within float64's range).
decimals = st.builds(
    lambda n, a, b: Fraction(n, 2**a * 5**b),
    st.integers(-(10**40), 10**40),
    st.integers(0, 60),
    st.integers(0, 60),
)


@given(decimals)
def test_constants_print_exactly(value: Fraction) -> None:
    assert Fraction(Decimal(format_number(value))) == value


@given(decimals)
def test_programs_with_exact_constants_round_trip(value: Fraction) -> None:
    template = parse("def f(w, g, lr, k=1):\n  u = g * 3 + k\n  return u * lr\n")
    body = tuple(
        replace(s, args=(s.args[0], Const(value))) if s.op == "mul" else s for s in template.body
    )
    params = tuple(
        replace(p, default=Const(abs(value))) if p.name == "k" else p for p in template.params
    )
    p = replace(template, body=body, params=params)
    assert parse(to_text(p)) == p


def test_two_to_the_hundred_prints_every_digit() -> None:
    assert format_number(Fraction(2**100)) == "1267650600228229401496703205376"
    p = parse("def f(w, g, lr):\n  return g * 1267650600228229401496703205376 * lr\n")
    assert "1267650600228229401496703205376" in to_text(p)
    assert format_number(Fraction(3**40, 10**60)) == "1.2157665459056928801e-41"  # not 0.000...


def test_apply_text_parenthesises_by_precedence() -> None:
    a = ("a + b", 1)
    assert apply_text("mul", [a, ("c", ATOM)])[0] == "(a + b) * c"
    assert apply_text("sub", [("x", ATOM), ("y - z", 1)])[0] == "x - (y - z)"
    assert apply_text("power", [("x", ATOM), ("y ** z", 4)])[0] == "x ** y ** z"
    assert apply_text("negative", [("0.5", ATOM)], call=True)[0] == "negative(0.5)"


def test_pattern_texts_parenthesise_their_bindings() -> None:
    # The log once read `sqrt(abs(g) + g * abs(g) + g)` for sqrt((abs(g) + g) * (abs(g) + g)).
    assert render_pattern(pattern("sqrt(x * x)"), {"x": ("abs(g) + g", 1)}) == (
        "sqrt((abs(g) + g) * (abs(g) + g))"
    )


def test_statement_text_inlines_temporaries() -> None:
    p = parse(
        "def f(w, g, m):\n  m = interp(g, m, 0.9)\n  u = -(sign(m) + w) ** 2\n  return u, m\n"
    )
    assert [expression_text(p, s) for s in p.body if s.var] == [
        "m = interp(g, m, 0.9)",
        "u = -(sign(m) + w) ** 2",
    ]


def test_node_printer_is_iterative_on_deep_nodes() -> None:
    node = Node.make("input", (), "g")
    for _ in range(5_000):  # far past Python's recursion limit
        node = Node.make("abs", (node,))
    text = NodePrinter().text(node)
    assert text.startswith("abs(abs(") and text.count("abs(") == 5_000


def test_change_log_names_rewritten_values_instead_of_expanding_them() -> None:
    # `a = sqrt(a * a) + a`, 200 times: each rewrite's text once expanded every earlier `a`
    # (exponential in the number of lines); now it names it.
    lines = "".join("  a = sqrt(a * a) + a\n" for _ in range(200))
    r = rewrite(parse(f"def f(w, g, lr):\n  a = g\n{lines}  return a * lr\n"))
    details = [c.detail for c in r.changes]
    assert len(details) == 200 and set(details[1:]) == {"sqrt-mul-self: sqrt(a * a) -> abs(a)"}
