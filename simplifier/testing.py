"""Random valid programs, for property tests (Hypothesis) and benchmarks (seeded ``random``).

One generator serves both: it asks a :class:`Chooser` for each decision, and
:func:`programs` (Hypothesis) and :func:`random_program` (``random.Random``) supply one.

>>> import random
>>> text = random_program(random.Random(0), statements=5)
>>> text.startswith("def train(")
True
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from simplifier.ops import OPS, Kind
from simplifier.printer import INFIX as _INFIX

T = TypeVar("T")

# Ops that are defined (finite) on most inputs: good for tests that compare values numerically.
SAFE_UNARY = ("abs", "sign", "square", "tanh", "arctan", "sin", "cos", "negative", "cube", "sinh")
ALL_UNARY = tuple(name for name, op in OPS.items() if op.kind is Kind.UNARY)
SAFE_BINARY = ("add", "sub", "mul", "maximum", "minimum")
COMPARISONS = tuple(name for name, op in OPS.items() if op.truth)
ALL_BINARY = (*SAFE_BINARY, "div", "power", "mod", *COMPARISONS)
TERNARY = tuple(name for name, op in OPS.items() if op.kind is Kind.TERNARY)
REDUCTIONS = tuple(name for name, op in OPS.items() if op.kind is Kind.REDUCTION)
CONSTANT_OPS = tuple(name for name, op in OPS.items() if op.kind is Kind.CONSTANT)
_CONSTANTS = ("0.9", "0.999", "0.1", "2", "0.5", "1e-8", "3", ".25", "1.5", "0.0002")
_TEMPS = ("a", "b", "c", "d", "u", "x", "y", "update", "tmp", "β")


class Chooser(Protocol):
    def integer(self, lo: int, hi: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...


@dataclass
class _RandomChooser:
    rng: random.Random

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]


@dataclass
class _DrawChooser:
    draw: Callable[[Any], Any]

    def integer(self, lo: int, hi: int) -> int:
        from hypothesis import strategies as st

        return int(self.draw(st.integers(lo, hi)))

    def choice(self, options: Sequence[T]) -> T:
        from hypothesis import strategies as st

        return options[int(self.draw(st.integers(0, len(options) - 1)))]


@dataclass(frozen=True)
class Profile:
    """Which constructs the generator may use."""

    unary: tuple[str, ...] = ALL_UNARY
    binary: tuple[str, ...] = ALL_BINARY
    reductions: bool = True
    clip: bool = True
    max_depth: int = 2
    constant_ops: bool = False  # leaves may be get_pi(), get_e(), get_eps()
    ternary: tuple[str, ...] = TERNARY  # where(c, a, b), clamp(x, lo, hi)


SAFE = Profile(unary=SAFE_UNARY, binary=SAFE_BINARY, reductions=True, clip=True, ternary=())


def generate(c: Chooser, statements: int, profile: Profile = Profile()) -> str:
    """A random valid program text with about ``statements`` statements."""
    return _Generator(c, profile).program(statements)


_BINARY_FORMS = ("binary", "interp")


class _Generator:
    """One program's draws: its parameters, then statements over the values defined so far
    (``types``: each name's type, 'T' tensor or 'S' scalar)."""

    def __init__(self, c: Chooser, profile: Profile) -> None:
        self.c, self.profile = c, profile
        n_states = c.integer(0, 3)
        self.states = ["m", "v", "s"][:n_states]
        use_step = c.integer(0, 3) == 0
        hypers = ["beta", "eps"][: c.integer(0, 2)]
        # Some states start away from zero (``v: state=0.5``).
        starts = [
            f"{s}: state={c.choice(('0.5', '1e-6', '-1'))}" if c.integer(0, 3) == 0 else s
            for s in self.states
        ]
        self.params = ["w", "g", *starts, "lr", *(["step"] if use_step else [])]
        self.params += [f"{h}={c.choice(('0.9', '0.5', '1e-8'))}" for h in hypers]
        self.types: dict[str, str] = {
            "w": "T",
            "g": "T",
            "lr": "S",
            **dict.fromkeys(self.states, "T"),
        }
        self.types.update(dict.fromkeys(hypers, "S"))
        if use_step:
            self.types["step"] = "S"

    def program(self, statements: int) -> str:
        body = [self.statement() for _ in range(statements)]
        update, _ = self.expr(1, "T")
        outs = [update] + [s if self.types[s] == "T" else "w" for s in self.states]
        lines = [f"def train({', '.join(self.params)}):", *(f"  {b}" for b in body)]
        lines.append(f"  return {', '.join(outs)}")
        return "\n".join(lines) + "\n"

    def statement(self) -> str:
        c, types = self.c, self.types
        target = (
            c.choice([*self.states, *_TEMPS[: c.integer(1, len(_TEMPS))]])
            if c.integer(0, 4)
            else "g"
        )
        kind = "T" if target in self.states or target == "g" else None
        text, t = self.expr(c.integer(1, self.profile.max_depth), kind)
        if text in types or text in _CONSTANTS:  # a bare name or number is a copy, not a statement
            text = f"{c.choice(self.profile.unary)}({text})"
        if c.integer(0, 6) == 0 and target in types:
            op = c.choice(("+", "-", "*"))
            if types[target] == "S" and t == "T":
                target = c.choice(_TEMPS)
                types[target] = t
                return f"{target} = {text}"
            types[target] = "T" if "T" in (types[target], t) else "S"
            return f"{target} {op}= {text}"
        types[target] = t
        return f"{target} = {text}"

    def leaf(self, kind: str | None) -> tuple[str, str]:
        c = self.c
        if kind != "T" and c.integer(0, 3) == 0:
            if self.profile.constant_ops and c.integer(0, 2) == 0:
                return f"{c.choice(CONSTANT_OPS)}()", "S"
            return c.choice(_CONSTANTS), "S"
        name = c.choice([n for n, t in self.types.items() if kind is None or t == kind])
        return name, self.types[name]

    def expr(self, depth: int, kind: str | None = None) -> tuple[str, str]:
        """An expression and its type ('T' tensor, 'S' scalar); ``kind`` forces the type."""
        if depth <= 0 or self.c.integer(0, 2) == 0:
            return self.leaf(kind)
        forms = ["unary", "binary", "binary", "interp"]
        if self.profile.reductions and kind != "T":
            forms.append("reduction")
        if self.profile.clip and kind != "S":
            forms.append("clip")
        if self.profile.ternary:
            forms.append("ternary")
        form = self.c.choice(forms)
        if form in _BINARY_FORMS:
            return self.mix(form, depth, kind)
        if form == "ternary":
            return self.ternary(depth, kind)
        if form == "unary":
            x, t = self.expr(depth - 1, kind)
            return f"{self.c.choice(self.profile.unary)}({x})", t
        if form == "reduction":
            op = self.c.choice(REDUCTIONS)
            args = [self.expr(depth - 1, "T")[0] for _ in range(OPS[op].arity)]
            return f"{op}({', '.join(args)})", "S"
        x, _ = self.expr(depth - 1, "T")
        s, _ = self.expr(depth - 1, "S")
        return f"clip({x}, {s})", "T"

    def ternary(self, depth: int, kind: str | None) -> tuple[str, str]:
        """``where(c, a, b)`` (c often a comparison) or ``clamp(x, lo, hi)``; all broadcast."""
        op = self.c.choice(self.profile.ternary)
        parts = [self.expr(depth - 1, None if kind != "S" else "S") for _ in range(3)]
        if op == "where" and self.c.integer(0, 1) and COMPARISONS:
            x, y = parts[0][0], self.expr(depth - 1, None if kind != "S" else "S")[0]
            parts[0] = (f"({x} {_INFIX[self.c.choice(COMPARISONS)]} {y})", parts[0][1])
        if kind == "T" and "T" not in (t for _, t in parts):
            parts[1] = self.leaf("T")
        t = "T" if "T" in (t for _, t in parts) else "S"
        return f"{op}({', '.join(x for x, _ in parts)})", t

    def mix(self, form: str, depth: int, kind: str | None) -> tuple[str, str]:
        """A binary op or an interp of two expressions (a tensor among them if ``kind`` is T)."""
        op = self.c.choice(self.profile.binary) if form == "binary" else "interp"
        x, tx = self.expr(depth - 1, kind)
        y, ty = self.expr(depth - 1, None if kind != "S" else "S")
        if kind == "T" and "T" not in (tx, ty):
            y, ty = self.leaf("T")
        t = "T" if "T" in (tx, ty) else "S"
        if form == "interp":
            a, _ = self.expr(depth - 1, "S")
            return f"interp({x}, {y}, {a})", t
        if op in _INFIX:
            return f"({x} {_INFIX[op]} {y})", t
        return f"{op}({x}, {y})", t


def random_program(rng: random.Random, statements: int = 10, profile: Profile = Profile()) -> str:
    """A random program text from a seeded ``random.Random`` (for benchmarks)."""
    return generate(_RandomChooser(rng), statements, profile)


def programs(max_statements: int = 10, profile: Profile = Profile()) -> Any:
    """Hypothesis strategy of random valid program texts.

    >>> from hypothesis import given
    >>> @given(programs())
    ... def test(text): ...
    """
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw: Callable[[Any], Any]) -> str:
        c = _DrawChooser(draw)
        return generate(c, c.integer(1, max_statements), profile)

    return strategy()
