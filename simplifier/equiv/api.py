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

import time
from typing import Any

from simplifier.analysis.hashing import structural_hash
from simplifier.equiv.bounded import bounded
from simplifier.equiv.prove import prove
from simplifier.equiv.refute import DEFAULT_RTOL, DEFAULT_STEPS, refute, search_plan
from simplifier.equiv.verdict import Verdict
from simplifier.errors import UsageError
from simplifier.numeric import SEMANTICS, Semantics
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
) -> Verdict:
    """The equivalence verdict of two programs (each a Program, its text or its file); see the
    module docstring.

    ``steps`` is the depth of the bounded symbolic check, ``rtol`` the relative tolerance of the
    numeric comparison (it absorbs float64 rounding; approximate equalities such as ``hero``'s
    ``c / (abs(c) + 1e-8)`` vs ``sign(c)`` are refuted unless ``rtol`` is loosened past their
    error), ``trajectory_steps`` the length of each random trajectory (at least 20).
    """
    if semantics not in SEMANTICS:
        raise UsageError(f"unknown semantics {semantics!r} (expected math or hero)")
    if steps < 1:
        raise UsageError(f"--steps must be at least 1, got {steps}")
    if not 0 <= rtol < 1:
        raise UsageError(f"--rtol must be in [0, 1), got {rtol}")
    if trajectory_steps < 20:
        raise UsageError(f"trajectories need at least 20 steps, got {trajectory_steps}")
    pa, pb = as_program(a), as_program(b)
    started = time.perf_counter()
    details: dict[str, Any] = {"semantics": semantics, "rtol": rtol}

    def done(verdict: Verdict) -> Verdict:
        verdict.details["seconds"] = round(time.perf_counter() - started, 4)
        return verdict

    da, db = eliminate_dead_code(pa), eliminate_dead_code(pb)
    details["dead_removed"] = {"A": len(da.changes), "B": len(db.changes)}
    ha, hb = structural_hash(da.program), structural_hash(db.program)
    details["hash"] = {"A": ha, "B": hb}
    if ha == hb:
        return done(Verdict("identical", [], None, details))
    a_, b_ = da.program, db.program

    proof = prove(a_, b_, semantics)
    details["live_states"] = proof.live
    if proof.proved:
        details["mapping"] = proof.mapping
        details["obligations"] = proof.methods
        details["condition_sources"] = [c.source for c in proof.conditions]
        return done(Verdict("proved", [c.text for c in proof.conditions], None, details))
    details["proof"] = proof.reason

    unrolled = bounded(a_, b_, semantics, steps)
    details["bounded"] = {
        "status": unrolled.status,
        "steps": unrolled.steps,
        "reason": unrolled.reason,
    }
    hints = [unrolled.witness] if unrolled.witness else []
    plan = search_plan(trajectory_steps)
    details["numeric"] = {"scenarios": list(plan.scenarios), "steps": plan.steps}
    cex = refute(a_, b_, semantics, rtol, trajectory_steps, seed, hints)
    if cex is not None:
        return done(Verdict("refuted", [], cex, details))
    if unrolled.status == "equal":
        details["steps"] = unrolled.steps
        details["condition_sources"] = [c.source for c in unrolled.conditions]
        return done(Verdict("proved-bounded", [c.text for c in unrolled.conditions], None, details))
    return done(Verdict("not-refuted", [], None, details))
