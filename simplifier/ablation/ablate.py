"""Ablation by training: remove the live statements that training shows do not matter.

**Candidates.** For a live statement ``s: t = op(args)`` (live: its value reaches the update,
directly or through a state read in a later step), the candidate program *without* ``s`` deletes
``s`` and replaces every read of its SSA value ``t`` by a replacement value, the first of these that
gives a valid (well-typed) program:

1. *previous value*: if ``s`` assigns a source variable ``x`` that had a value before ``s`` (an
   earlier assignment of ``x``, or the parameter ``x``), ``x`` keeps that value; this is exactly
   deleting the line from the source (``g = arcsin(g)`` -> ``g`` stays the clipped gradient;
   ``update = update + wd`` -> the weight decay is not added);
2. *operand*: otherwise (a first assignment, or a temporary of a nested expression) the operation
   is replaced by one of its operands: the first argument that is a variable of the same type
   (scalar or tensor) as ``t``, else the first argument of that type (a unary function by its
   argument; ``m / abs_m`` by ``m``; ``interp(g, v, 0.9)`` by ``g``; ``clip(x, c)`` by ``x``).

Then dead-code elimination (exact; :mod:`simplifier.passes.dce`) removes what no longer
matters; it also runs once on the input, so only live statements are ever measured. A statement
is kept without measurement when both rules give an ill-typed program (a reduction whose value
must stay a scalar), when it is a constant (``get_pi()``: no operand), or when it only scales by
a constant (``wd = w * 0.4602``, ``lr = lr * 0.0002``, ``x / 2``): that sets a hyperparameter,
which is tuned (the lr grid tunes the overall scale), not ablated; the statement that *uses* the
scaled value (``update = update + wd``) is a candidate.

**Scores.** Every program is trained at the lr multipliers ``centre * budget.grid`` for every
seed; its score is the best multiplier's mean validation loss over the seeds, with its standard
error. A multiplier at which any seed diverged (NaN/inf) does not count. ``centre`` is calibrated
once on the original program over the budget's wide ``calibration`` grid (powers of 4), so that
the grid sits where the original trains best. A program whose best multiplier is at the edge of
the grid is trained one grid step further out (a program that diverged everywhere: one step
lower), up to ``budget.extend`` times, so that a removal that moves the best lr is still compared
at its own best lr.

**Decision.** All candidates of a round are trained in one batch (the grid extensions in smaller
follow-up batches). The one with the lowest score is accepted if it is worse by at most the
tolerance ``max(noise * stderr, rel * loss)`` (defaults ``noise = 1``, ``rel = 1%``) both than
the program it is removed from and than the *original* program (so that accepted increases
cannot add up over rounds). Rounds repeat on the new program until no candidate is accepted. A
candidate that diverged at every multiplier, or is worse by more than the tolerance, is never
accepted.

>>> from simplifier.parse import parse
>>> p = parse("def f(w, g, lr):\\n  g = abs(g)\\n  u = g * lr\\n  return u\\n")
>>> [c.rule for c in candidates(p)]
['previous value of g', "first operand 'g'"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from simplifier.analysis.liveness import live_values
from simplifier.analysis.types import Type, infer_types
from simplifier.errors import ProgramError
from simplifier.ir import Atom, Const, IRError, Program, Ref, Stmt, format_number
from simplifier.numeric import Semantics
from simplifier.ops import OPS, Kind
from simplifier.passes.base import Change, PassResult
from simplifier.passes.dce import eliminate_dead_code
from simplifier.printer import expression_text, to_text
from simplifier.progress import Progress
from simplifier.source import ProgramSource, as_program

from .engine import Replica, train
from .tasks import TASKS, Budget, Task, get_task

if TYPE_CHECKING:
    from simplifier.executor import Executor

Decision = Literal["removed", "kept"]
Curve = tuple[tuple[int, float], ...]  # (step, mean training loss): see learning_curve
CURVE_POINTS = 50  # the points a learning curve keeps (the JSON and the plot)


# -- candidates ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """The program without one statement, and how the statement was removed."""

    stmt: Stmt
    rule: str
    program: Program


def _previous_value(program: Program, index: int) -> Ref | None:
    var = program.body[index].var
    if var is None:
        return None
    for s in reversed(program.body[:index]):
        if s.var == var:
            return Ref(s.target)
    if var in {p.name for p in program.params}:
        return Ref(var)
    return None


def _operand(stmt: Stmt, types: dict[str, Type]) -> Atom | None:
    want = types[stmt.target]

    def type_of(a: Atom) -> Type:
        return Type.SCALAR if isinstance(a, Const) else types[a.name]

    for atoms in ([a for a in stmt.args if isinstance(a, Ref)], list(stmt.args)):
        for a in atoms:
            if type_of(a) is want:
                return a
    return None


def _substitute(program: Program, index: int, value: Atom) -> Program:
    target = program.body[index].target

    def sub(a: Atom) -> Atom:
        return value if isinstance(a, Ref) and a.name == target else a

    body = tuple(
        replace(s, args=tuple(sub(a) for a in s.args))
        for i, s in enumerate(program.body)
        if i != index
    )
    return eliminate_dead_code(
        program.with_body(body, tuple(sub(a) for a in program.outputs))
    ).program


def _valid(program: Program) -> bool:
    try:
        program.verify()
        infer_types(program)
    except (IRError, ProgramError):
        return False
    return True


def is_scaling(stmt: Stmt) -> bool:
    """``x * c``, ``c * x`` or ``x / c`` with a constant ``c``: a hyperparameter, not a structure.

    >>> is_scaling(Stmt("wd.1", "mul", (Ref("w"), Const.of("0.4602")), "wd"))
    True
    """
    if stmt.op == "mul":
        return sum(isinstance(a, Const) for a in stmt.args) == 1
    return stmt.op == "div" and isinstance(stmt.args[1], Const) and isinstance(stmt.args[0], Ref)


def skip_reason(stmt: Stmt) -> str | None:
    """Why a live statement is not a candidate at all (None if it is one)."""
    if OPS[stmt.op].kind is Kind.CONSTANT:
        return "a constant: no operand to fall back to"
    if is_scaling(stmt):
        return (
            "scales by a constant, a hyperparameter: tuned (the lr grid), not ablated; "
            "the statement that uses the scaled value is ablated instead"
        )
    return None


def candidates(program: Program) -> list[Candidate]:
    """One candidate per live statement that can be removed (see the module docstring)."""
    types = infer_types(program)
    live = live_values(program)[0]
    out: list[Candidate] = []
    for i, s in enumerate(program.body):
        if s.target not in live or skip_reason(s) is not None:
            continue
        options: list[tuple[str, Atom]] = []
        prev = _previous_value(program, i)
        if prev is not None:
            options.append((f"previous value of {s.var}", prev))
        operand = _operand(s, types)
        if operand is not None:
            options.append((f"first operand {_atom_text(program, operand)!r}", operand))
        for rule, value in options:
            new = _substitute(program, i, value)
            if _valid(new):
                out.append(Candidate(s, rule, new))
                break
    return out


# -- rendering statements ------------------------------------------------------------------------
def _atom_text(program: Program, a: Atom) -> str:
    return format_number(a.value) if isinstance(a, Const) else program.var_of(a.name)


def statement_text(program: Program, stmt: Stmt) -> str:
    """``var = expression`` with nested temporaries inlined (for tables and logs).

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, m):\\n  u = sign(interp(g, m, 0.9)) * 2\\n  return u, m\\n")
    >>> statement_text(p, p.body[-1])
    'u = sign(interp(g, m, 0.9)) * 2'
    """
    return expression_text(program, stmt)


# -- scores --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    """A program's measurement: the best multiplier's mean validation loss over the seeds.

    ``per_seed`` are the losses at that multiplier, in seed order; ``by_multiplier`` holds
    ``(multiplier, mean loss, failed seeds)`` for every multiplier of the grid; ``curve`` is the
    learning curve at that multiplier (:func:`learning_curve`; empty when not recorded).
    """

    loss: float
    stderr: float
    multiplier: float
    per_seed: tuple[float, ...]
    by_multiplier: tuple[tuple[float, float, int], ...]
    curve: Curve = ()

    @property
    def finite(self) -> bool:
        return math.isfinite(self.loss)

    @property
    def at_edge(self) -> bool:
        """The best multiplier is the grid's smallest or largest (the grid may be too narrow)."""
        mults = [m for m, _, _ in self.by_multiplier]
        return self.finite and len(mults) > 1 and self.multiplier in (mults[0], mults[-1])

    def as_json(self) -> dict[str, Any]:
        return {
            "loss": _num(self.loss),
            "stderr": _num(self.stderr),
            "multiplier": self.multiplier,
            "per_seed": [_num(x) for x in self.per_seed],
            "by_multiplier": [
                {"multiplier": m, "loss": _num(v), "failed": f} for m, v, f in self.by_multiplier
            ],
            "learning_curve": {
                "step": [t for t, _ in self.curve],
                "train_loss": [_num(v) for _, v in self.curve],
            },
        }


def learning_curve(train_loss: np.ndarray, points: int = CURVE_POINTS) -> Curve:
    """``(step, training loss)`` pairs from a ``(seeds, steps)`` table of per-step training
    losses: the mean over the seeds, averaged over consecutive windows of steps so that at most
    ``points`` remain, each at its window's last step (1-based); ``inf`` where a seed diverged
    (as in the loss tables).

    >>> learning_curve(np.array([[4.0, 3.0, 2.0, 1.0], [2.0, 1.0, 0.0, 1.0]]), points=2)
    ((2, 2.5), (4, 1.0))
    """
    per_step = np.mean(train_loss, axis=0)
    per_step = np.where(np.isfinite(per_step), per_step, math.inf)
    width = max(1, math.ceil(len(per_step) / points))
    return tuple(
        (min(lo + width, len(per_step)), float(np.mean(per_step[lo : lo + width])))
        for lo in range(0, len(per_step), width)
    )


def score(losses: np.ndarray, multipliers: Sequence[float], curves: Sequence[Curve] = ()) -> Score:
    """The score of a ``(multipliers, seeds)`` loss table (``inf`` marks a failed replica);
    ``curves`` are the multipliers' learning curves, if recorded.

    >>> s = score(np.array([[1.0, 1.2], [0.9, 0.7], [np.inf, 0.1]]), [0.5, 1.0, 2.0])
    >>> s.loss, s.multiplier, round(s.stderr, 3)
    (0.8, 1.0, 0.1)
    """
    means = [float(np.mean(row)) if np.all(np.isfinite(row)) else math.inf for row in losses]
    table = tuple(
        (float(m), v, int(np.sum(~np.isfinite(row))))
        for m, v, row in zip(multipliers, means, losses, strict=True)
    )
    best = int(np.argmin(means))
    row = losses[best]
    n = len(row)
    finite = math.isfinite(means[best])
    stderr = (
        float(np.std(row, ddof=1) / math.sqrt(n))
        if n > 1 and finite
        else (0.0 if finite else math.inf)
    )
    return Score(
        means[best],
        stderr,
        float(multipliers[best]),
        tuple(float(x) for x in row),
        table,
        curves[best] if curves else (),
    )


def _num(x: float) -> float | None:
    """JSON has no inf/nan: a diverged measurement is ``null``."""
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the original a candidate may be: ``max(noise * se, rel * loss)``."""

    rel: float = 0.01
    noise: float = 1.0

    def limit(self, reference: Score) -> float:
        return max(self.noise * reference.stderr, self.rel * abs(reference.loss))


# -- the report ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One live statement of the original program and the decision about it.

    ``loss``/``stderr`` are the program's score without the statement (``inf`` when its removal
    diverged or could not be formed), ``loss_with`` the score of the program it was removed
    from, in the round it was last measured.
    """

    target: str
    line: int | None
    statement: str
    decision: Decision
    reason: str
    rule: str = ""
    loss: float = math.inf
    stderr: float = math.inf
    loss_with: float = math.inf
    stderr_with: float = math.inf
    multiplier: float | None = None
    round: int | None = None

    @property
    def delta(self) -> float:
        return self.loss - self.loss_with

    def as_json(self) -> dict[str, Any]:
        return {
            "statement": self.statement,
            "line": self.line,
            "ssa": self.target,
            "loss": _num(self.loss),
            "stderr": _num(self.stderr),
            "loss_with": _num(self.loss_with),
            "stderr_with": _num(self.stderr_with),
            "decision": self.decision,
            "reason": self.reason,
            "rule": self.rule,
            "multiplier": self.multiplier,
            "round": self.round,
        }


@dataclass(frozen=True)
class Round:
    """One round: the program's score, every candidate's score, and the accepted one."""

    index: int
    baseline: Score
    scores: tuple[tuple[str, Score], ...]  # (removed SSA target, score)
    accepted: str | None


@dataclass(frozen=True)
class AblationReport:
    """What :func:`ablate` measured and decided; ``program`` is the final program."""

    original: Program
    program: Program
    baseline: Score
    rows: tuple[Row, ...]
    rounds: tuple[Round, ...]
    task: str
    budget: Budget
    device: str
    seeds: tuple[int, ...]
    semantics: Semantics
    tolerance: Tolerance
    centre: float
    calibration: Score
    seconds: float
    replica_steps: int

    @property
    def removed(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.decision == "removed")

    @property
    def final(self) -> Score:
        """The final program's score: the last round's accepted candidate's, else its baseline."""
        if not self.rounds:
            return self.baseline
        last = self.rounds[-1]
        return dict(last.scores)[last.accepted] if last.accepted is not None else last.baseline

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.original.path,
            "task": self.task,
            "budget": self.budget.name,
            "steps": self.budget.steps,
            "device": self.device,
            "semantics": self.semantics,
            "seeds": list(self.seeds),
            "multipliers": [self.centre * m for m in self.budget.grid],
            "tolerance": {
                "rel": self.tolerance.rel,
                "noise": self.tolerance.noise,
                "limit": self.tolerance.limit(self.baseline),
            },
            "baseline": {
                "loss": _num(self.baseline.loss),
                "stderr": _num(self.baseline.stderr),
                "multiplier": self.baseline.multiplier,
            },
            "calibration": self.calibration.as_json(),
            "rows": [r.as_json() for r in self.rows],
            "rounds": [
                {
                    "round": r.index,
                    "baseline": r.baseline.as_json(),
                    "accepted": r.accepted,
                    "candidates": [{"ssa": t, **s.as_json()} for t, s in r.scores],
                }
                for r in self.rounds
            ],
            "program": to_text(self.program),
            "seconds": round(self.seconds, 3),
            "replica_steps": self.replica_steps,
        }


# -- the ablation loop ---------------------------------------------------------------------------
def _seed_list(budget: Budget, seeds: int | Sequence[int] | None) -> tuple[int, ...]:
    if seeds is None:
        return tuple(range(budget.seeds))
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError("seeds must be at least 1 (or a non-empty list)")
        return tuple(range(seeds))
    if not seeds:
        raise ValueError("seeds must be at least 1 (or a non-empty list)")
    return tuple(seeds)


@dataclass
class _Measurer:
    """Trains batches of programs and caches their scores by program text."""

    task: Task
    budget: Budget
    device: str
    semantics: Semantics
    seeds: tuple[int, ...]
    progress: Progress
    dtype: torch.dtype = torch.float32
    executor: Executor | None = None
    cache: dict[tuple[str, tuple[tuple[float, ...], tuple[int, ...]]], Score] = field(
        default_factory=dict
    )
    seconds: float = 0.0
    replica_steps: int = 0

    def measure(
        self,
        programs: Sequence[Program],
        multipliers: Sequence[float],
        seeds: Sequence[int],
        label: str,
        extend: int = 0,
    ) -> list[Score]:
        """Score each program on the grid, in one batch; then, up to ``extend`` times, train the
        programs whose best multiplier is at the edge of what they were tried at one grid step
        further out (one more, smaller batch), so that every score is a bracketed optimum.
        """
        keys = [to_text(p) for p in programs]
        setting = (tuple(multipliers), tuple(seeds))  # a score is only reused for the same grid
        todo = {
            k: programs[keys.index(k)]
            for k in dict.fromkeys(keys)
            if (k, setting) not in self.cache
        }
        tables: dict[str, dict[float, tuple[np.ndarray, Curve]]] = {k: {} for k in todo}
        pending = [(k, float(m)) for k in todo for m in multipliers]
        ratio = multipliers[1] / multipliers[0] if len(multipliers) > 1 else None
        for attempt in range(extend + 1):
            if not pending:
                break
            self._run(todo, pending, seeds, tables, label if attempt == 0 else f"{label}, lr+")
            if ratio is None:
                break
            pending = []
            for k, table in tables.items():
                sc = _score_table(table)
                tried = sorted(table)
                # Diverging everywhere usually means every lr tried was too large: go down.
                if (sc.finite and sc.multiplier == tried[0]) or not sc.finite:
                    pending.append((k, tried[0] / ratio))
                elif sc.finite and sc.multiplier == tried[-1]:
                    pending.append((k, tried[-1] * ratio))
        for k, table in tables.items():
            self.cache[(k, setting)] = _score_table(table)
        return [self.cache[(k, setting)] for k in keys]

    def _run(
        self,
        programs: dict[str, Program],
        pending: list[tuple[str, float]],
        seeds: Sequence[int],
        tables: dict[str, dict[float, tuple[np.ndarray, Curve]]],
        label: str,
    ) -> None:
        order = list(dict.fromkeys(k for k, _ in pending))
        index = {k: i for i, k in enumerate(order)}
        reps = [Replica(index[k], m, s) for k, m in pending for s in seeds]
        lrs = len({m for _, m in pending})
        what = f"{label}: {len(order)} program(s) x {lrs} lr x {len(seeds)} seeds"
        if self.executor is not None:  # no per-step progress from an executor: a stage at a time
            stage = self.progress.stage(what, len(reps))
            self._evaluate(self.executor, programs, pending, seeds, tables)
            stage(self.budget.steps, self.budget.steps)
            return
        result = train(
            [programs[k] for k in order],
            reps,
            self.task,
            self.budget,
            device=self.device,
            dtype=self.dtype,
            semantics=self.semantics,
            progress=self.progress.stage(what, len(reps)),
        )
        self.seconds += result.seconds
        self.replica_steps += result.replica_steps
        losses = result.loss.reshape(len(pending), len(seeds))
        curves = result.train_loss.reshape(len(pending), len(seeds), -1)
        for (k, m), row, curve in zip(pending, losses, curves, strict=True):
            tables[k][m] = (row, learning_curve(curve))

    def _evaluate(
        self,
        executor: Executor,
        programs: dict[str, Program],
        pending: list[tuple[str, float]],
        seeds: Sequence[int],
        tables: dict[str, dict[float, tuple[np.ndarray, Curve]]],
    ) -> None:
        """``_run`` on an executor: one request per program with its pending multipliers, so the
        replicas are the batch ``_run`` trains, in the same order."""
        from simplifier.executor import EvalRequest

        by_program: dict[str, list[float]] = {}
        for k, m in pending:
            by_program.setdefault(k, []).append(m)
        dtype = str(self.dtype).removeprefix("torch.")
        requests = [
            EvalRequest(
                programs[k],
                self.task.name,
                self.budget,
                tuple(seeds),
                tuple(ms),
                self.device,
                self.semantics,
                dtype,
                key=k,
            )
            for k, ms in by_program.items()
        ]
        for request, res in zip(requests, executor.evaluate(requests), strict=True):
            if not res.ok and res.replica_steps == 0:  # not trained: no measurement to compare
                raise RuntimeError(f"{programs[request.key].path}: {res.reason}")
            self.seconds += res.seconds
            self.replica_steps += res.replica_steps
            curves = res.curves or ((),) * len(request.multipliers)
            for m, row, curve in zip(request.multipliers, res.losses, curves, strict=True):
                tables[request.key][m] = (np.asarray(row, dtype=np.float64), curve)


def _score_table(table: dict[float, tuple[np.ndarray, Curve]]) -> Score:
    mults = sorted(table)
    rows, curves = zip(*(table[m] for m in mults), strict=True)
    return score(np.stack(rows), mults, curves if all(curves) else ())


def ablate(
    program: ProgramSource,
    task: str | Task = "mlp",
    budget: str | Budget = "small",
    *,
    device: str = "cpu",
    seeds: int | Sequence[int] | None = None,
    semantics: Semantics = "math",
    tolerance: Tolerance | None = None,
    steps: int | None = None,
    verbose: bool = False,
    dtype: torch.dtype = torch.float32,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    executor: Executor | None = None,
) -> AblationReport:
    """Remove, one per round, the live statement whose removal hurts training least (if it is
    within tolerance); return the measurements and the final program.

    ``task`` is ``"mlp"`` or ``"lm"`` (or a :class:`Task`), ``budget`` a budget name or a
    :class:`Budget`; ``seeds`` a count or a list (default: the budget's); ``steps`` overrides the
    budget's step count. ``progress`` draws a progress bar on stderr (for the whole ablation,
    its time left an upper bound); ``verbose`` draws it when stderr is a terminal (the command
    line without ``--quiet``); ``log`` gets a line a round.
    Raises ValueError when the program diverges at every multiplier (nothing to compare with).
    ``executor`` (:mod:`simplifier.executor`, e.g. a Ray one) trains the batches instead of the
    in-process engine (same batches, same numbers); a batch it could not train raises
    RuntimeError.

    >>> from simplifier.parse import parse
    >>> from simplifier.ablation.tasks import Budget
    >>> p = parse("def f(w, g, lr):\\n  g = g + 0\\n  u = -g\\n  return -u * lr\\n")
    >>> tiny = Budget("tiny", steps=20, seeds=2, grid=(0.5, 1, 2), calibration=(0.25, 1, 4))
    >>> report = ablate(p, budget=tiny)
    >>> [(r.statement, r.decision) for r in report.rows][:2]
    [('g = g + 0', 'removed'), ('u = -g', 'kept')]
    """
    program = as_program(program)
    program.verify()
    infer_types(program)
    source = program
    program = eliminate_dead_code(program).program  # exact; dead statements are not measured
    task_obj = get_task(task) if isinstance(task, str) else task
    budget_obj = task_obj.budget(budget) if isinstance(budget, str) else budget
    if steps is not None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        budget_obj = replace(budget_obj, steps=steps)
    if executor is None and device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine")
    tol = tolerance or Tolerance()
    seed_list = _seed_list(budget_obj, seeds)
    start = time.perf_counter()
    say = log or (lambda line: None)
    if executor is not None and type(task_obj) is not TASKS.get(task_obj.name):
        raise ValueError("an executor trains the built-in tasks only (it sends a task's name)")
    bar = Progress("ablation", enabled=True if progress else None if verbose else False)
    m = _Measurer(task_obj, budget_obj, device, semantics, seed_list, bar, dtype, executor)
    per_program = budget_obj.steps * len(seed_list) * len(budget_obj.grid)  # one grid, all seeds
    n = len(candidates(program))  # at most n + (n-1) + ... programs in the rounds, + the original
    calibration = budget_obj.steps * len(seed_list[:2]) * len(budget_obj.calibration)
    bar.expect(calibration + per_program * (n * (n + 1) // 2 + 1))

    # Calibrate the centre of the lr grid on the original program (two seeds suffice to rank).
    calib = m.measure([program], budget_obj.calibration, seed_list[:2], "calibration")[0]
    if not calib.finite:
        raise ValueError(
            f"{program.path}: the program diverges at every lr multiplier of the "
            f"calibration grid on task {task_obj.name!r}: nothing to compare against"
        )
    centre = calib.multiplier
    grid = [centre * g for g in budget_obj.grid]
    say(f"calibration: best lr multiplier {centre:g} (val loss {loss_text(calib.loss)})")

    original_rows = {s.target: s for s in program.body}
    rows: dict[str, Row] = {}
    rounds: list[Round] = []
    current = program
    reference: Score | None = None
    current_score: Score | None = None
    for index in range(len(original_rows) + 1):
        cands = candidates(current)
        progs = [current, *(c.program for c in cands)]
        bar.expect(per_program * (len(cands) * (len(cands) + 1) // 2 + (index == 0)))
        scores = m.measure(progs, grid, seed_list, f"round {index}", budget_obj.extend)
        current_score = scores[0]
        if reference is None:
            reference = current_score
            if not reference.finite:
                raise ValueError(
                    f"{program.path}: the program diverges at every multiplier of "
                    "the lr grid; nothing to compare against"
                )
        limit = tol.limit(reference)
        step_limit = tol.limit(current_score)
        cand_scores = list(zip(cands, scores[1:], strict=True))
        for c, sc in cand_scores:
            rows[c.stmt.target] = _row(
                program,
                c,
                sc,
                current_score,
                index,
                decision="kept",
                reason=_why_kept(sc, current_score, step_limit, reference, limit),
            )
        best = min(cand_scores, key=lambda cs: cs[1].loss, default=None)
        accepted = (
            best is not None
            and best[1].finite
            and best[1].loss - current_score.loss <= step_limit
            and best[1].loss - reference.loss <= limit
        )
        rounds.append(
            Round(
                index,
                current_score,
                tuple((c.stmt.target, s) for c, s in cand_scores),
                best[0].stmt.target if accepted and best else None,
            )
        )
        if not accepted or best is None:
            say(f"round {index}: no removal within tolerance; stop")
            break
        cand, sc = best
        rows[cand.stmt.target] = _row(
            program,
            cand,
            sc,
            current_score,
            index,
            "removed",
            f"within tolerance ({_pct(sc.loss, current_score.loss)} vs the program it was "
            f"removed from, {_pct(sc.loss, reference.loss)} vs the original)",
        )
        gone = {s.target for s in current.body} - {s.target for s in cand.program.body}
        for target in sorted(gone - {cand.stmt.target}):
            if target in original_rows:
                line = cand.stmt.loc.line if cand.stmt.loc else "?"
                rows[target] = _row(
                    program,
                    cand,
                    sc,
                    current_score,
                    index,
                    "removed",
                    f"unused after removing line {line}",
                    stmt=original_rows[target],
                )
        say(
            f"round {index}: removed {statement_text(current, cand.stmt)!r} "
            f"({cand.rule}): {loss_text(sc.loss)} ± {loss_text(sc.stderr)} "
            f"vs {loss_text(current_score.loss)}"
        )
        current = cand.program
    assert reference is not None
    bar.close()
    final_rows = []
    for target, stmt in original_rows.items():
        if target in rows:
            final_rows.append(rows[target])
        else:
            final_rows.append(
                Row(
                    target,
                    stmt.loc.line if stmt.loc else None,
                    statement_text(program, stmt),
                    "kept",
                    skip_reason(stmt) or "no well-typed program without it",
                )
            )
    return AblationReport(
        source,
        current,
        reference,
        tuple(final_rows),
        tuple(rounds),
        task_obj.name,
        budget_obj,
        device,
        seed_list,
        semantics,
        tol,
        centre,
        calib,
        time.perf_counter() - start,
        m.replica_steps,
    )


def _pct(loss: float, ref: float) -> str:
    """The relative change as the table shows it: ``+1.90%``, ``>+1e4%`` past 10000%.

    >>> _pct(1.019, 1.0), _pct(2133987.3767, 1.0), _pct(0.5, 1.0)
    ('+1.90%', '>+1e4%', '-50.00%')
    """
    pct = 100 * (loss - ref) / abs(ref)
    return f"{pct:+.2f}%" if abs(pct) < 1e4 else ">+1e4%"


def loss_text(x: float) -> str:
    """A loss as the table shows it: 4 decimals, ``1.56e+06`` from 10000, ``diverged`` if inf.

    >>> loss_text(0.86994), loss_text(1559920.4167), loss_text(math.inf)
    ('0.8699', '1.56e+06', 'diverged')
    """
    if not math.isfinite(x):
        return "diverged"
    return f"{x:.4f}" if abs(x) < 1e4 else f"{x:.2e}"


def _why_kept(sc: Score, current: Score, step_limit: float, reference: Score, limit: float) -> str:
    if not sc.finite:
        return "training diverged at every lr multiplier without it"
    if sc.loss - current.loss > step_limit:
        return f"worse by {_pct(sc.loss, current.loss)} (limit {step_limit:.4g})"
    if sc.loss - reference.loss > limit:
        return f"worse than the original by {_pct(sc.loss, reference.loss)} (limit {limit:.4g})"
    return "within tolerance, but another removal hurt less (measured again next round)"


def _row(
    program: Program,
    cand: Candidate,
    sc: Score,
    with_: Score,
    index: int,
    decision: Decision,
    reason: str,
    stmt: Stmt | None = None,
) -> Row:
    """A row about a statement of ``program`` (the original: earlier rounds may have changed
    the candidate's copy of the statement, e.g. ``m2 = m * m`` into ``m2 = g * g``)."""
    s = stmt or cand.stmt
    original = program.defining().get(s.target, s)
    return Row(
        s.target,
        s.loc.line if s.loc else None,
        statement_text(program, original),
        decision,
        reason,
        cand.rule if stmt is None else "",
        sc.loss,
        sc.stderr,
        with_.loss,
        with_.stderr,
        sc.multiplier if sc.finite else None,
        index,
    )


# -- as a pass -----------------------------------------------------------------------------------
def setting_text(report: AblationReport) -> str:
    """``task mlp, budget small, 3 seeds, 400 steps``: what the measurements were taken on."""
    return (
        f"task {report.task}, budget {report.budget.name}, {len(report.seeds)} seeds, "
        f"{report.budget.steps} steps"
    )


def ablation_changes(report: AblationReport) -> tuple[Change, ...]:
    """One ``Change`` (kind ``ablation``, level ``measured``) per removed statement."""
    setting = setting_text(report)
    changes = []
    for r in report.removed:
        effect = (
            f"val loss {loss_text(r.loss)} ± {loss_text(r.stderr)} without it vs "
            f"{loss_text(r.loss_with)} ± {loss_text(r.stderr_with)} with it"
        )
        detail = f"removed `{r.statement}`: {effect} ({r.reason})"
        changes.append(Change("ablation", detail, r.line, "measured", f"training, {setting}"))
    return tuple(changes)


def ablation_notes(report: AblationReport) -> tuple[str, ...]:
    """The evidence for the statements the ablation kept, one line each."""
    notes = []
    for r in report.rows:
        if r.decision != "kept":
            continue
        measured = (
            f"val loss {loss_text(r.loss)} ± {loss_text(r.stderr)} without it vs "
            f"{loss_text(r.loss_with)}: "
            if r.round is not None and math.isfinite(r.loss)
            else ""
        )
        notes.append(f"ablation kept line {r.line} `{r.statement}`: {measured}{r.reason}")
    base = report.baseline
    notes.append(
        f"ablation: original val loss {loss_text(base.loss)} ± {loss_text(base.stderr)} "
        f"({setting_text(report)}, device {report.device})"
    )
    return tuple(notes)


@dataclass(frozen=True, slots=True)
class AblationResult(PassResult):
    """The ablation pass's result, with the full report of its measurements."""

    report: AblationReport | None = None


@dataclass(frozen=True)
class Ablation:
    """The ablation as a pass: its changes have level ``measured``; the notes give the evidence
    for the statements it kept, and the result carries the full report.

    A ``ValueError`` from :func:`ablate` (e.g. no training step, CUDA unavailable) propagates.
    """

    task: str = "mlp"
    budget: str = "small"
    device: str = "cpu"
    seeds: int | None = None
    semantics: Semantics = "math"
    tolerance: Tolerance = field(default_factory=Tolerance)
    steps: int | None = None
    verbose: bool = False
    executor: Executor | None = None  # None: the in-process batched engine
    name: str = "ablation"

    def run(self, program: Program) -> AblationResult:
        report = ablate(
            program,
            self.task,
            self.budget,
            device=self.device,
            seeds=self.seeds,
            semantics=self.semantics,
            tolerance=self.tolerance,
            steps=self.steps,
            verbose=self.verbose,
            executor=self.executor,
        )
        return AblationResult(
            report.program, ablation_changes(report), notes=ablation_notes(report), report=report
        )
