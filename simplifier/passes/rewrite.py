"""The rewrite driver: the rules of :mod:`simplifier.passes.rules` applied to a fixed point.

:func:`rewrite` normalises the program's DAG bottom-up, applying at each node the first rule
that matches until none does (a fixed point, with a step limit as the loop guard), and logs
every rewrite with its level and condition. A rule is applied only if it holds under the
program's semantics and its level is allowed; a rewrite that would turn a tensor into a scalar
is never applied (a state must stay a tensor). :class:`RewriteRules` is the driver as a pass.

>>> from simplifier.parse import parse
>>> from simplifier.printer import to_text
>>> r = rewrite(parse("def f(w, g, lr):\\n  u = g / sqrt(g * g)\\n  return u * lr\\n"))
>>> print(to_text(r.program), end="")
def f(w, g, lr):
  u = sign(g)
  return u * lr
>>> [(c.detail, c.level, c.condition) for c in r.changes][1]
('div-abs: g / abs(g) -> sign(g)', 'almost-everywhere', 'g != 0')
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from simplifier.analysis.types import INPUT_TYPES, Type
from simplifier.ir import Atom, Loc, Node, Program, Ref, dag, statements_from_dag
from simplifier.numeric import Semantics
from simplifier.ops import OPS, Kind
from simplifier.passes.base import NO_DEADLINE, Change, Deadline, PassResult
from simplifier.passes.conditions import Exactness, Obligation
from simplifier.passes.matcher import match
from simplifier.passes.patterns import PConstCall, instantiate, render_pattern
from simplifier.passes.rules import RULES, Rule
from simplifier.printer import NodePrinter, Text

Allow = Literal["exact", "almost-everywhere", "approximate"]
ALLOWED: dict[str, frozenset[str]] = {
    "exact": frozenset({"exact"}),
    "almost-everywhere": frozenset({"exact", "almost-everywhere"}),
    "approximate": frozenset({"exact", "almost-everywhere", "approximate"}),
}

_Call = Generator["_Call", Node, Node]  # a driver step: yields sub-steps, returns a node


def _trampoline(call: _Call) -> Node:
    """Run a generator-encoded recursion on an explicit stack."""
    stack = [call]
    value: Node | None = None
    while stack:
        try:
            sub = stack[-1].send(value)  # type: ignore[arg-type]  # None only to start
        except StopIteration as done:
            stack.pop()
            value = done.value
            continue
        stack.append(sub)
        value = None
    assert value is not None
    return value


class Typer:
    """Scalar or tensor for every node, from the roles of the program's inputs."""

    def __init__(self, program: Program) -> None:
        self.inputs = {p.name: INPUT_TYPES[p.role] for p in program.params}
        self.memo: dict[int, tuple[Node, Type]] = {}

    def __call__(self, node: Node) -> Type:
        hit = self.memo.get(id(node))
        if hit is not None:
            return hit[1]
        for n in node.walk():
            if id(n) in self.memo:
                continue
            self.memo[id(n)] = (n, self._local(n))
        return self.memo[id(node)][1]

    def _local(self, n: Node) -> Type:
        if n.op == "input":
            return self.inputs[str(n.leaf)]
        if n.op == "const":
            return Type.SCALAR
        kind = OPS[n.op].kind
        if kind in (Kind.REDUCTION, Kind.CONSTANT):
            return Type.SCALAR
        if kind is Kind.CLIP:
            return self.memo[id(n.args[0])][1]
        tensor = any(self.memo[id(a)][1] is Type.TENSOR for a in n.args)
        return Type.TENSOR if tensor else Type.SCALAR


@dataclass(frozen=True)
class RewriteResult:
    """The rewritten program, one change per applied rule, what each assumes, and notes on
    rules that matched but were not applied (level not allowed, or not valid under hero)."""

    program: Program
    changes: tuple[Change, ...]
    obligations: tuple[Obligation, ...]
    notes: tuple[str, ...] = ()


class RewriteLimit(Exception):
    """The loop guard: more rewrite steps than any terminating rule set needs."""


class _Driver:
    def __init__(
        self,
        rules: Iterable[Rule],
        semantics: Semantics,
        allow: Allow,
        typer: Typer,
        name_of: Callable[[Node], str | None],
        limit: int,
        deadline: Deadline,
    ) -> None:
        self.rules = tuple(rules)
        self.semantics = semantics
        self.allowed = ALLOWED[allow]
        self.allow = allow
        self.typer = typer
        self.name_of = name_of
        self.inherited: dict[int, str] = {}  # a named statement's rewritten value -> its name
        self.printer = NodePrinter(lambda n: name_of(n) or self.inherited.get(id(n)))
        self.plain = NodePrinter()
        self.steps_left = limit
        self.deadline = deadline
        self.memo: dict[int, Node] = {}
        self.keep: list[Node] = []  # the memo is keyed by id(): keep those nodes alive
        self.settled: set[int] = set()
        self.obligations: list[Obligation] = []
        self.notes: dict[tuple[str, int], str] = {}

    def normalize(self, root: Node, line_of: Mapping[int, int]) -> Node:
        """Normalise every node below ``root`` (children first), memoised."""
        for n in root.walk():
            if id(n) in self.memo:
                continue
            args = tuple(self.memo[id(a)] for a in n.args)
            same = all(a is b for a, b in zip(args, n.args, strict=True))  # not ==: deep
            current = n if same else Node.make(n.op, args, n.leaf)
            self.keep.append(n)
            settled = self.settle(current, line_of.get(id(n)))
            self.memo[id(n)] = settled
            self.inherit(n, settled)
        return self.memo[id(root)]

    def inherit(self, source: Node, settled: Node) -> None:
        """The rewritten value of a named statement prints as that name in later log lines
        (``sqrt(a * a) -> abs(a)``, not the expansion of ``a``): log texts stay as long as the
        source's, and printing them stays linear."""
        name = self.name_of(source)
        if settled is source or name is None or self.name_of(settled) is not None:
            return
        if settled.op in ("input", "const"):
            return
        self.inherited[id(settled)] = name
        self.keep.append(settled)
        self.printer.memo.pop(id(settled), None)

    def settle(self, node: Node, line: int | None) -> Node:
        """Apply rules at ``node`` until none applies; new inner nodes are normalised too."""
        return _trampoline(self._settle(node, line))

    # The two mutually recursive steps are generators that yield their sub-calls, run by
    # _trampoline on an explicit stack: a rewrite's depth is not bounded by Python's stack.
    def _settle(self, node: Node, line: int | None) -> _Call:
        while id(node) not in self.settled:
            if node.op in ("input", "const"):
                break
            step = self.first_rule(node, line)
            if step is None:
                self.settled.add(id(node))
                self.keep.append(node)
                break
            self.steps_left -= 1
            if self.steps_left < 0:
                raise RewriteLimit("rewrite step limit reached (a rule loop?)")
            if self.deadline.expired:
                raise RewriteLimit(self.deadline.text())
            node = yield self._renormalize(step, line)
        return node

    def _renormalize(self, node: Node, line: int | None) -> _Call:
        if id(node) in self.settled or node.op in ("input", "const"):
            return node
        args = []
        for a in node.args:
            args.append((yield self._renormalize(a, line)))
        return (yield self._settle(Node.make(node.op, tuple(args), node.leaf), line))

    def first_rule(self, node: Node, line: int | None) -> Node | None:
        for rule in self.rules:
            env = match(rule.lhs, node, {})
            if env is None or not rule.applies(env):
                continue
            if callable(rule.rhs):
                computed = rule.rhs(node, self.semantics)
                if computed is None:
                    continue
                result = computed
            else:
                result = instantiate(rule.rhs, env)
            if self.typer(result) is not self.typer(node):
                continue  # e.g. x - x -> 0 on a tensor: a state must stay a tensor
            how = rule.exactness(self.semantics)
            if how is None or how.level not in self.allowed:
                self.note(rule, how, node, env, line)
                continue
            self.log(rule, how, node, result, env, line)
            return result
        return None

    def texts(self, env: Mapping[str, Node]) -> dict[str, str]:
        return {k: self.printer.label(v) for k, v in env.items()}

    def operands(self, env: Mapping[str, Node]) -> dict[str, Text]:
        return {k: self.printer.operand(v) for k, v in env.items()}

    def describe(self, rule: Rule, node: Node, result: Node, env: Mapping[str, Node]) -> str:
        if isinstance(rule.lhs, PConstCall):
            return f"{rule.name}: {self.plain.text(node)} -> {self.plain.text(result)}"
        lhs, rhs = render_pattern(rule.lhs, self.operands(env)), self.printer.text(result)
        return f"{rule.name}: {lhs} -> {rhs}"

    def log(
        self,
        rule: Rule,
        how: Exactness,
        node: Node,
        result: Node,
        env: Mapping[str, Node],
        line: int | None,
    ) -> None:
        bindings = dict(env)
        condition = how.condition.format(**self.texts(env)) if how.condition else None
        change = Change(
            "rewrite", self.describe(rule, node, result, env), line, how.level, condition
        )
        self.obligations.append(
            Obligation(change, how.condition, bindings, how.relation, how.subject, how.error)
        )

    def note(
        self,
        rule: Rule,
        how: Exactness | None,
        node: Node,
        env: Mapping[str, Node],
        line: int | None,
    ) -> None:
        key = (rule.name, id(node))
        if key in self.notes:
            return
        where = f"line {line}: " if line is not None else ""
        lhs = render_pattern(rule.lhs, self.operands(env))
        rhs = "its value" if callable(rule.rhs) else render_pattern(rule.rhs, self.operands(env))
        if how is None:
            why = f"it holds only under the math semantics, not under {self.semantics}"
        else:
            cond = how.condition.format(**self.texts(env)) if how.condition else ""
            why = f"it is {how.level} ({cond}) and the allowed level is {self.allow}"
        self.notes[key] = f"{where}not applied: {lhs} -> {rhs} ({rule.name}): {why}"
        self.keep.append(node)


def _source_names(program: Program, nodes: Mapping[str, Node]) -> dict[int, str]:
    """The source name of each DAG node that a named statement computes (the first one)."""
    names: dict[int, str] = {}
    for s in program.body:
        if s.var is not None:
            names.setdefault(id(nodes[s.target]), s.var)
    return names


def _lines(program: Program, nodes: Mapping[str, Node]) -> dict[int, int]:
    lines: dict[int, int] = {}
    for s in program.body:
        if s.loc is not None:
            lines.setdefault(id(nodes[s.target]), s.loc.line)
    return lines


def rewrite(
    program: Program,
    semantics: Semantics = "math",
    allow: Allow = "almost-everywhere",
    rules: Iterable[Rule] = RULES,
    limit: int | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> RewriteResult:
    """Rewrite ``program`` with ``rules`` to a fixed point; log each applied rewrite.

    >>> from simplifier.parse import parse
    >>> text = "def f(w, g, v):\\n  v = interp(g, interp(g, v, 0.899), 1.109)\\n  return g, v\\n"
    >>> p = parse(text)
    >>> [c.detail for c in rewrite(p).changes]
    ['interp-merge: interp(g, interp(g, v, 0.899), 1.109) -> interp(g, v, 0.899 * 1.109)', \
'fold-constant: 0.899 * 1.109 -> 0.996991']
    """
    nodes = dag(program)
    source = _source_names(program, nodes)
    lines = _lines(program, nodes)
    keep = list(nodes.values())

    def name_of(n: Node) -> str | None:
        return source.get(id(n))

    typer = Typer(program)
    size = len(program.body) + 1
    limit = limit or 200 + 50 * size
    driver = _Driver(rules, semantics, allow, typer, name_of, limit, deadline)
    roots = [nodes[a.name] if isinstance(a, Ref) else None for a in program.outputs]
    new_roots = [driver.normalize(r, lines) if r is not None else None for r in roots]
    changes = tuple(o.change for o in driver.obligations)
    del keep
    notes = tuple(driver.notes.values())
    if not changes:
        return RewriteResult(program, (), (), notes)
    outputs = [a if r is None else r for a, r in zip(program.outputs, new_roots, strict=True)]
    new = program_from_dag(program, outputs, _inherited_names(program, nodes, driver.memo))
    return RewriteResult(new, changes, tuple(driver.obligations), notes)


def _inherited_names(
    program: Program, nodes: Mapping[str, Node], memo: Mapping[int, Node]
) -> dict[int, tuple[str, Loc | None]]:
    """Names (and locations) for the rewritten DAG: a node keeps the name of the statement
    whose value it is now (the first one, in program order)."""
    names: dict[int, tuple[str, Loc | None]] = {}
    for s in program.body:
        if s.var is None:
            continue
        new = memo.get(id(nodes[s.target]))
        if new is not None:
            names.setdefault(id(new), (s.var, s.loc))
    return names


def program_from_dag(
    program: Program,
    outputs: list[Atom | Node],
    names: Mapping[int, tuple[str, Loc | None]],
) -> Program:
    """A program computing the given output nodes: one statement per op node, children first.

    ``names`` gives a node its variable name and location; other nodes become temporaries.
    """
    body, out = statements_from_dag(outputs, names)
    return program.with_body(body, out)


@dataclass(frozen=True, slots=True)
class RewriteRules:
    """The named rewrite rules of :mod:`simplifier.passes.rules`, to a fixed point; when the
    step limit (the loop guard) or the deadline is reached, the pass keeps its input and says so.
    """

    semantics: Semantics = "math"
    allow: Allow = "almost-everywhere"
    deadline: Deadline = NO_DEADLINE
    name: str = "rules"

    def run(self, program: Program) -> PassResult:
        try:
            r = rewrite(program, self.semantics, self.allow, deadline=self.deadline)
        except RewriteLimit as e:
            return PassResult(program, notes=(f"rewrite rules skipped: {e}",))
        return PassResult(r.program, r.changes, r.obligations, r.notes)
