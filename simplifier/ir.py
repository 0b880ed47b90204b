"""The immutable SSA IR of optimizer programs.

A program is a list of single-assignment statements ``target = op(args)`` over inputs
(parameters with roles) and exact constants; ``outputs`` are the update and the new states.
Nested source expressions become temporaries (``var is None``). The same program seen as an
expression DAG is :func:`dag`, whose nodes are interned: structurally equal expressions are
the same object.

>>> from simplifier.parse import parse
>>> p = parse("def train(w, g, lr):\\n  u = g * lr\\n  return u\\n")
>>> [(s.target, s.op) for s in p.body]
[('u.1', 'mul')]
"""

from __future__ import annotations

import keyword
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import ClassVar

from simplifier.ops import OPS


class Role(Enum):
    WEIGHT = "weight"
    GRADIENT = "gradient"
    LR = "lr"
    STEP = "step"
    HYPER = "hyper"
    STATE = "state"


@dataclass(frozen=True, slots=True)
class Loc:
    """A source position (1-based line and column)."""

    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Const:
    """An exact constant. Equality is by value: ``0.5``, ``.5`` and ``5e-1`` are equal."""

    value: Fraction
    text: str = field(default="", compare=False)

    @staticmethod
    def of(value: Fraction | int | str) -> Const:
        """A constant from source text (exactly) or an exact number.

        >>> Const.of("0.899").value
        Fraction(899, 1000)
        """
        if isinstance(value, str):
            return Const(Fraction(Decimal(value)), value)
        return Const(Fraction(value))

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return format_number(self.value)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to an SSA value: an input's name or a statement's target."""

    name: str


Atom = Const | Ref


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    role: Role
    default: Const | None = None
    annotation: str | None = field(default=None, compare=False)
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Stmt:
    """``target = op(*args)``; ``var`` is the source name assigned, None for a temporary."""

    target: str
    op: str
    args: tuple[Atom, ...]
    var: str | None
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Program:
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    outputs: tuple[Atom, ...]  # the update, then the new value of each state, in param order
    output_locs: tuple[Loc | None, ...] = field(default=(), compare=False)
    path: str = field(default="<program>", compare=False)
    source: str | None = field(default=None, compare=False, repr=False)

    # -- roles -------------------------------------------------------------------------------
    def role_of(self, name: str) -> Role | None:
        for p in self.params:
            if p.name == name:
                return p.role
        return None

    def params_with(self, role: Role) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.role is role)

    def input_named(self, role: Role) -> str | None:
        found = self.params_with(role)
        return found[0].name if found else None

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params_with(Role.STATE))

    @property
    def initial(self) -> dict[str, Fraction]:
        """Each state's value at step 0: its default (``v: state = 1e-6``), else 0.

        >>> from simplifier.parse import parse
        >>> parse("def f(w, g, m, v: state = 0.5):\\n  return g, m, v\\n").initial
        {'m': Fraction(0, 1), 'v': Fraction(1, 2)}
        """
        return {
            p.name: p.default.value if p.default is not None else Fraction(0)
            for p in self.params_with(Role.STATE)
        }

    @property
    def hypers(self) -> tuple[Param, ...]:
        return self.params_with(Role.HYPER)

    @property
    def update(self) -> Atom:
        return self.outputs[0]

    def state_outputs(self) -> dict[str, Atom]:
        return dict(zip(self.states, self.outputs[1:], strict=True))

    # -- navigation --------------------------------------------------------------------------
    def defining(self) -> dict[str, Stmt]:
        """Map from SSA target to its statement."""
        return {s.target: s for s in self.body}

    def uses(self) -> dict[str, list[int]]:
        """Map from SSA value name to the indices of the statements reading it."""
        used: dict[str, list[int]] = {}
        for i, s in enumerate(self.body):
            for a in s.args:
                if isinstance(a, Ref):
                    used.setdefault(a.name, []).append(i)
        return used

    def var_of(self, value: str) -> str:
        """The source name of an SSA value (its input name, or the variable it was assigned to)."""
        for s in self.body:
            if s.target == value:
                return s.var or value
        return value

    def with_body(self, body: tuple[Stmt, ...], outputs: tuple[Atom, ...] | None = None) -> Program:
        return replace(self, body=body, outputs=self.outputs if outputs is None else outputs)

    def bind(self, values: Mapping[str, HyperValue]) -> Program:
        """The program with the given hypers' defaults set (e.g. from ``--set beta1=0.9``).

        A value may be a Fraction, an int, a float (taken as its shortest decimal, ``0.9`` is
        9/10) or a number's text (``"0.9"``, ``"1e-3"``, ``"1/3"``); see :func:`exact_value`.
        """
        exact = {name: exact_value(v, name) for name, v in values.items()}
        params = tuple(
            replace(p, default=Const(exact[p.name], format_number(exact[p.name])))
            if p.name in exact and p.role is Role.HYPER
            else p
            for p in self.params
        )
        return replace(self, params=params)

    def verify(self) -> None:
        """Check the IR invariants; raise :class:`IRError` on the first violation.

        SSA (each target assigned once, every read defined before), known ops with the right
        arity, roles (one weight, one gradient, at most one lr and step), one output per state
        plus the update. Typing is checked by :func:`simplifier.analysis.types.infer_types`.
        """
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise IRError("duplicate parameter names")
        for role, lo, hi in (
            (Role.WEIGHT, 1, 1),
            (Role.GRADIENT, 1, 1),
            (Role.LR, 0, 1),
            (Role.STEP, 0, 1),
        ):
            n = len(self.params_with(role))
            if not lo <= n <= hi:
                raise IRError(f"{n} parameters with role {role.value}")
        defined = set(names)
        for s in self.body:
            op = OPS.get(s.op)
            if op is None:
                raise IRError(f"{s.target}: unknown op {s.op!r}")
            if len(s.args) != op.arity:
                raise IRError(f"{s.target}: {s.op} takes {op.arity} arguments")
            for a in s.args:
                if isinstance(a, Ref) and a.name not in defined:
                    raise IRError(f"{s.target}: reads {a.name!r} before it is defined")
            if s.target in defined:
                raise IRError(f"{s.target} assigned twice")
            defined.add(s.target)
        if len(self.outputs) != 1 + len(self.states):
            raise IRError(f"{len(self.outputs)} outputs for {len(self.states)} states")
        for a in self.outputs:
            if isinstance(a, Ref) and a.name not in defined:
                raise IRError(f"output reads undefined {a.name!r}")


class IRError(Exception):
    """A broken IR invariant (a bug in a pass, not a user error)."""


def fresh_name(base: str, taken: set[str] | frozenset[str]) -> str:
    """``base_2``, ``base_3``, ... : the first not in ``taken`` and not a Python keyword.

    >>> fresh_name("m", {"m", "m_2"})
    'm_3'
    """
    k = 2
    while f"{base}_{k}" in taken or keyword.iskeyword(f"{base}_{k}"):
        k += 1
    return f"{base}_{k}"


# -- numbers ------------------------------------------------------------------------------------
HyperValue = Fraction | int | float | Decimal | str
"""What a hyper's value may be given as (``parse(..., values)``, :meth:`Program.bind`)."""


def exact_value(value: HyperValue, name: str = "value") -> Fraction:
    """``value`` as an exact Fraction: a float by its shortest decimal repr, text as written.

    >>> exact_value(0.9), exact_value(2), exact_value("1e-3"), exact_value(Fraction(1, 3))
    (Fraction(9, 10), Fraction(2, 1), Fraction(1, 1000), Fraction(1, 3))
    >>> exact_value(float("nan"), "beta")
    Traceback (most recent call last):
    ...
    ValueError: beta: nan is not a finite number
    """
    if isinstance(value, bool) or not isinstance(value, Fraction | int | float | Decimal | str):
        raise TypeError(f"{name}: expected a number or its text, got {type(value).__name__}")
    try:
        exact = Fraction(repr(value) if isinstance(value, float) else value)
    except (ValueError, ZeroDivisionError, OverflowError):
        if isinstance(value, str):
            raise ValueError(f"{name}: {value!r} is not a number") from None
        raise ValueError(f"{name}: {value} is not a finite number") from None
    return exact


def format_number(value: Fraction) -> str:
    """The shortest exact decimal text of a constant: its plain decimal digits, or a float's
    repr when that text denotes exactly the same value and is shorter. Exact whatever the
    number of digits; a value that is not a finite decimal (``1/3``, which no literal or folded
    constant is) prints as the nearest float.

    >>> format_number(Fraction(996991, 1000000)), format_number(Fraction(1, 10**8))
    ('0.996991', '1e-08')
    >>> format_number(Fraction(2**100)), format_number(Fraction(-5, 10**40))
    ('1267650600228229401496703205376', '-5e-40')
    >>> format_number(Fraction(3**40, 10**60))
    '1.2157665459056928801e-41'
    >>> format_number(Fraction(3**40 * 10**40))
    '1.2157665459056928801e+59'

    """
    num, den = value.numerator, value.denominator
    if num == 0:
        return "0"
    twos = fives = 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return repr(float(value))
    scale = max(twos, fives)  # value == digits / 10**scale, exactly
    digits = str(abs(num) * 2 ** (scale - twos) * 5 ** (scale - fives))
    if scale:
        digits = digits.rjust(scale + 1, "0")
        digits = digits[:-scale] + "." + digits[-scale:]
    sign = "-" if num < 0 else ""
    text = sign + digits
    try:
        sci = repr(float(value))
    except OverflowError:
        sci = "inf"
    if len(sci) < len(text) and "n" not in sci and Fraction(Decimal(sci)) == value:
        return sci
    # More significant digits than a float keeps: scientific notation when that is shorter.
    significant = str(abs(num) * 2 ** (scale - twos) * 5 ** (scale - fives))
    mantissa = significant.rstrip("0")
    exponent = len(significant) - 1 - scale
    if len(mantissa) <= 17:
        return text
    exact = f"{sign}{mantissa[0]}.{mantissa[1:]}e{exponent:+03d}"
    return exact if len(exact) < len(text) else text


# -- DAG view ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, weakref_slot=True)
class Node:
    """An interned expression node: ``Node.make`` returns the same object for equal structure."""

    op: str  # an op name, or "input" / "const"
    args: tuple[Node, ...]
    leaf: str | Fraction | None = None  # the input name, or the constant's value

    _pool: ClassVar[weakref.WeakValueDictionary[tuple[object, ...], Node]] = (
        weakref.WeakValueDictionary()
    )

    @classmethod
    def make(cls, op: str, args: tuple[Node, ...] = (), leaf: str | Fraction | None = None) -> Node:
        key = (op, tuple(id(a) for a in args), leaf)
        node = cls._pool.get(key)
        if node is None:
            node = cls(op, args, leaf)
            cls._pool[key] = node
        return node

    def walk(self) -> Iterator[Node]:
        """Every node below (and including) this one, each once, children first."""
        seen: set[int] = set()
        stack: list[tuple[Node, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in seen:
                continue
            if expanded:
                seen.add(id(node))
                yield node
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(node.args) if id(c) not in seen)


def dag(program: Program) -> dict[str, Node]:
    """The interned expression DAG of every SSA value (inputs included).

    >>> from simplifier.parse import parse
    >>> d = dag(parse("def f(w, g):\\n  a = g * 2\\n  b = g * 2\\n  return a + b\\n"))
    >>> d["a.1"] is d["b.1"]
    True
    """
    nodes: dict[str, Node] = {p.name: Node.make("input", (), p.name) for p in program.params}

    def read(a: Atom) -> Node:
        return Node.make("const", (), a.value) if isinstance(a, Const) else nodes[a.name]

    for s in program.body:
        nodes[s.target] = Node.make(s.op, tuple(read(a) for a in s.args))
    return nodes


def statements_from_dag(
    outputs: Sequence[Atom | Node],
    names: Mapping[int, tuple[str, Loc | None]],
    order: Iterable[Node] = (),
) -> tuple[tuple[Stmt, ...], tuple[Atom, ...]]:
    """The SSA statements computing ``outputs``, and the output atoms: the inverse of :func:`dag`.

    One statement per op node, after its arguments: first those of ``order`` (in that order),
    then the rest in output order. ``names`` maps ``id(node)`` to its variable name and
    location (targets ``var.1``, ``var.2``, ...); other nodes become temporaries ``%k``.

    >>> from simplifier.parse import parse
    >>> d = dag(parse("def f(w, g):\\n  a = g * 2\\n  b = g * 2\\n  return a + b\\n"))
    >>> body, outs = statements_from_dag([d["%1"]], {id(d["a.1"]): ("a", None)})
    >>> [(s.target, s.op) for s in body], body[1].args, outs
    ([('a.1', 'mul'), ('%1', 'add')], (Ref(name='a.1'), Ref(name='a.1')), (Ref(name='%1'),))
    """
    body: list[Stmt] = []
    atoms: dict[int, Atom] = {}
    counts: dict[str, int] = {}
    temps = 0

    def atom_of(n: Node) -> Atom:
        if n.op == "input":
            return Ref(str(n.leaf))
        if n.op == "const":
            assert isinstance(n.leaf, Fraction)
            return Const(n.leaf)
        return atoms[id(n)]

    roots = [*order, *(o for o in outputs if isinstance(o, Node))]
    for root in roots:
        for n in root.walk():
            if n.op in ("input", "const") or id(n) in atoms:
                continue
            var, loc = names.get(id(n), (None, None))
            if var is not None:
                counts[var] = counts.get(var, 0) + 1
                target = f"{var}.{counts[var]}"
            else:
                temps += 1
                target = f"%{temps}"
            body.append(Stmt(target, n.op, tuple(atom_of(a) for a in n.args), var, loc))
            atoms[id(n)] = Ref(target)
    return tuple(body), tuple(o if not isinstance(o, Node) else atom_of(o) for o in outputs)
