"""The paper's mutations, on the SSA IR: insert, delete or modify a statement, each equally likely.

A program is read the way its source reads: every statement assigns a variable (``s.var``), and
a read of variable ``x`` at a position is the value of the last assignment of ``x`` before it (or
the parameter ``x``). The mutations keep that reading:

- **insert** a random statement at a random position: a random op of the op table
  (:data:`simplifier.ops.OPS`, read generically) with valid arguments (each a variable current at
  that position of the type the op requires there, or a new constant where a scalar may go),
  assigned to a new variable or to an existing one of the result's type. Assigning an existing
  variable ``x`` makes the later reads of ``x`` (and the return) read the new value.
- **delete** a random statement: the later reads of its variable read the value it had before
  (invalid when there is none and the value is read, or when that value has another type).
- **modify** a random statement's argument: another variable of the same type, or (for a
  scalar) a new constant; a constant becomes a new ``N(0, 1)`` sample or the old value times
  ``2 ** N(0, 1)`` (each half the time). Constants keep 4 significant digits (as the paper's
  programs print them) and stay within ``±1e10``.

The return statement is never deleted; at ``max_length`` statements insertion is disabled. A
mutation that would give an invalid program is drawn again, and so is one whose child has the
parent's structural hash (a change in dead code, or to an equal value), up to ``tries`` times.

Validity is by construction: every argument is chosen with the type the op requires and every
variable keeps one type, so the child type-checks without re-running the type checker or
``Program.verify`` (``tests/test_search_mutate.py`` checks both on every child, with
Hypothesis). A :class:`Genome` carries the type of each SSA value so that a mutation costs
one pass over the statements.

>>> import random
>>> from simplifier.parse import parse_file
>>> parent = Genome.of(parse_file("corpus/program3_adamw.py"))
>>> child = Mutator().propose(parent, random.Random(1))
>>> child is not None and child.genome.digest != parent.digest
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from simplifier.analysis.hashing import DigestCache, structural_hash
from simplifier.analysis.liveness import live_values
from simplifier.analysis.types import Type, infer_types
from simplifier.ir import Atom, Const, Program, Ref, Stmt
from simplifier.ops import OPS, Kind, Op

SCALAR, TENSOR = Type.SCALAR, Type.TENSOR
MAX_CONSTANT = 1e10
KINDS = ("insert", "delete", "modify")


@dataclass(frozen=True, slots=True, eq=False)
class Genome:
    """A program with the type of every SSA value, its live values and states
    (:func:`~simplifier.analysis.liveness.live_values`) and its structural hash (the cache key)."""

    program: Program
    types: Mapping[str, Type]
    live: tuple[set[str], tuple[str, ...]]
    digest: str
    _readers: dict[str, list[int]] | None = field(default=None, init=False, repr=False)
    _last_live: dict[str, int] | None = field(default=None, init=False, repr=False)

    @staticmethod
    def of(program: Program) -> Genome:
        """A genome from any valid program (verified and type-checked once, here)."""
        program.verify()
        types = infer_types(program)
        live = live_values(program)
        return Genome(program, types, live, structural_hash(program, live=live))

    @property
    def redundant(self) -> int:
        """Statements that are dead (removed before evaluation)."""
        used = self.live[0]
        return sum(1 for s in self.program.body if s.target not in used)

    def readers(self) -> dict[str, list[int]]:
        """For each SSA value, the indices of the statements reading it (built once: a parent
        is mutated many times)."""
        found = self._readers
        if found is None:
            found = {}
            for k, s in enumerate(self.program.body):
                for a in s.args:
                    if a.__class__ is Ref:
                        at = found.setdefault(a.name, [])
                        if not at or at[-1] != k:
                            at.append(k)
            object.__setattr__(self, "_readers", found)
        return found

    def last_live_read(self) -> dict[str, int]:
        """For each SSA value read by live code, the index of its last live reader
        (``len(body)`` for a value the update or a live state's output reads)."""
        found = self._last_live
        if found is None:
            used = self.live[0]
            found = {}
            for k, s in enumerate(self.program.body):
                if s.target in used:
                    for a in s.args:
                        if a.__class__ is Ref:
                            found[a.name] = k
            n = len(self.program.body)
            for k, a in enumerate(self.program.outputs):
                if a.__class__ is Ref and self.live_output(k):
                    found[a.name] = n
            object.__setattr__(self, "_last_live", found)
        return found

    def live_output(self, k: int) -> bool:
        """Whether output ``k`` matters: the update, or the new value of a live state."""
        return k == 0 or self.program.states[k - 1] in self.live[1]


@dataclass(frozen=True, slots=True)
class Proposal:
    """A child: its genome, its live SSA values and states, and the mutation that made it."""

    genome: Genome
    mutation: str
    tries: int


def result_type(op: Op, args: Sequence[Type]) -> Type:
    """The type of an op's result (the type checker's rule, by op kind).

    >>> result_type(OPS["norm"], [TENSOR]), result_type(OPS["mul"], [SCALAR, TENSOR])
    (<Type.SCALAR: 'scalar'>, <Type.TENSOR: 'tensor'>)
    """
    if op.kind in (Kind.REDUCTION, Kind.CONSTANT):
        return SCALAR
    if op.kind is Kind.CLIP:
        return args[0]
    return TENSOR if TENSOR in args else SCALAR


def constant(x: float) -> Const:
    """A constant of 4 significant digits, clipped to ``±1e10``.

    >>> str(constant(0.123456)), str(constant(-3e12))
    ('0.1235', '-10000000000')
    """
    if not math.isfinite(x):
        x = math.copysign(MAX_CONSTANT, x) if not math.isnan(x) else 0.0
    x = max(-MAX_CONSTANT, min(MAX_CONSTANT, x))
    return Const.of(f"{x:.4g}")


def _current(program: Program, i: int) -> dict[str, str]:
    """The value (SSA name) of each variable just before statement ``i``."""
    env = {p.name: p.name for p in program.params}
    for s in program.body[:i]:
        if s.var is not None:
            env[s.var] = s.target
    return env


def _pick(rng: random.Random, n: int) -> int:
    """A uniform index below ``n`` (``randrange`` costs several times more; the bias of
    scaling a 53-bit float is below ``n * 2**-53``)."""
    return int(rng.random() * n)


def _reads(args: tuple[Atom, ...], name: str) -> bool:
    for a in args:
        if a.__class__ is Ref and a.name == name:
            return True
    return False


def _sub(args: tuple[Atom, ...], old: str, new: Atom) -> tuple[Atom, ...]:
    return tuple(new if a.__class__ is Ref and a.name == old else a for a in args)


def _with_args(s: Stmt, args: tuple[Atom, ...]) -> Stmt:
    return Stmt(s.target, s.op, args, s.var, s.loc)


def _child(p: Program, body: tuple[Stmt, ...], outputs: tuple[Atom, ...]) -> Program:
    # The constructor, not dataclasses.replace (several times faster on this hot path); a child
    # has no source text of its own.
    return Program(p.name, p.params, body, outputs, p.output_locs, "<search>", None)


def _fresh_target(var: str, program: Program) -> str:
    taken = {s.target for s in program.body}
    k = 1
    while f"{var}.{k}" in taken:
        k += 1
    return f"{var}.{k}"


def _new_var(program: Program) -> str:
    taken = {p.name for p in program.params} | {s.var for s in program.body if s.var}
    k = 1
    while f"t{k}" in taken:
        k += 1
    return f"t{k}"


@dataclass(frozen=True, slots=True)
class _Drawn:
    """One mutation's child, before hashing; ``live_change`` is False when the mutation only
    touched code that is dead in the parent (the child then has the parent's hash)."""

    program: Program
    types: dict[str, Type]
    label: str
    live_change: bool


@dataclass(frozen=True)
class Mutator:
    """Draws valid children. ``constants_only`` is the hyperparameter-tuning baseline (only
    constants are modified); ``ops`` defaults to every op of the table."""

    max_length: int = 30
    tries: int = 1000
    constants_only: bool = False
    ops: tuple[str, ...] = field(default_factory=lambda: tuple(OPS))
    # Sub-expression digests shared by the children of a stream (they share most statements);
    # each table bounded (cleared past 2**16 entries, a few MB).
    digests: DigestCache = field(
        default_factory=lambda: DigestCache(1 << 16), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        unknown = [name for name in self.ops if name not in OPS]
        if unknown:
            raise ValueError(f"unknown ops: {', '.join(unknown)}")

    def propose(self, parent: Genome, rng: random.Random) -> Proposal | None:
        """A valid child whose structural hash differs from the parent's (None after
        ``tries`` draws without one)."""
        for attempt in range(1, self.tries + 1):
            drawn = self.mutate(parent, rng)
            if drawn is None or not drawn.live_change:
                continue
            live = live_values(drawn.program)
            digest = structural_hash(drawn.program, live=live, cache=self.digests)
            if digest != parent.digest:
                return Proposal(
                    Genome(drawn.program, drawn.types, live, digest), drawn.label, attempt
                )
        return None

    def mutate(self, g: Genome, rng: random.Random) -> _Drawn | None:
        """One mutation, each kind equally likely (None when the draw is invalid)."""
        if self.constants_only:
            return self._constant(g, rng)
        kinds = KINDS if len(g.program.body) < self.max_length else KINDS[1:]
        kind = kinds[_pick(rng, len(kinds))]
        if kind == "insert":
            return self._insert(g, rng)
        if kind == "delete":
            return self._delete(g, rng)
        return self._modify(g, rng)

    def random_program(self, start: Genome, rng: random.Random, mutations: int) -> Proposal | None:
        """``start`` after ``mutations`` random valid mutations, without selection (the
        random-search baseline); None if it has ``start``'s structural hash."""
        g = start
        done = 0
        for _ in range(mutations):
            drawn = None
            for _ in range(self.tries):
                drawn = self.mutate(g, rng)
                if drawn is not None:
                    break
            if drawn is None:
                break
            live = live_values(drawn.program)
            g = Genome(drawn.program, drawn.types, live, "")
            done += 1
        digest = structural_hash(g.program, live=g.live, cache=self.digests)
        if digest == start.digest:
            return None
        return Proposal(replace(g, digest=digest), f"random {done} mutations", 1)

    # -- the three mutations -----------------------------------------------------------------
    def _insert(self, g: Genome, rng: random.Random) -> _Drawn | None:
        p, types = g.program, g.types
        i = _pick(rng, len(p.body) + 1)
        env = _current(p, i)
        # A new statement at i is live only if it assigns a variable whose current value has a
        # live reader at or after i: decide that first, before drawing the rest.
        last = g.last_live_read()
        if not any(last.get(v, -1) >= i for v in env.values()):
            return None
        op = OPS[self.ops[_pick(rng, len(self.ops))]]
        values = list(env.values())
        tensors = [v for v in values if types[v] is TENSOR]
        scalars = [v for v in values if types[v] is SCALAR]
        picks: list[str | float] = []  # a value's name, or a new constant's (unrounded) value
        arg_types: list[Type] = []
        for j in range(op.arity):
            if j in op.scalar_args:
                options, n = scalars, len(scalars) + 1
            elif j in op.tensor_args:
                options, n = tensors, len(tensors)
            else:
                options, n = values, len(values) + 1
            if n == 0:
                return None
            k = _pick(rng, n)
            if k < len(options):
                picks.append(options[k])
                arg_types.append(types[options[k]])
            else:
                picks.append(rng.gauss(0.0, 1.0))
                arg_types.append(SCALAR)
        result = result_type(op, arg_types)
        targets = [None, *(var for var, v in env.items() if types[v] is result)]
        var = targets[_pick(rng, len(targets))]
        # Only the later reads of the variable (and the return) can read the new value: a new
        # variable, or one whose next reads are dead, gives a dead statement (the parent's hash).
        if var is None or last.get(env[var], -1) < i:
            return None
        old = env[var]
        body = list(p.body)
        later = [k for k in g.readers().get(old, ()) if k >= i]
        target = _fresh_target(var, p)
        args = tuple(Ref(x) if isinstance(x, str) else constant(x) for x in picks)
        new_ref = Ref(target)
        for k in later:
            body[k] = _with_args(body[k], _sub(body[k].args, old, new_ref))
        body.insert(i, Stmt(target, op.name, args, var))
        new_types = dict(types)
        new_types[target] = result
        outputs = _sub(p.outputs, old, new_ref)
        return _Drawn(_child(p, tuple(body), outputs), new_types, f"insert {i} {op.name}", True)

    def _delete(self, g: Genome, rng: random.Random) -> _Drawn | None:
        p, types = g.program, g.types
        if not p.body:
            return None
        i = _pick(rng, len(p.body))
        s = p.body[i]
        if s.target not in g.live[0]:
            return None  # a dead statement: the child would have the parent's hash
        later = g.readers().get(s.target, ())
        body = list(p.body)
        outputs = p.outputs
        if later or _reads(outputs, s.target):
            prev = _current(p, i).get(s.var) if s.var is not None else None
            if prev is None or types[prev] is not types[s.target]:
                return None
            new = Ref(prev)
            for k in later:
                body[k] = _with_args(body[k], _sub(body[k].args, s.target, new))
            outputs = _sub(outputs, s.target, new)
        del body[i]
        new_types = dict(types)
        del new_types[s.target]
        return _Drawn(_child(p, tuple(body), outputs), new_types, f"delete {i} {s.op}", True)

    def _modify(self, g: Genome, rng: random.Random) -> _Drawn | None:
        p, types = g.program, g.types
        if not p.body:
            return None
        i = _pick(rng, len(p.body))
        s = p.body[i]
        if not s.args or s.target not in g.live[0]:
            return None  # nothing to modify, or dead: the child would have the parent's hash
        j = _pick(rng, len(s.args))
        a = s.args[j]
        new: Atom
        if isinstance(a, Const):
            new = self._new_constant(a, rng)
        else:
            t = types[a.name]
            options = [v for v in _current(p, i).values() if v != a.name and types[v] is t]
            n = len(options) + (1 if t is SCALAR else 0)
            if n == 0:
                return None
            k = _pick(rng, n)
            new = Ref(options[k]) if k < len(options) else constant(rng.gauss(0.0, 1.0))
        return self._replace_arg(g, i, j, new, "modify")

    def _replace_arg(self, g: Genome, i: int, j: int, new: Atom, kind: str) -> _Drawn:
        p = g.program
        s = p.body[i]
        stmt = _with_args(s, (*s.args[:j], new, *s.args[j + 1 :]))
        body = (*p.body[:i], stmt, *p.body[i + 1 :])
        live_change = s.target in g.live[0]
        return _Drawn(
            _child(p, body, p.outputs), dict(g.types), f"{kind} {i}.{j} {s.op}", live_change
        )

    def _new_constant(self, c: Const, rng: random.Random) -> Const:
        if rng.random() < 0.5:
            return constant(float(c.value) * 2.0 ** rng.gauss(0.0, 1.0))
        return constant(rng.gauss(0.0, 1.0))

    def _constant(self, g: Genome, rng: random.Random) -> _Drawn | None:
        """Modify one constant argument (the hyperparameter-tuning baseline)."""
        spots = [
            (i, j)
            for i, s in enumerate(g.program.body)
            for j, a in enumerate(s.args)
            if isinstance(a, Const)
        ]
        if not spots:
            return None
        i, j = spots[_pick(rng, len(spots))]
        c = g.program.body[i].args[j]
        assert isinstance(c, Const)
        return self._replace_arg(g, i, j, self._new_constant(c, rng), "constant")
