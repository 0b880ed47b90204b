"""SymPy -> IR: rebuild a short, readable program from folded output expressions.

The outputs are converted to interned DAG nodes, so common subexpressions are shared (the DAG
is the CSE). Each output and each value read twice or more gets a statement; so do interps that
feed a nonlinear function (``c = interp(g, v, 0.899)`` then ``sign(c)``) and values that the
source named and that still exist with at least two operations (``m_hat``). The rest is inlined.
A product is written tensor part first, then its scalar factors grouped in one factor, the
constant last, so the update comes out in the Lion shape
``(direction + w * wd) * (lr * scale)``; a sum puts the terms that read the gradient or a state
first, then the weight, then scalars, positive terms before subtracted ones.

Names: the update is ``update``; states keep their names; other values take their source name
when it is still meaningful (not the name of a state the program lost, nor ``update``), else a
descriptive one (``c`` for an interpolation, ``g`` for a transformed gradient, ``g_norm``, ...).
Statements are ordered update first, then the states, so that a state is rebound after every
read of its old value.

>>> import sympy as sp
>>> from simplifier.parse import parse
>>> from simplifier.printer import to_text
>>> p = parse("def f(w, g, lr):\\n  return g * lr\\n")
>>> g, w, lr = sp.symbols("g w lr", real=True)
>>> print(to_text(rebuild(p, [(g + w * sp.Rational(1, 2)) * lr / 5000]).program), end="")
def f(w, g, lr):
  update = (g + w * 0.5) * (lr * 0.0002)
  return update
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import sympy as sp

from simplifier.ir import Node, Param, Program, Role, fresh_name, statements_from_dag
from simplifier.numeric import Semantics
from simplifier.ops import OPS, Kind
from simplifier.parse import is_literal
from simplifier.passes.rules import printable
from simplifier.symbolic.fold import Opaque
from simplifier.symbolic.translate import OPAQUE, clip_scalar, interp

FUNCTION_OPS: dict[type, str] = {
    sp.Abs: "abs",
    sp.sign: "sign",
    sp.exp: "exp",
    sp.log: "log",
    sp.sin: "sin",
    sp.cos: "cos",
    sp.tan: "tan",
    sp.asin: "arcsin",
    sp.acos: "arccos",
    sp.atan: "arctan",
    sp.sinh: "sinh",
    sp.cosh: "cosh",
    sp.tanh: "tanh",
    sp.asinh: "arcsinh",
    sp.acosh: "arccosh",
    sp.atanh: "arctanh",
    interp: "interp",
    **{cls: cls.__name__ for cls in OPAQUE},  # the reductions and clip
    clip_scalar: "clip",
}


class Unsupported(Exception):
    """A SymPy expression with no program form (a complex number, an infinity, ...)."""


def const(value: Fraction | int) -> Node:
    """A constant node. SymPy's exact arithmetic can reach values no literal can write
    (``1e308 * 10``, ``0.999 ** 10000``, ``7 ** 150``): those are Unsupported, so folding keeps
    its input."""
    v = Fraction(value)
    if not is_literal(v):
        raise Unsupported("a folded constant is not a literal of the language (float64 range)")
    return Node.make("const", (), v)


def _single(value: Fraction) -> bool:
    """Whether a constant is written as one literal: a short finite decimal, or an integer
    the language can write (``2 ** 100`` folds to ``1267650600228229401496703205376``, not to
    that over ``1``)."""
    return printable(value) or (value.denominator == 1 and is_literal(value))


def op(name: str, *args: Node) -> Node:
    return Node.make(name, tuple(args))


@dataclass
class Converter:
    """SymPy -> interned DAG nodes, memoised; remembers source-name hints per node."""

    semantics: Semantics
    tensors: frozenset[sp.Symbol]
    direction: frozenset[sp.Symbol]  # gradient and states: their terms come first in a sum
    states: frozenset[sp.Symbol] = frozenset()
    hints: Mapping[sp.Expr, str] = field(default_factory=dict)
    named: frozenset[sp.Expr] = frozenset()  # sums and products the source named: kept whole
    memo: dict[sp.Expr, Node] = field(default_factory=dict)
    hint_of: dict[int, str] = field(default_factory=dict)

    def __call__(self, e: sp.Expr) -> Node:
        hit = self.memo.get(e)
        if hit is not None:
            return hit
        n = self.convert(e)
        self.memo[e] = n
        hint = self.hints.get(e)
        if hint is not None:
            self.hint_of.setdefault(id(n), hint)
        return n

    def is_tensor(self, e: sp.Expr) -> bool:
        from simplifier.symbolic.fold import is_tensor

        return is_tensor(e, self.tensors)

    def convert(self, e: sp.Expr) -> Node:
        if isinstance(e, sp.Symbol):
            return Node.make("input", (), e.name)
        if e.is_Rational:
            return self.number(Fraction(int(e.p), int(e.q)))
        if e is sp.pi:
            return op("get_pi")
        if e is sp.E:
            return op("get_e")
        if e.is_Add:
            return self.add(e)
        if e.is_Mul:
            return self.mul(e)
        if e.is_Pow:
            return self.power(e)
        if isinstance(e, sp.Max | sp.Min):
            name = "maximum" if isinstance(e, sp.Max) else "minimum"
            nodes = [self(a) for a in sorted(e.args, key=self.rank)]
            acc = nodes[0]
            for n in nodes[1:]:
                acc = op(name, acc, n)
            return acc
        if isinstance(e, Opaque):
            return op(e.op, *(self(a) for a in e.args))
        fn = FUNCTION_OPS.get(type(e))
        if fn is None or (fn == "log" and self.semantics == "hero"):
            raise Unsupported(f"no program form for {e}")
        return op(fn, *(self(a) for a in e.args))

    def number(self, value: Fraction) -> Node:
        """An exact constant; one that is not a finite decimal is written as a quotient."""
        if _single(value):
            return const(value)
        num, den = const(value.numerator), const(value.denominator)
        return self.quotient(num if value.numerator != 1 else None, den)

    def quotient(self, num: Node | None, den: Node) -> Node:
        """``num / den``; under hero ``/`` is protected, so it is ``num * reciprocal(den)``."""
        if self.semantics == "hero":
            inverse = op("reciprocal", den)
            return inverse if num is None else op("mul", num, inverse)
        return op("div", num if num is not None else const(1), den)

    def rank(self, term: sp.Expr) -> int:
        """Order of terms in a sum: states, the gradient, the weight, scalars, numbers."""
        if term.is_Number:
            return 4
        symbols = term.free_symbols
        if symbols & self.states:
            return 0
        if symbols & self.direction:
            return 1
        if self.is_tensor(term):
            return 2
        return 3

    def named_parts(self, e: sp.Expr) -> tuple[list[sp.Expr], list[sp.Expr]]:
        """Split a sum (product) into the sub-sums (sub-products) the source named, largest
        first, and the remaining terms: SymPy flattens ``m_hat / d`` into ``m / b / d``, and
        this gives ``m_hat`` back."""
        rest = list(e.args)
        parts: list[sp.Expr] = []
        candidates = [h for h in self.named if h.func is e.func and h != e]
        # Largest first; ties in SymPy's canonical order (the set's order follows str hashes,
        # which change with PYTHONHASHSEED from run to run).
        for h in sorted(candidates, key=lambda h: (-len(h.args), sp.default_sort_key(h))):
            if set(h.args) <= set(rest):
                parts.append(h)
                rest = [a for a in rest if a not in h.args]
        return parts, rest

    def add(self, e: sp.Expr) -> Node:
        pos: list[sp.Expr] = []
        neg: list[sp.Expr] = []
        parts, rest = self.named_parts(e)
        for term in [*parts, *rest]:
            coeff, _ = term.as_coeff_Mul()
            (neg if coeff.is_negative else pos).append(-term if coeff.is_negative else term)
        pos.sort(key=self.rank)
        neg.sort(key=self.rank)
        if pos:
            acc = self(pos[0])
            rest = pos[1:]
        else:
            acc = op("negative", self(neg[0]))
            rest, neg = [], neg[1:]
        for t in rest:
            acc = op("add", acc, self(t))
        for t in neg:
            acc = op("sub", acc, self(t))
        return acc

    def product(self, factors: Sequence[sp.Expr | Node]) -> Node | None:
        nodes = [f if isinstance(f, Node) else self(f) for f in factors]
        if not nodes:
            return None
        acc = nodes[0]
        for n in nodes[1:]:
            acc = op("mul", acc, n)
        return acc

    def fraction(self, num: Sequence[sp.Expr | Node], den: Sequence[sp.Expr | Node]) -> Node | None:
        top = self.product(num)
        bottom = self.product(den)
        if bottom is None:
            return top
        return self.quotient(top, bottom)

    def mul(self, e: sp.Expr) -> Node:
        parts, rest = self.named_parts(e)
        coeff = sp.Mul(*(f for f in rest if f.is_Number))
        factors = [*parts, *(f for f in rest if not f.is_Number)]
        negative = bool(coeff.is_negative)
        coeff = -coeff if negative else coeff
        num_t: list[sp.Expr | Node] = []
        den_t: list[sp.Expr | Node] = []
        num_s: list[sp.Expr | Node] = []
        den_s: list[sp.Expr | Node] = []
        # SymPy writes (x*y)**2 as x**2*y**2: equal integer powers are grouped back.
        groups: dict[int, list[sp.Expr]] = {}
        for f in factors:
            if f.is_Pow and f.exp.is_Integer and abs(f.exp) >= 2:
                groups.setdefault(int(f.exp), []).append(f.base)
        grouped = {k: v for k, v in groups.items() if len(v) >= 2}
        for exponent, bases in grouped.items():
            bases.sort(key=lambda b: not self.is_tensor(b))
            inner = self.power_of(self.product(bases), abs(exponent))
            tensor = any(self.is_tensor(b) for b in bases)
            num, den = (num_t, den_t) if tensor else (num_s, den_s)
            (den if exponent < 0 else num).append(inner)
        for f in factors:
            tensor = self.is_tensor(f)
            if f.is_Pow and f.exp.is_Integer and int(f.exp) in grouped:
                continue
            if f.is_Pow and f.exp.is_Rational and f.exp.is_negative:
                base = f.base if f.exp == -1 else sp.Pow(f.base, -f.exp)
                (den_t if tensor else den_s).append(base)
            else:
                (num_t if tensor else num_s).append(f)
        if coeff != 1:
            value = Fraction(int(coeff.p), int(coeff.q))
            if _single(value):
                num_s.append(const(-value if negative else value))
                negative = False
            else:
                if value.numerator != 1:
                    num_s.append(const(value.numerator))
                den_s.append(const(value.denominator))
        # One quotient where the scalar factors do not stand on their own:
        # `s / (1 - beta2 ** step)`, not `s * (1 / (1 - ...))`; `n / c`, not `1 / c * n`.
        if num_t and not num_s:
            den_t, den_s = den_t + den_s, []
        elif den_t and not num_t:
            num_t, den_t, num_s, den_s = num_s, den_t + den_s, [], []
        tensor_part = self.fraction(num_t, den_t) if num_t or den_t else None
        scalar_part = self.fraction(num_s, den_s) if num_s or den_s else None
        if tensor_part is not None and scalar_part is not None:
            result = op("mul", tensor_part, scalar_part)
        else:
            found = tensor_part or scalar_part
            result = found if found is not None else const(1)
        return op("negative", result) if negative else result

    @staticmethod
    def power_of(base: Node | None, exponent: int) -> Node:
        assert base is not None
        if exponent == 2:
            return op("square", base)
        if exponent == 3:
            return op("cube", base)
        return op("power", base, const(exponent))

    def power(self, e: sp.Expr) -> Node:
        base, exponent = e.base, e.exp
        if exponent.is_Rational and exponent.is_negative:
            inner = base if exponent == -1 else sp.Pow(base, -exponent)
            return self.quotient(None, self(inner))
        if exponent == sp.Rational(1, 2) and self.semantics == "math":
            return op("sqrt", self(base))
        if exponent == 2:
            return op("square", self(base))
        if exponent == 3:
            return op("cube", self(base))
        return op("power", self(base), self(exponent))


# -- statements, names and order -----------------------------------------------------------------
RESERVED_WORDS = frozenset(OPS) | {"update"}


@dataclass(frozen=True)
class Rebuilt:
    """The rebuilt program and the source names it dropped for clarity: (old, new, why)."""

    program: Program
    renames: tuple[tuple[str, str, str], ...] = ()


def _reads(n: Node, lines: set[int]) -> tuple[set[int], set[str]]:
    """The lines and the inputs that ``n``'s statement reads (through inlined temporaries)."""
    line_deps: set[int] = set()
    inputs: set[str] = set()
    stack = list(n.args)
    while stack:
        a = stack.pop()
        if a.op == "input":
            inputs.add(str(a.leaf))
        elif a.op == "const":
            continue
        elif id(a) in lines:
            line_deps.add(id(a))
        else:
            stack.extend(a.args)
    return line_deps, inputs


def _role_symbols(program: Program, roles: tuple[Role, ...]) -> frozenset[sp.Symbol]:
    return frozenset(sp.Symbol(p.name, real=True) for p in program.params if p.role in roles)


def rebuild(
    program: Program,
    outputs: Sequence[sp.Expr],
    semantics: Semantics = "math",
    hints: Mapping[sp.Expr, str] | None = None,
    lost_states: frozenset[str] = frozenset(),
) -> Rebuilt:
    """A program with ``program``'s signature computing the given outputs (update, states).

    ``hints`` maps SymPy values to the names the source gave them; ``lost_states`` are names of
    states that an earlier pass removed (their names are not reused for other values).
    """
    tensors = _role_symbols(program, (Role.WEIGHT, Role.GRADIENT, Role.STATE))
    direction = _role_symbols(program, (Role.GRADIENT, Role.STATE))
    states = _role_symbols(program, (Role.STATE,))
    hints = hints or {}
    reserved = RESERVED_WORDS | lost_states | set(program.states)
    named = frozenset(e for e, n in hints.items() if n not in reserved and (e.is_Add or e.is_Mul))
    conv = Converter(semantics, tensors, direction, states, hints, named)
    roots = [conv(e) for e in outputs]
    return _Builder(program, roots, conv.hint_of, lost_states).build()


class _Builder:
    def __init__(
        self,
        program: Program,
        roots: list[Node],
        hint_of: Mapping[int, str],
        lost_states: frozenset[str],
    ) -> None:
        self.program = program
        self.roots = roots
        self.hint_of = hint_of
        self.lost_states = lost_states
        self.params = {p.name: p for p in program.params}
        self.order: list[Node] = []  # every op node, children first, update's cone first
        seen: set[int] = set()
        for r in roots:
            for n in r.walk():
                if id(n) not in seen and n.op not in ("input", "const"):
                    seen.add(id(n))
                    self.order.append(n)
        self.index = {id(n): i for i, n in enumerate(self.order)}
        self.uses: dict[int, int] = {}
        self.parents: dict[int, list[Node]] = {}
        for n in self.order:
            for a in n.args:
                self.uses[id(a)] = self.uses.get(id(a), 0) + 1
                self.parents.setdefault(id(a), []).append(n)
        for r in roots:
            self.uses[id(r)] = self.uses.get(id(r), 0) + 1
        self.root_ids = {id(r) for r in roots if r.op not in ("input", "const")}
        self.renames: list[tuple[str, str, str]] = []

    # -- which values get a statement ------------------------------------------------------------
    def usable_hint(self, n: Node) -> str | None:
        hint = self.hint_of.get(id(n))
        if hint is None or hint in RESERVED_WORDS or hint in self.lost_states:
            return None
        p = self.params.get(hint)
        if p is not None and p.role is Role.STATE:
            return None  # a state's name is its new value's
        return hint

    def choose_lines(self) -> set[int]:
        lines: set[int] = set()
        inline_size: dict[int, int] = {}
        for n in self.order:
            size = 1 + sum(inline_size.get(id(a), 0) for a in n.args if id(a) not in lines)
            inline_size[id(n)] = size
            if (
                id(n) in self.root_ids
                or self.uses.get(id(n), 0) >= 2
                or self.named_interp(n)
                or (self.usable_hint(n) is not None and size >= 2)
            ):
                lines.add(id(n))
        return lines

    def named_interp(self, n: Node) -> bool:
        """An interp gets a statement unless it is a term of an output's top-level sum
        (``s = interp(square(g - m), s, beta2) + eps`` reads fine inline)."""
        if n.op != "interp":
            return False
        parents = self.parents.get(id(n), [])
        in_output_sum = (
            len(parents) == 1
            and id(parents[0]) in self.root_ids
            and parents[0].op in ("add", "sub")
        )
        return not in_output_sum

    # -- names -----------------------------------------------------------------------------------
    def shape_name(self, n: Node) -> str:
        inputs = {str(x.leaf) for x in n.walk() if x.op == "input"}
        roles = {self.params[i].role for i in inputs}
        if n.op == "interp":
            return "c"
        if OPS[n.op].kind is Kind.REDUCTION:
            args = [str(a.leaf) if a.op == "input" else "" for a in n.args]
            if not all(args):
                return "t"  # a function's name would be a confusing variable name
            if n.op in ("norm", "global_norm"):
                return f"{args[0]}_norm"
            if n.op in ("dot", "cosine_sim"):
                return f"{'dot' if n.op == 'dot' else 'cos'}_{'_'.join(args)}"
            return f"{args[0]}_{n.op}"  # g_sum, g_mean, ...
        if Role.GRADIENT in roles and not roles & {Role.WEIGHT, Role.STATE}:
            gradient = self.program.input_named(Role.GRADIENT)
            return gradient or "g"
        if roles == {Role.WEIGHT} or roles == {Role.WEIGHT, Role.HYPER}:
            return "weight_decay"
        return "t"

    def name_lines(self, lines: set[int]) -> dict[int, str]:
        names: dict[int, str] = {}
        taken: set[str] = set(self.params)
        for name, r in zip(["update", *self.program.states], self.roots, strict=True):
            # A value that is both the update and a state is named after the state.
            if id(r) in self.root_ids and names.get(id(r), "update") == "update":
                names[id(r)] = name
        taken |= set(names.values())
        counter = 0
        for n in self.order:
            if id(n) not in lines or id(n) in names:
                continue
            hint = self.usable_hint(n)
            base = hint or self.shape_name(n)
            source = self.hint_of.get(id(n))
            if base == "t":
                counter += 1
                while f"t{counter}" in taken:
                    counter += 1
                name = f"t{counter}"
            elif base in taken and not self.rebindable(base):
                name = fresh_name(base, taken)
            else:
                name = base
            if source is not None and source in self.lost_states and name != source:
                why = f"'{source}' was a state, removed as dead; this value is not a state"
                self.renames.append((source, name, why))
            taken.add(name)
            names[id(n)] = name
        return names

    def rebindable(self, name: str) -> bool:
        p = self.params.get(name)
        return p is not None and p.role is not Role.STATE

    # -- order -----------------------------------------------------------------------------------
    def schedule(self, lines: set[int], names: dict[int, str]) -> list[Node]:
        by_id = {id(n): n for n in self.order}
        deps: dict[int, set[int]] = {}
        reads: dict[int, set[str]] = {}
        for i in lines:
            deps[i], reads[i] = _reads(by_id[i], lines)
        output_inputs = {str(r.leaf) for r in self.roots if r.op == "input"}
        after: dict[int, set[int]] = {i: set(deps[i]) for i in lines}  # i must follow these
        taken = set(names.values()) | set(self.params)
        for i in sorted(lines, key=lambda j: self.index[j]):
            name = names[i]
            if name not in self.params:
                continue
            readers = [j for j in lines if j != i and name in reads[j]]
            # Rebinding must follow every read of the old value; if some reader has to come
            # after this line (it reads it, or an order already fixed says so), rename instead.
            if name in output_inputs or any(self._depends(j, i, after) for j in readers):
                new = fresh_name(name, taken)  # rebinding would hide a value still read
                taken.add(new)
                names[i] = new
                continue
            after[i] |= set(readers)
        ready = [(self.index[i], i) for i in lines if not after[i]]
        heapq.heapify(ready)
        done: list[int] = []
        remaining = {i: set(s) for i, s in after.items()}
        waiting: dict[int, list[int]] = {}
        for i, s in after.items():
            for j in s:
                waiting.setdefault(j, []).append(i)
        while ready:
            _, i = heapq.heappop(ready)
            done.append(i)
            for k in waiting.get(i, []):
                remaining[k].discard(i)
                if not remaining[k]:
                    heapq.heappush(ready, (self.index[k], k))
        if len(done) != len(lines):
            raise AssertionError("statement order has a cycle")
        return [by_id[i] for i in done]

    @staticmethod
    def _depends(j: int, i: int, deps: Mapping[int, set[int]]) -> bool:
        """Whether line ``j`` reads line ``i``, directly or through other lines."""
        stack, seen = [j], set()
        while stack:
            k = stack.pop()
            if k == i:
                return True
            if k in seen:
                continue
            seen.add(k)
            stack.extend(deps[k])
        return False

    # -- statements ------------------------------------------------------------------------------
    def build(self) -> Rebuilt:
        lines = self.choose_lines()
        names = self.name_lines(lines)
        ordered = self.schedule(lines, names)
        # Lines in schedule order (each after the lines it reads); the rest are temporaries.
        body, outputs = statements_from_dag(
            self.roots, {i: (name, None) for i, name in names.items()}, ordered
        )
        params: tuple[Param, ...] = self.program.params
        new = Program(self.program.name, params, body, outputs, (), self.program.path)
        return Rebuilt(new, tuple(self.renames))
