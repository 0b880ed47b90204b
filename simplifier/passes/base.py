"""The pass framework: a pass is a frozen value with its options as fields and a ``run`` method;
a :class:`Pipeline` runs passes in order and verifies the IR (invariants and types) after each.

A pass's ``run`` returns either the new :class:`Program` (a plain transformation, such as an IR
lowering) or a :class:`PassResult` (the program with its change log, what the changes assume,
and notes). Its name is its ``name`` attribute, else its class name in kebab case. A pipeline is
itself a pass, so pipelines nest.

>>> from dataclasses import dataclass, replace
>>> from simplifier.parse import parse
>>> @dataclass(frozen=True)
... class Rename:
...     to: str
...     def run(self, program: Program) -> Program:
...         return replace(program, name=self.to)
>>> p = parse("def f(w, g):\\n  return g\\n")
>>> result = Pipeline((Rename("g2"), Identity())).run(p)
>>> result.program.name, [(s.name, len(s.result.changes)) for s in result.steps]
('g2', [('rename', 0), ('identity', 0)])
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from simplifier.errors import ProgramError
from simplifier.ir import IRError, Program

if TYPE_CHECKING:
    from simplifier.passes.conditions import Obligation


Level = Literal["exact", "almost-everywhere", "approximate", "measured"]
LEVELS: tuple[Level, ...] = ("exact", "almost-everywhere", "approximate", "measured")


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a change log: what a pass removed or rewrote, and how exact that is.

    ``level`` is ``exact`` (holds for every input, NaN and inf included), ``almost-everywhere``
    (holds where ``condition`` holds), ``approximate`` (``condition`` states the bound) or
    ``measured`` (decided by training, see ablation).
    """

    kind: str  # e.g. "dead-statement", "dead-state", "rewrite", "fold", "ablation"
    detail: str
    line: int | None = None
    level: Level = "exact"
    condition: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "line": self.line,
            "detail": self.detail,
            "level": self.level,
            "condition": self.condition,
        }


@dataclass(frozen=True, slots=True)
class PassResult:
    """What a pass did: the new program, its changes, what they assume, and notes (for
    instance on rewrites that matched but were not allowed, or on work a budget cut short)."""

    program: Program
    changes: tuple[Change, ...] = ()
    obligations: tuple[Obligation, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class Pass(Protocol):
    """A Program -> Program transformation: a frozen value, options as fields (xDSL's
    ``ModulePass``). ``run`` may return the bare program or a :class:`PassResult`."""

    def run(self, program: Program) -> Program | PassResult: ...


def pass_name(p: Pass) -> str:
    """A pass's ``name`` attribute, else its class name in kebab case (``LowerCompound`` ->
    ``lower-compound``)."""
    name = getattr(p, "name", None)
    if isinstance(name, str):
        return name
    return re.sub(r"(?<!^)(?=[A-Z])", "-", type(p).__name__).lower()


def as_result(out: Program | PassResult) -> PassResult:
    return out if isinstance(out, PassResult) else PassResult(out)


@dataclass(frozen=True, slots=True)
class Identity:
    name: str = "identity"

    def run(self, program: Program) -> PassResult:
        return PassResult(program)


class PassError(Exception):
    """A pass produced an invalid program (a bug in that pass, not a user error)."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """A wall-clock deadline shared by every pass and check of one command.

    >>> Deadline.after(None).remaining() is None, Deadline.after(60).expired
    (True, False)
    """

    at: float | None  # time.monotonic() value; None: no deadline
    seconds: float | None = None  # the budget it was made from (for messages)

    @classmethod
    def after(cls, seconds: float | None) -> Deadline:
        if seconds is None:
            return cls(None)
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float | None:
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    @property
    def expired(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at

    def cap(self, seconds: float) -> float:
        """``seconds``, or less when the deadline is nearer (at least a millisecond)."""
        left = self.remaining()
        return seconds if left is None else max(0.001, min(seconds, left))

    def text(self) -> str:
        return f"the time budget of {self.seconds:g} s ran out"


NO_DEADLINE = Deadline(None)
DEFAULT_TIME_LIMIT = 60.0  # seconds, for a whole simplify (its passes and checks)


@dataclass(frozen=True, slots=True)
class Step:
    """One pass of a pipeline run: its name, its input, and what it returned."""

    name: str
    before: Program
    result: PassResult


@dataclass(frozen=True, slots=True)
class PipelineResult(PassResult):
    """A pipeline's result: the final program, every pass's changes, obligations and notes in
    order, and each pass's own result (``steps``)."""

    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """Run passes in order, verifying the IR (invariants and types) after each one.

    When ``deadline`` has passed, the remaining passes are skipped, each with a note: every
    pass's output is a whole program, so the pipeline's output still is one.
    """

    passes: Sequence[Pass]
    verify: bool = True
    deadline: Deadline = NO_DEADLINE
    name: str = "pipeline"

    def run(self, program: Program) -> PipelineResult:
        steps: list[Step] = []
        notes: list[str] = []
        current = program
        for p in self.passes:
            name = pass_name(p)
            if self.deadline.expired:
                notes.append(f"{name} skipped: {self.deadline.text()}")
                continue
            result = as_result(p.run(current))
            if self.verify:
                verify(result.program, name)
            steps.append(Step(name, current, result))
            current = result.program
        return PipelineResult(
            current,
            tuple(c for s in steps for c in s.result.changes),
            tuple(o for s in steps for o in s.result.obligations),
            (*(n for s in steps for n in s.result.notes), *notes),
            tuple(steps),
        )


def verify(program: Program, by: str) -> None:
    """Check the IR invariants and types of ``program``; a failure names the pass ``by``."""
    from simplifier.analysis.types import infer_types

    try:
        program.verify()
        infer_types(program)
    except (IRError, ProgramError) as e:
        raise PassError(f"pass {by!r} produced an invalid program: {e}") from e


__all__ = [
    "DEFAULT_TIME_LIMIT",
    "LEVELS",
    "NO_DEADLINE",
    "Change",
    "Deadline",
    "Identity",
    "Level",
    "Pass",
    "PassError",
    "PassResult",
    "Pipeline",
    "PipelineResult",
    "Step",
    "as_result",
    "pass_name",
    "verify",
]
