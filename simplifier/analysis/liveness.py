"""Liveness within one step and across steps: which statements and states matter, and why not.

A program is the body of the training loop. Within one call, a statement is live when what it
computes reaches an output. Across calls, a state's output is only worth computing when the
next call reads the state's incoming value in live code; so the update is the one true root,
and a state becomes a root when its parameter is read by live code. That is a least fixed
point (start with no live state, add states until nothing changes), computed here by repeating
a backward walk in the style of JAX's ``dce_jaxpr``: a state that is overwritten before it is
read, read only by dead code, or read only to compute itself or other dead states stays dead,
and so does everything that only feeds it (Program 4's ``m = cosh(update)``).

:func:`live_values` is the fast core (a set of live SSA ids and the live states, no reasons);
:func:`liveness` adds a reason for every dead statement and state, for reports and the
dead-code pass.

>>> from simplifier.parse import parse
>>> p = parse("def f(w, g, m, lr):\\n  t = g * 2\\n  m = g * 3\\n  return g * lr, m\\n")
>>> info = liveness(p)
>>> info.values["t.1"], info.states["m"].live
(Fact(live=False, reason='result never read'), False)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from simplifier.ir import Program, Ref, Role, Stmt


class Fact(NamedTuple):
    """Live or dead, and why dead (None when live)."""

    live: bool
    reason: str | None = None


LIVE = Fact(True)


@dataclass(frozen=True, slots=True)
class Liveness:
    """The verdicts: every statement's SSA target and every state, live or dead with a reason."""

    values: dict[str, Fact]
    states: dict[str, Fact]

    @property
    def dead_values(self) -> set[str]:
        return {v for v, f in self.values.items() if not f.live}

    @property
    def dead_states(self) -> tuple[str, ...]:
        return tuple(s for s, f in self.states.items() if not f.live)


def live_values(program: Program, *, across_steps: bool = True) -> tuple[set[str], tuple[str, ...]]:
    """The live SSA values (targets and input names) and the live states, in parameter order.

    With ``across_steps=False`` every state output is a root (liveness of one call in
    isolation); otherwise only the update is, and states join by the fixed point above.

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, m, lr):\\n  m = g * 3\\n  return g * lr, m\\n")
    >>> live_values(p)[1], live_values(p, across_steps=False)[1]
    ((), ('m',))
    """
    outputs = program.outputs
    states = [p.name for p in program.params if p.role is Role.STATE]
    used: set[str] = set()
    pending = list(zip(states, outputs[1:], strict=True))
    roots = [outputs[0]]
    if not across_steps:
        roots += outputs[1:]
        pending = []
    for a in roots:
        if type(a) is Ref:
            used.add(a.name)
    body = program.body[::-1]
    live: set[str] = set(states) if not across_steps else set()
    while True:
        # One backward walk: a statement is live when its target is read by live code.
        for s in body:
            if s.target in used:
                for a in s.args:
                    if type(a) is Ref:
                        used.add(a.name)
        # A state whose incoming value is read by live code is live: its output becomes a root.
        woken = [(name, out) for name, out in pending if name in used]
        if not woken:
            break
        pending = [(name, out) for name, out in pending if name not in used]
        grew = False
        for name, out in woken:
            live.add(name)
            if type(out) is Ref and out.name not in used:
                used.add(out.name)
                grew = True
        if not grew:  # the new roots were already live: another walk would find nothing
            break
    return used, tuple(s for s in states if s in live)


# -- reasons ------------------------------------------------------------------------------------
def _quote(names: Iterable[str]) -> str:
    items = [f"'{n}'" for n in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _lines(stmts: Iterable[Stmt]) -> str:
    lines = sorted({s.loc.line for s in stmts if s.loc is not None})
    if not lines:
        return "dead code"
    word = "line" if len(lines) == 1 else "lines"
    return f"dead code ({word} {', '.join(map(str, lines))})"


class _StateWhy(NamedTuple):
    """A dead state's reason, as a standalone phrase and as a clause after "whose value is"."""

    alone: str
    clause: str


class _Explainer:
    """Builds the reasons for a program whose live set is known (only for reports: not hot)."""

    def __init__(self, program: Program, used: set[str], live_states: tuple[str, ...]) -> None:
        self.p = program
        self.used = used
        self.readers: dict[str, list[Stmt]] = {}
        for s in program.body:
            for a in s.args:
                if type(a) is Ref:
                    self.readers.setdefault(a.name, []).append(s)
        self.state_out = program.state_outputs()
        self.dead_states = [s for s in program.states if s not in live_states]
        # feeds[value] = the dead states whose new value it reaches within the step.
        self.feeds: dict[str, list[str]] = {}
        defining = program.defining()
        for d in self.dead_states:
            out = self.state_out[d]
            stack = [out.name] if type(out) is Ref else []
            seen: set[str] = set()
            while stack:
                name = stack.pop()
                if name in seen:
                    continue
                seen.add(name)
                self.feeds.setdefault(name, []).append(d)
                stmt = defining.get(name)
                if stmt is not None:
                    stack.extend(a.name for a in stmt.args if type(a) is Ref)
        # The next assignment of the same variable after each statement, and the first one of
        # each variable (one backward sweep: reasons stay linear in the program's size).
        self.next_assignment: dict[str, Stmt] = {}
        self.first_assignment: dict[str, Stmt] = {}
        for s in reversed(program.body):
            if s.var is not None:
                later = self.first_assignment.get(s.var)
                if later is not None:
                    self.next_assignment[s.target] = later
                self.first_assignment[s.var] = s
        self.state_why = {d: self._state(d) for d in self.dead_states}

    def _overwritten(self, var: str, after: str | None = None) -> str | None:
        """ "overwritten at line N" for the next assignment of ``var`` after the statement
        ``after`` (a target; None: from the start of the body)."""
        s = self.first_assignment.get(var) if after is None else self.next_assignment.get(after)
        if s is None:
            return None
        return f"overwritten at line {s.loc.line}" if s.loc else "overwritten"

    def _state(self, d: str) -> _StateWhy:
        stmt_readers = self.readers.get(d, [])
        out_readers = [s for s, out in self.state_out.items() if type(out) is Ref and out.name == d]
        if not stmt_readers and not out_readers:
            overwritten = self._overwritten(d)
            if overwritten is not None:
                return _StateWhy(
                    f"{overwritten} before it is read",
                    f"{overwritten} before it is read in the next step",
                )
            return _StateWhy("never read", "never read in the next step")
        sinks = self.feeds.get(d, [])
        if not sinks:
            where = _lines(stmt_readers)
            return _StateWhy(f"read only by {where}", f"read in the next step only by {where}")
        others = [s for s in sinks if s != d]
        parts = ["its own next value"] if d in sinks else []
        if others:
            word = "state" if len(others) == 1 else "states"
            parts.append(f"dead {word} {_quote(others)}")
        what = " and ".join(parts)
        return _StateWhy(
            f"read only to compute {what}", f"read in the next step only to compute {what}"
        )

    def value(self, stmt: Stmt) -> str:
        sinks = self.feeds.get(stmt.target)
        if sinks:
            if len(sinks) == 1:
                d = sinks[0]
                return f"only feeds state '{d}', whose value is {self.state_why[d].clause}"
            return f"only feeds dead states {_quote(sinks)}"
        readers = self.readers.get(stmt.target)
        if readers:
            return f"read only by {_lines(readers)}"
        if stmt.var is not None:
            overwritten = self._overwritten(stmt.var, stmt.target)
            if overwritten is not None:
                return f"{overwritten} before it is read"
        return "result never read"


def liveness(program: Program, *, across_steps: bool = True) -> Liveness:
    """Every statement and state, live or dead with a reason (see :class:`Fact`).

    Reasons for statements: ``result never read``, ``overwritten at line N before it is
    read``, ``read only by dead code (line N)``, and across steps ``only feeds state 'm',
    whose value is overwritten at line N before it is read in the next step``. Reasons for
    states: ``overwritten at line N before it is read``, ``never read``, ``read only by dead
    code (...)``, ``read only to compute its own next value`` / ``... dead state 'b'``.

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, a, b):\\n  b = a * 2\\n  a = g + 1\\n  return g, a, b\\n")
    >>> [f.reason for f in liveness(p).states.values()]
    ["read only to compute dead state 'b'", 'overwritten at line 2 before it is read']
    """
    used, live_states = live_values(program, across_steps=across_steps)
    explain = _Explainer(program, used, live_states)
    values = {
        s.target: LIVE if s.target in used else Fact(False, explain.value(s)) for s in program.body
    }
    states = {
        name: LIVE if name in live_states else Fact(False, explain.state_why[name].alone)
        for name in program.states
    }
    return Liveness(values, states)
