"""The one forward interpreter loop; each domain (numbers, types, hashes, SymPy) supplies rules.

>>> from simplifier.parse import parse
>>> p = parse("def f(w, g):\\n  u = g * 2\\n  return u\\n")
>>> forward(p, {"w": 1, "g": 3}, lambda s, xs: xs[0] * xs[1], lambda c: int(c.value))[1]
[6]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import TypeVar

from simplifier.ir import Const, Program, Role, Stmt

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


def bind_inputs(
    program: Program,
    *,
    weight: V,
    gradient: V,
    states: Mapping[str, V],
    lr: Callable[[], V],
    step: Callable[[], V],
    hyper: Callable[[Fraction], V],
) -> dict[str, V]:
    """The input of each parameter for one call, by its role, in the domain's own values.

    The scalars are callables so that a domain only builds those its program reads (the
    batched engine fills a device tensor per scalar). A hyper gets its default value.

    >>> from simplifier.parse import parse
    >>> p = parse("def f(w, g, lr, b=0.5):\\n  return g * b * lr\\n")
    >>> bind_inputs(p, weight=1.0, gradient=2.0, states={}, lr=lambda: 0.1,
    ...             step=lambda: 1.0, hyper=float)
    {'w': 1.0, 'g': 2.0, 'lr': 0.1, 'b': 0.5}
    """
    inputs: dict[str, V] = {}
    for p in program.params:
        if p.role is Role.WEIGHT:
            inputs[p.name] = weight
        elif p.role is Role.GRADIENT:
            inputs[p.name] = gradient
        elif p.role is Role.STATE:
            inputs[p.name] = states[p.name]
        elif p.role is Role.LR:
            inputs[p.name] = lr()
        elif p.role is Role.STEP:
            inputs[p.name] = step()
        else:
            if p.default is None:
                raise ValueError(f"hyper {p.name!r} has no value")
            inputs[p.name] = hyper(p.default.value)
    return inputs
