"""Matching a rule's pattern against a DAG node (a commutative op matches either order).

>>> from fractions import Fraction
>>> from simplifier.passes.patterns import pattern
>>> g = Node.make("input", (), "g")
>>> env = match(pattern("x * 1"), Node.make("mul", (Node.make("const", (), Fraction(1)), g)), {})
>>> env == {"x": g}
True
"""

from __future__ import annotations

from simplifier.ir import Node
from simplifier.ops import OPS
from simplifier.passes.patterns import Pattern, PConst, PConstCall, PVar

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
