"""Bounded equivalence: the first K updates from zero state, symbolically.

Each step gets fresh input symbols (``w_1, g_1, lr_1``, then ``w_2, ...``; the step number is the
integer itself) and the states carry the expressions of the previous step, starting from 0. The
update of step ``t`` must be the same expression-level function of all inputs up to ``t`` in both
programs, decided by :mod:`.decide` over the common domain. When z3 finds a step where they
differ, its model is a candidate counterexample for :mod:`.refute` to confirm numerically.

>>> from simplifier.parse import parse
>>> a = parse("def f(w, g, m):\\n  m = interp(g, m, 0.9)\\n  return m, m\\n")
>>> b = parse("def f(w, g, m):\\n  m = interp(g, m, 0.9)\\n  return m * (1 + 0 * m), m\\n")
>>> bounded(a, b, steps=3).status
'equal'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Literal

import sympy as sp

from simplifier.equiv.align import (
    Constraint,
    RoleSymbols,
    TranslationError,
    domain_constraints,
    live_targets,
    real_symbol,
    simplify_condition,
    translate_step,
)
from simplifier.equiv.decide import canonical, check_zero, satisfiable
from simplifier.equiv.precise import Inputs
from simplifier.equiv.prove import Side, domain_difference
from simplifier.ir import Program, Role
from simplifier.numeric import Semantics
from simplifier.symbolic.translate import SymbolicTimeout, rational, time_budget

BOUNDED_BUDGET_S = 5.0


@dataclass(frozen=True)
class Bounded:
    """``equal``: the first ``steps`` updates agree (under ``conditions``); ``different``: they
    differ at ``step`` (``witness``: z3's inputs there, unconfirmed); ``unknown``: undecided at
    ``step``."""

    status: Literal["equal", "different", "unknown"]
    steps: int
    step: int | None = None
    conditions: list[Constraint] = field(default_factory=list)
    witness: list[Inputs] | None = None
    reason: str = ""


def bounded(a: Program, b: Program, semantics: Semantics = "math", steps: int = 4) -> Bounded:
    """Compare the first ``steps`` updates of ``a`` and ``b`` symbolically from zero state."""
    try:
        with time_budget(BOUNDED_BUDGET_S):
            return _unroll(a, b, semantics, steps)
    except (SymbolicTimeout, TranslationError) as e:
        return Bounded("unknown", 0, reason=str(e))


def _unroll(a: Program, b: Program, semantics: Semantics, steps: int) -> Bounded:
    roles = RoleSymbols.of(a, b)
    sides = [Side.of(p, label, roles, semantics) for p, label in ((a, "A"), (b, "B"))]
    states: list[dict[str, sp.Expr]] = [
        {s: rational(v) for s, v in p.initial.items()} for p in (a, b)
    ]
    domains: list[list[Constraint]] = [[], []]
    per_step: list[dict[Role, sp.Symbol]] = []
    for t in range(1, steps + 1):
        symbols: dict[Role, sp.Symbol] = {
            role: real_symbol(f"{sym.name}_{t}")
            for role, sym in roles.symbols.items()
            if role is not Role.STEP
        }
        per_step.append(symbols)
        updates = []
        for k, side in enumerate(sides):
            p = side.program
            inputs: dict[str, sp.Expr] = {**states[k]}
            for prm in p.params:
                if prm.role is Role.STEP:
                    inputs[prm.name] = sp.Integer(t)
                elif prm.role in symbols:
                    inputs[prm.name] = symbols[prm.role]
            out = translate_step(p, semantics, inputs)
            dom, ok = domain_constraints(
                p, out.values, live_targets(p, side.live), semantics, side.label
            )
            if not ok:
                return Bounded("unknown", t - 1, t, reason=f"{side.label} is undefined at step {t}")
            domains[k] += dom
            updates.append(out.outputs[0])
            # Dead states never reach an update: hold them at 0 instead of growing expressions.
            states[k] = {
                s: (out.outputs[1 + i] if s in side.live else sp.S.Zero)
                for i, s in enumerate(p.states)
            }
        assumptions = [c.relation for c in domains[0] + domains[1]]
        outcome = check_zero(updates[0] - updates[1], assumptions)
        if outcome.status == "different":
            return Bounded(
                "different",
                t - 1,
                t,
                witness=_witness(outcome.model, per_step),
                reason=f"update {t} differs in a z3 model (numerically unconfirmed unless refuted)",
            )
        if outcome.status == "unknown":
            return Bounded("unknown", t - 1, t, reason=f"update {t} undecided: {outcome.reason}")
    assumptions = [c.relation for c in domains[0] + domains[1]]
    if assumptions and satisfiable(assumptions) is not True:
        return Bounded("unknown", steps, reason="the two domains do not overlap")
    conditions = [_expanded(c) for c in domain_difference(domains[0], domains[1])]
    return Bounded("equal", steps, conditions=conditions)


def _expanded(c: Constraint) -> Constraint:
    """Unrolled steps nest interps deeply: state the condition as an expanded polynomial."""
    rel = c.relation
    if isinstance(rel, sp.Rel):
        rel = rel.func(canonical(rel.lhs - rel.rhs), 0)
    return replace(c, relation=simplify_condition(rel))


def _witness(
    model: dict[sp.Symbol, Fraction], per_step: list[dict[Role, sp.Symbol]]
) -> list[Inputs]:
    """z3's model as one-entry inputs per step (unassigned inputs: w = g = 0, lr = 1)."""

    def value(symbols: dict[Role, sp.Symbol], role: Role, default: float) -> float:
        sym = symbols.get(role)
        return float(model[sym]) if sym is not None and sym in model else default

    return [
        Inputs(
            [[value(s, Role.WEIGHT, 0.0)]], [[value(s, Role.GRADIENT, 0.0)]], value(s, Role.LR, 1.0)
        )
        for s in per_step
    ]
