"""Inductive equivalence proofs: a linear state correspondence preserved by every step.

Two programs A and B are equivalent when, from their initial states, they produce the same
update at every step. The proof is a simulation: a linear map ``M`` with
``state_B = M @ state_A`` (over the live states; dead states cannot reach an update) such that

1. it holds initially: ``M @ init_A = init_B`` for the states' initial values (zero unless a
   program gives one, ``v: state = 1e-6``: with zeros, true for every linear map);
2. the updates agree given corresponding states: ``update_B(M s) == update_A(s)``;
3. every step preserves it: ``new_B(M s) == M @ new_A(s)``,

for all real states ``s`` and inputs where both programs are defined (see :mod:`.align`). By
induction over steps, the updates are then equal at every step. The identities are checked
symbolically (:mod:`.decide`: SymPy, then z3 for piecewise functions) with the states and inputs
as free symbols: nothing here is sampled.

The relation may also tie A's own states together (invariants such as ``m2 = m1`` for a state
kept twice, or ``m = 0`` for a state that never leaves zero): those are substituted, and the step
must preserve them too.

``M`` is found by fitting, not by guessing blindly: both programs run a few steps in 50-digit
precision from zero state, A's live states are split into an independent basis and dependent
states (the invariants), each live state of B is fitted as a linear combination of the basis, and
the coefficients are read back as exact rationals. A permutation, a scaled state (``m2 = 2 * m``)
or a sum of states all come out of the same fit; the symbolic check then decides whether the
guess is a proof. Both directions are tried (B's states as a function of A's, and the reverse),
and permutations when the fit fails or is degenerate.

>>> from simplifier.parse import parse
>>> a = parse("def f(w, g, m):\\n  m = interp(g, m, 0.9)\\n  return sign(m), m\\n")
>>> b = parse("def f(w, g, m):\\n  m = m * 0.9 + g * 0.2\\n  return sign(m), m\\n")
>>> proof = prove(a, b)
>>> proof.proved, proof.mapping
(True, {'B.m': '2*A.m'})
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp

from simplifier.equiv import precise
from simplifier.equiv.align import (
    Constraint,
    RoleSymbols,
    TranslationError,
    domain_constraints,
    live_states,
    live_targets,
    real_symbol,
    show,
    translate_step,
)
from simplifier.equiv.decide import SYMPY_BUDGET_S, canonical, check_zero, implied, satisfiable
from simplifier.ir import Program
from simplifier.numeric import Semantics
from simplifier.passes.base import NO_DEADLINE, Deadline
from simplifier.symbolic.translate import SymbolicStep, SymbolicTimeout, time_budget

PROOF_BUDGET_S = 5.0  # for one direction; SymPy calls inside have their own smaller budgets
Matrix = dict[str, dict[str, Fraction]]  # B's state -> {A's state: coefficient}


@dataclass(frozen=True)
class Side:
    """One program translated for the proof: its states as symbols, its live part."""

    program: Program
    label: str  # "A" or "B"
    symbols: dict[str, sp.Symbol]
    step: SymbolicStep
    live: tuple[str, ...]

    @staticmethod
    def of(program: Program, label: str, roles: RoleSymbols, semantics: Semantics) -> Side:
        taken = {s.name for s in roles.symbols.values()}
        symbols: dict[str, sp.Symbol] = {}
        for name in program.states:
            spelled = name
            while spelled in taken:
                spelled += "'"
            taken.add(spelled)
            symbols[name] = real_symbol(spelled)
        step = translate_step(program, semantics, {**roles.inputs(program), **symbols})
        return Side(program, label, symbols, step, live_states(program, step.outputs, symbols))

    def domain(
        self, semantics: Semantics, step: SymbolicStep | None = None
    ) -> tuple[list[Constraint], bool]:
        """The domain of the live statements, over ``step`` (default: the step as translated)."""
        step = step or self.step
        targets = live_targets(self.program, self.live)
        return domain_constraints(self.program, step.values, targets, semantics, self.label)


@dataclass(frozen=True)
class Proof:
    """The outcome of a proof attempt; ``conditions`` are needed only when ``proved``."""

    proved: bool
    conditions: list[Constraint] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)
    live: dict[str, list[str]] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    reason: str = ""


def prove(
    a: Program, b: Program, semantics: Semantics = "math", deadline: Deadline = NO_DEADLINE
) -> Proof:
    """Try to prove ``a`` and ``b`` equivalent at every step (see the module docstring).

    Each direction has a time budget (less when ``deadline`` is nearer); an expression nested
    too deeply for SymPy's recursive algorithms gives up on the proof, with that reason."""
    roles = RoleSymbols.of(a, b)
    reasons = []
    live: dict[str, list[str]] = {}
    programs = {"A": a, "B": b}
    for src, dst in (("A", "B"), ("B", "A")):
        try:
            with time_budget(deadline.cap(PROOF_BUDGET_S)):
                s = Side.of(programs[src], src, roles, semantics)
                d = Side.of(programs[dst], dst, roles, semantics)
                live = live or {"A": [], "B": [], src: list(s.live), dst: list(d.live)}
                proof = _attempt(s, d, semantics)
        except SymbolicTimeout:
            proof = Proof(False, reason=f"{dst} from {src}: timed out")
        except TranslationError as e:
            proof = Proof(False, reason=str(e))
        except RecursionError:
            proof = Proof(False, reason=f"{dst} from {src}: too deeply nested for SymPy")
        if proof.proved:
            return proof
        reasons.append(proof.reason)
    return Proof(False, live=live, reason="; ".join(dict.fromkeys(reasons)))


def _attempt(src: Side, dst: Side, semantics: Semantics) -> Proof:
    """Try the fitted correspondence, then (when the fit fails or is degenerate) permutations."""
    fitted = fit_map(src, dst, semantics)
    no_fit = f"{dst.label}'s states are not linear in {src.label}'s"
    first: Proof | None = None
    for candidate in _candidates(src, dst, fitted):
        proof = _check(src, dst, candidate, semantics)
        if proof.proved:
            return proof
        first = first or proof
    if first is None:
        return Proof(False, reason=no_fit)
    if fitted is None:  # only one-to-one matches were tried
        return replace(first, reason=f"{no_fit}; {first.reason}")
    return first


MAX_PERMUTED = 4  # permutations of up to 4 states (24 candidates) are tried as a fallback


def _candidates(src: Side, dst: Side, fitted: Correspondence | None) -> Iterator[Correspondence]:
    if fitted is not None:
        yield fitted
    # Trajectories from zero can be degenerate (a state that stays 0 fits as 0, two states
    # that move together fit as one): then also try matching states one to one, in every order.
    degenerate = fitted is None or fitted.invariants or any(not r for r in fitted.matrix.values())
    if degenerate and len(src.live) == len(dst.live) <= MAX_PERMUTED:
        for order in itertools.permutations(src.live):
            matrix = {j: {i: Fraction(1)} for j, i in zip(dst.live, order, strict=True)}
            if fitted is None or matrix != fitted.matrix:
                yield Correspondence(matrix, {})


def _combination(row: dict[str, Fraction], values: Mapping[str, sp.Expr]) -> sp.Expr:
    return sum(
        (sp.Rational(c.numerator, c.denominator) * values[i] for i, c in row.items()),
        sp.Integer(0),
    )


def _check(src: Side, dst: Side, corr: Correspondence, semantics: Semantics) -> Proof:
    """Check the proof obligations of ``state_dst = M @ state_src`` (with ``src``'s dependent
    states replaced by their invariant combinations of the others)."""
    live = {src.label: list(src.live), dst.label: list(dst.live)}
    labelled = {sym: sp.Symbol(f"{src.label}.{name}") for name, sym in src.symbols.items()}
    # src's own invariants (a state that stays 0, a copy of another): substitute, then check
    # below that the step preserves them.
    tied = {i: _combination(row, src.symbols) for i, row in corr.invariants.items()}
    own = src.step
    if tied:
        inputs = {
            **{p: v for p, v in src.step.inputs.items() if p not in src.symbols},
            **src.symbols,
            **tied,
        }
        own = translate_step(src.program, semantics, inputs)
    image = {j: _combination(row, src.symbols) for j, row in corr.matrix.items()}
    dead = {j: sp.Dummy(f"dead_{j}", real=True) for j in dst.program.states if j not in image}
    inputs = {**{p: v for p, v in dst.step.inputs.items() if p not in dst.symbols}, **image, **dead}
    mapped = translate_step(dst.program, semantics, inputs)
    mapping = {f"{dst.label}.{j}": show(e.xreplace(labelled)) for j, e in image.items()}
    mapping.update({f"{src.label}.{i}": show(e.xreplace(labelled)) for i, e in tied.items()})

    def new(side: Side, step: SymbolicStep, state: str) -> sp.Expr:
        return step.outputs[1 + side.program.states.index(state)]

    new_src = {i: new(src, own, i) for i in src.live}
    obligations: list[tuple[str, sp.Expr]] = [("update", mapped.outputs[0] - own.outputs[0])]
    for j, row in corr.matrix.items():
        target = _combination(row, new_src)
        obligations.append((f"state {dst.label}.{j}", new(dst, mapped, j) - target))
    for i, row in corr.invariants.items():
        obligations.append((f"invariant {src.label}.{i}", new_src[i] - _combination(row, new_src)))

    initial = _initially(src, dst, corr)
    if initial is not None:
        return Proof(False, live=live, mapping=mapping, reason=initial)
    dom_src, ok_src = src.domain(semantics, own)
    dom_dst, ok_dst = dst.domain(semantics, mapped)
    if not (ok_src and ok_dst):
        return Proof(False, live=live, mapping=mapping, reason="a program is undefined everywhere")
    assumptions = [c.relation for c in dom_src + dom_dst]
    if assumptions and satisfiable(assumptions) is not True:
        return Proof(False, live=live, mapping=mapping, reason="the two domains do not overlap")

    methods = []
    for what, diff in obligations:
        outcome = check_zero(diff, assumptions)
        if outcome.status != "equal":
            why = "not proved equal" if outcome.status == "different" else "undecided"
            under = f" under {mapping}" if mapping else ""
            detail = f" ({outcome.reason})" if outcome.reason else ""
            return Proof(False, live=live, mapping=mapping, reason=f"{what} {why}{under}{detail}")
        methods.append(f"{what}: {outcome.method}")
    conditions = domain_difference(dom_src, dom_dst)
    return Proof(True, conditions, mapping, live, methods)


def _initially(src: Side, dst: Side, corr: Correspondence) -> str | None:
    """Obligation 1 with the states' initial values (exact numbers): None if
    ``M @ init_src == init_dst`` and ``src``'s invariants hold at step 0, else the reason."""
    init_src, init_dst = src.program.initial, dst.program.initial

    def value(row: dict[str, Fraction]) -> Fraction:
        return sum((c * init_src[i] for i, c in row.items()), Fraction(0))

    for j, row in corr.matrix.items():
        if value(row) != init_dst[j]:
            return f"state {dst.label}.{j} does not start where the correspondence says"
    for i, row in corr.invariants.items():
        if value(row) != init_src[i]:
            return f"invariant {src.label}.{i} does not hold at step 0"
    return None


def domain_difference(
    first: Sequence[Constraint], second: Sequence[Constraint]
) -> list[Constraint]:
    """Constraints of one side that the other side's domain does not imply, without repeats.

    Where such a constraint fails, one program is undefined (NaN or inf) and the other is not:
    that is the condition the equivalence needs.
    """
    out: list[Constraint] = []
    seen: set[str] = set()
    for mine, theirs in ((first, second), (second, first)):
        premises = [c.relation for c in theirs]
        present = set(premises)
        for c in mine:
            if c.relation in present or c.text in seen or _proportional(c.relation, premises):
                continue
            if implied(c.relation, premises):
                continue
            seen.add(c.text)
            out.append(c)
    return out


def _proportional(rel: sp.Basic, premises: Sequence[sp.Basic]) -> bool:
    """``x != 0`` follows from ``c * x != 0`` (c a non-zero number): a cheap SymPy test for
    what z3 cannot see through uninterpreted functions."""
    if not isinstance(rel, sp.Ne) or rel.rhs != 0:
        return False
    try:
        with time_budget(SYMPY_BUDGET_S):
            for p in premises:
                if isinstance(p, sp.Ne) and p.rhs == 0:
                    ratio = sp.cancel(sp.together(canonical(rel.lhs) / canonical(p.lhs)))
                    if ratio.is_number and ratio.is_nonzero and ratio.is_finite:
                        return True
    except SymbolicTimeout:
        pass
    return False


# -- finding the map -----------------------------------------------------------------------------
FIT_SEQUENCES = 3
FIT_STEPS = 4
FIT_ENTRIES = 3
FIT_TOLERANCE = mpmath.mpf(10) ** -25


@dataclass(frozen=True)
class Correspondence:
    """``dst``'s live states as combinations of ``src``'s (``matrix``), and ``src``'s dependent
    states as combinations of its other states (``invariants``: a state that stays 0 maps to
    an empty row)."""

    matrix: Matrix
    invariants: Matrix


def fit_map(src: Side, dst: Side, semantics: Semantics, seed: int = 0) -> Correspondence | None:
    """A candidate correspondence, fitted on trajectories from zero state.

    The trajectories run in 50-digit precision on random inputs. ``src``'s live states are split
    into a linearly independent basis and dependent states (fitted on the basis: invariants);
    each live state of ``dst`` is fitted on the basis. A coefficient is accepted when the fit
    reproduces every sample to 25 digits and the coefficient has a rational form with a
    denominator below 10^15. The result is only a candidate: :func:`prove` checks it
    symbolically.
    """
    rng = np.random.default_rng(seed)
    rows: list[list[mpmath.mpf]] = []
    targets: list[list[mpmath.mpf]] = []
    with mpmath.workdps(precise.DIGITS):
        for _ in range(FIT_SEQUENCES):
            inputs = [
                precise.Inputs(
                    [rng.uniform(-2, 2, FIT_ENTRIES).tolist()],
                    [rng.uniform(-2, 2, FIT_ENTRIES).tolist()],
                    float(rng.uniform(0.5, 2)),
                )
                for _ in range(FIT_STEPS)
            ]
            _, hs = precise.run(src.program, inputs, semantics)
            _, hd = precise.run(dst.program, inputs, semantics)
            for states_s, states_d in zip(hs, hd, strict=True):
                for k in range(FIT_ENTRIES):
                    x = [states_s[i][0][k] for i in src.live]
                    y = [states_d[j][0][k] for j in dst.live]
                    if all(mpmath.isfinite(v) for v in x + y):
                        rows.append(x)
                        targets.append(y)
        if not rows:
            return None
        basis = _independent_columns(rows)
        on_basis = [[r[i] for i in basis] for r in rows]

        def fit(values: list[mpmath.mpf]) -> dict[str, Fraction] | None:
            coeffs = _fit(on_basis, values)
            if coeffs is None:
                return None
            return {src.live[i]: c for i, c in zip(basis, coeffs, strict=True) if c != 0}

        matrix: Matrix = {}
        for jj, j in enumerate(dst.live):
            row = fit([t[jj] for t in targets])
            if row is None:
                return None
            matrix[j] = row
        invariants: Matrix = {}
        for ii, i in enumerate(src.live):
            if ii not in basis:
                row = fit([r[ii] for r in rows])
                if row is None:
                    return None
                invariants[i] = row
    return Correspondence(matrix, invariants)


def _independent_columns(rows: list[list[mpmath.mpf]]) -> list[int]:
    """Indices of a maximal set of linearly independent columns (Gram-Schmidt, greedy)."""
    kept: list[list[mpmath.mpf]] = []
    chosen: list[int] = []
    for i in range(len(rows[0]) if rows else 0):
        v = [r[i] for r in rows]
        norm0 = mpmath.sqrt(mpmath.fsum(x * x for x in v))
        for q in kept:
            dot = mpmath.fsum(x * y for x, y in zip(v, q, strict=True))
            v = [x - dot * y for x, y in zip(v, q, strict=True)]
        norm = mpmath.sqrt(mpmath.fsum(x * x for x in v))
        if norm0 > 0 and norm > FIT_TOLERANCE * norm0:
            kept.append([x / norm for x in v])
            chosen.append(i)
    return chosen


def _fit(x: list[list[mpmath.mpf]], y: list[mpmath.mpf]) -> list[Fraction] | None:
    scale = max((abs(v) for v in y), default=mpmath.mpf(0))
    if not x or not x[0]:
        return [] if scale == 0 else None
    a = mpmath.matrix(x)
    b = mpmath.matrix(y)
    try:
        c = mpmath.lu_solve(a.T * a, a.T * b)
    except ZeroDivisionError:
        return None
    residual = max(abs(v) for v in (a * c - b))
    if residual > FIT_TOLERANCE * max(scale, mpmath.mpf(1)):
        return None
    out = []
    for v in c:
        f = Fraction(mpmath.nstr(v, precise.DIGITS - 5, strip_zeros=False)).limit_denominator(
            10**15
        )
        if abs(v - mpmath.mpf(f.numerator) / f.denominator) > FIT_TOLERANCE * max(
            abs(v), mpmath.mpf(1)
        ):
            return None
        out.append(f)
    return out


__all__ = ["Correspondence", "Proof", "Side", "domain_difference", "fit_map", "prove"]
