"""The one forward interpreter loop; each domain (numbers, types, hashes, SymPy) supplies rules.

>>> from simplifier.parse import parse
>>> p = parse("def f(w, g):\\n  u = g * 2\\n  return u\\n")
>>> forward(p, {"w": 1, "g": 3}, lambda s, xs: xs[0] * xs[1], lambda c: int(c.value))[1]
[6]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from simplifier.ir import Const, Program, Stmt

V = TypeVar("V")


def forward(
    program: Program,
    inputs: Mapping[str, V],
    apply: Callable[[Stmt, list[V]], V],
    const: Callable[[Const], V],
) -> tuple[dict[str, V], list[V]]:
    """Run ``apply`` over the statements in order; return every value and the outputs."""
    env: dict[str, V] = dict(inputs)
    # `read` inlined (no function call per argument): this loop is hot for the
    # analyses that run on every program of a search stream (types, hashes).
    for s in program.body:
        env[s.target] = apply(
            s, [const(a) if isinstance(a, Const) else env[a.name] for a in s.args]
        )
    return env, [const(a) if isinstance(a, Const) else env[a.name] for a in program.outputs]
