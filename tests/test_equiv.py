"""Equivalence verdicts on the issue's pairs and on the cases each verdict exists for.

Every ``refuted`` verdict is re-checked here independently of the checker's own confirmation:
the counterexample's inputs are run through the float64 reference interpreter
(:func:`simplifier.numeric.step`), which must show the difference at the reported step and no
difference before it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from corpus_support import CORPUS, pair_text, program4_ablated

import simplifier
from simplifier.equiv import Counterexample, Verdict, equivalent
from simplifier.ir import Program
from simplifier.numeric import Semantics, initial_states, step
from simplifier.parse import parse, parse_file

# Lion with an lr scale, so that it can match Program 4 (whose peak lr 2e-4 is inside).
LION_SCALED = pair_text("lion_scaled.py")


def program4_without_clip_and_arcsin() -> Program:
    """Corpus Program 4 with its two ablated lines (``clip``, ``arcsin``) removed."""
    return parse(program4_ablated(), "program4-ablated")


def float_updates(a: Program, b: Program, cex: Counterexample, semantics: Semantics) -> list[float]:
    """Relative update differences per step of the counterexample's inputs, in float64."""
    sizes = [len(t) for t in cex.inputs[0].w]
    states_a, states_b = initial_states(a, sizes), initial_states(b, sizes)
    out = []
    with np.errstate(all="ignore"):
        for x in cex.inputs:
            w = [np.array(t) for t in x.w]
            g = [np.array(t) for t in x.g]
            ua, states_a = step(a, w, g, states_a, x.lr, x.step, semantics=semantics)
            ub, states_b = step(b, w, g, states_b, x.lr, x.step, semantics=semantics)
            ua_, ub_ = np.concatenate(ua), np.concatenate(ub)
            if np.any(np.isnan(ua_) != np.isnan(ub_)):
                out.append(math.inf)
                continue
            scale = max(np.nanmax(np.abs(ua_), initial=0), np.nanmax(np.abs(ub_), initial=0))
            diff = np.nanmax(np.abs(ua_ - ub_), initial=0)
            out.append(0.0 if diff == 0 else float(diff / scale))
    return out


def assert_genuine(a: Program, b: Program, v: Verdict, semantics: Semantics = "math") -> None:
    """A refutation must show in plain float64 at its step, and not before."""
    assert v.verdict == "refuted" and v.counterexample is not None
    cex = v.counterexample
    assert cex.step == len(cex.inputs)
    assert [s.step for s in cex.inputs] == list(range(1, cex.step + 1))
    diffs = float_updates(a, b, cex, semantics)
    assert all(d <= 1e-12 for d in diffs[:-1]), diffs
    assert diffs[-1] > 1e-12, diffs
    for d, x, y in zip(cex.difference, cex.update_a, cex.update_b, strict=True):
        assert np.allclose(d, np.array(x) - np.array(y), equal_nan=True)


# -- the pairs ---------------------------------------------------------------------------
def test_program4_ablated_is_lion_with_a_nonzero_momentum_condition() -> None:
    v = equivalent(program4_without_clip_and_arcsin(), parse(LION_SCALED))
    assert v.verdict == "proved"
    assert v.conditions == ["interp(g, v, 0.899) != 0"]
    assert v.details.mapping == {"B.m": "A.v"}
    assert v.details.live_states == {"A": ["v"], "B": ["m"]}
    assert v.counterexample is None and v.exit_code == 0


def test_program4_ablated_vs_corpus_lion_with_set_values() -> None:
    lion = parse_file(
        str(CORPUS / "lion.py"),
        {
            "beta1": Fraction("0.899"),
            "beta2": Fraction("0.996991"),
            "weight_decay": Fraction("0.4602"),
        },
    )
    a = program4_without_clip_and_arcsin()
    v = equivalent(a, lion)  # the corpus Lion has no lr scale: the updates differ by 5000x
    assert_genuine(a, lion, v)
    assert v.counterexample is not None and v.counterexample.step == 1


def test_program4_ablated_vs_lion_with_beta2_099_is_refuted_early() -> None:
    a = program4_without_clip_and_arcsin()
    b = parse(LION_SCALED.replace("beta2=0.996991", "beta2=0.99"))
    v = equivalent(a, b)
    assert_genuine(a, b, v)
    cex = v.counterexample
    assert cex is not None
    assert cex.step == 2  # step 1 agrees for any beta2 (the momentum starts at zero)
    assert all(len(s.w) == 1 and len(s.w[0]) == 1 for s in cex.inputs)  # one tensor entry
    assert all(s.w == [[0.0]] and s.lr == 1.0 for s in cex.inputs)  # w and lr do not matter
    assert all(float(x).is_integer() for s in cex.inputs for x in s.g[0])  # integers suffice


# Adam, renamed, statements reordered, a dead statement and a dead state
ADAM_VARIANT = pair_text("adam_renamed.py")
# Adam storing 10x its first moment (unnormalised EMA) and 4x its second, states swapped
ADAM_SCALED = pair_text("adam_scaled.py")


@pytest.mark.parametrize("semantics", ["math", "hero"])
def test_adam_vs_renamed_reordered_padded_adam(semantics: Semantics) -> None:
    adam = parse_file(str(CORPUS / "adam.py"))
    v = equivalent(adam, parse(ADAM_VARIANT), semantics)
    assert v.verdict in ("identical", "proved")
    assert v.conditions == []


def test_adam_with_scaled_and_swapped_states_is_proved_by_a_linear_map() -> None:
    adam = parse_file(str(CORPUS / "adam.py"))
    v = equivalent(adam, parse(ADAM_SCALED))
    assert v.verdict == "proved"
    assert v.details.mapping == {"B.v4": "4*A.v", "B.m10": "10*A.m"}
    # Both programs divide by the same (bias-correction and root) quantities: no condition.
    assert v.conditions == []


SIGN_BY_DIVISION = pair_text("sign_by_division.py")  # its update, c / abs(c), is line 4
SIGN = pair_text("sign.py")  # the same with sign(c)


def test_c_over_abs_c_is_sign_c_where_c_is_nonzero_under_math() -> None:
    v = equivalent(SIGN_BY_DIVISION, SIGN, "math")
    assert v.verdict == "proved"
    assert v.conditions == ["interp(g, m, 0.9) != 0"]
    assert v.details.condition_sources == ["A line 4 (update)"]


@pytest.mark.parametrize("rtol", [1e-9, 1e-6, 1e-3])
def test_c_over_abs_c_is_not_sign_c_under_hero(rtol: float) -> None:
    # Under hero, c / abs(c) is c / (|c| + 1e-8): off by about 1e-8 / |c| relative, which is
    # everything for |c| below 1e-8. The verdict is refuted at any rtol, never proved.
    a, b = parse(SIGN_BY_DIVISION), parse(SIGN)
    v = equivalent(a, b, "hero", rtol=rtol)
    assert_genuine(a, b, v, "hero")
    cex = v.counterexample
    assert cex is not None and cex.step == 1
    assert cex.relative_difference > rtol
    if rtol == 1e-9:  # the tight default shows it on a gradient of 1
        assert cex.inputs[0].g == [[1.0]] or cex.inputs[0].g == [[-1.0]]


# -- each verdict ------------------------------------------------------------------------------
def test_identical_for_renaming_and_dead_code() -> None:
    a = "def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return sign(m) * lr, m\n"
    b = """def f(p, grad, mom, v, lr):
  t = exp(p)
  mom = interp(grad, mom, .9)
  v = v + t
  return lr * sign(mom), mom, v
"""
    v = equivalent(a, b)
    assert v.verdict == "identical"
    assert v.details.hashes is not None and v.details.hashes.a == v.details.hashes.b


def test_proved_with_a_non_diagonal_linear_map() -> None:
    # B keeps the sum and the difference of A's two momenta.
    a = """def f(w, g, m1, m2, lr):
  m1 = interp(g, m1, 0.9)
  m2 = interp(g, m2, 0.5)
  return (sign(m1) + m2) * lr, m1, m2
"""
    b = """def f(w, g, s, d, lr):
  m1 = (s + d) * 0.5
  m2 = (s - d) * 0.5
  m1 = interp(g, m1, 0.9)
  m2 = interp(g, m2, 0.5)
  return (sign(m1) + m2) * lr, m1 + m2, m1 - m2
"""
    v = equivalent(a, b)
    assert v.verdict == "proved"
    assert v.details.mapping == {"B.s": "A.m1 + A.m2", "B.d": "A.m1 - A.m2"}


def test_proved_when_one_program_keeps_two_copies_of_a_state() -> None:
    a = "def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return sign(m) * lr, m\n"
    b = """def f(w, g, m1, m2, lr):
  m1 = interp(g, m1, 0.9)
  m2 = interp(g, m2, 0.9)
  return (sign(m1) + sign(m2)) * 0.5 * lr, m1, m2
"""
    v = equivalent(a, b)
    assert v.verdict == "proved"
    assert v.details.mapping == {"B.m1": "A.m", "B.m2": "A.m"}
    # Reversed, A's update reads both copies: the proof carries the invariant m2 = m1 (it holds
    # at zero and every step preserves it).
    w = equivalent(b, a)
    assert w.verdict == "proved"
    assert w.details.mapping == {"B.m": "A.m1", "A.m2": "A.m1"}


def test_a_state_that_never_leaves_zero() -> None:
    # m starts at 0 and stays there (sinh(0) = 0); B stores it doubled. The proof needs the
    # invariant m = 0, which the correspondence carries.
    a = "def f(w, g, m, lr):\n  m = sinh(m)\n  return (g + m) * lr, m\n"
    b = "def f(w, g, m, lr):\n  m = sinh(m * 0.5) * 2\n  return (g + m * 0.5) * lr, m\n"
    v = equivalent(a, b)
    assert v.verdict == "proved"
    assert v.details.mapping == {"B.m": "0", "A.m": "0"}


def test_piecewise_identities_are_proved_by_case_splitting() -> None:
    a = "def f(w, g, lr):\n  return maximum(g, w) + minimum(g, w) - abs(g) * sign(g), w\n"
    b = "def f(w, g, lr):\n  return w + 0 * g\n"
    assert equivalent(a.replace(", w\n", "\n"), b).verdict == "proved"


def test_proved_bounded_when_states_encode_nonlinearly() -> None:
    # B stores the cube of m instead of m: no linear map, but every unrolled update is equal.
    a = "def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return sign(m) * lr, m\n"
    b = "def f(w, g, e, lr):\n  m = interp(g, cbrt(e), 0.9)\n  return sign(m) * lr, cube(m)\n"
    v = equivalent(a, b, steps=3)
    assert v.verdict == "proved-bounded"
    assert v.details.bounded_steps == 3
    assert "not linear" in (v.details.proof or "")


def test_not_refuted_when_symbolic_methods_cannot_decide() -> None:
    # sin^2 + cos^2 = 1 is beyond expand and z3 (sin, cos are uninterpreted there).
    a = "def f(w, g, lr):\n  return g * (square(sin(g)) + square(cos(g)))\n"
    b = "def f(w, g, lr):\n  return g\n"
    v = equivalent(a, b)
    assert v.verdict == "not-refuted"
    assert v.counterexample is None and v.conditions == []


def test_refuted_counterexample_is_minimal() -> None:
    a = parse("def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return m * lr, m\n")
    b = parse("def f(w, g, m, lr):\n  m = interp(g, m, 0.8)\n  return m * lr, m\n")
    v = equivalent(a, b)
    assert_genuine(a, b, v)
    cex = v.counterexample
    assert cex is not None and cex.step == 1
    assert cex.inputs[0].w == [[0.0]] and cex.inputs[0].lr == 1.0
    assert cex.inputs[0].g in ([[1.0]], [[-1.0]])
    assert cex.update_a == [[pytest.approx(0.1 * cex.inputs[0].g[0][0])]]


def test_per_tensor_norm_vs_global_norm_needs_two_tensors() -> None:
    a = parse("def f(w, g, lr):\n  return g / norm(g) * lr\n")
    b = parse("def f(w, g, lr):\n  return g / global_norm(g) * lr\n")
    v = equivalent(a, b)
    assert_genuine(a, b, v)
    assert v.counterexample is not None and len(v.counterexample.inputs[0].g) == 2


def test_clip_written_out_is_not_claimed_proved() -> None:
    # clip is opaque to the prover; the two are equal, and the checker must not say otherwise.
    a = "def f(w, g, lr):\n  return clip(g, lr)\n"
    b = "def f(w, g, lr):\n  return g * minimum(1, lr / global_norm(g))\n"
    assert equivalent(a, b).verdict == "not-refuted"


def test_a_condition_only_one_domain_has() -> None:
    a = "def f(w, g, lr):\n  return g / g * lr\n"
    b = "def f(w, g, lr):\n  return lr + 0 * g\n"
    v = equivalent(a, b)
    assert v.verdict == "proved" and v.conditions == ["g != 0"]


def test_reductions_that_divide_by_norms_have_domains() -> None:
    # 0 * x is 0 for SymPy, but cosine_sim(g, m) is NaN at m = 0 (step 1 from zero state), and
    # clip(g, lr) is NaN at g = 0 unless lr > 0: the conditions must say so.
    a = "def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return g + 0 * cosine_sim(g, m), m\n"
    b = "def f(w, g, m, lr):\n  m = interp(g, m, 0.9)\n  return g, m\n"
    v = equivalent(a, b)
    assert v.verdict == "proved"
    assert v.conditions == ["global_norm(g) != 0", "global_norm(interp(g, m, 0.9)) != 0"]
    v = equivalent(
        "def f(w, g, lr):\n  return clip(g, lr) * 0 + g\n", "def f(w, g, lr):\n  return g\n"
    )
    assert v.verdict == "proved" and v.conditions == ["global_norm(g) != 0 or lr > 0"]


def test_shared_domain_restrictions_are_not_conditions() -> None:
    a = "def f(w, g, lr):\n  return log(g) * 2 * lr\n"
    b = "def f(w, g, lr):\n  return lr * log(g) + log(g) * lr\n"
    v = equivalent(a, b)
    assert v.verdict == "proved" and v.conditions == []


def test_lr_input_missing_from_one_program() -> None:
    a = parse("def f(w, g, lr):\n  return g * lr\n")
    b = parse("def f(w, g):\n  return g\n")
    assert_genuine(a, b, equivalent(a, b))


def test_step_dependent_programs() -> None:
    a = "def f(w, g, step):\n  return g / (1 - 0.9 ** step)\n"
    b = "def f(w, g, step):\n  return g * 10 / (10 - 9 * 0.9 ** (step - 1))\n"
    v = equivalent(a, b)
    assert v.verdict == "proved" and v.conditions == []
    c = "def f(w, g, step):\n  return g / (1 - 0.9 ** (step + 1))\n"
    assert equivalent(a, c).verdict == "refuted"


def test_verdict_json_shape() -> None:
    v = equivalent(SIGN_BY_DIVISION, SIGN)
    data = v.as_json()
    assert set(data) >= {"verdict", "conditions", "counterexample"}
    assert data["counterexample"] is None
    r = equivalent(SIGN, SIGN.replace("0.99", "0.9")).as_json()
    assert r["verdict"] == "refuted"
    assert set(r["counterexample"]) >= {"step", "inputs", "update_a", "update_b", "difference"}
    assert set(r["counterexample"]["inputs"][0]) == {"step", "w", "g", "lr"}


def test_public_api_exports() -> None:
    assert simplifier.equivalent is equivalent
    assert simplifier.Verdict is Verdict


@pytest.mark.parametrize(
    "kwargs",
    [{"steps": 0}, {"rtol": -1.0}, {"rtol": 1.0}, {"semantics": "ieee"}, {"trajectory_steps": 5}],
)
def test_bad_options_name_the_parameter(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        equivalent(SIGN, SIGN, **kwargs)  # type: ignore[arg-type]


# -- comparisons, where, floor, %, clamp, and states' initial values (issue 13) ------------------
def _pair(a: str, b: str) -> tuple[Program, Program]:
    return parse(f"def f(w, g, m, lr, step):\n{a}"), parse(f"def f(w, g, m, lr, step):\n{b}")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # a rearranged comparison: the converse relation, and 1 - the complement
        ("  return (g < w) * lr, m\n", "  return (1 - (g >= w)) * lr, m\n"),
        ("  return (g > m) + (m != g), m\n", "  return (m < g) + (1 - (m == g)), m\n"),
        ("  return where(g > w, g, w) * lr, m\n", "  return maximum(w, g) * lr, m\n"),
        (
            "  m = where(g >= 0, interp(g, m, 0.9), m)\n  return sign(m), m\n",
            "  m = where(0 <= g, m * 0.9 + g * 0.1, m)\n  return sign(m), m\n",
        ),
        ("  return clamp(g, -1, 1), m\n", "  return minimum(1, maximum(-1, g)), m\n"),
        ("  return where(step % 2 == 0, g, -g), m\n", "  return where(step % 2 != 0, -g, g), m\n"),
    ],
)
def test_rearranged_comparisons_are_proved(a: str, b: str) -> None:
    pa, pb = _pair(a, b)
    v = equivalent(pa, pb)
    assert v.verdict == "proved", v


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("  return (g < w) * lr, m\n", "  return (g <= w) * lr, m\n"),  # differs at ties only
        ("  return where(g > 0, g, w), m\n", "  return where(g >= 0, g, w), m\n"),
        ("  return floor(g) * lr, m\n", "  return g * lr, m\n"),
        ("  return g % 2, m\n", "  return g % 3, m\n"),
        ("  return clamp(g, -1, 1), m\n", "  return clamp(g, -1, 2), m\n"),
    ],
)
def test_wrong_comparisons_are_refuted_with_a_counterexample(a: str, b: str) -> None:
    pa, pb = _pair(a, b)
    v = equivalent(pa, pb)
    assert_genuine(pa, pb, v)


def test_a_tie_that_cannot_matter_is_proved() -> None:
    """At g == 0 the two select g (0) or m, and m never leaves its initial 0: equivalent."""
    a, b = _pair("  return where(g > 0, g, m), m\n", "  return where(g >= 0, g, m), m\n")
    assert equivalent(a, b).verdict == "proved"
    c = parse("def f(w, g, m: state=1, lr, step):\n  return where(g > 0, g, m), m\n")
    assert_genuine(c, b, equivalent(c, b))  # unless m starts at 1


def test_programs_differing_only_in_a_state_initial_value_are_not_equivalent() -> None:
    a = parse("def f(w, g, v: state=1e-6):\n  v = v + g * g\n  return g / sqrt(v), v\n")
    b = parse("def f(w, g, v):\n  v = v + g * g\n  return g / sqrt(v), v\n")
    assert simplifier.structural_hash(a) != simplifier.structural_hash(b)
    v = equivalent(a, b)
    assert_genuine(a, b, v)
    assert v.counterexample is not None and v.counterexample.step == 1


def test_scaled_states_with_initial_values_are_proved_only_when_the_starts_correspond() -> None:
    a = parse("def f(w, g, v: state=1):\n  v = v * 0.9 + g\n  return g * v, v\n")
    twice = "def f(w, g, u: state={}):\n  u = u * 0.9 + g * 2\n  return g * u / 2, u\n"
    assert equivalent(a, parse(twice.format(2))).verdict == "proved"  # u = 2 v from the start
    b = parse(twice.format(1))
    assert_genuine(a, b, equivalent(a, b))
