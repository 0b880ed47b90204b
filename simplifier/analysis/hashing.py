"""The structural semantic hash: equal for programs that differ only in spelling, not in meaning.

The hash is a Merkle digest (``hashlib.blake2b``) of the live expression DAG, the DAG that is
left after dead-code elimination across steps. It is invariant under:

- variable names (inputs are identified by role, statements by what they compute);
- the order of independent statements, and nesting (``a = f(x); b = g(a)`` vs ``b = g(f(x))``):
  a value's digest depends on its expression only;
- dead statements and dead states (only the live DAG is hashed);
- the argument order of commutative ops (children's digests are sorted);
- how a constant is spelled (``0.5``, ``.5``, ``5e-1``: constants are exact fractions);
- the order and names of states: a state is identified by its content, by iterative label
  refinement over the state cycle (Weisfeiler-Lehman style): every state starts with the
  label of its initial value (zero unless declared, ``v: state = 1e-6``), each round
  relabels a state by the digest of its update expression under the previous labels, and
  rounds stop when the partition of states stops splitting. Two states in one class compute
  the same value at every step, so the classes are deduplicated.

When it can be wrong (see ``docs/analysis.md``): a false "different" for programs that are
equal by algebra rather than by structure (``x + x`` vs ``2 * x``, ``interp(x, y, a)`` vs
``interp(y, x, 1 - a)``, ``sub(x, y)`` vs ``add(x, negative(y))``) — the numeric
:mod:`~simplifier.analysis.fingerprint` catches most of those; a false "equal" through a
collision of the 128-bit digest, or at the bit level through the sign of a zero:
``maximum(-0.0, 0.0)`` and ``maximum(0.0, -0.0)`` return different zeros in numpy and torch.
Hypers are hashed by value and role (a program with ``beta=0.9`` equals the same program with
another hyper name, but not the one with a literal ``0.9``); a hyper without a value is hashed
by its name.

The digest of every sub-expression can be cached across calls (a :class:`DigestCache`, a bounded
table keyed by the op and the children's digests, owned by the caller): a search produces
programs that share most of their statements, so with one cache for its stream most
sub-expressions are hashed once per stream, not once per program.

>>> from simplifier.parse import parse
>>> a = parse("def f(w, g, m, lr):\\n  m = interp(g, m, .9)\\n  return sign(m) * lr, m\\n")
>>> b = parse("def f(w, g, v, lr):\\n  t = 0.1 * g + 0.9 * v\\n  return lr * sign(t), t\\n")
>>> c = parse("def f(w, g, mom, lr):\\n  mom = interp(g,mom,9e-1)\\n  return lr*sign(mom),mom\\n")
>>> structural_hash(a) == structural_hash(c) != structural_hash(b)
True
"""

from __future__ import annotations

from enum import Enum
from fractions import Fraction
from hashlib import blake2b

from simplifier.analysis.liveness import live_values
from simplifier.ir import Atom, Const, Param, Program, Ref, Role, Stmt
from simplifier.ops import OPS

Digest = bytes  # 16 bytes
_SIZE = 16


def _digest(*parts: bytes) -> Digest:
    return blake2b(b"\x00".join(parts), digest_size=_SIZE).digest()


class Rule(Enum):
    """How an op's arguments enter its digest."""

    ORDERED = "ordered"  # in order: f(x, y) != f(y, x)
    COMMUTATIVE = "commutative"  # as a sorted multiset of digests
    CONSTANT = "constant"  # a constant op whose value is a literal: hashed as that literal


# One rule per op, from the op table. A constant op with a rational value (get_eps(), exactly
# the literal 1e-8 under both semantics) is hashed as that literal; get_pi() and get_e() are not
# rationals, so they stay ops (ORDERED, with no arguments).
CONSTANT_VALUES: dict[str, Fraction] = {
    name: op.exact for name, op in OPS.items() if op.exact is not None
}
HASH_RULES: dict[str, Rule] = {
    name: Rule.CONSTANT
    if name in CONSTANT_VALUES
    else Rule.COMMUTATIVE
    if op.commutative
    else Rule.ORDERED
    for name, op in OPS.items()
}
_COMMUTATIVE = frozenset(name for name, rule in HASH_RULES.items() if rule is Rule.COMMUTATIVE)
_TAGS: dict[str, bytes] = {name: b"op:" + name.encode() for name in OPS}


def const_digest(value: Fraction) -> Digest:
    """The digest of an exact constant (any spelling of the same number gives the same one)."""
    return _digest(b"const", str(value.numerator).encode(), str(value.denominator).encode())


_STATE0 = _digest(b"state")


def _state0(initial: Fraction) -> Digest:
    """A state's label at step 0: its initial value (all zero states share one label)."""
    return _STATE0 if initial == 0 else _digest(b"state", const_digest(initial))


_ROLE_DIGESTS: dict[str, Digest] = {
    role._value_: _digest(b"input", role.value.encode())
    for role in (Role.WEIGHT, Role.GRADIENT, Role.LR, Role.STEP)
}


class DigestCache:
    """The digests of sub-expressions, constants and hypers, kept by their owner across calls.

    A digest is a pure function of its key, so a cache can be shared by any calls (a search
    keeps one for its stream: its programs share most of their statements). Each table is
    cleared when it grows past ``limit`` entries.
    """

    def __init__(self, limit: int = 1 << 20) -> None:
        self.limit = limit
        self.nodes: dict[tuple[object, ...], Digest] = {}  # (op, *argument digests) -> digest
        self.consts: dict[object, Digest] = {}  # constant text or exact value -> digest
        self.inputs: dict[object, Digest] = {}  # a hyper's value (or name) -> digest

    def clear(self) -> None:
        self.nodes.clear()
        self.consts.clear()
        self.inputs.clear()

    def const(self, c: Const) -> Digest:
        # Keyed by the source text when there is one: str hashes are cached, Fraction's are not.
        key: object = c.text or c.value
        d = self.consts.get(key)
        if d is None:
            if len(self.consts) > self.limit:
                self.consts.clear()
            d = self.consts[key] = const_digest(c.value)
        return d

    def node(self, key: tuple[object, ...]) -> Digest:
        """The digest of ``(op, *argument digests)`` (arguments already in canonical order)."""
        if len(self.nodes) > self.limit:
            self.nodes.clear()
        op = key[0]
        assert isinstance(op, str)
        value = CONSTANT_VALUES.get(op)
        d = const_digest(value) if value is not None else _digest(_TAGS[op], *key[1:])  # type: ignore[arg-type]
        self.nodes[key] = d
        return d

    def input(self, p: Param) -> Digest:
        """Inputs are identified by role; hypers by value (by name only when they have none)."""
        # Keys avoid Enum and Fraction hashing (both run Python code): role values are str,
        # and a constant's source text determines its value when it has one.
        role = p.role._value_
        if role != "hyper":
            return _ROLE_DIGESTS[role]
        c = p.default
        key: object = (c.text or c.value) if c is not None else ("free", p.name)
        d = self.inputs.get(key)
        if d is None:
            if len(self.inputs) > self.limit:
                self.inputs.clear()
            d = (
                _digest(b"hyper", const_digest(c.value))
                if c is not None
                else _digest(b"free-hyper", p.name.encode())
            )
            self.inputs[key] = d
        return d

    def statements(self, stmts: list[Stmt], keys: dict[str, Digest]) -> None:
        """Digest every statement in order, reading and writing ``keys`` (the hot loop)."""
        memo, const, node, commutative = self.nodes, self.const, self.node, _COMMUTATIVE
        for s in stmts:
            args = [keys[a.name] if a.__class__ is Ref else const(a) for a in s.args]  # type: ignore[arg-type]
            op = s.op
            if op in commutative:
                args.sort()
            key = (op, *args)
            d = memo.get(key)
            keys[s.target] = d if d is not None else node(key)


def structural_hash(
    program: Program,
    *,
    live: tuple[set[str], tuple[str, ...]] | None = None,
    cache: DigestCache | None = None,
) -> str:
    """The structural hash of a program, as 32 hex digits (see the module docstring).

    ``live`` is :func:`~simplifier.analysis.liveness.live_values` of the program, when the
    caller has it already; ``cache`` a :class:`DigestCache` to share with other calls (by
    default each call has its own).

    >>> from simplifier.parse import parse
    >>> h = structural_hash(parse("def f(w, g, lr):\\n  return g * lr\\n"))
    >>> h == structural_hash(parse("def f(p, grad, lr):\\n  dead = exp(p)\\n  return lr*grad\\n"))
    True
    """
    used, live_states = live if live is not None else live_values(program)
    digests = cache if cache is not None else DigestCache()
    keys: dict[str, Digest] = {}
    for p in program.params:
        if p.role is not Role.STATE:
            keys[p.name] = digests.input(p)
    initial = program.initial
    for name in live_states:
        keys[name] = _state0(initial[name])
    stmts = [s for s in program.body if s.target in used]
    digests.statements(stmts, keys)
    outputs = program.outputs

    def read(a: Atom) -> Digest:
        return keys[a.name] if a.__class__ is Ref else digests.const(a)  # type: ignore[arg-type]

    if not live_states:
        return _digest(b"program", read(outputs[0])).hex()
    # Label refinement. Only statements that read a state (directly or not) change between
    # rounds, so later rounds rehash only those.
    states = [p.name for p in program.params if p.role is Role.STATE]
    state_outs = dict(zip(states, outputs[1:], strict=True))
    tainted = set(live_states)
    todo = []
    for s in stmts:
        for a in s.args:
            if a.__class__ is Ref and a.name in tainted:
                tainted.add(s.target)
                todo.append(s)
                break
    labels = {name: keys[name] for name in live_states}
    classes = len(set(labels.values()))
    while True:
        new = {s: _digest(labels[s], read(state_outs[s])) for s in live_states}
        n = len(set(new.values()))
        if n == classes:  # stable: the labels tell apart exactly the classes of equal states
            return _digest(b"program", read(outputs[0]), *sorted(set(new.values()))).hex()
        labels, classes = new, n
        keys.update(labels)
        digests.statements(todo, keys)
