"""The answer of the equivalence checker: a verdict, its conditions, and a counterexample.

>>> v = Verdict("proved", ["interp(g, v, 0.899) != 0"])
>>> v.equivalent, v.as_json()["verdict"]
(True, 'proved')
"""

from __future__ import annotations

import math
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
class Pair:
    """One value for each program (``A`` and ``B``)."""

    a: Any
    b: Any

    def as_json(self) -> dict[str, Any]:
        return {"A": self.a, "B": self.b}


@dataclass(frozen=True)
class BoundedCheck:
    """The bounded symbolic check: ``equal``, ``different`` or ``unknown`` over ``steps``."""

    status: str
    steps: int
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "steps": self.steps, "reason": self.reason}


@dataclass(frozen=True)
class Float64Check:
    """Whether the two programs' float64 trajectories agree (within ``rtol``) on random inputs.

    A proof is over the reals; float64 can still tell the programs apart (``(g + 1e20) - 1e20``
    is 0 in float64, ``log(exp(1000 * g))`` overflows). ``first_difference`` is the first step
    (1-based) where they do not agree; entries that are NaN in either update are not compared
    (a domain condition of the verdict fails there).
    """

    agrees: bool
    steps: int
    first_difference: int | None = None
    relative_difference: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "agrees": self.agrees,
            "steps": self.steps,
            "first_difference_step": self.first_difference,
            # null when infinite (one side overflows or is infinite where the other is not)
            "relative_difference": self.relative_difference
            if math.isfinite(self.relative_difference)
            else None,
        }


@dataclass
class Details:
    """How the checker reached its verdict (typed; ``as_json`` omits what it did not get to).

    ``dead_removed`` and ``hashes`` are per program; ``mapping`` the proof's state map (``B.m``
    -> ``2*A.m``), ``obligations`` how each proof obligation was settled, ``condition_sources``
    where each condition comes from; ``proof`` why no inductive proof was found; ``bounded`` the
    bounded symbolic check and ``bounded_steps`` the steps a ``proved-bounded`` covers;
    ``numeric`` the random search (its scenarios and steps); ``float64`` the float64 check.
    """

    semantics: str = "math"
    rtol: float = 0.0
    seconds: float = 0.0
    dead_removed: Pair | None = None
    hashes: Pair | None = None
    live_states: dict[str, list[str]] | None = None
    mapping: dict[str, str] | None = None
    obligations: list[str] | None = None
    condition_sources: list[str] = field(default_factory=list)
    proof: str | None = None
    bounded: BoundedCheck | None = None
    bounded_steps: int | None = None
    numeric: dict[str, Any] | None = None
    float64: Float64Check | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"semantics": self.semantics, "rtol": self.rtol}
        optional: dict[str, Any] = {
            "dead_removed": self.dead_removed.as_json() if self.dead_removed else None,
            "hash": self.hashes.as_json() if self.hashes else None,
            "live_states": self.live_states,
            "mapping": self.mapping,
            "obligations": self.obligations,
            "condition_sources": self.condition_sources or None,
            "proof": self.proof,
            "bounded": self.bounded.as_json() if self.bounded else None,
            "numeric": self.numeric,
            "steps": self.bounded_steps,
            "float64": self.float64.as_json() if self.float64 else None,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        out["seconds"] = self.seconds
        return out


@dataclass(frozen=True)
class Verdict:
    """The equivalence verdict of two programs.

    - ``identical``: same structural hash;
    - ``proved``: an inductive proof for every step, valid where ``conditions`` hold;
    - ``proved-bounded``: the first ``details.bounded_steps`` updates are symbolically equal
      (under ``conditions``) and no numeric trajectory disagrees, but no inductive proof was
      found;
    - ``not-refuted``: no proof; random trajectories agree within the relative tolerance;
    - ``refuted``: ``counterexample`` shows a step where the updates differ.

    ``float64_agrees`` is False when, whatever the verdict over the reals, the float64
    trajectories disagree (``details.float64`` says where).
    """

    verdict: VerdictName
    conditions: list[str] = field(default_factory=list)
    counterexample: Counterexample | None = None
    details: Details = field(default_factory=Details)

    @property
    def equivalent(self) -> bool:
        """True unless refuted (``not-refuted`` included: the caller reads ``verdict`` for how)."""
        return self.verdict != "refuted"

    @property
    def float64_agrees(self) -> bool | None:
        """Whether float64 trajectories agree (None: not checked, e.g. ``identical``)."""
        return None if self.details.float64 is None else self.details.float64.agrees

    def exit_code_for(self, reals: bool = False) -> int:
        """1 when refuted, or when float64 trajectories disagree unless ``reals`` (equivalence
        over the real numbers only is asked for); else 0."""
        if self.verdict == "refuted":
            return 1
        return 1 if self.float64_agrees is False and not reals else 0

    @property
    def exit_code(self) -> int:
        return self.exit_code_for(reals=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "conditions": list(self.conditions),
            "float64_agrees": self.float64_agrees,
            "counterexample": self.counterexample.as_json() if self.counterexample else None,
            "details": self.details.as_json(),
        }
