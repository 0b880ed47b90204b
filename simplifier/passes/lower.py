"""Lower compound and protected ops to primitives: the one place that defines what they compute.

Every interpreter that works on primitives (NumPy and torch in :mod:`simplifier.numeric`, the
batched engine, the 50-digit interpreter, the torch emitter) runs this pass first, so that
``clip``, ``cosine_sim`` and the ``hero`` protections mean the same thing in all of them:

- a compound op (``clip``, ``cosine_sim``) becomes its formula from the op table, e.g.
  ``clip(x, c) = x * minimum(1, c / global_norm(x))``;
- under ``hero``, a protected op becomes its protected formula (``a / b`` is
  ``a / (b + 1e-8)``, ``sqrt(x)`` is ``sqrt(abs(x))``, ...). Divisions and square roots that a
  formula introduces are the plain ones: norms and their divisions are unprotected under both
  semantics.

The result is a program to run under ``math`` semantics. Its statements keep their targets
(the last statement of an expansion computes the original target), so values can be read by
the original names. It is meant for interpreters only: ``global_norm`` may read a scalar there
(from ``clip`` of a scalar; a scalar counts once per parameter tensor), which the type rules of
the surface language do not allow.

>>> from simplifier.parse import parse
>>> from simplifier.printer import to_text
>>> p = parse("def f(w, g, lr):\\n  return clip(g, lr) / lr\\n")
>>> [(s.op, s.target) for s in Lower("hero").run(p).body]  # doctest: +NORMALIZE_WHITESPACE
[('global_norm', '%1%0'), ('div', '%1%1'), ('minimum', '%1%2'), ('mul', '%1'),
 ('add', '%2%0'), ('div', '%2')]
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from simplifier.ir import Atom, Const, Program, Ref, Stmt
from simplifier.ops import COMPOUND, OPS, PROTECTED, SEMANTICS, Formula, Semantics, Tree
from simplifier.passes.base import PassResult


@dataclass(frozen=True)
class Lower:
    """The lowering pass (a value: its option is the semantics it lowers from)."""

    semantics: Semantics = "math"
    name: str = "lower"

    def __post_init__(self) -> None:
        if self.semantics not in SEMANTICS:
            raise ValueError(f"unknown semantics {self.semantics!r}")

    @property
    def rewrites(self) -> frozenset[str]:
        """The ops this pass rewrites."""
        return COMPOUND | PROTECTED if self.semantics == "hero" else COMPOUND

    def run(self, program: Program) -> Program:
        """The lowered program (the same object when there is nothing to lower)."""
        rewrites = self.rewrites
        if not any(s.op in rewrites for s in program.body):
            return program
        body: list[Stmt] = []
        for s in program.body:
            if s.op not in rewrites:
                body.append(s)
                continue
            op = OPS[s.op]
            formula = op.hero if self.semantics == "hero" and op.hero is not None else op.formula
            assert formula is not None, s.op
            _Expansion(s, body).final(formula, s.args)
        return program.with_body(tuple(body))

    def __call__(self, program: Program) -> PassResult:
        return PassResult(self.run(program))


class _Expansion:
    """The statements of one statement's formula, appended to ``body``."""

    def __init__(self, stmt: Stmt, body: list[Stmt]) -> None:
        self.stmt = stmt
        self.body = body
        self.count = 0

    def final(self, formula: Formula, args: tuple[Atom, ...]) -> None:
        tree = formula.tree
        assert tree[0] not in ("arg", "const"), "a formula computes something"
        self.node(tree, args, self.stmt.target, self.stmt.var)

    def node(
        self, t: Tree, args: tuple[Atom, ...], target: str | None = None, var: str | None = None
    ) -> Atom:
        head = t[0]
        if head == "arg":
            i = t[1]
            assert isinstance(i, int)
            return args[i]
        if head == "const":
            value = t[1]
            assert isinstance(value, Fraction)
            return Const(value)
        name = str(head)
        op = OPS[name]
        if op.exact is not None:  # a rational constant (get_eps()) is a literal
            return Const(op.exact)
        children = tuple(self.node(c, args) for c in t[1:] if isinstance(c, tuple))
        if op.compound:  # a compound op inside a formula: expand it too
            assert op.formula is not None
            inner = op.formula.tree
            return self.node(inner, children, target, var)
        if target is None:
            target = f"{self.stmt.target}%{self.count}"
            self.count += 1
        self.body.append(Stmt(target, name, children, var, self.stmt.loc))
        return Ref(target)
