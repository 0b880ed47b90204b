"""Named rewrite rules on the expression DAG, as data, and a fixed-point driver.

A rule is one line of :data:`RULES`: a name, a left and a right pattern written in the program
language, and how exact the identity is under each semantics (``math`` and ``hero``), with the
identity itself in a trailing comment. Pattern variables ``x y z a b`` match any value and
``k k1 k2`` match constants only; a commutative op matches its arguments in either order.
:func:`rewrite` normalises the program's DAG bottom-up, applying at each node the first rule
that matches until none does (a fixed point, with a step limit as the loop guard), and logs
every rewrite with its level and condition. A rule is applied only if it holds under the
program's semantics and its level is allowed; a rewrite that would turn a tensor into a scalar
is never applied (a state must stay a tensor).

Levels are stated for finite real values: ``exact`` means both sides are the same function,
defined at the same points; ``almost-everywhere`` means equal where the condition holds (a rule
that drops a variable, like ``x - x -> 0``, needs that variable to be finite); ``approximate``
states a bound. Overflow of float intermediates (to inf, then NaN) is outside these levels.

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

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import isqrt
from typing import Literal

import numpy as np

from simplifier.analysis.types import INPUT_TYPES, Type
from simplifier.ir import Atom, Loc, Node, Program, Ref, dag, format_number, statements_from_dag
from simplifier.numeric import Semantics
from simplifier.ops import EPS, OPS, Kind, resolve
from simplifier.passes.base import Change, Level

Allow = Literal["exact", "almost-everywhere", "approximate"]
ALLOWED: dict[str, frozenset[str]] = {
    "exact": frozenset({"exact"}),
    "almost-everywhere": frozenset({"exact", "almost-everywhere"}),
    "approximate": frozenset({"exact", "almost-everywhere", "approximate"}),
}
EPS_FRACTION = Fraction(1, 10**8)  # get_eps() and the hero protection, exactly


# -- domain conditions ---------------------------------------------------------------------------
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


# -- patterns ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PVar:
    name: str
    const_only: bool


@dataclass(frozen=True, slots=True)
class PConst:
    value: Fraction


@dataclass(frozen=True, slots=True)
class POp:
    op: str
    args: tuple[Pattern, ...]


@dataclass(frozen=True, slots=True)
class PConstCall:
    """Any op applied to constants only (``f(k, ...)``): the left side of constant folding."""


Pattern = PVar | PConst | POp | PConstCall
_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "power"}


def pattern(text: str) -> Pattern:
    """Parse a pattern written in the program language.

    >>> pattern("x / abs(x)")
    POp(op='div', args=(PVar(name='x', const_only=False), POp(op='abs', args=(PVar(name='x', const_only=False),))))
    """  # noqa: E501
    if text == "f(k, ...)":
        return PConstCall()

    def build(e: ast.expr) -> Pattern:
        if isinstance(e, ast.BinOp) and type(e.op) in _BINOPS:
            return POp(_BINOPS[type(e.op)], (build(e.left), build(e.right)))
        if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
            inner = build(e.operand)
            return PConst(-inner.value) if isinstance(inner, PConst) else POp("negative", (inner,))
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            op = resolve(e.func.id)
            if op is None:
                raise ValueError(f"unknown function {e.func.id!r} in pattern {text!r}")
            return POp(op.name, tuple(build(a) for a in e.args))
        if isinstance(e, ast.Name):
            return PVar(e.id, e.id.startswith("k"))
        if isinstance(e, ast.Constant) and isinstance(e.value, int | float):
            return PConst(Fraction(Decimal(repr(e.value))))
        raise ValueError(f"unsupported pattern syntax in {text!r}")

    return build(ast.parse(text, mode="eval").body)


Bindings = dict[str, Node]


def match(p: Pattern, node: Node, env: Bindings) -> Bindings | None:
    """Bindings extending ``env`` under which ``p`` matches ``node``, or None."""
    if isinstance(p, PVar):
        if p.const_only and node.op != "const":
            return None
        bound = env.get(p.name)
        if bound is None:
            return {**env, p.name: node}
        return env if bound is node else None
    if isinstance(p, PConst):
        return env if node.op == "const" and node.leaf == p.value else None
    if isinstance(p, PConstCall):
        ok = node.op not in ("const", "input") and all(a.op == "const" for a in node.args)
        return env if ok else None
    if node.op != p.op:
        return None
    orders = [node.args]
    if OPS[p.op].commutative and node.args[0] is not node.args[1]:
        orders.append(node.args[::-1])
    for args in orders:
        found: Bindings | None = env
        for sub, arg in zip(p.args, args, strict=True):
            found = match(sub, arg, found) if found is not None else None
        if found is not None:
            return found
    return None


def instantiate(p: Pattern, env: Mapping[str, Node]) -> Node:
    if isinstance(p, PVar):
        return env[p.name]
    if isinstance(p, PConst):
        return Node.make("const", (), p.value)
    if isinstance(p, PConstCall):
        raise ValueError("f(k, ...) is only a left-hand pattern")
    return Node.make(p.op, tuple(instantiate(a, env) for a in p.args))


# -- constant folding ----------------------------------------------------------------------------
def printable(value: Fraction) -> bool:
    """Whether a constant prints exactly (a finite decimal): only those are folded into text."""
    den = value.denominator
    for prime in (2, 5):
        while den % prime == 0:
            den //= prime
    return den == 1 and abs(value.numerator) < 10**30 and value.denominator < 10**30


def _exact_sqrt(v: Fraction) -> Fraction | None:
    if v < 0:
        return None
    num, den = v.numerator, v.denominator
    rn, rd = isqrt(num), isqrt(den)
    return Fraction(rn, rd) if rn * rn == num and rd * rd == den else None


def evaluate_constant(op: str, args: tuple[Fraction, ...], semantics: Semantics) -> Fraction | None:
    """The exact value of ``op`` on constants, when it is a printable rational; else None.

    >>> evaluate_constant("mul", (Fraction("0.899"), Fraction("1.109")), "math")
    Fraction(996991, 1000000)
    """
    hero = semantics == "hero"
    value: Fraction | None = None
    if op == "get_eps":
        value = EPS_FRACTION
    elif op in ("add", "sub", "mul", "maximum", "minimum", "negative", "abs", "sign"):
        arithmetic: dict[str, Callable[..., Fraction]] = {
            "add": lambda a, b: a + b,
            "sub": lambda a, b: a - b,
            "mul": lambda a, b: a * b,
            "maximum": max,
            "minimum": min,
            "negative": lambda a: -a,
            "abs": abs,
            "sign": lambda a: Fraction((a > 0) - (a < 0)),
        }
        value = arithmetic[op](*args)
    elif op in ("square", "cube"):
        value = args[0] ** (2 if op == "square" else 3)
    elif op == "interp":
        x, y, a = args
        value = (1 - a) * x + a * y
    elif op in ("div", "reciprocal"):
        num, den = (args[0], args[1]) if op == "div" else (Fraction(1), args[0])
        if hero and op == "div":
            den += EPS_FRACTION
        value = num / den if den != 0 else None
    elif op == "sqrt":
        value = _exact_sqrt(abs(args[0]) if hero else args[0])
    elif op == "power":
        base, exponent = args
        if exponent.denominator == 1 and abs(exponent) <= 64 and (base != 0 or exponent >= 0):
            value = base ** int(exponent)
    return value if value is not None and printable(value) else None


def fold_constant(node: Node, semantics: Semantics) -> Node | None:
    """Constant folding as a computed right-hand side: ``f(k, ...)`` -> its exact value."""
    if OPS[node.op].kind is Kind.CONSTANT and node.op != "get_eps":
        return None
    values = tuple(a.leaf for a in node.args)
    assert all(isinstance(v, Fraction) for v in values)
    value = evaluate_constant(node.op, values, semantics)  # type: ignore[arg-type]
    return None if value is None else Node.make("const", (), value)


# -- the rules -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rule:
    """``lhs -> rhs`` with its exactness under ``math`` and ``hero`` (None: does not hold)."""

    name: str
    lhs_text: str
    rhs_text: str
    math: Exactness | None
    hero: Exactness | None
    lhs: Pattern = field(compare=False)
    rhs: Pattern | Callable[[Node, Semantics], Node | None] = field(compare=False)

    def exactness(self, semantics: Semantics) -> Exactness | None:
        return self.hero if semantics == "hero" else self.math


def rw(
    name: str,
    lhs: str,
    rhs: str | Callable[[Node, Semantics], Node | None],
    math: Exactness | None,
    hero: Exactness | None,
) -> Rule:
    """A rule from its pattern texts (or a function computing the right-hand side)."""
    rhs_text = rhs if isinstance(rhs, str) else "its value"
    rhs_pattern = pattern(rhs) if isinstance(rhs, str) else rhs
    return Rule(name, lhs, rhs_text, math, hero, pattern(lhs), rhs_pattern)


FINITE_X = holds_where(FINITE, "x")
FINITE_Y = holds_where(FINITE, "y")
FINITE_A = holds_where(FINITE, "a")
NONZERO_X = holds_where(NONZERO, "x")
# Under hero, x / |x| is x / (|x| + 1e-8): off sign(x) by 1e-8 / (|x| + 1e-8) < 1e-8 / |x|.
SIGN_HERO = within("within 1e-8/|{x}| of sign({x})", lambda v: EPS / (np.abs(v["x"]) + EPS))
DIV_ONE_HERO = within("within 1e-8*|{x}| of {x}", lambda v: np.abs(v["x"]) * EPS)

# fmt: off
RULES: tuple[Rule, ...] = (
    rw("fold-constant", "f(k, ...)", fold_constant, EXACT, EXACT),  # f(k1, k2) = its exact value
    rw("mul-one", "x * 1", "x", EXACT, EXACT),  # x * 1 = x
    rw("add-zero", "x + 0", "x", EXACT, EXACT),  # x + 0 = x
    rw("sub-zero", "x - 0", "x", EXACT, EXACT),  # x - 0 = x
    rw("zero-sub", "0 - x", "-x", EXACT, EXACT),  # 0 - x = -x
    rw("div-one", "x / 1", "x", EXACT, DIV_ONE_HERO),  # x / 1 = x (hero: x / (1 + 1e-8))
    rw("sub-self", "x - x", "0", FINITE_X, FINITE_X),  # x - x = 0 for finite x
    rw("neg-neg", "-(-x)", "x", EXACT, EXACT),  # -(-x) = x
    rw("sign-sign", "sign(sign(x))", "sign(x)", EXACT, EXACT),  # sign(sign(x)) = sign(x)
    rw("abs-abs", "abs(abs(x))", "abs(x)", EXACT, EXACT),  # ||x|| = |x|
    rw("abs-neg", "abs(-x)", "abs(x)", EXACT, EXACT),  # |-x| = |x|
    rw("sqrt-mul-self", "sqrt(x * x)", "abs(x)", EXACT, EXACT),  # sqrt(x*x) = |x| (hero: sqrt|x*x|)
    rw("sqrt-square", "sqrt(square(x))", "abs(x)", EXACT, EXACT),  # sqrt(x**2) = |x| (hero too)
    rw("div-abs", "x / abs(x)", "sign(x)", NONZERO_X, SIGN_HERO),  # x / |x| = sign(x), x != 0
    rw("abs-div", "abs(x) / x", "sign(x)", NONZERO_X, None),  # |x| / x = sign(x), x != 0
    rw("interp-same", "interp(x, x, a)", "x", FINITE_A, FINITE_A),  # (1-a)x + ax = x
    rw("interp-zero", "interp(x, y, 0)", "x", FINITE_Y, FINITE_Y),  # 1x + 0y = x
    rw("interp-one", "interp(x, y, 1)", "y", FINITE_X, FINITE_X),  # 0x + 1y = y
    rw("interp-merge", "interp(x, interp(x, y, a), b)", "interp(x, y, a * b)", EXACT, EXACT),  # (1-b)x + b((1-a)x + ay) = (1-ab)x + ab y  # noqa: E501
    rw("interp-merge-left", "interp(interp(x, y, k1), y, k2)", "interp(x, y, 1 - (1 - k1) * (1 - k2))", EXACT, EXACT),  # (1-b)((1-a)x + ay) + by = (1-a)(1-b)x + (1 - (1-a)(1-b))y  # noqa: E501
    rw("mul-const-const", "(x * k1) * k2", "x * (k1 * k2)", EXACT, EXACT),  # (x k1) k2 = x (k1 k2)
)
# fmt: on
RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}


# -- rendering -----------------------------------------------------------------------------------
_PREC = {"add": 1, "sub": 1, "mul": 2, "div": 2, "negative": 3, "power": 4}
_ATOM = 5


def render(node: Node, name_of: Callable[[Node], str | None] = lambda n: None) -> str:
    """A node as program text; ``name_of`` gives names for the nodes that have one.

    >>> lr, two = Node.make("input", (), "lr"), Node.make("const", (), Fraction(2))
    >>> render(Node.make("mul", (lr, two)))
    'lr * 2'
    """
    return _render(node, name_of, top=True)[0]


def _render(node: Node, name_of: Callable[[Node], str | None], top: bool) -> tuple[str, int]:
    if node.op == "input":
        return str(node.leaf), _ATOM
    if node.op == "const":
        assert isinstance(node.leaf, Fraction)
        text = format_number(abs(node.leaf))
        return ("-" + text, 3) if node.leaf < 0 else (text, _ATOM)
    name = None if top else name_of(node)
    if name is not None:
        return name, _ATOM
    parts = [_render(a, name_of, False) for a in node.args]
    op = OPS[node.op]
    if node.op == "negative":
        text, prec = parts[0]
        return "-" + (f"({text})" if prec < 3 else text), 3
    if op.infix:
        mine = _PREC[node.op]
        (lt, lp), (rt, rp) = parts
        left_ok, right_ok = (lp > mine, rp >= 3) if node.op == "power" else (lp >= mine, rp > mine)
        lt = lt if left_ok else f"({lt})"
        rt = rt if right_ok else f"({rt})"
        return f"{lt} {op.infix} {rt}", mine
    return f"{node.op}({', '.join(t for t, _ in parts)})", _ATOM


def label(node: Node, name_of: Callable[[Node], str | None]) -> str:
    """A node's name if it has one, else its text."""
    return name_of(node) or render(node, name_of)


def render_pattern(p: Pattern, env: Mapping[str, str]) -> str:
    """A pattern as text, with variables replaced by the given texts."""
    nodes = {name: Node.make("input", (), f"\x00{name}") for name in env}
    if isinstance(p, PConstCall):
        return "f(k, ...)"
    text = render(instantiate(p, nodes))
    for name, sub in env.items():
        text = text.replace(f"\x00{name}", sub)
    return text


# -- types ---------------------------------------------------------------------------------------
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


# -- the driver ----------------------------------------------------------------------------------
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

    def render(self, name_of: Callable[[Node], str | None]) -> str | None:
        if self.template is None:
            return None
        texts = {k: label(v, name_of) for k, v in self.bindings.items()}
        return self.template.format(**texts)

    @property
    def subject_node(self) -> Node | None:
        return self.bindings.get(self.subject) if self.subject else None


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
    ) -> None:
        self.rules = tuple(rules)
        self.semantics = semantics
        self.allowed = ALLOWED[allow]
        self.allow = allow
        self.typer = typer
        self.name_of = name_of
        self.steps_left = limit
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
            self.memo[id(n)] = self.settle(current, line_of.get(id(n)))
        return self.memo[id(root)]

    def settle(self, node: Node, line: int | None) -> Node:
        """Apply rules at ``node`` until none applies; new inner nodes are normalised too."""
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
            node = self.renormalize(step, line)
        return node

    def renormalize(self, node: Node, line: int | None) -> Node:
        if id(node) in self.settled or node.op in ("input", "const"):
            return node
        args = tuple(self.renormalize(a, line) for a in node.args)
        return self.settle(Node.make(node.op, args, node.leaf), line)

    def first_rule(self, node: Node, line: int | None) -> Node | None:
        for rule in self.rules:
            env = match(rule.lhs, node, {})
            if env is None:
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
        return {k: label(v, self.name_of) for k, v in env.items()}

    def describe(self, rule: Rule, node: Node, result: Node, env: Mapping[str, Node]) -> str:
        if isinstance(rule.lhs, PConstCall):
            return f"{rule.name}: {render(node)} -> {render(result)}"
        texts = self.texts(env)
        lhs, rhs = render_pattern(rule.lhs, texts), render(result, self.name_of)
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
        lhs = render_pattern(rule.lhs, self.texts(env))
        rhs = render_pattern(rule.rhs, self.texts(env)) if not callable(rule.rhs) else "its value"
        if how is None:
            why = f"it holds only under the math semantics, not under {self.semantics}"
        else:
            cond = how.condition.format(**self.texts(env)) if how.condition else ""
            why = f"it is {how.level} ({cond}) and --allow is {self.allow}"
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
    driver = _Driver(rules, semantics, allow, typer, name_of, limit or 200 + 50 * size)
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
