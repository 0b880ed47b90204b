"""Properties of the simplifier on random programs (Hypothesis, the SAFE profile).

- It never increases the number of operations.
- The result agrees with the input over 6 random steps (float64, relative 1e-9 of the step's
  magnitude: its inputs and update, so that rounding in a cancellation of the *input* program,
  like ``(w - 1e-8) - w``, is not taken for a difference) at every step where the logged
  conditions hold. The conditions are evaluated here on the input program's own values; entries
  where the input overflows (inf or NaN) are outside the levels and not compared.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simplifier.ir import Program, Ref
from simplifier.numeric import step
from simplifier.parse import parse
from simplifier.passes.rewrite import program_from_dag
from simplifier.simplify import SimplifyResult, simplify
from simplifier.testing import SAFE, programs, random_program

STEPS = 6
RTOL = 1e-9
SHAPES = ((4,), (2, 3))
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def conditions_hold(
    program: Program, result: SimplifyResult, inputs: tuple[Any, ...], semantics: str
) -> bool:
    """Whether every logged condition holds at this step of the input program."""
    for o in result.obligations:
        subject = o.subject_node
        if o.relation is None or subject is None:
            continue
        probe = program_from_dag(program, [subject, *(Ref(s) for s in program.states)], {})
        values = step(probe, *inputs, semantics=semantics)[0]  # type: ignore[arg-type]
        with np.errstate(all="ignore"):
            if not all(np.all(o.relation.holds(np.asarray(v))) for v in values):
                return False
    return True


def compare(program: Program, result: SimplifyResult, seed: int, semantics: str) -> int:
    """Assert agreement; return the number of steps compared (before a condition failed)."""
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s) for s in SHAPES]
    states_in = {s: [np.zeros(x) for x in SHAPES] for s in program.states}
    states_out = {s: [np.zeros(x) for x in SHAPES] for s in result.program.states}
    for t in range(STEPS):
        grads = [rng.normal(size=s) for s in SHAPES]
        lr = float(rng.uniform(0.1, 2.0))
        inputs = (weights, grads, states_in, lr, t + 1)
        if not conditions_hold(program, result, inputs, semantics):
            return t
        scale = max(
            [1e-300]
            + [float(np.max(np.abs(x))) for x in [*weights, *grads] if np.isfinite(x).all()]
            + [
                float(np.max(np.abs(x)))
                for v in states_in.values()
                for x in v
                if np.isfinite(x).all()
            ]
        )
        before, states_in = step(program, weights, grads, states_in, lr, t + 1, semantics=semantics)  # type: ignore[arg-type]
        after, states_out = step(
            result.program,
            weights,
            grads,
            states_out,
            lr,
            t + 1,
            semantics=semantics,  # type: ignore[arg-type]
        )
        for x, y in zip(before, after, strict=True):
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            finite = np.isfinite(x)
            size = max(scale, float(np.max(np.abs(x[finite]))) if finite.any() else 0.0)
            with np.errstate(all="ignore"):
                diff = np.abs(x - y)[finite]
            assert np.all(diff <= RTOL * size), (t, float(np.max(diff)) / size)
        with np.errstate(all="ignore"):
            weights = [w - u for w, u in zip(weights, before, strict=True)]
    return STEPS


@SETTINGS
@given(programs(max_statements=10, profile=SAFE))
def test_never_more_operations(text: str) -> None:
    program = parse(text)
    result = simplify(program, check=False)
    assert len(result.program.body) <= len(program.body)


@SETTINGS
@given(
    programs(max_statements=10, profile=SAFE),
    st.sampled_from(["math", "hero"]),
    st.integers(0, 2**16),
)
def test_agrees_where_the_logged_conditions_hold(text: str, semantics: str, seed: int) -> None:
    program = parse(text)
    result = simplify(program, semantics, check=False)  # type: ignore[arg-type]
    compare(program, result, seed, semantics)


def test_the_agreement_property_is_not_vacuous() -> None:
    """On 60 seeded random programs, almost every comparison runs all its steps."""
    full = 0
    for seed in range(60):
        text = random_program(random.Random(seed), statements=1 + seed % 10, profile=SAFE)
        program = parse(text)
        result = simplify(program, check=False)
        full += compare(program, result, seed, "math") == STEPS
    assert full >= 55
