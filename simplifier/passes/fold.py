"""SymPy folding and reconstruction as a pass (:mod:`simplifier.symbolic.fold`,
:mod:`simplifier.symbolic.rebuild`): translate the outputs, fold them, rebuild a short readable
program, and log what was folded and which domain conditions that dropped.

>>> from simplifier.parse import parse
>>> from simplifier.printer import to_text
>>> r = SymbolicFold().run(parse("def f(w, g, lr):\\n  u = g + g\\n  return u * lr * 0.5\\n"))
>>> print(to_text(r.program), end="")
def f(w, g, lr):
  update = g * lr
  return update
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simplifier.analysis.types import infer_types
from simplifier.errors import ProgramError
from simplifier.ir import IRError, Node, Program, Role
from simplifier.numeric import Semantics
from simplifier.passes.base import NO_DEADLINE, Change, Deadline, PassResult
from simplifier.passes.conditions import FINITE, Obligation
from simplifier.printer import NodePrinter


@dataclass(frozen=True)
class SymbolicFold:
    """SymPy folding of the outputs and reconstruction of a short, readable program.

    ``lost_states`` are states of the original program that earlier passes removed (their
    names are not reused; the program's own states may be listed too). The pass keeps its
    input, with a note, when SymPy runs past ``budget`` seconds (or past the deadline), when
    the result has no program form, or when it would have more operations.
    """

    semantics: Semantics = "math"
    lost_states: frozenset[str] = frozenset()
    budget: float = 5.0
    deadline: Deadline = NO_DEADLINE
    name: str = "symbolic-fold"

    def run(self, program: Program) -> PassResult:
        from simplifier.symbolic.rebuild import Unsupported
        from simplifier.symbolic.translate import SymbolicTimeout, time_budget

        try:
            with time_budget(self.deadline.cap(self.budget)):
                return self.fold(program)
        except SymbolicTimeout as e:
            return PassResult(program, notes=(f"symbolic folding skipped: {e}",))
        except Unsupported as e:
            return PassResult(program, notes=(f"symbolic folding skipped: {e}",))
        except (ValueError, TypeError, RecursionError) as e:
            # SymPy's automatic evaluation can refuse an input (e.g. Min of values it cannot
            # compare): folding is an optimisation, so the pass keeps its input.
            note = f"symbolic folding skipped: SymPy could not evaluate it ({e})"
            return PassResult(program, notes=(note,))

    def fold(self, program: Program) -> PassResult:
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
            return PassResult(program, notes=(note,))
        hints = source_hints(before, folder, program)
        rebuilt = rebuild(program, outputs, self.semantics, hints, self.lost_states)
        new = rebuilt.program
        try:
            new.verify()
            infer_types(new)
        except (IRError, ProgramError) as e:
            return PassResult(program, notes=(f"symbolic folding skipped: {e}",))
        if len(new.body) > len(program.body):
            note = (
                f"symbolic folding skipped: its program has {len(new.body)} operations, "
                f"the input {len(program.body)}"
            )
            return PassResult(program, notes=(note,))
        after = to_sympy(new, self.semantics)
        changes: list[Change] = []
        obligations: list[Obligation] = []
        lines = {before.values[s.target]: s.loc.line for s in program.body if s.loc}
        # (for the log texts only: the order of terms there does not matter)
        conv = Converter(self.semantics, before.tensors, before.tensors, before.states, hints)

        printer = NodePrinter(lambda n: conv.hint_of.get(id(n)))

        def text(e: Any) -> str:
            return printer.text(conv(e))

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
        return PassResult(new, tuple(changes), tuple(obligations))


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
