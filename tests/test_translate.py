"""IR -> SymPy translation: exact constants, interp kept folded, hero protection, clip typing."""

from __future__ import annotations

import sympy as sp

from simplifier.equiv import equivalent
from simplifier.parse import parse
from simplifier.symbolic.translate import clip, clip_scalar, expand_interp, interp, translate


def test_constants_are_exact_rationals_from_source_text() -> None:
    s = translate(parse("def f(w, g):\n  return g * 0.1 * 1e-8\n"))
    assert s.update == sp.Rational(1, 10**9) * sp.Symbol("g", real=True)


def test_interp_survives_until_expanded() -> None:
    s = translate(parse("def f(w, g, m):\n  m = interp(g, m, 0.9)\n  return m, m\n"))
    assert isinstance(s.update, interp)
    g, m = sp.symbols("g m", real=True)
    assert sp.expand(expand_interp(s.update) - (g / 10 + 9 * m / 10)) == 0


def test_hero_division_is_protected() -> None:
    text = "def f(w, g):\n  return g / w\n"
    g, w = sp.symbols("g w", real=True)
    assert translate(parse(text), "math").update == g / w
    assert translate(parse(text), "hero").update == g / (w + sp.Rational(1, 10**8))


def test_clip_of_a_scalar_is_not_clip_of_a_tensor_filled_with_it() -> None:
    tensor = translate(parse("def f(w, g, lr):\n  return clip(w - (lr + w), lr)\n")).update
    scalar = translate(parse("def f(w, g, lr):\n  return clip(-lr, lr)\n")).update
    assert type(tensor) is clip and type(scalar) is clip_scalar
    assert tensor != scalar


def test_equivalence_does_not_prove_a_tensor_clip_equal_to_a_scalar_clip() -> None:
    a = parse("def f(w, g, lr):\n  return clip(w - (cosine_sim(w, g) + w), lr)\n")
    b = parse("def f(w, g, lr):\n  return clip(-cosine_sim(w, g), lr)\n")
    assert equivalent(a, b).verdict == "refuted"
