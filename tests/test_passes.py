"""The pass framework: passes as frozen values, a pipeline that verifies between passes and
honours a deadline, and one pipeline for ``simplify``, ``--ablate`` and the CLI."""

from __future__ import annotations

import time
from dataclasses import FrozenInstanceError, dataclass, replace

import pytest

from simplifier.ir import Const, Program, Ref, Stmt
from simplifier.parse import parse
from simplifier.passes.base import (
    Change,
    Deadline,
    Identity,
    Pass,
    PassError,
    PassResult,
    Pipeline,
    pass_name,
)
from simplifier.passes.dce import DeadCodeElimination
from simplifier.passes.fold import SymbolicFold
from simplifier.passes.rewrite import RewriteRules
from simplifier.printer import to_text
from simplifier.simplify import default_pipeline, simplify

PROGRAM = "def f(w, g, m, lr):\n  t = g * 1\n  m = interp(g, m, 0.9)\n  return t * lr, m\n"


@dataclass(frozen=True)
class LowerLike:
    """Shaped like an IR lowering pass: a frozen dataclass whose run returns a Program."""

    factor: int = 1

    def run(self, program: Program) -> Program:
        return replace(program, name=f"{program.name}_{self.factor}")


@dataclass(frozen=True)
class Breaks:
    """A buggy pass: its program reads a value that is never defined."""

    def run(self, program: Program) -> PassResult:
        bad = Stmt("x.1", "negative", (Ref("nowhere"),), "x")
        return PassResult(program.with_body((*program.body, bad)))


@dataclass(frozen=True)
class Measured:
    """Changes what the program computes (like an ablation) and says so: level measured."""

    name: str = "measured-test"

    def run(self, program: Program) -> PassResult:
        body = tuple(
            replace(s, args=(s.args[0], Const.of("2"))) if s.op == "mul" else s
            for s in program.body
        )
        change = Change("ablation", "t = g * 2 (measured)", None, "measured")
        return PassResult(program.with_body(body), (change,))


def test_a_pass_returning_a_bare_program_fits_the_protocol() -> None:
    lower: Pass = LowerLike(3)
    result = Pipeline((lower, Identity())).run(parse(PROGRAM))
    assert result.program.name == "f_3"
    assert [s.name for s in result.steps] == ["lower-like", "identity"]
    assert not result.changed


def test_passes_are_frozen_values_with_their_options_as_fields() -> None:
    rules = RewriteRules("hero", "exact")
    assert rules == RewriteRules("hero", "exact") and rules != RewriteRules()
    with pytest.raises(FrozenInstanceError):
        rules.allow = "approximate"  # type: ignore[misc]
    assert pass_name(DeadCodeElimination(name="dead-code (after folding)")).endswith("folding)")


def test_the_pipeline_verifies_the_ir_after_each_pass_and_names_the_culprit() -> None:
    with pytest.raises(PassError, match="'breaks'"):
        Pipeline((Identity(), Breaks())).run(parse(PROGRAM))
    unchecked = Pipeline((Breaks(),), verify=False).run(parse(PROGRAM))
    assert unchecked.program.body[-1].target == "x.1"


def test_steps_and_changes_are_recorded_in_pass_order() -> None:
    p = parse(PROGRAM)
    result = default_pipeline(p).run(p)
    assert [s.name for s in result.steps] == [
        "dead-code",
        "rules",
        "symbolic-fold",
        "dead-code (after folding)",
    ]
    assert result.changes == tuple(c for s in result.steps for c in s.result.changes)
    assert result.steps[1].before is result.steps[0].result.program


def test_a_pipeline_is_a_pass() -> None:
    p = parse(PROGRAM)
    inner = Pipeline((DeadCodeElimination(), RewriteRules()))
    outer = Pipeline((inner, SymbolicFold()))
    assert to_text(outer.run(p).program) == to_text(default_pipeline(p).run(p).program)


def test_an_expired_deadline_skips_the_remaining_passes_with_a_note() -> None:
    p = parse(PROGRAM)
    deadline = Deadline.after(1e-9)
    time.sleep(0.001)
    result = Pipeline((DeadCodeElimination(), RewriteRules()), deadline=deadline).run(p)
    assert result.program is p and not result.steps
    assert result.notes == (
        "dead-code skipped: the time budget of 1e-09 s ran out",
        "rules skipped: the time budget of 1e-09 s ran out",
    )


def test_simplify_checks_against_the_output_of_a_measured_pass() -> None:
    p = parse("def f(w, g, lr):\n  t = g * 3\n  return t * lr\n")
    pipeline = Pipeline((Measured(), DeadCodeElimination()))
    result = simplify(p, pipeline=pipeline)
    assert result.numeric is not None and result.numeric.agree  # vs the measured output
    assert result.verdict.startswith("1 removal(s) measured by training, not proved")


def test_simplify_time_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="time_limit"):
        simplify(parse(PROGRAM), time_limit=0)
