"""Dead-code elimination: bitwise exact on random programs; expected output on the corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simplifier.analysis.liveness import liveness
from simplifier.analysis.types import infer_types
from simplifier.numeric import SEMANTICS, run
from simplifier.parse import parse, parse_file
from simplifier.passes.base import Pipeline
from simplifier.passes.dce import DeadCodeElimination, eliminate_dead_code
from simplifier.printer import to_text
from simplifier.testing import programs

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
SHAPES = ((3,), (2, 2))


def bitwise_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal bit for bit (so -0.0 != 0.0), except that any NaN equals any NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    if not np.array_equal(nan_a, nan_b):
        return False
    return np.array_equal(
        np.where(nan_a, 0.0, a).view(np.uint64), np.where(nan_b, 0.0, b).view(np.uint64)
    )


def inputs(seed: int, steps: int):
    rng = np.random.default_rng(seed)

    def sample(shape):
        x = rng.normal(size=shape) * rng.choice([0.01, 1.0, 10.0])
        x[rng.random(size=shape) < 0.1] = 0.0  # zeros exercise 0/0, log(0), sign(0)
        return x

    weights = [sample(s) for s in SHAPES]
    grads = [[sample(s) for s in SHAPES] for _ in range(steps)]
    lrs = list(rng.uniform(0.0, 2.0, size=steps))
    return weights, grads, lrs


def assert_same_updates(a, b, seed: int, steps: int = 6) -> None:
    weights, grads, lrs = inputs(seed, steps)
    for semantics in SEMANTICS:
        with np.errstate(all="ignore"):  # `w - update` with inf updates, outside run's guard
            ta = run(a, weights, grads, lrs, steps, semantics=semantics)
            tb = run(b, weights, grads, lrs, steps, semantics=semantics)
        for t, (ua, ub) in enumerate(zip(ta.updates, tb.updates, strict=True)):
            for x, y in zip(ua, ub, strict=True):
                assert bitwise_equal(x, y), (semantics, t, to_text(a), to_text(b))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(text=programs(max_statements=12), seed=st.integers(0, 2**32 - 1))
def test_dce_never_changes_a_result_bit(text, seed):
    program = parse(text)
    result = eliminate_dead_code(program)
    out = result.program
    out.verify()
    infer_types(out)
    assert len(out.body) <= len(program.body)
    assert_same_updates(program, out, seed)
    # Idempotent, and nothing dead is left.
    again = eliminate_dead_code(out)
    assert not again.changed and again.program == out
    info = liveness(out)
    assert all(f.live for f in info.values.values()) and all(f.live for f in info.states.values())


@settings(max_examples=40, deadline=None, derandomize=True)
@given(text=programs(max_statements=12))
def test_within_step_mode_keeps_every_state(text):
    program = parse(text)
    out = eliminate_dead_code(program, across_steps=False).program
    assert out.states == program.states
    assert all(
        c.kind == "dead-statement" for c in eliminate_dead_code(program, across_steps=False).changes
    )
    full = eliminate_dead_code(program).program
    assert set(s.target for s in full.body) <= set(s.target for s in out.body)


def test_raw_program4_gives_back_program4():
    raw = parse_file(str(CORPUS / "program4_raw.py"))
    clean = parse_file(str(CORPUS / "program4.py"))
    within = eliminate_dead_code(raw, across_steps=False).program
    # Within one step: exactly the padding goes (the across-steps padding line stays).
    assert to_text(eliminate_dead_code(within).program) == to_text(
        eliminate_dead_code(clean).program
    )
    result = eliminate_dead_code(raw)
    assert result.program.states == ("v",)
    assert [c.kind for c in result.changes].count("dead-state") == 1
    assert all(c.level == "exact" for c in result.changes)
    lines = [c.line for c in result.changes if c.kind == "dead-statement"]
    assert lines == sorted(lines) and len(lines) == len(set(lines)) == 16
    assert_same_updates(raw, result.program, seed=1)


def test_program4_loses_cosh_and_state_m():
    p = parse_file(str(CORPUS / "program4.py"))
    result = eliminate_dead_code(p)
    text = to_text(result.program)
    assert "cosh" not in text and "m = interp(g, v, 0.899)" in text
    assert text.startswith("def train(w, g, v, lr):")
    assert text.rstrip().endswith("return update, v")
    kinds = [(c.kind, c.detail) for c in result.changes]
    assert kinds[0][0] == "dead-statement" and "only feeds state 'm'" in kinds[0][1]
    assert kinds[1] == ("dead-state", "state 'm': overwritten at line 8 before it is read")
    assert_same_updates(p, result.program, seed=2)


def test_nested_statement_gives_one_change_per_line():
    p = parse("def f(w, g, lr):\n  t = exp(sin(g) * 2)\n  return g * lr\n")
    result = eliminate_dead_code(p)
    assert [(c.line, c.detail) for c in result.changes] == [(2, "result never read")]
    assert len(result.program.body) == 1


def test_dead_state_return_expression_is_removed_with_the_state():
    p = parse("def f(w, g, m, lr):\n  return g * lr, exp(m) * 2\n")
    result = eliminate_dead_code(p)
    assert [c.kind for c in result.changes] == ["dead-state"]
    assert to_text(result.program) == "def f(w, g, lr):\n  return g * lr\n"
    assert result.program.output_locs == result.program.output_locs[:1]


def test_nothing_dead_returns_the_same_program():
    p = parse_file(str(CORPUS / "adam.py"))
    result = eliminate_dead_code(p)
    assert result.program is p and not result.changed


def test_pass_in_a_pipeline():
    p = parse_file(str(CORPUS / "program4_raw.py"))
    result = Pipeline((DeadCodeElimination(),)).run(p)
    assert result.changed and [(s.name, s.result.changes) for s in result.steps] == [
        ("dead-code", result.changes)
    ]


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.py")), ids=lambda p: p.name)
def test_corpus_is_preserved_bitwise(path):
    p = parse_file(str(path))
    assert_same_updates(p, eliminate_dead_code(p).program, seed=3)
