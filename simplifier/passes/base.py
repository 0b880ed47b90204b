"""Pass infrastructure: a pass maps a Program to a PassResult; a pipeline verifies between passes.

>>> from simplifier.parse import parse
>>> p = parse("def f(w, g):\\n  return g\\n")
>>> Pipeline((Identity(),)).run(p).changed
False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from simplifier.ir import Program

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
    program: Program
    changes: tuple[Change, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.changes)


class Pass(Protocol):
    """A named Program -> Program transformation (a frozen dataclass with options as fields)."""

    @property
    def name(self) -> str: ...

    def __call__(self, program: Program) -> PassResult: ...


@dataclass(frozen=True, slots=True)
class Identity:
    name: str = "identity"

    def __call__(self, program: Program) -> PassResult:
        return PassResult(program)


@dataclass(frozen=True)
class Pipeline:
    """Run passes in order, verifying the IR (invariants and types) after each one."""

    passes: Sequence[Pass]
    verify: bool = True
    log: list[tuple[str, int]] = field(default_factory=list, compare=False)

    def run(self, program: Program) -> PassResult:
        from simplifier.analysis.types import infer_types

        changes: list[Change] = []
        for p in self.passes:
            result = p(program)
            if self.verify:
                result.program.verify()
                infer_types(result.program)
            self.log.append((p.name, len(result.changes)))
            changes += result.changes
            program = result.program
        return PassResult(program, tuple(changes))
