"""The simplifier: dead code -> rewrite rules -> SymPy folding and reconstruction -> dead code.

:func:`simplify` runs a list of stages (:func:`default_stages`; pass ``stages=`` to run another
list, e.g. with an ablation stage after the first dead-code pass), verifies the IR after each,
logs every change with its exactness level and condition, and checks the result against the
input: by the equivalence checker when the project has one, and always by a multi-step random
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
from typing import Any, Protocol

import numpy as np

from simplifier.analysis.types import infer_types
from simplifier.errors import ProgramError
from simplifier.ir import IRError, Node, Program, Ref, Role, dag
from simplifier.numeric import Semantics, step
from simplifier.passes.base import Change, PassResult
from simplifier.passes.dce import eliminate_dead_code
from simplifier.passes.rules import (
    FINITE,
    Allow,
    Obligation,
    RewriteLimit,
    label,
    program_from_dag,
    rewrite,
)
from simplifier.printer import to_text
from simplifier.source import ProgramSource, as_program

__all__ = [
    "NumericCheck",
    "SimplifyResult",
    "Stage",
    "StageResult",
    "compare_numerically",
    "default_stages",
    "simplify",
    "to_text",
]


# -- stages ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StageResult:
    """What a stage did: the new program, its changes, what they assume, and notes."""

    program: Program
    changes: tuple[Change, ...] = ()
    obligations: tuple[Obligation, ...] = ()
    notes: tuple[str, ...] = ()


class Stage(Protocol):
    """One step of the pipeline: a named Program -> StageResult (or PassResult) function."""

    @property
    def name(self) -> str: ...

    def __call__(self, program: Program) -> StageResult | PassResult: ...


@dataclass(frozen=True)
class DeadCode:
    """Dead statements and dead states, within one step and across steps."""

    name: str = "dead-code"

    def __call__(self, program: Program) -> StageResult:
        r = eliminate_dead_code(program, across_steps=True)
        return StageResult(r.program, r.changes)


@dataclass(frozen=True)
class Rules:
    """The named rewrite rules of :mod:`simplifier.passes.rules`, to a fixed point."""

    semantics: Semantics = "math"
    allow: Allow = "almost-everywhere"
    name: str = "rules"

    def __call__(self, program: Program) -> StageResult:
        try:
            r = rewrite(program, self.semantics, self.allow)
        except RewriteLimit as e:  # the loop guard: keep the input, say so
            return StageResult(program, notes=(f"rewrite rules skipped: {e}",))
        return StageResult(r.program, r.changes, r.obligations, r.notes)


@dataclass(frozen=True)
class SymbolicFold:
    """SymPy folding of the outputs and reconstruction of a short, readable program.

    ``lost_states`` are states of the original program that earlier stages removed (their
    names are not reused). The stage keeps its input when SymPy runs past ``budget`` seconds,
    when the result has no program form, or when it would have more operations.
    """

    semantics: Semantics = "math"
    lost_states: frozenset[str] = frozenset()
    budget: float = 5.0
    name: str = "symbolic-fold"

    def __call__(self, program: Program) -> StageResult:
        from simplifier.symbolic.rebuild import Unsupported
        from simplifier.symbolic.translate import SymbolicTimeout, time_budget

        try:
            with time_budget(self.budget):
                return self.fold(program)
        except SymbolicTimeout as e:
            return StageResult(program, notes=(f"symbolic folding skipped: {e}",))
        except Unsupported as e:
            return StageResult(program, notes=(f"symbolic folding skipped: {e}",))
        except (ValueError, TypeError, RecursionError) as e:
            # SymPy's automatic evaluation can refuse an input (e.g. Min of values it cannot
            # compare): folding is an optimisation, so the stage keeps its input.
            note = f"symbolic folding skipped: SymPy could not evaluate it ({e})"
            return StageResult(program, notes=(note,))

    def fold(self, program: Program) -> StageResult:
        from simplifier.symbolic.fold import (
            Folder,
            cone_sizes,
            lost_conditions,
            source_hints,
            to_sympy,
        )
        from simplifier.symbolic.rebuild import Converter, rebuild

        before = to_sympy(program, self.semantics)
        folder = Folder(before.tensors, before.states)
        outputs = [folder(e) for e in before.outputs]
        collapsed = before.collapsed(folder)
        if collapsed is not None:
            note = f"symbolic folding skipped: it turns the tensor {collapsed} into a scalar"
            return StageResult(program, notes=(note,))
        hints = source_hints(before, folder, program)
        rebuilt = rebuild(program, outputs, self.semantics, hints, self.lost_states)
        new = rebuilt.program
        try:
            new.verify()
            infer_types(new)
        except (IRError, ProgramError) as e:
            return StageResult(program, notes=(f"symbolic folding skipped: {e}",))
        if len(new.body) > len(program.body):
            note = (
                f"symbolic folding skipped: its program has {len(new.body)} operations, "
                f"the input {len(program.body)}"
            )
            return StageResult(program, notes=(note,))
        after = to_sympy(new, self.semantics)
        changes: list[Change] = []
        obligations: list[Obligation] = []
        lines = {before.values[s.target]: s.loc.line for s in program.body if s.loc}
        # (for the log texts only: the order of terms there does not matter)
        conv = Converter(self.semantics, before.tensors, before.tensors, before.states, hints)

        def text(e: Any) -> str:
            from simplifier.passes.rules import render

            return render(conv(e), lambda n: conv.hint_of.get(id(n)))

        for event in folder.events:
            detail = f"{event.kind}: {text(event.before)} -> {text(event.after)}"
            changes.append(Change("fold", detail, lines.get(event.before)))
        names = ["update", *program.states]
        for name, a, b in zip(names, cone_sizes(program), cone_sizes(new), strict=True):
            if b < a:
                detail = f"{name}: {a} -> {b} operations (terms combined, constants folded)"
                changes.append(Change("fold", detail))
        obligations += _lost_domains(lost_conditions(before.partials, after.partials, folder))
        obligations += _cancelled_inputs(program, new)
        first_line: dict[str, int] = {}
        for s in program.body:
            if s.var is not None and s.loc is not None:
                first_line.setdefault(s.var, s.loc.line)
        for old, new_name, why in rebuilt.renames:
            changes.append(Change("rename", f"{old} -> {new_name}: {why}", first_line.get(old)))
        # Their conditions (and the `{x}` in their details) are rendered at the end of the
        # pipeline, with the final program's names.
        changes += [o.change for o in obligations]
        return StageResult(new, tuple(changes), tuple(obligations))


def _lost_domains(partials: Sequence[Any]) -> list[Obligation]:
    """A change per domain condition that folding removed (``division by g folded away``)."""
    out = []
    for p in partials:
        what = "division by {x}" if p.op == "div" else f"{p.op}({{x}})"
        change = Change("fold", f"{what} folded away", p.line, "almost-everywhere")
        template = p.relation.template.replace("{}", "{x}")
        out.append(Obligation(change, template, {"x": p.node}, p.relation, "x"))
    return out


def _cancelled_inputs(before: Program, after: Program) -> list[Obligation]:
    """A change per input that an output no longer reads: it was cancelled (``g - g -> 0``,
    ``0 * g -> 0``), which holds where it is finite, as the rule ``sub-self`` says."""
    from simplifier.symbolic.fold import cone_inputs

    out = []
    hypers = {p.name for p in before.params if p.role is Role.HYPER}
    names = ["update", *before.states]
    for name, was, now in zip(names, cone_inputs(before), cone_inputs(after), strict=True):
        for gone in sorted(was - now - hypers):
            change = Change("fold", f"{name} no longer reads {gone}", None, "almost-everywhere")
            template = FINITE.template.replace("{}", "{x}")
            out.append(
                Obligation(change, template, {"x": Node.make("input", (), gone)}, FINITE, "x")
            )
    return out


def default_stages(
    program: Program, semantics: Semantics = "math", allow: Allow = "almost-everywhere"
) -> list[Stage]:
    """DCE (both kinds) -> rules -> SymPy folding and reconstruction -> DCE.

    The list is the seam for other stages (an ablation stage goes after the first DCE).
    """
    after_dce = eliminate_dead_code(program).program
    lost = frozenset(program.states) - frozenset(after_dce.states)
    return [
        DeadCode(),
        Rules(semantics, allow),
        SymbolicFold(semantics, lost),
        DeadCode("dead-code (after folding)"),
    ]


# -- the numeric check -----------------------------------------------------------------------------
@dataclass(frozen=True)
class NumericCheck:
    """A multi-step random comparison of two programs' updates (float64).

    ``compared`` steps agreed within ``rtol`` (relative to the largest magnitude of the step:
    its inputs and the update) unless ``differs_at`` names the first step that did not.
    Comparison stops at ``conditions_fail_at``, the first step where a logged condition does
    not hold. Entries where the input's update is not finite (overflow) are not compared:
    ``skipped`` counts them.
    """

    steps: int
    compared: int
    max_error: float
    rtol: float
    differs_at: int | None = None
    conditions_fail_at: int | None = None
    skipped: int = 0

    @property
    def agree(self) -> bool:
        return self.differs_at is None

    def text(self) -> str:
        if self.differs_at is not None:
            return (
                f"numeric check: the updates DIFFER at step {self.differs_at + 1} "
                f"(relative difference {self.max_error:.2g} > {self.rtol:g})"
            )
        held = ""
        if self.conditions_fail_at is not None:
            held = f"; a logged condition fails at step {self.conditions_fail_at + 1}: stopped"
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
    states_b = {s: [np.zeros(x) for x in SHAPES] for s in before.states}
    states_a = {s: [np.zeros(x) for x in SHAPES] for s in after.states}
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
    worst, skipped = 0.0, 0
    for t in range(steps):
        grads = [rng.normal(size=s) for s in SHAPES]
        lr = float(rng.uniform(0.5, 1.5))

        inputs = (weights, grads, states_b, lr, t + 1)
        for probe, relation in probes:
            value = step(probe, *inputs, semantics=semantics)[0]
            with np.errstate(all="ignore"):
                ok = all(bool(np.all(relation.holds(np.asarray(v)))) for v in value)
            if not ok:
                return NumericCheck(steps, t, worst, rtol, None, t, skipped)
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
            if not finite.any():
                continue
            with np.errstate(all="ignore"):
                diff = float(np.max(np.abs(x - y)[finite]))
            size = max(scale, _magnitude([x]))
            error = diff / size if size > 0 else diff
            if not np.isfinite(error) or error > tolerance:
                return NumericCheck(steps, t, error, tolerance, t, None, skipped)
            worst = max(worst, error)
        with np.errstate(all="ignore"):
            weights = [w - u for w, u in zip(weights, ub, strict=True)]
    return NumericCheck(steps, steps, worst, rtol, None, None, skipped)


# -- the pipeline ----------------------------------------------------------------------------------
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
    equivalence: Any = None
    operations: tuple[int, int] = (0, 0)  # before, after
    stage_log: tuple[tuple[str, int], ...] = field(default=(), compare=False)

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
            },
            "equivalence": _equivalence_json(self.equivalence),
        }


class _FinalNames:
    """Names of the final program's values, for rendering conditions: by DAG node (interned,
    so a subject the pipeline did not reshape is found as is), else by folded SymPy value."""

    def __init__(self, program: Program, semantics: Semantics) -> None:
        self.program, self.semantics = program, semantics
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
            with time_budget(1.0):
                if self.by_value is None or self.fold is None:
                    t = to_sympy(self.program, self.semantics)
                    self.fold = Folder(t.tensors, t.states)
                    self.by_value = {}
                    for s in self.program.body:
                        if s.var is not None:
                            self.by_value.setdefault(self.fold(t.values[s.target]), s.var)
                probe = to_sympy(_probe(self.program, n), self.semantics)
                return self.by_value.get(self.fold(probe.outputs[0]))
        except (SymbolicTimeout, KeyError, ValueError, TypeError):  # reads a removed input, ...
            return None


def equivalence_text(verdict: Any) -> str:
    """The equivalence checker's verdict in one line: its name, conditions, counterexample."""
    name = getattr(verdict, "verdict", None)
    if name is None:
        return str(verdict)
    text = str(name)
    conditions = getattr(verdict, "conditions", None) or []
    if conditions:
        text += " where " + " and ".join(str(c) for c in conditions)
    example = getattr(verdict, "counterexample", None)
    if example is not None:
        at = getattr(example, "step", "?")
        rel = getattr(example, "relative_difference", None)
        diff = f", relative difference {rel:.2g}" if isinstance(rel, float) else ""
        text += f" (at step {at}{diff})"
    return text


def _equivalence_json(verdict: Any) -> Any:
    if verdict is None or isinstance(verdict, str):
        return verdict
    as_json = getattr(verdict, "as_json", None)
    return as_json() if callable(as_json) else str(verdict)


def _equivalence(before: Program, after: Program, semantics: Semantics) -> Any:
    """The equivalence checker's verdict, when the project has one (else None)."""
    import importlib

    try:
        module = importlib.import_module("simplifier")
        check = module.equivalent
    except (ImportError, AttributeError):
        return None
    return check(before, after, semantics=semantics)


def simplify(
    program: ProgramSource,
    semantics: Semantics = "math",
    allow: Allow = "almost-everywhere",
    *,
    stages: Sequence[Stage] | None = None,
    check: bool = True,
    steps: int = 8,
) -> SimplifyResult:
    """Simplify ``program`` (a Program, its text or its file); log every change; check the
    result against the input.

    ``allow`` is the least exact level of rewrite that may be applied (``exact``,
    ``almost-everywhere`` or ``approximate``). Under ``semantics="hero"`` no math-only rewrite
    is applied. ``check`` runs the equivalence checker (if present) and the numeric check.

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
    pipeline = list(stages) if stages is not None else default_stages(program, semantics, allow)
    current = program
    changes: list[Change] = []
    obligations: list[Obligation] = []
    notes: list[str] = []
    log: list[tuple[str, int]] = []
    for stage in pipeline:
        result = stage(current)
        if isinstance(result, PassResult):
            result = StageResult(result.program, result.changes)
        result.program.verify()
        infer_types(result.program)
        changes += result.changes
        obligations += result.obligations
        notes += result.notes
        log.append((stage.name, len(result.changes)))
        current = result.program
    name_of = _FinalNames(current, semantics)
    rendered: dict[int, Change] = {}
    final_obligations = []
    for o in obligations:
        condition = o.render(name_of)
        detail = o.change.detail
        if "{x}" in detail and "x" in o.bindings:
            detail = detail.replace("{x}", label(o.bindings["x"], name_of))
        new_change = replace(o.change, condition=condition, detail=detail)
        rendered[id(o.change)] = new_change
        final_obligations.append(replace(o, change=new_change))
    final_changes = tuple(rendered.get(id(c), c) for c in changes)
    numeric = equivalence = None
    parts: list[str] = []
    if check:
        try:
            equivalence = _equivalence(program, current, semantics)
        except Exception as e:  # the checker is another component: report, do not crash
            equivalence = f"equivalence check failed: {type(e).__name__}: {e}"
        if equivalence is not None:
            parts.append(f"equivalence: {equivalence_text(equivalence)}")
        numeric = compare_numerically(program, current, final_obligations, semantics, steps)
        parts.append(numeric.text())
    verdict = "; ".join(parts) if parts else "not checked"
    return SimplifyResult(
        current,
        final_changes,
        verdict,
        tuple(notes),
        tuple(final_obligations),
        numeric,
        equivalence,
        (len(program.body), len(current.body)),
        tuple(log),
    )
