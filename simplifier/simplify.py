"""The simplifier: dead code -> rewrite rules -> SymPy folding and reconstruction -> dead code.

:func:`simplify` runs a :class:`~simplifier.passes.base.Pipeline` of passes
(:func:`default_pipeline`, with an optional ablation pass after the first dead-code pass),
which verifies the IR after each, logs every change with its exactness level and condition,
and checks the result against the input: by the equivalence checker and by a multi-step random
numeric comparison (float64) over the steps where the logged conditions hold.

Conditions are rendered with the names of the *output* program: Program 4's sign rewrite says
``c != 0``, ``c`` being the interpolation the simplified update reads.

>>> from simplifier.parse import parse
>>> program4 = '''def train(w, g, m, v, lr):
...   g = clip(g, lr)
...   g = arcsin(g)
...   m = interp(g, v, 0.899)
...   m2 = m * m
...   v = interp(g, m, 1.109)
...   abs_m = sqrt(m2)
...   update = m / abs_m
...   wd = w * 0.4602
...   update = update + wd
...   lr = lr * 0.0002
...   m = cosh(update)
...   update = update * lr
...   return update, m, v
... '''
>>> result = simplify(parse(program4))
>>> print(to_text(result.program), end="")
def train(w, g, v, lr):
  g = arcsin(clip(g, lr))
  c = interp(g, v, 0.899)
  update = (sign(c) + w * 0.4602) * (lr * 0.0002)
  v = interp(g, v, 0.996991)
  return update, v
>>> [c.condition for c in result.changes if c.level == "almost-everywhere"]
['c != 0']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from simplifier.ir import Node, Program, Ref, dag
from simplifier.numeric import Semantics, initial_states, step
from simplifier.passes.base import (
    DEFAULT_TIME_LIMIT,
    NO_DEADLINE,
    Change,
    Deadline,
    Pass,
    Pipeline,
    Step,
)
from simplifier.passes.conditions import Obligation
from simplifier.passes.dce import DeadCodeElimination
from simplifier.passes.fold import SymbolicFold
from simplifier.passes.rewrite import Allow, RewriteRules, program_from_dag
from simplifier.printer import NodePrinter, to_text

if TYPE_CHECKING:
    from simplifier.equiv.verdict import Verdict
from simplifier.source import ProgramSource, as_program

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "NumericCheck",
    "SimplifyResult",
    "compare_numerically",
    "default_pipeline",
    "simplify",
    "to_text",
]


# -- the pipeline ----------------------------------------------------------------------------------
def default_pipeline(
    program: Program,
    semantics: Semantics = "math",
    allow: Allow = "almost-everywhere",
    *,
    ablation: Pass | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> Pipeline:
    """DCE (both kinds) -> [ablation -> DCE] -> rules -> SymPy folding and reconstruction -> DCE.

    ``ablation`` (a pass whose changes are ``measured``, e.g.
    :class:`simplifier.ablation.ablate.Ablation`) goes after the first dead-code pass. The
    folding pass does not reuse the name of any state of ``program``.
    """
    passes: list[Pass] = [DeadCodeElimination()]
    if ablation is not None:
        passes += [ablation, DeadCodeElimination(name="dead-code (after ablation)")]
    passes += [
        RewriteRules(semantics, allow, deadline),
        SymbolicFold(semantics, frozenset(program.states), deadline=deadline),
        DeadCodeElimination(name="dead-code (after folding)"),
    ]
    return Pipeline(tuple(passes), deadline=deadline)


# -- the numeric check -----------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericCheck:
    """A multi-step random comparison of two programs' updates (float64).

    ``compared`` steps agreed within ``rtol`` (relative to the largest magnitude of the step:
    its inputs and the update) unless ``differs_at`` names the first step that did not.
    Comparison stops at ``conditions_fail_at``, the first step where a logged condition does
    not hold. Entries where the input's update is not finite (overflow) are not compared:
    ``skipped`` counts them, ``entries`` counts the entries compared.
    """

    steps: int
    compared: int
    max_error: float
    rtol: float
    differs_at: int | None = None
    conditions_fail_at: int | None = None
    skipped: int = 0
    entries: int = 0

    @property
    def agree(self) -> bool:
        return self.differs_at is None

    @property
    def vacuous(self) -> bool:
        """Nothing was compared (a condition failed at once, or every update was not finite)."""
        return self.entries == 0

    def unverified(self) -> list[str]:
        """Why an agreeing check does not verify the result (empty when it does)."""
        out = []
        if self.conditions_fail_at is not None:
            out.append(
                f"a logged condition does not hold on the check's inputs "
                f"(step {self.conditions_fail_at + 1})"
            )
        elif self.vacuous:
            out.append(
                f"the numeric check compared nothing (all {self.skipped} updated entries were "
                "not finite)"
            )
        return out

    def text(self) -> str:
        if self.differs_at is not None:
            return (
                f"numeric check: the updates DIFFER at step {self.differs_at + 1} "
                f"(relative difference {self.max_error:.2g} > {self.rtol:g})"
            )
        held = ""
        if self.conditions_fail_at is not None:
            held = f"; a logged condition fails at step {self.conditions_fail_at + 1}: stopped"
        elif self.vacuous:
            held = "; no entry compared: every update was not finite"
        return (
            f"numeric check: updates agree over {self.compared} of {self.steps} random steps "
            f"(float64, max relative difference {self.max_error:.2g}){held}"
        )


SHAPES = ((3, 4), (5,))


def _probe(program: Program, subject: Node) -> Program:
    """A program whose update is ``subject`` (over ``program``'s inputs), states unchanged."""
    outputs: list[Any] = [subject, *(Ref(s) for s in program.states)]
    return program_from_dag(program, outputs, {})


def _magnitude(values: Sequence[Any]) -> float:
    """The largest finite absolute entry among ``values`` (0 if none)."""
    top = 0.0
    for v in values:
        a = np.abs(np.asarray(v, dtype=np.float64))
        a = a[np.isfinite(a)]
        if a.size:
            top = max(top, float(np.max(a)))
    return top


def compare_numerically(
    before: Program,
    after: Program,
    obligations: Sequence[Obligation] = (),
    semantics: Semantics = "math",
    steps: int = 8,
    seed: int = 0,
    rtol: float = 1e-9,
) -> NumericCheck:
    """Run both programs on the same random weights, gradients and lr for ``steps`` steps.

    Each program evolves its own states; the weights follow the input program's updates.

    >>> from simplifier.parse import parse
    >>> a = parse("def f(w, g, lr):\\n  return g * lr * 2\\n")
    >>> b = parse("def f(w, g, lr):\\n  return g * (lr * 2)\\n")
    >>> compare_numerically(a, b).agree
    True
    """
    rng = np.random.default_rng(seed)
    weights = [rng.normal(size=s) for s in SHAPES]
    states_b, states_a = initial_states(before, SHAPES), initial_states(after, SHAPES)
    probes = [
        (_probe(before, node), o.relation)
        for o in obligations
        if o.relation is not None and (node := o.subject_node) is not None
    ]
    bounds = [
        ({k: _probe(before, n) for k, n in o.bindings.items()}, o.error)
        for o in obligations
        if o.error is not None
    ]
    worst, skipped, entries = 0.0, 0, 0
    for t in range(steps):
        grads = [rng.normal(size=s) for s in SHAPES]
        lr = float(rng.uniform(0.5, 1.5))

        inputs = (weights, grads, states_b, lr, t + 1)
        for probe, relation in probes:
            value = step(probe, *inputs, semantics=semantics)[0]
            with np.errstate(all="ignore"):
                ok = all(bool(np.all(relation.holds(np.asarray(v)))) for v in value)
            if not ok:
                return NumericCheck(steps, t, worst, rtol, None, t, skipped, entries)
        # An approximate rewrite may move the update by its bound (taken as relative: the
        # rewritten values of this language's approximate rules, like sign, are of order 1).
        tolerance = rtol
        for probes_of, bound in bounds:
            values = {k: step(p, *inputs, semantics=semantics)[0] for k, p in probes_of.items()}
            for i in range(len(SHAPES)):
                with np.errstate(all="ignore"):
                    e = bound({k: np.asarray(v[i]) for k, v in values.items()})
                tolerance += float(np.max(e)) if np.size(e) else 0.0
        # Differences are measured against the step's magnitudes (inputs and update), so that
        # rounding in a cancellation like `(w - 1e-8) - w` is not taken for a difference.
        scale = _magnitude([*weights, *grads, *(x for v in states_b.values() for x in v), lr])
        ub, states_b = step(before, weights, grads, states_b, lr, t + 1, semantics=semantics)
        ua, states_a = step(after, weights, grads, states_a, lr, t + 1, semantics=semantics)
        for x, y in zip(ub, ua, strict=True):
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
            finite = np.isfinite(x)
            skipped += int(np.sum(~finite))
            entries += int(np.sum(finite))
            if not finite.any():
                continue
            with np.errstate(all="ignore"):
                diff = float(np.max(np.abs(x - y)[finite]))
            size = max(scale, _magnitude([x]))
            error = diff / size if size > 0 else diff
            if not np.isfinite(error) or error > tolerance:
                return NumericCheck(steps, t, error, tolerance, t, None, skipped, entries)
            worst = max(worst, error)
        with np.errstate(all="ignore"):
            weights = [w - u for w, u in zip(weights, ub, strict=True)]
    return NumericCheck(steps, steps, worst, rtol, None, None, skipped, entries)


# -- the result ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimplifyResult:
    """The simplified program, the change log, and the verdict of the checks.

    ``obligations`` are the changes that assume something (conditions, bounds) in testable
    form; ``numeric`` and ``equivalence`` are the two checks (None when not run).
    """

    program: Program
    changes: tuple[Change, ...]
    verdict: str
    notes: tuple[str, ...] = ()
    obligations: tuple[Obligation, ...] = ()
    numeric: NumericCheck | None = None
    equivalence: Verdict | str | None = None  # a str: not checked, or why the checker failed
    operations: tuple[int, int] = (0, 0)  # before, after
    steps: tuple[Step, ...] = field(default=(), compare=False)  # each pass: name, result

    @property
    def unverified(self) -> list[str]:
        """Why the checks do not verify this result although they found no difference: a
        logged condition fails on the numeric check's inputs, or that check compared nothing
        (every update not finite) and no unconditional proof stands in for it. Empty when the
        result is verified, or when the checks were not run."""
        if self.numeric is None or not self.numeric.agree:
            return []
        if self.numeric.conditions_fail_at is None and self._proved_unconditionally():
            return []  # an unconditional proof (float64 included) stands without samples
        return self.numeric.unverified()

    def _proved_unconditionally(self) -> bool:
        v = self.equivalence
        if v is None or isinstance(v, str):
            return False
        return v.verdict == "identical" or (
            v.verdict == "proved" and not v.conditions and v.float64_agrees is not False
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "program": to_text(self.program),
            "changes": [c.as_json() for c in self.changes],
            "verdict": self.verdict,
            "notes": list(self.notes),
            "operations": {"before": self.operations[0], "after": self.operations[1]},
            "numeric": None
            if self.numeric is None
            else {
                "agree": self.numeric.agree,
                "steps": self.numeric.steps,
                "compared": self.numeric.compared,
                "max_relative_difference": self.numeric.max_error,
                "rtol": self.numeric.rtol,
                "conditions_fail_at_step": None
                if self.numeric.conditions_fail_at is None
                else self.numeric.conditions_fail_at + 1,
                "entries_compared": self.numeric.entries,
            },
            "unverified": self.unverified,
            "equivalence": _equivalence_json(self.equivalence),
        }


class _FinalNames:
    """Names of the final program's values, for rendering conditions: by DAG node (interned,
    so a subject the pipeline did not reshape is found as is), else by folded SymPy value."""

    def __init__(self, program: Program, semantics: Semantics, deadline: Deadline) -> None:
        self.program, self.semantics, self.deadline = program, semantics, deadline
        nodes = dag(program)
        self.keep = [nodes[s.target] for s in program.body if s.var is not None]  # ids stay valid
        self.by_node = {id(nodes[s.target]): s.var for s in program.body if s.var is not None}
        self.by_value: dict[Any, str] | None = None
        self.fold: Callable[[Any], Any] | None = None

    def __call__(self, n: Node) -> str | None:
        found = self.by_node.get(id(n))
        if found is not None or n.op in ("input", "const"):
            return found
        from simplifier.symbolic.fold import Folder, to_sympy
        from simplifier.symbolic.translate import SymbolicTimeout, time_budget

        try:
            if self.deadline.expired:
                return None
            with time_budget(self.deadline.cap(1.0)):
                if self.by_value is None or self.fold is None:
                    t = to_sympy(self.program, self.semantics)
                    self.fold = Folder(t.tensors, t.states)
                    self.by_value = {}
                    for s in self.program.body:
                        if s.var is not None:
                            self.by_value.setdefault(self.fold(t.values[s.target]), s.var)
                probe = to_sympy(_probe(self.program, n), self.semantics)
                return self.by_value.get(self.fold(probe.outputs[0]))
        except (SymbolicTimeout, KeyError, ValueError, TypeError, RecursionError):
            return None  # reads a removed input, SymPy refused it or nests too deep: no name


def equivalence_text(verdict: Verdict | str | None) -> str:
    """The equivalence checker's verdict in one line: its name, conditions, counterexample."""
    if verdict is None or isinstance(verdict, str):
        return str(verdict)
    text: str = verdict.verdict
    if verdict.conditions:
        text += " where " + " and ".join(verdict.conditions)
    example = verdict.counterexample
    if example is not None:
        diff = f", relative difference {example.relative_difference:.2g}"
        text += f" (at step {example.step}{diff})"
    f64 = verdict.details.float64
    if f64 is not None and not f64.agrees:
        text += f" (over the reals; float64 trajectories disagree from step {f64.first_difference})"
    return text


def _equivalence_json(verdict: Verdict | str | None) -> Any:
    if verdict is None or isinstance(verdict, str):
        return verdict
    return verdict.as_json()


def simplify(
    program: ProgramSource,
    semantics: Semantics = "math",
    allow: Allow = "almost-everywhere",
    *,
    pipeline: Pipeline | None = None,
    ablation: Pass | None = None,
    check: bool = True,
    steps: int = 8,
    time_limit: float | None = DEFAULT_TIME_LIMIT,
) -> SimplifyResult:
    """Simplify ``program`` (a Program, its text or its file); log every change; check the
    result against the input.

    ``allow`` is the least exact level of rewrite that may be applied (``exact``,
    ``almost-everywhere`` or ``approximate``). Under ``semantics="hero"`` no math-only rewrite
    is applied. ``pipeline`` replaces :func:`default_pipeline` (``ablation`` is a pass for its
    ablation slot). ``check`` runs the numeric check and the equivalence checker. Checks compare
    the output with the input, or, when a pass made ``measured`` changes (an ablation), with
    that pass's output: a measured change is evidence from training, not a claim to check.
    ``time_limit`` (seconds, None: none) bounds the whole call: passes that would start after
    it are skipped, SymPy work stops at it, and so does the equivalence checker, each with a
    note.

    >>> from simplifier.parse import parse
    >>> r = simplify(parse("def f(w, g, lr):\\n  u = g * 1\\n  return u * lr * 0.5 * 2\\n"))
    >>> print(to_text(r.program), end="")
    def f(w, g, lr):
      update = g * lr
      return update
    """
    if allow not in ("exact", "almost-everywhere", "approximate"):
        raise ValueError(f"allow must be exact, almost-everywhere or approximate, not {allow!r}")
    program = as_program(program)
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds, not {time_limit!r}")
    deadline = Deadline.after(time_limit)
    if pipeline is None:
        pipeline = default_pipeline(program, semantics, allow, ablation=ablation, deadline=deadline)
    ran = pipeline.run(program)
    current = ran.program
    reference = program
    for done in ran.steps:  # the checks start after the last measured pass
        if any(c.level == "measured" for c in done.result.changes):
            reference = done.result.program
    printer = NodePrinter(_FinalNames(current, semantics, deadline))
    rendered: dict[int, Change] = {}
    final_obligations = []
    for o in ran.obligations:
        condition = o.render(printer)
        detail = o.change.detail
        if "{x}" in detail and "x" in o.bindings:
            detail = detail.replace("{x}", printer.label(o.bindings["x"]))
        new_change = replace(o.change, condition=condition, detail=detail)
        rendered[id(o.change)] = new_change
        final_obligations.append(replace(o, change=new_change))
    final_changes = tuple(rendered.get(id(c), c) for c in ran.changes)
    notes = list(ran.notes)
    numeric: NumericCheck | None = None
    equivalence: Verdict | str | None = None
    parts: list[str] = []
    if check:
        from simplifier.equiv.api import Undecided, equivalent  # loads SymPy and z3

        numeric = compare_numerically(reference, current, final_obligations, semantics, steps)
        if deadline.expired:
            equivalence = f"not checked: {deadline.text()}"
        else:
            try:
                equivalence = equivalent(reference, current, semantics, deadline=deadline)
            except Undecided as e:
                equivalence = f"not checked: stopped {e}"
            except Exception as e:  # the checker is another component: report, do not crash
                equivalence = f"equivalence check failed: {type(e).__name__}: {e}"
        parts.append(f"equivalence: {equivalence_text(equivalence)}")
        parts.append(numeric.text())
    verdict = "; ".join(parts) if parts else "not checked"
    measured = sum(1 for c in final_changes if c.level == "measured")
    if measured:
        verdict = (
            f"{measured} removal(s) measured by training, not proved (level 'measured'); "
            f"the other steps checked against the ablated program: {verdict}"
        )
    return SimplifyResult(
        current,
        final_changes,
        verdict,
        tuple(notes),
        tuple(final_obligations),
        numeric,
        equivalence,
        (len(program.body), len(current.body)),
        ran.steps,
    )
