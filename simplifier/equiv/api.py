"""``equivalent(a, b)``: are two programs the same optimizer?

Two programs are equivalent when, started from zero state, they produce the same update at every
step for every sequence of weights, gradients, lr values and step numbers. The checker tries, in
order, the cheapest conclusive answer first:

1. ``identical``: the structural hashes (after dead-code removal) are equal;
2. ``proved``: an inductive proof (:mod:`.prove`), with the domain conditions it needs;
3. ``refuted``: a counterexample confirmed in high precision, from a z3 model of the first
   differing symbolic step (:mod:`.bounded`) or from random float64 trajectories (:mod:`.refute`);
4. ``proved-bounded``: the first ``steps`` updates are symbolically equal and no trajectory
   disagrees;
5. ``not-refuted``: nothing decided symbolically; every trajectory agrees within ``rtol``.

Only 1 and 2 are claims about all steps; ``proved-bounded`` covers ``steps`` steps exactly and
the rest by sampling; ``not-refuted`` is sampling only.

>>> from simplifier.parse import parse
>>> a = parse("def f(w, g, m, lr):\\n  m = interp(g, m, 0.9)\\n  return sign(m) * lr, m\\n")
>>> b = parse("def f(w, g, m, lr):\\n  m = interp(g, m, 0.9)\\n  return m / abs(m) * lr, m\\n")
>>> v = equivalent(a, b)
>>> v.verdict, v.conditions
('proved', ['interp(g, m, 0.9) != 0'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from simplifier.analysis.hashing import structural_hash
from simplifier.equiv.bounded import Bounded, bounded
from simplifier.equiv.prove import prove
from simplifier.equiv.refute import DEFAULT_RTOL, DEFAULT_STEPS, refute, search_plan
from simplifier.equiv.verdict import BoundedCheck, Details, Float64Check, Pair, Verdict
from simplifier.ir import Program
from simplifier.numeric import SEMANTICS, Semantics, initial_states, step
from simplifier.passes.base import NO_DEADLINE, Deadline
from simplifier.passes.dce import eliminate_dead_code
from simplifier.source import ProgramSource, as_program


def equivalent(
    a: ProgramSource,
    b: ProgramSource,
    semantics: Semantics = "math",
    steps: int = 4,
    rtol: float = DEFAULT_RTOL,
    *,
    trajectory_steps: int = DEFAULT_STEPS,
    seed: int = 0,
    deadline: Deadline = NO_DEADLINE,
) -> Verdict:
    """The equivalence verdict of two programs (each a Program, its text or its file); see the
    module docstring.

    ``steps`` is the depth of the bounded symbolic check, ``rtol`` the relative tolerance of the
    numeric comparison (it absorbs float64 rounding; approximate equalities such as ``hero``'s
    ``c / (abs(c) + 1e-8)`` vs ``sign(c)`` are refuted unless ``rtol`` is loosened past their
    error), ``trajectory_steps`` the length of each random trajectory (at least 20).
    ``deadline`` bounds the work: past it, the checker raises :class:`Undecided` (between
    its stages; SymPy work inside a stage has its own budgets) rather than claim a verdict.
    """
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be math or hero, not {semantics!r}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not 0 <= rtol < 1:
        raise ValueError(f"rtol must be in [0, 1), got {rtol}")
    if trajectory_steps < 20:
        raise ValueError(f"trajectory_steps must be at least 20, got {trajectory_steps}")
    pa, pb = as_program(a), as_program(b)
    started = time.perf_counter()
    details = Details(semantics=semantics, rtol=rtol)

    def done(verdict: Verdict) -> Verdict:
        verdict.details.seconds = round(time.perf_counter() - started, 4)
        return verdict

    da, db = eliminate_dead_code(pa), eliminate_dead_code(pb)
    details.dead_removed = Pair(len(da.changes), len(db.changes))
    ha, hb = structural_hash(da.program), structural_hash(db.program)
    details.hashes = Pair(ha, hb)
    if ha == hb:
        return done(Verdict("identical", [], None, details))
    a_, b_ = da.program, db.program

    def float64_checked(verdict: Verdict) -> Verdict:
        details.float64 = float64_check(a_, b_, semantics, rtol, trajectory_steps, seed)
        return done(verdict)

    if deadline.expired:
        raise Undecided(f"before the inductive proof: {deadline.text()}")
    proof = prove(a_, b_, semantics, deadline)
    details.live_states = proof.live
    if proof.proved:
        details.mapping = proof.mapping
        details.obligations = proof.methods
        details.condition_sources = [c.source for c in proof.conditions]
        return float64_checked(Verdict("proved", [c.text for c in proof.conditions], None, details))
    details.proof = proof.reason

    if deadline.expired:
        raise Undecided(f"before the bounded check: {deadline.text()}")
    try:
        unrolled = bounded(a_, b_, semantics, steps)
    except RecursionError:
        unrolled = Bounded("unknown", 0, reason="too deeply nested for SymPy")
    details.bounded = BoundedCheck(unrolled.status, unrolled.steps, unrolled.reason)
    hints = [unrolled.witness] if unrolled.witness else []
    plan = search_plan(trajectory_steps)
    details.numeric = {"scenarios": list(plan.scenarios), "steps": plan.steps}
    if deadline.expired:
        raise Undecided(f"before the random search: {deadline.text()}")
    cex = refute(a_, b_, semantics, rtol, trajectory_steps, seed, hints)
    if cex is not None:
        return done(Verdict("refuted", [], cex, details))
    if unrolled.status == "equal":
        details.bounded_steps = unrolled.steps
        details.condition_sources = [c.source for c in unrolled.conditions]
        conditions = [c.text for c in unrolled.conditions]
        return float64_checked(Verdict("proved-bounded", conditions, None, details))
    return float64_checked(Verdict("not-refuted", [], None, details))


class Undecided(Exception):
    """The deadline ran out before the checker reached a verdict (none is claimed)."""


def float64_check(
    a: Program, b: Program, semantics: Semantics, rtol: float, steps: int, seed: int = 0
) -> Float64Check:
    """Run both programs in float64 on the same random trajectory (normal weights and
    gradients, the weights following A's updates) and compare their updates within ``rtol``
    (relative to the larger magnitude); entries that are NaN in either update are skipped.

    >>> from simplifier.parse import parse
    >>> a = parse("def f(w, g):\\n  return (g + 1e20) - 1e20\\n")
    >>> b = parse("def f(w, g):\\n  return g\\n")
    >>> check = float64_check(a, b, "math", 1e-9, 20)
    >>> check.agrees, check.first_difference
    (False, 1)
    """
    rng = np.random.default_rng([seed, 7])
    shapes = (3, 2)
    w = [rng.normal(size=n) for n in shapes]
    sa, sb = initial_states(a, shapes), initial_states(b, shapes)
    with np.errstate(all="ignore"):
        for t in range(steps):
            g = [rng.normal(size=n) for n in shapes]
            lr = float(rng.uniform(0.1, 2.0))
            ua, sa = step(a, w, g, sa, lr, t + 1, semantics=semantics)
            ub, sb = step(b, w, g, sb, lr, t + 1, semantics=semantics)
            rel = _relative_difference(ua, ub)
            if rel > rtol:
                return Float64Check(False, steps, t + 1, rel)
            w = [x - np.asarray(u, dtype=np.float64) for x, u in zip(w, ua, strict=True)]
    return Float64Check(True, steps)


def _relative_difference(a: Sequence[Any], b: Sequence[Any]) -> float:
    """The largest difference of two updates relative to their magnitude; NaN entries (in
    either) are skipped, inf against anything else is an infinite difference."""
    worst = scale = 0.0
    for x, y in zip(a, b, strict=True):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        x, y = np.broadcast_arrays(x, y)
        keep = ~(np.isnan(x) | np.isnan(y))
        x, y = x[keep], y[keep]
        finite = np.isfinite(x) & np.isfinite(y)
        if np.any(~finite & (x != y)):
            return math.inf
        if np.any(finite):
            worst = max(worst, float(np.max(np.abs(x[finite] - y[finite]))))
            scale = max(scale, float(np.max(np.abs(x[finite]))), float(np.max(np.abs(y[finite]))))
    return 0.0 if worst == 0 else worst / scale
