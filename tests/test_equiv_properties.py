"""Properties of the checker on random programs: no false proof, no false refutation.

- A program and a re-encoding of it (a state stored times 2, compensated on every read) are
  equivalent: the checker may say anything but ``refuted``.
- Whenever the checker says ``identical`` or ``proved`` without conditions, the two programs
  agree on random inputs in 50-digit arithmetic, state trajectories included, for several steps.
"""

from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simplifier.equiv import equivalent, precise
from simplifier.ir import Const, Program, Ref, Stmt
from simplifier.numeric import SEMANTICS, Semantics
from simplifier.parse import parse
from simplifier.testing import SAFE, programs

SETTINGS = settings(
    max_examples=int(os.environ.get("EQUIV_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def scale_state(program: Program, state: str, factor: Fraction) -> Program:
    """The same optimizer with ``state`` stored times ``factor``: every read sees it divided
    back (by a multiplication, exact under both semantics), the new value is multiplied, and
    its initial value is multiplied."""
    inner = f"{state}.unscaled"
    outer = f"{state}.scaled"
    body: list[Stmt] = [Stmt(inner, "mul", (Ref(state), Const(1 / factor)), None)]
    for s in program.body:
        args = tuple(Ref(inner) if a == Ref(state) else a for a in s.args)
        body.append(replace(s, args=args))
    outputs = list(program.outputs)
    k = 1 + program.states.index(state)
    new = outputs[k]
    new = Ref(inner) if new == Ref(state) else new
    body.append(Stmt(outer, "mul", (new, Const(factor)), None))
    outputs[k] = Ref(outer)
    if outputs[0] == Ref(state):
        outputs[0] = Ref(inner)
    params = tuple(  # the stored state starts scaled too (its initial value, when it has one)
        replace(p, default=Const(p.default.value * factor))
        if p.name == state and p.default is not None
        else p
        for p in program.params
    )
    scaled = replace(program, params=params, body=tuple(body), outputs=tuple(outputs))
    scaled.verify()
    return scaled


def random_inputs(seed: int, steps: int = 5) -> list[precise.Inputs]:
    rng = np.random.default_rng(seed)
    return [
        precise.Inputs(
            [rng.normal(size=3).tolist(), rng.normal(size=2).tolist()],
            [rng.normal(size=3).tolist(), rng.normal(size=2).tolist()],
            float(rng.uniform(0.1, 2)),
        )
        for _ in range(steps)
    ]


def agree(a: Program, b: Program, semantics: Semantics, seed: int) -> bool:
    inputs = random_inputs(seed)
    ua, _ = precise.run(a, inputs, semantics)
    ub, _ = precise.run(b, inputs, semantics)
    return all(precise.relative_difference(x, y) <= 1e-30 for x, y in zip(ua, ub, strict=True))


@SETTINGS
@given(programs(max_statements=6, profile=SAFE), st.sampled_from(SEMANTICS), st.data())
def test_a_rescaled_state_is_never_refuted(
    text: str, semantics: Semantics, data: st.DataObject
) -> None:
    a = parse(text)
    if not a.states:
        return
    state = data.draw(st.sampled_from(a.states))
    factor = data.draw(st.sampled_from([Fraction(2), Fraction(1, 4), Fraction(-1)]))
    b = scale_state(a, state, factor)
    v = equivalent(a, b, semantics)
    assert v.verdict != "refuted", (text, v.counterexample)


def perturb(program: Program, choice: int) -> Program:
    """Change one constant by 1% (or, with no constants, add 1 to the update)."""
    consts = [
        (i, j)
        for i, s in enumerate(program.body)
        for j, a in enumerate(s.args)
        if isinstance(a, Const)
    ]
    if not consts:
        body = (*program.body, Stmt("%out", "add", (program.outputs[0], Const(Fraction(1))), None))
        return replace(program, body=body, outputs=(Ref("%out"), *program.outputs[1:]))
    i, j = consts[choice % len(consts)]
    s = program.body[i]
    args = list(s.args)
    c = args[j]
    assert isinstance(c, Const)
    args[j] = Const(c.value * Fraction(101, 100) if c.value else Fraction(1, 100))
    body = list(program.body)
    body[i] = replace(s, args=tuple(args))
    return replace(program, body=tuple(body))


@SETTINGS
@given(
    st.one_of(programs(max_statements=6, profile=SAFE), programs(max_statements=6)),
    programs(max_statements=6, profile=SAFE),
    st.sampled_from(SEMANTICS),
    st.integers(0, 50),
    st.booleans(),
)
def test_unconditional_proofs_hold_on_random_inputs(
    text_a: str, text_b: str, semantics: Semantics, choice: int, unrelated: bool
) -> None:
    a = parse(text_a)
    b = parse(text_b) if unrelated else perturb(a, choice)
    v = equivalent(a, b, semantics)
    if v.verdict in ("identical", "proved") and not v.conditions:
        assert agree(a, b, semantics, choice), (text_a, v)
