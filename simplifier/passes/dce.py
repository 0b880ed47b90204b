"""Dead-code elimination: drop dead statements and dead states, within and across steps.

Built on :mod:`simplifier.analysis.liveness`. A dead state is removed from the signature and
from the return. The pass is exact: the updates it produces are bitwise those of the input
program, for every input and either semantics (nothing in the language has side effects, and
every live value is computed by the same statements in the same order).

>>> from simplifier.parse import parse
>>> from simplifier.printer import to_text
>>> p = parse("def f(w, g, m, lr):\\n  t = g * 2\\n  m = g * 3\\n  return g * lr, m\\n")
>>> result = eliminate_dead_code(p)
>>> print(to_text(result.program), end="")
def f(w, g, lr):
  return g * lr
>>> [(c.kind, c.line, c.detail) for c in result.changes][0]
('dead-statement', 2, 'result never read')
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from simplifier.analysis.liveness import live_values, liveness
from simplifier.ir import Program, Role
from simplifier.passes.base import Change, PassResult


def eliminate_dead_code(program: Program, *, across_steps: bool = True) -> PassResult:
    """Remove dead statements (and, across steps, dead states); one change per source line.

    A source line that lowered to several SSA statements (nesting) gives one change, with the
    reason of its assigned statement. A dead state gives a ``dead-state`` change at the line of
    its parameter, with the detail ``state 'm': REASON``.

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, m):\\n  m = cosh(g)\\n  m = g * 2\\n  return m, m\\n")
    >>> for c in eliminate_dead_code(p).changes:
    ...     print(c.kind, c.line, c.detail)
    dead-statement 2 overwritten at line 3 before it is read
    dead-state 1 state 'm': overwritten at line 2 before it is read
    """
    used, live_states = live_values(program, across_steps=across_steps)
    n_states = sum(1 for p in program.params if p.role is Role.STATE)
    if len(live_states) == n_states and all(s.target in used for s in program.body):
        return PassResult(program)
    info = liveness(program, across_steps=across_steps)
    changes: list[Change] = []
    reported: set[int] = set()
    # Rows per source line: the statement that assigns a name speaks for its line's temporaries.
    dead = [s for s in program.body if not info.values[s.target].live]
    for s in sorted(dead, key=lambda s: s.var is None):
        line = s.loc.line if s.loc else None
        if line is not None and line in reported:
            continue
        if s.var is None and line is not None and _is_return_line(program, line):
            continue  # a temporary of a dead state's return item: the dead-state change covers it
        if line is not None:
            reported.add(line)
        changes.append(Change("dead-statement", info.values[s.target].reason or "", line))
    changes.sort(key=lambda c: c.line if c.line is not None else 0)
    state_lines = {p.name: (p.loc.line if p.loc else None) for p in program.params}
    for name in info.dead_states:
        reason = info.states[name].reason
        changes.append(Change("dead-state", f"state '{name}': {reason}", state_lines[name]))
    return PassResult(_without(program, used, live_states), tuple(changes))


def prune(program: Program, *, across_steps: bool = True) -> Program:
    """The program without its dead statements and states, computed fast (no reasons).

    >>> from simplifier.parse import parse
    >>> prune(parse("def f(w, g, m):\\n  m = cosh(g)\\n  return g, m\\n")).states
    ()
    """
    used, live_states = live_values(program, across_steps=across_steps)
    return _without(program, used, live_states)


def _without(program: Program, used: set[str], live_states: tuple[str, ...]) -> Program:
    """``program`` keeping only the statements in ``used`` and the states in ``live_states``."""
    states = [p.name for p in program.params if p.role is Role.STATE]
    body = tuple(s for s in program.body if s.target in used)
    if len(live_states) == len(states):
        return program if len(body) == len(program.body) else replace(program, body=body)
    keep = [True] + [s in live_states for s in states]
    outputs = tuple(a for a, k in zip(program.outputs, keep, strict=True) if k)
    locs = program.output_locs
    if len(locs) == len(keep):
        locs = tuple(loc for loc, k in zip(locs, keep, strict=True) if k)
    params = tuple(p for p in program.params if p.role is not Role.STATE or p.name in live_states)
    return replace(program, params=params, body=body, outputs=outputs, output_locs=locs)


def _is_return_line(program: Program, line: int) -> bool:
    return any(loc is not None and loc.line == line for loc in program.output_locs)


@dataclass(frozen=True, slots=True)
class DeadCodeElimination:
    """The dead-code pass; ``across_steps=False`` keeps every state (liveness of one call only).

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, m):\\n  m = cosh(g)\\n  return g, m\\n")
    >>> one, within = DeadCodeElimination(), DeadCodeElimination(across_steps=False)
    >>> one.run(p).program.states, within.run(p).program.states
    ((), ('m',))
    """

    across_steps: bool = True
    name: str = "dead-code"

    def run(self, program: Program) -> PassResult:
        return eliminate_dead_code(program, across_steps=self.across_steps)
