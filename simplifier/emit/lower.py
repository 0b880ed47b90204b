"""Lower a program to the straight-line form the torch code generators share.

Each value gets a Python name and a *kind*: where it lives at run time.

===========  ====================================================================================
``CONST``    a literal number
``NUMBER``   a group-wide Python float: lr, hypers and expressions of them (computed once a step)
``STEPNUM``  a per-parameter Python float: it depends on the parameter's step count
``GROUP``    a group-wide 0-d tensor: it depends on a reduction over every parameter of the group
``LOCAL``    a per-parameter 0-d tensor (``norm`` of one tensor, or a mix of the kinds above)
``TENSOR``   a per-parameter tensor of the parameter's shape
===========  ====================================================================================

Global reductions split the step into *stages*: stage ``k`` computes, tensor by tensor, the
per-parameter partial results of the reductions of level ``k + 1`` (``norm``, ``dot``); between
stages the partials are combined over the whole group; the last stage computes the update and
the new states. A stage recomputes the element-wise values it needs from the step's inputs
instead of keeping them from an earlier stage (inputs are written only by the last stage), so no
stage holds more than a tensor's worth of temporaries.

Compound ops and, under ``hero`` semantics, the protected operations (``a / b`` is
``a / (b + 1e-8)``) are lowered to primitives first (:mod:`simplifier.passes.lower`), so the
generators only know the ``math`` meaning of each op. The weight update
``w - update`` is the last instruction, so in-place planning treats the weight like a state.

>>> from simplifier.parse import parse
>>> k = lower(parse("def f(w, g, lr):\\n  return g * lr\\n"))
>>> [(i.name, i.op, i.args, i.kind.name) for i in k.instrs]  # w - g * lr, fused
[('w_new', 'sub_scaled', ('w', 'g', 'lr'), 'TENSOR')]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import IntEnum
from fractions import Fraction

from simplifier.emit.hypers import Signature, extract_hypers
from simplifier.emit.names import Namespace
from simplifier.ir import Const, Program, Ref, Role, Stmt
from simplifier.numeric import CONSTANTS, Semantics
from simplifier.ops import OPS, PRIMITIVE_REDUCTIONS, Kind
from simplifier.passes.lower import Lower


class VKind(IntEnum):
    CONST = 0
    NUMBER = 1
    STEPNUM = 2
    GROUP = 3
    LOCAL = 4
    TENSOR = 5

    @property
    def scalar(self) -> bool:
        return self is not VKind.TENSOR


def join(kinds: list[VKind]) -> VKind:
    """The kind of an element-wise result: per-parameter beats group-wide, tensor beats scalar."""
    top = max(kinds, default=VKind.CONST)
    if top is VKind.GROUP and VKind.STEPNUM in kinds:
        return VKind.LOCAL  # a group tensor mixed with a per-parameter number
    return VKind.NUMBER if top is VKind.CONST else top


@dataclass(frozen=True, slots=True)
class Lit:
    """A literal number in the generated code."""

    value: Fraction

    @property
    def source(self) -> str:
        text = repr(float(self.value))
        return f"({text})" if text.startswith("-") else text


Arg = Lit | str  # a literal or a value's name


# Internal ops, beyond the language's: per-parameter parts of reductions and their combination,
# and fused multiply-adds for the eager paths.
INTERNAL_OPS = {
    "tensor_dot": 2,  # sum(x * y) of one tensor (LOCAL)
    "combine_norm": 1,  # sqrt of the sum of squares of per-parameter norms (GROUP)
    "combine_sum": 1,  # sum of per-parameter partial sums (GROUP)
    "as_local": 1,  # a scalar as a per-parameter 0-d tensor (a part of a clip of a scalar)
    "add_scaled": 3,  # x + y * s, s a Python number
    "sub_scaled": 3,  # x - y * s, s a Python number
}
# The instructions that read a whole parameter tensor (a block of one would not do).
PER_TENSOR_OPS = frozenset(
    {"tensor_dot", *(n for n in PRIMITIVE_REDUCTIONS if not OPS[n].global_reduction)}
)


@dataclass(frozen=True, slots=True)
class Instr:
    """``name = op(*args)``; ``var`` is the program variable it computes (None for helpers)."""

    name: str
    op: str
    args: tuple[Arg, ...]
    kind: VKind
    level: int
    var: str | None = None


@dataclass(frozen=True)
class Lowered:
    """A program ready for code generation."""

    name: str
    weight: str  # the weight's name (also its buffer); the gradient and states likewise
    grad: str
    states: tuple[str, ...]
    initial: tuple[Fraction, ...]  # each state's value at step 0, in the order of ``states``
    step: str | None  # the step input's name, when the program reads it
    hypers: tuple[str, ...]  # lr then the signature's hypers, as NUMBER inputs
    instrs: tuple[Instr, ...]
    outputs: dict[str, Arg]  # buffer (weight, then states) -> its final value
    signature: Signature
    program: Program  # the program after dead-code removal and hyper extraction
    kinds: dict[str, VKind] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)

    @property
    def last_stage(self) -> int:
        return max(
            (self.levels.get(a, 0) for a in self.outputs.values() if isinstance(a, str)), default=0
        )

    def kind(self, a: Arg) -> VKind:
        return VKind.CONST if isinstance(a, Lit) else self.kinds[a]

    def level(self, a: Arg) -> int:
        return 0 if isinstance(a, Lit) else self.levels[a]


class _Builder:
    """Emits instructions, naming values and tracking their kinds and levels."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.instrs: list[Instr] = []
        self.kinds: dict[str, VKind] = {}
        self.levels: dict[str, int] = {}

    def input(self, name: str, kind: VKind) -> str:
        self.kinds[name] = kind
        self.levels[name] = 0
        return name

    def emit(
        self,
        hint: str,
        op: str,
        args: list[Arg],
        kind: VKind | None = None,
        var: str | None = None,
        level: int | None = None,
    ) -> str:
        kinds = [VKind.CONST if isinstance(a, Lit) else self.kinds[a] for a in args]
        levels = [0 if isinstance(a, Lit) else self.levels[a] for a in args]
        kind = kind if kind is not None else join(kinds)
        level = level if level is not None else max(levels, default=0)
        name = self.ns.name(hint)
        self.instrs.append(Instr(name, op, tuple(args), kind, level, var))
        self.kinds[name] = kind
        self.levels[name] = level
        return name

    def global_norm(self, hint: str, x: Arg) -> str:
        """The norm of ``x`` over every parameter of the group (a scalar counts once per tensor)."""
        kind = VKind.CONST if isinstance(x, Lit) else self.kinds[x]
        if kind is VKind.TENSOR:
            part = self.emit(f"{hint}_part", "norm", [x], VKind.LOCAL)
        else:
            absx = self.emit(f"{hint}_abs", "abs", [x])
            part = self.emit(f"{hint}_part", "as_local", [absx], VKind.LOCAL)
        return self.emit(hint, "combine_norm", [part], VKind.GROUP, level=self.levels[part] + 1)

    def dot(self, hint: str, x: Arg, y: Arg) -> str:
        part = self.emit(f"{hint}_part", "tensor_dot", [x, y], VKind.LOCAL)
        return self.emit(hint, "combine_sum", [part], VKind.GROUP, level=self.levels[part] + 1)


def _owners(program: Program) -> dict[str, str]:
    """For each temporary, the variable of the statement that reads it (for readable names)."""
    owner: dict[str, str] = {}
    for s in reversed(program.body):
        name = s.var if s.var is not None else owner.get(s.target, "t")
        for a in s.args:
            if isinstance(a, Ref) and a.name not in owner:
                owner[a.name] = name
    return owner


def _lower_stmt(b: _Builder, s: Stmt, args: list[Arg], owner: str) -> str:
    """Instructions for one program statement; returns the name of its value."""
    hint = s.var or f"{owner}_{s.op}"
    op = OPS[s.op]
    if op.kind is Kind.CONSTANT:  # folded into a literal at every use
        raise AssertionError("constants are literals")
    if op.elementwise:
        return b.emit(hint, s.op, args, var=s.var)
    return _REDUCTIONS[s.op](b, hint, args, s.var)


def _local(op: str) -> Callable[[_Builder, str, list[Arg], str | None], str]:
    """A reduction of one tensor: a per-parameter 0-d tensor."""
    return lambda b, hint, args, var: b.emit(hint, op, args, VKind.LOCAL, var=var)


# The primitive reductions (compound ops and hero protections are lowered before, by
# :class:`~simplifier.passes.lower.Lower`): one rule each, keyed by op.
_REDUCTIONS: dict[str, Callable[[_Builder, str, list[Arg], str | None], str]] = {
    **{name: _local(name) for name in PER_TENSOR_OPS - INTERNAL_OPS.keys()},  # norm, sum, ...
    "global_norm": lambda b, hint, args, var: b.global_norm(hint, args[0]),
    "dot": lambda b, hint, args, var: b.dot(hint, args[0], args[1]),
}


def _fuse_scaled(instrs: list[Instr], kinds: dict[str, VKind], keep: set[str]) -> list[Instr]:
    """``x + y * s`` and ``x - y * s`` (s a Python number, the product read once) -> one op.

    The eager paths run them as ``x.add_(y, alpha=s)``: one pass over memory instead of two.
    """
    uses: dict[str, int] = {}
    for i in instrs:
        for a in i.args:
            if isinstance(a, str):
                uses[a] = uses.get(a, 0) + 1
    by_name = {i.name: i for i in instrs}
    number = (VKind.CONST, VKind.NUMBER)

    def scaled(a: Arg) -> tuple[Arg, Arg] | None:
        if isinstance(a, Lit):
            return None
        i = by_name.get(a)
        if i is None or i.op != "mul" or i.kind is not VKind.TENSOR or uses[a] != 1 or a in keep:
            return None
        x, y = i.args
        kx = VKind.CONST if isinstance(x, Lit) else kinds[x]
        ky = VKind.CONST if isinstance(y, Lit) else kinds[y]
        if kx is VKind.TENSOR and ky in number:
            return x, y
        if ky is VKind.TENSOR and kx in number:
            return y, x
        return None

    out: list[Instr] = []
    fused: set[str] = set()
    for i in instrs:
        if i.op in ("add", "sub") and i.kind is VKind.TENSOR:
            x, y = i.args
            tensor_x = isinstance(x, str) and kinds[x] is VKind.TENSOR
            found = scaled(y) if tensor_x else None
            if found is None and i.op == "add" and isinstance(y, str) and kinds[y] is VKind.TENSOR:
                found, x = scaled(x), y
            if found is not None:
                assert isinstance(x, str)
                op = "add_scaled" if i.op == "add" else "sub_scaled"
                fused.add(i.args[1] if x == i.args[0] else i.args[0])  # type: ignore[arg-type]
                out.append(Instr(i.name, op, (x, *found), i.kind, i.level, i.var))
                continue
        out.append(i)
    return [i for i in out if i.name not in fused]


def lower(program: Program, semantics: Semantics = "math") -> Lowered:
    """Dead-code removal, hyper extraction, then the instruction list (see the module doc)."""
    from simplifier.passes.dce import prune

    extracted = extract_hypers(prune(program))
    sig = extracted.signature
    # Lowered after hyper extraction, so that a protection's 1e-8 is not taken for an eps hyper.
    source, program = extracted.program, Lower(semantics).run(extracted.program)
    b = _Builder(Namespace())
    env = _inputs(b, program)
    lr = "lr" if "lr" in b.kinds else b.input(b.ns.name("lr"), VKind.NUMBER)
    _body(b, program, env)

    def read(a: Const | Ref) -> Arg:
        return Lit(a.value) if isinstance(a, Const) else env[a.name]

    update = read(program.outputs[0])
    if sig.lr_mode == "absent":  # scale by the group's lr (1.0 by default) so schedulers work
        update = b.emit("update", "mul", [update, lr])
    weight = env[program.input_named(Role.WEIGHT) or ""]
    assert isinstance(weight, str)
    w_new = b.emit(f"{weight}_new", "sub", [weight, update])
    outputs: dict[str, Arg] = {weight: w_new}
    for name, a in zip(program.states, program.outputs[1:], strict=True):
        outputs[str(env[name])] = read(a)
    keep = {a for a in outputs.values() if isinstance(a, str)}
    instrs = _fuse_scaled(b.instrs, b.kinds, keep)
    step = program.input_named(Role.STEP)
    grad = env[program.input_named(Role.GRADIENT) or ""]
    assert isinstance(grad, str)
    return Lowered(
        name=program.name,
        weight=weight,
        grad=grad,
        states=tuple(str(env[s]) for s in program.states),
        initial=tuple(program.initial.values()),
        step=str(env[step]) if step is not None else None,
        hypers=(lr, *(str(env[h.name]) for h in sig.hypers())),
        instrs=tuple(instrs),
        outputs=outputs,
        signature=sig,
        program=source,
        kinds=b.kinds,
        levels=b.levels,
    )


_INPUT_KINDS = {Role.LR: VKind.NUMBER, Role.STEP: VKind.STEPNUM, Role.HYPER: VKind.NUMBER}


def _inputs(b: _Builder, program: Program) -> dict[str, Arg]:
    """A name and a kind for each parameter (lr is called ``lr``)."""
    return {
        p.name: b.input(
            b.ns.name("lr" if p.role is Role.LR else p.name),
            _INPUT_KINDS.get(p.role, VKind.TENSOR),
        )
        for p in program.params
    }


def _body(b: _Builder, program: Program, env: dict[str, Arg]) -> None:
    """The instructions of the statements (``env`` gets each statement's value)."""
    owners = _owners(program)
    finals = {
        a.name: s
        for s, a in zip(program.states, program.outputs[1:], strict=True)
        if isinstance(a, Ref) and a.name not in program.states
    }
    for s in program.body:
        if OPS[s.op].kind is Kind.CONSTANT:
            env[s.target] = Lit(Fraction(CONSTANTS[s.op]))
            continue
        args = [Lit(a.value) if isinstance(a, Const) else env[a.name] for a in s.args]
        if s.target in finals:  # a state's new value: name it so
            s = replace(s, var=f"{finals[s.target]}_new")
        env[s.target] = _lower_stmt(b, s, args, owners.get(s.target, "t"))
