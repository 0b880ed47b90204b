"""The answer of the equivalence checker: a verdict, its conditions, and a counterexample.

>>> v = Verdict("proved", ["interp(g, v, 0.899) != 0"])
>>> v.equivalent, v.as_json()["verdict"]
(True, 'proved')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

VerdictName = Literal["identical", "proved", "proved-bounded", "not-refuted", "refuted"]
VERDICTS: tuple[VerdictName, ...] = (
    "identical",
    "proved",
    "proved-bounded",
    "not-refuted",
    "refuted",
)

Tensors = list[list[float]]  # one flat list of entries per parameter tensor


@dataclass(frozen=True)
class StepInputs:
    """The inputs of one training step: weights, gradients (per tensor), lr and step number."""

    step: int
    w: Tensors
    g: Tensors
    lr: float = 1.0

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "w": self.w, "g": self.g, "lr": self.lr}


@dataclass(frozen=True)
class Counterexample:
    """Inputs under which the two programs' updates differ first at ``step`` (1-based).

    ``inputs`` lists every step from 1 to ``step`` (both programs start from zero state);
    ``update_a``/``update_b`` are the updates at ``step`` computed in high precision, and
    ``difference`` is ``update_a - update_b`` (NaN where exactly one of them is NaN).
    """

    step: int
    inputs: list[StepInputs]
    update_a: Tensors
    update_b: Tensors
    difference: Tensors
    relative_difference: float

    def as_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "inputs": [s.as_json() for s in self.inputs],
            "update_a": self.update_a,
            "update_b": self.update_b,
            "difference": self.difference,
            "relative_difference": self.relative_difference,
        }


@dataclass(frozen=True)
class Verdict:
    """The equivalence verdict of two programs.

    - ``identical``: same structural hash;
    - ``proved``: an inductive proof for every step, valid where ``conditions`` hold;
    - ``proved-bounded``: the first ``details["steps"]`` updates are symbolically equal (under
      ``conditions``) and no numeric trajectory disagrees, but no inductive proof was found;
    - ``not-refuted``: no proof; random trajectories agree within the relative tolerance;
    - ``refuted``: ``counterexample`` shows a step where the updates differ.
    """

    verdict: VerdictName
    conditions: list[str] = field(default_factory=list)
    counterexample: Counterexample | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def equivalent(self) -> bool:
        """True unless refuted (``not-refuted`` included: the caller reads ``verdict`` for how)."""
        return self.verdict != "refuted"

    @property
    def exit_code(self) -> int:
        return 1 if self.verdict == "refuted" else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "conditions": list(self.conditions),
            "counterexample": self.counterexample.as_json() if self.counterexample else None,
            "details": self.details,
        }
