"""Domain conditions and exactness: what a rewrite assumes, as text and as a numeric test.

A :class:`Relation` is a condition on one value (``{} != 0``); an :class:`Exactness` says how
exact a rule is under one semantics (and, for an almost-everywhere or approximate rule, its
condition or bound over the rule's pattern variables); an :class:`Obligation` is what one
logged change assumes, bound to the DAG nodes it is about, so that it can be re-rendered with
the output program's names and tested on the numeric check's inputs.

>>> NONZERO.text("m"), holds_where(FINITE, "x").condition
('m != 0', '{x} is finite')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from simplifier.ir import Node
from simplifier.ops import EPS
from simplifier.passes.base import Change, Level
from simplifier.printer import NodePrinter


@dataclass(frozen=True, slots=True)
class Relation:
    """A domain condition on one value: its text (``{}`` is the value) and a numeric test."""

    name: str
    template: str
    holds: Callable[[np.ndarray], np.ndarray] = field(compare=False)

    def text(self, subject: str) -> str:
        return self.template.format(subject)


NONZERO = Relation("nonzero", "{} != 0", lambda v: v != 0)
FINITE = Relation("finite", "{} is finite", np.isfinite)
NONNEGATIVE = Relation("nonnegative", "{} >= 0", lambda v: v >= 0)
POSITIVE = Relation("positive", "{} > 0", lambda v: v > 0)
UNIT = Relation("unit", "|{}| <= 1", lambda v: np.abs(v) <= 1)
OPEN_UNIT = Relation("open-unit", "|{}| < 1", lambda v: np.abs(v) < 1)
AT_LEAST_ONE = Relation("at-least-one", "{} >= 1", lambda v: v >= 1)
ABOVE_MINUS_ONE = Relation("above-minus-one", "{} > -1", lambda v: v > -1)
NOT_MINUS_EPS = Relation("not-minus-eps", "{} != -1e-8", lambda v: v != -EPS)


@dataclass(frozen=True, slots=True)
class Exactness:
    """How exact a rule is under one semantics.

    ``condition`` is a text template over pattern variables (``"{x} != 0"``): the domain
    condition of an almost-everywhere rule (``relation`` on variable ``subject``, testable
    numerically) or the bound of an approximate one (``error`` gives the largest ``|lhs - rhs|``
    from the variables' values).
    """

    level: Level
    condition: str | None = None
    relation: Relation | None = None
    subject: str | None = None
    error: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = field(
        default=None, compare=False
    )


EXACT = Exactness("exact")


def holds_where(relation: Relation, var: str) -> Exactness:
    """Almost everywhere: equal where ``relation`` holds for pattern variable ``var``."""
    return Exactness("almost-everywhere", relation.text("{" + var + "}"), relation, var)


def within(bound: str, error: Callable[[Mapping[str, np.ndarray]], np.ndarray]) -> Exactness:
    """Approximate, within ``bound`` (a text over pattern variables); ``error`` computes it."""
    return Exactness("approximate", bound, error=error)


@dataclass(frozen=True, slots=True)
class Obligation:
    """What one logged change assumes, in a form that can be re-rendered and tested numerically.

    ``template`` (the change's condition, ``{var}`` placeholders) is rendered from ``bindings``;
    for an almost-everywhere change, ``relation`` must hold for ``bindings[subject]``; for an
    approximate one, ``error`` bounds the difference it makes at the rewritten value.
    """

    change: Change
    template: str | None = None
    bindings: Mapping[str, Node] = field(default_factory=dict)
    relation: Relation | None = None
    subject: str | None = None
    error: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = field(
        default=None, compare=False
    )  # approximate: the largest |lhs - rhs| from the bindings' values

    def render(self, printer: NodePrinter) -> str | None:
        """The condition, each binding printed by its name or as its expression."""
        if self.template is None:
            return None
        return self.template.format(**{k: printer.label(v) for k, v in self.bindings.items()})

    @property
    def subject_node(self) -> Node | None:
        return self.bindings.get(self.subject) if self.subject else None
